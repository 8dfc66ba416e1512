/*
 * engine/json_in.c - reading a request body as JSON (eng_json_parse).
 *
 * A pre-scan walks the text once before jansson builds a tree:
 * - it counts the values (object keys too: jansson allocates for them), so a body that would build
 * more than max_values json_t nodes is refused before any is allocated (the tree's memory is
 *   bounded by the count, docs/operations.md "Limits");
 * - it refuses numbers PostgreSQL's numeric (and so jsonb) cannot hold:
 *   more than 131072 digits before the decimal point or 16383 after it, the
 *   exponent applied (1e999999, 1e-999999, 0e-20000);
 * - numbers jansson cannot hold but PostgreSQL can (integers beyond 64 bits,
 *   reals beyond a double's range) are given to jansson as strings with
 *   their exact digits, so `"id": 18446744073709551615` is read as the
 *   string "18446744073709551615" instead of failing the request. The body
 *   itself is not changed: the stored raw payload keeps the original bytes.
 * Anything else that is not valid JSON is left to jansson's own error.
 */
#include "json_internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_MAX_WEIGHT_DIGITS 131072 /* digits before the decimal point */
#define PG_MAX_SCALE         16383  /* digits after it */

static int fail(eng_error_t *e, int rc, const char *code, const char *fmt, ...) AM_PRINTF(4, 5);
static int fail(eng_error_t *e, int rc, const char *code, const char *fmt, ...)
{
    if (e != NULL && e->code == NULL) {
        va_list ap;
        va_start(ap, fmt);
        e->code = code;
        vsnprintf(e->message, sizeof(e->message), fmt, ap);
        va_end(ap);
    }
    return rc;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

typedef enum { NUM_OK, NUM_QUOTE, NUM_REFUSE, NUM_SYNTAX } num_verdict_t;

/* Classifies the number s[0..len) (JSON grammar; NUM_SYNTAX otherwise). */
static num_verdict_t classify(const char *s, size_t len)
{
    size_t i = 0, intd = 0, fracd = 0;
    bool neg = false, real = false;
    if (i < len && s[i] == '-') {
        neg = true;
        i++;
    }
    size_t int_start = i;
    while (i < len && is_digit(s[i]))
        i++;
    intd = i - int_start;
    if (intd == 0 || (intd > 1 && s[int_start] == '0'))
        return NUM_SYNTAX;
    if (i < len && s[i] == '.') {
        real = true;
        size_t f = ++i;
        while (i < len && is_digit(s[i]))
            i++;
        fracd = i - f;
        if (fracd == 0)
            return NUM_SYNTAX;
    }
    int64_t exp = 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        real = true;
        i++;
        bool eneg = false;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        size_t e0 = i;
        while (i < len && is_digit(s[i])) {
            if (exp < 1000000000)
                exp = exp * 10 + (s[i] - '0');
            i++;
        }
        if (i == e0)
            return NUM_SYNTAX;
        if (eneg)
            exp = -exp;
    }
    if (i != len)
        return NUM_SYNTAX;
    int64_t weight = (int64_t)intd - 1 + exp;
    int64_t scale = (int64_t)fracd - exp;
    if (weight >= PG_MAX_WEIGHT_DIGITS || scale > PG_MAX_SCALE)
        return NUM_REFUSE;
    if (!real) {
        static const char max_pos[] = "9223372036854775807", max_neg[] = "9223372036854775808";
        const char *lim = neg ? max_neg : max_pos;
        if (intd > 19 || (intd == 19 && memcmp(s + int_start, lim, 19) > 0))
            return NUM_QUOTE;
        return NUM_OK;
    }
    if (weight < 307)
        return NUM_OK;
    /* near a double's range: ask strtod as jansson will */
    char buf[512];
    if (len >= sizeof(buf))
        return weight > 308 ? NUM_QUOTE : NUM_OK;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    double d = strtod(buf, NULL);
    return (isinf(d) && errno == ERANGE) ? NUM_QUOTE : NUM_OK;
}

/* The index of the quote that ends the string whose text starts at
 * body[from], or len: the first quote after an even run of backslashes
 * (a backslash escapes the byte after it). */
