/* tests/engine/test_compile.c - the mapping compiler: what compiles, and the
 * exact error (line, column, message) for what does not. The broader
 * catalogue of errors is in tests/engine/golden/compile. */
#include "engtest.h"

static char diags[8192];

static void expect_errors(const char *yaml, const char *want)
{
    eng_set_t *s = NULL;
    int rc = t_compile(&s, yaml, diags, sizeof(diags));
    assert_int_equal(rc, AM_EINVAL);
    assert_null(s);
    if (strcmp(diags, want) != 0)
        fail_msg("diagnostics differ:\n--- want\n%s--- got\n%s", want, diags);
}

static void test_doc_example_compiles(void **state)
{
    (void)state;
    /* the "whole mapping" of docs/mapping-language.md */
    eng_set_t *s = t_load(
        "source: sentinel\n"
        "display_name: Microsoft Sentinel\n"
        "signature:\n"
        "  scheme: hmac-sha256\n"
        "  header: X-Sentinel-Signature\n"
        "  prefix: \"sha256=\"\n"
        "  secret_env: SENTINEL_WEBHOOK_SECRET\n"
        "match:\n"
        "  - object: properties\n"
        "  - any: [properties.title, properties.severity]\n"
        "    name: title-or-severity\n"
        "fields:\n"
        "  title:       {path: properties.title, default: Untitled Sentinel Incident}\n"
        "  severity:    {path: properties.severity, map: {None: Informational}}\n"
        "  occurred_at: {path: [properties.firstActivityTimeUtc, properties.createdTimeUtc], "
        "time: iso8601}\n"
        "  description: properties.description\n"
        "  tags:        \"properties.labels[*].labelName\"\n"
        "  detection_rule_ref: {path: \"properties.relatedAnalyticRuleIds[0]\", regex: "
        "'([^/]+)/*$'}\n"
        "indicators:\n"
        "  - {each: \"Entities[?Type=ip]\", type: ip, value: Address}\n"
        "  - {scan: [properties.description], types: [ip, domain, url, hash_sha256]}\n");
    const eng_program_t *p = eng_set_find(s, "sentinel", 8);
    assert_non_null(p);
    eng_program_info_t info;
    eng_program_info(&info, p);
    assert_string_equal(info.source, "sentinel");
    assert_string_equal(info.display_name, "Microsoft Sentinel");
    assert_true(info.has_signature);
    assert_int_equal(info.nsamples, 0);
    eng_set_unref(s);
}

static void test_regex_columns(void **state)
{
    (void)state;
    /* plain scalar: column = scalar column + offset */
    expect_errors("source: demo\n"
                  "fields:\n"
                  "  title: {path: t, regex: ab(c}\n",
                  "t.yaml:3:31: regex error at offset 4 in 'ab(c': missing closing "
                  "parenthesis\n");
    /* quoted scalar: one more for the quote */
    expect_errors("source: demo\n"
                  "fields:\n"
                  "  title: {path: t, regex: 'a)b'}\n",
                  "t.yaml:3:29: regex error at offset 1 in 'a)b': unmatched closing "
                  "parenthesis\n");
    /* block style: the pattern on its own line */
    expect_errors("source: demo\n"
                  "fields:\n"
                  "  title:\n"
                  "    path: t\n"
                  "    regex: x{2,1}\n",
                  "t.yaml:5:17: regex error at offset 5 in 'x{2,1}': numbers out of order in {} "
                  "quantifier\n");
    expect_errors("source: demo\n"
                  "fields:\n"
                  "  title: t\n"
                  "indicators:\n"
                  "  - {regex: 'user=(?<ip>\\S+) u=(?<user>\\w+)', in: [raw]}\n",
                  "t.yaml:5:35: named group 'user' is not an indicator type\n");
    expect_errors("source: demo\n"
                  "fields:\n"
                  "  title: t\n"
                  "indicators:\n"
                  "  - {regex: 'id=(\\S+)'}\n",
                  "t.yaml:5:13: a regex rule needs named groups called after indicator types, "
                  "e.g. (?<ip>...)\n");
}

static void test_path_columns(void **state)
{
    (void)state;
    expect_errors("source: demo\n"
                  "fields:\n"
                  "  title: a[?\n"
                  "  description: \"x.y[0\"\n"
                  "  tags: {template: \"{a} and {b..c}\"}\n",
                  "t.yaml:3:11: bad path 'a[?': unterminated '[' at offset 1\n"
                  "t.yaml:4:20: bad path 'x.y[0': unterminated '[' at offset 3\n"
                  "t.yaml:5:32: bad path 'b..c': expected a name after '.' at offset 2\n");
}

