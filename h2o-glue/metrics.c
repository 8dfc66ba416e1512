/*
 * h2o-glue/metrics.c - process counters and GET /metrics in the Prometheus
 * text exposition format 0.0.4.
 *
 * Every counter is a C11 atomic in a fixed-size static table, updated with
 * relaxed ordering from whichever thread sees the event (event loops, the
 * store's writer thread, the signal thread). There is no lock and no
 * allocation on the counting side; the request table has one slot per route
 * and HTTP status, so its size never changes. A scrape reads each value
 * atomically; values read together are not a snapshot (a request counted
 * between two reads shows in one and not the other).
 */
#include "glue.h"

#include "worker.h"

#include <stdatomic.h>
#include <string.h>

#define ROUTES     ((int)GLUE_R__COUNT)
#define STATUS_MIN 100
#define STATUS_MAX 599
#define STATUSES   (STATUS_MAX - STATUS_MIN + 1)

static _Atomic uint64_t requests[ROUTES][STATUSES];
static _Atomic uint64_t alerts_created, alerts_deduplicated;
static _Atomic uint64_t rejected[GLUE_MREJ__COUNT];
static _Atomic uint64_t reloads_ok, reloads_failed;
static _Atomic uint64_t mappings_loaded;
static _Atomic int64_t last_load_ok_us, start_us;

static const char *const reject_codes[GLUE_MREJ__COUNT] = {
    [GLUE_MREJ_INVALID_JSON] = "INVALID_JSON",
    [GLUE_MREJ_INVALID_PAYLOAD] = "INVALID_PAYLOAD",
    [GLUE_MREJ_INVALID_SIGNATURE] = "INVALID_SIGNATURE",
    [GLUE_MREJ_PAYLOAD_TOO_LARGE] = "PAYLOAD_TOO_LARGE",
    [GLUE_MREJ_UNKNOWN_SOURCE] = "UNKNOWN_SOURCE",
    [GLUE_MREJ_DATABASE_UNAVAILABLE] = "DATABASE_UNAVAILABLE",
    [GLUE_MREJ_LIMIT_EXCEEDED] = "LIMIT_EXCEEDED",
    [GLUE_MREJ_METHOD_NOT_ALLOWED] = "METHOD_NOT_ALLOWED",
    [GLUE_MREJ_INTERNAL] = "INTERNAL",
    [GLUE_MREJ_OTHER] = "OTHER",
};

static void add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

void glue_metrics_start(int64_t now_us)
{
    atomic_store_explicit(&start_us, now_us, memory_order_relaxed);
}

const char *glue_metrics_route_label(glue_route_kind_t kind)
{
    switch (kind) {
    case GLUE_R_INGEST:
        return "ingest";
    case GLUE_R_SOURCE_TEST:
        return "source_test";
    case GLUE_R_ALERTS:
        return "alerts";
    case GLUE_R_ALERT:
        return "alert";
    case GLUE_R_SOURCES:
        return "sources";
    case GLUE_R_HEALTHZ:
        return "healthz";
    case GLUE_R_METRICS:
        return "metrics";
    case GLUE_R_READYZ:
        return "readyz";
    case GLUE_R_DELIVERIES:
        return "deliveries";
    case GLUE_R_RETRY:
        return "delivery_retry";
    case GLUE_R_ENRICHMENTS:
        return "enrichments";
    case GLUE_R_NONE:
    case GLUE_R__COUNT:
        break;
    }
    return "other";
}

static glue_mreject_t reject_index(const char *code)
{
    for (int i = 0; i < GLUE_MREJ_OTHER; i++)
        if (strcmp(code, reject_codes[i]) == 0)
            return (glue_mreject_t)i;
    return GLUE_MREJ_OTHER;
}

void glue_metrics_request(glue_route_kind_t kind, int status, const char *code)
{
    int r = (int)kind;
    if (r < 0 || r >= ROUTES)
        r = (int)GLUE_R_NONE;
    if (status < STATUS_MIN || status > STATUS_MAX)
        status = STATUS_MAX;
    add(&requests[r][status - STATUS_MIN], 1);
    if (kind == GLUE_R_INGEST && code != NULL)
        add(&rejected[reject_index(code)], 1);
}

void glue_metrics_ingested(uint64_t created, uint64_t deduplicated)
{
    add(&alerts_created, created);
    add(&alerts_deduplicated, deduplicated);
}

