/*
 * engine/provider.h - enrichment providers: YAML files compiled at start-up
 * (provider_compile.c) into an immutable, reference-counted set, and the
 * run-time part (provider.c) that renders a provider's HTTP request for one
 * indicator, evaluates the reply, and answers `list` and `cidr` providers
 * from memory. The run-time part needs no YAML and does no I/O: the worker
 * sends the request and hands back status, headers and body.
 *
 * The language is documented in docs/enrichment.md; the JSON Schema for
 * editors is schemas/provider.schema.json.
 *
 * Thread safety: a set is read-only after eng_providers_load() returns and
 * may be used from any number of threads; ref/unref are atomic. The
 * limiter (eng_limiter_t) guards itself with a mutex.
 */
#ifndef ENG_PROVIDER_H
#define ENG_PROVIDER_H

#include "eng.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum { ENG_PROV_HTTP, ENG_PROV_LIST, ENG_PROV_CIDR } eng_provider_kind_t;

/* Verdicts, ordered: a larger value is worse, and the worst wins when
 * results are combined. ENG_VERDICT_NONE is a context result (cidr labels)
 * that takes no part in the verdict. */
typedef enum {
    ENG_VERDICT_NONE = 0,
    ENG_VERDICT_UNKNOWN,
    ENG_VERDICT_BENIGN,
    ENG_VERDICT_SUSPICIOUS,
    ENG_VERDICT_MALICIOUS
} eng_verdict_t;

/* "Unknown", "Benign", ...; "none" for ENG_VERDICT_NONE. */
const char *eng_verdict_name(eng_verdict_t v);
/* Parses a verdict name (exact spelling); -1 when not one. */
int eng_verdict_parse(const char *name);
/* The worse of two verdicts. */
static inline eng_verdict_t eng_verdict_worst(eng_verdict_t a, eng_verdict_t b)
{
    return a > b ? a : b;
}

typedef struct eng_providers eng_providers_t;
typedef struct eng_provider eng_provider_t;

#define ENG_PROV_MAX_RATES 4

typedef struct eng_rate {
    uint32_t count;    /* requests ... */
    int64_t period_us; /* ... per this period */
} eng_rate_t;

typedef struct eng_provider_info {
    const char *name; /* the `provider:` key */
    const char *file; /* the file it was compiled from */
    eng_provider_kind_t kind;
    unsigned types;       /* bit (1u << eng_ioc_type_t) per indicator type it answers */
    int64_t timeout_us;   /* http: whole request */
    unsigned concurrency; /* http: requests in flight at most */
    unsigned max_attempts;
    eng_rate_t rates[ENG_PROV_MAX_RATES];
    size_t nrates;
    size_t entries;  /* list: values and ranges loaded; cidr: ranges */
    size_t skipped;  /* list: lines that were no value of a declared type */
    size_t nsamples; /* entries of `samples:` */
} eng_provider_info_t;

/* ---- loading ---------------------------------------------------------------- */

typedef struct eng_providers_options {
    /* Read the environment variables named by `secrets:`; a variable that is
     * not set is an error of its provider. Off for `alertmap check`. */
    bool resolve_secrets;
    /* Read `list` files (off for the fuzz target, which compiles texts). */
    bool no_files;
    /* Run every provider's `samples:` after compiling (eng_provider_check_samples);
     * a failing sample is an error of its provider and the load fails. On for
     * alertmapd's start-up and SIGHUP and for `alertmap check`. */
    bool check_samples;
} eng_providers_options_t;

/* Compiles every provider file named by paths: a directory contributes each
 * *.yaml / *.yml directly inside it; a file is compiled as it is. Every
 * problem of every file goes to d as file:line:col; on any problem
 * AM_EINVAL and *out NULL. A provider name defined twice names both files. */
int eng_providers_load(eng_providers_t **out, const char *const *paths, size_t npaths,
                       const eng_providers_options_t *opt, am_diags_t *d);
/* Like eng_providers_load() on texts in memory, named by names (list files
 * are read relative to a name's folder unless opt->no_files). */
