/* storage/batch.c - one group-commit transaction: set-based, pipelined.
 *
 * A batch is a few whole requests, written with a handful of statements
 * whatever its size, in two pipelines (statements sent together, results
 * read afterwards: two round trips per batch):
 *
 *   BEGIN; SET LOCAL synchronous_commit = off
 *   upsert the batch's indicators          (UPSERT_SQL)
 *   COMMIT
 *   BEGIN
 *   lock the batch's fingerprints          (LOCK_SQL, dedup only)
 *   ---
 *   every alert of the batch, its links and its job in ONE statement
 *                                          (INGEST_SQL over arrays)
 *   COMMIT
 *
 * The indicators are upserted in a short transaction of their own, so that
 * the row locks of ON CONFLICT DO UPDATE are held for one statement, not for
 * the whole batch: two writers whose batches share an indicator (the same
 * internal host in every alert) do not wait on each other's COMMIT. It
 * commits without waiting for its WAL flush: the alert transaction's COMMIT,
 * later in the same WAL, flushes it too, so an alert that was answered 202
 * never points to an indicator row lost in a crash. A batch that fails after
 * it may leave indicator rows without links (indicators are the set of
 * values seen; last_seen says when, to the minute: a row already seen in
 * the last minute is locked by the upsert but not rewritten, so the
 * indicators every alert names, an internal host, a service account, are
 * not written again by every batch).
 *
 * INGEST_SQL also announces the jobs: the statement-level trigger of
 * 003_lean.sql sends one NOTIFY per statement (payload: the highest job id),
 * not one per row.
 *
 * The first pipeline also proves the connection alive: a connection that
 * fails there (typically a stale one after a database restart) never saw the
 * alerts' COMMIT, so the writer may send the batch again on a new
 * connection. Once that COMMIT has been handed to libpq a lost connection
 * means "outcome unknown", unless the server had reported an error first (it
 * then skips the rest of the pipeline, COMMIT included).
 *
 * What PostgreSQL would refuse for a known reason (invalid UTF-8, \u0000 in
 * jsonb, a time out of range) was found by store_ingest() and never reaches
 * a batch. If the set-based statement still fails on data, the transaction
 * is rolled back and the batch is written again request by request: per
 * request SAVEPOINT r, one INGEST_SQL per alert, RELEASE SAVEPOINT r. The
 * request whose statement fails is rolled back to its savepoint and marked
 * STORE_REJECTED; the others commit. So one bad request still fails alone,
 * and a request's alerts are still all or nothing.
 *
 * A deadlock or serialization failure (SQLSTATE class 40) rolls the
 * transaction back; the batch is then run again (up to MAX_RETRIES times),
 * never answered as an error for that reason alone.
 *
 * Dedup under concurrency: before touching any alert the batch takes
 * pg_advisory_xact_lock(hashtextextended(fingerprint, 0)) for each distinct
 * fingerprint, in ascending key order. Every writer of every alertmapd process
 * does the same, so two transactions carrying the same fingerprint are
 * serialized: the second waits until the first commits, and its INGEST_SQL
 * (READ COMMITTED: its snapshot is taken after the locks were granted) then
 * finds the first alert and counts a duplicate. Taking the locks in one
 * sorted pass means two batches never wait on each other in a cycle; the
 * other locks a batch takes (indicator rows, in the upsert's own transaction
 * and in (type, value) order) are never held while waiting for an advisory
 * lock. Duplicates inside one batch are ranked by the statement itself
 * (row_number over the fingerprint, in batch order): the first is the new
 * alert (or a duplicate of a stored one), the others count up from it.
 * A unique partial index cannot express "within the window", hence locks.
 * A hash collision only serializes two unrelated fingerprints, never merges
 * them.
 *
 * Alert uuids are generated here (UUIDv7: 48 bits of milliseconds, then
 * random bits), so that the uuid index grows at its right edge like the id
 * index instead of splitting random pages. */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

enum { MAX_RETRIES = 8, NPARAM = 20 };

/* Every alert of the arrays $1..$12, $19, $20 (one element per alert, in
 * batch order) with its indicators in $14..$18 (one element per link, ord =
 * the alert's 1-based place): dedup against the oldest alert with the
 * fingerprint inside the window ($13 s; 0 disables), then insert the new
 * alerts, count the duplicates, insert links, and a job for every new alert
 * that is not settled ($19: written Enriched, verdict Unknown, with the
 * indicator verdicts $20, because no live worker has work for it). One row
 * per alert: (ord, uuid, duplicate_count, is_duplicate). */
