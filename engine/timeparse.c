/* engine/timeparse.c - not yet written. */
typedef int eng_timeparse_placeholder_t;
