/* common/arena.c - bump allocator with a hard cap; see am.h. */
#include "am.h"

#include <stdlib.h>
#include <string.h>

struct chunk {
    struct chunk *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

struct am_arena {
    struct chunk *head;
    size_t chunk_size, cap, used;
};

#define ALIGN 16u

am_arena_t *am_arena_new(size_t chunk_size, size_t cap)
{
    am_arena_t *a = am_xcalloc(1, sizeof(*a));
    a->chunk_size = chunk_size < 256 ? 256 : chunk_size;
    a->cap = cap == 0 ? (size_t)64 << 20 : cap;
    return a;
}

void am_arena_free(am_arena_t *a)
{
    if (a == NULL)
        return;
    struct chunk *c = a->head;
    while (c != NULL) {
        struct chunk *n = c->next;
        free(c);
        c = n;
    }
    free(a);
}

void am_arena_reset(am_arena_t *a)
{
    struct chunk *c = a->head;
    if (c == NULL)
        return;
#ifdef AM_ARENA_DEBUG
    /* nothing is kept: a pointer used after the reset is a use after free */
    while (c != NULL) {
        struct chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
    a->used = 0;
    return;
#else
    /* keep the oldest chunk (the last in the list): it is the default size */
    while (c->next != NULL) {
        struct chunk *n = c->next;
        free(c);
        c = n;
    }
    c->used = 0;
    a->head = c;
    a->used = 0;
#endif
}

void *am_arena_alloc(am_arena_t *a, size_t n)
{
    if (n == 0)
        n = 1;
    /* Every comparison is written so that it cannot wrap: a->used <= a->cap
     * always holds, so cap - used is the room left. */
    if (n > SIZE_MAX - (ALIGN - 1))
        return NULL;
    size_t need = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (need > a->cap - a->used || need > SIZE_MAX - sizeof(struct chunk))
        return NULL;
#ifdef AM_ARENA_DEBUG
    /* Debug build: every allocation is its own malloc of exactly n bytes
     * after the header, so AddressSanitizer reports a byte read or written
     * past it, and a use after am_arena_reset() or am_arena_free(). */
    struct chunk *d = am_xmalloc(sizeof(*d) + n);
    d->size = n;
    d->used = n;
    d->next = a->head;
    a->head = d;
    a->used += need;
    return d->data;
#else
    struct chunk *c = a->head;
    if (c == NULL || c->size - c->used < need) {
        size_t size = need > a->chunk_size ? need : a->chunk_size;
        struct chunk *nc = am_xmalloc(sizeof(*nc) + size);
        nc->size = size;
        nc->used = 0;
        if (c != NULL && need > a->chunk_size) {
            /* an oversized block: put it behind the head so the head's free
             * space stays usable */
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            a->head = nc;
        }
        c = nc;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->used += need;
    return p;
#endif
}

void *am_arena_calloc(am_arena_t *a, size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    void *p = am_arena_alloc(a, count * size);
    if (p != NULL)
        memset(p, 0, count * size);
    return p;
}

char *am_arena_strndup(am_arena_t *a, const char *s, size_t n)
{
    if (s == NULL || n == SIZE_MAX)
        return NULL;
    char *p = am_arena_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *am_arena_strdup(am_arena_t *a, const char *s)
{
    return s == NULL ? NULL : am_arena_strndup(a, s, strlen(s));
}

char *am_arena_printf(am_arena_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = am_arena_alloc(a, (size_t)n + 1);
    if (p == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void *am_arena_grow(am_arena_t *a, void *arr, size_t n, size_t *cap, size_t elem)
{
    if (arr != NULL && n < *cap)
        return arr;
    if (*cap > SIZE_MAX / 2)
        return NULL;
    size_t ncap = *cap >= 8 ? *cap * 2 : 8;
    if (ncap <= n || (elem != 0 && ncap > SIZE_MAX / elem))
        return NULL;
    void *p = am_arena_alloc(a, ncap * elem);
    if (p == NULL)
        return NULL;
    if (n > 0)
        memcpy(p, arr, n * elem);
    *cap = ncap;
    return p;
}

size_t am_arena_used(const am_arena_t *a)
{
    return a->used;
}
