/* common/lograte.c - at most one log line per interval for a repeated event,
 * carrying the number of events it stands for. See am.h. */
#include "am.h"

#include <stdatomic.h>

void am_lograte_init(am_lograte_t *lr, int64_t interval_us)
{
    atomic_init(&lr->next_us, INT64_MIN);
    atomic_init(&lr->count, 0);
    lr->interval_us = interval_us > 0 ? interval_us : AM_LOGRATE_DEFAULT_US;
}

uint64_t am_lograte_hit(am_lograte_t *lr, int64_t now_us)
{
    /* count first: an event that loses the race below is carried by the
     * line of the thread that wins it, or by the next line */
    atomic_fetch_add_explicit(&lr->count, 1, memory_order_relaxed);
    int64_t next = atomic_load_explicit(&lr->next_us, memory_order_relaxed);
    if (now_us < next)
        return 0;
    if (!atomic_compare_exchange_strong(&lr->next_us, &next, now_us + lr->interval_us))
        return 0;
    return atomic_exchange(&lr->count, 0);
}

uint64_t am_lograte_take(am_lograte_t *lr)
{
    return atomic_exchange(&lr->count, 0);
}
