/*
 * engine/expr.c - compiling value expressions (docs/mapping-language.md,
 * "Value expressions"): fallback paths, constants, templates, first,
 * defaults, and the transforms (regex, trim, lower/upper, map, ranges,
 * time). Lookup tables are built here; tables.c holds their hash and the
 * lookup the executor runs.
 */
#include "compile.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static map_table_t *cmap(cc_t *c, const yt_node_t *n)
{
    if (n->kind != YT_MAP) {
        CC_ERR(c, n, "'map' must be a mapping of strings, got %s", eng_cc_kind_of(n));
        return NULL;
    }
    size_t cap = 4;
    while (cap < n->npairs * 2)
        cap *= 2;
    map_table_t *m = eng_cc_alloc(c, sizeof(*m));
    int *lines = eng_cc_alloc(c, cap * sizeof(int));
    if (m == NULL || lines == NULL ||
        (m->slots = eng_cc_alloc(c, cap * sizeof(map_slot_t))) == NULL)
        return NULL;
    m->mask = cap - 1;
    bool ok = true;
    for (size_t i = 0; i < n->npairs; i++) {
        const yt_node_t *k = n->pairs[i].key, *v = n->pairs[i].value;
        if (v->kind != YT_SCALAR) {
            CC_ERR(c, v, "'map' must be a mapping of strings, got %s for '%s'", eng_cc_kind_of(v),
                   k->str);
            ok = false;
            continue;
        }
        if (k->len > 255) {
            CC_ERR(c, k, "map key longer than 255 bytes");
            ok = false;
            continue;
        }
        char *low = am_arena_strndup(c->a, k->str, k->len);
        if (low == NULL) {
            c->limit = true;
            return NULL;
        }
        for (size_t j = 0; j < k->len; j++)
            low[j] = (char)tolower((unsigned char)low[j]);
        uint32_t h = eng_map_hash(low, k->len);
        size_t j = h & m->mask;
        bool dup = false;
        for (; m->slots[j].key != NULL; j = (j + 1) & m->mask) {
            if (m->slots[j].klen == k->len && memcmp(m->slots[j].key, low, k->len) == 0) {
                CC_ERR(c, k, "duplicate map key '%s' (keys are case-insensitive; first at line %d)",
                       k->str, lines[j]);
                dup = true;
                ok = false;
                break;
            }
        }
        if (dup)
            continue;
        m->slots[j] = (map_slot_t){low, k->len, h, eng_yt_is_null(v) ? NULL : v->str};
        lines[j] = k->line;
        if (k->len > m->maxkey)
            m->maxkey = k->len;
    }
    return ok ? m : NULL;
}

static range_t *cranges(cc_t *c, const yt_node_t *n, size_t *count)
{
    *count = 0;
    if (n->kind != YT_SEQ || n->nitems == 0) {
        CC_ERR(c, n, "'ranges' must be a non-empty list of {min, max, value}, got %s",
               n->kind == YT_SEQ ? "an empty list" : eng_cc_kind_of(n));
        return NULL;
    }
    range_t *r = eng_cc_alloc(c, n->nitems * sizeof(*r));
    if (r == NULL)
        return NULL;
    static const char *const keys[] = {"min", "max", "value"};
    bool ok = true;
    for (size_t i = 0; i < n->nitems; i++) {
        const yt_node_t *it = n->items[i];
        if (!eng_cc_is_kind(c, it, YT_MAP, "ranges[]")) {
            ok = false;
            continue;
        }
        int before = c->errors;
        eng_cc_check_keys(c, it, keys, 3, NULL, 0);
        const yt_node_t *mn = eng_yt_get(it, "min"), *mx = eng_yt_get(it, "max"),
                        *v = eng_yt_get(it, "value");
        if (mn != NULL && eng_cc_get_number(c, mn, "min", &r[i].min))
            r[i].has_min = true;
        if (mx != NULL && eng_cc_get_number(c, mx, "max", &r[i].max))
            r[i].has_max = true;
        if (v == NULL)
            CC_ERR(c, it, "a range needs 'value'");
        else if (eng_cc_is_kind(c, v, YT_SCALAR, "value"))
            r[i].value = v->str;
        if (r[i].has_min && r[i].has_max && r[i].min > r[i].max)
            CC_ERR(c, it, "range min %g is above max %g", r[i].min, r[i].max);
        ok = ok && c->errors == before;
    }
    *count = n->nitems;
    return ok ? r : NULL;
}

/* ---- templates ---------------------------------------------------------------- */

