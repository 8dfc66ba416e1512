/*
 * engine/ioc_host.c - canonical forms of network indicators: ip, domain
 * (public suffix list, IDN), url and email. See ioc_internal.h and
 * docs/indicators.md.
 */
#include "ioc_internal.h"

#include <arpa/inet.h>
#include <idn2.h>
#include <libpsl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- process-wide state: the public suffix list ----------------------------- */

static const psl_ctx_t *g_psl;
static pthread_once_t g_psl_once = PTHREAD_ONCE_INIT;

static void psl_init(void)
{
    /* psl_latest() loads whichever is newer: the list built into libpsl or
     * the distribution's file (Debian: /usr/share/publicsuffix). */
    g_psl = psl_latest(NULL);
    if (g_psl == NULL)
        g_psl = psl_builtin();
}

static const psl_ctx_t *psl(void)
{
    pthread_once(&g_psl_once, psl_init);
    return g_psl;
}

/* ---- ip ------------------------------------------------------------------------ */

/* Dotted decimal, four octets 0-255, no leading zeros, nothing else. */
static bool parse_ipv4(const char *s, size_t n)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= n || s[i] != '.')
                return false;
            i++;
        }
        size_t start = i;
        unsigned v = 0;
        while (i < n && is_digit(s[i]) && i - start < 4)
            v = v * 10 + (unsigned)(s[i++] - '0');
        size_t d = i - start;
        if (d == 0 || d > 3 || v > 255 || (d > 1 && s[start] == '0'))
            return false;
    }
    return i == n;
}

static bool parse_port(const char *s, size_t n)
{
    if (n == 0 || n > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v <= 65535;
}

/* IPv6 text (no brackets, zone allowed) to RFC 5952 form in out. */
static bool ipv6_canon(char out[INET6_ADDRSTRLEN], const char *s, size_t n, bool strict)
{
    const char *pct = memchr(s, '%', n);
    if (pct != NULL) {
        if ((size_t)(pct - s) == n - 1)
            return false; /* empty zone id */
        n = (size_t)(pct - s);
    }
    if (n < 2 || n >= INET6_ADDRSTRLEN)
        return false;
    char tmp[INET6_ADDRSTRLEN];
    for (size_t i = 0; i < n; i++) {
        if (!is_hex(s[i]) && s[i] != ':' && s[i] != '.')
            return false;
        tmp[i] = s[i];
    }
    tmp[n] = '\0';
    unsigned char bin[16];
    if (inet_pton(AF_INET6, tmp, bin) != 1 ||
        inet_ntop(AF_INET6, bin, out, INET6_ADDRSTRLEN) == NULL)
        return false;
    /* free text: "ad::be" and "::" read like code, not addresses */
    return !strict || strpbrk(out, "0123456789") != NULL;
}

int ioc_canon_ip(const char **out, const char *s, size_t n, bool strict, am_arena_t *a)
{
    *out = NULL;
    if (strict) {
        while (n > 0 && s[n - 1] == '.')
            n--; /* end of a sentence */
        if (n > 1 && s[n - 1] == ':' && s[n - 2] != ':')
            n--; /* "fe80::1: error" */
    }
    if (n == 0 || n > 128)
        return 0;
    char buf[INET6_ADDRSTRLEN];
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL)
            return 0;
        size_t rest = n - (size_t)(close + 1 - s);
        if (rest > 0 && (close[1] != ':' || !parse_port(close + 2, rest - 1)))
            return 0;
        const char *in = s + 1;
        size_t inn = (size_t)(close - s - 1);
        if (iprefix(in, inn, "ipv6:")) {
            in += 5; /* an e-mail address literal: "[IPv6:2001:db8::1]" */
            inn -= 5;
        } else if (parse_ipv4(in, inn)) {
            *out = am_arena_strndup(a, in, inn); /* "[192.0.2.1]" */
            return *out ? 0 : AM_ELIMIT;
        }
        if (!ipv6_canon(buf, in, inn, strict))
            return 0;
        goto copy;
    }
    const char *colon = memchr(s, ':', n);
    if (colon == NULL) {
        if (!parse_ipv4(s, n))
            return 0;
        *out = am_arena_strndup(a, s, n);
        return *out ? 0 : AM_ELIMIT;
    }
    size_t host = (size_t)(colon - s);
    if (memchr(colon + 1, ':', n - host - 1) == NULL) {
        /* one colon: IPv4 with a port */
        if (!parse_ipv4(s, host) || !parse_port(colon + 1, n - host - 1))
            return 0;
        *out = am_arena_strndup(a, s, host);
        return *out ? 0 : AM_ELIMIT;
    }
    if (!ipv6_canon(buf, s, n, strict))
        return 0;
