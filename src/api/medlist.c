/* api/medlist.c: GET and POST Patient/{id}/$medication-list, the patient's
 * reconciled medication list.
 *
 * This file owns the HTTP side and the FHIR shape; coord/reconcile.c owns
 * the rules. The patient must be in the caller's reach (404 otherwise, as
 * $everything). The patient's MedicationRequests and MedicationStatements
 * are read with store_everything (a page is one read transaction, so the
 * list is one state of the record for up to a page of records), each
 * checked with access/ as a search checks its matches; those withheld are
 * left out and the answer says something was. A Medication a record
 * references is read and checked the same way.
 *
 * The answer is one List (status current, mode working, LOINC 10160-0):
 * one entry per group, each pointing at a contained List of that group
 * whose entries point at the source records, with a flag (state and what
 * reconciliation found), the date the source gave, who reported it and the
 * group's summary in its note. Why a List of contained Lists and not a
 * Bundle: src/coord/README.md. The request is audited by serve() as an
 * operation on the Patient (trail.c names the patient). */
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "coord/coord.h"

#define EXT "https://careweave.org/fhir/StructureDefinition/medication-list-"
#define SOURCE_SYSTEM "https://careweave.org/fhir/CodeSystem/medication-list-source"
#define LOINC_MED_HISTORY "10160-0"
#define MEDLIST_PAGE 1000

/* ---- parameters ------------------------------------------------------------ */

static enum cw_err
recent_of(struct api_req *q, const char *v, unsigned *out)
{
	char *end;
	long n;

	if (!v || !*v || *v == '-' || *v == '+')
		goto out_bad;
	n = strtol(v, &end, 10);
	if (*end || n < 0 || n > COORD_LIST_RECENT_MAX)
		goto out_bad;
	*out = (unsigned)n;
	return CW_OK;
out_bad:
	return diag_err(&q->d, CW_EINVAL, "value", "recent",
			"recent must be a number of days from 0 to %d", COORD_LIST_RECENT_MAX);
}

/* recent= in the query; in a POST, also a Parameters body
 * (parameter recent, valueInteger). */
static enum cw_err
parse_params(struct api_req *q, unsigned *recent)
{
	json_t *body = NULL, *p;
	enum cw_err err = CW_OK;
	size_t i;

	*recent = COORD_LIST_RECENT_DAYS;
	for (i = 0; i < q->r->nquery && !err; i++) {
		const char *k = q->r->query[i].key;

		if (!strcmp(k, "recent"))
			err = recent_of(q, q->r->query[i].value, recent);
		else if (strcmp(k, "_format") && strcmp(k, "_pretty") && q->strict)
			err = diag_err(&q->d, CW_EINVAL, "not-supported", NULL,
				       "Unknown $medication-list parameter");
	}
	if (err || strcmp(q->r->method, "POST") || !q->r->body_len)
		return err;
	if ((err = api_check_body_type(q, false)))
		return err;
	if ((err = fhir_parse_json(q->r->body, q->r->body_len, &body, &q->d)))
		return err;
	if (!api_json_own_done(q->a, body))
		return CW_ENOMEM;
	if (!json_is_object(body) ||
	    strcmp(json_string_value(json_object_get(body, "resourceType")) ?
		   json_string_value(json_object_get(body, "resourceType")) : "", "Parameters"))
		return diag_err(&q->d, CW_EINVAL, "invalid", NULL,
				"Send the operation's parameters as a Parameters resource");
	json_array_foreach(json_object_get(body, "parameter"), i, p) {
		const char *name = json_string_value(json_object_get(p, "name"));
		json_t *v = json_object_get(p, "valueInteger");

		if (name && !strcmp(name, "recent")) {
			if (!v)
				v = json_object_get(p, "valueUnsignedInt");
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) > COORD_LIST_RECENT_MAX)
				return diag_err(&q->d, CW_EINVAL, "value",
						"Parameters.parameter.recent",
						"recent must be a valueInteger from 0 to %d",
						COORD_LIST_RECENT_MAX);
			*recent = (unsigned)json_integer_value(v);
		} else if (q->strict) {
			return diag_err(&q->d, CW_EINVAL, "not-supported", "Parameters.parameter",
					"Unknown $medication-list parameter");
		}
	}
	return CW_OK;
}

/* ---- reading what the caller may see ---------------------------------------- */

struct reading {
	struct coord_list_input *in;
	size_t n;
	size_t withheld;
};

