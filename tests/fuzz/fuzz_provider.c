/*
 * tests/fuzz/fuzz_provider.c - fuzz target for the provider compiler: the
 * input is the text of one provider file, compiled from memory without
 * reading list files or the environment, and its `samples:` compiled and
 * run. Whatever the bytes, compiling must end with a set or with
 * diagnostics, never a crash or a leak; a compiled
 * http provider must render a request for a hostile value without letting
 * it out of its percent-encoded slot.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "provider.h"

/* no CR/LF: a value with them is refused in headers, so the request would
 * not render at all and the URL check would not run */
static const char hostile[] = "a/b?c=d#e%f g&h=i";

/* How many bytes of the URL-structuring kind (and whitespace) url holds. */
static size_t structural(const char *url)
{
    size_t n = 0;
    for (; *url; url++)
        n += strchr("/?#&= \r\n", *url) != NULL;
    return n;
}

static void check_request(const eng_provider_t *p)
{
    am_arena_t *a = am_arena_new(4096, (size_t)1 << 24);
    for (unsigned t = 0; t < ENG_IOC__COUNT; t++) {
        if (!eng_provider_applies(p, (eng_ioc_type_t)t))
            continue;
        eng_request_t rq, plain;
        eng_error_t err = {0};
        if (eng_provider_request(&rq, p, (eng_ioc_type_t)t, hostile, a, &err) != 0)
            continue;
        memset(&err, 0, sizeof(err));
        if (eng_provider_request(&plain, p, (eng_ioc_type_t)t, "x", a, &err) != 0)
            abort(); /* a harmless value renders where a hostile one did */
        /* the value adds no '/', '?', '#', '&', '=', space or newline to the
         * URL: its path and query are those of the template */
        if (structural(rq.url) != structural(plain.url))
            abort();
        for (size_t i = 0; i < rq.nheaders; i++)
            if (strchr(rq.headers[i].value, '\n') != NULL)
                abort();
    }
    am_arena_free(a);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static bool init;
    if (!init) {
        json_set_alloc_funcs(am_xmalloc, free);
        init = true;
    }
    const char *names[] = {"fuzz.yaml"};
    const char *texts[] = {(const char *)data};
    size_t lens[] = {size};
    /* samples run too: their compiler and runner read the same outside input */
    eng_providers_options_t opt = {.no_files = true, .check_samples = true};
    am_diags_t diags;
    am_diags_init(&diags);
    eng_providers_t *set = NULL;
    int rc = eng_providers_load_texts(&set, names, texts, lens, 1, &opt, &diags);
    if (rc == 0 && set == NULL)
        abort();
    if (rc != 0 && diags.count == 0)
        abort(); /* a failure must say why */
    for (size_t i = 0; i < eng_providers_count(set); i++) {
        const eng_provider_t *p = eng_providers_at(set, i);
        eng_provider_info_t info;
        eng_provider_info(&info, p);
        if (info.kind == ENG_PROV_HTTP)
            check_request(p);
        eng_presult_t r;
        eng_provider_evaluate(&r, p, ENG_IOC_IP, 200, "{\"data\":{\"a\":[1,\"x\",{}]}}", 26);
        json_decref(r.fields);
        /* a set that loaded passed its samples; running them again agrees */
        if (eng_provider_check_samples(p, &diags) != 0)
            abort();
    }
    eng_providers_unref(set);
    am_diags_dispose(&diags);
    return 0;
}
