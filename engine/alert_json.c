/* engine/alert_json.c - the JSON form of a normalized alert (eng_alert_json). */
#include "eng.h"

/* json_object_set_new() steals the value; a NULL value makes it fail, which
 * the callers turn into a NULL result. */
static bool put(json_t *o, const char *k, json_t *v)
{
    return v != NULL && json_object_set_new(o, k, v) == 0;
}

static json_t *str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *indicators(const eng_alert_t *al, bool origin)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < al->nindicators; i++) {
        const eng_indicator_t *x = &al->indicators[i];
        json_t *o = json_object();
        bool ok = o != NULL && put(o, "type", json_string(eng_ioc_type_name(x->type))) &&
                  put(o, "value", json_string(x->value)) &&
                  put(o, "source_field", str_or_null(x->source_field)) &&
                  (!origin || put(o, "origin", str_or_null(x->origin)));
        if (!ok || json_array_append_new(arr, o) != 0) {
            if (ok)
                o = NULL; /* append_new consumed it */
            json_decref(o);
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

json_t *eng_alert_json(const eng_alert_t *al, int flags)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_t *tags = json_array();
    for (size_t i = 0; tags != NULL && i < al->ntags; i++)
        if (json_array_append_new(tags, json_string(al->tags[i])) != 0) {
            json_decref(tags);
            tags = NULL;
        }
    bool ok = put(o, "title", json_string(al->field[ENG_F_TITLE])) &&
              put(o, "severity", json_string(al->field[ENG_F_SEVERITY])) &&
              put(o, "occurred_at", json_string(al->field[ENG_F_OCCURRED_AT])) &&
              put(o, "occurred_at_fallback", json_boolean(al->occurred_at_fallback)) &&
              put(o, "source_name", json_string(al->source_name)) &&
              put(o, "description", str_or_null(al->field[ENG_F_DESCRIPTION]));
    if (!ok)
        json_decref(tags); /* not handed to the object */
    ok = ok && put(o, "tags", tags) &&
         put(o, "detection_rule_ref", str_or_null(al->field[ENG_F_DETECTION_RULE_REF]));
    for (int f = ENG_F_SRC_IP; ok && f < ENG_F__COUNT; f++)
        if (al->field[f] != NULL)
            ok = put(o, eng_field_name((eng_field_t)f), json_string(al->field[f]));
    ok = ok && put(o, "fingerprint", json_string(al->fingerprint));
    if (ok && al->disposition != ENG_DISP_STORE)
        ok = put(o, "disposition", json_string(eng_disposition_name(al->disposition))) &&
             put(o, "disposition_rule", str_or_null(al->disposition_rule));
    if (ok && (flags & ENG_JSON_INDICATORS))
        ok = put(o, "indicators", indicators(al, flags & ENG_JSON_PROVENANCE));
    if (ok && (flags & ENG_JSON_PROVENANCE)) {
        json_t *pv = json_object();
        ok = pv != NULL;
        for (int f = 0; ok && f < ENG_F__COUNT; f++)
            if (al->origin[f] != NULL)
                ok = put(pv, eng_field_name((eng_field_t)f), json_string(al->origin[f]));
        if (ok && al->tags_origin != NULL)
            ok = put(pv, "tags", json_string(al->tags_origin));
        ok = ok ? put(o, "provenance", pv) : (json_decref(pv), false);
    }
    if (ok && (flags & ENG_JSON_RAW))
        ok = put(o, "raw_payload", al->raw != NULL ? json_incref(al->raw) : json_null());
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}
