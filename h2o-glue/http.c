/* h2o-glue/http.c - JSON bodies, the one function that answers, header
 * lookup, request log. */
#include "glue.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *glue_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

char *glue_error_json(const char *code, const char *message)
{
    json_t *v =
        json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message ? message : "");
    if (v == NULL) /* invalid UTF-8 in the message: fall back to the code alone */
        v = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", "(unprintable)");
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    /* jansson allocates with am_xmalloc; only a code that is not UTF-8
     * (a programming error) gets here */
    return s ? s : am_xstrdup("{\"error\":{\"code\":\"INTERNAL\",\"message\":\"(unprintable)\"}}");
}

/* One outcome's members, as json_dumps(JSON_COMPACT) writes them. */
static void outcome_text(am_buf_t *b, const store_alert_outcome_t *o)
{
    am_buf_puts(b, "{\"alert_uuid\":");
    am_buf_json_string(b, o->uuid, strnlen(o->uuid, sizeof(o->uuid)));
    if (o->is_duplicate)
        am_buf_printf(b,
                      ",\"status\":\"deduplicated\",\"is_duplicate\":true,\"duplicate_count\":%lld",
                      (long long)o->duplicate_count);
    else
        am_buf_puts(b, ",\"status\":\"queued\",\"is_duplicate\":false,\"duplicate_count\":null");
}

char *glue_ingest_text(const store_alert_outcome_t *o, size_t n, bool with_list)
{
    if (n == 0)
        return NULL;
    am_buf_t b;
    am_buf_init(&b, 0);
    am_buf_puts(&b, "{\"data\":");
    outcome_text(&b, &o[0]);
    if (with_list) {
        am_buf_puts(&b, ",\"alerts\":[");
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                am_buf_putc(&b, ',');
            outcome_text(&b, &o[i]);
            am_buf_putc(&b, '}');
        }
        am_buf_putc(&b, ']');
    }
    am_buf_puts(&b, "}}");
    return am_buf_steal(&b); /* unbounded: never NULL */
}

const char *glue_header_find(const h2o_headers_t *headers, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < headers->size; i++) {
        const h2o_header_t *h = &headers->entries[i];
        if (h->name->len == nl && strncasecmp(h->name->base, name, nl) == 0) {
            *len = h->value.len;
            return h->value.base;
        }
    }
    return NULL;
}

/* ---- responses ---------------------------------------------------------- */

/* 503 answers: summarised (glue_log_request, glue_log_flush). */
static am_lograte_t lr_503 = AM_LOGRATE_INIT(0);

uint64_t glue_lograte_due(am_lograte_t *lr, int64_t now_us)
{
    int64_t next = atomic_load_explicit(&lr->next_us, memory_order_relaxed);
    if (now_us < next || atomic_load_explicit(&lr->count, memory_order_relaxed) == 0)
        return 0;
    if (!atomic_compare_exchange_strong(&lr->next_us, &next, now_us + lr->interval_us))
        return 0;
    return am_lograte_take(lr);
}

void glue_log_flush(int64_t now_us)
{
    uint64_t n = glue_lograte_due(&lr_503, now_us);
    if (n > 0)
        am_log(AM_LOG_WARN, "request", "istatus", (int64_t)503, "icount", (int64_t)n, "smessage",
               "503 answers since the last request line with status 503", NULL);
}

void glue_log_request(h2o_req_t *req, glue_route_kind_t route, const char *request_id,
                      const char *source, const char *key, int64_t started_us, int status,
                      const char *alert_uuid, const char *code)
{
    char method[16] = "";
    char path[256] = "";
    size_t ml = req->method.len < sizeof(method) - 1 ? req->method.len : sizeof(method) - 1;
    memcpy(method, req->method.base, ml);
    method[ml] = '\0';
    /* the path without its query string: a query may carry a token */
    size_t pl =
        req->path_normalized.len < sizeof(path) - 1 ? req->path_normalized.len : sizeof(path) - 1;
    if (pl > 0)
        memcpy(path, req->path_normalized.base, pl);
    path[pl] = '\0';
    /* a key pasted into the path itself: its secret never reaches the log */
    store_key_mask(path, pl);
    am_log_level_t level = status >= 500 ? AM_LOG_WARN : AM_LOG_INFO;
    if (status == 200 &&
        (route == GLUE_R_HEALTHZ || route == GLUE_R_READYZ || route == GLUE_R_METRICS))
        level = AM_LOG_DEBUG;
    glue_metrics_request(route, status, code);
    double ms = started_us > 0 ? (double)(am_now_us() - started_us) / 1000.0 : 0.0;
    if (status == 503) {
        /* an outage answers every request 503: one line per second, with the
         * number of 503 answers it stands for (all are in the metrics) */
        uint64_t n = am_lograte_hit(&lr_503, am_now_us());
        if (n > 0)
            am_log(level, "request", "srequest_id", request_id, "smethod", method, "spath", path,
                   "ssource", source, "istatus", (int64_t)status, "scode", code, "dduration_ms", ms,
                   "icount", (int64_t)n, NULL);
        return;
    }
    am_log(level, "request", "srequest_id", request_id, "smethod", method, "spath", path, "ssource",
           source, "skey", key && key[0] ? key : NULL, "salert_uuid", alert_uuid, "istatus",
           (int64_t)status, "scode", code, "dduration_ms", ms, NULL);
}

