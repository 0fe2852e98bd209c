/* tests/unit/fhir/test_query.c: search query parsing (fhir/query.c) and
 * result subsetting (fhir/subset.c). */
#include <math.h>
#include <time.h>

#include "unit.h"
#include "fhir/fhir.h"

struct qfx {
	struct arena *a;
	struct diag d;
	struct fhir_query q;
	enum cw_err err;
};

static int64_t
utc(int y, int mo, int d, int h, int mi, int s, int ms)
{
	struct tm tm = {0};

	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

/* pairs: key, value, key, value, ..., NULL */
static void
parse(struct qfx *f, const char *type, bool strict, ...)
{
	struct fhir_kv kv[128];
	size_t n = 0;
	va_list ap;
	const char *k;

	f->a = arena_new(0);
	diag_init(&f->d, f->a);
	va_start(ap, strict);
	while ((k = va_arg(ap, const char *)) != NULL) {
		kv[n].key = k;
		kv[n].value = va_arg(ap, const char *);
		n++;
	}
	va_end(ap);
	f->err = fhir_query_parse(f->a, fhir_restype_find(type), kv, n, strict,
				  &f->q, &f->d);
}

static void
done(struct qfx *f)
{
	arena_free(f->a);
}

static void
expect_ok(struct qfx *f)
{
	if (f->err != CW_OK)
		fail_msg("parse failed: %s at %s", f->d.n ? f->d.issues[0].msg : "?",
			 f->d.n && f->d.issues[0].loc ? f->d.issues[0].loc : "-");
}

/* One error, located at loc, whose message contains needle. */
static void
expect_error(struct qfx *f, const char *loc, const char *needle)
{
	assert_int_equal(f->err, CW_EINVAL);
	assert_true(f->d.nerrors >= 1);
	for (size_t i = 0; i < f->d.n; i++) {
		const struct diag_issue *is = &f->d.issues[i];

		if (is->sev > DIAG_ERROR)
			continue;
		if (loc && (!is->loc || strcmp(is->loc, loc) != 0))
			continue;
		if (needle && !strstr(is->msg, needle))
			continue;
		return;
	}
	fail_msg("no error at %s mentioning '%s' (first: %s)", loc ? loc : "-",
		 needle ? needle : "", f->d.n ? f->d.issues[0].msg : "none");
}

static void
test_patient_basics(void **state)
{
	struct qfx f;
	const struct fhir_qparam *p;

	parse(&f, "Patient", true,
	      "name", "M\xc3\xbcller,  Jean  ",
	      "birthdate", "ge1960-05",
	      "gender", "male",
	      "identifier", "http://hospital.example/mrn|12345",
	      "identifier", "|abc",
	      "identifier", "http://sys|",
	      "_id", "p1,p2",
	      "_lastUpdated", "gt2024-01-01T10:00",
	      "_format", "json", "_pretty", "true", NULL);
	expect_ok(&f);
	assert_int_equal(f.q.nparams, 8);
	assert_int_equal(f.q.count, FHIR_COUNT_DEFAULT);

	p = &f.q.params[0];
	assert_string_equal(p->sp->code, "name");
	assert_int_equal(p->mod, MOD_NONE);
	assert_int_equal(p->nvalues, 2);
	assert_string_equal(p->values[0].text, "muller");
	assert_string_equal(p->values[0].raw, "M\xc3\xbcller");
	assert_string_equal(p->values[1].text, "jean");

	p = &f.q.params[1];
	assert_int_equal(p->values[0].prefix, PFX_GE);
	assert_int_equal(p->values[0].lo, utc(1960, 5, 1, 0, 0, 0, 0));
	assert_int_equal(p->values[0].hi, utc(1960, 5, 31, 23, 59, 59, 999));

	p = &f.q.params[2];
	assert_null(p->values[0].system);
	assert_string_equal(p->values[0].code, "male");

	p = &f.q.params[3];
	assert_string_equal(p->values[0].system, "http://hospital.example/mrn");
	assert_string_equal(p->values[0].code, "12345");
	p = &f.q.params[4];
	assert_string_equal(p->values[0].system, "");
	assert_string_equal(p->values[0].code, "abc");
	p = &f.q.params[5];
	assert_string_equal(p->values[0].system, "http://sys");
	assert_null(p->values[0].code);

	p = &f.q.params[6];
	assert_string_equal(p->sp->code, "_id");
	assert_int_equal(p->nvalues, 2);
	assert_string_equal(p->values[1].code, "p2");

	p = &f.q.params[7];
	assert_int_equal(p->values[0].prefix, PFX_GT);
	assert_int_equal(p->values[0].lo, utc(2024, 1, 1, 10, 0, 0, 0));
	assert_int_equal(p->values[0].hi, utc(2024, 1, 1, 10, 0, 59, 999));
	done(&f);
}

static void
test_result_params(void **state)
{
	struct qfx f;

	parse(&f, "Patient", true,
	      "_count", "20",
	      "_sort", "-birthdate,_id,_lastUpdated,family",
	      "_include", "Patient:general-practitioner",
	      "_include", "Patient:organization:Organization",
	      "_revinclude", "Observation:subject",
	      "_revinclude:iterate", "Provenance:target",
	      "_include", "*",
	      "_summary", "true",
	      "_total", "accurate",
	      "_elements", "name,birthDate,gender",
	      "_cursor", "opaque/=token", NULL);
	expect_ok(&f);
	assert_int_equal(f.q.nparams, 0);
	assert_int_equal(f.q.count, 20);
	assert_int_equal(f.q.nsort, 4);
	assert_string_equal(f.q.sort[0].sp->code, "birthdate");
	assert_true(f.q.sort[0].desc);
	assert_null(f.q.sort[1].sp);
	assert_false(f.q.sort[1].desc);
	assert_string_equal(f.q.sort[2].sp->code, "_lastUpdated");
	assert_string_equal(f.q.sort[3].sp->code, "family");

	assert_int_equal(f.q.ninclude, 5);
	assert_false(f.q.include[0].rev);
	assert_string_equal(f.q.include[0].src->name, "Patient");
	assert_string_equal(f.q.include[0].sp->code, "general-practitioner");
	assert_null(f.q.include[0].target);
	assert_string_equal(f.q.include[1].target->name, "Organization");
	assert_true(f.q.include[2].rev);
	assert_string_equal(f.q.include[2].src->name, "Observation");
	assert_string_equal(f.q.include[2].sp->code, "subject");
	assert_true(f.q.include[3].iterate);
	assert_null(f.q.include[4].sp);

	assert_int_equal(f.q.summary, SUMMARY_TRUE);
	assert_int_equal(f.q.total, TOTAL_ACCURATE);
	assert_int_equal(f.q.nelements, 3);
	assert_string_equal(f.q.elements[1], "birthDate");
	assert_string_equal(f.q.cursor, "opaque/=token");
	done(&f);

	parse(&f, "Patient", true, "_count", "5000", NULL);
	expect_ok(&f);
	assert_int_equal(f.q.count, FHIR_COUNT_MAX);
	done(&f);
	parse(&f, "Patient", true, "_count", "0", NULL);
	expect_ok(&f);
	assert_int_equal(f.q.count, 0);
	assert_int_equal(f.q.summary, SUMMARY_COUNT);
	done(&f);
	parse(&f, "Patient", true, "_summary", "count", "_total", "none", NULL);
	expect_ok(&f);
	assert_int_equal(f.q.summary, SUMMARY_COUNT);
	assert_int_equal(f.q.total, TOTAL_NONE);
	done(&f);
}

static void
test_result_params_bad(void **state)
{
	struct qfx f;

	parse(&f, "Patient", false, "_count", "-1", NULL);
	expect_error(&f, "_count", "whole number");
	done(&f);
	parse(&f, "Patient", false, "_count", "ten", NULL);
	expect_error(&f, "_count", NULL);
	done(&f);
	parse(&f, "Patient", false, "_sort", "foo", NULL);
	expect_error(&f, "_sort", "cannot sort by 'foo'");
	done(&f);
	parse(&f, "Observation", false, "_sort", "code-value-quantity", NULL);
	expect_error(&f, "_sort", "cannot sort");
	done(&f);
	parse(&f, "Patient", false, "_include", "Patient:foo", NULL);
	expect_error(&f, "_include", "not a reference parameter");
	done(&f);
	parse(&f, "Patient", false, "_include", "Patient:gender", NULL);
	expect_error(&f, "_include", "not a reference parameter");
	done(&f);
	parse(&f, "Patient", false, "_include", "Observation:subject", NULL);
	expect_error(&f, "_include", "searched type");
	done(&f);
	parse(&f, "Patient", false, "_include", "Nope:subject", NULL);
	expect_error(&f, "_include", "not a resource type");
	done(&f);
	parse(&f, "Patient", false, "_include", "Patient", NULL);
	expect_error(&f, "_include", "Type:parameter");
	done(&f);
	parse(&f, "Patient", false, "_revinclude", "Observation:device", NULL);
	expect_error(&f, "_revinclude", "never refers");
	done(&f);
	parse(&f, "Patient", false, "_summary", "maybe", NULL);
	expect_error(&f, "_summary", "not an allowed value");
	done(&f);
	parse(&f, "Patient", false, "_total", "exact", NULL);
	expect_error(&f, "_total", NULL);
	done(&f);
	parse(&f, "Patient", true, "_elements", "name,nosuch", NULL);
	expect_error(&f, "_elements", "nosuch");
	done(&f);
	parse(&f, "Patient", false, "_elements", "name,nosuch", NULL);
	expect_ok(&f);
	assert_int_equal(f.q.nelements, 1);
	done(&f);
}

static void
test_observation_values(void **state)
{
	struct qfx f;
	const struct fhir_qparam *p;

	parse(&f, "Observation", true,
	      "value-quantity", "le5.4|http://unitsofmeasure.org|mg",
	      "value-quantity", "5.40",
	      "value-quantity", "ap100||kg",
	      "code", "http://loinc.org|1234-5,http://loinc.org|999",
	      "code:text", "Blood  Pressure",
	      "code:not", "x",
	      "code", "a\\,b,c\\|d",
	      "code", "gt123",
	      "date", "sa2020-01-01T10:00:00+02:00",
	      "value-quantity", "1e2", NULL);
	expect_ok(&f);
	assert_int_equal(f.q.nparams, 10);

	p = &f.q.params[0];
	assert_int_equal(p->values[0].prefix, PFX_LE);
	assert_true(p->values[0].num == 5.4);
	assert_true(fabs(p->values[0].num_lo - 5.35) < 1e-12);
	assert_true(fabs(p->values[0].num_hi - 5.45) < 1e-12);
	assert_string_equal(p->values[0].system, "http://unitsofmeasure.org");
	assert_string_equal(p->values[0].code, "mg");

	p = &f.q.params[1];
	assert_int_equal(p->values[0].prefix, PFX_EQ);
	assert_true(fabs(p->values[0].num_lo - 5.395) < 1e-12);
	assert_true(fabs(p->values[0].num_hi - 5.405) < 1e-12);
	assert_null(p->values[0].system);
	assert_null(p->values[0].code);

	p = &f.q.params[2];
	assert_int_equal(p->values[0].prefix, PFX_AP);
	assert_null(p->values[0].system);
	assert_string_equal(p->values[0].code, "kg");
	assert_true(p->values[0].num_lo == 99.5);

	p = &f.q.params[3];
	assert_int_equal(p->nvalues, 2);
	assert_string_equal(p->values[1].code, "999");

	p = &f.q.params[4];
	assert_int_equal(p->mod, MOD_TEXT);
	assert_string_equal(p->values[0].text, "blood pressure");
	assert_int_equal(f.q.params[5].mod, MOD_NOT);

	/* escapes: \, stays in the value, \| is not a system separator */
	p = &f.q.params[6];
	assert_int_equal(p->nvalues, 2);
	assert_null(p->values[0].system);
	assert_string_equal(p->values[0].code, "a,b");
	assert_null(p->values[1].system);
	assert_string_equal(p->values[1].code, "c|d");

	/* tokens have no prefixes: gt123 is a code */
	assert_string_equal(f.q.params[7].values[0].code, "gt123");
	assert_int_equal(f.q.params[7].values[0].prefix, PFX_EQ);

	p = &f.q.params[8];
	assert_int_equal(p->values[0].prefix, PFX_SA);
	assert_int_equal(p->values[0].lo, utc(2020, 1, 1, 8, 0, 0, 0));
	assert_int_equal(p->values[0].hi, utc(2020, 1, 1, 8, 0, 0, 999));

	p = &f.q.params[9];
	assert_true(p->values[0].num == 100);
	done(&f);
}

static void
test_references(void **state)
{
	struct qfx f;
	const struct fhir_qparam *p;

	parse(&f, "Observation", true,
	      "subject", "Patient/123",
	      "subject:Patient", "123",
	      "patient", "456",
	      "subject", "https://other.example/fhir/Patient/9",
	      "subject", "Patient/123/_history/4",
	      "subject:missing", "true",
	      "subject:identifier", "urn:mrn|7",
	      "subject", "789", NULL);
	expect_ok(&f);
	assert_int_equal(f.q.nparams, 8);
	p = &f.q.params[0];
	assert_string_equal(p->values[0].ref_type, "Patient");
	assert_string_equal(p->values[0].ref_id, "123");
	p = &f.q.params[1];
	assert_int_equal(p->mod, MOD_TYPE);
	assert_string_equal(p->mod_type, "Patient");
	assert_string_equal(p->values[0].ref_type, "Patient");
	assert_string_equal(p->values[0].ref_id, "123");
	/* one target: the type is known */
	p = &f.q.params[2];
	assert_string_equal(p->values[0].ref_type, "Patient");
	assert_string_equal(p->values[0].ref_id, "456");
	p = &f.q.params[3];
	assert_string_equal(p->values[0].raw, "https://other.example/fhir/Patient/9");
	assert_null(p->values[0].ref_id);
	p = &f.q.params[4];
	assert_string_equal(p->values[0].ref_id, "123");
	p = &f.q.params[5];
	assert_int_equal(p->mod, MOD_MISSING);
	assert_true(p->values[0].missing);
	p = &f.q.params[6];
	assert_int_equal(p->mod, MOD_IDENTIFIER);
	assert_string_equal(p->values[0].system, "urn:mrn");
	assert_string_equal(p->values[0].code, "7");
	/* several targets, bare id: any type */
	p = &f.q.params[7];
	assert_null(p->values[0].ref_type);
	assert_string_equal(p->values[0].ref_id, "789");
	done(&f);

	parse(&f, "Observation", false, "subject", "Medication/1", NULL);
	expect_error(&f, "subject", "cannot refer to a Medication");
	done(&f);
	parse(&f, "Observation", false, "subject:Patient", "Group/1", NULL);
	expect_error(&f, "subject:Patient", "contradicts");
	done(&f);
	parse(&f, "Observation", false, "subject", "Patient/has space", NULL);
	expect_error(&f, "subject", "not a valid resource id");
	done(&f);
	parse(&f, "Observation", false, "subject", "Nope/1", NULL);
	expect_error(&f, "subject", "not a resource type");
	done(&f);
	parse(&f, "Observation", false, "subject:missing", "maybe", NULL);
	expect_error(&f, "subject:missing", "true or false");
	done(&f);
}

static void
test_chains(void **state)
{
	struct qfx f;
	const struct fhir_qparam *p;

	parse(&f, "Observation", true,
	      "subject:Patient.name", "peter",
	      "patient.birthdate", "lt1950",
	      "subject:Patient.name:exact", "Peter", NULL);
	expect_ok(&f);
	p = &f.q.params[0];
	assert_string_equal(p->sp->code, "subject");
	assert_int_equal(p->mod, MOD_TYPE);
	assert_string_equal(p->mod_type, "Patient");
	assert_string_equal(p->chain_rt->name, "Patient");
	assert_non_null(p->chain);
	assert_string_equal(p->chain->sp->code, "name");
	assert_string_equal(p->chain->values[0].text, "peter");
	p = &f.q.params[1];
	assert_int_equal(p->mod, MOD_NONE);
	assert_string_equal(p->mod_type, "Patient");
	assert_string_equal(p->chain->sp->code, "birthdate");
	assert_int_equal(p->chain->values[0].prefix, PFX_LT);
	assert_int_equal(f.q.params[2].chain->mod, MOD_EXACT);
	assert_string_equal(f.q.params[2].chain->values[0].raw, "Peter");
	done(&f);

	/* subject may be a Patient, Group, Device or Location */
	parse(&f, "Observation", false, "subject.name", "x", NULL);
	expect_error(&f, "subject.name", "subject:Patient.name");
	done(&f);
	parse(&f, "Observation", false, "subject:Patient.organization.name", "x", NULL);
	expect_error(&f, NULL, "one level");
	done(&f);
	parse(&f, "Observation", false, "code.name", "x", NULL);
	expect_error(&f, "code.name", "cannot be chained");
	done(&f);
	/* an unknown chained parameter is unknown: strict or ignored */
	parse(&f, "Observation", true, "subject:Patient.nosuch", "x", NULL);
	expect_error(&f, "subject:Patient.nosuch", "unknown");
	done(&f);
	parse(&f, "Observation", false, "subject:Patient.nosuch", "x", NULL);
	expect_ok(&f);
	assert_int_equal(f.q.nparams, 0);
	assert_int_equal(f.q.nignored, 1);
	done(&f);
}

static void
test_has(void **state)
{
	struct qfx f;
	const struct fhir_qparam *p;

	parse(&f, "Patient", true, "_has:Observation:patient:code", "1234",
	      "_has:Observation:subject:date", "ge2020", NULL);
	expect_ok(&f);
	assert_int_equal(f.q.nparams, 2);
	p = &f.q.params[0];
	assert_null(p->sp);
	assert_string_equal(p->has_rt->name, "Observation");
	assert_string_equal(p->has_sp->code, "patient");
	assert_string_equal(p->has->sp->code, "code");
	assert_string_equal(p->has->values[0].code, "1234");
	assert_int_equal(f.q.params[1].has->values[0].prefix, PFX_GE);
	done(&f);

	parse(&f, "Patient", false, "_has:Observation:patient:_has:X:y:z", "1", NULL);
	expect_error(&f, NULL, "one level");
	done(&f);
	parse(&f, "Patient", false, "_has:Observation:code:code", "1", NULL);
	expect_error(&f, NULL, "not a reference parameter");
	done(&f);
	parse(&f, "Patient", false, "_has:Observation:patient", "1", NULL);
	expect_error(&f, NULL, "_has:Type");
	done(&f);
	parse(&f, "Practitioner", false, "_has:Observation:patient:code", "1", NULL);
	expect_error(&f, NULL, "never refers");
	done(&f);
	parse(&f, "Patient", false, "_has:Observation:patient:nosuch", "1", NULL);
	expect_error(&f, NULL, "nosuch");
	done(&f);
}

static void
test_unknown_strict_lenient(void **state)
{
	struct qfx f;

	parse(&f, "Patient", true, "foo", "bar", "name", "x", NULL);
	expect_error(&f, "foo", "unknown");
	done(&f);

	parse(&f, "Patient", false, "foo", "bar", "name", "x", "_text", "y", NULL);
	expect_ok(&f);
	assert_int_equal(f.q.nparams, 1);
	assert_int_equal(f.q.nignored, 2);
	assert_string_equal(f.q.ignored[0], "foo");
	assert_string_equal(f.q.ignored[1], "_text");
	assert_int_equal(f.d.nerrors, 0);
	done(&f);

	/* unsupported (composite) parameters count as unknown */
	parse(&f, "Observation", true, "code-value-quantity", "x$1", NULL);
	expect_error(&f, "code-value-quantity", "unknown or unsupported");
	done(&f);
}

static void
test_bad_values(void **state)
{
	struct qfx f;

	/* bad values are errors even when lenient */
	parse(&f, "Patient", false, "birthdate", "2023-02-30", NULL);
	expect_error(&f, "birthdate", "not a valid date");
	done(&f);
	parse(&f, "Patient", false, "birthdate", "yesterday", NULL);
	expect_error(&f, "birthdate", "unknown prefix");
	done(&f);
	parse(&f, "Patient", false, "birthdate", "xx2020", NULL);
	expect_error(&f, "birthdate", "unknown prefix");
	done(&f);
	parse(&f, "Patient", false, "birthdate", "ge", NULL);
	expect_error(&f, "birthdate", "not a valid date");
	done(&f);
	parse(&f, "Observation", false, "value-quantity", "5.4|mg", NULL);
	expect_error(&f, "value-quantity", "not a quantity");
	done(&f);
	parse(&f, "Observation", false, "value-quantity", "five", NULL);
	expect_error(&f, "value-quantity", NULL);
	done(&f);
	parse(&f, "Observation", false, "value-quantity", "01.5", NULL);
	expect_error(&f, "value-quantity", "not a number");
	done(&f);
	parse(&f, "Observation", false, "code", "a|b|c", NULL);
	expect_error(&f, "code", "more than one '|'");
	done(&f);
	parse(&f, "Observation", false, "code", "|", NULL);
	expect_error(&f, "code", "neither");
	done(&f);
	/* modifiers */
	parse(&f, "Patient", false, "name:foo", "x", NULL);
	expect_error(&f, "name:foo", "unknown or unsupported modifier");
	done(&f);
	parse(&f, "Patient", false, "gender:exact", "x", NULL);
	expect_error(&f, "gender:exact", "does not apply to token");
	done(&f);
	parse(&f, "Patient", false, "name:text", "x", NULL);
	expect_error(&f, "name:text", "does not apply to string");
	done(&f);
	parse(&f, "Patient", false, "gender:in", "http://vs", NULL);
	expect_error(&f, "gender:in", "modifier");
	done(&f);
	parse(&f, "Patient", false, "name:", "x", NULL);
	expect_error(&f, "name:", "empty modifier");
	done(&f);
	parse(&f, "Observation", false, "subject:Nope", "1", NULL);
	expect_error(&f, "subject:Nope", "not a resource type");
	done(&f);
	parse(&f, "Patient", false, "gender", ",,", NULL);
	expect_error(&f, "gender", "no value");
	done(&f);

	/* every problem is reported, not just the first */
	parse(&f, "Patient", true, "birthdate", "bad", "gender:exact", "x",
	      "nosuch", "1", NULL);
	assert_int_equal(f.err, CW_EINVAL);
	assert_int_equal(f.d.nerrors, 3);
	done(&f);
}

static void
test_sql_is_just_text(void **state)
{
	struct qfx f;

	parse(&f, "Patient", true,
	      "name", "x'; DROP TABLE resources;--",
	      "identifier", "1' OR '1'='1",
	      "_id", "\"; DELETE FROM x", NULL);
	expect_ok(&f);
	assert_string_equal(f.q.params[0].values[0].raw, "x'; DROP TABLE resources;--");
	assert_string_equal(f.q.params[0].values[0].text, "x'; drop table resources;--");
	assert_string_equal(f.q.params[1].values[0].code, "1' OR '1'='1");
	assert_string_equal(f.q.params[2].values[0].code, "\"; DELETE FROM x");
	done(&f);
}

static void
test_bounds(void **state)
{
	struct fhir_kv kv[101];
	struct arena *a = arena_new(0);
	struct diag d;
	struct fhir_query q;
	char many[1024];
	size_t o = 0;

	for (int i = 0; i < 101; i++) {
		kv[i].key = "gender";
		kv[i].value = "male";
	}
	diag_init(&d, a);
	assert_int_equal(fhir_query_parse(a, fhir_restype_find("Patient"), kv, 101,
					  true, &q, &d), CW_EINVAL);
	diag_init(&d, a);
	assert_int_equal(fhir_query_parse(a, fhir_restype_find("Patient"), kv, 100,
					  true, &q, &d), CW_OK);
	assert_int_equal(q.nparams, 100);

	for (int i = 0; i < 101; i++)
		o += (size_t)snprintf(many + o, sizeof(many) - o, "%s%d", i ? "," : "", i % 10);
	kv[0].key = "gender";
	kv[0].value = many;
	diag_init(&d, a);
	assert_int_equal(fhir_query_parse(a, fhir_restype_find("Patient"), kv, 1,
					  true, &q, &d), CW_EINVAL);
	assert_string_equal(d.issues[0].code, "too-costly");
	many[o - 2] = '\0'; /* 100 values */
	diag_init(&d, a);
	assert_int_equal(fhir_query_parse(a, fhir_restype_find("Patient"), kv, 1,
					  true, &q, &d), CW_OK);
	assert_int_equal(q.params[0].nvalues, 100);
	arena_free(a);
}

/* ---- subset ---------------------------------------------------------- */

static json_t *
jparse(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);

	if (!j)
		fail_msg("bad JSON: %s", e.text);
	return j;
}

