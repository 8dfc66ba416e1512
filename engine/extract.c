/* engine/extract.c - not yet written. */
typedef int eng_extract_placeholder_t;
