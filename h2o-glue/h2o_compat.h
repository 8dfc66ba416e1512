/*
 * h2o-glue/h2o_compat.h - the few things alertmapd does that libh2o's
 * public API does not cover, behind functions of their own.
 *
 * Everything here reads or writes a private member of libh2o (a name with a
 * leading underscore) or works around a behaviour of one libh2o release; no
 * other file of h2o-glue/ does. Supported: libh2o 2.2.x from 2.2.5 on
 * (library version 0.13.5, what pkg-config reports for libh2o-evloop).
 * Another release fails to compile here until h2o_compat.c is checked
 * against it: the internals changed in 2.3 (timers, the connection lists,
 * h2o_multithread_destroy_queue() frees the queue itself).
 */
#ifndef GLUE_H2O_COMPAT_H
#define GLUE_H2O_COMPAT_H

#include <h2o.h>
#include <h2o/version.h>
#include <stdbool.h>
#include <stdint.h>

#if H2O_VERSION_MAJOR != 2 || H2O_VERSION_MINOR != 2 || H2O_VERSION_PATCH < 5
#error "h2o-glue/h2o_compat.c supports libh2o 2.2.5 and later 2.2.x releases only"
#endif

/* Whether the context still has HTTP/1 or HTTP/2 connections (idle
 * keep-alive ones included). Loop thread only. */
bool glue_compat_has_connections(h2o_context_t *ctx);

/* Lets idle keep-alive connections of a stopping context time out after
 * ms milliseconds instead of the configured request timeout. Loop thread. */
void glue_compat_shorten_idle_timeout(h2o_context_t *ctx, uint64_t ms);

/* Sets the context's TLS handshake timeout, HTTP/1 request (and idle
 * keep-alive) timeout and HTTP/2 idle timeout to ms milliseconds, for the
 * connections already waiting too. Loop thread. */
void glue_compat_set_client_timeouts(h2o_context_t *ctx, uint64_t ms);

/* Disposes of a context whose connections are all gone, its message queue
 * and then its loop (h2o_context_dispose() leaves both to the caller).
 * The receivers of the queue must be unregistered first. Loop thread. */
void glue_compat_context_dispose(h2o_context_t *ctx);

#endif
