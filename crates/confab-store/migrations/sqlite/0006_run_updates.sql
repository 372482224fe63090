-- A run changes at every step of a conversation. With `updated_ms` in an
-- index, each step also moved the run's entry in that index: another page
-- written per step. Idle runs are now found among the waiting ones.
DROP INDEX runs_idle;
CREATE INDEX runs_waiting ON runs (id) WHERE status = 'waiting_input';
