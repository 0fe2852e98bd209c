/* tests/unit/coord/test_risk.c: the readmission scores (src/coord/risk.c)
 * against data/kb: every boundary of every component table of
 * risk-scores.md (LACE's L, A, C, E; HOSPITAL's seven items), the
 * supersede rules and the LACE item counted once, missing inputs (named,
 * never a silent zero, the total a lower bound), the bands, the
 * Encounters that cannot be scored, and the RiskAssessment passing
 * careweave's own validation. Run from the repository root (make unit). */
#include <jansson.h>

#include "unit.h"

#include "coord/coord.h"
#include "fhir/fhir.h"
#include "kb/kb.h"
#include "store/store.h"

static struct kb *kb;
static struct coord *co;
static struct arena *a;

static int
setup(void **state)
{
	enum cw_err err;

	kb = kb_load("data/kb", NULL, NULL, &err);
	co = kb ? coord_new(kb) : NULL;
	a = arena_new(64u << 20);
	return co && a ? 0 : -1;
}

static int
teardown(void **state)
{
	arena_free(a);
	coord_free(co);
	kb_free(kb);
	return 0;
}

static void
decref(void *v)
{
	json_decref(v);
}

static json_t *
parse(const char *text)
{
	json_t *v = NULL;

	if (fhir_parse_json(text, strlen(text), &v, NULL) || !v)
		fail_msg("bad JSON: %s", text);
	arena_on_free(a, decref, v);
	return v;
}

/* The record being built: the index stay and the patient's others. */
#define NMAX 64
struct rec {
	struct coord_risk_record enc[NMAX], cond[NMAX], obs[NMAX], proc[NMAX];
	size_t ne, nc, no, np;
	struct coord_risk_input in;
};

static struct rec R;

static void
add(struct coord_risk_record *v, size_t *n, const char *type, const char *text)
{
	assert_true(*n < NMAX);
	v[*n].ref = arena_printf(a, "%s/%c%zu", type, type[0] + 32, *n);
	v[*n].res = parse(text);
	(*n)++;
}

#define SUBJ "\"subject\":{\"reference\":\"Patient/p\"}"

/* The index stay: Encounter/index, admitted 2026-03-01, discharged on the
 * day given, with extra members. */
static void
index_stay(const char *end, const char *extra)
{
	memset(&R, 0, sizeof(R));
	R.in.encounter_ref = "Encounter/index";
	R.in.encounter = parse(arena_printf(a,
		"{\"resourceType\":\"Encounter\",\"status\":\"finished\","
		"\"class\":{\"code\":\"IMP\"}," SUBJ ",\"period\":{\"start\":"
		"\"2026-03-01T10:00:00Z\"%s%s%s}%s%s}",
		end ? ",\"end\":\"" : "", end ? end : "", end ? "\"" : "",
		extra ? "," : "", extra ? extra : ""));
	R.enc[0].ref = "Encounter/index";
	R.enc[0].res = R.in.encounter;
	R.ne = 1;
}

static void
encounter(const char *cls, const char *start, const char *end)
{
	add(R.enc, &R.ne, "Encounter", arena_printf(a,
		"{\"resourceType\":\"Encounter\",\"status\":\"finished\",\"class\":{\"code\":"
		"\"%s\"}," SUBJ ",\"period\":{\"start\":\"%s\",\"end\":\"%s\"}}", cls, start, end));
}

static void
condition(const char *system, const char *code, const char *extra)
{
	add(R.cond, &R.nc, "Condition", arena_printf(a,
		"{\"resourceType\":\"Condition\"," SUBJ ",\"code\":{\"coding\":[{\"system\":"
		"\"%s\",\"code\":\"%s\"}]},\"recordedDate\":\"2025-01-01\"%s%s}", system, code,
		extra ? "," : "", extra ? extra : ""));
}

#define ICD KB_ICD10CM
#define SCT KB_SNOMED

static void
lab(const char *loinc, const char *when, const char *value, const char *unit)
{
	add(R.obs, &R.no, "Observation", arena_printf(a,
		"{\"resourceType\":\"Observation\",\"status\":\"final\"," SUBJ ",\"code\":"
		"{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"%s\"}]},"
		"\"effectiveDateTime\":\"%s\",\"valueQuantity\":{\"value\":%s,\"unit\":\"%s\","
		"\"system\":\"http://unitsofmeasure.org\",\"code\":\"%s\"}}", loinc, when, value,
		unit, unit));
}

