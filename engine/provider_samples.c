/*
 * engine/provider_samples.c - a provider's `samples:` (docs/enrichment.md,
 * "Samples"): compiled with the provider file (eng_pv_compile_samples) and
 * run at load (eng_provider_check_samples). An http sample is a recorded
 * vendor reply: its request is rendered with secrets masked and the reply
 * interpreted by the same engine functions the worker calls around its
 * HTTP request, so a sample passes exactly when the worker would make the
 * expected request and reach the expected answer. A list or cidr sample is
 * a lookup in memory. Nothing here does network I/O or reads a file.
 */
#include "provider_int.h"
#include "ytree.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The clock of a sample (an HTTP-date Retry-After): 2024-05-01T10:00:00Z,
 * as for mapping samples. */
#define SAMPLE_NOW_US     1714557600000000LL
#define MAX_DIFFS         20
#define MIN_SECRET_SCAN   8 /* shorter secret values are not searched for in samples */
#define MAX_SAMPLES       256
#define SAMPLE_ARENA_SIZE ((size_t)16 << 20)

/* ---- compiling -------------------------------------------------------------------- */

typedef struct sc {
    eng_provider_t *p;
    am_arena_t *a;
    json_t *keep;
    const char *file;
    am_diags_t *d;
    bool failed;
} sc_t;

static void serr(sc_t *c, const yt_node_t *n, const char *fmt, ...) AM_PRINTF(3, 4);
static void serr(sc_t *c, const yt_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    am_diags_vadd(c->d, c->file, n ? n->line : 0, n ? n->col : 0, fmt, ap);
    va_end(ap);
    c->failed = true;
}

static pv_at_t at(const yt_node_t *n)
{
    pv_at_t r = {n ? n->line : 0, n ? n->col : 0};
    return r;
}

static void *s_alloc(sc_t *c, size_t count, size_t size)
{
    void *p = am_arena_calloc(c->a, count ? count : 1, size);
    if (p == NULL)
        am_oom(count * size); /* the set's arena cap is far above any provider file */
    return p;
}

static const char *s_str(sc_t *c, const yt_node_t *n)
{
    char *p = am_arena_strndup(c->a, n->str, n->len);
    if (p == NULL)
        am_oom(n->len);
    return p;
}

static bool is_text(const yt_node_t *n)
{
    return n != NULL && n->kind == YT_SCALAR && !eng_yt_is_null(n);
}

static bool want_map(sc_t *c, const yt_node_t *n, const char *what)
{
    if (n != NULL && n->kind == YT_MAP)
        return true;
    serr(c, n, "'%s' must be a mapping, got %s", what,
         n == NULL           ? "nothing"
         : eng_yt_is_null(n) ? "null"
                             : eng_yt_kind_name(n));
    return false;
}

static bool want_text(sc_t *c, const yt_node_t *n, const char *what)
{
    if (is_text(n))
        return true;
    serr(c, n, "'%s' must be a string, got %s", what,
         n == NULL           ? "nothing"
         : eng_yt_is_null(n) ? "null"
                             : eng_yt_kind_name(n));
    return false;
}

static void only_keys(sc_t *c, const yt_node_t *map, const char *const *keys, size_t n,
                      const char *where)
{
    for (size_t i = 0; i < map->npairs; i++) {
        bool ok = false;
        for (size_t k = 0; k < n && !ok; k++)
            ok = strcmp(map->pairs[i].key->str, keys[k]) == 0;
        if (!ok) {
            char list[256];
            size_t off = 0;
            list[0] = '\0';
            for (size_t k = 0; k < n && off < sizeof(list); k++) {
                int w = snprintf(list + off, sizeof(list) - off, "%s%s", k ? ", " : "", keys[k]);
                if (w < 0)
                    break;
                off += (size_t)w;
            }
            serr(c, map->pairs[i].key, "unknown key '%s' in %s (expected one of: %s)",
                 map->pairs[i].key->str, where, list);
        }
    }
}

/* A YAML value as JSON: plain null, true, false and numbers keep their
 * type; everything quoted is a string. New reference (never NULL). */
