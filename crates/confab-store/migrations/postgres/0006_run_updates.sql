-- A run changes at every step of a conversation. With `updated_ms` in an
-- index, no step could update its row in place (a HOT update): each added
-- an entry to every index of the table, and finding a contact's latest run
-- walked past the dead ones (10-35 ms a batch under load). Idle runs are
-- now found among the waiting ones, and pages keep room for a row's next
-- version.
DROP INDEX runs_idle;
CREATE INDEX runs_waiting ON runs (id) WHERE status = 'waiting_input';
ALTER TABLE runs SET (fillfactor = 70);
