/*
 * engine/exec.c - running a compiled program over a payload (eng_run).
 *
 * The executor only reads the program. All it produces lives in the arena of
 * the call; the payload is borrowed and walked in place (no copies of input
 * strings except the values that end up in the alert). Bounds: split size
 * (ENG_MAX_SPLIT), indicators and tags per alert (ENG_MAX_INDICATORS),
 * nesting of scanned values (ENG_MAX_DEPTH) and the PCRE2 match limits of
 * ioc_match_context().
 */
#include "exec.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int eng_ex_fail(run_t *r, int rc, const char *code, const char *fmt, ...)
{
    /* The first error wins: a later failure while unwinding must not
     * replace the message that explains the first one. */
    if (r->err != NULL && r->err->code == NULL) {
        r->err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err->message, sizeof(r->err->message), fmt, ap);
        va_end(ap);
    }
    return rc;
}

int eng_ex_no_room(run_t *r)
{
    return eng_ex_fail(r, AM_ELIMIT, "LIMIT_EXCEEDED",
                       "the request needs more memory than allowed");
}

static int fail_code(run_t *r, int rc)
{
    switch (rc) {
    case AM_ELIMIT:
        return eng_ex_fail(r, rc, "LIMIT_EXCEEDED", "more than %d indicators or tags in one alert",
                           ENG_MAX_INDICATORS);
    default:
        return eng_ex_fail(r, rc, "INTERNAL", "normalization failed (%d)", rc);
    }
}

pcre2_match_data *eng_ex_match_data(run_t *r)
{
    if (r->md == NULL) {
        if (r->gctx == NULL)
            r->gctx = ioc_pcre2_context(r->a);
        if (r->gctx != NULL)
            r->md = pcre2_match_data_create(r->p->max_groups ? r->p->max_groups : 1, r->gctx);
    }
    return r->md;
}

/* ---- value expressions ------------------------------------------------------- */

/* Expressions from the innermost to the outermost 'first': each applies its
 * transforms in turn. */
typedef struct chain {
    const expr_t *e;
    const struct chain *outer;
} chain_t;

typedef struct ev {
    run_t *r;
    emit_fn fn;
    void *ctx;
    size_t accepted;
    bool stop;
    const char *origin;
    const char *text;
} ev_t;

