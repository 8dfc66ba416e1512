/* storage/keys_verify.c - the request-path key verifier (store_keys_*).
 *
 * A fixed table of cached key rows, 8-way set-associative on the lookup
 * prefix, one mutex per set (a verification holds it for a table probe and
 * a 32-byte comparison). An entry is READY (a row, or "no such prefix", read
 * at checked_us) or PENDING (a lookup is queued; verifications that arrive
 * meanwhile wait on it instead of asking again).
 *
 * One thread with its own connection:
 *   - runs queued lookups, all waiting prefixes in one statement, and calls
 *     the waiting verifications back;
 *   - every refresh_ms re-reads the rows used in the last IDLE_US, again in
 *     one statement, so that keys in steady use never go stale;
 *   - writes last_used_at for keys whose touch is due (at most one write per
 *     key per touch_interval_s, across processes too: the UPDATE skips rows
 *     written more recently).
 * A READY entry is trusted for ttl_ms after checked_us and never longer:
 * when refreshes fail (database down or slow) the entry expires and the
 * next verification waits for a lookup, which answers UNAVAILABLE if the
 * database still cannot say. Revocation is therefore visible within ttl_ms
 * everywhere, and usually within refresh_ms. */
#include "keys_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { WAYS = 8, IDLE_US = 5000000 };

typedef struct waiter waiter_t;
struct waiter {
    waiter_t *next;
    unsigned char hash[KEY_HASH_LEN];
    unsigned scope;
    char *source; /* heap, may be NULL */
    store_key_cb cb;
    void *ctx;
    store_key_check_t out; /* filled under the set's lock, delivered after */
};

typedef enum { E_EMPTY, E_PENDING, E_READY } estate_t;

typedef struct entry {
    uint64_t pid; /* key_parse() value; 0 when empty */
    estate_t state;
    /* READY */
    bool found;     /* a row with this prefix exists */
    bool pepper_ok; /* its hash was made with our pepper */
    bool revoked;
    int64_t id;
    unsigned char hash[KEY_HASH_LEN];
    unsigned scopes;
    int64_t expires_us; /* 0: never */
    char *sources;      /* NULL: all; else names separated by NUL, ending in "\0\0" */
    int64_t checked_us; /* monotonic time of the read */
    int64_t used_us;    /* monotonic time of the last verification */
    int64_t touched_us; /* monotonic time of the last last_used_at write request */
    bool touch_due;
    /* PENDING */
    waiter_t *waiters;
} entry_t;

typedef struct kset {
    pthread_mutex_t mu;
    entry_t e[WAYS];
} kset_t;

typedef struct job job_t;
struct job {
    job_t *next;
    uint64_t pid;
};

struct store_keys {
    char *conninfo;
    char *pepper; /* NULL: default */
    char pepper_id[17];
    key_hasher_t hasher;
    int64_t ttl_us, refresh_us, touch_us;
    int stmt_timeout_ms;
    size_t max_pending;
    size_t nsets;
    kset_t *sets;
    atomic_size_t pending;

    pthread_mutex_t qmu; /* jobs, stop */
    pthread_cond_t qcond;
    job_t *jobs;
    bool stop;
    pthread_t thread;
    bool started;

