/* Unit tests for fhir/json.c: decimals keep the text they were written with. */
#include "unit.h"

#include "fhir/fhir.h"

static char *
roundtrip(const char *in)
{
	json_t *v;
	char *out;

	assert_int_equal(fhir_parse_json(in, strlen(in), &v, NULL), CW_OK);
	out = fhir_dump(v, NULL);
	json_decref(v);
	assert_non_null(out);
	return out;
}

static void
decimals_round_trip_as_written(void **state)
{
	const char *in = "{\"a\":7.20,\"b\":0.1,\"c\":[1e2,-0.010,12345678901234567890.123456789],"
			 "\"d\":3,\"e\":\"7.20 mg\",\"f\":{\"g\":1.0E-3}}";
	char *out = roundtrip(in);

	assert_string_equal(out, in);
	free(out);
}

static void
decimals_read_as_numbers(void **state)
{
	json_t *v;
	double d;
	const char *lit;

	const char *in = "{\"x\":7.20,\"i\":4,\"s\":\"7.20\"}";

	assert_int_equal(fhir_parse_json(in, strlen(in), &v, NULL), CW_OK);
	assert_true(fhir_number(json_object_get(v, "x"), &d, &lit));
	assert_true(d > 7.19 && d < 7.21);
	assert_string_equal(lit, "7.20");
	assert_true(fhir_number(json_object_get(v, "i"), &d, &lit));
	assert_null(lit);
	assert_true(d == 4.0);
	assert_false(fhir_number(json_object_get(v, "s"), &d, &lit));
	assert_false(fhir_is_decimal_literal(json_object_get(v, "s")));
	json_decref(v);
}

static void
the_mark_character_is_refused(void **state)
{
	struct arena *a = arena_new(0);
	struct diag d;
	json_t *v;
	const char raw[] = "{\"s\":\"\xEE\x80\x80" "1.5\"}";
	const char esc[] = "{\"s\":\"\\uE0001.5\"}";

	diag_init(&d, a);
	assert_int_equal(fhir_parse_json(raw, strlen(raw), &v, &d), CW_EINVAL);
	assert_int_equal(fhir_parse_json(esc, strlen(esc), &v, &d), CW_EINVAL);
	assert_int_equal(d.n, 2);
	arena_free(a);
}

static void
bad_numbers_stay_errors(void **state)
{
	struct arena *a = arena_new(0);
	struct diag d;
	json_t *v;

	diag_init(&d, a);
	static const char *const bad[] = {"{\"x\":1.}", "{\"x\":01.5}", "{\"x\":1.5e}"};
	const char *ok = "[\"a\\\"1.5\",2.5]";

	for (size_t i = 0; i < 3; i++)
		assert_int_equal(fhir_parse_json(bad[i], strlen(bad[i]), &v, &d), CW_EINVAL);
	assert_int_equal(fhir_parse_json(ok, strlen(ok), &v, &d), CW_OK);
	assert_string_equal(json_string_value(json_array_get(v, 0)), "a\"1.5");
	json_decref(v);
	arena_free(a);
}

static void
a_decimal_where_a_string_belongs_is_invalid(void **state)
{
	struct arena *a = arena_new(0);
	struct diag d;
	json_t *v;
	const char *p = "{\"resourceType\":\"Patient\",\"gender\":1.5}";

	diag_init(&d, a);
	assert_int_equal(fhir_parse_json(p, strlen(p), &v, &d), CW_OK);
	assert_int_equal(fhir_validate(v, "Patient", &d), CW_EINVALID);
	assert_string_equal(d.issues[0].loc, "Patient.gender");
	json_decref(v);
	arena_free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(decimals_round_trip_as_written),
		cmocka_unit_test(decimals_read_as_numbers),
		cmocka_unit_test(the_mark_character_is_refused),
		cmocka_unit_test(bad_numbers_stay_errors),
		cmocka_unit_test(a_decimal_where_a_string_belongs_is_invalid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
