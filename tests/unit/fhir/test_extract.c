/* tests/unit/fhir/test_extract.c: search index rows and compartments
 * (fhir/extract.c) over the generated R4 tables. */
#include <math.h>
#include <time.h>

#include "unit.h"
#include "fhir/fhir.h"

struct fx {
	struct arena *a;
	json_t *res;
	struct fhir_idx *rows;
	size_t n;
	const struct fhir_restype *rt;
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

static void
load(struct fx *f, const char *type, const char *json)
{
	json_error_t err;

	f->a = arena_new(0);
	assert_non_null(f->a);
	f->res = json_loads(json, 0, &err);
	if (!f->res)
		fail_msg("bad test JSON line %d: %s", err.line, err.text);
	f->rt = fhir_restype_find(type);
	assert_non_null(f->rt);
	assert_int_equal(fhir_extract(f->a, f->res, f->rt, &f->rows, &f->n), CW_OK);
}

static void
unload(struct fx *f)
{
	json_decref(f->res);
	arena_free(f->a);
}

static size_t
count(const struct fx *f, const char *code)
{
	size_t k = 0;

	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->rows[i].sp->code, code) == 0)
			k++;
	return k;
}

static bool
eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* The row of param code whose text is text (string params). */
static const struct fhir_idx *
find_text(const struct fx *f, const char *code, const char *text)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->rows[i].sp->code, code) == 0 &&
		    eq(f->rows[i].text, text))
			return &f->rows[i];
	return NULL;
}

static const struct fhir_idx *
find_token(const struct fx *f, const char *code, const char *system,
	   const char *value)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->rows[i].sp->code, code) == 0 &&
		    eq(f->rows[i].system, system) && eq(f->rows[i].code, value))
			return &f->rows[i];
	return NULL;
}

static const struct fhir_idx *
find_ref(const struct fx *f, const char *code, const char *type,
	 const char *id, const char *raw)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->rows[i].sp->code, code) == 0 &&
		    eq(f->rows[i].ref_type, type) && eq(f->rows[i].ref_id, id) &&
		    eq(f->rows[i].raw, raw))
			return &f->rows[i];
	return NULL;
}

static const struct fhir_idx *
first(const struct fx *f, const char *code)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->rows[i].sp->code, code) == 0)
			return &f->rows[i];
	return NULL;
}

static const char *patient_json =
	"{\"resourceType\":\"Patient\",\"id\":\"p1\","
	"\"meta\":{\"lastUpdated\":\"2024-01-02T03:04:05.678Z\","
	"  \"tag\":[{\"system\":\"urn:t\",\"code\":\"demo\"}]},"
	"\"active\":true,"
	"\"name\":[{\"family\":\"M\xc3\xbcller\",\"given\":[\"J\xc3\xbcrgen\",\"Hans \\t Peter\"],"
	"  \"prefix\":[\"Dr.\"]},"
	"  {\"family\":\"M\xc3\xbcller\",\"given\":[\"Hans \\t Peter\"]}],"
	"\"birthDate\":\"1960-05\","
	"\"gender\":\"male\","
	"\"identifier\":[{\"system\":\"http://hospital.example/mrn\",\"value\":\"12345\","
	"  \"type\":{\"text\":\"MRN\"}},{\"value\":\"no-system\"}],"
	"\"telecom\":[{\"system\":\"email\",\"value\":\"J.Doe@Example.org\"},"
	"  {\"system\":\"phone\",\"value\":\"555-1234\"}],"
	"\"address\":[{\"line\":[\"1 Rue de l'\xc3\x89glise\"],\"city\":\"Montr\xc3\xa9" "al\","
	"  \"postalCode\":\"H2X 1Y4\",\"country\":\"CA\"}],"
	"\"generalPractitioner\":[{\"reference\":\"Practitioner/dr1\"},"
	"  {\"reference\":\"Organization/o1/_history/3\"}]"
	"}";

