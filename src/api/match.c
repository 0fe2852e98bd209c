/* api/match.c: POST Patient/$match, the patient matcher (coord/match.c) as
 * the FHIR operation.
 *
 * The input is a Parameters resource: resource (a Patient, the fragment to
 * match; validated, but it need not be complete), onlyCertainMatches
 * (boolean) and count (integer, at most MATCH_COUNT_MAX). The matcher runs
 * in a store transaction on the writer that writes nothing, so it sees
 * the records exactly as the HL7 side's matcher sees them in its own
 * write transaction. The answer is a Bundle (searchset) of the Patients
 * graded possible or better, best first, each with search.mode "match",
 * search.score and the match-grade extension (and careweave's reasons, in
 * words without values).
 *
 * Only Patients the caller may read are answered (access/ decides on each,
 * as a search does on its matches), and nothing is said about the others:
 * that someone out of the caller's reach resembles the fragment is itself
 * a disclosure. The audit record (trail.c, from q->patients) names every
 * Patient the answer holds. */
#include <string.h>

#include "api/api_int.h"
#include "coord/coord.h"

#define MATCH_COUNT_DEFAULT 10
#define MATCH_COUNT_MAX 50
#define REASONS_URL "https://careweave.org/fhir/StructureDefinition/match-reasons"

struct match_in {
	json_t *who;
	bool only_certain;
	size_t count;
};

static enum cw_err
bad(struct api_req *q, const char *loc, const char *words)
{
	return diag_err(&q->d, CW_EINVAL, "invalid", loc, "%s", words);
}

static enum cw_err
parse_params(struct api_req *q, struct match_in *in)
{
	json_t *body = NULL, *p;
	bool seen_certain = false, seen_count = false;
	enum cw_err err;
	size_t i;

	in->who = NULL;
	in->only_certain = false;
	in->count = MATCH_COUNT_DEFAULT;
	for (i = 0; i < q->r->nquery; i++) {
		const char *k = q->r->query[i].key;

		if (strcmp(k, "_format") && strcmp(k, "_pretty") && q->strict)
			return diag_err(&q->d, CW_EINVAL, "not-supported", NULL,
					"$match takes its parameters in the body");
	}
	if ((err = api_check_body_type(q, false)))
		return err;
	if (!q->r->body_len)
		return diag_err(&q->d, CW_EINVAL, "required", NULL,
				"Send a Parameters resource with the Patient to match "
				"as the parameter resource");
	if ((err = fhir_parse_json(q->r->body, q->r->body_len, &body, &q->d)))
		return err;
	if (!api_json_own_done(q->a, body))
		return CW_ENOMEM;
	if (!json_is_object(body) || !api_str_at(body, "resourceType") ||
	    strcmp(api_str_at(body, "resourceType"), "Parameters"))
		return bad(q, NULL, "Send the operation's parameters as a Parameters resource");
	json_array_foreach(json_object_get(body, "parameter"), i, p) {
		const char *name = api_str_at(p, "name");

		if (!name) {
			return bad(q, "Parameters.parameter", "A parameter has no name");
		} else if (!strcmp(name, "resource")) {
			json_t *r = json_object_get(p, "resource");
			const char *rt = api_str_at(r, "resourceType");

			if (in->who)
				return bad(q, "Parameters.parameter.resource",
					   "resource is given more than once");
			if (!json_is_object(r) || !rt || strcmp(rt, "Patient"))
				return bad(q, "Parameters.parameter.resource",
					   "resource must be a Patient");
			in->who = r;
		} else if (!strcmp(name, "onlyCertainMatches")) {
			json_t *v = json_object_get(p, "valueBoolean");

			if (seen_certain || !json_is_boolean(v))
				return bad(q, "Parameters.parameter.onlyCertainMatches",
					   "onlyCertainMatches must be one valueBoolean");
			in->only_certain = json_is_true(v);
			seen_certain = true;
		} else if (!strcmp(name, "count")) {
			json_t *v = json_object_get(p, "valueInteger");

			if (seen_count || !json_is_integer(v) || json_integer_value(v) < 1)
				return bad(q, "Parameters.parameter.count",
					   "count must be one valueInteger of 1 or more");
			/* more than the cap is the cap, as _count is */
			in->count = json_integer_value(v) > MATCH_COUNT_MAX ? MATCH_COUNT_MAX :
				    (size_t)json_integer_value(v);
			seen_count = true;
		} else if (q->strict) {
			return diag_err(&q->d, CW_EINVAL, "not-supported", "Parameters.parameter",
					"Unknown $match parameter");
		}
	}
	if (!in->who)
		return diag_err(&q->d, CW_EINVAL, "required", "Parameters.parameter",
				"The parameter resource (the Patient to match) is missing");
	return CW_OK;
}

struct match_job {
	struct api_req *q;
	const json_t *who;
	struct coord_match *m;
	size_t n;
};

