/* tests/engine/test_exec.c - the executor: every construct of
 * docs/mapping-language.md run on payloads. */
#include "engtest.h"
#include "exec.h"

static json_t *cur_payload;
static eng_result_t cur_res;
static eng_error_t cur_err;
static int cur_rc;

/* Runs s on payload; the result stays valid until the next call. */
static const eng_alert_t *run(eng_set_t *s, const char *payload)
{
    json_decref(cur_payload);
    if (t_arena != NULL)
        am_arena_reset(t_arena);
    cur_payload = t_json(payload);
    cur_rc = t_run(&cur_res, &cur_err, s, cur_payload);
    if (cur_rc != 0)
        return NULL;
    assert_true(cur_res.nalerts >= 1);
    return &cur_res.alerts[0];
}

static const eng_alert_t *ok(eng_set_t *s, const char *payload)
{
    const eng_alert_t *a = run(s, payload);
    if (a == NULL)
        fail_msg("run failed: %s %s", cur_err.code, cur_err.message);
    return a;
}

static int teardown(void **state)
{
    (void)state;
    json_decref(cur_payload);
    cur_payload = NULL;
    return 0;
}

#define F(a, f) ((a)->field[ENG_F_##f])

static bool has_ioc(const eng_alert_t *a, const char *type, const char *value, const char *sf)
{
    for (size_t i = 0; i < a->nindicators; i++) {
        const eng_indicator_t *x = &a->indicators[i];
        if (strcmp(eng_ioc_type_name(x->type), type) == 0 && strcmp(x->value, value) == 0)
            return sf == NULL || strcmp(x->source_field, sf) == 0;
    }
    return false;
}

static void dump_iocs(const eng_alert_t *a)
{
    for (size_t i = 0; i < a->nindicators; i++)
        print_message("  %s %s (%s, %s)\n", eng_ioc_type_name(a->indicators[i].type),
                      a->indicators[i].value, a->indicators[i].source_field,
                      a->indicators[i].origin);
}

#define ASSERT_IOC(a, t, v, sf)                                                                    \
    do {                                                                                           \
        if (!has_ioc(a, t, v, sf)) {                                                               \
            dump_iocs(a);                                                                          \
            fail_msg("missing indicator %s %s from %s", t, v, sf ? sf : "?");                      \
        }                                                                                          \
    } while (0)

/* ---- paths and value expressions ------------------------------------------- */

static void test_paths_flat_and_nested(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "fields:\n"
                          "  title: kibana.alert.rule.name\n"
                          "  description: {path: [kibana.alert.reason, message]}\n"
                          "  detection_rule_ref: \"rules[-1].id\"\n"
                          "  tags: \"labels[*].name\"\n");
    const eng_alert_t *a = ok(s, "{\"kibana.alert.rule.name\":\"flat\",\"kibana\":{\"alert\":"
                                 "{\"reason\":\"nested reason\"}},\"rules\":[{\"id\":\"r1\"},"
                                 "{\"id\":\"r2\"}],\"labels\":[{\"name\":\"a\"},{\"name\":\"b\"},"
                                 "{\"name\":\"a\"},{\"x\":1},{\"name\":null}]}");
    assert_string_equal(F(a, TITLE), "flat");
    assert_string_equal(F(a, DESCRIPTION), "nested reason");
    assert_string_equal(F(a, DETECTION_RULE_REF), "r2");
    assert_int_equal(a->ntags, 2);
    assert_string_equal(a->tags[0], "a");
    assert_string_equal(a->tags[1], "b");
    assert_string_equal(a->origin[ENG_F_TITLE], "t.yaml:3 kibana.alert.rule.name");
    assert_string_equal(a->origin[ENG_F_DESCRIPTION], "t.yaml:4 kibana.alert.reason");
    assert_string_equal(a->tags_origin, "t.yaml:6 labels[*].name");
    /* mixed: part flat, part nested; fallback to the second path */
    a = ok(s, "{\"kibana.alert\":{\"rule.name\":\"mixed\"},\"message\":\"m\"}");
    assert_string_equal(F(a, TITLE), "mixed");
    assert_string_equal(F(a, DESCRIPTION), "m");
    assert_string_equal(a->origin[ENG_F_DESCRIPTION], "t.yaml:4 message");
    assert_null(F(a, DETECTION_RULE_REF));
    assert_null(a->origin[ENG_F_DETECTION_RULE_REF]);
    assert_int_equal(a->ntags, 0);
    eng_set_unref(s);
}

