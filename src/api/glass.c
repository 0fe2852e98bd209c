/* api/glass.c: Patient/{id}/$break-glass, emergency access with a reason.
 *
 * A clinician who is not on a patient's care team (or whom the patient's
 * Consent keeps out) claims access for an emergency: a FHIR Parameters
 * body with reason (string, 10 to 1000 characters) and minutes (integer,
 * default 60, at most `serve --break-glass-max-minutes`). access/ says
 * who may (clinicians), checks the reason and the minutes, and finds who
 * is told; this file parses the body and writes, in one store_write
 * transaction, the three things a grant is:
 *
 *   1. the grant row (store_tx_glass_add): from the next request on, the
 *      clinician's scope holds the patient with nothing withheld, until
 *      the grant expires by the access clock;
 *   2. a Communication (status completed, category notification, priority
 *      urgent) to the patient's coordinators and every privacy officer,
 *      through the one write path: who, when, the reason, until when.
 *      Never a clinical value: it is written before anything is read;
 *   3. the audit record (api_trail_tx_glass: subtype BTG, the reason as
 *      its purpose).
 *
 * Either all three commit or none: a grant nobody was told about does
 * not exist. The reason is the clinician's words and may hold anything;
 * it goes to the grant row and the Communication, never to a log line.
 *
 * Patient/{id}/$break-glass-end ends live grants early: the clinician's
 * own on that patient, or (a privacy officer) every live one on it; a
 * `grant` parameter names one. `careweave glass end ID` is the same end
 * for the operator (api_glass_end, on a local API). Each end is, again in
 * one transaction, the grant row's end (store_tx_glass_end, which ends a
 * grant once however many ask), a Communication to the recipients of the
 * grant's own notification, and its audit record (subtype BTG, action D).
 * The next request's scope no longer holds the patient: the live grants
 * are read at every request. */
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

#define COMM_CATEGORY "http://terminology.hl7.org/CodeSystem/communication-category"

struct glass_claim {
	const char *reason;
	size_t reason_len;
	long minutes;
};

/* The parameter array of a Parameters body; an empty body is NULL params,
 * refused with need (400) when need is set. what: the words of a refusal. */
static enum cw_err
parameters_of(struct api_req *q, const char *need, const char *what, json_t **params)
{
	json_t *body = NULL;
	const char *rtype;
	enum cw_err err;

	*params = NULL;
	if ((err = api_check_body_type(q, false)))
		return err;
	if (!q->r->body_len)
		return need ? diag_err(&q->d, CW_EINVAL, "required", NULL, "%s", need) : CW_OK;
	if ((err = fhir_parse_json(q->r->body, q->r->body_len, &body, &q->d)))
		return err;
	if (!api_json_own(q->a, body))
		return CW_ENOMEM;
	rtype = json_string_value(json_object_get(body, "resourceType"));
	if (!rtype || strcmp(rtype, "Parameters"))
		return diag_err(&q->d, CW_EINVAL, "invalid", "resourceType", "%s", what);
	*params = json_object_get(body, "parameter");
	return CW_OK;
}

/* Reads {reason, minutes} from a Parameters body. CW_EINVAL (400) when the
 * body is not a Parameters resource or has no reason string; the value
 * rules are access_glass_check's. */
