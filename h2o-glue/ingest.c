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
 * Steps 2-5 run on the request's loop for a body up to --engine-inline-max
 * and on an engine thread (pool.c) for a larger one and for every dry run;
 * both give the same answer. With every engine thread busy and
 * --engine-queue requests waiting: 503 ENGINE_BUSY (Retry-After).
 *
 * Everything of the request lives in its arena (an engine job's own arena,
 * handed to the request when the job is done); the payload is decref'd
 * before the engine step returns (store_ingest copies what it keeps).
 */
#include "glue.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* Whether json_dumps writes s as it is, between quotes: printable ASCII
 * without a quote or a backslash. */
static bool plain_text(const char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\')
            return false;
    return true;
}

/* optional_fields() when every value set is plain_text(): the same bytes,
 * written directly. False (nothing written) for any other value. */
static bool plain_fields(const char **out, const eng_alert_t *al, am_arena_t *a)
{
    size_t len = 2;
    for (int f = ENG_F_SRC_IP; f < ENG_F__COUNT; f++) {
        if (al->field[f] == NULL)
            continue;
        if (!plain_text(al->field[f]))
            return false;
        len += strlen(eng_field_name((eng_field_t)f)) + strlen(al->field[f]) + 6;
    }
    char *o = am_arena_alloc(a, len + 1);
    if (o == NULL)
        return true; /* *out NULL: the arena's cap */
    *out = o;
    const char *sep = "{\"";
    for (int f = ENG_F_SRC_IP; f < ENG_F__COUNT; f++) {
        if (al->field[f] == NULL)
            continue;
        const char *parts[] = {sep, eng_field_name((eng_field_t)f), "\":\"", al->field[f], "\""};
        for (size_t i = 0; i < AM_ARRAY_LEN(parts); i++) {
            size_t n = strlen(parts[i]);
            memcpy(o, parts[i], n);
            o += n;
        }
        sep = ",\"";
    }
    *o++ = '}';
    *o = '\0';
    return true;
}

/* {"src_ip":…, …} of the optional fields that are set, or NULL when none. */
static int optional_fields(const char **out, const eng_alert_t *al, am_arena_t *a)
{
    *out = NULL;
    bool any = false;
    for (int f = ENG_F_SRC_IP; f < ENG_F__COUNT && !any; f++)
        any = al->field[f] != NULL;
    if (!any)
        return AM_OK;
    if (plain_fields(out, al, a))
        return *out ? AM_OK : AM_ELIMIT;
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
            p->answer = glue_ingest_text(p->outcomes, p->nalerts, p->with_list);
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
    if (p->answer == NULL)
        p->answer = glue_ingest_text(p->outcomes, p->nalerts, p->with_list);
    glue_send_json(rc, 202, p->answer, strlen(p->answer));
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

/* ---- the engine step: parse, normalize, build the rows ------------------ */

/* What the engine step decided: an answer (status set) or rows to store. */
typedef struct engine_outcome {
    int status;       /* 0: store the rows below */
    const char *code; /* the error code; NULL: body is the answer */
    char message[640];
    char *body; /* heap: a 200 body (dry run, ignored delivery) */
    store_alert_t *alerts;
    size_t nalerts;
    bool split;
} engine_outcome_t;

/* What the engine step reads; the caller keeps all of it for the call. */
typedef struct engine_input {
    const eng_program_t *prog;
    const char *body;
    size_t blen;
    bool body_in_arena; /* body is a NUL-terminated copy in the arena of the call */
    eng_header_fn header;
    void *header_ctx;
    size_t max_json_values;
    eng_limits_t lim;
    size_t max_dry_run_bytes;
    bool dry_run;
} engine_input_t;

static void outcome_error(engine_outcome_t *o, int status, const char *code, const char *msg)
{
    o->status = status;
    o->code = code;
    snprintf(o->message, sizeof(o->message), "%s", msg);
}

/* The text of v (stolen) as the answer; v NULL, or a value that cannot be
 * encoded: 500 INTERNAL, as glue_send_value() answers. */
static void outcome_value(engine_outcome_t *o, int status, json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (s == NULL) {
        outcome_error(o, 500, "INTERNAL", "the answer could not be encoded");
        return;
    }
    o->status = status;
    o->code = NULL;
    o->body = s;
}

static void dry_run_answer(engine_outcome_t *o, const eng_result_t *res, size_t max)
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
    char *s = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
    json_decref(answer);
    if (s == NULL) {
        outcome_error(o, 500, "INTERNAL", "the answer could not be encoded");
        return;
    }
    size_t size = strlen(s);
    if (size > max) {
        free(s);
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "the dry-run answer would be %zu bytes (limit max_dry_run_bytes: %zu)", size, max);
        outcome_error(o, 422, "LIMIT_EXCEEDED", msg);
        return;
    }
    o->status = 200;
    o->body = s;
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
static void ignored_answer(engine_outcome_t *o, const eng_alert_t *al)
{
    json_t *d = json_pack("{s:s,s:s,s:s?,s:s?,s:s?}", "status", "ignored", "disposition",
                          eng_disposition_name(al->disposition), "rule", al->disposition_rule,
                          "message", al->disposition_message, "fingerprint",
                          al->disposition == ENG_DISP_RESOLVE ? al->fingerprint : NULL);
    outcome_value(o, 200, d ? json_pack("{s:o}", "data", d) : NULL);
}

