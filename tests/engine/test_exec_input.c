/* tests/engine/test_exec_input.c - the constructs of docs/mapping-language.md
 * that read more than one path or more than the body: decode and unwrap,
 * $headers, all, when and not, optional split, dispositions, verification,
 * half-open ranges, time in alternatives, epoch precision, element filters
 * and context fields. */
#include "engtest.h"

static json_t *cur_payload;
static eng_result_t cur_res;
static eng_error_t cur_err;
static int cur_rc;

typedef struct {
    const char *names[4], *values[4];
} hdrs_t;

static const char *hdr(void *ctx, const char *name, size_t *len)
{
    const hdrs_t *h = ctx;
    for (int i = 0; i < 4 && h->names[i] != NULL; i++)
        if (strcasecmp(h->names[i], name) == 0) {
            *len = strlen(h->values[i]);
            return h->values[i];
        }
    return NULL;
}

/* Runs s on payload with headers h (may be NULL). */
static const eng_alert_t *run_h(eng_set_t *s, const char *payload, hdrs_t *h)
{
    json_decref(cur_payload);
    if (t_arena == NULL)
        t_arena = am_arena_new(16384, 0);
    am_arena_reset(t_arena);
    cur_payload = t_json(payload);
    eng_input_t in = {.header = h != NULL ? hdr : NULL, .header_ctx = h};
    cur_rc = eng_run_input(&cur_res, eng_set_at(s, 0), cur_payload, &in, t_arena, T_NOW, &cur_err);
    return cur_rc == 0 ? &cur_res.alerts[0] : NULL;
}

static const eng_alert_t *ok_h(eng_set_t *s, const char *payload, hdrs_t *h)
{
    const eng_alert_t *a = run_h(s, payload, h);
    if (a == NULL)
        fail_msg("run failed: %s %s", cur_err.code, cur_err.message);
    return a;
}

#define ok(s, p) ok_h((s), (p), NULL)
#define F(a, f)  ((a)->field[ENG_F_##f])

/* Compiling yaml fails with exactly the diagnostics want. */
static void t_compile_fails(const char *yaml, const char *want)
{
    eng_set_t *s = NULL;
    char diags[4096];
    assert_int_not_equal(t_compile(&s, yaml, diags, sizeof(diags)), 0);
    if (strcmp(diags, want) != 0)
        fail_msg("diagnostics differ:\n--- want\n%s--- got\n%s", want, diags);
}

static int teardown(void **state)
{
    (void)state;
    json_decref(cur_payload);
    cur_payload = NULL;
    return 0;
}

static void test_decode_and_unwrap(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "decode:\n"
                          "  - {path: Message, as: json, if: {equals: {path: Type, value: N}}}\n"
                          "  - {path: Message.detail.blob, as: base64-json}\n"
                          "  - {path: message.data, as: base64}\n"
                          "unwrap: [Message.detail, detail]\n"
                          "fields:\n"
                          "  title: title\n"
                          "  description: blob.note\n");
    /* JSON in a string holding base64 JSON (nested) */
    const eng_alert_t *a =
        ok(s, "{\"Type\":\"N\",\"Message\":\"{\\\"detail\\\":{\\\"title\\\":\\\"sns\\\","
              "\\\"blob\\\":\\\"eyJub3RlIjoiaW5uZXIifQ\\\"}}\"}");
    assert_string_equal(F(a, TITLE), "sns");
    assert_string_equal(F(a, DESCRIPTION), "inner"); /* {"note":"inner"}, no padding */
    /* the bare and the EventBridge shape take the same mapping */
    assert_string_equal(F(ok(s, "{\"title\":\"bare\"}"), TITLE), "bare");
    assert_string_equal(F(ok(s, "{\"detail\":{\"title\":\"eb\"}}"), TITLE), "eb");
    /* the condition keeps a plain-text Message undecoded */
    a = ok(s, "{\"Type\":\"SubscriptionConfirmation\",\"Message\":\"hello\",\"title\":\"c\"}");
    assert_string_equal(F(a, TITLE), "c");
    /* text that does not decode is refused, naming the step */
    assert_null(run_h(s, "{\"Type\":\"N\",\"Message\":\"{oops\"}", NULL));
    assert_string_equal(cur_err.code, "INVALID_PAYLOAD");
    assert_non_null(strstr(cur_err.message, "decode 'decode[0]' (t.yaml:3): Message is not JSON"));
    assert_null(run_h(s, "{\"message\":{\"data\":\"a*b\"}}", NULL));
    assert_non_null(strstr(cur_err.message, "message.data is not base64 (offset 1)"));
    eng_set_unref(s);
}

