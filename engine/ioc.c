/*
 * engine/ioc.c - indicator canonical forms: refanging, type names, hashes,
 * accounts, the per-type dispatch and the per-alert indicator vector. The
 * network forms (ip, domain, url, email) are in ioc_host.c. See ioc.h and
 * docs/indicators.md.
 */
#include "ioc_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- type names ------------------------------------------------------------ */

static const char *const type_names[ENG_IOC__COUNT] = {
    [ENG_IOC_IP] = "ip",
    [ENG_IOC_DOMAIN] = "domain",
    [ENG_IOC_URL] = "url",
    [ENG_IOC_EMAIL] = "email",
    [ENG_IOC_HASH_MD5] = "hash_md5",
    [ENG_IOC_HASH_SHA1] = "hash_sha1",
    [ENG_IOC_HASH_SHA256] = "hash_sha256",
    [ENG_IOC_ACCOUNT] = "account",
};

const char *eng_ioc_type_name(eng_ioc_type_t t)
{
    if ((unsigned)t >= ENG_IOC__COUNT)
        return "unknown";
    return type_names[t];
}

int eng_ioc_type_parse(eng_ioc_type_t *out, const char *name, size_t len)
{
    if (name == NULL)
        return AM_EINVAL;
    for (unsigned i = 0; i < ENG_IOC__COUNT; i++) {
        if (strlen(type_names[i]) == len && memcmp(type_names[i], name, len) == 0) {
            *out = (eng_ioc_type_t)i;
            return 0;
        }
    }
    return AM_EINVAL;
}

/* ---- process-wide state: PCRE2 match context ------------------------------- */

static pcre2_match_context *g_mctx;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void init_once(void)
{
    g_mctx = pcre2_match_context_create(NULL);
    if (g_mctx != NULL) {
        pcre2_set_match_limit(g_mctx, IOC_MATCH_LIMIT);
        pcre2_set_depth_limit(g_mctx, IOC_DEPTH_LIMIT);
        pcre2_set_heap_limit(g_mctx, 20000); /* KiB, interpreter only */
    }
}

pcre2_match_context *ioc_match_context(void)
{
    pthread_once(&g_once, init_once);
    return g_mctx;
}

static void *arena_malloc(PCRE2_SIZE n, void *ctx)
{
    return am_arena_alloc(ctx, n);
}

static void arena_nofree(void *p, void *ctx)
{
    (void)p;
    (void)ctx;
}

pcre2_general_context *ioc_pcre2_context(am_arena_t *a)
{
    return pcre2_general_context_create(arena_malloc, arena_nofree, a);
}

/* ---- refanging ---------------------------------------------------------------- */

/* Length of the defanged token at in[i] and its replacement, or 0. */
static size_t defang_at(const char *in, size_t len, size_t i, const char **rep)
{
    const char *s = in + i;
    size_t n = len - i;
    char c = s[0];
    if (c == '[' || c == '(' || c == '{') {
        char close = c == '[' ? ']' : c == '(' ? ')' : '}';
        if (n >= 3 && s[2] == close && (s[1] == '.' || s[1] == '@')) {
            *rep = s[1] == '.' ? "." : "@";
            return 3;
        }
        if (n >= 5 && s[4] == close && ieq(s + 1, 3, "dot")) {
            *rep = ".";
            return 5;
        }
        if (n >= 4 && s[3] == close && ieq(s + 1, 2, "at")) {
            *rep = "@";
            return 4;
        }
        if (c == '[' && n >= 3 && s[1] == ':' && s[2] == ']') {
            *rep = ":";
            return 3;
        }
        if (c == '[' && n >= 5 && memcmp(s, "[://]", 5) == 0) {
            *rep = "://";
            return 5;
        }
        if (c == '[' && n >= 3 && s[1] == '/' && s[2] == ']') {
            *rep = "/";
            return 3;
        }
        return 0;
    }
    if (c == '\\' && n >= 2 && s[1] == '.') {
        *rep = ".";
        return 2;
    }
    if ((c == 'h' || c == 'H' || c == 'f' || c == 'F') && (i == 0 || !is_alnum(in[i - 1]))) {
        size_t k;
        const char *out;
        if (iprefix(s, n, "hxxps")) {
            k = 5;
            out = "https";
        } else if (iprefix(s, n, "hxxp")) {
            k = 4;
            out = "http";
        } else if (iprefix(s, n, "fxp")) {
            k = 3;
            out = "ftp";
        } else {
            return 0;
        }
        /* only where a scheme starts: followed by ":", "[:]" or "[://]" */
        if (n > k && (s[k] == ':' || (s[k] == '[' && n > k + 1 && s[k + 1] == ':'))) {
            *rep = out;
            return k;
        }
    }
    return 0;
}

