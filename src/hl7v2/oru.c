/* hl7v2/oru.c: ORU^R01, results, as changes to the record.
 *
 * Each OBR (an order's results) becomes a DiagnosticReport, each OBX under
 * it an Observation in its result list; the report names the order it
 * answers (basedOn: the ServiceRequest whose identifier is the placer
 * order number, OBR-2, else ORC-2), and a final report completes that
 * order. The Patient is found as for ADT (adt.c). Every resource has an
 * identifier from the filler's order number (OBR-3, else ORC-3, else the
 * placer's, else the message's control id and the OBR's place), so a
 * corrected result (status C) updates what the first message made, and a
 * message sent again writes the same resources. What the team does with a
 * result (a review task for the ordering provider and the primary care
 * physician) is the rules' (coord/transitions.c, "Results"). */
#include <stdlib.h>
#include <string.h>

#include "hl7v2/map_int.h"

#define ORU_OBR_MAX 50
#define ORU_OBX_MAX 500
#define RESULT_SYSTEM "urn:careweave:hl7v2:result"

static const char *
get(struct hl7_map *mp, long seg, unsigned field, unsigned comp)
{
	const char *v = seg >= 0 ? hl7_get(mp->m, (size_t)seg, field, 0, comp, 0) : NULL;

	return v == HL7_NULL ? NULL : v;
}

/* HL7 table 0123 (OBR-25) to FHIR diagnostic-report-status. */
static const char *
report_status(const char *s)
{
	if (!s)
		return "final";
	switch (s[0]) {
	case 'F':
		return "final";
	case 'C':
		return "corrected";
	case 'P':
	case 'R':
		return "preliminary";
	case 'A':
		return "partial";
	case 'I':
	case 'S':
	case 'O':
		return "registered";
	case 'X':
		return "cancelled";
	default:
		return "unknown";
	}
}

/* HL7 table 0085 (OBX-11) to FHIR observation-status. */
static const char *
obs_status(const char *s)
{
	if (!s)
		return "final";
	switch (s[0]) {
	case 'F':
		return "final";
	case 'C':
		return "corrected";
	case 'P':
	case 'R':
	case 'S':
		return "preliminary";
	case 'X':
		return "cancelled";
	case 'D':
	case 'W':
		return "entered-in-error";
	case 'I':
	case 'O':
		return "registered";
	default:
		return "unknown";
	}
}

/* A number as HL7 writes it; false when it is not one. */
static bool
number(const char *s, double *out)
{
	char *end;

	if (!s || !*s)
		return false;
	*out = strtod(s, &end);
	return *end == '\0';
}

static json_t *
quantity(struct hl7_map *mp, long obx, const char *lit, const char *comparator)
{
	const char *unit = get(mp, obx, 6, 1), *utext = get(mp, obx, 6, 2);
	const char *usys = get(mp, obx, 6, 3);
	json_t *v = hl7_map_decimal(mp->a, lit), *q;

	if (!v || !(q = json_pack("{s:o}", "value", v)))
		return NULL;
	if (comparator)
		json_object_set_new(q, "comparator", json_string(comparator));
	if (unit) {
		json_object_set_new(q, "unit", json_string(utext ? utext : unit));
		/* UCUM when the sender says so, or by default: lab units are */
		if (!usys || !strcmp(usys, "UCUM") || !strcmp(usys, "ANSI+")) {
			json_object_set_new(q, "system", json_string("http://unitsofmeasure.org"));
			json_object_set_new(q, "code", json_string(unit));
		}
	}
	return q;
}

/* OBX-5 by its type (OBX-2), set on obs; false when careweave cannot read
 * it (said as a problem, the Observation written without a value). */