static bool ctemplate(cc_t *c, expr_t *e, const yt_node_t *n)
{
    if (!eng_cc_is_kind(c, n, YT_SCALAR, "template"))
        return false;
    const char *s = n->str;
    size_t len = n->len, i = 0, nparts = 0;
    int col0 = n->col + (n->quoted ? 1 : 0);
    tpart_t *parts = eng_cc_alloc(c, (len + 1) * sizeof(*parts));
    char *lit = eng_cc_alloc(c, len + 1);
    if (parts == NULL || lit == NULL)
        return false;
    size_t litlen = 0;
    bool ok = true;
    while (i < len) {
        if (s[i] == '{' && i + 1 < len && s[i + 1] == '{') {
            lit[litlen++] = '{';
            i += 2;
        } else if (s[i] == '}' && i + 1 < len && s[i + 1] == '}') {
            lit[litlen++] = '}';
            i += 2;
        } else if (s[i] == '}') {
            eng_cc_err(c, n->line, col0 + (int)i,
                       "unmatched '}' in template (write '}}' for a brace)");
            return false;
        } else if (s[i] == '{') {
            const char *close = memchr(s + i, '}', len - i);
            if (close == NULL) {
                eng_cc_err(c, n->line, col0 + (int)i, "unterminated '{' in template");
                return false;
            }
            size_t hl = (size_t)(close - s) - i - 1;
            if (hl == 0) {
                eng_cc_err(c, n->line, col0 + (int)i, "empty '{}' in template");
                return false;
            }
            if (litlen > 0) {
                parts[nparts].lit = am_arena_strndup(c->a, lit, litlen);
                parts[nparts++].litlen = litlen;
                litlen = 0;
            }
            epath_t *h = eng_cc_path_at(c, n, s + i + 1, hl, col0 + (int)i + 1);
            if (h == NULL)
                ok = false;
            parts[nparts++].hole = h;
            i += hl + 2;
        } else {
            lit[litlen++] = s[i++];
        }
    }
    if (litlen > 0) {
        parts[nparts].lit = am_arena_strndup(c->a, lit, litlen);
        parts[nparts].litlen = litlen;
        nparts++;
    }
    e->parts = parts;
    e->nparts = nparts;
    return ok;
}

/* ---- value expressions ---------------------------------------------------------- */

static const char *const expr_keys[] = {
    "path",  "const", "template", "first",       "default", "regex", "lower",
    "upper", "trim",  "map",      "map_default", "ranges",  "time",
};
static const char *const expr_kinds[] = {"path", "const", "template", "first"};

static void expr_from_path(cc_t *c, expr_t *e, const yt_node_t *n, int line)
{
    e->kind = EX_PATH;
    e->paths = eng_cc_paths(c, n, "path", &e->npaths);
    if (e->paths == NULL)
        return;
    e->path_origin = eng_cc_alloc(c, e->npaths * sizeof(char *));
    if (e->path_origin == NULL)
        return;
    for (size_t i = 0; i < e->npaths; i++)
        e->path_origin[i] = eng_cc_origin(c, line, e->paths[i]->text);
    e->text = e->paths[0]->text;
}

static void expr_transforms(cc_t *c, expr_t *e, const yt_node_t *n, unsigned flags)
{
    const yt_node_t *v;
    if ((v = eng_yt_get(n, "regex")) != NULL && (e->re = eng_cc_regex(c, v, "regex")) != NULL) {
        int g = pcre2_substring_number_from_name(e->re, (PCRE2_SPTR) "value");
        uint32_t groups = 0;
        pcre2_pattern_info(e->re, PCRE2_INFO_CAPTURECOUNT, &groups);
        e->re_group = g > 0 ? (uint32_t)g : groups >= 1 ? 1 : 0;
    }
    if ((v = eng_yt_get(n, "lower")) != NULL)
        eng_cc_get_bool(c, v, "lower", &e->lower);
    if ((v = eng_yt_get(n, "upper")) != NULL)
        eng_cc_get_bool(c, v, "upper", &e->upper);
    if (e->lower && e->upper)
        CC_ERR(c, v, "'lower' and 'upper' cannot both be true");
    if ((v = eng_yt_get(n, "trim")) != NULL)
        eng_cc_get_bool(c, v, "trim", &e->trim);
    if ((v = eng_yt_get(n, "map")) != NULL)
        e->map = cmap(c, v);
    if ((v = eng_yt_get(n, "map_default")) != NULL) {
        if (eng_yt_get(n, "map") == NULL)
            CC_ERR(c, eng_cc_key_node(n, "map_default"), "'map_default' needs 'map'");
        if (v->kind != YT_SCALAR)
            CC_ERR(c, v, "'map_default' must be a string, got %s", eng_cc_kind_of(v));
        e->has_map_default = true;
        e->map_default = eng_yt_is_null(v) || v->kind != YT_SCALAR ? NULL : v->str;
    }
    if ((v = eng_yt_get(n, "ranges")) != NULL)
        e->ranges = cranges(c, v, &e->nranges);
    if ((v = eng_yt_get(n, "time")) != NULL) {
        if (!(flags & EXF_TIME)) {
            CC_ERR(c, eng_cc_key_node(n, "time"), "'time' is only allowed in occurred_at");
        } else if (eng_cc_is_kind(c, v, YT_SCALAR, "time")) {
            if (eng_tp_format_parse(&e->time, v->str) != 0)
                CC_ERR(c, v,
                       "unknown time format '%s' (expected one of: auto, iso8601, epoch_s, "
                       "epoch_ms)",
                       v->str);
            else
                e->has_time = true;
        }
    }
    e->has_transform =
        e->re != NULL || e->lower || e->upper || e->trim || e->map != NULL || e->nranges > 0;
}

