/* coord/labs.c: duplicate laboratory tests (see coord.h for what they say).
 *
 * A ServiceRequest for a lab test is compared with what the patient's
 * record already holds of the same test, of a panel containing it and of
 * the members of the ordered panel (kb_lab_in_panel, kb_lab_members): the
 * results (Observation, DiagnosticReport: one search each, by every LOINC
 * code of those tests at once) and the other pending orders. A result
 * counts when it was taken within the minimum retest interval before the
 * order's authoredOn (the order's own time, not the wall clock: a record
 * gives the same findings whenever it is checked; no authoredOn: now); a
 * pending order when the two orders are that close. The interval is the
 * shortest the kb knows for the test the two have in common (the ordered
 * test, or the member of the ordered panel), since careweave does not know
 * which situation the patient is in: the shortest alerts least wrongly.
 *
 * Everything is read inside the caller's store transaction, as in
 * medsafety.c; nothing is written here. At most LAB_RESULTS_MAX results of
 * each type and LAB_ORDERS_MAX orders are read; per related test only the
 * most recent result is reported (the one to reuse). */
#include <string.h>

#include "coord/coord_int.h"

#define LAB_RESULTS_MAX 200
#define LAB_ORDERS_MAX 200
#define LAB_RETEST_MAX 16
#define SCT "http://snomed.info/sct"

bool
coord_lab_current(const json_t *res)
{
	const char *st = coord_str_at(res, "status");

	return st && (!strcmp(st, "active") || !strcmp(st, "on-hold") ||
		      !strcmp(st, "draft"));
}

/* ---- which test ----------------------------------------------------------- */

/* The lab test a code names: a LOINC coding by its code, else a coding's
 * display or the text by name. -1 if none; *loinc says whether there was a
 * LOINC coding at all (then it is a lab test careweave may not know). */
static int
lab_of(const struct kb *kb, const json_t *cc, bool *loinc)
{
	struct kb_coding cs[8];
	const char *text = NULL;
	size_t n = cc ? coord_codings_of(cc, cs, 8, &text) : 0;
	int t;

	*loinc = false;
	for (size_t i = 0; i < n; i++) {
		if (!cs[i].system || strcmp(cs[i].system, KB_LOINC) || !cs[i].code)
			continue;
		*loinc = true;
		if ((t = kb_find_lab(kb, cs[i].code)) >= 0)
			return t;
	}
	for (size_t i = 0; i < n; i++)
		if (cs[i].display && (t = kb_find_lab(kb, cs[i].display)) >= 0)
			return t;
	return text ? kb_find_lab(kb, text) : -1;
}

/* Whether an order's category says it is a laboratory order. */
static bool
lab_category(const json_t *res)
{
	size_t i, k;
	json_t *cc, *c;

	json_array_foreach(json_object_get(res, "category"), i, cc) {
		const char *t = coord_str_at(cc, "text");

		if (t && strcasestr(t, "laborator"))
			return true;
		json_array_foreach(json_object_get(cc, "coding"), k, c) {
			const char *s = coord_str_at(c, "system"), *code = coord_str_at(c, "code"),
				   *dis = coord_str_at(c, "display");

			if ((s && code && !strcmp(s, SCT) && !strcmp(code, "108252007")) ||
			    (dis && strcasestr(dis, "laborator")))
				return true;
		}
	}
	return false;
}

/* How another test relates to the ordered one. */
enum rel {
	REL_NONE,
	REL_SAME,
	REL_PANEL,  /* a panel containing the ordered test */
	REL_MEMBER, /* a member of the ordered panel */
};

static enum rel
relation(const struct kb *kb, unsigned ordered, unsigned other)
{
	if (other == ordered)
		return REL_SAME;
	if (kb_lab_in_panel(kb, ordered, other))
		return REL_PANEL;
	if (kb_lab_in_panel(kb, other, ordered))
		return REL_MEMBER;
	return REL_NONE;
}

/* The shortest minimum retest interval of test, and whose it is. */
static const struct kb_retest *
shortest(const struct kb *kb, unsigned test, unsigned *from)
{
	const struct kb_retest *r[LAB_RETEST_MAX], *best = NULL;
	size_t n = kb_lab_retest(kb, test, r, LAB_RETEST_MAX, from);

	for (size_t i = 0; i < n && i < LAB_RETEST_MAX; i++)
		if (!best || r[i]->min_days < best->min_days)
			best = r[i];
	return best;
}

