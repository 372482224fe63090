-- A contact is a phone number of a bot: the same number writing to two bots
-- is two contacts, each with its own window, opt-out and history. Every
-- contact there is belongs to the default bot.
ALTER TABLE contacts ADD COLUMN bot_id BIGINT NOT NULL DEFAULT 1 REFERENCES bots(id);
ALTER TABLE contacts DROP CONSTRAINT contacts_phone_key;
ALTER TABLE contacts ADD CONSTRAINT contacts_bot_phone UNIQUE (bot_id, phone);

-- confab_arrival (migration 0007) finds a batch's contacts by bot and
-- phone: `phones` is now a JSON array of [phone, name, bot id], and each
-- contact comes with its bot id last.
CREATE OR REPLACE FUNCTION confab_arrival(phones TEXT, setting_key TEXT)
RETURNS TABLE (setting_value TEXT, contact_rows TEXT)
LANGUAGE plpgsql AS $$
DECLARE
    wanted_phones TEXT[];
    wanted_bots BIGINT[];
    ids BIGINT[];
    latest BIGINT[];
BEGIN
    SELECT array_agg(j.value->>0 ORDER BY j.n), array_agg(CAST(j.value->>2 AS BIGINT) ORDER BY j.n)
      INTO wanted_phones, wanted_bots
      FROM json_array_elements(CAST(phones AS JSON)) WITH ORDINALITY AS j(value, n);
    -- In id order (unnest keeps it): two writers locking the same
    -- contacts cannot deadlock.
    ids := ARRAY(SELECT c.id FROM contacts c
                   JOIN unnest(wanted_bots, wanted_phones) AS w(bot_id, phone)
                     ON c.bot_id = w.bot_id AND c.phone = w.phone
                  ORDER BY c.id);
    PERFORM pg_advisory_xact_lock(x) FROM unnest(ids) AS x;
    latest := ARRAY(SELECT MAX(m.id) FROM runs m WHERE m.contact_id = ANY(ids) GROUP BY m.contact_id);
    RETURN QUERY
    SELECT (SELECT s.value FROM settings s WHERE s.key = setting_key),
           CAST(COALESCE(json_agg(json_build_array(
               c.id, c.phone, c.profile_name, c.blocked, c.opted_out, c.refused,
               r.id, r.flow_id, r.flow_version, r.status, r.node, r.state,
               r.created_ms, r.updated_ms, c.bot_id)), '[]') AS TEXT)
      FROM contacts c
      LEFT JOIN runs r ON r.contact_id = c.id AND r.id = ANY(latest)
     WHERE c.id = ANY(ids);
END
$$;
