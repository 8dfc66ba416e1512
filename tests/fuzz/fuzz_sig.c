/*
 * tests/fuzz/fuzz_sig.c - the signature header parser and the HMAC schemes
 * (engine/signature.c). Input: one selector byte, then the signature
 * header's value up to the first '\n', then the body. The selector picks
 * one of the specs below (built in C, secrets set directly, as the loader's
 * eng_sig_resolve would): Stripe's t=/v1= items, PagerDuty's several v1=,
 * Slack's prefixed value with a timestamp header and a v0:… signed text,
 * and a plain prefixed hex digest. Checks: verification answers 0 or
 * AM_EAUTH with a code and a message, never a crash; the item splitter
 * hands out keys and values that lie inside the input and contain no ','.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "signature.h"

static char secret1[] = "topsecret-1", secret2[] = "rotated-2";
static char *secrets[] = {secret1, secret2};

static const sig_part_t body_only[] = {{PART_BODY, NULL, 0}};
static const sig_part_t stamped[] = {
    {PART_TIMESTAMP, NULL, 0}, {PART_LITERAL, ".", 1}, {PART_BODY, NULL, 0}};
static const sig_part_t slack[] = {{PART_LITERAL, "v0:", 3},
                                   {PART_TIMESTAMP, NULL, 0},
                                   {PART_LITERAL, ":", 1},
                                   {PART_HEADER, "X-Id", 4},
                                   {PART_BODY, NULL, 0}};

static sig_spec_t specs[] = {
    {.scheme = SCHEME_HMAC_SHA256,
     .header = "S",
     .timestamp_param = "t",
     .signature_param = "v1",
     .max_skew = 300,
     .parts = stamped,
     .nparts = 3},
    {.scheme = SCHEME_HMAC_SHA256,
     .header = "S",
     .signature_param = "v1",
     .prefix = "sha256=",
     .prefix_len = 7,
     .max_skew = 300,
     .parts = body_only,
     .nparts = 1},
    {.scheme = SCHEME_HMAC_SHA256,
     .header = "S",
     .prefix = "v0=",
     .prefix_len = 3,
     .timestamp_header = "T",
     .max_skew = 300,
     .parts = slack,
     .nparts = 5},
    {.scheme = SCHEME_HMAC_SHA1,
     .header = "S",
     .encoding = ENC_BASE64,
     .signature_param = "v1",
     .max_skew = 300,
     .parts = body_only,
     .nparts = 1},
};

typedef struct {
    const char *sig;
    size_t siglen;
} input_t;

static const char *header(void *ctx, const char *name, size_t *len)
{
    input_t *in = ctx;
    if (strcmp(name, "S") == 0) {
        *len = in->siglen;
        return in->sig;
    }
    if (strcmp(name, "T") == 0) {
        *len = 10;
        return "1714557600";
    }
    if (strcmp(name, "X-Id") == 0) {
        *len = 2;
        return "42";
    }
    return NULL;
}

typedef struct {
    const char *start, *end;
} bounds_t;

static bool check_item(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
    bounds_t *b = ctx;
    if (key != NULL) {
        assert(key >= b->start && key + klen <= b->end);
        assert(memchr(key, ',', klen) == NULL && memchr(key, '=', klen) == NULL);
    }
    assert(val >= b->start && val + vlen <= b->end);
    assert(memchr(val, ',', vlen) == NULL);
    return true;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size == 0)
        return 0;
    sig_spec_t *spec = &specs[data[0] % AM_ARRAY_LEN(specs)];
    spec->secrets = secrets;
    spec->nsecrets = 2;
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    const char *nl = memchr(rest, '\n', n);
    input_t in = {.sig = rest, .siglen = nl ? (size_t)(nl - rest) : n};
    /* a copy of exactly the header's bytes, so ASan sees any over-read */
    char *sig = malloc(in.siglen ? in.siglen : 1);
    memcpy(sig, rest, in.siglen);
    in.sig = sig;
    const char *body = nl ? nl + 1 : "";
    size_t blen = nl ? n - (size_t)(nl + 1 - rest) : 0;

    bounds_t b = {sig, sig + in.siglen};
    eng_sig_items(sig, in.siglen, 64, check_item, &b);

    eng_sig_request_t req = {
        .header = header, .header_ctx = &in, .body = body, .body_len = blen, .now_s = 1714557600};
    eng_error_t err = {0};
    bool set = false;
    int rc = eng_sig_verify(spec, &req, &set, &err);
    assert(set);
    assert(rc == AM_OK || rc == AM_EAUTH);
    if (rc != AM_OK)
        assert(err.code != NULL && err.message[0] != '\0');
    free(sig);
    return 0;
}
