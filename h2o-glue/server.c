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
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
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
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    h2o_multithread_receiver_t done_rx; /* completed store calls */
    h2o_multithread_receiver_t ctl_rx;  /* stop request */
    h2o_multithread_message_t ctl_msg;
    size_t inflight; /* pending store calls; loop thread only */
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
};

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

/* ---- pending calls ------------------------------------------------------ */

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
    return p;
}

static void pending_free(glue_pending_t *p)
{
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

void glue_pending_post(glue_pending_t *p)
{
    h2o_multithread_send_message(&p->worker->done_rx, &p->msg);
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

static void on_accept(h2o_socket_t *listener, const char *err)
{
    glue_worker_t *w = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i < 16; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        h2o_accept(&w->accept_ctx, sock);
    }
}

static void close_listener(glue_worker_t *w)
{
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

static bool worker_done(glue_worker_t *w)
{
    if (!w->stopping || w->inflight != 0)
        return false;
    if (!glue_compat_has_connections(&w->ctx))
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
    h2o_multithread_register_receiver(w->ctx.queue, &w->done_rx, on_done);
    h2o_multithread_register_receiver(w->ctx.queue, &w->ctl_rx, on_ctl);
    w->listener = h2o_evloop_socket_create(w->ctx.loop, w->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
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
    while (!worker_done(w))
        h2o_evloop_run(w->ctx.loop, 100);
    if (!glue_compat_has_connections(&w->ctx))
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
    int rc = open_listener(srv, err, errlen);
    if (rc != AM_OK) {
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
    am_log(AM_LOG_INFO, "listening", "slisten", srv->listen_name, "ithreads", (int64_t)n,
           "imax_body", (int64_t)srv->cfg->max_body, NULL);
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
            h2o_multithread_send_message(&w->ctl_rx, &w->ctl_msg);
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
    if (srv->globalconf_ready)
        h2o_config_dispose(&srv->globalconf);
    free(srv);
}
