/*
 * cli/alertmap.c - `alertmap`, the command line tool for mapping
 * authors: main(), the overall help, and helpers shared by the subcommands
 * (loading mapping paths, printing diagnostics and JSON, reading input).
 * The subcommands live in check.c (check, test), normalize.c and extract.c.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef ALERTMAP_VERSION
#define ALERTMAP_VERSION "unknown"
#endif

static const char help_main[] =
    "usage: alertmap COMMAND [OPTIONS] [ARGS]\n"
    "\n"
    "Compile, test and try alertmap mapping files (one YAML file per alert source,\n"
    "see docs/mapping-language.md) without running the server.\n"
    "\n"
    "Commands:\n"
    "  check [PATH...]                 compile mappings, print every problem as\n"
    "                                  file:line:col: message\n"
    "  test [PATH...]                  run each mapping's sample payloads and compare\n"
    "                                  with the expected output\n"
    "  normalize [--mappings DIR] SOURCE [FILE|-]\n"
    "                                  normalize one payload, print {\"alerts\":[...]}\n"
    "  extract [--rules FILE] [--types T,...] [FILE|-]\n"
    "                                  print the indicators the shared rules find in text\n"
    "  keys create|list|revoke         API keys of alertmapd in DATABASE_URL\n"
    "  help [COMMAND]                  this text, or a command's full help\n"
    "\n"
    "Options:\n"
    "  -h, --help                      this text (COMMAND --help: the command's help)\n"
    "  -V, --version                   print the version and exit\n"
    "\n"
    "Environment:\n"
    "  ALERTMAP_MAPPINGS               mappings directory used when none is given\n"
    "                                  (default: the one alertmapd reads, below)\n"
    "\n"
    "Exit status:\n"
    "  0  success\n"
    "  1  errors: a mapping does not compile, a sample does not match its expected\n"
    "     output, a file cannot be read\n"
    "  2  normalize rejected the payload (invalid JSON, unknown source, a match rule\n"
    "     failed), or the command line is wrong\n";

const char *cli_default_mappings(void)
{
    const char *env = getenv("ALERTMAP_MAPPINGS");
    return env != NULL && env[0] != '\0' ? env : am_default_path(AM_PATH_MAPPINGS, NULL);
}

static int push_set(cli_sets_t *s, eng_set_t *set)
{
    s->sets = am_xrealloc(s->sets, (s->n + 1) * sizeof(*s->sets));
    s->sets[s->n++] = set;
    return AM_OK;
}

int cli_load(cli_sets_t *out, char *const *paths, size_t npaths, const char *rules, am_diags_t *d)
{
    eng_load_options_t opt = {.rules_file = rules, .check_samples = false};
    const char **files = am_xcalloc(npaths ? npaths : 1, sizeof(*files));
    size_t nfiles = 0;
    int rc = AM_OK;

    out->sets = NULL;
    out->n = 0;
    for (size_t i = 0; i < npaths; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0) {
            am_diags_add(d, paths[i], 0, 0, "cannot read: %s", strerror(errno));
            if (rc == AM_OK)
                rc = AM_EIO;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            files[nfiles++] = paths[i];
            continue;
        }
        eng_set_t *set = NULL;
        int r = eng_set_load(&set, paths[i], &opt, d);
        if (r == AM_OK)
            r = push_set(out, set);
        if (r != AM_OK && rc == AM_OK)
            rc = r;
    }
    if (nfiles > 0) {
        eng_set_t *set = NULL;
        int r = eng_set_load_files(&set, files, nfiles, &opt, d);
        if (r == AM_OK)
            r = push_set(out, set);
        if (r != AM_OK && rc == AM_OK)
            rc = r;
    }
    free(files);
    return rc;
}

void cli_sets_dispose(cli_sets_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        eng_set_unref(s->sets[i]);
    free(s->sets);
    s->sets = NULL;
    s->n = 0;
}

size_t cli_sets_count(const cli_sets_t *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += eng_set_count(s->sets[i]);
    return n;
}

void cli_print_diags(am_diags_t *d, FILE *out)
{
    am_diags_sort(d);
    size_t n = d->count < d->cap ? d->count : d->cap;
    for (size_t i = 0; i < n && d->items != NULL; i++) {
        const am_diag_t *x = &d->items[i];
        const char *file = x->file ? x->file : "alertmap";
        const char *msg = x->msg ? x->msg : "(message lost: out of memory)";
        if (x->line > 0 && x->col > 0)
            fprintf(out, "%s:%d:%d: %s\n", file, x->line, x->col, msg);
        else if (x->line > 0)
            fprintf(out, "%s:%d: %s\n", file, x->line, msg);
        else
            fprintf(out, "%s: %s\n", file, msg);
    }
    if (d->count > n)
        fprintf(out, "alertmap: %zu more problems (out of memory)\n", d->count - n);
}

int cli_read_input(char **out, size_t *len, const char *path)
{
    bool std = path == NULL || strcmp(path, "-") == 0;
    int rc = am_read_file(out, len, std ? "/dev/stdin" : path, CLI_MAX_INPUT);
    if (rc == AM_EIO && std) {
        /* /dev/stdin may be missing (containers): read the stream itself */
        am_buf_t b;
        am_buf_init(&b, CLI_MAX_INPUT);
        char tmp[8192];
        size_t n;
        while ((n = fread(tmp, 1, sizeof(tmp), stdin)) > 0)
            am_buf_append(&b, tmp, n);
        if (!am_buf_ok(&b)) {
            am_buf_dispose(&b);
            rc = AM_ELIMIT;
        } else if (ferror(stdin)) {
            am_buf_dispose(&b);
            rc = AM_EIO;
        } else {
            *len = b.len;
            *out = am_buf_steal(&b);
            rc = AM_OK;
        }
    }
    if (rc == AM_ELIMIT)
        fprintf(stderr, "alertmap: %s: input larger than %u MiB\n", std ? "stdin" : path,
                CLI_MAX_INPUT >> 20);
    else if (rc != AM_OK)
        fprintf(stderr, "alertmap: %s: %s\n", std ? "stdin" : path,
                rc == AM_EIO ? strerror(errno) : "out of memory");
    return rc;
}

