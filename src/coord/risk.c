/* coord/risk.c: readmission risk at discharge, the LACE index and the
 * HOSPITAL score (see coord.h; the rules are in src/coord/README.md).
 *
 * Two steps, as in medsafety.c: coord_risk_read reads the stay and the
 * patient's records in the caller's store transaction (the write path, a
 * discharge message), and coord_risk_compute scores what it is given and
 * reads nothing, so api/risk.c can hand it only what the caller may see.
 * The weights and bands are risk-scores.md's (van Walraven et al. 2010,
 * Donze et al. 2013); the comorbidity groups come from the kb
 * (comorbidity.tsv). A component the record does not state is "missing":
 * it counts no points, the total is then a lower bound and the assessment
 * says how high it could be; it is never a silent zero. */
#include <string.h>

#include "coord/coord_int.h"

/* LACE's E looks back 6 months, HOSPITAL's admissions 12: in days. */
#define LOOKBACK_ED_DAYS 183
#define LOOKBACK_ADM_DAYS 365
/* An emergency visit that ended at most this long before the admission
 * began (or overlaps it) is the one that led to it. */
#define ED_LEAD_MS (24 * 3600 * 1000LL)
#define LOINC_HB "718-7"
#define LOINC_NA "2951-2"
#define V3_ACT "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#define RISK_PROB "http://terminology.hl7.org/CodeSystem/risk-probability"

/* ---- reading what a record says ----------------------------------------- */

/* The start of a FHIR dateTime, or false. */
static bool
when_of(const char *s, int64_t *at)
{
	struct time_range tr;

	if (!s || time_parse(s, strlen(s), TIME_DATETIME, &tr))
		return false;
	*at = tr.lo;
	return true;
}

/* The day number of a dateTime's calendar date as written (its own time
 * zone: a stay from Monday evening to Tuesday morning is one day). */
static bool
day_of(const char *s, int64_t *day)
{
	int64_t at;

	if (!when_of(s, &at) || strlen(s) < 10)
		return false;
	*day = time_days_from_civil((s[0] - '0') * 1000 + (s[1] - '0') * 100 +
				    (s[2] - '0') * 10 + (s[3] - '0'),
				    (unsigned)((s[5] - '0') * 10 + (s[6] - '0')),
				    (unsigned)((s[8] - '0') * 10 + (s[9] - '0')));
	return true;
}

static const char *
class_of(const json_t *enc)
{
	return coord_str_at(json_object_get(enc, "class"), "code");
}

/* Inpatient: v3-ActCode IMP, ACUTE (inpatient acute), NONAC (inpatient
 * non-acute). Not coord_inpatient_class: that one also takes OBSENC, an
 * observation stay, which is followed up after discharge and counted by
 * the readmission measures (HEDIS PCR counts observation stays), but LACE
 * and HOSPITAL were derived on inpatient admissions and neither scores one
 * nor counts it as a previous admission. */
static bool
inpatient(const json_t *enc)
{
	const char *c = class_of(enc);

	return c && (!strcmp(c, "IMP") || !strcmp(c, "ACUTE") || !strcmp(c, "NONAC"));
}

static bool
emergency(const json_t *enc)
{
	const char *c = class_of(enc);

	return c && !strcmp(c, "EMER");
}

/* An encounter that happened: not planned, cancelled or entered in error. */
static bool
happened(const json_t *enc)
{
	const char *st = coord_str_at(enc, "status");

	return !st || (strcmp(st, "planned") && strcmp(st, "cancelled") &&
		       strcmp(st, "entered-in-error") && strcmp(st, "unknown"));
}

static bool
ref_is(const json_t *reference, const char *ref)
{
	const char *r = coord_str_at(reference, "reference");

	return r && !strcmp(r, ref);
}

/* Whether any coding of cc has system and one of the codes. */
static bool
coded(const json_t *cc, const char *system, const char *const *codes)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(cc, "coding"), i, c) {
		const char *s = coord_str_at(c, "system"), *k = coord_str_at(c, "code");

		if (!s || !k || strcmp(s, system))
			continue;
		for (size_t j = 0; codes[j]; j++)
			if (!strcmp(k, codes[j]))
				return true;
	}
	return false;
}

/* Whether cc's text or a coding's display has the words. */
static bool
says(const json_t *cc, const char *words)
{
	const char *t = coord_str_at(cc, "text");
	size_t i;
	json_t *c;

	if (t && strcasestr(t, words))
		return true;
	json_array_foreach(json_object_get(cc, "coding"), i, c) {
		const char *d = coord_str_at(c, "display");

		if (d && strcasestr(d, words))
			return true;
	}
	return false;
}

