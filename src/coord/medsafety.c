/* coord/medsafety.c: the medication rules (see coord.h for what they say).
 *
 * Everything is read inside the caller's store transaction, so a
 * transaction Bundle that writes two interacting prescriptions is checked
 * with both in place, and a check never sees a half-written change. The
 * patient's record is read whole for each check: their current
 * MedicationRequests and MedicationStatements (at most COORD_MEDS_MAX of
 * each) and AllergyIntolerances (COORD_ALLERGIES_MAX); a patient with more
 * is checked against the first ones and the report says so in the log
 * (ids only). The kb does the pharmacology; this file decides which pairs
 * to compare and puts each finding into words a clinician reads. */
#include <stdlib.h>
#include <string.h>

#include "coord/coord_int.h"

#define COORD_MEDS_MAX 200
#define COORD_ALLERGIES_MAX 100
#define COORD_FINDINGS_MAX 64
#define COORD_NOTIFY_MAX 32

struct coord *
coord_new(const struct kb *kb)
{
	struct coord *co = calloc(1, sizeof(*co));

	if (co)
		co->kb = kb;
	return co;
}

void
coord_free(struct coord *co)
{
	free(co);
}

bool
coord_watches(const char *type)
{
	return !strcmp(type, "MedicationRequest") ||
	       !strcmp(type, "MedicationStatement");
}

/* ---- reading what the record says --------------------------------------- */

