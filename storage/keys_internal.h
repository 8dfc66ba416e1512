/*
 * storage/keys_internal.h - what keys.c (format, hashing, create/list/revoke)
 * and keys_verify.c (the request-path verifier) share. Not part of the
 * public interface; nothing outside storage/ includes this.
 */
#ifndef STORE_KEYS_INTERNAL_H
#define STORE_KEYS_INTERNAL_H

#include "store_internal.h"

/* "amk_" PREFIX(8) "_" SECRET(52): base32 (RFC 4648 alphabet, lower case). */
#define KEY_TAG        "amk_"
#define KEY_TAG_LEN    4
#define KEY_PREFIX_LEN 8
#define KEY_SECRET_LEN 52
#define KEY_HASH_LEN   32

/* The lookup prefix of a well-formed token as a number (40 bits, +1 so that
 * 0 means "none"); 0 when token[0..len) is not a well-formed token. Pure. */
uint64_t key_parse(const char *token, size_t len);
/* The 8 prefix characters of a prefix number from key_parse (out[8] = NUL). */
void key_prefix_text(char out[KEY_PREFIX_LEN + 1], uint64_t pid);
/* HMAC-SHA256(pepper, data[0..n)) into out; pepper NULL means the default.
 * Thread-safe. */
void key_hmac(unsigned char out[KEY_HASH_LEN], const char *pepper, const void *data, size_t n);
/* HMAC-SHA256 under one pepper with the key schedule done once (OpenSSL's
 * one-shot HMAC() looks the algorithm up on every call, which costs tens of
 * microseconds). Same output as key_hmac(). key_hasher_run is thread-safe;
 * a hasher is immutable after key_hasher_init. */
typedef struct key_hasher {
    struct evp_md_ctx_st *inner, *outer; /* after the padded key block */
} key_hasher_t;
void key_hasher_init(key_hasher_t *h, const char *pepper);
void key_hasher_dispose(key_hasher_t *h);
void key_hasher_run(const key_hasher_t *h, unsigned char out[KEY_HASH_LEN], const void *data,
                    size_t n);
/* The pepper's id: hex of the first 8 bytes of HMAC(pepper, "alertmap-pepper-id"). */
void key_pepper_id(char out[17], const char *pepper);
/* Decodes "\x…" (bytea hex output) of exactly KEY_HASH_LEN bytes. */
bool key_hash_from_pg(unsigned char out[KEY_HASH_LEN], const char *s);
/* Scope bits from the SQL expression KEY_SCOPE_BITS_SQL. */
/* (PostgreSQL gives | and << the same precedence: every term is in parentheses.) */
#define KEY_SCOPE_BITS_SQL                                                                         \
    "(('ingest' = ANY (scopes))::int | (('read' = ANY (scopes))::int << 1) |"                      \
    " (('write' = ANY (scopes))::int << 2) | (('admin' = ANY (scopes))::int << 3))"

#endif
