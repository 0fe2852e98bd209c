/* tests/unit/coord/test_match.c: the patient matcher's scorer
 * (coord_match_score, src/coord/match.c) part by part and on the cases
 * that matter: the same person graded certain, twins never certain, a
 * typo in the family name with a new address probable, a married-name
 * change, birth dates with swapped or wrong digits, names with accents,
 * hyphens and initials, identifiers that agree or contradict, and missing
 * parts counted as unknown, never as agreement. Then the candidate
 * search (coord_match_patient) on a real store. */
#include <jansson.h>

#include "unit.h"

#include "coord/coord.h"
#include "fhir/fhir.h"
#include "store/store.h"

static struct arena *a;

static int
setup(void **state)
{
	a = arena_new(16u << 20);
	return a ? 0 : -1;
}

static int
teardown(void **state)
{
	arena_free(a);
	return 0;
}

static void
decref(void *v)
{
	json_decref(v);
}

static json_t *
pat(const char *text)
{
	json_t *v = NULL;

	if (fhir_parse_json(text, strlen(text), &v, NULL) || !v)
		fail_msg("bad JSON: %s", text);
	arena_on_free(a, decref, v);
	return v;
}

static struct coord_match_score
score(const char *x, const char *y)
{
	struct coord_match_score s;

	assert_int_equal(coord_match_score(a, pat(x), pat(y), &s), CW_OK);
	assert_non_null(s.reasons);
	assert_true(s.score >= 0 && s.score <= 1);
	return s;
}

/* A held record: Anna Maria Lindqvist, born 1984-03-07. */
#define ANNA "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:mrn:a\",\"value\":\"A100\"}]," \
	"\"name\":[{\"family\":\"Lindqvist\",\"given\":[\"Anna\",\"Maria\"]}],\"gender\":\"female\"," \
	"\"birthDate\":\"1984-03-07\",\"telecom\":[{\"system\":\"phone\",\"value\":\"+1 (555) 201-3344\"}]," \
	"\"address\":[{\"line\":[\"12 North Oak Street\"],\"city\":\"Springfield\",\"postalCode\":\"62704\"}]}"

static void
test_same_person_certain(void **state)
{
	struct coord_match_score s = score(
		"{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"LINDQVIST\",\"given\":[\"anna\"]}],"
		"\"gender\":\"female\",\"birthDate\":\"1984-03-07\","
		"\"telecom\":[{\"system\":\"phone\",\"value\":\"555-201-3344\"}],"
		"\"address\":[{\"line\":[\"12 N. Oak St\"],\"postalCode\":\"62704-1234\"}]}", ANNA);

	assert_int_equal(s.grade, COORD_GRADE_CERTAIN);
	assert_true(s.score >= COORD_MATCH_CERTAIN);
	assert_int_equal(s.how[COORD_PART_FAMILY], COORD_HOW_AGREES);
	assert_int_equal(s.how[COORD_PART_GIVEN], COORD_HOW_AGREES);
	assert_int_equal(s.how[COORD_PART_BIRTH], COORD_HOW_AGREES);
	assert_int_equal(s.how[COORD_PART_SEX], COORD_HOW_AGREES);
	assert_int_equal(s.how[COORD_PART_ADDRESS], COORD_HOW_AGREES);
	assert_int_equal(s.how[COORD_PART_PHONE], COORD_HOW_AGREES);
	assert_int_equal(s.how[COORD_PART_IDENTIFIER], COORD_HOW_UNKNOWN);
	assert_string_equal(coord_match_grade_code(s.grade), "certain");
}

static void
test_identifier_certain(void **state)
{
	struct coord_match_score s = score(
		"{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:mrn:a\",\"value\":\"A100\"}]}",
		ANNA);

	assert_int_equal(s.grade, COORD_GRADE_CERTAIN);
	assert_int_equal(s.how[COORD_PART_IDENTIFIER], COORD_HOW_AGREES);
	assert_string_equal(s.reasons, "identifier agrees");
}

