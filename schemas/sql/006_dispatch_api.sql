-- 006_dispatch_api.sql - what the deliveries API and the queue metrics need
-- (docs/dispatch.md "Deliveries API", docs/operations.md "Metrics").
--
-- Applied by store_migrate() inside one transaction.

-- POST /v1/alerts/{uuid}/deliveries/{id}/retry puts a failed delivery back
-- to pending with a fresh count of attempts; these keep what the reset
-- would otherwise erase: how often it was retried, when last, and by which
-- API key (as alerts.updated_by_key does for PATCH).
ALTER TABLE dispatch_deliveries
    ADD COLUMN retries        integer NOT NULL DEFAULT 0 CHECK (retries >= 0),
    ADD COLUMN retried_at     timestamptz,
    ADD COLUMN retried_by_key bigint REFERENCES api_keys (id) ON DELETE SET NULL;

-- GET /metrics shows the jobs and deliveries of every state. The states
-- rows pass through (queued, running; pending, sending, failed deliveries)
-- are few and counted live, each from a partial index of that state
-- (enrichment_jobs_queued_idx, enrichment_jobs_lease_idx,
-- dispatch_deliveries_due_idx, dispatch_deliveries_lease_idx and the one
-- below). The final states (done and failed jobs, delivered deliveries)
-- keep every row and grow with the alerts; counting them would cost a scan
-- of millions of rows, so a statement trigger tallies the rows each
-- statement moves into or out of such a state. The tally is spread over 16 slots (the session's backend
-- pid modulo 16): worker connections finishing jobs at the same time
-- rarely wait for one another's row. Inserts are not watched (jobs and
-- deliveries are inserted queued / pending), so ingest pays nothing.
CREATE TABLE status_tallies (
    tbl    text    NOT NULL,
    status text    NOT NULL,
    slot   integer NOT NULL,
    n      bigint  NOT NULL,
    PRIMARY KEY (tbl, status, slot)
);

CREATE INDEX dispatch_deliveries_failed_idx ON dispatch_deliveries (id) WHERE status = 'failed';

-- TG_ARGV: the tallied states of the table. A statement-level trigger
-- over the statement's transition tables: a worker ends a batch of jobs in
-- one statement, and that statement makes one upsert per state it touched,
-- not one per row (a per-row trigger cost the database a plpgsql call and
-- an upsert of the same tally row for every finished job).
CREATE FUNCTION status_tally() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    s integer := pg_backend_pid() % 16;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO status_tallies AS t (tbl, status, slot, n)
            SELECT TG_TABLE_NAME, d.status, s, sum(d.n)
              FROM (SELECT o.status, -1 AS n
                      FROM old_rows o JOIN new_rows w ON w.id = o.id
                     WHERE o.status IS DISTINCT FROM w.status AND o.status = ANY (TG_ARGV)
                    UNION ALL
                    SELECT w.status, 1
                      FROM old_rows o JOIN new_rows w ON w.id = o.id
                     WHERE o.status IS DISTINCT FROM w.status AND w.status = ANY (TG_ARGV)) d
             GROUP BY d.status HAVING sum(d.n) <> 0
            ON CONFLICT (tbl, status, slot) DO UPDATE SET n = t.n + excluded.n;
    ELSE
        INSERT INTO status_tallies AS t (tbl, status, slot, n)
            SELECT TG_TABLE_NAME, o.status, s, -count(*)
              FROM old_rows o WHERE o.status = ANY (TG_ARGV) GROUP BY o.status
            ON CONFLICT (tbl, status, slot) DO UPDATE SET n = t.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER enrichment_jobs_tally AFTER UPDATE ON enrichment_jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION status_tally('done', 'failed');
CREATE TRIGGER enrichment_jobs_tally_delete AFTER DELETE ON enrichment_jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION status_tally('done', 'failed');
CREATE TRIGGER dispatch_deliveries_tally AFTER UPDATE ON dispatch_deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION status_tally('delivered');
CREATE TRIGGER dispatch_deliveries_tally_delete AFTER DELETE ON dispatch_deliveries
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION status_tally('delivered');

-- The rows already there. CREATE TRIGGER locked both tables against
-- writes until this transaction commits, so nothing changes between the
-- count and the first tallied update.
INSERT INTO status_tallies
    SELECT 'enrichment_jobs', status, 0, count(*) FROM enrichment_jobs
    WHERE status IN ('done', 'failed') GROUP BY status;
INSERT INTO status_tallies
    SELECT 'dispatch_deliveries', status, 0, count(*) FROM dispatch_deliveries
    WHERE status = 'delivered' GROUP BY status;