    struct {
        atomic_uint_fast64_t hits, misses, lookups, refreshes, touches, failures, busy;
    } st;
    am_lograte_t pepper_log;
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static kset_t *set_of(store_keys_t *k, uint64_t pid)
{
    uint64_t h = pid * 0x9E3779B97F4A7C15ull; /* prefixes are random: a multiply spreads them */
    return &k->sets[(h >> 32) % k->nsets];
}

static entry_t *find(kset_t *s, uint64_t pid)
{
    for (int i = 0; i < WAYS; i++)
        if (s->e[i].state != E_EMPTY && s->e[i].pid == pid)
            return &s->e[i];
    return NULL;
}

static void entry_clear(entry_t *e)
{
    free(e->sources);
    memset(e, 0, sizeof(*e));
}

/* A free way, else the least recently used READY one; NULL when every way
 * is waiting for a lookup. */
static entry_t *claim(kset_t *s)
{
    entry_t *victim = NULL;
    for (int i = 0; i < WAYS; i++) {
        entry_t *e = &s->e[i];
        if (e->state == E_EMPTY)
            return e;
        if (e->state == E_READY && (victim == NULL || e->used_us < victim->used_us))
            victim = e;
    }
    if (victim != NULL)
        entry_clear(victim);
    return victim;
}

static bool source_allowed(const char *list, const char *source)
{
    if (list == NULL)
        return true;
    for (const char *p = list; *p; p += strlen(p) + 1)
        if (strcmp(p, source) == 0)
            return true;
    return false;
}

static void set_identity(store_key_check_t *out, const entry_t *e)
{
    char prefix[KEY_PREFIX_LEN + 1];
    key_prefix_text(prefix, e->pid);
    out->key_id = e->id;
    snprintf(out->prefix, sizeof(out->prefix), KEY_TAG "%s", prefix);
}

/* The answer of a READY entry for a token with hash h. */
static void evaluate(store_keys_t *k, const entry_t *e, const unsigned char *h, unsigned scope,
                     const char *source, store_key_check_t *out)
{
    memset(out, 0, sizeof(*out));
    out->result = STORE_KEY_INVALID;
    if (!e->found)
        return;
    if (!e->pepper_ok) {
        uint64_t n = am_lograte_hit(&k->pepper_log, am_now_us());
        if (n > 0)
            am_log(AM_LOG_ERROR, "api_key_pepper_mismatch", "smessage",
                   "a key was made with another " STORE_KEY_PEPPER_ENV
                   " than this process uses: it cannot be verified",
                   "icount", (int64_t)n, NULL);
        return;
    }
    if (!am_ct_equal(h, KEY_HASH_LEN, e->hash, KEY_HASH_LEN))
        return;
    set_identity(out, e);
    if (e->revoked)
        out->result = STORE_KEY_REVOKED;
    else if (e->expires_us != 0 && am_now_us() >= e->expires_us)
        out->result = STORE_KEY_EXPIRED;
    else if ((e->scopes & scope) != scope)
        out->result = STORE_KEY_NO_SCOPE;
    else if (source != NULL && (scope & STORE_SCOPE_INGEST) && !source_allowed(e->sources, source))
        out->result = STORE_KEY_NO_SOURCE;
    else
        out->result = STORE_KEY_OK;
}

static void answer_now(store_key_check_t *out, store_key_result_t r)
{
    memset(out, 0, sizeof(*out));
    out->result = r;
}

bool store_keys_verify(store_keys_t *k, const char *token, size_t len, unsigned scope,
                       const char *source, store_key_check_t *out, store_key_cb cb, void *ctx)
{
    uint64_t pid = key_parse(token, len);
    if (pid == 0) {
        answer_now(out, STORE_KEY_INVALID);
        return true;
    }
    unsigned char h[KEY_HASH_LEN];
    key_hasher_run(&k->hasher, h, token, len);
    int64_t now = mono_us();
    kset_t *s = set_of(k, pid);

    pthread_mutex_lock(&s->mu);
    entry_t *e = find(s, pid);
    if (e != NULL && e->state == E_READY && now - e->checked_us <= k->ttl_us) {
        evaluate(k, e, h, scope, source, out);
        e->used_us = now;
        if (out->result == STORE_KEY_OK && now - e->touched_us >= k->touch_us) {
            e->touched_us = now;
            e->touch_due = true;
        }
        pthread_mutex_unlock(&s->mu);
        atomic_fetch_add(&k->st.hits, 1);
        return true;
    }
    if (atomic_load(&k->pending) >= k->max_pending) {
        pthread_mutex_unlock(&s->mu);
        atomic_fetch_add(&k->st.busy, 1);
        answer_now(out, STORE_KEY_UNAVAILABLE);
        return true;
    }
    bool new_lookup = false;
    if (e == NULL || e->state == E_READY) {
        if (e != NULL)
            entry_clear(e); /* stale: read it again */
        else
            e = claim(s);
        if (e == NULL) {
            pthread_mutex_unlock(&s->mu);
            atomic_fetch_add(&k->st.busy, 1);
            answer_now(out, STORE_KEY_UNAVAILABLE);
            return true;
        }
        e->pid = pid;
        e->state = E_PENDING;
        new_lookup = true;
    }
    assert(cb != NULL); /* only a malformed token or a cache hit may come without one */
    waiter_t *w = am_xcalloc(1, sizeof(*w));
    memcpy(w->hash, h, sizeof(h));
    w->scope = scope;
    w->source = source ? am_xstrdup(source) : NULL;
    w->cb = cb;
    w->ctx = ctx;
    w->next = e->waiters;
    e->waiters = w;
    atomic_fetch_add(&k->pending, 1);
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add(&k->st.misses, 1);

    if (new_lookup) {
        job_t *j = am_xmalloc(sizeof(*j));
        j->pid = pid;
        pthread_mutex_lock(&k->qmu);
        j->next = k->jobs;
        k->jobs = j;
        pthread_cond_signal(&k->qcond);
        pthread_mutex_unlock(&k->qmu);
    }
    return false;
}

/* ---- the verifier thread ------------------------------------------------ */

/* One row as read: prefix, id, hash, pepper_id, scope bits, sources (JSON),
 * expires (µs), revoked. */
static const char LOOKUP_SQL[] =
    "SELECT prefix, id, hash, pepper_id, " KEY_SCOPE_BITS_SQL ", array_to_json(sources)::text,"
    " (EXTRACT(EPOCH FROM expires_at) * 1000000)::int8, revoked_at IS NOT NULL"
    " FROM api_keys WHERE prefix = ANY ($1::text[])";

/* NUL-separated names from a JSON array text (NULL for SQL NULL). */
static char *sources_from_json(const char *text)
{
    json_t *a = json_loads(text, 0, NULL);
    am_buf_t b;
    am_buf_init(&b, 0);
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (json_is_string(v)) {
            am_buf_puts(&b, json_string_value(v));
            am_buf_putc(&b, '\0');
        }
    }
    am_buf_putc(&b, '\0');
    am_buf_putc(&b, '\0');
    json_decref(a);
    return am_buf_steal(&b);
}

