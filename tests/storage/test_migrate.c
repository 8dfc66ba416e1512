/* tests/storage/test_migrate.c - store_migrate(): idempotent, safe when run
 * concurrently, atomic on a failing file with file:line:col errors. */
#include "helpers.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *g_ci;

static int64_t count_files(void)
{
    DIR *d = opendir(th_sql_dir());
    assert_non_null(d);
    int64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && l > 4 &&
            strcmp(e->d_name + l - 4, ".sql") == 0)
            n++;
    }
    closedir(d);
    return n;
}

static void reset_schema(void)
{
    PGconn *c = th_connect(g_ci);
    th_int(c, "DROP SCHEMA public CASCADE", 0);
    th_int(c, "CREATE SCHEMA public", 0);
    PQfinish(c);
}

static void test_migrate_twice(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(store_migrate(g_ci, th_sql_dir(), err, sizeof(err)), 0);
    assert_int_equal(store_migrate(g_ci, th_sql_dir(), err, sizeof(err)), 0);
    PGconn *c = th_connect(g_ci);
    assert_true(count_files() >= 1);
    assert_int_equal(th_int(c, "SELECT count(*) FROM schema_migrations", 0), count_files());
    assert_int_equal(th_int(c, "SELECT count(DISTINCT version) FROM schema_migrations", 0),
                     count_files());
    char *name = th_str(c, "SELECT name FROM schema_migrations WHERE version = 1", 0);
    assert_string_equal(name, "init");
    free(name);
    /* the tables the store needs exist */
    assert_int_equal(th_int(c,
                            "SELECT count(*) FROM information_schema.tables WHERE table_name IN"
                            " ('alerts','indicators','alert_indicators','enrichment_jobs')",
                            0),
                     4);
    PQfinish(c);
}

typedef struct mig_arg {
    int rc;
    char err[512];
} mig_arg_t;

static void *mig_thread(void *p)
{
    mig_arg_t *a = p;
    a->rc = store_migrate(g_ci, th_sql_dir(), a->err, sizeof(a->err));
    return NULL;
}

static void test_migrate_concurrent(void **state)
{
    (void)state;
    reset_schema();
    enum { N = 4 };
    pthread_t t[N];
    mig_arg_t a[N];
    memset(a, 0, sizeof(a));
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&t[i], NULL, mig_thread, &a[i]), 0);
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        if (a[i].rc != 0)
            fail_msg("concurrent migrate %d failed: %s", i, a[i].err);
    }
    PGconn *c = th_connect(g_ci);
    assert_int_equal(th_int(c, "SELECT count(*) FROM schema_migrations", 0), count_files());
    assert_int_equal(th_int(c,
                            "SELECT count(*) FROM pg_trigger WHERE tgname ="
                            " 'enrichment_jobs_notify'",
                            0),
                     1);
    PQfinish(c);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_migrate_failing_file(void **state)
{
    (void)state;
    reset_schema();
    char dir[] = "/tmp/alertmap-mig-XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_file(dir, "001_ok.sql", "CREATE TABLE first_table (id int);\n");
    write_file(dir, "002_bad.sql", "CREATE TABLE second_table (\n  id int,\n  oops oops\n);\n");
    write_file(dir, "README", "not a migration\n");
    char err[512];
    assert_int_equal(store_migrate(g_ci, dir, err, sizeof(err)), AM_EINVAL);
    char want[1100];
    snprintf(want, sizeof(want), "%s/002_bad.sql:3:8: ", dir);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("error \"%s\" does not start with \"%s\"", err, want);
    assert_non_null(strstr(err, "type \"oops\" does not exist"));
    /* nothing applied: not even the good first file */
    PGconn *c = th_connect(g_ci);
    assert_int_equal(th_int(c,
                            "SELECT count(*) FROM information_schema.tables WHERE table_name"
                            " IN ('first_table', 'schema_migrations')",
                            0),
                     0);
    PQfinish(c);
    /* two files with one version */
    write_file(dir, "002_bad.sql", "SELECT 1;\n");
    write_file(dir, "2_again.sql", "SELECT 1;\n");
    assert_int_equal(store_migrate(g_ci, dir, err, sizeof(err)), AM_EINVAL);
    assert_non_null(strstr(err, "same version"));
    char cmd[1100];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    /* the real migrations still apply afterwards */
    assert_int_equal(store_migrate(g_ci, th_sql_dir(), err, sizeof(err)), 0);
}

static void test_migrate_errors(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(store_migrate(g_ci, "/nonexistent/sql", err, sizeof(err)), AM_EINVAL);
    assert_non_null(strstr(err, "/nonexistent/sql"));
    assert_int_equal(store_migrate("host=/nonexistent-socket-dir user=alertmap dbname=x",
                                   th_sql_dir(), err, sizeof(err)),
                     AM_EUNAVAIL);
    assert_true(strlen(err) > 0);
}

int main(void)
{
    g_ci = th_db_create("migrate");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_twice),
        cmocka_unit_test(test_migrate_concurrent),
        cmocka_unit_test(test_migrate_failing_file),
        cmocka_unit_test(test_migrate_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    th_db_drop();
    return rc;
}
