/*
 * common/am.h - the small shared layer of alertmap: arena allocator,
 * diagnostics (file:line:col messages), bounded string buffer and JSON-lines
 * logging. libc only; every other folder may include this header.
 */
#ifndef AM_H
#define AM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define AM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define AM_PRINTF(f, a)
#endif

#define AM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Error codes shared by all folders: 0 is success, failures are negative. */
enum {
    AM_OK = 0,
    AM_EINVAL = -2, /* bad input */
    AM_ELIMIT = -3, /* a bound (size, depth, count) was exceeded */
    AM_EIO = -4,    /* file or socket error */
    AM_ENOTFOUND = -5,
    AM_EAUTH = -6,   /* signature or token rejected */
    AM_EUNAVAIL = -7 /* dependency (database) unavailable */
};

/* ---- heap ------------------------------------------------------------- */

/*
 * Out of memory on the heap is not an error that alertmap reports: like
 * libh2o, it writes one line to stderr and aborts. These wrappers never
 * return NULL (a size of 0 allocates 1 byte). Thread-safe.
 */
#if defined(__GNUC__)
#define AM_NORETURN __attribute__((noreturn))
#else
#define AM_NORETURN
#endif
AM_NORETURN void am_oom(size_t n);
void *am_xmalloc(size_t n);
void *am_xcalloc(size_t count, size_t size);
void *am_xrealloc(void *p, size_t n);
char *am_xstrdup(const char *s);
char *am_xstrndup(const char *s, size_t n);

/* ---- scratch slabs ---------------------------------------------------- */

/*
 * An allocator pair for a library's hooks (alertmapd gives it to jansson):
 * inside a scope (am_scratch_begin() .. am_scratch_end()) on a thread,
 * am_scratch_malloc() hands out blocks from that thread's slab, a fixed
 * 64 KiB block reused from its start once every block of it is freed; past
 * the slab, outside a scope, with -Darena_debug or AddressSanitizer, and for
 * a thread that found no slab (64 at most), it is am_xmalloc(). am_scratch_free() takes a block
 * of either kind, on any thread, and NULL. A scope is for values that die
 * soon (a parsed request body): a block still alive at the next scope keeps
 * its slab from being reused (correct, only slower). Never NULL; thread-safe.
 * begin returns the previous state for end, so scopes nest.
 */
void *am_scratch_malloc(size_t n);
void am_scratch_free(void *p);
bool am_scratch_begin(void);
void am_scratch_end(bool was);

/* ---- arena ------------------------------------------------------------ */

/*
 * A bump allocator. Memory comes from chunks that are released together by
 * am_arena_reset() or am_arena_free(); nothing is freed piece by piece.
 * An arena has a hard cap (bytes handed out); past it allocation returns NULL.
 * NULL therefore always means "over the cap" (a request over a limit, to be
 * answered LIMIT_EXCEEDED): heap exhaustion aborts (am_oom).
 * Not thread-safe: one arena belongs to one request / one thread at a time.
 */
typedef struct am_arena am_arena_t;

/* New arena whose chunks are at least chunk_size bytes and which hands out at
 * most cap bytes in total (0 = 64 MiB). Never returns NULL. */
am_arena_t *am_arena_new(size_t chunk_size, size_t cap);
/* Releases every chunk. am_arena_free(NULL) is a no-op. */
void am_arena_free(am_arena_t *a);
/* Forgets all allocations but keeps the first chunk for reuse (in the debug
 * mode every allocation is freed). */
void am_arena_reset(am_arena_t *a);
/* Aligned (16 bytes) allocation of n bytes (n == 0 counts as 1); NULL when
 * the rounded size would pass the cap, whatever n is (no size wraps, SIZE_MAX
 * included). Built with -Darena_debug=true (AM_ARENA_DEBUG), every allocation
 * is its own malloc of exactly n bytes so that AddressSanitizer sees each
 * one; the cap and am_arena_used() count the same bytes in both modes. */
void *am_arena_alloc(am_arena_t *a, size_t n);
/* Zeroed allocation; NULL also when count * size overflows. */
void *am_arena_calloc(am_arena_t *a, size_t count, size_t size);
/* Copies of strings into the arena (and printf output), always
 * NUL-terminated; NULL when over the cap. NULL in, NULL out. */
char *am_arena_strdup(am_arena_t *a, const char *s);
char *am_arena_strndup(am_arena_t *a, const char *s, size_t n);
char *am_arena_printf(am_arena_t *a, const char *fmt, ...) AM_PRINTF(2, 3);
/* Room for one more element in an arena array of n elements of elem bytes
 * with capacity *cap: returns arr itself while n < *cap, else a new array of
 * twice the capacity (at least 8) holding the first n elements, and updates
 * *cap. The old array is left to the arena. NULL when over the cap (or the
 * doubled size cannot be represented). */