/* What careweave compares an ordered test with one related test by. */
struct related {
	enum rel rel;
	unsigned shared;              /* the test the two have in common */
	const struct kb_retest *rt;   /* the interval */
	unsigned from;                /* the test whose interval it is */
	int64_t best_at;              /* the latest result found, or INT64_MIN */
	const char *best_ref, *best_words, *best_day, *best_status;
};

/* The interval of the test the two share, else the outer one's. */
static void
pair_interval(const struct kb *kb, unsigned ordered, unsigned other,
	      struct related *r)
{
	unsigned outer = r->rel == REL_MEMBER ? ordered : other;

	r->shared = r->rel == REL_MEMBER ? other : ordered;
	r->rt = shortest(kb, r->shared, &r->from);
	if (!r->rt && r->rel != REL_SAME)
		r->rt = shortest(kb, outer, &r->from);
}

/* ---- reading results ------------------------------------------------------ */

/* When a result was taken: effective[x] (a period's start), else issued. */
static bool
taken_at(const json_t *res, int64_t *at, const char **day)
{
	const char *s = coord_str_at(res, "effectiveDateTime");
	struct time_range tr;

	if (!s)
		s = coord_str_at(res, "effectiveInstant");
	if (!s)
		s = coord_str_at(json_object_get(res, "effectivePeriod"), "start");
	if (!s)
		s = coord_str_at(res, "issued");
	if (!s || time_parse(s, strlen(s), TIME_DATETIME, &tr))
		return false;
	*at = tr.lo;
	*day = s;
	return true;
}

/* Whether a result's status means it holds a value to reuse. */
static bool
resulted(const char *type, const json_t *res)
{
	const char *st = coord_str_at(res, "status");

	if (!st)
		return false;
	if (!strcmp(st, "final") || !strcmp(st, "amended") || !strcmp(st, "corrected") ||
	    !strcmp(st, "preliminary"))
		return true;
	return !strcmp(type, "DiagnosticReport") &&
	       (!strcmp(st, "appended") || !strcmp(st, "partial"));
}

/* Whether res says it is a result of the order ref (basedOn). */
static bool
based_on(const json_t *res, const char *ref)
{
	size_t i;
	json_t *b;

	json_array_foreach(json_object_get(res, "basedOn"), i, b) {
		const char *r = coord_str_at(b, "reference");

		if (r && !strcmp(r, ref))
			return true;
	}
	return false;
}

static const char *
concept_text(const json_t *cc)
{
	const char *t = coord_str_at(cc, "text");
	json_t *c = json_array_get(json_object_get(cc, "coding"), 0);

	if (t && *t)
		return t;
	if (coord_str_at(c, "display"))
		return coord_str_at(c, "display");
	return coord_str_at(c, "code");
}

/* What a result showed, in words. */
static const char *
value_words(struct arena *a, const char *type, const json_t *res)
{
	const json_t *q = json_object_get(res, "valueQuantity"), *v;
	const char *s, *lit;
	double x;

	if (!strcmp(type, "DiagnosticReport")) {
		if ((s = coord_str_at(res, "conclusion")) && *s)
			return arena_printf(a, "\"%.300s\"", s);
		if ((s = concept_text(json_array_get(json_object_get(res, "conclusionCode"), 0))))
			return arena_printf(a, "\"%.300s\"", s);
		return "a report without a conclusion (see its results)";
	}
	if (q && (v = json_object_get(q, "value")) && fhir_number(v, &x, &lit)) {
		const char *unit = coord_str_at(q, "unit") ? coord_str_at(q, "unit") :
							     coord_str_at(q, "code");
		const char *cmp = coord_str_at(q, "comparator");
		/* a decimal as written ("7.20"), as the laboratory reported it */
		const char *num = lit ? lit : json_is_integer(v) ?
			arena_printf(a, "%lld", (long long)json_integer_value(v)) :
			arena_printf(a, "%g", x);

		return arena_printf(a, "%s%s%s%s", cmp ? cmp : "", num, unit ? " " : "",
				    unit ? unit : "");
	}
	if ((s = coord_str_at(res, "valueString")))
		return arena_printf(a, "\"%.300s\"", s);
	if ((s = concept_text(json_object_get(res, "valueCodeableConcept"))))
		return arena_printf(a, "\"%.300s\"", s);
	if (json_array_size(json_object_get(res, "hasMember")))
		return "a panel result (see its members)";
	if ((s = concept_text(json_object_get(res, "dataAbsentReason"))))
		return arena_printf(a, "no value (%s)", s);
	return "no value recorded";
}

