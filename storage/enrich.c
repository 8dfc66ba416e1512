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

#define MAX_PREPARED 16

struct store_enrich {
    PGconn *c;
    char *conninfo;
    char *worker; /* claimed_by */
    /* the statements prepared on c, by the address of their static text:
     * the worker's statements run many times a second, and parsing and
     * planning them each time cost PostgreSQL more than running them */
    const char *prepared[MAX_PREPARED];
    size_t nprepared;
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
    e->nprepared = 0; /* a new connection has none */
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

/* Runs sql (a static string) as a prepared statement of the connection,
 * preparing it the first time. The result as PQexecParams gives it. */
static PGresult *run(store_enrich_t *e, const char *sql, int n, const char *const *params)
{
    size_t i = 0;
    while (i < e->nprepared && e->prepared[i] != sql)
        i++;
    char name[32];
    snprintf(name, sizeof(name), "am_enrich_%zu", i);
    if (i == e->nprepared) {
        if (i == MAX_PREPARED)
            return PQexecParams(e->c, sql, n, NULL, params, NULL, NULL, 0);
        PGresult *r = PQprepare(e->c, name, sql, n, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            return r;
        PQclear(r);
        e->prepared[e->nprepared++] = sql;
    }
    return PQexecPrepared(e->c, name, n, params, NULL, NULL, 0);
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
    PGresult *r = run(e, sql, 2, params);
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

void store_enrich_iocs_free(store_enrich_ioc_t *v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++) {
        free(v[i].type);
        free(v[i].value);
    }
    free(v);
}

/* Runs one statement; with check_rows, AM_ENOTFOUND when it changed no row. */
static int exec_params(store_enrich_t *e, const char *sql, int n, const char *const *params,
                       bool check_rows, char *err, size_t errlen)
{
    PGresult *r = run(e, sql, n, params);
    int rc = AM_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = fail(e, r, err, errlen);
    else if (check_rows && strcmp(PQcmdTuples(r), "0") == 0)
        rc = AM_ENOTFOUND;
    PQclear(r);
    return rc;
}

/* ---- batches ------------------------------------------------------------------- */

/* Appends one element of a PostgreSQL array literal: NULL, or the text
 * double-quoted with " and \ escaped. */
static void arr_elem(am_buf_t *b, const char *s)
{
    if (b->len > 1)
        am_buf_putc(b, ',');
    if (s == NULL) {
        am_buf_puts(b, "NULL");
        return;
    }
    am_buf_putc(b, '"');
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            am_buf_putc(b, '\\');
        am_buf_putc(b, *s);
    }
    am_buf_putc(b, '"');
}

static void arr_i64(am_buf_t *b, int64_t v)
{
    if (b->len > 1)
        am_buf_putc(b, ',');
    am_buf_printf(b, "%lld", (long long)v);
}

static void arr_open(am_buf_t *b)
{
    am_buf_init(b, 0);
    am_buf_putc(b, '{');
}

static const char *arr_close(am_buf_t *b)
{
    am_buf_putc(b, '}');
    return b->data;
}

static void parse_facts(store_enrich_facts_t *out, const char *source, const char *severity,
                        const char *tags_json)
{
    out->source = am_xstrdup(source);
    out->severity = am_xstrdup(severity);
    json_t *tags = json_loads(tags_json, 0, NULL);
    size_t n = json_array_size(tags);
    out->tags = am_xcalloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        const char *t = json_string_value(json_array_get(tags, i));
        out->tags[out->ntags++] = am_xstrdup(t ? t : "");
    }
    json_decref(tags);
}

/* What the claim returns of each job: id, alert_id, attempts, whether the
 * worker has work (else the statement ended it), whether the alert
 * exists, its source, severity, tags and indicators. The indicators of
 * the whole batch are read with one join (a subquery per job made the
 * planner scan the indicators table once per job). */
