/*
 * h2o-glue/enrich_api.c - POST /v1/enrichments: enriches one indicator on
 * demand (docs/enrichment.md, "On-demand enrichment"). The handler checks
 * the body on the loop (400 INVALID_JSON, 422 INVALID_BODY / INVALID_TYPE /
 * INVALID_VALUE, the value's canonical form as ingest stores it) and queues
 * the lookup to the worker's on-demand thread (worker.h); the answer comes
 * back through a pending record, like the store's. A full queue is 503
 * QUEUE_FULL with Retry-After, no on-demand thread 503
 * ENRICHMENT_UNAVAILABLE; the request deadline bounds the wait.
 */
#include "glue.h"

#include "worker.h"

#include <stdlib.h>
#include <string.h>

#define MAX_PROVIDERS 32

static wk_t *g_worker;

void glue_enrich_set_worker(wk_t *w)
{
    g_worker = w;
}

typedef struct enrich_pending {
    glue_pending_t base;
    int status;
    const char *code;
    char *body;
} enrich_pending_t;

/* On-demand thread: keeps the answer and hands the record to the loop. */
static void on_answer(void *ctx, wk_ondemand_answer_t *a)
{
    enrich_pending_t *p = ctx;
    p->status = a->status;
    p->code = a->code;
    p->body = a->body;
    glue_pending_post(&p->base);
}

static void enrich_complete(glue_reqctx_t *rc, glue_pending_t *base)
{
    enrich_pending_t *p = (enrich_pending_t *)base;
    if (p->body == NULL)
        glue_send_error(rc, 500, "INTERNAL", "the worker gave no answer");
    else if (p->code == NULL)
        glue_send_json(rc, p->status, p->body, strlen(p->body));
    else
        glue_send_error(rc, p->status, p->code, p->body);
}

static void enrich_dispose(glue_pending_t *base)
{
    free(((enrich_pending_t *)base)->body);
}

void glue_handle_enrichments(glue_reqctx_t *rc, const glue_route_params_t *params)
{
    (void)params;
    h2o_req_t *req = rc->req;
    json_error_t jerr;
    json_t *doc = json_loadb(req->entity.base ? req->entity.base : "", req->entity.len,
                             JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        glue_send_error(rc, 400, "INVALID_JSON", "the body is not JSON");
        return;
    }
    const char *type = json_string_value(json_object_get(doc, "type"));
    json_t *jv = json_object_get(doc, "value");
    json_t *jp = json_object_get(doc, "providers");
    json_t *jr = json_object_get(doc, "refresh");
    const char *bad = NULL;
    const char *key;
    json_t *val;
    json_object_foreach(doc, key, val)
    {
        if (strcmp(key, "type") != 0 && strcmp(key, "value") != 0 &&
            strcmp(key, "providers") != 0 && strcmp(key, "refresh") != 0)
            bad = "unknown member (type, value, providers, refresh)";
    }
    if (!json_is_object(doc))
        bad = "the body must be an object {\"type\":…,\"value\":…}";
    else if (type == NULL)
        bad = "\"type\" must be a string";
    else if (!json_is_string(jv) || json_string_length(jv) == 0)
        bad = "\"value\" must be a non-empty string";
    else if (jp != NULL && (!json_is_array(jp) || json_array_size(jp) > MAX_PROVIDERS))
        bad = "\"providers\" must be an array of at most 32 provider names";
    else if (jr != NULL && !json_is_boolean(jr))
        bad = "\"refresh\" must be true or false";
    const char *names[MAX_PROVIDERS];
    size_t np = 0;
    for (size_t i = 0; bad == NULL && i < json_array_size(jp); i++) {
        names[np] = json_string_value(json_array_get(jp, i));
        if (names[np] == NULL)
            bad = "\"providers\" must hold provider names (strings)";
        np++;
    }
    if (bad != NULL) {
        glue_send_error(rc, 422, "INVALID_BODY", bad);
        json_decref(doc);
        return;
    }
    eng_ioc_type_t t;
    if (eng_ioc_type_parse(&t, type, strlen(type)) != 0) {
        glue_send_error(rc, 422, "INVALID_TYPE",
                        "\"type\" is not an indicator type (ip, domain, url, email, hash_md5, "
                        "hash_sha1, hash_sha256, account)");
        json_decref(doc);
        return;
    }
    const char *value =
        eng_ioc_canonical(t, json_string_value(jv), json_string_length(jv), false, rc->arena);
    if (value == NULL) {
        glue_send_error(rc, 422, "INVALID_VALUE", "\"value\" is not a valid value of its type");
        json_decref(doc);
        return;
    }
    if (g_worker == NULL) {
        glue_send_error(rc, 503, "ENRICHMENT_UNAVAILABLE",
                        "this process runs no enrichment worker");
        json_decref(doc);
        return;
    }
    const glue_config_t *cfg = glue_server_config(rc->srv);
    int64_t deadline_s = cfg && cfg->deadline_s > 0 ? cfg->deadline_s : GLUE_DEFAULT_DEADLINE_S;
    wk_ondemand_request_t q = {.type = eng_ioc_type_name(t),
                               .value = value,
                               .providers = names,
                               .nproviders = np,
                               .refresh = json_is_true(jr),
                               .deadline_us = rc->started_us + deadline_s * 1000000};
    enrich_pending_t *p = glue_pending_new(rc, sizeof(*p), enrich_complete, enrich_dispose);
    int src = wk_ondemand_submit(g_worker, &q, on_answer, p);
    json_decref(doc);
    if (src != AM_OK) {
        glue_pending_cancel(&p->base);
        if (src == AM_ELIMIT)
            glue_send_error(rc, 503, "QUEUE_FULL",
                            "too many on-demand enrichments are waiting; retry later");
        else
            glue_send_error(rc, 503, "ENRICHMENT_UNAVAILABLE",
                            "the enrichment worker is not accepting lookups");
    }
}
