/* storage/ingest.c - store_ingest(): checks a request's alerts and copies
 * them into memory the writer owns (one arena per request), then queues the
 * request for a writer thread (writer.c). Input errors are answered here,
 * synchronously; data the database would refuse (store_alert_refusal) marks
 * the request rejected, so that it never reaches a batch and the batch needs
 * no savepoints: the writer answers it STORE_REJECTED. A request over a
 * batch's caps goes to the heavy lane. */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- queued requests ---------------------------------------------------------- */

static const char *const reserved_keys[] = {
    "uuid",
    "title",
    "severity",
    "occurred_at",
    "occurred_at_fallback",
    "source_name",
    "description",
    "status",
    "enrichment_status",
    "tags",
    "detection_rule_ref",
    "fingerprint",
    "duplicate_count",
    "last_duplicate_at",
    "ingested_at",
    "updated_at",
    "triaged_at",
    "escalated_at",
    "closed_at",
    "close_classification",
    "raw_payload",
    "indicators",
    "id",
};

static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        int n = (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2 : (*p & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0 || (*p == 0xC0 || *p == 0xC1) || *p > 0xF4)
            return false;
        uint32_t cp = *p & (0x3F >> n);
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        p += n + 1;
    }
    return true;
}

static bool reserved_key(const char *k, size_t n)
{
    for (size_t i = 0; i < AM_ARRAY_LEN(reserved_keys); i++)
        if (strncmp(k, reserved_keys[i], n) == 0 && reserved_keys[i][n] == '\0')
            return true;
    return false;
}

/* The end of the string "…" at s (its opening quote) when it holds only
 * printable ASCII without a backslash, else NULL. */
static const char *plain_string(const char *s)
{
    if (*s != '"')
        return NULL;
    for (s++; *s != '"'; s++)
        if (*s < 0x20 || *s > 0x7e || *s == '\\')
            return NULL;
    return s + 1;
}

/* fields_valid() of the common shape, {"key":"value",...} compact with
 * printable ASCII and no escapes, without a parse: true with the verdict
 * in *ok, false for any other text. */
static bool flat_fields_valid(const char *t, bool *ok)
{
    const char *key[16];
    size_t klen[16], n = 0;
    if (*t++ != '{')
        return false;
    *ok = true;
    if (*t == '}')
        return t[1] == '\0';
    for (;;) {
        const char *k = t, *e = plain_string(t);
        if (e == NULL || *e != ':' || n == AM_ARRAY_LEN(key))
            return false;
        key[n] = k + 1;
        klen[n] = (size_t)(e - k) - 2;
        for (size_t i = 0; i < n; i++)
            if (klen[i] == klen[n] && memcmp(key[i], key[n], klen[n]) == 0)
                *ok = false; /* a duplicate: jansson's parse refuses it */
        if (reserved_key(key[n], klen[n]))
            *ok = false;
        n++;
        if ((t = plain_string(e + 1)) == NULL)
            return false;
        if (*t == '}')
            return t[1] == '\0';
        if (*t++ != ',')
            return false;
    }
}

static bool fields_valid(const char *text)
{
    bool flat_ok;
    if (flat_fields_valid(text, &flat_ok))
        return flat_ok;
    json_error_t e;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &e);
    bool ok = json_is_object(o);
    const char *key;
    json_t *v;
    if (ok) {
        json_object_foreach(o, key, v)
        {
            for (size_t i = 0; i < AM_ARRAY_LEN(reserved_keys); i++)
                if (strcmp(key, reserved_keys[i]) == 0)
                    ok = false;
        }
    }
    json_decref(o);
    return ok;
}

/* A JSON text holding \u0000 inside a string (jsonb refuses it). Backslashes
 * appear only inside strings in JSON, so no string state is needed. */
static bool json_has_nul_escape(const char *t)
{
    for (const char *p = t; (p = strchr(p, '\\')) != NULL;) {
        if (p[1] == '\0')
            return false;
        if (p[1] == 'u' && strncmp(p + 2, "0000", 4) == 0)
            return true;
        p += 2; /* the escaped character, whatever it is */
    }
    return false;
}

/* timestamptz's lower bound (4714-11-24 00:00 BC) in µs since the epoch;
 * the upper bound (294276 AD) is past any int64 that survives the float
 * arithmetic of the insert, bounded here at 9e18. */
#define OCCURRED_MIN_US (-INT64_C(210866803200000000))
#define OCCURRED_MAX_US INT64_C(9000000000000000000)

