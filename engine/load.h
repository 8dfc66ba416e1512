/*
 * engine/load.h - the loader's internal entry point for mappings held in
 * memory. Internal to engine/ (the public loading calls are in eng.h).
 */
#ifndef ENG_LOAD_H
#define ENG_LOAD_H

#include "eng.h"

/* eng_set_load_files() on mappings held in memory: texts[i] (lens[i]
 * bytes, borrowed, need no terminator) is compiled as if read from the file
 * names[i], which diagnostics and provenance name and beside which samples
 * are looked up. rules: compiled shared rules the set borrows (they must
 * outlive it), or NULL to load them as eng_set_load_files() does. Same
 * results and errors as eng_set_load_files(). Used by the fuzz target of
 * the compiler, which must not read mapping files and compile the rules per
 * input. */
int eng_set_load_texts(eng_set_t **out, const char *const *names, const char *const *texts,
                       const size_t *lens, size_t n, eng_rules_t *rules,
                       const eng_load_options_t *opt, am_diags_t *diags);

#endif
