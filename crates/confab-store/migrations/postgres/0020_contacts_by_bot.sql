-- A schedule reads a bot's audience a page at a time, by contact id: with
-- only (bot_id, phone) indexed, every page read and sorted all the bot's
-- contacts.
CREATE INDEX contacts_of_bot_by_id ON contacts (bot_id, id);
