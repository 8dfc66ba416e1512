/*
 * engine/provider.c - the run-time part of providers: renders an http
 * provider's request for one indicator, evaluates its reply (statuses,
 * response mapping, verdict rules), answers list and cidr providers from
 * memory, parses Retry-After and limits request rates. No YAML, no I/O.
 */
#include "provider_int.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const verdict_names[] = {"none", "Unknown", "Benign", "Suspicious", "Malicious"};

const char *eng_verdict_name(eng_verdict_t v)
{
    return (unsigned)v < AM_ARRAY_LEN(verdict_names) ? verdict_names[v] : "none";
}

int eng_verdict_parse(const char *name)
{
    for (size_t i = 1; i < AM_ARRAY_LEN(verdict_names); i++)
        if (strcmp(name, verdict_names[i]) == 0)
            return (int)i;
    return -1;
}

const char *eng_outcome_name(eng_outcome_t o)
{
    static const char *const n[] = {"found", "not_found", "retry", "failed"};
    return (unsigned)o < AM_ARRAY_LEN(n) ? n[o] : "failed";
}

/* ---- the set -------------------------------------------------------------------- */

eng_providers_t *eng_providers_ref(eng_providers_t *s)
{
    if (s != NULL)
        atomic_fetch_add(&s->refs, 1);
    return s;
}

void eng_providers_unref(eng_providers_t *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->n; i++) {
        eng_provider_t *p = s->items[i];
        for (size_t k = 0; k < p->nsecrets; k++)
            if (p->secrets[k].value != NULL)
                OPENSSL_cleanse(p->secrets[k].value, strlen(p->secrets[k].value));
    }
    json_decref(s->keep);
    am_arena_free(s->arena);
    free(s);
}

size_t eng_providers_count(const eng_providers_t *s)
{
    return s ? s->n : 0;
}

const eng_provider_t *eng_providers_at(const eng_providers_t *s, size_t i)
{
    return s && i < s->n ? s->items[i] : NULL;
}

const eng_provider_t *eng_providers_find(const eng_providers_t *s, const char *name)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (strcmp(s->items[i]->name, name) == 0)
            return s->items[i];
    return NULL;
}

void eng_provider_info(eng_provider_info_t *out, const eng_provider_t *p)
{
    memset(out, 0, sizeof(*out));
    out->name = p->name;
    out->file = p->file;
    out->kind = p->kind;
    out->types = p->types;
    out->timeout_us = p->timeout_us;
    out->concurrency = p->concurrency;
    out->max_attempts = p->max_attempts;
    memcpy(out->rates, p->rates, sizeof(out->rates));
    out->nrates = p->nrates;
    out->entries = p->kind == ENG_PROV_CIDR ? p->nnets : p->values.n + p->nnets;
    out->skipped = p->skipped;
    out->nsamples = p->nsamples;
}

bool eng_provider_applies(const eng_provider_t *p, eng_ioc_type_t t)
{
    return (unsigned)t < ENG_IOC__COUNT && (p->types & (1u << t)) != 0;
}

int64_t eng_provider_cache_ttl_us(const eng_provider_t *p, eng_ioc_type_t t)
{
    return (unsigned)t < ENG_IOC__COUNT ? p->ttl_us[t] : 0;
}

/* ---- rendering ----------------------------------------------------------------- */

static bool unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static void put_encoded(am_buf_t *b, const char *s, size_t n, pv_enc_t enc)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (enc == PV_ENC_HEADER || unreserved(c)) {
            am_buf_putc(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            am_buf_append(b, e, 3);
        }
    }
}

static void put_b64url(am_buf_t *b, const char *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)u[i] << 16 | (uint32_t)u[i + 1] << 8 | u[i + 2];
        char o[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], tab[v & 63]};
        am_buf_append(b, o, 4);
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)u[i] << 16;
        char o[2] = {tab[v >> 18], tab[(v >> 12) & 63]};
        am_buf_append(b, o, 2);
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)u[i] << 16 | (uint32_t)u[i + 1] << 8;
        char o[3] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63]};
        am_buf_append(b, o, 3);
    }
}