/* An engine failure: its own code (INVALID_PAYLOAD, LIMIT_EXCEEDED, ...)
 * with 422, and 500 only for a failure the engine calls INTERNAL. */
static void engine_error(engine_outcome_t *o, int erc, const eng_error_t *err)
{
    const char *code = err->code;
    if (code == NULL)
        code = erc == AM_ELIMIT ? "LIMIT_EXCEEDED" : erc == AM_OK ? "INVALID_PAYLOAD" : "INTERNAL";
    const char *msg = err->message[0] ? err->message
                      : erc == AM_OK  ? "the payload produced no alert"
                                      : "normalization failed";
    outcome_error(o, strcmp(code, "INTERNAL") == 0 ? 500 : 422, code, msg);
}

/*
 * Steps 2-5 of the request path: parse the body, run the program, and build
 * the answer (dry run, ignored delivery, an error) or the rows to store, in
 * arena a. Touches no request and no loop: it runs on the loop for a small
 * body and on an engine thread for a large one, with the same outcome.
 */
static void run_engine(engine_outcome_t *o, const engine_input_t *in, am_arena_t *a)
{
    json_t *payload = NULL;
    eng_error_t perr = {0};
    int prc = eng_json_parse(&payload, in->body, in->blen, in->max_json_values, a, &perr);
    if (prc != AM_OK) {
        int status = prc == AM_ELIMIT ? 413 : strcmp(perr.code, "INVALID_JSON") == 0 ? 400 : 422;
        outcome_error(o, status, perr.code, perr.message);
        return;
    }
    if (!json_is_object(payload)) {
        json_decref(payload);
        outcome_error(o, 422, "INVALID_PAYLOAD", "payload must be a JSON object");
        return;
    }

    eng_result_t res = {0};
    eng_error_t err = {0};
    eng_input_t ein = {.header = in->header, .header_ctx = in->header_ctx, .limits = &in->lim};
    int erc = eng_run_input(&res, in->prog, payload, &ein, a, am_now_us(), &err);
    if (erc != AM_OK || res.nalerts == 0) {
        json_decref(payload);
        engine_error(o, erc, &err);
        return;
    }
    if (in->dry_run) {
        dry_run_answer(o, &res, in->max_dry_run_bytes);
        json_decref(payload);
        return;
    }

    if (keep_stored(&res) == 0) {
        json_decref(payload);
        ignored_answer(o, &res.alerts[0]);
        return;
    }

    /* The rows reference the arena copy of the body: the store copies them. */
    const char *text = in->body_in_arena ? in->body : am_arena_strndup(a, in->body, in->blen);
    if (text == NULL) {
        json_decref(payload);
        outcome_error(o, 413, "LIMIT_EXCEEDED",
                      "the request body does not fit in the per-request memory limit");
        return;
    }
    store_alert_t *alerts = NULL;
    int rc2 = glue_store_alerts(&alerts, &res, payload, text, a);
    bool split = res.nalerts > 1 || res.alerts[0].raw != payload;
    json_decref(payload);
    if (rc2 != AM_OK) {
        outcome_error(o, 422, "LIMIT_EXCEEDED",
                      "the normalized alerts do not fit in the per-request memory limit");
        return;
    }
    o->alerts = alerts;
    o->nalerts = res.nalerts;
    o->split = split;
}