/* The words of a CodeableConcept: text, else a display, else a code. */
static const char *
words_of(const json_t *cc)
{
	const char *t = coord_str_at(cc, "text");
	json_t *c = json_array_get(json_object_get(cc, "coding"), 0);

	if (t && *t)
		return t;
	if (coord_str_at(c, "display"))
		return coord_str_at(c, "display");
	return coord_str_at(c, "code") ? coord_str_at(c, "code") : "?";
}

/* ---- one component ---------------------------------------------------------- */

struct scoring {
	const struct coord *co;
	struct arena *a;
	const struct coord_risk_input *in;
	const char *patient;
	int64_t start, end;       /* the stay, ms; end: discharge or now */
	int64_t start_day, end_day;
	bool open;                /* no discharge yet */
	bool oom;
};

/* Whether res is about the patient scored (its subject, or an
 * Encounter's): records the caller passed of another are ignored. */
static bool
about(const struct scoring *s, const json_t *res)
{
	return ref_is(json_object_get(res, "subject"), s->patient);
}

static struct coord_risk_component *
component(struct coord_risk *r, const char *code, const char *name, unsigned max)
{
	struct coord_risk_component *c = &r->c[r->nc++];

	memset(c, 0, sizeof(*c));
	c->code = code;
	c->name = name;
	c->max = max;
	return c;
}

static void
cite(struct scoring *s, struct coord_risk_component *c, const char *ref)
{
	for (size_t i = 0; i < c->nrefs; i++)
		if (!strcmp(c->refs[i], ref))
			return;
	c->nfound++;
	if (c->nrefs == COORD_RISK_REFS_MAX)
		return;
	if (!c->refs && !(c->refs = arena_alloc(s->a, COORD_RISK_REFS_MAX * sizeof(*c->refs)))) {
		s->oom = true;
		return;
	}
	c->refs[c->nrefs++] = ref;
}

static void
missing(struct coord_risk_component *c, const char *looked_for)
{
	c->missing = true;
	c->points = 0;
	c->value = looked_for;
}

/* ---- length of stay ----------------------------------------------------- */

static unsigned
lace_l_points(int64_t days)
{
	return days < 1 ? 0 : days <= 3 ? (unsigned)days : days <= 6 ? 4 : days <= 13 ? 5 : 7;
}

/* The stay in calendar days, or -1 when the record does not say. */
static int64_t
stay_days(const struct scoring *s)
{
	return s->open || s->end_day < s->start_day ? -1 : s->end_day - s->start_day;
}

static void
length_of_stay(struct scoring *s, struct coord_risk *r, bool lace)
{
	struct coord_risk_component *c = lace ? component(r, "L", "length of stay", 7) :
					       component(r, "LOS", "length of stay 5 days or more", 2);
	const json_t *period = json_object_get(s->in->encounter, "period");
	int64_t days = stay_days(s);

	cite(s, c, s->in->encounter_ref);
	if (days < 0) {
		missing(c, s->open ? "Encounter.period.end (the discharge): the stay is still open" :
				     "a discharge after the admission (Encounter.period.end is "
				     "before its start)");
		return;
	}
	c->points = lace ? lace_l_points(days) : days >= 5 ? 2 : 0;
	c->value = arena_printf(s->a, "%lld day%s (%.10s to %.10s)", (long long)days,
				days == 1 ? "" : "s", coord_str_at(period, "start"),
				coord_str_at(period, "end"));
}

/* ---- acute admission -------------------------------------------------------- */

/* Whether the admission was acute (emergent or urgent), and from what:
 * Encounter.priority when it says, else hospitalization.admitSource "emd" (from the
 * emergency department), else an emergency encounter of the patient that
 * ended at most ED_LEAD_MS before the admission began (*ed: its index in
 * in->encounters, also when priority decided). 1 acute, 0 elective, -1
 * the record does not say. */
