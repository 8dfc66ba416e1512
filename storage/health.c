/*
 * storage/health.c - store_ping(): one cheap, bounded check that the
 * database answers, for alertmapd's GET /readyz.
 *
 * It opens its own connection (non-blocking, libpq's PQconnectStart /
 * PQconnectPoll) and runs "SELECT 1" under one deadline, so a database
 * that hangs cannot hold the caller past timeout_ms. It does not touch the
 * store's threads or connections.
 */
#include "store.h"

#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Waits until fd is readable (or writable) or the deadline passes.
 * Returns 0, or AM_EUNAVAIL on timeout / poll error. */
static int wait_fd(int fd, bool for_write, int64_t deadline_us)
{
    int64_t left = deadline_us - mono_us();
    if (left <= 0)
        return AM_EUNAVAIL;
    struct pollfd p = {.fd = fd, .events = for_write ? POLLOUT : POLLIN};
    int ms = (int)((left + 999) / 1000);
    int n = poll(&p, 1, ms);
    return n > 0 ? AM_OK : AM_EUNAVAIL;
}

/* The first line of libpq's message, without the trailing newline. */
static void copy_message(char *err, size_t errlen, const char *what, const char *pq)
{
    if (err == NULL || errlen == 0)
        return;
    size_t n = pq ? strcspn(pq, "\n") : 0;
    snprintf(err, errlen, "%s%s%.*s", what, n ? ": " : "", (int)n, pq ? pq : "");
}

int store_ping(const char *conninfo, int timeout_ms, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    int64_t deadline = mono_us() + (int64_t)timeout_ms * 1000;
    const char *const keys[] = {"dbname", "application_name", NULL};
    const char *const vals[] = {conninfo, "alertmapd-readyz", NULL};
    PGconn *c = PQconnectStartParams(keys, vals, 1);
    int rc = AM_OK;
    if (c == NULL || PQstatus(c) == CONNECTION_BAD) {
        copy_message(err, errlen, "cannot connect", c ? PQerrorMessage(c) : NULL);
        rc = AM_EUNAVAIL;
        goto done;
    }
    for (PostgresPollingStatusType st = PGRES_POLLING_WRITING; st != PGRES_POLLING_OK;) {
        if (st == PGRES_POLLING_FAILED) {
            copy_message(err, errlen, "cannot connect", PQerrorMessage(c));
            rc = AM_EUNAVAIL;
            goto done;
        }
        if (wait_fd(PQsocket(c), st == PGRES_POLLING_WRITING, deadline) != AM_OK) {
            copy_message(err, errlen, "no answer to the connection attempt in time", NULL);
            rc = AM_EUNAVAIL;
            goto done;
        }
        st = PQconnectPoll(c);
    }
    if (PQsetnonblocking(c, 1) != 0 || !PQsendQuery(c, "SELECT 1")) {
        copy_message(err, errlen, "cannot send the check query", PQerrorMessage(c));
        rc = AM_EUNAVAIL;
        goto done;
    }
    while (PQflush(c) == 1) {
        if (wait_fd(PQsocket(c), true, deadline) != AM_OK) {
            copy_message(err, errlen, "no answer to the check query in time", NULL);
            rc = AM_EUNAVAIL;
            goto done;
        }
    }
    for (;;) {
        if (!PQconsumeInput(c)) {
            copy_message(err, errlen, "the check query failed", PQerrorMessage(c));
            rc = AM_EUNAVAIL;
            goto done;
        }
        if (!PQisBusy(c))
            break;
        if (wait_fd(PQsocket(c), false, deadline) != AM_OK) {
            copy_message(err, errlen, "no answer to the check query in time", NULL);
            rc = AM_EUNAVAIL;
            goto done;
        }
    }
    for (PGresult *r; (r = PQgetResult(c)) != NULL;) {
        if (PQresultStatus(r) != PGRES_TUPLES_OK && rc == AM_OK) {
            copy_message(err, errlen, "the check query failed", PQresultErrorMessage(r));
            rc = AM_EUNAVAIL;
        }
        PQclear(r);
    }
done:
    PQfinish(c);
    return rc;
}
