/* engine/ytree.c - libyaml event stream to a positioned tree; see ytree.h. */
#include "ytree.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 64

typedef struct {
    yaml_parser_t parser;
    am_arena_t *arena;
    const char *file;
    am_diags_t *diags;
    int errors;
    bool limit;
    bool broken; /* the tree is partial: syntax error, depth, several documents */
} loader_t;

static void err_at(loader_t *l, int line, int col, const char *msg)
{
    am_diags_add(l->diags, l->file, line, col, "%s", msg);
    l->errors++;
}

static yt_node_t *new_node(loader_t *l, yt_kind_t kind, const yaml_mark_t *m)
{
    yt_node_t *n = am_arena_calloc(l->arena, 1, sizeof(*n));
    if (n == NULL) {
        l->limit = true;
        return NULL;
    }
    n->kind = kind;
    n->line = (int)m->line + 1;
    n->col = (int)m->column + 1;
    return n;
}

/* Growable pointer arrays built on the heap while parsing, then copied into
 * the arena. */
typedef struct {
    void *data;
    size_t n, cap, elem;
} vec_t;

static void vec_push(vec_t *v, const void *x)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 8;
        v->data = am_xrealloc(v->data, v->cap * v->elem);
    }
    memcpy((char *)v->data + v->n * v->elem, x, v->elem);
    v->n++;
}

static bool next_event(loader_t *l, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&l->parser, ev)) {
        const yaml_mark_t *m = &l->parser.problem_mark;
        char msg[512];
        snprintf(msg, sizeof(msg), "YAML syntax error: %s%s%s",
                 l->parser.problem ? l->parser.problem : "unknown problem",
                 l->parser.context ? " " : "", l->parser.context ? l->parser.context : "");
        err_at(l, (int)m->line + 1, (int)m->column + 1, msg);
        l->broken = true;
        return false;
    }
    return true;
}

static yt_node_t *parse_node(loader_t *l, yaml_event_t *ev, int depth);

static yt_node_t *parse_seq(loader_t *l, yaml_event_t *start, int depth)
{
    yt_node_t *n = new_node(l, YT_SEQ, &start->start_mark);
    vec_t v = {.elem = sizeof(yt_node_t *)};
    yaml_event_t ev;
    for (;;) {
        if (!next_event(l, &ev))
            goto fail;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        yt_node_t *item = parse_node(l, &ev, depth + 1);
        yaml_event_delete(&ev);
        if (l->limit)
            goto fail;
        if (item != NULL)
            vec_push(&v, &item);
        if (l->parser.error != YAML_NO_ERROR)
            goto fail;
    }
    if (n != NULL && v.n > 0) {
        n->items = am_arena_alloc(l->arena, v.n * sizeof(yt_node_t *));
        if (n->items == NULL)
            l->limit = true;
        else
            memcpy(n->items, v.data, v.n * sizeof(yt_node_t *));
        n->nitems = v.n;
    }
    free(v.data);
    return n;
fail:
    free(v.data);
    return NULL;
}

static yt_node_t *parse_map(loader_t *l, yaml_event_t *start, int depth)
{
    yt_node_t *n = new_node(l, YT_MAP, &start->start_mark);
    vec_t v = {.elem = sizeof(yt_pair_t)};
    yaml_event_t ev;
    for (;;) {
        if (!next_event(l, &ev))
            goto fail;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        yt_node_t *key = parse_node(l, &ev, depth + 1);
        yaml_event_delete(&ev);
        if (l->limit || l->parser.error != YAML_NO_ERROR)
            goto fail;
        if (!next_event(l, &ev))
            goto fail;
        yt_node_t *val = parse_node(l, &ev, depth + 1);
        yaml_event_delete(&ev);
        if (l->limit || l->parser.error != YAML_NO_ERROR)
            goto fail;
        if (key == NULL || val == NULL)
            continue;
        if (key->kind != YT_SCALAR) {
            err_at(l, key->line, key->col, "a mapping key must be a plain string");
            continue;
        }
        bool dup = false;
        for (size_t i = 0; i < v.n; i++) {
            yt_pair_t *p = (yt_pair_t *)v.data + i;
            if (p->key->len == key->len && memcmp(p->key->str, key->str, key->len) == 0) {
                char msg[300];
                snprintf(msg, sizeof(msg), "duplicate key '%.200s' (first at line %d)", key->str,
                         p->key->line);
                err_at(l, key->line, key->col, msg);
                dup = true;
                break;
            }
        }
        if (dup)
            continue;
        yt_pair_t pr = {key, val};
        vec_push(&v, &pr);
    }
    if (n != NULL && v.n > 0) {
        n->pairs = am_arena_alloc(l->arena, v.n * sizeof(yt_pair_t));
        if (n->pairs == NULL)
            l->limit = true;
        else
            memcpy(n->pairs, v.data, v.n * sizeof(yt_pair_t));
        n->npairs = v.n;
    }
    free(v.data);
    return n;
fail:
    free(v.data);
    return NULL;
}