copy:
    *out = am_arena_strdup(a, buf);
    return *out ? 0 : AM_ELIMIT;
}

bool ioc_ip_is_private(const char *ip)
{
    unsigned char b[16];
    if (inet_pton(AF_INET, ip, b) == 1) {
        return b[0] == 10 || b[0] == 127 || b[0] == 0 || (b[0] == 172 && (b[1] & 0xf0) == 16) ||
               (b[0] == 192 && b[1] == 168) || (b[0] == 169 && b[1] == 254) ||
               (b[0] == 100 && (b[1] & 0xc0) == 64);
    }
    if (inet_pton(AF_INET6, ip, b) == 1) {
        static const unsigned char zero[15];
        if (memcmp(b, zero, 15) == 0 && (b[15] == 0 || b[15] == 1))
            return true;                                /* :: and ::1 */
        return (b[0] & 0xfe) == 0xfc ||                 /* fc00::/7 */
               (b[0] == 0xfe && (b[1] & 0xc0) == 0x80); /* fe80::/10 */
    }
    return false;
}

bool ioc_ip_is_local(const char *ip)
{
    unsigned char b[16];
    if (inet_pton(AF_INET, ip, b) == 1)
        return b[0] == 127 || (b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 0);
    if (inet_pton(AF_INET6, ip, b) == 1) {
        static const unsigned char zero[15];
        return memcmp(b, zero, 15) == 0 && (b[15] == 0 || b[15] == 1);
    }
    return false;
}

/* ---- domain --------------------------------------------------------------------- */

/* Last labels that are real TLDs and also common file extensions: in free
 * text "readme.md" or "payload.zip" is far more often a file than a host. */
static const char *const file_ext_tlds[] = {
    "zip", "mov", "md", "sh", "so", "pl", "ps", "rs", "cc", "ai", "app",
};

static bool is_file_ext_tld(const char *l, size_t n)
{
    for (size_t i = 0; i < AM_ARRAY_LEN(file_ext_tlds); i++)
        if (strlen(file_ext_tlds[i]) == n && memcmp(file_ext_tlds[i], l, n) == 0)
            return true;
    return false;
}

/* A spelling like System.Net.WebClient or Foo.Bar reads as code: some label
 * has a lowercase letter followed by an uppercase one, or the last label is
 * a capitalized word (Net, File; not COM). */
static bool looks_like_code(const char *s, size_t n)
{
    bool has_lower = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= 'a' && s[i] <= 'z')
            has_lower = true;
        if (i > 0 && s[i - 1] >= 'a' && s[i - 1] <= 'z' && s[i] >= 'A' && s[i] <= 'Z')
            return true;
    }
    if (!has_lower)
        return false;
    const char *dot = memrchr(s, '.', n);
    const char *tld = dot ? dot + 1 : s;
    if (tld >= s + n || tld[0] < 'A' || tld[0] > 'Z')
        return false;
    for (const char *p = tld + 1; p < s + n; p++)
        if (*p >= 'a' && *p <= 'z')
            return true;
    return false;
}

static bool psl_ok(const char *dom, const char *tld)
{
    const psl_ctx_t *p = psl();
    if (p == NULL)
        return false;
    if (!psl_is_public_suffix2(p, tld, PSL_TYPE_ICANN | PSL_TYPE_NO_STAR_RULE))
        return false;
    /* the name itself must be more than a suffix ("co.uk" is not a host) */
    return !psl_is_public_suffix2(p, dom, PSL_TYPE_ICANN | PSL_TYPE_NO_STAR_RULE);
}