static void test_defaults_and_untitled(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "display_name: Demo Tool\n"
                          "fields:\n"
                          "  title: alert.name\n"
                          "  description: {path: alert.text, default: no text}\n");
    const eng_alert_t *a = ok(s, "{\"alert\":{\"name\":\"\",\"text\":null}}");
    assert_string_equal(F(a, TITLE), "Untitled Demo Tool alert");
    assert_string_equal(F(a, DESCRIPTION), "no text");
    assert_string_equal(a->origin[ENG_F_DESCRIPTION], "t.yaml:5 default");
    assert_string_equal(F(a, SEVERITY), "Pending");
    assert_true(a->occurred_at_fallback);
    assert_int_equal(a->occurred_at_us, T_NOW);
    assert_string_equal(F(a, OCCURRED_AT), "2024-05-01T10:00:00Z");
    assert_string_equal(a->source_name, "demo");
    eng_set_unref(s);
}

static void test_const_template_first(void **state)
{
    (void)state;
    eng_set_t *s =
        t_load("source: demo\n"
               "fields:\n"
               "  title: {template: \"{rule} on {host.name} {{literal}}\"}\n"
               "  description: {first: [{template: \"{user}@{domain}\"}, user, {const: nobody}]}\n"
               "  detection_rule_ref: {const: fixed-ref}\n");
    const eng_alert_t *a = ok(s, "{\"rule\":\"Brute force\",\"host\":{\"name\":\"ws1\"},"
                                 "\"user\":\"alice\",\"domain\":\"corp.example\"}");
    assert_string_equal(F(a, TITLE), "Brute force on ws1 {literal}");
    assert_string_equal(F(a, DESCRIPTION), "alice@corp.example");
    assert_string_equal(a->origin[ENG_F_DESCRIPTION], "t.yaml:4 template");
    assert_string_equal(F(a, DETECTION_RULE_REF), "fixed-ref");
    assert_string_equal(a->origin[ENG_F_DETECTION_RULE_REF], "t.yaml:5 const");
    /* a missing hole makes the template absent: first falls through */
    a = ok(s, "{\"rule\":\"R\",\"user\":\"bob\"}");
    assert_string_equal(F(a, TITLE), "Untitled demo alert");
    assert_string_equal(F(a, DESCRIPTION), "bob");
    assert_string_equal(a->origin[ENG_F_DESCRIPTION], "t.yaml:4 user");
    a = ok(s, "{\"rule\":7,\"host\":{\"name\":[\"h1\",\"h2\"]}}");
    assert_string_equal(F(a, TITLE), "7 on h1 {literal}");
    assert_string_equal(F(a, DESCRIPTION), "nobody");
    eng_set_unref(s);
}

static void test_number_text(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "fields:\n"
                          "  title: n\n"
                          "  description: r\n"
                          "  detection_rule_ref: b\n"
                          "  tags: arr\n");
    const eng_alert_t *a =
        ok(s, "{\"n\":42,\"r\":0.1,\"b\":false,\"arr\":[1,2.5,true,\"s\",{\"o\":1},[2]]}");
    assert_string_equal(F(a, TITLE), "42");
    assert_string_equal(F(a, DESCRIPTION), "0.1");
    assert_string_equal(F(a, DETECTION_RULE_REF), "false");
    assert_int_equal(a->ntags, 4);
    assert_string_equal(a->tags[0], "1");
    assert_string_equal(a->tags[1], "2.5");
    assert_string_equal(a->tags[2], "true");
    assert_string_equal(a->tags[3], "s");
    /* an object is not a value: the field is absent */
    a = ok(s, "{\"n\":{\"x\":1},\"r\":[null,{},\"first scalar\",\"second\"]}");
    assert_string_equal(F(a, TITLE), "Untitled demo alert");
    assert_string_equal(F(a, DESCRIPTION), "first scalar");
    eng_set_unref(s);
}

