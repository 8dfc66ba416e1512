/*
 * engine/ioc.h - indicators inside the engine: refanging, canonical forms,
 * the per-alert indicator vector and the shared PCRE2 rule set. Internal to
 * engine/ (the public part is in eng.h). docs/indicators.md is the reference
 * for every rule applied here.
 *
 * Thread safety: every function here is reentrant. Compiled rule sets
 * (eng_rules_t) are immutable after eng_rules_load() and may be used by any
 * number of threads at once. The public-suffix list is loaded once per
 * process (pthread_once) on first use.
 */
#ifndef ENG_IOC_H
#define ENG_IOC_H

#include "eng.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* Longest value accepted per type (bytes, after trimming). */
#define IOC_MAX_URL     8192
#define IOC_MAX_DOMAIN  253
#define IOC_MAX_EMAIL   320
#define IOC_MAX_ACCOUNT 512

/* Bound of every PCRE2 match run by the engine (match limit, depth limit). */
#define IOC_MATCH_LIMIT 1000000
#define IOC_DEPTH_LIMIT 1000

/* Bit of type t in a type mask; IOC_MASK_ALL selects every type. */
#define IOC_BIT(t)   (1u << (unsigned)(t))
#define IOC_MASK_ALL ((1u << (unsigned)ENG_IOC__COUNT) - 1u)

/* ---- the indicator vector of one alert ------------------------------------ */

/*
 * A growable array of indicators in an arena, de-duplicated on (type, value)
 * through a hash index (open addressing, load at most one half), so adding
 * costs O(1) whatever the count. Zero-initialize it ({0}); it needs no
 * disposal (the arena owns the items and the index). Items may be given at
 * start ({.items, .n, .cap}) or their provenance edited in place; their type
 * and value must not change once added. Not thread-safe (like the arena).
 */
typedef struct {
    eng_indicator_t *items;
    size_t n, cap;
    uint32_t *slots; /* index + 1 of an item, 0 for an empty slot */
    size_t nslots;   /* a power of two, 0 before the first add */
    size_t indexed;  /* items[0..indexed) are in the index */
} ioc_vec_t;

/*
 * Appends (t, canonical) unless an item with the same type and value is
 * already present (then nothing changes and 0 is returned: the first
 * provenance is kept). The strings are NOT copied: canonical, source_field
 * and origin must live at least as long as the arena (arena strings or
 * static/compiled-program strings). canonical must already be in canonical
 * form (eng_ioc_canonical or ioc_add_value do that).
 * Returns 0; AM_ELIMIT when the item is new and the vector already holds
 * ENG_MAX_INDICATORS items (nothing added), or when the arena is over its cap.
 */
int ioc_vec_add(ioc_vec_t *v, am_arena_t *a, eng_ioc_type_t t, const char *canonical,
                const char *source_field, const char *origin);

/*
 * The one call an executor needs for a value taken from a payload: refangs
 * and canonicalizes value (len bytes, need not be NUL-terminated) as type t
 * in trusted (strict=false: declared field) or strict (free text) mode, and
 * appends it with ioc_vec_add() together with the indicators it implies:
 *   - a url adds its host as a domain (or as an ip when the host is an IP
 *     literal), checked in the same mode;
 *   - a trusted domain whose value is an IP address is added as an ip;
 *   - a strict email whose domain is an address literal ("a@192.0.2.1",
 *     "a@[IPv6:2001:db8::1]") adds that ip, one whose domain has no public
 *     suffix is added as an account ("user@realm");
 *   - a trusted domain needs at least two labels ("grafana" is no domain);
 * Only types whose bit is in mask are added (IOC_MASK_ALL for all).
 * A value that is not valid adds nothing and is not an error. source_field
 * and origin are stored as given (not copied, see ioc_vec_add).
 * Returns 0, AM_ELIMIT (the vector is full, or the arena over its cap;
 * indicators added before the bound stay).
 */
int ioc_add_value(ioc_vec_t *v, am_arena_t *a, eng_ioc_type_t t, const char *value, size_t len,
                  bool strict, unsigned mask, const char *source_field, const char *origin);

/*
 * Adds c, already canonical as type t (from ioc_canonical() in the same
 * mode), and for a url also its host, as ioc_add_value() does.
 * Returns 0 or AM_ELIMIT.
 */
int ioc_add_canonical(ioc_vec_t *v, am_arena_t *a, eng_ioc_type_t t, const char *c, bool strict,
                      unsigned mask, const char *source_field, const char *origin);

