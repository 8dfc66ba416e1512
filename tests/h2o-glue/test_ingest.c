/* tests/h2o-glue/test_ingest.c - the rows alertmapd hands to the store for
 * a payload: raw_payload is the exact body (or the split element), optional
 * fields as a JSON object, indicators with their type names. Runs the real
 * engine on the shipped generic mapping and on a split mapping written here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "glue.h"

static char rules_file[1024];

static eng_set_t *load_dir(const char *dir)
{
    eng_load_options_t opt = {.rules_file = rules_file, .check_samples = false};
    am_diags_t d;
    am_diags_init(&d);
    eng_set_t *s = NULL;
    int rc = eng_set_load(&s, dir, &opt, &d);
    if (rc != AM_OK)
        am_diags_print(&d, stderr);
    am_diags_dispose(&d);
    assert_int_equal(rc, AM_OK);
    return s;
}

static eng_set_t *shipped(void)
{
    const char *root = getenv("ALERTMAP_SOURCE_ROOT");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/mappings", root ? root : ".");
    return load_dir(dir);
}

/* Runs source src on body; the rows go to *rows. Returns the payload
 * (caller decrefs) so split elements stay valid. */
static json_t *run(store_alert_t **rows, eng_result_t *res, const eng_set_t *s, const char *src,
                   const char *body, am_arena_t *a)
{
    const eng_program_t *p = eng_set_find(s, src, strlen(src));
    assert_non_null(p);
    json_error_t je;
    json_t *payload = json_loads(body, JSON_REJECT_DUPLICATES, &je);
    assert_non_null(payload);
    eng_error_t err = {0};
    int rc = eng_run(res, p, payload, a, 1714557600LL * 1000000, &err);
    if (rc != AM_OK)
        fail_msg("eng_run: %s", err.message);
    assert_int_equal(glue_store_alerts(rows, res, payload, body, a), AM_OK);
    return payload;
}

static bool has_indicator(const store_alert_t *r, const char *type, const char *value)
{
    for (size_t i = 0; i < r->nindicators; i++)
        if (strcmp(r->indicators[i].type, type) == 0 && strcmp(r->indicators[i].value, value) == 0)
            return true;
    return false;
}

static void whole_payload_row(void **state)
{
    (void)state;
    eng_set_t *s = shipped();
    am_arena_t *a = am_arena_new(4096, 0);
    /* odd spacing and key order must survive: raw_payload is the body */
    const char *body = "{ \"title\" : \"Beacon to C2\",\n  \"severity\":\"HIGH\", "
                       "\"src_ip\":\"203.0.113.9\", \"tags\":[\"c2\"], \"rule_id\":\"R-1\" }";
    store_alert_t *rows;
    eng_result_t res;
    json_t *payload = run(&rows, &res, s, "generic", body, a);
    assert_int_equal(res.nalerts, 1);
    const store_alert_t *r = &rows[0];
    assert_ptr_equal(r->raw_payload, body);
    assert_string_equal(r->source_name, "generic");
    assert_string_equal(r->title, "Beacon to C2");
    assert_string_equal(r->severity, "High");
    assert_string_equal(r->detection_rule_ref, "R-1");
    assert_null(r->description);
    assert_int_equal(r->ntags, 1);
    assert_string_equal(r->tags[0], "c2");
    assert_string_equal(r->fingerprint, res.alerts[0].fingerprint);
    assert_int_equal(strlen(r->fingerprint), 64);
    assert_true(has_indicator(r, "ip", "203.0.113.9"));
    json_error_t je;
    json_t *fields = json_loads(r->fields_json, 0, &je);
    assert_non_null(fields);
    assert_int_equal(json_object_size(fields), 1);
    assert_string_equal(json_string_value(json_object_get(fields, "src_ip")), "203.0.113.9");
    json_decref(fields);
    json_decref(payload);
    am_arena_free(a);
    eng_set_unref(s);
}

/* fields_json is the text json_dumps(JSON_COMPACT) writes of the object of
 * the fields set, in field order, whether written directly (plain ASCII) or
 * through jansson (quotes, backslashes, control characters, UTF-8). */
