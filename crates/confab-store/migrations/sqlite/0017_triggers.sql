-- A bot's triggers made through the API: keyword, event or schedule. `spec`
-- is the definition as JSON; a schedule's next due time is a column, so
-- that due schedules are found by index and claimed by moving it.
CREATE TABLE triggers (
    id          INTEGER PRIMARY KEY,
    bot_id      BIGINT  NOT NULL REFERENCES bots(id),
    name        TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    flow_id     TEXT    NOT NULL,
    active      INTEGER NOT NULL DEFAULT 1,
    spec        TEXT    NOT NULL,
    next_due_ms BIGINT,
    created_ms  BIGINT  NOT NULL,
    updated_ms  BIGINT  NOT NULL
);
CREATE INDEX triggers_of_bot ON triggers (bot_id, id);
CREATE INDEX triggers_due ON triggers (next_due_ms) WHERE next_due_ms IS NOT NULL;

-- Each firing of a trigger: what matched, the run it started or why none.
-- `once_key` makes an event fire once however often it is seen.
CREATE TABLE trigger_firings (
    id         INTEGER PRIMARY KEY,
    trigger_id BIGINT NOT NULL,
    bot_id     BIGINT NOT NULL,
    at_ms      BIGINT NOT NULL,
    contact_id BIGINT,
    matched    TEXT   NOT NULL,
    run_id     BIGINT,
    error      TEXT,
    once_key   TEXT,
    UNIQUE (trigger_id, once_key)
);
CREATE INDEX trigger_firings_of ON trigger_firings (trigger_id, id);
CREATE INDEX trigger_firings_at ON trigger_firings (bot_id, at_ms);

-- A schedule's due time being worked through its audience, a page of
-- contacts per transaction: `cursor` is the last contact id (or list
-- index) done. One row per (trigger, due time): it fires once.
CREATE TABLE schedule_firings (
    id         INTEGER PRIMARY KEY,
    trigger_id BIGINT NOT NULL,
    bot_id     BIGINT NOT NULL,
    due_ms     BIGINT NOT NULL,
    cursor     BIGINT NOT NULL DEFAULT 0,
    started    BIGINT NOT NULL DEFAULT 0,
    skipped    BIGINT NOT NULL DEFAULT 0,
    done_ms    BIGINT,
    created_ms BIGINT NOT NULL,
    UNIQUE (trigger_id, due_ms)
);
