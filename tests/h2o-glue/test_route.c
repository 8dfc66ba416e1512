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
    assert_int_equal(match("/readyz").kind, GLUE_R_READYZ);
    r = match("/v1/alerts/6f1c1e7e-0000-4000-8000-000000000001/deliveries");
    assert_int_equal(r.kind, GLUE_R_DELIVERIES);
    assert_int_equal(r.arg_len, 36);
    assert_int_equal(
        match("/v1/alerts/6f1c1e7e-0000-4000-8000-000000000001/deliveries/7/retry").kind,
        GLUE_R_RETRY);

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
                          "/v1/alerts/a/deliveries/",
                          "/v1/alerts/a/deliveries/7",
                          "/v1/alerts/a/deliveries//retry",
                          "/v1/alerts/a/deliveries/7/retry/",
                          "/v1/alerts/a/deliveries/7/retryx",
                          "/v2/ingest/x",
                          "/healthz/",
                          "/v1/alertsx",
                          "/v1/sourcesx",
                          "/readyz/"};
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
    assert_true(glue_route_allows(GLUE_R_INGEST, "GET", 3)); /* verification handshakes */
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
    assert_string_equal(glue_route_allow_header(GLUE_R_INGEST), "POST, GET");
}

/* Every row of the route table: a known method, a pattern that parses
 * (every parameter known, so it can match), a handler, a scope; one kind
 * per pattern; the public rows are exactly the ones meant to be public. */
static void table_walk(void **state)
{
    (void)state;
    size_t n;
    const glue_route_entry_t *t = glue_route_table(&n);
    assert_true(n >= 9);
    for (size_t i = 0; i < n; i++) {
        const glue_route_entry_t *r = &t[i];
        assert_non_null(r->handle);
        assert_true(r->kind > GLUE_R_NONE && r->kind < GLUE_R__COUNT);
        assert_true(r->scope >= GLUE_SCOPE_PUBLIC && r->scope < GLUE_SCOPE__COUNT);
        assert_string_not_equal(glue_scope_name(r->scope), "?");
        assert_true(strcmp(r->method, "GET") == 0 || strcmp(r->method, "POST") == 0 ||
                    strcmp(r->method, "PATCH") == 0);
        assert_true(glue_route_allows(r->kind, r->method, strlen(r->method)));
        /* an example path: each parameter replaced by a value */
        char path[256] = "";
        size_t k = 0;
        for (const char *p = r->pattern; *p != '\0';) {
            if (*p == '{') {
                const char *close = strchr(p, '}');
                assert_non_null(close);
                k += (size_t)snprintf(path + k, sizeof(path) - k, "%s",
                                      strncmp(p, "{uuid}", 6) == 0
                                          ? "6f1c1e7e-0000-4000-8000-000000000001"
                                      : strncmp(p, "{delivery_id}", 13) == 0 ? "42"
                                                                             : "generic");
                p = close + 1;
            } else {
                path[k++] = *p++;
            }
        }
        path[k] = '\0';
        glue_route_params_t params;
        if (!glue_route_pattern_match(r->pattern, path, k, &params))
            fail_msg("pattern %s does not match %s", r->pattern, path);
        glue_route_kind_t kind;
        const glue_route_entry_t *rows[1] = {r};
        assert_ptr_equal(
            glue_route_find(rows, 1, r->method, strlen(r->method), path, k, &kind, &params), r);
        assert_int_equal(kind, r->kind);
        /* the registered h2o path is a prefix of every path of the row */
        size_t plen = glue_route_prefix(r->pattern);
        assert_true(plen > 1 && plen <= k);
        assert_memory_equal(path, r->pattern, plen);
        assert_true(path[plen] == '\0' || path[plen] == '/');
        /* rows with one pattern share one kind, and the reverse */
        for (size_t j = 0; j < n; j++)
            assert_int_equal(strcmp(t[j].pattern, r->pattern) == 0, t[j].kind == r->kind);
        /* exactly liveness and readiness need no credential; /metrics is
         * public only as --metrics-access says; every other row names a
         * scope a key must have */
        bool public_route = r->kind == GLUE_R_HEALTHZ || r->kind == GLUE_R_READYZ;
        assert_int_equal(r->scope == GLUE_SCOPE_PUBLIC, public_route);
        assert_int_equal(r->scope == GLUE_SCOPE_METRICS, r->kind == GLUE_R_METRICS);
        assert_true(r->scope < GLUE_SCOPE__COUNT);
        assert_string_not_equal(glue_scope_name(r->scope), "?");
    }
    assert_string_equal(glue_route_allow_header(GLUE_R_READYZ), "GET");
    assert_string_equal(glue_route_allow_header(GLUE_R_NONE), "");
}

