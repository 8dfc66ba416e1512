/*
 * h2o-glue/route.c - the route table, path parameters, UUIDs and query
 * strings. Pure (the Allow strings are built once, under pthread_once).
 *
 * The table is the one list of what alertmapd serves: the server registers
 * an h2o path per distinct prefix of it (server.c), the handler bound to a
 * prefix finds its row here, the 405 Allow header is derived from it, and
 * each row names the scope a credential needs for it (enforced by
 * glue_auth_dispatch in auth.c before the row's handler runs).
 */
#include "glue.h"

#include <ctype.h>
#include <pthread.h>
#include <string.h>

static const glue_route_entry_t routes[] = {
    {GLUE_R_HEALTHZ, "GET", "/healthz", GLUE_SCOPE_PUBLIC, glue_handle_healthz},
    {GLUE_R_READYZ, "GET", "/readyz", GLUE_SCOPE_PUBLIC, glue_handle_readyz},
    {GLUE_R_METRICS, "GET", "/metrics", GLUE_SCOPE_METRICS, glue_handle_metrics},
    {GLUE_R_INGEST, "POST", "/v1/ingest/{source_name}", GLUE_SCOPE_INGEST, glue_handle_ingest},
    {GLUE_R_INGEST, "GET", "/v1/ingest/{source_name}", GLUE_SCOPE_INGEST, glue_handle_verification},
    {GLUE_R_SOURCES, "GET", "/v1/sources", GLUE_SCOPE_ADMIN, glue_handle_sources},
    {GLUE_R_SOURCE_TEST, "POST", "/v1/sources/{source_name}/test", GLUE_SCOPE_ADMIN,
     glue_handle_source_test},
    {GLUE_R_ALERTS, "GET", "/v1/alerts", GLUE_SCOPE_READ, glue_handle_alerts},
    {GLUE_R_ALERT, "GET", "/v1/alerts/{uuid}", GLUE_SCOPE_READ, glue_handle_alert},
    {GLUE_R_ALERT, "PATCH", "/v1/alerts/{uuid}", GLUE_SCOPE_WRITE, glue_handle_alert},
    {GLUE_R_DELIVERIES, "GET", "/v1/alerts/{uuid}/deliveries", GLUE_SCOPE_READ,
     glue_handle_deliveries},
    {GLUE_R_RETRY, "POST", "/v1/alerts/{uuid}/deliveries/{delivery_id}/retry", GLUE_SCOPE_WRITE,
     glue_handle_delivery_retry},
    {GLUE_R_ENRICHMENTS, "POST", "/v1/enrichments", GLUE_SCOPE_WRITE, glue_handle_enrichments},
};

const glue_route_entry_t *glue_route_table(size_t *n)
{
    *n = AM_ARRAY_LEN(routes);
    return routes;
}

const char *glue_scope_name(glue_scope_t scope)
{
    switch (scope) {
    case GLUE_SCOPE_PUBLIC:
        return "public";
    case GLUE_SCOPE_INGEST:
        return "ingest";
    case GLUE_SCOPE_READ:
        return "read";
    case GLUE_SCOPE_WRITE:
        return "write";
    case GLUE_SCOPE_ADMIN:
        return "admin";
    case GLUE_SCOPE_METRICS:
        return "metrics";
    case GLUE_SCOPE__COUNT:
        break;
    }
    return "?";
}

size_t glue_route_prefix(const char *pattern)
{
    const char *brace = strchr(pattern, '{');
    size_t n = brace ? (size_t)(brace - pattern) : strlen(pattern);
    while (n > 1 && pattern[n - 1] == '/')
        n--;
    return n;
}

/* The slot of a parameter name ("{source_name}" without braces), or NULL. */
static h2o_iovec_t *param_slot(glue_route_params_t *params, const char *name, size_t len)
{
    if (len == 11 && memcmp(name, "source_name", 11) == 0)
        return &params->source_name;
    if (len == 4 && memcmp(name, "uuid", 4) == 0)
        return &params->uuid;
    if (len == 11 && memcmp(name, "delivery_id", 11) == 0)
        return &params->delivery_id;
    return NULL;
}

bool glue_route_pattern_match(const char *pattern, const char *path, size_t len,
                              glue_route_params_t *params)
{
    memset(params, 0, sizeof(*params));
    const char *pat = pattern;
    size_t i = 0;
    while (*pat != '\0') {
        /* both are at the start of a segment: a '/' */
        if (*pat != '/' || i >= len || path[i] != '/')
            return false;
        pat++;
        i++;
        const char *pend = strchr(pat, '/');
        size_t plen = pend ? (size_t)(pend - pat) : strlen(pat);
        const char *seg = path + i;
        const char *send = memchr(seg, '/', len - i);
        size_t slen = send ? (size_t)(send - seg) : len - i;
        if (plen >= 2 && pat[0] == '{' && pat[plen - 1] == '}') {
            h2o_iovec_t *slot = param_slot(params, pat + 1, plen - 2);
            if (slot == NULL || slen == 0)
                return false;
            *slot = h2o_iovec_init(seg, slen);
        } else if (plen != slen || memcmp(pat, seg, slen) != 0) {
            return false;
        }
        pat += plen;
        i += slen;
    }
    return i == len;
}

static bool method_is(const char *method, const char *m, size_t mlen)
{
    return strlen(method) == mlen && memcmp(method, m, mlen) == 0;
}

