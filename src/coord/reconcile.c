/* coord/reconcile.c: the reconciled medication list (coord.h says what).
 *
 * The caller (api/medlist.c) reads the patient's MedicationRequests and
 * MedicationStatements that the caller may see and passes them all, old
 * ones too: "never prescribed" is asked of every prescription on record,
 * not only of those listed. This file decides what is listed (current
 * records, and those that ended in the window), groups the records by
 * their ingredient set (kb_map_medication; a record careweave cannot map
 * fully is grouped by its words), and compares the records of a group:
 * doses, stops, prescriptions, duplicates. It is conservative: a dose is
 * compared only with a dose in the same unit (milligrams and grams are one
 * unit), and what it could not compare is said, never passed as agreeing.
 * The rules are tabled in src/coord/README.md. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "coord/coord_int.h"

/* Explanations kept per entry (the flags are all kept), records cited in
 * one explanation, entries told in a group's summary and its size: a
 * patient with thousands of records gets a list, not quadratic text. */
#define WHY_MAX 6
#define CITE_MAX 3
#define SUMMARY_ENTRIES 12
#define SUMMARY_MAX (32u << 10)
#define UCUM "http://unitsofmeasure.org"
#define MR_CATEGORY "http://terminology.hl7.org/CodeSystem/medicationrequest-category"

/* ---- names ---------------------------------------------------------------- */

static const struct {
	const char *code, *display;
} flag_names[COORD_FLAG_COUNT_BITS] = {
	{"dose-differs", "Dose differs between sources"},
	{"stopped-vs-active", "Stopped by one source, active in another"},
	{"not-prescribed", "Listed, but prescribed by no one on record"},
	{"duplicate", "The same ingredient prescribed more than once"},
	{"unchecked", "careweave cannot identify this medication"},
	{"course-ended", "Active, but its stated course has ended"},
	{"superseded", "Stopped and replaced by the same source"},
};

static const struct {
	const char *code, *display;
} state_names[COORD_ST_COUNT] = {
	[COORD_ST_ACTIVE] = {"active", "Active"},
	[COORD_ST_ON_HOLD] = {"on-hold", "On hold"},
	[COORD_ST_INTENDED] = {"intended", "Intended"},
	[COORD_ST_ENDED] = {"stopped", "Stopped or ended"},
	[COORD_ST_UNKNOWN] = {"status-unknown", "Status unknown"},
};

static const struct {
	const char *code, *display;
} source_names[COORD_SRC_COUNT] = {
	[COORD_SRC_PRESCRIPTION] = {"prescription", "Prescription"},
	[COORD_SRC_DISCHARGE] = {"discharge", "Discharge prescription"},
	[COORD_SRC_INPATIENT] = {"inpatient", "Inpatient order"},
	[COORD_SRC_PROPOSAL] = {"proposal", "Proposed, not prescribed"},
	[COORD_SRC_PATIENT] = {"patient-reported", "Reported by the patient or a caregiver"},
	[COORD_SRC_CLINICIAN] = {"clinician-reported", "Reported by a clinician"},
	[COORD_SRC_ORGANIZATION] = {"organization-reported", "Reported by an organization (pharmacy)"},
	[COORD_SRC_UNSTATED] = {"unstated", "Reported, source not stated"},
};

static int
bit_index(unsigned bit)
{
	for (int i = 0; i < COORD_FLAG_COUNT_BITS; i++)
		if (bit == 1u << i)
			return i;
	return -1;
}

const char *
coord_list_flag_code(unsigned bit)
{
	int i = bit_index(bit);

	return i < 0 ? NULL : flag_names[i].code;
}

const char *
coord_list_flag_display(unsigned bit)
{
	int i = bit_index(bit);

	return i < 0 ? NULL : flag_names[i].display;
}

const char *
coord_list_state_code(enum coord_list_state st)
{
	return (unsigned)st < COORD_ST_COUNT ? state_names[st].code : NULL;
}

const char *
coord_list_state_display(enum coord_list_state st)
{
	return (unsigned)st < COORD_ST_COUNT ? state_names[st].display : NULL;
}

const char *
coord_list_source_code(enum coord_list_source src)
{
	return (unsigned)src < COORD_SRC_COUNT ? source_names[src].code : NULL;
}

const char *
coord_list_source_display(enum coord_list_source src)
{
	return (unsigned)src < COORD_SRC_COUNT ? source_names[src].display : NULL;
}

/* ---- reading a record ------------------------------------------------------ */

static bool
is(const char *s, const char *lit)
{
	return s && !strcmp(s, lit);
}

/* A dose or strength: a number (or range) in a unit. Masses are kept in
 * milligrams so 1 g and 1000 mg are one dose. */
struct dose {
	bool have;
	double lo, hi;
	char unit[24];     /* normalized: "mg", "unit", "tablet", "mg/ml" ... */
	const char *words; /* as written: "1000 mg" */
};

