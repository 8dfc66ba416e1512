/* tests/storage/test_writer.c - the group-commit writer: rows written, links
 * in order, one job and a NOTIFY per alert, batching, dedup under
 * concurrency, per-request failure, input checks, shutdown with work queued. */
#include "helpers.h"

#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *g_ci;
static store_t *g_store; /* dedup window 1 h */
static PGconn *g_db;

static int setup(void **state)
{
    (void)state;
    /* one writer: the tests of batching count transactions */
    store_options_t o = {
        .conninfo = g_ci, .dedup_window_s = 3600, .readers = 1, .writers = 1, .max_batch = 256};
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

static bool is_uuid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash != (s[i] == '-'))
            return false;
    }
    return true;
}

/* The links of the alert with this uuid, in extraction order:
 * "position:type:value:source_field,..." ("(null)" for no source field). */
static char *links_of(const char *uuid)
{
    return th_str(g_db,
                  "SELECT string_agg(ai.position || ':' || i.type || ':' || i.value || ':'"
                  " || coalesce(ai.source_field, '(null)'), ',' ORDER BY ai.position)"
                  " FROM alerts a JOIN alert_indicators ai ON ai.alert_id = a.id"
                  " JOIN indicators i ON i.id = ai.indicator_id WHERE a.uuid = $1::uuid",
                  1, uuid);
}

static void test_ingest_one(void **state)
{
    (void)state;
    PGconn *l = th_connect(g_ci);
    th_int(l, "LISTEN alertmap_enrichment", 0);
    store_alert_t a = th_sample_alert("One alert", "fp-ingest-one");
    th_ingest_t w;
    assert_int_equal(th_ingest_sync(g_store, &a, 1, &w), STORE_OK);
    assert_int_equal(w.nalerts, 1);
    assert_true(is_uuid(w.out[0].uuid));
    assert_false(w.out[0].is_duplicate);
    assert_int_equal(w.out[0].duplicate_count, 0);
    const char *u = w.out[0].uuid;

    /* the row as stored */
    const char *q = "SELECT concat_ws('|', title, severity,"
                    " to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'),"
                    " occurred_at_fallback, source_name, description, status, enrichment_status,"
                    " detection_rule_ref, fingerprint, duplicate_count, fields->>'src_ip',"
                    " array_length(tags, 1), tags[2], closed_at IS NULL)"
                    " FROM alerts WHERE uuid = $1::uuid";
    char *row = th_str(g_db, q, 1, u);
    assert_string_equal(row, "One alert|High|2024-05-01T10:00:00.123456|f|sentinel|"
                             "Suspicious sign-in|Open|Pending|rule-42|fp-ingest-one|0|"
                             "203.0.113.9|2|quote\"and\\back|t");
    free(row);
    assert_int_equal(
        th_int(g_db,
               "SELECT count(*) FROM alerts WHERE uuid = $1::uuid AND raw_payload::jsonb ="
               " '{\"a\":{\"nested\":true},\"b\":[1,2.5,\"x\"],\"n\":null}'::jsonb",
               1, u),
        1);
    /* indicators and links, in extraction order */
    char *links = links_of(u);
    assert_string_equal(links, "1:ip:203.0.113.9:src_ip,2:domain:evil.example.com:description");
    free(links);
    /* exactly one queued job, announced by NOTIFY after commit */
    char *job = th_str(g_db,
                       "SELECT j.id FROM enrichment_jobs j JOIN alerts a ON a.id = j.alert_id"
                       " WHERE a.uuid = $1::uuid AND j.status = 'queued' AND j.attempts = 0",
                       1, u);
    assert_non_null(job);
    assert_int_equal(th_int(g_db,
                            "SELECT count(*) FROM enrichment_jobs j JOIN alerts a ON"
                            " a.id = j.alert_id WHERE a.uuid = $1::uuid",
                            1, u),
                     1);
    bool heard = false;
    for (int i = 0; i < 50 && !heard; i++) {
        struct pollfd pfd = {.fd = PQsocket(l), .events = POLLIN};
        poll(&pfd, 1, 100);
        PQconsumeInput(l);
        PGnotify *n;
        while ((n = PQnotifies(l)) != NULL) {
            if (strcmp(n->relname, "alertmap_enrichment") == 0 && strcmp(n->extra, job) == 0)
                heard = true;
            PQfreemem(n);
        }
    }
    assert_true(heard);
    free(job);
    th_ingest_dispose(&w);
    PQfinish(l);
}

static void test_ingest_request_of_three(void **state)
{
    (void)state;
    store_alert_t a[3];
    a[0] = th_sample_alert("Three A", "fp-three-a");
    a[1] = th_sample_alert("Three B", "fp-three-b");
    a[1].description = NULL;
    a[1].detection_rule_ref = NULL;
    a[1].fields_json = NULL;
    a[1].nindicators = 0;
    a[1].ntags = 0;
    a[1].occurred_at_fallback = true;
    a[2] = th_sample_alert("Three C", "fp-three-c");
    th_ingest_t w;
    assert_int_equal(th_ingest_sync(g_store, a, 3, &w), STORE_OK);
    assert_int_equal(w.nalerts, 3);
    assert_string_not_equal(w.out[0].uuid, w.out[1].uuid);
    assert_string_not_equal(w.out[1].uuid, w.out[2].uuid);
    char *b = th_str(g_db,
                     "SELECT concat_ws('|', title, description IS NULL, detection_rule_ref IS"
                     " NULL, fields::text, tags::text, occurred_at_fallback) FROM alerts WHERE"
                     " uuid = $1::uuid",
                     1, w.out[1].uuid);
    assert_string_equal(b, "Three B|t|t|{}|{}|t");
    free(b);
    /* an indicator shared by alerts is one row with two links */
    assert_int_equal(th_int(g_db,
                            "SELECT count(*) FROM indicators WHERE type = 'ip' AND value ="
                            " '203.0.113.9'",
                            0),
                     1);
    assert_int_equal(th_int(g_db,
                            "SELECT count(*) FROM alert_indicators ai JOIN alerts a ON a.id ="
                            " ai.alert_id WHERE a.title IN ('Three A', 'Three C')",
                            0),
                     4);
    assert_int_equal(th_int(g_db,
                            "SELECT count(*) FROM indicators WHERE last_seen >= first_seen"
                            " AND type = 'ip' AND value = '203.0.113.9'",
                            0),
                     1);
    th_ingest_dispose(&w);
}