const glue_route_entry_t *glue_route_find(const glue_route_entry_t *const *rows, size_t n,
                                          const char *method, size_t mlen, const char *path,
                                          size_t len, glue_route_kind_t *kind,
                                          glue_route_params_t *params)
{
    *kind = GLUE_R_NONE;
    memset(params, 0, sizeof(*params));
    for (size_t i = 0; i < n; i++) {
        glue_route_params_t p;
        if (!glue_route_pattern_match(rows[i]->pattern, path, len, &p))
            continue;
        if (*kind == GLUE_R_NONE) {
            *kind = rows[i]->kind;
            *params = p;
        }
        if (method_is(rows[i]->method, method, mlen))
            return rows[i];
    }
    return NULL;
}

bool glue_route_match(glue_route_t *out, const char *path, size_t len)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < AM_ARRAY_LEN(routes); i++) {
        glue_route_params_t p;
        if (!glue_route_pattern_match(routes[i].pattern, path, len, &p))
            continue;
        out->kind = routes[i].kind;
        h2o_iovec_t arg = p.source_name.base ? p.source_name : p.uuid;
        out->arg = arg.base;
        out->arg_len = arg.len;
        return true;
    }
    return false;
}

bool glue_route_allows(glue_route_kind_t kind, const char *method, size_t len)
{
    for (size_t i = 0; i < AM_ARRAY_LEN(routes); i++)
        if (routes[i].kind == kind && method_is(routes[i].method, method, len))
            return true;
    return false;
}

static char allow_text[GLUE_R__COUNT][32];
static pthread_once_t allow_once = PTHREAD_ONCE_INIT;

static void build_allow(void)
{
    for (size_t i = 0; i < AM_ARRAY_LEN(routes); i++) {
        char *a = allow_text[routes[i].kind];
        size_t used = strlen(a);
        snprintf(a + used, sizeof(allow_text[0]) - used, "%s%s", used ? ", " : "",
                 routes[i].method);
    }
}

const char *glue_route_allow_header(glue_route_kind_t kind)
{
    pthread_once(&allow_once, build_allow);
    if ((int)kind <= (int)GLUE_R_NONE || (int)kind >= (int)GLUE_R__COUNT)
        return "";
    return allow_text[kind];
}

bool glue_is_uuid(const char *s, size_t len)
{
    if (len != 36)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

int glue_parse_delivery_id(int64_t *out, const char *s, size_t len)
{
    *out = 0;
    if (len == 0 || len > 18 || s[0] == '0')
        return AM_EINVAL;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return AM_EINVAL;
        v = v * 10 + (s[i] - '0'); /* at most 18 digits: no overflow */
    }
    *out = v;
    return AM_OK;
}

/* ---- query strings ----------------------------------------------------- */

/* Decodes %XX and '+' of [s, s+n) into a NUL-terminated arena string. */
static int decode(const char **out, const char *s, size_t n, am_arena_t *a)
{
    char *d = am_arena_alloc(a, n + 1);
    if (d == NULL)
        return AM_ELIMIT;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n)
                return AM_EINVAL;
            int hi = am_hex_value(s[i + 1]), lo = am_hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return AM_EINVAL;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0')
            return AM_EINVAL;
        d[k++] = c;
    }
    d[k] = '\0';
    *out = d;
    return AM_OK;
}

int glue_query_parse(glue_qparam_t **out, size_t *n, const char *q, size_t len, am_arena_t *a)
{
    *out = NULL;
    *n = 0;
    glue_qparam_t *params = am_arena_calloc(a, GLUE_MAX_QPARAMS, sizeof(*params));
    if (params == NULL)
        return AM_ELIMIT;
    size_t count = 0, i = 0;
    while (i < len) {
        const char *amp = memchr(q + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - q) : len;
        if (end > i) {
            if (count == GLUE_MAX_QPARAMS)
                return AM_ELIMIT;
            const char *part = q + i;
            size_t plen = end - i;
            const char *eq = memchr(part, '=', plen);
            size_t klen = eq ? (size_t)(eq - part) : plen;
            int rc = decode(&params[count].key, part, klen, a);
            if (rc == AM_OK)
                rc = eq ? decode(&params[count].value, eq + 1, plen - klen - 1, a)
                        : decode(&params[count].value, "", 0, a);
            if (rc != AM_OK)
                return rc;
            count++;
        }
        i = end + 1;
    }
    *out = params;
    *n = count;
    return AM_OK;
}

int glue_list_query(store_query_t *q, const glue_qparam_t *params, size_t n, char *msg,
                    size_t msglen)
{
    static const char *const keys[] = {"source_name", "severity", "status",
                                       "since",       "limit",    "cursor"};
    memset(q, 0, sizeof(*q));
    q->kind = STORE_Q_LIST_ALERTS;
    const char *seen[AM_ARRAY_LEN(keys)] = {0};
    for (size_t i = 0; i < n; i++) {
        size_t k;
        for (k = 0; k < AM_ARRAY_LEN(keys); k++)
            if (strcmp(params[i].key, keys[k]) == 0)
                break;
        if (k == AM_ARRAY_LEN(keys)) {
            snprintf(msg, msglen,
                     "unknown query parameter '%.64s' (expected source_name, severity, "
                     "status, since, limit or cursor)",
                     params[i].key);
            return AM_EINVAL;
        }
        if (seen[k] != NULL) {
            snprintf(msg, msglen, "query parameter '%s' given twice", keys[k]);
            return AM_EINVAL;
        }
        seen[k] = params[i].value;
    }
    q->source_name = seen[0];
    q->severity = seen[1];
    q->status = seen[2];
    q->since = seen[3];
    q->cursor = seen[5];
    /* the store checks the values (limit 1..500, since as RFC 3339, ...) */
    q->limit_text = seen[4];
    return AM_OK;
}