static enum cw_err
parse_claim(struct api_req *q, struct glass_claim *c)
{
	json_t *params, *p;
	size_t i;
	enum cw_err err;

	c->reason = NULL;
	c->minutes = ACCESS_GLASS_MINUTES_DEFAULT;
	if ((err = parameters_of(q, "Send a Parameters resource with a reason",
				 "Send a Parameters resource with a reason", &params)))
		return err;
	json_array_foreach(params, i, p) {
		const char *name = json_string_value(json_object_get(p, "name"));
		json_t *v;

		if (!name)
			continue;
		if (!strcmp(name, "reason") && !c->reason) {
			v = json_object_get(p, "valueString");
			if (!json_is_string(v))
				return diag_err(&q->d, CW_EINVAL, "invalid",
						"Parameters.parameter.reason",
						"reason must be a valueString");
			c->reason = json_string_value(v);
			c->reason_len = json_string_length(v);
		} else if (!strcmp(name, "minutes")) {
			v = json_object_get(p, "valueInteger");
			if (!v)
				v = json_object_get(p, "valuePositiveInt");
			if (!json_is_integer(v))
				return diag_err(&q->d, CW_EINVAL, "invalid",
						"Parameters.parameter.minutes",
						"minutes must be a valueInteger");
			c->minutes = (long)json_integer_value(v);
		}
	}
	if (!c->reason)
		return diag_err(&q->d, CW_EINVAL, "required",
				"Parameters.parameter.reason",
				"Emergency access needs a reason");
	return CW_OK;
}

/* The notification of a grant. Holds who, when, until when and the
 * reason; nothing read from the record. NULL on no memory. */
static json_t *
notification(struct api_req *q, const char *pid, const char *reason,
	     int64_t now, int64_t expires, const char *const *to, size_t nto)
{
	char at[32], until[32];
	const char *text;
	json_t *c, *rcpt = json_array();

	for (size_t i = 0; rcpt && i < nto; i++)
		if (json_array_append_new(rcpt, json_pack("{s:s}", "reference", to[i]))) {
			json_decref(rcpt);
			return NULL;
		}
	time_format_instant(now, at);
	time_format_instant(expires, until);
	text = arena_printf(q->a,
			    "Emergency access (break-the-glass) to Patient/%s by %s "
			    "(%s, %s) at %s, until %s. Reason given: %s",
			    pid, q->who->username, access_role_name(q->who->role),
			    q->who->link, at, until, reason);
	if (!text || !rcpt) {
		json_decref(rcpt);
		return NULL;
	}
	c = json_pack("{s:s, s:s, s:[{s:[{s:s, s:s}]}], s:s, s:{s:s},"
		      " s:{s:s}, s:s, s:{s:s}, s:o, s:[{s:s}]}",
		      "resourceType", "Communication", "status", "completed",
		      "category", "coding", "system", COMM_CATEGORY, "code",
		      "notification", "priority", "urgent",
		      "subject", "reference", arena_printf(q->a, "Patient/%s", pid),
		      "topic", "text", "Break-the-glass emergency access",
		      "sent", at, "sender", "reference", q->who->link,
		      "recipient", rcpt, "payload", "contentString", text);
	return c;
}

struct glass_job {
	struct api_req *q;
	struct store_glass g;
	struct api_op op;
};

static enum cw_err
glass_write_cb(struct store_tx *tx, void *ctx)
{
	struct glass_job *j = ctx;
	enum cw_err err;

	err = api_op_resolve(tx, j->q->a, &j->op, &j->q->d);
	if (!err)
		err = api_op_exec(tx, j->q->a, &j->op, &j->q->d);
	j->g.notice = j->op.out.id; /* the end's notification goes to its recipients */
	if (!err)
		err = store_tx_glass_add(tx, &j->g);
	if (!err)
		err = api_trail_tx_glass(tx, j->q->a, j->q->who, j->q->r->remote, 'E',
					 j->g.patient_id, j->op.out.id,
					 j->g.reason);
	return err;
}

/* 200 with Parameters: expires, patient, the notification, and an
 * OperationOutcome saying what happened. */