/* IDN to A-labels; returns an arena copy, NULL + *over_cap when the arena is. */
static char *to_alabels(const char *s, size_t n, am_arena_t *a, bool *over_cap)
{
    char *tmp = am_arena_strndup(a, s, n);
    if (tmp == NULL) {
        *over_cap = true;
        return NULL;
    }
    uint8_t *res = NULL;
    int rc = idn2_lookup_u8((const uint8_t *)tmp, &res, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
    if (rc != IDN2_OK)
        rc = idn2_lookup_u8((const uint8_t *)tmp, &res, IDN2_NFC_INPUT | IDN2_TRANSITIONAL);
    if (rc != IDN2_OK)
        return NULL;
    char *copy = am_arena_strdup(a, (const char *)res);
    idn2_free(res);
    if (copy == NULL)
        *over_cap = true;
    return copy;
}

int ioc_canon_domain(const char **out, const char *s, size_t n, int mode, am_arena_t *a)
{
    *out = NULL;
    bool strict = mode & IOC_DOM_STRICT;
    const char *colon = memchr(s, ':', n);
    if (colon != NULL) {
        /* a Host header value: "evil.com:8080" */
        if (!parse_port(colon + 1, n - (size_t)(colon - s) - 1))
            return 0;
        n = (size_t)(colon - s);
    }
    if (n > 0 && s[n - 1] == '.')
        n--;
    if (n == 0 || n > 4 * IOC_MAX_DOMAIN)
        return 0;
    if ((mode & IOC_DOM_FREETEXT) && looks_like_code(s, n))
        return 0;
    bool ascii = true;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            ascii = false;
    char *d;
    if (ascii) {
        d = lower_dup(a, s, n);
        if (d == NULL)
            return AM_ELIMIT;
    } else {
        bool over_cap = false;
        d = to_alabels(s, n, a, &over_cap);
        if (d == NULL)
            return over_cap ? AM_ELIMIT : 0;
        for (char *p = d; *p; p++)
            *p = lower(*p);
        n = strlen(d);
        if (n > 0 && d[n - 1] == '.')
            d[--n] = '\0'; /* an ideographic full stop became "." */
    }
    if (n > IOC_MAX_DOMAIN)
        return 0;
    /* labels: 1-63 of [a-z0-9-] (trusted also '_'), no edge hyphen */
    size_t labels = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && d[i] != '.') {
            char c = d[i];
            if (!(is_alnum(c) || c == '-' || (c == '_' && !strict)))
                return 0;
            continue;
        }
        size_t ll = i - start;
        if (ll == 0 || ll > 63 || d[start] == '-' || d[i - 1] == '-')
            return 0;
        labels++;
        start = i + 1;
    }
    const char *tld = memrchr(d, '.', n);
    tld = tld ? tld + 1 : d;
    bool numeric = true;
    for (const char *p = tld; *p; p++)
        if (!is_digit(*p))
            numeric = false;
    if (numeric)
        return 0; /* "1.2.3.4.5", versions: not names */
    if ((mode & IOC_DOM_NAME) && labels < 2)
        return 0; /* "grafana", "localhost": a host's short name, no domain */
    if (strict) {
        if (labels < 2 || !psl_ok(d, tld))
            return 0;
        if ((mode & IOC_DOM_FREETEXT) && is_file_ext_tld(tld, strlen(tld)))
            return 0;
    }
    *out = d;
    return 0;
}

/* ---- url ------------------------------------------------------------------------ */

