/*
 * h2o-glue/api.c - the read API: GET /v1/sources (answered from the mapping
 * set), GET /v1/alerts, GET and PATCH /v1/alerts/{uuid} (queued to the
 * store's reader threads; status and body relayed as the store gives them).
 */
#include "glue.h"

#include <stdlib.h>
#include <string.h>

void glue_handle_sources(glue_reqctx_t *rc)
{
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
    if (list == NULL) {
        glue_send_error(rc, 500, "INTERNAL", "out of memory");
        return;
    }
    glue_log_request(rc, 200, NULL, NULL);
    glue_send_value(rc, 200, json_pack("{s:o}", "data", list));
}

/* Runs on a store reader thread. */
static void on_reply(const store_reply_t *reply, void *ctx)
{
    glue_pending_t *p = ctx;
    p->http_status = reply->http_status;
    p->body = reply->body ? strdup(reply->body) : NULL;
    glue_pending_post(p);
}

static void submit(glue_reqctx_t *rc, const store_query_t *q)
{
    glue_pending_t *p = glue_pending_new(rc, GLUE_PENDING_QUERY);
    if (p == NULL) {
        glue_send_error(rc, 500, "INTERNAL", "out of memory");
        return;
    }
    if (store_query(glue_server_store(rc->srv), q, on_reply, p) != AM_OK) {
        glue_pending_cancel(p);
        glue_send_error(rc, 503, "DATABASE_UNAVAILABLE", "the store is not accepting queries");
    }
}

void glue_handle_alert(glue_reqctx_t *rc, const char *uuid, size_t len)
{
    h2o_req_t *req = rc->req;
    /* The store checks the uuid (400 INVALID_UUID) and, for PATCH, the body
     * (400 INVALID_JSON, 422 INVALID_BODY, 409 INVALID_TRANSITION). */
    store_query_t q = {0};
    q.uuid = am_arena_strndup(rc->arena, uuid, len > 64 ? 64 : len);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        q.kind = STORE_Q_GET_ALERT;
    } else {
        q.kind = STORE_Q_PATCH_ALERT;
        q.body =
            req->entity.base ? am_arena_strndup(rc->arena, req->entity.base, req->entity.len) : "";
    }
    if (q.uuid == NULL || (q.kind == STORE_Q_PATCH_ALERT && q.body == NULL)) {
        glue_send_error(rc, 500, "INTERNAL", "out of memory");
        return;
    }
    submit(rc, &q);
}

void glue_handle_alerts(glue_reqctx_t *rc)
{
    h2o_req_t *req = rc->req;
    glue_qparam_t *params = NULL;
    size_t n = 0;
    if (req->query_at != SIZE_MAX) {
        int prc = glue_query_parse(&params, &n, req->path.base + req->query_at + 1,
                                   req->path.len - req->query_at - 1, rc->arena);
        if (prc == AM_ENOMEM) {
            glue_send_error(rc, 500, "INTERNAL", "out of memory");
            return;
        }
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
