/*
 * h2o-glue/glue.h - internals of alertmapd shared by the files of h2o-glue/.
 *
 * Reading order: config.c (flags and environment), main.c (start-up, signals,
 * shutdown), reload.c (the current mapping set), server.c (listeners, one
 * h2o event loop per thread, store completions handed back to the loop),
 * route.c (the route table, path parameters, query strings), auth.c (API
 * keys, signatures and rate limits, checked from each row's scope before
 * its handler), http.c (responses, headers, ids),
 * ingest.c (POST /v1/ingest, dry run), api.c (read API, sources, /healthz),
 * ready.c (GET /readyz), metrics.c (counters and GET /metrics), metrics_db.c
 * (the job and delivery counts of GET /metrics),
 * h2o_compat.c (everything that depends on libh2o's internals).
 *
 * The pure helpers (config parsing, routes, query strings, JSON bodies) have
 * no global state and are unit-tested in tests/h2o-glue/, as are the
 * handlers' answers (test_respond.c) and the server in process
 * (test_server.c).
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
#define GLUE_DEFAULT_MAX_BODY  ((size_t)5 * 1024 * 1024)
#define GLUE_DEFAULT_DEDUP_S   ((int64_t)86400)
#define GLUE_DEFAULT_DB_WAIT_S 30
/* Per-request cost bounds (docs/operations.md, "Limits") */
#define GLUE_DEFAULT_MAX_ALERTS        1000
#define GLUE_DEFAULT_MAX_INDICATORS    10000
#define GLUE_DEFAULT_MAX_JSON_VALUES   200000
#define GLUE_DEFAULT_MAX_SCAN_BYTES    ((size_t)16 << 20)
#define GLUE_DEFAULT_MAX_DRY_RUN_BYTES ((size_t)4 << 20)
#define GLUE_DEFAULT_REPLAY_S          ((int64_t)86400)
/* The engine pool (pool.c): bodies larger than this run the engine on a
 * pool thread instead of the event loop; jobs that may wait for a thread. */
#define GLUE_DEFAULT_ENGINE_INLINE_MAX ((size_t)64 * 1024)
#define GLUE_DEFAULT_ENGINE_QUEUE      16
/* Replay protection: the longest delivery id / Idempotency-Key, and how old
 * an unfinished claim must be before a retry may take it over. */
#define GLUE_DELIVERY_KEY_MAX    200
#define GLUE_DELIVERY_TAKEOVER_S ((int64_t)60)
#define GLUE_MAX_THREADS         256
#define GLUE_MAX_BODY_LIMIT      ((size_t)1024 * 1024 * 1024)
/* Bytes past --max-body that are still read (and answered 413 by the
 * handler) before libh2o stops reading and closes the connection. */
#define GLUE_BODY_SLACK ((size_t)1024 * 1024)
/* Open connections (all loops together) before new ones are refused. */
#define GLUE_DEFAULT_MAX_CONNECTIONS 4096
/* How long a request may wait for the database before 503. */
#define GLUE_DEFAULT_DEADLINE_S 5
/* How long a client has to complete a TLS handshake, to send a request's
 * headers and body, and how long an idle keep-alive connection stays. */
#define GLUE_DEFAULT_CLIENT_TIMEOUT_S 10
/* The client timeout while open connections are near the cap. */
#define GLUE_PRESSURE_TIMEOUT_MS 1000
/* How long a loop stops accepting after EMFILE/ENFILE. */
#define GLUE_ACCEPT_PAUSE_MS 100

/* Who may read GET /metrics (--metrics-access). */
typedef enum {
    GLUE_METRICS_LOOPBACK = 0, /* no key from 127.0.0.0/8 and ::1, a read key from elsewhere */
    GLUE_METRICS_PUBLIC,       /* no key from anywhere */
    GLUE_METRICS_KEY           /* a key with scope read from everywhere */
} glue_metrics_access_t;

/* Default rate limits (requests per second, burst) of --rate-per-key and
 * --rate-per-source. */
