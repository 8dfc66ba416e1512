/* tests/storage/bench_writer.c - how fast the store's writers commit, on a
 * fresh database, without HTTP: the tool behind the schema and writer
 * figures of docs/performance.md (not a test; run by hand).
 *
 *   bench_writer CONNINFO SQL_DIR [options]
 *     -n N        alerts to ingest (default 20000)
 *     -w N        writer threads (default: the store's default)
 *     -q N        requests kept in flight (default 512)
 *     -i N        indicators per alert (default 5)
 *     -x FILE     SQL run after the migrations (a schema variant)
 *     -p FILE     the raw payload of every alert (default: a synthetic one
 *                 of ~2.1 KB; mappings/samples/elastic/alert-flat.json is a
 *                 realistic 2.4 KB Elastic alert)
 *     -d          no dedup (window 0)
 *
 * CONNINFO names a fresh, empty database (bench_schema.sh makes one per
 * run: a truncated table keeps statistics that mislead the planner). Every alert
 * is unique (title and fingerprint carry a counter; one indicator of five
 * is shared by 1 % of the alerts), ~2.5 KB of JSON payload. Prints one JSON
 * line: alerts/s, transactions, and the CPU the writers' backends spent per
 * alert. */
#include "store.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_long g_inflight, g_done, g_failed;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;

static void on_done(const store_ingest_result_t *res, void *ctx)
{
    (void)ctx;
    if (res->status != STORE_OK)
        atomic_fetch_add(&g_failed, 1);
    atomic_fetch_add(&g_done, 1);
    pthread_mutex_lock(&g_mu);
    atomic_fetch_sub(&g_inflight, 1);
    pthread_cond_signal(&g_cond);
    pthread_mutex_unlock(&g_mu);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run_sql(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "bench_writer: %s: %s", sql, PQerrorMessage(c));
        exit(1);
    }
    PQclear(r);
}

/* CPU seconds (user + system, from /proc) of the store's backends so far:
 * the connections named alertmapd (libpq's fallback_application_name) of
 * this database; they are opened after the start of the run. -1 when
 * unknown (a server on another machine). */
