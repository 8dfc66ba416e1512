/* common/buf.c - bounded growable string buffer; see am.h. */
#include "am.h"

#include <stdlib.h>
#include <string.h>

void am_buf_init(am_buf_t *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void am_buf_dispose(am_buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static bool reserve(am_buf_t *b, size_t extra)
{
    if (b->failed)
        return false;
    size_t need = b->len + extra + 1;
    if (need < b->len || (b->max != 0 && need - 1 > b->max)) {
        b->failed = true;
        return false;
    }
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = am_xrealloc(b->data, cap);
    b->cap = cap;
    return true;
}

void am_buf_append(am_buf_t *b, const void *p, size_t n)
{
    if (!reserve(b, n))
        return;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

char *am_buf_reserve(am_buf_t *b, size_t n)
{
    return reserve(b, n) ? b->data + b->len : NULL;
}

void am_buf_puts(am_buf_t *b, const char *s)
{
    am_buf_append(b, s, strlen(s));
}

void am_buf_putc(am_buf_t *b, char c)
{
    /* the common case without reserve(): room for c and the NUL */
    if (b->len + 2 <= b->cap && !b->failed && (b->max == 0 || b->len + 1 <= b->max)) {
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
        return;
    }
    am_buf_append(b, &c, 1);
}

void am_buf_printf(am_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    size_t room = b->cap > b->len ? b->cap - b->len : 0;
    va_start(ap, fmt);
    /* into the room there is, when it fits (vsnprintf writes the NUL) */
    int n = vsnprintf(room && !b->failed ? b->data + b->len : NULL, room && !b->failed ? room : 0,
                      fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < room && !b->failed && (b->max == 0 || b->len + (size_t)n <= b->max)) {
        b->len += (size_t)n;
        return;
    }
    if (room > 0 && !b->failed)
        b->data[b->len] = '\0'; /* undo the partial write */
    if (n < 0) {
        b->failed = true;
        return;
    }
    if (!reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void am_buf_json_string(am_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    am_buf_putc(b, '"');
    size_t run = 0; /* start of the bytes not yet written */
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        am_buf_append(b, s + run, i - run);
        run = i + 1;
        switch (ch) {
        case '"':
            am_buf_puts(b, "\\\"");
            break;
        case '\\':
            am_buf_puts(b, "\\\\");
            break;
        case '\n':
            am_buf_puts(b, "\\n");
            break;
        case '\r':
            am_buf_puts(b, "\\r");
            break;
        case '\t':
            am_buf_puts(b, "\\t");
            break;
        default: {
            const char u[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
            am_buf_append(b, u, sizeof(u));
        }
        }
    }
    if (run < n)
        am_buf_append(b, s + run, n - run);
    am_buf_putc(b, '"');
}

char *am_buf_steal(am_buf_t *b)
{
    if (b->failed) {
        am_buf_dispose(b);
        return NULL;
    }
    char *p = b->data;
    if (p == NULL)
        p = am_xcalloc(1, 1);
    memset(b, 0, sizeof(*b));
    return p;
}