static json_t *yaml_json(const yt_node_t *n)
{
    if (n == NULL)
        return json_null();
    if (n->kind == YT_SEQ) {
        json_t *a = json_array();
        for (size_t i = 0; i < n->nitems; i++)
            json_array_append_new(a, yaml_json(n->items[i]));
        return a;
    }
    if (n->kind == YT_MAP) {
        json_t *o = json_object();
        for (size_t i = 0; i < n->npairs; i++)
            json_object_setn_new(o, n->pairs[i].key->str, n->pairs[i].key->len,
                                 yaml_json(n->pairs[i].value));
        return o;
    }
    if (!n->quoted) {
        if (eng_yt_is_null(n))
            return json_null();
        if (strcmp(n->str, "true") == 0 || strcmp(n->str, "false") == 0)
            return json_boolean(n->str[0] == 't');
        if (n->len > 0 && n->len < 64 && strlen(n->str) == n->len) {
            char *end;
            errno = 0;
            long long v = strtoll(n->str, &end, 10);
            if (*end == '\0' && errno == 0 &&
                (isdigit((unsigned char)n->str[0]) || (n->str[0] == '-' && n->len > 1)))
                return json_integer(v);
            double x = strtod(n->str, &end);
            if (*end == '\0' && isfinite(x) &&
                (isdigit((unsigned char)n->str[0]) || n->str[0] == '-' || n->str[0] == '.'))
                return json_real(x);
        }
    }
    json_t *s = json_stringn(n->str, n->len);
    return s != NULL ? s : json_string("?"); /* not UTF-8: jansson refuses it */
}

/* Keeps j alive as long as the set; returns it (borrowed). */
static json_t *keep(sc_t *c, json_t *j)
{
    json_array_append_new(c->keep, j);
    return j;
}

static void compile_indicator(sc_t *c, pv_sample_t *s, const yt_node_t *n)
{
    static const char *const keys[] = {"type", "value"};
    if (!want_map(c, n, "indicator"))
        return;
    only_keys(c, n, keys, AM_ARRAY_LEN(keys), "'indicator'");
    const yt_node_t *t = eng_yt_get(n, "type"), *v = eng_yt_get(n, "value");
    if (t == NULL || v == NULL) {
        serr(c, n, "'indicator' needs 'type' and 'value'");
        return;
    }
    if (!want_text(c, t, "type") || !want_text(c, v, "value"))
        return;
    if (eng_ioc_type_parse(&s->type, t->str, t->len) != 0) {
        serr(c, t, "unknown indicator type '%s'", t->str);
        return;
    }
    if (!eng_provider_applies(c->p, s->type)) {
        serr(c, t, "provider '%s' does not answer type %s (see 'types:')",
             c->p->name ? c->p->name : "?", t->str);
        return;
    }
    s->value = s_str(c, v);
    am_arena_t *tmp = am_arena_new(1024, (size_t)1 << 20);
    const char *canon = tmp ? eng_ioc_canonical(s->type, v->str, v->len, false, tmp) : NULL;
    if (canon == NULL)
        serr(c, v, "'%s' is not a valid %s indicator", v->str, t->str);
    else if (strlen(canon) != v->len || memcmp(canon, v->str, v->len) != 0)
        serr(c, v, "'%s' is not in canonical form: the worker looks up '%s'", v->str, canon);
    am_arena_free(tmp);
}

