/*
 * tests/storage/helpers.h - shared by the storage tests: a fresh database per
 * test executable on the cluster named by ALERTMAP_TEST_PGHOST, synchronous
 * wrappers around the asynchronous store calls, and SQL probes.
 *
 * Not thread-safe unless a function says so.
 */
#ifndef TESTS_STORAGE_HELPERS_H
#define TESTS_STORAGE_HELPERS_H

#include "store.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

/* Creates database alertmap_store_<pid>_<tag> on $ALERTMAP_TEST_PGHOST and
 * migrates it. Exits the process with a message when the variable is unset
 * or the cluster cannot be reached (the test fails, it never skips).
 * Returns the conninfo (static storage). */
const char *th_db_create(const char *tag);
/* Drops the database made by th_db_create (forcing connections closed). */
void th_db_drop(void);
/* The migrations directory of the source tree. */
const char *th_sql_dir(void);

/* A connection of the test itself (fails the test when it cannot connect). */
PGconn *th_connect(const char *conninfo);
/* Runs SQL with optional text parameters; returns the first column of the
 * first row as int64 (0 when no row). Fails the test on an SQL error. */
int64_t th_int(PGconn *c, const char *sql, int n, ...);
/* Same, returning a heap string (NULL when no row or NULL). */
char *th_str(PGconn *c, const char *sql, int n, ...);

/* ---- waiting for callbacks (thread-safe) -------------------------------- */

typedef struct th_ingest {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool done;
    store_status_t status;
    char message[256];
    size_t nalerts;
    store_alert_outcome_t out[64];
} th_ingest_t;

void th_ingest_init(th_ingest_t *w);
void th_ingest_cb(const store_ingest_result_t *res, void *ctx);
/* Waits (up to 30 s) for the callback; fails the test on timeout. */
void th_ingest_wait(th_ingest_t *w);
void th_ingest_dispose(th_ingest_t *w);
/* Ingest and wait: returns the status, outcomes in w. */
store_status_t th_ingest_sync(store_t *s, const store_alert_t *a, size_t n, th_ingest_t *w);

typedef struct th_reply {
    int status;
    char *body; /* heap */
} th_reply_t;
/* Runs a query and waits for the reply (body copied to the heap). */
void th_query(store_t *s, const store_query_t *q, th_reply_t *out);
void th_reply_dispose(th_reply_t *r);

/* A sample alert with two indicators and tags; strings are static. */
store_alert_t th_sample_alert(const char *title, const char *fingerprint);

/* Checks cond(ctx) every 10 ms until it holds or timeout_ms have passed on
 * the monotonic clock; returns whether it held. This is how the storage
 * tests wait for an event of another thread or process (never a sleep). */
bool th_wait_until(bool (*cond)(void *ctx), void *ctx, int timeout_ms);

/* Runs scripts/pg with arguments (start|stop DIR); fails the test on error. */
void th_pg(const char *cmd, const char *dir);

#endif
