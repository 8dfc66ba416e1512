/*
 * cli/keys.c - `alertmap keys create|list|revoke`: API keys in the
 * database named by DATABASE_URL (see docs/security.md). Uses storage/'s
 * public header only; every call is one blocking connection.
 */
#include "cli.h"
#include "store.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char cli_help_keys[] =
    "usage: alertmap keys create --name NAME --scope SCOPE,... [--source SRC,...]\n"
    "                            [--expires DURATION] [--json]\n"
    "       alertmap keys list [--json]\n"
    "       alertmap keys revoke ID|PREFIX\n"
    "\n"
    "Manages the API keys of alertmapd in the database named by DATABASE_URL.\n"
    "\n"
    "  create   makes a key and prints its token on stdout, once: the database\n"
    "           keeps only a hash, so a lost token cannot be shown again (make a\n"
    "           new key and revoke the old one). The key's id and details go to\n"
    "           stderr, so that KEY=$(alertmap keys create ...) captures the token.\n"
    "  list     every key: id, prefix, name, scopes, sources, state, expiry, last use.\n"
    "           Never a token or a hash.\n"
    "  revoke   revokes a key by its id or its prefix (amk_xxxxxxxx, as `list`\n"
    "           shows it); every alertmapd refuses it within one second.\n"
    "\n"
    "Options:\n"
    "  --name NAME         what the key is for (required, 1-200 bytes)\n"
    "  --scope S,...       ingest (POST /v1/ingest), read (GET alerts and sources),\n"
    "                      write (PATCH alerts), admin (keys, sources, dry run)\n"
    "  --source SRC,...    the only sources an ingest key may post to (default: all)\n"
    "  --expires DURATION  the key stops working after e.g. 90m, 12h, 30d, 4w\n"
    "                      (default: never)\n"
    "  --json              JSON on stdout (create: {\"id\",\"token\",...}; list: [...])\n"
    "  --database-url URL  the database (default: $DATABASE_URL)\n"
    "  --sql-dir DIR       migrations applied first when DIR exists (default:\n"
    "                      $ALERTMAP_SQL_DIR, else ./schemas/sql), as alertmapd does\n"
    "  -h, --help          this text\n"
    "\n"
    "Environment:\n"
    "  DATABASE_URL          libpq connection string or URL\n"
    "  ALERTMAP_KEY_PEPPER   the HMAC key of the stored hashes; must be the same for\n"
    "                        this tool and every alertmapd (default: a documented\n"
    "                        constant, see docs/security.md)\n"
    "\n"
    "Exit status: 0 done (also revoking a key that was already revoked); 1 the\n"
    "database cannot be reached or refused, no such key; 2 usage error.\n"
    "\n"
    "Example:\n"
    "  alertmap keys create --name splunk-prod --scope ingest --source splunk --expires 90d\n";

typedef struct kopts {
    const char *name, *scope, *source, *expires;
    const char *database_url, *sql_dir;
    bool json;
} kopts_t;

/* "30d" -> seconds; units s, m, h, d, w. Returns 0 or AM_EINVAL. */
static int parse_duration(int64_t *out, const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno != 0 || v <= 0 || end[0] == '\0' || end[1] != '\0')
        return AM_EINVAL;
    int64_t unit;
    switch (end[0]) {
    case 's':
        unit = 1;
        break;
    case 'm':
        unit = 60;
        break;
    case 'h':
        unit = 3600;
        break;
    case 'd':
        unit = 86400;
        break;
    case 'w':
        unit = 7 * 86400;
        break;
    default:
        return AM_EINVAL;
    }
    if (v > (int64_t)100 * 366 * 86400 / unit)
        return AM_EINVAL; /* a hundred years is "never": leave --expires out */
    *out = v * unit;
    return AM_OK;
}

/* Splits "a,b" into a heap array of heap strings; NULL on an empty part. */
static char **split_list(const char *s, size_t *n)
{
    *n = 0;
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    char **v = calloc(cap, sizeof(*v));
    const char *p = s;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (len == 0) {
            for (size_t i = 0; i < *n; i++)
                free(v[i]);
            free(v);
            *n = 0;
            return NULL;
        }
        v[(*n)++] = am_xstrndup(p, len);
        if (p[len] == '\0')
            return v;
        p += len + 1;
    }
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n && v; i++)
        free(v[i]);
    free(v);
}

/* Applies the migrations when the directory is there. Returns 0 or CLI_FAIL
 * (message printed). */
