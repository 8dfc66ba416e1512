/* tests/engine/test_ytree.c - the positioned YAML tree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "ytree.h"

static am_arena_t *arena;
static am_diags_t diags;

static int setup(void **state)
{
    (void)state;
    arena = am_arena_new(4096, 0);
    am_diags_init(&diags);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    am_arena_free(arena);
    am_diags_dispose(&diags);
    return 0;
}

static int parse(yt_node_t **root, const char *text)
{
    am_diags_dispose(&diags);
    am_diags_init(&diags);
    return eng_yt_parse(root, arena, "f.yaml", text, strlen(text), &diags);
}

static void test_positions(void **state)
{
    (void)state;
    yt_node_t *r;
    assert_int_equal(parse(&r, "a: 1\nb:\n  - x\n  - 'y'\nc: {d: \"e\", f: ~}\n"), 0);
    assert_int_equal(r->kind, YT_MAP);
    assert_int_equal(r->npairs, 3);
    yt_node_t *b = eng_yt_get(r, "b");
    assert_int_equal(b->kind, YT_SEQ);
    assert_int_equal(b->nitems, 2);
    assert_int_equal(b->items[0]->line, 3);
    assert_int_equal(b->items[0]->col, 5);
    assert_false(b->items[0]->quoted);
    assert_true(b->items[1]->quoted);
    assert_string_equal(b->items[1]->str, "y");
    yt_node_t *c = eng_yt_get(r, "c");
    assert_int_equal(c->line, 5);
    assert_int_equal(c->col, 4);
    assert_string_equal(eng_yt_get(c, "d")->str, "e");
    assert_int_equal(eng_yt_get(c, "d")->col, 8);
    assert_true(eng_yt_is_null(eng_yt_get(c, "f")));
    assert_false(eng_yt_is_null(eng_yt_get(c, "d")));
    assert_true(eng_yt_is_null(NULL));
    assert_null(eng_yt_get(r, "zz"));
    assert_null(eng_yt_get(b, "a")); /* not a map */
    assert_string_equal(eng_yt_kind_name(b), "a list");
    assert_string_equal(eng_yt_kind_name(c), "a mapping");
    assert_string_equal(eng_yt_kind_name(eng_yt_get(r, "a")), "a string");
}

static void test_nulls(void **state)
{
    (void)state;
    yt_node_t *r;
    assert_int_equal(parse(&r, "a: null\nb: Null\nc: NULL\nd: ~\ne:\nf: 'null'\ng: nil\n"), 0);
    assert_true(eng_yt_is_null(eng_yt_get(r, "a")));
    assert_true(eng_yt_is_null(eng_yt_get(r, "b")));
    assert_true(eng_yt_is_null(eng_yt_get(r, "c")));
    assert_true(eng_yt_is_null(eng_yt_get(r, "d")));
    assert_true(eng_yt_is_null(eng_yt_get(r, "e")));
    assert_false(eng_yt_is_null(eng_yt_get(r, "f")));
    assert_false(eng_yt_is_null(eng_yt_get(r, "g")));
}

static void test_errors(void **state)
{
    (void)state;
    yt_node_t *r;
    assert_int_equal(parse(&r, "a: 1\nb: 2\na: 3\n"), AM_EINVAL);
    assert_int_equal(diags.count, 1);
    assert_int_equal(diags.items[0].line, 3);
    assert_int_equal(diags.items[0].col, 1);
    assert_string_equal(diags.items[0].msg, "duplicate key 'a' (first at line 1)");
    assert_int_equal(parse(&r, "a: &x 1\nb: *x\n"), AM_EINVAL);
    assert_string_equal(diags.items[0].msg,
                        "YAML aliases (*name) are not supported in mapping files");
    assert_int_equal(diags.items[0].line, 2);
    assert_int_equal(parse(&r, "a: 1\n---\nb: 2\n"), AM_EINVAL);
    assert_string_equal(diags.items[0].msg, "a mapping file holds one YAML document");
    assert_int_equal(parse(&r, "? [a, b]\n: 1\n"), AM_EINVAL);
    assert_string_equal(diags.items[0].msg, "a mapping key must be a plain string");
    assert_int_equal(parse(&r, "a: [1, 2\n"), AM_EINVAL);
    assert_int_equal(diags.count, 1);
    assert_non_null(strstr(diags.items[0].msg, "YAML syntax error"));
    /* several duplicate keys are all reported */
    assert_int_equal(parse(&r, "a: 1\na: 2\nm: {x: 1, x: 2}\n"), AM_EINVAL);
    assert_int_equal(diags.count, 2);
    /* nesting is bounded */
    char deep[400] = "";
    for (int i = 0; i < 70; i++)
        deep[i] = '[';
    assert_int_equal(parse(&r, deep), AM_EINVAL);
    assert_non_null(strstr(diags.items[0].msg, "nesting deeper than 64"));
}

static void test_empty(void **state)
{
    (void)state;
    yt_node_t *r = (yt_node_t *)1;
    assert_int_equal(parse(&r, ""), 0);
    assert_null(r);
    assert_int_equal(parse(&r, "# only a comment\n"), 0);
    assert_null(r);
    assert_int_equal(parse(&r, "just text"), 0);
    assert_int_equal(r->kind, YT_SCALAR);
}

static void test_whole(void **state)
{
    (void)state;
    yt_node_t *r = NULL;
    bool whole = false;
    const char *dup = "a: 1\na: 2\nb: 3\n";
    am_diags_dispose(&diags);
    am_diags_init(&diags);
    assert_int_equal(eng_yt_parse_all(&r, &whole, arena, "f.yaml", dup, strlen(dup), &diags),
                     AM_EINVAL);
    assert_true(whole); /* the rest of the file can still be checked */
    assert_int_equal(r->npairs, 2);
    assert_string_equal(eng_yt_get(r, "a")->str, "1");
    const char *bad = "a: [1\nb: 3\n";
    assert_int_equal(eng_yt_parse_all(&r, &whole, arena, "f.yaml", bad, strlen(bad), &diags),
                     AM_EINVAL);
    assert_false(whole);
    const char *alias = "a: &x 1\nb: *x\n";
    assert_int_equal(eng_yt_parse_all(&r, &whole, arena, "f.yaml", alias, strlen(alias), &diags),
                     AM_EINVAL);
    assert_false(whole);
    const char *good = "a: 1\n";
    assert_int_equal(eng_yt_parse_all(&r, &whole, arena, "f.yaml", good, strlen(good), &diags), 0);
    assert_true(whole);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_positions), cmocka_unit_test(test_nulls),
        cmocka_unit_test(test_errors),    cmocka_unit_test(test_empty),
        cmocka_unit_test(test_whole),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