void glue_respond(glue_reqctx_t *rc, int status, const char *content_type, const char *body,
                  size_t len, const char *code)
{
    assert(!rc->answered && "a request is answered once");
    if (rc->answered)
        return;
    rc->answered = true;
    h2o_req_t *req = rc->req;
    req->res.status = status;
    req->res.reason = glue_reason(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0,
                          "X-Request-Id", rc->request_id, strlen(rc->request_id));
    if (status == 503)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("5"));
    else if (status == 409) /* a duplicate delivery in flight (ingest.c) */
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    req->res.content_length = len;
    /* logged before sending: with a body in one piece h2o may complete and
     * release the request inside h2o_send_inline() */
    glue_log_request(req, rc->route, rc->request_id, rc->source, rc->key, rc->started_us, status,
                     rc->alert_uuid, code);
    /* h2o_send_inline() copies body into the request's pool */
    h2o_send_inline(req, body, len);
}

void glue_send_json(glue_reqctx_t *rc, int status, const char *body, size_t len)
{
    glue_respond(rc, status, "application/json", body, len, NULL);
}

void glue_send_value(glue_reqctx_t *rc, int status, json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (s == NULL) {
        /* the value could not be built (a string that is not UTF-8) */
        rc->alert_uuid = NULL;
        glue_send_error(rc, 500, "INTERNAL", "the answer could not be encoded");
        return;
    }
    glue_send_json(rc, status, s, strlen(s));
    free(s);
}

void glue_send_error(glue_reqctx_t *rc, int status, const char *code, const char *message)
{
    char *s = glue_error_json(code, message);
    glue_respond(rc, status, "application/json", s, strlen(s), code);
    free(s);
}

/* ---- libh2o's own errors as JSON ---------------------------------------- */

/*
 * libh2o answers some requests itself, before any handler runs, with a
 * plain-text body (h2o_send_error_generic() in lib/http1.c): 413 for a body
 * over max_request_entity_size, 400 for a broken chunked encoding, an
 * unknown Transfer-Encoding or a broken Content-Length, 417 for an Expect
 * other than 100-continue. Those answers go through the output filters of
 * the fallback path, so this filter swaps the body for the API's JSON error
 * (and logs and counts it). What libh2o 2.2 closes without any answer
 * (a request line or headers it cannot parse, more than 100 headers, a
 * header block over its maximum, a request timeout) is listed in
 * docs/operations.md.
 */
static const struct {
    int status;
    const char *code;
    const char *message;
} own_errors[] = {
    {400, "BAD_REQUEST",
     "malformed HTTP request (broken chunked encoding, unknown Transfer-Encoding or invalid "
     "Content-Length)"},
    {413, "PAYLOAD_TOO_LARGE", "request body larger than the configured maximum (--max-body)"},
    {417, "EXPECTATION_FAILED", "unsupported Expect header (only 100-continue is)"},
};

typedef struct own_error_ostream {
    h2o_ostream_t super;
    h2o_iovec_t body;
} own_error_ostream_t;

static void own_error_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                           h2o_send_state_t state)
{
    (void)bufs;
    (void)bufcnt;
    own_error_ostream_t *os = (own_error_ostream_t *)self;
    /* h2o_send_inline() delivers its body in one final call */
    h2o_ostream_send_next(self, req, &os->body, 1, state);
}

static void own_error_setup(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    size_t ct_len = 0;
    const char *ct = glue_header_find(&req->res.headers, "content-type", &ct_len);
    bool ours = ct != NULL && ct_len >= 16 && memcmp(ct, "application/json", 16) == 0;
    if (req->res.status >= 400 && !ours) {
        const char *code = "HTTP_ERROR";
        const char *message = "the request was refused by the HTTP layer";
        for (size_t i = 0; i < AM_ARRAY_LEN(own_errors); i++) {
            if (own_errors[i].status == req->res.status) {
                code = own_errors[i].code;
                message = own_errors[i].message;
            }
        }
        char *json = glue_error_json(code, message);
        own_error_ostream_t *os = (own_error_ostream_t *)h2o_add_ostream(req, sizeof(*os), slot);
        os->body = h2o_strdup(&req->pool, json, strlen(json));
        free(json);
        os->super.do_send = own_error_send;
        h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE,
                       H2O_STRLIT("application/json"), 1);
        req->res.content_length = os->body.len;
        char path[256];
        size_t pl = req->path_normalized.len < sizeof(path) - 1 ? req->path_normalized.len
                                                                : sizeof(path) - 1;
        if (pl > 0)
            memcpy(path, req->path_normalized.base, pl);
        path[pl] = '\0';
        glue_route_t r;
        glue_route_match(&r, path, pl);
        glue_log_request(req, r.kind, NULL, NULL, NULL, 0, req->res.status, NULL, code);
    }
    h2o_setup_next_ostream(req, slot);
}

void glue_install_filters(h2o_pathconf_t *path)
{
    h2o_filter_t *f = h2o_create_filter(path, sizeof(*f));
    f->on_setup_ostream = own_error_setup;
}
