/*
 * cli/check.c - `alertmap check` (compile and report) and
 * `alertmap test` (run every mapping's samples against their expected output).
 */
#include "cli.h"
#include "provider.h"

#include <getopt.h>
#include <string.h>

const char cli_help_check[] =
    "usage: alertmap check [--rules FILE] [--providers PATH] [PATH...]\n"
    "\n"
    "Compiles mapping files and prints every problem, all of a file at once, as\n"
    "  file:line:col: message\n"
    "on stderr (editors jump to the position). A PATH is a mappings directory\n"
    "(every *.yaml / *.yml directly inside it, plus its rules/indicators.yaml) or a\n"
    "single mapping file. Without PATH: $ALERTMAP_MAPPINGS, else the default\n"
    "mappings directory that 'alertmap --help' shows.\n"
    "On success prints a summary such as '4 mappings OK' on stdout.\n"
    "\n"
    "Options:\n"
    "  --rules FILE   shared indicator rule file (default: rules/indicators.yaml in\n"
    "                 the mappings directory, or beside the first mapping file)\n"
    "  --providers PATH  also compile the provider files of PATH (a directory of\n"
    "                 *.yaml or one file; default: $ALERTMAP_PROVIDERS when set);\n"
    "                 secrets are not read, list files are; every provider's\n"
    "                 samples run, a failing one is a problem of its file\n"
    "  -h, --help     this text\n"
    "\n"
    "Exit status: 0 all mappings (and providers) compile and their samples pass;\n"
    "1 a problem was found or a path cannot be read; 2 usage error.\n";

const char cli_help_test[] =
    "usage: alertmap test [--rules FILE] [--providers PATH] [PATH...]\n"
    "\n"
    "Compiles the mappings (like 'alertmap check'), then runs each mapping's sample\n"
    "payloads: every samples/<source>/NAME.json is normalized and compared with\n"
    "NAME.expected.json (a \"$dynamic\" string there matches any value). Prints one\n"
    "line per mapping:\n"
    "  PASS sentinel (3 samples)\n"
    "  FAIL elastic (1 of 2 samples)\n"
    "followed, for each mismatch, by the expected file and a readable diff; then a\n"
    "summary. PATH and the default are as for 'alertmap check'.\n"
    "\n"
    "Options:\n"
    "  --rules FILE   shared indicator rule file (as for check)\n"
    "  --providers PATH  also run the samples of the provider files of PATH\n"
    "                 (default: $ALERTMAP_PROVIDERS when set): one line per provider,\n"
    "                   PASS virustotal (6 samples)\n"
    "                 and each difference as file:line:col: sample 'NAME': ...\n"
    "  -h, --help     this text\n"
    "\n"
    "Exit status: 0 every sample matches; 1 a mismatch, a sample that cannot be read,\n"
    "or a mapping or provider that does not compile; 2 usage error.\n";

typedef struct {
    const char *rules;
    const char *providers;
    char **paths;
    size_t npaths;
    char *default_path[1];
} args_t;

/* Parses [--rules FILE] [-h] [PATH...]; returns -1 to go on, else an exit code. */
static int parse_args(args_t *a, int argc, char **argv, const char *help)
{
    static const struct option opts[] = {
        {"rules", required_argument, NULL, 'r'},
        {"providers", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = argv[0];
    int c;

    memset(a, 0, sizeof(*a));
    optind = 0; /* glibc: full re-initialization */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            a->rules = optarg;
            break;
        case 'p':
            a->providers = optarg;
            break;
        case 'h':
            fputs(help, stdout);
            return CLI_OK;
        default:
            return cli_bad_option(cmd, c, argv[optind - 1]);
        }
    }
    if (optind < argc) {
        a->paths = argv + optind;
        a->npaths = (size_t)(argc - optind);
    } else {
        a->default_path[0] = (char *)cli_default_mappings();
        a->paths = a->default_path;
        a->npaths = 1;
    }
    return -1;
}

int cli_cmd_check(int argc, char **argv)
{
    args_t a;
    int rc = parse_args(&a, argc, argv, cli_help_check);
    if (rc >= 0)
        return rc;

    am_diags_t d;
    cli_sets_t sets;
    am_diags_init(&d);
    rc = cli_load(&sets, a.paths, a.npaths, a.rules, &d);
    const char *prov = a.providers ? a.providers : getenv("ALERTMAP_PROVIDERS");
    eng_providers_t *ps = NULL;
    if (prov != NULL && *prov != '\0') {
        const char *pp[] = {prov};
        eng_providers_options_t po = {.check_samples = true};
        int prc = eng_providers_load(&ps, pp, 1, &po, &d);
        if (rc == AM_OK)
            rc = prc;
    }
    cli_print_diags(&d, stderr);
    if (rc == AM_OK && d.count == 0) {
        size_t n = cli_sets_count(&sets);
        printf("%zu mapping%s OK\n", n, n == 1 ? "" : "s");
        if (ps != NULL) {
            size_t ns = 0;
            for (size_t i = 0; i < eng_providers_count(ps); i++) {
                eng_provider_info_t info;
                eng_provider_info(&info, eng_providers_at(ps, i));
                ns += info.nsamples;
            }
            printf("%zu provider%s OK (%zu sample%s pass)\n", eng_providers_count(ps),
                   eng_providers_count(ps) == 1 ? "" : "s", ns, ns == 1 ? "" : "s");
        }
    } else {
        fprintf(stderr, "alertmap check: %zu problem%s found\n", d.count, d.count == 1 ? "" : "s");
        if (rc == AM_OK)
            rc = AM_EINVAL;
    }
    eng_providers_unref(ps);
    cli_sets_dispose(&sets);
    am_diags_dispose(&d);
    return rc == AM_OK ? CLI_OK : CLI_FAIL;
}

