/*
 * engine/provider_int.h - the compiled form of provider files, shared by the
 * provider compiler (provider_compile.c) and the run-time part (provider.c).
 * Internal to engine/. Everything lives in the set's arena; JSON constants
 * are held by the set's `keep` array and released with it.
 */
#ifndef ENG_PROVIDER_INT_H
#define ENG_PROVIDER_INT_H

#include "path.h"
#include "provider.h"

#include <stdatomic.h>

/* ---- templates ------------------------------------------------------------------ */

typedef enum { PV_LIT, PV_VALUE, PV_VALUE_B64URL, PV_SECRET } pv_part_kind_t;

typedef struct pv_part {
    pv_part_kind_t kind;
    const char *lit; /* PV_LIT */
    size_t len;
    size_t secret; /* PV_SECRET: index into the provider's secrets */
} pv_part_t;

typedef struct pv_tpl {
    pv_part_t *parts;
    size_t n;
} pv_tpl_t;

/* Where a rendered hole lands, which decides its encoding. */
typedef enum { PV_ENC_HEADER, PV_ENC_URL, PV_ENC_FORM } pv_enc_t;

typedef struct pv_kv {
    const char *name;
    pv_tpl_t tpl;
} pv_kv_t;

typedef struct pv_secret {
    const char *name; /* as templates name it: {secret.NAME} */
    const char *env;  /* the environment variable */
    char *value;      /* resolved at load (NULL when not resolved); wiped on free */
} pv_secret_t;

/* ---- statuses ------------------------------------------------------------------- */

typedef struct pv_range {
    int lo, hi;
} pv_range_t;

typedef struct pv_statuses {
    pv_range_t *r;
    size_t n;
} pv_statuses_t;

/* ---- conditions and verdicts ------------------------------------------------------- */

typedef enum {
    PV_C_ALL,
    PV_C_ANY,
    PV_C_NOT,
    PV_C_EQ,
    PV_C_NE,
    PV_C_GT,
    PV_C_GTE,
    PV_C_LT,
    PV_C_LTE,
    PV_C_IN,
    PV_C_EXISTS,
    PV_C_CONTAINS
} pv_cond_kind_t;

typedef struct pv_cond pv_cond_t;
struct pv_cond {
    pv_cond_kind_t kind;
    /* ALL / ANY / NOT */
    pv_cond_t **sub;
    size_t nsub;
    /* comparisons: the result field and the operand (IN: an array) */
    const char *field;
    json_t *operand; /* borrowed from the set's keep array */
    bool exists;     /* EXISTS */
};

typedef struct pv_vmap {
    const char *key; /* lowercased */
    eng_verdict_t verdict;
} pv_vmap_t;

typedef struct pv_vrule {
    pv_cond_t *when; /* NULL with map or for `else` */
    const char *map_field;
    pv_vmap_t *map;
    size_t nmap;
    eng_verdict_t then;
    bool is_else;
} pv_vrule_t;

typedef struct pv_field {
    const char *name;
    epath_t *path;
} pv_field_t;

/* ---- list and cidr --------------------------------------------------------------- */

typedef struct pv_net {
    int family; /* 4 or 6 */
    unsigned char addr[16];
    unsigned prefix;
    const char *text;    /* as written (canonical a.b.c.d/n) */
    const char **labels; /* cidr */
    size_t nlabels;
} pv_net_t;

typedef struct pv_hash {
    const char **slots; /* "T\x1fvalue" keys; NULL = empty */
    size_t cap;         /* power of two */
    size_t n;
} pv_hash_t;

/* ---- samples (provider_samples.c) ------------------------------------------------ */

/* A position in the provider file (1-based; 0 when unknown). */
typedef struct pv_at {
    int line, col;
} pv_at_t;

typedef struct pv_xheader {
    const char *name, *value; /* the expected value; a secret as {secret.NAME} */
    pv_at_t at;
} pv_xheader_t;

typedef struct pv_xfield {
    const char *name; /* a top-level key of the expected result */
    pv_at_t at;
} pv_xfield_t;

/* One entry of `samples:`: an indicator, for http the recorded reply, and
 * what the provider is expected to make of it. Unset expectations are
 * NULL / -1 / false and are not compared. */
