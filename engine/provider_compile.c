/*
 * engine/provider_compile.c - the provider compiler and loader: provider
 * files (YAML, docs/enrichment.md) into an eng_providers_t. Like the mapping
 * compiler it walks each tree once, checks every key and reports every
 * problem as file:line:col, going on so that one run shows all of them.
 * The loader part reads the provider files, the `list` files they name and
 * the environment variables named by `secrets:` (when asked to).
 */
#include "provider_int.h"
#include "ytree.h"

#include <openssl/crypto.h>
#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PROVIDER_BYTES (1u << 20)
#define MAX_LIST_BYTES     ((size_t)64 << 20)
#define SET_ARENA_CAP      ((size_t)512 << 20)

typedef struct pc {
    am_arena_t *a; /* the set's arena */
    eng_providers_t *set;
    am_diags_t *d;
    const char *file;
    const eng_providers_options_t *opt;
    bool failed;
    bool form_hole; /* the form body of the provider being compiled uses the value */
} pc_t;

static void perr(pc_t *c, const yt_node_t *n, const char *fmt, ...) AM_PRINTF(3, 4);
static void perr(pc_t *c, const yt_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    am_diags_vadd(c->d, c->file, n ? n->line : 0, n ? n->col : 0, fmt, ap);
    va_end(ap);
    c->failed = true;
}

static void *pc_alloc(pc_t *c, size_t count, size_t size)
{
    void *p = am_arena_calloc(c->a, count ? count : 1, size);
    if (p == NULL)
        am_oom(count * size); /* the set's arena cap is far above any provider file */
    return p;
}

static char *pc_strndup(pc_t *c, const char *s, size_t n)
{
    char *p = am_arena_strndup(c->a, s, n);
    if (p == NULL)
        am_oom(n);
    return p;
}

static const char *kind_of(const yt_node_t *n)
{
    if (n == NULL)
        return "nothing";
    if (eng_yt_is_null(n))
        return "null";
    return eng_yt_kind_name(n);
}

static bool is_str(const yt_node_t *n)
{
    return n != NULL && n->kind == YT_SCALAR && !eng_yt_is_null(n);
}

static bool want(pc_t *c, const yt_node_t *n, yt_kind_t k, const char *what)
{
    static const char *const names[] = {"a string", "a list", "a mapping"};
    if (n != NULL && n->kind == k && !(k == YT_SCALAR && eng_yt_is_null(n)))
        return true;
    perr(c, n, "'%s' must be %s, got %s", what, names[k], kind_of(n));
    return false;
}

static void check_keys(pc_t *c, const yt_node_t *map, const char *const *allowed, size_t n)
{
    for (size_t i = 0; i < map->npairs; i++) {
        const yt_node_t *k = map->pairs[i].key;
        bool ok = false;
        for (size_t j = 0; j < n && !ok; j++)
            ok = strcmp(k->str, allowed[j]) == 0;
        if (ok)
            continue;
        char buf[512];
        size_t off = 0;
        buf[0] = '\0';
        for (size_t j = 0; j < n && off < sizeof(buf); j++) {
            int w = snprintf(buf + off, sizeof(buf) - off, "%s%s", j ? ", " : "", allowed[j]);
            if (w < 0)
                break;
            off += (size_t)w;
        }
        perr(c, k, "unknown key '%s' (expected one of: %s)", k->str, buf);
    }
}

static const yt_node_t *key_node(const yt_node_t *map, const char *key)
{
    for (size_t i = 0; i < map->npairs; i++)
        if (strcmp(map->pairs[i].key->str, key) == 0)
            return map->pairs[i].key;
    return map;
}

static bool get_uint(pc_t *c, const yt_node_t *n, const char *what, unsigned lo, unsigned hi,
                     unsigned *out)
{
    if (is_str(n) && !n->quoted && isdigit((unsigned char)n->str[0])) {
        char *end;
        unsigned long v = strtoul(n->str, &end, 10);
        if (*end == '\0' && v >= lo && v <= hi) {
            *out = (unsigned)v;
            return true;
        }
    }
    perr(c, n, "'%s' must be a whole number from %u to %u", what, lo, hi);
    return false;
}

/* "500ms", "30s", "5m", "24h", "7d", or a number of seconds. */
bool eng_pv_parse_duration(const char *s, int64_t *out)
{
    char *end;
    if (!isdigit((unsigned char)*s))
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    int64_t unit;
    if (strcmp(end, "ms") == 0)
        unit = 1000;
    else if (*end == '\0' || strcmp(end, "s") == 0)
        unit = 1000000;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        unit = 60 * (int64_t)1000000;
    else if (strcmp(end, "h") == 0)
        unit = 3600 * (int64_t)1000000;
    else if (strcmp(end, "d") == 0)
        unit = 86400 * (int64_t)1000000;
    else
        return false;
    if (v > (unsigned long long)(INT64_MAX / unit) || v > 400ull * 86400 * 1000)
        return false;
    *out = (int64_t)v * unit;
    return true;
}

static bool get_duration(pc_t *c, const yt_node_t *n, const char *what, int64_t *out)
{
    if (is_str(n) && eng_pv_parse_duration(n->str, out))
        return true;
    perr(c, n, "'%s' must be a duration such as 500ms, 30s, 5m, 24h or 7d", what);
    return false;
}

static bool get_type(pc_t *c, const yt_node_t *n, eng_ioc_type_t *t)
{
    if (is_str(n) && eng_ioc_type_parse(t, n->str, n->len) == 0)
        return true;
    perr(c, n,
         "unknown indicator type '%s' (expected one of: ip, domain, url, email, hash_md5, "
         "hash_sha1, hash_sha256, account)",
         is_str(n) ? n->str : kind_of(n));
    return false;
}

static bool get_verdict(pc_t *c, const yt_node_t *n, eng_verdict_t *v)
{
    int x = is_str(n) ? eng_verdict_parse(n->str) : -1;
    if (x > 0) {
        *v = (eng_verdict_t)x;
        return true;
    }
    perr(c, n, "verdict must be one of Malicious, Suspicious, Benign, Unknown, got '%s'",
         is_str(n) ? n->str : kind_of(n));
    return false;
}

/* A YAML scalar as JSON: plain numbers and booleans keep their type. */
static json_t *scalar_json(pc_t *c, const yt_node_t *n)
{
    json_t *j;
    if (!n->quoted && (strcmp(n->str, "true") == 0 || strcmp(n->str, "false") == 0)) {
        j = json_boolean(n->str[0] == 't');
    } else {
        char *end;
        double x = n->quoted || n->len == 0 ? 0 : strtod(n->str, &end);
        if (!n->quoted && n->len > 0 && *end == '\0' && isfinite(x))
            j = json_real(x);
        else
            j = json_stringn(n->str, n->len);
    }
    if (j == NULL)
        j = json_string("");
    if (j == NULL)
        j = json_null();
    json_array_append_new(c->set->keep, j);
    return j;
}

/* ---- templates ---------------------------------------------------------------- */

typedef enum { TPL_URL, TPL_HEADER, TPL_FORM } tpl_where_t;

static int scalar_col(const yt_node_t *n, size_t off)
{
    return n->col + (int)off + (n->quoted ? 1 : 0);
}