/* Runs one program's samples; prints its PASS/FAIL line and the diffs. */
static int test_program(const eng_program_t *p, size_t *nsamples, size_t *nfailed)
{
    eng_program_info_t info;
    am_diags_t d;
    eng_program_info(&info, p);
    am_diags_init(&d);
    int failed = eng_program_check_samples(p, &d);
    *nsamples += info.nsamples;
    if (failed < 0) {
        printf("FAIL %s (samples cannot be read)\n", info.source);
        *nfailed += 1;
    } else if (failed > 0) {
        printf("FAIL %s (%d of %zu sample%s)\n", info.source, failed, info.nsamples,
               info.nsamples == 1 ? "" : "s");
        *nfailed += (size_t)failed;
    } else if (info.nsamples == 0) {
        printf("PASS %s (no samples)\n", info.source);
    } else {
        printf("PASS %s (%zu sample%s)\n", info.source, info.nsamples,
               info.nsamples == 1 ? "" : "s");
    }
    if (d.count > 0) {
        cli_print_diags(&d, stdout);
        putchar('\n');
    }
    am_diags_dispose(&d);
    return failed != 0 ? CLI_FAIL : CLI_OK;
}

/* Compiles the providers of path (samples not yet run) and runs each
 * provider's samples: a PASS/FAIL line per provider, the differences as
 * file:line:col. Returns CLI_OK when everything compiled and passed. */
static int test_providers(const char *path, size_t *nprov, size_t *nsamples, size_t *nfailed)
{
    am_diags_t d;
    am_diags_init(&d);
    eng_providers_t *ps = NULL;
    const char *pp[] = {path};
    if (eng_providers_load(&ps, pp, 1, NULL, &d) != AM_OK) {
        cli_print_diags(&d, stderr);
        fprintf(stderr, "alertmap test: the providers do not compile (%zu problem%s)\n", d.count,
                d.count == 1 ? "" : "s");
        am_diags_dispose(&d);
        return CLI_FAIL;
    }
    int status = CLI_OK;
    for (size_t i = 0; i < eng_providers_count(ps); i++) {
        const eng_provider_t *p = eng_providers_at(ps, i);
        eng_provider_info_t info;
        eng_provider_info(&info, p);
        am_diags_dispose(&d);
        int failed = eng_provider_check_samples(p, &d);
        *nprov += 1;
        *nsamples += info.nsamples;
        if (failed > 0) {
            printf("FAIL %s (%d of %zu sample%s)\n", info.name, failed, info.nsamples,
                   info.nsamples == 1 ? "" : "s");
            *nfailed += (size_t)failed;
            status = CLI_FAIL;
        } else {
            printf("PASS %s (%zu sample%s)\n", info.name, info.nsamples,
                   info.nsamples == 1 ? "" : "s");
        }
        if (d.count > 0) {
            cli_print_diags(&d, stdout);
            putchar('\n');
        }
    }
    am_diags_dispose(&d);
    eng_providers_unref(ps);
    return status;
}

int cli_cmd_test(int argc, char **argv)
{
    args_t a;
    int rc = parse_args(&a, argc, argv, cli_help_test);
    if (rc >= 0)
        return rc;

    am_diags_t d;
    cli_sets_t sets;
    am_diags_init(&d);
    int load = cli_load(&sets, a.paths, a.npaths, a.rules, &d);
    if (load != AM_OK || d.count > 0) {
        cli_print_diags(&d, stderr);
        fprintf(stderr, "alertmap test: the mappings do not compile (%zu problem%s)\n", d.count,
                d.count == 1 ? "" : "s");
    }
    int status = load == AM_OK && d.count == 0 ? CLI_OK : CLI_FAIL;
    size_t nmappings = 0, nsamples = 0, nfailed = 0, nbad_mappings = 0;
    for (size_t s = 0; s < sets.n; s++) {
        for (size_t i = 0; i < eng_set_count(sets.sets[s]); i++) {
            nmappings++;
            if (test_program(eng_set_at(sets.sets[s], i), &nsamples, &nfailed) != CLI_OK) {
                nbad_mappings++;
                status = CLI_FAIL;
            }
        }
    }
    if (nbad_mappings == 0)
        printf("%zu mapping%s, %zu sample%s: all passed\n", nmappings, nmappings == 1 ? "" : "s",
               nsamples, nsamples == 1 ? "" : "s");
    else
        printf("%zu mapping%s, %zu sample%s: %zu failed in %zu mapping%s\n", nmappings,
               nmappings == 1 ? "" : "s", nsamples, nsamples == 1 ? "" : "s", nfailed,
               nbad_mappings, nbad_mappings == 1 ? "" : "s");
    const char *prov = a.providers ? a.providers : getenv("ALERTMAP_PROVIDERS");
    if (prov != NULL && *prov != '\0') {
        size_t np = 0, ps = 0, pf = 0;
        if (test_providers(prov, &np, &ps, &pf) != CLI_OK)
            status = CLI_FAIL;
        if (pf == 0)
            printf("%zu provider%s, %zu sample%s: %s\n", np, np == 1 ? "" : "s", ps,
                   ps == 1 ? "" : "s", status == CLI_OK ? "all passed" : "see above");
        else
            printf("%zu provider%s, %zu sample%s: %zu failed\n", np, np == 1 ? "" : "s", ps,
                   ps == 1 ? "" : "s", pf);
    }
    cli_sets_dispose(&sets);
    am_diags_dispose(&d);
    return status;
}