static void optional_fields_text(void **state)
{
    (void)state;
    eng_set_t *s = shipped();
    static const char *const bodies[] = {
        "{\"title\":\"t\",\"src_ip\":\"203.0.113.9\",\"dest_ip\":\"10.0.0.1\","
        "\"user\":\"alice\",\"url\":\"http://x.example/a?b=c\"}",
        "{\"title\":\"t\",\"user\":\"DOM\\\\al\\\"ice\",\"url\":\"http://x.example/\"}",
        "{\"title\":\"t\",\"user\":\"j\\u00f6rg\\t\\u0001\",\"src_ip\":\"203.0.113.9\"}",
    };
    for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
        am_arena_t *a = am_arena_new(4096, 0);
        store_alert_t *rows;
        eng_result_t res;
        json_t *payload = run(&rows, &res, s, "generic", bodies[b], a);
        json_t *want = json_object();
        for (int f = ENG_F_SRC_IP; f < ENG_F__COUNT; f++)
            if (res.alerts[0].field[f] != NULL)
                json_object_set_new(want, eng_field_name((eng_field_t)f),
                                    json_string(res.alerts[0].field[f]));
        assert_true(json_object_size(want) >= 2);
        char *text = json_dumps(want, JSON_COMPACT);
        assert_non_null(rows[0].fields_json);
        assert_string_equal(rows[0].fields_json, text);
        free(text);
        json_decref(want);
        json_decref(payload);
        am_arena_free(a);
    }
    eng_set_unref(s);
}

static void no_optional_fields(void **state)
{
    (void)state;
    eng_set_t *s = shipped();
    am_arena_t *a = am_arena_new(4096, 0);
    store_alert_t *rows;
    eng_result_t res;
    json_t *payload = run(&rows, &res, s, "generic", "{\"title\":\"bare\"}", a);
    assert_null(rows[0].fields_json);
    assert_int_equal(rows[0].nindicators, 0);
    assert_string_equal(rows[0].severity, "Pending");
    assert_true(rows[0].occurred_at_fallback);
    json_decref(payload);
    am_arena_free(a);
    eng_set_unref(s);
}

static void split_rows(void **state)
{
    (void)state;
    char dir[] = "/tmp/glue-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/multi.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("source: multi\n"
          "split: alerts\n"
          "fields:\n"
          "  title: {path: labels.alertname, default: Unnamed}\n"
          "indicators:\n"
          "  - {path: labels.instance, type: ip}\n",
          f);
    fclose(f);
    eng_set_t *s = load_dir(dir);
    am_arena_t *a = am_arena_new(4096, 0);
    const char *body = "{\"receiver\":\"x\", \"alerts\":[ {\"labels\": {\"alertname\":\"A\", "
                       "\"instance\":\"198.51.100.1\"}}, {\"labels\":{\"alertname\":\"B\"}} ]}";
    store_alert_t *rows;
    eng_result_t res;
    json_t *payload = run(&rows, &res, s, "multi", body, a);
    assert_int_equal(res.nalerts, 2);
    assert_string_equal(rows[0].title, "A");
    assert_string_equal(rows[1].title, "B");
    /* each row keeps its own element, not the whole request */
    for (size_t i = 0; i < 2; i++) {
        json_error_t je;
        json_t *raw = json_loads(rows[i].raw_payload, 0, &je);
        assert_non_null(raw);
        assert_true(json_equal(raw, json_array_get(json_object_get(payload, "alerts"), i)));
        json_decref(raw);
    }
    assert_true(has_indicator(&rows[0], "ip", "198.51.100.1"));
    assert_int_equal(rows[1].nindicators, 0);
    json_decref(payload);
    am_arena_free(a);
    eng_set_unref(s);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const char *root = getenv("ALERTMAP_SOURCE_ROOT");
    snprintf(rules_file, sizeof(rules_file), "%s/mappings/rules/indicators.yaml",
             root ? root : ".");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(whole_payload_row),
        cmocka_unit_test(optional_fields_text),
        cmocka_unit_test(no_optional_fields),
        cmocka_unit_test(split_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
