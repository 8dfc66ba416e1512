/*
 * engine/sig_compile.c - compiling the `signature:` block of a mapping
 * (docs/mapping-language.md, "signature") into the immutable spec that
 * signature.c verifies. Part of the compiler: it reads the YAML tree and
 * names environment variables, but never reads one (the loader resolves
 * the secrets, eng_sig_resolve).
 */
#include "compile.h"

#include <stdarg.h>
#include <string.h>

#define MAX_SKEW_LIMIT 86400

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
} sc_t;

static void err(sc_t *c, const yt_node_t *at, const char *fmt, ...) AM_PRINTF(3, 4);
static void err(sc_t *c, const yt_node_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    am_diags_vadd(c->d, c->file, at ? at->line : 0, at ? at->col : 0, fmt, ap);
    va_end(ap);
    c->errors++;
}

/* A non-empty string scalar, else an error naming key. */
static const char *string_value(sc_t *c, const yt_pair_t *p)
{
    const yt_node_t *v = p->value;
    if (v == NULL || v->kind != YT_SCALAR || eng_yt_is_null(v)) {
        err(c, v ? v : p->key, "'%s' must be a string, got %s", p->key->str,
            v == NULL || eng_yt_is_null(v) ? "nothing" : eng_yt_kind_name(v));
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

static const char *header_value(sc_t *c, const yt_pair_t *p)
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

static void compile_secret_env(sc_t *c, sig_spec_t *spec, const yt_pair_t *p)
{
    const yt_node_t *v = p->value;
    const yt_node_t *const *items = NULL;
    size_t n = 0;
    const yt_node_t *one[1];

    if (v != NULL && v->kind == YT_SCALAR && !eng_yt_is_null(v)) {
        one[0] = v;
        items = one;
        n = 1;
    } else if (v != NULL && v->kind == YT_SEQ) {
        items = (const yt_node_t *const *)v->items;
        n = v->nitems;
        if (n == 0 || n > ENG_SIG_MAX_SECRETS) {
            err(c, v, "'secret_env' must name 1 to %d environment variables", ENG_SIG_MAX_SECRETS);
            return;
        }
    } else {
        err(c, v ? v : p->key, "'secret_env' must be a variable name or a list of them, got %s",
            v == NULL || eng_yt_is_null(v) ? "nothing" : eng_yt_kind_name(v));
        return;
    }
    spec->secret_env = am_arena_calloc(c->a, n, sizeof(*spec->secret_env));
    if (spec->secret_env == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        const yt_node_t *it = items[i];
        if (it->kind != YT_SCALAR || eng_yt_is_null(it)) {
            err(c, it, "'secret_env' entries must be variable names, got %s",
                eng_yt_is_null(it) ? "nothing" : eng_yt_kind_name(it));
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

static void compile_max_skew(sc_t *c, sig_spec_t *spec, const yt_pair_t *p)
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
static void check_applicable(sc_t *c, scheme_t scheme, const yt_node_t *node,
                             const yt_pair_t *const *seen)
{
    bool hmac = scheme == SCHEME_HMAC_SHA256 || scheme == SCHEME_HMAC_SHA1;
    bool query = scheme == SCHEME_QUERY_TOKEN;
    if (!query && seen[K_HEADER] == NULL)
        err(c, node, "scheme %s needs 'header' (the request header carrying the %s)",
            eng_sig_scheme_names[scheme], hmac ? "signature" : "token");
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

int eng_sig_compile(sig_spec_t **out, const yt_node_t *node, const char *file, am_arena_t *a,
                    am_diags_t *d)
{
    sc_t c = {.file = file, .d = d, .a = a};
    const yt_pair_t *seen[AM_ARRAY_LEN(known_keys)] = {0};

    *out = NULL;
    if (node == NULL || node->kind != YT_MAP) {
        err(&c, node, "'signature' must be a mapping, got %s",
            node == NULL || eng_yt_is_null(node) ? "nothing" : eng_yt_kind_name(node));
        return AM_EINVAL;
    }
    sig_spec_t *spec = am_arena_calloc(a, 1, sizeof(*spec));
    if (spec == NULL)
        return AM_ELIMIT;
    spec->max_skew = ENG_SIG_DEFAULT_SKEW;

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
        int sc = s ? parse_enum(s, eng_sig_scheme_names, ENG_SIG__SCHEMES) : -1;
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
        return AM_ELIMIT; /* the set's arena is at its cap */
    *out = spec;
    return AM_OK;
}
