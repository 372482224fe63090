-- Unread messages are those after the last one marked read, by id: a time
-- stamp cannot tell apart a message that arrives in the millisecond of the
-- read mark.
ALTER TABLE contacts ADD COLUMN read_up_to_id BIGINT NOT NULL DEFAULT 0;
