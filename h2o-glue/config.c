/* h2o-glue/config.c - alertmapd configuration: environment, then flags. */
#include "glue.h"
#include "ratelimit.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void glue_config_usage(FILE *out)
{
    fputs("usage: alertmapd [options]\n"
          "\n"
          "Receives security alerts over webhooks, normalizes them with the YAML\n"
          "mappings and stores them in PostgreSQL. Every option can also be given by\n"
          "the environment variable shown; a flag wins over the variable.\n"
          "\n"
          "  --listen ADDR         ALERTMAP_LISTEN        host:port or [v6addr]:port to listen\n"
          "                                               on (default " GLUE_DEFAULT_LISTEN ")\n"
          "  --database-url URL    DATABASE_URL           libpq connection string or URL\n"
          "                                               (required)\n"
          "  --mappings DIR        ALERTMAP_MAPPINGS      mappings directory (default below)\n"
          "  --threads N           ALERTMAP_THREADS       event-loop threads (default: one per\n"
          "                                               CPU core, at most 256)\n"
          "  --writers N           ALERTMAP_WRITERS       database writer connections (default:\n"
          "                                               one per CPU core, at most 64)\n"
          "  --writer-linger DUR   ALERTMAP_WRITER_LINGER longest wait of a writer for a fuller\n"
          "                                               batch while another writer is busy: ms,\n"
          "                                               or with suffix us/ms, at most 100ms\n"
          "                                               (default 500us; 0: none)\n"
          "  --max-body SIZE       ALERTMAP_MAX_BODY      largest request body accepted, bytes or\n"
          "                                               with suffix k/M (default 5M); larger\n"
          "                                               bodies get 413 PAYLOAD_TOO_LARGE\n"
          "  --dedup-window DUR    ALERTMAP_DEDUP_WINDOW  window in which an alert with the same\n"
          "                                               fingerprint is a duplicate: seconds or\n"
          "                                               with suffix s/m/h/d; 0 disables\n"
          "                                               (default 24h)\n"
          "  --max-alerts N        ALERTMAP_MAX_ALERTS    alerts one request may split into\n"
          "                                               (default 1000, at most 1000)\n"
          "  --max-indicators N    ALERTMAP_MAX_INDICATORS  indicators of all the alerts of one\n"
          "                                               request together (default 10000)\n"
          "  --max-scan-bytes SIZE ALERTMAP_MAX_SCAN_BYTES  bytes free-text rules may scan in one\n"
          "                                               request (default 16M)\n"
          "  --max-json-values N   ALERTMAP_MAX_JSON_VALUES  JSON values one body may hold\n"
          "                                               (default 200000)\n"
          "  --max-dry-run-bytes SIZE ALERTMAP_MAX_DRY_RUN_BYTES  largest dry-run answer\n"
          "                                               (default 4M)\n"
          "  --replay-window DUR   ALERTMAP_REPLAY_WINDOW how long a delivery id or\n"
          "                                               Idempotency-Key is remembered\n"
          "                                               (default 24h)\n"
          "  --sql-dir DIR         ALERTMAP_SQL_DIR       SQL migrations applied at start-up\n"
          "                                               (default below)\n"
          "  --db-wait SECONDS     ALERTMAP_DB_WAIT       how long start-up retries an\n"
          "                                               unreachable database (default 30)\n"
          "  --log-level LEVEL     ALERTMAP_LOG_LEVEL     debug, info, warn or error\n"
          "                                               (default info)\n",
          out);
    /* two strings: C11 compilers need support only 4095 bytes in one */
    fputs("  --rate-per-key R[:B]  ALERTMAP_RATE_PER_KEY  requests per second and burst of\n"
          "                                               each API key (default 100:1000;\n"
          "                                               0 or off: no limit); over it: 429\n"
          "  --rate-per-source R[:B]\n"
          "                        ALERTMAP_RATE_PER_SOURCE  the same per ingest source\n"
          "                                               (default 500:5000)\n"
          "  --unsigned-sources LIST\n"
          "                        ALERTMAP_UNSIGNED_SOURCES  sources (comma-separated) whose\n"
          "                                               signature secret may stay unset: they\n"
          "                                               take ingest API keys only; any other\n"
          "                                               source with an unset secret refuses\n"
          "                                               every request (default: none)\n"
          "  --metrics-access MODE ALERTMAP_METRICS_ACCESS  who reads GET /metrics without a\n"
          "                                               key: loopback (default: clients on\n"
          "                                               127.0.0.0/8 and ::1), public, or key\n"
          "                                               (always a key with scope read)\n",
          out);
    fputs("  --tls-cert FILE       ALERTMAP_TLS_CERT      PEM certificate chain: serve HTTPS\n"
          "                                               (TLS 1.2 and 1.3, ALPN h2, http/1.1)\n"
          "  --tls-key FILE        ALERTMAP_TLS_KEY       PEM private key of --tls-cert; both\n"
          "                                               are re-read on SIGHUP\n"
          "  --allow-plain-http    ALERTMAP_ALLOW_PLAIN_HTTP=1\n"
          "                                               serve plain HTTP on an address that\n"
          "                                               is not loopback (default: refused)\n"
          "  --max-connections N   ALERTMAP_MAX_CONNECTIONS\n"
          "                                               open connections before new ones are\n"
          "                                               closed at once (default 4096)\n"
          "  --request-deadline DUR ALERTMAP_REQUEST_DEADLINE\n"
          "                                               how long a request waits for the\n"
          "                                               database before 503 (default 5s);\n"
          "                                               also the statement_timeout\n"
          "  --client-timeout DUR  ALERTMAP_CLIENT_TIMEOUT\n"
          "                                               time a client has for the TLS\n"
          "                                               handshake and for sending a request;\n"
          "                                               idle keep-alive time (default 10s)\n"
          "                                               (default info)\n"
          "  --role ROLE           ALERTMAP_ROLE          all (default: server and enrichment\n"
          "                                               workers) or worker (workers only, no\n"
          "                                               listener; docs/enrichment.md)\n"
          "  --workers N           ALERTMAP_WORKERS       enrichment worker threads, 0 to 64\n"
          "                                               (default 2; 0: no enrichment here)\n"
          "  --providers DIR       ALERTMAP_PROVIDERS     enrichment provider files (default:\n"
          "                                               none; alerts end Enriched, Unknown)\n"
          "  --targets DIR         ALERTMAP_TARGETS       agent dispatch target files (default:\n"
          "                                               none; docs/dispatch.md)\n"
          "  --worker-lease DUR    ALERTMAP_WORKER_LEASE  claim lease of a job (default 60s)\n"
          "  --worker-poll DUR     ALERTMAP_WORKER_POLL   queue poll without NOTIFY (default 5s)\n"
          "  --worker-backoff DUR  ALERTMAP_WORKER_BACKOFF first retry delay (default 2s)\n"
          "  --worker-batch N      ALERTMAP_WORKER_BATCH  jobs a worker claims at once, 1 to 1000\n"
          "                                               (default 32)\n"
          "  --ondemand-queue N    ALERTMAP_ONDEMAND_QUEUE\n"
          "                                               POST /v1/enrichments lookups waiting\n"
          "                                               at most before 503 (default 16)\n",
          out);
    fputs("  --engine-threads N    ALERTMAP_ENGINE_THREADS  threads that normalize large bodies\n"
          "                                               and dry runs off the event loops\n"
          "                                               (default: one per CPU core; 0: none)\n"
          "  --engine-queue N      ALERTMAP_ENGINE_QUEUE  such requests that may wait for a\n"
          "                                               thread; past it 503 ENGINE_BUSY\n"
          "                                               (default 16)\n"
          "  --engine-inline-max SIZE ALERTMAP_ENGINE_INLINE_MAX  largest body normalized on\n"
          "                                               the event loop (default 64k)\n"
          "  --help                                       this text\n"
          "  --version                                    print the version\n"
          "\n"
          "API keys (alertmap keys create) are checked on every route but /healthz\n"
          "and /readyz: Authorization: Bearer KEY or X-API-Key: KEY. Their hashes are\n"
          "keyed with ALERTMAP_KEY_PEPPER (the same for every alertmapd and the\n"
          "alertmap tool; default: a documented constant). Ingest takes the\n"
          "mapping's webhook signature or an ingest key (docs/security.md).\n"
          "\n"
          "Webhook secrets are read from the environment variables each mapping names\n"
          "(e.g. SENTINEL_WEBHOOK_SECRET). A mapping may list two variables so that\n"
          "an old and a new secret are valid at once while senders switch; a new\n"
          "value takes effect at the next start (see docs/operations.md, Secrets).\n"
          "\n"
          "Signals: SIGHUP reloads the mappings (kept unchanged if any file fails)\n"
          "and the TLS certificate and key (the old pair stays if the new one fails);\n"
          "SIGTERM or SIGINT stop accepting, finish in-flight requests and exit 0.\n"
          "\n"
          "Exit status: 0 after a clean shutdown, 1 when start-up fails (mappings,\n"
          "database, listen address), 2 for invalid options.\n",
          out);
    const char *why;
    const char *m = am_default_path(AM_PATH_MAPPINGS, &why);
    fprintf(out,
            "\nDefaults of this copy of alertmapd:\n"
            "  mappings  %s\n            (%s)\n"
            "  sql-dir   %s\n"
            "An installed alertmapd reads %s when that directory\n"
            "exists, else the shipped %s.\n",
            m, why, am_default_path(AM_PATH_SQL, NULL),
            am_default_path(AM_PATH_OPERATOR_MAPPINGS, NULL),
            am_default_path(AM_PATH_SHIPPED_MAPPINGS, NULL));
}