static const char *
str_at(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static void
decref_cb(void *p)
{
	json_decref(p);
}

/* A resource of tx as JSON, owned by the arena; NULL if absent. */
static json_t *
read_json(struct store_tx *tx, struct arena *a, const char *type,
	  const char *id, struct diag *d)
{
	struct store_res r;
	json_t *v = NULL;

	if (store_tx_read(tx, a, type, id, &r) != CW_OK)
		return NULL;
	if (fhir_parse_json(r.json.p, r.json.n, &v, NULL) != CW_OK)
		return NULL;
	if (!arena_on_free(a, decref_cb, v)) {
		json_decref(v);
		return NULL;
	}
	(void)d;
	return v;
}

/* The ids of type matching query (a search string) in tx, at most max. */
static enum cw_err
match(struct store_tx *tx, struct arena *a, const char *type,
      const char *const *kv_pairs, size_t npairs, size_t max,
      const char ***ids, size_t *n, struct diag *d)
{
	const struct fhir_restype *rt = fhir_restype_find(type);
	struct fhir_kv *kv = arena_alloc(a, npairs * sizeof(*kv));
	struct fhir_query *q = arena_zalloc(a, sizeof(*q));
	enum cw_err err;

	*ids = NULL;
	*n = 0;
	if (!rt)
		return CW_EINTERNAL;
	if (!kv || !q)
		return CW_ENOMEM;
	for (size_t i = 0; i < npairs; i++) {
		kv[i].key = kv_pairs[2 * i];
		kv[i].value = kv_pairs[2 * i + 1];
	}
	if ((err = fhir_query_parse(a, rt, kv, npairs, true, q, d)))
		return err;
	return store_tx_match(tx, a, q, max, ids, n, d);
}

/* Whether a medication record of type is current: what the patient takes
 * or is to take now. */
static bool
med_current(const char *type, const json_t *res)
{
	const char *st = str_at(res, "status");

	if (!st)
		return false;
	if (!strcmp(st, "active") || !strcmp(st, "on-hold"))
		return true;
	return !strcmp(type, "MedicationStatement") && !strcmp(st, "intended");
}

/* The patient a medication or allergy is about: "Patient/x", or NULL. */
static const char *
patient_of(const char *type, const json_t *res)
{
	const char *ref = str_at(json_object_get(res, !strcmp(type, "AllergyIntolerance") ?
						  "patient" : "subject"), "reference");

	return ref && !strncmp(ref, "Patient/", 8) && ref[8] ? ref : NULL;
}

/* A CodeableConcept's codings into out (at most max), its text into *text. */
static size_t
codings_of(const json_t *cc, struct kb_coding *out, size_t max,
	   const char **text)
{
	size_t i, n = 0;
	json_t *c;

	*text = str_at(cc, "text");
	json_array_foreach(json_object_get(cc, "coding"), i, c) {
		if (n == max)
			break;
		out[n].system = str_at(c, "system");
		out[n].code = str_at(c, "code");
		out[n].display = str_at(c, "display");
		n++;
	}
	return n;
}

/* The CodeableConcept naming what a medication record is: its own, or
 * the Medication it references (contained "#id" or Medication/id in tx). */
static const json_t *
med_concept(struct store_tx *tx, struct arena *a, const json_t *res,
	    struct diag *d)
{
	const json_t *cc = json_object_get(res, "medicationCodeableConcept");
	const char *ref;
	size_t i;
	json_t *c, *m;

	if (cc)
		return cc;
	ref = str_at(json_object_get(res, "medicationReference"), "reference");
	if (!ref)
		return NULL;
	if (ref[0] == '#') {
		json_array_foreach(json_object_get(res, "contained"), i, c)
			if (!strcmp(str_at(c, "resourceType") ? str_at(c, "resourceType") : "", "Medication") &&
			    str_at(c, "id") && !strcmp(str_at(c, "id"), ref + 1))
				return json_object_get(c, "code");
		return NULL;
	}
	if (strncmp(ref, "Medication/", 11))
		return NULL;
	m = read_json(tx, a, "Medication", ref + 11, d);
	return m ? json_object_get(m, "code") : NULL;
}

/* What a medication or allergy is, for the words of a finding: the text,
 * else the first coding's display, else its code. */
static const char *
concept_words(const json_t *cc)
{
	const char *t = str_at(cc, "text");
	json_t *c = json_array_get(json_object_get(cc, "coding"), 0);

	if (t && *t)
		return t;
	if (c && str_at(c, "display"))
		return str_at(c, "display");
	if (c && str_at(c, "code"))
		return str_at(c, "code");
	return "an unnamed medication";
}

/* One medication of the patient, as the rules see it. */
struct med {
	const char *ref;       /* "MedicationRequest/x" */
	const char *type;
	const json_t *res;
	const char *words;     /* what the record calls it */
	const char *by;        /* the prescriber or reporter's reference, or NULL */
	struct kb_mapping map;
};

struct allergy {
	const char *ref;
	const char *words;
	struct kb_mapping map;
};

static void
med_fill(struct coord *co, struct store_tx *tx, struct arena *a,
	 struct med *m, const char *type, const char *ref, const json_t *res,
	 struct diag *d)
{
	struct kb_coding cs[8];
	const json_t *cc = med_concept(tx, a, res, d);
	const char *text = NULL;
	size_t n = cc ? codings_of(cc, cs, 8, &text) : 0;
	const char *by = str_at(json_object_get(res, !strcmp(type, "MedicationRequest") ?
						 "requester" : "informationSource"),
				"reference");

	m->ref = ref;
	m->type = type;
	m->res = res;
	m->words = cc ? concept_words(cc) : "a medication without a code or name";
	m->by = by;
	kb_map_medication(co->kb, cs, n, text, &m->map);
}

/* Whether an allergy record counts: active (or no clinical status), and
 * not refuted or entered in error. */
static bool
allergy_current(const json_t *res)
{
	const json_t *cs = json_array_get(json_object_get(json_object_get(res, "clinicalStatus"),
							  "coding"), 0);
	const json_t *vs = json_array_get(json_object_get(json_object_get(res, "verificationStatus"),
							  "coding"), 0);
	const char *c = str_at(cs, "code"), *v = str_at(vs, "code");

	if (c && strcmp(c, "active"))
		return false;
	return !v || (strcmp(v, "refuted") && strcmp(v, "entered-in-error"));
}

/* ---- the patient's other records ------------------------------------------ */

struct record {
	struct med *meds;
	size_t nmeds;
	struct allergy *allergies;
	size_t nallergies;
};

static enum cw_err
load_meds(struct coord *co, struct store_tx *tx, struct arena *a,
	  const char *patient, const char *type, const char *self,
	  struct record *rec, struct diag *d)
{
	const char *q[] = {"subject", patient, "status",
			   !strcmp(type, "MedicationRequest") ? "active,on-hold" :
			   "active,on-hold,intended"};
	const char **ids;
	size_t n;
	struct med *nm;
	enum cw_err err;

	err = match(tx, a, type, q, 2, COORD_MEDS_MAX, &ids, &n, d);
	if (err)
		return err;
	if (n == COORD_MEDS_MAX)
		log_warn("coord: %s has %zu or more current %ss; checked against the first",
			 patient, n, type);
	nm = arena_realloc(a, rec->meds, rec->nmeds * sizeof(*nm),
			   (rec->nmeds + n) * sizeof(*nm));
	if (n && !nm)
		return CW_ENOMEM;
	rec->meds = nm;
	for (size_t i = 0; i < n; i++) {
		const char *ref = arena_printf(a, "%s/%s", type, ids[i]);
		json_t *res;

		if (!ref)
			return CW_ENOMEM;
		if (self && !strcmp(ref, self))
			continue;
		if (!(res = read_json(tx, a, type, ids[i], d)) || !med_current(type, res))
			continue;
		med_fill(co, tx, a, &rec->meds[rec->nmeds++], type, ref, res, d);
	}
	return CW_OK;
}

static enum cw_err
load_allergies(struct coord *co, struct store_tx *tx, struct arena *a,
	       const char *patient, struct record *rec, struct diag *d)
{
	const char *q[] = {"patient", patient};
	const char **ids;
	size_t n;
	enum cw_err err;

	err = match(tx, a, "AllergyIntolerance", q, 1, COORD_ALLERGIES_MAX, &ids, &n, d);
	if (err)
		return err;
	rec->allergies = n ? arena_zalloc(a, n * sizeof(*rec->allergies)) : NULL;
	if (n && !rec->allergies)
		return CW_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct allergy *al = &rec->allergies[rec->nallergies];
		json_t *res = read_json(tx, a, "AllergyIntolerance", ids[i], d);
		const json_t *cc;
		struct kb_coding cs[8];
		const char *text = NULL;
		size_t nc;

		if (!res || !allergy_current(res))
			continue;
		cc = json_object_get(res, "code");
		nc = cc ? codings_of(cc, cs, 8, &text) : 0;
		al->ref = arena_printf(a, "AllergyIntolerance/%s", ids[i]);
		al->words = cc ? concept_words(cc) : "an allergy without a code or name";
		kb_map_allergy(co->kb, cs, nc, text, &al->map);
		if (!al->ref)
			return CW_ENOMEM;
		rec->nallergies++;
	}
	return CW_OK;
}