static bool to_number(const val_t *v, double *out)
{
    if (v->j != NULL && json_is_number(v->j)) {
        *out = json_number_value(v->j);
        return true;
    }
    char buf[64];
    size_t len = v->len;
    const char *s = v->s;
    while (len > 0 && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    *out = strtod(buf, &end);
    return *end == '\0';
}

/* Applies e's transforms to v. Returns 1 when a value remains, 0 when it
 * became absent, negative on error. */
static int transform(run_t *r, const expr_t *e, val_t *v)
{
    if (!e->has_transform)
        return 1;
    if (e->re != NULL) {
        pcre2_match_data *md = eng_ex_match_data(r);
        if (md == NULL)
            return eng_ex_no_room(r);
        int rc = pcre2_match(e->re, (PCRE2_SPTR)v->s, v->len, 0, PCRE2_NO_UTF_CHECK, md,
                             ioc_match_context());
        if (rc < 0)
            return 0;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        uint32_t g = e->re_group;
        if ((uint32_t)rc <= g || ov[2 * g] == PCRE2_UNSET)
            return 0;
        v->s += ov[2 * g];
        v->len = ov[2 * g + 1] - ov[2 * g];
        v->j = NULL;
    }
    if (e->trim) {
        while (v->len > 0 && isspace((unsigned char)v->s[0])) {
            v->s++;
            v->len--;
        }
        while (v->len > 0 && isspace((unsigned char)v->s[v->len - 1]))
            v->len--;
        v->j = NULL;
    }
    if (e->lower || e->upper) {
        char *c = am_arena_alloc(r->a, v->len + 1);
        if (c == NULL)
            return eng_ex_no_room(r);
        for (size_t i = 0; i < v->len; i++)
            c[i] = (char)(e->lower ? tolower((unsigned char)v->s[i])
                                   : toupper((unsigned char)v->s[i]));
        c[v->len] = '\0';
        v->s = c;
        v->j = NULL;
    }
    if (e->map != NULL) {
        const map_slot_t *s = eng_map_lookup(e->map, v->s, v->len);
        const char *to = v->s;
        if (s != NULL)
            to = s->value;
        else if (e->has_map_default)
            to = e->map_default;
        if (to == NULL)
            return 0;
        if (to != v->s) {
            v->s = to;
            v->len = strlen(to);
            v->j = NULL;
        }
    }
    if (e->nranges > 0) {
        double x;
        if (!to_number(v, &x))
            return 0;
        size_t i;
        for (i = 0; i < e->nranges; i++) {
            const range_t *g = &e->ranges[i];
            if ((!g->has_min || x >= g->min) && (!g->has_max || x <= g->max))
                break;
        }
        if (i == e->nranges)
            return 0;
        v->s = e->ranges[i].value;
        v->len = strlen(v->s);
        v->j = NULL;
    }
    return 1;
}

static int emit(ev_t *ev, const chain_t *ch, json_t *j, const char *s, size_t len)
{
    char nbuf[32];
    val_t v = {.j = j, .origin = ev->origin, .text = ev->text};
    if (s == NULL) {
        s = eng_path_scalar_text(j, nbuf, &len);
        if (s == NULL)
            return 0; /* objects are not values */
    }
    v.s = s;
    v.len = len;
    for (; ch != NULL; ch = ch->outer) {
        int rc = transform(ev->r, ch->e, &v);
        if (rc <= 0)
            return rc;
    }
    if (v.len == 0)
        return 0;
    int rc = ev->fn(ev->r, &v, ev->ctx);
    if (rc < 0)
        return rc;
    if (rc != EMIT_REJECT) {
        ev->accepted++;
        if (rc == EMIT_STOP)
            ev->stop = true;
    }
    return 0;
}

typedef struct visit {
    ev_t *ev;
    const chain_t *ch;
} visit_t;

static int visit_value(void *ctx, json_t *v)
{
    visit_t *vc = ctx;
    int rc = 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            if (json_is_null(x) || json_is_array(x) || json_is_object(x))
                continue;
            if ((rc = emit(vc->ev, vc->ch, x, NULL, 0)) != 0 || vc->ev->stop)
                break;
        }
    } else {
        rc = emit(vc->ev, vc->ch, v, NULL, 0);
    }
    if (rc != 0)
        return rc;
    return vc->ev->stop ? 1 : 0;
}

/* The text of a template hole: the first scalar the path selects. */
static const char *hole_text(run_t *r, const epath_t *h, json_t *cur, size_t *len)
{
    json_t *x = eng_path_first(h, cur, r->root);
    if (x != NULL && json_is_array(x)) {
        size_t i;
        json_t *e, *pick = NULL;
        json_array_foreach(x, i, e)
        {
            if (!json_is_null(e) && !json_is_array(e) && !json_is_object(e)) {
                pick = e;
                break;
            }
        }
        x = pick;
    }
    if (x == NULL)
        return NULL;
    if (json_is_string(x)) {
        *len = json_string_length(x);
        return *len > 0 ? json_string_value(x) : NULL;
    }
    char *buf = am_arena_alloc(r->a, 32);
    return buf != NULL ? eng_path_scalar_text(x, buf, len) : NULL;
}

static int eval_template(ev_t *ev, const expr_t *e, const chain_t *ch, json_t *cur)
{
    run_t *r = ev->r;
    const char *stack_txt[16];
    size_t stack_len[16];
    const char **txt = stack_txt;
    size_t *lens = stack_len;
    if (e->nparts > 16) {
        txt = am_arena_alloc(r->a, e->nparts * sizeof(*txt));
        lens = am_arena_alloc(r->a, e->nparts * sizeof(*lens));
        if (txt == NULL || lens == NULL)
            return eng_ex_no_room(r);
    }
    size_t total = 0;
    for (size_t i = 0; i < e->nparts; i++) {
        const tpart_t *pt = &e->parts[i];
        if (pt->hole == NULL) {
            txt[i] = pt->lit;
            lens[i] = pt->litlen;
        } else {
            txt[i] = hole_text(r, pt->hole, cur, &lens[i]);
            if (txt[i] == NULL)
                return 0; /* a missing hole makes the whole template absent */
        }
        total += lens[i];
    }
    char *out = am_arena_alloc(r->a, total + 1);
    if (out == NULL)
        return eng_ex_no_room(r);
    size_t off = 0;
    for (size_t i = 0; i < e->nparts; i++) {
        memcpy(out + off, txt[i], lens[i]);
        off += lens[i];
    }
    out[off] = '\0';
    ev->origin = e->origin;
    ev->text = e->text;
    return emit(ev, ch, NULL, out, total);
}