/* ---- value parsers --------------------------------------------------- */

/* Leading decimal digits of s as an unsigned value; *end gets the rest. */
static int parse_digits(uint64_t *out, const char *s, const char **end)
{
    uint64_t v = 0;
    const char *p = s;
    if (!isdigit((unsigned char)*p))
        return AM_EINVAL;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return AM_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    *end = p;
    return AM_OK;
}

int glue_parse_size(size_t *out, const char *s)
{
    uint64_t v, mult = 1;
    const char *p;
    if (s == NULL || parse_digits(&v, s, &p) != AM_OK)
        return AM_EINVAL;
    if (*p == 'k' || *p == 'K') {
        mult = 1024;
        p++;
    } else if (*p == 'm' || *p == 'M') {
        mult = 1024 * 1024;
        p++;
    }
    if (mult != 1 && strcmp(p, "iB") == 0)
        p += 2;
    else if (*p == 'B' && p[1] == '\0')
        p++;
    if (*p != '\0' || v == 0 || v > UINT64_MAX / mult)
        return AM_EINVAL;
    v *= mult;
    if (v > GLUE_MAX_BODY_LIMIT)
        return AM_EINVAL;
    *out = (size_t)v;
    return AM_OK;
}

int glue_parse_duration(int64_t *out, const char *s)
{
    uint64_t v, mult = 1;
    const char *p;
    if (s == NULL || parse_digits(&v, s, &p) != AM_OK)
        return AM_EINVAL;
    switch (*p) {
    case '\0':
        break;
    case 's':
        p++;
        break;
    case 'm':
        mult = 60;
        p++;
        break;
    case 'h':
        mult = 3600;
        p++;
        break;
    case 'd':
        mult = 86400;
        p++;
        break;
    default:
        return AM_EINVAL;
    }
    /* at most ten years: anything larger is a typo */
    if (*p != '\0' || v > (uint64_t)3650 * 86400 / mult)
        return AM_EINVAL;
    *out = (int64_t)(v * mult);
    return AM_OK;
}

