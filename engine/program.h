/*
 * engine/program.h - compiled mapping programs and the sets that hold them:
 * the one data structure between the compiler and the executor. Internal
 * to engine/.
 *
 * The compiler (compile.c, expr.c, sig_compile.c) builds these structures
 * with the set builder below (set.c); the loader (load.c) adds what needs
 * the file system or the environment (sample lists, resolved secrets) and
 * publishes the set; the executor (exec.c, exec_ioc.c) only reads them.
 * Neither the compiler nor the executor calls the other; this header and
 * tables.h are what they share. Everything of a set lives in the set's
 * arena, except the PCRE2 codes, which the set frees on its last
 * reference. After eng_set_publish() nothing here is written again, so any
 * number of threads may run programs at once.
 */
#ifndef ENG_PROGRAM_H
#define ENG_PROGRAM_H

#include <stdatomic.h>

#include "eng.h"
#include "ioc.h"
#include "path.h"
#include "signature.h"
#include "tables.h"
#include "timeparse.h"

/* ---- value expressions ---------------------------------------------------- */

typedef enum { EX_PATH, EX_CONST, EX_TEMPLATE, EX_FIRST } expr_kind_t;

/* A template is literal text and holes; hole NULL marks a literal-only part. */
typedef struct tpart {
    const char *lit;
    size_t litlen;
    epath_t *hole;
} tpart_t;

typedef struct range {
    double min, max;
    bool has_min, has_max;
    const char *value;
} range_t;

typedef struct expr expr_t;
struct expr {
    expr_kind_t kind;
    int line;
    const char *text; /* path, template or constant text: names the value */
    /* EX_PATH: fallbacks, first with a value wins; origin per path */
    epath_t **paths;
    const char **path_origin; /* "file.yaml:LINE path" */
    size_t npaths;
    /* EX_CONST */
    const char *cval;
    size_t cvlen;
    /* EX_TEMPLATE */
    tpart_t *parts;
    size_t nparts;
    /* EX_FIRST */
    expr_t **alts;
    size_t nalts;
    const char *origin; /* for const and template: "file.yaml:LINE const" */
    /* default */
    const char *dflt; /* NULL: no default */
    size_t dlen;
    const char *dflt_origin;
    /* transforms, in this order */
    bool has_transform;
    pcre2_code *re;
    uint32_t re_group; /* capture group giving the value; 0 = whole match */
    bool lower, upper, trim;
    map_table_t *map;
    bool has_map_default;
    const char *map_default; /* NULL with has_map_default: absent */
    range_t *ranges;
    size_t nranges;
    bool has_time;
    tp_format_t time;
};

/* ---- match rules ---------------------------------------------------------- */

typedef enum { MR_OBJECT, MR_ARRAY, MR_PRESENT, MR_ANY, MR_EQUALS } match_kind_t;

typedef struct match_rule {
    match_kind_t kind;
    const char *name;    /* given name or "match[N]" */
    const char *where;   /* "file.yaml:LINE" */
    const char *message; /* custom message or NULL */
    epath_t **paths;
    size_t npaths;
    const char **values; /* MR_EQUALS: allowed values */
    size_t *vlens;
    size_t nvalues;
} match_rule_t;

/* ---- indicator rules ------------------------------------------------------ */

typedef enum { IR_VALUE, IR_EACH, IR_SCAN, IR_SCAN_ALL, IR_REGEX } irule_kind_t;

typedef struct irule {
    irule_kind_t kind;
    const char *origin; /* "file.yaml:LINE" */
    /* IR_VALUE / IR_EACH: a fixed type, or a computed one (type_expr) */
    eng_ioc_type_t type;
    expr_t *type_expr;
    expr_t *value;
    epath_t *each;
    const char *each_prefix; /* "<each path>." for source_field */
    /* IR_SCAN / IR_REGEX: the scanned paths (none with all) */
    epath_t **in;
    size_t nin;
    bool in_all;
    unsigned mask; /* IR_SCAN: (1u << type) bits */
    /* IR_REGEX */
    pcre2_code *re;
    uint32_t group_type[32]; /* capture number -> type + 1 (0 = not a type) */
    uint32_t ngroups;
    const char *label; /* "regex:<name>" or "regex:<file>:<line>" */
} irule_t;

/* ---- programs and sets ---------------------------------------------------- */

struct eng_program {
    const char *source;
    const char *display_name;
    const char *file;     /* path as loaded */
    const char *basename; /* for provenance and messages */
    int source_line, source_col;
    char content_sha256[65];
    int64_t loaded_at_us;
    const struct eng_set *set;
    sig_spec_t *sig;
    bool auth_query_key; /* `auth: {query_key: true}`: ?api_key= accepted for ingest */
    match_rule_t *match;
    size_t nmatch;
    epath_t *split;
    const char *split_where;
    expr_t *field[ENG_F__COUNT]; /* NULL when not mapped */
    const char *field_where[ENG_F__COUNT];
    expr_t *tags;
    const char *untitled; /* "Untitled <display_name> alert" */
    const char *untitled_origin;
    irule_t *irules;
    size_t nirules;
    uint32_t max_groups; /* largest capture count of any pattern, for match data */
    /* samples: the compiler resolves the folder's name (no file access);
     * the loader lists it and fills samples/nsamples */
    const char *samples_dir; /* folder, NULL when none */
    bool samples_declared;   /* named by a `samples:` key (then it must exist) */
    int samples_line, samples_col;
    const char **samples; /* sample payload file names (sorted) */
    size_t nsamples;
};

/* Scanner of free text with the set's indicator rules (ioc_extract()'s
 * signature). The loader supplies it with the rules, so the executor runs
 * scans without linking the code that compiles the rule file. */
typedef int (*eng_scan_fn)(ioc_vec_t *v, am_arena_t *a, const eng_rules_t *r, const char *text,
                           size_t len, unsigned mask, const char *source_field, const char *origin);

struct eng_set {
    atomic_int refs;
    am_arena_t *arena;
    eng_program_t **progs; /* sorted by source */
    size_t nprogs;
    eng_program_t **table; /* open addressing by source name */
    size_t tmask;
    eng_rules_t *rules;                 /* NULL: no scan rules (scan finds nothing) */
    void (*rules_free)(eng_rules_t *r); /* NULL when the rules are borrowed */
    eng_scan_fn scan;                   /* NULL when rules is NULL */
    pcre2_code **codes;                 /* every compiled pattern, freed with the set */
    size_t ncodes, capcodes;
};

/* ---- the set builder (set.c) --------------------------------------------- */

/* A new empty set with one reference and its arena (aborts when the heap
 * is exhausted). Free it with eng_set_unref(). */
eng_set_t *eng_set_new(void);
/* Keeps a compiled pattern so that the set frees it with itself. */
void eng_set_keep_code(eng_set_t *s, pcre2_code *code);
/* A new zeroed program of s named after file (copied; basename derived),
 * loaded now; the caller fills in the rest. NULL when the set's arena is at
 * its cap. */
eng_program_t *eng_program_new(eng_set_t *s, const char *file);
/* Makes progs[0..n) the programs of s: sorted by source, indexed for
 * eng_set_find(). Source names must be distinct. Returns 0, or AM_ELIMIT
 * when the set's arena is at its cap. */
int eng_set_publish(eng_set_t *s, eng_program_t *const *progs, size_t n);

#endif
