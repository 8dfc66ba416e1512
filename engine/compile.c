/*
 * engine/compile.c - one mapping file to one program (docs/mapping-language.md):
 * the top-level keys, match rules, fields, indicator rules and samples; value
 * expressions are in expr.c.
 *
 * The compiler walks the positioned YAML tree (ytree.h) once. Every problem
 * is reported with the line and column of the node at fault and compiling
 * goes on, so an author sees every error of a file in one pass. Everything
 * that can be decided ahead is decided here: paths are split and their
 * dotted joins precomputed (path.c), templates split into literals and holes,
 * lookup tables hashed, patterns JIT-compiled, provenance strings built.
 * Only the name of the samples folder is decided here; the loader lists it.
 */
#include "compile.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void eng_cc_err(cc_t *c, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    am_diags_vadd(c->d, c->file, line, col, fmt, ap);
    va_end(ap);
    c->errors++;
}

void *eng_cc_alloc(cc_t *c, size_t n)
{
    void *p = am_arena_calloc(c->a, 1, n);
    if (p == NULL)
        c->limit = true;
    return p;
}

char *eng_cc_printf(cc_t *c, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    char *s = am_arena_strdup(c->a, buf);
    if (s == NULL)
        c->limit = true;
    return s;
}

/* ---- small checks ----------------------------------------------------------- */

const char *eng_cc_kind_of(const yt_node_t *n)
{
    if (eng_yt_is_null(n))
        return "null";
    return eng_yt_kind_name(n);
}

bool eng_cc_is_kind(cc_t *c, const yt_node_t *n, yt_kind_t k, const char *what)
{
    static const char *const want[] = {"a string", "a list", "a mapping"};
    if (n != NULL && n->kind == k && !(k == YT_SCALAR && eng_yt_is_null(n)))
        return true;
    CC_ERR(c, n, "'%s' must be %s, got %s", what, want[k], eng_cc_kind_of(n));
    return false;
}

bool eng_cc_key_in(const yt_node_t *k, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(k->str, list[i]) == 0)
            return true;
    return false;
}

