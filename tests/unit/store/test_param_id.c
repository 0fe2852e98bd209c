/* tests/unit/store/test_param_id.c: the numbers that name search
 * parameters in the index tables.
 *
 * They are stored in every database, so they must never change (a few are
 * pinned here), and no two parameters of the served types may share one
 * (their index rows would mix). */
#include "unit.h"

#include "fhir/fhir.h"
#include "store/store_int.h"

static void
numbers_are_stable(void **state)
{
	/* FNV-1a of "Type.code", 31 bits; computed once, never to change. */
	assert_int_equal(sq_param_id("Patient", "name"), 0x66d13cf3);
	assert_true(sq_param_id("Condition", "patient") !=
		    sq_param_id("Observation", "patient"));
	assert_int_equal(sq_param_id("Condition", "patient"),
			 sq_param_id("Condition", "patient"));
}

static int
cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void
served_parameters_do_not_collide(void **state)
{
	size_t n = 0, cap = 0;
	int64_t *ids = NULL;

	for (size_t i = 0; i < fhir_restype_count(); i++) {
		const struct fhir_restype *rt = fhir_restype_at(i);

		for (size_t k = 0; k < rt->nparams; k++) {
			if (n == cap) {
				cap = cap ? cap * 2 : 256;
				ids = realloc(ids, cap * sizeof(*ids));
				assert_non_null(ids);
			}
			ids[n++] = sq_param_id(rt->name, rt->params[k].code);
		}
	}
	assert_true(n > 500);
	qsort(ids, n, sizeof(*ids), cmp_id);
	for (size_t i = 1; i < n; i++)
		if (ids[i] == ids[i - 1])
			fail_msg("two served search parameters share the number %lld",
				 (long long)ids[i]);
	free(ids);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(numbers_are_stable),
		cmocka_unit_test(served_parameters_do_not_collide),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
