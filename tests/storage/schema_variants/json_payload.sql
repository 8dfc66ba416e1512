-- raw_payload as json (the text as sent) instead of jsonb (parsed, binary)
ALTER TABLE alerts ALTER COLUMN raw_payload TYPE json USING raw_payload::json;