/* ---- findings ----------------------------------------------------------- */

struct findings {
	struct arena *a;
	struct coord_finding *f;
	size_t n;
};

static struct coord_finding *
add_finding(struct findings *fs)
{
	if (!fs->f && !(fs->f = arena_zalloc(fs->a, COORD_FINDINGS_MAX * sizeof(*fs->f))))
		return NULL;
	if (fs->n == COORD_FINDINGS_MAX)
		return NULL;
	return &fs->f[fs->n++];
}

/* "a|b" in a fixed order, so the pair has one key whichever came first. */
static const char *
pair_key(struct arena *a, const char *rule, const char *x, const char *y)
{
	if (strcmp(x, y) > 0) {
		const char *t = x;

		x = y;
		y = t;
	}
	char *k = arena_printf(a, "%s:%s:%s", rule, x, y);

	/* a token search value: no '|' (system separator), ',' (or), '$' or '\\' */
	for (char *p = k; p && *p; p++)
		if (*p == '|' || *p == ',' || *p == '$' || *p == '\\')
			*p = '-';
	return k;
}

static const char *
drug_name(const struct coord *co, unsigned drug)
{
	const struct kb_drug *dr = kb_drug_at(co->kb, drug);

	return dr ? dr->name : "?";
}

/* The references a list of source keys names ("onc-ni,cw-summary"), their
 * texts joined by "; " (a key the kb does not know stays as it is). */
static const char *
source_words(const struct coord *co, struct arena *a, const char *keys)
{
	char *out = NULL;

	while (keys && *keys) {
		size_t n = strcspn(keys, ",");
		char key[64];
		const char *t;

		if (n && n < sizeof(key)) {
			memcpy(key, keys, n);
			key[n] = '\0';
			t = kb_source_text(co->kb, key);
			out = out ? arena_printf(a, "%s; %s", out, t ? t : key) :
				    arena_strdup(a, t ? t : key);
		}
		keys += n + (keys[n] == ',');
	}
	return out;
}

static void
ddi_findings(struct coord *co, const struct med *m, const struct med *o,
	     struct findings *fs)
{
	struct kb_ddi_hit hits[8];
	size_t n = kb_interactions(co->kb, &m->map, &o->map, hits, 8);

