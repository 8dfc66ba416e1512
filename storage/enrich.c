/*
 * storage/enrich.c - the enrichment worker's SQL (store.h, "Enrichment"):
 * claiming jobs with FOR UPDATE SKIP LOCKED and a lease, waiting on the
 * alertmap_enrichment NOTIFY channel, the shared result cache, and writing
 * verdicts and enrichment_status in one transaction that only the holder
 * of the lease can commit. One store_enrich_t is one connection, owned by
 * one worker thread.
 */
#include "store_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

struct store_enrich {
    PGconn *c;
    char *conninfo;
    char *worker; /* claimed_by */
};

static int fail(store_enrich_t *e, PGresult *r, char *err, size_t errlen)
{
    store_pg_errcopy(err, errlen, r ? PQresultErrorMessage(r) : PQerrorMessage(e->c));
    if (err != NULL && errlen > 0 && err[0] == '\0')
        store_pg_errcopy(err, errlen, PQerrorMessage(e->c));
    int rc = store_pgerr_classify(e->c, r) == PGERR_DATA ? AM_EINVAL : AM_EUNAVAIL;
    if (PQstatus(e->c) != CONNECTION_OK) {
        PQfinish(e->c);
        e->c = NULL;
    }
    return rc;
}

static int ensure(store_enrich_t *e, char *err, size_t errlen)
{
    if (e->c != NULL && PQstatus(e->c) == CONNECTION_OK)
        return AM_OK;
    if (e->c != NULL)
        PQfinish(e->c);
    e->c = store_pgconn_open(e->conninfo, err, errlen);
    if (e->c == NULL)
        return AM_EUNAVAIL;
    PGresult *r = PQexec(e->c, "LISTEN alertmap_enrichment");
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? AM_OK : fail(e, r, err, errlen);
    PQclear(r);
    return rc;
}

int store_enrich_open(store_enrich_t **out, const char *conninfo, const char *worker, char *err,
                      size_t errlen)
{
    store_enrich_t *e = am_xcalloc(1, sizeof(*e));
    e->conninfo = am_xstrdup(conninfo);
    e->worker = am_xstrdup(worker);
    *out = e;
    return ensure(e, err, errlen);
}

void store_enrich_close(store_enrich_t *e)
{
    if (e == NULL)
        return;
    if (e->c != NULL)
        PQfinish(e->c);
    free(e->conninfo);
    free(e->worker);
    free(e);
}

int store_enrich_wait(store_enrich_t *e, int64_t timeout_us)
{
    char err[256];
    if (ensure(e, err, sizeof(err)) != AM_OK)
        return AM_EUNAVAIL;
    PGnotify *n;
    bool got = false;
    PQconsumeInput(e->c);
    while ((n = PQnotifies(e->c)) != NULL) {
        got = true;
        PQfreemem(n);
    }
    if (got)
        return AM_OK;
    struct pollfd p = {.fd = PQsocket(e->c), .events = POLLIN};
    int ms = (int)(timeout_us / 1000);
    int rc = poll(&p, 1, ms < 1 ? 1 : ms);
    if (rc > 0) {
        if (!PQconsumeInput(e->c))
            return AM_EUNAVAIL;
        while ((n = PQnotifies(e->c)) != NULL)
            PQfreemem(n);
    }
    return AM_OK;
}

static void fmt_i64(char buf[24], int64_t v)
{
    snprintf(buf, 24, "%lld", (long long)v);
}

/* Runs one of the lease-claiming UPDATE … RETURNING statements ($1 the
 * worker, $2 the lease in µs). 0 with *out a result of one row (the caller
 * clears it), AM_ENOTFOUND when nothing is due (*out NULL), or an error. */
static int claim_row(store_enrich_t *e, const char *sql, int64_t lease_us, PGresult **out,
                     char *err, size_t errlen)
{
    *out = NULL;
    int rc = ensure(e, err, errlen);
    if (rc != AM_OK)
        return rc;
    char lease[24];
    fmt_i64(lease, lease_us);
    const char *params[] = {e->worker, lease};
    PGresult *r = PQexecParams(e->c, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = fail(e, r, err, errlen);
        PQclear(r);
        return rc;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        return AM_ENOTFOUND;
    }
    *out = r;
    return AM_OK;
}

