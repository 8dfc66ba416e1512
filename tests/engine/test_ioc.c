/* tests/engine/test_ioc.c - canonical forms, refanging and the indicator vector. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ioc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    eng_ioc_type_t type;
    const char *in;
    const char *trusted; /* expected canonical form, NULL = rejected */
    const char *strict;
} canon_case_t;

#define IP     ENG_IOC_IP
#define DOM    ENG_IOC_DOMAIN
#define URL    ENG_IOC_URL
#define EMAIL  ENG_IOC_EMAIL
#define MD5    ENG_IOC_HASH_MD5
#define SHA1   ENG_IOC_HASH_SHA1
#define SHA256 ENG_IOC_HASH_SHA256
#define ACCT   ENG_IOC_ACCOUNT

#define H64 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define H40 "da39a3ee5e6b4b0d3255bfef95601890afd80709"
#define H32 "d41d8cd98f00b204e9800998ecf8427e"

static const canon_case_t cases[] = {
    /* ---- ip ---- */
    {IP, "203.0.113.9", "203.0.113.9", "203.0.113.9"},
    {IP, " 203.0.113.9\n", "203.0.113.9", "203.0.113.9"},
    {IP, "203.0.113.9:4444", "203.0.113.9", "203.0.113.9"},
    {IP, "203[.]0[.]113[.]9", "203.0.113.9", "203.0.113.9"},
    {IP, "203.0.113(.)9", "203.0.113.9", "203.0.113.9"},
    {IP, "10.0.0.1", "10.0.0.1", "10.0.0.1"},
    {IP, "192.168.1.1", "192.168.1.1", "192.168.1.1"},
    {IP, "0.0.0.0", "0.0.0.0", "0.0.0.0"},
    {IP, "255.255.255.255", "255.255.255.255", "255.255.255.255"},
    {IP, "1.2.3.4.5", NULL, NULL},
    {IP, "999.1.1.1", NULL, NULL},
    {IP, "256.1.1.1", NULL, NULL},
    {IP, "1.2.3", NULL, NULL},
    {IP, "01.2.3.4", NULL, NULL},
    {IP, "1.2.3.04", NULL, NULL},
    {IP, "1.2.3.4:", NULL, "1.2.3.4"},
    {IP, "1.2.3.4:99999", NULL, NULL},
    {IP, "1.2.3.4/24", NULL, NULL},
    {IP, "10.0.19041.1", NULL, NULL},
    {IP, "1.3.6.1.4.1", NULL, NULL},
    {IP, "1.2.3.4.", NULL, "1.2.3.4"},
    {IP, "", NULL, NULL},
    {IP, "example.com", NULL, NULL},
    {IP, "2001:DB8:0:0:0:0:0:1", "2001:db8::1", "2001:db8::1"},
    {IP, "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1", "2001:db8::1:0:0:1"},
    {IP, "2001:db8::0:1", "2001:db8::1", "2001:db8::1"},
    {IP, "2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1", "2001:db8::1"},
    {IP, "2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},
    {IP, "[2001:db8::1]", "2001:db8::1", "2001:db8::1"},
    {IP, "[2001:db8::1]:443", "2001:db8::1", "2001:db8::1"},
    {IP, "fe80::1%eth0", "fe80::1", "fe80::1"},
    {IP, "[fe80::1%25eth0]:8080", "fe80::1", "fe80::1"},
    {IP, "::1", "::1", "::1"},
    {IP, "::ffff:192.0.2.1", "::ffff:192.0.2.1", "::ffff:192.0.2.1"},
    {IP, "::", "::", NULL},
    {IP, "ad::be", "ad::be", NULL},
    {IP, "2001:db8::1::2", NULL, NULL},
    {IP, "10:00:00", NULL, NULL},
    {IP, "00:1a:2b:3c:4d:5e", NULL, NULL},
    {IP, "fe80::1%", NULL, NULL},
    {IP, "[2001:db8::1]x", NULL, NULL},
    /* address literals as in e-mail: brackets around IPv4, an "IPv6:" tag */
    {IP, "[198.51.100.1]", "198.51.100.1", "198.51.100.1"},
    {IP, "[IPv6:2001:DB8::1]", "2001:db8::1", "2001:db8::1"},
    {IP, "[ipv6:198.51.100.1]", NULL, NULL},
    {IP, "[198.51.100.256]", NULL, NULL},
    /* ---- domain ---- */
    {DOM, "Example.COM", "example.com", "example.com"},
    {DOM, "EVIL.EXAMPLE.COM", "evil.example.com", "evil.example.com"},
    {DOM, "example.com.", "example.com", "example.com"},
    {DOM, "evil[.]com", "evil.com", "evil.com"},
    {DOM, "evil[dot]com", "evil.com", "evil.com"},
    {DOM, "evil(DOT)com", "evil.com", "evil.com"},
    {DOM, "evil{.}com", "evil.com", "evil.com"},
    {DOM, "evil\\.com", "evil.com", "evil.com"},
    {DOM, "ws-01.corp.local", "ws-01.corp.local", NULL},
    {DOM, "host.example", "host.example", NULL},
    {DOM, "WS-01", NULL, NULL}, /* a single label is a short host name, no domain */
    {DOM, "localhost", NULL, NULL},
    {DOM, "_ldap._tcp.dc.example.com", "_ldap._tcp.dc.example.com", NULL},
    {DOM, "bücher.de", "xn--bcher-kva.de", "xn--bcher-kva.de"},
    {DOM, "BÜCHER.DE", "xn--bcher-kva.de", "xn--bcher-kva.de"},
    {DOM, "пример.рф", "xn--e1afmkfd.xn--p1ai", "xn--e1afmkfd.xn--p1ai"},
    {DOM, "xn--bcher-kva.de", "xn--bcher-kva.de", "xn--bcher-kva.de"},
    {DOM, "evil.co.uk", "evil.co.uk", "evil.co.uk"},
    {DOM, "co.uk", "co.uk", NULL},
    {DOM, "com", NULL, NULL},
    {DOM, "-evil.com", NULL, NULL},
    {DOM, "evil-.com", NULL, NULL},
    {DOM, "ev il.com", NULL, NULL},
    {DOM, "evil..com", NULL, NULL},
    {DOM, ".evil.com", NULL, NULL},
    {DOM, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com", /* 64 */
     NULL, NULL},
    {DOM, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com", /* 63 */
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com"},
    {DOM, "1.2.3.4.5", NULL, NULL},
    {DOM, "10.0.19041.1", NULL, NULL},
    {DOM, "invoice.pdf", "invoice.pdf", NULL},
    {DOM, "setup.exe", "setup.exe", NULL},
    {DOM, "report.docx", "report.docx", NULL},
    {DOM, "payload.zip", "payload.zip", NULL},
    {DOM, "README.md", "readme.md", NULL},
    {DOM, "install.sh", "install.sh", NULL},
    {DOM, "System.Net.WebClient", "system.net.webclient", NULL},
    {DOM, "System.Net", "system.net", NULL},
    {DOM, "Google.com", "google.com", "google.com"},
    {DOM, "evil.example.com/path", NULL, NULL},
    {DOM, "evil.example.com:8080", "evil.example.com", "evil.example.com"},
    {DOM, "evil.example.com:", NULL, NULL},
    {DOM, "evil.example.com:http", NULL, NULL},
    {DOM, "evil_host.example.com", "evil_host.example.com", NULL},
    /* ---- url ---- */
    {URL, "HTTP://Evil.Example.COM/Path?Q=A#F", "http://evil.example.com/Path?Q=A#F",
     "http://evil.example.com/Path?Q=A#F"},
    {URL, "hxxp://evil[.]com/a", "http://evil.com/a", "http://evil.com/a"},
    {URL, "hXXps[://]evil[.]com/a", "https://evil.com/a", "https://evil.com/a"},
    {URL, "hxxps[:]//evil[.]com", "https://evil.com", "https://evil.com"},
    {URL, "fxp://files.example.com/x", "ftp://files.example.com/x", "ftp://files.example.com/x"},
    {URL, "https://evil.com", "https://evil.com", "https://evil.com"},
    {URL, "https://evil.com:8443/x", "https://evil.com:8443/x", "https://evil.com:8443/x"},
    {URL, "https://User:Pw@Evil.com/x", "https://User:Pw@evil.com/x", "https://User:Pw@evil.com/x"},
    {URL, "http://[2001:DB8::1]:80/x", "http://[2001:db8::1]:80/x", "http://[2001:db8::1]:80/x"},
    {URL, "http://203.0.113.9:8080/a", "http://203.0.113.9:8080/a", "http://203.0.113.9:8080/a"},
    {URL, "http://999.1.1.1/a", NULL, NULL},
    {URL, "http://bücher.de/ü", "http://xn--bcher-kva.de/ü", "http://xn--bcher-kva.de/ü"},
    {URL, "https://evil.com/a.", "https://evil.com/a.", "https://evil.com/a"},
    {URL, "https://evil.com/a).", "https://evil.com/a).", "https://evil.com/a"},
    {URL, "https://en.wikipedia.org/wiki/Foo_(bar)", "https://en.wikipedia.org/wiki/Foo_(bar)",
     "https://en.wikipedia.org/wiki/Foo_(bar)"},
    {URL, "https://en.wikipedia.org/wiki/Foo_(bar))", "https://en.wikipedia.org/wiki/Foo_(bar))",
     "https://en.wikipedia.org/wiki/Foo_(bar)"},
    {URL, "https://evil.com/x?a=[1]", "https://evil.com/x?a=[1]", "https://evil.com/x?a=[1]"},
    {URL, "https://evil.com/x'\"!?;:,", NULL, "https://evil.com/x"},
    {URL, "https://evil.com/x\xe2\x80\x9d", "https://evil.com/x\xe2\x80\x9d", "https://evil.com/x"},
    {URL, "https://evil.com/x>", "https://evil.com/x>", "https://evil.com/x"},
    {URL, "https://evil.com/a b", NULL, NULL},
    {URL, "https://evil.com/a\xc2\xa0next", "https://evil.com/a\xc2\xa0next", "https://evil.com/a"},
    {URL, "https://evil.com/a\xe2\x80\x83.", "https://evil.com/a\xe2\x80\x83.",
     "https://evil.com/a"},
    {URL, "https://evil.com/a<b", NULL, NULL},
    {URL, "https:///a", NULL, NULL},
    {URL, "https://:80/a", NULL, NULL},
    {URL, "evil.com/a", NULL, NULL},
    {URL, "://evil.com", NULL, NULL},
    {URL, "https://evil.com:99999/", NULL, NULL},
    {URL, "http://intranet/x", "http://intranet/x", "http://intranet/x"},
    /* ---- email ---- */
    {EMAIL, "Bob.Smith@Example.COM", "bob.smith@example.com", "bob.smith@example.com"},
    {EMAIL, "mailto:bob@example.com", "bob@example.com", "bob@example.com"},
    {EMAIL, "<bob@example.com>", "bob@example.com", "bob@example.com"},
    {EMAIL, "\"Bob Smith\" <Bob@Example.com>", "bob@example.com", "bob@example.com"},
    {EMAIL, "Bob Smith <mailto:bob@example.com>", "bob@example.com", "bob@example.com"},
    {EMAIL, "bob[at]evil[.]com", "bob@evil.com", "bob@evil.com"},
    {EMAIL, "bob(at)evil(.)com", "bob@evil.com", "bob@evil.com"},
    {EMAIL, "bob[@]evil.com", "bob@evil.com", "bob@evil.com"},
    {EMAIL, "bob@corp.local", "bob@corp.local", NULL},
    {EMAIL, "bob@CORP", "bob@corp", NULL},
    {EMAIL, "bob@münchen.de", "bob@xn--mnchen-3ya.de", "bob@xn--mnchen-3ya.de"},
    {EMAIL, "@example.com", NULL, NULL},
    {EMAIL, "bob@", NULL, NULL},
    {EMAIL, "bob", NULL, NULL},
    {EMAIL, "bo b@example.com", NULL, NULL},
    {EMAIL, ".bob@example.com", NULL, NULL},
    {EMAIL, "bob@exa_mple.com", "bob@exa_mple.com", NULL},
    {EMAIL, "bob@1.2.3.4", NULL, NULL},
    /* ---- hashes ---- */
    {SHA256, H64, H64, H64},
    {SHA256, "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", H64, H64},
    {SHA256, H64 "0", NULL, NULL},
    {SHA256, H40, NULL, NULL},
    {SHA1, H40, H40, H40},
    {SHA1, " DA39A3EE5E6B4B0D3255BFEF95601890AFD80709 ", H40, H40},
    {MD5, H32, H32, H32},
    {MD5, H40, NULL, NULL},
    {MD5, "d41d8cd98f00b204e9800998ecf8427g", NULL, NULL},
    {MD5, "12345678901234567890123456789012", "12345678901234567890123456789012", NULL},
    {MD5, "00000000000000000000000000000000", "00000000000000000000000000000000", NULL},
    {MD5, "ffffffffffffffffffffffffffffffff", "ffffffffffffffffffffffffffffffff", NULL},
    /* ---- account ---- */
    {ACCT, "CORP\\Bob", "corp\\bob", "corp\\bob"},
    {ACCT, "CORP\\\\Bob", "corp\\bob", "corp\\bob"},
    /* canonical values are fixed points: one that still spells a defanged
     * token after refanging would change when read again (found by
     * fuzz_extract: "CORP\\.svc" became "corp\.svc", then "corp.svc") */
    {ACCT, "CORP\\\\.svc", NULL, NULL},
    {ACCT, "CORP\\.svc", "corp.svc", "corp.svc"},
    {ACCT, "x[[.]]y", NULL, NULL}, /* "[[.]]" refangs to "[.]" */
    {ACCT, "x[[.].]y", "x[..]y", "x[..]y"},
    {ACCT, "CORP\\x(at)", "corp\\x@", "corp\\x@"},
    {ACCT, "CORP\\x((at))", NULL, NULL},
    {URL, "http://evil.com/a[[.]]b", NULL, NULL},
    {URL, "http://evil.com/a[.]b", "http://evil.com/a.b", "http://evil.com/a.b"},
    {ACCT, "Bob@Contoso.com", "bob@contoso.com", "bob@contoso.com"},
    {ACCT, "  Bob  ", "bob", "bob"},
    {ACCT, "John Smith", "john smith", NULL},
    {ACCT, "NT AUTHORITY\\SYSTEM", "nt authority\\system", "nt authority\\system"},
    {ACCT, "CORP\\WS01$", "corp\\ws01$", "corp\\ws01$"},
    {ACCT, "C:\\Users\\bob", NULL, NULL},
    {ACCT, "C:\\Windows", NULL, NULL},
    {ACCT, "\\\\srv\\share", NULL, NULL},
    {ACCT, "HKLM\\Software", NULL, NULL},
    {ACCT, "HKEY_LOCAL_MACHINE\\Software", NULL, NULL},
    {ACCT, "TEMP\\a.ps1", "temp\\a.ps1", NULL},
    {ACCT, "CORP\\john.doe", "corp\\john.doe", "corp\\john.doe"},
    {ACCT, "CORP\\", NULL, NULL},
    {ACCT, "\\bob", NULL, NULL},
    {ACCT, "a\\b\\c", NULL, NULL},
    {ACCT, "bob\x01", NULL, NULL},
    {ACCT, "", NULL, NULL},
    /* every value is valid UTF-8 */
    {ACCT, "bob\xc3", NULL, NULL},
    {ACCT,
     "b\xc0\xaf"
     "b",
     NULL, NULL}, /* overlong */
    {ACCT,
     "b\xed\xa0\x80"
     "b",
     NULL, NULL}, /* surrogate */
    {ACCT,
     "b\xf4\x90\x80\x80"
     "b",
     NULL, NULL}, /* past U+10FFFF */
    {ACCT, "j\xc3\xb6rg", "j\xc3\xb6rg", "j\xc3\xb6rg"},
    {ACCT, "CORP\\j\xc3\xb6rg", "corp\\j\xc3\xb6rg", "corp\\j\xc3\xb6rg"},
    {URL, "http://evil.com/\xff", NULL, NULL},
    {IP, "f::0", "f::", NULL},
};

static void test_canonical_table(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(4096, 0);
    int failures = 0;
    for (size_t i = 0; i < AM_ARRAY_LEN(cases); i++) {
        const canon_case_t *c = &cases[i];
        for (int strict = 0; strict <= 1; strict++) {
            const char *want = strict ? c->strict : c->trusted;
            const char *got = eng_ioc_canonical(c->type, c->in, strlen(c->in), strict, a);
            bool ok = (want == NULL && got == NULL) ||
                      (want != NULL && got != NULL && strcmp(want, got) == 0);
            if (!ok) {
                fprintf(stderr, "case %zu %s(%s, %s): want %s, got %s\n", i,
                        eng_ioc_type_name(c->type), c->in, strict ? "strict" : "trusted",
                        want ? want : "(rejected)", got ? got : "(rejected)");
                failures++;
            }
        }
    }
    am_arena_free(a);
    assert_int_equal(failures, 0);
}

static void test_value_not_nul_terminated(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(4096, 0);
    const char buf[] = "1.2.3.45";
    const char *got = eng_ioc_canonical(ENG_IOC_IP, buf, 7, true, a);
    assert_non_null(got);
    assert_string_equal(got, "1.2.3.4");
    assert_null(eng_ioc_canonical(ENG_IOC_IP, NULL, 0, true, a));
    assert_null(eng_ioc_canonical(ENG_IOC__COUNT, "1.2.3.4", 7, true, a));
    am_arena_free(a);
}

typedef struct {
    const char *in, *out;
} refang_case_t;

static const refang_case_t refangs[] = {
    {"evil[.]com", "evil.com"},
    {"http://evil.com[/]x", "http://evil.com/x"},
    /* a bracket token with one space on each side, between words, takes them */
    {"evil [.] com", "evil.com"},
    {"bob [at] evil.com", "bob@evil.com"},
    {"bob {@} evil (dot) com", "bob@evil.com"},
    {"meet (at) noon", "meet @ noon"},
    {"a  [.] b", "a  . b"},
    {"end [.] ", "end . "},
    {"x [.]y", "x .y"},
    {"evil(.)com", "evil.com"},
    {"evil{.}com", "evil.com"},
    {"evil[dot]com", "evil.com"},
    {"evil[DOT]com", "evil.com"},
    {"evil(dot)com", "evil.com"},
    {"evil\\.com", "evil.com"},
    {"hxxp://x", "http://x"},
    {"HXXPS://x", "https://x"},
    {"hXxPs[:]//x", "https://x"},
    {"hxxp[://]x", "http://x"},
    {"fxp://x", "ftp://x"},
    {"FXP://x", "ftp://x"},
    {"bob[at]x", "bob@x"},
    {"bob(AT)x", "bob@x"},
    {"bob[@]x", "bob@x"},
    {"a[:]b", "a:b"},
    {"see hxxp://a[.]b[.]c/d and bob[at]e[.]f", "see http://a.b.c/d and bob@e.f"},
    /* not defanged: left alone */
    {"hxxpx", "hxxpx"},
    {"shxxp://x", "shxxp://x"},
    {"fxpx", "fxpx"},
    {"[x]", "[x]"},
    {"(a)", "(a)"},
    {"[", "["},
    {"(d", "(d"},
    {"\\", "\\"},
    {"C:\\Users", "C:\\Users"},
    {"", ""},
};

static void test_refang(void **state)
{
    (void)state;
    for (size_t i = 0; i < AM_ARRAY_LEN(refangs); i++) {
        char out[128];
        size_t n = ioc_refang(out, refangs[i].in, strlen(refangs[i].in));
        assert_string_equal(out, refangs[i].out);
        assert_int_equal(n, strlen(refangs[i].out));
        assert_int_equal(ioc_is_defanged(refangs[i].in, strlen(refangs[i].in)),
                         strcmp(refangs[i].in, refangs[i].out) != 0);
    }
    /* in place */
    char buf[] = "a[.]b[.]c";
    size_t n = ioc_refang(buf, buf, strlen(buf));
    assert_string_equal(buf, "a.b.c");
    assert_int_equal(n, 5);
}

static void test_type_names(void **state)
{
    (void)state;
    const char *names[] = {"ip",       "domain",    "url",         "email",
                           "hash_md5", "hash_sha1", "hash_sha256", "account"};
    for (unsigned i = 0; i < ENG_IOC__COUNT; i++) {
        assert_string_equal(eng_ioc_type_name((eng_ioc_type_t)i), names[i]);
        eng_ioc_type_t t = ENG_IOC__COUNT;
        assert_int_equal(eng_ioc_type_parse(&t, names[i], strlen(names[i])), 0);
        assert_int_equal(t, i);
    }
    eng_ioc_type_t t;
    assert_int_equal(eng_ioc_type_parse(&t, "IP", 2), AM_EINVAL);
    assert_int_equal(eng_ioc_type_parse(&t, "ipv4", 4), AM_EINVAL);
    assert_int_equal(eng_ioc_type_parse(&t, "ip", 1), AM_EINVAL);
    assert_int_equal(eng_ioc_type_parse(&t, "", 0), AM_EINVAL);
    assert_int_equal(eng_ioc_type_parse(&t, NULL, 0), AM_EINVAL);
    assert_string_equal(eng_ioc_type_name(ENG_IOC__COUNT), "unknown");
}

static void test_vec_dedup_and_limit(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(4096, 0);
    ioc_vec_t v = {0};
    assert_int_equal(ioc_vec_add(&v, a, ENG_IOC_IP, "1.2.3.4", "f1", "o1"), 0);
    assert_int_equal(ioc_vec_add(&v, a, ENG_IOC_IP, "1.2.3.4", "f2", "o2"), 0);
    assert_int_equal(ioc_vec_add(&v, a, ENG_IOC_DOMAIN, "1.2.3.4", "f3", "o3"), 0);
    assert_int_equal(v.n, 2);
    assert_string_equal(v.items[0].source_field, "f1"); /* first provenance kept */
    assert_string_equal(v.items[0].origin, "o1");
    assert_int_equal(v.items[1].type, ENG_IOC_DOMAIN);
    for (int i = 0; v.n < ENG_MAX_INDICATORS; i++) {
        char *s = am_arena_printf(a, "host%d.example.com", i);
        assert_int_equal(ioc_vec_add(&v, a, ENG_IOC_DOMAIN, s, "f", NULL), 0);
    }
    assert_int_equal(v.n, ENG_MAX_INDICATORS);
    assert_int_equal(ioc_vec_add(&v, a, ENG_IOC_DOMAIN, "new.example.com", "f", NULL), AM_ELIMIT);
    /* a duplicate at the bound is not an error */
    assert_int_equal(ioc_vec_add(&v, a, ENG_IOC_IP, "1.2.3.4", "f", NULL), 0);
    assert_int_equal(v.n, ENG_MAX_INDICATORS);
    assert_string_equal(v.items[5].value, "host3.example.com");
    am_arena_free(a);
}

static void test_vec_arena_cap(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(256, 512);
    ioc_vec_t v = {0};
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++)
        rc = ioc_vec_add(&v, a, ENG_IOC_IP, i % 2 ? "1.1.1.1" : "2.2.2.2", "f", NULL);
    assert_int_equal(rc, 0); /* only two distinct values: fits */
    for (int i = 0; i < 100 && rc == 0; i++) {
        static char vals[100][24];
        snprintf(vals[i], sizeof(vals[i]), "10.0.0.%d", i);
        rc = ioc_vec_add(&v, a, ENG_IOC_IP, vals[i], "f", NULL);
    }
    assert_int_equal(rc, AM_ELIMIT); /* the arena cap is a limit */
    am_arena_free(a);
}

static char *dump(const ioc_vec_t *v, am_arena_t *a)
{
    char *s = am_arena_strdup(a, "");
    for (size_t i = 0; i < v->n; i++)
        s = am_arena_printf(a, "%s%s:%s\n", s, eng_ioc_type_name(v->items[i].type),
                            v->items[i].value);
    return s;
}

static void add(ioc_vec_t *v, am_arena_t *a, eng_ioc_type_t t, const char *val, bool strict,
                unsigned mask)
{
    assert_int_equal(ioc_add_value(v, a, t, val, strlen(val), strict, mask, "field", "o"), 0);
}

static void test_add_value(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(4096, 0);
    ioc_vec_t v = {0};
    add(&v, a, URL, "hxxps://Evil[.]Example.com/x", false, IOC_MASK_ALL);
    add(&v, a, URL, "http://203.0.113.5:8080/a", false, IOC_MASK_ALL);
    add(&v, a, URL, "http://[2001:db8::5]/a", false, IOC_MASK_ALL);
    add(&v, a, URL, "http://intranet.corp.local/a", true, IOC_MASK_ALL);
    add(&v, a, DOM, "10.1.2.3", false, IOC_MASK_ALL);
    add(&v, a, DOM, "WS-01.corp.local", false, IOC_MASK_ALL);
    add(&v, a, EMAIL, "alice@corp.local", true, IOC_MASK_ALL);
    add(&v, a, EMAIL, "alice@corp.local", false, IOC_MASK_ALL);
    add(&v, a, EMAIL, "not an email", true, IOC_MASK_ALL);
    add(&v, a, SHA1, H32, false, IOC_MASK_ALL);
    add(&v, a, URL, "https://only-domain.example.org/", true, IOC_BIT(ENG_IOC_DOMAIN));
    add(&v, a, ACCT, "CORP\\Bob", false, IOC_BIT(ENG_IOC_IP));
    assert_string_equal(dump(&v, a), "url:https://evil.example.com/x\n"
                                     "domain:evil.example.com\n"
                                     "url:http://203.0.113.5:8080/a\n"
                                     "ip:203.0.113.5\n"
                                     "url:http://[2001:db8::5]/a\n"
                                     "ip:2001:db8::5\n"
                                     "url:http://intranet.corp.local/a\n"
                                     "ip:10.1.2.3\n"
                                     "domain:ws-01.corp.local\n"
                                     "account:alice@corp.local\n"
                                     "email:alice@corp.local\n"
                                     "domain:only-domain.example.org\n");
    assert_string_equal(v.items[0].source_field, "field");
    assert_string_equal(v.items[0].origin, "o");
    /* a full vector: AM_ELIMIT passes through */
    ioc_vec_t full = {0};
    for (int i = 0; i < ENG_MAX_INDICATORS; i++)
        assert_int_equal(ioc_vec_add(&full, a, ENG_IOC_IP,
                                     am_arena_printf(a, "10.0.%d.%d", i / 256, i % 256), "f", NULL),
                         0);
    assert_int_equal(
        ioc_add_value(&full, a, URL, "http://x.example.com/", 21, false, IOC_MASK_ALL, "f", NULL),
        AM_ELIMIT);
    am_arena_free(a);
}

static void test_url_host(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(4096, 0);
    assert_string_equal(ioc_url_host("https://u:p@evil.com:8443/x?y#z", a), "evil.com");
    assert_string_equal(ioc_url_host("http://[2001:db8::1]:80/", a), "2001:db8::1");
    assert_string_equal(ioc_url_host("http://1.2.3.4", a), "1.2.3.4");
    assert_null(ioc_url_host("nope", a));
    assert_null(ioc_url_host(NULL, a));
    am_arena_free(a);
}

static void test_private_ranges(void **state)
{
    (void)state;
    const char *priv[] = {"10.1.2.3",  "172.16.0.1",  "172.31.255.255", "192.168.0.1",
                          "127.0.0.1", "169.254.1.1", "100.64.0.1",     "0.0.0.0",
                          "::1",       "::",          "fd00::1",        "fe80::1"};
    const char *pub[] = {"8.8.8.8",     "172.32.0.1",  "172.15.0.1", "203.0.113.9",
                         "100.128.0.1", "2001:db8::1", "fec0::1"};
    for (size_t i = 0; i < AM_ARRAY_LEN(priv); i++)
        assert_true(ioc_ip_is_private(priv[i]));
    for (size_t i = 0; i < AM_ARRAY_LEN(pub); i++)
        assert_false(ioc_ip_is_private(pub[i]));
    assert_false(ioc_ip_is_private("not an ip"));
}

/* A declared single-label name ("instance: Grafana") is no domain; a url
 * with such a host stays a url, without a domain. */
static void test_declared_single_label(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(4096, 0);
    ioc_vec_t v = {0};
    add(&v, a, DOM, "Grafana", false, IOC_MASK_ALL);
    add(&v, a, DOM, "localhost:9090", false, IOC_MASK_ALL);
    add(&v, a, ENG_IOC_URL, "http://grafana:3000/d/x", false, IOC_MASK_ALL);
    add(&v, a, DOM, "grafana.example.com", false, IOC_MASK_ALL);
    assert_string_equal(dump(&v, a), "url:http://grafana:3000/d/x\n"
                                     "domain:grafana.example.com\n");
    am_arena_free(a);
}

/* Loopback and unspecified addresses are kept (and private); the caller
 * that flags tells them apart with ioc_ip_is_local(). */
static void test_local_addresses(void **state)
{
    (void)state;
    const char *local[] = {"127.0.0.1", "127.1.2.3", "0.0.0.0", "::1", "::"};
    const char *other[] = {"10.0.0.1", "0.0.0.1", "128.0.0.1", "::2", "fe80::1", "8.8.8.8"};
    for (size_t i = 0; i < AM_ARRAY_LEN(local); i++) {
        assert_true(ioc_ip_is_local(local[i]));
        assert_true(ioc_ip_is_private(local[i]));
    }
    for (size_t i = 0; i < AM_ARRAY_LEN(other); i++)
        assert_false(ioc_ip_is_local(other[i]));
    assert_false(ioc_ip_is_local("localhost"));
    am_arena_t *a = am_arena_new(4096, 0);
    assert_string_equal(eng_ioc_canonical(ENG_IOC_IP, "127.0.0.1", 9, false, a), "127.0.0.1");
    assert_string_equal(eng_ioc_canonical(ENG_IOC_IP, "0.0.0.0", 7, true, a), "0.0.0.0");
    am_arena_free(a);
}

/* The index finds duplicates among many items, also among items the vector
 * was given at start or that were appended by hand. */
static void test_vec_index(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(0, 0);
    ioc_vec_t v = {0};
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 900; i++) {
            char *s = am_arena_printf(a, "10.%d.%d.1", i / 256, i % 256);
            assert_int_equal(ioc_vec_add(&v, a, ENG_IOC_IP, s, "f", NULL), 0);
        }
    assert_int_equal(v.n, 900);
    for (int i = 0; i < 900; i++)
        assert_string_equal(v.items[i].value, am_arena_printf(a, "10.%d.%d.1", i / 256, i % 256));
    /* same value, other type: another indicator */
    assert_int_equal(ioc_vec_add(&v, a, ENG_IOC_DOMAIN, "10.0.0.1", "f", NULL), 0);
    assert_int_equal(v.n, 901);
    /* a vector made from an array */
    eng_indicator_t given[2] = {{.type = ENG_IOC_IP, .value = "1.1.1.1"},
                                {.type = ENG_IOC_URL, .value = "http://a.com/"}};
    ioc_vec_t w = {.items = given, .n = 2, .cap = 2};
    assert_int_equal(ioc_vec_add(&w, a, ENG_IOC_IP, "1.1.1.1", "f", NULL), 0);
    assert_int_equal(ioc_vec_add(&w, a, ENG_IOC_URL, "http://a.com/", "f", NULL), 0);
    assert_int_equal(w.n, 2);
    assert_int_equal(ioc_vec_add(&w, a, ENG_IOC_IP, "2.2.2.2", "f", NULL), 0);
    assert_int_equal(w.n, 3);
    /* appended by hand after the index was made */
    w.items[w.n++] = (eng_indicator_t){.type = ENG_IOC_IP, .value = "3.3.3.3"};
    assert_int_equal(ioc_vec_add(&w, a, ENG_IOC_IP, "3.3.3.3", "f", NULL), 0);
    assert_int_equal(w.n, 4);
    am_arena_free(a);
}

