/* tests/h2o-glue/test_config.c - alertmapd options: environment, flags,
 * defaults and every invalid value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "glue.h"

static const char *const env_names[] = {"ALERTMAP_LISTEN",          "DATABASE_URL",
                                        "ALERTMAP_MAPPINGS",        "ALERTMAP_THREADS",
                                        "ALERTMAP_MAX_BODY",        "ALERTMAP_DEDUP_WINDOW",
                                        "ALERTMAP_SQL_DIR",         "ALERTMAP_DB_WAIT",
                                        "ALERTMAP_LOG_LEVEL",       "ALERTMAP_RATE_PER_KEY",
                                        "ALERTMAP_RATE_PER_SOURCE", "ALERTMAP_UNSIGNED_SOURCES",
                                        "ALERTMAP_METRICS_ACCESS",  "ALERTMAP_TLS_CERT",
                                        "ALERTMAP_TLS_KEY",         "ALERTMAP_ALLOW_PLAIN_HTTP",
                                        "ALERTMAP_MAX_CONNECTIONS", "ALERTMAP_REQUEST_DEADLINE",
                                        "ALERTMAP_CLIENT_TIMEOUT"};

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < AM_ARRAY_LEN(env_names); i++)
        unsetenv(env_names[i]);
    return 0;
}

/* Parses argv (NULL-terminated list after the program name). */
static int parse(glue_config_t *cfg, glue_action_t *act, char *err, size_t errlen, ...)
{
    char *argv[32] = {"alertmapd"};
    int argc = 1;
    va_list ap;
    va_start(ap, errlen);
    char *a;
    while ((a = va_arg(ap, char *)) != NULL && argc < 31)
        argv[argc++] = a;
    va_end(ap);
    return glue_config_parse(cfg, act, argc, argv, err, errlen);
}

static void defaults(void **state)
{
    (void)state;
    glue_config_t cfg;
    glue_action_t act;
    char err[256];
    setenv("DATABASE_URL", "postgresql:///x", 1);
    assert_int_equal(parse(&cfg, &act, err, sizeof(err), NULL), AM_OK);
    assert_int_equal(act, GLUE_ACT_RUN);
    assert_string_equal(cfg.listen, "127.0.0.1:8080");
    assert_string_equal(cfg.host, "127.0.0.1");
    assert_string_equal(cfg.port, "8080");
    assert_string_equal(cfg.database_url, "postgresql:///x");
    /* this test runs from the build tree: the defaults are the source tree's */
    const char *root = getenv("ALERTMAP_SOURCE_ROOT");
    assert_non_null(root);
    char want[4096];
    snprintf(want, sizeof(want), "%s/mappings", root);
    assert_string_equal(cfg.mappings, want);
    snprintf(want, sizeof(want), "%s/schemas/sql", root);
    assert_string_equal(cfg.sql_dir, want);
    assert_true(cfg.threads >= 1);
    assert_int_equal(cfg.max_body, 5 * 1024 * 1024);
    assert_int_equal(cfg.dedup_window_s, 86400);
    assert_int_equal(cfg.writer_linger_us, 500);
    assert_int_equal(cfg.db_wait_s, 30);
    assert_int_equal(cfg.log_level, AM_LOG_INFO);
    assert_true(cfg.rate_per_key == 100.0 && cfg.burst_per_key == 1000.0);
    assert_true(cfg.rate_per_source == 500.0 && cfg.burst_per_source == 5000.0);
    assert_int_equal(cfg.metrics_access, GLUE_METRICS_LOOPBACK);
    assert_null(cfg.unsigned_sources);
    assert_null(cfg.tls_cert);
    assert_null(cfg.tls_key);
    assert_false(cfg.allow_plain_http);
    assert_int_equal(cfg.max_connections, 4096);
    assert_int_equal(cfg.deadline_s, 5);
    assert_int_equal(cfg.client_timeout_s, 10);
}

/* The options of authentication and rate limits: environment, flags win,
 * bad values named. */
