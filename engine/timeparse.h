/*
 * engine/timeparse.h - event times: ISO-8601 / RFC 3339 and epoch values.
 * Internal to engine/. Pure functions, thread-safe.
 */
#ifndef ENG_TIMEPARSE_H
#define ENG_TIMEPARSE_H

#include "am.h"
#include "eng.h"

#include <jansson.h>

typedef enum {
    TP_AUTO, /* ISO-8601 string, or epoch number/numeric string (> 1e11 = ms) */
    TP_ISO8601,
    TP_EPOCH_S, /* number or numeric string, may have a fraction */
    TP_EPOCH_MS
} tp_format_t;

/* Parses "auto", "iso8601", "epoch_s", "epoch_ms". Returns 0 or AM_EINVAL. */
int eng_tp_format_parse(tp_format_t *out, const char *name);

/* ISO-8601 date-times: eng_parse_iso8601() in eng.h. */

/*
 * A JSON value (borrowed) in the given format:
 *   TP_ISO8601  a string as eng_parse_iso8601();
 *   TP_EPOCH_S  a number or numeric string ("1714557600", "1714557600.123":
 *               digits with an optional fraction, no sign or exponent);
 *   TP_EPOCH_MS the same in milliseconds;
 *   TP_AUTO     a number or numeric string is epoch seconds, or milliseconds
 *               when above 1e11; any other string is ISO-8601.
 * String fractions are truncated to microseconds; JSON reals are rounded to
 * the nearest microsecond (a double cannot hold .123 exactly). null, bools,
 * arrays, objects, negative numbers and results outside
 * 1970-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z are AM_EINVAL.
 * Returns 0 with UTC microseconds in *out_us.
 */
int eng_tp_parse_json(int64_t *out_us, const json_t *v, tp_format_t fmt);

#endif
