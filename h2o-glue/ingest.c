/*
 * h2o-glue/ingest.c - POST /v1/ingest/{source} and its dry run
 * POST /v1/sources/{source}/test, along the request path of design.md:
 *
 *     body over --max-body      413 PAYLOAD_TOO_LARGE (server.c, before the handler)
 *     credential                401/403/429 (auth.c, before the handler: the
 *                               mapping's signature or an ingest key for
 *                               ingest, an admin key for the dry run)
 *   0 find the program          404 UNKNOWN_SOURCE
 *   2 parse JSON                400 INVALID_JSON, 413 LIMIT_EXCEEDED (JSON values),
 *                               422 INVALID_PAYLOAD (not an object, a number
 *                               PostgreSQL cannot store)
 *   3-5 eng_run                 422 INVALID_PAYLOAD / LIMIT_EXCEEDED
 *     the request's arena full  413 LIMIT_EXCEEDED (copy of the body) or
 *                               422 LIMIT_EXCEEDED (the rows for the store)
 *     a delivery id (the mapping's delivery_id header, else Idempotency-Key):
 *     claimed first (storage/delivery.c): a known one is answered with the
 *     first delivery's recorded answer, one in flight 409 DELIVERY_IN_PROGRESS
 *     (Retry-After: 1), an id over 200 bytes 400 INVALID_DELIVERY_ID
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

/* The request's header name (any case) for the engine: $headers.NAME,
 * verification handshakes. */
static const char *header_of(void *ctx, const char *name, size_t *len)
{
    h2o_req_t *req = ctx;
    return glue_header_find(&req->headers, name, len);
}

/* Replay protection (docs/security.md): the claim names one delivery. */
typedef struct delivery_ref {
    char source[128];
    char key[GLUE_DELIVERY_KEY_MAX + 3]; /* "d:" or "k:" + the sender's id; "" when none */
    char token[33];
    int64_t window_s;
} delivery_ref_t;

static store_deliveries_t *deliveries; /* set once at start-up */

void glue_ingest_set_deliveries(store_deliveries_t *d)
{
    deliveries = d;
}