/* The values travel as binary arrays (batch.c): multi-byte UTF-8, quotes,
 * backslashes, braces and newlines arrive as sent, a NULL source field stays
 * NULL, negative and pre-epoch times keep their sign, and a batch in which
 * no alert has an indicator (empty arrays) still commits. */
static void test_values_arrive_as_sent(void **state)
{
    (void)state;
    static const store_indicator_t ind[] = {
        {"domain", "xn--bcher-kva.example", NULL},
        {"account", "dom\\user \"x\" {1,2}", "user"},
    };
    store_alert_t a = th_sample_alert("Ünïcode — 東京 \"q\" \\ {a,b}", "fp-as-sent");
    a.description = "line one\nline two, NULL, {}";
    a.occurred_at_us = -86400000001; /* 1969-12-30T23:59:59.999999Z */
    a.indicators = ind;
    a.nindicators = 2;
    th_ingest_t w;
    assert_int_equal(th_ingest_sync(g_store, &a, 1, &w), STORE_OK);
    char *row = th_str(g_db,
                       "SELECT concat_ws('|', title, description,"
                       " to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US'),"
                       " tags[2]) FROM alerts WHERE uuid = $1::uuid",
                       1, w.out[0].uuid);
    assert_string_equal(row, "Ünïcode — 東京 \"q\" \\ {a,b}|line one\nline two, NULL, {}|"
                             "1969-12-30T23:59:59.999999|quote\"and\\back");
    free(row);
    char *links = links_of(w.out[0].uuid);
    assert_string_equal(links, "1:domain:xn--bcher-kva.example:(null),"
                               "2:account:dom\\user \"x\" {1,2}:user");
    free(links);
    th_ingest_dispose(&w);

    store_alert_t none = th_sample_alert("No indicators at all", "fp-as-sent-none");
    none.nindicators = 0;
    none.ntags = 0;
    assert_int_equal(th_ingest_sync(g_store, &none, 1, &w), STORE_OK);
    assert_int_equal(th_int(g_db,
                            "SELECT count(*) FROM alerts a WHERE uuid = $1::uuid AND tags = '{}'"
                            " AND NOT EXISTS (SELECT 1 FROM alert_indicators ai"
                            " WHERE ai.alert_id = a.id)",
                            1, w.out[0].uuid),
                     1);
    th_ingest_dispose(&w);
}

/* Ingests th_sample_alert(title); returns the xmin of its ip indicator. */
static char *ingest_sample_xmin(const char *title, const char *fp)
{
    store_alert_t a = th_sample_alert(title, fp);
    th_ingest_t w;
    assert_int_equal(th_ingest_sync(g_store, &a, 1, &w), STORE_OK);
    th_ingest_dispose(&w);
    return th_str(g_db,
                  "SELECT xmin::text FROM indicators WHERE type = 'ip' AND value ="
                  " '203.0.113.9'",
                  0);
}

/* last_seen is kept to the minute: an indicator named again within the
 * minute is not rewritten (same row version), one last seen earlier moves
 * to now */
static void test_indicator_last_seen_to_the_minute(void **state)
{
    (void)state;
    char *x0 = ingest_sample_xmin("Seen A", "fp-seen-a");
    char *x1 = ingest_sample_xmin("Seen B", "fp-seen-b");
    assert_string_equal(x0, x1);
    free(x0);
    free(x1);
    th_int(g_db,
           "UPDATE indicators SET last_seen = now() - interval '2 minutes' WHERE type = 'ip'"
           " AND value = '203.0.113.9'",
           0);
    free(ingest_sample_xmin("Seen C", "fp-seen-c"));
    assert_int_equal(th_int(g_db,
                            "SELECT count(*) FROM indicators WHERE type = 'ip' AND value ="
                            " '203.0.113.9' AND last_seen > now() - interval '1 minute'",
                            0),
                     1);
}

/* ---- group commit ---------------------------------------------------------- */

enum { GC_THREADS = 8, GC_PER_THREAD = 40 };

typedef struct gc_state {
    atomic_int ok, failed, calls;
    pthread_mutex_t mu;
    pthread_cond_t cond;
} gc_state_t;

static gc_state_t g_gc;

static void gc_cb(const store_ingest_result_t *res, void *ctx)
{
    (void)ctx;
    if (res->status == STORE_OK && res->nalerts == 1 && !res->alerts[0].is_duplicate)
        atomic_fetch_add(&g_gc.ok, 1);
    else
        atomic_fetch_add(&g_gc.failed, 1);
    pthread_mutex_lock(&g_gc.mu);
    atomic_fetch_add(&g_gc.calls, 1);
    pthread_cond_broadcast(&g_gc.cond);
    pthread_mutex_unlock(&g_gc.mu);
}

