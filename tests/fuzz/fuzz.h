/* tests/fuzz/fuzz.h - the libFuzzer entry point, shared with the replay driver. */
#ifndef ALERTMAP_FUZZ_H
#define ALERTMAP_FUZZ_H

#include <stddef.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
/* Optional clean-up run by the replay driver after the corpus (weak). */
void fuzz_teardown(void) __attribute__((weak));

#endif
