/* api/risk.c: GET Encounter/{id}/$readmission-risk, the LACE index and
 * the HOSPITAL score of an inpatient stay, computed now and not stored.
 *
 * This file owns the HTTP side; coord/risk.c owns the scores. The
 * Encounter must be one the caller may read and its patient in the
 * caller's reach (404 otherwise, as for an Encounter that does not
 * exist). The patient's Encounters, Conditions, Procedures and their
 * haemoglobin and sodium Observations are read as medlist.c reads a
 * record: store_everything a page at a time, each record checked with
 * access/ as a search checks its matches; a record withheld is left out,
 * and the answer says the scores may then be low. The answer is a Bundle
 * (type collection) of the two RiskAssessments, each validated as any
 * resource careweave serves. The request is audited by serve() as an
 * operation on the Encounter whose record is the patient's (trail.c). */
#include <string.h>

#include "api/api_int.h"
#include "coord/coord.h"

#define RISK_PAGE 1000

struct risk_kind {
	struct coord_risk_record *v;
	size_t n, cap;
};

static enum cw_err
keep(struct api_req *q, struct risk_kind *k, const struct store_res *r)
{
	json_t *v = NULL;

	if (k->n == COORD_RISK_RECORDS_MAX)
		return diag_err(&q->d, CW_ETOOBIG, "too-costly", NULL,
				"The patient has more than %d %s records: too many to score in "
				"one answer", COORD_RISK_RECORDS_MAX, r->type);
	if (k->n == k->cap) {
		size_t nc = k->cap ? k->cap * 2 : 64;
		struct coord_risk_record *nv = arena_realloc(q->a, k->v, k->cap * sizeof(*nv),
							     nc * sizeof(*nv));

		if (!nv)
			return CW_ENOMEM;
		k->v = nv;
		k->cap = nc;
	}
	if (fhir_parse_json(r->json.p, r->json.n, &v, NULL) || !api_json_own(q->a, v))
		return CW_ENOMEM;
	k->v[k->n].res = v;
	if (!(k->v[k->n].ref = arena_printf(q->a, "%s/%s", r->type, r->id)))
		return CW_ENOMEM;
	k->n++;
	return CW_OK;
}

/* Whether an Observation's text names haemoglobin's or sodium's LOINC code:
 * a cheap test before parsing (the score checks the coding itself). */
static bool
maybe_lab(const struct store_res *r)
{
	return memmem(r->json.p, r->json.n, "\"718-7\"", 7) ||
	       memmem(r->json.p, r->json.n, "\"2951-2\"", 8);
}

static enum cw_err
read_record(struct api_req *q, const char *patient_id, struct coord_risk_input *in,
	    size_t *withheld)
{
	static const char *const types[] = {"Patient", "Encounter", "Condition",
					    "Observation", "Procedure"};
	struct risk_kind enc = {0}, cond = {0}, obs = {0}, proc = {0};
	const char *cursor = NULL;
	enum cw_err err;

	do {
		struct store_page page;

		memset(&page, 0, sizeof(page));
		err = store_everything(q->api->store, q->a, patient_id, types, 5, 0, RISK_PAGE,
				       cursor, &page, &q->d);
		if (err == CW_ENOTFOUND && !diag_has_errors(&q->d))
			return diag_err(&q->d, CW_EINVALID, "processing", "Encounter.subject",
					"Encounter/%s names a patient careweave does not hold",
					q->id);
		if (err)
			return err;
		for (size_t i = 0; i < page.n; i++) {
			const struct store_res *r = &page.res[i];
			struct risk_kind *k = !strcmp(r->type, "Encounter") ? &enc :
					      !strcmp(r->type, "Condition") ? &cond :
					      !strcmp(r->type, "Procedure") ? &proc :
					      !strcmp(r->type, "Observation") ? &obs : NULL;
			bool ok;

			if (!k || (k == &obs && !maybe_lab(r)))
				continue;
			if ((err = api_may_read_res(q, r, &ok)))
				return err;
			if (!ok) {
				(*withheld)++;
				continue;
			}
			if ((err = keep(q, k, r)))
				return err;
		}
		cursor = page.next;
	} while (cursor);
	in->encounters = enc.v;
	in->nencounters = enc.n;
	in->conditions = cond.v;
	in->nconditions = cond.n;
	in->observations = obs.v;
	in->nobservations = obs.n;
	in->procedures = proc.v;
	in->nprocedures = proc.n;
	return CW_OK;
}