static void compile_reply(sc_t *c, pv_sample_t *s, const yt_node_t *n)
{
    static const char *const keys[] = {"status", "headers", "body"};
    if (!want_map(c, n, "reply"))
        return;
    only_keys(c, n, keys, AM_ARRAY_LEN(keys), "'reply'");
    const yt_node_t *st = eng_yt_get(n, "status"), *h = eng_yt_get(n, "headers"),
                    *b = eng_yt_get(n, "body");
    char *end = NULL;
    long code = is_text(st) && !st->quoted ? strtol(st->str, &end, 10) : 0;
    if (st == NULL)
        serr(c, n, "'reply' needs 'status' (the HTTP status the vendor answered)");
    else if (end == NULL || *end != '\0' || code < 100 || code > 599)
        serr(c, st, "'status' must be an HTTP status from 100 to 599");
    else
        s->status = (int)code;
    if (h != NULL && want_map(c, h, "headers")) {
        s->rheaders = s_alloc(c, h->npairs, sizeof(*s->rheaders));
        for (size_t i = 0; i < h->npairs; i++) {
            const yt_node_t *v = h->pairs[i].value;
            if (!want_text(c, v, h->pairs[i].key->str))
                continue;
            s->rheaders[s->nrheaders].name = s_str(c, h->pairs[i].key);
            s->rheaders[s->nrheaders].value = s_str(c, v);
            s->nrheaders++;
        }
    }
    if (b == NULL || eng_yt_is_null(b)) {
        s->body = "";
    } else if (b->kind == YT_SCALAR) {
        s->body = s_str(c, b); /* the bytes as the vendor sent them */
        s->body_len = b->len;
    } else {
        json_t *j = yaml_json(b);
        char *text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (text == NULL) {
            serr(c, b, "'body' cannot be written as JSON");
            return;
        }
        s->body_len = strlen(text);
        s->body = am_arena_strndup(c->a, text, s->body_len);
        free(text);
        if (s->body == NULL)
            am_oom(s->body_len);
    }
}

static void compile_request(sc_t *c, pv_sample_t *s, const yt_node_t *n)
{
    static const char *const keys[] = {"method", "url", "headers", "body"};
    if (!want_map(c, n, "request"))
        return;
    only_keys(c, n, keys, AM_ARRAY_LEN(keys), "'request'");
    s->x_request = true;
    s->x_request_at = at(n);
    const yt_node_t *v;
    if ((v = eng_yt_get(n, "method")) != NULL && want_text(c, v, "method")) {
        s->x_method = s_str(c, v);
        s->x_method_at = at(v);
    }
    if ((v = eng_yt_get(n, "url")) != NULL && want_text(c, v, "url")) {
        s->x_url = s_str(c, v);
        s->x_url_at = at(v);
    }
    if ((v = eng_yt_get(n, "body")) != NULL && want_text(c, v, "body")) {
        s->x_body = s_str(c, v);
        s->x_body_at = at(v);
    }
    if ((v = eng_yt_get(n, "headers")) != NULL && want_map(c, v, "headers")) {
        s->x_headers = true;
        s->x_headers_at = at(v);
        s->xh = s_alloc(c, v->npairs, sizeof(*s->xh));
        for (size_t i = 0; i < v->npairs; i++) {
            const yt_node_t *hv = v->pairs[i].value;
            if (!want_text(c, hv, v->pairs[i].key->str))
                continue;
            pv_xheader_t *x = &s->xh[s->nxh++];
            x->name = s_str(c, v->pairs[i].key);
            x->value = s_str(c, hv);
            x->at = at(hv);
        }
    }
}