/* Fills e (READY) from row i of r, or as "no such prefix" when r is NULL. */
static void fill(store_keys_t *k, entry_t *e, const PGresult *r, int i, int64_t now)
{
    free(e->sources);
    e->sources = NULL;
    e->state = E_READY;
    e->checked_us = now;
    e->found = false;
    if (r == NULL)
        return;
    e->found = key_hash_from_pg(e->hash, PQgetvalue(r, i, 2));
    e->id = strtoll(PQgetvalue(r, i, 1), NULL, 10);
    e->pepper_ok = strcmp(PQgetvalue(r, i, 3), k->pepper_id) == 0;
    e->scopes = (unsigned)strtoul(PQgetvalue(r, i, 4), NULL, 10);
    if (!PQgetisnull(r, i, 5))
        e->sources = sources_from_json(PQgetvalue(r, i, 5));
    e->expires_us = PQgetisnull(r, i, 6) ? 0 : strtoll(PQgetvalue(r, i, 6), NULL, 10);
    e->revoked = PQgetvalue(r, i, 7)[0] == 't';
}

static int on_connect(PGconn *c, void *ctx)
{
    store_keys_t *k = ctx;
    char sql[96];
    snprintf(sql, sizeof(sql), "SET statement_timeout = %d", k->stmt_timeout_ms);
    return store_pg_exec_simple(c, sql, NULL, NULL, 0);
}

