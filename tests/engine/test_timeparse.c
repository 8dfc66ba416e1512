/* tests/engine/test_timeparse.c - ISO-8601 and epoch parsing (engine/timeparse.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "timeparse.h"

/* 2024-05-01T10:00:00Z */
#define T0 INT64_C(1714557600000000)

typedef struct {
    const char *in;
    int64_t want; /* microseconds since the epoch (UTC) */
} good_t;

static const good_t iso_good[] = {
    {"2024-05-01T10:00:00Z", T0},
    {"2024-05-01t10:00:00z", T0},
    {"2024-05-01 10:00:00Z", T0},
    {"2024-05-01T10:00:00", T0}, /* no offset = UTC */
    {"2024-05-01T10:00Z", T0},   /* seconds are optional */
    {"2024-05-01T12:00:00+02:00", T0},
    {"2024-05-01T12:00:00+0200", T0},
    {"2024-05-01T12:00:00+02", T0},
    {"2024-05-01T06:30:00-03:30", T0},
    {"2024-05-01T10:00:00+00:00", T0},
    {"2024-05-01T10:00:00-00:00", T0},
    /* fractions: 1-9 digits, truncated to microseconds */
    {"2024-05-01T10:00:00.1Z", T0 + 100000},
    {"2024-05-01T10:00:00.123Z", T0 + 123000},
    {"2024-05-01T10:00:00.123456Z", T0 + 123456},
    {"2024-05-01T10:00:00.1234567Z", T0 + 123456}, /* .NET / Sentinel: 7 digits */
    {"2024-05-01T10:00:00.123456789Z", T0 + 123456},
    {"2024-05-01T10:00:00.000000999Z", T0},
    {"2024-05-01T12:00:00.5+02:00", T0 + 500000},
    /* calendar edges */
    {"1970-01-01T00:00:00Z", 0},
    {"2024-02-29T23:59:59Z", INT64_C(1709251199000000)}, /* leap year */
    {"2000-02-29T00:00:00Z", INT64_C(951782400000000)},  /* divisible by 400 */
    {"9999-12-31T23:59:59Z", INT64_C(253402300799000000)},
    {"2024-05-01T09:59:60Z", T0}, /* leap second = next minute */
    /* negative offsets crossing midnight (and a year, and a month) */
    {"2023-12-31T23:30:00-02:00", INT64_C(1704072600000000)},
    {"2024-02-28T23:30:00-01:00", INT64_C(1709166600000000)},
    /* positive offset crossing back over midnight */
    {"2024-03-01T00:30:00+01:00", INT64_C(1709249400000000)},
    {"1970-01-01T00:30:00+01:00", INT64_C(-1800000000)},
};

static const char *const iso_bad[] = {
    "",
    "2024",
    "2024-05-01",                      /* a date alone is not an event time */
    "2024-05-01T",                     /* no time */
    "2024-05-01T10",                   /* no minutes */
    "2024-02-30T00:00:00Z",            /* Feb 30 */
    "2023-02-29T00:00:00Z",            /* not a leap year */
    "1900-02-29T00:00:00Z",            /* divisible by 100, not by 400 */
    "2024-04-31T00:00:00Z",            /* April has 30 days */
    "2024-13-01T00:00:00Z",            /* month 13 */
    "2024-00-01T00:00:00Z",            /* month 0 */
    "2024-05-00T00:00:00Z",            /* day 0 */
    "2024-05-01T24:00:00Z",            /* hour 24 */
    "2024-05-01T10:60:00Z",            /* minute 60 */
    "2024-05-01T10:00:61Z",            /* second 61 */
    "0000-01-01T00:00:00Z",            /* year 0 */
    "2024-05-01X10:00:00Z",            /* separator */
    "2024-5-01T10:00:00Z",             /* one-digit month */
    "2024-05-01T10:00:00.Z",           /* empty fraction */
    "2024-05-01T10:00:00.1234567890Z", /* 10 fraction digits */
    "2024-05-01T10:00:00+2:00",
    "2024-05-01T10:00:00+24:00", /* offset hour 24 */
    "2024-05-01T10:00:00+02:60",
    "2024-05-01T10:00:00+02:0",
    "2024-05-01T10:00:00+020",
    "2024-05-01T10:00:00ZZ",
    "2024-05-01T10:00:00 Z",
    " 2024-05-01T10:00:00Z",
    "2024-05-01T10:00:00Z ",
    "2024-05-01T10:00:00UTC",
    "May 1 2024 10:00:00",
    "1714557600",
};

static void iso_table_good(void **state)
{
    (void)state;
    for (size_t i = 0; i < AM_ARRAY_LEN(iso_good); i++) {
        int64_t us = -42;
        int rc = eng_parse_iso8601(&us, iso_good[i].in, strlen(iso_good[i].in));
        if (rc != AM_OK || us != iso_good[i].want)
            fail_msg("%s: rc %d, got %lld, want %lld", iso_good[i].in, rc, (long long)us,
                     (long long)iso_good[i].want);
    }
}

