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
    /* indicators per group commit, default 4096; a request with more
     * alerts than max_batch or more indicators than this is heavy: it runs
     * alone, in its own transaction, on the heavy lane */
    int max_batch_indicators;
    /* requests waiting per queue (ingest, queries) before store_ingest() /
     * store_query() refuse with AM_ELIMIT (answer 503); default 10000 */
    int max_queue;
} store_options_t;

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
    STORE_Q_PATCH_ALERT  /* uuid, body (JSON text) */
} store_query_kind_t;

typedef struct store_query {
    store_query_kind_t kind;
    const char *uuid;
    /* list filters (NULL = none) */
    const char *source_name, *severity, *status, *since, *cursor;
    int64_t limit;    /* 0 = default 50; max 500 */
    const char *body; /* PATCH body, JSON text */
    /* the raw "limit" query-string value; when non-NULL it is parsed and
     * checked here (1..500, else 400 INVALID_PARAMETER) and limit is ignored */
    const char *limit_text;
} store_query_t;

typedef struct store_reply {
    int http_status;  /* 200, 400, 404, 409, 422, 503 */
    const char *body; /* JSON text: {"data":...} or {"error":{"code","message"}} */
} store_reply_t;

typedef void (*store_query_cb)(const store_reply_t *reply, void *ctx);

/* Queues a read-API query (strings copied). The callback runs once, on a
 * reader thread; the reply's body is valid during the callback only.
 * Returns 0 or AM_EINVAL / AM_ELIMIT (queue full) / AM_EUNAVAIL
 * (shutting down), in which case cb is never called. Thread-safe. */
int store_query(store_t *s, const store_query_t *q, store_query_cb cb, void *ctx);

/* ---- counters -------------------------------------------------------------- */

typedef struct store_stats {
    uint64_t transactions;        /* batch transactions that ran to their end */
    uint64_t batches_failed;      /* batch transactions rolled back / not started */
    uint64_t requests_ok;         /* ingest callbacks with STORE_OK */
    uint64_t requests_failed;     /* ingest callbacks with any other status */
    uint64_t alerts_inserted;     /* new alert rows committed */
    uint64_t alerts_deduplicated; /* alerts answered as duplicates (committed) */
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

#endif