/* Returns NULL both on fatal error (parser error / limit, checked by callers)
 * and for nodes that were reported and skipped (aliases). */
static yt_node_t *parse_node(loader_t *l, yaml_event_t *ev, int depth)
{
    if (depth > MAX_DEPTH) {
        err_at(l, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
               "nesting deeper than 64 levels");
        l->broken = true;
        l->parser.error = YAML_PARSER_ERROR; /* stop */
        return NULL;
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        yt_node_t *n = new_node(l, YT_SCALAR, &ev->start_mark);
        if (n == NULL)
            return NULL;
        n->len = ev->data.scalar.length;
        n->str = am_arena_strndup(l->arena, (const char *)ev->data.scalar.value, n->len);
        if (n->str == NULL)
            l->limit = true;
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        return n;
    }
    case YAML_SEQUENCE_START_EVENT:
        return parse_seq(l, ev, depth);
    case YAML_MAPPING_START_EVENT:
        return parse_map(l, ev, depth);
    case YAML_ALIAS_EVENT:
        err_at(l, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
               "YAML aliases (*name) are not supported in mapping files");
        l->broken = true; /* the value is missing: checking on would only add noise */
        return NULL;
    default:
        err_at(l, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
               "unexpected YAML event");
        l->broken = true;
        l->parser.error = YAML_PARSER_ERROR;
        return NULL;
    }
}

int eng_yt_parse(yt_node_t **out, am_arena_t *a, const char *file, const char *text, size_t len,
                 am_diags_t *d)
{
    bool whole;
    return eng_yt_parse_all(out, &whole, a, file, text, len, d);
}

int eng_yt_parse_all(yt_node_t **out, bool *whole, am_arena_t *a, const char *file,
                     const char *text, size_t len, am_diags_t *d)
{
    loader_t l = {.arena = a, .file = file, .diags = d};
    *out = NULL;
    *whole = false;
    if (!yaml_parser_initialize(&l.parser))
        am_oom(sizeof(l.parser));
    yaml_parser_set_input_string(&l.parser, (const unsigned char *)text, len);
    yaml_event_t ev;
    int docs = 0;
    bool done = false;
    while (!done) {
        if (!next_event(&l, &ev))
            break;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            docs++;
            if (docs > 1) {
                err_at(&l, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                       "a mapping file holds one YAML document");
                l.broken = true;
                done = true;
            }
            break;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
        case YAML_ALIAS_EVENT:
            *out = parse_node(&l, &ev, 0);
            if (l.limit || l.parser.error != YAML_NO_ERROR)
                done = true;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&l.parser);
    if (l.limit)
        return AM_ELIMIT;
    *whole = !l.broken;
    return l.errors > 0 ? AM_EINVAL : AM_OK;
}

yt_node_t *eng_yt_get(const yt_node_t *map, const char *key)
{
    if (map == NULL || map->kind != YT_MAP)
        return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < map->npairs; i++) {
        const yt_node_t *k = map->pairs[i].key;
        if (k->len == kl && memcmp(k->str, key, kl) == 0)
            return map->pairs[i].value;
    }
    return NULL;
}

bool eng_yt_is_null(const yt_node_t *n)
{
    if (n == NULL)
        return true;
    if (n->kind != YT_SCALAR || n->quoted)
        return false;
    return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
           strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}

const char *eng_yt_kind_name(const yt_node_t *n)
{
    if (n == NULL)
        return "nothing";
    switch (n->kind) {
    case YT_SCALAR:
        return "a string";
    case YT_SEQ:
        return "a list";
    case YT_MAP:
        return "a mapping";
    }
    return "?";
}
