-- The dashboard's messages per day, by direction and status, kept as the
-- messages are written (a count read a day at a time, not a scan of the
-- day's messages). A day is `created_ms / 86400000` (UTC).
--
-- Each database session counts in rows of its own (`shard` is its backend
-- pid): concurrent transactions never wait on, or deadlock over, a shared
-- counter. A status change may leave one session's count below zero and
-- another's above; their sum is the count.
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

CREATE FUNCTION confab_message_days() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bot BIGINT;
BEGIN
    SELECT c.bot_id INTO bot FROM contacts c WHERE c.id = NEW.contact_id;
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO message_days AS d (bot_id, day, direction, status, shard, n)
        VALUES (bot, OLD.created_ms / 86400000, OLD.direction, OLD.status, pg_backend_pid(), -1)
        ON CONFLICT (bot_id, day, direction, status, shard) DO UPDATE SET n = d.n - 1;
    END IF;
    INSERT INTO message_days AS d (bot_id, day, direction, status, shard, n)
    VALUES (bot, NEW.created_ms / 86400000, NEW.direction, NEW.status, pg_backend_pid(), 1)
    ON CONFLICT (bot_id, day, direction, status, shard) DO UPDATE SET n = d.n + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_days_insert AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION confab_message_days();
CREATE TRIGGER messages_days_status AFTER UPDATE OF status ON messages
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION confab_message_days();
