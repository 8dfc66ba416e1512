/* tests/engine/test_set.c - loading directories, lookup, metadata,
 * reference counting across threads, duplicate sources. */
#include "engtest.h"
#include "load.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <strings.h>
#include <sys/stat.h>

static char mappings[4096];

static int setup(void **state)
{
    (void)state;
    const char *root = getenv("ALERTMAP_SOURCE_ROOT");
    snprintf(mappings, sizeof(mappings), "%s/mappings", root ? root : "..");
    return 0;
}

static eng_set_t *load_dir(const char *dir, int want_rc, am_diags_t *d)
{
    eng_set_t *s = NULL;
    eng_load_options_t opt = {.rules_file = t_rules()};
    int rc = eng_set_load(&s, dir, &opt, d);
    if (rc != want_rc) {
        am_diags_print(d, stderr);
        fail_msg("eng_set_load(%s) = %d, want %d", dir, rc, want_rc);
    }
    return s;
}

static void test_shipped_mappings(void **state)
{
    (void)state;
    am_diags_t d;
    am_diags_init(&d);
    eng_set_t *s = load_dir(mappings, 0, &d);
    assert_int_equal(d.count, 0);
    assert_true(eng_set_count(s) >= 4);
    /* programs are in name order and each one is found by name */
    for (size_t i = 0; i < eng_set_count(s); i++) {
        const eng_program_t *p = eng_set_at(s, i);
        eng_program_info_t info;
        eng_program_info(&info, p);
        assert_ptr_equal(eng_set_find(s, info.source, strlen(info.source)), p);
        if (i > 0) {
            eng_program_info_t prev;
            eng_program_info(&prev, eng_set_at(s, i - 1));
            assert_true(strcmp(prev.source, info.source) < 0);
        }
        assert_true(info.nsamples > 0);
    }
    assert_null(eng_set_at(s, eng_set_count(s)));
    assert_null(eng_set_find(s, "nope", 4));
    assert_null(eng_set_find(s, "sentinel", 7)); /* "sentine" */
    /* the name need not be NUL-terminated */
    const eng_program_t *p = eng_set_find(s, "sentinel/extra", 8);
    assert_non_null(p);
    eng_program_info_t info;
    eng_program_info(&info, p);
    assert_string_equal(info.source, "sentinel");
    assert_string_equal(info.display_name, "Microsoft Sentinel");
    assert_true(info.has_signature);
    assert_true(info.loaded_at_us > 0);
    /* content hash = SHA-256 of the file bytes */
    char *text;
    size_t len;
    assert_int_equal(am_read_file(&text, &len, info.file, 1 << 20), 0);
    unsigned char md[32];
    unsigned int mdlen;
    EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL);
    free(text);
    char hex[65];
    am_hex(hex, md, 32);
    assert_string_equal(info.content_sha256, hex);
    assert_non_null(eng_set_rules(s));
    am_diags_dispose(&d);
    eng_set_unref(s);
}

/* Mappings compiled from memory behave as the same bytes read from a file:
 * the name shows in diagnostics, lent rules stay with their owner, and the
 * text needs no terminator. */
static void test_load_texts(void **state)
{
    (void)state;
    am_diags_t d;
    am_diags_init(&d);
    eng_rules_t *rules = NULL;
    assert_int_equal(eng_rules_load(&rules, t_rules(), &d), 0);

    char good[] = "source: mem\nfields:\n  title: t\n  severity: {const: High}\nXX";
    const char *names[] = {"/nowhere/mem.yaml", "/nowhere/bad.yaml"};
    const char *texts[] = {good, "source: bad\nfields: [1]\n"};
    size_t lens[] = {strlen(good) - 2, strlen(texts[1])}; /* "XX" is not part of it */
    eng_set_t *s = NULL;
    assert_int_equal(eng_set_load_texts(&s, names, texts, lens, 1, rules, NULL, &d), 0);
    assert_int_equal(d.count, 0);
    assert_ptr_equal(eng_set_rules(s), rules);
    const eng_program_t *p = eng_set_find(s, "mem", 3);
    assert_non_null(p);
    eng_program_info_t info;
    eng_program_info(&info, p);
    assert_string_equal(info.file, "/nowhere/mem.yaml");
    eng_set_unref(s); /* must not free the lent rules */

    /* errors name the given file; the rules are loaded from opt when not lent */
    eng_load_options_t opt = {.rules_file = t_rules()};
    s = NULL;
    assert_int_equal(eng_set_load_texts(&s, names, texts, lens, 2, NULL, &opt, &d), AM_EINVAL);
    assert_null(s);
    assert_true(d.count > 0);
    assert_string_equal(d.items[0].file, "/nowhere/bad.yaml");

    /* the lent rules are still usable */
    eng_indicator_t *found = NULL;
    size_t n = 0;
    am_arena_t *a = am_arena_new(4096, 0);
    assert_int_equal(
        eng_extract_text(&found, &n, rules, "see 10.1.2.3", 12, 1u << ENG_IOC_IP, "text", a), 0);
    assert_int_equal(n, 1);
    assert_string_equal(found[0].value, "10.1.2.3");
    am_arena_free(a);
    eng_rules_free(rules);
    am_diags_dispose(&d);
}