int store_enrich_claim(store_enrich_t *e, int64_t lease_us, store_enrich_job_t *job, char *err,
                       size_t errlen)
{
    static const char sql[] =
        "UPDATE enrichment_jobs j SET status = 'running', claimed_by = $1, claimed_at = now(), "
        "  lease_until = now() + $2 * interval '1 microsecond', attempts = attempts + 1 "
        "WHERE id = (SELECT id FROM enrichment_jobs "
        "            WHERE (status = 'queued' AND next_attempt_at <= now()) "
        "               OR (status = 'running' AND lease_until < now()) "
        "            ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1) "
        "RETURNING j.id, j.alert_id, j.attempts";
    PGresult *r = NULL;
    int rc = claim_row(e, sql, lease_us, &r, err, errlen);
    if (rc != AM_OK)
        return rc;
    job->id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    job->alert_id = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    job->attempts = (int)strtol(PQgetvalue(r, 0, 2), NULL, 10);
    PQclear(r);
    return rc;
}

int store_enrich_heartbeat(store_enrich_t *e, int64_t job_id, int64_t lease_us, char *err,
                           size_t errlen)
{
    static const char sql[] =
        "UPDATE enrichment_jobs SET lease_until = now() + $3 * interval '1 microsecond' "
        "WHERE id = $1 AND claimed_by = $2 AND status = 'running'";
    int rc = ensure(e, err, errlen);
    if (rc != AM_OK)
        return rc;
    char id[24], lease[24];
    fmt_i64(id, job_id);
    fmt_i64(lease, lease_us);
    const char *params[] = {id, e->worker, lease};
    PGresult *r = PQexecParams(e->c, sql, 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = fail(e, r, err, errlen);
    else if (strcmp(PQcmdTuples(r), "1") != 0)
        rc = AM_ENOTFOUND; /* the lease was lost to another worker */
    PQclear(r);
    return rc;
}

int store_enrich_indicators(store_enrich_t *e, int64_t alert_id, store_enrich_ioc_t **out,
                            size_t *n, char *err, size_t errlen)
{
    static const char sql[] = "SELECT i.id, i.type, i.value FROM alert_indicators ai "
                              "JOIN indicators i ON i.id = ai.indicator_id "
                              "WHERE ai.alert_id = $1 ORDER BY ai.position";
    *out = NULL;
    *n = 0;
    int rc = ensure(e, err, errlen);
    if (rc != AM_OK)
        return rc;
    char id[24];
    fmt_i64(id, alert_id);
    const char *params[] = {id};
    PGresult *r = PQexecParams(e->c, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = fail(e, r, err, errlen);
        goto done;
    }
    int rows = PQntuples(r);
    *out = am_xcalloc(rows ? (size_t)rows : 1, sizeof(**out));
    for (int i = 0; i < rows; i++) {
        (*out)[i].id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        (*out)[i].type = am_xstrdup(PQgetvalue(r, i, 1));
        (*out)[i].value = am_xstrdup(PQgetvalue(r, i, 2));
    }
    *n = (size_t)rows;
done:
    PQclear(r);
    return rc;
}

void store_enrich_iocs_free(store_enrich_ioc_t *v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++) {
        free(v[i].type);
        free(v[i].value);
    }
    free(v);
}