static void *gc_thread(void *arg)
{
    intptr_t t = (intptr_t)arg;
    for (int i = 0; i < GC_PER_THREAD; i++) {
        char title[64], fp[64];
        snprintf(title, sizeof(title), "Group %ld-%d", (long)t, i);
        snprintf(fp, sizeof(fp), "fp-group-%ld-%d", (long)t, i);
        store_alert_t a = th_sample_alert(title, fp);
        if (store_ingest(g_store, &a, 1, gc_cb, NULL) != 0)
            atomic_fetch_add(&g_gc.failed, 1);
    }
    return NULL;
}

static void wait_calls(atomic_int *calls, pthread_mutex_t *mu, pthread_cond_t *cond, int n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 60;
    pthread_mutex_lock(mu);
    int rc = 0;
    while (atomic_load(calls) < n && rc == 0)
        rc = pthread_cond_timedwait(cond, mu, &ts);
    pthread_mutex_unlock(mu);
    if (atomic_load(calls) < n)
        fail_msg("only %d of %d callbacks within 60 s", atomic_load(calls), n);
}

/* A payload past the TOAST threshold is stored compressed with LZ4
 * (011_payload_lz4.sql) when the server has it, and reads back unchanged;
 * the other compressible columns of alerts use LZ4 too. */
static void test_payload_compressed_lz4(void **state)
{
    (void)state;
    am_buf_t raw;
    am_buf_init(&raw, 0);
    am_buf_puts(&raw, "{\"events\":[");
    for (int i = 0; i < 120; i++)
        am_buf_printf(&raw, "%s{\"host\":\"ws-%03d.corp.example\",\"action\":\"logon\"}",
                      i ? "," : "", i);
    am_buf_puts(&raw, "]}");
    assert_true(raw.len > 4000);
    store_alert_t a = th_sample_alert("Large payload", "fp-payload-lz4");
    a.raw_payload = raw.data;
    th_ingest_t w;
    assert_int_equal(th_ingest_sync(g_store, &a, 1, &w), STORE_OK);
    bool lz4 = th_int(g_db,
                      "SELECT count(*) FROM pg_settings WHERE name = 'default_toast_compression'"
                      " AND 'lz4' = ANY (enumvals)",
                      0) == 1;
    char *method = th_str(g_db,
                          "SELECT pg_column_compression(raw_payload) FROM alerts"
                          " WHERE uuid = $1::uuid",
                          1, w.out[0].uuid);
    assert_string_equal(method, lz4 ? "lz4" : "pglz");
    free(method);
    /* and every other column the row's compression may try after it */
    assert_int_equal(th_int(g_db,
                            "SELECT count(*) FROM pg_attribute a JOIN pg_type t ON"
                            " t.oid = a.atttypid WHERE a.attrelid = 'alerts'::regclass AND"
                            " a.attnum > 0 AND NOT a.attisdropped AND t.typstorage <> 'p' AND"
                            " a.attcompression <> $1",
                            1, lz4 ? "l" : ""),
                     0);
    char *back = th_str(g_db, "SELECT raw_payload::text FROM alerts WHERE uuid = $1::uuid", 1,
                        w.out[0].uuid);
    assert_string_equal(back, raw.data);
    free(back);
    th_ingest_dispose(&w);
    am_buf_dispose(&raw);
}

static void test_group_commit(void **state)
{
    (void)state;
    memset(&g_gc, 0, sizeof(g_gc));
    pthread_mutex_init(&g_gc.mu, NULL);
    pthread_cond_init(&g_gc.cond, NULL);
    store_stats_t before, after;
    store_stats(g_store, &before);
    pthread_t t[GC_THREADS];
    for (intptr_t i = 0; i < GC_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, gc_thread, (void *)i), 0);
    for (int i = 0; i < GC_THREADS; i++)
        pthread_join(t[i], NULL);
    int n = GC_THREADS * GC_PER_THREAD;
    wait_calls(&g_gc.calls, &g_gc.mu, &g_gc.cond, n);
    store_stats(g_store, &after);
    assert_int_equal(atomic_load(&g_gc.ok), n);
    assert_int_equal(atomic_load(&g_gc.failed), 0);
    uint64_t txns = after.transactions - before.transactions;
    print_message("group commit: %d requests in %llu transactions\n", n, (unsigned long long)txns);
    assert_true(txns >= 1);
    assert_true(txns < (uint64_t)n);
    assert_int_equal(after.requests_ok - before.requests_ok, n);
    assert_int_equal(
        th_int(g_db, "SELECT count(*) FROM alerts WHERE fingerprint LIKE 'fp-group-%'", 0), n);
    assert_int_equal(th_int(g_db,
                            "SELECT count(*) FROM enrichment_jobs j JOIN alerts a ON a.id ="
                            " j.alert_id WHERE a.fingerprint LIKE 'fp-group-%'",
                            0),
                     n);
    pthread_mutex_destroy(&g_gc.mu);
    pthread_cond_destroy(&g_gc.cond);
}

/* ---- dedup ------------------------------------------------------------------ */

enum { DUPS = 50 };

typedef struct dup_arg {
    store_t *store;
    pthread_barrier_t *go;
    const char *fp;
    th_ingest_t w;
} dup_arg_t;

static void *dup_thread(void *p)
{
    dup_arg_t *a = p;
    store_alert_t al = th_sample_alert("Same alert", a->fp);
    /* no indicators: their row locks would serialize the writers by chance,
     * hiding a missing fingerprint lock */
    al.nindicators = 0;
    th_ingest_init(&a->w);
    pthread_barrier_wait(a->go);
    if (store_ingest(a->store, &al, 1, th_ingest_cb, &a->w) != 0)
        return NULL;
    th_ingest_wait(&a->w);
    return NULL;
}