static int eval(ev_t *ev, const expr_t *e, const chain_t *outer, json_t *cur)
{
    chain_t ch = {e, outer};
    size_t before = ev->accepted;
    int rc = 0;
    switch (e->kind) {
    case EX_PATH:
        for (size_t i = 0; i < e->npaths && rc == 0; i++) {
            ev->origin = e->path_origin[i];
            ev->text = e->paths[i]->text;
            visit_t vc = {ev, &ch};
            rc = eng_path_visit(e->paths[i], cur, ev->r->root, visit_value, &vc);
            if (rc > 0)
                rc = 0;
            if (ev->accepted > before || ev->stop)
                break;
        }
        break;
    case EX_CONST:
        ev->origin = e->origin;
        ev->text = e->text;
        rc = emit(ev, &ch, NULL, e->cval, e->cvlen);
        break;
    case EX_TEMPLATE:
        rc = eval_template(ev, e, &ch, cur);
        break;
    case EX_FIRST:
        for (size_t i = 0; i < e->nalts && rc == 0; i++) {
            rc = eval(ev, e->alts[i], &ch, cur);
            if (ev->accepted > before || ev->stop)
                break;
        }
        break;
    }
    if (rc < 0)
        return rc;
    if (ev->accepted == before && !ev->stop && e->dflt != NULL) {
        ev->origin = e->dflt_origin;
        ev->text = e->text;
        rc = emit(ev, outer, NULL, e->dflt, e->dlen);
    }
    return rc;
}

int eng_ex_run_expr(run_t *r, const expr_t *e, json_t *cur, emit_fn fn, void *ctx)
{
    ev_t ev = {.r = r, .fn = fn, .ctx = ctx};
    return eval(&ev, e, NULL, cur);
}

/* ---- fields ------------------------------------------------------------------ */

int eng_ex_take_one(run_t *r, const val_t *v, void *ctx)
{
    one_t *o = ctx;
    o->s = o->copy ? am_arena_strndup(r->a, v->s, v->len) : v->s;
    if (o->s == NULL)
        return eng_ex_no_room(r);
    o->len = v->len;
    o->origin = v->origin;
    o->text = v->text;
    return EMIT_STOP;
}

typedef struct time_ctx {
    tp_format_t fmt;
    int64_t us;
    const char *origin;
    bool found;
} time_ctx_t;

static int take_time(run_t *r, const val_t *v, void *ctx)
{
    (void)r;
    time_ctx_t *t = ctx;
    int rc;
    if (v->j != NULL) {
        rc = eng_tp_parse_json(&t->us, v->j, t->fmt);
    } else {
        json_t *tmp = json_stringn_nocheck(v->s, v->len);
        if (tmp == NULL)
            am_oom(v->len); /* jansson allocates on the heap */
        rc = eng_tp_parse_json(&t->us, tmp, t->fmt);
        json_decref(tmp);
    }
    if (rc != 0)
        return EMIT_REJECT; /* unparseable: try the next fallback */
    t->origin = v->origin;
    t->found = true;
    return EMIT_STOP;
}

typedef struct tags_ctx {
    eng_alert_t *al;
    size_t cap;
    const char *origin;
} tags_ctx_t;

static int add_tag(run_t *r, const val_t *v, void *ctx)
{
    tags_ctx_t *t = ctx;
    eng_alert_t *al = t->al;
    for (size_t i = 0; i < al->ntags; i++)
        if (strlen(al->tags[i]) == v->len && memcmp(al->tags[i], v->s, v->len) == 0)
            return EMIT_MORE;
    if (al->ntags == ENG_MAX_INDICATORS)
        return AM_ELIMIT;
    const char **nt = am_arena_grow(r->a, al->tags, al->ntags, &t->cap, sizeof(*nt));
    if (nt == NULL)
        return eng_ex_no_room(r);
    al->tags = nt;
    const char *s = am_arena_strndup(r->a, v->s, v->len);
    if (s == NULL)
        return eng_ex_no_room(r);
    al->tags[al->ntags++] = s;
    if (t->origin == NULL)
        t->origin = v->origin;
    return EMIT_MORE;
}

