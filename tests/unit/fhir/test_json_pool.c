/* Unit tests for fhir/json_pool.c: a large body's tree lives in a pool,
 * and the pool's blocks go back only when the tree's last value is freed,
 * on whichever thread frees it. */
#include <pthread.h>

#include "unit.h"

#include "fhir/fhir_int.h"

/* A JSON array of n small objects: well past the size that takes a pool
 * once n is in the thousands. */
static char *
big_body(int n, size_t *len)
{
	struct sbuf sb = SBUF_INIT(0);

	sbuf_addch(&sb, '[');
	for (int i = 0; i < n; i++)
		sbuf_addf(&sb, "%s{\"k\":\"value-%d\",\"n\":%d,\"d\":1.5}", i ? "," : "", i, i);
	sbuf_addch(&sb, ']');
	*len = sb.len;
	return sbuf_detach(&sb, NULL);
}

static json_t *
parse(const char *body, size_t n)
{
	json_t *v = NULL;

	assert_int_equal(fhir_parse_json(body, n, &v, NULL), CW_OK);
	assert_non_null(v);
	return v;
}

static void
a_large_tree_is_pooled_and_given_back(void **state)
{
	size_t n;
	char *body = big_body(5000, &n);
	json_t *v;

	assert_int_equal(fhir_pool_blocks_held(), 0);
	v = parse(body, n);
	assert_true(fhir_pool_blocks_held() > 0);
	assert_int_equal(json_array_size(v), 5000);
	assert_string_equal(json_string_value(json_object_get(json_array_get(v, 4999), "k")),
			    "value-4999");
	json_decref(v);
	assert_int_equal(fhir_pool_blocks_held(), 0);
	free(body);
}

static void
a_small_body_takes_no_pool(void **state)
{
	const char *body = "{\"resourceType\":\"Patient\",\"id\":\"p1\"}";
	json_t *v = parse(body, strlen(body));

	assert_int_equal(fhir_pool_blocks_held(), 0);
	json_decref(v);
}

/* A part of the tree kept past the tree (as a response may keep a
 * resource) keeps the pool's memory, and reads as it did. */
static void
a_kept_value_keeps_its_pool(void **state)
{
	size_t n;
	char *body = big_body(5000, &n);
	json_t *v = parse(body, n);
	json_t *kept = json_incref(json_array_get(v, 1234));

	json_decref(v);
	assert_true(fhir_pool_blocks_held() > 0);
	assert_string_equal(json_string_value(json_object_get(kept, "k")), "value-1234");
	assert_int_equal(json_integer_value(json_object_get(kept, "n")), 1234);
	json_decref(kept);
	assert_int_equal(fhir_pool_blocks_held(), 0);
	free(body);
}

/* What is added to a pooled tree after the parse comes from malloc; both
 * kinds free together. */
static void
values_added_later_free_with_the_tree(void **state)
{
	size_t n;
	char *body = big_body(3000, &n);
	json_t *v = parse(body, n);

	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *o = json_array_get(v, i);

		assert_int_equal(json_object_set_new(o, "k", json_string("replaced")), 0);
		assert_int_equal(json_object_set_new(o, "extra", json_integer((json_int_t)i)), 0);
	}
	assert_int_equal(json_array_append_new(v, json_string("appended")), 0);
	assert_string_equal(json_string_value(json_object_get(json_array_get(v, 7), "k")),
			    "replaced");
	json_decref(v);
	assert_int_equal(fhir_pool_blocks_held(), 0);
	free(body);
}

static void *
free_it(void *arg)
{
	json_decref(arg);
	return NULL;
}

/* A Bundle's tree is freed on the worker or the helper thread, not always
 * on the one that parsed it. */
static void
a_tree_freed_on_another_thread(void **state)
{
	size_t n;
	char *body = big_body(5000, &n);
	json_t *v = parse(body, n);
	json_t *half = json_incref(json_array_get(v, 10));
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, free_it, v), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(fhir_pool_blocks_held() > 0);
	assert_int_equal(pthread_create(&t, NULL, free_it, half), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(fhir_pool_blocks_held(), 0);
	free(body);
}

/* Invalid JSON late in a large body: the half-built tree is freed, and so
 * is its pool. */
static void
a_failed_parse_leaves_no_pool(void **state)
{
	size_t n;
	char *body = big_body(5000, &n);
	json_t *v = NULL;
	struct diag d;
	struct arena *a = arena_new(0);

	body[n - 1] = ','; /* "...}," : the array never closes */
	diag_init(&d, a);
	assert_int_equal(fhir_parse_json(body, n, &v, &d), CW_EINVAL);
	assert_null(v);
	assert_int_equal(fhir_pool_blocks_held(), 0);
	arena_free(a);
	free(body);
}

/* Pools do not nest: a second begin on the same thread changes nothing. */
static void
pools_do_not_nest(void **state)
{
	struct json_pool *p = fhir_pool_begin();
	json_t *s;

	assert_non_null(p);
	assert_null(fhir_pool_begin());
	s = json_string("in the pool");
	fhir_pool_end(p);
	assert_int_equal(fhir_pool_blocks_held(), 1);
	json_decref(s);
	assert_int_equal(fhir_pool_blocks_held(), 0);
	/* an empty pool goes at its end */
	fhir_pool_end(fhir_pool_begin());
	assert_int_equal(fhir_pool_blocks_held(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_large_tree_is_pooled_and_given_back),
		cmocka_unit_test(a_small_body_takes_no_pool),
		cmocka_unit_test(a_kept_value_keeps_its_pool),
		cmocka_unit_test(values_added_later_free_with_the_tree),
		cmocka_unit_test(a_tree_freed_on_another_thread),
		cmocka_unit_test(a_failed_parse_leaves_no_pool),
		cmocka_unit_test(pools_do_not_nest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
