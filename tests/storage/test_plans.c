/* tests/storage/test_plans.c - the read API stays fast as the table grows:
 * on a table of 200,000 alerts (analyzed, so that the planner knows its
 * size), every list filter and the cursor are served from an index, never by
 * a sequential scan nor a sort of the matching rows; the dedup lookup of the
 * writer uses the day-led fingerprint index. */
#include "helpers.h"

#include "store_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_ci;
static PGconn *g_db;

enum { ROWS = 200000 };

static int setup(void **state)
{
    (void)state;
    g_db = th_connect(g_ci);
    /* one big source and ten small ones (1 % each), six severities
     * (Critical rare), mostly Open; ingested over the last 200,000 seconds.
     * A filter on a common value is served best by the time index with a
     * filter (the planner's choice); a rare value needs its own index. */
    th_int(g_db,
           "INSERT INTO alerts (title, severity, occurred_at, source_name, raw_payload,"
           " fingerprint, status, close_classification, ingested_at)"
           " SELECT 'alert ' || g,"
           "  (ARRAY['Pending','Informational','Low','Medium','High','Critical'])"
           "   [CASE WHEN g % 1000 = 0 THEN 6 ELSE 1 + g % 5 END],"
           "  now() - g * interval '1 second',"
           "  CASE WHEN g % 100 < 90 THEN 'source0' ELSE 'source' || (g % 20) END,"
           "  '{\"k\":1}'::jsonb,"
           "  md5(g::text), CASE WHEN g % 50 = 0 THEN 'Closed' WHEN g % 7 = 0 THEN"
           "  'Triaging' ELSE 'Open' END,"
           "  CASE WHEN g % 50 = 0 THEN 'false_positive' END, now() - g * interval '1 second'"
           " FROM generate_series(1, 200000) g",
           0);
    /* then the newest 20,000 alerts all of one busy source, High and
     * Triaging: source0, Critical and Open are common overall but absent
     * from the newest rows, which walking the time index and filtering
     * would read first (the planner's choice before the filter's index was
     * imposed; docs/performance.md "Growth") */
    th_int(g_db,
           "INSERT INTO alerts (title, severity, occurred_at, source_name, raw_payload,"
           " fingerprint, status, ingested_at)"
           " SELECT 'busy ' || g, 'High', now(), 'busy', '{\"k\":1}'::jsonb, md5('b' || g),"
           "  'Triaging', now() + g * interval '1 millisecond'"
           " FROM generate_series(1, 20000) g",
           0);
    th_int(g_db, "ANALYZE alerts", 0);
    /* and after the ANALYZE, 20,000 alerts of a source that started
     * sending since (autovacuum kept off, so the statistics never see
     * it): the planner thinks it has no rows and would read them all
     * through a bitmap and sort them */
    th_int(g_db, "ALTER TABLE alerts SET (autovacuum_enabled = off)", 0);
    th_int(g_db,
           "INSERT INTO alerts (title, severity, occurred_at, source_name, raw_payload,"
           " fingerprint, status, ingested_at)"
           " SELECT 'late ' || g, 'Pending', now(), 'late', '{\"k\":1}'::jsonb, md5('l' || g),"
           "  'Open', now() + interval '1 minute' + g * interval '1 millisecond'"
           " FROM generate_series(1, 20000) g",
           0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    PQfinish(g_db);
    return 0;
}

/* Whether plan reads an index with all three filters as its conditions
 * (alerts_triage_idx, or its copy on a temporary table, named by
 * PostgreSQL). */
static bool triage_scan(const char *plan)
{
    const char *c = strstr(plan, "Index Cond: ");
    if (c == NULL)
        return false;
    size_t n = strcspn(c, "\n");
    char line[512];
    snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) ? n : sizeof(line) - 1), c);
    return strstr(line, "source_name") && strstr(line, "severity") && strstr(line, "status");
}

/* The plan of q; fails the test when it reads the table sequentially or
 * sorts, or does not use the index named want. want NULL: several filters,
 * where the planner may also read the rows of another filter's index and
 * sort them (when its statistics say the combination is rare), but never
 * walk the time index. */