static inline bool maybe_defang_char(char c)
{
    return c == '[' || c == '(' || c == '{' || c == '\\' || c == 'h' || c == 'H' || c == 'f' ||
           c == 'F';
}

bool ioc_is_defanged(const char *in, size_t len)
{
    const char *rep;
    for (size_t i = 0; i < len; i++)
        if (maybe_defang_char(in[i]) && defang_at(in, len, i, &rep) > 0)
            return true;
    return false;
}

int ioc_refang_in(const char **s, size_t *len, am_arena_t *a)
{
    if (!ioc_is_defanged(*s, *len))
        return 0;
    char *buf = am_arena_alloc(a, *len + 1);
    if (buf == NULL)
        return AM_ELIMIT;
    *len = ioc_refang(buf, *s, *len);
    *s = buf;
    return 0;
}

static inline bool word_byte(char c)
{
    return is_alnum(c) || (unsigned char)c >= 0x80;
}

/* True when the bracketed dot or at token in[i..i+k) stands between two
 * words with one space on each side ("example [.] com", "bob [at] x.com"):
 * the spaces go with the token. A parenthesized word "(at)" does not count
 * (prose: "meet (at) noon"). */
static bool spaced_token(const char *in, size_t len, size_t i, size_t k, const char *rep)
{
    if ((rep[0] != '.' && rep[0] != '@') || rep[1] != '\0' || in[i] == '\\')
        return false;
    if (in[i] == '(' && k == 4)
        return false;
    return i >= 2 && in[i - 1] == ' ' && word_byte(in[i - 2]) && i + k + 1 < len &&
           in[i + k] == ' ' && word_byte(in[i + k + 1]);
}

size_t ioc_refang(char *out, const char *in, size_t len)
{
    size_t o = 0, i = 0;
    while (i < len) {
        const char *rep;
        size_t k = maybe_defang_char(in[i]) ? defang_at(in, len, i, &rep) : 0;
        if (k > 0) {
            size_t m = strlen(rep); /* m <= k: never grows */
            if (spaced_token(in, len, i, k, rep) && o > 0 && out[o - 1] == ' ') {
                o--; /* the space before; the one after is skipped below */
                k++;
            }
            memmove(out + o, rep, m);
            o += m;
            i += k;
        } else {
            out[o++] = in[i++];
        }
    }
    out[o] = '\0';
    return o;
}

/* ---- hashes ---------------------------------------------------------------------- */

static int canon_hash(const char **out, eng_ioc_type_t t, const char *s, size_t n, bool strict,
                      am_arena_t *a)
{
    *out = NULL;
    size_t want = t == ENG_IOC_HASH_MD5 ? 32 : t == ENG_IOC_HASH_SHA1 ? 40 : 64;
    if (n != want)
        return 0;
    bool letter = false, same = true;
    for (size_t i = 0; i < n; i++) {
        if (!is_hex(s[i]))
            return 0;
        letter |= !is_digit(s[i]);
        same &= lower(s[i]) == lower(s[0]);
    }
    /* free text: a run of digits is a number, a run of one digit is padding */
    if (strict && (!letter || same))
        return 0;
    *out = lower_dup(a, s, n);
    return *out ? 0 : AM_ELIMIT;
}

/* ---- account -------------------------------------------------------------------- */

static bool is_hive(const char *s, size_t n)
{
    static const char *const hives[] = {"hklm", "hkcu", "hkcr", "hku", "hkcc", "hkpd"};
    for (size_t i = 0; i < AM_ARRAY_LEN(hives); i++)
        if (ieq(s, n, hives[i]))
            return true;
    return iprefix(s, n, "hkey_") || ieq(s, n, "registry");
}

/* File extensions that end a path segment, never a user name. */
static bool is_file_ext(const char *s, size_t n)
{
    static const char *const exts[] = {
        "exe", "dll",  "sys", "ps1",  "psm1", "bat",  "cmd", "vbs", "js",  "jse",  "hta", "lnk",
        "msi", "scr",  "txt", "log",  "csv",  "json", "xml", "ini", "cfg", "dat",  "tmp", "pdf",
        "doc", "docx", "xls", "xlsx", "zip",  "rar",  "7z",  "py",  "sh",  "evtx", "etl",
    };
    for (size_t i = 0; i < AM_ARRAY_LEN(exts); i++)
        if (ieq(s, n, exts[i]))
            return true;
    return false;
}

