/*
 * h2o-glue/ingest.c - POST /v1/ingest/{source} and its dry run
 * POST /v1/sources/{source}/test, along the request path of design.md:
 *
 *     body over --max-body      413 PAYLOAD_TOO_LARGE (server.c, before the handler)
 *     credential                401/403/429 (auth.c, before the handler: the
 *                               mapping's signature or an ingest key for
 *                               ingest, an admin key for the dry run)
 *   0 find the program          404 UNKNOWN_SOURCE
 *   2 parse JSON                400 INVALID_JSON, 422 INVALID_PAYLOAD (not an object)
 *   3-5 eng_run                 422 INVALID_PAYLOAD / LIMIT_EXCEEDED
 *     the request's arena full  413 LIMIT_EXCEEDED (copy of the body) or
 *                               422 LIMIT_EXCEEDED (the rows for the store)
 *   6 store_ingest              503 DATABASE_UNAVAILABLE (Retry-After: 5)
 *   7 the store's answer, on the request's own loop (ingest_complete):
 *     202 after commit, 422 INVALID_PAYLOAD (the database refused the data),
 *     503 DATABASE_UNAVAILABLE.
 *
 * Everything of the request lives in its arena; the payload is decref'd
 * before the handler returns (store_ingest copies what it keeps).
 */
#include "glue.h"

#include <stdlib.h>
#include <string.h>

/* An ingest waiting for the writer. */
typedef struct ingest_pending {
    glue_pending_t base;
    bool with_list;
    /* filled on the writer thread */
    store_status_t status;
    char message[256]; /* the store's reason when not STORE_OK */
    size_t nalerts;
    store_alert_outcome_t *outcomes; /* heap */
} ingest_pending_t;

/* A JSON text of v copied into the arena (NULL when the arena's cap is
 * reached; v comes from jansson's parser, so dumping it cannot fail). */
static const char *dump_into(json_t *v, int flags, am_arena_t *a)
{
    char *s = json_dumps(v, flags | JSON_COMPACT);
    char *copy = s ? am_arena_strdup(a, s) : NULL;
    free(s);
    return copy;
}

/* {"src_ip":…, …} of the optional fields that are set, or NULL when none. */
static int optional_fields(const char **out, const eng_alert_t *al, am_arena_t *a)
{
    *out = NULL;
    json_t *obj = NULL;
    for (int f = ENG_F_SRC_IP; f < ENG_F__COUNT; f++) {
        if (al->field[f] == NULL)
            continue;
        if (obj == NULL)
            obj = json_object();
        /* json_string() is NULL only for text that is not UTF-8, which the
         * engine never produces; set_new then fails and the field is left out */
        json_object_set_new(obj, eng_field_name((eng_field_t)f), json_string(al->field[f]));
    }
    if (obj == NULL)
        return AM_OK;
    *out = dump_into(obj, 0, a);
    json_decref(obj);
    return *out ? AM_OK : AM_ELIMIT;
}

int glue_store_alerts(store_alert_t **out, const eng_result_t *res, json_t *payload,
                      const char *body, am_arena_t *a)
{
    *out = NULL;
    bool split = res->nalerts > 1 || (res->nalerts == 1 && res->alerts[0].raw != payload);
    store_alert_t *arr = am_arena_calloc(a, res->nalerts ? res->nalerts : 1, sizeof(*arr));
    if (arr == NULL)
        return AM_ELIMIT;
    for (size_t i = 0; i < res->nalerts; i++) {
        const eng_alert_t *al = &res->alerts[i];
        store_alert_t *sa = &arr[i];
        sa->source_name = al->source_name;
        sa->title = al->field[ENG_F_TITLE];
        sa->severity = al->field[ENG_F_SEVERITY];
        sa->occurred_at_us = al->occurred_at_us;
        sa->occurred_at_fallback = al->occurred_at_fallback;
        sa->description = al->field[ENG_F_DESCRIPTION];
        sa->detection_rule_ref = al->field[ENG_F_DETECTION_RULE_REF];
        sa->tags = (const char *const *)al->tags;
        sa->ntags = al->ntags;
        sa->fingerprint = al->fingerprint;
        if (!split)
            sa->raw_payload = body;
        else if ((sa->raw_payload = dump_into(al->raw, JSON_ENCODE_ANY, a)) == NULL)
            return AM_ELIMIT;
        int rc = optional_fields(&sa->fields_json, al, a);
        if (rc != AM_OK)
            return rc;
        if (al->nindicators > 0) {
            store_indicator_t *ind = am_arena_calloc(a, al->nindicators, sizeof(*ind));
            if (ind == NULL)
                return AM_ELIMIT;
            for (size_t k = 0; k < al->nindicators; k++) {
                ind[k].type = eng_ioc_type_name(al->indicators[k].type);
                ind[k].value = al->indicators[k].value;
                ind[k].source_field = al->indicators[k].source_field;
            }
            sa->indicators = ind;
            sa->nindicators = al->nindicators;
        }
    }
    *out = arr;
    return AM_OK;
}

