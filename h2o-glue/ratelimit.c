/* h2o-glue/ratelimit.c - token buckets in a fixed set-associative table.
 * See ratelimit.h. */
#include "ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

enum { WAYS = 8, KEY_MAX = 64, DEFAULT_ENTRIES = 16384, MAX_ENTRIES = 1 << 24 };

typedef struct bucket {
    uint64_t hash;   /* 0: empty (a real hash of 0 is stored as 1) */
    uint32_t keylen; /* the key's full length */
    char key[KEY_MAX];
    double tokens;
    int64_t last_us; /* the time tokens was computed at */
} bucket_t;

typedef struct rset {
    pthread_mutex_t mu;
    bucket_t b[WAYS];
} rset_t;

struct glue_ratelimit {
    double rate, burst;
    glue_clock_fn clock;
    void *clock_ctx;
    size_t nsets;
    rset_t *sets;
    uint64_t k0, k1; /* SipHash key */
    atomic_uint_fast64_t allowed, limited, evicted;
};

/* ---- SipHash-2-4 (Aumasson and Bernstein), 64-bit output --------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t siphash(uint64_t k0, uint64_t k1, const unsigned char *p, size_t n)
{
    uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
    size_t full = n & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m = 0;
        for (int j = 7; j >= 0; j--)
            m = (m << 8) | p[i + (size_t)j];
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)(n & 0xff) << 56;
    for (size_t j = 0; j < (n & 7); j++)
        last |= (uint64_t)p[full + j] << (8 * j);
    v3 ^= last;
    SIPROUND;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static int64_t mono_us(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

glue_ratelimit_t *glue_ratelimit_new(const glue_ratelimit_options_t *opt)
{
    if (opt == NULL || !(opt->rate > 0) || !(opt->burst >= 1) || !isfinite(opt->rate) ||
        !isfinite(opt->burst) || opt->entries > MAX_ENTRIES)
        return NULL;
    glue_ratelimit_t *rl = am_xcalloc(1, sizeof(*rl));
    rl->rate = opt->rate;
    rl->burst = opt->burst;
    rl->clock = opt->clock ? opt->clock : mono_us;
    rl->clock_ctx = opt->clock_ctx;
    size_t entries = opt->entries ? opt->entries : DEFAULT_ENTRIES;
    rl->nsets = (entries + WAYS - 1) / WAYS;
    rl->sets = am_xcalloc(rl->nsets, sizeof(*rl->sets));
    for (size_t i = 0; i < rl->nsets; i++)
        pthread_mutex_init(&rl->sets[i].mu, NULL);
    uint64_t key[2] = {0, 0};
    if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
        /* no entropy yet (early boot): the clock still varies per process */
        key[0] = (uint64_t)mono_us(NULL) * 0x9E3779B97F4A7C15ull;
        key[1] = (uint64_t)(uintptr_t)rl;
    }
    rl->k0 = key[0];
    rl->k1 = key[1];
    return rl;
}

void glue_ratelimit_free(glue_ratelimit_t *rl)
{
    if (rl == NULL)
        return;
    for (size_t i = 0; i < rl->nsets; i++)
        pthread_mutex_destroy(&rl->sets[i].mu);
    free(rl->sets);
    free(rl);
}

/* The bucket's tokens at now (refilled, capped at burst). */
static double level(const glue_ratelimit_t *rl, const bucket_t *b, int64_t now)
{
    double dt = now > b->last_us ? (double)(now - b->last_us) / 1e6 : 0;
    double t = b->tokens + dt * rl->rate;
    return t < rl->burst ? t : rl->burst;
}

static bool same_key(const bucket_t *b, uint64_t h, const char *key, size_t len)
{
    size_t n = len < KEY_MAX ? len : KEY_MAX;
    return b->hash == h && b->keylen == len && memcmp(b->key, key, n) == 0;
}

int64_t glue_ratelimit_take(glue_ratelimit_t *rl, const char *key, size_t len)
{
    uint64_t h = siphash(rl->k0, rl->k1, (const unsigned char *)key, len);
    if (h == 0)
        h = 1;
    rset_t *s = &rl->sets[(h >> 32) % rl->nsets];
    int64_t now = rl->clock(rl->clock_ctx);

    pthread_mutex_lock(&s->mu);
    bucket_t *b = NULL, *empty = NULL, *full = NULL, *lru = NULL;
    for (int i = 0; i < WAYS && b == NULL; i++) {
        bucket_t *x = &s->b[i];
        if (x->hash == 0) {
            if (empty == NULL)
                empty = x;
        } else if (same_key(x, h, key, len)) {
            b = x;
        } else if (full == NULL && level(rl, x, now) >= rl->burst) {
            full = x;
        } else if (lru == NULL || x->last_us < lru->last_us) {
            lru = x;
        }
    }
    if (b == NULL) {
        b = empty ? empty : full ? full : lru;
        if (b == lru && empty == NULL && full == NULL)
            atomic_fetch_add_explicit(&rl->evicted, 1, memory_order_relaxed);
        b->hash = h;
        b->keylen = (uint32_t)(len > UINT32_MAX ? UINT32_MAX : len);
        memcpy(b->key, key, len < KEY_MAX ? len : KEY_MAX);
        b->tokens = rl->burst;
        b->last_us = now;
    }
    double t = level(rl, b, now);
    if (now > b->last_us)
        b->last_us = now;
    int64_t wait = 0;
    if (t >= 1) {
        b->tokens = t - 1;
    } else {
        b->tokens = t;
        wait = (int64_t)ceil((1 - t) / rl->rate);
        if (wait < 1)
            wait = 1;
    }
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add_explicit(wait ? &rl->limited : &rl->allowed, 1, memory_order_relaxed);
    return wait;
}

/* A positive finite decimal of s[0..n); false otherwise. */
static bool parse_number(double *out, const char *s, size_t n)
{
    char buf[32];
    if (n == 0 || n >= sizeof(buf) || strspn(s, "0123456789.") < n)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    double v = strtod(buf, &end);
    if (*end != '\0' || !isfinite(v) || !(v > 0) || v > 1e9)
        return false;
    *out = v;
    return true;
}

int glue_ratelimit_parse(double *rate, double *burst, bool *off, const char *s)
{
    if (s == NULL)
        return AM_EINVAL;
    if (strcmp(s, "0") == 0 || strcmp(s, "off") == 0) {
        *off = true;
        return AM_OK;
    }
    const char *colon = strchr(s, ':');
    double r, b;
    if (!parse_number(&r, s, colon ? (size_t)(colon - s) : strlen(s)))
        return AM_EINVAL;
    if (colon != NULL) {
        if (!parse_number(&b, colon + 1, strlen(colon + 1)) || b < 1)
            return AM_EINVAL;
    } else {
        b = r * 10 < 1 ? 1 : r * 10;
    }
    *rate = r;
    *burst = b;
    *off = false;
    return AM_OK;
}

void glue_ratelimit_stats(const glue_ratelimit_t *rl, glue_ratelimit_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (rl == NULL)
        return;
    glue_ratelimit_t *m = (glue_ratelimit_t *)rl; /* atomics are only read */
    out->allowed = atomic_load(&m->allowed);
    out->limited = atomic_load(&m->limited);
    out->evicted = atomic_load(&m->evicted);
}
