/* tests/engine/test_samples.c - sample payloads against expected outputs:
 * semantic comparison, "$dynamic", readable diffs, the shipped mappings. */
#include "engtest.h"

#include <sys/stat.h>

static char dir[] = "/tmp/engsamples-XXXXXX";

static void put(const char *rel, const char *text)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    t_write(p, text);
}

static int setup(void **state)
{
    (void)state;
    if (mkdtemp(dir) == NULL)
        return 1;
    char p[256];
    snprintf(p, sizeof(p), "%s/samples", dir);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/samples/demo", dir);
    mkdir(p, 0700);
    put("demo.yaml", "source: demo\n"
                     "match:\n"
                     "  - present: t\n"
                     "    name: has-title\n"
                     "fields:\n"
                     "  title: t\n"
                     "  severity: s\n"
                     "  tags: g\n"
                     "indicators:\n"
                     "  - {path: ip, type: ip}\n");
    put("samples/demo/ok.json", "{\"t\":\"T\",\"s\":\"low\",\"g\":[\"x\"],\"ip\":\"192.0.2.1\"}");
    put("samples/demo/ok.expected.json",
        "{\"alerts\":[{\"severity\":\"Low\",\"title\":\"T\",\"occurred_at\":\"$dynamic\","
        "\"occurred_at_fallback\":true,\"source_name\":\"demo\",\"description\":null,"
        "\"tags\":[\"x\"],\"detection_rule_ref\":null,\"fingerprint\":\"$dynamic\","
        "\"indicators\":[{\"type\":\"ip\",\"value\":\"192.0.2.1\",\"source_field\":\"ip\"}]}]}");
    put("samples/demo/rejected.json", "{\"s\":\"low\"}");
    put("samples/demo/rejected.expected.json",
        "{\"error\":{\"code\":\"INVALID_PAYLOAD\",\"message\":\"match rule 'has-title' "
        "(demo.yaml:3) failed: t is not present\"}}");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
}

static eng_set_t *load(am_diags_t *d, bool check)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/demo.yaml", dir);
    const char *paths[] = {p};
    eng_load_options_t opt = {.rules_file = t_rules(), .check_samples = check};
    eng_set_t *s = NULL;
    eng_set_load_files(&s, paths, 1, &opt, d);
    return s;
}

static void test_passing(void **state)
{
    (void)state;
    am_diags_t d;
    am_diags_init(&d);
    eng_set_t *s = load(&d, true);
    if (s == NULL) {
        am_diags_print(&d, stderr);
        fail();
    }
    eng_program_info_t info;
    eng_program_info(&info, eng_set_at(s, 0));
    assert_int_equal(info.nsamples, 2);
    assert_int_equal(eng_program_check_samples(eng_set_at(s, 0), &d), 0);
    assert_int_equal(d.count, 0);
    eng_set_unref(s);
    am_diags_dispose(&d);
}

static void test_mismatch(void **state)
{
    (void)state;
    put("samples/demo/bad.json", "{\"t\":\"T\",\"s\":\"high\",\"g\":[\"x\",\"y\"]}");
    put("samples/demo/bad.expected.json",
        "{\"alerts\":[{\"severity\":\"Low\",\"title\":\"T\",\"occurred_at\":\"$dynamic\","
        "\"occurred_at_fallback\":true,\"source_name\":\"demo\",\"description\":null,"
        "\"tags\":[\"x\"],\"detection_rule_ref\":null,\"fingerprint\":\"$dynamic\","
        "\"extra\":1,\"indicators\":[]}]}");
    put("samples/demo/lonely.json", "{\"t\":\"T\"}");
    am_diags_t d;
    am_diags_init(&d);
    /* at load time, a failing sample makes the whole load fail */
    assert_null(load(&d, true));
    assert_true(d.count >= 2);
    am_diags_dispose(&d);
    am_diags_init(&d);
    eng_set_t *s = load(&d, false);
    assert_non_null(s);
    assert_int_equal(eng_program_check_samples(eng_set_at(s, 0), &d), 2);
    assert_int_equal(d.count, 2);
    am_diags_sort(&d);
    assert_non_null(strstr(d.items[0].file, "bad.expected.json"));
    assert_string_equal(d.items[0].msg, "sample bad.json: output differs from the expected:\n"
                                        "  alerts[0].severity: expected \"Low\", got \"High\"\n"
                                        "  alerts[0].tags[1]: unexpected \"y\"\n"
                                        "  alerts[0].extra: expected 1, got nothing");
    assert_non_null(strstr(d.items[1].file, "lonely.expected.json"));
    eng_set_unref(s);
    am_diags_dispose(&d);
}

static void test_shipped_samples(void **state)
{
    (void)state;
    const char *root = getenv("ALERTMAP_SOURCE_ROOT");
    char mdir[4096];
    snprintf(mdir, sizeof(mdir), "%s/mappings", root ? root : "..");
    am_diags_t d;
    am_diags_init(&d);
    eng_load_options_t opt = {.check_samples = true};
    eng_set_t *s = NULL;
    int rc = eng_set_load(&s, mdir, &opt, &d);
    if (rc != 0) {
        am_diags_print(&d, stderr);
        fail_msg("shipped mappings or their samples fail");
    }
    size_t total = 0;
    for (size_t i = 0; i < eng_set_count(s); i++) {
        eng_program_info_t info;
        eng_program_info(&info, eng_set_at(s, i));
        total += info.nsamples;
    }
    assert_true(total >= 4);
    eng_set_unref(s);
    am_diags_dispose(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passing),
        cmocka_unit_test(test_mismatch),
        cmocka_unit_test(test_shipped_samples),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
