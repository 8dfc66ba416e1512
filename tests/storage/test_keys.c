/* tests/storage/test_keys.c - API keys against a real PostgreSQL: create,
 * list, revoke; the verifier's answers (valid, wrong, expired, revoked,
 * scopes, sources), revocation seen by another process within one second,
 * last_used_at written at most once per interval, and a database that is
 * not there answering UNAVAILABLE rather than "invalid". */
#include "helpers.h"
#include "keys_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *g_ci;

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- a synchronous verification --------------------------------------- */

typedef struct vwait {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
    store_key_check_t out;
} vwait_t;

static void vcb(const store_key_check_t *c, void *ctx)
{
    vwait_t *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->out = *c;
    w->done = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

/* Verifies and waits (10 s at most) for the answer; *sync tells whether it
 * came from the cache (sync may be NULL). */
static store_key_check_t verify(store_keys_t *k, const char *token, unsigned scope,
                                const char *source, bool *sync)
{
    vwait_t w;
    memset(&w, 0, sizeof(w));
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cond, NULL);
    store_key_check_t out;
    bool now = store_keys_verify(k, token, token ? strlen(token) : 0, scope, source, &out, vcb, &w);
    if (!now) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 10;
        pthread_mutex_lock(&w.mu);
        int rc = 0;
        while (!w.done && rc == 0)
            rc = pthread_cond_timedwait(&w.cond, &w.mu, &ts);
        bool done = w.done;
        out = w.out;
        pthread_mutex_unlock(&w.mu);
        if (!done)
            fail_msg("verification callback not called within 10 s");
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cond);
    if (sync)
        *sync = now;
    return out;
}

static store_key_result_t result(store_keys_t *k, const char *token, unsigned scope,
                                 const char *source)
{
    return verify(k, token, scope, source, NULL).result;
}

static store_keys_t *verifier(const char *pepper)
{
    store_keys_options_t o = {.conninfo = g_ci, .pepper = pepper};
    store_keys_t *k = store_keys_new(&o);
    assert_non_null(k);
    return k;
}

static void create(char token[STORE_KEY_TOKEN_LEN + 1], int64_t *id, const char *name,
                   unsigned scopes, const char *const *sources, size_t nsources)
{
    store_key_spec_t spec = {
        .name = name, .scopes = scopes, .sources = sources, .nsources = nsources};
    char err[256];
    int rc = store_key_create(g_ci, NULL, &spec, token, id, err, sizeof(err));
    if (rc != 0)
        fail_msg("store_key_create: %d %s", rc, err);
}

/* ---- pure parts ---------------------------------------------------------- */

static void test_scopes(void **state)
{
    (void)state;
    unsigned s;
    assert_int_equal(store_scopes_parse(&s, "ingest,read"), 0);
    assert_int_equal(s, STORE_SCOPE_INGEST | STORE_SCOPE_READ);
    assert_int_equal(store_scopes_parse(&s, "admin,write,read,ingest"), 0);
    assert_int_equal(s, STORE_SCOPE_ALL);
    const char *bad[] = {"", "ingest,", ",read", "ingest,ingest", "Read", "root", "read write"};
    for (size_t i = 0; i < AM_ARRAY_LEN(bad); i++)
        assert_int_equal(store_scopes_parse(&s, bad[i]), AM_EINVAL);
    char buf[32];
    store_scopes_format(buf, STORE_SCOPE_ADMIN | STORE_SCOPE_INGEST);
    assert_string_equal(buf, "ingest,admin");
    store_scopes_format(buf, STORE_SCOPE_ALL);
    assert_string_equal(buf, "ingest,read,write,admin");
    assert_int_equal(store_key_http_status(STORE_KEY_REVOKED), 401);
    assert_int_equal(store_key_http_status(STORE_KEY_NO_SOURCE), 403);
    assert_int_equal(store_key_http_status(STORE_KEY_UNAVAILABLE), 503);
    assert_string_equal(store_key_result_code(STORE_KEY_EXPIRED), "KEY_EXPIRED");
}

/* The verifier's precomputed HMAC equals the one-shot HMAC that made the
 * stored hash, for short, empty-ish and long (> one block) peppers. */
