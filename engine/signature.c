/*
 * engine/signature.c - verifying a request against a mapping's compiled
 * `signature:` block (sig_compile.c builds it; see signature.h and
 * docs/mapping-language.md, "signature").
 *
 * Secrets are not part of the mapping: the spec names environment
 * variables, and the loader reads them once per load (eng_sig_resolve), so
 * a request never calls getenv(). The values live in the set's arena and
 * are wiped when the set is freed (eng_sig_forget). All comparisons of
 * secret material are constant-time; error messages name headers,
 * parameters and schemes, never a secret or a computed digest.
 */
#include "program.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIGEST 32

const char *const eng_sig_scheme_names[ENG_SIG__SCHEMES] = {"hmac-sha256", "hmac-sha1", "token",
                                                            "query-token"};

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
    const char *sname = eng_sig_scheme_names[spec->scheme];
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
            /* HMAC fails only when OpenSSL cannot allocate: as for the heap */
            fputs("alertmap: HMAC unavailable from OpenSSL\n", stderr);
            abort();
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
    buf = am_xmalloc(req->query_len + 1);
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

int eng_sig_resolve(sig_spec_t *spec, am_arena_t *a)
{
    if (spec == NULL)
        return 0;
    spec->nsecrets = 0;
    spec->secrets = am_arena_calloc(a, spec->nsecret_env + 1, sizeof(*spec->secrets));
    if (spec->secrets == NULL)
        return AM_ELIMIT;
    for (size_t i = 0; i < spec->nsecret_env && spec->nsecrets < ENG_SIG_MAX_SECRETS; i++) {
        const char *v = getenv(spec->secret_env[i]);
        if (v == NULL || v[0] == '\0')
            continue;
        char *copy = am_arena_strdup(a, v);
        if (copy == NULL)
            return AM_ELIMIT;
        spec->secrets[spec->nsecrets++] = copy;
    }
    return 0;
}

void eng_sig_forget(sig_spec_t *spec)
{
    if (spec == NULL)
        return;
    for (size_t i = 0; i < spec->nsecrets; i++)
        OPENSSL_cleanse(spec->secrets[i], strlen(spec->secrets[i]));
    spec->nsecrets = 0;
}

int eng_sig_verify(const sig_spec_t *spec, const eng_sig_request_t *req, bool *secret_set,
                   eng_error_t *e)
{
    *secret_set = false;
    if (spec == NULL)
        return AM_OK;
    const char *const *secrets = (const char *const *)spec->secrets;
    size_t n = spec->nsecrets;
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
    case ENG_SIG__SCHEMES:
        break;
    }
    return fail(e, "unsupported signature scheme");
}

int eng_verify_signature(const eng_program_t *p, const eng_sig_request_t *req, bool *secret_set,
                         eng_error_t *err)
{
    return eng_sig_verify(p->sig, req, secret_set, err);
}
