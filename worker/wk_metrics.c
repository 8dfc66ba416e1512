/*
 * worker/wk_metrics.c - the worker's in-process counters (wk_int.h) and
 * their Prometheus text (worker.h, wk_metrics_render). Every counter is a
 * C11 atomic in a fixed-size static table, added to with relaxed ordering
 * by the worker threads; only registering a provider name (start-up and
 * reload) takes a lock. Counts are this process's since it started.
 */
#include "wk_int.h"

#include <string.h>

#define MAX_PROVIDERS 64
#define NBUCKETS      12

/* Upper bounds of the latency histogram, in µs (the last is +Inf). */
static const int64_t bucket_us[NBUCKETS - 1] = {5000,   10000,   25000,   50000,   100000,  250000,
                                                500000, 1000000, 2500000, 5000000, 10000000};
static const char *const bucket_le[NBUCKETS] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                                                "0.5",   "1",    "2.5",   "5",    "10",  "+Inf"};
static const char *const err_names[WK_ERR__COUNT] = {
    [WK_ERR_TIMEOUT] = "timeout", [WK_ERR_CONNECT] = "connection",  [WK_ERR_429] = "429",
    [WK_ERR_5XX] = "5xx",         [WK_ERR_MALFORMED] = "malformed", [WK_ERR_STATUS] = "status",
};
static const char *const job_names[WK_JOB__COUNT] = {
    [WK_JOB_ENRICHED] = "enriched", [WK_JOB_FAILED] = "failed", [WK_JOB_RETRIED] = "retried"};

typedef struct prow {
    char name[64];
    _Atomic uint64_t buckets[NBUCKETS]; /* not cumulative */
    _Atomic uint64_t sum_us, count;
    _Atomic uint64_t errors[WK_ERR__COUNT];
} prow_t;

static pthread_mutex_t names_mu = PTHREAD_MUTEX_INITIALIZER;
static prow_t rows[MAX_PROVIDERS];
static atomic_int nrows; /* published after the row's name is written */
static _Atomic uint64_t cache_hits, cache_misses;
static _Atomic uint64_t jobs[WK_JOB__COUNT];
static _Atomic uint64_t ondemand_2xx, ondemand_4xx, ondemand_503, ondemand_other;

static void add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

int wk_metrics_provider(const char *name)
{
    pthread_mutex_lock(&names_mu);
    int n = atomic_load_explicit(&nrows, memory_order_acquire);
    int found = -1;
    for (int i = 0; i < n && found < 0; i++)
        if (strcmp(rows[i].name, name) == 0)
            found = i;
    if (found < 0 && n < MAX_PROVIDERS) {
        snprintf(rows[n].name, sizeof(rows[n].name), "%s", name);
        found = n;
        atomic_store_explicit(&nrows, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&names_mu);
    return found;
}

void wk_metrics_request(int row, int64_t took_us, wk_err_kind_t err)
{
    if (row < 0 || row >= MAX_PROVIDERS)
        return;
    prow_t *r = &rows[row];
    size_t b = 0;
    while (b < NBUCKETS - 1 && took_us > bucket_us[b])
        b++;
    add(&r->buckets[b], 1);
    add(&r->sum_us, took_us > 0 ? (uint64_t)took_us : 0);
    add(&r->count, 1);
    if (err != WK_ERR_NONE)
        add(&r->errors[err], 1);
}

void wk_metrics_cache(bool hit)
{
    add(hit ? &cache_hits : &cache_misses, 1);
}

void wk_metrics_job(wk_job_end_t end)
{
    add(&jobs[end], 1);
}

void wk_metrics_ondemand(int http_status)
{
    if (http_status >= 200 && http_status <= 299)
        add(&ondemand_2xx, 1);
    else if (http_status >= 400 && http_status <= 499)
        add(&ondemand_4xx, 1);
    else if (http_status == 503)
        add(&ondemand_503, 1);
    else
        add(&ondemand_other, 1);
}

static void label(am_buf_t *b, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"')
            am_buf_putc(b, '\\');
        if (*s == '\n')
            am_buf_puts(b, "\\n");
        else
            am_buf_putc(b, *s);
    }
}

static void header(am_buf_t *b, const char *name, const char *type, const char *help)
{
    am_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void wk_metrics_render(am_buf_t *b)
{
    int n = atomic_load_explicit(&nrows, memory_order_acquire);
    static const char lat[] = "alertmap_enrichment_provider_request_duration_seconds";
    header(b, lat, "histogram", "Provider HTTP requests of this process by provider.");
    for (int i = 0; i < n; i++) {
        uint64_t cum = 0;
        for (int k = 0; k < NBUCKETS; k++) {
            cum += get(&rows[i].buckets[k]);
            am_buf_printf(b, "%s_bucket{provider=\"", lat);
            label(b, rows[i].name);
            am_buf_printf(b, "\",le=\"%s\"} %llu\n", bucket_le[k], (unsigned long long)cum);
        }
        uint64_t sum = get(&rows[i].sum_us);
        am_buf_printf(b, "%s_sum{provider=\"", lat);
        label(b, rows[i].name);
        am_buf_printf(b, "\"} %llu.%06llu\n", (unsigned long long)(sum / 1000000),
                      (unsigned long long)(sum % 1000000));
        am_buf_printf(b, "%s_count{provider=\"", lat);
        label(b, rows[i].name);
        am_buf_printf(b, "\"} %llu\n", (unsigned long long)get(&rows[i].count));
    }
    static const char errs[] = "alertmap_enrichment_provider_errors_total";
    header(b, errs, "counter",
           "Provider requests of this process that failed, by provider and kind "
           "(timeout, connection, 429, 5xx, malformed, status).");
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < WK_ERR__COUNT; k++) {
            am_buf_printf(b, "%s{provider=\"", errs);
            label(b, rows[i].name);
            am_buf_printf(b, "\",kind=\"%s\"} %llu\n", err_names[k],
                          (unsigned long long)get(&rows[i].errors[k]));
        }
    }
    static const char cache[] = "alertmap_enrichment_cache_lookups_total";
    header(b, cache, "counter",
           "Lookups of an http provider's answer in the result cache by this process, by "
           "result (hit: fresh, no request).");
    am_buf_printf(b, "%s{result=\"hit\"} %llu\n%s{result=\"miss\"} %llu\n", cache,
                  (unsigned long long)get(&cache_hits), cache,
                  (unsigned long long)get(&cache_misses));
    static const char jb[] = "alertmap_enrichment_jobs_processed_total";
    header(b, jb, "counter",
           "Enrichment jobs this process's workers ended, by outcome (retried: back in the "
           "queue).");
    for (int k = 0; k < WK_JOB__COUNT; k++)
        am_buf_printf(b, "%s{outcome=\"%s\"} %llu\n", jb, job_names[k],
                      (unsigned long long)get(&jobs[k]));
    static const char od[] = "alertmap_enrichment_ondemand_total";
    header(b, od, "counter", "POST /v1/enrichments lookups of this process by answer.");
    am_buf_printf(
        b,
        "%s{code=\"2xx\"} %llu\n%s{code=\"4xx\"} %llu\n%s{code=\"503\"} %llu\n"
        "%s{code=\"other\"} %llu\n",
        od, (unsigned long long)get(&ondemand_2xx), od, (unsigned long long)get(&ondemand_4xx), od,
        (unsigned long long)get(&ondemand_503), od, (unsigned long long)get(&ondemand_other));
}
