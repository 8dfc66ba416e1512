/*
 * engine/program.h - compiled mapping programs and sets. Internal to engine/.
 *
 * compile.c builds these structures from a mapping file; exec.c only reads
 * them. Everything of a set lives in the set's arena (set.c), except the
 * PCRE2 codes, which the set frees on its last reference. After
 * eng_set_load() returns, nothing here is written again, so any number of
 * threads may run programs at once.
 */
#ifndef ENG_PROGRAM_H
#define ENG_PROGRAM_H

#include <stdatomic.h>

#include "eng.h"
#include "ioc.h"
#include "path.h"
#include "signature.h"
#include "timeparse.h"

/* ---- value expressions ---------------------------------------------------- */

typedef enum { EX_PATH, EX_CONST, EX_TEMPLATE, EX_FIRST } expr_kind_t;

/* A template is literal text and holes; hole NULL marks a literal-only part. */
typedef struct tpart {
    const char *lit;
    size_t litlen;
    epath_t *hole;
} tpart_t;

/* Case-insensitive lookup table: open addressing over lowercased keys. */
typedef struct map_slot {
    const char *key; /* lowercased; NULL = empty slot */
    size_t klen;
    uint32_t hash;
    const char *value; /* NULL: the value maps to "absent" (YAML null) */
} map_slot_t;

typedef struct map_table {
    map_slot_t *slots;
    size_t mask;   /* capacity - 1, capacity a power of two */
    size_t maxkey; /* longest key: longer inputs cannot match */
} map_table_t;

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
    uint32_t max_groups;     /* largest capture count of any pattern, for match data */
    const char *samples_dir; /* resolved folder, NULL when none */
    const char **samples;    /* sample payload file names (sorted) */
    size_t nsamples;
};

struct eng_set {
    atomic_int refs;
    am_arena_t *arena;
    eng_program_t **progs; /* sorted by source */
    size_t nprogs;
    eng_program_t **table; /* open addressing by source name */
    size_t tmask;
    eng_rules_t *rules;
    bool rules_borrowed; /* set_load_texts() with shared rules: not freed */
    pcre2_code **codes;  /* every compiled pattern, freed with the set */
    size_t ncodes, capcodes;
};

/* compile.c: compiles one file's text into a program allocated in s->arena
 * (patterns registered in s->codes). All problems go to d. Returns 0,
 * AM_EINVAL (diagnostics added) or AM_ENOMEM. */
int prog_compile(eng_program_t **out, eng_set_t *s, const char *file, const char *text, size_t len,
                 am_diags_t *d);

/* set.c: eng_set_load_files() on mappings held in memory: texts[i] (lens[i]
 * bytes, borrowed, need no terminator) is compiled as if read from the file
 * names[i], which diagnostics and provenance name and beside which samples
 * are looked up. rules: compiled shared rules the set borrows (they must
 * outlive it), or NULL to load them as eng_set_load_files() does. Same
 * results and errors as eng_set_load_files(). Used by the fuzz target of
 * the compiler, which must not read files and compile the rules per input. */
int set_load_texts(eng_set_t **out, const char *const *names, const char *const *texts,
                   const size_t *lens, size_t n, eng_rules_t *rules, const eng_load_options_t *opt,
                   am_diags_t *diags);

/* set.c: keeps a pattern so the set frees it. Returns 0 or AM_ENOMEM (the
 * code is freed then). */
int set_keep_code(eng_set_t *s, pcre2_code *code);

/* Case-insensitive table lookup; returns the slot or NULL. */
const map_slot_t *map_lookup(const map_table_t *m, const char *key, size_t len);
uint32_t map_hash(const char *lower, size_t len);

#endif
