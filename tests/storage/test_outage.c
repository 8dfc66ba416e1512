/* tests/storage/test_outage.c - the store across database failures, on a
 * private PostgreSQL cluster this test starts and stops with scripts/pg:
 * stopped -> STORE_UNAVAILABLE and nothing written; started again -> the
 * same store ingests again; a connection killed in the middle of a batch ->
 * the batch is retried once on a new connection, and when that dies too its
 * requests (only those) fail with nothing written. */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char g_dir[] = "/tmp/alertmap-outage-XXXXXX";
static char g_ci[1200];
static store_t *g_store;
static PGconn *g_db;

static int setup(void **state)
{
    (void)state;
    if (mkdtemp(g_dir) == NULL)
        return -1;
    th_pg("start", g_dir);
    snprintf(g_ci, sizeof(g_ci), "host=%s/socket user=alertmap dbname=alertmap", g_dir);
    char err[512];
    if (store_migrate(g_ci, th_sql_dir(), err, sizeof(err)) != 0) {
        fprintf(stderr, "migrate: %s\n", err);
        return -1;
    }
    store_options_t o = {.conninfo = g_ci, .dedup_window_s = 3600, .readers = 1, .writers = 1};
    g_store = store_new(&o);
    return g_store ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    store_free(g_store);
    if (g_db)
        PQfinish(g_db);
    th_pg("stop", g_dir);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int64_t count_title(const char *title)
{
    PGconn *c = th_connect(g_ci);
    int64_t n = th_int(c, "SELECT count(*) FROM alerts WHERE title = $1", 1, title);
    PQfinish(c);
    return n;
}

/* ---- conditions waited for with th_wait_until ---------------------------- */

typedef struct {
    const store_alert_t *alert;
    store_status_t status;
} ingest_ok_t;

/* An ingest of one alert succeeds (each check is a new attempt). */
static bool ingest_succeeds(void *ctx)
{
    ingest_ok_t *x = ctx;
    th_ingest_t w;
    x->status = th_ingest_sync(g_store, x->alert, 1, &w);
    th_ingest_dispose(&w);
    return x->status == STORE_OK;
}

/* A list query answers 200. */
static bool query_succeeds(void *ctx)
{
    (void)ctx;
    th_reply_t r;
    store_query_t q = {.kind = STORE_Q_LIST_ALERTS};
    th_query(g_store, &q, &r);
    int code = r.status;
    th_reply_dispose(&r);
    return code == 200;
}

typedef struct {
    PGconn *c;
    int64_t skip; /* a pid not to report (killed before, still listed) */
    int64_t pid;  /* out */
} lock_waiter_t;

/* A session of the store (other than skip) waits for a lock. */
static bool store_waits_for_lock(void *ctx)
{
    lock_waiter_t *x = ctx;
    char skip[32];
    snprintf(skip, sizeof(skip), "%lld", (long long)x->skip);
    x->pid = th_int(
        x->c,
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name = 'alertmapd' AND wait_event_type = 'Lock' AND pid <> $1::int",
        1, skip);
    return x->pid > 0;
}

/* No session of the store is left. */
static bool store_sessions_gone(void *ctx)
{
    return th_int(ctx,
                  "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                  " AND application_name = 'alertmapd'",
                  0) == 0;
}

static void test_database_stopped_and_restarted(void **state)
{
    (void)state;
    th_ingest_t w;
    store_alert_t a = th_sample_alert("Before outage", "fp-before");
    assert_int_equal(th_ingest_sync(g_store, &a, 1, &w), STORE_OK);
    th_ingest_dispose(&w);

    th_pg("stop", g_dir);
    for (int i = 0; i < 5; i++) {
        char fp[32];
        snprintf(fp, sizeof(fp), "fp-during-%d", i);
        store_alert_t d = th_sample_alert("During outage", fp);
        assert_int_equal(th_ingest_sync(g_store, &d, 1, &w), STORE_UNAVAILABLE);
        assert_non_null(strstr(w.message, "database unavailable"));
        th_ingest_dispose(&w);
    }
    th_reply_t r;
    store_query_t q = {.kind = STORE_Q_LIST_ALERTS};
    th_query(g_store, &q, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "DATABASE_UNAVAILABLE"));
    th_reply_dispose(&r);
    store_stats_t before;
    store_stats(g_store, &before);

    th_pg("start", g_dir);
    /* the same store recovers by itself (at most one backoff period) */
    store_alert_t b = th_sample_alert("After outage", "fp-after");
    ingest_ok_t ok = {.alert = &b, .status = STORE_UNAVAILABLE};
    th_wait_until(ingest_succeeds, &ok, 15000);
    assert_int_equal(ok.status, STORE_OK);
    store_stats_t after;
    store_stats(g_store, &after);
    assert_true(after.reconnects > before.reconnects);
    assert_int_equal(count_title("Before outage"), 1);
    assert_int_equal(count_title("During outage"), 0);
    assert_int_equal(count_title("After outage"), 1);
    /* readers are back too */
    assert_true(th_wait_until(query_succeeds, NULL, 15000));
    th_query(g_store, &q, &r);
    assert_int_equal(r.status, 200);
    th_reply_dispose(&r);
}