static int canon_account(const char **out, const char *s, size_t n, bool strict, am_arena_t *a)
{
    *out = NULL;
    if (n == 0 || n > IOC_MAX_ACCOUNT)
        return 0;
    char *d = am_arena_alloc(a, n + 1);
    if (d == NULL)
        return AM_ELIMIT;
    size_t o = 0, slashes = 0, bs = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
        if (c == '\\') {
            if (i > 0 && s[i - 1] == '\\')
                continue; /* DOMAIN\\user: one backslash */
            bs = o;
            slashes++;
        }
        d[o++] = lower((char)c);
    }
    d[o] = '\0';
    if (slashes > 1)
        return 0; /* a path, not an account */
    if (slashes == 1) {
        if (bs == 0 || bs == o - 1)
            return 0; /* \\server or DOMAIN\ */
        const char *dom = d;
        size_t dl = bs;
        if (memchr(dom, ':', dl) != NULL || memchr(dom, '/', dl) != NULL || is_hive(dom, dl))
            return 0; /* C:\x, HKLM\Software */
        if (memchr(d + bs + 1, '/', o - bs - 1) != NULL)
            return 0;
    }
    if (strict) {
        const char *dot = slashes ? memrchr(d + bs, '.', o - bs) : NULL;
        if (dot != NULL && is_file_ext(dot + 1, (size_t)(d + o - dot - 1)))
            return 0; /* %TEMP%\a.ps1 */
        for (size_t i = 0; i < o; i++)
            if (is_space(d[i]) && !(slashes == 1 && strncmp(d, "nt authority\\", 13) == 0))
                return 0;
    }
    *out = d;
    return 0;
}

/* ---- dispatch -------------------------------------------------------------------- */

/* Well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF): every
 * stored value must be valid text for the database. */
static bool utf8_valid(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        unsigned min, cp;
        if ((c & 0xe0) == 0xc0) {
            k = 1;
            min = 0x80;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2;
            min = 0x800;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3;
            min = 0x10000;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + k >= n)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

int ioc_canonical(const char **out, eng_ioc_type_t t, const char *value, size_t len, bool strict,
                  am_arena_t *a)
{
    *out = NULL;
    if (value == NULL)
        return 0;
    trim(&value, &len);
    if (len == 0 || len > IOC_MAX_URL)
        return 0;
    const char *before = value;
    int rc = ioc_refang_in(&value, &len, a);
    if (rc != 0)
        return rc;
    if (value != before)
        trim(&value, &len);
    if (!utf8_valid(value, len))
        return 0;
    switch (t) {
    case ENG_IOC_IP:
        rc = ioc_canon_ip(out, value, len, strict, a);
        break;
    case ENG_IOC_DOMAIN:
        rc = ioc_canon_domain(out, value, len,
                              strict ? IOC_DOM_STRICT | IOC_DOM_FREETEXT : IOC_DOM_NAME, a);
        break;
    case ENG_IOC_URL:
        rc = ioc_canon_url(out, value, len, strict, a);
        break;
    case ENG_IOC_EMAIL:
        rc = ioc_canon_email(out, value, len, strict, a);
        break;
    case ENG_IOC_HASH_MD5:
    case ENG_IOC_HASH_SHA1:
    case ENG_IOC_HASH_SHA256:
        rc = canon_hash(out, t, value, len, strict, a);
        break;
    case ENG_IOC_ACCOUNT:
        rc = canon_account(out, value, len, strict, a);
        break;
    default:
        break;
    }
    /* A canonical value is a fixed point: read again it stays the same. One
     * that still reads as defanged (nested "x[[.].]y", or "DOMAIN\\.user",
     * whose "\\" became "\" and now spells "\.") would be refanged into
     * another value: it is ambiguous, so it is not valid. */
    if (rc == 0 && *out != NULL && ioc_is_defanged(*out, strlen(*out)))
        *out = NULL;
    return rc;
}

const char *eng_ioc_canonical(eng_ioc_type_t t, const char *value, size_t len, bool strict,
                              am_arena_t *a)
{
    const char *out;
    if (ioc_canonical(&out, t, value, len, strict, a) < 0)
        return NULL;
    return out;
}

/* ---- the vector ------------------------------------------------------------------ */

/* FNV-1a over the type and the value. */
static uint64_t item_hash(eng_ioc_type_t t, const char *s)
{
    uint64_t h = 0xcbf29ce484222325u ^ (uint64_t)t;
    h *= 0x100000001b3u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3u;
    }
    return h;
}

