-- 004_deliveries.sql - replay protection (storage/delivery.c,
-- docs/security.md "Replay window and idempotency").
--
-- One row per delivery a sender named, by the mapping's delivery-id header
-- (X-GitHub-Delivery, webhook-id, ...) or by an Idempotency-Key request
-- header: a claim while the first request with that id is being ingested
-- (completed_at NULL), then the answer it got (status and body), which every
-- later request with the same id inside the replay window gets again.
-- claim_token tells the claim of one request from a takeover by a retry.
CREATE TABLE deliveries (
    source_name  text        NOT NULL,
    delivery_key text        NOT NULL CHECK (length(delivery_key) BETWEEN 3 AND 300),
    claim_token  text        NOT NULL,
    claimed_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    status       integer,
    answer       text,
    PRIMARY KEY (source_name, delivery_key)
);

-- the periodic clean-up deletes rows older than the window
CREATE INDEX deliveries_claimed_at ON deliveries (claimed_at);
