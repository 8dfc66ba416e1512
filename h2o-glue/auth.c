/*
 * h2o-glue/auth.c - who may use a route: the scope of each row of the route
 * table is checked here, and only here, before the row's handler runs
 * (glue_auth_dispatch, called by server.c for every routed request).
 *
 *   public            the handler runs (/healthz, /readyz)
 *   metrics           public as --metrics-access says, else like read
 *   read/write/admin  an API key with the scope: Authorization: Bearer or
 *                     X-API-Key (never a cookie, never the query string)
 *   ingest            the mapping's webhook signature, or an ingest key
 *                     that may post to the source (headers; the query
 *                     parameter api_key only where the mapping allows it)
 *
 * Answers: 401 UNAUTHORIZED / KEY_EXPIRED / KEY_REVOKED / INVALID_SIGNATURE
 * / SIGNATURE_SECRET_UNSET, 403 FORBIDDEN, 429 RATE_LIMITED with
 * Retry-After, 503 DATABASE_UNAVAILABLE when the key store cannot say.
 *
 * A key is verified by storage's verifier (store_keys_verify): from its
 * cache at once, or through a callback on the verifier's thread, which
 * posts a pending record back to the request's loop like every other call
 * to another thread. Rate limits count only what was authenticated: the
 * verified key ("amk_xxxxxxxx") and the source that exists.
 *
 * The state below is written at start-up, before the loops run, and only
 * read afterwards.
 */
#include "glue.h"
#include "ratelimit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static struct {
    store_keys_t *keys;
    glue_ratelimit_t *per_key, *per_source;
    double key_rate, key_burst, src_rate, src_burst;
    glue_metrics_access_t metrics;
    const char *unsigned_sources;
} auth;

/* ---- pure helpers --------------------------------------------------------- */

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

bool glue_auth_header_token(const h2o_headers_t *headers, const char **token, size_t *len)
{
    size_t n = 0;
    const char *v = glue_header_find(headers, "x-api-key", &n);
    if (v == NULL) {
        v = glue_header_find(headers, "authorization", &n);
        if (v == NULL || n < 7 || strncasecmp(v, "bearer ", 7) != 0)
            return false;
        v += 7;
        n -= 7;
    }
    trim(&v, &n);
    *token = v;
    *len = n;
    return true;
}

bool glue_auth_list_has(const char *list, const char *name)
{
    if (list == NULL || name == NULL)
        return false;
    size_t nl = strlen(name);
    const char *p = list;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *item = p;
        trim(&item, &n);
        if (n == nl && n > 0 && memcmp(item, name, n) == 0)
            return true;
        p += comma ? (size_t)(comma - p) + 1 : strlen(p);
    }
    return false;
}

/* Whether a credential has the shape of an alertmap key (its fixed tag):
 * only such a value is taken for a key on an ingest route, where headers
 * such as Authorization may carry the mapping's own token instead. */
static bool looks_like_key(const char *t, size_t n)
{
    return n >= 4 && memcmp(t, "amk_", 4) == 0;
}

static unsigned scope_bits(glue_scope_t s)
{
    switch (s) {
    case GLUE_SCOPE_INGEST:
        return STORE_SCOPE_INGEST;
    case GLUE_SCOPE_WRITE:
        return STORE_SCOPE_WRITE;
    case GLUE_SCOPE_ADMIN:
        return STORE_SCOPE_ADMIN;
    case GLUE_SCOPE_READ:
    case GLUE_SCOPE_METRICS:
    case GLUE_SCOPE_PUBLIC:
    case GLUE_SCOPE__COUNT:
        break;
    }
    return STORE_SCOPE_READ;
}