/* RAW is the type of alerts.raw_payload (json or jsonb), read from the
 * catalog when a connection is made, so that the payload is parsed once, as
 * what the column holds. */
/* clang-format off */
#define INGEST_SQL(RAW)                                                                              \
    "WITH u AS ("                                                                                    \
    " SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::bool[], $5::text[],"              \
    "  $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::uuid[],"       \
    "  $19::bool[], $20::text[])"                                                                    \
    " WITH ORDINALITY AS u(title, sev, occ, fb, src, descr, tags, raw, rule, flds, fp, uuid,"        \
    "  settled, iv, ord))," \
    "e AS ("                                                                                         \
    " SELECT x.* FROM (SELECT DISTINCT fp FROM u WHERE $13::int8 > 0) f CROSS JOIN LATERAL"          \
    " (" STORE_DEDUP_LOOKUP("f.fp", "$13::int8") ") x),"                                              \
    "c AS ("                                                                                         \
    " SELECT u.*, e.id AS eid, e.uuid AS euuid, e.duplicate_count AS ecount,"                        \
    "  row_number() OVER w AS rn, count(*) OVER (PARTITION BY u.fp) AS cnt,"                         \
    "  first_value(u.uuid) OVER w AS fuuid,"                                                         \
    "  ($13::int8 <= 0 OR (e.id IS NULL AND row_number() OVER w = 1)) AS fresh"                      \
    " FROM u LEFT JOIN e ON e.fingerprint = u.fp"                                                    \
    " WINDOW w AS (PARTITION BY u.fp ORDER BY u.ord)),"                                              \
    "ins AS ("                                                                                       \
    " INSERT INTO alerts (uuid, title, severity, occurred_at, occurred_at_fallback, source_name,"    \
    "  description, tags, raw_payload, detection_rule_ref, fields, fingerprint,"                     \
    "  duplicate_count, last_duplicate_at, enrichment_status, verdict, indicator_verdicts,"        \
    "  enriched_at)"                                                                                 \
    " SELECT uuid, title, sev, timestamptz 'epoch' + occ * interval '1 microsecond', fb, src,"       \
    "  descr, tags::text[], raw::" RAW ", rule, COALESCE(flds::jsonb, '{}'::jsonb), fp,"             \
    "  CASE WHEN $13::int8 > 0 THEN cnt - 1 ELSE 0 END,"                                             \
    "  CASE WHEN $13::int8 > 0 AND cnt > 1 THEN now() END,"                                          \
    "  CASE WHEN settled THEN 'Enriched' ELSE 'Pending' END, CASE WHEN settled THEN 'Unknown' END,"  \
    "  COALESCE(iv::jsonb, '{}'::jsonb), CASE WHEN settled THEN now() END"                           \
    " FROM c WHERE fresh ORDER BY ord"                                                               \
    " RETURNING id, uuid, enrichment_status),"                                                                          \
    "upd AS ("                                                                                       \
    " UPDATE alerts a SET duplicate_count = a.duplicate_count + x.n,"                                \
    "  last_duplicate_at = now(), updated_at = now()"                                                \
    " FROM (SELECT eid, count(*) AS n FROM c WHERE NOT fresh AND eid IS NOT NULL GROUP BY eid) x"    \
    " WHERE a.id = x.eid),"                                                                          \
    "l AS ("                                                                                         \
    " INSERT INTO alert_indicators (alert_id, indicator_id, source_field, position)"                 \
    " SELECT ins.id, i.id, v.sf, v.pos"                                                              \
    " FROM unnest($14::int8[], $15::text[], $16::text[], $17::text[], $18::int4[])"                  \
    "  AS v(ord, t, val, sf, pos)"                                                                   \
    " JOIN c ON c.ord = v.ord JOIN ins ON ins.uuid = c.uuid"                                         \
    " JOIN indicators i ON i.type = v.t AND i.value = v.val),"                                       \
    "j AS (INSERT INTO enrichment_jobs (alert_id)"                                                   \
    " SELECT id FROM ins WHERE enrichment_status = 'Pending' ORDER BY id)"                           \
    "SELECT ord,"                                                                                    \
    " CASE WHEN fresh THEN uuid WHEN eid IS NOT NULL THEN euuid ELSE fuuid END,"                     \
    " CASE WHEN fresh THEN 0 WHEN eid IS NOT NULL THEN ecount + rn ELSE rn - 1 END,"                 \
    " NOT fresh FROM c"
