/*
 * bench/bench_engine.c - how much the engine costs on top of parsing JSON.
 *
 * Loads a mappings directory and every sample payload under its samples/
 * folder into memory, then measures in the same run, in interleaved rounds:
 *   (a) parse only:      json_loadb + json_decref
 *   (b) parse + engine:  json_loadb + eng_run (normalize, extract indicators,
 *                        fingerprint) + json_decref + arena reset
 * Each round times N passes over all accepted samples with the thread's CPU
 * clock (one thread = one core), alternating which of (a)/(b) goes first.
 * Reported: medians over rounds of time per pass, alerts per second per core,
 * and the engine overhead ratio (b - a) / a. See bench/README.md.
 */
#include "eng.h"

#include <dirent.h>
#include <stdio.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOW_US INT64_C(1717200000000000) /* fixed ingest time: 2024-06-01T00:00:00Z */

typedef struct {
    char *name; /* "source/file.json" */
    const eng_program_t *prog;
    char *text;
    size_t len;
    size_t nalerts; /* alerts per run, from the warm-up */
    size_t source;  /* index into the source list */
} sample_t;

typedef struct {
    sample_t *items;
    size_t n, cap;
    size_t rejected; /* samples excluded: rejected by their mapping */
    char **sources;
    size_t nsources;
} corpus_t;

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Sorted names in dir that pass keep(); NULL-safe count in *n. */
static char **list_dir(const char *dir, size_t *n, int (*keep)(const char *, const char *))
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t cap = 0;
    *n = 0;
    if (d == NULL)
        return NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !keep(dir, e->d_name))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **p = realloc(names, cap * sizeof(*p));
            if (p == NULL)
                break;
            names = p;
        }
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (names != NULL)
        qsort(names, *n, sizeof(*names), cmp_str);
    return names;
}

static int keep_any(const char *dir, const char *name)
{
    (void)dir;
    (void)name;
    return 1;
}

