-- raw_payload as jsonb (parsed, binary) again instead of 003_lean.sql's json
ALTER TABLE alerts ALTER COLUMN raw_payload TYPE jsonb USING raw_payload::jsonb;