static bool peer_is_loopback(h2o_req_t *req)
{
    if (req->conn == NULL || req->conn->callbacks == NULL ||
        req->conn->callbacks->get_peername == NULL)
        return false;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t n = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (n == 0)
        return false;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

/* ---- answers ----------------------------------------------------------------- */

static void send_401(glue_reqctx_t *rc, const char *code, const char *message)
{
    h2o_req_t *req = rc->req;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                   H2O_STRLIT("Bearer realm=\"alertmap\""));
    glue_send_error(rc, 401, code, message);
}

static void send_key_refused(glue_reqctx_t *rc, const store_key_check_t *c, unsigned bits,
                             const char *source)
{
    char msg[320];
    char scopes[32];
    const char *key = c->prefix[0] ? c->prefix : "the API key";
    switch (c->result) {
    case STORE_KEY_EXPIRED:
        snprintf(msg, sizeof(msg), "API key %s has expired", key);
        break;
    case STORE_KEY_REVOKED:
        snprintf(msg, sizeof(msg), "API key %s has been revoked", key);
        break;
    case STORE_KEY_NO_SCOPE:
        store_scopes_format(scopes, bits);
        snprintf(msg, sizeof(msg), "API key %s does not have the scope '%s' this endpoint needs",
                 key, scopes);
        break;
    case STORE_KEY_NO_SOURCE:
        snprintf(msg, sizeof(msg), "API key %s may not post to source '%.64s'", key,
                 source ? source : "");
        break;
    case STORE_KEY_UNAVAILABLE:
        snprintf(msg, sizeof(msg),
                 "the API key cannot be checked now (the key store is unavailable); retry later");
        break;
    case STORE_KEY_OK:
    case STORE_KEY_INVALID:
    default:
        snprintf(msg, sizeof(msg), "the API key is malformed, unknown or wrong");
        break;
    }
    int status = store_key_http_status(c->result);
    if (status == 401)
        send_401(rc, store_key_result_code(c->result), msg);
    else
        glue_send_error(rc, status, store_key_result_code(c->result), msg);
}

/* Takes a token of key's bucket; answers 429 and returns false when there
 * is none. */
static bool rate_ok(glue_reqctx_t *rc, glue_ratelimit_t *rl, const char *what, const char *key,
                    double rate, double burst)
{
    if (rl == NULL)
        return true;
    int64_t wait = glue_ratelimit_take(rl, key, strlen(key));
    if (wait == 0)
        return true;
    h2o_req_t *req = rc->req;
    char n[24];
    int nl = snprintf(n, sizeof(n), "%lld", (long long)wait);
    h2o_iovec_t v = h2o_strdup(&req->pool, n, (size_t)nl);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, v.base, v.len);
    char msg[256];
    snprintf(msg, sizeof(msg),
             "rate limit of %s '%.64s' exceeded (%g requests/s, burst %g); retry after %lld s",
             what, key, rate, burst, (long long)wait);
    glue_send_error(rc, 429, "RATE_LIMITED", msg);
    return false;
}

/* ---- key checks ------------------------------------------------------------------ */

/* A verification that waits for the key store. */
typedef struct auth_pending {
    glue_pending_t base;
    const glue_route_entry_t *row;
    glue_route_params_t params; /* point into the request's path */
    unsigned bits;
    const char *source; /* the ingest source (borrowed from rc->set), or NULL */
    store_key_check_t check;
} auth_pending_t;

/* The key was checked: answer, or run the handler within the limits. */
static void proceed(glue_reqctx_t *rc, const glue_route_entry_t *row,
                    const glue_route_params_t *params, unsigned bits, const char *source,
                    const store_key_check_t *c)
{
    if (c->prefix[0])
        snprintf(rc->key, sizeof(rc->key), "%s", c->prefix);
    if (c->result != STORE_KEY_OK) {
        send_key_refused(rc, c, bits, source);
        return;
    }
    rc->key_id = c->key_id;
    if (!rate_ok(rc, auth.per_key, "key", rc->key, auth.key_rate, auth.key_burst))
        return;
    if (source != NULL &&
        !rate_ok(rc, auth.per_source, "source", source, auth.src_rate, auth.src_burst))
        return;
    row->handle(rc, params);
}

