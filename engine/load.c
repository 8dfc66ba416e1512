/*
 * engine/load.c - the loader: turns mapping files into a published set.
 * It is the only engine code that touches the file system or the
 * environment: it reads the mapping files and the rule file, lists each
 * mapping's samples folder, resolves signature secrets (getenv) and, when
 * asked, checks the samples (samples.c). Compiling is compile.c's, on
 * bytes in memory.
 *
 * A load re-reads, every time: the mappings directory listing, every
 * mapping file, the rule file, each samples folder listing (and, with
 * check_samples, the sample files), and the environment variables named by
 * signature blocks. Nothing is cached between loads.
 */
#include "compile.h"
#include "load.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_MAPPING_BYTES (1u << 20)

/* A formatted string on the heap (aborts when the heap is exhausted). */
static char *xprintf(const char *fmt, ...) AM_PRINTF(1, 2);
static char *xprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = am_xmalloc(n > 0 ? (size_t)n + 1 : 1);
    va_start(ap, fmt);
    vsnprintf(s, n > 0 ? (size_t)n + 1 : 1, fmt, ap);
    va_end(ap);
    return s;
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* Fills p->samples from p->samples_dir. A declared folder that cannot be
 * opened is an error of the mapping (AM_EINVAL); a default one is simply
 * absent. */
static int list_samples(eng_program_t *p, am_arena_t *a, am_diags_t *d)
{
    DIR *dir = p->samples_dir != NULL ? opendir(p->samples_dir) : NULL;
    if (dir == NULL) {
        int rc = 0;
        if (p->samples_declared) {
            am_diags_add(d, p->file, p->samples_line, p->samples_col,
                         "samples folder '%s' cannot be opened", p->samples_dir);
            rc = AM_EINVAL;
        }
        p->samples_dir = NULL;
        return rc;
    }
    size_t cap = 16, count = 0;
    char **names = am_xmalloc(cap * sizeof(*names));
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.' || !ends_with(e->d_name, ".json") ||
            ends_with(e->d_name, ".expected.json"))
            continue;
        if (count == cap) {
            cap *= 2;
            names = am_xrealloc(names, cap * sizeof(*names));
        }
        names[count++] = am_xstrdup(e->d_name);
    }
    closedir(dir);
    qsort(names, count, sizeof(*names), cmp_cstr);
    int rc = 0;
    const char **v = am_arena_alloc(a, (count + 1) * sizeof(*v));
    for (size_t i = 0; i < count; i++) {
        if (v != NULL && (v[i] = am_arena_strdup(a, names[i])) == NULL)
            v = NULL;
        free(names[i]);
    }
    free(names);
    if (v == NULL) {
        am_diags_add(d, p->file, 0, 0, "mapping set larger than its memory bound");
        rc = AM_ELIMIT;
        count = 0;
    }
    p->samples = v;
    p->nsamples = count;
    return rc;
}

/* Compiles one mapping: the file at path, or when mem is not NULL the
 * mem_len bytes at mem (path then only names it), and lists its samples.
 * *out is the program when it compiled (0). */
static int load_one(eng_set_t *s, const char *path, const char *mem, size_t mem_len,
                    eng_program_t **out, am_diags_t *d)
{
    char *text = NULL;
    size_t len = mem_len;
    *out = NULL;
    if (mem == NULL) {
        int rc = am_read_file(&text, &len, path, MAX_MAPPING_BYTES);
        if (rc == AM_ELIMIT) {
            am_diags_add(d, path, 0, 0, "mapping file larger than %u bytes", MAX_MAPPING_BYTES);
            return AM_EINVAL;
        }
        if (rc != 0) {
            am_diags_add(d, path, 0, 0, "cannot read mapping file: %s", strerror(errno));
            return AM_EIO;
        }
        mem = text;
    } else if (mem_len > MAX_MAPPING_BYTES) {
        am_diags_add(d, path, 0, 0, "mapping file larger than %u bytes", MAX_MAPPING_BYTES);
        return AM_EINVAL;
    }
    eng_program_t *p = NULL;
    int rc = eng_compile(&p, s, path, mem, len, d);
    free(text);
    /* The samples folder is checked even when the mapping has other errors,
     * so that one pass reports everything. */
    if (p != NULL) {
        int r = list_samples(p, s->arena, d);
        if (rc == 0)
            rc = r;
    }
    if (rc == 0)
        *out = p;
    return rc;
}

static char *rules_beside(const char *first)
{
    const char *slash = strrchr(first, '/');
    int dl = slash != NULL ? (int)(slash - first) : 1;
    const char *dir = slash != NULL ? first : ".";
    return xprintf("%.*s/rules/indicators.yaml", dl, dir);
}