enum cw_err
api_may_read_res(struct api_req *q, const struct store_res *r, bool *ok)
{
	struct access_scope *sc = q->scope;

	*ok = true;
	if (!q->who)
		return CW_OK;
	if (!access_role_may_ask(q->who, fhir_restype_find(r->type))) {
		*ok = false;
		return CW_OK;
	}
	if (!sc || access_scope_all(sc))
		return CW_OK;
	return access_may_read_text(sc, r->type, r->json.p, r->json.n, ok);
}

static json_t *
parse_own(struct api_req *q, const struct store_res *r)
{
	json_t *v = NULL;

	if (fhir_parse_json(r->json.p, r->json.n, &v, NULL))
		return NULL;
	return api_json_own(q->a, v);
}

/* The Medication res references (Medication/id), when the caller may read
 * it; NULL otherwise (the record is then identified by its own words). */
static enum cw_err
medication_of(struct api_req *q, const json_t *res, struct reading *rd, const json_t **out)
{
	const char *ref = json_string_value(json_object_get(json_object_get(res,
				"medicationReference"), "reference"));
	struct store_res m;
	bool ok;
	enum cw_err err;

	*out = NULL;
	if (!ref || strncmp(ref, "Medication/", 11) || !id_is_valid(ref + 11, strlen(ref + 11)))
		return CW_OK;
	err = store_read(q->api->store, q->a, "Medication", ref + 11, &m);
	if (err == CW_ENOTFOUND || err == CW_EGONE)
		return CW_OK;
	if (err)
		return err;
	if ((err = api_may_read_res(q, &m, &ok)))
		return err;
	if (!ok) {
		rd->withheld++;
		return CW_OK;
	}
	*out = parse_own(q, &m);
	return *out ? CW_OK : CW_ENOMEM;
}

static enum cw_err
read_records(struct api_req *q, struct reading *rd)
{
	static const char *const types[] = {"Patient", "MedicationRequest",
					    "MedicationStatement"};
	const char *cursor = NULL;
	size_t cap = 0;
	enum cw_err err;

	do {
		struct store_page page;

		memset(&page, 0, sizeof(page));
		err = store_everything(q->api->store, q->a, q->id, types, 3, 0,
				       MEDLIST_PAGE, cursor, &page, &q->d);
		if (err == CW_ENOTFOUND && !diag_has_errors(&q->d))
			return diag_err(&q->d, err, "not-found", NULL,
					"Patient/%s is not known", q->id);
		if (err)
			return err;
		for (size_t i = 0; i < page.n; i++) {
			const struct store_res *r = &page.res[i];
			struct coord_list_input *in;
			bool ok;

			if (!strcmp(r->type, "Patient"))
				continue;
			if ((err = api_may_read_res(q, r, &ok)))
				return err;
			if (!ok) {
				rd->withheld++;
				continue;
			}
			if (rd->n == COORD_LIST_MAX)
				return diag_err(&q->d, CW_ETOOBIG, "too-costly", NULL,
						"The patient has more than %d medication records: "
						"too many to reconcile in one answer", COORD_LIST_MAX);
			if (rd->n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				struct coord_list_input *nv = arena_realloc(q->a, rd->in,
					cap * sizeof(*nv), nc * sizeof(*nv));

				if (!nv)
					return CW_ENOMEM;
				rd->in = nv;
				cap = nc;
			}
			in = &rd->in[rd->n];
			memset(in, 0, sizeof(*in));
			in->ref = arena_printf(q->a, "%s/%s", r->type, r->id);
			in->res = parse_own(q, r);
			in->updated = r->last_updated;
			if (!in->ref || !in->res)
				return CW_ENOMEM;
			if ((err = medication_of(q, in->res, rd, &in->medication)))
				return err;
			rd->n++;
		}
		cursor = page.next;
	} while (cursor);
	return CW_OK;
}

/* ---- the List ----------------------------------------------------------------- */

static json_t *
flag_coding(unsigned bit)
{
	return json_pack("{s:s, s:s, s:s}", "system", COORD_LIST_FLAG_SYSTEM,
			 "code", coord_list_flag_code(bit),
			 "display", coord_list_flag_display(bit));
}

/* The words of a state and its flags: "Active; Dose differs between sources". */
static const char *
flag_words(struct arena *a, const char *first, unsigned flags)
{
	const char *s = first;

	for (int b = 0; s && b < COORD_FLAG_COUNT_BITS; b++)
		if (flags & (1u << b))
			s = arena_printf(a, "%s; %s", s, coord_list_flag_display(1u << b));
	return s;
}