/* Runs LOOKUP_SQL for n prefixes; NULL (and the connection closed when it
 * broke) on failure. */
static PGresult *lookup(store_keys_t *k, pgconn_t *pc, const uint64_t *pids, size_t n)
{
    if (store_pgconn_ensure(pc, false, NULL, 0) != 0)
        return NULL;
    am_buf_t lit;
    am_buf_init(&lit, 0);
    am_buf_putc(&lit, '{');
    for (size_t i = 0; i < n; i++) {
        char p[KEY_PREFIX_LEN + 1];
        key_prefix_text(p, pids[i]);
        am_buf_printf(&lit, "%s%s", i ? "," : "", p);
    }
    am_buf_putc(&lit, '}');
    const char *params[] = {lit.data};
    PGresult *r = PQexecParams(pc->conn, LOOKUP_SQL, 1, NULL, params, NULL, NULL, 0);
    am_buf_dispose(&lit);
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        atomic_fetch_add(&k->st.failures, 1);
        if (store_pgerr_classify(pc->conn, r) == PGERR_CONNECTION)
            store_pgconn_close(pc);
        PQclear(r);
        return NULL;
    }
    return r;
}

static int row_of(const PGresult *r, uint64_t pid)
{
    char p[KEY_PREFIX_LEN + 1];
    key_prefix_text(p, pid);
    for (int i = 0; r != NULL && i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, 0), p) == 0)
            return i;
    return -1;
}

/* Calls back a list of waiters whose answers are filled in (out). */
static void run_waiters(store_keys_t *k, waiter_t *w)
{
    while (w != NULL) {
        waiter_t *next = w->next;
        atomic_fetch_sub(&k->pending, 1);
        w->cb(&w->out, w->ctx);
        free(w->source);
        free(w);
        w = next;
    }
}

/* Answers the queued lookups (a list of jobs) with one statement; pc NULL
 * (shutting down) answers them UNAVAILABLE. */
static void run_jobs(store_keys_t *k, pgconn_t *pc, job_t *jobs)
{
    size_t n = 0;
    for (job_t *j = jobs; j; j = j->next)
        n++;
    uint64_t *pids = am_xcalloc(n, sizeof(*pids));
    n = 0;
    for (job_t *j = jobs; j; j = j->next)
        pids[n++] = j->pid;
    PGresult *r = NULL;
    if (pc != NULL) {
        r = lookup(k, pc, pids, n);
        atomic_fetch_add(&k->st.lookups, 1);
    }
    int64_t now = mono_us();
    for (size_t i = 0; i < n; i++) {
        kset_t *s = set_of(k, pids[i]);
        pthread_mutex_lock(&s->mu);
        entry_t *e = find(s, pids[i]);
        waiter_t *ws = NULL;
        if (e != NULL && e->state == E_PENDING) {
            ws = e->waiters;
            e->waiters = NULL;
            if (r != NULL) {
                int row = row_of(r, pids[i]);
                fill(k, e, row >= 0 ? r : NULL, row, now);
                e->used_us = now;
                for (waiter_t *w = ws; w; w = w->next) {
                    evaluate(k, e, w->hash, w->scope, w->source, &w->out);
                    if (w->out.result == STORE_KEY_OK && !e->touch_due) {
                        e->touch_due = true;
                        e->touched_us = now;
                    }
                }
            } else {
                for (waiter_t *w = ws; w; w = w->next)
                    answer_now(&w->out, STORE_KEY_UNAVAILABLE);
                entry_clear(e);
            }
        }
        pthread_mutex_unlock(&s->mu);
        run_waiters(k, ws);
    }
    PQclear(r);
    free(pids);
}