static enum cw_err
match_cb(struct store_tx *tx, void *ctx)
{
	struct match_job *j = ctx;

	/* every candidate comes back; what the caller may see is decided
	 * after, off the writer */
	return coord_match_patient(j->q->api->coord, tx, j->q->a, j->who,
				   COORD_MATCH_CANDIDATES_MAX, &j->m, &j->n, &j->q->d);
}

static json_t *
entry_of(struct api_req *q, const struct coord_match *m, bool other_withheld)
{
	const char *reasons = m->s.reasons;

	/* the other certain record is not the caller's to know of */
	if (m->ambiguous && other_withheld)
		reasons = arena_printf(q->a, "%s; to review", m->own_reasons);
	if (!reasons)
		return NULL;
	return json_pack("{s:s, s:O, s:{s:[{s:s, s:s}, {s:s, s:s}], s:s, s:f}}",
			 "fullUrl", arena_printf(q->a, "%s/Patient/%s", q->api->base, m->id),
			 "resource", (json_t *)m->res,
			 "search", "extension",
			 "url", COORD_MATCH_GRADE_URL,
			 "valueCode", coord_match_grade_code(m->s.grade),
			 "url", REASONS_URL, "valueString", reasons,
			 "mode", "match", "score", m->s.score);
}

enum cw_err
api_h_match(struct api_req *q)
{
	struct match_in in;
	struct match_job j = {.q = q};
	struct access_scope *sc;
	const struct fhir_restype *rt = fhir_restype_find("Patient");
	const char **shown;
	json_t *entries, *b;
	bool *keep;
	size_t nshown = 0, withheld = 0, uncertain = 0;
	char id[ID_LEN + 1], now[32];
	enum cw_err err;

	if (strcmp(q->rt->name, "Patient"))
		return diag_err(&q->d, CW_ENOTFOUND, "not-supported", NULL,
				"$match is served for Patient only");
	if ((err = parse_params(q, &in)))
		return err;
	if ((err = fhir_validate(in.who, "Patient", &q->d)))
		return err;
	if (!coord_match_usable(in.who))
		return diag_err(&q->d, CW_EINVAL, "required", "Parameters.parameter.resource",
				"The Patient has nothing to match on: give an identifier (system "
				"and value), a name, a birth date, a phone or an address");
	sc = api_scope(q);
	if (q->who && !sc)
		return CW_ENOMEM;
	/* the scope is loaded here, on the caller's thread, not the writer's */
	if ((err = api_restrict_query(sc, NULL)))
		return err;
	j.who = in.who;
	if ((err = store_write(q->api->store, match_cb, &j)))
		return err;
	if (!(keep = arena_zalloc(q->a, j.n + 1)))
		return CW_ENOMEM;
	for (size_t i = 0; i < j.n; i++) {
		keep[i] = true;
		if (sc && !access_scope_all(sc) &&
		    (err = access_may_read_res(sc, rt, j.m[i].res, &keep[i])))
			return err;
		withheld += !keep[i];
	}
	if (!(shown = arena_alloc(q->a, (j.n + 1) * sizeof(*shown))) ||
	    !(entries = api_json_own(q->a, json_array())))
		return CW_ENOMEM;
	for (size_t i = 0; i < j.n && nshown < in.count; i++) {
		if (!keep[i])
			continue;
		if (in.only_certain && j.m[i].s.grade != COORD_GRADE_CERTAIN) {
			uncertain++;
			continue;
		}
		if (json_array_append_new(entries, entry_of(q, &j.m[i], withheld > 0)))
			return CW_ENOMEM;
		shown[nshown++] = j.m[i].id;
	}
	if (uncertain) {
		struct diag od;
		json_t *oo;

		diag_init(&od, q->a);
		diag_add(&od, DIAG_INFO, "informational", NULL,
			 "Matches that are not certain were left out (onlyCertainMatches)");
		if (!(oo = fhir_outcome(&od)) ||
		    json_array_append_new(entries, json_pack("{s:o, s:{s:s}}", "resource", oo,
							     "search", "mode", "outcome")))
			return CW_ENOMEM;
	}
	id_new(id);
	time_format_instant(time_now_ms(), now);
	if (!(b = api_json_own(q->a, json_pack("{s:s, s:s, s:{s:s}, s:s, s:I}",
					       "resourceType", "Bundle", "id", id,
					       "meta", "lastUpdated", now, "type", "searchset",
					       "total", (json_int_t)nshown))))
		return CW_ENOMEM;
	/* no matches: no entry at all (FHIR JSON has no empty arrays) */
	if (json_array_size(entries) && json_object_set(b, "entry", entries))
		return CW_ENOMEM;
	/* the audit record names every Patient the answer discloses */
	q->patients = shown;
	q->npatients = nshown;
	q->read_patients = true;
	log_info("match: %zu candidates, %zu answered, %zu withheld", j.n, nshown, withheld);
	return api_reply_json(q, 200, b);
}
