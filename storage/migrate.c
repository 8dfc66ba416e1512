/* storage/migrate.c - store_migrate(): applies schemas/sql/NNN_name.sql.
 *
 * All pending files run in ONE transaction that first takes a transaction
 * advisory lock, so alertmapd processes starting together apply each
 * migration exactly once: the second waits for the first to commit, then
 * finds the versions recorded and has nothing to do. A failing file rolls
 * everything back and is reported as "file:line:col: message". */
#include "store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The advisory lock key of migrations: "alertmap" in ASCII. */
#define MIGRATE_LOCK_KEY "7020110958484791664"

enum { MAX_MIGRATIONS = 1000, MAX_SQL_BYTES = 16 * 1024 * 1024 };

typedef struct migration {
    long version;
    char *file; /* file name inside the directory */
} migration_t;

static int cmp_migration(const void *a, const void *b)
{
    const migration_t *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* "001_init.sql" -> version 1; false when the name does not fit the pattern. */
static bool parse_name(const char *name, long *version)
{
    size_t n = strlen(name), d = 0;
    while (name[d] >= '0' && name[d] <= '9')
        d++;
    if (d == 0 || d > 9 || name[d] != '_' || n < d + 6 || strcmp(name + n - 4, ".sql") != 0)
        return false;
    long v = 0;
    for (size_t i = 0; i < d; i++)
        v = v * 10 + (name[i] - '0');
    *version = v;
    return true;
}

static void free_list(migration_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(m[i].file);
    free(m);
}

static int list_dir(const char *dir, migration_t **out, size_t *count, char *err, size_t errlen)
{
    *out = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return AM_EIO;
    }
    migration_t *m = am_xcalloc(MAX_MIGRATIONS, sizeof(*m));
    size_t n = 0;
    int rc = AM_OK;
    struct dirent *e;
    while (rc == AM_OK && (e = readdir(d)) != NULL) {
        long v;
        if (!parse_name(e->d_name, &v))
            continue;
        if (n == MAX_MIGRATIONS) {
            snprintf(err, errlen, "%s: more than %d migrations", dir, MAX_MIGRATIONS);
            rc = AM_ELIMIT;
            break;
        }
        m[n].version = v;
        m[n++].file = am_xstrdup(e->d_name);
    }
    closedir(d);
    if (rc == AM_OK) {
        qsort(m, n, sizeof(*m), cmp_migration);
        for (size_t i = 1; i < n; i++) {
            if (m[i].version == m[i - 1].version) {
                snprintf(err, errlen, "%s: %s and %s have the same version", dir, m[i - 1].file,
                         m[i].file);
                rc = AM_EINVAL;
                break;
            }
        }
    }
    if (rc != AM_OK) {
        free_list(m, n);
        return rc;
    }
    *out = m;
    *count = n;
    return AM_OK;
}