static void check_plan(const store_query_t *q, const char *want)
{
    char *plan = NULL;
    assert_int_equal(store_alert_list_explain(g_db, q, &plan), AM_OK);
    bool ok = strstr(plan, "Seq Scan") == NULL && strstr(plan, "Index") != NULL &&
              (want == NULL ? strstr(plan, "alerts_ingested_idx") == NULL
                            : strstr(plan, "Sort") == NULL && strstr(plan, want) != NULL);
    if (!ok)
        fail_msg("want an index scan%s%s, got:\n%s", want ? " on " : "", want ? want : "", plan);
    free(plan);
}

static void test_list_plans(void **state)
{
    (void)state;
    char cursor[64];
    store_cursor_encode(cursor, (am_now_us() - 100000 * INT64_C(1000000)), 100000);
    /* every filtered list is read from its filter's index, whatever the
     * value's frequency: a common value absent from the newest rows is no
     * slower; of several filters, the first of severity, source_name,
     * status, unless the planner finds the combination rare */
    const struct {
        store_query_t q;
        const char *index;
    } cases[] = {
        {{.kind = STORE_Q_LIST_ALERTS}, "alerts_ingested_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .limit = 500}, "alerts_ingested_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .cursor = cursor}, "alerts_ingested_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .source_name = "source17"}, "alerts_source_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .source_name = "source17", .cursor = cursor},
         "alerts_source_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .source_name = "source0"}, "alerts_source_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .source_name = "source0", .cursor = cursor},
         "alerts_source_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .source_name = "busy"}, "alerts_source_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .source_name = "late"}, "alerts_source_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .severity = "Pending"}, "alerts_severity_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .severity = "Critical"}, "alerts_severity_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .severity = "Critical", .cursor = cursor},
         "alerts_severity_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .severity = "Low"}, "alerts_severity_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .severity = "High", .cursor = cursor},
         "alerts_severity_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .status = "Closed"}, "alerts_status_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .status = "Closed", .cursor = cursor}, "alerts_status_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .status = "Open"}, "alerts_status_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .status = "Open", .cursor = cursor}, "alerts_status_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .since = "2020-01-01T00:00:00Z"}, "alerts_ingested_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .since = "2020-01-01T00:00:00Z", .source_name = "source0"},
         "alerts_source_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .source_name = "source0", .status = "Open"},
         "alerts_source_idx"},
        /* all three: the triage index, exact, whatever the combination */
        {{.kind = STORE_Q_LIST_ALERTS,
          .source_name = "source3",
          .severity = "Critical",
          .status = "Closed",
          .cursor = cursor},
         "alerts_triage_idx"},
        {{.kind = STORE_Q_LIST_ALERTS,
          .source_name = "source3",
          .severity = "Critical",
          .status = "Closed"},
         "alerts_triage_idx"},
        {{.kind = STORE_Q_LIST_ALERTS,
          .source_name = "source0",
          .severity = "Low",
          .status = "Open"},
         "alerts_triage_idx"},
        {{.kind = STORE_Q_LIST_ALERTS, .source_name = "busy", .severity = "Critical"}, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_plan(&cases[i].q, cases[i].index);
}

/* The rows a plan read: a filtered page reads its limit + 1 entries of the
 * filter's index, not the newer alerts of other values. */
static void test_list_reads_only_matches(void **state)
{
    (void)state;
    const store_query_t qs[] = {
        {.kind = STORE_Q_LIST_ALERTS, .source_name = "source0"},
        {.kind = STORE_Q_LIST_ALERTS, .severity = "Low"},
        {.kind = STORE_Q_LIST_ALERTS, .status = "Open"},
        {.kind = STORE_Q_LIST_ALERTS, .source_name = "late"},
        {.kind = STORE_Q_LIST_ALERTS,
         .source_name = "source0",
         .severity = "Low",
         .status = "Open"},
    };
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        char *plan = NULL;
        assert_int_equal(store_alert_list_explain_analyze(g_db, &qs[i], &plan), AM_OK);
        if (strstr(plan, "Rows Removed by Filter") != NULL ||
            strstr(plan, "rows=51 loops=1") == NULL)
            fail_msg("a filtered page read more than its rows:\n%s", plan);
        free(plan);
    }
}