static enum cw_err
reply_grant(struct api_req *q, const struct glass_job *j)
{
	char until[32];
	json_t *oo, *out;

	time_format_instant(j->g.expires, until);
	diag_add(&q->d, DIAG_INFO, "informational", NULL,
		 "Emergency access to Patient/%s until %s. It is recorded, and "
		 "the patient's coordinators and the privacy officers are told.",
		 j->g.patient_id, until);
	oo = fhir_outcome(&q->d);
	if (!oo)
		return CW_ENOMEM;
	out = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:{s:s}},"
			" {s:s, s:{s:s}}, {s:s, s:o}]}",
			"resourceType", "Parameters", "parameter",
			"name", "grant", "valueString",
			arena_printf(q->a, "%lld", (long long)j->g.gid),
			"name", "expires", "valueInstant", until,
			"name", "patient", "valueReference", "reference",
			arena_printf(q->a, "Patient/%s", j->g.patient_id),
			"name", "notification", "valueReference", "reference",
			arena_printf(q->a, "Communication/%s", j->op.out.id),
			"name", "outcome", "resource", oo);
	if (!api_json_own(q->a, out))
		return CW_ENOMEM;
	return api_reply_json(q, 200, out);
}

enum cw_err
api_h_break_glass(struct api_req *q)
{
	const struct fhir_restype *crt = fhir_restype_find("Communication");
	struct glass_job j = {.q = q};
	struct glass_claim c = {0};
	struct store_res pat;
	struct access_scope *sc;
	const char **to;
	size_t nto;
	int64_t now;
	json_t *comm;
	enum cw_err err;

	if (strcmp(q->rt->name, "Patient") || !crt)
		return diag_err(&q->d, CW_ENOTFOUND, "not-supported", NULL,
				"$break-glass is an operation on a Patient");
	/* The role first: a caller who may not claim learns nothing more. */
	if (!access_may_break_glass(q->who))
		return diag_err(&q->d, CW_EFORBIDDEN, "forbidden", NULL,
				"Only a clinician linked to a Practitioner may claim emergency access");
	if ((err = parse_claim(q, &c)) ||
	    (err = access_glass_check(q->api->access, c.reason, c.reason_len,
				      c.minutes, &q->d)))
		return err;
	err = store_read(q->api->store, q->a, "Patient", q->id, &pat);
	if (err == CW_ENOTFOUND || err == CW_EGONE)
		return diag_err(&q->d, CW_ENOTFOUND, "not-found", NULL,
				"Patient/%s is not known", q->id);
	if (err)
		return err;
	if (!(sc = api_scope(q)))
		return CW_ENOMEM;
	if ((err = access_glass_recipients(sc, q->id, &to, &nto)))
		return err;
	now = access_now(q->api->access);
	j.g = (struct store_glass){.uid = q->who->uid, .patient_id = q->id,
				   .reason = c.reason, .granted = now,
				   .expires = now + (int64_t)c.minutes * 60000};
	comm = api_json_own(q->a, notification(q, q->id, c.reason, now,
					       j.g.expires, to, nto));
	if (!comm)
		return CW_ENOMEM;
	if ((err = fhir_validate(comm, "Communication", &q->d)))
		return err;
	/* The server writes the notification itself (scope NULL): a grant
	 * needs no write access of the clinician's. */
	j.op = (struct api_op){.kind = OP_CREATE, .rt = crt, .res = comm,
			       .notify = q->api->notify};
	err = store_write(q->api->store, glass_write_cb, &j);
	q->audited = err == CW_OK; /* committed with its record: the one */
	if (err)
		return err;
	/* no patient id in the log: the audit record names the patient */
	log_info("break-glass: uid %lld, %ld min, %zu told",
		 (long long)q->who->uid, c.minutes, nto);
	return reply_grant(q, &j);
}

/* ---- ending a grant early ------------------------------------------------ */

/* One grant being ended: its notification, its audit record. */
struct glass_end {
	const struct store_glass *g;
	struct api_op op;
	bool ended; /* store_tx_glass_end ended it (not someone before us) */
};

struct glass_end_job {
	struct arena *a;
	struct diag *d;
	const struct access_who *who; /* NULL: an operator tool */
	const char *remote;
	const char *reason;           /* why it was ended, or NULL */
	int64_t now;
	struct glass_end *v;
	size_t n, nended;
};

