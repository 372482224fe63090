-- The dashboard's messages per day, by direction and status, kept as the
-- messages are written (a count read a day at a time, not a scan of the
-- day's messages). A day is `created_ms / 86400000` (UTC). `shard` lets
-- concurrent writers keep counts of their own; SQLite has one writer.
CREATE TABLE message_days (
    bot_id    BIGINT  NOT NULL,
    day       BIGINT  NOT NULL,
    direction TEXT    NOT NULL,
    status    TEXT    NOT NULL,
    shard     BIGINT  NOT NULL,
    n         BIGINT  NOT NULL,
    PRIMARY KEY (bot_id, day, direction, status, shard)
);

INSERT INTO message_days (bot_id, day, direction, status, shard, n)
SELECT c.bot_id, m.created_ms / 86400000, m.direction, m.status, 0, COUNT(*)
  FROM messages m JOIN contacts c ON c.id = m.contact_id
 GROUP BY c.bot_id, m.created_ms / 86400000, m.direction, m.status;

CREATE TRIGGER messages_days_insert AFTER INSERT ON messages BEGIN
    INSERT INTO message_days (bot_id, day, direction, status, shard, n)
    SELECT c.bot_id, NEW.created_ms / 86400000, NEW.direction, NEW.status, 0, 1
      FROM contacts c WHERE c.id = NEW.contact_id
    ON CONFLICT (bot_id, day, direction, status, shard) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER messages_days_status AFTER UPDATE OF status ON messages
WHEN OLD.status IS NOT NEW.status BEGIN
    UPDATE message_days SET n = n - 1
     WHERE bot_id = (SELECT c.bot_id FROM contacts c WHERE c.id = OLD.contact_id)
       AND day = OLD.created_ms / 86400000 AND direction = OLD.direction
       AND status = OLD.status AND shard = 0;
    INSERT INTO message_days (bot_id, day, direction, status, shard, n)
    SELECT c.bot_id, NEW.created_ms / 86400000, NEW.direction, NEW.status, 0, 1
      FROM contacts c WHERE c.id = NEW.contact_id
    ON CONFLICT (bot_id, day, direction, status, shard) DO UPDATE SET n = n + 1;
END;
