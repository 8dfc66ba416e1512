-- 008_jobs_claim.sql - the dispatch claim stays an index probe however
-- many delivered rows the table holds.
--
-- Applied by store_migrate() inside one transaction.
--
-- The enrichment claim (storage/enrich.c, CLAIM_DUE) reads its two arms
-- separately, queued jobs in id order from enrichment_jobs_queued_idx and
-- expired leases from enrichment_jobs_lease_idx, so it needs no index of
-- its own (an extra index on jobs would cost every ingest an entry).
--
-- The dispatch claim takes the lowest id that is pending and due, or
-- sending with an expired lease, ORDER BY id LIMIT 1 with an OR of the two.
-- Neither partial index serves that OR in id order, so PostgreSQL walks
-- the primary key from the oldest delivery and filters: with millions of
-- delivered rows kept, every claim would read all of them. This index holds
-- only the rows the claim can take, in id order, and its predicate is
-- implied by both arms of the OR.
CREATE INDEX dispatch_deliveries_open_idx ON dispatch_deliveries (id)
    WHERE status IN ('pending', 'sending');
