/* engine/compile.c - not yet written. */
typedef int eng_compile_placeholder_t;