static bool compile_tpl(pc_t *c, pv_tpl_t *out, const yt_node_t *n, tpl_where_t where,
                        const eng_provider_t *p, bool *has_hole)
{
    const char *s = n->str;
    size_t len = n->len, i = 0;
    size_t cap = 0;
    bool ok = true;
    out->parts = NULL;
    out->n = 0;
    am_buf_t lit;
    am_buf_init(&lit, 0);
    while (i <= len) {
        bool end = i == len;
        if (!end && s[i] == '{' && i + 1 < len && s[i + 1] == '{') {
            am_buf_putc(&lit, '{');
            i += 2;
            continue;
        }
        if (!end && s[i] == '}' && i + 1 < len && s[i + 1] == '}') {
            am_buf_putc(&lit, '}');
            i += 2;
            continue;
        }
        if (!end && s[i] == '}') {
            am_diags_add(c->d, c->file, n->line, scalar_col(n, i),
                         "'}' without '{' in a template (write '}}' for a literal brace)");
            c->failed = ok = false;
            i++;
            continue;
        }
        if (!end && s[i] != '{') {
            am_buf_putc(&lit, s[i]);
            i++;
            continue;
        }
        if (lit.len > 0) {
            out->parts = am_arena_grow(c->a, out->parts, out->n, &cap, sizeof(pv_part_t));
            if (out->parts == NULL)
                am_oom(cap);
            pv_part_t *pt = &out->parts[out->n++];
            pt->kind = PV_LIT;
            pt->lit = pc_strndup(c, lit.data, lit.len);
            pt->len = lit.len;
            lit.len = 0;
        }
        if (end)
            break;
        const char *close = memchr(s + i, '}', len - i);
        if (close == NULL) {
            am_diags_add(c->d, c->file, n->line, scalar_col(n, i),
                         "'{' without '}' in a template (write '{{' for a literal brace)");
            c->failed = ok = false;
            break;
        }
        size_t hl = (size_t)(close - (s + i + 1));
        const char *h = s + i + 1;
        pv_part_t part = {PV_VALUE, NULL, 0, 0};
        if (hl == 5 && memcmp(h, "value", 5) == 0) {
            part.kind = PV_VALUE;
        } else if (hl == 15 && memcmp(h, "value|base64url", 15) == 0) {
            part.kind = PV_VALUE_B64URL;
        } else if (hl > 7 && memcmp(h, "secret.", 7) == 0) {
            part.kind = PV_SECRET;
            bool found = false;
            for (size_t k = 0; k < p->nsecrets && !found; k++)
                if (strlen(p->secrets[k].name) == hl - 7 &&
                    memcmp(p->secrets[k].name, h + 7, hl - 7) == 0) {
                    part.secret = k;
                    found = true;
                }
            if (!found) {
                am_diags_add(c->d, c->file, n->line, scalar_col(n, i),
                             "secret '%.*s' is not declared under 'secrets:'", (int)(hl - 7),
                             h + 7);
                c->failed = ok = false;
            } else if (where != TPL_HEADER) {
                am_diags_add(c->d, c->file, n->line, scalar_col(n, i),
                             "a secret may appear only in a header value (URLs and bodies are "
                             "logged)");
                c->failed = ok = false;
            }
        } else {
            am_diags_add(c->d, c->file, n->line, scalar_col(n, i),
                         "unknown template hole '{%.*s}' (expected {value}, "
                         "{value|base64url} or {secret.NAME})",
                         (int)hl, h);
            c->failed = ok = false;
        }
        if (part.kind != PV_SECRET && has_hole != NULL)
            *has_hole = true;
        if (part.kind != PV_SECRET && where == TPL_FORM)
            c->form_hole = true;
        out->parts = am_arena_grow(c->a, out->parts, out->n, &cap, sizeof(pv_part_t));
        if (out->parts == NULL)
            am_oom(cap);
        out->parts[out->n++] = part;
        i = (size_t)(close - s) + 1;
    }
    am_buf_dispose(&lit);
    return ok;
}

static void compile_url(pc_t *c, eng_provider_t *p, const yt_node_t *n, pv_tpl_t **slot)
{
    if (!want(c, n, YT_SCALAR, "url"))
        return;
    const char *s = n->str;
    size_t skip = strncmp(s, "https://", 8) == 0 ? 8 : strncmp(s, "http://", 7) == 0 ? 7 : 0;
    if (skip == 0) {
        perr(c, n, "'url' must start with https:// or http://");
        return;
    }
    size_t auth_end = skip;
    while (auth_end < n->len && s[auth_end] != '/' && s[auth_end] != '?')
        auth_end++;
    if (auth_end == skip) {
        perr(c, n, "'url' has no host");
        return;
    }
    for (size_t i = skip; i < auth_end; i++)
        if (s[i] == '{' || s[i] == '}' || s[i] == '@') {
            am_diags_add(c->d, c->file, n->line, scalar_col(n, i),
                         "the host of 'url' must be literal (no template hole, no user info)");
            c->failed = true;
            return;
        }
    for (size_t i = 0; i < n->len; i++)
        if (s[i] == '#' || (unsigned char)s[i] <= ' ' || (unsigned char)s[i] == 0x7f) {
            am_diags_add(c->d, c->file, n->line, scalar_col(n, i),
                         "'url' may not contain '#', spaces or control characters");
            c->failed = true;
            return;
        }
    pv_tpl_t *t = pc_alloc(c, 1, sizeof(*t));
    bool hole = false;
    if (compile_tpl(c, t, n, TPL_URL, p, &hole))
        *slot = t;
    if (!hole && !c->form_hole)
        perr(c, n, "'url' (or 'form') must use the indicator: {value} or {value|base64url}");
}

static void compile_kvs(pc_t *c, eng_provider_t *p, const yt_node_t *n, const char *what,
                        tpl_where_t where, pv_kv_t **out, size_t *nout)
{
    if (!want(c, n, YT_MAP, what))
        return;
    *out = pc_alloc(c, n->npairs, sizeof(pv_kv_t));
    for (size_t i = 0; i < n->npairs; i++) {
        const yt_node_t *k = n->pairs[i].key, *v = n->pairs[i].value;
        bool name_ok = k->len > 0;
        for (size_t j = 0; j < k->len; j++) {
            unsigned char ch = (unsigned char)k->str[j];
            if (where == TPL_HEADER ? !(isalnum(ch) || strchr("!#$%&'*+-.^_`|~", ch))
                                    : (ch < 0x21 || ch == 0x7f))
                name_ok = false;
        }
        if (!name_ok) {
            perr(c, k, "'%s' is not a valid %s name", k->str,
                 where == TPL_HEADER ? "header" : "field");
            continue;
        }
        if (!want(c, v, YT_SCALAR, k->str))
            continue;
        for (size_t j = 0; j < v->len; j++)
            if ((unsigned char)v->str[j] < 0x20 || v->str[j] == 0x7f) {
                perr(c, v, "'%s' may not contain control characters", k->str);
                goto next;
            }
        pv_kv_t *kv = &(*out)[*nout];
        kv->name = pc_strndup(c, k->str, k->len);
        if (compile_tpl(c, &kv->tpl, v, where, p, NULL))
            (*nout)++;
    next:;
    }
}

/* ---- statuses, rates ------------------------------------------------------------ */

static void compile_statuses(pc_t *c, const yt_node_t *n, const char *what, pv_statuses_t *out)
{
    if (!want(c, n, YT_SEQ, what))
        return;
    out->r = pc_alloc(c, n->nitems, sizeof(pv_range_t));
    out->n = 0;
    for (size_t i = 0; i < n->nitems; i++) {
        const yt_node_t *it = n->items[i];
        int lo = -1, hi = -1, used = 0;
        if (is_str(it) &&
            (sscanf(it->str, "%d-%d%n", &lo, &hi, &used) == 2 ||
             (hi = -1, sscanf(it->str, "%d%n", &lo, &used) == 1)) &&
            (size_t)used == it->len) {
            if (hi < 0)
                hi = lo;
            if (lo >= 100 && hi <= 599 && lo <= hi) {
                out->r[out->n].lo = lo;
                out->r[out->n].hi = hi;
                out->n++;
                continue;
            }
        }
        perr(c, it, "'%s' items must be HTTP statuses (100-599) or ranges such as 500-599", what);
    }
}

static void set_statuses(pc_t *c, pv_statuses_t *s, const int (*r)[2], size_t n)
{
    s->r = pc_alloc(c, n, sizeof(pv_range_t));
    s->n = n;
    for (size_t i = 0; i < n; i++) {
        s->r[i].lo = r[i][0];
        s->r[i].hi = r[i][1];
    }
}

