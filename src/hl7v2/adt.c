/* hl7v2/adt.c: ADT events as changes to the record.
 *
 * Every ADT event carries the patient (PID) and most a visit (PV1); the
 * event says what happened to the visit:
 *
 *   A01 admit, A04 register, A05 pre-admit: the visit begins (in-progress;
 *       pre-admit: planned); A02 transfer: a new location; A03 discharge:
 *       finished, with its end and disposition; A06 / A07: outpatient to
 *       inpatient and back (the class changes); A08: the demographics or
 *       the visit changed; A11, A12, A13: the admit, transfer or discharge
 *       is cancelled and what it did is undone.
 *
 * The Patient is found by the identifiers of PID-3 (any of them; more than
 * one Patient holding them is an error, never a guess), else by the
 * patient matcher; what the message adds to it is in merge_patient: new
 * names, addresses, phones and identifiers, a missing birth date or sex,
 * a death; careweave's values are never overwritten (a difference is a
 * warning in the answer). The Encounter is found by the visit number
 * (PV1-19), else, for an event about a visit already under way, the
 * patient's latest one not finished; an inpatient stay also has its
 * EpisodeOfCare, kept in step. Diagnoses (DG1) become Conditions of
 * the Encounter, next of kin (NK1) RelatedPersons, each with an identifier
 * of its own so a message sent again changes nothing. */
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"
#include "hl7v2/map_int.h"

#define V3_ACT "http://terminology.hl7.org/CodeSystem/v3-ActCode"
#define DG1_SYSTEM "urn:careweave:hl7v2:dg1"
#define NK1_SYSTEM "urn:careweave:hl7v2:nk1"
#define ADT_DG1_MAX 50
#define ADT_NK1_MAX 20

bool
hl7_adt_handles(const char *trigger)
{
	static const char *const events[] = {"A01", "A02", "A03", "A04", "A05", "A06",
					     "A07", "A08", "A11", "A12", "A13", "A40"};

	for (size_t i = 0; trigger && i < sizeof(events) / sizeof(events[0]); i++)
		if (!strcmp(trigger, events[i]))
			return true;
	return false;
}

static bool
is(const char *trigger, const char *event)
{
	return !strcmp(trigger, event);
}

/* ---- what careweave holds ------------------------------------------------- */


static void
decref_cb(void *p)
{
	json_decref(p);
}

/* The resources of type matching key=value (a token "system|value", or a
 * reference), read as committed; f->n says whether there were 0, 1 or more. */
enum cw_err
hl7_map_find(struct hl7_map *mp, const char *type, const char *key, const char *value,
     const char *key2, const char *value2, struct hl7_found *f, struct diag *d)
{
	struct fhir_kv kv[3] = {{key, value}, {key2, value2}, {"_sort", "-_lastUpdated"}};
	struct fhir_query q;
	struct store_page page;
	size_t nkv = key2 ? 3 : 2;
	enum cw_err err;

	memset(f, 0, sizeof(*f));
	if (!key2)
		kv[1] = kv[2];
	if ((err = fhir_query_parse(mp->a, fhir_restype_find(type), kv, nkv, true, &q, d)))
		return err;
	q.count = 2;
	if ((err = store_search(mp->store, mp->a, &q, &page, d)))
		return err;
	f->n = (int)page.n;
	if (!page.n)
		return CW_OK;
	if (fhir_parse_json(page.res[0].json.p, page.res[0].json.n, &f->res, NULL))
		return CW_EINTERNAL;
	if (!arena_on_free(mp->a, decref_cb, f->res)) {
		json_decref(f->res);
		return CW_ENOMEM;
	}
	f->id = page.res[0].id;
	f->version = page.res[0].version;
	return CW_OK;
}

/* An identifier as a token search value ("system|value"), for find(). */
static const char *
token(struct hl7_map *mp, const json_t *ident)
{
	return arena_printf(mp->a, "%s|%s", json_string_value(json_object_get(ident, "system")),
			    json_string_value(json_object_get(ident, "value")));
}

/* The same inside a URL (an entry's conditional url or ifNoneExist). */
static const char *
token_url(struct hl7_map *mp, const json_t *ident)
{
	return hl7_map_token_query(mp->a, json_string_value(json_object_get(ident, "system")),
				   json_string_value(json_object_get(ident, "value")));
}

/* Whether changed says what held (as stored, with meta) already says: then
 * nothing is written (a message that repeats the record costs a read, not
 * a version, its index rows and its rules). */
static bool
unchanged(const json_t *held, const json_t *changed)
{
	json_t *h = json_deep_copy(held);
	bool same;

	if (!h)
		return false;
	json_object_del(h, "meta");
	same = json_equal(h, changed);
	json_decref(h);
	return same;
}

/* A PUT of res (stolen) to ref, guarded by the version read (If-Match: a
 * change meanwhile fails the message, AE, to be replayed), unless held
 * (that version as stored; NULL: no such check) says the same already. */
static enum cw_err
put(struct hl7_map *mp, const char *ref, json_t *res, const json_t *held, long version)
{
	const char *if_match = arena_printf(mp->a, "W/\"%ld\"", version);

	if (!ref || !if_match || (held && unchanged(held, res))) {
		json_decref(res);
		return ref && if_match ? CW_OK : CW_ENOMEM;
	}
	return hl7_map_entry(mp, "PUT", ref, res, NULL, if_match, NULL);
}

/* ---- the Patient ---------------------------------------------------------- */

static const char *
gender_of(const char *sex)
{
	/* HL7 table 0001 to FHIR administrative-gender */
	if (!sex)
		return NULL;
	if (!strcmp(sex, "M"))
		return "male";
	if (!strcmp(sex, "F"))
		return "female";
	if (!strcmp(sex, "O") || !strcmp(sex, "A") || !strcmp(sex, "N"))
		return "other";
	return "unknown";
}

