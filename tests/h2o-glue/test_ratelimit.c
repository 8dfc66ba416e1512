/* tests/h2o-glue/test_ratelimit.c - token buckets with an injected clock:
 * burst then refusal with Retry-After, refill over time, keys independent,
 * bounded table with eviction, and many threads sharing one bucket. */
#include "ratelimit.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <stdatomic.h>

static _Atomic int64_t g_now = 1000000000;

static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return atomic_load(&g_now);
}

static void advance_ms(int64_t ms)
{
    atomic_fetch_add(&g_now, ms * 1000);
}

static glue_ratelimit_t *limiter(double rate, double burst, size_t entries)
{
    glue_ratelimit_options_t o = {
        .rate = rate, .burst = burst, .entries = entries, .clock = fake_clock};
    glue_ratelimit_t *rl = glue_ratelimit_new(&o);
    assert_non_null(rl);
    return rl;
}

static int64_t take(glue_ratelimit_t *rl, const char *key)
{
    return glue_ratelimit_take(rl, key, strlen(key));
}

static void test_options(void **state)
{
    (void)state;
    glue_ratelimit_options_t o = {.rate = 0, .burst = 10};
    assert_null(glue_ratelimit_new(&o));
    o.rate = 1;
    o.burst = 0.5;
    assert_null(glue_ratelimit_new(&o));
    o.burst = 1;
    o.entries = (size_t)1 << 30;
    assert_null(glue_ratelimit_new(&o));
    assert_null(glue_ratelimit_new(NULL));
    glue_ratelimit_free(NULL);
    o.entries = 0; /* the default table, the real clock */
    glue_ratelimit_t *rl = glue_ratelimit_new(&o);
    assert_non_null(rl);
    assert_int_equal(take(rl, "k"), 0);
    glue_ratelimit_free(rl);
}

static void test_burst_then_retry_after(void **state)
{
    (void)state;
    glue_ratelimit_t *rl = limiter(10, 50, 64); /* 10/s, burst 50 */
    for (int i = 0; i < 50; i++)
        assert_int_equal(take(rl, "amk_aaaaaaaa"), 0);
    assert_int_equal(take(rl, "amk_aaaaaaaa"), 1); /* 1 token in 0.1 s: Retry-After 1 */
    /* another key is served normally */
    assert_int_equal(take(rl, "amk_bbbbbbbb"), 0);
    /* 100 ms later one token is back, exactly one */
    advance_ms(100);
    assert_int_equal(take(rl, "amk_aaaaaaaa"), 0);
    assert_int_equal(take(rl, "amk_aaaaaaaa"), 1);
    /* refused requests take nothing: after 1 s there are 10 */
    advance_ms(1000);
    for (int i = 0; i < 10; i++)
        assert_int_equal(take(rl, "amk_aaaaaaaa"), 0);
    assert_int_equal(take(rl, "amk_aaaaaaaa"), 1);
    /* the bucket never holds more than burst */
    advance_ms(3600 * 1000);
    for (int i = 0; i < 50; i++)
        assert_int_equal(take(rl, "amk_aaaaaaaa"), 0);
    assert_int_equal(take(rl, "amk_aaaaaaaa"), 1);
    glue_ratelimit_stats_t st;
    glue_ratelimit_stats(rl, &st);
    assert_int_equal(st.limited, 4);
    assert_int_equal(st.allowed, 50 + 1 + 1 + 10 + 50);
    glue_ratelimit_free(rl);
}

static void test_slow_rate_retry_after(void **state)
{
    (void)state;
    glue_ratelimit_t *rl = limiter(0.1, 1, 64); /* one per 10 s */
    assert_int_equal(take(rl, "src"), 0);
    assert_int_equal(take(rl, "src"), 10);
    advance_ms(4000);
    assert_int_equal(take(rl, "src"), 6);
    advance_ms(5500);
    assert_int_equal(take(rl, "src"), 1); /* 0.5 s left: rounded up */
    advance_ms(500);
    assert_int_equal(take(rl, "src"), 0);
    glue_ratelimit_free(rl);
}

/* A clock that goes backwards (it should not, but a test clock may) never
 * creates tokens. */
static void test_clock_backwards(void **state)
{
    (void)state;
    glue_ratelimit_t *rl = limiter(1, 2, 64);
    assert_int_equal(take(rl, "k"), 0);
    assert_int_equal(take(rl, "k"), 0);
    advance_ms(-5000);
    assert_true(take(rl, "k") >= 1);
    advance_ms(5000);
    assert_true(take(rl, "k") >= 1);
    advance_ms(1000);
    assert_int_equal(take(rl, "k"), 0);
    glue_ratelimit_free(rl);
}

static void test_keys_compare_fully(void **state)
{
    (void)state;
    glue_ratelimit_t *rl = limiter(1, 1, 64);
    char a[200], b[200];
    memset(a, 'x', sizeof(a));
    memset(b, 'x', sizeof(b));
    b[150] = 'y'; /* differs only after the stored 64 bytes */
    assert_int_equal(glue_ratelimit_take(rl, a, sizeof(a)), 0);
    assert_int_equal(glue_ratelimit_take(rl, a, sizeof(a)), 1);
    assert_int_equal(glue_ratelimit_take(rl, b, sizeof(b)), 0);
    assert_int_equal(glue_ratelimit_take(rl, a, 100), 0); /* a prefix is another key */
    assert_int_equal(glue_ratelimit_take(rl, "", 0), 0);
    glue_ratelimit_free(rl);
}

