/* engine/fingerprint.c - not yet written. */
typedef int eng_fingerprint_placeholder_t;