static void test_transforms(void **state)
{
    (void)state;
    eng_set_t *s =
        t_load("source: demo\n"
               "fields:\n"
               "  title: {path: t, trim: true, upper: true}\n"
               "  description: {path: d, regex: 'id=(?<value>[0-9]+)'}\n"
               "  detection_rule_ref: {path: r, regex: '([^/]+)/*$'}\n"
               "  src_hostname: {path: h, regex: '[a-z]+-[0-9]+', lower: true}\n"
               "  actor_username: {path: u, map: {ADMIN: root, guest: ~}, map_default: other}\n"
               "  dns_query: {path: q, map: {x: y}}\n");
    const eng_alert_t *a = ok(s, "{\"t\":\"  hello world \\n\",\"d\":\"see id=1234 now\","
                                 "\"r\":\"/subs/1/alertRules/abc-def//\",\"h\":\"Host: WS-01 up\","
                                 "\"u\":\"Admin\",\"q\":\"keep.example.com\"}");
    assert_string_equal(F(a, TITLE), "HELLO WORLD");
    assert_string_equal(F(a, DESCRIPTION), "1234");
    assert_string_equal(F(a, DETECTION_RULE_REF), "abc-def");
    assert_null(F(a, SRC_HOSTNAME)); /* the regex is applied before lower: no match */
    assert_string_equal(F(a, ACTOR_USERNAME), "root");
    assert_string_equal(F(a, DNS_QUERY), "keep.example.com"); /* unlisted passes through */
    a = ok(s, "{\"h\":\"host ws-02\",\"u\":\"GUEST\",\"d\":\"no number\"}");
    assert_string_equal(F(a, SRC_HOSTNAME), "ws-02");
    assert_null(F(a, ACTOR_USERNAME)); /* mapped to null = absent */
    assert_null(F(a, DESCRIPTION));    /* no match = absent */
    a = ok(s, "{\"u\":\"someone\"}");
    assert_string_equal(F(a, ACTOR_USERNAME), "other");
    eng_set_unref(s);
}

static void test_severity(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "fields:\n"
                          "  title: t\n"
                          "  severity: {path: [sev, level], map: {info: Informational, "
                          "\"1\": Low, SEV-CRIT: critical, none: ~}}\n");
    const char *cases[][2] = {
        {"{\"sev\":\"HIGH\"}", "High"},          {"{\"sev\":\"high\"}", "High"},
        {"{\"sev\":\"Info\"}", "Informational"}, {"{\"sev\":1}", "Low"},
        {"{\"sev\":\"sev-crit\"}", "Critical"},  {"{\"sev\":\"urgent\"}", "Pending"},
        {"{\"sev\":\"None\"}", "Pending"},       {"{}", "Pending"},
        {"{\"level\":\"medium\"}", "Medium"},    {"{\"sev\":\"pending\"}", "Pending"},
    };
    for (size_t i = 0; i < AM_ARRAY_LEN(cases); i++) {
        const eng_alert_t *a = ok(s, cases[i][0]);
        if (strcmp(F(a, SEVERITY), cases[i][1]) != 0)
            fail_msg("%s: severity %s, want %s", cases[i][0], F(a, SEVERITY), cases[i][1]);
    }
    eng_set_unref(s);
}

static void test_ranges(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: guardduty\n"
                          "fields:\n"
                          "  title: t\n"
                          "  severity:\n"
                          "    path: detail.severity\n"
                          "    ranges:\n"
                          "      - {min: 0, max: 3.9, value: Low}\n"
                          "      - {min: 4, max: 6.9, value: Medium}\n"
                          "      - {min: 7, max: 8.9, value: High}\n"
                          "      - {min: 9, max: 10, value: Critical}\n"
                          "  description:\n"
                          "    path: n\n"
                          "    ranges: [{max: -1, value: negative}, {min: 100, value: big}]\n");
    const char *cases[][2] = {
        {"{\"detail\":{\"severity\":0}}", "Low"},
        {"{\"detail\":{\"severity\":2.5}}", "Low"},
        {"{\"detail\":{\"severity\":5}}", "Medium"},
        {"{\"detail\":{\"severity\":\"8.9\"}}", "High"},
        {"{\"detail\":{\"severity\":10}}", "Critical"},
        {"{\"detail\":{\"severity\":3.95}}", "Pending"}, /* between ranges */
        {"{\"detail\":{\"severity\":11}}", "Pending"},
        {"{\"detail\":{\"severity\":\"high\"}}", "Pending"}, /* not a number */
    };
    for (size_t i = 0; i < AM_ARRAY_LEN(cases); i++) {
        const eng_alert_t *a = ok(s, cases[i][0]);
        if (strcmp(F(a, SEVERITY), cases[i][1]) != 0)
            fail_msg("%s: severity %s, want %s", cases[i][0], F(a, SEVERITY), cases[i][1]);
    }
    assert_string_equal(F(ok(s, "{\"n\":-5}"), DESCRIPTION), "negative");
    assert_string_equal(F(ok(s, "{\"n\":\" 1e3 \"}"), DESCRIPTION), "big");
    assert_null(F(ok(s, "{\"n\":50}"), DESCRIPTION));
    eng_set_unref(s);
}

/* ---- time ------------------------------------------------------------------- */

