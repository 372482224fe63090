-- no-transaction
-- A contact is a phone number of a bot: the same number writing to two bots
-- is two contacts, each with its own window, opt-out and history. Every
-- contact there is belongs to the default bot.
--
-- SQLite cannot drop the old UNIQUE (phone), so the table is rebuilt. The
-- tables that reference contacts keep their rows; foreign keys are off for
-- the rebuild (a DROP TABLE under them counts every child row as broken,
-- even deferred, though the same ids are back by the commit), and the
-- rebuild is one transaction of its own.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE contacts_of_bots (
    id              INTEGER PRIMARY KEY,
    bot_id          BIGINT  NOT NULL DEFAULT 1 REFERENCES bots(id),
    phone           TEXT    NOT NULL,
    profile_name    TEXT,
    first_seen_ms   BIGINT  NOT NULL,
    last_seen_ms    BIGINT  NOT NULL,
    last_inbound_ms BIGINT,
    last_read_ms    BIGINT  NOT NULL DEFAULT 0,
    opted_out       INTEGER NOT NULL DEFAULT 0,
    blocked         INTEGER NOT NULL DEFAULT 0,
    tags            TEXT    NOT NULL DEFAULT '[]',
    attributes      TEXT    NOT NULL DEFAULT '{}',
    created_ms      BIGINT  NOT NULL,
    updated_ms      BIGINT  NOT NULL,
    read_up_to_id   BIGINT  NOT NULL DEFAULT 0,
    refused         INTEGER NOT NULL DEFAULT 0,
    UNIQUE (bot_id, phone)
);
INSERT INTO contacts_of_bots (id, phone, profile_name, first_seen_ms, last_seen_ms, last_inbound_ms,
    last_read_ms, opted_out, blocked, tags, attributes, created_ms, updated_ms, read_up_to_id, refused)
SELECT id, phone, profile_name, first_seen_ms, last_seen_ms, last_inbound_ms,
    last_read_ms, opted_out, blocked, tags, attributes, created_ms, updated_ms, read_up_to_id, refused
FROM contacts;
DROP TABLE contacts;
ALTER TABLE contacts_of_bots RENAME TO contacts;
COMMIT;
PRAGMA foreign_keys = ON;
