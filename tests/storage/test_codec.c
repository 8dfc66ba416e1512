/* tests/storage/test_codec.c - the small parsers and writers of storage/
 * (uuid, RFC 3339, cursor, JSON strings, array literals). Pure: no database.
 */
#include "store_internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static void test_rfc3339(void **state)
{
    (void)state;
    int64_t t;
    assert_int_equal(store_rfc3339_parse("2024-05-01T10:00:00Z", &t), 0);
    assert_int_equal(t, INT64_C(1714557600000000));
    assert_int_equal(store_rfc3339_parse("2024-05-01T12:00:00.123456+02:00", &t), 0);
    assert_int_equal(t, INT64_C(1714557600123456));
    assert_int_equal(store_rfc3339_parse("2024-05-01t10:00:00.5z", &t), 0);
    assert_int_equal(t, INT64_C(1714557600500000));
    assert_int_equal(store_rfc3339_parse("2024-05-01T05:30:00-04:30", &t), 0);
    assert_int_equal(t, INT64_C(1714557600000000));
    assert_int_equal(store_rfc3339_parse("2024-02-29T00:00:00Z", &t), 0);
    assert_int_equal(store_rfc3339_parse("1969-12-31T23:59:59Z", &t), 0);
    assert_int_equal(t, -1000000);
    const char *bad[] = {"",
                         "2024-05-01",
                         "2024-05-01T10:00:00",
                         "2024-05-01T10:00:00+0200",
                         "2023-02-29T00:00:00Z",
                         "2024-13-01T00:00:00Z",
                         "2024-05-01T24:00:00Z",
                         "2024-05-01T10:00:00.Z",
                         "2024-05-01T10:00:00Zjunk",
                         "yesterday",
                         "2024-05-01T10:00:00.1234567890Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (store_rfc3339_parse(bad[i], &t) != AM_EINVAL)
            fail_msg("\"%s\" accepted", bad[i]);
}

static void test_cursor(void **state)
{
    (void)state;
    char c[64];
    int64_t us, id;
    store_cursor_encode(c, INT64_C(1714557600123456), 42);
    assert_int_equal(store_cursor_decode(c, &us, &id), 0);
    assert_int_equal(us, INT64_C(1714557600123456));
    assert_int_equal(id, 42);
    for (size_t i = 0; c[i]; i++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", c[i]));
    store_cursor_encode(c, -5, 1);
    assert_int_equal(store_cursor_decode(c, &us, &id), 0);
    assert_int_equal(us, -5);
    const char *bad[] = {"",
                         "!!!!",
                         "MTIz",
                         /* "123": no dot */ "LjE", /* ".1" */
                         "MS4w" /* "1.0": id must be > 0 */,
                         "MS5h" /* "1.a" */};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (store_cursor_decode(bad[i], &us, &id) != AM_EINVAL)
            fail_msg("cursor \"%s\" accepted", bad[i]);
}

static void test_uuid(void **state)
{
    (void)state;
    assert_true(store_uuid_valid("123e4567-e89b-12d3-a456-426614174000"));
    assert_true(store_uuid_valid("123E4567-E89B-12D3-A456-426614174000"));
    assert_false(store_uuid_valid("123e4567e89b12d3a456426614174000"));
    assert_false(store_uuid_valid("123e4567-e89b-12d3-a456-42661417400g"));
    assert_false(store_uuid_valid("123e4567-e89b-12d3-a456-4266141740000"));
    assert_false(store_uuid_valid(""));
    assert_false(store_uuid_valid(NULL));
}

static void test_json_and_arrays(void **state)
{
    (void)state;
    am_buf_t b;
    am_buf_init(&b, 0);
    am_buf_putc(&b, '{');
    store_json_put_key(&b, "a");
    store_json_put_str(&b, "q\"b\\n\nt\t\x01é");
    store_json_put_key(&b, "b");
    store_json_put_str(&b, NULL);
    store_json_put_key(&b, "t");
    store_json_put_time_us(&b, "1714557600100000");
    am_buf_putc(&b, '}');
    assert_string_equal(b.data, "{\"a\":\"q\\\"b\\\\n\\nt\\t\\u0001é\",\"b\":null,"
                                "\"t\":\"2024-05-01T10:00:00.1Z\"}");
    am_buf_dispose(&b);
    const char *v[] = {"plain", "with \"quote\"", "back\\slash", NULL, ""};
    am_buf_init(&b, 0);
    store_pg_text_array(&b, v, 5);
    assert_string_equal(b.data, "{\"plain\",\"with \\\"quote\\\"\",\"back\\\\slash\",NULL,\"\"}");
    am_buf_dispose(&b);
    char *e = store_json_error("NOT_FOUND", "no alert %s", "x\"y");
    assert_string_equal(e, "{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"no alert x\\\"y\"}}");
    free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_cursor),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_json_and_arrays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