static int
acute(struct scoring *s, const char **why, const char **from, int *ed)
{
	/* v3-ActPriority: emergency, urgent, stat, ASAP; elective, routine,
	 * preop (planned surgery). The rest (callbacks, timing critical, as
	 * needed, ...) say nothing of how the patient came in. */
	static const char *const emergent[] = {"EM", "UR", "S", "A", NULL};
	static const char *const elective[] = {"EL", "R", "P", NULL};
	static const char *const emd[] = {"emd", NULL};
	const json_t *enc = s->in->encounter, *pri = json_object_get(enc, "priority");
	const json_t *src = json_object_get(json_object_get(enc, "hospitalization"), "admitSource");
	int64_t best = INT64_MIN;

	*ed = -1;
	for (size_t i = 0; i < s->in->nencounters; i++) {
		const json_t *e = s->in->encounters[i].res;
		const json_t *p = json_object_get(e, "period");
		int64_t st, en;

		if (!emergency(e) || !happened(e) || !about(s, e) || !when_of(coord_str_at(p, "start"), &st) ||
		    st > s->start)
			continue;
		if (!when_of(coord_str_at(p, "end"), &en))
			en = st;
		if (en + ED_LEAD_MS < s->start || st <= best)
			continue;
		best = st;
		*ed = (int)i;
	}
	*from = s->in->encounter_ref;
	if (pri && coded(pri, "http://terminology.hl7.org/CodeSystem/v3-ActPriority", emergent)) {
		*why = arena_printf(s->a, "Encounter.priority %s", words_of(pri));
		return 1;
	}
	if (pri && coded(pri, "http://terminology.hl7.org/CodeSystem/v3-ActPriority", elective)) {
		*why = arena_printf(s->a, "Encounter.priority %s", words_of(pri));
		return 0;
	}
	if (src && coded(src, "http://terminology.hl7.org/CodeSystem/admit-source", emd)) {
		*why = "admitted from the emergency department (hospitalization.admitSource emd)";
		return 1;
	}
	if (*ed >= 0) {
		*from = s->in->encounters[*ed].ref;
		*why = arena_printf(s->a, "admitted from an emergency visit (%s)", *from);
		return 1;
	}
	return -1;
}

static void
acute_component(struct scoring *s, struct coord_risk *r, bool lace)
{
	struct coord_risk_component *c = lace ?
		component(r, "A", "acute (emergent) admission", 3) :
		component(r, "I", "urgent or emergent index admission", 1);
	const char *why = NULL, *from = NULL;
	int ed, v = acute(s, &why, &from, &ed);

	cite(s, c, s->in->encounter_ref);
	if (v < 0) {
		missing(c, "whether the admission was elective or acute: Encounter.priority, "
			   "hospitalization.admitSource, or an emergency visit (class EMER) "
			   "ending within 24 hours before the admission");
		return;
	}
	if (from)
		cite(s, c, from);
	c->points = v ? (lace ? 3 : 1) : 0;
	c->value = arena_printf(s->a, "%s: %s", v ? "acute" : "elective", why);
}

/* ---- comorbidity ------------------------------------------------------------ */

/* Whether a condition counts: not refuted or entered in error. */
static bool
condition_counts(const json_t *res)
{
	static const char *const no[] = {"refuted", "entered-in-error", NULL};

	return !coded(json_object_get(res, "verificationStatus"),
		      "http://terminology.hl7.org/CodeSystem/condition-ver-status", no);
}

/* When a condition was known: its onset, else recordedDate; false when
 * neither says (it is then counted). Not meta.lastUpdated: a history
 * imported after the discharge would count for nothing. */
static bool
condition_at(const json_t *res, int64_t *at)
{
	return when_of(coord_str_at(res, "onsetDateTime"), at) ||
	       when_of(coord_str_at(json_object_get(res, "onsetPeriod"), "start"), at) ||
	       when_of(coord_str_at(res, "recordedDate"), at);
}

#define CGROUPS_MAX 64