static void test_hasher_matches_hmac(void **state)
{
    (void)state;
    char longp[200];
    memset(longp, 'p', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    const char *peppers[] = {
        NULL, "x", "0123456789012345678901234567890123456789012345678901234567890123", longp};
    const char *msgs[] = {"", "amk_abcdefgh_",
                          "a longer message that spans more than one block of "
                          "sixty-four bytes of SHA-256 input"};
    for (size_t i = 0; i < AM_ARRAY_LEN(peppers); i++) {
        key_hasher_t h;
        key_hasher_init(&h, peppers[i]);
        for (size_t j = 0; j < AM_ARRAY_LEN(msgs); j++) {
            unsigned char a[KEY_HASH_LEN], b[KEY_HASH_LEN];
            key_hmac(a, peppers[i], msgs[j], strlen(msgs[j]));
            key_hasher_run(&h, b, msgs[j], strlen(msgs[j]));
            assert_memory_equal(a, b, KEY_HASH_LEN);
        }
        key_hasher_dispose(&h);
    }
}

static void test_mask(void **state)
{
    (void)state;
    char line[] =
        "GET /v1/ingest/splunk?token=amk_abcdefgh_o3ebskkgbxzq6zkwg4ttv33424pa2qxmsryerktzq"
        "mp6gnt6726q&x=1 and amk_zzzzzzzz_abc2 amk_short_x amk_ABCDEFGH_abc amk_";
    assert_int_equal(store_key_mask(line, strlen(line)), 2);
    assert_string_equal(line,
                        "GET /v1/ingest/splunk?token=amk_abcdefgh_****************************"
                        "************************&x=1 and amk_zzzzzzzz_**** amk_short_x "
                        "amk_ABCDEFGH_abc amk_");
    char tail[] = "amk_abcdefgh_";
    assert_int_equal(store_key_mask(tail, strlen(tail)), 0);
    /* the length bounds the scan: nothing past n is read or written */
    char cut[] = "amk_abcdefgh_secret";
    assert_int_equal(store_key_mask(cut, 15), 1);
    assert_string_equal(cut, "amk_abcdefgh_**cret");
    assert_int_equal(store_key_mask(NULL, 0), 0);
}

static void test_create_rejects(void **state)
{
    (void)state;
    char token[STORE_KEY_TOKEN_LEN + 1], err[256];
    store_key_spec_t spec = {.name = "", .scopes = STORE_SCOPE_READ};
    assert_int_equal(store_key_create(g_ci, NULL, &spec, token, NULL, err, sizeof(err)), AM_EINVAL);
    spec.name = "x";
    spec.scopes = 0;
    assert_int_equal(store_key_create(g_ci, NULL, &spec, token, NULL, err, sizeof(err)), AM_EINVAL);
    spec.scopes = STORE_SCOPE_READ;
    spec.expires_at_us = am_now_us() - 1000000;
    assert_int_equal(store_key_create(g_ci, NULL, &spec, token, NULL, err, sizeof(err)), AM_EINVAL);
    assert_non_null(strstr(err, "past"));
    spec.expires_at_us = 0;
    assert_int_equal(store_key_create("host=/nonexistent-socket-dir user=alertmap dbname=x", NULL,
                                      &spec, token, NULL, err, sizeof(err)),
                     AM_EUNAVAIL);
}

/* ---- create, hash, verify ------------------------------------------------ */

static void test_create_and_verify(void **state)
{
    (void)state;
    char token[STORE_KEY_TOKEN_LEN + 1];
    int64_t id = 0;
    create(token, &id, "ci", STORE_SCOPE_INGEST | STORE_SCOPE_READ, NULL, 0);
    assert_true(id > 0);
    /* the format: amk_ + 8 + _ + 52 base32 characters */
    assert_int_equal(strlen(token), STORE_KEY_TOKEN_LEN);
    assert_memory_equal(token, "amk_", 4);
    assert_int_equal(token[12], '_');
    assert_int_equal(strspn(token + 4, "abcdefghijklmnopqrstuvwxyz234567"), 8);
    assert_int_equal(strspn(token + 13, "abcdefghijklmnopqrstuvwxyz234567"), 52);

    /* the database holds the prefix and a 32-byte hash, never the token */
    PGconn *c = th_connect(g_ci);
    char idtext[24];
    snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
    char *prefix = th_str(c, "SELECT prefix FROM api_keys WHERE id = $1::int8", 1, idtext);
    assert_non_null(prefix);
    assert_memory_equal(prefix, token + 4, 8);
    free(prefix);
    assert_int_equal(th_int(c, "SELECT length(hash) FROM api_keys WHERE id = $1::int8", 1, idtext),
                     32);
    assert_int_equal(th_int(c,
                            "SELECT count(*) FROM api_keys WHERE row_to_json(api_keys)::text"
                            " LIKE '%' || substr($1, 14) || '%'",
                            1, token),
                     0);

    store_keys_t *k = verifier(NULL);
    bool sync = true;
    store_key_check_t r = verify(k, token, STORE_SCOPE_INGEST, "sentinel", &sync);
    assert_int_equal(r.result, STORE_KEY_OK);
    assert_false(sync); /* first use: a lookup */
    assert_int_equal(r.key_id, id);
    char want[16];
    snprintf(want, sizeof(want), "%.12s", token);
    assert_string_equal(r.prefix, want);
    r = verify(k, token, STORE_SCOPE_READ, NULL, &sync);
    assert_int_equal(r.result, STORE_KEY_OK);
    assert_true(sync); /* then the cache */

    /* two scopes at once must both be granted */
    assert_int_equal(result(k, token, STORE_SCOPE_READ | STORE_SCOPE_WRITE, NULL),
                     STORE_KEY_NO_SCOPE);

    /* a key in steady use is refreshed in the background: no waiting. Over
     * 4.5 s a cache that only expired rows would make 4 requests wait; a
     * starved refresh thread on a loaded machine may cost one */
    int64_t until = mono_us() + 4500000;
    int waited = 0, n = 0;
    while (mono_us() < until) {
        verify(k, token, STORE_SCOPE_READ, NULL, &sync);
        waited += !sync;
        n++;
        usleep(2000); /* a request rate, not an ordering */
    }
    assert_true(n > 0);
    if (waited > 1)
        fail_msg("%d of %d requests waited for the database", waited, n);
    store_keys_stats_t st;
    store_keys_stats(k, &st);
    assert_true(st.refreshes >= 10);
    store_keys_free(k);
    PQfinish(c);
}

static void test_wrong_tokens(void **state)
{
    (void)state;
    char token[STORE_KEY_TOKEN_LEN + 1];
    create(token, NULL, "wrong", STORE_SCOPE_ALL, NULL, 0);
    store_keys_t *k = verifier(NULL);
    bool sync = false;

    /* malformed: answered at once, no database */
    const char *bad[] = {"", "amk_", "Bearer x", "amk_abcdefgh_tooshort", token + 1};
    for (size_t i = 0; i < AM_ARRAY_LEN(bad); i++) {
        assert_int_equal(verify(k, bad[i], STORE_SCOPE_READ, NULL, &sync).result,
                         STORE_KEY_INVALID);
        assert_true(sync);
    }
    assert_int_equal(verify(k, NULL, STORE_SCOPE_READ, NULL, &sync).result, STORE_KEY_INVALID);
    char upper[STORE_KEY_TOKEN_LEN + 1];
    memcpy(upper, token, sizeof(upper));
    upper[20] = (char)(upper[20] >= 'a' && upper[20] <= 'z' ? upper[20] - 32 : '0');
    assert_int_equal(result(k, upper, STORE_SCOPE_READ, NULL), STORE_KEY_INVALID);

    /* the right prefix, another secret: both before and after the row is cached */
    char other[STORE_KEY_TOKEN_LEN + 1];
    memcpy(other, token, sizeof(other));
    other[40] = other[40] == 'a' ? 'b' : 'a';
    store_key_check_t r = verify(k, other, STORE_SCOPE_READ, NULL, NULL);
    assert_int_equal(r.result, STORE_KEY_INVALID);
    assert_int_equal(r.key_id, 0); /* a wrong secret learns nothing about the row */
    assert_int_equal(result(k, token, STORE_SCOPE_READ, NULL), STORE_KEY_OK);
    assert_int_equal(result(k, other, STORE_SCOPE_READ, NULL), STORE_KEY_INVALID);

    /* an unknown prefix */
    char unknown[STORE_KEY_TOKEN_LEN + 1];
    memcpy(unknown, token, sizeof(unknown));
    unknown[4] = unknown[4] == 'q' ? 'r' : 'q';
    assert_int_equal(result(k, unknown, STORE_SCOPE_READ, NULL), STORE_KEY_INVALID);
    store_keys_free(k);

    /* a verifier with another pepper accepts none of these keys */
    k = verifier("another pepper");
    assert_int_equal(result(k, token, STORE_SCOPE_READ, NULL), STORE_KEY_INVALID);
    store_keys_free(k);
}

static void test_expired(void **state)
{
    (void)state;
    char token[STORE_KEY_TOKEN_LEN + 1], err[256];
    int64_t id;
    store_key_spec_t spec = {
        .name = "short", .scopes = STORE_SCOPE_READ, .expires_at_us = am_now_us() + 3600000000};
    assert_int_equal(store_key_create(g_ci, NULL, &spec, token, &id, err, sizeof(err)), 0);
    store_keys_t *k = verifier(NULL);
    assert_int_equal(result(k, token, STORE_SCOPE_READ, NULL), STORE_KEY_OK);
    /* the hour passes */
    PGconn *c = th_connect(g_ci);
    char idtext[24];
    snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
    th_int(c, "UPDATE api_keys SET expires_at = now() - interval '1 s' WHERE id = $1::int8", 1,
           idtext);
    int64_t deadline = mono_us() + 1500000;
    store_key_result_t got;
    while ((got = result(k, token, STORE_SCOPE_READ, NULL)) == STORE_KEY_OK && mono_us() < deadline)
        usleep(1000);
    assert_int_equal(got, STORE_KEY_EXPIRED);
    store_keys_free(k);
    /* a fresh process sees it at once */
    k = verifier(NULL);
    store_key_check_t r = verify(k, token, STORE_SCOPE_READ, NULL, NULL);
    assert_int_equal(r.result, STORE_KEY_EXPIRED);
    assert_int_equal(r.key_id, id);
    store_keys_free(k);
    PQfinish(c);
}

static void test_scopes_and_sources(void **state)
{
    (void)state;
    const char *const ab[] = {"alpha", "beta"};
    char ingest_ab[STORE_KEY_TOKEN_LEN + 1], reader[STORE_KEY_TOKEN_LEN + 1],
        any[STORE_KEY_TOKEN_LEN + 1];
    create(ingest_ab, NULL, "ingest a b", STORE_SCOPE_INGEST, ab, 2);
    create(reader, NULL, "reader", STORE_SCOPE_READ, NULL, 0);
    create(any, NULL, "any source", STORE_SCOPE_INGEST | STORE_SCOPE_WRITE, NULL, 0);
    store_keys_t *k = verifier(NULL);

    assert_int_equal(result(k, ingest_ab, STORE_SCOPE_INGEST, "alpha"), STORE_KEY_OK);
    assert_int_equal(result(k, ingest_ab, STORE_SCOPE_INGEST, "beta"), STORE_KEY_OK);
    store_key_check_t r = verify(k, ingest_ab, STORE_SCOPE_INGEST, "gamma", NULL);
    assert_int_equal(r.result, STORE_KEY_NO_SOURCE);
    assert_true(r.key_id > 0);
    assert_int_equal(result(k, ingest_ab, STORE_SCOPE_INGEST, "alph"), STORE_KEY_NO_SOURCE);
    assert_int_equal(result(k, ingest_ab, STORE_SCOPE_READ, NULL), STORE_KEY_NO_SCOPE);
    assert_int_equal(result(k, ingest_ab, STORE_SCOPE_ADMIN, NULL), STORE_KEY_NO_SCOPE);

    assert_int_equal(result(k, reader, STORE_SCOPE_READ, NULL), STORE_KEY_OK);
    assert_int_equal(result(k, reader, STORE_SCOPE_INGEST, "alpha"), STORE_KEY_NO_SCOPE);
    assert_int_equal(result(k, reader, STORE_SCOPE_WRITE, NULL), STORE_KEY_NO_SCOPE);

    assert_int_equal(result(k, any, STORE_SCOPE_INGEST, "anything-at-all"), STORE_KEY_OK);
    assert_int_equal(result(k, any, STORE_SCOPE_WRITE, NULL), STORE_KEY_OK);
    assert_int_equal(result(k, any, STORE_SCOPE_READ, NULL), STORE_KEY_NO_SCOPE);
    store_keys_free(k);
}

/* ---- revocation ------------------------------------------------------------ */

static void test_revoke_same_process(void **state)
{
    (void)state;
    char token[STORE_KEY_TOKEN_LEN + 1], err[256];
    int64_t id;
    create(token, &id, "to revoke", STORE_SCOPE_READ, NULL, 0);
    store_keys_t *k = verifier(NULL);
    assert_int_equal(result(k, token, STORE_SCOPE_READ, NULL), STORE_KEY_OK);

    int64_t got_id = 0;
    bool already = true;
    int64_t t0 = mono_us();
    assert_int_equal(store_key_revoke(g_ci, token, &got_id, &already, err, sizeof(err)), 0);
    assert_int_equal(got_id, id);
    assert_false(already);
    store_key_result_t got;
    while ((got = result(k, token, STORE_SCOPE_READ, NULL)) == STORE_KEY_OK &&
           mono_us() - t0 < 3000000)
        usleep(1000);
    int64_t took = mono_us() - t0;
    assert_int_equal(got, STORE_KEY_REVOKED);
    if (took > 1000000)
        fail_msg("revocation took %lld ms (bound: 1000)", (long long)(took / 1000));
    printf("revocation seen after %lld ms\n", (long long)(took / 1000));
    store_keys_free(k);

    /* by prefix and by id: already revoked, nothing changes */
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "%.12s", token);
    assert_int_equal(store_key_revoke(g_ci, prefix, &got_id, &already, err, sizeof(err)), 0);
    assert_true(already);
    char idtext[24];
    snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
    assert_int_equal(store_key_revoke(g_ci, idtext, &got_id, &already, err, sizeof(err)), 0);
    assert_true(already);
    assert_int_equal(store_key_revoke(g_ci, prefix + 4, &got_id, &already, err, sizeof(err)), 0);
    assert_int_equal(store_key_revoke(g_ci, "999999", NULL, NULL, err, sizeof(err)), AM_ENOTFOUND);
    assert_int_equal(store_key_revoke(g_ci, "amk_zzzzzzzz", NULL, NULL, err, sizeof(err)),
                     AM_ENOTFOUND);
    assert_int_equal(store_key_revoke(g_ci, "not a key", NULL, NULL, err, sizeof(err)), AM_EINVAL);
    assert_int_equal(store_key_revoke(g_ci, "", NULL, NULL, err, sizeof(err)), AM_EINVAL);
}

