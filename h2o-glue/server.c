/*
 * h2o-glue/server.c - listeners, one h2o event loop per thread, one h2o
 * path per route prefix, and the hand-back of store completions to the loop
 * that owns a request.
 *
 * Routes: every distinct glue_route_prefix() of the route table is one
 * h2o_config_register_path() with its own handler, bound to the table rows
 * under it; that handler finds its row (405 with Allow for a known path and
 * another method), checks the body size and calls the row's handler. A path
 * under no prefix reaches the host's fallback path, whose handler answers
 * 404. The handlers own their answers; this file knows none of them.
 *
 * Threads: N workers, each with its own evloop, h2o context and a dup() of
 * the one listening socket (the kernel hands each connection to one of the
 * loops). A request is only ever touched on its worker's thread. Store
 * callbacks run on store threads; they fill a glue_pending_t and post it to
 * the worker with h2o_multithread_send_message(); the worker answers there.
 * If the client went away meanwhile, the request pool's dispose callback has
 * already detached the pending record (rc == NULL) and the answer is
 * dropped; the record itself is always freed by the worker.
 */
#include "glue.h"
#include "h2o_compat.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

struct glue_worker {
    glue_server_t *srv;
    int id;
    pthread_t tid;
    bool running;   /* thread started */
    bool finished;  /* loop ended (guarded by park_lock) */
    bool disposed;  /* the loop's resources were freed */
    bool ready;     /* the loop is set up and listening (guarded by park_lock) */
    bool stop_sent; /* glue_server_stop() messaged the loop (main thread) */
    int listen_fd;  /* this loop's dup of the listening socket, until used */
    int accept_fd;  /* the same descriptor, owned by listener, for accept4() */
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    /* accepting paused after EMFILE/ENFILE, resumed by this timer */
    h2o_timeout_t accept_pause;
    h2o_timeout_entry_t accept_resume;
    /* the request deadline of pending records */
    h2o_timeout_t deadline;
    /* this loop's reference to the TLS context for new handshakes, and the
     * generation of glue_server.tls it was taken from */
    SSL_CTX *tls;
    uint64_t tls_gen;
    h2o_multithread_receiver_t done_rx; /* completed store calls */
    h2o_multithread_receiver_t ctl_rx;  /* stop request */
    h2o_multithread_message_t ctl_msg;
    /* threads inside h2o_multithread_send_message() to this loop: libh2o
     * writes the wake-up byte to the queue's pipe after it has queued the
     * message, so the loop may already have handled it; the queue (and its
     * pipe) is not disposed while this is non-zero */
    atomic_int senders;
    size_t inflight; /* pending store calls; loop thread only */
    size_t nconns;   /* open sockets of this loop, handshakes included; loop thread */
    bool pressure;   /* this loop's client timeouts are the short ones */
    bool stopping;
    int64_t stop_deadline_us;
    uint64_t seq;
};

/* The rows of the route table under one registered h2o path. */
#define MAX_ROWS_PER_PATH 8

struct glue_server {
    const glue_config_t *cfg;
    store_t *store;
    h2o_globalconf_t globalconf;
    bool globalconf_ready;
    int listen_fd;
    char listen_name[300];
    glue_worker_t *workers;
    int nworkers;
    char id_prefix[9];
    glue_ready_t *ready;
    atomic_int nconns;    /* open connections of all loops */
    atomic_bool pressure; /* near --max-connections: short client timeouts */
    /* the TLS context new handshakes use; swapped by glue_server_reload_tls() */
    pthread_mutex_t tls_lock;
    SSL_CTX *tls;
    atomic_uint_fast64_t tls_gen;
};

/* Summarised log lines: refused connections, failed accepts. */
static am_lograte_t lr_refused = AM_LOGRATE_INIT(0);
static am_lograte_t lr_accept = AM_LOGRATE_INIT(0);

typedef struct glue_handler {
    h2o_handler_t super;
    glue_server_t *srv;
    const glue_route_entry_t *rows[MAX_ROWS_PER_PATH];
    size_t nrows;
} glue_handler_t;

/* glue_server_fail_start_at() */
static int fail_start_at = -1;

void glue_server_fail_start_at(int i)
{
    fail_start_at = i;
}

/* How long a stopping worker waits for idle or slow connections once its
 * in-flight store calls are done. */
#define STOP_GRACE_US (3 * 1000000)

store_t *glue_server_store(const glue_server_t *srv)
{
    return srv->store;
}

const glue_config_t *glue_server_config(const glue_server_t *srv)
{
    return srv->cfg;
}

const char *glue_server_address(const glue_server_t *srv)
{
    return srv->listen_name;
}

glue_ready_t *glue_server_ready(const glue_server_t *srv)
{
    return srv->ready;
}

bool glue_worker_stopping(const glue_worker_t *w)
{
    return w != NULL && w->stopping;
}

