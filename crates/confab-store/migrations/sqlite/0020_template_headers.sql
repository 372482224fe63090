-- A template's header, when it has one, as JSON: its format (TEXT, IMAGE,
-- VIDEO, DOCUMENT, LOCATION) and a TEXT header's placeholders. A send must
-- give the header's parameters as Meta lists them.
ALTER TABLE message_templates ADD COLUMN header TEXT;