/* Runs on the store's writer thread: copy the outcome and hand it back. */
static void on_ingested(const store_ingest_result_t *res, void *ctx)
{
    ingest_pending_t *p = ctx;
    p->status = res->status;
    if (res->message != NULL)
        snprintf(p->message, sizeof(p->message), "%s", res->message);
    if (res->status == STORE_OK) {
        uint64_t dups = 0;
        for (size_t i = 0; i < res->nalerts; i++)
            dups += res->alerts[i].is_duplicate;
        glue_metrics_ingested(res->nalerts - dups, dups);
    }
    if (res->status == STORE_OK && res->nalerts > 0) {
        p->outcomes = am_xcalloc(res->nalerts, sizeof(*p->outcomes));
        memcpy(p->outcomes, res->alerts, res->nalerts * sizeof(*p->outcomes));
        p->nalerts = res->nalerts;
    }
    glue_pending_post(&p->base);
}

/* Loop thread: the store's answer to an ingest. */
static void ingest_complete(glue_reqctx_t *rc, glue_pending_t *base)
{
    ingest_pending_t *p = (ingest_pending_t *)base;
    if (p->status == STORE_REJECTED) {
        /* the database refused this payload's data; a retry fails too */
        glue_send_error(rc, 422, "INVALID_PAYLOAD",
                        p->message[0] ? p->message : "the database refused the payload");
        return;
    }
    if (p->status != STORE_OK || p->nalerts == 0) {
        static am_lograte_t lr_store = AM_LOGRATE_INIT(0);
        uint64_t n = p->message[0] ? am_lograte_hit(&lr_store, am_now_us()) : 0;
        if (n > 0) /* one line per second in an outage, with the count */
            am_log(AM_LOG_WARN, "store_failed", "srequest_id", rc->request_id, "smessage",
                   p->message, "icount", (int64_t)n, NULL);
        glue_send_error(rc, 503, "DATABASE_UNAVAILABLE",
                        "the database is unavailable; nothing was stored, retry later");
        return;
    }
    rc->alert_uuid = am_arena_strdup(rc->arena, p->outcomes[0].uuid);
    glue_send_value(rc, 202, glue_ingest_json(p->outcomes, p->nalerts, p->with_list));
}

static void ingest_dispose(glue_pending_t *base)
{
    free(((ingest_pending_t *)base)->outcomes);
}

static void send_dry_run(glue_reqctx_t *rc, const eng_result_t *res)
{
    json_t *alerts = json_array();
    for (size_t i = 0; alerts != NULL && i < res->nalerts; i++) {
        json_t *a = eng_alert_json(&res->alerts[i], ENG_JSON_INDICATORS | ENG_JSON_PROVENANCE);
        if (a == NULL || json_array_append_new(alerts, a) != 0) {
            json_decref(alerts);
            alerts = NULL;
        }
    }
    /* alerts NULL: an alert the engine could not encode; answered 500 */
    glue_send_value(rc, 200, alerts ? json_pack("{s:{s:o}}", "data", "alerts", alerts) : NULL);
}

/* The part of the source name we print: bounded, as it comes from the URL. */
static const char *source_label(glue_reqctx_t *rc, const char *src, size_t len)
{
    return am_arena_strndup(rc->arena, src, len > 64 ? 64 : len);
}

/* Answers an engine failure: its own code (INVALID_PAYLOAD, LIMIT_EXCEEDED,
 * ...) with 422, and 500 only for a failure the engine calls INTERNAL. */