/* The Patient the PID says, as demographics only (identifiers in idents). */
static json_t *
patient_of(struct hl7_map *mp, long pid, json_t *idents)
{
	json_t *p = json_pack("{s:s}", "resourceType", "Patient"), *v, *arr;
	unsigned n;
	const char *s;

	if (!p)
		return NULL;
	if (json_array_size(idents))
		json_object_set(p, "identifier", idents);
	arr = json_array();
	n = hl7_reps(mp->m, (size_t)pid, 5);
	for (unsigned r = 0; r < n && r < HL7_REPS_MAX; r++)
		if ((v = hl7_map_xpn(mp, pid, 5, r)))
			json_array_append_new(arr, v);
	json_object_set_new(p, "name", arr);
	if ((s = hl7_map_dtm(mp, pid, 7, true)))
		json_object_set_new(p, "birthDate", json_string(s));
	if ((s = gender_of(hl7_get(mp->m, (size_t)pid, 8, 0, 1, 0))))
		json_object_set_new(p, "gender", json_string(s));
	arr = json_array();
	n = hl7_reps(mp->m, (size_t)pid, 11);
	for (unsigned r = 0; r < n && r < HL7_REPS_MAX; r++)
		if ((v = hl7_map_xad(mp, pid, 11, r)))
			json_array_append_new(arr, v);
	json_object_set_new(p, "address", arr);
	arr = json_array();
	n = hl7_reps(mp->m, (size_t)pid, 13);
	for (unsigned r = 0; r < n && r < HL7_REPS_MAX; r++)
		if ((v = hl7_map_xtn(mp, pid, 13, r, "home")))
			json_array_append_new(arr, v);
	n = hl7_reps(mp->m, (size_t)pid, 14);
	for (unsigned r = 0; r < n && r < HL7_REPS_MAX; r++)
		if ((v = hl7_map_xtn(mp, pid, 14, r, "work")))
			json_array_append_new(arr, v);
	json_object_set_new(p, "telecom", arr);
	if ((v = hl7_map_table(mp, pid, 16, "0002")))
		json_object_set_new(p, "maritalStatus", v);
	if ((s = hl7_map_dtm(mp, pid, 29, false)))
		json_object_set_new(p, "deceasedDateTime", json_string(s));
	else if ((s = hl7_get(mp->m, (size_t)pid, 30, 0, 1, 0)) && s != HL7_NULL &&
		 (!strcmp(s, "Y") || !strcmp(s, "N")))
		json_object_set_new(p, "deceasedBoolean", json_boolean(!strcmp(s, "Y")));
	/* an empty list is not FHIR */
	for (const char *k = "name"; k; k = !strcmp(k, "name") ? "address" :
					  !strcmp(k, "address") ? "telecom" : NULL)
		if (!json_array_size(json_object_get(p, k)))
			json_object_del(p, k);
	return p;
}

static bool
same_ident(const json_t *x, const json_t *y)
{
	const char *sx = json_string_value(json_object_get(x, "system"));
	const char *sy = json_string_value(json_object_get(y, "system"));
	const char *vx = json_string_value(json_object_get(x, "value"));
	const char *vy = json_string_value(json_object_get(y, "value"));

	return sx && sy && vx && vy && !strcmp(sx, sy) && !strcmp(vx, vy);
}