/* A child process holds the key in its cache; the parent revokes it; the
 * child reports when it first saw REVOKED (CLOCK_MONOTONIC is shared by the
 * processes of one machine). */
static void test_revoke_other_process(void **state)
{
    (void)state;
    char token[STORE_KEY_TOKEN_LEN + 1], err[256];
    create(token, NULL, "other process", STORE_SCOPE_INGEST, NULL, 0);
    int up[2], down[2];
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(down), 0);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        store_keys_options_t o = {.conninfo = g_ci};
        store_keys_t *k = store_keys_new(&o);
        int64_t msg[2] = {0, 0};
        msg[0] = result(k, token, STORE_SCOPE_INGEST, "x");
        ssize_t w = write(up[1], msg, sizeof(msg[0]));
        char go;
        if (w != (ssize_t)sizeof(msg[0]) || read(down[0], &go, 1) != 1)
            _exit(2);
        int64_t until = mono_us() + 5000000;
        store_key_result_t got;
        while ((got = result(k, token, STORE_SCOPE_INGEST, "x")) == STORE_KEY_OK &&
               mono_us() < until)
            usleep(1000);
        msg[0] = got;
        msg[1] = mono_us();
        w = write(up[1], msg, sizeof(msg));
        store_keys_free(k);
        _exit(w == (ssize_t)sizeof(msg) ? 0 : 3);
    }
    close(up[1]);
    close(down[0]);
    int64_t first = -1;
    assert_int_equal(read(up[0], &first, sizeof(first)), (ssize_t)sizeof(first));
    assert_int_equal(first, STORE_KEY_OK);
    int64_t t0 = mono_us();
    assert_int_equal(store_key_revoke(g_ci, token, NULL, NULL, err, sizeof(err)), 0);
    assert_int_equal(write(down[1], "g", 1), 1);
    int64_t msg[2] = {0, 0};
    assert_int_equal(read(up[0], msg, sizeof(msg)), (ssize_t)sizeof(msg));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(msg[0], STORE_KEY_REVOKED);
    int64_t took = msg[1] - t0;
    printf("revocation seen by another process after %lld ms\n", (long long)(took / 1000));
    if (took > 1000000)
        fail_msg("revocation took %lld ms in another process (bound: 1000)",
                 (long long)(took / 1000));
    close(up[0]);
    close(down[1]);
}