static void
procedure(const char *when, const char *status)
{
	add(R.proc, &R.np, "Procedure", arena_printf(a,
		"{\"resourceType\":\"Procedure\",\"status\":\"%s\"," SUBJ ",\"code\":{\"text\":"
		"\"x\"},\"performedDateTime\":\"%s\"}", status, when));
}

static struct coord_risk L, H;

static void
score(void)
{
	struct diag d;

	diag_init(&d, a);
	R.in.encounters = R.enc;
	R.in.nencounters = R.ne;
	R.in.conditions = R.cond;
	R.in.nconditions = R.nc;
	R.in.observations = R.obs;
	R.in.nobservations = R.no;
	R.in.procedures = R.proc;
	R.in.nprocedures = R.np;
	assert_int_equal(coord_risk_compute(co, a, &R.in, &L, &H, &d), CW_OK);
}

static const struct coord_risk_component *
comp(const struct coord_risk *r, const char *code)
{
	for (size_t i = 0; i < r->nc; i++)
		if (!strcmp(r->c[i].code, code))
			return &r->c[i];
	fail_msg("no component %s", code);
	return NULL;
}

static unsigned
points(const struct coord_risk *r, const char *code)
{
	const struct coord_risk_component *c = comp(r, code);

	assert_false(c->missing);
	return c->points;
}

static void
test_length_of_stay(void **state)
{
	static const struct {
		const char *end;
		unsigned lace, hospital;
	} t[] = {
		{"2026-03-01T18:00:00Z", 0, 0}, {"2026-03-02T08:00:00Z", 1, 0},
		{"2026-03-03", 2, 0}, {"2026-03-04", 3, 0}, {"2026-03-05", 4, 0},
		{"2026-03-06", 4, 2}, {"2026-03-07", 4, 2}, {"2026-03-08", 5, 2},
		{"2026-03-14", 5, 2}, {"2026-03-15", 7, 2}, {"2026-04-30", 7, 2},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		index_stay(t[i].end, NULL);
		score();
		if (points(&L, "L") != t[i].lace || points(&H, "LOS") != t[i].hospital)
			fail_msg("discharged %s: L %u (want %u), LOS %u (want %u)", t[i].end,
				 comp(&L, "L")->points, t[i].lace, comp(&H, "LOS")->points,
				 t[i].hospital);
	}
	/* an open stay: missing, named, and the total a floor */
	index_stay(NULL, NULL);
	score();
	assert_true(comp(&L, "L")->missing);
	assert_true(comp(&H, "LOS")->missing);
	assert_non_null(strstr(comp(&L, "L")->value, "period.end"));
	assert_true(L.lower_bound);
	assert_non_null(strstr(L.missing, "length of stay"));
	assert_true(L.highest >= L.total + 7);
	assert_non_null(strstr(L.summary, "at least"));
}

static void
test_acute(void **state)
{
	/* nothing says: missing in both scores */
	index_stay("2026-03-03", NULL);
	score();
	assert_true(comp(&L, "A")->missing);
	assert_true(comp(&H, "I")->missing);
	assert_non_null(strstr(comp(&L, "A")->value, "priority"));

	index_stay("2026-03-03", "\"priority\":{\"coding\":[{\"system\":"
		   "\"http://terminology.hl7.org/CodeSystem/v3-ActPriority\",\"code\":\"EM\"}]}");
	score();
	assert_int_equal(points(&L, "A"), 3);
	assert_int_equal(points(&H, "I"), 1);

	index_stay("2026-03-03", "\"priority\":{\"coding\":[{\"system\":"
		   "\"http://terminology.hl7.org/CodeSystem/v3-ActPriority\",\"code\":\"EL\"}]}");
	score();
	assert_int_equal(points(&L, "A"), 0);
	assert_int_equal(points(&H, "I"), 0);

	index_stay("2026-03-03", "\"hospitalization\":{\"admitSource\":{\"coding\":[{\"system\":"
		   "\"http://terminology.hl7.org/CodeSystem/admit-source\",\"code\":\"emd\"}]}}");
	score();
	assert_int_equal(points(&L, "A"), 3);

	/* an emergency visit just before: acute, and not an E visit */
	index_stay("2026-03-03", NULL);
	encounter("EMER", "2026-03-01T06:00:00Z", "2026-03-01T09:30:00Z");
	encounter("EMER", "2026-02-01T06:00:00Z", "2026-02-01T09:30:00Z");
	score();
	assert_int_equal(points(&L, "A"), 3);
	assert_int_equal(points(&H, "I"), 1);
	assert_int_equal(points(&L, "E"), 1);
	assert_non_null(strstr(comp(&L, "E")->value, "not counting Encounter/e1"));

	/* a priority that says nothing of urgency (timing critical) leaves it
	 * to the emergency visit; routine is elective whatever came before */
	index_stay("2026-03-03", "\"priority\":{\"coding\":[{\"system\":"
		   "\"http://terminology.hl7.org/CodeSystem/v3-ActPriority\",\"code\":\"T\"}]}");
	encounter("EMER", "2026-03-01T06:00:00Z", "2026-03-01T09:30:00Z");
	score();
	assert_int_equal(points(&L, "A"), 3);
	index_stay("2026-03-03", "\"priority\":{\"coding\":[{\"system\":"
		   "\"http://terminology.hl7.org/CodeSystem/v3-ActPriority\",\"code\":\"R\"}]}");
	encounter("EMER", "2026-03-01T06:00:00Z", "2026-03-01T09:30:00Z");
	score();
	assert_int_equal(points(&L, "A"), 0);
	assert_int_equal(points(&L, "E"), 0); /* still the visit that led to it */

	/* one that ended two days before did not lead to it */
	index_stay("2026-03-03", NULL);
	encounter("EMER", "2026-02-27T06:00:00Z", "2026-02-27T09:30:00Z");
	score();
	assert_true(comp(&L, "A")->missing);
	assert_int_equal(points(&L, "E"), 1);
}

