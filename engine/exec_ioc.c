/*
 * engine/exec_ioc.c - running a program's indicator rules for one alert:
 * declared values (path/each, fixed or computed type), scans of chosen
 * fields or of every string, per-mapping named-capture patterns, then the
 * auto-indicators of the optional fields. Values go through ioc_add_value()
 * and the set's scanner (ioc_extract(), ioc.h), which canonicalize and de-duplicate.
 */
#include "exec.h"

#include <string.h>

/* ---- indicators -------------------------------------------------------------- */

typedef struct ioc_ctx {
    const irule_t *rule;
    eng_ioc_type_t type;
    const char *prefix; /* each rules: "<each>." */
} ioc_ctx_t;

/* "<each path>.<value text>": built once per rule and value text (the
 * cache is reset for every rule), not once per element. */
static const char *each_source_field(run_t *r, const char *prefix, const char *text)
{
    if (r->sf_text == text && r->sf_val != NULL)
        return r->sf_val;
    const char *s = am_arena_printf(r->a, "%s%s", prefix, text);
    r->sf_text = text;
    r->sf_val = s;
    return s;
}

static int add_ioc(run_t *r, const val_t *v, void *ctx)
{
    ioc_ctx_t *ic = ctx;
    const char *sf = v->text;
    if (ic->prefix != NULL && (sf = each_source_field(r, ic->prefix, v->text)) == NULL)
        return eng_ex_no_room(r);
    int rc = ioc_add_value(&r->iocs, r->a, ic->type, v->s, v->len, false, IOC_MASK_ALL, sf,
                           ic->rule->origin);
    return rc != 0 ? rc : EMIT_MORE;
}

/* The type of a rule for the current element; false when it names no type. */
static int rule_type(run_t *r, const irule_t *rule, json_t *cur, eng_ioc_type_t *out)
{
    if (rule->type_expr == NULL) {
        *out = rule->type;
        return 1;
    }
    one_t o = {.copy = false};
    int rc = eng_ex_run_expr(r, rule->type_expr, cur, eng_ex_take_one, &o);
    if (rc != 0)
        return rc;
    return o.s != NULL && eng_ioc_type_parse(out, o.s, o.len) == 0;
}

static int each_element(run_t *r, const irule_t *rule, json_t *el)
{
    ioc_ctx_t ic = {.rule = rule, .prefix = rule->each_prefix};
    int rc = rule_type(r, rule, el, &ic.type);
    if (rc <= 0)
        return rc; /* an element of an unknown type is skipped */
    return eng_ex_run_expr(r, rule->value, el, add_ioc, &ic);
}

typedef struct each_ctx {
    run_t *r;
    const irule_t *rule;
} each_ctx_t;

static int visit_each(void *ctx, json_t *v)
{
    each_ctx_t *ec = ctx;
    if (!json_is_array(v))
        return each_element(ec->r, ec->rule, v);
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        if (json_is_null(x))
            continue;
        int rc = each_element(ec->r, ec->rule, x);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Runs a scan or regex rule over one string. */
static int scan_string(run_t *r, const irule_t *rule, const char *s, size_t len, const char *sf)
{
    if (rule->kind != IR_REGEX)
        return r->p->set->scan != NULL ? r->p->set->scan(&r->iocs, r->a, r->p->set->rules, s, len,
                                                         rule->mask, sf, rule->origin)
                                       : 0;
    pcre2_match_data *md = eng_ex_match_data(r);
    if (md == NULL)
        return eng_ex_no_room(r);
    size_t off = 0;
    while (off <= len) {
        int n = pcre2_match(rule->re, (PCRE2_SPTR)s, len, off, PCRE2_NO_UTF_CHECK, md,
                            ioc_match_context());
        if (n < 0)
            break; /* no match, or the match limit: stop */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        for (uint32_t g = 1; g < (uint32_t)n && g <= rule->ngroups; g++) {
            if (rule->group_type[g] == 0 || ov[2 * g] == PCRE2_UNSET)
                continue;
            int rc = ioc_add_value(&r->iocs, r->a, (eng_ioc_type_t)(rule->group_type[g] - 1),
                                   s + ov[2 * g], ov[2 * g + 1] - ov[2 * g], true, IOC_MASK_ALL,
                                   rule->label, rule->origin);
            if (rc != 0)
                return rc;
        }
        if (ov[1] > off) {
            off = ov[1];
        } else {
            off++; /* empty match: step over one character */
            while (off < len && ((unsigned char)s[off] & 0xC0) == 0x80)
                off++;
        }
    }
    return 0;
}

/* Every string inside v (v itself, array elements, object members). With
 * path_buf the source field is the JSON path of each string. */
typedef struct scan_ctx {
    run_t *r;
    const irule_t *rule;
    const char *sf; /* fixed source field, or NULL: use buf */
    char buf[1024];
    size_t len;
} scan_ctx_t;

static int scan_value(scan_ctx_t *sc, json_t *v, int depth)
{
    run_t *r = sc->r;
    if (depth > ENG_MAX_DEPTH)
        return eng_ex_fail(r, AM_ELIMIT, "LIMIT_EXCEEDED", "payload nested deeper than %d levels",
                           ENG_MAX_DEPTH);
    if (json_is_string(v)) {
        if (sc->sf != NULL)
            return scan_string(r, sc->rule, json_string_value(v), json_string_length(v), sc->sf);
        size_t before = r->iocs.n;
        sc->buf[sc->len] = '\0';
        int rc = scan_string(r, sc->rule, json_string_value(v), json_string_length(v),
                             sc->len ? sc->buf : "$");
        if (r->iocs.n > before) {
            const char *sf = am_arena_strdup(r->a, sc->len ? sc->buf : "$");
            if (sf == NULL)
                return eng_ex_no_room(r);
            for (size_t i = before; i < r->iocs.n; i++)
                r->iocs.items[i].source_field = sf;
        }
        return rc;
    }
    size_t keep = sc->len;
    int rc = 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            if (sc->sf == NULL) {
                int w = snprintf(sc->buf + keep, sizeof(sc->buf) - keep, "[%zu]", i);
                sc->len = w > 0 && keep + (size_t)w < sizeof(sc->buf) ? keep + (size_t)w : keep;
            }
            if ((rc = scan_value(sc, x, depth + 1)) != 0)
                break;
        }
    } else if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x)
        {
            if (sc->sf == NULL) {
                bool plain = k[0] != '\0' && strpbrk(k, ".[]'") == NULL;
                int w = plain ? snprintf(sc->buf + keep, sizeof(sc->buf) - keep, "%s%s",
                                         keep ? "." : "", k)
                              : snprintf(sc->buf + keep, sizeof(sc->buf) - keep, "['%s']", k);
                sc->len = w > 0 && keep + (size_t)w < sizeof(sc->buf) ? keep + (size_t)w : keep;
            }
            if ((rc = scan_value(sc, x, depth + 1)) != 0)
                break;
        }
    }
    sc->len = keep;
    return rc;
}