/* Renders one template; returns the text in a or NULL (err set). With mask
 * a secret is written as {secret.NAME}. */
static char *render(const eng_provider_t *p, const pv_tpl_t *t, pv_enc_t enc, const char *value,
                    bool mask, am_arena_t *a, eng_error_t *err, int *rc)
{
    am_buf_t b;
    am_buf_init(&b, 0);
    size_t vlen = strlen(value);
    for (size_t i = 0; i < t->n; i++) {
        const pv_part_t *pt = &t->parts[i];
        switch (pt->kind) {
        case PV_LIT:
            am_buf_append(&b, pt->lit, pt->len);
            break;
        case PV_VALUE:
            put_encoded(&b, value, vlen, enc);
            break;
        case PV_VALUE_B64URL:
            put_b64url(&b, value, vlen); /* its alphabet is unreserved everywhere */
            break;
        case PV_SECRET: {
            const char *s = p->secrets[pt->secret].value;
            if (mask) {
                am_buf_printf(&b, "{secret.%s}", p->secrets[pt->secret].name);
                break;
            }
            if (s == NULL) {
                err->code = "PROVIDER_SECRET_MISSING";
                snprintf(err->message, sizeof(err->message),
                         "provider '%s': secret '%s' ($%s) was not resolved at load", p->name,
                         p->secrets[pt->secret].name, p->secrets[pt->secret].env);
                *rc = AM_EINVAL;
                am_buf_dispose(&b);
                return NULL;
            }
            am_buf_puts(&b, s);
            break;
        }
        }
    }
    if (enc == PV_ENC_HEADER) {
        for (size_t i = 0; i < b.len; i++) {
            unsigned char c = (unsigned char)b.data[i];
            if (c < 0x20 || c == 0x7f) {
                err->code = "INVALID_INDICATOR";
                snprintf(err->message, sizeof(err->message),
                         "provider '%s': a header value would hold a control character", p->name);
                *rc = AM_EINVAL;
                am_buf_dispose(&b);
                return NULL;
            }
        }
    }
    char *out = am_arena_strndup(a, b.data ? b.data : "", b.len);
    am_buf_dispose(&b);
    if (out == NULL)
        *rc = AM_ELIMIT;
    return out;
}

int eng_provider_request(eng_request_t *out, const eng_provider_t *p, eng_ioc_type_t t,
                         const char *value, am_arena_t *a, eng_error_t *err)
{
    return eng_pv_request(out, p, t, value, false, a, err);
}

int eng_pv_request(eng_request_t *out, const eng_provider_t *p, eng_ioc_type_t t, const char *value,
                   bool mask, am_arena_t *a, eng_error_t *err)
{
    int rc = AM_OK;
    memset(out, 0, sizeof(*out));
    if (p->kind != ENG_PROV_HTTP || !eng_provider_applies(p, t) || p->url[t] == NULL) {
        err->code = "INVALID_INDICATOR";
        snprintf(err->message, sizeof(err->message), "provider '%s' does not answer type %s",
                 p->name, eng_ioc_type_name(t));
        return AM_EINVAL;
    }
    if (strlen(value) == 0) {
        err->code = "INVALID_INDICATOR";
        snprintf(err->message, sizeof(err->message), "empty indicator value");
        return AM_EINVAL;
    }
    out->method = p->method;
    out->url = render(p, p->url[t], PV_ENC_URL, value, mask, a, err, &rc);
    if (out->url == NULL)
        goto done;
    size_t nh = p->nheaders + (p->nform ? 1 : 0);
    out->headers = am_arena_calloc(a, nh ? nh : 1, sizeof(*out->headers));
    if (out->headers == NULL) {
        rc = AM_ELIMIT;
        goto done;
    }
    for (size_t i = 0; i < p->nheaders; i++) {
        out->headers[i].name = p->headers[i].name;
        out->headers[i].value =
            render(p, &p->headers[i].tpl, PV_ENC_HEADER, value, mask, a, err, &rc);
        if (out->headers[i].value == NULL)
            goto done;
    }
    out->nheaders = p->nheaders;
    if (p->nform) {
        am_buf_t b;
        am_buf_init(&b, 0);
        for (size_t i = 0; i < p->nform && rc == AM_OK; i++) {
            char *v = render(p, &p->form[i].tpl, PV_ENC_FORM, value, mask, a, err, &rc);
            if (v == NULL)
                break;
            if (i)
                am_buf_putc(&b, '&');
            put_encoded(&b, p->form[i].name, strlen(p->form[i].name), PV_ENC_FORM);
            am_buf_putc(&b, '=');
            am_buf_puts(&b, v);
        }
        if (rc == AM_OK) {
            out->body_len = b.len;
            out->body = am_arena_strndup(a, b.data ? b.data : "", b.len);
            if (out->body == NULL)
                rc = AM_ELIMIT;
        }
        am_buf_dispose(&b);
        if (rc != AM_OK)
            goto done;
        out->headers[out->nheaders].name = "Content-Type";
        out->headers[out->nheaders].value = "application/x-www-form-urlencoded";
        out->nheaders++;
    }
done:
    if (rc == AM_ELIMIT && err->code == NULL) {
        err->code = "LIMIT_EXCEEDED";
        snprintf(err->message, sizeof(err->message), "request does not fit the arena");
    }
    return rc;
}

