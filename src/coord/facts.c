/* coord/facts.c: what the rules keep of each patient (the "facts").
 *
 * A medication check compares one record with every other current
 * medication and allergy of the patient, and a finding is raised once.
 * Searching, reading and parsing the whole record on every write cost
 * several times the write itself, so coord/ keeps one store row per
 * patient ("coord/<patient id>", store_tx_facts_*) with what the rules
 * need of each record:
 *
 *   - a current MedicationRequest or MedicationStatement (coord_med_current):
 *     its reference, prescriber or reporter, words and kb mapping; one that
 *     names a Medication resource keeps that reference instead, mapped
 *     when the row is read (the Medication may change on its own);
 *   - a current AllergyIntolerance (coord_allergy_current): its reference,
 *     words and kb mapping;
 *   - a final DetectedIssue with careweave's identifier: its reference and
 *     key (what api/rules.c asks before raising a finding).
 *
 * coord_note_write changes the row at every write of those types, from
 * the one write path (api_op_exec), in the change's transaction: the row
 * commits and rolls back with the change, and when the rules of a Bundle
 * run (after all its entries) every entry is in it. The invariant: a
 * record has an entry only in the row of the patient its current version
 * names, and only while it is current.
 *
 * A row that is missing, from another kb (kb_fingerprint) or another
 * encoding, or that does not decode, is made again from the record by
 * the searches the rules ran before the rows existed; so is one whose
 * patient a write without rules touched (coord_note_write with no coord
 * drops the rows). Nothing but coord/ reads a row. */
#include <stdlib.h>
#include <string.h>

#include "coord/coord_int.h"

#define FACTS_MAGIC "CWF1"
#define FACTS_BODY_MAX (4u << 20) /* larger: not kept, made on every read */
#define FACTS_FINDINGS_MAX 2000

/* ---- one record ----------------------------------------------------------- */

static const char *
type_of_kind(char kind)
{
	switch (kind) {
	case COORD_FACT_REQUEST:
		return "MedicationRequest";
	case COORD_FACT_STATEMENT:
		return "MedicationStatement";
	case COORD_FACT_ALLERGY:
		return "AllergyIntolerance";
	default:
		return "DetectedIssue";
	}
}

static char
kind_of_type(const char *type)
{
	if (!strcmp(type, "MedicationRequest"))
		return COORD_FACT_REQUEST;
	if (!strcmp(type, "MedicationStatement"))
		return COORD_FACT_STATEMENT;
	if (!strcmp(type, "AllergyIntolerance"))
		return COORD_FACT_ALLERGY;
	return !strcmp(type, "DetectedIssue") ? COORD_FACT_FINDING : 0;
}

bool
coord_keeps(const char *type)
{
	return type && kind_of_type(type) != 0;
}

const char *
coord_patient_of(const char *type, const json_t *res)
{
	const char *ref = coord_str_at(json_object_get(res, !strcmp(type, "AllergyIntolerance") ||
							    !strcmp(type, "DetectedIssue") ?
							    "patient" : "subject"),
				       "reference");

	return ref && !strncmp(ref, "Patient/", 8) && ref[8] ? ref : NULL;
}

const char *
coord_concept_words(const json_t *cc)
{
	const char *t = coord_str_at(cc, "text");
	json_t *c = json_array_get(json_object_get(cc, "coding"), 0);

	if (t && *t)
		return t;
	if (c && coord_str_at(c, "display"))
		return coord_str_at(c, "display");
	if (c && coord_str_at(c, "code"))
		return coord_str_at(c, "code");
	return "an unnamed medication";
}

/* The key of a DetectedIssue careweave raised (its COORD_ISSUE_SYSTEM
 * identifier), or NULL. */
static const char *
finding_key(const json_t *res)
{
	size_t i;
	json_t *id;

	json_array_foreach(json_object_get(res, "identifier"), i, id) {
		const char *sys = coord_str_at(id, "system"), *v = coord_str_at(id, "value");

		if (sys && v && !strcmp(sys, COORD_ISSUE_SYSTEM))
			return v;
	}
	return NULL;
}

