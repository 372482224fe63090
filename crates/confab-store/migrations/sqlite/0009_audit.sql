-- Who changed what, and when: every change to users and keys (and, later,
-- bots, channels, flows and triggers), with the record before and after,
-- never a secret.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY,
    at_ms    BIGINT  NOT NULL,
    actor    TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    target   TEXT    NOT NULL,
    before   TEXT,
    after    TEXT
);
