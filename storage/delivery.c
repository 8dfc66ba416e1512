/*
 * storage/delivery.c - replay protection: the claim/complete protocol around
 * an ingest (store_delivery_*; docs/security.md, "Replay window and
 * idempotency").
 *
 * One thread with its own connection (like keys_verify.c) runs the queued
 * jobs in order:
 *   claim     one statement: INSERT the (source, key) row with a fresh
 *             claim token, ON CONFLICT take the row over only when it is
 *             older than the replay window (a new delivery that reuses an
 *             old id) or is a claim never completed and older than the
 *             takeover timeout (the process that claimed it died or lost
 *             its database); otherwise read the row: a completed one gives
 *             the recorded answer (DONE), an open one is IN_FLIGHT. Nothing
 *             read (a concurrent insert committed after this statement's
 *             snapshot) is IN_FLIGHT too.
 *   complete  records the answer (status, body) on the row, only while the
 *             claim token is still ours.
 *   release   deletes our unfinished claim (the ingest failed: the sender's
 *             retry must be ingested, not answered from memory).
 * Once a minute the thread also deletes rows older than twice the longest
 * window seen, in bounded slices. Callbacks run on this thread; jobs still
 * queued when the thread has stopped are answered UNAVAILABLE.
 */
#include "store_internal.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STMT_TIMEOUT_MS 2000
#define CLEANUP_US      (60 * (int64_t)1000000)

typedef enum { JOB_CLAIM, JOB_COMPLETE, JOB_RELEASE } job_kind_t;

typedef struct djob djob_t;
struct djob {
    djob_t *next;
    job_kind_t kind;
    char *source, *key, *answer;
    char token[33];
    int status;
    int64_t window_s, takeover_s;
    store_delivery_cb cb;
    void *ctx;
};

struct store_deliveries {
    char *conninfo;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    djob_t *head, *tail;
    size_t queued;
    bool stop;
    bool started;
    pthread_t thread;
    int64_t max_window_s; /* guarded by mu */
};

static const char CLAIM_SQL[] =
    "WITH ins AS ("
    " INSERT INTO deliveries (source_name, delivery_key, claim_token) VALUES ($1, $2, $3)"
    " ON CONFLICT (source_name, delivery_key) DO UPDATE"
    "  SET claim_token = EXCLUDED.claim_token, claimed_at = now(), completed_at = NULL,"
    "      status = NULL, answer = NULL"
    "  WHERE deliveries.claimed_at < now() - make_interval(secs => $4::bigint)"
    "     OR (deliveries.completed_at IS NULL"
    "         AND deliveries.claimed_at < now() - make_interval(secs => $5::bigint))"
    " RETURNING 1)"
    " SELECT 'claimed', NULL::integer, NULL::text FROM ins"
    " UNION ALL"
    " SELECT CASE WHEN completed_at IS NULL THEN 'in_flight' ELSE 'done' END, status, answer"
    "  FROM deliveries WHERE source_name = $1 AND delivery_key = $2"
    "   AND NOT EXISTS (SELECT 1 FROM ins)";
static const char COMPLETE_SQL[] =
    "UPDATE deliveries SET completed_at = now(), status = $4::integer, answer = $5"
    " WHERE source_name = $1 AND delivery_key = $2 AND claim_token = $3";
static const char RELEASE_SQL[] =
    "DELETE FROM deliveries WHERE source_name = $1 AND"
    " delivery_key = $2 AND claim_token = $3 AND completed_at IS NULL";
static const char CLEANUP_SQL[] =
    "DELETE FROM deliveries WHERE ctid = ANY (ARRAY(SELECT ctid FROM deliveries"
    " WHERE claimed_at < now() - make_interval(secs => $1::bigint) LIMIT 10000))";

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int on_connect(PGconn *c, void *ctx)
{
    (void)ctx;
    char sql[64];
    snprintf(sql, sizeof(sql), "SET statement_timeout = %d", STMT_TIMEOUT_MS);
    return store_pg_exec_simple(c, sql, NULL, NULL, 0);
}

