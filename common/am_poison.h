/*
 * common/am_poison.h - makes the unbounded or error-blind libc calls a
 * compile error in every file that includes am.h:
 *   sprintf, vsprintf -> snprintf, vsnprintf, am_buf_printf, am_arena_printf
 *   strcpy, strcat    -> memcpy with a known length, am_buf_*, am_arena_strdup
 *   gets              -> fgets, am_read_file
 *   atoi, atol        -> strtol / strtoll with errno and end checks
 *   strtok            -> memchr / strcspn loops (strtok keeps hidden state)
 *
 * A poisoned name is an error wherever it appears afterwards, declarations
 * in system headers included later too. So am.h includes the headers that
 * declare these functions (stdio.h, stdlib.h, string.h) before this one:
 * their include guards make any later #include of them a no-op.
 */
#ifndef AM_POISON_H
#define AM_POISON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#pragma GCC poison sprintf vsprintf strcpy strcat gets atoi atol strtok
#endif

#endif