const char *store_alert_refusal(const store_alert_t *a)
{
    if (!utf8_valid(a->title) || !utf8_valid(a->source_name) ||
        (a->description && !utf8_valid(a->description)) ||
        (a->detection_rule_ref && !utf8_valid(a->detection_rule_ref)))
        return "a text is not valid UTF-8";
    for (size_t i = 0; i < a->ntags; i++)
        if (!utf8_valid(a->tags[i]))
            return "a tag is not valid UTF-8";
    for (size_t i = 0; i < a->nindicators; i++)
        if (a->indicators[i].source_field && !utf8_valid(a->indicators[i].source_field))
            return "an indicator's source field is not valid UTF-8";
    if (!utf8_valid(a->raw_payload) || json_has_nul_escape(a->raw_payload))
        return "raw_payload is not valid UTF-8 or holds \\u0000, which jsonb cannot store";
    if (a->fields_json && json_has_nul_escape(a->fields_json))
        return "fields hold \\u0000, which jsonb cannot store";
    if (a->occurred_at_us < OCCURRED_MIN_US || a->occurred_at_us > OCCURRED_MAX_US)
        return "occurred_at is out of range";
    return NULL;
}

static int check_alert(const store_alert_t *a)
{
    if (a->source_name == NULL || a->title == NULL || a->fingerprint == NULL ||
        a->raw_payload == NULL || !store_severity_valid(a->severity) || a->fingerprint[0] == '\0' ||
        !utf8_valid(a->fingerprint) || (a->ntags > 0 && a->tags == NULL) ||
        (a->nindicators > 0 && a->indicators == NULL))
        return AM_EINVAL;
    for (size_t i = 0; i < a->ntags; i++)
        if (a->tags[i] == NULL)
            return AM_EINVAL;
    for (size_t i = 0; i < a->nindicators; i++) {
        const store_indicator_t *x = &a->indicators[i];
        if (!store_indicator_type_valid(x->type) || x->value == NULL || x->value[0] == '\0' ||
            !utf8_valid(x->value))
            return AM_EINVAL;
    }
    if (a->fields_json != NULL && !fields_valid(a->fields_json))
        return AM_EINVAL;
    return AM_OK;
}

static char *arena_lit(am_arena_t *ar, const char *const *v, size_t n)
{
    am_buf_t b;
    am_buf_init(&b, 0);
    store_pg_text_array(&b, v, n);
    char *r = am_buf_ok(&b) ? am_arena_strdup(ar, b.data ? b.data : "{}") : NULL;
    am_buf_dispose(&b);
    return r;
}

