/*
 * cli/extract.c - `alertmap extract`: the indicators the shared rule
 * set finds in free text (strict mode, as for `scan` rules in a mapping).
 */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

const char cli_help_extract[] =
    "usage: alertmap extract [--rules FILE] [--types TYPE,...] [FILE|-]\n"
    "\n"
    "Reads text from FILE (or stdin, also for '-'), scans it with the shared\n"
    "indicator rules, and prints what they find as a JSON array on stdout:\n"
    "  [{\"type\": \"ip\", \"value\": \"203.0.113.9\"}, ...]\n"
    "in the order found, canonical (refanged, lowercased where the type says so)\n"
    "and de-duplicated. Free text is scanned strictly: a domain needs a public\n"
    "suffix, file names and version strings are not indicators.\n"
    "\n"
    "Options:\n"
    "  --rules FILE        the rule file (default: $ALERTMAP_MAPPINGS/rules/\n"
    "                      indicators.yaml, else DEFAULT/rules/indicators.yaml,\n"
    "                      DEFAULT as in alertmap --help)\n"
    "  --types T,...       only these types: ip, domain, url, email, hash_md5,\n"
    "                      hash_sha1, hash_sha256, account (default: all)\n"
    "  --compact           one-line JSON instead of indented\n"
    "  -h, --help          this text\n"
    "\n"
    "Exit status: 0 done (also when nothing is found: []); 1 the rule file does not\n"
    "compile, the input cannot be read, or more than 1000 indicators were found\n"
    "(the first 1000 are printed); 2 usage error (e.g. an unknown type).\n"
    "\n"
    "Example:\n"
    "  echo 'beacon to hxxp://evil[.]example[.]com from 10.0.0.5' | alertmap extract\n";

static int parse_types(unsigned *mask, const char *cmd, const char *list)
{
    *mask = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        eng_ioc_type_t t;
        if (len == 0 || eng_ioc_type_parse(&t, p, len) != AM_OK)
            return cli_usage_error(cmd,
                                   "unknown indicator type '%.*s' in --types (expected: ip, "
                                   "domain, url, email, hash_md5, hash_sha1, hash_sha256, "
                                   "account)",
                                   (int)len, p);
        *mask |= 1u << t;
        if (comma == NULL)
            return -1;
        p = comma + 1;
    }
}

int cli_cmd_extract(int argc, char **argv)
{
    enum { O_RULES = 256, O_TYPES, O_COMPACT };
    static const struct option opts[] = {
        {"rules", required_argument, NULL, O_RULES},
        {"types", required_argument, NULL, O_TYPES},
        {"compact", no_argument, NULL, O_COMPACT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = argv[0];
    const char *rules_path = NULL;
    char *default_rules = NULL;
    unsigned mask = (1u << ENG_IOC__COUNT) - 1;
    bool compact = false;
    int c, rc;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_RULES:
            rules_path = optarg;
            break;
        case O_TYPES:
            if ((rc = parse_types(&mask, cmd, optarg)) >= 0)
                return rc;
            break;
        case O_COMPACT:
            compact = true;
            break;
        case 'h':
            fputs(cli_help_extract, stdout);
            return CLI_OK;
        default:
            return cli_bad_option(cmd, c, argv[optind - 1]);
        }
    }
    if (argc - optind > 1)
        return cli_usage_error(cmd, "too many arguments: '%s'", argv[optind + 1]);
    const char *file = optind < argc ? argv[optind] : NULL;

    am_buf_t b;
    am_buf_init(&b, 0);
    if (rules_path == NULL) {
        am_buf_printf(&b, "%s/rules/indicators.yaml", cli_default_mappings());
        default_rules = am_buf_steal(&b);
        if (default_rules == NULL) {
            fprintf(stderr, "alertmap extract: out of memory\n");
            return CLI_FAIL;
        }
        rules_path = default_rules;
    }

    int status = CLI_FAIL;
    eng_rules_t *rules = NULL;
    am_arena_t *a = NULL;
    char *text = NULL;
    size_t len = 0;
    json_t *arr = NULL;
    am_diags_t d;
    am_diags_init(&d);

    rc = eng_rules_load(&rules, rules_path, &d);
    if (rc != AM_OK) {
        cli_print_diags(&d, stderr);
        fprintf(stderr, "alertmap extract: cannot load the rule file %s\n", rules_path);
        goto done;
    }
    if (cli_read_input(&text, &len, file) != AM_OK)
        goto done;
    a = am_arena_new(0, 0);
    eng_indicator_t *found = NULL;
    size_t n = 0;
    rc = eng_extract_text(&found, &n, rules, text, len, mask, "text", a);
    if (rc != AM_OK && rc != AM_ELIMIT) {
        fprintf(stderr, "alertmap extract: out of memory\n");
        goto done;
    }
    arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        json_t *o = json_pack("{s:s,s:s}", "type", eng_ioc_type_name(found[i].type), "value",
                              found[i].value);
        if (json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    if (arr == NULL) {
        fprintf(stderr, "alertmap extract: out of memory\n");
        goto done;
    }
    if (cli_print_json(arr, compact) != AM_OK)
        goto done;
    if (rc == AM_ELIMIT) {
        fprintf(stderr, "alertmap extract: stopped after %d indicators (the per-alert bound)\n",
                ENG_MAX_INDICATORS);
        goto done;
    }
    status = CLI_OK;
done:
    json_decref(arr);
    free(text);
    am_arena_free(a);
    eng_rules_free(rules);
    am_diags_dispose(&d);
    free(default_rules);
    return status;
}
