/*
 * engine/eng.h - the public interface of the alertmap engine.
 *
 * The engine compiles a directory of YAML mapping files into an immutable,
 * reference-counted set of normalization programs and runs a program on a
 * JSON payload. It is pure: no HTTP, no database. Depends on libyaml, PCRE2,
 * jansson, OpenSSL's libcrypto (HMAC for signatures), libpsl and libidn2.
 *
 * Thread safety: a compiled set is read-only after eng_set_load() returns and
 * may be used from any number of threads at once; eng_set_ref/unref are
 * atomic. eng_run() is reentrant (all per-call state lives in the arena the
 * caller passes).
 */
#ifndef ENG_H
#define ENG_H

#include "am.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- indicators ---------------------------------------------------------- */

typedef enum {
    ENG_IOC_IP,
    ENG_IOC_DOMAIN,
    ENG_IOC_URL,
    ENG_IOC_EMAIL,
    ENG_IOC_HASH_MD5,
    ENG_IOC_HASH_SHA1,
    ENG_IOC_HASH_SHA256,
    ENG_IOC_ACCOUNT,
    ENG_IOC__COUNT
} eng_ioc_type_t;

/* "ip", "domain", "url", "email", "hash_md5", "hash_sha1", "hash_sha256", "account";
 * "unknown" for a value out of range. A static string; cannot fail. */
const char *eng_ioc_type_name(eng_ioc_type_t t);
/* Parses name[0..len) as a type name (exact, lowercase). Returns 0 with *out
 * set, or AM_EINVAL (unknown name or name NULL; *out untouched). */
int eng_ioc_type_parse(eng_ioc_type_t *out, const char *name, size_t len);

typedef struct eng_indicator {
    eng_ioc_type_t type;
    const char *value;        /* canonical form (docs/indicators.md) */
    const char *source_field; /* provenance: payload path, field name or rule */
    const char *origin;       /* the mapping rule: "file.yaml:LINE" */
} eng_indicator_t;

/* ---- the normalized alert ---------------------------------------------- */

/* Text fields of the alert. Order matters: it is the index into
 * eng_alert_t.field[] and the order of keys in printed JSON. */
typedef enum {
    ENG_F_TITLE,
    ENG_F_SEVERITY,
    ENG_F_OCCURRED_AT, /* field[] holds the RFC 3339 text; occurred_at_us the value */
    ENG_F_DESCRIPTION,
    ENG_F_DETECTION_RULE_REF,
    /* optional normalized fields; each also feeds indicator extraction */
    ENG_F_SRC_IP,
    ENG_F_DST_IP,
    ENG_F_SRC_HOSTNAME,
    ENG_F_DST_HOSTNAME,
    ENG_F_FILE_HASH_MD5,
    ENG_F_FILE_HASH_SHA1,
    ENG_F_FILE_HASH_SHA256,
    ENG_F_ACTOR_EMAIL,
    ENG_F_ACTOR_USERNAME,
    ENG_F_DNS_QUERY,
    ENG_F_HTTP_URL,
    ENG_F_HTTP_HOSTNAME,
    ENG_F_EMAIL_FROM,
    ENG_F_EMAIL_REPLY_TO,
    ENG_F__COUNT
} eng_field_t;

/* "title", "severity", "occurred_at", ..., "email_reply_to"; "?" for a value
 * out of range. A static string; cannot fail. */
const char *eng_field_name(eng_field_t f);

typedef struct eng_alert {
    const char *source_name;
    const char *field[ENG_F__COUNT]; /* NULL when absent; title and severity never NULL */
    int64_t occurred_at_us;          /* UTC microseconds since the epoch */
    bool occurred_at_fallback;       /* true: no usable event time, ingest time used */
    const char **tags;
    size_t ntags;
    eng_indicator_t *indicators; /* de-duplicated on (type, value), first provenance kept */
    size_t nindicators;
    char fingerprint[65]; /* lowercase hex SHA-256, see eng_fingerprint() */
    json_t *raw;          /* borrowed: the payload, or the split element */
    /* provenance for dry runs: for each field the rule that produced it, e.g.
     * "sentinel.yaml:14 properties.title" or "sentinel.yaml:14 default";
     * NULL when the field is absent. */
    const char *origin[ENG_F__COUNT];
    const char *tags_origin;
} eng_alert_t;

typedef struct eng_result {
    eng_alert_t *alerts; /* in the arena passed to eng_run() */
    size_t nalerts;      /* >= 1 on success */
} eng_result_t;

/* An error for the API: a stable code and a human message. */
typedef struct eng_error {
    const char *code; /* "INVALID_PAYLOAD", "INVALID_SIGNATURE", "LIMIT_EXCEEDED", ... */
    char message[512];
} eng_error_t;

