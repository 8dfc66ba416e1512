/* tests/engine/test_provider.c - provider files: the shipped providers
 * compile, errors come out as file:line:col (many at once), requests are
 * rendered with every value in its own percent-encoded slot, replies are
 * evaluated to outcomes and verdicts, lists and cidr ranges answer from
 * memory, Retry-After and the rate limiter. */
#include "engtest.h"
#include "provider.h"

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

static eng_providers_t *load_text(const char *text, am_diags_t *d)
{
    const char *names[] = {"t.yaml"};
    const char *texts[] = {text};
    size_t lens[] = {strlen(text)};
    eng_providers_options_t opt = {.no_files = true};
    eng_providers_t *s = NULL;
    eng_providers_load_texts(&s, names, texts, lens, 1, &opt, d);
    return s;
}

static void test_shipped(void **state)
{
    (void)state;
    am_diags_t d;
    am_diags_init(&d);
    const char *paths[] = {providers};
    eng_providers_t *s = NULL;
    int rc = eng_providers_load(&s, paths, 1, NULL, &d);
    if (rc != 0)
        am_diags_print(&d, stderr);
    assert_int_equal(rc, 0);
    assert_int_equal(d.count, 0);
    static const char *const names[] = {"virustotal",     "abuseipdb",   "greynoise",
                                        "urlhaus_host",   "urlhaus_url", "example_blocklist",
                                        "internal_ranges"};
    for (size_t i = 0; i < AM_ARRAY_LEN(names); i++)
        assert_non_null(eng_providers_find(s, names[i]));
    eng_provider_info_t info;
    eng_provider_info(&info, eng_providers_find(s, "virustotal"));
    assert_int_equal(info.nrates, 2);
    assert_int_equal(info.rates[0].count, 4);
    assert_int_equal(info.rates[0].period_us, 60 * (int64_t)1000000);
    eng_provider_info(&info, eng_providers_find(s, "example_blocklist"));
    assert_int_equal(info.entries, 5);
    assert_int_equal(info.skipped, 0);
    eng_providers_unref(s);
    am_diags_dispose(&d);
}

static void test_errors_many(void **state)
{
    (void)state;
    am_diags_t d;
    am_diags_init(&d);
    eng_providers_t *s = load_text("provider: Bad Name\n"           /* 1 */
                                   "kind: http\n"                   /* 2 */
                                   "types: [ip, colour]\n"          /* 3 */
                                   "request:\n"                     /* 4 */
                                   "  url: https://{value}/x\n"     /* 5 */
                                   "  headers:\n"                   /* 6 */
                                   "    k: \"{secret.nope}\"\n"     /* 7 */
                                   "timeout: soon\n"                /* 8 */
                                   "results:\n"                     /* 9 */
                                   "  a: data.a\n"                  /* 10 */
                                   "verdict:\n"                     /* 11 */
                                   "  - when: {field: b, gte: 1}\n" /* 12 */
                                   "    then: Evil\n"               /* 13 */
                                   "colour: red\n",                 /* 14 */
                                   &d);
    assert_null(s);
    am_diags_sort(&d);
    if (d.count < 7)
        am_diags_print(&d, stderr);
    assert_true(t_has_diag(&d, 1, 11, "'provider' must be"));
    assert_true(t_has_diag(&d, 3, 13, "unknown indicator type 'colour'"));
    assert_true(t_has_diag(&d, 5, 0, "host of 'url' must be literal"));
    assert_true(t_has_diag(&d, 7, 0, "secret 'nope' is not declared"));
    assert_true(t_has_diag(&d, 8, 10, "duration"));
    assert_true(t_has_diag(&d, 12, 0, "field 'b' is not defined"));
    assert_true(t_has_diag(&d, 13, 11, "verdict must be one of"));
    assert_true(t_has_diag(&d, 14, 1, "unknown key 'colour'"));
    for (size_t i = 0; i < d.count; i++)
        assert_string_equal(d.items[i].file, "t.yaml");
    am_diags_dispose(&d);
}

static void test_secret_in_url_refused(void **state)
{
    (void)state;
    am_diags_t d;
    am_diags_init(&d);
    eng_providers_t *s = load_text("provider: p\nkind: http\ntypes: [ip]\n"
                                   "secrets: {k: SOME_KEY}\n"
                                   "request:\n  url: https://h/x/{value}?key={secret.k}\n"
                                   "results: {a: a}\nverdict: [{else: Benign}]\n",
                                   &d);
    assert_null(s);
    assert_true(t_has_diag(&d, 6, 0, "only in a header"));
    am_diags_dispose(&d);
}