/* Runs on the verifier's thread. */
static void on_verified(const store_key_check_t *check, void *ctx)
{
    auth_pending_t *p = ctx;
    p->check = *check;
    glue_pending_post(&p->base);
}

/* Loop thread: the verifier's answer. */
static void verified(glue_reqctx_t *rc, glue_pending_t *base)
{
    auth_pending_t *p = (auth_pending_t *)base;
    proceed(rc, p->row, &p->params, p->bits, p->source, &p->check);
}

static void check_key(glue_reqctx_t *rc, const glue_route_entry_t *row,
                      const glue_route_params_t *params, const char *token, size_t len,
                      unsigned bits, const char *source)
{
    if (auth.keys == NULL) {
        glue_send_error(rc, 503, "DATABASE_UNAVAILABLE",
                        "API keys cannot be checked: the key store is not running");
        return;
    }
    auth_pending_t *p = glue_pending_new(rc, sizeof(*p), verified, NULL);
    p->row = row;
    p->params = *params;
    p->bits = bits;
    p->source = source;
    store_key_check_t now;
    if (!store_keys_verify(auth.keys, token, len, bits, source, &now, on_verified, p))
        return; /* verified() answers */
    glue_pending_cancel(&p->base);
    proceed(rc, row, params, bits, source, &now);
}

/* ---- ingest -------------------------------------------------------------------------- */

static const char *header_of(void *ctx, const char *name, size_t *len)
{
    h2o_req_t *req = ctx;
    return glue_header_find(&req->headers, name, len);
}

