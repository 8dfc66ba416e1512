/*
 * storage/store_internal.h - what the files of storage/ share.
 *
 *   pgconn.c     one libpq connection with reconnect backoff, error classes,
 *                PostgreSQL array literals
 *   migrate.c    store_migrate()
 *   store.c      store_new(), store_free(), store_stats()
 *   ingest.c     store_ingest(): input checks, copies, the ingest queue
 *   writer.c     the group-commit writer threads and the heavy lane
 *   batch.c      one batch transaction (pipelined, set-based)
 *   reader.c     the query queue and the reader threads
 *   alert_get.c  GET and PATCH of one alert
 *   alert_list.c LIST with filters and cursor
 *   dispatch_api.c deliveries of an alert, their retry, queue counts
 *   codec.c      JSON text writing, uuid / RFC 3339 / cursor parsing
 *
 * Not part of the public interface; nothing outside storage/ includes this.
 */
#ifndef STORE_INTERNAL_H
#define STORE_INTERNAL_H

#include "store.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>

/* ---- connection (pgconn.c) ------------------------------------------------ */

/* One connection owned by one thread. After a failed attempt the next one is
 * allowed only after a backoff (100 ms doubling to 2 s); a success resets it. */
typedef struct pgconn {
    PGconn *conn; /* NULL when disconnected */
    const char *conninfo;
    int64_t next_attempt_us;
    int64_t backoff_us;
    atomic_uint_fast64_t *reconnects; /* counter to bump, may be NULL */
    /* called after each successful connect (e.g. to prepare statements);
     * returning non-zero closes the connection and counts as a failure */
    int (*on_connect)(PGconn *c, void *ctx);
    void *on_connect_ctx;
} pgconn_t;

void store_pgconn_init(pgconn_t *pc, const char *conninfo);
/* Makes sure there is a usable connection. With force the backoff is
 * ignored. Returns 0 or AM_EUNAVAIL (err filled when not NULL). */
int store_pgconn_ensure(pgconn_t *pc, bool force, char *err, size_t errlen);
/* Closes the connection (e.g. after it broke) without touching the backoff. */
void store_pgconn_close(pgconn_t *pc);
/* The time until the next allowed attempt (0 when allowed now). */
int64_t store_pgconn_wait_us(const pgconn_t *pc);
/* Opens a connection right away (no backoff); NULL and err on failure. */
PGconn *store_pgconn_open(const char *conninfo, char *err, size_t errlen);

/* What a failed statement means for the caller. */
typedef enum {
    PGERR_CONNECTION, /* the connection is gone: reconnect */
    PGERR_TRANSIENT,  /* deadlock, serialization, server shutting down, out of resources */
    PGERR_DATA        /* the statement's data was refused (constraint, bad JSON, ...) */
} pgerr_class_t;
/* Classifies a failed result (res may be NULL) on connection c. */
pgerr_class_t store_pgerr_classify(PGconn *c, const PGresult *res);

/* true when a failed result is a serialization failure or a deadlock
 * (SQLSTATE class 40): the transaction was rolled back and running it
 * again is the remedy. */
bool store_pgerr_retryable(const PGresult *res);

/* Runs a statement without parameters and checks its status; clears the
 * result. Returns 0 or -1 (and *cls when not NULL, err filled). */
int store_pg_exec_simple(PGconn *c, const char *sql, pgerr_class_t *cls, char *err, size_t errlen);

/* Appends a PostgreSQL text[] literal ({"a","b"}) of n strings (NULL ones as NULL).
 * Reserves twice a string's length for it: for an unbounded b. */
void store_pg_text_array(am_buf_t *b, const char *const *v, size_t n);

/* Copies the first line of a libpq error message into err. */
void store_pg_errcopy(char *err, size_t errlen, const char *msg);

/* ---- JSON text and small parsers (codec.c) --------------------------------- */

/* Appends s as a JSON string ("null" when s is NULL). */
void store_json_put_str(am_buf_t *b, const char *s);
/* Appends "key": (a comma first unless the object was just opened). */
void store_json_put_key(am_buf_t *b, const char *key);
/* Appends an RFC 3339 UTC time from a text value of microseconds since the
 * epoch, or null when text is NULL. */
void store_json_put_time_us(am_buf_t *b, const char *us_text);
/* {"error":{"code":CODE,"message":MSG}} as a new heap string (never NULL). */
char *store_json_error(const char *code, const char *fmt, ...) AM_PRINTF(2, 3);

