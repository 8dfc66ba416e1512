/* storage/reader.c - the read-API queue and the reader threads.
 *
 * store_query() copies the query and queues it; each reader thread owns one
 * connection (opened lazily, reopened with backoff after a failure) and
 * answers queries one at a time. Input errors are answered before any
 * database work, so they get their 400/422 even while the database is down.
 * When the connection turns out to be broken (e.g. after a database restart)
 * the query is retried once on a fresh connection: GET and LIST only read,
 * and PATCH is one autocommit UPDATE: when the link broke before its answer
 * it is repeated, when it broke after (while reading the alert back) only the
 * read is repeated.
 * Otherwise the answer is 503 DATABASE_UNAVAILABLE. */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

struct query_req {
    query_req_t *next;
    am_arena_t *arena;
    store_query_t q; /* strings point into arena */
    store_query_cb cb;
    void *ctx;
};

static bool dup_into(am_arena_t *ar, const char **dst, const char *src)
{
    *dst = am_arena_strdup(ar, src);
    return src == NULL || *dst != NULL;
}

int store_query(store_t *s, const store_query_t *q, store_query_cb cb, void *ctx)
{
    if (s == NULL || q == NULL || cb == NULL)
        return AM_EINVAL;
    am_arena_t *ar = am_arena_new(1024, SIZE_MAX); /* copies only, see store_ingest */
    query_req_t *r = am_arena_calloc(ar, 1, sizeof(*r));
    if (r == NULL) {
        am_arena_free(ar);
        return AM_ELIMIT;
    }
    r->arena = ar;
    r->q = *q;
    r->cb = cb;
    r->ctx = ctx;
    bool ok = dup_into(ar, &r->q.uuid, q->uuid) &&
              dup_into(ar, &r->q.source_name, q->source_name) &&
              dup_into(ar, &r->q.severity, q->severity) && dup_into(ar, &r->q.status, q->status) &&
              dup_into(ar, &r->q.since, q->since) && dup_into(ar, &r->q.cursor, q->cursor) &&
              dup_into(ar, &r->q.body, q->body) && dup_into(ar, &r->q.limit_text, q->limit_text);
    if (!ok) { /* the query's strings are over the arena's cap */
        am_arena_free(ar);
        return AM_ELIMIT;
    }
    pthread_mutex_lock(&s->rmu);
    if (s->rstop || s->rdepth >= s->max_queue) {
        int why = s->rstop ? AM_EUNAVAIL : AM_ELIMIT;
        pthread_mutex_unlock(&s->rmu);
        am_arena_free(ar);
        return why;
    }
    s->rdepth++;
    if (s->rtail)
        s->rtail->next = r;
    else
        s->rhead = r;
    s->rtail = r;
    pthread_cond_signal(&s->rcond);
    pthread_mutex_unlock(&s->rmu);
    return AM_OK;
}

void store_reader_queue_dispose(store_t *s)
{
    while (s->rhead) {
        query_req_t *r = s->rhead;
        s->rhead = r->next;
        am_arena_free(r->arena);
    }
    s->rtail = NULL;
}

/* Answers what needs no database; true when out holds the answer. */
static bool precheck(const store_query_t *q, reply_buf_t *out)
{
    switch (q->kind) {
    case STORE_Q_GET_ALERT:
    case STORE_Q_PATCH_ALERT:
    case STORE_Q_LIST_DELIVERIES:
    case STORE_Q_RETRY_DELIVERY:
        if (!store_uuid_valid(q->uuid)) {
            store_reply_set(out, 400,
                            store_json_error("INVALID_UUID",
                                             "alert id must be a uuid "
                                             "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"));
            return true;
        }
        if (q->kind == STORE_Q_RETRY_DELIVERY && q->delivery_id <= 0) {
            store_reply_set(
                out, 400,
                store_json_error("INVALID_DELIVERY_ID", "delivery id must be a positive integer"));
            return true;
        }
        return q->kind == STORE_Q_PATCH_ALERT && store_alert_patch_precheck(q->body, out);
    case STORE_Q_LIST_ALERTS:
        return store_alert_list_precheck(q, out);
    case STORE_Q_QUEUE_COUNTS:
        return false;
    }
    store_reply_set(out, 400, store_json_error("INVALID_PARAMETER", "unknown query kind"));
    return true;
}

static int run(PGconn *c, const store_query_t *q, reply_buf_t *out)
{
    switch (q->kind) {
    case STORE_Q_GET_ALERT:
        return store_alert_get(c, q->uuid, out);
    case STORE_Q_PATCH_ALERT:
        return store_alert_patch(c, q->uuid, q->body, q->key_id, out);
    case STORE_Q_LIST_ALERTS:
        return store_alert_list(c, q, out);
    case STORE_Q_LIST_DELIVERIES:
        return store_alert_deliveries(c, q->uuid, out);
    case STORE_Q_RETRY_DELIVERY:
        return store_delivery_retry(c, q->uuid, q->delivery_id, q->key_id, out);
    case STORE_Q_QUEUE_COUNTS:
        return store_queue_counts(c, out);
    }
    return AM_EINVAL;
}

static void answer(store_t *s, pgconn_t *pc, query_req_t *r)
{
    reply_buf_t out = {0, NULL};
    if (!precheck(&r->q, &out)) {
        int rc = AM_EUNAVAIL;
        for (int attempt = 0; attempt < 2 && (rc == AM_EUNAVAIL || rc == AM_EIO); attempt++) {
            if (rc == AM_EIO)
                r->q.kind = STORE_Q_GET_ALERT; /* the PATCH is done: read it back */
            if (store_pgconn_ensure(pc, attempt > 0, NULL, 0) != 0)
                break;
            rc = run(pc->conn, &r->q, &out);
            if (rc == AM_EUNAVAIL || rc == AM_EIO)
                store_pgconn_close(pc);
        }
        if (rc != AM_OK)
            store_reply_set(
                &out, 503,
                store_json_error("DATABASE_UNAVAILABLE", "the database cannot be reached"));
    }
    if (out.body == NULL) /* every path above sets a reply; this one is a bug */
        store_reply_set(&out, 500, store_json_error("INTERNAL", "no reply"));
    store_reply_t reply = {.http_status = out.status, .body = out.body};
    atomic_fetch_add(&s->stats.queries, 1);
    r->cb(&reply, r->ctx);
    free(out.body);
}

void *store_reader_main(void *arg)
{
    store_t *s = arg;
    pgconn_t pc;
    store_pgconn_init(&pc, s->conninfo);
    pc.reconnects = &s->stats.reconnects;
    for (;;) {
        pthread_mutex_lock(&s->rmu);
        while (s->rhead == NULL && !s->rstop)
            pthread_cond_wait(&s->rcond, &s->rmu);
        query_req_t *r = s->rhead;
        if (r == NULL) {
            pthread_mutex_unlock(&s->rmu);
            break;
        }
        s->rhead = r->next;
        if (s->rhead == NULL)
            s->rtail = NULL;
        s->rdepth--;
        pthread_mutex_unlock(&s->rmu);
        answer(s, &pc, r);
        am_arena_free(r->arena);
    }
    store_pgconn_close(&pc);
    return NULL;
}