static void
test_identifier_contradicted(void **state)
{
	/* the number agrees, the person does not: review, never link */
	struct coord_match_score s = score(
		"{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:mrn:a\",\"value\":\"A100\"}],"
		"\"name\":[{\"family\":\"Okafor\",\"given\":[\"Chidi\"]}],\"gender\":\"male\","
		"\"birthDate\":\"1950-11-30\"}", ANNA);

	assert_int_equal(s.grade, COORD_GRADE_PROBABLE);
	assert_true(s.score < COORD_MATCH_CERTAIN);
	assert_non_null(strstr(s.reasons, "identifier agrees"));
	assert_non_null(strstr(s.reasons, "contradict"));
	assert_non_null(strstr(s.reasons, "birth date"));
}

static void
test_identifier_twin(void **state)
{
	/* the twin registered under her sister's number: a given name that
	 * differs contradicts the identifier; a family name alone does not */
	struct coord_match_score s = score(
		"{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:mrn:a\",\"value\":\"A100\"}],"
		"\"name\":[{\"family\":\"Lindqvist\",\"given\":[\"Sofia\"]}],\"gender\":\"female\","
		"\"birthDate\":\"1984-03-07\"}", ANNA);

	assert_int_equal(s.grade, COORD_GRADE_PROBABLE);
	s = score("{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:mrn:a\",\"value\":\"A100\"}],"
		  "\"name\":[{\"family\":\"Haddad\",\"given\":[\"Anna\"]}],\"birthDate\":\"1984-03-07\"}", ANNA);
	assert_int_equal(s.grade, COORD_GRADE_CERTAIN);
	assert_non_null(strstr(s.reasons, "family name differs"));
}

static void
test_deceased(void **state)
{
	/* a held record of someone who died is never linked unseen */
	struct coord_match_score s = score(
		"{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:mrn:a\",\"value\":\"A100\"}]}",
		"{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:mrn:a\",\"value\":\"A100\"}],"
		"\"deceasedDateTime\":\"2020-01-01\"}");

	assert_int_equal(s.grade, COORD_GRADE_PROBABLE);
	assert_non_null(strstr(s.reasons, "has died"));
}

static void
test_identifier_conflict(void **state)
{
	/* everything else agrees, but the same hospital gave another number */
	struct coord_match_score s = score(
		"{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:mrn:a\",\"value\":\"B200\"}],"
		"\"name\":[{\"family\":\"Lindqvist\",\"given\":[\"Anna\"]}],\"gender\":\"female\","
		"\"birthDate\":\"1984-03-07\",\"telecom\":[{\"system\":\"phone\",\"value\":\"5552013344\"}],"
		"\"address\":[{\"line\":[\"12 North Oak Street\"],\"postalCode\":\"62704\"}]}", ANNA);

	assert_int_equal(s.how[COORD_PART_IDENTIFIER], COORD_HOW_DIFFERS);
	assert_true(s.grade < COORD_GRADE_CERTAIN);
	assert_non_null(strstr(s.reasons, "same system has another value"));
}

static void
test_twins_not_certain(void **state)
{
	/* same family, birth date, address and phone; another given name */
	struct coord_match_score s = score(
		"{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Lindqvist\",\"given\":[\"Sofia\"]}],"
		"\"gender\":\"female\",\"birthDate\":\"1984-03-07\","
		"\"telecom\":[{\"system\":\"phone\",\"value\":\"5552013344\"}],"
		"\"address\":[{\"line\":[\"12 North Oak Street\"],\"postalCode\":\"62704\"}]}", ANNA);

	assert_int_equal(s.how[COORD_PART_GIVEN], COORD_HOW_DIFFERS);
	assert_true(s.grade < COORD_GRADE_PROBABLE);
	assert_non_null(strstr(s.reasons, "given name differs"));
	assert_non_null(strstr(s.reasons, "twin"));
	/* and a twin brother: sex differs too */
	s = score("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Lindqvist\",\"given\":[\"Johan\"]}],"
		  "\"gender\":\"male\",\"birthDate\":\"1984-03-07\","
		  "\"address\":[{\"line\":[\"12 North Oak Street\"],\"postalCode\":\"62704\"}]}", ANNA);
	assert_true(s.grade < COORD_GRADE_PROBABLE);
}

