/*
 * engine/signature.h - a mapping's compiled `signature:` block and its
 * verification. Internal to engine/. sig_compile.c (compiler) builds a
 * spec, the loader resolves its secrets once per load (eng_sig_resolve),
 * signature.c (run time) verifies requests against it. After the set that
 * holds it is published, a spec is immutable and thread-safe.
 */
#ifndef ENG_SIGNATURE_H
#define ENG_SIGNATURE_H

#include "am.h"
#include "eng.h"

#define ENG_SIG_DEFAULT_SKEW   300
#define ENG_SIG_MAX_SECRETS    16 /* variables per signature block */
#define ENG_SIG_MAX_CANDIDATES 8  /* signatures looked at in one header */
#define ENG_SIG_MAX_PARTS      16 /* pieces of a signed_text template */

typedef enum {
    SCHEME_HMAC_SHA256,
    SCHEME_HMAC_SHA1,
    SCHEME_TOKEN,
    SCHEME_QUERY_TOKEN,
    ENG_SIG__SCHEMES
} scheme_t;
typedef enum { ENC_HEX, ENC_BASE64 } encoding_t;

/* "hmac-sha256", "hmac-sha1", "token", "query-token", indexed by scheme_t. */
extern const char *const eng_sig_scheme_names[ENG_SIG__SCHEMES];

/* One piece of the signed text: literal bytes, the body, the timestamp (as
 * sent), or the value of a request header (as sent). */
typedef enum { PART_LITERAL, PART_BODY, PART_TIMESTAMP, PART_HEADER } part_kind_t;
typedef struct sig_part {
    part_kind_t kind;
    const char *text; /* PART_LITERAL: the bytes; PART_HEADER: the header name */
    size_t len;
} sig_part_t;

typedef struct sig_spec {
    scheme_t scheme;
    encoding_t encoding;
    const char *header;      /* hmac-*, token */
    const char *query_param; /* query-token */
    const char *prefix;      /* NULL when none */
    size_t prefix_len;
    const char **secret_env; /* variable names, at least one */
    size_t nsecret_env;
    const char *timestamp_header; /* hmac-*: the timestamp in its own header */
    const char *timestamp_param;  /* hmac-*: "t" of "t=<ts>,v1=<sig>" in header */
    const char *signature_param;  /* hmac-*: "v1": the header is k=v items, any
                                   * item with this key may match */
    int64_t max_skew;
    /* What the HMAC covers, in order (always set for hmac-*: the default is
     * {body}, or {timestamp}.{body} when a timestamp is declared). */
    const sig_part_t *parts;
    size_t nparts;
    /* Replay protection (docs/security.md): the header naming a delivery;
     * NULL when none. replay_window 0: the server's default. */
    const char *delivery_id;
    int64_t replay_window;
    /* Filled by eng_sig_resolve() at load time: the values of the set
     * variables among secret_env, in order (empty values skipped). */
    char **secrets;
    size_t nsecrets;
} sig_spec_t;

/* Reads the environment variables spec names (the only getenv() of the
 * engine, called by the loader for every set it builds, so a reload sees
 * whatever the process environment holds then) and keeps copies of their
 * values in arena a. spec NULL: nothing to do. Returns 0, or AM_ELIMIT
 * when the arena's cap is reached. */
int eng_sig_resolve(sig_spec_t *spec, am_arena_t *a);

/* Wipes the secret copies (OPENSSL_cleanse) before the arena holding them
 * is freed. spec NULL: no-op. */
void eng_sig_forget(sig_spec_t *spec);

/* Verifies req against spec (spec NULL = no signature declared: 0) with
 * the secrets resolved at load time; no environment access. See
 * eng_verify_signature() in eng.h for the contract. */
int eng_sig_verify(const sig_spec_t *spec, const eng_sig_request_t *req, bool *secret_set,
                   eng_error_t *err);

/* Splits a "k=v,k=v" signature header (blanks around items ignored) and
 * calls fn for each item; an item without '=' gets key NULL. Stops after
 * max items (returns false then) or when fn returns false. Never reads past
 * len. Reentrant. Exposed for the fuzz target. */
typedef bool (*eng_sig_item_fn)(void *ctx, const char *key, size_t klen, const char *val,
                                size_t vlen);
bool eng_sig_items(const char *s, size_t len, size_t max, eng_sig_item_fn fn, void *ctx);

#endif
