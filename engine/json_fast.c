/*
 * engine/json_fast.c - a fast reader of well-formed JSON into jansson values
 * (eng_json_fast), for eng_json_parse().
 *
 * jansson's own reader spends most of a request body's parse in its lexer
 * (one callback and one buffer append per byte). This one scans the text in
 * place and builds the same tree through jansson's API: objects with their
 * keys in text order, strings decoded as jansson decodes them, integers with
 * strtoll and reals with strtod exactly as jansson's lexer reads them. It
 * knows only the plain path: at anything else (a syntax error, a duplicate
 * key, a control character or a byte that is not UTF-8 in a string, \u0000,
 * an unpaired surrogate, a number out of range, nesting deeper than
 * FAST_MAX_DEPTH) it gives up and returns NULL, and the caller asks
 * json_loadb, whose answer (a tree or its error) is then the answer. So a
 * tree from here is always the tree json_loadb(JSON_DECODE_ANY |
 * JSON_REJECT_DUPLICATES) builds, and every error is jansson's.
 */
#include "json_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FAST_MAX_DEPTH 64 /* deeper: json_loadb (its own limit is 2048) */

typedef struct fast {
    const char *p, *end;
    int depth;
    char *tmp; /* decoded strings with escapes (heap) */
    size_t tmpcap;
} fast_t;

static json_t *value(fast_t *f);

static void skip_ws(fast_t *f)
{
    while (f->p < f->end && (*f->p == ' ' || *f->p == '\n' || *f->p == '\r' || *f->p == '\t'))
        f->p++;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static void put_utf8(char **o, unsigned cp)
{
    char *q = *o;
    if (cp < 0x80) {
        *q++ = (char)cp;
    } else if (cp < 0x800) {
        *q++ = (char)(0xc0 | (cp >> 6));
        *q++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *q++ = (char)(0xe0 | (cp >> 12));
        *q++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *q++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *q++ = (char)(0xf0 | (cp >> 18));
        *q++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *q++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *q++ = (char)(0x80 | (cp & 0x3f));
    }
    *o = q;
}

/* Decodes the escapes of the string body s[0..n) into f->tmp; false at
 * anything jansson would refuse. */
static bool unescape(fast_t *f, const char *s, size_t n, size_t *out_len)
{
    if (f->tmpcap < n + 1) {
        free(f->tmp);
        f->tmpcap = n + 64;
        f->tmp = am_xmalloc(f->tmpcap);
    }
    char *o = f->tmp;
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\') {
            *o++ = s[i++];
            continue;
        }
        if (i + 1 >= n)
            return false;
        char e = s[i + 1];
        i += 2;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            *o++ = e;
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            if (n - i < 4)
                return false;
            int cp = hex4(s + i);
            i += 4;
            if (cp <= 0 || (cp >= 0xdc00 && cp <= 0xdfff))
                return false; /* \u0000, a lone low surrogate */
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (n - i < 6 || s[i] != '\\' || s[i + 1] != 'u')
                    return false;
                int lo = hex4(s + i + 2);
                if (lo < 0xdc00 || lo > 0xdfff)
                    return false;
                i += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            put_utf8(&o, (unsigned)cp);
            break;
        }
        default:
            return false;
        }
    }
    *o = '\0';
    *out_len = (size_t)(o - f->tmp);
    return true;
}

/* The bytes a string holds as they are: printable ASCII but the quote and
 * the backslash. */
#define P8(x) x, x, x, x, x, x, x, x
static const bool plain[256] = {
    P8(0), P8(0), P8(0), P8(0),                        /* 0x00-0x1f */
    1,     1,     0,     1,     1,     1, 1, 1, P8(1), /* 0x20-0x2f: '"' */
    P8(1), P8(1), P8(1), P8(1), P8(1),                 /* 0x30-0x57 */
    1,     1,     1,     1,     0,     1, 1, 1,        /* 0x58-0x5f: '\\' */
    P8(1), P8(1), P8(1), P8(1),                        /* 0x60-0x7f; 0x80-0xff: 0 */
};
#undef P8

/* The string at f->p (its opening quote): its text in *s, *len bytes
 * (pointing into the body when it has no escape, else into f->tmp). */
