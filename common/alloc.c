/* common/alloc.c - heap allocation that aborts on exhaustion; see am.h. */
#include "am.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void am_oom(size_t n)
{
    /* No allocation, no stdio: write(2) a fixed message and a number. */
    char msg[96] = "alertmap: out of memory allocating ";
    size_t len = strlen(msg);
    char digits[24];
    size_t d = 0;
    do {
        digits[d++] = (char)('0' + n % 10);
        n /= 10;
    } while (n != 0 && d < sizeof(digits));
    while (d > 0 && len < sizeof(msg) - 8)
        msg[len++] = digits[--d];
    memcpy(msg + len, " bytes\n", 7);
    len += 7;
    ssize_t w = write(STDERR_FILENO, msg, len);
    (void)w;
    abort();
}

void *am_xmalloc(size_t n)
{
    void *p = malloc(n == 0 ? 1 : n);
    if (p == NULL)
        am_oom(n);
    return p;
}

void *am_xcalloc(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        am_oom(SIZE_MAX);
    void *p = calloc(count == 0 ? 1 : count, size == 0 ? 1 : size);
    if (p == NULL)
        am_oom(count * size);
    return p;
}

void *am_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n == 0 ? 1 : n);
    if (q == NULL)
        am_oom(n);
    return q;
}

char *am_xstrndup(const char *s, size_t n)
{
    char *p = am_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *am_xstrdup(const char *s)
{
    return am_xstrndup(s, strlen(s));
}