/* Re-reads the rows in use, then writes the due last_used_at values. */
static void refresh(store_keys_t *k, pgconn_t *pc)
{
    int64_t now = mono_us();
    size_t cap = k->nsets * WAYS;
    uint64_t *pids = am_xcalloc(cap, sizeof(*pids));
    am_buf_t ids;
    am_buf_init(&ids, 0);
    size_t n = 0, ntouch = 0;
    for (size_t i = 0; i < k->nsets; i++) {
        kset_t *s = &k->sets[i];
        pthread_mutex_lock(&s->mu);
        for (int w = 0; w < WAYS; w++) {
            entry_t *e = &s->e[w];
            if (e->state != E_READY || now - e->used_us > IDLE_US)
                continue;
            if (now - e->checked_us >= k->refresh_us / 2)
                pids[n++] = e->pid;
            if (e->touch_due && e->found) {
                am_buf_printf(&ids, "%s%lld", ntouch++ ? "," : "{", (long long)e->id);
                e->touch_due = false;
            }
        }
        pthread_mutex_unlock(&s->mu);
    }
    if (n > 0) {
        int64_t started = mono_us();
        PGresult *r = lookup(k, pc, pids, n);
        atomic_fetch_add(&k->st.refreshes, 1);
        for (size_t i = 0; r != NULL && i < n; i++) {
            kset_t *s = set_of(k, pids[i]);
            pthread_mutex_lock(&s->mu);
            entry_t *e = find(s, pids[i]);
            if (e != NULL && e->state == E_READY) {
                int row = row_of(r, pids[i]);
                /* trusted from when the statement started, not when it ended */
                fill(k, e, row >= 0 ? r : NULL, row, started);
            }
            pthread_mutex_unlock(&s->mu);
        }
        PQclear(r);
    }
    if (ntouch > 0 && pc->conn != NULL) {
        am_buf_putc(&ids, '}');
        char secs[24];
        snprintf(secs, sizeof(secs), "%lld", (long long)(k->touch_us / 1000000));
        const char *p[] = {ids.data, secs};
        PGresult *r = PQexecParams(pc->conn,
                                   "UPDATE api_keys SET last_used_at = now()"
                                   " WHERE id = ANY ($1::int8[]) AND (last_used_at IS NULL"
                                   " OR last_used_at <= now() - make_interval(secs => $2::int))",
                                   2, NULL, p, NULL, NULL, 0);
        if (r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK)
            atomic_fetch_add(&k->st.touches, strtoull(PQcmdTuples(r), NULL, 10));
        else
            atomic_fetch_add(&k->st.failures, 1);
        PQclear(r);
    }
    am_buf_dispose(&ids);
    free(pids);
}

static void *keys_main(void *arg)
{
    store_keys_t *k = arg;
    pgconn_t pc;
    store_pgconn_init(&pc, k->conninfo);
    pc.on_connect = on_connect;
    pc.on_connect_ctx = k;
    int64_t next_refresh = mono_us() + k->refresh_us;
    for (;;) {
        pthread_mutex_lock(&k->qmu);
        while (k->jobs == NULL && !k->stop && mono_us() < next_refresh) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t wait = next_refresh - mono_us();
            if (wait < 1000)
                wait = 1000;
            int64_t ns = ts.tv_nsec + (wait % 1000000) * 1000;
            ts.tv_sec += (time_t)(wait / 1000000 + ns / 1000000000);
            ts.tv_nsec = (long)(ns % 1000000000);
            pthread_cond_timedwait(&k->qcond, &k->qmu, &ts);
        }
        job_t *jobs = k->jobs;
        k->jobs = NULL;
        bool stop = k->stop;
        pthread_mutex_unlock(&k->qmu);
        if (jobs != NULL) {
            if (stop)
                run_jobs(k, NULL, jobs);
            else
                run_jobs(k, &pc, jobs);
            while (jobs) {
                job_t *next = jobs->next;
                free(jobs);
                jobs = next;
            }
        }
        if (stop)
            break;
        if (mono_us() >= next_refresh) {
            refresh(k, &pc);
            next_refresh = mono_us() + k->refresh_us;
        }
    }
    store_pgconn_close(&pc);
    return NULL;
}

