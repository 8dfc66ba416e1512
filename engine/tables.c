/* engine/tables.c - lookup tables, field names and severities (tables.h). */
#include "tables.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

uint32_t eng_map_hash(const char *lower, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)lower[i];
        h *= 16777619u;
    }
    return h;
}

const map_slot_t *eng_map_lookup(const map_table_t *m, const char *key, size_t len)
{
    char buf[256];
    if (len > m->maxkey || len > sizeof(buf))
        return NULL;
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)tolower((unsigned char)key[i]);
    uint32_t h = eng_map_hash(buf, len);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        const map_slot_t *s = &m->slots[i];
        if (s->key == NULL)
            return NULL;
        if (s->hash == h && s->klen == len && memcmp(s->key, buf, len) == 0)
            return s;
    }
}

static const char *const field_names[ENG_F__COUNT] = {
    [ENG_F_TITLE] = "title",
    [ENG_F_SEVERITY] = "severity",
    [ENG_F_OCCURRED_AT] = "occurred_at",
    [ENG_F_DESCRIPTION] = "description",
    [ENG_F_DETECTION_RULE_REF] = "detection_rule_ref",
    [ENG_F_SRC_IP] = "src_ip",
    [ENG_F_DST_IP] = "dst_ip",
    [ENG_F_SRC_HOSTNAME] = "src_hostname",
    [ENG_F_DST_HOSTNAME] = "dst_hostname",
    [ENG_F_FILE_HASH_MD5] = "file_hash_md5",
    [ENG_F_FILE_HASH_SHA1] = "file_hash_sha1",
    [ENG_F_FILE_HASH_SHA256] = "file_hash_sha256",
    [ENG_F_ACTOR_EMAIL] = "actor_email",
    [ENG_F_ACTOR_USERNAME] = "actor_username",
    [ENG_F_DNS_QUERY] = "dns_query",
    [ENG_F_HTTP_URL] = "http_url",
    [ENG_F_HTTP_HOSTNAME] = "http_hostname",
    [ENG_F_EMAIL_FROM] = "email_from",
    [ENG_F_EMAIL_REPLY_TO] = "email_reply_to",
};

const char *eng_field_name(eng_field_t f)
{
    return (unsigned)f < ENG_F__COUNT ? field_names[f] : "?";
}

eng_field_t eng_field_parse(const char *name, size_t len)
{
    for (int f = 0; f < ENG_F__COUNT; f++)
        if (strlen(field_names[f]) == len && memcmp(field_names[f], name, len) == 0)
            return (eng_field_t)f;
    return ENG_F__COUNT;
}

static const char *const severities[] = {"Pending", "Informational", "Low",
                                         "Medium",  "High",          "Critical"};

const char *eng_severity_canonical(const char *s, size_t len)
{
    for (size_t i = 0; i < AM_ARRAY_LEN(severities); i++)
        if (strlen(severities[i]) == len && strncasecmp(severities[i], s, len) == 0)
            return severities[i];
    return NULL;
}

bool eng_pcre2_jit_enabled(void)
{
    const char *v = getenv("ALERTMAP_PCRE2_JIT");
    return v == NULL || strcmp(v, "0") != 0;
}