/* The "LOINC|code,..." list of every code of the related tests, or NULL
 * when none has a code. */
static const char *
code_list(const struct kb *kb, struct arena *a, const struct related *rel,
	  size_t nlab)
{
	const char *out = NULL;
	size_t nv = 0;

	for (size_t t = 0; t < nlab; t++) {
		const char *p = rel[t].rel && rel[t].rt ? kb_lab_at(kb, (unsigned)t)->loinc : "";

		while (*p && nv < 100) {
			size_t n = strcspn(p, "|");

			out = out ? arena_printf(a, "%s,%s|%.*s", out, KB_LOINC, (int)n, p) :
				    arena_printf(a, "%s|%.*s", KB_LOINC, (int)n, p);
			nv++;
			p += n + (p[n] == '|');
		}
	}
	return out;
}

/* ---- findings ------------------------------------------------------------- */

struct order {
	const char *ref;
	unsigned lab;
	int64_t at;
	struct coord_findings fs;
};

/* "LDL cholesterol, within a lipid panel," and the like: what was done. */
static const char *
what_words(const struct kb *kb, struct arena *a, const struct order *o,
	   unsigned other, const struct related *r)
{
	const char *ordered = kb_lab_at(kb, o->lab)->name, *name = kb_lab_at(kb, other)->name;

	switch (r->rel) {
	case REL_PANEL:
		return arena_printf(a, "%s (within a %s)", ordered, name);
	case REL_MEMBER:
		return arena_printf(a, "%s (part of the ordered %s)", name, ordered);
	default:
		return ordered;
	}
}

static const char *
interval_words(const struct kb *kb, struct arena *a, const struct related *r)
{
	const char *shared = kb_lab_at(kb, r->shared)->name;

	if (r->from != r->shared)
		return arena_printf(a, "The shortest minimum retest interval careweave knows "
				    "for %s (that of %s) is %u days (%s).", shared,
				    kb_lab_at(kb, r->from)->name, r->rt->min_days,
				    r->rt->situation);
	return arena_printf(a, "The shortest minimum retest interval careweave knows "
			    "for %s is %u days (%s).", shared, r->rt->min_days,
			    r->rt->situation);
}

static const char *
days_words(struct arena *a, int64_t ms, const char *when)
{
	int64_t days = ms / TIME_DAY_MS;

	if (days == 0)
		return arena_printf(a, "the same day, %s", when);
	return arena_printf(a, "%lld day%s %s", (long long)days, days == 1 ? "" : "s", when);
}

static void
done_finding(struct coord *co, struct order *o, unsigned other,
	     const struct related *r)
{
	struct coord_finding *f = coord_add_finding(&o->fs);
	struct arena *a = o->fs.a;

	if (!f)
		return;
	f->severity = KB_SEV_MODERATE;
	f->interruptive = true;
	f->priority = "routine";
	f->code = "ALLDONE";
	f->code_display = "already performed";
	f->detail = arena_printf(a,
		"%s was already done %s (%s): %s on %.10s (%s, %s). %s",
		what_words(co->kb, a, o, other, r),
		days_words(a, o->at - r->best_at, "before this order"), o->ref,
		r->best_words, r->best_day, r->best_ref, r->best_status,
		interval_words(co->kb, a, r));
	f->mitigation = "Reuse this result if it answers the question; if the test must be "
			"repeated this soon, keep the order and say why.";
	f->key = coord_pair_key(a, "labdone", NULL, o->ref, r->best_ref);
	f->implicated[0] = o->ref;
	f->implicated[1] = r->best_ref;
	f->source = coord_source_words(co, a, r->rt->source);
}