/* ---- evaluating ------------------------------------------------------------------ */

static bool status_in(const pv_statuses_t *s, int status)
{
    for (size_t i = 0; i < s->n; i++)
        if (status >= s->r[i].lo && status <= s->r[i].hi)
            return true;
    return false;
}

static bool as_number(const json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        if (*s == '\0')
            return false;
        *out = strtod(s, &end);
        return *end == '\0' && isfinite(*out);
    }
    return false;
}

/* Scalar equality: numbers by value, strings case-insensitively, booleans. */
static bool scalar_eq(const json_t *a, const json_t *b)
{
    double x, y;
    if (json_is_boolean(a) || json_is_boolean(b))
        return json_is_boolean(a) && json_is_boolean(b) && json_is_true(a) == json_is_true(b);
    if ((json_is_number(a) || json_is_number(b)) && as_number(a, &x) && as_number(b, &y))
        return x == y;
    if (json_is_string(a) && json_is_string(b))
        return strcasecmp(json_string_value(a), json_string_value(b)) == 0;
    return json_is_null(a) && json_is_null(b);
}

static bool cond_eval(const pv_cond_t *c, json_t *fields)
{
    switch (c->kind) {
    case PV_C_ALL:
        for (size_t i = 0; i < c->nsub; i++)
            if (!cond_eval(c->sub[i], fields))
                return false;
        return true;
    case PV_C_ANY:
        for (size_t i = 0; i < c->nsub; i++)
            if (cond_eval(c->sub[i], fields))
                return true;
        return false;
    case PV_C_NOT:
        return !cond_eval(c->sub[0], fields);
    default:
        break;
    }
    json_t *v = json_object_get(fields, c->field);
    double x, y;
    switch (c->kind) {
    case PV_C_EXISTS:
        return (v != NULL && !json_is_null(v) && !(json_is_array(v) && json_array_size(v) == 0)) ==
               c->exists;
    case PV_C_EQ:
        return v != NULL && scalar_eq(v, c->operand);
    case PV_C_NE:
        return v == NULL || !scalar_eq(v, c->operand);
    case PV_C_GT:
    case PV_C_GTE:
    case PV_C_LT:
    case PV_C_LTE:
        if (v == NULL || !as_number(v, &x) || !as_number(c->operand, &y))
            return false;
        return c->kind == PV_C_GT    ? x > y
               : c->kind == PV_C_GTE ? x >= y
               : c->kind == PV_C_LT  ? x < y
                                     : x <= y;
    case PV_C_IN: {
        if (v == NULL)
            return false;
        size_t i;
        json_t *o;
        json_array_foreach(c->operand, i, o) if (scalar_eq(v, o)) return true;
        return false;
    }
    case PV_C_CONTAINS: {
        if (json_is_array(v)) {
            size_t i;
            json_t *o;
            json_array_foreach(v, i, o) if (scalar_eq(o, c->operand)) return true;
            return false;
        }
        if (json_is_string(v) && json_is_string(c->operand))
            return strcasestr(json_string_value(v), json_string_value(c->operand)) != NULL;
        return false;
    }
    default:
        return false;
    }
}