static void compile_expect(sc_t *c, pv_sample_t *s, const yt_node_t *n)
{
    static const char *const keys[] = {"request", "outcome", "verdict",    "result",
                                       "labels",  "reason",  "retry_after"};
    if (!want_map(c, n, "expect"))
        return;
    only_keys(c, n, keys, AM_ARRAY_LEN(keys), "'expect'");
    bool http = c->p->kind == ENG_PROV_HTTP;
    const yt_node_t *v;
    if ((v = eng_yt_get(n, "request")) != NULL) {
        if (!http)
            serr(c, v, "a %s provider sends no request: 'request' is for http providers",
                 c->p->kind == ENG_PROV_LIST ? "list" : "cidr");
        else
            compile_request(c, s, v);
    }
    v = eng_yt_get(n, "outcome");
    if (v == NULL)
        serr(c, n, "'expect' needs 'outcome' (found, not_found, retry or failed)");
    else if (want_text(c, v, "outcome")) {
        s->x_outcome_at = at(v);
        if (strcmp(v->str, "found") == 0)
            s->x_outcome = ENG_OUT_FOUND;
        else if (strcmp(v->str, "not_found") == 0)
            s->x_outcome = ENG_OUT_NOT_FOUND;
        else if (strcmp(v->str, "retry") == 0 && http)
            s->x_outcome = ENG_OUT_RETRY;
        else if ((strcmp(v->str, "failed") == 0 || strcmp(v->str, "error") == 0) && http)
            s->x_outcome = ENG_OUT_FAILED;
        else
            serr(c, v, "'outcome' must be %s, got '%s'",
                 http ? "found, not_found, retry or failed" : "found or not_found", v->str);
    }
    if ((v = eng_yt_get(n, "verdict")) != NULL && want_text(c, v, "verdict")) {
        s->x_verdict = eng_verdict_parse(v->str);
        s->x_verdict_at = at(v);
        if (c->p->kind == ENG_PROV_CIDR)
            serr(c, v, "a cidr provider gives no verdict (its labels are context)");
        else if (s->x_verdict <= 0)
            serr(c, v, "'verdict' must be Malicious, Suspicious, Benign or Unknown, got '%s'",
                 v->str);
    }
    if ((v = eng_yt_get(n, "result")) != NULL && want_map(c, v, "result")) {
        s->x_result = keep(c, yaml_json(v));
        s->x_result_at = at(v);
        s->xf = s_alloc(c, v->npairs, sizeof(*s->xf));
        for (size_t i = 0; i < v->npairs; i++) {
            s->xf[s->nxf].name = s_str(c, v->pairs[i].key);
            s->xf[s->nxf].at = at(v->pairs[i].value);
            s->nxf++;
        }
    }
    if ((v = eng_yt_get(n, "labels")) != NULL) {
        if (c->p->kind != ENG_PROV_CIDR)
            serr(c, v, "'labels' is for cidr providers (use 'result' for other fields)");
        else if (v->kind != YT_SEQ)
            serr(c, v, "'labels' must be a list of strings");
        else {
            for (size_t i = 0; i < v->nitems; i++)
                if (!is_text(v->items[i]))
                    serr(c, v->items[i], "a label must be a string");
            json_t *l = json_array();
            for (size_t i = 0; i < v->nitems; i++)
                json_array_append_new(l, json_stringn(v->items[i]->str, v->items[i]->len));
            s->x_labels = keep(c, l);
            s->x_labels_at = at(v);
        }
    }
    if ((v = eng_yt_get(n, "reason")) != NULL && want_text(c, v, "reason")) {
        s->x_reason = s_str(c, v);
        s->x_reason_at = at(v);
    }
    if ((v = eng_yt_get(n, "retry_after")) != NULL) {
        if (!is_text(v) || !eng_pv_parse_duration(v->str, &s->x_retry_after_us))
            serr(c, v, "'retry_after' must be a duration such as 30s or 5m");
        else if (s->x_outcome != ENG_OUT_RETRY)
            serr(c, v, "'retry_after' is for outcome retry");
        s->x_retry_after_at = at(v);
    }
}

