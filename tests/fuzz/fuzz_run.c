/*
 * tests/fuzz/fuzz_run.c - fuzz target for the executor alone: the input is
 * a JSON payload, run through two programs built here in C with the set
 * builder (program.h) instead of being compiled from YAML, so the target
 * links only the run-time library (engine_run: no libyaml, no compiler, no
 * loader). The programs use every kind of value expression (paths with
 * fallbacks, constants, templates, first), every transform (regex, trim,
 * lower, map, ranges, time), match rules, split, tags and the indicator
 * rules that need no rule file (value, each, computed type, regex). Each
 * run must end in alerts or in a defined error, never a crash, a leak or an
 * unbounded run.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "program.h"

static eng_set_t *set;
static am_arena_t *A; /* the set's arena while building */

static void *zalloc(size_t n)
{
    void *p = am_arena_calloc(A, 1, n);
    if (p == NULL)
        abort();
    return p;
}

static epath_t *path(const char *text)
{
    epath_t *p = NULL;
    size_t off = 0;
    const char *msg = NULL;
    if (eng_path_compile(&p, text, strlen(text), A, &off, &msg) != 0)
        abort();
    return p;
}

static pcre2_code *regex(const char *pattern, uint32_t *groups)
{
    int ec;
    PCRE2_SIZE off;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &off, NULL);
    if (re == NULL)
        abort();
    if (eng_pcre2_jit_enabled())
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    eng_set_keep_code(set, re);
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, groups);
    return re;
}

/* A path expression with fallbacks (NULL-terminated list). */
static expr_t *paths(const char *first, ...)
{
    const char *v[8] = {first};
    size_t n = 1;
    va_list ap;
    va_start(ap, first);
    while (n < 8 && (v[n] = va_arg(ap, const char *)) != NULL)
        n++;
    va_end(ap);
    expr_t *e = zalloc(sizeof(*e));
    e->kind = EX_PATH;
    e->text = v[0];
    e->paths = zalloc(n * sizeof(*e->paths));
    e->path_origin = zalloc(n * sizeof(*e->path_origin));
    for (size_t i = 0; i < n; i++) {
        e->paths[i] = path(v[i]);
        e->path_origin[i] = am_arena_printf(A, "fuzz.yaml:%zu %s", i + 1, v[i]);
    }
    e->npaths = n;
    return e;
}

static expr_t *constant(const char *text)
{
    expr_t *e = zalloc(sizeof(*e));
    e->kind = EX_CONST;
    e->text = e->cval = text;
    e->cvlen = strlen(text);
    e->origin = "fuzz.yaml:1 const";
    return e;
}

/* "{host} / {alert.name}" with two holes. */
static expr_t *template(void)
{
    expr_t *e = zalloc(sizeof(*e));
    e->kind = EX_TEMPLATE;
    e->text = "{host} / {alert.name}";
    e->origin = "fuzz.yaml:2 template";
    e->parts = zalloc(3 * sizeof(*e->parts));
    e->parts[0].hole = path("host");
    e->parts[1].lit = " / ";
    e->parts[1].litlen = 3;
    e->parts[2].hole = path("alert.name");
    e->nparts = 3;
    return e;
}

static expr_t *first(expr_t *a, expr_t *b)
{
    expr_t *e = zalloc(sizeof(*e));
    e->kind = EX_FIRST;
    e->text = "first";
    e->alts = zalloc(2 * sizeof(*e->alts));
    e->alts[0] = a;
    e->alts[1] = b;
    e->nalts = 2;
    return e;
}

static void with_default(expr_t *e, const char *d)
{
    e->dflt = d;
    e->dlen = strlen(d);
    e->dflt_origin = "fuzz.yaml:3 default";
}

