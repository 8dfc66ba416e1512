-- without the CHECK constraints of alerts, indicators, links and jobs
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT conrelid::regclass AS t, conname FROM pg_constraint
             WHERE contype = 'c' AND conrelid IN ('alerts'::regclass, 'indicators'::regclass,
                   'alert_indicators'::regclass, 'enrichment_jobs'::regclass) LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.t, r.conname);
    END LOOP;
END $$;
