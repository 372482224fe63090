-- Flows, runs, their events, and collection records.

-- Every distinct definition of a flow gets a version; runs pin the version
-- they started on, so publishing a new one does not break a conversation.
CREATE TABLE flow_versions (
    flow_id    TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    definition TEXT   NOT NULL,
    hash       TEXT   NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (flow_id, version)
);

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    contact_id   BIGINT  NOT NULL REFERENCES contacts(id),
    flow_id      TEXT    NOT NULL,
    flow_version BIGINT  NOT NULL,
    status       TEXT    NOT NULL,
    node         TEXT,
    state        TEXT    NOT NULL,
    created_ms   BIGINT  NOT NULL,
    updated_ms   BIGINT  NOT NULL
);
CREATE INDEX runs_contact ON runs (contact_id, id);
CREATE INDEX runs_flow ON runs (flow_id, status);
CREATE INDEX runs_idle ON runs (status, updated_ms);

CREATE TABLE run_events (
    id         INTEGER PRIMARY KEY,
    run_id     BIGINT  NOT NULL REFERENCES runs(id),
    event      TEXT    NOT NULL,
    created_ms BIGINT  NOT NULL
);
CREATE INDEX run_events_run ON run_events (run_id, id);

CREATE TABLE records (
    id         INTEGER PRIMARY KEY,
    collection TEXT    NOT NULL,
    contact_id BIGINT  REFERENCES contacts(id),
    data       TEXT    NOT NULL,
    created_ms BIGINT  NOT NULL,
    updated_ms BIGINT  NOT NULL
);
CREATE INDEX records_collection ON records (collection, id);
CREATE INDEX records_contact ON records (contact_id, id);

-- Timers carry the token the run waits for.
ALTER TABLE jobs ADD COLUMN payload TEXT;