static void
test_emergency_visits(void **state)
{
	static const unsigned want[] = {0, 1, 2, 3, 4, 4, 4};

	for (unsigned n = 0; n < 7; n++) {
		index_stay("2026-03-03", NULL);
		for (unsigned k = 0; k < n; k++)
			encounter("EMER", arena_printf(a, "2026-01-%02uT10:00:00Z", k + 1),
				  arena_printf(a, "2026-01-%02uT12:00:00Z", k + 1));
		/* outside the 6 months, of another class, or not happened */
		encounter("EMER", "2025-08-01T10:00:00Z", "2025-08-01T12:00:00Z");
		encounter("AMB", "2026-01-20T10:00:00Z", "2026-01-20T12:00:00Z");
		add(R.enc, &R.ne, "Encounter", "{\"resourceType\":\"Encounter\",\"status\":"
		    "\"cancelled\",\"class\":{\"code\":\"EMER\"}," SUBJ ",\"period\":{\"start\":"
		    "\"2026-01-21T10:00:00Z\"}}");
		score();
		if (points(&L, "E") != want[n])
			fail_msg("%u visits: E %u, want %u", n, comp(&L, "E")->points, want[n]);
		assert_int_equal(comp(&L, "E")->nfound, n);
	}
	/* 183 days back is in, 184 out */
	index_stay("2026-03-03", NULL);
	encounter("EMER", "2025-08-30T10:00:00Z", "2025-08-30T11:00:00Z");
	encounter("EMER", "2025-08-29T09:00:00Z", "2025-08-29T10:00:00Z");
	score();
	assert_int_equal(points(&L, "E"), 1);
}

/* C for the conditions given (system, code pairs). */
static unsigned
c_of(const char *const *codes)
{
	index_stay("2026-03-03", NULL);
	for (size_t i = 0; codes[i]; i += 2)
		condition(codes[i], codes[i + 1], NULL);
	score();
	return points(&L, "C");
}

