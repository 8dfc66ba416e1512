/* common/diag.c - file:line:col diagnostics; see am.h. */
#include "am.h"

#include <stdlib.h>
#include <string.h>

void am_diags_init(am_diags_t *d)
{
    memset(d, 0, sizeof(*d));
}

void am_diags_dispose(am_diags_t *d)
{
    for (size_t i = 0; i < d->count && d->items != NULL; i++) {
        free(d->items[i].file);
        free(d->items[i].msg);
    }
    free(d->items);
    memset(d, 0, sizeof(*d));
}

void am_diags_vadd(am_diags_t *d, const char *file, int line, int col, const char *fmt, va_list ap)
{
    if (d->items == NULL || d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        d->items = am_xrealloc(d->items, cap * sizeof(*d->items));
        d->cap = cap;
    }
    am_diag_t *x = &d->items[d->count++];
    x->file = am_xstrdup(file ? file : "");
    x->line = line;
    x->col = col;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        x->msg = am_xstrdup("(unformattable message)");
        return;
    }
    x->msg = am_xmalloc((size_t)n + 1);
    vsnprintf(x->msg, (size_t)n + 1, fmt, ap);
}

void am_diags_add(am_diags_t *d, const char *file, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    am_diags_vadd(d, file, line, col, fmt, ap);
    va_end(ap);
}

void am_diags_print(const am_diags_t *d, FILE *out)
{
    for (size_t i = 0; i < d->count; i++) {
        const am_diag_t *x = &d->items[i];
        fprintf(out, "%s:%d:%d: %s\n", x->file ? x->file : "?", x->line, x->col, x->msg);
    }
}

static int cmp(const void *a, const void *b)
{
    const am_diag_t *x = a, *y = b;
    int c = strcmp(x->file ? x->file : "", y->file ? y->file : "");
    if (c != 0)
        return c;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x < y ? -1 : (x > y);
}

void am_diags_sort(am_diags_t *d)
{
    if (d->count > 1)
        qsort(d->items, d->count, sizeof(*d->items), cmp);
}
