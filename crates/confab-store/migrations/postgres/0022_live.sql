-- Live consoles learn which conversations changed from the database, so
-- every writer on every server is seen: a new message or a status change
-- NOTIFYs channel confab_live with 'bot:contact' when its transaction
-- commits (one notification per distinct payload and transaction).
CREATE FUNCTION confab_live() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('confab_live',
        (SELECT c.bot_id FROM contacts c WHERE c.id = NEW.contact_id)::TEXT || ':' || NEW.contact_id::TEXT);
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_live_insert AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION confab_live();
CREATE TRIGGER messages_live_status AFTER UPDATE OF status ON messages
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION confab_live();
