/*
 * h2o-glue/reload.c - the current compiled mapping set and its reload.
 *
 * The set pointer is guarded by a mutex that is held only to copy the
 * pointer and take a reference, never while compiling: a reload compiles the
 * new set first (on the signal thread), then swaps it in under the mutex and
 * drops the old reference. Requests keep the set they started with until
 * their pool is released; the engine frees a set on its last unref.
 */
#include "glue.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t set_lock = PTHREAD_MUTEX_INITIALIZER;
static eng_set_t *current;

static int load(eng_set_t **out, const char *dir, am_diags_t *diags)
{
    eng_load_options_t opt = {.rules_file = NULL, .check_samples = true};
    return eng_set_load(out, dir, &opt, diags);
}

int glue_mappings_init(const char *dir, am_diags_t *diags)
{
    eng_set_t *s = NULL;
    int rc = load(&s, dir, diags);
    if (rc != AM_OK)
        return rc;
    glue_metrics_mappings(false, true, eng_set_count(s), am_now_us());
    pthread_mutex_lock(&set_lock);
    eng_set_t *old = current;
    current = s;
    pthread_mutex_unlock(&set_lock);
    eng_set_unref(old);
    return AM_OK;
}

eng_set_t *glue_mappings_acquire(void)
{
    pthread_mutex_lock(&set_lock);
    eng_set_t *s = eng_set_ref(current);
    pthread_mutex_unlock(&set_lock);
    return s;
}

void glue_mappings_shutdown(void)
{
    pthread_mutex_lock(&set_lock);
    eng_set_t *old = current;
    current = NULL;
    pthread_mutex_unlock(&set_lock);
    eng_set_unref(old);
}

void glue_mappings_warn_secrets(const eng_set_t *s)
{
    glue_auth_check_mappings(s);
}

int glue_mappings_reload(const char *dir)
{
    int64_t t0 = am_now_us();
    am_diags_t diags;
    am_diags_init(&diags);
    eng_set_t *s = NULL;
    int rc = load(&s, dir, &diags);
    if (rc != AM_OK) {
        am_diags_sort(&diags);
        for (size_t i = 0; i < diags.count; i++) {
            const am_diag_t *d = &diags.items[i];
            am_buf_t text;
            am_buf_init(&text, 0);
            am_buf_printf(&text, "%s:%d:%d: %s", d->file ? d->file : "?", d->line, d->col,
                          d->msg ? d->msg : "");
            am_log(AM_LOG_ERROR, "reload_failed", "smessage", text.data, "sfile", d->file, "iline",
                   (int64_t)d->line, "icol", (int64_t)d->col, NULL);
            am_buf_dispose(&text);
        }
        am_log(AM_LOG_ERROR, "reload_failed", "smappings", dir, "ierrors", (int64_t)diags.count,
               "smessage", "the mappings did not compile; the running set is kept", NULL);
        am_diags_dispose(&diags);
        glue_metrics_mappings(true, false, 0, am_now_us());
        return rc;
    }
    am_diags_dispose(&diags);
    glue_mappings_warn_secrets(s);
    size_t count = eng_set_count(s);
    pthread_mutex_lock(&set_lock);
    eng_set_t *old = current;
    current = s;
    pthread_mutex_unlock(&set_lock);
    eng_set_unref(old);
    glue_metrics_mappings(true, true, count, am_now_us());
    am_log(AM_LOG_INFO, "reload_ok", "smappings", dir, "isources", (int64_t)count, "dduration_ms",
           (double)(am_now_us() - t0) / 1000.0, NULL);
    return AM_OK;
}