/* Line and column (1-based) of the 1-based character position pos in sql. */
static void position_of(const char *sql, long pos, int *line, int *col)
{
    *line = 1;
    *col = 1;
    long chars = 1;
    for (const char *p = sql; *p && chars < pos; p++) {
        if (((unsigned char)*p & 0xC0) == 0x80)
            continue; /* UTF-8 continuation byte: same character */
        chars++;
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static int apply_one(PGconn *c, const char *dir, const migration_t *m, char *err, size_t errlen)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, m->file) >= sizeof(path)) {
        snprintf(err, errlen, "%s: path too long", m->file);
        return AM_ELIMIT;
    }
    char *sql;
    size_t len;
    int rc = am_read_file(&sql, &len, path, MAX_SQL_BYTES);
    if (rc != AM_OK) {
        snprintf(err, errlen, "%s: %s", path, rc == AM_ELIMIT ? "file too large" : strerror(errno));
        return rc;
    }
    if (strlen(sql) != len) {
        snprintf(err, errlen, "%s: contains a NUL byte", path);
        free(sql);
        return AM_EINVAL;
    }
    PGresult *r = PQexec(c, sql);
    if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
        char msg[400];
        store_pg_errcopy(msg, sizeof(msg),
                         r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL);
        if (r == NULL || PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) == NULL)
            store_pg_errcopy(msg, sizeof(msg), PQerrorMessage(c));
        const char *pos = r ? PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION) : NULL;
        int line = 0, col = 0;
        if (pos != NULL)
            position_of(sql, strtol(pos, NULL, 10), &line, &col);
        snprintf(err, errlen, "%s:%d:%d: %s", path, line, col, msg);
        rc = store_pgerr_classify(c, r) == PGERR_CONNECTION ? AM_EUNAVAIL : AM_EINVAL;
        PQclear(r);
        free(sql);
        return rc;
    }
    PQclear(r);
    free(sql);

    char version[24];
    snprintf(version, sizeof(version), "%ld", m->version);
    const char *name = m->file + strspn(m->file, "0123456789") + 1;
    char nm[256];
    snprintf(nm, sizeof(nm), "%.*s", (int)(strlen(name) - 4), name);
    const char *params[] = {version, nm};
    r = PQexecParams(c, "INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)", 2,
                     NULL, params, NULL, NULL, 0);
    if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
        char msg[400];
        store_pg_errcopy(msg, sizeof(msg), r ? PQresultErrorMessage(r) : PQerrorMessage(c));
        snprintf(err, errlen, "%s: recording the version: %s", path, msg);
        rc = store_pgerr_classify(c, r) == PGERR_CONNECTION ? AM_EUNAVAIL : AM_EINVAL;
    }
    PQclear(r);
    return rc;
}

static bool applied(const PGresult *r, long version)
{
    for (int i = 0; i < PQntuples(r); i++)
        if (strtol(PQgetvalue(r, i, 0), NULL, 10) == version)
            return true;
    return false;
}

int store_migrate(const char *conninfo, const char *sql_dir, char *err, size_t errlen)
{
    char dummy[8];
    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    migration_t *m;
    size_t n;
    int rc = list_dir(sql_dir, &m, &n, err, errlen);
    if (rc != AM_OK)
        return AM_EINVAL;
    PGconn *c = store_pgconn_open(conninfo, err, errlen);
    if (c == NULL) {
        free_list(m, n);
        return AM_EUNAVAIL;
    }
    PGresult *versions = NULL;
    pgerr_class_t cls = PGERR_DATA;
    char e[400];
    if (store_pg_exec_simple(c, "BEGIN", &cls, e, sizeof(e)) != 0 ||
        store_pg_exec_simple(c, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")", &cls, e,
                             sizeof(e)) != 0 ||
        store_pg_exec_simple(c,
                             "CREATE TABLE IF NOT EXISTS schema_migrations ("
                             " version integer PRIMARY KEY,"
                             " name text NOT NULL,"
                             " applied_at timestamptz NOT NULL DEFAULT now())",
                             &cls, e, sizeof(e)) != 0) {
        snprintf(err, errlen, "schema_migrations: %s", e);
        rc = cls == PGERR_DATA ? AM_EINVAL : AM_EUNAVAIL;
        goto done;
    }
    versions = PQexec(c, "SELECT version FROM schema_migrations");
    if (versions == NULL || PQresultStatus(versions) != PGRES_TUPLES_OK) {
        store_pg_errcopy(err, errlen,
                         versions ? PQresultErrorMessage(versions) : PQerrorMessage(c));
        rc = AM_EUNAVAIL;
        goto done;
    }
    for (size_t i = 0; i < n && rc == AM_OK; i++)
        if (!applied(versions, m[i].version))
            rc = apply_one(c, sql_dir, &m[i], err, errlen);
    if (rc == AM_OK && store_pg_exec_simple(c, "COMMIT", &cls, e, sizeof(e)) != 0) {
        snprintf(err, errlen, "commit: %s", e);
        rc = cls == PGERR_DATA ? AM_EINVAL : AM_EUNAVAIL;
    }
done:
    if (rc != AM_OK && PQstatus(c) == CONNECTION_OK)
        store_pg_exec_simple(c, "ROLLBACK", NULL, NULL, 0);
    PQclear(versions);
    PQfinish(c);
    free_list(m, n);
    return rc;
}
