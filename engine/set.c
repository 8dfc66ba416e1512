/* engine/set.c - not yet written. */
typedef int eng_set_placeholder_t;