static void
test_comorbidity(void **state)
{
	/* each group alone: its LACE weight, 4 or more gives 5 */
	static const struct {
		const char *code;
		unsigned c;
	} one[] = {
		{"I21.4", 1}, {"I50.9", 2}, {"I70.0", 1}, {"I63.9", 1}, {"F03.90", 3},
		{"J44.9", 2}, {"M05.79", 3}, {"E11.9", 1}, {"E11.22", 2}, {"K70.30", 2},
		{"K72.10", 5}, {"N18.2", 2}, {"N18.4", 5}, {"C34.90", 2}, {"C78.00", 5},
		{"K25.9", 0}, {"G81.90", 0}, {"B20", 0},
	};

	for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
		const char *codes[] = {ICD, one[i].code, NULL};
		unsigned c = c_of(codes);

		if (c != one[i].c)
			fail_msg("%s: C %u, want %u", one[i].code, c, one[i].c);
	}
	/* sums: 0-3 as they are, 4 or more is 5 */
	assert_int_equal(c_of((const char *[]){ICD, "I21.4", ICD, "I63.9", NULL}), 2);
	assert_int_equal(c_of((const char *[]){ICD, "I21.4", ICD, "I63.9", ICD, "I70.0", NULL}), 3);
	assert_int_equal(c_of((const char *[]){ICD, "I21.4", ICD, "I50.9", ICD, "I70.0", NULL}), 5);
	/* supersede: the worse replaces the milder */
	assert_int_equal(c_of((const char *[]){ICD, "E11.9", ICD, "E11.22", NULL}), 2);
	assert_non_null(strstr(comp(&L, "C")->value, "superseded"));
	assert_int_equal(c_of((const char *[]){ICD, "C34.90", ICD, "C78.00", NULL}), 5);
	assert_non_null(strstr(comp(&L, "C")->value, "weights 6"));
	assert_int_equal(c_of((const char *[]){ICD, "K70.30", ICD, "K72.10", NULL}), 5);
	assert_non_null(strstr(comp(&L, "C")->value, "weights 4"));
	assert_int_equal(c_of((const char *[]){ICD, "N18.2", ICD, "N18.5", NULL}), 5);
	assert_non_null(strstr(comp(&L, "C")->value, "weights 4"));
	/* mild liver and mild renal disease: one LACE item, counted once */
	assert_int_equal(c_of((const char *[]){ICD, "K70.30", ICD, "N18.2", NULL}), 2);
	/* severe liver and severe renal: one item too (4, not 8) */
	c_of((const char *[]){ICD, "K72.10", ICD, "N18.4", NULL});
	assert_non_null(strstr(comp(&L, "C")->value, "weights 4, Charlson index 5"));
	/* the same group twice counts once */
	assert_int_equal(c_of((const char *[]){ICD, "I21.4", ICD, "I22.0", NULL}), 1);
	/* SNOMED CT as Synthea writes it */
	assert_int_equal(c_of((const char *[]){SCT, "44054006", SCT, "127013003", NULL}), 2);
	assert_int_equal(c_of((const char *[]){SCT, "433144002", SCT, "254637007", NULL}), 5);
	/* nothing in a group: 0, said */
	assert_int_equal(c_of((const char *[]){SCT, "10509002", NULL}), 0);
	assert_non_null(strstr(comp(&L, "C")->value, "no condition in a comorbidity group"));

	/* refuted, entered in error, recorded after discharge: not counted */
	index_stay("2026-03-03", NULL);
	condition(ICD, "I50.9", "\"verificationStatus\":{\"coding\":[{\"system\":\"http://"
		  "terminology.hl7.org/CodeSystem/condition-ver-status\",\"code\":\"refuted\"}]}");
	condition(ICD, "J44.9", "\"verificationStatus\":{\"coding\":[{\"system\":\"http://"
		  "terminology.hl7.org/CodeSystem/condition-ver-status\",\"code\":"
		  "\"entered-in-error\"}]}");
	add(R.cond, &R.nc, "Condition", "{\"resourceType\":\"Condition\"," SUBJ ",\"code\":"
	    "{\"coding\":[{\"system\":\"" ICD "\",\"code\":\"F03.90\"}]},\"recordedDate\":"
	    "\"2026-03-10\"}");
	/* a condition of another patient is ignored */
	add(R.cond, &R.nc, "Condition", "{\"resourceType\":\"Condition\",\"subject\":"
	    "{\"reference\":\"Patient/other\"},\"code\":{\"coding\":[{\"system\":\"" ICD
	    "\",\"code\":\"F03.90\"}]}}");
	/* resolved still counts: a previous MI is history */
	condition(ICD, "I21.4", "\"clinicalStatus\":{\"coding\":[{\"system\":\"http://"
		  "terminology.hl7.org/CodeSystem/condition-clinical\",\"code\":\"resolved\"}]}");
	/* an onset after discharge: not yet a comorbidity of this stay */
	condition(ICD, "J44.9", "\"onsetDateTime\":\"2026-04-01\"");
	score();
	assert_int_equal(points(&L, "C"), 1);
	assert_int_equal(comp(&L, "C")->nfound, 1);
	/* undated (no onset, no recordedDate): counted, whenever it was written */
	add(R.cond, &R.nc, "Condition", "{\"resourceType\":\"Condition\"," SUBJ ",\"code\":"
	    "{\"coding\":[{\"system\":\"" ICD "\",\"code\":\"I63.9\"}]},\"meta\":{"
	    "\"lastUpdated\":\"2026-11-01T00:00:00Z\"}}");
	score();
	assert_int_equal(points(&L, "C"), 2);

	/* no Condition at all: missing */
	index_stay("2026-03-03", NULL);
	score();
	assert_true(comp(&L, "C")->missing);
	assert_non_null(strstr(L.missing, "comorbidity"));
}

