-- 010_fingerprint_day.sql - the dedup index led by the ingest day.
--
-- Applied by store_migrate() inside one transaction. It builds an index over
-- the whole alerts table while holding its lock: on a large installation
-- the start-up that applies it takes as long as that build (about a minute
-- per few million alerts on a small machine), and ingest waits meanwhile.
--
-- The writer's dedup lookup (storage/store_internal.h, STORE_DEDUP_LOOKUP)
-- asks for the oldest alert with a fingerprint inside the window (24 h by
-- default). An index led by the fingerprint (001's alerts_fingerprint_idx)
-- serves it, but every insert lands on a random leaf page: fingerprints are
-- SHA-256 hashes. Once the index outgrows memory, each alert reads and
-- dirties a leaf no recent alert touched, and writes it whole to the WAL
-- after each checkpoint (docs/performance.md, "Growth": about 7 KB of WAL
-- per alert at a million stored). Led by the UTC day of ingested_at, the
-- inserts of a day go to that day's part of the index, which stays as small
-- as one day of alerts however long the table grows; the lookup probes the
-- window's days (two for 24 h).
CREATE INDEX alerts_fingerprint_day_idx
    ON alerts (((ingested_at AT TIME ZONE 'UTC')::date), fingerprint, ingested_at, id);
DROP INDEX alerts_fingerprint_idx;
