/* tests/h2o-glue/test_route.c - route table, methods, UUIDs, query strings
 * and the GET /v1/alerts parameters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "glue.h"

static glue_route_t match(const char *path)
{
    glue_route_t r;
    glue_route_match(&r, path, strlen(path));
    return r;
}

static void routes(void **state)
{
    (void)state;
    glue_route_t r = match("/v1/ingest/sentinel");
    assert_int_equal(r.kind, GLUE_R_INGEST);
    assert_int_equal(r.arg_len, 8);
    assert_memory_equal(r.arg, "sentinel", 8);

    r = match("/v1/sources/elastic/test");
    assert_int_equal(r.kind, GLUE_R_SOURCE_TEST);
    assert_int_equal(r.arg_len, 7);
    assert_memory_equal(r.arg, "elastic", 7);

    r = match("/v1/alerts/6f1c1e7e-0000-4000-8000-000000000001");
    assert_int_equal(r.kind, GLUE_R_ALERT);
    assert_int_equal(r.arg_len, 36);

    assert_int_equal(match("/v1/alerts").kind, GLUE_R_ALERTS);
    assert_int_equal(match("/v1/sources").kind, GLUE_R_SOURCES);
    assert_int_equal(match("/healthz").kind, GLUE_R_HEALTHZ);

    const char *none[] = {"/",
                          "",
                          "/v1",
                          "/v1/",
                          "/v1/ingest",
                          "/v1/ingest/",
                          "/v1/ingest/a/b",
                          "/v1/ingest/a/",
                          "/v1/sources/",
                          "/v1/sources/x",
                          "/v1/sources/x/test/",
                          "/v1/sources/x/tests",
                          "/v1/sources//test",
                          "/v1/alerts/",
                          "/v1/alerts/a/b",
                          "/v2/ingest/x",
                          "/healthz/",
                          "/v1/alertsx",
                          "/v1/sourcesx"};
    for (size_t i = 0; i < AM_ARRAY_LEN(none); i++) {
        glue_route_t x;
        if (glue_route_match(&x, none[i], strlen(none[i])) || x.kind != GLUE_R_NONE)
            fail_msg("'%s' matched a route", none[i]);
    }
}

static void methods(void **state)
{
    (void)state;
    assert_true(glue_route_allows(GLUE_R_INGEST, "POST", 4));
    assert_false(glue_route_allows(GLUE_R_INGEST, "GET", 3));
    assert_false(glue_route_allows(GLUE_R_INGEST, "POS", 3));
    assert_false(glue_route_allows(GLUE_R_INGEST, "POSTX", 5));
    assert_true(glue_route_allows(GLUE_R_ALERT, "GET", 3));
    assert_true(glue_route_allows(GLUE_R_ALERT, "PATCH", 5));
    assert_false(glue_route_allows(GLUE_R_ALERT, "DELETE", 6));
    assert_false(glue_route_allows(GLUE_R_ALERTS, "POST", 4));
    assert_true(glue_route_allows(GLUE_R_SOURCES, "GET", 3));
    assert_true(glue_route_allows(GLUE_R_SOURCE_TEST, "POST", 4));
    assert_true(glue_route_allows(GLUE_R_HEALTHZ, "GET", 3));
    assert_false(glue_route_allows(GLUE_R_NONE, "GET", 3));
    assert_string_equal(glue_route_allow_header(GLUE_R_ALERT), "GET, PATCH");
    assert_string_equal(glue_route_allow_header(GLUE_R_INGEST), "POST");
}

static void uuids(void **state)
{
    (void)state;
    const char *good = "6f1c1e7e-AbCd-4000-8000-000000000001";
    assert_true(glue_is_uuid(good, strlen(good)));
    const char *bad[] = {"",
                         "6f1c1e7e",
                         "6f1c1e7e-abcd-4000-8000-00000000000",
                         "6f1c1e7e-abcd-4000-8000-0000000000011",
                         "6f1c1e7e0abcd-4000-8000-000000000001",
                         "6f1c1e7g-abcd-4000-8000-000000000001",
                         "' or 1=1 --"};
    for (size_t i = 0; i < AM_ARRAY_LEN(bad); i++)
        if (glue_is_uuid(bad[i], strlen(bad[i])))
            fail_msg("'%s' taken for a uuid", bad[i]);
}

static void query_strings(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(4096, 0);
    glue_qparam_t *p;
    size_t n;
    const char *q = "source_name=my+src&&severity=High%2c%20Low&flag&empty=&x=%e2%9c%93";
    assert_int_equal(glue_query_parse(&p, &n, q, strlen(q), a), AM_OK);
    assert_int_equal(n, 5);
    assert_string_equal(p[0].key, "source_name");
    assert_string_equal(p[0].value, "my src");
    assert_string_equal(p[1].value, "High, Low");
    assert_string_equal(p[2].key, "flag");
    assert_string_equal(p[2].value, "");
    assert_string_equal(p[3].key, "empty");
    assert_string_equal(p[3].value, "");
    assert_string_equal(p[4].value, "\xe2\x9c\x93");

    assert_int_equal(glue_query_parse(&p, &n, "", 0, a), AM_OK);
    assert_int_equal(n, 0);

    const char *bad[] = {"a=%", "a=%4", "a=%zz", "%g1=b", "a=%00"};
    for (size_t i = 0; i < AM_ARRAY_LEN(bad); i++)
        if (glue_query_parse(&p, &n, bad[i], strlen(bad[i]), a) != AM_EINVAL)
            fail_msg("query '%s' accepted", bad[i]);

    char many[512] = "";
    size_t len = 0;
    for (int i = 0; i <= GLUE_MAX_QPARAMS; i++)
        len += (size_t)snprintf(many + len, sizeof(many) - len, "k%d=v&", i);
    assert_int_equal(glue_query_parse(&p, &n, many, len, a), AM_ELIMIT);
    am_arena_free(a);
}

static void list_parameters(void **state)
{
    (void)state;
    glue_qparam_t ok[] = {
        {"source_name", "sentinel"},       {"severity", "High"}, {"status", "Open"},
        {"since", "2024-05-01T00:00:00Z"}, {"limit", "500"},     {"cursor", "abc"}};
    store_query_t q;
    char msg[200];
    assert_int_equal(glue_list_query(&q, ok, AM_ARRAY_LEN(ok), msg, sizeof(msg)), AM_OK);
    assert_int_equal(q.kind, STORE_Q_LIST_ALERTS);
    assert_string_equal(q.source_name, "sentinel");
    assert_string_equal(q.severity, "High");
    assert_string_equal(q.status, "Open");
    assert_string_equal(q.since, "2024-05-01T00:00:00Z");
    assert_string_equal(q.cursor, "abc");
    assert_string_equal(q.limit_text, "500");

    assert_int_equal(glue_list_query(&q, NULL, 0, msg, sizeof(msg)), AM_OK);
    assert_null(q.source_name);
    assert_null(q.limit_text);

    glue_qparam_t unknown[] = {{"sort", "asc"}};
    assert_int_equal(glue_list_query(&q, unknown, 1, msg, sizeof(msg)), AM_EINVAL);
    assert_non_null(strstr(msg, "'sort'"));
    glue_qparam_t twice[] = {{"status", "Open"}, {"status", "Closed"}};
    assert_int_equal(glue_list_query(&q, twice, 2, msg, sizeof(msg)), AM_EINVAL);
    assert_non_null(strstr(msg, "twice"));
    /* values are the store's to check: passed through as given */
    glue_qparam_t odd[] = {{"limit", "ten"}, {"since", "yesterday"}};
    assert_int_equal(glue_list_query(&q, odd, 2, msg, sizeof(msg)), AM_OK);
    assert_string_equal(q.limit_text, "ten");
    assert_string_equal(q.since, "yesterday");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routes),        cmocka_unit_test(methods),         cmocka_unit_test(uuids),
        cmocka_unit_test(query_strings), cmocka_unit_test(list_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
