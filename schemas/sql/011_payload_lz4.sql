-- 011_payload_lz4.sql - alert rows compressed with LZ4.
--
-- A raw payload of a few kilobytes makes the alert row pass the TOAST
-- threshold (about 2 KB), so PostgreSQL compresses in the writer's INSERT:
-- the payload first, and then, while the row is still over the threshold,
-- every other compressible column in turn (indicator_verdicts, fields, the
-- description, the tags, ...) before it moves the payload to the TOAST
-- table. LZ4 compresses several times faster than the default pglz, so
-- every column of alerts that can be compressed uses it
-- (docs/performance.md, "Payload compression"); reading a payload back
-- (GET /v1/alerts/{uuid}) decompresses faster too.
--
-- Only the columns' setting changes: no row is rewritten, the ALTER is
-- instant on any table size, and rows stored before keep pglz (both are
-- read transparently). A server built without LZ4 support refuses the
-- method; the migration then keeps pglz and says so in a notice.
DO $$
DECLARE
    col name;
BEGIN
    FOR col IN
        SELECT a.attname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
        WHERE a.attrelid = 'alerts'::regclass AND a.attnum > 0 AND NOT a.attisdropped
          AND t.typstorage <> 'p'
        ORDER BY a.attnum
    LOOP
        EXECUTE format('ALTER TABLE alerts ALTER COLUMN %I SET COMPRESSION lz4', col);
    END LOOP;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'alertmap: this PostgreSQL has no LZ4 support; alerts keeps pglz';
END
$$;
