/*
 * h2o-glue/metrics_db.c - the metrics of GET /metrics that come from the
 * database: enrichment jobs and dispatch deliveries by status, for the
 * whole deployment (every process shares the tables).
 *
 * The counts are one query (store_query STORE_Q_QUEUE_COUNTS, run by a
 * reader thread; storage/dispatch_api.c says what index serves each
 * count) whose answer is reused for GLUE_QUEUE_COUNTS_CACHE_US: however
 * many scrapes arrive, the database sees at most one count a second per
 * process. A scrape that finds the counts stale waits (as a pending record,
 * never blocking its loop) for the next count, and every scrape waiting
 * then gets that one answer, as /readyz does with its database check
 * (ready.c). A failed count is cached as well, and shown as
 * alertmap_queue_counts_up 0 without the status gauges; so is a count still
 * waiting for the database after a second (a hung database delays one
 * scrape, at most until the request deadline, not every scrape).
 */
#include "glue.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct qc_pending {
    glue_pending_t base;
    struct qc_pending *next; /* waiting list, under the lock */
    glue_queue_counts_fn then;
    glue_queue_counts_t counts; /* filled before the post */
} qc_pending_t;

/* One cache per process: the store it was read from, when, and what. */
static struct {
    pthread_mutex_t lock;
    const store_t *store;
    int64_t at_us; /* monotonic; 0 = never counted */
    glue_queue_counts_t counts;
    bool inflight; /* a count is queued to a reader */
    int64_t inflight_since_us;
    qc_pending_t *waiting;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char *const job_states[GLUE_QC_STATES] = {"queued", "running", "done", "failed"};
static const char *const delivery_states[GLUE_QC_STATES] = {"pending", "sending", "delivered",
                                                            "failed"};

/* {"data":{"jobs":{...},"deliveries":{...}}} into c (ok false when the
 * answer is not that). */
static void parse_counts(glue_queue_counts_t *c, const store_reply_t *reply)
{
    memset(c, 0, sizeof(*c));
    c->have_store = true;
    if (reply->http_status != 200 || reply->body == NULL)
        return;
    json_t *root = json_loads(reply->body, 0, NULL);
    json_t *data = json_object_get(root, "data");
    json_t *jobs = json_object_get(data, "jobs"), *dels = json_object_get(data, "deliveries");
    bool ok = json_is_object(jobs) && json_is_object(dels);
    for (int i = 0; ok && i < GLUE_QC_STATES; i++) {
        json_t *j = json_object_get(jobs, job_states[i]);
        json_t *d = json_object_get(dels, delivery_states[i]);
        ok = json_is_integer(j) && json_is_integer(d);
        if (ok) {
            c->jobs[i] = json_integer_value(j) > 0 ? (uint64_t)json_integer_value(j) : 0;
            c->deliveries[i] = json_integer_value(d) > 0 ? (uint64_t)json_integer_value(d) : 0;
        }
    }
    c->ok = ok;
    json_decref(root);
}

/* Runs on a store reader thread: caches the answer, hands it to every
 * scrape waiting. */
static void on_counts(const store_reply_t *reply, void *ctx)
{
    (void)ctx;
    glue_queue_counts_t c;
    parse_counts(&c, reply);
    pthread_mutex_lock(&cache.lock);
    cache.counts = c;
    cache.at_us = mono_us();
    cache.inflight = false;
    qc_pending_t *list = cache.waiting;
    cache.waiting = NULL;
    pthread_mutex_unlock(&cache.lock);
    while (list != NULL) {
        qc_pending_t *next = list->next;
        list->counts = c;
        glue_pending_post(&list->base);
        list = next;
    }
}

static void qc_complete(glue_reqctx_t *rc, glue_pending_t *base)
{
    qc_pending_t *p = (qc_pending_t *)base;
    p->then(rc, &p->counts);
}

bool glue_queue_counts_get(glue_reqctx_t *rc, glue_queue_counts_t *out, glue_queue_counts_fn then)
{
    memset(out, 0, sizeof(*out));
    store_t *store = glue_server_store(rc->srv);
    if (store == NULL)
        return true; /* no database: the gauges are left out */
    out->have_store = true;
    pthread_mutex_lock(&cache.lock);
    bool mine = cache.store == store;
    if (mine && cache.at_us != 0 && mono_us() - cache.at_us < GLUE_QUEUE_COUNTS_CACHE_US) {
        *out = cache.counts;
        pthread_mutex_unlock(&cache.lock);
        return true;
    }
    /* a count of another server of this process (tests), or one that has
     * waited for the database longer than the cache lives (it hangs): do
     * not wait for it, answer without the gauges */
    if (cache.inflight &&
        (!mine || mono_us() - cache.inflight_since_us > GLUE_QUEUE_COUNTS_CACHE_US)) {
        pthread_mutex_unlock(&cache.lock);
        return true; /* ok false */
    }
    qc_pending_t *p = glue_pending_new(rc, sizeof(*p), qc_complete, NULL);
    p->then = then;
    if (!cache.inflight) {
        store_query_t q = {.kind = STORE_Q_QUEUE_COUNTS};
        if (store_query(store, &q, on_counts, NULL) != AM_OK) {
            /* the readers' queue is full or stopping: no count now */
            pthread_mutex_unlock(&cache.lock);
            glue_pending_cancel(&p->base);
            return true;
        }
        cache.inflight = true;
        cache.inflight_since_us = mono_us();
        cache.store = store;
    }
    p->next = cache.waiting;
    cache.waiting = p;
    pthread_mutex_unlock(&cache.lock);
    return false;
}

void glue_queue_counts_render(am_buf_t *b, const glue_queue_counts_t *c)
{
    if (!c->have_store)
        return;
    am_buf_puts(b, "# HELP alertmap_queue_counts_up Whether the last count of enrichment jobs "
                   "and deliveries in the database succeeded (counted at most once a second).\n"
                   "# TYPE alertmap_queue_counts_up gauge\n");
    am_buf_printf(b, "alertmap_queue_counts_up %d\n", c->ok ? 1 : 0);
    if (!c->ok)
        return;
    am_buf_puts(b, "# HELP alertmap_enrichment_jobs Enrichment jobs in the database, by status "
                   "(every process; done and failed since the first job).\n"
                   "# TYPE alertmap_enrichment_jobs gauge\n");
    for (int i = 0; i < GLUE_QC_STATES; i++)
        am_buf_printf(b, "alertmap_enrichment_jobs{status=\"%s\"} %llu\n", job_states[i],
                      (unsigned long long)c->jobs[i]);
    am_buf_puts(b, "# HELP alertmap_dispatch_deliveries Agent deliveries in the database, by "
                   "status (every process).\n"
                   "# TYPE alertmap_dispatch_deliveries gauge\n");
    for (int i = 0; i < GLUE_QC_STATES; i++)
        am_buf_printf(b, "alertmap_dispatch_deliveries{status=\"%s\"} %llu\n", delivery_states[i],
                      (unsigned long long)c->deliveries[i]);
}
