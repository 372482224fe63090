-- The inbox lists a bot's contacts by who wrote last (`last_seen_ms`, set
-- as a contact's new message is taken in).
CREATE INDEX contacts_of_bot_by_activity ON contacts (bot_id, last_seen_ms, id);

-- The console's simulator talks as test contacts: the inbox and a
-- schedule's or a broadcast's audience leave them out.
ALTER TABLE contacts ADD COLUMN test INTEGER NOT NULL DEFAULT 0;