static bool
has_tag(const json_t *res)
{
	const json_t *tags = json_object_get(json_object_get(res, "meta"), "tag");
	size_t i;
	const json_t *t;

	json_array_foreach(tags, i, t)
		if (strcmp(json_string_value(json_object_get(t, "code")), "SUBSETTED") == 0 &&
		    strcmp(json_string_value(json_object_get(t, "system")),
			   "http://terminology.hl7.org/CodeSystem/v3-ObservationValue") == 0)
			return true;
	return false;
}

static void
test_subset(void **state)
{
	struct qfx f;
	json_t *pat = jparse(
		"{\"resourceType\":\"Patient\",\"id\":\"p1\",\"meta\":{\"versionId\":\"2\","
		"\"tag\":[{\"system\":\"urn:t\",\"code\":\"x\"}]},"
		"\"text\":{\"status\":\"generated\",\"div\":\"<div/>\"},"
		"\"name\":[{\"family\":\"Doe\"}],\"birthDate\":\"1970\",\"_birthDate\":{\"id\":\"b\"},"
		"\"gender\":\"male\",\"telecom\":[{\"value\":\"1\"}],"
		"\"address\":[{\"city\":\"X\"}],"
		"\"maritalStatus\":{\"text\":\"M\"},\"photo\":[{\"title\":\"p\"}]}");
	json_t *obs = jparse(
		"{\"resourceType\":\"Observation\",\"id\":\"o1\",\"status\":\"final\","
		"\"text\":{\"status\":\"generated\",\"div\":\"<div/>\"},"
		"\"code\":{\"text\":\"x\"},\"subject\":{\"reference\":\"Patient/p1\"},"
		"\"effectiveDateTime\":\"2020\",\"valueQuantity\":{\"value\":1},"
		"\"note\":[{\"text\":\"n\"}]}");
	json_t *out;

	parse(&f, "Patient", true, "_elements", "name,birthDate", NULL);
	expect_ok(&f);
	out = fhir_subset(pat, &f.q);
	assert_non_null(out);
	assert_non_null(json_object_get(out, "resourceType"));
	assert_non_null(json_object_get(out, "id"));
	assert_non_null(json_object_get(out, "name"));
	assert_non_null(json_object_get(out, "birthDate"));
	assert_non_null(json_object_get(out, "_birthDate"));
	assert_null(json_object_get(out, "gender"));
	assert_null(json_object_get(out, "telecom"));
	assert_null(json_object_get(out, "text"));
	assert_true(has_tag(out));
	assert_int_equal(json_array_size(json_object_get(json_object_get(out, "meta"), "tag")), 2);
	/* the input is untouched */
	assert_int_equal(json_array_size(json_object_get(json_object_get(pat, "meta"), "tag")), 1);
	assert_false(has_tag(pat));
	/* subsetting twice tags once */
	{
		json_t *again = fhir_subset(out, &f.q);

		assert_int_equal(json_array_size(json_object_get(json_object_get(again, "meta"), "tag")), 2);
		json_decref(again);
	}
	json_decref(out);
	done(&f);

	/* _elements=value keeps valueQuantity; mandatory status and code stay */
	parse(&f, "Observation", true, "_elements", "value", NULL);
	expect_ok(&f);
	out = fhir_subset(obs, &f.q);
	assert_non_null(json_object_get(out, "valueQuantity"));
	assert_non_null(json_object_get(out, "status"));
	assert_non_null(json_object_get(out, "code"));
	assert_null(json_object_get(out, "subject"));
	assert_null(json_object_get(out, "note"));
	json_decref(out);
	done(&f);

	parse(&f, "Observation", true, "_summary", "true", NULL);
	out = fhir_subset(obs, &f.q);
	assert_non_null(json_object_get(out, "subject"));
	assert_non_null(json_object_get(out, "effectiveDateTime"));
	assert_non_null(json_object_get(out, "status"));
	assert_null(json_object_get(out, "note"));
	assert_null(json_object_get(out, "text"));
	assert_true(has_tag(out));
	json_decref(out);
	done(&f);

	/* isSummary from the official definitions: Patient.address is a
	 * summary element, maritalStatus and photo are not. */
	parse(&f, "Patient", true, "_summary", "true", NULL);
	out = fhir_subset(pat, &f.q);
	assert_non_null(json_object_get(out, "name"));
	assert_non_null(json_object_get(out, "address"));
	assert_non_null(json_object_get(out, "gender"));
	assert_null(json_object_get(out, "maritalStatus"));
	assert_null(json_object_get(out, "photo"));
	assert_null(json_object_get(out, "text"));
	json_decref(out);
	done(&f);

	parse(&f, "Observation", true, "_summary", "text", NULL);
	out = fhir_subset(obs, &f.q);
	assert_non_null(json_object_get(out, "text"));
	assert_non_null(json_object_get(out, "status"));
	assert_null(json_object_get(out, "subject"));
	assert_true(has_tag(out));
	json_decref(out);
	done(&f);

	parse(&f, "Observation", true, "_summary", "data", NULL);
	out = fhir_subset(obs, &f.q);
	assert_null(json_object_get(out, "text"));
	assert_non_null(json_object_get(out, "note"));
	assert_non_null(json_object_get(out, "subject"));
	assert_true(has_tag(out));
	json_decref(out);
	done(&f);

	/* no subsetting: an untagged copy */
	parse(&f, "Observation", true, "code", "x", NULL);
	out = fhir_subset(obs, &f.q);
	assert_true(json_equal(out, obs));
	assert_false(has_tag(out));
	json_decref(out);
	done(&f);

	json_decref(pat);
	json_decref(obs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_patient_basics),
		cmocka_unit_test(test_result_params),
		cmocka_unit_test(test_result_params_bad),
		cmocka_unit_test(test_observation_values),
		cmocka_unit_test(test_references),
		cmocka_unit_test(test_chains),
		cmocka_unit_test(test_has),
		cmocka_unit_test(test_unknown_strict_lenient),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_sql_is_just_text),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_subset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
