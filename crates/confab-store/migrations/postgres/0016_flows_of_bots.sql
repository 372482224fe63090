-- Flows are a bot's. Versions are numbered per (bot, flow): every bot sees
-- the bundled flows, each publishing them under its own id, so a run's
-- (flow, version) names one definition within its contact's bot. Every
-- version there is belongs to the default bot.
ALTER TABLE flow_versions ADD COLUMN bot_id BIGINT NOT NULL DEFAULT 1;
ALTER TABLE flow_versions ALTER COLUMN bot_id DROP DEFAULT;
ALTER TABLE flow_versions DROP CONSTRAINT flow_versions_pkey;
ALTER TABLE flow_versions ADD PRIMARY KEY (bot_id, flow_id, version);

-- Flows made through the API, with the version live now: publishing a new
-- version or rolling back moves `version`. Bundled and file flows have no
-- row: their live version is their latest.
CREATE TABLE flows (
    bot_id     BIGINT NOT NULL REFERENCES bots(id),
    id         TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (bot_id, id)
);
