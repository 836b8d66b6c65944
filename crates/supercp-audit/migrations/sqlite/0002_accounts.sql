-- Tenant accounts: the uid (and gid) each tenant was given on a node. A row is never deleted or
-- changed, so a uid is never given to another tenant, even after its first tenant is gone.
CREATE TABLE accounts (
    node       TEXT    NOT NULL,
    tenant     TEXT    NOT NULL,
    uid        BIGINT  NOT NULL,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (node, tenant),
    UNIQUE (node, uid)
);