static enum cw_err
glass_end_cb(struct store_tx *tx, void *ctx)
{
	struct glass_end_job *j = ctx;
	enum cw_err err = CW_OK;

	for (size_t i = 0; i < j->n && !err; i++) {
		struct glass_end *e = &j->v[i];

		err = store_tx_glass_end(tx, e->g->gid, j->now,
					 j->who ? j->who->uid : 0);
		if (err == CW_ENOTFOUND) {
			err = CW_OK; /* ended or expired meanwhile: nothing to say */
			continue;
		}
		if (!err)
			err = api_op_resolve(tx, j->a, &e->op, j->d);
		if (!err)
			err = api_op_exec(tx, j->a, &e->op, j->d);
		if (!err)
			err = api_trail_tx_glass(tx, j->a, j->who, j->remote, 'D',
						 e->g->patient_id, e->op.out.id, j->reason);
		if (!err) {
			e->ended = true;
			j->nended++;
		}
	}
	if (!err && !j->nended)
		err = diag_err(j->d, CW_ENOTFOUND, "not-found", NULL,
			       "No live break-the-glass grant to end");
	return err;
}

/* Who was told of g: the recipients of its notification (read again, as
 * the server wrote it), else, for a grant from before the notification
 * was kept with it, those a new grant would tell (sc; none without). */
static enum cw_err
end_recipients(struct api *api, struct arena *a, struct access_scope *sc,
	       const struct store_glass *g, json_t *out)
{
	struct store_res c;
	json_t *res = NULL, *r;
	const char **to;
	size_t n, i;
	enum cw_err err;

	if (g->notice && !store_read(api->store, a, "Communication", g->notice, &c) &&
	    !fhir_parse_json(c.json.p, c.json.n, &res, NULL)) {
		json_array_foreach(json_object_get(res, "recipient"), i, r) {
			const char *ref = json_string_value(json_object_get(r, "reference"));

			if (ref && json_array_append_new(out, json_pack("{s:s}", "reference", ref))) {
				json_decref(res);
				return CW_ENOMEM;
			}
		}
		json_decref(res);
		return CW_OK;
	}
	if (!sc)
		return CW_OK;
	if ((err = access_glass_recipients(sc, g->patient_id, &to, &n)))
		return err;
	for (i = 0; i < n; i++)
		if (json_array_append_new(out, json_pack("{s:s}", "reference", to[i])))
			return CW_ENOMEM;
	return CW_OK;
}

/* The notification of g's end: who had it, since and until when, who
 * ended it and why; nothing read from the record. NULL on no memory. */
static json_t *
end_notification(struct api *api, struct arena *a, struct access_scope *sc,
		 const struct access_who *who, const struct store_glass *g,
		 const char *reason, int64_t now)
{
	char at[32], from[32], until[32];
	const char *text, *by;
	json_t *c, *rcpt = json_array();

	if (!rcpt || end_recipients(api, a, sc, g, rcpt)) {
		json_decref(rcpt);
		return NULL;
	}
	time_format_instant(now, at);
	time_format_instant(g->granted, from);
	time_format_instant(g->expires, until);
	by = who ? arena_printf(a, "%s (%s%s%s)", who->username,
				access_role_name(who->role), who->link ? ", " : "",
				who->link ? who->link : "")
		 : "an operator (careweave glass end)";
	text = arena_printf(a, "Emergency access (break-the-glass) to Patient/%s by %s, "
			    "granted at %s until %s, was ended at %s by %s.%s%s",
			    g->patient_id, g->username ? g->username : "a user",
			    from, until, at, by ? by : "-",
			    reason ? " Reason given: " : "", reason ? reason : "");
	if (!text) {
		json_decref(rcpt);
		return NULL;
	}
	c = json_pack("{s:s, s:s, s:[{s:[{s:s, s:s}]}], s:s, s:{s:s},"
		      " s:{s:s}, s:s, s:o, s:[{s:s}]}",
		      "resourceType", "Communication", "status", "completed",
		      "category", "coding", "system", COMM_CATEGORY, "code",
		      "notification", "priority", "routine",
		      "subject", "reference", arena_printf(a, "Patient/%s", g->patient_id),
		      "topic", "text", "Break-the-glass emergency access ended",
		      "sent", at, "recipient", rcpt, "payload", "contentString", text);
	if (c && who && who->link)
		json_object_set_new(c, "sender", json_pack("{s:s}", "reference", who->link));
	if (c && g->notice)
		json_object_set_new(c, "about", json_pack("[{s:s}]", "reference",
				    arena_printf(a, "Communication/%s", g->notice)));
	return c;
}

