/*
 * worker/wk_int.h - what the worker's files share: the provider bundle and
 * its run-time state, the worker object, one HTTP request with libcurl and
 * the in-process counters (wk_metrics.c). Internal to worker/.
 */
#ifndef WK_INT_H
#define WK_INT_H

#include "worker.h"

#include "provider.h"
#include "store.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>

#define WK_MAX_REPLY_BYTES ((size_t)4 << 20)
#define WK_MAX_INLINE_WAIT ((int64_t)20 * 1000000) /* rate-limit waits longer than this defer */

/* Run-time state of one provider: rate limiter, in-flight count, and its
 * row in the metrics table (-1: the table is full). */
typedef struct wk_pstate {
    eng_limiter_t limiter;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned inflight, max;
    int metric;
} wk_pstate_t;

/* A provider set and its run-time state, reference-counted so that a reload
 * swaps it while jobs finish on the old one. */
typedef struct wk_bundle {
    eng_providers_t *set;
    eng_targets_t *targets;
    wk_pstate_t *st;
    size_t n;
    bool any_http;
    int refs; /* under wk.mu */
} wk_bundle_t;

typedef struct wk_ondemand wk_ondemand_t;

struct wk {
    wk_options_t opt;
    char *conninfo, *providers, *targets;
    pthread_mutex_t mu;
    wk_bundle_t *cur;
    pthread_t *threads;
    unsigned nthreads;
    atomic_uint gen; /* bumped by every reload that took effect */
    pthread_t beat;  /* announces what the workers can do (store_node_t) */
    bool beating;
    store_node_t *node;     /* this process's row; NULL without job threads */
    bool announced;         /* the announcement of wk_start() was written */
    unsigned announced_gen; /* gen at that announcement */
    atomic_bool stop;
    bool started;
    wk_ondemand_t *od; /* the on-demand queue and its thread (ondemand.c), or NULL */
};

/* ondemand.c: starts the on-demand thread; stops and joins it (NULL-safe,
 * answers what is still queued 503). */
int wk_ondemand_start(wk_t *w);
void wk_ondemand_stop(wk_t *w);

wk_bundle_t *wk_bundle_acquire(wk_t *w);
void wk_bundle_release(wk_t *w, wk_bundle_t *b);
/* Sleeps up to us, waking early when the worker stops. */
void wk_nap(wk_t *w, int64_t us);

typedef struct wk_reply {
    am_buf_t body;
    char retry_after[64];
    bool too_big;
} wk_reply_t;

/* Sends one request; *status is 0 after a transport failure (reason set),
 * -1 when the reply was too large. */
void wk_http_send(CURL *h, const eng_request_t *rq, int64_t timeout_us, wk_reply_t *rep,
                  int *status, char *reason, size_t rlen);

/* Asks http provider pi of b about one value, through its rate limit and
 * concurrency cap; the answer in *r (the caller owns r->fields), the
 * Retry-After delay in *retry_after_us (-1: none). Returns false without
 * asking when the rate limit wants a wait longer than max_wait_us (*wait_us
 * says how long) or the worker stops (*wait_us 0). Counts the request in
 * the metrics. */
bool wk_ask(wk_t *w, wk_bundle_t *b, size_t pi, CURL *curl, eng_ioc_type_t t, const char *value,
            int64_t max_wait_us, eng_presult_t *r, int64_t *retry_after_us, int64_t *wait_us);

/* ---- metrics (wk_metrics.c): atomics, no lock on the counting side ---- */

typedef enum {
    WK_ERR_NONE = -1,
    WK_ERR_TIMEOUT,
    WK_ERR_CONNECT, /* another transport failure */
    WK_ERR_429,
    WK_ERR_5XX,
    WK_ERR_MALFORMED, /* a reply that is no JSON (or too large) */
    WK_ERR_STATUS,    /* another unexpected status */
    WK_ERR__COUNT
} wk_err_kind_t;

typedef enum { WK_JOB_ENRICHED, WK_JOB_FAILED, WK_JOB_RETRIED, WK_JOB__COUNT } wk_job_end_t;

/* The metrics row of a provider name (registered once, kept for the
 * process); -1 when the table is full. Start-up and reload only. */
int wk_metrics_provider(const char *name);
void wk_metrics_request(int row, int64_t took_us, wk_err_kind_t err);
void wk_metrics_cache(bool hit);
void wk_metrics_job(wk_job_end_t end);
void wk_metrics_ondemand(int http_status);

#endif