static void list_text(char *buf, size_t size, const char *const *list, size_t n)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && off < size; i++) {
        int w = snprintf(buf + off, size - off, "%s%s", i ? ", " : "", list[i]);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

/* Reports every key of map not in allowed (extra: further allowed keys). */
void eng_cc_check_keys(cc_t *c, const yt_node_t *map, const char *const *allowed, size_t n,
                       const char *const *extra, size_t nextra)
{
    for (size_t i = 0; i < map->npairs; i++) {
        const yt_node_t *k = map->pairs[i].key;
        if (eng_cc_key_in(k, allowed, n) || eng_cc_key_in(k, extra, nextra))
            continue;
        char buf[512];
        list_text(buf, sizeof(buf), allowed, n);
        CC_ERR(c, k, "unknown key '%s' (expected one of: %s)", k->str, buf);
    }
}

const yt_node_t *eng_cc_key_node(const yt_node_t *map, const char *key)
{
    for (size_t i = 0; i < map->npairs; i++)
        if (strcmp(map->pairs[i].key->str, key) == 0)
            return map->pairs[i].key;
    return NULL;
}

bool eng_cc_get_bool(cc_t *c, const yt_node_t *n, const char *what, bool *out)
{
    if (n->kind == YT_SCALAR && !n->quoted) {
        if (strcmp(n->str, "true") == 0 || strcmp(n->str, "True") == 0) {
            *out = true;
            return true;
        }
        if (strcmp(n->str, "false") == 0 || strcmp(n->str, "False") == 0) {
            *out = false;
            return true;
        }
    }
    CC_ERR(c, n, "'%s' must be true or false, got %s", what,
           n->kind == YT_SCALAR ? "a string" : eng_cc_kind_of(n));
    return false;
}

bool eng_cc_get_number(cc_t *c, const yt_node_t *n, const char *what, double *out)
{
    if (n->kind == YT_SCALAR && !eng_yt_is_null(n) && n->len > 0) {
        char *end;
        *out = strtod(n->str, &end);
        if (*end == '\0' && end != n->str)
            return true;
    }
    CC_ERR(c, n, "'%s' must be a number, got %s", what,
           n->kind == YT_SCALAR && !eng_yt_is_null(n) ? "a string" : eng_cc_kind_of(n));
    return false;
}

const char *eng_cc_origin(cc_t *c, int line, const char *what)
{
    return eng_cc_printf(c, "%s:%d %s", c->base, line, what);
}

/* ---- paths, patterns, tables -------------------------------------------------- */

epath_t *eng_cc_path_at(cc_t *c, const yt_node_t *n, const char *s, size_t len, int col)
{
    epath_t *p = NULL;
    size_t off = 0;
    const char *msg = NULL;
    int rc = eng_path_compile(&p, s, len, c->a, &off, &msg);
    if (rc == AM_ELIMIT) {
        c->limit = true;
        return NULL;
    }
    if (rc != 0) {
        eng_cc_err(c, n->line, col + (int)off, "bad path '%.*s': %s at offset %zu", (int)len, s,
                   msg, off);
        return NULL;
    }
    return p;
}

epath_t *eng_cc_path(cc_t *c, const yt_node_t *n, const char *what)
{
    if (!eng_cc_is_kind(c, n, YT_SCALAR, what))
        return NULL;
    return eng_cc_path_at(c, n, n->str, n->len, n->col + (n->quoted ? 1 : 0));
}

/* A path or a list of paths. */
epath_t **eng_cc_paths(cc_t *c, const yt_node_t *n, const char *what, size_t *count)
{
    *count = 0;
    if (n->kind == YT_SCALAR) {
        epath_t **v = eng_cc_alloc(c, sizeof(*v));
        if (v == NULL || (v[0] = eng_cc_path(c, n, what)) == NULL)
            return NULL;
        *count = 1;
        return v;
    }
    if (n->kind != YT_SEQ || n->nitems == 0) {
        CC_ERR(c, n, "'%s' must be a path or a non-empty list of paths, got %s", what,
               n->kind == YT_SEQ ? "an empty list" : eng_cc_kind_of(n));
        return NULL;
    }
    epath_t **v = eng_cc_alloc(c, n->nitems * sizeof(*v));
    if (v == NULL)
        return NULL;
    bool ok = true;
    for (size_t i = 0; i < n->nitems; i++) {
        v[i] = eng_cc_path(c, n->items[i], what);
        ok = ok && v[i] != NULL;
    }
    if (!ok)
        return NULL;
    *count = n->nitems;
    return v;
}

pcre2_code *eng_cc_regex(cc_t *c, const yt_node_t *n, const char *what)
{
    if (!eng_cc_is_kind(c, n, YT_SCALAR, what))
        return NULL;
    int ec;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)n->str, n->len, PCRE2_UTF, &ec, &off, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(ec, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", ec);
        eng_cc_err(c, n->line, n->col + (n->quoted ? 1 : 0) + (int)off,
                   "regex error at offset %zu in '%s': %s", (size_t)off, n->str, (char *)msg);
        return NULL;
    }
    if (c->jit)
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
    eng_set_keep_code(c->set, re);
    uint32_t groups = 0;
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &groups);
    if (groups + 1 > c->p->max_groups)
        c->p->max_groups = groups + 1;
    return re;
}

/* ---- match rules ---------------------------------------------------------------- */

static const char *const match_keys[] = {"object", "array", "present", "any",
                                         "equals", "name",  "message"};

