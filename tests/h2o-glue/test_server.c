/* tests/h2o-glue/test_server.c - alertmapd's server in this process on
 * 127.0.0.1 (no store, a database that cannot be reached): each route of
 * the table is served through its own h2o path, unknown paths and wrong
 * methods get JSON 404/405, /readyz says why it is not ready, and a start
 * that fails part-way stops cleanly (it used to dereference the stop
 * receiver of a loop that never registered one). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "glue.h"

static glue_config_t cfg;

static void config(int threads)
{
    memset(&cfg, 0, sizeof(cfg));
    cfg.listen = "127.0.0.1:0";
    snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
    snprintf(cfg.port, sizeof(cfg.port), "0");
    cfg.threads = threads;
    cfg.max_body = 1024;
    /* a socket directory that does not exist: the database never answers */
    cfg.database_url = "host=/nonexistent/alertmap-test dbname=none connect_timeout=1";
}

typedef struct answer {
    int status;
    char head[4096];
    char body[8192];
} answer_t;

/* One HTTP/1.1 request with Connection: close and extra header lines
 * (each ending in \r\n, or NULL); the whole answer. */
static void http_with(answer_t *a, int port, const char *method, const char *path,
                      const char *headers, const char *body)
{
    memset(a, 0, sizeof(*a));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char req[8192];
    int n =
        snprintf(req, sizeof(req),
                 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                 "Content-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n%s",
                 method, path, headers ? headers : "", body ? strlen(body) : 0, body ? body : "");
    assert_true(n > 0 && (size_t)n < sizeof(req));
    assert_int_equal(write(fd, req, (size_t)n), n);
    char buf[16384];
    size_t len = 0;
    for (ssize_t r; len < sizeof(buf) - 1 && (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0;)
        len += (size_t)r;
    buf[len] = '\0';
    close(fd);
    char *end = strstr(buf, "\r\n\r\n");
    if (end == NULL)
        fail_msg("%s %s: no complete answer: '%s'", method, path, buf);
    *end = '\0';
    size_t hl = strlen(buf), bl = strlen(end + 4);
    assert_true(hl < sizeof(a->head) && bl < sizeof(a->body));
    memcpy(a->head, buf, hl + 1);
    memcpy(a->body, end + 4, bl + 1);
    assert_int_equal(sscanf(buf, "HTTP/1.1 %d", &a->status), 1);
}

static void http(answer_t *a, int port, const char *method, const char *path, const char *body)
{
    http_with(a, port, method, path, NULL, body);
}

static bool has_header(const answer_t *a, const char *line)
{
    /* header names in any case */
    return strcasestr(a->head, line) != NULL;
}

static int port_of(const glue_server_t *srv)
{
    const char *addr = glue_server_address(srv);
    const char *colon = strrchr(addr, ':');
    assert_non_null(colon);
    return (int)strtol(colon + 1, NULL, 10);
}

static void routes_over_http(void **state)
{
    (void)state;
    config(2);
    glue_server_t *srv = NULL;
    char err[256];
    assert_int_equal(glue_server_new(&srv, &cfg, err, sizeof(err)), AM_OK);
    assert_int_equal(glue_server_start(srv, NULL), AM_OK);
    int port = port_of(srv);
    answer_t a;

    http(&a, port, "GET", "/healthz", NULL);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.body, "{\"status\":\"ok\"}");
    assert_true(has_header(&a, "content-type: application/json"));
    assert_true(has_header(&a, "x-request-id: "));

    /* unknown paths: under no registered prefix, and under one */
    const char *unknown[] = {
        "/",           "/nope",          "/healthz/",     "/healthzx",      "/v1/ingest",
        "/v1/ingest/", "/v1/ingest/a/b", "/v1/sources/x", "/v1/alerts/a/b", "/v1/alertsx",
        "/readyz/x"};
    for (size_t i = 0; i < AM_ARRAY_LEN(unknown); i++) {
        http(&a, port, "GET", unknown[i], NULL);
        if (a.status != 404 || strstr(a.body, "\"code\":\"NOT_FOUND\"") == NULL)
            fail_msg("GET %s: %d %s", unknown[i], a.status, a.body);
    }

    /* known paths, other methods: 405 with the table's methods */
    http(&a, port, "POST", "/healthz", "{}");
    assert_int_equal(a.status, 405);
    assert_true(has_header(&a, "allow: GET"));
    assert_non_null(strstr(a.body, "\"code\":\"METHOD_NOT_ALLOWED\""));
    http(&a, port, "DELETE", "/v1/alerts/6f1c1e7e-0000-4000-8000-000000000001", NULL);
    assert_int_equal(a.status, 405);
    assert_true(has_header(&a, "allow: GET, PATCH"));
    http(&a, port, "DELETE", "/v1/ingest/generic", NULL);
    assert_int_equal(a.status, 405);
    assert_true(has_header(&a, "allow: POST, GET")); /* GET: verification handshakes */

    /* routes that need a key: 401 without one */
    http(&a, port, "GET", "/v1/alerts", NULL);
    assert_int_equal(a.status, 401);
    assert_true(has_header(&a, "www-authenticate: Bearer"));

    /* a body over --max-body: 413 JSON */
    char big[2048];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    http(&a, port, "POST", "/v1/ingest/generic", big);
    assert_int_equal(a.status, 413);
    assert_non_null(strstr(a.body, "PAYLOAD_TOO_LARGE"));

    /* no mapping set loaded yet */
    http(&a, port, "GET", "/readyz", NULL);
    assert_int_equal(a.status, 503);
    assert_non_null(strstr(a.body, "\"status\":\"not_ready\""));
    assert_non_null(strstr(a.body, "no mapping set is loaded"));

    /* mappings loaded, the database still unreachable */
    const char *root = getenv("ALERTMAP_SOURCE_ROOT");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/mappings", root ? root : ".");
    am_diags_t d;
    am_diags_init(&d);
    assert_int_equal(glue_mappings_init(dir, &d), AM_OK);
    am_diags_dispose(&d);
    http(&a, port, "GET", "/readyz", NULL);
    assert_int_equal(a.status, 503);
    assert_non_null(strstr(a.body, "the database does not answer"));
    /* the answer names no socket path or libpq text */
    assert_null(strstr(a.body, "nonexistent"));
    http(&a, port, "GET", "/healthz", NULL);
    assert_int_equal(a.status, 200);

    /* the metrics saw each route by its label */
    http(&a, port, "GET", "/metrics", NULL);
    assert_int_equal(a.status, 200);
    assert_non_null(
        strstr(a.body, "alertmap_http_requests_total{route=\"readyz\",code=\"503\"} 2"));
    assert_non_null(
        strstr(a.body, "alertmap_http_requests_total{route=\"healthz\",code=\"405\"} 1"));
    assert_non_null(strstr(a.body, "alertmap_http_requests_total{route=\"other\",code=\"404\"}"));

    glue_server_stop(srv);
    glue_server_free(srv);
    glue_mappings_shutdown();
}

