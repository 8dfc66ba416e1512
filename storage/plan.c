/* storage/plan.c - what the live enrichment workers can do, as the writers
 * see it (store_plan_t; the table is 009_enrichment_nodes.sql).
 *
 * Each writer reads the union of the live rows on its own connection before
 * a batch, at most every STORE_PLAN_REFRESH_US: one small query every two
 * seconds per writer, outside any transaction. Whatever goes wrong (the
 * table missing, the connection failing) leaves the plan unknown, and an
 * unknown plan settles nothing: every alert then gets its job, as it would
 * without this table. */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

/* The live rows: those whose process refreshed them within the last 60 s. */
static const char PLAN_SQL[] =
    "SELECT count(*), coalesce(bool_or(has_targets), false),"
    " coalesce((SELECT array_agg(DISTINCT t ORDER BY t) FROM enrichment_nodes m,"
    "   unnest(m.work_types) AS t WHERE m.seen_at > now() - interval '60 seconds'), '{}')"
    " FROM enrichment_nodes WHERE seen_at > now() - interval '60 seconds'";

void store_plan_dispose(store_plan_t *p)
{
    for (size_t i = 0; i < p->ntypes; i++)
        free(p->types[i]);
    free(p->types);
    p->types = NULL;
    p->ntypes = 0;
    p->known = false;
}

/* Splits a text[] literal of plain words ("{domain,ip}"): the indicator
 * type names need no quoting; an element that does is kept without its
 * quotes, which can only make it match nothing. */
static void parse_types(store_plan_t *p, const char *lit)
{
    size_t n = strlen(lit);
    if (n < 2 || lit[0] != '{' || lit[n - 1] != '}')
        return;
    size_t cap = 1;
    for (size_t i = 1; i + 1 < n; i++)
        cap += lit[i] == ',';
    p->types = am_xcalloc(cap, sizeof(*p->types));
    const char *s = lit + 1, *end = lit + n - 1;
    while (s < end) {
        const char *e = memchr(s, ',', (size_t)(end - s));
        if (e == NULL)
            e = end;
        const char *a = s, *b = e;
        if (b - a >= 2 && *a == '"' && b[-1] == '"') {
            a++;
            b--;
        }
        if (b > a)
            p->types[p->ntypes++] = am_xstrndup(a, (size_t)(b - a));
        s = e + 1;
    }
}

void store_plan_refresh(PGconn *c, store_plan_t *p)
{
    int64_t now = am_now_us();
    if (p->read_us != 0 && now - p->read_us < STORE_PLAN_REFRESH_US)
        return;
    p->read_us = now;
    store_plan_dispose(p);
    if (c == NULL)
        return;
    PGresult *r = PQexecParams(c, PLAN_SQL, 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        p->known = strtoll(PQgetvalue(r, 0, 0), NULL, 10) > 0;
        p->targets = PQgetvalue(r, 0, 1)[0] == 't';
        parse_types(p, PQgetvalue(r, 0, 2));
    }
    PQclear(r);
}

/* ---- the workers' side ----------------------------------------------------------- */

struct store_node {
    char *conninfo, *node;
    PGconn *c;
};

store_node_t *store_node_new(const char *conninfo, const char *node)
{
    store_node_t *n = am_xcalloc(1, sizeof(*n));
    n->conninfo = am_xstrdup(conninfo);
    n->node = am_xstrdup(node);
    return n;
}

int store_node_announce(store_node_t *n, const char *const *types, size_t ntypes, bool targets,
                        char *err, size_t errlen)
{
    static const char sql[] =
        "INSERT INTO enrichment_nodes (node, work_types, has_targets) VALUES ($1, $2, $3)"
        " ON CONFLICT (node) DO UPDATE SET work_types = excluded.work_types,"
        " has_targets = excluded.has_targets, seen_at = now()";
    if (n->c != NULL && PQstatus(n->c) != CONNECTION_OK) {
        PQfinish(n->c);
        n->c = NULL;
    }
    if (n->c == NULL && (n->c = store_pgconn_open(n->conninfo, err, errlen)) == NULL)
        return AM_EUNAVAIL;
    am_buf_t lit;
    am_buf_init(&lit, 0);
    store_pg_text_array(&lit, types, ntypes);
    const char *p[] = {n->node, lit.data ? lit.data : "{}", targets ? "t" : "f"};
    PGresult *r = PQexecParams(n->c, sql, 3, NULL, p, NULL, NULL, 0);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? AM_OK : AM_EUNAVAIL;
    if (rc != AM_OK)
        store_pg_errcopy(err, errlen, PQresultErrorMessage(r));
    PQclear(r);
    am_buf_dispose(&lit);
    return rc;
}

void store_node_free(store_node_t *n)
{
    if (n == NULL)
        return;
    if (n->c != NULL && PQstatus(n->c) == CONNECTION_OK) {
        const char *p[] = {n->node};
        PQclear(PQexecParams(n->c, "DELETE FROM enrichment_nodes WHERE node = $1", 1, NULL, p, NULL,
                             NULL, 0));
    }
    if (n->c != NULL)
        PQfinish(n->c);
    free(n->conninfo);
    free(n->node);
    free(n);
}