static int collect(void *ctx, json_t *v)
{
    json_array_append(ctx, v);
    return 0;
}

static eng_verdict_t verdict_of(const eng_provider_t *p, json_t *fields)
{
    for (size_t i = 0; i < p->nvrules; i++) {
        const pv_vrule_t *r = &p->vrules[i];
        if (r->is_else)
            return r->then;
        if (r->when != NULL) {
            if (cond_eval(r->when, fields))
                return r->then;
            continue;
        }
        json_t *v = json_object_get(fields, r->map_field);
        char buf[64];
        size_t len;
        const char *s = v ? eng_path_scalar_text(v, buf, &len) : NULL;
        if (s == NULL)
            continue;
        for (size_t k = 0; k < r->nmap; k++)
            if (strlen(r->map[k].key) == len && strncasecmp(r->map[k].key, s, len) == 0)
                return r->map[k].verdict;
    }
    return ENG_VERDICT_UNKNOWN;
}

static void set_reason(eng_presult_t *out, eng_outcome_t o, const char *fmt, ...) AM_PRINTF(3, 4);
static void set_reason(eng_presult_t *out, eng_outcome_t o, const char *fmt, ...)
{
    va_list ap;
    out->outcome = o;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
    va_end(ap);
}

void eng_provider_evaluate(eng_presult_t *out, const eng_provider_t *p, eng_ioc_type_t t,
                           int status, const char *body, size_t len)
{
    eng_reply_t r = {.status = status, .body = body, .body_len = len};
    eng_provider_interpret(out, p, t, &r, 0);
}

void eng_provider_interpret(eng_presult_t *out, const eng_provider_t *p, eng_ioc_type_t t,
                            const eng_reply_t *reply, int64_t now_us)
{
    (void)t;
    int status = reply->status;
    const char *body = reply->body;
    size_t len = reply->body_len;
    memset(out, 0, sizeof(*out));
    out->verdict = ENG_VERDICT_UNKNOWN;
    out->fields = json_object();
    out->retry_after_us = -1;
    if (p->kind != ENG_PROV_HTTP) {
        set_reason(out, ENG_OUT_FAILED, "provider '%s' is not an http provider", p->name);
        return;
    }
    if (status_in(&p->retry, status)) {
        set_reason(out, ENG_OUT_RETRY, "HTTP %d", status);
        for (size_t i = 0; i < reply->nheaders; i++)
            if (strcasecmp(reply->headers[i].name, "Retry-After") == 0)
                out->retry_after_us = eng_retry_after_us(reply->headers[i].value, now_us);
        return;
    }
    if (status_in(&p->not_found, status)) {
        out->outcome = ENG_OUT_NOT_FOUND;
        return;
    }
    if (!status_in(&p->found, status)) {
        set_reason(out, ENG_OUT_FAILED, "unexpected HTTP status %d", status);
        return;
    }
    json_error_t je;
    json_t *doc = json_loadb(body ? body : "", len, JSON_DECODE_ANY, &je);
    if (doc == NULL) {
        set_reason(out, ENG_OUT_FAILED, "reply is not JSON: %s (offset %d)", je.text, je.position);
        return;
    }
    for (size_t i = 0; i < p->nfields; i++) {
        const pv_field_t *f = &p->fields[i];
        if (f->path->multi) {
            json_t *arr = json_array();
            eng_path_visit(f->path, doc, doc, collect, arr);
            json_object_set_new(out->fields, f->name, arr);
        } else {
            json_t *v = eng_path_first(f->path, doc, doc);
            if (v != NULL)
                json_object_set(out->fields, f->name, v);
        }
    }
    json_decref(doc);
    if (p->not_found_when != NULL && cond_eval(p->not_found_when, out->fields)) {
        out->outcome = ENG_OUT_NOT_FOUND;
        return;
    }
    out->outcome = ENG_OUT_FOUND;
    out->verdict = verdict_of(p, out->fields);
}

