/*
 * tests/fuzz/fuzz_compile.c - fuzz target for the mapping compiler: the input
 * is the text of one mapping file. Whatever the bytes, compiling must end
 * with a set or with diagnostics, never a crash or a leak.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eng.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static char rules[4096];
    if (rules[0] == '\0') {
        const char *root = getenv("ALERTMAP_SOURCE_ROOT");
        snprintf(rules, sizeof(rules), "%s/mappings/rules/indicators.yaml", root ? root : ".");
    }
    char path[] = "/tmp/alertmap-fuzz-XXXXXX.yaml";
    int fd = mkstemps(path, 5);
    if (fd < 0)
        return 0;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    close(fd);

    const char *paths[] = {path};
    eng_load_options_t opt = {.rules_file = rules};
    am_diags_t diags;
    am_diags_init(&diags);
    eng_set_t *set = NULL;
    int rc = eng_set_load_files(&set, paths, 1, &opt, &diags);
    if (rc == 0 && set == NULL)
        abort(); /* success must yield a set */
    if (rc != 0 && diags.count == 0 && rc != AM_ENOMEM)
        abort(); /* a failure must say why */
    eng_set_unref(set);
    am_diags_dispose(&diags);
    unlink(path);
    return 0;
}