/* The CodeableConcept a medication record names: its own, or a contained
 * Medication's; *medref "Medication/x" when it names a Medication resource
 * (the concept is then the caller's to find). */
static const json_t *
med_concept(const json_t *res, const char **medref)
{
	const json_t *cc = json_object_get(res, "medicationCodeableConcept");
	const char *ref;
	size_t i;
	json_t *c;

	*medref = NULL;
	if (cc)
		return cc;
	ref = coord_str_at(json_object_get(res, "medicationReference"), "reference");
	if (!ref)
		return NULL;
	if (ref[0] == '#') {
		json_array_foreach(json_object_get(res, "contained"), i, c) {
			const char *ct = coord_str_at(c, "resourceType"), *cid = coord_str_at(c, "id");

			if (ct && !strcmp(ct, "Medication") && cid && !strcmp(cid, ref + 1))
				return json_object_get(c, "code");
		}
		return NULL;
	}
	if (!strncmp(ref, "Medication/", 11) && ref[11])
		*medref = ref;
	return NULL;
}

static void
map_medication(struct coord *co, struct coord_fact *f, const json_t *cc)
{
	struct kb_coding cs[8];
	const char *text = NULL;
	size_t n = cc ? coord_codings_of(cc, cs, 8, &text) : 0;

	f->words = cc ? coord_concept_words(cc) : "a medication without a code or name";
	kb_map_medication(co->kb, cs, n, text, &f->map);
}

/* The Medication resource a record names: mapped now (the kb may map it
 * differently from the Medication's own last version). */
static void
resolve_medref(struct coord *co, struct store_tx *tx, struct arena *a,
	       const struct coord_given *given, struct coord_fact *f, struct diag *d)
{
	const json_t *m = NULL;

	if (tx) {
		m = coord_read_json(tx, a, "Medication", f->medref + 11, d);
	} else {
		for (size_t i = 0; given && i < given->n && !m; i++) {
			const char *gt = coord_str_at(given->res[i], "resourceType");
			const char *gid = coord_str_at(given->res[i], "id");

			if (gt && !strcmp(gt, "Medication") && gid && !strcmp(gid, f->medref + 11))
				m = given->res[i];
		}
	}
	map_medication(co, f, m ? json_object_get(m, "code") : NULL);
}

bool
coord_fact_of(struct coord *co, struct store_tx *tx, struct arena *a,
	      const char *type, const char *ref, const json_t *res,
	      const struct coord_given *given, bool keep_medref,
	      struct coord_fact *out, struct diag *d)
{
	memset(out, 0, sizeof(*out));
	out->kind = kind_of_type(type);
	out->type = type_of_kind(out->kind);
	out->ref = ref;
	switch (out->kind) {
	case COORD_FACT_REQUEST:
	case COORD_FACT_STATEMENT: {
		const json_t *cc;

		out->by = coord_str_at(json_object_get(res, out->kind == COORD_FACT_REQUEST ?
							   "requester" : "informationSource"),
				       "reference");
		cc = med_concept(res, &out->medref);
		if (!out->medref)
			map_medication(co, out, cc);
		else if (!keep_medref) {
			resolve_medref(co, tx, a, given, out, d);
			out->medref = NULL;
		} /* else mapped when read */
		return coord_med_current(type, res);
	}
	case COORD_FACT_ALLERGY: {
		const json_t *cc = json_object_get(res, "code");
		struct kb_coding cs[8];
		const char *text = NULL;
		size_t nc = cc ? coord_codings_of(cc, cs, 8, &text) : 0;

		out->words = cc ? coord_concept_words(cc) : "an allergy without a code or name";
		kb_map_allergy(co->kb, cs, nc, text, &out->map);
		return coord_allergy_current(res);
	}
	case COORD_FACT_FINDING: {
		const char *st = coord_str_at(res, "status");

		out->key = finding_key(res);
		return out->key && st && !strcmp(st, "final");
	}
	default:
		return false;
	}
}