#define CLAIM_SELECT                                                                               \
    ", ji AS (SELECT ai.alert_id, json_agg(json_build_array(i.type, i.value) "                     \
    "    ORDER BY ai.position)::text AS iocs "                                                     \
    "  FROM alert_indicators ai JOIN indicators i ON i.id = ai.indicator_id "                      \
    "  WHERE ai.alert_id IN (SELECT alert_id FROM j WHERE work) GROUP BY ai.alert_id) "            \
    "SELECT j.id, j.alert_id, j.attempts, j.work, a.id IS NOT NULL, "                              \
    "  coalesce(a.source_name, ''), coalesce(a.severity::text, ''), "                              \
    "  coalesce(to_json(a.tags)::text, '[]'), coalesce(ji.iocs, '[]') "                            \
    "FROM j LEFT JOIN alerts a ON a.id = j.alert_id AND j.work "                                   \
    "LEFT JOIN ji ON ji.alert_id = j.alert_id AND j.work ORDER BY j.id"

/* The due jobs, oldest first: queued ones whose next attempt is due, then
 * running ones whose lease expired. Two index scans, not one bitmap scan
 * of both partial indexes: an index scan marks the entries of jobs already
 * ended as dead and skips them afterwards, a bitmap scan visits all of them
 * again at every claim until VACUUM (it cost 10 ms per claim after a few
 * thousand jobs). */
#define CLAIM_DUE                                                                                  \
    "SELECT * FROM (SELECT id, alert_id FROM enrichment_jobs "                                     \
    "  WHERE status = 'queued' AND next_attempt_at <= now() "                                      \
    "  ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) q "                                            \
    "UNION ALL SELECT * FROM (SELECT id, alert_id FROM enrichment_jobs "                           \
    "  WHERE status = 'running' AND lease_until < now() "                                          \
    "  ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED) r LIMIT $3"

