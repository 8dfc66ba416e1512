/*
 * engine/signature.c - the `signature:` block of a mapping: compiled once
 * into an immutable sig_spec_t, verified per request; see signature.h and
 * docs/mapping-language.md ("signature").
 *
 * Secrets are never stored: the spec holds only the names of environment
 * variables, read on every call so that an operator rotates a secret by
 * setting a second variable, reloading nothing. All comparisons of secret
 * material are constant-time; error messages name headers, parameters and
 * schemes, never a secret or a computed digest.
 */
#include "signature.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_SKEW 300
#define MAX_SKEW_LIMIT   86400
#define MAX_DIGEST       32
#define MAX_SECRETS      16 /* variables per signature block */

typedef enum { SCHEME_HMAC_SHA256, SCHEME_HMAC_SHA1, SCHEME_TOKEN, SCHEME_QUERY_TOKEN } scheme_t;
typedef enum { ENC_HEX, ENC_BASE64 } encoding_t;

struct sig_spec {
    scheme_t scheme;
    encoding_t encoding;
    const char *header;      /* hmac-*, token */
    const char *query_param; /* query-token */
    const char *prefix;      /* NULL when none */
    size_t prefix_len;
    const char **secret_env; /* variable names, at least one */
    size_t nsecret_env;
    const char *timestamp_header; /* hmac-*: sign "timestamp.body" */
    int64_t max_skew;
};

static const char *const scheme_names[] = {"hmac-sha256", "hmac-sha1", "token", "query-token"};
static const char *const known_keys[] = {"scheme", "header",     "query_param",      "encoding",
                                         "prefix", "secret_env", "timestamp_header", "max_skew"};
#define KNOWN_KEYS_TEXT                                                                            \
    "scheme, header, query_param, encoding, prefix, secret_env, timestamp_header, max_skew"

/* ---- compiling ----------------------------------------------------------- */

typedef struct {
    const char *file;
    am_diags_t *d;
    am_arena_t *a;
    int errors;
} cc_t;

static void err(cc_t *c, const yt_node_t *at, const char *fmt, ...) AM_PRINTF(3, 4);
static void err(cc_t *c, const yt_node_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    am_diags_vadd(c->d, c->file, at ? at->line : 0, at ? at->col : 0, fmt, ap);
    va_end(ap);
    c->errors++;
}

/* A non-empty string scalar, else an error naming key. */
static const char *string_value(cc_t *c, const yt_pair_t *p)
{
    const yt_node_t *v = p->value;
    if (v == NULL || v->kind != YT_SCALAR || yt_is_null(v)) {
        err(c, v ? v : p->key, "'%s' must be a string, got %s", p->key->str,
            v == NULL || yt_is_null(v) ? "nothing" : yt_kind_name(v));
        return NULL;
    }
    if (v->len == 0 || strlen(v->str) != v->len) {
        err(c, v, "'%s' must not be empty", p->key->str);
        return NULL;
    }
    return v->str;
}

