/*
 * cli/cli.h - internals shared by the files of the `alertmap` command
 * line tool. Not a library interface: single-threaded, exits on usage errors.
 */
#ifndef ALERTMAP_CLI_H
#define ALERTMAP_CLI_H

#include "eng.h"

#include <stdbool.h>
#include <stdio.h>

/* Exit codes (documented in `alertmap --help`). */
enum {
    CLI_OK = 0,       /* success */
    CLI_FAIL = 1,     /* errors: a mapping does not compile, a sample mismatches, I/O */
    CLI_REJECTED = 2, /* normalize rejected the payload; or a usage error */
    CLI_USAGE = 2
};

/* Largest input read from a file or stdin. */
#define CLI_MAX_INPUT (64u << 20)

/* Compiled mapping sets for a list of command line paths: each directory is
 * one set; all plain files together form one more set. */
typedef struct cli_sets {
    eng_set_t **sets;
    size_t n;
} cli_sets_t;

/* The mappings directory when none is given: $ALERTMAP_MAPPINGS, else
 * am_default_path(AM_PATH_MAPPINGS). Borrowed string. */
const char *cli_default_mappings(void);

/* Loads paths (npaths > 0) with the rule file rules (NULL: the default
 * beside the mappings). Diagnostics of every path go to d. Returns 0 when
 * every path compiled, else the first failing code; *out holds the sets
 * that did compile either way (free with cli_sets_dispose). */
int cli_load(cli_sets_t *out, char *const *paths, size_t npaths, const char *rules, am_diags_t *d);
void cli_sets_dispose(cli_sets_t *s);
size_t cli_sets_count(const cli_sets_t *s);

/* Prints diagnostics as "file:line:col: message" (":line:col" left out when
 * unknown), sorted by position. */
void cli_print_diags(am_diags_t *d, FILE *out);

/* Reads a whole file, or stdin when path is NULL or "-", bounded by
 * CLI_MAX_INPUT. Returns 0 (caller frees *out), AM_EIO or AM_ELIMIT; on
 * failure a message naming the path is printed to stderr. */
int cli_read_input(char **out, size_t *len, const char *path);

/* Writes a JSON value followed by a newline; pretty (2 spaces) unless
 * compact. Returns 0 or AM_EIO. */
int cli_print_json(const json_t *v, bool compact);

/* Usage error: prints "alertmap CMD: message" and a hint to stderr. */
int cli_usage_error(const char *cmd, const char *fmt, ...) AM_PRINTF(2, 3);

/* Usage error for getopt_long's answer c (':' missing value, '?' unknown);
 * last is argv[optind - 1]. Returns CLI_USAGE. */
int cli_bad_option(const char *cmd, int c, const char *last);

/* Subcommands: argv[0] is the subcommand name. Return an exit code. */
int cli_cmd_check(int argc, char **argv);
int cli_cmd_test(int argc, char **argv);
int cli_cmd_normalize(int argc, char **argv);
int cli_cmd_extract(int argc, char **argv);
int cli_cmd_keys(int argc, char **argv); /* keys.c: API keys, links storage/ */

/* Help texts, printed by `alertmap help CMD` and `alertmap CMD --help`. */
extern const char cli_help_check[];
extern const char cli_help_test[];
extern const char cli_help_normalize[];
extern const char cli_help_extract[];
extern const char cli_help_keys[];

#endif