static void
comorbidity(struct scoring *s, struct coord_risk *r)
{
	struct coord_risk_component *c = component(r, "C", "comorbidity (Charlson-based)", 5);
	const struct kb *kb = s->co->kb;
	const char *from[CGROUPS_MAX] = {0}, *words = NULL;
	struct kb_counts kc;
	unsigned lace = 0, charlson = 0, looked = 0, uncoded = 0;
	bool have[CGROUPS_MAX] = {0};

	kb_count(kb, &kc);
	for (size_t i = 0; i < s->in->nconditions; i++) {
		const json_t *res = s->in->conditions[i].res;
		const json_t *code = json_object_get(res, "code");
		const struct kb_comorbid *m = NULL;
		bool any = false;
		int64_t at;
		size_t k;
		json_t *cd;

		if (!about(s, res) || !condition_counts(res) || (condition_at(res, &at) && at > s->end))
			continue;
		looked++;
		json_array_foreach(json_object_get(code, "coding"), k, cd) {
			const char *sys = coord_str_at(cd, "system");

			if (sys && (!strcmp(sys, KB_SNOMED) || !strcmp(sys, KB_ICD10CM) ||
				    !strcmp(sys, KB_ICD10)))
				any = true;
			if (!m)
				m = kb_comorbidity(kb, sys, coord_str_at(cd, "code"));
		}
		uncoded += !any;
		if (!m || m->group >= CGROUPS_MAX)
			continue;
		if (!have[m->group])
			from[m->group] = s->in->conditions[i].ref;
		have[m->group] = true;
		cite(s, c, s->in->conditions[i].ref);
	}
	/* the worse of a pair replaces the milder (one step: kb checks it) */
	for (size_t g = 0; g < kc.comorbidity_groups && g < CGROUPS_MAX; g++) {
		int sup = kb_cgroup_at(kb, (unsigned)g)->supersedes;

		if (have[g] && sup >= 0 && sup < CGROUPS_MAX && have[sup]) {
			have[sup] = false;
			words = arena_printf(s->a, "%s%s%s superseded by %s", words ? words : "",
					     words ? "; " : "", kb_cgroup_at(kb, (unsigned)sup)->name,
					     kb_cgroup_at(kb, (unsigned)g)->name);
		}
	}
	/* LACE: the groups of one item (mild liver, mild renal) count once */
	for (size_t g = 0; g < kc.comorbidity_groups && g < CGROUPS_MAX; g++) {
		const struct kb_cgroup *cg = kb_cgroup_at(kb, (unsigned)g);
		unsigned w = cg->lace;
		bool first = true;

		if (!have[g])
			continue;
		charlson += cg->charlson;
		for (size_t h = 0; h < kc.comorbidity_groups && h < CGROUPS_MAX; h++) {
			const struct kb_cgroup *o = kb_cgroup_at(kb, (unsigned)h);

			if (h == g || !have[h] || strcmp(o->lace_item, cg->lace_item))
				continue;
			if (o->lace > w || (o->lace == w && h < g))
				first = false;
		}
		if (first)
			lace += w;
		c->value = arena_printf(s->a, "%s%s%s (%u%s, %s)", c->value ? c->value : "",
					c->value ? ", " : "", cg->name, w,
					first ? "" : ", counted once with its LACE item", from[g]);
	}
	if (s->in->nconditions == 0) {
		missing(c, "the patient's conditions: no Condition is recorded");
		return;
	}
	c->points = lace >= 4 ? 5 : lace;
	c->value = arena_printf(s->a, "%s: LACE comorbidity weights %u, Charlson index %u, "
				"from %u condition%s recorded before discharge%s%s%s",
				c->value ? c->value : "no condition in a comorbidity group",
				lace, charlson, looked, looked == 1 ? "" : "s",
				words ? "; " : "", words ? words : "",
				uncoded ? arena_printf(s->a, "; %u without an ICD-10 or SNOMED CT "
						       "code, not counted", uncoded) : "");
}

/* ---- emergency visits and admissions before ----------------------------------- */

static void
visits_before(struct scoring *s, struct coord_risk *r, bool lace)
{
	struct coord_risk_component *c = lace ?
		component(r, "E", "emergency department visits in the 6 months before", 4) :
		component(r, "A12", "hospital admissions in the previous 12 months", 5);
	int64_t since = s->start - (int64_t)(lace ? LOOKBACK_ED_DAYS : LOOKBACK_ADM_DAYS) * TIME_DAY_MS;
	const char *why = NULL, *from = NULL;
	int ed = -1;
	unsigned n = 0;

	if (lace)
		(void)acute(s, &why, &from, &ed);
	for (size_t i = 0; i < s->in->nencounters; i++) {
		const json_t *e = s->in->encounters[i].res;
		int64_t st;

		if (!strcmp(s->in->encounters[i].ref, s->in->encounter_ref) || !happened(e) ||
		    !about(s, e) ||
		    (int)i == ed || !(lace ? emergency(e) : inpatient(e)) ||
		    !when_of(coord_str_at(json_object_get(e, "period"), "start"), &st) ||
		    st < since || st >= s->start)
			continue;
		n++;
		cite(s, c, s->in->encounters[i].ref);
	}
	if (lace)
		c->points = n >= 4 ? 4 : n;
	else
		c->points = n <= 1 ? 0 : n <= 5 ? 2 : 5;
	c->value = arena_printf(s->a, "%u %s in the %s before the admission%s (%zu encounter%s "
				"of the patient looked at)", n,
				lace ? (n == 1 ? "emergency visit" : "emergency visits") :
				       (n == 1 ? "inpatient admission" : "inpatient admissions"),
				lace ? "183 days" : "365 days",
				lace && ed >= 0 ? arena_printf(s->a, ", not counting %s that led "
							       "to it", s->in->encounters[ed].ref) : "",
				s->in->nencounters, s->in->nencounters == 1 ? "" : "s");
}

/* ---- laboratory values at discharge --------------------------------------------- */

static bool
resulted(const json_t *res)
{
	const char *st = coord_str_at(res, "status");

	return st && (!strcmp(st, "final") || !strcmp(st, "amended") ||
		      !strcmp(st, "corrected") || !strcmp(st, "preliminary"));
}

/* When a result was taken (*day: that time as written): effective[x], a
 * period's start, else issued. */