static const struct {
	const char *name;
	double scale;
	const char *unit;
} unit_table[] = {
	{"mg", 1, "mg"}, {"milligram", 1, "mg"}, {"milligrams", 1, "mg"},
	{"g", 1000, "mg"}, {"gram", 1000, "mg"}, {"grams", 1000, "mg"},
	{"mcg", 0.001, "mg"}, {"ug", 0.001, "mg"}, {"microgram", 0.001, "mg"},
	{"micrograms", 0.001, "mg"},
	{"ml", 1, "ml"}, {"milliliter", 1, "ml"}, {"milliliters", 1, "ml"},
	{"unit", 1, "unit"}, {"units", 1, "unit"}, {"[iu]", 1, "unit"},
	{"iu", 1, "unit"}, {"u", 1, "unit"}, {"[u]", 1, "unit"},
	{"meq", 1, "meq"}, {"%", 1, "%"},
	{"tablet", 1, "tablet"}, {"tablets", 1, "tablet"}, {"tab", 1, "tablet"},
	{"tabs", 1, "tablet"}, {"{tbl}", 1, "tablet"},
	{"capsule", 1, "capsule"}, {"capsules", 1, "capsule"}, {"cap", 1, "capsule"},
	{"puff", 1, "puff"}, {"puffs", 1, "puff"}, {"drop", 1, "drop"},
	{"drops", 1, "drop"}, {"patch", 1, "patch"}, {"patches", 1, "patch"},
};

/* The unit named by s[0..n) (case ignored), or NULL. */
static const char *
unit_find(const char *s, size_t n, double *scale)
{
	for (size_t i = 0; i < sizeof(unit_table) / sizeof(unit_table[0]); i++)
		if (strlen(unit_table[i].name) == n &&
		    !strncasecmp(unit_table[i].name, s, n)) {
			*scale = unit_table[i].scale;
			return unit_table[i].unit;
		}
	return NULL;
}

static void
dose_set_unit(struct dose *d, const char *unit, const char *per)
{
	size_t n = strlen(unit);

	if (n >= sizeof(d->unit))
		n = sizeof(d->unit) - 1;
	memcpy(d->unit, unit, n);
	d->unit[n] = '\0';
	if (per && n + 1 + strlen(per) < sizeof(d->unit)) {
		d->unit[n] = '/';
		memcpy(d->unit + n + 1, per, strlen(per) + 1); /* fits: checked above */
	}
}

/* A Quantity (doseQuantity, a range's low or high): its value in the
 * normalized unit into *v, the unit into d. */
static bool
quantity_of(const json_t *q, struct dose *d, double *v, const char **unit_words)
{
	const char *code = coord_str_at(q, "code"), *unit = coord_str_at(q, "unit"), *u;
	double scale = 1;

	if (!q || !fhir_number(json_object_get(q, "value"), v, NULL))
		return false;
	u = code && is(coord_str_at(q, "system"), UCUM) ? unit_find(code, strlen(code), &scale) : NULL;
	if (!u && unit)
		u = unit_find(unit, strlen(unit), &scale);
	*unit_words = unit ? unit : code ? code : "";
	if (u) {
		dose_set_unit(d, u, NULL);
	} else {
		/* a unit careweave does not know: compared as written */
		char low[24];
		size_t i;
		const char *w = *unit_words;

		for (i = 0; w[i] && i + 1 < sizeof(low); i++)
			low[i] = (char)((w[i] >= 'A' && w[i] <= 'Z') ? w[i] + 32 : w[i]);
		low[i] = '\0';
		dose_set_unit(d, low, NULL);
	}
	*v *= scale;
	return true;
}

