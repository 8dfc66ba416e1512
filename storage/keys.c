/* storage/keys.c - API key tokens, their keyed hash, and the blocking
 * create / list / revoke calls of the CLI. The request-path verifier is in
 * keys_verify.c. See store.h and docs/security.md.
 *
 * Token: "amk_" PREFIX "_" SECRET, base32 (a-z, 2-7). PREFIX is 40 random
 * bits, unique, stored in clear and used to find the row; SECRET is 256
 * random bits from getrandom(2). The row keeps HMAC-SHA256(pepper, token):
 * the whole token, prefix included, so a hash cannot be moved to another
 * row. */
#include "keys_internal.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* The pepper when ALERTMAP_KEY_PEPPER is unset: documented in
 * docs/security.md (it separates this hash from any other use of SHA-256;
 * the tokens' 256 random bits are what makes the stored hash useless). */
static const char DEFAULT_PEPPER[] = "alertmap-api-key-v1";
static const char B32[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char *const SCOPE_NAMES[] = {"ingest", "read", "write", "admin"};

static int b32_value(char c)
{
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= '2' && c <= '7')
        return c - '2' + 26;
    return -1;
}

/* Base32 of n bytes, 5 bits per character, the last character zero-padded. */
static void b32_encode(char *out, const unsigned char *p, size_t n)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | p[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = B32[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[o++] = B32[(acc << (5 - bits)) & 31];
    out[o] = '\0';
}

uint64_t key_parse(const char *token, size_t len)
{
    if (token == NULL || len != STORE_KEY_TOKEN_LEN || memcmp(token, KEY_TAG, KEY_TAG_LEN) != 0 ||
        token[KEY_TAG_LEN + KEY_PREFIX_LEN] != '_')
        return 0;
    uint64_t pid = 0;
    for (size_t i = 0; i < KEY_PREFIX_LEN; i++) {
        int v = b32_value(token[KEY_TAG_LEN + i]);
        if (v < 0)
            return 0;
        pid = (pid << 5) | (uint64_t)v;
    }
    for (size_t i = KEY_TAG_LEN + KEY_PREFIX_LEN + 1; i < len; i++)
        if (b32_value(token[i]) < 0)
            return 0;
    return pid + 1;
}

void key_prefix_text(char out[KEY_PREFIX_LEN + 1], uint64_t pid)
{
    uint64_t v = pid - 1;
    for (int i = KEY_PREFIX_LEN - 1; i >= 0; i--) {
        out[i] = B32[v & 31];
        v >>= 5;
    }
    out[KEY_PREFIX_LEN] = '\0';
}

void key_hmac(unsigned char out[KEY_HASH_LEN], const char *pepper, const void *data, size_t n)
{
    if (pepper == NULL)
        pepper = DEFAULT_PEPPER;
    unsigned int len = KEY_HASH_LEN;
    if (HMAC(EVP_sha256(), pepper, (int)strlen(pepper), data, n, out, &len) == NULL ||
        len != KEY_HASH_LEN) {
        /* only a broken libcrypto gets here: fail closed with a hash no row
         * can hold (every stored hash came out of this function) */
        memset(out, 0, KEY_HASH_LEN);
    }
}

void key_hasher_init(key_hasher_t *h, const char *pepper)
{
    if (pepper == NULL)
        pepper = DEFAULT_PEPPER;
    unsigned char block[64] = {0}, pad[64];
    size_t klen = strlen(pepper);
    if (klen > sizeof(block)) {
        unsigned int n = 0;
        EVP_Digest(pepper, klen, block, &n, EVP_sha256(), NULL);
    } else {
        memcpy(block, pepper, klen);
    }
    h->inner = EVP_MD_CTX_new();
    h->outer = EVP_MD_CTX_new();
    if (h->inner == NULL || h->outer == NULL)
        am_oom(sizeof(*h));
    for (size_t i = 0; i < sizeof(pad); i++)
        pad[i] = block[i] ^ 0x36;
    EVP_DigestInit_ex(h->inner, EVP_sha256(), NULL);
    EVP_DigestUpdate(h->inner, pad, sizeof(pad));
    for (size_t i = 0; i < sizeof(pad); i++)
        pad[i] = block[i] ^ 0x5c;
    EVP_DigestInit_ex(h->outer, EVP_sha256(), NULL);
    EVP_DigestUpdate(h->outer, pad, sizeof(pad));
    memset(block, 0, sizeof(block));
    memset(pad, 0, sizeof(pad));
}

void key_hasher_dispose(key_hasher_t *h)
{
    EVP_MD_CTX_free(h->inner);
    EVP_MD_CTX_free(h->outer);
    h->inner = h->outer = NULL;
}

void key_hasher_run(const key_hasher_t *h, unsigned char out[KEY_HASH_LEN], const void *data,
                    size_t n)
{
    unsigned char ih[KEY_HASH_LEN];
    unsigned int len = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    bool ok = c != NULL && EVP_MD_CTX_copy_ex(c, h->inner) && EVP_DigestUpdate(c, data, n) &&
              EVP_DigestFinal_ex(c, ih, &len) && EVP_MD_CTX_copy_ex(c, h->outer) &&
              EVP_DigestUpdate(c, ih, sizeof(ih)) && EVP_DigestFinal_ex(c, out, &len) &&
              len == KEY_HASH_LEN;
    EVP_MD_CTX_free(c);
    if (!ok)
        memset(out, 0, KEY_HASH_LEN); /* fail closed, as key_hmac() */
}

void key_pepper_id(char out[17], const char *pepper)
{
    static const char label[] = "alertmap-pepper-id";
    unsigned char h[KEY_HASH_LEN];
    key_hmac(h, pepper, label, sizeof(label) - 1);
    am_hex(out, h, 8);
}

bool key_hash_from_pg(unsigned char out[KEY_HASH_LEN], const char *s)
{
    if (s == NULL || s[0] != '\\' || s[1] != 'x' || strlen(s) != 2 + 2 * KEY_HASH_LEN)
        return false;
    for (size_t i = 0; i < KEY_HASH_LEN; i++) {
        int hi = am_hex_value(s[2 + 2 * i]), lo = am_hex_value(s[3 + 2 * i]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

size_t store_key_mask(char *s, size_t n)
{
    size_t count = 0;
    const size_t head = KEY_TAG_LEN + KEY_PREFIX_LEN + 1;
    for (size_t i = 0; s != NULL && i + head <= n; i++) {
        if (memcmp(s + i, KEY_TAG, KEY_TAG_LEN) != 0 || s[i + head - 1] != '_')
            continue;
        bool prefix = true;
        for (size_t j = 0; prefix && j < KEY_PREFIX_LEN; j++)
            prefix = b32_value(s[i + KEY_TAG_LEN + j]) >= 0;
        if (!prefix)
            continue;
        size_t j = i + head;
        while (j < n && b32_value(s[j]) >= 0)
            s[j++] = '*';
        count += j > i + head;
        i = j - 1;
    }
    return count;
}

const char *store_key_pepper(void)
{
    const char *p = getenv(STORE_KEY_PEPPER_ENV);
    return p != NULL && p[0] != '\0' ? p : NULL;
}

int store_scopes_parse(unsigned *out, const char *list)
{
    *out = 0;
    if (list == NULL || *list == '\0')
        return AM_EINVAL;
    const char *p = list;
    for (;;) {
        size_t n = strcspn(p, ",");
        unsigned bit = 0;
        for (size_t i = 0; i < AM_ARRAY_LEN(SCOPE_NAMES); i++)
            if (strlen(SCOPE_NAMES[i]) == n && memcmp(p, SCOPE_NAMES[i], n) == 0)
                bit = 1u << i;
        if (bit == 0 || (*out & bit) != 0) {
            *out = 0;
            return AM_EINVAL;
        }
        *out |= bit;
        if (p[n] == '\0')
            return AM_OK;
        p += n + 1;
    }
}

void store_scopes_format(char buf[32], unsigned scopes)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < AM_ARRAY_LEN(SCOPE_NAMES); i++) {
        if ((scopes & (1u << i)) == 0)
            continue;
        o += (size_t)snprintf(buf + o, 32 - o, "%s%s", o ? "," : "", SCOPE_NAMES[i]);
    }
}

static int random_bytes(unsigned char *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return AM_EIO;
        got += (size_t)r;
    }
    return AM_OK;
}

/* A PostgreSQL text[] literal of the scope names. */
static void scopes_literal(am_buf_t *b, unsigned scopes)
{
    const char *v[AM_ARRAY_LEN(SCOPE_NAMES)];
    size_t n = 0;
    for (size_t i = 0; i < AM_ARRAY_LEN(SCOPE_NAMES); i++)
        if (scopes & (1u << i))
            v[n++] = SCOPE_NAMES[i];
    store_pg_text_array(b, v, n);
}

static int check_spec(const store_key_spec_t *spec, char *err, size_t errlen)
{
    if (spec == NULL || spec->name == NULL || spec->name[0] == '\0' || strlen(spec->name) > 200) {
        snprintf(err, errlen, "a key needs a name of 1 to 200 bytes");
        return AM_EINVAL;
    }
    if (spec->scopes == 0 || (spec->scopes & ~(unsigned)STORE_SCOPE_ALL) != 0) {
        snprintf(err, errlen, "a key needs at least one scope of ingest, read, write, admin");
        return AM_EINVAL;
    }
    for (size_t i = 0; i < spec->nsources; i++) {
        if (spec->sources[i] == NULL || spec->sources[i][0] == '\0') {
            snprintf(err, errlen, "an empty source name");
            return AM_EINVAL;
        }
    }
    if (spec->expires_at_us != 0 && spec->expires_at_us <= am_now_us()) {
        snprintf(err, errlen, "the expiry is in the past");
        return AM_EINVAL;
    }
    return AM_OK;
}

enum { CREATE_ATTEMPTS = 5 };

int store_key_create(const char *conninfo, const char *pepper, const store_key_spec_t *spec,
                     char token[STORE_KEY_TOKEN_LEN + 1], int64_t *id, char *err, size_t errlen)
{
    char dummy[8];
    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    token[0] = '\0';
    int rc = check_spec(spec, err, errlen);
    if (rc != AM_OK)
        return rc;
    PGconn *c = store_pgconn_open(conninfo, err, errlen);
    if (c == NULL)
        return AM_EUNAVAIL;

    am_buf_t scopes, sources;
    am_buf_init(&scopes, 0);
    am_buf_init(&sources, 0);
    scopes_literal(&scopes, spec->scopes);
    if (spec->nsources > 0)
        store_pg_text_array(&sources, spec->sources, spec->nsources);
    char expires[24] = "";
    if (spec->expires_at_us != 0)
        snprintf(expires, sizeof(expires), "%lld", (long long)spec->expires_at_us);
    char pepper_id[17];
    key_pepper_id(pepper_id, pepper);

    rc = AM_EINVAL;
    for (int attempt = 0; attempt < CREATE_ATTEMPTS; attempt++) {
        unsigned char rnd[5 + 32];
        if (random_bytes(rnd, sizeof(rnd)) != AM_OK) {
            snprintf(err, errlen, "cannot read random bytes: %s", strerror(errno));
            rc = AM_EIO;
            break;
        }
        char prefix[KEY_PREFIX_LEN + 1], secret[KEY_SECRET_LEN + 1];
        b32_encode(prefix, rnd, 5);
        b32_encode(secret, rnd + 5, 32);
        snprintf(token, STORE_KEY_TOKEN_LEN + 1, KEY_TAG "%s_%s", prefix, secret);
        memset(rnd, 0, sizeof(rnd));
        memset(secret, 0, sizeof(secret));
        unsigned char h[KEY_HASH_LEN];
        key_hmac(h, pepper, token, STORE_KEY_TOKEN_LEN);
        char hash_text[2 + 2 * KEY_HASH_LEN + 1] = "\\x";
        am_hex(hash_text + 2, h, KEY_HASH_LEN);
        const char *p[] = {spec->name,
                           prefix,
                           hash_text,
                           pepper_id,
                           scopes.data,
                           spec->nsources > 0 ? sources.data : NULL,
                           expires[0] ? expires : NULL};
        PGresult *r = PQexecParams(
            c,
            "INSERT INTO api_keys (name, prefix, hash, pepper_id, scopes, sources, expires_at)"
            " VALUES ($1, $2, $3::bytea, $4, $5::text[], $6::text[],"
            " to_timestamp($7::int8 / 1000000.0))"
            " ON CONFLICT (prefix) DO NOTHING RETURNING id",
            7, NULL, p, NULL, NULL, 0);
        if (r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            if (id != NULL)
                *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            PQclear(r);
            rc = AM_OK;
            break;
        }
        if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
            store_pg_errcopy(err, errlen, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
            rc = store_pgerr_classify(c, r) == PGERR_DATA ? AM_EINVAL : AM_EUNAVAIL;
            PQclear(r);
            break;
        }
        PQclear(r); /* the prefix exists already (1 in 2^40 per key): draw again */
        snprintf(err, errlen, "no free key prefix after %d attempts", CREATE_ATTEMPTS);
    }
    if (rc != AM_OK)
        memset(token, 0, STORE_KEY_TOKEN_LEN + 1);
    else
        err[0] = '\0';
    am_buf_dispose(&scopes);
    am_buf_dispose(&sources);
    PQfinish(c);
    return rc;
}

/* RFC 3339 or null from a column of µs since the epoch (text, or NULL). */
static json_t *time_json(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return json_null();
    char buf[32];
    am_format_time(buf, strtoll(PQgetvalue(r, row, col), NULL, 10));
    return json_string(buf);
}

static json_t *scopes_json(unsigned bits)
{
    json_t *a = json_array();
    for (size_t i = 0; i < AM_ARRAY_LEN(SCOPE_NAMES); i++)
        if (bits & (1u << i))
            json_array_append_new(a, json_string(SCOPE_NAMES[i]));
    return a;
}

#define US(col) "(EXTRACT(EPOCH FROM " col ") * 1000000)::int8"

static const char LIST_SQL[] =
    "SELECT id, name, prefix, " KEY_SCOPE_BITS_SQL ", array_to_json(sources)::text,"
    " " US("expires_at") ", " US("created_at") ", " US("last_used_at") ", " US(
        "revoked_at") ","
                      " CASE WHEN revoked_at IS NOT NULL THEN 'revoked'"
                      " WHEN expires_at <= now() THEN 'expired' ELSE 'active' END"
                      " FROM api_keys ORDER BY id DESC";

int store_key_list(const char *conninfo, json_t **out, char *err, size_t errlen)
{
    char dummy[8];
    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    *out = NULL;
    PGconn *c = store_pgconn_open(conninfo, err, errlen);
    if (c == NULL)
        return AM_EUNAVAIL;
    int rc = AM_OK;
    PGresult *r = PQexec(c, LIST_SQL);
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        store_pg_errcopy(err, errlen, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
        rc = store_pgerr_classify(c, r) == PGERR_DATA ? AM_EINVAL : AM_EUNAVAIL;
        goto done;
    }
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), KEY_TAG "%s", PQgetvalue(r, i, 2));
        json_t *sources =
            PQgetisnull(r, i, 4) ? json_null() : json_loads(PQgetvalue(r, i, 4), 0, NULL);
        json_array_append_new(
            arr, json_pack("{s:I, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:s}", "id",
                           (json_int_t)strtoll(PQgetvalue(r, i, 0), NULL, 10), "name",
                           PQgetvalue(r, i, 1), "prefix", prefix, "scopes",
                           scopes_json((unsigned)strtoul(PQgetvalue(r, i, 3), NULL, 10)), "sources",
                           sources ? sources : json_null(), "expires_at", time_json(r, i, 5),
                           "created_at", time_json(r, i, 6), "last_used_at", time_json(r, i, 7),
                           "revoked_at", time_json(r, i, 8), "state", PQgetvalue(r, i, 9)));
    }
    *out = arr;