int cli_print_json(const json_t *v, bool compact)
{
    size_t flags = compact ? JSON_COMPACT : JSON_INDENT(2);
    if (json_dumpf(v, stdout, flags) != 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
        fprintf(stderr, "alertmap: cannot write output: %s\n", strerror(errno));
        return AM_EIO;
    }
    return AM_OK;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "alertmap %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'alertmap %s --help'.\n", cmd);
    va_end(ap);
    return CLI_USAGE;
}

int cli_bad_option(const char *cmd, int c, const char *last)
{
    if (c == ':')
        return cli_usage_error(cmd, "option '%s' needs a value", last);
    if (optopt != 0 && optopt != '?')
        return cli_usage_error(cmd, "unknown option '-%c'", optopt);
    return cli_usage_error(cmd, "unknown option '%s'", last);
}

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *help;
} commands[] = {
    {"check", cli_cmd_check, cli_help_check},
    {"test", cli_cmd_test, cli_help_test},
    {"normalize", cli_cmd_normalize, cli_help_normalize},
    {"extract", cli_cmd_extract, cli_help_extract},
    {"keys", cli_cmd_keys, cli_help_keys},
};

static int help(const char *topic)
{
    if (topic == NULL) {
        const char *why;
        const char *dir = am_default_path(AM_PATH_MAPPINGS, &why);
        fputs(help_main, stdout);
        printf("\nDefault mappings directory of this copy: %s\n  (%s)\n", dir, why);
        return CLI_OK;
    }
    for (size_t i = 0; i < AM_ARRAY_LEN(commands); i++) {
        if (strcmp(topic, commands[i].name) == 0) {
            fputs(commands[i].help, stdout);
            return CLI_OK;
        }
    }
    fprintf(stderr,
            "alertmap: no help for '%s' (commands: check, test, normalize, extract, keys)\n",
            topic);
    return CLI_USAGE;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(help_main, stderr);
        return CLI_USAGE;
    }
    json_set_alloc_funcs(am_xmalloc, free); /* out of memory aborts (am.h) */
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0)
        return help(NULL);
    if (strcmp(cmd, "help") == 0)
        return help(argc > 2 ? argv[2] : NULL);
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        printf("alertmap %s\n", ALERTMAP_VERSION);
        return CLI_OK;
    }
    for (size_t i = 0; i < AM_ARRAY_LEN(commands); i++)
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(
        stderr,
        "alertmap: unknown command '%s' (commands: check, test, normalize, extract, keys, help)\n"
        "Try 'alertmap --help'.\n",
        cmd);
    return CLI_USAGE;
}