/* Loop thread, step 6 on: answers the outcome, or claims the delivery id
 * and queues the rows with the store. */
static void finish(glue_reqctx_t *rc, const eng_program_t *prog, const engine_outcome_t *o)
{
    if (o->status != 0) {
        if (o->code != NULL)
            glue_send_error(rc, o->status, o->code, o->message);
        else
            glue_send_json(rc, o->status, o->body, strlen(o->body));
        return;
    }
    delivery_ref_t dl;
    if (delivery_of(rc, prog, &dl) != 0)
        return;
    if (dl.key[0] == '\0') {
        start_ingest(rc, o->alerts, o->nalerts, o->split, NULL);
        return;
    }
    claim_pending_t *cp = glue_pending_new(rc, sizeof(*cp), claim_complete, claim_dispose);
    cp->alerts = o->alerts;
    cp->nalerts = o->nalerts;
    cp->with_list = o->split;
    cp->dl = dl;
    if (store_delivery_claim(deliveries, cp->dl.token, dl.source, dl.key, dl.window_s,
                             GLUE_DELIVERY_TAKEOVER_S, on_claimed, cp) != AM_OK) {
        glue_pending_cancel(&cp->base);
        glue_send_error(rc, 503, "DATABASE_UNAVAILABLE",
                        "the delivery id could not be checked; nothing was stored, retry later");
    }
}

/* ---- the engine step on the pool ----------------------------------------- */

/*
 * A request whose engine step runs on a pool thread (pool.c). The job owns
 * everything that thread reads: a copy of the body and of the headers in
 * its own arena, and a reference to the mapping set (a reload meanwhile
 * does not free the program). The request itself may go away while the job
 * runs (the client closed the connection): its pool's dispose then detaches
 * the record (rc NULL, server.c), and the job hook below marks the job
 * cancelled so that a job still queued is skipped; the loop drops the
 * answer and frees the record when the thread posts it back. When the
 * request is still there, the job's arena passes to the hook (the rows of
 * the store live in it) and is freed with the request.
 *
 * An ingest without a delivery id goes on to the store from the engine
 * thread as well (store_ingest copies and checks every row: 0.3 s for the
 * 400 x 900 body, which would otherwise freeze the loop); the writer then
 * posts the record as it posts an ingest_pending_t (it is one). Such a job
 * keeps the request deadline from the moment it is handed over. An ingest
 * with a delivery id comes back to the loop to claim it first.
 */
typedef struct job_header {
    const char *name, *value;
    size_t nlen, vlen;
} job_header_t;

typedef struct engine_job engine_job_t;

/* In the request's pool: frees the job's arena with the request, or marks
 * the job cancelled when the request goes first. Loop thread only. */
typedef struct job_hook {
    engine_job_t *job; /* NULL once the job completed or was freed (job->hook links back) */
    am_arena_t *arena; /* the job's arena, once the job completed */
} job_hook_t;

struct engine_job {
    ingest_pending_t ip; /* first: the record, also when it waits for the writer */
    glue_pool_item_t item;
    eng_set_t *set;
    am_arena_t *arena;
    char *heap_body; /* the body, when the arena could not hold it */
    job_header_t *headers;
    size_t nheaders;
    engine_input_t in;
    char request_id[40];
    atomic_bool cancelled; /* the request is gone: a job not yet started is skipped */
    job_hook_t *hook;      /* loop thread; NULL once the request's pool released it */
    engine_outcome_t out;  /* filled on the pool thread */
    store_t *store;        /* set: the pool thread queues the rows itself */
    bool stored;           /* they were queued: ip holds the store's answer */
    int store_rc;          /* store_ingest refused them */
};

