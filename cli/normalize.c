/*
 * cli/normalize.c - `alertmap normalize`: one payload through one
 * mapping, printed as the API would store it: {"alerts":[ALERT...]} or
 * {"error":{"code","message"}}.
 */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

const char cli_help_normalize[] =
    "usage: alertmap normalize [OPTIONS] SOURCE [FILE|-]\n"
    "\n"
    "Runs the payload in FILE (or stdin, also for '-') through the mapping of SOURCE\n"
    "and prints the normalized alerts as JSON on stdout:\n"
    "  {\"alerts\": [ALERT, ...]}\n"
    "ALERT has title, severity, occurred_at (RFC 3339 UTC with Z),\n"
    "occurred_at_fallback, source_name, description, tags, detection_rule_ref, the\n"
    "optional normalized fields that are present, fingerprint and\n"
    "indicators [{type, value, source_field}] (schemas/alert.schema.json).\n"
    "A payload the server would refuse prints, still on stdout,\n"
    "  {\"error\": {\"code\": CODE, \"message\": TEXT}}\n"
    "with CODE one of INVALID_JSON (not JSON), INVALID_PAYLOAD (not an object, or a\n"
    "match rule failed; the message names the rule and its file:line),\n"
    "LIMIT_EXCEEDED (a bound such as nesting depth), UNKNOWN_SOURCE.\n"
    "\n"
    "Options:\n"
    "  -m, --mappings DIR   mappings directory (default: $ALERTMAP_MAPPINGS, else\n"
    "                       the default of alertmap --help)\n"
    "  --rules FILE         shared indicator rule file (default:\n"
    "                       DIR/rules/indicators.yaml)\n"
    "  --now TIME           ingest time, RFC 3339 (e.g. 2024-05-01T10:00:00Z); used\n"
    "                       when the payload has no usable event time. Default: the\n"
    "                       current time. Fix it for reproducible output.\n"
    "  --provenance         add \"provenance\" (the rule behind each field, file:line)\n"
    "                       and an \"origin\" per indicator\n"
    "  --raw                add \"raw_payload\" (the payload, or the split element)\n"
    "  --compact            one-line JSON instead of indented\n"
    "  -h, --help           this text\n"
    "\n"
    "Exit status: 0 normalized; 1 the mappings do not compile or the input cannot\n"
    "be read (problems on stderr); 2 the payload was rejected (error JSON above) or\n"
    "usage error.\n"
    "\n"
    "Example:\n"
    "  alertmap normalize --now 2024-05-01T10:00:00Z sentinel incident.json\n";

typedef struct {
    const char *dir, *rules, *source, *file;
    int64_t now_us;
    int flags;
    bool compact;
} opts_t;

static int parse_args(opts_t *o, int argc, char **argv)
{
    enum { O_RULES = 256, O_NOW, O_PROV, O_RAW, O_COMPACT };
    static const struct option opts[] = {
        {"mappings", required_argument, NULL, 'm'}, {"rules", required_argument, NULL, O_RULES},
        {"now", required_argument, NULL, O_NOW},    {"provenance", no_argument, NULL, O_PROV},
        {"raw", no_argument, NULL, O_RAW},          {"compact", no_argument, NULL, O_COMPACT},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    const char *cmd = argv[0];
    int c;

    memset(o, 0, sizeof(*o));
    o->dir = cli_default_mappings();
    o->now_us = am_now_us();
    o->flags = ENG_JSON_INDICATORS;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            o->dir = optarg;
            break;
        case O_RULES:
            o->rules = optarg;
            break;
        case O_NOW:
            if (eng_parse_iso8601(&o->now_us, optarg, strlen(optarg)) != AM_OK || o->now_us < 0)
                return cli_usage_error(cmd,
                                       "--now needs an RFC 3339 time such as "
                                       "2024-05-01T10:00:00Z, got '%s'",
                                       optarg);
            break;
        case O_PROV:
            o->flags |= ENG_JSON_PROVENANCE;
            break;
        case O_RAW:
            o->flags |= ENG_JSON_RAW;
            break;
        case O_COMPACT:
            o->compact = true;
            break;
        case 'h':
            fputs(cli_help_normalize, stdout);
            return CLI_OK;
        default:
            return cli_bad_option(cmd, c, argv[optind - 1]);
        }
    }
    int rest = argc - optind;
    if (rest < 1)
        return cli_usage_error(cmd, "missing SOURCE (the name of a mapping)");
    if (rest > 2)
        return cli_usage_error(cmd, "too many arguments: '%s'", argv[optind + 2]);
    o->source = argv[optind];
    o->file = rest == 2 ? argv[optind + 1] : NULL;
    return -1;
}

