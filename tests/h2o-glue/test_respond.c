/* tests/h2o-glue/test_respond.c - every answer goes through glue_respond()
 * once: one send, one "request" log line, one count in the metrics, even
 * when the answer's body cannot be built (it used to be logged and counted
 * as 202 and then as 500); the ingest handler answers an engine or arena
 * limit 413/422 LIMIT_EXCEEDED, never 500. The handlers run on a request
 * built here whose output stream records what h2o would send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "glue.h"

/* A request with no connection behind it: its output stream keeps the
 * status and body of what is sent. */
typedef struct fake {
    h2o_req_t req;
    h2o_conn_t conn;
    h2o_conn_callbacks_t callbacks;
    h2o_pathconf_t pathconf;
    h2o_ostream_t os;
    int sends;        /* final sends seen */
    int status;       /* at the first send */
    char body[65536]; /* the bytes sent */
    size_t len;
    glue_reqctx_t *rc;
} fake_t;

static void capture(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t n,
                    h2o_send_state_t state)
{
    fake_t *f = H2O_STRUCT_FROM_MEMBER(fake_t, os, self);
    if (f->sends == 0 && f->len == 0)
        f->status = req->res.status;
    for (size_t i = 0; i < n; i++) {
        size_t room = sizeof(f->body) - 1 - f->len;
        size_t k = bufs[i].len < room ? bufs[i].len : room;
        memcpy(f->body + f->len, bufs[i].base, k);
        f->len += k;
    }
    f->body[f->len] = '\0';
    if (state != H2O_SEND_STATE_IN_PROGRESS)
        f->sends++;
}

static void rc_dispose(void *p)
{
    glue_reqctx_t *rc = p;
    am_arena_free(rc->arena);
    eng_set_unref(rc->set);
}

static fake_t *fake_new(const char *method, const char *path, const char *body, size_t arena_cap)
{
    fake_t *f = calloc(1, sizeof(*f));
    f->conn.callbacks = &f->callbacks;
    h2o_init_request(&f->req, &f->conn, NULL);
    f->req.pathconf = &f->pathconf;
    f->os.do_send = capture;
    f->req._ostr_top = &f->os;
    f->req.method = h2o_iovec_init(method, strlen(method));
    f->req.path = h2o_iovec_init(path, strlen(path));
    f->req.path_normalized = f->req.path;
    f->req.query_at = SIZE_MAX;
    if (body != NULL)
        f->req.entity = h2o_iovec_init(body, strlen(body));
    glue_reqctx_t *rc = h2o_mem_alloc_shared(&f->req.pool, sizeof(*rc), rc_dispose);
    memset(rc, 0, sizeof(*rc));
    rc->req = &f->req;
    rc->arena = am_arena_new(4096, arena_cap);
    rc->started_us = am_now_us();
    snprintf(rc->request_id, sizeof(rc->request_id), "test-1");
    f->rc = rc;
    return f;
}

static void fake_free(fake_t *f)
{
    h2o_dispose_request(&f->req);
    free(f);
}

/* ---- stderr capture: the "request" lines written meanwhile ----------- */

static int saved_stderr = -1;
static char log_path[] = "/tmp/test_respond_log.XXXXXX";

static void capture_log_start(void)
{
    int fd = mkstemp(log_path);
    assert_true(fd >= 0);
    fflush(stderr);
    saved_stderr = dup(2);
    dup2(fd, 2);
    close(fd);
}

/* Returns how many lines hold needle, and restores stderr. */
static int capture_log_stop(const char *needle)
{
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    FILE *in = fopen(log_path, "r");
    assert_non_null(in);
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof(line), in) != NULL)
        if (strstr(line, needle) != NULL)
            n++;
    fclose(in);
    unlink(log_path);
    memcpy(log_path + strlen(log_path) - 6, "XXXXXX", 6);
    return n;
}

/* The count of alertmap_http_requests_total{route,code}; 0 when absent. */
static unsigned long long requests_counted(const char *route, int code)
{
    am_buf_t b;
    am_buf_init(&b, 0);
    assert_int_equal(glue_metrics_render(&b, NULL), AM_OK);
    char want[128];
    snprintf(want, sizeof(want), "alertmap_http_requests_total{route=\"%s\",code=\"%d\"} ", route,
             code);
    const char *p = strstr(b.data, want);
    unsigned long long n = p ? strtoull(p + strlen(want), NULL, 10) : 0;
    am_buf_dispose(&b);
    return n;
}