/* The limits of cfg; a zero (a configuration not made by
 * glue_config_parse(), as in tests) means the default. */
static int max_connections(const glue_config_t *cfg)
{
    return cfg->max_connections > 0 ? cfg->max_connections : GLUE_DEFAULT_MAX_CONNECTIONS;
}

static int deadline_s(const glue_config_t *cfg)
{
    return cfg->deadline_s > 0 ? cfg->deadline_s : GLUE_DEFAULT_DEADLINE_S;
}

static int client_timeout_s(const glue_config_t *cfg)
{
    return cfg->client_timeout_s > 0 ? cfg->client_timeout_s : GLUE_DEFAULT_CLIENT_TIMEOUT_S;
}

/* ---- pending calls ------------------------------------------------------ */

/* Loop thread: a pending record's request deadline passed. The request is
 * answered now and detached; the record stays until the other thread posts
 * it back (on_done then drops the late answer). */
static void on_deadline(h2o_timeout_entry_t *entry)
{
    glue_pending_t *p = H2O_STRUCT_FROM_MEMBER(glue_pending_t, deadline, entry);
    glue_reqctx_t *rc = p->rc;
    if (rc == NULL)
        return;
    p->rc = NULL;
    p->timed_out = true;
    rc->pending = NULL;
    char msg[200];
    snprintf(msg, sizeof(msg),
             "the database did not answer within %d s; an alert may still be stored, and a "
             "retry of the same request is deduplicated",
             deadline_s(rc->srv->cfg));
    glue_send_error(rc, 503, "DATABASE_UNAVAILABLE", msg);
}

void *glue_pending_new(glue_reqctx_t *rc, size_t size, glue_pending_fn complete,
                       void (*dispose)(glue_pending_t *p))
{
    assert(size >= sizeof(glue_pending_t));
    glue_pending_t *p = am_xcalloc(1, size);
    p->worker = rc->worker;
    p->rc = rc;
    p->complete = complete;
    p->dispose = dispose;
    rc->pending = p;
    rc->worker->inflight++;
    p->deadline.cb = on_deadline;
    h2o_timeout_link(rc->worker->ctx.loop, &rc->worker->deadline, &p->deadline);
    return p;
}

static void pending_free(glue_pending_t *p)
{
    if (h2o_timeout_is_linked(&p->deadline))
        h2o_timeout_unlink(&p->deadline);
    if (p->dispose != NULL)
        p->dispose(p);
    free(p);
}

void glue_pending_cancel(glue_pending_t *p)
{
    if (p->rc != NULL)
        p->rc->pending = NULL;
    p->worker->inflight--;
    pending_free(p);
}

/* Any thread: posts to a loop's receiver, counted in w->senders (see there). */
static void worker_send(glue_worker_t *w, h2o_multithread_receiver_t *rx,
                        h2o_multithread_message_t *msg)
{
    atomic_fetch_add(&w->senders, 1);
    h2o_multithread_send_message(rx, msg);
    atomic_fetch_sub(&w->senders, 1);
}

void glue_pending_post(glue_pending_t *p)
{
    glue_worker_t *w = p->worker; /* p may be freed once it is queued */
    worker_send(w, &w->done_rx, &p->msg);
}

static void on_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    glue_worker_t *w = H2O_STRUCT_FROM_MEMBER(glue_worker_t, done_rx, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        glue_pending_t *p = H2O_STRUCT_FROM_MEMBER(glue_pending_t, msg, m);
        glue_reqctx_t *rc = p->rc;
        if (rc != NULL) {
            rc->pending = NULL;
            p->rc = NULL;
            p->complete(rc, p);
        } else if (p->timed_out) {
            am_log(AM_LOG_DEBUG, "late_completion", "smessage",
                   "an answer arrived after the request deadline and was dropped", NULL);
        } else {
            am_log(AM_LOG_INFO, "client_gone", "smessage",
                   "the client closed the connection before the answer was ready", NULL);
        }
        w->inflight--;
        pending_free(p);
    }
}

/* ---- requests ----------------------------------------------------------- */

static void reqctx_dispose(void *ptr)
{
    glue_reqctx_t *rc = ptr;
    if (rc->pending != NULL)
        rc->pending->rc = NULL; /* the worker frees it when the store answers */
    am_arena_free(rc->arena);
    eng_set_unref(rc->set);
}

