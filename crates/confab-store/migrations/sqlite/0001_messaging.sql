-- Timestamps are Unix milliseconds (BIGINT), JSON is TEXT, flags are INTEGER 0/1:
-- the same column types read back identically through sqlx's Any driver on both backends.

CREATE TABLE contacts (
    id              INTEGER PRIMARY KEY,
    phone           TEXT    NOT NULL UNIQUE,
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
    updated_ms      BIGINT  NOT NULL
);

CREATE TABLE messages (
    id                  INTEGER PRIMARY KEY,
    contact_id          BIGINT  NOT NULL REFERENCES contacts(id),
    channel             TEXT    NOT NULL,
    direction           TEXT    NOT NULL,
    kind                TEXT    NOT NULL,
    text                TEXT,
    media               TEXT    NOT NULL DEFAULT '[]',
    extra               TEXT    NOT NULL DEFAULT '{}',
    content             TEXT,
    sender              TEXT,
    status              TEXT    NOT NULL,
    status_rank         INTEGER NOT NULL,
    provider_message_id TEXT,
    error               TEXT,
    response            TEXT,
    created_ms          BIGINT  NOT NULL,
    updated_ms          BIGINT  NOT NULL,
    UNIQUE (channel, direction, provider_message_id)
);
CREATE INDEX messages_contact ON messages (contact_id, id);
CREATE INDEX messages_created ON messages (created_ms);

-- Every delivery report as it arrived: the status history of a message, and the
-- place a report waits when it arrives before the send result that names its id.
CREATE TABLE message_statuses (
    id                  INTEGER PRIMARY KEY,
    channel             TEXT    NOT NULL,
    provider_message_id TEXT    NOT NULL,
    status              TEXT    NOT NULL,
    status_rank         INTEGER NOT NULL,
    error               TEXT,
    received_ms         BIGINT  NOT NULL
);
CREATE INDEX message_statuses_provider ON message_statuses (channel, provider_message_id);

-- Durable work: outbox sends now, timers and campaigns later. A claimed row is
-- leased until locked_until_ms; a crashed worker's lease simply runs out.
CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY,
    kind            TEXT    NOT NULL,
    ref_id          BIGINT  NOT NULL,
    run_at_ms       BIGINT  NOT NULL,
    locked_until_ms BIGINT  NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_ms      BIGINT  NOT NULL,
    UNIQUE (kind, ref_id)
);
CREATE INDEX jobs_due ON jobs (kind, run_at_ms);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    created_ms    BIGINT  NOT NULL
);

CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL,
    key_hash     TEXT    NOT NULL UNIQUE,
    created_ms   BIGINT  NOT NULL,
    last_used_ms BIGINT,
    revoked_ms   BIGINT
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