/* Runs one statement; NULL (the connection closed when it broke, the
 * detail logged) on failure. The caller clears a non-NULL result. */
static PGresult *run(pgconn_t *pc, const char *sql, int n, const char *const *params,
                     ExecStatusType want)
{
    if (store_pgconn_ensure(pc, false, NULL, 0) != 0)
        return NULL;
    PGresult *r = PQexecParams(pc->conn, sql, n, NULL, params, NULL, NULL, 0);
    if (r != NULL && PQresultStatus(r) == want)
        return r;
    char e[200];
    store_pg_errcopy(e, sizeof(e), r ? PQresultErrorMessage(r) : PQerrorMessage(pc->conn));
    am_log(AM_LOG_WARN, "delivery_statement_failed", "serror", e, NULL);
    if (store_pgerr_classify(pc->conn, r) == PGERR_CONNECTION)
        store_pgconn_close(pc);
    PQclear(r);
    return NULL;
}

static void run_job(pgconn_t *pc, djob_t *j)
{
    store_delivery_result_t res = {.state = STORE_DELIVERY_UNAVAILABLE};
    char w[24], t[24], st[16];
    snprintf(w, sizeof(w), "%lld", (long long)j->window_s);
    snprintf(t, sizeof(t), "%lld", (long long)j->takeover_s);
    snprintf(st, sizeof(st), "%d", j->status);
    PGresult *r = NULL;
    if (pc == NULL) {
        /* stopping: nothing more is asked of the database */
    } else if (j->kind == JOB_CLAIM) {
        const char *p[] = {j->source, j->key, j->token, w, t};
        r = run(pc, CLAIM_SQL, 5, p, PGRES_TUPLES_OK);
        if (r != NULL) {
            const char *state = PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "in_flight";
            if (strcmp(state, "claimed") == 0) {
                res.state = STORE_DELIVERY_CLAIMED;
            } else if (strcmp(state, "done") == 0) {
                res.state = STORE_DELIVERY_DONE;
                res.status = (int)strtol(PQgetvalue(r, 0, 1), NULL, 10);
                res.answer = PQgetvalue(r, 0, 2);
            } else {
                res.state = STORE_DELIVERY_IN_FLIGHT;
            }
        }
    } else if (j->kind == JOB_COMPLETE) {
        const char *p[] = {j->source, j->key, j->token, st, j->answer};
        r = run(pc, COMPLETE_SQL, 5, p, PGRES_COMMAND_OK);
        if (r != NULL)
            res.state =
                strcmp(PQcmdTuples(r), "1") == 0 ? STORE_DELIVERY_DONE : STORE_DELIVERY_LOST;
    } else {
        const char *p[] = {j->source, j->key, j->token};
        r = run(pc, RELEASE_SQL, 3, p, PGRES_COMMAND_OK);
        if (r != NULL)
            res.state = STORE_DELIVERY_DONE;
    }
    if (j->cb != NULL)
        j->cb(&res, j->ctx);
    PQclear(r);
}

static void cleanup(store_deliveries_t *d, pgconn_t *pc)
{
    pthread_mutex_lock(&d->mu);
    int64_t keep = 2 * d->max_window_s;
    pthread_mutex_unlock(&d->mu);
    if (keep <= 0)
        return;
    char k[24];
    snprintf(k, sizeof(k), "%lld", (long long)keep);
    const char *p[] = {k};
    PQclear(run(pc, CLEANUP_SQL, 1, p, PGRES_COMMAND_OK));
}

static void job_free(djob_t *j)
{
    free(j->source);
    free(j->key);
    free(j->answer);
    free(j);
}