static void
test_patient(void **state)
{
	struct fx f;
	const struct fhir_idx *r;
	const char **ids;
	size_t nids;

	load(&f, "Patient", patient_json);

	/* name: family, given, prefix of both names, deduplicated */
	assert_non_null(find_text(&f, "name", "muller"));
	assert_non_null(find_text(&f, "name", "jurgen"));
	assert_non_null(find_text(&f, "name", "hans peter"));
	assert_non_null(find_text(&f, "name", "dr."));
	assert_int_equal(count(&f, "name"), 4);
	assert_int_equal(count(&f, "family"), 1);
	assert_int_equal(count(&f, "given"), 2);
	r = find_text(&f, "family", "muller");
	assert_non_null(r);
	assert_string_equal(r->raw, "M\xc3\xbcller");

	/* birthdate: a month covers the month */
	r = first(&f, "birthdate");
	assert_non_null(r);
	assert_int_equal(count(&f, "birthdate"), 1);
	assert_int_equal(r->lo, utc(1960, 5, 1, 0, 0, 0, 0));
	assert_int_equal(r->hi, utc(1960, 5, 31, 23, 59, 59, 999));

	/* identifier */
	r = find_token(&f, "identifier", "http://hospital.example/mrn", "12345");
	assert_non_null(r);
	assert_string_equal(r->text, "mrn");
	assert_non_null(find_token(&f, "identifier", NULL, "no-system"));
	assert_int_equal(count(&f, "identifier"), 2);

	/* telecom with where(system='email') */
	assert_int_equal(count(&f, "email"), 1);
	assert_non_null(find_token(&f, "email", "email", "J.Doe@Example.org"));
	assert_int_equal(count(&f, "phone"), 1);
	assert_non_null(find_token(&f, "phone", "phone", "555-1234"));
	assert_int_equal(count(&f, "telecom"), 2);

	/* gender, active */
	assert_non_null(find_token(&f, "gender", NULL, "male"));
	assert_non_null(find_token(&f, "active", NULL, "true"));

	/* address folds accents */
	assert_non_null(find_text(&f, "address", "1 rue de l'eglise"));
	assert_non_null(find_text(&f, "address", "montreal"));
	assert_non_null(find_text(&f, "address-city", "montreal"));
	assert_non_null(find_text(&f, "address-postalcode", "h2x 1y4"));
	assert_int_equal(count(&f, "address"), 4);

	/* general practitioner, _history stripped */
	assert_non_null(find_ref(&f, "general-practitioner", "Practitioner", "dr1",
				 "Practitioner/dr1"));
	assert_non_null(find_ref(&f, "general-practitioner", "Organization", "o1",
				 "Organization/o1/_history/3"));
	assert_int_equal(count(&f, "general-practitioner"), 2);

	/* resource-level params */
	assert_non_null(find_token(&f, "_id", NULL, "p1"));
	r = first(&f, "_lastUpdated");
	assert_non_null(r);
	assert_int_equal(r->lo, utc(2024, 1, 2, 3, 4, 5, 678));
	assert_int_equal(r->hi, r->lo);
	assert_non_null(find_token(&f, "_tag", "urn:t", "demo"));

	/* compartment: a Patient is its own */
	assert_int_equal(fhir_compartment(f.a, f.res, f.rt, f.rows, f.n, &ids, &nids),
			 CW_OK);
	assert_int_equal(nids, 1);
	assert_string_equal(ids[0], "p1");

	/* rows outlive the JSON */
	json_decref(f.res);
	f.res = NULL;
	assert_non_null(find_text(&f, "family", "muller"));
	arena_free(f.a);
}

static const char *obs_json =
	"{\"resourceType\":\"Observation\",\"id\":\"o1\",\"status\":\"final\","
	"\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8480-6\","
	"  \"display\":\"Systolic BP\"},{\"system\":\"http://snomed.info/sct\",\"code\":\"271649006\"}],"
	"  \"text\":\"Systolic blood pressure\"},"
	"\"subject\":{\"reference\":\"Patient/p1\"},"
	"\"performer\":[{\"reference\":\"Patient/p1\"},{\"reference\":\"Practitioner/d1\"},"
	"  {\"reference\":\"Patient/p2\"}],"
	"\"effectiveDateTime\":\"2023-04-05T10:30:00+02:00\","
	"\"valueQuantity\":{\"value\":120.5,\"unit\":\"mmHg\",\"system\":\"http://unitsofmeasure.org\","
	"  \"code\":\"mm[Hg]\"},"
	"\"component\":[{\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"8480-6\"}]},"
	"  \"valueQuantity\":{\"value\":7,\"unit\":\"kg\"}}]"
	"}";