static void auth_options(void **state)
{
    (void)state;
    glue_config_t cfg;
    glue_action_t act;
    char err[256];
    setenv("DATABASE_URL", "postgresql:///x", 1);
    setenv("ALERTMAP_RATE_PER_KEY", "5:7", 1);
    setenv("ALERTMAP_UNSIGNED_SOURCES", "generic,splunk", 1);
    setenv("ALERTMAP_METRICS_ACCESS", "key", 1);
    assert_int_equal(parse(&cfg, &act, err, sizeof(err), "--rate-per-source", "off", NULL), AM_OK);
    assert_true(cfg.rate_per_key == 5.0 && cfg.burst_per_key == 7.0);
    assert_true(cfg.rate_per_source == 0.0);
    assert_string_equal(cfg.unsigned_sources, "generic,splunk");
    assert_int_equal(cfg.metrics_access, GLUE_METRICS_KEY);
    assert_int_equal(parse(&cfg, &act, err, sizeof(err), "--rate-per-key=2", "--metrics-access",
                           "public", "--unsigned-sources", "", NULL),
                     AM_OK);
    assert_true(cfg.rate_per_key == 2.0 && cfg.burst_per_key == 20.0);
    assert_int_equal(cfg.metrics_access, GLUE_METRICS_PUBLIC);
    assert_null(cfg.unsigned_sources);
    assert_int_equal(parse(&cfg, &act, err, sizeof(err), "--rate-per-key", "fast", NULL),
                     AM_EINVAL);
    assert_non_null(strstr(err, "--rate-per-key 'fast'"));
    assert_int_equal(parse(&cfg, &act, err, sizeof(err), "--metrics-access", "open", NULL),
                     AM_EINVAL);
    assert_non_null(strstr(err, "loopback, public or key"));
    /* the list helper the policy uses */
    assert_true(glue_auth_list_has("generic, splunk ,x", "splunk"));
    assert_true(glue_auth_list_has("generic", "generic"));
    assert_false(glue_auth_list_has("generic2,xgeneric", "generic"));
    assert_false(glue_auth_list_has(",,", ""));
    assert_false(glue_auth_list_has(NULL, "generic"));
}

/* TLS, plain HTTP, connection and time limits: flags, variables, the
 * switch without a value, and the pair rule of --tls-cert/--tls-key. */
static void security_options(void **state)
{
    (void)state;
    glue_config_t cfg;
    glue_action_t act;
    char err[256];
    assert_int_equal(parse(&cfg, &act, err, sizeof(err), "--database-url", "x", "--tls-cert",
                           "/c.pem", "--tls-key=/k.pem", "--allow-plain-http", "--max-connections",
                           "100", "--request-deadline", "2m", "--client-timeout", "30s", NULL),
                     AM_OK);
    assert_string_equal(cfg.tls_cert, "/c.pem");
    assert_string_equal(cfg.tls_key, "/k.pem");
    assert_true(cfg.allow_plain_http);
    assert_int_equal(cfg.max_connections, 100);
    assert_int_equal(cfg.deadline_s, 120);
    assert_int_equal(cfg.client_timeout_s, 30);

    setenv("ALERTMAP_TLS_CERT", "/env.crt", 1);
    setenv("ALERTMAP_TLS_KEY", "/env.key", 1);
    setenv("ALERTMAP_ALLOW_PLAIN_HTTP", "yes", 1);
    setenv("ALERTMAP_MAX_CONNECTIONS", "7", 1);
    setenv("ALERTMAP_REQUEST_DEADLINE", "3", 1);
    assert_int_equal(
        parse(&cfg, &act, err, sizeof(err), "--database-url", "x", "--allow-plain-http=0", NULL),
        AM_OK);
    assert_string_equal(cfg.tls_cert, "/env.crt");
    assert_string_equal(cfg.tls_key, "/env.key");
    assert_false(cfg.allow_plain_http); /* the flag wins */
    assert_int_equal(cfg.max_connections, 7);
    assert_int_equal(cfg.deadline_s, 3);

    setenv("ALERTMAP_ALLOW_PLAIN_HTTP", "maybe", 1);
    assert_int_equal(parse(&cfg, &act, err, sizeof(err), "--database-url", "x", NULL), AM_EINVAL);
    assert_non_null(strstr(err, "ALERTMAP_ALLOW_PLAIN_HTTP"));
    unsetenv("ALERTMAP_ALLOW_PLAIN_HTTP");

    unsetenv("ALERTMAP_TLS_KEY");
    assert_int_equal(parse(&cfg, &act, err, sizeof(err), "--database-url", "x", NULL), AM_EINVAL);
    assert_non_null(strstr(err, "--tls-cert needs --tls-key"));
    unsetenv("ALERTMAP_TLS_CERT");
    assert_int_equal(
        parse(&cfg, &act, err, sizeof(err), "--database-url", "x", "--tls-key", "/k", NULL),
        AM_EINVAL);
    assert_non_null(strstr(err, "--tls-key needs --tls-cert"));
}

