/*
 * h2o-glue/glue.h - internals of alertmapd shared by the files of h2o-glue/.
 *
 * Reading order: config.c (flags and environment), main.c (start-up, signals,
 * shutdown), reload.c (the current mapping set), server.c (listeners, one
 * h2o event loop per thread, store completions handed back to the loop),
 * route.c (path -> route, query strings), http.c (responses, headers, ids),
 * ingest.c (POST /v1/ingest, dry run), api.c (read API, sources),
 * metrics.c (counters and GET /metrics).
 *
 * The pure helpers (config parsing, routes, query strings, JSON bodies) have
 * no global state and are unit-tested in tests/h2o-glue/.
 */
#ifndef GLUE_H
#define GLUE_H

#include "am.h"
#include "eng.h"
#include "store.h"

#include <h2o.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#ifndef ALERTMAP_VERSION
#define ALERTMAP_VERSION "0.0.0"
#endif

/* ---- configuration (config.c) ------------------------------------------ */

#define GLUE_DEFAULT_LISTEN    "127.0.0.1:8080"
#define GLUE_DEFAULT_MAPPINGS  "./mappings"
#define GLUE_DEFAULT_SQL_DIR   "./schemas/sql"
#define GLUE_DEFAULT_MAX_BODY  ((size_t)5 * 1024 * 1024)
#define GLUE_DEFAULT_DEDUP_S   ((int64_t)86400)
#define GLUE_DEFAULT_DB_WAIT_S 30
#define GLUE_MAX_THREADS       256
#define GLUE_MAX_BODY_LIMIT    ((size_t)1024 * 1024 * 1024)
/* Bytes past --max-body that are still read (and answered 413 by the
 * handler) before libh2o stops reading and closes the connection. */
#define GLUE_BODY_SLACK ((size_t)1024 * 1024)

/* The resolved configuration. Strings are borrowed from argv or the
 * environment (both live as long as the process). */
typedef struct glue_config {
    const char *listen;
    char host[256]; /* parsed from listen; without brackets */
    char port[8];
    const char *database_url;
    const char *mappings;
    const char *sql_dir;
    int threads;
    int writers; /* store writer threads; 0 = the store's default (one per core) */
    size_t max_body;
    int64_t dedup_window_s;
    int db_wait_s;
    am_log_level_t log_level;
} glue_config_t;

typedef enum { GLUE_ACT_RUN, GLUE_ACT_HELP, GLUE_ACT_VERSION } glue_action_t;

/*
 * Fills cfg from the environment (getenv) and then argv (flags win). Accepts
 * "--flag value" and "--flag=value". Returns 0 with *action set, or
 * AM_EINVAL with a one-line message in err (no trailing newline). Pure but
 * for getenv(); not thread-safe (getenv).
 */
int glue_config_parse(glue_config_t *cfg, glue_action_t *action, int argc, char **argv, char *err,
                      size_t errlen);
/* The --help text. */
void glue_config_usage(FILE *out);

/* "5M", "512k", "1048576" (k = 1024, M = 1024*1024; an optional trailing
 * "B" or "iB"). Returns 0 or AM_EINVAL (empty, junk, zero, overflow). */
int glue_parse_size(size_t *out, const char *s);
/* "0", "90", "90s", "30m", "24h", "2d". Returns 0 or AM_EINVAL. */
int glue_parse_duration(int64_t *out, const char *s);
/* "host:port" or "[v6addr]:port" into host (brackets removed) and port.
 * Returns 0 or AM_EINVAL. */
int glue_parse_listen(char *host, size_t hostlen, char *port, size_t portlen, const char *s);
/* "debug", "info", "warn"/"warning", "error". Returns 0 or AM_EINVAL. */
int glue_parse_log_level(am_log_level_t *out, const char *s);

/* ---- routes and query strings (route.c) --------------------------------- */

typedef enum {
    GLUE_R_NONE = 0,
    GLUE_R_HEALTHZ,     /* GET /healthz */
    GLUE_R_INGEST,      /* POST /v1/ingest/{source} */
    GLUE_R_SOURCES,     /* GET /v1/sources */
    GLUE_R_SOURCE_TEST, /* POST /v1/sources/{source}/test */
    GLUE_R_ALERTS,      /* GET /v1/alerts */
    GLUE_R_ALERT,       /* GET, PATCH /v1/alerts/{uuid} */
    GLUE_R_METRICS      /* GET /metrics */
} glue_route_kind_t;

typedef struct glue_route {
    glue_route_kind_t kind;
    const char *arg; /* {source} or {uuid}, pointing into the path; not NUL-terminated */
    size_t arg_len;
} glue_route_t;

/* Matches a normalized path (no query string). Returns true and fills out
 * when the path names a route; false (kind GLUE_R_NONE) otherwise. */
bool glue_route_match(glue_route_t *out, const char *path, size_t len);
/* Whether method (e.g. "POST") is allowed on the route. */
bool glue_route_allows(glue_route_kind_t kind, const char *method, size_t len);
/* The value of the Allow header for the route, e.g. "GET, PATCH". */
const char *glue_route_allow_header(glue_route_kind_t kind);
/* Whether s is a UUID in 8-4-4-4-12 hex form (either case). */
bool glue_is_uuid(const char *s, size_t len);

