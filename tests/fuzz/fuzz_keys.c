/*
 * tests/fuzz/fuzz_keys.c - fuzz target for what the server hands the key
 * code from a request: the token of an Authorization / X-API-Key header
 * (key_parse, and the verifier's answer for a token that is not
 * well-formed), a scope list, and a rate-limit key. Each call must end in
 * a defined answer; a token that parses must round-trip its prefix; a
 * scope list that parses must round-trip through its printed form; a
 * masked line holds no secret (masking it again masks nothing).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "keys_internal.h"
#include "ratelimit.h"

static store_keys_t *keys;
static glue_ratelimit_t *limiter;

void fuzz_teardown(void)
{
    store_keys_free(keys);
    glue_ratelimit_free(limiter);
    keys = NULL;
    limiter = NULL;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (keys == NULL) {
        /* no database: a well-formed token would wait for a lookup that
         * cannot succeed, so only malformed ones are verified below */
        store_keys_options_t o = {.conninfo = "host=/nonexistent-fuzz dbname=x"};
        keys = store_keys_new(&o);
        glue_ratelimit_options_t r = {.rate = 10, .burst = 20, .entries = 64};
        limiter = glue_ratelimit_new(&r);
    }
    const char *s = (const char *)data;
    uint64_t pid = key_parse(s, size);
    if (pid != 0) {
        char prefix[KEY_PREFIX_LEN + 1];
        key_prefix_text(prefix, pid);
        if (size != STORE_KEY_TOKEN_LEN || memcmp(s + KEY_TAG_LEN, prefix, KEY_PREFIX_LEN) != 0)
            abort();
    } else {
        store_key_check_t out;
        if (!store_keys_verify(keys, s, size, STORE_SCOPE_READ, NULL, &out, NULL, NULL) ||
            out.result != STORE_KEY_INVALID || out.key_id != 0)
            abort();
    }

    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    unsigned bits, again;
    if (store_scopes_parse(&bits, text) == 0) {
        char buf[32];
        store_scopes_format(buf, bits);
        if (bits == 0 || store_scopes_parse(&again, buf) != 0 || again != bits)
            abort();
    }
    /* masking leaves no secret behind: a second pass finds none */
    size_t masked = store_key_mask(text, size);
    if (store_key_mask(text, size) != 0 || (pid != 0 && masked == 0))
        abort();
    free(text);

    if (glue_ratelimit_take(limiter, s, size) < 0)
        abort();
    return 0;
}
