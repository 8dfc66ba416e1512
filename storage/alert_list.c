/* storage/alert_list.c - LIST of the read API: filters, newest first, keyset
 * pagination with an opaque cursor. See docs/operations.md. */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

enum { LIMIT_DEFAULT = 50, LIMIT_MAX = 500 };

static bool status_valid(const char *s)
{
    static const char *const st[] = {"Open", "Triaging", "Escalated", "Closed"};
    for (size_t i = 0; i < AM_ARRAY_LEN(st); i++)
        if (strcmp(s, st[i]) == 0)
            return true;
    return false;
}

/* "" is the same as an absent parameter. */
static const char *param(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

static int bad(reply_buf_t *out, const char *name, const char *what)
{
    store_reply_set(out, 400, store_json_error("INVALID_PARAMETER", "%s %s", name, what));
    return -1;
}

/* Validated parameters; -1 when out holds a 400. */
typedef struct list_params {
    const char *source_name, *severity, *status;
    bool has_since, has_cursor;
    char since[24], cur_us[24], cur_id[24];
    int64_t limit;
} list_params_t;

static int check_params(const store_query_t *q, list_params_t *lp, reply_buf_t *out)
{
    memset(lp, 0, sizeof(*lp));
    lp->limit = q->limit == 0 ? LIMIT_DEFAULT : q->limit;
    if (q->limit_text != NULL) {
        const char *t = q->limit_text;
        size_t n = strlen(t);
        int64_t v = 0;
        bool ok = n > 0 && n <= 4;
        for (size_t i = 0; i < n && ok; i++) {
            ok = t[i] >= '0' && t[i] <= '9';
            v = v * 10 + (t[i] - '0');
        }
        lp->limit = ok ? v : -1;
    }
    if (lp->limit < 1 || lp->limit > LIMIT_MAX)
        return bad(out, "limit", "must be an integer from 1 to 500");
    lp->source_name = param(q->source_name);
    lp->severity = param(q->severity);
    if (lp->severity && !store_severity_valid(lp->severity))
        return bad(out, "severity",
                   "must be one of Pending, Informational, Low, Medium, High, Critical");
    lp->status = param(q->status);
    if (lp->status && !status_valid(lp->status))
        return bad(out, "status", "must be one of Open, Triaging, Escalated, Closed");
    if (param(q->since)) {
        int64_t us;
        if (store_rfc3339_parse(q->since, &us) != AM_OK)
            return bad(out, "since", "must be an RFC 3339 date-time, e.g. 2024-05-01T10:00:00Z");
        lp->has_since = true;
        snprintf(lp->since, sizeof(lp->since), "%lld", (long long)us);
    }
    if (param(q->cursor)) {
        int64_t us, id;
        if (store_cursor_decode(q->cursor, &us, &id) != AM_OK)
            return bad(out, "cursor", "is not a cursor returned by this API");
        lp->has_cursor = true;
        snprintf(lp->cur_us, sizeof(lp->cur_us), "%lld", (long long)us);
        snprintf(lp->cur_id, sizeof(lp->cur_id), "%lld", (long long)id);
    }
    return 0;
}

bool store_alert_list_precheck(const store_query_t *q, reply_buf_t *out)
{
    list_params_t lp;
    return check_params(q, &lp, out) != 0;
}

/* The list query of lp into sql with its parameters p (np of them); limit1
 * holds the LIMIT value.
 *
 * A filtered list is always read from the filter's own index, (column,
 * ingested_at DESC, id DESC): it yields exactly the matching alerts, newest
 * first, so a page reads limit + 1 entries however old the newest match is.
 * Left to itself the planner often walks the time index instead and filters
 * (it assumes every value is spread evenly over time): when the newest
 * alerts are of other values, as when one source is busy and another quiet,
 * that reads every newer alert first (50,000 rows and 200 ms at a million
 * alerts, docs/performance.md "Growth"). The driving filter is written as
 * "= ANY (ARRAY[$n])" and the order leads with its column: an equality with
 * a constant would make that column redundant in the order, so the time
 * index would still satisfy it; a one-element array does not, and only the
 * filter's own index gives that order without sorting.
 *
 * That leaves the planner one more way out: when its statistics say the
 * value is rare (a table never analyzed yet, or a source that started
 * sending after the last ANALYZE: autovacuum analyzes again only when a
 * tenth of the table has changed, half a million alerts at five million),
 * it reads every match through a bitmap and sorts them, 12,000 alerts in
 * 120 ms and more with every new one. With a single filter the index walk is
 * never worse, so its query runs in a transaction with sorts and bitmap scans
 * switched off (*pin).
 *
 * Of two filters the first of severity, source_name, status drives.
 * When the table's statistics know every filter value (each is one of its
 * column's most common values: stats_know), the planner chooses, and reads
 * a rare combination through another filter's index or a bitmap. Otherwise
 * its estimate cannot be trusted, and the page is first taken from a
 * bounded walk of the driving filter's index (probe): the
 * newest PROBE_FACTOR × (limit + 1) entries of the driving value, pinned
 * like a single filter, keeping those that match the other filters. The
 * walk's last entry comes back too, marked, whether it matches or not. If
 * the walk found a whole page, or ended before its bound (it saw every entry
 * of the value), that is the answer. Only a rare combination (fewer matches
 * in the walk than a page) is asked again without the bound, and there the
 * planner stays free to read it through another filter's index or a bitmap
 * and sort it. Without the probe, statistics that think a value rare made
 * the planner read every match of a common combination and sort them: on a
 * fresh table of 54,000 alerts, 1 s per page (docs/performance.md,
 * "Growth").
 *
 * All three filters together (the triage view: one source, one severity,
 * one status) have an index of their own, alerts_triage_idx (source_name,
 * severity, status, ingested_at DESC, id DESC, 012_alerts_triage_idx.sql):
 * it yields exactly the matches, newest first, so the page reads limit + 1
 * entries whatever the statistics say. The query is pinned like a single
 * filter (no probe), driven by source_name in the "= ANY" form: the order
 * (source_name, ingested_at DESC, id DESC) then comes only from an index
 * led by source_name, and of those the triage index, with all three
 * filters as its conditions, is the cheaper by the planner's own estimate. Before it, a
 * rare combination was read through a bitmap of two filters and sorted:
 * p99 62 and 153 ms at five million alerts. */
enum { PROBE_FACTOR = 40, PROBE_MAX = 20000 };

static int nfilters(const list_params_t *lp)
{
    return (lp->source_name != NULL) + (lp->severity != NULL) + (lp->status != NULL);
}

/* The probe's bound for lp (see above). */
static int64_t probe_rows(const list_params_t *lp)
{
    int64_t k = PROBE_FACTOR * (lp->limit + 1);
    return k < PROBE_MAX ? k : PROBE_MAX;
}

/* The columns after ALERT_COLS in a probe's rows. */
enum { COL_PROBE_MATCH = COL_RAW, COL_PROBE_RN };

static void build_query(const list_params_t *lp, bool probe, am_buf_t *sql, const char *p[8],
                        int *npp, char limit1[24], char bound[24], bool *pin)
{
    int np = 0;
    bool triage = nfilters(lp) == 3; /* alerts_triage_idx, exact */
    probe = probe && nfilters(lp) == 2;
    *pin = nfilters(lp) == 1 || probe || triage;
    snprintf(limit1, 24, "%lld", (long long)lp->limit + 1);
    snprintf(bound, 24, "%lld", (long long)probe_rows(lp));
    const char *driver = triage            ? "source_name"
                         : lp->severity    ? "severity"
                         : lp->source_name ? "source_name"
                         : lp->status      ? "status"
                                           : NULL;
    am_buf_t others, driver_cond;
    am_buf_init(&others, 0);
    am_buf_init(&driver_cond, 0);
    am_buf_puts(&others, "true");
    am_buf_puts(&driver_cond, "");
    if (probe)
        am_buf_puts(sql, "SELECT " ALERT_COLS ", a.am_match, a.am_rn FROM (SELECT a.*, ");
    else
        am_buf_puts(sql, "SELECT " ALERT_COLS " FROM alerts a WHERE true");
    const struct {
        const char *col, *val;
    } filters[] = {
        {"source_name", lp->source_name},
        {"severity", lp->severity},
        {"status", lp->status},
    };
    for (size_t i = 0; i < AM_ARRAY_LEN(filters); i++) {
        if (filters[i].val == NULL)
            continue;
        p[np++] = filters[i].val;
        bool drives = driver != NULL && strcmp(filters[i].col, driver) == 0;
        if (drives && probe)
            am_buf_printf(&driver_cond, " AND a.%s = ANY (ARRAY[$%d::text])", filters[i].col, np);
        else if (drives)
            am_buf_printf(sql, " AND a.%s = ANY (ARRAY[$%d::text])", filters[i].col, np);
        else if (probe)
            am_buf_printf(&others, " AND a.%s = $%d", filters[i].col, np);
        else
            am_buf_printf(sql, " AND a.%s = $%d", filters[i].col, np);
    }
    if (probe) {
        /* the walk's row: whether it matches, its place in the walk */
        am_buf_printf(sql,
                      "(%s) AS am_match, row_number() OVER (ORDER BY a.%s, a.ingested_at DESC,"
                      " a.id DESC) AS am_rn FROM alerts a WHERE true%s",
                      others.data, driver, driver_cond.data);
    }
    am_buf_dispose(&others);
    am_buf_dispose(&driver_cond);
    if (lp->has_since) {
        p[np++] = lp->since;
        am_buf_printf(sql,
                      " AND a.ingested_at >= timestamptz 'epoch' + $%d::int8 * interval "
                      "'1 microsecond'",
                      np);
    }
    if (lp->has_cursor) {
        p[np++] = lp->cur_us;
        p[np++] = lp->cur_id;
        am_buf_printf(sql,
                      " AND (a.ingested_at, a.id) < (timestamptz 'epoch' + $%d::int8 * "
                      "interval '1 microsecond', $%d::int8)",
                      np - 1, np);
    }
    if (probe) {
        p[np++] = bound;
        am_buf_printf(sql,
                      " ORDER BY a.%s, a.ingested_at DESC, a.id DESC LIMIT $%d::int8) a"
                      " WHERE a.am_match OR a.am_rn = $%d::int8",
                      driver, np, np);
    }
    p[np++] = limit1;
    am_buf_puts(sql, " ORDER BY ");
    if (driver != NULL)
        am_buf_printf(sql, "a.%s, ", driver);
    am_buf_printf(sql, "a.ingested_at DESC, a.id DESC LIMIT $%d::int8", np);
    *npp = np;
}

/* Whether the statistics of alerts know every filter value of lp as one of
 * its column's most common values: then the planner's estimate of the
 * combination can be trusted and no probe is needed. A table never
 * analyzed, or a value that arrived after the last ANALYZE, answers false.
 * A failed query answers false too (the probe is always correct). */
static bool stats_know(PGconn *c, const list_params_t *lp)
{
    static const char sql[] =
        "SELECT count(*) = $3::int FROM pg_stats s, unnest($1::text[], $2::text[]) AS f(col, val)"
        " WHERE s.schemaname = (SELECT n.nspname FROM pg_class k JOIN pg_namespace n"
        "   ON n.oid = k.relnamespace WHERE k.oid = 'alerts'::regclass)"
        " AND s.tablename = 'alerts' AND s.attname = f.col"
        " AND f.val = ANY (s.most_common_vals::text::text[])";
    const char *vals[] = {lp->source_name, lp->severity, lp->status};
    static const char *const cols[] = {"source_name", "severity", "status"};
    am_buf_t cl, vl;
    am_buf_init(&cl, 0);
    am_buf_init(&vl, 0);
    const char *cv[3], *vv[3];
    size_t n = 0;
    for (size_t i = 0; i < 3; i++)
        if (vals[i] != NULL) {
            cv[n] = cols[i];
            vv[n++] = vals[i];
        }
    store_pg_text_array(&cl, cv, n);
    store_pg_text_array(&vl, vv, n);
    char num[8];
    snprintf(num, sizeof(num), "%zu", n);
    const char *p[] = {cl.data, vl.data, num};
    PGresult *r = PQexecParams(c, sql, 3, NULL, p, NULL, NULL, 0);
    bool known =
        PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    am_buf_dispose(&cl);
    am_buf_dispose(&vl);
    return known;
}

/* Whether the rows of a probe are the answer (see build_query): a whole
 * page matched, or the walk ended before its bound. */
static bool probe_answers(const PGresult *r, const list_params_t *lp)
{
    int n = PQntuples(r), matched = 0;
    bool bound_hit = false;
    char k[24];
    snprintf(k, sizeof(k), "%lld", (long long)probe_rows(lp));
    for (int i = 0; i < n; i++) {
        matched += PQgetvalue(r, i, COL_PROBE_MATCH)[0] == 't';
        bound_hit = bound_hit || strcmp(PQgetvalue(r, i, COL_PROBE_RN), k) == 0;
    }
    return matched > lp->limit || !bound_hit;
}

/* Runs sql (a single-filter list when pin) and returns its result, NULL
 * when the pinning transaction could not start (the connection is gone). */
static PGresult *run_query(PGconn *c, const char *sql, int np, const char *const *p, bool pin)
{
    if (pin) {
        PGresult *b = PQexec(c, "BEGIN; SET LOCAL enable_sort = off;"
                                " SET LOCAL enable_bitmapscan = off");
        bool ok = b != NULL && PQresultStatus(b) == PGRES_COMMAND_OK;
        PQclear(b);
        if (!ok) {
            PQclear(PQexec(c, "ROLLBACK"));
            return NULL;
        }
    }
    PGresult *r = PQexecParams(c, sql, np, NULL, p, NULL, NULL, 0);
    if (pin) {
        bool ok = r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK;
        PGresult *e = PQexec(c, ok ? "COMMIT" : "ROLLBACK");
        if (ok && (e == NULL || PQresultStatus(e) != PGRES_COMMAND_OK)) {
            PQclear(r);
            r = e; /* the error of the COMMIT is the answer's */
            e = NULL;
        }
        PQclear(e);
    }
    return r;
}

static int explain(PGconn *c, const char *how, const store_query_t *q, char **plan)
{
    *plan = NULL;
    list_params_t lp;
    reply_buf_t out = {0};
    if (check_params(q, &lp, &out) != 0) {
        free(out.body);
        return AM_EINVAL;
    }
    const char *p[8];
    int np = 0;
    char limit1[24], bound[24];
    am_buf_t sql, b;
    am_buf_init(&sql, 0);
    am_buf_init(&b, 0);
    bool pin;
    am_buf_puts(&sql, how);
    /* of two filters: the query that runs first */
    build_query(&lp, nfilters(&lp) == 2 && !stats_know(c, &lp), &sql, p, &np, limit1, bound, &pin);
    PGresult *r = run_query(c, sql.data, np, p, pin);
    am_buf_dispose(&sql);
    int rc = r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK ? AM_OK : AM_EUNAVAIL;
    for (int i = 0; rc == AM_OK && i < PQntuples(r); i++) {
        am_buf_puts(&b, PQgetvalue(r, i, 0));
        am_buf_putc(&b, '\n');
    }
    PQclear(r);
    if (rc == AM_OK)
        *plan = am_buf_steal(&b);
    am_buf_dispose(&b);
    return rc;
}

int store_alert_list_explain(PGconn *c, const store_query_t *q, char **plan)
{
    return explain(c, "EXPLAIN ", q, plan);
}

int store_alert_list_explain_analyze(PGconn *c, const store_query_t *q, char **plan)
{
    return explain(c, "EXPLAIN (ANALYZE, TIMING OFF, SUMMARY OFF) ", q, plan);
}

int store_alert_list(PGconn *c, const store_query_t *q, reply_buf_t *out)
{
    list_params_t lp;
    if (check_params(q, &lp, out) != 0)
        return AM_OK;
    const char *p[8];
    int np = 0;
    char limit1[24], bound[24];
    am_buf_t sql;
    bool pin, probe = nfilters(&lp) == 2 && !stats_know(c, &lp);
    PGresult *r;
    for (;;) {
        am_buf_init(&sql, 0);
        build_query(&lp, probe, &sql, p, &np, limit1, bound, &pin);
        r = run_query(c, sql.data, np, p, pin);
        am_buf_dispose(&sql);
        if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
            int rc = store_reply_db_error(c, r, out);
            PQclear(r);
            return rc;
        }
        if (!probe || probe_answers(r, &lp))
            break;
        /* a rare combination: asked again without the walk's bound */
        PQclear(r);
        probe = false;
    }
    /* the rows of the page: every row, or a probe's matching ones */
    int rows = PQntuples(r), *keep = am_xcalloc((size_t)rows + 1, sizeof(*keep)), n = 0;
    for (int i = 0; i < rows; i++)
        if (!probe || PQgetvalue(r, i, COL_PROBE_MATCH)[0] == 't')
            keep[n++] = i;
    bool more = n > lp.limit;
    if (more)
        n = (int)lp.limit;
    am_buf_t b;
    am_buf_init(&b, 0);
    am_buf_puts(&b, "{\"data\":[");
    for (int i = 0; i < n; i++) {
        if (i > 0)
            am_buf_putc(&b, ',');
        store_render_alert(&b, r, keep[i], NULL);
    }
    am_buf_puts(&b, "],\"meta\":{\"next_cursor\":");
    if (more) {
        char cur[64];
        int last = keep[n - 1];
        store_cursor_encode(cur, strtoll(PQgetvalue(r, last, COL_INGESTED), NULL, 10),
                            strtoll(PQgetvalue(r, last, COL_ID), NULL, 10));
        store_json_put_str(&b, cur);
    } else {
        am_buf_puts(&b, "null");
    }
    am_buf_printf(&b, ",\"limit\":%lld}}", (long long)lp.limit);
    free(keep);
    PQclear(r);
    if (am_buf_ok(&b))
        store_reply_set(out, 200, am_buf_steal(&b));
    else /* jansson could not serialize a stored value */
        store_reply_set(out, 500, store_json_error("INTERNAL", "an alert cannot be rendered"));
    am_buf_dispose(&b);
    return AM_OK;
}