static int copy_alert(am_arena_t *ar, w_alert_t *w, const store_alert_t *a)
{
    w->title = am_arena_strdup(ar, a->title);
    w->severity = am_arena_strdup(ar, a->severity);
    w->source_name = am_arena_strdup(ar, a->source_name);
    w->description = am_arena_strdup(ar, a->description);
    w->detection_rule_ref = am_arena_strdup(ar, a->detection_rule_ref);
    w->fingerprint = am_arena_strdup(ar, a->fingerprint);
    w->raw_payload = am_arena_strdup(ar, a->raw_payload);
    w->fields_json = am_arena_strdup(ar, a->fields_json);
    w->occurred_us = a->occurred_at_us;
    w->fallback = a->occurred_at_fallback;
    w->tags_lit = arena_lit(ar, a->tags, a->ntags);
    const char **types = am_arena_calloc(ar, a->nindicators + 1, sizeof(*types));
    const char **values = am_arena_calloc(ar, a->nindicators + 1, sizeof(*values));
    const char **sf = am_arena_calloc(ar, a->nindicators + 1, sizeof(*sf));
    if (!w->title || !w->severity || !w->source_name || !w->fingerprint || !w->raw_payload ||
        (a->description && !w->description) || (a->detection_rule_ref && !w->detection_rule_ref) ||
        (a->fields_json && !w->fields_json) || !w->tags_lit || !types || !values || !sf)
        return AM_ELIMIT;
    /* repeated (type, value): the first one stays; an open-addressing hash
     * set of indexes into the kept ones (a list of thousands stays linear) */
    size_t cap = 16;
    while (cap < 2 * a->nindicators)
        cap *= 2;
    size_t *slot = am_xcalloc(cap, sizeof(*slot)); /* index + 1; 0 = empty */
    size_t n = 0;
    for (size_t i = 0; i < a->nindicators; i++) {
        const store_indicator_t *x = &a->indicators[i];
        uint64_t h = 1469598103934665603ULL; /* FNV-1a over type, NUL, value */
        for (const char *p = x->type;; p++) {
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
            if (*p == '\0')
                break;
        }
        for (const char *p = x->value; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        size_t j = (size_t)h & (cap - 1);
        bool seen = false;
        for (; slot[j] != 0 && !seen; j = (j + 1) & (cap - 1)) {
            size_t k = slot[j] - 1;
            seen = strcmp(types[k], x->type) == 0 && strcmp(values[k], x->value) == 0;
        }
        if (seen)
            continue;
        slot[j] = n + 1;
        types[n] = x->type;
        values[n] = x->value;
        sf[n++] = x->source_field;
    }
    free(slot);
    w->nind = n;
    w->ind_types = types;
    w->ind_values = values;
    w->ind_fields = sf;
    /* the caller's strings, copied: the writer reads them after
     * store_ingest() has returned */
    for (size_t i = 0; i < n; i++) {
        types[i] = am_arena_strdup(ar, types[i]);
        values[i] = am_arena_strdup(ar, values[i]);
        if (types[i] == NULL || values[i] == NULL)
            return AM_ELIMIT;
        if (sf[i] != NULL && (sf[i] = am_arena_strdup(ar, sf[i])) == NULL)
            return AM_ELIMIT;
    }
    return AM_OK;
}

void store_ingest_req_free(ingest_req_t *r)
{
    if (r != NULL)
        am_arena_free(r->arena);
}

int store_ingest(store_t *s, const store_alert_t *alerts, size_t n, store_ingest_cb cb, void *ctx)
{
    if (s == NULL || cb == NULL || (n > 0 && alerts == NULL))
        return AM_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (check_alert(&alerts[i]) != AM_OK)
            return AM_EINVAL;
    /* No cap of its own: the caller already holds all of it in memory and
     * bounds what a request may be; NULL below would need SIZE_MAX bytes. */
    am_arena_t *ar = am_arena_new(8192, SIZE_MAX);
    ingest_req_t *r = am_arena_calloc(ar, 1, sizeof(*r));
    if (r == NULL) {
        am_arena_free(ar);
        return AM_ELIMIT;
    }
    r->arena = ar;
    r->n = n;
    r->cb = cb;
    r->ctx = ctx;
    r->alerts = am_arena_calloc(ar, n + 1, sizeof(*r->alerts));
    r->out = am_arena_calloc(ar, n + 1, sizeof(*r->out));
    int rc = r->alerts && r->out ? AM_OK : AM_ELIMIT;
    for (size_t i = 0; i < n && rc == AM_OK; i++) {
        rc = copy_alert(ar, &r->alerts[i], &alerts[i]);
        r->nind += r->alerts[i].nind;
        const char *why = r->rejected ? NULL : store_alert_refusal(&alerts[i]);
        if (why != NULL) {
            /* answered by the writer without sending anything */
            r->rejected = true;
            r->status = STORE_REJECTED;
            snprintf(r->msg, sizeof(r->msg), "alert %zu: %s", i, why);
        }
    }
    if (rc != AM_OK) {
        store_ingest_req_free(r);
        return rc;
    }
    r->heavy = !r->rejected && (n > (size_t)s->max_batch || r->nind > s->max_batch_ind);
    store_lane_t *lane = &s->lanes[r->heavy ? 1 : 0];
    pthread_mutex_lock(&s->wmu);
    if (s->wstop || atomic_load(&s->stats.queue_depth) >= s->max_queue) {
        int why = s->wstop ? AM_EUNAVAIL : AM_ELIMIT;
        pthread_mutex_unlock(&s->wmu);
        store_ingest_req_free(r);
        return why;
    }
    if (lane->tail)
        lane->tail->next = r;
    else
        lane->head = r;
    lane->tail = r;
    lane->nalerts += n;
    atomic_fetch_add(&s->stats.queue_depth, 1);
    pthread_cond_signal(&lane->cond);
    pthread_mutex_unlock(&s->wmu);
    return AM_OK;
}

void store_writer_queue_dispose(store_t *s)
{
    for (int l = 0; l < 2; l++) {
        while (s->lanes[l].head) {
            ingest_req_t *r = s->lanes[l].head;
            s->lanes[l].head = r->next;
            store_ingest_req_free(r);
        }
        s->lanes[l].tail = NULL;
    }
}