static void test_secret_resolved_from_environment(void **state)
{
    (void)state;
    const char *text = "provider: p\nkind: http\ntypes: [ip]\n"
                       "secrets: {k: AM_TEST_PROVIDER_KEY}\n"
                       "request:\n  url: https://h/x/{value}\n  headers: {X-Key: \"{secret.k}\"}\n"
                       "results: {a: a}\nverdict: [{else: Benign}]\n";
    const char *names[] = {"t.yaml"};
    const char *texts[] = {text};
    size_t lens[] = {strlen(text)};
    eng_providers_options_t opt = {.resolve_secrets = true, .no_files = true};
    am_diags_t d;
    am_diags_init(&d);
    eng_providers_t *s = NULL;
    unsetenv("AM_TEST_PROVIDER_KEY");
    assert_int_equal(eng_providers_load_texts(&s, names, texts, lens, 1, &opt, &d), AM_EINVAL);
    assert_true(t_has_diag(&d, 4, 14, "AM_TEST_PROVIDER_KEY"));
    am_diags_dispose(&d);
    am_diags_init(&d);
    setenv("AM_TEST_PROVIDER_KEY", "s3cret", 1);
    assert_int_equal(eng_providers_load_texts(&s, names, texts, lens, 1, &opt, &d), 0);
    am_arena_t *a = am_arena_new(4096, SIZE_MAX);
    eng_request_t rq;
    eng_error_t err = {0};
    assert_int_equal(
        eng_provider_request(&rq, eng_providers_at(s, 0), ENG_IOC_IP, "1.2.3.4", a, &err), 0);
    assert_string_equal(rq.headers[0].value, "s3cret");
    assert_null(strstr(rq.url, "s3cret"));
    am_arena_free(a);
    eng_providers_unref(s);
    am_diags_dispose(&d);
}

static eng_providers_t *shipped(void)
{
    const char *paths[] = {providers};
    am_diags_t d;
    am_diags_init(&d);
    eng_providers_t *s = NULL;
    assert_int_equal(eng_providers_load(&s, paths, 1, NULL, &d), 0);
    am_diags_dispose(&d);
    return s;
}

static void test_url_slots(void **state)
{
    (void)state;
    am_diags_t d;
    am_diags_init(&d);
    eng_providers_t *s =
        load_text("provider: p\nkind: http\ntypes: [domain, url]\n"
                  "request:\n  url: https://h.example/api/{value}/info?q={value}&x=1\n"
                  "results: {a: a}\nverdict: [{else: Benign}]\n",
                  &d);
    assert_non_null(s);
    am_arena_t *a = am_arena_new(4096, SIZE_MAX);
    eng_request_t rq;
    eng_error_t err = {0};
    assert_int_equal(eng_provider_request(&rq, eng_providers_at(s, 0), ENG_IOC_URL,
                                          "a/../b?c=d#e%f g&h", a, &err),
                     0);
    assert_string_equal(rq.url, "https://h.example/api/a%2F..%2Fb%3Fc%3Dd%23e%25f%20g%26h/info"
                                "?q=a%2F..%2Fb%3Fc%3Dd%23e%25f%20g%26h&x=1");
    am_arena_free(a);
    eng_providers_unref(s);
    am_diags_dispose(&d);
}

static void test_vt_requests(void **state)
{
    (void)state;
    eng_providers_t *s = shipped();
    const eng_provider_t *vt = eng_providers_find(s, "virustotal");
    am_arena_t *a = am_arena_new(4096, SIZE_MAX);
    eng_request_t rq;
    eng_error_t err = {0};
    assert_int_equal(eng_provider_request(&rq, vt, ENG_IOC_URL, "http://example.com/", a, &err),
                     AM_EINVAL); /* the secret was not resolved (no resolve_secrets) */
    assert_string_equal(err.code, "PROVIDER_SECRET_MISSING");
    const eng_provider_t *uh = eng_providers_find(s, "urlhaus_url");
    memset(&err, 0, sizeof(err));
    assert_int_equal(
        eng_provider_request(&rq, uh, ENG_IOC_URL, "http://x.example/a?b=c&d", a, &err), AM_EINVAL);
    const eng_provider_t *bl = eng_providers_find(s, "example_blocklist");
    assert_int_equal(eng_provider_request(&rq, bl, ENG_IOC_IP, "1.2.3.4", a, &err), AM_EINVAL);
    am_arena_free(a);
    eng_providers_unref(s);
}