void glue_metrics_mappings(bool reload, bool ok, size_t n, int64_t now_us)
{
    if (reload)
        add(ok ? &reloads_ok : &reloads_failed, 1);
    if (!ok)
        return;
    atomic_store_explicit(&mappings_loaded, (uint64_t)n, memory_order_relaxed);
    atomic_store_explicit(&last_load_ok_us, now_us, memory_order_relaxed);
}

void glue_metrics_reset(void)
{
    for (int r = 0; r < ROUTES; r++)
        for (int s = 0; s < STATUSES; s++)
            atomic_store(&requests[r][s], 0);
    for (int i = 0; i < GLUE_MREJ__COUNT; i++)
        atomic_store(&rejected[i], 0);
    atomic_store(&alerts_created, 0);
    atomic_store(&alerts_deduplicated, 0);
    atomic_store(&reloads_ok, 0);
    atomic_store(&reloads_failed, 0);
    atomic_store(&mappings_loaded, 0);
    atomic_store(&last_load_ok_us, 0);
    atomic_store(&start_us, 0);
}

/* ---- rendering ---------------------------------------------------------- */

void glue_metrics_label_value(am_buf_t *b, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            am_buf_puts(b, "\\\\");
        else if (*s == '"')
            am_buf_puts(b, "\\\"");
        else if (*s == '\n')
            am_buf_puts(b, "\\n");
        else
            am_buf_putc(b, *s);
    }
}

static void header(am_buf_t *b, const char *name, const char *type, const char *help)
{
    am_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{label="value"} n, or name n when label is NULL. */
static void sample(am_buf_t *b, const char *name, const char *label, const char *value, uint64_t n)
{
    am_buf_puts(b, name);
    if (label != NULL) {
        am_buf_printf(b, "{%s=\"", label);
        glue_metrics_label_value(b, value);
        am_buf_puts(b, "\"}");
    }
    am_buf_printf(b, " %llu\n", (unsigned long long)n);
}

static void seconds(am_buf_t *b, const char *name, int64_t us)
{
    if (us < 0)
        us = 0;
    am_buf_printf(b, "%s %lld.%06lld\n", name, (long long)(us / 1000000),
                  (long long)(us % 1000000));
}

static void render_requests(am_buf_t *b)
{
    static const char name[] = "alertmap_http_requests_total";
    header(b, name, "counter", "HTTP requests answered, by route and status code.");
    for (int r = 0; r < ROUTES; r++) {
        for (int s = 0; s < STATUSES; s++) {
            uint64_t n = get(&requests[r][s]);
            if (n == 0)
                continue;
            am_buf_printf(b, "%s{route=\"", name);
            glue_metrics_label_value(b, glue_metrics_route_label((glue_route_kind_t)r));
            am_buf_printf(b, "\",code=\"%d\"} %llu\n", s + STATUS_MIN, (unsigned long long)n);
        }
    }
}

static void render_store(am_buf_t *b, const store_stats_t *st)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } rows[] = {
        {"alertmap_store_transactions_total", "counter",
         "Batch transactions of the writer that ran to their end.",
         offsetof(store_stats_t, transactions)},
        {"alertmap_store_batches_failed_total", "counter",
         "Batch transactions rolled back or not started.", offsetof(store_stats_t, batches_failed)},
        {"alertmap_store_alerts_inserted_total", "counter", "New alert rows committed.",
         offsetof(store_stats_t, alerts_inserted)},
        {"alertmap_store_alerts_deduplicated_total", "counter",
         "Alerts committed as duplicates of an earlier alert.",
         offsetof(store_stats_t, alerts_deduplicated)},
        {"alertmap_store_alerts_settled_total", "counter",
         "New alerts written Enriched at ingest with no enrichment job: no live worker has "
         "a provider for any of their indicator types, and none has targets.",
         offsetof(store_stats_t, alerts_settled)},
        {"alertmap_store_queries_total", "counter", "Read-API queries answered by the store.",
         offsetof(store_stats_t, queries)},
        {"alertmap_store_reconnects_total", "counter",
         "Successful database (re)connections, all store threads.",
         offsetof(store_stats_t, reconnects)},
        {"alertmap_store_queue_depth", "gauge", "Ingest requests waiting for the writer now.",
         offsetof(store_stats_t, queue_depth)},
    };
    for (size_t i = 0; i < AM_ARRAY_LEN(rows); i++) {
        uint64_t v;
        memcpy(&v, (const char *)st + rows[i].off, sizeof(v));
        header(b, rows[i].name, rows[i].type, rows[i].help);
        sample(b, rows[i].name, NULL, NULL, v);
    }
    static const char req[] = "alertmap_store_requests_total";
    header(b, req, "counter", "Ingest requests completed by the store, by result.");
    sample(b, req, "result", "ok", st->requests_ok);
    sample(b, req, "result", "failed", st->requests_failed);
}

