-- A run belongs to its contact's bot; kept on the run, a bot's runs are
-- found by index rather than by testing every run's contact.
ALTER TABLE runs ADD COLUMN bot_id BIGINT NOT NULL DEFAULT 0;
UPDATE runs SET bot_id = COALESCE((SELECT c.bot_id FROM contacts c WHERE c.id = runs.contact_id), 0);
DROP INDEX runs_flow;
CREATE INDEX runs_of_bot ON runs (bot_id, id);
CREATE INDEX runs_of_bot_flow ON runs (bot_id, flow_id, status);
-- How long completed runs took, read from the index alone.
CREATE INDEX runs_of_bot_done ON runs (bot_id, status, created_ms, flow_id, updated_ms);

-- The dashboard's and a flow's runs per day, by flow and status, kept as
-- the runs are written. A day is `created_ms / 86400000` (UTC).
CREATE TABLE run_days (
    bot_id  BIGINT NOT NULL,
    flow_id TEXT   NOT NULL,
    day     BIGINT NOT NULL,
    status  TEXT   NOT NULL,
    shard   BIGINT NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (bot_id, flow_id, day, status, shard)
);
INSERT INTO run_days (bot_id, flow_id, day, status, shard, n)
SELECT bot_id, flow_id, created_ms / 86400000, status, 0, COUNT(*)
  FROM runs GROUP BY bot_id, flow_id, created_ms / 86400000, status;

-- One writer: one shard.
CREATE TRIGGER runs_days_insert AFTER INSERT ON runs BEGIN
    INSERT INTO run_days (bot_id, flow_id, day, status, shard, n)
    VALUES (NEW.bot_id, NEW.flow_id, NEW.created_ms / 86400000, NEW.status, 0, 1)
    ON CONFLICT (bot_id, flow_id, day, status, shard) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER runs_days_status AFTER UPDATE OF status ON runs
WHEN OLD.status IS NOT NEW.status BEGIN
    UPDATE run_days SET n = n - 1
     WHERE bot_id = OLD.bot_id AND flow_id = OLD.flow_id AND day = OLD.created_ms / 86400000
       AND status = OLD.status AND shard = 0;
    INSERT INTO run_days (bot_id, flow_id, day, status, shard, n)
    VALUES (NEW.bot_id, NEW.flow_id, NEW.created_ms / 86400000, NEW.status, 0, 1)
    ON CONFLICT (bot_id, flow_id, day, status, shard) DO UPDATE SET n = n + 1;
END;