/* Ends the grants gs[0..n): their notifications validated first, then one
 * store_write. On CW_OK *out holds which ended. */
static enum cw_err
end_grants(struct api *api, struct arena *a, struct access_scope *sc,
	   const struct access_who *who, const char *remote,
	   const struct store_glass *gs, size_t n, const char *reason,
	   int64_t now, struct diag *d, struct glass_end_job *out)
{
	const struct fhir_restype *crt = fhir_restype_find("Communication");
	enum cw_err err;

	*out = (struct glass_end_job){.a = a, .d = d, .who = who, .remote = remote,
				      .reason = reason, .now = now, .n = n};
	if (!crt)
		return CW_EINTERNAL;
	if (!(out->v = arena_zalloc(a, (n + 1) * sizeof(*out->v))))
		return CW_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_t *comm = api_json_own(a, end_notification(api, a, sc, who, &gs[i],
								reason, now));

		if (!comm)
			return CW_ENOMEM;
		if ((err = fhir_validate(comm, "Communication", d)))
			return err;
		out->v[i].g = &gs[i];
		/* the server writes it itself (scope NULL), as for a grant */
		out->v[i].op = (struct api_op){.kind = OP_CREATE, .rt = crt, .res = comm,
					       .notify = api->notify};
	}
	return store_write(api->store, glass_end_cb, out);
}

/* Reads {grant, reason} of an end: both optional, an empty body too. */
static enum cw_err
parse_end(struct api_req *q, int64_t *gid, const char **reason, size_t *reason_len)
{
	json_t *params, *p;
	size_t i;
	enum cw_err err;

	*gid = 0;
	*reason = NULL;
	*reason_len = 0;
	if ((err = parameters_of(q, NULL, "Send a Parameters resource (grant, reason) or no body",
				 &params)))
		return err;
	json_array_foreach(params, i, p) {
		const char *name = json_string_value(json_object_get(p, "name"));
		json_t *v;

		if (!name)
			continue;
		if (!strcmp(name, "reason")) {
			v = json_object_get(p, "valueString");
			if (!json_is_string(v))
				return diag_err(&q->d, CW_EINVAL, "invalid",
						"Parameters.parameter.reason",
						"reason must be a valueString");
			*reason = json_string_value(v);
			*reason_len = json_string_length(v);
		} else if (!strcmp(name, "grant")) {
			const char *gs = json_string_value(json_object_get(p, "valueString"));
			char *end;

			v = json_object_get(p, "valueInteger");
			*gid = -1;
			if (json_is_integer(v)) {
				*gid = (int64_t)json_integer_value(v);
			} else if (gs && *gs) {
				long long x = strtoll(gs, &end, 10);

				if (!*end)
					*gid = x;
			}
			if (*gid <= 0)
				return diag_err(&q->d, CW_EINVAL, "invalid",
						"Parameters.parameter.grant",
						"grant must be a grant's id (valueString or valueInteger)");
		}
	}
	return CW_OK;
}

/* 200 with Parameters: each grant ended and its notification, and an
 * OperationOutcome saying so. */