static bool is_token_char(unsigned char ch)
{
    /* RFC 9110 tchar */
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static const char *header_value(cc_t *c, const yt_pair_t *p)
{
    const char *s = string_value(c, p);
    if (s == NULL)
        return NULL;
    for (const char *q = s; *q; q++) {
        if (!is_token_char((unsigned char)*q)) {
            err(c, p->value, "'%s' is not a valid HTTP header name: '%s'", p->key->str, s);
            return NULL;
        }
    }
    return s;
}

static bool is_env_name(const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    for (s++; *s; s++) {
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    }
    return true;
}

static void compile_secret_env(cc_t *c, sig_spec_t *spec, const yt_pair_t *p)
{
    const yt_node_t *v = p->value;
    const yt_node_t *const *items = NULL;
    size_t n = 0;
    const yt_node_t *one[1];

    if (v != NULL && v->kind == YT_SCALAR && !yt_is_null(v)) {
        one[0] = v;
        items = one;
        n = 1;
    } else if (v != NULL && v->kind == YT_SEQ) {
        items = (const yt_node_t *const *)v->items;
        n = v->nitems;
        if (n == 0 || n > MAX_SECRETS) {
            err(c, v, "'secret_env' must name 1 to %d environment variables", MAX_SECRETS);
            return;
        }
    } else {
        err(c, v ? v : p->key, "'secret_env' must be a variable name or a list of them, got %s",
            v == NULL || yt_is_null(v) ? "nothing" : yt_kind_name(v));
        return;
    }
    spec->secret_env = am_arena_calloc(c->a, n, sizeof(*spec->secret_env));
    if (spec->secret_env == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        const yt_node_t *it = items[i];
        if (it->kind != YT_SCALAR || yt_is_null(it)) {
            err(c, it, "'secret_env' entries must be variable names, got %s",
                yt_is_null(it) ? "nothing" : yt_kind_name(it));
            continue;
        }
        /* The value is not echoed: an author may have pasted a secret here. */
        if (strlen(it->str) != it->len || !is_env_name(it->str)) {
            err(c, it,
                "'secret_env' must name an environment variable ([A-Za-z_][A-Za-z0-9_]*); "
                "secrets themselves never go in a mapping");
            continue;
        }
        spec->secret_env[spec->nsecret_env++] = it->str;
    }
}

static void compile_max_skew(cc_t *c, sig_spec_t *spec, const yt_pair_t *p)
{
    const yt_node_t *v = p->value;
    int64_t x = 0;
    bool ok = v != NULL && v->kind == YT_SCALAR && !v->quoted && v->len > 0 && v->len <= 6;
    for (size_t i = 0; ok && i < v->len; i++) {
        if (v->str[i] < '0' || v->str[i] > '9')
            ok = false;
        else
            x = x * 10 + (v->str[i] - '0');
    }
    if (!ok || x < 1 || x > MAX_SKEW_LIMIT) {
        err(c, v ? v : p->key, "'max_skew' must be a whole number of seconds from 1 to %d",
            MAX_SKEW_LIMIT);
        return;
    }
    spec->max_skew = x;
}

static int parse_enum(const char *s, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

enum { K_SCHEME, K_HEADER, K_QUERY_PARAM, K_ENCODING, K_PREFIX, K_SECRET_ENV, K_TS, K_SKEW };

/* Keys required by, or not applying to, the scheme. seen[] is indexed by K_*. */
static void check_applicable(cc_t *c, scheme_t scheme, const yt_node_t *node,
                             const yt_pair_t *const *seen)
{
    bool hmac = scheme == SCHEME_HMAC_SHA256 || scheme == SCHEME_HMAC_SHA1;
    bool query = scheme == SCHEME_QUERY_TOKEN;
    if (!query && seen[K_HEADER] == NULL)
        err(c, node, "scheme %s needs 'header' (the request header carrying the %s)",
            scheme_names[scheme], hmac ? "signature" : "token");
    if (query && seen[K_HEADER] != NULL)
        err(c, seen[K_HEADER]->key,
            "'header' does not apply to scheme query-token (use 'query_param')");
    if (!query && seen[K_QUERY_PARAM] != NULL)
        err(c, seen[K_QUERY_PARAM]->key, "'query_param' applies only to scheme query-token");
    if (!hmac && seen[K_ENCODING] != NULL)
        err(c, seen[K_ENCODING]->key, "'encoding' applies only to hmac schemes");
    if (!hmac && seen[K_TS] != NULL)
        err(c, seen[K_TS]->key, "'timestamp_header' applies only to hmac schemes");
}

int sig_compile(sig_spec_t **out, const yt_node_t *node, const char *file, am_arena_t *a,
                am_diags_t *d)
{
    cc_t c = {.file = file, .d = d, .a = a};
    const yt_pair_t *seen[AM_ARRAY_LEN(known_keys)] = {0};

    *out = NULL;
    if (node == NULL || node->kind != YT_MAP) {
        err(&c, node, "'signature' must be a mapping, got %s",
            node == NULL || yt_is_null(node) ? "nothing" : yt_kind_name(node));
        return AM_EINVAL;
    }
    sig_spec_t *spec = am_arena_calloc(a, 1, sizeof(*spec));
    if (spec == NULL)
        return AM_ENOMEM;
    spec->max_skew = DEFAULT_MAX_SKEW;

    for (size_t i = 0; i < node->npairs; i++) {
        const yt_pair_t *p = &node->pairs[i];
        int k = parse_enum(p->key->str, known_keys, AM_ARRAY_LEN(known_keys));
        if (k < 0) {
            err(&c, p->key, "unknown key '%s' in signature (expected one of: %s)", p->key->str,
                KNOWN_KEYS_TEXT);
            continue;
        }
        if (seen[k] == NULL) /* duplicates are reported by the YAML loader */
            seen[k] = p;
    }

    if (seen[K_SCHEME] == NULL) {
        err(&c, node,
            "signature needs 'scheme' (one of: hmac-sha256, hmac-sha1, token, "
            "query-token)");
    } else {
        const char *s = string_value(&c, seen[K_SCHEME]);
        int sc = s ? parse_enum(s, scheme_names, AM_ARRAY_LEN(scheme_names)) : -1;
        if (s != NULL && sc < 0)
            err(&c, seen[K_SCHEME]->value,
                "unknown signature scheme '%s' (expected one of: hmac-sha256, hmac-sha1, "
                "token, query-token)",
                s);
        /* With an unknown scheme, which keys apply is unknown: their syntax is
         * still checked below. */
        if (sc >= 0) {
            spec->scheme = (scheme_t)sc;
            check_applicable(&c, spec->scheme, node, seen);
        }
    }
    if (seen[K_SKEW] != NULL && seen[K_TS] == NULL)
        err(&c, seen[K_SKEW]->key, "'max_skew' needs 'timestamp_header'");
    if (seen[K_HEADER] != NULL)
        spec->header = header_value(&c, seen[K_HEADER]);
    if (seen[K_TS] != NULL)
        spec->timestamp_header = header_value(&c, seen[K_TS]);
    if (seen[K_QUERY_PARAM] != NULL)
        spec->query_param = string_value(&c, seen[K_QUERY_PARAM]);
    else
        spec->query_param = "token";
    if (seen[K_ENCODING] != NULL) {
        const char *s = string_value(&c, seen[K_ENCODING]);
        if (s != NULL && strcmp(s, "hex") == 0)
            spec->encoding = ENC_HEX;
        else if (s != NULL && strcmp(s, "base64") == 0)
            spec->encoding = ENC_BASE64;
        else if (s != NULL)
            err(&c, seen[K_ENCODING]->value, "unknown encoding '%s' (expected one of: hex, base64)",
                s);
    }
    if (seen[K_PREFIX] != NULL) {
        spec->prefix = string_value(&c, seen[K_PREFIX]);
        spec->prefix_len = spec->prefix ? strlen(spec->prefix) : 0;
    }
    if (seen[K_SECRET_ENV] == NULL)
        err(&c, node, "signature needs 'secret_env' (the environment variable holding the secret)");
    else
        compile_secret_env(&c, spec, seen[K_SECRET_ENV]);
    if (seen[K_SKEW] != NULL)
        compile_max_skew(&c, spec, seen[K_SKEW]);

    if (c.errors > 0)
        return AM_EINVAL;
    if (spec->secret_env == NULL)
        return AM_ENOMEM;
    *out = spec;
    return AM_OK;
}

/* ---- verifying ----------------------------------------------------------- */

static int fail(eng_error_t *e, const char *fmt, ...) AM_PRINTF(2, 3);
static int fail(eng_error_t *e, const char *fmt, ...)
{
    if (e != NULL) {
        va_list ap;
        va_start(ap, fmt);
        e->code = "INVALID_SIGNATURE";
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
    }
    return AM_EAUTH;
}

static bool ieq_prefix(const char *s, size_t len, const char *prefix, size_t plen)
{
    if (len < plen)
        return false;
    for (size_t i = 0; i < plen; i++) {
        unsigned char x = (unsigned char)s[i], y = (unsigned char)prefix[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

/* Surrounding blanks off, then the declared prefix when present. */
static void strip(const char **s, size_t *len, const sig_spec_t *spec)
{
    while (*len > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
    if (spec->prefix != NULL && ieq_prefix(*s, *len, spec->prefix, spec->prefix_len)) {
        *s += spec->prefix_len;
        *len -= spec->prefix_len;
        while (*len > 0 && (**s == ' ' || **s == '\t')) { /* "Bearer   tok" */
            (*s)++;
            (*len)--;
        }
    }
}

/* Exactly 2*want hex digits (any case) into out. */
static bool decode_hex(unsigned char *out, size_t want, const char *s, size_t len)
{
    if (len != 2 * want)
        return false;
    for (size_t i = 0; i < want; i++) {
        int hi = am_hex_value(s[2 * i]), lo = am_hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

static int b64val(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+' || ch == '-') /* standard and URL-safe alphabets */
        return 62;
    if (ch == '/' || ch == '_')
        return 63;
    return -1;
}

/* Base64 (padding optional) decoding to exactly want bytes. */
static bool decode_b64(unsigned char *out, size_t want, const char *s, size_t len)
{
    while (len > 0 && s[len - 1] == '=')
        len--;
    if (len % 4 == 1 || len * 3 / 4 != want)
        return false;
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0)
            return false;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n < want)
                out[n++] = (unsigned char)(acc >> bits);
        }
        acc &= (1u << bits) - 1;
    }
    return n == want;
}

static EVP_MAC *hmac_algo;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void)
{
    hmac_algo = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

/* HMAC over [ts "."] body; *ok false on a library failure. */
static bool compute_hmac(unsigned char *out, size_t *outlen, scheme_t scheme, const char *key,
                         size_t keylen, const char *ts, size_t tslen, const char *body,
                         size_t bodylen)
{
    pthread_once(&hmac_once, hmac_fetch);
    if (hmac_algo == NULL)
        return false;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac_algo);
    if (ctx == NULL)
        return false;
    char digest[16];
    snprintf(digest, sizeof(digest), "%s", scheme == SCHEME_HMAC_SHA1 ? "SHA1" : "SHA256");
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    bool ok = EVP_MAC_init(ctx, (const unsigned char *)key, keylen, params) == 1;
    if (ok && ts != NULL)
        ok = EVP_MAC_update(ctx, (const unsigned char *)ts, tslen) == 1 &&
             EVP_MAC_update(ctx, (const unsigned char *)".", 1) == 1;
    if (ok && bodylen > 0)
        ok = EVP_MAC_update(ctx, (const unsigned char *)body, bodylen) == 1;
    if (ok)
        ok = EVP_MAC_final(ctx, out, outlen, MAX_DIGEST) == 1;
    EVP_MAC_CTX_free(ctx);
    return ok;
}

static const char *get_header(const eng_sig_request_t *req, const char *name, size_t *len)
{
    *len = 0;
    if (req->header == NULL)
        return NULL;
    return req->header(req->header_ctx, name, len);
}

/* Parses an integer timestamp (optional '-', at most 18 digits). */
static bool parse_ts(int64_t *out, const char *s, size_t len)
{
    bool neg = len > 0 && s[0] == '-';
    size_t i = neg ? 1 : 0;
    int64_t v = 0;
    if (len == i || len - i > 18)
        return false;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return true;
}

static int verify_hmac(const sig_spec_t *spec, const eng_sig_request_t *req,
                       const char *const *secrets, size_t nsecrets, eng_error_t *e)
{
    const char *sname = scheme_names[spec->scheme];
    size_t dlen = spec->scheme == SCHEME_HMAC_SHA1 ? 20 : 32;
    size_t len = 0;
    const char *v = get_header(req, spec->header, &len);
    if (v == NULL)
        return fail(e, "missing signature header '%s'", spec->header);
    strip(&v, &len, spec);
    unsigned char want[MAX_DIGEST];
    bool decoded =
        spec->encoding == ENC_HEX ? decode_hex(want, dlen, v, len) : decode_b64(want, dlen, v, len);
    if (!decoded)
        return fail(e, "signature in header '%s' is not a %s %s digest (%zu bytes)", spec->header,
                    spec->encoding == ENC_HEX ? "hex" : "base64", sname, dlen);

    const char *ts = NULL;
    size_t tslen = 0;
    if (spec->timestamp_header != NULL) {
        ts = get_header(req, spec->timestamp_header, &tslen);
        if (ts == NULL)
            return fail(e, "missing timestamp header '%s'", spec->timestamp_header);
        int64_t t;
        if (!parse_ts(&t, ts, tslen))
            return fail(e, "timestamp header '%s' is not an integer (seconds since the epoch)",
                        spec->timestamp_header);
        int64_t diff = req->now_s > t ? req->now_s - t : t - req->now_s;
        if (diff > spec->max_skew)
            return fail(e,
                        "timestamp in header '%s' is %lld s away from the server clock "
                        "(allowed skew %lld s)",
                        spec->timestamp_header, (long long)diff, (long long)spec->max_skew);
    }

    int matched = 0;
    for (size_t i = 0; i < nsecrets; i++) {
        unsigned char got[MAX_DIGEST];
        size_t glen = 0;
        if (!compute_hmac(got, &glen, spec->scheme, secrets[i], strlen(secrets[i]), ts, tslen,
                          req->body, req->body_len) ||
            glen != dlen) {
            OPENSSL_cleanse(got, sizeof(got));
            return AM_ENOMEM;
        }
        matched |= CRYPTO_memcmp(got, want, dlen) == 0;
        OPENSSL_cleanse(got, sizeof(got));
    }
    if (!matched)
        return fail(e, "%s signature in header '%s' does not match%s", sname, spec->header,
                    ts != NULL ? " (signed text: timestamp \".\" body)" : "");
    return AM_OK;
}

/* Constant-time equality that hides the length too: compares SHA-256s. */
static bool token_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char x[SHA256_DIGEST_LENGTH], y[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)a, alen, x);
    SHA256((const unsigned char *)b, blen, y);
    bool eq = CRYPTO_memcmp(x, y, sizeof(x)) == 0;
    OPENSSL_cleanse(x, sizeof(x));
    OPENSSL_cleanse(y, sizeof(y));
    return eq && am_ct_equal(a, alen, b, blen);
}

static int match_token(const char *v, size_t len, const char *const *secrets, size_t nsecrets)
{
    int matched = 0;
    for (size_t i = 0; i < nsecrets; i++)
        matched |= token_equal(v, len, secrets[i], strlen(secrets[i]));
    return matched;
}

/* Percent-decodes s (and '+' as space) into out (len + 1 bytes). */
static bool pct_decode(char *out, size_t *outlen, const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            if (i + 2 >= len)
                return false;
            int hi = am_hex_value(s[i + 1]), lo = am_hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            out[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[n++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    out[n] = '\0';
    *outlen = n;
    return true;
}

static int verify_query(const sig_spec_t *spec, const eng_sig_request_t *req,
                        const char *const *secrets, size_t nsecrets, eng_error_t *e)
{
    const char *q = req->query, *end = req->query ? req->query + req->query_len : NULL;
    size_t plen = strlen(spec->query_param);
    int rc = AM_OK;
    char *buf = NULL;
    bool found = false;

    if (q == NULL || req->query_len == 0)
        return fail(e, "missing query parameter '%s'", spec->query_param);
    buf = malloc(req->query_len + 1);
    if (buf == NULL)
        return AM_ENOMEM;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pe - q));
        const char *ke = eq ? eq : pe;
        size_t klen;
        if (pct_decode(buf, &klen, q, (size_t)(ke - q)) && klen == plen &&
            memcmp(buf, spec->query_param, plen) == 0) {
            size_t vlen;
            const char *vs = eq ? eq + 1 : pe;
            if (!pct_decode(buf, &vlen, vs, (size_t)(pe - vs))) {
                rc = fail(e, "query parameter '%s' is not valid percent-encoding",
                          spec->query_param);
            } else if (!match_token(buf, vlen, secrets, nsecrets)) {
                rc = fail(e, "token in query parameter '%s' does not match", spec->query_param);
            }
            found = true;
            break;
        }
        q = amp ? amp + 1 : end;
    }
    if (!found)
        rc = fail(e, "missing query parameter '%s'", spec->query_param);
    OPENSSL_cleanse(buf, req->query_len + 1);
    free(buf);
    return rc;
}

