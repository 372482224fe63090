-- The AI assistant: media fetched from the providers, every AI call with its
-- model, tokens and latency, the per-contact rate windows, and whether a
-- contact off the allow-list has been told so.

CREATE TABLE media (
    id           INTEGER PRIMARY KEY,
    message_id   BIGINT  NOT NULL REFERENCES messages(id),
    position     INTEGER NOT NULL,
    content_type TEXT    NOT NULL,
    size         BIGINT  NOT NULL,
    sha256       TEXT    NOT NULL,
    -- The bytes live here or in a file under MEDIA_DIR (path), as configured.
    bytes        BLOB,
    path         TEXT,
    -- What a voice note said, or a PDF's text.
    text         TEXT,
    created_ms   BIGINT  NOT NULL,
    UNIQUE (message_id, position)
);
CREATE INDEX media_created ON media (created_ms);

CREATE TABLE ai_calls (
    id                INTEGER PRIMARY KEY,
    message_id        BIGINT  REFERENCES messages(id),
    run_id            BIGINT,
    flow_id           TEXT    NOT NULL,
    node              TEXT,
    purpose           TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    prompt_tokens     BIGINT  NOT NULL DEFAULT 0,
    completion_tokens BIGINT  NOT NULL DEFAULT 0,
    latency_ms        BIGINT  NOT NULL,
    error             TEXT,
    created_ms        BIGINT  NOT NULL
);
CREATE INDEX ai_calls_message ON ai_calls (message_id);
CREATE INDEX ai_calls_created ON ai_calls (created_ms);

CREATE TABLE rate_windows (
    contact_id      BIGINT  NOT NULL PRIMARY KEY REFERENCES contacts(id),
    window_start_ms BIGINT  NOT NULL,
    count           BIGINT  NOT NULL,
    told            INTEGER NOT NULL DEFAULT 0
);

ALTER TABLE contacts ADD COLUMN refused INTEGER NOT NULL DEFAULT 0;