static int keep_payload(const char *dir, const char *name)
{
    (void)dir;
    size_t len = strlen(name);
    return len > 5 && strcmp(name + len - 5, ".json") == 0 &&
           !(len > 14 && strcmp(name + len - 14, ".expected.json") == 0);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Runs one sample once through the engine; returns alerts made or -1. */
static long run_once(const sample_t *s, am_arena_t *a)
{
    json_t *j = json_loadb(s->text, s->len, 0, NULL);
    long n = -1;
    if (j != NULL && json_is_object(j)) {
        eng_result_t res;
        eng_error_t err;
        if (eng_run(&res, s->prog, j, a, NOW_US, &err) == AM_OK)
            n = (long)res.nalerts;
    }
    json_decref(j);
    am_arena_reset(a);
    return n;
}

static int load_corpus(corpus_t *c, const eng_set_t *set, const char *dir, am_arena_t *a)
{
    char *path = NULL;
    if (asprintf(&path, "%s/samples", dir) < 0)
        am_oom(0);
    size_t nsrc;
    char **srcs = list_dir(path, &nsrc, keep_any);
    for (size_t i = 0; i < nsrc; i++) {
        const eng_program_t *p = eng_set_find(set, srcs[i], strlen(srcs[i]));
        if (p == NULL)
            continue;
        char *sdir = NULL;
        if (asprintf(&sdir, "%s/%s", path, srcs[i]) < 0)
            am_oom(0);
        size_t nfiles;
        char **files = list_dir(sdir, &nfiles, keep_payload);
        for (size_t k = 0; k < nfiles; k++) {
            char *fpath = NULL;
            if (asprintf(&fpath, "%s/%s", sdir, files[k]) < 0)
                am_oom(0);
            sample_t s = {.prog = p, .source = c->nsources};
            int rc = am_read_file(&s.text, &s.len, fpath, 64u << 20);
            if (rc != AM_OK)
                fprintf(stderr, "bench_engine: cannot read %s\n", fpath);
            free(fpath);
            if (rc != AM_OK)
                continue;
            long n = run_once(&s, a);
            if (n <= 0) {
                c->rejected++;
                free(s.text);
                continue;
            }
            s.nalerts = (size_t)n;
            if (asprintf(&s.name, "%s/%s", srcs[i], files[k]) < 0)
                s.name = NULL;
            if (c->n == c->cap) {
                c->cap = c->cap ? c->cap * 2 : 32;
                c->items = am_xrealloc(c->items, c->cap * sizeof(*c->items));
            }
            c->items[c->n++] = s;
        }
        free_names(files, nfiles);
        free(sdir);
        c->sources = am_xrealloc(c->sources, (c->nsources + 1) * sizeof(*c->sources));
        c->sources[c->nsources++] = am_xstrdup(srcs[i]);
    }
    free_names(srcs, nsrc);
    free(path);
    return AM_OK;
}

/* iters passes over every sample (only those of source only_source when it
 * is >= 0), parse only or parse + engine. Returns thread CPU seconds. */
static double timed(const corpus_t *c, int iters, bool engine, long only_source, am_arena_t *a)
{
    double t0 = cpu_now();
    for (int it = 0; it < iters; it++) {
        for (size_t i = 0; i < c->n; i++) {
            const sample_t *s = &c->items[i];
            if (only_source >= 0 && s->source != (size_t)only_source)
                continue;
            json_t *j = json_loadb(s->text, s->len, 0, NULL);
            if (engine) {
                eng_result_t res;
                eng_error_t err;
                if (eng_run(&res, s->prog, j, a, NOW_US, &err) != AM_OK)
                    abort(); /* accepted in the warm-up: must stay accepted */
                am_arena_reset(a);
            }
            json_decref(j);
        }
    }
    return cpu_now() - t0;
}

static const char usage[] =
    "usage: bench_engine [--iterations N] [--rounds R] [--rules FILE] [--check-targets]\n"
    "                    [MAPPINGS_DIR]\n"
    "Measures JSON parse alone and parse + engine over the sample payloads of\n"
    "MAPPINGS_DIR (default: mappings), interleaved in R rounds (default 11) of N\n"
    "passes each (default 200). --check-targets exits 1 when the engine overhead\n"
    "is above 1x the parse time or the rate is below 20000 alerts/s per core.\n";

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"iterations", required_argument, NULL, 'n'},
        {"rounds", required_argument, NULL, 'r'},
        {"rules", required_argument, NULL, 'R'},
        {"check-targets", no_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long iters = 200, rounds = 11;
    const char *rules = NULL;
    bool check_targets = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "n:r:h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case 'n':
            iters = strtol(optarg, &end, 10);
            if (*end != '\0' || iters < 1 || iters > 1000000) {
                fprintf(stderr, "bench_engine: --iterations must be 1..1000000\n");
                return 2;
            }
            break;
        case 'r':
            rounds = strtol(optarg, &end, 10);
            if (*end != '\0' || rounds < 1 || rounds > 1000) {
                fprintf(stderr, "bench_engine: --rounds must be 1..1000\n");
                return 2;
            }
            break;
        case 'R':
            rules = optarg;
            break;
        case 'c':
            check_targets = true;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (argc - optind > 1) {
        fputs(usage, stderr);
        return 2;
    }
    const char *dir = optind < argc ? argv[optind] : "mappings";

    am_diags_t d;
    am_diags_init(&d);
    eng_set_t *set = NULL;
    eng_load_options_t lo = {.rules_file = rules};
    if (eng_set_load(&set, dir, &lo, &d) != AM_OK) {
        am_diags_print(&d, stderr);
        fprintf(stderr, "bench_engine: the mappings in %s do not compile\n", dir);
        am_diags_dispose(&d);
        return 1;
    }
    am_diags_dispose(&d);

    int status = 1;
    am_arena_t *a = am_arena_new(64 * 1024, 0);
    corpus_t c = {0};
    double *parse = calloc((size_t)rounds, sizeof(double));
    double *full = calloc((size_t)rounds, sizeof(double));
    double *ratio = calloc((size_t)rounds, sizeof(double));
    if (a == NULL || parse == NULL || full == NULL || ratio == NULL ||
        load_corpus(&c, set, dir, a) != AM_OK) {
        fprintf(stderr, "bench_engine: out of memory\n");
        goto done;
    }
    if (c.n == 0) {
        fprintf(stderr, "bench_engine: no accepted sample payloads under %s/samples\n", dir);
        goto done;
    }
    size_t alerts = 0, bytes = 0;
    for (size_t i = 0; i < c.n; i++) {
        alerts += c.items[i].nalerts;
        bytes += c.items[i].len;
    }

    for (long r = 0; r < rounds; r++) {
        if (r % 2 == 0) {
            parse[r] = timed(&c, (int)iters, false, -1, a);
            full[r] = timed(&c, (int)iters, true, -1, a);
        } else {
            full[r] = timed(&c, (int)iters, true, -1, a);
            parse[r] = timed(&c, (int)iters, false, -1, a);
        }
        ratio[r] = (full[r] - parse[r]) / parse[r];
    }
    double passes = (double)iters;
    double mp = median(parse, (size_t)rounds) / passes; /* s per pass */
    double mf = median(full, (size_t)rounds) / passes;
    double mr = median(ratio, (size_t)rounds);
    double rate_parse = (double)alerts / mp, rate_full = (double)alerts / mf;

    printf("alertmap engine benchmark\n");
    printf("  mappings:  %s (%zu programs)\n", dir, eng_set_count(set));
    printf("  corpus:    %zu sample payloads, %zu alerts, %.1f KiB per pass "
           "(%zu rejected samples excluded)\n",
           c.n, alerts, (double)bytes / 1024.0, c.rejected);
    printf("  method:    %ld rounds x %ld passes, (a) and (b) interleaved, "
           "thread CPU time, 1 core\n\n",
           rounds, iters);
    printf("  %-34s %14s %16s\n", "", "us per alert", "alerts/s/core");
    printf("  %-34s %14.2f %16.0f\n", "(a) parse only (json_loadb)", mp * 1e6 / (double)alerts,
           rate_parse);
    printf("  %-34s %14.2f %16.0f\n", "(b) parse + engine (eng_run)", mf * 1e6 / (double)alerts,
           rate_full);
    printf("  %-34s %14.2f\n", "engine alone (b - a)", (mf - mp) * 1e6 / (double)alerts);
    printf("\n  engine overhead (b - a) / a:  %.2fx parse   (median of rounds)\n\n", mr);

    printf("  %-12s %8s %8s %14s %14s %10s\n", "source", "samples", "alerts", "parse us/alert",
           "full us/alert", "overhead");
    for (size_t s = 0; s < c.nsources; s++) {
        size_t ns = 0, na = 0;
        for (size_t i = 0; i < c.n; i++) {
            if (c.items[i].source == s) {
                ns++;
                na += c.items[i].nalerts;
            }
        }
        if (ns == 0)
            continue;
        long it = iters / 4 > 0 ? iters / 4 : 1;
        double tp = timed(&c, (int)it, false, (long)s, a);
        double tf = timed(&c, (int)it, true, (long)s, a);
        double per = 1e6 / ((double)it * (double)na);
        printf("  %-12s %8zu %8zu %14.2f %14.2f %9.2fx\n", c.sources[s], ns, na, tp * per, tf * per,
               (tf - tp) / tp);
    }

    bool ok_ratio = mr <= 1.0, ok_rate = rate_full >= 20000.0;
    printf("\n  target: engine overhead <= 1.00x parse       %s (%.2fx)\n",
           ok_ratio ? "met" : "MISSED", mr);
    printf("  target: >= 20000 alerts/s per core overall   %s (%.0f)\n", ok_rate ? "met" : "MISSED",
           rate_full);
    status = check_targets && !(ok_ratio && ok_rate) ? 1 : 0;
done:
    for (size_t i = 0; i < c.n; i++) {
        free(c.items[i].text);
        free(c.items[i].name);
    }
    free(c.items);
    for (size_t i = 0; i < c.nsources; i++)
        free(c.sources[i]);
    free(c.sources);
    free(parse);
    free(full);
    free(ratio);
    am_arena_free(a);
    eng_set_unref(set);
    return status;
}