static int copy_text(char *dst, size_t dstlen, const char *src, size_t n)
{
    if (n == 0 || n >= dstlen)
        return AM_EINVAL;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return AM_OK;
}

int glue_parse_listen(char *host, size_t hostlen, char *port, size_t portlen, const char *s)
{
    if (s == NULL)
        return AM_EINVAL;
    const char *colon;
    const char *h;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return AM_EINVAL;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
            return AM_EINVAL; /* no port, or an unbracketed IPv6 address */
        h = s;
        hlen = (size_t)(colon - s);
    }
    const char *ps = colon + 1;
    uint64_t pv;
    const char *end;
    if (parse_digits(&pv, ps, &end) != AM_OK || *end != '\0' || pv > 65535)
        return AM_EINVAL;
    for (size_t i = 0; i < hlen; i++)
        if (isspace((unsigned char)h[i]) || h[i] == '/' || h[i] == '[' || h[i] == ']')
            return AM_EINVAL;
    if (copy_text(host, hostlen, h, hlen) != AM_OK)
        return AM_EINVAL;
    return copy_text(port, portlen, ps, strlen(ps));
}

int glue_parse_log_level(am_log_level_t *out, const char *s)
{
    static const struct {
        const char *name;
        am_log_level_t level;
    } levels[] = {{"debug", AM_LOG_DEBUG},
                  {"info", AM_LOG_INFO},
                  {"warn", AM_LOG_WARN},
                  {"warning", AM_LOG_WARN},
                  {"error", AM_LOG_ERROR}};
    if (s == NULL)
        return AM_EINVAL;
    for (size_t i = 0; i < AM_ARRAY_LEN(levels); i++) {
        if (strcasecmp(s, levels[i].name) == 0) {
            *out = levels[i].level;
            return AM_OK;
        }
    }
    return AM_EINVAL;
}

