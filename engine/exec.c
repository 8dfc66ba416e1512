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
    case AM_ELIMIT: /* the vector full, or the request's arena at its cap */
        return eng_ex_fail(r, rc, "LIMIT_EXCEEDED",
                           "more than %d indicators or tags in one alert, or the request's "
                           "memory limit reached",
                           ENG_MAX_INDICATORS);
    case -1: /* the indicator code's "arena full" until it says AM_ELIMIT (issue 8) */
        return eng_ex_no_room(r);
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
            if ((!g->has_min || x >= g->min) &&
                (!g->has_max || (g->max_open ? x < g->max : x <= g->max)))
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
    v.tfmt = TP_AUTO;
    for (const chain_t *t = ch; t != NULL; t = t->outer)
        if (t->e->has_time) {
            v.tfmt = t->e->time;
            break;
        }
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
    json_t *x = eng_path_first(h, eng_ex_cur(r, h, cur), r->root);
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
            rc = eng_path_visit(e->paths[i], eng_ex_cur(ev->r, e->paths[i], cur), ev->r->root,
                                visit_value, &vc);
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
    case EX_ALL: /* every alternative, each with all its values */
        for (size_t i = 0; i < e->nalts && rc == 0 && !ev->stop; i++)
            rc = eval(ev, e->alts[i], &ch, cur);
        break;
    case EX_WHEN: {
        size_t i;
        for (i = 0; i < e->nalts; i++)
            if (eng_ex_cond(ev->r, e->conds[i], cur, NULL, 0))
                break;
        if (i < e->nalts)
            rc = eval(ev, e->alts[i], &ch, cur);
        else if (e->else_e != NULL)
            rc = eval(ev, e->else_e, &ch, cur);
        break;
    }
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
        rc = eng_tp_parse_json(&t->us, v->j, v->tfmt);
    } else {
        json_t *tmp = json_stringn_nocheck(v->s, v->len);
        if (tmp == NULL)
            am_oom(v->len); /* jansson allocates on the heap */
        rc = eng_tp_parse_json(&t->us, tmp, v->tfmt);
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
    time_ctx_t t = {0};
    const expr_t *te = p->field[ENG_F_OCCURRED_AT];
    if (te != NULL) {
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

/* ---- match rules and conditions ------------------------------------------- */

static void why_set(char *why, size_t size, const char *fmt, ...) AM_PRINTF(3, 4);
static void why_set(char *why, size_t size, const char *fmt, ...)
{
    if (why == NULL || size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, size, fmt, ap);
    va_end(ap);
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

static json_t *cond_first(run_t *r, const epath_t *p, json_t *cur)
{
    return eng_path_first(p, eng_ex_cur(r, p, cur), r->root);
}

bool eng_ex_cond(run_t *r, const match_rule_t *m, json_t *cur, char *why, size_t size)
{
    json_t *x;
    switch (m->kind) {
    case MR_OBJECT:
    case MR_ARRAY:
        x = cond_first(r, m->paths[0], cur);
        if (x == NULL) {
            why_set(why, size, "%s is not present", m->paths[0]->text);
            return false;
        }
        if (m->kind == MR_OBJECT && !json_is_object(x)) {
            why_set(why, size, "%s is not an object", m->paths[0]->text);
            return false;
        }
        if (m->kind == MR_ARRAY && !json_is_array(x)) {
            why_set(why, size, "%s is not an array", m->paths[0]->text);
            return false;
        }
        return true;
    case MR_PRESENT:
        for (size_t k = 0; k < m->npaths; k++)
            if (cond_first(r, m->paths[k], cur) == NULL) {
                why_set(why, size, "%s is not present", m->paths[k]->text);
                return false;
            }
        return true;
    case MR_ANY: {
        for (size_t k = 0; k < m->npaths; k++)
            if (cond_first(r, m->paths[k], cur) != NULL)
                return true;
        char list[300];
        size_t off = 0;
        list[0] = '\0';
        for (size_t k = 0; k < m->npaths && off < sizeof(list); k++) {
            int w =
                snprintf(list + off, sizeof(list) - off, "%s%s", k ? ", " : "", m->paths[k]->text);
            if (w < 0)
                break;
            off += (size_t)w;
        }
        why_set(why, size, "none of %s is present", list);
        return false;
    }
    case MR_EQUALS: {
        x = cond_first(r, m->paths[0], cur);
        if (x == NULL) {
            why_set(why, size, "%s is not present", m->paths[0]->text);
            return false;
        }
        if (value_equals(m, x))
            return true;
        char buf[32], want[200];
        size_t len = 0, off = 0;
        const char *v = eng_path_scalar_text(x, buf, &len);
        if (v == NULL) {
            why_set(why, size, "%s is not a string, number or boolean", m->paths[0]->text);
            return false;
        }
        want[0] = '\0';
        for (size_t k = 0; k < m->nvalues && off < sizeof(want); k++) {
            int w = snprintf(want + off, sizeof(want) - off, "%s'%s'", k ? ", " : "", m->values[k]);
            if (w < 0)
                break;
            off += (size_t)w;
        }
        why_set(why, size, "%s is '%.*s', expected %s%s", m->paths[0]->text,
                (int)(len > 80 ? 80 : len), v, m->nvalues > 1 ? "one of " : "", want);
        return false;
    }
    case MR_NOT:
        if (!eng_ex_cond(r, m->sub, cur, NULL, 0))
            return true;
        why_set(why, size, "the condition under 'not' (%s) holds", m->sub->where);
        return false;
    }
    return false;
}

static int check_match(run_t *r, json_t *root)
{
    const eng_program_t *p = r->p;
    for (size_t i = 0; i < p->nmatch; i++) {
        const match_rule_t *m = &p->match[i];
        char why[400];
        if (!eng_ex_cond(r, m, root, why, sizeof(why)))
            return eng_ex_fail(r, AM_EINVAL, "INVALID_PAYLOAD", "match rule '%s' (%s) failed: %s",
                               m->name, m->where, m->message != NULL ? m->message : why);
    }
    return 0;
}

/* ---- the program --------------------------------------------------------------- */

const char *eng_disposition_name(eng_disposition_t d)
{
    static const char *const names[] = {"store", "resolve", "ignore"};
    return (unsigned)d < AM_ARRAY_LEN(names) ? names[d] : "?";
}

/* The first disposition rule that holds at cur decides; none: store. */
static const disp_rule_t *disposition(run_t *r, json_t *cur)
{
    for (size_t i = 0; i < r->p->ndisp; i++)
        if (eng_ex_cond(r, r->p->disp[i].cond, cur, NULL, 0))
            return &r->p->disp[i];
    return NULL;
}

static int run_alert(run_t *r, eng_alert_t *al, json_t *cur, json_t *raw, const disp_rule_t *d,
                     int64_t now_us)
{
    al->source_name = r->p->source;
    al->raw = raw;
    if (d != NULL) {
        al->disposition = d->then;
        al->disposition_rule = d->name;
        al->disposition_where = d->where;
        al->disposition_message = d->message;
    }
    int rc = run_fields(r, al, cur, now_us);
    if (rc == 0)
        rc = eng_ex_indicators(r, al, cur);
    if (rc != 0)
        return rc;
    eng_fingerprint(al->fingerprint, al->field[ENG_F_TITLE], al->source_name, al->indicators,
                    al->nindicators);
    return 0;
}

/* The object of the request headers the program reads (new reference), by
 * lowercase name, values trimmed of blanks; NULL when it reads none. */
static json_t *headers_object(const eng_program_t *p, const eng_input_t *in)
{
    if (p->nheaders == 0)
        return NULL;
    json_t *h = json_object();
    if (h == NULL)
        am_oom(0); /* jansson allocates on the heap */
    for (size_t i = 0; in != NULL && in->header != NULL && i < p->nheaders; i++) {
        size_t len = 0;
        const char *v = in->header(in->header_ctx, p->headers[i], &len);
        if (v == NULL)
            continue;
        while (len > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            len--;
        }
        while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
            len--;
        json_t *s = json_stringn(v, len); /* NULL: not UTF-8, treated as absent */
        if (len > 0 && s != NULL)
            json_object_set_new(h, p->headers[i], s);
        else
            json_decref(s);
    }
    return h;
}

/* The payload the mapping sees: the first unwrap path selecting an object,
 * else the body itself. */
static json_t *unwrapped(const eng_program_t *p, json_t *body)
{
    for (size_t i = 0; i < p->nunwrap; i++) {
        json_t *x = eng_path_first(p->unwrap[i], body, body);
        if (x != NULL && json_is_object(x))
            return x;
    }
    return body;
}

static int run_program(run_t *r, eng_result_t *out, json_t *body, int64_t now_us)
{
    const eng_program_t *p = r->p;
    r->root = body; /* decode conditions see the body as received */
    int rc = eng_ex_decode(r, body);
    if (rc != 0)
        return rc;
    json_t *payload = unwrapped(p, body);
    r->root = payload;
    /* without split the payload is the one alert: its disposition comes
     * before the match rules, so that a ping need not look like an alert */
    const disp_rule_t *d0 = p->split == NULL ? disposition(r, payload) : NULL;
    if (d0 == NULL || d0->then == ENG_DISP_STORE) {
        if ((rc = check_match(r, payload)) != 0)
            return rc;
    }
    json_t *elems = NULL;
    size_t n = 1;
    if (p->split != NULL) {
        elems = eng_path_first(p->split, payload, payload);
        if (elems == NULL && p->split_optional) {
            /* the payload itself is the one element */
        } else if (elems == NULL || !json_is_array(elems) || json_array_size(elems) == 0) {
            return eng_ex_fail(r, AM_EINVAL, "INVALID_PAYLOAD",
                               "split (%s): %s is missing, empty or not an array", p->split_where,
                               p->split->text);
        } else {
            n = json_array_size(elems);
        }
        if (n > r->lim.max_alerts)
            return eng_ex_fail(r, AM_ELIMIT, "LIMIT_EXCEEDED",
                               "split (%s): %zu elements, over the limit max_alerts: %zu alerts "
                               "per request",
                               p->split_where, n, r->lim.max_alerts);
    }
    eng_alert_t *alerts = am_arena_calloc(r->a, n, sizeof(*alerts));
    if (alerts == NULL)
        return eng_ex_no_room(r);
    size_t total = 0; /* indicators of all alerts so far */
    for (size_t i = 0; i < n; i++) {
        json_t *cur = payload, *raw = body;
        const disp_rule_t *d = d0;
        if (elems != NULL) {
            cur = raw = json_array_get(elems, i);
            if (!json_is_object(cur))
                return eng_ex_fail(r, AM_EINVAL, "INVALID_PAYLOAD",
                                   "split (%s): element %zu of %s is not an object", p->split_where,
                                   i, p->split->text);
        }
        if (p->split != NULL)
            d = disposition(r, cur);
        rc = run_alert(r, &alerts[i], cur, raw, d, now_us);
        if (rc != 0)
            return fail_code(r, rc); /* keeps an error already recorded */
        total += alerts[i].nindicators;
        if (total > r->lim.max_indicators)
            return eng_ex_fail(r, AM_ELIMIT, "LIMIT_EXCEEDED",
                               "more than %zu indicators in one request (limit max_indicators: "
                               "%zu; reached at alert %zu of %zu)",
                               r->lim.max_indicators, r->lim.max_indicators, i + 1, n);
    }
    out->alerts = alerts;
    out->nalerts = n;
    return 0;
}

int eng_run_input(eng_result_t *out, const eng_program_t *p, json_t *payload, const eng_input_t *in,
                  am_arena_t *a, int64_t now_us, eng_error_t *err)
{
    run_t r = {.p = p, .a = a, .root = payload, .err = err};
    if (in != NULL && in->limits != NULL)
        r.lim = *in->limits;
    if (r.lim.max_alerts == 0 || r.lim.max_alerts > ENG_MAX_SPLIT)
        r.lim.max_alerts = ENG_MAX_SPLIT;
    if (r.lim.max_indicators == 0)
        r.lim.max_indicators = ENG_DEFAULT_MAX_INDICATORS_REQ;
    if (r.lim.max_scan_bytes == 0)
        r.lim.max_scan_bytes = ENG_DEFAULT_MAX_SCAN_BYTES;
    out->alerts = NULL;
    out->nalerts = 0;
    if (err != NULL) {
        err->code = NULL;
        err->message[0] = '\0';
    }
    if (!json_is_object(payload))
        return eng_ex_fail(&r, AM_EINVAL, "INVALID_PAYLOAD", "the payload must be a JSON object");
    r.hdrs = headers_object(p, in);
    int rc = run_program(&r, out, payload, now_us);
    json_decref(r.hdrs); /* every value taken from it was copied to the arena */
    return rc;
}

int eng_run_limited(eng_result_t *out, const eng_program_t *p, json_t *payload,
                    const eng_limits_t *lim, am_arena_t *a, int64_t now_us, eng_error_t *err)
{
    eng_input_t in = {.limits = lim};
    return eng_run_input(out, p, payload, &in, a, now_us, err);
}

int eng_run(eng_result_t *out, const eng_program_t *p, json_t *payload, am_arena_t *a,
            int64_t now_us, eng_error_t *err)
{
    return eng_run_input(out, p, payload, NULL, a, now_us, err);
}

/* ---- verification handshakes ------------------------------------------------------ */

int eng_verification(json_t **answer, const eng_program_t *p, const char *method,
                     eng_header_fn header, void *ctx, eng_error_t *err)
{
    *answer = NULL;
    for (size_t i = 0; i < p->nverif; i++) {
        const verif_t *v = &p->verif[i];
        if (strcmp(v->method, method) != 0)
            continue;
        size_t len = 0;
        const char *val = header(ctx, v->header, &len);
        if (val == NULL)
            continue;
        bool ok = len > 0 && len <= 256;
        for (size_t k = 0; k < len && ok; k++) {
            char ch = val[k];
            ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 strchr("._~+/=-", ch) != NULL;
        }
        if (!ok) {
            if (err != NULL) {
                err->code = "INVALID_PAYLOAD";
                snprintf(err->message, sizeof(err->message),
                         "verification value in header '%s' (%s) is empty, longer than 256 or "
                         "has characters outside [A-Za-z0-9._~+/=-]",
                         v->header, v->where);
            }
            return AM_EINVAL;
        }
        json_t *o = json_object();
        if (o == NULL || json_object_set_new(o, v->key, json_stringn(val, len)) != 0)
            am_oom(len);
        *answer = o;
        return 1;
    }
    return 0;
}

bool eng_program_verifies(const eng_program_t *p, const char *method)
{
    for (size_t i = 0; i < p->nverif; i++)
        if (strcmp(p->verif[i].method, method) == 0)
            return true;
    return false;
}