static bool
taken_at(const json_t *res, int64_t *at, const char **day)
{
	const char *t[4] = {coord_str_at(res, "effectiveDateTime"),
			    coord_str_at(res, "effectiveInstant"),
			    coord_str_at(json_object_get(res, "effectivePeriod"), "start"),
			    coord_str_at(res, "issued")};

	for (size_t i = 0; i < 4; i++) {
		if (when_of(t[i], at)) {
			*day = t[i];
			return true;
		}
	}
	return false;
}

/* The value in the unit the score is stated in: haemoglobin g/dL (g/L
 * divided by 10), sodium mmol/L (mEq/L is the same for Na+). */
static bool
in_unit(const json_t *q, bool hb, double *v)
{
	const char *code = coord_str_at(q, "code"), *unit = coord_str_at(q, "unit");
	const char *u = code ? code : unit;
	double x;

	if (!u || !fhir_number(json_object_get(q, "value"), &x, NULL) ||
	    coord_str_at(q, "comparator"))
		return false;
	if (hb && (!strcmp(u, "g/dL") || !strcmp(u, "g/dl")))
		*v = x;
	else if (hb && (!strcmp(u, "g/L") || !strcmp(u, "g/l")))
		*v = x / 10;
	else if (!hb && (!strcmp(u, "mmol/L") || !strcmp(u, "mmol/l") || !strcmp(u, "meq/L") ||
			 !strcmp(u, "mEq/L")))
		*v = x;
	else
		return false;
	return true;
}

static void
lab_component(struct scoring *s, struct coord_risk *r, bool hb)
{
	static const char *const hbc[] = {LOINC_HB, NULL}, *const nac[] = {LOINC_NA, NULL};
	struct coord_risk_component *c = hb ?
		component(r, "H", "haemoglobin < 12 g/dL at discharge", 1) :
		component(r, "S", "sodium < 135 mmol/L at discharge", 1);
	const char *best = NULL, *best_day = NULL, *odd = NULL;
	int64_t best_at = INT64_MIN;
	double best_v = 0;

	for (size_t i = 0; i < s->in->nobservations; i++) {
		const json_t *res = s->in->observations[i].res;
		const char *day;
		int64_t at;
		double v;

		if (!about(s, res) || !coded(json_object_get(res, "code"), KB_LOINC, hb ? hbc : nac) ||
		    !resulted(res) || !taken_at(res, &at, &day) || at < s->start || at > s->end ||
		    at <= best_at)
			continue;
		if (!in_unit(json_object_get(res, "valueQuantity"), hb, &v)) {
			odd = s->in->observations[i].ref;
			continue;
		}
		best_at = at;
		best_v = v;
		best = s->in->observations[i].ref;
		best_day = day;
	}
	if (!best) {
		missing(c, arena_printf(s->a, "a %s result (LOINC %s, final, with a value in %s) "
					"taken during the stay%s%s", hb ? "haemoglobin" : "sodium",
					hb ? LOINC_HB : LOINC_NA, hb ? "g/dL or g/L" : "mmol/L",
					odd ? "; not read: " : "", odd ? odd : ""));
		return;
	}
	cite(s, c, best);
	c->points = hb ? best_v < 12.0 : best_v < 135.0;
	c->value = arena_printf(s->a, "the last during the stay: %g %s (%.10s)", best_v,
				hb ? "g/dL" : "mmol/L", best_day);
}

/* ---- oncology service, procedures ------------------------------------------------ */

/* What counts as oncology: Encounter.serviceType whose words say oncology
 * (medical, radiation, haematology-oncology) or SNOMED CT 394593009
 * medical oncology, 394592004 clinical oncology. */
static void
oncology(struct scoring *s, struct coord_risk *r)
{
	static const char *const onc[] = {"394593009", "394592004", NULL};
	struct coord_risk_component *c = component(r, "O", "discharge from an oncology service", 2);
	const json_t *st = json_object_get(s->in->encounter, "serviceType");

	cite(s, c, s->in->encounter_ref);
	if (!st) {
		missing(c, "the service discharging the patient: Encounter.serviceType is not "
			   "recorded");
		return;
	}
	c->points = says(st, "oncolog") || coded(st, KB_SNOMED, onc) ? 2 : 0;
	c->value = arena_printf(s->a, "service: %s", words_of(st));
}

static bool
performed_at(const json_t *res, int64_t *at)
{
	return when_of(coord_str_at(res, "performedDateTime"), at) ||
	       when_of(coord_str_at(json_object_get(res, "performedPeriod"), "start"), at);
}