static void expect_time(eng_set_t *s, const char *payload, const char *want)
{
    const eng_alert_t *a = ok(s, payload);
    if (want == NULL) {
        if (!a->occurred_at_fallback)
            fail_msg("%s: parsed as %s, want fallback", payload, F(a, OCCURRED_AT));
        assert_int_equal(a->occurred_at_us, T_NOW);
        return;
    }
    if (a->occurred_at_fallback || strcmp(F(a, OCCURRED_AT), want) != 0)
        fail_msg("%s: got %s (fallback %d), want %s", payload, F(a, OCCURRED_AT),
                 a->occurred_at_fallback, want);
}

static void test_times_auto(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "fields:\n"
                          "  title: t\n"
                          "  occurred_at: [ts, created]\n");
    expect_time(s, "{\"ts\":\"2024-05-01T10:00:00Z\"}", "2024-05-01T10:00:00Z");
    expect_time(s, "{\"ts\":\"2024-05-01T10:00:00.123Z\"}", "2024-05-01T10:00:00.123Z");
    expect_time(s, "{\"ts\":\"2024-05-01T10:00:00.1234567Z\"}", "2024-05-01T10:00:00.123456Z");
    expect_time(s, "{\"ts\":\"2024-05-01T12:00:00+02:00\"}", "2024-05-01T10:00:00Z");
    expect_time(s, "{\"ts\":\"2024-05-01T12:30:00+0230\"}", "2024-05-01T10:00:00Z");
    expect_time(s, "{\"ts\":\"2024-05-01T05:00:00-05:00\"}", "2024-05-01T10:00:00Z");
    expect_time(s, "{\"ts\":\"2024-05-01T10:00:00\"}", "2024-05-01T10:00:00Z");
    expect_time(s, "{\"ts\":1714557600}", "2024-05-01T10:00:00Z");
    expect_time(s, "{\"ts\":1714557600123}", "2024-05-01T10:00:00.123Z");
    expect_time(s, "{\"ts\":\"1714557600.5\"}", "2024-05-01T10:00:00.5Z");
    expect_time(s, "{\"ts\":1714557600.25}", "2024-05-01T10:00:00.25Z");
    /* null is absent; an unparseable value falls through to the next path */
    expect_time(s, "{\"ts\":null,\"created\":\"2024-05-01T09:00:00Z\"}", "2024-05-01T09:00:00Z");
    expect_time(s, "{\"ts\":\"yesterday\",\"created\":\"2024-05-01T09:00:00Z\"}",
                "2024-05-01T09:00:00Z");
    expect_time(s, "{\"ts\":\"yesterday\"}", NULL);
    expect_time(s, "{\"ts\":\"2024-13-01T10:00:00Z\"}", NULL);
    expect_time(s, "{\"ts\":true}", NULL);
    expect_time(s, "{}", NULL);
    const eng_alert_t *a = ok(s, "{\"created\":\"2024-05-01T09:00:00Z\"}");
    assert_string_equal(a->origin[ENG_F_OCCURRED_AT], "t.yaml:4 created");
    eng_set_unref(s);
}

static void test_times_formats(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "fields:\n"
                          "  title: t\n"
                          "  occurred_at: {path: ts, time: epoch_ms}\n");
    expect_time(s, "{\"ts\":1714557600000}", "2024-05-01T10:00:00Z");
    expect_time(s, "{\"ts\":\"1714557600000\"}", "2024-05-01T10:00:00Z");
    eng_set_unref(s);
    s = t_load("source: demo\n"
               "fields:\n"
               "  title: t\n"
               "  occurred_at: {path: ts, time: epoch_s}\n");
    expect_time(s, "{\"ts\":\"1714557600\"}", "2024-05-01T10:00:00Z");
    expect_time(s, "{\"ts\":\"2024-05-01T10:00:00Z\"}", NULL);
    eng_set_unref(s);
    s = t_load("source: demo\n"
               "fields:\n"
               "  title: t\n"
               "  occurred_at: {path: ts, time: iso8601}\n");
    expect_time(s, "{\"ts\":\"2024-05-01 10:00:00.5+00:00\"}", "2024-05-01T10:00:00.5Z");
    expect_time(s, "{\"ts\":1714557600}", NULL);
    eng_set_unref(s);
    /* a transformed value is parsed from its text */
    s = t_load("source: demo\n"
               "fields:\n"
               "  title: t\n"
               "  occurred_at: {path: ts, regex: 'at (\\d+)', time: epoch_s}\n");
    expect_time(s, "{\"ts\":\"logged at 1714557600 by x\"}", "2024-05-01T10:00:00Z");
    eng_set_unref(s);
}