/* ---- bookkeeping ------------------------------------------------------------ */

static void test_last_used(void **state)
{
    (void)state;
    char token[STORE_KEY_TOKEN_LEN + 1];
    int64_t id;
    create(token, &id, "used", STORE_SCOPE_READ, NULL, 0);
    PGconn *c = th_connect(g_ci);
    char idtext[24];
    snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
    const char *q =
        "SELECT count(*) FROM api_keys WHERE id = $1::int8 AND last_used_at IS NOT NULL";
    assert_int_equal(th_int(c, q, 1, idtext), 0);

    store_keys_t *k = verifier(NULL);
    for (int i = 0; i < 200; i++)
        assert_int_equal(result(k, token, STORE_SCOPE_READ, NULL), STORE_KEY_OK);
    int64_t deadline = mono_us() + 5000000;
    while (th_int(c, q, 1, idtext) == 0 && mono_us() < deadline)
        usleep(10000);
    assert_int_equal(th_int(c, q, 1, idtext), 1);
    store_keys_stats_t st;
    store_keys_stats(k, &st);
    assert_int_equal(st.touches, 1); /* 200 uses, one write (interval: 60 s) */

    /* a failed verification is not a use */
    char *before =
        th_str(c, "SELECT last_used_at::text FROM api_keys WHERE id = $1::int8", 1, idtext);
    assert_int_equal(result(k, token, STORE_SCOPE_ADMIN, NULL), STORE_KEY_NO_SCOPE);
    store_keys_free(k);
    char *after =
        th_str(c, "SELECT last_used_at::text FROM api_keys WHERE id = $1::int8", 1, idtext);
    assert_string_equal(before, after);
    free(before);
    free(after);
    PQfinish(c);
}