static int visit_scan(void *ctx, json_t *v)
{
    scan_ctx_t *sc = ctx;
    return scan_value(sc, v, 0);
}

static int run_rule(run_t *r, const irule_t *rule, json_t *cur)
{
    switch (rule->kind) {
    case IR_VALUE: {
        ioc_ctx_t ic = {.rule = rule};
        int rc = rule_type(r, rule, cur, &ic.type);
        if (rc <= 0)
            return rc;
        return eng_ex_run_expr(r, rule->value, cur, add_ioc, &ic);
    }
    case IR_EACH: {
        each_ctx_t ec = {r, rule};
        r->sf_text = r->sf_val = NULL;
        return eng_path_visit(rule->each, cur, r->root, visit_each, &ec);
    }
    case IR_SCAN:
    case IR_SCAN_ALL:
    case IR_REGEX: {
        scan_ctx_t sc = {.r = r, .rule = rule};
        if (rule->in_all)
            return scan_value(&sc, cur, 0);
        for (size_t i = 0; i < rule->nin; i++) {
            sc.sf = rule->kind == IR_REGEX ? rule->label : rule->in[i]->text;
            int rc = eng_path_visit(rule->in[i], cur, r->root, visit_scan, &sc);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    }
    return 0;
}

static const int field_ioc[ENG_F__COUNT] = {
    [ENG_F_TITLE] = -1,
    [ENG_F_SEVERITY] = -1,
    [ENG_F_OCCURRED_AT] = -1,
    [ENG_F_DESCRIPTION] = -1,
    [ENG_F_DETECTION_RULE_REF] = -1,
    [ENG_F_SRC_IP] = ENG_IOC_IP,
    [ENG_F_DST_IP] = ENG_IOC_IP,
    [ENG_F_SRC_HOSTNAME] = ENG_IOC_DOMAIN,
    [ENG_F_DST_HOSTNAME] = ENG_IOC_DOMAIN,
    [ENG_F_FILE_HASH_MD5] = ENG_IOC_HASH_MD5,
    [ENG_F_FILE_HASH_SHA1] = ENG_IOC_HASH_SHA1,
    [ENG_F_FILE_HASH_SHA256] = ENG_IOC_HASH_SHA256,
    [ENG_F_ACTOR_EMAIL] = ENG_IOC_EMAIL,
    [ENG_F_ACTOR_USERNAME] = ENG_IOC_ACCOUNT,
    [ENG_F_DNS_QUERY] = ENG_IOC_DOMAIN,
    [ENG_F_HTTP_URL] = ENG_IOC_URL,
    [ENG_F_HTTP_HOSTNAME] = ENG_IOC_DOMAIN,
    [ENG_F_EMAIL_FROM] = ENG_IOC_EMAIL,
    [ENG_F_EMAIL_REPLY_TO] = ENG_IOC_EMAIL,
};

int eng_ex_indicators(run_t *r, eng_alert_t *al, json_t *cur)
{
    const eng_program_t *p = r->p;
    int rc;
    memset(&r->iocs, 0, sizeof(r->iocs));
    for (size_t i = 0; i < p->nirules; i++)
        if ((rc = run_rule(r, &p->irules[i], cur)) != 0)
            return rc;
    for (int f = ENG_F_SRC_IP; f < ENG_F__COUNT; f++) {
        const char *v = al->field[f];
        if (v == NULL || field_ioc[f] < 0)
            continue;
        rc = ioc_add_value(&r->iocs, r->a, (eng_ioc_type_t)field_ioc[f], v, strlen(v), false,
                           IOC_MASK_ALL, eng_field_name((eng_field_t)f), p->field_where[f]);
        if (rc != 0)
            return rc;
    }
    al->indicators = r->iocs.items;
    al->nindicators = r->iocs.n;
    return 0;
}
