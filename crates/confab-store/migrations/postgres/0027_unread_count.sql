-- A contact's unread messages, kept as they come in and as they are read:
-- the inbox lists fifty contacts a page, and counting each one's unread
-- messages read every one of them (a bot's contacts whom no agent reads
-- have ever more).
ALTER TABLE contacts ADD COLUMN unread_count BIGINT NOT NULL DEFAULT 0;
UPDATE contacts SET unread_count = (
    SELECT COUNT(*) FROM messages m
     WHERE m.contact_id = contacts.id AND m.direction = 'inbound' AND m.id > contacts.read_up_to_id);