/* true when s is a uuid in 8-4-4-4-12 hex form (any case). */
bool store_uuid_valid(const char *s);
/* Parses an RFC 3339 date-time (e.g. 2024-05-01T10:00:00.5+02:00) into µs
 * since the epoch. Returns 0 or AM_EINVAL. */
int store_rfc3339_parse(const char *s, int64_t *out_us);
/* The list cursor: base64url (no padding) of "<ingested_at µs>.<id>". */
void store_cursor_encode(char out[64], int64_t ingested_us, int64_t id);
int store_cursor_decode(const char *s, int64_t *ingested_us, int64_t *id);

/* Names of the optional normalized fields (src_ip ... email_reply_to), in the
 * order the alert JSON lists them. */
extern const char *const store_optional_fields[];
extern const size_t store_noptional_fields;
bool store_severity_valid(const char *s);
bool store_indicator_type_valid(const char *s);

/* ---- the store (store.c, writer.c, reader.c) ------------------------------- */

typedef struct query_req query_req_t;

/* The dedup lookup of the writer (batch.c, INGEST_SQL), for the fingerprint
 * FP and the window W in seconds (both SQL expressions): the oldest alert
 * with that fingerprint ingested inside the window. It is served by
 * alerts_fingerprint_day_idx (010_fingerprint_day.sql), probed once per UTC
 * day the window touches; the day expression must stay the index's own.
 * tests/storage/test_plans.c checks the plan. */
#define STORE_DEDUP_DAY "(a.ingested_at AT TIME ZONE 'UTC')::date"
#define STORE_DEDUP_LOOKUP(FP, W)                                                                  \
    "SELECT a.id, a.fingerprint, a.uuid, a.duplicate_count FROM alerts a"                          \
    " WHERE " STORE_DEDUP_DAY " = ANY (ARRAY(SELECT ((now() - " W " * interval '1 second')"        \
    "   AT TIME ZONE 'UTC')::date + g FROM generate_series(0, (now() AT TIME ZONE 'UTC')::date"    \
    "   - ((now() - " W " * interval '1 second') AT TIME ZONE 'UTC')::date) AS g))"                \
    " AND a.fingerprint = " FP " AND a.ingested_at >= now() - " W " * interval '1 second'"         \
    " ORDER BY a.ingested_at, a.id LIMIT 1"

/* One alert as queued: strings and literals in the request's arena. */
typedef struct w_alert {
    const char *title, *severity, *source_name, *description, *detection_rule_ref;
    const char *fingerprint, *raw_payload, *fields_json;
    int64_t occurred_us; /* µs since the epoch */
    bool fallback;
    const char *tags_lit; /* text[] literal */
    /* the indicators, deduplicated: nind of each (fields may be NULL) */
    const char **ind_types, **ind_values, **ind_fields;
    size_t nind;
    bool settled; /* written Enriched with no job by the last batch run (batch.c) */
} w_alert_t;

/* Why the database would refuse an alert, found before sending it (NULL when
 * nothing is known to be wrong): invalid UTF-8 in a text, \u0000 in a JSON
 * text (jsonb cannot hold it), an occurred_at out of timestamptz's range. */
const char *store_alert_refusal(const store_alert_t *a);

/* One store_ingest() call waiting for, or inside, a batch. */
typedef struct ingest_req ingest_req_t;
struct ingest_req {
    ingest_req_t *next;
    am_arena_t *arena; /* owns the request itself */
    w_alert_t *alerts;
    size_t n;
    store_alert_outcome_t *out;
    store_ingest_cb cb;
    void *ctx;
    store_status_t status;
    char msg[300];
    size_t nind;   /* indicators of all its alerts */
    bool heavy;    /* over a batch's caps: runs alone on the heavy lane */
    bool rejected; /* refused before sending (store_alert_refusal): status
                    * and msg are set, the batch skips it */
};
void store_ingest_req_free(ingest_req_t *r);

/* How a batch transaction ended. */
typedef enum {
    BATCH_COMMITTED,     /* committed; each request holds its own status */
    BATCH_CONN_LOST,     /* connection lost before COMMIT: nothing written */
    BATCH_FAILED,        /* rolled back: nothing written */
    BATCH_COMMIT_UNKNOWN /* connection lost during COMMIT */
} batch_result_t;

/* Writes reqs in one transaction on c (see batch.c). Sets each request's
 * status and outcomes; err gets the reason of a batch-level failure.
 * *retries counts the runs repeated after a deadlock or serialization
 * failure; *fallback is set when the batch had to be written request by
 * request. */
