/* tests/engine/test_json_in.c - reading a request body (engine/json_in.c):
 * integers beyond 64 bits become exact strings, numbers PostgreSQL cannot
 * store are refused, the value count is bounded before jansson allocates,
 * invalid JSON keeps jansson's message; the fast reader (json_fast.c)
 * builds jansson's tree or leaves the text to jansson. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "json_internal.h"

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

/* eng_json_fast(text) is NULL (fast false) or jansson's tree, same order. */
static void check_fast(const char *text, size_t len, bool fast)
{
    json_t *f = eng_json_fast(text, len);
    json_error_t je;
    json_t *ref = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!fast) {
        if (f != NULL)
            fail_msg("fast reader took %.*s", (int)len, text);
    } else {
        if (f == NULL || ref == NULL)
            fail_msg("fast reader %s, jansson %s: %.*s", f ? "took" : "refused",
                     ref ? "took" : je.text, (int)len, text);
        char *a = json_dumps(f, JSON_ENCODE_ANY | JSON_COMPACT);
        char *b = json_dumps(ref, JSON_ENCODE_ANY | JSON_COMPACT);
        if (!json_equal(f, ref) || strcmp(a, b) != 0)
            fail_msg("%.*s: fast %s, jansson %s", (int)len, text, a, b);
        free(a);
        free(b);
    }
    json_decref(f);
    json_decref(ref);
}

static void fast_reader_builds_janssons_tree(void **state)
{
    (void)state;
    static const char *const same[] = {
        "{}",
        "[]",
        " {\"a\" : [ ] , \"b\":{ }}\r\n\t",
        "\"s\"",
        "0",
        "-0",
        "1.5",
        "-0.0",
        "1e5",
        "1E-5",
        "2.5e+3",
        "9223372036854775807",
        "-9223372036854775808",
        "true",
        "null",
        "[false,true,null,1,\"x\"]",
        "{\"z\":1,\"a\":2,\"m\":{\"y\":[1,{\"b\":null}]}}",
        "{\"e\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
        "{\"u\":\"\\u00e9\\u20ac\\uD83D\\uDE00\\u0041\"}",
        "{\"k\\u00e9y\":1,\"k\\u00e9\":2}",
        "{\"utf8\":\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f\"}",
        "{\"long\":\"0123456789012345678901234567890123456789012345678901234567890123456789\\n\"}",
        "{\"0123456789012345678901234567890123456789012345678901234567890123456789\\t\":[]}",
        "[1.7976931348623157e308, 2.2250738585072014e-308, 0.1, 123456789.123456789]",
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
        check_fast(same[i], strlen(same[i]), true);
    /* what the fast reader leaves to jansson (which refuses most of it) */
    static const char *const left[] = {
        "",
        " ",
        "{",
        "{\"a\":1,}",
        "[1,]",
        "{\"a\" 1}",
        "{\"a\":1,\"a\":2}",
        "01",
        "-",
        "1.",
        ".5",
        "1e",
        "+1",
        "tru",
        "truex",
        "nul",
        "\"\\u0000\"",
        "\"\\uD800\"",
        "\"\\uDC00\"",
        "\"\\uD800\\u0041\"",
        "\"\\x\"",
        "\"\\u12\"",
        "\"a\x01\"",
        "\"\xc0\x80\"",
        "\"\xed\xa0\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xff\"",
        "\"\xc3\"",
        "{} x",
        "[1] [2]",
        "9223372036854775808",
        "1e-400",
        "5e-324",
        "\xef\xbb\xbf{}",
        "\"unterminated",
        "[\"a\\\"]",
    };
    for (size_t i = 0; i < sizeof(left) / sizeof(left[0]); i++)
        check_fast(left[i], strlen(left[i]), false);
    /* a NUL byte in the text, and a text that is not NUL-terminated */
    check_fast("{\"a\":\"b\0\"}", 9, false);
    check_fast("[1,2]9", 5, true);
    /* every byte in a string, alone and after plain ones: jansson's verdict */
    for (int c = 1; c < 256; c++) {
        char t[16];
        int n = snprintf(t, sizeof(t), "[\"%c\",\"ab%ccd\"]", c, c);
        json_error_t je;
        json_t *ref = json_loadb(t, (size_t)n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
        check_fast(t, (size_t)n, ref != NULL && c != '\\' ? 1 : 0);
        json_decref(ref);
    }
    /* nesting: plain up to 64, then jansson's */
    char deep[300];
    for (int d = 60; d <= 70; d += 10) {
        memset(deep, '[', (size_t)d);
        memset(deep + d, ']', (size_t)d);
        check_fast(deep, 2 * (size_t)d, d <= 64);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(big_integers_become_exact_strings),
        cmocka_unit_test(numbers_postgresql_cannot_store),
        cmocka_unit_test(value_count_bounded),
        cmocka_unit_test(invalid_json_keeps_jansson_message),
        cmocka_unit_test(fast_reader_builds_janssons_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