/*
 * The host of the authority after the first "://" of s[0..n), or at s
 * when there is no "://" (any scheme, also one that is no url: "tcp://",
 * "h00ps://", or a url that failed validation), strictly checked and added
 * as an ip or a domain: userinfo and port skipped, an IPv6 literal with or
 * without brackets, else the longest run of host-name bytes. Adds nothing
 * when there is none. Returns 0 or AM_ELIMIT.
 */
int ioc_add_host_after_scheme(ioc_vec_t *v, am_arena_t *a, const char *s, size_t n, unsigned mask,
                              const char *source_field, const char *origin);

/* ---- refanging and canonical forms ---------------------------------------- */

/*
 * Writes the refanged form of in[0..len) to out and returns its length (out
 * gets a NUL after it). The result is never longer than the input, so out
 * needs len + 1 bytes; out may equal in (in-place). Rewrites, anywhere in the
 * text: [.] (.) {.} [dot] (dot) \. -> "."; [:] -> ":"; [://] -> "://";
 * [at] (at) [@] -> "@" (bracket words any case); and, where a scheme starts
 * (not preceded by a letter or digit, followed by ":", "[:]" or "[://]"):
 * hxxp/hxxps (any case) -> http/https, fxp -> ftp.
 */
size_t ioc_refang(char *out, const char *in, size_t len);

/* True when ioc_refang() would change in[0..len) (cheap pre-check). */
bool ioc_is_defanged(const char *in, size_t len);

/* Points *s / *len at the refanged form of the text: unchanged when it is
 * not defanged, else a copy refanged into arena a. Returns 0 or AM_ELIMIT
 * (arena over its cap). */
int ioc_refang_in(const char **s, size_t *len, am_arena_t *a);

/*
 * Like eng_ioc_canonical() but tells an invalid value (0 with *out NULL)
 * from an arena over its cap (AM_ELIMIT).
 */
int ioc_canonical(const char **out, eng_ioc_type_t t, const char *value, size_t len, bool strict,
                  am_arena_t *a);

/*
 * Splits a canonical url into its host (no brackets for IPv6, no port) and
 * copies the host into the arena. Returns NULL when there is none or the
 * arena is over its cap.
 */
const char *ioc_url_host(const char *canonical_url, am_arena_t *a);

/* True when the canonical ip is loopback, private (RFC 1918, RFC 4193),
 * link-local, CGNAT (100.64/10) or unspecified. Such ips are kept; callers
 * may flag them. */
bool ioc_ip_is_private(const char *canonical_ip);

/* True when the canonical ip is loopback (127/8, ::1) or unspecified
 * (0.0.0.0, ::): kept like every address, never worth a lookup; a caller
 * that flags private ranges flags these too (docs/indicators.md). */
bool ioc_ip_is_local(const char *canonical_ip);

/* ---- PCRE2 helpers for every pattern the engine runs ---------------------- */

/*
 * The process-wide match context that sets IOC_MATCH_LIMIT and
 * IOC_DEPTH_LIMIT (and the heap limit of the interpreter). Created once,
 * never modified afterwards: pass it to every pcre2_match() so that a
 * pathological payload costs bounded time. NULL only when out of memory at
 * first use (pcre2_match then runs with the library defaults).
 */
pcre2_match_context *ioc_match_context(void);

/*
 * A PCRE2 general context whose allocations come from arena a (frees are
 * no-ops). Use it to create per-call match data without touching the heap:
 *   pcre2_match_data *md = pcre2_match_data_create_from_pattern(code,
 *                                                   ioc_pcre2_context(a));
 * Returns NULL when the arena is exhausted.
 */
pcre2_general_context *ioc_pcre2_context(am_arena_t *a);

/* ---- the shared rule set (eng_rules_t, compiled from indicators.yaml) ------ */

/*
 * Scans text[0..len) with every rule of r in one pass and appends what it
 * finds through ioc_add_value(strict = true, mask), in the order the
 * indicators appear in the text (a url's host right after the url). The
 * text is refanged first. Context rules that need the surrounding text are
 * applied here: an IPv4 after "version"/"build"/... is a version, a dotted
 * name followed by "=" or ":" is a key, "NT AUTHORITY\x" is one account,
 * typographic quotes around a candidate are trimmed.
 * origin: stored with each indicator; NULL means the matching rule's own
 * "indicators.yaml:LINE". A scan that hits the PCRE2 match limit stops
 * there; what was found before is kept (no error).
 * Returns 0 or AM_ELIMIT (vector full, or the arena over its cap).
 */
int ioc_extract(ioc_vec_t *v, am_arena_t *a, const eng_rules_t *r, const char *text, size_t len,
                unsigned mask, const char *source_field, const char *origin);

#endif