int store_enrich_cache_get(store_enrich_t *e, const char *provider, const char *type,
                           const char *value, store_enrich_cached_t *out, char *err, size_t errlen)
{
    static const char sql[] = "SELECT outcome, coalesce(verdict, ''), fields::text "
                              "FROM enrichment_results WHERE type = $1 AND value = $2 "
                              "AND provider = $3 AND expires_at > now()";
    memset(out, 0, sizeof(*out));
    int rc = ensure(e, err, errlen);
    if (rc != AM_OK)
        return rc;
    const char *params[] = {type, value, provider};
    PGresult *r = PQexecParams(e->c, sql, 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = fail(e, r, err, errlen);
        goto done;
    }
    if (PQntuples(r) == 0) {
        rc = AM_ENOTFOUND;
        goto done;
    }
    snprintf(out->outcome, sizeof(out->outcome), "%s", PQgetvalue(r, 0, 0));
    snprintf(out->verdict, sizeof(out->verdict), "%s", PQgetvalue(r, 0, 1));
    out->fields = am_xstrdup(PQgetvalue(r, 0, 2));
done:
    PQclear(r);
    return rc;
}

int store_enrich_cache_put(store_enrich_t *e, const store_enrich_result_t *res, char *err,
                           size_t errlen)
{
    static const char sql[] =
        "INSERT INTO enrichment_results (provider, type, value, outcome, verdict, fields, error, "
        "  fetched_at, expires_at) "
        "VALUES ($1, $2, $3, $4, nullif($5, ''), $6::jsonb, $7, now(), "
        "        now() + $8 * interval '1 microsecond') "
        "ON CONFLICT (type, value, provider) DO UPDATE SET outcome = EXCLUDED.outcome, "
        "  verdict = EXCLUDED.verdict, fields = EXCLUDED.fields, error = EXCLUDED.error, "
        "  fetched_at = EXCLUDED.fetched_at, expires_at = EXCLUDED.expires_at";
    int rc = ensure(e, err, errlen);
    if (rc != AM_OK)
        return rc;
    char ttl[24];
    fmt_i64(ttl, res->ttl_us > 0 ? res->ttl_us : 0);
    const char *params[] = {res->provider,
                            res->type,
                            res->value,
                            res->outcome,
                            res->verdict ? res->verdict : "",
                            res->fields ? res->fields : "{}",
                            res->error,
                            ttl};
    PGresult *r = PQexecParams(e->c, sql, 8, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = fail(e, r, err, errlen);
    PQclear(r);
    return rc;
}

/* Runs one statement; with check_rows, AM_ENOTFOUND when it changed no row. */
static int exec_params(store_enrich_t *e, const char *sql, int n, const char *const *params,
                       bool check_rows, char *err, size_t errlen)
{
    PGresult *r = PQexecParams(e->c, sql, n, NULL, params, NULL, NULL, 0);
    int rc = AM_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = fail(e, r, err, errlen);
    else if (check_rows && strcmp(PQcmdTuples(r), "0") == 0)
        rc = AM_ENOTFOUND;
    PQclear(r);
    return rc;
}

static int add_deliveries(store_enrich_t *e, const char *alert, const char *const *targets,
                          size_t n, char *err, size_t errlen);

int store_enrich_finish(store_enrich_t *e, const store_enrich_outcome_t *o, char *err,
                        size_t errlen)
{
    int rc = ensure(e, err, errlen);
    if (rc != AM_OK)
        return rc;
    char id[24], alert[24];
    fmt_i64(id, o->job_id);
    fmt_i64(alert, o->alert_id);
    PGresult *r = PQexec(e->c, "BEGIN");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        rc = fail(e, r, err, errlen);
        PQclear(r);
        return rc;
    }
    PQclear(r);
    /* only the lease holder finishes the job: a worker whose lease expired
     * and was reclaimed changes nothing */
    const char *jp[] = {id, e->worker, o->failed ? "failed" : "done", o->error};
    rc = exec_params(e,
                     "UPDATE enrichment_jobs SET status = $3, finished_at = now(), "
                     "lease_until = NULL, last_error = $4 "
                     "WHERE id = $1 AND claimed_by = $2 AND status = 'running'",
                     4, jp, true, err, errlen);
    json_t *iv = json_object();
    for (size_t i = 0; i < o->niocs; i++) {
        am_buf_t k;
        am_buf_init(&k, 0);
        am_buf_printf(&k, "%s:%s", o->iocs[i].type, o->iocs[i].value);
        json_object_set_new(iv, k.data ? k.data : ":", json_string(o->iocs[i].verdict));
        am_buf_dispose(&k);
    }
    char *ivtext = json_dumps(iv, JSON_COMPACT);
    json_decref(iv);
    if (rc == AM_OK)
        rc = add_deliveries(e, alert, o->targets, o->ntargets, err, errlen);
    if (rc == AM_OK) {
        const char *ap[] = {alert, o->failed ? "Failed" : "Enriched", o->verdict, o->error,
                            ivtext ? ivtext : "{}"};
        rc = exec_params(e,
                         "UPDATE alerts SET enrichment_status = $2, verdict = $3, "
                         "enrichment_error = $4, indicator_verdicts = $5::jsonb, "
                         "enriched_at = now(), updated_at = now() WHERE id = $1",
                         5, ap, false, err, errlen);
    }
    free(ivtext);
    if (e->c == NULL)
        return rc;
    r = PQexec(e->c, rc == AM_OK ? "COMMIT" : "ROLLBACK");
    if (rc == AM_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = fail(e, r, err, errlen);
    PQclear(r);
    if (rc == AM_ENOTFOUND && err != NULL && errlen > 0)
        snprintf(err, errlen, "job %lld: the lease was taken over by another worker",
                 (long long)o->job_id);
    return rc;
}

int store_enrich_reschedule(store_enrich_t *e, int64_t job_id, int64_t delay_us, const char *error,
                            bool uncount, char *err, size_t errlen)
{
    int rc = ensure(e, err, errlen);
    if (rc != AM_OK)
        return rc;
    char id[24], delay[24];
    fmt_i64(id, job_id);
    fmt_i64(delay, delay_us);
    const char *p[] = {id, e->worker, delay, error, uncount ? "1" : "0"};
    return exec_params(e,
                       "UPDATE enrichment_jobs SET status = 'queued', lease_until = NULL, "
                       "next_attempt_at = now() + $3 * interval '1 microsecond', last_error = $4, "
                       "attempts = greatest(attempts - $5::int, 0) "
                       "WHERE id = $1 AND claimed_by = $2 AND status = 'running'",
                       5, p, true, err, errlen);
}

/* ---- dispatch ------------------------------------------------------------------ */

int store_enrich_alert_facts(store_enrich_t *e, int64_t alert_id, store_enrich_facts_t *out,
                             char *err, size_t errlen)
{
    static const char sql[] = "SELECT source_name, severity, to_json(tags)::text, "
                              "coalesce(verdict, '') FROM alerts WHERE id = $1";
    memset(out, 0, sizeof(*out));
    int rc = ensure(e, err, errlen);
    if (rc != AM_OK)
        return rc;
    char id[24];
    fmt_i64(id, alert_id);
    const char *params[] = {id};
    PGresult *r = PQexecParams(e->c, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = fail(e, r, err, errlen);
        goto done;
    }
    if (PQntuples(r) == 0) {
        rc = AM_ENOTFOUND;
        goto done;
    }
    out->source = am_xstrdup(PQgetvalue(r, 0, 0));
    out->severity = am_xstrdup(PQgetvalue(r, 0, 1));
    json_t *tags = json_loads(PQgetvalue(r, 0, 2), 0, NULL);
    size_t n = json_array_size(tags);
    out->tags = am_xcalloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        const char *t = json_string_value(json_array_get(tags, i));
        out->tags[out->ntags++] = am_xstrdup(t ? t : "");
    }
    json_decref(tags);
done:
    PQclear(r);
    return rc;
}