static void
pending_finding(struct coord *co, struct order *o, unsigned other,
		const struct related *r, const char *oref, const json_t *ores,
		int64_t oat, const char *oday)
{
	struct coord_finding *f = coord_add_finding(&o->fs);
	struct arena *a = o->fs.a;
	int64_t apart = oat > o->at ? oat - o->at : o->at - oat;

	if (!f)
		return;
	f->severity = KB_SEV_MODERATE;
	f->interruptive = true;
	f->priority = "routine";
	f->code_system = COORD_ISSUE_CODES;
	f->code = "dup-order";
	f->code_display = "already ordered, pending";
	f->detail = arena_printf(a,
		"%s is already ordered and pending: %s (%s, %s, ordered %.10s), %s (%s). %s",
		what_words(co->kb, a, o, other, r), oref,
		kb_lab_at(co->kb, other)->name, coord_str_at(ores, "status"), oday,
		days_words(a, apart, "from this order"), o->ref,
		interval_words(co->kb, a, r));
	f->mitigation = "Keep one order: revoke the other, or confirm both are meant.";
	f->key = coord_pair_key(a, "labdup", NULL, o->ref, oref);
	f->implicated[0] = o->ref;
	f->implicated[1] = oref;
	f->source = coord_source_words(co, a, r->rt->source);
}

/* ---- the record ----------------------------------------------------------- */

/* The latest result of each related test taken within its interval. */
static enum cw_err
load_results(struct coord *co, struct store_tx *tx, struct arena *a,
	     const char *type, const char *patient, const char *codes,
	     int64_t since, struct order *o, struct related *rel, struct diag *d)
{
	char ge[32];
	const char *q[6], **ids;
	size_t n;
	enum cw_err err;

	time_format_instant(since, ge);
	q[0] = "patient";
	q[1] = patient;
	q[2] = "code";
	q[3] = codes;
	q[4] = "date";
	q[5] = arena_printf(a, "ge%s", ge);
	if (!q[5])
		return CW_ENOMEM;
	if ((err = coord_match(tx, a, type, q, 3, LAB_RESULTS_MAX, &ids, &n, d)))
		return err;
	if (n == LAB_RESULTS_MAX)
		log_warn("coord: %s has %zu or more recent %ss of %s; checked against the first",
			 patient, n, type, o->ref);
	for (size_t i = 0; i < n; i++) {
		json_t *res = coord_read_json(tx, a, type, ids[i], d);
		const char *day;
		int64_t at;
		size_t k;
		json_t *c;

		if (!res || !resulted(type, res) || based_on(res, o->ref) ||
		    !taken_at(res, &at, &day) || at >= o->at)
			continue;
		json_array_foreach(json_object_get(json_object_get(res, "code"), "coding"), k, c) {
			const char *s = coord_str_at(c, "system"), *code = coord_str_at(c, "code");
			int t = s && code && !strcmp(s, KB_LOINC) ? kb_find_lab(co->kb, code) : -1;
			struct related *r = t >= 0 ? &rel[t] : NULL;

			if (!r || !r->rel || !r->rt ||
			    at < o->at - (int64_t)r->rt->min_days * TIME_DAY_MS || at <= r->best_at)
				continue;
			r->best_at = at;
			r->best_ref = arena_printf(a, "%s/%s", type, ids[i]);
			r->best_words = value_words(a, type, res);
			r->best_day = day;
			r->best_status = coord_str_at(res, "status");
			if (!r->best_ref || !r->best_words)
				return CW_ENOMEM;
			break;
		}
	}
	return CW_OK;
}

/* The patient's other current orders of a related test, that close. */
static enum cw_err
load_orders(struct coord *co, struct store_tx *tx, struct arena *a,
	    const char *patient, struct order *o, struct related *rel,
	    struct diag *d)
{
	const char *q[] = {"patient", patient, "status", "active,on-hold,draft"};
	const char **ids;
	size_t n;
	enum cw_err err;

	if ((err = coord_match(tx, a, "ServiceRequest", q, 2, LAB_ORDERS_MAX, &ids, &n, d)))
		return err;
	for (size_t i = 0; i < n; i++) {
		const char *oref = arena_printf(a, "ServiceRequest/%s", ids[i]), *day;
		json_t *res;
		struct time_range tr;
		bool loinc;
		int t;

		if (!oref)
			return CW_ENOMEM;
		if (!strcmp(oref, o->ref) ||
		    !(res = coord_read_json(tx, a, "ServiceRequest", ids[i], d)) ||
		    !coord_lab_current(res) ||
		    (t = lab_of(co->kb, json_object_get(res, "code"), &loinc)) < 0 ||
		    !rel[t].rel || !rel[t].rt)
			continue;
		/* when it was ordered; else when careweave got it */
		day = coord_str_at(res, "authoredOn");
		if (!day)
			day = coord_str_at(json_object_get(res, "meta"), "lastUpdated");
		if (!day || time_parse(day, strlen(day), TIME_DATETIME, &tr))
			continue;
		if ((tr.lo > o->at ? tr.lo - o->at : o->at - tr.lo) >
		    (int64_t)rel[t].rt->min_days * TIME_DAY_MS)
			continue;
		pending_finding(co, o, (unsigned)t, &rel[t], oref, res, tr.lo, day);
	}
	return CW_OK;
}