static double db_cpu_s(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT pid FROM pg_stat_activity WHERE application_name ="
                            " 'alertmapd' AND datname = current_database()");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        return -1;
    }
    double total = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        char sp[64], line[1024];
        snprintf(sp, sizeof(sp), "/proc/%s/stat", PQgetvalue(r, i, 0));
        FILE *st = fopen(sp, "r");
        if (st == NULL) {
            total = -1;
            break;
        }
        size_t k = fread(line, 1, sizeof(line) - 1, st);
        fclose(st);
        line[k] = '\0';
        /* fields 14 and 15 (utime, stime) after the ")" that ends field 2 */
        char *q = strrchr(line, ')');
        unsigned long long ut = 0, stt = 0;
        if (q != NULL &&
            sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) == 2)
            total += (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
    }
    PQclear(r);
    return total;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_writer CONNINFO SQL_DIR [-n N] [-w N] [-q N] [-i N] "
                        "[-x FILE] [-d]\n");
        return 2;
    }
    const char *ci = argv[1], *sqldir = argv[2], *variant = NULL, *payload_file = NULL;
    long n = 20000, writers = 0, inflight = 512, nind = 5;
    bool dedup = true;
    int opt;
    optind = 3;
    while ((opt = getopt(argc, argv, "n:w:q:i:x:p:d")) != -1) {
        switch (opt) {
        case 'n':
            n = strtol(optarg, NULL, 10);
            break;
        case 'w':
            writers = strtol(optarg, NULL, 10);
            break;
        case 'q':
            inflight = strtol(optarg, NULL, 10);
            break;
        case 'i':
            nind = strtol(optarg, NULL, 10);
            break;
        case 'x':
            variant = optarg;
            break;
        case 'p':
            payload_file = optarg;
            break;
        case 'd':
            dedup = false;
            break;
        default:
            return 2;
        }
    }
    if (nind < 1 || nind > 64)
        nind = 5;
    char err[512];
    if (store_migrate(ci, sqldir, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_writer: migrate: %s\n", err);
        return 1;
    }
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench_writer: %s", PQerrorMessage(c));
        return 1;
    }
    if (variant != NULL) {
        FILE *f = fopen(variant, "r");
        if (f == NULL) {
            perror(variant);
            return 1;
        }
        static char sql[1 << 16];
        size_t k = fread(sql, 1, sizeof(sql) - 1, f);
        sql[k] = '\0';
        fclose(f);
        run_sql(c, sql);
    }
    run_sql(c, "CHECKPOINT");
    static char fixed[65536];
    if (payload_file != NULL) {
        FILE *f = fopen(payload_file, "r");
        if (f == NULL) {
            perror(payload_file);
            return 1;
        }
        size_t k = fread(fixed, 1, sizeof(fixed) - 1, f);
        fixed[k] = '\0';
        fclose(f);
    }
    char pad[2049];
    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    store_options_t so = {
        .conninfo = ci, .dedup_window_s = dedup ? 86400 : 0, .readers = 1, .writers = (int)writers};
    store_t *s = store_new(&so);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        pthread_mutex_lock(&g_mu);
        while (atomic_load(&g_inflight) >= inflight)
            pthread_cond_wait(&g_cond, &g_mu);
        atomic_fetch_add(&g_inflight, 1);
        pthread_mutex_unlock(&g_mu);
        char title[96], fp[64], payload[2400];
        const char *raw = payload_file != NULL ? fixed : payload;
        snprintf(title, sizeof(title), "Suspicious PowerShell Execution %ld", i);
        snprintf(fp, sizeof(fp), "%016lx%016lx", i * 2654435761L, i);
        snprintf(payload, sizeof(payload),
                 "{\"rule\":{\"name\":\"%s\"},\"host\":{\"name\":\"ws-%ld\"},\"pad\":\"%s\"}",
                 title, i % 500, pad);
        char v[64][80];
        store_indicator_t ind[64];
        static const char *const types[] = {"ip", "domain", "hash_sha256", "account", "ip"};
        for (long k = 0; k < nind; k++) {
            if (k == 0)
                snprintf(v[k], sizeof(v[k]), "10.1.%ld.%ld", (i / 100) % 250, i % 100);
            else if (k == 4)
                snprintf(v[k], sizeof(v[k]), "185.220.101.%ld", i % 250); /* shared */
            else
                snprintf(v[k], sizeof(v[k]), "%s%ld-%ld.example.com", types[k % 5], k, i);
            ind[k] = (store_indicator_t){types[k % 5], v[k], "src_ip"};
        }
        const char *tags[] = {"PowerShell", "Endpoint"};
        store_alert_t a = {.source_name = "elastic",
                           .title = title,
                           .severity = "High",
                           .occurred_at_us = 1700000000000000 + i,
                           .tags = tags,
                           .ntags = 2,
                           .fingerprint = fp,
                           .raw_payload = raw,
                           .fields_json = "{\"src_ip\":\"10.1.2.3\"}",
                           .indicators = ind,
                           .nindicators = (size_t)nind};
        if (store_ingest(s, &a, 1, on_done, NULL) != 0) {
            fprintf(stderr, "bench_writer: store_ingest refused\n");
            return 1;
        }
    }
    pthread_mutex_lock(&g_mu);
    while (atomic_load(&g_inflight) > 0)
        pthread_cond_wait(&g_cond, &g_mu);
    pthread_mutex_unlock(&g_mu);
    double t = now_s() - t0, cpu = db_cpu_s(c);
    store_stats_t st;
    store_stats(s, &st);
    store_free(s);
    printf("{\"alerts\":%ld,\"seconds\":%.3f,\"alerts_per_s\":%.0f,\"failed\":%ld,"
           "\"transactions\":%llu,\"writers\":%llu,\"retries\":%llu,\"db_cpu_us_per_alert\":%.0f,"
           "\"variant\":\"%s\"}\n",
           n, t, (double)n / t, atomic_load(&g_failed), (unsigned long long)st.transactions,
           (unsigned long long)st.writers, (unsigned long long)st.retries,
           cpu >= 0 ? cpu * 1e6 / (double)n : -1.0, variant ? variant : "");
    PQfinish(c);
    return atomic_load(&g_failed) == 0 ? 0 : 1;
}