/* "A", "A or B", "A, B or C": the secret variables of a mapping. */
static void variables_text(char *buf, size_t len, const eng_program_info_t *info)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < info->nsecret_env && used < len; i++) {
        const char *sep = i == 0 ? "" : i + 1 == info->nsecret_env ? " or " : ", ";
        int w = snprintf(buf + used, len - used, "%s%s", sep, info->secret_env[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* The value of ?api_key= (NUL-terminated, in the arena), or NULL. */
static const char *query_key(glue_reqctx_t *rc)
{
    h2o_req_t *req = rc->req;
    if (req->query_at == SIZE_MAX)
        return NULL;
    glue_qparam_t *qp = NULL;
    size_t n = 0;
    if (glue_query_parse(&qp, &n, req->path.base + req->query_at + 1,
                         req->path.len - req->query_at - 1, rc->arena) != AM_OK)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(qp[i].key, "api_key") == 0)
            return qp[i].value;
    return NULL;
}

static void ingest_auth(glue_reqctx_t *rc, const glue_route_entry_t *row,
                        const glue_route_params_t *params)
{
    h2o_req_t *req = rc->req;
    const char *src = params->source_name.base;
    size_t srclen = params->source_name.len;
    rc->source = am_arena_strndup(rc->arena, src, srclen > 64 ? 64 : srclen);
    if (rc->set == NULL)
        rc->set = glue_mappings_acquire();
    const eng_program_t *prog = rc->set ? eng_set_find(rc->set, src, srclen) : NULL;
    const char *token = NULL;
    size_t len = 0;
    bool have = glue_auth_header_token(&req->headers, &token, &len);
    char msg[640];

    if (prog == NULL) {
        /* no mapping: only a key can vouch for the request; the handler
         * answers 404 once the key is good */
        if (!have) {
            send_401(rc, "UNAUTHORIZED",
                     "ingest needs the source's webhook signature or an API key with scope "
                     "'ingest' (Authorization: Bearer amk_... or X-API-Key: amk_...)");
            return;
        }
        check_key(rc, row, params, token, len, STORE_SCOPE_INGEST, NULL);
        return;
    }
    eng_program_info_t info;
    eng_program_info(&info, prog);

    const char *qkey = query_key(rc);
    if (qkey != NULL && !info.query_key) {
        snprintf(msg, sizeof(msg),
                 "source '%s' does not take an API key in the query string (its mapping has no "
                 "auth: {query_key: true}); send it as Authorization: Bearer or X-API-Key",
                 info.source);
        send_401(rc, "UNAUTHORIZED", msg);
        return;
    }
    if (!have && qkey != NULL) {
        token = qkey;
        len = strlen(qkey);
        have = true;
    }

    if (info.has_signature) {
        if (!info.secret_set && !glue_auth_list_has(auth.unsigned_sources, info.source)) {
            char vars[256];
            variables_text(vars, sizeof(vars), &info);
            snprintf(msg, sizeof(msg),
                     "source '%s' refuses every request: its signature secret %s is not set in "
                     "alertmapd's environment (set it, or list the source in "
                     "ALERTMAP_UNSIGNED_SOURCES to accept ingest API keys without a signature)",
                     info.source, vars);
            send_401(rc, "SIGNATURE_SECRET_UNSET", msg);
            return;
        }
        if (info.secret_set) {
            const char *body = req->entity.base ? req->entity.base : "";
            size_t blen = req->entity.base ? req->entity.len : 0;
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
            if (eng_verify_signature(prog, &sr, &secret_set, &err) == AM_OK) {
                /* the signature vouches for the request */
                if (rate_ok(rc, auth.per_source, "source", info.source, auth.src_rate,
                            auth.src_burst))
                    row->handle(rc, params);
                return;
            }
            if (!have || !looks_like_key(token, len)) {
                snprintf(msg, sizeof(msg), "%.512s (or send an API key with scope 'ingest')",
                         err.message[0] ? err.message : "signature verification failed");
                send_401(rc, "INVALID_SIGNATURE", msg);
                return;
            }
        }
    }
    if (!have) {
        snprintf(msg, sizeof(msg),
                 "source '%s' needs an API key with scope 'ingest' (Authorization: Bearer "
                 "amk_... or X-API-Key: amk_...)%s",
                 info.source, info.has_signature ? " or its webhook signature" : "");
        send_401(rc, "UNAUTHORIZED", msg);
        return;
    }
    check_key(rc, row, params, token, len, STORE_SCOPE_INGEST, info.source);
}

/* ---- dispatch ----------------------------------------------------------------------- */

void glue_auth_dispatch(glue_reqctx_t *rc, const glue_route_entry_t *row,
                        const glue_route_params_t *params)
{
    glue_scope_t scope = row->scope;
    if (scope == GLUE_SCOPE_METRICS) {
        if (auth.metrics == GLUE_METRICS_PUBLIC ||
            (auth.metrics == GLUE_METRICS_LOOPBACK && peer_is_loopback(rc->req))) {
            row->handle(rc, params);
            return;
        }
        scope = GLUE_SCOPE_READ;
    }
    if (scope == GLUE_SCOPE_PUBLIC) {
        row->handle(rc, params);
        return;
    }
    if (scope == GLUE_SCOPE_INGEST) {
        ingest_auth(rc, row, params);
        return;
    }
    const char *token;
    size_t len;
    if (!glue_auth_header_token(&rc->req->headers, &token, &len)) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "this endpoint needs an API key with scope '%s' (Authorization: Bearer amk_... "
                 "or X-API-Key: amk_...)",
                 glue_scope_name(scope));
        send_401(rc, "UNAUTHORIZED", msg);
        return;
    }
    check_key(rc, row, params, token, len, scope_bits(scope), NULL);
}

/* ---- lifecycle and start-up logs --------------------------------------------------- */

static glue_ratelimit_t *limiter(double rate, double burst)
{
    if (rate <= 0)
        return NULL;
    glue_ratelimit_options_t o = {.rate = rate, .burst = burst};
    return glue_ratelimit_new(&o);
}

