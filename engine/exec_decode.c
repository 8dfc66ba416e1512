/*
 * engine/exec_decode.c - the decode steps of a mapping (`decode:`, see
 * docs/mapping-language.md "Envelopes"): a string of the body that holds
 * JSON text, base64 JSON or base64 text is replaced, in place, by what it
 * decodes to, so that paths address inside it. Steps run in order; a step
 * whose path is absent or holds something other than a string is skipped,
 * so one mapping takes the wrapped and the bare delivery.
 */
#include "exec.h"

#include <string.h>

/* Standard or URL-safe alphabet, padding optional; blanks and line breaks
 * skipped. Returns the decoded length, or -1 (with *bad the offset of the
 * first byte that is not base64). out holds at least len * 3 / 4 + 3 bytes. */
static long base64_decode(unsigned char *out, const char *in, size_t len, size_t *bad)
{
    uint32_t acc = 0;
    int bits = 0;
    long n = 0;
    size_t pad = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        int v;
        if (ch >= 'A' && ch <= 'Z')
            v = ch - 'A';
        else if (ch >= 'a' && ch <= 'z')
            v = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9')
            v = ch - '0' + 52;
        else if (ch == '+' || ch == '-')
            v = 62;
        else if (ch == '/' || ch == '_')
            v = 63;
        else if (ch == '=') {
            pad++;
            continue;
        } else if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t')
            continue;
        else {
            *bad = i;
            return -1;
        }
        if (pad > 0) { /* data after padding */
            *bad = i;
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return n;
}

/* The value at path (keys and indexes only) with its parent, or NULL. */
static json_t *locate(const epath_t *p, json_t *v, json_t **parent, const path_seg_t **last)
{
    for (size_t i = 0; i < p->nsegs && v != NULL; i++) {
        const path_seg_t *s = &p->segs[i];
        *parent = v;
        *last = s;
        if (s->kind == SEG_KEY) {
            v = json_is_object(v) ? json_object_getn(v, s->key, s->klen) : NULL;
        } else {
            long n = json_is_array(v) ? (long)json_array_size(v) : 0;
            long idx = s->index < 0 ? n + s->index : s->index;
            v = idx >= 0 && idx < n ? json_array_get(v, (size_t)idx) : NULL;
        }
    }
    return v;
}

static int decode_one(run_t *r, const decode_step_t *d, json_t *body)
{
    if (d->cond != NULL && !eng_ex_cond(r, d->cond, body, NULL, 0))
        return 0;
    json_t *parent = NULL;
    const path_seg_t *last = NULL;
    json_t *v = locate(d->path, body, &parent, &last);
    if (v == NULL || !json_is_string(v) || parent == NULL)
        return 0;
    const char *text = json_string_value(v);
    size_t len = json_string_length(v);
    json_t *out = NULL;
    if (d->fmt != DEC_JSON) {
        unsigned char *buf = am_arena_alloc(r->a, len / 4 * 3 + 4);
        if (buf == NULL)
            return eng_ex_no_room(r);
        size_t bad = 0;
        long n = base64_decode(buf, text, len, &bad);
        if (n < 0)
            return eng_ex_fail(r, AM_EINVAL, "INVALID_PAYLOAD",
                               "decode '%s' (%s): %s is not base64 (offset %zu)", d->name, d->where,
                               d->path->text, bad);
        text = (const char *)buf;
        len = (size_t)n;
        if (d->fmt == DEC_BASE64) {
            if ((out = json_stringn(text, len)) == NULL)
                return eng_ex_fail(r, AM_EINVAL, "INVALID_PAYLOAD",
                                   "decode '%s' (%s): %s does not decode to UTF-8 text", d->name,
                                   d->where, d->path->text);
        }
    }
    if (out == NULL) {
        json_error_t je;
        out = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
        if (out == NULL)
            return eng_ex_fail(r, AM_EINVAL, "INVALID_PAYLOAD",
                               "decode '%s' (%s): %s is not JSON: %s (offset %d)", d->name,
                               d->where, d->path->text, je.text, je.position);
        if (json_is_null(out)) {
            json_decref(out);
            return 0;
        }
    }
    /* the decoded value takes the string's place; the body owns it now */
    int rc;
    if (last->kind == SEG_KEY) {
        rc = json_object_setn_new(parent, last->key, last->klen, out);
    } else {
        long n = (long)json_array_size(parent);
        rc = json_array_set_new(parent, (size_t)(last->index < 0 ? n + last->index : last->index),
                                out);
    }
    if (rc != 0)
        am_oom(0);
    return 0;
}

int eng_ex_decode(run_t *r, json_t *body)
{
    for (size_t i = 0; i < r->p->ndecode; i++) {
        int rc = decode_one(r, &r->p->decode[i], body);
        if (rc != 0)
            return rc;
    }
    return 0;
}
