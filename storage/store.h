/*
 * storage/store.h - PostgreSQL storage of alertmap (libpq).
 *
 * - store_migrate(): applies schemas/sql/NNN_*.sql in order inside one
 *   transaction guarded by an advisory lock, recording versions in
 *   schema_migrations. Idempotent; concurrent callers are safe.
 * - A store owns several writer threads, each with its own connection
 *   (group commit: the alerts of many concurrent requests go into one
 *   transaction; each request is completed only after that transaction
 *   commits), one more writer for heavy requests (its own lane, so that a
 *   huge request never holds the others' batches) and a few reader threads
 *   that run the read API queries. Callers never block on the database: every call
 *   here only queues work; completion callbacks run on a store thread.
 * - Reconnects by itself after the database restarts.
 *
 * Depends on libpq, jansson and common/ only.
 */
#ifndef STORE_H
#define STORE_H

#include "am.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct store store_t;

typedef struct store_options {
    const char *conninfo;   /* libpq connection string or URL */
    int64_t dedup_window_s; /* seconds; 0 (or negative) disables dedup */
    int readers;            /* reader threads, default 2 */
    int writers;            /* writer threads (connections), default one per core */
    int max_batch;          /* alerts per group commit, default 256 */
    /* while another writer is busy with its batch, an idle writer that
     * would take fewer than max_batch alerts waits up to this long for
     * more (0: never waits); fewer, larger transactions under load */
    int64_t linger_us;
    /* indicators per group commit, default 4096; a request with more
     * alerts than max_batch or more indicators than this is heavy: it runs
     * alone, in its own transaction, on the heavy lane */
    int max_batch_indicators;
    /* requests waiting per queue (ingest, queries) before store_ingest() /
     * store_query() refuse with AM_ELIMIT (answer 503); default 10000 */
    int max_queue;
} store_options_t;

/* Every connection the writer and the readers open from now on runs
 * "SET statement_timeout" to ms (0: the server's default). Start-up only. */
void store_set_statement_timeout(int ms);

/* Applies the migrations found in sql_dir (files NNN_name.sql). Blocking;
 * for start-up only; uses its own connection, so concurrent calls (threads or
 * processes) are safe. Returns 0, or AM_EUNAVAIL (cannot connect) / AM_EINVAL
 * (unreadable directory, two files with one version, or a migration failed:
 * err then reads "file:line:col: message"), with err filled (err may be
 * NULL). Nothing is applied unless everything is. */
int store_migrate(const char *conninfo, const char *sql_dir, char *err, size_t errlen);

/* Starts the threads (opt is copied, conninfo too). Does not require the
 * database to be up (requests then fail with STORE_UNAVAILABLE until it is).
 * Returns a store the caller frees with store_free(), or NULL when opt or
 * opt->conninfo is NULL or a thread cannot be started (heap exhaustion
 * aborts). */
store_t *store_new(const store_options_t *opt);
/* Stops accepting, finishes everything queued (commits or fails it, calling
 * every callback), joins the threads, frees. NULL is a no-op. Call it once,
 * from a thread of the caller (never from a store callback), after the
 * last store_ingest()/store_query() has returned. */
void store_free(store_t *s);

/* ---- ingest (writer) ------------------------------------------------------ */

typedef struct store_indicator {
    const char *type;
    const char *value;
    const char *source_field;
} store_indicator_t;

/* One normalized alert to insert. All strings are copied by store_ingest(). */
typedef struct store_alert {
    const char *source_name;
    const char *title;
    const char *severity;
    int64_t occurred_at_us;
    bool occurred_at_fallback;
    const char *description;        /* may be NULL */
    const char *detection_rule_ref; /* may be NULL */
    const char *const *tags;
    size_t ntags;
    const char *fingerprint;
    const char *raw_payload; /* JSON text */
    /* optional normalized fields as a JSON object text, e.g. {"src_ip":"…"}; may be NULL */
    const char *fields_json;
    const store_indicator_t *indicators;
    size_t nindicators;
} store_alert_t;

