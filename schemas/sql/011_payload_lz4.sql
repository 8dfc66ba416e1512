-- 011_payload_lz4.sql - the stored payload compressed with LZ4.
--
-- A raw payload of a few kilobytes makes the alert row pass the TOAST
-- threshold (about 2 KB), so PostgreSQL compresses it in the writer's
-- INSERT. With the default method (pglz) that compression was the largest
-- single cost of the statement: on the reference Elastic alert (2.5 KB),
-- LZ4 cuts PostgreSQL's CPU per alert by 12-20 % and raises the end-to-end
-- rate by 8-14 % (docs/performance.md, "Payload compression"). Reading a
-- payload back (GET /v1/alerts/{uuid}) decompresses faster too.
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