static void *hammer(void *arg)
{
    eng_set_t *s = arg;
    for (int i = 0; i < 20000; i++) {
        eng_set_t *r = eng_set_ref(s);
        assert_non_null(eng_set_find(r, "generic", 7));
        eng_set_unref(r);
    }
    eng_set_unref(s); /* the reference given to this thread */
    return NULL;
}

static void test_refcount_threads(void **state)
{
    (void)state;
    am_diags_t d;
    am_diags_init(&d);
    eng_set_t *s = load_dir(mappings, 0, &d);
    pthread_t th[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, eng_set_ref(s)), 0);
    eng_set_unref(s); /* the threads may now hold the last references */
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    eng_set_unref(NULL);
    assert_null(eng_set_ref(NULL));
    am_diags_dispose(&d);
}

static void mkfile(const char *dir, const char *name, const char *text)
{
    char p[1024];
    int n = snprintf(p, sizeof(p), "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < sizeof(p));
    t_write(p, text);
}

static void test_directory_rules(void **state)
{
    (void)state;
    char dir[] = "/tmp/engset-XXXXXX";
    assert_non_null(mkdtemp(dir));
    am_diags_t d;
    am_diags_init(&d);
    /* empty directory: an error (a reload must not silently drop all sources) */
    assert_null(load_dir(dir, AM_EINVAL, &d));
    assert_int_equal(d.count, 1);
    am_diags_dispose(&d);
    /* only *.yaml / *.yml directly inside count; other files are ignored */
    mkfile(dir, "a.yaml", "source: one\nfields: {title: t}\n");
    mkfile(dir, "b.yml", "source: two\nfields: {title: t}\n");
    mkfile(dir, "notes.txt", "not a mapping");
    char sub[300];
    snprintf(sub, sizeof(sub), "%s/rules", dir);
    mkdir(sub, 0700);
    mkfile(sub, "x.yaml", "garbage: [");
    am_diags_init(&d);
    eng_set_t *s = load_dir(dir, 0, &d);
    assert_int_equal(eng_set_count(s), 2);
    eng_set_unref(s);
    am_diags_dispose(&d);
    /* the same source in two files names both */
    mkfile(dir, "c.yaml", "# again\nsource: one\nfields: {title: t}\n");
    am_diags_init(&d);
    assert_null(load_dir(dir, AM_EINVAL, &d));
    assert_int_equal(d.count, 1);
    char want[512];
    snprintf(want, sizeof(want), "duplicate source 'one': already defined in %s/a.yaml:1:9", dir);
    assert_string_equal(d.items[0].msg, want);
    assert_int_equal(d.items[0].line, 2);
    assert_int_equal(d.items[0].col, 9);
    am_diags_dispose(&d);
    /* errors of several files are all reported, sorted by file and line */
    mkfile(dir, "c.yaml", "source: three\nfields: {title: \"a[\"}\nbad: 1\n");
    mkfile(dir, "b.yml", "source: two\nfields: {titel: t}\n");
    am_diags_init(&d);
    assert_null(load_dir(dir, AM_EINVAL, &d));
    assert_int_equal(d.count, 4);
    assert_non_null(strstr(d.items[0].file, "b.yml"));
    assert_non_null(strstr(d.items[3].file, "c.yaml"));
    assert_int_equal(d.items[3].line, 3);
    am_diags_dispose(&d);
    /* a directory that does not exist */
    am_diags_init(&d);
    assert_null(load_dir("/nonexistent/alertmap", AM_EIO, &d));
    assert_int_equal(d.count, 1);
    am_diags_dispose(&d);
    /* a missing rule file is an error */
    am_diags_init(&d);
    const char *paths[] = {"/nonexistent/x.yaml"};
    eng_set_t *none = NULL;
    assert_int_not_equal(eng_set_load_files(&none, paths, 1, NULL, &d), 0);
    assert_null(none);
    assert_true(d.count >= 1);
    am_diags_dispose(&d);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_signature_passthrough(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: open\nfields: {title: t}\n");
    eng_sig_request_t req = {.body = "{}", .body_len = 2};
    bool secret_set = true;
    eng_error_t err = {0};
    assert_int_equal(eng_verify_signature(eng_set_at(s, 0), &req, &secret_set, &err), 0);
    eng_set_unref(s);
}

static const char *token_header(void *ctx, const char *name, size_t *len)
{
    const char *tok = ctx;
    if (strcasecmp(name, "X-Token") != 0)
        return NULL;
    *len = strlen(tok);
    return tok;
}

/* A set's secrets are those of the environment when it was loaded: a
 * request does not read the environment, a (re)load does. */
static void test_secrets_resolved_per_load(void **state)
{
    (void)state;
    static const char yaml[] = "source: tok\n"
                               "signature: {scheme: token, header: X-Token, secret_env: "
                               "AM_TEST_SET_TOKEN}\n"
                               "fields: {title: t}\n";
    setenv("AM_TEST_SET_TOKEN", "first-token", 1);
    eng_set_t *old = t_load(yaml);
    setenv("AM_TEST_SET_TOKEN", "second-token", 1);
    eng_set_t *fresh = t_load(yaml); /* what a reload builds */
    unsetenv("AM_TEST_SET_TOKEN");

    eng_sig_request_t req = {.header = token_header, .body = "{}", .body_len = 2};
    bool set = false;
    eng_error_t err = {0};
    req.header_ctx = (void *)"first-token";
    assert_int_equal(eng_verify_signature(eng_set_at(old, 0), &req, &set, &err), 0);
    assert_true(set); /* the variable is unset now, but was at load time */
    assert_int_equal(eng_verify_signature(eng_set_at(fresh, 0), &req, &set, &err), AM_EAUTH);
    req.header_ctx = (void *)"second-token";
    assert_int_equal(eng_verify_signature(eng_set_at(fresh, 0), &req, &set, &err), 0);
    assert_int_equal(eng_verify_signature(eng_set_at(old, 0), &req, &set, &err), AM_EAUTH);
    eng_set_unref(old);
    eng_set_unref(fresh);

    /* loaded while unset: the source accepts unsigned requests */
    eng_set_t *none = t_load(yaml);
    assert_int_equal(eng_verify_signature(eng_set_at(none, 0), &req, &set, &err), 0);
    assert_false(set);
    eng_set_unref(none);
}

/* eng_run is reentrant: threads sharing one set get the same results. */
typedef struct {
    eng_set_t *set;
    json_t *payload;
    char fp[65];
    int failures;
} runner_t;

static void *run_many(void *arg)
{
    runner_t *rn = arg;
    am_arena_t *a = am_arena_new(16384, 0);
    const eng_program_t *p = eng_set_find(rn->set, "sentinel", 8);
    for (int i = 0; i < 300; i++) {
        eng_result_t res;
        eng_error_t err;
        if (eng_run(&res, p, rn->payload, a, T_NOW, &err) != 0 ||
            strcmp(res.alerts[0].fingerprint, rn->fp) != 0)
            rn->failures++;
        am_arena_reset(a);
    }
    am_arena_free(a);
    return NULL;
}

static void test_concurrent_runs(void **state)
{
    (void)state;
    am_diags_t d;
    am_diags_init(&d);
    eng_set_t *s = load_dir(mappings, 0, &d);
    char path[4200];
    snprintf(path, sizeof(path), "%s/samples/sentinel/incident-rich.json", mappings);
    json_t *payload = json_load_file(path, 0, NULL);
    assert_non_null(payload);
    am_arena_t *a = am_arena_new(16384, 0);
    eng_result_t res;
    eng_error_t err;
    assert_int_equal(eng_run(&res, eng_set_find(s, "sentinel", 8), payload, a, T_NOW, &err), 0);
    assert_true(res.alerts[0].nindicators > 3);
    runner_t rn[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        rn[i] = (runner_t){.set = s, .payload = payload};
        memcpy(rn[i].fp, res.alerts[0].fingerprint, 65);
        assert_int_equal(pthread_create(&th[i], NULL, run_many, &rn[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(rn[i].failures, 0);
    }
    am_arena_free(a);
    json_decref(payload);
    eng_set_unref(s);
    am_diags_dispose(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_mappings),
        cmocka_unit_test(test_refcount_threads),
        cmocka_unit_test(test_directory_rules),
        cmocka_unit_test(test_signature_passthrough),
        cmocka_unit_test(test_concurrent_runs),
        cmocka_unit_test(test_load_texts),
        cmocka_unit_test(test_secrets_resolved_per_load),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