static void test_match_context_bounds(void **state)
{
    (void)state;
    pcre2_match_context *mc = ioc_match_context();
    assert_non_null(mc);
    assert_ptr_equal(mc, ioc_match_context());
    /* catastrophic backtracking is cut off by the match limit */
    int ec;
    PCRE2_SIZE off;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR) "^(a+)+$", PCRE2_ZERO_TERMINATED, 0, &ec, &off, NULL);
    assert_non_null(re);
    am_arena_t *a = am_arena_new(4096, 0);
    pcre2_general_context *g = ioc_pcre2_context(a);
    assert_non_null(g);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, g);
    assert_non_null(md);
    char subject[64];
    memset(subject, 'a', sizeof(subject) - 1);
    subject[sizeof(subject) - 2] = 'b';
    subject[sizeof(subject) - 1] = '\0';
    for (int jit = 0; jit <= 1; jit++) {
        if (jit)
            assert_int_equal(pcre2_jit_compile(re, PCRE2_JIT_COMPLETE), 0);
        int rc = pcre2_match(re, (PCRE2_SPTR)subject, sizeof(subject) - 1, 0, 0, md, mc);
        assert_true(rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
                    rc == PCRE2_ERROR_HEAPLIMIT);
    }
    pcre2_code_free(re);
    am_arena_free(a);
}

