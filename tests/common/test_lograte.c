/* tests/common/test_lograte.c - am_lograte: one line per interval with the
 * count of the events it stands for, also under concurrent threads. */
#include "am.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static void test_once_per_second_with_count(void **state)
{
    (void)state;
    am_lograte_t lr;
    am_lograte_init(&lr, 0); /* one second */
    int64_t t = 5000000;
    assert_int_equal(am_lograte_hit(&lr, t), 1); /* the first event logs at once */
    /* an outage: one event per millisecond for 3.5 s */
    int lines = 0;
    uint64_t reported = 1;
    for (int i = 1; i <= 3500; i++) {
        uint64_t n = am_lograte_hit(&lr, t + i * 1000);
        if (n > 0) {
            lines++;
            reported += n;
        }
    }
    assert_int_equal(lines, 3); /* at 1 s, 2 s and 3 s */
    /* what the last line did not report is still counted */
    reported += am_lograte_take(&lr);
    assert_int_equal(reported, 3501);
    assert_int_equal(am_lograte_take(&lr), 0);
}

static void test_counts_carry_to_next_line(void **state)
{
    (void)state;
    am_lograte_t lr = AM_LOGRATE_INIT(100000); /* 100 ms */
    assert_int_equal(am_lograte_hit(&lr, 0), 1);
    assert_int_equal(am_lograte_hit(&lr, 10000), 0);
    assert_int_equal(am_lograte_hit(&lr, 99999), 0);
    assert_int_equal(am_lograte_hit(&lr, 100000), 3); /* two suppressed, and this one */
    /* a quiet period, then one event: a line with count 1 */
    assert_int_equal(am_lograte_hit(&lr, 900000), 1);
}

enum { THREADS = 8, EVENTS = 20000 };

typedef struct ctx {
    am_lograte_t *lr;
    uint64_t reported;
    int lines;
} ctx_t;

static void *burst(void *arg)
{
    ctx_t *c = arg;
    for (int i = 0; i < EVENTS; i++) {
        /* every thread sees the same 10 s pass */
        uint64_t n = am_lograte_hit(c->lr, (int64_t)i * 500);
        if (n > 0) {
            c->lines++;
            c->reported += n;
        }
    }
    return NULL;
}

/* Threads race: no event is lost or counted twice, and at most one line is
 * written per interval. */
static void test_threads(void **state)
{
    (void)state;
    am_lograte_t lr;
    am_lograte_init(&lr, 1000000);
    pthread_t t[THREADS];
    ctx_t c[THREADS];
    for (int i = 0; i < THREADS; i++) {
        c[i] = (ctx_t){.lr = &lr};
        assert_int_equal(pthread_create(&t[i], NULL, burst, &c[i]), 0);
    }
    uint64_t reported = 0;
    int lines = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        reported += c[i].reported;
        lines += c[i].lines;
    }
    reported += am_lograte_take(&lr);
    assert_int_equal(reported, (uint64_t)THREADS * EVENTS);
    /* 10 s of events: at most 10 lines (one per second) */
    assert_true(lines >= 1 && lines <= 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_once_per_second_with_count),
        cmocka_unit_test(test_counts_carry_to_next_line),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