/* A table of 8 buckets (one set) and many keys: memory stays bounded, and a
 * key that keeps being limited is not forgotten when others come and go
 * (forgetting it would hand it a fresh burst). */
static void test_bounded_eviction(void **state)
{
    (void)state;
    glue_ratelimit_t *rl = limiter(1, 2, 8);
    assert_int_equal(take(rl, "hot"), 0);
    assert_int_equal(take(rl, "hot"), 0);
    /* 2001 one-off keys over 2 s while the hot key keeps knocking: it gets
     * the 2 tokens that refill in 2 s, not a burst per eviction */
    char key[32];
    int hot_allowed = 0;
    for (int i = 0; i <= 2000; i++) {
        hot_allowed += take(rl, "hot") == 0;
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(take(rl, key), 0); /* a new key always gets a bucket */
        advance_ms(1);
    }
    assert_int_equal(hot_allowed, 2);
    glue_ratelimit_stats_t st;
    glue_ratelimit_stats(rl, &st);
    assert_true(st.evicted > 0); /* one-off keys were forgotten while not yet full */

    /* 8 keys all being limited, a ninth arrives: the least recently used is
     * evicted and counted */
    glue_ratelimit_t *r2 = limiter(0.001, 1, 8);
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "busy%d", i);
        assert_int_equal(take(r2, key), 0);
        advance_ms(1);
    }
    assert_int_equal(take(r2, "ninth"), 0);
    glue_ratelimit_stats(r2, &st);
    assert_int_equal(st.evicted, 1);
    assert_true(take(r2, "busy7") > 0);     /* still known and empty */
    assert_int_equal(take(r2, "busy0"), 0); /* forgotten: a new full bucket */
    glue_ratelimit_free(r2);
    glue_ratelimit_free(rl);
}

enum { THREADS = 8, PER_THREAD = 5000 };

typedef struct worker {
    glue_ratelimit_t *rl;
    int id;
    int allowed_shared;
} worker_t;

static void *hammer(void *arg)
{
    worker_t *w = arg;
    char own[16];
    snprintf(own, sizeof(own), "own%d", w->id);
    for (int i = 0; i < PER_THREAD; i++) {
        if (take(w->rl, "shared") == 0)
            w->allowed_shared++;
        take(w->rl, own);
    }
    return NULL;
}

/* Frozen clock: exactly burst requests of the shared key pass, whatever the
 * interleaving of the threads. */
static void test_threads_share_a_bucket(void **state)
{
    (void)state;
    glue_ratelimit_t *rl = limiter(100, 1000, 4096);
    pthread_t t[THREADS];
    worker_t w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){.rl = rl, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        total += w[i].allowed_shared;
    }
    assert_int_equal(total, 1000);
    glue_ratelimit_stats_t st;
    glue_ratelimit_stats(rl, &st);
    assert_int_equal(st.allowed + st.limited, 2 * THREADS * PER_THREAD);
    assert_int_equal(st.allowed, 1000 + THREADS * 1000);
    glue_ratelimit_free(rl);
}

static void test_parse(void **state)
{
    (void)state;
    double r = -1, b = -1;
    bool off = true;
    assert_int_equal(glue_ratelimit_parse(&r, &b, &off, "100:1000"), 0);
    assert_true(r == 100 && b == 1000 && !off);
    assert_int_equal(glue_ratelimit_parse(&r, &b, &off, "0.5"), 0);
    assert_true(r == 0.5 && b == 5 && !off);
    assert_int_equal(glue_ratelimit_parse(&r, &b, &off, "0.01"), 0);
    assert_true(r == 0.01 && b == 1);
    assert_int_equal(glue_ratelimit_parse(&r, &b, &off, "20:20"), 0);
    assert_true(r == 20 && b == 20);
    assert_int_equal(glue_ratelimit_parse(&r, &b, &off, "0"), 0);
    assert_true(off);
    assert_int_equal(glue_ratelimit_parse(&r, &b, &off, "off"), 0);
    assert_true(off);
    const char *bad[] = {"",         ":",    "10:", ":10", "-1",  "1e3", "10:0.5", "abc",
                         "10:20:30", "0:10", "nan", "inf", "10 ", " 10", "1.2.3",  "99999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = b = -1;
        off = true;
        if (glue_ratelimit_parse(&r, &b, &off, bad[i]) != AM_EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_true(r == -1 && b == -1 && off); /* nothing set */
    }
    assert_int_equal(glue_ratelimit_parse(&r, &b, &off, NULL), AM_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_burst_then_retry_after),
        cmocka_unit_test(test_slow_rate_retry_after),
        cmocka_unit_test(test_clock_backwards),
        cmocka_unit_test(test_keys_compare_fully),
        cmocka_unit_test(test_bounded_eviction),
        cmocka_unit_test(test_threads_share_a_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
