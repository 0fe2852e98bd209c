/* api/rules.c: what coord/ says about a change, written with the change.
 *
 * The write paths call api_rules_apply after every create, update or
 * delete (a transaction once all its entries are written), inside the
 * same store transaction, whatever door the change came by (REST, a
 * transaction or batch entry, import, HL7). For a type coord/ watches,
 * for each finding it reports:
 *
 *   - already raised (a DetectedIssue with its identifier, still final,
 *     as coord/'s kept records of the patient say: f->raised): nothing new;
 *   - high severity and interruptive, and the medication carries no
 *     override reason (extension COORD_OVERRIDE_URL): the change fails
 *     with 409 and an OperationOutcome that holds the DetectedIssue
 *     (contained) and says how to override; nothing is written;
 *   - otherwise a DetectedIssue (an override's reason as its mitigation)
 *     and, unless it is low or information only, a Communication
 *     (category alert) to the people coord/ names: the prescriber or
 *     requester and the care team's primary care physician, coordinator
 *     (and pharmacist, for medications).
 *
 * A medication or order that stops being current settles the findings
 * that implicate it: their status becomes mitigated, with the mitigation
 * coord/ names (a medication: "Stopped Concurrent Therapy", v3-ActCode
 * 13; a lab order: "Other Action Taken", 8) and when. Every resource
 * written here goes through api_op_exec as careweave's own (no caller
 * scope) and gets its own audit record (role "rules", no user), in the
 * same transaction. */
#include <string.h>

#include "api/api_int.h"
#include "coord/coord.h"

#define COMM_CATEGORY "http://terminology.hl7.org/CodeSystem/communication-category"

/* Writes res (validated first: careweave never stores what it would
 * refuse from a client) as careweave's own change, with its record. */
static enum cw_err
write_own(struct store_tx *tx, struct arena *a, const struct api_op *parent, json_t *res,
	  const char *id, const char **patients, size_t npatients,
	  struct api_op *out, struct diag *d)
{
	const char *type = json_string_value(json_object_get(res, "resourceType"));
	struct diag vd;
	enum cw_err err;

	memset(out, 0, sizeof(*out));
	out->rt = type ? fhir_restype_find(type) : NULL;
	if (!out->rt)
		return CW_EINTERNAL;
	diag_init(&vd, a);
	if (fhir_validate(res, type, &vd) != CW_OK) {
		diag_log(&vd, "rules: a %s careweave made is not valid", type);
		return CW_EINTERNAL;
	}
	out->kind = id ? OP_UPDATE : OP_CREATE;
	out->id = id;
	out->res = res;
	/* what coord/ keeps of the patient follows (a DetectedIssue), but the
	 * rules do not run on their own writes */
	out->coord = parent->coord;
	out->notify = parent->notify;
	if ((err = api_op_resolve(tx, a, out, d)) ||
	    (err = api_op_exec(tx, a, out, d)))
		return err;
	if (!out->npatients) {
		out->patients = patients;
		out->npatients = npatients;
	}
	return api_trail_tx_own(tx, a, "rules", out);
}

/* The ids of type matching one search parameter in tx. */
static enum cw_err
find(struct store_tx *tx, struct arena *a, const char *type, const char *key,
     const char *value, size_t max, const char ***ids, size_t *n,
     struct diag *d)
{
	struct fhir_kv kv = {key, value};
	struct fhir_query *q = arena_zalloc(a, sizeof(*q));
	enum cw_err err;

	if (!q)
		return CW_ENOMEM;
	err = fhir_query_parse(a, fhir_restype_find(type), &kv, 1, true, q, d);
	return err ? err : store_tx_match(tx, a, q, max, ids, n, d);
}

static json_t *
read_json(struct store_tx *tx, struct arena *a, const char *type,
	  const char *id)
{
	struct store_res r;
	json_t *v = NULL;

	if (store_tx_read(tx, a, type, id, &r) ||
	    fhir_parse_json(r.json.p, r.json.n, &v, NULL))
		return NULL;
	return api_json_own(a, v);
}

