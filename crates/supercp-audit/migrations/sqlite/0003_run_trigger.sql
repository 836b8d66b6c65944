-- Why a run ran (`cli`: an operator's or CI's `supercp apply`; `commit`, `drift`, `signal`,
-- `reconcile`: the agent), and the message of the Git commit it applied.
ALTER TABLE runs ADD COLUMN git_message TEXT;
ALTER TABLE runs ADD COLUMN trigger TEXT NOT NULL DEFAULT 'cli';
