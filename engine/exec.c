/* engine/exec.c - not yet written. */
typedef int eng_exec_placeholder_t;
