-- Certificates of TLS domains, one row per node and domain: what is served (serial, expiry)
-- and how issuing goes (failures in a row, the CA's last error, when to try again), so a CA
-- that refuses is not asked again on every run), and the CA's suggested renewal window (ARI,
-- RFC 9773) with when to ask for it again.
CREATE TABLE certificates (
    node         TEXT    NOT NULL,
    domain       TEXT    NOT NULL,
    serial       TEXT,
    not_after    BIGINT,
    issued_at    BIGINT,
    failures     BIGINT  NOT NULL DEFAULT 0,
    last_error   TEXT,
    next_attempt BIGINT,
    ari_start    BIGINT,
    ari_end      BIGINT,
    ari_next_check BIGINT,
    updated_at   BIGINT  NOT NULL,
    PRIMARY KEY (node, domain)
);
