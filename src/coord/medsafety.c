/* coord/medsafety.c: the medication rules (see coord.h for what they say).
 *
 * Everything is read inside the caller's store transaction, so a
 * transaction Bundle that writes two interacting prescriptions is checked
 * with both in place, and a check never sees a half-written change. The
 * patient's record is what facts.c keeps of it (every current medication
 * and allergy, mapped when it was written, and the findings already
 * raised), so a check reads one row; records a caller gives (CDS Hooks
 * prefetch) are taken as given, at most COORD_MEDS_MAX requests and
 * statements and COORD_ALLERGIES_MAX allergies. The kb does the
 * pharmacology; this file decides which pairs to compare and puts each
 * finding into words a clinician reads. */
#include <stdlib.h>
#include <string.h>

#include "coord/coord_int.h"


/* Whether a medication record of type is current: what the patient takes
 * or is to take now. */
bool
coord_med_current(const char *type, const json_t *res)
{
	const char *st = coord_str_at(res, "status");

	if (!st)
		return false;
	if (!strcmp(st, "active") || !strcmp(st, "on-hold"))
		return true;
	return !strcmp(type, "MedicationStatement") && !strcmp(st, "intended");
}

static void
med_fill(struct coord *co, struct store_tx *tx, struct arena *a,
	 struct coord_fact *m, const char *type, const char *ref, const json_t *res,
	 const struct coord_given *given, struct diag *d)
{
	(void)coord_fact_of(co, tx, a, type, ref, res, given, false, m, d);
}

/* Whether an allergy record counts: active (or no clinical status), and
 * not refuted or entered in error. */
bool
coord_allergy_current(const json_t *res)
{
	const json_t *cs = json_array_get(json_object_get(json_object_get(res, "clinicalStatus"),
							  "coding"), 0);
	const json_t *vs = json_array_get(json_object_get(json_object_get(res, "verificationStatus"),
							  "coding"), 0);
	const char *c = coord_str_at(cs, "code"), *v = coord_str_at(vs, "code");

	if (c && strcmp(c, "active"))
		return false;
	return !v || (strcmp(v, "refuted") && strcmp(v, "entered-in-error"));
}

static void
allergy_fill(struct coord *co, struct arena *a, struct coord_fact *al, const char *ref,
	     const json_t *res)
{
	(void)coord_fact_of(co, NULL, a, "AllergyIntolerance", ref, res, NULL, false, al, NULL);
}

/* ---- the patient's other records ------------------------------------------ */

/* What a proposed medication is compared with: the patient's current
 * medications (but itself) and allergies, read from the store in the
 * change's transaction (record_load) or taken from records the caller
 * gives (record_given); the comparison (compare) is the same. */

struct record {
	struct coord_fact *meds;
	size_t nmeds;
	struct coord_fact *allergies;
	size_t nallergies;
};

/* The patient's kept records (facts.c) as the record to compare with:
 * every current medication but self, and with_allergies the allergies. */
static enum cw_err
record_load(struct coord *co, struct store_tx *tx, struct arena *a,
	    const char *patient, const char *self, bool with_allergies,
	    struct record *rec, struct coord_report *out, struct diag *d)
{
	struct coord_facts *f = arena_zalloc(a, sizeof(*f));
	enum cw_err err;

	if (!f)
		return CW_ENOMEM;
	if ((err = coord_facts_load(co, tx, a, patient, f, d)))
		return err;
	out->facts = f;
	rec->meds = f->n ? arena_alloc(a, f->n * sizeof(*rec->meds)) : NULL;
	rec->allergies = f->n ? arena_alloc(a, f->n * sizeof(*rec->allergies)) : NULL;
	if (f->n && (!rec->meds || !rec->allergies))
		return CW_ENOMEM;
	for (size_t i = 0; i < f->n; i++) {
		struct coord_fact *e = &f->e[i];

		if (e->kind == COORD_FACT_ALLERGY) {
			if (with_allergies)
				rec->allergies[rec->nallergies++] = *e;
			continue;
		}
		if (e->kind == COORD_FACT_FINDING || (self && !strcmp(e->ref, self)))
			continue;
		if ((err = coord_fact_resolve(co, tx, a, e, d)))
			return err;
		rec->meds[rec->nmeds++] = *e;
	}
	return CW_OK;
}