typedef struct glue_qparam {
    const char *key;   /* decoded, NUL-terminated, in the arena */
    const char *value; /* decoded ("" when the parameter has no '=') */
} glue_qparam_t;

#define GLUE_MAX_QPARAMS 32

/* Splits a raw query string (without '?') on '&', decodes %XX and '+'.
 * Empty parts are skipped. Output in arena a. Returns 0, AM_EINVAL (bad %
 * escape or a NUL byte), AM_ELIMIT (more than GLUE_MAX_QPARAMS), AM_ENOMEM. */
int glue_query_parse(glue_qparam_t **out, size_t *n, const char *q, size_t len, am_arena_t *a);

/*
 * Turns the parameters of GET /v1/alerts into a store query (strings point
 * into params). Known keys: source_name, severity, status, since, limit,
 * cursor; their values are checked by the store (limit as limit_text).
 * Returns 0, or AM_EINVAL with message filled (unknown or repeated key).
 */
int glue_list_query(store_query_t *q, const glue_qparam_t *params, size_t n, char *msg,
                    size_t msglen);

/* ---- JSON bodies (http.c) ----------------------------------------------- */

/* {"error":{"code":CODE,"message":MESSAGE}} as compact JSON text; heap
 * string the caller frees, NULL when out of memory. */
char *glue_error_json(const char *code, const char *message);
/* The 202 body of an ingest: {"data":{"alert_uuid","status","is_duplicate",
 * "duplicate_count"}} for the first alert, plus "alerts":[...] for each one
 * when with_list. New reference or NULL. */
json_t *glue_ingest_json(const store_alert_outcome_t *o, size_t n, bool with_list);
/* Adds the output filter that turns libh2o's own plain-text 413 into the
 * JSON error body. */
void glue_install_filters(h2o_pathconf_t *path);
/* Reason phrase of an HTTP status ("Accepted", ...). */
const char *glue_reason(int status);

/* A header value of the request: name is matched case-insensitively.
 * Returns a pointer into the request (not NUL-terminated) or NULL. */
const char *glue_header_find(const h2o_headers_t *headers, const char *name, size_t *len);

/* ---- the current mapping set (reload.c) -------------------------------- */

/* Loads the initial set (check_samples true). Diagnostics go to diags.
 * Returns 0 or the error of eng_set_load(). Call once, before the threads. */
int glue_mappings_init(const char *dir, am_diags_t *diags);
/* A new reference to the current set (never NULL after init). Thread-safe;
 * costs one mutex round trip. Release with eng_set_unref(). */
eng_set_t *glue_mappings_acquire(void);
/* Compiles dir afresh with samples checked; on success swaps the set in and
 * logs "reload_ok", otherwise logs "reload_failed" and each diagnostic.
 * Returns 0 or the compile error. Called from the signal thread. */
int glue_mappings_reload(const char *dir);
/* Drops the current set (at exit). */
void glue_mappings_shutdown(void);
/* Logs a warning for each mapping whose signature secrets are all unset. */
void glue_mappings_warn_secrets(const eng_set_t *s);

/* ---- server (server.c) ------------------------------------------------- */

typedef struct glue_server glue_server_t;

/* Binds the listening socket (host:port of cfg; cfg must outlive the
 * server). Returns 0 or AM_EIO / AM_ENOMEM with a message in err. */
int glue_server_new(glue_server_t **out, const glue_config_t *cfg, char *err, size_t errlen);
/* Starts cfg->threads event loops answering with store (borrowed; it must
 * outlive glue_server_stop()); logs "listening". Returns 0 or AM_EIO. */
int glue_server_start(glue_server_t *srv, store_t *store);
/* Closes the listeners, waits for in-flight requests to complete (their
 * store callbacks), joins the threads. Call from the main thread. */
void glue_server_stop(glue_server_t *srv);
void glue_server_free(glue_server_t *srv);

/* ---- per-request plumbing shared by the handlers (server.c, http.c) ---- */

typedef struct glue_worker glue_worker_t;

/* State of one request, in the request's pool; released with it. */
typedef struct glue_reqctx {
    h2o_req_t *req;
    glue_server_t *srv;
    glue_worker_t *worker;
    am_arena_t *arena;
    eng_set_t *set;               /* reference held while the request lives */
    struct glue_pending *pending; /* an outstanding store call, or NULL */
    char request_id[40];
    const char *source; /* for the log line, in the arena */
    int64_t started_us;
    glue_route_kind_t route; /* for the request counters; GLUE_R_NONE until routed */
} glue_reqctx_t;

/* Outstanding store call of a request; heap, owned by whichever side ends
 * last: the store callback hands it to the loop, the loop frees it. */