static void compile_rate(pc_t *c, eng_provider_t *p, const yt_node_t *n)
{
    if (!is_str(n)) {
        perr(c, n, "a rate must be a string such as 4/min, got %s", kind_of(n));
        return;
    }
    char *end;
    unsigned long cnt = isdigit((unsigned char)n->str[0]) ? strtoul(n->str, &end, 10) : 0;
    int64_t per = 0;
    if (cnt > 0 && cnt <= 1000000 && *end == '/') {
        const char *u = end + 1;
        if (strcmp(u, "s") == 0 || strcmp(u, "sec") == 0)
            per = 1000000;
        else if (strcmp(u, "min") == 0 || strcmp(u, "m") == 0)
            per = 60 * (int64_t)1000000;
        else if (strcmp(u, "h") == 0 || strcmp(u, "hour") == 0)
            per = 3600 * (int64_t)1000000;
        else if (strcmp(u, "day") == 0 || strcmp(u, "d") == 0)
            per = 86400 * (int64_t)1000000;
    }
    if (per == 0) {
        perr(c, n, "a rate must be COUNT/UNIT with UNIT s, min, h or day (e.g. 4/min), got '%s'",
             n->str);
        return;
    }
    if (p->nrates == ENG_PROV_MAX_RATES) {
        perr(c, n, "at most %d rates per provider", ENG_PROV_MAX_RATES);
        return;
    }
    p->rates[p->nrates].count = (uint32_t)cnt;
    p->rates[p->nrates].period_us = per;
    p->nrates++;
}

/* ---- conditions, verdicts ---------------------------------------------------------- */

static bool field_known(const eng_provider_t *p, const char *name)
{
    for (size_t i = 0; i < p->nfields; i++)
        if (strcmp(p->fields[i].name, name) == 0)
            return true;
    return false;
}

static pv_cond_t *compile_cond(pc_t *c, const eng_provider_t *p, const yt_node_t *n, int depth)
{
    static const char *const ops[] = {"equals", "not_equals", "gt",     "gte",     "lt",
                                      "lte",    "in",         "exists", "contains"};
    static const pv_cond_kind_t opk[] = {PV_C_EQ,  PV_C_NE, PV_C_GT,     PV_C_GTE,     PV_C_LT,
                                         PV_C_LTE, PV_C_IN, PV_C_EXISTS, PV_C_CONTAINS};
    if (depth > 16) {
        perr(c, n, "conditions nest too deeply (16 levels at most)");
        return NULL;
    }
    if (!want(c, n, YT_MAP, "condition"))
        return NULL;
    pv_cond_t *cd = pc_alloc(c, 1, sizeof(*cd));
    const yt_node_t *all = eng_yt_get(n, "all"), *any = eng_yt_get(n, "any"),
                    *not = eng_yt_get(n, "not");
    if (all != NULL || any != NULL || not != NULL) {
        static const char *const keys[] = {"all", "any", "not"};
        check_keys(c, n, keys, AM_ARRAY_LEN(keys));
        if (n->npairs != 1) {
            perr(c, n, "a condition has exactly one of 'all', 'any', 'not'");
            return NULL;
        }
        if (not != NULL) {
            cd->kind = PV_C_NOT;
            cd->sub = pc_alloc(c, 1, sizeof(*cd->sub));
            cd->sub[0] = compile_cond(c, p, not, depth + 1);
            cd->nsub = 1;
            return cd->sub[0] ? cd : NULL;
        }
        const yt_node_t *l = all ? all : any;
        cd->kind = all ? PV_C_ALL : PV_C_ANY;
        if (!want(c, l, YT_SEQ, all ? "all" : "any"))
            return NULL;
        if (l->nitems == 0) {
            perr(c, l, "'%s' needs at least one condition", all ? "all" : "any");
            return NULL;
        }
        cd->sub = pc_alloc(c, l->nitems, sizeof(*cd->sub));
        bool ok = true;
        for (size_t i = 0; i < l->nitems; i++)
            if ((cd->sub[cd->nsub++] = compile_cond(c, p, l->items[i], depth + 1)) == NULL)
                ok = false;
        return ok ? cd : NULL;
    }
    static const char *const keys[] = {"field", "equals", "not_equals", "gt",     "gte",
                                       "lt",    "lte",    "in",         "exists", "contains"};
    check_keys(c, n, keys, AM_ARRAY_LEN(keys));
    const yt_node_t *f = eng_yt_get(n, "field");
    if (f == NULL) {
        perr(c, n, "a condition needs 'field' (or 'all', 'any', 'not')");
        return NULL;
    }
    if (!want(c, f, YT_SCALAR, "field"))
        return NULL;
    if (!field_known(p, f->str)) {
        perr(c, f, "field '%s' is not defined under 'results:'", f->str);
        return NULL;
    }
    cd->field = pc_strndup(c, f->str, f->len);
    size_t nops = 0;
    for (size_t i = 0; i < AM_ARRAY_LEN(ops); i++) {
        const yt_node_t *v = eng_yt_get(n, ops[i]);
        if (v == NULL)
            continue;
        if (nops++ > 0) {
            perr(c, key_node(n, ops[i]), "a condition has one comparison; use 'all' to combine");
            return NULL;
        }
        cd->kind = opk[i];
        if (opk[i] == PV_C_EXISTS) {
            if (!is_str(v) || v->quoted ||
                (strcmp(v->str, "true") != 0 && strcmp(v->str, "false") != 0)) {
                perr(c, v, "'exists' must be true or false");
                return NULL;
            }
            cd->exists = v->str[0] == 't';
        } else if (opk[i] == PV_C_IN) {
            if (!want(c, v, YT_SEQ, "in"))
                return NULL;
            json_t *arr = json_array();
            json_array_append_new(c->set->keep, arr);
            for (size_t k = 0; k < v->nitems; k++) {
                if (!want(c, v->items[k], YT_SCALAR, "in"))
                    return NULL;
                json_array_append(arr, scalar_json(c, v->items[k]));
            }
            cd->operand = arr;
        } else {
            if (!want(c, v, YT_SCALAR, ops[i]))
                return NULL;
            cd->operand = scalar_json(c, v);
            if ((opk[i] >= PV_C_GT && opk[i] <= PV_C_LTE) && !json_is_number(cd->operand)) {
                perr(c, v, "'%s' needs a number, got '%s'", ops[i], v->str);
                return NULL;
            }
        }
    }
    if (nops == 0) {
        perr(c, n,
             "a condition needs a comparison: equals, not_equals, gt, gte, lt, lte, in, exists "
             "or contains");
        return NULL;
    }
    return cd;
}

static void compile_verdicts(pc_t *c, eng_provider_t *p, const yt_node_t *n)
{
    if (!want(c, n, YT_SEQ, "verdict"))
        return;
    p->vrules = pc_alloc(c, n->nitems, sizeof(pv_vrule_t));
    for (size_t i = 0; i < n->nitems; i++) {
        const yt_node_t *r = n->items[i];
        if (!want(c, r, YT_MAP, "verdict rule"))
            continue;
        pv_vrule_t *vr = &p->vrules[p->nvrules];
        const yt_node_t *els = eng_yt_get(r, "else"), *map = eng_yt_get(r, "map");
        if (els != NULL) {
            static const char *const keys[] = {"else"};
            check_keys(c, r, keys, 1);
            if (i + 1 != n->nitems)
                perr(c, key_node(r, "else"), "'else' must be the last verdict rule");
            vr->is_else = true;
            if (get_verdict(c, els, &vr->then))
                p->nvrules++;
        } else if (map != NULL) {
            static const char *const keys[] = {"map", "values"};
            check_keys(c, r, keys, AM_ARRAY_LEN(keys));
            const yt_node_t *vals = eng_yt_get(r, "values");
            if (!want(c, map, YT_SCALAR, "map"))
                continue;
            if (!field_known(p, map->str)) {
                perr(c, map, "field '%s' is not defined under 'results:'", map->str);
                continue;
            }
            if (vals == NULL) {
                perr(c, r, "a 'map' rule needs 'values' (result value: verdict)");
                continue;
            }
            if (!want(c, vals, YT_MAP, "values"))
                continue;
            vr->map_field = pc_strndup(c, map->str, map->len);
            vr->map = pc_alloc(c, vals->npairs, sizeof(pv_vmap_t));
            bool ok = true;
            for (size_t k = 0; k < vals->npairs; k++) {
                char *key = pc_strndup(c, vals->pairs[k].key->str, vals->pairs[k].key->len);
                for (char *q = key; *q; q++)
                    *q = (char)tolower((unsigned char)*q);
                vr->map[k].key = key;
                ok &= get_verdict(c, vals->pairs[k].value, &vr->map[k].verdict);
            }
            vr->nmap = vals->npairs;
            if (ok)
                p->nvrules++;
        } else {
            static const char *const keys[] = {"when", "then"};
            check_keys(c, r, keys, AM_ARRAY_LEN(keys));
            const yt_node_t *w = eng_yt_get(r, "when"), *t = eng_yt_get(r, "then");
            if (w == NULL || t == NULL) {
                perr(c, r, "a verdict rule is 'when' + 'then', 'map' + 'values', or 'else'");
                continue;
            }
            vr->when = compile_cond(c, p, w, 0);
            if (get_verdict(c, t, &vr->then) && vr->when != NULL)
                p->nvrules++;
        }
    }
}