static int parse_int_range(int *out, const char *s, int lo, int hi)
{
    uint64_t v;
    const char *end;
    if (s == NULL || parse_digits(&v, s, &end) != AM_OK || *end != '\0' || v < (uint64_t)lo ||
        v > (uint64_t)hi)
        return AM_EINVAL;
    *out = (int)v;
    return AM_OK;
}

/* A short wait: "2" or "2ms" (milliseconds), "500us"; 0 to 100 ms. */
static int parse_linger(int64_t *out, const char *s)
{
    uint64_t v;
    const char *end;
    if (s == NULL || parse_digits(&v, s, &end) != AM_OK)
        return AM_EINVAL;
    uint64_t us;
    if (*end == '\0' || strcmp(end, "ms") == 0)
        us = v <= 100 ? v * 1000 : UINT64_MAX;
    else if (strcmp(end, "us") == 0)
        us = v;
    else
        return AM_EINVAL;
    if (us > 100000)
        return AM_EINVAL;
    *out = (int64_t)us;
    return AM_OK;
}

/* ---- options ---------------------------------------------------------- */

typedef enum {
    OPT_LISTEN,
    OPT_DATABASE_URL,
    OPT_MAPPINGS,
    OPT_THREADS,
    OPT_WRITERS,
    OPT_WRITER_LINGER,
    OPT_MAX_BODY,
    OPT_DEDUP_WINDOW,
    OPT_SQL_DIR,
    OPT_DB_WAIT,
    OPT_LOG_LEVEL,
    OPT_RATE_PER_KEY,
    OPT_RATE_PER_SOURCE,
    OPT_UNSIGNED_SOURCES,
    OPT_METRICS_ACCESS,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_ALLOW_PLAIN_HTTP,
    OPT_MAX_CONNECTIONS,
    OPT_REQUEST_DEADLINE,
    OPT_CLIENT_TIMEOUT,
    OPT_MAX_ALERTS,
    OPT_MAX_INDICATORS,
    OPT_MAX_SCAN_BYTES,
    OPT_MAX_JSON_VALUES,
    OPT_MAX_DRY_RUN_BYTES,
    OPT_REPLAY_WINDOW,
    OPT_ROLE,
    OPT_WORKERS,
    OPT_PROVIDERS,
    OPT_TARGETS,
    OPT_WORKER_LEASE,
    OPT_WORKER_POLL,
    OPT_WORKER_BACKOFF,
    OPT_WORKER_BATCH,
    OPT_ONDEMAND_QUEUE,
    OPT_ENGINE_THREADS,
    OPT_ENGINE_QUEUE,
    OPT_ENGINE_INLINE_MAX,
    OPT__COUNT
} opt_t;