static const char INGEST_SQL_JSONB[] = INGEST_SQL("jsonb");
static const char INGEST_SQL_JSON[] = INGEST_SQL("json");
/* clang-format on */

static const char LOCK_SQL[] =
    "SELECT pg_advisory_xact_lock(k) FROM"
    " (SELECT DISTINCT hashtextextended(f, 0) AS k FROM unnest($1::text[]) AS f ORDER BY k) AS s";

static const char UPSERT_SQL[] =
    "INSERT INTO indicators (type, value)"
    " SELECT DISTINCT t, v FROM unnest($1::text[], $2::text[]) AS u(t, v) ORDER BY t, v"
    " ON CONFLICT (type, value) DO UPDATE SET last_seen = now()"
    " WHERE indicators.last_seen < now() - interval '1 minute'";

int store_batch_prepare(PGconn *c, void *ctx)
{
    (void)ctx;
    PGresult *r = PQexec(c, "SELECT format_type(atttypid, NULL) FROM pg_attribute"
                            " WHERE attrelid = 'alerts'::regclass AND attname = 'raw_payload'");
    bool json = r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                strcmp(PQgetvalue(r, 0, 0), "json") == 0;
    PQclear(r);
    /* prepared once per connection: an unnamed statement would be parsed
     * and planned again by every batch (about 70 us of the server's CPU
     * per batch for these two) */
    static const struct {
        const char *name, *sql;
    } stmts[] = {{"am_ingest", NULL}, {"am_upsert", UPSERT_SQL}, {"am_lock", LOCK_SQL}};
    for (size_t i = 0; i < AM_ARRAY_LEN(stmts); i++) {
        const char *sql = stmts[i].sql ? stmts[i].sql : json ? INGEST_SQL_JSON : INGEST_SQL_JSONB;
        r = PQprepare(c, stmts[i].name, sql, 0, NULL);
        bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok)
            return -1;
    }
    return 0;
}

/* ---- the parameters of INGEST_SQL ---------------------------------------------- */

/* A one-dimensional array in PostgreSQL's binary format (what array_send
 * writes and array_recv reads): ndim, has-nulls flag and element type, then
 * the dimension's length and lower bound (absent for an empty array), then
 * each element as a 4-byte length (-1: NULL) and its bytes, every integer
 * big-endian. Sent in binary, the arrays are neither escaped here nor parsed
 * by the server's array_in, which took about a tenth of PostgreSQL's CPU on
 * the batch statement as text literals (docs/performance.md, "Binary array
 * parameters"). */
typedef struct barr {
    am_buf_t b;
    uint32_t n;
    bool nulls;
} barr_t;

enum { OID_BOOL = 16, OID_INT8 = 20, OID_INT4 = 23, OID_TEXT = 25, OID_UUID = 2950 };
enum { BARR_HEAD = 20 };

