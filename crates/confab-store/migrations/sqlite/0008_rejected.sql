-- What a provider sent, signed, that could not be used: kept with the
-- reason rather than dropped, since the provider will not send it again.
CREATE TABLE rejected_inbound (
    id                  INTEGER PRIMARY KEY,
    channel             TEXT    NOT NULL,
    event               TEXT    NOT NULL,
    provider_message_id TEXT,
    reason              TEXT    NOT NULL,
    payload             TEXT    NOT NULL,
    received_ms         BIGINT  NOT NULL
);
-- A redelivery is kept once.
CREATE UNIQUE INDEX rejected_inbound_provider_id
    ON rejected_inbound (channel, event, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