/* ---- the encoding ----------------------------------------------------------
 *
 * FACTS_MAGIC, the kb fingerprint (8 bytes, little-endian), the number of
 * entries (4), then each entry: its kind (1 byte), ref; a medication: by,
 * words, medref, mapping; an allergy: words, mapping; a finding: key. A
 * string is its length (2 bytes, 0xffff for none), its bytes and a NUL, so
 * a decoded string points into the row. A mapping: status, truncated, n
 * (1 byte each), n refs (kind, via, id: 4 bytes), the unknown word. */

struct writer {
	unsigned char *p;
	size_t n, cap;
	enum cw_err err; /* the first failure: CW_ETOOBIG past FACTS_BODY_MAX */
};

/* Room for k more bytes (a row is written in one go: grown by doubling). */
static bool
reserve(struct writer *w, size_t k)
{
	size_t cap = w->cap ? w->cap : 4096;
	unsigned char *np;

	if (w->err)
		return false;
	if (w->n + k <= w->cap)
		return true;
	if (w->n + k > FACTS_BODY_MAX) {
		w->err = CW_ETOOBIG;
		return false;
	}
	while (cap < w->n + k)
		cap *= 2;
	if (!(np = realloc(w->p, cap))) {
		w->err = CW_ENOMEM;
		return false;
	}
	w->p = np;
	w->cap = cap;
	return true;
}

static void
put_bytes(struct writer *w, const void *p, size_t n)
{
	if (!reserve(w, n))
		return;
	memcpy(w->p + w->n, p, n);
	w->n += n;
}

static void
put_u(struct writer *w, uint64_t v, int bytes)
{
	if (!reserve(w, (size_t)bytes))
		return;
	for (int i = 0; i < bytes; i++)
		w->p[w->n++] = (unsigned char)(v >> (8 * i) & 0xff);
}

static void
put_str(struct writer *w, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n >= 0xffff)
		n = 0xfffe; /* a reference or name never is; cut, not refused */
	if (!s) {
		put_u(w, 0xffff, 2);
		return;
	}
	if (!reserve(w, n + 3))
		return;
	w->p[w->n++] = (unsigned char)(n & 0xff);
	w->p[w->n++] = (unsigned char)(n >> 8);
	memcpy(w->p + w->n, s, n);
	w->n += n;
	w->p[w->n++] = '\0';
}

static void
put_map(struct writer *w, const struct kb_mapping *m)
{
	put_u(w, (uint64_t)m->status, 1);
	put_u(w, m->truncated, 1);
	put_u(w, m->n, 1);
	for (unsigned i = 0; i < m->n; i++) {
		put_u(w, m->ref[i].kind, 1);
		put_u(w, m->ref[i].via, 1);
		put_u(w, m->ref[i].id, 2);
	}
	put_str(w, m->unknown);
}

static void
encode(const struct coord *co, const struct coord_facts *f, struct writer *w)
{
	put_bytes(w, FACTS_MAGIC, 4);
	put_u(w, kb_fingerprint(co->kb), 8);
	put_u(w, f->n, 4);
	for (size_t i = 0; i < f->n; i++) {
		const struct coord_fact *e = &f->e[i];

		put_u(w, (unsigned char)e->kind, 1);
		put_str(w, e->ref);
		switch (e->kind) {
		case COORD_FACT_REQUEST:
		case COORD_FACT_STATEMENT:
			put_str(w, e->by);
			put_str(w, e->words);
			put_str(w, e->medref);
			put_map(w, &e->map);
			break;
		case COORD_FACT_ALLERGY:
			put_str(w, e->words);
			put_map(w, &e->map);
			break;
		default:
			put_str(w, e->key);
			break;
		}
	}
}

struct reader {
	const unsigned char *p, *end;
	bool bad;
};

static uint64_t
get_u(struct reader *r, int bytes)
{
	uint64_t v = 0;

	if (r->bad || r->end - r->p < bytes) {
		r->bad = true;
		return 0;
	}
	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)r->p[i] << (8 * i);
	r->p += bytes;
	return v;
}

static const char *
get_str(struct reader *r)
{
	uint64_t n = get_u(r, 2);
	const char *s;

	if (r->bad || n == 0xffff)
		return NULL;
	if ((uint64_t)(r->end - r->p) < n + 1 || r->p[n] != '\0') {
		r->bad = true;
		return NULL;
	}
	s = (const char *)r->p;
	r->p += n + 1;
	return s;
}

