-- the dedup index on fingerprint alone (btree)
DROP INDEX alerts_fingerprint_day_idx;
CREATE INDEX alerts_fingerprint_only ON alerts (fingerprint);