int eng_providers_load_texts(eng_providers_t **out, const char *const *names,
                             const char *const *texts, const size_t *lens, size_t n,
                             const eng_providers_options_t *opt, am_diags_t *d);
eng_providers_t *eng_providers_ref(eng_providers_t *s);
void eng_providers_unref(eng_providers_t *s);

/* Borrowed from the set; NULL-safe; thread-safe. */
size_t eng_providers_count(const eng_providers_t *s);
const eng_provider_t *eng_providers_at(const eng_providers_t *s, size_t i);
const eng_provider_t *eng_providers_find(const eng_providers_t *s, const char *name);

void eng_provider_info(eng_provider_info_t *out, const eng_provider_t *p);
bool eng_provider_applies(const eng_provider_t *p, eng_ioc_type_t t);
/* How long a result of type t stays cached (0: not cached). */
int64_t eng_provider_cache_ttl_us(const eng_provider_t *p, eng_ioc_type_t t);

/* ---- http: request ------------------------------------------------------------ */

typedef struct eng_header {
    const char *name, *value;
} eng_header_t;

typedef struct eng_request {
    const char *method; /* "GET", "POST" */
    const char *url;    /* absolute; holds no secret (secrets go in headers) */
    eng_header_t *headers;
    size_t nheaders;
    const char *body; /* NULL when none */
    size_t body_len;
} eng_request_t;

/* Renders p's request for one indicator into arena a. Every hole is filled
 * with the value percent-encoded for where it lands (URL path and query:
 * everything but A-Z a-z 0-9 - . _ ~; form body: the same), so no value can
 * change the URL's host, path or query beyond its own slot. A header value
 * with a control character is refused. AM_EINVAL (err says why), AM_ELIMIT
 * when the arena is at its cap. Reentrant. */
int eng_provider_request(eng_request_t *out, const eng_provider_t *p, eng_ioc_type_t t,
                         const char *value, am_arena_t *a, eng_error_t *err);

/* ---- results ----------------------------------------------------------------- */

typedef enum {
    ENG_OUT_FOUND,     /* the provider knows the value: result and verdict */
    ENG_OUT_NOT_FOUND, /* the provider answered that it does not know it */
    ENG_OUT_RETRY,     /* transient: try again later (429, 5xx, timeout) */
    ENG_OUT_FAILED     /* permanent: an unexpected status or a reply that is no JSON */
} eng_outcome_t;

const char *eng_outcome_name(eng_outcome_t o); /* "found", "not_found", "retry", "failed" */

typedef struct eng_presult {
    eng_outcome_t outcome;
    eng_verdict_t verdict;  /* ENG_VERDICT_UNKNOWN unless found */
    json_t *fields;         /* new reference: the result object (never NULL) */
    char reason[256];       /* retry / failed: why, one line */
    int64_t retry_after_us; /* retry: the delay the reply's Retry-After asks for; else -1 */
} eng_presult_t;

/* An HTTP reply as the worker received it (or as a sample records it). */
typedef struct eng_reply {
    int status;
    const eng_header_t *headers; /* names compared without case */
    size_t nheaders;
    const char *body;
    size_t body_len;
} eng_reply_t;

/* Interprets an HTTP reply: the outcome by status (retry, not_found, found,
 * else failed), for a found one the result fields, not_found_when and the
 * verdict; for a retry the Retry-After header (delta-seconds or HTTP-date,
 * from now_us) in out->retry_after_us. Pure: no I/O, no clock. The caller
 * owns out->fields. Reentrant. The worker and the sample runner both call it. */
void eng_provider_interpret(eng_presult_t *out, const eng_provider_t *p, eng_ioc_type_t t,
                            const eng_reply_t *reply, int64_t now_us);
/* eng_provider_interpret() of a reply without headers (status, body of len bytes). */
void eng_provider_evaluate(eng_presult_t *out, const eng_provider_t *p, eng_ioc_type_t t,
                           int status, const char *body, size_t len);

/* Answers a `list` or `cidr` provider from memory (value canonical). For an
 * http provider, outcome FAILED. The caller owns out->fields. Reentrant. */
void eng_provider_lookup(eng_presult_t *out, const eng_provider_t *p, eng_ioc_type_t t,
                         const char *value);

