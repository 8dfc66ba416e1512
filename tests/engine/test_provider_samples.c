/* tests/engine/test_provider_samples.c - provider samples: the shipped
 * samples pass; a sample that passes; each kind of difference reported at
 * the expected item's line:col and failing the load; sample errors found
 * while compiling; a list file that is gone; a secret that never shows in
 * a rendered sample request or a message; Retry-After interpreted from the
 * reply's headers. */
#include "engtest.h"
#include "provider.h"
#include "provider_int.h"

#include <stdlib.h>
#include <string.h>

static const char *providers;

static int setup(void **state)
{
    (void)state;
    providers = t_providers();
    json_set_alloc_funcs(am_xmalloc, free);
    return 0;
}

static int load(eng_providers_t **s, const char *text, bool check, bool secrets, am_diags_t *d)
{
    const char *names[] = {"t.yaml"};
    const char *texts[] = {text};
    size_t lens[] = {strlen(text)};
    eng_providers_options_t opt = {
        .no_files = true, .check_samples = check, .resolve_secrets = secrets};
    *s = NULL;
    return eng_providers_load_texts(s, names, texts, lens, 1, &opt, d);
}

static void dump(const am_diags_t *d)
{
    am_diags_print(d, stderr);
}

/* A small http provider; its samples follow (line 17 on). */
#define HTTP_HEAD                                                                                  \
    "provider: p\n"                                            /* 1 */                             \
    "kind: http\n"                                             /* 2 */                             \
    "types: [ip, domain]\n"                                    /* 3 */                             \
    "secrets: {k: T_PROVIDER_SAMPLES_KEY}\n"                   /* 4 */                             \
    "request:\n"                                               /* 5 */                             \
    "  url: https://h.example/v1/{value}?q={value}\n"          /* 6 */                             \
    "  headers: {X-Key: \"{secret.k}\", Accept: text/json}\n"  /* 7 */                             \
    "status: {found: [200], not_found: [404], retry: [429]}\n" /* 8 */                             \
    "results:\n"                                               /* 9 */                             \
    "  score: data.score\n"                                    /* 10 */                            \
    "  tags: data.tags[*]\n"                                   /* 11 */                            \
    "verdict:\n"                                               /* 12 */                            \
    "  - when: {field: score, gte: 50}\n"                      /* 13 */                            \
    "    then: Malicious\n"                                    /* 14 */                            \
    "  - else: Benign\n"                                       /* 15 */                            \
    "samples:\n"                                               /* 16 */

static const char passing[] =
    HTTP_HEAD "  - name: bad\n"                                 /* 17 */
              "    indicator: {type: ip, value: 2001:db8::1}\n" /* 18 */
              "    reply:\n"                                    /* 19 */
              "      status: 200\n"                             /* 20 */
              "      body: {data: {score: 90, tags: [a, b]}}\n" /* 21 */
              "    expect:\n"                                   /* 22 */
              "      request:\n"                                /* 23 */
              "        method: GET\n"                           /* 24 */
              "        url: "
              "https://h.example/v1/2001%3Adb8%3A%3A1?q=2001%3Adb8%3A%"
              "3A1\n" /* 25 */
              "        headers: {X-Key: \"{secret.k}\", accept: "
              "text/json}\n"                              /* 26 */
              "      outcome: found\n"                    /* 27 */
              "      verdict: Malicious\n"                /* 28 */
              "      result: {score: 90, tags: [a, b]}\n" /* 29 */
              "  - name: good\n"                          /* 30 */
              "    indicator: {type: domain, value: example.com}\n"
              "    reply: {status: 200, body: '{\"data\":{\"score\":1}}'}\n"
              "    expect: {outcome: found, verdict: Benign, "
              "result: {score: 1, tags: []}}\n"
              "  - name: unknown\n"
              "    indicator: {type: ip, value: 192.0.2.1}\n"
              "    reply: {status: 404}\n"
              "    expect: {outcome: not_found, verdict: Unknown}\n"
              "  - name: busy\n"
              "    indicator: {type: ip, value: 192.0.2.2}\n"
              "    reply: {status: 429, headers: {retry-after: '120'}}\n"
              "    expect: {outcome: retry, reason: HTTP 429, "
              "retry_after: 2m}\n"
              "  - name: garbage\n"
              "    indicator: {type: ip, value: 192.0.2.3}\n"
              "    reply: {status: 200, body: '{\"data\": '}\n"
              "    expect: {outcome: failed, reason: not JSON}\n";

