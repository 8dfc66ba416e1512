-- 002_api_keys.sql - API keys (see docs/security.md) and the key that last
-- changed an alert.
--
-- Applied by store_migrate() inside one transaction (do not add BEGIN/COMMIT
-- here); the version (002) is recorded in schema_migrations.
--
-- A key is shown once, at creation; the table keeps only its lookup prefix
-- and HMAC-SHA256(pepper, whole token). Rows are never deleted: a revoked
-- key keeps its row so that alerts.updated_by_key and audits stay readable.

CREATE TABLE api_keys (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL CHECK (name <> '' AND length(name) <= 200),
    -- the 8 base32 characters after "amk_" in the token; the only part of
    -- a token that is stored in clear
    prefix       text NOT NULL UNIQUE CHECK (prefix ~ '^[a-z2-7]{8}$'),
    -- HMAC-SHA256 of the whole token under the deployment's pepper
    hash         bytea NOT NULL CHECK (length(hash) = 32),
    -- which pepper made the hash: the first 8 bytes of HMAC(pepper, "alertmap-pepper-id")
    -- as hex, so that a pepper mismatch is reported as such and not as a bad key
    pepper_id    text NOT NULL CHECK (pepper_id ~ '^[0-9a-f]{16}$'),
    scopes       text[] NOT NULL CHECK (cardinality(scopes) > 0 AND
                     scopes <@ ARRAY['ingest', 'read', 'write', 'admin']::text[]),
    -- NULL: every source; otherwise the only sources this key may ingest to
    sources      text[] CHECK (sources IS NULL OR cardinality(sources) > 0),
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- The "key" column on alerts: which key made the last PATCH (NULL: none, or
-- a change made before keys existed).
ALTER TABLE alerts ADD COLUMN updated_by_key bigint REFERENCES api_keys (id) ON DELETE SET NULL;