/* Strips trailing prose punctuation, keeping closers balanced inside. */
static size_t strip_trailing(const char *s, size_t n)
{
    for (;;) {
        if (n == 0)
            return 0;
        char c = s[n - 1];
        if (c != '\0' && strchr(".,;:!?'\"", c) != NULL) {
            n--;
            continue;
        }
        if (n >= 3 && (unsigned char)s[n - 3] == 0xe2 && (unsigned char)s[n - 2] == 0x80 &&
            ((unsigned char)s[n - 1] == 0x99 || (unsigned char)s[n - 1] == 0x9d)) {
            n -= 3; /* closing single/double quotation mark */
            continue;
        }
        if (n >= 2 && (unsigned char)s[n - 2] == 0xc2 && (unsigned char)s[n - 1] == 0xbb) {
            n -= 2; /* right guillemet */
            continue;
        }
        char open = c == ')' ? '(' : c == ']' ? '[' : c == '}' ? '{' : c == '>' ? '<' : 0;
        if (open == 0)
            return n;
        size_t opens = 0, closes = 0;
        for (size_t i = 0; i < n; i++) {
            opens += s[i] == open;
            closes += s[i] == c;
        }
        if (closes <= opens)
            return n;
        n--;
    }
}

typedef struct {
    size_t scheme_len;     /* before "://" */
    size_t auth, auth_end; /* authority [auth, auth_end) */
    size_t host, host_end; /* host inside the authority (brackets included) */
} url_parts_t;

static bool split_url(url_parts_t *u, const char *s, size_t n)
{
    const char *sep = memmem(s, n, "://", 3);
    if (sep == NULL || sep == s)
        return false;
    u->scheme_len = (size_t)(sep - s);
    if (!is_alpha(s[0]))
        return false;
    for (size_t i = 1; i < u->scheme_len; i++)
        if (!is_alnum(s[i]) && s[i] != '+' && s[i] != '-' && s[i] != '.')
            return false;
    u->auth = u->scheme_len + 3;
    size_t e = u->auth;
    while (e < n && s[e] != '/' && s[e] != '?' && s[e] != '#')
        e++;
    u->auth_end = e;
    size_t h = u->auth;
    for (size_t i = u->auth; i < e; i++)
        if (s[i] == '@')
            h = i + 1;
    u->host = h;
    if (h < e && s[h] == '[') {
        const char *close = memchr(s + h, ']', e - h);
        if (close == NULL)
            return false;
        u->host_end = (size_t)(close - s) + 1;
    } else {
        size_t i = h;
        while (i < e && s[i] != ':')
            i++;
        u->host_end = i;
    }
    if (u->host_end == u->host)
        return false;
    if (u->host_end < e) {
        if (s[u->host_end] != ':')
            return false;
        size_t pl = e - u->host_end - 1;
        if (pl > 0 && !parse_port(s + u->host_end + 1, pl))
            return false;
    }
    return true;
}

bool ioc_numeric_host(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i]) && s[i] != '.')
            return false;
    return true;
}

/* Length up to the first Unicode space (U+00A0, U+1680, U+2000-U+200B,
 * U+2028, U+2029, U+202F, U+205F, U+3000) or full-width or CJK bracket
 * (U+FF1C, U+FF1E, U+3008-U+3011): in prose a URL ends there too. */
static size_t cut_at_unicode_space(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] < 0xc2)
            continue;
        if (i + 2 < n && s[i] == 0xef && s[i + 1] == 0xbc && (s[i + 2] == 0x9c || s[i + 2] == 0x9e))
            return i;
        if (i + 2 < n && s[i] == 0xe3 && s[i + 1] == 0x80 && s[i + 2] >= 0x88 && s[i + 2] <= 0x91)
            return i;
        if (i + 2 < n && s[i] == 0xe1 && s[i + 1] == 0x9a && s[i + 2] == 0x80)
            return i;
        if (s[i] == 0xc2 && s[i + 1] == 0xa0)
            return i;
        if (i + 2 < n && s[i] == 0xe2 && s[i + 1] == 0x80 &&
            (s[i + 2] <= 0x8b || s[i + 2] == 0xa8 || s[i + 2] == 0xa9 || s[i + 2] == 0xaf))
            return i;
        if (i + 2 < n && s[i] == 0xe2 && s[i + 1] == 0x81 && s[i + 2] == 0x9f)
            return i;
        if (i + 2 < n && s[i] == 0xe3 && s[i + 1] == 0x80 && s[i + 2] == 0x80)
            return i;
    }
    return n;
}