static void env_then_flags_win(void **state)
{
    (void)state;
    glue_config_t cfg;
    glue_action_t act;
    char err[256];
    setenv("DATABASE_URL", "postgresql:///env", 1);
    setenv("ALERTMAP_LISTEN", "0.0.0.0:9000", 1);
    setenv("ALERTMAP_THREADS", "3", 1);
    setenv("ALERTMAP_MAX_BODY", "512k", 1);
    setenv("ALERTMAP_DEDUP_WINDOW", "30m", 1);
    setenv("ALERTMAP_MAPPINGS", "/etc/alertmap/mappings", 1);
    setenv("ALERTMAP_SQL_DIR", "/usr/share/alertmap/sql", 1);
    setenv("ALERTMAP_LOG_LEVEL", "warn", 1);
    setenv("ALERTMAP_WRITER_LINGER", "750us", 1);
    assert_int_equal(parse(&cfg, &act, err, sizeof(err), NULL), AM_OK);
    assert_int_equal(cfg.writer_linger_us, 750);
    assert_string_equal(cfg.host, "0.0.0.0");
    assert_int_equal(cfg.threads, 3);
    assert_int_equal(cfg.max_body, 512 * 1024);
    assert_int_equal(cfg.dedup_window_s, 1800);
    assert_string_equal(cfg.mappings, "/etc/alertmap/mappings");
    assert_string_equal(cfg.sql_dir, "/usr/share/alertmap/sql");
    assert_int_equal(cfg.log_level, AM_LOG_WARN);

    assert_int_equal(parse(&cfg, &act, err, sizeof(err), "--listen", "[::1]:8443",
                           "--database-url=postgresql:///flag", "--threads", "1", "--max-body=2M",
                           "--dedup-window", "0", "--writer-linger", "0", "--mappings", "m",
                           "--sql-dir", "sql", "--db-wait", "5", "--log-level", "debug", NULL),
                     AM_OK);
    assert_string_equal(cfg.listen, "[::1]:8443");
    assert_string_equal(cfg.host, "::1");
    assert_string_equal(cfg.port, "8443");
    assert_string_equal(cfg.database_url, "postgresql:///flag");
    assert_int_equal(cfg.threads, 1);
    assert_int_equal(cfg.max_body, 2 * 1024 * 1024);
    assert_int_equal(cfg.dedup_window_s, 0);
    assert_int_equal(cfg.writer_linger_us, 0);
    assert_string_equal(cfg.mappings, "m");
    assert_string_equal(cfg.sql_dir, "sql");
    assert_int_equal(cfg.db_wait_s, 5);
    assert_int_equal(cfg.log_level, AM_LOG_DEBUG);
}

static void missing_database_url(void **state)
{
    (void)state;
    glue_config_t cfg;
    glue_action_t act;
    char err[256];
    assert_int_equal(parse(&cfg, &act, err, sizeof(err), NULL), AM_EINVAL);
    assert_non_null(strstr(err, "DATABASE_URL"));
    assert_non_null(strstr(err, "--database-url"));
}

static void help_and_version(void **state)
{
    (void)state;
    glue_config_t cfg;
    glue_action_t act;
    char err[256];
    /* no database needed to ask for help */
    assert_int_equal(parse(&cfg, &act, err, sizeof(err), "--help", NULL), AM_OK);
    assert_int_equal(act, GLUE_ACT_HELP);
    assert_int_equal(parse(&cfg, &act, err, sizeof(err), "--version", NULL), AM_OK);
    assert_int_equal(act, GLUE_ACT_VERSION);

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    glue_config_usage(f);
    fclose(f);
    static const char *const documented[] = {
        "--listen",   "ALERTMAP_LISTEN",   "--database-url", "DATABASE_URL",
        "--mappings", "ALERTMAP_MAPPINGS", "--threads",      "ALERTMAP_THREADS",
        "--max-body", "ALERTMAP_MAX_BODY", "--dedup-window", "ALERTMAP_DEDUP_WINDOW",
        "--sql-dir",  "ALERTMAP_SQL_DIR",  "--log-level",    "ALERTMAP_LOG_LEVEL",
        "--db-wait",  "ALERTMAP_DB_WAIT",  "SIGHUP",         "SIGTERM",
        "--version"};
    for (size_t i = 0; i < AM_ARRAY_LEN(documented); i++)
        assert_non_null(strstr(text, documented[i]));
    free(text);
}