/* The override reason the medication carries, or NULL. */
static const char *
override_of(const json_t *res)
{
	size_t i;
	json_t *e;

	json_array_foreach(json_object_get(res, "extension"), i, e) {
		const char *url = api_str_at(e, "url"), *v = api_str_at(e, "valueString");

		if (url && !strcmp(url, COORD_OVERRIDE_URL) && v && *v)
			return v;
	}
	return NULL;
}

/* Settles the final DetectedIssues that implicate r->settles. */
static enum cw_err
settle(struct store_tx *tx, struct arena *a, const struct api_op *parent,
       const struct coord_report *r, const char *now, const char **patients,
       size_t npatients, struct diag *d)
{
	const char *ref = r->settles;
	const char **ids;
	size_t n;
	enum cw_err err;

	if ((err = find(tx, a, "DetectedIssue", "implicated", ref, 200, &ids, &n, d)))
		return err;
	for (size_t i = 0; i < n; i++) {
		json_t *di = read_json(tx, a, "DetectedIssue", ids[i]), *mit;
		const char *sys = api_str_at(json_array_get(json_object_get(di, "identifier"), 0),
					 "system");
		struct api_op sub;

		if (!di || !api_str_at(di, "status") || strcmp(api_str_at(di, "status"), "final") ||
		    !sys || strcmp(sys, COORD_ISSUE_SYSTEM))
			continue;
		mit = json_object_get(di, "mitigation");
		if (!mit) {
			mit = json_array();
			json_object_set_new(di, "mitigation", mit);
		}
		if (json_array_append_new(mit, json_pack(
			    "{s:{s:[{s:s, s:s, s:s}], s:s}, s:s}", "action", "coding",
			    "system", V3_ACT_CODE, "code", r->settle_code ? r->settle_code : "13",
			    "display", r->settle_display ? r->settle_display :
			    "Stopped Concurrent Therapy", "text",
			    arena_printf(a, "%s is no longer current", ref), "date", now)) ||
		    json_object_set_new(di, "status", json_string("mitigated")))
			return CW_ENOMEM;
		json_object_del(di, "meta");
		if ((err = write_own(tx, a, parent, di, ids[i], patients, npatients, &sub, d)))
			return err;
	}
	return CW_OK;
}

/* ---- sensitive records --------------------------------------------------- */

/* A finding names the records it is about. When one of them carries a
 * sensitive label (access_label_sensitive: confidentiality R or V, PSY,
 * ETH, HIV, SEX, ...), the finding must not carry it further than the
 * record itself may go: the stored DetectedIssue takes the labels (so
 * access/ withholds it from whom it withholds the record), the
 * Communication and anyone who may not read the record get words that do
 * not name it. */
enum cw_err
api_rules_sensitivity(struct store_tx *tx, struct arena *a,
		      struct access_scope *scope, const struct coord_finding *f,
		      struct rules_sens *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < 2; i++) {
		const char *ref = f->implicated[i], *slash;
		char type[64];
		struct store_res res;
		json_t *v = NULL, *c;
		size_t k;
		bool labelled = false, ok = true;

		if (!ref || !(slash = strchr(ref, '/')) || (size_t)(slash - ref) >= sizeof(type))
			continue;
		memcpy(type, ref, (size_t)(slash - ref));
		type[slash - ref] = '\0';
		if (store_tx_read(tx, a, type, slash + 1, &res) != CW_OK)
			continue; /* a proposed order: not stored */
		if (fhir_parse_json(res.json.p, res.json.n, &v, NULL) || !api_json_own(a, v))
			return CW_ENOMEM;
		json_array_foreach(json_object_get(json_object_get(v, "meta"), "security"), k, c) {
			const char *sys = api_str_at(c, "system"), *code = api_str_at(c, "code");

			if (!sys || !code || !access_label_sensitive(sys, code))
				continue;
			labelled = true;
			if (!out->labels && !(out->labels = api_json_own(a, json_array())))
				return CW_ENOMEM;
			if (json_array_append_new(out->labels, json_pack("{s:s, s:s}", "system", sys,
									  "code", code)))
				return CW_ENOMEM;
		}
		if (!labelled)
			continue;
		out->sensitive = true;
		if (scope && !access_scope_all(scope) &&
		    access_may_read_text(scope, type, res.json.p, res.json.n, &ok) == CW_OK && !ok)
			out->hidden = true;
	}
	return CW_OK;
}