/* The first dose of a dosage: doseAndRate[].doseQuantity or doseRange. */
static void
dose_structured(struct arena *a, const json_t *dosage, struct dose *d)
{
	size_t i;
	json_t *dr;

	memset(d, 0, sizeof(*d));
	json_array_foreach(json_object_get(dosage, "doseAndRate"), i, dr) {
		const json_t *q = json_object_get(dr, "doseQuantity"), *r;
		const char *uw, *uw2;
		double v, v2, lo_raw, hi_raw;
		struct dose d2;

		if (q && quantity_of(q, d, &v, &uw)) {
			fhir_number(json_object_get(q, "value"), &lo_raw, NULL);
			d->lo = d->hi = v;
			d->have = true;
			d->words = arena_printf(a, "%g %s", lo_raw, uw);
			return;
		}
		r = json_object_get(dr, "doseRange");
		memset(&d2, 0, sizeof(d2));
		if (r && quantity_of(json_object_get(r, "low"), d, &v, &uw) &&
		    quantity_of(json_object_get(r, "high"), &d2, &v2, &uw2) &&
		    !strcmp(d->unit, d2.unit)) {
			fhir_number(json_object_get(json_object_get(r, "low"), "value"), &lo_raw, NULL);
			fhir_number(json_object_get(json_object_get(r, "high"), "value"), &hi_raw, NULL);
			d->lo = v;
			d->hi = v2;
			d->have = true;
			d->words = arena_printf(a, "%g-%g %s", lo_raw, hi_raw, uw2);
			return;
		}
		memset(d, 0, sizeof(*d));
	}
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The first "<number>[-<number>] <unit>[/<unit>]" of a text ("Metformin
 * 500 mg tablet", "500-1000 mg by mouth", "100 units/mL"), or nothing. */
static void
dose_in_text(struct arena *a, const char *t, struct dose *d)
{
	memset(d, 0, sizeof(*d));
	for (const char *p = t; p && *p; p++) {
		const char *s = p, *q, *u, *per = NULL;
		double lo, hi, scale = 1, pscale = 1;
		char *end;
		size_t un, pn = 0;

		if (!is_digit(*p) || (p > t && (is_alpha(p[-1]) || is_digit(p[-1]) || p[-1] == '.')))
			continue;
		lo = strtod(p, &end);
		hi = lo;
		q = end;
		while (*q == ' ')
			q++;
		if (*q == '-' && is_digit(q[1 + strspn(q + 1, " ")])) {
			q++;
			q += strspn(q, " ");
			hi = strtod(q, &end);
			q = end;
			while (*q == ' ')
				q++;
		}
		for (un = 0; is_alpha(q[un]) || q[un] == '%' || q[un] == '[' || q[un] == ']'; un++)
			;
		if (!un || !(u = unit_find(q, un, &scale))) {
			p = q > p ? q - 1 : p;
			continue;
		}
		if (q[un] == '/') {
			for (pn = 0; is_alpha(q[un + 1 + pn]); pn++)
				;
			per = pn ? unit_find(q + un + 1, pn, &pscale) : NULL;
		}
		d->have = true;
		d->lo = lo * scale / (per ? pscale : 1);
		d->hi = hi * scale / (per ? pscale : 1);
		dose_set_unit(d, u, per);
		d->words = arena_strndup(a, s, (size_t)(q + un + (per ? 1 + pn : 0) - s));
		return;
	}
}

static bool
dose_comparable(const struct dose *x, const struct dose *y)
{
	return x->have && y->have && !strcmp(x->unit, y->unit);
}

static bool
near(double x, double y)
{
	double m = fabs(x) > fabs(y) ? fabs(x) : fabs(y);

	return fabs(x - y) <= 1e-9 * (m > 1 ? m : 1);
}

static bool
dose_same(const struct dose *x, const struct dose *y)
{
	return near(x->lo, y->lo) && near(x->hi, y->hi);
}

/* How often: administrations a day from timing.repeat (frequency, period,
 * periodUnit), when the dosage states them and is not "as needed". */
struct freq {
	bool have;
	double per_day;
	const char *words;
};

static void
freq_of(struct arena *a, const json_t *dosage, struct freq *f)
{
	static const struct {
		const char *unit, *words;
		double days;
	} units[] = {
		{"s", "second", 1.0 / 86400}, {"min", "minute", 1.0 / 1440},
		{"h", "hour", 1.0 / 24}, {"d", "day", 1}, {"wk", "week", 7},
		{"mo", "month", 30}, {"a", "year", 365},
	};
	const json_t *rep = json_object_get(json_object_get(dosage, "timing"), "repeat");
	const char *pu = coord_str_at(rep, "periodUnit");
	double freq = 1, period;

	memset(f, 0, sizeof(*f));
	if (!rep || !pu || json_is_true(json_object_get(dosage, "asNeededBoolean")) ||
	    json_object_get(dosage, "asNeededCodeableConcept") ||
	    !fhir_number(json_object_get(rep, "period"), &period, NULL) || period <= 0)
		return;
	if (json_object_get(rep, "frequency") &&
	    !fhir_number(json_object_get(rep, "frequency"), &freq, NULL))
		return;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcmp(units[i].unit, pu)) {
			f->have = true;
			f->per_day = freq / (period * units[i].days);
			f->words = period == 1 ?
				arena_printf(a, "%g a %s", freq, units[i].words) :
				arena_printf(a, "%g every %g %ss", freq, period, units[i].words);
			return;
		}
}

/* ---- one record ------------------------------------------------------------ */

struct item {
	struct coord_list_entry e;
	const char *key;        /* the group: "d:metformin", "t:normalized words" */
	const char *name;
	bool unchecked;
	bool listed;
	bool prescribed;        /* an order (any status but error or draft) */
	bool rx;                /* a prescription source (order) */
	const char *prior;      /* priorPrescription reference */
	struct dose dose, strength;
	struct freq freq;
	int64_t course_end;     /* stated end of its course (ms), 0: none */
	unsigned drugs[KB_MAP_MAX];
	unsigned ndrugs;
	size_t order;           /* input order, for a stable sort */
	unsigned nwhy;          /* explanations in e.why */
	bool more;              /* more than WHY_MAX: "and more" said */
};

/* What the record is: its medicationCodeableConcept, a contained
 * Medication's code, or the code of the Medication the caller read. */
static const json_t *
concept_of(const struct coord_list_input *in)
{
	const json_t *cc = json_object_get(in->res, "medicationCodeableConcept");
	const char *ref = coord_str_at(json_object_get(in->res, "medicationReference"), "reference");
	size_t i;
	json_t *c;

	if (cc)
		return cc;
	if (ref && ref[0] == '#') {
		json_array_foreach(json_object_get(in->res, "contained"), i, c)
			if (is(coord_str_at(c, "resourceType"), "Medication") &&
			    is(coord_str_at(c, "id"), ref + 1))
				return json_object_get(c, "code");
		return NULL;
	}
	return in->medication ? json_object_get(in->medication, "code") : NULL;
}

static const char *
concept_words(const json_t *cc, const json_t *res)
{
	const char *t = coord_str_at(cc, "text");
	json_t *c = json_array_get(json_object_get(cc, "coding"), 0);
	const char *d = coord_str_at(json_object_get(res, "medicationReference"), "display");

	if (t && *t)
		return t;
	if (c && coord_str_at(c, "display"))
		return coord_str_at(c, "display");
	if (d && *d)
		return d;
	if (c && coord_str_at(c, "code"))
		return coord_str_at(c, "code");
	return "a medication without a code or name";
}

/* Words that say how much or in what form, not what: left out of the key
 * of a record careweave cannot map, so "Foo 10 mg tablet" and "foo 20mg"
 * are one group. */
static bool
noise_word(const char *w, size_t n)
{
	static const char *const words[] = {
		"tablet", "tablets", "tab", "capsule", "capsules", "cap", "oral",
		"solution", "suspension", "er", "xr", "sr", "dr", "po", "by", "mouth",
		"daily", "otc", "mg", "mcg", "g", "ml", "units", "unit", "iu",
	};
	double scale;

	if (is_digit(w[0]) || unit_find(w, n, &scale))
		return true;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strlen(words[i]) == n && !strncmp(words[i], w, n))
			return true;
	return false;
}

