/* coord/transitions.c: transitions of care, the work a hospital stay
 * gives the care team (see coord.h and src/coord/README.md).
 *
 * The rule looks at what an Encounter is now, not at what changed: the
 * work each state calls for exists once (each resource has an identifier
 * urn:careweave:transitions|<encounter id>:<kind>), so the same admission
 * sent twice, or by two doors, makes it once, and a state that goes back
 * (a cancelled discharge) cancels the work the later state made:
 *
 *   - admitted (in progress or on leave, an inpatient or emergency class):
 *     a Communication telling the patient's care team at once, a Flag
 *     "currently admitted", a Task for the coordinator to send the
 *     hospital the care plan, medication list and contacts; an inpatient
 *     admission within 30 days of a previous discharge is a readmission:
 *     a Flag with priority high, and the words say so;
 *   - discharged (finished, an inpatient class): the Flag ends; Tasks due
 *     from the discharge time (transitions.md: interactive contact within
 *     2 business days, receipt of the discharge summary within 2 days,
 *     medication reconciliation within 30 days, a follow-up visit within
 *     7 days at high readmission risk, 14 otherwise);
 *   - cancelled or entered in error, or deleted: every open Task of it is
 *     cancelled, its Flags are entered in error;
 *   - in progress again after a discharge (the discharge cancelled): the
 *     discharge Tasks are cancelled and the Flag is active again.
 *
 * Each Task goes to whom the care team names for that kind of work (the
 * pharmacist reconciles medications, the primary care physician sees the
 * patient), else the coordinator; with no one to give it to it is
 * written without an owner and says so. Times come from the Encounter
 * (never the wall clock), so a record gives the same work whenever it is
 * read. */
#include <string.h>

#include "coord/coord_int.h"

#define TRANSITIONS_SYSTEM "urn:careweave:transitions"
#define TASK_CODES "https://careweave.org/fhir/CodeSystem/transitions-task"
#define FLAG_CODES "https://careweave.org/fhir/CodeSystem/transitions-flag"
#define READMISSION_DAYS 30
#define TEAM_MAX 32

bool
coord_follows(const char *type)
{
	return type && (!strcmp(type, "Encounter") || !strcmp(type, "DiagnosticReport"));
}

/* ---- the Encounter ---------------------------------------------------------- */

static const char *
class_code(const json_t *enc)
{
	return coord_str_at(json_object_get(enc, "class"), "code");
}

/* An admission the team is told of at once: a stay, or the emergency room. */
static bool
admission(const char *cls)
{
	return coord_inpatient_class(cls) || (cls && !strcmp(cls, "EMER"));
}

/* ---- what exists ----------------------------------------------------------- */

struct work {
	struct coord *co;
	struct store_tx *tx;
	struct arena *a;
	struct diag *d;
	const char *enc;      /* "Encounter/x" */
	const char *enc_id;
	const char *patient;  /* "Patient/x" */
	struct coord_report *out;
	/* the work of this Encounter careweave made already, read once per
	 * type (one search of the records that name the Encounter) */
	struct held {
		const char *type;
		bool loaded;
		size_t n;
		const char **ids;
		json_t **res;
	} held[4];
	/* the first member of each role (enum coord_told bit), once asked */
	const char *member[8];
	bool asked[8];
};

#define HELD_MAX 64

/* The records of type that name the Encounter (Task focus, Flag and
 * Communication encounter), read once. */
static struct held *
held_of(struct work *w, const char *type)
{
	const char *param = !strcmp(type, "Task") ? "focus" : "encounter";
	const char *q[] = {param, w->enc};
	struct held *h = NULL;
	const char **ids;
	size_t n;

	for (size_t i = 0; i < 4 && !h; i++)
		if (!w->held[i].type || !strcmp(w->held[i].type, type))
			h = &w->held[i];
	if (!h)
		return NULL;
	if (h->loaded)
		return h;
	h->type = type;
	h->loaded = true;
	if (coord_match(w->tx, w->a, type, q, 1, HELD_MAX, &ids, &n, w->d) ||
	    !(h->res = arena_zalloc(w->a, (n + 1) * sizeof(*h->res))))
		return h;
	h->ids = ids;
	for (size_t i = 0; i < n; i++)
		h->res[i] = coord_read_json(w->tx, w->a, type, ids[i], w->d);
	h->n = n;
	return h;
}