static void put_be(unsigned char *o, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        o[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
}

static void barr_init(barr_t *a)
{
    am_buf_init(&a->b, 0);
    static const char zero[BARR_HEAD];
    am_buf_append(&a->b, zero, sizeof(zero)); /* the header, written at the end */
    a->n = 0;
    a->nulls = false;
}

/* One element of len bytes at p; len < 0: NULL. */
static void barr_put(barr_t *a, const void *p, int64_t len)
{
    unsigned char l[4];
    put_be(l, (uint32_t)(len < 0 ? -1 : (int32_t)len), 4);
    am_buf_append(&a->b, l, 4);
    if (len > 0)
        am_buf_append(&a->b, p, (size_t)len);
    a->nulls = a->nulls || len < 0;
    a->n++;
}

static void barr_text(barr_t *a, const char *s)
{
    barr_put(a, s, s ? (int64_t)strlen(s) : -1);
}

static void barr_int(barr_t *a, uint64_t v, int bytes)
{
    unsigned char x[8];
    put_be(x, v, bytes);
    barr_put(a, x, bytes);
}

static void barr_bool(barr_t *a, bool v)
{
    unsigned char x = v ? 1 : 0;
    barr_put(a, &x, 1);
}

/* Writes the header; the array is a parameter value of len bytes. */
static void barr_finish(barr_t *a, uint32_t oid)
{
    unsigned char *h = (unsigned char *)a->b.data;
    put_be(h, a->n > 0, 4);
    put_be(h + 4, a->nulls, 4);
    put_be(h + 8, oid, 4);
    if (a->n == 0) { /* no dimension: an empty array */
        a->b.len = 12;
        return;
    }
    put_be(h + 12, a->n, 4);
    put_be(h + 16, 1, 4); /* lower bound */
}

/* The parameters under construction, one array per parameter; after
 * params_finish, what libpq sends. */
typedef struct params {
    barr_t a[NPARAM];
    size_t nalerts, nlinks;
    const char *v[NPARAM];
    int len[NPARAM], fmt[NPARAM];
} params_t;

enum {
    P_TITLE,
    P_SEV,
    P_OCC,
    P_FB,
    P_SRC,
    P_DESCR,
    P_TAGS,
    P_RAW,
    P_RULE,
    P_FIELDS,
    P_FP,
    P_UUID,
    P_WINDOW,
    P_IORD,
    P_ITYPE,
    P_IVAL,
    P_ISF,
    P_IPOS,
    P_SETTLED,
    P_IV
};

/* The element type of each array parameter ($13, the window, is a scalar
 * sent as text). */
static const uint32_t PARAM_OID[NPARAM] = {
    [P_TITLE] = OID_TEXT, [P_SEV] = OID_TEXT,     [P_OCC] = OID_INT8,  [P_FB] = OID_BOOL,
    [P_SRC] = OID_TEXT,   [P_DESCR] = OID_TEXT,   [P_TAGS] = OID_TEXT, [P_RAW] = OID_TEXT,
    [P_RULE] = OID_TEXT,  [P_FIELDS] = OID_TEXT,  [P_FP] = OID_TEXT,   [P_UUID] = OID_UUID,
    [P_IORD] = OID_INT8,  [P_ITYPE] = OID_TEXT,   [P_IVAL] = OID_TEXT, [P_ISF] = OID_TEXT,
    [P_IPOS] = OID_INT4,  [P_SETTLED] = OID_BOOL, [P_IV] = OID_TEXT,
};

static void params_init(params_t *p)
{
    for (int i = 0; i < NPARAM; i++)
        barr_init(&p->a[i]);
    p->nalerts = p->nlinks = 0;
}

static void params_dispose(params_t *p)
{
    for (int i = 0; i < NPARAM; i++)
        am_buf_dispose(&p->a[i].b);
}

/* Closes the arrays; fills the parameters' values, lengths and formats. */
static void params_finish(params_t *p, const char *window)
{
    for (int i = 0; i < NPARAM; i++) {
        if (i == P_WINDOW) {
            p->v[i] = window;
            p->len[i] = 0;
            p->fmt[i] = 0;
            continue;
        }
        barr_finish(&p->a[i], PARAM_OID[i]);
        p->v[i] = p->a[i].b.data;
        p->len[i] = (int)p->a[i].b.len;
        p->fmt[i] = 1;
    }
}

/* A UUIDv7 (RFC 9562) from the time in ms and 10 random bytes. */
static void uuid7(unsigned char u[16], uint64_t ms, const unsigned char rnd[10])
{
    for (int i = 0; i < 6; i++)
        u[i] = (unsigned char)(ms >> (40 - 8 * i));
    memcpy(u + 6, rnd, 10);
    u[6] = (unsigned char)(0x70 | (u[6] & 0x0F));
    u[8] = (unsigned char)(0x80 | (u[8] & 0x3F));
}

static void random_bytes(unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = getrandom(p, n, 0);
        if (k <= 0)
            continue; /* EINTR; the kernel's pool never runs dry after boot */
        p += k;
        n -= (size_t)k;
    }
}

/* Whether no live worker has work for a: see store_plan_t. */
static bool plan_settles(const store_plan_t *plan, const w_alert_t *a)
{
    if (plan == NULL || !plan->known || plan->targets ||
        am_now_us() - plan->read_us > STORE_PLAN_STALE_US)
        return false;
    for (size_t i = 0; i < a->nind; i++)
        for (size_t t = 0; t < plan->ntypes; t++)
            if (strcmp(a->ind_types[i], plan->types[t]) == 0)
                return false;
    return true;
}