typedef enum {
    STORE_OK = 0,
    STORE_UNAVAILABLE, /* database unreachable or the batch failed: answer 503;
                        * nothing of the request was written, a retry is safe */
    STORE_SHUTTING_DOWN,
    /* The database refused this request's own data (e.g. a payload string
     * with \u0000, which jsonb cannot hold, or invalid UTF-8). Nothing of the
     * request was written; the other requests of the batch were not affected.
     * Retrying the same request fails the same way: answer 422. */
    STORE_REJECTED
} store_status_t;

typedef struct store_alert_outcome {
    char uuid[37];
    bool is_duplicate;
    int64_t duplicate_count; /* after this request; 0 for a new alert */
} store_alert_outcome_t;

typedef struct store_ingest_result {
    store_status_t status;
    const char *message; /* for logs when not OK */
    size_t nalerts;
    const store_alert_outcome_t *alerts; /* valid during the callback only */
} store_ingest_result_t;

/* Called exactly once per accepted store_ingest(), on a writer thread,
 * after the batch transaction committed (STORE_OK) or failed. Must not block
 * for long (it delays the next batch) and must not call store_free(). */
typedef void (*store_ingest_cb)(const store_ingest_result_t *res, void *ctx);

/* Queues the alerts of one request (all in the same transaction: all or
 * nothing). Copies everything; the caller's memory may go right after the
 * call. n may be 0 (the callback then gets STORE_OK and no alerts).
 * Checks the input first and returns AM_EINVAL (nothing queued) when a
 * required string (source_name, title, severity, fingerprint, raw_payload)
 * is NULL, severity is not one of the six values, an indicator has a NULL
 * value or an unknown type, or fields_json is not a JSON object whose keys
 * are optional field names (not alert keys such as "title").
 * Indicators repeated on (type,value) inside one alert keep the first.
 * Returns 0, or AM_EINVAL / AM_ELIMIT (queue full: the
 * database is not keeping up) / AM_EUNAVAIL (store shutting down), in which
 * case cb is never called. Thread-safe. */
int store_ingest(store_t *s, const store_alert_t *alerts, size_t n, store_ingest_cb cb, void *ctx);

/* ---- read API (reader threads) -------------------------------------------- */

typedef enum {
    STORE_Q_GET_ALERT,   /* uuid */
    STORE_Q_LIST_ALERTS, /* source_name, severity, status, since, limit, cursor */
    STORE_Q_PATCH_ALERT, /* uuid, body (JSON text) */
    /* dispatch (dispatch_api.c, docs/dispatch.md) */
    STORE_Q_LIST_DELIVERIES, /* uuid */
    STORE_Q_RETRY_DELIVERY,  /* uuid, delivery_id, key_id */
    STORE_Q_QUEUE_COUNTS     /* none: jobs and deliveries by state, for GET /metrics */
} store_query_kind_t;

typedef struct store_query {
    store_query_kind_t kind;
    const char *uuid;
    /* list filters (NULL = none) */
    const char *source_name, *severity, *status, *since, *cursor;
    int64_t limit;       /* 0 = default 50; max 500 */
    const char *body;    /* PATCH body, JSON text */
    int64_t key_id;      /* PATCH, retry: the API key making the change (0: none) */
    int64_t delivery_id; /* retry: the delivery (> 0) */
    /* the raw "limit" query-string value; when non-NULL it is parsed and
     * checked here (1..500, else 400 INVALID_PARAMETER) and limit is ignored */
    const char *limit_text;
} store_query_t;

typedef struct store_reply {
    int http_status;  /* 200, 202, 400, 404, 409, 422, 503 */
    const char *body; /* JSON text: {"data":...} or {"error":{"code","message"}} */
} store_reply_t;

typedef void (*store_query_cb)(const store_reply_t *reply, void *ctx);

/* Queues a read-API query (strings copied). The callback runs once, on a
 * reader thread; the reply's body is valid during the callback only.
 * Returns 0 or AM_EINVAL / AM_ELIMIT (queue full) / AM_EUNAVAIL
 * (shutting down), in which case cb is never called. Thread-safe. */
int store_query(store_t *s, const store_query_t *q, store_query_cb cb, void *ctx);

/* ---- health ------------------------------------------------------------- */

/* Whether the database at conninfo answers: connects with a connection of
 * its own and runs "SELECT 1", all within timeout_ms (storage/health.c).
 * Blocking; thread-safe. Returns 0, or AM_EUNAVAIL with the reason in err
 * (err may be NULL). */
