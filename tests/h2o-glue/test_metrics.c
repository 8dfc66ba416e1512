/* tests/h2o-glue/test_metrics.c - the counters behind GET /metrics and their
 * rendering in the Prometheus text format 0.0.4: HELP/TYPE lines, label
 * escaping, values after increments, the store counters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "glue.h"

static char *render(const store_stats_t *st)
{
    am_buf_t b;
    am_buf_init(&b, 0);
    assert_int_equal(glue_metrics_render(&b, st), AM_OK);
    char *s = am_buf_steal(&b);
    assert_non_null(s);
    return s;
}

/* Whether text has line as one whole line. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

#define assert_line(text, line)                                                                    \
    do {                                                                                           \
        if (!has_line((text), (line)))                                                             \
            fail_msg("missing line '%s' in:\n%s", (line), (text));                                 \
    } while (0)

static int setup(void **state)
{
    (void)state;
    glue_metrics_reset();
    return 0;
}

static void help_and_type_lines(void **state)
{
    (void)state;
    char *s = render(NULL);
    static const char *const counters[] = {
        "alertmap_http_requests_total", "alertmap_ingest_alerts_total",
        "alertmap_ingest_rejected_total", "alertmap_reloads_total"};
    static const char *const gauges[] = {"alertmap_mappings_loaded",
                                         "alertmap_reload_last_success_timestamp_seconds",
                                         "alertmap_start_time_seconds", "alertmap_build_info"};
    char want[160];
    for (size_t i = 0; i < AM_ARRAY_LEN(counters); i++) {
        snprintf(want, sizeof(want), "# TYPE %s counter", counters[i]);
        assert_line(s, want);
        snprintf(want, sizeof(want), "# HELP %s ", counters[i]);
        assert_non_null(strstr(s, want));
    }
    for (size_t i = 0; i < AM_ARRAY_LEN(gauges); i++) {
        snprintf(want, sizeof(want), "# TYPE %s gauge", gauges[i]);
        assert_line(s, want);
    }
    /* every TYPE line comes right after the HELP line of the same metric,
     * and every line ends with a newline */
    size_t len = strlen(s);
    assert_true(len > 0 && s[len - 1] == '\n');
    for (const char *p = s; (p = strstr(p, "# TYPE ")) != NULL; p++) {
        const char *name = p + 7;
        size_t nl = strcspn(name, " ");
        assert_true(p > s);
        const char *prev = p - 1;
        while (prev > s && prev[-1] != '\n')
            prev--;
        assert_memory_equal(prev, "# HELP ", 7);
        assert_memory_equal(prev + 7, name, nl);
    }
    /* without a store, no store metrics */
    assert_null(strstr(s, "alertmap_store_"));
    /* no request yet: no request samples */
    assert_null(strstr(s, "alertmap_http_requests_total{"));
    /* zero-valued counters with fixed labels are present */
    assert_line(s, "alertmap_ingest_alerts_total{result=\"created\"} 0");
    assert_line(s, "alertmap_ingest_rejected_total{code=\"INVALID_SIGNATURE\"} 0");
    assert_line(s, "alertmap_reloads_total{result=\"failed\"} 0");
    free(s);
}

static void label_escaping(void **state)
{
    (void)state;
    am_buf_t b;
    am_buf_init(&b, 0);
    glue_metrics_label_value(&b, "a\\b\"c\nd/e{f}");
    char *s = am_buf_steal(&b);
    assert_string_equal(s, "a\\\\b\\\"c\\nd/e{f}");
    free(s);
    am_buf_init(&b, 0);
    glue_metrics_label_value(&b, "");
    assert_int_equal(b.len, 0);
    am_buf_dispose(&b);
}

static void request_counters(void **state)
{
    (void)state;
    glue_metrics_request(GLUE_R_INGEST, 202, NULL);
    glue_metrics_request(GLUE_R_INGEST, 202, NULL);
    glue_metrics_request(GLUE_R_INGEST, 401, "INVALID_SIGNATURE");
    glue_metrics_request(GLUE_R_INGEST, 400, "INVALID_JSON");
    glue_metrics_request(GLUE_R_INGEST, 404, "UNKNOWN_SOURCE");
    glue_metrics_request(GLUE_R_INGEST, 422, "SOMETHING_NEW");
    glue_metrics_request(GLUE_R_NONE, 404, "NOT_FOUND");
    glue_metrics_request(GLUE_R_HEALTHZ, 200, NULL);
    glue_metrics_request(GLUE_R_METRICS, 200, NULL);
    glue_metrics_request(GLUE_R_ALERT, 409, NULL);
    glue_metrics_request(GLUE_R_SOURCE_TEST, 400, "INVALID_JSON");
    glue_metrics_request(GLUE_R_SOURCES, 42, NULL); /* out of range */
    glue_metrics_ingested(3, 1);
    glue_metrics_ingested(0, 2);
    char *s = render(NULL);
    assert_line(s, "alertmap_http_requests_total{route=\"ingest\",code=\"202\"} 2");
    assert_line(s, "alertmap_http_requests_total{route=\"ingest\",code=\"401\"} 1");
    assert_line(s, "alertmap_http_requests_total{route=\"other\",code=\"404\"} 1");
    assert_line(s, "alertmap_http_requests_total{route=\"healthz\",code=\"200\"} 1");
    assert_line(s, "alertmap_http_requests_total{route=\"metrics\",code=\"200\"} 1");
    assert_line(s, "alertmap_http_requests_total{route=\"alert\",code=\"409\"} 1");
    assert_line(s, "alertmap_http_requests_total{route=\"source_test\",code=\"400\"} 1");
    assert_line(s, "alertmap_http_requests_total{route=\"sources\",code=\"599\"} 1");
    assert_null(strstr(s, "code=\"500\""));
    assert_line(s, "alertmap_ingest_alerts_total{result=\"created\"} 3");
    assert_line(s, "alertmap_ingest_alerts_total{result=\"deduplicated\"} 3");
    /* rejections count on the ingest route only (not the dry run) */
    assert_line(s, "alertmap_ingest_rejected_total{code=\"INVALID_SIGNATURE\"} 1");
    assert_line(s, "alertmap_ingest_rejected_total{code=\"INVALID_JSON\"} 1");
    assert_line(s, "alertmap_ingest_rejected_total{code=\"UNKNOWN_SOURCE\"} 1");
    assert_line(s, "alertmap_ingest_rejected_total{code=\"OTHER\"} 1");
    assert_line(s, "alertmap_ingest_rejected_total{code=\"PAYLOAD_TOO_LARGE\"} 0");
    free(s);
    assert_string_equal(glue_metrics_route_label(GLUE_R_ALERTS), "alerts");
    assert_string_equal(glue_metrics_route_label((glue_route_kind_t)99), "other");
}

