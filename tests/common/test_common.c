/* tests/common/test_common.c - buffer, diagnostics, time and helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "am.h"

static void buf_grows_and_bounds(void **state)
{
    (void)state;
    am_buf_t b;
    am_buf_init(&b, 0);
    for (int i = 0; i < 1000; i++)
        am_buf_printf(&b, "%d,", i);
    assert_true(am_buf_ok(&b));
    assert_memory_equal(b.data, "0,1,2,", 6);
    char *s = am_buf_steal(&b);
    assert_non_null(s);
    free(s);

    am_buf_init(&b, 4);
    am_buf_puts(&b, "abcd");
    assert_true(am_buf_ok(&b));
    am_buf_putc(&b, 'e');
    assert_false(am_buf_ok(&b));
    assert_null(am_buf_steal(&b));
}

static void diags_sort_and_print(void **state)
{
    (void)state;
    am_diags_t d;
    am_diags_init(&d);
    am_diags_add(&d, "b.yaml", 3, 1, "third");
    am_diags_add(&d, "a.yaml", 9, 2, "second");
    am_diags_add(&d, "a.yaml", 2, 7, "first %d", 1);
    am_diags_sort(&d);
    assert_int_equal(d.count, 3);
    assert_string_equal(d.items[0].msg, "first 1");
    assert_string_equal(d.items[2].file, "b.yaml");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    am_diags_print(&d, f);
    fclose(f);
    assert_string_equal(text, "a.yaml:2:7: first 1\na.yaml:9:2: second\nb.yaml:3:1: third\n");
    free(text);
    am_diags_dispose(&d);
}

static void time_format(void **state)
{
    (void)state;
    char buf[32];
    am_format_time(buf, 1714557600LL * 1000000);
    assert_string_equal(buf, "2024-05-01T10:00:00Z");
    am_format_time(buf, 1714557600LL * 1000000 + 120000);
    assert_string_equal(buf, "2024-05-01T10:00:00.12Z");
    am_format_time(buf, -1);
    assert_string_equal(buf, "1969-12-31T23:59:59.999999Z");
}

static void hex_and_ct_equal(void **state)
{
    (void)state;
    char out[7];
    const unsigned char in[] = {0x00, 0xab, 0xff};
    am_hex(out, in, 3);
    assert_string_equal(out, "00abff");
    assert_true(am_ct_equal("abc", 3, "abc", 3));
    assert_false(am_ct_equal("abc", 3, "abd", 3));
    assert_false(am_ct_equal("abc", 3, "ab", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_grows_and_bounds),
        cmocka_unit_test(diags_sort_and_print),
        cmocka_unit_test(time_format),
        cmocka_unit_test(hex_and_ct_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