static int run_fields(run_t *r, eng_alert_t *al, json_t *cur, int64_t now_us)
{
    const eng_program_t *p = r->p;
    int rc;
    for (int f = 0; f < ENG_F__COUNT; f++) {
        const expr_t *e = p->field[f];
        if (e == NULL || f == ENG_F_OCCURRED_AT)
            continue;
        one_t o = {.copy = f != ENG_F_SEVERITY};
        if ((rc = eng_ex_run_expr(r, e, cur, eng_ex_take_one, &o)) != 0)
            return rc;
        if (o.s == NULL)
            continue;
        if (f == ENG_F_SEVERITY) {
            const char *canon = eng_severity_canonical(o.s, o.len);
            if (canon == NULL)
                continue;
            o.s = canon;
        }
        al->field[f] = o.s;
        al->origin[f] = o.origin;
    }
    if (al->field[ENG_F_TITLE] == NULL) {
        al->field[ENG_F_TITLE] = p->untitled;
        al->origin[ENG_F_TITLE] = p->untitled_origin;
    }
    if (al->field[ENG_F_SEVERITY] == NULL) {
        al->field[ENG_F_SEVERITY] = "Pending";
        al->origin[ENG_F_SEVERITY] = "default";
    }
    time_ctx_t t = {.fmt = TP_AUTO};
    const expr_t *te = p->field[ENG_F_OCCURRED_AT];
    if (te != NULL) {
        t.fmt = te->time;
        if ((rc = eng_ex_run_expr(r, te, cur, take_time, &t)) != 0)
            return rc;
    }
    if (t.found) {
        al->occurred_at_us = t.us;
        al->origin[ENG_F_OCCURRED_AT] = t.origin;
    } else {
        al->occurred_at_us = now_us;
        al->occurred_at_fallback = true;
        al->origin[ENG_F_OCCURRED_AT] = "ingest time";
    }
    char tb[32];
    am_format_time(tb, al->occurred_at_us);
    if ((al->field[ENG_F_OCCURRED_AT] = am_arena_strdup(r->a, tb)) == NULL)
        return eng_ex_no_room(r);
    if (p->tags != NULL) {
        tags_ctx_t tc = {.al = al};
        if ((rc = eng_ex_run_expr(r, p->tags, cur, add_tag, &tc)) != 0)
            return rc;
        al->tags_origin = tc.origin;
    }
    return 0;
}

/* ---- match rules ------------------------------------------------------------- */

static int reject(run_t *r, const match_rule_t *m, const char *fmt, ...) AM_PRINTF(3, 4);
static int reject(run_t *r, const match_rule_t *m, const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    return eng_ex_fail(r, AM_EINVAL, "INVALID_PAYLOAD", "match rule '%s' (%s) failed: %s", m->name,
                       m->where, m->message != NULL ? m->message : why);
}

static bool value_equals(const match_rule_t *m, const json_t *x)
{
    char buf[32];
    size_t len;
    const char *s = eng_path_scalar_text(x, buf, &len);
    if (s == NULL)
        return false;
    for (size_t i = 0; i < m->nvalues; i++)
        if (m->vlens[i] == len && strncasecmp(m->values[i], s, len) == 0)
            return true;
    return false;
}