/* The resource of type with this rule's identifier for kind, read in tx,
 * and its id; NULL when there is none. */
static json_t *
existing(struct work *w, const char *type, const char *kind, const char **id)
{
	const char *want = arena_printf(w->a, "%s:%s", w->enc_id, kind);
	struct held *h = held_of(w, type);

	*id = NULL;
	for (size_t i = 0; h && want && i < h->n; i++) {
		size_t k;
		json_t *ident;

		json_array_foreach(json_object_get(h->res[i], "identifier"), k, ident) {
			const char *sys = coord_str_at(ident, "system"), *v = coord_str_at(ident, "value");

			if (sys && v && !strcmp(sys, TRANSITIONS_SYSTEM) && !strcmp(v, want)) {
				*id = h->ids[i];
				return h->res[i];
			}
		}
	}
	return NULL;
}

static json_t *
ident(struct work *w, const char *kind)
{
	return json_pack("[{s:s, s:s}]", "system", TRANSITIONS_SYSTEM, "value",
			 arena_printf(w->a, "%s:%s", w->enc_id, kind));
}

/* ---- the work --------------------------------------------------------------- */

struct task_kind {
	const char *kind;     /* the identifier's and the code's */
	const char *display;
	const char *what;     /* the description's first words */
	unsigned owner;       /* enum coord_told: who does it, in order of preference */
};

static const struct task_kind SEND_RECORDS = {
	"send-records", "Send the hospital the patient's records",
	"Send the admitting hospital the care plan, the medication list and the care "
	"team's contacts", COORD_TELL_COORDINATOR};
static const struct task_kind CONTACT = {
	"contact", "Interactive contact after discharge",
	"Call the patient or caregiver (interactive contact) within 2 business days of "
	"the discharge", COORD_TELL_COORDINATOR};
static const struct task_kind SUMMARY = {
	"discharge-summary", "Receive the discharge summary",
	"Get the discharge summary (responsible practitioner, procedures and treatment, "
	"diagnoses, medication list with allergies, results and pending tests, "
	"instructions) within 2 days of the discharge", COORD_TELL_COORDINATOR};
static const struct task_kind MEDREC = {
	"medication-reconciliation", "Medication reconciliation after discharge",
	"Reconcile the discharge medications with the list from before the admission "
	"(Patient/$medication-list) within 30 days of the discharge",
	COORD_TELL_PHARMACIST};
static const struct task_kind FOLLOWUP = {
	"follow-up-visit", "Follow-up visit after discharge",
	"See the patient (office, home or synchronous telehealth visit)",
	COORD_TELL_PCP};

/* The first member of the patient's care teams whose role is told (one
 * enum coord_told bit), or NULL; read once per role for all the Tasks. */
static const char *
first_member(struct work *w, unsigned told)
{
	struct coord_report team = {0};

	if (told >= 8)
		return NULL;
	if (!w->asked[told]) {
		w->asked[told] = true;
		if (coord_load_notify(w->tx, w->a, w->patient, NULL, told, &team, w->d) == CW_OK &&
		    team.nnotify)
			w->member[told] = team.notify[0];
	}
	return w->member[told];
}

/* Who does kind: the member the team names for it, else the coordinator. */
static const char *
owner_of(struct work *w, unsigned told)
{
	const char *who = first_member(w, told);

	return who ? who : first_member(w, COORD_TELL_COORDINATOR);
}