/* Terminates the store's writer backend once it waits for a lock. A
 * terminated backend stays visible for a moment, so the pid killed last
 * time (*last) is skipped: each call kills a new session. */
static bool kill_waiting_writer(PGconn *c, int64_t *last)
{
    lock_waiter_t x = {.c = c, .skip = *last};
    if (!th_wait_until(store_waits_for_lock, &x, 10000))
        return false;
    char p[32];
    snprintf(p, sizeof(p), "%lld", (long long)x.pid);
    if (th_int(c, "SELECT pg_terminate_backend($1::int)::int", 1, p) != 1)
        return false;
    *last = x.pid;
    return true;
}

static void test_connection_killed_mid_batch(void **state)
{
    (void)state;
    g_db = th_connect(g_ci);
    /* hold the dedup lock of one fingerprint so the writer stops inside
     * its batch transaction, after BEGIN */
    th_int(g_db, "SELECT pg_advisory_lock(hashtextextended('fp-blocked', 0))", 0);
    store_alert_t a = th_sample_alert("Blocked", "fp-blocked");
    th_ingest_t w;
    th_ingest_init(&w);
    assert_int_equal(store_ingest(g_store, &a, 1, th_ingest_cb, &w), 0);
    /* a request queued behind it goes into the next batch */
    store_alert_t b = th_sample_alert("Next batch", "fp-next-batch");
    th_ingest_t w2;
    th_ingest_init(&w2);
    /* only once the writer waits inside the first batch */
    lock_waiter_t first = {.c = g_db};
    assert_true(th_wait_until(store_waits_for_lock, &first, 10000));
    assert_int_equal(store_ingest(g_store, &b, 1, th_ingest_cb, &w2), 0);
    /* first kill: the batch is retried on a new connection and waits again;
     * second kill: it fails */
    int64_t last = 0;
    assert_true(kill_waiting_writer(g_db, &last));
    assert_true(kill_waiting_writer(g_db, &last));
    th_ingest_wait(&w);
    assert_int_equal(w.status, STORE_UNAVAILABLE);
    th_ingest_wait(&w2);
    assert_int_equal(w2.status, STORE_OK);
    assert_int_equal(count_title("Blocked"), 0);
    assert_int_equal(count_title("Next batch"), 1);
    th_ingest_dispose(&w);
    th_ingest_dispose(&w2);

    /* once killed, retried and let through: committed */
    th_ingest_init(&w);
    assert_int_equal(store_ingest(g_store, &a, 1, th_ingest_cb, &w), 0);
    assert_true(kill_waiting_writer(g_db, &last));
    /* the retry waits for the lock again, on a new session, then is let through */
    lock_waiter_t retry = {.c = g_db, .skip = last};
    assert_true(th_wait_until(store_waits_for_lock, &retry, 10000));
    th_int(g_db, "SELECT pg_advisory_unlock(hashtextextended('fp-blocked', 0))", 0);
    th_ingest_wait(&w);
    assert_int_equal(w.status, STORE_OK);
    assert_false(w.out[0].is_duplicate);
    th_ingest_dispose(&w);
    assert_int_equal(count_title("Blocked"), 1);
}