int store_ping(const char *conninfo, int timeout_ms, char *err, size_t errlen);

/* ---- counters -------------------------------------------------------------- */

typedef struct store_stats {
    uint64_t transactions;        /* batch transactions that ran to their end */
    uint64_t batches_failed;      /* batch transactions rolled back / not started */
    uint64_t requests_ok;         /* ingest callbacks with STORE_OK */
    uint64_t requests_failed;     /* ingest callbacks with any other status */
    uint64_t alerts_inserted;     /* new alert rows committed */
    uint64_t alerts_deduplicated; /* alerts answered as duplicates (committed) */
    uint64_t alerts_settled;      /* new alerts written Enriched with no job (no worker has work) */
    uint64_t queries;             /* read-API queries answered */
    uint64_t reconnects;          /* successful (re)connections, all threads */
    uint64_t queue_depth;         /* ingest requests waiting now */
    uint64_t retries;             /* batches run again after a deadlock / serialization failure */
    uint64_t fallbacks;           /* batches written request by request after a refusal */
    uint64_t heavy;               /* requests written alone on the heavy lane */
    uint64_t writers;             /* ordinary writer threads (the heavy lane has one more) */
} store_stats_t;

/* Copies the counters (each read atomically; the set is not a snapshot).
 * Thread-safe. */
void store_stats(const store_t *s, store_stats_t *out);

/* ---- API keys (keys.c, keys_verify.c; see docs/security.md) ----------------
 *
 * A token is "amk_" + an 8-character lookup prefix + "_" + 52 characters
 * carrying 256 random bits (base32, lower case): STORE_KEY_TOKEN_LEN bytes.
 * The table api_keys keeps the prefix and HMAC-SHA256(pepper, token); the
 * token itself is shown once, by store_key_create(). */

#define STORE_KEY_TOKEN_LEN 65
/* The environment variable holding the deployment's pepper (the HMAC key). */
#define STORE_KEY_PEPPER_ENV "ALERTMAP_KEY_PEPPER"

enum {
    STORE_SCOPE_INGEST = 1, /* POST /v1/ingest */
    STORE_SCOPE_READ = 2,   /* GET alerts, sources */
    STORE_SCOPE_WRITE = 4,  /* PATCH alerts */
    STORE_SCOPE_ADMIN = 8,  /* keys, sources, the dry run */
    STORE_SCOPE_ALL = 15
};

/* "ingest,read" into scope bits. Returns 0 or AM_EINVAL (empty, unknown or
 * repeated name). Pure. */
int store_scopes_parse(unsigned *out, const char *list);
/* Scope bits as "ingest,read,write,admin" (in that order); buf needs 32 bytes. */
void store_scopes_format(char buf[32], unsigned scopes);
/* $ALERTMAP_KEY_PEPPER when set and not empty, else NULL (the documented
 * default pepper). Call at start-up (getenv; not thread-safe with setenv). */
const char *store_key_pepper(void);

/* Masks the secret of every key token inside s[0..n) in place: after each
 * "amk_" + 8 prefix characters + "_", the base32 characters that follow
 * (the secret, or what is left of a truncated one) become '*'. The prefix
 * stays readable. For log lines that carry a request's query string or
 * headers. Returns the number of tokens masked. Pure. */
size_t store_key_mask(char *s, size_t n);

typedef struct store_key_spec {
    const char *name;           /* required, 1..200 bytes */
    unsigned scopes;            /* STORE_SCOPE_* bits, at least one */
    const char *const *sources; /* NULL or nsources == 0: every source */
    size_t nsources;
    int64_t expires_at_us; /* 0: never */
} store_key_spec_t;

/* Creates a key on conninfo (blocking; own connection; for the CLI and admin
 * tools). token receives the NUL-terminated token, the only time it exists
 * outside the caller's hands; *id the new row's id (id may be NULL). pepper
 * NULL is the default. Returns 0, AM_EINVAL (bad spec; err says which
 * field), AM_EUNAVAIL (database), AM_EIO (no randomness). Thread-safe. */
int store_key_create(const char *conninfo, const char *pepper, const store_key_spec_t *spec,
                     char token[STORE_KEY_TOKEN_LEN + 1], int64_t *id, char *err, size_t errlen);
