-- The inbox lists a bot's contacts by their latest message, in or out, by
-- any writer. Message ids only grow, so the latest message's id orders
-- contacts by last activity and names the message to show beside them.
ALTER TABLE contacts ADD COLUMN last_message_id BIGINT NOT NULL DEFAULT 0;
UPDATE contacts SET last_message_id =
    COALESCE((SELECT MAX(m.id) FROM messages m WHERE m.contact_id = contacts.id), 0);
CREATE INDEX contacts_of_bot_by_activity ON contacts (bot_id, last_message_id, id);

CREATE TRIGGER messages_last AFTER INSERT ON messages BEGIN
    UPDATE contacts SET last_message_id = NEW.id
     WHERE id = NEW.contact_id AND last_message_id < NEW.id;
END;

-- The console's simulator talks as test contacts: the inbox and a
-- schedule's or a broadcast's audience leave them out.
ALTER TABLE contacts ADD COLUMN test INTEGER NOT NULL DEFAULT 0;
