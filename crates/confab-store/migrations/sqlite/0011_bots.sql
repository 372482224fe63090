-- Bots, the unit of tenancy. The bot `default` (id 1) always exists: the
-- environment's settings describe it, and every unscoped route acts on it.
-- A channel is a bot's Twilio sender or Meta number: `address` is the
-- number (E.164) or the phone number id, which routes webhooks to the bot;
-- `config` holds what is not secret (and, for the API, each secret's last
-- characters); the secrets themselves are sealed in `secrets` under the
-- owner `bot:<id>`, name the channel's kind.
CREATE TABLE bots (
    -- Never reused: a deleted bot's id names nothing else later.
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    slug         TEXT    NOT NULL UNIQUE,
    name         TEXT    NOT NULL,
    default_flow TEXT,
    policy       TEXT    NOT NULL DEFAULT '{}',
    created_ms   BIGINT  NOT NULL,
    updated_ms   BIGINT  NOT NULL
);
INSERT INTO bots (id, slug, name, created_ms, updated_ms) VALUES (1, 'default', 'Default', 0, 0);

CREATE TABLE bot_channels (
    bot_id     BIGINT  NOT NULL REFERENCES bots(id),
    kind       TEXT    NOT NULL,
    address    TEXT    NOT NULL,
    config     TEXT    NOT NULL DEFAULT '{}',
    created_ms BIGINT  NOT NULL,
    updated_ms BIGINT  NOT NULL,
    PRIMARY KEY (bot_id, kind),
    UNIQUE (kind, address)
);