static void *deliveries_main(void *arg)
{
    store_deliveries_t *d = arg;
    pgconn_t pc;
    store_pgconn_init(&pc, d->conninfo);
    pc.on_connect = on_connect;
    int64_t next_cleanup = mono_us() + CLEANUP_US;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        while (d->head == NULL && !d->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&d->cond, &d->mu, &ts);
            if (mono_us() >= next_cleanup)
                break;
        }
        djob_t *jobs = d->head;
        d->head = d->tail = NULL;
        d->queued = 0;
        bool stop = d->stop;
        pthread_mutex_unlock(&d->mu);
        /* queued jobs run even when stopping: a completion recorded now
         * saves a retry the takeover (each statement is bounded by
         * statement_timeout) */
        while (jobs != NULL) {
            djob_t *next = jobs->next;
            run_job(&pc, jobs);
            job_free(jobs);
            jobs = next;
        }
        if (stop)
            break;
        if (mono_us() >= next_cleanup) {
            cleanup(d, &pc);
            next_cleanup = mono_us() + CLEANUP_US;
        }
    }
    store_pgconn_close(&pc);
    return NULL;
}

store_deliveries_t *store_deliveries_new(const char *conninfo)
{
    if (conninfo == NULL)
        return NULL;
    store_deliveries_t *d = am_xcalloc(1, sizeof(*d));
    d->conninfo = am_xstrdup(conninfo);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cond, NULL);
    if (pthread_create(&d->thread, NULL, deliveries_main, d) != 0) {
        store_deliveries_free(d);
        return NULL;
    }
    d->started = true;
    return d;
}

void store_deliveries_free(store_deliveries_t *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->mu);
    if (d->started)
        pthread_join(d->thread, NULL);
    /* jobs queued after the thread's last look still get their answer */
    for (djob_t *j = d->head, *next; j != NULL; j = next) {
        next = j->next;
        run_job(NULL, j);
        job_free(j);
    }
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cond);
    free(d->conninfo);
    free(d);
}

static int enqueue(store_deliveries_t *d, djob_t *j)
{
    pthread_mutex_lock(&d->mu);
    if (d->stop || d->queued >= STORE_DELIVERY_MAX_QUEUE) {
        pthread_mutex_unlock(&d->mu);
        job_free(j);
        return AM_EUNAVAIL;
    }
    if (j->window_s > d->max_window_s)
        d->max_window_s = j->window_s;
    if (d->tail != NULL)
        d->tail->next = j;
    else
        d->head = j;
    d->tail = j;
    d->queued++;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->mu);
    return AM_OK;
}

static djob_t *job_new(job_kind_t kind, const char *source, const char *key, const char *token,
                       store_delivery_cb cb, void *ctx)
{
    djob_t *j = am_xcalloc(1, sizeof(*j));
    j->kind = kind;
    j->source = am_xstrdup(source);
    j->key = am_xstrdup(key);
    snprintf(j->token, sizeof(j->token), "%s", token);
    j->cb = cb;
    j->ctx = ctx;
    return j;
}

int store_delivery_claim(store_deliveries_t *d, char token[33], const char *source, const char *key,
                         int64_t window_s, int64_t takeover_s, store_delivery_cb cb, void *ctx)
{
    unsigned char rnd[16];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return AM_EIO;
    am_hex(token, rnd, sizeof(rnd));
    djob_t *j = job_new(JOB_CLAIM, source, key, token, cb, ctx);
    j->window_s = window_s;
    j->takeover_s = takeover_s;
    return enqueue(d, j);
}

int store_delivery_complete(store_deliveries_t *d, const char *source, const char *key,
                            const char *token, int status, const char *answer, store_delivery_cb cb,
                            void *ctx)
{
    djob_t *j = job_new(JOB_COMPLETE, source, key, token, cb, ctx);
    j->status = status;
    j->answer = am_xstrdup(answer);
    return enqueue(d, j);
}

int store_delivery_release(store_deliveries_t *d, const char *source, const char *key,
                           const char *token)
{
    return enqueue(d, job_new(JOB_RELEASE, source, key, token, NULL, NULL));
}
