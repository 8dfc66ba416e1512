-- 003_lean.sql - what the set-based writer needs from the schema.
--
-- Applied by store_migrate() inside one transaction (no BEGIN/COMMIT here).

-- One NOTIFY per statement instead of one per row: the writer inserts a
-- whole batch's jobs with one statement, and a listener only needs to know
-- that there is work (it claims queued jobs with FOR UPDATE SKIP LOCKED).
-- The payload is the highest job id the statement inserted.
DROP TRIGGER enrichment_jobs_notify ON enrichment_jobs;
DROP FUNCTION enrichment_jobs_notify();

CREATE FUNCTION enrichment_jobs_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    top bigint;
BEGIN
    SELECT max(id) INTO top FROM new_jobs;
    IF top IS NOT NULL THEN
        PERFORM pg_notify('alertmap_enrichment', top::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER enrichment_jobs_notify AFTER INSERT ON enrichment_jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION enrichment_jobs_notify();

-- The foreign keys of links and jobs cost a quarter of the database's CPU
-- per ingested alert (measured with tests/storage/bench_writer: 11 lookups
-- and row locks per alert with five indicators; docs/performance.md) and
-- buy nothing at insert time: the writer inserts an alert, its links and
-- its job in one statement, from ids it has just read. What they did buy,
-- the cascade when alerts are deleted, is kept by a statement-level
-- trigger that costs nothing at insert time. Indicators are never deleted.
ALTER TABLE alert_indicators DROP CONSTRAINT alert_indicators_alert_id_fkey;
ALTER TABLE alert_indicators DROP CONSTRAINT alert_indicators_indicator_id_fkey;
ALTER TABLE enrichment_jobs DROP CONSTRAINT enrichment_jobs_alert_id_fkey;

CREATE FUNCTION alerts_delete_dependents() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM alert_indicators WHERE alert_id IN (SELECT id FROM old_alerts);
    DELETE FROM enrichment_jobs WHERE alert_id IN (SELECT id FROM old_alerts);
    RETURN NULL;
END
$$;

CREATE TRIGGER alerts_delete_dependents AFTER DELETE ON alerts
    REFERENCING OLD TABLE AS old_alerts
    FOR EACH STATEMENT EXECUTE FUNCTION alerts_delete_dependents();

-- UNIQUE (alert_id, position) is a second index on the largest table (one
-- row per link) that no query uses: the primary key (alert_id,
-- indicator_id) finds an alert's links, which the read API then orders by
-- position; the writer numbers positions 1..n itself.
ALTER TABLE alert_indicators DROP CONSTRAINT alert_indicators_alert_id_position_key;

-- raw_payload as json: the text as received, validated but not converted.
-- jsonb cost 7 % more database CPU per alert (bench_writer, a 2.4 KB Elastic
-- alert) and bought nothing the read API uses: no query looks inside the
-- payload, and GET returns it whole. json keeps it byte for byte (jsonb
-- reorders keys). The writer still refuses \u0000 in a payload, so that
-- raw_payload::jsonb works on every stored row. The writer reads the
-- column's type when it connects, so dropping this statement is all it takes
-- to keep jsonb. (Rewrites the table: on a large existing table run it in a
-- maintenance window.)
ALTER TABLE alerts ALTER COLUMN raw_payload TYPE json USING raw_payload::json;