static void test_headers(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "match:\n"
                          "  - equals: {path: $headers.X-Event, value: [alert, ping]}\n"
                          "fields:\n"
                          "  title: {template: \"{$headers.x-event} {name}\"}\n"
                          "  tags: {all: [$headers.X-Event, $headers.X-Missing, name]}\n");
    hdrs_t h = {{"x-EVENT", NULL}, {"  alert ", NULL}};
    const eng_alert_t *a = ok_h(s, "{\"name\":\"n\"}", &h);
    assert_string_equal(F(a, TITLE), "alert n");
    assert_int_equal(a->ntags, 2);
    assert_string_equal(a->tags[0], "alert");
    assert_string_equal(a->tags[1], "n");
    assert_null(run_h(s, "{\"name\":\"n\"}", NULL));
    assert_non_null(strstr(cur_err.message, "$headers.X-Event is not present"));
    eng_set_unref(s);
}

static void test_headers_refused_where_secret_or_not_payload(void **state)
{
    (void)state;
    t_compile_fails("source: demo\n"
                    "signature: {scheme: token, header: X-Token, secret_env: S}\n"
                    "fields:\n"
                    "  title: $headers.x-token\n"
                    "  description: $headers.Cookie\n"
                    "split: $headers.X-List\n",
                    "t.yaml:4:10: '$headers.x-token' would expose credentials: a mapping "
                    "cannot read Authorization, Cookie, Proxy-Authorization or its signature "
                    "header\n"
                    "t.yaml:5:16: '$headers.Cookie' would expose credentials: a mapping cannot "
                    "read Authorization, Cookie, Proxy-Authorization or its signature header\n"
                    "t.yaml:6:8: '$headers.' is not allowed in 'split' (headers are not part of "
                    "the payload)\n");
}

static void test_all_when_not(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "fields:\n"
                          "  title:\n"
                          "    when:\n"
                          "      - if: {equals: {path: kind, value: a}}\n"
                          "        then: {path: a_title, upper: true}\n"
                          "      - if: {not: {present: b_title}}\n"
                          "        then: {const: no b}\n"
                          "    else: b_title\n"
                          "  tags: {all: [x, \"ys[*]\", {path: z, lower: true}]}\n"
                          "indicators:\n"
                          "  - {all: [src, dst], type: ip}\n");
    const eng_alert_t *a = ok(s, "{\"kind\":\"A\",\"a_title\":\"t\",\"x\":\"1\",\"ys\":[\"2\","
                                 "\"1\"],\"z\":\"Q\",\"src\":\"192.0.2.1\",\"dst\":\"192.0.2.2\"}");
    assert_string_equal(F(a, TITLE), "T");
    assert_int_equal(a->ntags, 3); /* 1, 2, q: de-duplicated */
    assert_string_equal(a->tags[2], "q");
    assert_int_equal(a->nindicators, 2);
    assert_string_equal(F(ok(s, "{\"kind\":\"b\"}"), TITLE), "no b");
    assert_string_equal(F(ok(s, "{\"b_title\":\"bee\"}"), TITLE), "bee");
    eng_set_unref(s);
    t_compile_fails("source: demo\n"
                    "fields:\n"
                    "  title: {all: [a, b]}\n"
                    "  description: {path: a, else: b}\n",
                    "t.yaml:3:11: 'all' yields several values; 'title' takes one (use 'first' or "
                    "'path' fallbacks)\n"
                    "t.yaml:4:26: 'else' applies to 'when' only\n");
}