static void
procedures(struct scoring *s, struct coord_risk *r)
{
	struct coord_risk_component *c = component(r, "P", "procedure during the stay", 1);

	for (size_t i = 0; i < s->in->nprocedures; i++) {
		const json_t *res = s->in->procedures[i].res;
		const char *st = coord_str_at(res, "status");
		int64_t at;

		if (!about(s, res) || (st && strcmp(st, "completed") && strcmp(st, "in-progress")))
			continue;
		if (!ref_is(json_object_get(res, "encounter"), s->in->encounter_ref) &&
		    (!performed_at(res, &at) || at < s->start || at > s->end))
			continue;
		cite(s, c, s->in->procedures[i].ref);
	}
	c->points = c->nfound ? 1 : 0;
	c->value = c->nfound ?
		arena_printf(s->a, "%zu procedure%s", c->nfound, c->nfound == 1 ? "" : "s") :
		"no procedure recorded during the stay (completed or in progress, of this "
		"encounter or performed between admission and discharge)";
}

/* ---- totals, bands ----------------------------------------------------------------- */

static const char *
lace_band(unsigned t)
{
	return t <= 4 ? "low" : t <= 9 ? "moderate" : "high";
}

static const char *
hospital_band(unsigned t)
{
	return t <= 4 ? "low" : t <= 6 ? "intermediate" : "high";
}

static void
finish(struct scoring *s, struct coord_risk *r)
{
	bool lace = r->score == COORD_RISK_LACE;

	r->total = r->highest = 0;
	for (size_t i = 0; i < r->nc; i++) {
		struct coord_risk_component *c = &r->c[i];

		r->total += c->points;
		r->highest += c->missing ? c->max : c->points;
		if (c->missing) {
			r->lower_bound = true;
			r->missing = arena_printf(s->a, "%s%s%s", r->missing ? r->missing : "",
						  r->missing ? ", " : "", c->name);
		}
		for (size_t k = 0; k < c->nrefs; k++) {
			bool dup = false;

			for (size_t j = 0; j < r->nbasis && !dup; j++)
				dup = !strcmp(r->basis[j], c->refs[k]);
			if (dup)
				continue;
			if (!r->basis && !(r->basis = arena_alloc(s->a, 8 * COORD_RISK_REFS_MAX *
								     sizeof(*r->basis)))) {
				s->oom = true;
				return;
			}
			if (r->nbasis < 8 * COORD_RISK_REFS_MAX)
				r->basis[r->nbasis++] = c->refs[k];
		}
	}
	if (r->highest > r->max)
		r->highest = r->max;
	r->band = lace ? lace_band(r->total) : hospital_band(r->total);
	r->band_highest = lace ? lace_band(r->highest) : hospital_band(r->highest);
	/* R4's risk-probability has no "intermediate": moderate, its words in the text */
	r->risk_code = lace ? r->band : r->total <= 4 ? "low" : r->total <= 6 ? "moderate" : "high";
	if (!lace) {
		r->has_probability = true;
		r->probability = r->total <= 4 ? 0.058 : r->total <= 6 ? 0.119 : 0.228;
	}
	if (!r->lower_bound)
		r->summary = arena_printf(s->a, "%s %u of %u: %s risk", r->method_display,
					  r->total, r->max, r->band);
	else
		r->summary = arena_printf(s->a, "%s at least %u of %u (%s risk%s; up to %u with "
					  "what is missing: %s)", r->method_display, r->total,
					  r->max, r->band, strcmp(r->band, r->band_highest) ?
					  arena_printf(s->a, " or higher, up to %s", r->band_highest) :
					  " whatever is missing", r->highest, r->missing);
	r->incomplete = s->in->incomplete;
	if (!r->summary)
		s->oom = true;
}

enum cw_err
coord_risk_compute(const struct coord *co, struct arena *a,
		   const struct coord_risk_input *in, struct coord_risk *lace,
		   struct coord_risk *hospital, struct diag *d)
{
	struct scoring s = {.co = co, .a = a, .in = in};
	const json_t *enc = in->encounter, *period = json_object_get(enc, "period");
	const char *start = coord_str_at(period, "start"), *end = coord_str_at(period, "end");