/* eng_set_load_files(), and eng_set_load_texts() when texts is not NULL. */
static int load_set(eng_set_t **out, const char *const *paths, const char *const *texts,
                    const size_t *lens, size_t npaths, eng_rules_t *rules,
                    const eng_load_options_t *opt, am_diags_t *diags)
{
    eng_load_options_t none = {0};
    if (opt == NULL)
        opt = &none;
    *out = NULL;
    int rc = 0;
    bool failed = false;
    char *rules_path = NULL;
    eng_program_t **progs = am_xcalloc(npaths + 1, sizeof(*progs));
    eng_set_t *s = eng_set_new();
    if (npaths == 0) {
        am_diags_add(diags, "", 0, 0, "no mapping files to load");
        rc = AM_EINVAL;
        goto done;
    }
    if (rules == NULL) {
        if (opt->rules_file == NULL)
            rules_path = rules_beside(paths[0]);
        failed = eng_rules_load(&rules, opt->rules_file ? opt->rules_file : rules_path, diags) != 0;
        s->rules_free = eng_rules_free;
    }
    s->rules = rules;
    s->scan = rules != NULL ? ioc_extract : NULL;
    size_t n = 0;
    for (size_t i = 0; i < npaths; i++) {
        eng_program_t *p = NULL;
        int r = load_one(s, paths[i], texts != NULL ? texts[i] : NULL, texts != NULL ? lens[i] : 0,
                         &p, diags);
        if (r != 0) {
            failed = true;
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < n && !dup; j++) {
            if (strcmp(progs[j]->source, p->source) != 0)
                continue;
            am_diags_add(diags, p->file, p->source_line, p->source_col,
                         "duplicate source '%s': already defined in %s:%d:%d", p->source,
                         progs[j]->file, progs[j]->source_line, progs[j]->source_col);
            dup = true;
        }
        if (dup) {
            failed = true;
            continue;
        }
        progs[n++] = p;
    }
    if (failed) {
        rc = AM_EINVAL;
        goto done;
    }
    if ((rc = eng_set_publish(s, progs, n)) != 0) {
        am_diags_add(diags, paths[0], 0, 0, "mapping set larger than its memory bound");
        goto done;
    }
    /* Secrets are read here, once per load, never per request. */
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = eng_sig_resolve(s->progs[i]->sig, s->arena);
    if (rc != 0) {
        am_diags_add(diags, paths[0], 0, 0, "mapping set larger than its memory bound");
        goto done;
    }
    if (opt->check_samples) {
        for (size_t i = 0; i < n; i++) {
            int r = eng_program_check_samples(s->progs[i], diags);
            if (r < 0 && rc == 0)
                rc = r;
            if (r > 0)
                failed = true;
        }
        if (failed && rc == 0)
            rc = AM_EINVAL;
    }
done:
    free(progs);
    free(rules_path);
    am_diags_sort(diags);
    if (rc != 0) {
        eng_set_unref(s);
        return rc;
    }
    *out = s;
    return 0;
}

int eng_set_load_files(eng_set_t **out, const char *const *paths, size_t npaths,
                       const eng_load_options_t *opt, am_diags_t *diags)
{
    return load_set(out, paths, NULL, NULL, npaths, NULL, opt, diags);
}

int eng_set_load_texts(eng_set_t **out, const char *const *names, const char *const *texts,
                       const size_t *lens, size_t n, eng_rules_t *rules,
                       const eng_load_options_t *opt, am_diags_t *diags)
{
    for (size_t i = 0; i < n; i++)
        assert(texts[i] != NULL);
    return load_set(out, names, texts, lens, n, rules, opt, diags);
}

static bool is_mapping_name(const char *name)
{
    if (name[0] == '.')
        return false;
    size_t n = strlen(name);
    return (n > 5 && ends_with(name, ".yaml")) || (n > 4 && ends_with(name, ".yml"));
}

int eng_set_load(eng_set_t **out, const char *dir, const eng_load_options_t *opt, am_diags_t *diags)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (d == NULL) {
        am_diags_add(diags, dir, 0, 0, "cannot open mappings directory: %s", strerror(errno));
        return AM_EIO;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_mapping_name(e->d_name))
            continue;
        char *path = xprintf("%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = am_xrealloc(names, cap * sizeof(*names));
        }
        names[n++] = path;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof(*names), cmp_cstr);
    eng_load_options_t o = opt != NULL ? *opt : (eng_load_options_t){0};
    char *rules = NULL;
    if (o.rules_file == NULL)
        o.rules_file = rules = xprintf("%s/rules/indicators.yaml", dir);
    if (n == 0) {
        am_diags_add(diags, dir, 0, 0, "no mapping files (*.yaml) in the directory");
        rc = AM_EINVAL;
    } else {
        rc = eng_set_load_files(out, (const char *const *)names, n, &o, diags);
    }
    free(rules);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}