int glue_metrics_render(am_buf_t *b, const store_stats_t *store)
{
    render_requests(b);

    static const char alerts[] = "alertmap_ingest_alerts_total";
    header(b, alerts, "counter", "Alerts of committed ingests, new or deduplicated.");
    sample(b, alerts, "result", "created", get(&alerts_created));
    sample(b, alerts, "result", "deduplicated", get(&alerts_deduplicated));

    static const char rej[] = "alertmap_ingest_rejected_total";
    header(b, rej, "counter", "Ingest requests answered with an error, by error code.");
    for (int i = 0; i < GLUE_MREJ__COUNT; i++)
        sample(b, rej, "code", reject_codes[i], get(&rejected[i]));

    if (store != NULL)
        render_store(b, store);

    static const char loaded[] = "alertmap_mappings_loaded";
    header(b, loaded, "gauge", "Sources of the mapping set in use.");
    sample(b, loaded, NULL, NULL, get(&mappings_loaded));

    static const char rel[] = "alertmap_reloads_total";
    header(b, rel, "counter", "Mapping reloads (SIGHUP), by result.");
    sample(b, rel, "result", "ok", get(&reloads_ok));
    sample(b, rel, "result", "failed", get(&reloads_failed));

    static const char last[] = "alertmap_reload_last_success_timestamp_seconds";
    header(b, last, "gauge", "Unix time the mapping set in use was loaded (start-up or reload).");
    seconds(b, last, atomic_load_explicit(&last_load_ok_us, memory_order_relaxed));

    static const char start[] = "alertmap_start_time_seconds";
    header(b, start, "gauge", "Unix time the process started.");
    seconds(b, start, atomic_load_explicit(&start_us, memory_order_relaxed));

    static const char info[] = "alertmap_build_info";
    header(b, info, "gauge", "Always 1; the version label names the running build.");
    sample(b, info, "version", ALERTMAP_VERSION, 1);

    size_t pool_running, pool_queued;
    glue_pool_stats(&pool_running, &pool_queued);
    static const char prun[] = "alertmap_engine_pool_running";
    header(b, prun, "gauge", "Requests being normalized on engine threads now.");
    sample(b, prun, NULL, NULL, (uint64_t)pool_running);
    static const char pq[] = "alertmap_engine_pool_queued";
    header(b, pq, "gauge",
           "Requests waiting for an engine thread now (ENGINE_BUSY past --engine-queue).");
    sample(b, pq, NULL, NULL, (uint64_t)pool_queued);

    wk_metrics_render(b); /* the enrichment worker's counters (worker.h) */

    return am_buf_ok(b) ? AM_OK : AM_ELIMIT;
}

/* ---- GET /metrics ------------------------------------------------------- */

/* Loop thread: renders and sends the metrics with the database counts qc. */
static void send_metrics(glue_reqctx_t *rc, const glue_queue_counts_t *qc)
{
    store_stats_t st;
    store_t *store = glue_server_store(rc->srv);
    if (store != NULL)
        store_stats(store, &st);
    am_buf_t b;
    /* the largest text (every route with every status) is far below this */
    am_buf_init(&b, (size_t)4 * 1024 * 1024);
    int rrc = glue_metrics_render(&b, store ? &st : NULL);
    glue_queue_counts_render(&b, qc);
    if (rrc != AM_OK || !am_buf_ok(&b)) {
        am_buf_dispose(&b);
        glue_send_error(rc, 500, "INTERNAL", "the metrics text passed its bound");
        return;
    }
    /* counted when sent, after rendering: a scrape shows in the next one */
    glue_respond(rc, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len, NULL);
    am_buf_dispose(&b);
}

void glue_handle_metrics(glue_reqctx_t *rc, const glue_route_params_t *params)
{
    (void)params;
    /* the job and delivery counts come from the database (metrics_db.c):
     * cached, or waited for without blocking the loop */
    glue_queue_counts_t qc;
    if (glue_queue_counts_get(rc, &qc, send_metrics))
        send_metrics(rc, &qc);
}
