-- the dedup index as a hash index on fingerprint alone
DROP INDEX alerts_fingerprint_idx;
CREATE INDEX alerts_fingerprint_hash ON alerts USING hash (fingerprint);
