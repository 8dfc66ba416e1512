/*
 * engine/samples.c - checking a mapping against its sample payloads
 * (eng_program_check_samples): run each NAME.json, compare with
 * NAME.expected.json semantically, describe every difference by its path.
 * A step of loading (load.c calls it with check_samples, the CLI's `test`
 * through eng.h): it reads the sample files and runs the executor.
 */
#include "program.h"

#include <stdlib.h>
#include <string.h>

/* Ingest time used for samples: 2024-05-01T10:00:00Z. */
#define SAMPLE_NOW_US    1714557600000000LL
#define MAX_DIFF_LINES   20
#define MAX_SAMPLE_BYTES (4u << 20)

typedef struct {
    am_buf_t out;
    int count;
} diff_t;

static void show(am_buf_t *b, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s == NULL) {
        am_buf_puts(b, "?");
        return;
    }
    size_t n = strlen(s);
    if (n > 120)
        am_buf_printf(b, "%.117s...", s);
    else
        am_buf_puts(b, s);
    free(s);
}

static void report(diff_t *d, const char *path, const json_t *exp, const json_t *got)
{
    if (++d->count > MAX_DIFF_LINES)
        return;
    am_buf_printf(&d->out, "\n  %s: ", path[0] ? path : "(top)");
    if (exp == NULL) {
        am_buf_puts(&d->out, "unexpected ");
        show(&d->out, got);
        return;
    }
    am_buf_puts(&d->out, "expected ");
    show(&d->out, exp);
    am_buf_puts(&d->out, ", got ");
    if (got == NULL)
        am_buf_puts(&d->out, "nothing");
    else
        show(&d->out, got);
}

static void sub_path(char *out, size_t size, const char *path, const char *key, long idx)
{
    if (key != NULL)
        snprintf(out, size, "%s%s%s", path, path[0] ? "." : "", key);
    else
        snprintf(out, size, "%s[%ld]", path, idx);
}

static bool is_dynamic(const json_t *e)
{
    return json_is_string(e) && strcmp(json_string_value(e), "$dynamic") == 0;
}

static void diff(diff_t *d, const char *path, const json_t *e, const json_t *g)
{
    char sp[512];
    if (is_dynamic(e))
        return;
    if (json_is_number(e) && json_is_number(g)) {
        if (json_number_value(e) != json_number_value(g))
            report(d, path, e, g);
        return;
    }
    if (json_typeof(e) != json_typeof(g)) {
        report(d, path, e, g);
        return;
    }
    if (json_is_object(e)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)e, k, v)
        {
            sub_path(sp, sizeof(sp), path, k, 0);
            json_t *x = json_object_get(g, k);
            if (x == NULL)
                report(d, sp, v, NULL);
            else
                diff(d, sp, v, x);
        }
        json_object_foreach((json_t *)g, k, v)
        {
            if (json_object_get(e, k) == NULL) {
                sub_path(sp, sizeof(sp), path, k, 0);
                report(d, sp, NULL, v);
            }
        }
        return;
    }
    if (json_is_array(e)) {
        size_t ne = json_array_size(e), ng = json_array_size(g);
        for (size_t i = 0; i < ne || i < ng; i++) {
            sub_path(sp, sizeof(sp), path, NULL, (long)i);
            if (i >= ng)
                report(d, sp, json_array_get(e, i), NULL);
            else if (i >= ne)
                report(d, sp, NULL, json_array_get(g, i));
            else
                diff(d, sp, json_array_get(e, i), json_array_get(g, i));
        }
        return;
    }
    if (!json_equal((json_t *)e, (json_t *)g))
        report(d, path, e, g);
}

/* The output of `alertmap normalize` for one run. New reference; NULL only
 * when jansson cannot allocate. */
static json_t *output(const eng_result_t *res, int rc, const eng_error_t *err)
{
    if (rc != 0)
        return json_pack("{s:{s:s,s:s}}", "error", "code", err->code ? err->code : "INTERNAL",
                         "message", err->message);
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < res->nalerts; i++) {
        json_t *a = eng_alert_json(&res->alerts[i], ENG_JSON_INDICATORS);
        if (a == NULL || json_array_append_new(arr, a) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr != NULL ? json_pack("{s:o}", "alerts", arr) : NULL;
}

static int check_one(const eng_program_t *p, const char *name, am_diags_t *diags)
{
    char path[4096], exp_path[4096];
    snprintf(path, sizeof(path), "%s/%s", p->samples_dir, name);
    size_t stem = strlen(name) - strlen(".json");
    snprintf(exp_path, sizeof(exp_path), "%s/%.*s.expected.json", p->samples_dir, (int)stem, name);
    char *text = NULL;
    size_t len = 0;
    int rc = am_read_file(&text, &len, path, MAX_SAMPLE_BYTES);
    if (rc != 0) {
        am_diags_add(diags, path, 0, 0, "cannot read sample payload");
        return rc == AM_ELIMIT ? 1 : AM_EIO;
    }
    json_error_t jerr;
    json_t *payload = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    free(text);
    if (payload == NULL) {
        am_diags_add(diags, path, jerr.line, jerr.column, "sample is not valid JSON: %s",
                     jerr.text);
        return 1;
    }
    json_t *exp = json_load_file(exp_path, 0, &jerr);
    if (exp == NULL) {
        am_diags_add(diags, exp_path, jerr.line > 0 ? jerr.line : 0, jerr.column,
                     "expected output of sample %s: %s", name, jerr.text);
        json_decref(payload);
        return 1;
    }
    am_arena_t *arena = am_arena_new(64 * 1024, 0);
    eng_result_t res = {0};
    eng_error_t err = {0};
    int r = json_is_object(payload)
                ? eng_run(&res, p, payload, arena, SAMPLE_NOW_US, &err)
                : (err.code = "INVALID_PAYLOAD",
                   snprintf(err.message, sizeof(err.message), "the payload must be a JSON object"),
                   AM_EINVAL);
    json_t *got = output(&res, r, &err);
    int failed = 0;
    if (got == NULL)
        am_oom(0); /* jansson allocates on the heap; the alerts are valid UTF-8 */
    diff_t d = {0};
    am_buf_init(&d.out, 64 * 1024);
    diff(&d, "", exp, got);
    if (d.count > 0) {
        if (d.count > MAX_DIFF_LINES)
            am_buf_printf(&d.out, "\n  ... and %d more differences", d.count - MAX_DIFF_LINES);
        am_diags_add(diags, exp_path, 0, 0, "sample %s: output differs from the expected:%s", name,
                     am_buf_ok(&d.out) && d.out.data ? d.out.data : " (diff too long)");
        failed = 1;
    }
    am_buf_dispose(&d.out);
    json_decref(got);
    am_arena_free(arena);
    json_decref(payload);
    json_decref(exp);
    return failed;
}

int eng_program_check_samples(const eng_program_t *p, am_diags_t *diags)
{
    int failing = 0;
    for (size_t i = 0; i < p->nsamples; i++) {
        int rc = check_one(p, p->samples[i], diags);
        if (rc < 0)
            return rc;
        failing += rc;
    }
    return failing;
}
