/* tests/storage/helpers.c - see helpers.h. */
#include "helpers.h"

#include <pthread.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char g_admin[1024];
static char g_conninfo[1024];
static char g_dbname[128];

static char sql_dir[1024];

static void sql_dir_init(void)
{
    const char *root = getenv("ALERTMAP_SOURCE_ROOT");
    snprintf(sql_dir, sizeof(sql_dir), "%s/schemas/sql", root ? root : ".");
}

/* Built once: tests call this from several threads at a time. */
const char *th_sql_dir(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sql_dir_init);
    return sql_dir;
}

static void quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

AM_PRINTF(1, 2) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

const char *th_db_create(const char *tag)
{
    const char *host = getenv("ALERTMAP_TEST_PGHOST");
    if (host == NULL || host[0] == '\0')
        die("ALERTMAP_TEST_PGHOST is not set: point it at the socket directory of a running "
            "PostgreSQL where user alertmap is a superuser (e.g. scripts/pg start /tmp/pg && "
            "export ALERTMAP_TEST_PGHOST=/tmp/pg/socket)");
    snprintf(g_admin, sizeof(g_admin), "host=%s user=alertmap dbname=postgres", host);
    snprintf(g_dbname, sizeof(g_dbname), "alertmap_store_%ld_%s", (long)getpid(), tag);
    snprintf(g_conninfo, sizeof(g_conninfo), "host=%s user=alertmap dbname=%s", host, g_dbname);
    PGconn *c = PQconnectdb(g_admin);
    if (PQstatus(c) != CONNECTION_OK)
        die("cannot connect to PostgreSQL at %s: %s", host, PQerrorMessage(c));
    PQsetNoticeProcessor(c, quiet, NULL);
    char sql[512];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", g_dbname);
    PQclear(PQexec(c, sql));
    snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", g_dbname);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        die("cannot create database %s: %s", g_dbname, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    char err[512];
    int rc = store_migrate(g_conninfo, th_sql_dir(), err, sizeof(err));
    if (rc != 0) {
        th_db_drop();
        die("migration failed (%d): %s", rc, err);
    }
    return g_conninfo;
}

void th_db_drop(void)
{
    if (g_dbname[0] == '\0')
        return;
    PGconn *c = PQconnectdb(g_admin);
    PQsetNoticeProcessor(c, quiet, NULL);
    char sql[512];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", g_dbname);
    PQclear(PQexec(c, sql));
    PQfinish(c);
    g_dbname[0] = '\0';
}

PGconn *th_connect(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect %s: %s", conninfo, PQerrorMessage(c));
    PQsetNoticeProcessor(c, quiet, NULL);
    return c;
}

static PGresult *run(PGconn *c, const char *sql, int n, va_list ap)
{
    const char *p[16];
    assert_true(n <= 16);
    for (int i = 0; i < n; i++)
        p[i] = va_arg(ap, const char *);
    PGresult *r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    return r;
}

int64_t th_int(PGconn *c, const char *sql, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    PGresult *r = run(c, sql, n, ap);
    va_end(ap);
    int64_t v = 0;
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

char *th_str(PGconn *c, const char *sql, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    PGresult *r = run(c, sql, n, ap);
    va_end(ap);
    char *v = NULL;
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

void th_ingest_init(th_ingest_t *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
}

void th_ingest_dispose(th_ingest_t *w)
{
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cond);
}

void th_ingest_cb(const store_ingest_result_t *res, void *ctx)
{
    th_ingest_t *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->status = res->status;
    snprintf(w->message, sizeof(w->message), "%s", res->message ? res->message : "");
    w->nalerts = res->nalerts;
    for (size_t i = 0; i < res->nalerts && i < 64; i++)
        w->out[i] = res->alerts[i];
    w->done = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

void th_ingest_wait(th_ingest_t *w)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    while (!w->done && rc == 0)
        rc = pthread_cond_timedwait(&w->cond, &w->mu, &ts);
    bool done = w->done;
    pthread_mutex_unlock(&w->mu);
    if (!done)
        fail_msg("ingest callback not called within 30 s");
}

store_status_t th_ingest_sync(store_t *s, const store_alert_t *a, size_t n, th_ingest_t *w)
{
    th_ingest_init(w);
    assert_int_equal(store_ingest(s, a, n, th_ingest_cb, w), 0);
    th_ingest_wait(w);
    return w->status;
}

typedef struct qwait {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
    th_reply_t *out;
} qwait_t;

static void query_cb(const store_reply_t *reply, void *ctx)
{
    qwait_t *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->out->status = reply->http_status;
    w->out->body = strdup(reply->body);
    w->done = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

void th_query(store_t *s, const store_query_t *q, th_reply_t *out)
{
    qwait_t w = {.out = out};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cond, NULL);
    out->status = 0;
    out->body = NULL;
    assert_int_equal(store_query(s, q, query_cb, &w), 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    pthread_mutex_lock(&w.mu);
    int rc = 0;
    while (!w.done && rc == 0)
        rc = pthread_cond_timedwait(&w.cond, &w.mu, &ts);
    bool done = w.done;
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cond);
    if (!done)
        fail_msg("query callback not called within 30 s");
}

void th_reply_dispose(th_reply_t *r)
{
    free(r->body);
    r->body = NULL;
}

store_alert_t th_sample_alert(const char *title, const char *fingerprint)
{
    static const char *const tags[] = {"t1", "quote\"and\\back"};
    static const store_indicator_t ind[] = {
        {"ip", "203.0.113.9", "src_ip"},
        {"domain", "evil.example.com", "description"},
    };
    store_alert_t a = {
        .source_name = "sentinel",
        .title = title,
        .severity = "High",
        .occurred_at_us = 1714557600123456,
        .occurred_at_fallback = false,
        .description = "Suspicious sign-in",
        .detection_rule_ref = "rule-42",
        .tags = tags,
        .ntags = 2,
        .fingerprint = fingerprint,
        .raw_payload = "{\"b\": [1, 2.5, \"x\"], \"a\": {\"nested\": true}, \"n\": null}",
        .fields_json = "{\"src_ip\":\"203.0.113.9\"}",
        .indicators = ind,
        .nindicators = 2,
    };
    return a;
}

void th_pg(const char *cmd, const char *dir)
{
    const char *root = getenv("ALERTMAP_SOURCE_ROOT");
    char line[2048];
    snprintf(line, sizeof(line), "'%s/scripts/pg' %s '%s' >/dev/null", root ? root : ".", cmd, dir);
    int rc = system(line);
    if (rc != 0)
        fail_msg("scripts/pg %s %s failed (%d)", cmd, dir, rc);
}

bool th_wait_until(bool (*cond)(void *ctx), void *ctx, int timeout_ms)
{
    struct timespec now, end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += timeout_ms / 1000;
    end.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (end.tv_nsec >= 1000000000L) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000L;
    }
    for (;;) {
        if (cond(ctx))
            return true;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec))
            return cond(ctx);
        /* the interval between two checks, not an ordering delay */
        struct timespec step = {0, 10000000L};
        nanosleep(&step, NULL);
    }
}
