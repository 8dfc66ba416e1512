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