static void
test_observation(void **state)
{
	struct fx f;
	const struct fhir_idx *r;
	const char **ids;
	size_t nids;

	load(&f, "Observation", obs_json);

	/* code: each coding, plus the concept text */
	r = find_token(&f, "code", "http://loinc.org", "8480-6");
	assert_non_null(r);
	assert_string_equal(r->text, "systolic bp");
	assert_non_null(find_token(&f, "code", "http://snomed.info/sct", "271649006"));
	r = find_token(&f, "code", NULL, NULL);
	assert_non_null(r);
	assert_string_equal(r->text, "systolic blood pressure");
	assert_int_equal(count(&f, "code"), 3);
	/* combo-code: code | component.code, duplicates removed */
	assert_non_null(find_token(&f, "combo-code", "http://loinc.org", "8480-6"));
	assert_int_equal(count(&f, "combo-code"), 4);
	assert_int_equal(count(&f, "component-code"), 1);
	assert_non_null(find_token(&f, "status", NULL, "final"));

	/* value-quantity with its precision range */
	r = first(&f, "value-quantity");
	assert_non_null(r);
	assert_int_equal(count(&f, "value-quantity"), 1);
	assert_true(r->num == 120.5);
	assert_true(fabs(r->num_lo - 120.45) < 1e-9);
	assert_true(fabs(r->num_hi - 120.55) < 1e-9);
	assert_string_equal(r->system, "http://unitsofmeasure.org");
	assert_string_equal(r->code, "mm[Hg]");
	/* component value without a code falls back to the unit */
	r = first(&f, "component-value-quantity");
	assert_non_null(r);
	assert_true(r->num == 7 && r->num_lo == 6.5 && r->num_hi == 7.5);
	assert_null(r->system);
	assert_string_equal(r->code, "kg");
	assert_int_equal(count(&f, "combo-value-quantity"), 2);

	/* date from effectiveDateTime, converted to UTC */
	r = first(&f, "date");
	assert_non_null(r);
	assert_int_equal(count(&f, "date"), 1);
	assert_int_equal(r->lo, utc(2023, 4, 5, 8, 30, 0, 0));
	assert_int_equal(r->hi, utc(2023, 4, 5, 8, 30, 0, 999));

	/* subject, patient (where resolve() is Patient) */
	assert_non_null(find_ref(&f, "subject", "Patient", "p1", "Patient/p1"));
	assert_non_null(find_ref(&f, "patient", "Patient", "p1", "Patient/p1"));
	assert_int_equal(count(&f, "performer"), 3);

	/* compartment: subject and performer, deduplicated, Patients only */
	assert_int_equal(fhir_compartment(f.a, f.res, f.rt, f.rows, f.n, &ids, &nids),
			 CW_OK);
	assert_int_equal(nids, 2);
	assert_string_equal(ids[0], "p1");
	assert_string_equal(ids[1], "p2");
	unload(&f);
}