static void cmatch_rule(cc_t *c, match_rule_t *r, const yt_node_t *n, size_t idx)
{
    if (!eng_cc_is_kind(c, n, YT_MAP, "match[]"))
        return;
    eng_cc_check_keys(c, n, match_keys, AM_ARRAY_LEN(match_keys), NULL, 0);
    r->where = eng_cc_printf(c, "%s:%d", c->base, n->line);
    const yt_node_t *v = eng_yt_get(n, "name");
    if (v != NULL && eng_cc_is_kind(c, v, YT_SCALAR, "name"))
        r->name = v->str;
    else
        r->name = eng_cc_printf(c, "match[%zu]", idx);
    if ((v = eng_yt_get(n, "message")) != NULL && eng_cc_is_kind(c, v, YT_SCALAR, "message"))
        r->message = v->str;
    const yt_node_t *test = NULL;
    for (size_t i = 0; i < n->npairs; i++) {
        const yt_node_t *k = n->pairs[i].key;
        if (!eng_cc_key_in(k, match_keys, 5))
            continue;
        if (test != NULL) {
            CC_ERR(c, k, "a match rule takes only one test ('%s' and '%s')", test->str, k->str);
            continue;
        }
        test = k;
        v = n->pairs[i].value;
        switch (k->str[0]) {
        case 'o':
        case 'a':
            if (strcmp(k->str, "any") == 0) {
                r->kind = MR_ANY;
                r->paths = eng_cc_paths(c, v, "any", &r->npaths);
            } else {
                r->kind = k->str[0] == 'o' ? MR_OBJECT : MR_ARRAY;
                r->paths = eng_cc_alloc(c, sizeof(epath_t *));
                if (r->paths != NULL && (r->paths[0] = eng_cc_path(c, v, k->str)) != NULL)
                    r->npaths = 1;
            }
            break;
        case 'p':
            r->kind = MR_PRESENT;
            r->paths = eng_cc_paths(c, v, "present", &r->npaths);
            break;
        case 'e': {
            r->kind = MR_EQUALS;
            if (!eng_cc_is_kind(c, v, YT_MAP, "equals"))
                break;
            static const char *const eq_keys[] = {"path", "value"};
            eng_cc_check_keys(c, v, eq_keys, 2, NULL, 0);
            const yt_node_t *pv = eng_yt_get(v, "path"), *vv = eng_yt_get(v, "value");
            if (pv == NULL || vv == NULL) {
                CC_ERR(c, v, "'equals' needs 'path' and 'value'");
                break;
            }
            r->paths = eng_cc_alloc(c, sizeof(epath_t *));
            if (r->paths != NULL && (r->paths[0] = eng_cc_path(c, pv, "path")) != NULL)
                r->npaths = 1;
            size_t nv = vv->kind == YT_SEQ ? vv->nitems : 1;
            r->values = eng_cc_alloc(c, (nv + 1) * sizeof(char *));
            r->vlens = eng_cc_alloc(c, (nv + 1) * sizeof(size_t));
            if (r->values == NULL || r->vlens == NULL)
                break;
            for (size_t j = 0; j < nv; j++) {
                const yt_node_t *x = vv->kind == YT_SEQ ? vv->items[j] : vv;
                if (x->kind != YT_SCALAR) {
                    CC_ERR(c, x, "'value' must be a string or a list of strings, got %s",
                           eng_cc_kind_of(x));
                    continue;
                }
                r->values[r->nvalues] = x->str;
                r->vlens[r->nvalues++] = x->len;
            }
            break;
        }
        default:
            break;
        }
    }
    if (test == NULL)
        CC_ERR(c, n, "a match rule needs one of object, array, present, any, equals");
}

static void cmatch(cc_t *c, const yt_node_t *n)
{
    if (!eng_cc_is_kind(c, n, YT_SEQ, "match"))
        return;
    c->p->match = eng_cc_alloc(c, (n->nitems + 1) * sizeof(match_rule_t));
    if (c->p->match == NULL)
        return;
    for (size_t i = 0; i < n->nitems; i++)
        cmatch_rule(c, &c->p->match[i], n->items[i], i);
    c->p->nmatch = n->nitems;
}

/* ---- fields ----------------------------------------------------------------------- */

static void cfields(cc_t *c, const yt_node_t *n)
{
    if (!eng_cc_is_kind(c, n, YT_MAP, "fields"))
        return;
    eng_program_t *p = c->p;
    for (size_t i = 0; i < n->npairs; i++) {
        const yt_node_t *k = n->pairs[i].key, *v = n->pairs[i].value;
        if (strcmp(k->str, "tags") == 0) {
            p->tags = eng_cc_expr(c, v, k->line, "tags", 0, NULL, 0);
            continue;
        }
        int f = (int)eng_field_parse(k->str, k->len);
        if (f == ENG_F__COUNT) {
            char buf[512];
            const char *names[ENG_F__COUNT + 1];
            for (int j = 0; j < ENG_F__COUNT; j++)
                names[j] = eng_field_name((eng_field_t)j);
            names[ENG_F__COUNT] = "tags";
            list_text(buf, sizeof(buf), names, ENG_F__COUNT + 1);
            CC_ERR(c, k, "unknown field '%s' (expected one of: %s)", k->str, buf);
            continue;
        }
        p->field[f] =
            eng_cc_expr(c, v, k->line, k->str, f == ENG_F_OCCURRED_AT ? EXF_TIME : 0, NULL, 0);
        p->field_where[f] = eng_cc_printf(c, "%s:%d", c->base, k->line);
    }
    if (eng_yt_get(n, "title") == NULL)
        CC_ERR(c, n, "missing required field 'title'");
}

