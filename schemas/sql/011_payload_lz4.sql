-- 011_payload_lz4.sql - the stored payload compressed with LZ4.
--
-- A raw payload of a few kilobytes makes the alert row pass the TOAST
-- threshold (about 2 KB), so PostgreSQL compresses it in the writer's
-- INSERT. LZ4 compresses several times faster than the default pglz: on
-- the reference Elastic alert (2.5 KB) PostgreSQL's CPU per alert drops by
-- about 3 % (median of five interleaved pairs; docs/performance.md,
-- "Payload compression"), and reading a payload back
-- (GET /v1/alerts/{uuid}) decompresses faster too.
--
-- Only the column's setting changes: no row is rewritten, the ALTER is
-- instant on any table size, and rows stored before keep pglz (both are
-- read transparently). A server built without LZ4 support refuses the
-- method; the migration then keeps pglz and says so in a notice.
DO $$
BEGIN
    ALTER TABLE alerts ALTER COLUMN raw_payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'alertmap: this PostgreSQL has no LZ4 support; raw_payload keeps pglz';
END
$$;