static const char *
sget(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* The words of a name, an address or a phone, folded (case, accents,
 * punctuation as the search index folds them), to tell one already held. */
static const char *
folded(struct hl7_map *mp, const json_t *v, const char *kind)
{
	char *txt = NULL;
	const char *out;

	if (!strcmp(kind, "name"))
		txt = arena_printf(mp->a, "%s %s", sget(v, "family") ? sget(v, "family") : "",
				   json_string_value(json_array_get(json_object_get(v, "given"), 0)) ?
				   json_string_value(json_array_get(json_object_get(v, "given"), 0)) : "");
	else if (!strcmp(kind, "address"))
		txt = arena_printf(mp->a, "%s %s",
				   json_string_value(json_array_get(json_object_get(v, "line"), 0)) ?
				   json_string_value(json_array_get(json_object_get(v, "line"), 0)) : "",
				   sget(v, "postalCode") ? sget(v, "postalCode") : "");
	else {
		/* a phone: its last 10 digits */
		const char *val = sget(v, "value");
		char digits[32];
		size_t n = 0;

		for (const char *p = val ? val : ""; *p && n < sizeof(digits) - 1; p++)
			if (*p >= '0' && *p <= '9')
				digits[n++] = *p;
		digits[n] = '\0';
		return arena_strdup(mp->a, n > 10 ? digits + n - 10 : digits);
	}
	if (!txt)
		return NULL;
	out = fhir_normalize(mp->a, txt, strlen(txt));
	return out;
}

/* Adds the message's values of list key that careweave does not hold yet
 * (a name, address or phone already held, in other spelling or case, is
 * kept as careweave has it). */
static void
add_new(struct hl7_map *mp, json_t *out, const json_t *msg, const char *key)
{
	json_t *held = json_object_get(out, key), *v, *h;
	size_t i, k;

	json_array_foreach(json_object_get(msg, key), i, v) {
		const char *fv = folded(mp, v, key);
		bool have = false;

		json_array_foreach(held, k, h) {
			const char *fh = folded(mp, h, key);

			have |= fv && fh && *fv && !strcmp(fv, fh);
		}
		if (have)
			continue;
		if (!held) {
			held = json_array();
			json_object_set_new(out, key, held);
		}
		json_array_append(held, v);
	}
}

/* What careweave holds, and what the message adds (see the head of this
 * file): names, addresses and phones careweave does not hold are added;
 * a birth date, sex or marital status careweave lacks is taken; one that
 * differs is kept as careweave has it and said (a warning in the ACK: a
 * person should look); a death the feed reports is taken. A new value
 * owned by the caller. */
static json_t *
merge_patient(struct hl7_map *mp, long pid, const json_t *held, const json_t *msg)
{
	static const struct {
		const char *key;
		unsigned field;
		const char *what;
	} single[] = {{"birthDate", 7, "birth date"}, {"gender", 8, "sex"},
		      {"maritalStatus", 16, "marital status"}};
	json_t *out = json_deep_copy(held), *ids, *v;
	size_t i;

	if (!out)
		return NULL;
	json_object_del(out, "meta");
	add_new(mp, out, msg, "name");
	add_new(mp, out, msg, "address");
	add_new(mp, out, msg, "telecom");
	for (size_t k = 0; k < sizeof(single) / sizeof(single[0]); k++) {
		json_t *mv = json_object_get(msg, single[k].key), *hv = json_object_get(out,
										 single[k].key);

		if (!mv)
			continue;
		if (!hv)
			json_object_set(out, single[k].key, mv);
		else if (!json_equal(hv, mv))
			hl7_map_problem(mp, pid, single[k].field, 103, false,
					"The %s differs from the one careweave holds; careweave's is "
					"kept: check which is right", single[k].what);
	}
	if ((v = json_object_get(msg, "deceasedDateTime"))) {
		json_object_set(out, "deceasedDateTime", v);
		json_object_del(out, "deceasedBoolean");
	} else if ((v = json_object_get(msg, "deceasedBoolean")) && json_is_true(v) &&
		   !json_object_get(out, "deceasedDateTime")) {
		json_object_set(out, "deceasedBoolean", v);
	}
	ids = json_object_get(out, "identifier");
	if (!ids) {
		ids = json_array();
		json_object_set_new(out, "identifier", ids);
	}
	json_array_foreach(json_object_get(msg, "identifier"), i, v) {
		size_t k;
		json_t *h;
		bool have = false;

		json_array_foreach(ids, k, h)
			have |= same_ident(h, v);
		if (!have)
			json_array_append(ids, v);
	}
	return out;
}

/* The patient matcher (coord/match.c) over what careweave holds, for a
 * Patient no identifier found: run in a job that writes nothing. */
struct match_job {
	struct coord *co;
	struct arena *a;
	const json_t *who;
	struct coord_match *m;
	size_t n;
	struct diag *d;
};

static enum cw_err
match_cb(struct store_tx *tx, void *ctx)
{
	struct match_job *j = ctx;

	return coord_match_patient(j->co, tx, j->a, j->who, 1, &j->m, &j->n, j->d);
}

/* A sure match links: *f becomes that Patient. A probable one is kept in
 * *probable: the message makes a new Patient and a Task for a person to
 * decide (never a silent merge). Anything less: a new Patient. */
static enum cw_err
matched(struct hl7_map *mp, const json_t *who, struct hl7_found *f,
	struct coord_match *probable, struct diag *d)
{
	struct match_job j = {.co = mp->coord, .a = mp->a, .who = who, .d = d};
	struct diag md;
	const char *ver;

	if (!mp->coord || !coord_match_usable(who))
		return CW_OK;
	diag_init(&md, mp->a);
	j.d = &md;
	if (store_write(mp->store, match_cb, &j) || !j.n)
		return CW_OK; /* no match (or none to be had): a new Patient */
	if (j.m[0].s.grade == COORD_GRADE_PROBABLE) {
		*probable = j.m[0];
		return CW_OK;
	}
	if (j.m[0].s.grade != COORD_GRADE_CERTAIN)
		return CW_OK;
	ver = json_string_value(json_object_get(json_object_get(j.m[0].res, "meta"), "versionId"));
	f->res = json_deep_copy(j.m[0].res);
	if (!f->res || !arena_on_free(mp->a, decref_cb, f->res)) {
		json_decref(f->res);
		return CW_ENOMEM;
	}
	f->id = j.m[0].id;
	f->version = ver ? strtol(ver, NULL, 10) : 0;
	f->n = 1;
	(void)d;
	return CW_OK;
}

/* The Task for a person to decide whether the new Patient is one held. */
static enum cw_err
review_task(struct hl7_map *mp, const char *new_ref, const struct coord_match *m)
{
	json_t *t = json_pack("{s:s, s:s, s:s, s:s, s:{s:[{s:s, s:s, s:s}], s:s}, s:s,"
			      " s:{s:s}, s:{s:s}}",
			      "resourceType", "Task", "status", "requested", "intent", "order",
			      "priority", "urgent",
			      "code", "coding", "system",
			      "https://careweave.org/fhir/CodeSystem/hl7v2-task",
			      "code", "review-patient-match",
			      "display", "Review a possible duplicate patient",
			      "text", "Review a possible duplicate patient",
			      "description", arena_printf(mp->a,
				"A hospital feed (%s at %s) sent a patient careweave could not "
				"tell apart from Patient/%s (a probable match, score %.2f: %s). "
				"A new Patient was made; if they are the same person, merge them.",
				mp->h->sending_app ? mp->h->sending_app : "?",
				mp->h->sending_facility ? mp->h->sending_facility : "?", m->id,
				m->s.score, m->s.reasons ? m->s.reasons : "see both records"),
			      "for", "reference", new_ref,
			      "focus", "reference", arena_printf(mp->a, "Patient/%s", m->id));

	return t ? hl7_map_entry(mp, "POST", "Task", t, NULL, NULL, NULL) : CW_ENOMEM;
}

/* Adds the Patient entry; *ref is how the other entries name it (map_int.h). */
enum cw_err
hl7_map_patient(struct hl7_map *mp, long pid, const char **ref, const char **key,
	      struct diag *d)
{
	json_t *idents = json_array(), *msgp, *v;
	const char *key_url;
	struct hl7_found f = {0};
	struct coord_match probable = {0};
	unsigned n = hl7_reps(mp->m, (size_t)pid, 3);
	size_t i;
	char uuid[ID_LEN + 1];
	enum cw_err err;

	if (!idents)
		return CW_ENOMEM;
	for (unsigned r = 0; r < n && r < HL7_REPS_MAX; r++)
		if ((v = hl7_map_cx(mp, pid, 3, r)))
			json_array_append_new(idents, v);
	/* before 2.3.1 some feeds put the patient id in PID-2 */
	if (!json_array_size(idents) && (v = hl7_map_cx(mp, pid, 2, 0)))
		json_array_append_new(idents, v);
	if (!json_array_size(idents)) {
		json_decref(idents);
		return hl7_map_problem(mp, pid, 3, 101, true,
				       "PID-3 holds no patient identifier");
	}
	msgp = patient_of(mp, pid, idents);
	if (!msgp) {
		json_decref(idents);
		return CW_ENOMEM;
	}
	*key = token(mp, json_array_get(idents, 0));
	key_url = token_url(mp, json_array_get(idents, 0));
	json_array_foreach(idents, i, v) {
		if ((err = hl7_map_find(mp, "Patient", "identifier", token(mp, v), NULL, NULL, &f, d))) {
			json_decref(idents);
			json_decref(msgp);
			return err;
		}
		if (f.n > 1) {
			json_decref(idents);
			json_decref(msgp);
			return hl7_map_problem(mp, pid, 3, 205, true,
					       "More than one Patient holds identifier %zu of PID-3; "
					       "careweave will not choose (a coordinator should merge them)",
					       i + 1);
		}
		if (f.n == 1)
			break;
	}
	json_decref(idents);
	if (!f.n && (err = matched(mp, msgp, &f, &probable, d))) {
		json_decref(msgp);
		return err;
	}
	if (f.n == 1) {
		json_t *merged = merge_patient(mp, pid, f.res, msgp);

		json_decref(msgp);
		if (!merged)
			return CW_ENOMEM;
		json_object_set_new(merged, "id", json_string(f.id));
		*ref = arena_printf(mp->a, "Patient/%s", f.id);
		/* nothing when the message says nothing new of the patient */
		return put(mp, *ref, merged, f.res, f.version);
	}
	id_new(uuid);
	*ref = arena_printf(mp->a, "urn:uuid:%s", uuid);
	if ((err = hl7_map_entry(mp, "POST", "Patient", msgp,
				 arena_printf(mp->a, "identifier=%s", key_url), NULL, *ref)))
		return err;
	return probable.id ? review_task(mp, *ref, &probable) : CW_OK;
}

/* ---- the Encounter -------------------------------------------------------- */

static json_t *
class_of(const char *pc, const char *trigger)
{
	const char *code = "IMP", *display = "inpatient encounter";

	/* HL7 table 0004 to v3-ActCode (A06: now an inpatient; A07: now an outpatient) */
	if (is(trigger, "A06"))
		pc = "I";
	else if (is(trigger, "A07"))
		pc = "O";
	if (!pc)
		pc = "U";
	switch (pc[0]) {
	case 'E':
		code = "EMER", display = "emergency";
		break;
	case 'O':
	case 'R':
		code = "AMB", display = "ambulatory";
		break;
	case 'P':
		code = "PRENC", display = "pre-admission";
		break;
	case 'I':
	case 'B':
		break;
	default:
		return json_pack("{s:s, s:s, s:s}", "system",
				 "http://terminology.hl7.org/CodeSystem/v3-NullFlavor",
				 "code", "UNK", "display", "unknown");
	}
	return json_pack("{s:s, s:s, s:s}", "system", V3_ACT, "code", code, "display", display);
}

static const char *
status_of(const char *trigger, const char *held)
{
	if (is(trigger, "A03"))
		return "finished";
	if (is(trigger, "A05"))
		return held ? held : "planned";
	if (is(trigger, "A11"))
		return "cancelled";
	if (is(trigger, "A08"))
		return held ? held : "in-progress";
	return "in-progress";
}

/* When the event happened: EVN-6, else EVN-2, else MSH-7. */
static const char *
event_time(struct hl7_map *mp)
{
	long evn = hl7_find(mp->m, "EVN", 0, 0);
	const char *t = evn >= 0 ? hl7_map_dtm(mp, evn, 6, false) : NULL;

	if (!t && evn >= 0)
		t = hl7_map_dtm(mp, evn, 2, false);
	if (!t)
		t = hl7_map_dtm(mp, 0, 7, false);
	return t;
}

/* PV1-3 (PL) in words: point of care, room, bed, facility. */
static const char *
location_words(struct hl7_map *mp, long pv1)
{
	const char *part[4], *out = NULL;

	for (unsigned c = 0; c < 4; c++) {
		part[c] = hl7_get(mp->m, (size_t)pv1, 3, 0, c + 1, 0);
		if (part[c] == HL7_NULL)
			part[c] = NULL;
	}
	for (unsigned c = 0; c < 4; c++)
		if (part[c])
			out = out ? arena_printf(mp->a, "%s, %s %s", out,
						 c == 1 ? "room" : c == 2 ? "bed" : "at",
						 part[c]) :
				    arena_strdup(mp->a, part[c]);
	return out;
}

static void
add_participant(struct hl7_map *mp, json_t *enc, long pv1, unsigned field,
		const char *type, const char *display)
{
	json_t *who = hl7_map_xcn(mp, pv1, field, 0), *parts;

	if (!who)
		return;
	parts = json_object_get(enc, "participant");
	if (!parts) {
		parts = json_array();
		json_object_set_new(enc, "participant", parts);
	}
	json_array_append_new(parts, json_pack("{s:[{s:[{s:s, s:s, s:s}]}], s:o}", "type",
		"coding", "system", "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
		"code", type, "display", display, "individual", who));
}

static json_t *
priority_of(struct hl7_map *mp, long pv1)
{
	const char *t = hl7_get(mp->m, (size_t)pv1, 4, 0, 1, 0);
	const char *code, *display;

	if (!t || t == HL7_NULL)
		return NULL;
	/* HL7 table 0007 to v3-ActPriority */
	if (!strcmp(t, "E") || !strcmp(t, "A") || !strcmp(t, "L"))
		code = "EM", display = "emergency";
	else if (!strcmp(t, "U"))
		code = "UR", display = "urgent";
	else if (!strcmp(t, "R") || !strcmp(t, "C"))
		code = "EL", display = "elective";
	else
		return hl7_map_table(mp, pv1, 4, "0007");
	return json_pack("{s:[{s:s, s:s, s:s}, {s:s, s:s}]}", "coding",
			 "system", "http://terminology.hl7.org/CodeSystem/v3-ActPriority",
			 "code", code, "display", display,
			 "system", HL7_V2_TABLE "0007", "code", t);
}

/* The locations of a transfer: the current one completed at when, the new
 * one active from when; a cancelled transfer (A12) the other way round. */
static void
move(json_t *enc, const char *where, const char *when, bool cancel)
{
	json_t *locs = json_object_get(enc, "location"), *l;
	size_t i, n;

	if (!locs) {
		locs = json_array();
		json_object_set_new(enc, "location", locs);
	}
	n = json_array_size(locs);
	if (cancel) {
		if (n)
			json_array_remove(locs, n - 1);
		if ((l = json_array_get(locs, json_array_size(locs) - 1))) {
			json_object_set_new(l, "status", json_string("active"));
			json_object_del(json_object_get(l, "period"), "end");
		}
		return;
	}
	json_array_foreach(locs, i, l)
		if (!strcmp(json_string_value(json_object_get(l, "status")) ?: "", "active")) {
			json_object_set_new(l, "status", json_string("completed"));
			if (when) {
				json_t *p = json_object_get(l, "period");

				if (!p) {
					p = json_object();
					json_object_set_new(l, "period", p);
				}
				json_object_set_new(p, "end", json_string(when));
			}
		}
	if (where) {
		l = json_pack("{s:{s:s}, s:s}", "location", "display", where, "status", "active");
		if (l && when)
			json_object_set_new(l, "period", json_pack("{s:s}", "start", when));
		json_array_append_new(locs, l);
	}
}

/* Sets what the PV1 says on enc (new or held), for the event. */
static void
visit_facts(struct hl7_map *mp, long pv1, json_t *enc, const char *trigger,
	    bool held, const char *patient_ref, json_t *visit_id)
{
	const char *st = json_string_value(json_object_get(enc, "status"));
	const char *start = hl7_map_dtm(mp, pv1, 44, false);
	const char *end = hl7_map_dtm(mp, pv1, 45, false);
	const char *when = event_time(mp), *where = location_words(mp, pv1);
	json_t *period = json_object_get(enc, "period"), *v, *hosp;

	json_object_set_new(enc, "status", json_string(status_of(trigger, held ? st : NULL)));
	json_object_set_new(enc, "subject", json_pack("{s:s}", "reference", patient_ref));
	if (visit_id && !json_object_get(enc, "identifier"))
		json_object_set_new(enc, "identifier", json_pack("[O]", visit_id));
	if (!is(trigger, "A11") && !is(trigger, "A12") && !is(trigger, "A13"))
		json_object_set_new(enc, "class",
				    class_of(hl7_get(mp->m, (size_t)pv1, 2, 0, 1, 0), trigger));
	else if (!json_object_get(enc, "class"))
		json_object_set_new(enc, "class", class_of(NULL, trigger));
	if (!period) {
		period = json_object();
		json_object_set_new(enc, "period", period);
	}
	if (start)
		json_object_set_new(period, "start", json_string(start));
	else if (!json_object_get(period, "start") && when &&
		 (is(trigger, "A01") || is(trigger, "A04") || is(trigger, "A06") ||
		  is(trigger, "A07") || !held))
		json_object_set_new(period, "start", json_string(when));
	if (is(trigger, "A03")) {
		if (end || when)
			json_object_set_new(period, "end", json_string(end ? end : when));
	} else if (is(trigger, "A13")) {
		json_object_del(period, "end");
		json_object_del(json_object_get(enc, "hospitalization"), "dischargeDisposition");
		if (!json_object_size(json_object_get(enc, "hospitalization")))
			json_object_del(enc, "hospitalization");
	} else if (end) {
		json_object_set_new(period, "end", json_string(end));
	}
	if (!json_object_size(period))
		json_object_del(enc, "period");
	if (is(trigger, "A02") || is(trigger, "A12"))
		move(enc, where, when, is(trigger, "A12"));
	else if (where && !is(trigger, "A11") && !is(trigger, "A13") &&
		 !json_array_size(json_object_get(enc, "location")))
		move(enc, where, start ? start : when, false);
	if (is(trigger, "A11") || is(trigger, "A12") || is(trigger, "A13"))
		return; /* a cancel undoes; it says nothing new about the visit */
	if ((v = priority_of(mp, pv1)))
		json_object_set_new(enc, "priority", v);
	if ((v = hl7_map_table(mp, pv1, 10, "0069")))
		json_object_set_new(enc, "serviceType", v);
	json_object_del(enc, "participant");
	add_participant(mp, enc, pv1, 7, "ATND", "attender");
	add_participant(mp, enc, pv1, 8, "REF", "referrer");
	add_participant(mp, enc, pv1, 9, "CON", "consultant");
	add_participant(mp, enc, pv1, 17, "ADM", "admitter");
	hosp = json_object_get(enc, "hospitalization");
	if (!hosp) {
		hosp = json_object();
		json_object_set_new(enc, "hospitalization", hosp);
	}
	if ((v = hl7_map_table(mp, pv1, 14, "0023")))
		json_object_set_new(hosp, "admitSource", v);
	if ((v = hl7_map_table(mp, pv1, 36, "0112")))
		json_object_set_new(hosp, "dischargeDisposition", v);
	if (!json_object_size(hosp))
		json_object_del(enc, "hospitalization");
}

#define EPISODE_SYSTEM "urn:careweave:hl7v2:episode"

/* The EpisodeOfCare of an inpatient stay (the hospital episode the visit
 * belongs to, for the care team's view of the stay as a whole): found by
 * the stay's key, made or kept in step with the Encounter (status,
 * period); enc gets its reference. Other classes have none. */
static enum cw_err
episode(struct hl7_map *mp, json_t *enc, const char *key, const char *patient_ref,
	struct diag *d)
{
	const char *cls = json_string_value(json_object_get(json_object_get(enc, "class"), "code"));
	const char *st = json_string_value(json_object_get(enc, "status")), *status, *value, *ref;
	struct hl7_found f;
	json_t *eoc, *period = json_object_get(enc, "period");
	char uuid[ID_LEN + 1];
	enum cw_err err;

	if (!coord_inpatient_class(cls))
		return CW_OK;
	status = !st ? "active" : !strcmp(st, "planned") ? "planned" :
		 !strcmp(st, "finished") ? "finished" : !strcmp(st, "cancelled") ? "cancelled" :
		 !strcmp(st, "entered-in-error") ? "entered-in-error" : "active";
	value = hl7_map_key(mp->a, key ? key : mp->h->control_id);
	if ((err = hl7_map_find(mp, "EpisodeOfCare", "identifier",
				arena_printf(mp->a, "%s|%s", EPISODE_SYSTEM, value), NULL, NULL, &f, d)))
		return err;
	if (f.n) {
		if (!(eoc = json_deep_copy(f.res)))
			return CW_ENOMEM;
		json_object_del(eoc, "meta");
	} else if (!(eoc = json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s}]}", "resourceType",
				     "EpisodeOfCare", "identifier", "system", EPISODE_SYSTEM,
				     "value", value, "type", "text", "Hospital stay"))) {
		return CW_ENOMEM;
	}
	json_object_set_new(eoc, "status", json_string(status));
	json_object_set_new(eoc, "patient", json_pack("{s:s}", "reference", patient_ref));
	if (json_object_size(period))
		json_object_set(eoc, "period", period);
	if (f.n) {
		ref = arena_printf(mp->a, "EpisodeOfCare/%s", f.id);
		json_object_set_new(enc, "episodeOfCare", json_pack("[{s:s}]", "reference", ref));
		return put(mp, ref, eoc, f.res, f.version);
	}
	id_new(uuid);
	ref = arena_printf(mp->a, "urn:uuid:%s", uuid);
	json_object_set_new(enc, "episodeOfCare", json_pack("[{s:s}]", "reference", ref));
	return hl7_map_entry(mp, "POST", "EpisodeOfCare", eoc,
			     arena_printf(mp->a, "identifier=%s",
					  hl7_map_token_query(mp->a, EPISODE_SYSTEM, value)),
			     NULL, ref);
}

