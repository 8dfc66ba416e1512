/* tests/engine/test_path.c - payload paths: syntax, errors, resolution. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "path.h"

static am_arena_t *arena;

static int setup(void **state)
{
    (void)state;
    arena = am_arena_new(4096, 0);
    return arena == NULL;
}

static int teardown(void **state)
{
    (void)state;
    am_arena_free(arena);
    return 0;
}

static epath_t *P(const char *text)
{
    epath_t *p = NULL;
    size_t off = 0;
    const char *msg = NULL;
    int rc = eng_path_compile(&p, text, strlen(text), arena, &off, &msg);
    if (rc != 0)
        fail_msg("path '%s' did not compile: %s at %zu", text, msg, off);
    return p;
}

/* Compile error: returns the offset, checks the message. */
static size_t E(const char *text, const char *want)
{
    epath_t *p = NULL;
    size_t off = 99;
    const char *msg = NULL;
    assert_int_equal(eng_path_compile(&p, text, strlen(text), arena, &off, &msg), AM_EINVAL);
    assert_non_null(msg);
    assert_string_equal(msg, want);
    return off;
}

typedef struct {
    char out[512];
} collect_t;

static int collect(void *ctx, json_t *v)
{
    collect_t *c = ctx;
    char buf[32];
    size_t len = 0;
    const char *s = eng_path_scalar_text(v, buf, &len);
    if (s == NULL) {
        s = json_is_array(v) ? "<array>" : "<object>";
        len = strlen(s);
    }
    size_t n = strlen(c->out);
    snprintf(c->out + n, sizeof(c->out) - n, "%s%.*s", n ? "|" : "", (int)len, s);
    return 0;
}

static const char *all(const char *path, const char *json)
{
    static collect_t c;
    memset(&c, 0, sizeof(c));
    json_t *doc = json_loads(json, 0, NULL);
    assert_non_null(doc);
    eng_path_visit(P(path), doc, doc, collect, &c);
    json_decref(doc);
    return c.out;
}

static void test_nested_and_flat(void **state)
{
    (void)state;
    assert_string_equal(all("a.b.c", "{\"a\":{\"b\":{\"c\":\"x\"}}}"), "x");
    assert_string_equal(all("kibana.alert.rule.name", "{\"kibana.alert.rule.name\":\"flat\"}"),
                        "flat");
    assert_string_equal(
        all("kibana.alert.rule.name", "{\"kibana.alert\":{\"rule.name\":\"mixed\"}}"), "mixed");
    assert_string_equal(
        all("kibana.alert.rule.name", "{\"kibana\":{\"alert.rule\":{\"name\":\"mixed2\"}}}"),
        "mixed2");
    /* the longest key present wins at each level */
    assert_string_equal(all("a.b", "{\"a.b\":1,\"a\":{\"b\":2}}"), "1");
    /* a null flat key counts as absent: the nested form is used */
    assert_string_equal(all("a.b", "{\"a.b\":null,\"a\":{\"b\":2}}"), "2");
    assert_string_equal(all("a.b.c", "{\"a\":{\"b\":1}}"), "");
    assert_string_equal(all("x.y[0]", "{\"x.y\":[\"first\",\"second\"]}"), "first");
    assert_string_equal(all("@timestamp", "{\"@timestamp\":\"t\"}"), "t");
}

static void test_quoted_index_wild(void **state)
{
    (void)state;
    assert_string_equal(all("labels['app.kubernetes.io/name']",
                            "{\"labels\":{\"app.kubernetes.io/name\":\"web\"}}"),
                        "web");
    assert_string_equal(all("labels[\"a.b\"]", "{\"labels\":{\"a.b\":\"q\"}}"), "q");
    const char *arr = "{\"a\":[{\"n\":1},{\"n\":2},{\"n\":3}]}";
    assert_string_equal(all("a[0].n", arr), "1");
    assert_string_equal(all("a[-1].n", arr), "3");
    assert_string_equal(all("a[-3].n", arr), "1");
    assert_string_equal(all("a[3].n", arr), "");
    assert_string_equal(all("a[-4].n", arr), "");
    assert_string_equal(all("a[*].n", arr), "1|2|3");
    assert_string_equal(all("a", "{\"a\":[1,2]}"), "<array>");
    assert_string_equal(all("o[*]", "{\"o\":{\"x\":1,\"y\":null,\"z\":\"s\"}}"), "1|s");
    assert_string_equal(all("a[*]", "{\"a\":[1,null,true,2.5]}"), "1|true|2.5");
    assert_string_equal(all("m[0][1]", "{\"m\":[[1,2],[3]]}"), "2");
}