/* ---- compiled sets ------------------------------------------------------ */

typedef struct eng_set eng_set_t;
typedef struct eng_program eng_program_t;

typedef struct eng_load_options {
    /* Shared indicator rule file; NULL means "<dir>/rules/indicators.yaml". */
    const char *rules_file;
    /* Run every mapping's sample payloads after compiling and report a
     * mismatch as an error of that mapping (a step of loading, used at
     * reload and by `alertmap test`). */
    bool check_samples;
} eng_load_options_t;

/*
 * Compiles every "*.yaml"/"*.yml" file directly inside dir (sub-folders such
 * as rules/ and samples/ are not mappings) plus the shared rule file. All
 * problems of all files are added to diags as file:line:col messages.
 * Returns 0 and a set with one reference, or AM_EINVAL (diags say why; *out
 * is NULL), AM_EIO (dir unreadable, also in diags), AM_ELIMIT (the set is
 * larger than its memory bound, also in diags).
 * paths: alternatively a list of individual files (dir may then be NULL and
 * the rule file must be given or found beside the first file).
 */
int eng_set_load(eng_set_t **out, const char *dir, const eng_load_options_t *opt,
                 am_diags_t *diags);
int eng_set_load_files(eng_set_t **out, const char *const *paths, size_t npaths,
                       const eng_load_options_t *opt, am_diags_t *diags);
/* Atomic reference counting, callable from any thread: ref returns s;
 * unref frees the set (its programs, rules and everything they own) on the
 * last reference. Both accept NULL. */
eng_set_t *eng_set_ref(eng_set_t *s);
void eng_set_unref(eng_set_t *s);

/* The programs of a set are borrowed: valid while the caller holds a
 * reference to the set. These read-only calls are thread-safe, accept a NULL
 * set and cannot fail. */
/* O(1) lookup by source name name[0..len); NULL when unknown. */
const eng_program_t *eng_set_find(const eng_set_t *s, const char *name, size_t len);
/* Number of programs (0 for NULL). */
size_t eng_set_count(const eng_set_t *s);
/* Program i in name order; NULL when i >= eng_set_count(s). */
const eng_program_t *eng_set_at(const eng_set_t *s, size_t i);

typedef struct eng_program_info {
    const char *source; /* the route name */
    const char *display_name;
    const char *file;        /* path as loaded */
    char content_sha256[65]; /* of the file bytes */
    int64_t loaded_at_us;
    bool has_signature; /* a signature block is declared */
    /* the signature block's secret variables (names only), and whether one
     * of them was set when the set was loaded */
    const char *const *secret_env;
    size_t nsecret_env;
    bool secret_set;
    bool query_key; /* `auth: {query_key: true}`: an API key may come as ?api_key= */
    size_t nsamples;
} eng_program_info_t;

/* Fills out from p (not NULL). The strings are borrowed from the program
 * (valid as long as its set). Thread-safe; cannot fail. */
void eng_program_info(eng_program_info_t *out, const eng_program_t *p);

/* ---- signatures ---------------------------------------------------------- */

/* Returns the value of a request header (case-insensitive name), or NULL. */
typedef const char *(*eng_header_fn)(void *ctx, const char *name, size_t *len);

typedef struct eng_sig_request {
    eng_header_fn header;
    void *header_ctx;
    const char *query; /* raw query string without '?', or NULL */
    size_t query_len;
    const char *body;
    size_t body_len;
    int64_t now_s; /* for timestamp skew checks */
} eng_sig_request_t;

/*
 * Verifies the request against the program's signature block, with the
 * secrets of the environment variables it names as they were when the set
 * was loaded (several = rotation: any one may match). No environment access
 * per request: a changed variable counts from the next load (reload), and
 * only if the process's own environment changed. Constant-time comparison.
 * Returns 0 when valid, when the program declares no signature, or when none
 * of the named variables is set (*secret_set false then); AM_EAUTH with err
 * filled (code "INVALID_SIGNATURE", message without secret material)
 * otherwise. Thread-safe.
 */
int eng_verify_signature(const eng_program_t *p, const eng_sig_request_t *req, bool *secret_set,
                         eng_error_t *err);

/* ---- running ------------------------------------------------------------- */

#define ENG_MAX_DEPTH      64   /* payload nesting bound */
#define ENG_MAX_INDICATORS 1000 /* per alert */
#define ENG_MAX_SPLIT      1000 /* alerts per request */

/*
 * Runs program p on payload (borrowed, must be a JSON object; the caller
 * answers arrays and scalars itself). now_us is the ingest time used when no
 * event time is found. All output lives in arena a.
 * Returns 0 with out filled; AM_EINVAL when a match rule rejects the payload
 * (err: code INVALID_PAYLOAD, message naming the rule and its file:line);
 * AM_ELIMIT when a bound is exceeded, the arena's cap included (code
 * LIMIT_EXCEEDED). The first error of a run is the one reported.
 */