static void test_all_errors_at_once(void **state)
{
    (void)state;
    expect_errors("source: demo\n"
                  "fields:\n"
                  "  title: {path: t, default: [x]}\n"
                  "  severity: {path: s, map: {a: b, A: c}}\n"
                  "  description: {path: d, time: auto}\n"
                  "  detection_rule_ref: {path: r, map_default: x}\n"
                  "  tags: {path: g, lower: 1}\n",
                  "t.yaml:3:29: 'default' must be a string, got a list\n"
                  "t.yaml:4:35: duplicate map key 'A' (keys are case-insensitive; first at line "
                  "4)\n"
                  "t.yaml:5:26: 'time' is only allowed in occurred_at\n"
                  "t.yaml:6:33: 'map_default' needs 'map'\n"
                  "t.yaml:7:26: 'lower' must be true or false, got a string\n");
}

static void test_match_and_rules_shapes(void **state)
{
    (void)state;
    expect_errors("source: demo\n"
                  "match:\n"
                  "  - {object: a, name: [x]}\n"
                  "  - equals: {path: k, value: [a, {b: c}]}\n"
                  "fields:\n"
                  "  title: t\n"
                  "indicators:\n"
                  "  - {scan: all, types: ip}\n"
                  "  - {each: e, type: ip, value: v, extra: 1}\n"
                  "  - {path: p, type: {const: ip}, bogus: 2}\n",
                  "t.yaml:3:23: 'name' must be a string, got a list\n"
                  "t.yaml:4:34: 'value' must be a string or a list of strings, got a mapping\n"
                  "t.yaml:8:24: 'types' must be a list, got a string\n"
                  "t.yaml:9:35: unknown key 'extra' (expected one of: each, type, value)\n"
                  "t.yaml:10:34: unknown key 'bogus' (expected one of: path, const, template, "
                  "first, default, regex, lower, upper, trim, map, map_default, ranges, time)\n");
}

static void test_sources(void **state)
{
    (void)state;
    expect_errors("source: -demo\nfields: {title: t}\n",
                  "t.yaml:1:9: bad source name '-demo': use 1-64 of a-z, 0-9, '_', '-' (not "
                  "first)\n");
    expect_errors("fields: {title: t}\n", "t.yaml:1:1: missing required key 'source'\n");
    eng_set_t *s = t_load("source: a_b-9\nfields: {title: t}\n");
    assert_non_null(eng_set_find(s, "a_b-9", 5));
    eng_set_unref(s);
}

static void test_yaml_problems(void **state)
{
    (void)state;
    expect_errors("source: demo\nfields: {title: *anchor}\n",
                  "t.yaml:2:17: YAML aliases (*name) are not supported in mapping files\n");
    expect_errors("source: demo\n---\nsource: other\n",
                  "t.yaml:2:1: a mapping file holds one YAML document\n");
    expect_errors("source: \"demo\nfields: {}\n",
                  "t.yaml:3:1: YAML syntax error: found unexpected end of stream while scanning a "
                  "quoted scalar\n");
}

/* `auth: {query_key: BOOL}`: off by default, on when asked for, and its
 * shape checked like every other key. */
static void test_auth_query_key(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\nfields: {title: t}\n");
    eng_program_info_t info;
    eng_program_info(&info, eng_set_find(s, "demo", 4));
    assert_false(info.query_key);
    assert_false(info.has_signature);
    assert_int_equal(info.nsecret_env, 0);
    eng_set_unref(s);
    s = t_load("source: demo\nauth: {query_key: true}\n"
               "signature: {scheme: token, header: X-Token, secret_env: [DEMO_A, DEMO_B]}\n"
               "fields: {title: t}\n");
    eng_program_info(&info, eng_set_find(s, "demo", 4));
    assert_true(info.query_key);
    assert_true(info.has_signature);
    assert_int_equal(info.nsecret_env, 2);
    assert_string_equal(info.secret_env[0], "DEMO_A");
    assert_string_equal(info.secret_env[1], "DEMO_B");
    eng_set_unref(s);
    expect_errors("source: demo\nauth: {query_key: yes please}\nfields: {title: t}\n",
                  "t.yaml:2:19: 'auth.query_key' must be true or false, got a string\n");
    expect_errors("source: demo\nauth: {cookie: true}\nfields: {title: t}\n",
                  "t.yaml:2:8: unknown key 'cookie' (expected one of: query_key)\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doc_example_compiles),   cmocka_unit_test(test_regex_columns),
        cmocka_unit_test(test_path_columns),           cmocka_unit_test(test_all_errors_at_once),
        cmocka_unit_test(test_match_and_rules_shapes), cmocka_unit_test(test_sources),
        cmocka_unit_test(test_yaml_problems),          cmocka_unit_test(test_auth_query_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