/* Whether the request names a delivery id (delivery_of() claims it). */
static bool has_delivery_id(glue_reqctx_t *rc, const eng_program_t *prog)
{
    if (deliveries == NULL)
        return false;
    int64_t window = 0;
    size_t len = 0;
    const char *hname = eng_program_delivery_header(prog, &window);
    if (hname != NULL && glue_header_find(&rc->req->headers, hname, &len) != NULL)
        return true;
    return glue_header_find(&rc->req->headers, "Idempotency-Key", &len) != NULL;
}

static const char *job_header_of(void *ctx, const char *name, size_t *len)
{
    const engine_job_t *j = ctx;
    size_t nl = strlen(name);
    for (size_t i = 0; i < j->nheaders; i++) {
        if (j->headers[i].nlen == nl && strncasecmp(j->headers[i].name, name, nl) == 0) {
            *len = j->headers[i].vlen;
            return j->headers[i].value;
        }
    }
    return NULL;
}

static void hook_dispose(void *ptr)
{
    job_hook_t *h = ptr;
    if (h->job != NULL) {
        am_log(AM_LOG_DEBUG, "engine_detached", "srequest_id", h->job->request_id, "smessage",
               "the client left while its request was with the engine pool", NULL);
        atomic_store_explicit(&h->job->cancelled, true, memory_order_relaxed);
        h->job->hook = NULL;
    }
    am_arena_free(h->arena);
}

/* Pool thread. */
static void job_run(glue_pool_item_t *it)
{
    engine_job_t *j = (engine_job_t *)((char *)it - offsetof(engine_job_t, item));
    if (atomic_load_explicit(&j->cancelled, memory_order_relaxed)) {
        am_log(AM_LOG_DEBUG, "engine_skipped", "srequest_id", j->request_id, "smessage",
               "the client left before its request reached an engine thread", NULL);
    } else {
        am_log(AM_LOG_DEBUG, "engine_offloaded", "srequest_id", j->request_id, "ibytes",
               (int64_t)j->in.blen, NULL);
        run_engine(&j->out, &j->in, j->arena);
        if (j->store != NULL && j->out.status == 0 &&
            !atomic_load_explicit(&j->cancelled, memory_order_relaxed)) {
            j->ip.with_list = j->out.split;
            j->stored = true;
            int sr = store_ingest(j->store, j->out.alerts, j->out.nalerts, on_ingested, &j->ip);
            if (sr == AM_OK)
                return; /* the writer posts j; it may be gone already */
            j->stored = false;
            j->store_rc = sr;
        }
    }
    glue_pending_post(&j->ip.base); /* the loop owns j from here */
}

/* Loop thread: the engine step is done and the request still there. */
static void job_complete(glue_reqctx_t *rc, glue_pending_t *base)
{
    engine_job_t *j = (engine_job_t *)base;
    j->hook->job = NULL;
    j->hook->arena = j->arena;
    j->hook = NULL;
    j->arena = NULL;
    if (j->stored) {
        ingest_complete(rc, &j->ip.base);
    } else if (j->store_rc == AM_EINVAL) { /* as start_ingest answers */
        glue_send_error(rc, 500, "INTERNAL", "the normalized alert was refused by the store");
    } else if (j->store_rc != AM_OK) {
        glue_send_error(rc, 503, "DATABASE_UNAVAILABLE",
                        "the store is not accepting alerts; nothing was stored, retry later");
    } else {
        finish(rc, j->in.prog, &j->out);
    }
}

static void job_dispose(glue_pending_t *base)
{
    engine_job_t *j = (engine_job_t *)base;
    if (j->hook != NULL) /* the request deadline answered it; the request is still there */
        j->hook->job = NULL;
    ingest_dispose(base);
    free(j->out.body);
    free(j->heap_body);
    am_arena_free(j->arena);
    eng_set_unref(j->set);
}