/* Every key, newest first, as a new json_t array of objects {id, name,
 * prefix ("amk_xxxxxxxx"), scopes [..], sources [..] or null, expires_at,
 * created_at, last_used_at, revoked_at (RFC 3339 or null), state ("active",
 * "expired", "revoked")}. Never a hash. Blocking. Returns 0 (*out is a new
 * reference) or AM_EUNAVAIL / AM_EINVAL with err filled. */
int store_key_list(const char *conninfo, json_t **out, char *err, size_t errlen);
/* Revokes the key named by its id ("12"), its prefix ("amk_abcdefgh" or
 * "abcdefgh") or the whole token. Blocking. Revoking a revoked key changes
 * nothing and is not an error (*already true). Returns 0 (with *id, *already
 * when not NULL), AM_ENOTFOUND, AM_EINVAL (neither an id nor a prefix) or
 * AM_EUNAVAIL, with err filled. */
int store_key_revoke(const char *conninfo, const char *which, int64_t *id, bool *already, char *err,
                     size_t errlen);

/* The request-path verifier: an in-process cache of key rows by lookup
 * prefix, one thread with its own connection for lookups, refreshes and
 * last_used_at updates. A cached row is trusted for at most ttl_ms (<= 1 s)
 * after it was read, so a revocation (or expiry, or a change of scopes)
 * takes effect in every thread of every process within ttl_ms; rows in use
 * are re-read every refresh_ms, so a key in steady use never waits for the
 * database. */
typedef struct store_keys store_keys_t;

typedef struct store_keys_options {
    const char *conninfo;     /* required */
    const char *pepper;       /* NULL: the default pepper */
    int ttl_ms;               /* trust a cached row this long; default and maximum 1000 */
    int refresh_ms;           /* re-read rows in use this often; default 250 (< ttl_ms) */
    int touch_interval_s;     /* last_used_at written at most this often per key; default 60 */
    int max_entries;          /* cached keys; default 4096 (least recently used evicted) */
    int max_pending;          /* requests waiting for a lookup; default 10000 */
    int statement_timeout_ms; /* per lookup statement; default 2000 */
} store_keys_options_t;

typedef enum {
    STORE_KEY_OK = 0,
    STORE_KEY_INVALID,    /* missing, malformed, unknown or wrong token: 401 */
    STORE_KEY_EXPIRED,    /* 401 */
    STORE_KEY_REVOKED,    /* 401 */
    STORE_KEY_NO_SCOPE,   /* valid key without the scope asked for: 403 */
    STORE_KEY_NO_SOURCE,  /* valid ingest key not allowed for this source: 403 */
    STORE_KEY_UNAVAILABLE /* the database cannot tell now, or too many waiting: 503 */
} store_key_result_t;

typedef struct store_key_check {
    store_key_result_t result;
    /* when the token matched a row (OK, EXPIRED, REVOKED, NO_SCOPE,
     * NO_SOURCE): its id and "amk_xxxxxxxx" (safe to log); else 0 and "" */
    int64_t key_id;
    char prefix[16];
} store_key_check_t;

/* Called once, on the verifier's thread, for a verification that waited for
 * the database; check is valid during the call only. Must not block and must
 * not call store_keys_free(). */
typedef void (*store_key_cb)(const store_key_check_t *check, void *ctx);

/* Starts the verifier (opt copied). Does not need the database up. Returns
 * NULL when opt or opt->conninfo is NULL. Free with store_keys_free(). */
store_keys_t *store_keys_new(const store_keys_options_t *opt);
/* Stops the thread; every waiting verification gets STORE_KEY_UNAVAILABLE
 * first. NULL is a no-op. Not from a callback. */
void store_keys_free(store_keys_t *k);

/* Checks token[0..len) for the scope bits asked for (all must be granted)
 * and, when source is not NULL, that the key may ingest to that source.
 * Returns true when *out holds the answer now (a cache hit, a malformed
 * token, or too many waiting): cb is not called. Returns false when the
 * answer needs the database: cb(check, ctx) is then called exactly once on
 * the verifier's thread, possibly before this function returns. Never
 * blocks on the database; costs one HMAC and a short critical section.
 * cb must not be NULL (asserted when a lookup is needed). k, out: not NULL;
 * token may be NULL when len is 0. Thread-safe. */