int ioc_canon_url(const char **out, const char *s, size_t n, bool strict, am_arena_t *a)
{
    *out = NULL;
    if (strict)
        n = strip_trailing(s, cut_at_unicode_space(s, n));
    if (n == 0 || n > IOC_MAX_URL)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == '"' || c == '<')
            return 0;
    }
    url_parts_t u;
    if (!split_url(&u, s, n))
        return 0;
    const char *hs = s + u.host;
    size_t hn = u.host_end - u.host;
    const char *host;
    int rc;
    if (hs[0] == '[') {
        char buf[INET6_ADDRSTRLEN];
        if (!ipv6_canon(buf, hs + 1, hn - 2, false))
            return 0;
        host = am_arena_printf(a, "[%s]", buf);
        if (host == NULL)
            return AM_ELIMIT;
    } else if (ioc_numeric_host(hs, hn)) {
        if (!parse_ipv4(hs, hn))
            return 0;
        host = am_arena_strndup(a, hs, hn);
        if (host == NULL)
            return AM_ELIMIT;
    } else {
        rc = ioc_canon_domain(&host, hs, hn, 0, a);
        if (rc < 0 || host == NULL)
            return rc;
    }
    size_t hl = strlen(host);
    size_t total = u.scheme_len + (u.host - u.scheme_len) + hl + (n - u.host_end);
    char *r = am_arena_alloc(a, total + 1);
    if (r == NULL)
        return AM_ELIMIT;
    size_t o = 0;
    for (size_t i = 0; i < u.scheme_len; i++)
        r[o++] = lower(s[i]);
    memcpy(r + o, s + u.scheme_len, u.host - u.scheme_len); /* "://" and userinfo */
    o += u.host - u.scheme_len;
    memcpy(r + o, host, hl);
    o += hl;
    memcpy(r + o, s + u.host_end, n - u.host_end);
    o += n - u.host_end;
    r[o] = '\0';
    if (o > IOC_MAX_URL)
        return 0;
    *out = r;
    return 0;
}

const char *ioc_url_host(const char *url, am_arena_t *a)
{
    url_parts_t u;
    if (url == NULL || !split_url(&u, url, strlen(url)))
        return NULL;
    const char *h = url + u.host;
    size_t n = u.host_end - u.host;
    if (h[0] == '[') {
        h++;
        n -= 2;
    }
    return am_arena_strndup(a, h, n);
}

/* ---- email ---------------------------------------------------------------------- */

int ioc_canon_email(const char **out, const char *s, size_t n, bool strict, am_arena_t *a)
{
    *out = NULL;
    /* display name: Bob <bob@x.com> */
    const char *lt = memrchr(s, '<', n);
    if (lt != NULL) {
        const char *gt = memchr(lt, '>', n - (size_t)(lt - s));
        if (gt == NULL)
            return 0;
        n = (size_t)(gt - lt - 1);
        s = lt + 1;
        trim(&s, &n);
    }
    if (iprefix(s, n, "mailto:")) {
        s += 7;
        n -= 7;
    }
    while (strict && n > 0 && s[0] == '-') {
        s++; /* free text: "-----bob@x.com" is a dash line before the address */
        n--;
    }
    if (n == 0 || n > IOC_MAX_EMAIL)
        return 0;
    const char *at = memrchr(s, '@', n);
    if (at == NULL)
        return 0;
    size_t ln = (size_t)(at - s);
    if (ln == 0 || ln > 64)
        return 0;
    for (size_t i = 0; i < ln; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || strchr("\"(),:;<>@[\\]", c) != NULL)
            return 0;
    }
    if (s[0] == '.' || s[ln - 1] == '.')
        return 0;
    const char *dom;
    int rc = ioc_canon_domain(&dom, at + 1, n - ln - 1, strict ? IOC_DOM_STRICT : 0, a);
    if (rc < 0 || dom == NULL)
        return rc;
    char *local = lower_dup(a, s, ln);
    if (local == NULL)
        return AM_ELIMIT;
    *out = am_arena_printf(a, "%s@%s", local, dom);
    return *out ? 0 : AM_ELIMIT;
}
