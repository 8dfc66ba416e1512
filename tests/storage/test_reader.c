/* tests/storage/test_reader.c - the read API: GET, LIST (filters, cursor
 * pagination, bad parameters), PATCH (lifecycle, 409, bad bodies), and the
 * answers without a database. */
#include "helpers.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *g_ci;
static store_t *g_store;
static PGconn *g_db;

static int setup(void **state)
{
    (void)state;
    store_options_t o = {.conninfo = g_ci, .dedup_window_s = 3600, .readers = 3};
    g_store = store_new(&o);
    g_db = th_connect(g_ci);
    return g_store ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    store_free(g_store);
    PQfinish(g_db);
    return 0;
}

/* Ingests one alert and returns its uuid (static buffer per call site). */
static void ingest(store_alert_t *a, char uuid[37])
{
    th_ingest_t w;
    assert_int_equal(th_ingest_sync(g_store, a, 1, &w), STORE_OK);
    memcpy(uuid, w.out[0].uuid, 37);
    th_ingest_dispose(&w);
}

/* Runs a query; returns the parsed body (new reference) and the status. */
static json_t *query(const store_query_t *q, int *status)
{
    th_reply_t r;
    th_query(g_store, q, &r);
    *status = r.status;
    json_error_t e;
    json_t *j = json_loads(r.body, JSON_PRESERVE_ORDER, &e);
    if (j == NULL)
        fail_msg("reply is not JSON: %s (%s)", r.body, e.text);
    th_reply_dispose(&r);
    return j;
}

static json_t *get(const char *uuid, int *status)
{
    store_query_t q = {.kind = STORE_Q_GET_ALERT, .uuid = uuid};
    return query(&q, status);
}

static json_t *patch(const char *uuid, const char *body, int *status)
{
    store_query_t q = {.kind = STORE_Q_PATCH_ALERT, .uuid = uuid, .body = body};
    return query(&q, status);
}