bool store_keys_verify(store_keys_t *k, const char *token, size_t len, unsigned scope,
                       const char *source, store_key_check_t *out, store_key_cb cb, void *ctx);

/* 200 (OK), 401, 403 or 503 for a result. */
int store_key_http_status(store_key_result_t r);
/* The error code of a result: "UNAUTHORIZED", "KEY_EXPIRED", "KEY_REVOKED",
 * "FORBIDDEN" (scope or source), "DATABASE_UNAVAILABLE"; "OK" for OK. */
const char *store_key_result_code(store_key_result_t r);

typedef struct store_keys_stats {
    uint64_t hits;      /* answered from the cache */
    uint64_t misses;    /* waited for a lookup */
    uint64_t lookups;   /* lookup statements run (one may serve many prefixes) */
    uint64_t refreshes; /* refresh statements run */
    uint64_t touches;   /* last_used_at updates written (rows) */
    uint64_t failures;  /* statements that failed */
    uint64_t busy;      /* verifications refused: too many waiting */
} store_keys_stats_t;
void store_keys_stats(const store_keys_t *k, store_keys_stats_t *out);

/* ---- replay protection (delivery.c; docs/security.md) ----------------------
 *
 * A claim/complete protocol around an ingest, keyed by (source, delivery
 * key): claim before store_ingest(), complete with the answer after the
 * commit, release when the ingest failed. One thread with its own
 * connection runs the statements in order and calls back on that thread. */
typedef struct store_deliveries store_deliveries_t;

#define STORE_DELIVERY_MAX_QUEUE 10000 /* jobs waiting; more: AM_EUNAVAIL */

typedef enum {
    STORE_DELIVERY_CLAIMED,    /* claim: ours, go on and ingest */
    STORE_DELIVERY_DONE,       /* claim: answered before (status, answer); complete: recorded */
    STORE_DELIVERY_IN_FLIGHT,  /* claim: another request holds it now */
    STORE_DELIVERY_LOST,       /* complete: a retry took the claim over meanwhile */
    STORE_DELIVERY_UNAVAILABLE /* the database could not say */
} store_delivery_state_t;

typedef struct store_delivery_result {
    store_delivery_state_t state;
    int status;         /* DONE after a claim: the recorded HTTP status */
    const char *answer; /* DONE after a claim: the recorded body (valid during the call) */
} store_delivery_result_t;
typedef void (*store_delivery_cb)(const store_delivery_result_t *res, void *ctx);

/* Starts the thread (it connects on first use). NULL when conninfo is NULL
 * or the thread cannot start. */
store_deliveries_t *store_deliveries_new(const char *conninfo);
/* Stops the thread; queued jobs are answered UNAVAILABLE. NULL: no-op. */
void store_deliveries_free(store_deliveries_t *d);
/* Claims key for source: a new claim token (32 hex characters) goes to
 * token; cb gets CLAIMED, DONE (with the first answer), IN_FLIGHT or
 * UNAVAILABLE. A row older than window_s is a new delivery; an unfinished
 * claim older than takeover_s is taken over. Returns 0, AM_EUNAVAIL (queue
 * full or stopping; cb not called) or AM_EIO (no randomness). Thread-safe. */
int store_delivery_claim(store_deliveries_t *d, char token[33], const char *source, const char *key,
                         int64_t window_s, int64_t takeover_s, store_delivery_cb cb, void *ctx);
/* Records the answer of the claim token's request; cb (may be NULL) gets
 * DONE, LOST or UNAVAILABLE. Returns 0 or AM_EUNAVAIL (cb not called).
 * Thread-safe. */
int store_delivery_complete(store_deliveries_t *d, const char *source, const char *key,
                            const char *token, int status, const char *answer, store_delivery_cb cb,
                            void *ctx);
/* Deletes the claim token's unfinished claim. Returns 0 or AM_EUNAVAIL.
 * Thread-safe. */
int store_delivery_release(store_deliveries_t *d, const char *source, const char *key,
                           const char *token);