/* The indicator verdicts of a settled alert, as the worker writes them:
 * {"type:value": "Unknown", ...}. */
static void settled_verdicts(am_buf_t *out, const w_alert_t *a)
{
    am_buf_t key;
    am_buf_init(&key, 0);
    am_buf_putc(out, '{');
    for (size_t i = 0; i < a->nind; i++) {
        key.len = 0;
        am_buf_puts(&key, a->ind_types[i]);
        am_buf_putc(&key, ':');
        am_buf_puts(&key, a->ind_values[i]);
        if (i > 0)
            am_buf_putc(out, ',');
        am_buf_json_string(out, key.data, key.len);
        am_buf_puts(out, ":\"Unknown\"");
    }
    am_buf_putc(out, '}');
    am_buf_dispose(&key);
}

static void params_add(params_t *p, const store_plan_t *plan, w_alert_t *a)
{
    size_t ord = ++p->nalerts;
    a->settled = plan_settles(plan, a);
    barr_bool(&p->a[P_SETTLED], a->settled);
    if (a->settled) {
        am_buf_t iv;
        am_buf_init(&iv, 0);
        settled_verdicts(&iv, a);
        barr_put(&p->a[P_IV], iv.data, (int64_t)iv.len);
        am_buf_dispose(&iv);
    } else {
        barr_text(&p->a[P_IV], NULL);
    }
    barr_text(&p->a[P_TITLE], a->title);
    barr_text(&p->a[P_SEV], a->severity);
    barr_int(&p->a[P_OCC], (uint64_t)a->occurred_us, 8);
    barr_bool(&p->a[P_FB], a->fallback);
    barr_text(&p->a[P_SRC], a->source_name);
    barr_text(&p->a[P_DESCR], a->description);
    barr_text(&p->a[P_TAGS], a->tags_lit);
    barr_text(&p->a[P_RAW], a->raw_payload);
    barr_text(&p->a[P_RULE], a->detection_rule_ref);
    barr_text(&p->a[P_FIELDS], a->fields_json);
    barr_text(&p->a[P_FP], a->fingerprint);
    unsigned char rnd[10], u[16];
    random_bytes(rnd, sizeof(rnd));
    uuid7(u, (uint64_t)(am_now_us() / 1000), rnd);
    barr_put(&p->a[P_UUID], u, sizeof(u));
    for (size_t i = 0; i < a->nind; i++) {
        barr_int(&p->a[P_IORD], ord, 8);
        barr_text(&p->a[P_ITYPE], a->ind_types[i]);
        barr_text(&p->a[P_IVAL], a->ind_values[i]);
        barr_text(&p->a[P_ISF], a->ind_fields[i]);
        barr_int(&p->a[P_IPOS], i + 1, 4);
    }
    p->nlinks += a->nind;
}

/* ---- the pipelines ------------------------------------------------------------- */

typedef enum {
    C_BEGIN,
    C_ASYNC,
    C_UPSERT,
    C_ICOMMIT,
    C_LOCK,
    C_SP,
    C_ALERTS,
    C_RELEASE,
    C_COMMIT
} cmd_kind_t;

typedef struct cmd {
    cmd_kind_t kind;
    size_t req, alert; /* C_ALERTS in fallback mode: the one alert; else all */
} cmd_t;

typedef struct batch {
    PGconn *c;
    char window[24];
    bool dedup;
    const store_plan_t *plan;
    ingest_req_t **reqs;
    size_t nreq;
    bool fallback; /* request by request, with savepoints */
    cmd_t *cmds;
    size_t ncmds;
    /* the parameters of the whole batch's INGEST_SQL, built once: the
     * locks take its fingerprints, the upsert its indicators */
    params_t set;
    char *err;
    size_t errlen;
} batch_t;

static int send_simple(PGconn *c, const char *sql)
{
    return PQsendQueryParams(c, sql, 0, NULL, NULL, NULL, NULL, 0) ? 0 : -1;
}

/* Sends INGEST_SQL for every alert of the batch (set mode) or for one
 * alert (fallback). */