static void iso_table_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < AM_ARRAY_LEN(iso_bad); i++) {
        int64_t us = -42;
        int rc = eng_parse_iso8601(&us, iso_bad[i], strlen(iso_bad[i]));
        if (rc != AM_EINVAL || us != -42)
            fail_msg("'%s' should be rejected (rc %d, us %lld)", iso_bad[i], rc, (long long)us);
    }
}

static void iso_respects_length(void **state)
{
    (void)state;
    int64_t us;
    /* the length bounds the input: trailing bytes beyond it are not read */
    const char *s = "2024-05-01T10:00:00Zgarbage";
    assert_int_equal(eng_parse_iso8601(&us, s, 20), AM_OK);
    assert_int_equal(us, T0);
    assert_int_equal(eng_parse_iso8601(&us, s, 19), AM_OK); /* no zone = UTC */
    assert_int_equal(eng_parse_iso8601(&us, s, 18), AM_EINVAL);
    assert_int_equal(eng_parse_iso8601(&us, NULL, 0), AM_EINVAL);
}

/* JSON values: each row is a JSON text, a format and the result. */
typedef struct {
    const char *json;
    tp_format_t fmt;
    int rc;
    int64_t want;
} json_case_t;

static const json_case_t json_cases[] = {
    /* ISO strings */
    {"\"2024-05-01T10:00:00Z\"", TP_ISO8601, AM_OK, T0},
    {"\"2024-05-01T10:00:00Z\"", TP_AUTO, AM_OK, T0},
    {"\"2024-05-01T10:00:00Z\"", TP_EPOCH_S, AM_EINVAL, 0},
    {"1714557600", TP_ISO8601, AM_EINVAL, 0},
    {"\"1714557600\"", TP_ISO8601, AM_EINVAL, 0},
    /* epoch seconds */
    {"1714557600", TP_EPOCH_S, AM_OK, T0},
    {"1714557600", TP_AUTO, AM_OK, T0},
    {"\"1714557600\"", TP_EPOCH_S, AM_OK, T0},
    {"\"1714557600.123\"", TP_EPOCH_S, AM_OK, T0 + 123000}, /* Splunk _time */
    {"\"1714557600.123\"", TP_AUTO, AM_OK, T0 + 123000},
    {"\"1714557600.1234567891\"", TP_EPOCH_S, AM_OK, T0 + 123456},
    {"1714557600.123", TP_EPOCH_S, AM_OK, T0 + 123000}, /* real: rounded to µs */
    {"1714557600.5", TP_AUTO, AM_OK, T0 + 500000},
    {"0", TP_EPOCH_S, AM_OK, 0},
    {"\"0\"", TP_AUTO, AM_OK, 0},
    {"253402300799", TP_EPOCH_S, AM_OK, INT64_C(253402300799000000)},
    {"253402300800", TP_EPOCH_S, AM_EINVAL, 0}, /* year 10000 */
    {"\"99999999999999999999\"", TP_EPOCH_S, AM_EINVAL, 0},
    /* epoch milliseconds */
    {"1714557600123", TP_EPOCH_MS, AM_OK, T0 + 123000},
    {"1714557600123", TP_AUTO, AM_OK, T0 + 123000}, /* > 1e11 = ms */
    {"\"1714557600123\"", TP_AUTO, AM_OK, T0 + 123000},
    {"\"1714557600123.5\"", TP_EPOCH_MS, AM_OK, T0 + 123500},
    {"1714557600123.0", TP_AUTO, AM_OK, T0 + 123000},
    {"1714557600", TP_EPOCH_MS, AM_OK, INT64_C(1714557600000)},    /* Jan 1970 */
    {"100000000000", TP_AUTO, AM_OK, INT64_C(100000000000000000)}, /* exactly 1e11: s */
    {"100000000001", TP_AUTO, AM_OK, INT64_C(100000000001000)},    /* above: ms */
    /* not times */
    {"null", TP_AUTO, AM_EINVAL, 0},
    {"true", TP_AUTO, AM_EINVAL, 0},
    {"false", TP_EPOCH_S, AM_EINVAL, 0},
    {"{}", TP_AUTO, AM_EINVAL, 0},
    {"[1714557600]", TP_AUTO, AM_EINVAL, 0},
    {"-1", TP_EPOCH_S, AM_EINVAL, 0},
    {"-1.5", TP_AUTO, AM_EINVAL, 0},
    {"\"-1\"", TP_EPOCH_S, AM_EINVAL, 0},
    {"\"+1714557600\"", TP_EPOCH_S, AM_EINVAL, 0},
    {"\"1714557600 \"", TP_EPOCH_S, AM_EINVAL, 0},
    {"\"1.7e9\"", TP_EPOCH_S, AM_EINVAL, 0},
    {"\"1714557600.\"", TP_EPOCH_S, AM_EINVAL, 0},
    {"\".5\"", TP_EPOCH_S, AM_EINVAL, 0},
    {"\"\"", TP_AUTO, AM_EINVAL, 0},
    {"\"yesterday\"", TP_AUTO, AM_EINVAL, 0},
    {"\"1969-12-31T23:59:59Z\"", TP_AUTO, AM_EINVAL, 0}, /* before 1970 */
    {"\"1970-01-01T00:30:00+01:00\"", TP_ISO8601, AM_EINVAL, 0},
};