static int reset(void **state)
{
    (void)state;
    glue_metrics_reset();
    return 0;
}

static void value_that_cannot_be_built_is_one_500(void **state)
{
    (void)state;
    fake_t *f = fake_new("POST", "/v1/ingest/generic", NULL, 0);
    f->rc->route = GLUE_R_INGEST;
    f->rc->alert_uuid = "6f1c1e7e-0000-4000-8000-000000000001";
    capture_log_start();
    glue_send_value(f->rc, 202, NULL);
    int lines = capture_log_stop("\"event\":\"request\"");
    assert_int_equal(f->sends, 1);
    assert_int_equal(f->status, 500);
    assert_non_null(strstr(f->body, "\"code\":\"INTERNAL\""));
    assert_int_equal(lines, 1);
    assert_int_equal(requests_counted("ingest", 500), 1);
    assert_int_equal(requests_counted("ingest", 202), 0);
    fake_free(f);
}

static void every_helper_answers_once(void **state)
{
    (void)state;
    fake_t *f[3] = {fake_new("GET", "/healthz", NULL, 0), fake_new("GET", "/v1/alerts", NULL, 0),
                    fake_new("GET", "/metrics", NULL, 0)};
    f[0]->rc->route = GLUE_R_HEALTHZ;
    f[1]->rc->route = GLUE_R_ALERTS;
    f[2]->rc->route = GLUE_R_METRICS;
    capture_log_start();
    glue_handle_healthz(f[0]->rc, NULL);
    glue_send_error(f[1]->rc, 400, "INVALID_PARAMETER", "bad");
    glue_respond(f[2]->rc, 200, "text/plain", "x 1\n", 4, NULL);
    int lines = capture_log_stop("\"event\":\"request\"");
    assert_int_equal(lines, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f[i]->sends, 1);
        assert_true(f[i]->rc->answered);
    }
    assert_int_equal(f[0]->status, 200);
    assert_string_equal(f[0]->body, "{\"status\":\"ok\"}");
    assert_int_equal(f[1]->status, 400);
    assert_int_equal(requests_counted("healthz", 200), 1);
    assert_int_equal(requests_counted("alerts", 400), 1);
    assert_int_equal(requests_counted("metrics", 200), 1);
    for (int i = 0; i < 3; i++)
        fake_free(f[i]);
}

/* ---- limits ----------------------------------------------------------- */

static glue_server_t *server;
static glue_config_t cfg;

static int with_mappings(void **state)
{
    (void)state;
    const char *root = getenv("ALERTMAP_SOURCE_ROOT");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/mappings", root ? root : ".");
    am_diags_t d;
    am_diags_init(&d);
    int rc = glue_mappings_init(dir, &d);
    if (rc != AM_OK)
        am_diags_print(&d, stderr);
    am_diags_dispose(&d);
    assert_int_equal(rc, AM_OK);
    /* a server that was never started: no store, so an ingest that gets
     * past every limit is answered 503 */
    memset(&cfg, 0, sizeof(cfg));
    cfg.listen = "127.0.0.1:0";
    snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
    snprintf(cfg.port, sizeof(cfg.port), "0");
    cfg.threads = 1;
    cfg.max_body = GLUE_DEFAULT_MAX_BODY;
    char err[256];
    assert_int_equal(glue_server_new(&server, &cfg, err, sizeof(err)), AM_OK);
    return 0;
}

static int without_mappings(void **state)
{
    (void)state;
    glue_server_free(server);
    server = NULL;
    glue_mappings_shutdown();
    return 0;
}