/* Adds the Encounter entry (when the message has a visit); *ref names it. */
static enum cw_err
encounter_entry(struct hl7_map *mp, long pv1, const char *trigger,
		const char *patient_ref, const char **ref, const char **key,
		struct diag *d)
{
	json_t *visit = hl7_map_cx(mp, pv1, 19, 0), *enc;
	const char *pc = hl7_get(mp->m, (size_t)pv1, 2, 0, 1, 0);
	bool under_way = !is(trigger, "A01") && !is(trigger, "A04") && !is(trigger, "A05");
	const char *key_url = NULL;
	struct hl7_found f = {0};
	char uuid[ID_LEN + 1];
	enum cw_err err;

	*ref = NULL;
	*key = NULL;
	if (pc && pc != HL7_NULL && !strcmp(pc, "N") && !visit)
		return CW_OK; /* "not applicable": no visit */
	if (visit) {
		/* a visit number is the hospital's, per patient account: the
		 * same visit whatever the event */
		json_t *t = json_object_get(visit, "type");

		if (!t)
			json_object_set_new(visit, "type", json_pack("{s:[{s:s, s:s}]}",
				"coding", "system", HL7_V2_TABLE "0203", "code", "VN"));
		*key = token(mp, visit);
		key_url = token_url(mp, visit);
		if ((err = hl7_map_find(mp, "Encounter", "identifier", *key, NULL, NULL, &f, d))) {
			json_decref(visit);
			return err;
		}
	} else if (under_way && strncmp(patient_ref, "urn:", 4)) {
		/* no visit number: the patient's latest visit (A03 of a feed
		 * that sends none) */
		*key = NULL;
		if ((err = hl7_map_find(mp, "Encounter", "subject", patient_ref, "status",
				is(trigger, "A13") ? "finished" :
				"in-progress,arrived,triaged,onleave,planned", &f, d)))
			return err;
	}
	if (f.n > 1 && visit) {
		json_decref(visit);
		return hl7_map_problem(mp, pv1, 19, 205, true,
				       "More than one Encounter holds this visit number");
	}
	if (!f.n && (is(trigger, "A11") || is(trigger, "A12") || is(trigger, "A13"))) {
		json_decref(visit);
		return hl7_map_problem(mp, pv1, 19, 204, true,
				       "No visit careweave holds for this cancel");
	}
	if (f.n) {
		enc = json_deep_copy(f.res);
		if (!enc) {
			json_decref(visit);
			return CW_ENOMEM;
		}
		json_object_del(enc, "meta");
		visit_facts(mp, pv1, enc, trigger, true, patient_ref, visit);
		json_decref(visit);
		if ((err = episode(mp, enc, *key, patient_ref, d))) {
			json_decref(enc);
			return err;
		}
		*ref = arena_printf(mp->a, "Encounter/%s", f.id);
		/* nothing when the visit is as careweave holds it */
		return put(mp, *ref, enc, f.res, f.version);
	}
	enc = json_pack("{s:s}", "resourceType", "Encounter");
	if (!enc) {
		json_decref(visit);
		return CW_ENOMEM;
	}
	visit_facts(mp, pv1, enc, trigger, false, patient_ref, visit);
	json_decref(visit);
	if ((err = episode(mp, enc, *key, patient_ref, d))) {
		json_decref(enc);
		return err;
	}
	id_new(uuid);
	*ref = arena_printf(mp->a, "urn:uuid:%s", uuid);
	return hl7_map_entry(mp, "POST", "Encounter", enc,
			     key_url ? arena_printf(mp->a, "identifier=%s", key_url) : NULL, NULL,
			     *ref);
}

