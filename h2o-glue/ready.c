/*
 * h2o-glue/ready.c - GET /readyz: 200 {"status":"ready"} when a mapping set
 * is loaded and the database answers, else 503 {"status":"not_ready",
 * "reason":...}.
 *
 * The database check (store_ping: connect and SELECT 1 within
 * GLUE_READY_TIMEOUT_MS) runs on a thread of its own, on demand, never on
 * an event loop. Its result is reused for GLUE_READY_CACHE_US: however many
 * probes arrive, the database sees at most one check a second. A probe that
 * finds the result stale waits (as a pending record, like a store call) for
 * the next check, and every probe waiting then gets that one check's
 * result. A change of the database's state is logged once, with libpq's
 * reason; the answer itself names no host, socket or error text.
 */
#include "glue.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct ready_pending {
    glue_pending_t base;
    struct ready_pending *next; /* waiting list, under the lock */
    bool db_ok;                 /* filled by the checker */
} ready_pending_t;

struct glue_ready {
    char *conninfo; /* NULL: no database configured */
    pthread_t tid;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* under lock */
    bool stop;
    bool want;             /* a probe asked for a check */
    int64_t checked_at_us; /* monotonic; 0 = never checked */
    bool db_ok;            /* result of the last check */
    ready_pending_t *waiting;
    /* checker thread only */
    bool logged, logged_ok;
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void log_change(glue_ready_t *r, bool ok, const char *why)
{
    if (r->logged && r->logged_ok == ok)
        return;
    r->logged = true;
    r->logged_ok = ok;
    if (ok)
        am_log(AM_LOG_INFO, "readiness_changed", "sstatus", "ready", NULL);
    else
        am_log(AM_LOG_WARN, "readiness_changed", "sstatus", "not_ready", "sreason",
               "the database does not answer", "serror", why, NULL);
}

static void *checker_main(void *arg)
{
    glue_ready_t *r = arg;
    pthread_mutex_lock(&r->lock);
    for (;;) {
        while (!r->stop && !r->want)
            pthread_cond_wait(&r->cond, &r->lock);
        if (r->stop)
            break;
        r->want = false;
        pthread_mutex_unlock(&r->lock);

        char why[256] = "no database is configured";
        bool ok = r->conninfo != NULL &&
                  store_ping(r->conninfo, GLUE_READY_TIMEOUT_MS, why, sizeof(why)) == AM_OK;
        am_log(AM_LOG_DEBUG, "readiness_check", "sstatus", ok ? "ready" : "not_ready", NULL);
        log_change(r, ok, why);

        pthread_mutex_lock(&r->lock);
        r->db_ok = ok;
        r->checked_at_us = mono_us();
        ready_pending_t *list = r->waiting;
        r->waiting = NULL;
        r->want = false; /* those who asked get this result */
        pthread_mutex_unlock(&r->lock);
        while (list != NULL) {
            ready_pending_t *next = list->next;
            list->db_ok = ok;
            glue_pending_post(&list->base);
            list = next;
        }
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

glue_ready_t *glue_ready_new(const char *conninfo)
{
    glue_ready_t *r = am_xcalloc(1, sizeof(*r));
    r->conninfo = conninfo ? am_xstrdup(conninfo) : NULL;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    if (pthread_create(&r->tid, NULL, checker_main, r) != 0) {
        /* without the thread every probe is answered from "never checked":
         * not ready; the server itself still works */
        am_log(AM_LOG_ERROR, "readiness_unavailable", "smessage",
               "cannot start the readiness checker thread; /readyz answers 503", NULL);
        r->stop = true;
        r->tid = pthread_self();
    }
    return r;
}

void glue_ready_free(glue_ready_t *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    bool started = !r->stop;
    r->stop = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    if (started)
        pthread_join(r->tid, NULL);
    /* the loops are gone (glue_server_stop waits for every pending record,
     * these included): nothing can be waiting */
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r->conninfo);
    free(r);
}

/* ---- GET /readyz -------------------------------------------------------- */

static void send_ready(glue_reqctx_t *rc, bool ok, const char *reason)
{
    json_t *v = ok ? json_pack("{s:s}", "status", "ready")
                   : json_pack("{s:s,s:s}", "status", "not_ready", "reason", reason);
    glue_send_value(rc, ok ? 200 : 503, v);
}

static const char db_reason[] = "the database does not answer";

static void ready_complete(glue_reqctx_t *rc, glue_pending_t *base)
{
    ready_pending_t *p = (ready_pending_t *)base;
    send_ready(rc, p->db_ok, db_reason);
}

void glue_handle_readyz(glue_reqctx_t *rc, const glue_route_params_t *params)
{
    (void)params;
    if (glue_worker_stopping(rc->worker)) {
        send_ready(rc, false, "shutting down");
        return;
    }
    eng_set_t *set = glue_mappings_acquire();
    bool loaded = set != NULL;
    eng_set_unref(set);
    if (!loaded) {
        send_ready(rc, false, "no mapping set is loaded");
        return;
    }
    glue_ready_t *r = glue_server_ready(rc->srv);
    if (r == NULL) {
        send_ready(rc, false, "starting");
        return;
    }
    pthread_mutex_lock(&r->lock);
    if (r->stop) {
        pthread_mutex_unlock(&r->lock);
        send_ready(rc, false, "the readiness checker is not running");
        return;
    }
    if (r->checked_at_us != 0 && mono_us() - r->checked_at_us < GLUE_READY_CACHE_US) {
        bool ok = r->db_ok;
        pthread_mutex_unlock(&r->lock);
        send_ready(rc, ok, db_reason);
        return;
    }
    ready_pending_t *p = glue_pending_new(rc, sizeof(*p), ready_complete, NULL);
    p->next = r->waiting;
    r->waiting = p;
    r->want = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
}