static void json_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < AM_ARRAY_LEN(json_cases); i++) {
        const json_case_t *c = &json_cases[i];
        json_error_t jerr;
        json_t *v = json_loads(c->json, JSON_DECODE_ANY, &jerr);
        if (v == NULL)
            fail_msg("bad test JSON %s: %s", c->json, jerr.text);
        int64_t us = -42;
        int rc = eng_tp_parse_json(&us, v, c->fmt);
        json_decref(v);
        if (rc != c->rc)
            fail_msg("%s (fmt %d): rc %d, want %d", c->json, (int)c->fmt, rc, c->rc);
        if (rc == AM_OK && us != c->want)
            fail_msg("%s (fmt %d): got %lld, want %lld", c->json, (int)c->fmt, (long long)us,
                     (long long)c->want);
        if (rc != AM_OK && us != -42)
            fail_msg("%s: output written on failure", c->json);
    }
}

static void json_null_pointer(void **state)
{
    (void)state;
    int64_t us;
    assert_int_equal(eng_tp_parse_json(&us, NULL, TP_AUTO), AM_EINVAL);
}

static void format_names(void **state)
{
    (void)state;
    tp_format_t f;
    assert_int_equal(eng_tp_format_parse(&f, "auto"), AM_OK);
    assert_int_equal(f, TP_AUTO);
    assert_int_equal(eng_tp_format_parse(&f, "iso8601"), AM_OK);
    assert_int_equal(f, TP_ISO8601);
    assert_int_equal(eng_tp_format_parse(&f, "epoch_s"), AM_OK);
    assert_int_equal(f, TP_EPOCH_S);
    assert_int_equal(eng_tp_format_parse(&f, "epoch_ms"), AM_OK);
    assert_int_equal(f, TP_EPOCH_MS);
    assert_int_equal(eng_tp_format_parse(&f, "ISO8601"), AM_EINVAL);
    assert_int_equal(eng_tp_format_parse(&f, "rfc3339"), AM_EINVAL);
    assert_int_equal(eng_tp_format_parse(&f, ""), AM_EINVAL);
    assert_int_equal(eng_tp_format_parse(&f, NULL), AM_EINVAL);
}

/* Every parsed time prints back (am_format_time) as the canonical text. */
static void round_trip_with_format(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00Z"},
        {"2024-05-01T10:00:00.1234567Z", "2024-05-01T10:00:00.123456Z"},
        {"2024-05-01T10:00:00.500Z", "2024-05-01T10:00:00.5Z"},
        {"2023-12-31T23:30:00-02:00", "2024-01-01T01:30:00Z"},
        {"2024-02-29T22:00:00-05:00", "2024-03-01T03:00:00Z"},
    };
    for (size_t i = 0; i < AM_ARRAY_LEN(cases); i++) {
        int64_t us;
        char buf[32];
        assert_int_equal(eng_parse_iso8601(&us, cases[i][0], strlen(cases[i][0])), AM_OK);
        am_format_time(buf, us);
        assert_string_equal(buf, cases[i][1]);
    }
}

/* Every day of 1970..2100 parses to consecutive days (checks month lengths
 * and leap years exhaustively). */
static void every_day_is_consecutive(void **state)
{
    (void)state;
    int64_t prev = -86400 * INT64_C(1000000);
    int days = 0;
    for (int y = 1970; y <= 2100; y++) {
        for (int m = 1; m <= 12; m++) {
            for (int d = 1; d <= 31; d++) {
                char s[32];
                snprintf(s, sizeof(s), "%04d-%02d-%02dT00:00:00Z", y, m, d);
                int64_t us;
                int rc = eng_parse_iso8601(&us, s, strlen(s));
                if (rc != AM_OK)
                    continue;
                if (us != prev + 86400 * INT64_C(1000000))
                    fail_msg("%s is not the day after the previous one", s);
                prev = us;
                days++;
            }
        }
    }
    /* 131 years, 32 of them leap years (2100 is not) */
    assert_int_equal(days, 131 * 365 + 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(iso_table_good),         cmocka_unit_test(iso_table_bad),
        cmocka_unit_test(iso_respects_length),    cmocka_unit_test(json_table),
        cmocka_unit_test(json_null_pointer),      cmocka_unit_test(format_names),
        cmocka_unit_test(round_trip_with_format), cmocka_unit_test(every_day_is_consecutive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