/* The words of f for whom the record it names may not be shown. */
const char *
api_rules_restricted_words(struct arena *a, const struct coord_finding *f)
{
	return arena_printf(a, "A %s (%s) involves a record of this patient that "
			    "careweave may not show here (a sensitive record). Ask the "
			    "patient's pharmacist or primary care physician.",
			    f->code_display, kb_severity_name(f->severity));
}

/* A DetectedIssue for whom the record may not be shown: the words above,
 * and only the records they may see implicated. */
json_t *
api_rules_restricted_issue(struct arena *a, const struct coord_report *r,
			   const struct coord_finding *f, const char *now)
{
	struct coord_finding g = *f;

	g.detail = api_rules_restricted_words(a, f);
	g.mitigation = NULL;
	g.source = NULL;
	g.implicated[1] = NULL;
	return coord_issue(r, &g, now);
}

static const char *
priority_of(enum kb_severity s)
{
	/* FHIR's request priorities rank routine < urgent < asap < stat */
	return s == KB_SEV_HIGH ? "asap" : s == KB_SEV_MODERATE ? "urgent" : "routine";
}

/* The Communication telling r.notify about the DetectedIssue di_id. */
static json_t *
alert(struct arena *a, const struct coord_report *r, const struct coord_finding *f,
      const char *di_id, const char *now, bool sensitive)
{
	json_t *rcpt = json_array(), *c;

	for (size_t i = 0; rcpt && i < r->nnotify; i++)
		if (json_array_append_new(rcpt, json_pack("{s:s}", "reference", r->notify[i]))) {
			json_decref(rcpt);
			return NULL;
		}
	c = json_pack("{s:s, s:s, s:[{s:[{s:s, s:s}]}], s:s, s:{s:s}, s:[{s:s}],"
		      " s:s, s:o, s:[{s:s}]}",
		      "resourceType", "Communication", "status", "completed",
		      "category", "coding", "system", COMM_CATEGORY, "code", "alert",
		      "priority", f->priority ? f->priority : priority_of(f->severity),
		      "subject", "reference", r->patient,
		      "about", "reference", arena_printf(a, "DetectedIssue/%s", di_id),
		      "sent", now, "recipient", rcpt,
		      "payload", "contentString",
		      sensitive ?
		      arena_printf(a, "%s (%s): %s The finding is DetectedIssue/%s, for "
				   "whom may see the records it names.",
				   r->topic ? r->topic : "Careweave", kb_severity_name(f->severity),
				   api_rules_restricted_words(a, f), di_id) :
		      arena_printf(a, "%s (%s): %s%s%s", r->topic ? r->topic : "Careweave",
				   kb_severity_name(f->severity), f->detail,
				   f->mitigation ? " What to do: " : "",
				   f->mitigation ? f->mitigation : ""));
	return c;
}

/* Says in d that f blocks the change, and keeps its DetectedIssue for the
 * OperationOutcome (op->blocked). */
static enum cw_err
block(struct arena *a, struct api_op *op, const struct coord_report *r,
      const struct coord_finding *f, const char *now, bool hidden, struct diag *d)
{
	json_t *di = hidden ? api_rules_restricted_issue(a, r, f, now) : coord_issue(r, f, now);

	if (!di || !api_json_own(a, di))
		return CW_ENOMEM;
	if (!op->blocked && !(op->blocked = api_json_own(a, json_array())))
		return CW_ENOMEM;
	if (json_array_append(op->blocked, di))
		return CW_ENOMEM;
	/* what, what to do, how to override; the whole finding is contained */
	diag_add(d, DIAG_ERROR, "business-rule", op->loc,
		 "Refused: a high-severity %s. %.400s%s%.200s To write it anyway, state "
		 "the reason in the extension %s (valueString).",
		 f->code_display, hidden ? api_rules_restricted_words(a, f) : f->detail,
		 !hidden && f->mitigation ? " What to do: " : "",
		 !hidden && f->mitigation ? f->mitigation : "", COORD_OVERRIDE_URL);
	return CW_OK;
}