/* ---- Enrichment (enrich.c) ---------------------------------------------------
 * The worker's SQL, on one connection per worker thread (Not thread-safe:
 * one owner). Strings are copied; every call returns 0, AM_ENOTFOUND where
 * the comment says, AM_EUNAVAIL when the database is unreachable (the next
 * call reconnects) or AM_EINVAL for refused data, with err filled. */
typedef struct store_enrich store_enrich_t;

typedef struct store_enrich_job {
    int64_t id, alert_id;
    int attempts; /* this claim included */
} store_enrich_job_t;

typedef struct store_enrich_ioc {
    int64_t id;
    char *type, *value;
} store_enrich_ioc_t;

typedef struct store_enrich_cached {
    char outcome[16];    /* "found", "not_found" */
    char verdict[16];    /* "" when none */
    char *fields;        /* JSON text; the caller frees it */
    char *error;         /* NULL when none */
    char fetched_at[40]; /* RFC 3339 UTC */
} store_enrich_cached_t;

typedef struct store_enrich_result {
    const char *provider, *type, *value;
    const char *outcome; /* "found", "not_found", "failed" */
    const char *verdict; /* NULL or "" for none */
    const char *fields;  /* JSON object text */
    const char *error;   /* NULL unless failed */
    int64_t ttl_us;      /* 0: never fresh (recorded, not cached) */
} store_enrich_result_t;

typedef struct store_enrich_ioc_verdict {
    const char *type, *value;
    const char *verdict;
} store_enrich_ioc_verdict_t;

typedef struct store_enrich_outcome {
    int64_t job_id, alert_id;
    bool failed;         /* Failed (else Enriched) */
    const char *verdict; /* the alert's */
    const char *error;   /* NULL when Enriched */
    const store_enrich_ioc_verdict_t *iocs;
    size_t niocs;
    const char *const *targets; /* dispatch targets to queue a delivery for */
    size_t ntargets;
    /* put the job back in the queue instead, due
     * after retry_us (the alert is not touched); with uncount the claim does
     * not count as an attempt (a rate limit deferred it) */
    bool retry, uncount;
    int64_t retry_us;
} store_enrich_outcome_t;

/* Connects and LISTENs on alertmap_enrichment; *out is set even on failure
 * (later calls retry the connection). worker names claimed_by. */
int store_enrich_open(store_enrich_t **out, const char *conninfo, const char *worker, char *err,
                      size_t errlen);
void store_enrich_close(store_enrich_t *e);

/* What a process running enrichment workers announces to the writers of
 * every process (009_enrichment_nodes.sql): the indicator types its
 * providers answer and whether it has dispatch targets. Alerts that no live
 * process has work for are settled at ingest (docs/enrichment.md, "Alerts
 * settled at ingest"). One connection of its own, not listening. */
typedef struct store_node store_node_t;
/* Never fails: the connection is made by the first announce. node names
 * the process (unique across hosts and restarts). */
store_node_t *store_node_new(const char *conninfo, const char *node);
/* Writes the row (types replaces the last announcement) and refreshes
 * seen_at. 0 or AM_EUNAVAIL with the reason in err. */
int store_node_announce(store_node_t *n, const char *const *types, size_t ntypes, bool targets,
                        char *err, size_t errlen);
/* Deletes the row (best effort: a row not deleted expires after 60 s) and
 * closes. */
void store_node_free(store_node_t *n);
/* Returns when a job was announced or timeout_us passed. */
int store_enrich_wait(store_enrich_t *e, int64_t timeout_us);
void store_enrich_iocs_free(store_enrich_ioc_t *v, size_t n);
/* Dispatch (docs/dispatch.md). */
typedef struct store_enrich_facts {
    char *source, *severity;
    char **tags;
    size_t ntags;
} store_enrich_facts_t;

typedef struct store_enrich_delivery {
    int64_t id, alert_id;
    char target[72];
    int attempts; /* this claim included */
} store_enrich_delivery_t;

typedef enum {
    STORE_DISPATCH_DELIVERED,
    STORE_DISPATCH_RETRY, /* pending again after delay_us */
    STORE_DISPATCH_FAILED
} store_dispatch_state_t;

void store_enrich_facts_dispose(store_enrich_facts_t *f);
/* Claims the oldest due delivery (or one whose sender's lease expired);
 * AM_ENOTFOUND when none. */