static void
test_hospital_labs(void **state)
{
	index_stay("2026-03-06", NULL);
	lab("718-7", "2026-03-02T08:00:00Z", "10.5", "g/dL");
	lab("718-7", "2026-03-05T08:00:00Z", "12.0", "g/dL"); /* the last counts */
	lab("718-7", "2026-03-07T08:00:00Z", "8", "g/dL");    /* after discharge */
	lab("2951-2", "2026-03-05T08:00:00Z", "134", "mmol/L");
	lab("2951-2", "2026-02-05T08:00:00Z", "120", "mmol/L"); /* before the stay */
	score();
	assert_int_equal(points(&H, "H"), 0);
	assert_int_equal(points(&H, "S"), 1);
	assert_non_null(strstr(comp(&H, "H")->value, "12 g/dL"));

	index_stay("2026-03-06", NULL);
	lab("718-7", "2026-03-05T08:00:00Z", "11.9", "g/dL");
	lab("2951-2", "2026-03-05T08:00:00Z", "135", "mmol/L");
	score();
	assert_int_equal(points(&H, "H"), 1);
	assert_int_equal(points(&H, "S"), 0);

	/* g/L is divided by 10; a unit careweave does not read is not a value */
	index_stay("2026-03-06", NULL);
	lab("718-7", "2026-03-05T08:00:00Z", "119", "g/L");
	lab("2951-2", "2026-03-05T08:00:00Z", "130", "mg/dL");
	score();
	assert_int_equal(points(&H, "H"), 1);
	assert_true(comp(&H, "S")->missing);
	assert_non_null(strstr(comp(&H, "S")->value, "not read: Observation/o1"));

	/* none: both missing, named, total a floor */
	index_stay("2026-03-06", NULL);
	score();
	assert_true(comp(&H, "H")->missing);
	assert_true(comp(&H, "S")->missing);
	assert_true(H.lower_bound);
	assert_non_null(strstr(H.missing, "haemoglobin"));
	assert_non_null(strstr(H.missing, "sodium"));
}

static void
test_hospital_other(void **state)
{
	static const struct {
		unsigned n, points;
	} adm[] = {{0, 0}, {1, 0}, {2, 2}, {5, 2}, {6, 5}};

	/* oncology service: by its words or SNOMED CT code; absent: missing */
	index_stay("2026-03-06", "\"serviceType\":{\"text\":\"Medical Oncology\"}");
	score();
	assert_int_equal(points(&H, "O"), 2);
	index_stay("2026-03-06", "\"serviceType\":{\"coding\":[{\"system\":\"" SCT "\","
		   "\"code\":\"394593009\"}]}");
	score();
	assert_int_equal(points(&H, "O"), 2);
	index_stay("2026-03-06", "\"serviceType\":{\"text\":\"General medicine\"}");
	score();
	assert_int_equal(points(&H, "O"), 0);
	index_stay("2026-03-06", NULL);
	score();
	assert_true(comp(&H, "O")->missing);

	/* a procedure during the stay; not one before, nor one not done */
	index_stay("2026-03-06", NULL);
	procedure("2026-02-20T10:00:00Z", "completed");
	procedure("2026-03-02T10:00:00Z", "not-done");
	score();
	assert_int_equal(points(&H, "P"), 0);
	procedure("2026-03-02T10:00:00Z", "completed");
	score();
	assert_int_equal(points(&H, "P"), 1);
	assert_string_equal(comp(&H, "P")->refs[0], "Procedure/p2");

	/* admissions in the 12 months before: 0-1 0, 2-5 2, more than 5 5 */
	for (size_t i = 0; i < sizeof(adm) / sizeof(adm[0]); i++) {
		index_stay("2026-03-06", NULL);
		for (unsigned k = 0; k < adm[i].n; k++)
			encounter("IMP", arena_printf(a, "2025-%02u-10T10:00:00Z", k + 4),
				  arena_printf(a, "2025-%02u-12T10:00:00Z", k + 4));
		encounter("IMP", "2025-02-10T10:00:00Z", "2025-02-12T10:00:00Z"); /* too old */
		encounter("EMER", "2025-12-10T10:00:00Z", "2025-12-10T12:00:00Z");
		score();
		if (points(&H, "A12") != adm[i].points)
			fail_msg("%u admissions: %u points, want %u", adm[i].n,
				 comp(&H, "A12")->points, adm[i].points);
	}
}