static void test_optional_split_and_dispositions(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "match:\n"
                          "  - any: [items, title]\n"
                          "split: {path: items, optional: true}\n"
                          "disposition:\n"
                          "  - {if: {equals: {path: status, value: resolved}}, then: resolve,"
                          " name: done}\n"
                          "  - {if: {equals: {path: status, value: ack}}, then: ignore}\n"
                          "fields:\n"
                          "  title: title\n");
    const eng_alert_t *a = ok(s, "{\"title\":\"one\"}");
    assert_int_equal(cur_res.nalerts, 1);
    assert_string_equal(F(a, TITLE), "one");
    assert_ptr_equal(a->raw, cur_payload);
    assert_int_equal(a->disposition, ENG_DISP_STORE);
    a = ok(s, "{\"items\":[{\"title\":\"x\",\"status\":\"resolved\"},{\"title\":\"y\","
              "\"status\":\"ack\"},{\"title\":\"z\"}]}");
    assert_int_equal(cur_res.nalerts, 3);
    assert_int_equal(a->disposition, ENG_DISP_RESOLVE);
    assert_string_equal(a->disposition_rule, "done");
    assert_int_equal(cur_res.alerts[1].disposition, ENG_DISP_IGNORE);
    assert_string_equal(cur_res.alerts[1].disposition_rule, "disposition[1]");
    assert_int_equal(cur_res.alerts[2].disposition, ENG_DISP_STORE);
    assert_null(run_h(s, "{\"items\":[]}", NULL)); /* present but empty: still refused */
    eng_set_unref(s);
    /* without split a disposition comes before match: a ping is no alert */
    s = t_load("source: demo\n"
               "match: [{present: alert}]\n"
               "disposition: [{if: {present: zen}, then: ignore, name: ping}]\n"
               "fields: {title: alert.title}\n");
    a = ok(s, "{\"zen\":\"hi\"}");
    assert_int_equal(a->disposition, ENG_DISP_IGNORE);
    assert_null(run_h(s, "{\"other\":1}", NULL));
    eng_set_unref(s);
}

static void test_verification(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "verification:\n"
                          "  - {method: GET, header: X-Challenge, answer: verification}\n"
                          "fields: {title: t}\n");
    const eng_program_t *p = eng_set_at(s, 0);
    assert_true(eng_program_verifies(p, "GET"));
    assert_false(eng_program_verifies(p, "POST"));
    hdrs_t h = {{"x-challenge", NULL}, {"abc-DEF_1.2~=", NULL}};
    json_t *ans = NULL;
    eng_error_t err = {0};
    assert_int_equal(eng_verification(&ans, p, "GET", hdr, &h, &err), 1);
    char *text = json_dumps(ans, JSON_COMPACT);
    assert_string_equal(text, "{\"verification\":\"abc-DEF_1.2~=\"}");
    free(text);
    json_decref(ans);
    hdrs_t bad = {{"X-Challenge", NULL}, {"<script>", NULL}};
    assert_int_equal(eng_verification(&ans, p, "GET", hdr, &bad, &err), AM_EINVAL);
    assert_null(ans);
    hdrs_t none = {{NULL}, {NULL}};
    assert_int_equal(eng_verification(&ans, p, "GET", hdr, &none, &err), 0);
    eng_set_unref(s);
}

static void test_half_open_ranges(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "fields:\n"
                          "  title: t\n"
                          "  severity:\n"
                          "    path: sev\n"
                          "    ranges: [{below: 4, value: Low}, {from: 4, below: 7, value: Medium},"
                          " {from: 7, below: 9, value: High}, {from: 9, value: Critical}]\n");
    static const struct {
        const char *v, *want;
    } cases[] = {{"0", "Low"},       {"3.95", "Low"},    {"4", "Medium"},
                 {"6.95", "Medium"}, {"7", "High"},      {"8.9", "High"},
                 {"9", "Critical"},  {"10", "Critical"}, {"\"x\"", "Pending"}};
    for (size_t i = 0; i < AM_ARRAY_LEN(cases); i++) {
        char body[64];
        snprintf(body, sizeof(body), "{\"sev\":%s}", cases[i].v);
        assert_string_equal(F(ok(s, body), SEVERITY), cases[i].want);
    }
    eng_set_unref(s);
    t_compile_fails("source: demo\n"
                    "fields:\n"
                    "  title: t\n"
                    "  severity: {path: s, ranges: [{from: 7, below: 4, value: x},\n"
                    "             {below: 1, max: 2, value: y}]}\n",
                    "t.yaml:4:32: empty range: from 7 is not below 4\n"
                    "t.yaml:5:14: a range takes one upper bound ('below' and 'max')\n");
}