static size_t string_end(const char *body, size_t from, size_t len)
{
    for (size_t i = from; i < len;) {
        const char *q = memchr(body + i, '"', len - i);
        if (q == NULL)
            return len;
        size_t at = (size_t)(q - body), bs = 0;
        while (at - bs > from && body[at - bs - 1] == '\\')
            bs++;
        if (bs % 2 == 0)
            return at;
        i = at + 1;
    }
    return len;
}

int eng_json_parse(json_t **out, const char *body, size_t len, size_t max_values, am_arena_t *a,
                   eng_error_t *err)
{
    *out = NULL;
    size_t nvalues = 0, nquote = 0, line = 1, col_start = 0;
    for (size_t i = 0; i < len;) {
        char c = body[i];
        if (c == '"') {
            nvalues++;
            i = string_end(body, i + 1, len) + 1;
        } else if (c == '-' || is_digit(c)) {
            size_t b = i;
            while (i < len && (is_digit(body[i]) || body[i] == '-' || body[i] == '+' ||
                               body[i] == '.' || body[i] == 'e' || body[i] == 'E'))
                i++;
            nvalues++;
            num_verdict_t v = classify(body + b, i - b);
            if (v == NUM_REFUSE)
                return fail(err, AM_EINVAL, "INVALID_PAYLOAD",
                            "number '%.*s%s' at line %zu, column %zu is outside the range "
                            "PostgreSQL can store (131072 digits before the decimal point, "
                            "16383 after)",
                            (int)(i - b > 40 ? 40 : i - b), body + b, i - b > 40 ? "…" : "", line,
                            b - col_start + 1);
            nquote += v == NUM_QUOTE;
        } else {
            if (c == '\n') {
                line++;
                col_start = i + 1;
            } else if (c == '{' || c == '[' || c == 't' || c == 'f' || c == 'n') {
                nvalues++;
                if (c == 't' || c == 'f' || c == 'n')
                    while (i + 1 < len && body[i + 1] >= 'a' && body[i + 1] <= 'z')
                        i++;
            }
            i++;
        }
        if (max_values > 0 && nvalues > max_values)
            return fail(err, AM_ELIMIT, "LIMIT_EXCEEDED",
                        "the body has more than %zu JSON values (limit max_json_values: %zu)",
                        max_values, max_values);
    }

    const char *text = body;
    size_t tlen = len;
    if (nquote > 0) {
        /* the same text with each such number between quotes */
        char *copy = am_arena_alloc(a, len + 2 * nquote + 1);
        if (copy == NULL)
            return fail(err, AM_ELIMIT, "LIMIT_EXCEEDED",
                        "the request needs more memory than allowed");
        size_t o = 0;
        for (size_t i = 0; i < len;) {
            char c = body[i];
            if (c == '"') {
                size_t b = i;
                for (i++; i < len && body[i] != '"'; i++)
                    if (body[i] == '\\')
                        i++;
                i = i < len ? i + 1 : len;
                memcpy(copy + o, body + b, i - b);
                o += i - b;
            } else if (c == '-' || is_digit(c)) {
                size_t b = i;
                while (i < len && (is_digit(body[i]) || body[i] == '-' || body[i] == '+' ||
                                   body[i] == '.' || body[i] == 'e' || body[i] == 'E'))
                    i++;
                bool q = classify(body + b, i - b) == NUM_QUOTE;
                if (q)
                    copy[o++] = '"';
                memcpy(copy + o, body + b, i - b);
                o += i - b;
                if (q)
                    copy[o++] = '"';
            } else {
                copy[o++] = body[i++];
            }
        }
        text = copy;
        tlen = o;
    }
    /* Duplicate keys are refused: the signed bytes must mean one thing. */
    json_error_t jerr;
    /* the tree lives until the engine step ends: from the scratch slab
     * when the program gave jansson am_scratch_malloc (alertmapd does) */
    bool was = am_scratch_begin();
    *out = eng_json_fast(text, tlen);
    if (*out == NULL) /* anything but the plain path: jansson decides, and words the error */
        *out = json_loadb(text, tlen, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    am_scratch_end(was);
    if (*out == NULL)
        return fail(err, AM_EINVAL, "INVALID_JSON", "invalid JSON: %s (line %d, column %d)",
                    jerr.text, jerr.line, jerr.column);
    return AM_OK;
}