static void
test_bands(void **state)
{
	/* LACE: L 4 (4 days) + A 3 (EM) = 7 moderate; with C 2 + E ... */
	static const char *const em = "\"priority\":{\"coding\":[{\"system\":"
		"\"http://terminology.hl7.org/CodeSystem/v3-ActPriority\",\"code\":\"EM\"}]},"
		"\"serviceType\":{\"text\":\"Medical Oncology\"}";

	index_stay("2026-03-02", NULL); /* L 1 */
	condition(ICD, "I21.4", NULL);  /* C 1 */
	score();
	assert_true(L.lower_bound);     /* A is missing */
	assert_int_equal(L.total, 2);
	assert_string_equal(L.band, "low");
	assert_int_equal(L.highest, 5);
	assert_string_equal(L.band_highest, "moderate");

	index_stay("2026-03-02", em); /* L 1, A 3 */
	condition(ICD, "I63.9", NULL); /* C 1 */
	score();
	assert_false(L.lower_bound);
	assert_int_equal(L.total, 5);
	assert_string_equal(L.band, "moderate");
	assert_string_equal(L.risk_code, "moderate");

	index_stay("2026-03-02", em);
	condition(ICD, "I21.4", NULL);
	score();
	assert_int_equal(L.total, 5);
	index_stay("2026-03-01T20:00:00Z", em); /* L 0 */
	condition(ICD, "I21.4", NULL);
	score();
	assert_int_equal(L.total, 4);
	assert_string_equal(L.band, "low");

	index_stay("2026-03-08", em); /* L 5, A 3 */
	condition(ICD, "I50.9", NULL); /* C 2 */
	score();
	assert_int_equal(L.total, 10);
	assert_string_equal(L.band, "high");
	index_stay("2026-03-07", em); /* L 4 */
	condition(ICD, "I50.9", NULL);
	score();
	assert_int_equal(L.total, 9);
	assert_string_equal(L.band, "moderate");

	/* HOSPITAL: O 2 + I 1 + LOS 2 = 5 intermediate (moderate in R4) */
	index_stay("2026-03-06", em);
	lab("718-7", "2026-03-05T08:00:00Z", "13", "g/dL");
	lab("2951-2", "2026-03-05T08:00:00Z", "140", "mmol/L");
	score();
	assert_false(H.lower_bound);
	assert_int_equal(H.total, 5);
	assert_string_equal(H.band, "intermediate");
	assert_string_equal(H.risk_code, "moderate");
	assert_true(H.has_probability);
	assert_true(H.probability > 0.118 && H.probability < 0.120);
	/* + S 1 = 6, + P 1 = 7 high */
	index_stay("2026-03-06", em);
	lab("718-7", "2026-03-05T08:00:00Z", "13", "g/dL");
	lab("2951-2", "2026-03-05T08:00:00Z", "130", "mmol/L");
	score();
	assert_int_equal(H.total, 6);
	assert_string_equal(H.band, "intermediate");
	procedure("2026-03-03T10:00:00Z", "completed");
	score();
	assert_int_equal(H.total, 7);
	assert_string_equal(H.band, "high");
	assert_true(H.probability > 0.227 && H.probability < 0.229);
	/* 4: low */
	index_stay("2026-03-04", em); /* LOS 0 */
	lab("718-7", "2026-03-03T08:00:00Z", "11", "g/dL");
	lab("2951-2", "2026-03-03T08:00:00Z", "130", "mmol/L");
	score();
	assert_int_equal(H.total, 5); /* H 1 + O 2 + S 1 + I 1 */
	index_stay("2026-03-04", em);
	lab("718-7", "2026-03-03T08:00:00Z", "13", "g/dL");
	lab("2951-2", "2026-03-03T08:00:00Z", "130", "mmol/L");
	score();
	assert_int_equal(H.total, 4);
	assert_string_equal(H.band, "low");
	assert_true(H.probability > 0.057 && H.probability < 0.059);
	assert_false(L.has_probability);
}