void store_enrich_facts_dispose(store_enrich_facts_t *f)
{
    for (size_t i = 0; i < f->ntags; i++)
        free(f->tags[i]);
    free(f->tags);
    free(f->source);
    free(f->severity);
    memset(f, 0, sizeof(*f));
}

static int add_deliveries(store_enrich_t *e, const char *alert, const char *const *targets,
                          size_t n, char *err, size_t errlen)
{
    int rc = AM_OK;
    for (size_t i = 0; rc == AM_OK && i < n; i++) {
        const char *p[] = {alert, targets[i]};
        rc = exec_params(e,
                         "INSERT INTO dispatch_deliveries (alert_id, target) VALUES ($1, $2) "
                         "ON CONFLICT (alert_id, target) DO NOTHING",
                         2, p, false, err, errlen);
    }
    return rc;
}

int store_enrich_deliveries_add(store_enrich_t *e, int64_t alert_id, const char *const *targets,
                                size_t n, char *err, size_t errlen)
{
    int rc = ensure(e, err, errlen);
    if (rc != AM_OK)
        return rc;
    char alert[24];
    fmt_i64(alert, alert_id);
    return add_deliveries(e, alert, targets, n, err, errlen);
}

int store_enrich_delivery_claim(store_enrich_t *e, int64_t lease_us, store_enrich_delivery_t *d,
                                char *err, size_t errlen)
{
    static const char sql[] = "UPDATE dispatch_deliveries SET status = 'sending', claimed_by = $1, "
                              "attempts = attempts + 1, "
                              "  lease_until = now() + $2 * interval '1 microsecond' "
                              "WHERE id = (SELECT id FROM dispatch_deliveries "
                              "            WHERE (status = 'pending' AND next_attempt_at <= now()) "
                              "               OR (status = 'sending' AND lease_until < now()) "
                              "            ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1) "
                              "RETURNING id, alert_id, target, attempts";
    memset(d, 0, sizeof(*d));
    PGresult *r = NULL;
    int rc = claim_row(e, sql, lease_us, &r, err, errlen);
    if (rc != AM_OK)
        return rc;
    d->id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    d->alert_id = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    snprintf(d->target, sizeof(d->target), "%s", PQgetvalue(r, 0, 2));
    d->attempts = (int)strtol(PQgetvalue(r, 0, 3), NULL, 10);
    PQclear(r);
    return rc;
}