/* DUPS concurrent identical submits spread over nstores stores (as if from
 * several alertmapd processes). */
static void run_dups(store_t **stores, int nstores, const char *fp)
{
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, DUPS);
    pthread_t t[DUPS];
    dup_arg_t *a = calloc(DUPS, sizeof(*a));
    for (int i = 0; i < DUPS; i++) {
        a[i].store = stores[i % nstores];
        a[i].go = &go;
        a[i].fp = fp;
        assert_int_equal(pthread_create(&t[i], NULL, dup_thread, &a[i]), 0);
    }
    for (int i = 0; i < DUPS; i++)
        pthread_join(t[i], NULL);
    int fresh = 0;
    bool counts[DUPS] = {false};
    for (int i = 0; i < DUPS; i++) {
        assert_true(a[i].w.done);
        if (a[i].w.status != STORE_OK)
            fail_msg("submit %d: status %d %s", i, a[i].w.status, a[i].w.message);
        assert_string_equal(a[i].w.out[0].uuid, a[0].w.out[0].uuid);
        if (!a[i].w.out[0].is_duplicate) {
            fresh++;
            assert_int_equal(a[i].w.out[0].duplicate_count, 0);
        } else {
            int64_t c = a[i].w.out[0].duplicate_count;
            assert_true(c >= 1 && c < DUPS);
            assert_false(counts[c]); /* every duplicate saw its own count */
            counts[c] = true;
        }
        th_ingest_dispose(&a[i].w);
    }
    assert_int_equal(fresh, 1);
    assert_int_equal(th_int(g_db, "SELECT count(*) FROM alerts WHERE fingerprint = $1", 1, fp), 1);
    assert_int_equal(
        th_int(g_db, "SELECT duplicate_count FROM alerts WHERE fingerprint = $1", 1, fp), DUPS - 1);
    assert_int_equal(th_int(g_db,
                            "SELECT count(*) FROM alerts WHERE fingerprint = $1 AND"
                            " last_duplicate_at IS NOT NULL",
                            1, fp),
                     1);
    assert_int_equal(th_int(g_db,
                            "SELECT count(*) FROM enrichment_jobs j JOIN alerts a ON a.id ="
                            " j.alert_id WHERE a.fingerprint = $1",
                            1, fp),
                     1);
    free(a);
    pthread_barrier_destroy(&go);
}

static void test_dedup_concurrent(void **state)
{
    (void)state;
    run_dups(&g_store, 1, "fp-dedup-one-store");
}

/* The store's writer has connected at least once. */
static bool writer_connected(void *ctx)
{
    store_stats_t st;
    store_stats(ctx, &st);
    return st.reconnects > 0;
}

/* The store's queue is empty (the writer took every request). */
static bool queue_empty(void *ctx)
{
    store_stats_t st;
    store_stats(ctx, &st);
    return st.queue_depth == 0;
}

static void test_dedup_concurrent_two_stores(void **state)
{
    (void)state;
    store_options_t o = {.conninfo = g_ci, .dedup_window_s = 3600, .readers = 1, .max_batch = 4};
    store_t *s[3] = {store_new(&o), store_new(&o), g_store};
    assert_non_null(s[0]);
    assert_non_null(s[1]);
    /* let every writer connect first, so that all of them race */
    for (int i = 0; i < 2; i++)
        assert_true(th_wait_until(writer_connected, s[i], 5000));
    run_dups(s, 3, "fp-dedup-three-stores");
    store_free(s[0]);
    store_free(s[1]);
}

static void test_dedup_concurrent_many_writers(void **state)
{
    (void)state;
    /* two stores (two processes) of four writers each, small batches: the
     * submits race on eight connections */
    store_options_t o = {
        .conninfo = g_ci, .dedup_window_s = 3600, .readers = 1, .writers = 4, .max_batch = 2};
    store_t *s[2] = {store_new(&o), store_new(&o)};
    assert_non_null(s[0]);
    assert_non_null(s[1]);
    for (int i = 0; i < 2; i++)
        assert_true(th_wait_until(writer_connected, s[i], 5000));
    run_dups(s, 2, "fp-dedup-many-writers");
    store_free(s[0]);
    store_free(s[1]);
}

/* ---- lock order: many writers, shared fingerprints and indicators ------------- */

enum { MIX_THREADS = 16, MIX_PER_THREAD = 12, MIX_FPS = 5 };

typedef struct mixer {
    store_t *store;
    int id;
    int ok, dups, failed;
} mixer_t;

static void *mixer_thread(void *p)
{
    mixer_t *m = p;
    for (int r = 0; r < MIX_PER_THREAD; r++) {
        /* two alerts per request, fingerprints from a small set, in an
         * order that differs between threads; indicators shared too */
        char fp0[32], fp1[32], v0[32], v1[32];
        int a = (m->id + r) % MIX_FPS, b = (m->id * 3 + r + 1) % MIX_FPS;
        snprintf(fp0, sizeof(fp0), "fp-mix-order-%d", a);
        snprintf(fp1, sizeof(fp1), "fp-mix-order-%d", b);
        snprintf(v0, sizeof(v0), "10.9.0.%d", a);
        snprintf(v1, sizeof(v1), "10.9.0.%d", b);
        store_indicator_t i0[2] = {{"ip", v0, "src_ip"}, {"ip", v1, "dst_ip"}};
        store_indicator_t i1[2] = {{"ip", v1, "src_ip"}, {"ip", v0, "dst_ip"}};
        store_alert_t al[2] = {th_sample_alert("Mix order", fp0),
                               th_sample_alert("Mix order", fp1)};
        al[0].indicators = i0;
        al[0].nindicators = 2;
        al[1].indicators = i1;
        al[1].nindicators = 2;
        th_ingest_t w;
        store_status_t st = th_ingest_sync(m->store, al, 2, &w);
        if (st == STORE_OK) {
            m->ok++;
            m->dups += w.out[0].is_duplicate + w.out[1].is_duplicate;
        } else {
            m->failed++;
        }
        th_ingest_dispose(&w);
    }
    return NULL;
}