/* ---- http ------------------------------------------------------------------------ */

static void compile_results(pc_t *c, eng_provider_t *p, const yt_node_t *n)
{
    if (!want(c, n, YT_MAP, "results"))
        return;
    p->fields = pc_alloc(c, n->npairs, sizeof(pv_field_t));
    for (size_t i = 0; i < n->npairs; i++) {
        const yt_node_t *k = n->pairs[i].key, *v = n->pairs[i].value;
        if (!want(c, v, YT_SCALAR, k->str))
            continue;
        size_t off = 0;
        const char *msg = NULL;
        epath_t *path = NULL;
        int rc = eng_path_compile(&path, v->str, v->len, c->a, &off, &msg);
        if (rc == AM_ELIMIT)
            msg = "the path does not fit in the compiler's memory limit";
        if (rc != AM_OK) {
            am_diags_add(c->d, c->file, v->line, scalar_col(v, off), "bad path '%s': %s", v->str,
                         msg ? msg : "syntax error");
            c->failed = true;
            continue;
        }
        p->fields[p->nfields].name = pc_strndup(c, k->str, k->len);
        p->fields[p->nfields].path = path;
        p->nfields++;
    }
}

static void compile_secrets(pc_t *c, eng_provider_t *p, const yt_node_t *n)
{
    if (!want(c, n, YT_MAP, "secrets"))
        return;
    p->secrets = pc_alloc(c, n->npairs, sizeof(pv_secret_t));
    for (size_t i = 0; i < n->npairs; i++) {
        const yt_node_t *k = n->pairs[i].key, *v = n->pairs[i].value;
        if (!want(c, v, YT_SCALAR, k->str))
            continue;
        bool ok = v->len > 0 && !isdigit((unsigned char)v->str[0]);
        for (size_t j = 0; j < v->len; j++)
            ok &= isalnum((unsigned char)v->str[j]) || v->str[j] == '_';
        if (!ok) {
            perr(c, v, "'%s' must name an environment variable (letters, digits, '_')", k->str);
            continue;
        }
        pv_secret_t *s = &p->secrets[p->nsecrets++];
        s->name = pc_strndup(c, k->str, k->len);
        s->env = pc_strndup(c, v->str, v->len);
        if (c->opt->resolve_secrets) {
            const char *e = getenv(s->env);
            if (e == NULL || *e == '\0')
                perr(c, v, "environment variable %s (secret '%s') is not set", s->env, s->name);
            else
                s->value = pc_strndup(c, e, strlen(e));
        }
    }
}

static void compile_request(pc_t *c, eng_provider_t *p, const yt_node_t *n)
{
    static const char *const keys[] = {"method", "url", "headers", "form"};
    if (!want(c, n, YT_MAP, "request"))
        return;
    check_keys(c, n, keys, AM_ARRAY_LEN(keys));
    const yt_node_t *m = eng_yt_get(n, "method"), *u = eng_yt_get(n, "url"),
                    *h = eng_yt_get(n, "headers"), *f = eng_yt_get(n, "form");
    p->method = "GET";
    c->form_hole = false;
    if (m != NULL && want(c, m, YT_SCALAR, "method")) {
        if (strcmp(m->str, "GET") == 0 || strcmp(m->str, "POST") == 0)
            p->method = strcmp(m->str, "GET") == 0 ? "GET" : "POST";
        else
            perr(c, m, "'method' must be GET or POST, got '%s'", m->str);
    }
    if (f != NULL) {
        compile_kvs(c, p, f, "form", TPL_FORM, &p->form, &p->nform);
        if (strcmp(p->method, "POST") != 0)
            perr(c, key_node(n, "form"), "'form' needs method: POST");
    }
    if (h != NULL)
        compile_kvs(c, p, h, "headers", TPL_HEADER, &p->headers, &p->nheaders);
    if (u == NULL) {
        perr(c, n, "'request' needs 'url'");
        return;
    }
    if (u->kind == YT_MAP) {
        for (size_t i = 0; i < u->npairs; i++) {
            eng_ioc_type_t t;
            if (!get_type(c, u->pairs[i].key, &t))
                continue;
            if (!eng_provider_applies(p, t)) {
                perr(c, u->pairs[i].key, "type '%s' is not listed under 'types:'",
                     u->pairs[i].key->str);
                continue;
            }
            compile_url(c, p, u->pairs[i].value, &p->url[t]);
        }
        for (unsigned t = 0; t < ENG_IOC__COUNT; t++)
            if ((p->types & (1u << t)) && p->url[t] == NULL && !c->failed)
                perr(c, u, "no url for type '%s'", eng_ioc_type_name((eng_ioc_type_t)t));
    } else {
        pv_tpl_t *t = NULL;
        compile_url(c, p, u, &t);
        for (unsigned k = 0; k < ENG_IOC__COUNT; k++)
            if (p->types & (1u << k))
                p->url[k] = t;
    }
}

static void compile_http(pc_t *c, eng_provider_t *p, const yt_node_t *root)
{
    static const char *const keys[] = {"provider",    "kind",           "description",  "types",
                                       "cache_ttl",   "secrets",        "request",      "timeout",
                                       "concurrency", "rate_limit",     "max_attempts", "status",
                                       "results",     "not_found_when", "verdict",      "samples"};
    check_keys(c, root, keys, AM_ARRAY_LEN(keys));
    const yt_node_t *n;
    if ((n = eng_yt_get(root, "secrets")) != NULL)
        compile_secrets(c, p, n);
    if ((n = eng_yt_get(root, "request")) != NULL)
        compile_request(c, p, n);
    else
        perr(c, root, "an http provider needs 'request'");
    p->timeout_us = 10 * (int64_t)1000000;
    if ((n = eng_yt_get(root, "timeout")) != NULL &&
        get_duration(c, n, "timeout", &p->timeout_us) &&
        (p->timeout_us < 1000 || p->timeout_us > 300 * (int64_t)1000000))
        perr(c, n, "'timeout' must be from 1ms to 300s");
    p->concurrency = 4;
    if ((n = eng_yt_get(root, "concurrency")) != NULL)
        get_uint(c, n, "concurrency", 1, 256, &p->concurrency);
    p->max_attempts = 5;
    if ((n = eng_yt_get(root, "max_attempts")) != NULL)
        get_uint(c, n, "max_attempts", 1, 20, &p->max_attempts);
    if ((n = eng_yt_get(root, "rate_limit")) != NULL) {
        if (n->kind == YT_SEQ)
            for (size_t i = 0; i < n->nitems; i++)
                compile_rate(c, p, n->items[i]);
        else
            compile_rate(c, p, n);
    }
    static const int def_found[][2] = {{200, 200}}, def_nf[][2] = {{404, 404}},
                     def_retry[][2] = {{408, 408}, {429, 429}, {500, 599}};
    set_statuses(c, &p->found, def_found, 1);
    set_statuses(c, &p->not_found, def_nf, 1);
    set_statuses(c, &p->retry, def_retry, 3);
    if ((n = eng_yt_get(root, "status")) != NULL && want(c, n, YT_MAP, "status")) {
        static const char *const sk[] = {"found", "not_found", "retry"};
        check_keys(c, n, sk, AM_ARRAY_LEN(sk));
        const yt_node_t *s;
        if ((s = eng_yt_get(n, "found")) != NULL)
            compile_statuses(c, s, "found", &p->found);
        if ((s = eng_yt_get(n, "not_found")) != NULL)
            compile_statuses(c, s, "not_found", &p->not_found);
        if ((s = eng_yt_get(n, "retry")) != NULL)
            compile_statuses(c, s, "retry", &p->retry);
    }
    if ((n = eng_yt_get(root, "results")) != NULL)
        compile_results(c, p, n);
    else
        perr(c, root, "an http provider needs 'results' (result field: JSON path)");
    if ((n = eng_yt_get(root, "not_found_when")) != NULL)
        p->not_found_when = compile_cond(c, p, n, 0);
    if ((n = eng_yt_get(root, "verdict")) != NULL)
        compile_verdicts(c, p, n);
    else
        perr(c, root, "an http provider needs 'verdict' rules");
}

