-- A broadcast: one message to an audience, queued at once; its messages'
-- ids are kept so its progress is their statuses.
CREATE TABLE broadcasts (
    id             BIGSERIAL PRIMARY KEY,
    bot_id         BIGINT  NOT NULL REFERENCES bots(id),
    audience       TEXT    NOT NULL,
    content        TEXT    NOT NULL,
    message_ids    TEXT    NOT NULL,
    rejected       BIGINT  NOT NULL,
    outside_window BIGINT  NOT NULL,
    created_by     TEXT    NOT NULL,
    created_ms     BIGINT  NOT NULL
);
CREATE INDEX broadcasts_bot ON broadcasts (bot_id, id);
