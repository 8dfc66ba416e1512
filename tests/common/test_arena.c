/* tests/common/test_arena.c - the bump allocator and its cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "am.h"

static void alloc_is_aligned_and_distinct(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(256, 0);
    assert_non_null(a);
    char *p = am_arena_alloc(a, 3);
    char *q = am_arena_alloc(a, 5);
    assert_non_null(p);
    assert_non_null(q);
    assert_true(p != q);
    assert_int_equal((uintptr_t)p % 16, 0);
    assert_int_equal((uintptr_t)q % 16, 0);
    am_arena_free(a);
}

static void big_blocks_and_reset(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(256, 0);
    char *small = am_arena_alloc(a, 10);
    char *big = am_arena_alloc(a, 10000);
    assert_non_null(small);
    assert_non_null(big);
    memset(big, 'x', 10000);
    char *after = am_arena_alloc(a, 10);
    assert_non_null(after);
    assert_true(am_arena_used(a) >= 10032);
    am_arena_reset(a);
    assert_int_equal(am_arena_used(a), 0);
    assert_non_null(am_arena_alloc(a, 100));
    am_arena_free(a);
}

static void cap_is_enforced(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(256, 1024);
    assert_non_null(am_arena_alloc(a, 1000));
    assert_null(am_arena_alloc(a, 100));
    am_arena_free(a);
    am_arena_free(NULL);
}

static void strings(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(0, 0);
    assert_string_equal(am_arena_strdup(a, "abc"), "abc");
    assert_string_equal(am_arena_strndup(a, "abcdef", 2), "ab");
    assert_string_equal(am_arena_printf(a, "%d-%s", 42, "x"), "42-x");
    assert_null(am_arena_strdup(a, NULL));
    int *z = am_arena_calloc(a, 4, sizeof(int));
    assert_int_equal(z[0] | z[1] | z[2] | z[3], 0);
    am_arena_free(a);
}

static void grow_doubles_and_copies(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(256, 0);
    int *arr = NULL;
    size_t n = 0, cap = 0;
    for (int i = 0; i < 100; i++) {
        int *g = am_arena_grow(a, arr, n, &cap, sizeof(int));
        assert_non_null(g);
        if (n < 8)
            assert_int_equal(cap, 8);
        assert_true(cap > n);
        arr = g;
        arr[n++] = i;
    }
    assert_int_equal(cap, 128);
    for (int i = 0; i < 100; i++)
        assert_int_equal(arr[i], i);
    /* no room and no memory: NULL, capacity unchanged */
    am_arena_t *tiny = am_arena_new(256, 64);
    size_t c2 = 0;
    assert_null(am_arena_grow(tiny, NULL, 0, &c2, 1024));
    assert_int_equal(c2, 0);
    am_arena_free(tiny);
    am_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(alloc_is_aligned_and_distinct),
        cmocka_unit_test(big_blocks_and_reset),
        cmocka_unit_test(cap_is_enforced),
        cmocka_unit_test(strings),
        cmocka_unit_test(grow_doubles_and_copies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
