/* storage/alert_get.c - the alert JSON of the read API, GET and PATCH of one
 * alert. See store_internal.h and docs/operations.md. */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

void store_reply_set(reply_buf_t *out, int status, char *body)
{
    free(out->body);
    out->status = status;
    out->body = body;
}

int store_reply_db_error(PGconn *c, const PGresult *res, reply_buf_t *out)
{
    pgerr_class_t cls = store_pgerr_classify(c, res);
    if (cls == PGERR_CONNECTION)
        return AM_EUNAVAIL;
    if (cls == PGERR_TRANSIENT) {
        store_reply_set(out, 503,
                        store_json_error("DATABASE_UNAVAILABLE", "the database is busy, retry"));
        return AM_OK;
    }
    char e[200];
    store_pg_errcopy(e, sizeof(e), res ? PQresultErrorMessage(res) : PQerrorMessage(c));
    am_log(AM_LOG_ERROR, "store_query_failed", "serror", e, NULL);
    store_reply_set(out, 500, store_json_error("INTERNAL", "unexpected database error"));
    return AM_OK;
}

/* Spreads the optional fields (a jsonb object as text) at the top level:
 * the known names first, in their documented order, then any other key. */
static void put_fields(am_buf_t *b, const char *text)
{
    json_error_t e;
    json_t *o = json_loads(text, 0, &e);
    if (!json_is_object(o)) {
        /* not expected (the column holds objects); splice the members as is */
        size_t n = strlen(text);
        if (n > 2 && text[0] == '{' && text[n - 1] == '}') {
            am_buf_putc(b, ',');
            am_buf_append(b, text + 1, n - 2);
        }
        json_decref(o);
        return;
    }
    for (size_t i = 0; i < store_noptional_fields; i++) {
        json_t *v = json_object_get(o, store_optional_fields[i]);
        if (v == NULL)
            continue;
        char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        if (t != NULL) {
            store_json_put_key(b, store_optional_fields[i]);
            am_buf_puts(b, t);
        } else {
            b->failed = true;
        }
        free(t);
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        bool known = false;
        for (size_t i = 0; i < store_noptional_fields && !known; i++)
            known = strcmp(key, store_optional_fields[i]) == 0;
        if (known)
            continue;
        char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        if (t != NULL) {
            store_json_put_key(b, key);
            am_buf_puts(b, t);
        } else {
            b->failed = true;
        }
        free(t);
    }
    json_decref(o);
}