static void test_form_body(void **state)
{
    (void)state;
    am_diags_t d;
    am_diags_init(&d);
    eng_providers_t *s = load_text("provider: p\nkind: http\ntypes: [url]\n"
                                   "request:\n  method: POST\n  url: https://h/v1/url/\n"
                                   "  form: {url: \"{value}\"}\n"
                                   "results: {a: a}\nverdict: [{else: Benign}]\n",
                                   &d);
    assert_non_null(s);
    am_arena_t *a = am_arena_new(4096, SIZE_MAX);
    eng_request_t rq;
    eng_error_t err = {0};
    assert_int_equal(eng_provider_request(&rq, eng_providers_at(s, 0), ENG_IOC_URL,
                                          "http://x/a?b=c&d=e", a, &err),
                     0);
    assert_string_equal(rq.method, "POST");
    assert_string_equal(rq.body, "url=http%3A%2F%2Fx%2Fa%3Fb%3Dc%26d%3De");
    assert_string_equal(rq.headers[rq.nheaders - 1].value, "application/x-www-form-urlencoded");
    am_arena_free(a);
    eng_providers_unref(s);
    am_diags_dispose(&d);
}

static void test_header_control_refused(void **state)
{
    (void)state;
    am_diags_t d;
    am_diags_init(&d);
    eng_providers_t *s = load_text("provider: p\nkind: http\ntypes: [account]\n"
                                   "request:\n  url: https://h/u/{value}\n"
                                   "  headers: {X-User: \"{value}\"}\n"
                                   "results: {a: a}\nverdict: [{else: Benign}]\n",
                                   &d);
    assert_non_null(s);
    am_arena_t *a = am_arena_new(4096, SIZE_MAX);
    eng_request_t rq;
    eng_error_t err = {0};
    assert_int_equal(eng_provider_request(&rq, eng_providers_at(s, 0), ENG_IOC_ACCOUNT,
                                          "bob\r\nX-Evil: 1", a, &err),
                     AM_EINVAL);
    assert_string_equal(err.code, "INVALID_INDICATOR");
    am_arena_free(a);
    eng_providers_unref(s);
    am_diags_dispose(&d);
}

static eng_presult_t eval(const eng_provider_t *p, eng_ioc_type_t t, int status, const char *body)
{
    eng_presult_t r;
    eng_provider_evaluate(&r, p, t, status, body, strlen(body));
    return r;
}