/* The Encounter, if the caller may read it and its patient's record. */
static enum cw_err
read_encounter(struct api_req *q, json_t **out, const char **patient_id)
{
	struct store_res r;
	const char *pat;
	bool ok;
	json_t *v = NULL;
	enum cw_err err;

	*out = NULL;
	*patient_id = NULL;
	err = store_read(q->api->store, q->a, "Encounter", q->id, &r);
	if (err == CW_ENOTFOUND || err == CW_EGONE)
		return diag_err(&q->d, err, err == CW_EGONE ? "deleted" : "not-found", NULL,
				"Encounter/%s is %s", q->id,
				err == CW_EGONE ? "deleted" : "not known");
	if (err)
		return err;
	if ((err = api_may_read_res(q, &r, &ok)))
		return err;
	if (!ok)
		return diag_err(&q->d, CW_ENOTFOUND, "not-found", NULL,
				"Encounter/%s is not known", q->id);
	if (fhir_parse_json(r.json.p, r.json.n, &v, NULL) || !api_json_own(q->a, v))
		return CW_ENOMEM;
	*out = v;
	pat = json_string_value(json_object_get(json_object_get(v, "subject"), "reference"));
	if (!pat || strncmp(pat, "Patient/", 8))
		return CW_OK; /* coord_risk_compute says why it cannot be scored */
	if (!id_is_valid(pat + 8, strlen(pat + 8)))
		return diag_err(&q->d, CW_EINVALID, "processing", "Encounter.subject",
				"Encounter/%s names its patient with an invalid id", q->id);
	*patient_id = pat + 8;
	if (q->who) {
		struct access_scope *sc = api_scope(q);
		struct access_grant g;

		if (!sc)
			return CW_ENOMEM;
		if ((err = access_patient_scope(sc, *patient_id, &g)))
			return err;
		if (!g.read)
			return diag_err(&q->d, CW_ENOTFOUND, "not-found", NULL,
					"Encounter/%s is not known", q->id);
	}
	return CW_OK;
}

static json_t *
answer(struct api_req *q, const struct coord_risk *lace, const struct coord_risk *hosp,
       size_t withheld)
{
	const struct coord_risk *rs[2] = {lace, hosp};
	json_t *entries = json_array();
	char now[32];

	time_format_instant(time_now_ms(), now);
	for (size_t i = 0; entries && i < 2; i++) {
		json_t *ra = coord_risk_assessment(rs[i], now);
		struct diag d;

		diag_init(&d, q->a);
		if (ra && fhir_validate(ra, "RiskAssessment", &d)) {
			/* careweave's own resource must be valid: a bug, said by ids */
			log_error("api: the %s RiskAssessment of Encounter/%s does not validate",
				  rs[i]->method_code, q->id);
			json_decref(ra);
			json_decref(entries);
			return NULL;
		}
		if (!ra || json_array_append_new(entries, json_pack("{s:o}", "resource", ra))) {
			json_decref(entries);
			return NULL;
		}
	}
	if (entries && withheld) {
		struct diag d;
		json_t *oo;

		diag_init(&d, q->a);
		diag_add(&d, DIAG_WARNING, "suppressed", NULL,
			 "%zu of the patient's records were withheld: the patient's consent or "
			 "the data's sensitivity does not let you see them. The scores are of "
			 "what you may see and may be lower than the whole record gives.", withheld);
		if (!(oo = fhir_outcome(&d)) ||
		    json_array_append_new(entries, json_pack("{s:o}", "resource", oo))) {
			json_decref(entries);
			return NULL;
		}
	}
	if (!entries)
		return NULL;
	return json_pack("{s:s, s:s, s:s, s:o}", "resourceType", "Bundle", "type", "collection",
			 "timestamp", now, "entry", entries);
}

enum cw_err
api_h_readmission_risk(struct api_req *q)
{
	struct coord_risk_input in = {0};
	struct coord_risk lace, hosp;
	const char *patient_id, **pats;
	size_t withheld = 0;
	json_t *enc, *out;
	enum cw_err err;

	if (strcmp(q->rt->name, "Encounter"))
		return diag_err(&q->d, CW_ENOTFOUND, "not-supported", NULL,
				"$readmission-risk is served for Encounter only");
	for (size_t i = 0; i < q->r->nquery; i++) {
		const char *k = q->r->query[i].key;

		if (strcmp(k, "_format") && strcmp(k, "_pretty") && q->strict)
			return diag_err(&q->d, CW_EINVAL, "not-supported", NULL,
					"$readmission-risk takes no parameter");
	}
	if (!q->api->coord)
		return diag_err(&q->d, CW_EUNSUPPORTED, "not-supported", NULL,
				"This server runs without its knowledge base");
	if ((err = read_encounter(q, &enc, &patient_id)))
		return err;
	in.encounter = enc;
	if (!(in.encounter_ref = arena_printf(q->a, "Encounter/%s", q->id)))
		return CW_ENOMEM;
	if (patient_id) {
		/* the answer tells about this patient's record: the audit names them */
		if (!(pats = arena_alloc(q->a, sizeof(*pats))))
			return CW_ENOMEM;
		pats[0] = patient_id;
		q->patients = pats;
		q->npatients = 1;
		q->read_patients = true;
		if ((err = read_record(q, patient_id, &in, &withheld)))
			return err;
	}
	if (withheld)
		in.incomplete = "some of the patient's records were withheld from you: the "
				"scores are of what you may see";
	if ((err = coord_risk_compute(q->api->coord, q->a, &in, &lace, &hosp, &q->d)))
		return err;
	if (!(out = api_json_own(q->a, answer(q, &lace, &hosp, withheld))))
		return CW_ENOMEM;
	return api_reply_json(q, 200, out);
}
