/* storage/batch.c - one group-commit transaction, sent as a libpq pipeline.
 *
 * A batch is a few whole requests, written in two pipelines (statements
 * sent together, results read afterwards: two round trips per batch instead
 * of one per statement):
 *
 *   BEGIN
 *   lock the batch's fingerprints   (dedup only, see LOCK_SQL)
 *   upsert the batch's indicators   (one statement, see UPSERT_SQL)
 *   ---
 *   per request:  SAVEPOINT r, one INGEST_SQL per alert, RELEASE SAVEPOINT r
 *   COMMIT
 *
 * The first pipeline also proves the connection alive: a connection that
 * fails there (typically a stale one after a database restart) never saw a
 * COMMIT, so the writer may send the batch again on a new connection. Once
 * COMMIT has been handed to libpq a lost connection means "outcome unknown",
 * unless the server had reported an error first (it then skips the rest of
 * the pipeline, COMMIT included).
 *
 * A request whose own statement fails makes the server skip the rest of the
 * pipeline (COMMIT included). The writer then rolls back to that request's
 * savepoint, marks it failed (STORE_REJECTED for refused data,
 * STORE_UNAVAILABLE for a transient error such as a deadlock) and sends the
 * remaining requests and COMMIT again. So one bad request fails alone and
 * the others commit. A batch of one request uses no savepoint.
 *
 * Dedup under concurrency: before touching any alert the batch takes
 * pg_advisory_xact_lock(hashtextextended(fingerprint, 0)) for each distinct
 * fingerprint, in ascending key order. Every writer of every alertmapd process
 * does the same, so two transactions carrying the same fingerprint are
 * serialized: the second waits until the first commits, and its statements
 * (READ COMMITTED: each sees what committed before it started) then find the
 * first alert and count a duplicate. Taking the locks in one sorted pass
 * means two batches never wait on each other in a cycle. Duplicates inside
 * one batch are successive statements of one transaction and see each other.
 * A unique partial index cannot express "within the window", hence locks.
 * A hash collision only serializes two unrelated fingerprints, never merges
 * them. Indicators are upserted for the whole batch in one statement sorted
 * by (type, value), so the row locks of ON CONFLICT DO UPDATE are also taken
 * in one global order. */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

/* One alert: count a duplicate of the oldest alert with this fingerprint
 * inside the window ($12 s; 0 disables), or insert the alert, its indicator
 * links (in extraction order) and its enrichment job. The job's INSERT
 * trigger sends the NOTIFY. Answers (uuid, duplicate_count, is_duplicate). */
static const char INGEST_SQL[] =
    "WITH d AS ("
    " UPDATE alerts SET duplicate_count = duplicate_count + 1,"
    "  last_duplicate_at = now(), updated_at = now()"
    " WHERE id = (SELECT id FROM alerts WHERE $12::int8 > 0 AND fingerprint = $11"
    "  AND ingested_at >= now() - $12::int8 * interval '1 second'"
    "  ORDER BY ingested_at, id LIMIT 1)"
    " RETURNING uuid, duplicate_count),"
    "a AS ("
    " INSERT INTO alerts (title, severity, occurred_at, occurred_at_fallback, source_name,"
    "  description, tags, raw_payload, detection_rule_ref, fields, fingerprint)"
    " SELECT $1, $2, timestamptz 'epoch' + $3::int8 * interval '1 microsecond', $4::bool, $5,"
    "  $6, $7::text[], $8::jsonb, $9, COALESCE($10::jsonb, '{}'::jsonb), $11"
    " WHERE NOT EXISTS (SELECT 1 FROM d)"
    " RETURNING id, uuid),"
    "l AS ("
    " INSERT INTO alert_indicators (alert_id, indicator_id, source_field, position)"
    " SELECT a.id, i.id, u.sf, u.pos FROM a"
    " CROSS JOIN unnest($13::text[], $14::text[], $15::text[]) WITH ORDINALITY AS u(t, v, sf, pos)"
    " JOIN indicators i ON i.type = u.t AND i.value = u.v),"
    "j AS (INSERT INTO enrichment_jobs (alert_id) SELECT id FROM a)"
    "SELECT uuid, duplicate_count, true FROM d "
    "UNION ALL SELECT uuid, 0, false FROM a";

static const char LOCK_SQL[] =
    "SELECT pg_advisory_xact_lock(k) FROM"
    " (SELECT DISTINCT hashtextextended(f, 0) AS k FROM unnest($1::text[]) AS f ORDER BY k) AS s";

static const char UPSERT_SQL[] =
    "INSERT INTO indicators (type, value)"
    " SELECT DISTINCT t, v FROM unnest($1::text[], $2::text[]) AS u(t, v) ORDER BY t, v"
    " ON CONFLICT (type, value) DO UPDATE SET last_seen = now()";