static void send_engine_error(glue_reqctx_t *rc, int erc, const eng_error_t *err)
{
    const char *code = err->code;
    if (code == NULL)
        code = erc == AM_ELIMIT ? "LIMIT_EXCEEDED" : erc == AM_OK ? "INVALID_PAYLOAD" : "INTERNAL";
    const char *msg = err->message[0] ? err->message
                      : erc == AM_OK  ? "the payload produced no alert"
                                      : "normalization failed";
    glue_send_error(rc, strcmp(code, "INTERNAL") == 0 ? 500 : 422, code, msg);
}

static void ingest(glue_reqctx_t *rc, const glue_route_params_t *params, bool dry_run)
{
    h2o_req_t *req = rc->req;
    char msg[640];
    const char *src = params->source_name.base;
    size_t srclen = params->source_name.len;
    rc->source = source_label(rc, src, srclen);
    if (rc->set == NULL) /* auth.c took it for an ingest */
        rc->set = glue_mappings_acquire();
    const eng_program_t *prog = rc->set ? eng_set_find(rc->set, src, srclen) : NULL;
    if (prog == NULL) {
        snprintf(msg, sizeof(msg), "no mapping for source '%s'", rc->source ? rc->source : "");
        glue_send_error(rc, 404, "UNKNOWN_SOURCE", msg);
        return;
    }
    const char *body = req->entity.base ? req->entity.base : "";
    size_t blen = req->entity.base ? req->entity.len : 0;

    /* Duplicate keys are refused: the signed bytes must mean one thing. */
    json_error_t jerr;
    json_t *payload = json_loadb(body, blen, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (payload == NULL) {
        snprintf(msg, sizeof(msg), "invalid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                 jerr.column);
        glue_send_error(rc, 400, "INVALID_JSON", msg);
        return;
    }
    if (!json_is_object(payload)) {
        json_decref(payload);
        glue_send_error(rc, 422, "INVALID_PAYLOAD", "payload must be a JSON object");
        return;
    }

    eng_result_t res = {0};
    eng_error_t err = {0};
    int erc = eng_run(&res, prog, payload, rc->arena, am_now_us(), &err);
    if (erc != AM_OK || res.nalerts == 0) {
        json_decref(payload);
        send_engine_error(rc, erc, &err);
        return;
    }
    if (dry_run) {
        send_dry_run(rc, &res);
        json_decref(payload);
        return;
    }

    /* The rows reference the arena copy of the body: the store copies them. */
    const char *text = am_arena_strndup(rc->arena, body, blen);
    if (text == NULL) {
        json_decref(payload);
        glue_send_error(rc, 413, "LIMIT_EXCEEDED",
                        "the request body does not fit in the per-request memory limit");
        return;
    }
    store_alert_t *alerts = NULL;
    int rc2 = glue_store_alerts(&alerts, &res, payload, text, rc->arena);
    bool split = res.nalerts > 1 || res.alerts[0].raw != payload;
    json_decref(payload);
    if (rc2 != AM_OK) {
        glue_send_error(rc, 422, "LIMIT_EXCEEDED",
                        "the normalized alerts do not fit in the per-request memory limit");
        return;
    }
    store_t *store = glue_server_store(rc->srv);
    if (store == NULL) {
        glue_send_error(rc, 503, "DATABASE_UNAVAILABLE", "no store is configured");
        return;
    }
    ingest_pending_t *p = glue_pending_new(rc, sizeof(*p), ingest_complete, ingest_dispose);
    p->with_list = split;
    int sr = store_ingest(store, alerts, res.nalerts, on_ingested, p);
    if (sr == AM_OK)
        return;
    glue_pending_cancel(&p->base);
    if (sr == AM_EINVAL) /* the engine produced an alert the store refuses */
        glue_send_error(rc, 500, "INTERNAL", "the normalized alert was refused by the store");
    else
        glue_send_error(rc, 503, "DATABASE_UNAVAILABLE",
                        "the store is not accepting alerts; nothing was stored, retry later");
}

void glue_handle_ingest(glue_reqctx_t *rc, const glue_route_params_t *params)
{
    ingest(rc, params, false);
}

void glue_handle_source_test(glue_reqctx_t *rc, const glue_route_params_t *params)
{
    ingest(rc, params, true);
}
