/* storage/store.c - not yet written. */
typedef int store_placeholder_t;
