/* engine/ioc.c - not yet written. */
typedef int eng_ioc_placeholder_t;