/* ---- match rules and split -------------------------------------------------- */

static void expect_reject(eng_set_t *s, const char *payload, const char *msg)
{
    const eng_alert_t *a = run(s, payload);
    assert_null(a);
    assert_int_equal(cur_rc, AM_EINVAL);
    assert_string_equal(cur_err.code, "INVALID_PAYLOAD");
    assert_string_equal(cur_err.message, msg);
}

static void test_match_rules(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "match:\n"
                          "  - object: properties\n"
                          "  - any: [properties.title, properties.severity]\n"
                          "    name: title-or-severity\n"
                          "  - present: [kind, id]\n"
                          "  - equals: {path: kind, value: [alert, incident]}\n"
                          "  - array: items\n"
                          "    message: items must be a list\n"
                          "fields:\n"
                          "  title: properties.title\n");
    expect_reject(s, "{}", "match rule 'match[0]' (t.yaml:3) failed: properties is not present");
    expect_reject(s, "{\"properties\":[1]}",
                  "match rule 'match[0]' (t.yaml:3) failed: properties is not an object");
    expect_reject(s, "{\"properties\":{}}",
                  "match rule 'title-or-severity' (t.yaml:4) failed: none of properties.title, "
                  "properties.severity is present");
    expect_reject(s, "{\"properties\":{\"severity\":\"High\"},\"kind\":\"alert\"}",
                  "match rule 'match[2]' (t.yaml:6) failed: id is not present");
    expect_reject(s, "{\"properties\":{\"title\":\"x\"},\"kind\":\"event\",\"id\":1}",
                  "match rule 'match[3]' (t.yaml:7) failed: kind is 'event', expected one of "
                  "'alert', 'incident'");
    expect_reject(s, "{\"properties\":{\"title\":\"x\"},\"kind\":[1],\"id\":1}",
                  "match rule 'match[3]' (t.yaml:7) failed: kind is not a string, number or "
                  "boolean");
    expect_reject(s, "{\"properties\":{\"title\":\"x\"},\"kind\":\"ALERT\",\"id\":1,\"items\":2}",
                  "match rule 'match[4]' (t.yaml:8) failed: items must be a list");
    const eng_alert_t *a =
        ok(s, "{\"properties\":{\"title\":\"x\"},\"kind\":\"Incident\",\"id\":1,\"items\":[]}");
    assert_string_equal(F(a, TITLE), "x");
    eng_set_unref(s);
}

static void test_split(void **state)
{
    (void)state;
    eng_set_t *s;
    s = t_load("source: am\n"
               "split: alerts\n"
               "fields:\n"
               "  title: labels.alertname\n"
               "  description: $.commonAnnotations.summary\n"
               "  tags: {path: \"$.receiver\"}\n");
    const eng_alert_t *a = ok(s, "{\"receiver\":\"team\",\"commonAnnotations\":{\"summary\":\"S\"},"
                                 "\"alerts\":[{\"labels\":{\"alertname\":\"A1\"}},"
                                 "{\"labels\":{\"alertname\":\"A2\"}}]}");
    assert_int_equal(cur_res.nalerts, 2);
    assert_string_equal(F(a, TITLE), "A1");
    assert_string_equal(F(&cur_res.alerts[1], TITLE), "A2");
    assert_string_equal(F(&cur_res.alerts[1], DESCRIPTION), "S");
    assert_string_equal(cur_res.alerts[1].tags[0], "team");
    assert_ptr_equal(cur_res.alerts[1].raw,
                     json_array_get(json_object_get(cur_payload, "alerts"), 1));
    expect_reject(s, "{\"alerts\":[]}",
                  "split (t.yaml:2): alerts is missing, empty or not an array");
    expect_reject(s, "{\"alerts\":{}}",
                  "split (t.yaml:2): alerts is missing, empty or not an array");
    expect_reject(s, "{\"alerts\":[{},3]}",
                  "split (t.yaml:2): element 1 of alerts is not an object");
    /* more than ENG_MAX_SPLIT elements */
    json_t *big = json_object(), *arr = json_array();
    for (int i = 0; i <= ENG_MAX_SPLIT; i++)
        json_array_append_new(arr, json_object());
    json_object_set_new(big, "alerts", arr);
    eng_result_t res;
    eng_error_t err;
    assert_int_equal(t_run(&res, &err, s, big), AM_ELIMIT);
    assert_string_equal(err.code, "LIMIT_EXCEEDED");
    json_decref(big);
    eng_set_unref(s);
}