static void test_hostile_values(void **state)
{
    (void)state;
    am_arena_t *a = am_arena_new(4096, 0);
    /* NUL bytes inside the given length, invalid UTF-8, huge values */
    const char nul_dom[] = "evil.com\0x.com";
    const char nul_ip[] = "1.2.3.4\0";
    for (unsigned t = 0; t < ENG_IOC__COUNT; t++) {
        for (int strict = 0; strict <= 1; strict++) {
            assert_null(eng_ioc_canonical(t, nul_dom, sizeof(nul_dom) - 1, strict, a));
            assert_null(eng_ioc_canonical(t, "\xff\xfe.com", 6, strict, a));
        }
    }
    assert_null(eng_ioc_canonical(ENG_IOC_IP, nul_ip, sizeof(nul_ip) - 1, false, a));
    size_t big = 1 << 20;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, 'a', big);
    memcpy(huge, "http://", 7);
    huge[100] = '.';
    for (unsigned t = 0; t < ENG_IOC__COUNT; t++)
        assert_null(eng_ioc_canonical(t, huge, big, false, a));
    assert_true(am_arena_used(a) < 64 * 1024);
    free(huge);
    am_arena_free(a);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Random values from an alphabet that builds near-valid indicators: nothing
 * crashes (ASan/UBSan builds), and a canonical value is a fixed point. */
