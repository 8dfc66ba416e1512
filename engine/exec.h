/*
 * engine/exec.h - the executor's per-call state, shared by exec.c (value
 * expressions, fields, match rules, eng_run) and exec_ioc.c (indicator
 * rules). Internal to engine/. One run_t per eng_run() call: not shared
 * between threads; everything it allocates comes from the call's arena.
 */
#ifndef ENG_EXEC_H
#define ENG_EXEC_H

#include "program.h"

typedef struct run {
    const eng_program_t *p;
    am_arena_t *a;
    json_t *root;
    eng_error_t *err;
    pcre2_general_context *gctx;
    pcre2_match_data *md;
    ioc_vec_t iocs;
    /* source_field cache for 'each' rules: prefix + value text */
    const char *sf_text;
    const char *sf_val;
} run_t;

typedef struct val {
    const char *s;
    size_t len;
    json_t *j;          /* the JSON value, while no transform changed the text */
    const char *origin; /* provenance of the value */
    const char *text;   /* path / template / constant that produced it */
} val_t;

/* What an emit callback answers for each value an expression yields:
 * take it and continue, take it and stop, or skip it (it does not count as
 * a value, so fallbacks and defaults still apply). Negative: an AM_E* error. */
enum { EMIT_MORE = 0, EMIT_STOP = 1, EMIT_REJECT = 2 };
typedef int (*emit_fn)(run_t *r, const val_t *v, void *ctx);

typedef struct one {
    const char *s;
    size_t len;
    const char *origin;
    const char *text;
    bool copy;
} one_t;

/* Records err (code and message) when the caller gave one and no error is
 * recorded yet (the first error wins); returns rc. */
int eng_ex_fail(run_t *r, int rc, const char *code, const char *fmt, ...) AM_PRINTF(4, 5);
/* The arena of the call refused an allocation (its cap reached): records
 * LIMIT_EXCEEDED and returns AM_ELIMIT. */
int eng_ex_no_room(run_t *r);
/* Match data for the program's patterns, created in the arena on first use. */
pcre2_match_data *eng_ex_match_data(run_t *r);
/* Evaluates e at cur and calls fn for every value it yields. */
int eng_ex_run_expr(run_t *r, const expr_t *e, json_t *cur, emit_fn fn, void *ctx);
/* Emit callback that keeps the first value in a one_t (copied to the arena
 * when o->copy). */
int eng_ex_take_one(run_t *r, const val_t *v, void *ctx);
/* Runs every indicator rule and the auto-indicators of the optional fields
 * for alert al at cur; fills al->indicators. */
int eng_ex_indicators(run_t *r, eng_alert_t *al, json_t *cur);

#endif