static enum cw_err
reply_end(struct api_req *q, const struct glass_end_job *j)
{
	json_t *out, *params, *oo;

	diag_add(&q->d, DIAG_INFO, "informational", NULL,
		 "Emergency access to Patient/%s ended (%zu grant%s). It is recorded, "
		 "and those told of the grant are told of its end.",
		 q->id, j->nended, j->nended == 1 ? "" : "s");
	if (!(oo = fhir_outcome(&q->d)))
		return CW_ENOMEM;
	out = api_json_own(q->a, json_pack("{s:s, s:[]}", "resourceType", "Parameters",
					   "parameter"));
	if (!out) {
		json_decref(oo);
		return CW_ENOMEM;
	}
	params = json_object_get(out, "parameter");
	for (size_t i = 0; i < j->n; i++) {
		const struct glass_end *e = &j->v[i];

		if (!e->ended)
			continue;
		if (json_array_append_new(params, json_pack(
			"{s:s, s:s}", "name", "grant", "valueString",
			arena_printf(q->a, "%lld", (long long)e->g->gid))) ||
		    json_array_append_new(params, json_pack(
			"{s:s, s:{s:s}}", "name", "notification", "valueReference",
			"reference", arena_printf(q->a, "Communication/%s", e->op.out.id)))) {
			json_decref(oo);
			return CW_ENOMEM;
		}
	}
	if (json_array_append_new(params, json_pack("{s:s, s:o}", "name", "outcome",
						    "resource", oo)))
		return CW_ENOMEM;
	return api_reply_json(q, 200, out);
}

enum cw_err
api_h_break_glass_end(struct api_req *q)
{
	struct store_glass_filter f = {0};
	struct glass_end_job j;
	struct store_glass *gs;
	const char *reason;
	size_t n, reason_len;
	int64_t gid;
	enum cw_err err;

	if (strcmp(q->rt->name, "Patient"))
		return diag_err(&q->d, CW_ENOTFOUND, "not-supported", NULL,
				"$break-glass-end is an operation on a Patient");
	if (!access_may_end_glass(q->who))
		return diag_err(&q->d, CW_EFORBIDDEN, "forbidden", NULL,
				"Only the clinician who holds a grant, or a privacy "
				"officer, may end emergency access");
	if ((err = parse_end(q, &gid, &reason, &reason_len)))
		return err;
	if (reason && (err = access_glass_check(q->api->access, reason, reason_len,
						1, &q->d)))
		return err;
	f = (struct store_glass_filter){.gid = gid, .patient_id = q->id,
					.live_only = true,
					.now = access_now(q->api->access)};
	/* a clinician ends their own; a privacy officer any */
	if (q->who->role != ACCESS_PRIVACY_OFFICER)
		f.uid = q->who->uid;
	if ((err = store_glass_list(q->api->store, q->a, &f, &gs, &n)))
		return err;
	if (!n)
		return diag_err(&q->d, CW_ENOTFOUND, "not-found", NULL,
				"No live break-the-glass grant %s on Patient/%s",
				f.uid ? "of yours" : "", q->id);
	err = end_grants(q->api, q->a, api_scope(q), q->who, q->r->remote, gs, n,
			 reason, f.now, &q->d, &j);
	q->audited = err == CW_OK; /* each end committed with its record */
	if (err)
		return err;
	log_info("break-glass end: uid %lld ended %zu grant(s)",
		 (long long)q->who->uid, j.nended);
	return reply_end(q, &j);
}

enum cw_err
api_glass_end(struct api *api, struct arena *a, int64_t gid, const char *reason,
	      struct diag *d)
{
	struct store_glass_filter f = {.gid = gid, .live_only = true,
				       .now = time_now_ms()};
	struct glass_end_job j;
	struct store_glass *gs;
	size_t n;
	enum cw_err err;

	if (!api->local)
		return CW_EFORBIDDEN; /* the operator's door only */
	if (gid <= 0)
		return diag_err(d, CW_EINVAL, "value", NULL, "a grant id is a number");
	if (reason && (err = access_glass_check(NULL, reason, strlen(reason), 1, d)))
		return err;
	if ((err = store_glass_list(api->store, a, &f, &gs, &n)))
		return err;
	if (!n)
		return diag_err(d, CW_ENOTFOUND, "not-found", NULL,
				"grant %lld is not live (no such grant, expired or ended)",
				(long long)gid);
	return end_grants(api, a, NULL, NULL, NULL, gs, n, reason, f.now, d, &j);
}