static const char *
text_key(struct arena *a, const char *words)
{
	char norm[512], *out;
	size_t n = kb_normalize(words, norm, sizeof(norm)), k = 2;

	if (n >= sizeof(norm))
		n = sizeof(norm) - 1;
	if (!(out = arena_alloc(a, n + 3)))
		return NULL;
	memcpy(out, "t:", 2);
	for (char *p = norm; *p;) {
		size_t w = strcspn(p, " ");

		if (!noise_word(p, w)) {
			if (k > 2)
				out[k++] = ' ';
			memcpy(out + k, p, w);
			k += w;
		}
		p += w + (p[w] == ' ');
	}
	if (k == 2) {
		/* only numbers and forms: the whole words, then */
		memcpy(out + 2, norm, n);
		k = 2 + n;
	}
	out[k] = '\0';
	return out;
}

static bool
coded(const json_t *cc, const char *system, const char *code)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(cc, "coding"), i, c)
		if (is(coord_str_at(c, "code"), code) &&
		    (!coord_str_at(c, "system") || is(coord_str_at(c, "system"), system)))
			return true;
	return false;
}

static bool
order_intent(const char *intent)
{
	return is(intent, "order") || is(intent, "original-order") ||
	       is(intent, "reflex-order") || is(intent, "filler-order") ||
	       is(intent, "instance-order");
}

/* The time a dateTime value ends (ms), 0 if none or unreadable. */
static int64_t
end_of(const char *v)
{
	struct time_range tr;

	if (!v || time_parse(v, strlen(v), TIME_DATETIME, &tr))
		return 0;
	return tr.hi;
}

static const char *
day_of(struct arena *a, int64_t ms)
{
	char at[32];

	time_format_instant(ms, at);
	return arena_strndup(a, at, 10);
}

static int
cmp_names(const struct kb *kb, unsigned x, unsigned y)
{
	const struct kb_drug *a = kb_drug_at(kb, x), *b = kb_drug_at(kb, y);

	return strcmp(a ? a->name : "", b ? b->name : "");
}

/* Sorts the few drug numbers of one mapping by name (insertion sort). */
static void
sort_drugs(const struct kb *kb, unsigned *v, unsigned n)
{
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && cmp_names(kb, v[j - 1], v[j]) > 0; j--) {
			unsigned t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
}

