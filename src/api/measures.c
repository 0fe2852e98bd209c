/* api/measures.c: GET /fhir/$transitions-measures, the transitions-of-care
 * measures of a period (the counts are coord/measures.c's).
 *
 *   start, end       YYYY-MM-DD: the period, end included (default: the
 *                    30 days to today)
 *   unreviewed-days  a result with its review open longer is overdue
 *                    (default 3)
 *
 * Counted over what the caller may read: the Encounters of the period and
 * the 30 days around it, the Tasks of the transitions and results rules,
 * each record checked with access/ as a search checks its matches. The
 * answer is a Parameters resource of counts (and the rate), not stored;
 * it names no patient, so the audit record of the request (serve(), an
 * operation) names none. More than 20,000 Encounters or Tasks: 413. */
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "coord/coord.h"

#define MEASURES_PAGE 1000
#define MEASURES_MAX 20000

struct list {
	const json_t **v;
	size_t n, cap;
};

/* Every resource of type matching kv that the caller may read, into l. */
static enum cw_err
collect(struct api_req *q, const char *type, struct fhir_kv *kv, size_t nkv,
	struct list *l)
{
	const char *cursor = NULL;
	struct fhir_query fq;
	struct store_page page;
	enum cw_err err;

	do {
		if ((err = fhir_query_parse(q->a, fhir_restype_find(type), kv, nkv, true, &fq, &q->d)))
			return err;
		fq.count = MEASURES_PAGE;
		fq.cursor = cursor;
		if ((err = store_search(q->api->store, q->a, &fq, &page, &q->d)))
			return err;
		for (size_t i = 0; i < page.n; i++) {
			json_t *v = NULL;
			bool ok;

			if ((err = api_may_read_res(q, &page.res[i], &ok)))
				return err;
			if (!ok)
				continue;
			if (l->n == MEASURES_MAX)
				return diag_err(&q->d, CW_ETOOBIG, "too-costly", NULL,
						"More than %d %s records in the period: choose a "
						"shorter one", MEASURES_MAX, type);
			if (l->n == l->cap) {
				size_t nc = l->cap ? l->cap * 2 : 256;
				const json_t **nv = arena_realloc(q->a, l->v, l->cap * sizeof(*nv),
								 nc * sizeof(*nv));

				if (!nv)
					return CW_ENOMEM;
				l->v = nv;
				l->cap = nc;
			}
			if (fhir_parse_json(page.res[i].json.p, page.res[i].json.n, &v, NULL) ||
			    !api_json_own(q->a, v))
				return CW_ENOMEM;
			l->v[l->n++] = v;
		}
		cursor = page.next;
	} while (cursor);
	return CW_OK;
}

/* A day "YYYY-MM-DD" as the ms of its start. */
static bool
day_of(const char *s, int64_t *ms)
{
	struct time_range r;

	if (!s || strlen(s) != 10 || time_parse(s, 10, TIME_DATE, &r))
		return false;
	*ms = r.lo;
	return true;
}

static void
day_text(int64_t ms, char out[11])
{
	char at[32];

	time_format_instant(ms, at);
	memcpy(out, at, 10);
	out[10] = '\0';
}

static json_t *
count(const char *name, unsigned n)
{
	return json_pack("{s:s, s:i}", "name", name, "valueInteger", (json_int_t)n);
}

