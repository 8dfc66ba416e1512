/*
 * h2o-glue/main.c - alertmapd: configuration, start-up, signals, shutdown.
 *
 * Start-up, in order: options (exit 2 when invalid), mappings compiled with
 * their samples checked (exit 1 with file:line:col lines on stderr),
 * migrations applied (an unreachable database is retried once a second for
 * --db-wait seconds, then exit 1), the store and the API key verifier
 * started, the listening socket bound (exit 1), the event loops started
 * ("listening" logged).
 *
 * Signals are blocked in every thread and taken here with sigwait(): SIGHUP
 * reloads the mappings and the TLS certificate on this thread (the loops
 * keep serving); SIGTERM and
 * SIGINT stop the listeners, wait for in-flight requests and their commits,
 * drain the store and exit 0.
 */
#include "glue.h"
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static int load_mappings(const glue_config_t *cfg)
{
    am_diags_t d;
    am_diags_init(&d);
    int rc = glue_mappings_init(cfg->mappings, &d);
    if (rc != AM_OK) {
        am_diags_sort(&d);
        am_diags_print(&d, stderr);
        fflush(stderr);
        am_log(AM_LOG_ERROR, "startup_failed", "smappings", cfg->mappings, "ierrors",
               (int64_t)d.count, "smessage",
               "the mappings did not compile (file:line:col messages above)", NULL);
        am_diags_dispose(&d);
        return rc;
    }
    am_diags_dispose(&d);
    eng_set_t *s = glue_mappings_acquire();
    am_log(AM_LOG_INFO, "mappings_loaded", "smappings", cfg->mappings, "isources",
           (int64_t)eng_set_count(s), NULL);
    glue_mappings_warn_secrets(s);
    eng_set_unref(s);
    return AM_OK;
}

/* Applies the migrations, retrying an unreachable database. Returns 0, or
 * AM_EUNAVAIL / AM_EINVAL after logging why. */
static int migrate(const glue_config_t *cfg, const sigset_t *sigs)
{
    int64_t deadline = am_now_us() + (int64_t)cfg->db_wait_s * 1000000;
    for (int attempt = 1;; attempt++) {
        char err[512] = "";
        int rc = store_migrate(cfg->database_url, cfg->sql_dir, err, sizeof(err));
        if (rc == AM_OK) {
            am_log(AM_LOG_INFO, "migrated", "ssql_dir", cfg->sql_dir, NULL);
            return AM_OK;
        }
        if (rc != AM_EUNAVAIL) {
            fprintf(stderr, "alertmapd: migrations in %s failed: %s\n", cfg->sql_dir, err);
            am_log(AM_LOG_ERROR, "startup_failed", "ssql_dir", cfg->sql_dir, "smessage", err, NULL);
            return rc;
        }
        if (am_now_us() >= deadline) {
            fprintf(stderr, "alertmapd: cannot reach the database after %d s: %s\n", cfg->db_wait_s,
                    err);
            am_log(AM_LOG_ERROR, "startup_failed", "smessage", "database unreachable", "serror",
                   err, "iwaited_s", (int64_t)cfg->db_wait_s, NULL);
            return rc;
        }
        am_log(AM_LOG_WARN, "database_unavailable", "iattempt", (int64_t)attempt, "serror", err,
               "smessage", "retrying in 1 s", NULL);
        struct timespec one = {.tv_sec = 1, .tv_nsec = 0};
        int sig = sigtimedwait(sigs, NULL, &one);
        if (sig == SIGTERM || sig == SIGINT) {
            am_log(AM_LOG_ERROR, "startup_failed", "smessage",
                   "stopped by a signal while waiting for the database", NULL);
            return AM_EUNAVAIL;
        }
    }
}

/* Raises the descriptor soft limit to the hard limit (every connection is
 * a descriptor; --max-connections should stay below it) and logs both. */
static void raise_fd_limit(const glue_config_t *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t before = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = before;
    }
    int64_t soft = rl.rlim_cur == RLIM_INFINITY ? -1 : (int64_t)rl.rlim_cur;
    int64_t hard = rl.rlim_max == RLIM_INFINITY ? -1 : (int64_t)rl.rlim_max;
    am_log(AM_LOG_INFO, "fd_limit", "isoft_before", (int64_t)before, "isoft", soft, "ihard", hard,
           "imax_connections", (int64_t)cfg->max_connections, NULL);
    if (soft >= 0 && (int64_t)cfg->max_connections + 64 > soft)
        am_log(AM_LOG_WARN, "fd_limit_low", "isoft", soft, "imax_connections",
               (int64_t)cfg->max_connections, "smessage",
               "the descriptor limit is below --max-connections (plus the server's own "
               "descriptors): accepting pauses when descriptors run out",
               NULL);
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    case SIGHUP:
        return "SIGHUP";
    default:
        return "signal";
    }
}