/* Whether type is a medication record the medication rules compare
 * (coord_watches names types other rules handle). */
static bool
is_med(const char *type)
{
	return type && (!strcmp(type, "MedicationRequest") ||
			!strcmp(type, "MedicationStatement"));
}

/* Whether a reference names patient ("Patient/x"), also as an absolute
 * URL of another server (".../Patient/x"): given records come from the
 * caller's system. */
static bool
names_patient(const char *ref, const char *patient)
{
	size_t n, p;

	if (!ref || !patient)
		return false;
	n = strlen(ref);
	p = strlen(patient);
	if (n == p)
		return !strcmp(ref, patient);
	return n > p && ref[n - p - 1] == '/' && !strcmp(ref + n - p, patient);
}

static enum cw_err
record_given(struct coord *co, struct arena *a, const char *patient,
	     const char *self, const struct coord_given *given,
	     struct record *rec, struct diag *d)
{
	size_t nreq = 0, nst = 0;

	rec->meds = given->n ? arena_zalloc(a, given->n * sizeof(*rec->meds)) : NULL;
	rec->allergies = given->n ? arena_zalloc(a, given->n * sizeof(*rec->allergies)) : NULL;
	if (given->n && (!rec->meds || !rec->allergies))
		return CW_ENOMEM;
	for (size_t i = 0; i < given->n; i++) {
		const json_t *res = given->res[i];
		const char *type = coord_str_at(res, "resourceType"), *id = coord_str_at(res, "id");
		bool allergy = type && !strcmp(type, "AllergyIntolerance");
		const char *ref;

		if (!is_med(type) && !allergy)
			continue;
		if (!names_patient(coord_str_at(json_object_get(res, allergy ? "patient" : "subject"),
						"reference"), patient))
			continue;
		ref = arena_printf(a, "%s/%s", type, id ? id : arena_printf(a, "given-%zu", i));
		if (!ref)
			return CW_ENOMEM;
		if (self && !strcmp(ref, self))
			continue;
		if (allergy) {
			if (rec->nallergies < COORD_ALLERGIES_MAX && coord_allergy_current(res))
				allergy_fill(co, a, &rec->allergies[rec->nallergies++], ref, res);
			continue;
		}
		if (!coord_med_current(type, res))
			continue;
		if (!strcmp(type, "MedicationRequest") ? nreq++ >= COORD_MEDS_MAX :
		    nst++ >= COORD_MEDS_MAX)
			continue;
		med_fill(co, NULL, a, &rec->meds[rec->nmeds++], type, ref, res, given, d);
	}
	return CW_OK;
}

/* ---- findings ----------------------------------------------------------- */

static const char *
drug_name(const struct coord *co, unsigned drug)
{
	const struct kb_drug *dr = kb_drug_at(co->kb, drug);

	return dr ? dr->name : "?";
}


static void
ddi_findings(struct coord *co, const struct coord_fact *m, const struct coord_fact *o,
	     struct coord_findings *fs)
{
	struct kb_ddi_hit hits[8];
	size_t n = kb_interactions(co->kb, &m->map, &o->map, hits, 8);

	for (size_t i = 0; i < n && i < 8; i++) {
		const struct kb_interaction *r = hits[i].rule;
		const char *key = coord_pair_key(fs->a, "ddi", r->id,
						 m->ref, o->ref);
		struct coord_finding *f;

		if (coord_finding_known(fs, key))
			continue;
		if (!(f = coord_add_finding(fs)))
			return;
		f->severity = r->severity;
		f->interruptive = r->interruptive;
		f->code = "DRG";
		f->code_display = "Drug Interaction Alert";
		f->detail = arena_printf(fs->a,
			"%s (%s, %s) and %s (%s, %s) interact: %s.",
			drug_name(co, hits[i].drug_a), m->words, m->ref,
			drug_name(co, hits[i].drug_b), o->words, o->ref,
			r->effect && *r->effect ? r->effect : "see the reference");
		f->summary = arena_printf(fs->a, "%s with %s", drug_name(co, hits[i].drug_a),
					  drug_name(co, hits[i].drug_b));
		f->mitigation = r->advice && *r->advice ? r->advice : NULL;
		f->key = key;
		f->implicated[0] = m->ref;
		f->implicated[1] = o->ref;
		f->source = coord_source_words(co, fs->a, r->source);
	}
}

