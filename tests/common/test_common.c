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

static void hex_value(void **state)
{
    (void)state;
    assert_int_equal(am_hex_value('0'), 0);
    assert_int_equal(am_hex_value('9'), 9);
    assert_int_equal(am_hex_value('a'), 10);
    assert_int_equal(am_hex_value('F'), 15);
    assert_int_equal(am_hex_value('g'), -1);
    assert_int_equal(am_hex_value('G'), -1);
    assert_int_equal(am_hex_value('/'), -1);
    assert_int_equal(am_hex_value('\0'), -1);
    assert_int_equal(am_hex_value((char)0xe0), -1);
}

static void calendar(void **state)
{
    (void)state;
    assert_int_equal(am_days_in_month(2023, 2), 28);
    assert_int_equal(am_days_in_month(2024, 2), 29);
    assert_int_equal(am_days_in_month(1900, 2), 28); /* century, not leap */
    assert_int_equal(am_days_in_month(2000, 2), 29); /* 400 years, leap */
    assert_int_equal(am_days_in_month(2024, 4), 30);
    assert_int_equal(am_days_in_month(2024, 12), 31);
    assert_int_equal(am_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(am_days_from_civil(1969, 12, 31), -1);
    assert_int_equal(am_days_from_civil(2000, 2, 29), 11016);
    assert_int_equal(am_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(am_days_from_civil(1900, 3, 1), -25508);
    assert_int_equal(am_days_from_civil(2024, 5, 1), 19844);
    assert_int_equal(am_days_from_civil(1, 1, 1), -719162);
    assert_int_equal(am_days_from_civil(9999, 12, 31), 2932896);
    /* consecutive days over four centuries: no gap, no overlap */
    int64_t prev = am_days_from_civil(1899, 12, 31);
    for (int y = 1900; y < 2300; y++)
        for (int m = 1; m <= 12; m++)
            for (int d = 1; d <= am_days_in_month(y, m); d++) {
                int64_t cur = am_days_from_civil(y, m, d);
                assert_int_equal(cur, prev + 1);
                prev = cur;
            }
}

static void buf_json_string(void **state)
{
    (void)state;
    am_buf_t b;
    am_buf_init(&b, 0);
    const char in[] = "a\"b\\c\n\r\t\x01\x1f\x7f \xc3\xa9/";
    am_buf_json_string(&b, in, sizeof(in) - 1);
    assert_true(am_buf_ok(&b));
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\r\\t\\u0001\\u001f\x7f \xc3\xa9/\"");
    am_buf_dispose(&b);

    /* length-bounded: a NUL inside is escaped, bytes past n are not read */
    am_buf_init(&b, 0);
    am_buf_json_string(&b, "x\0yz", 3);
    assert_string_equal(b.data, "\"x\\u0000y\"");
    am_buf_dispose(&b);

    am_buf_init(&b, 0);
    am_buf_json_string(&b, NULL, 0);
    am_buf_json_string(&b, "", 0);
    assert_string_equal(b.data, "\"\"\"\"");
    am_buf_dispose(&b);

    /* over the buffer bound: the buffer fails instead of truncating */
    am_buf_init(&b, 8);
    am_buf_json_string(&b, "\n\n\n\n", 4);
    assert_false(am_buf_ok(&b));
    am_buf_dispose(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buf_grows_and_bounds),
        cmocka_unit_test(buf_json_string),
        cmocka_unit_test(diags_sort_and_print),
        cmocka_unit_test(time_format),
        cmocka_unit_test(hex_and_ct_equal),
        cmocka_unit_test(hex_value),
        cmocka_unit_test(calendar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