static int check_match(run_t *r, json_t *root)
{
    const eng_program_t *p = r->p;
    for (size_t i = 0; i < p->nmatch; i++) {
        const match_rule_t *m = &p->match[i];
        json_t *x;
        switch (m->kind) {
        case MR_OBJECT:
        case MR_ARRAY:
            x = eng_path_first(m->paths[0], root, root);
            if (x == NULL)
                return reject(r, m, "%s is not present", m->paths[0]->text);
            if (m->kind == MR_OBJECT && !json_is_object(x))
                return reject(r, m, "%s is not an object", m->paths[0]->text);
            if (m->kind == MR_ARRAY && !json_is_array(x))
                return reject(r, m, "%s is not an array", m->paths[0]->text);
            break;
        case MR_PRESENT:
            for (size_t k = 0; k < m->npaths; k++)
                if (eng_path_first(m->paths[k], root, root) == NULL)
                    return reject(r, m, "%s is not present", m->paths[k]->text);
            break;
        case MR_ANY: {
            bool any = false;
            for (size_t k = 0; k < m->npaths && !any; k++)
                any = eng_path_first(m->paths[k], root, root) != NULL;
            if (!any) {
                char list[300];
                size_t off = 0;
                list[0] = '\0';
                for (size_t k = 0; k < m->npaths && off < sizeof(list); k++) {
                    int w = snprintf(list + off, sizeof(list) - off, "%s%s", k ? ", " : "",
                                     m->paths[k]->text);
                    if (w < 0)
                        break;
                    off += (size_t)w;
                }
                return reject(r, m, "none of %s is present", list);
            }
            break;
        }
        case MR_EQUALS: {
            x = eng_path_first(m->paths[0], root, root);
            if (x == NULL)
                return reject(r, m, "%s is not present", m->paths[0]->text);
            if (!value_equals(m, x)) {
                char buf[32], want[200];
                size_t len = 0, off = 0;
                const char *v = eng_path_scalar_text(x, buf, &len);
                if (v == NULL)
                    return reject(r, m, "%s is not a string, number or boolean", m->paths[0]->text);
                want[0] = '\0';
                for (size_t k = 0; k < m->nvalues && off < sizeof(want); k++) {
                    int w = snprintf(want + off, sizeof(want) - off, "%s'%s'", k ? ", " : "",
                                     m->values[k]);
                    if (w < 0)
                        break;
                    off += (size_t)w;
                }
                return reject(r, m, "%s is '%.*s', expected %s%s", m->paths[0]->text,
                              (int)(len > 80 ? 80 : len), v, m->nvalues > 1 ? "one of " : "", want);
            }
            break;
        }
        }
    }
    return 0;
}

/* ---- the program --------------------------------------------------------------- */

static int run_alert(run_t *r, eng_alert_t *al, json_t *cur, int64_t now_us)
{
    al->source_name = r->p->source;
    al->raw = cur;
    int rc = run_fields(r, al, cur, now_us);
    if (rc == 0)
        rc = eng_ex_indicators(r, al, cur);
    if (rc != 0)
        return rc;
    eng_fingerprint(al->fingerprint, al->field[ENG_F_TITLE], al->source_name, al->indicators,
                    al->nindicators);
    return 0;
}

int eng_run(eng_result_t *out, const eng_program_t *p, json_t *payload, am_arena_t *a,
            int64_t now_us, eng_error_t *err)
{
    run_t r = {.p = p, .a = a, .root = payload, .err = err};
    out->alerts = NULL;
    out->nalerts = 0;
    if (err != NULL) {
        err->code = NULL;
        err->message[0] = '\0';
    }
    if (!json_is_object(payload))
        return eng_ex_fail(&r, AM_EINVAL, "INVALID_PAYLOAD", "the payload must be a JSON object");
    int rc = check_match(&r, payload);
    if (rc != 0)
        return rc;
    json_t *elems = NULL;
    size_t n = 1;
    if (p->split != NULL) {
        elems = eng_path_first(p->split, payload, payload);
        if (elems == NULL || !json_is_array(elems) || json_array_size(elems) == 0)
            return eng_ex_fail(&r, AM_EINVAL, "INVALID_PAYLOAD",
                               "split (%s): %s is missing, empty or not an array", p->split_where,
                               p->split->text);
        n = json_array_size(elems);
        if (n > ENG_MAX_SPLIT)
            return eng_ex_fail(&r, AM_ELIMIT, "LIMIT_EXCEEDED",
                               "split (%s): %zu elements, at most %d alerts per request",
                               p->split_where, n, ENG_MAX_SPLIT);
    }
    eng_alert_t *alerts = am_arena_calloc(a, n, sizeof(*alerts));
    if (alerts == NULL)
        return eng_ex_no_room(&r);
    for (size_t i = 0; i < n; i++) {
        json_t *cur = payload;
        if (elems != NULL) {
            cur = json_array_get(elems, i);
            if (!json_is_object(cur))
                return eng_ex_fail(&r, AM_EINVAL, "INVALID_PAYLOAD",
                                   "split (%s): element %zu of %s is not an object", p->split_where,
                                   i, p->split->text);
        }
        rc = run_alert(&r, &alerts[i], cur, now_us);
        if (rc != 0)
            return fail_code(&r, rc); /* keeps an error already recorded */
    }
    out->alerts = alerts;
    out->nalerts = n;
    return 0;
}
