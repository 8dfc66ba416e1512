/*
 * engine/extract.c - the shared indicator rule set: loading
 * mappings/rules/indicators.yaml, compiling its patterns into one PCRE2 JIT
 * program, and scanning free text with it. See ioc.h and docs/indicators.md.
 */
#include "ioc.h"
#include "tables.h"
#include "ytree.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

#define RULES_MAX_FILE (1u << 20)
#define RULES_MAX      256

typedef struct {
    char *name;
    eng_ioc_type_t type;
    bool host_only; /* a url rule whose match is an authority: report its host */
    char *origin;   /* "indicators.yaml:LINE" */
} rule_t;

struct eng_rules {
    rule_t *rules;
    size_t n;
    bool skip_after_alnum; /* no match starts right after [A-Za-z0-9] */
    pcre2_code *code;      /* every rule as one alternative: group i+1 is rule i */
};

void eng_rules_free(eng_rules_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->rules[i].name);
        free(r->rules[i].origin);
    }
    free(r->rules);
    pcre2_code_free(r->code);
    free(r);
}

/* ---- loading --------------------------------------------------------------- */

typedef struct {
    const char *file; /* as given, for diagnostics */
    const char *base; /* file name without directories, for origins */
    am_diags_t *diags;
    int errors;
} loader_t;

static void err(loader_t *l, const yt_node_t *n, const char *fmt, ...) AM_PRINTF(3, 4);

static void err(loader_t *l, const yt_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    am_diags_vadd(l->diags, l->file, n ? n->line : 0, n ? n->col : 0, fmt, ap);
    va_end(ap);
    l->errors++;
}

static char *dup_node(const yt_node_t *n)
{
    return am_xstrndup(n->str, n->len);
}

static bool valid_name(const yt_node_t *n)
{
    if (n->len == 0 || n->len > 64)
        return false;
    for (size_t i = 0; i < n->len; i++) {
        char c = n->str[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

typedef struct {
    const yt_node_t *pattern;
    uint32_t opts;
} pending_t;

static uint32_t parse_flags(loader_t *l, const yt_node_t *f)
{
    uint32_t opts = 0;
    if (f == NULL)
        return 0;
    if (f->kind != YT_SEQ) {
        err(l, f, "'flags' must be a list, got %s", eng_yt_kind_name(f));
        return 0;
    }
    for (size_t i = 0; i < f->nitems; i++) {
        const yt_node_t *x = f->items[i];
        if (x->kind == YT_SCALAR && strcmp(x->str, "caseless") == 0)
            opts |= PCRE2_CASELESS;
        else if (x->kind == YT_SCALAR && strcmp(x->str, "extended") == 0)
            opts |= PCRE2_EXTENDED;
        else
            err(l, x, "unknown flag '%s' (expected one of: caseless, extended)",
                x->kind == YT_SCALAR ? x->str : "?");
    }
    return opts;
}

/* Compiles one pattern alone, to report errors where they are and to check
 * what the combined program relies on (no captures, no empty match). */
static void check_pattern(loader_t *l, const yt_node_t *p, uint32_t opts)
{
    int ec;
    PCRE2_SIZE off;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)p->str, p->len, opts, &ec, &off, NULL);
    if (c == NULL) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        int col = p->col + (p->quoted ? 1 : 0) + (int)off;
        am_diags_add(l->diags, l->file, p->line, col, "pattern error at offset %zu: %s",
                     (size_t)off, (const char *)msg);
        l->errors++;
        return;
    }
    uint32_t caps = 0, minlen = 0;
    pcre2_pattern_info(c, PCRE2_INFO_CAPTURECOUNT, &caps);
    pcre2_pattern_info(c, PCRE2_INFO_MINLENGTH, &minlen);
    if (caps > 0)
        err(l, p, "pattern must not contain capturing groups; use (?:...) and lookarounds");
    else if (minlen == 0)
        err(l, p, "pattern can match the empty string");
    pcre2_code_free(c);
}

