/*
 * tests/fuzz/fuzz_json.c - reading a request body (eng_json_parse,
 * engine/json_in.c): the pre-scan that counts values, refuses numbers
 * PostgreSQL cannot store and quotes numbers jansson cannot hold, then
 * jansson. Checks: 0 with a value, or AM_EINVAL / AM_ELIMIT with a code and
 * a message and no value; a value re-encodes and parses again to an equal
 * value (quoted numbers are ordinary strings by then); with a value bound
 * of 16 a body that passes has at most 16 values. The fast reader
 * (json_fast.c) gives either nothing or jansson's own tree for the same
 * text, keys in the same order.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "json_internal.h"

static size_t count(json_t *v)
{
    size_t n = 1;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            n += count(json_array_get(v, i));
    } else if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) n += 1 + count(x);
    }
    return n;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    /* a copy of exactly the input, so ASan sees any over-read */
    char *body = malloc(size ? size : 1);
    memcpy(body, data, size);
    json_t *fast = eng_json_fast(body, size);
    if (fast != NULL) {
        json_error_t je;
        json_t *ref = json_loadb(body, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
        assert(ref != NULL && json_equal(fast, ref));
        char *a = json_dumps(fast, JSON_ENCODE_ANY | JSON_COMPACT);
        char *b = json_dumps(ref, JSON_ENCODE_ANY | JSON_COMPACT);
        assert(a != NULL && b != NULL && strcmp(a, b) == 0);
        free(a);
        free(b);
        json_decref(ref);
        json_decref(fast);
    }
    for (int bounded = 0; bounded < 2; bounded++) {
        am_arena_t *a = am_arena_new(0, 0);
        json_t *v = (json_t *)1;
        eng_error_t err = {0};
        int rc = eng_json_parse(&v, body, size, bounded ? 16 : 0, a, &err);
        if (rc == AM_OK) {
            assert(v != NULL);
            if (bounded)
                assert(count(v) <= 16);
            char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            assert(text != NULL);
            json_error_t je;
            json_t *again = json_loads(text, JSON_DECODE_ANY, &je);
            assert(again != NULL && json_equal(v, again));
            json_decref(again);
            free(text);
            json_decref(v);
        } else {
            assert(rc == AM_EINVAL || rc == AM_ELIMIT);
            assert(v == NULL && err.code != NULL && err.message[0] != '\0');
        }
        am_arena_free(a);
    }
    free(body);
    return 0;
}