/* ---- list and cidr ------------------------------------------------------------------- */

bool eng_pv_parse_net(pv_net_t *out, const char *text, size_t len)
{
    char buf[64];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    long prefix = -1;
    if (slash != NULL) {
        char *end;
        *slash = '\0';
        if (!isdigit((unsigned char)slash[1]))
            return false;
        prefix = strtol(slash + 1, &end, 10);
        if (*end != '\0')
            return false;
    }
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = 4;
        if (prefix < 0)
            prefix = 32;
        if (prefix > 32)
            return false;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = 6;
        if (prefix < 0)
            prefix = 128;
        if (prefix > 128)
            return false;
    } else {
        return false;
    }
    out->prefix = (unsigned)prefix;
    /* host bits are cleared so that 10.1.2.3/8 means 10.0.0.0/8 */
    unsigned bits = out->family == 4 ? 32 : 128;
    for (unsigned b = out->prefix; b < bits; b++)
        out->addr[b / 8] &= (unsigned char)~(0x80u >> (b % 8));
    return true;
}

static bool net_contains(const pv_net_t *n, const pv_net_t *ip)
{
    if (n->family != ip->family)
        return false;
    unsigned full = n->prefix / 8, rest = n->prefix % 8;
    if (memcmp(n->addr, ip->addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xffu << (8 - rest));
    return (n->addr[full] & mask) == (ip->addr[full] & mask);
}

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static char *hash_key(char *buf, size_t size, eng_ioc_type_t t, const char *v)
{
    int w = snprintf(buf, size, "%c\x1f%s", 'a' + (int)t, v);
    return w >= 0 && (size_t)w < size ? buf : NULL;
}

static bool hash_put(pv_hash_t *h, const char *key)
{
    size_t i = fnv(key) & (h->cap - 1);
    while (h->slots[i] != NULL) {
        if (strcmp(h->slots[i], key) == 0)
            return false;
        i = (i + 1) & (h->cap - 1);
    }
    h->slots[i] = key;
    h->n++;
    return true;
}

bool eng_pv_hash_add(pv_hash_t *h, am_arena_t *a, eng_ioc_type_t t, const char *v)
{
    char buf[4096];
    if (hash_key(buf, sizeof(buf), t, v) == NULL)
        return false;
    if (h->n * 2 + 2 > h->cap) {
        pv_hash_t g = {NULL, h->cap ? h->cap * 2 : 64, 0};
        g.slots = am_arena_calloc(a, g.cap, sizeof(*g.slots));
        if (g.slots == NULL)
            return false;
        for (size_t i = 0; i < h->cap; i++)
            if (h->slots[i] != NULL)
                hash_put(&g, h->slots[i]);
        *h = g;
    }
    if (eng_pv_hash_has(h, t, v))
        return true;
    char *k = am_arena_strdup(a, buf);
    return k != NULL && hash_put(h, k);
}

bool eng_pv_hash_has(const pv_hash_t *h, eng_ioc_type_t t, const char *v)
{
    char buf[4096];
    if (h->cap == 0 || hash_key(buf, sizeof(buf), t, v) == NULL)
        return false;
    size_t i = fnv(buf) & (h->cap - 1);
    while (h->slots[i] != NULL) {
        if (strcmp(h->slots[i], buf) == 0)
            return true;
        i = (i + 1) & (h->cap - 1);
    }
    return false;
}

void eng_provider_lookup(eng_presult_t *out, const eng_provider_t *p, eng_ioc_type_t t,
                         const char *value)
{
    memset(out, 0, sizeof(*out));
    out->verdict = ENG_VERDICT_UNKNOWN;
    out->fields = json_object();
    out->retry_after_us = -1;
    out->outcome = ENG_OUT_NOT_FOUND;
    if (p->kind == ENG_PROV_HTTP) {
        set_reason(out, ENG_OUT_FAILED, "provider '%s' is an http provider", p->name);
        return;
    }
    if (!eng_provider_applies(p, t))
        return;
    pv_net_t ip;
    bool is_ip = t == ENG_IOC_IP && eng_pv_parse_net(&ip, value, strlen(value)) &&
                 ip.prefix == (ip.family == 4 ? 32u : 128u);
    if (p->kind == ENG_PROV_CIDR) {
        out->verdict = ENG_VERDICT_NONE;
        if (!is_ip)
            return;
        json_t *labels = json_array(), *ranges = json_array();
        /* the most specific range first */
        for (int pass = 128; pass >= 0; pass--)
            for (size_t i = 0; i < p->nnets; i++) {
                const pv_net_t *n = &p->nets[i];
                if ((int)n->prefix != pass || !net_contains(n, &ip))
                    continue;
                json_array_append_new(ranges, json_string(n->text));
                for (size_t k = 0; k < n->nlabels; k++) {
                    bool dup = false;
                    size_t j;
                    json_t *o;
                    json_array_foreach(labels, j, o) if (strcmp(json_string_value(o),
                                                                n->labels[k]) == 0) dup = true;
                    if (!dup)
                        json_array_append_new(labels, json_string(n->labels[k]));
                }
            }
        if (json_array_size(ranges) > 0) {
            out->outcome = ENG_OUT_FOUND;
            json_object_set_new(out->fields, "labels", labels);
            json_object_set_new(out->fields, "ranges", ranges);
        } else {
            json_decref(labels);
            json_decref(ranges);
        }
        return;
    }
    const char *hit = NULL;
    if (eng_pv_hash_has(&p->values, t, value))
        hit = value;
    for (size_t i = 0; hit == NULL && is_ip && i < p->nnets; i++)
        if (net_contains(&p->nets[i], &ip))
            hit = p->nets[i].text;
    if (hit == NULL)
        return;
    out->outcome = ENG_OUT_FOUND;
    out->verdict = p->list_verdict;
    json_object_set_new(out->fields, "listed", json_true());
    json_object_set_new(out->fields, "entry", json_string(hit));
    if (p->list_tag != NULL)
        json_object_set_new(out->fields, "tag", json_string(p->list_tag));
}

/* ---- Retry-After ------------------------------------------------------------------ */

int64_t eng_retry_after_us(const char *v, int64_t now_us)
{
    if (v == NULL)
        return -1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (isdigit((unsigned char)*v)) {
        char *end;
        unsigned long long s = strtoull(v, &end, 10);
        while (*end == ' ' || *end == '\t')
            end++;
        if (*end != '\0')
            return -1;
        if (s > 86400ull * 365)
            s = 86400ull * 365;
        return (int64_t)s * 1000000;
    }
    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char wd[4], ms[4], tz[4];
    int d, y, hh, mm, ss, n = 0;
    if (sscanf(v, "%3s, %d %3s %d %d:%d:%d %3s%n", wd, &d, ms, &y, &hh, &mm, &ss, tz, &n) != 8 ||
        v[n] != '\0' || strcmp(tz, "GMT") != 0)
        return -1;
    int m = -1;
    for (int i = 0; i < 12; i++)
        if (strcmp(ms, mon[i]) == 0)
            m = i + 1;
    if (m < 0 || d < 1 || d > am_days_in_month(y, m) || hh > 23 || mm > 59 || ss > 60 || hh < 0 ||
        mm < 0 || ss < 0)
        return -1;
    int64_t t = ((am_days_from_civil(y, m, d) * 24 + hh) * 60 + mm) * 60 + ss;
    int64_t delay = t * 1000000 - now_us;
    return delay > 0 ? delay : 0;
}

/* ---- limiter ---------------------------------------------------------------------- */

void eng_limiter_init(eng_limiter_t *l, const eng_provider_t *p, int64_t now_us)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->mu, NULL);
    if (p != NULL) {
        l->n = p->nrates;
        memcpy(l->rates, p->rates, sizeof(l->rates));
    }
    for (size_t i = 0; i < l->n; i++)
        l->tokens[i] = l->rates[i].count;
    l->last_us = now_us;
}