/* ---- diagnoses and next of kin -------------------------------------------- */

static enum cw_err
diagnoses(struct hl7_map *mp, const char *patient_ref, const char *enc_ref,
	  const char *enc_key)
{
	const char *scope = enc_key ? enc_key : mp->h->control_id;
	long seg;

	for (size_t k = 0; k < ADT_DG1_MAX && (seg = hl7_find(mp->m, "DG1", 0, k)) >= 0; k++) {
		json_t *code = hl7_map_cwe(mp, seg, 3, 0), *cond;
		const char *text = hl7_get(mp->m, (size_t)seg, 4, 0, 1, 0);
		const char *type = hl7_get(mp->m, (size_t)seg, 6, 0, 1, 0);
		const char *setid = hl7_get(mp->m, (size_t)seg, 1, 0, 1, 0);
		const char *when = hl7_map_dtm(mp, seg, 5, false);
		const char *ident;
		enum cw_err err;

		if (!code && text && text != HL7_NULL)
			code = json_pack("{s:s}", "text", text);
		if (!code) {
			hl7_map_problem(mp, seg, 3, 101, false, "A diagnosis without a code or words; left out");
			continue;
		}
		ident = hl7_map_key(mp->a, arena_printf(mp->a, "%s-%s", scope,
				    setid && setid != HL7_NULL ? setid :
				    arena_printf(mp->a, "%zu", k + 1)));
		cond = json_pack("{s:s, s:[{s:s, s:s}], s:{s:[{s:s, s:s}]}, s:[{s:[{s:s, s:s}]}],"
				 " s:o, s:{s:s}}",
				 "resourceType", "Condition",
				 "identifier", "system", DG1_SYSTEM, "value", ident,
				 "clinicalStatus", "coding", "system",
				 "http://terminology.hl7.org/CodeSystem/condition-clinical",
				 "code", "active",
				 "category", "coding", "system",
				 "http://terminology.hl7.org/CodeSystem/condition-category",
				 "code", "encounter-diagnosis",
				 "code", code, "subject", "reference", patient_ref);
		if (!cond)
			return CW_ENOMEM;
		/* HL7 table 0052: admitting and working diagnoses are provisional */
		json_object_set_new(cond, "verificationStatus", json_pack("{s:[{s:s, s:s}]}",
			"coding", "system",
			"http://terminology.hl7.org/CodeSystem/condition-ver-status", "code",
			type && type != HL7_NULL && !strcmp(type, "F") ? "confirmed" : "provisional"));
		if (enc_ref)
			json_object_set_new(cond, "encounter", json_pack("{s:s}", "reference", enc_ref));
		if (when)
			json_object_set_new(cond, "recordedDate", json_string(when));
		if ((err = hl7_map_entry(mp, "PUT",
					 arena_printf(mp->a, "Condition?identifier=%s",
						      hl7_map_token_query(mp->a, DG1_SYSTEM, ident)),
					 cond, NULL, NULL, NULL)))
			return err;
	}
	return CW_OK;
}