static enum cw_err
item_fill(const struct coord *co, struct arena *a, const struct coord_list_input *in,
	  int64_t now, int64_t since, struct item *it)
{
	const json_t *res = in->res, *cc = concept_of(in), *dosage, *by;
	const char *type = coord_str_at(res, "resourceType"), *st = coord_str_at(res, "status");
	bool mr = is(type, "MedicationRequest");
	struct kb_coding cs[8];
	const char *text = NULL;
	size_t nc = cc ? coord_codings_of(cc, cs, 8, &text) : 0;
	struct kb_mapping map;
	int64_t ended = 0;
	size_t i;
	json_t *x;

	it->e.ref = in->ref;
	it->e.status = st ? st : "unknown";
	it->e.words = concept_words(cc, res);
	/* the state, and whether it is listed at all */
	it->listed = true;
	if (!st || is(st, "unknown"))
		it->e.state = COORD_ST_UNKNOWN;
	else if (is(st, "active"))
		it->e.state = COORD_ST_ACTIVE;
	else if (is(st, "on-hold"))
		it->e.state = COORD_ST_ON_HOLD;
	else if (!mr && is(st, "intended"))
		it->e.state = COORD_ST_INTENDED;
	else if (is(st, "stopped") || is(st, "completed") || is(st, "cancelled") ||
		 is(st, "not-taken"))
		it->e.state = COORD_ST_ENDED;
	else
		it->listed = false; /* entered-in-error, draft */
	/* the source and who */
	by = json_object_get(res, mr ? "requester" : "informationSource");
	it->e.by = coord_str_at(by, "reference");
	it->e.by_display = coord_str_at(by, "display");
	if (mr) {
		const char *intent = coord_str_at(res, "intent");

		it->rx = order_intent(intent);
		it->e.source = !it->rx ? COORD_SRC_PROPOSAL : COORD_SRC_PRESCRIPTION;
		json_array_foreach(json_object_get(res, "category"), i, x) {
			if (it->rx && coded(x, MR_CATEGORY, "discharge"))
				it->e.source = COORD_SRC_DISCHARGE;
			else if (it->rx && coded(x, MR_CATEGORY, "inpatient") &&
				 it->e.source == COORD_SRC_PRESCRIPTION)
				it->e.source = COORD_SRC_INPATIENT;
		}
		it->prescribed = it->rx && it->listed;
		it->e.when = coord_str_at(res, "authoredOn");
		it->e.reported = json_is_true(json_object_get(res, "reportedBoolean")) ||
				 json_object_get(res, "reportedReference");
		it->prior = coord_str_at(json_object_get(res, "priorPrescription"), "reference");
		dosage = json_array_get(json_object_get(res, "dosageInstruction"), 0);
		/* the course: the latest end of every dosage's bounds, if all have one */
		json_array_foreach(json_object_get(res, "dosageInstruction"), i, x) {
			int64_t e = end_of(coord_str_at(json_object_get(json_object_get(json_object_get(
				x, "timing"), "repeat"), "boundsPeriod"), "end"));

			if (!e) {
				it->course_end = 0;
				break;
			}
			if (e > it->course_end)
				it->course_end = e;
		}
		if (it->e.state == COORD_ST_ENDED) {
			ended = it->course_end ? it->course_end :
				end_of(coord_str_at(json_object_get(json_object_get(res, "dispenseRequest"),
							      "validityPeriod"), "end"));
		}
	} else {
		const char *ref = it->e.by ? it->e.by : "";
		const json_t *per = json_object_get(res, "effectivePeriod");

		if (!strncmp(ref, "Patient/", 8) || !strncmp(ref, "RelatedPerson/", 14))
			it->e.source = COORD_SRC_PATIENT;
		else if (!strncmp(ref, "Practitioner/", 13) || !strncmp(ref, "PractitionerRole/", 17))
			it->e.source = COORD_SRC_CLINICIAN;
		else if (!strncmp(ref, "Organization/", 13))
			it->e.source = COORD_SRC_ORGANIZATION;
		else if (coded(json_object_get(res, "category"),
			       "http://terminology.hl7.org/CodeSystem/medication-statement-category",
			       "patientspecified"))
			it->e.source = COORD_SRC_PATIENT;
		else
			it->e.source = COORD_SRC_UNSTATED;
		it->e.when = coord_str_at(res, "dateAsserted");
		if (!it->e.when)
			it->e.when = coord_str_at(res, "effectiveDateTime");
		if (!it->e.when)
			it->e.when = coord_str_at(per, "start");
		dosage = json_array_get(json_object_get(res, "dosage"), 0);
		it->course_end = end_of(coord_str_at(per, "end"));
		if (it->e.state == COORD_ST_ENDED) {
			ended = it->course_end ? it->course_end :
				end_of(coord_str_at(res, "effectiveDateTime"));
			if (!ended)
				ended = end_of(coord_str_at(res, "dateAsserted"));
		}
	}
	if (it->e.state == COORD_ST_ENDED) {
		/* no stated end, or one after careweave last heard of it: then */
		if (!ended || (in->updated && ended > in->updated))
			ended = in->updated ? in->updated : now;
		it->e.ended = day_of(a, ended);
		if (ended < since)
			it->listed = false;
	}
	it->e.dosage = coord_str_at(dosage, "text");
	dose_structured(a, dosage, &it->dose);
	if (!it->dose.have)
		dose_in_text(a, it->e.dosage, &it->dose);
	dose_in_text(a, it->e.words, &it->strength);
	freq_of(a, dosage, &it->freq);
	it->e.dose = it->dose.have ? it->dose.words : NULL;
	if (it->e.state != COORD_ST_ENDED && it->e.state != COORD_ST_UNKNOWN &&
	    it->course_end && it->course_end < now)
		it->e.flags |= COORD_FLAG_COURSE_ENDED;
	/* what it is */
	kb_map_medication(co->kb, cs, nc, text, &map);
	for (unsigned k = 0; k < map.n; k++)
		if (map.ref[k].kind == KB_REF_DRUG && it->ndrugs < KB_MAP_MAX)
			it->drugs[it->ndrugs++] = map.ref[k].id;
	if (map.status == KB_MAPPED && it->ndrugs) {
		char *key, *name;

		sort_drugs(co->kb, it->drugs, it->ndrugs);
		key = arena_strdup(a, "d:");
		name = NULL;
		for (unsigned k = 0; k < it->ndrugs && key; k++) {
			const struct kb_drug *dr = kb_drug_at(co->kb, it->drugs[k]);
			const char *nm = dr ? dr->name : "?";

			key = arena_printf(a, "%s%s%s", key, k ? "+" : "", nm);
			name = name ? arena_printf(a, "%s + %s", name, nm) : arena_strdup(a, nm);
		}
		it->key = key;
		it->name = name;
	} else {
		it->unchecked = true;
		it->ndrugs = 0; /* not compared with other groups by ingredient */
		it->key = text_key(a, it->e.words);
		it->name = it->e.words;
		it->e.flags |= COORD_FLAG_UNCHECKED;
	}
	if (!it->key || !it->name || (it->e.state == COORD_ST_ENDED && !it->e.ended))
		return CW_ENOMEM;
	return CW_OK;
}

/* ---- the rules over a group ------------------------------------------------- */

static bool
current(const struct coord_list_entry *e)
{
	return e->state == COORD_ST_ACTIVE || e->state == COORD_ST_ON_HOLD ||
	       e->state == COORD_ST_INTENDED;
}

static bool
same_reporter(const struct coord_list_entry *x, const struct coord_list_entry *y)
{
	return x->by && y->by && !strcmp(x->by, y->by);
}

static const char *
who(const struct coord_list_entry *e)
{
	return e->by_display ? e->by_display : e->by ? e->by : "no one named";
}

