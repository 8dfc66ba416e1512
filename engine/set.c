/*
 * engine/set.c - the container of compiled programs: building a set (used
 * by the compiler, the loader and tests), reference counting, lookup by
 * source name, program metadata. Run-time code: no file system, no YAML.
 */
#include "program.h"

#include <stdlib.h>
#include <string.h>

/* A set's arena: everything compiled for all its mappings. */
#define SET_ARENA_CHUNK (64 * 1024)
#define SET_ARENA_CAP   (256u << 20)

eng_set_t *eng_set_new(void)
{
    eng_set_t *s = am_xcalloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->arena = am_arena_new(SET_ARENA_CHUNK, SET_ARENA_CAP);
    return s;
}

void eng_set_keep_code(eng_set_t *s, pcre2_code *code)
{
    if (s->ncodes == s->capcodes) {
        s->capcodes = s->capcodes ? s->capcodes * 2 : 16;
        s->codes = am_xrealloc(s->codes, s->capcodes * sizeof(*s->codes));
    }
    s->codes[s->ncodes++] = code;
}

eng_program_t *eng_program_new(eng_set_t *s, const char *file)
{
    eng_program_t *p = am_arena_calloc(s->arena, 1, sizeof(*p));
    if (p == NULL || (p->file = am_arena_strdup(s->arena, file)) == NULL)
        return NULL;
    const char *slash = strrchr(p->file, '/');
    p->basename = slash != NULL ? slash + 1 : p->file;
    p->set = s;
    p->loaded_at_us = am_now_us();
    return p;
}

static void set_free(eng_set_t *s)
{
    for (size_t i = 0; i < s->nprogs; i++)
        eng_sig_forget(s->progs[i]->sig);
    for (size_t i = 0; i < s->ncodes; i++)
        pcre2_code_free(s->codes[i]);
    free(s->codes);
    if (s->rules_free != NULL)
        s->rules_free(s->rules);
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

int eng_set_publish(eng_set_t *s, eng_program_t *const *progs, size_t n)
{
    size_t cap = 8;
    while (cap < n * 2)
        cap *= 2;
    s->progs = am_arena_alloc(s->arena, (n + 1) * sizeof(*progs));
    s->table = am_arena_calloc(s->arena, cap, sizeof(eng_program_t *));
    if (s->progs == NULL || s->table == NULL)
        return AM_ELIMIT;
    if (n > 0)
        memcpy(s->progs, progs, n * sizeof(*progs));
    qsort(s->progs, n, sizeof(*progs), cmp_prog);
    s->nprogs = n;
    s->tmask = cap - 1;
    for (size_t i = 0; i < n; i++) {
        const char *name = s->progs[i]->source;
        size_t j = eng_map_hash(name, strlen(name)) & s->tmask;
        while (s->table[j] != NULL)
            j = (j + 1) & s->tmask;
        s->table[j] = s->progs[i];
    }
    return 0;
}

const eng_program_t *eng_set_find(const eng_set_t *s, const char *name, size_t len)
{
    if (s == NULL || name == NULL || s->table == NULL)
        return NULL;
    for (size_t j = eng_map_hash(name, len) & s->tmask;; j = (j + 1) & s->tmask) {
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
    if (p->sig != NULL) {
        out->secret_env = (const char *const *)p->sig->secret_env;
        out->nsecret_env = p->sig->nsecret_env;
        out->secret_set = p->sig->nsecrets > 0;
    }
    out->query_key = p->auth_query_key;
    out->nsamples = p->nsamples;
}