static void
test_typo_and_moved_probable(void **state)
{
	struct coord_match_score s = score(
		"{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Lindquist\",\"given\":[\"Anna\"]}],"
		"\"gender\":\"female\",\"birthDate\":\"1984-03-07\","
		"\"address\":[{\"line\":[\"400 Elm Avenue\"],\"postalCode\":\"60614\"}]}", ANNA);

	assert_int_equal(s.how[COORD_PART_FAMILY], COORD_HOW_PARTIAL);
	assert_int_equal(s.how[COORD_PART_ADDRESS], COORD_HOW_DIFFERS);
	assert_int_equal(s.grade, COORD_GRADE_PROBABLE);
	assert_non_null(strstr(s.reasons, "family name is spelled alike"));
	assert_non_null(strstr(s.reasons, "address differs"));
	/* a swap of two letters is a typo as well */
	s = score("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Lindqivst\",\"given\":[\"Anna\"]}],"
		  "\"gender\":\"female\",\"birthDate\":\"1984-03-07\"}", ANNA);
	assert_int_equal(s.how[COORD_PART_FAMILY], COORD_HOW_PARTIAL);
	assert_int_equal(s.grade, COORD_GRADE_PROBABLE);
}

static void
test_married_name(void **state)
{
	struct coord_match_score s = score(
		"{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Haddad\",\"given\":[\"Anna\"]}],"
		"\"birthDate\":\"1984-03-07\",\"telecom\":[{\"system\":\"phone\",\"value\":\"(555) 201 3344\"}]}",
		ANNA);

	assert_int_equal(s.how[COORD_PART_FAMILY], COORD_HOW_DIFFERS);
	assert_int_equal(s.how[COORD_PART_PHONE], COORD_HOW_AGREES);
	assert_int_equal(s.grade, COORD_GRADE_PROBABLE);
	assert_non_null(strstr(s.reasons, "given name, birth date and phone agree"));
	assert_non_null(strstr(s.reasons, "family name differs"));
	/* the held record keeps her maiden name as a former one */
	s = score("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Lindqvist\",\"given\":[\"Anna\"]}],"
		  "\"birthDate\":\"1984-03-07\"}",
		  "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Haddad\",\"given\":[\"Anna\"]},"
		  "{\"use\":\"maiden\",\"family\":\"Lindqvist\"}],\"birthDate\":\"1984-03-07\"}");
	assert_int_equal(s.how[COORD_PART_FAMILY], COORD_HOW_PARTIAL);
	assert_non_null(strstr(s.reasons, "former"));
}