/* "MedicationRequest/x (Dr. A, 2025-03-05)" */
static const char *
cite(struct arena *a, const struct coord_list_entry *e)
{
	return e->when ? arena_printf(a, "%s (%s, %.10s)", e->ref, who(e), e->when) :
			 arena_printf(a, "%s (%s)", e->ref, who(e));
}

/* Sets flag on it and adds the explanation words, while there is room
 * (words is NULL when there is none: see WHY). false: no memory. */
static bool
why_add(struct arena *a, struct item *it, unsigned flag, const char *words)
{
	it->e.flags |= flag;
	if (it->nwhy >= WHY_MAX) {
		if (!it->more) {
			it->more = true;
			it->e.why = arena_printf(a, "%s; and more", it->e.why);
		}
		return it->e.why != NULL;
	}
	if (!words)
		return false;
	it->nwhy++;
	it->e.why = it->e.why ? arena_printf(a, "%s; %s", it->e.why, words) : words;
	return it->e.why != NULL;
}

/* The explanation is only formatted when it will be kept. */
#define WHY(a, it, flag, ...) \
	why_add((a), (it), (flag), (it)->nwhy < WHY_MAX ? arena_printf((a), __VA_ARGS__) : NULL)

/* Compares a current entry with the group's reference entry. */
static bool
compare_doses(struct arena *a, struct item *ref, struct item *it, const char **not_compared)
{
	if (dose_comparable(&ref->dose, &it->dose)) {
		if (!dose_same(&ref->dose, &it->dose) &&
		    (!WHY(a, it, COORD_FLAG_DOSE, "dose %s here, %s in %s", it->dose.words,
			  ref->dose.words, cite(a, &ref->e)) ||
		     !WHY(a, ref, COORD_FLAG_DOSE, "dose %s here, %s in %s", ref->dose.words,
			  it->dose.words, cite(a, &it->e))))
			return false;
	} else if (ref->dose.have && it->dose.have) {
		if (!*not_compared)
			*not_compared = arena_printf(a, "doses in different units not compared "
						     "(%s in %s, %s in %s)", ref->dose.words,
						     ref->e.ref, it->dose.words, it->e.ref);
	} else if (dose_comparable(&ref->strength, &it->strength)) {
		/* no dose on both: the strengths named are all there is */
		if (!dose_same(&ref->strength, &it->strength) &&
		    (!WHY(a, it, COORD_FLAG_DOSE, "strength %s here, %s in %s (no dose stated on both)",
			  it->strength.words, ref->strength.words, cite(a, &ref->e)) ||
		     !WHY(a, ref, COORD_FLAG_DOSE, "strength %s here, %s in %s (no dose stated on both)",
			  ref->strength.words, it->strength.words, cite(a, &it->e))))
			return false;
	} else if (!*not_compared) {
		*not_compared = arena_printf(a, "the dose of %s could not be compared with %s",
					     it->e.ref, ref->e.ref);
	}
	if (ref->freq.have && it->freq.have && !near(ref->freq.per_day, it->freq.per_day) &&
	    (!WHY(a, it, COORD_FLAG_DOSE, "taken %s here, %s in %s", it->freq.words,
		  ref->freq.words, cite(a, &ref->e)) ||
	     !WHY(a, ref, COORD_FLAG_DOSE, "taken %s here, %s in %s", ref->freq.words,
		  it->freq.words, cite(a, &it->e))))
		return false;
	return true;
}

static int
cmp_entries(const void *x, const void *y)
{
	const struct item *a = *(struct item *const *)x, *b = *(struct item *const *)y;
	int c;

	if (current(&a->e) != current(&b->e))
		return current(&a->e) ? -1 : 1;
	/* newest first; no date last */
	if (a->e.when && b->e.when && (c = strcmp(b->e.when, a->e.when)))
		return c;
	if (!a->e.when != !b->e.when)
		return a->e.when ? -1 : 1;
	return a->order < b->order ? -1 : a->order > b->order;
}

struct group_work {
	struct item **it;  /* listed entries, sorted */
	size_t n;
	bool prescribed;   /* by anyone, any time */
	const char *name;
	bool unchecked;
	unsigned drugs[KB_MAP_MAX];
	unsigned ndrugs;
	const char *not_compared;
};

