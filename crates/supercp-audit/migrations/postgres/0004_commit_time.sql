-- When the applied Git commit was committed (committer time, unix seconds), so the status page
-- can report how old the commit a node runs is.
ALTER TABLE runs ADD COLUMN git_time BIGINT;
