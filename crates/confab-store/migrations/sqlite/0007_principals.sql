-- Credentials that can be taken back, and roles that mean something.
-- A user's tokens carry the user's token_version; changing the password or
-- disabling the user moves it on, and every token issued before stops
-- working. Keys get a role of their own; existing keys keep full access.
-- The earlier role `operator` becomes `agent`: it talks to contacts but
-- changes neither flows nor records nor who may use the bot.
ALTER TABLE users ADD COLUMN disabled_ms BIGINT;
ALTER TABLE users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
UPDATE users SET role = 'agent' WHERE role = 'operator';
UPDATE users SET role = 'viewer' WHERE role NOT IN ('admin', 'editor', 'agent', 'viewer');