static bool safe_request_id(const char *s, size_t n)
{
    if (n == 0 || n > 36)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

static void set_request_id(glue_reqctx_t *rc)
{
    size_t n;
    const char *given = glue_header_find(&rc->req->headers, "x-request-id", &n);
    if (given != NULL && safe_request_id(given, n)) {
        memcpy(rc->request_id, given, n);
        rc->request_id[n] = '\0';
        return;
    }
    glue_worker_t *w = rc->worker;
    snprintf(rc->request_id, sizeof(rc->request_id), "%s-%x-%llx", w->srv->id_prefix,
             (unsigned)w->id, (unsigned long long)++w->seq);
}

/* The request context of a request that reached one of our handlers. */
static glue_reqctx_t *reqctx_new(glue_server_t *srv, h2o_req_t *req)
{
    glue_worker_t *w = H2O_STRUCT_FROM_MEMBER(glue_worker_t, ctx, req->conn->ctx);
    glue_reqctx_t *rc = h2o_mem_alloc_shared(&req->pool, sizeof(*rc), reqctx_dispose);
    memset(rc, 0, sizeof(*rc));
    rc->req = req;
    rc->srv = srv;
    rc->worker = w;
    rc->started_us = am_now_us();
    set_request_id(rc);
    rc->arena = am_arena_new(16384, 0);
    return rc;
}

/* Whether the request's Content-Type is JSON: application/json or
 * application/<anything>+json, parameters (charset) allowed. A body
 * without Content-Type is refused too: a browser page on another origin
 * can send text/plain or no type at all without a CORS preflight. */
static bool json_body_type(h2o_req_t *req)
{
    size_t n = 0;
    const char *v = glue_header_find(&req->headers, "content-type", &n);
    if (v == NULL)
        return false;
    const char *semi = memchr(v, ';', n);
    size_t len = semi ? (size_t)(semi - v) : n;
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    while (len > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    static const char app[] = "application/";
    size_t al = sizeof(app) - 1;
    if (len <= al || strncasecmp(v, app, al) != 0)
        return false;
    const char *sub = v + al;
    size_t sl = len - al;
    if (memchr(sub, '/', sl) != NULL)
        return false;
    if (sl == 4 && strncasecmp(sub, "json", 4) == 0)
        return true;
    return sl > 5 && strncasecmp(sub + sl - 5, "+json", 5) == 0;
}

/* The handler of one registered h2o path: the rows of the table under it. */
static int on_route(h2o_handler_t *self, h2o_req_t *req)
{
    glue_handler_t *h = (glue_handler_t *)self;
    glue_reqctx_t *rc = reqctx_new(h->srv, req);
    glue_route_kind_t kind;
    glue_route_params_t params;
    const glue_route_entry_t *row =
        glue_route_find(h->rows, h->nrows, req->method.base, req->method.len,
                        req->path_normalized.base, req->path_normalized.len, &kind, &params);
    rc->route = kind;
    if (kind == GLUE_R_NONE) {
        glue_send_error(rc, 404, "NOT_FOUND", "no such endpoint");
        return 0;
    }
    if (row == NULL) {
        const char *allow = glue_route_allow_header(kind);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
        char msg[96];
        snprintf(msg, sizeof(msg), "method not allowed; allowed: %s", allow);
        glue_send_error(rc, 405, "METHOD_NOT_ALLOWED", msg);
        return 0;
    }
    if (req->entity.base != NULL && req->entity.len > rc->srv->cfg->max_body) {
        char msg[96];
        snprintf(msg, sizeof(msg), "request body larger than %zu bytes", rc->srv->cfg->max_body);
        glue_send_error(rc, 413, "PAYLOAD_TOO_LARGE", msg);
        return 0;
    }
    if ((kind == GLUE_R_INGEST || kind == GLUE_R_SOURCE_TEST) && !json_body_type(req)) {
        size_t n = 0;
        const char *ct = glue_header_find(&req->headers, "content-type", &n);
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "Content-Type must be application/json or a +json type, got %s%.*s%s",
                 ct ? "'" : "", ct ? (int)(n > 60 ? 60 : n) : 4, ct ? ct : "none", ct ? "'" : "");
        glue_send_error(rc, 415, "UNSUPPORTED_MEDIA_TYPE", msg);
        return 0;
    }
    glue_auth_dispatch(rc, row, &params); /* the row's scope, then its handler */
    return 0;
}

/* The fallback path's handler: a path under no registered prefix. */
static int on_unknown(h2o_handler_t *self, h2o_req_t *req)
{
    glue_handler_t *h = (glue_handler_t *)self;
    glue_reqctx_t *rc = reqctx_new(h->srv, req);
    glue_send_error(rc, 404, "NOT_FOUND", "no such endpoint");
    return 0;
}

/* Registers one h2o path per distinct prefix of the route table. */
static void register_routes(glue_server_t *srv, h2o_hostconf_t *host)
{
    size_t n;
    const glue_route_entry_t *table = glue_route_table(&n);
    for (size_t i = 0; i < n; i++) {
        size_t plen = glue_route_prefix(table[i].pattern);
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = glue_route_prefix(table[k].pattern) == plen &&
                   memcmp(table[k].pattern, table[i].pattern, plen) == 0;
        if (seen)
            continue;
        char path[128];
        assert(plen < sizeof(path));
        memcpy(path, table[i].pattern, plen);
        path[plen] = '\0';
        h2o_pathconf_t *pc = h2o_config_register_path(host, path, 0);
        glue_handler_t *h = (glue_handler_t *)h2o_create_handler(pc, sizeof(*h));
        h->super.on_req = on_route;
        h->srv = srv;
        h->nrows = 0;
        for (size_t k = i; k < n; k++) {
            if (glue_route_prefix(table[k].pattern) != plen ||
                memcmp(table[k].pattern, table[i].pattern, plen) != 0)
                continue;
            assert(h->nrows < MAX_ROWS_PER_PATH);
            h->rows[h->nrows++] = &table[k];
        }
        glue_install_filters(pc);
    }
    h2o_pathconf_t *fb = &host->fallback_path;
    glue_handler_t *h = (glue_handler_t *)h2o_create_handler(fb, sizeof(*h));
    h->super.on_req = on_unknown;
    h->srv = srv;
    glue_install_filters(fb);
}

/* ---- listeners and loops ----------------------------------------------- */

/* A connection of w closed (h2o calls this when it disposes the socket). */
static void on_conn_close(void *data)
{
    glue_worker_t *w = data;
    w->nconns--;
    atomic_fetch_sub_explicit(&w->srv->nconns, 1, memory_order_relaxed);
}

/* Loop thread: the TLS context for the next handshake, re-referenced only
 * when glue_server_reload_tls() swapped in a new one. */
static void refresh_tls(glue_worker_t *w)
{
    glue_server_t *srv = w->srv;
    uint64_t gen = atomic_load_explicit(&srv->tls_gen, memory_order_acquire);
    if (gen == w->tls_gen)
        return;
    pthread_mutex_lock(&srv->tls_lock);
    SSL_CTX *cur = srv->tls;
    SSL_CTX_up_ref(cur);
    w->tls_gen = atomic_load_explicit(&srv->tls_gen, memory_order_relaxed);
    pthread_mutex_unlock(&srv->tls_lock);
    /* connections already handshaking or open hold their own reference */
    SSL_CTX_free(w->tls);
    w->tls = cur;
    w->accept_ctx.ssl_ctx = cur;
}

static void on_accept(h2o_socket_t *listener, const char *err);

static void on_accept_resume(h2o_timeout_entry_t *entry)
{
    glue_worker_t *w = H2O_STRUCT_FROM_MEMBER(glue_worker_t, accept_resume, entry);
    if (!w->stopping && w->listener != NULL)
        h2o_socket_read_start(w->listener, on_accept);
}

static void log_accept_failed(glue_worker_t *w, const char *error, uint64_t n)
{
    am_log(AM_LOG_ERROR, "accept_failed", "serror", error, "icount", (int64_t)n,
           "iopen_connections", (int64_t)atomic_load(&w->srv->nconns), "ipause_ms",
           (int64_t)GLUE_ACCEPT_PAUSE_MS, "smessage",
           "cannot accept connections (out of descriptors): accepting paused; count is the "
           "failed accepts since the last line",
           NULL);
}

static void log_refused(glue_worker_t *w, uint64_t n)
{
    am_log(AM_LOG_ERROR, "connection_refused", "icount", (int64_t)n, "imax_connections",
           (int64_t)max_connections(w->srv->cfg), "smessage",
           "open connections at --max-connections: new ones are closed at once; count is the "
           "refused connections since the last line",
           NULL);
}

/* Out of descriptors (or kernel memory): the pending connection cannot be
 * taken, and polling the listener again would return at once. Stop
 * reading it for the pause and try again afterwards. */
static void pause_accepting(glue_worker_t *w, int e)
{
    h2o_socket_read_stop(w->listener);
    if (!h2o_timeout_is_linked(&w->accept_resume))
        h2o_timeout_link(w->ctx.loop, &w->accept_pause, &w->accept_resume);
    uint64_t n = am_lograte_hit(&lr_accept, am_now_us());
    if (n > 0)
        log_accept_failed(w, strerror(e), n);
}

static void refuse_connection(glue_worker_t *w, int fd)
{
    close(fd);
    uint64_t n = am_lograte_hit(&lr_refused, am_now_us());
    if (n > 0)
        log_refused(w, n);
}

/*
 * Near the connection cap (90 %), every loop cuts its client timeouts to
 * GLUE_PRESSURE_TIMEOUT_MS, so that idle and slow connections (which would
 * otherwise hold their slots for --client-timeout) make room for new
 * clients within about a second; below 75 % the configured timeout comes
 * back. A request being handled or answered has no client timer and is not
 * affected. Loop thread of w (the flag is shared; the loop that flips it
 * logs the change).
 */
static void check_pressure(glue_worker_t *w)
{
    glue_server_t *srv = w->srv;
    if (w->stopping)
        return;
    int open = atomic_load_explicit(&srv->nconns, memory_order_relaxed);
    int cap = max_connections(srv->cfg);
    uint64_t normal_ms = (uint64_t)client_timeout_s(srv->cfg) * 1000;
    uint64_t short_ms = normal_ms < GLUE_PRESSURE_TIMEOUT_MS ? normal_ms : GLUE_PRESSURE_TIMEOUT_MS;
    bool on = atomic_load(&srv->pressure);
    if (!on && open >= cap - cap / 10) {
        if (!atomic_exchange(&srv->pressure, true))
            am_log(AM_LOG_WARN, "connection_pressure", "iopen_connections", (int64_t)open,
                   "imax_connections", (int64_t)cap, "iclient_timeout_ms", (int64_t)short_ms,
                   "smessage",
                   "open connections near --max-connections: idle and slow clients now get a "
                   "short timeout",
                   NULL);
    } else if (on && open < cap - cap / 4) {
        if (atomic_exchange(&srv->pressure, false))
            am_log(AM_LOG_INFO, "connection_pressure_over", "iopen_connections", (int64_t)open,
                   "iclient_timeout_ms", (int64_t)normal_ms, NULL);
    }
    bool want = atomic_load(&srv->pressure);
    if (want != w->pressure) {
        w->pressure = want;
        glue_compat_set_client_timeouts(&w->ctx, want ? short_ms : normal_ms);
    }
}

/* The counts of the summarised events whose last burst has not been
 * written yet. */
static void flush_summaries(glue_worker_t *w)
{
    int64_t now = am_now_us();
    uint64_t n = glue_lograte_due(&lr_refused, now);
    if (n > 0)
        log_refused(w, n);
    n = glue_lograte_due(&lr_accept, now);
    if (n > 0)
        log_accept_failed(w, NULL, n);
    glue_log_flush(now);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    glue_worker_t *w = listener->data;
    glue_server_t *srv = w->srv;
    if (err != NULL)
        return;
    for (int i = 0; i < 16; i++) {
        int fd = accept4(w->accept_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED)
                continue;
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)
                pause_accepting(w, e);
            return; /* EAGAIN: nothing more waiting */
        }
        if (atomic_fetch_add_explicit(&srv->nconns, 1, memory_order_relaxed) >=
            max_connections(srv->cfg)) {
            atomic_fetch_sub_explicit(&srv->nconns, 1, memory_order_relaxed);
            refuse_connection(w, fd);
            continue;
        }
        int on = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
        h2o_socket_t *sock =
            h2o_evloop_socket_create(w->ctx.loop, fd, H2O_SOCKET_FLAG_IS_ACCEPTED_CONNECTION);
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = w;
        w->nconns++;
        if (srv->cfg->tls_cert != NULL)
            refresh_tls(w);
        h2o_accept(&w->accept_ctx, sock);
    }
}

