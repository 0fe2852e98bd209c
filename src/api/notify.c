/* api/notify.c: what api/ decides for notify/'s deliveries.
 *
 * A Subscription delivers with its owner's rights (the signed-in user who
 * last wrote it, store_sub_owner_get): before each notice is sent the
 * owner is looked up again and the resource checked with access/ as a
 * read of theirs would be, so a user disabled, taken off the care team or
 * refused by a Consent since stops receiving at once. A Subscription with
 * no owner was written through the operator's door (careweave import)
 * and delivers what the operator could read: everything. Each delivery is
 * recorded (trail.c, DICOM 110106 Export) with the owner as agent and the
 * endpoint's host. The Subscription's status (error after failures,
 * active again) is careweave's own write, recorded with the role
 * "notify". */
#include <string.h>

#include "api/api_int.h"
#include "notify/notify.h"

/* The user owner names as an access_who, or *ok false when there is none
 * that may receive anything (unknown, disabled, an unknown role). */
static enum cw_err
owner_who(struct api *api, struct arena *a, const char *owner,
	  struct access_who *who, bool *ok)
{
	struct store_user u;
	enum cw_err err;

	*ok = false;
	memset(who, 0, sizeof(*who));
	err = store_user_get(api->store, a, owner, &u);
	if (err == CW_ENOTFOUND)
		return CW_OK;
	if (err)
		return err;
	if (u.disabled || !access_role_parse(u.role, &who->role))
		return CW_OK;
	who->uid = u.uid;
	who->username = u.username;
	who->link = u.link;
	*ok = true;
	return CW_OK;
}

static enum cw_err
may_send(void *ctx, struct arena *a, const char *owner, const struct store_res *res,
	 bool *ok, const void **agent)
{
	struct api *api = ctx;
	const struct fhir_restype *rt = fhir_restype_find(res->type);
	struct access_scope *sc;
	struct access_who *who;
	enum cw_err err;

	*ok = false;
	*agent = NULL;
	if (!owner) {
		*ok = true; /* the operator's door: recorded as the operator */
		return CW_OK;
	}
	if (!api->access || !rt)
		return CW_OK;
	if (!(who = arena_alloc(a, sizeof(*who))))
		return CW_ENOMEM;
	if ((err = owner_who(api, a, owner, who, ok)) || !*ok)
		return err;
	*ok = false;
	if (!access_role_may_ask(who, rt))
		return CW_OK;
	if (!(sc = access_scope_new(api->access, api->store, a, who)))
		return CW_ENOMEM;
	*agent = who;
	return access_may_read_text(sc, res->type, res->json.p, res->json.n, ok);
}

static void
sent(void *ctx, struct arena *a, const void *agent, const char *host,
     const struct store_res *res, int status)
{
	api_trail_export(ctx, a, agent, host, res, status);
}

struct status_job {
	struct api *api;
	struct arena *a;
	const char *id, *status, *error;
	struct diag d;
};

static enum cw_err
status_cb(struct store_tx *tx, void *ctx)
{
	struct status_job *j = ctx;
	const struct fhir_restype *rt = fhir_restype_find("Subscription");
	struct api_op op;
	struct store_res cur;
	const char *now;
	json_t *v;
	enum cw_err err;

	err = store_tx_read(tx, j->a, "Subscription", j->id, &cur);
	if (err == CW_ENOTFOUND || err == CW_EGONE)
		return CW_OK;
	if (err)
		return err;
	if (!(v = api_json_own(j->a, json_loadb(cur.json.p, cur.json.n, 0, NULL))))
		return CW_ENOMEM;
	now = json_string_value(json_object_get(v, "status"));
	/* only what careweave set moves: a Subscription someone turned off
	 * (or asked for again) meanwhile is theirs */
	if (!now || (strcmp(now, "active") && strcmp(now, "error")))
		return CW_OK;
	if (json_object_set_new(v, "status", json_string(j->status)) ||
	    (j->error ? json_object_set_new(v, "error", json_string(j->error))
		      : (json_object_del(v, "error"), 0)))
		return CW_ENOMEM;
	json_object_del(v, "meta");
	if (fhir_validate(v, "Subscription", &j->d) != CW_OK)
		return CW_EINTERNAL;
	op = (struct api_op){.kind = OP_UPDATE, .rt = rt, .id = j->id, .res = v,
			     .if_match = cur.version, .notify = j->api->notify,
			     .loc = "Subscription"};
	if ((err = api_op_resolve(tx, j->a, &op, &j->d)) ||
	    (err = api_op_exec(tx, j->a, &op, &j->d)))
		return err;
	return api_trail_tx_own(tx, j->a, "notify", &op);
}

static enum cw_err
set_status(void *ctx, const char *sub_id, const char *status, const char *error)
{
	struct api *api = ctx;
	struct status_job j = {.api = api, .id = sub_id, .status = status, .error = error};
	enum cw_err err;

	if (!(j.a = arena_new(4u << 20)))
		return CW_ENOMEM;
	diag_init(&j.d, j.a);
	err = store_write(api->store, status_cb, &j);
	if (err)
		log_error("notify: Subscription/%s: its status could not be set to %s: %s",
			  sub_id, status, cw_strerror(err));
	arena_free(j.a);
	return err;
}

void
api_notify_hooks(struct api *api, struct notify_hooks *out)
{
	*out = (struct notify_hooks){.may_send = may_send, .sent = sent,
				     .set_status = set_status, .ctx = api};
}
