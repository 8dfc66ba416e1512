-- 012_alerts_triage_idx.sql - the index of the triage view: one source, one
-- severity, one status, newest first.
--
-- The list of GET /v1/alerts with all three filters read its page from one
-- filter's index and checked the others, or, for a combination the
-- statistics called rare, through a bitmap of two filters and a sort of
-- every match: with five million alerts stored, p99 62 and 153 ms in two
-- runs for sentinel + Critical + Open, 0.1 % of the alerts spread over two
-- months (docs/performance.md, "Growth"). With this index the page reads
-- its limit + 1 entries and their rows (storage/alert_list.c). It costs
-- one more index entry per alert.
--
-- Applied by store_migrate() inside one transaction: it builds the index
-- over the whole table while holding its lock, so on a large installation
-- the start-up that applies it takes as long as that build, and ingest
-- waits meanwhile (010_fingerprint_day.sql is the same).
CREATE INDEX alerts_triage_idx
    ON alerts (source_name, severity, status, ingested_at DESC, id DESC);
