/*
 * bench/bench_extract.c - how fast the shared indicator rules scan free text.
 *
 * Two workloads, both built in memory from a fixed seed (the same bytes on
 * every run and every version, so two builds can be compared):
 *   prose  free text as alerts carry it (descriptions, command lines, log
 *          lines with key=value pairs, paths, versions, a little UTF-8 and a
 *          few defanged indicators; about one indicator per 150 bytes), cut
 *          into 2 KiB texts; each text is one eng_extract_text() call with a
 *          fresh vector, as for one alert. Reported in MB/s of text scanned.
 *   ips    one text of 900 distinct IPv4 addresses (an Alertmanager group
 *          whose labels list many targets), scanned 400 times: the cost of
 *          de-duplicating many indicators of one alert. Reported in ms per
 *          400 scans.
 * Each round times one pass of each workload with the thread's CPU clock;
 * the medians over rounds are printed. Only eng.h is used, so the file
 * builds against older versions of the engine too (tests/tools/
 * extract_bench_compare builds one from git and runs both in one run).
 */
#include "eng.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "usage: bench_extract [--rounds N] [--mb M] [--label NAME] RULES_FILE\n"
    "Scans generated free text with the indicator rules of RULES_FILE and prints\n"
    "MB/s of text scanned and the time of 400 scans of a 900-address text.\n";

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
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

static uint64_t g_seed = 0x9e3779b97f4a7c15u;

static unsigned rnd(unsigned n)
{
    g_seed ^= g_seed << 13;
    g_seed ^= g_seed >> 7;
    g_seed ^= g_seed << 17;
    return (unsigned)(g_seed % n);
}

static const char *const words[] = {
    "the",      "process",  "connected",  "to",       "remote",  "host",     "after",
    "user",     "logon",    "failed",     "with",     "status",  "error",    "service",
    "started",  "detected", "suspicious", "activity", "on",      "server",   "from",
    "file",     "written",  "registry",   "key",      "value",   "modified", "by",
    "rule",     "matched",  "alert",      "severity", "high",    "low",      "network",
    "outbound", "inbound",  "blocked",    "allowed",  "policy",  "session",  "token",
    "Müller",   "naïve",    "Zürich",     "東京",     "données", "sécurité", "and",
};

/* One piece of text: mostly words, sometimes an indicator or a near miss. */
static void piece(am_buf_t *b)
{
    unsigned k = rnd(100);
    if (k < 70) {
        am_buf_puts(b, words[rnd((unsigned)AM_ARRAY_LEN(words))]);
    } else if (k < 73) {
        am_buf_printf(b, "%u.%u.%u.%u", 1 + rnd(222), rnd(256), rnd(256), 1 + rnd(254));
    } else if (k < 75) {
        am_buf_printf(b, "host%u.example%u.com", rnd(1000), rnd(50));
    } else if (k < 77) {
        am_buf_printf(b, "https://cdn%u.example.org/path/%u/file.php?id=%u&x=y", rnd(100),
                      rnd(10000), rnd(100000));
    } else if (k < 78) {
        for (int i = 0; i < 64; i++)
            am_buf_putc(b, "0123456789abcdef"[rnd(16)]);
    } else if (k < 79) {
        am_buf_printf(b, "user%u@mail%u.example.net", rnd(1000), rnd(20));
    } else if (k < 80) {
        am_buf_printf(b, "hxxp://bad%u[.]example[.]com/x", rnd(100));
    } else if (k < 83) {
        am_buf_printf(b, "C:\\Windows\\System32\\svc%u.exe", rnd(100));
    } else if (k < 86) {
        am_buf_printf(b, "pid=%u ppid=%u uid=%u", rnd(65536), rnd(65536), rnd(1000));
    } else if (k < 88) {
        am_buf_printf(b, "version %u.%u.%u.%u", rnd(10), rnd(20), rnd(100), rnd(1000));
    } else if (k < 90) {
        am_buf_printf(b, "CORP\\user%u", rnd(1000));
    } else if (k < 92) {
        am_buf_printf(b, "System.Net.WebClient process.name=svc%u.exe", rnd(100));
    } else if (k < 94) {
        am_buf_printf(b, "/var/log/app%u/error.log:%u", rnd(10), rnd(1000));
    } else if (k < 96) {
        am_buf_printf(b, "\"%s\": %u,", words[rnd((unsigned)AM_ARRAY_LEN(words))], rnd(100000));
    } else {
        am_buf_printf(b, "%u", rnd(1000000));
    }
    static const char *const seps[] = {" ", " ", " ", " ", ", ", ". ", "\n", "; ", " - ", "\t"};
    am_buf_puts(b, seps[rnd((unsigned)AM_ARRAY_LEN(seps))]);
}

