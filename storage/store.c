/* storage/store.c - store_new(), store_free(), store_stats(). See store.h;
 * the threads live in writer.c and reader.c. */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    DEFAULT_READERS = 2,
    MAX_READERS = 64,
    MAX_WRITERS = 64,
    DEFAULT_BATCH = 256,
    DEFAULT_BATCH_IND = 4096,
    DEFAULT_QUEUE = 10000
};

/* One writer per online core (at least 1, at most MAX_WRITERS). */
static int default_writers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_WRITERS ? MAX_WRITERS : (int)n;
}

static void stop_threads(store_t *s)
{
    pthread_mutex_lock(&s->wmu);
    s->wstop = true;
    pthread_cond_broadcast(&s->lanes[0].cond);
    pthread_cond_broadcast(&s->lanes[1].cond);
    pthread_mutex_unlock(&s->wmu);
    pthread_mutex_lock(&s->rmu);
    s->rstop = true;
    pthread_cond_broadcast(&s->rcond);
    pthread_mutex_unlock(&s->rmu);
    for (int i = 0; i < s->writers_started; i++)
        pthread_join(s->writers[i].thread, NULL);
    for (int i = 0; i < s->readers_started; i++)
        pthread_join(s->readers[i], NULL);
    s->writers_started = 0;
    s->readers_started = 0;
}

static void destroy(store_t *s)
{
    store_writer_queue_dispose(s);
    store_reader_queue_dispose(s);
    pthread_mutex_destroy(&s->wmu);
    pthread_cond_destroy(&s->lanes[0].cond);
    pthread_cond_destroy(&s->lanes[1].cond);
    pthread_mutex_destroy(&s->rmu);
    pthread_cond_destroy(&s->rcond);
    free(s->readers);
    free(s->writers);
    free(s->conninfo);
    free(s);
}

store_t *store_new(const store_options_t *opt)
{
    if (opt == NULL || opt->conninfo == NULL)
        return NULL;
    store_t *s = am_xcalloc(1, sizeof(*s));
    s->conninfo = am_xstrdup(opt->conninfo);
    s->dedup_window_s = opt->dedup_window_s < 0 ? 0 : opt->dedup_window_s;
    s->nreaders = opt->readers <= 0 ? DEFAULT_READERS : opt->readers;
    if (s->nreaders > MAX_READERS)
        s->nreaders = MAX_READERS;
    s->max_batch = opt->max_batch <= 0 ? DEFAULT_BATCH : opt->max_batch;
    s->linger_us = opt->linger_us > 0 ? opt->linger_us : 0;
    s->max_batch_ind =
        opt->max_batch_indicators <= 0 ? DEFAULT_BATCH_IND : (size_t)opt->max_batch_indicators;
    s->nwriters = opt->writers <= 0 ? default_writers() : opt->writers;
    if (s->nwriters > MAX_WRITERS)
        s->nwriters = MAX_WRITERS;
    s->writers = am_xcalloc((size_t)s->nwriters + 1, sizeof(*s->writers));
    s->max_queue = opt->max_queue <= 0 ? DEFAULT_QUEUE : (size_t)opt->max_queue;
    s->readers = am_xcalloc((size_t)s->nreaders, sizeof(*s->readers));
    pthread_mutex_init(&s->wmu, NULL);
    pthread_cond_init(&s->lanes[0].cond, NULL);
    pthread_cond_init(&s->lanes[1].cond, NULL);
    pthread_mutex_init(&s->rmu, NULL);
    pthread_cond_init(&s->rcond, NULL);
    for (int i = 0; i <= s->nwriters; i++) {
        store_writer_t *w = &s->writers[i];
        w->store = s;
        w->heavy = i == s->nwriters;
        if (pthread_create(&w->thread, NULL, store_writer_main, w) != 0)
            goto fail;
        s->writers_started++;
    }
    for (int i = 0; i < s->nreaders; i++) {
        if (pthread_create(&s->readers[i], NULL, store_reader_main, s) != 0)
            goto fail;
        s->readers_started++;
    }
    return s;
fail:
    stop_threads(s);
    destroy(s);
    return NULL;
}

void store_free(store_t *s)
{
    if (s == NULL)
        return;
    stop_threads(s); /* the threads drain their queues before they exit */
    destroy(s);
}

void store_stats(const store_t *s, store_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (s == NULL)
        return;
    store_t *m = (store_t *)s; /* atomics are read only */
    out->transactions = atomic_load(&m->stats.transactions);
    out->batches_failed = atomic_load(&m->stats.batches_failed);
    out->requests_ok = atomic_load(&m->stats.requests_ok);
    out->requests_failed = atomic_load(&m->stats.requests_failed);
    out->alerts_inserted = atomic_load(&m->stats.alerts_inserted);
    out->alerts_deduplicated = atomic_load(&m->stats.alerts_deduplicated);
    out->alerts_settled = atomic_load(&m->stats.alerts_settled);
    out->queries = atomic_load(&m->stats.queries);
    out->reconnects = atomic_load(&m->stats.reconnects);
    out->queue_depth = atomic_load(&m->stats.queue_depth);
    out->retries = atomic_load(&m->stats.retries);
    out->fallbacks = atomic_load(&m->stats.fallbacks);
    out->heavy = atomic_load(&m->stats.heavy);
    out->writers = (uint64_t)m->nwriters;
}