int eng_run(eng_result_t *out, const eng_program_t *p, json_t *payload, am_arena_t *a,
            int64_t now_us, eng_error_t *err);

/* JSON of an alert as the CLI and the API print it (schemas/alert.schema.json).
 * flags: ENG_JSON_INDICATORS adds "indicators":[{"type","value","source_field"}];
 * ENG_JSON_PROVENANCE adds "provenance":{field: origin} and an "origin" per
 * indicator; ENG_JSON_RAW adds "raw_payload" (a new reference to alert->raw).
 * Returns a new reference (the caller decrefs it) or NULL when out of
 * memory. Reentrant. */
#define ENG_JSON_INDICATORS 1
#define ENG_JSON_PROVENANCE 2
#define ENG_JSON_RAW        4
json_t *eng_alert_json(const eng_alert_t *alert, int flags);

/* Fingerprint: lowercase hex SHA-256 over title, source and the sorted
 * (type, value) pairs, with unambiguous separators. out gets 65 bytes.
 * iocs is only read. Reentrant. Never returns an error: when OpenSSL cannot
 * compute SHA-256 at all (no memory, no provider) the process aborts, as it
 * does when the heap is exhausted. */
void eng_fingerprint(char out[65], const char *title, const char *source,
                     const eng_indicator_t *iocs, size_t n);

/* ---- time ---------------------------------------------------------------- */

/*
 * ISO-8601 date-time: YYYY-MM-DD[Tt ]hh:mm[:ss[.f{1,9}]][Z|z|±hh:mm|±hhmm|±hh];
 * no offset means UTC. The whole of s..s+len must match (no surrounding
 * space). Fields are range-checked (year 0001-9999, month 1-12, day valid
 * for the month and year, hour ≤ 23, minute ≤ 59, second ≤ 60, offset hours
 * ≤ 23 and minutes ≤ 59). A fraction is truncated to microseconds; a leap
 * second (:60) counts as the first second of the next minute. Returns 0 with
 * microseconds since the epoch (UTC, negative before 1970) in *out_us, or
 * AM_EINVAL (*out_us untouched).
 */
int eng_parse_iso8601(int64_t *out_us, const char *s, size_t len);

/* ---- samples (alertmap test, reload check) -------------------------------- */

/* Runs every sample of p (listed when its set was loaded) and compares with
 * its expected file. Each mismatch is added to diags (file of the expected
 * output, line 0) with a readable diff in the message. Returns the number
 * of failing samples (0: all pass), or AM_EIO when a sample file cannot be
 * read (diags then say which). Reads files: part of loading, not of
 * running. Thread-safe for distinct diags lists. */
int eng_program_check_samples(const eng_program_t *p, am_diags_t *diags);

/* ---- free-text extraction (alertmap extract) ------------------------------ */

typedef struct eng_rules eng_rules_t;
/* Compiles the shared indicator rule file. Returns 0 with *out (free it with
 * eng_rules_free), or AM_EINVAL (errors in the file, or larger than the
 * bound) or AM_EIO (unreadable), with *out NULL and the reasons
 * added to diags. The result is immutable: any number of threads may scan
 * with it at once. */
int eng_rules_load(eng_rules_t **out, const char *path, am_diags_t *diags);
/* Frees rules loaded by eng_rules_load(); NULL is a no-op. Never call it on
 * the rules of a set (eng_set_rules): the set owns those. */
void eng_rules_free(eng_rules_t *r);
/* The set's rules (borrowed, lives as long as the set). */
const eng_rules_t *eng_set_rules(const eng_set_t *s);
/* Scans text for indicators of the types whose bit (1u << type) is in mask,
 * strict mode (public suffix required, account-vs-email), canonical,
 * de-duplicated, appended to *out (arena-allocated array grown as needed;
 * start with *out NULL and *n 0, or pass back what a previous call on the
 * same arena returned). The values live in arena a; source_field is stored
 * as given (not copied). Returns 0, AM_ELIMIT when ENG_MAX_INDICATORS is
 * reached or the arena is at its cap (what was found before stays).
 * Reentrant. */
int eng_extract_text(eng_indicator_t **out, size_t *n, const eng_rules_t *r, const char *text,
                     size_t len, unsigned mask, const char *source_field, am_arena_t *a);

/* Canonical form of value[0..len) declared as type t (trusted mode: syntax
 * and canonical form only) or found in free text (strict). Returns the
 * canonical string in arena a, or NULL when the value is not a valid t (or
 * the arena is exhausted). Reentrant. */
const char *eng_ioc_canonical(eng_ioc_type_t t, const char *value, size_t len, bool strict,
                              am_arena_t *a);

#endif
