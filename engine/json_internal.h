/*
 * engine/json_internal.h - what json_in.c (eng_json_parse) and json_fast.c
 * share. Included only by those two files and their tests; everyone else
 * uses eng_json_parse() of eng.h.
 */
#ifndef ENG_JSON_INTERNAL_H
#define ENG_JSON_INTERNAL_H

#include "eng.h"

/*
 * The tree of the JSON text[0..len) (any value at the top; need not be
 * NUL-terminated), a new reference, when the text is on the plain path
 * (json_fast.c says what that is); NULL otherwise, and then
 * json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES) is the
 * answer. A tree from here equals the one json_loadb builds, keys in the
 * same order. Reentrant.
 */
json_t *eng_json_fast(const char *text, size_t len);

#endif
