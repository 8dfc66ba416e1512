/*
 * tests/fuzz/fuzz_extract.c - fuzz target for free-text indicator
 * extraction: the input is arbitrary text, scanned with the shipped rule
 * file for every indicator type, then handed to eng_ioc_canonical() as a
 * value of every type in both trusted and strict mode. Whatever the bytes,
 * each call must end in a result or a defined error, within bounded time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "fuzz.h"

static eng_rules_t *rules;

static void load(void)
{
    const char *root = getenv("ALERTMAP_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof(path), "%s/mappings/rules/indicators.yaml", root ? root : ".");
    am_diags_t diags;
    am_diags_init(&diags);
    if (eng_rules_load(&rules, path, &diags) != 0) {
        am_diags_print(&diags, stderr);
        abort();
    }
    am_diags_dispose(&diags);
}

void fuzz_teardown(void)
{
    eng_rules_free(rules);
    rules = NULL;
}

/* A found indicator must be canonical already: canonicalizing it again as
 * its own type (trusted mode) gives the same value. */
static void check_found(const eng_indicator_t *v, size_t n, am_arena_t *a)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned)v[i].type >= ENG_IOC__COUNT || v[i].value == NULL)
            abort();
        size_t len = strlen(v[i].value);
        const char *again = eng_ioc_canonical(v[i].type, v[i].value, len, false, a);
        if (again == NULL || strcmp(again, v[i].value) != 0) {
            fprintf(stderr, "not canonical: %s '%s' -> '%s'\n", eng_ioc_type_name(v[i].type),
                    v[i].value, again ? again : "(invalid)");
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (rules == NULL)
        load();
    /* An exact-size copy without a terminator: reading past len is a bug
     * that AddressSanitizer reports. */
    char *text = malloc(size ? size : 1);
    if (text == NULL)
        return 0;
    if (size > 0)
        memcpy(text, data, size);
    am_arena_t *a = am_arena_new(16384, 0);
    if (a == NULL) {
        free(text);
        return 0;
    }
    eng_indicator_t *found = NULL;
    size_t n = 0;
    unsigned all = (1u << ENG_IOC__COUNT) - 1;
    int rc = eng_extract_text(&found, &n, rules, text, size, all, "text", a);
    if (rc != 0 && rc != AM_ELIMIT)
        abort();
    if (n > ENG_MAX_INDICATORS)
        abort();
    check_found(found, n, a);

    for (int t = 0; t < ENG_IOC__COUNT; t++) {
        for (int strict = 0; strict <= 1; strict++) {
            const char *c = eng_ioc_canonical((eng_ioc_type_t)t, text, size, strict, a);
            if (c == NULL)
                continue;
            /* canonical forms are stable */
            const char *again = eng_ioc_canonical((eng_ioc_type_t)t, c, strlen(c), false, a);
            if (again == NULL || strcmp(again, c) != 0) {
                fprintf(stderr, "unstable %s: '%s' -> '%s'\n", eng_ioc_type_name((eng_ioc_type_t)t),
                        c, again ? again : "(invalid)");
                abort();
            }
        }
    }
    am_arena_free(a);
    free(text);
    return 0;
}
