/* tests/engine/test_signature.c - the signature block (engine/sig_compile.c,
 * engine/signature.c): compile errors with positions, HMAC/token/query-token
 * verification, rotation, timestamps, secrets read at load time only. Each
 * verification below first resolves the secrets, as the loader does for
 * every set it builds. Expected digests were computed independently
 * (Python's hmac module) for the body below. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "compile.h"

#define BODY "{\"title\":\"Suspicious login\",\"severity\":\"High\"}"
#define NOW  1714557600
/* HMAC-SHA256(BODY) with key "topsecret-1" and "rotated-2" */
#define S256_K1        "a18394ca5ffdc04d86e3f2ea7bfd3cfdadbb3962522d7665db4da2cc6753a843"
#define S256_K2        "e05ae707aa1ba92d96b6cf9449a9d9f161762aa5c4eda19538e6225d8cecc4eb"
#define S256_K1_B64    "oYOUyl/9wE2G4/Lqe/08/a27OWJSLXZl202izGdTqEM="
#define S256_K1_B64URL "oYOUyl_9wE2G4_Lqe_08_a27OWJSLXZl202izGdTqEM"
#define S1_K1          "e0954536202d07607edc808b9c7f5ca2f1aee848"
#define S1_K1_B64      "4JVFNiAtB2B+3ICLnH9covGu6Eg="
/* HMAC-SHA256("1714557600." BODY) */
#define TS_K1 "84236b7052340012dd81452e1b1d6c96e14c7afe06317cee867bd5f949bfbb17"
#define TS_K2 "e0bb7486cc798c8201bec6ed4e6bbd548df45922c03c2dc9132b9652fed957cc"

/* ---- helpers ------------------------------------------------------------- */

typedef struct {
    const char *name[4], *value[4];
} headers_t;

static const char *get_header(void *ctx, const char *name, size_t *len)
{
    headers_t *h = ctx;
    for (int i = 0; i < 4 && h->name[i] != NULL; i++) {
        if (strcasecmp(h->name[i], name) == 0) {
            *len = strlen(h->value[i]);
            return h->value[i];
        }
    }
    return NULL;
}

typedef struct {
    am_arena_t *arena;
    am_diags_t diags;
} fixture_t;

static am_arena_t *resolve_arena; /* the current fixture's arena */

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->arena = am_arena_new(0, 0);
    resolve_arena = f->arena;
    am_diags_init(&f->diags);
    unsetenv("AM_TEST_SECRET");
    unsetenv("AM_TEST_SECRET_OLD");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    am_diags_dispose(&f->diags);
    am_arena_free(f->arena);
    free(f);
    unsetenv("AM_TEST_SECRET");
    unsetenv("AM_TEST_SECRET_OLD");
    return 0;
}

/* Compiles a YAML signature block; returns eng_sig_compile's code. */
static int compile(fixture_t *f, sig_spec_t **spec, const char *yaml)
{
    yt_node_t *root = NULL;
    int rc = eng_yt_parse(&root, f->arena, "m.yaml", yaml, strlen(yaml), &f->diags);
    assert_int_equal(rc, AM_OK);
    return eng_sig_compile(spec, root, "m.yaml", f->arena, &f->diags);
}

static sig_spec_t *compile_ok(fixture_t *f, const char *yaml)
{
    sig_spec_t *spec = NULL;
    int rc = compile(f, &spec, yaml);
    if (rc != AM_OK) {
        am_diags_print(&f->diags, stderr);
        fail_msg("compile failed: %d", rc);
    }
    assert_non_null(spec);
    return spec;
}

/* What a load followed by a request does: resolve the secrets from the
 * environment (eng_sig_resolve), then verify. The spec's arena is the
 * fixture's. */
static int load_and_verify(const sig_spec_t *spec, const eng_sig_request_t *req, bool *set,
                           eng_error_t *err)
{
    assert_int_equal(eng_sig_resolve((sig_spec_t *)spec, resolve_arena), 0);
    return eng_sig_verify(spec, req, set, err);
}

/* Verifies BODY with the given headers and query; returns the code. */
static int verify(const sig_spec_t *spec, headers_t *h, const char *query, int64_t now, bool *set,
                  eng_error_t *err)
{
    eng_sig_request_t req = {
        .header = get_header,
        .header_ctx = h,
        .query = query,
        .query_len = query ? strlen(query) : 0,
        .body = BODY,
        .body_len = strlen(BODY),
        .now_s = now,
    };
    memset(err, 0, sizeof(*err));
    return load_and_verify(spec, &req, set, err);
}