/* What the live enrichment workers of the deployment can do, as a writer
 * last read it from enrichment_nodes (009_enrichment_nodes.sql). An alert
 * is settled at ingest (Enriched, verdict Unknown, no job) only when the
 * reading is fresh, names at least one live worker, none of them has
 * targets, and none of the alert's indicator types is in types. */
typedef struct store_plan {
    int64_t read_us; /* am_now_us() of the last attempt; 0: never */
    bool known;      /* that attempt succeeded and found a live worker */
    bool targets;
    char **types; /* the union of the live workers' types */
    size_t ntypes;
} store_plan_t;
#define STORE_PLAN_REFRESH_US ((int64_t)2000000)  /* re-read at most this old */
#define STORE_PLAN_STALE_US   ((int64_t)10000000) /* older: settle nothing */
/* Re-reads p on c when older than STORE_PLAN_REFRESH_US. A failed read
 * leaves p unknown (every alert gets its job). */
void store_plan_refresh(PGconn *c, store_plan_t *p);
void store_plan_dispose(store_plan_t *p);

/* plan may be NULL: no alert is settled. */
batch_result_t store_batch_run(PGconn *c, int64_t dedup_window_s, const store_plan_t *plan,
                               ingest_req_t **reqs, size_t nreq, unsigned *retries, bool *fallback,
                               char *err, size_t errlen);
/* Prepares the batch statements on a new connection (pgconn on_connect). */
int store_batch_prepare(PGconn *c, void *ctx);

typedef struct store_counters {
    atomic_uint_fast64_t transactions, batches_failed, requests_ok, requests_failed,
        alerts_inserted, alerts_deduplicated, queries, reconnects, queue_depth, retries, fallbacks,
        heavy, alerts_settled;
} store_counters_t;

/* One writer thread: its lane and its connection. */
typedef struct store_writer {
    store_t *store;
    bool heavy; /* serves the heavy lane */
    pthread_t thread;
} store_writer_t;

/* A queue of requests, guarded by the store's wmu. */
typedef struct store_lane {
    ingest_req_t *head, *tail;
    size_t nalerts; /* alerts of the waiting requests */
    int busy;       /* writers between taking a batch and its end */
    pthread_cond_t cond;
} store_lane_t;

struct store {
    char *conninfo;
    int64_t dedup_window_s;
    int nreaders;
    int max_batch;
    size_t max_batch_ind;
    int64_t linger_us; /* see writer.c: a writer waits this long for a fuller batch */
    int nwriters;      /* ordinary writers; one heavy writer more */
    size_t max_queue;
    size_t rdepth; /* queries waiting, guarded by rmu */
    store_counters_t stats;

    /* ingest queues, guarded by wmu: lanes[0] ordinary, lanes[1] heavy */
    pthread_mutex_t wmu;
    store_lane_t lanes[2];
    bool wstop;
    store_writer_t *writers; /* nwriters + 1, the last one heavy */
    int writers_started;

    /* query queue, guarded by rmu */
    pthread_mutex_t rmu;
    pthread_cond_t rcond;
    query_req_t *rhead, *rtail;
    bool rstop;
    pthread_t *readers;
    int readers_started;
};

void *store_writer_main(void *arg);
void *store_reader_main(void *arg);
/* Frees what is still queued without calling callbacks (only used when
 * store_new fails half-way, before any submit). */
void store_writer_queue_dispose(store_t *s);
void store_reader_queue_dispose(store_t *s);

/* The read API on one connection; reply body as a heap string.
 * Returns 0, or AM_EUNAVAIL when the connection broke (the caller reconnects
 * and retries once; nothing was changed). */
typedef struct reply_buf {
    int status;
    char *body; /* heap */
} reply_buf_t;
/* The columns of an alert row as the read queries select them (alias a). */
/* clang-format off */
#define ALERT_COLS                                                             \
    "a.id, a.uuid, a.title, a.severity,"                                       \
    " (EXTRACT(EPOCH FROM a.occurred_at) * 1000000)::int8,"                    \
    " a.occurred_at_fallback, a.source_name, a.description, a.status,"         \
    " a.enrichment_status, to_json(a.tags)::text, a.detection_rule_ref,"       \
    " a.fields::text, a.fingerprint, a.duplicate_count,"                       \
    " (EXTRACT(EPOCH FROM a.last_duplicate_at) * 1000000)::int8,"              \
    " (EXTRACT(EPOCH FROM a.ingested_at) * 1000000)::int8,"                    \
    " (EXTRACT(EPOCH FROM a.updated_at) * 1000000)::int8,"                     \
    " (EXTRACT(EPOCH FROM a.triaged_at) * 1000000)::int8,"                     \
    " (EXTRACT(EPOCH FROM a.escalated_at) * 1000000)::int8,"                   \
    " (EXTRACT(EPOCH FROM a.closed_at) * 1000000)::int8,"                      \
    " a.close_classification, a.verdict, a.enrichment_error,"                 \
    " (EXTRACT(EPOCH FROM a.enriched_at) * 1000000)::int8"
