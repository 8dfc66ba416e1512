/* common/util.c - files, time and calendar, hex, constant-time compare,
 * JSON-lines log. */
#include "am.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int am_read_file(char **out, size_t *len, const char *path, size_t max)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return AM_EIO;
    am_buf_t b;
    am_buf_init(&b, max);
    char tmp[8192];
    size_t n;
    int rc = AM_OK;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        am_buf_append(&b, tmp, n);
        if (!am_buf_ok(&b)) {
            rc = AM_ELIMIT;
            break;
        }
    }
    if (rc == AM_OK && ferror(f))
        rc = AM_EIO;
    int saved = errno;
    fclose(f);
    if (rc != AM_OK) {
        am_buf_dispose(&b);
        errno = saved;
        return rc;
    }
    *len = b.len;
    *out = am_buf_steal(&b);
    return AM_OK;
}

int64_t am_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void am_format_time(char buf[32], int64_t t_us)
{
    int64_t s = t_us / 1000000, frac = t_us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        s -= 1;
    }
    /* the second's text is kept per thread: log lines come many a second */
    static _Thread_local int64_t last_s = INT64_MIN;
    static _Thread_local char last[32];
    static _Thread_local size_t last_n;
    if (s != last_s) {
        time_t tt = (time_t)s;
        struct tm tm;
        gmtime_r(&tt, &tm);
        last_n = strftime(last, sizeof(last), "%Y-%m-%dT%H:%M:%S", &tm);
        last_s = s;
    }
    size_t n = last_n;
    memcpy(buf, last, n);
    if (frac != 0) {
        char f[7];
        for (int i = 5; i >= 0; i--, frac /= 10)
            f[i] = (char)('0' + frac % 10);
        int k = 6;
        while (k > 1 && f[k - 1] == '0')
            k--;
        if (n + 1 + (size_t)k < 31) {
            buf[n++] = '.';
            memcpy(buf + n, f, (size_t)k);
            n += (size_t)k;
        }
    }
    if (n < 31)
        buf[n++] = 'Z';
    buf[n] = '\0';
}

int am_days_in_month(int64_t y, int m)
{
    static const int md[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : md[m - 1];
}

int64_t am_days_from_civil(int64_t y, int m, int d)
{
    /* counted from 0000-03-01 in 400-year eras, so that the leap day is
     * the last day of a (March-based) year */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                                  /* 0-399 */
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1; /* 0-365 */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;          /* 0-146096 */
    return era * 146097 + doe - 719468; /* 719468: 0000-03-01 to 1970-01-01 */
}

void am_hex(char *out, const unsigned char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

int am_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool am_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen)
        return false;
    const volatile unsigned char *x = a, *y = b;
    unsigned char acc = 0;
    for (size_t i = 0; i < alen; i++)
        acc |= x[i] ^ y[i];
    return acc == 0;
}

static am_log_level_t min_level = AM_LOG_INFO;

void am_log_set_level(am_log_level_t min)
{
    min_level = min;
}

size_t am_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    unsigned v = c & (0x3fu >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3fu);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    return len;
}

/* A JSON string of s; a byte that is not part of valid UTF-8 (a source name
 * from a URL, a header) is written as U+FFFD, so every line stays JSON. */
static void put_string(am_buf_t *b, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    bool valid = true;
    for (size_t i = 0; i < n && valid;) {
        size_t k = am_utf8_seq(u + i, n - i);
        valid = k > 0;
        i += k;
    }
    if (valid) {
        am_buf_json_string(b, s, n);
        return;
    }
    am_buf_t t;
    am_buf_init(&t, 0);
    for (size_t i = 0; i < n;) {
        size_t k = am_utf8_seq(u + i, n - i);
        if (k == 0) {
            am_buf_puts(&t, "\xef\xbf\xbd");
            i++;
        } else {
            am_buf_append(&t, s + i, k);
            i += k;
        }
    }
    am_buf_json_string(b, t.data ? t.data : "", t.len);
    am_buf_dispose(&t);
}

void am_log(am_log_level_t level, const char *event, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (level < min_level)
        return;
    am_buf_t b;
    am_buf_init(&b, 1 << 16);
    am_buf_reserve(&b, 512); /* a request line in one allocation */
    char ts[32];
    am_format_time(ts, am_now_us());
    am_buf_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\",\"event\":", ts, names[level]);
    put_string(&b, event);
    va_list ap;
    va_start(ap, event);
    const char *key;
    while ((key = va_arg(ap, const char *)) != NULL) {
        char kind = key[0];
        if (kind == 's') {
            const char *v = va_arg(ap, const char *);
            if (v == NULL)
                continue;
            am_buf_putc(&b, ',');
            put_string(&b, key + 1);
            am_buf_putc(&b, ':');
            put_string(&b, v);
        } else if (kind == 'i') {
            int64_t v = va_arg(ap, int64_t);
            am_buf_putc(&b, ',');
            put_string(&b, key + 1);
            am_buf_printf(&b, ":%lld", (long long)v);
        } else if (kind == 'd') {
            double v = va_arg(ap, double);
            am_buf_putc(&b, ',');
            put_string(&b, key + 1);
            am_buf_printf(&b, ":%.3f", v);
        } else {
            break; /* malformed key: stop reading the list */
        }
    }
    va_end(ap);
    am_buf_puts(&b, "}\n");
    if (am_buf_ok(&b)) {
        ssize_t w = write(2, b.data, b.len);
        (void)w;
    }
    am_buf_dispose(&b);
}