static const char *err_code(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

static const char *err_msg(json_t *j)
{
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    return m ? m : "";
}

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void test_get_alert(void **state)
{
    (void)state;
    char uuid[37];
    store_alert_t a = th_sample_alert("Read me", "fp-read-me");
    ingest(&a, uuid);
    int st;
    json_t *j = get(uuid, &st);
    assert_int_equal(st, 200);
    json_t *d = json_object_get(j, "data");
    assert_true(json_is_object(d));
    /* keys in the documented order */
    static const char *const keys[] = {"uuid",
                                       "title",
                                       "severity",
                                       "occurred_at",
                                       "occurred_at_fallback",
                                       "source_name",
                                       "description",
                                       "status",
                                       "enrichment_status",
                                       "verdict",
                                       "enrichment_error",
                                       "tags",
                                       "detection_rule_ref",
                                       "src_ip",
                                       "fingerprint",
                                       "duplicate_count",
                                       "last_duplicate_at",
                                       "ingested_at",
                                       "enriched_at",
                                       "updated_at",
                                       "triaged_at",
                                       "escalated_at",
                                       "closed_at",
                                       "close_classification",
                                       "updated_by",
                                       "raw_payload",
                                       "indicators"};
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(d, k, v)
    {
        assert_true(i < sizeof(keys) / sizeof(keys[0]));
        assert_string_equal(k, keys[i]);
        i++;
    }
    assert_int_equal(i, sizeof(keys) / sizeof(keys[0]));
    assert_string_equal(str(d, "uuid"), uuid);
    assert_true(json_is_null(json_object_get(d, "updated_by"))); /* no PATCH yet */
    assert_string_equal(str(d, "title"), "Read me");
    assert_string_equal(str(d, "severity"), "High");
    assert_string_equal(str(d, "occurred_at"), "2024-05-01T10:00:00.123456Z");
    assert_true(json_is_false(json_object_get(d, "occurred_at_fallback")));
    assert_string_equal(str(d, "source_name"), "sentinel");
    assert_string_equal(str(d, "description"), "Suspicious sign-in");
    assert_string_equal(str(d, "status"), "Open");
    assert_string_equal(str(d, "enrichment_status"), "Pending");
    json_t *tags = json_object_get(d, "tags");
    assert_int_equal(json_array_size(tags), 2);
    assert_string_equal(json_string_value(json_array_get(tags, 1)), "quote\"and\\back");
    assert_string_equal(str(d, "detection_rule_ref"), "rule-42");
    assert_string_equal(str(d, "src_ip"), "203.0.113.9");
    assert_string_equal(str(d, "fingerprint"), "fp-read-me");
    assert_int_equal(json_integer_value(json_object_get(d, "duplicate_count")), 0);
    const char *ing = str(d, "ingested_at");
    assert_non_null(ing);
    assert_int_equal(ing[strlen(ing) - 1], 'Z');
    assert_true(json_is_null(json_object_get(d, "triaged_at")));
    assert_true(json_is_null(json_object_get(d, "close_classification")));
    json_t *raw = json_loads(a.raw_payload, 0, NULL);
    assert_true(json_equal(raw, json_object_get(d, "raw_payload")));
    json_decref(raw);
    json_t *ind = json_object_get(d, "indicators");
    assert_int_equal(json_array_size(ind), 2);
    assert_string_equal(str(json_array_get(ind, 0), "type"), "ip");
    assert_string_equal(str(json_array_get(ind, 0), "value"), "203.0.113.9");
    assert_string_equal(str(json_array_get(ind, 0), "source_field"), "src_ip");
    assert_string_equal(str(json_array_get(ind, 1), "type"), "domain");
    assert_string_equal(str(json_array_get(ind, 1), "source_field"), "description");
    /* not enriched yet: no verdicts, no results */
    assert_true(json_is_null(json_object_get(d, "verdict")));
    assert_true(json_is_null(json_object_get(d, "enrichment_error")));
    assert_true(json_is_null(json_object_get(d, "enriched_at")));
    for (size_t x = 0; x < 2; x++) {
        json_t *one = json_array_get(ind, x);
        assert_true(json_is_null(json_object_get(one, "verdict")));
        assert_int_equal(json_array_size(json_object_get(one, "enrichment")), 0);
        assert_true(json_is_array(json_object_get(one, "enrichment")));
    }
    json_decref(j);
}

/* raw_payload is stored as sent (json); a pretty-printed body still comes
 * back as one line with the same value, line breaks inside strings kept. */
static void test_get_pretty_payload_one_line(void **state)
{
    (void)state;
    char uuid[37];
    store_alert_t a = th_sample_alert("Pretty payload", "fp-pretty");
    a.raw_payload = "{\r\n  \"a\": \"line\\nbreak\",\n  \"b\": [\n    1,\n    2\n  ]\n}\n";
    ingest(&a, uuid);
    th_reply_t r;
    store_query_t q = {.kind = STORE_Q_GET_ALERT, .uuid = uuid};
    th_query(g_store, &q, &r);
    assert_int_equal(r.status, 200);
    assert_null(strchr(r.body, '\n'));
    assert_null(strchr(r.body, '\r'));
    json_t *j = json_loads(r.body, 0, NULL);
    json_t *want = json_loads(a.raw_payload, 0, NULL);
    assert_true(json_equal(want, json_object_get(json_object_get(j, "data"), "raw_payload")));
    json_decref(want);
    json_decref(j);
    th_reply_dispose(&r);
}

static void test_get_optional_fields_in_order(void **state)
{
    (void)state;
    char uuid[37];
    store_alert_t a = th_sample_alert("Fields", "fp-fields");
    a.fields_json = "{\"http_url\":\"http://x.example/\",\"dst_ip\":\"10.0.0.1\",\"src_ip\":"
                    "\"10.0.0.2\",\"custom_note\":\"kept\"}";
    a.nindicators = 0;
    a.description = NULL;
    ingest(&a, uuid);
    int st;
    json_t *j = get(uuid, &st);
    assert_int_equal(st, 200);
    json_t *d = json_object_get(j, "data");
    const char *order[] = {"src_ip", "dst_ip", "http_url", "custom_note"};
    size_t i = 0;
    const char *k;
    json_t *v;
    bool in = false;
    json_object_foreach(d, k, v)
    {
        if (strcmp(k, "detection_rule_ref") == 0) {
            in = true;
            continue;
        }
        if (strcmp(k, "fingerprint") == 0)
            in = false;
        if (in) {
            assert_true(i < 4);
            assert_string_equal(k, order[i++]);
        }
    }
    assert_int_equal(i, 4);
    assert_true(json_is_null(json_object_get(d, "description")));
    assert_int_equal(json_array_size(json_object_get(d, "indicators")), 0);
    json_decref(j);
}

static void test_get_not_found_and_bad_uuid(void **state)
{
    (void)state;
    int st;
    json_t *j = get("00000000-0000-4000-8000-000000000000", &st);
    assert_int_equal(st, 404);
    assert_string_equal(err_code(j), "NOT_FOUND");
    json_decref(j);
    const char *bad[] = {"nope", "", "00000000-0000-4000-8000-00000000000", "'; DROP TABLE x"};
    for (size_t i = 0; i < 4; i++) {
        j = get(bad[i], &st);
        assert_int_equal(st, 400);
        assert_string_equal(err_code(j), "INVALID_UUID");
        json_decref(j);
    }
    store_query_t q = {.kind = STORE_Q_GET_ALERT, .uuid = NULL};
    j = query(&q, &st);
    assert_int_equal(st, 400);
    json_decref(j);
}

/* ---- list ---------------------------------------------------------------------- */

static void ingest_as(const char *title, const char *source, const char *severity)
{
    char fp[128], uuid[37];
    snprintf(fp, sizeof(fp), "fp-list-%s", title);
    store_alert_t a = th_sample_alert(title, fp);
    a.source_name = source;
    a.severity = severity;
    ingest(&a, uuid);
}

static json_t *list(const store_query_t *q, int *status)
{
    store_query_t l = *q;
    l.kind = STORE_Q_LIST_ALERTS;
    return query(&l, status);
}

static void test_list_filters(void **state)
{
    (void)state;
    ingest_as("L1", "elastic", "Low");
    ingest_as("L2", "elastic", "Critical");
    ingest_as("L3", "splunk", "Low");
    int st;
    json_t *j = list(&(store_query_t){.source_name = "elastic"}, &st);
    assert_int_equal(st, 200);
    json_t *data = json_object_get(j, "data");
    assert_int_equal(json_array_size(data), 2);
    assert_string_equal(str(json_array_get(data, 0), "title"), "L2"); /* newest first */
    assert_string_equal(str(json_array_get(data, 1), "title"), "L1");
    assert_null(json_object_get(json_array_get(data, 0), "raw_payload"));
    assert_null(json_object_get(json_array_get(data, 0), "indicators"));
    assert_non_null(json_object_get(json_array_get(data, 0), "uuid"));
    assert_true(json_is_null(json_object_get(json_object_get(j, "meta"), "next_cursor")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "meta"), "limit")), 50);
    json_decref(j);

    j = list(&(store_query_t){.severity = "Low"}, &st);
    data = json_object_get(j, "data");
    size_t n = json_array_size(data);
    assert_true(n >= 2);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(str(json_array_get(data, i), "severity"), "Low");
    json_decref(j);

    j = list(&(store_query_t){.severity = "Low", .source_name = "elastic", .status = "Open"}, &st);
    data = json_object_get(j, "data");
    assert_int_equal(json_array_size(data), 1);
    assert_string_equal(str(json_array_get(data, 0), "title"), "L1");
    json_decref(j);

    j = list(&(store_query_t){.status = "Closed", .source_name = "elastic"}, &st);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 0);
    json_decref(j);

    j = list(&(store_query_t){.since = "2999-01-01T00:00:00Z"}, &st);
    assert_int_equal(st, 200);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 0);
    json_decref(j);
    j = list(&(store_query_t){.since = "2000-01-01T00:00:00+01:00", .source_name = "splunk"}, &st);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 1);
    json_decref(j);
    /* an empty value is the same as no filter */
    j = list(&(store_query_t){.source_name = "", .severity = "", .limit_text = "2"}, &st);
    assert_int_equal(st, 200);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 2);
    json_decref(j);
}