static int send_alerts(batch_t *b, size_t req, size_t alert)
{
    if (!b->fallback) {
        const params_t *p = &b->set;
        return PQsendQueryPrepared(b->c, "am_ingest", NPARAM, p->v, p->len, p->fmt, 0) ? 0 : -1;
    }
    params_t p;
    params_init(&p);
    params_add(&p, b->plan, &b->reqs[req]->alerts[alert]);
    params_finish(&p, b->window);
    int rc = PQsendQueryPrepared(b->c, "am_ingest", NPARAM, p.v, p.len, p.fmt, 0) ? 0 : -1;
    params_dispose(&p);
    return rc;
}

static int send_cmd(batch_t *b, cmd_kind_t kind, size_t req, size_t alert)
{
    b->cmds[b->ncmds++] = (cmd_t){kind, req, alert};
    PGconn *c = b->c;
    switch (kind) {
    case C_BEGIN:
        return send_simple(c, "BEGIN");
    case C_ASYNC:
        return send_simple(c, "SET LOCAL synchronous_commit = off");
    case C_ICOMMIT:
    case C_COMMIT:
        return send_simple(c, "COMMIT");
    case C_SP:
        return send_simple(c, "SAVEPOINT r");
    case C_RELEASE:
        return send_simple(c, "RELEASE SAVEPOINT r");
    case C_LOCK: {
        const params_t *s = &b->set;
        return PQsendQueryPrepared(c, "am_lock", 1, &s->v[P_FP], &s->len[P_FP], &s->fmt[P_FP], 0)
                   ? 0
                   : -1;
    }
    case C_UPSERT: {
        const params_t *s = &b->set;
        const char *p[] = {s->v[P_ITYPE], s->v[P_IVAL]};
        const int len[] = {s->len[P_ITYPE], s->len[P_IVAL]}, fmt[] = {1, 1};
        return PQsendQueryPrepared(c, "am_upsert", 2, p, len, fmt, 0) ? 0 : -1;
    }
    case C_ALERTS:
        return send_alerts(b, req, alert);
    }
    return -1;
}

/* The first failure of a pipeline. */
typedef struct failure {
    long at; /* index into cmds, -1 when none */
    pgerr_class_t cls;
    bool retry; /* deadlock / serialization failure: run the batch again */
    /* for a connection failure: true when the server certainly did not
     * commit (COMMIT not handed to libpq yet, or the server reported an
     * error before reaching it), so that sending the batch again is safe */
    bool safe;
    char msg[160];
} failure_t;

static void note_failure(batch_t *b, failure_t *f, long at, const PGresult *r, bool commit_sent)
{
    if (f->at >= 0)
        return;
    f->at = at;
    f->cls = store_pgerr_classify(b->c, r);
    f->retry = r != NULL && store_pgerr_retryable(r);
    /* an error with a SQLSTATE came from the server, in pipeline order:
     * everything after it (COMMIT included) was skipped */
    bool from_server = r != NULL && PQresultErrorField(r, PG_DIAG_SQLSTATE) != NULL;
    f->safe = !commit_sent || (from_server && b->cmds[at].kind != C_COMMIT);
    store_pg_errcopy(f->msg, sizeof(f->msg), r ? PQresultErrorMessage(r) : PQerrorMessage(b->c));
}

static void connection_failure(batch_t *b, failure_t *f, long at, bool commit_sent)
{
    note_failure(b, f, at, NULL, commit_sent);
    f->cls = PGERR_CONNECTION;
}

/* Stores the rows of INGEST_SQL: in set mode the alerts of every request
 * that is not rejected, in batch order; in fallback mode the one alert. */
static void take_outcomes(batch_t *b, const cmd_t *cmd, const PGresult *r)
{
    int n = PQntuples(r);
    for (int row = 0; row < n; row++) {
        size_t ord = strtoull(PQgetvalue(r, row, 0), NULL, 10);
        size_t req = cmd->req, alert = cmd->alert;
        if (!b->fallback) {
            size_t k = ord - 1;
            req = 0;
            while (req < b->nreq && (b->reqs[req]->rejected || k >= b->reqs[req]->n)) {
                if (!b->reqs[req]->rejected)
                    k -= b->reqs[req]->n;
                req++;
            }
            if (req == b->nreq)
                continue; /* cannot happen: one row per alert sent */
            alert = k;
        }
        store_alert_outcome_t *out = &b->reqs[req]->out[alert];
        snprintf(out->uuid, sizeof(out->uuid), "%s", PQgetvalue(r, row, 1));
        out->duplicate_count = strtoll(PQgetvalue(r, row, 2), NULL, 10);
        out->is_duplicate = PQgetvalue(r, row, 3)[0] == 't';
    }
}

