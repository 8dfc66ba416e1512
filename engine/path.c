/* engine/path.c - compiling and walking payload paths; see path.h. */
#include "path.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_SEGS 64

typedef struct {
    const char *t;
    size_t len, pos;
    am_arena_t *a;
    size_t err_off;
    const char *err_msg;
} parser_t;

typedef struct {
    path_seg_t seg;
    bool dotted; /* a plain name that may join with the next plain name */
} pseg_t;

static int fail(parser_t *ps, size_t off, const char *msg)
{
    ps->err_off = off;
    ps->err_msg = msg;
    return AM_EINVAL;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Parses the inside of [ ... ]; ps->pos is at '['. */
static int parse_bracket(parser_t *ps, pseg_t *s)
{
    size_t open = ps->pos;
    size_t p = open + 1;
    const char *t = ps->t;
    if (p >= ps->len)
        return fail(ps, open, "unterminated '['");
    char c = t[p];
    if (c == '*') {
        if (p + 1 >= ps->len || t[p + 1] != ']')
            return fail(ps, p + 1 < ps->len ? p + 1 : open, "expected ']' after '*'");
        s->seg.kind = SEG_WILD;
        ps->pos = p + 2;
        return 0;
    }
    if (c == '\'' || c == '"') {
        const char *q = memchr(t + p + 1, c, ps->len - p - 1);
        if (q == NULL)
            return fail(ps, p, "unterminated quoted key");
        size_t qe = (size_t)(q - t);
        if (qe + 1 >= ps->len || t[qe + 1] != ']')
            return fail(ps, qe + 1 < ps->len ? qe + 1 : open, "expected ']' after quoted key");
        if (qe == p + 1)
            return fail(ps, p, "empty quoted key");
        s->seg.kind = SEG_KEY;
        s->seg.klen = qe - p - 1;
        s->seg.key = am_arena_strndup(ps->a, t + p + 1, s->seg.klen);
        if (s->seg.key == NULL)
            return AM_ELIMIT;
        ps->pos = qe + 2;
        return 0;
    }
    if (c == '-' || is_digit(c)) {
        size_t q = p + (c == '-');
        long v = 0;
        if (q >= ps->len || !is_digit(t[q]))
            return fail(ps, p, "expected a number after '-'");
        while (q < ps->len && is_digit(t[q])) {
            if (v > 100000000)
                return fail(ps, p, "index too large");
            v = v * 10 + (t[q] - '0');
            q++;
        }
        if (q >= ps->len)
            return fail(ps, open, "unterminated '['");
        if (t[q] != ']')
            return fail(ps, q, "expected ']' after the index");
        s->seg.kind = SEG_INDEX;
        s->seg.index = c == '-' ? -v : v;
        ps->pos = q + 1;
        return 0;
    }
    if (c == '?') {
        size_t q = p + 1;
        size_t sub0 = q;
        while (q < ps->len && t[q] != '=' && t[q] != ']')
            q++;
        if (q >= ps->len)
            return fail(ps, open, "unterminated '['");
        if (q == sub0)
            return fail(ps, sub0, "a filter needs a field name");
        size_t suboff, sublen = q - sub0;
        const char *submsg;
        int rc = eng_path_compile(&s->seg.fpath, t + sub0, sublen, ps->a, &suboff, &submsg);
        if (rc == AM_EINVAL)
            return fail(ps, sub0 + suboff, submsg);
        if (rc != 0)
            return rc;
        s->seg.kind = SEG_FILTER;
        if (t[q] == ']') {
            ps->pos = q + 1;
            return 0;
        }
        q++; /* '=' */
        size_t v0 = q, vlen;
        if (q < ps->len && (t[q] == '\'' || t[q] == '"')) {
            const char *e = memchr(t + q + 1, t[q], ps->len - q - 1);
            if (e == NULL)
                return fail(ps, q, "unterminated quoted value");
            v0 = q + 1;
            vlen = (size_t)(e - t) - v0;
            q = (size_t)(e - t) + 1;
            if (q >= ps->len || t[q] != ']')
                return fail(ps, q < ps->len ? q : open, "expected ']' after the filter value");
        } else {
            while (q < ps->len && t[q] != ']')
                q++;
            if (q >= ps->len)
                return fail(ps, open, "unterminated '['");
            vlen = q - v0;
        }
        s->seg.fval = am_arena_strndup(ps->a, t + v0, vlen);
        if (s->seg.fval == NULL)
            return AM_ELIMIT;
        s->seg.fvlen = vlen;
        ps->pos = q + 1;
        return 0;
    }
    if (c == ']')
        return fail(ps, p, "empty '[]'");
    return fail(ps, p, "expected a number, '*', a quoted key or '?filter' inside '[]'");
}

static int build_joins(am_arena_t *a, pseg_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t run = 0;
        /* a name followed by '.' is always followed by another plain name */
        while (i + run + 1 < n && v[i + run].dotted)
            run++;
        if (run == 0)
            continue;
        path_seg_t *s = &v[i].seg;
        s->join = am_arena_alloc(a, run * sizeof(char *));
        s->joinlen = am_arena_alloc(a, run * sizeof(size_t));
        if (s->join == NULL || s->joinlen == NULL)
            return AM_ELIMIT;
        size_t total = s->klen;
        for (size_t k = 1; k <= run; k++) {
            total += 1 + v[i + k].seg.klen;
            char *j = am_arena_alloc(a, total + 1);
            if (j == NULL)
                return AM_ELIMIT;
            size_t off = 0;
            for (size_t m = 0; m <= k; m++) {
                if (m > 0)
                    j[off++] = '.';
                memcpy(j + off, v[i + m].seg.key, v[i + m].seg.klen);
                off += v[i + m].seg.klen;
            }
            j[off] = '\0';
            s->join[k - 1] = j;
            s->joinlen[k - 1] = off;
        }
        s->njoin = (unsigned)run;
    }
    return 0;
}