static int verify_sig(const sig_spec_t *spec, const char *header, const char *value)
{
    headers_t h = {{header}, {value}};
    bool set = false;
    eng_error_t err;
    int rc = verify(spec, &h, NULL, NOW, &set, &err);
    assert_true(set);
    if (rc != AM_OK) {
        assert_int_equal(rc, AM_EAUTH);
        assert_string_equal(err.code, "INVALID_SIGNATURE");
        assert_true(strlen(err.message) > 0);
        /* never any secret material in the message */
        assert_null(strstr(err.message, "topsecret"));
        assert_null(strstr(err.message, "rotated-2"));
    }
    return rc;
}

#define HMAC256_YAML                                                                               \
    "scheme: hmac-sha256\nheader: X-Sig\nprefix: \"sha256=\"\nsecret_env: AM_TEST_SECRET\n"

/* ---- verification ------------------------------------------------------ */

static void no_spec_means_no_check(void **state)
{
    (void)state;
    headers_t h = {{NULL}, {NULL}};
    bool set = true;
    eng_error_t err;
    assert_int_equal(verify(NULL, &h, NULL, NOW, &set, &err), AM_OK);
    assert_false(set);
}

static void unset_or_empty_secret_accepts(void **state)
{
    fixture_t *f = *state;
    sig_spec_t *spec = compile_ok(f, HMAC256_YAML);
    headers_t h = {{NULL}, {NULL}}; /* no signature at all */
    bool set = true;
    eng_error_t err;
    assert_int_equal(verify(spec, &h, NULL, NOW, &set, &err), AM_OK);
    assert_false(set);
    setenv("AM_TEST_SECRET", "", 1);
    set = true;
    assert_int_equal(verify(spec, &h, NULL, NOW, &set, &err), AM_OK);
    assert_false(set);
    /* once set, the same unsigned request is refused */
    setenv("AM_TEST_SECRET", "topsecret-1", 1);
    assert_int_equal(verify(spec, &h, NULL, NOW, &set, &err), AM_EAUTH);
    assert_true(set);
    assert_string_equal(err.code, "INVALID_SIGNATURE");
    assert_non_null(strstr(err.message, "missing signature header 'X-Sig'"));
}