static void test_connection_killed_after_commit_sent(void **state)
{
    (void)state;
    /* The writer waits on a row lock inside the second pipeline (COMMIT
     * already sent). A terminated session reports the error first, so the
     * server cannot have committed: the batch is retried, then fails;
     * nothing is written either time. */
    PGconn *tx = th_connect(g_ci);
    th_int(tx, "BEGIN", 0);
    assert_int_equal(
        th_int(tx,
               "SELECT count(*) FROM (SELECT id FROM alerts WHERE fingerprint = 'fp-before'"
               " FOR UPDATE) s",
               0),
        1);
    store_alert_t a = th_sample_alert("Before outage", "fp-before");
    th_ingest_t w;
    th_ingest_init(&w);
    assert_int_equal(store_ingest(g_store, &a, 1, th_ingest_cb, &w), 0);
    int64_t last = 0;
    assert_true(kill_waiting_writer(g_db, &last));
    assert_true(kill_waiting_writer(g_db, &last));
    th_ingest_wait(&w);
    assert_int_equal(w.status, STORE_UNAVAILABLE);
    th_ingest_dispose(&w);
    th_int(tx, "COMMIT", 0);
    PQfinish(tx);
    assert_int_equal(
        th_int(g_db, "SELECT duplicate_count FROM alerts WHERE fingerprint = 'fp-before'", 0), 0);
    assert_int_equal(th_ingest_sync(g_store, &a, 1, &w), STORE_OK);
    assert_true(w.out[0].is_duplicate);
    assert_int_equal(w.out[0].duplicate_count, 1);
    th_ingest_dispose(&w);
}

static void test_stale_connection_after_kill(void **state)
{
    (void)state;
    /* all connections of the store are killed while idle: the next ingest and
     * the next query still succeed (on a fresh connection). The ingest just
     * before makes the writer's next batch come within the 2 s in which it
     * runs no other statement first (the live-worker plan): the batch itself
     * has to find its connection closed before the alerts' COMMIT is sent,
     * since after that a lost connection means "outcome unknown". */
    store_alert_t b = th_sample_alert("Before kill", "fp-before-kill");
    th_ingest_t wb;
    assert_int_equal(th_ingest_sync(g_store, &b, 1, &wb), STORE_OK);
    th_ingest_dispose(&wb);
    th_int(g_db,
           "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE"
           " datname = current_database() AND application_name = 'alertmapd'",
           0);
    assert_true(th_wait_until(store_sessions_gone, g_db, 10000));
    store_alert_t a = th_sample_alert("After kill", "fp-after-kill");
    th_ingest_t w;
    assert_int_equal(th_ingest_sync(g_store, &a, 1, &w), STORE_OK);
    th_ingest_dispose(&w);
    th_reply_t r;
    store_query_t q = {.kind = STORE_Q_LIST_ALERTS, .limit = 1};
    th_query(g_store, &q, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "After kill"));
    th_reply_dispose(&r);
}

/* The server crashes (immediate shutdown: no FATAL message, just a
 * warning and the socket closed) and comes back while the store is idle:
 * the first ingest after it still succeeds at once. The writer must find
 * its connection closed before the alerts' COMMIT is handed over (batch.c:
 * the first of the batch's two pipelines ends before the alerts); a COMMIT
 * sent on it would end with "outcome unknown" (STORE_UNAVAILABLE). */
static void test_stale_connection_after_crash(void **state)
{
    (void)state;
    store_alert_t b = th_sample_alert("Before crash", "fp-before-crash");
    th_ingest_t w;
    assert_int_equal(th_ingest_sync(g_store, &b, 1, &w), STORE_OK);
    th_ingest_dispose(&w);
    int64_t t0 = am_now_us();
    th_pg("kill", g_dir);
    th_pg("start", g_dir);
    /* within the 2 s in which the writer runs no statement of its own
     * before a batch (the live-worker plan), else that statement would
     * have found the connection closed first */
    print_message("restart took %lld ms\n", (long long)((am_now_us() - t0) / 1000));
    store_alert_t a = th_sample_alert("After crash", "fp-after-crash");
    store_status_t st = th_ingest_sync(g_store, &a, 1, &w);
    if (st != STORE_OK)
        print_message("ingest after the crash: %s\n", w.message);
    assert_int_equal(st, STORE_OK);
    th_ingest_dispose(&w);
    assert_int_equal(count_title("Before crash"), 1);
    assert_int_equal(count_title("After crash"), 1);
}

int main(void)
{
    if (getenv("ALERTMAP_TEST_PGHOST") == NULL) {
        fprintf(stderr, "FAIL: ALERTMAP_TEST_PGHOST is not set (the storage suite needs a "
                        "running PostgreSQL; this test also starts its own with scripts/pg)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_database_stopped_and_restarted),
        cmocka_unit_test(test_connection_killed_mid_batch),
        cmocka_unit_test(test_connection_killed_after_commit_sent),
        cmocka_unit_test(test_stale_connection_after_kill),
        cmocka_unit_test(test_stale_connection_after_crash),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