/* A path of row r with its parameters filled in. */
static void row_path(char *out, size_t len, const glue_route_entry_t *r)
{
    size_t k = 0;
    for (const char *p = r->pattern; *p != '\0' && k + 40 < len;) {
        if (*p == '{') {
            k += (size_t)snprintf(out + k, len - k, "%s",
                                  strncmp(p, "{uuid}", 6) == 0
                                      ? "6f1c1e7e-0000-4000-8000-000000000001"
                                  : strncmp(p, "{delivery_id}", 13) == 0 ? "42"
                                                                         : "generic");
            p = strchr(p, '}') + 1;
        } else {
            out[k++] = *p++;
        }
    }
    out[k] = '\0';
}

static const char token[] = "amk_abcdefgh_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst";

/* Every row of the route table but the public ones answers 401 without a
 * key, whatever else the request carries (a cookie, a key in the query
 * string of a route that is not ingest, another scheme); with a key the
 * server asks the key store, which cannot answer here: 503, never 401 and
 * never the handler. */
static void every_protected_route_needs_a_key(void **state)
{
    (void)state;
    /* generic opted out of its (unset) signature: it takes keys only */
    glue_config_t acfg;
    memset(&acfg, 0, sizeof(acfg));
    acfg.unsigned_sources = "generic";
    glue_auth_init(&acfg);
    config(2);
    glue_server_t *srv = NULL;
    char err[256];
    assert_int_equal(glue_server_new(&srv, &cfg, err, sizeof(err)), AM_OK);
    assert_int_equal(glue_server_start(srv, NULL), AM_OK);
    const char *root = getenv("ALERTMAP_SOURCE_ROOT");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/mappings", root ? root : ".");
    am_diags_t d;
    am_diags_init(&d);
    assert_int_equal(glue_mappings_init(dir, &d), AM_OK);
    am_diags_dispose(&d);
    int port = port_of(srv);
    char cookie[160], basic[160], bearer[160], apikey[160];
    snprintf(cookie, sizeof(cookie), "Cookie: api_key=%s; session=%s\r\n", token, token);
    snprintf(basic, sizeof(basic), "Authorization: Basic %s\r\n", token);
    snprintf(bearer, sizeof(bearer), "Authorization: bearer  %s \r\n", token);
    snprintf(apikey, sizeof(apikey), "X-API-Key: %s\r\n", token);
    size_t n;
    const glue_route_entry_t *t = glue_route_table(&n);
    size_t protected_rows = 0;
    for (size_t i = 0; i < n; i++) {
        const glue_route_entry_t *r = &t[i];
        char path[256], qpath[400];
        row_path(path, sizeof(path), r);
        answer_t a;
        if (r->scope == GLUE_SCOPE_PUBLIC) {
            http(&a, port, r->method, path, NULL);
            if (a.status == 401)
                fail_msg("%s %s is public but answered 401", r->method, path);
            continue;
        }
        if (r->scope == GLUE_SCOPE_METRICS)
            continue; /* public on loopback by default; see metrics_access below */
        protected_rows++;
        const char *body = strcmp(r->method, "GET") == 0 ? NULL : "{\"title\":\"x\"}";
        const char *without[] = {NULL, cookie, basic};
        for (size_t k = 0; k < AM_ARRAY_LEN(without); k++) {
            http_with(&a, port, r->method, path, without[k], body);
            if (a.status != 401 || strstr(a.body, "\"code\":\"") == NULL ||
                !has_header(&a, "www-authenticate: Bearer"))
                fail_msg("%s %s without a key (%s): %d %s", r->method, path,
                         without[k] ? without[k] : "nothing", a.status, a.body);
        }
        /* a key in the query string counts only for ingest, and only where
         * the mapping allows it (no shipped mapping does) */
        snprintf(qpath, sizeof(qpath), "%s?api_key=%s", path, token);
        http(&a, port, r->method, qpath, body);
        if (a.status != 401)
            fail_msg("%s %s: %d %s", r->method, qpath, a.status, a.body);
        const char *with[] = {bearer, apikey};
        for (size_t k = 0; k < AM_ARRAY_LEN(with); k++) {
            http_with(&a, port, r->method, path, with[k], body);
            if (a.status != 503 || strstr(a.body, "DATABASE_UNAVAILABLE") == NULL ||
                !has_header(&a, "retry-after: 5"))
                fail_msg("%s %s with a key: %d %s", r->method, path, a.status, a.body);
        }
    }
    assert_true(protected_rows >= 6);
    /* an unknown source: 401 without a key (no mapping, so no signature
     * can vouch for it), not 404 */
    answer_t a;
    http(&a, port, "POST", "/v1/ingest/no-such-source", "{}");
    assert_int_equal(a.status, 401);
    assert_non_null(strstr(a.body, "UNAUTHORIZED"));
    /* a source whose signature secret is unset: refused, naming the variable */
    http(&a, port, "POST", "/v1/ingest/sentinel", "{}");
    assert_int_equal(a.status, 401);
    assert_non_null(strstr(a.body, "SIGNATURE_SECRET_UNSET"));
    assert_non_null(strstr(a.body, "SENTINEL_WEBHOOK_SECRET"));
    /* /metrics from loopback: public by default */
    http(&a, port, "GET", "/metrics", NULL);
    assert_int_equal(a.status, 200);
    glue_server_stop(srv);
    glue_server_free(srv);

    /* --metrics-access key: a read key even from loopback; and a verifier
     * whose database is unreachable (set before the loops start, as
     * alertmapd does) */
    acfg.metrics_access = GLUE_METRICS_KEY;
    glue_auth_init(&acfg);
    store_keys_options_t ko = {.conninfo = cfg.database_url};
    store_keys_t *keys = store_keys_new(&ko);
    glue_auth_set_keys(keys);
    config(1);
    assert_int_equal(glue_server_new(&srv, &cfg, err, sizeof(err)), AM_OK);
    assert_int_equal(glue_server_start(srv, NULL), AM_OK);
    port = port_of(srv);
    http(&a, port, "GET", "/metrics", NULL);
    assert_int_equal(a.status, 401);
    /* with a key but no database to check it: 503, never 401 */
    http_with(&a, port, "GET", "/metrics", apikey, NULL);
    if (a.status != 503)
        fail_msg("/metrics with a key, no database: %d %s", a.status, a.body);
    http_with(&a, port, "POST", "/v1/ingest/generic", apikey, "{\"title\":\"x\"}");
    assert_int_equal(a.status, 503);
    /* sentinel is not opted out: refused before the key is looked at */
    http_with(&a, port, "POST", "/v1/ingest/sentinel", apikey, "{}");
    assert_int_equal(a.status, 401);
    assert_non_null(strstr(a.body, "SIGNATURE_SECRET_UNSET"));
    glue_server_stop(srv);
    glue_server_free(srv);
    glue_auth_shutdown();
    store_keys_free(keys);
    glue_mappings_shutdown();
}