/* ---- list ------------------------------------------------------------------------ */

static char *path_beside(const char *file, const char *rel)
{
    if (rel[0] == '/')
        return am_xstrdup(rel);
    const char *slash = strrchr(file, '/');
    size_t dl = slash ? (size_t)(slash - file) + 1 : 0;
    size_t rl = strlen(rel);
    char *out = am_xmalloc(dl + rl + 1);
    memcpy(out, file, dl);
    memcpy(out + dl, rel, rl + 1);
    return out;
}

/* Splits one CSV line into fields (double quotes, "" inside quotes). */
static size_t csv_split(char *line, char delim, char **fields, size_t max)
{
    size_t n = 0;
    char *r = line, *w = line;
    while (n < max) {
        fields[n++] = w;
        bool q = false;
        if (*r == '"') {
            q = true;
            r++;
        }
        for (;;) {
            if (*r == '\0')
                break;
            if (q && *r == '"') {
                if (r[1] == '"') {
                    *w++ = '"';
                    r += 2;
                    continue;
                }
                q = false;
                r++;
                continue;
            }
            if (!q && *r == delim)
                break;
            *w++ = *r++;
        }
        bool more = *r == delim;
        *w++ = '\0';
        if (!more)
            break;
        r++;
    }
    return n;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

static void list_add(pc_t *c, eng_provider_t *p, const char *v, am_arena_t *scratch, size_t *ncap)
{
    static const eng_ioc_type_t order[] = {ENG_IOC_URL,       ENG_IOC_EMAIL,       ENG_IOC_HASH_MD5,
                                           ENG_IOC_HASH_SHA1, ENG_IOC_HASH_SHA256, ENG_IOC_DOMAIN,
                                           ENG_IOC_ACCOUNT};
    size_t len = strlen(v);
    if (len == 0)
        return;
    am_arena_reset(scratch);
    if (p->types & (1u << ENG_IOC_IP)) {
        pv_net_t net;
        if (eng_pv_parse_net(&net, v, len)) {
            unsigned full = net.family == 4 ? 32 : 128;
            if (net.prefix == full) {
                const char *canon = eng_ioc_canonical(ENG_IOC_IP, v, len, false, scratch);
                if (canon != NULL && eng_pv_hash_add(&p->values, c->a, ENG_IOC_IP, canon))
                    return;
            } else {
                p->nets = am_arena_grow(c->a, p->nets, p->nnets, ncap, sizeof(pv_net_t));
                if (p->nets == NULL)
                    am_oom(*ncap);
                net.text = pc_strndup(c, v, len);
                p->nets[p->nnets++] = net;
                return;
            }
        }
    }
    for (size_t i = 0; i < AM_ARRAY_LEN(order); i++) {
        if (!(p->types & (1u << order[i])))
            continue;
        const char *canon = eng_ioc_canonical(order[i], v, len, false, scratch);
        if (canon != NULL) {
            if (!eng_pv_hash_add(&p->values, c->a, order[i], canon))
                am_oom(len);
            return;
        }
    }
    p->skipped++;
}

static void load_list(pc_t *c, eng_provider_t *p, const yt_node_t *fnode, bool csv, char delim,
                      unsigned column, const char *colname, bool header)
{
    char *path = path_beside(c->file, p->list_file);
    char *text = NULL;
    size_t len = 0;
    if (am_read_file(&text, &len, path, MAX_LIST_BYTES) != AM_OK) {
        perr(c, fnode, "cannot read list file %s", path);
        free(path);
        return;
    }
    am_arena_t *scratch = am_arena_new(4096, SIZE_MAX);
    size_t ncap = 0, lineno = 0;
    char *save = text, *line;
    bool first = true;
    while ((line = save) != NULL && *line != '\0') {
        char *nl = strchr(line, '\n');
        if (nl) {
            *nl = '\0';
            save = nl + 1;
        } else {
            save = NULL;
        }
        lineno++;
        char *l = trim(line);
        if (*l == '\0' || *l == '#')
            continue;
        if (!csv) {
            char *hash = strstr(l, " #");
            if (hash)
                *hash = '\0';
            list_add(c, p, trim(l), scratch, &ncap);
            continue;
        }
        char *fields[256];
        size_t nf = csv_split(l, delim, fields, AM_ARRAY_LEN(fields));
        if (first && header) {
            first = false;
            if (colname != NULL) {
                column = 0;
                for (size_t i = 0; i < nf; i++)
                    if (strcmp(trim(fields[i]), colname) == 0)
                        column = (unsigned)i + 1;
                if (column == 0) {
                    am_diags_add(c->d, path, (int)lineno, 1,
                                 "the header has no column '%s' (list of provider %s)", colname,
                                 p->name);
                    c->failed = true;
                    break;
                }
            }
            continue;
        }
        first = false;
        if (column == 0 || column > nf) {
            p->skipped++;
            continue;
        }
        list_add(c, p, trim(fields[column - 1]), scratch, &ncap);
    }
    am_arena_free(scratch);
    free(text);
    free(path);
}

static void compile_list(pc_t *c, eng_provider_t *p, const yt_node_t *root)
{
    static const char *const keys[] = {"provider", "kind",   "description", "types",  "cache_ttl",
                                       "file",     "format", "column",      "header", "delimiter",
                                       "verdict",  "tag",    "samples"};
    check_keys(c, root, keys, AM_ARRAY_LEN(keys));
    const yt_node_t *f = eng_yt_get(root, "file"), *fmt = eng_yt_get(root, "format"),
                    *col = eng_yt_get(root, "column"), *hdr = eng_yt_get(root, "header"),
                    *del = eng_yt_get(root, "delimiter"), *v = eng_yt_get(root, "verdict"),
                    *tag = eng_yt_get(root, "tag");
    bool csv = false, header = false, ok = true;
    char delim = ',';
    unsigned column = 1;
    const char *colname = NULL;
    if (f == NULL) {
        perr(c, root, "a list provider needs 'file'");
        ok = false;
    } else if (want(c, f, YT_SCALAR, "file")) {
        p->list_file = pc_strndup(c, f->str, f->len);
    } else {
        ok = false;
    }
    if (fmt != NULL && want(c, fmt, YT_SCALAR, "format")) {
        if (strcmp(fmt->str, "csv") == 0)
            csv = true;
        else if (strcmp(fmt->str, "plain") != 0)
            perr(c, fmt, "'format' must be plain or csv, got '%s'", fmt->str);
    }
    if (!csv && (col || hdr || del))
        perr(c,
             key_node(root, col   ? "column"
                            : hdr ? "header"
                                  : "delimiter"),
             "'column', 'header' and 'delimiter' need format: csv");
    if (hdr != NULL) {
        if (is_str(hdr) && !hdr->quoted &&
            (strcmp(hdr->str, "true") == 0 || strcmp(hdr->str, "false") == 0))
            header = hdr->str[0] == 't';
        else
            perr(c, hdr, "'header' must be true or false");
    }
    if (del != NULL && want(c, del, YT_SCALAR, "delimiter")) {
        if (del->len == 1 && del->str[0] != '"')
            delim = del->str[0];
        else
            perr(c, del, "'delimiter' must be one character (not '\"')");
    }
    if (col != NULL) {
        if (is_str(col) && !col->quoted && isdigit((unsigned char)col->str[0]))
            get_uint(c, col, "column", 1, 256, &column);
        else if (is_str(col)) {
            colname = pc_strndup(c, col->str, col->len);
            if (!header)
                perr(c, col, "a column named by its header needs header: true");
        } else
            perr(c, col, "'column' must be a column number (1-based) or a header name");
    }
    p->list_verdict = ENG_VERDICT_MALICIOUS;
    if (v != NULL)
        get_verdict(c, v, &p->list_verdict);
    if (tag != NULL && want(c, tag, YT_SCALAR, "tag"))
        p->list_tag = pc_strndup(c, tag->str, tag->len);
    if (ok && !c->failed && !c->opt->no_files)
        load_list(c, p, f, csv, delim, column, colname, header);
}

/* ---- cidr ------------------------------------------------------------------------ */

static void compile_cidr(pc_t *c, eng_provider_t *p, const yt_node_t *root)
{
    static const char *const keys[] = {"provider",  "kind",   "description", "types",
                                       "cache_ttl", "ranges", "samples"};
    check_keys(c, root, keys, AM_ARRAY_LEN(keys));
    const yt_node_t *r = eng_yt_get(root, "ranges");
    if (r == NULL) {
        perr(c, root, "a cidr provider needs 'ranges'");
        return;
    }
    if (!want(c, r, YT_SEQ, "ranges"))
        return;
    p->nets = pc_alloc(c, r->nitems, sizeof(pv_net_t));
    for (size_t i = 0; i < r->nitems; i++) {
        const yt_node_t *it = r->items[i];
        if (!want(c, it, YT_MAP, "range"))
            continue;
        static const char *const rk[] = {"cidr", "labels"};
        check_keys(c, it, rk, AM_ARRAY_LEN(rk));
        const yt_node_t *cn = eng_yt_get(it, "cidr"), *ln = eng_yt_get(it, "labels");
        if (cn == NULL || ln == NULL) {
            perr(c, it, "a range needs 'cidr' and 'labels'");
            continue;
        }
        pv_net_t net;
        if (!want(c, cn, YT_SCALAR, "cidr"))
            continue;
        if (!eng_pv_parse_net(&net, cn->str, cn->len)) {
            perr(c, cn, "'%s' is not an address range such as 10.0.0.0/8 or fd00::/8", cn->str);
            continue;
        }
        if (!want(c, ln, YT_SEQ, "labels"))
            continue;
        if (ln->nitems == 0) {
            perr(c, ln, "'labels' needs at least one label");
            continue;
        }
        net.text = pc_strndup(c, cn->str, cn->len);
        net.labels = pc_alloc(c, ln->nitems, sizeof(char *));
        bool ok = true;
        for (size_t k = 0; k < ln->nitems; k++) {
            if (!want(c, ln->items[k], YT_SCALAR, "label")) {
                ok = false;
                continue;
            }
            net.labels[net.nlabels++] = pc_strndup(c, ln->items[k]->str, ln->items[k]->len);
        }
        if (ok)
            p->nets[p->nnets++] = net;
    }
}

/* ---- one file ------------------------------------------------------------------- */

static void compile_ttl(pc_t *c, eng_provider_t *p, const yt_node_t *n)
{
    int64_t def = p->kind == ENG_PROV_HTTP ? 24 * 3600 * (int64_t)1000000 : 0;
    if (n != NULL && n->kind == YT_MAP) {
        const yt_node_t *d = eng_yt_get(n, "default");
        if (d != NULL)
            get_duration(c, d, "default", &def);
        for (unsigned t = 0; t < ENG_IOC__COUNT; t++)
            p->ttl_us[t] = def;
        for (size_t i = 0; i < n->npairs; i++) {
            const yt_node_t *k = n->pairs[i].key;
            eng_ioc_type_t t;
            if (strcmp(k->str, "default") == 0 || !get_type(c, k, &t))
                continue;
            if (!eng_provider_applies(p, t))
                perr(c, k, "type '%s' is not listed under 'types:'", k->str);
            get_duration(c, n->pairs[i].value, k->str, &p->ttl_us[t]);
        }
        return;
    }
    if (n != NULL)
        get_duration(c, n, "cache_ttl", &def);
    for (unsigned t = 0; t < ENG_IOC__COUNT; t++)
        p->ttl_us[t] = def;
}

static eng_provider_t *compile_one(pc_t *c, const yt_node_t *root)
{
    if (root == NULL) {
        perr(c, NULL, "empty provider file");
        return NULL;
    }
    if (!want(c, root, YT_MAP, "provider file"))
        return NULL;
    eng_provider_t *p = pc_alloc(c, 1, sizeof(*p));
    p->file = pc_strndup(c, c->file, strlen(c->file));
    const yt_node_t *name = eng_yt_get(root, "provider"), *kind = eng_yt_get(root, "kind"),
                    *types = eng_yt_get(root, "types"), *desc = eng_yt_get(root, "description");
    if (name == NULL)
        perr(c, root, "missing key 'provider' (the provider's name)");
    else if (want(c, name, YT_SCALAR, "provider")) {
        bool ok = name->len > 0 && name->len <= 64;
        for (size_t i = 0; i < name->len; i++)
            ok &= islower((unsigned char)name->str[i]) || isdigit((unsigned char)name->str[i]) ||
                  name->str[i] == '_' || name->str[i] == '-';
        if (!ok)
            perr(c, name, "'provider' must be 1-64 of a-z, 0-9, '_', '-', got '%s'", name->str);
        p->name = pc_strndup(c, name->str, name->len);
    }
    if (desc != NULL)
        want(c, desc, YT_SCALAR, "description");
    if (kind == NULL) {
        perr(c, root, "missing key 'kind' (http, list or cidr)");
        return NULL;
    }
    if (!want(c, kind, YT_SCALAR, "kind"))
        return NULL;
    if (strcmp(kind->str, "http") == 0)
        p->kind = ENG_PROV_HTTP;
    else if (strcmp(kind->str, "list") == 0)
        p->kind = ENG_PROV_LIST;
    else if (strcmp(kind->str, "cidr") == 0)
        p->kind = ENG_PROV_CIDR;
    else {
        perr(c, kind, "'kind' must be http, list or cidr, got '%s'", kind->str);
        return NULL;
    }
    if (p->kind == ENG_PROV_CIDR) {
        p->types = 1u << ENG_IOC_IP;
        if (types != NULL && want(c, types, YT_SEQ, "types"))
            for (size_t i = 0; i < types->nitems; i++) {
                eng_ioc_type_t t;
                if (get_type(c, types->items[i], &t) && t != ENG_IOC_IP)
                    perr(c, types->items[i], "a cidr provider answers type ip only");
            }
    } else if (types == NULL) {
        perr(c, root, "missing key 'types' (the indicator types it answers)");
    } else if (want(c, types, YT_SEQ, "types")) {
        for (size_t i = 0; i < types->nitems; i++) {
            eng_ioc_type_t t;
            if (!get_type(c, types->items[i], &t))
                continue;
            if (p->types & (1u << t))
                perr(c, types->items[i], "type '%s' is listed twice", types->items[i]->str);
            p->types |= 1u << t;
        }
        if (types->nitems == 0)
            perr(c, types, "'types' needs at least one indicator type");
    }
    compile_ttl(c, p, eng_yt_get(root, "cache_ttl"));
    if (p->kind == ENG_PROV_HTTP)
        compile_http(c, p, root);
    else if (p->kind == ENG_PROV_LIST)
        compile_list(c, p, root);
    else
        compile_cidr(c, p, root);
    const yt_node_t *smp = eng_yt_get(root, "samples");
    /* samples refer to the provider's types and secrets: compiled last */
    if (smp != NULL && !eng_pv_compile_samples(p, smp, c->a, c->set->keep, c->file, c->d))
        c->failed = true;
    return p;
}

/* ---- loading ------------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_yaml_ext(const char *n)
{
    size_t l = strlen(n);
    return (l > 5 && strcmp(n + l - 5, ".yaml") == 0) || (l > 4 && strcmp(n + l - 4, ".yml") == 0);
}

static void compile_text(pc_t *c, const char *name, const char *text, size_t len)
{
    am_arena_t *tree = am_arena_new(16384, (size_t)64 << 20);
    yt_node_t *root = NULL;
    bool whole = false;
    size_t before = c->d->count;
    bool failed_before = c->failed;
    c->failed = false;
    c->file = name;
    int rc = eng_yt_parse_all(&root, &whole, tree, name, text, len, c->d);
    if (rc == AM_ELIMIT) {
        am_diags_add(c->d, name, 0, 0, "provider file too large to compile");
        c->failed = true;
    } else if (rc == AM_OK || whole) {
        if (rc != AM_OK)
            c->failed = true;
        eng_provider_t *p = compile_one(c, root);
        if (p != NULL && p->name != NULL && !c->failed) {
            for (size_t i = 0; i < c->set->n; i++)
                if (strcmp(c->set->items[i]->name, p->name) == 0) {
                    const yt_node_t *nm = eng_yt_get(root, "provider");
                    perr(c, nm, "provider '%s' is already defined in %s", p->name,
                         c->set->items[i]->file);
                }
            if (!c->failed) {
                c->set->items =
                    am_xrealloc(c->set->items, (c->set->n + 1) * sizeof(*c->set->items));
                c->set->items[c->set->n++] = p;
            }
        }
    } else {
        c->failed = true;
    }
    if (c->failed && c->d->count == before)
        am_diags_add(c->d, name, 0, 0, "provider file does not compile");
    c->failed |= failed_before;
    am_arena_free(tree);
}

static eng_providers_t *set_new(void)
{
    eng_providers_t *s = am_xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->arena = am_arena_new(65536, SET_ARENA_CAP);
    if (s->arena == NULL)
        am_oom(65536);
    s->keep = json_array();
    return s;
}

static void set_free(eng_providers_t *s)
{
    free(s->items);
    s->items = NULL;
    s->n = 0;
    eng_providers_unref(s);
}

static int finish(eng_providers_t **out, pc_t *c)
{
    /* samples run on providers that compiled, even when another file did
     * not, so that one pass reports everything */
    if (c->opt->check_samples)
        for (size_t i = 0; i < c->set->n; i++)
            if (eng_provider_check_samples(c->set->items[i], c->d) > 0)
                c->failed = true;
    if (c->failed || c->d->count > 0) {
        set_free(c->set);
        return AM_EINVAL;
    }
    /* the items array moves into the arena so that unref frees one block */
    eng_provider_t **items = pc_alloc(c, c->set->n, sizeof(*items));
    if (c->set->n)
        memcpy(items, c->set->items, c->set->n * sizeof(*items));
    free(c->set->items);
    c->set->items = items;
    *out = c->set;
    return AM_OK;
}