static void invalid_values(void **state)
{
    (void)state;
    static const struct {
        const char *flag, *value, *expect;
    } bad[] = {
        {"--listen", "localhost", "--listen"},
        {"--listen", "1.2.3.4:70000", "--listen"},
        {"--listen", "::1:80", "--listen"},
        {"--listen", ":80", "--listen"},
        {"--listen", "[::1]80", "--listen"},
        {"--threads", "0", "--threads"},
        {"--threads", "257", "--threads"},
        {"--threads", "2x", "--threads"},
        {"--writer-linger", "101ms", "--writer-linger"},
        {"--writer-linger", "100001us", "--writer-linger"},
        {"--writer-linger", "2s", "--writer-linger"},
        {"--writer-linger", "-1", "--writer-linger"},
        {"--max-body", "0", "--max-body"},
        {"--max-body", "5G", "--max-body"},
        {"--max-body", "-1", "--max-body"},
        {"--max-body", "2048M", "--max-body"},
        {"--dedup-window", "1w", "--dedup-window"},
        {"--dedup-window", "h", "--dedup-window"},
        {"--dedup-window", "-5", "--dedup-window"},
        {"--log-level", "loud", "--log-level"},
        {"--db-wait", "forever", "--db-wait"},
        {"--database-url", "", "--database-url"},
        {"--max-connections", "0", "--max-connections"},
        {"--max-connections", "1000001", "--max-connections"},
        {"--request-deadline", "0", "--request-deadline"},
        {"--request-deadline", "2h", "--request-deadline"},
        {"--client-timeout", "fast", "--client-timeout"},
        {"--tls-cert", "", "--tls-cert"},
        {"--allow-plain-http=perhaps", NULL, "--allow-plain-http"},
    };
    for (size_t i = 0; i < AM_ARRAY_LEN(bad); i++) {
        glue_config_t cfg;
        glue_action_t act;
        char err[256];
        int rc = parse(&cfg, &act, err, sizeof(err), "--database-url", "x", bad[i].flag,
                       bad[i].value, NULL);
        if (rc != AM_EINVAL)
            fail_msg("%s %s accepted", bad[i].flag, bad[i].value ? bad[i].value : "");
        assert_non_null(strstr(err, bad[i].expect));
    }
}

static void invalid_env_names_the_variable(void **state)
{
    (void)state;
    glue_config_t cfg;
    glue_action_t act;
    char err[256];
    setenv("ALERTMAP_MAX_BODY", "lots", 1);
    assert_int_equal(parse(&cfg, &act, err, sizeof(err), "--database-url", "x", NULL), AM_EINVAL);
    assert_non_null(strstr(err, "ALERTMAP_MAX_BODY"));
    assert_non_null(strstr(err, "'lots'"));
}

static void unknown_option_and_missing_value(void **state)
{
    (void)state;
    glue_config_t cfg;
    glue_action_t act;
    char err[256];
    assert_int_equal(
        parse(&cfg, &act, err, sizeof(err), "--database-url", "x", "--port", "1", NULL), AM_EINVAL);
    assert_non_null(strstr(err, "unknown option '--port'"));
    assert_int_equal(parse(&cfg, &act, err, sizeof(err), "--database-url", "x", "--listen", NULL),
                     AM_EINVAL);
    assert_non_null(strstr(err, "--listen needs a value"));
    /* a prefix of a flag is not the flag */
    assert_int_equal(
        parse(&cfg, &act, err, sizeof(err), "--database-url", "x", "--listening=1", NULL),
        AM_EINVAL);
}

static void sizes(void **state)
{
    (void)state;
    size_t v;
    assert_int_equal(glue_parse_size(&v, "1"), AM_OK);
    assert_int_equal(v, 1);
    assert_int_equal(glue_parse_size(&v, "1048576"), AM_OK);
    assert_int_equal(v, 1048576);
    assert_int_equal(glue_parse_size(&v, "5M"), AM_OK);
    assert_int_equal(v, 5 * 1024 * 1024);
    assert_int_equal(glue_parse_size(&v, "5m"), AM_OK);
    assert_int_equal(v, 5 * 1024 * 1024);
    assert_int_equal(glue_parse_size(&v, "64k"), AM_OK);
    assert_int_equal(v, 64 * 1024);
    assert_int_equal(glue_parse_size(&v, "64KiB"), AM_OK);
    assert_int_equal(v, 64 * 1024);
    assert_int_equal(glue_parse_size(&v, "100B"), AM_OK);
    assert_int_equal(v, 100);
    assert_int_equal(glue_parse_size(&v, "1024M"), AM_OK);
    const char *bad[] = {"",
                         "M",
                         "0",
                         "0k",
                         "1.5M",
                         "5 M",
                         "5MB ",
                         "1025M",
                         "99999999999999999999",
                         "18446744073709551615k",
                         "+5",
                         "5x"};
    for (size_t i = 0; i < AM_ARRAY_LEN(bad); i++)
        if (glue_parse_size(&v, bad[i]) != AM_EINVAL)
            fail_msg("size '%s' accepted", bad[i]);
}