/* Prints {"error":{"code","message"}} and returns CLI_REJECTED. */
static int print_error(const opts_t *o, const char *code, const char *message)
{
    json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
    if (j == NULL) {
        fprintf(stderr, "alertmap normalize: out of memory\n");
        return CLI_FAIL;
    }
    int rc = cli_print_json(j, o->compact);
    json_decref(j);
    return rc == AM_OK ? CLI_REJECTED : CLI_FAIL;
}

static int unknown_source(const opts_t *o, const eng_set_t *set)
{
    am_buf_t b;
    am_buf_init(&b, 4096);
    am_buf_printf(&b, "unknown source '%s' (known:", o->source);
    for (size_t i = 0; i < eng_set_count(set); i++) {
        eng_program_info_t info;
        eng_program_info(&info, eng_set_at(set, i));
        am_buf_printf(&b, "%s %s", i ? "," : "", info.source);
    }
    am_buf_puts(&b, eng_set_count(set) ? ")" : " none)");
    int rc = print_error(o, "UNKNOWN_SOURCE", am_buf_ok(&b) ? b.data : "unknown source");
    am_buf_dispose(&b);
    return rc;
}

/* Parses the payload and runs the program; prints the result. */
static int run(const opts_t *o, const eng_program_t *p, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *payload = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    if (payload == NULL) {
        char msg[300];
        snprintf(msg, sizeof(msg), "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return print_error(o, "INVALID_JSON", msg);
    }
    if (!json_is_object(payload)) {
        static const char *const kinds[] = {
            [JSON_ARRAY] = "an array", [JSON_STRING] = "a string",  [JSON_INTEGER] = "a number",
            [JSON_REAL] = "a number",  [JSON_TRUE] = "true",        [JSON_FALSE] = "false",
            [JSON_NULL] = "null",      [JSON_OBJECT] = "an object",
        };
        char msg[100];
        snprintf(msg, sizeof(msg), "the payload must be a JSON object, got %s",
                 kinds[json_typeof(payload)]);
        json_decref(payload);
        return print_error(o, "INVALID_PAYLOAD", msg);
    }

    int status = CLI_FAIL;
    json_t *out = NULL, *alerts = NULL;
    am_arena_t *a = am_arena_new(0, 0);
    eng_result_t res = {0};
    eng_error_t err = {0};
    int rc = eng_run(&res, p, payload, a, o->now_us, &err);
    if (rc == AM_EINVAL || rc == AM_ELIMIT) {
        const char *code =
            err.code ? err.code : (rc == AM_ELIMIT ? "LIMIT_EXCEEDED" : "INVALID_PAYLOAD");
        status = print_error(o, code, err.message);
        goto done;
    }
    if (rc == AM_OK) {
        out = json_object();
        alerts = json_array();
        rc = json_object_set(out, "alerts", alerts) == 0 ? AM_OK : AM_EINVAL;
    }
    for (size_t i = 0; rc == AM_OK && i < res.nalerts; i++) {
        if (json_array_append_new(alerts, eng_alert_json(&res.alerts[i], o->flags)) != 0)
            rc = AM_EINVAL; /* not valid UTF-8: cannot happen for engine output */
    }
    if (rc == AM_OK)
        status = cli_print_json(out, o->compact) == AM_OK ? CLI_OK : CLI_FAIL;
    else
        fprintf(stderr, "alertmap normalize: the engine failed (%d)\n", rc);
done:
    json_decref(alerts);
    json_decref(out);
    json_decref(payload);
    am_arena_free(a);
    return status;
}

int cli_cmd_normalize(int argc, char **argv)
{
    opts_t o;
    int rc = parse_args(&o, argc, argv);
    if (rc >= 0)
        return rc;

    eng_load_options_t lo = {.rules_file = o.rules};
    eng_set_t *set = NULL;
    am_diags_t d;
    char *text = NULL;
    size_t len = 0;
    int status = CLI_FAIL;

    am_diags_init(&d);
    rc = eng_set_load(&set, o.dir, &lo, &d);
    if (rc != AM_OK) {
        cli_print_diags(&d, stderr);
        fprintf(stderr, "alertmap normalize: the mappings in %s do not compile\n", o.dir);
        goto done;
    }
    const eng_program_t *p = eng_set_find(set, o.source, strlen(o.source));
    if (p == NULL) {
        status = unknown_source(&o, set);
        goto done;
    }
    if (cli_read_input(&text, &len, o.file) != AM_OK)
        goto done;
    status = run(&o, p, text, len);
done:
    free(text);
    eng_set_unref(set);
    am_diags_dispose(&d);
    return status;
}