/* ---- indicator rules ---------------------------------------------------------------- */

static bool ctype_name(cc_t *c, const yt_node_t *n, eng_ioc_type_t *out)
{
    if (n->kind == YT_SCALAR && !eng_yt_is_null(n) && eng_ioc_type_parse(out, n->str, n->len) == 0)
        return true;
    if (n->kind != YT_SCALAR) {
        CC_ERR(c, n, "indicator type must be a type name, got %s", eng_cc_kind_of(n));
        return false;
    }
    CC_ERR(c, n,
           "unknown indicator type '%s' (expected one of: ip, domain, url, email, hash_md5, "
           "hash_sha1, hash_sha256, account)",
           n->str);
    return false;
}

static void crule_type(cc_t *c, irule_t *r, const yt_node_t *n, int line)
{
    if (n->kind == YT_MAP)
        r->type_expr = eng_cc_expr(c, n, line, "type", 0, NULL, 0);
    else
        ctype_name(c, n, &r->type);
}

static epath_t **cscan_paths(cc_t *c, const yt_node_t *n, const char *what, size_t *count,
                             bool *all)
{
    if (n->kind == YT_SCALAR && strcmp(n->str, "all") == 0 && !n->quoted) {
        *all = true;
        *count = 0;
        return NULL;
    }
    return eng_cc_paths(c, n, what, count);
}