static void expect_bad(store_query_t q, const char *name)
{
    int st;
    json_t *j = list(&q, &st);
    assert_int_equal(st, 400);
    assert_string_equal(err_code(j), "INVALID_PARAMETER");
    if (strncmp(err_msg(j), name, strlen(name)) != 0)
        fail_msg("message \"%s\" does not name %s", err_msg(j), name);
    json_decref(j);
}

static void test_list_bad_parameters(void **state)
{
    (void)state;
    expect_bad((store_query_t){.severity = "Severe"}, "severity");
    expect_bad((store_query_t){.severity = "high"}, "severity");
    expect_bad((store_query_t){.status = "Done"}, "status");
    expect_bad((store_query_t){.since = "yesterday"}, "since");
    expect_bad((store_query_t){.since = "2024-05-01 10:00"}, "since");
    expect_bad((store_query_t){.cursor = "not-a-cursor!"}, "cursor");
    expect_bad((store_query_t){.cursor = "MTIz"}, "cursor");
    expect_bad((store_query_t){.limit_text = "0"}, "limit");
    expect_bad((store_query_t){.limit_text = "501"}, "limit");
    expect_bad((store_query_t){.limit_text = "abc"}, "limit");
    expect_bad((store_query_t){.limit_text = "-5"}, "limit");
    expect_bad((store_query_t){.limit_text = ""}, "limit");
    expect_bad((store_query_t){.limit = 501}, "limit");
    expect_bad((store_query_t){.limit = -1}, "limit");
    int st;
    json_t *j = list(&(store_query_t){.limit_text = "500"}, &st);
    assert_int_equal(st, 200);
    json_decref(j);
}

