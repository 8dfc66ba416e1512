/*
 * h2o-glue/ingest.c - POST /v1/ingest/{source} and its dry run
 * POST /v1/sources/{source}/test, along the request path of design.md:
 *
 *     body over --max-body      413 PAYLOAD_TOO_LARGE (server.c, before routing)
 *   0 find the program          404 UNKNOWN_SOURCE
 *   1 signature (ingest only)   401 INVALID_SIGNATURE
 *   2 parse JSON                400 INVALID_JSON, 422 INVALID_PAYLOAD (not an object)
 *   3-5 eng_run                 422 INVALID_PAYLOAD / LIMIT_EXCEEDED
 *   6 store_ingest              503 DATABASE_UNAVAILABLE (Retry-After: 5)
 *   7 202 after commit, answered on the request's own loop.
 *
 * Everything of the request lives in its arena; the payload is decref'd
 * before the handler returns (store_ingest copies what it keeps).
 */
#include "glue.h"

#include <stdlib.h>
#include <string.h>

static const char *header_of(void *ctx, const char *name, size_t *len)
{
    h2o_req_t *req = ctx;
    return glue_header_find(&req->headers, name, len);
}

/* A JSON text of v copied into the arena (NULL when out of memory). */
static const char *dump_into(json_t *v, int flags, am_arena_t *a)
{
    char *s = json_dumps(v, flags | JSON_COMPACT);
    if (s == NULL)
        return NULL;
    char *copy = am_arena_strdup(a, s);
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
        if (obj == NULL && (obj = json_object()) == NULL)
            return AM_ENOMEM;
        if (json_object_set_new(obj, eng_field_name((eng_field_t)f), json_string(al->field[f])) !=
            0) {
            json_decref(obj);
            return AM_ENOMEM;
        }
    }
    if (obj == NULL)
        return AM_OK;
    *out = dump_into(obj, 0, a);
    json_decref(obj);
    return *out ? AM_OK : AM_ENOMEM;
}

int glue_store_alerts(store_alert_t **out, const eng_result_t *res, json_t *payload,
                      const char *body, am_arena_t *a)
{
    *out = NULL;
    bool split = res->nalerts > 1 || (res->nalerts == 1 && res->alerts[0].raw != payload);
    store_alert_t *arr = am_arena_calloc(a, res->nalerts ? res->nalerts : 1, sizeof(*arr));
    if (arr == NULL)
        return AM_ENOMEM;
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
            return AM_ENOMEM;
        int rc = optional_fields(&sa->fields_json, al, a);
        if (rc != AM_OK)
            return rc;
        if (al->nindicators > 0) {
            store_indicator_t *ind = am_arena_calloc(a, al->nindicators, sizeof(*ind));
            if (ind == NULL)
                return AM_ENOMEM;
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
    glue_pending_t *p = ctx;
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
        p->outcomes = calloc(res->nalerts, sizeof(*p->outcomes));
        if (p->outcomes != NULL) {
            memcpy(p->outcomes, res->alerts, res->nalerts * sizeof(*p->outcomes));
            p->nalerts = res->nalerts;
        } else {
            /* committed, but we cannot say so: the sender retries and the
             * retry is answered as a duplicate of this alert */
            p->status = STORE_UNAVAILABLE;
        }
    }
    glue_pending_post(p);
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
    if (alerts == NULL) {
        glue_send_error(rc, 500, "INTERNAL", "out of memory");
        return;
    }
    glue_log_request(rc, 200, NULL, NULL);
    glue_send_value(rc, 200, json_pack("{s:{s:o}}", "data", "alerts", alerts));
}

/* The part of the source name we print: bounded, as it comes from the URL. */
static const char *source_label(glue_reqctx_t *rc, const char *src, size_t len)
{
    return am_arena_strndup(rc->arena, src, len > 64 ? 64 : len);
}

void glue_handle_ingest(glue_reqctx_t *rc, const char *src, size_t srclen, bool dry_run)
{
    h2o_req_t *req = rc->req;
    char msg[640];
    rc->source = source_label(rc, src, srclen);
    rc->set = glue_mappings_acquire();
    const eng_program_t *prog = rc->set ? eng_set_find(rc->set, src, srclen) : NULL;
    if (prog == NULL) {
        snprintf(msg, sizeof(msg), "no mapping for source '%s'", rc->source ? rc->source : "");
        glue_send_error(rc, 404, "UNKNOWN_SOURCE", msg);
        return;
    }
    const char *body = req->entity.base ? req->entity.base : "";
    size_t blen = req->entity.base ? req->entity.len : 0;

    if (!dry_run) {
        eng_sig_request_t sr = {.header = header_of,
                                .header_ctx = req,
                                .body = body,
                                .body_len = blen,
                                .now_s = am_now_us() / 1000000};
        if (req->query_at != SIZE_MAX) {
            sr.query = req->path.base + req->query_at + 1;
            sr.query_len = req->path.len - req->query_at - 1;
        }
        bool secret_set = false;
        eng_error_t err = {0};
        if (eng_verify_signature(prog, &sr, &secret_set, &err) != AM_OK) {
            glue_send_error(rc, 401, "INVALID_SIGNATURE",
                            err.message[0] ? err.message : "signature verification failed");
            return;
        }
    }

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
        if (erc == AM_EINVAL || erc == AM_ELIMIT || (erc == AM_OK && res.nalerts == 0))
            glue_send_error(rc, 422, err.code ? err.code : "INVALID_PAYLOAD",
                            err.message[0] ? err.message : "the payload produced no alert");
        else
            glue_send_error(rc, 500, "INTERNAL", "out of memory");
        return;
    }
    if (dry_run) {
        send_dry_run(rc, &res);
        json_decref(payload);
        return;
    }

    store_alert_t *alerts = NULL;
    const char *text = am_arena_strndup(rc->arena, body, blen);
    int rc2 = text ? glue_store_alerts(&alerts, &res, payload, text, rc->arena) : AM_ENOMEM;
    bool split = res.nalerts > 1 || res.alerts[0].raw != payload;
    json_decref(payload);
    if (rc2 != AM_OK) {
        glue_send_error(rc, 500, "INTERNAL", "out of memory");
        return;
    }
    glue_pending_t *p = glue_pending_new(rc, GLUE_PENDING_INGEST);
    if (p == NULL) {
        glue_send_error(rc, 500, "INTERNAL", "out of memory");
        return;
    }
    p->with_list = split;
    int sr = store_ingest(glue_server_store(rc->srv), alerts, res.nalerts, on_ingested, p);
    if (sr == AM_OK)
        return;
    glue_pending_cancel(p);
    if (sr == AM_EINVAL) /* the engine produced an alert the store refuses */
        glue_send_error(rc, 500, "INTERNAL", "the normalized alert was refused by the store");
    else
        glue_send_error(rc, 503, "DATABASE_UNAVAILABLE",
                        "the store is not accepting alerts; nothing was stored, retry later");
}
