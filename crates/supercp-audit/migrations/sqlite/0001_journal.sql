-- The audit journal: one row per `supercp apply` run, one row per step of a run, and the objects
-- SuperCP owns on each node. Timestamps are unix milliseconds. Keep in step with
-- ../postgres/0001_journal.sql: the two differ only in column types.

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    node        TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    repo        TEXT    NOT NULL,
    git_commit  TEXT,
    git_author  TEXT,
    git_dirty   BOOLEAN,
    summary     TEXT    NOT NULL,
    outcome     TEXT    NOT NULL
                CHECK (outcome IN ('running', 'succeeded', 'failed', 'interrupted')),
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    pid         INTEGER NOT NULL,
    error       TEXT,
    gate_checks INTEGER NOT NULL DEFAULT 0,
    reloads     INTEGER NOT NULL DEFAULT 0
);

-- mark_interrupted looks for the runs of a node that never recorded an outcome.
CREATE INDEX runs_running_by_node ON runs (node) WHERE outcome = 'running';

CREATE TABLE steps (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq            INTEGER NOT NULL,
    resource       TEXT    NOT NULL,
    origin         TEXT    NOT NULL,
    object         TEXT    NOT NULL,
    action         TEXT    NOT NULL CHECK (action IN ('create', 'update', 'delete')),
    status         TEXT    NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'running', 'done', 'failed', 'interrupted')),
    attempt        INTEGER NOT NULL DEFAULT 0,
    started_at     INTEGER,
    finished_at    INTEGER,
    before_hash    TEXT,
    after_hash     TEXT,
    -- JSON array of strings
    log            TEXT    NOT NULL DEFAULT '[]',
    before_content BLOB,
    UNIQUE (run_id, seq)
);

CREATE TABLE owned (
    node        TEXT    NOT NULL,
    object      TEXT    NOT NULL,
    resource    TEXT    NOT NULL,
    tenant_data BOOLEAN NOT NULL,
    -- the layout directory the object's path is walked from without following symlinks
    anchor      TEXT    NOT NULL,
    -- 'Retain' or 'Delete' for tenant data, as declared when SuperCP last wrote it
    deletion_policy TEXT,
    -- the service gate (nginx, php-fpm) that must check a delete of this object
    gate        TEXT,
    PRIMARY KEY (node, object)
);