static void test_lock_order_many_writers(void **state)
{
    (void)state;
    /* the writers linger for fuller batches (writer.c): the same books */
    store_options_t o = {.conninfo = g_ci,
                         .dedup_window_s = 3600,
                         .readers = 1,
                         .writers = 4,
                         .max_batch = 4,
                         .linger_us = 1000};
    store_t *s[2] = {store_new(&o), store_new(&o)};
    assert_non_null(s[0]);
    assert_non_null(s[1]);
    pthread_t t[MIX_THREADS];
    mixer_t m[MIX_THREADS];
    for (int i = 0; i < MIX_THREADS; i++) {
        m[i] = (mixer_t){.store = s[i % 2], .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, mixer_thread, &m[i]), 0);
    }
    int ok = 0, dups = 0, failed = 0;
    for (int i = 0; i < MIX_THREADS; i++) {
        pthread_join(t[i], NULL);
        ok += m[i].ok;
        dups += m[i].dups;
        failed += m[i].failed;
    }
    /* no deadlock reached a sender, and the books balance: one alert per
     * fingerprint, every other submit counted on it */
    assert_int_equal(failed, 0);
    assert_int_equal(ok, MIX_THREADS * MIX_PER_THREAD);
    assert_int_equal(
        th_int(g_db, "SELECT count(*) FROM alerts WHERE fingerprint LIKE 'fp-mix-order-%'", 0),
        MIX_FPS);
    assert_int_equal(dups, 2 * MIX_THREADS * MIX_PER_THREAD - MIX_FPS);
    assert_int_equal(th_int(g_db,
                            "SELECT sum(duplicate_count) FROM alerts WHERE fingerprint LIKE"
                            " 'fp-mix-order-%'",
                            0),
                     dups);
    store_free(s[0]);
    store_free(s[1]);
}

/* ---- the heavy lane ------------------------------------------------------------- */

static bool ingest_done(void *ctx)
{
    th_ingest_t *w = ctx;
    pthread_mutex_lock(&w->mu);
    bool d = w->done;
    pthread_mutex_unlock(&w->mu);
    return d;
}

static void test_heavy_request_has_its_own_lane(void **state)
{
    (void)state;
    /* one ordinary writer; a request with more than 8 indicators is heavy */
    store_options_t o = {.conninfo = g_ci,
                         .dedup_window_s = 3600,
                         .readers = 1,
                         .writers = 1,
                         .max_batch_indicators = 8};
    store_t *s = store_new(&o);
    assert_non_null(s);
    /* hold the heavy request inside its transaction with its fingerprint */
    PGconn *lk = th_connect(g_ci);
    th_int(lk, "SELECT pg_advisory_lock(hashtextextended('fp-heavy', 0))", 0);
    store_indicator_t ind[20];
    char v[20][32];
    for (int i = 0; i < 20; i++) {
        snprintf(v[i], sizeof(v[i]), "10.77.0.%d", i);
        ind[i] = (store_indicator_t){"ip", v[i], "src_ip"};
    }
    store_alert_t heavy = th_sample_alert("Heavy", "fp-heavy");
    heavy.indicators = ind;
    heavy.nindicators = 20;
    th_ingest_t wh;
    th_ingest_init(&wh);
    assert_int_equal(store_ingest(s, &heavy, 1, th_ingest_cb, &wh), 0);
    /* ordinary requests commit on the ordinary writer meanwhile */
    for (int i = 0; i < 5; i++) {
        char fp[32];
        snprintf(fp, sizeof(fp), "fp-light-%d", i);
        store_alert_t a = th_sample_alert("Light", fp);
        th_ingest_t w;
        assert_int_equal(th_ingest_sync(s, &a, 1, &w), STORE_OK);
        th_ingest_dispose(&w);
    }
    assert_false(ingest_done(&wh));
    th_int(lk, "SELECT pg_advisory_unlock(hashtextextended('fp-heavy', 0))", 0);
    th_ingest_wait(&wh);
    assert_int_equal(wh.status, STORE_OK);
    assert_int_equal(th_int(g_db,
                            "SELECT count(*) FROM alert_indicators ai JOIN alerts a ON a.id ="
                            " ai.alert_id WHERE a.fingerprint = 'fp-heavy'",
                            0),
                     20);
    store_stats_t st;
    store_stats(s, &st);
    assert_int_equal(st.heavy, 1);
    th_ingest_dispose(&wh);
    PQfinish(lk);
    store_free(s);
}

