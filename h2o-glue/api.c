/*
 * h2o-glue/api.c - the read API: GET /v1/sources (answered from the mapping
 * set), GET /v1/alerts, GET and PATCH /v1/alerts/{uuid}, the deliveries of
 * an alert and the retry of a failed one (queued to the store's reader
 * threads; status and body relayed as the store gives them), and the
 * liveness answer GET /healthz.
 */
#include "glue.h"

#include <stdlib.h>
#include <string.h>

void glue_handle_healthz(glue_reqctx_t *rc, const glue_route_params_t *params)
{
    (void)params;
    static const char ok[] = "{\"status\":\"ok\"}";
    glue_send_json(rc, 200, ok, sizeof(ok) - 1);
}

void glue_handle_sources(glue_reqctx_t *rc, const glue_route_params_t *params)
{
    (void)params;
    rc->set = glue_mappings_acquire();
    json_t *list = json_array();
    size_t n = rc->set ? eng_set_count(rc->set) : 0;
    for (size_t i = 0; list != NULL && i < n; i++) {
        eng_program_info_t info;
        eng_program_info(&info, eng_set_at(rc->set, i));
        char loaded[32];
        am_format_time(loaded, info.loaded_at_us);
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:b}", "name", info.source, "display_name",
                              info.display_name ? info.display_name : info.source, "file",
                              info.file ? info.file : "", "content_sha256", info.content_sha256,
                              "loaded_at", loaded, "signature", (int)info.has_signature);
        if (o == NULL || json_array_append_new(list, o) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    /* list NULL: a mapping's text that is not UTF-8; answered 500 */
    glue_send_value(rc, 200, list ? json_pack("{s:o}", "data", list) : NULL);
}

/* A query waiting for a reader thread. */
typedef struct query_pending {
    glue_pending_t base;
    int http_status;
    char *body; /* heap; the store's JSON answer */
} query_pending_t;

/* Runs on a store reader thread. */
static void on_reply(const store_reply_t *reply, void *ctx)
{
    query_pending_t *p = ctx;
    p->http_status = reply->http_status;
    p->body = reply->body ? am_xstrdup(reply->body) : NULL;
    glue_pending_post(&p->base);
}

/* Loop thread: relays the store's answer. */
static void query_complete(glue_reqctx_t *rc, glue_pending_t *base)
{
    query_pending_t *p = (query_pending_t *)base;
    if (p->body == NULL) {
        glue_send_error(rc, 500, "INTERNAL", "the store gave no answer");
        return;
    }
    glue_send_json(rc, p->http_status, p->body, strlen(p->body));
}

static void query_dispose(glue_pending_t *base)
{
    free(((query_pending_t *)base)->body);
}

static void submit(glue_reqctx_t *rc, const store_query_t *q)
{
    store_t *store = glue_server_store(rc->srv);
    if (store == NULL) {
        glue_send_error(rc, 503, "DATABASE_UNAVAILABLE", "no store is configured");
        return;
    }
    query_pending_t *p = glue_pending_new(rc, sizeof(*p), query_complete, query_dispose);
    if (store_query(store, q, on_reply, p) != AM_OK) {
        glue_pending_cancel(&p->base);
        glue_send_error(rc, 503, "DATABASE_UNAVAILABLE", "the store is not accepting queries");
    }
}

void glue_handle_alert(glue_reqctx_t *rc, const glue_route_params_t *params)
{
    h2o_req_t *req = rc->req;
    const char *uuid = params->uuid.base;
    size_t len = params->uuid.len;
    /* The store checks the uuid (400 INVALID_UUID) and, for PATCH, the body
     * (400 INVALID_JSON, 422 INVALID_BODY, 409 INVALID_TRANSITION). */
    store_query_t q = {0};
    q.uuid = am_arena_strndup(rc->arena, uuid, len > 64 ? 64 : len);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        q.kind = STORE_Q_GET_ALERT;
    } else {
        q.kind = STORE_Q_PATCH_ALERT;
        q.key_id = rc->key_id; /* recorded as the alert's updated_by_key */
        q.body =
            req->entity.base ? am_arena_strndup(rc->arena, req->entity.base, req->entity.len) : "";
    }
    if (q.uuid == NULL || (q.kind == STORE_Q_PATCH_ALERT && q.body == NULL)) {
        glue_send_error(rc, 413, "LIMIT_EXCEEDED",
                        "the request body does not fit in the per-request memory limit");
        return;
    }
    submit(rc, &q);
}

void glue_handle_alerts(glue_reqctx_t *rc, const glue_route_params_t *route_params)
{
    (void)route_params;
    h2o_req_t *req = rc->req;
    glue_qparam_t *params = NULL;
    size_t n = 0;
    if (req->query_at != SIZE_MAX) {
        int prc = glue_query_parse(&params, &n, req->path.base + req->query_at + 1,
                                   req->path.len - req->query_at - 1, rc->arena);
        if (prc != AM_OK) {
            glue_send_error(rc, 400, "INVALID_PARAMETER",
                            prc == AM_ELIMIT ? "too many query parameters"
                                             : "malformed query string (bad %-escape)");
            return;
        }
    }
    store_query_t q;
    char msg[200];
    if (glue_list_query(&q, params, n, msg, sizeof(msg)) != AM_OK) {
        glue_send_error(rc, 400, "INVALID_PARAMETER", msg);
        return;
    }
    submit(rc, &q);
}

/* A uuid of at most 64 bytes in the arena (the store checks its form:
 * 400 INVALID_UUID); NULL when the arena is full. */
static const char *uuid_param(glue_reqctx_t *rc, const glue_route_params_t *params)
{
    size_t len = params->uuid.len;
    return am_arena_strndup(rc->arena, params->uuid.base, len > 64 ? 64 : len);
}

void glue_handle_deliveries(glue_reqctx_t *rc, const glue_route_params_t *params)
{
    store_query_t q = {0};
    q.kind = STORE_Q_LIST_DELIVERIES;
    q.uuid = uuid_param(rc, params);
    if (q.uuid == NULL) {
        glue_send_error(rc, 413, "LIMIT_EXCEEDED", "the per-request memory limit is reached");
        return;
    }
    submit(rc, &q);
}

void glue_handle_delivery_retry(glue_reqctx_t *rc, const glue_route_params_t *params)
{
    store_query_t q = {0};
    q.kind = STORE_Q_RETRY_DELIVERY;
    if (glue_parse_delivery_id(&q.delivery_id, params->delivery_id.base, params->delivery_id.len) !=
        AM_OK) {
        glue_send_error(rc, 400, "INVALID_DELIVERY_ID",
                        "delivery id must be a positive integer (the \"id\" of GET "
                        "/v1/alerts/{uuid}/deliveries)");
        return;
    }
    q.uuid = uuid_param(rc, params);
    if (q.uuid == NULL) {
        glue_send_error(rc, 413, "LIMIT_EXCEEDED", "the per-request memory limit is reached");
        return;
    }
    q.key_id = rc->key_id; /* recorded as the delivery's retried_by_key */
    submit(rc, &q);
}