bool eng_pv_compile_samples(eng_provider_t *p, const yt_node_t *n, am_arena_t *a, json_t *keep_arr,
                            const char *file, am_diags_t *d)
{
    static const char *const keys[] = {"name", "description", "indicator", "reply", "expect"};
    sc_t c = {.p = p, .a = a, .keep = keep_arr, .file = file, .d = d};
    if (n->kind != YT_SEQ) {
        serr(&c, n, "'samples' must be a list of samples");
        return false;
    }
    if (n->nitems > MAX_SAMPLES) {
        serr(&c, n, "at most %d samples per provider", MAX_SAMPLES);
        return false;
    }
    p->samples = s_alloc(&c, n->nitems, sizeof(*p->samples));
    for (size_t i = 0; i < n->nitems; i++) {
        const yt_node_t *it = n->items[i];
        if (!want_map(&c, it, "sample"))
            continue;
        only_keys(&c, it, keys, AM_ARRAY_LEN(keys), "a sample");
        pv_sample_t *s = &p->samples[p->nsamples];
        memset(s, 0, sizeof(*s));
        s->at = at(it);
        s->x_verdict = -1;
        s->x_retry_after_us = -1;
        s->x_outcome = ENG_OUT_FOUND;
        const yt_node_t *v = eng_yt_get(it, "name");
        if (v == NULL)
            serr(&c, it, "a sample needs 'name'");
        else if (want_text(&c, v, "name")) {
            s->name = s_str(&c, v);
            for (size_t k = 0; k < p->nsamples; k++)
                if (strcmp(p->samples[k].name, s->name) == 0)
                    serr(&c, v, "sample '%s' is defined twice", s->name);
        }
        if ((v = eng_yt_get(it, "description")) != NULL)
            want_text(&c, v, "description");
        if ((v = eng_yt_get(it, "indicator")) == NULL)
            serr(&c, it, "a sample needs 'indicator' ({type: T, value: V})");
        else
            compile_indicator(&c, s, v);
        v = eng_yt_get(it, "reply");
        if (p->kind == ENG_PROV_HTTP && v == NULL)
            serr(&c, it, "a sample of an http provider needs 'reply' (the recorded vendor reply)");
        else if (p->kind != ENG_PROV_HTTP && v != NULL)
            serr(&c, v, "a %s provider is answered from memory: its samples have no 'reply'",
                 p->kind == ENG_PROV_LIST ? "list" : "cidr");
        else if (v != NULL)
            compile_reply(&c, s, v);
        if ((v = eng_yt_get(it, "expect")) == NULL)
            serr(&c, it, "a sample needs 'expect' (at least the outcome)");
        else
            compile_expect(&c, s, v);
        if (s->name != NULL)
            p->nsamples++; /* when any sample has an error, none is kept (below) */
    }
    if (c.failed)
        p->nsamples = 0;
    return !c.failed;
}

/* ---- running ------------------------------------------------------------------------ */

typedef struct run {
    const eng_provider_t *p;
    const pv_sample_t *s;
    am_diags_t *d;
    int ndiffs;
} run_t;

static void differs(run_t *r, pv_at_t where, const char *fmt, ...) AM_PRINTF(3, 4);
static void differs(run_t *r, pv_at_t where, const char *fmt, ...)
{
    if (++r->ndiffs > MAX_DIFFS)
        return;
    if (where.line == 0)
        where = r->s->at;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    am_diags_add(r->d, r->p->file, where.line, where.col, "sample '%s': %s", r->s->name, msg);
}

/* Compact JSON of v, cut at 160 bytes, into buf. */
static const char *show(char *buf, size_t size, const json_t *v)
{
    if (v == NULL)
        return "nothing";
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s == NULL)
        return "?";
    if (strlen(s) > 160)
        snprintf(buf, size, "%.157s...", s);
    else
        snprintf(buf, size, "%s", s);
    free(s);
    return buf;
}

/* The secret whose value text holds (resolved secrets of at least
 * MIN_SECRET_SCAN bytes), or NULL. */
static const pv_secret_t *holds_secret(const eng_provider_t *p, const char *text)
{
    for (size_t i = 0; text != NULL && i < p->nsecrets; i++) {
        const char *v = p->secrets[i].value;
        if (v != NULL && strlen(v) >= MIN_SECRET_SCAN && strstr(text, v) != NULL)
            return &p->secrets[i];
    }
    return NULL;
}

/* Compares one expected string of the request; a real secret in the
 * expectation is reported without showing either text. */
static void same_text(run_t *r, pv_at_t where, const char *what, const char *exp, const char *got)
{
    const pv_secret_t *sec = holds_secret(r->p, exp);
    if (sec != NULL) {
        differs(r, where, "%s holds the value of secret '%s' ($%s): write {secret.%s} instead",
                what, sec->name, sec->env, sec->name);
        return;
    }
    if (got == NULL)
        differs(r, where, "%s: expected '%s', the provider sends none", what, exp);
    else if (strcmp(exp, got) != 0)
        differs(r, where, "%s: expected '%s', got '%s'", what, exp, got);
}