/* Two records of one ingredient, or two drugs of one therapeutic class. A
 * prescription and a statement of the same ingredient are one therapy
 * told twice (the reconciled list merges them), not a duplicate. */
/* The therapy classes (kb_class_is_therapy) of each drug of m, found once
 * for all the records m is compared with. */
struct therapies {
	unsigned cls[KB_MAP_MAX][16];
	size_t n[KB_MAP_MAX];
};

static void
therapies_of(const struct coord *co, const struct coord_fact *m, struct therapies *t)
{
	for (unsigned i = 0; i < m->map.n; i++) {
		unsigned all[16];
		size_t n = m->map.ref[i].kind == KB_REF_DRUG ?
			   kb_drug_classes(co->kb, m->map.ref[i].id, all, 16) : 0;

		t->n[i] = 0;
		for (size_t c = 0; c < n && c < 16; c++)
			if (kb_class_is_therapy(co->kb, all[c]))
				t->cls[i][t->n[i]++] = all[c];
	}
}

static void
dup_findings(struct coord *co, const struct coord_fact *m, const struct therapies *th,
	     const struct coord_fact *o, struct coord_findings *fs)
{
	bool same_kind = !strcmp(m->type, o->type);

	for (unsigned i = 0; i < m->map.n; i++) {
		unsigned da = m->map.ref[i].id;

		if (m->map.ref[i].kind != KB_REF_DRUG)
			continue;
		for (unsigned j = 0; j < o->map.n; j++) {
			unsigned db = o->map.ref[j].id;
			struct coord_finding *f;
			const char *key;

			if (o->map.ref[j].kind != KB_REF_DRUG || db != da || !same_kind)
				continue;
			key = coord_pair_key(fs->a, "dup", drug_name(co, da),
					     m->ref, o->ref);
			if (coord_finding_known(fs, key))
				continue;
			if (!(f = coord_add_finding(fs)))
				return;
			f->severity = KB_SEV_MODERATE;
			f->interruptive = true;
			f->code = "DUPTHPGEN";
			f->code_display = "duplicate generic alert";
			f->detail = arena_printf(fs->a,
				"%s is prescribed twice: %s (%s) and %s (%s).",
				drug_name(co, da), m->words, m->ref, o->words, o->ref);
			f->summary = arena_printf(fs->a, "%s prescribed twice", drug_name(co, da));
			f->mitigation = "Keep one prescription: stop the other, or confirm both are meant.";
			f->key = key;
			f->implicated[0] = m->ref;
			f->implicated[1] = o->ref;
			f->source = NULL;
		}
		for (size_t c = 0; c < th->n[i]; c++) {
			const struct kb_class *cl = kb_class_at(co->kb, th->cls[i][c]);

			for (unsigned j = 0; j < o->map.n; j++) {
				unsigned db = o->map.ref[j].id;
				struct coord_finding *f;
				const char *key;

				if (o->map.ref[j].kind != KB_REF_DRUG || db == da ||
				    !kb_drug_in_class(co->kb, db, th->cls[i][c]))
					continue;
				key = coord_pair_key(fs->a, "dupclass", cl->name,
						     m->ref, o->ref);
				if (coord_finding_known(fs, key))
					continue;
				if (!(f = coord_add_finding(fs)))
					return;
				f->severity = KB_SEV_MODERATE;
				f->interruptive = true;
				f->code = "DUPTHPCLS";
				f->code_display = "duplicate therapeutic class alert";
				f->detail = arena_printf(fs->a,
					"Two %s at once: %s (%s, %s) and %s (%s, %s).",
					cl->name, drug_name(co, da), m->words, m->ref,
					drug_name(co, db), o->words, o->ref);
				f->summary = arena_printf(fs->a, "two %s, %s and %s", cl->name,
							  drug_name(co, da), drug_name(co, db));
				f->mitigation = "Usually one drug of this class is enough: review whether both are needed.";
				f->key = key;
				f->implicated[0] = m->ref;
				f->implicated[1] = o->ref;
				f->source = coord_source_words(co, fs->a, cl->source);
			}
		}
	}
}