static int clamp(int v, int def, int lo, int hi)
{
    if (v <= 0)
        return def;
    return v < lo ? lo : v > hi ? hi : v;
}

store_keys_t *store_keys_new(const store_keys_options_t *opt)
{
    if (opt == NULL || opt->conninfo == NULL)
        return NULL;
    store_keys_t *k = am_xcalloc(1, sizeof(*k));
    k->conninfo = am_xstrdup(opt->conninfo);
    k->pepper = opt->pepper ? am_xstrdup(opt->pepper) : NULL;
    key_pepper_id(k->pepper_id, k->pepper);
    key_hasher_init(&k->hasher, k->pepper);
    int ttl_ms = clamp(opt->ttl_ms, 1000, 10, 1000);
    int refresh_ms = clamp(opt->refresh_ms, ttl_ms / 4, 5, ttl_ms);
    if (refresh_ms >= ttl_ms)
        refresh_ms = ttl_ms / 2;
    k->ttl_us = (int64_t)ttl_ms * 1000;
    k->refresh_us = (int64_t)refresh_ms * 1000;
    k->touch_us = (int64_t)clamp(opt->touch_interval_s, 60, 1, 86400) * 1000000;
    k->stmt_timeout_ms = clamp(opt->statement_timeout_ms, 2000, 10, 600000);
    k->max_pending = (size_t)clamp(opt->max_pending, 10000, 1, 1000000);
    size_t entries = (size_t)clamp(opt->max_entries, 4096, WAYS, 1 << 20);
    k->nsets = (entries + WAYS - 1) / WAYS;
    k->sets = am_xcalloc(k->nsets, sizeof(*k->sets));
    for (size_t i = 0; i < k->nsets; i++)
        pthread_mutex_init(&k->sets[i].mu, NULL);
    am_lograte_init(&k->pepper_log, 0);
    pthread_mutex_init(&k->qmu, NULL);
    pthread_cond_init(&k->qcond, NULL);
    if (pthread_create(&k->thread, NULL, keys_main, k) != 0) {
        store_keys_free(k);
        return NULL;
    }
    k->started = true;
    return k;
}

void store_keys_free(store_keys_t *k)
{
    if (k == NULL)
        return;
    pthread_mutex_lock(&k->qmu);
    k->stop = true;
    pthread_cond_signal(&k->qcond);
    pthread_mutex_unlock(&k->qmu);
    if (k->started)
        pthread_join(k->thread, NULL);
    /* a verification queued after the thread's last look still gets its answer */
    for (size_t i = 0; i < k->nsets; i++) {
        kset_t *s = &k->sets[i];
        for (int w = 0; w < WAYS; w++) {
            for (waiter_t *x = s->e[w].waiters; x; x = x->next)
                answer_now(&x->out, STORE_KEY_UNAVAILABLE);
            run_waiters(k, s->e[w].waiters);
            entry_clear(&s->e[w]);
        }
        pthread_mutex_destroy(&s->mu);
    }
    while (k->jobs) {
        job_t *next = k->jobs->next;
        free(k->jobs);
        k->jobs = next;
    }
    pthread_mutex_destroy(&k->qmu);
    pthread_cond_destroy(&k->qcond);
    free(k->sets);
    key_hasher_dispose(&k->hasher);
    free(k->pepper);
    free(k->conninfo);
    free(k);
}

void store_keys_stats(const store_keys_t *k, store_keys_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (k == NULL)
        return;
    store_keys_t *m = (store_keys_t *)k; /* atomics are only read */
    out->hits = atomic_load(&m->st.hits);
    out->misses = atomic_load(&m->st.misses);
    out->lookups = atomic_load(&m->st.lookups);
    out->refreshes = atomic_load(&m->st.refreshes);
    out->touches = atomic_load(&m->st.touches);
    out->failures = atomic_load(&m->st.failures);
    out->busy = atomic_load(&m->st.busy);
}
