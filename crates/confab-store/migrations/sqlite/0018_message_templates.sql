-- Each bot's catalogue of WhatsApp message templates: declared through the
-- API, or synced from Meta's business account. Sends and flows naming a
-- template are checked against it. `parameters` is the body's placeholders
-- as a JSON list; `source` is `declared` or `synced`.
CREATE TABLE message_templates (
    id          INTEGER PRIMARY KEY,
    bot_id      BIGINT NOT NULL REFERENCES bots(id),
    channel     TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    language    TEXT   NOT NULL,
    category    TEXT   NOT NULL,
    status      TEXT   NOT NULL,
    body        TEXT   NOT NULL,
    parameters  TEXT   NOT NULL,
    content_sid TEXT,
    source      TEXT   NOT NULL,
    external_id TEXT,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    UNIQUE (bot_id, channel, name, language)
);
CREATE UNIQUE INDEX message_templates_sid ON message_templates (bot_id, content_sid)
    WHERE content_sid IS NOT NULL;