int eng_providers_load_texts(eng_providers_t **out, const char *const *names,
                             const char *const *texts, const size_t *lens, size_t n,
                             const eng_providers_options_t *opt, am_diags_t *d)
{
    static const eng_providers_options_t defaults = {0};
    pc_t c = {0};
    *out = NULL;
    c.set = set_new();
    c.a = c.set->arena;
    c.d = d;
    c.opt = opt ? opt : &defaults;
    for (size_t i = 0; i < n; i++)
        compile_text(&c, names[i], texts[i], lens[i]);
    return finish(out, &c);
}

static void load_file(pc_t *c, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    int rc = am_read_file(&text, &len, path, MAX_PROVIDER_BYTES);
    if (rc != AM_OK) {
        am_diags_add(c->d, path, 0, 0, "%s",
                     rc == AM_ELIMIT ? "provider file larger than 1 MiB" : "cannot read file");
        c->failed = true;
        return;
    }
    compile_text(c, path, text, len);
    free(text);
}

int eng_providers_load(eng_providers_t **out, const char *const *paths, size_t npaths,
                       const eng_providers_options_t *opt, am_diags_t *d)
{
    static const eng_providers_options_t defaults = {0};
    pc_t c = {0};
    *out = NULL;
    c.set = set_new();
    c.a = c.set->arena;
    c.d = d;
    c.opt = opt ? opt : &defaults;
    for (size_t i = 0; i < npaths; i++) {
        DIR *dir = opendir(paths[i]);
        if (dir == NULL) {
            load_file(&c, paths[i]);
            continue;
        }
        char **names = NULL;
        size_t nn = 0;
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (e->d_name[0] == '.' || !has_yaml_ext(e->d_name))
                continue;
            names = am_xrealloc(names, (nn + 1) * sizeof(*names));
            size_t l = strlen(paths[i]) + strlen(e->d_name) + 2;
            names[nn] = am_xmalloc(l);
            snprintf(names[nn], l, "%s/%s", paths[i], e->d_name);
            nn++;
        }
        closedir(dir);
        if (nn > 1)
            qsort(names, nn, sizeof(*names), cmp_str);
        for (size_t k = 0; k < nn; k++) {
            load_file(&c, names[k]);
            free(names[k]);
        }
        free(names);
    }
    return finish(out, &c);
}