static void mappings_and_times(void **state)
{
    (void)state;
    glue_metrics_start(INT64_C(1700000000250000));
    glue_metrics_mappings(false, true, 5, INT64_C(1700000001000000));
    char *s = render(NULL);
    assert_line(s, "alertmap_mappings_loaded 5");
    assert_line(s, "alertmap_reloads_total{result=\"ok\"} 0");
    assert_line(s, "alertmap_start_time_seconds 1700000000.250000");
    assert_line(s, "alertmap_reload_last_success_timestamp_seconds 1700000001.000000");
    free(s);
    /* a failed reload keeps the set, its count and its time */
    glue_metrics_mappings(true, false, 0, INT64_C(1700000002000000));
    glue_metrics_mappings(true, true, 6, INT64_C(1700000003000007));
    glue_metrics_mappings(true, false, 0, INT64_C(1700000004000000));
    s = render(NULL);
    assert_line(s, "alertmap_mappings_loaded 6");
    assert_line(s, "alertmap_reloads_total{result=\"ok\"} 1");
    assert_line(s, "alertmap_reloads_total{result=\"failed\"} 2");
    assert_line(s, "alertmap_reload_last_success_timestamp_seconds 1700000003.000007");
    free(s);
}

static void store_counters(void **state)
{
    (void)state;
    store_stats_t st = {.transactions = 11,
                        .batches_failed = 2,
                        .requests_ok = 30,
                        .requests_failed = 4,
                        .alerts_inserted = 25,
                        .alerts_deduplicated = 7,
                        .queries = 9,
                        .reconnects = 3,
                        .queue_depth = 17};
    char *s = render(&st);
    assert_line(s, "# TYPE alertmap_store_transactions_total counter");
    assert_line(s, "alertmap_store_transactions_total 11");
    assert_line(s, "alertmap_store_batches_failed_total 2");
    assert_line(s, "alertmap_store_requests_total{result=\"ok\"} 30");
    assert_line(s, "alertmap_store_requests_total{result=\"failed\"} 4");
    assert_line(s, "alertmap_store_alerts_inserted_total 25");
    assert_line(s, "alertmap_store_alerts_deduplicated_total 7");
    assert_line(s, "alertmap_store_queries_total 9");
    assert_line(s, "alertmap_store_reconnects_total 3");
    assert_line(s, "# TYPE alertmap_store_queue_depth gauge");
    assert_line(s, "alertmap_store_queue_depth 17");
    free(s);
}

static void render_out_of_room(void **state)
{
    (void)state;
    /* a bounded buffer too small for the text: the failure is reported */
    am_buf_t b;
    am_buf_init(&b, 64);
    assert_int_equal(glue_metrics_render(&b, NULL), AM_ELIMIT);
    am_buf_dispose(&b);
}

static void route_and_method(void **state)
{
    (void)state;
    glue_route_t r;
    assert_true(glue_route_match(&r, "/metrics", 8));
    assert_int_equal(r.kind, GLUE_R_METRICS);
    assert_false(glue_route_match(&r, "/metrics/", 9));
    assert_false(glue_route_match(&r, "/v1/metrics", 11));
    assert_true(glue_route_allows(GLUE_R_METRICS, "GET", 3));
    assert_false(glue_route_allows(GLUE_R_METRICS, "POST", 4));
    assert_string_equal(glue_route_allow_header(GLUE_R_METRICS), "GET");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(help_and_type_lines, setup),
        cmocka_unit_test_setup(label_escaping, setup),
        cmocka_unit_test_setup(request_counters, setup),
        cmocka_unit_test_setup(mappings_and_times, setup),
        cmocka_unit_test_setup(store_counters, setup),
        cmocka_unit_test_setup(render_out_of_room, setup),
        cmocka_unit_test_setup(route_and_method, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
