-- Flows are a bot's. Versions are numbered per (bot, flow): every bot sees
-- the bundled flows, each publishing them under its own id, so a run's
-- (flow, version) names one definition within its contact's bot. Every
-- version there is belongs to the default bot.
CREATE TABLE flow_versions_of_bots (
    bot_id     BIGINT NOT NULL,
    flow_id    TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    definition TEXT   NOT NULL,
    hash       TEXT   NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (bot_id, flow_id, version)
);
INSERT INTO flow_versions_of_bots (bot_id, flow_id, version, definition, hash, created_ms)
    SELECT 1, flow_id, version, definition, hash, created_ms FROM flow_versions;
DROP TABLE flow_versions;
ALTER TABLE flow_versions_of_bots RENAME TO flow_versions;

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