typedef struct pv_sample {
    const char *name;
    pv_at_t at;
    eng_ioc_type_t type;
    const char *value;
    /* http: the recorded reply */
    int status;
    eng_header_t *rheaders;
    size_t nrheaders;
    const char *body;
    size_t body_len;
    /* expected request (http) */
    bool x_request;
    pv_at_t x_request_at;
    const char *x_method, *x_url, *x_body;
    pv_at_t x_method_at, x_url_at, x_body_at;
    bool x_headers; /* `headers:` given: the sent headers are exactly these */
    pv_at_t x_headers_at;
    pv_xheader_t *xh;
    size_t nxh;
    /* expected answer */
    eng_outcome_t x_outcome;
    pv_at_t x_outcome_at;
    int x_verdict; /* eng_verdict_t, -1 when not given */
    pv_at_t x_verdict_at;
    json_t *x_result; /* borrowed from the set's keep array */
    pv_at_t x_result_at;
    pv_xfield_t *xf;
    size_t nxf;
    json_t *x_labels;
    pv_at_t x_labels_at;
    const char *x_reason; /* a part of the reason */
    pv_at_t x_reason_at;
    int64_t x_retry_after_us; /* -1 when not given */
    pv_at_t x_retry_after_at;
} pv_sample_t;

struct eng_provider {
    const char *name, *file;
    eng_provider_kind_t kind;
    unsigned types;
    int64_t timeout_us;
    unsigned concurrency, max_attempts;
    eng_rate_t rates[ENG_PROV_MAX_RATES];
    size_t nrates;
    int64_t ttl_us[ENG_IOC__COUNT];

    /* http */
    const char *method;
    pv_tpl_t *url[ENG_IOC__COUNT]; /* NULL for a type it does not answer */
    pv_kv_t *headers;
    size_t nheaders;
    pv_kv_t *form; /* POST application/x-www-form-urlencoded */
    size_t nform;
    pv_secret_t *secrets;
    size_t nsecrets;
    pv_statuses_t found, not_found, retry;
    pv_field_t *fields;
    size_t nfields;
    pv_cond_t *not_found_when;
    pv_vrule_t *vrules;
    size_t nvrules;

    /* list */
    const char *list_file;
    eng_verdict_t list_verdict;
    const char *list_tag;
    pv_hash_t values;
    size_t skipped;

    /* list (ranges in the file) and cidr */
    pv_net_t *nets;
    size_t nnets;

    pv_sample_t *samples;
    size_t nsamples;
};

struct eng_providers {
    atomic_int refs;
    am_arena_t *arena;
    eng_provider_t **items;
    size_t n;
    json_t *keep; /* JSON constants of conditions */
};

/* Renders p's request as eng_provider_request() does; with mask_secrets
 * every {secret.NAME} hole is written as that text instead of the secret's
 * value (the sample runner: a secret never reaches a comparison or a
 * message). */
int eng_pv_request(eng_request_t *out, const eng_provider_t *p, eng_ioc_type_t t, const char *value,
                   bool mask_secrets, am_arena_t *a, eng_error_t *err);

/* "500ms", "30s", "5m", "24h", "7d" or a number of seconds (provider_compile.c). */
bool eng_pv_parse_duration(const char *s, int64_t *out);

/* Compiles the `samples:` list n of provider p (its kind, types and secrets
 * already compiled) into p->samples; the arena a and the keep array are the
 * set's. Every problem goes to d at its position in file. Returns false
 * when there was one (provider_samples.c). */
struct yt_node;
bool eng_pv_compile_samples(eng_provider_t *p, const struct yt_node *n, am_arena_t *a, json_t *keep,
                            const char *file, am_diags_t *d);

/* provider.c helpers the compiler also uses */
bool eng_pv_parse_net(pv_net_t *out, const char *text, size_t len);
bool eng_pv_hash_add(pv_hash_t *h, am_arena_t *a, eng_ioc_type_t t, const char *v);
bool eng_pv_hash_has(const pv_hash_t *h, eng_ioc_type_t t, const char *v);

#endif