static void test_delete_alert_removes_links_and_job(void **state)
{
    (void)state;
    store_alert_t a = th_sample_alert("Deleted later", "fp-deleted");
    th_ingest_t w;
    assert_int_equal(th_ingest_sync(g_store, &a, 1, &w), STORE_OK);
    int64_t id = th_int(g_db, "SELECT id FROM alerts WHERE uuid = $1::uuid", 1, w.out[0].uuid);
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)id);
    assert_int_equal(
        th_int(g_db, "SELECT count(*) FROM alert_indicators WHERE alert_id = $1::int8", 1, ids), 2);
    th_int(g_db, "DELETE FROM alerts WHERE id = $1::int8", 1, ids);
    /* the cascade of 003_lean.sql's trigger */
    assert_int_equal(
        th_int(g_db, "SELECT count(*) FROM alert_indicators WHERE alert_id = $1::int8", 1, ids), 0);
    assert_int_equal(
        th_int(g_db, "SELECT count(*) FROM enrichment_jobs WHERE alert_id = $1::int8", 1, ids), 0);
    th_ingest_dispose(&w);
}

static void test_dedup_inside_one_request(void **state)
{
    (void)state;
    store_alert_t a[3];
    for (int i = 0; i < 3; i++)
        a[i] = th_sample_alert("Repeated in request", "fp-dedup-request");
    th_ingest_t w;
    assert_int_equal(th_ingest_sync(g_store, a, 3, &w), STORE_OK);
    assert_false(w.out[0].is_duplicate);
    assert_true(w.out[1].is_duplicate);
    assert_true(w.out[2].is_duplicate);
    assert_int_equal(w.out[1].duplicate_count, 1);
    assert_int_equal(w.out[2].duplicate_count, 2);
    assert_string_equal(w.out[0].uuid, w.out[2].uuid);
    th_ingest_dispose(&w);
    /* and later, in another transaction */
    assert_int_equal(th_ingest_sync(g_store, a, 1, &w), STORE_OK);
    assert_true(w.out[0].is_duplicate);
    assert_int_equal(w.out[0].duplicate_count, 3);
    th_ingest_dispose(&w);
}

static void test_dedup_window_zero(void **state)
{
    (void)state;
    store_options_t o = {.conninfo = g_ci, .dedup_window_s = 0};
    store_t *s = store_new(&o);
    assert_non_null(s);
    store_alert_t a = th_sample_alert("No dedup", "fp-window-zero");
    th_ingest_t w1, w2;
    assert_int_equal(th_ingest_sync(s, &a, 1, &w1), STORE_OK);
    assert_int_equal(th_ingest_sync(s, &a, 1, &w2), STORE_OK);
    assert_false(w1.out[0].is_duplicate);
    assert_false(w2.out[0].is_duplicate);
    assert_string_not_equal(w1.out[0].uuid, w2.out[0].uuid);
    assert_int_equal(
        th_int(g_db, "SELECT count(*) FROM alerts WHERE fingerprint = 'fp-window-zero'", 0), 2);
    th_ingest_dispose(&w1);
    th_ingest_dispose(&w2);
    store_free(s);
}

static void test_dedup_window_expired(void **state)
{
    (void)state;
    store_alert_t a = th_sample_alert("Old alert", "fp-window-old");
    th_ingest_t w;
    assert_int_equal(th_ingest_sync(g_store, &a, 1, &w), STORE_OK);
    th_ingest_dispose(&w);
    /* move it out of the 1 h window */
    th_int(g_db,
           "UPDATE alerts SET ingested_at = now() - interval '2 hours' WHERE fingerprint ="
           " 'fp-window-old'",
           0);
    assert_int_equal(th_ingest_sync(g_store, &a, 1, &w), STORE_OK);
    assert_false(w.out[0].is_duplicate);
    th_ingest_dispose(&w);
    assert_int_equal(
        th_int(g_db, "SELECT count(*) FROM alerts WHERE fingerprint = 'fp-window-old'", 0), 2);
}

/* ---- failures and input checks ------------------------------------------------ */

typedef struct mix {
    th_ingest_t w[20];
} mix_t;

static void test_rejected_request_fails_alone(void **state)
{
    (void)state;
    /* Park the writer on a fingerprint lock held here, queue 20 requests
     * behind it (so they form one batch), then let it go. Every third request
     * carries a payload jsonb refuses; those fail alone, the rest commit. */
    PGconn *lk = th_connect(g_ci);
    th_int(lk, "SELECT pg_advisory_lock(hashtextextended('fp-mix-gate', 0))", 0);
    store_alert_t gate = th_sample_alert("Mix gate", "fp-mix-gate");
    th_ingest_t wg;
    th_ingest_init(&wg);
    assert_int_equal(store_ingest(g_store, &gate, 1, th_ingest_cb, &wg), 0);
    store_stats_t before, after;
    /* until the writer took the gate alone */
    assert_true(th_wait_until(queue_empty, g_store, 5000));
    store_stats(g_store, &before);
    assert_int_equal(before.queue_depth, 0);
    mix_t *m = calloc(1, sizeof(*m));
    for (int i = 0; i < 20; i++) {
        char title[64], fp[64];
        snprintf(title, sizeof(title), "Mix %d", i);
        snprintf(fp, sizeof(fp), "fp-mix-%d", i);
        store_alert_t a[2] = {th_sample_alert(title, fp), th_sample_alert(title, fp)};
        a[1].fingerprint = "fp-mix-second";
        a[1].title = "Mix second";
        if (i % 3 == 1)
            a[1].raw_payload = "{\"text\":\"nul \\u0000 inside\"}"; /* jsonb refuses \u0000 */
        if (i % 3 == 2)
            a[0].raw_payload = "{not json";
        th_ingest_init(&m->w[i]);
        assert_int_equal(store_ingest(g_store, a, 2, th_ingest_cb, &m->w[i]), 0);
    }
    th_int(lk, "SELECT pg_advisory_unlock(hashtextextended('fp-mix-gate', 0))", 0);
    th_ingest_wait(&wg);
    assert_int_equal(wg.status, STORE_OK);
    th_ingest_dispose(&wg);
    int64_t seconds = 0;
    for (int i = 0; i < 20; i++) {
        th_ingest_wait(&m->w[i]);
        char title[64];
        snprintf(title, sizeof(title), "Mix %d", i);
        int64_t rows = th_int(g_db, "SELECT count(*) FROM alerts WHERE title = $1", 1, title);
        if (i % 3 == 0) {
            if (m->w[i].status != STORE_OK)
                fail_msg("request %d: %d %s", i, m->w[i].status, m->w[i].message);
            assert_int_equal(m->w[i].nalerts, 2);
            assert_int_equal(rows, 1);
            seconds++;
        } else {
            assert_int_equal(m->w[i].status, STORE_REJECTED);
            assert_non_null(strstr(m->w[i].message, i % 3 == 1 ? "alert 1" : "alert 0"));
            assert_int_equal(rows, 0);
        }
        th_ingest_dispose(&m->w[i]);
    }
    store_stats(g_store, &after);
    /* the gate's transaction, then the 20 requests in one more */
    assert_int_equal(after.transactions - before.transactions, 2);
    assert_int_equal(after.requests_failed - before.requests_failed, 13);
    free(m);
    /* the committed requests' second alert: one alert, the later ones duplicates */
    assert_int_equal(
        th_int(g_db, "SELECT count(*) FROM alerts WHERE fingerprint = 'fp-mix-second'", 0), 1);
    assert_int_equal(th_int(g_db,
                            "SELECT duplicate_count FROM alerts WHERE fingerprint ="
                            " 'fp-mix-second'",
                            0),
                     seconds - 1);
    /* nothing of the refused requests is left: no orphan jobs or links */
    assert_int_equal(th_int(g_db,
                            "SELECT count(*) FROM enrichment_jobs j LEFT JOIN alerts a ON a.id ="
                            " j.alert_id WHERE a.id IS NULL",
                            0),
                     0);
    PQfinish(lk);
}