static void close_listener(glue_worker_t *w)
{
    if (h2o_timeout_is_linked(&w->accept_resume))
        h2o_timeout_unlink(&w->accept_resume);
    if (w->listener != NULL) {
        h2o_socket_read_stop(w->listener);
        h2o_socket_close(w->listener);
        w->listener = NULL;
    }
}

static void on_ctl(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    glue_worker_t *w = H2O_STRUCT_FROM_MEMBER(glue_worker_t, ctl_rx, receiver);
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    if (w->stopping)
        return;
    w->stopping = true;
    w->stop_deadline_us = am_now_us() + STOP_GRACE_US;
    close_listener(w);
    /* Idle keep-alive connections: let them time out quickly. */
    glue_compat_shorten_idle_timeout(&w->ctx, 200);
    h2o_context_request_shutdown(&w->ctx);
}

/* Sockets in a TLS handshake belong to no connection list yet. */
static bool worker_has_connections(glue_worker_t *w)
{
    return w->nconns > 0 || glue_compat_has_connections(&w->ctx);
}

static bool worker_done(glue_worker_t *w)
{
    if (!w->stopping || w->inflight != 0)
        return false;
    if (!worker_has_connections(w))
        return true;
    return am_now_us() >= w->stop_deadline_us;
}

/* Workers that finished their loop, and the condition they park on. */
static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;