static const char *val(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* GET only, after COL_RAW: the key of the last PATCH (id and prefix). */
#define COL_UPDATED_BY_ID     (COL_RAW + 1)
#define COL_UPDATED_BY_PREFIX (COL_RAW + 2)

/* The columns of IND_SQL: one row per (indicator, provider result), the
 * indicator columns repeated, the result columns NULL when there is none. */
enum {
    IND_TYPE,
    IND_VALUE,
    IND_FIELD,
    IND_VERDICT,
    IND_POSITION,
    RES_PROVIDER,
    RES_OUTCOME,
    RES_VERDICT,
    RES_FIELDS,
    RES_ERROR,
    RES_FETCHED
};

/* The indicators array: rows of the same position are one indicator. */
static void put_indicators(am_buf_t *b, const PGresult *ind)
{
    am_buf_putc(b, '[');
    int n = PQntuples(ind);
    for (int i = 0; i < n;) {
        if (i > 0)
            am_buf_putc(b, ',');
        am_buf_putc(b, '{');
        store_json_put_key(b, "type");
        store_json_put_str(b, val(ind, i, IND_TYPE));
        store_json_put_key(b, "value");
        store_json_put_str(b, val(ind, i, IND_VALUE));
        store_json_put_key(b, "source_field");
        store_json_put_str(b, val(ind, i, IND_FIELD));
        /* this alert's verdict of the indicator (null until enriched) */
        store_json_put_key(b, "verdict");
        store_json_put_str(b, val(ind, i, IND_VERDICT));
        store_json_put_key(b, "enrichment");
        am_buf_putc(b, '[');
        const char *pos = PQgetvalue(ind, i, IND_POSITION);
        bool any = false;
        for (; i < n && strcmp(PQgetvalue(ind, i, IND_POSITION), pos) == 0; i++) {
            if (PQgetisnull(ind, i, RES_PROVIDER))
                continue; /* no provider has answered for this indicator */
            if (any)
                am_buf_putc(b, ',');
            any = true;
            am_buf_putc(b, '{');
            store_json_put_key(b, "provider");
            store_json_put_str(b, val(ind, i, RES_PROVIDER));
            store_json_put_key(b, "outcome");
            store_json_put_str(b, val(ind, i, RES_OUTCOME));
            store_json_put_key(b, "verdict");
            store_json_put_str(b, val(ind, i, RES_VERDICT));
            store_json_put_key(b, "result");
            am_buf_puts(b, PQgetvalue(ind, i, RES_FIELDS)); /* jsonb text: one line */
            if (!PQgetisnull(ind, i, RES_ERROR)) {
                store_json_put_key(b, "error");
                store_json_put_str(b, val(ind, i, RES_ERROR));
            }
            store_json_put_key(b, "fetched_at");
            store_json_put_str(b, val(ind, i, RES_FETCHED));
            am_buf_putc(b, '}');
        }
        am_buf_puts(b, "]}");
    }
    am_buf_putc(b, ']');
}

void store_render_alert(am_buf_t *b, const PGresult *r, int row, const PGresult *ind)
{
    am_buf_putc(b, '{');
    store_json_put_key(b, "uuid");
    store_json_put_str(b, val(r, row, COL_UUID));
    store_json_put_key(b, "title");
    store_json_put_str(b, val(r, row, COL_TITLE));
    store_json_put_key(b, "severity");
    store_json_put_str(b, val(r, row, COL_SEVERITY));
    store_json_put_key(b, "occurred_at");
    store_json_put_time_us(b, val(r, row, COL_OCCURRED));
    store_json_put_key(b, "occurred_at_fallback");
    am_buf_puts(b, PQgetvalue(r, row, COL_FALLBACK)[0] == 't' ? "true" : "false");
    store_json_put_key(b, "source_name");
    store_json_put_str(b, val(r, row, COL_SOURCE));
    store_json_put_key(b, "description");
    store_json_put_str(b, val(r, row, COL_DESCRIPTION));
    store_json_put_key(b, "status");
    store_json_put_str(b, val(r, row, COL_STATUS));
    store_json_put_key(b, "enrichment_status");
    store_json_put_str(b, val(r, row, COL_ENRICHMENT));
    /* the worst verdict of the indicators, null until enriched; the
     * reasons of a Failed enrichment */
    store_json_put_key(b, "verdict");
    store_json_put_str(b, val(r, row, COL_VERDICT));
    store_json_put_key(b, "enrichment_error");
    store_json_put_str(b, val(r, row, COL_ENRICHMENT_ERROR));
    store_json_put_key(b, "tags");
    am_buf_puts(b, PQgetvalue(r, row, COL_TAGS)); /* json text made by the query */
    store_json_put_key(b, "detection_rule_ref");
    store_json_put_str(b, val(r, row, COL_RULE_REF));
    put_fields(b, PQgetvalue(r, row, COL_FIELDS));
    store_json_put_key(b, "fingerprint");
    store_json_put_str(b, val(r, row, COL_FINGERPRINT));
    store_json_put_key(b, "duplicate_count");
    am_buf_puts(b, PQgetvalue(r, row, COL_DUPCOUNT));
    static const struct {
        const char *key;
        int col;
    } times[] = {
        {"last_duplicate_at", COL_LAST_DUP}, {"ingested_at", COL_INGESTED},
        {"enriched_at", COL_ENRICHED},       {"updated_at", COL_UPDATED},
        {"triaged_at", COL_TRIAGED},         {"escalated_at", COL_ESCALATED},
        {"closed_at", COL_CLOSED},
    };
    for (size_t i = 0; i < AM_ARRAY_LEN(times); i++) {
        store_json_put_key(b, times[i].key);
        store_json_put_time_us(b, val(r, row, times[i].col));
    }
    store_json_put_key(b, "close_classification");
    store_json_put_str(b, val(r, row, COL_CLASSIFICATION));
    if (ind != NULL) {
        /* the key of the last PATCH: {"key_id", "key_prefix"}, or null */
        store_json_put_key(b, "updated_by");
        if (PQgetisnull(r, row, COL_UPDATED_BY_ID)) {
            am_buf_puts(b, "null");
        } else {
            am_buf_printf(b,
                          "{\"key_id\":%s,\"key_prefix\":", PQgetvalue(r, row, COL_UPDATED_BY_ID));
            store_json_put_str(b, val(r, row, COL_UPDATED_BY_PREFIX));
            am_buf_putc(b, '}');
        }
        store_json_put_key(b, "raw_payload");
        /* valid JSON (the column validated it). A json column keeps the
         * body's layout; its line breaks can only be whitespace between
         * tokens (inside strings they are escapes), so dropping them keeps
         * the value and makes the answer one line, as with jsonb. */
        const char *raw = PQgetvalue(r, row, COL_RAW);
        for (const char *p = raw; *p;) {
            size_t n = strcspn(p, "\r\n");
            am_buf_append(b, p, n);
            p += n;
            while (*p == '\r' || *p == '\n')
                p++;
        }
        store_json_put_key(b, "indicators");
        put_indicators(b, ind);
    }
    am_buf_putc(b, '}');
}

#define GET_COLS                                                                                   \
    "SELECT " ALERT_COLS ", a.raw_payload::text, a.updated_by_key,"                                \
    " (SELECT 'amk_' || k.prefix FROM api_keys k WHERE k.id = a.updated_by_key) FROM alerts a"
static const char GET_SQL[] = GET_COLS " WHERE a.uuid = $1::uuid";
static const char GET_BY_ID_SQL[] = GET_COLS " WHERE a.id = $1::int8";
/* The indicators in extraction order, each with this alert's verdict of it
 * (alerts.indicator_verdicts, keyed "type:value") and the latest answer of
 * every provider (enrichment_results, shared by the alerts that hold the
 * indicator), in provider order. One statement: the links by the primary
 * key (alert_id, indicator_id), each result by the primary key of
 * enrichment_results (type, value, provider). */
static const char IND_SQL[] =
    "SELECT i.type, i.value, ai.source_field, a.indicator_verdicts ->> (i.type || ':' || i.value),"
    " ai.position, r.provider, r.outcome, r.verdict, r.fields::text, r.error,"
    " to_char(r.fetched_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    " FROM alert_indicators ai JOIN indicators i ON i.id = ai.indicator_id"
    " JOIN alerts a ON a.id = ai.alert_id"
    " LEFT JOIN enrichment_results r ON r.type = i.type AND r.value = i.value"
    " WHERE ai.alert_id = $1::int8 ORDER BY ai.position, r.provider";

int store_alert_render(PGconn *c, const char *uuid, const char *id, am_buf_t *b, PGresult **failed)
{
    *failed = NULL;
    const char *p[] = {uuid ? uuid : id};
    PGresult *r = PQexecParams(c, uuid ? GET_SQL : GET_BY_ID_SQL, 1, NULL, p, NULL, NULL, 0);
    PGresult *ind = NULL;
    int rc = AM_OK;
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        *failed = r;
        r = NULL;
        rc = AM_EIO;
        goto done;
    }
    if (PQntuples(r) == 0) {
        rc = AM_ENOTFOUND;
        goto done;
    }
    const char *ip[] = {PQgetvalue(r, 0, COL_ID)};
    ind = PQexecParams(c, IND_SQL, 1, NULL, ip, NULL, NULL, 0);
    if (ind == NULL || PQresultStatus(ind) != PGRES_TUPLES_OK) {
        *failed = ind;
        ind = NULL;
        rc = AM_EIO;
        goto done;
    }
    store_render_alert(b, r, 0, ind);
    if (!am_buf_ok(b)) /* jansson could not serialize a stored value */
        rc = AM_EINVAL;
done:
    PQclear(r);
    PQclear(ind);
    return rc;
}