static void load_rule(loader_t *l, const yt_node_t *m, rule_t *r, pending_t *pend,
                      const rule_t *prev, size_t nprev)
{
    if (m->kind != YT_MAP) {
        err(l, m, "a rule must be a mapping, got %s", eng_yt_kind_name(m));
        return;
    }
    for (size_t i = 0; i < m->npairs; i++) {
        const char *k = m->pairs[i].key->str;
        const yt_node_t *v = m->pairs[i].value;
        if (strcmp(k, "name") && strcmp(k, "type") && strcmp(k, "pattern") && strcmp(k, "flags") &&
            strcmp(k, "description") && strcmp(k, "host_only"))
            err(l, m->pairs[i].key,
                "unknown key '%s' (expected one of: name, type, pattern, flags, host_only, "
                "description)",
                k);
        else if (strcmp(k, "flags") && v->kind != YT_SCALAR)
            err(l, v, "'%s' must be a string, got %s", k, eng_yt_kind_name(v));
    }
    const yt_node_t *name = eng_yt_get(m, "name"), *type = eng_yt_get(m, "type"),
                    *pat = eng_yt_get(m, "pattern");
    if (name == NULL)
        err(l, m, "missing key '%s'", "name");
    else if (name->kind == YT_SCALAR && !valid_name(name))
        err(l, name, "bad rule name '%s' (use a-z, 0-9, '_' and '-')", name->str);
    else if (name->kind == YT_SCALAR)
        for (size_t i = 0; i < nprev; i++)
            if (prev[i].name && strcmp(prev[i].name, name->str) == 0)
                err(l, name, "duplicate rule name '%s'", name->str);
    if (type == NULL)
        err(l, m, "missing key '%s'", "type");
    else if (type->kind == YT_SCALAR && eng_ioc_type_parse(&r->type, type->str, type->len) != 0)
        err(l, type,
            "unknown indicator type '%s' (expected one of: ip, domain, url, email, hash_md5, "
            "hash_sha1, hash_sha256, account)",
            type->str);
    if (pat == NULL)
        err(l, m, "missing key '%s'", "pattern");
    const yt_node_t *ho = eng_yt_get(m, "host_only");
    if (ho != NULL && ho->kind == YT_SCALAR) {
        if (!ho->quoted && strcmp(ho->str, "true") == 0)
            r->host_only = true;
        else if (ho->quoted || strcmp(ho->str, "false") != 0)
            err(l, ho, "'host_only' must be true or false");
        if (r->host_only && type != NULL && r->type != ENG_IOC_URL)
            err(l, ho, "'host_only' is for rules of type url");
    }
    pend->opts = parse_flags(l, eng_yt_get(m, "flags"));
    if (pat != NULL && pat->kind == YT_SCALAR) {
        pend->pattern = pat;
        check_pattern(l, pat, pend->opts);
    }
    if (name != NULL && name->kind == YT_SCALAR)
        r->name = dup_node(name);
    size_t olen = strlen(l->base) + 16;
    r->origin = am_xmalloc(olen);
    snprintf(r->origin, olen, "%s:%d", l->base, m->line);
}