	memset(lace, 0, sizeof(*lace));
	memset(hospital, 0, sizeof(*hospital));
	s.patient = coord_str_at(json_object_get(enc, "subject"), "reference");
	if (!s.patient || strncmp(s.patient, "Patient/", 8) || !s.patient[8])
		return diag_err(d, CW_EINVALID, "processing", "Encounter.subject",
				"%s has no Patient as its subject: there is no record to "
				"score", in->encounter_ref);
	if (!inpatient(enc))
		return diag_err(d, CW_EINVALID, "processing", "Encounter.class",
				"%s is not an inpatient stay (class %s; IMP, ACUTE or NONAC "
				"expected): LACE and HOSPITAL score discharges from hospital",
				in->encounter_ref, class_of(enc) ? class_of(enc) : "not given");
	if (!when_of(start, &s.start) || !day_of(start, &s.start_day))
		return diag_err(d, CW_EINVALID, "processing", "Encounter.period.start",
				"%s has no admission date (period.start, at least a full "
				"date): the stay cannot be placed in time", in->encounter_ref);
	if (end && strlen(end) >= 10 && day_of(end, &s.end_day)) {
		struct time_range tr;

		time_parse(end, strlen(end), TIME_DATETIME, &tr);
		s.end = tr.hi;
	} else {
		s.open = true;
		s.end = time_now_ms();
		s.end_day = s.start_day;
	}
	*lace = (struct coord_risk){.score = COORD_RISK_LACE, .method_code = "lace",
				    .method_display = "LACE index", .max = 19,
				    .outcome = "30-day readmission or death",
				    .patient = s.patient, .encounter = in->encounter_ref};
	*hospital = (struct coord_risk){.score = COORD_RISK_HOSPITAL,
					.method_code = "hospital",
					.method_display = "HOSPITAL score", .max = 13,
					.outcome = "potentially avoidable 30-day readmission",
					.patient = s.patient, .encounter = in->encounter_ref};
	length_of_stay(&s, lace, true);
	acute_component(&s, lace, true);
	comorbidity(&s, lace);
	visits_before(&s, lace, true);
	lab_component(&s, hospital, true);
	oncology(&s, hospital);
	lab_component(&s, hospital, false);
	procedures(&s, hospital);
	acute_component(&s, hospital, false);
	visits_before(&s, hospital, false);
	length_of_stay(&s, hospital, false);
	finish(&s, lace);
	finish(&s, hospital);
	for (size_t i = 0; i < lace->nc; i++)
		s.oom |= !lace->c[i].value;
	for (size_t i = 0; i < hospital->nc; i++)
		s.oom |= !hospital->c[i].value;
	return s.oom ? CW_ENOMEM : CW_OK;
}

/* ---- reading the record in a transaction ------------------------------------------- */

static enum cw_err
read_kind(struct store_tx *tx, struct arena *a, const char *type,
	  const char *const *q, size_t npairs, const char *patient,
	  const struct coord_risk_record **out, size_t *nout, bool *cut,
	  struct diag *d)
{
	struct coord_risk_record *v;
	const char **ids;
	size_t n;
	enum cw_err err;

	*out = NULL;
	*nout = 0;
	if ((err = coord_match(tx, a, type, q, npairs, COORD_RISK_RECORDS_MAX, &ids, &n, d)))
		return err;
	if (n == COORD_RISK_RECORDS_MAX) {
		*cut = true;
		log_warn("coord: %s has %zu or more %ss; the risk scores read the first",
			 patient, n, type);
	}
	if (!(v = arena_alloc(a, (n + 1) * sizeof(*v))))
		return CW_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_t *res = coord_read_json(tx, a, type, ids[i], d);

		if (!res)
			continue;
		v[*nout].ref = arena_printf(a, "%s/%s", type, ids[i]);
		v[*nout].res = res;
		if (!v[*nout].ref)
			return CW_ENOMEM;
		(*nout)++;
	}
	*out = v;
	return CW_OK;
}

enum cw_err
coord_risk_read(struct coord *co, struct store_tx *tx, struct arena *a,
		const char *encounter_id, struct coord_risk_input *in, struct diag *d)
{
	const char *codes = KB_LOINC "|" LOINC_HB "," KB_LOINC "|" LOINC_NA;
	const char *patient;
	struct store_res r;
	bool cut = false;
	enum cw_err err;

	memset(in, 0, sizeof(*in));
	if ((err = store_tx_read(tx, a, "Encounter", encounter_id, &r)))
		return diag_err(d, err, err == CW_EGONE ? "deleted" : "not-found", NULL,
				"Encounter/%s is %s", encounter_id,
				err == CW_EGONE ? "deleted" : "not known");
	if (!(in->encounter = coord_read_json(tx, a, "Encounter", encounter_id, d)) ||
	    !(in->encounter_ref = arena_printf(a, "Encounter/%s", encounter_id)))
		return CW_ENOMEM;
	patient = coord_str_at(json_object_get(in->encounter, "subject"), "reference");
	if (!patient || strncmp(patient, "Patient/", 8) || !patient[8])
		return CW_OK; /* coord_risk_compute says why */
	{
		const char *qe[] = {"patient", patient};
		const char *qo[] = {"patient", patient, "code", codes};

		if ((err = read_kind(tx, a, "Encounter", qe, 1, patient, &in->encounters,
				     &in->nencounters, &cut, d)) ||
		    (err = read_kind(tx, a, "Condition", qe, 1, patient, &in->conditions,
				     &in->nconditions, &cut, d)) ||
		    (err = read_kind(tx, a, "Observation", qo, 2, patient, &in->observations,
				     &in->nobservations, &cut, d)) ||
		    (err = read_kind(tx, a, "Procedure", qe, 1, patient, &in->procedures,
				     &in->nprocedures, &cut, d)))
			return err;
	}
	if (cut)
		in->incomplete = "the patient has more records than careweave reads for one "
				 "score (5,000 of each kind): the scores are of the first";
	(void)co;
	return CW_OK;
}