enum cw_err
api_h_transitions_measures(struct api_req *q)
{
	struct coord_measures_input in = {.now = time_now_ms(), .unreviewed_days = 3};
	struct coord_measures m;
	struct list enc = {0}, tasks = {0};
	struct fhir_kv ekv[2], tkv[1];
	int64_t today;
	char from[11], to[11], lo[11], hi[11];
	json_t *out, *params;
	enum cw_err err;

	today = in.now - in.now % TIME_DAY_MS;
	in.end = today + TIME_DAY_MS;
	in.start = in.end - 30 * TIME_DAY_MS;
	for (size_t i = 0; i < q->r->nquery; i++) {
		const char *k = q->r->query[i].key, *v = q->r->query[i].value;
		char *e;

		if (!strcmp(k, "start")) {
			if (!day_of(v, &in.start))
				return diag_err(&q->d, CW_EINVAL, "value", "start",
						"start must be a day, YYYY-MM-DD");
		} else if (!strcmp(k, "end")) {
			if (!day_of(v, &in.end))
				return diag_err(&q->d, CW_EINVAL, "value", "end",
						"end must be a day, YYYY-MM-DD");
			in.end += TIME_DAY_MS; /* the end day included */
		} else if (!strcmp(k, "unreviewed-days")) {
			unsigned long d = v ? strtoul(v, &e, 10) : 0;

			if (!v || !*v || *e || d > 365)
				return diag_err(&q->d, CW_EINVAL, "value", "unreviewed-days",
						"unreviewed-days must be a number of days from 0 to 365");
			in.unreviewed_days = (unsigned)d;
		} else if (strcmp(k, "_format") && strcmp(k, "_pretty") && q->strict) {
			return diag_err(&q->d, CW_EINVAL, "not-supported", NULL,
					"Unknown $transitions-measures parameter");
		}
	}
	if (in.end <= in.start || in.end - in.start > 366 * TIME_DAY_MS)
		return diag_err(&q->d, CW_EINVAL, "value", "end",
				"The period must end after it starts, and be a year at most");
	if (!api_scope(q) && q->who)
		return CW_ENOMEM;
	/* the period and 30 days each side: readmissions, follow-ups */
	day_text(in.start - 30 * TIME_DAY_MS, lo);
	day_text(in.end + 30 * TIME_DAY_MS, hi);
	ekv[0] = (struct fhir_kv){"date", arena_printf(q->a, "ge%s", lo)};
	ekv[1] = (struct fhir_kv){"date", arena_printf(q->a, "le%s", hi)};
	tkv[0] = (struct fhir_kv){"code",
		"https://careweave.org/fhir/CodeSystem/transitions-task|contact,"
		"https://careweave.org/fhir/CodeSystem/transitions-task|follow-up-visit,"
		"https://careweave.org/fhir/CodeSystem/transitions-task|medication-reconciliation,"
		"https://careweave.org/fhir/CodeSystem/results-task|review-result"};
	if ((err = collect(q, "Encounter", ekv, 2, &enc)) ||
	    (err = collect(q, "Task", tkv, 1, &tasks)))
		return err;
	in.encounters = enc.v;
	in.nencounters = enc.n;
	in.tasks = tasks.v;
	in.ntasks = tasks.n;
	in.co = q->api->coord;
	if ((err = coord_measures(q->a, &in, &m)))
		return err == CW_ETOOBIG ? diag_err(&q->d, err, "too-costly", NULL,
						    "Too many records in the period") : err;
	day_text(in.start, from);
	day_text(in.end - TIME_DAY_MS, to);
	params = json_pack("[{s:s, s:{s:s, s:s}}, o, o, o, o, o, o, o, o, o, o, o]",
			   "name", "period", "valuePeriod", "start", from, "end", to,
			   count("admissions", m.admissions),
			   count("readmissions-30-days", m.readmissions),
			   count("discharges", m.discharges),
			   count("discharges-readmitted-30-days", m.discharges_readmitted),
			   count("contact-within-2-business-days", m.contact_2d),
			   count("visit-within-7-days", m.visit_7d),
			   count("visit-within-14-days", m.visit_14d),
			   count("medication-reconciliation-within-30-days", m.medrec_30d),
			   count("results-unreviewed", m.unreviewed),
			   count("results-unreviewed-overdue", m.unreviewed_old),
			   json_pack("{s:s, s:i}", "name", "unreviewed-days", "valueInteger",
				     (json_int_t)in.unreviewed_days));
	if (params && m.discharges)
		json_array_append_new(params, json_pack("{s:s, s:f}", "name",
			"readmission-rate", "valueDecimal",
			(double)m.discharges_readmitted / (double)m.discharges));
	out = params ? json_pack("{s:s, s:o}", "resourceType", "Parameters", "parameter", params) :
		       NULL;
	if (!out || !api_json_own(q->a, out))
		return CW_ENOMEM;
	return api_reply_json(q, 200, out);
}