static void test_evaluate_shipped(void **state)
{
    (void)state;
    eng_providers_t *s = shipped();
    const eng_provider_t *vt = eng_providers_find(s, "virustotal"),
                         *ab = eng_providers_find(s, "abuseipdb"),
                         *gn = eng_providers_find(s, "greynoise"),
                         *uh = eng_providers_find(s, "urlhaus_host");
    eng_presult_t r = eval(vt, ENG_IOC_IP, 200,
                           "{\"data\":{\"attributes\":{\"last_analysis_stats\":{\"malicious\":5,"
                           "\"suspicious\":0,\"harmless\":60},\"country\":\"NL\"}}}");
    assert_int_equal(r.outcome, ENG_OUT_FOUND);
    assert_int_equal(r.verdict, ENG_VERDICT_MALICIOUS);
    assert_string_equal(json_string_value(json_object_get(r.fields, "country")), "NL");
    json_decref(r.fields);
    r = eval(vt, ENG_IOC_IP, 404, "{\"error\":{\"code\":\"NotFoundError\"}}");
    assert_int_equal(r.outcome, ENG_OUT_NOT_FOUND);
    json_decref(r.fields);
    r = eval(vt, ENG_IOC_IP, 429, "{}");
    assert_int_equal(r.outcome, ENG_OUT_RETRY);
    json_decref(r.fields);
    r = eval(vt, ENG_IOC_IP, 503, "");
    assert_int_equal(r.outcome, ENG_OUT_RETRY);
    json_decref(r.fields);
    r = eval(vt, ENG_IOC_IP, 401, "{}");
    assert_int_equal(r.outcome, ENG_OUT_FAILED);
    assert_non_null(strstr(r.reason, "401"));
    json_decref(r.fields);
    r = eval(vt, ENG_IOC_IP, 200, "{\"data\": [");
    assert_int_equal(r.outcome, ENG_OUT_FAILED);
    assert_non_null(strstr(r.reason, "not JSON"));
    json_decref(r.fields);

    r = eval(ab, ENG_IOC_IP, 200,
             "{\"data\":{\"abuseConfidenceScore\":40,\"totalReports\":3,"
             "\"isWhitelisted\":false}}");
    assert_int_equal(r.verdict, ENG_VERDICT_SUSPICIOUS);
    json_decref(r.fields);
    r = eval(ab, ENG_IOC_IP, 200,
             "{\"data\":{\"abuseConfidenceScore\":0,\"totalReports\":0,"
             "\"isWhitelisted\":false}}");
    assert_int_equal(r.verdict, ENG_VERDICT_UNKNOWN);
    json_decref(r.fields);

    r = eval(gn, ENG_IOC_IP, 200,
             "{\"noise\":true,\"riot\":false,\"classification\":\"malicious\"}");
    assert_int_equal(r.verdict, ENG_VERDICT_MALICIOUS);
    json_decref(r.fields);
    r = eval(gn, ENG_IOC_IP, 200, "{\"noise\":false,\"riot\":true,\"classification\":\"benign\"}");
    assert_int_equal(r.verdict, ENG_VERDICT_BENIGN);
    json_decref(r.fields);

    r = eval(uh, ENG_IOC_DOMAIN, 200, "{\"query_status\":\"no_results\"}");
    assert_int_equal(r.outcome, ENG_OUT_NOT_FOUND);
    json_decref(r.fields);
    r = eval(uh, ENG_IOC_DOMAIN, 200,
             "{\"query_status\":\"ok\",\"urls\":[{\"url\":\"http://a/\",\"url_status\":"
             "\"offline\"},{\"url\":\"http://b/\",\"url_status\":\"online\"}]}");
    assert_int_equal(r.verdict, ENG_VERDICT_MALICIOUS);
    assert_int_equal(json_array_size(json_object_get(r.fields, "online_urls")), 1);
    json_decref(r.fields);
    r = eval(uh, ENG_IOC_DOMAIN, 200,
             "{\"query_status\":\"ok\",\"urls\":[{\"url\":\"http://a/\",\"url_status\":"
             "\"offline\"}]}");
    assert_int_equal(r.verdict, ENG_VERDICT_SUSPICIOUS);
    json_decref(r.fields);
    eng_providers_unref(s);
}

static void test_lists_and_ranges(void **state)
{
    (void)state;
    eng_providers_t *s = shipped();
    const eng_provider_t *bl = eng_providers_find(s, "example_blocklist"),
                         *ir = eng_providers_find(s, "internal_ranges");
    eng_presult_t r;
    eng_provider_lookup(&r, bl, ENG_IOC_IP, "198.51.100.23");
    assert_int_equal(r.outcome, ENG_OUT_FOUND);
    assert_int_equal(r.verdict, ENG_VERDICT_MALICIOUS);
    assert_string_equal(json_string_value(json_object_get(r.fields, "entry")), "198.51.100.0/24");
    assert_string_equal(json_string_value(json_object_get(r.fields, "tag")), "blocklist");
    json_decref(r.fields);
    eng_provider_lookup(&r, bl, ENG_IOC_DOMAIN, "malware.example.net");
    assert_int_equal(r.outcome, ENG_OUT_FOUND);
    json_decref(r.fields);
    eng_provider_lookup(&r, bl, ENG_IOC_IP, "198.51.101.1");
    assert_int_equal(r.outcome, ENG_OUT_NOT_FOUND);
    assert_int_equal(r.verdict, ENG_VERDICT_UNKNOWN);
    json_decref(r.fields);

    eng_provider_lookup(&r, ir, ENG_IOC_IP, "10.20.3.4");
    assert_int_equal(r.outcome, ENG_OUT_FOUND);
    assert_int_equal(r.verdict, ENG_VERDICT_NONE);
    json_t *l = json_object_get(r.fields, "labels");
    assert_int_equal(json_array_size(l), 3);
    assert_string_equal(json_string_value(json_array_get(l, 1)), "site:paris");
    assert_string_equal(json_string_value(json_array_get(json_object_get(r.fields, "ranges"), 0)),
                        "10.20.0.0/16");
    json_decref(r.fields);
    eng_provider_lookup(&r, ir, ENG_IOC_IP, "fd12::1");
    assert_int_equal(r.outcome, ENG_OUT_FOUND);
    json_decref(r.fields);
    eng_provider_lookup(&r, ir, ENG_IOC_IP, "8.8.8.8");
    assert_int_equal(r.outcome, ENG_OUT_NOT_FOUND);
    json_decref(r.fields);
    eng_providers_unref(s);
}