int store_enrich_claim_batch(store_enrich_t *e, int64_t lease_us, size_t max,
                             const char *const *work_types, size_t ntypes,
                             store_enrich_claimed_t *out, size_t *n, size_t *ended, char *err,
                             size_t errlen)
{
    /* every job claimed for the worker */
    static const char sql_all[] =
        "WITH c AS MATERIALIZED (" CLAIM_DUE "), "
        "j AS (UPDATE enrichment_jobs j SET status = 'running', claimed_by = $1, "
        "    claimed_at = now(), lease_until = now() + $2 * interval '1 microsecond', "
        "    attempts = j.attempts + 1 "
        "  FROM c WHERE j.id = c.id RETURNING j.id, j.alert_id, j.attempts, true AS "
        "work) " CLAIM_SELECT;
    /* jobs of alerts with no indicator of the types in $4 (no provider
     * answers them, and there are no targets) end here, in the claim:
     * done, the alert Enriched with verdict Unknown and each indicator
     * Unknown, as the worker would have written; the rest are claimed */
    static const char sql_fast[] =
        "WITH c AS MATERIALIZED (" CLAIM_DUE "), "
        "w AS MATERIALIZED (SELECT DISTINCT ai.alert_id FROM alert_indicators ai "
        "    JOIN indicators i ON i.id = ai.indicator_id "
        "    WHERE ai.alert_id IN (SELECT alert_id FROM c) AND i.type = ANY ($4::text[])), "
        "j AS (UPDATE enrichment_jobs j SET claimed_by = $1, claimed_at = now(), "
        "    attempts = j.attempts + 1, "
        "    status = CASE WHEN w.alert_id IS NOT NULL THEN 'running' ELSE 'done' END, "
        "    lease_until = CASE WHEN w.alert_id IS NOT NULL "
        "      THEN now() + $2 * interval '1 microsecond' END, "
        "    finished_at = CASE WHEN w.alert_id IS NOT NULL THEN j.finished_at ELSE now() END, "
        "    last_error = CASE WHEN w.alert_id IS NOT NULL THEN j.last_error END "
        "  FROM c LEFT JOIN w ON w.alert_id = c.alert_id WHERE j.id = c.id "
        "  RETURNING j.id, j.alert_id, j.attempts, w.alert_id IS NOT NULL AS work), "
        "l AS MATERIALIZED (SELECT a.id FROM alerts a WHERE a.id IN "
        "    (SELECT alert_id FROM j WHERE NOT work) ORDER BY a.id FOR UPDATE), "
        "iv AS (SELECT ai.alert_id, jsonb_object_agg(i.type || ':' || i.value, 'Unknown') AS v "
        "  FROM alert_indicators ai JOIN indicators i ON i.id = ai.indicator_id "
        "  WHERE ai.alert_id IN (SELECT id FROM l) GROUP BY ai.alert_id), "
        "u AS (UPDATE alerts a SET enrichment_status = 'Enriched', verdict = 'Unknown', "
        "    enrichment_error = NULL, enriched_at = now(), updated_at = now(), "
        "    indicator_verdicts = coalesce(iv.v, '{}') "
        "  FROM l LEFT JOIN iv ON iv.alert_id = l.id WHERE a.id = l.id)" CLAIM_SELECT;
    *n = 0;
    *ended = 0;
    int rc = ensure(e, err, errlen);
    if (rc != AM_OK)
        return rc;
    char lease[24], lim[24];
    fmt_i64(lease, lease_us);
    fmt_i64(lim, (int64_t)(max ? max : 1));
    am_buf_t types;
    arr_open(&types);
    for (size_t i = 0; work_types != NULL && i < ntypes; i++)
        arr_elem(&types, work_types[i]);
    const char *params[] = {e->worker, lease, lim, arr_close(&types)};
    PGresult *r = work_types ? run(e, sql_fast, 4, params) : run(e, sql_all, 3, params);
    am_buf_dispose(&types);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = fail(e, r, err, errlen);
        PQclear(r);
        return rc;
    }
    int rows = PQntuples(r);
    for (int i = 0; i < rows && *n < max; i++) {
        if (PQgetvalue(r, i, 3)[0] != 't') {
            (*ended)++;
            continue;
        }
        store_enrich_claimed_t *c = &out[*n];
        memset(c, 0, sizeof(*c));
        c->job.id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        c->job.alert_id = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        c->job.attempts = (int)strtol(PQgetvalue(r, i, 2), NULL, 10);
        c->alert_found = PQgetvalue(r, i, 4)[0] == 't';
        parse_facts(&c->facts, PQgetvalue(r, i, 5), PQgetvalue(r, i, 6), PQgetvalue(r, i, 7));
        json_t *iv = json_loads(PQgetvalue(r, i, 8), 0, NULL);
        size_t k = json_array_size(iv);
        c->iocs = am_xcalloc(k ? k : 1, sizeof(*c->iocs));
        for (size_t x = 0; x < k; x++) {
            json_t *pair = json_array_get(iv, x);
            const char *t = json_string_value(json_array_get(pair, 0));
            const char *v = json_string_value(json_array_get(pair, 1));
            c->iocs[c->niocs].type = am_xstrdup(t ? t : "");
            c->iocs[c->niocs].value = am_xstrdup(v ? v : "");
            c->niocs++;
        }
        json_decref(iv);
        (*n)++;
    }
    PQclear(r);
    return *n + *ended > 0 ? AM_OK : AM_ENOTFOUND;
}

void store_enrich_claimed_dispose(store_enrich_claimed_t *c)
{
    store_enrich_facts_dispose(&c->facts);
    store_enrich_iocs_free(c->iocs, c->niocs);
    c->iocs = NULL;
    c->niocs = 0;
}