/* Sends one pipeline and reads every result: with head, the indicator
 * transaction, BEGIN and the locks; with body, the alerts of requests
 * from..nreq-1 and COMMIT. */
static void run_pipeline(batch_t *b, bool head, bool body, size_t from, failure_t *f)
{
    f->at = -1;
    f->safe = true;
    f->retry = false;
    b->ncmds = 0;
    bool committed = false, commit_sent = false;
    if (!PQenterPipelineMode(b->c)) {
        b->cmds[0] = (cmd_t){C_BEGIN, 0, 0};
        connection_failure(b, f, 0, false);
        return;
    }
    int rc = 0;
    if (head) {
        if (b->set.nlinks > 0) {
            rc |= send_cmd(b, C_BEGIN, 0, 0);
            rc |= send_cmd(b, C_ASYNC, 0, 0);
            rc |= send_cmd(b, C_UPSERT, 0, 0);
            rc |= send_cmd(b, C_ICOMMIT, 0, 0);
        }
        rc |= send_cmd(b, C_BEGIN, 0, 0);
        if (b->dedup)
            rc |= send_cmd(b, C_LOCK, 0, 0);
    }
    if (body && !b->fallback && rc == 0) {
        rc |= send_cmd(b, C_ALERTS, 0, 0);
    }
    for (size_t i = from; body && b->fallback && i < b->nreq && rc == 0; i++) {
        if (b->reqs[i]->rejected)
            continue;
        rc |= send_cmd(b, C_SP, i, 0);
        for (size_t k = 0; k < b->reqs[i]->n && rc == 0; k++)
            rc |= send_cmd(b, C_ALERTS, i, k);
        rc |= send_cmd(b, C_RELEASE, i, 0);
    }
    if (body && rc == 0) {
        commit_sent = true;
        rc |= send_cmd(b, C_COMMIT, 0, 0);
    }
    if (rc != 0 || !PQpipelineSync(b->c)) {
        connection_failure(b, f, 0, commit_sent);
        return;
    }
    for (size_t j = 0; j < b->ncmds; j++) {
        PGresult *r = PQgetResult(b->c);
        if (r == NULL) {
            connection_failure(b, f, (long)j, commit_sent);
            return;
        }
        ExecStatusType st = PQresultStatus(r);
        const cmd_t *cmd = &b->cmds[j];
        if (st == PGRES_FATAL_ERROR) {
            note_failure(b, f, (long)j, r, commit_sent);
        } else if (st == PGRES_TUPLES_OK && cmd->kind == C_ALERTS) {
            take_outcomes(b, cmd, r);
        } else if ((cmd->kind == C_COMMIT || cmd->kind == C_ICOMMIT) && st == PGRES_COMMAND_OK) {
            bool ok = strcmp(PQcmdStatus(r), "COMMIT") == 0;
            if (cmd->kind == C_COMMIT)
                committed = ok;
            if (!ok) { /* the server rolled back instead */
                note_failure(b, f, (long)j, NULL, false);
                f->cls = PGERR_TRANSIENT;
            }
        }
        PQclear(r);
        if (f->at >= 0 && f->cls == PGERR_CONNECTION)
            return;                             /* nothing more will come */
        while ((r = PQgetResult(b->c)) != NULL) /* end of this command's results */
            PQclear(r);
    }
    PGresult *r = PQgetResult(b->c);
    bool synced = r != NULL && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
    PQclear(r);
    if ((!synced || !PQexitPipelineMode(b->c)) && f->at < 0 && !committed)
        connection_failure(b, f, (long)b->ncmds - 1, commit_sent);
    /* a connection left in pipeline mode is dropped by the writer */
}

/* What one run of the batch came to. */
typedef enum { RUN_DONE, RUN_RETRY, RUN_FALLBACK } run_next_t;

