/* engine/path.c - not yet written. */
typedef int eng_path_placeholder_t;