typedef struct glue_pending {
    h2o_multithread_message_t msg;
    glue_worker_t *worker;
    glue_reqctx_t *rc; /* NULL once the request is gone (client left) */
    int kind;          /* GLUE_PENDING_INGEST / GLUE_PENDING_QUERY */
    bool with_list;
    /* filled on the store thread */
    store_status_t status;
    char message[256]; /* the store's reason when not STORE_OK */
    size_t nalerts;
    store_alert_outcome_t *outcomes;
    int http_status;
    char *body;
} glue_pending_t;

enum { GLUE_PENDING_INGEST = 1, GLUE_PENDING_QUERY = 2 };

store_t *glue_server_store(const glue_server_t *srv);
const glue_config_t *glue_server_config(const glue_server_t *srv);
/* Allocates a pending record bound to rc and counts it in flight on the
 * worker. NULL when out of memory. Loop thread only. */
glue_pending_t *glue_pending_new(glue_reqctx_t *rc, int kind);
/* Releases a pending record that was never handed to the store. */
void glue_pending_cancel(glue_pending_t *p);
/* From any thread: hands a filled pending record back to its loop, where
 * glue_pending_complete() runs. */
void glue_pending_post(glue_pending_t *p);
/* Loop thread: answers the request (if it is still there) from p. */
void glue_pending_complete(glue_pending_t *p);

/* Responses (http.c). Each sends the whole answer and logs the request. */
void glue_send_json(glue_reqctx_t *rc, int status, const char *body, size_t len);
void glue_send_value(glue_reqctx_t *rc, int status, json_t *v); /* steals v */
void glue_send_error(glue_reqctx_t *rc, int status, const char *code, const char *message);
/* Logs the request line (event "request"); alert_uuid may be NULL. */
void glue_log_request(const glue_reqctx_t *rc, int status, const char *alert_uuid,
                      const char *code);

/* Handlers (ingest.c, api.c). Each answers the request, now or later. */
void glue_handle_ingest(glue_reqctx_t *rc, const char *source, size_t len, bool dry_run);
void glue_handle_sources(glue_reqctx_t *rc);
void glue_handle_alert(glue_reqctx_t *rc, const char *uuid, size_t len);
void glue_handle_alerts(glue_reqctx_t *rc);
void glue_handle_metrics(glue_reqctx_t *rc);
/* Builds the store alerts of an engine result (arena a). body is the exact
 * request body text, used as raw_payload when the payload was not split.
 * Returns 0 or AM_ENOMEM. */
int glue_store_alerts(store_alert_t **out, const eng_result_t *res, json_t *payload,
                      const char *body, am_arena_t *a);

/* ---- metrics (metrics.c) ------------------------------------------------ */

/*
 * Process-wide counters for GET /metrics. They live in fixed-size static
 * tables of C11 atomics updated with relaxed ordering: any thread may count
 * without locks or allocation, and a scrape reads each value atomically (the
 * set is not a snapshot). Nothing here can fail but the rendering.
 */

/* Where ingest rejections are counted: the error codes of ingest.c and
 * server.c; any other code counts as GLUE_MREJ_OTHER ("OTHER"). */
typedef enum {
    GLUE_MREJ_INVALID_JSON,
    GLUE_MREJ_INVALID_PAYLOAD,
    GLUE_MREJ_INVALID_SIGNATURE,
    GLUE_MREJ_PAYLOAD_TOO_LARGE,
    GLUE_MREJ_UNKNOWN_SOURCE,
    GLUE_MREJ_DATABASE_UNAVAILABLE,
    GLUE_MREJ_LIMIT_EXCEEDED,
    GLUE_MREJ_METHOD_NOT_ALLOWED,
    GLUE_MREJ_INTERNAL,
    GLUE_MREJ_OTHER,
    GLUE_MREJ__COUNT
} glue_mreject_t;

/* Records the process start time (call once, early in main). */
void glue_metrics_start(int64_t now_us);
/* One answered request: route label from kind (GLUE_R_NONE is "other"),
 * code label the status (statuses outside 100..599 count as 599). When
 * kind is GLUE_R_INGEST and code (the API error code) is not NULL, the
 * rejection is counted too. */
void glue_metrics_request(glue_route_kind_t kind, int status, const char *code);
/* Alerts of one committed ingest. */
void glue_metrics_ingested(uint64_t created, uint64_t deduplicated);
/* The mapping set now in use has n sources; ok tells whether the (re)load
 * succeeded; reload is false for the initial load (not counted in
 * alertmap_reloads_total). */
void glue_metrics_mappings(bool reload, bool ok, size_t n, int64_t now_us);
/* The label of a route ("ingest", ..., "other"). */
const char *glue_metrics_route_label(glue_route_kind_t kind);
/* Appends s as a Prometheus label value: \, " and \n escaped (no quotes). */
void glue_metrics_label_value(am_buf_t *b, const char *s);
/* Appends every metric in the text exposition format 0.0.4. store may be
 * NULL (the alertmap_store_* metrics are then left out). Returns 0, or
 * AM_ENOMEM when b failed. */
int glue_metrics_render(am_buf_t *b, const store_stats_t *store);
/* Clears every counter (tests only; not safe while other threads count). */
void glue_metrics_reset(void);

#endif