/* ---- samples (provider_samples.c; docs/enrichment.md, "Samples") ----------- */

/* Runs p's `samples:` (compiled with the provider): an http sample renders
 * the request for its indicator with every secret shown as {secret.NAME}
 * (never its value) and interprets the recorded reply with
 * eng_provider_interpret(); a list or cidr sample looks its indicator up.
 * Every difference from the expected request, outcome, verdict, result,
 * labels, reason or Retry-After delay is added to d at the position of the
 * expected item in the provider file. No network I/O; list files were read
 * at load. Returns the number of failing samples (0: all pass). Reentrant. */
int eng_provider_check_samples(const eng_provider_t *p, am_diags_t *d);

/* The delay a Retry-After header value asks for (delta-seconds or an
 * HTTP-date), in microseconds from now_us; -1 when it is neither. */
int64_t eng_retry_after_us(const char *v, int64_t now_us);

/* ---- rate limits ------------------------------------------------------------- */

/* One token bucket per rate of a provider (e.g. 4/min and 500/day), plus a
 * pause until a time a Retry-After asked for. */
typedef struct eng_limiter {
    pthread_mutex_t mu;
    size_t n;
    eng_rate_t rates[ENG_PROV_MAX_RATES];
    double tokens[ENG_PROV_MAX_RATES];
    int64_t last_us;
    int64_t paused_until_us;
} eng_limiter_t;

void eng_limiter_init(eng_limiter_t *l, const eng_provider_t *p, int64_t now_us);
void eng_limiter_dispose(eng_limiter_t *l);
/* Takes one request's tokens and returns 0, or takes nothing and returns
 * how long to wait (microseconds) before asking again. Thread-safe. */
int64_t eng_limiter_take(eng_limiter_t *l, int64_t now_us);
/* No request before until_us (a 429's Retry-After). Thread-safe. */
void eng_limiter_pause(eng_limiter_t *l, int64_t until_us);

/* ---- dispatch targets (provider_target.c; docs/dispatch.md) ----------------- */

typedef enum { ENG_SEND_ENRICHED, ENG_SEND_INGESTED } eng_send_when_t;

typedef struct eng_target {
    const char *name, *file;
    const char *url;        /* http:// or https:// */
    const char *secret_env; /* the signing secret's environment variable */
    const char *secret;     /* resolved at load (NULL when not resolved) */
    eng_send_when_t when;
    const char **sources; /* empty: every source */
    size_t nsources;
    int min_severity;  /* index in Informational..Critical; 0 = any */
    unsigned verdicts; /* bit (1u << eng_verdict_t); 0 = any */
    const char **tags; /* any of them; empty: no tag filter */
    size_t ntags;
    unsigned max_attempts;
    int64_t timeout_us;
    int64_t backoff_us; /* first retry delay */
} eng_target_t;

typedef struct eng_targets eng_targets_t;

/* Compiles the target files of paths (directories of *.yaml or files); every
 * problem to d as file:line:col; AM_EINVAL and *out NULL on any. With
 * opt->resolve_secrets an unset secret variable is an error. */
int eng_targets_load(eng_targets_t **out, const char *const *paths, size_t npaths,
                     const eng_providers_options_t *opt, am_diags_t *d);
void eng_targets_free(eng_targets_t *t);
size_t eng_targets_count(const eng_targets_t *t);
const eng_target_t *eng_targets_at(const eng_targets_t *t, size_t i);
const eng_target_t *eng_targets_find(const eng_targets_t *t, const char *name);

/* 1 Informational .. 5 Critical; 0 for anything else (Pending). */
int eng_severity_rank(const char *severity);
/* Whether an alert passes t's filters. Reentrant. */
bool eng_target_matches(const eng_target_t *t, const char *source, const char *severity,
                        const char *verdict, const char *const *tags, size_t ntags);
/* The signature header value "t=TS,v1=HEX": HMAC-SHA256 with secret over
 * "TS.BODY" (TS in decimal seconds). out needs 160 bytes. Reentrant. */
void eng_target_sign(char out[160], const char *secret, int64_t ts, const char *body, size_t len);

#endif