int store_batch_prepare(PGconn *c, void *ctx)
{
    (void)ctx;
    PGresult *r = PQprepare(c, "am_ingest", INGEST_SQL, 0, NULL);
    int rc = r && PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
    PQclear(r);
    return rc;
}

typedef enum { C_BEGIN, C_LOCK, C_UPSERT, C_SP, C_ALERT, C_RELEASE, C_COMMIT } cmd_kind_t;

typedef struct cmd {
    cmd_kind_t kind;
    size_t req, alert;
} cmd_t;

typedef struct batch {
    PGconn *c;
    char window[24];
    bool dedup;
    ingest_req_t **reqs;
    size_t nreq;
    bool use_sp;
    cmd_t *cmds;
    size_t ncmds;
    am_buf_t fps, types, values; /* literals of the whole batch */
    char *err;
    size_t errlen;
} batch_t;

/* Appends the elements of literal lit ("{...}") to the literal being built
 * in b (opened with '{', closed by the caller). */
static void join_lit(am_buf_t *b, const char *lit)
{
    size_t n = strlen(lit);
    if (n <= 2)
        return;
    if (b->len > 1)
        am_buf_putc(b, ',');
    am_buf_append(b, lit + 1, n - 2);
}

static void build_literals(batch_t *b)
{
    am_buf_puts(&b->fps, "{");
    am_buf_puts(&b->types, "{");
    am_buf_puts(&b->values, "{");
    for (size_t i = 0; i < b->nreq; i++) {
        for (size_t k = 0; k < b->reqs[i]->n; k++) {
            const w_alert_t *a = &b->reqs[i]->alerts[k];
            am_buf_t one;
            am_buf_init(&one, 0);
            store_pg_text_array(&one, &a->fingerprint, 1);
            join_lit(&b->fps, one.data);
            am_buf_dispose(&one);
            join_lit(&b->types, a->ind_types_lit);
            join_lit(&b->values, a->ind_values_lit);
        }
    }
    am_buf_putc(&b->fps, '}');
    am_buf_putc(&b->types, '}');
    am_buf_putc(&b->values, '}');
}

static int send_cmd(batch_t *b, cmd_kind_t kind, size_t req, size_t alert)
{
    b->cmds[b->ncmds++] = (cmd_t){kind, req, alert};
    PGconn *c = b->c;
    switch (kind) {
    case C_BEGIN:
        return PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) ? 0 : -1;
    case C_SP:
        return PQsendQueryParams(c, "SAVEPOINT r", 0, NULL, NULL, NULL, NULL, 0) ? 0 : -1;
    case C_RELEASE:
        return PQsendQueryParams(c, "RELEASE SAVEPOINT r", 0, NULL, NULL, NULL, NULL, 0) ? 0 : -1;
    case C_COMMIT:
        return PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) ? 0 : -1;
    case C_LOCK: {
        const char *p[] = {b->fps.data};
        return PQsendQueryParams(c, LOCK_SQL, 1, NULL, p, NULL, NULL, 0) ? 0 : -1;
    }
    case C_UPSERT: {
        const char *p[] = {b->types.data, b->values.data};
        return PQsendQueryParams(c, UPSERT_SQL, 2, NULL, p, NULL, NULL, 0) ? 0 : -1;
    }
    case C_ALERT: {
        const w_alert_t *a = &b->reqs[req]->alerts[alert];
        const char *p[15] = {
            a->title,
            a->severity,
            a->occurred,
            a->fallback ? "t" : "f",
            a->source_name,
            a->description,
            a->tags_lit,
            a->raw_payload,
            a->detection_rule_ref,
            a->fields_json,
            a->fingerprint,
            b->window,
            a->ind_types_lit,
            a->ind_values_lit,
            a->ind_fields_lit,
        };
        return PQsendQueryPrepared(c, "am_ingest", 15, p, NULL, NULL, 0) ? 0 : -1;
    }
    }
    return -1;
}

