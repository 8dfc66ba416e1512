/*
 * tests/fuzz/replay.c - runs a fuzz target over every file of a corpus
 * directory as an ordinary test, so saved crashers stay fixed. Usage:
 *   replay DIR...
 * Exit 0 when every input ran; a crash aborts the process (the test fails).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "am.h"
#include "fuzz.h"

int main(int argc, char **argv)
{
    size_t ran = 0;
    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        if (d == NULL) {
            fprintf(stderr, "replay: cannot open %s\n", argv[i]);
            return 1;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
            char *data;
            size_t len;
            if (am_read_file(&data, &len, path, 1 << 20) != 0) {
                fprintf(stderr, "replay: cannot read %s\n", path);
                closedir(d);
                return 1;
            }
            LLVMFuzzerTestOneInput((const unsigned char *)data, len);
            free(data);
            ran++;
        }
        closedir(d);
    }
    if (fuzz_teardown)
        fuzz_teardown();
    printf("replayed %zu inputs\n", ran);
    return ran > 0 ? 0 : 1;
}