static void test_shipped_samples_pass(void **state)
{
    (void)state;
    am_diags_t d;
    am_diags_init(&d);
    const char *paths[] = {providers};
    eng_providers_options_t opt = {.check_samples = true};
    eng_providers_t *s = NULL;
    int rc = eng_providers_load(&s, paths, 1, &opt, &d);
    if (rc != 0)
        dump(&d);
    assert_int_equal(rc, 0);
    assert_int_equal(d.count, 0);
    /* every shipped provider has samples; every http one at least found,
     * not found (or its vendor's equivalent) and a retry or failure */
    for (size_t i = 0; i < eng_providers_count(s); i++) {
        eng_provider_info_t info;
        eng_provider_info(&info, eng_providers_at(s, i));
        assert_true(info.nsamples >= (info.kind == ENG_PROV_HTTP ? 3u : 2u));
        assert_int_equal(eng_provider_check_samples(eng_providers_at(s, i), &d), 0);
    }
    assert_int_equal(eng_providers_count(s), 7);
    eng_providers_unref(s);
    am_diags_dispose(&d);
}

static void test_passing_sample(void **state)
{
    (void)state;
    am_diags_t d;
    am_diags_init(&d);
    eng_providers_t *s;
    int rc = load(&s, passing, true, false, &d);
    if (rc != 0)
        dump(&d);
    assert_int_equal(rc, 0);
    eng_provider_info_t info;
    eng_provider_info(&info, eng_providers_at(s, 0));
    assert_int_equal(info.nsamples, 5);
    assert_int_equal(eng_provider_check_samples(eng_providers_at(s, 0), &d), 0);
    assert_int_equal(d.count, 0);
    eng_providers_unref(s);
    am_diags_dispose(&d);
}

/* passing with one text replaced (which must occur once) */
static char *variant(const char *from, const char *to)
{
    const char *at = strstr(passing, from);
    assert_non_null(at);
    assert_null(strstr(at + 1, from));
    size_t n = strlen(passing) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - passing), passing, to, at + strlen(from));
    return out;
}

/* Loads passing with one replacement: the load must fail, and a
 * diagnostic at line:col must contain part. */
static void expect_mismatch(const char *from, const char *to, int line, int col, const char *part)
{
    char *text = variant(from, to);
    am_diags_t d;
    am_diags_init(&d);
    eng_providers_t *s;
    assert_int_equal(load(&s, text, true, false, &d), AM_EINVAL);
    assert_null(s);
    if (!t_has_diag(&d, line, col, part)) {
        fprintf(stderr, "wanted %d:%d '%s' among:\n", line, col, part);
        dump(&d);
    }
    assert_true(t_has_diag(&d, line, col, part));
    /* the same file compiled without its samples run loads */
    am_diags_dispose(&d);
    assert_int_equal(load(&s, text, false, false, &d), 0);
    eng_providers_unref(s);
    am_diags_dispose(&d);
    free(text);
}