void eng_limiter_dispose(eng_limiter_t *l)
{
    pthread_mutex_destroy(&l->mu);
}

int64_t eng_limiter_take(eng_limiter_t *l, int64_t now_us)
{
    int64_t wait = 0;
    pthread_mutex_lock(&l->mu);
    if (now_us > l->last_us) {
        double dt = (double)(now_us - l->last_us);
        for (size_t i = 0; i < l->n; i++) {
            l->tokens[i] += dt * l->rates[i].count / (double)l->rates[i].period_us;
            if (l->tokens[i] > l->rates[i].count)
                l->tokens[i] = l->rates[i].count;
        }
        l->last_us = now_us;
    }
    if (l->paused_until_us > now_us)
        wait = l->paused_until_us - now_us;
    for (size_t i = 0; i < l->n; i++)
        if (l->tokens[i] < 1.0) {
            double need = (1.0 - l->tokens[i]) * (double)l->rates[i].period_us / l->rates[i].count;
            int64_t w = (int64_t)need + 1;
            if (w < 1)
                w = 1;
            if (w > wait)
                wait = w;
        }
    if (wait == 0)
        for (size_t i = 0; i < l->n; i++)
            l->tokens[i] -= 1.0;
    pthread_mutex_unlock(&l->mu);
    return wait;
}