/* The Task of kind, due at due (ms), unless it exists (then it stands: the
 * team may have done it). */
static enum cw_err
task(struct work *w, const struct task_kind *k, int64_t from, int64_t due,
     const char *priority, const char *extra)
{
	const char *id, *owner;
	char at[32], by[32];
	json_t *t;

	if (existing(w, "Task", k->kind, &id))
		return CW_OK;
	owner = owner_of(w, k->owner);
	time_format_instant(from, at);
	time_format_instant(due, by);
	t = json_pack("{s:s, s:o, s:s, s:s, s:s, s:{s:[{s:s, s:s, s:s}], s:s}, s:s,"
		      " s:{s:s}, s:{s:s}, s:s, s:{s:{s:s}}}",
		      "resourceType", "Task", "identifier", ident(w, k->kind),
		      "status", "requested", "intent", "order", "priority", priority,
		      "code", "coding", "system", TASK_CODES, "code", k->kind, "display",
		      k->display, "text", k->display,
		      "description", arena_printf(w->a, "%s%s%s%s", k->what, extra ? extra : "",
						  owner ? "." : ". Nobody on the care team has this "
						  "role, nor a coordinator: assign it.",
						  ""),
		      "focus", "reference", w->enc, "for", "reference", w->patient,
		      "authoredOn", at, "restriction", "period", "end", by);
	if (t && owner)
		json_object_set_new(t, "owner", json_pack("{s:s}", "reference", owner));
	return coord_add_write(w->out, w->a, t, NULL);
}

/* Cancels the Task of kind if it is open. */
static enum cw_err
cancel_task(struct work *w, const char *kind, const char *why)
{
	const char *id, *st;
	json_t *t = existing(w, "Task", kind, &id);

	if (!t)
		return CW_OK;
	st = coord_str_at(t, "status");
	if (st && (!strcmp(st, "completed") || !strcmp(st, "cancelled") ||
		   !strcmp(st, "failed") || !strcmp(st, "entered-in-error")))
		return CW_OK;
	t = json_deep_copy(t);
	if (!t)
		return CW_ENOMEM;
	json_object_del(t, "meta");
	json_object_set_new(t, "status", json_string("cancelled"));
	json_object_set_new(t, "statusReason", json_pack("{s:s}", "text", why));
	return coord_add_write(w->out, w->a, t, id);
}

/* The Flag of kind: made (status active, from start), or set to status
 * (with an end) when it exists. */
static enum cw_err
flag(struct work *w, const char *kind, const char *display, bool high,
     const char *status, const char *start, const char *end)
{
	const char *id, *st;
	json_t *f = existing(w, "Flag", kind, &id);

	if (f) {
		st = coord_str_at(f, "status");
		if (st && !strcmp(st, status) &&
		    (!end || coord_str_at(json_object_get(f, "period"), "end")))
			return CW_OK;
		f = json_deep_copy(f);
		if (!f)
			return CW_ENOMEM;
		json_object_del(f, "meta");
		json_object_set_new(f, "status", json_string(status));
		if (end && json_object_get(f, "period"))
			json_object_set_new(json_object_get(f, "period"), "end", json_string(end));
		else if (!end && json_object_get(f, "period"))
			json_object_del(json_object_get(f, "period"), "end");
		return coord_add_write(w->out, w->a, f, id);
	}
	if (strcmp(status, "active"))
		return CW_OK; /* nothing to end */
	f = json_pack("{s:s, s:o, s:s, s:[{s:[{s:s, s:s}]}], s:{s:[{s:s, s:s, s:s}], s:s},"
		      " s:{s:s}, s:{s:s}}",
		      "resourceType", "Flag", "identifier", ident(w, kind), "status", "active",
		      "category", "coding", "system",
		      "http://terminology.hl7.org/CodeSystem/flag-category", "code", "admin",
		      "code", "coding", "system", FLAG_CODES, "code", kind, "display", display,
		      "text", display, "subject", "reference", w->patient,
		      "encounter", "reference", w->enc);
	if (f && start)
		json_object_set_new(f, "period", json_pack("{s:s}", "start", start));
	if (f && high)
		json_object_set_new(f, "extension", json_pack("[{s:s, s:{s:[{s:s, s:s, s:s}]}}]",
			"url", "http://hl7.org/fhir/StructureDefinition/flag-priority",
			"valueCodeableConcept", "coding", "system",
			"http://hl7.org/fhir/flag-priority-code", "code", "PH",
			"display", "High priority"));
	return coord_add_write(w->out, w->a, f, NULL);
}