/* A table whose statistics do not know its rows yet (never analyzed, as
 * right after installation; likewise a source that started sending after
 * the last ANALYZE): the planner would read the 12,000 matches through a
 * bitmap and sort them; a single-filter page still walks the index. The
 * temporary table shadows public.alerts on this connection (pg_temp comes
 * first in the search path) and is dropped at the end. */
static void test_list_plan_without_statistics(void **state)
{
    (void)state;
    th_int(g_db, "CREATE TEMP TABLE alerts (LIKE public.alerts INCLUDING ALL)", 0);
    th_int(g_db,
           "INSERT INTO alerts (title, severity, occurred_at, source_name, raw_payload,"
           " fingerprint, status)"
           " SELECT 'fresh ' || g, 'High', now(), 'elastic', '{}', md5(g::text), 'Open'"
           " FROM generate_series(1, 12000) g",
           0);
    const store_query_t qs[] = {
        {.kind = STORE_Q_LIST_ALERTS, .severity = "High"},
        {.kind = STORE_Q_LIST_ALERTS, .source_name = "elastic"},
        {.kind = STORE_Q_LIST_ALERTS, .status = "Open"},
        /* all three: the triage index (two: the bounded walk of the first
         * one's index) */
        {.kind = STORE_Q_LIST_ALERTS,
         .severity = "High",
         .source_name = "elastic",
         .status = "Open"},
        {.kind = STORE_Q_LIST_ALERTS, .source_name = "elastic", .status = "Open"},
    };
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        char *plan = NULL;
        assert_int_equal(store_alert_list_explain(g_db, &qs[i], &plan), AM_OK);
        if (strstr(plan, "Sort") != NULL || strstr(plan, "Bitmap") != NULL ||
            strstr(plan, "Index Scan") == NULL || (i == 3 && !triage_scan(plan)))
            fail_msg("want an index walk without a sort, got:\n%s", plan);
        free(plan);
    }
    /* the page of a common combination comes from the walk alone: 51 rows
     * of the index read, not the 12,000 matches */
    char *plan = NULL;
    assert_int_equal(store_alert_list_explain_analyze(g_db, &qs[3], &plan), AM_OK);
    if (strstr(plan, "rows=51 loops=1") == NULL)
        fail_msg("a common combination read more than its page:\n%s", plan);
    free(plan);
    /* a rare combination, older than the walk's bound: the page is asked
     * again without it and still holds every match, in order */
    th_int(g_db,
           "INSERT INTO alerts (title, severity, occurred_at, source_name, raw_payload,"
           " fingerprint, status, close_classification, ingested_at)"
           " SELECT 'old ' || g, 'High', now(), 'elastic', '{}', md5('old' || g), 'Closed',"
           "  'false_positive', now() - interval '1 day' - g * interval '1 second'"
           " FROM generate_series(1, 5) g",
           0);
    store_query_t rare = {.kind = STORE_Q_LIST_ALERTS, .severity = "High", .status = "Closed"};
    reply_buf_t out = {0};
    assert_int_equal(store_alert_list(g_db, &rare, &out), AM_OK);
    assert_int_equal(out.status, 200);
    json_t *j = json_loads(out.body, 0, NULL);
    assert_non_null(j);
    json_t *data = json_object_get(j, "data");
    assert_int_equal(json_array_size(data), 5);
    for (size_t i = 0; i < 5; i++) {
        char want[16];
        snprintf(want, sizeof(want), "old %zu", i + 1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(data, i), "title")),
                            want);
    }
    assert_true(json_is_null(json_object_get(json_object_get(j, "meta"), "next_cursor")));
    json_decref(j);
    free(out.body);
    out = (reply_buf_t){0};
    /* and a page that ends inside the walk gets a cursor that goes on */
    store_query_t common = {.kind = STORE_Q_LIST_ALERTS,
                            .severity = "High",
                            .status = "Open",
                            .source_name = "elastic",
                            .limit = 7};
    assert_int_equal(store_alert_list(g_db, &common, &out), AM_OK);
    j = json_loads(out.body, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 7);
    assert_true(json_is_string(json_object_get(json_object_get(j, "meta"), "next_cursor")));
    json_decref(j);
    free(out.body);
    th_int(g_db, "DROP TABLE pg_temp.alerts", 0);
}

