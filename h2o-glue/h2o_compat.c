/*
 * h2o-glue/h2o_compat.c - what alertmapd needs from libh2o's internals
 * (see h2o_compat.h for the versions). Each function says which private
 * member or release behaviour it depends on.
 */
#include "h2o_compat.h"

#include <stdlib.h>

/* libh2o 2.2 keeps a context's HTTP/1 and HTTP/2 connections in the
 * private lists ctx->http1._conns and ctx->http2._conns; there is no public
 * count. */
bool glue_compat_has_connections(h2o_context_t *ctx)
{
    return !h2o_linklist_is_empty(&ctx->http1._conns) || !h2o_linklist_is_empty(&ctx->http2._conns);
}

/* libh2o 2.2: an idle keep-alive connection waits on the context's
 * http1.req_timeout (an h2o_timeout_t, replaced by h2o_timer_t in 2.3);
 * entries already waiting fire by the new value at the next run. */
void glue_compat_shorten_idle_timeout(h2o_context_t *ctx, uint64_t ms)
{
    ctx->http1.req_timeout.timeout = ms;
}

/* libh2o 2.2: the TLS handshake, HTTP/1 request and HTTP/2 idle timers
 * are h2o_timeout_t lists of the context with one duration each; entries
 * already waiting fire by the new value at the next run. */
void glue_compat_set_client_timeouts(h2o_context_t *ctx, uint64_t ms)
{
    ctx->handshake_timeout.timeout = ms;
    ctx->http1.req_timeout.timeout = ms;
    ctx->http2.idle_timeout.timeout = ms;
}

/* libh2o 2.2.5:
 * - h2o_context_request_shutdown() arms the private HTTP/2 graceful-shutdown
 *   timer even when there is no HTTP/2 connection; h2o_context_dispose()
 *   does not unlink it, and the disposed timeout list would still hold it.
 * - h2o_context_dispose() calls h2o_multithread_destroy_queue(), which in
 *   2.2.x closes the queue's socket but does not free the queue itself
 *   (later releases do: freeing it there would be a double free).
 * - the sockets closed above are released by the loop's next run, so the
 *   loop runs once more before it is destroyed. */
void glue_compat_context_dispose(h2o_context_t *ctx)
{
    if (h2o_timeout_is_linked(&ctx->http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&ctx->http2._graceful_shutdown_timeout);
    h2o_loop_t *loop = ctx->loop;
    h2o_multithread_queue_t *queue = ctx->queue;
    h2o_context_dispose(ctx);
#if H2O_VERSION_MAJOR == 2 && H2O_VERSION_MINOR == 2
    free(queue);
#else
    (void)queue;
#endif
    h2o_evloop_run(loop, 0);
    h2o_evloop_destroy(loop);
}