void eng_limiter_pause(eng_limiter_t *l, int64_t until_us)
{
    pthread_mutex_lock(&l->mu);
    if (until_us > l->paused_until_us)
        l->paused_until_us = until_us;
    pthread_mutex_unlock(&l->mu);
}

/* ---- dispatch targets: filters and signatures ------------------------------------ */

int eng_severity_rank(const char *severity)
{
    static const char *const names[] = {"Informational", "Low", "Medium", "High", "Critical"};
    for (size_t i = 0; severity != NULL && i < AM_ARRAY_LEN(names); i++)
        if (strcmp(severity, names[i]) == 0)
            return (int)i + 1;
    return 0;
}

bool eng_target_matches(const eng_target_t *t, const char *source, const char *severity,
                        const char *verdict, const char *const *tags, size_t ntags)
{
    if (t->nsources > 0) {
        bool ok = false;
        for (size_t i = 0; i < t->nsources && !ok; i++)
            ok = source != NULL && strcmp(t->sources[i], source) == 0;
        if (!ok)
            return false;
    }
    if (t->min_severity > 0 && eng_severity_rank(severity) < t->min_severity)
        return false;
    if (t->verdicts != 0) {
        int v = verdict != NULL ? eng_verdict_parse(verdict) : -1;
        if (v < 0 || !(t->verdicts & (1u << (unsigned)v)))
            return false;
    }
    if (t->ntags > 0) {
        bool ok = false;
        for (size_t i = 0; i < t->ntags && !ok; i++)
            for (size_t k = 0; k < ntags && !ok; k++)
                ok = strcmp(t->tags[i], tags[k]) == 0;
        if (!ok)
            return false;
    }
    return true;
}

void eng_target_sign(char out[160], const char *secret, int64_t ts, const char *body, size_t len)
{
    char tsb[24];
    int tl = snprintf(tsb, sizeof(tsb), "%lld", (long long)ts);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    am_buf_t m;
    am_buf_init(&m, 0);
    am_buf_append(&m, tsb, (size_t)tl);
    am_buf_putc(&m, '.');
    am_buf_append(&m, body, len);
    if (HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)m.data, m.len, mac,
             &maclen) == NULL)
        maclen = 0;
    am_buf_dispose(&m);
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    am_hex(hex, mac, maclen);
    hex[2 * maclen] = '\0';
    snprintf(out, 160, "t=%s,v1=%s", tsb, hex);
}
