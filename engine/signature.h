/*
 * engine/signature.h - webhook signature declarations and their verification.
 * Internal to engine/. A compiled spec is immutable and thread-safe.
 */
#ifndef ENG_SIGNATURE_H
#define ENG_SIGNATURE_H

#include "am.h"
#include "eng.h"
#include "ytree.h"

typedef struct sig_spec sig_spec_t;

/*
 * Compiles the value of a mapping's `signature:` key (see
 * docs/mapping-language.md). Every problem is added to d as
 * file:line:col. The spec is allocated in arena a (which outlives it).
 * Returns 0, AM_EINVAL (diagnostics added) or AM_ENOMEM.
 */
int sig_compile(sig_spec_t **out, const yt_node_t *node, const char *file, am_arena_t *a,
                am_diags_t *d);

/* Verifies req against spec (spec NULL = no signature declared: 0). Reads
 * the secrets from the environment on every call, so rotation needs no
 * reload. See eng_verify_signature() in eng.h for the contract. */
int sig_verify(const sig_spec_t *spec, const eng_sig_request_t *req, bool *secret_set,
               eng_error_t *err);

#endif