static void test_filters(void **state)
{
    (void)state;
    const char *ents = "{\"E\":[{\"Type\":\"ip\",\"Address\":\"1.1.1.1\"},"
                       "{\"Type\":\"host\",\"HostName\":\"h\"},"
                       "{\"Type\":\"IP\",\"Address\":\"2.2.2.2\"},{\"Type\":\"ip\"},"
                       "{\"Kind\":{\"name\":\"x y\"},\"n\":7}]}";
    assert_string_equal(all("E[?Type=ip].Address", ents), "1.1.1.1|2.2.2.2");
    assert_string_equal(all("E[?Address].Address", ents), "1.1.1.1|2.2.2.2");
    assert_string_equal(all("E[?Kind.name='x y'].n", ents), "7");
    assert_string_equal(all("E[?n=7].n", ents), "7");
    assert_string_equal(all("E[?Type=url].Address", ents), "");
    /* a filter on an object tests the object itself */
    assert_string_equal(all("o[?k=v].x", "{\"o\":{\"k\":\"V\",\"x\":1}}"), "1");
    assert_string_equal(all("o[?k=w].x", "{\"o\":{\"k\":\"V\",\"x\":1}}"), "");
}

static void test_root(void **state)
{
    (void)state;
    json_t *doc = json_loads("{\"top\":\"T\",\"items\":[{\"v\":1}]}", 0, NULL);
    json_t *el = json_array_get(json_object_get(doc, "items"), 0);
    json_t *x = eng_path_first(P("$.top"), el, doc);
    assert_non_null(x);
    assert_string_equal(json_string_value(x), "T");
    assert_null(eng_path_first(P("top"), el, doc));
    assert_int_equal(json_integer_value(eng_path_first(P("v"), el, doc)), 1);
    assert_ptr_equal(eng_path_first(P("$"), el, doc), doc);
    assert_int_equal(json_integer_value(eng_path_first(P("$.items[0].v"), el, doc)), 1);
    assert_int_equal(json_integer_value(eng_path_first(P("$['top'][0]"), el, doc)), 0);
    json_decref(doc);
}

static void test_errors(void **state)
{
    (void)state;
    assert_int_equal(E("a[?", "unterminated '['"), 1);
    assert_int_equal(E("", "empty path"), 0);
    assert_int_equal(E("a..b", "expected a name after '.'"), 2);
    assert_int_equal(E("a.", "path ends with '.'"), 1);
    assert_int_equal(E(".a", "empty name"), 0);
    assert_int_equal(E("a[x]", "expected a number, '*', a quoted key or '?filter' inside '[]'"), 2);
    assert_int_equal(E("a]", "unexpected ']'"), 1);
    assert_int_equal(E("a[]", "empty '[]'"), 2);
    assert_int_equal(E("a[1", "unterminated '['"), 1);
    assert_int_equal(E("a[1x]", "expected ']' after the index"), 3);
    assert_int_equal(E("a['b]", "unterminated quoted key"), 2);
    assert_int_equal(E("a[*", "expected ']' after '*'"), 1);
    assert_int_equal(E("a[0]b", "expected '.' or '['"), 4);
    assert_int_equal(E("a[?=x]", "a filter needs a field name"), 3);
    assert_int_equal(E("$x", "expected '.' or '[' after '$'"), 1);
    assert_int_equal(E("a.[0]", "expected a name after '.'"), 2);
}

static void test_scalar_text(void **state)
{
    (void)state;
    char buf[32];
    size_t len;
    json_t *v = json_integer(-42);
    assert_string_equal(eng_path_scalar_text(v, buf, &len), "-42");
    json_decref(v);
    v = json_real(0.1);
    assert_string_equal(eng_path_scalar_text(v, buf, &len), "0.1");
    json_decref(v);
    v = json_real(1714557600.5);
    assert_string_equal(eng_path_scalar_text(v, buf, &len), "1714557600.5");
    json_decref(v);
    v = json_real(5.0);
    assert_string_equal(eng_path_scalar_text(v, buf, &len), "5");
    json_decref(v);
    v = json_real(1.0 / 3.0);
    assert_string_equal(eng_path_scalar_text(v, buf, &len), "0.3333333333333333");
    json_decref(v);
    assert_string_equal(eng_path_scalar_text(json_true(), buf, &len), "true");
    assert_string_equal(eng_path_scalar_text(json_false(), buf, &len), "false");
    assert_null(eng_path_scalar_text(json_null(), buf, &len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nested_and_flat), cmocka_unit_test(test_quoted_index_wild),
        cmocka_unit_test(test_filters),         cmocka_unit_test(test_root),
        cmocka_unit_test(test_errors),          cmocka_unit_test(test_scalar_text),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