static void test_each_mismatch(void **state)
{
    (void)state;
    expect_mismatch("        method: GET\n", "        method: POST\n", 24, 17,
                    "sample 'bad': request method: expected 'POST', got 'GET'");
    expect_mismatch("?q=2001%3Adb8%3A%3A1\n", "?q=2001:db8::1\n", 25, 14,
                    "request url: expected 'https://h.example/v1/2001%3Adb8%3A%3A1?q=2001:db8::1'");
    expect_mismatch("accept: text/json}", "accept: text/xml}", 26, 0,
                    "request header 'accept': expected 'text/xml', got 'text/json'");
    expect_mismatch("accept: text/json}", "Extra: 1, accept: text/json}", 26, 0,
                    "request header 'Extra': expected '1', the provider sends none");
    expect_mismatch(", accept: text/json}", "}", 26, 18,
                    "request header 'Accept: text/json' is sent but not expected");
    expect_mismatch("        method: GET\n", "        body: a=b\n", 24, 15,
                    "request body: expected 'a=b', the provider sends none");
    expect_mismatch("      outcome: found\n      verdict: Malicious\n",
                    "      outcome: not_found\n      verdict: Malicious\n", 27, 16,
                    "outcome: expected not_found, got found");
    expect_mismatch("      verdict: Malicious\n", "      verdict: Suspicious\n", 28, 16,
                    "verdict: expected Suspicious, got Malicious");
    expect_mismatch("result: {score: 90, tags: [a, b]}", "result: {score: 91, tags: [a, b]}", 29,
                    23, "result.score: expected 91, got 90");
    expect_mismatch("result: {score: 90, tags: [a, b]}", "result: {score: 90, tags: [a]}", 29, 0,
                    "result.tags[1]: unexpected \"b\"");
    expect_mismatch("result: {score: 90, tags: [a, b]}", "result: {tags: [a, b]}", 29, 15,
                    "result.score: unexpected 90");
    expect_mismatch("result: {score: 90, tags: [a, b]}", "result: {score: 90, tags: [a, b], x: 1}",
                    29, 0, "result.x: expected 1, got nothing");
    expect_mismatch("reason: HTTP 429", "reason: HTTP 503", 0, 0,
                    "sample 'busy': reason: expected one containing 'HTTP 503', got 'HTTP 429'");
    expect_mismatch("retry_after: 2m", "retry_after: 3m", 0, 0,
                    "sample 'busy': retry_after: expected 180s, got 120s");
    expect_mismatch("headers: {retry-after: '120'}", "headers: {x: '1'}", 0, 0,
                    "retry_after: expected 120s, the reply asks for none");
    expect_mismatch("reason: not JSON}", "reason: not JSON, verdict: Malicious}", 0, 0,
                    "sample 'garbage': verdict: expected Malicious, got Unknown");
}

static void test_sample_errors(void **state)
{
    (void)state;
    static const char text[] = "provider: l\n" /* 1 */
                               "kind: cidr\n"  /* 2 */
                               "ranges: [{cidr: 10.0.0.0/8, labels: [internal]}]\n"
                               "samples:\n"    /* 4 */
                               "  - name: a\n" /* 5 */
                               "    indicator: {type: domain, value: x.example}\n"
                               "    expect: {outcome: found}\n" /* 7 */
                               "  - name: a\n"                  /* 8 */
                               "    indicator: {type: ip, value: 10.0.0.01}\n"
                               "    reply: {status: 200}\n" /* 10 */
                               "    expect: {outcome: retry, verdict: Benign, colour: red}\n"
                               "  - indicator: {type: ip, value: 10.1.1.1}\n" /* 12 */
                               "  - name: c\n"                                /* 13 */
                               "    indicator: {type: ip, value: 10.1.1.1}\n"
                               "    expect: {outcome: found, request: {url: x}}\n";
    am_diags_t d;
    am_diags_init(&d);
    eng_providers_t *s;
    assert_int_equal(load(&s, text, false, false, &d), AM_EINVAL);
    assert_true(t_has_diag(&d, 6, 23, "provider 'l' does not answer type domain"));
    assert_true(t_has_diag(&d, 8, 11, "sample 'a' is defined twice"));
    assert_true(t_has_diag(&d, 9, 34, "is not a valid ip indicator"));
    assert_true(t_has_diag(&d, 10, 12, "its samples have no 'reply'"));
    assert_true(t_has_diag(&d, 11, 23, "'outcome' must be found or not_found, got 'retry'"));
    assert_true(t_has_diag(&d, 11, 39, "a cidr provider gives no verdict"));
    assert_true(t_has_diag(&d, 11, 47, "unknown key 'colour' in 'expect'"));
    assert_true(t_has_diag(&d, 12, 5, "a sample needs 'name'"));
    assert_true(t_has_diag(&d, 12, 5, "a sample needs 'expect'"));
    assert_true(t_has_diag(&d, 15, 39, "a cidr provider sends no request"));
    am_diags_dispose(&d);

    /* an http sample without its reply, a non-canonical value, a status out of range */
    static const char http[] = HTTP_HEAD "  - name: a\n" /* 17 */
                                         "    indicator: {type: domain, value: Example.COM}\n"
                                         "    expect: {outcome: found}\n" /* 19 */
                                         "  - name: b\n"                  /* 20 */
                                         "    indicator: {type: ip, value: 192.0.2.1}\n"
                                         "    reply: {status: 99}\n" /* 22 */
                                         "    expect: {outcome: found, retry_after: 5s}\n";
    assert_int_equal(load(&s, http, false, false, &d), AM_EINVAL);
    assert_true(t_has_diag(&d, 17, 5, "needs 'reply' (the recorded vendor reply)"));
    assert_true(t_has_diag(&d, 18, 38, "not in canonical form: the worker looks up 'example.com'"));
    assert_true(t_has_diag(&d, 22, 21, "'status' must be an HTTP status from 100 to 599"));
    assert_true(t_has_diag(&d, 23, 43, "'retry_after' is for outcome retry"));
    am_diags_dispose(&d);
}