int main(int argc, char **argv)
{
    /* out of memory aborts with a message (am_oom), in jansson too: its
     * creation functions then fail only for bad input. The tree of a
     * request body comes from the thread's scratch slab (eng_json_parse). */
    json_set_alloc_funcs(am_scratch_malloc, am_scratch_free);
    glue_config_t cfg;
    glue_action_t action;
    char err[512];
    if (glue_config_parse(&cfg, &action, argc, argv, err, sizeof(err)) != AM_OK) {
        fprintf(stderr, "alertmapd: %s\n", err);
        return 2;
    }
    if (action == GLUE_ACT_HELP) {
        glue_config_usage(stdout);
        return 0;
    }
    if (action == GLUE_ACT_VERSION) {
        printf("alertmapd %s\n", ALERTMAP_VERSION);
        return 0;
    }
    am_log_set_level(cfg.log_level);
    glue_metrics_start(am_now_us());
    raise_fd_limit(&cfg);
    /* the writer's and readers' statements end at the request deadline */
    store_set_statement_timeout(cfg.deadline_s * 1000);

    /* Every thread created from here on inherits the blocked set. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    am_log(AM_LOG_INFO, "starting", "sversion", ALERTMAP_VERSION, "slisten", cfg.listen,
           "smappings", cfg.mappings, "smappings_from", cfg.mappings_from, "ssql_dir", cfg.sql_dir,
           "ithreads", (int64_t)cfg.threads, "idedup_window_s", cfg.dedup_window_s, NULL);
    glue_auth_init(&cfg); /* the policy the mapping check below logs against */
    if (load_mappings(&cfg) != AM_OK) {
        glue_auth_shutdown();
        return 1;
    }

    if (migrate(&cfg, &sigs) != AM_OK) {
        glue_mappings_shutdown();
        glue_auth_shutdown();
        return 1;
    }
    /* API keys: its own thread and connection; needs no database up */
    store_keys_options_t kopt = {.conninfo = cfg.database_url, .pepper = store_key_pepper()};
    store_keys_t *keys = store_keys_new(&kopt);
    glue_auth_set_keys(keys);
    /* enrichment workers (docs/enrichment.md); --role worker runs only them */
    wk_t *wk = NULL;
    wk_options_t wopt = {.conninfo = cfg.database_url,
                         .providers = cfg.providers,
                         .targets = cfg.targets,
                         .threads = (unsigned)cfg.workers,
                         .lease_us = cfg.worker_lease_s * 1000000,
                         .poll_us = cfg.worker_poll_s * 1000000,
                         .backoff_us = cfg.worker_backoff_s * 1000000,
                         .batch = (unsigned)cfg.worker_batch,
                         /* the server serves POST /v1/enrichments with a thread of its own,
                          * with --workers 0 too */
                         .ondemand = !cfg.role_worker,
                         .ondemand_queue = (unsigned)cfg.ondemand_queue};
    if (cfg.role_worker && wopt.threads == 0)
        wopt.threads = 1;
    if (wk_new(&wk, &wopt, err, sizeof(err)) != AM_OK || wk_start(wk) != AM_OK) {
        fprintf(stderr, "alertmapd: %s\n", wk ? "cannot start the workers" : err);
        am_log(AM_LOG_ERROR, "startup_failed", "smessage", wk ? "workers" : err, NULL);
        wk_free(wk);
        glue_auth_shutdown();
        store_keys_free(keys);
        glue_mappings_shutdown();
        return 1;
    }
    if (cfg.role_worker) {
        am_sd_notify("READY=1");
        int wsig = 0;
        while (sigwait(&sigs, &wsig) != 0 || wsig == SIGHUP)
            if (wsig == SIGHUP)
                wk_reload(wk);
        am_log(AM_LOG_INFO, "shutdown", "ssignal", signal_name(wsig), NULL);
        wk_free(wk);
        glue_auth_shutdown();
        store_keys_free(keys);
        glue_mappings_shutdown();
        return 0;
    }
    store_options_t sopt = {.conninfo = cfg.database_url,
                            .dedup_window_s = cfg.dedup_window_s,
                            .readers = 2,
                            .writers = cfg.writers,
                            .linger_us = cfg.writer_linger_us,
                            .max_batch = 256};
    store_t *store = store_new(&sopt);
    if (store == NULL) {
        am_log(AM_LOG_ERROR, "startup_failed", "smessage", "cannot start the store", NULL);
        glue_auth_shutdown();
        store_keys_free(keys);
        wk_free(wk);
        glue_mappings_shutdown();
        return 1;
    }
    glue_enrich_set_worker(wk);
    store_deliveries_t *deliveries = store_deliveries_new(cfg.database_url);
    glue_ingest_set_deliveries(deliveries);
    /* Bound only now: a client never waits in the backlog of a server that
     * is still looking for its database. */
    glue_server_t *srv = NULL;
    if (glue_server_new(&srv, &cfg, err, sizeof(err)) != AM_OK) {
        fprintf(stderr, "alertmapd: %s\n", err);
        am_log(AM_LOG_ERROR, "startup_failed", "smessage", err, NULL);
        store_free(store);
        glue_auth_shutdown();
        store_keys_free(keys);
        store_deliveries_free(deliveries);
        wk_free(wk);
        glue_mappings_shutdown();
        return 1;
    }
    if (glue_server_start(srv, store) != AM_OK) {
        fprintf(stderr, "alertmapd: cannot start the event loops (see the startup_failed line)\n");
        glue_server_stop(srv);
        store_free(store);
        store_deliveries_free(deliveries);
        glue_server_free(srv);
        glue_auth_shutdown();
        store_keys_free(keys);
        wk_free(wk);
        glue_mappings_shutdown();
        return 1;
    }
    am_sd_notify("READY=1"); /* systemd Type=notify: serving from now on */

    int sig = 0;
    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
        am_log(AM_LOG_INFO, "reload", "smappings", cfg.mappings, NULL);
        glue_mappings_reload(cfg.mappings);
        glue_server_reload_tls(srv);
        if (wk != NULL)
            wk_reload(wk);
    }

    am_log(AM_LOG_INFO, "shutdown", "ssignal", signal_name(sig), "smessage",
           "closing listeners, finishing in-flight requests", NULL);
    am_sd_notify("STOPPING=1");
    glue_server_stop(srv); /* waits for in-flight key checks too */
    wk_free(wk);
    store_free(store);
    store_deliveries_free(deliveries);
    glue_server_free(srv);
    glue_auth_shutdown();
    store_keys_free(keys);
    glue_mappings_shutdown();
    am_log(AM_LOG_INFO, "stopped", NULL);
    return 0;
}