static void test_list(void **state)
{
    (void)state;
    char token[STORE_KEY_TOKEN_LEN + 1], err[256];
    const char *const src[] = {"splunk"};
    int64_t id;
    create(token, &id, "listed", STORE_SCOPE_INGEST | STORE_SCOPE_ADMIN, src, 1);
    json_t *list = NULL;
    assert_int_equal(store_key_list(g_ci, &list, err, sizeof(err)), 0);
    assert_true(json_is_array(list));
    json_t *mine = NULL;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (json_integer_value(json_object_get(v, "id")) == id)
            mine = v;
        assert_null(json_object_get(v, "hash"));
    }
    assert_non_null(mine);
    assert_string_equal(json_string_value(json_object_get(mine, "name")), "listed");
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "%.12s", token);
    assert_string_equal(json_string_value(json_object_get(mine, "prefix")), prefix);
    assert_string_equal(json_string_value(json_object_get(mine, "state")), "active");
    json_t *scopes = json_object_get(mine, "scopes");
    assert_int_equal(json_array_size(scopes), 2);
    assert_string_equal(json_string_value(json_array_get(scopes, 0)), "ingest");
    assert_string_equal(json_string_value(json_array_get(scopes, 1)), "admin");
    assert_string_equal(json_string_value(json_array_get(json_object_get(mine, "sources"), 0)),
                        "splunk");
    assert_true(json_is_null(json_object_get(mine, "revoked_at")));
    assert_true(json_is_string(json_object_get(mine, "created_at")));
    char *text = json_dumps(list, 0);
    assert_null(strstr(text, token + 13)); /* no secret anywhere */
    free(text);
    json_decref(list);

    assert_int_equal(store_key_revoke(g_ci, prefix, NULL, NULL, err, sizeof(err)), 0);
    assert_int_equal(store_key_list(g_ci, &list, err, sizeof(err)), 0);
    json_array_foreach(list, i, v)
    {
        if (json_integer_value(json_object_get(v, "id")) == id) {
            assert_string_equal(json_string_value(json_object_get(v, "state")), "revoked");
            assert_true(json_is_string(json_object_get(v, "revoked_at")));
        }
    }
    json_decref(list);
}

