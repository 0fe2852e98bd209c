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
 * it goes to the grant row and the Communication, never to a log line. */
#include <string.h>

#include "api/api_int.h"

#define COMM_CATEGORY "http://terminology.hl7.org/CodeSystem/communication-category"

struct glass_claim {
	const char *reason;
	size_t reason_len;
	long minutes;
};

/* Reads {reason, minutes} from a Parameters body. CW_EINVAL (400) when the
 * body is not a Parameters resource or has no reason string; the value
 * rules are access_glass_check's. */
static enum cw_err
parse_claim(struct api_req *q, struct glass_claim *c)
{
	json_t *body = NULL, *params, *p;
	const char *rtype;
	size_t i;
	enum cw_err err;

	c->reason = NULL;
	c->minutes = ACCESS_GLASS_MINUTES_DEFAULT;
	if ((err = api_check_body_type(q, false)))
		return err;
	if (!q->r->body_len)
		return diag_err(&q->d, CW_EINVAL, "required", NULL,
				"Send a Parameters resource with a reason");
	if ((err = fhir_parse_json(q->r->body, q->r->body_len, &body, &q->d)))
		return err;
	if (!api_json_own(q->a, body))
		return CW_ENOMEM;
	rtype = json_string_value(json_object_get(body, "resourceType"));
	if (!rtype || strcmp(rtype, "Parameters"))
		return diag_err(&q->d, CW_EINVAL, "invalid", "resourceType",
				"Send a Parameters resource with a reason");
	params = json_object_get(body, "parameter");
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

	err = store_tx_glass_add(tx, &j->g);
	if (!err)
		err = api_op_resolve(tx, j->q->a, &j->op, &j->q->d);
	if (!err)
		err = api_op_exec(tx, j->q->a, &j->op, &j->q->d);
	if (!err)
		err = api_trail_tx_glass(tx, j->q->a, j->q->who, j->q->r->remote,
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
	out = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}}, {s:s, s:{s:s}},"
			" {s:s, s:o}]}",
			"resourceType", "Parameters", "parameter",
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
	j.op = (struct api_op){.kind = OP_CREATE, .rt = crt, .res = comm};
	err = store_write(q->api->store, glass_write_cb, &j);
	q->audited = err == CW_OK; /* committed with its record: the one */
	if (err)
		return err;
	/* no patient id in the log: the audit record names the patient */
	log_info("break-glass: uid %lld, %ld min, %zu told",
		 (long long)q->who->uid, c.minutes, nto);
	return reply_grant(q, &j);
}