static void
test_observation_period(void **state)
{
	struct fx f;
	const struct fhir_idx *r;

	load(&f, "Observation",
	     "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
	     "\"effectivePeriod\":{\"start\":\"2023-01-01\",\"end\":\"2023-01-31T12:00:00Z\"},"
	     "\"valueCodeableConcept\":{\"coding\":[{\"system\":\"s\",\"code\":\"pos\"}]},"
	     "\"subject\":{\"reference\":\"Group/g1\"}}");
	r = first(&f, "date");
	assert_non_null(r);
	assert_int_equal(r->lo, utc(2023, 1, 1, 0, 0, 0, 0));
	assert_int_equal(r->hi, utc(2023, 1, 31, 12, 0, 0, 999));
	assert_non_null(find_token(&f, "value-concept", "s", "pos"));
	assert_int_equal(count(&f, "value-quantity"), 0);
	/* a Group subject is not a patient */
	assert_int_equal(count(&f, "patient"), 0);
	assert_int_equal(count(&f, "subject"), 1);
	{
		const char **ids;
		size_t nids;

		assert_int_equal(fhir_compartment(f.a, f.res, f.rt, f.rows, f.n,
						  &ids, &nids), CW_OK);
		assert_int_equal(nids, 0);
	}
	unload(&f);

	/* open-ended period */
	load(&f, "Observation",
	     "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
	     "\"effectivePeriod\":{\"start\":\"2023\"}}");
	r = first(&f, "date");
	assert_non_null(r);
	assert_int_equal(r->lo, utc(2023, 1, 1, 0, 0, 0, 0));
	assert_true(r->hi == INT64_MAX);
	unload(&f);
	load(&f, "Observation",
	     "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
	     "\"effectivePeriod\":{\"end\":\"2023\"}}");
	r = first(&f, "date");
	assert_non_null(r);
	assert_true(r->lo == INT64_MIN);
	assert_int_equal(r->hi, utc(2023, 12, 31, 23, 59, 59, 999));
	unload(&f);
	/* a bad date is not indexed (validation rejects it elsewhere) */
	load(&f, "Observation",
	     "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
	     "\"effectiveDateTime\":\"2023-02-30\"}");
	assert_int_equal(count(&f, "date"), 0);
	unload(&f);
}

/* A concept text that is part of a coding's display needs no row of its
 * own (:text matches substrings of the display already); one that says
 * more keeps its row. */
static void
test_concept_text_folded(void **state)
{
	struct fx f;
	const struct fhir_idx *r;

	load(&f, "Condition",
	     "{\"resourceType\":\"Condition\",\"subject\":{\"reference\":\"Patient/p1\"},"
	     "\"code\":{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"44054006\","
	     "\"display\":\"Diabetes mellitus type 2 (disorder)\"}],\"text\":\"Diabetes Mellitus Type 2\"},"
	     "\"category\":[{\"coding\":[{\"code\":\"problem-list-item\",\"display\":\"Problem\"}],"
	     "\"text\":\"Problem list item\"}]}");
	r = find_token(&f, "code", "http://snomed.info/sct", "44054006");
	assert_non_null(r);
	assert_string_equal(r->text, "diabetes mellitus type 2 (disorder)");
	assert_null(find_token(&f, "code", NULL, NULL));
	assert_int_equal(count(&f, "code"), 1);
	/* "problem list item" is not inside "problem": it keeps its row */
	r = find_token(&f, "category", NULL, NULL);
	assert_non_null(r);
	assert_string_equal(r->text, "problem list item");
	assert_int_equal(count(&f, "category"), 2);
	unload(&f);
}