/* Many requests for a cold key at once: one lookup serves them all. */
static void test_coalesced_lookups(void **state)
{
    (void)state;
    char token[STORE_KEY_TOKEN_LEN + 1];
    create(token, NULL, "cold", STORE_SCOPE_READ, NULL, 0);
    store_keys_t *k = verifier(NULL);
    enum { N = 50 };
    vwait_t w[N];
    int waiting = 0;
    for (int i = 0; i < N; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        pthread_mutex_init(&w[i].mu, NULL);
        pthread_cond_init(&w[i].cond, NULL);
        store_key_check_t out;
        if (!store_keys_verify(k, token, strlen(token), STORE_SCOPE_READ, NULL, &out, vcb, &w[i]))
            waiting++;
        else
            w[i].done = true, w[i].out = out;
    }
    assert_true(waiting >= 1);
    for (int i = 0; i < N; i++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 10;
        pthread_mutex_lock(&w[i].mu);
        while (!w[i].done)
            if (pthread_cond_timedwait(&w[i].cond, &w[i].mu, &ts) != 0)
                break;
        assert_true(w[i].done);
        assert_int_equal(w[i].out.result, STORE_KEY_OK);
        pthread_mutex_unlock(&w[i].mu);
        pthread_mutex_destroy(&w[i].mu);
        pthread_cond_destroy(&w[i].cond);
    }
    store_keys_stats_t st;
    store_keys_stats(k, &st);
    assert_true(st.lookups <= 2);
    store_keys_free(k);
}