static void
get_map(struct reader *r, struct kb_mapping *m)
{
	const char *u;

	memset(m, 0, sizeof(*m));
	m->status = (enum kb_status)get_u(r, 1);
	m->truncated = get_u(r, 1) != 0;
	m->n = (unsigned)get_u(r, 1);
	if (m->n > KB_MAP_MAX || m->status > KB_MAPPED) {
		r->bad = true;
		return;
	}
	for (unsigned i = 0; i < m->n; i++) {
		m->ref[i].kind = (uint8_t)get_u(r, 1);
		m->ref[i].via = (uint8_t)get_u(r, 1);
		m->ref[i].id = (uint16_t)get_u(r, 2);
	}
	u = get_str(r);
	if (u && strlen(u) < sizeof(m->unknown))
		memcpy(m->unknown, u, strlen(u) + 1);
}

/* Whether body decodes as a row of this kb; out's strings point into it. */
static bool
decode(const struct coord *co, struct arena *a, struct span body,
       struct coord_facts *out)
{
	struct reader r = {(const unsigned char *)body.p,
			   (const unsigned char *)body.p + body.n, false};
	uint64_t n;

	if (body.n < 16 || memcmp(body.p, FACTS_MAGIC, 4))
		return false;
	r.p += 4;
	if (get_u(&r, 8) != kb_fingerprint(co->kb))
		return false;
	n = get_u(&r, 4);
	if (n > body.n / 4)
		return false; /* no entry is shorter than 4 bytes */
	out->n = 0;
	out->cap = (size_t)n + 8;
	if (!(out->e = arena_alloc(a, out->cap * sizeof(*out->e))))
		return false;
	for (uint64_t i = 0; i < n && !r.bad; i++) {
		struct coord_fact *e = &out->e[out->n++];

		memset(e, 0, sizeof(*e));
		e->kind = (char)get_u(&r, 1);
		e->type = type_of_kind(e->kind);
		e->ref = get_str(&r);
		switch (e->kind) {
		case COORD_FACT_REQUEST:
		case COORD_FACT_STATEMENT:
			e->by = get_str(&r);
			e->words = get_str(&r);
			e->medref = get_str(&r);
			get_map(&r, &e->map);
			break;
		case COORD_FACT_ALLERGY:
			e->words = get_str(&r);
			get_map(&r, &e->map);
			break;
		case COORD_FACT_FINDING:
			e->key = get_str(&r);
			break;
		default:
			r.bad = true;
			break;
		}
		if (!e->ref || (e->kind == COORD_FACT_FINDING && !e->key) ||
		    (e->kind != COORD_FACT_FINDING && !e->medref && !e->words))
			r.bad = true;
	}
	return !r.bad && r.p == r.end;
}

/* ---- the row -------------------------------------------------------------- */

static const char *
row_name(struct arena *a, const char *patient)
{
	return arena_printf(a, "coord/%s", patient + 8);
}

static enum cw_err
save(const struct coord *co, struct store_tx *tx, struct arena *a,
     const struct coord_facts *f)
{
	struct writer w = {NULL, 0, 0, CW_OK};
	const char *name = row_name(a, f->patient);
	enum cw_err err;

	if (!name)
		return CW_ENOMEM;
	encode(co, f, &w);
	if (w.err == CW_ETOOBIG) {
		/* too much to keep: every read makes it again (slow, still right) */
		log_warn("coord: the facts of %s are too large to keep", f->patient);
		err = store_tx_facts_drop(tx, name);
	} else {
		err = w.err ? w.err : store_tx_facts_put(tx, name, w.p, w.n);
	}
	free(w.p);
	return err;
}

static struct coord_fact *
add_entry(struct arena *a, struct coord_facts *f)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 32;
		struct coord_fact *ne = arena_realloc(a, f->e, f->cap * sizeof(*ne),
						      cap * sizeof(*ne));

		if (!ne)
			return NULL;
		f->e = ne;
		f->cap = cap;
	}
	return &f->e[f->n++];
}