static void
test_encounter_refs(void **state)
{
	struct fx f;
	const char **ids;
	size_t nids;
	const struct fhir_idx *r;

	load(&f, "Encounter",
	     "{\"resourceType\":\"Encounter\",\"status\":\"finished\","
	     "\"class\":{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ActCode\",\"code\":\"IMP\"},"
	     "\"subject\":{\"reference\":\"https://other.example/fhir/Patient/p9\"},"
	     "\"serviceProvider\":{\"reference\":\"Organization?identifier=urn:x|1\"},"
	     "\"participant\":[{\"individual\":{\"reference\":\"Practitioner/d1\"}},"
	     "  {\"individual\":{\"reference\":\"RelatedPerson/r1\"}},"
	     "  {\"individual\":{\"reference\":\"urn:uuid:2a5e4c1e-0000-4000-8000-000000000001\"}},"
	     "  {\"individual\":{\"identifier\":{\"system\":\"urn:npi\",\"value\":\"42\"}}}],"
	     "\"location\":[{\"location\":{\"reference\":\"#loc1\"}}],"
	     "\"period\":{\"start\":\"2023-03-01T08:00:00Z\",\"end\":\"2023-03-04T17:00:00Z\"},"
	     "\"length\":{\"value\":3,\"unit\":\"days\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"d\"}}");

	/* absolute: its type but no id, not a local patient */
	assert_non_null(find_ref(&f, "subject", "Patient", NULL,
				 "https://other.example/fhir/Patient/p9"));
	assert_int_equal(count(&f, "subject"), 1);
	/* patient's where(resolve() is Patient) still sees the type */
	assert_int_equal(count(&f, "patient"), 1);
	/* conditional: raw only */
	assert_non_null(find_ref(&f, "service-provider", NULL, NULL,
				 "Organization?identifier=urn:x|1"));
	/* participant: local ones typed, urn raw, identifier as system/code */
	assert_non_null(find_ref(&f, "participant", "Practitioner", "d1",
				 "Practitioner/d1"));
	assert_non_null(find_ref(&f, "participant", "RelatedPerson", "r1",
				 "RelatedPerson/r1"));
	assert_non_null(find_ref(&f, "participant", NULL, NULL,
				 "urn:uuid:2a5e4c1e-0000-4000-8000-000000000001"));
	assert_non_null(find_token(&f, "participant", "urn:npi", "42"));
	assert_int_equal(count(&f, "participant"), 4);
	/* practitioner: only the Practitioner reference */
	assert_int_equal(count(&f, "practitioner"), 1);
	assert_non_null(find_ref(&f, "practitioner", "Practitioner", "d1",
				 "Practitioner/d1"));
	assert_non_null(find_ref(&f, "location", NULL, NULL, "#loc1"));
	assert_non_null(find_token(&f, "class",
				   "http://terminology.hl7.org/CodeSystem/v3-ActCode", "IMP"));
	r = first(&f, "date");
	assert_non_null(r);
	assert_int_equal(r->lo, utc(2023, 3, 1, 8, 0, 0, 0));
	assert_int_equal(r->hi, utc(2023, 3, 4, 17, 0, 0, 999));
	r = first(&f, "length");
	assert_non_null(r);
	assert_true(r->num == 3 && r->num_lo == 2.5 && r->num_hi == 3.5);
	assert_string_equal(r->code, "d");

	/* no local patient reference: no compartment */
	assert_int_equal(fhir_compartment(f.a, f.res, f.rt, f.rows, f.n, &ids, &nids),
			 CW_OK);
	assert_int_equal(nids, 0);
	unload(&f);
}

static void
test_medication_request(void **state)
{
	struct fx f;
	const struct fhir_idx *r;
	const char **ids;
	size_t nids;

	load(&f, "MedicationRequest",
	     "{\"resourceType\":\"MedicationRequest\",\"status\":\"active\",\"intent\":\"order\","
	     "\"medicationCodeableConcept\":{\"coding\":[{\"system\":\"http://www.nlm.nih.gov/research/umls/rxnorm\","
	     "  \"code\":\"1049502\",\"display\":\"Oxycodone  12 HR\"}]},"
	     "\"subject\":{\"reference\":\"Patient/p7\",\"display\":\"x\"},"
	     "\"authoredOn\":\"2024-02-29\","
	     "\"dosageInstruction\":[{\"timing\":{\"event\":[\"2024-03-01T08:00:00Z\",\"2024-03-02T08:00:00Z\"]}}]}");
	r = find_token(&f, "code", "http://www.nlm.nih.gov/research/umls/rxnorm", "1049502");
	assert_non_null(r);
	assert_string_equal(r->text, "oxycodone 12 hr");
	assert_int_equal(count(&f, "code"), 1);
	/* medication (as Reference) finds nothing in a CodeableConcept */
	assert_int_equal(count(&f, "medication"), 0);
	assert_int_equal(count(&f, "date"), 2);
	r = first(&f, "authoredon");
	assert_non_null(r);
	assert_int_equal(r->lo, utc(2024, 2, 29, 0, 0, 0, 0));
	assert_int_equal(fhir_compartment(f.a, f.res, f.rt, f.rows, f.n, &ids, &nids),
			 CW_OK);
	assert_int_equal(nids, 1);
	assert_string_equal(ids[0], "p7");
	unload(&f);

	load(&f, "MedicationRequest",
	     "{\"resourceType\":\"MedicationRequest\",\"status\":\"active\",\"intent\":\"order\","
	     "\"medicationReference\":{\"reference\":\"Medication/m1\"},"
	     "\"subject\":{\"reference\":\"Patient/p7\"}}");
	assert_int_equal(count(&f, "code"), 0);
	assert_non_null(find_ref(&f, "medication", "Medication", "m1", "Medication/m1"));
	unload(&f);
}

