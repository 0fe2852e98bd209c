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

/* The reader takes what jansson takes (RFC 8259, valid UTF-8, no
 * duplicate keys) and nothing else; fuzz/fuzz_json.c compares the two on
 * arbitrary bytes, these are the cases worth naming. */
static void
reader_accepts_and_refuses(void **state)
{
	static const struct {
		const char *in;
		bool ok;
	} cases[] = {
		{"{}", true},
		{" [ ] ", true},
		{"{\"a\":[true,false,null,-0,0,12,\"\"]}", true},
		{"[\"\\ud83d\\ude00\"]", true},            /* a surrogate pair */
		{"[\"\\ud83d\"]", false},                    /* high alone */
		{"[\"\\ude00\"]", false},                    /* low alone */
		{"[\"\\u0000\"]", false},
		{"[\"a\tb\"]", false},                        /* raw control character */
		{"[\"\xc0\xaf\"]", false},                   /* overlong UTF-8 */
		{"[\"\xed\xa0\x80\"]", false},               /* a surrogate in UTF-8 */
		{"[\"\xf4\x90\x80\x80\"]", false},           /* past U+10FFFF */
		{"[\"\xc3\"]", false},                        /* cut short */
		{"[\"\\x\"]", false},                        /* unknown escape */
		{"[01]", false},
		{"[1.]", false},
		{"[.5]", false},
		{"[1e]", false},
		{"[9223372036854775807,-9223372036854775808]", true},
		{"[9223372036854775808]", false},
		{"[1,]", false},
		{"{\"a\":1,}", false},
		{"{\"a\" 1}", false},
		{"{\"a\":1} x", false},
		{"\"just a string\"", false},
		{"42", false},
		{"", false},
		{"[tru]", false},
		{"[\"unterminated]", false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *v = NULL;
		enum cw_err err = fhir_parse_json(cases[i].in, strlen(cases[i].in), &v, NULL);

		if ((err == CW_OK) != cases[i].ok)
			fail_msg("case %zu (%s): expected %s", i, cases[i].in,
				 cases[i].ok ? "accepted" : "refused");
		json_decref(v);
	}
}

/* Escapes decode to UTF-8; a key with escapes survives a value with
 * escapes of its own (both use the reader's scratch buffer), also when
 * the key is long. */
static void
reader_decodes_escapes(void **state)
{
	char long_key[600], *in;
	struct arena *a = arena_new(0);
	json_t *v;

	memset(long_key, 'k', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	long_key[0] = '\\';
	long_key[1] = 'n'; /* "\nkkk...": a key with an escape */
	in = arena_printf(a, "{\"k\\u00e9y\":\"v\\u00e9\\n\\\"\\/\\ud83d\\ude00\","
			  "\"%s\":\"x\\ty\"}", long_key);
	assert_int_equal(fhir_parse_json(in, strlen(in), &v, NULL), CW_OK);
	assert_string_equal(json_string_value(json_object_get(v, "k\xc3\xa9y")),
			    "v\xc3\xa9\n\"/\xf0\x9f\x98\x80");
	long_key[0] = '\n';
	memmove(long_key + 1, long_key + 2, sizeof(long_key) - 2);
	assert_string_equal(json_string_value(json_object_get(v, long_key)), "x\ty");
	json_decref(v);
	arena_free(a);
}

/* Nesting is limited to 2,048 levels, as jansson limits it. */
static void
reader_limits_depth(void **state)
{
	struct sbuf sb = SBUF_INIT(0);
	json_t *v;

	for (int i = 0; i < 2048; i++)
		sbuf_addch(&sb, '[');
	for (int i = 0; i < 2048; i++)
		sbuf_addch(&sb, ']');
	assert_int_equal(fhir_parse_json(sb.buf, sb.len, &v, NULL), CW_OK);
	json_decref(v);
	sbuf_reset(&sb);
	for (int i = 0; i < 2049; i++)
		sbuf_addch(&sb, '[');
	for (int i = 0; i < 2049; i++)
		sbuf_addch(&sb, ']');
	assert_int_equal(fhir_parse_json(sb.buf, sb.len, &v, NULL), CW_EINVAL);
	sbuf_release(&sb);
}

/* fhir_dump is careweave's own writer: it must give what jansson's compact
 * dump gives, so stored text reads the same whoever wrote it. */
static void
dump_matches_jansson(void **state)
{
	json_t *v = json_pack("{s:s,s:s,s:I,s:I,s:f,s:f,s:f,s:f,s:b,s:b,s:n,s:{},s:[],s:[i,{s:[s]}]}",
			      "plain", "Walter Moss", "escapes", "quote\" back\\ slash/ tab\t nl\n cr\r é ü 日本",
			      "int", (json_int_t)-42, "big", (json_int_t)9007199254740993LL,
			      "real", 2.5, "exp", 1e20, "small", 1.5e-7, "whole", 3.0, "t", 1, "f", 0,
			      "null", "empty_obj", "empty_arr", "nested", 1, "k", "v");
	char *ours, *theirs;
	size_t n;
	json_free_t jfree; /* json_dumps' text is jansson's to free */

	assert_non_null(v);
	ours = fhir_dump(v, &n);
	theirs = json_dumps(v, FHIR_JSON_FLAGS);
	assert_non_null(ours);
	assert_string_equal(ours, theirs);
	assert_int_equal(n, strlen(theirs));
	free(ours);
	json_get_alloc_funcs(NULL, &jfree);
	jfree(theirs);
	json_decref(v);
}

/* Other control characters are written as \u escapes and read back the
 * same. */
static void
dump_control_characters_round_trip(void **state)
{
	json_t *v = json_object(), *back;
	char *text;

	json_object_set_new(v, "c", json_stringn("a\x01\b\f\x1fz", 6));
	text = fhir_dump(v, NULL);
	assert_non_null(text);
	assert_int_equal(fhir_parse_json(text, strlen(text), &back, NULL), CW_OK);
	assert_int_equal(json_string_length(json_object_get(back, "c")), 6);
	assert_memory_equal(json_string_value(json_object_get(back, "c")), "a\x01\b\f\x1fz", 6);
	json_decref(back);
	free(text);
	json_decref(v);
}

/* fhir_dump_to stops at the sbuf's cap with CW_ETOOBIG. */
static void
dump_to_respects_the_cap(void **state)
{
	json_t *v = json_pack("{s:s}", "s", "0123456789012345678901234567890123456789");
	struct sbuf sb = SBUF_INIT(16);

	assert_int_equal(fhir_dump_to(v, &sb), CW_ETOOBIG);
	sbuf_release(&sb);
	json_decref(v);
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
		cmocka_unit_test(reader_accepts_and_refuses),
		cmocka_unit_test(reader_decodes_escapes),
		cmocka_unit_test(reader_limits_depth),
		cmocka_unit_test(dump_matches_jansson),
		cmocka_unit_test(dump_control_characters_round_trip),
		cmocka_unit_test(dump_to_respects_the_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
