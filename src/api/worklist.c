/* api/worklist.c: GET /fhir/Task/$worklist, what a member of the care team
 * has to do now.
 *
 *   owner            Practitioner/x or PractitionerRole/x whose open Tasks
 *                    are listed (default: the caller's own link)
 *   unreviewed-days  results whose review Task has been open longer are
 *                    listed too, whoever owns them (default 3; 0 to 365)
 *
 * The answer is a Bundle (searchset) of open Tasks, most pressing first:
 * by priority (stat, asap, urgent, routine), then by due date
 * (restriction.period.end), then by when they were written. Every Task is
 * one the caller may read (checked as a search checks its matches), and
 * the audit record names the patients of those returned. This is the
 * coordinator's worklist of issue 5: the transitions Tasks of the
 * patients' stays, the reviews of results, and the overdue reviews. */
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

#define WORKLIST_MAX 500
#define OPEN_STATUSES "requested,received,accepted,ready,in-progress,on-hold"

struct item {
	json_t *res;
	const char *id;
	int rank;        /* priority: 0 stat ... 3 routine */
	const char *due; /* restriction.period.end, or NULL */
	const char *at;  /* authoredOn, or NULL */
};

static int
rank_of(const char *p)
{
	if (!p)
		return 3;
	return !strcmp(p, "stat") ? 0 : !strcmp(p, "asap") ? 1 : !strcmp(p, "urgent") ? 2 : 3;
}

static int
by_pressing(const void *x, const void *y)
{
	const struct item *a = x, *b = y;
	int c;

	if (a->rank != b->rank)
		return a->rank - b->rank;
	if ((a->due != NULL) != (b->due != NULL))
		return a->due ? -1 : 1;
	if (a->due && (c = strcmp(a->due, b->due)))
		return c;
	if ((a->at != NULL) != (b->at != NULL))
		return a->at ? -1 : 1;
	return a->at ? strcmp(a->at, b->at) : strcmp(a->id, b->id);
}

/* The open Tasks matching kv the caller may read, added to v (once). */
static enum cw_err
gather(struct api_req *q, struct fhir_kv *kv, size_t nkv, struct item *v, size_t *n)
{
	struct fhir_query fq;
	struct store_page page;
	enum cw_err err;

	if ((err = fhir_query_parse(q->a, fhir_restype_find("Task"), kv, nkv, true, &fq, &q->d)))
		return err;
	fq.count = WORKLIST_MAX;
	if ((err = store_search(q->api->store, q->a, &fq, &page, &q->d)))
		return err;
	for (size_t i = 0; i < page.n && *n < WORKLIST_MAX; i++) {
		json_t *t = NULL;
		bool ok, dup = false;

		for (size_t k = 0; k < *n && !dup; k++)
			dup = !strcmp(v[k].id, page.res[i].id);
		if (dup)
			continue;
		if ((err = api_may_read_res(q, &page.res[i], &ok)))
			return err;
		if (!ok)
			continue;
		if (fhir_parse_json(page.res[i].json.p, page.res[i].json.n, &t, NULL) ||
		    !api_json_own(q->a, t))
			return CW_ENOMEM;
		v[*n].res = t;
		v[*n].id = page.res[i].id;
		v[*n].rank = rank_of(api_str_at(t, "priority"));
		v[*n].due = api_str_at(json_object_get(json_object_get(t, "restriction"), "period"), "end");
		v[*n].at = api_str_at(t, "authoredOn");
		(*n)++;
	}
	return CW_OK;
}

enum cw_err
api_h_worklist(struct api_req *q)
{
	const char *owner = q->who ? q->who->link : NULL, **pats = NULL;
	unsigned days = 3;
	struct item *v;
	size_t n = 0, np = 0;
	char cutoff[32];
	json_t *entries, *out;
	enum cw_err err;

	if (strcmp(q->rt->name, "Task"))
		return diag_err(&q->d, CW_ENOTFOUND, "not-supported", NULL,
				"$worklist is served for Task only");
	for (size_t i = 0; i < q->r->nquery; i++) {
		const char *k = q->r->query[i].key, *val = q->r->query[i].value;
		char *e;

		if (!strcmp(k, "owner")) {
			if (!val || (strncmp(val, "Practitioner/", 13) && strncmp(val, "PractitionerRole/", 17)))
				return diag_err(&q->d, CW_EINVAL, "value", "owner",
						"owner must be Practitioner/ID or PractitionerRole/ID");
			owner = val;
		} else if (!strcmp(k, "unreviewed-days")) {
			unsigned long d = val ? strtoul(val, &e, 10) : 0;

			if (!val || !*val || *e || d > 365)
				return diag_err(&q->d, CW_EINVAL, "value", "unreviewed-days",
						"unreviewed-days must be a number of days from 0 to 365");
			days = (unsigned)d;
		} else if (strcmp(k, "_format") && strcmp(k, "_pretty") && q->strict) {
			return diag_err(&q->d, CW_EINVAL, "not-supported", NULL,
					"Unknown $worklist parameter");
		}
	}
	if (!owner)
		return diag_err(&q->d, CW_EINVAL, "required", "owner",
				"Whose worklist? Your account names no Practitioner: give owner");
	if (q->who && !api_scope(q))
		return CW_ENOMEM;
	if (!(v = arena_zalloc(q->a, WORKLIST_MAX * sizeof(*v))))
		return CW_ENOMEM;
	{
		struct fhir_kv mine[] = {{"owner", owner}, {"status", OPEN_STATUSES}};

		if ((err = gather(q, mine, 2, v, &n)))
			return err;
	}
	time_format_instant(time_now_ms() - (int64_t)days * TIME_DAY_MS, cutoff);
	{
		struct fhir_kv overdue[] = {
			{"code", "https://careweave.org/fhir/CodeSystem/results-task|review-result"},
			{"status", OPEN_STATUSES},
			{"authored-on", arena_printf(q->a, "lt%s", cutoff)}};

		if ((err = gather(q, overdue, 3, v, &n)))
			return err;
	}
	qsort(v, n, sizeof(*v), by_pressing);
	if (!(entries = api_json_own(q->a, json_array())) ||
	    (n && !(pats = arena_alloc(q->a, n * sizeof(*pats)))))
		return CW_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *pat = api_str_at(json_object_get(v[i].res, "for"), "reference");
		bool seen = false;

		if (json_array_append_new(entries, json_pack("{s:s, s:O, s:{s:s}}", "fullUrl",
			arena_printf(q->a, "%s/Task/%s", q->api->base, v[i].id), "resource", v[i].res,
			"search", "mode", "match")))
			return CW_ENOMEM;
		if (!pat || strncmp(pat, "Patient/", 8))
			continue;
		for (size_t k = 0; k < np && !seen; k++)
			seen = !strcmp(pats[k], pat + 8);
		if (!seen)
			pats[np++] = pat + 8;
	}
	/* the answer tells about these patients' records: the audit names them */
	q->patients = pats;
	q->npatients = np;
	q->read_patients = true;
	out = json_pack("{s:s, s:s, s:I, s:O}", "resourceType", "Bundle", "type", "searchset",
			"total", (json_int_t)n, "entry", entries);
	if (!out || !api_json_own(q->a, out))
		return CW_ENOMEM;
	return api_reply_json(q, 200, out);
}