int store_enrich_heartbeat_many(store_enrich_t *e, const int64_t *ids, size_t n, int64_t lease_us,
                                bool *held, char *err, size_t errlen)
{
    static const char sql[] =
        "UPDATE enrichment_jobs SET lease_until = now() + $3 * interval '1 microsecond' "
        "WHERE id = ANY ($1::int8[]) AND claimed_by = $2 AND status = 'running' RETURNING id";
    int rc = ensure(e, err, errlen);
    if (rc != AM_OK)
        return rc;
    am_buf_t a;
    arr_open(&a);
    for (size_t i = 0; i < n; i++)
        arr_i64(&a, ids[i]);
    char lease[24];
    fmt_i64(lease, lease_us);
    const char *params[] = {arr_close(&a), e->worker, lease};
    PGresult *r = run(e, sql, 3, params);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = fail(e, r, err, errlen);
    } else {
        for (size_t i = 0; i < n; i++)
            held[i] = false;
        for (int k = 0; k < PQntuples(r); k++) {
            int64_t id = strtoll(PQgetvalue(r, k, 0), NULL, 10);
            for (size_t i = 0; i < n; i++)
                if (ids[i] == id)
                    held[i] = true;
        }
    }
    PQclear(r);
    am_buf_dispose(&a);
    return rc;
}

int store_enrich_cache_get_many(store_enrich_t *e, const store_enrich_key_t *keys, size_t n,
                                store_enrich_cached_t *out, bool *found, char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT k.i, r.outcome, coalesce(r.verdict, ''), r.fields::text, r.error, "
        "  to_char(r.fetched_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
        "FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(p, t, v, i) "
        "JOIN enrichment_results r ON r.type = k.t AND r.value = k.v AND r.provider = k.p "
        "WHERE r.expires_at > now()";
    for (size_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        found[i] = false;
    }
    if (n == 0)
        return AM_OK;
    int rc = ensure(e, err, errlen);
    if (rc != AM_OK)
        return rc;
    am_buf_t p, t, v;
    arr_open(&p);
    arr_open(&t);
    arr_open(&v);
    for (size_t i = 0; i < n; i++) {
        arr_elem(&p, keys[i].provider);
        arr_elem(&t, keys[i].type);
        arr_elem(&v, keys[i].value);
    }
    const char *params[] = {arr_close(&p), arr_close(&t), arr_close(&v)};
    PGresult *r = run(e, sql, 3, params);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = fail(e, r, err, errlen);
    } else {
        for (int k = 0; k < PQntuples(r); k++) {
            long i = strtol(PQgetvalue(r, k, 0), NULL, 10) - 1;
            if (i < 0 || (size_t)i >= n || found[i])
                continue;
            found[i] = true;
            snprintf(out[i].outcome, sizeof(out[i].outcome), "%s", PQgetvalue(r, k, 1));
            snprintf(out[i].verdict, sizeof(out[i].verdict), "%s", PQgetvalue(r, k, 2));
            out[i].fields = am_xstrdup(PQgetvalue(r, k, 3));
            out[i].error = PQgetisnull(r, k, 4) ? NULL : am_xstrdup(PQgetvalue(r, k, 4));
            snprintf(out[i].fetched_at, sizeof(out[i].fetched_at), "%s", PQgetvalue(r, k, 5));
        }
    }
    PQclear(r);
    am_buf_dispose(&p);
    am_buf_dispose(&t);
    am_buf_dispose(&v);
    return rc;
}

void store_enrich_cached_dispose(store_enrich_cached_t *c)
{
    free(c->fields);
    free(c->error);
    c->fields = NULL;
    c->error = NULL;
}

