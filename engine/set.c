/*
 * engine/set.c - loading a directory of mappings into an immutable,
 * reference-counted set; lookup by source name; program metadata.
 */
#include "program.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_MAPPING_BYTES (1u << 20)

static const char *const field_names[ENG_F__COUNT] = {
    [ENG_F_TITLE] = "title",
    [ENG_F_SEVERITY] = "severity",
    [ENG_F_OCCURRED_AT] = "occurred_at",
    [ENG_F_DESCRIPTION] = "description",
    [ENG_F_DETECTION_RULE_REF] = "detection_rule_ref",
    [ENG_F_SRC_IP] = "src_ip",
    [ENG_F_DST_IP] = "dst_ip",
    [ENG_F_SRC_HOSTNAME] = "src_hostname",
    [ENG_F_DST_HOSTNAME] = "dst_hostname",
    [ENG_F_FILE_HASH_MD5] = "file_hash_md5",
    [ENG_F_FILE_HASH_SHA1] = "file_hash_sha1",
    [ENG_F_FILE_HASH_SHA256] = "file_hash_sha256",
    [ENG_F_ACTOR_EMAIL] = "actor_email",
    [ENG_F_ACTOR_USERNAME] = "actor_username",
    [ENG_F_DNS_QUERY] = "dns_query",
    [ENG_F_HTTP_URL] = "http_url",
    [ENG_F_HTTP_HOSTNAME] = "http_hostname",
    [ENG_F_EMAIL_FROM] = "email_from",
    [ENG_F_EMAIL_REPLY_TO] = "email_reply_to",
};

const char *eng_field_name(eng_field_t f)
{
    return (unsigned)f < ENG_F__COUNT ? field_names[f] : "?";
}

int set_keep_code(eng_set_t *s, pcre2_code *code)
{
    if (s->ncodes == s->capcodes) {
        size_t cap = s->capcodes ? s->capcodes * 2 : 16;
        pcre2_code **v = realloc(s->codes, cap * sizeof(*v));
        if (v == NULL) {
            pcre2_code_free(code);
            return AM_ENOMEM;
        }
        s->codes = v;
        s->capcodes = cap;
    }
    s->codes[s->ncodes++] = code;
    return 0;
}

static void set_free(eng_set_t *s)
{
    for (size_t i = 0; i < s->ncodes; i++)
        pcre2_code_free(s->codes[i]);
    free(s->codes);
    if (!s->rules_borrowed)
        eng_rules_free(s->rules);
    am_arena_free(s->arena);
    free(s);
}

