/*
 * engine/compile.h - the mapping compiler: its entry point (eng_compile,
 * called by the loader) and the state and helpers shared by compile.c (the
 * file, match rules, fields, indicator rules, samples folder name), expr.c
 * (value expressions) and sig_compile.c (signature blocks). Internal to
 * engine/. The compiler works on bytes in memory: no file system, no
 * environment (except the JIT switch, tables.h), and never runs a program.
 *
 * Every check reports into the diagnostics of the compile with the node's
 * line and column and counts the error; callers keep going so that all
 * errors of a file come out in one pass. An allocation the set's arena
 * refuses (its cap reached) sets c->limit. Not thread-safe: one cc_t per
 * file being compiled.
 */
#ifndef ENG_COMPILE_H
#define ENG_COMPILE_H

#include "program.h"
#include "ytree.h"

typedef struct {
    eng_set_t *set;
    am_arena_t *a;    /* the set's arena: everything compiled lives here */
    const char *file; /* as given, for diagnostics */
    const char *base; /* file name without folders, for provenance */
    am_diags_t *d;
    int errors;
    bool limit; /* the set's arena is at its cap */
    bool jit;   /* JIT-compile patterns (eng_pcre2_jit_enabled) */
    eng_program_t *p;
} cc_t;

/* Compiles one mapping file's text (len bytes, borrowed; file names it in
 * diagnostics and provenance) into a program allocated in s's arena, its
 * patterns kept by s (eng_set_keep_code). All problems go to d.
 * Returns 0 with *out set; AM_EINVAL (diagnostics added), with *out still
 * set when the text was a YAML mapping, so that the loader can also check
 * what needs the file system (the samples folder) before discarding it;
 * AM_ELIMIT (diagnostic added) when the set's arena is at its cap. */
int eng_compile(eng_program_t **out, eng_set_t *s, const char *file, const char *text, size_t len,
                am_diags_t *d);

/* sig_compile.c: compiles the value of a mapping's `signature:` key (see
 * docs/mapping-language.md). Every problem is added to d as file:line:col.
 * The spec is allocated in arena a (which outlives it); its secrets are
 * resolved later, by the loader (eng_sig_resolve). Returns 0, AM_EINVAL
 * (diagnostics added) or AM_ELIMIT (arena at its cap). */
int eng_sig_compile(sig_spec_t **out, const yt_node_t *node, const char *file, am_arena_t *a,
                    am_diags_t *d);

void eng_cc_err(cc_t *c, int line, int col, const char *fmt, ...) AM_PRINTF(4, 5);
#define CC_ERR(c, n, ...) eng_cc_err((c), (n)->line, (n)->col, __VA_ARGS__)

void *eng_cc_alloc(cc_t *c, size_t n); /* zeroed */
char *eng_cc_printf(cc_t *c, const char *fmt, ...) AM_PRINTF(2, 3);

/* "null", "a string", "a list", "a mapping". */
const char *eng_cc_kind_of(const yt_node_t *n);
/* True when n is of kind k (a non-null scalar for YT_SCALAR); otherwise
 * reports "'what' must be ..., got ..." and returns false. */
bool eng_cc_is_kind(cc_t *c, const yt_node_t *n, yt_kind_t k, const char *what);
bool eng_cc_key_in(const yt_node_t *k, const char *const *list, size_t n);
/* Reports every key of map that is in neither allowed nor extra. */
void eng_cc_check_keys(cc_t *c, const yt_node_t *map, const char *const *allowed, size_t n,
                       const char *const *extra, size_t nextra);
const yt_node_t *eng_cc_key_node(const yt_node_t *map, const char *key);
bool eng_cc_get_bool(cc_t *c, const yt_node_t *n, const char *what, bool *out);
bool eng_cc_get_number(cc_t *c, const yt_node_t *n, const char *what, double *out);
/* "file.yaml:LINE what", in the arena. */
const char *eng_cc_origin(cc_t *c, int line, const char *what);

/* Paths: errors point into the path (col is the column of its first byte). */
epath_t *eng_cc_path_at(cc_t *c, const yt_node_t *n, const char *s, size_t len, int col);
epath_t *eng_cc_path(cc_t *c, const yt_node_t *n, const char *what);
/* One path or a non-empty list of paths. */
epath_t **eng_cc_paths(cc_t *c, const yt_node_t *n, const char *what, size_t *count);
/* A PCRE2 pattern (UTF, JIT); errors point into the pattern. The code is
 * kept by the set. */
pcre2_code *eng_cc_regex(cc_t *c, const yt_node_t *n, const char *what);

#define EXF_TIME 1u /* 'time' allowed (occurred_at) */
/* A value expression: a path, a list of fallback paths, or a mapping with
 * path/const/template/first, default and transforms. extra: further keys
 * the caller handles itself. line: the line used in provenance. Returns
 * NULL after reporting an error. */
expr_t *eng_cc_expr(cc_t *c, const yt_node_t *n, int line, const char *what, unsigned flags,
                    const char *const *extra, size_t nextra);

#endif