static void cregex_rule(cc_t *c, irule_t *r, const yt_node_t *n, const yt_node_t *rx)
{
    r->kind = IR_REGEX;
    const yt_node_t *v = eng_yt_get(n, "name");
    if (v != NULL && eng_cc_is_kind(c, v, YT_SCALAR, "name"))
        r->label = eng_cc_printf(c, "regex:%s", v->str);
    else
        r->label = eng_cc_printf(c, "regex:%s:%d", c->base, n->line);
    if ((v = eng_yt_get(n, "in")) != NULL)
        r->in = cscan_paths(c, v, "in", &r->nin, &r->in_all);
    else
        r->in_all = true;
    if ((r->re = eng_cc_regex(c, rx, "regex")) == NULL)
        return;
    uint32_t count = 0, esize = 0, groups = 0;
    PCRE2_SPTR table = NULL;
    pcre2_pattern_info(r->re, PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(r->re, PCRE2_INFO_NAMEENTRYSIZE, &esize);
    pcre2_pattern_info(r->re, PCRE2_INFO_NAMETABLE, &table);
    pcre2_pattern_info(r->re, PCRE2_INFO_CAPTURECOUNT, &groups);
    if (groups >= AM_ARRAY_LEN(r->group_type)) {
        CC_ERR(c, rx, "a regex rule may have at most %zu capture groups",
               AM_ARRAY_LEN(r->group_type) - 1);
        return;
    }
    r->ngroups = groups;
    if (count == 0) {
        CC_ERR(c, rx,
               "a regex rule needs named groups called after indicator types, e.g. "
               "(?<ip>...)");
        return;
    }
    int col0 = rx->col + (rx->quoted ? 1 : 0);
    for (uint32_t i = 0; i < count; i++) {
        const unsigned char *e = table + (size_t)i * esize;
        uint32_t num = ((uint32_t)e[0] << 8) | e[1];
        const char *name = (const char *)e + 2;
        eng_ioc_type_t t;
        if (eng_ioc_type_parse(&t, name, strlen(name)) == 0) {
            r->group_type[num] = (uint32_t)t + 1;
            continue;
        }
        /* point at the name inside (?<name>...) when it can be found */
        char tag[300];
        snprintf(tag, sizeof(tag), "<%s>", name);
        const char *at = strstr(rx->str, tag);
        at = at != NULL ? at + 1 : strstr(rx->str, name);
        eng_cc_err(c, rx->line, col0 + (at != NULL ? (int)(at - rx->str) : 0),
                   "named group '%s' is not an indicator type", name);
    }
}

static const char *const rule_keys_each[] = {"each", "type", "value"};
static const char *const rule_keys_scan[] = {"scan", "types"};
static const char *const rule_keys_regex[] = {"regex", "in", "name"};
static const char *const rule_keys_type[] = {"type"};

static void cirule(cc_t *c, irule_t *r, const yt_node_t *n)
{
    if (!eng_cc_is_kind(c, n, YT_MAP, "indicators[]"))
        return;
    r->origin = eng_cc_printf(c, "%s:%d", c->base, n->line);
    const yt_node_t *v;
    if ((v = eng_yt_get(n, "each")) != NULL) {
        r->kind = IR_EACH;
        eng_cc_check_keys(c, n, rule_keys_each, 3, NULL, 0);
        r->each = eng_cc_path(c, v, "each");
        if (r->each != NULL)
            r->each_prefix = eng_cc_printf(c, "%s.", r->each->text);
        const yt_node_t *t = eng_yt_get(n, "type"), *val = eng_yt_get(n, "value");
        if (t == NULL || val == NULL)
            CC_ERR(c, n, "an 'each' rule needs 'type' and 'value'");
        if (t != NULL)
            crule_type(c, r, t, n->line);
        if (val != NULL)
            r->value = eng_cc_expr(c, val, n->line, "value", 0, NULL, 0);
    } else if ((v = eng_yt_get(n, "scan")) != NULL) {
        r->kind = IR_SCAN;
        eng_cc_check_keys(c, n, rule_keys_scan, 2, NULL, 0);
        r->in = cscan_paths(c, v, "scan", &r->nin, &r->in_all);
        if (r->in_all)
            r->kind = IR_SCAN_ALL;
        r->mask = IOC_MASK_ALL;
        const yt_node_t *ty = eng_yt_get(n, "types");
        if (ty != NULL && eng_cc_is_kind(c, ty, YT_SEQ, "types")) {
            r->mask = 0;
            for (size_t i = 0; i < ty->nitems; i++) {
                eng_ioc_type_t t;
                if (ctype_name(c, ty->items[i], &t))
                    r->mask |= IOC_BIT(t);
            }
        }
    } else if ((v = eng_yt_get(n, "type")) != NULL) {
        r->kind = IR_VALUE;
        crule_type(c, r, v, n->line);
        r->value = eng_cc_expr(c, n, n->line, "indicator", 0, rule_keys_type, 1);
    } else if ((v = eng_yt_get(n, "regex")) != NULL) {
        eng_cc_check_keys(c, n, rule_keys_regex, 3, NULL, 0);
        cregex_rule(c, r, n, v);
    } else {
        CC_ERR(c, n, "an indicator rule needs one of: each, scan, regex, or a value with 'type'");
    }
}

static void cindicators(cc_t *c, const yt_node_t *n)
{
    if (!eng_cc_is_kind(c, n, YT_SEQ, "indicators"))
        return;
    c->p->irules = eng_cc_alloc(c, (n->nitems + 1) * sizeof(irule_t));
    if (c->p->irules == NULL)
        return;
    for (size_t i = 0; i < n->nitems; i++)
        cirule(c, &c->p->irules[i], n->items[i]);
    c->p->nirules = n->nitems;
}

/* ---- samples ---------------------------------------------------------------------------- */

/* The samples folder: the `samples:` key relative to the mapping file, or
 * samples/<source> beside it. Only the name: the loader opens it. */
static void csamples(cc_t *c, const yt_node_t *n)
{
    eng_program_t *p = c->p;
    const char *rel;
    if (n != NULL) {
        if (!eng_cc_is_kind(c, n, YT_SCALAR, "samples"))
            return;
        rel = n->str;
        p->samples_declared = true;
        p->samples_line = n->line;
        p->samples_col = n->col;
    } else {
        if (p->source == NULL)
            return;
        rel = eng_cc_printf(c, "samples/%s", p->source);
    }
    if (rel == NULL)
        return;
    const char *slash = strrchr(c->file, '/');
    if (rel[0] == '/' || slash == NULL)
        p->samples_dir = rel;
    else
        p->samples_dir = eng_cc_printf(c, "%.*s/%s", (int)(slash - c->file), c->file, rel);
}

/* ---- the file ---------------------------------------------------------------------------- */

static const char *const top_keys[] = {"source", "display_name", "signature",  "auth",   "match",
                                       "split",  "fields",       "indicators", "samples"};

/* `auth: {query_key: BOOL}`: how the server may authenticate this source's
 * requests beyond headers (an API key in the query string, for senders that
 * cannot set headers). */
static void cauth(cc_t *c, const yt_node_t *n)
{
    static const char *const auth_keys[] = {"query_key"};
    if (!eng_cc_is_kind(c, n, YT_MAP, "auth"))
        return;
    eng_cc_check_keys(c, n, auth_keys, AM_ARRAY_LEN(auth_keys), NULL, 0);
    const yt_node_t *v = eng_yt_get(n, "query_key");
    bool on = false;
    if (v != NULL && eng_cc_get_bool(c, v, "auth.query_key", &on))
        c->p->auth_query_key = on;
}

static bool valid_source(const char *s, size_t len)
{
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                  (i > 0 && (ch == '_' || ch == '-'));
        if (!ok)
            return false;
    }
    return true;
}

