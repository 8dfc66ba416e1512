/*
 * engine/timeparse.h - event times: ISO-8601 / RFC 3339 and epoch values.
 * Internal to engine/. Pure functions, thread-safe.
 */
#ifndef ENG_TIMEPARSE_H
#define ENG_TIMEPARSE_H

#include "am.h"

#include <jansson.h>

typedef enum {
    TP_AUTO, /* ISO-8601 string, or epoch number/numeric string (> 1e11 = ms) */
    TP_ISO8601,
    TP_EPOCH_S, /* number or numeric string, may have a fraction */
    TP_EPOCH_MS
} tp_format_t;

/* Parses "auto", "iso8601", "epoch_s", "epoch_ms". Returns 0 or AM_EINVAL. */
int tp_format_parse(tp_format_t *out, const char *name);

/*
 * ISO-8601 date-time: YYYY-MM-DD[Tt ]hh:mm[:ss[.f{1,9}]][Z|z|±hh:mm|±hhmm|±hh];
 * no offset means UTC. Fields are range-checked (month 1-12, day valid for
 * the month, hour ≤ 23, minute ≤ 59, second ≤ 60). Returns 0 with
 * microseconds since the epoch (UTC) in *out_us, or AM_EINVAL.
 */
int tp_parse_iso8601(int64_t *out_us, const char *s, size_t len);

/* A JSON value (borrowed) in the given format; null and other types are
 * AM_EINVAL. Years outside 1970..9999 are AM_EINVAL. */
int tp_parse_json(int64_t *out_us, const json_t *v, tp_format_t fmt);

#endif
