/* tests/engine/test_fingerprint.c - the fingerprint byte layout (checked
 * against values computed independently with Python's hashlib), order
 * independence and unambiguous separators. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "eng.h"

static void test_known_values(void **state)
{
    (void)state;
    char fp[65];
    eng_fingerprint(fp, "Brute force", "sentinel", NULL, 0);
    assert_string_equal(fp, "be9baeabbf3d10f2fafed0b2662bccbaed616830d7ed8f3333f07eae10c1aadd");
    eng_indicator_t iocs[] = {
        {ENG_IOC_URL, "http://x.example/a", "u", NULL},
        {ENG_IOC_IP, "10.0.0.1", "a", NULL},
        {ENG_IOC_DOMAIN, "x.example", "b", NULL},
        {ENG_IOC_IP, "10.0.0.10", "c", NULL},
        {ENG_IOC_HASH_SHA256, "abababababababababababababababababababababababababababababababab",
         "d", NULL},
        {ENG_IOC_HASH_SHA1, "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd", "e", NULL},
    };
    eng_fingerprint(fp, "Brute force", "sentinel", iocs, AM_ARRAY_LEN(iocs));
    assert_string_equal(fp, "3d81ba38328be9bb5f399111c49372d0f8f9a2bc25455156f06e6a4c996e3375");
    /* any order of the same indicators gives the same fingerprint; the
     * provenance does not count */
    eng_indicator_t rev[AM_ARRAY_LEN(iocs)];
    for (size_t i = 0; i < AM_ARRAY_LEN(iocs); i++) {
        rev[i] = iocs[AM_ARRAY_LEN(iocs) - 1 - i];
        rev[i].source_field = "elsewhere";
    }
    char fp2[65];
    eng_fingerprint(fp2, "Brute force", "sentinel", rev, AM_ARRAY_LEN(rev));
    assert_string_equal(fp, fp2);
}

static void test_separators(void **state)
{
    (void)state;
    char a[65], b[65];
    eng_fingerprint(a, "a", "bc", NULL, 0);
    eng_fingerprint(b, "ab", "c", NULL, 0);
    assert_string_equal(a, "aa795aa4bbb6117911ef062e271bcb05ccfd58ea439da7d46a44e3a3fcefa790");
    assert_string_equal(b, "629c2f14f654f026086f2aefe1855533d0897f49df86a19073be17b237361b09");
    /* a different source or title changes it */
    eng_fingerprint(b, "a", "bd", NULL, 0);
    assert_string_not_equal(a, b);
    eng_indicator_t x = {ENG_IOC_IP, "1.2.3.4", "f", NULL};
    eng_indicator_t y = {ENG_IOC_DOMAIN, "1.2.3.4", "f", NULL};
    eng_fingerprint(a, "t", "s", &x, 1);
    eng_fingerprint(b, "t", "s", &y, 1);
    assert_string_not_equal(a, b);
    assert_int_equal(strlen(a), 64);
}

static void test_many(void **state)
{
    (void)state;
    /* more than the on-stack sort buffer */
    static eng_indicator_t v[300], w[300];
    static char vals[300][16];
    for (int i = 0; i < 300; i++) {
        snprintf(vals[i], sizeof(vals[i]), "10.0.%d.%d", i / 256, i % 256);
        v[i] = (eng_indicator_t){ENG_IOC_IP, vals[i], "f", NULL};
        w[299 - i] = v[i];
    }
    char a[65], b[65];
    eng_fingerprint(a, "t", "s", v, 300);
    eng_fingerprint(b, "t", "s", w, 300);
    assert_string_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_values),
        cmocka_unit_test(test_separators),
        cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
