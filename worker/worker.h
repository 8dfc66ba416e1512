/*
 * worker/worker.h - the enrichment worker: threads that claim enrichment
 * jobs from PostgreSQL, look every indicator of the alert up with every
 * provider that answers its type (the cache first), and record results,
 * verdicts and the alert's enrichment_status. Runs inside alertmapd or
 * alone (alertmapd --role worker). docs/enrichment.md, "The worker".
 */
#ifndef WK_WORKER_H
#define WK_WORKER_H

#include "am.h"

#include <stdbool.h>
#include <stdint.h>

#define WK_DEFAULT_BATCH          32 /* jobs per claim */
#define WK_DEFAULT_ONDEMAND_QUEUE 16 /* on-demand lookups waiting at most */

typedef struct wk wk_t;

typedef struct wk_options {
    const char *conninfo;    /* libpq connection string or URL */
    const char *providers;   /* provider directory or file; NULL: none (jobs end Enriched) */
    const char *targets;     /* dispatch target directory or file; NULL: no dispatch */
    unsigned threads;        /* job threads (0: none; the on-demand thread may still run) */
    unsigned batch;          /* jobs claimed per statement (0: WK_DEFAULT_BATCH) */
    bool ondemand;           /* serve wk_ondemand_submit() with a thread of its own */
    unsigned ondemand_queue; /* lookups waiting at most (0: WK_DEFAULT_ONDEMAND_QUEUE) */
    int64_t poll_us;         /* fallback poll when no NOTIFY arrives (default 5 s) */
    int64_t lease_us;   /* claim lease; a dead worker's job is retaken after it (default 60 s) */
    int64_t backoff_us; /* first retry delay, doubled per attempt up to 10 min (default 2 s) */
} wk_options_t;

/* Loads the providers (secrets from the environment; every problem printed
 * to stderr as file:line:col) and prepares the threads without starting
 * them. Returns 0, or AM_EINVAL with a one-line message in err. Start-up only. */
int wk_new(wk_t **out, const wk_options_t *opt, char *err, size_t errlen);
/* Starts the threads. Returns 0 or AM_EIO (a thread could not start). */
int wk_start(wk_t *w);
/* Re-reads the provider files (and their list files) and the target files; on any problem the
 * running set stays and the problems are printed. Jobs in progress finish
 * with the set they started with. Returns 0 or AM_EINVAL. Thread-safe. */
int wk_reload(wk_t *w);
/* Asks the threads to stop after their current job and joins them. */
void wk_stop(wk_t *w);
void wk_free(wk_t *w);

/*
 * On-demand enrichment of one indicator (POST /v1/enrichments,
 * docs/enrichment.md): the cache first (unless refresh), then every http
 * provider that answers the type and has no fresh cached answer, on the
 * on-demand thread; new answers are written to the cache. type and value
 * must be a known type and the value's canonical form (the caller checks);
 * providers (n names, NULL for all) limits the lookup.
 */
typedef struct wk_ondemand_request {
    const char *type, *value;
    const char *const *providers;
    size_t nproviders;
    bool refresh;
    int64_t deadline_us; /* am_now_us() time after which the answer is not wanted */
} wk_ondemand_request_t;

/* The answer: status 200 with body the JSON document, or an error status
 * with code (the API error code) and body its message. body is heap; the
 * callback owns it. retry_after_s: for a 503, when to try again. */
typedef struct wk_ondemand_answer {
    int status;
    const char *code; /* static; NULL for 200 */
    char *body;
    int retry_after_s;
} wk_ondemand_answer_t;

/* Called exactly once, from the on-demand thread (or the stopping thread). */
typedef void (*wk_ondemand_cb)(void *ctx, wk_ondemand_answer_t *answer);

/* Queues one lookup (strings copied). 0: done will be called exactly once;
 * AM_ELIMIT: the queue is full (nothing queued); AM_EUNAVAIL: no on-demand
 * thread (w NULL, not started with ondemand, or stopping). Thread-safe. */
int wk_ondemand_submit(wk_t *w, const wk_ondemand_request_t *rq, wk_ondemand_cb done, void *ctx);

/* Appends this process's worker metrics (provider requests, latency and
 * errors by provider, cache hits and misses, jobs ended by outcome,
 * on-demand lookups) in the Prometheus text format. Thread-safe; counters
 * are atomics updated without a lock. */
void wk_metrics_render(am_buf_t *b);

#endif