/* No database: UNAVAILABLE (503), never INVALID (401), for a well-formed token. */
static void test_unavailable(void **state)
{
    (void)state;
    char token[STORE_KEY_TOKEN_LEN + 1];
    create(token, NULL, "nodb", STORE_SCOPE_READ, NULL, 0);
    store_keys_options_t o = {.conninfo = "host=/nonexistent-socket-dir user=alertmap dbname=x"};
    store_keys_t *k = store_keys_new(&o);
    assert_int_equal(result(k, token, STORE_SCOPE_READ, NULL), STORE_KEY_UNAVAILABLE);
    assert_int_equal(result(k, "amk_junk", STORE_SCOPE_READ, NULL), STORE_KEY_INVALID);
    store_keys_free(k);
}

/* The database stops answering (a lock held on api_keys): a cached key is
 * not trusted past the TTL; the verifier then says UNAVAILABLE (503), and
 * serves again when the database does. */
static void test_ttl_is_a_hard_bound(void **state)
{
    (void)state;
    char token[STORE_KEY_TOKEN_LEN + 1];
    create(token, NULL, "locked out", STORE_SCOPE_READ, NULL, 0);
    store_keys_options_t o = {.conninfo = g_ci, .statement_timeout_ms = 300};
    store_keys_t *k = store_keys_new(&o);
    assert_int_equal(result(k, token, STORE_SCOPE_READ, NULL), STORE_KEY_OK);
    PGconn *c = th_connect(g_ci);
    th_int(c, "BEGIN", 0);
    th_int(c, "LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE", 0);
    int64_t t0 = mono_us();
    bool sync = true;
    store_key_check_t r;
    int64_t last_ok = t0;
    for (;;) {
        int64_t asked = mono_us();
        r = verify(k, token, STORE_SCOPE_READ, NULL, &sync);
        if (!sync || r.result != STORE_KEY_OK || mono_us() - t0 > 3000000)
            break;
        last_ok = asked;
        usleep(1000);
    }
    /* the last answer from the cache began at most the TTL after the lock */
    int64_t took = last_ok - t0;
    printf("cached key trusted for %lld ms after the database stopped answering\n",
           (long long)(took / 1000));
    assert_true(took <= 1000000);
    assert_int_equal(r.result, STORE_KEY_UNAVAILABLE);
    th_int(c, "ROLLBACK", 0);
    int64_t deadline = mono_us() + 5000000;
    while (result(k, token, STORE_SCOPE_READ, NULL) != STORE_KEY_OK && mono_us() < deadline)
        usleep(1000);
    assert_int_equal(result(k, token, STORE_SCOPE_READ, NULL), STORE_KEY_OK);
    store_keys_free(k);
    PQfinish(c);
}

