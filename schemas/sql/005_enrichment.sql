-- 005_enrichment.sql - what the enrichment worker needs: job leases and
-- retry times, the shared result cache, and the verdicts of indicators and
-- alerts (docs/enrichment.md).
--
-- Applied by store_migrate() inside one transaction.

-- A claimed job is 'running' with a lease; a worker that dies leaves the
-- lease to expire and the next claim takes the job again. A job waiting for
-- a retry is 'queued' with next_attempt_at in the future.
ALTER TABLE enrichment_jobs
    ADD COLUMN lease_until     timestamptz,
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX enrichment_jobs_lease_idx ON enrichment_jobs (lease_until) WHERE status = 'running';

-- One row per (provider, type, value), shared by every alert that holds the
-- indicator: the latest answer of the provider and until when it is fresh.
-- outcome 'failed' rows record the last failure for display and are never
-- fresh (expires_at = fetched_at).
CREATE TABLE enrichment_results (
    provider   text NOT NULL,
    type       text NOT NULL,
    value      text NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('found', 'not_found', 'failed')),
    verdict    text CHECK (verdict IN ('Malicious', 'Suspicious', 'Benign', 'Unknown')),
    fields     jsonb NOT NULL DEFAULT '{}',
    error      text,
    fetched_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (type, value, provider)
);

-- The verdicts live on the alert row: the indicators table is shared by
-- every alert and written by ingest, and locking its rows here as well
-- would deadlock with ingest's upserts. indicator_verdicts maps
-- "type:value" to the indicator's verdict as this alert's enrichment saw it.
ALTER TABLE alerts
    ADD COLUMN verdict          text CHECK (verdict IN ('Malicious', 'Suspicious', 'Benign',
                                                        'Unknown')),
    ADD COLUMN indicator_verdicts jsonb NOT NULL DEFAULT '{}'
                                CHECK (jsonb_typeof(indicator_verdicts) = 'object'),
    ADD COLUMN enrichment_error text,
    ADD COLUMN enriched_at      timestamptz;

-- Agent dispatch (docs/dispatch.md): one row per (alert, target). A row is
-- 'pending' until due, 'sending' while a worker holds its lease, then
-- 'delivered' (a 2xx answer) or 'failed' after the target's last attempt.
CREATE TABLE dispatch_deliveries (
    id              bigserial PRIMARY KEY,
    alert_id        bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    target          text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN
                        ('pending', 'sending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    claimed_by      text,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (alert_id, target)
);
CREATE INDEX dispatch_deliveries_due_idx ON dispatch_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX dispatch_deliveries_lease_idx ON dispatch_deliveries (lease_until) WHERE status = 'sending';
