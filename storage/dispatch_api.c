/* storage/dispatch_api.c - the read-API queries of agent dispatch: the
 * deliveries of one alert, the retry of a failed delivery, and the counts
 * of jobs and deliveries by state that GET /metrics shows. Run by the
 * reader threads (reader.c); see docs/dispatch.md and docs/operations.md. */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

/* One delivery as the API shows it (alias d). next_attempt_at only means
 * something for a pending delivery. */
/* clang-format off */
#define US(x) "(EXTRACT(EPOCH FROM " x ") * 1000000)::int8"
#define DELIVERY_COLS                                                          \
    "d.id, d.target, d.status, d.attempts,"                                    \
    " CASE WHEN d.status = 'pending' THEN " US("d.next_attempt_at") " END,"    \
    " d.last_status, d.last_error, " US("d.created_at") ","                    \
    " " US("d.delivered_at") ", d.retries, " US("d.retried_at") ","            \
    " d.retried_by_key,"                                                       \
    " (SELECT 'amk_' || k.prefix FROM api_keys k WHERE k.id = d.retried_by_key)"
/* clang-format on */
enum {
    D_ID,
    D_TARGET,
    D_STATUS,
    D_ATTEMPTS,
    D_NEXT,
    D_LAST_STATUS,
    D_LAST_ERROR,
    D_CREATED,
    D_DELIVERED,
    D_RETRIES,
    D_RETRIED_AT,
    D_RETRIED_BY_ID,
    D_RETRIED_BY_PREFIX,
    D__COUNT
};

static const char *val(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* A number column (integer text) or null. */
static void put_num(am_buf_t *b, const char *text)
{
    am_buf_puts(b, text ? text : "null");
}

/* Appends the delivery of row `row`, its columns from column `off` on. */
static void put_delivery(am_buf_t *b, const PGresult *r, int row, int off)
{
    am_buf_putc(b, '{');
    store_json_put_key(b, "id");
    put_num(b, val(r, row, off + D_ID));
    store_json_put_key(b, "target");
    store_json_put_str(b, val(r, row, off + D_TARGET));
    store_json_put_key(b, "status");
    store_json_put_str(b, val(r, row, off + D_STATUS));
    store_json_put_key(b, "attempts");
    put_num(b, val(r, row, off + D_ATTEMPTS));
    store_json_put_key(b, "next_attempt_at");
    store_json_put_time_us(b, val(r, row, off + D_NEXT));
    store_json_put_key(b, "last_status");
    put_num(b, val(r, row, off + D_LAST_STATUS));
    store_json_put_key(b, "last_error");
    store_json_put_str(b, val(r, row, off + D_LAST_ERROR));
    store_json_put_key(b, "created_at");
    store_json_put_time_us(b, val(r, row, off + D_CREATED));
    store_json_put_key(b, "delivered_at");
    store_json_put_time_us(b, val(r, row, off + D_DELIVERED));
    store_json_put_key(b, "retries");
    put_num(b, val(r, row, off + D_RETRIES));
    store_json_put_key(b, "retried_at");
    store_json_put_time_us(b, val(r, row, off + D_RETRIED_AT));
    /* the key of the last retry: {"key_id", "key_prefix"}, or null */
    store_json_put_key(b, "retried_by");
    if (PQgetisnull(r, row, off + D_RETRIED_BY_ID)) {
        am_buf_puts(b, "null");
    } else {
        am_buf_printf(b,
                      "{\"key_id\":%s,\"key_prefix\":", PQgetvalue(r, row, off + D_RETRIED_BY_ID));
        store_json_put_str(b, val(r, row, off + D_RETRIED_BY_PREFIX));
        am_buf_putc(b, '}');
    }
    am_buf_putc(b, '}');
}

static void reply_buf(reply_buf_t *out, int status, am_buf_t *b)
{
    if (am_buf_ok(b))
        store_reply_set(out, status, am_buf_steal(b));
    else
        store_reply_set(out, 500, store_json_error("INTERNAL", "the answer cannot be rendered"));
    am_buf_dispose(b);
}

/* The alert's row comes first (a LEFT JOIN): no row is an unknown alert, a
 * row without a delivery an alert that has none. The unique index
 * (alert_id, target) finds the deliveries. */
static const char LIST_SQL[] = "SELECT a.id, " DELIVERY_COLS " FROM alerts a"
                               " LEFT JOIN dispatch_deliveries d ON d.alert_id = a.id"
                               " WHERE a.uuid = $1::uuid ORDER BY d.id";

int store_alert_deliveries(PGconn *c, const char *uuid, reply_buf_t *out)
{
    const char *p[] = {uuid};
    PGresult *r = PQexecParams(c, LIST_SQL, 1, NULL, p, NULL, NULL, 0);
    int rc = AM_OK;
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = store_reply_db_error(c, r, out);
        goto done;
    }
    if (PQntuples(r) == 0) {
        store_reply_set(out, 404, store_json_error("NOT_FOUND", "no alert with uuid %s", uuid));
        goto done;
    }
    am_buf_t b;
    am_buf_init(&b, 0);
    am_buf_puts(&b, "{\"data\":[");
    int shown = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        if (PQgetisnull(r, i, 1 + D_ID))
            continue; /* the alert has no delivery */
        if (shown++ > 0)
            am_buf_putc(&b, ',');
        put_delivery(&b, r, i, 1);
    }
    am_buf_puts(&b, "]}");
    reply_buf(out, 200, &b);