/* A `map:` table of severities; keys lowercased as the compiler stores them. */
static map_table_t *severity_map(void)
{
    static const char *const kv[][2] = {
        {"high", "High"}, {"3", "High"}, {"med", "Medium"},    {"2", "Medium"},
        {"low", "Low"},   {"1", "Low"},  {"crit", "Critical"}, {"none", NULL},
    };
    map_table_t *m = zalloc(sizeof(*m));
    size_t cap = 32;
    m->slots = zalloc(cap * sizeof(*m->slots));
    m->mask = cap - 1;
    for (size_t i = 0; i < AM_ARRAY_LEN(kv); i++) {
        size_t len = strlen(kv[i][0]);
        uint32_t h = eng_map_hash(kv[i][0], len);
        size_t j = h & m->mask;
        while (m->slots[j].key != NULL)
            j = (j + 1) & m->mask;
        m->slots[j] = (map_slot_t){kv[i][0], len, h, kv[i][1]};
        if (len > m->maxkey)
            m->maxkey = len;
    }
    return m;
}

static eng_program_t *program(const char *source, bool split)
{
    eng_program_t *p = eng_program_new(set, split ? "/fuzz/split.yaml" : "/fuzz/plain.yaml");
    if (p == NULL)
        abort();
    p->source = p->display_name = source;
    p->untitled = "Untitled fuzz alert";
    p->untitled_origin = "fuzz.yaml:1 untitled";
    uint32_t groups = 0;

    /* match: one of the title paths must be present */
    p->match = zalloc(sizeof(*p->match));
    p->match[0] = (match_rule_t){.kind = MR_ANY, .name = "has-title", .where = "fuzz.yaml:4"};
    p->match[0].paths = zalloc(3 * sizeof(epath_t *));
    p->match[0].paths[0] = path("title");
    p->match[0].paths[1] = path("alert.name");
    p->match[0].paths[2] = path("items");
    p->match[0].npaths = 3;
    p->nmatch = 1;
    if (split) {
        p->split = path("items");
        p->split_where = "fuzz.yaml:5";
    }

    p->field[ENG_F_TITLE] = first(template(), paths("title", "alert.name", "name", NULL));
    expr_t *sev = paths("severity", "level", NULL);
    sev->has_transform = true;
    sev->trim = sev->lower = true;
    sev->map = severity_map();
    sev->has_map_default = true;
    sev->map_default = NULL;
    p->field[ENG_F_SEVERITY] = first(sev, paths("score", NULL));
    expr_t *score = p->field[ENG_F_SEVERITY]->alts[1];
    score->has_transform = true;
    score->ranges = zalloc(3 * sizeof(*score->ranges));
    score->ranges[0] = (range_t){.max = 3.9, .has_max = true, .value = "Low"};
    score->ranges[1] =
        (range_t){.min = 4, .max = 6.9, .has_min = true, .has_max = true, .value = "Medium"};
    score->ranges[2] = (range_t){.min = 7, .has_min = true, .value = "High"};
    score->nranges = 3;
    expr_t *when = paths("time", "ts", "created", NULL);
    when->has_time = true;
    when->time = TP_AUTO;
    p->field[ENG_F_OCCURRED_AT] = when;
    expr_t *desc = paths("description", "message", NULL);
    desc->has_transform = true;
    desc->re = regex("^\\s*(\\S.{0,200})", &groups);
    desc->re_group = 1;
    desc->trim = true;
    p->field[ENG_F_DESCRIPTION] = desc;
    expr_t *ref = first(paths("rule.id", NULL), constant("fuzz-rule"));
    ref->has_transform = true;
    ref->upper = true;
    p->field[ENG_F_DETECTION_RULE_REF] = ref;
    p->field[ENG_F_SRC_IP] = paths("src.ip", "src_ip", NULL);
    p->field[ENG_F_SRC_HOSTNAME] = paths("host", NULL);
    p->field[ENG_F_HTTP_URL] = paths("url", "request.url", NULL);
    p->field[ENG_F_ACTOR_EMAIL] = paths("user.email", NULL);
    for (int f = 0; f < ENG_F__COUNT; f++)
        p->field_where[f] = "fuzz.yaml:6";
    p->tags = paths("tags[*]", "labels", NULL);
    with_default(p->tags, "fuzz");

    /* indicator rules */
    p->irules = zalloc(4 * sizeof(*p->irules));
    irule_t *r = p->irules;
    r[0] = (irule_t){.kind = IR_VALUE, .origin = "fuzz.yaml:7", .type = ENG_IOC_IP};
    r[0].value = paths("dst.ip", "peer", NULL);
    r[1] = (irule_t){.kind = IR_EACH, .origin = "fuzz.yaml:8", .each = path("entities[*]")};
    r[1].each_prefix = "entities[*].";
    r[1].type_expr = paths("kind", NULL);
    r[1].value = paths("value", "name", NULL);
    r[2] =
        (irule_t){.kind = IR_REGEX, .origin = "fuzz.yaml:9", .in_all = true, .label = "regex:fuzz"};
    uint32_t g2 = 0;
    r[2].re = regex("(?<ip>\\b\\d{1,3}(?:\\.\\d{1,3}){3}\\b)|(?<hash_md5>\\b[0-9a-f]{32}\\b)|"
                    "(?<domain>\\b[a-z0-9-]+\\.(?:com|net|org)\\b)",
                    &g2);
    r[2].ngroups = g2;
    r[2].group_type[1] = ENG_IOC_IP + 1;
    r[2].group_type[2] = ENG_IOC_HASH_MD5 + 1;
    r[2].group_type[3] = ENG_IOC_DOMAIN + 1;
    r[3] = (irule_t){.kind = IR_REGEX, .origin = "fuzz.yaml:10", .label = "regex:fuzz:10"};
    r[3].in = zalloc(sizeof(epath_t *));
    r[3].in[0] = path("body");
    r[3].nin = 1;
    r[3].re = r[2].re;
    r[3].ngroups = g2;
    memcpy(r[3].group_type, r[2].group_type, sizeof(r[3].group_type));
    p->nirules = 4;
    p->max_groups = (groups > g2 ? groups : g2) + 1;
    return p;
}