static const char *metrics_name(glue_metrics_access_t m)
{
    return m == GLUE_METRICS_PUBLIC ? "public" : m == GLUE_METRICS_KEY ? "key" : "loopback";
}

void glue_auth_init(const glue_config_t *cfg)
{
    glue_auth_shutdown();
    auth.key_rate = cfg->rate_per_key;
    auth.key_burst = cfg->burst_per_key;
    auth.src_rate = cfg->rate_per_source;
    auth.src_burst = cfg->burst_per_source;
    auth.per_key = limiter(cfg->rate_per_key, cfg->burst_per_key);
    auth.per_source = limiter(cfg->rate_per_source, cfg->burst_per_source);
    auth.metrics = cfg->metrics_access;
    auth.unsigned_sources = cfg->unsigned_sources;
    am_log(AM_LOG_INFO, "auth_policy", "sunsigned_sources",
           cfg->unsigned_sources ? cfg->unsigned_sources : "", "smetrics_access",
           metrics_name(cfg->metrics_access), "drate_per_key", cfg->rate_per_key, "dburst_per_key",
           cfg->burst_per_key, "drate_per_source", cfg->rate_per_source, "dburst_per_source",
           cfg->burst_per_source, "smessage",
           "every route but /healthz and /readyz needs a credential; ingest takes the "
           "mapping's signature or an ingest API key",
           NULL);
}

void glue_auth_set_keys(store_keys_t *keys)
{
    auth.keys = keys;
}

void glue_auth_shutdown(void)
{
    glue_ratelimit_free(auth.per_key);
    glue_ratelimit_free(auth.per_source);
    memset(&auth, 0, sizeof(auth));
}

void glue_auth_check_mappings(const eng_set_t *s)
{
    size_t n = eng_set_count(s);
    for (size_t i = 0; i < n; i++) {
        eng_program_info_t info;
        eng_program_info(&info, eng_set_at(s, i));
        if (!info.has_signature)
            continue;
        bool opted = glue_auth_list_has(auth.unsigned_sources, info.source);
        char vars[256];
        variables_text(vars, sizeof(vars), &info);
        if (!info.secret_set && !opted)
            am_log(AM_LOG_ERROR, "signature_secret_unset", "ssource", info.source, "sfile",
                   info.file, "svariables", vars, "smessage",
                   "no secret variable of this mapping's signature block is set: the source "
                   "refuses every request with 401 SIGNATURE_SECRET_UNSET until one is set or "
                   "the source is listed in ALERTMAP_UNSIGNED_SOURCES",
                   NULL);
        else if (!info.secret_set)
            am_log(AM_LOG_WARN, "signature_opt_out", "ssource", info.source, "svariables", vars,
                   "smessage",
                   "listed in ALERTMAP_UNSIGNED_SOURCES and no signature secret is set: the "
                   "source accepts requests without a signature that carry an ingest API key",
                   NULL);
        else if (opted)
            am_log(AM_LOG_INFO, "signature_opt_out", "ssource", info.source, "svariables", vars,
                   "smessage",
                   "listed in ALERTMAP_UNSIGNED_SOURCES, but its signature secret is set: "
                   "signed requests are verified and ingest API keys work, as for every source",
                   NULL);
    }
    /* opted-out names that are no source: a typo would leave a source closed */
    const char *p = auth.unsigned_sources;
    while (p != NULL && *p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *item = p;
        trim(&item, &len);
        if (len > 0 && eng_set_find(s, item, len) == NULL) {
            char name[72];
            snprintf(name, sizeof(name), "%.*s", (int)(len > 64 ? 64 : len), item);
            am_log(AM_LOG_WARN, "unsigned_source_unknown", "ssource", name, "smessage",
                   "ALERTMAP_UNSIGNED_SOURCES names a source that no mapping defines", NULL);
        }
        p = comma ? comma + 1 : p + strlen(p);
    }
}