static void
allergy_findings(struct coord *co, const struct coord_fact *m, const struct coord_fact *al,
		 struct coord_findings *fs)
{
	struct kb_allergy_hit hits[8];
	size_t n = kb_allergy_check(co->kb, &al->map, &m->map, hits, 8);

	for (size_t i = 0; i < n && i < 8; i++) {
		const struct kb_allergy_hit *h = &hits[i];
		const char *key = coord_pair_key(fs->a, h->rule ? "cross-allergy" : "allergy", NULL,
						 m->ref, al->ref);
		struct coord_finding *f;

		if (coord_finding_known(fs, key))
			continue;
		if (!(f = coord_add_finding(fs)))
			return;
		f->key = key;
		f->severity = h->severity;
		f->interruptive = true;
		f->implicated[0] = m->ref;
		f->implicated[1] = al->ref;
		if (!h->rule) {
			f->code = "ALGY";
			f->code_display = "Allergy Alert";
			f->detail = arena_printf(fs->a,
				"The patient is recorded as allergic to %s (%s), and %s (%s) contains %s.",
				al->words, al->ref, m->words, m->ref, drug_name(co, h->drug));
			f->summary = arena_printf(fs->a, "%s, and the patient is allergic to %s",
						  drug_name(co, h->drug), al->words);
			f->mitigation = "Choose a drug the patient is not allergic to, or confirm the allergy record is wrong.";
			f->source = NULL;
		} else {
			f->code = "RALG";
			f->code_display = "Related Allergy Alert";
			f->detail = arena_printf(fs->a,
				"The patient is recorded as allergic to %s (%s); %s (%s, %s) may cross-react: %s",
				al->words, al->ref, drug_name(co, h->drug), m->words, m->ref,
				h->rule->note && *h->rule->note ? h->rule->note : "see the reference.");
			f->summary = arena_printf(fs->a, "%s may cross-react with the allergy to %s",
						  drug_name(co, h->drug), al->words);
			f->mitigation = h->severity >= KB_SEV_MODERATE ?
				"Consider an alternative, or give with monitoring if the reaction was mild." :
				"Cross-reactivity is uncommon; note the recorded reaction.";
			f->source = coord_source_words(co, fs->a, h->rule->source);
		}
	}
}

/* ---- the checks --------------------------------------------------------- */

/* The medication the change (or the proposal) is, mapped: out says when
 * careweave could not identify it. */
static void
proposed(struct coord *co, struct store_tx *tx, struct arena *a,
	 const char *type, const char *ref, const json_t *res,
	 const struct coord_given *given, struct coord_fact *m,
	 struct coord_report *out, struct diag *d)
{
	out->topic = "Medication safety";
	out->unchecked_for = "interactions, duplicates or allergies";
	med_fill(co, tx, a, m, type, ref, res, given, d);
	if (m->map.status != KB_MAPPED) {
		out->unchecked = true;
		out->unchecked_what = m->map.status == KB_PARTIAL ?
			arena_printf(a, "%s: careweave knows part of it (not \"%s\")", m->words,
				     m->map.unknown) :
			arena_printf(a, "%s: careweave does not know this medication", m->words);
	}
}

/* Compares m with the record: the findings, and the records careweave
 * could not compare, into out. */
static enum cw_err
compare(struct coord *co, struct arena *a, const struct coord_fact *m,
	const struct record *rec, struct coord_report *out)
{
	struct coord_findings fs = {.a = a, .known = out->new_only ? out->facts : NULL};
	struct therapies th;

	therapies_of(co, m, &th);
	for (size_t i = 0; i < rec->nmeds; i++) {
		const struct coord_fact *o = &rec->meds[i];

		if (o->map.status == KB_UNCHECKED) {
			const char **nv = arena_realloc(a, out->unchecked_others,
							out->nunchecked_others * sizeof(*nv),
							(out->nunchecked_others + 1) * sizeof(*nv));

			if (!nv)
				return CW_ENOMEM;
			nv[out->nunchecked_others++] = o->ref;
			out->unchecked_others = nv;
			continue;
		}
		ddi_findings(co, m, o, &fs);
		dup_findings(co, m, &th, o, &fs);
	}
	for (size_t i = 0; i < rec->nallergies; i++)
		allergy_findings(co, m, &rec->allergies[i], &fs);
	out->findings = fs.f;
	out->nfindings = fs.n;
	return CW_OK;
}