static bool
value(struct hl7_map *mp, long obx, json_t *obs)
{
	const char *type = get(mp, obx, 2, 1), *v = get(mp, obx, 5, 1);
	double d;

	if (!type || !hl7_get(mp->m, (size_t)obx, 5, 0, 0, 0))
		return true; /* no value: a result to come, or words in NTE */
	if (!strcmp(type, "NM")) {
		if (!number(v, &d))
			return false;
		json_object_set_new(obs, "valueQuantity", quantity(mp, obx, v, NULL));
		return true;
	}
	if (!strcmp(type, "SN")) {
		/* structured numeric: comparator ^ number [^ separator ^ number] */
		const char *cmp = get(mp, obx, 5, 1), *num = get(mp, obx, 5, 2);
		const char *sep = get(mp, obx, 5, 3), *num2 = get(mp, obx, 5, 4);

		if (sep || num2) {
			double hi;

			if (!number(num, &d) || !number(num2, &hi))
				return false;
			json_object_set_new(obs, "valueString", json_string(
				arena_printf(mp->a, "%s%s%s", num, sep ? sep : "-", num2)));
			return true;
		}
		if (!number(num, &d))
			return false;
		if (cmp && strcmp(cmp, "<") && strcmp(cmp, ">") && strcmp(cmp, "<=") &&
		    strcmp(cmp, ">=") && strcmp(cmp, "="))
			return false;
		json_object_set_new(obs, "valueQuantity",
				    quantity(mp, obx, num, cmp && strcmp(cmp, "=") ? cmp : NULL));
		return true;
	}
	if (!strcmp(type, "CE") || !strcmp(type, "CWE") || !strcmp(type, "CNE")) {
		json_t *cc = hl7_map_cwe(mp, obx, 5, 0);

		if (cc)
			json_object_set_new(obs, "valueCodeableConcept", cc);
		return true;
	}
	if (!strcmp(type, "DT") || !strcmp(type, "TS") || !strcmp(type, "DTM")) {
		const char *t = hl7_map_dtm(mp, obx, 5, false);

		if (t)
			json_object_set_new(obs, "valueDateTime", json_string(t));
		return t != NULL;
	}
	/* ST, TX, FT and the rest: the words as sent (repetitions joined) */
	{
		unsigned n = hl7_reps(mp->m, (size_t)obx, 5);
		char *out = NULL;

		for (unsigned r = 0; r < n && r < HL7_REPS_MAX; r++) {
			const char *part = hl7_get(mp->m, (size_t)obx, 5, r, 0, 0);

			if (!part || part == HL7_NULL)
				continue;
			out = out ? arena_printf(mp->a, "%s\n%s", out, part) : arena_strdup(mp->a, part);
		}
		if (out)
			json_object_set_new(obs, "valueString", json_string(out));
	}
	return true;
}

/* OBX-7 ("70-105", "70_105", "<5", ">10") as a referenceRange; NULL when
 * it is words careweave keeps as text. */
static json_t *
range(struct hl7_map *mp, long obx)
{
	const char *r = get(mp, obx, 7, 1), *sep;
	double lo, hi;
	json_t *rr;

	if (!r)
		return NULL;
	sep = strpbrk(r + 1, "-_");
	if (sep) {
		char *a = arena_strndup(mp->a, r, (size_t)(sep - r));

		if (a && number(a, &lo) && number(sep + 1, &hi)) {
			rr = json_pack("{s:{s:o}, s:{s:o}}", "low", "value", hl7_map_decimal(mp->a, a),
				       "high", "value", hl7_map_decimal(mp->a, sep + 1));
			if (rr && get(mp, obx, 6, 1)) {
				json_object_set_new(json_object_get(rr, "low"), "unit",
						    json_string(get(mp, obx, 6, 1)));
				json_object_set_new(json_object_get(rr, "high"), "unit",
						    json_string(get(mp, obx, 6, 1)));
			}
			return rr;
		}
	}
	return json_pack("{s:s}", "text", r);
}