/* The slot of (t, value): the one holding it, or the empty one where it
 * belongs. nslots is a power of two and never full. */
static size_t find_slot(const ioc_vec_t *v, eng_ioc_type_t t, const char *value, uint64_t h)
{
    size_t mask = v->nslots - 1, i = (size_t)h & mask;
    for (;;) {
        uint32_t k = v->slots[i];
        if (k == 0)
            return i;
        const eng_indicator_t *it = &v->items[k - 1];
        if (it->type == t && strcmp(it->value, value) == 0)
            return i;
        i = (i + 1) & mask;
    }
}

/* Makes the index cover items[0..n) with room for one more item at a load
 * of at most one half. Items appended by hand (or present when the vector
 * was built from an array) are indexed here. Returns 0 or AM_ELIMIT. */
static int index_items(ioc_vec_t *v, am_arena_t *a)
{
    if (v->nslots < 2 * (v->n + 1)) {
        size_t ns = v->nslots ? v->nslots : 16;
        while (ns < 2 * (v->n + 1))
            ns *= 2;
        uint32_t *slots = am_arena_calloc(a, ns, sizeof(*slots));
        if (slots == NULL)
            return AM_ELIMIT;
        v->slots = slots;
        v->nslots = ns;
        v->indexed = 0;
    }
    for (; v->indexed < v->n; v->indexed++) {
        const eng_indicator_t *it = &v->items[v->indexed];
        size_t i = find_slot(v, it->type, it->value, item_hash(it->type, it->value));
        if (v->slots[i] == 0)
            v->slots[i] = (uint32_t)v->indexed + 1;
    }
    return 0;
}

int ioc_vec_add(ioc_vec_t *v, am_arena_t *a, eng_ioc_type_t t, const char *canonical,
                const char *source_field, const char *origin)
{
    int rc = index_items(v, a);
    if (rc != 0)
        return rc;
    size_t slot = find_slot(v, t, canonical, item_hash(t, canonical));
    if (v->slots[slot] != 0)
        return 0;
    if (v->n >= ENG_MAX_INDICATORS)
        return AM_ELIMIT;
    eng_indicator_t *items = am_arena_grow(a, v->items, v->n, &v->cap, sizeof(*items));
    if (items == NULL)
        return AM_ELIMIT;
    v->items = items;
    v->items[v->n++] = (eng_indicator_t){
        .type = t, .value = canonical, .source_field = source_field, .origin = origin};
    v->slots[slot] = (uint32_t)v->n;
    v->indexed = v->n;
    return 0;
}

static int add_if(ioc_vec_t *v, am_arena_t *a, unsigned mask, eng_ioc_type_t t, const char *val,
                  const char *sf, const char *origin)
{
    if (val == NULL || !(mask & IOC_BIT(t)))
        return 0;
    return ioc_vec_add(v, a, t, val, sf, origin);
}

/* A host (no brackets, no port) as an ip or a domain indicator. */
static int add_host(ioc_vec_t *v, am_arena_t *a, const char *host, size_t n, bool strict,
                    unsigned mask, const char *sf, const char *origin)
{
    const char *hc;
    int rc;
    if (memchr(host, ':', n) != NULL || ioc_numeric_host(host, n)) {
        rc = ioc_canon_ip(&hc, host, n, false, a);
        if (rc < 0)
            return rc;
        return add_if(v, a, mask, ENG_IOC_IP, hc, sf, origin);
    }
    rc = ioc_canon_domain(&hc, host, n, strict ? IOC_DOM_STRICT : IOC_DOM_NAME, a);
    if (rc < 0)
        return rc;
    return add_if(v, a, mask, ENG_IOC_DOMAIN, hc, sf, origin);
}

int ioc_add_canonical(ioc_vec_t *v, am_arena_t *a, eng_ioc_type_t t, const char *c, bool strict,
                      unsigned mask, const char *source_field, const char *origin)
{
    int rc = add_if(v, a, mask, t, c, source_field, origin);
    if (rc < 0 || t != ENG_IOC_URL)
        return rc;
    /* the host of a url is also an indicator */
    const char *host = ioc_url_host(c, a);
    if (host == NULL)
        return AM_ELIMIT;
    return add_host(v, a, host, strlen(host), strict, mask, source_field, origin);
}