static enum cw_err
group_rules(struct arena *a, struct group_work *g, unsigned recent_days)
{
	struct item *ref = NULL;
	size_t nrx = 0;

	(void)recent_days;
	for (size_t i = 0; i < g->n; i++) {
		struct item *it = g->it[i];

		if (it->e.flags & COORD_FLAG_COURSE_ENDED &&
		    !WHY(a, it, 0, "its course ended on %s but it is still %s",
			 day_of(a, it->course_end), it->e.status))
			return CW_ENOMEM;
		if (current(&it->e) && it->rx && (!ref || !ref->rx ||
		    (it->e.when && ref->e.when && strcmp(it->e.when, ref->e.when) > 0)))
			ref = it;
		else if (current(&it->e) && !ref)
			ref = it;
		nrx += current(&it->e) && it->e.state != COORD_ST_INTENDED && it->rx;
	}
	/* listed but never prescribed */
	if (!g->prescribed)
		for (size_t i = 0; i < g->n; i++)
			if (current(&g->it[i]->e) &&
			    !WHY(a, g->it[i], COORD_FLAG_NOT_PRESCRIBED,
				 "no prescription of it from anyone on record"))
				return CW_ENOMEM;
	/* stopped by one source, active in another */
	for (size_t i = 0; i < g->n; i++) {
		struct item *e = g->it[i], *same = NULL;
		bool other = false;

		if (e->e.state != COORD_ST_ENDED)
			continue;
		for (size_t k = 0; k < g->n; k++) {
			struct item *x = g->it[k];

			if (!current(&x->e))
				continue;
			if (same_reporter(&x->e, &e->e) || (x->prior && !strcmp(x->prior, e->e.ref)))
				same = same ? same : x;
			else
				other = true;
		}
		if (same) {
			if (!WHY(a, e, COORD_FLAG_SUPERSEDED, "replaced by %s", cite(a, &same->e)))
				return CW_ENOMEM;
			continue;
		}
		if (!other)
			continue;
		for (size_t k = 0; k < g->n; k++) {
			struct item *x = g->it[k];

			if (!current(&x->e))
				continue;
			if (!WHY(a, x, COORD_FLAG_STOPPED_ACTIVE, "%s ended it on %s (%s) but it is %s here",
				 who(&e->e), e->e.ended, e->e.ref, x->e.status) ||
			    !WHY(a, e, COORD_FLAG_STOPPED_ACTIVE, "%s here (%s), but still %s in %s",
				 e->e.status, e->e.ended, x->e.status, cite(a, &x->e)))
				return CW_ENOMEM;
		}
	}
	/* doses, against the newest current prescription (else the first current) */
	for (size_t i = 0; ref && i < g->n; i++) {
		struct item *it = g->it[i];

		if (it != ref && current(&it->e) && !compare_doses(a, ref, it, &g->not_compared))
			return CW_ENOMEM;
	}
	/* the same ingredient prescribed twice and current */
	if (nrx >= 2)
		for (size_t i = 0; i < g->n; i++) {
			struct item *it = g->it[i];
			const char *others = NULL;
			size_t cited = 0, more = 0;

			if (!current(&it->e) || it->e.state == COORD_ST_INTENDED || !it->rx)
				continue;
			for (size_t k = 0; it->nwhy < WHY_MAX && k < g->n; k++) {
				struct item *x = g->it[k];

				if (x == it || !current(&x->e) || x->e.state == COORD_ST_INTENDED || !x->rx)
					continue;
				if (cited++ == CITE_MAX) {
					more = nrx - 1 - CITE_MAX;
					break;
				}
				others = others ? arena_printf(a, "%s, %s", others, cite(a, &x->e)) :
						  cite(a, &x->e);
				if (!others)
					return CW_ENOMEM;
			}
			if (!WHY(a, it, COORD_FLAG_DUPLICATE, "also prescribed and current in %s%s",
				 others, more ? arena_printf(a, " and %zu more", more) : ""))
				return CW_ENOMEM;
		}
	return CW_OK;
}

/* An ingredient current in two groups (lisinopril alone, and in a
 * combination): each current prescription of both is a duplicate. */
static enum cw_err
cross_group_rules(const struct coord *co, struct arena *a, struct group_work *g, size_t ng)
{
	for (size_t i = 0; i < ng; i++)
		for (size_t j = 0; j < ng; j++) {
			unsigned shared = 0;
			bool found = false, rx_j = false;

			if (i == j)
				continue;
			for (unsigned x = 0; x < g[i].ndrugs && !found; x++)
				for (unsigned y = 0; y < g[j].ndrugs && !found; y++)
					if (g[i].drugs[x] == g[j].drugs[y]) {
						shared = g[i].drugs[x];
						found = true;
					}
			if (!found)
				continue;
			for (size_t k = 0; k < g[j].n; k++)
				rx_j |= current(&g[j].it[k]->e) && g[j].it[k]->rx;
			if (!rx_j)
				continue;
			for (size_t k = 0; k < g[i].n; k++) {
				struct item *it = g[i].it[k];
				const struct kb_drug *dr = kb_drug_at(co->kb, shared);

				if (!current(&it->e) || !it->rx)
					continue;
				if (!WHY(a, it, COORD_FLAG_DUPLICATE, "%s is also prescribed in %s",
					 dr ? dr->name : "?", g[j].name))
					return CW_ENOMEM;
			}
		}
	return CW_OK;
}

/* What a clinician reads first about a group: at most SUMMARY_ENTRIES
 * records told, then how many more. */