static int prepare(const kopts_t *o)
{
    struct stat st;
    if (stat(o->sql_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return CLI_OK; /* an installed tool without the tree: use the schema as it is */
    char err[512];
    int rc = store_migrate(o->database_url, o->sql_dir, err, sizeof(err));
    if (rc == AM_OK)
        return CLI_OK;
    fprintf(stderr, "alertmap keys: %s: %s\n",
            rc == AM_EUNAVAIL ? "cannot reach the database" : "migrations failed", err);
    return CLI_FAIL;
}

/* The message of a failed store call, with a hint when the schema is old. */
static int db_failed(const char *what, const char *err)
{
    fprintf(stderr, "alertmap keys %s: %s\n", what, err);
    if (strstr(err, "api_keys") != NULL && strstr(err, "does not exist") != NULL)
        fprintf(stderr, "alertmap keys: the database has no API key table yet: start alertmapd "
                        "once (it applies the migrations) or pass --sql-dir\n");
    return CLI_FAIL;
}

static int cmd_create(const kopts_t *o)
{
    if (o->name == NULL || o->scope == NULL)
        return cli_usage_error("keys", "create needs --name and --scope");
    store_key_spec_t spec = {.name = o->name};
    if (store_scopes_parse(&spec.scopes, o->scope) != AM_OK)
        return cli_usage_error("keys",
                               "bad --scope '%s' (a list of ingest, read, write, admin; "
                               "each once)",
                               o->scope);
    char **sources = NULL;
    size_t nsources = 0;
    if (o->source != NULL && (sources = split_list(o->source, &nsources)) == NULL)
        return cli_usage_error("keys", "bad --source '%s' (source names separated by commas)",
                               o->source);
    int64_t secs = 0;
    if (o->expires != NULL && parse_duration(&secs, o->expires) != AM_OK) {
        free_list(sources, nsources);
        return cli_usage_error("keys", "bad --expires '%s' (e.g. 90m, 12h, 30d, 4w)", o->expires);
    }
    if (sources != NULL && (spec.scopes & STORE_SCOPE_INGEST) == 0)
        fprintf(stderr, "alertmap keys: note: --source limits ingest only, and this key has "
                        "no ingest scope\n");
    spec.sources = (const char *const *)sources;
    spec.nsources = nsources;
    spec.expires_at_us = secs ? (am_now_us() / 1000000 + secs) * 1000000 : 0; /* whole seconds */

    int rc = prepare(o);
    char token[STORE_KEY_TOKEN_LEN + 1], err[512];
    int64_t id = 0;
    if (rc == CLI_OK && store_key_create(o->database_url, store_key_pepper(), &spec, token, &id,
                                         err, sizeof(err)) != AM_OK)
        rc = db_failed("create", err);
    if (rc == CLI_OK) {
        char scopes[32], expires[32] = "never";
        store_scopes_format(scopes, spec.scopes);
        if (spec.expires_at_us)
            am_format_time(expires, spec.expires_at_us);
        if (o->json) {
            json_t *srcs = nsources ? json_array() : json_null();
            for (size_t i = 0; i < nsources; i++)
                json_array_append_new(srcs, json_string(sources[i]));
            json_t *scope_list = json_array();
            for (unsigned bit = 1; bit <= STORE_SCOPE_ADMIN; bit <<= 1) {
                char one[32];
                store_scopes_format(one, spec.scopes & bit);
                if (one[0])
                    json_array_append_new(scope_list, json_string(one));
            }
            json_t *v = json_pack("{s:I, s:s, s:s#, s:s, s:o, s:o, s:o}", "id", (json_int_t)id,
                                  "token", token, "prefix", token, (size_t)12, "name", o->name,
                                  "scopes", scope_list, "sources", srcs, "expires_at",
                                  spec.expires_at_us ? json_string(expires) : json_null());
            rc = cli_print_json(v, true) == AM_OK ? CLI_OK : CLI_FAIL;
            json_decref(v);
        } else {
            printf("%s\n", token);
            fflush(stdout);
            fprintf(stderr,
                    "created key %lld %.12s \"%s\" (scopes %s; sources %s; expires %s)\n"
                    "the token above is shown only now: store it in your secret store\n",
                    (long long)id, token, o->name, scopes, o->source ? o->source : "all", expires);
        }
        memset(token, 0, sizeof(token));
    }
    free_list(sources, nsources);
    return rc;
}

static const char *str_or(const json_t *v, const char *dflt)
{
    return json_is_string(v) ? json_string_value(v) : dflt;
}

static void join(char *out, size_t outlen, const json_t *arr, const char *dflt)
{
    size_t i, o = 0;
    json_t *v;
    out[0] = '\0';
    if (!json_is_array(arr)) {
        snprintf(out, outlen, "%s", dflt);
        return;
    }
    json_array_foreach(arr, i, v)
    {
        int w = snprintf(out + o, outlen - o, "%s%s", i ? "," : "", str_or(v, "?"));
        if (w < 0 || (size_t)w >= outlen - o)
            break;
        o += (size_t)w;
    }
}

static int cmd_list(const kopts_t *o)
{
    int rc = prepare(o);
    json_t *list = NULL;
    char err[512];
    if (rc == CLI_OK && store_key_list(o->database_url, &list, err, sizeof(err)) != AM_OK)
        rc = db_failed("list", err);
    if (rc != CLI_OK)
        return rc;
    if (o->json) {
        rc = cli_print_json(list, false) == AM_OK ? CLI_OK : CLI_FAIL;
        json_decref(list);
        return rc;
    }
    printf("%-6s %-12s %-8s %-24s %-20s %-20s %-20s %s\n", "ID", "PREFIX", "STATE", "SCOPES",
           "SOURCES", "EXPIRES", "LAST USED", "NAME");
    size_t i;
    json_t *k;
    json_array_foreach(list, i, k)
    {
        char scopes[64], sources[256];
        join(scopes, sizeof(scopes), json_object_get(k, "scopes"), "-");
        join(sources, sizeof(sources), json_object_get(k, "sources"), "all");
        printf("%-6lld %-12s %-8s %-24s %-20s %-20s %-20s %s\n",
               (long long)json_integer_value(json_object_get(k, "id")),
               str_or(json_object_get(k, "prefix"), "?"), str_or(json_object_get(k, "state"), "?"),
               scopes, sources, str_or(json_object_get(k, "expires_at"), "never"),
               str_or(json_object_get(k, "last_used_at"), "never"),
               str_or(json_object_get(k, "name"), ""));
    }
    if (json_array_size(list) == 0)
        fprintf(stderr, "no keys: make one with 'alertmap keys create'\n");
    json_decref(list);
    return fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
}

static int cmd_revoke(const kopts_t *o, const char *which)
{
    int rc = prepare(o);
    if (rc != CLI_OK)
        return rc;
    char err[512];
    int64_t id = 0;
    bool already = false;
    int r = store_key_revoke(o->database_url, which, &id, &already, err, sizeof(err));
    if (r == AM_EINVAL && strstr(err, "neither") != NULL)
        return cli_usage_error("keys", "%s", err);
    if (r == AM_ENOTFOUND) {
        fprintf(stderr, "alertmap keys revoke: %s\n", err);
        return CLI_FAIL;
    }
    if (r != AM_OK)
        return db_failed("revoke", err);
    if (already)
        printf("key %lld was already revoked\n", (long long)id);
    else
        printf("revoked key %lld: every alertmapd refuses it within one second\n", (long long)id);
    return fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
}

int cli_cmd_keys(int argc, char **argv)
{
    enum { O_NAME = 256, O_SCOPE, O_SOURCE, O_EXPIRES, O_JSON, O_DB, O_SQL };
    static const struct option opts[] = {
        {"name", required_argument, NULL, O_NAME},
        {"scope", required_argument, NULL, O_SCOPE},
        {"source", required_argument, NULL, O_SOURCE},
        {"expires", required_argument, NULL, O_EXPIRES},
        {"json", no_argument, NULL, O_JSON},
        {"database-url", required_argument, NULL, O_DB},
        {"sql-dir", required_argument, NULL, O_SQL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    kopts_t o = {0};
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_NAME:
            o.name = optarg;
            break;
        case O_SCOPE:
            o.scope = optarg;
            break;
        case O_SOURCE:
            o.source = optarg;
            break;
        case O_EXPIRES:
            o.expires = optarg;
            break;
        case O_JSON:
            o.json = true;
            break;
        case O_DB:
            o.database_url = optarg;
            break;
        case O_SQL:
            o.sql_dir = optarg;
            break;
        case 'h':
            fputs(cli_help_keys, stdout);
            return CLI_OK;
        default:
            return cli_bad_option("keys", c, argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cli_usage_error("keys", "which action? (create, list, revoke)");
    const char *action = argv[optind++];
    if (o.database_url == NULL)
        o.database_url = getenv("DATABASE_URL");
    if (o.sql_dir == NULL)
        o.sql_dir = getenv("ALERTMAP_SQL_DIR");
    if (o.sql_dir == NULL || o.sql_dir[0] == '\0')
        o.sql_dir = "./schemas/sql";
    bool create = strcmp(action, "create") == 0, list = strcmp(action, "list") == 0,
         revoke = strcmp(action, "revoke") == 0;
    if (!create && !list && !revoke)
        return cli_usage_error("keys", "unknown action '%s' (create, list, revoke)", action);
    if (revoke && argc - optind != 1)
        return cli_usage_error("keys", "revoke takes one key id or prefix");
    if (!revoke && argc != optind)
        return cli_usage_error("keys", "unexpected argument '%s'", argv[optind]);
    if (!create && (o.name || o.scope || o.source || o.expires))
        return cli_usage_error("keys", "--name, --scope, --source and --expires are for create");
    if (revoke && o.json)
        return cli_usage_error("keys", "--json is for create and list");
    if (o.database_url == NULL || o.database_url[0] == '\0') {
        fprintf(stderr, "alertmap keys: no database: set DATABASE_URL or pass --database-url "
                        "(e.g. postgresql://user@localhost/alertmap)\n");
        return CLI_USAGE;
    }
    if (create)
        return cmd_create(&o);
    if (list)
        return cmd_list(&o);
    return cmd_revoke(&o, argv[optind]);
}
