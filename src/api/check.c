/* api/check.c: POST {type}/$check, the write path's rules on a proposed
 * resource that is not written.
 *
 * A prescriber (or an EHR at order time) sends the MedicationRequest,
 * MedicationStatement or ServiceRequest they are about to write; the
 * answer is what careweave would find if it were written: a Bundle (type
 * collection) of the DetectedIssues, each as it would be stored (no id),
 * and an OperationOutcome entry saying what could not be checked. Nothing
 * is written; the caller needs the right to write the resource (the
 * patient in their reach), since the answer tells about the patient's
 * other medications, allergies, results and orders. The rules run in a store transaction on the
 * writer that writes nothing, so they see exactly what a write would.
 *
 * Types coord/ has no rules for answer 400. */
#include <string.h>

#include "api/api_int.h"
#include "coord/coord.h"

struct check_job {
	struct api_req *q;
	struct api_op op;
	struct coord_report r;
	bool *hidden; /* per finding: names a record the caller may not read */
};

static enum cw_err
check_cb(struct store_tx *tx, void *ctx)
{
	struct check_job *j = ctx;
	enum cw_err err;

	if ((err = api_op_authorize(tx, j->q->a, &j->op, &j->q->d)) ||
	    (err = coord_check_proposed(j->q->api->coord, tx, j->q->a, j->op.res, &j->r,
					&j->q->d)))
		return err;
	if (j->r.nfindings && !(j->hidden = arena_zalloc(j->q->a, j->r.nfindings * sizeof(bool))))
		return CW_ENOMEM;
	for (size_t i = 0; i < j->r.nfindings; i++) {
		struct rules_sens s;

		if ((err = api_rules_sensitivity(tx, j->q->a, j->op.scope, &j->r.findings[i], &s)))
			return err;
		j->hidden[i] = s.hidden;
	}
	return CW_OK;
}

enum cw_err
api_rules_check(struct api_req *q, json_t *res, struct coord_report *out,
		bool **hidden)
{
	struct check_job j = {.q = q};
	enum cw_err err;

	memset(out, 0, sizeof(*out));
	if (!q->api->coord)
		return diag_err(&q->d, CW_EUNSUPPORTED, "not-supported", NULL,
				"This server runs without its rules");
	j.op.kind = OP_CREATE;
	j.op.rt = q->rt;
	j.op.res = res;
	j.op.scope = api_scope(q);
	if (q->who && !j.op.scope)
		return CW_ENOMEM;
	err = store_write(q->api->store, check_cb, &j);
	*out = j.r;
	*hidden = j.hidden;
	return err;
}

static json_t *
answer(struct api_req *q, const struct coord_report *r, const bool *hidden)
{
	json_t *b, *entries = json_array();
	char now[32];

	time_format_instant(time_now_ms(), now);
	for (size_t i = 0; entries && i < r->nfindings; i++) {
		json_t *di = hidden[i] ? api_rules_restricted_issue(q->a, r, &r->findings[i], now) :
			     coord_issue(r, &r->findings[i], now);

		if (!di || json_array_append_new(entries, json_pack("{s:o}", "resource", di))) {
			json_decref(entries);
			return NULL;
		}
	}
	if (entries && (r->unchecked || r->nunchecked_others)) {
		struct diag d;
		json_t *oo;

		diag_init(&d, q->a);
		if (r->unchecked)
			diag_add(&d, DIAG_WARNING, "informational", NULL,
				 "Not checked for %s: %s", r->unchecked_for, r->unchecked_what);
		for (size_t i = 0; i < r->nunchecked_others; i++)
			diag_add(&d, DIAG_WARNING, "informational", NULL,
				 "%s is a current medication careweave cannot identify: "
				 "not compared", r->unchecked_others[i]);
		if (!(oo = fhir_outcome(&d)) ||
		    json_array_append_new(entries, json_pack("{s:o}", "resource", oo))) {
			json_decref(entries);
			return NULL;
		}
	}
	if (!entries)
		return NULL;
	b = json_pack("{s:s, s:s, s:s, s:o}", "resourceType", "Bundle", "type", "collection",
		      "timestamp", now, "entry", entries);
	return b;
}

enum cw_err
api_h_check(struct api_req *q)
{
	struct coord_report r;
	json_t *res = NULL, *out;
	bool *hidden = NULL;
	enum cw_err err;

	if (!coord_watches(q->rt->name))
		return diag_err(&q->d, CW_EINVAL, "not-supported", NULL,
				"careweave has no rules for %s to check", q->rt->name);
	if ((err = api_parse_resource(q, &res)))
		return err;
	if ((err = fhir_validate(res, q->rt->name, &q->d)))
		return err;
	if ((err = api_rules_check(q, res, &r, &hidden)))
		return err;
	/* the answer tells about this patient's record: the audit record names them */
	if (r.patient) {
		const char **p = arena_alloc(q->a, sizeof(*p));

		if (!p)
			return CW_ENOMEM;
		p[0] = r.patient + 8;
		q->patients = p;
		q->npatients = 1;
		q->read_patients = true;
	}
	if (!(out = api_json_own(q->a, answer(q, &r, hidden))))
		return CW_ENOMEM;
	return api_reply_json(q, 200, out);
}
