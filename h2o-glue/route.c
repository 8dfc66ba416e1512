/* h2o-glue/route.c - the route table, UUIDs and query strings. Pure. */
#include "glue.h"

#include <ctype.h>
#include <string.h>

/* Whether [p, p+n) starts with the literal lit; on success advances. */
static bool eat(const char **p, size_t *n, const char *lit)
{
    size_t l = strlen(lit);
    if (*n < l || memcmp(*p, lit, l) != 0)
        return false;
    *p += l;
    *n -= l;
    return true;
}

static bool is_exact(const char *p, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

/* One path segment: non-empty, no '/'. */
static bool segment(const char *p, size_t n, size_t *seglen)
{
    const char *slash = memchr(p, '/', n);
    size_t l = slash ? (size_t)(slash - p) : n;
    if (l == 0)
        return false;
    *seglen = l;
    return true;
}

bool glue_route_match(glue_route_t *out, const char *path, size_t len)
{
    memset(out, 0, sizeof(*out));
    const char *p = path;
    size_t n = len, seg;
    if (is_exact(p, n, "/healthz")) {
        out->kind = GLUE_R_HEALTHZ;
        return true;
    }
    if (is_exact(p, n, "/metrics")) {
        out->kind = GLUE_R_METRICS;
        return true;
    }
    if (!eat(&p, &n, "/v1/"))
        return false;
    if (eat(&p, &n, "ingest/")) {
        if (!segment(p, n, &seg) || seg != n)
            return false;
        out->kind = GLUE_R_INGEST;
    } else if (is_exact(p, n, "sources")) {
        out->kind = GLUE_R_SOURCES;
        return true;
    } else if (eat(&p, &n, "sources/")) {
        if (!segment(p, n, &seg) || !is_exact(p + seg, n - seg, "/test"))
            return false;
        out->kind = GLUE_R_SOURCE_TEST;
    } else if (is_exact(p, n, "alerts")) {
        out->kind = GLUE_R_ALERTS;
        return true;
    } else if (eat(&p, &n, "alerts/")) {
        if (!segment(p, n, &seg) || seg != n)
            return false;
        out->kind = GLUE_R_ALERT;
    } else {
        return false;
    }
    out->arg = p;
    out->arg_len = seg;
    return true;
}

static const char *allow_of(glue_route_kind_t kind)
{
    switch (kind) {
    case GLUE_R_INGEST:
    case GLUE_R_SOURCE_TEST:
        return "POST";
    case GLUE_R_ALERT:
        return "GET, PATCH";
    case GLUE_R_HEALTHZ:
    case GLUE_R_SOURCES:
    case GLUE_R_ALERTS:
    case GLUE_R_METRICS:
        return "GET";
    case GLUE_R_NONE:
        break;
    }
    return "";
}

const char *glue_route_allow_header(glue_route_kind_t kind)
{
    return allow_of(kind);
}

bool glue_route_allows(glue_route_kind_t kind, const char *method, size_t len)
{
    const char *allow = allow_of(kind);
    /* allow is a ", "-separated list of method names */
    while (*allow != '\0') {
        const char *comma = strchr(allow, ',');
        size_t l = comma ? (size_t)(comma - allow) : strlen(allow);
        if (l == len && memcmp(allow, method, len) == 0)
            return true;
        if (comma == NULL)
            break;
        allow = comma + 1;
        while (*allow == ' ')
            allow++;
    }
    return false;
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

/* ---- query strings ----------------------------------------------------- */

/* Decodes %XX and '+' of [s, s+n) into a NUL-terminated arena string. */
static int decode(const char **out, const char *s, size_t n, am_arena_t *a)
{
    char *d = am_arena_alloc(a, n + 1);
    if (d == NULL)
        return AM_ENOMEM;
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
        return AM_ENOMEM;
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