static void test_time_alternatives_and_precision(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "fields:\n"
                          "  title: t\n"
                          "  occurred_at:\n"
                          "    first:\n"
                          "      - {path: iso, time: iso8601}\n"
                          "      - {path: ns, time: epoch_ns}\n"
                          "      - {path: any}\n");
    const eng_alert_t *a = ok(s, "{\"iso\":\"2024-05-04T16:00:00.123456789Z\"}");
    assert_string_equal(F(a, OCCURRED_AT), "2024-05-04T16:00:00.123456Z");
    /* 19 digits exactly: a double would give ...00.123456768 */
    a = ok(s, "{\"iso\":\"not a time\",\"ns\":1714838400123456789}");
    assert_int_equal(a->occurred_at_us, 1714838400123456LL);
    a = ok(s, "{\"ns\":\"1714838400999999999\"}");
    assert_int_equal(a->occurred_at_us, 1714838400999999LL);
    a = ok(s, "{\"any\":1714838400123456}"); /* auto: microseconds */
    assert_int_equal(a->occurred_at_us, 1714838400123456LL);
    a = ok(s, "{\"any\":1714838400123456789}"); /* auto: nanoseconds */
    assert_int_equal(a->occurred_at_us, 1714838400123456LL);
    eng_set_unref(s);
}

static void test_element_filters_and_context(void **state)
{
    (void)state;
    eng_set_t *s = t_load("source: demo\n"
                          "fields:\n"
                          "  title: \"$[?kind=tls].sni\"\n"
                          "  tags: \"labels[?@!=noise][?@]\"\n"
                          "  src_hostname: {path: host, indicator: false}\n"
                          "  dst_ip: {path: \"ips[?@!='127.0.0.1']\"}\n"
                          "indicators:\n"
                          "  - {path: \"ips[?@!='127.0.0.1'][?@!='::1']\", type: ip}\n"
                          "  - {path: \"ents[?Type!=ip].Name\", type: account}\n");
    const eng_alert_t *a =
        ok(s, "{\"kind\":\"TLS\",\"sni\":\"a.example\",\"labels\":[\"x\",\"noise\","
              "\"\",\"y\"],\"host\":\"ws-1.example.com\",\"ips\":[\"127.0.0.1\","
              "\"::1\",\"192.0.2.9\"],\"ents\":[{\"Type\":\"ip\",\"Name\":\"no\"},"
              "{\"Type\":\"account\",\"Name\":\"amelia\"}]}");
    assert_string_equal(F(a, TITLE), "a.example");
    assert_int_equal(a->ntags, 2);
    assert_string_equal(a->tags[1], "y");
    assert_string_equal(F(a, SRC_HOSTNAME), "ws-1.example.com");
    assert_string_equal(F(a, DST_IP), "::1"); /* the first element the filter keeps */
    /* 192.0.2.9 and amelia from the rules, ::1 from dst_ip; the host is context */
    assert_int_equal(a->nindicators, 3);
    for (size_t i = 0; i < a->nindicators; i++) {
        assert_string_not_equal(a->indicators[i].value, "127.0.0.1");
        assert_string_not_equal(a->indicators[i].value, "ws-1.example.com");
    }
    a = ok(s, "{\"kind\":\"http\",\"sni\":\"a.example\"}");
    assert_string_equal(F(a, TITLE), "Untitled demo alert");
    eng_set_unref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_decode_and_unwrap, teardown),
        cmocka_unit_test_teardown(test_headers, teardown),
        cmocka_unit_test(test_headers_refused_where_secret_or_not_payload),
        cmocka_unit_test_teardown(test_all_when_not, teardown),
        cmocka_unit_test_teardown(test_optional_split_and_dispositions, teardown),
        cmocka_unit_test(test_verification),
        cmocka_unit_test_teardown(test_half_open_ranges, teardown),
        cmocka_unit_test_teardown(test_time_alternatives_and_precision, teardown),
        cmocka_unit_test_teardown(test_element_filters_and_context, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    am_arena_free(t_arena);
    return rc;
}
