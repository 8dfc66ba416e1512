/*
 * tests/engine/golden/run_golden.c - golden compile-error cases.
 *
 * Usage: run_golden CASES_DIR RULES_FILE
 * Every sub-folder of CASES_DIR is one case: its *.yaml files are compiled
 * together (from inside the folder, so diagnostics name the files as
 * written) and the printed diagnostics must equal expected.txt byte for
 * byte. With ALERTMAP_GOLDEN_PRINT=1 the actual output is printed instead
 * of compared (to write a new case).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eng.h"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the entries of dir accepted by keep(), sorted. */
static size_t list(char ***out, const char *dir, int (*keep)(const char *dir, const char *name))
{
    DIR *d = opendir(dir);
    char **v = NULL;
    size_t n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !keep(dir, e->d_name))
            continue;
        v = realloc(v, (n + 1) * sizeof(*v));
        v[n++] = strdup(e->d_name);
    }
    if (d != NULL)
        closedir(d);
    if (n > 0)
        qsort(v, n, sizeof(*v), cmp_str);
    *out = v;
    return n;
}

static int is_case(const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    DIR *d = opendir(p);
    if (d == NULL)
        return 0;
    closedir(d);
    return 1;
}

static int is_yaml(const char *dir, const char *name)
{
    (void)dir;
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, ".yaml") == 0;
}

static char *actual_output(char **files, size_t n, const char *rules)
{
    am_diags_t d;
    am_diags_init(&d);
    eng_set_t *set = NULL;
    eng_load_options_t opt = {.rules_file = rules};
    int rc = eng_set_load_files(&set, (const char *const *)files, n, &opt, &d);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    am_diags_print(&d, f);
    if (rc == 0)
        fprintf(f, "(compiled without errors)\n");
    fclose(f);
    eng_set_unref(set);
    am_diags_dispose(&d);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: run_golden CASES_DIR RULES_FILE\n");
        return 2;
    }
    bool print = getenv("ALERTMAP_GOLDEN_PRINT") != NULL;
    char **cases;
    size_t ncases = list(&cases, argv[1], is_case);
    int failed = 0, home = open(".", O_RDONLY | O_DIRECTORY);
    for (size_t i = 0; i < ncases; i++) {
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s/%s", argv[1], cases[i]);
        if (chdir(dir) != 0) {
            perror(dir);
            return 1;
        }
        char **files;
        size_t nfiles = list(&files, ".", is_yaml);
        char *got = actual_output(files, nfiles, argv[2]);
        if (print) {
            printf("== %s\n%s", cases[i], got);
        } else {
            char *want = NULL;
            size_t wlen = 0;
            if (am_read_file(&want, &wlen, "expected.txt", 1 << 20) != 0) {
                printf("FAIL %s: no expected.txt\n", cases[i]);
                failed++;
            } else if (strcmp(want, got) != 0) {
                printf("FAIL %s\n--- expected\n%s--- got\n%s", cases[i], want, got);
                failed++;
            } else {
                printf("ok   %s\n", cases[i]);
            }
            free(want);
        }
        free(got);
        for (size_t k = 0; k < nfiles; k++)
            free(files[k]);
        free(files);
        free(cases[i]);
        if (fchdir(home) != 0)
            return 1;
    }
    free(cases);
    close(home);
    printf("%zu cases, %d failed\n", ncases, failed);
    return failed > 0 || ncases == 0;
}
