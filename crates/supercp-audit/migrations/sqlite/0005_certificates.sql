-- Certificates of TLS domains, one row per node and domain: what is served (serial, expiry)
-- and how issuing goes (failures in a row, the CA's last error, when to try again), so a CA
-- that refuses is not asked again on every run.
CREATE TABLE certificates (
    node         TEXT    NOT NULL,
    domain       TEXT    NOT NULL,
    serial       TEXT,
    not_after    BIGINT,
    issued_at    BIGINT,
    failures     BIGINT  NOT NULL DEFAULT 0,
    last_error   TEXT,
    next_attempt BIGINT,
    updated_at   BIGINT  NOT NULL,
    PRIMARY KEY (node, domain)
);