static void ignore_cb(const store_ingest_result_t *res, void *ctx)
{
    (void)res;
    (void)ctx;
    fail_msg("callback of a refused submit was called");
}

static void test_ingest_invalid_input(void **state)
{
    (void)state;
    store_alert_t ok = th_sample_alert("Invalid", "fp-invalid");
    store_alert_t a;
    a = ok;
    a.severity = "Severe";
    assert_int_equal(store_ingest(g_store, &a, 1, ignore_cb, NULL), AM_EINVAL);
    a = ok;
    a.title = NULL;
    assert_int_equal(store_ingest(g_store, &a, 1, ignore_cb, NULL), AM_EINVAL);
    a = ok;
    a.fingerprint = "";
    assert_int_equal(store_ingest(g_store, &a, 1, ignore_cb, NULL), AM_EINVAL);
    a = ok;
    a.raw_payload = NULL;
    assert_int_equal(store_ingest(g_store, &a, 1, ignore_cb, NULL), AM_EINVAL);
    a = ok;
    a.fields_json = "[1,2]";
    assert_int_equal(store_ingest(g_store, &a, 1, ignore_cb, NULL), AM_EINVAL);
    a = ok;
    a.fields_json = "{\"title\":\"shadow\"}";
    assert_int_equal(store_ingest(g_store, &a, 1, ignore_cb, NULL), AM_EINVAL);
    /* refused in the flat {"k":"v"} shape as in any other JSON text */
    static const char *const bad_fields[] = {
        "{\"src_ip\":\"1.2.3.4\",\"src_ip\":\"5.6.7.8\"}",
        "{\"src_ip\":\"1.2.3.4\",\"id\":\"x\"}",
        "{\"src_ip\":\"1.2.3.4\",}",
        "{\"src_ip\":\"1.2.3.4\"}x",
        "{\"src_ip\":\"1.2.3.4\"",
        "{\"src_ip\" : \"1.2.3.4\", \"raw_payload\": 1}",
        "{\"src_ip\":\"a\\u0000\",\"src_ip\":\"b\"}",
        "{\"src_\\u0069p\":\"1\",\"src_ip\":\"2\"}",
        "",
    };
    for (size_t i = 0; i < sizeof(bad_fields) / sizeof(bad_fields[0]); i++) {
        a = ok;
        a.fields_json = bad_fields[i];
        if (store_ingest(g_store, &a, 1, ignore_cb, NULL) != AM_EINVAL)
            fail_msg("fields %s taken", bad_fields[i]);
    }
    store_indicator_t bad_type = {"ipv4", "1.2.3.4", "x"};
    a = ok;
    a.indicators = &bad_type;
    a.nindicators = 1;
    assert_int_equal(store_ingest(g_store, &a, 1, ignore_cb, NULL), AM_EINVAL);
    store_indicator_t empty = {"ip", "", "x"};
    a.indicators = &empty;
    assert_int_equal(store_ingest(g_store, &a, 1, ignore_cb, NULL), AM_EINVAL);
    store_indicator_t bad_utf8 = {"domain", "bad\xff.example", "x"};
    a.indicators = &bad_utf8;
    assert_int_equal(store_ingest(g_store, &a, 1, ignore_cb, NULL), AM_EINVAL);
    /* a second alert of the request is bad: nothing queued */
    store_alert_t two[2] = {ok, ok};
    two[1].severity = NULL;
    assert_int_equal(store_ingest(g_store, two, 2, ignore_cb, NULL), AM_EINVAL);
    assert_int_equal(store_ingest(NULL, &ok, 1, ignore_cb, NULL), AM_EINVAL);
    assert_int_equal(th_int(g_db, "SELECT count(*) FROM alerts WHERE title = 'Invalid'", 0), 0);
}