static bool string(fast_t *f, const char **s, size_t *len)
{
    const unsigned char *b = (const unsigned char *)f->p + 1;
    const unsigned char *q = b, *end = (const unsigned char *)f->end;
    bool esc = false;
    for (;;) {
        while (q < end && plain[*q])
            q++;
        if (q >= end)
            return false;
        unsigned c = *q;
        if (c == '"')
            break;
        if (c < 0x20)
            return false;
        if (c == '\\') {
            esc = true;
            q += 2; /* the escaped character (checked by unescape) */
        } else if (c >= 0x80) {
            size_t k = am_utf8_seq(q, (size_t)(end - q));
            if (k == 0)
                return false;
            q += k;
        } else {
            q++;
        }
    }
    f->p = (const char *)q + 1;
    if (!esc) {
        *s = (const char *)b;
        *len = (size_t)(q - b);
        return true;
    }
    if (!unescape(f, (const char *)b, (size_t)(q - b), len))
        return false;
    *s = f->tmp;
    return true;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A number as jansson's lexer reads it. */
static json_t *number(fast_t *f)
{
    const char *b = f->p, *q = b, *end = f->end;
    bool real = false;
    if (q < end && *q == '-')
        q++;
    if (q >= end || !is_digit(*q))
        return NULL;
    if (*q == '0') {
        q++;
        if (q < end && is_digit(*q))
            return NULL;
    } else {
        while (q < end && is_digit(*q))
            q++;
    }
    if (q < end && *q == '.') {
        real = true;
        q++;
        if (q >= end || !is_digit(*q))
            return NULL;
        while (q < end && is_digit(*q))
            q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        real = true;
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        if (q >= end || !is_digit(*q))
            return NULL;
        while (q < end && is_digit(*q))
            q++;
    }
    char buf[128];
    size_t n = (size_t)(q - b);
    if (n >= sizeof(buf))
        return NULL;
    memcpy(buf, b, n);
    buf[n] = '\0';
    char *stop = NULL;
    errno = 0;
    json_t *v = NULL;
    if (!real) {
        long long i = strtoll(buf, &stop, 10);
        if (errno == 0 && stop == buf + n)
            v = json_integer((json_int_t)i);
    } else {
        double d = strtod(buf, &stop);
        if (errno == 0 && stop == buf + n && isfinite(d))
            v = json_real(d);
    }
    if (v != NULL)
        f->p = q;
    return v;
}

static bool literal(fast_t *f, const char *word, size_t n)
{
    if ((size_t)(f->end - f->p) < n || memcmp(f->p, word, n) != 0)
        return false;
    f->p += n;
    /* "truex" is one token to jansson, an invalid one */
    return f->p >= f->end || !(*f->p >= 'a' && *f->p <= 'z');
}

/* After a member or an element: 1 past a ',' (and the space after it), 0
 * past the closing close, -1 at anything else. */
static int after_item(fast_t *f, char close)
{
    skip_ws(f);
    if (f->p < f->end && *f->p == ',') {
        f->p++;
        skip_ws(f);
        return 1;
    }
    if (f->p < f->end && *f->p == close) {
        f->p++;
        return 0;
    }
    return -1;
}

static json_t *object(fast_t *f)
{
    json_t *o = json_object();
    f->p++;
    skip_ws(f);
    if (f->p < f->end && *f->p == '}') {
        f->p++;
        return o;
    }
    for (;;) {
        const char *k;
        size_t klen;
        if (f->p >= f->end || *f->p != '"' || !string(f, &k, &klen))
            break;
        /* the key is used before the next string can overwrite f->tmp */
        if (json_object_getn(o, k, klen) != NULL) /* a duplicate: jansson's error */
            break;
        skip_ws(f);
        if (f->p >= f->end || *f->p != ':')
            break;
        f->p++;
        /* a decoded key is in f->tmp, which the value's strings reuse:
         * keep it apart (a key without escapes points into the body) */
        char small[64];
        char *copy = NULL;
        if (k == f->tmp) {
            copy = klen < sizeof(small) ? small : am_xmalloc(klen + 1);
            memcpy(copy, k, klen);
            k = copy;
        }
        json_t *v = value(f);
        int rc = v ? json_object_setn_new_nocheck(o, k, klen, v) : -1;
        if (copy != NULL && copy != small)
            free(copy);
        if (rc != 0)
            break;
        int next = after_item(f, '}');
        if (next == 0)
            return o;
        if (next < 0)
            break;
    }
    json_decref(o);
    return NULL;
}

static json_t *array(fast_t *f)
{
    json_t *a = json_array();
    f->p++;
    skip_ws(f);
    if (f->p < f->end && *f->p == ']') {
        f->p++;
        return a;
    }
    for (;;) {
        json_t *v = value(f);
        if (v == NULL || json_array_append_new(a, v) != 0)
            break;
        int next = after_item(f, ']');
        if (next == 0)
            return a;
        if (next < 0)
            break;
    }
    json_decref(a);
    return NULL;
}

static json_t *value(fast_t *f)
{
    skip_ws(f);
    if (f->p >= f->end)
        return NULL;
    switch (*f->p) {
    case '{':
    case '[': {
        if (++f->depth > FAST_MAX_DEPTH)
            return NULL;
        json_t *v = *f->p == '{' ? object(f) : array(f);
        f->depth--;
        return v;
    }
    case '"': {
        const char *s;
        size_t len;
        return string(f, &s, &len) ? json_stringn_nocheck(s, len) : NULL;
    }
    case 't':
        return literal(f, "true", 4) ? json_true() : NULL;
    case 'f':
        return literal(f, "false", 5) ? json_false() : NULL;
    case 'n':
        return literal(f, "null", 4) ? json_null() : NULL;
    default:
        return number(f);
    }
}

json_t *eng_json_fast(const char *text, size_t len)
{
    fast_t f = {.p = text, .end = text + len};
    json_t *v = value(&f);
    skip_ws(&f);
    if (v != NULL && f.p != f.end) {
        json_decref(v);
        v = NULL;
    }
    free(f.tmp);
    return v;
}