int sig_verify(const sig_spec_t *spec, const eng_sig_request_t *req, bool *secret_set,
               eng_error_t *e)
{
    const char *secrets[MAX_SECRETS];
    size_t n = 0;

    *secret_set = false;
    if (spec == NULL)
        return AM_OK;
    for (size_t i = 0; i < spec->nsecret_env && n < MAX_SECRETS; i++) {
        const char *s = getenv(spec->secret_env[i]);
        if (s != NULL && s[0] != '\0')
            secrets[n++] = s;
    }
    if (n == 0)
        return AM_OK;
    *secret_set = true;

    switch (spec->scheme) {
    case SCHEME_HMAC_SHA256:
    case SCHEME_HMAC_SHA1:
        return verify_hmac(spec, req, secrets, n, e);
    case SCHEME_TOKEN: {
        size_t len = 0;
        const char *v = get_header(req, spec->header, &len);
        if (v == NULL)
            return fail(e, "missing token header '%s'", spec->header);
        strip(&v, &len, spec);
        if (!match_token(v, len, secrets, n))
            return fail(e, "token in header '%s' does not match", spec->header);
        return AM_OK;
    }
    case SCHEME_QUERY_TOKEN:
        return verify_query(spec, req, secrets, n, e);
    }
    return fail(e, "unsupported signature scheme");
}
