-- A collection's records are a bot's: its flows find and change only
-- theirs. Every record there is belongs to the default bot.
ALTER TABLE records ADD COLUMN bot_id BIGINT NOT NULL DEFAULT 1 REFERENCES bots(id);
CREATE INDEX records_bot ON records (bot_id, collection, id);