static const struct {
    const char *flag;
    const char *env;
    bool is_switch; /* a flag without value; its variable takes 1/0 */
} options[OPT__COUNT] = {
    [OPT_LISTEN] = {"--listen", "ALERTMAP_LISTEN"},
    [OPT_DATABASE_URL] = {"--database-url", "DATABASE_URL"},
    [OPT_MAPPINGS] = {"--mappings", "ALERTMAP_MAPPINGS"},
    [OPT_THREADS] = {"--threads", "ALERTMAP_THREADS"},
    [OPT_WRITERS] = {"--writers", "ALERTMAP_WRITERS"},
    [OPT_WRITER_LINGER] = {"--writer-linger", "ALERTMAP_WRITER_LINGER"},
    [OPT_MAX_BODY] = {"--max-body", "ALERTMAP_MAX_BODY"},
    [OPT_DEDUP_WINDOW] = {"--dedup-window", "ALERTMAP_DEDUP_WINDOW"},
    [OPT_SQL_DIR] = {"--sql-dir", "ALERTMAP_SQL_DIR"},
    [OPT_DB_WAIT] = {"--db-wait", "ALERTMAP_DB_WAIT"},
    [OPT_LOG_LEVEL] = {"--log-level", "ALERTMAP_LOG_LEVEL"},
    [OPT_RATE_PER_KEY] = {"--rate-per-key", "ALERTMAP_RATE_PER_KEY"},
    [OPT_RATE_PER_SOURCE] = {"--rate-per-source", "ALERTMAP_RATE_PER_SOURCE"},
    [OPT_UNSIGNED_SOURCES] = {"--unsigned-sources", "ALERTMAP_UNSIGNED_SOURCES"},
    [OPT_METRICS_ACCESS] = {"--metrics-access", "ALERTMAP_METRICS_ACCESS"},
    [OPT_TLS_CERT] = {"--tls-cert", "ALERTMAP_TLS_CERT"},
    [OPT_TLS_KEY] = {"--tls-key", "ALERTMAP_TLS_KEY"},
    [OPT_ALLOW_PLAIN_HTTP] = {"--allow-plain-http", "ALERTMAP_ALLOW_PLAIN_HTTP", true},
    [OPT_MAX_CONNECTIONS] = {"--max-connections", "ALERTMAP_MAX_CONNECTIONS"},
    [OPT_REQUEST_DEADLINE] = {"--request-deadline", "ALERTMAP_REQUEST_DEADLINE"},
    [OPT_CLIENT_TIMEOUT] = {"--client-timeout", "ALERTMAP_CLIENT_TIMEOUT"},
    [OPT_MAX_ALERTS] = {"--max-alerts", "ALERTMAP_MAX_ALERTS"},
    [OPT_MAX_INDICATORS] = {"--max-indicators", "ALERTMAP_MAX_INDICATORS"},
    [OPT_MAX_SCAN_BYTES] = {"--max-scan-bytes", "ALERTMAP_MAX_SCAN_BYTES"},
    [OPT_MAX_JSON_VALUES] = {"--max-json-values", "ALERTMAP_MAX_JSON_VALUES"},
    [OPT_MAX_DRY_RUN_BYTES] = {"--max-dry-run-bytes", "ALERTMAP_MAX_DRY_RUN_BYTES"},
    [OPT_REPLAY_WINDOW] = {"--replay-window", "ALERTMAP_REPLAY_WINDOW"},
    [OPT_ROLE] = {"--role", "ALERTMAP_ROLE"},
    [OPT_WORKERS] = {"--workers", "ALERTMAP_WORKERS"},
    [OPT_PROVIDERS] = {"--providers", "ALERTMAP_PROVIDERS"},
    [OPT_TARGETS] = {"--targets", "ALERTMAP_TARGETS"},
    [OPT_WORKER_LEASE] = {"--worker-lease", "ALERTMAP_WORKER_LEASE"},
    [OPT_WORKER_POLL] = {"--worker-poll", "ALERTMAP_WORKER_POLL"},
    [OPT_WORKER_BACKOFF] = {"--worker-backoff", "ALERTMAP_WORKER_BACKOFF"},
    [OPT_WORKER_BATCH] = {"--worker-batch", "ALERTMAP_WORKER_BATCH"},
    [OPT_ONDEMAND_QUEUE] = {"--ondemand-queue", "ALERTMAP_ONDEMAND_QUEUE"},
    [OPT_ENGINE_THREADS] = {"--engine-threads", "ALERTMAP_ENGINE_THREADS"},
    [OPT_ENGINE_QUEUE] = {"--engine-queue", "ALERTMAP_ENGINE_QUEUE"},
    [OPT_ENGINE_INLINE_MAX] = {"--engine-inline-max", "ALERTMAP_ENGINE_INLINE_MAX"},
};

/* "1", "true", "yes", "on" or "0", "false", "no", "off" (any case). */
static int parse_bool(bool *out, const char *s)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < AM_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return AM_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return AM_OK;
        }
    }
    return AM_EINVAL;
}

/* A duration of 1 s to 1 h, as glue_parse_duration() reads it. */
static int parse_seconds(int *out, const char *s)
{
    int64_t v;
    if (glue_parse_duration(&v, s) != AM_OK || v < 1 || v > 3600)
        return AM_EINVAL;
    *out = (int)v;
    return AM_OK;
}

/* Where a value came from, for error messages. */
static const char *origin_of(opt_t o, bool from_flag)
{
    return from_flag ? options[o].flag : options[o].env;
}

