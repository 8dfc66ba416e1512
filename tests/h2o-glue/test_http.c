/* tests/h2o-glue/test_http.c - JSON error and 202 bodies, reason phrases,
 * header lookup over h2o headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "glue.h"

static void error_bodies(void **state)
{
    (void)state;
    char *s = glue_error_json("INVALID_PAYLOAD", "payload must be a JSON object");
    assert_string_equal(s, "{\"error\":{\"code\":\"INVALID_PAYLOAD\",\"message\":\"payload must "
                           "be a JSON object\"}}");
    free(s);
    /* quotes, control characters and backslashes are escaped */
    s = glue_error_json("INVALID_JSON", "bad \"x\"\n\\");
    json_error_t e;
    json_t *v = json_loads(s, 0, &e);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "error"), "message")),
                        "bad \"x\"\n\\");
    json_decref(v);
    free(s);
    /* a message that is not UTF-8 still gives a valid body */
    s = glue_error_json("UNKNOWN_SOURCE", "no mapping for source '\xff'");
    assert_non_null(s);
    v = json_loads(s, 0, &e);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "error"), "code")),
                        "UNKNOWN_SOURCE");
    json_decref(v);
    free(s);
}

static void ingest_bodies(void **state)
{
    (void)state;
    store_alert_outcome_t o[2] = {
        {.uuid = "6f1c1e7e-0000-4000-8000-000000000001", .is_duplicate = false},
        {.uuid = "6f1c1e7e-0000-4000-8000-000000000002",
         .is_duplicate = true,
         .duplicate_count = 49}};
    char *s = glue_ingest_text(o, 1, false);
    assert_string_equal(s,
                        "{\"data\":{\"alert_uuid\":\"6f1c1e7e-0000-4000-8000-000000000001\","
                        "\"status\":\"queued\",\"is_duplicate\":false,\"duplicate_count\":null}}");
    free(s);
    s = glue_ingest_text(&o[1], 1, false);
    assert_string_equal(s, "{\"data\":{\"alert_uuid\":\"6f1c1e7e-0000-4000-8000-000000000002\","
                           "\"status\":\"deduplicated\",\"is_duplicate\":true,"
                           "\"duplicate_count\":49}}");
    free(s);
    s = glue_ingest_text(o, 2, true);
    assert_string_equal(
        s, "{\"data\":{\"alert_uuid\":\"6f1c1e7e-0000-4000-8000-000000000001\",\"status\":"
           "\"queued\",\"is_duplicate\":false,\"duplicate_count\":null,\"alerts\":["
           "{\"alert_uuid\":\"6f1c1e7e-0000-4000-8000-000000000001\",\"status\":\"queued\","
           "\"is_duplicate\":false,\"duplicate_count\":null},"
           "{\"alert_uuid\":\"6f1c1e7e-0000-4000-8000-000000000002\",\"status\":"
           "\"deduplicated\",\"is_duplicate\":true,\"duplicate_count\":49}]}}");
    free(s);
    assert_null(glue_ingest_text(o, 0, true));
}

static void reasons(void **state)
{
    (void)state;
    assert_string_equal(glue_reason(202), "Accepted");
    assert_string_equal(glue_reason(401), "Unauthorized");
    assert_string_equal(glue_reason(413), "Payload Too Large");
    assert_string_equal(glue_reason(422), "Unprocessable Entity");
    assert_string_equal(glue_reason(503), "Service Unavailable");
    assert_string_equal(glue_reason(418), "Error");
}

static void header_lookup(void **state)
{
    (void)state;
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    h2o_headers_t headers = {NULL, 0, 0};
    h2o_add_header(&pool, &headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header_by_str(&pool, &headers, H2O_STRLIT("x-sentinel-signature"), 0, NULL,
                          H2O_STRLIT("sha256=abc"));
    h2o_add_header_by_str(&pool, &headers, H2O_STRLIT("x-token"), 0, NULL, H2O_STRLIT("t1"));
    h2o_add_header_by_str(&pool, &headers, H2O_STRLIT("x-token"), 0, NULL, H2O_STRLIT("t2"));
    size_t len = 0;
    const char *v = glue_header_find(&headers, "X-Sentinel-Signature", &len);
    assert_non_null(v);
    assert_int_equal(len, 10);
    assert_memory_equal(v, "sha256=abc", 10);
    v = glue_header_find(&headers, "Content-Type", &len);
    assert_non_null(v);
    assert_int_equal(len, 16);
    /* the first of repeated headers */
    v = glue_header_find(&headers, "x-token", &len);
    assert_memory_equal(v, "t1", 2);
    assert_null(glue_header_find(&headers, "x-sentinel", &len));
    assert_null(glue_header_find(&headers, "x-sentinel-signature-2", &len));
    h2o_mem_clear_pool(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(error_bodies),
        cmocka_unit_test(ingest_bodies),
        cmocka_unit_test(reasons),
        cmocka_unit_test(header_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