static void test_dedup_lookup_plan(void **state)
{
    (void)state;
    /* the lookup of batch.c's INGEST_SQL, with the 24 h window and with a
     * week: served by the day-led fingerprint index, one probe per day,
     * never by walking the time index and filtering on the fingerprint
     * (that would read a day of alerts per lookup) */
    static const char *const sql[] = {
        "EXPLAIN " STORE_DEDUP_LOOKUP("md5('7')", "86400"),
        "EXPLAIN " STORE_DEDUP_LOOKUP("md5('7')", "604800"),
    };
    for (size_t k = 0; k < sizeof(sql) / sizeof(sql[0]); k++) {
        PGresult *r = PQexec(g_db, sql[k]);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        bool idx = false, other = false;
        for (int i = 0; i < PQntuples(r); i++) {
            const char *line = PQgetvalue(r, i, 0);
            idx = idx || strstr(line, "alerts_fingerprint_day_idx") != NULL;
            other = other || strstr(line, "alerts_ingested_idx") != NULL ||
                    strstr(line, "Seq Scan on alerts") != NULL;
        }
        if (!idx || other)
            fail_msg("the dedup lookup is not served by the day-led fingerprint index: %s",
                     PQgetvalue(r, 0, 0));
        PQclear(r);
    }
}

/* The claims of storage/enrich.c (the inner SELECTs, as written there:
 * CLAIM_DUE's two arms and the dispatch claim): with many finished jobs and
 * delivered dispatches, the claimable ids come from the partial indexes of
 * open rows (001/005 for jobs, 008_jobs_claim.sql for deliveries), not from
 * walking the primary key past every finished row. */
static void test_claim_plans(void **state)
{
    (void)state;
    th_int(g_db,
           "INSERT INTO enrichment_jobs (alert_id, status, finished_at)"
           " SELECT g, 'done', now() FROM generate_series(1, 200000) g",
           0);
    th_int(g_db, "INSERT INTO enrichment_jobs (alert_id) SELECT g FROM generate_series(1, 3) g", 0);
    th_int(g_db,
           "INSERT INTO dispatch_deliveries (alert_id, target, status)"
           " SELECT id, 'soc', 'delivered' FROM alerts WHERE id <= 100000",
           0);
    th_int(g_db,
           "INSERT INTO dispatch_deliveries (alert_id, target) SELECT id, 'pager' FROM alerts"
           " WHERE id <= 3",
           0);
    th_int(g_db, "ANALYZE enrichment_jobs", 0);
    th_int(g_db, "ANALYZE dispatch_deliveries", 0);
    const struct {
        const char *sql, *index;
    } cases[] = {
        {"EXPLAIN SELECT id, alert_id FROM enrichment_jobs"
         " WHERE status = 'queued' AND next_attempt_at <= now()"
         " ORDER BY id LIMIT 32 FOR UPDATE SKIP LOCKED",
         "enrichment_jobs_queued_idx"},
        {"EXPLAIN SELECT id, alert_id FROM enrichment_jobs"
         " WHERE status = 'running' AND lease_until < now()"
         " ORDER BY lease_until LIMIT 32 FOR UPDATE SKIP LOCKED",
         "enrichment_jobs_lease_idx"},
        {"EXPLAIN SELECT id FROM dispatch_deliveries"
         " WHERE (status = 'pending' AND next_attempt_at <= now())"
         " OR (status = 'sending' AND lease_until < now())"
         " ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1",
         "dispatch_deliveries_open_idx"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        PGresult *r = PQexec(g_db, cases[i].sql);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        bool idx = false, seq = false;
        for (int k = 0; k < PQntuples(r); k++) {
            idx = idx || strstr(PQgetvalue(r, k, 0), cases[i].index) != NULL;
            seq = seq || strstr(PQgetvalue(r, k, 0), "Seq Scan") != NULL;
        }
        if (!idx || seq)
            fail_msg("the claim does not use %s: %s", cases[i].index, PQgetvalue(r, 0, 0));
        PQclear(r);
    }
}

int main(void)
{
    g_ci = th_db_create("plans");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_plans),
        cmocka_unit_test(test_list_reads_only_matches),
        cmocka_unit_test(test_list_plan_without_statistics),
        cmocka_unit_test(test_dedup_lookup_plan),
        cmocka_unit_test(test_claim_plans),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    th_db_drop();
    return rc;
}
