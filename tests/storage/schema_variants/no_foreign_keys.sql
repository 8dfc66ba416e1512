-- without the foreign keys of links and jobs
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT conrelid::regclass AS t, conname FROM pg_constraint
             WHERE contype = 'f' AND conrelid IN ('alert_indicators'::regclass,
                   'enrichment_jobs'::regclass) LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.t, r.conname);
    END LOOP;
END $$;