expr_t *eng_cc_expr(cc_t *c, const yt_node_t *n, int line, const char *what, unsigned flags,
                    const char *const *extra, size_t nextra)
{
    expr_t *e = eng_cc_alloc(c, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->line = line;
    if (flags & EXF_TIME) {
        e->time = TP_AUTO;
        e->has_time = true;
    }
    if (n->kind == YT_SCALAR) {
        if (eng_yt_is_null(n)) {
            CC_ERR(c, n, "'%s' needs a value expression, got null", what);
            return NULL;
        }
        expr_from_path(c, e, n, line);
        return e;
    }
    if (n->kind == YT_SEQ) { /* shorthand for {path: [fallbacks]} */
        int before = c->errors;
        expr_from_path(c, e, n, line);
        return c->errors == before ? e : NULL;
    }
    if (n->kind != YT_MAP) {
        CC_ERR(c, n, "'%s' must be a path or a value expression mapping, got %s", what,
               eng_cc_kind_of(n));
        return NULL;
    }
    int before = c->errors;
    eng_cc_check_keys(c, n, expr_keys, AM_ARRAY_LEN(expr_keys), extra, nextra);
    const yt_node_t *kind_key = NULL;
    for (size_t i = 0; i < n->npairs; i++) {
        const yt_node_t *k = n->pairs[i].key;
        if (!eng_cc_key_in(k, expr_kinds, AM_ARRAY_LEN(expr_kinds)))
            continue;
        if (kind_key != NULL) {
            CC_ERR(c, k,
                   "a value expression takes only one of path, const, template, first "
                   "('%s' and '%s')",
                   kind_key->str, k->str);
            continue;
        }
        kind_key = k;
        const yt_node_t *v = n->pairs[i].value;
        if (strcmp(k->str, "path") == 0) {
            expr_from_path(c, e, v, line);
        } else if (strcmp(k->str, "const") == 0) {
            e->kind = EX_CONST;
            if (v->kind != YT_SCALAR) {
                CC_ERR(c, v, "'const' must be a string, got %s", eng_cc_kind_of(v));
            } else {
                e->cval = v->str;
                e->cvlen = v->len;
                e->text = v->str;
                e->origin = eng_cc_origin(c, line, "const");
            }
        } else if (strcmp(k->str, "template") == 0) {
            e->kind = EX_TEMPLATE;
            if (ctemplate(c, e, v)) {
                e->text = v->str;
                e->origin = eng_cc_origin(c, line, "template");
            }
        } else {
            e->kind = EX_FIRST;
            if (v->kind != YT_SEQ || v->nitems == 0) {
                CC_ERR(c, v, "'first' must be a non-empty list of value expressions, got %s",
                       v->kind == YT_SEQ ? "an empty list" : eng_cc_kind_of(v));
                continue;
            }
            e->alts = eng_cc_alloc(c, v->nitems * sizeof(expr_t *));
            if (e->alts == NULL)
                return NULL;
            for (size_t j = 0; j < v->nitems; j++)
                e->alts[j] =
                    eng_cc_expr(c, v->items[j], line, "first[]", flags & ~EXF_TIME, NULL, 0);
            e->nalts = v->nitems;
        }
    }
    if (kind_key == NULL)
        CC_ERR(c, n, "a value expression needs one of path, const, template, first");
    const yt_node_t *v = eng_yt_get(n, "default");
    if (v != NULL) {
        if (v->kind != YT_SCALAR || eng_yt_is_null(v)) {
            CC_ERR(c, v, "'default' must be a string, got %s", eng_cc_kind_of(v));
        } else {
            e->dflt = v->str;
            e->dlen = v->len;
            e->dflt_origin = eng_cc_origin(c, line, "default");
        }
    }
    expr_transforms(c, e, n, flags);
    return c->errors == before ? e : NULL;
}