/* OBX-8 (HL7 table 0078) as a v3-ObservationInterpretation concept. */
static json_t *
interpretation(struct hl7_map *mp, long obx)
{
	unsigned n = hl7_reps(mp->m, (size_t)obx, 8);
	json_t *arr = json_array();

	for (unsigned r = 0; arr && r < n && r < 8; r++) {
		const char *c = hl7_get(mp->m, (size_t)obx, 8, r, 1, 0);

		if (!c || c == HL7_NULL)
			continue;
		json_array_append_new(arr, json_pack("{s:[{s:s, s:s}]}", "coding", "system",
			"http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
			"code", c));
	}
	if (arr && !json_array_size(arr)) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

/* The order a report answers: its placer number, found among the
 * ServiceRequests careweave holds (by identifier value, any system). */
static enum cw_err
order_of(struct hl7_map *mp, const char *placer, struct hl7_found *f, struct diag *d)
{
	memset(f, 0, sizeof(*f));
	if (!placer)
		return CW_OK;
	return hl7_map_find(mp, "ServiceRequest", "identifier", hl7_map_key(mp->a, placer),
			    NULL, NULL, f, d);
}

/* One OBR and its OBXs (from obr up to the next OBR or ORC). */
static enum cw_err
report(struct hl7_map *mp, long obr, long orc, size_t k, const char *patient_ref,
       struct diag *d)
{
	const char *placer = get(mp, obr, 2, 1) ? get(mp, obr, 2, 1) : get(mp, orc, 2, 1);
	const char *filler = get(mp, obr, 3, 1) ? get(mp, obr, 3, 1) : get(mp, orc, 3, 1);
	const char *status = report_status(get(mp, obr, 25, 1));
	const char *when = hl7_map_dtm(mp, obr, 7, false), *issued = hl7_map_dtm(mp, obr, 22, false);
	const char *key = hl7_map_key(mp->a, filler ? filler : placer ? placer :
				      arena_printf(mp->a, "%s-%zu", mp->h->control_id, k + 1));
	json_t *code = hl7_map_cwe(mp, obr, 4, 0), *rep, *results = json_array();
	struct hl7_found order;
	size_t nobx = 0;
	enum cw_err err;

	if (!code)
		return hl7_map_problem(mp, obr, 4, 101, true, "OBR-4 (the test) is empty");
	if ((err = order_of(mp, placer, &order, d)))
		return err;
	for (long seg = obr + 1; seg < (long)hl7_segment_count(mp->m); seg++) {
		const char *name = hl7_segment_name(mp->m, (size_t)seg), *sub, *setid;
		json_t *obs, *v;
		char uuid[ID_LEN + 1];
		const char *full, *ident;

		if (!strcmp(name, "OBR") || !strcmp(name, "ORC"))
			break;
		if (strcmp(name, "OBX"))
			continue;
		if (++nobx > ORU_OBX_MAX)
			return hl7_map_problem(mp, seg, 0, 207, true,
					       "More than %d results under one OBR", ORU_OBX_MAX);
		if (!(v = hl7_map_cwe(mp, seg, 3, 0))) {
			hl7_map_problem(mp, seg, 3, 101, false,
					"OBX-3 (what was measured) is empty; left out");
			continue;
		}
		setid = get(mp, seg, 1, 1);
		sub = get(mp, seg, 4, 1);
		ident = hl7_map_key(mp->a, arena_printf(mp->a, "%s-%s%s%s", key,
			setid ? setid : arena_printf(mp->a, "%zu", nobx), sub ? "." : "",
			sub ? sub : ""));
		obs = json_pack("{s:s, s:[{s:s, s:s}], s:s, s:[{s:[{s:s, s:s}]}], s:o, s:{s:s}}",
				"resourceType", "Observation", "identifier", "system", RESULT_SYSTEM,
				"value", ident, "status", obs_status(get(mp, seg, 11, 1)),
				"category", "coding", "system",
				"http://terminology.hl7.org/CodeSystem/observation-category",
				"code", "laboratory", "code", v, "subject", "reference", patient_ref);
		if (!obs)
			return CW_ENOMEM;
		if (!value(mp, seg, obs))
			hl7_map_problem(mp, seg, 5, 102, false,
					"OBX-5 is not a value of its type (OBX-2); the result is "
					"written without it");
		if ((v = range(mp, seg)))
			json_object_set_new(obs, "referenceRange", json_pack("[o]", v));
		if ((v = interpretation(mp, seg)))
			json_object_set_new(obs, "interpretation", v);
		{
			const char *t = hl7_map_dtm(mp, seg, 14, false);

			if (t || when)
				json_object_set_new(obs, "effectiveDateTime", json_string(t ? t : when));
		}
		if (issued)
			json_object_set_new(obs, "issued", json_string(issued));
		if (order.n == 1)
			json_object_set_new(obs, "basedOn", json_pack("[{s:s}]", "reference",
				arena_printf(mp->a, "ServiceRequest/%s", order.id)));
		id_new(uuid);
		full = arena_printf(mp->a, "urn:uuid:%s", uuid);
		json_array_append_new(results, json_pack("{s:s}", "reference", full));
		if ((err = hl7_map_entry(mp, "PUT",
					 arena_printf(mp->a, "Observation?identifier=%s",
						      hl7_map_token_query(mp->a, RESULT_SYSTEM, ident)),
					 obs, NULL, NULL, full)))
			return err;
	}
	rep = json_pack("{s:s, s:[{s:s, s:s}], s:s, s:[{s:[{s:s, s:s}]}], s:o, s:{s:s}}",
			"resourceType", "DiagnosticReport", "identifier", "system", RESULT_SYSTEM,
			"value", key, "status", status, "category", "coding", "system",
			"http://terminology.hl7.org/CodeSystem/v2-0074", "code", "LAB",
			"code", code, "subject", "reference", patient_ref);
	if (!rep)
		return CW_ENOMEM;
	if (when)
		json_object_set_new(rep, "effectiveDateTime", json_string(when));
	if (issued)
		json_object_set_new(rep, "issued", json_string(issued));
	if (json_array_size(results))
		json_object_set_new(rep, "result", results);
	else
		json_decref(results);
	if (order.n == 1) {
		json_object_set_new(rep, "basedOn", json_pack("[{s:s}]", "reference",
			arena_printf(mp->a, "ServiceRequest/%s", order.id)));
		/* a final result completes the order it answers */
		if (!strcmp(status, "final") || !strcmp(status, "corrected")) {
			const char *st = json_string_value(json_object_get(order.res, "status"));

			if (st && strcmp(st, "completed")) {
				json_t *sr = json_deep_copy(order.res);

				if (!sr)
					return CW_ENOMEM;
				json_object_del(sr, "meta");
				json_object_set_new(sr, "status", json_string("completed"));
				if ((err = hl7_map_entry(mp, "PUT",
							 arena_printf(mp->a, "ServiceRequest/%s", order.id),
							 sr, NULL,
							 arena_printf(mp->a, "W/\"%ld\"", order.version),
							 NULL)))
					return err;
			}
		}
	} else if (placer && order.n == 0) {
		hl7_map_problem(mp, obr, 2, 204, false,
				"No order careweave holds has this placer number; the result is "
				"written without it");
	}
	return hl7_map_entry(mp, "PUT",
			     arena_printf(mp->a, "DiagnosticReport?identifier=%s",
					  hl7_map_token_query(mp->a, RESULT_SYSTEM, key)),
			     rep, NULL, NULL, NULL);
}

enum cw_err
hl7_oru_map(struct hl7_map *mp, struct diag *d)
{
	long pid = hl7_find(mp->m, "PID", 0, 0), obr;
	const char *pref = NULL, *pkey = NULL;
	size_t k;
	enum cw_err err;

	if (pid < 0)
		return hl7_map_problem(mp, -1, 0, 100, true, "The message has no PID segment");
	if (hl7_find(mp->m, "OBR", 0, 0) < 0)
		return hl7_map_problem(mp, -1, 0, 100, true, "The message has no OBR segment");
	if ((err = hl7_map_patient(mp, pid, &pref, &pkey, d)) || mp->failed)
		return err ? err : CW_EINVAL;
	for (k = 0; k < ORU_OBR_MAX && (obr = hl7_find(mp->m, "OBR", 0, k)) >= 0; k++) {
		long orc = -1;

		/* the ORC before this OBR, if there is one since the last OBR */
		for (long s = obr - 1; s > pid; s--) {
			const char *n = hl7_segment_name(mp->m, (size_t)s);

			if (!strcmp(n, "OBR"))
				break;
			if (!strcmp(n, "ORC")) {
				orc = s;
				break;
			}
		}
		if ((err = report(mp, obr, orc, k, pref, d)) || mp->failed)
			return err ? err : CW_EINVAL;
	}
	if (hl7_find(mp->m, "OBR", 0, ORU_OBR_MAX) >= 0)
		return hl7_map_problem(mp, -1, 0, 207, true, "More than %d OBR segments",
				       ORU_OBR_MAX);
	return CW_OK;
}