int store_enrich_delivery_result(store_enrich_t *e, int64_t id, store_dispatch_state_t state,
                                 int http_status, const char *error, int64_t delay_us, char *err,
                                 size_t errlen)
{
    int rc = ensure(e, err, errlen);
    if (rc != AM_OK)
        return rc;
    static const char *const names[] = {"delivered", "pending", "failed"};
    char ids[24], st[16], delay[24];
    fmt_i64(ids, id);
    snprintf(st, sizeof(st), "%d", http_status);
    fmt_i64(delay, delay_us);
    const char *p[] = {ids, e->worker, names[state], http_status > 0 ? st : NULL, error, delay};
    return exec_params(
        e,
        "UPDATE dispatch_deliveries SET status = $3, last_status = $4::int, last_error = $5, "
        "  lease_until = NULL, next_attempt_at = now() + $6 * interval '1 microsecond', "
        "  delivered_at = CASE WHEN $3 = 'delivered' THEN now() END "
        "WHERE id = $1 AND claimed_by = $2 AND status = 'sending'",
        6, p, true, err, errlen);
}

/* The document is rendered by alert_get.c, the one rendering of GET
 * /v1/alerts/{uuid}: a delivery carries exactly what GET answers. */
int store_enrich_alert_json(store_enrich_t *e, int64_t alert_id, char **out, char *err,
                            size_t errlen)
{
    *out = NULL;
    int rc = ensure(e, err, errlen);
    if (rc != AM_OK)
        return rc;
    char alert[24];
    fmt_i64(alert, alert_id);
    am_buf_t b;
    am_buf_init(&b, 0);
    PGresult *bad = NULL;
    rc = store_alert_render(e->c, NULL, alert, &b, &bad);
    if (rc == AM_OK)
        *out = am_buf_steal(&b);
    else if (rc == AM_EIO)
        rc = fail(e, bad, err, errlen);
    else if (err != NULL && errlen > 0)
        snprintf(err, errlen, "alert %s %s", alert,
                 rc == AM_ENOTFOUND ? "is gone" : "cannot be rendered");
    PQclear(bad);
    am_buf_dispose(&b);
    return rc;
}