static void test_csv_list(void **state)
{
    (void)state;
    char dir[] = "/tmp/am_prov_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], list[256];
    snprintf(path, sizeof(path), "%s/feed.yaml", dir);
    snprintf(list, sizeof(list), "%s/feed.csv", dir);
    FILE *f = fopen(list, "w");
    fputs(
        "# feed\nfirst_seen,dst_ip,port\n2024-01-01,192.0.2.9,443\n\"2024,01\",\"192.0.2.10\",80\n"
        "2024-01-02,not-an-ip,1\n",
        f);
    fclose(f);
    f = fopen(path, "w");
    fputs("provider: feed\nkind: list\ntypes: [ip]\nfile: feed.csv\nformat: csv\n"
          "header: true\ncolumn: dst_ip\nverdict: Suspicious\n",
          f);
    fclose(f);
    const char *paths[] = {path};
    am_diags_t d;
    am_diags_init(&d);
    eng_providers_t *s = NULL;
    assert_int_equal(eng_providers_load(&s, paths, 1, NULL, &d), 0);
    eng_provider_info_t info;
    eng_provider_info(&info, eng_providers_at(s, 0));
    assert_int_equal(info.entries, 2);
    assert_int_equal(info.skipped, 1);
    eng_presult_t r;
    eng_provider_lookup(&r, eng_providers_at(s, 0), ENG_IOC_IP, "192.0.2.10");
    assert_int_equal(r.verdict, ENG_VERDICT_SUSPICIOUS);
    json_decref(r.fields);
    eng_providers_unref(s);
    /* a header name that is not there points into the list file */
    f = fopen(path, "w");
    fputs("provider: feed\nkind: list\ntypes: [ip]\nfile: feed.csv\nformat: csv\n"
          "header: true\ncolumn: src\n",
          f);
    fclose(f);
    assert_int_equal(eng_providers_load(&s, paths, 1, NULL, &d), AM_EINVAL);
    assert_true(t_has_diag(&d, 2, 1, "no column 'src'"));
    assert_string_equal(d.items[0].file, list);
    am_diags_dispose(&d);
    remove(list);
    remove(path);
    rmdir(dir);
}

static void test_duplicate_name(void **state)
{
    (void)state;
    const char *t = "provider: same\nkind: cidr\nranges: [{cidr: 10.0.0.0/8, labels: [a]}]\n";
    const char *names[] = {"a.yaml", "b.yaml"};
    const char *texts[] = {t, t};
    size_t lens[] = {strlen(t), strlen(t)};
    am_diags_t d;
    am_diags_init(&d);
    eng_providers_t *s = NULL;
    assert_int_equal(eng_providers_load_texts(&s, names, texts, lens, 2, NULL, &d), AM_EINVAL);
    assert_int_equal(d.count, 1);
    assert_string_equal(d.items[0].file, "b.yaml");
    assert_non_null(strstr(d.items[0].msg, "already defined in a.yaml"));
    am_diags_dispose(&d);
}

static void test_retry_after(void **state)
{
    (void)state;
    int64_t now = (int64_t)784111777 * 1000000; /* Sun, 06 Nov 1994 08:49:37 GMT */
    assert_int_equal(eng_retry_after_us("120", now), 120 * (int64_t)1000000);
    assert_int_equal(eng_retry_after_us("Sun, 06 Nov 1994 08:49:47 GMT", now), 10 * 1000000);
    assert_int_equal(eng_retry_after_us("Sun, 06 Nov 1994 08:49:00 GMT", now), 0);
    assert_int_equal(eng_retry_after_us("soon", now), -1);
    assert_int_equal(eng_retry_after_us("12x", now), -1);
    assert_int_equal(eng_retry_after_us(NULL, now), -1);
}