static void test_not_object(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\nfields:\n  title: t\n");
    json_t *arr = json_array();
    eng_result_t res;
    eng_error_t err;
    assert_int_equal(t_run(&res, &err, s, arr), AM_EINVAL);
    assert_string_equal(err.code, "INVALID_PAYLOAD");
    json_decref(arr);
    eng_set_unref(s);
}

/* ---- indicators ------------------------------------------------------------- */

static void test_indicator_rules(void **state)
{
    (void)state;
    eng_set_t *s =
        t_load("source: demo\n"
               "fields:\n"
               "  title: t\n"
               "  src_ip: src\n"
               "  dst_hostname: host\n"
               "  actor_email: mail\n"
               "indicators:\n"
               "  - {path: [source.ip, source.address], type: ip}\n"
               "  - {path: destination.domain, type: domain}\n"
               "  - {each: \"Entities[?Type=ip]\", type: ip, value: Address}\n"
               "  - each: \"Entities[?Type=account]\"\n"
               "    type: account\n"
               "    value: {first: [{template: \"{Name}@{UPNSuffix}\"}, Name]}\n"
               "  - each: \"Entities[?Type=filehash]\"\n"
               "    type: {path: Algorithm, map: {SHA256: hash_sha256, MD5: hash_md5}}\n"
               "    value: Value\n"
               "  - {scan: [description], types: [url, ip]}\n"
               "  - {regex: 'user=(?<account>\\S+) from (?<ip>\\S+)', in: [raw], name: login}\n");
    const char *sha = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
    char payload[2048];
    snprintf(payload, sizeof(payload),
             "{\"t\":\"x\",\"src\":\"10.0.0.5\",\"host\":\"WS-01.corp.local\","
             "\"mail\":\"Bob@Example.com\","
             "\"source\":{\"ip\":[\"203.0.113.9\",\"not-an-ip\",\"198.51.100.1\"]},"
             "\"destination\":{\"domain\":\"files.corp.local\"},"
             "\"Entities\":[{\"Type\":\"ip\",\"Address\":\"203.0.113.9\"},"
             "{\"Type\":\"ip\",\"Address\":\"192.0.2.7\"},"
             "{\"Type\":\"account\",\"Name\":\"alice\",\"UPNSuffix\":\"contoso.com\"},"
             "{\"Type\":\"account\",\"Name\":\"svc_backup\"},"
             "{\"Type\":\"filehash\",\"Algorithm\":\"SHA256\",\"Value\":\"%s\"},"
             "{\"Type\":\"filehash\",\"Algorithm\":\"SHA256AC\",\"Value\":\"%s\"}],"
             "\"description\":\"Beacon to hxxps://evil[.]example.com/x from 198.51.100.77\","
             "\"raw\":\"ts=1 user=CORP\\\\carol from 192.0.2.99 ok\"}",
             sha, sha);
    const eng_alert_t *a = ok(s, payload);
    ASSERT_IOC(a, "ip", "203.0.113.9", "source.ip");
    ASSERT_IOC(a, "ip", "198.51.100.1", "source.ip");
    ASSERT_IOC(a, "domain", "files.corp.local", "destination.domain");
    ASSERT_IOC(a, "ip", "192.0.2.7", "Entities[?Type=ip].Address");
    ASSERT_IOC(a, "account", "alice@contoso.com", "Entities[?Type=account].{Name}@{UPNSuffix}");
    ASSERT_IOC(a, "account", "svc_backup", "Entities[?Type=account].Name");
    ASSERT_IOC(a, "hash_sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
               "Entities[?Type=filehash].Value");
    ASSERT_IOC(a, "url", "https://evil.example.com/x", "description");
    ASSERT_IOC(a, "ip", "198.51.100.77", "description");
    ASSERT_IOC(a, "account", "corp\\carol", "regex:login");
    ASSERT_IOC(a, "ip", "192.0.2.99", "regex:login");
    ASSERT_IOC(a, "ip", "10.0.0.5", "src_ip");
    ASSERT_IOC(a, "domain", "ws-01.corp.local", "dst_hostname");
    ASSERT_IOC(a, "email", "bob@example.com", "actor_email");
    /* the scan rule was limited to url and ip: the url's host is not a domain here */
    assert_false(has_ioc(a, "domain", "evil.example.com", NULL));
    /* order: rule order, auto indicators last; duplicates keep the first */
    assert_int_equal(a->indicators[0].type, ENG_IOC_IP);
    assert_string_equal(a->indicators[0].value, "203.0.113.9");
    assert_string_equal(a->indicators[0].source_field, "source.ip");
    assert_string_equal(a->indicators[0].origin, "t.yaml:8");
    assert_string_equal(a->indicators[a->nindicators - 1].value, "bob@example.com");
    for (size_t i = 0; i < a->nindicators; i++)
        for (size_t j = i + 1; j < a->nindicators; j++)
            assert_false(a->indicators[i].type == a->indicators[j].type &&
                         strcmp(a->indicators[i].value, a->indicators[j].value) == 0);
    /* the fingerprint covers title, source and the sorted indicators */
    char fp[65];
    eng_fingerprint(fp, F(a, TITLE), "demo", a->indicators, a->nindicators);
    assert_string_equal(a->fingerprint, fp);
    eng_set_unref(s);
}