int store_enrich_delivery_claim(store_enrich_t *e, int64_t lease_us, store_enrich_delivery_t *d,
                                char *err, size_t errlen);
/* Records an attempt's end; AM_ENOTFOUND when the lease was lost. */
int store_enrich_delivery_result(store_enrich_t *e, int64_t id, store_dispatch_state_t state,
                                 int http_status, const char *error, int64_t delay_us, char *err,
                                 size_t errlen);
/* The alert exactly as GET /v1/alerts/{uuid} returns it ("data", rendered
 * by the same function), with its verdict, enrichment_error and, per
 * indicator, its verdict and enrichment results
 * (schemas/dispatch.schema.json). *out is heap JSON text. AM_ENOTFOUND when
 * the alert is gone. */
int store_enrich_alert_json(store_enrich_t *e, int64_t alert_id, char **out, char *err,
                            size_t errlen);

/* ---- Enrichment in batches (enrich.c): a round trip per batch, not per job */

/* A claimed job and what the worker reads of its alert. */
typedef struct store_enrich_claimed {
    store_enrich_job_t job;
    bool alert_found; /* false: the alert is gone (the job ends without it) */
    store_enrich_facts_t facts;
    store_enrich_ioc_t *iocs; /* in extraction order */
    size_t niocs;
} store_enrich_claimed_t;

/* A cache key. */
typedef struct store_enrich_key {
    const char *provider, *type, *value;
} store_enrich_key_t;

/* Claims up to max due jobs, oldest first: queued ones whose next attempt
 * is due and running ones whose lease expired (their worker died). FOR
 * UPDATE SKIP LOCKED: concurrent workers never claim the same job; each
 * gets its own lease (running, claimed_by, attempts + 1) and reads their alerts'
 * facts and indicators, in one statement; out has room for max, *n are
 * filled (dispose each with store_enrich_claimed_dispose). With work_types
 * (ntypes names, maybe 0), a job whose alert has no indicator of those
 * types is not returned but ended by the same statement, as a worker with
 * no provider for them and no dispatch target would end it (done; the
 * alert Enriched, verdict Unknown, every indicator Unknown); *ended counts
 * them. AM_ENOTFOUND when no job was due. */
int store_enrich_claim_batch(store_enrich_t *e, int64_t lease_us, size_t max,
                             const char *const *work_types, size_t ntypes,
                             store_enrich_claimed_t *out, size_t *n, size_t *ended, char *err,
                             size_t errlen);
void store_enrich_claimed_dispose(store_enrich_claimed_t *c);
/* Extends the leases of jobs ids[0..n) this worker still holds; held[i]
 * tells which (a lost lease is false, the others are unaffected). */
int store_enrich_heartbeat_many(store_enrich_t *e, const int64_t *ids, size_t n, int64_t lease_us,
                                bool *held, char *err, size_t errlen);
/* The fresh cached results of keys[0..n) in one query: found[i], out[i]
 * (dispose each with store_enrich_cached_dispose; zeroed when not found). */
int store_enrich_cache_get_many(store_enrich_t *e, const store_enrich_key_t *keys, size_t n,
                                store_enrich_cached_t *out, bool *found, char *err, size_t errlen);
void store_enrich_cached_dispose(store_enrich_cached_t *c);
/* Writes results res[0..n) in one statement (a key given twice: the last wins). */
int store_enrich_cache_put_many(store_enrich_t *e, const store_enrich_result_t *res, size_t n,
                                char *err, size_t errlen);
/* Ends jobs o[0..n) in one statement: each done or failed (the alert's
 * verdict, its indicators' verdicts in alerts.indicator_verdicts,
 * enrichment_status and error, the deliveries of its targets; the shared
 * indicators table is not touched) or, with o[i].retry, back in the queue
 * (due after retry_us). ended[i] is false for a
 * job whose lease was taken over (nothing of it changed); the others end. */
int store_enrich_finish_batch(store_enrich_t *e, const store_enrich_outcome_t *o, size_t n,
                              bool *ended, char *err, size_t errlen);
/* Queues one delivery per (alerts[i], targets[i]) (existing ones are kept). */
int store_enrich_deliveries_add_many(store_enrich_t *e, const int64_t *alerts,
                                     const char *const *targets, size_t n, char *err,
                                     size_t errlen);

#endif
