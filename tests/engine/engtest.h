/*
 * tests/engine/engtest.h - helpers shared by the engine tests: compile a
 * mapping from a string, run it on a JSON text. Header-only (static).
 */
#ifndef ENGTEST_H
#define ENGTEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eng.h"

/* 2024-05-01T10:00:00Z */
#define T_NOW 1714557600000000LL

static char t_dir[64] __attribute__((unused));
static am_arena_t *t_arena __attribute__((unused));

static inline const char *t_rules(void)
{
    static char path[4096];
    const char *root = getenv("ALERTMAP_SOURCE_ROOT");
    snprintf(path, sizeof(path), "%s/mappings/rules/indicators.yaml", root ? root : "..");
    return path;
}

/* The shipped providers directory. */
static inline const char *t_providers(void)
{
    static char path[4096];
    const char *root = getenv("ALERTMAP_SOURCE_ROOT");
    snprintf(path, sizeof(path), "%s/providers", root ? root : "..");
    return path;
}

/* True when some diagnostic is at line:col (line 0: any line, col 0: any
 * column) and contains part. */
static inline bool t_has_diag(const am_diags_t *d, int line, int col, const char *part)
{
    for (size_t i = 0; i < d->count; i++)
        if ((line == 0 || d->items[i].line == line) && (col == 0 || d->items[i].col == col) &&
            strstr(d->items[i].msg, part) != NULL)
            return true;
    return false;
}

static inline void t_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Compiles yaml as "<tmp>/t.yaml"; the diagnostics (if any) are printed
 * into diag_out when given. Returns the rc of eng_set_load_files. */
static inline int t_compile(eng_set_t **out, const char *yaml, char *diag_out, size_t size)
{
    if (t_dir[0] == '\0') {
        snprintf(t_dir, sizeof(t_dir), "/tmp/engtest-XXXXXX");
        assert_non_null(mkdtemp(t_dir));
    }
    char path[128];
    snprintf(path, sizeof(path), "%s/t.yaml", t_dir);
    t_write(path, yaml);
    const char *paths[] = {path};
    eng_load_options_t opt = {.rules_file = t_rules()};
    am_diags_t d;
    am_diags_init(&d);
    int rc = eng_set_load_files(out, paths, 1, &opt, &d);
    if (diag_out != NULL) {
        diag_out[0] = '\0';
        size_t off = 0;
        for (size_t i = 0; i < d.count && off < size; i++) {
            const char *slash = strrchr(d.items[i].file, '/');
            int w = snprintf(diag_out + off, size - off, "%s:%d:%d: %s\n",
                             slash ? slash + 1 : d.items[i].file, d.items[i].line, d.items[i].col,
                             d.items[i].msg);
            if (w < 0)
                break;
            off += (size_t)w;
        }
    }
    am_diags_dispose(&d);
    unlink(path);
    return rc;
}

static inline eng_set_t *t_load(const char *yaml)
{
    char diags[4096];
    eng_set_t *s = NULL;
    if (t_compile(&s, yaml, diags, sizeof(diags)) != 0)
        fail_msg("mapping did not compile:\n%s", diags);
    return s;
}

static inline json_t *t_json(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (j == NULL)
        fail_msg("bad test JSON: %s", e.text);
    return j;
}

/* Runs the only program of s. The payload is kept alive in *payload (the
 * caller decrefs it). */
static inline int t_run(eng_result_t *res, eng_error_t *err, eng_set_t *s, json_t *payload)
{
    if (t_arena == NULL)
        t_arena = am_arena_new(16384, 0);
    assert_int_equal(eng_set_count(s), 1);
    return eng_run(res, eng_set_at(s, 0), payload, t_arena, T_NOW, err);
}

/* Runs and returns the first alert as compact JSON with indicators (heap
 * string, caller frees), or the error as {"error":...}. */
static inline char *t_norm(eng_set_t *s, const char *payload, int flags)
{
    json_t *p = t_json(payload);
    eng_result_t res;
    eng_error_t err;
    int rc = t_run(&res, &err, s, p);
    json_t *out;
    if (rc != 0) {
        assert_non_null(err.code);
        out = json_pack("{s:{s:s,s:s}}", "error", "code", err.code, "message", err.message);
    } else {
        out = json_array();
        for (size_t i = 0; i < res.nalerts; i++)
            json_array_append_new(out, eng_alert_json(&res.alerts[i], flags));
    }
    char *txt = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    json_decref(p);
    am_arena_reset(t_arena);
    return txt;
}

#endif