static void check_request(run_t *r, const eng_request_t *rq)
{
    const pv_sample_t *s = r->s;
    char what[300];
    if (s->x_method != NULL)
        same_text(r, s->x_method_at, "request method", s->x_method, rq->method);
    if (s->x_url != NULL)
        same_text(r, s->x_url_at, "request url", s->x_url, rq->url);
    if (s->x_body != NULL)
        same_text(r, s->x_body_at, "request body", s->x_body, rq->body);
    else if (s->x_request && rq->body != NULL && rq->body_len > 0)
        differs(r, s->x_request_at, "request body: the provider sends '%s', not expected",
                rq->body);
    if (!s->x_headers)
        return;
    for (size_t i = 0; i < s->nxh; i++) {
        const char *got = NULL;
        for (size_t k = 0; k < rq->nheaders && got == NULL; k++)
            if (strcasecmp(rq->headers[k].name, s->xh[i].name) == 0)
                got = rq->headers[k].value;
        snprintf(what, sizeof(what), "request header '%s'", s->xh[i].name);
        same_text(r, s->xh[i].at, what, s->xh[i].value, got);
    }
    for (size_t k = 0; k < rq->nheaders; k++) {
        bool listed = false;
        for (size_t i = 0; i < s->nxh && !listed; i++)
            listed = strcasecmp(rq->headers[k].name, s->xh[i].name) == 0;
        if (!listed)
            differs(r, s->x_headers_at, "request header '%s: %s' is sent but not expected",
                    rq->headers[k].name, rq->headers[k].value);
    }
}

static pv_at_t field_at(const pv_sample_t *s, const char *path)
{
    size_t n = strcspn(path, ".[");
    for (size_t i = 0; i < s->nxf; i++)
        if (strlen(s->xf[i].name) == n && strncmp(s->xf[i].name, path, n) == 0)
            return s->xf[i].at;
    return s->x_result_at;
}

/* Every difference between the expected e and the result g under path. */
static void diff_json(run_t *r, const char *path, const json_t *e, const json_t *g)
{
    char sp[512], b1[200], b2[200];
    if (json_is_number(e) && json_is_number(g)) {
        if (json_number_value(e) != json_number_value(g))
            differs(r, field_at(r->s, path), "result.%s: expected %s, got %s", path,
                    show(b1, sizeof(b1), e), show(b2, sizeof(b2), g));
        return;
    }
    if (g == NULL || json_typeof(e) != json_typeof(g)) {
        differs(r, field_at(r->s, path), "result.%s: expected %s, got %s", path,
                show(b1, sizeof(b1), e), show(b2, sizeof(b2), g));
        return;
    }
    if (json_is_object(e)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)e, k, v)
        {
            snprintf(sp, sizeof(sp), "%s%s%s", path, path[0] ? "." : "", k);
            diff_json(r, sp, v, json_object_get(g, k));
        }
        json_object_foreach((json_t *)g, k, v)
        {
            if (json_object_get(e, k) != NULL)
                continue;
            snprintf(sp, sizeof(sp), "%s%s%s", path, path[0] ? "." : "", k);
            differs(r, path[0] ? field_at(r->s, path) : r->s->x_result_at,
                    "result.%s: unexpected %s", sp, show(b2, sizeof(b2), v));
        }
        return;
    }
    if (json_is_array(e)) {
        size_t ne = json_array_size(e), ng = json_array_size(g);
        for (size_t i = 0; i < ne || i < ng; i++) {
            snprintf(sp, sizeof(sp), "%s[%zu]", path, i);
            if (i >= ne)
                differs(r, field_at(r->s, path), "result.%s: unexpected %s", sp,
                        show(b2, sizeof(b2), json_array_get(g, i)));
            else
                diff_json(r, sp, json_array_get(e, i), json_array_get(g, i));
        }
        return;
    }
    if (!json_equal((json_t *)e, (json_t *)g))
        differs(r, field_at(r->s, path), "result.%s: expected %s, got %s", path,
                show(b1, sizeof(b1), e), show(b2, sizeof(b2), g));
}