/* "(?:opts)pattern" of every rule, each in its own group, as alternatives. */
static int combine(eng_rules_t *r, const pending_t *pend, loader_t *l, const yt_node_t *root)
{
    am_buf_t b;
    am_buf_init(&b, 0);
    /* one shared test instead of one per alternative at every position */
    if (r->skip_after_alnum)
        am_buf_puts(&b, "(?<![A-Za-z0-9])");
    am_buf_puts(&b, "(?:");
    for (size_t i = 0; i < r->n; i++) {
        am_buf_puts(&b, i ? "|(" : "(");
        if (pend[i].opts & PCRE2_CASELESS)
            am_buf_puts(&b, "(?i)");
        if (pend[i].opts & PCRE2_EXTENDED)
            am_buf_puts(&b, "(?x)");
        am_buf_append(&b, pend[i].pattern->str, pend[i].pattern->len);
        /* a newline ends a trailing comment of an extended pattern */
        am_buf_puts(&b, (pend[i].opts & PCRE2_EXTENDED) ? "\n)" : ")");
    }
    am_buf_puts(&b, ")");
    int ec;
    PCRE2_SIZE off;
    r->code = pcre2_compile((PCRE2_SPTR)b.data, b.len, 0, &ec, &off, NULL);
    am_buf_dispose(&b);
    if (r->code == NULL) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        err(l, root, "the rules do not combine into one pattern: %s", (const char *)msg);
        return AM_EINVAL;
    }
    /* JIT where the platform has it; the interpreter obeys the same limits. */
    if (eng_pcre2_jit_enabled())
        (void)pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE);
    return 0;
}

static int load_tree(eng_rules_t *r, loader_t *l, const yt_node_t *root)
{
    if (root == NULL || root->kind != YT_MAP) {
        err(l, root, "the rule file must be a mapping with a 'rules' list");
        return AM_EINVAL;
    }
    for (size_t i = 0; i < root->npairs; i++) {
        const char *k = root->pairs[i].key->str;
        if (strcmp(k, "rules") && strcmp(k, "description") && strcmp(k, "skip_after_alnum"))
            err(l, root->pairs[i].key,
                "unknown key '%s' (expected one of: rules, skip_after_alnum, description)", k);
    }
    const yt_node_t *skip = eng_yt_get(root, "skip_after_alnum");
    if (skip != NULL) {
        if (skip->kind == YT_SCALAR && !skip->quoted && strcmp(skip->str, "true") == 0)
            r->skip_after_alnum = true;
        else if (!(skip->kind == YT_SCALAR && !skip->quoted && strcmp(skip->str, "false") == 0))
            err(l, skip, "'skip_after_alnum' must be true or false");
    }
    const yt_node_t *rules = eng_yt_get(root, "rules");
    if (rules == NULL) {
        err(l, root, "missing key '%s'", "rules");
        return AM_EINVAL;
    }
    if (rules->kind != YT_SEQ || rules->nitems == 0) {
        err(l, rules, "'rules' must be a non-empty list, got %s", eng_yt_kind_name(rules));
        return AM_EINVAL;
    }
    if (rules->nitems > RULES_MAX) {
        err(l, rules, "too many rules (at most %d)", RULES_MAX);
        return AM_EINVAL;
    }
    r->rules = am_xcalloc(rules->nitems, sizeof(*r->rules));
    pending_t *pend = am_xcalloc(rules->nitems, sizeof(*pend));
    r->n = rules->nitems;
    for (size_t i = 0; i < r->n; i++)
        load_rule(l, rules->items[i], &r->rules[i], &pend[i], r->rules, i);
    int rc = l->errors ? AM_EINVAL : 0;
    if (rc == 0)
        rc = combine(r, pend, l, root);
    free(pend);
    return rc;
}