static void test_list_pagination(void **state)
{
    (void)state;
    /* 120 alerts in 3 requests of 40: alerts of one request share their
     * ingested_at, so the cursor must also order by id */
    enum { N = 120, PER = 40 };
    static char titles[N][32], fps[N][32];
    for (int r = 0; r < N / PER; r++) {
        store_alert_t a[PER];
        for (int i = 0; i < PER; i++) {
            int k = r * PER + i;
            snprintf(titles[k], sizeof(titles[k]), "Page %d", k);
            snprintf(fps[k], sizeof(fps[k]), "fp-page-%d", k);
            a[i] = th_sample_alert(titles[k], fps[k]);
            a[i].source_name = "pager";
        }
        th_ingest_t w;
        assert_int_equal(th_ingest_sync(g_store, a, PER, &w), STORE_OK);
        th_ingest_dispose(&w);
    }
    char cursor[128] = "";
    int seen = 0, pages = 0;
    for (;;) {
        store_query_t q = {
            .source_name = "pager", .limit_text = "50", .cursor = cursor[0] ? cursor : NULL};
        int st;
        json_t *j = list(&q, &st);
        assert_int_equal(st, 200);
        json_t *data = json_object_get(j, "data");
        size_t n = json_array_size(data);
        pages++;
        assert_int_equal(n, pages < 3 ? 50 : 20);
        for (size_t i = 0; i < n; i++) {
            char want[32];
            snprintf(want, sizeof(want), "Page %d", N - 1 - seen);
            assert_string_equal(str(json_array_get(data, i), "title"), want);
            seen++;
        }
        json_t *next = json_object_get(json_object_get(j, "meta"), "next_cursor");
        if (json_is_null(next)) {
            json_decref(j);
            break;
        }
        assert_true(json_is_string(next));
        snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
        json_decref(j);
        assert_true(pages < 5);
    }
    assert_int_equal(pages, 3);
    assert_int_equal(seen, N);
}

/* ---- patch ---------------------------------------------------------------------- */

static json_t *patch_ok(const char *uuid, const char *body)
{
    int st;
    json_t *j = patch(uuid, body, &st);
    if (st != 200)
        fail_msg("PATCH %s: %d %s", body, st, err_msg(j));
    return j;
}

static void patch_fails(const char *uuid, const char *body, int status, const char *code)
{
    int st;
    json_t *j = patch(uuid, body, &st);
    if (st != status || strcmp(err_code(j) ? err_code(j) : "", code) != 0)
        fail_msg("PATCH %s: got %d %s, want %d %s", body, st, err_code(j), status, code);
    json_decref(j);
}

