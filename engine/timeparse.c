/*
 * engine/timeparse.c - ISO-8601 / RFC 3339 date-times and epoch values into
 * UTC microseconds; see timeparse.h. No libc time functions are used (they
 * depend on the process time zone and are slow): the calendar arithmetic
 * on proleptic Gregorian dates is am_days_from_civil() of common/.
 */
#include "timeparse.h"

#include <math.h> /* isfinite (a macro: no libm needed) */
#include <string.h>

#define US_PER_S INT64_C(1000000)
/* 9999-12-31T23:59:59Z, the last second a 4-digit year can spell. */
#define MAX_EPOCH_S INT64_C(253402300799)

int eng_tp_format_parse(tp_format_t *out, const char *name)
{
    static const struct {
        const char *name;
        tp_format_t fmt;
    } names[] = {
        {"auto", TP_AUTO},
        {"iso8601", TP_ISO8601},
        {"epoch_s", TP_EPOCH_S},
        {"epoch_ms", TP_EPOCH_MS},
    };
    if (name == NULL)
        return AM_EINVAL;
    for (size_t i = 0; i < AM_ARRAY_LEN(names); i++) {
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].fmt;
            return AM_OK;
        }
    }
    return AM_EINVAL;
}

/* Reads exactly n decimal digits at *p (within end); advances *p. */
static bool digits(int *out, const char **p, const char *end, int n)
{
    int v = 0;
    if (end - *p < n)
        return false;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* Parses the zone designator at p..end (the whole rest of the input):
 * Z, z, +hh:mm, +hhmm, +hh (or '-'). *off_s gets seconds east of UTC. */
static bool parse_offset(int *off_s, const char *p, const char *end)
{
    if (p == end) {
        *off_s = 0;
        return true;
    }
    if (end - p == 1 && (*p == 'Z' || *p == 'z')) {
        *off_s = 0;
        return true;
    }
    if (*p != '+' && *p != '-')
        return false;
    int sign = *p == '-' ? -1 : 1;
    p++;
    int hh, mm = 0;
    if (!digits(&hh, &p, end, 2))
        return false;
    if (p < end && *p == ':') {
        p++;
        if (!digits(&mm, &p, end, 2))
            return false;
    } else if (p < end && !digits(&mm, &p, end, 2)) {
        return false;
    }
    if (p != end || hh > 23 || mm > 59)
        return false;
    *off_s = sign * (hh * 3600 + mm * 60);
    return true;
}

int eng_parse_iso8601(int64_t *out_us, const char *s, size_t len)
{
    int y, mo, d, h, mi, sec = 0, off_s = 0;
    int64_t frac_us = 0;

    if (s == NULL)
        return AM_EINVAL;
    const char *p = s, *end = s + len; /* after the check: NULL + 0 is undefined */
    if (!digits(&y, &p, end, 4) || p == end || *p++ != '-' || !digits(&mo, &p, end, 2) ||
        p == end || *p++ != '-' || !digits(&d, &p, end, 2))
        return AM_EINVAL;
    if (p == end || (*p != 'T' && *p != 't' && *p != ' '))
        return AM_EINVAL;
    p++;
    if (!digits(&h, &p, end, 2) || p == end || *p++ != ':' || !digits(&mi, &p, end, 2))
        return AM_EINVAL;
    if (p < end && *p == ':') {
        p++;
        if (!digits(&sec, &p, end, 2))
            return AM_EINVAL;
        if (p < end && *p == '.') {
            p++;
            int nd = 0;
            while (p < end && *p >= '0' && *p <= '9') {
                if (nd < 6)
                    frac_us = frac_us * 10 + (*p - '0');
                nd++;
                p++;
            }
            if (nd == 0 || nd > 9)
                return AM_EINVAL;
            for (int i = nd; i < 6; i++)
                frac_us *= 10;
        }
    }
    if (!parse_offset(&off_s, p, end))
        return AM_EINVAL;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > am_days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 60)
        return AM_EINVAL;

    /* A leap second (:60) is counted as the first second of the next minute. */
    int64_t secs = am_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off_s;
    *out_us = secs * US_PER_S + frac_us;
    return AM_OK;
}