int eng_path_compile(epath_t **out, const char *text, size_t len, am_arena_t *a, size_t *err_off,
                     const char **err_msg)
{
    parser_t ps = {.t = text, .len = len, .a = a};
    pseg_t segs[MAX_SEGS];
    size_t n = 0;
    int rc = 0;
    *out = NULL;
    epath_t *p = am_arena_calloc(a, 1, sizeof(*p));
    if (p == NULL)
        return AM_ELIMIT;
    p->text = am_arena_strndup(a, text, len);
    if (p->text == NULL)
        return AM_ELIMIT;
    if (len == 0) {
        rc = fail(&ps, 0, "empty path");
        goto done;
    }
    if (memchr(text, '\0', len) != NULL) {
        rc = fail(&ps, (size_t)((const char *)memchr(text, '\0', len) - text), "NUL in path");
        goto done;
    }
    if (text[0] == '$') {
        p->root = true;
        ps.pos = 1;
        if (ps.pos < len && text[ps.pos] == '.') {
            ps.pos++;
            if (ps.pos >= len) {
                rc = fail(&ps, ps.pos - 1, "path ends with '.'");
                goto done;
            }
        } else if (ps.pos < len && text[ps.pos] != '[') {
            rc = fail(&ps, ps.pos, "expected '.' or '[' after '$'");
            goto done;
        }
    }
    bool need_name = ps.pos < len && text[ps.pos] != '[';
    while (ps.pos < len) {
        if (n == MAX_SEGS) {
            rc = fail(&ps, ps.pos, "path has more than 64 segments");
            goto done;
        }
        pseg_t *s = &segs[n];
        memset(s, 0, sizeof(*s));
        char c = text[ps.pos];
        if (c == '[') {
            rc = parse_bracket(&ps, s);
            if (rc != 0)
                goto done;
        } else if (c == '.') {
            rc = fail(&ps, ps.pos, need_name ? "empty name" : "unexpected '.'");
            goto done;
        } else if (c == ']') {
            rc = fail(&ps, ps.pos, "unexpected ']'");
            goto done;
        } else {
            if (!need_name) {
                rc = fail(&ps, ps.pos, "expected '.' or '['");
                goto done;
            }
            size_t b = ps.pos;
            while (ps.pos < len && text[ps.pos] != '.' && text[ps.pos] != '[') {
                if (text[ps.pos] == ']') {
                    rc = fail(&ps, ps.pos, "unexpected ']'");
                    goto done;
                }
                ps.pos++;
            }
            s->seg.kind = SEG_KEY;
            s->seg.klen = ps.pos - b;
            s->seg.key = am_arena_strndup(a, text + b, s->seg.klen);
            if (s->seg.key == NULL) {
                rc = AM_ELIMIT;
                goto done;
            }
        }
        if (s->seg.kind == SEG_WILD || s->seg.kind == SEG_FILTER)
            p->multi = true;
        n++;
        need_name = false;
        if (ps.pos < len && text[ps.pos] == '.') {
            ps.pos++;
            if (ps.pos >= len) {
                rc = fail(&ps, ps.pos - 1, "path ends with '.'");
                goto done;
            }
            if (text[ps.pos] == '[' || text[ps.pos] == '.') {
                rc = fail(&ps, ps.pos, "expected a name after '.'");
                goto done;
            }
            need_name = true;
            s->dotted = s->seg.kind == SEG_KEY && s->seg.join == NULL && c != '[';
        } else if (ps.pos < len && text[ps.pos] != '[') {
            rc = fail(&ps, ps.pos, "expected '.' or '['");
            goto done;
        }
    }
    rc = build_joins(a, segs, n);
    if (rc != 0)
        goto done;
    if (n > 0) {
        p->segs = am_arena_alloc(a, n * sizeof(path_seg_t));
        if (p->segs == NULL) {
            rc = AM_ELIMIT;
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            p->segs[i] = segs[i].seg;
    }
    p->nsegs = n;
    *out = p;
done:
    if (rc == AM_EINVAL) {
        *err_off = ps.err_off;
        *err_msg = ps.err_msg;
    }
    return rc;
}

/* ---- evaluation ----------------------------------------------------------- */

const char *eng_path_scalar_text(const json_t *v, char *buf, size_t *len)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        *len = json_string_length(v);
        return json_string_value(v);
    case JSON_INTEGER: {
        int n = snprintf(buf, 32, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *len = (size_t)n;
        return buf;
    }
    case JSON_REAL: {
        double d = json_real_value(v);
        int n = 0;
        for (int prec = 15; prec <= 17; prec++) {
            n = snprintf(buf, 32, "%.*g", prec, d);
            if (strtod(buf, NULL) == d)
                break;
        }
        *len = (size_t)n;
        return buf;
    }
    case JSON_TRUE:
        *len = 4;
        return "true";
    case JSON_FALSE:
        *len = 5;
        return "false";
    default:
        return NULL;
    }
}

