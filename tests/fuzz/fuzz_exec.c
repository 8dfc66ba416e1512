/*
 * tests/fuzz/fuzz_exec.c - fuzz target for the executor: the input is a JSON
 * payload, run through every shipped mapping. Each run must end in alerts or
 * in a defined error, never a crash, a leak or an unbounded run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eng.h"
#include "fuzz.h"

static eng_set_t *set;

static void load(void)
{
    const char *root = getenv("ALERTMAP_SOURCE_ROOT");
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/mappings", root ? root : ".");
    am_diags_t diags;
    am_diags_init(&diags);
    eng_load_options_t opt = {0};
    if (eng_set_load(&set, dir, &opt, &diags) != 0) {
        am_diags_print(&diags, stderr);
        abort();
    }
    am_diags_dispose(&diags);
}

void fuzz_teardown(void)
{
    eng_set_unref(set);
    set = NULL;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (set == NULL)
        load();
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, 0, &jerr);
    if (doc == NULL)
        return 0;
    if (json_is_object(doc)) {
        am_arena_t *arena = am_arena_new(16384, 0);
        for (size_t i = 0; i < eng_set_count(set); i++) {
            eng_result_t res;
            eng_error_t err;
            int rc = eng_run(&res, eng_set_at(set, i), doc, arena, 1714557600000000LL, &err);
            if (rc == 0) {
                if (res.nalerts < 1 || res.nalerts > ENG_MAX_SPLIT)
                    abort();
                for (size_t k = 0; k < res.nalerts; k++) {
                    const eng_alert_t *al = &res.alerts[k];
                    if (al->field[ENG_F_TITLE] == NULL || al->field[ENG_F_SEVERITY] == NULL ||
                        strlen(al->fingerprint) != 64 || al->nindicators > ENG_MAX_INDICATORS)
                        abort(); /* eng.h promises these */
                    json_t *j = eng_alert_json(al, ENG_JSON_INDICATORS | ENG_JSON_PROVENANCE |
                                                       ENG_JSON_RAW);
                    if (j == NULL)
                        abort();
                    json_decref(j);
                }
            } else if (err.code == NULL) {
                abort(); /* every failure has a code */
            }
            am_arena_reset(arena);
        }
        am_arena_free(arena);
    }
    json_decref(doc);
    return 0;
}
