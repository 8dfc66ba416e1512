/* storage/codec.c - JSON text writing and the small parsers of the read API
 * (uuid, RFC 3339 time, list cursor). See store_internal.h. */
#include "store_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *const store_optional_fields[] = {
    "src_ip",         "dst_ip",           "src_hostname", "dst_hostname",   "file_hash_md5",
    "file_hash_sha1", "file_hash_sha256", "actor_email",  "actor_username", "dns_query",
    "http_url",       "http_hostname",    "email_from",   "email_reply_to",
};
const size_t store_noptional_fields = AM_ARRAY_LEN(store_optional_fields);

static bool in_list(const char *s, const char *const *list, size_t n)
{
    if (s == NULL)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

bool store_severity_valid(const char *s)
{
    static const char *const sev[] = {"Pending", "Informational", "Low",
                                      "Medium",  "High",          "Critical"};
    return in_list(s, sev, AM_ARRAY_LEN(sev));
}

bool store_indicator_type_valid(const char *s)
{
    static const char *const types[] = {"ip",       "domain",    "url",         "email",
                                        "hash_md5", "hash_sha1", "hash_sha256", "account"};
    return in_list(s, types, AM_ARRAY_LEN(types));
}

/* ---- JSON text ------------------------------------------------------------ */

void store_json_put_str(am_buf_t *b, const char *s)
{
    if (s == NULL)
        am_buf_puts(b, "null");
    else
        am_buf_json_string(b, s, strlen(s));
}

void store_json_put_key(am_buf_t *b, const char *key)
{
    if (b->len > 0 && b->data[b->len - 1] != '{' && b->data[b->len - 1] != '[')
        am_buf_putc(b, ',');
    store_json_put_str(b, key);
    am_buf_putc(b, ':');
}

void store_json_put_time_us(am_buf_t *b, const char *us_text)
{
    if (us_text == NULL) {
        am_buf_puts(b, "null");
        return;
    }
    char *end;
    errno = 0;
    long long v = strtoll(us_text, &end, 10);
    if (errno != 0 || end == us_text || *end != '\0') {
        am_buf_puts(b, "null");
        return;
    }
    char t[32];
    am_format_time(t, (int64_t)v);
    store_json_put_str(b, t);
}

char *store_json_error(const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    am_buf_t b;
    am_buf_init(&b, 0);
    am_buf_puts(&b, "{\"error\":{\"code\":");
    store_json_put_str(&b, code);
    am_buf_puts(&b, ",\"message\":");
    store_json_put_str(&b, msg);
    am_buf_puts(&b, "}}");
    return am_buf_steal(&b);
}

/* ---- uuid ------------------------------------------------------------------ */

bool store_uuid_valid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : am_hex_value(s[i]) < 0)
            return false;
    }
    return true;
}

/* ---- RFC 3339 ----------------------------------------------------------------- */

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

int store_rfc3339_parse(const char *s, int64_t *out_us)
{
    int y, mo, d, h, mi, sec;
    if (s == NULL || strlen(s) < 20)
        return AM_EINVAL;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &sec))
        return AM_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > am_days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
        return AM_EINVAL;
    const char *p = s + 19;
    int64_t frac_us = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        while (*p >= '0' && *p <= '9') {
            if (n < 6)
                frac_us = frac_us * 10 + (*p - '0');
            n++;
            p++;
        }
        if (n == 0 || n > 9)
            return AM_EINVAL;
        for (int k = n; k < 6; k++)
            frac_us *= 10;
    }
    int64_t off_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return AM_EINVAL;
        off_s = (int64_t)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return AM_EINVAL;
    }
    if (*p != '\0')
        return AM_EINVAL;
    int64_t t = am_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off_s;
    *out_us = t * 1000000 + frac_us;
    return AM_OK;
}

/* ---- cursor ---------------------------------------------------------------- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void store_cursor_encode(char out[64], int64_t ingested_us, int64_t id)
{
    char raw[48];
    int n = snprintf(raw, sizeof(raw), "%lld.%lld", (long long)ingested_us, (long long)id);
    size_t o = 0;
    for (int i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)raw[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)raw[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)raw[i + 2];
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = b64url[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = b64url[v & 63];
    }
    out[o] = '\0';
}

static int b64val(char c)
{
    const char *p = c ? strchr(b64url, c) : NULL;
    return p ? (int)(p - b64url) : -1;
}

/* n bytes of s are an optionally signed run of 1 to 19 digits. */
static bool decimal(const char *s, size_t n, bool sign)
{
    if (sign && n > 0 && s[0] == '-') {
        s++;
        n--;
    }
    if (n == 0 || n > 19)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

int store_cursor_decode(const char *s, int64_t *ingested_us, int64_t *id)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 60 || n % 4 == 1)
        return AM_EINVAL;
    char raw[48];
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val(s[i]);
        if (v < 0)
            return AM_EINVAL;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= sizeof(raw))
                return AM_EINVAL;
            raw[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    raw[o] = '\0';
    char *dot = strchr(raw, '.');
    if (dot == NULL || !decimal(raw, (size_t)(dot - raw), true) ||
        !decimal(dot + 1, strlen(dot + 1), false))
        return AM_EINVAL;
    *dot = '\0';
    errno = 0;
    long long a = strtoll(raw, NULL, 10);
    long long b = strtoll(dot + 1, NULL, 10);
    if (errno != 0 || b <= 0)
        return AM_EINVAL;
    *ingested_us = a;
    *id = b;
    return AM_OK;
}