int store_enrich_cache_put_many(store_enrich_t *e, const store_enrich_result_t *res, size_t n,
                                char *err, size_t errlen)
{
    /* one row per key (a key given twice keeps its last result) */
    static const char sql[] =
        "INSERT INTO enrichment_results (provider, type, value, outcome, verdict, fields, error, "
        "  fetched_at, expires_at) "
        "SELECT DISTINCT ON (u.t, u.v, u.p) u.p, u.t, u.v, u.o, nullif(u.vd, ''), u.f::jsonb, "
        "  u.e, now(), now() + u.ttl * interval '1 microsecond' "
        "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
        "            $7::text[], $8::int8[]) WITH ORDINALITY AS u(p, t, v, o, vd, f, e, ttl, i) "
        "ORDER BY u.t, u.v, u.p, u.i DESC "
        "ON CONFLICT (type, value, provider) DO UPDATE SET outcome = EXCLUDED.outcome, "
        "  verdict = EXCLUDED.verdict, fields = EXCLUDED.fields, error = EXCLUDED.error, "
        "  fetched_at = EXCLUDED.fetched_at, expires_at = EXCLUDED.expires_at";
    if (n == 0)
        return AM_OK;
    int rc = ensure(e, err, errlen);
    if (rc != AM_OK)
        return rc;
    am_buf_t a[8];
    for (size_t k = 0; k < 8; k++)
        arr_open(&a[k]);
    for (size_t i = 0; i < n; i++) {
        arr_elem(&a[0], res[i].provider);
        arr_elem(&a[1], res[i].type);
        arr_elem(&a[2], res[i].value);
        arr_elem(&a[3], res[i].outcome);
        arr_elem(&a[4], res[i].verdict ? res[i].verdict : "");
        arr_elem(&a[5], res[i].fields ? res[i].fields : "{}");
        arr_elem(&a[6], res[i].error);
        arr_i64(&a[7], res[i].ttl_us > 0 ? res[i].ttl_us : 0);
    }
    const char *params[8];
    for (size_t k = 0; k < 8; k++)
        params[k] = arr_close(&a[k]);
    rc = exec_params(e, sql, 8, params, false, err, errlen);
    for (size_t k = 0; k < 8; k++)
        am_buf_dispose(&a[k]);
    return rc;
}

static char *ioc_verdicts_text(const store_enrich_outcome_t *o)
{
    json_t *iv = json_object();
    for (size_t i = 0; i < o->niocs; i++) {
        am_buf_t k;
        am_buf_init(&k, 0);
        am_buf_printf(&k, "%s:%s", o->iocs[i].type, o->iocs[i].value);
        json_object_set_new(iv, k.data ? k.data : ":", json_string(o->iocs[i].verdict));
        am_buf_dispose(&k);
    }
    char *text = json_dumps(iv, JSON_COMPACT);
    json_decref(iv);
    return text ? text : am_xstrdup("{}");
}