/* The previous inpatient stay that ended within READMISSION_DAYS before
 * start (ms), as "Encounter/x" with its end; NULL when none. */
static const char *
previous_stay(struct work *w, int64_t start, const char **ended)
{
	const char *q[] = {"subject", w->patient, "status", "finished"};
	const char **ids;
	const char *best = NULL;
	int64_t best_end = -1;
	size_t n;

	*ended = NULL;
	if (start < 0 || coord_match(w->tx, w->a, "Encounter", q, 2, 200, &ids, &n, w->d))
		return NULL;
	for (size_t i = 0; i < n; i++) {
		json_t *e;
		const char *end;
		int64_t t;

		if (!strcmp(ids[i], w->enc_id) ||
		    !(e = coord_read_json(w->tx, w->a, "Encounter", ids[i], w->d)) ||
		    !coord_inpatient_class(class_code(e)))
			continue;
		end = coord_str_at(json_object_get(e, "period"), "end");
		t = coord_ms_of(end);
		if (t < 0 || t > start || start - t > READMISSION_DAYS * TIME_DAY_MS || t <= best_end)
			continue;
		best_end = t;
		best = arena_printf(w->a, "Encounter/%s", ids[i]);
		*ended = end;
	}
	return best;
}

static enum cw_err
admitted(struct work *w, const json_t *enc)
{
	const char *cls = class_code(enc), *start = coord_str_at(json_object_get(enc, "period"),
								  "start");
	const char *prev_end = NULL, *prev = NULL, *id;
	int64_t t = coord_ms_of(start);
	struct coord_report team = {0};
	char at[32];
	enum cw_err err;

	if (t < 0)
		return CW_OK; /* no admission time: nothing to date the work by */
	/* long ago, and not discharged lately either: history, not work */
	if (!coord_recent(t) && !coord_recent(coord_ms_of(coord_str_at(json_object_get(enc, "period"), "end"))))
		return CW_OK;
	time_format_instant(t, at);
	if (coord_inpatient_class(cls))
		prev = previous_stay(w, t, &prev_end);
	if ((err = flag(w, "admitted", "Currently admitted", false, "active", start, NULL)))
		return err;
	if (prev && (err = flag(w, "readmission", "30-day readmission", true, "active", start,
				NULL)))
		return err;
	/* the team told at once, once */
	if (!existing(w, "Communication", "admission-notice", &id)) {
		json_t *rcpt = json_array(), *c;
		const char *words;

		if ((err = coord_load_notify(w->tx, w->a, w->patient, NULL, COORD_TELL_ALL, &team,
					     w->d)))
			return err;
		for (size_t i = 0; rcpt && i < team.nnotify; i++)
			json_array_append_new(rcpt, json_pack("{s:s}", "reference", team.notify[i]));
		words = arena_printf(w->a, "Transitions of care: the patient was %s on %s (%s).%s%s"
				     " The coordinator is to send the hospital the care plan, "
				     "the medication list and the team's contacts.",
				     coord_inpatient_class(cls) ? "admitted to hospital" :
				     "registered at an emergency department", start, w->enc,
				     prev ? " This is a readmission within 30 days of the "
				     "discharge on " : "",
				     prev ? arena_printf(w->a, "%s (%s).", prev_end, prev) : "");
		c = json_pack("{s:s, s:o, s:s, s:[{s:[{s:s, s:s}]}], s:s, s:{s:s}, s:{s:s}, s:s,"
			      " s:[{s:s}]}",
			      "resourceType", "Communication", "identifier",
			      ident(w, "admission-notice"), "status", "completed",
			      "category", "coding", "system",
			      "http://terminology.hl7.org/CodeSystem/communication-category",
			      "code", "notification", "priority", prev ? "asap" : "urgent",
			      "subject", "reference", w->patient, "encounter", "reference", w->enc,
			      "sent", at, "payload", "contentString", words);
		if (c && json_array_size(rcpt))
			json_object_set_new(c, "recipient", rcpt);
		else
			json_decref(rcpt);
		if ((err = coord_add_write(w->out, w->a, c, NULL)))
			return err;
	}
	return task(w, &SEND_RECORDS, t, t + TIME_DAY_MS, prev ? "asap" : "urgent", NULL);
}

