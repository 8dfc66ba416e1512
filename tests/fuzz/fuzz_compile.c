/*
 * tests/fuzz/fuzz_compile.c - fuzz target for the mapping compiler: the input
 * is the text of one mapping file, compiled from memory (eng_set_load_texts) as
 * if it were "<root>/mappings/fuzz.yaml", so samples folders named by the
 * input resolve against the shipped mappings. The shared rules are compiled
 * once and lent to every set. Whatever the bytes, compiling must end with a
 * set or with diagnostics, never a crash or a leak.
 */
#include <stdio.h>
#include <stdlib.h>

#include "eng.h"
#include "fuzz.h"
#include "load.h"

static char name[4096];
static eng_rules_t *rules;

static void load(void)
{
    const char *root = getenv("ALERTMAP_SOURCE_ROOT");
    char path[4096];
    snprintf(name, sizeof(name), "%s/mappings/fuzz.yaml", root ? root : ".");
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

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (rules == NULL)
        load();
    const char *names[] = {name};
    const char *texts[] = {(const char *)data};
    size_t lens[] = {size};
    eng_load_options_t opt = {0};
    am_diags_t diags;
    am_diags_init(&diags);
    eng_set_t *set = NULL;
    int rc = eng_set_load_texts(&set, names, texts, lens, 1, rules, &opt, &diags);
    if (rc == 0 && set == NULL)
        abort(); /* success must yield a set */
    if (rc != 0 && diags.count == 0)
        abort(); /* a failure must say why (over the set's memory bound too) */
    eng_set_unref(set);
    am_diags_dispose(&diags);
    return 0;
}