static run_next_t run(batch_t *b, batch_result_t *br)
{
    failure_t f;
    run_pipeline(b, true, false, 0, &f);
    if (f.at >= 0) {
        cmd_kind_t k = b->cmds[f.at].kind;
        const char *what = k == C_LOCK      ? "locking fingerprints"
                           : k == C_UPSERT  ? "upserting indicators"
                           : k == C_ICOMMIT ? "committing indicators"
                                            : "begin";
        snprintf(b->err, b->errlen, "%s: %s", what, f.msg);
        if (f.cls == PGERR_CONNECTION) {
            *br = BATCH_CONN_LOST; /* the alerts' COMMIT was never sent */
            return RUN_DONE;
        }
        store_pg_exec_simple(b->c, "ROLLBACK", NULL, NULL, 0);
        *br = BATCH_FAILED;
        return f.retry ? RUN_RETRY : RUN_DONE;
    }
    size_t from = 0;
    for (;;) {
        run_pipeline(b, false, true, from, &f);
        if (f.at < 0) {
            *br = BATCH_COMMITTED;
            return RUN_DONE;
        }
        const cmd_t *cmd = &b->cmds[f.at];
        if (f.cls == PGERR_CONNECTION) {
            snprintf(b->err, b->errlen, "%s", f.msg);
            *br = f.safe ? BATCH_CONN_LOST : BATCH_COMMIT_UNKNOWN;
            return RUN_DONE;
        }
        if (f.retry || cmd->kind == C_COMMIT || !b->fallback) {
            snprintf(b->err, b->errlen, "%s: %s", cmd->kind == C_COMMIT ? "commit" : "alerts",
                     f.msg);
            if (cmd->kind != C_COMMIT)
                store_pg_exec_simple(b->c, "ROLLBACK", NULL, NULL, 0);
            *br = BATCH_FAILED; /* rolled back */
            if (f.retry)
                return RUN_RETRY;
            /* the set-based statement was refused: find the request */
            return cmd->kind == C_ALERTS ? RUN_FALLBACK : RUN_DONE;
        }
        /* one request failed on its own */
        ingest_req_t *q = b->reqs[cmd->req];
        q->status = f.cls == PGERR_DATA ? STORE_REJECTED : STORE_UNAVAILABLE;
        snprintf(q->msg, sizeof(q->msg), "alert %zu: %s", cmd->alert, f.msg);
        pgerr_class_t cls = PGERR_DATA;
        if (store_pg_exec_simple(b->c, "ROLLBACK TO SAVEPOINT r; RELEASE SAVEPOINT r", &cls, b->err,
                                 b->errlen) != 0) {
            if (cls == PGERR_CONNECTION) {
                *br = BATCH_CONN_LOST; /* the server saw the error: it did not commit */
                return RUN_DONE;
            }
            store_pg_exec_simple(b->c, "ROLLBACK", NULL, NULL, 0);
            *br = BATCH_FAILED;
            return RUN_DONE;
        }
        from = cmd->req + 1;
    }
}

batch_result_t store_batch_run(PGconn *c, int64_t dedup_window_s, const store_plan_t *plan,
                               ingest_req_t **reqs, size_t nreq, unsigned *retries, bool *fallback,
                               char *err, size_t errlen)
{
    batch_t b = {.c = c, .plan = plan, .reqs = reqs, .nreq = nreq, .err = err, .errlen = errlen};
    b.dedup = dedup_window_s > 0;
    snprintf(b.window, sizeof(b.window), "%lld", (long long)(b.dedup ? dedup_window_s : 0));
    size_t ncmd = 8 + 2 * nreq; /* head, COMMIT, SP/RELEASE per request */
    for (size_t i = 0; i < nreq; i++)
        ncmd += reqs[i]->n;
    b.cmds = am_xcalloc(ncmd, sizeof(*b.cmds));
    params_init(&b.set); /* unbounded buffers: cannot fail */
    for (size_t i = 0; i < nreq; i++)
        for (size_t k = 0; !reqs[i]->rejected && k < reqs[i]->n; k++)
            params_add(&b.set, plan, &reqs[i]->alerts[k]);
    params_finish(&b.set, b.window);
    batch_result_t br = BATCH_FAILED;
    *retries = 0;
    *fallback = false;
    for (;;) {
        for (size_t i = 0; i < nreq; i++) {
            if (reqs[i]->rejected)
                continue;
            reqs[i]->status = STORE_OK;
            reqs[i]->msg[0] = '\0';
        }
        run_next_t next = run(&b, &br);
        if (next == RUN_RETRY && *retries < MAX_RETRIES) {
            ++*retries;
            continue;
        }
        if (next == RUN_FALLBACK && !b.fallback) {
            b.fallback = true;
            *fallback = true;
            continue;
        }
        break;
    }
    free(b.cmds);
    params_dispose(&b.set);
    return br;
}