	for (size_t i = 0; i < n && i < 8; i++) {
		const struct kb_interaction *r = hits[i].rule;
		struct coord_finding *f = add_finding(fs);

		if (!f)
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
		f->mitigation = r->advice && *r->advice ? r->advice : NULL;
		f->key = pair_key(fs->a, arena_printf(fs->a, "ddi:%s", r->id), m->ref, o->ref);
		f->implicated[0] = m->ref;
		f->implicated[1] = o->ref;
		f->source = source_words(co, fs->a, r->source);
	}
}

/* Two records of one ingredient, or two drugs of one therapeutic class. A
 * prescription and a statement of the same ingredient are one therapy
 * told twice (the reconciled list merges them), not a duplicate. */
static void
dup_findings(struct coord *co, const struct med *m, const struct med *o,
	     struct findings *fs)
{
	bool same_kind = !strcmp(m->type, o->type);

	for (unsigned i = 0; i < m->map.n; i++) {
		unsigned da = m->map.ref[i].id, cls_a[16];
		size_t nca;

		if (m->map.ref[i].kind != KB_REF_DRUG)
			continue;
		for (unsigned j = 0; j < o->map.n; j++) {
			unsigned db = o->map.ref[j].id;
			struct coord_finding *f;

			if (o->map.ref[j].kind != KB_REF_DRUG || db != da || !same_kind)
				continue;
			if (!(f = add_finding(fs)))
				return;
			f->severity = KB_SEV_MODERATE;
			f->interruptive = true;
			f->code = "DUPTHPGEN";
			f->code_display = "duplicate generic alert";
			f->detail = arena_printf(fs->a,
				"%s is prescribed twice: %s (%s) and %s (%s).",
				drug_name(co, da), m->words, m->ref, o->words, o->ref);
			f->mitigation = "Keep one prescription: stop the other, or confirm both are meant.";
			f->key = pair_key(fs->a, arena_printf(fs->a, "dup:%s", drug_name(co, da)),
					  m->ref, o->ref);
			f->implicated[0] = m->ref;
			f->implicated[1] = o->ref;
			f->source = NULL;
		}
		nca = kb_drug_classes(co->kb, da, cls_a, 16);
		for (size_t c = 0; c < nca && c < 16; c++) {
			const struct kb_class *cl = kb_class_at(co->kb, cls_a[c]);

			if (!kb_class_is_therapy(co->kb, cls_a[c]))
				continue;
			for (unsigned j = 0; j < o->map.n; j++) {
				unsigned db = o->map.ref[j].id;
				struct coord_finding *f;

				if (o->map.ref[j].kind != KB_REF_DRUG || db == da ||
				    !kb_drug_in_class(co->kb, db, cls_a[c]))
					continue;
				if (!(f = add_finding(fs)))
					return;
				f->severity = KB_SEV_MODERATE;
				f->interruptive = true;
				f->code = "DUPTHPCLS";
				f->code_display = "duplicate therapeutic class alert";
				f->detail = arena_printf(fs->a,
					"Two %s at once: %s (%s, %s) and %s (%s, %s).",
					cl->name, drug_name(co, da), m->words, m->ref,
					drug_name(co, db), o->words, o->ref);
				f->mitigation = "Usually one drug of this class is enough: review whether both are needed.";
				f->key = pair_key(fs->a, arena_printf(fs->a, "dupclass:%s", cl->name),
						  m->ref, o->ref);
				f->implicated[0] = m->ref;
				f->implicated[1] = o->ref;
				f->source = source_words(co, fs->a, cl->source);
			}
		}
	}
}

static void
allergy_findings(struct coord *co, const struct med *m, const struct allergy *al,
		 struct findings *fs)
{
	struct kb_allergy_hit hits[8];
	size_t n = kb_allergy_check(co->kb, &al->map, &m->map, hits, 8);