/* ---- dispatch targets (docs/dispatch.md) ------------------------------------------ */

struct eng_targets {
    am_arena_t *arena;
    eng_target_t **items;
    size_t n;
};

static const char **str_list(pc_t *c, const yt_node_t *n, const char *what, size_t *count)
{
    *count = 0;
    if (!want(c, n, YT_SEQ, what))
        return NULL;
    const char **out = pc_alloc(c, n->nitems, sizeof(char *));
    for (size_t i = 0; i < n->nitems; i++)
        if (want(c, n->items[i], YT_SCALAR, what))
            out[(*count)++] = pc_strndup(c, n->items[i]->str, n->items[i]->len);
    return out;
}

static eng_target_t *compile_target(pc_t *c, const yt_node_t *root)
{
    static const char *const keys[] = {"target",  "description",  "url",     "secret", "when",
                                       "filters", "max_attempts", "timeout", "backoff"};
    if (root == NULL) {
        perr(c, NULL, "empty target file");
        return NULL;
    }
    if (!want(c, root, YT_MAP, "target file"))
        return NULL;
    check_keys(c, root, keys, AM_ARRAY_LEN(keys));
    eng_target_t *t = pc_alloc(c, 1, sizeof(*t));
    t->file = pc_strndup(c, c->file, strlen(c->file));
    t->max_attempts = 8;
    t->timeout_us = 10 * (int64_t)1000000;
    t->backoff_us = 5 * (int64_t)1000000;
    const yt_node_t *n;
    if ((n = eng_yt_get(root, "target")) == NULL)
        perr(c, root, "missing key 'target' (the target's name)");
    else if (want(c, n, YT_SCALAR, "target")) {
        bool ok = n->len > 0 && n->len <= 64;
        for (size_t i = 0; i < n->len; i++)
            ok &= islower((unsigned char)n->str[i]) || isdigit((unsigned char)n->str[i]) ||
                  n->str[i] == '_' || n->str[i] == '-';
        if (!ok)
            perr(c, n, "'target' must be 1-64 of a-z, 0-9, '_', '-', got '%s'", n->str);
        t->name = pc_strndup(c, n->str, n->len);
    }
    if ((n = eng_yt_get(root, "description")) != NULL)
        want(c, n, YT_SCALAR, "description");
    if ((n = eng_yt_get(root, "url")) == NULL)
        perr(c, root, "missing key 'url'");
    else if (want(c, n, YT_SCALAR, "url")) {
        bool ok = strncmp(n->str, "https://", 8) == 0 || strncmp(n->str, "http://", 7) == 0;
        for (size_t i = 0; i < n->len; i++)
            ok &= (unsigned char)n->str[i] > ' ' && n->str[i] != 0x7f && n->str[i] != '#';
        if (!ok)
            perr(c, n, "'url' must be an http:// or https:// URL without spaces or '#'");
        t->url = pc_strndup(c, n->str, n->len);
    }
    if ((n = eng_yt_get(root, "secret")) == NULL)
        perr(c, root, "missing key 'secret' (the environment variable of the signing secret)");
    else if (want(c, n, YT_SCALAR, "secret")) {
        bool ok = n->len > 0 && !isdigit((unsigned char)n->str[0]);
        for (size_t i = 0; i < n->len; i++)
            ok &= isalnum((unsigned char)n->str[i]) || n->str[i] == '_';
        if (!ok)
            perr(c, n, "'secret' must name an environment variable (letters, digits, '_')");
        t->secret_env = pc_strndup(c, n->str, n->len);
        if (ok && c->opt->resolve_secrets) {
            const char *e = getenv(t->secret_env);
            if (e == NULL || *e == '\0')
                perr(c, n, "environment variable %s (signing secret) is not set", t->secret_env);
            else
                t->secret = pc_strndup(c, e, strlen(e));
        }
    }
    if ((n = eng_yt_get(root, "when")) != NULL && want(c, n, YT_SCALAR, "when")) {
        if (strcmp(n->str, "enriched") == 0)
            t->when = ENG_SEND_ENRICHED;
        else if (strcmp(n->str, "ingested") == 0)
            t->when = ENG_SEND_INGESTED;
        else
            perr(c, n, "'when' must be enriched or ingested, got '%s'", n->str);
    }
    if ((n = eng_yt_get(root, "max_attempts")) != NULL)
        get_uint(c, n, "max_attempts", 1, 50, &t->max_attempts);
    if ((n = eng_yt_get(root, "timeout")) != NULL)
        get_duration(c, n, "timeout", &t->timeout_us);
    if ((n = eng_yt_get(root, "backoff")) != NULL)
        get_duration(c, n, "backoff", &t->backoff_us);
    if ((n = eng_yt_get(root, "filters")) != NULL && want(c, n, YT_MAP, "filters")) {
        static const char *const fk[] = {"sources", "min_severity", "verdicts", "tags"};
        check_keys(c, n, fk, AM_ARRAY_LEN(fk));
        const yt_node_t *f;
        if ((f = eng_yt_get(n, "sources")) != NULL)
            t->sources = str_list(c, f, "sources", &t->nsources);
        if ((f = eng_yt_get(n, "tags")) != NULL)
            t->tags = str_list(c, f, "tags", &t->ntags);
        if ((f = eng_yt_get(n, "min_severity")) != NULL && want(c, f, YT_SCALAR, "min_severity")) {
            t->min_severity = eng_severity_rank(f->str);
            if (t->min_severity == 0)
                perr(c, f, "'min_severity' must be Informational, Low, Medium, High or Critical");
        }
        if ((f = eng_yt_get(n, "verdicts")) != NULL && want(c, f, YT_SEQ, "verdicts"))
            for (size_t i = 0; i < f->nitems; i++) {
                eng_verdict_t v;
                if (get_verdict(c, f->items[i], &v))
                    t->verdicts |= 1u << v;
            }
    }
    return t;
}