static void
test_not_scored(void **state)
{
	struct coord_risk l, h;
	struct coord_risk_input in = {.encounter_ref = "Encounter/x"};
	struct diag d;

	diag_init(&d, a);
	in.encounter = parse("{\"resourceType\":\"Encounter\",\"status\":\"finished\",\"class\":"
			     "{\"code\":\"AMB\"}," SUBJ ",\"period\":{\"start\":\"2026-03-01\"}}");
	assert_int_equal(coord_risk_compute(co, a, &in, &l, &h, &d), CW_EINVALID);
	assert_non_null(strstr(d.issues[0].msg, "not an inpatient stay"));
	diag_init(&d, a);
	in.encounter = parse("{\"resourceType\":\"Encounter\",\"status\":\"finished\",\"class\":"
			     "{\"code\":\"IMP\"},\"period\":{\"start\":\"2026-03-01\"}}");
	assert_int_equal(coord_risk_compute(co, a, &in, &l, &h, &d), CW_EINVALID);
	assert_non_null(strstr(d.issues[0].msg, "no Patient"));
	diag_init(&d, a);
	in.encounter = parse("{\"resourceType\":\"Encounter\",\"status\":\"finished\",\"class\":"
			     "{\"code\":\"IMP\"}," SUBJ "}");
	assert_int_equal(coord_risk_compute(co, a, &in, &l, &h, &d), CW_EINVALID);
	assert_non_null(strstr(d.issues[0].msg, "no admission date"));
}

static void
test_assessment(void **state)
{
	struct diag d;
	json_t *ra;

	index_stay("2026-03-06", "\"serviceType\":{\"text\":\"Medical Oncology\"}");
	condition(ICD, "I50.9", NULL);
	encounter("EMER", "2026-01-01T10:00:00Z", "2026-01-01T12:00:00Z");
	lab("718-7", "2026-03-05T08:00:00Z", "11", "g/dL");
	score();
	for (int k = 0; k < 2; k++) {
		const struct coord_risk *r = k ? &H : &L;
		json_t *pred, *notes;
		const char *text;

		ra = coord_risk_assessment(r, "2026-03-06T12:00:00Z");
		assert_non_null(ra);
		diag_init(&d, a);
		if (fhir_validate(ra, "RiskAssessment", &d))
			fail_msg("%s does not validate: %s", r->method_code,
				 d.n ? d.issues[0].msg : "?");
		assert_string_equal(json_string_value(json_object_get(ra, "status")), "final");
		assert_string_equal(json_string_value(json_object_get(json_array_get(
			json_object_get(json_object_get(ra, "method"), "coding"), 0), "system")),
			COORD_RISK_SYSTEM);
		pred = json_array_get(json_object_get(ra, "prediction"), 0);
		text = json_string_value(json_object_get(json_object_get(pred, "outcome"), "text"));
		assert_string_equal(text, k ? "potentially avoidable 30-day readmission" :
					      "30-day readmission or death");
		assert_int_equal(json_object_get(pred, "probabilityDecimal") != NULL, k);
		notes = json_object_get(ra, "note");
		/* a note per component, and one naming what was missing */
		assert_int_equal(json_array_size(notes), r->nc + (r->lower_bound ? 1 : 0));
		assert_true(json_array_size(json_object_get(ra, "basis")) >= 2);
		json_decref(ra);
	}
	/* the words say what was missing */
	ra = coord_risk_assessment(&L, "2026-03-06T12:00:00Z");
	{
		char *s = fhir_dump(ra, NULL);

		assert_non_null(strstr(s, "A (acute (emergent) admission): missing"));
		assert_non_null(strstr(s, "C (comorbidity (Charlson-based)): 2 points of 5"));
		assert_non_null(strstr(s, "Condition/c0"));
		free(s);
	}
	json_decref(ra);
}

