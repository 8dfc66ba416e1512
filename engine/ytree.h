/*
 * engine/ytree.h - a YAML document as a tree that remembers where every node
 * came from (line and column, 1-based). Internal to engine/.
 *
 * The loader reports every problem it can into an am_diags_t: syntax errors
 * (with libyaml's position), duplicate keys, non-scalar keys, aliases (not
 * supported), more than one document. Nodes live in the caller's arena.
 */
#ifndef ENG_YTREE_H
#define ENG_YTREE_H

#include "am.h"

typedef enum { YT_SCALAR, YT_SEQ, YT_MAP } yt_kind_t;

typedef struct yt_node yt_node_t;

typedef struct yt_pair {
    yt_node_t *key; /* always a YT_SCALAR */
    yt_node_t *value;
} yt_pair_t;

struct yt_node {
    yt_kind_t kind;
    int line, col;
    /* YT_SCALAR */
    const char *str; /* NUL-terminated; may contain NULs only if len says so */
    size_t len;
    bool quoted; /* written with quotes or as a block scalar: never null/bool/number */
    /* YT_SEQ */
    yt_node_t **items;
    size_t nitems;
    /* YT_MAP */
    yt_pair_t *pairs;
    size_t npairs;
};

/*
 * Parses text (len bytes) of the file named file. On success *out is the
 * root (NULL for an empty document) and 0 is returned. On any error the
 * diagnostics are added to d and AM_EINVAL is returned (*out may still hold
 * a partial tree). AM_ELIMIT when the arena is at its cap.
 */
int eng_yt_parse(yt_node_t **out, am_arena_t *a, const char *file, const char *text, size_t len,
                 am_diags_t *d);
/* Like eng_yt_parse(), and tells whether the tree is whole: *whole is true when
 * the only problems were duplicate keys or non-string keys (those pairs are
 * left out), so that the tree can still be checked for further errors;
 * false after a syntax error, an alias, too deep nesting or a second
 * document. */
int eng_yt_parse_all(yt_node_t **out, bool *whole, am_arena_t *a, const char *file,
                     const char *text, size_t len, am_diags_t *d);

/* Map lookup by key; NULL when absent or when map is not a map. */
yt_node_t *eng_yt_get(const yt_node_t *map, const char *key);
/* True for a plain (unquoted) scalar spelling null: "", "~", "null", "Null", "NULL". */
bool eng_yt_is_null(const yt_node_t *n);
/* Kind name for messages: "a string", "a list", "a mapping". */
const char *eng_yt_kind_name(const yt_node_t *n);

#endif