/* The readmission risk of the stay (risk.c: LACE, and HOSPITAL where its
 * inputs exist), kept as RiskAssessments once; *words say what it sets
 * the follow-up deadline by. A score that may be high (inputs missing)
 * counts as high: the earlier visit is the safer mistake. */
static enum cw_err
risk(struct work *w, const char *end, bool *high, const char **words)
{
	struct coord_risk_input in;
	struct coord_risk lace, hosp;
	struct diag rd;
	const char *id;
	bool lace_high, hosp_high;
	enum cw_err err;

	*high = false;
	*words = " (readmission risk not known: the record lacks what LACE needs; within 7 "
		 "days if it is high)";
	diag_init(&rd, w->a);
	if (coord_risk_read(w->co, w->tx, w->a, w->enc_id, &in, &rd) ||
	    coord_risk_compute(w->co, w->a, &in, &lace, &hosp, &rd))
		return CW_OK; /* not a stay the scores apply to: said in the words */
	lace_high = !strcmp(lace.band_highest, "high");
	hosp_high = !strcmp(hosp.band, "high");
	*high = lace_high || hosp_high;
	*words = arena_printf(w->a, " within %d days of the discharge: LACE %u%s (%s%s)%s",
			      *high ? 7 : 14, lace.total, lace.lower_bound ? " or more" : "",
			      lace.band, lace_high && strcmp(lace.band, "high") ?
			      ", could be high: inputs missing" : "",
			      hosp_high ? arena_printf(w->a, ", HOSPITAL %u (high)", hosp.total) : "");
	for (int k = 0; k < 2; k++) {
		const struct coord_risk *r = k ? &hosp : &lace;
		const char *kind = k ? "risk-hospital" : "risk-lace";
		json_t *ra;

		if (existing(w, "RiskAssessment", kind, &id))
			continue;
		if (!(ra = coord_risk_assessment(r, end)))
			return CW_ENOMEM;
		json_object_set_new(ra, "identifier", ident(w, kind));
		if ((err = coord_add_write(w->out, w->a, ra, NULL)))
			return err;
	}
	return CW_OK;
}

static enum cw_err
discharged(struct work *w, const json_t *enc)
{
	const json_t *period = json_object_get(enc, "period");
	const char *end = coord_str_at(period, "end"), *words;
	int64_t t = coord_ms_of(end);
	bool high;
	enum cw_err err;

	if ((err = flag(w, "admitted", "Currently admitted", false, "inactive", NULL,
			end ? end : NULL)))
		return err;
	if (t < 0 || !coord_recent(t))
		return CW_OK; /* no discharge time, or long ago: no tasks to date */
	if ((err = risk(w, end, &high, &words)))
		return err;
	if ((err = task(w, &CONTACT, t, coord_business_days(w->co, t, 2), "urgent", NULL)) ||
	    (err = task(w, &SUMMARY, t, t + 2 * TIME_DAY_MS, "routine", NULL)) ||
	    (err = task(w, &MEDREC, t, t + 30 * TIME_DAY_MS, "routine", NULL)))
		return err;
	return task(w, &FOLLOWUP, t, t + (high ? 7 : 14) * TIME_DAY_MS, high ? "urgent" : "routine",
		    words);
}