static void test_ingest_empty_request_and_repeated_indicator(void **state)
{
    (void)state;
    th_ingest_t w;
    assert_int_equal(th_ingest_sync(g_store, NULL, 0, &w), STORE_OK);
    assert_int_equal(w.nalerts, 0);
    th_ingest_dispose(&w);
    store_indicator_t ind[] = {
        {"ip", "198.51.100.7", "src_ip"},
        {"url", "http://x.example/a", "description"},
        {"ip", "198.51.100.7", "description"}, /* repeated: the first one stays */
    };
    store_alert_t a = th_sample_alert("Repeated indicator", "fp-repeat-ind");
    a.indicators = ind;
    a.nindicators = 3;
    assert_int_equal(th_ingest_sync(g_store, &a, 1, &w), STORE_OK);
    char *links = links_of(w.out[0].uuid);
    assert_string_equal(links, "1:ip:198.51.100.7:src_ip,2:url:http://x.example/a:description");
    free(links);
    th_ingest_dispose(&w);
}

static void test_queue_bound(void **state)
{
    (void)state;
    store_options_t o = {.conninfo = g_ci,
                         .dedup_window_s = 3600,
                         .max_queue = 5,
                         .writers = 1}; /* one writer, held at the gate: the queue fills */
    store_t *s = store_new(&o);
    assert_non_null(s);
    PGconn *lk = th_connect(g_ci);
    th_int(lk, "SELECT pg_advisory_lock(hashtextextended('fp-queue-gate', 0))", 0);
    store_alert_t gate = th_sample_alert("Queue gate", "fp-queue-gate");
    th_ingest_t w[6];
    th_ingest_init(&w[5]);
    assert_int_equal(store_ingest(s, &gate, 1, th_ingest_cb, &w[5]), 0);
    /* the writer took the gate and waits */
    assert_true(th_wait_until(queue_empty, s, 2000));
    store_stats_t st;
    store_alert_t a = th_sample_alert("Queued", "fp-queued");
    for (int i = 0; i < 5; i++) {
        th_ingest_init(&w[i]);
        assert_int_equal(store_ingest(s, &a, 1, th_ingest_cb, &w[i]), 0);
    }
    store_stats(s, &st);
    assert_int_equal(st.queue_depth, 5);
    assert_int_equal(store_ingest(s, &a, 1, ignore_cb, NULL), AM_ELIMIT);
    th_int(lk, "SELECT pg_advisory_unlock(hashtextextended('fp-queue-gate', 0))", 0);
    for (int i = 0; i < 6; i++) {
        th_ingest_wait(&w[i]);
        assert_int_equal(w[i].status, STORE_OK);
        th_ingest_dispose(&w[i]);
    }
    PQfinish(lk);
    store_free(s);
}

/* ---- shutdown --------------------------------------------------------------- */

enum { PENDING = 200 };
static gc_state_t g_pending;

static void pending_cb(const store_ingest_result_t *res, void *ctx)
{
    (void)ctx;
    if (res->status == STORE_OK)
        atomic_fetch_add(&g_pending.ok, 1);
    atomic_fetch_add(&g_pending.calls, 1);
}

static void test_free_with_pending(void **state)
{
    (void)state;
    memset(&g_pending, 0, sizeof(g_pending));
    store_options_t o = {.conninfo = g_ci, .dedup_window_s = 3600, .max_batch = 16};
    store_t *s = store_new(&o);
    assert_non_null(s);
    for (int i = 0; i < PENDING; i++) {
        char title[64], fp[64];
        snprintf(title, sizeof(title), "Pending %d", i);
        snprintf(fp, sizeof(fp), "fp-pending-%d", i);
        store_alert_t a = th_sample_alert(title, fp);
        assert_int_equal(store_ingest(s, &a, 1, pending_cb, NULL), 0);
    }
    store_free(s); /* returns only after every callback */
    assert_int_equal(atomic_load(&g_pending.calls), PENDING);
    assert_int_equal(atomic_load(&g_pending.ok), PENDING);
    assert_int_equal(
        th_int(g_db, "SELECT count(*) FROM alerts WHERE fingerprint LIKE 'fp-pending-%'", 0),
        PENDING);
}

int main(void)
{
    g_ci = th_db_create("writer");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ingest_one),
        cmocka_unit_test(test_ingest_request_of_three),
        cmocka_unit_test(test_values_arrive_as_sent),
        cmocka_unit_test(test_indicator_last_seen_to_the_minute),
        cmocka_unit_test(test_payload_compressed_lz4),
        cmocka_unit_test(test_group_commit),
        cmocka_unit_test(test_dedup_concurrent),
        cmocka_unit_test(test_dedup_concurrent_two_stores),
        cmocka_unit_test(test_dedup_concurrent_many_writers),
        cmocka_unit_test(test_lock_order_many_writers),
        cmocka_unit_test(test_heavy_request_has_its_own_lane),
        cmocka_unit_test(test_delete_alert_removes_links_and_job),
        cmocka_unit_test(test_dedup_inside_one_request),
        cmocka_unit_test(test_dedup_window_zero),
        cmocka_unit_test(test_dedup_window_expired),
        cmocka_unit_test(test_rejected_request_fails_alone),
        cmocka_unit_test(test_ingest_invalid_input),
        cmocka_unit_test(test_ingest_empty_request_and_repeated_indicator),
        cmocka_unit_test(test_queue_bound),
        cmocka_unit_test(test_free_with_pending),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    th_db_drop();
    return rc;
}
