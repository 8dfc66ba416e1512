/*
 * engine/ioc_internal.h - what ioc.c (refanging, hashes, accounts, dispatch,
 * the vector) and ioc_host.c (ip, domain, url and email canonical forms)
 * share. Included only by those two files; everyone else uses ioc.h.
 *
 * The canonicalizers take a trimmed, refanged, valid UTF-8 value s[0..n)
 * (need not be NUL-terminated) and set *out to its canonical form copied
 * into arena a, or to NULL when the value is not valid for the type.
 * They return 0 (valid or not) or AM_ELIMIT (the arena is over its cap).
 * Reentrant.
 */
#ifndef ENG_IOC_INTERNAL_H
#define ENG_IOC_INTERNAL_H

#include "ioc.h"

#include <string.h>

/* ---- small byte helpers ------------------------------------------------------ */

static inline char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static inline bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline bool is_alnum(char c)
{
    return is_alpha(c) || is_digit(c);
}

static inline bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static inline bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static inline bool ieq(const char *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != lit[i])
            return false;
    return true;
}

/* Case-insensitive prefix test of s[0..n) against a lowercase literal. */
static inline bool iprefix(const char *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    return n >= m && ieq(s, m, lit);
}

static inline void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_space((*s)[*n - 1]))
        (*n)--;
}

static inline char *lower_dup(am_arena_t *a, const char *s, size_t n)
{
    char *p = am_arena_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        p[i] = lower(s[i]);
    p[n] = '\0';
    return p;
}

/* ---- canonical forms implemented in ioc_host.c ------------------------------- */

/* Modes of ioc_canon_domain(); 0 is a trusted (declared-field) value. */
enum {
    IOC_DOM_STRICT = 1,   /* public suffix required, at least two labels */
    IOC_DOM_FREETEXT = 2, /* also the file-name and code-identifier rules */
    IOC_DOM_NAME = 4,     /* at least two labels (a declared domain) */
};

/* An IPv4 (optionally with ":port") or IPv6 address (optionally in
 * brackets, with a zone or "]:port") to dotted decimal / RFC 5952 form. */
int ioc_canon_ip(const char **out, const char *s, size_t n, bool strict, am_arena_t *a);

/* A host name (optionally with ":port" or a trailing dot; IDN allowed) to
 * lowercase A-labels; mode is a set of IOC_DOM_* bits. */
int ioc_canon_domain(const char **out, const char *s, size_t n, int mode, am_arena_t *a);

/* A scheme://authority... url with its scheme lowercased and its host in
 * canonical form; strict also trims prose punctuation at the end. */
int ioc_canon_url(const char **out, const char *s, size_t n, bool strict, am_arena_t *a);

/* An address (display name and "mailto:" dropped) as lowercase local@domain. */
int ioc_canon_email(const char **out, const char *s, size_t n, bool strict, am_arena_t *a);

/* True when s[0..n) is made of digits and dots only (an IPv4 spelling). */
bool ioc_numeric_host(const char *s, size_t n);

#endif
