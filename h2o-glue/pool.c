/*
 * h2o-glue/pool.c - the engine pool: threads that run long engine work
 * (large ingest bodies, every dry run) off the event loops, so that one
 * heavy request does not freeze the other connections of its loop.
 *
 * A job is an item the caller embeds in its own record (ingest.c embeds it
 * beside its glue_pending_t); the pool only runs item->run on one of its
 * threads, in submission order. The item tells the loop itself when it is
 * done (glue_pending_post()). The queue is bounded: glue_pool_submit()
 * refuses an item when --engine-queue items already wait, and the caller
 * answers 503 instead of queueing without end.
 *
 * Life cycle: glue_pool_start() from glue_server_start(), glue_pool_stop()
 * from glue_server_stop() once every loop has ended (every item was run and
 * posted back by then: the loops wait for their in-flight records).
 */
#include "glue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    glue_pool_item_t *head, *tail; /* waiting items */
    size_t queued;
    size_t queue_max;
    bool stopping;
    pthread_t *tids;
    int nthreads;
    atomic_size_t running;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void *pool_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (pool.head == NULL && !pool.stopping)
            pthread_cond_wait(&pool.cond, &pool.lock);
        glue_pool_item_t *it = pool.head;
        if (it == NULL) /* stopping with nothing left */
            break;
        pool.head = it->next;
        if (pool.head == NULL)
            pool.tail = NULL;
        pool.queued--;
        atomic_fetch_add_explicit(&pool.running, 1, memory_order_relaxed);
        pthread_mutex_unlock(&pool.lock);
        it->next = NULL;
        it->run(it);
        atomic_fetch_sub_explicit(&pool.running, 1, memory_order_relaxed);
        pthread_mutex_lock(&pool.lock);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

int glue_pool_start(const glue_config_t *cfg)
{
    int n = cfg->engine_threads;
    if (n <= 0 || pool.nthreads > 0)
        return AM_OK;
    pool.tids = am_xcalloc((size_t)n, sizeof(*pool.tids));
    pool.queue_max = cfg->engine_queue >= 0 ? (size_t)cfg->engine_queue : 0;
    pool.stopping = false;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&pool.tids[i], NULL, pool_main, NULL) != 0) {
            am_log(AM_LOG_ERROR, "startup_failed", "smessage", "cannot start an engine thread",
                   "iengine_thread", (int64_t)i, NULL);
            break;
        }
        pool.nthreads = i + 1;
    }
    if (pool.nthreads == 0) {
        free(pool.tids);
        pool.tids = NULL;
        return AM_EIO;
    }
    am_log(AM_LOG_INFO, "engine_pool", "ithreads", (int64_t)pool.nthreads, "iqueue",
           (int64_t)pool.queue_max, "iinline_max", (int64_t)glue_pool_inline_max(cfg), NULL);
    return pool.nthreads == n ? AM_OK : AM_EIO;
}

void glue_pool_stop(void)
{
    if (pool.nthreads == 0)
        return;
    pthread_mutex_lock(&pool.lock);
    pool.stopping = true;
    pthread_cond_broadcast(&pool.cond);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < pool.nthreads; i++)
        pthread_join(pool.tids[i], NULL);
    free(pool.tids);
    pool.tids = NULL;
    pool.nthreads = 0;
    pool.stopping = false;
}

bool glue_pool_running(void)
{
    return pool.nthreads > 0;
}

size_t glue_pool_inline_max(const glue_config_t *cfg)
{
    return cfg->engine_inline_max > 0 ? cfg->engine_inline_max : GLUE_DEFAULT_ENGINE_INLINE_MAX;
}

int glue_pool_submit(glue_pool_item_t *it)
{
    int rc = AM_OK;
    it->next = NULL;
    pthread_mutex_lock(&pool.lock);
    /* an idle thread takes the item at once; otherwise it waits in the queue */
    size_t busy = atomic_load_explicit(&pool.running, memory_order_relaxed) + pool.queued;
    if (pool.nthreads == 0 || pool.stopping) {
        rc = AM_EUNAVAIL;
    } else if (busy >= (size_t)pool.nthreads + pool.queue_max) {
        rc = AM_ELIMIT;
    } else {
        if (pool.tail != NULL)
            pool.tail->next = it;
        else
            pool.head = it;
        pool.tail = it;
        pool.queued++;
        pthread_cond_signal(&pool.cond);
    }
    pthread_mutex_unlock(&pool.lock);
    return rc;
}

void glue_pool_stats(size_t *running, size_t *queued)
{
    pthread_mutex_lock(&pool.lock);
    *queued = pool.queued;
    pthread_mutex_unlock(&pool.lock);
    *running = atomic_load_explicit(&pool.running, memory_order_relaxed);
}