static void durations(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(glue_parse_duration(&v, "0"), AM_OK);
    assert_int_equal(v, 0);
    assert_int_equal(glue_parse_duration(&v, "90"), AM_OK);
    assert_int_equal(v, 90);
    assert_int_equal(glue_parse_duration(&v, "90s"), AM_OK);
    assert_int_equal(v, 90);
    assert_int_equal(glue_parse_duration(&v, "30m"), AM_OK);
    assert_int_equal(v, 1800);
    assert_int_equal(glue_parse_duration(&v, "24h"), AM_OK);
    assert_int_equal(v, 86400);
    assert_int_equal(glue_parse_duration(&v, "2d"), AM_OK);
    assert_int_equal(v, 172800);
    const char *bad[] = {"", "s", "1.5h", "24H", "1w", "10hh", "-1", "3651d", " 5"};
    for (size_t i = 0; i < AM_ARRAY_LEN(bad); i++)
        if (glue_parse_duration(&v, bad[i]) != AM_EINVAL)
            fail_msg("duration '%s' accepted", bad[i]);
}

static void listen_addresses(void **state)
{
    (void)state;
    char host[64], port[8];
    assert_int_equal(glue_parse_listen(host, sizeof(host), port, sizeof(port), "127.0.0.1:0"),
                     AM_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_string_equal(port, "0");
    assert_int_equal(glue_parse_listen(host, sizeof(host), port, sizeof(port), "[::1]:8080"),
                     AM_OK);
    assert_string_equal(host, "::1");
    assert_string_equal(port, "8080");
    assert_int_equal(glue_parse_listen(host, sizeof(host), port, sizeof(port), "localhost:80"),
                     AM_OK);
    assert_string_equal(host, "localhost");
    const char *bad[] = {
        "", "8080", "host:", "[::1]", "[::1]:", "::1:80", "a b:80", "h:65536", "h:8o"};
    for (size_t i = 0; i < AM_ARRAY_LEN(bad); i++)
        if (glue_parse_listen(host, sizeof(host), port, sizeof(port), bad[i]) != AM_EINVAL)
            fail_msg("listen '%s' accepted", bad[i]);
    /* a host that does not fit */
    char tiny[4];
    assert_int_equal(glue_parse_listen(tiny, sizeof(tiny), port, sizeof(port), "abcdef:1"),
                     AM_EINVAL);
}

static void log_levels(void **state)
{
    (void)state;
    am_log_level_t l;
    assert_int_equal(glue_parse_log_level(&l, "debug"), AM_OK);
    assert_int_equal(l, AM_LOG_DEBUG);
    assert_int_equal(glue_parse_log_level(&l, "INFO"), AM_OK);
    assert_int_equal(l, AM_LOG_INFO);
    assert_int_equal(glue_parse_log_level(&l, "warning"), AM_OK);
    assert_int_equal(l, AM_LOG_WARN);
    assert_int_equal(glue_parse_log_level(&l, "error"), AM_OK);
    assert_int_equal(l, AM_LOG_ERROR);
    assert_int_equal(glue_parse_log_level(&l, "trace"), AM_EINVAL);
    assert_int_equal(glue_parse_log_level(&l, ""), AM_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(defaults, clear_env),
        cmocka_unit_test_setup(auth_options, clear_env),
        cmocka_unit_test_setup(env_then_flags_win, clear_env),
        cmocka_unit_test_setup(security_options, clear_env),
        cmocka_unit_test_setup(missing_database_url, clear_env),
        cmocka_unit_test_setup(help_and_version, clear_env),
        cmocka_unit_test_setup(invalid_values, clear_env),
        cmocka_unit_test_setup(invalid_env_names_the_variable, clear_env),
        cmocka_unit_test_setup(unknown_option_and_missing_value, clear_env),
        cmocka_unit_test(sizes),
        cmocka_unit_test(durations),
        cmocka_unit_test(listen_addresses),
        cmocka_unit_test(log_levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
