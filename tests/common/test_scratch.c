/* tests/common/test_scratch.c - the per-thread scratch slabs: blocks in a
 * scope, the slab reused once all of its blocks are freed (on any thread),
 * a block kept alive holding it, and the heap outside a scope. Under
 * -Darena_debug and AddressSanitizer every block is the heap's: the reuse
 * checks then expect no reuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "am.h"

#if defined(AM_ARENA_DEBUG) || defined(__SANITIZE_ADDRESS__)
#define SLABS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLABS 0
#endif
#endif
#ifndef SLABS
#define SLABS 1
#endif

static void blocks_in_a_scope(void **state)
{
    (void)state;
    bool was = am_scratch_begin();
    char *p[100];
    for (int i = 0; i < 100; i++) {
        p[i] = am_scratch_malloc((size_t)i * 7);
        assert_non_null(p[i]);
        assert_int_equal((uintptr_t)p[i] % 16, 0);
        memset(p[i], i, (size_t)i * 7);
    }
    for (int i = 1; i < 100; i++)
        for (int k = 0; k < i * 7; k++)
            assert_int_equal((unsigned char)p[i][k], i);
    /* larger than a slab: the heap's */
    char *big = am_scratch_malloc(1 << 20);
    memset(big, 1, 1 << 20);
    am_scratch_end(was);
    for (int i = 0; i < 100; i++)
        am_scratch_free(p[i]);
    am_scratch_free(big);
    am_scratch_free(NULL);
    /* outside a scope: the heap's, freed by either */
    char *h = am_scratch_malloc(32);
    memset(h, 2, 32);
    am_scratch_free(h);
}

static void slab_reused_when_idle(void **state)
{
    (void)state;
    bool was = am_scratch_begin();
    char *a = am_scratch_malloc(64);
    am_scratch_end(was);
    am_scratch_free(a);
    was = am_scratch_begin();
    char *b = am_scratch_malloc(64);
    am_scratch_end(was);
    assert_true((a == b) == SLABS);
    /* b alive at the next scope: the slab is not started over */
    was = am_scratch_begin();
    char *c = am_scratch_malloc(64);
    am_scratch_end(was);
    assert_ptr_not_equal(b, c);
    am_scratch_free(c);
    am_scratch_free(b);
    was = am_scratch_begin();
    char *d = am_scratch_malloc(64);
    am_scratch_end(was);
    assert_true((d == a) == SLABS);
    am_scratch_free(d);
}

static void *free_it(void *p)
{
    am_scratch_free(p);
    return NULL;
}

static void *allocate_there(void *out)
{
    bool was = am_scratch_begin();
    *(char **)out = am_scratch_malloc(48);
    am_scratch_end(was);
    return NULL;
}

static void freed_on_another_thread(void **state)
{
    (void)state;
    bool was = am_scratch_begin();
    char *a = am_scratch_malloc(64);
    am_scratch_end(was);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, free_it, a), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    was = am_scratch_begin();
    char *b = am_scratch_malloc(64);
    am_scratch_end(was);
    assert_true((a == b) == SLABS);
    am_scratch_free(b);
    /* a block of a thread that has exited, freed here; its slab goes to
     * the next thread that needs one */
    char *x = NULL;
    assert_int_equal(pthread_create(&t, NULL, allocate_there, &x), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_non_null(x);
    memset(x, 3, 48);
    am_scratch_free(x);
    char *y = NULL;
    assert_int_equal(pthread_create(&t, NULL, allocate_there, &y), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true((x == y) == SLABS);
    am_scratch_free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(blocks_in_a_scope),
        cmocka_unit_test(slab_reused_when_idle),
        cmocka_unit_test(freed_on_another_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
