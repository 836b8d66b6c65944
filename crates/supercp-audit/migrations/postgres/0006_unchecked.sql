-- Objects a commit unit (a gate) wrote and has not yet checked: recorded before the unit's
-- first write, removed once its check passed and its service reloaded, or once the batch was
-- put back. Rows left by a killed run tell the next run to check that unit again (or put the
-- previous content back). before_content is the content before the first unchecked write
-- (the last content that passed a check); NULL where there was no file.
CREATE TABLE unchecked (
    node           TEXT    NOT NULL,
    object         TEXT    NOT NULL,
    gate           TEXT    NOT NULL,
    run_id         BIGINT  NOT NULL,
    resource       TEXT    NOT NULL,
    origin         TEXT    NOT NULL,
    anchor         TEXT    NOT NULL,
    action         TEXT    NOT NULL CHECK (action IN ('create', 'update', 'delete')),
    before_content BYTEA,
    PRIMARY KEY (node, object)
);