static void test_scan_all(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "fields:\n"
                          "  title: t\n"
                          "indicators:\n"
                          "  - {scan: all, types: [ip, domain, hash_md5]}\n");
    const eng_alert_t *a = ok(s, "{\"t\":\"from 192.0.2.1\",\"a\":{\"b\":[\"x\",\"see "
                                 "evil.example.com\"]},\"k.dot\":{\"v\":"
                                 "\"d41d8cd98f00b204e9800998ecf8427e\"},\"n\":17}");
    ASSERT_IOC(a, "ip", "192.0.2.1", "t");
    ASSERT_IOC(a, "domain", "evil.example.com", "a.b[1]");
    ASSERT_IOC(a, "hash_md5", "d41d8cd98f00b204e9800998ecf8427e", "['k.dot'].v");
    assert_int_equal(a->nindicators, 3);
    /* nesting beyond ENG_MAX_DEPTH is a limit error, not a crash */
    char deep[4096] = "";
    size_t off = 0;
    for (int i = 0; i < ENG_MAX_DEPTH + 2; i++)
        off += (size_t)snprintf(deep + off, sizeof(deep) - off, "{\"a\":");
    off += (size_t)snprintf(deep + off, sizeof(deep) - off, "\"x\"");
    for (int i = 0; i < ENG_MAX_DEPTH + 2; i++)
        off += (size_t)snprintf(deep + off, sizeof(deep) - off, "}");
    assert_null(run(s, deep));
    assert_int_equal(cur_rc, AM_ELIMIT);
    assert_string_equal(cur_err.code, "LIMIT_EXCEEDED");
    eng_set_unref(s);
}

static void test_indicator_limit(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "fields:\n"
                          "  title: t\n"
                          "indicators:\n"
                          "  - {path: \"ips[*]\", type: ip}\n");
    json_t *p = json_object(), *arr = json_array();
    for (int i = 0; i < ENG_MAX_INDICATORS + 5; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 256, i % 256);
        json_array_append_new(arr, json_string(ip));
    }
    json_object_set_new(p, "ips", arr);
    eng_result_t res;
    eng_error_t err;
    assert_int_equal(t_run(&res, &err, s, p), AM_ELIMIT);
    assert_string_equal(err.code, "LIMIT_EXCEEDED");
    /* exactly at the bound is fine */
    while (json_array_size(arr) > ENG_MAX_INDICATORS)
        json_array_remove(arr, 0);
    am_arena_reset(t_arena);
    assert_int_equal(t_run(&res, &err, s, p), 0);
    assert_int_equal(res.alerts[0].nindicators, ENG_MAX_INDICATORS);
    json_decref(p);
    eng_set_unref(s);
}

/* The first error wins: a later failure (for instance while unwinding)
 * keeps the code and message of the first one. */
static void test_first_error_wins(void **state)
{
    (void)state;
    eng_error_t err = {0};
    run_t r = {.err = &err};
    assert_int_equal(eng_ex_fail(&r, AM_EINVAL, "INVALID_PAYLOAD", "first %d", 1), AM_EINVAL);
    assert_int_equal(eng_ex_no_room(&r), AM_ELIMIT);
    assert_int_equal(eng_ex_fail(&r, AM_ELIMIT, "LIMIT_EXCEEDED", "second"), AM_ELIMIT);
    assert_string_equal(err.code, "INVALID_PAYLOAD");
    assert_string_equal(err.message, "first 1");
    r.err = NULL; /* no error wanted: only the code comes back */
    assert_int_equal(eng_ex_fail(&r, AM_EINVAL, "INVALID_PAYLOAD", "ignored"), AM_EINVAL);
}

/* A call whose arena reaches its cap is over a limit (LIMIT_EXCEEDED,
 * AM_ELIMIT), never an internal error. */