done:
    PQclear(r);
    return rc;
}

/* Only a failed delivery changes (the row holds no lease then, so no worker
 * races with this); a second retry at the same time finds it pending. The
 * NOTIFY wakes an idle worker at once, as for a new job; it is heard at
 * COMMIT, when the row is visible to the worker's claim. */
static const char RETRY_SQL[] =
    "UPDATE dispatch_deliveries d SET status = 'pending', attempts = 0, next_attempt_at = now(),"
    " lease_until = NULL, claimed_by = NULL, delivered_at = NULL, retries = d.retries + 1,"
    " retried_at = now(), retried_by_key = NULLIF($3::int8, 0)"
    " FROM alerts a WHERE a.uuid = $1::uuid AND d.alert_id = a.id AND d.id = $2::int8"
    " AND d.status = 'failed'"
    " RETURNING " DELIVERY_COLS ", pg_notify('alertmap_enrichment', 'delivery ' || d.id)";
static const char STATE_SQL[] = "SELECT a.id, d.status FROM alerts a"
                                " LEFT JOIN dispatch_deliveries d"
                                "   ON d.alert_id = a.id AND d.id = $2::int8"
                                " WHERE a.uuid = $1::uuid";

int store_delivery_retry(PGconn *c, const char *uuid, int64_t delivery_id, int64_t key_id,
                         reply_buf_t *out)
{
    char id[24], kid[24];
    snprintf(id, sizeof(id), "%lld", (long long)delivery_id);
    snprintf(kid, sizeof(kid), "%lld", (long long)(key_id > 0 ? key_id : 0));
    const char *p[] = {uuid, id, kid};
    PGresult *r = PQexecParams(c, RETRY_SQL, 3, NULL, p, NULL, NULL, 0);
    int rc = AM_OK;
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = store_reply_db_error(c, r, out);
        goto done;
    }
    if (PQntuples(r) == 1) {
        am_buf_t b;
        am_buf_init(&b, 0);
        am_buf_puts(&b, "{\"data\":");
        put_delivery(&b, r, 0, 0);
        am_buf_putc(&b, '}');
        reply_buf(out, 202, &b);
        goto done;
    }
    PQclear(r);
    r = PQexecParams(c, STATE_SQL, 2, NULL, p, NULL, NULL, 0);
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = store_reply_db_error(c, r, out);
        goto done;
    }
    if (PQntuples(r) == 0)
        store_reply_set(out, 404, store_json_error("NOT_FOUND", "no alert with uuid %s", uuid));
    else if (PQgetisnull(r, 0, 1))
        store_reply_set(out, 404,
                        store_json_error("NOT_FOUND", "alert %s has no delivery %lld", uuid,
                                         (long long)delivery_id));
    else
        store_reply_set(out, 409,
                        store_json_error("DELIVERY_NOT_FAILED",
                                         "delivery %lld is %s; only a failed delivery can be "
                                         "retried",
                                         (long long)delivery_id, PQgetvalue(r, 0, 1)));
done:
    PQclear(r);
    return rc;
}

/* Each live state from its partial index (an index-only scan of the rows
 * in that state), each final state from the tallies of 006_dispatch_api.sql
 * (16 rows at most). */
static const char COUNTS_SQL[] =
    "SELECT (SELECT count(*) FROM enrichment_jobs WHERE status = 'queued'),"
    " (SELECT count(*) FROM enrichment_jobs WHERE status = 'running'),"
    " (SELECT coalesce(sum(n), 0) FROM status_tallies"
    "   WHERE tbl = 'enrichment_jobs' AND status = 'done'),"
    " (SELECT coalesce(sum(n), 0) FROM status_tallies"
    "   WHERE tbl = 'enrichment_jobs' AND status = 'failed'),"
    " (SELECT count(*) FROM dispatch_deliveries WHERE status = 'pending'),"
    " (SELECT count(*) FROM dispatch_deliveries WHERE status = 'sending'),"
    " (SELECT coalesce(sum(n), 0) FROM status_tallies"
    "   WHERE tbl = 'dispatch_deliveries' AND status = 'delivered'),"
    " (SELECT count(*) FROM dispatch_deliveries WHERE status = 'failed')";

int store_queue_counts(PGconn *c, reply_buf_t *out)
{
    PGresult *r = PQexec(c, COUNTS_SQL);
    int rc = AM_OK;
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = store_reply_db_error(c, r, out);
        goto done;
    }
    am_buf_t b;
    am_buf_init(&b, 0);
    am_buf_printf(&b,
                  "{\"data\":{\"jobs\":{\"queued\":%s,\"running\":%s,\"done\":%s,\"failed\":%s},"
                  "\"deliveries\":{\"pending\":%s,\"sending\":%s,\"delivered\":%s,"
                  "\"failed\":%s}}}",
                  PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2),
                  PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 4), PQgetvalue(r, 0, 5),
                  PQgetvalue(r, 0, 6), PQgetvalue(r, 0, 7));
    reply_buf(out, 200, &b);
done:
    PQclear(r);
    return rc;
}