int store_enrich_finish_batch(store_enrich_t *e, const store_enrich_outcome_t *o, size_t n,
                              bool *ended, char *err, size_t errlen)
{
    /* One statement for the whole batch. Only the lease holder ends a job
     * (a job whose lease was taken over changes nothing and is reported
     * not ended); the alerts of ended jobs get their verdicts and status,
     * locked in id order; the deliveries of their targets are queued. */
    static const char sql[] =
        "WITH o AS (SELECT * FROM unnest($2::int8[], $3::int8[], $4::text[], $5::text[], "
        "    $6::text[], $7::text[], $8::int8[], $9::int4[]) "
        "    AS o(job, alert, kind, verdict, error, iv, delay, uncount)), "
        "j AS (UPDATE enrichment_jobs j SET "
        "    status = CASE o.kind WHEN 'retry' THEN 'queued' ELSE o.kind END, "
        "    finished_at = CASE o.kind WHEN 'retry' THEN j.finished_at ELSE now() END, "
        "    next_attempt_at = CASE o.kind WHEN 'retry' "
        "      THEN now() + o.delay * interval '1 microsecond' ELSE j.next_attempt_at END, "
        "    attempts = CASE o.kind WHEN 'retry' THEN greatest(j.attempts - o.uncount, 0) "
        "      ELSE j.attempts END, "
        "    lease_until = NULL, last_error = o.error "
        "  FROM o WHERE j.id = o.job AND j.claimed_by = $1 AND j.status = 'running' "
        "  RETURNING j.id, o.alert, o.kind, o.verdict, o.error, o.iv), "
        "l AS MATERIALIZED (SELECT a.id FROM alerts a WHERE a.id IN "
        "    (SELECT j.alert FROM j WHERE j.kind <> 'retry') ORDER BY a.id FOR UPDATE), "
        "u AS (UPDATE alerts a SET enrichment_status = CASE j.kind WHEN 'failed' THEN 'Failed' "
        "      ELSE 'Enriched' END, verdict = j.verdict, enrichment_error = j.error, "
        "    indicator_verdicts = j.iv::jsonb, enriched_at = now(), updated_at = now() "
        "  FROM j JOIN l ON l.id = j.alert WHERE a.id = j.alert AND j.kind <> 'retry'), "
        "d AS (INSERT INTO dispatch_deliveries (alert_id, target) "
        "  SELECT DISTINCT t.alert, t.target FROM unnest($10::int8[], $11::text[]) "
        "    AS t(alert, target) JOIN j ON j.alert = t.alert AND j.kind <> 'retry' "
        "  ON CONFLICT (alert_id, target) DO NOTHING) "
        "SELECT id FROM j";
    for (size_t i = 0; i < n; i++)
        ended[i] = false;
    if (n == 0)
        return AM_OK;
    int rc = ensure(e, err, errlen);
    if (rc != AM_OK)
        return rc;
    am_buf_t a[10];
    for (size_t k = 0; k < 10; k++)
        arr_open(&a[k]);
    for (size_t i = 0; i < n; i++) {
        const store_enrich_outcome_t *x = &o[i];
        arr_i64(&a[0], x->job_id);
        arr_i64(&a[1], x->alert_id);
        arr_elem(&a[2], x->retry ? "retry" : x->failed ? "failed" : "done");
        arr_elem(&a[3], x->verdict);
        arr_elem(&a[4], x->error);
        char *iv = ioc_verdicts_text(x);
        arr_elem(&a[5], iv);
        free(iv);
        arr_i64(&a[6], x->retry_us);
        arr_i64(&a[7], x->uncount ? 1 : 0);
        for (size_t t = 0; !x->retry && t < x->ntargets; t++) {
            arr_i64(&a[8], x->alert_id);
            arr_elem(&a[9], x->targets[t]);
        }
    }
    const char *params[11];
    params[0] = e->worker;
    for (size_t k = 0; k < 10; k++)
        params[k + 1] = arr_close(&a[k]);
    PGresult *r = run(e, sql, 11, params);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = fail(e, r, err, errlen);
    } else {
        for (int k = 0; k < PQntuples(r); k++) {
            int64_t id = strtoll(PQgetvalue(r, k, 0), NULL, 10);
            for (size_t i = 0; i < n; i++)
                if (o[i].job_id == id)
                    ended[i] = true;
        }
    }
    PQclear(r);
    for (size_t k = 0; k < 10; k++)
        am_buf_dispose(&a[k]);
    return rc;
}

int store_enrich_deliveries_add_many(store_enrich_t *e, const int64_t *alerts,
                                     const char *const *targets, size_t n, char *err, size_t errlen)
{
    static const char sql[] = "INSERT INTO dispatch_deliveries (alert_id, target) "
                              "SELECT DISTINCT * FROM unnest($1::int8[], $2::text[]) "
                              "ON CONFLICT (alert_id, target) DO NOTHING";
    if (n == 0)
        return AM_OK;
    int rc = ensure(e, err, errlen);
    if (rc != AM_OK)
        return rc;
    am_buf_t a, t;
    arr_open(&a);
    arr_open(&t);
    for (size_t i = 0; i < n; i++) {
        arr_i64(&a, alerts[i]);
        arr_elem(&t, targets[i]);
    }
    const char *params[] = {arr_close(&a), arr_close(&t)};
    rc = exec_params(e, sql, 2, params, false, err, errlen);
    am_buf_dispose(&a);
    am_buf_dispose(&t);
    return rc;
}

/* ---- dispatch ------------------------------------------------------------------ */

void store_enrich_facts_dispose(store_enrich_facts_t *f)
{
    for (size_t i = 0; i < f->ntags; i++)
        free(f->tags[i]);
    free(f->tags);
    free(f->source);
    free(f->severity);
    memset(f, 0, sizeof(*f));
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