/* Hands the engine step of rc to the pool. Returns false when there is no
 * pool after all (the caller runs it inline); true when the request is
 * answered, now (503 ENGINE_BUSY) or later. */
static bool offload(glue_reqctx_t *rc, const engine_input_t *in)
{
    h2o_req_t *req = rc->req;
    engine_job_t *j = glue_pending_new(rc, sizeof(*j), job_complete, job_dispose);
    if (!in->dry_run && !has_delivery_id(rc, in->prog))
        j->store = glue_server_store(rc->srv);
    /* the request deadline is for the database: a job that comes back to
     * the loop has a new record for it, and engine work is bounded by the
     * per-request limits */
    if (j->store == NULL)
        h2o_timeout_unlink(&j->ip.base.deadline);
    j->arena = am_arena_new(16384, 0);
    j->set = eng_set_ref(rc->set);
    j->in = *in;
    j->in.header = job_header_of;
    j->in.header_ctx = j;
    memcpy(j->request_id, rc->request_id, sizeof(j->request_id));
    j->item.run = job_run;
    j->headers =
        am_arena_calloc(j->arena, req->headers.size ? req->headers.size : 1, sizeof(*j->headers));
    for (size_t i = 0; j->headers != NULL && i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        job_header_t *c = &j->headers[j->nheaders++];
        c->name = am_arena_strndup(j->arena, h->name->base, h->name->len);
        c->value = am_arena_strndup(j->arena, h->value.base, h->value.len);
        c->nlen = h->name->len;
        c->vlen = h->value.len;
        if (c->name == NULL || c->value == NULL)
            j->headers = NULL;
    }
    char *body = am_arena_strndup(j->arena, in->body, in->blen);
    if (body == NULL) /* over the arena's cap: the engine step answers it, as inline */
        body = j->heap_body = am_xstrndup(in->body, in->blen);
    j->in.body = body;
    j->in.body_in_arena = j->heap_body == NULL;
    if (j->headers == NULL) {
        glue_pending_cancel(&j->ip.base);
        glue_send_error(rc, 413, "LIMIT_EXCEEDED",
                        "the request headers do not fit in the per-request memory limit");
        return true;
    }
    job_hook_t *hook = h2o_mem_alloc_shared(&req->pool, sizeof(*hook), hook_dispose);
    hook->job = j;
    hook->arena = NULL;
    j->hook = hook;
    int64_t blen = (int64_t)in->blen;
    int sr = glue_pool_submit(&j->item);
    if (sr == AM_OK) { /* j may be running already: only the copies above are used */
        am_log(AM_LOG_DEBUG, "engine_queued", "srequest_id", rc->request_id, "ibytes", blen, NULL);
        return true;
    }
    hook->job = NULL;
    glue_pending_cancel(&j->ip.base);
    if (sr != AM_ELIMIT)
        return false;
    glue_send_error(rc, 503, "ENGINE_BUSY",
                    "every engine thread is busy and the engine queue is full; retry later");
    return true;
}

/* The part of the source name we print: bounded, as it comes from the URL. */
static const char *source_label(glue_reqctx_t *rc, const char *src, size_t len)
{
    return am_arena_strndup(rc->arena, src, len > 64 ? 64 : len);
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
    engine_input_t in = {.prog = prog,
                         .body = body,
                         .blen = blen,
                         .header = header_of,
                         .header_ctx = req,
                         .max_json_values = (size_t)cfg->max_json_values,
                         .lim = {.max_alerts = (size_t)cfg->max_alerts,
                                 .max_indicators = (size_t)cfg->max_indicators,
                                 .max_scan_bytes = cfg->max_scan_bytes},
                         .max_dry_run_bytes = cfg->max_dry_run_bytes,
                         .dry_run = dry_run};
    /* a large body, and every dry run (an admin's test may be as large as
     * it likes), leave the loop to its other connections */
    if ((dry_run || blen > glue_pool_inline_max(cfg)) && glue_pool_running() && rc->worker &&
        offload(rc, &in))
        return;
    engine_outcome_t o = {0};
    run_engine(&o, &in, rc->arena);
    finish(rc, prog, &o);
    free(o.body);
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
