/* coord/results.c: results routing, a result is reviewed by whom it
 * concerns (see src/coord/README.md, "Results routing").
 *
 * When a DiagnosticReport is final (or amended, corrected, appended), each
 * of the ordering provider (the requester of the ServiceRequest it is
 * basedOn) and the primary care physicians of the patient's care team
 * gets a Task to review it, once (identifier
 * urn:careweave:results|<report id>:<who>); with neither, the
 * coordinator does. The Task's priority is the result's: stat when an
 * Observation of it is critical (interpretation HH, LL, AA), urgent when
 * one is abnormal (H, L, A and the other abnormal codes), routine
 * otherwise. A result stays unreviewed while its Task is open; whoever
 * reviews it completes the Task. Like transitions.c, the rule acts only
 * on results of the last COORD_RECENT_DAYS (history loaded later is not
 * work), and never on imports. */
#include <string.h>

#include "coord/coord_int.h"

#define RESULTS_SYSTEM "urn:careweave:results"
#define RESULTS_TASK_CODES "https://careweave.org/fhir/CodeSystem/results-task"
#define RESULTS_OBS_MAX 200

static bool
reviewable(const char *st)
{
	return st && (!strcmp(st, "final") || !strcmp(st, "amended") ||
		      !strcmp(st, "corrected") || !strcmp(st, "appended"));
}

/* 2: critical, 1: abnormal, 0: neither (v3-ObservationInterpretation,
 * which HL7 table 0078 shares). */
static int
flag_of(const json_t *obs)
{
	size_t i, k;
	json_t *cc, *c;
	int worst = 0;

	json_array_foreach(json_object_get(obs, "interpretation"), i, cc)
		json_array_foreach(json_object_get(cc, "coding"), k, c) {
			const char *code = coord_str_at(c, "code");

			if (!code)
				continue;
			if (!strcmp(code, "HH") || !strcmp(code, "LL") || !strcmp(code, "AA"))
				return 2;
			if (!strcmp(code, "H") || !strcmp(code, "L") || !strcmp(code, "A") ||
			    !strcmp(code, "HU") || !strcmp(code, "LU") || !strcmp(code, "POS") ||
			    !strcmp(code, "DET") || !strcmp(code, "R") || !strcmp(code, "IND"))
				worst = 1;
		}
	return worst;
}

enum cw_err
coord_results(struct coord *co, struct store_tx *tx, struct arena *a, const char *id,
	      const json_t *rep, struct coord_report *out, struct diag *d)
{
	const char *st = coord_str_at(rep, "status"), *when, *ref, *who[COORD_NOTIFY_MAX + 1];
	const char *words = coord_str_at(json_object_get(rep, "code"), "text");
	struct coord_report team = {0};
	size_t nwho = 0, nobs = 0, ncrit = 0, nabn = 0, i;
	int64_t t;
	json_t *r;
	enum cw_err err;

	(void)co;
	out->patient = rep ? coord_patient_of("DiagnosticReport", rep) : NULL;
	if (!out->patient || !reviewable(st))
		return CW_OK;
	out->topic = "Results";
	when = coord_str_at(rep, "issued") ? coord_str_at(rep, "issued") :
	       coord_str_at(rep, "effectiveDateTime");
	t = coord_ms_of(when);
	if (!coord_recent(t))
		return CW_OK;
	ref = arena_printf(a, "DiagnosticReport/%s", id);
	/* what it found */
	json_array_foreach(json_object_get(rep, "result"), i, r) {
		const char *oref = coord_str_at(r, "reference");
		json_t *obs;
		int fl;

		if (nobs == RESULTS_OBS_MAX || !oref || strncmp(oref, "Observation/", 12))
			continue;
		nobs++;
		if (!(obs = coord_read_json(tx, a, "Observation", oref + 12, d)))
			continue;
		fl = flag_of(obs);
		ncrit += fl == 2;
		nabn += fl == 1;
	}
	/* who reviews it: the ordering provider, the primary care physicians */
	json_array_foreach(json_object_get(rep, "basedOn"), i, r) {
		const char *sr = coord_str_at(r, "reference"), *req;
		json_t *order;

		if (!sr || strncmp(sr, "ServiceRequest/", 15) ||
		    !(order = coord_read_json(tx, a, "ServiceRequest", sr + 15, d)))
			continue;
		req = coord_str_at(json_object_get(order, "requester"), "reference");
		if (req && nwho < COORD_NOTIFY_MAX &&
		    (!strncmp(req, "Practitioner/", 13) || !strncmp(req, "PractitionerRole/", 17)))
			who[nwho++] = req;
	}
	if ((err = coord_load_notify(tx, a, out->patient, NULL, COORD_TELL_PCP, &team, d)))
		return err;
	for (size_t k = 0; k < team.nnotify && nwho < COORD_NOTIFY_MAX; k++) {
		bool dup = false;

		for (size_t j = 0; j < nwho; j++)
			dup |= !strcmp(who[j], team.notify[k]);
		if (!dup)
			who[nwho++] = team.notify[k];
	}
	if (!nwho) {
		struct coord_report c = {0};

		if ((err = coord_load_notify(tx, a, out->patient, NULL, COORD_TELL_COORDINATOR, &c,
					     d)))
			return err;
		who[nwho++] = c.nnotify ? c.notify[0] : NULL;
	}
	for (size_t k = 0; k < nwho; k++) {
		const char *key = coord_pair_key(a, "review", NULL, id, who[k] ? who[k] : "unassigned");
		const char *q[] = {"identifier", arena_printf(a, "%s|%s", RESULTS_SYSTEM, key)};
		const char **ids;
		size_t n;
		char at[32];
		json_t *task;

		if ((err = coord_match(tx, a, "Task", q, 1, 1, &ids, &n, d)))
			return err;
		if (n)
			continue; /* routed already: its review stands */
		time_format_instant(t, at);
		task = json_pack("{s:s, s:[{s:s, s:s}], s:s, s:s, s:s, s:{s:[{s:s, s:s, s:s}], s:s},"
				 " s:s, s:{s:s}, s:{s:s}, s:s}",
				 "resourceType", "Task", "identifier", "system", RESULTS_SYSTEM,
				 "value", key, "status", "requested", "intent", "order",
				 "priority", ncrit ? "stat" : nabn ? "urgent" : "routine",
				 "code", "coding", "system", RESULTS_TASK_CODES, "code",
				 "review-result", "display", "Review a result", "text",
				 "Review a result",
				 "description", arena_printf(a,
					"Review the result %s (%s%s): %zu value%s, %zu critical, %zu "
					"abnormal. Complete this task once it is reviewed.%s",
					words ? words : "of a test", ref, !strcmp(st, "final") ? "" :
					arena_printf(a, ", %s", st), nobs, nobs == 1 ? "" : "s",
					ncrit, nabn, who[k] ? "" : " Nobody on the care team is the "
					"ordering provider, a primary care physician or a coordinator: "
					"assign it."),
				 "focus", "reference", ref, "for", "reference", out->patient,
				 "authoredOn", at);
		if (task && who[k])
			json_object_set_new(task, "owner", json_pack("{s:s}", "reference", who[k]));
		if (out->nwrites == COORD_WRITES_MAX) {
			json_decref(task);
			break;
		}
		if ((err = coord_add_write(out, a, task, NULL)))
			return err;
	}
	return CW_OK;
}
