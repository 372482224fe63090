-- Live consoles learn which conversations changed from the database, so
-- every writer (a webhook, the outbox, a delivery status, the CLI) is seen.
-- One row a contact, with the number of its latest change: the table never
-- grows past the contacts, and a reader asks for what is newer than the
-- last number it saw.
CREATE TABLE live_changes (
    contact_id BIGINT PRIMARY KEY,
    bot_id     BIGINT NOT NULL,
    seq        BIGINT NOT NULL
);
CREATE INDEX live_changes_seq ON live_changes (seq);

CREATE TRIGGER messages_live_insert AFTER INSERT ON messages BEGIN
    INSERT INTO live_changes (contact_id, bot_id, seq)
    SELECT NEW.contact_id, c.bot_id, COALESCE((SELECT MAX(seq) FROM live_changes), 0) + 1
      FROM contacts c WHERE c.id = NEW.contact_id
    ON CONFLICT (contact_id) DO UPDATE SET seq = excluded.seq;
END;

CREATE TRIGGER messages_live_status AFTER UPDATE OF status ON messages
WHEN OLD.status IS NOT NEW.status BEGIN
    INSERT INTO live_changes (contact_id, bot_id, seq)
    SELECT NEW.contact_id, c.bot_id, COALESCE((SELECT MAX(seq) FROM live_changes), 0) + 1
      FROM contacts c WHERE c.id = NEW.contact_id
    ON CONFLICT (contact_id) DO UPDATE SET seq = excluded.seq;
END;