void *am_arena_grow(am_arena_t *a, void *arr, size_t n, size_t *cap, size_t elem);
/* Bytes handed out so far. */
size_t am_arena_used(const am_arena_t *a);

/* ---- growable buffer (heap) ----------------------------------------- */

/* A NUL-terminated growable byte buffer on the heap, bounded by max (0 = no
 * bound). After an append that would take the content past max the buffer
 * is marked failed and further appends are ignored (heap exhaustion aborts);
 * check am_buf_ok() once at the end. The appends return nothing for that
 * reason.
 * data is NULL until the first append. The buffer owns data until
 * am_buf_dispose() or am_buf_steal(). Not thread-safe (one owner). */
typedef struct am_buf {
    char *data;
    size_t len, cap, max;
    bool failed;
} am_buf_t;

/* Empty buffer bounded by max bytes of content (0 = no bound). Cannot fail. */
void am_buf_init(am_buf_t *b, size_t max);
/* Frees the content; b is empty (and usable after am_buf_init) afterwards. */
void am_buf_dispose(am_buf_t *b);
/* Append n bytes of p / the string s / one char / printf output. */
void am_buf_append(am_buf_t *b, const void *p, size_t n);
/* Room for n more bytes (and the NUL after them) at b->data + b->len, for a
 * caller that writes them in place and then sets b->len (and the NUL) itself.
 * NULL, and b failed, when n more bytes would pass the bound. */
char *am_buf_reserve(am_buf_t *b, size_t n);
void am_buf_puts(am_buf_t *b, const char *s);
void am_buf_putc(am_buf_t *b, char c);
void am_buf_printf(am_buf_t *b, const char *fmt, ...) AM_PRINTF(2, 3);
/* False once an append has failed. */
static inline bool am_buf_ok(const am_buf_t *b)
{
    return !b->failed;
}
/* Appends s[0..n) as a quoted JSON string: '"', '\\' and control bytes are
 * escaped (\n \r \t, others \u00XX; a NUL byte inside becomes \u0000),
 * every other byte is copied as it is (the caller supplies valid UTF-8).
 * s need not be NUL-terminated; s may be NULL when n is 0. */
void am_buf_json_string(am_buf_t *b, const char *s, size_t n);
/* Length of the valid UTF-8 sequence at s[0..n) (1 to 4; n >= 1), or 0 when
 * the bytes there are not one (overlong forms, surrogates and values past
 * U+10FFFF included): what jansson accepts. */
size_t am_utf8_seq(const unsigned char *s, size_t n);
/* Takes the heap string out of the buffer (caller frees); the buffer is empty
 * afterwards. Returns NULL if the buffer had failed. */
char *am_buf_steal(am_buf_t *b);

/* ---- diagnostics --------------------------------------------------- */

typedef struct am_diag {
    char *file;
    int line, col; /* 1-based; 0 when unknown */
    char *msg;
} am_diag_t;

/* An ordered list of diagnostics, owned by the list (heap): every string of
 * every item belongs to the list. Not thread-safe (one owner). */
typedef struct am_diags {
    am_diag_t *items;
    size_t count, cap;
} am_diags_t;

/* Empty list; cannot fail. */
void am_diags_init(am_diags_t *d);
/* Frees every item; the list is empty (and usable) afterwards. */
void am_diags_dispose(am_diags_t *d);
/* Appends "file:line:col: msg". Cannot fail (heap exhaustion aborts). */
void am_diags_add(am_diags_t *d, const char *file, int line, int col, const char *fmt, ...)
    AM_PRINTF(5, 6);
/* The same with a va_list (consumed). */
void am_diags_vadd(am_diags_t *d, const char *file, int line, int col, const char *fmt, va_list ap)
    AM_PRINTF(5, 0);
/* Prints each diagnostic as "file:line:col: msg\n". */
void am_diags_print(const am_diags_t *d, FILE *out);
/* Sorts by file, line, column (stable for equal positions). */
void am_diags_sort(am_diags_t *d);

/* ---- misc ------------------------------------------------------------ */

/* All of these are reentrant. */

/* Reads a whole file into a heap buffer (NUL-terminated, *len excludes the
 * NUL). Returns 0, AM_EIO (errno kept) or AM_ELIMIT when over max bytes. */
int am_read_file(char **out, size_t *len, const char *path, size_t max);
/* Microseconds since the epoch (CLOCK_REALTIME). */
int64_t am_now_us(void);
/* Formats t (µs since epoch, UTC) as RFC 3339 with 'Z', e.g.
 * 2024-05-01T10:00:00Z, adding .ffffff only when there is a fraction.
 * buf needs 32 bytes. */
void am_format_time(char buf[32], int64_t t_us);
/* Proleptic Gregorian calendar, no time zone: the number of days of month m
 * (1-12) of year y, and the days since 1970-01-01 of the date y-m-d
 * (negative before 1970; any year, m 1-12, d 1-31 — callers check the day
 * against am_days_in_month first). Pure functions. */
