/* tests/engine/test_alert_json.c - the printed alert: key order, nulls,
 * optional fields, indicators, provenance and raw payload. */
#include "engtest.h"

static void test_key_order_and_nulls(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "fields:\n"
                          "  title: t\n"
                          "  severity: sev\n"
                          "  occurred_at: ts\n"
                          "  src_ip: src\n"
                          "  http_url: url\n");
    char *j = t_norm(s,
                     "{\"t\":\"Hello\",\"sev\":\"high\",\"ts\":\"2024-05-01T12:00:00+02:00\","
                     "\"src\":\"192.0.2.1\"}",
                     ENG_JSON_INDICATORS);
    char fp[65];
    eng_indicator_t ip = {ENG_IOC_IP, "192.0.2.1", "src_ip", NULL};
    eng_fingerprint(fp, "Hello", "demo", &ip, 1);
    char want[1024];
    snprintf(want, sizeof(want),
             "[{\"title\":\"Hello\",\"severity\":\"High\",\"occurred_at\":\"2024-05-01T10:00:00Z\","
             "\"occurred_at_fallback\":false,\"source_name\":\"demo\",\"description\":null,"
             "\"tags\":[],\"detection_rule_ref\":null,\"src_ip\":\"192.0.2.1\","
             "\"fingerprint\":\"%s\",\"indicators\":[{\"type\":\"ip\",\"value\":\"192.0.2.1\","
             "\"source_field\":\"src_ip\"}]}]",
             fp);
    assert_string_equal(j, want);
    free(j);
    /* without the flag there are no indicators */
    j = t_norm(s, "{\"t\":\"x\"}", 0);
    assert_null(strstr(j, "indicators"));
    assert_non_null(strstr(j, "\"occurred_at\":\"2024-05-01T10:00:00Z\",\"occurred_at_fallback\""
                              ":true"));
    free(j);
    eng_set_unref(s);
}

static void test_provenance_and_raw(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "fields:\n"
                          "  title: {path: t, default: none}\n"
                          "  tags: g\n"
                          "indicators:\n"
                          "  - {path: ip, type: ip}\n");
    char *j;
    json_t *o, *pv, *ioc;
    j = t_norm(s, "{\"g\":[\"a\"],\"ip\":\"192.0.2.9\"}",
               ENG_JSON_INDICATORS | ENG_JSON_PROVENANCE | ENG_JSON_RAW);
    o = t_json(j);
    free(j);
    json_t *al = json_array_get(o, 0);
    pv = json_object_get(al, "provenance");
    assert_string_equal(json_string_value(json_object_get(pv, "title")), "t.yaml:3 default");
    assert_string_equal(json_string_value(json_object_get(pv, "tags")), "t.yaml:4 g");
    assert_string_equal(json_string_value(json_object_get(pv, "severity")), "default");
    ioc = json_array_get(json_object_get(al, "indicators"), 0);
    assert_string_equal(json_string_value(json_object_get(ioc, "origin")), "t.yaml:6");
    assert_string_equal(json_string_value(json_object_get(ioc, "source_field")), "ip");
    json_t *raw = json_object_get(al, "raw_payload");
    assert_string_equal(json_string_value(json_object_get(raw, "ip")), "192.0.2.9");
    json_decref(o);
    eng_set_unref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_order_and_nulls),
        cmocka_unit_test(test_provenance_and_raw),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    am_arena_free(t_arena);
    return rc;
}