/* ---- the RiskAssessment ------------------------------------------------------------ */

static bool
push(json_t *arr, json_t *v)
{
	return v && !json_array_append_new(arr, v);
}

static const char *
risk_display(const char *code)
{
	return !strcmp(code, "low") ? "Low likelihood" :
	       !strcmp(code, "moderate") ? "Moderate likelihood" : "High likelihood";
}

/* "L (length of stay): 4 points of 7: 5 days (...). From Encounter/x." */
static json_t *
component_note(const struct coord_risk_component *c)
{
	struct sbuf sb = SBUF_INIT(64 * 1024);
	json_t *n = NULL;

	if (c->missing)
		sbuf_addf(&sb, "%s (%s): missing, no points counted (up to %u): looked for %s.",
			  c->code, c->name, c->max, c->value);
	else
		sbuf_addf(&sb, "%s (%s): %u point%s of %u: %s.", c->code, c->name, c->points,
			  c->points == 1 ? "" : "s", c->max, c->value);
	for (size_t i = 0; i < c->nrefs; i++)
		sbuf_addf(&sb, "%s%s", i ? ", " : " From ", c->refs[i]);
	if (c->nfound > c->nrefs)
		sbuf_addf(&sb, " and %zu more", c->nfound - c->nrefs);
	if (c->nrefs)
		sbuf_addch(&sb, '.');
	if (!sb.toobig)
		n = json_pack("{s:s%}", "text", sb.buf, sb.len);
	sbuf_release(&sb);
	return n;
}

json_t *
coord_risk_assessment(const struct coord_risk *r, const char *when)
{
	json_t *ra, *basis = json_array(), *notes = json_array(), *pred;
	bool ok = basis && notes;
	char band_text[2048];

	for (size_t i = 0; ok && i < r->nbasis; i++)
		ok = push(basis, json_pack("{s:s}", "reference", r->basis[i]));
	for (size_t i = 0; ok && i < r->nc; i++)
		ok = push(notes, component_note(&r->c[i]));
	if (ok && r->lower_bound)
		ok = push(notes, json_pack("{s:s+}", "text", "Missing: ", r->missing));
	if (ok && r->incomplete)
		ok = push(notes, json_pack("{s:s+}", "text", "Incomplete record: ", r->incomplete));
	if (r->score == COORD_RISK_LACE)
		snprintf(band_text, sizeof(band_text), "%s (LACE bands: 0-4 low, 5-9 moderate, "
			 "10 or more high)", r->summary);
	else
		snprintf(band_text, sizeof(band_text), "%s (HOSPITAL bands: 0-4 low, 5-6 "
			 "intermediate, 7 or more high)", r->summary);
	pred = ok ? json_pack("{s:{s:s}, s:{s:[{s:s, s:s, s:s}], s:s}, s:{s:{s:i, s:s, s:s, "
			      "s:s}}, s:s}",
			      "outcome", "text", r->outcome,
			      "qualitativeRisk", "coding", "system", RISK_PROB, "code",
			      r->risk_code, "display", risk_display(r->risk_code), "text", band_text,
			      "whenRange", "high", "value", 30, "unit", "days", "system",
			      "http://unitsofmeasure.org", "code", "d",
			      "rationale", r->summary) : NULL;
	if (pred && r->has_probability)
		ok = !json_object_set_new(pred, "probabilityDecimal", json_real(r->probability));
	if (!pred || !ok) {
		json_decref(pred);
		json_decref(basis);
		json_decref(notes);
		return NULL;
	}
	ra = json_pack("{s:s, s:s, s:{s:[{s:s, s:s, s:s}], s:s}, s:{s:s}, s:{s:s}, s:s, s:[o]}",
		       "resourceType", "RiskAssessment", "status", "final",
		       "method", "coding", "system", COORD_RISK_SYSTEM, "code", r->method_code,
		       "display", r->method_display, "text", r->method_display,
		       "subject", "reference", r->patient,
		       "encounter", "reference", r->encounter,
		       "occurrenceDateTime", when, "prediction", pred);
	if (ra && json_array_size(basis) && json_object_set(ra, "basis", basis))
		ok = false;
	if (ra && ok && json_object_set(ra, "note", notes))
		ok = false;
	json_decref(basis);
	json_decref(notes);
	if (!ra || !ok) {
		json_decref(ra);
		return NULL;
	}
	return ra;
}
