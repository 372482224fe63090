-- A bot's AI settings (system prompt, models, history), over the server's.
ALTER TABLE bots ADD COLUMN ai TEXT NOT NULL DEFAULT '{}';