static enum cw_err
next_of_kin(struct hl7_map *mp, const char *patient_ref, const char *patient_key)
{
	long seg;

	for (size_t k = 0; k < ADT_NK1_MAX && (seg = hl7_find(mp->m, "NK1", 0, k)) >= 0; k++) {
		json_t *name = hl7_map_xpn(mp, seg, 2, 0), *rp, *v, *tel;
		const char *family = hl7_get(mp->m, (size_t)seg, 2, 0, 1, 1);
		const char *given = hl7_get(mp->m, (size_t)seg, 2, 0, 2, 0);
		const char *ident;
		enum cw_err err;

		if (!name)
			continue; /* an organization as contact (NK1-13): not a person */
		ident = hl7_map_key(mp->a, arena_printf(mp->a, "%s/%s/%s", patient_key,
				    family && family != HL7_NULL ? family : "",
				    given && given != HL7_NULL ? given : ""));
		rp = json_pack("{s:s, s:[{s:s, s:s}], s:{s:s}, s:[o]}", "resourceType",
			       "RelatedPerson", "identifier", "system", NK1_SYSTEM, "value", ident,
			       "patient", "reference", patient_ref, "name", name);
		if (!rp)
			return CW_ENOMEM;
		if ((v = hl7_map_cwe(mp, seg, 3, 0)))
			json_object_set_new(rp, "relationship", json_pack("[o]", v));
		if ((v = hl7_map_xad(mp, seg, 4, 0)))
			json_object_set_new(rp, "address", json_pack("[o]", v));
		tel = json_array();
		if ((v = hl7_map_xtn(mp, seg, 5, 0, "home")))
			json_array_append_new(tel, v);
		if ((v = hl7_map_xtn(mp, seg, 6, 0, "work")))
			json_array_append_new(tel, v);
		if (json_array_size(tel))
			json_object_set_new(rp, "telecom", tel);
		else
			json_decref(tel);
		if ((err = hl7_map_entry(mp, "PUT",
					 arena_printf(mp->a, "RelatedPerson?identifier=%s",
						      hl7_map_token_query(mp->a, NK1_SYSTEM, ident)),
					 rp, NULL, NULL, NULL)))
			return err;
	}
	return CW_OK;
}

