/* storage/pgconn.c - one libpq connection with reconnect backoff; error
 * classes; PostgreSQL array literals. See store_internal.h. */
#include "store_internal.h"

#include <string.h>

enum { BACKOFF_MIN_US = 100000, BACKOFF_MAX_US = 2000000 };

void store_pg_errcopy(char *err, size_t errlen, const char *msg)
{
    if (err == NULL || errlen == 0)
        return;
    if (msg == NULL || *msg == '\0')
        msg = "unknown database error";
    size_t n = strcspn(msg, "\n");
    if (n >= errlen)
        n = errlen - 1;
    memcpy(err, msg, n);
    err[n] = '\0';
}

/* Server notices ("relation already exists, skipping") are not errors and
 * would otherwise be printed on stderr, outside the JSON log. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *store_pgconn_open(const char *conninfo, char *err, size_t errlen)
{
    /* dbname is expanded as a full connection string or URL; its values
     * override the defaults listed before it. */
    const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
    const char *const vals[] = {"5", "alertmapd", conninfo, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL) {
        am_oom(0); /* libpq returns NULL only when it cannot allocate */
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        store_pg_errcopy(err, errlen, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, ignore_notice, NULL);
    return c;
}

void store_pgconn_init(pgconn_t *pc, const char *conninfo)
{
    memset(pc, 0, sizeof(*pc));
    pc->conninfo = conninfo;
    pc->backoff_us = BACKOFF_MIN_US;
}

void store_pgconn_close(pgconn_t *pc)
{
    if (pc->conn != NULL) {
        PQfinish(pc->conn);
        pc->conn = NULL;
    }
}

int64_t store_pgconn_wait_us(const pgconn_t *pc)
{
    if (pc->conn != NULL)
        return 0;
    int64_t d = pc->next_attempt_us - am_now_us();
    return d > 0 ? d : 0;
}

/* store_set_statement_timeout(); read by every connecting thread */
static _Atomic int statement_timeout_ms;

void store_set_statement_timeout(int ms)
{
    atomic_store(&statement_timeout_ms, ms > 0 ? ms : 0);
}

/* The session's statement_timeout, before anything else runs on c. */
static int set_statement_timeout(PGconn *c)
{
    int ms = atomic_load(&statement_timeout_ms);
    if (ms <= 0)
        return 0;
    char sql[64];
    snprintf(sql, sizeof(sql), "SET statement_timeout = %d", ms);
    return store_pg_exec_simple(c, sql, NULL, NULL, 0);
}

int store_pgconn_ensure(pgconn_t *pc, bool force, char *err, size_t errlen)
{
    if (pc->conn != NULL && PQstatus(pc->conn) == CONNECTION_OK)
        return 0;
    store_pgconn_close(pc);
    if (!force && store_pgconn_wait_us(pc) > 0) {
        store_pg_errcopy(err, errlen, "database unavailable (waiting to reconnect)");
        return AM_EUNAVAIL;
    }
    char e[256];
    PGconn *c = store_pgconn_open(pc->conninfo, e, sizeof(e));
    if (c != NULL && (set_statement_timeout(c) != 0 ||
                      (pc->on_connect != NULL && pc->on_connect(c, pc->on_connect_ctx) != 0))) {
        store_pg_errcopy(e, sizeof(e), PQerrorMessage(c));
        PQfinish(c);
        c = NULL;
    }
    if (c == NULL) {
        store_pg_errcopy(err, errlen, e);
        pc->next_attempt_us = am_now_us() + pc->backoff_us;
        pc->backoff_us *= 2;
        if (pc->backoff_us > BACKOFF_MAX_US)
            pc->backoff_us = BACKOFF_MAX_US;
        return AM_EUNAVAIL;
    }
    pc->conn = c;
    pc->backoff_us = BACKOFF_MIN_US;
    pc->next_attempt_us = 0;
    if (pc->reconnects != NULL)
        atomic_fetch_add(pc->reconnects, 1);
    return 0;
}

pgerr_class_t store_pgerr_classify(PGconn *c, const PGresult *res)
{
    if (c == NULL || PQstatus(c) != CONNECTION_OK || res == NULL)
        return PGERR_CONNECTION;
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state == NULL || strlen(state) != 5)
        return PGERR_CONNECTION; /* an error libpq made up: the link failed */
    /* 08 connection exception; 57P01-57P05: the server is terminating this
     * session (shutdown, crash, pg_terminate_backend, idle timeouts); the
     * link may still look open when the message arrives in a pipeline */
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0)
        return PGERR_CONNECTION;
    /* 40 transaction rollback (deadlock, serialization), 53 insufficient
     * resources, 55P03 lock not available, 57 operator intervention
     * (shutdown, cancel), 58 system error, XX internal error */
    if (strncmp(state, "40", 2) == 0 || strncmp(state, "53", 2) == 0 ||
        strcmp(state, "55P03") == 0 || strncmp(state, "57", 2) == 0 ||
        strncmp(state, "58", 2) == 0 || strncmp(state, "XX", 2) == 0)
        return PGERR_TRANSIENT;
    return PGERR_DATA;
}

int store_pg_exec_simple(PGconn *c, const char *sql, pgerr_class_t *cls, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        if (cls != NULL)
            *cls = store_pgerr_classify(c, r);
        store_pg_errcopy(err, errlen, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
        rc = -1;
    }
    PQclear(r);
    return rc;
}

void store_pg_text_array(am_buf_t *b, const char *const *v, size_t n)
{
    am_buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            am_buf_putc(b, ',');
        if (v[i] == NULL) {
            am_buf_puts(b, "NULL");
            continue;
        }
        /* the worst case (every byte escaped) reserved, then written in place */
        size_t len = strlen(v[i]);
        char *o = am_buf_reserve(b, 2 * len + 2);
        if (o == NULL)
            return;
        *o++ = '"';
        for (const char *p = v[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                *o++ = '\\';
            *o++ = *p;
        }
        *o++ = '"';
        *o = '\0';
        b->len = (size_t)(o - b->data);
    }
    am_buf_putc(b, '}');
}

bool store_pgerr_retryable(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state != NULL && strncmp(state, "40", 2) == 0;
}
