-- A collection's records are a bot's: its flows find and change only
-- theirs. Every record there is belongs to the default bot. (SQLite adds
-- no reference to bots here: with foreign keys on, a column it adds may
-- not have one and a default other than NULL.)
ALTER TABLE records ADD COLUMN bot_id BIGINT NOT NULL DEFAULT 1;
CREATE INDEX records_bot ON records (bot_id, collection, id);
