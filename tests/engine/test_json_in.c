/* tests/engine/test_json_in.c - reading a request body (engine/json_in.c):
 * integers beyond 64 bits become exact strings, numbers PostgreSQL cannot
 * store are refused, the value count is bounded before jansson allocates,
 * invalid JSON keeps jansson's message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"

static int parse(json_t **out, const char *text, size_t max, eng_error_t *err)
{
    am_arena_t *a = am_arena_new(0, 0);
    memset(err, 0, sizeof(*err));
    int rc = eng_json_parse(out, text, strlen(text), max, a, err);
    am_arena_free(a);
    return rc;
}

static void big_integers_become_exact_strings(void **state)
{
    (void)state;
    json_t *v = NULL;
    eng_error_t err;
    assert_int_equal(parse(&v,
                           "{\"id\": 18446744073709551615, \"n\": -9223372036854775809, "
                           "\"max\": 9223372036854775807, \"min\": -9223372036854775808, "
                           "\"s\": \"1844674407370955161599\", \"r\": 1e400, \"x\": 1.5}",
                           0, &err),
                     AM_OK);
    assert_string_equal(json_string_value(json_object_get(v, "id")), "18446744073709551615");
    assert_string_equal(json_string_value(json_object_get(v, "n")), "-9223372036854775809");
    assert_true(json_is_integer(json_object_get(v, "max")));
    assert_true(json_is_integer(json_object_get(v, "min")));
    assert_string_equal(json_string_value(json_object_get(v, "s")), "1844674407370955161599");
    assert_string_equal(json_string_value(json_object_get(v, "r")), "1e400");
    assert_true(json_is_real(json_object_get(v, "x")));
    json_decref(v);
    /* inside arrays and with escapes around */
    assert_int_equal(parse(&v, "[\"a\\\"1\", 99999999999999999999, {\"k\": [1e999]}]", 0, &err),
                     AM_OK);
    assert_string_equal(json_string_value(json_array_get(v, 1)), "99999999999999999999");
    json_decref(v);
}

static void numbers_postgresql_cannot_store(void **state)
{
    (void)state;
    static const char *const bad[] = {"1e-999999",  "1e999999", "0e-20000",
                                      "1.5e-16383", "1e131072", "-1e999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"a\": [true, %s]}", bad[i]);
        json_t *v = (json_t *)1;
        eng_error_t err;
        assert_int_equal(parse(&v, text, 0, &err), AM_EINVAL);
        assert_null(v);
        assert_string_equal(err.code, "INVALID_PAYLOAD");
        if (strstr(err.message, bad[i]) == NULL || strstr(err.message, "column 14") == NULL)
            fail_msg("%s: %s", bad[i], err.message);
    }
    static const char *const good[] = {"1e-16383", "1e131071", "1.5e-16382", "0", "-0.0"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"a\": %s}", good[i]);
        json_t *v = NULL;
        eng_error_t err;
        assert_int_equal(parse(&v, text, 0, &err), AM_OK);
        json_decref(v);
    }
}

static void value_count_bounded(void **state)
{
    (void)state;
    json_t *v = NULL;
    eng_error_t err;
    /* an object, 3 keys, an array, 3 numbers, a string, a literal: 10 (keys
     * count, as jansson allocates for them too) */
    const char *text = "{\"a\": [1, 2, 3], \"b\": \"x\", \"c\": null}";
    assert_int_equal(parse(&v, text, 10, &err), AM_OK);
    json_decref(v);
    assert_int_equal(parse(&v, text, 9, &err), AM_ELIMIT);
    assert_string_equal(err.code, "LIMIT_EXCEEDED");
    assert_non_null(strstr(err.message, "limit max_json_values: 9"));
}

static void invalid_json_keeps_jansson_message(void **state)
{
    (void)state;
    json_t *v = NULL;
    eng_error_t err;
    assert_int_equal(parse(&v, "{\"a\": 01}", 0, &err), AM_EINVAL);
    assert_string_equal(err.code, "INVALID_JSON");
    assert_int_equal(parse(&v, "{\"a\": 1, \"a\": 2}", 0, &err), AM_EINVAL);
    assert_non_null(strstr(err.message, "duplicate"));
    assert_int_equal(parse(&v, "{\"a\": \"unterminated", 0, &err), AM_EINVAL);
    assert_string_equal(err.code, "INVALID_JSON");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(big_integers_become_exact_strings),
        cmocka_unit_test(numbers_postgresql_cannot_store),
        cmocka_unit_test(value_count_bounded),
        cmocka_unit_test(invalid_json_keeps_jansson_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