/* A list provider's samples look values up in the list file read at load;
 * a list file that is gone fails the load before any sample runs. */
static void test_list_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/alertmap-psamples-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char yaml[256], list[256];
    snprintf(yaml, sizeof(yaml), "%s/l.yaml", dir);
    snprintf(list, sizeof(list), "%s/l.txt", dir);
    t_write(yaml, "provider: l\nkind: list\ntypes: [ip, domain]\nfile: l.txt\ntag: t\n"
                  "samples:\n"
                  "  - name: listed\n"
                  "    indicator: {type: domain, value: bad.example.net}\n"
                  "    expect: {outcome: found, verdict: Malicious,\n"
                  "             result: {listed: true, entry: bad.example.net, tag: t}}\n"
                  "  - name: range\n"
                  "    indicator: {type: ip, value: 192.0.2.77}\n"
                  "    expect: {outcome: found, result: {listed: true, entry: 192.0.2.0/24, "
                  "tag: t}}\n");
    t_write(list, "bad.example.net\n192.0.2.0/24\n");
    const char *paths[] = {yaml};
    eng_providers_options_t opt = {.check_samples = true};
    am_diags_t d;
    am_diags_init(&d);
    eng_providers_t *s = NULL;
    assert_int_equal(eng_providers_load(&s, paths, 1, &opt, &d), 0);
    eng_providers_unref(s);
    /* the list changed: the sample says what differs */
    t_write(list, "192.0.2.0/24\n");
    assert_int_equal(eng_providers_load(&s, paths, 1, &opt, &d), AM_EINVAL);
    assert_true(t_has_diag(&d, 9, 23, "sample 'listed': outcome: expected found, got not_found"));
    assert_true(t_has_diag(&d, 10, 31, "result.listed: expected true, got nothing"));
    am_diags_dispose(&d);
    /* the list is gone */
    unlink(list);
    assert_int_equal(eng_providers_load(&s, paths, 1, &opt, &d), AM_EINVAL);
    assert_true(t_has_diag(&d, 4, 7, "cannot read list file"));
    am_diags_dispose(&d);
    unlink(yaml);
    rmdir(dir);
}

static bool any_diag_holds(const am_diags_t *d, const char *text)
{
    for (size_t i = 0; i < d->count; i++)
        if (strstr(d->items[i].msg, text) != NULL)
            return true;
    return false;
}