/* A numeric string: digits with an optional fraction ("1714557600.123").
 * *whole gets the integer part, *frac_ns the first 9 fraction digits as
 * nanoseconds of one unit. No sign, exponent or surrounding space. */
static bool parse_decimal(int64_t *whole, int64_t *frac_ns, const char *s, size_t len)
{
    const char *p = s, *end = s + len;
    int64_t w = 0, f = 0;
    int nw = 0, nf = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        if (nw >= 15) /* > 1e15 is out of range in any unit */
            return false;
        w = w * 10 + (*p - '0');
        nw++;
        p++;
    }
    if (nw == 0)
        return false;
    if (p < end && *p == '.') {
        p++;
        const char *start = p;
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            if (nf < 9) { /* digits past the ninth are truncated */
                f = f * 10 + (*p - '0');
                nf++;
            }
        }
        if (p == start)
            return false;
    }
    if (p != end)
        return false;
    for (int i = nf; i < 9; i++)
        f *= 10;
    *whole = w;
    *frac_ns = f;
    return true;
}

/* Whole-unit value plus fraction (ns of one unit) into µs, range-checked. */
static int from_parts(int64_t *out_us, int64_t whole, int64_t frac_ns, bool ms)
{
    int64_t us;
    if (ms) {
        if (whole > MAX_EPOCH_S * 1000 + 999)
            return AM_EINVAL;
        us = whole * 1000 + frac_ns / 1000000;
    } else {
        if (whole > MAX_EPOCH_S)
            return AM_EINVAL;
        us = whole * US_PER_S + frac_ns / 1000;
    }
    *out_us = us;
    return AM_OK;
}

static int from_number(int64_t *out_us, const json_t *v, tp_format_t fmt)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return AM_EINVAL;
        bool ms = fmt == TP_EPOCH_MS || (fmt == TP_AUTO && i > INT64_C(100000000000));
        return from_parts(out_us, (int64_t)i, 0, ms);
    }
    double x = json_real_value(v);
    if (!isfinite(x) || x < 0)
        return AM_EINVAL;
    bool ms = fmt == TP_EPOCH_MS || (fmt == TP_AUTO && x > 1e11);
    double limit = ms ? (double)(MAX_EPOCH_S + 1) * 1000.0 : (double)(MAX_EPOCH_S + 1);
    if (x >= limit)
        return AM_EINVAL;
    /* A binary double rarely holds a decimal fraction exactly
     * (1714557600.123 is ...122999...): round to the nearest microsecond. */
    *out_us = (int64_t)((ms ? x * 1000.0 : x * 1e6) + 0.5); /* x >= 0 */
    return AM_OK;
}

int eng_tp_parse_json(int64_t *out_us, const json_t *v, tp_format_t fmt)
{
    int64_t us = 0;
    int rc = AM_EINVAL;

    if (v == NULL)
        return AM_EINVAL;
    if (json_is_number(v)) {
        if (fmt == TP_ISO8601)
            return AM_EINVAL;
        rc = from_number(&us, v, fmt);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        int64_t whole, frac_ns;
        bool numeric = parse_decimal(&whole, &frac_ns, s, len);
        if (fmt == TP_ISO8601 || (fmt == TP_AUTO && !numeric)) {
            rc = eng_parse_iso8601(&us, s, len);
        } else if (numeric) {
            const int64_t e11 = INT64_C(100000000000);
            bool above = whole > e11 || (whole == e11 && frac_ns > 0);
            bool ms = fmt == TP_EPOCH_MS || (fmt == TP_AUTO && above);
            rc = from_parts(&us, whole, frac_ns, ms);
        }
    }
    if (rc != AM_OK)
        return rc;
    if (us < 0 || us > MAX_EPOCH_S * US_PER_S + 999999)
        return AM_EINVAL;
    *out_us = us;
    return AM_OK;
}