/* Undoes the work of a discharge (it was cancelled, or the stay is). */
static enum cw_err
undo_discharge(struct work *w, const char *why)
{
	static const char *const kinds[] = {"contact", "discharge-summary",
					    "medication-reconciliation", "follow-up-visit"};
	enum cw_err err;

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if ((err = cancel_task(w, kinds[i], why)))
			return err;
	return CW_OK;
}

/* The stay did not happen (cancelled, entered in error, deleted): its work
 * neither. Open Tasks are cancelled, Flags entered in error; nothing is
 * made. */
static enum cw_err
did_not_happen(struct work *w, const char *why)
{
	enum cw_err err;

	if ((err = undo_discharge(w, why)) || (err = cancel_task(w, "send-records", why)) ||
	    (err = flag(w, "admitted", "Currently admitted", false, "entered-in-error",
			NULL, NULL)))
		return err;
	return flag(w, "readmission", "30-day readmission", true, "entered-in-error", NULL,
		    NULL);
}

/* A deleted Encounter is gone with its class and subject: whose stay it was
 * comes from the work it made (Task.for, Flag.subject), which is what is
 * undone. No such work: nothing to do. */
static enum cw_err
deleted(struct work *w)
{
	static const char *const types[] = {"Task", "Flag"};
	static const char *const whose[] = {"for", "subject"};

	for (size_t k = 0; k < 2 && !w->patient; k++) {
		struct held *h = held_of(w, types[k]);

		for (size_t i = 0; h && i < h->n && !w->patient; i++) {
			const char *ref = coord_str_at(json_object_get(h->res[i], whose[k]),
						       "reference");

			if (ref && !strncmp(ref, "Patient/", 8) && ref[8])
				w->patient = ref;
		}
	}
	if (!w->patient)
		return CW_OK;
	w->out->patient = w->patient;
	w->out->topic = "Transitions of care";
	return did_not_happen(w, "The hospital stay was deleted from the record");
}

enum cw_err
coord_transitions(struct coord *co, struct store_tx *tx, struct arena *a,
		  const char *id, const json_t *enc, struct coord_report *out,
		  struct diag *d)
{
	struct work w = {.co = co, .tx = tx, .a = a, .d = d, .enc_id = id, .out = out};
	const char *st = coord_str_at(enc, "status"), *cls;
	enum cw_err err;

	if (!enc) {
		if (!(w.enc = arena_printf(a, "Encounter/%s", id)))
			return CW_ENOMEM;
		return deleted(&w);
	}
	out->patient = coord_patient_of("Encounter", enc);
	if (!out->patient || !st)
		return CW_OK;
	w.patient = out->patient;
	w.enc = arena_printf(a, "Encounter/%s", id);
	out->topic = "Transitions of care";
	cls = class_code(enc);
	if (!admission(cls))
		return CW_OK;
	if (!strcmp(st, "cancelled") || !strcmp(st, "entered-in-error"))
		return did_not_happen(&w, "The hospital stay was cancelled");
	if (!strcmp(st, "in-progress") || !strcmp(st, "onleave") || !strcmp(st, "arrived") ||
	    !strcmp(st, "triaged")) {
		/* in hospital (again: a cancelled discharge undoes its work) */
		if ((err = undo_discharge(&w, "The discharge was cancelled")))
			return err;
		return admitted(&w, enc);
	}
	if (!strcmp(st, "finished") && coord_inpatient_class(cls)) {
		if ((err = admitted(&w, enc)))
			return err;
		return discharged(&w, enc);
	}
	return CW_OK;
}