/* clang-format on */
enum {
    COL_ID,
    COL_UUID,
    COL_TITLE,
    COL_SEVERITY,
    COL_OCCURRED,
    COL_FALLBACK,
    COL_SOURCE,
    COL_DESCRIPTION,
    COL_STATUS,
    COL_ENRICHMENT,
    COL_TAGS,
    COL_RULE_REF,
    COL_FIELDS,
    COL_FINGERPRINT,
    COL_DUPCOUNT,
    COL_LAST_DUP,
    COL_INGESTED,
    COL_UPDATED,
    COL_TRIAGED,
    COL_ESCALATED,
    COL_CLOSED,
    COL_CLASSIFICATION,
    COL_VERDICT,
    COL_ENRICHMENT_ERROR,
    COL_ENRICHED,
    COL_RAW /* GET only */
};
/* Appends one alert object from row `row` of r. With ind (the rows of
 * store_alert_render's indicator query) it also writes raw_payload (column
 * COL_RAW) and the indicators with their verdicts and enrichment results;
 * without, it is the list form. */
void store_render_alert(am_buf_t *b, const PGresult *r, int row, const PGresult *ind);
/* Appends the alert document of GET /v1/alerts/{uuid} (its "data" object,
 * the dispatch body too) of the alert named by uuid, or by id (decimal
 * text) when uuid is NULL: two statements. Returns 0, AM_ENOTFOUND (no such
 * alert), AM_EINVAL (a stored value cannot be serialized) or AM_EIO: a
 * statement failed, *failed is its result (may be NULL) for the caller to
 * classify and clear. b may hold a prefix; on an error it holds part of
 * the document. */
int store_alert_render(PGconn *c, const char *uuid, const char *id, am_buf_t *b, PGresult **failed);

/* Checks a query's input without the database; true when out now holds the
 * answer (a 400/422). */
bool store_alert_list_precheck(const store_query_t *q, reply_buf_t *out);
bool store_alert_patch_precheck(const char *body, reply_buf_t *out);
int store_alert_get(PGconn *c, const char *uuid, reply_buf_t *out);
int store_alert_patch(PGconn *c, const char *uuid, const char *body, int64_t key_id,
                      reply_buf_t *out);
int store_alert_list(PGconn *c, const store_query_t *q, reply_buf_t *out);
/* The plan PostgreSQL chooses for the list query of q (EXPLAIN text, one
 * node a line) as a heap string in *plan; for tests. Returns 0, AM_EINVAL
 * (q's parameters are refused) or AM_EUNAVAIL (the statement failed). */
int store_alert_list_explain(PGconn *c, const store_query_t *q, char **plan);
/* The same, run: EXPLAIN (ANALYZE) with the rows each node read (tests). */
int store_alert_list_explain_analyze(PGconn *c, const store_query_t *q, char **plan);

/* Dispatch (dispatch_api.c): GET /v1/alerts/{uuid}/deliveries, POST
 * .../deliveries/{id}/retry (key_id recorded as retried_by_key), and the
 * counts of jobs and deliveries by state ({"data":{"jobs":{...},
 * "deliveries":{...}}}) for GET /metrics. */
int store_alert_deliveries(PGconn *c, const char *uuid, reply_buf_t *out);
int store_delivery_retry(PGconn *c, const char *uuid, int64_t delivery_id, int64_t key_id,
                         reply_buf_t *out);
int store_queue_counts(PGconn *c, reply_buf_t *out);
/* Fills out with 500 INTERNAL / 503 DATABASE_UNAVAILABLE for a failed result;
 * returns AM_EUNAVAIL when the connection is gone, else 0. */
int store_reply_db_error(PGconn *c, const PGresult *res, reply_buf_t *out);
void store_reply_set(reply_buf_t *out, int status, char *body);

#endif