	for (size_t i = 0; i < n && i < 8; i++) {
		const struct kb_allergy_hit *h = &hits[i];
		struct coord_finding *f = add_finding(fs);

		if (!f)
			return;
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
			f->mitigation = "Choose a drug the patient is not allergic to, or confirm the allergy record is wrong.";
			f->key = pair_key(fs->a, "allergy", m->ref, al->ref);
			f->source = NULL;
		} else {
			f->code = "RALG";
			f->code_display = "Related Allergy Alert";
			f->detail = arena_printf(fs->a,
				"The patient is recorded as allergic to %s (%s); %s (%s, %s) may cross-react: %s",
				al->words, al->ref, drug_name(co, h->drug), m->words, m->ref,
				h->rule->note && *h->rule->note ? h->rule->note : "see the reference.");
			f->mitigation = h->severity >= KB_SEV_MODERATE ?
				"Consider an alternative, or give with monitoring if the reaction was mild." :
				"Cross-reactivity is uncommon; note the recorded reaction.";
			f->key = pair_key(fs->a, "cross-allergy", m->ref, al->ref);
			f->source = source_words(co, fs->a, h->rule->source);
		}
	}
}

/* ---- whom to tell --------------------------------------------------------- */

static bool
coding_is(const json_t *cc, const char *system, const char *code)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(cc, "coding"), i, c) {
		const char *s = str_at(c, "system"), *k = str_at(c, "code");

		if (s && k && !strcmp(s, system) && !strcmp(k, code))
			return true;
	}
	return false;
}

static bool
says(const char *text, const char *what)
{
	return text && strcasestr(text, what) != NULL;
}

static bool
concept_says(const json_t *cc, const char *what)
{
	size_t i;
	json_t *c;

	if (says(str_at(cc, "text"), what))
		return true;
	json_array_foreach(json_object_get(cc, "coding"), i, c)
		if (says(str_at(c, "display"), what))
			return true;
	return false;
}

#define SCT "http://snomed.info/sct"
#define NUCC "http://nucc.org/provider-taxonomy"

/* Whether a CareTeam participant's role is one the medication rules tell:
 * the primary care physician, a pharmacist, the care coordinator. */
static bool
role_told(const json_t *roles)
{
	size_t i;
	json_t *cc;

	json_array_foreach(roles, i, cc) {
		if (coding_is(cc, SCT, "446050000") ||  /* primary care physician */
		    coding_is(cc, SCT, "62247001") ||   /* general practitioner */
		    coding_is(cc, NUCC, "207Q00000X") || /* family medicine */
		    coding_is(cc, NUCC, "208D00000X") || /* general practice */
		    coding_is(cc, SCT, "46255001") ||   /* pharmacist */
		    coding_is(cc, NUCC, "183500000X") || /* pharmacist */
		    coding_is(cc, SCT, "768730001") ||  /* care coordinator */
		    coding_is(cc, NUCC, "163WC0400X") || /* case management RN */
		    concept_says(cc, "primary care") || concept_says(cc, "pharmacist") ||
		    concept_says(cc, "care coordinator") || concept_says(cc, "case manag"))
			return true;
	}
	return false;
}

static bool
add_ref(struct arena *a, const char ***v, size_t *n, const char *ref)
{
	if (!ref || (strncmp(ref, "Practitioner/", 13) && strncmp(ref, "PractitionerRole/", 17)))
		return true;
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*v)[i], ref))
			return true;
	if (*n == COORD_NOTIFY_MAX)
		return true;
	if (!*v && !(*v = arena_alloc(a, COORD_NOTIFY_MAX * sizeof(**v))))
		return false;
	(*v)[(*n)++] = ref;
	return true;
}

/* Today as YYYY-MM-DD, for the participants' periods. */
static void
today(char out[11])
{
	char at[32];

	time_format_instant(time_now_ms(), at);
	memcpy(out, at, 10);
	out[10] = '\0';
}

static enum cw_err
load_notify(struct store_tx *tx, struct arena *a, const char *patient,
	    const char *prescriber, struct coord_report *out, struct diag *d)
{
	const char *q[] = {"subject", patient, "status", "active"};
	const char **ids;
	size_t n;
	char day[11];
	enum cw_err err;

	if (!add_ref(a, &out->notify, &out->nnotify, prescriber))
		return CW_ENOMEM;
	err = match(tx, a, "CareTeam", q, 2, 20, &ids, &n, d);
	if (err)
		return err;
	today(day);
	for (size_t i = 0; i < n; i++) {
		json_t *team = read_json(tx, a, "CareTeam", ids[i], d), *p;
		size_t k;

		json_array_foreach(json_object_get(team, "participant"), k, p) {
			const char *end = str_at(json_object_get(p, "period"), "end");

			if (end && strncmp(end, day, 10) < 0)
				continue;
			if (role_told(json_object_get(p, "role")) &&
			    !add_ref(a, &out->notify, &out->nnotify,
				     str_at(json_object_get(p, "member"), "reference")))
				return CW_ENOMEM;
		}
	}
	return CW_OK;
}