int store_alert_get(PGconn *c, const char *uuid, reply_buf_t *out)
{
    am_buf_t b;
    am_buf_init(&b, 0);
    am_buf_puts(&b, "{\"data\":");
    PGresult *failed = NULL;
    int rc = store_alert_render(c, uuid, NULL, &b, &failed);
    am_buf_putc(&b, '}');
    if (rc == AM_OK) {
        store_reply_set(out, 200, am_buf_steal(&b));
    } else if (rc == AM_ENOTFOUND) {
        store_reply_set(out, 404, store_json_error("NOT_FOUND", "no alert with uuid %s", uuid));
        rc = AM_OK;
    } else if (rc == AM_EINVAL) {
        store_reply_set(out, 500, store_json_error("INTERNAL", "the alert cannot be rendered"));
        rc = AM_OK;
    } else {
        rc = store_reply_db_error(c, failed, out);
    }
    PQclear(failed);
    am_buf_dispose(&b);
    return rc;
}

/* ---- PATCH ------------------------------------------------------------------- */

static const char *const classifications[] = {"true_positive", "false_positive", "benign_positive",
                                              "undetermined"};

/* The statuses an alert may move to `to` from, as a text[] literal. */
static const char *allowed_from(const char *to)
{
    if (strcmp(to, "Triaging") == 0)
        return "{Open}";
    if (strcmp(to, "Escalated") == 0)
        return "{Open,Triaging}";
    if (strcmp(to, "Closed") == 0)
        return "{Open,Triaging,Escalated}";
    return "{}"; /* nothing goes back to Open */
}