static bool
add_ext(json_t *o, const char *name, const char *key, json_t *value)
{
	json_t *exts = json_object_get(o, "extension");

	if (!value)
		return false;
	if (!exts && json_object_set_new(o, "extension", exts = json_array()))
		return false;
	return !json_array_append_new(exts, json_pack("{s:s, s:o}", "url",
						      name, key, value));
}

static bool
add_flag_exts(json_t *o, unsigned flags)
{
	for (int b = 0; b < COORD_FLAG_COUNT_BITS; b++)
		if ((flags & (1u << b)) &&
		    !add_ext(o, EXT "flag", "valueCoding", flag_coding(1u << b)))
			return false;
	return true;
}

static json_t *
entry_json(struct api_req *q, const struct coord_list_entry *e)
{
	json_t *o = json_pack("{s:{s:s, s:s}, s:{s:[{s:s, s:s, s:s}], s:s?}}",
			      "item", "reference", e->ref, "display", e->words,
			      "flag", "coding", "system", COORD_LIST_FLAG_SYSTEM,
			      "code", coord_list_state_code(e->state),
			      "display", coord_list_state_display(e->state),
			      "text", flag_words(q->a, coord_list_state_display(e->state), e->flags));
	bool ok = o != NULL;

	if (ok && e->when && !time_parse(e->when, strlen(e->when), TIME_DATETIME, &(struct time_range){0}))
		ok = !json_object_set_new(o, "date", json_string(e->when));
	if (ok)
		ok = add_ext(o, EXT "source", "valueCoding",
			     json_pack("{s:s, s:s, s:s}", "system", SOURCE_SYSTEM,
				       "code", coord_list_source_code(e->source),
				       "display", coord_list_source_display(e->source)));
	if (ok && (e->by || e->by_display))
		ok = add_ext(o, EXT "reporter", "valueReference",
			     json_pack("{s:s?, s:s?}", "reference", e->by, "display", e->by_display));
	if (ok && e->dose)
		ok = add_ext(o, EXT "dose", "valueString", json_string(e->dose));
	if (ok && e->ended)
		ok = add_ext(o, EXT "ended", "valueDate", json_string(e->ended));
	if (ok)
		ok = add_flag_exts(o, e->flags);
	if (ok && e->why)
		ok = add_ext(o, EXT "why", "valueString", json_string(e->why));
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The group's own flag: what a reconciler does with it. */
static json_t *
group_flag(struct arena *a, const struct coord_list_group *g)
{
	const char *code = (g->flags & COORD_FLAG_DISCREPANCIES) ? "discrepancy" :
			   g->unchecked ? "unchecked" : "consistent";
	const char *display = !strcmp(code, "discrepancy") ? "The sources disagree: to reconcile" :
			      !strcmp(code, "unchecked") ? "careweave cannot identify this medication" :
			      "No discrepancy found";

	return json_pack("{s:[{s:s, s:s, s:s}], s:s?}", "coding", "system",
			 COORD_LIST_FLAG_SYSTEM, "code", code, "display", display,
			 "text", flag_words(a, display, g->flags & ~COORD_FLAG_UNCHECKED));
}

static json_t *
group_json(struct api_req *q, const struct coord_list_group *g, size_t k)
{
	json_t *entries = json_array(), *o;

	for (size_t i = 0; entries && i < g->n; i++)
		if (json_array_append_new(entries, entry_json(q, &g->e[i]))) {
			json_decref(entries);
			return NULL;
		}
	if (!entries)
		return NULL;
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s}, s:[{s:s}], s:o}",
		      "resourceType", "List",
		      "id", arena_printf(q->a, "group-%zu", k + 1),
		      "status", "current", "mode", "working", "title", g->name,
		      "subject", "reference", arena_printf(q->a, "Patient/%s", q->id),
		      "note", "text", g->summary, "entry", entries);
	if (o && !add_flag_exts(o, g->flags)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static const char *
overall_words(struct api_req *q, const struct coord_list *l, unsigned recent,
	      const struct reading *rd)
{
	size_t nd = 0;
	const char *s, *names = NULL;

	/* the first ten named, then how many more */
	for (size_t i = 0; i < l->ng; i++)
		if ((l->g[i].flags & COORD_FLAG_DISCREPANCIES) && nd++ < 10)
			names = names ? arena_printf(q->a, "%s, %s", names, l->g[i].name) :
					l->g[i].name;
	if (nd > 10)
		names = arena_printf(q->a, "%s and %zu more", names, nd - 10);
	s = arena_printf(q->a, "%zu medication%s from %zu record%s (current, or stopped in the "
			 "last %u days).", l->ng, l->ng == 1 ? "" : "s", l->nconsidered - l->nold,
			 l->nconsidered - l->nold == 1 ? "" : "s", recent);
	if (s && nd)
		s = arena_printf(q->a, "%s %zu to reconcile: %s.", s, nd, names);
	else if (s && l->ng)
		s = arena_printf(q->a, "%s No discrepancy found.", s);
	if (s && l->nold)
		s = arena_printf(q->a, "%s %zu older or entered-in-error record%s not listed.", s,
				 l->nold, l->nold == 1 ? "" : "s");
	if (s && rd->withheld)
		s = arena_printf(q->a, "%s Some records were withheld: the patient's consent or "
				 "the data's sensitivity does not let you see them.", s);
	return s;
}

static json_t *
list_json(struct api_req *q, const struct coord_list *l, unsigned recent,
	  const struct reading *rd)
{
	json_t *o, *contained = json_array(), *entries = json_array();
	char id[ID_LEN + 1], now[32];
	const char *words = overall_words(q, l, recent, rd);
	bool ok = contained && entries && words;

	for (size_t i = 0; ok && i < l->ng; i++) {
		const struct coord_list_group *g = &l->g[i];

		ok = !json_array_append_new(contained, group_json(q, g, i)) &&
		     !json_array_append_new(entries,
			json_pack("{s:{s:s, s:s}, s:o}", "item", "reference",
				  arena_printf(q->a, "#group-%zu", i + 1), "display", g->name,
				  "flag", group_flag(q->a, g)));
	}
	if (!ok) {
		json_decref(contained);
		json_decref(entries);
		return NULL;
	}
	id_new(id);
	time_format_instant(time_now_ms(), now);
	o = json_pack("{s:s, s:s, s:{s:s}, s:s, s:s, s:s,"
		      " s:{s:[{s:s, s:s, s:s}]}, s:{s:s}, s:s, s:[{s:s}]}",
		      "resourceType", "List", "id", id, "meta", "lastUpdated", now,
		      "status", "current", "mode", "working",
		      "title", "Reconciled medication list",
		      "code", "coding", "system", KB_LOINC, "code", LOINC_MED_HISTORY,
		      "display", "History of Medication use Narrative",
		      "subject", "reference", arena_printf(q->a, "Patient/%s", q->id),
		      "date", now, "note", "text", words);
	ok = o && add_ext(o, EXT "recent-days", "valueInteger", json_integer(recent));
	if (ok && rd->withheld)
		ok = add_ext(o, EXT "withheld", "valueBoolean", json_true());
	if (ok && l->ng) {
		ok = !json_object_set_new(o, "contained", contained) &&
		     !json_object_set_new(o, "entry", entries);
		contained = entries = NULL;
	} else if (ok) {
		ok = !json_object_set_new(o, "emptyReason",
			json_pack("{s:[{s:s, s:s}]}", "coding", "system",
				  "http://terminology.hl7.org/CodeSystem/list-empty-reason",
				  "code", rd->withheld ? "withheld" : "unavailable",
				  "display", rd->withheld ? "Information Withheld" : "Unavailable"));
	}
	json_decref(contained);
	json_decref(entries);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ---- the handler ------------------------------------------------------------- */

enum cw_err
api_h_medication_list(struct api_req *q)
{
	struct reading rd = {0};
	struct coord_list l;
	unsigned recent;
	json_t *out;
	enum cw_err err;

	if (strcmp(q->rt->name, "Patient"))
		return diag_err(&q->d, CW_ENOTFOUND, "not-supported", NULL,
				"$medication-list is served for Patient only");
	if ((err = parse_params(q, &recent)))
		return err;
	if ((err = api_patient_reachable(q)))
		return err;
	if (!q->api->coord)
		return diag_err(&q->d, CW_EUNSUPPORTED, "not-supported", NULL,
				"This server runs without its knowledge base");
	if ((err = read_records(q, &rd)))
		return err;
	if ((err = coord_medication_list(q->api->coord, q->a, rd.in, rd.n, time_now_ms(),
					 recent, &l)))
		return err;
	if (!(out = api_json_own(q->a, list_json(q, &l, recent, &rd))))
		return CW_ENOMEM;
	return api_reply_json(q, 200, out);
}