static void
test_birth_dates(void **state)
{
	static const struct {
		const char *date;
		enum coord_match_how how;
		const char *words;
	} cases[] = {
		{"1984-07-03", COORD_HOW_PARTIAL, "day and month swapped"},
		{"1984-03-08", COORD_HOW_PARTIAL, "one digit off"},
		{"1948-03-07", COORD_HOW_PARTIAL, "two digits swapped"},
		{"1984-03-70", COORD_HOW_UNKNOWN, NULL}, /* not a date: nothing to compare */
		{"1984", COORD_HOW_PARTIAL, "birth year agrees"},
		{"1984-03", COORD_HOW_PARTIAL, "birth year and month agree"},
		{"1985", COORD_HOW_DIFFERS, NULL},
		{"1990-11-21", COORD_HOW_DIFFERS, NULL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *x = arena_printf(a, "{\"resourceType\":\"Patient\",\"name\":[{\"family\":"
				       "\"Lindqvist\",\"given\":[\"Anna\"]}],\"gender\":\"female\","
				       "\"birthDate\":\"%s\"}", cases[i].date);
		struct coord_match_score s = score(x, ANNA);

		assert_int_equal(s.how[COORD_PART_BIRTH], cases[i].how);
		if (cases[i].words)
			assert_non_null(strstr(s.reasons, cases[i].words));
		/* never certain without the exact date */
		assert_true(s.grade < COORD_GRADE_CERTAIN);
	}
	/* a transposed date with name, sex and phone: probable, to review */
	struct coord_match_score s = score(
		"{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Lindqvist\",\"given\":[\"Anna\"]}],"
		"\"gender\":\"female\",\"birthDate\":\"1984-07-03\","
		"\"telecom\":[{\"system\":\"phone\",\"value\":\"5552013344\"}]}", ANNA);
	assert_int_equal(s.grade, COORD_GRADE_PROBABLE);
	/* a birth date that differs outright costs: father and son */
	s = score("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Lindqvist\",\"given\":[\"Anna\"]}],"
		  "\"gender\":\"female\",\"birthDate\":\"1959-12-24\","
		  "\"telecom\":[{\"system\":\"phone\",\"value\":\"5552013344\"}],"
		  "\"address\":[{\"line\":[\"12 North Oak Street\"],\"postalCode\":\"62704\"}]}", ANNA);
	assert_true(s.grade <= COORD_GRADE_POSSIBLE);
}

static void
test_names_normalized(void **state)
{
	struct coord_match_score s;

	/* accents, case and punctuation */
	s = score("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Garc\xc3\xad" "a-L\xc3\xb3pez\","
		  "\"given\":[\"Jos\xc3\xa9\"]}]}",
		  "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"GARCIA LOPEZ\",\"given\":[\"jose\"]}]}");
	assert_int_equal(s.how[COORD_PART_FAMILY], COORD_HOW_AGREES);
	assert_int_equal(s.how[COORD_PART_GIVEN], COORD_HOW_AGREES);
	/* one part of a double family name */
	s = score("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Garcia\"}]}",
		  "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Garc\xc3\xad" "a L\xc3\xb3pez\"}]}");
	assert_int_equal(s.how[COORD_PART_FAMILY], COORD_HOW_PARTIAL);
	assert_non_null(strstr(s.reasons, "share a part"));
	/* apostrophes and spaces inside a name */
	s = score("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"O'Brien\"}]}",
		  "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"OBRIEN\"}]}");
	assert_int_equal(s.how[COORD_PART_FAMILY], COORD_HOW_AGREES);
	/* near spellings through the phonetic key */
	s = score("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Smyth\",\"given\":[\"Steven\"]}]}",
		  "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Smith\",\"given\":[\"Stephen\"]}]}");
	assert_int_equal(s.how[COORD_PART_FAMILY], COORD_HOW_PARTIAL);
	assert_int_equal(s.how[COORD_PART_GIVEN], COORD_HOW_PARTIAL);
	s = score("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"Catherine\"]}]}",
		  "{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"Kathryn\"]}]}");
	assert_int_equal(s.how[COORD_PART_GIVEN], COORD_HOW_PARTIAL);
	/* but not names that only share consonants */
	s = score("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"Jane\"]}]}",
		  "{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"John\"]}]}");
	assert_int_equal(s.how[COORD_PART_GIVEN], COORD_HOW_DIFFERS);
	s = score("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"Joan\"]}]}",
		  "{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"John\"]}]}");
	assert_int_equal(s.how[COORD_PART_GIVEN], COORD_HOW_DIFFERS);
	/* an initial */
	s = score("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A.\"]}]}", ANNA);
	assert_int_equal(s.how[COORD_PART_GIVEN], COORD_HOW_PARTIAL);
	assert_non_null(strstr(s.reasons, "initial"));
	/* a middle name given as the first */
	s = score("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"Maria\"]}]}", ANNA);
	assert_int_equal(s.how[COORD_PART_GIVEN], COORD_HOW_AGREES);
}

static void
test_missing_is_unknown(void **state)
{
	struct coord_match_score s;

	/* all that is known agrees, but little is known: never certain */
	s = score("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Lindqvist\",\"given\":[\"Anna\"]}]}",
		  ANNA);
	assert_int_equal(s.how[COORD_PART_BIRTH], COORD_HOW_UNKNOWN);
	assert_int_equal(s.how[COORD_PART_SEX], COORD_HOW_UNKNOWN);
	assert_int_equal(s.how[COORD_PART_PHONE], COORD_HOW_UNKNOWN);
	assert_int_equal(s.how[COORD_PART_ADDRESS], COORD_HOW_UNKNOWN);
	assert_true(s.grade <= COORD_GRADE_POSSIBLE);
	assert_null(strstr(s.reasons, "birth"));
	/* gender unknown or other is not a disagreement */
	s = score("{\"resourceType\":\"Patient\",\"gender\":\"unknown\"}", ANNA);
	assert_int_equal(s.how[COORD_PART_SEX], COORD_HOW_UNKNOWN);
	s = score("{\"resourceType\":\"Patient\",\"gender\":\"other\"}", ANNA);
	assert_int_equal(s.how[COORD_PART_SEX], COORD_HOW_UNKNOWN);
	s = score("{\"resourceType\":\"Patient\",\"gender\":\"male\"}", ANNA);
	assert_int_equal(s.how[COORD_PART_SEX], COORD_HOW_DIFFERS);
	/* nothing at all */
	s = score("{\"resourceType\":\"Patient\"}", "{\"resourceType\":\"Patient\"}");
	assert_int_equal(s.grade, COORD_GRADE_CERTAINLY_NOT);
	assert_true(s.score == 0);
	assert_string_equal(s.reasons, "nothing to compare");
	assert_false(coord_match_usable(pat("{\"resourceType\":\"Patient\",\"gender\":\"female\","
					    "\"identifier\":[{\"value\":\"no system\"}]}")));
	assert_true(coord_match_usable(pat("{\"resourceType\":\"Patient\",\"birthDate\":\"1984\"}")));
}

static void
test_address_and_phone(void **state)
{
	struct coord_match_score s;

	/* the same line in another postal code is another house */
	s = score("{\"resourceType\":\"Patient\",\"address\":[{\"line\":[\"12 North Oak Street\"],"
		  "\"postalCode\":\"10001\"}]}", ANNA);
	assert_int_equal(s.how[COORD_PART_ADDRESS], COORD_HOW_DIFFERS);
	s = score("{\"resourceType\":\"Patient\",\"address\":[{\"postalCode\":\"62704\"}]}", ANNA);
	assert_int_equal(s.how[COORD_PART_ADDRESS], COORD_HOW_PARTIAL);
	/* a number without its country or area code */
	s = score("{\"resourceType\":\"Patient\",\"telecom\":[{\"system\":\"phone\",\"value\":\"201-3344\"}]}",
		  ANNA);
	assert_int_equal(s.how[COORD_PART_PHONE], COORD_HOW_AGREES);
	/* an email is not a phone */
	s = score("{\"resourceType\":\"Patient\",\"telecom\":[{\"system\":\"email\",\"value\":\"5552013344\"}]}",
		  ANNA);
	assert_int_equal(s.how[COORD_PART_PHONE], COORD_HOW_UNKNOWN);
	s = score("{\"resourceType\":\"Patient\",\"telecom\":[{\"system\":\"phone\",\"value\":\"555 999 0000\"}]}",
		  ANNA);
	assert_int_equal(s.how[COORD_PART_PHONE], COORD_HOW_DIFFERS);
}

static void
test_odd_input(void **state)
{
	/* values of the wrong JSON type, huge names, other scripts: no crash */
	struct sbuf sb = SBUF_INIT(1 << 20);
	struct coord_match_score s;

	s = score("{\"resourceType\":\"Patient\",\"name\":\"x\",\"birthDate\":7,\"telecom\":{},"
		  "\"address\":[1,{\"line\":[2]}],\"identifier\":[null]}", ANNA);
	assert_int_equal(s.grade, COORD_GRADE_CERTAINLY_NOT);
	sbuf_adds(&sb, "{\"resourceType\":\"Patient\",\"name\":[");
	for (int i = 0; i < 40; i++) {
		sbuf_adds(&sb, i ? "," : "");
		sbuf_adds(&sb, "{\"family\":\"");
		for (int k = 0; k < 300; k++)
			sbuf_adds(&sb, "ab-");
		sbuf_adds(&sb, "\",\"given\":[\"\xe5\xbc\xa0\",\"\xe4\xbc\x9f\"]}");
	}
	sbuf_adds(&sb, "]}");
	s = score(sb.buf, sb.buf);
	assert_int_equal(s.how[COORD_PART_FAMILY], COORD_HOW_AGREES);
	assert_int_equal(s.how[COORD_PART_GIVEN], COORD_HOW_AGREES);
	sbuf_release(&sb);
}

/* ---- the candidate search on a store ----------------------------------------- */

struct put_job {
	const char *const *texts;
	size_t n;
	const char **ids;
};

static enum cw_err
put_cb(struct store_tx *tx, void *ctx)
{
	struct put_job *j = ctx;

	for (size_t i = 0; i < j->n; i++) {
		struct store_put put = {.create = true, .rt = fhir_restype_find("Patient")};
		struct store_res out;
		bool created;
		enum cw_err err;

		put.res = pat(j->texts[i]);
		if ((err = store_tx_put(tx, a, &put, &out, &created)))
			return err;
		j->ids[i] = arena_strdup(a, out.id);
	}
	return CW_OK;
}

static enum cw_err
delete_cb(struct store_tx *tx, void *ctx)
{
	struct store_res out;
	bool existed;

	return store_tx_delete(tx, a, "Patient", ctx, 0, &out, &existed);
}

struct match_job {
	const char *who;
	size_t max;
	struct coord_match *m;
	size_t n;
	struct diag d;
};

static enum cw_err
match_cb(struct store_tx *tx, void *ctx)
{
	struct match_job *j = ctx;

	return coord_match_patient(NULL, tx, a, pat(j->who), j->max, &j->m, &j->n, &j->d);
}

static void
test_candidates(void **state)
{
	static const char *const held[] = {
		ANNA,
		/* her twin */
		"{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Lindqvist\",\"given\":[\"Sofia\"]}],"
		"\"gender\":\"female\",\"birthDate\":\"1984-03-07\"}",
		/* someone born the same day */
		"{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Novak\",\"given\":[\"Petr\"]}],"
		"\"gender\":\"male\",\"birthDate\":\"1984-03-07\"}",
		/* an inactive duplicate of Anna: never a candidate */
		"{\"resourceType\":\"Patient\",\"active\":false,\"name\":[{\"family\":\"Lindqvist\","
		"\"given\":[\"Anna\"]}],\"gender\":\"female\",\"birthDate\":\"1984-03-07\"}",
	};
	char dir[] = "/tmp/cw-match-XXXXXX", path[64];
	struct put_job pj = {held, 4, NULL};
	struct match_job mj = {0};
	struct store *s;
	struct diag d;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/t.db", dir);
	diag_init(&d, a);
	s = store_open(path, NULL, &d);
	assert_non_null(s);
	pj.ids = arena_zalloc(a, 4 * sizeof(*pj.ids));
	assert_int_equal(store_write(s, put_cb, &pj), CW_OK);

	/* by identifier alone */
	mj.who = "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:mrn:a\",\"value\":\"A100\"}]}";
	mj.max = 10;
	diag_init(&mj.d, a);
	assert_int_equal(store_write(s, match_cb, &mj), CW_OK);
	assert_int_equal(mj.n, 1);
	assert_string_equal(mj.m[0].id, pj.ids[0]);
	assert_int_equal(mj.m[0].s.grade, COORD_GRADE_CERTAIN);

	/* by demographics with a typo in the family name: Anna first, her
	 * twin below, the stranger born the same day not at all */
	mj.who = "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Lindquist\",\"given\":[\"Anna\"]}],"
		 "\"gender\":\"female\",\"birthDate\":\"1984-03-07\","
		 "\"telecom\":[{\"system\":\"phone\",\"value\":\"555 201 3344\"}]}";
	assert_int_equal(store_write(s, match_cb, &mj), CW_OK);
	assert_true(mj.n >= 1);
	assert_string_equal(mj.m[0].id, pj.ids[0]);
	assert_int_equal(mj.m[0].s.grade, COORD_GRADE_PROBABLE);
	for (size_t i = 0; i < mj.n; i++) {
		assert_string_not_equal(mj.m[i].id, pj.ids[2]);
		assert_string_not_equal(mj.m[i].id, pj.ids[3]);
		if (i)
			assert_true(mj.m[i].s.score <= mj.m[i - 1].s.score);
	}
	/* found only through the birth date with day and month swapped (the
	 * family name is new): possible, never more */
	mj.who = "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Haddad\",\"given\":[\"Anna\"]}],"
		 "\"gender\":\"female\",\"birthDate\":\"1984-07-03\"}";
	assert_int_equal(store_write(s, match_cb, &mj), CW_OK);
	assert_int_equal(mj.n, 1);
	assert_string_equal(mj.m[0].id, pj.ids[0]);
	assert_int_equal(mj.m[0].s.grade, COORD_GRADE_POSSIBLE);
	/* max */
	mj.max = 0;
	assert_int_equal(store_write(s, match_cb, &mj), CW_OK);
	assert_int_equal(mj.n, 0);

	/* nothing to match on */
	mj.who = "{\"resourceType\":\"Patient\",\"gender\":\"female\"}";
	mj.max = 10;
	diag_init(&mj.d, a);
	assert_int_equal(store_write(s, match_cb, &mj), CW_EINVAL);
	assert_true(diag_has_errors(&mj.d));

	/* a deleted record, or one replaced by another, is never a candidate */
	{
		static const char *const gone[] = {
			"{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:mrn:a\",\"value\":\"D1\"}]}",
			"{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:mrn:a\",\"value\":\"D1\"}],"
			"\"link\":[{\"other\":{\"reference\":\"Patient/x\"},\"type\":\"replaced-by\"}]}",
		};
		const char *gids[2];
		struct put_job gj = {gone, 2, gids};

		assert_int_equal(store_write(s, put_cb, &gj), CW_OK);
		assert_int_equal(store_write(s, delete_cb, (void *)gids[0]), CW_OK);
		mj.who = "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:mrn:a\",\"value\":\"D1\"}]}";
		assert_int_equal(store_write(s, match_cb, &mj), CW_OK);
		assert_int_equal(mj.n, 0);
	}

	/* two certain matches are two probable ones */
	pj.texts = held;
	pj.n = 1;
	assert_int_equal(store_write(s, put_cb, &pj), CW_OK);
	mj.who = "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:mrn:a\",\"value\":\"A100\"}]}";
	diag_init(&mj.d, a);
	assert_int_equal(store_write(s, match_cb, &mj), CW_OK);
	assert_int_equal(mj.n, 2);
	assert_int_equal(mj.m[0].s.grade, COORD_GRADE_PROBABLE);
	assert_int_equal(mj.m[1].s.grade, COORD_GRADE_PROBABLE);
	assert_non_null(strstr(mj.m[0].s.reasons, "more than one record"));

	store_close(s);
	unit_rm_dir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_person_certain),
		cmocka_unit_test(test_identifier_certain),
		cmocka_unit_test(test_identifier_contradicted),
		cmocka_unit_test(test_identifier_twin),
		cmocka_unit_test(test_deceased),
		cmocka_unit_test(test_identifier_conflict),
		cmocka_unit_test(test_twins_not_certain),
		cmocka_unit_test(test_typo_and_moved_probable),
		cmocka_unit_test(test_married_name),
		cmocka_unit_test(test_birth_dates),
		cmocka_unit_test(test_names_normalized),
		cmocka_unit_test(test_missing_is_unknown),
		cmocka_unit_test(test_address_and_phone),
		cmocka_unit_test(test_odd_input),
		cmocka_unit_test(test_candidates),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