/* The address literal of a free-text e-mail candidate ("a@127.0.0.1",
 * "x@[192.0.2.1]", "x@[IPv6:2001:db8::1]") as an ip; *added tells whether
 * the domain part was one. */
static int add_email_literal(ioc_vec_t *v, am_arena_t *a, const char *value, size_t len,
                             unsigned mask, const char *sf, const char *origin, bool *added)
{
    *added = false;
    const char *at = memrchr(value, '@', len);
    if (at == NULL)
        return 0;
    const char *d = at + 1;
    size_t dn = len - (size_t)(d - value);
    trim(&d, &dn);
    while (dn > 0 && strchr(">)]'\"", d[dn - 1]) != NULL && d[0] != '[')
        dn--;
    const char *ip;
    int rc = ioc_canon_ip(&ip, d, dn, true, a);
    if (rc < 0 || ip == NULL)
        return rc;
    *added = true;
    return add_if(v, a, mask, ENG_IOC_IP, ip, sf, origin);
}

int ioc_add_value(ioc_vec_t *v, am_arena_t *a, eng_ioc_type_t t, const char *value, size_t len,
                  bool strict, unsigned mask, const char *source_field, const char *origin)
{
    const char *c;
    int rc;
    if ((unsigned)t >= ENG_IOC__COUNT)
        return 0;
    if (t == ENG_IOC_DOMAIN && !strict) {
        /* a hostname field holding an address */
        rc = ioc_canonical(&c, ENG_IOC_IP, value, len, false, a);
        if (rc < 0)
            return rc;
        if (c != NULL)
            return add_if(v, a, mask, ENG_IOC_IP, c, source_field, origin);
    }
    rc = ioc_canonical(&c, t, value, len, strict, a);
    if (rc < 0)
        return rc;
    if (c == NULL && t == ENG_IOC_EMAIL && strict) {
        bool literal;
        rc = add_email_literal(v, a, value, len, mask, source_field, origin, &literal);
        if (rc < 0 || literal)
            return rc;
        /* user@realm without a public suffix: an account */
        rc = ioc_canonical(&c, ENG_IOC_EMAIL, value, len, false, a);
        if (rc < 0)
            return rc;
        return add_if(v, a, mask, ENG_IOC_ACCOUNT, c, source_field, origin);
    }
    if (c == NULL)
        return 0;
    return ioc_add_canonical(v, a, t, c, strict, mask, source_field, origin);
}

int ioc_add_host_after_scheme(ioc_vec_t *v, am_arena_t *a, const char *s, size_t n, unsigned mask,
                              const char *source_field, const char *origin)
{
    const char *sep = memmem(s, n, "://", 3);
    const char *p = sep ? sep + 3 : s, *end = s + n;
    /* the authority: up to a path, query, fragment or anything a host never holds */
    const char *e = p;
    while (e < end && *e != '/' && *e != '?' && *e != '#' && *e != '\\' && !is_space(*e))
        e++;
    const char *at = memrchr(p, '@', (size_t)(e - p));
    if (at != NULL)
        p = at + 1;
    if (p < e && *p == '[') {
        const char *close = memchr(p, ']', (size_t)(e - p));
        if (close != NULL) {
            const char *ip;
            int rc = ioc_canon_ip(&ip, p, (size_t)(close + 1 - p), true, a);
            if (rc < 0)
                return rc;
            if (ip != NULL)
                return add_if(v, a, mask, ENG_IOC_IP, ip, source_field, origin);
        }
        p++; /* "http://[example.com": a stray bracket */
    }
    size_t colons = 0;
    for (const char *q = p; q < e; q++)
        colons += *q == ':';
    if (colons >= 2) {
        /* an IPv6 address without brackets: "http://2001:db8::1" */
        const char *ip;
        int rc = ioc_canon_ip(&ip, p, (size_t)(e - p), true, a);
        if (rc < 0 || ip != NULL)
            return rc < 0 ? rc : add_if(v, a, mask, ENG_IOC_IP, ip, source_field, origin);
    }
    /* the host name: the longest run of name bytes */
    const char *h = p;
    while (h < e &&
           (is_alnum(*h) || *h == '.' || *h == '-' || *h == '_' || (unsigned char)*h >= 0x80))
        h++;
    while (h > p && (h[-1] == '.' || h[-1] == '-'))
        h--;
    if (h == p)
        return 0;
    return ioc_add_value(v, a, ioc_numeric_host(p, (size_t)(h - p)) ? ENG_IOC_IP : ENG_IOC_DOMAIN,
                         p, (size_t)(h - p), true, mask, source_field, origin);
}
