-- 001_init.sql - alerts, indicators, their links and the enrichment queue.
--
-- Applied by store_migrate() inside one transaction (do not add BEGIN/COMMIT
-- here); the version (001) is recorded in schema_migrations.

CREATE TABLE alerts (
    id                   bigserial PRIMARY KEY,
    uuid                 uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    title                text NOT NULL,
    severity             text NOT NULL CHECK (severity IN
                             ('Pending', 'Informational', 'Low', 'Medium', 'High', 'Critical')),
    occurred_at          timestamptz NOT NULL,
    occurred_at_fallback boolean NOT NULL DEFAULT false,
    source_name          text NOT NULL,
    description          text,
    status               text NOT NULL DEFAULT 'Open' CHECK (status IN
                             ('Open', 'Triaging', 'Escalated', 'Closed')),
    enrichment_status    text NOT NULL DEFAULT 'Pending' CHECK (enrichment_status IN
                             ('Pending', 'Enriched', 'Failed')),
    tags                 text[] NOT NULL DEFAULT '{}',
    raw_payload          jsonb NOT NULL,
    detection_rule_ref   text,
    -- optional normalized fields (src_ip ... email_reply_to) as one object
    fields               jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(fields) = 'object'),
    fingerprint          text NOT NULL CHECK (fingerprint <> ''),
    duplicate_count      integer NOT NULL DEFAULT 0 CHECK (duplicate_count >= 0),
    last_duplicate_at    timestamptz,
    ingested_at          timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    triaged_at           timestamptz,
    escalated_at         timestamptz,
    closed_at            timestamptz,
    close_classification text CHECK (close_classification IN
                             ('true_positive', 'false_positive', 'benign_positive', 'undetermined')),
    CONSTRAINT alerts_closed_classified
        CHECK ((status = 'Closed') = (close_classification IS NOT NULL))
);

-- Read API: newest first with keyset (cursor) pagination, alone or filtered.
CREATE INDEX alerts_ingested_idx ON alerts (ingested_at DESC, id DESC);
CREATE INDEX alerts_source_idx   ON alerts (source_name, ingested_at DESC, id DESC);
CREATE INDEX alerts_severity_idx ON alerts (severity, ingested_at DESC, id DESC);
CREATE INDEX alerts_status_idx   ON alerts (status, ingested_at DESC, id DESC);
-- Dedup: the oldest alert with a fingerprint inside the window.
CREATE INDEX alerts_fingerprint_idx ON alerts (fingerprint, ingested_at, id);

CREATE TABLE indicators (
    id         bigserial PRIMARY KEY,
    type       text NOT NULL CHECK (type IN ('ip', 'domain', 'url', 'email', 'hash_md5',
                                             'hash_sha1', 'hash_sha256', 'account')),
    value      text NOT NULL CHECK (value <> ''),
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (type, value)
);

CREATE TABLE alert_indicators (
    alert_id     bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    indicator_id bigint NOT NULL REFERENCES indicators (id),
    source_field text,
    -- 1-based extraction order; the read API returns indicators by position
    position     integer NOT NULL CHECK (position > 0),
    PRIMARY KEY (alert_id, indicator_id),
    UNIQUE (alert_id, position)
);
CREATE INDEX alert_indicators_indicator_idx ON alert_indicators (indicator_id);

CREATE TABLE enrichment_jobs (
    id          bigserial PRIMARY KEY,
    alert_id    bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    status      text NOT NULL DEFAULT 'queued' CHECK (status IN
                    ('queued', 'running', 'done', 'failed')),
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    claimed_by  text,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    claimed_at  timestamptz,
    finished_at timestamptz
);
CREATE INDEX enrichment_jobs_alert_idx ON enrichment_jobs (alert_id);
-- The claim query scans only queued jobs, oldest first.
CREATE INDEX enrichment_jobs_queued_idx ON enrichment_jobs (id) WHERE status = 'queued';

-- Every new job is announced on channel alertmap_enrichment with its id as
-- payload. NOTIFY is transactional: listeners hear it only after COMMIT.
CREATE FUNCTION enrichment_jobs_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('alertmap_enrichment', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER enrichment_jobs_notify AFTER INSERT ON enrichment_jobs
    FOR EACH ROW EXECUTE FUNCTION enrichment_jobs_notify();
