/* coord/measures.c: the transitions-of-care measures of a period (see
 * coord.h and src/coord/README.md, "Measures").
 *
 * Computed from the records the caller gives (api/measures.c reads what
 * the caller may see): Encounters, and the Tasks transitions.c and
 * results.c made. Reads nothing, writes nothing. */
#include <string.h>

#include "coord/coord_int.h"

#define MEASURES_STAYS_MAX 20000

static bool
visit(const char *cls)
{
	return cls && (!strcmp(cls, "AMB") || !strcmp(cls, "VR") || !strcmp(cls, "HH"));
}

struct stay {
	const char *patient, *id;
	int64_t start, end; /* end -1: not finished */
	bool inpatient, visit;
};

/* When a Task was done: executionPeriod.end, else lastModified, else its
 * version's time; -1 when it is not completed. */
static int64_t
done_at(const json_t *t)
{
	const char *st = coord_str_at(t, "status"), *at;

	if (!st || strcmp(st, "completed"))
		return -1;
	at = coord_str_at(json_object_get(t, "executionPeriod"), "end");
	if (!at)
		at = coord_str_at(t, "lastModified");
	if (!at)
		at = coord_str_at(json_object_get(t, "meta"), "lastUpdated");
	return coord_ms_of(at);
}

/* The transitions Task of kind for Encounter id, or NULL. */
static const json_t *
task_of(const struct coord_measures_input *in, const char *id, const char *kind)
{
	char want[160];

	snprintf(want, sizeof(want), "%s:%s", id, kind);
	for (size_t i = 0; i < in->ntasks; i++) {
		size_t k;
		json_t *ident;

		json_array_foreach(json_object_get(in->tasks[i], "identifier"), k, ident) {
			const char *sys = coord_str_at(ident, "system"), *v = coord_str_at(ident, "value");

			if (sys && v && !strcmp(sys, "urn:careweave:transitions") && !strcmp(v, want))
				return in->tasks[i];
		}
	}
	return NULL;
}

static bool
open_task(const json_t *t)
{
	const char *st = coord_str_at(t, "status");

	return st && (!strcmp(st, "requested") || !strcmp(st, "received") ||
		      !strcmp(st, "accepted") || !strcmp(st, "ready") ||
		      !strcmp(st, "in-progress") || !strcmp(st, "on-hold") ||
		      !strcmp(st, "draft"));
}

static bool
review_task(const json_t *t)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(json_object_get(t, "code"), "coding"), i, c) {
		const char *code = coord_str_at(c, "code");

		if (code && !strcmp(code, "review-result"))
			return true;
	}
	return false;
}

enum cw_err
coord_measures(struct arena *a, const struct coord_measures_input *in,
	       struct coord_measures *out)
{
	struct stay *s;
	size_t n = 0;

	memset(out, 0, sizeof(*out));
	if (in->nencounters > MEASURES_STAYS_MAX)
		return CW_ETOOBIG;
	if (!(s = arena_alloc(a, (in->nencounters + 1) * sizeof(*s))))
		return CW_ENOMEM;
	for (size_t i = 0; i < in->nencounters; i++) {
		const json_t *e = in->encounters[i];
		const char *cls = coord_str_at(json_object_get(e, "class"), "code");
		const char *st = coord_str_at(e, "status");
		const json_t *p = json_object_get(e, "period");

		if (!st || !strcmp(st, "cancelled") || !strcmp(st, "entered-in-error") ||
		    !strcmp(st, "planned"))
			continue;
		s[n].patient = coord_patient_of("Encounter", e);
		s[n].id = coord_str_at(e, "id");
		s[n].start = coord_ms_of(coord_str_at(p, "start"));
		s[n].end = !strcmp(st, "finished") ? coord_ms_of(coord_str_at(p, "end")) : -1;
		s[n].inpatient = coord_inpatient_class(cls);
		s[n].visit = visit(cls);
		if (s[n].patient && s[n].id && s[n].start >= 0)
			n++;
	}
	for (size_t i = 0; i < n; i++) {
		const struct stay *x = &s[i];

		if (!x->inpatient)
			continue;
		if (x->start >= in->start && x->start < in->end) {
			out->admissions++;
			for (size_t j = 0; j < n; j++)
				if (j != i && s[j].inpatient && s[j].end >= 0 &&
				    !strcmp(s[j].patient, x->patient) && s[j].end <= x->start &&
				    x->start - s[j].end <= 30 * TIME_DAY_MS) {
					out->readmissions++;
					break;
				}
		}
		if (x->end >= in->start && x->end < in->end) {
			const json_t *t;
			int64_t done;
			bool v7 = false, v14 = false, again = false;

			out->discharges++;
			for (size_t j = 0; j < n; j++) {
				const struct stay *y = &s[j];

				if (j == i || strcmp(y->patient, x->patient) || y->start <= x->end)
					continue;
				if (y->inpatient && y->start - x->end <= 30 * TIME_DAY_MS)
					again = true;
				if (y->visit && y->start - x->end <= 7 * TIME_DAY_MS)
					v7 = true;
				if (y->visit && y->start - x->end <= 14 * TIME_DAY_MS)
					v14 = true;
			}
			out->discharges_readmitted += again;
			if ((t = task_of(in, x->id, "contact")) && (done = done_at(t)) >= 0 &&
			    done <= coord_business_days(in->co, x->end, 2))
				out->contact_2d++;
			if ((t = task_of(in, x->id, "follow-up-visit")) && (done = done_at(t)) >= 0) {
				v7 |= done - x->end <= 7 * TIME_DAY_MS;
				v14 |= done - x->end <= 14 * TIME_DAY_MS;
			}
			out->visit_7d += v7;
			out->visit_14d += v14;
			if ((t = task_of(in, x->id, "medication-reconciliation")) &&
			    (done = done_at(t)) >= 0 && done - x->end <= 30 * TIME_DAY_MS)
				out->medrec_30d++;
		}
	}
	for (size_t i = 0; i < in->ntasks; i++) {
		const json_t *t = in->tasks[i];
		int64_t at = coord_ms_of(coord_str_at(t, "authoredOn"));

		if (!review_task(t) || !open_task(t))
			continue;
		out->unreviewed++;
		if (at >= 0 && in->now - at > (int64_t)in->unreviewed_days * TIME_DAY_MS)
			out->unreviewed_old++;
	}
	return CW_OK;
}