/* ---- the check ------------------------------------------------------------ */

enum cw_err
coord_lab_check(struct coord *co, struct store_tx *tx, struct arena *a,
		const char *ref, const json_t *res, struct coord_report *out,
		struct diag *d)
{
	const char *patient = coord_str_at(json_object_get(res, "subject"), "reference");
	const char *authored = coord_str_at(res, "authoredOn"), *codes;
	const json_t *cc = json_object_get(res, "code");
	struct order o = {.ref = ref, .fs = {.a = a}};
	struct kb_counts kc;
	struct related *rel;
	struct time_range tr;
	unsigned maxdays = 0;
	bool loinc, any = false;
	int lab;
	enum cw_err err;

	if (!patient || strncmp(patient, "Patient/", 8) || !patient[8])
		return CW_OK;
	out->patient = patient;
	out->topic = "Duplicate test";
	out->unchecked_for = "duplicate tests";
	lab = lab_of(co->kb, cc, &loinc);
	if (lab < 0) {
		/* a referral or a procedure is not a lab order: nothing to say */
		if (loinc || lab_category(res)) {
			out->unchecked = true;
			out->unchecked_what = arena_printf(a,
				"%s: careweave does not know this laboratory test",
				cc && concept_text(cc) ? concept_text(cc) : "a test without a code or name");
		}
		return CW_OK;
	}
	o.lab = (unsigned)lab;
	if (authored && !time_parse(authored, strlen(authored), TIME_DATETIME, &tr))
		o.at = tr.lo; /* a date alone: only what came before that day */
	else
		o.at = time_now_ms();
	kb_count(co->kb, &kc);
	if (!(rel = arena_zalloc(a, kc.labs * sizeof(*rel))))
		return CW_ENOMEM;
	for (size_t t = 0; t < kc.labs; t++) {
		rel[t].best_at = INT64_MIN;
		if (!(rel[t].rel = relation(co->kb, o.lab, (unsigned)t)))
			continue;
		pair_interval(co->kb, o.lab, (unsigned)t, &rel[t]);
		if (rel[t].rt) {
			any = true;
			if (rel[t].rt->min_days > maxdays)
				maxdays = rel[t].rt->min_days;
		}
	}
	if (!any) {
		out->unchecked = true;
		out->unchecked_what = arena_printf(a,
			"%s: careweave knows no minimum retest interval for it",
			kb_lab_at(co->kb, o.lab)->name);
		return CW_OK;
	}
	if (!rel[o.lab].rt || !*kb_lab_at(co->kb, o.lab)->loinc) {
		out->unchecked = true;
		out->unchecked_what = arena_printf(a,
			"%s: careweave %s, so its own earlier results were not compared",
			kb_lab_at(co->kb, o.lab)->name, rel[o.lab].rt ?
			"knows no LOINC code for it" : "knows no minimum retest interval for it");
	}
	if ((codes = code_list(co->kb, a, rel, kc.labs))) {
		int64_t since = o.at - (int64_t)maxdays * TIME_DAY_MS;

		if ((err = load_results(co, tx, a, "Observation", patient, codes, since, &o, rel, d)) ||
		    (err = load_results(co, tx, a, "DiagnosticReport", patient, codes, since, &o,
					rel, d)))
			return err;
		for (size_t t = 0; t < kc.labs; t++)
			if (rel[t].best_ref)
				done_finding(co, &o, (unsigned)t, &rel[t]);
	}
	if ((err = load_orders(co, tx, a, patient, &o, rel, d)))
		return err;
	out->findings = o.fs.f;
	out->nfindings = o.fs.n;
	out->notify_author = coord_str_at(json_object_get(res, "requester"), "reference");
	out->notify_told = COORD_TELL_PCP | COORD_TELL_COORDINATOR;
	return CW_OK;
}
