/* engine/signature.c - not yet written. */
typedef int eng_signature_placeholder_t;
