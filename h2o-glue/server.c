/*
 * h2o-glue/server.c - listeners, one h2o event loop per thread, dispatch,
 * and the hand-back of store completions to the loop that owns a request.
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
    bool running;  /* thread started */
    bool finished; /* loop ended (guarded by park_lock) */
    bool disposed; /* the loop's resources were freed */
    bool ready;    /* the loop is set up and listening (guarded by park_lock) */
    int listen_fd; /* this loop's dup of the listening socket, until used */
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
};

typedef struct glue_handler {
    h2o_handler_t super;
    glue_server_t *srv;
} glue_handler_t;

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

/* ---- pending store calls ------------------------------------------------ */

glue_pending_t *glue_pending_new(glue_reqctx_t *rc, int kind)
{
    glue_pending_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->worker = rc->worker;
    p->rc = rc;
    p->kind = kind;
    rc->pending = p;
    rc->worker->inflight++;
    return p;
}

static void pending_free(glue_pending_t *p)
{
    free(p->outcomes);
    free(p->body);
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

void glue_pending_complete(glue_pending_t *p)
{
    glue_reqctx_t *rc = p->rc;
    if (rc == NULL) {
        am_log(AM_LOG_INFO, "client_gone", "smessage",
               "the client closed the connection before the answer was ready", NULL);
        return;
    }
    rc->pending = NULL;
    p->rc = NULL;
    if (p->kind == GLUE_PENDING_INGEST) {
        if (p->status == STORE_REJECTED) {
            /* the database refused this payload's data; a retry fails too */
            glue_send_error(rc, 422, "INVALID_PAYLOAD",
                            p->message[0] ? p->message : "the database refused the payload");
            return;
        }
        if (p->status != STORE_OK || p->nalerts == 0) {
            if (p->message[0])
                am_log(AM_LOG_WARN, "store_failed", "srequest_id", rc->request_id, "smessage",
                       p->message, NULL);
            glue_send_error(rc, 503, "DATABASE_UNAVAILABLE",
                            "the database is unavailable; nothing was stored, retry later");
            return;
        }
        json_t *v = glue_ingest_json(p->outcomes, p->nalerts, p->with_list);
        glue_log_request(rc, v ? 202 : 500, p->outcomes[0].uuid, NULL);
        glue_send_value(rc, 202, v);
        return;
    }
    if (p->body == NULL) {
        glue_send_error(rc, 500, "INTERNAL", "out of memory");
        return;
    }
    glue_log_request(rc, p->http_status, NULL, NULL);
    glue_send_json(rc, p->http_status, p->body, strlen(p->body));
}

static void on_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    glue_worker_t *w = H2O_STRUCT_FROM_MEMBER(glue_worker_t, done_rx, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        glue_pending_t *p = H2O_STRUCT_FROM_MEMBER(glue_pending_t, msg, m);
        glue_pending_complete(p);
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

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    glue_handler_t *h = (glue_handler_t *)self;
    glue_worker_t *w = H2O_STRUCT_FROM_MEMBER(glue_worker_t, ctx, req->conn->ctx);
    glue_reqctx_t *rc = h2o_mem_alloc_shared(&req->pool, sizeof(*rc), reqctx_dispose);
    memset(rc, 0, sizeof(*rc));
    rc->req = req;
    rc->srv = h->srv;
    rc->worker = w;
    rc->started_us = am_now_us();
    set_request_id(rc);
    rc->arena = am_arena_new(16384, 0);
    if (rc->arena == NULL) {
        glue_send_error(rc, 500, "INTERNAL", "out of memory");
        return 0;
    }

    glue_route_t r;
    if (!glue_route_match(&r, req->path_normalized.base, req->path_normalized.len)) {
        glue_send_error(rc, 404, "NOT_FOUND", "no such endpoint");
        return 0;
    }
    rc->route = r.kind;
    if (!glue_route_allows(r.kind, req->method.base, req->method.len)) {
        const char *allow = glue_route_allow_header(r.kind);
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
    switch (r.kind) {
    case GLUE_R_HEALTHZ: {
        static const char ok[] = "{\"status\":\"ok\"}";
        glue_log_request(rc, 200, NULL, NULL);
        glue_send_json(rc, 200, ok, sizeof(ok) - 1);
        break;
    }
    case GLUE_R_INGEST:
        glue_handle_ingest(rc, r.arg, r.arg_len, false);
        break;
    case GLUE_R_SOURCE_TEST:
        glue_handle_ingest(rc, r.arg, r.arg_len, true);
        break;
    case GLUE_R_SOURCES:
        glue_handle_sources(rc);
        break;
    case GLUE_R_ALERTS:
        glue_handle_alerts(rc);
        break;
    case GLUE_R_ALERT:
        glue_handle_alert(rc, r.arg, r.arg_len);
        break;
    case GLUE_R_METRICS:
        glue_handle_metrics(rc);
        break;
    case GLUE_R_NONE:
        break;
    }
    return 0;
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
    w->ctx.http1.req_timeout.timeout = 200;
    h2o_context_request_shutdown(&w->ctx);
}

static bool worker_done(glue_worker_t *w)
{
    if (!w->stopping || w->inflight != 0)
        return false;
    if (h2o_linklist_is_empty(&w->ctx.http1._conns))
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
    /* h2o_context_request_shutdown() arms the HTTP/2 graceful-shutdown
     * timer even without HTTP/2 connections */
    if (h2o_timeout_is_linked(&w->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&w->ctx.http2._graceful_shutdown_timeout);
    h2o_loop_t *loop = w->ctx.loop;
    h2o_multithread_queue_t *queue = w->ctx.queue;
    h2o_context_dispose(&w->ctx);
    /* libh2o-evloop 2.2.5: h2o_context_dispose() destroys the queue but
     * does not free its struct (the sanitizer build checks this) */
    free(queue);
    /* let the loop release the sockets closed above */
    h2o_evloop_run(loop, 0);
    h2o_evloop_destroy(loop);
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
    if (h2o_linklist_is_empty(&w->ctx.http1._conns))
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
    glue_server_t *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        snprintf(err, errlen, "out of memory");
        return AM_ENOMEM;
    }
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
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    glue_handler_t *h = (glue_handler_t *)h2o_create_handler(path, sizeof(*h));
    h->super.on_req = on_req;
    h->srv = srv;
    glue_install_filters(path);
    glue_install_filters(&host->fallback_path);
    *out = srv;
    return AM_OK;
}

int glue_server_start(glue_server_t *srv, store_t *store)
{
    srv->store = store;
    int n = srv->cfg->threads;
    srv->workers = calloc((size_t)n, sizeof(*srv->workers));
    if (srv->workers == NULL)
        return AM_ENOMEM;
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
        int e = pthread_create(&w->tid, NULL, worker_main, w);
        if (e != 0) {
            close(w->listen_fd);
            am_log(AM_LOG_ERROR, "startup_failed", "smessage", "cannot start a thread", "serror",
                   strerror(e), NULL);
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
    for (int i = 0; i < srv->nworkers; i++)
        if (srv->workers[i].running)
            h2o_multithread_send_message(&srv->workers[i].ctl_rx, &srv->workers[i].ctl_msg);
    pthread_mutex_lock(&park_lock);
    for (int i = 0; i < srv->nworkers; i++)
        while (srv->workers[i].running && !srv->workers[i].finished)
            pthread_cond_wait(&park_cond, &park_lock);
    pthread_mutex_unlock(&park_lock);
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
    free(srv->workers);
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    if (srv->globalconf_ready)
        h2o_config_dispose(&srv->globalconf);
    free(srv);
}