static void
test_normalize(void **state)
{
	struct arena *a = arena_new(0);
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"Hello World", "hello world"},
		{"  lots \t of\n\nspace  ", "lots of space"},
		{"\xc3\x80\xc3\x89\xc3\x8e\xc3\x95\xc3\x9c\xc3\x87\xc3\x91", "aeiouc" "n"},
		{"Stra\xc3\x9f" "e", "strasse"},
		{"\xc3\x86sop \xc5\x92uvre", "aesop oeuvre"},
		{"\xc5\x81\xc3\xb3\x64\xc5\xba", "lodz"},
		{"\xc4\x8c" "ap\xc3\xa9k", "capek"},
		{"caf\xc3\xa9\xc2\xa0" "cr\xc3\xa8me", "cafe creme"},
		{"\xc3\x97\xc3\xb7", "\xc3\x97\xc3\xb7"},            /* not letters */
		{"\xce\x91\xce\xb8\xce\xae\xce\xbd\xce\xb1", "\xce\x91\xce\xb8\xce\xae\xce\xbd\xce\xb1"},
		{"\xe6\x9d\xb1\xe4\xba\xac", "\xe6\x9d\xb1\xe4\xba\xac"},
		{"O'Brien-Smith", "o'brien-smith"},
		{"bad \xc3", "bad \xc3"},
		{"", ""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *s = fhir_normalize(a, cases[i].in, strlen(cases[i].in));

		assert_non_null(s);
		if (strcmp(s, cases[i].out) != 0)
			fail_msg("normalize('%s') = '%s', want '%s'", cases[i].in, s,
				 cases[i].out);
	}
	arena_free(a);
}

static void
test_numbers(void **state)
{
	struct fx f;
	const struct fhir_idx *r;

	load(&f, "Observation",
	     "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
	     "\"valueQuantity\":{\"value\":1.5}}");
	r = first(&f, "value-quantity");
	assert_non_null(r);
	assert_true(fabs(r->num_lo - 1.45) < 1e-12 && fabs(r->num_hi - 1.55) < 1e-12);
	assert_null(r->code);
	unload(&f);
	load(&f, "Observation",
	     "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
	     "\"valueQuantity\":{\"value\":0.001,\"code\":\"g\"}}");
	r = first(&f, "value-quantity");
	assert_non_null(r);
	assert_true(fabs(r->num_lo - 0.0005) < 1e-12 && fabs(r->num_hi - 0.0015) < 1e-12);
	unload(&f);
}

static void
test_not_object(void **state)
{
	struct arena *a = arena_new(0);
	json_t *j = json_string("x");
	struct fhir_idx *rows;
	size_t n;

	assert_int_equal(fhir_extract(a, j, fhir_restype_find("Patient"), &rows, &n),
			 CW_EINVAL);
	json_decref(j);
	arena_free(a);
}

/* Bulk ingest rate for a typical Observation (printed, never fails). */
static void
test_speed(void **state)
{
	struct fx f;
	struct timespec t0, t1;
	int iters = 5000;
	double secs;

	load(&f, "Observation", obs_json);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < iters; i++) {
		struct fhir_idx *rows;
		size_t n;

		arena_reset(f.a);
		assert_int_equal(fhir_extract(f.a, f.res, f.rt, &rows, &n), CW_OK);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	print_message("extract: %.0f Observations/s (sanitized build)\n", iters / secs);
	unload(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_patient),
		cmocka_unit_test(test_observation),
		cmocka_unit_test(test_observation_period),
		cmocka_unit_test(test_encounter_refs),
		cmocka_unit_test(test_concept_text_folded),
		cmocka_unit_test(test_medication_request),
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_not_object),
		cmocka_unit_test(test_speed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