/* ---- A40: two records of one patient ------------------------------------- */

/* The first Patient holding one of the identifiers of field at seg. */
static enum cw_err
patient_by_ids(struct hl7_map *mp, long seg, unsigned field, struct hl7_found *f,
	       json_t **idents, struct diag *d)
{
	unsigned n = hl7_reps(mp->m, (size_t)seg, field);
	json_t *v;
	size_t i;
	enum cw_err err;

	memset(f, 0, sizeof(*f));
	if (!(*idents = json_array()) || !arena_on_free(mp->a, decref_cb, *idents)) {
		json_decref(*idents);
		return CW_ENOMEM;
	}
	for (unsigned r = 0; r < n && r < HL7_REPS_MAX; r++)
		if ((v = hl7_map_cx(mp, seg, field, r)))
			json_array_append_new(*idents, v);
	json_array_foreach(*idents, i, v) {
		if ((err = hl7_map_find(mp, "Patient", "identifier", token(mp, v), NULL, NULL, f, d)))
			return err;
		if (f->n)
			return CW_OK;
	}
	return CW_OK;
}

static void
add_link(json_t *p, const char *other, const char *type)
{
	json_t *links = json_object_get(p, "link"), *l;
	size_t i;

	json_array_foreach(links, i, l)
		if (!strcmp(json_string_value(json_object_get(json_object_get(l, "other"),
							      "reference")) ?: "", other))
			return;
	if (!links) {
		links = json_array();
		json_object_set_new(p, "link", links);
	}
	json_array_append_new(links, json_pack("{s:{s:s}, s:s}", "other", "reference", other,
					       "type", type));
}

/* Rewrites every reference to from in v (deep) to to; true if any was. */
static bool
repoint(json_t *v, const char *from, const char *to)
{
	bool any = false;
	const char *k;
	json_t *x;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach (v, k, x) {
			if (!strcmp(k, "reference") && json_is_string(x) &&
			    !strcmp(json_string_value(x), from)) {
				json_string_set(x, to);
				any = true;
			} else {
				any |= repoint(x, from, to);
			}
		}
	} else if (json_is_array(v)) {
		json_array_foreach (v, i, x)
			any |= repoint(x, from, to);
	}
	return any;
}

/* The entries that move what the old record holds to the kept one: every
 * resource of old's compartment, its references to old_ref rewritten to
 * keep_ref, each guarded by the version read (a change meanwhile fails
 * the message, AE, to be replayed). *moved counts them. */