static void test_patch_lifecycle(void **state)
{
    (void)state;
    char uuid[37];
    store_alert_t a = th_sample_alert("Lifecycle", "fp-lifecycle");
    ingest(&a, uuid);
    json_t *j = patch_ok(uuid, "{\"status\":\"Triaging\"}");
    json_t *d = json_object_get(j, "data");
    assert_string_equal(str(d, "status"), "Triaging");
    assert_true(json_is_string(json_object_get(d, "triaged_at")));
    assert_true(json_is_null(json_object_get(d, "escalated_at")));
    assert_int_equal(json_array_size(json_object_get(d, "indicators")), 2); /* full alert */
    char triaged[64];
    snprintf(triaged, sizeof(triaged), "%s", str(d, "triaged_at"));
    assert_string_equal(str(d, "updated_at"), triaged);
    json_decref(j);

    patch_fails(uuid, "{\"status\":\"Triaging\"}", 409, "INVALID_TRANSITION");
    patch_fails(uuid, "{\"status\":\"Open\"}", 409, "INVALID_TRANSITION");
    j = patch_ok(uuid, "{\"status\":\"Escalated\"}");
    d = json_object_get(j, "data");
    assert_string_equal(str(d, "status"), "Escalated");
    assert_string_equal(str(d, "triaged_at"), triaged); /* kept */
    assert_true(json_is_string(json_object_get(d, "escalated_at")));
    json_decref(j);
    patch_fails(uuid, "{\"status\":\"Triaging\"}", 409, "INVALID_TRANSITION");
    patch_fails(uuid, "{\"status\":\"Closed\"}", 422, "INVALID_BODY");
    patch_fails(uuid, "{\"status\":\"Closed\",\"close_classification\":\"maybe\"}", 422,
                "INVALID_BODY");
    j = patch_ok(uuid, "{\"status\":\"Closed\",\"close_classification\":\"true_positive\"}");
    d = json_object_get(j, "data");
    assert_string_equal(str(d, "status"), "Closed");
    assert_string_equal(str(d, "close_classification"), "true_positive");
    assert_true(json_is_string(json_object_get(d, "closed_at")));
    assert_true(json_is_string(json_object_get(d, "escalated_at")));
    json_decref(j);
    patch_fails(uuid, "{\"status\":\"Closed\",\"close_classification\":\"false_positive\"}", 409,
                "INVALID_TRANSITION");
    patch_fails(uuid, "{\"status\":\"Escalated\"}", 409, "INVALID_TRANSITION");
    patch_fails(uuid, "{\"status\":\"Open\"}", 409, "INVALID_TRANSITION");
    assert_int_equal(th_int(g_db,
                            "SELECT count(*) FROM alerts WHERE uuid = $1::uuid AND status ="
                            " 'Closed' AND closed_at >= escalated_at AND escalated_at >="
                            " triaged_at AND close_classification = 'true_positive'",
                            1, uuid),
                     1);

    /* Open -> Closed directly, and Open -> Escalated */
    char u2[37], u3[37];
    store_alert_t b = th_sample_alert("Lifecycle 2", "fp-lifecycle-2");
    ingest(&b, u2);
    j = patch_ok(u2, "{\"status\":\"Closed\",\"close_classification\":\"benign_positive\"}");
    assert_true(json_is_null(json_object_get(json_object_get(j, "data"), "triaged_at")));
    json_decref(j);
    store_alert_t c = th_sample_alert("Lifecycle 3", "fp-lifecycle-3");
    ingest(&c, u3);
    j = patch_ok(u3, "{\"status\":\"Escalated\",\"close_classification\":null}");
    json_decref(j);
}

static void test_patch_bad_requests(void **state)
{
    (void)state;
    char uuid[37];
    store_alert_t a = th_sample_alert("Patch errors", "fp-patch-errors");
    ingest(&a, uuid);
    patch_fails(uuid, "not json", 400, "INVALID_JSON");
    patch_fails(uuid, "", 400, "INVALID_JSON");
    patch_fails(uuid, "[1]", 422, "INVALID_BODY");
    patch_fails(uuid, "{}", 422, "INVALID_BODY");
    patch_fails(uuid, "{\"status\":\"Done\"}", 422, "INVALID_BODY");
    patch_fails(uuid, "{\"status\":7}", 422, "INVALID_BODY");
    patch_fails(uuid, "{\"status\":\"Triaging\",\"close_classification\":\"true_positive\"}", 422,
                "INVALID_BODY");
    patch_fails(uuid, "{\"status\":\"Triaging\",\"owner\":\"me\"}", 422, "INVALID_BODY");
    patch_fails(uuid, "{\"status\":\"Triaging\",\"status\":\"Closed\"}", 400, "INVALID_JSON");
    patch_fails("00000000-0000-4000-8000-000000000000", "{\"status\":\"Triaging\"}", 404,
                "NOT_FOUND");
    patch_fails("xyz", "{\"status\":\"Triaging\"}", 400, "INVALID_UUID");
    /* none of it changed the alert */
    assert_int_equal(th_int(g_db,
                            "SELECT count(*) FROM alerts WHERE uuid = $1::uuid AND status = 'Open'"
                            " AND updated_at = ingested_at",
                            1, uuid),
                     1);
}