/* Threads verify 16 keys through a cache of 8 (one set): entries are
 * evicted and looked up again all the time. Every answer is OK, or
 * UNAVAILABLE when all 8 ways wait for a lookup; never INVALID. */
enum { ST_KEYS = 16, ST_THREADS = 4, ST_ROUNDS = 300 };
static char st_tokens[ST_KEYS][STORE_KEY_TOKEN_LEN + 1];

typedef struct st_arg {
    store_keys_t *k;
    int seed, ok, unavailable, other;
} st_arg_t;

static void *stress(void *p)
{
    st_arg_t *a = p;
    for (int i = 0; i < ST_ROUNDS; i++) {
        int idx = (a->seed * 7 + i * 5) % ST_KEYS;
        store_key_result_t r = result(a->k, st_tokens[idx], STORE_SCOPE_READ, NULL);
        if (r == STORE_KEY_OK)
            a->ok++;
        else if (r == STORE_KEY_UNAVAILABLE)
            a->unavailable++;
        else
            a->other++;
    }
    return NULL;
}

static void test_threads_small_cache(void **state)
{
    (void)state;
    for (int i = 0; i < ST_KEYS; i++)
        create(st_tokens[i], NULL, "stress", STORE_SCOPE_READ, NULL, 0);
    store_keys_options_t o = {.conninfo = g_ci, .max_entries = 8};
    store_keys_t *k = store_keys_new(&o);
    pthread_t t[ST_THREADS];
    st_arg_t a[ST_THREADS];
    for (int i = 0; i < ST_THREADS; i++) {
        a[i] = (st_arg_t){.k = k, .seed = i};
        assert_int_equal(pthread_create(&t[i], NULL, stress, &a[i]), 0);
    }
    int ok = 0, other = 0;
    for (int i = 0; i < ST_THREADS; i++) {
        pthread_join(t[i], NULL);
        ok += a[i].ok;
        other += a[i].other;
    }
    assert_int_equal(other, 0);
    assert_true(ok > 0);
    store_keys_stats_t st;
    store_keys_stats(k, &st);
    assert_true(st.misses > ST_KEYS); /* evicted keys were looked up again */
    store_keys_free(k);
}

int main(void)
{
    g_ci = th_db_create("keys");
    const struct CMUnitTest tests[] = {
        /* first: the fork needs a process without other threads */
        cmocka_unit_test(test_revoke_other_process),
        cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_hasher_matches_hmac),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_create_rejects),
        cmocka_unit_test(test_create_and_verify),
        cmocka_unit_test(test_wrong_tokens),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_scopes_and_sources),
        cmocka_unit_test(test_revoke_same_process),
        cmocka_unit_test(test_last_used),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_coalesced_lookups),
        cmocka_unit_test(test_unavailable),
        cmocka_unit_test(test_ttl_is_a_hard_bound),
        cmocka_unit_test(test_threads_small_cache),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    th_db_drop();
    return rc;
}