static void ctop(cc_t *c, const yt_node_t *root)
{
    eng_program_t *p = c->p;
    eng_cc_check_keys(c, root, top_keys, AM_ARRAY_LEN(top_keys), NULL, 0);
    const yt_node_t *v;
    if ((v = eng_yt_get(root, "source")) == NULL) {
        CC_ERR(c, root, "missing required key 'source'");
    } else if (eng_cc_is_kind(c, v, YT_SCALAR, "source")) {
        if (!valid_source(v->str, v->len))
            CC_ERR(c, v, "bad source name '%s': use 1-64 of a-z, 0-9, '_', '-' (not first)",
                   v->str);
        else
            p->source = v->str;
        p->source_line = v->line;
        p->source_col = v->col;
    }
    if ((v = eng_yt_get(root, "display_name")) != NULL &&
        eng_cc_is_kind(c, v, YT_SCALAR, "display_name"))
        p->display_name = v->str;
    if (p->display_name == NULL)
        p->display_name = p->source != NULL ? p->source : "unnamed";
    p->untitled = eng_cc_printf(c, "Untitled %s alert", p->display_name);
    if ((v = eng_yt_get(root, "signature")) != NULL) {
        int rc = eng_sig_compile(&p->sig, v, c->file, c->a, c->d);
        if (rc == AM_ELIMIT)
            c->limit = true;
        else if (rc != 0)
            c->errors++;
    }
    if ((v = eng_yt_get(root, "auth")) != NULL)
        cauth(c, v);
    if ((v = eng_yt_get(root, "match")) != NULL)
        cmatch(c, v);
    if ((v = eng_yt_get(root, "split")) != NULL) {
        p->split = eng_cc_path(c, v, "split");
        p->split_where = eng_cc_printf(c, "%s:%d", c->base, v->line);
    }
    if ((v = eng_yt_get(root, "fields")) == NULL)
        CC_ERR(c, root, "missing required key 'fields'");
    else
        cfields(c, v);
    const yt_node_t *fk = eng_cc_key_node(root, "fields");
    p->untitled_origin = eng_cc_origin(c, fk != NULL ? fk->line : 1, "untitled");
    if ((v = eng_yt_get(root, "indicators")) != NULL)
        cindicators(c, v);
    csamples(c, eng_yt_get(root, "samples"));
}

static int too_large(cc_t *c)
{
    am_diags_add(c->d, c->file, 0, 0, "mapping set larger than its memory bound");
    return AM_ELIMIT;
}

int eng_compile(eng_program_t **out, eng_set_t *s, const char *file, const char *text, size_t len,
                am_diags_t *d)
{
    *out = NULL;
    cc_t c = {.set = s, .a = s->arena, .file = file, .d = d, .jit = eng_pcre2_jit_enabled()};
    const char *slash = strrchr(file, '/');
    c.base = slash != NULL ? slash + 1 : file;
    if ((c.p = eng_program_new(s, file)) == NULL)
        return too_large(&c);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        am_oom(0); /* SHA-256 fails only when OpenSSL cannot allocate */
    am_hex(c.p->content_sha256, md, 32);

    yt_node_t *root = NULL;
    bool whole = false;
    int rc = eng_yt_parse_all(&root, &whole, c.a, file, text, len, d);
    if (rc == AM_ELIMIT)
        return too_large(&c);
    if (rc != 0 && !whole)
        return AM_EINVAL; /* the tree is partial: checking it would only add noise */
    if (rc != 0)
        c.errors++; /* duplicate keys and the like: reported, keep checking */
    if (root == NULL) {
        eng_cc_err(&c, 1, 1, "empty mapping file (expected a mapping with source and fields)");
        return AM_EINVAL;
    }
    if (root->kind != YT_MAP) {
        CC_ERR(&c, root, "a mapping file must be a YAML mapping, got %s", eng_cc_kind_of(root));
        return AM_EINVAL;
    }
    ctop(&c, root);
    if (c.limit)
        return too_large(&c);
    *out = c.p;
    return c.errors > 0 ? AM_EINVAL : 0;
}
