/* storage/writer.c - the group-commit writer threads.
 *
 * Every writer thread has its own connection. The ordinary writers (one per
 * core by default) share the ordinary lane: each takes whatever
 * store_ingest() queued (whole requests, up to max_batch alerts and
 * max_batch_indicators indicators), writes it as ONE transaction (batch.c)
 * and only then calls each request's callback: STORE_OK after COMMIT
 * returned, else the request's own failure or the batch's. While one writer
 * waits for its COMMIT the next takes the following requests, so batches
 * overlap on the database. Requests over a batch's caps go to the heavy
 * lane, served by one more writer, one request per transaction: a 4 MB body
 * with 300,000 indicators takes its seconds there while the ordinary
 * batches go on. Dedup and lock order across writers (and processes): see
 * batch.c.
 *
 * Failures: when the connection breaks before COMMIT the server has rolled
 * everything back, so the batch is sent once more on a new connection (this
 * also covers the first batch after a database restart, whose old connection
 * is stale). If that fails too every request of the batch gets
 * STORE_UNAVAILABLE, nothing of it is written, and the thread reconnects with
 * backoff (100 ms doubling to 2 s; while waiting, batches fail at once rather
 * than queue). A connection lost during COMMIT leaves the outcome unknown:
 * the requests get STORE_UNAVAILABLE, the sender retries, and dedup turns an
 * already committed first attempt into a duplicate answer, not a second alert.
 * At shutdown the queue is drained: every callback is called.
 *
 * Linger: a writer that wakes to a queue of less than a full batch while
 * another writer of its lane is busy waits up to linger_us (or until that
 * writer ends, or the batch is full) before it takes the queue. Without it,
 * every request that arrives while one writer commits wakes the other,
 * which sends it in a batch of one or two: the per-transaction cost is then
 * paid per alert. With no writer busy nothing waits. */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A batch stops growing past this many bytes of copied alerts (payloads
 * included), whatever max_batch says. */
#define MAX_BATCH_BYTES ((size_t)64 * 1024 * 1024)

/* ---- the thread --------------------------------------------------------------- */

/* Waits on the lane's condition for at most us microseconds (mu held). */
static void wait_us(store_lane_t *lane, pthread_mutex_t *mu, int64_t us)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + (us % 1000000) * 1000;
    ts.tv_sec += (time_t)(us / 1000000 + ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    pthread_cond_timedwait(&lane->cond, mu, &ts);
}

static void finish(store_t *s, ingest_req_t **reqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ingest_req_t *q = reqs[i];
        store_ingest_result_t res = {
            .status = q->status,
            .message = q->status == STORE_OK ? NULL : q->msg,
            .nalerts = q->status == STORE_OK ? q->n : 0,
            .alerts = q->status == STORE_OK ? q->out : NULL,
        };
        if (q->status == STORE_OK) {
            atomic_fetch_add(&s->stats.requests_ok, 1);
            for (size_t k = 0; k < q->n; k++) {
                if (q->out[k].is_duplicate)
                    atomic_fetch_add(&s->stats.alerts_deduplicated, 1);
                else
                    atomic_fetch_add(&s->stats.alerts_inserted, 1);
                if (!q->out[k].is_duplicate && q->alerts[k].settled)
                    atomic_fetch_add(&s->stats.alerts_settled, 1);
            }
        } else {
            atomic_fetch_add(&s->stats.requests_failed, 1);
        }
        q->cb(&res, q->ctx);
        store_ingest_req_free(q);
    }
}

static void fail_all(ingest_req_t **reqs, size_t n, const char *err)
{
    for (size_t i = 0; i < n; i++) {
        if (reqs[i]->rejected)
            continue;
        reqs[i]->status = STORE_UNAVAILABLE;
        snprintf(reqs[i]->msg, sizeof(reqs[i]->msg), "database unavailable: %s", err);
    }
}

