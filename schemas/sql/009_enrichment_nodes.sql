-- 009_enrichment_nodes.sql - what the running enrichment workers can do,
-- so that ingest can settle an alert no worker has work for.
--
-- Applied by store_migrate() inside one transaction.
--
-- Every process that runs enrichment worker threads (alertmapd with
-- --workers N > 0, or --role worker) keeps one row here: the indicator types
-- its providers answer and whether it has dispatch targets. It writes the row
-- at start-up and after every reload, refreshes seen_at every 15 s from a
-- thread of its own, and deletes it when it stops cleanly. A row whose
-- seen_at is older than 60 s belongs to a process that died and is ignored.
--
-- The writers read the union of the live rows (every 2 s). An alert none of
-- whose indicators has a type in that union, while no live row has targets,
-- is written Enriched with verdict Unknown at ingest and gets no job: the
-- worker would have ended it the same way without a lookup. With no live
-- row at all (no worker anywhere) every alert gets its job, which waits for
-- a worker as before. docs/enrichment.md, "Alerts settled at ingest".
CREATE TABLE enrichment_nodes (
    node        text PRIMARY KEY,
    work_types  text[] NOT NULL DEFAULT '{}',
    has_targets boolean NOT NULL DEFAULT false,
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now()
);
