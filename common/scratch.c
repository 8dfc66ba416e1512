/* common/scratch.c - per-thread scratch slabs for short-lived allocator
 * hooks (jansson's tree of a request body); see am.h.
 *
 * A slab is a fixed block a thread hands out from with a bump pointer. Its
 * live count is the number of blocks not freed yet; the owner starts over
 * from the slab's first byte only when that count is 0 at the start of a
 * scope, so a block that outlives its scope (a reference kept somewhere,
 * freed later on another thread) is never handed out twice: the slab then
 * waits, and the scope's allocations go to the heap. Slabs are listed in a
 * registry so that am_scratch_free() tells their blocks from heap blocks by
 * address; a thread's slab returns to the registry when the thread exits
 * and another thread adopts it. With -Darena_debug and under
 * AddressSanitizer every block is the heap's (ASan sees each one). */
#include "am.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

/* AddressSanitizer checks heap blocks only: under it, as with
 * -Darena_debug, every block is the heap's. */
#if defined(__SANITIZE_ADDRESS__)
#define SCRATCH_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SCRATCH_OFF 1
#endif
#endif
#if defined(AM_ARENA_DEBUG) && !defined(SCRATCH_OFF)
#define SCRATCH_OFF 1
#endif

#define SLAB_SIZE  (64 * 1024)
#define MAX_SLABS  64
#define SLAB_ALIGN 16

/* The blocks alive are allocs - own_frees - other_frees: counted apart so
 * that the owner, which allocates and frees nearly all of them, pays no
 * atomic operation. */
typedef struct slab {
    uintptr_t base;            /* set once, before the slab is published */
    size_t used;               /* owner thread only */
    size_t allocs, own_frees;  /* owner thread only */
    atomic_size_t other_frees; /* blocks freed by other threads */
    atomic_bool owned;         /* a thread uses it */
} slab_t;

static slab_t slabs[MAX_SLABS];
static atomic_size_t nslabs; /* published entries of slabs[] */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static _Thread_local slab_t *mine;
static _Thread_local bool tried; /* no slab to be had: do not ask again */
static _Thread_local bool active;

static void on_thread_exit(void *p)
{
    atomic_store_explicit(&((slab_t *)p)->owned, false, memory_order_release);
}

static void make_key(void)
{
    if (pthread_key_create(&exit_key, on_thread_exit) != 0)
        exit_key = (pthread_key_t)-1;
}

/* The calling thread's slab: an unowned one of the registry, else a new
 * one; NULL when the registry is full. */
static slab_t *adopt(void)
{
    pthread_once(&exit_once, make_key);
    if (exit_key == (pthread_key_t)-1)
        return NULL;
    slab_t *s = NULL;
    size_t n = atomic_load_explicit(&nslabs, memory_order_acquire);
    for (size_t i = 0; i < n && s == NULL; i++) {
        bool no = false;
        if (atomic_compare_exchange_strong(&slabs[i].owned, &no, true))
            s = &slabs[i];
    }
    if (s == NULL) {
        pthread_mutex_lock(&reg_mu);
        n = atomic_load_explicit(&nslabs, memory_order_relaxed);
        if (n < MAX_SLABS) {
            s = &slabs[n];
            s->base = (uintptr_t)am_xmalloc(SLAB_SIZE);
            s->used = 0;
            s->allocs = s->own_frees = 0;
            atomic_store_explicit(&s->other_frees, 0, memory_order_relaxed);
            atomic_store_explicit(&s->owned, true, memory_order_relaxed);
            atomic_store_explicit(&nslabs, n + 1, memory_order_release);
        }
        pthread_mutex_unlock(&reg_mu);
    }
    if (s != NULL && pthread_setspecific(exit_key, s) != 0) {
        atomic_store_explicit(&s->owned, false, memory_order_release);
        s = NULL;
    }
    return s;
}

/* Whether no block of s is alive (s's owner only). */
static bool idle(const slab_t *s)
{
    return s->allocs == s->own_frees + atomic_load_explicit(&s->other_frees, memory_order_acquire);
}

bool am_scratch_begin(void)
{
    bool was = active;
#ifndef SCRATCH_OFF
    active = true;
    if (mine != NULL && idle(mine))
        mine->used = 0;
#endif
    return was;
}

void am_scratch_end(bool was)
{
    active = was;
}

void *am_scratch_malloc(size_t n)
{
    if (active) {
        if (mine == NULL && !tried) {
            tried = true;
            mine = adopt();
            if (mine != NULL && idle(mine))
                mine->used = 0;
        }
        slab_t *s = mine;
        size_t need = n == 0 ? SLAB_ALIGN : (n + SLAB_ALIGN - 1) & ~(size_t)(SLAB_ALIGN - 1);
        if (s != NULL && n <= SLAB_SIZE && need <= SLAB_SIZE - s->used) {
            void *p = (void *)(s->base + s->used);
            s->used += need;
            s->allocs++;
            return p;
        }
    }
    return am_xmalloc(n);
}

void am_scratch_free(void *p)
{
    if (p == NULL)
        return;
    uintptr_t a = (uintptr_t)p;
    size_t n = atomic_load_explicit(&nslabs, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        slab_t *s = &slabs[i];
        if (a >= s->base && a - s->base < SLAB_SIZE) {
            if (s == mine)
                s->own_frees++;
            else
                atomic_fetch_add_explicit(&s->other_frees, 1, memory_order_release);
            return;
        }
    }
    free(p);
}
