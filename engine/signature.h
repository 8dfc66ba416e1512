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

#define ENG_SIG_DEFAULT_SKEW 300
#define ENG_SIG_MAX_SECRETS  16 /* variables per signature block */

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

typedef struct sig_spec {
    scheme_t scheme;
    encoding_t encoding;
    const char *header;      /* hmac-*, token */
    const char *query_param; /* query-token */
    const char *prefix;      /* NULL when none */
    size_t prefix_len;
    const char **secret_env; /* variable names, at least one */
    size_t nsecret_env;
    const char *timestamp_header; /* hmac-*: sign "timestamp.body" */
    int64_t max_skew;
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

#endif
