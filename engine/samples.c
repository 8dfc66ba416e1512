/* engine/samples.c - not yet written. */
typedef int eng_samples_placeholder_t;