static void check_answer(run_t *r, const eng_presult_t *got)
{
    const pv_sample_t *s = r->s;
    char b1[200], b2[200];
    if (got->outcome != s->x_outcome)
        differs(r, s->x_outcome_at, "outcome: expected %s, got %s%s%s%s",
                eng_outcome_name(s->x_outcome), eng_outcome_name(got->outcome),
                got->reason[0] ? " (" : "", got->reason, got->reason[0] ? ")" : "");
    if (s->x_verdict > 0 && (int)got->verdict != s->x_verdict)
        differs(r, s->x_verdict_at, "verdict: expected %s, got %s",
                eng_verdict_name((eng_verdict_t)s->x_verdict), eng_verdict_name(got->verdict));
    if (s->x_result != NULL)
        diff_json(r, "", s->x_result, got->fields);
    if (s->x_labels != NULL) {
        json_t *l = json_object_get(got->fields, "labels");
        if (l == NULL || !json_equal(l, s->x_labels))
            differs(r, s->x_labels_at, "labels: expected %s, got %s",
                    show(b1, sizeof(b1), s->x_labels), show(b2, sizeof(b2), l));
    }
    if (s->x_reason != NULL && strstr(got->reason, s->x_reason) == NULL)
        differs(r, s->x_reason_at, "reason: expected one containing '%s', got '%s'", s->x_reason,
                got->reason);
    if (s->x_retry_after_us >= 0 && got->retry_after_us != s->x_retry_after_us) {
        if (got->retry_after_us < 0)
            differs(r, s->x_retry_after_at, "retry_after: expected %llds, the reply asks for none",
                    (long long)(s->x_retry_after_us / 1000000));
        else
            differs(r, s->x_retry_after_at, "retry_after: expected %llds, got %llds",
                    (long long)(s->x_retry_after_us / 1000000),
                    (long long)(got->retry_after_us / 1000000));
    }
}

static bool check_one(const eng_provider_t *p, const pv_sample_t *s, am_diags_t *d)
{
    run_t r = {.p = p, .s = s, .d = d};
    eng_presult_t got;
    if (p->kind == ENG_PROV_HTTP) {
        am_arena_t *a = am_arena_new(4096, SAMPLE_ARENA_SIZE);
        if (a == NULL)
            am_oom(4096);
        eng_request_t rq;
        eng_error_t err = {0};
        if (eng_pv_request(&rq, p, s->type, s->value, true, a, &err) != AM_OK) {
            /* the worker records such a lookup as failed without sending anything */
            memset(&got, 0, sizeof(got));
            got.fields = json_object();
            got.outcome = ENG_OUT_FAILED;
            got.verdict = ENG_VERDICT_UNKNOWN;
            got.retry_after_us = -1;
            snprintf(got.reason, sizeof(got.reason), "%.200s", err.message);
            if (s->x_request)
                differs(&r, s->x_request_at, "no request is sent: %s", err.message);
        } else {
            check_request(&r, &rq);
            eng_reply_t reply = {.status = s->status,
                                 .headers = s->rheaders,
                                 .nheaders = s->nrheaders,
                                 .body = s->body,
                                 .body_len = s->body_len};
            eng_provider_interpret(&got, p, s->type, &reply, SAMPLE_NOW_US);
        }
        am_arena_free(a);
    } else {
        eng_provider_lookup(&got, p, s->type, s->value);
    }
    check_answer(&r, &got);
    json_decref(got.fields);
    if (r.ndiffs > MAX_DIFFS)
        am_diags_add(d, p->file, s->at.line, s->at.col, "sample '%s': ... and %d more differences",
                     s->name, r.ndiffs - MAX_DIFFS);
    return r.ndiffs == 0;
}

int eng_provider_check_samples(const eng_provider_t *p, am_diags_t *d)
{
    int failing = 0;
    for (size_t i = 0; i < p->nsamples; i++)
        if (!check_one(p, &p->samples[i], d))
            failing++;
    return failing;
}