static const char *
summary_of(struct arena *a, const struct group_work *g, unsigned flags,
	   unsigned recent_days)
{
	struct sbuf sb = SBUF_INIT(SUMMARY_MAX);
	size_t ncur = 0, nend = 0, told = 0, left = 0;
	const char *out;

	for (size_t i = 0; i < g->n; i++) {
		if (current(&g->it[i]->e))
			ncur++;
		else if (g->it[i]->e.state == COORD_ST_ENDED)
			nend++;
	}
	sbuf_addf(&sb, "%s: %zu current, %zu stopped in the last %u days.", g->name,
		  ncur, nend, recent_days);
	for (size_t i = 0; i < g->n && i < SUMMARY_ENTRIES; i++) {
		const struct coord_list_entry *e = &g->it[i]->e;

		sbuf_addf(&sb, " %s%s%s%s: %s, %s%s by %s, %s%.10s.", e->words,
			  e->dose || e->dosage ? " (" : "",
			  e->dose ? e->dose : e->dosage ? e->dosage : "",
			  e->dose || e->dosage ? ")" : "", e->status,
			  coord_list_source_code(e->source),
			  e->reported ? " (recorded from a report)" : "", who(e),
			  e->when ? "on " : "no date", e->when ? e->when : "");
	}
	if (g->n > SUMMARY_ENTRIES)
		sbuf_addf(&sb, " And %zu more records.", g->n - SUMMARY_ENTRIES);
	if (g->unchecked)
		sbuf_adds(&sb, " careweave cannot identify it: grouped by its name, "
			  "not checked by ingredient.");
	if (flags & COORD_FLAG_DISCREPANCIES) {
		sbuf_adds(&sb, " To reconcile:");
		for (size_t i = 0; i < g->n; i++) {
			const struct coord_list_entry *e = &g->it[i]->e;

			if (!e->why || !(e->flags & COORD_FLAG_DISCREPANCIES))
				continue;
			if (told++ < SUMMARY_ENTRIES)
				sbuf_addf(&sb, " %s: %s.", e->ref, e->why);
			else
				left++;
		}
		if (left)
			sbuf_addf(&sb, " And %zu more records with discrepancies.", left);
	} else if (!g->unchecked) {
		sbuf_adds(&sb, " No discrepancy found.");
	}
	told = 0;
	for (size_t i = 0; i < g->n && told < SUMMARY_ENTRIES; i++) {
		const struct coord_list_entry *e = &g->it[i]->e;

		if (e->why && !(e->flags & COORD_FLAG_DISCREPANCIES)) {
			sbuf_addf(&sb, " Note: %s: %s.", e->ref, e->why);
			told++;
		}
	}
	if (g->not_compared)
		sbuf_addf(&sb, " Note: %s.", g->not_compared);
	/* a summary at its cap is cut, not refused */
	out = arena_strndup(a, sb.buf, sb.len);
	sbuf_release(&sb);
	return out;
}

static int
cmp_items(const void *x, const void *y)
{
	const struct item *a = x, *b = y;
	int c = strcmp(a->key, b->key);

	if (c)
		return c;
	return a->order < b->order ? -1 : a->order > b->order;
}

static int
cmp_groups(const void *x, const void *y)
{
	const struct group_work *a = x, *b = y;
	int c = strcasecmp(a->name, b->name);

	return c ? c : strcmp(a->name, b->name);
}

enum cw_err
coord_medication_list(const struct coord *co, struct arena *a,
		      const struct coord_list_input *in, size_t n, int64_t now,
		      unsigned recent_days, struct coord_list *out)
{
	int64_t since;
	struct item *items;
	struct group_work *g;
	size_t ng = 0, i, j;
	enum cw_err err;

	memset(out, 0, sizeof(*out));
	out->nconsidered = n;
	if (n > COORD_LIST_MAX)
		return CW_ETOOBIG;
	if (recent_days > COORD_LIST_RECENT_MAX)
		recent_days = COORD_LIST_RECENT_MAX;
	if (!n)
		return CW_OK;
	since = now - (int64_t)recent_days * TIME_DAY_MS;
	items = arena_zalloc(a, n * sizeof(*items));
	g = arena_zalloc(a, n * sizeof(*g));
	if (!items || !g)
		return CW_ENOMEM;
	for (i = 0; i < n; i++) {
		items[i].order = i;
		if ((err = item_fill(co, a, &in[i], now, since, &items[i])))
			return err;
	}
	qsort(items, n, sizeof(*items), cmp_items);
	for (i = 0; i < n; i = j) {
		struct group_work *w = &g[ng];
		size_t end = i;

		while (end < n && !strcmp(items[end].key, items[i].key))
			end++;
		if (!(w->it = arena_alloc(a, (end - i) * sizeof(*w->it))))
			return CW_ENOMEM;
		for (j = i; j < end; j++) {
			w->prescribed |= items[j].prescribed;
			if (!items[j].listed) {
				out->nold++;
				continue;
			}
			w->it[w->n++] = &items[j];
		}
		if (!w->n)
			continue;
		qsort(w->it, w->n, sizeof(*w->it), cmp_entries);
		w->name = w->it[0]->name;
		w->unchecked = w->it[0]->unchecked;
		w->ndrugs = w->it[0]->ndrugs;
		memcpy(w->drugs, w->it[0]->drugs, sizeof(w->drugs));
		if ((err = group_rules(a, w, recent_days)))
			return err;
		ng++;
	}
	if ((err = cross_group_rules(co, a, g, ng)))
		return err;
	qsort(g, ng, sizeof(*g), cmp_groups);
	out->g = arena_zalloc(a, (ng ? ng : 1) * sizeof(*out->g));
	if (!out->g)
		return CW_ENOMEM;
	for (i = 0; i < ng; i++) {
		struct coord_list_group *og = &out->g[i];

		og->name = g[i].name;
		og->unchecked = g[i].unchecked;
		og->n = g[i].n;
		if (!(og->e = arena_alloc(a, g[i].n * sizeof(*og->e))))
			return CW_ENOMEM;
		for (j = 0; j < g[i].n; j++) {
			og->e[j] = g[i].it[j]->e;
			og->flags |= og->e[j].flags;
		}
		if (!(og->summary = summary_of(a, &g[i], og->flags, recent_days)))
			return CW_ENOMEM;
	}
	out->ng = ng;
	return CW_OK;
}