static void test_secret_never_shown(void **state)
{
    (void)state;
    static const char secret[] = "s3cr3t-value-9f2c";
    setenv("T_PROVIDER_SAMPLES_KEY", secret, 1);
    am_diags_t d;
    am_diags_init(&d);
    eng_providers_t *s;
    /* resolved secrets: the samples still expect {secret.k} and pass */
    int rc = load(&s, passing, true, true, &d);
    if (rc != 0)
        dump(&d);
    assert_int_equal(rc, 0);
    const eng_provider_t *p = eng_providers_at(s, 0);
    am_arena_t *a = am_arena_new(4096, (size_t)1 << 20);
    eng_request_t rq;
    eng_error_t err = {0};
    assert_int_equal(eng_pv_request(&rq, p, ENG_IOC_IP, "192.0.2.1", true, a, &err), 0);
    assert_string_equal(rq.headers[0].value, "{secret.k}");
    for (size_t i = 0; i < rq.nheaders; i++)
        assert_null(strstr(rq.headers[i].value, secret));
    assert_null(strstr(rq.url, secret));
    /* the worker's rendering does carry it */
    assert_int_equal(eng_provider_request(&rq, p, ENG_IOC_IP, "192.0.2.1", a, &err), 0);
    assert_string_equal(rq.headers[0].value, secret);
    am_arena_free(a);
    eng_providers_unref(s);

    /* a differing header: the message shows the placeholder, never the value */
    char *text = variant("X-Key: \"{secret.k}\", accept", "X-Key: wrong, accept");
    assert_int_equal(load(&s, text, true, true, &d), AM_EINVAL);
    assert_true(
        t_has_diag(&d, 26, 0, "request header 'X-Key': expected 'wrong', got '{secret.k}'"));
    assert_false(any_diag_holds(&d, secret));
    am_diags_dispose(&d);
    free(text);

    /* a sample that holds the real secret fails, and says so without showing it */
    char bad[128];
    snprintf(bad, sizeof(bad), "X-Key: \"Bearer %s\", accept", secret);
    text = variant("X-Key: \"{secret.k}\", accept", bad);
    assert_int_equal(load(&s, text, true, true, &d), AM_EINVAL);
    assert_true(t_has_diag(&d, 26, 0,
                           "request header 'X-Key' holds the value of secret 'k' "
                           "($T_PROVIDER_SAMPLES_KEY): write {secret.k} instead"));
    assert_false(any_diag_holds(&d, secret));
    am_diags_dispose(&d);
    free(text);
    unsetenv("T_PROVIDER_SAMPLES_KEY");
}

static void test_interpret_retry_after(void **state)
{
    (void)state;
    am_diags_t d;
    am_diags_init(&d);
    eng_providers_t *s;
    assert_int_equal(load(&s, passing, false, false, &d), 0);
    const eng_provider_t *p = eng_providers_at(s, 0);
    eng_header_t h[] = {{"Content-Type", "application/json"}, {"RETRY-AFTER", "30"}};
    eng_reply_t rep = {.status = 429, .headers = h, .nheaders = 2};
    eng_presult_t r;
    eng_provider_interpret(&r, p, ENG_IOC_IP, &rep, T_NOW);
    assert_int_equal(r.outcome, ENG_OUT_RETRY);
    assert_int_equal(r.retry_after_us, 30 * (int64_t)1000000);
    json_decref(r.fields);
    /* an HTTP-date, from the caller's clock */
    h[1].value = "Wed, 01 May 2024 10:01:00 GMT";
    eng_provider_interpret(&r, p, ENG_IOC_IP, &rep, T_NOW);
    assert_int_equal(r.retry_after_us, 60 * (int64_t)1000000);
    json_decref(r.fields);
    /* only a retry reply asks for a delay */
    rep.status = 200;
    rep.body = "{\"data\":{\"score\":60}}";
    rep.body_len = strlen(rep.body);
    eng_provider_interpret(&r, p, ENG_IOC_IP, &rep, T_NOW);
    assert_int_equal(r.outcome, ENG_OUT_FOUND);
    assert_int_equal(r.verdict, ENG_VERDICT_MALICIOUS);
    assert_int_equal(r.retry_after_us, -1);
    json_decref(r.fields);
    eng_providers_unref(s);
    am_diags_dispose(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_samples_pass),
        cmocka_unit_test(test_passing_sample),
        cmocka_unit_test(test_each_mismatch),
        cmocka_unit_test(test_sample_errors),
        cmocka_unit_test(test_list_file),
        cmocka_unit_test(test_secret_never_shown),
        cmocka_unit_test(test_interpret_retry_after),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
