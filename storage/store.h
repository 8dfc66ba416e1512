/*
 * storage/store.h - PostgreSQL storage of alertmap (libpq).
 *
 * - store_migrate(): applies schemas/sql/NNN_*.sql in order inside one
 *   transaction guarded by an advisory lock, recording versions in
 *   schema_migrations. Idempotent; concurrent callers are safe.
 * - A store owns one writer thread (group commit: the alerts of many
 *   concurrent requests go into one transaction; each request is completed
 *   only after that transaction commits) and a few reader threads that run
 *   the read API queries. Callers never block on the database: every call
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
    int64_t dedup_window_s; /* 0 disables dedup; default 86400 */
    int readers;            /* reader threads, default 2 */
    int max_batch;          /* alerts per group commit, default 256 */
} store_options_t;

/* Applies the migrations found in sql_dir (files NNN_name.sql). Blocking;
 * for start-up only. Returns 0, or AM_EUNAVAIL (cannot connect) / AM_EINVAL
 * (a migration failed) with err filled. */
int store_migrate(const char *conninfo, const char *sql_dir, char *err, size_t errlen);

/* Starts the threads. Does not require the database to be up (requests then
 * fail with STORE_UNAVAILABLE until it is). Returns NULL on out of memory. */
store_t *store_new(const store_options_t *opt);
/* Stops accepting, finishes everything queued (commits or fails it, calling
 * every callback), joins the threads, frees. NULL is a no-op. */
void store_free(store_t *s);

/* ---- ingest (writer) ------------------------------------------------------ */

typedef struct store_indicator {
    const char *type;
    const char *value;
    const char *source_field;
} store_indicator_t;

/* One normalized alert to insert. All strings are copied by store_submit(). */
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
    STORE_UNAVAILABLE, /* database unreachable or the batch failed: answer 503 */
    STORE_SHUTTING_DOWN
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

/* Called once per submit, on the writer thread, after commit or failure. */
typedef void (*store_ingest_cb)(const store_ingest_result_t *res, void *ctx);

/* Queues the alerts of one request (all in the same transaction: all or
 * nothing). Copies everything. Returns 0, or AM_ENOMEM / AM_EUNAVAIL (store
 * shutting down) in which case cb is never called. Thread-safe. */
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
} store_query_t;

typedef struct store_reply {
    int http_status;  /* 200, 400, 404, 409, 422, 503 */
    const char *body; /* JSON text: {"data":...} or {"error":{"code","message"}} */
} store_reply_t;

typedef void (*store_query_cb)(const store_reply_t *reply, void *ctx);

/* Queues a read-API query (strings copied). The reply's body is valid during
 * the callback only. Returns 0 or AM_ENOMEM / AM_EUNAVAIL. Thread-safe. */
int store_query(store_t *s, const store_query_t *q, store_query_cb cb, void *ctx);

#endif