/* Checks the body; on a bad one fills out and returns false. */
static bool patch_body(const char *body, const char **status, const char **cls, json_t **root,
                       reply_buf_t *out)
{
    json_error_t e;
    *root = json_loads(body ? body : "", JSON_REJECT_DUPLICATES, &e);
    if (*root == NULL) {
        store_reply_set(out, 400,
                        store_json_error("INVALID_JSON", "body is not valid JSON: %s", e.text));
        return false;
    }
    if (!json_is_object(*root)) {
        store_reply_set(out, 422, store_json_error("INVALID_BODY", "body must be a JSON object"));
        return false;
    }
    const char *key;
    json_t *v;
    json_object_foreach(*root, key, v)
    {
        if (strcmp(key, "status") != 0 && strcmp(key, "close_classification") != 0) {
            store_reply_set(out, 422,
                            store_json_error("INVALID_BODY", "unknown field \"%s\"", key));
            return false;
        }
    }
    *status = json_string_value(json_object_get(*root, "status"));
    static const char *const st[] = {"Open", "Triaging", "Escalated", "Closed"};
    bool ok = false;
    for (size_t i = 0; i < AM_ARRAY_LEN(st) && *status; i++)
        ok = ok || strcmp(*status, st[i]) == 0;
    if (!ok) {
        store_reply_set(
            out, 422,
            store_json_error("INVALID_BODY",
                             "status must be one of Open, Triaging, Escalated, Closed"));
        return false;
    }
    json_t *c = json_object_get(*root, "close_classification");
    *cls = json_string_value(c);
    bool closing = strcmp(*status, "Closed") == 0;
    if (!closing) {
        if (c != NULL && !json_is_null(c)) {
            store_reply_set(
                out, 422,
                store_json_error("INVALID_BODY",
                                 "close_classification is only allowed with status Closed"));
            return false;
        }
        *cls = NULL;
        return true;
    }
    ok = false;
    for (size_t i = 0; i < AM_ARRAY_LEN(classifications) && *cls; i++)
        ok = ok || strcmp(*cls, classifications[i]) == 0;
    if (!ok) {
        store_reply_set(out, 422,
                        store_json_error("INVALID_BODY",
                                         "status Closed needs close_classification, one of "
                                         "true_positive, false_positive, benign_positive, "
                                         "undetermined"));
        return false;
    }
    return true;
}

bool store_alert_patch_precheck(const char *body, reply_buf_t *out)
{
    const char *status, *cls;
    json_t *root = NULL;
    bool answered = !patch_body(body, &status, &cls, &root, out);
    json_decref(root);
    return answered;
}

static const char PATCH_SQL[] =
    "UPDATE alerts SET status = $2, updated_at = now(),"
    " triaged_at = CASE WHEN $2 = 'Triaging' THEN now() ELSE triaged_at END,"
    " escalated_at = CASE WHEN $2 = 'Escalated' THEN now() ELSE escalated_at END,"
    " closed_at = CASE WHEN $2 = 'Closed' THEN now() ELSE closed_at END,"
    " close_classification = $3, updated_by_key = NULLIF($5::int8, 0)"
    " WHERE uuid = $1::uuid AND status = ANY ($4::text[]) RETURNING id";

int store_alert_patch(PGconn *c, const char *uuid, const char *body, int64_t key_id,
                      reply_buf_t *out)
{
    const char *status, *cls;
    json_t *root = NULL;
    PGresult *r = NULL;
    int rc = AM_OK;
    if (!patch_body(body, &status, &cls, &root, out))
        goto done;
    char kid[24];
    snprintf(kid, sizeof(kid), "%lld", (long long)(key_id > 0 ? key_id : 0));
    const char *p[] = {uuid, status, cls, allowed_from(status), kid};
    r = PQexecParams(c, PATCH_SQL, 5, NULL, p, NULL, NULL, 0);
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = store_reply_db_error(c, r, out);
        goto done;
    }
    if (PQntuples(r) == 1) {
        /* the change is committed; if reading it back fails, tell the caller
         * to re-read rather than to repeat the change */
        rc = store_alert_get(c, uuid, out);
        if (rc == AM_EUNAVAIL)
            rc = AM_EIO;
        goto done;
    }
    PQclear(r);
    r = PQexecParams(c, "SELECT status FROM alerts WHERE uuid = $1::uuid", 1, NULL, p, NULL, NULL,
                     0);
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = store_reply_db_error(c, r, out);
        goto done;
    }
    if (PQntuples(r) == 0)
        store_reply_set(out, 404, store_json_error("NOT_FOUND", "no alert with uuid %s", uuid));
    else
        store_reply_set(out, 409,
                        store_json_error("INVALID_TRANSITION", "cannot change status from %s to %s",
                                         PQgetvalue(r, 0, 0), status));
done:
    PQclear(r);
    json_decref(root);
    return rc;
}