#define GLUE_DEFAULT_RATE_PER_KEY     100.0
#define GLUE_DEFAULT_BURST_PER_KEY    1000.0
#define GLUE_DEFAULT_RATE_PER_SOURCE  500.0
#define GLUE_DEFAULT_BURST_PER_SOURCE 5000.0

/* The resolved configuration. Strings are borrowed from argv or the
 * environment (both live as long as the process). */
typedef struct glue_config {
    const char *listen;
    char host[256]; /* parsed from listen; without brackets */
    char port[8];
    const char *database_url;
    const char *mappings;
    const char *mappings_from; /* why: the flag, the variable or am_default_path's origin */
    const char *sql_dir;
    int threads;
    int writers;              /* store writer threads; 0 = the store's default (one per core) */
    int64_t writer_linger_us; /* a writer's wait for a fuller batch (storage/writer.c) */
    size_t max_body;
    int64_t dedup_window_s;
    int db_wait_s;
    am_log_level_t log_level;
    /* authentication and rate limits (auth.c); a rate of 0 turns a limiter off */
    double rate_per_key, burst_per_key;
    double rate_per_source, burst_per_source;
    glue_metrics_access_t metrics_access;
    const char *unsigned_sources; /* "generic,splunk": sources that may go unsigned; NULL: none */
    const char *tls_cert;         /* PEM certificate chain; NULL: plain HTTP */
    const char *tls_key;          /* PEM private key (set with tls_cert) */
    bool allow_plain_http;        /* plain HTTP on an address that is not loopback */
    int max_connections;
    int deadline_s;       /* request deadline for database work, seconds */
    int client_timeout_s; /* handshake, request headers and body, idle */
    int max_alerts;
    int max_indicators;
    int max_json_values;
    size_t max_scan_bytes;
    size_t max_dry_run_bytes;
    int64_t replay_window_s;
    /* engine pool (pool.c): threads (0: none, every request runs the engine
     * on its loop), waiting jobs, largest body run on the loop (0: default) */
    int engine_threads;
    int engine_queue;
    size_t engine_inline_max;
    /* enrichment worker (worker/worker.h) */
    bool role_worker; /* --role worker: workers only, no listener */
    int workers;
    const char *providers;
    const char *targets;
    int64_t worker_lease_s, worker_poll_s, worker_backoff_s;
    int worker_batch;   /* jobs per claim (docs/enrichment.md) */
    int ondemand_queue; /* POST /v1/enrichments lookups waiting at most */
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

/* A path pattern of the API; several methods may share one (GET and PATCH
 * /v1/alerts/{uuid}). Also the "route" label of the request metrics. */
typedef enum {
    GLUE_R_NONE = 0,
    GLUE_R_HEALTHZ,     /* GET /healthz */
    GLUE_R_INGEST,      /* POST /v1/ingest/{source_name} */
    GLUE_R_SOURCES,     /* GET /v1/sources */
    GLUE_R_SOURCE_TEST, /* POST /v1/sources/{source_name}/test */
    GLUE_R_ALERTS,      /* GET /v1/alerts */
    GLUE_R_ALERT,       /* GET, PATCH /v1/alerts/{uuid} */
    GLUE_R_METRICS,     /* GET /metrics */
    GLUE_R_READYZ,      /* GET /readyz */
    GLUE_R_DELIVERIES,  /* GET /v1/alerts/{uuid}/deliveries */
    GLUE_R_RETRY,       /* POST /v1/alerts/{uuid}/deliveries/{delivery_id}/retry */
    GLUE_R_ENRICHMENTS, /* POST /v1/enrichments */
    GLUE_R__COUNT
} glue_route_kind_t;

/* The credential a route needs. glue_auth_dispatch() (auth.c) checks it
 * from the row before the row's handler runs, the one place where it is
 * checked; tests walk the table so that no route is left open. */
typedef enum {
    GLUE_SCOPE_PUBLIC = 0, /* no credential: liveness, readiness */
    GLUE_SCOPE_INGEST,     /* post alerts: an ingest key or the mapping's signature */
    GLUE_SCOPE_READ,       /* read alerts */
    GLUE_SCOPE_WRITE,      /* change alerts (PATCH) */
    GLUE_SCOPE_ADMIN,      /* sources and their dry run */
    GLUE_SCOPE_METRICS,    /* public or a read key, as --metrics-access says */
    GLUE_SCOPE__COUNT
} glue_scope_t;

/* The name of a scope ("public", "ingest", ...). */
const char *glue_scope_name(glue_scope_t scope);

/* Path parameters of a matched route, pointing into the request's
 * normalized path (not NUL-terminated); {0} when the pattern has none. */
typedef struct glue_route_params {
    h2o_iovec_t source_name; /* {source_name} */
    h2o_iovec_t uuid;        /* {uuid} */
    h2o_iovec_t delivery_id; /* {delivery_id}: any segment; glue_parse_delivery_id checks it */
} glue_route_params_t;

struct glue_reqctx;
/* Answers the request, now or later (exactly once, through glue_respond). */
typedef void (*glue_handler_fn)(struct glue_reqctx *rc, const glue_route_params_t *params);

/* One row of the route table: a method on a path pattern. A pattern is
 * literal segments and parameter segments ("{source_name}", "{uuid}"); a
 * parameter matches one non-empty segment. */
typedef struct glue_route_entry {
    glue_route_kind_t kind;
    const char *method;  /* "GET", "POST", "PATCH" */
    const char *pattern; /* "/v1/alerts/{uuid}" */
    glue_scope_t scope;
    glue_handler_fn handle;
} glue_route_entry_t;

/* The route table (static, in route.c), n rows. The server registers one
 * h2o path per distinct glue_route_prefix() of it. */
const glue_route_entry_t *glue_route_table(size_t *n);
/* Length of the h2o path a pattern is registered under: its literal
 * segments before the first parameter, without a trailing slash
 * ("/v1/sources/{source_name}/test" -> "/v1/sources", "/healthz" -> all).
 * h2o hands that path, "PATH/" and everything below it to the handler. */
size_t glue_route_prefix(const char *pattern);
/* Whether path matches pattern exactly; fills params (the only place that
 * parses path parameters). A pattern naming an unknown parameter never
 * matches. */
bool glue_route_pattern_match(const char *pattern, const char *path, size_t len,
                              glue_route_params_t *params);

/* Finds the row for method and path among rows[0..n). Returns the row, or
 * NULL with *kind GLUE_R_NONE (no pattern matches the path) or the matched
 * pattern's kind (the path is known, the method is not allowed there).
 * params is filled for a known path. */
const glue_route_entry_t *glue_route_find(const glue_route_entry_t *const *rows, size_t n,
                                          const char *method, size_t mlen, const char *path,
                                          size_t len, glue_route_kind_t *kind,
                                          glue_route_params_t *params);

/* Match result over the whole table, by path only. */
typedef struct glue_route {
    glue_route_kind_t kind;
    const char *arg; /* {source_name} or {uuid}, pointing into the path; not NUL-terminated */
    size_t arg_len;
} glue_route_t;

/* Matches a normalized path (no query string). Returns true and fills out
 * when the path names a route; false (kind GLUE_R_NONE) otherwise. */
bool glue_route_match(glue_route_t *out, const char *path, size_t len);
/* Whether method (e.g. "POST") is allowed on the route. */
bool glue_route_allows(glue_route_kind_t kind, const char *method, size_t len);
/* The value of the Allow header for the route, e.g. "GET, PATCH": the
 * methods of its rows in table order ("" for GLUE_R_NONE). Thread-safe. */
const char *glue_route_allow_header(glue_route_kind_t kind);
/* Whether s is a UUID in 8-4-4-4-12 hex form (either case). */
bool glue_is_uuid(const char *s, size_t len);
/* A {delivery_id} segment: 1 to 18 decimal digits, no sign, no leading
 * zero, value 1..10^18-1 (a bigserial id). Returns 0 or AM_EINVAL. Pure. */
int glue_parse_delivery_id(int64_t *out, const char *s, size_t len);

typedef struct glue_qparam {
    const char *key;   /* decoded, NUL-terminated, in the arena */
    const char *value; /* decoded ("" when the parameter has no '=') */
} glue_qparam_t;

#define GLUE_MAX_QPARAMS 32

/* Splits a raw query string (without '?') on '&', decodes %XX and '+'.
 * Empty parts are skipped. Output in arena a. Returns 0, AM_EINVAL (bad %
 * escape or a NUL byte) or AM_ELIMIT (more than GLUE_MAX_QPARAMS, or the
 * arena's cap reached). */
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
 * string the caller frees (never NULL: a message that is not UTF-8 is
 * replaced by "(unprintable)"). */
char *glue_error_json(const char *code, const char *message);
/* The replay-protection store of ingest (ingest.c); NULL: none. Start-up
 * only (before the loops run). */
void glue_ingest_set_deliveries(store_deliveries_t *d);
/* The 202 body of an ingest as compact JSON text: {"data":{"alert_uuid",
 * "status","is_duplicate","duplicate_count"}} for the first alert, plus
 * "alerts":[...] for each one when with_list. Heap (the caller frees it);
 * NULL only when n is 0. Reentrant. */
char *glue_ingest_text(const store_alert_outcome_t *o, size_t n, bool with_list);
/* Adds the output filter that turns libh2o's own plain-text errors (413,
 * 400, 417, any other status >= 400 not sent by glue_respond) into the JSON
 * error body. */
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
/* Logs the ingest policy of each mapping (glue_auth_check_mappings). */
void glue_mappings_warn_secrets(const eng_set_t *s);

/* ---- server (server.c) ------------------------------------------------- */

typedef struct glue_server glue_server_t;

/* Binds the listening socket (host:port of cfg; cfg must outlive the
 * server), loads the TLS certificate and key when cfg has them, and
 * registers one h2o path per route prefix. Returns 0, AM_EIO (cannot
 * listen) or AM_EINVAL (plain HTTP on an address that is not loopback
 * without cfg->allow_plain_http; a certificate or key that does not load),
 * with a message in err. */
int glue_server_new(glue_server_t **out, const glue_config_t *cfg, char *err, size_t errlen);
/* Starts cfg->threads event loops answering with store (borrowed; it must
 * outlive glue_server_stop(); NULL only in tests: store routes then answer
 * 503) and the readiness checker; logs "listening". Returns 0 or AM_EIO
 * (a thread could not start; the loops already started keep running until
 * glue_server_stop()). */
int glue_server_start(glue_server_t *srv, store_t *store);
/* Closes the listeners, waits for in-flight requests to complete (their
 * store callbacks), stops the loops and the readiness checker. Safe after
 * a glue_server_start() that failed part-way or was never called, and on
 * NULL. Call from the main thread. */
void glue_server_stop(glue_server_t *srv);
void glue_server_free(glue_server_t *srv);
/* Re-reads cfg's TLS certificate and key (SIGHUP): on success new
 * handshakes use the new pair (open connections keep theirs) and
 * "tls_reloaded" is logged; on failure the pair in use stays and
 * "tls_reload_failed" is logged with OpenSSL's reason (AM_EINVAL). A no-op
 * without TLS. Thread-safe. */
int glue_server_reload_tls(glue_server_t *srv);
/* The bound address as "host:port" (port 0 resolved). */
const char *glue_server_address(const glue_server_t *srv);
/* Tests only: glue_server_start() fails as if the thread of worker i (and
 * those after it) could not be created; -1 (the default) turns it off. */
void glue_server_fail_start_at(int i);

/* ---- per-request plumbing shared by the handlers (server.c, http.c) ---- */

typedef struct glue_worker glue_worker_t;
typedef struct glue_pending glue_pending_t;

/* State of one request, in the request's pool; released with it. */
typedef struct glue_reqctx {
    h2o_req_t *req;
    glue_server_t *srv;
    glue_worker_t *worker; /* NULL in unit tests */
    am_arena_t *arena;
    eng_set_t *set;          /* reference held while the request lives */
    glue_pending_t *pending; /* an outstanding store call, or NULL */
    char request_id[40];
    const char *source;     /* for the log line, in the arena */
    char key[16];           /* "amk_xxxxxxxx" of the request's API key for the log line, or "" */
    int64_t key_id;         /* the verified key's id (0: none), recorded by a PATCH */
    const char *alert_uuid; /* for the log line, set before answering */
    int64_t started_us;
    glue_route_kind_t route; /* for the request counters; GLUE_R_NONE until routed */
    bool answered;           /* glue_respond() ran */
} glue_reqctx_t;

/* Loop thread: answers the request of p (still there) from p. */
typedef void (*glue_pending_fn)(glue_reqctx_t *rc, glue_pending_t *p);

/*
 * An outstanding call to another thread (store, readiness checker). A
 * handler embeds it as the first member of its own record. Heap, owned by
 * whichever side ends last: the other thread fills it and hands it to the
 * loop with glue_pending_post(); the loop calls complete (when the client
 * is still there), then dispose, then frees it.
 */
struct glue_pending {
    h2o_multithread_message_t msg;
    glue_worker_t *worker;
    glue_reqctx_t *rc; /* NULL once the request is gone (client left) */
    glue_pending_fn complete;
    void (*dispose)(glue_pending_t *p); /* frees what the record holds; may be NULL */
    /* the request deadline (--request-deadline): when it passes first, the
     * request is answered 503 and detached (rc NULL, timed_out true); the
     * late answer of the other thread is then dropped */
    h2o_timeout_entry_t deadline;
    bool timed_out;
};

store_t *glue_server_store(const glue_server_t *srv);
const glue_config_t *glue_server_config(const glue_server_t *srv);
/* The server's readiness checker (NULL before glue_server_start()). */
struct glue_ready *glue_server_ready(const glue_server_t *srv);
/* Whether w's loop is stopping (false for NULL). Loop thread of w. */
bool glue_worker_stopping(const glue_worker_t *w);
/* Allocates a zeroed record of size bytes (>= sizeof(glue_pending_t)) bound
 * to rc, counted in flight on the worker. Never NULL. Loop thread only. */
void *glue_pending_new(glue_reqctx_t *rc, size_t size, glue_pending_fn complete,
                       void (*dispose)(glue_pending_t *p));
/* Releases a record that was never handed to another thread. */
void glue_pending_cancel(glue_pending_t *p);
/* From any thread: hands a filled record back to its loop. */
void glue_pending_post(glue_pending_t *p);

/*
 * Responses (http.c). glue_respond() is the only function that sends an
 * answer: it sets the status, Content-Type, X-Request-Id (and Retry-After
 * for a 503), sends body (copied), logs the request line and counts it in
 * the metrics, once. code is the API error code for the log and the
 * counters (NULL for a success). A second call for the same request is a
 * programming error (asserted). The helpers below end in glue_respond().
 */
void glue_respond(glue_reqctx_t *rc, int status, const char *content_type, const char *body,
                  size_t len, const char *code);
/* A JSON body as given. */
void glue_send_json(glue_reqctx_t *rc, int status, const char *body, size_t len);
/* The JSON text of v (stolen); v NULL is answered 500 INTERNAL instead. */
void glue_send_value(glue_reqctx_t *rc, int status, json_t *v);
void glue_send_error(glue_reqctx_t *rc, int status, const char *code, const char *message);
/* The request line (event "request") and the counters; glue_respond() and
 * the filter for libh2o's own 413 call it. alert_uuid and code may be NULL. */
void glue_log_request(h2o_req_t *req, glue_route_kind_t route, const char *request_id,
                      const char *source, const char *key, int64_t started_us, int status,
                      const char *alert_uuid, const char *code);

/* ---- authentication and rate limits (auth.c) ---------------------------- */

/* Reads the policy of cfg (the sources of --unsigned-sources, --metrics-access)
 * and creates the rate limiters; logs "auth_policy". Start-up only, before
 * the mappings are loaded. */
void glue_auth_init(const glue_config_t *cfg);
/* The key verifier the routes use (borrowed; NULL: every key check answers
 * 503). Start-up only, before the loops start. */
void glue_auth_set_keys(store_keys_t *keys);
/* Frees the limiters and forgets the verifier (after the loops stopped). */
void glue_auth_shutdown(void);
/* Runs row's handler for the request if its credential satisfies the row's
 * scope, now or after the key verifier answered; otherwise answers 401,
 * 403, 429 (Retry-After) or 503 itself. The one place where scopes are
 * enforced (server.c calls it for every routed request). Loop thread. */
void glue_auth_dispatch(glue_reqctx_t *rc, const glue_route_entry_t *row,
                        const glue_route_params_t *params);
/* Logs, for each mapping of s, the ingest policy that follows from its
 * signature block and the environment: an error for a source that refuses
 * every request (signature secrets unset, not opted out), a warning for an
 * opted-out source; and a warning for each opted-out name that is no
 * source. At start-up and after each reload. */
void glue_auth_check_mappings(const eng_set_t *s);
/* The API key of a request's headers: X-API-Key, else the credentials of
 * "Authorization: Bearer ..." (the scheme in any case), trimmed. Cookies
 * are never read. Returns false when neither is there. Pure. */
bool glue_auth_header_token(const h2o_headers_t *headers, const char **token, size_t *len);
/* Whether name is one of the comma-separated names of list (spaces around
 * a name ignored; list NULL: false). Pure. */
bool glue_auth_list_has(const char *list, const char *name);

/* The events an am_lograte_t counted since its last line, when its
 * interval has passed (else 0): for a periodic flush, so that the count of
 * the last burst is written even when no further event comes. Thread-safe. */
uint64_t glue_lograte_due(am_lograte_t *lr, int64_t now_us);
/* Writes the summary lines that are due (503 answers). Called by every
 * loop about every 100 ms. Thread-safe. */
void glue_log_flush(int64_t now_us);

/* Handlers of the route table (ingest.c, api.c, ready.c, metrics.c). */
void glue_handle_ingest(glue_reqctx_t *rc, const glue_route_params_t *params);
/* GET /v1/ingest/{source}: the mapping's verification handshake (Okta's
 * X-Okta-Verification-Challenge), 405 when the mapping declares none. */
void glue_handle_verification(glue_reqctx_t *rc, const glue_route_params_t *params);
void glue_handle_source_test(glue_reqctx_t *rc, const glue_route_params_t *params);
void glue_handle_sources(glue_reqctx_t *rc, const glue_route_params_t *params);
void glue_handle_alert(glue_reqctx_t *rc, const glue_route_params_t *params);
void glue_handle_alerts(glue_reqctx_t *rc, const glue_route_params_t *params);
/* GET /v1/alerts/{uuid}/deliveries and POST .../{delivery_id}/retry (api.c). */
void glue_handle_deliveries(glue_reqctx_t *rc, const glue_route_params_t *params);
void glue_handle_delivery_retry(glue_reqctx_t *rc, const glue_route_params_t *params);
void glue_handle_healthz(glue_reqctx_t *rc, const glue_route_params_t *params);
void glue_handle_readyz(glue_reqctx_t *rc, const glue_route_params_t *params);
void glue_handle_metrics(glue_reqctx_t *rc, const glue_route_params_t *params);
/* POST /v1/enrichments (enrich_api.c): one indicator enriched on demand by
 * the worker's on-demand thread, set with glue_enrich_set_worker (start-up
 * only; NULL: answered 503 ENRICHMENT_UNAVAILABLE). */
void glue_handle_enrichments(glue_reqctx_t *rc, const glue_route_params_t *params);
typedef struct wk wk_t;
void glue_enrich_set_worker(wk_t *w);
/* Builds the store alerts of an engine result (arena a). body is the exact
 * request body text, used as raw_payload when the payload was not split.
 * Returns 0 or AM_ELIMIT (the arena's cap reached). */
int glue_store_alerts(store_alert_t **out, const eng_result_t *res, json_t *payload,
                      const char *body, am_arena_t *a);

/* ---- the engine pool (pool.c) ------------------------------------------ */

/* A job of the pool, embedded in the caller's record: run is called once on
 * a pool thread. */
typedef struct glue_pool_item {
    struct glue_pool_item *next; /* the pool's */
    void (*run)(struct glue_pool_item *it);
} glue_pool_item_t;

/* Starts cfg->engine_threads threads (none when 0; a no-op when started).
 * Returns 0 or AM_EIO (a thread could not start; those started run). */
int glue_pool_start(const glue_config_t *cfg);
/* Runs what is still queued, then joins the threads. After the loops stop. */
void glue_pool_stop(void);
/* Whether the pool has threads. */
bool glue_pool_running(void);
/* Bodies larger than this go to the pool (cfg->engine_inline_max or the
 * default). */
size_t glue_pool_inline_max(const glue_config_t *cfg);
/* Queues it. Returns 0, AM_ELIMIT (every thread busy and the queue full) or
 * AM_EUNAVAIL (no pool). Thread-safe. */
int glue_pool_submit(glue_pool_item_t *it);
/* Jobs running now and waiting now. Thread-safe. */
void glue_pool_stats(size_t *running, size_t *queued);

/* ---- readiness (ready.c) ------------------------------------------------ */

/* How long a readiness answer is reused, and how long one database check
 * may take. */
#define GLUE_READY_CACHE_US   ((int64_t)1000000)
#define GLUE_READY_TIMEOUT_MS 1000

typedef struct glue_ready glue_ready_t;

/* Starts the checker thread that pings the database at conninfo (borrowed)
 * on demand. Never NULL. */
glue_ready_t *glue_ready_new(const char *conninfo);
/* Stops the thread; waiting requests are answered "shutting down". NULL is
 * a no-op. */
void glue_ready_free(glue_ready_t *r);

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
 * AM_ELIMIT when b is bounded and the text passed its bound. */
int glue_metrics_render(am_buf_t *b, const store_stats_t *store);
/* Clears every counter (tests only; not safe while other threads count). */
void glue_metrics_reset(void);

/* ---- metrics from the database (metrics_db.c) --------------------------- */

/* How long one count of jobs and deliveries is reused. */
#define GLUE_QUEUE_COUNTS_CACHE_US ((int64_t)1000000)
#define GLUE_QC_STATES             4

/* Jobs (queued, running, done, failed) and deliveries (pending, sending,
 * delivered, failed) in the database. */
typedef struct glue_queue_counts {
    bool have_store; /* false: no database configured, nothing to show */
    bool ok;         /* the count succeeded */
    uint64_t jobs[GLUE_QC_STATES];
    uint64_t deliveries[GLUE_QC_STATES];
} glue_queue_counts_t;

typedef void (*glue_queue_counts_fn)(glue_reqctx_t *rc, const glue_queue_counts_t *c);
/* The counts for a scrape: true when *out holds them now (cached, or none
 * to show); false when the request waits for a count, then(rc, counts) is
 * called later on its loop thread (not when the client has gone). Loop
 * thread. */
bool glue_queue_counts_get(glue_reqctx_t *rc, glue_queue_counts_t *out, glue_queue_counts_fn then);
/* Appends alertmap_queue_counts_up and, when the count succeeded,
 * alertmap_enrichment_jobs{status} and alertmap_dispatch_deliveries{status}
 * (nothing without a store). */
void glue_queue_counts_render(am_buf_t *b, const glue_queue_counts_t *c);

#endif
