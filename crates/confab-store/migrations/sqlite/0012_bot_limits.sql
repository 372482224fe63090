-- A user or key may be limited to some bots: a JSON array of bot ids, or
-- NULL for every bot. Only those with every bot manage users, keys and
-- bots, and only they count as the admins a server must keep.
ALTER TABLE users ADD COLUMN bots TEXT;
ALTER TABLE api_keys ADD COLUMN bots TEXT;