/* Adds the current records of type of patient matching q (a search). */
static enum cw_err
build_type(struct coord *co, struct store_tx *tx, struct arena *a,
	   const char *type, const char *const *q, size_t npairs, size_t max,
	   struct coord_facts *f, struct diag *d)
{
	const char **ids;
	size_t n;
	enum cw_err err;

	if ((err = coord_match(tx, a, type, q, npairs, max, &ids, &n, d)))
		return err;
	if (n == max)
		log_warn("coord: %s has %zu or more %ss to keep; kept the first",
			 f->patient, n, type);
	for (size_t i = 0; i < n; i++) {
		const json_t *res = coord_read_json(tx, a, type, ids[i], d);
		const char *ref = arena_printf(a, "%s/%s", type, ids[i]);
		struct coord_fact e, *slot;

		if (!ref)
			return CW_ENOMEM;
		if (!res || !coord_fact_of(co, tx, a, type, ref, res, NULL, true, &e, d))
			continue;
		if (!(slot = add_entry(a, f)))
			return CW_ENOMEM;
		*slot = e;
	}
	return CW_OK;
}

/* The facts of patient made from the record, as the transaction sees it. */
static enum cw_err
build(struct coord *co, struct store_tx *tx, struct arena *a,
      struct coord_facts *f, struct diag *d)
{
	const char *p = f->patient;
	const char *mr[] = {"subject", p, "status", "active,on-hold"};
	const char *ms[] = {"subject", p, "status", "active,on-hold,intended"};
	const char *al[] = {"patient", p};
	const char *di[] = {"patient", p, "status", "final",
			    "identifier", COORD_ISSUE_SYSTEM "|"};
	enum cw_err err;

	f->n = 0;
	if ((err = build_type(co, tx, a, "MedicationRequest", mr, 2, COORD_MEDS_MAX, f, d)) ||
	    (err = build_type(co, tx, a, "MedicationStatement", ms, 2, COORD_MEDS_MAX, f, d)) ||
	    (err = build_type(co, tx, a, "AllergyIntolerance", al, 1, COORD_ALLERGIES_MAX, f, d)))
		return err;
	return build_type(co, tx, a, "DetectedIssue", di, 3, FACTS_FINDINGS_MAX, f, d);
}

/* The row of patient; *kept false when there is none that decodes (out is
 * then empty). */
static enum cw_err
read_row(struct coord *co, struct store_tx *tx, struct arena *a,
	 const char *patient, struct coord_facts *out, bool *kept)
{
	const char *name = row_name(a, patient);
	struct span body;
	bool found;
	enum cw_err err;

	memset(out, 0, sizeof(*out));
	out->patient = patient;
	*kept = false;
	if (!name)
		return CW_ENOMEM;
	if ((err = store_tx_facts_get(tx, a, name, &body, &found)))
		return err;
	if (found && decode(co, a, body, out)) {
		*kept = true;
		return CW_OK;
	}
	memset(out, 0, sizeof(*out));
	out->patient = patient;
	return CW_OK;
}

enum cw_err
coord_facts_load(struct coord *co, struct store_tx *tx, struct arena *a,
		 const char *patient, struct coord_facts *out, struct diag *d)
{
	bool kept;
	enum cw_err err;

	if ((err = read_row(co, tx, a, patient, out, &kept)) || kept)
		return err;
	if ((err = build(co, tx, a, out, d)))
		return err;
	return save(co, tx, a, out);
}

bool
coord_facts_raised(const struct coord_facts *f, const char *key)
{
	for (size_t i = 0; f && i < f->n; i++)
		if (f->e[i].kind == COORD_FACT_FINDING && !strcmp(f->e[i].key, key))
			return true;
	return false;
}

enum cw_err
coord_fact_resolve(struct coord *co, struct store_tx *tx, struct arena *a,
		   struct coord_fact *f, struct diag *d)
{
	if (f->medref) {
		resolve_medref(co, tx, a, NULL, f, d);
		f->medref = NULL;
	}
	return CW_OK;
}

/* The entry of ref in f, or -1. */
static ptrdiff_t
entry_of(const struct coord_facts *f, const char *ref)
{
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->e[i].ref, ref))
			return (ptrdiff_t)i;
	return -1;
}