static enum cw_err
move_record(struct hl7_map *mp, const char *old_id, const char *old_ref,
	    const char *keep_ref, size_t *moved, struct diag *d)
{
	struct store_page pg;
	const char *cursor = NULL;
	enum cw_err err;

	*moved = 0;
	do {
		if ((err = store_everything(mp->store, mp->a, old_id, NULL, 0, 0, 1000,
					    cursor, &pg, d)))
			return err == CW_ENOTFOUND ? CW_OK : err;
		for (size_t i = 0; i < pg.n; i++) {
			const struct store_res *r = &pg.res[i];
			json_t *v;

			if (!strcmp(r->type, "Patient") || r->deleted)
				continue;
			if (*moved >= HL7_MERGE_MOVE_MAX)
				return hl7_map_problem(mp, -1, 0, 207, true,
						       "The record to retire holds more than %d resources:"
						       " too many to move in one message; nothing was"
						       " changed", HL7_MERGE_MOVE_MAX);
			if (!(v = json_loadb(r->json.p, r->json.n, 0, NULL)))
				return CW_ENOMEM;
			if (!repoint(v, old_ref, keep_ref)) {
				json_decref(v); /* in the compartment by another path */
				continue;
			}
			json_object_del(v, "meta");
			if ((err = put(mp, arena_printf(mp->a, "%s/%s", r->type, r->id), v, NULL,
				       r->version)))
				return err;
			(*moved)++;
		}
		cursor = pg.next;
	} while (cursor);
	return CW_OK;
}

/* A40: the record MRG-1 names is the PID's patient. Two Patients held: the
 * one MRG-1 names is made inactive and linked (replaced-by) to the PID's,
 * which takes its identifiers (use old) and links back (replaces), and
 * everything the old one holds moves to the kept one (move_record): one
 * record for the care team to read and for the rules to check (the old
 * record's medications against the kept one's). The moved records were
 * made elsewhere already, so the rules record what they find and never
 * refuse them. Only the old one held: it takes the PID's identifiers and
 * demographics (a renumbering). Merged already, or neither held: said,
 * nothing written. */
static enum cw_err
merge(struct hl7_map *mp, long pid, struct diag *d)
{
	long mrg = hl7_find(mp->m, "MRG", 0, 0);
	struct hl7_found old, keep;
	json_t *old_ids, *keep_ids, *msgp, *v;
	const char *old_ref, *keep_ref;
	size_t i, moved = 0;
	enum cw_err err;

	if (mrg < 0)
		return hl7_map_problem(mp, -1, 0, 100, true, "An A40 without its MRG segment");
	if ((err = patient_by_ids(mp, mrg, 1, &old, &old_ids, d)) ||
	    (err = patient_by_ids(mp, pid, 3, &keep, &keep_ids, d)))
		return err;
	if (!json_array_size(keep_ids))
		return hl7_map_problem(mp, pid, 3, 101, true, "PID-3 holds no patient identifier");
	if (!old.n) {
		if (keep.n)
			return hl7_map_problem(mp, mrg, 1, 204, false,
					       "No record careweave holds has the MRG-1 identifiers: "
					       "nothing to merge (merged already?)");
		return hl7_map_problem(mp, mrg, 1, 204, true,
				       "careweave holds neither record of this merge");
	}
	old_ref = arena_printf(mp->a, "Patient/%s", old.id);
	if (keep.n && !strcmp(keep.id, old.id))
		return hl7_map_problem(mp, mrg, 1, 205, false,
				       "The two records are one already: nothing to merge");
	if (!(msgp = patient_of(mp, pid, keep_ids)) || !arena_on_free(mp->a, decref_cb, msgp))
		return CW_ENOMEM;
	if (!keep.n) {
		/* only the old record: it is the patient, under the PID's numbers */
		json_t *p = merge_patient(mp, pid, old.res, msgp);

		if (!p || !arena_on_free(mp->a, decref_cb, p))
			return CW_ENOMEM;
		json_incref(p);
		return put(mp, old_ref, p, NULL, old.version);
	}
	keep_ref = arena_printf(mp->a, "Patient/%s", keep.id);
	{
		json_t *o = json_deep_copy(old.res), *k = merge_patient(mp, pid, keep.res, msgp);

		if (!o || !k) {
			json_decref(o);
			json_decref(k);
			return CW_ENOMEM;
		}
		json_object_del(o, "meta");
		json_object_set_new(o, "active", json_false());
		add_link(o, keep_ref, "replaced-by");
		add_link(k, old_ref, "replaces");
		/* the old record's numbers, kept as old ones of the patient */
		json_array_foreach(json_object_get(old.res, "identifier"), i, v) {
			json_t *ids = json_object_get(k, "identifier"), *c, *h;
			size_t j;
			bool have = false;

			json_array_foreach(ids, j, h)
				have |= same_ident(h, v);
			if (have || !(c = json_deep_copy(v)))
				continue;
			json_object_set_new(c, "use", json_string("old"));
			json_array_append_new(ids, c);
		}
		if (unchanged(old.res, o) && unchanged(keep.res, k)) {
			json_decref(o);
			json_decref(k);
			o = k = NULL;
		} else if ((err = put(mp, old_ref, o, NULL, old.version))) {
			json_decref(k);
			return err;
		} else if ((err = put(mp, keep_ref, k, NULL, keep.version))) {
			return err;
		}
		if ((err = move_record(mp, old.id, old_ref, keep_ref, &moved, d)))
			return err;
		if (!o && !moved)
			return hl7_map_problem(mp, mrg, 1, 205, false,
					       "The two records are merged already");
		mp->report_only = moved > 0;
		return CW_OK;
	}
}

/* ---- the event ------------------------------------------------------------ */

enum cw_err
hl7_adt_map(struct hl7_map *mp, struct diag *d)
{
	const char *trigger = mp->h->trigger;
	long pid = hl7_find(mp->m, "PID", 0, 0), pv1 = hl7_find(mp->m, "PV1", 0, 0);
	const char *pref = NULL, *pkey = NULL, *eref = NULL, *ekey = NULL;
	enum cw_err err;

	if (pid < 0)
		return hl7_map_problem(mp, -1, 0, 100, true, "The message has no PID segment");
	if (is(trigger, "A40"))
		return merge(mp, pid, d);
	if (pv1 < 0 && !is(trigger, "A08"))
		return hl7_map_problem(mp, -1, 0, 100, true, "The message has no PV1 segment");
	if ((err = hl7_map_patient(mp, pid, &pref, &pkey, d)) || mp->failed)
		return err ? err : CW_EINVAL;
	if (pv1 >= 0 && (err = encounter_entry(mp, pv1, trigger, pref, &eref, &ekey, d)))
		return err;
	if (mp->failed)
		return CW_EINVAL;
	if (is(trigger, "A11") || is(trigger, "A12") || is(trigger, "A13"))
		return CW_OK;
	if ((err = diagnoses(mp, pref, eref, ekey)))
		return err;
	return next_of_kin(mp, pref, pkey);
}