enum cw_err
api_rules_apply(struct store_tx *tx, struct arena *a, struct api_op *op,
		struct diag *d)
{
	struct coord_report r;
	const char *over, *pat[1];
	char now[32];
	bool blocked = false;
	enum cw_err err;

	if (!op->coord || !op->rt || op->noop || (op->kind == OP_DELETE && !op->deleted) ||
	    (!coord_watches(op->rt->name) && !coord_follows(op->rt->name)))
		return CW_OK;
	/* an import records history: the work of a stay is for stays now */
	if (op->report_only && coord_follows(op->rt->name))
		return CW_OK;
	err = coord_on_change(op->coord, tx, a, op->rt->name, op->id,
			      op->kind == OP_DELETE ? NULL : op->res, &r, d);
	if (err)
		return err;
	time_format_instant(time_now_ms(), now);
	/* A record that did not exist before this change implicates no finding
	 * yet (an import of 344 stopped prescriptions a Bundle asks nothing). */
	if (r.settles)
		return op->status == 201 ? CW_OK :
		       settle(tx, a, op, &r, now, op->patients, op->npatients, d);
	if (r.unchecked)
		diag_add(d, DIAG_WARNING, "informational", op->loc, "Not checked for %s: %s",
			 r.unchecked_for, r.unchecked_what);
	over = override_of(op->res);
	/* First every blocking finding, so the answer names them all. */
	for (size_t i = 0; i < r.nfindings; i++) {
		const struct coord_finding *f = &r.findings[i];
		struct rules_sens s;

		if (f->severity != KB_SEV_HIGH || !f->interruptive || over ||
		    op->report_only || r.never_refuses)
			continue;
		if (!f->raised) {
			if ((err = api_rules_sensitivity(tx, a, op->scope, f, &s)) ||
			    (err = block(a, op, &r, f, now, s.hidden, d)))
				return err;
			blocked = true;
		}
	}
	if (blocked)
		return CW_ECONFLICT;
	pat[0] = r.patient ? r.patient + 8 : NULL;
	for (size_t i = 0; i < r.nfindings; i++) {
		const struct coord_finding *f = &r.findings[i];
		struct api_op di_op, c_op;
		struct rules_sens s;
		json_t *di, *c;

		if (f->raised)
			continue;
		if ((err = api_rules_sensitivity(tx, a, op->scope, f, &s)))
			return err;
		if (!(di = api_json_own(a, coord_issue(&r, f, now))))
			return CW_ENOMEM;
		/* the finding is as sensitive as what it names */
		if (s.labels && json_object_set_new(di, "meta", json_pack("{s:O}", "security", s.labels)))
			return CW_ENOMEM;
		if (over && f->severity == KB_SEV_HIGH && f->interruptive) {
			const char *by = api_str_at(json_object_get(op->res, "requester"), "reference");
			json_t *m = json_pack("[{s:{s:[{s:s, s:s, s:s}], s:s}, s:s}]",
					      "action", "coding", "system", V3_ACT_CODE,
					      "code", "1", "display", "Therapy Appropriate",
					      "text", arena_printf(a, "Written despite the finding: %s", over),
					      "date", now);

			if (!m || json_object_set_new(di, "mitigation", m))
				return CW_ENOMEM;
			if (by)
				json_object_set_new(json_array_get(m, 0), "author",
						    json_pack("{s:s}", "reference", by));
		}
		if ((err = write_own(tx, a, op, di, NULL, pat, 1, &di_op, d)))
			return err;
		/* Information (the ONC non-interruptive pairs, low severity) is
		 * on the record; only what needs a decision is sent. */
		if (!r.nnotify || !f->interruptive || f->severity == KB_SEV_LOW)
			continue;
		if (!(c = api_json_own(a, alert(a, &r, f, di_op.id, now, s.sensitive))))
			return CW_ENOMEM;
		if ((err = write_own(tx, a, op, c, NULL, pat, 1, &c_op, d)))
			return err;
	}
	/* the work a rule gives the team (transitions of care) */
	for (size_t i = 0; i < r.nwrites; i++) {
		struct api_op w_op;

		if ((err = write_own(tx, a, op, r.writes[i].res, r.writes[i].id, pat, 1,
				     &w_op, d)))
			return err;
	}
	return CW_OK;
}