/* The first failure of a pipeline. */
typedef struct failure {
    long at; /* index into cmds, -1 when none */
    pgerr_class_t cls;
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

/* Sends one pipeline and reads every result: with head, BEGIN and the batch
 * statements; with body, requests from..nreq-1 and COMMIT. */
static void run_pipeline(batch_t *b, bool head, bool body, size_t from, failure_t *f)
{
    f->at = -1;
    f->safe = true;
    b->ncmds = 0;
    bool committed = false, commit_sent = false;
    if (!PQenterPipelineMode(b->c)) {
        b->cmds[0] = (cmd_t){C_BEGIN, 0, 0};
        connection_failure(b, f, 0, false);
        return;
    }
    int rc = 0;
    if (head) {
        rc |= send_cmd(b, C_BEGIN, 0, 0);
        if (b->dedup)
            rc |= send_cmd(b, C_LOCK, 0, 0);
        if (b->types.len > 2)
            rc |= send_cmd(b, C_UPSERT, 0, 0);
    }
    for (size_t i = from; body && i < b->nreq && rc == 0; i++) {
        if (b->use_sp)
            rc |= send_cmd(b, C_SP, i, 0);
        for (size_t k = 0; k < b->reqs[i]->n && rc == 0; k++)
            rc |= send_cmd(b, C_ALERT, i, k);
        if (b->use_sp && i + 1 < b->nreq)
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
        } else if (st == PGRES_TUPLES_OK && cmd->kind == C_ALERT) {
            store_alert_outcome_t *out = &b->reqs[cmd->req]->out[cmd->alert];
            if (PQntuples(r) == 1) {
                snprintf(out->uuid, sizeof(out->uuid), "%s", PQgetvalue(r, 0, 0));
                out->duplicate_count = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
                out->is_duplicate = PQgetvalue(r, 0, 2)[0] == 't';
            }
        } else if (cmd->kind == C_COMMIT && st == PGRES_COMMAND_OK) {
            committed = strcmp(PQcmdStatus(r), "COMMIT") == 0;
            if (!committed) { /* the server rolled back instead */
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

static batch_result_t run(batch_t *b)
{
    failure_t f;
    run_pipeline(b, true, false, 0, &f);
    if (f.at >= 0) {
        const char *what = b->cmds[f.at].kind == C_LOCK     ? "locking fingerprints"
                           : b->cmds[f.at].kind == C_UPSERT ? "upserting indicators"
                                                            : "begin";
        snprintf(b->err, b->errlen, "%s: %s", what, f.msg);
        if (f.cls == PGERR_CONNECTION)
            return BATCH_CONN_LOST; /* COMMIT was never sent */
        store_pg_exec_simple(b->c, "ROLLBACK", NULL, NULL, 0);
        return BATCH_FAILED;
    }
    size_t from = 0;
    for (;;) {
        run_pipeline(b, false, true, from, &f);
        if (f.at < 0)
            return BATCH_COMMITTED;
        const cmd_t *cmd = &b->cmds[f.at];
        if (f.cls == PGERR_CONNECTION) {
            snprintf(b->err, b->errlen, "%s", f.msg);
            return f.safe ? BATCH_CONN_LOST : BATCH_COMMIT_UNKNOWN;
        }
        if (cmd->kind == C_COMMIT) {
            snprintf(b->err, b->errlen, "commit: %s", f.msg);
            return BATCH_FAILED; /* refused by the server: rolled back */
        }
        /* one request failed on its own */
        ingest_req_t *q = b->reqs[cmd->req];
        q->status = f.cls == PGERR_DATA ? STORE_REJECTED : STORE_UNAVAILABLE;
        snprintf(q->msg, sizeof(q->msg), "alert %zu: %s", cmd->alert, f.msg);
        pgerr_class_t cls = PGERR_DATA;
        if (!b->use_sp) {
            store_pg_exec_simple(b->c, "ROLLBACK", NULL, NULL, 0);
            return BATCH_COMMITTED; /* nothing else was in the batch */
        }
        if (store_pg_exec_simple(b->c, "ROLLBACK TO SAVEPOINT r; RELEASE SAVEPOINT r", &cls, b->err,
                                 b->errlen) != 0) {
            if (cls == PGERR_CONNECTION)
                return BATCH_CONN_LOST; /* the server saw the error: it did not commit */
            store_pg_exec_simple(b->c, "ROLLBACK", NULL, NULL, 0);
            return BATCH_FAILED;
        }
        from = cmd->req + 1;
    }
}

batch_result_t store_batch_run(PGconn *c, int64_t dedup_window_s, ingest_req_t **reqs, size_t nreq,
                               char *err, size_t errlen)
{
    batch_t b = {.c = c, .reqs = reqs, .nreq = nreq, .err = err, .errlen = errlen};
    b.dedup = dedup_window_s > 0;
    b.use_sp = nreq > 1;
    snprintf(b.window, sizeof(b.window), "%lld", (long long)(b.dedup ? dedup_window_s : 0));
    size_t ncmd = 4 + 2 * nreq; /* BEGIN, LOCK, UPSERT, COMMIT, SP/RELEASE per request */
    for (size_t i = 0; i < nreq; i++) {
        reqs[i]->status = STORE_OK;
        reqs[i]->msg[0] = '\0';
        ncmd += reqs[i]->n;
    }
    am_buf_init(&b.fps, 0);
    am_buf_init(&b.types, 0);
    am_buf_init(&b.values, 0);
    b.cmds = am_xcalloc(ncmd, sizeof(*b.cmds));
    build_literals(&b); /* unbounded buffers: cannot fail */
    batch_result_t br = run(&b);
    free(b.cmds);
    am_buf_dispose(&b.fps);
    am_buf_dispose(&b.types);
    am_buf_dispose(&b.values);
    return br;
}