/* coord_risk_read: the record as a discharge message's transaction sees it. */
static const char *const stored[] = {
	"{\"resourceType\":\"Patient\",\"id\":\"p\"}",
	"{\"resourceType\":\"Patient\",\"id\":\"q\"}",
	"{\"resourceType\":\"Encounter\",\"id\":\"stay\",\"status\":\"finished\",\"class\":"
	"{\"code\":\"IMP\"}," SUBJ ",\"period\":{\"start\":\"2026-03-01T10:00:00Z\",\"end\":"
	"\"2026-03-06T10:00:00Z\"}}",
	"{\"resourceType\":\"Encounter\",\"id\":\"ed\",\"status\":\"finished\",\"class\":"
	"{\"code\":\"EMER\"}," SUBJ ",\"period\":{\"start\":\"2026-03-01T06:00:00Z\",\"end\":"
	"\"2026-03-01T09:00:00Z\"}}",
	"{\"resourceType\":\"Encounter\",\"id\":\"other\",\"status\":\"finished\",\"class\":"
	"{\"code\":\"EMER\"},\"subject\":{\"reference\":\"Patient/q\"},\"period\":{\"start\":"
	"\"2026-02-01T06:00:00Z\",\"end\":\"2026-02-01T09:00:00Z\"}}",
	"{\"resourceType\":\"Condition\",\"id\":\"chf\"," SUBJ ",\"code\":{\"coding\":[{"
	"\"system\":\"" ICD "\",\"code\":\"I50.9\"}]}}",
	"{\"resourceType\":\"Observation\",\"id\":\"hb\",\"status\":\"final\"," SUBJ ","
	"\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"718-7\"}]},"
	"\"effectiveDateTime\":\"2026-03-05T08:00:00Z\",\"valueQuantity\":{\"value\":9.5,"
	"\"unit\":\"g/dL\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"g/dL\"}}",
	"{\"resourceType\":\"Observation\",\"id\":\"k\",\"status\":\"final\"," SUBJ ","
	"\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"2823-3\"}]},"
	"\"effectiveDateTime\":\"2026-03-05T08:00:00Z\",\"valueQuantity\":{\"value\":4,"
	"\"unit\":\"mmol/L\"}}",
	"{\"resourceType\":\"Procedure\",\"id\":\"line\",\"status\":\"completed\"," SUBJ ","
	"\"code\":{\"text\":\"x\"},\"encounter\":{\"reference\":\"Encounter/stay\"}}",
};

struct read_ctx {
	const char *id;
	enum cw_err err;
	struct coord_risk_input in;
};

static enum cw_err
put_all(struct store_tx *tx, void *arg)
{
	for (size_t i = 0; i < sizeof(stored) / sizeof(stored[0]); i++) {
		json_t *r = parse(stored[i]);
		struct store_put p = {.res = r, .rt = fhir_restype_find(
			json_string_value(json_object_get(r, "resourceType")))};
		struct store_res out;
		bool created;
		enum cw_err err = store_tx_put(tx, a, &p, &out, &created);

		if (err)
			return err;
	}
	return CW_OK;
}

static enum cw_err
read_fn(struct store_tx *tx, void *arg)
{
	struct read_ctx *c = arg;
	struct diag d;

	diag_init(&d, a);
	c->err = coord_risk_read(co, tx, a, c->id, &c->in, &d);
	return CW_OK;
}

static void
test_read(void **state)
{
	char dir[64] = "/tmp/cw-risk-XXXXXX", path[128];
	struct store_options o = {0};
	struct read_ctx c = {.id = "stay"};
	struct store *st;
	struct diag d;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/test.db", dir);
	diag_init(&d, a);
	st = store_open(path, &o, &d);
	assert_non_null(st);
	assert_int_equal(store_write(st, put_all, NULL), CW_OK);
	assert_int_equal(store_write(st, read_fn, &c), CW_OK);
	assert_int_equal(c.err, CW_OK);
	assert_string_equal(c.in.encounter_ref, "Encounter/stay");
	assert_int_equal(c.in.nencounters, 2); /* not the other patient's */
	assert_int_equal(c.in.nconditions, 1);
	assert_int_equal(c.in.nobservations, 1); /* haemoglobin, not potassium */
	assert_int_equal(c.in.nprocedures, 1);
	assert_null(c.in.incomplete);
	diag_init(&d, a);
	assert_int_equal(coord_risk_compute(co, a, &c.in, &L, &H, &d), CW_OK);
	assert_int_equal(points(&L, "A"), 3);  /* from the emergency visit */
	assert_int_equal(points(&L, "C"), 2);
	assert_int_equal(points(&L, "E"), 0);
	assert_int_equal(points(&H, "H"), 1);
	assert_int_equal(points(&H, "P"), 1);
	assert_int_equal(points(&H, "LOS"), 2);
	c = (struct read_ctx){.id = "nope"};
	assert_int_equal(store_write(st, read_fn, &c), CW_OK);
	assert_int_equal(c.err, CW_ENOTFOUND);
	store_close(st);
	unit_rm_dir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_length_of_stay),
		cmocka_unit_test(test_acute),
		cmocka_unit_test(test_emergency_visits),
		cmocka_unit_test(test_comorbidity),
		cmocka_unit_test(test_hospital_labs),
		cmocka_unit_test(test_hospital_other),
		cmocka_unit_test(test_bands),
		cmocka_unit_test(test_not_scored),
		cmocka_unit_test(test_assessment),
		cmocka_unit_test(test_read),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
