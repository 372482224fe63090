-- What an inbound message was answered with (TwiML), for redeliveries. A
-- narrow table of its own: filling it is an insert, where updating a column
-- of the wide, much-indexed messages table rewrote every index.
CREATE TABLE message_responses (
    message_id BIGINT NOT NULL PRIMARY KEY REFERENCES messages(id),
    response   TEXT   NOT NULL
);
ALTER TABLE messages DROP COLUMN response;