static int apply(glue_config_t *cfg, opt_t o, const char *v, bool from_flag, char *err,
                 size_t errlen)
{
    const char *what = NULL;
    switch (o) {
    case OPT_LISTEN:
        if (glue_parse_listen(cfg->host, sizeof(cfg->host), cfg->port, sizeof(cfg->port), v) !=
            AM_OK)
            what = "expected host:port or [ipv6]:port, e.g. 127.0.0.1:8080";
        else
            cfg->listen = v;
        break;
    case OPT_DATABASE_URL:
        if (*v == '\0')
            what = "must not be empty";
        else
            cfg->database_url = v;
        break;
    case OPT_MAPPINGS:
        if (*v == '\0')
            what = "must not be empty";
        else {
            cfg->mappings = v;
            cfg->mappings_from = origin_of(o, from_flag);
        }
        break;
    case OPT_SQL_DIR:
        if (*v == '\0')
            what = "must not be empty";
        else
            cfg->sql_dir = v;
        break;
    case OPT_THREADS:
        if (parse_int_range(&cfg->threads, v, 1, GLUE_MAX_THREADS) != AM_OK)
            what = "expected a whole number from 1 to 256";
        break;
    case OPT_WRITERS:
        if (parse_int_range(&cfg->writers, v, 1, 64) != AM_OK)
            what = "expected a whole number from 1 to 64";
        break;
    case OPT_WRITER_LINGER:
        if (parse_linger(&cfg->writer_linger_us, v) != AM_OK)
            what = "expected a duration such as 2ms, 500us or 0 (at most 100ms)";
        break;
    case OPT_MAX_BODY:
        if (glue_parse_size(&cfg->max_body, v) != AM_OK)
            what = "expected a size such as 5M, 512k or 1048576 (at most 1024M)";
        break;
    case OPT_DEDUP_WINDOW:
        if (glue_parse_duration(&cfg->dedup_window_s, v) != AM_OK)
            what = "expected a duration such as 0, 3600, 30m, 24h or 7d";
        break;
    case OPT_DB_WAIT:
        if (parse_int_range(&cfg->db_wait_s, v, 0, 3600) != AM_OK)
            what = "expected seconds from 0 to 3600";
        break;
    case OPT_LOG_LEVEL:
        if (glue_parse_log_level(&cfg->log_level, v) != AM_OK)
            what = "expected debug, info, warn or error";
        break;
    case OPT_RATE_PER_KEY:
    case OPT_RATE_PER_SOURCE: {
        double rate, burst;
        bool off;
        if (glue_ratelimit_parse(&rate, &burst, &off, v) != AM_OK) {
            what = "expected RATE[:BURST] such as 100, 100:1000 or 0.5:5, or 0/off";
            break;
        }
        if (off)
            rate = burst = 0;
        if (o == OPT_RATE_PER_KEY) {
            cfg->rate_per_key = rate;
            cfg->burst_per_key = burst;
        } else {
            cfg->rate_per_source = rate;
            cfg->burst_per_source = burst;
        }
        break;
    }
    case OPT_UNSIGNED_SOURCES:
        cfg->unsigned_sources = *v ? v : NULL;
        break;
    case OPT_METRICS_ACCESS:
        if (strcmp(v, "loopback") == 0)
            cfg->metrics_access = GLUE_METRICS_LOOPBACK;
        else if (strcmp(v, "public") == 0)
            cfg->metrics_access = GLUE_METRICS_PUBLIC;
        else if (strcmp(v, "key") == 0)
            cfg->metrics_access = GLUE_METRICS_KEY;
        else
            what = "expected loopback, public or key";
        break;
    case OPT_TLS_CERT:
    case OPT_TLS_KEY:
        if (*v == '\0')
            what = "must not be empty";
        else if (o == OPT_TLS_CERT)
            cfg->tls_cert = v;
        else
            cfg->tls_key = v;
        break;
    case OPT_ALLOW_PLAIN_HTTP:
        if (parse_bool(&cfg->allow_plain_http, v) != AM_OK)
            what = "expected 1 or 0 (true/false, yes/no)";
        break;
    case OPT_MAX_CONNECTIONS:
        if (parse_int_range(&cfg->max_connections, v, 1, 1000000) != AM_OK)
            what = "expected a whole number from 1 to 1000000";
        break;
    case OPT_REQUEST_DEADLINE:
        if (parse_seconds(&cfg->deadline_s, v) != AM_OK)
            what = "expected a duration from 1s to 1h, e.g. 5, 5s or 2m";
        break;
    case OPT_CLIENT_TIMEOUT:
        if (parse_seconds(&cfg->client_timeout_s, v) != AM_OK)
            what = "expected a duration from 1s to 1h, e.g. 10, 10s or 1m";
        break;
    case OPT_MAX_ALERTS:
        if (parse_int_range(&cfg->max_alerts, v, 1, 1000) != AM_OK)
            what = "expected a whole number from 1 to 1000";
        break;
    case OPT_MAX_INDICATORS:
        if (parse_int_range(&cfg->max_indicators, v, 1, 1000000) != AM_OK)
            what = "expected a whole number from 1 to 1000000";
        break;
    case OPT_MAX_JSON_VALUES:
        if (parse_int_range(&cfg->max_json_values, v, 1, 100000000) != AM_OK)
            what = "expected a whole number from 1 to 100000000";
        break;
    case OPT_MAX_SCAN_BYTES:
        if (glue_parse_size(&cfg->max_scan_bytes, v) != AM_OK)
            what = "expected a size such as 16M, 512k or 1048576";
        break;
    case OPT_MAX_DRY_RUN_BYTES:
        if (glue_parse_size(&cfg->max_dry_run_bytes, v) != AM_OK)
            what = "expected a size such as 4M, 512k or 1048576";
        break;
    case OPT_REPLAY_WINDOW:
        if (glue_parse_duration(&cfg->replay_window_s, v) != AM_OK || cfg->replay_window_s < 1)
            what = "expected a duration such as 3600, 30m, 24h or 7d (at least 1 s)";
        break;
    case OPT_ROLE:
        if (strcmp(v, "all") == 0 || strcmp(v, "worker") == 0)
            cfg->role_worker = v[0] == 'w';
        else
            what = "expected all or worker";
        break;
    case OPT_WORKERS:
        if (parse_int_range(&cfg->workers, v, 0, 64) != AM_OK)
            what = "expected a whole number from 0 to 64";
        break;
    case OPT_PROVIDERS:
        cfg->providers = *v ? v : NULL;
        break;
    case OPT_TARGETS:
        cfg->targets = *v ? v : NULL;
        break;
    case OPT_WORKER_LEASE:
    case OPT_WORKER_POLL:
    case OPT_WORKER_BACKOFF: {
        int64_t *slot = o == OPT_WORKER_LEASE  ? &cfg->worker_lease_s
                        : o == OPT_WORKER_POLL ? &cfg->worker_poll_s
                                               : &cfg->worker_backoff_s;
        if (glue_parse_duration(slot, v) != AM_OK || *slot == 0)
            what = "expected a duration such as 5, 30s, 2m or 1h (not 0)";
        break;
    }
    case OPT_WORKER_BATCH:
        if (parse_int_range(&cfg->worker_batch, v, 1, 1000) != AM_OK)
            what = "expected a whole number from 1 to 1000";
        break;
    case OPT_ONDEMAND_QUEUE:
        if (parse_int_range(&cfg->ondemand_queue, v, 1, 10000) != AM_OK)
            what = "expected a whole number from 1 to 10000";
        break;
    case OPT_ENGINE_THREADS:
        if (parse_int_range(&cfg->engine_threads, v, 0, GLUE_MAX_THREADS) != AM_OK)
            what = "expected a whole number from 0 (no pool) to 256";
        break;
    case OPT_ENGINE_QUEUE:
        if (parse_int_range(&cfg->engine_queue, v, 0, 100000) != AM_OK)
            what = "expected a whole number from 0 to 100000";
        break;
    case OPT_ENGINE_INLINE_MAX:
        if (glue_parse_size(&cfg->engine_inline_max, v) != AM_OK)
            what = "expected a size such as 64k, 1M or 65536";
        break;
    case OPT__COUNT:
        break;
    }
    if (what != NULL) {
        snprintf(err, errlen, "invalid %s '%s': %s", origin_of(o, from_flag), v, what);
        return AM_EINVAL;
    }
    return AM_OK;
}