static void target_text(pc_t *c, eng_targets_t *ts, const char *name, const char *text, size_t len)
{
    am_arena_t *tree = am_arena_new(16384, (size_t)64 << 20);
    yt_node_t *root = NULL;
    bool whole = false;
    size_t before = c->d->count;
    bool failed_before = c->failed;
    c->failed = false;
    c->file = name;
    int rc = eng_yt_parse_all(&root, &whole, tree, name, text, len, c->d);
    if (rc == AM_OK || whole) {
        c->failed = rc != AM_OK;
        eng_target_t *t = compile_target(c, root);
        if (t != NULL && t->name != NULL && !c->failed) {
            const eng_target_t *dup = eng_targets_find(ts, t->name);
            if (dup != NULL)
                perr(c, eng_yt_get(root, "target"), "target '%s' is already defined in %s", t->name,
                     dup->file);
            else {
                ts->items = am_xrealloc(ts->items, (ts->n + 1) * sizeof(*ts->items));
                ts->items[ts->n++] = t;
            }
        }
    } else {
        c->failed = true;
    }
    if (c->failed && c->d->count == before)
        am_diags_add(c->d, name, 0, 0, "target file does not compile");
    c->failed |= failed_before;
    am_arena_free(tree);
}

int eng_targets_load(eng_targets_t **out, const char *const *paths, size_t npaths,
                     const eng_providers_options_t *opt, am_diags_t *d)
{
    static const eng_providers_options_t defaults = {0};
    eng_targets_t *ts = am_xcalloc(1, sizeof(*ts));
    ts->arena = am_arena_new(16384, SET_ARENA_CAP);
    pc_t c = {0};
    c.a = ts->arena;
    c.d = d;
    c.opt = opt ? opt : &defaults;
    *out = NULL;
    for (size_t i = 0; i < npaths; i++) {
        DIR *dir = opendir(paths[i]);
        char **names = NULL;
        size_t nn = 0;
        if (dir == NULL) {
            names = am_xmalloc(sizeof(*names));
            names[nn++] = am_xstrdup(paths[i]);
        } else {
            struct dirent *e;
            while ((e = readdir(dir)) != NULL) {
                if (e->d_name[0] == '.' || !has_yaml_ext(e->d_name))
                    continue;
                names = am_xrealloc(names, (nn + 1) * sizeof(*names));
                size_t l = strlen(paths[i]) + strlen(e->d_name) + 2;
                names[nn] = am_xmalloc(l);
                snprintf(names[nn], l, "%s/%s", paths[i], e->d_name);
                nn++;
            }
            closedir(dir);
            if (nn > 1)
                qsort(names, nn, sizeof(*names), cmp_str);
        }
        for (size_t k = 0; k < nn; k++) {
            char *text = NULL;
            size_t len = 0;
            if (am_read_file(&text, &len, names[k], MAX_PROVIDER_BYTES) != AM_OK) {
                am_diags_add(d, names[k], 0, 0, "cannot read file");
                c.failed = true;
            } else {
                target_text(&c, ts, names[k], text, len);
            }
            free(text);
            free(names[k]);
        }
        free(names);
    }
    if (c.failed || d->count > 0) {
        eng_targets_free(ts);
        return AM_EINVAL;
    }
    *out = ts;
    return AM_OK;
}

void eng_targets_free(eng_targets_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        if (t->items[i]->secret != NULL) /* a copy in the targets' arena */
            OPENSSL_cleanse((char *)(uintptr_t)t->items[i]->secret, strlen(t->items[i]->secret));
    free(t->items);
    am_arena_free(t->arena);
    free(t);
}

size_t eng_targets_count(const eng_targets_t *t)
{
    return t ? t->n : 0;
}

const eng_target_t *eng_targets_at(const eng_targets_t *t, size_t i)
{
    return t && i < t->n ? t->items[i] : NULL;
}

const eng_target_t *eng_targets_find(const eng_targets_t *t, const char *name)
{
    for (size_t i = 0; t && i < t->n; i++)
        if (strcmp(t->items[i]->name, name) == 0)
            return t->items[i];
    return NULL;
}