typedef struct {
    const char **text;
    size_t *len;
    size_t n, bytes;
} texts_t;

static texts_t make_prose(size_t total)
{
    texts_t t = {0};
    size_t cap = total / 2048 + 1;
    t.text = am_xcalloc(cap, sizeof(*t.text));
    t.len = am_xcalloc(cap, sizeof(*t.len));
    while (t.bytes < total && t.n < cap) {
        am_buf_t b;
        am_buf_init(&b, 0);
        while (b.len < 2048)
            piece(&b);
        t.len[t.n] = b.len;
        t.bytes += b.len;
        t.text[t.n++] = am_buf_steal(&b);
    }
    return t;
}

static char *make_ips(size_t *len)
{
    am_buf_t b;
    am_buf_init(&b, 0);
    for (unsigned i = 0; i < 900; i++)
        am_buf_printf(&b, "%s10.%u.%u.%u:9100", i ? ", " : "targets: ", 1 + i / 250, (i * 7) % 250,
                      1 + i % 250);
    *len = b.len;
    return am_buf_steal(&b);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"rounds", required_argument, NULL, 'r'},
        {"mb", required_argument, NULL, 'm'},
        {"label", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long rounds = 9, mb = 4;
    const char *label = "extract";
    int ch;
    while ((ch = getopt_long(argc, argv, "r:m:l:h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case 'r':
            rounds = strtol(optarg, &end, 10);
            if (*end != '\0' || rounds < 1 || rounds > 1000) {
                fprintf(stderr, "bench_extract: --rounds must be 1..1000\n");
                return 2;
            }
            break;
        case 'm':
            mb = strtol(optarg, &end, 10);
            if (*end != '\0' || mb < 1 || mb > 1024) {
                fprintf(stderr, "bench_extract: --mb must be 1..1024\n");
                return 2;
            }
            break;
        case 'l':
            label = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (argc - optind != 1) {
        fputs(usage, stderr);
        return 2;
    }
    am_diags_t d;
    am_diags_init(&d);
    eng_rules_t *rules = NULL;
    if (eng_rules_load(&rules, argv[optind], &d) != AM_OK) {
        am_diags_print(&d, stderr);
        am_diags_dispose(&d);
        fprintf(stderr, "bench_extract: the rule file %s does not load\n", argv[optind]);
        return 1;
    }
    am_diags_dispose(&d);

    texts_t prose = make_prose((size_t)mb << 20);
    size_t ips_len;
    char *ips = make_ips(&ips_len);
    am_arena_t *a = am_arena_new(1 << 20, 0);
    double *mbps = am_xcalloc((size_t)rounds, sizeof(double));
    double *ipms = am_xcalloc((size_t)rounds, sizeof(double));
    size_t found = 0, ips_found = 0;
    int status = 0;
    for (long r = 0; r < rounds && status == 0; r++) {
        found = 0;
        double t0 = cpu_now();
        for (size_t i = 0; i < prose.n; i++) {
            eng_indicator_t *out = NULL;
            size_t n = 0;
            int rc = eng_extract_text(&out, &n, rules, prose.text[i], prose.len[i],
                                      (1u << ENG_IOC__COUNT) - 1, "text", a);
            if (rc != AM_OK && rc != AM_ELIMIT)
                status = 1;
            found += n;
            am_arena_reset(a);
        }
        double t1 = cpu_now();
        for (int k = 0; k < 400; k++) {
            eng_indicator_t *out = NULL;
            size_t n = 0;
            int rc = eng_extract_text(&out, &n, rules, ips, ips_len, (1u << ENG_IOC__COUNT) - 1,
                                      "labels", a);
            if (rc != AM_OK && rc != AM_ELIMIT)
                status = 1;
            ips_found = n;
            am_arena_reset(a);
        }
        double t2 = cpu_now();
        mbps[r] = (double)prose.bytes / 1e6 / (t1 - t0);
        ipms[r] = (t2 - t1) * 1e3;
    }
    if (status != 0) {
        fprintf(stderr, "bench_extract: extraction failed\n");
    } else {
        printf("%s: prose %.1f MB/s (%zu texts, %.1f MB, %zu indicators per pass); "
               "ips 400 x 900: %.1f ms (%zu indicators per scan); median of %ld rounds\n",
               label, median(mbps, (size_t)rounds), prose.n, (double)prose.bytes / 1e6, found,
               median(ipms, (size_t)rounds), ips_found, rounds);
    }
    for (size_t i = 0; i < prose.n; i++)
        free((void *)prose.text[i]);
    free(prose.text);
    free(prose.len);
    free(ips);
    free(mbps);
    free(ipms);
    am_arena_free(a);
    eng_rules_free(rules);
    return status;
}
