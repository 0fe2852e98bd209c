/* tests/unit/coord/test_reconcile.c: the reconciled medication list
 * (src/coord/reconcile.c) against data/kb, one rule at a time: grouping
 * (ingredient sets, combinations, words of what the kb cannot map), the
 * window of recent stops, doses (structured, in the text, grams and
 * milligrams, units not compared, strengths, frequency), stopped vs active
 * and superseded, never prescribed (old orders count, proposals do not),
 * duplicates within and across groups, the course that ended, sources,
 * and the limit. Run from the repository root (make unit does). */
#include <jansson.h>

#include "unit.h"

#include "coord/coord.h"
#include "fhir/fhir.h"
#include "kb/kb.h"

#define DAY 86400000LL

static struct kb *kb;
static struct coord *co;
static struct arena *a;
static int64_t now;

static int
setup(void **state)
{
	enum cw_err err;

	kb = kb_load("data/kb", NULL, NULL, &err);
	co = kb ? coord_new(kb) : NULL;
	a = arena_new(64u << 20);
	/* 2026-12-01T00:00:00Z */
	now = time_days_from_civil(2026, 12, 1) * DAY;
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

/* One record from JSON text (kept alive by the arena). */
static void
decref(void *v)
{
	json_decref(v);
}

static struct coord_list_input
rec(const char *ref, const char *text)
{
	json_t *v = NULL;

	if (fhir_parse_json(text, strlen(text), &v, NULL) || !v)
		fail_msg("bad JSON: %s", text);
	arena_on_free(a, decref, v);
	return (struct coord_list_input){.ref = ref, .res = v, .updated = now - DAY};
}

static struct coord_list
run(struct coord_list_input *in, size_t n, unsigned recent)
{
	struct coord_list l;

	assert_int_equal(coord_medication_list(co, a, in, n, now, recent, &l), CW_OK);
	return l;
}

static const struct coord_list_group *
group(const struct coord_list *l, const char *name)
{
	for (size_t i = 0; i < l->ng; i++)
		if (!strcmp(l->g[i].name, name))
			return &l->g[i];
	fail_msg("no group '%s' (%zu groups)", name, l->ng);
	return NULL;
}

static const struct coord_list_entry *
entry(const struct coord_list_group *g, const char *ref)
{
	for (size_t i = 0; i < g->n; i++)
		if (!strcmp(g->e[i].ref, ref))
			return &g->e[i];
	fail_msg("no entry %s in %s", ref, g->name);
	return NULL;
}

#define RX "\"medicationCodeableConcept\":{\"coding\":[{\"system\":\"http://www.nlm.nih.gov/research/umls/rxnorm\",\"code\":\""
#define MR(status, code, text, rest) \
	"{\"resourceType\":\"MedicationRequest\",\"status\":\"" status "\",\"intent\":\"order\"," \
	RX code "\"}],\"text\":\"" text "\"},\"subject\":{\"reference\":\"Patient/p\"}" rest "}"
#define MS(status, code, text, rest) \
	"{\"resourceType\":\"MedicationStatement\",\"status\":\"" status "\"," \
	RX code "\"}],\"text\":\"" text "\"},\"subject\":{\"reference\":\"Patient/p\"}," \
	"\"informationSource\":{\"reference\":\"Patient/p\"}" rest "}"
#define BY(who) ",\"requester\":{\"reference\":\"Practitioner/" who "\"}"
#define QTY(v, u) "[{\"doseAndRate\":[{\"doseQuantity\":{\"value\":" v \
	",\"unit\":\"" u "\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"" u "\"}}]}]"
#define DOSE(v, u) ",\"dosageInstruction\":" QTY(v, u)
#define SDOSE(v, u) ",\"dosage\":" QTY(v, u)

static void
test_groups_and_window(void **state)
{
	struct coord_list_input in[] = {
		rec("MedicationRequest/old", MR("stopped", "6809", "Metformin 500 mg", BY("a")
			",\"dispenseRequest\":{\"validityPeriod\":{\"end\":\"2025-03-12\"}}")),
		rec("MedicationRequest/new", MR("active", "6809", "Metformin 1000 mg", BY("a"))),
		rec("MedicationRequest/bactrim", MR("active", "10831", "Bactrim DS", BY("b"))),
		rec("MedicationRequest/err", MR("entered-in-error", "29046", "Lisinopril", BY("a"))),
	};
	struct coord_list l = run(in, 4, 90);

	assert_int_equal(l.ng, 2);
	assert_int_equal(l.nold, 2);
	assert_string_equal(l.g[0].name, "metformin");
	assert_string_equal(l.g[1].name, "sulfamethoxazole + trimethoprim");
	assert_int_equal(l.g[0].n, 1);
	/* a wider window lists the old order, replaced by the same prescriber */
	l = run(in, 4, 1000);
	assert_int_equal(group(&l, "metformin")->n, 2);
	assert_int_equal(entry(group(&l, "metformin"), "MedicationRequest/old")->flags,
			 COORD_FLAG_SUPERSEDED);
	assert_string_equal(entry(group(&l, "metformin"), "MedicationRequest/old")->ended,
			    "2025-03-12");
	assert_int_equal(group(&l, "metformin")->flags & COORD_FLAG_DISCREPANCIES, 0);
}

static void
test_doses(void **state)
{
	struct coord_list_input in[] = {
		rec("MedicationRequest/g", MR("active", "83367", "Atorvastatin 40 mg", BY("a") DOSE("40", "mg"))),
		rec("MedicationStatement/g", MS("active", "83367", "atorvastatin", SDOSE("0.04", "g"))),
		rec("MedicationRequest/l", MR("active", "29046", "Lisinopril 10 mg", BY("a") DOSE("10", "mg"))),
		/* dose in the text only */
		rec("MedicationStatement/l", MS("active", "29046", "Lisinopril",
			",\"dosage\":[{\"text\":\"take 20mg each morning\"}]")),
		rec("MedicationRequest/t", MR("active", "6809", "Metformin", BY("a") DOSE("500", "mg"))),
		/* tablets and milligrams are not compared: said, not flagged */
		rec("MedicationStatement/t", MS("active", "6809", "Metformin",
			",\"dosage\":[{\"text\":\"1 tablet twice a day\"}]")),
	};
	struct coord_list l = run(in, 6, 90);
	const struct coord_list_group *g = group(&l, "lisinopril");

	assert_int_equal(group(&l, "atorvastatin")->flags & COORD_FLAG_DOSE, 0);
	assert_true(g->flags & COORD_FLAG_DOSE);
	assert_non_null(strstr(entry(g, "MedicationStatement/l")->why, "dose 20mg here, 10 mg in MedicationRequest/l"));
	assert_int_equal(group(&l, "metformin")->flags & COORD_FLAG_DOSE, 0);
	assert_non_null(strstr(group(&l, "metformin")->summary, "not compared"));
}

static void
test_strength_and_frequency(void **state)
{
	struct coord_list_input in[] = {
		/* no dose on either: the strengths named are compared */
		rec("MedicationRequest/a", MR("active", "29046", "Lisinopril 10 mg tablet", BY("a"))),
		rec("MedicationStatement/a", MS("active", "29046", "Lisinopril 20 mg tablet", "")),
		/* the same dose, taken twice as often */
		rec("MedicationRequest/m", MR("active", "6809", "Metformin", BY("a")
			",\"dosageInstruction\":[{\"timing\":{\"repeat\":{\"frequency\":2,\"period\":1,\"periodUnit\":\"d\"}},"
			"\"doseAndRate\":[{\"doseQuantity\":{\"value\":500,\"unit\":\"mg\"}}]}]")),
		rec("MedicationStatement/m", MS("active", "6809", "Metformin", 
			",\"dosage\":[{\"timing\":{\"repeat\":{\"frequency\":1,\"period\":12,\"periodUnit\":\"h\"}},"
			"\"doseAndRate\":[{\"doseQuantity\":{\"value\":500,\"unit\":\"mg\"}}]}]")),
		rec("MedicationStatement/m2", MS("active", "6809", "Metformin",
			",\"dosage\":[{\"timing\":{\"repeat\":{\"frequency\":1,\"period\":1,\"periodUnit\":\"d\"}},"
			"\"doseAndRate\":[{\"doseQuantity\":{\"value\":500,\"unit\":\"mg\"}}]}]")),
	};
	struct coord_list l = run(in, 5, 90);
	const struct coord_list_group *m = group(&l, "metformin");

	assert_true(group(&l, "lisinopril")->flags & COORD_FLAG_DOSE);
	assert_non_null(strstr(entry(group(&l, "lisinopril"), "MedicationStatement/a")->why, "strength"));
	/* twice a day and every 12 hours agree; once a day does not */
	assert_int_equal(entry(m, "MedicationStatement/m")->flags & COORD_FLAG_DOSE, 0);
	assert_true(entry(m, "MedicationStatement/m2")->flags & COORD_FLAG_DOSE);
	assert_non_null(strstr(entry(m, "MedicationStatement/m2")->why, "taken 1 a day here, 2 a day"));
}

static void
test_stops_and_prescriptions(void **state)
{
	struct coord_list_input in[] = {
		/* prescribed, but the patient says not taken */
		rec("MedicationRequest/s", MR("active", "83367", "Atorvastatin", BY("a"))),
		rec("MedicationStatement/s", MS("not-taken", "83367", "Atorvastatin",
			",\"dateAsserted\":\"2026-11-20\"")),
		/* prescribed long ago and ended: still "prescribed" */
		rec("MedicationRequest/o", MR("completed", "7258", "Naproxen", BY("a")
			",\"dispenseRequest\":{\"validityPeriod\":{\"end\":\"2020-01-01\"}}")),
		rec("MedicationStatement/o", MS("active", "7258", "Naproxen", "")),
		/* a proposal is not a prescription */
		rec("MedicationRequest/p", "{\"resourceType\":\"MedicationRequest\",\"status\":\"active\","
			"\"intent\":\"proposal\"," RX "161\"}]},\"subject\":{\"reference\":\"Patient/p\"}}"),
		/* a discharge prescription, from a pharmacy's statement too */
		rec("MedicationRequest/d", MR("active", "29046", "Lisinopril", BY("h")
			",\"category\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/medicationrequest-category\",\"code\":\"discharge\"}]}]")),
		rec("MedicationStatement/d", "{\"resourceType\":\"MedicationStatement\",\"status\":\"active\","
			RX "29046\"}]},\"subject\":{\"reference\":\"Patient/p\"},"
			"\"informationSource\":{\"reference\":\"Organization/pharmacy\",\"display\":\"Corner Pharmacy\"}}"),
	};
	struct coord_list l = run(in, 7, 90);
	const struct coord_list_group *s = group(&l, "atorvastatin"), *d = group(&l, "lisinopril");

	assert_true(entry(s, "MedicationRequest/s")->flags & COORD_FLAG_STOPPED_ACTIVE);
	assert_true(entry(s, "MedicationStatement/s")->flags & COORD_FLAG_STOPPED_ACTIVE);
	assert_int_equal(entry(s, "MedicationStatement/s")->state, COORD_ST_ENDED);
	assert_string_equal(entry(s, "MedicationStatement/s")->ended, "2026-11-20");
	assert_int_equal(group(&l, "naproxen")->flags & COORD_FLAG_NOT_PRESCRIBED, 0);
	assert_int_equal(group(&l, "naproxen")->n, 1);
	assert_true(group(&l, "acetaminophen")->flags & COORD_FLAG_NOT_PRESCRIBED);
	assert_int_equal(entry(group(&l, "acetaminophen"), "MedicationRequest/p")->source, COORD_SRC_PROPOSAL);
	assert_int_equal(entry(d, "MedicationRequest/d")->source, COORD_SRC_DISCHARGE);
	assert_int_equal(entry(d, "MedicationStatement/d")->source, COORD_SRC_ORGANIZATION);
	assert_string_equal(entry(d, "MedicationStatement/d")->by_display, "Corner Pharmacy");
	assert_int_equal(d->flags & COORD_FLAG_DISCREPANCIES, 0);
}

static void
test_duplicates(void **state)
{
	struct coord_list_input in[] = {
		rec("MedicationRequest/a", MR("active", "29046", "Lisinopril 10 mg", BY("a"))),
		rec("MedicationRequest/b", MR("on-hold", "29046", "Lisinopril 10 mg", BY("b"))),
		rec("MedicationRequest/c", MR("active", "10831", "Bactrim", BY("a"))),
		rec("MedicationRequest/t", "{\"resourceType\":\"MedicationRequest\",\"status\":\"active\","
			"\"intent\":\"order\",\"medicationCodeableConcept\":{\"text\":\"trimethoprim 100 mg\"},"
			"\"subject\":{\"reference\":\"Patient/p\"}}"),
	};
	struct coord_list l = run(in, 4, 90);

	assert_true(entry(group(&l, "lisinopril"), "MedicationRequest/a")->flags & COORD_FLAG_DUPLICATE);
	assert_true(entry(group(&l, "lisinopril"), "MedicationRequest/b")->flags & COORD_FLAG_DUPLICATE);
	/* trimethoprim alone and in the combination */
	assert_true(group(&l, "trimethoprim")->flags & COORD_FLAG_DUPLICATE);
	assert_true(group(&l, "sulfamethoxazole + trimethoprim")->flags & COORD_FLAG_DUPLICATE);
	assert_non_null(strstr(entry(group(&l, "trimethoprim"), "MedicationRequest/t")->why,
			       "also prescribed in sulfamethoxazole + trimethoprim"));
}

static void
test_unchecked_and_course(void **state)
{
	struct coord_list_input in[] = {
		rec("MedicationStatement/x", "{\"resourceType\":\"MedicationStatement\",\"status\":\"active\","
			"\"medicationCodeableConcept\":{\"text\":\"Zorblax 5 mg tablet\"},"
			"\"subject\":{\"reference\":\"Patient/p\"}}"),
		rec("MedicationRequest/x", "{\"resourceType\":\"MedicationRequest\",\"status\":\"active\","
			"\"intent\":\"order\",\"medicationCodeableConcept\":{\"text\":\"zorblax 10mg\"},"
			"\"subject\":{\"reference\":\"Patient/p\"}}"),
		rec("MedicationRequest/c", MR("active", "2231", "Cephalexin 500 mg", BY("a")
			",\"dosageInstruction\":[{\"timing\":{\"repeat\":{\"boundsPeriod\":{\"end\":\"2026-11-27\"}}}}]")),
	};
	struct coord_list l = run(in, 3, 90);
	const struct coord_list_group *z = &l.g[l.ng - 1];

	assert_int_equal(l.ng, 2);
	assert_true(z->unchecked);
	assert_int_equal(z->n, 2);
	assert_true(z->flags & COORD_FLAG_UNCHECKED);
	/* prescribed by its words; the strengths differ */
	assert_int_equal(z->flags & COORD_FLAG_NOT_PRESCRIBED, 0);
	assert_true(z->flags & COORD_FLAG_DOSE);
	assert_true(group(&l, "cephalexin")->flags & COORD_FLAG_COURSE_ENDED);
	assert_non_null(strstr(group(&l, "cephalexin")->summary, "its course ended on 2026-11-27"));
}

static void
test_limits_and_names(void **state)
{
	struct coord_list l;

	assert_int_equal(coord_medication_list(co, a, NULL, 0, now, 90, &l), CW_OK);
	assert_int_equal(l.ng, 0);
	assert_int_equal(coord_medication_list(co, a, NULL, COORD_LIST_MAX + 1, now, 90, &l),
			 CW_ETOOBIG);
	assert_string_equal(coord_list_flag_code(COORD_FLAG_DOSE), "dose-differs");
	assert_string_equal(coord_list_flag_code(COORD_FLAG_SUPERSEDED), "superseded");
	assert_null(coord_list_flag_code(3));
	assert_string_equal(coord_list_state_code(COORD_ST_ENDED), "stopped");
	assert_string_equal(coord_list_source_code(COORD_SRC_PATIENT), "patient-reported");
	assert_null(coord_list_source_code(COORD_SRC_COUNT));
}

/* Thousands of records cost a bounded amount: one group of 2,000 current
 * prescriptions of one drug in two doses (every rule fires on every
 * entry) and 2,000 records careweave cannot map, each its own group. */
static void
test_many(void **state)
{
	struct arena *big = arena_new(256u << 20);
	struct coord_list_input *in = arena_alloc(big, COORD_LIST_MAX * sizeof(*in));
	struct coord_list l;
	size_t longest = 0;

	assert_non_null(in);
	for (size_t i = 0; i < COORD_LIST_MAX; i++) {
		json_t *v = i % 2 ?
			json_pack("{s:s, s:s, s:s, s:{s:[{s:s, s:s}]}, s:{s:s}, s:[{s:s}]}",
				  "resourceType", "MedicationRequest", "status", "active",
				  "intent", "order", "medicationCodeableConcept", "coding",
				  "system", KB_RXNORM, "code", "6809", "requester", "reference",
				  i % 4 == 1 ? "Practitioner/a" : "Practitioner/b",
				  "dosageInstruction", "text", i % 4 == 1 ? "500 mg daily" : "1000 mg daily") :
			json_pack("{s:s, s:s, s:{s:s}}", "resourceType", "MedicationStatement",
				  "status", "active", "medicationCodeableConcept", "text",
				  arena_printf(big, "remedy %c%c%c", 'a' + (int)(i / 676 % 26),
					       'a' + (int)(i / 26 % 26), 'a' + (int)(i % 26)));

		assert_non_null(v);
		arena_on_free(big, decref, v);
		in[i] = (struct coord_list_input){.ref = arena_printf(big, "X/%zu", i), .res = v,
						  .updated = now};
	}
	assert_int_equal(coord_medication_list(co, big, in, COORD_LIST_MAX, now, 90, &l), CW_OK);
	assert_int_equal(l.ng, 1 + COORD_LIST_MAX / 2);
	for (size_t i = 0; i < l.ng; i++) {
		size_t n = strlen(l.g[i].summary);

		longest = n > longest ? n : longest;
		for (size_t k = 0; k < l.g[i].n; k++)
			assert_true(!l.g[i].e[k].why || strlen(l.g[i].e[k].why) < 4096);
	}
	assert_true(longest <= 32u << 10);
	assert_true(group(&l, "metformin")->flags & COORD_FLAG_DUPLICATE);
	assert_true(group(&l, "metformin")->flags & COORD_FLAG_DOSE);
	assert_true(arena_used(big) < (96u << 20));
	arena_free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_groups_and_window),
		cmocka_unit_test(test_doses),
		cmocka_unit_test(test_strength_and_frequency),
		cmocka_unit_test(test_stops_and_prescriptions),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_unchecked_and_course),
		cmocka_unit_test(test_limits_and_names),
		cmocka_unit_test(test_many),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