int am_days_in_month(int64_t y, int m);
int64_t am_days_from_civil(int64_t y, int m, int d);
/* Lowercase hex of n bytes into out (2n+1 bytes). */
void am_hex(char *out, const unsigned char *p, size_t n);
/* Value (0-15) of the hex digit c in either case; -1 for any other char. */
int am_hex_value(char c);
/* Constant-time comparison of two byte strings (length leaks, content does not). */
bool am_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* ---- logging: one JSON object per line on stderr --------------------- */

typedef enum { AM_LOG_DEBUG, AM_LOG_INFO, AM_LOG_WARN, AM_LOG_ERROR } am_log_level_t;
/* Lines below min are dropped (default AM_LOG_INFO). Set it at start-up,
 * before other threads log: the level is a plain variable. */
void am_log_set_level(am_log_level_t min);
/* Writes {"time":"…","level":"info","event":EVENT, k1:v1, ...} to stderr.
 * The variadic list holds pairs: const char *key, then a value whose type is
 * given by the key's first character: 's' string(const char*; NULL omitted),
 * 'i' int64_t, 'd' double; the key itself is written without that prefix.
 * End the list with NULL. Example:
 *   am_log(AM_LOG_INFO, "request", "srequest_id", id, "istatus", (int64_t)202, NULL);
 * Thread-safe: a line is written with one write(2). Cannot fail visibly: a
 * line over 64 KiB is dropped. */
void am_log(am_log_level_t level, const char *event, ...);

/* ---- default paths (paths.c) ------------------------------------------ */

typedef enum {
    AM_PATH_MAPPINGS,          /* the mappings directory a program reads by default */
    AM_PATH_SHIPPED_MAPPINGS,  /* DATADIR/alertmap/mappings (installed), whether or not it exists */
    AM_PATH_OPERATOR_MAPPINGS, /* SYSCONFDIR/alertmap/mappings, whether or not it exists */
    AM_PATH_SQL                /* the SQL migrations */
} am_path_kind_t;
/* True when this program's executable lies inside the build tree it was
 * built in (then the defaults are in the source tree). */
bool am_running_from_build_tree(void);
/* The default location of kind, a static string. Run from the build tree:
 * the source tree (SOURCE/mappings, SOURCE/schemas/sql). Installed:
 * DATADIR/alertmap/schemas/sql; for AM_PATH_MAPPINGS the operator's
 * SYSCONFDIR/alertmap/mappings when that directory exists (it replaces the
 * shipped one), else DATADIR/alertmap/mappings. When origin is not NULL it
 * gets a static phrase saying why this location was chosen, for the
 * start-up log. Reads /proc/self/exe and stats one directory; cannot fail. */
const char *am_default_path(am_path_kind_t kind, const char **origin);

/* Tells the service manager the state ("READY=1", "STOPPING=1") through
 * $NOTIFY_SOCKET, as sd_notify(3) does; nothing when the variable is unset.
 * A failure is logged (event notify_failed), never returned. (sdnotify.c) */
void am_sd_notify(const char *state);

/* ---- rate-limited logging (lograte.c) ---------------------------------- */

/*
 * A repeated event (a failed accept, a database outage answered with 503s)
 * logged at most once per interval, the line carrying how many events it
 * stands for:
 *
 *   static am_lograte_t lr = AM_LOGRATE_INIT(0);   // or am_lograte_init()
 *   uint64_t n = am_lograte_hit(&lr, am_now_us());
 *   if (n > 0)
 *       am_log(AM_LOG_WARN, "accept_failed", "icount", (int64_t)n, NULL);
 *
 * The first event of an interval gets n >= 1: itself plus the events that
 * were suppressed since the previous line; the others get 0. Events after
 * the last line are reported by the next one, or by am_lograte_take() (e.g.
 * at shutdown). Thread-safe (lock-free atomics); no allocation.
 */
#define AM_LOGRATE_DEFAULT_US ((int64_t)1000000)
typedef struct am_lograte {
    _Atomic int64_t next_us; /* first time the next line may be written */
    _Atomic uint64_t count;  /* events not yet reported */
    int64_t interval_us;
} am_lograte_t;
#define AM_LOGRATE_INIT(interval_us)                                                               \
    {                                                                                              \
        INT64_MIN, 0, (interval_us) > 0 ? (interval_us) : AM_LOGRATE_DEFAULT_US                    \
    }
/* interval_us <= 0 means AM_LOGRATE_DEFAULT_US (one second). */
void am_lograte_init(am_lograte_t *lr, int64_t interval_us);
/* Counts one event at now_us; returns 0 (do not log) or the number of
 * events the line to write now stands for. */
uint64_t am_lograte_hit(am_lograte_t *lr, int64_t now_us);
/* The events counted but not reported yet (and resets the count). */
uint64_t am_lograte_take(am_lograte_t *lr);

/* Last: banned libc calls become compile errors from here on. */
#include "am_poison.h"

#endif