/* An ingest waiting for the writer. */
typedef struct ingest_pending {
    glue_pending_t base;
    bool with_list;
    delivery_ref_t dl;
    /* filled on the writer thread */
    store_status_t status;
    char message[256]; /* the store's reason when not STORE_OK */
    size_t nalerts;
    store_alert_outcome_t *outcomes; /* heap */
    char *answer;                    /* heap: the 202 body recorded for the delivery */
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

/* Runs on the delivery thread: the answer is recorded (or could not be:
 * the alert is committed all the same, and a replay inside the takeover
 * timeout gets 409, after it the fingerprint dedup). */
static void on_recorded(const store_delivery_result_t *res, void *ctx)
{
    ingest_pending_t *p = ctx;
    if (res->state != STORE_DELIVERY_DONE)
        am_log(AM_LOG_WARN, "delivery_not_recorded", "ssource", p->dl.source, "sstate",
               res->state == STORE_DELIVERY_LOST ? "taken_over" : "unavailable", NULL);
    glue_pending_post(&p->base);
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
    if (p->dl.key[0] != '\0') {
        if (p->nalerts > 0) {
            /* the answer is recorded before it is sent: a replay that sees
             * the row completed gets exactly these bytes */
            json_t *v = glue_ingest_json(p->outcomes, p->nalerts, p->with_list);
            p->answer = v ? json_dumps(v, JSON_COMPACT) : NULL;
            json_decref(v);
            if (p->answer != NULL &&
                store_delivery_complete(deliveries, p->dl.source, p->dl.key, p->dl.token, 202,
                                        p->answer, on_recorded, p) == AM_OK)
                return;
        } else {
            store_delivery_release(deliveries, p->dl.source, p->dl.key, p->dl.token);
        }
    }
    glue_pending_post(&p->base);
}

/* Loop thread: the store's answer to an ingest. */
static void ingest_complete(glue_reqctx_t *rc, glue_pending_t *base)
{
    ingest_pending_t *p = (ingest_pending_t *)base;
    if (p->status == STORE_REJECTED) {
        /* the database refused this payload's data; a retry fails too. Its
         * error text is for the log only, never for the client. */
        if (p->message[0])
            am_log(AM_LOG_WARN, "store_rejected", "srequest_id", rc->request_id, "smessage",
                   p->message, NULL);
        glue_send_error(rc, 422, "INVALID_PAYLOAD",
                        "the database refused the payload's data; nothing was stored");
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
    if (p->answer != NULL)
        glue_send_json(rc, 202, p->answer, strlen(p->answer));
    else
        glue_send_value(rc, 202, glue_ingest_json(p->outcomes, p->nalerts, p->with_list));
}

static void ingest_dispose(glue_pending_t *base)
{
    free(((ingest_pending_t *)base)->outcomes);
    free(((ingest_pending_t *)base)->answer);
}

/* Queues the alerts with the store (dl NULL or with an empty key: no
 * delivery claimed). Answers the request itself when the store refuses. */
static void start_ingest(glue_reqctx_t *rc, const store_alert_t *alerts, size_t n, bool split,
                         const delivery_ref_t *dl)
{
    store_t *store = glue_server_store(rc->srv);
    if (store == NULL) {
        glue_send_error(rc, 503, "DATABASE_UNAVAILABLE", "no store is configured");
        return;
    }
    ingest_pending_t *p = glue_pending_new(rc, sizeof(*p), ingest_complete, ingest_dispose);
    p->with_list = split;
    if (dl != NULL)
        p->dl = *dl;
    int sr = store_ingest(store, alerts, n, on_ingested, p);
    if (sr == AM_OK)
        return;
    if (dl != NULL && dl->key[0] != '\0')
        store_delivery_release(deliveries, dl->source, dl->key, dl->token);
    glue_pending_cancel(&p->base);
    if (sr == AM_EINVAL) /* the engine produced an alert the store refuses */
        glue_send_error(rc, 500, "INTERNAL", "the normalized alert was refused by the store");
    else
        glue_send_error(rc, 503, "DATABASE_UNAVAILABLE",
                        "the store is not accepting alerts; nothing was stored, retry later");
}

/* A delivery claim waiting for the delivery thread; the alerts stay in the
 * request's arena meanwhile. */
typedef struct claim_pending {
    glue_pending_t base;
    const store_alert_t *alerts;
    size_t nalerts;
    bool with_list;
    delivery_ref_t dl;
    /* filled on the delivery thread */
    store_delivery_state_t state;
    int status;
    char *answer; /* heap */
    bool started; /* the ingest was queued (loop thread) */
} claim_pending_t;

static void on_claimed(const store_delivery_result_t *res, void *ctx)
{
    claim_pending_t *p = ctx;
    p->state = res->state;
    p->status = res->status;
    if (res->answer != NULL)
        p->answer = am_xstrdup(res->answer);
    glue_pending_post(&p->base);
}

static void claim_dispose(glue_pending_t *base)
{
    claim_pending_t *p = (claim_pending_t *)base;
    /* the client left before its claim came back: free the claim for its retry */
    if (p->state == STORE_DELIVERY_CLAIMED && !p->started)
        store_delivery_release(deliveries, p->dl.source, p->dl.key, p->dl.token);
    free(p->answer);
}

static void claim_complete(glue_reqctx_t *rc, glue_pending_t *base)
{
    claim_pending_t *p = (claim_pending_t *)base;
    switch (p->state) {
    case STORE_DELIVERY_CLAIMED:
        p->started = true;
        start_ingest(rc, p->alerts, p->nalerts, p->with_list, &p->dl);
        return;
    case STORE_DELIVERY_DONE:
        /* a replay: the first delivery's answer, nothing stored again */
        h2o_add_header_by_str(&rc->req->pool, &rc->req->res.headers,
                              H2O_STRLIT("idempotent-replayed"), 0, "Idempotent-Replayed",
                              H2O_STRLIT("true"));
        glue_send_json(rc, p->status > 0 ? p->status : 202, p->answer ? p->answer : "{}",
                       p->answer ? strlen(p->answer) : 2);
        return;
    case STORE_DELIVERY_IN_FLIGHT:
        glue_send_error(rc, 409, "DELIVERY_IN_PROGRESS",
                        "a request with the same delivery id is being processed; retry later");
        return;
    default:
        glue_send_error(rc, 503, "DATABASE_UNAVAILABLE",
                        "the delivery id could not be checked; nothing was stored, retry later");
        return;
    }
}

/* The delivery key of the request: the mapping's delivery-id header, else
 * an Idempotency-Key header. 0 with dl->key "" when there is none; 400
 * answered (-1) when the id is empty or too long. */
static int delivery_of(glue_reqctx_t *rc, const eng_program_t *prog, delivery_ref_t *dl)
{
    int64_t window = 0;
    const char *hname = eng_program_delivery_header(prog, &window);
    const char *v = NULL, *kind = "d:";
    size_t len = 0;
    if (hname != NULL)
        v = glue_header_find(&rc->req->headers, hname, &len);
    if (v == NULL) {
        hname = "Idempotency-Key";
        kind = "k:";
        v = glue_header_find(&rc->req->headers, hname, &len);
    }
    dl->key[0] = '\0';
    if (v == NULL || deliveries == NULL)
        return 0;
    if (len == 0 || len > GLUE_DELIVERY_KEY_MAX) {
        char msg[160];
        snprintf(msg, sizeof(msg), "header '%s' must be 1 to %d bytes", hname,
                 GLUE_DELIVERY_KEY_MAX);
        glue_send_error(rc, 400, "INVALID_DELIVERY_ID", msg);
        return -1;
    }
    eng_program_info_t info;
    eng_program_info(&info, prog);
    snprintf(dl->source, sizeof(dl->source), "%s", info.source);
    snprintf(dl->key, sizeof(dl->key), "%s%.*s", kind, (int)len, v);
    dl->window_s = window > 0 ? window : glue_server_config(rc->srv)->replay_window_s;
    return 0;
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
    json_t *answer = alerts ? json_pack("{s:{s:o}}", "data", "alerts", alerts) : NULL;
    size_t max = glue_server_config(rc->srv)->max_dry_run_bytes;
    size_t size = answer ? json_dumpb(answer, NULL, 0, JSON_COMPACT) : 0;
    if (size > max) {
        json_decref(answer);
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "the dry-run answer would be %zu bytes (limit max_dry_run_bytes: %zu)", size, max);
        glue_send_error(rc, 422, "LIMIT_EXCEEDED", msg);
        return;
    }
    glue_send_value(rc, 200, answer);
}

/* Keeps the alerts to store (disposition store) at the front of res and
 * returns their number; res->alerts[0] stays the first one when none is. */
static size_t keep_stored(eng_result_t *res)
{
    size_t n = 0;
    for (size_t i = 0; i < res->nalerts; i++) {
        if (res->alerts[i].disposition != ENG_DISP_STORE)
            continue;
        if (n != i) {
            eng_alert_t t = res->alerts[n];
            res->alerts[n] = res->alerts[i];
            res->alerts[i] = t;
        }
        n++;
    }
    if (n > 0)
        res->nalerts = n;
    return n;
}

/* 200: the delivery is acknowledged and nothing is stored (a ping, a
 * resolved or acknowledge notification: the mapping's disposition). */
static void send_ignored(glue_reqctx_t *rc, const eng_alert_t *al)
{
    json_t *d = json_pack("{s:s,s:s,s:s?,s:s?,s:s?}", "status", "ignored", "disposition",
                          eng_disposition_name(al->disposition), "rule", al->disposition_rule,
                          "message", al->disposition_message, "fingerprint",
                          al->disposition == ENG_DISP_RESOLVE ? al->fingerprint : NULL);
    glue_send_value(rc, 200, d ? json_pack("{s:o}", "data", d) : NULL);
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

    if (!dry_run && eng_program_verifies(prog, "POST")) {
        json_t *answer = NULL;
        eng_error_t verr = {0};
        int vr = eng_verification(&answer, prog, "POST", header_of, req, &verr);
        if (vr == 1) {
            glue_send_value(rc, 200, answer);
            return;
        }
        if (vr < 0) {
            glue_send_error(rc, 400, "INVALID_PAYLOAD", verr.message);
            return;
        }
    }

    const glue_config_t *cfg = glue_server_config(rc->srv);
    json_t *payload = NULL;
    eng_error_t perr = {0};
    int prc = eng_json_parse(&payload, body, blen, (size_t)cfg->max_json_values, rc->arena, &perr);
    if (prc != AM_OK) {
        int status = prc == AM_ELIMIT ? 413 : strcmp(perr.code, "INVALID_JSON") == 0 ? 400 : 422;
        glue_send_error(rc, status, perr.code, perr.message);
        return;
    }
    if (!json_is_object(payload)) {
        json_decref(payload);
        glue_send_error(rc, 422, "INVALID_PAYLOAD", "payload must be a JSON object");
        return;
    }

    eng_result_t res = {0};
    eng_error_t err = {0};
    eng_limits_t lim = {.max_alerts = (size_t)cfg->max_alerts,
                        .max_indicators = (size_t)cfg->max_indicators,
                        .max_scan_bytes = cfg->max_scan_bytes};
    eng_input_t in = {.header = header_of, .header_ctx = req, .limits = &lim};
    int erc = eng_run_input(&res, prog, payload, &in, rc->arena, am_now_us(), &err);
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

    if (keep_stored(&res) == 0) {
        json_decref(payload);
        send_ignored(rc, &res.alerts[0]);
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
    delivery_ref_t dl;
    if (delivery_of(rc, prog, &dl) != 0)
        return;
    if (dl.key[0] == '\0') {
        start_ingest(rc, alerts, res.nalerts, split, NULL);
        return;
    }
    claim_pending_t *cp = glue_pending_new(rc, sizeof(*cp), claim_complete, claim_dispose);
    cp->alerts = alerts;
    cp->nalerts = res.nalerts;
    cp->with_list = split;
    cp->dl = dl;
    if (store_delivery_claim(deliveries, cp->dl.token, dl.source, dl.key, dl.window_s,
                             GLUE_DELIVERY_TAKEOVER_S, on_claimed, cp) != AM_OK) {
        glue_pending_cancel(&cp->base);
        glue_send_error(rc, 503, "DATABASE_UNAVAILABLE",
                        "the delivery id could not be checked; nothing was stored, retry later");
    }
}

void glue_handle_ingest(glue_reqctx_t *rc, const glue_route_params_t *params)
{
    ingest(rc, params, false);
}

void glue_handle_source_test(glue_reqctx_t *rc, const glue_route_params_t *params)
{
    ingest(rc, params, true);
}

void glue_handle_verification(glue_reqctx_t *rc, const glue_route_params_t *params)
{
    h2o_req_t *req = rc->req;
    const char *src = params->source_name.base;
    size_t srclen = params->source_name.len;
    rc->source = source_label(rc, src, srclen);
    if (rc->set == NULL) /* auth.c may have taken it */
        rc->set = glue_mappings_acquire();
    const eng_program_t *prog = rc->set ? eng_set_find(rc->set, src, srclen) : NULL;
    if (prog == NULL || !eng_program_verifies(prog, "GET")) {
        /* as for any method a route does not serve */
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, "POST", 4);
        glue_send_error(rc, 405, "METHOD_NOT_ALLOWED",
                        "method not allowed; allowed: POST (GET only for a source that declares "
                        "a verification handshake)");
        return;
    }
    /* the handshake carries the sender's credential as an ingest does */
    eng_sig_request_t sr = {
        .header = header_of, .header_ctx = req, .body = "", .now_s = am_now_us() / 1000000};
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
    json_t *answer = NULL;
    int vr = eng_verification(&answer, prog, "GET", header_of, req, &err);
    if (vr == 1) {
        glue_send_value(rc, 200, answer);
        return;
    }
    if (vr < 0) {
        glue_send_error(rc, 400, "INVALID_PAYLOAD", err.message);
        return;
    }
    glue_send_error(rc, 400, "INVALID_PAYLOAD",
                    "a verification request of this source needs its challenge header");
}