static void start_failing_part_way_stops_cleanly(void **state)
{
    (void)state;
    /* The loops already started are still setting up when the start fails;
     * stopping must wait for them, and must not touch the ones never
     * started. Repeated: the window is short. */
    for (int round = 0; round < 50; round++) {
        config(4);
        glue_server_t *srv = NULL;
        char err[256];
        assert_int_equal(glue_server_new(&srv, &cfg, err, sizeof(err)), AM_OK);
        glue_server_fail_start_at(1 + round % 3);
        assert_int_equal(glue_server_start(srv, NULL), AM_EIO);
        glue_server_fail_start_at(-1);
        glue_server_stop(srv);
        glue_server_stop(srv); /* twice is harmless */
        glue_server_free(srv);
    }
    /* a start that fails at its first thread: nothing runs */
    config(2);
    glue_server_t *srv = NULL;
    char err[256];
    assert_int_equal(glue_server_new(&srv, &cfg, err, sizeof(err)), AM_OK);
    glue_server_fail_start_at(0);
    assert_int_equal(glue_server_start(srv, NULL), AM_EIO);
    glue_server_fail_start_at(-1);
    glue_server_stop(srv);
    glue_server_free(srv);
    /* stop and free of a server that was never started */
    assert_int_equal(glue_server_new(&srv, &cfg, err, sizeof(err)), AM_OK);
    glue_server_stop(srv);
    glue_server_free(srv);
    glue_server_stop(NULL);
}

int main(void)
{
    json_set_alloc_funcs(am_xmalloc, free);
    am_log_set_level(AM_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routes_over_http),
        cmocka_unit_test(every_protected_route_needs_a_key),
        cmocka_unit_test(start_failing_part_way_stops_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
