-- 008_jobs_claim.sql - the enrichment claim stays an index probe however
-- many finished jobs the table holds.
--
-- Applied by store_migrate() inside one transaction.
--
-- The worker claims the lowest job id that is queued and due, or running
-- with an expired lease (storage/enrich.c), ORDER BY id LIMIT 1 with an OR
-- of the two. Neither partial index (queued; running by lease) serves that
-- OR in id order, so PostgreSQL walks the primary key from the oldest job
-- and filters: with five million alerts stored (their jobs done) every
-- claim read a million finished jobs, 20,000 buffers and 0.9 s, and the
-- workers took the CPU the writers needed (docs/performance.md, "Growth").
-- This index holds only the jobs the claim can take, in id order, and its
-- predicate is implied by both arms of the OR.
CREATE INDEX enrichment_jobs_open_idx ON enrichment_jobs (id)
    WHERE status IN ('queued', 'running');

-- The dispatch claim has the same shape (pending and due, or sending with
-- an expired lease, lowest id first) over a table that keeps every
-- delivered row.
CREATE INDEX dispatch_deliveries_open_idx ON dispatch_deliveries (id)
    WHERE status IN ('pending', 'sending');