enum cw_err
coord_med_check(struct coord *co, struct store_tx *tx, struct arena *a,
		const char *type, const char *ref, const json_t *res,
		struct coord_report *out, struct diag *d)
{
	struct record rec = {0};
	struct coord_fact m;
	enum cw_err err;

	out->patient = coord_patient_of(type, res);
	if (!out->patient)
		return CW_OK;
	proposed(co, tx, a, type, ref, res, NULL, &m, out, d);
	if ((err = record_load(co, tx, a, out->patient, ref, true, &rec, out, d)) ||
	    (err = compare(co, a, &m, &rec, out)))
		return err;
	out->notify_author = m.by;
	out->notify_told = COORD_TELL_PCP | COORD_TELL_PHARMACIST | COORD_TELL_COORDINATOR;
	return CW_OK;
}

enum cw_err
coord_check_given(struct coord *co, struct arena *a, const json_t *res,
		  const struct coord_given *given, struct coord_report *out,
		  struct diag *d)
{
	const char *type = coord_str_at(res, "resourceType"), *ref, *id = coord_str_at(res, "id");
	struct record rec = {0};
	struct coord_fact m;
	enum cw_err err;

	memset(out, 0, sizeof(*out));
	if (!co || !is_med(type))
		return CW_OK; /* given records serve the medication rules only */
	out->patient = coord_patient_of(type, res);
	if (!out->patient)
		return CW_OK;
	if (!(ref = arena_printf(a, "%s/%s", type, id ? id : "proposed")))
		return CW_ENOMEM;
	proposed(co, NULL, a, type, ref, res, given, &m, out, d);
	if ((err = record_given(co, a, out->patient, ref, given, &rec, d)))
		return err;
	return compare(co, a, &m, &rec, out);
}

/* A new or changed allergy that is current: every current medication of
 * the patient is checked against it (the same findings, with the same keys,
 * as when the medication is written). Recording an allergy is never
 * refused: the findings are reported and written. */
enum cw_err
coord_allergy_check(struct coord *co, struct store_tx *tx, struct arena *a,
		    const char *ref, const json_t *res, struct coord_report *out,
		    struct diag *d)
{
	struct record rec = {0};
	struct coord_findings fs = {.a = a};
	struct coord_fact al;
	const char *author = NULL;
	enum cw_err err;

	out->patient = coord_patient_of("AllergyIntolerance", res);
	if (!out->patient)
		return CW_OK;
	out->topic = "Medication safety";
	out->unchecked_for = "the patient's medications";
	out->never_refuses = true;
	allergy_fill(co, a, &al, ref, res);
	if (al.map.status == KB_UNCHECKED) {
		/* a food or environmental allergen, or one careweave does not know */
		out->unchecked = true;
		out->unchecked_what = arena_printf(a, "%s: careweave knows no medication in it",
						   al.words);
		return CW_OK;
	}
	if ((err = record_load(co, tx, a, out->patient, NULL, false, &rec, out, d)))
		return err;
	fs.known = out->new_only ? out->facts : NULL;
	for (size_t i = 0; i < rec.nmeds; i++) {
		size_t before = fs.n;

		allergy_findings(co, &rec.meds[i], &al, &fs);
		if (fs.n > before && !author)
			author = rec.meds[i].by; /* the prescriber of what it affects */
	}
	out->findings = fs.f;
	out->nfindings = fs.n;
	out->notify_author = author;
	out->notify_told = COORD_TELL_PCP | COORD_TELL_PHARMACIST | COORD_TELL_COORDINATOR;
	return CW_OK;
}
