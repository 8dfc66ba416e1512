/*
 * engine/tables.h - small tables shared by the compiler and the executor:
 * case-insensitive lookup tables (`map:` transforms, the set's source
 * index), field names and canonical severities. Internal to engine/. No
 * state: every function is reentrant.
 */
#ifndef ENG_TABLES_H
#define ENG_TABLES_H

#include "eng.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* FNV-1a over lower[0..len) (already lowercased by the caller). */
uint32_t eng_map_hash(const char *lower, size_t len);
/* Case-insensitive lookup of key[0..len); the slot or NULL. */
const map_slot_t *eng_map_lookup(const map_table_t *m, const char *key, size_t len);

/* The field whose name is name[0..len) (exact); ENG_F__COUNT when none. */
eng_field_t eng_field_parse(const char *name, size_t len);

/* The canonical spelling of severity s[0..len) ("Pending", "Informational",
 * "Low", "Medium", "High", "Critical"; case-insensitive), a static string,
 * or NULL when s is none of them. */
const char *eng_severity_canonical(const char *s, size_t len);

/* Whether patterns are JIT-compiled: false when the environment variable
 * ALERTMAP_PCRE2_JIT is "0" (the valgrind test setup sets it: valgrind
 * cannot follow PCRE2's generated code), true otherwise. Reads the
 * environment on every call: call it once per compile of a mapping or rule
 * file, never per request. */
bool eng_pcre2_jit_enabled(void);

#endif
