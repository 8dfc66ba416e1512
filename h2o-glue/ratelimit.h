/*
 * h2o-glue/ratelimit.h - token buckets for per-key and per-source request
 * limits (see docs/security.md, "Rate limits").
 *
 * A limiter is one policy (rate, burst) applied to many keys, e.g. one
 * limiter for API keys (keyed by "amk_xxxxxxxx") and one for sources (keyed
 * by the source name). Each key has a bucket of `burst` tokens refilled at
 * `rate` tokens per second; a request takes one token, or is refused with
 * the number of seconds after which a token will be there (Retry-After).
 *
 * Memory is bounded: a fixed table of `entries` buckets, 8-way
 * set-associative on a keyed hash (SipHash-2-4 with a random key, so that
 * chosen keys cannot be aimed at one set). A new key takes a free way, else
 * a way whose bucket has refilled completely (forgetting it loses nothing:
 * a new bucket starts full), else the least recently used way. A key evicted
 * while it was being limited starts again with a full bucket; count only
 * keys that were authenticated (a verified API key, a source that exists)
 * so that junk cannot push real keys out. Each check is O(1) (one set of 8)
 * under the set's own mutex, so the server's event-loop threads rarely meet.
 * Depends on common/ only.
 */
#ifndef GLUE_RATELIMIT_H
#define GLUE_RATELIMIT_H

#include "am.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct glue_ratelimit glue_ratelimit_t;

/* Microseconds on a monotonic clock; tests inject their own. */
typedef int64_t (*glue_clock_fn)(void *ctx);

typedef struct glue_ratelimit_options {
    double rate;         /* tokens per second, > 0 */
    double burst;        /* bucket size in tokens, >= 1 */
    size_t entries;      /* buckets in the table; 0 = 16384; rounded up to a multiple of 8 */
    glue_clock_fn clock; /* NULL: CLOCK_MONOTONIC */
    void *clock_ctx;
} glue_ratelimit_options_t;

/* A limiter (the options are copied), or NULL when rate <= 0, burst < 1, or
 * entries is absurd (over 2^24). Free with glue_ratelimit_free(). */
glue_ratelimit_t *glue_ratelimit_new(const glue_ratelimit_options_t *opt);
/* NULL is a no-op. No check may run concurrently. */
void glue_ratelimit_free(glue_ratelimit_t *rl);

/* Takes one token from key[0..len)'s bucket. Returns 0 when the request may
 * go on, else the whole seconds (>= 1) until a token is there: the value of
 * Retry-After for a 429. Keys of any length; bytes after the 64th take part
 * through the hash only. Thread-safe, O(1), no allocation. */
int64_t glue_ratelimit_take(glue_ratelimit_t *rl, const char *key, size_t len);

/* Parses a limit setting "RATE[:BURST]" (e.g. "100:1000", "0.5", "20:20"):
 * RATE requests per second (a positive decimal), BURST tokens (>= 1;
 * default 10 x RATE, at least 1). "0" and "off" set *off (no limiter).
 * Returns 0, or AM_EINVAL with nothing set. Pure. */
int glue_ratelimit_parse(double *rate, double *burst, bool *off, const char *s);

typedef struct glue_ratelimit_stats {
    uint64_t allowed, limited;
    uint64_t evicted; /* buckets forgotten before they had refilled */
} glue_ratelimit_stats_t;
/* Counters (each read atomically). Thread-safe. */
void glue_ratelimit_stats(const glue_ratelimit_t *rl, glue_ratelimit_stats_t *out);

#endif