typedef struct slow {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int done, ok;
} slow_t;

static void slow_cb(const store_reply_t *reply, void *ctx)
{
    slow_t *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->done++;
    w->ok += reply->http_status == 200;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

static void refused_cb(const store_reply_t *reply, void *ctx)
{
    (void)reply;
    (void)ctx;
    fail_msg("callback of a refused query was called");
}

/* A session of the store waits for a lock. */
static bool reader_waits_for_lock(void *ctx)
{
    (void)ctx;
    return th_int(g_db,
                  "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND"
                  " application_name = 'alertmapd' AND wait_event_type = 'Lock'",
                  0) > 0;
}

static void test_query_queue_bound(void **state)
{
    (void)state;
    char uuid[37];
    store_alert_t a = th_sample_alert("Slow patch", "fp-slow-patch");
    ingest(&a, uuid);
    store_options_t o = {.conninfo = g_ci, .readers = 1, .max_queue = 3};
    store_t *s = store_new(&o);
    assert_non_null(s);
    /* the only reader blocks on a row lock held here */
    PGconn *tx = th_connect(g_ci);
    th_int(tx, "BEGIN", 0);
    th_int(tx, "SELECT count(*) FROM (SELECT 1 FROM alerts WHERE uuid = $1::uuid FOR UPDATE) s", 1,
           uuid);
    slow_t w = {.done = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cond, NULL);
    store_query_t p = {
        .kind = STORE_Q_PATCH_ALERT, .uuid = uuid, .body = "{\"status\":\"Triaging\"}"};
    assert_int_equal(store_query(s, &p, slow_cb, &w), 0);
    /* until the reader waits */
    assert_true(th_wait_until(reader_waits_for_lock, NULL, 5000));
    store_query_t g = {.kind = STORE_Q_GET_ALERT, .uuid = uuid};
    for (int i = 0; i < 3; i++)
        assert_int_equal(store_query(s, &g, slow_cb, &w), 0);
    assert_int_equal(store_query(s, &g, refused_cb, NULL), AM_ELIMIT);
    th_int(tx, "COMMIT", 0);
    pthread_mutex_lock(&w.mu);
    while (w.done < 4)
        pthread_cond_wait(&w.cond, &w.mu);
    pthread_mutex_unlock(&w.mu);
    assert_int_equal(w.ok, 4);
    store_free(s);
    PQfinish(tx);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cond);
}

static void test_without_database(void **state)
{
    (void)state;
    store_options_t o = {.conninfo = "host=/nonexistent-alertmap-socket user=alertmap dbname=x",
                         .dedup_window_s = 60};
    store_t *s = store_new(&o);
    assert_non_null(s);
    th_reply_t r;
    store_query_t q = {.kind = STORE_Q_GET_ALERT, .uuid = "00000000-0000-4000-8000-000000000000"};
    th_query(s, &q, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"DATABASE_UNAVAILABLE\""));
    th_reply_dispose(&r);
    q.uuid = "bad";
    th_query(s, &q, &r); /* input errors need no database */
    assert_int_equal(r.status, 400);
    th_reply_dispose(&r);
    store_query_t l = {.kind = STORE_Q_LIST_ALERTS};
    th_query(s, &l, &r);
    assert_int_equal(r.status, 503);
    th_reply_dispose(&r);
    store_alert_t a = th_sample_alert("Nowhere", "fp-nowhere");
    th_ingest_t w;
    assert_int_equal(th_ingest_sync(s, &a, 1, &w), STORE_UNAVAILABLE);
    assert_true(strlen(w.message) > 0);
    th_ingest_dispose(&w);
    store_free(s);
}

int main(void)
{
    g_ci = th_db_create("reader");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_alert),
        cmocka_unit_test(test_get_pretty_payload_one_line),
        cmocka_unit_test(test_get_optional_fields_in_order),
        cmocka_unit_test(test_get_not_found_and_bad_uuid),
        cmocka_unit_test(test_list_filters),
        cmocka_unit_test(test_list_bad_parameters),
        cmocka_unit_test(test_list_pagination),
        cmocka_unit_test(test_patch_lifecycle),
        cmocka_unit_test(test_patch_bad_requests),
        cmocka_unit_test(test_query_queue_bound),
        cmocka_unit_test(test_without_database),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    th_db_drop();
    return rc;
}