static void build(void)
{
    set = eng_set_new();
    A = set->arena;
    eng_program_t *progs[] = {program("plain", false), program("split", true)};
    if (eng_set_publish(set, progs, 2) != 0)
        abort();
}

void fuzz_teardown(void)
{
    eng_set_unref(set);
    set = NULL;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (set == NULL)
        build();
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, 0, &jerr);
    if (doc == NULL)
        return 0;
    am_arena_t *arena = am_arena_new(16384, 1u << 20);
    for (size_t i = 0; i < eng_set_count(set); i++) {
        eng_result_t res;
        eng_error_t err;
        int rc = eng_run(&res, eng_set_at(set, i), doc, arena, 1714557600000000LL, &err);
        if (rc == 0) {
            if (res.nalerts < 1 || res.nalerts > ENG_MAX_SPLIT)
                abort();
            for (size_t k = 0; k < res.nalerts; k++) {
                const eng_alert_t *al = &res.alerts[k];
                if (al->field[ENG_F_TITLE] == NULL || al->field[ENG_F_SEVERITY] == NULL ||
                    strlen(al->fingerprint) != 64 || al->nindicators > ENG_MAX_INDICATORS)
                    abort(); /* eng.h promises these */
                json_t *j =
                    eng_alert_json(al, ENG_JSON_INDICATORS | ENG_JSON_PROVENANCE | ENG_JSON_RAW);
                if (j == NULL)
                    abort();
                json_decref(j);
            }
        } else if (err.code == NULL || (rc != AM_EINVAL && rc != AM_ELIMIT)) {
            abort(); /* every failure has a code: bad payload or over a limit */
        }
        am_arena_reset(arena);
    }
    am_arena_free(arena);
    json_decref(doc);
    return 0;
}