int eng_rules_load(eng_rules_t **out, const char *path, am_diags_t *diags)
{
    *out = NULL;
    if (path == NULL) {
        am_diags_add(diags, "(none)", 0, 0, "no indicator rule file given");
        return AM_EINVAL;
    }
    char *text = NULL;
    size_t len;
    int rc = am_read_file(&text, &len, path, RULES_MAX_FILE);
    if (rc != 0) {
        if (rc == AM_ELIMIT)
            am_diags_add(diags, path, 0, 0, "rule file larger than %u bytes", RULES_MAX_FILE);
        else
            am_diags_add(diags, path, 0, 0, "cannot read rule file: %s", strerror(errno));
        return rc == AM_ELIMIT ? AM_EINVAL : AM_EIO;
    }
    am_arena_t *a = am_arena_new(16384, 0);
    eng_rules_t *r = am_xcalloc(1, sizeof(*r));
    const char *slash = strrchr(path, '/');
    loader_t l = {.file = path, .base = slash ? slash + 1 : path, .diags = diags};
    yt_node_t *root = NULL;
    rc = eng_yt_parse(&root, a, path, text, len, diags);
    if (rc == 0)
        rc = load_tree(r, &l, root);
    free(text);
    am_arena_free(a);
    if (rc != 0) {
        eng_rules_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* ---- scanning ---------------------------------------------------------------- */

/* Length of a UTF-8 punctuation or space sequence (U+00A0-U+00BF,
 * U+2000-U+206F, U+3000-U+303F) at s, or 0. */
static size_t punct_at(const unsigned char *s, size_t n)
{
    if (n >= 2 && s[0] == 0xc2 && s[1] >= 0xa0 && s[1] <= 0xbf)
        return 2;
    if (n >= 3 &&
        ((s[0] == 0xe2 && (s[1] == 0x80 || s[1] == 0x81)) || (s[0] == 0xe3 && s[1] == 0x80)))
        return 3;
    return 0;
}

/* Prose wraps names in typographic quotes and ellipses: trim them. */
static void trim_punct(const char **s, size_t *n)
{
    size_t k;
    while ((k = punct_at((const unsigned char *)*s, *n)) > 0) {
        *s += k;
        *n -= k;
    }
    for (;;) {
        if (*n >= 2 && punct_at((const unsigned char *)*s + *n - 2, 2) == 2)
            *n -= 2;
        else if (*n >= 3 && punct_at((const unsigned char *)*s + *n - 3, 3) == 3)
            *n -= 3;
        else
            break;
    }
}

/* True when the word before s[st] (spaces skipped) is "version", "ver",
 * "v", "build" or "release": a four-part version, not an address. */
static bool after_version_word(const char *s, size_t st)
{
    size_t e = st;
    while (e > 0 && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '=' || s[e - 1] == ':'))
        e--;
    size_t b = e;
    while (b > 0 && e - b < 8 &&
           ((s[b - 1] >= 'a' && s[b - 1] <= 'z') || (s[b - 1] >= 'A' && s[b - 1] <= 'Z')))
        b--;
    if (b > 0 && ((s[b - 1] >= 'a' && s[b - 1] <= 'z') || (s[b - 1] >= 'A' && s[b - 1] <= 'Z')))
        return false;
    static const char *const words[] = {"version", "ver", "v", "build", "release"};
    for (size_t i = 0; i < AM_ARRAY_LEN(words); i++)
        if (strlen(words[i]) == e - b && strncasecmp(s + b, words[i], e - b) == 0)
            return true;
    return false;
}

/* True when the name ending at s[en] is a key: "user.name=bob",
 * "user.name:admin", "user.name : admin", JSON "user.name":. A host with a
 * port ("evil.com:8080") or a scheme-less URL ("evil.com://") is not. */
static bool followed_by_key_sep(const char *s, size_t en, size_t len)
{
    if (en < len && s[en] == '"')
        en++;
    while (en < len && s[en] == ' ')
        en++; /* KQL: process.name : x */
    if (en >= len)
        return false;
    if (s[en] == '=')
        return true;
    if (s[en] != ':')
        return false;
    return en + 1 >= len || !((s[en + 1] >= '0' && s[en + 1] <= '9') || s[en + 1] == '/');
}

/* Length of the Unicode space at s (U+00A0, U+1680, U+2000-U+200B,
 * U+2028, U+2029, U+202F, U+205F, U+3000) in UTF-8, or 0. */
static size_t unicode_space_at(const unsigned char *s, size_t n)
{
    if (n >= 2 && s[0] == 0xc2 && s[1] == 0xa0)
        return 2;
    if (n < 3)
        return 0;
    if (s[0] == 0xe2 && s[1] == 0x80 &&
        (s[2] <= 0x8b || s[2] == 0xa8 || s[2] == 0xa9 || s[2] == 0xaf))
        return 3;
    if ((s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f) ||
        (s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80) ||
        (s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80))
        return 3;
    return 0;
}

/* Every Unicode space separates words like an ASCII one: points *s at a
 * copy in which each is one ' ' (unchanged when there is none). */
static int unicode_spaces_in(const char **s, size_t *len, am_arena_t *a)
{
    const unsigned char *p = (const unsigned char *)*s;
    size_t n = *len, i = 0, k = 0;
    for (; i < n; i++)
        if (p[i] >= 0xc2 && (k = unicode_space_at(p + i, n - i)) > 0)
            break;
    if (i == n)
        return 0;
    char *out = am_arena_alloc(a, n + 1);
    if (out == NULL)
        return AM_ELIMIT;
    memcpy(out, p, i);
    size_t o = i;
    while (i < n) {
        k = p[i] >= 0xc2 ? unicode_space_at(p + i, n - i) : 0;
        if (k > 0) {
            out[o++] = ' ';
            i += k;
        } else {
            out[o++] = (char)p[i++];
        }
    }
    out[o] = '\0';
    *s = out;
    *len = o;
    return 0;
}

/* Where prose or code ends the url candidate s[st..en): a quote, parenthesis,
 * bracket or brace that opens right before the url closes it (the first
 * unbalanced closer; the first quote), a backtick ends it (Markdown code),
 * and "](" splits a Markdown link. Returns the new end. */
static size_t url_context_end(const char *s, size_t st, size_t en)
{
    char open = st > 0 ? s[st - 1] : 0;
    char close = open == '('    ? ')'
                 : open == '['  ? ']'
                 : open == '{'  ? '}'
                 : open == '<'  ? '>'
                 : open == '\'' ? '\''
                                : 0;
    int depth = 0;
    for (size_t i = st; i < en; i++) {
        char c = s[i];
        if (c == '`' || (c == ']' && i + 1 < en && s[i + 1] == '('))
            return i;
        if (close == 0)
            continue;
        if (c == close && (close == '\'' || depth-- == 0))
            return i;
        if (c == open && close != '\'')
            depth++;
    }
    return en;
}

static inline bool hex_byte(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static inline bool word_byte(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (unsigned char)c >= 0x80;
}

/* Hashes in the path of a canonical url ("/gui/file/<sha256>/detection"):
 * every run of 32, 40 or 64 hex digits bounded by other bytes than letters
 * and digits. */
static int add_path_hashes(ioc_vec_t *v, am_arena_t *a, const char *url, unsigned mask,
                           const char *sf, const char *origin)
{
    const unsigned hash_bits =
        IOC_BIT(ENG_IOC_HASH_MD5) | IOC_BIT(ENG_IOC_HASH_SHA1) | IOC_BIT(ENG_IOC_HASH_SHA256);
    if (!(mask & hash_bits))
        return 0;
    const char *p = strstr(url, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    if (p == NULL)
        return 0;
    while (*p) {
        if (!hex_byte(*p)) {
            p++;
            continue;
        }
        const char *b = p;
        while (hex_byte(*p))
            p++;
        size_t n = (size_t)(p - b);
        if (word_byte(b[-1]) || word_byte(*p))
            continue;
        eng_ioc_type_t t = n == 32   ? ENG_IOC_HASH_MD5
                           : n == 40 ? ENG_IOC_HASH_SHA1
                           : n == 64 ? ENG_IOC_HASH_SHA256
                                     : ENG_IOC__COUNT;
        if (t == ENG_IOC__COUNT)
            continue;
        int rc = ioc_add_value(v, a, t, b, n, true, mask, sf, origin);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* A url candidate: the url and its host when it is one, else (another
 * scheme, or not valid) at least its host. */
static int add_url(ioc_vec_t *v, am_arena_t *a, const rule_t *rule, const char *s, size_t st,
                   size_t cn, unsigned mask, const char *sf, const char *origin)
{
    const char *c = s + st;
    if (rule->host_only)
        return ioc_add_host_after_scheme(v, a, c, cn, mask, sf, origin);
    const char *url;
    int rc = ioc_canonical(&url, ENG_IOC_URL, c, cn, true, a);
    if (rc < 0)
        return rc;
    if (url == NULL)
        return ioc_add_host_after_scheme(v, a, c, cn, mask, sf, origin);
    rc = ioc_add_canonical(v, a, ENG_IOC_URL, url, true, mask, sf, origin);
    if (rc < 0)
        return rc;
    return add_path_hashes(v, a, url, mask, sf, origin);
}

int ioc_extract(ioc_vec_t *v, am_arena_t *a, const eng_rules_t *r, const char *text, size_t len,
                unsigned mask, const char *source_field, const char *origin)
{
    if (r == NULL || r->code == NULL || text == NULL || len == 0 || (mask & IOC_MASK_ALL) == 0)
        return 0;
    const char *s = text;
    int rc = unicode_spaces_in(&s, &len, a);
    if (rc == 0)
        rc = ioc_refang_in(&s, &len, a);
    if (rc != 0)
        return rc;
    pcre2_general_context *g = ioc_pcre2_context(a);
    pcre2_match_data *md = g ? pcre2_match_data_create_from_pattern(r->code, g) : NULL;
    if (md == NULL)
        return AM_ELIMIT;
    pcre2_match_context *mc = ioc_match_context();
    PCRE2_SIZE off = 0;
    while (off < len) {
        rc = pcre2_match(r->code, (PCRE2_SPTR)s, len, off, 0, md, mc);
        if (rc < 0)
            break; /* no match, or a limit: keep what was found */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t st = ov[0], en = ov[1];
        const rule_t *rule = NULL;
        for (int g2 = 1; g2 < rc; g2++)
            if (ov[2 * g2] != PCRE2_UNSET) {
                rule = &r->rules[g2 - 1];
                break;
            }
        if (rule != NULL && rule->type == ENG_IOC_URL && !rule->host_only)
            en = url_context_end(s, st, en);
        off = en > st ? en : st + 1;
        if (rule == NULL || en <= st)
            continue;
        const char *c = s + st;
        size_t cn = en - st;
        const char *org = origin ? origin : rule->origin;
        if (rule->type == ENG_IOC_URL) {
            rc = add_url(v, a, rule, s, st, cn, mask, source_field, org);
            if (rc < 0)
                return rc;
            continue;
        }
        if (rule->type == ENG_IOC_ACCOUNT && st >= 3 && (s[st - 3] == 'n' || s[st - 3] == 'N') &&
            (s[st - 2] == 't' || s[st - 2] == 'T') && s[st - 1] == ' ' && cn > 10 &&
            strncasecmp(c, "authority\\", 10) == 0) {
            c -= 3; /* NT AUTHORITY\SYSTEM */
            cn += 3;
        }
        if (rule->type == ENG_IOC_IP && memchr(c, ':', cn) == NULL && after_version_word(s, st))
            continue;
        if (rule->type == ENG_IOC_DOMAIN && followed_by_key_sep(s, en, len))
            continue;
        trim_punct(&c, &cn);
        rc = ioc_add_value(v, a, rule->type, c, cn, true, mask, source_field, org);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int eng_extract_text(eng_indicator_t **out, size_t *n, const eng_rules_t *r, const char *text,
                     size_t len, unsigned mask, const char *source_field, am_arena_t *a)
{
    ioc_vec_t v = {.items = *out, .n = *n, .cap = *n};
    int rc = ioc_extract(&v, a, r, text, len, mask, source_field, NULL);
    *out = v.items;
    *n = v.n;
    return rc;
}