static int default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > GLUE_MAX_THREADS ? GLUE_MAX_THREADS : (int)n;
}

int glue_config_parse(glue_config_t *cfg, glue_action_t *action, int argc, char **argv, char *err,
                      size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    *action = GLUE_ACT_RUN;
    err[0] = '\0';
    cfg->mappings = am_default_path(AM_PATH_MAPPINGS, &cfg->mappings_from);
    cfg->sql_dir = am_default_path(AM_PATH_SQL, NULL);
    cfg->threads = default_threads();
    cfg->max_body = GLUE_DEFAULT_MAX_BODY;
    cfg->dedup_window_s = GLUE_DEFAULT_DEDUP_S;
    cfg->db_wait_s = GLUE_DEFAULT_DB_WAIT_S;
    cfg->log_level = AM_LOG_INFO;
    cfg->rate_per_key = GLUE_DEFAULT_RATE_PER_KEY;
    cfg->burst_per_key = GLUE_DEFAULT_BURST_PER_KEY;
    cfg->rate_per_source = GLUE_DEFAULT_RATE_PER_SOURCE;
    cfg->burst_per_source = GLUE_DEFAULT_BURST_PER_SOURCE;
    cfg->metrics_access = GLUE_METRICS_LOOPBACK;
    cfg->max_connections = GLUE_DEFAULT_MAX_CONNECTIONS;
    cfg->deadline_s = GLUE_DEFAULT_DEADLINE_S;
    cfg->client_timeout_s = GLUE_DEFAULT_CLIENT_TIMEOUT_S;
    cfg->max_alerts = GLUE_DEFAULT_MAX_ALERTS;
    cfg->max_indicators = GLUE_DEFAULT_MAX_INDICATORS;
    cfg->max_json_values = GLUE_DEFAULT_MAX_JSON_VALUES;
    cfg->max_scan_bytes = GLUE_DEFAULT_MAX_SCAN_BYTES;
    cfg->max_dry_run_bytes = GLUE_DEFAULT_MAX_DRY_RUN_BYTES;
    cfg->replay_window_s = GLUE_DEFAULT_REPLAY_S;
    cfg->writer_linger_us = 500;
    cfg->workers = 2;
    cfg->worker_lease_s = 60;
    cfg->worker_poll_s = 5;
    cfg->worker_backoff_s = 2;
    cfg->worker_batch = 32;
    cfg->ondemand_queue = 16;
    cfg->engine_threads = default_threads();
    cfg->engine_queue = GLUE_DEFAULT_ENGINE_QUEUE;
    cfg->engine_inline_max = GLUE_DEFAULT_ENGINE_INLINE_MAX;
    int rc = apply(cfg, OPT_LISTEN, GLUE_DEFAULT_LISTEN, false, err, errlen);
    if (rc != AM_OK)
        return rc;

    for (int o = 0; o < OPT__COUNT; o++) {
        const char *v = getenv(options[o].env);
        if (v != NULL && (rc = apply(cfg, (opt_t)o, v, false, err, errlen)) != AM_OK)
            return rc;
    }

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            *action = GLUE_ACT_HELP;
            return AM_OK;
        }
        if (strcmp(arg, "--version") == 0) {
            *action = GLUE_ACT_VERSION;
            return AM_OK;
        }
        int found = -1;
        const char *value = NULL;
        for (int o = 0; o < OPT__COUNT; o++) {
            size_t fl = strlen(options[o].flag);
            if (strncmp(arg, options[o].flag, fl) != 0)
                continue;
            if (arg[fl] == '=') {
                found = o;
                value = arg + fl + 1;
            } else if (arg[fl] == '\0' && options[o].is_switch) {
                found = o;
                value = "1";
            } else if (arg[fl] == '\0') {
                found = o;
                if (i + 1 >= argc) {
                    snprintf(err, errlen, "option %s needs a value", options[o].flag);
                    return AM_EINVAL;
                }
                value = argv[++i];
            } else {
                continue;
            }
            break;
        }
        if (found < 0) {
            snprintf(err, errlen, "unknown option '%s' (see --help)", arg);
            return AM_EINVAL;
        }
        if ((rc = apply(cfg, (opt_t)found, value, true, err, errlen)) != AM_OK)
            return rc;
    }

    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
        snprintf(err, errlen, "%s",
                 cfg->tls_cert ? "--tls-cert needs --tls-key (ALERTMAP_TLS_KEY) as well"
                               : "--tls-key needs --tls-cert (ALERTMAP_TLS_CERT) as well");
        return AM_EINVAL;
    }
    if (cfg->database_url == NULL) {
        snprintf(err, errlen,
                 "no database: set DATABASE_URL or pass --database-url "
                 "(e.g. postgresql://user@localhost/alertmap)");
        return AM_EINVAL;
    }
    return AM_OK;
}
