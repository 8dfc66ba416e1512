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

#include <stdint.h>

typedef struct wk wk_t;

typedef struct wk_options {
    const char *conninfo;  /* libpq connection string or URL */
    const char *providers; /* provider directory or file; NULL: none (jobs end Enriched) */
    const char *targets;   /* dispatch target directory or file; NULL: no dispatch */
    unsigned threads;      /* worker threads (at least 1) */
    int64_t poll_us;       /* fallback poll when no NOTIFY arrives (default 5 s) */
    int64_t lease_us;      /* claim lease; a dead worker's job is retaken after it (default 60 s) */
    int64_t backoff_us;    /* first retry delay, doubled per attempt up to 10 min (default 2 s) */
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

#endif
