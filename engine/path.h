/*
 * engine/path.h - compiled payload paths (docs/mapping-language.md, "Paths").
 * Internal to engine/.
 *
 * A path is parsed once, at compile time, into segments. Runs of dotted names
 * also carry their pre-joined spellings ("kibana.alert.rule.name",
 * "kibana.alert.rule", ...) so that flat dotted keys resolve at run time
 * without building any string: at each object level the longest joined key
 * present wins.
 *
 * Compiled paths live in the arena given to eng_path_compile() and are read-only
 * afterwards; evaluation is reentrant and allocates nothing.
 */
#ifndef ENG_PATH_H
#define ENG_PATH_H

#include "am.h"

#include <jansson.h>
#include <stdbool.h>

typedef enum {
    SEG_KEY,    /* name or ['quoted name'] */
    SEG_INDEX,  /* [N], [-N] */
    SEG_WILD,   /* [*] */
    SEG_FILTER, /* [?sub=value] or [?sub] */
} seg_kind_t;

typedef struct epath epath_t;

typedef struct path_seg {
    seg_kind_t kind;
    /* SEG_KEY */
    const char *key;
    size_t klen;
    /* join[k-1] is this key joined with the next k dotted names (k = 1..njoin),
     * longest last; empty for quoted keys. */
    const char **join;
    size_t *joinlen;
    unsigned njoin;
    /* SEG_INDEX */
    long index;
    /* SEG_FILTER: fpath relative to the element; fval NULL = "is present" */
    epath_t *fpath;
    const char *fval;
    size_t fvlen;
} path_seg_t;

struct epath {
    const char *text; /* as written, NUL-terminated */
    bool root;        /* starts with '$' */
    bool multi;       /* contains [*] or a filter: may yield several values */
    path_seg_t *segs;
    size_t nsegs;
};

/*
 * Compiles the path text[0..len). On success *out is set and 0 returned. On
 * a syntax error returns AM_EINVAL with *err_off the byte offset of the
 * problem and *err_msg a static description. AM_ELIMIT when a is at its cap.
 */
int eng_path_compile(epath_t **out, const char *text, size_t len, am_arena_t *a, size_t *err_off,
                     const char **err_msg);

/* Called for every value the path selects (never NULL or JSON null; arrays
 * selected without [*] are passed whole). Return 0 to continue, anything
 * else stops the walk and is returned by eng_path_visit(). */
typedef int (*path_visit_fn)(void *ctx, json_t *v);

/* Walks p from cur (or from root when the path starts with '$'). Borrowed
 * references throughout. Returns 0 or the first non-zero callback result. */
int eng_path_visit(const epath_t *p, json_t *cur, json_t *root, path_visit_fn fn, void *ctx);

/* The first value p selects, or NULL. Borrowed. */
json_t *eng_path_first(const epath_t *p, json_t *cur, json_t *root);

/* Text of a scalar JSON value for comparisons and output: strings as they
 * are, integers in decimal, reals in the shortest form that reads back the
 * same (at most 17 significant digits), booleans "true"/"false". Numbers and
 * booleans are written into buf (at least 32 bytes). Returns NULL for null,
 * objects and arrays. *len receives the length. */
const char *eng_path_scalar_text(const json_t *v, char *buf, size_t *len);

#endif