eng_set_t *eng_set_ref(eng_set_t *s)
{
    if (s != NULL)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void eng_set_unref(eng_set_t *s)
{
    if (s == NULL)
        return;
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        set_free(s);
}

static int cmp_prog(const void *a, const void *b)
{
    const eng_program_t *x = *(eng_program_t *const *)a, *y = *(eng_program_t *const *)b;
    return strcmp(x->source, y->source);
}

static int build_table(eng_set_t *s)
{
    size_t cap = 8;
    while (cap < s->nprogs * 2)
        cap *= 2;
    s->table = am_arena_calloc(s->arena, cap, sizeof(eng_program_t *));
    if (s->table == NULL)
        return AM_ENOMEM;
    s->tmask = cap - 1;
    for (size_t i = 0; i < s->nprogs; i++) {
        const char *name = s->progs[i]->source;
        size_t j = map_hash(name, strlen(name)) & s->tmask;
        while (s->table[j] != NULL)
            j = (j + 1) & s->tmask;
        s->table[j] = s->progs[i];
    }
    return 0;
}

const eng_program_t *eng_set_find(const eng_set_t *s, const char *name, size_t len)
{
    if (s == NULL || name == NULL)
        return NULL;
    for (size_t j = map_hash(name, len) & s->tmask;; j = (j + 1) & s->tmask) {
        const eng_program_t *p = s->table[j];
        if (p == NULL)
            return NULL;
        if (strncmp(p->source, name, len) == 0 && p->source[len] == '\0')
            return p;
    }
}

size_t eng_set_count(const eng_set_t *s)
{
    return s != NULL ? s->nprogs : 0;
}

const eng_program_t *eng_set_at(const eng_set_t *s, size_t i)
{
    return s != NULL && i < s->nprogs ? s->progs[i] : NULL;
}

const eng_rules_t *eng_set_rules(const eng_set_t *s)
{
    return s != NULL ? s->rules : NULL;
}

void eng_program_info(eng_program_info_t *out, const eng_program_t *p)
{
    memset(out, 0, sizeof(*out));
    out->source = p->source;
    out->display_name = p->display_name;
    out->file = p->file;
    memcpy(out->content_sha256, p->content_sha256, sizeof(out->content_sha256));
    out->loaded_at_us = p->loaded_at_us;
    out->has_signature = p->sig != NULL;
    out->nsamples = p->nsamples;
}

int eng_verify_signature(const eng_program_t *p, const eng_sig_request_t *req, bool *secret_set,
                         eng_error_t *err)
{
    return sig_verify(p->sig, req, secret_set, err);
}

/* ---- loading ------------------------------------------------------------------ */

/* Compiles one mapping: the file at path, or when mem is not NULL the
 * mem_len bytes at mem (path then only names it). */
static int load_one(eng_set_t *s, const char *path, const char *mem, size_t mem_len,
                    eng_program_t **out, am_diags_t *d)
{
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    if (mem != NULL) {
        if (mem_len > MAX_MAPPING_BYTES) {
            am_diags_add(d, path, 0, 0, "mapping file larger than %u bytes", MAX_MAPPING_BYTES);
            return AM_EINVAL;
        }
        return prog_compile(out, s, path, mem, mem_len, d);
    }
    int rc = am_read_file(&text, &len, path, MAX_MAPPING_BYTES);
    if (rc == AM_ELIMIT) {
        am_diags_add(d, path, 0, 0, "mapping file larger than %u bytes", MAX_MAPPING_BYTES);
        return AM_EINVAL;
    }
    if (rc != 0) {
        am_diags_add(d, path, 0, 0, "cannot read mapping file: %s", strerror(errno));
        return AM_EIO;
    }
    rc = prog_compile(out, s, path, text, len, d);
    free(text);
    return rc;
}

static char *rules_beside(const char *first)
{
    const char *slash = strrchr(first, '/');
    int dl = slash != NULL ? (int)(slash - first) : 1;
    const char *dir = slash != NULL ? first : ".";
    size_t n = (size_t)dl + sizeof("/rules/indicators.yaml");
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%.*s/rules/indicators.yaml", dl, dir);
    return p;
}

/* eng_set_load_files(), and set_load_texts() when texts is not NULL. */
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
    eng_program_t **progs = NULL;
    eng_set_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return AM_ENOMEM;
    atomic_init(&s->refs, 1);
    s->arena = am_arena_new(64 * 1024, 256u << 20);
    progs = calloc(npaths + 1, sizeof(*progs));
    if (s->arena == NULL || progs == NULL) {
        rc = AM_ENOMEM;
        goto done;
    }
    if (npaths == 0) {
        am_diags_add(diags, "", 0, 0, "no mapping files to load");
        rc = AM_EINVAL;
        goto done;
    }
    if (rules != NULL) {
        s->rules = rules;
        s->rules_borrowed = true;
    } else if (opt->rules_file == NULL && (rules_path = rules_beside(paths[0])) == NULL) {
        rc = AM_ENOMEM;
        goto done;
    } else {
        rc = eng_rules_load(&s->rules, opt->rules_file ? opt->rules_file : rules_path, diags);
    }
    if (rc == AM_ENOMEM)
        goto done;
    failed = rc != 0;
    rc = 0;
    size_t n = 0;
    for (size_t i = 0; i < npaths; i++) {
        eng_program_t *p = NULL;
        int r = load_one(s, paths[i], texts != NULL ? texts[i] : NULL, texts != NULL ? lens[i] : 0,
                         &p, diags);
        if (r == AM_ENOMEM) {
            rc = r;
            goto done;
        }
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
    qsort(progs, n, sizeof(*progs), cmp_prog);
    s->progs = am_arena_alloc(s->arena, n * sizeof(*progs));
    if (s->progs == NULL) {
        rc = AM_ENOMEM;
        goto done;
    }
    memcpy(s->progs, progs, n * sizeof(*progs));
    s->nprogs = n;
    if ((rc = build_table(s)) != 0)
        goto done;
    if (opt->check_samples) {
        for (size_t i = 0; i < n; i++) {
            int r = eng_program_check_samples(s->progs[i], diags);
            if (r == AM_ENOMEM) {
                rc = r;
                goto done;
            }
            if (r != 0)
                failed = true;
        }
        if (failed)
            rc = AM_EINVAL;
    }
done:
    free(progs);
    free(rules_path);
    am_diags_sort(diags);
    if (rc != 0) {
        set_free(s);
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

int set_load_texts(eng_set_t **out, const char *const *names, const char *const *texts,
                   const size_t *lens, size_t n, eng_rules_t *rules, const eng_load_options_t *opt,
                   am_diags_t *diags)
{
    for (size_t i = 0; i < n; i++)
        assert(texts[i] != NULL);
    return load_set(out, names, texts, lens, n, rules, opt, diags);
}

static bool is_mapping_name(const char *name)
{
    size_t n = strlen(name);
    if (name[0] == '.')
        return false;
    return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(name + n - 4, ".yml") == 0);
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
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
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path = malloc(len);
        if (path == NULL) {
            rc = AM_ENOMEM;
            break;
        }
        snprintf(path, len, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **v = realloc(names, nc * sizeof(*v));
            if (v == NULL) {
                free(path);
                rc = AM_ENOMEM;
                break;
            }
            names = v;
            cap = nc;
        }
        names[n++] = path;
    }
    closedir(d);
    if (rc == 0) {
        if (n > 0)
            qsort(names, n, sizeof(*names), cmp_cstr);
        eng_load_options_t o = opt != NULL ? *opt : (eng_load_options_t){0};
        char *rules = NULL;
        if (o.rules_file == NULL) {
            size_t len = strlen(dir) + sizeof("/rules/indicators.yaml");
            rules = malloc(len);
            if (rules == NULL)
                rc = AM_ENOMEM;
            else
                snprintf(rules, len, "%s/rules/indicators.yaml", dir);
            o.rules_file = rules;
        }
        if (rc == 0 && n == 0) {
            am_diags_add(diags, dir, 0, 0, "no mapping files (*.yaml) in the directory");
            rc = AM_EINVAL;
        }
        if (rc == 0)
            rc = eng_set_load_files(out, (const char *const *)names, n, &o, diags);
        free(rules);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}