static void hmac_sha256_hex(void **state)
{
    fixture_t *f = *state;
    sig_spec_t *spec = compile_ok(f, HMAC256_YAML);
    setenv("AM_TEST_SECRET", "topsecret-1", 1);
    assert_int_equal(verify_sig(spec, "X-Sig", "sha256=" S256_K1), AM_OK);
    assert_int_equal(verify_sig(spec, "x-sig", S256_K1), AM_OK); /* bare form */
    assert_int_equal(verify_sig(spec, "X-Sig", "SHA256=" S256_K1), AM_OK);
    assert_int_equal(verify_sig(spec, "X-Sig", " sha256=" S256_K1 " "), AM_OK);
    /* hex is case-insensitive */
    char upper[] = S256_K1;
    for (char *p = upper; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    assert_int_equal(verify_sig(spec, "X-Sig", upper), AM_OK);
    /* wrong key, wrong prefix, bad hex, wrong length */
    assert_int_equal(verify_sig(spec, "X-Sig", "sha256=" S256_K2), AM_EAUTH);
    assert_int_equal(verify_sig(spec, "X-Sig", "sha1=" S256_K1), AM_EAUTH);
    assert_int_equal(verify_sig(spec, "X-Sig", "sha256=" S1_K1), AM_EAUTH);
    assert_int_equal(verify_sig(spec, "X-Sig",
                                "zz8394ca5ffdc04d86e3f2ea7bfd3cfdadbb3962522d7665db4da2cc6753a843"),
                     AM_EAUTH);
    assert_int_equal(verify_sig(spec, "X-Sig", ""), AM_EAUTH);
    assert_int_equal(verify_sig(spec, "X-Other", S256_K1), AM_EAUTH);
}

static void hmac_mismatch_message(void **state)
{
    fixture_t *f = *state;
    sig_spec_t *spec = compile_ok(f, HMAC256_YAML);
    setenv("AM_TEST_SECRET", "topsecret-1", 1);
    headers_t h = {{"X-Sig"}, {S256_K2}};
    bool set;
    eng_error_t err;
    assert_int_equal(verify(spec, &h, NULL, NOW, &set, &err), AM_EAUTH);
    assert_string_equal(err.message, "hmac-sha256 signature in header 'X-Sig' does not match");
    /* the expected digest is never revealed */
    assert_null(strstr(err.message, S256_K1));
    h.value[0] = "sha256=nothex";
    assert_int_equal(verify(spec, &h, NULL, NOW, &set, &err), AM_EAUTH);
    assert_non_null(strstr(err.message, "not a hex hmac-sha256 digest"));
}

static void hmac_sha256_base64(void **state)
{
    fixture_t *f = *state;
    sig_spec_t *spec = compile_ok(f, "scheme: hmac-sha256\nheader: X-Sig\nencoding: base64\n"
                                     "secret_env: AM_TEST_SECRET\n");
    setenv("AM_TEST_SECRET", "topsecret-1", 1);
    assert_int_equal(verify_sig(spec, "X-Sig", S256_K1_B64), AM_OK);
    assert_int_equal(verify_sig(spec, "X-Sig", S256_K1_B64URL), AM_OK); /* URL-safe, no pad */
    assert_int_equal(verify_sig(spec, "X-Sig", S256_K1), AM_EAUTH);     /* hex is not base64 */
    assert_int_equal(verify_sig(spec, "X-Sig", "oYOUyl/9wE2G4/Lqe/08/a27OWJSLXZl202izGdTqE=="),
                     AM_EAUTH);
    assert_int_equal(verify_sig(spec, "X-Sig", "oYOU*l/9wE2G4/Lqe/08/a27OWJSLXZl202izGdTqEM="),
                     AM_EAUTH);
}

static void hmac_sha1(void **state)
{
    fixture_t *f = *state;
    sig_spec_t *hex = compile_ok(f, "scheme: hmac-sha1\nheader: X-Hub-Signature\nprefix: sha1=\n"
                                    "secret_env: AM_TEST_SECRET\n");
    sig_spec_t *b64 = compile_ok(f, "scheme: hmac-sha1\nheader: X-Sig\nencoding: base64\n"
                                    "secret_env: AM_TEST_SECRET\n");
    setenv("AM_TEST_SECRET", "topsecret-1", 1);
    assert_int_equal(verify_sig(hex, "X-Hub-Signature", "sha1=" S1_K1), AM_OK);
    assert_int_equal(verify_sig(hex, "X-Hub-Signature", S1_K1), AM_OK);
    assert_int_equal(verify_sig(hex, "X-Hub-Signature", "sha1=" S256_K1), AM_EAUTH);
    assert_int_equal(verify_sig(b64, "X-Sig", S1_K1_B64), AM_OK);
}

static void rotation_any_secret_matches(void **state)
{
    fixture_t *f = *state;
    sig_spec_t *spec = compile_ok(f, "scheme: hmac-sha256\nheader: X-Sig\n"
                                     "secret_env: [AM_TEST_SECRET, AM_TEST_SECRET_OLD]\n");
    setenv("AM_TEST_SECRET", "rotated-2", 1);
    setenv("AM_TEST_SECRET_OLD", "topsecret-1", 1);
    assert_int_equal(verify_sig(spec, "X-Sig", S256_K1), AM_OK);
    assert_int_equal(verify_sig(spec, "X-Sig", S256_K2), AM_OK);
    /* retire the old secret: read at the next load, no recompile */
    unsetenv("AM_TEST_SECRET_OLD");
    assert_int_equal(verify_sig(spec, "X-Sig", S256_K1), AM_EAUTH);
    assert_int_equal(verify_sig(spec, "X-Sig", S256_K2), AM_OK);
    /* only the second variable set */
    unsetenv("AM_TEST_SECRET");
    setenv("AM_TEST_SECRET_OLD", "topsecret-1", 1);
    assert_int_equal(verify_sig(spec, "X-Sig", S256_K1), AM_OK);
}

/* Secrets are resolved once per load: a request does not read the
 * environment, so a changed variable counts only after the next load. */
static void secrets_read_at_load_not_per_request(void **state)
{
    fixture_t *f = *state;
    sig_spec_t *spec = compile_ok(f, "scheme: hmac-sha256\nheader: X-Sig\n"
                                     "secret_env: AM_TEST_SECRET\n");
    setenv("AM_TEST_SECRET", "topsecret-1", 1);
    assert_int_equal(eng_sig_resolve(spec, f->arena), 0);
    headers_t h = {{"X-Sig"}, {S256_K1}};
    eng_sig_request_t req = {.header = get_header,
                             .header_ctx = &h,
                             .body = BODY,
                             .body_len = strlen(BODY),
                             .now_s = NOW};
    bool set = false;
    eng_error_t err = {0};
    setenv("AM_TEST_SECRET", "rotated-2", 1);
    assert_int_equal(eng_sig_verify(spec, &req, &set, &err), AM_OK); /* still the loaded one */
    assert_true(set);
    unsetenv("AM_TEST_SECRET");
    assert_int_equal(eng_sig_verify(spec, &req, &set, &err), AM_OK);
    assert_true(set);
    /* the next load sees the environment as it is now */
    setenv("AM_TEST_SECRET", "rotated-2", 1);
    assert_int_equal(eng_sig_resolve(spec, f->arena), 0);
    assert_int_equal(eng_sig_verify(spec, &req, &set, &err), AM_EAUTH);
    h.value[0] = S256_K2;
    assert_int_equal(eng_sig_verify(spec, &req, &set, &err), AM_OK);
    eng_sig_forget(spec);
}

static void timestamp_signed_text(void **state)
{
    fixture_t *f = *state;
    sig_spec_t *spec = compile_ok(f, "scheme: hmac-sha256\nheader: X-Sig\nprefix: v1=\n"
                                     "timestamp_header: X-Timestamp\n"
                                     "secret_env: [AM_TEST_SECRET, AM_TEST_SECRET_OLD]\n");
    setenv("AM_TEST_SECRET", "topsecret-1", 1);
    setenv("AM_TEST_SECRET_OLD", "rotated-2", 1);
    bool set;
    eng_error_t err;
    headers_t h = {{"X-Sig", "X-Timestamp"}, {"v1=" TS_K1, "1714557600"}};
    assert_int_equal(verify(spec, &h, NULL, NOW, &set, &err), AM_OK);
    h.value[0] = TS_K2;
    assert_int_equal(verify(spec, &h, NULL, NOW, &set, &err), AM_OK);
    /* within the default skew of 300 s, both directions */
    assert_int_equal(verify(spec, &h, NULL, NOW + 300, &set, &err), AM_OK);
    assert_int_equal(verify(spec, &h, NULL, NOW - 300, &set, &err), AM_OK);
    assert_int_equal(verify(spec, &h, NULL, NOW + 301, &set, &err), AM_EAUTH);
    assert_non_null(strstr(err.message, "allowed skew 300 s"));
    assert_int_equal(verify(spec, &h, NULL, NOW - 3600, &set, &err), AM_EAUTH);
    /* the body alone is not what is signed */
    h.value[0] = S256_K1;
    assert_int_equal(verify(spec, &h, NULL, NOW, &set, &err), AM_EAUTH);
    assert_non_null(strstr(err.message, "does not match"));
    /* a timestamp changed after signing */
    h.value[0] = TS_K1;
    h.value[1] = "1714557601";
    assert_int_equal(verify(spec, &h, NULL, NOW, &set, &err), AM_EAUTH);
    /* not an integer */
    static const char *const bad_ts[] = {"",    "abc",  "1714557600.5",
                                         "1e9", "0x10", "99999999999999999999"};
    for (size_t i = 0; i < AM_ARRAY_LEN(bad_ts); i++) {
        h.value[1] = bad_ts[i];
        assert_int_equal(verify(spec, &h, NULL, NOW, &set, &err), AM_EAUTH);
        assert_string_equal(err.code, "INVALID_SIGNATURE");
        if (strstr(err.message, "is not an integer") == NULL)
            fail_msg("'%s': %s", bad_ts[i], err.message);
    }
    /* missing timestamp header */
    headers_t only_sig = {{"X-Sig"}, {TS_K1}};
    assert_int_equal(verify(spec, &only_sig, NULL, NOW, &set, &err), AM_EAUTH);
    assert_string_equal(err.message, "missing timestamp header 'X-Timestamp'");
}

static void timestamp_custom_skew(void **state)
{
    fixture_t *f = *state;
    sig_spec_t *spec = compile_ok(f, "scheme: hmac-sha256\nheader: X-Sig\n"
                                     "timestamp_header: X-Timestamp\nmax_skew: 10\n"
                                     "secret_env: AM_TEST_SECRET\n");
    setenv("AM_TEST_SECRET", "topsecret-1", 1);
    bool set;
    eng_error_t err;
    headers_t h = {{"X-Sig", "X-Timestamp"}, {TS_K1, "1714557600"}};
    assert_int_equal(verify(spec, &h, NULL, NOW + 10, &set, &err), AM_OK);
    assert_int_equal(verify(spec, &h, NULL, NOW + 11, &set, &err), AM_EAUTH);
    assert_non_null(strstr(err.message, "allowed skew 10 s"));
}

static void static_token(void **state)
{
    fixture_t *f = *state;
    sig_spec_t *spec = compile_ok(f, "scheme: token\nheader: Authorization\n"
                                     "prefix: \"Bearer \"\nsecret_env: [AM_TEST_SECRET, "
                                     "AM_TEST_SECRET_OLD]\n");
    setenv("AM_TEST_SECRET", "topsecret-1", 1);
    assert_int_equal(verify_sig(spec, "Authorization", "Bearer topsecret-1"), AM_OK);
    assert_int_equal(verify_sig(spec, "authorization", "bearer topsecret-1"), AM_OK);
    assert_int_equal(verify_sig(spec, "Authorization", "topsecret-1"), AM_OK);
    assert_int_equal(verify_sig(spec, "Authorization", "Bearer topsecret-2"), AM_EAUTH);
    assert_int_equal(verify_sig(spec, "Authorization", "Bearer topsecret-1x"), AM_EAUTH);
    assert_int_equal(verify_sig(spec, "Authorization", "Bearer TOPSECRET-1"), AM_EAUTH);
    assert_int_equal(verify_sig(spec, "Authorization", "Bearer "), AM_EAUTH);
    assert_int_equal(verify_sig(spec, "X-Token", "topsecret-1"), AM_EAUTH);
    setenv("AM_TEST_SECRET_OLD", "rotated-2", 1);
    assert_int_equal(verify_sig(spec, "Authorization", "Bearer rotated-2"), AM_OK);

    headers_t h = {{"Authorization"}, {"Bearer wrong"}};
    bool set;
    eng_error_t err;
    assert_int_equal(verify(spec, &h, NULL, NOW, &set, &err), AM_EAUTH);
    assert_string_equal(err.message, "token in header 'Authorization' does not match");
}

static void query_token(void **state)
{
    fixture_t *f = *state;
    sig_spec_t *def = compile_ok(f, "scheme: query-token\nsecret_env: AM_TEST_SECRET\n");
    sig_spec_t *named =
        compile_ok(f, "scheme: query-token\nquery_param: key\nsecret_env: AM_TEST_SECRET\n");
    setenv("AM_TEST_SECRET", "a b&c=d/é", 1);
    headers_t h = {{NULL}, {NULL}};
    bool set;
    eng_error_t err;
    const struct {
        const sig_spec_t **spec;
        const char *query;
        int rc;
        const char *msg;
    } cases[] = {
        {(const sig_spec_t **)&def, "token=a%20b%26c%3Dd%2F%C3%A9", AM_OK, NULL},
        {(const sig_spec_t **)&def, "x=1&token=a+b%26c%3dd%2f%c3%a9&y", AM_OK, NULL},
        {(const sig_spec_t **)&def, "tok%65n=a+b%26c%3Dd/%C3%A9", AM_OK, NULL},
        {(const sig_spec_t **)&def, "token=a+b", AM_EAUTH,
         "token in query parameter 'token' does not match"},
        {(const sig_spec_t **)&def, "token=", AM_EAUTH, "does not match"},
        {(const sig_spec_t **)&def, "token", AM_EAUTH, "does not match"},
        {(const sig_spec_t **)&def, "tokens=a+b%26c%3Dd%2F%C3%A9", AM_EAUTH,
         "missing query parameter 'token'"},
        {(const sig_spec_t **)&def, "", AM_EAUTH, "missing query parameter 'token'"},
        {(const sig_spec_t **)&def, NULL, AM_EAUTH, "missing query parameter 'token'"},
        {(const sig_spec_t **)&def, "token=a%2", AM_EAUTH, "not valid percent-encoding"},
        {(const sig_spec_t **)&def, "token=%zz", AM_EAUTH, "not valid percent-encoding"},
        {(const sig_spec_t **)&named, "key=a+b%26c%3Dd%2F%C3%A9", AM_OK, NULL},
        {(const sig_spec_t **)&named, "token=a+b%26c%3Dd%2F%C3%A9", AM_EAUTH,
         "missing query parameter 'key'"},
    };
    for (size_t i = 0; i < AM_ARRAY_LEN(cases); i++) {
        int rc = verify(*cases[i].spec, &h, cases[i].query, NOW, &set, &err);
        assert_true(set);
        if (rc != cases[i].rc)
            fail_msg("query '%s': rc %d, want %d (%s)", cases[i].query ? cases[i].query : "(null)",
                     rc, cases[i].rc, err.message);
        if (cases[i].msg != NULL && strstr(err.message, cases[i].msg) == NULL)
            fail_msg("query '%s': message '%s' lacks '%s'", cases[i].query, err.message,
                     cases[i].msg);
        if (rc != AM_OK)
            assert_null(strstr(err.message, "a b&c"));
    }
}

static void empty_body_is_signed_too(void **state)
{
    fixture_t *f = *state;
    sig_spec_t *spec = compile_ok(f, HMAC256_YAML);
    setenv("AM_TEST_SECRET", "topsecret-1", 1);
    headers_t h = {{"X-Sig"}, {"416733d1745f83e84c64847755e0676090a1aa64a04c878ef7952a0a85326606"}};
    eng_sig_request_t req = {.header = get_header, .header_ctx = &h, .now_s = NOW};
    bool set;
    eng_error_t err;
    assert_int_equal(load_and_verify(spec, &req, &set, &err), AM_OK);
    h.value[0] = S256_K1;
    assert_int_equal(load_and_verify(spec, &req, &set, &err), AM_EAUTH);
}

/* ---- compiling ------------------------------------------------------------ */

typedef struct {
    const char *yaml;
    const char *msg; /* expected substring of the first diagnostic */
    int line, col;
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {"scheme: hmac-md5\nheader: X\nsecret_env: S\n", "unknown signature scheme 'hmac-md5'", 1, 9},
    {"header: X\nsecret_env: S\n", "signature needs 'scheme'", 1, 1},
    {"scheme: hmac-sha256\nheader: X\n", "signature needs 'secret_env'", 1, 1},
    {"scheme: hmac-sha256\nsecret_env: S\n", "scheme hmac-sha256 needs 'header'", 1, 1},
    {"scheme: token\nsecret_env: S\n", "scheme token needs 'header'", 1, 1},
    {"scheme: query-token\nheader: X\nsecret_env: S\n", "'header' does not apply", 2, 1},
    {"scheme: token\nheader: X\nquery_param: t\nsecret_env: S\n",
     "'query_param' applies only to scheme query-token", 3, 1},
    {"scheme: token\nheader: X\nencoding: hex\nsecret_env: S\n",
     "'encoding' applies only to hmac schemes", 3, 1},
    {"scheme: token\nheader: X\ntimestamp_header: T\nsecret_env: S\n",
     "'timestamp_header' applies only to hmac schemes", 3, 1},
    {"scheme: hmac-sha256\nheader: X\nencoding: base32\nsecret_env: S\n",
     "unknown encoding 'base32'", 3, 11},
    {"scheme: hmac-sha256\nheader: X\nsecret_env: S\nsecert: x\n",
     "unknown key 'secert' in signature (expected one of: scheme, header", 4, 1},
    {"scheme: hmac-sha256\nheader: X\nsecret_env: S\nmax_skew: 10\n",
     "'max_skew' needs 'timestamp_header'", 4, 1},
    {"scheme: hmac-sha256\nheader: X\nsecret_env: S\ntimestamp_header: T\nmax_skew: -5\n",
     "'max_skew' must be a whole number of seconds", 5, 11},
    {"scheme: hmac-sha256\nheader: X\nsecret_env: S\ntimestamp_header: T\nmax_skew: \"60\"\n",
     "'max_skew' must be a whole number of seconds", 5, 11},
    {"scheme: hmac-sha256\nheader: X\nsecret_env: S\ntimestamp_header: T\nmax_skew: 0\n",
     "'max_skew' must be a whole number of seconds", 5, 11},
    {"scheme: hmac-sha256\nheader: X Sig\nsecret_env: S\n",
     "'header' is not a valid HTTP header name", 2, 9},
    {"scheme: hmac-sha256\nheader: [X]\nsecret_env: S\n", "'header' must be a string, got a list",
     2, 9},
    {"scheme: hmac-sha256\nheader: X\nsecret_env: []\n",
     "'secret_env' must name 1 to 16 environment variables", 3, 13},
    {"scheme: hmac-sha256\nheader: X\nsecret_env: {a: b}\n",
     "'secret_env' must be a variable name or a list of them, got a mapping", 3, 13},
    {"scheme: hmac-sha256\nheader: X\nsecret_env: [OK_NAME, 'hunter2 secret']\n",
     "'secret_env' must name an environment variable", 3, 23},
    {"scheme: hmac-sha256\nheader: X\nsecret_env: 9LIVES\n",
     "'secret_env' must name an environment variable", 3, 13},
    {"scheme: hmac-sha256\nheader: X\nprefix: ''\nsecret_env: S\n", "'prefix' must not be empty", 3,
     9},
    {"- scheme: token\n", "'signature' must be a mapping, got a list", 1, 1},
    {"hmac-sha256\n", "'signature' must be a mapping, got a string", 1, 1},
};

static void compile_errors_with_positions(void **state)
{
    fixture_t *f = *state;
    for (size_t i = 0; i < AM_ARRAY_LEN(bad_cases); i++) {
        am_diags_dispose(&f->diags);
        am_diags_init(&f->diags);
        sig_spec_t *spec = (sig_spec_t *)1;
        int rc = compile(f, &spec, bad_cases[i].yaml);
        if (rc != AM_EINVAL || spec != NULL || f->diags.count == 0)
            fail_msg("case %zu should fail (rc %d)", i, rc);
        const am_diag_t *d = &f->diags.items[0];
        if (strstr(d->msg, bad_cases[i].msg) == NULL || d->line != bad_cases[i].line ||
            d->col != bad_cases[i].col)
            fail_msg("case %zu: got %s:%d:%d: %s; want %d:%d: %s", i, d->file, d->line, d->col,
                     d->msg, bad_cases[i].line, bad_cases[i].col, bad_cases[i].msg);
        assert_string_equal(d->file, "m.yaml");
        /* a secret pasted into secret_env is not echoed back */
        assert_null(strstr(d->msg, "hunter2"));
    }
}

static void compile_reports_all_errors(void **state)
{
    fixture_t *f = *state;
    sig_spec_t *spec = NULL;
    int rc = compile(f, &spec,
                     "scheme: hmac-sha256\n"    /* 1 */
                     "encoding: base32\n"       /* 2: bad encoding */
                     "colour: blue\n"           /* 3: unknown key */
                     "secret_env: [A, 'b c']\n" /* 4: bad name, header missing */
                     "max_skew: 10\n");         /* 5: no timestamp_header */
    assert_int_equal(rc, AM_EINVAL);
    assert_null(spec);
    assert_int_equal(f->diags.count, 5);
    am_diags_sort(&f->diags);
    assert_int_equal(f->diags.items[0].line, 1); /* header missing: at the block */
    assert_int_equal(f->diags.items[1].line, 2);
    assert_int_equal(f->diags.items[2].line, 3);
    assert_int_equal(f->diags.items[3].line, 4);
    assert_int_equal(f->diags.items[4].line, 5);
}

static void compile_null_node(void **state)
{
    fixture_t *f = *state;
    sig_spec_t *spec = (sig_spec_t *)1;
    assert_int_equal(eng_sig_compile(&spec, NULL, "m.yaml", f->arena, &f->diags), AM_EINVAL);
    assert_null(spec);
    assert_int_equal(f->diags.count, 1);
    assert_non_null(strstr(f->diags.items[0].msg, "'signature' must be a mapping, got nothing"));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(no_spec_means_no_check),
        T(unset_or_empty_secret_accepts),
        T(hmac_sha256_hex),
        T(hmac_mismatch_message),
        T(hmac_sha256_base64),
        T(hmac_sha1),
        T(rotation_any_secret_matches),
        T(secrets_read_at_load_not_per_request),
        T(timestamp_signed_text),
        T(timestamp_custom_skew),
        T(static_token),
        T(query_token),
        T(empty_body_is_signed_too),
        T(compile_errors_with_positions),
        T(compile_reports_all_errors),
        T(compile_null_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