/* Frees what the worker's loop owns. Runs on the worker's thread, after its
 * loop has stopped, and only when no connection is left (disposing a
 * context under a live connection is unsafe). */
static void worker_dispose(glue_worker_t *w)
{
    close_listener(w);
    h2o_timeout_dispose(w->ctx.loop, &w->accept_pause);
    h2o_timeout_dispose(w->ctx.loop, &w->deadline);
    SSL_CTX_free(w->tls);
    w->tls = NULL;
    /* Every message was handled (no call is in flight, the stop request was
     * read), but a sender may still be writing the queue's wake-up byte. */
    while (atomic_load(&w->senders) != 0)
        sched_yield();
    h2o_multithread_unregister_receiver(w->ctx.queue, &w->done_rx);
    h2o_multithread_unregister_receiver(w->ctx.queue, &w->ctl_rx);
    glue_compat_context_dispose(&w->ctx);
    w->disposed = true;
}

/* Creates the worker's loop, context, queue receivers and listener. Runs on
 * the worker's own thread: libh2o keeps its socket-buffer allocator in
 * thread-local storage and every socket remembers the allocator of the thread
 * that created it, so a loop built on another thread would share that
 * thread's free lists with the loop's thread (a data race). */
static void worker_init(glue_worker_t *w)
{
    glue_server_t *srv = w->srv;
    h2o_context_init(&w->ctx, h2o_evloop_create(), &srv->globalconf);
    w->accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = srv->globalconf.hosts;
    h2o_timeout_init(w->ctx.loop, &w->accept_pause, GLUE_ACCEPT_PAUSE_MS);
    w->accept_resume.cb = on_accept_resume;
    h2o_timeout_init(w->ctx.loop, &w->deadline, (uint64_t)deadline_s(srv->cfg) * 1000);
    if (srv->cfg->tls_cert != NULL)
        refresh_tls(w);
    h2o_multithread_register_receiver(w->ctx.queue, &w->done_rx, on_done);
    h2o_multithread_register_receiver(w->ctx.queue, &w->ctl_rx, on_ctl);
    w->listener = h2o_evloop_socket_create(w->ctx.loop, w->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    w->accept_fd = w->listen_fd;
    w->listen_fd = -1;
    w->listener->data = w;
    h2o_socket_read_start(w->listener, on_accept);
}

static void *worker_main(void *arg)
{
    glue_worker_t *w = arg;
    worker_init(w);
    pthread_mutex_lock(&park_lock);
    w->ready = true;
    pthread_cond_broadcast(&park_cond);
    pthread_mutex_unlock(&park_lock);
    while (!worker_done(w)) {
        h2o_evloop_run(w->ctx.loop, 100);
        check_pressure(w);
        flush_summaries(w);
    }
    if (!worker_has_connections(w))
        worker_dispose(w);
    /* The thread stays parked until the process exits: h2o keeps per-thread
     * caches of freed memory that would otherwise be reported as leaks. */
    pthread_mutex_lock(&park_lock);
    w->finished = true;
    pthread_cond_broadcast(&park_cond);
    for (;;)
        pthread_cond_wait(&park_cond, &park_lock);
    return NULL;
}

static int format_addr(char *out, size_t outlen, const struct sockaddr *sa, socklen_t salen)
{
    char host[INET6_ADDRSTRLEN + 1], serv[8];
    if (getnameinfo(sa, salen, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return AM_EIO;
    if (sa->sa_family == AF_INET6)
        snprintf(out, outlen, "[%s]:%s", host, serv);
    else
        snprintf(out, outlen, "%s:%s", host, serv);
    return AM_OK;
}

/* ---- TLS ---------------------------------------------------------------- */

/* TLS 1.2: forward secrecy (ECDHE) and AEAD ciphers only. TLS 1.3 keeps
 * OpenSSL's default suites (all AEAD). */
static const char tls12_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/* OpenSSL's error queue as one line (and cleared). */
static void tls_error(char *err, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char reason[256] = "unknown error";
    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    snprintf(err, errlen, "%s %s: %s", what, file ? file : "", reason);
}

/* "serial 0x1a2b…, expires 2027-12-01T10:00:00Z" of ctx's certificate. */
static void tls_describe(char *out, size_t outlen, SSL_CTX *ctx)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    out[0] = '\0';
    if (x == NULL)
        return;
    char serial[80] = "?";
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    if (hex != NULL)
        snprintf(serial, sizeof(serial), "%s", hex);
    OPENSSL_free(hex);
    BN_free(bn);
    struct tm tm;
    char until[40] = "?";
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
        strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(out, outlen, "serial %s, valid until %s", serial, until);
}

/* A server TLS context for cert and key. Returns NULL with err filled. */
static SSL_CTX *tls_ctx_new(const char *cert, const char *key, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        tls_error(err, errlen, "cannot create a TLS context", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1) {
        tls_error(err, errlen, "cannot set the TLS 1.2 cipher list", NULL);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        tls_error(err, errlen, "cannot load the certificate chain", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        tls_error(err, errlen, "cannot load the private key", key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_error(err, errlen, "the private key does not match the certificate", key);
        goto fail;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int glue_server_reload_tls(glue_server_t *srv)
{
    const glue_config_t *cfg = srv->cfg;
    if (cfg->tls_cert == NULL)
        return AM_OK;
    char err[512];
    SSL_CTX *ctx = tls_ctx_new(cfg->tls_cert, cfg->tls_key, err, sizeof(err));
    if (ctx == NULL) {
        am_log(AM_LOG_ERROR, "tls_reload_failed", "stls_cert", cfg->tls_cert, "stls_key",
               cfg->tls_key, "serror", err, "smessage",
               "kept the certificate in use; new handshakes still get the old one", NULL);
        return AM_EINVAL;
    }
    char desc[160];
    tls_describe(desc, sizeof(desc), ctx);
    pthread_mutex_lock(&srv->tls_lock);
    SSL_CTX *old = srv->tls;
    srv->tls = ctx;
    atomic_fetch_add_explicit(&srv->tls_gen, 1, memory_order_release);
    pthread_mutex_unlock(&srv->tls_lock);
    /* each loop holds its own reference until its next accept */
    SSL_CTX_free(old);
    am_log(AM_LOG_INFO, "tls_reloaded", "stls_cert", cfg->tls_cert, "scertificate", desc, NULL);
    return AM_OK;
}

/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return sa->sa_family == AF_UNIX;
}

static int open_listener(glue_server_t *srv, char *err, size_t errlen)
{
    const glue_config_t *cfg = srv->cfg;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(cfg->host, cfg->port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve listen address '%s': %s", cfg->listen,
                 gai_strerror(gai));
        return AM_EIO;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int on = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen, strerror(saved));
        return AM_EIO;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
        format_addr(srv->listen_name, sizeof(srv->listen_name), (struct sockaddr *)&ss, sl) !=
            AM_OK)
        snprintf(srv->listen_name, sizeof(srv->listen_name), "%s", cfg->listen);
    if (cfg->tls_cert == NULL && !cfg->allow_plain_http && !is_loopback((struct sockaddr *)&ss)) {
        snprintf(err, errlen,
                 "refusing to serve plain HTTP on %s, which is not a loopback address: give "
                 "--tls-cert and --tls-key, or --allow-plain-http (ALERTMAP_ALLOW_PLAIN_HTTP=1) "
                 "when a proxy in front of alertmapd terminates TLS",
                 srv->listen_name);
        close(fd);
        return AM_EINVAL;
    }
    srv->listen_fd = fd;
    return AM_OK;
}

int glue_server_new(glue_server_t **out, const glue_config_t *cfg, char *err, size_t errlen)
{
    *out = NULL;
    glue_server_t *srv = am_xcalloc(1, sizeof(*srv));
    srv->cfg = cfg;
    srv->listen_fd = -1;
    unsigned char rnd[4] = {0};
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        uint32_t t = (uint32_t)am_now_us();
        memcpy(rnd, &t, sizeof(rnd));
    }
    am_hex(srv->id_prefix, rnd, sizeof(rnd));
    pthread_mutex_init(&srv->tls_lock, NULL);
    int rc = open_listener(srv, err, errlen);
    if (rc == AM_OK && cfg->tls_cert != NULL) {
        srv->tls = tls_ctx_new(cfg->tls_cert, cfg->tls_key, err, errlen);
        if (srv->tls == NULL) {
            close(srv->listen_fd);
            rc = AM_EINVAL;
        } else {
            atomic_store(&srv->tls_gen, 1);
        }
    }
    if (rc != AM_OK) {
        pthread_mutex_destroy(&srv->tls_lock);
        free(srv);
        return rc;
    }

    h2o_config_init(&srv->globalconf);
    srv->globalconf_ready = true;
    srv->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("alertmapd"));
    /* The limit itself is checked by the handlers on the body as received
     * (a JSON 413 on a connection that stays usable). libh2o's own limit,
     * which answers 413 and closes the connection while the client may still
     * be sending, only stops bodies far past it from being buffered. */
    srv->globalconf.max_request_entity_size = cfg->max_body + GLUE_BODY_SLACK;
    /* A client has --client-timeout for the handshake and for sending each
     * request's headers and body (libh2o 2.2 closes the connection when
     * it passes, without an answer: docs/operations.md); an idle
     * keep-alive or HTTP/2 connection is closed after as long. */
    uint64_t client_ms = (uint64_t)client_timeout_s(cfg) * 1000;
    srv->globalconf.handshake_timeout = client_ms;
    srv->globalconf.http1.req_timeout = client_ms;
    srv->globalconf.http2.idle_timeout = client_ms;
    h2o_hostconf_t *host =
        h2o_config_register_host(&srv->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    register_routes(srv, host);
    *out = srv;
    return AM_OK;
}

int glue_server_start(glue_server_t *srv, store_t *store)
{
    srv->store = store;
    srv->ready = glue_ready_new(srv->cfg->database_url);
    if (glue_pool_start(srv->cfg) != AM_OK)
        return AM_EIO;
    int n = srv->cfg->threads;
    srv->workers = am_xcalloc((size_t)n, sizeof(*srv->workers));
    for (int i = 0; i < n; i++) {
        glue_worker_t *w = &srv->workers[i];
        w->srv = srv;
        w->id = i;
        w->listen_fd = fcntl(srv->listen_fd, F_DUPFD_CLOEXEC, 0);
        if (w->listen_fd < 0) {
            am_log(AM_LOG_ERROR, "startup_failed", "smessage", "dup of the listening socket failed",
                   "serror", strerror(errno), NULL);
            return AM_EIO;
        }
        int e = i == fail_start_at ? EAGAIN : pthread_create(&w->tid, NULL, worker_main, w);
        if (e != 0) {
            close(w->listen_fd);
            w->listen_fd = -1;
            am_log(AM_LOG_ERROR, "startup_failed", "smessage", "cannot start a thread", "serror",
                   strerror(e), "iworker", (int64_t)i, NULL);
            return AM_EIO;
        }
        w->running = true;
        srv->nworkers = i + 1;
    }
    /* wait until every loop listens */
    pthread_mutex_lock(&park_lock);
    for (int i = 0; i < n; i++)
        while (!srv->workers[i].ready)
            pthread_cond_wait(&park_cond, &park_lock);
    pthread_mutex_unlock(&park_lock);
    /* the workers hold their own descriptors now */
    close(srv->listen_fd);
    srv->listen_fd = -1;
    const glue_config_t *cfg = srv->cfg;
    char desc[160] = "";
    if (srv->tls != NULL)
        tls_describe(desc, sizeof(desc), srv->tls);
    am_log(AM_LOG_INFO, "listening", "slisten", srv->listen_name, "sscheme",
           cfg->tls_cert ? "https" : "http", "scertificate", cfg->tls_cert ? desc : NULL,
           "ithreads", (int64_t)n, "imax_body", (int64_t)cfg->max_body, "imax_connections",
           (int64_t)max_connections(cfg), "irequest_deadline_s", (int64_t)deadline_s(cfg),
           "iclient_timeout_s", (int64_t)client_timeout_s(cfg), NULL);
    if (cfg->tls_cert == NULL && cfg->allow_plain_http)
        am_log(AM_LOG_WARN, "plain_http", "slisten", srv->listen_name, "smessage",
               "serving plain HTTP (--allow-plain-http): keys and payloads cross the network "
               "unencrypted unless a proxy in front terminates TLS",
               NULL);
    return AM_OK;
}

void glue_server_stop(glue_server_t *srv)
{
    if (srv == NULL)
        return;
    /* A worker's stop receiver exists only once its thread has set up its
     * loop: after a start that failed part-way, a thread may still be on
     * its way there. Wait for each started worker to be ready first, and
     * never message one that was not started. */
    pthread_mutex_lock(&park_lock);
    for (int i = 0; i < srv->nworkers; i++)
        while (srv->workers[i].running && !srv->workers[i].ready)
            pthread_cond_wait(&park_cond, &park_lock);
    pthread_mutex_unlock(&park_lock);
    for (int i = 0; i < srv->nworkers; i++) {
        glue_worker_t *w = &srv->workers[i];
        if (w->running && !w->stop_sent) {
            w->stop_sent = true;
            worker_send(w, &w->ctl_rx, &w->ctl_msg);
        }
    }
    pthread_mutex_lock(&park_lock);
    for (int i = 0; i < srv->nworkers; i++)
        while (srv->workers[i].running && !srv->workers[i].finished)
            pthread_cond_wait(&park_cond, &park_lock);
    pthread_mutex_unlock(&park_lock);
    /* no loop runs any more: nobody waits on the checker */
    glue_ready_free(srv->ready);
    srv->ready = NULL;
    /* nor on the engine pool (every job was posted back) */
    glue_pool_stop();
}

/* A server whose loops still had connections at exit; kept reachable on
 * purpose (see glue_server_free). */
static glue_server_t *abandoned;

void glue_server_free(glue_server_t *srv)
{
    if (srv == NULL)
        return;
    for (int i = 0; i < srv->nworkers; i++) {
        glue_worker_t *w = &srv->workers[i];
        if (w->running && !w->disposed) {
            /* a connection outlived the grace period: its memory stays
             * referenced until the process exits */
            abandoned = srv;
            am_log(AM_LOG_WARN, "shutdown_connections_left", "smessage",
                   "connections were still open when the grace period ended", NULL);
            return;
        }
    }
    glue_ready_free(srv->ready);
    free(srv->workers);
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    SSL_CTX_free(srv->tls);
    pthread_mutex_destroy(&srv->tls_lock);
    if (srv->globalconf_ready)
        h2o_config_dispose(&srv->globalconf);
    free(srv);
}