static void test_arena_cap_is_limit_exceeded(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "fields:\n"
                          "  title: {template: \"{a} {b} {a} {b}\"}\n"
                          "  tags: \"t[*]\"\n");
    json_t *p = json_object(), *arr = json_array();
    for (int i = 0; i < 200; i++) {
        char tag[32];
        snprintf(tag, sizeof(tag), "tag-number-%d", i);
        json_array_append_new(arr, json_string(tag));
    }
    json_object_set_new(p, "t", arr);
    json_object_set_new(p, "a", json_string("some text"));
    json_object_set_new(p, "b", json_string("more text"));
    am_arena_t *small = am_arena_new(256, 1024);
    eng_result_t res;
    eng_error_t err;
    assert_int_equal(eng_run(&res, eng_set_at(s, 0), p, small, T_NOW, &err), AM_ELIMIT);
    assert_string_equal(err.code, "LIMIT_EXCEEDED");
    assert_non_null(strstr(err.message, "memory"));
    am_arena_free(small);
    json_decref(p);
    eng_set_unref(s);
}

static void test_regex_rule_limits(void **state)
{
    (void)state;
    /* a catastrophic pattern stops at the match limit instead of hanging */
    eng_set_t *s = t_load("source: demo\n"
                          "fields:\n"
                          "  title: t\n"
                          "  description: {path: t, regex: '^(a+)+$'}\n"
                          "indicators:\n"
                          "  - {regex: '(?<domain>(a|aa)+b)', in: all}\n");
    char payload[200] = "{\"t\":\"";
    memset(payload + 6, 'a', 60);
    memcpy(payload + 66, "c\"}", 4);
    const eng_alert_t *a = ok(s, payload);
    assert_null(F(a, DESCRIPTION));
    assert_int_equal(a->nindicators, 0);
    eng_set_unref(s);
}

static void test_first_chain_and_each_array(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "split: items\n"
                          "fields:\n"
                          "  title: {first: [{path: a, regex: 'x-(\\w+)'}, b], upper: true}\n"
                          "  description: {template: \"{$.env} / {name}\"}\n"
                          "  tags: [labels, $.labels]\n"
                          "indicators:\n"
                          "  - {each: hosts, type: domain, value: fqdn}\n");
    const eng_alert_t *a =
        ok(s, "{\"env\":\"prod\",\"labels\":[\"root\"],\"items\":[{\"a\":\"id x-abc\","
              "\"name\":\"n1\",\"hosts\":[{\"fqdn\":\"a.example.com\"},null,"
              "{\"fqdn\":\"b.example.com\"}]},{\"a\":\"nothing\",\"b\":\"fallback\","
              "\"labels\":[\"own\"]}]}");
    assert_string_equal(F(a, TITLE), "ABC");
    assert_string_equal(F(a, DESCRIPTION), "prod / n1");
    assert_int_equal(a->ntags, 1);
    assert_string_equal(a->tags[0], "root"); /* the element has none: the root's */
    ASSERT_IOC(a, "domain", "a.example.com", "hosts.fqdn");
    ASSERT_IOC(a, "domain", "b.example.com", "hosts.fqdn");
    const eng_alert_t *b = &cur_res.alerts[1];
    assert_string_equal(F(b, TITLE), "FALLBACK");
    assert_string_equal(b->tags[0], "own");
    assert_null(F(b, DESCRIPTION)); /* hole {name} missing */
    eng_set_unref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_paths_flat_and_nested, teardown),
        cmocka_unit_test_teardown(test_defaults_and_untitled, teardown),
        cmocka_unit_test_teardown(test_const_template_first, teardown),
        cmocka_unit_test_teardown(test_number_text, teardown),
        cmocka_unit_test_teardown(test_transforms, teardown),
        cmocka_unit_test_teardown(test_severity, teardown),
        cmocka_unit_test_teardown(test_ranges, teardown),
        cmocka_unit_test_teardown(test_times_auto, teardown),
        cmocka_unit_test_teardown(test_times_formats, teardown),
        cmocka_unit_test_teardown(test_match_rules, teardown),
        cmocka_unit_test_teardown(test_split, teardown),
        cmocka_unit_test_teardown(test_not_object, teardown),
        cmocka_unit_test_teardown(test_indicator_rules, teardown),
        cmocka_unit_test_teardown(test_scan_all, teardown),
        cmocka_unit_test_teardown(test_indicator_limit, teardown),
        cmocka_unit_test(test_first_error_wins),
        cmocka_unit_test_teardown(test_arena_cap_is_limit_exceeded, teardown),
        cmocka_unit_test_teardown(test_regex_rule_limits, teardown),
        cmocka_unit_test_teardown(test_first_chain_and_each_array, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    am_arena_free(t_arena);
    return rc;
}