static void test_limiter(void **state)
{
    (void)state;
    am_diags_t d;
    am_diags_init(&d);
    eng_providers_t *s = load_text("provider: p\nkind: http\ntypes: [ip]\nrate_limit: 2/s\n"
                                   "request:\n  url: https://h/u/{value}\n"
                                   "results: {a: a}\nverdict: [{else: Benign}]\n",
                                   &d);
    assert_non_null(s);
    eng_limiter_t l;
    int64_t t = 1000000000;
    eng_limiter_init(&l, eng_providers_at(s, 0), t);
    assert_int_equal(eng_limiter_take(&l, t), 0);
    assert_int_equal(eng_limiter_take(&l, t), 0);
    int64_t w = eng_limiter_take(&l, t);
    assert_true(w > 0 && w <= 500001);
    assert_int_equal(eng_limiter_take(&l, t + w), 0);
    eng_limiter_pause(&l, t + 10 * 1000000);
    assert_true(eng_limiter_take(&l, t + 5 * 1000000) >= 5 * 1000000 - 1);
    assert_int_equal(eng_limiter_take(&l, t + 10 * 1000000), 0);
    eng_limiter_dispose(&l);
    eng_providers_unref(s);
    am_diags_dispose(&d);
}

static void test_target_signature_vector(void **state)
{
    (void)state;
    /* the worked example of docs/dispatch.md */
    const char body[] =
        "{\"uuid\":\"6f1c2a9e-3b7d-4c1a-9e8f-0a1b2c3d4e5f\",\"verdict\":\"Malicious\"}";
    char sig[160];
    eng_target_sign(sig, "whsec-example", 1764626400, body, strlen(body));
    assert_string_equal(sig, "t=1764626400,v1=a4e7042018d4695c33b8ab5fb9c30edf7912446b07f9ffeed03b7"
                             "fc1b7199923");
}

static void test_targets_compile_and_filter(void **state)
{
    (void)state;
    char dir[] = "/tmp/am_targets_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char a[256], b[256];
    snprintf(a, sizeof(a), "%s/a.yaml", dir);
    snprintf(b, sizeof(b), "%s/b.yaml", dir);
    FILE *f = fopen(a, "w");
    fputs("target: soc\nurl: https://agent.example/hook\nsecret: SOC_SECRET\n"
          "filters:\n  sources: [sentinel]\n  min_severity: High\n"
          "  verdicts: [Malicious]\n  tags: [prod]\n",
          f);
    fclose(f);
    f = fopen(b, "w");
    fputs("target: Bad\nurl: ftp://x\nwhen: later\nfilters: {min_severity: Huge}\n", f);
    fclose(f);
    const char *pa[] = {a}, *pb[] = {b};
    am_diags_t d;
    am_diags_init(&d);
    eng_targets_t *ts = NULL;
    assert_int_equal(eng_targets_load(&ts, pa, 1, NULL, &d), 0);
    const eng_target_t *t = eng_targets_find(ts, "soc");
    assert_non_null(t);
    const char *tags[] = {"x", "prod"};
    assert_true(eng_target_matches(t, "sentinel", "Critical", "Malicious", tags, 2));
    assert_false(eng_target_matches(t, "sentinel", "Medium", "Malicious", tags, 2));
    assert_false(eng_target_matches(t, "okta", "Critical", "Malicious", tags, 2));
    assert_false(eng_target_matches(t, "sentinel", "Critical", "Benign", tags, 2));
    assert_false(eng_target_matches(t, "sentinel", "Critical", NULL, tags, 2));
    assert_false(eng_target_matches(t, "sentinel", "Critical", "Malicious", tags, 1));
    eng_targets_free(ts);
    assert_int_equal(eng_targets_load(&ts, pb, 1, NULL, &d), AM_EINVAL);
    assert_true(t_has_diag(&d, 1, 9, "'target' must be"));
    assert_true(t_has_diag(&d, 2, 6, "'url' must be"));
    assert_true(t_has_diag(&d, 3, 7, "'when' must be"));
    assert_true(t_has_diag(&d, 4, 25, "'min_severity'"));
    assert_true(t_has_diag(&d, 1, 1, "missing key 'secret'"));
    am_diags_dispose(&d);
    remove(a);
    remove(b);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped),
        cmocka_unit_test(test_errors_many),
        cmocka_unit_test(test_secret_in_url_refused),
        cmocka_unit_test(test_secret_resolved_from_environment),
        cmocka_unit_test(test_url_slots),
        cmocka_unit_test(test_vt_requests),
        cmocka_unit_test(test_form_body),
        cmocka_unit_test(test_header_control_refused),
        cmocka_unit_test(test_evaluate_shipped),
        cmocka_unit_test(test_lists_and_ranges),
        cmocka_unit_test(test_csv_list),
        cmocka_unit_test(test_duplicate_name),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_limiter),
        cmocka_unit_test(test_target_signature_vector),
        cmocka_unit_test(test_targets_compile_and_filter),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