done:
    PQclear(r);
    PQfinish(c);
    return rc;
}

int store_key_revoke(const char *conninfo, const char *which, int64_t *id, bool *already, char *err,
                     size_t errlen)
{
    char dummy[8];
    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    if (id != NULL)
        *id = 0;
    if (already != NULL)
        *already = false;
    /* an id, a prefix with or without "amk_", or a whole token */
    char prefix[KEY_PREFIX_LEN + 1] = "";
    char idtext[24] = "";
    size_t n = which ? strlen(which) : 0;
    uint64_t pid = key_parse(which, n);
    if (pid != 0) {
        key_prefix_text(prefix, pid);
    } else if (n > 0 && n < 19 && strspn(which, "0123456789") == n) {
        snprintf(idtext, sizeof(idtext), "%s", which);
    } else {
        const char *p = which;
        if (n == KEY_TAG_LEN + KEY_PREFIX_LEN && memcmp(which, KEY_TAG, KEY_TAG_LEN) == 0)
            p += KEY_TAG_LEN;
        bool ok = strlen(p) == KEY_PREFIX_LEN;
        for (size_t i = 0; ok && i < KEY_PREFIX_LEN; i++)
            ok = b32_value(p[i]) >= 0;
        if (!ok) {
            snprintf(err, errlen, "'%s' is neither a key id nor a key prefix (amk_xxxxxxxx)",
                     which ? which : "");
            return AM_EINVAL;
        }
        memcpy(prefix, p, KEY_PREFIX_LEN + 1);
    }
    PGconn *c = store_pgconn_open(conninfo, err, errlen);
    if (c == NULL)
        return AM_EUNAVAIL;
    /* the old revoked_at comes back through the self-join of the same row */
    const char *p[] = {idtext[0] ? idtext : NULL, prefix[0] ? prefix : NULL};
    PGresult *r = PQexecParams(c,
                               "UPDATE api_keys k SET revoked_at = coalesce(o.revoked_at, now())"
                               " FROM api_keys o WHERE o.id = k.id AND"
                               " (k.id = $1::int8 OR k.prefix = $2)"
                               " RETURNING k.id, o.revoked_at IS NOT NULL",
                               2, NULL, p, NULL, NULL, 0);
    int rc = AM_OK;
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        store_pg_errcopy(err, errlen, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
        rc = store_pgerr_classify(c, r) == PGERR_DATA ? AM_EINVAL : AM_EUNAVAIL;
    } else if (PQntuples(r) == 0) {
        snprintf(err, errlen, "no key %s%s", idtext[0] ? "with id " : KEY_TAG,
                 idtext[0] ? idtext : prefix);
        rc = AM_ENOTFOUND;
    } else {
        if (id != NULL)
            *id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        if (already != NULL)
            *already = PQgetvalue(r, 0, 1)[0] == 't';
    }
    PQclear(r);
    PQfinish(c);
    return rc;
}

int store_key_http_status(store_key_result_t r)
{
    switch (r) {
    case STORE_KEY_OK:
        return 200;
    case STORE_KEY_INVALID:
    case STORE_KEY_EXPIRED:
    case STORE_KEY_REVOKED:
        return 401;
    case STORE_KEY_NO_SCOPE:
    case STORE_KEY_NO_SOURCE:
        return 403;
    case STORE_KEY_UNAVAILABLE:
        break;
    }
    return 503;
}

const char *store_key_result_code(store_key_result_t r)
{
    switch (r) {
    case STORE_KEY_OK:
        return "OK";
    case STORE_KEY_INVALID:
        return "UNAUTHORIZED";
    case STORE_KEY_EXPIRED:
        return "KEY_EXPIRED";
    case STORE_KEY_REVOKED:
        return "KEY_REVOKED";
    case STORE_KEY_NO_SCOPE:
    case STORE_KEY_NO_SOURCE:
        return "FORBIDDEN";
    case STORE_KEY_UNAVAILABLE:
        break;
    }
    return "DATABASE_UNAVAILABLE";
}