static bool
same_str(const char *x, const char *y)
{
	return x == y || (x && y && !strcmp(x, y));
}

static bool
same_fact(const struct coord_fact *x, const struct coord_fact *y)
{
	if (x->kind != y->kind || !same_str(x->ref, y->ref) || !same_str(x->by, y->by) ||
	    !same_str(x->words, y->words) || !same_str(x->medref, y->medref) ||
	    !same_str(x->key, y->key))
		return false;
	if (x->kind == COORD_FACT_FINDING)
		return true;
	if (x->map.status != y->map.status || x->map.truncated != y->map.truncated ||
	    x->map.n != y->map.n || strcmp(x->map.unknown, y->map.unknown))
		return false;
	for (unsigned i = 0; i < x->map.n; i++)
		if (x->map.ref[i].kind != y->map.ref[i].kind ||
		    x->map.ref[i].via != y->map.ref[i].via || x->map.ref[i].id != y->map.ref[i].id)
			return false;
	return true;
}

/* Takes ref out of the kept row of patient (a record that moved to another
 * patient); a patient with no row has nothing to take out. */
static enum cw_err
forget(struct coord *co, struct store_tx *tx, struct arena *a,
       const char *patient, const char *ref)
{
	struct coord_facts f;
	ptrdiff_t at;
	bool kept;
	enum cw_err err;

	if ((err = read_row(co, tx, a, patient, &f, &kept)) || !kept)
		return err;
	if ((at = entry_of(&f, ref)) < 0)
		return CW_OK;
	f.e[at] = f.e[--f.n];
	return save(co, tx, a, &f);
}

enum cw_err
coord_note_write(struct coord *co, struct store_tx *tx, struct arena *a,
		 const char *type, const char *id, const json_t *res, bool fresh,
		 const char *const *before, size_t nbefore, struct diag *d)
{
	const char *ref, *patient = NULL;
	struct coord_fact e;
	struct coord_facts f;
	bool current = false, kept;
	ptrdiff_t at;
	enum cw_err err;

	if (!coord_keeps(type))
		return CW_OK;
	if (res)
		patient = coord_patient_of(type, res);
	if (!co) {
		/* a write without the rules: what they kept of these patients
		 * may be wrong now, so it is made again when next needed */
		const char *name;

		for (size_t i = 0; i < nbefore; i++)
			if (!(name = arena_printf(a, "coord/%s", before[i])) ||
			    (err = store_tx_facts_drop(tx, name)))
				return name ? err : CW_ENOMEM;
		return patient ? store_tx_facts_drop(tx, row_name(a, patient)) : CW_OK;
	}
	if (!(ref = arena_printf(a, "%s/%s", type, id)))
		return CW_ENOMEM;
	for (size_t i = 0; i < nbefore; i++) {
		const char *p = arena_printf(a, "Patient/%s", before[i]);

		if (!p)
			return CW_ENOMEM;
		if ((!patient || strcmp(p, patient)) && (err = forget(co, tx, a, p, ref)))
			return err;
	}
	if (!patient)
		return CW_OK;
	if (res)
		current = coord_fact_of(co, tx, a, type, ref, res, NULL, true, &e, d);
	if (fresh && !current)
		return CW_OK; /* new and not current: in no row, none to change */
	if ((err = read_row(co, tx, a, patient, &f, &kept)))
		return err;
	if (!kept) {
		/* made from the record, which holds this change already */
		if (!current)
			return CW_OK;
		if ((err = build(co, tx, a, &f, d)))
			return err;
		return save(co, tx, a, &f);
	}
	at = entry_of(&f, ref);
	if (current) {
		struct coord_fact *slot;

		if (at >= 0 && same_fact(&f.e[at], &e))
			return CW_OK; /* written again as it was: nothing to keep anew */
		if (at >= 0)
			f.e[at] = e;
		else if ((slot = add_entry(a, &f)))
			*slot = e;
		else
			return CW_ENOMEM;
	} else {
		if (at < 0)
			return CW_OK;
		f.e[at] = f.e[--f.n];
	}
	return save(co, tx, a, &f);
}