static void path_parameters(void **state)
{
    (void)state;
    glue_route_params_t p;
    const char *path = "/v1/sources/elastic/test";
    assert_true(glue_route_pattern_match("/v1/sources/{source_name}/test", path, strlen(path), &p));
    assert_int_equal(p.source_name.len, 7);
    assert_memory_equal(p.source_name.base, "elastic", 7);
    assert_null(p.uuid.base);
    path = "/v1/alerts/abc";
    assert_true(glue_route_pattern_match("/v1/alerts/{uuid}", path, strlen(path), &p));
    assert_int_equal(p.uuid.len, 3);
    assert_null(p.source_name.base);
    /* {delivery_id} takes any one segment; the handler parses it */
    path = "/v1/alerts/abc/deliveries/12/retry";
    assert_true(glue_route_pattern_match("/v1/alerts/{uuid}/deliveries/{delivery_id}/retry", path,
                                         strlen(path), &p));
    assert_int_equal(p.uuid.len, 3);
    assert_int_equal(p.delivery_id.len, 2);
    assert_memory_equal(p.delivery_id.base, "12", 2);
    /* an unknown parameter name never matches */
    assert_false(glue_route_pattern_match("/x/{nope}", "/x/y", 4, &p));
    assert_int_equal(glue_route_prefix("/v1/sources/{source_name}/test"), strlen("/v1/sources"));
    assert_int_equal(glue_route_prefix("/healthz"), strlen("/healthz"));

    /* a known path with another method: NULL, and the path's kind */
    size_t n;
    const glue_route_entry_t *t = glue_route_table(&n);
    const glue_route_entry_t *rows[16];
    for (size_t i = 0; i < n; i++)
        rows[i] = &t[i];
    glue_route_kind_t kind;
    path = "/v1/alerts/6f1c1e7e-0000-4000-8000-000000000001";
    assert_null(glue_route_find(rows, n, "DELETE", 6, path, strlen(path), &kind, &p));
    assert_int_equal(kind, GLUE_R_ALERT);
    const glue_route_entry_t *r =
        glue_route_find(rows, n, "PATCH", 5, path, strlen(path), &kind, &p);
    assert_non_null(r);
    assert_int_equal(r->scope, GLUE_SCOPE_WRITE);
    r = glue_route_find(rows, n, "GET", 3, path, strlen(path), &kind, &p);
    assert_int_equal(r->scope, GLUE_SCOPE_READ);
    assert_int_equal(p.uuid.len, 36);
    assert_null(glue_route_find(rows, n, "GET", 3, "/v1/nope", 8, &kind, &p));
    assert_int_equal(kind, GLUE_R_NONE);
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

static void delivery_ids(void **state)
{
    (void)state;
    int64_t v = -1;
    assert_int_equal(glue_parse_delivery_id(&v, "1", 1), AM_OK);
    assert_int_equal(v, 1);
    assert_int_equal(glue_parse_delivery_id(&v, "42", 2), AM_OK);
    assert_int_equal(v, 42);
    const char *max = "999999999999999999";
    assert_int_equal(glue_parse_delivery_id(&v, max, strlen(max)), AM_OK);
    assert_int_equal(v, 999999999999999999LL);
    /* a segment that is not read past its length */
    assert_int_equal(glue_parse_delivery_id(&v, "77/retry", 2), AM_OK);
    assert_int_equal(v, 77);
    const char *bad[] = {"",
                         "0",
                         "00",
                         "07",
                         "-1",
                         "+1",
                         "1.5",
                         "1e3",
                         " 1",
                         "1 ",
                         "0x1",
                         "abc",
                         "1a",
                         "%31",
                         "9999999999999999999",
                         "1000000000000000000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 5;
        if (glue_parse_delivery_id(&v, bad[i], strlen(bad[i])) != AM_EINVAL)
            fail_msg("accepted delivery id '%s'", bad[i]);
        assert_int_equal(v, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routes),          cmocka_unit_test(methods),
        cmocka_unit_test(uuids),           cmocka_unit_test(query_strings),
        cmocka_unit_test(list_parameters), cmocka_unit_test(table_walk),
        cmocka_unit_test(path_parameters), cmocka_unit_test(delivery_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