static bool text_matches(const json_t *x, const char *want, size_t wlen)
{
    char buf[32];
    size_t len;
    const char *s = eng_path_scalar_text(x, buf, &len);
    return s != NULL && len == wlen && strncasecmp(s, want, len) == 0;
}

static bool filter_matches(const path_seg_t *s, json_t *elem, json_t *root)
{
    json_t *x = eng_path_first(s->fpath, elem, root);
    if (x == NULL)
        return false;
    if (s->fval == NULL)
        return true;
    if (json_is_array(x)) {
        size_t i;
        json_t *e;
        json_array_foreach(x, i, e)
        {
            if (text_matches(e, s->fval, s->fvlen))
                return true;
        }
        return false;
    }
    return text_matches(x, s->fval, s->fvlen);
}

static int walk(const epath_t *p, size_t i, json_t *v, json_t *root, path_visit_fn fn, void *ctx)
{
    while (i < p->nsegs) {
        const path_seg_t *s = &p->segs[i];
        switch (s->kind) {
        case SEG_KEY: {
            if (!json_is_object(v))
                return 0;
            json_t *x = NULL;
            unsigned k;
            for (k = s->njoin; k > 0; k--) {
                x = json_object_getn(v, s->join[k - 1], s->joinlen[k - 1]);
                if (x != NULL && !json_is_null(x))
                    break;
            }
            if (k == 0)
                x = json_object_getn(v, s->key, s->klen);
            if (x == NULL || json_is_null(x))
                return 0;
            v = x;
            i += 1 + k;
            break;
        }
        case SEG_INDEX: {
            if (!json_is_array(v))
                return 0;
            long n = (long)json_array_size(v);
            long idx = s->index < 0 ? n + s->index : s->index;
            if (idx < 0 || idx >= n)
                return 0;
            v = json_array_get(v, (size_t)idx);
            i++;
            break;
        }
        case SEG_WILD: {
            if (json_is_array(v)) {
                size_t k;
                json_t *e;
                json_array_foreach(v, k, e)
                {
                    if (json_is_null(e))
                        continue;
                    int rc = walk(p, i + 1, e, root, fn, ctx);
                    if (rc != 0)
                        return rc;
                }
            } else if (json_is_object(v)) {
                const char *key;
                json_t *e;
                json_object_foreach(v, key, e)
                {
                    if (json_is_null(e))
                        continue;
                    int rc = walk(p, i + 1, e, root, fn, ctx);
                    if (rc != 0)
                        return rc;
                }
            }
            return 0;
        }
        case SEG_FILTER: {
            if (json_is_array(v)) {
                size_t k;
                json_t *e;
                json_array_foreach(v, k, e)
                {
                    if (json_is_null(e) || !filter_matches(s, e, root))
                        continue;
                    int rc = walk(p, i + 1, e, root, fn, ctx);
                    if (rc != 0)
                        return rc;
                }
                return 0;
            }
            if (!filter_matches(s, v, root))
                return 0;
            i++;
            break;
        }
        }
        if (v == NULL || json_is_null(v))
            return 0;
    }
    return fn(ctx, v);
}

int eng_path_visit(const epath_t *p, json_t *cur, json_t *root, path_visit_fn fn, void *ctx)
{
    json_t *start = p->root ? root : cur;
    if (start == NULL || json_is_null(start))
        return 0;
    return walk(p, 0, start, root, fn, ctx);
}

static int take_first(void *ctx, json_t *v)
{
    *(json_t **)ctx = v;
    return 1;
}

json_t *eng_path_first(const epath_t *p, json_t *cur, json_t *root)
{
    json_t *v = NULL;
    if (!p->multi && p->nsegs == 1 && p->segs[0].kind == SEG_KEY && !p->root) {
        /* fast path: one plain name */
        if (!json_is_object(cur))
            return NULL;
        v = json_object_getn(cur, p->segs[0].key, p->segs[0].klen);
        return v == NULL || json_is_null(v) ? NULL : v;
    }
    eng_path_visit(p, cur, root, take_first, &v);
    return v;
}