/* ---- the checks --------------------------------------------------------- */

static enum cw_err
check_med(struct coord *co, struct store_tx *tx, struct arena *a,
	  const char *type, const char *ref, const json_t *res,
	  struct coord_report *out, struct diag *d)
{
	struct record rec = {0};
	struct findings fs = {.a = a};
	struct med m;
	enum cw_err err;

	out->patient = patient_of(type, res);
	if (!out->patient)
		return CW_OK;
	med_fill(co, tx, a, &m, type, ref, res, d);
	if (m.map.status != KB_MAPPED) {
		out->unchecked = true;
		out->unchecked_what = m.map.status == KB_PARTIAL ?
			arena_printf(a, "%s: careweave knows part of it (not \"%s\")", m.words,
				     m.map.unknown) :
			arena_printf(a, "%s: careweave does not know this medication", m.words);
	}
	if ((err = load_meds(co, tx, a, out->patient, "MedicationRequest", ref, &rec, d)) ||
	    (err = load_meds(co, tx, a, out->patient, "MedicationStatement", ref, &rec, d)) ||
	    (err = load_allergies(co, tx, a, out->patient, &rec, d)))
		return err;
	for (size_t i = 0; i < rec.nmeds; i++) {
		const struct med *o = &rec.meds[i];

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
		ddi_findings(co, &m, o, &fs);
		dup_findings(co, &m, o, &fs);
	}
	for (size_t i = 0; i < rec.nallergies; i++)
		allergy_findings(co, &m, &rec.allergies[i], &fs);
	out->findings = fs.f;
	out->nfindings = fs.n;
	if (fs.n)
		return load_notify(tx, a, out->patient, m.by, out, d);
	return CW_OK;
}

enum cw_err
coord_on_change(struct coord *co, struct store_tx *tx, struct arena *a,
		const char *type, const char *id, const json_t *res,
		struct coord_report *out, struct diag *d)
{
	const char *ref;

	memset(out, 0, sizeof(*out));
	if (!co || !coord_watches(type))
		return CW_OK;
	if (!(ref = arena_printf(a, "%s/%s", type, id)))
		return CW_ENOMEM;
	if (!res || !med_current(type, res)) {
		/* deleted, stopped, completed...: what it was part of is settled */
		out->settles = ref;
		return CW_OK;
	}
	return check_med(co, tx, a, type, ref, res, out, d);
}

enum cw_err
coord_check_proposed(struct coord *co, struct store_tx *tx, struct arena *a,
		     const json_t *res, struct coord_report *out, struct diag *d)
{
	const char *type = str_at(res, "resourceType");

	memset(out, 0, sizeof(*out));
	if (!co || !type || !coord_watches(type))
		return CW_OK;
	return check_med(co, tx, a, type,
			 arena_printf(a, "%s/%s", type, str_at(res, "id") ? str_at(res, "id") :
				      "proposed"),
			 res, out, d);
}

/* ---- the DetectedIssue ---------------------------------------------------- */

json_t *
coord_issue(const struct coord_report *r, const struct coord_finding *f,
	    const char *when)
{
	json_t *di, *impl = json_array();

	for (size_t i = 0; impl && i < 2; i++)
		if (f->implicated[i] &&
		    json_array_append_new(impl, json_pack("{s:s}", "reference", f->implicated[i]))) {
			json_decref(impl);
			return NULL;
		}
	di = json_pack("{s:s, s:[{s:s, s:s}], s:s, s:{s:[{s:s, s:s, s:s}]}, s:s,"
		       " s:{s:s}, s:s, s:o, s:s}",
		       "resourceType", "DetectedIssue",
		       "identifier", "system", COORD_ISSUE_SYSTEM, "value", f->key,
		       "status", "final",
		       "code", "coding", "system", V3_ACT_CODE, "code", f->code,
		       "display", f->code_display,
		       "severity", kb_severity_name(f->severity),
		       "patient", "reference", r->patient,
		       "identifiedDateTime", when,
		       "implicated", impl,
		       "detail", f->detail);
	if (di && f->source)
		json_object_set_new(di, "detail", json_sprintf("%s (Source: %s.)", f->detail,
							       f->source));
	return di;
}