static void test_random_values_are_fixed_points(void **state)
{
    (void)state;
    static const char *const parts[] = {
        "a",
        "Z",
        "0",
        "1",
        "9",
        "255",
        "256",
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
        "xn--",
        "ü",
        "\xe2\x80\x9d",
        "\xff",
        " ",
        "\t",
        "f",
        "e3b0c442",
        "98fc1c14",
        "9afbf4c8",
        "mailto:",
        "<",
        ">",
        "\"",
        "'",
        "!",
        "?",
        "#",
        "$",
        "zip",
        "NT ",
        "HKLM",
        "C:",
    };
    am_arena_t *a = am_arena_new(65536, 0);
    char buf[256];
    int checked = 0;
    for (int iter = 0; iter < 40000; iter++) {
        size_t n = 0, k = 1 + rng() % 12;
        for (size_t i = 0; i < k; i++) {
            const char *p = parts[rng() % AM_ARRAY_LEN(parts)];
            size_t pl = strlen(p);
            if (n + pl >= sizeof(buf))
                break;
            memcpy(buf + n, p, pl);
            n += pl;
        }
        buf[n] = '\0';
        for (unsigned t = 0; t < ENG_IOC__COUNT; t++) {
            for (int strict = 0; strict <= 1; strict++) {
                const char *c = eng_ioc_canonical(t, buf, n, strict, a);
                if (c == NULL)
                    continue;
                const char *c2 = eng_ioc_canonical(t, c, strlen(c), strict, a);
                if (c2 == NULL || strcmp(c, c2) != 0)
                    fprintf(stderr, "%s %s: '%s' -> '%s' -> '%s'\n", eng_ioc_type_name(t),
                            strict ? "strict" : "trusted", buf, c, c2 ? c2 : "(rejected)");
                assert_non_null(c2);
                assert_string_equal(c, c2);
                checked++;
            }
        }
        am_arena_reset(a);
    }
    assert_true(checked > 1000);
    am_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_table),
        cmocka_unit_test(test_value_not_nul_terminated),
        cmocka_unit_test(test_refang),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_vec_dedup_and_limit),
        cmocka_unit_test(test_vec_arena_cap),
        cmocka_unit_test(test_add_value),
        cmocka_unit_test(test_url_host),
        cmocka_unit_test(test_private_ranges),
        cmocka_unit_test(test_local_addresses),
        cmocka_unit_test(test_declared_single_label),
        cmocka_unit_test(test_vec_index),
        cmocka_unit_test(test_match_context_bounds),
        cmocka_unit_test(test_hostile_values),
        cmocka_unit_test(test_random_values_are_fixed_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