static void process(store_t *s, pgconn_t *pc, store_plan_t *plan, ingest_req_t **reqs, size_t n,
                    bool stopping)
{
    char err[256] = "";
    batch_result_t br = BATCH_FAILED;
    bool all_rejected = true;
    for (size_t i = 0; i < n; i++)
        all_rejected = all_rejected && reqs[i]->rejected;
    if (all_rejected) { /* nothing to send */
        finish(s, reqs, n);
        return;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (store_pgconn_ensure(pc, attempt > 0 || stopping, err, sizeof(err)) != 0) {
            br = BATCH_FAILED;
            break;
        }
        unsigned retries = 0;
        bool fallback = false;
        store_plan_refresh(pc->conn, plan);
        br = store_batch_run(pc->conn, s->dedup_window_s, plan, reqs, n, &retries, &fallback, err,
                             sizeof(err));
        atomic_fetch_add(&s->stats.retries, retries);
        if (fallback)
            atomic_fetch_add(&s->stats.fallbacks, 1);
        if (br != BATCH_CONN_LOST)
            break;
        /* the server rolled the transaction back: safe to send it again */
        store_pgconn_close(pc);
    }
    if (pc->conn != NULL && (br == BATCH_CONN_LOST || br == BATCH_COMMIT_UNKNOWN ||
                             PQpipelineStatus(pc->conn) != PQ_PIPELINE_OFF))
        store_pgconn_close(pc);
    if (br == BATCH_COMMITTED) {
        atomic_fetch_add(&s->stats.transactions, 1);
    } else {
        atomic_fetch_add(&s->stats.batches_failed, 1);
        fail_all(reqs, n, err);
    }
    finish(s, reqs, n);
}

void *store_writer_main(void *arg)
{
    store_writer_t *me = arg;
    store_t *s = me->store;
    store_lane_t *lane = &s->lanes[me->heavy ? 1 : 0];
    pgconn_t pc;
    store_pgconn_init(&pc, s->conninfo);
    pc.reconnects = &s->stats.reconnects;
    pc.on_connect = store_batch_prepare;
    store_plan_t plan = {0};
    size_t cap = 64;
    ingest_req_t **batch = am_xcalloc(cap, sizeof(*batch));
    for (;;) {
        pthread_mutex_lock(&s->wmu);
        while (lane->head == NULL && !s->wstop) {
            if (pc.conn != NULL) {
                pthread_cond_wait(&lane->cond, &s->wmu);
                continue;
            }
            int64_t w = store_pgconn_wait_us(&pc);
            if (w == 0)
                break; /* idle: time for a reconnect attempt */
            wait_us(lane, &s->wmu, w);
        }
        if (lane->head == NULL && s->wstop) {
            pthread_mutex_unlock(&s->wmu);
            break;
        }
        /* another writer is busy with its batch and this one would take a
         * small one: wait a little for more, up to linger_us */
        if (!me->heavy && s->linger_us > 0 && !s->wstop) {
            int64_t until = am_now_us() + s->linger_us;
            while (lane->head != NULL && lane->busy > 0 && !s->wstop &&
                   lane->nalerts < (size_t)s->max_batch) {
                int64_t left = until - am_now_us();
                if (left <= 0)
                    break;
                wait_us(lane, &s->wmu, left);
            }
        }
        /* a batch closes before the request that would pass a cap; the
         * heavy lane takes one request at a time */
        size_t n = 0, alerts = 0, inds = 0, bytes = 0;
        while (
            lane->head != NULL &&
            (n == 0 || (!me->heavy && alerts + lane->head->n <= (size_t)s->max_batch &&
                        inds + lane->head->nind <= s->max_batch_ind && bytes < MAX_BATCH_BYTES))) {
            if (n == cap) {
                cap *= 2;
                batch = am_xrealloc(batch, cap * sizeof(*batch));
            }
            ingest_req_t *q = lane->head;
            lane->head = q->next;
            if (lane->head == NULL)
                lane->tail = NULL;
            q->next = NULL;
            batch[n++] = q;
            lane->nalerts -= q->n;
            alerts += q->n;
            inds += q->nind;
            bytes += am_arena_used(q->arena);
        }
        bool stopping = s->wstop;
        if (n > 0)
            lane->busy++;
        atomic_fetch_sub(&s->stats.queue_depth, n);
        /* more waiting: wake another writer for it while this one works */
        if (lane->head != NULL)
            pthread_cond_signal(&lane->cond);
        pthread_mutex_unlock(&s->wmu);
        if (n == 0) {
            store_pgconn_ensure(&pc, false, NULL, 0);
            continue;
        }
        if (me->heavy)
            atomic_fetch_add(&s->stats.heavy, n);
        process(s, &pc, &plan, batch, n, stopping);
        pthread_mutex_lock(&s->wmu);
        lane->busy--;
        pthread_cond_broadcast(&lane->cond); /* a lingering writer may go now */
        pthread_mutex_unlock(&s->wmu);
    }
    store_plan_dispose(&plan);
    free(batch);
    store_pgconn_close(&pc);
    return NULL;
}