/* A generic payload with n explicit indicators (distinct IPs). */
static char *indicator_body(int n)
{
    size_t cap = 64 + (size_t)n * 48;
    char *b = malloc(cap);
    size_t k = (size_t)snprintf(b, cap, "{\"title\":\"limit test\",\"indicators\":[");
    for (int i = 0; i < n; i++)
        k += (size_t)snprintf(b + k, cap - k, "%s{\"type\":\"ip\",\"value\":\"10.%d.%d.%d\"}",
                              i ? "," : "", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    snprintf(b + k, cap - k, "]}");
    return b;
}

static fake_t *run_ingest(const char *path, const char *body, size_t cap, bool dry_run)
{
    fake_t *f = fake_new("POST", path, body, cap);
    f->rc->srv = server;
    f->rc->route = dry_run ? GLUE_R_SOURCE_TEST : GLUE_R_INGEST;
    glue_route_params_t params;
    size_t n;
    const glue_route_entry_t *t = glue_route_table(&n);
    (void)t;
    assert_true(glue_route_pattern_match(dry_run ? "/v1/sources/{source_name}/test"
                                                 : "/v1/ingest/{source_name}",
                                         path, strlen(path), &params));
    if (dry_run)
        glue_handle_source_test(f->rc, &params);
    else
        glue_handle_ingest(f->rc, &params);
    assert_int_equal(f->sends, 1);
    return f;
}

static void engine_limit_is_422(void **state)
{
    (void)state;
    /* more indicators in one alert than the engine allows */
    char *body = indicator_body(ENG_MAX_INDICATORS + 1);
    fake_t *f = run_ingest("/v1/ingest/generic", body, 0, false);
    if (f->status != 422 || strstr(f->body, "\"code\":\"LIMIT_EXCEEDED\"") == NULL)
        fail_msg("too many indicators: %d %s", f->status, f->body);
    fake_free(f);
    f = run_ingest("/v1/sources/generic/test", body, 0, true);
    if (f->status != 422 || strstr(f->body, "\"code\":\"LIMIT_EXCEEDED\"") == NULL)
        fail_msg("too many indicators (dry run): %d %s", f->status, f->body);
    fake_free(f);
    assert_int_equal(requests_counted("ingest", 422), 1);
    assert_int_equal(requests_counted("ingest", 500), 0);
    free(body);
}

/* Every cap of the request's arena, from far too small to enough: the
 * answer is 413 or 422 LIMIT_EXCEEDED until the request fits, never 500. */
static void arena_cap_is_4xx_never_500(void **state)
{
    (void)state;
    char *body = indicator_body(400);
    bool saw_413 = false, saw_422 = false, saw_503 = false;
    for (size_t cap = 1024; cap <= 512 * 1024; cap += 2048) {
        fake_t *f = run_ingest("/v1/ingest/generic", body, cap, false);
        if (getenv("TEST_VERBOSE"))
            fprintf(stderr, "cap %zu: %d %.120s\n", cap, f->status, f->body);
        if (f->status == 413 || f->status == 422) {
            if (strstr(f->body, "\"code\":\"LIMIT_EXCEEDED\"") == NULL)
                fail_msg("cap %zu: %d without LIMIT_EXCEEDED: %s", cap, f->status, f->body);
            saw_413 |= f->status == 413;
            saw_422 |= f->status == 422;
        } else if (f->status == 503) {
            saw_503 = true; /* past every limit: no store here */
        } else {
            fail_msg("cap %zu: answered %d: %s", cap, f->status, f->body);
        }
        fake_free(f);
        /* the dry run with the same cap: 422 LIMIT_EXCEEDED or 200 */
        f = run_ingest("/v1/sources/generic/test", body, cap, true);
        if (f->status != 200 && !(f->status == 422 && strstr(f->body, "LIMIT_EXCEEDED")))
            fail_msg("dry run, cap %zu: answered %d: %s", cap, f->status, f->body);
        fake_free(f);
    }
    assert_true(saw_422); /* the engine ran out of room */
    assert_true(saw_413); /* the copy of the body did not fit */
    assert_true(saw_503);
    assert_int_equal(requests_counted("ingest", 500), 0);
    free(body);
}

int main(void)
{
    json_set_alloc_funcs(am_xmalloc, free);
    am_log_set_level(AM_LOG_DEBUG);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(value_that_cannot_be_built_is_one_500, reset),
        cmocka_unit_test_setup(every_helper_answers_once, reset),
    };
    const struct CMUnitTest limits[] = {
        cmocka_unit_test(engine_limit_is_422),
        cmocka_unit_test(arena_cap_is_4xx_never_500),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    failed += cmocka_run_group_tests(limits, with_mappings, without_mappings);
    return failed;
}
