/* api/rest.c: the instance interactions and the one write path.
 *
 * read and vread serve the stored JSON text as it is (no re-encode) unless
 * _elements/_summary ask for a subset. create, update and delete, plain and
 * conditional, all build one struct api_op and run it in a store_write
 * callback: api_op_resolve evaluates the condition with store_tx_match
 * inside the write transaction (so two racing conditional creates cannot
 * both create: the writer is serialized), then api_op_exec puts or deletes.
 * Transactions (bundle.c) use the same two functions for every entry.
 *
 * Decisions the spec leaves open:
 *   - create ignores a client id; the server assigns a time-ordered one.
 *   - update needs the id in the body and it must equal the URL (400);
 *     update of an unknown id creates it (201, updateCreate).
 *   - delete answers 204 whether or not the resource existed or was
 *     already deleted (the spec allows 200/204 for both); with Prefer:
 *     return=OperationOutcome it answers 200 with an outcome.
 *   - conditional delete deletes a single match; several are 412.
 *   - a deleted resource reads as 410; a vread of a delete version is 410. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "api/api_int.h"
#include "coord/coord.h"
#include "notify/notify.h"

/* ---- the write-path core -------------------------------------------------- */

/* Puts loc on the issues added since `before` that have none, and adds an
 * issue naming the failure when nothing said why. */
static enum cw_err
op_fail(struct diag *d, size_t before, enum cw_err err, const struct api_op *op)
{
	const char *type = op->rt ? op->rt->name : "?";
	const char *id = op->id ? op->id : "?";
	size_t i;
	bool said = false;

	for (i = before; i < d->n; i++) {
		if (!d->issues[i].loc)
			d->issues[i].loc = op->loc;
		said |= d->issues[i].sev <= DIAG_ERROR;
	}
	if (said)
		return err;
	switch (err) {
	case CW_EPRECOND:
		diag_err(d, err, "conflict", op->loc,
			 "Version conflict: %s/%s is not at version %ld", type, id,
			 op->if_match);
		break;
	case CW_ECONFLICT:
		diag_err(d, err, "duplicate", op->loc, "%s/%s already exists",
			 type, id);
		break;
	case CW_EGONE:
		diag_err(d, err, "deleted", op->loc, "%s/%s is deleted", type, id);
		break;
	case CW_ENOTFOUND:
		diag_err(d, err, "not-found", op->loc, "%s/%s is not known", type,
			 id);
		break;
	default:
		diag_err(d, err, api_issue_code(err), op->loc, "%s",
			 cw_strerror(err));
		break;
	}
	diag_log(d, "write %s failed: %s", type, cw_strerror(err));
	return err;
}

enum cw_err
api_op_resolve(struct store_tx *tx, struct arena *a, struct api_op *op,
	       struct diag *d)
{
	const char **ids = NULL, *body_id;
	size_t n = 0, before = d->n;
	char buf[ID_LEN + 1];
	enum cw_err err;

	if (op->cond) {
		err = store_tx_match(tx, a, op->cond, 2, &ids, &n, d);
		if (err)
			return op_fail(d, before, err, op);
		if (n > 1)
			return diag_err(d, CW_EPRECOND, "multiple-matches", op->loc,
					"The condition matched more than one %s",
					op->rt->name);
		switch (op->kind) {
		case OP_CREATE:
			if (n == 1) {
				op->noop = true;
				op->id = ids[0];
			}
			break;
		case OP_UPDATE:
			body_id = json_string_value(json_object_get(op->res, "id"));
			if (n == 1) {
				if (body_id && strcmp(body_id, ids[0]))
					return diag_err(d, CW_EINVAL, "invalid", op->loc,
							"The resource id does not match the %s the condition found",
							op->rt->name);
				op->id = ids[0];
			} else if (body_id) {
				op->id = body_id;
				op->create_with_id = true;
			} else {
				op->kind = OP_CREATE;
				op->id = NULL;
			}
			break;
		case OP_DELETE:
			if (n == 0)
				op->noop = true;
			else
				op->id = ids[0];
			break;
		}
		op->cond = NULL;
	}
	if (op->kind == OP_CREATE && !op->id) {
		id_new(buf);
		op->id = arena_strdup(a, buf);
		if (!op->id)
			return CW_ENOMEM;
		op->fresh_id = true;
	}
	return CW_OK;
}

enum cw_err
api_restrict_query(struct access_scope *sc, struct fhir_query *fq)
{
	const char *const *ids;
	size_t n;
	bool all;
	enum cw_err err;

	if (!sc)
		return CW_OK;
	/* Loads the scope here, on the caller's thread, not the writer's. */
	err = access_reachable(sc, &ids, &n, &all);
	if (err || all || !fq)
		return err;
	fq->restrict_patients = true;
	fq->allowed = ids;
	fq->nallowed = n;
	return CW_OK;
}

struct access_scope *
api_scope(struct api_req *q)
{
	if (!q->who)
		return NULL;
	if (!q->scope)
		q->scope = access_scope_new(q->api->access, q->api->store, q->a,
					    q->who);
	return q->scope;
}

/* The current version of op's target as a value, or NULL when there is
 * none (never written, deleted). */
static enum cw_err
current_of(struct store_tx *tx, struct arena *a, const struct api_op *op,
	   json_t **out)
{
	struct store_res cur;
	enum cw_err err;

	*out = NULL;
	if (!op->id || op->fresh_id)
		return CW_OK;
	err = store_tx_read(tx, a, op->rt->name, op->id, &cur);
	if (err == CW_ENOTFOUND || err == CW_EGONE)
		return CW_OK;
	if (err)
		return err;
	if (fhir_parse_json(cur.json.p, cur.json.n, out, NULL))
		return CW_EINTERNAL;
	if (!api_json_own(a, *out))
		return CW_ENOMEM;
	return CW_OK;
}

/* Every actor a Consent names must exist: a grant to nobody in
 * particular is a mistake the patient would not see. */
static enum cw_err
check_consent_actors(struct store_tx *tx, struct arena *a, const json_t *prov,
		     const char *loc, struct diag *d, int depth)
{
	struct store_res r;
	json_t *v;
	size_t i;
	enum cw_err err;

	if (!json_is_object(prov) || depth > 8)
		return CW_OK;
	json_array_foreach(json_object_get(prov, "actor"), i, v) {
		const char *ref = json_string_value(
			json_object_get(json_object_get(v, "reference"), "reference"));
		const char *slash = ref ? strchr(ref, '/') : NULL;
		char type[64];

		if (!slash || (size_t)(slash - ref) >= sizeof(type))
			continue;
		memcpy(type, ref, (size_t)(slash - ref));
		type[slash - ref] = '\0';
		err = fhir_restype_find(type) ?
		      store_tx_read(tx, a, type, slash + 1, &r) : CW_ENOTFOUND;
		if (err == CW_ENOTFOUND || err == CW_EGONE)
			return diag_err(d, CW_EINVALID, "invalid", loc,
					"Consent.provision.actor %.128s does not exist",
					ref);
		if (err)
			return err;
	}
	json_array_foreach(json_object_get(prov, "provision"), i, v) {
		err = check_consent_actors(tx, a, v, loc, d, depth + 1);
		if (err)
			return err;
	}
	return CW_OK;
}

/* The access check of one write, inside the write transaction so that it
 * sees the version the write replaces (access/ decides). */
enum cw_err
api_op_authorize(struct store_tx *tx, struct arena *a, struct api_op *op,
	     struct diag *d)
{
	json_t *cur = NULL;
	enum cw_err err;

	if (!op->scope)
		return CW_OK;
	if (op->res && !strcmp(op->rt->name, "Consent")) {
		err = check_consent_actors(tx, a, json_object_get(op->res, "provision"),
					   op->loc, d, 0);
		if (err)
			return err;
	}
	if (access_scope_all(op->scope))
		return CW_OK;
	err = current_of(tx, a, op, &cur);
	if (err)
		return err;
	/* A delete of nothing the caller may see is "not known", whether it
	 * exists or not, so the answer tells nothing. */
	if (op->kind == OP_DELETE && !cur)
		return diag_err(d, CW_ENOTFOUND, "not-found", op->loc,
				"%s/%.64s is not known", op->rt->name,
				op->id ? op->id : "?");
	if (op->kind == OP_CREATE && op->noop) {
		bool ok = false;

		err = access_may_read_res(op->scope, op->rt, cur, &ok);
		if (err)
			return err;
		return ok ? CW_OK : diag_err(d, CW_ENOTFOUND, "not-found", op->loc,
					     "%s is not known", op->rt->name);
	}
	return access_check_write(op->scope, op->rt,
				  op->kind == OP_DELETE ? NULL : op->res, cur,
				  op->loc, d);
}

enum cw_err
api_op_exec(struct store_tx *tx, struct arena *a, struct api_op *op,
	    struct diag *d)
{
	struct store_put put = {.rt = op->rt};
	size_t before = d->n, nwas = 0;
	const char **was = NULL;
	bool created = false, existed = false;
	bool kept = op->rt && coord_keeps(op->rt->name);
	bool sub = op->rt && !strcmp(op->rt->name, "Subscription");
	enum cw_err err;

	err = api_op_authorize(tx, a, op, d);
	if (err)
		return err;
	switch (op->kind) {
	case OP_CREATE:
		if (op->noop) {
			err = store_tx_read(tx, a, op->rt->name, op->id, &op->out);
			if (err)
				return op_fail(d, before, err, op);
			op->has_out = true;
			op->status = 200;
			return store_tx_patients(tx, a, op->rt->name, op->id,
						 &op->patients, &op->npatients);
		}
		/* fall through */
	case OP_UPDATE:
		/* (a made-ready create has it, and its index rows may not
		 * see the resource change) */
		if (!op->prep && json_object_set_new(op->res, "id", json_string(op->id)))
			return CW_ENOMEM;
		/* what only the server may say of a Subscription (every door) */
		if (sub && (err = notify_check_subscription(op->notify, op->res, op->loc, d)))
			return err;
		put.res = op->res;
		put.create = op->kind == OP_CREATE || op->create_with_id;
		put.if_match = op->if_match;
		put.fresh_id = op->kind == OP_CREATE && op->fresh_id;
		put.prep = op->prep;
		/* whom the version before was about: coord/ keeps what the
		 * rules need of each patient (a record may move to another) */
		if (kept && !put.fresh_id &&
		    (err = store_tx_patients(tx, a, op->rt->name, op->id, &was, &nwas)))
			return err;
		err = store_tx_put(tx, a, &put, &op->out, &created);
		if (err)
			return op_fail(d, before, err, op);
		op->has_out = true;
		op->status = op->kind == OP_CREATE || created ? 201 : 200;
		/* whose record changed, for the audit record of this write */
		op->patients = op->out.patients;
		op->npatients = op->out.npatients;
		/* a Subscription delivers with its last signed-in writer's rights */
		if (sub && op->owner &&
		    (err = store_tx_sub_owner_set(tx, op->out.id, op->owner)))
			return err;
		if ((err = notify_note_write(op->notify, tx, a, op->rt->name, op->out.id,
					     op->out.version)))
			return err;
		if (kept)
			return coord_note_write(op->coord, tx, a, op->rt->name, op->id, op->res,
						put.fresh_id, was, nwas, d);
		return CW_OK;
	case OP_DELETE:
		op->status = 204;
		if (op->noop)
			return CW_OK;
		/* before the delete drops the compartment rows */
		err = store_tx_patients(tx, a, op->rt->name, op->id,
					&op->patients, &op->npatients);
		if (err)
			return err;
		err = store_tx_delete(tx, a, op->rt->name, op->id, op->if_match,
				      &op->out, &existed);
		if (err)
			return op_fail(d, before, err, op);
		op->deleted = existed;
		/* a Subscription deleted: the matcher forgets it, and its owner */
		if (sub && existed &&
		    ((err = store_tx_sub_owner_set(tx, op->id, NULL)) ||
		     (err = notify_note_write(op->notify, tx, a, op->rt->name, op->id,
					      op->out.version))))
			return err;
		if (kept && existed)
			return coord_note_write(op->coord, tx, a, op->rt->name, op->id, NULL,
						false, op->patients, op->npatients, d);
		return CW_OK;
	}
	return CW_EINTERNAL;
}

struct one_write {
	struct arena *a;
	struct api_op *op;
	struct diag *d;
	struct api_req *q;
	/* what makes op->res in the transaction, from what is stored then
	 * (a patch), or NULL */
	enum cw_err (*make)(struct store_tx *tx, struct api_req *q, struct api_op *op,
			    void *ctx);
	void *make_ctx;
};

static enum cw_err
one_write_cb(struct store_tx *tx, void *ctx)
{
	struct one_write *w = ctx;
	enum cw_err err = CW_OK;

	if (w->make)
		err = w->make(tx, w->q, w->op, w->make_ctx);
	if (!err)
		err = api_op_resolve(tx, w->a, w->op, w->d);
	if (!err)
		err = api_op_exec(tx, w->a, w->op, w->d);
	if (!err)
		err = api_rules_apply(tx, w->a, w->op, w->d);
	/* the change's audit record, in its own transaction */
	if (!err)
		err = api_trail_tx_op(tx, w->a, w->q->who, w->q->r->remote, w->op);
	return err;
}

static enum cw_err
write_one_made(struct api_req *q, struct api_op *op,
	       enum cw_err (*make)(struct store_tx *, struct api_req *, struct api_op *, void *),
	       void *make_ctx)
{
	struct one_write w = {q->a, op, &q->d, q, make, make_ctx};
	enum cw_err err;

	/* Fail closed: a signed-in caller without a scope writes nothing. */
	if (q->who && !op->scope)
		return CW_ENOMEM;
	/* The condition was parsed for this request: ours to narrow. */
	err = api_restrict_query(op->scope, (struct fhir_query *)op->cond);
	if (err)
		return err;
	op->coord = q->api->coord;
	op->notify = q->api->notify;
	op->owner = q->who ? q->who->username : NULL;
	op->report_only = q->api->rules_report_only;
	err = store_write(q->api->store, one_write_cb, &w);
	if (err == CW_ECONFLICT && op->blocked)
		q->outcome_contained = op->blocked;
	/* Committed: the record is on disk with the change. Otherwise both
	 * were rolled back and serve() records the failure. */
	q->audited = err == CW_OK;
	if (err && !diag_has_errors(&q->d))
		return op_fail(&q->d, q->d.n, err, op);
	return err;
}

static enum cw_err
write_one(struct api_req *q, struct api_op *op)
{
	return write_one_made(q, op, NULL, NULL);
}

/* ---- request helpers ------------------------------------------------------- */

void
api_version_headers(struct api_req *q, const struct store_res *res,
		    bool location)
{
	char date[40];

	http_resp_header(q->w, "ETag", arena_printf(q->a, "W/\"%ld\"", res->version));
	time_format_http(res->last_updated, date);
	http_resp_header(q->w, "Last-Modified", arena_strdup(q->a, date));
	if (location)
		http_resp_header(q->w, "Location",
				 arena_printf(q->a, "%s/%s/%s/_history/%ld",
					      q->api->base, res->type, res->id,
					      res->version));
}

enum cw_err
api_parse_condition(struct arena *a, const struct fhir_restype *rt,
		    const char *query, const char *loc, struct fhir_query **out,
		    struct diag *d)
{
	struct fhir_query *fq;
	struct fhir_kv *kv;
	size_t nkv;
	const char *qm;
	enum cw_err err;

	if (query && (qm = strchr(query, '?')))
		query = qm + 1;
	if (!query || !*query)
		return diag_err(d, CW_EINVAL, "required", loc,
				"A conditional operation needs search criteria");
	err = fhir_form_split(a, query, strlen(query), &kv, &nkv);
	if (err)
		return err;
	fq = arena_zalloc(a, sizeof(*fq));
	if (!fq)
		return CW_ENOMEM;
	err = fhir_query_parse(a, rt, kv, nkv, true, fq, d);
	if (err)
		return err;
	if (!fq->nparams)
		return diag_err(d, CW_EINVAL, "required", loc,
				"A conditional operation needs search criteria");
	*out = fq;
	return CW_OK;
}

/* Parses the request body as a resource of the URL's type. The caller owns
 * nothing: the value dies with the arena. */
enum cw_err
api_parse_resource(struct api_req *q, json_t **out)
{
	const char *rtype;
	json_t *res = NULL;
	enum cw_err err;

	err = api_check_body_type(q, false);
	if (err)
		return err;
	if (!q->r->body_len)
		return diag_err(&q->d, CW_EINVAL, "required", NULL,
				"The request has no body");
	err = fhir_parse_json(q->r->body, q->r->body_len, &res, &q->d);
	if (err)
		return err;
	if (!api_json_own_done(q->a, res))
		return CW_ENOMEM;
	if (!json_is_object(res))
		return diag_err(&q->d, CW_EINVAL, "structure", NULL,
				"The body is not a JSON object");
	rtype = json_string_value(json_object_get(res, "resourceType"));
	if (!rtype)
		return diag_err(&q->d, CW_EINVAL, "required", "resourceType",
				"resourceType is missing");
	if (strcmp(rtype, q->rt->name))
		return diag_err(&q->d, CW_EINVAL, "invalid", "resourceType",
				"resourceType '%s' does not match the URL (%s)",
				strlen(rtype) < 64 ? rtype : "?", q->rt->name);
	*out = res;
	return CW_OK;
}

/* A reference a lone REST write cannot resolve: urn:uuid:/urn:oid: names
 * (they mean something only inside a Bundle) and conditional references
 * (Patient?identifier=..., resolved only in transactions). Storing them
 * would leave a reference that points nowhere. */
bool
api_bundle_name(const char *ref)
{
	return !strncmp(ref, "urn:uuid:", 9) || !strncmp(ref, "urn:oid:", 8);
}

size_t
api_conditional_ref(const char *ref)
{
	size_t n = strcspn(ref, "?/:");

	return ref[n] == '?' ? n : 0;
}

static bool
unresolvable_ref(const char *s)
{
	return api_bundle_name(s) || api_conditional_ref(s) > 0;
}

static void
check_refs(struct api_req *q, json_t *v, struct sbuf *path)
{
	size_t mark = path->len, i;
	const char *k;
	json_t *c;

	if (json_is_object(v)) {
		c = json_object_get(v, "reference");
		if (json_is_string(c) && unresolvable_ref(json_string_value(c)))
			diag_add(&q->d, DIAG_ERROR, "invalid",
				 arena_printf(q->a, "%s.reference", path->buf),
				 "This reference can only be resolved inside a "
				 "transaction Bundle");
		json_object_foreach(v, k, c) {
			if (!json_is_object(c) && !json_is_array(c))
				continue;
			sbuf_addf(path, ".%s", k);
			check_refs(q, c, path);
			path->len = mark;
			path->buf[mark] = '\0';
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, c) {
			if (!json_is_object(c))
				continue;
			sbuf_addf(path, "[%zu]", i);
			check_refs(q, c, path);
			path->len = mark;
			path->buf[mark] = '\0';
		}
	}
}

/* Validation of a resource written by itself (not in a transaction):
 * the model's rules, then references that only a Bundle could resolve. */
static enum cw_err
validate_body(struct api_req *q, json_t *res)
{
	struct sbuf path = SBUF_INIT(64 * 1024);
	enum cw_err err = fhir_validate(res, q->rt->name, &q->d);

	if (err)
		return err;
	sbuf_adds(&path, q->rt->name);
	check_refs(q, res, &path);
	sbuf_release(&path);
	return diag_has_errors(&q->d) ? CW_EINVALID : CW_OK;
}

static enum cw_err
if_match(struct api_req *q, long *out)
{
	const char *h = api_header(q, "If-Match");

	*out = 0;
	if (!h)
		return CW_OK;
	*out = api_parse_etag(h);
	if (*out < 0)
		return diag_err(&q->d, CW_EINVAL, "value", NULL,
				"If-Match must be a version ETag: W/\"3\"");
	return CW_OK;
}

/* The request's query as fhir_kv (same layout, distinct types). */
static enum cw_err
query_kv(struct api_req *q, struct fhir_kv **kv, size_t *n)
{
	size_t i;

	*n = q->r->nquery;
	*kv = arena_alloc(q->a, (*n + 1) * sizeof(**kv));
	if (!*kv)
		return CW_ENOMEM;
	for (i = 0; i < *n; i++) {
		(*kv)[i].key = q->r->query[i].key;
		(*kv)[i].value = q->r->query[i].value;
	}
	return CW_OK;
}

static void
reply_info(struct api_req *q, int status, const char *what)
{
	diag_add(&q->d, DIAG_INFO, "informational", NULL, "%s", what);
	api_reply_outcome(q, status, CW_OK);
}

static enum cw_err
reply_write(struct api_req *q, const struct api_op *op)
{
	if (op->has_out && op->kind != OP_DELETE)
		api_version_headers(q, &op->out, op->status == 201);
	if (op->kind == OP_DELETE) {
		if (q->ret == RET_OUTCOME)
			reply_info(q, 200, op->noop ? "Nothing to delete" : "Deleted");
		else
			api_reply(q, 204, NULL, 0);
		return CW_OK;
	}
	switch (q->ret) {
	case RET_MINIMAL:
		api_reply(q, op->status, NULL, 0);
		break;
	case RET_OUTCOME:
		reply_info(q, op->status,
			   op->status == 201 ? "Created" :
			   op->noop ? "Matched an existing resource" : "Updated");
		break;
	case RET_REPRESENTATION:
		api_reply(q, op->status, op->out.json.p, op->out.json.n);
		break;
	}
	return CW_OK;
}

/* ---- read and vread -------------------------------------------------------- */

/* Serves a stored version, applying _elements/_summary if asked. */
static enum cw_err
reply_version(struct api_req *q, const struct store_res *res)
{
	struct fhir_kv kv[8];
	struct fhir_query fq;
	json_t *full, *sub;
	const char *inm;
	size_t i, n = 0;
	enum cw_err err;

	api_version_headers(q, res, false);
	inm = api_header(q, "If-None-Match");
	if (inm && api_parse_etag(inm) == res->version) {
		api_reply(q, 304, NULL, 0);
		return CW_OK;
	}
	for (i = 0; i < q->r->nquery && n < 8; i++) {
		if (strcmp(q->r->query[i].key, "_elements") &&
		    strcmp(q->r->query[i].key, "_summary"))
			continue;
		kv[n].key = q->r->query[i].key;
		kv[n++].value = q->r->query[i].value;
	}
	if (!n) {
		api_reply(q, 200, res->json.p, res->json.n);
		return CW_OK;
	}
	memset(&fq, 0, sizeof(fq));
	err = fhir_query_parse(q->a, q->rt, kv, n, false, &fq, &q->d);
	if (err)
		return err;
	if (fq.summary == SUMMARY_FALSE && !fq.nelements) {
		api_reply(q, 200, res->json.p, res->json.n);
		return CW_OK;
	}
	fhir_parse_json(res->json.p, res->json.n, &full, NULL);
	full = api_json_own(q->a, full);
	if (!full)
		return diag_err(&q->d, CW_EINTERNAL, "exception", NULL,
				"Stored resource could not be read");
	sub = api_json_own(q->a, fhir_subset(full, &fq));
	if (!sub)
		return CW_ENOMEM;
	return api_reply_json(q, 200, sub);
}

/* "Type/id[/_history/vid] is not known" or "... has been deleted" for
 * CW_ENOTFOUND and CW_EGONE (at loc, NULL: none); any other err as is. */
static enum cw_err
not_there(struct diag *d, enum cw_err err, const char *loc, const char *type,
	  const char *id, const char *vid)
{
	if (err == CW_EGONE)
		return diag_err(d, err, "deleted", loc, "%s/%s%s%s has been deleted", type, id,
				vid ? "/_history/" : "", vid ? vid : "");
	if (err == CW_ENOTFOUND)
		return diag_err(d, err, "not-found", loc, "%s/%s%s%s is not known", type, id,
				vid ? "/_history/" : "", vid ? vid : "");
	return err;
}

static enum cw_err
read_failed(struct api_req *q, enum cw_err err, const char *vid)
{
	return not_there(&q->d, err, NULL, q->rt->name, q->id, vid);
}

/* A version the caller may not see reads as one that does not exist. A
 * delete version has no content to decide by, so a restricted caller
 * gets "not known" for it too (410 would say the id once existed). */
static enum cw_err
read_allowed(struct api_req *q, enum cw_err err, const struct store_res *res,
	     bool *ok)
{
	struct access_scope *sc = api_scope(q);

	*ok = true;
	if (!q->who)
		return CW_OK;
	if (!sc)
		return CW_ENOMEM; /* fail closed */
	if (access_scope_all(sc))
		return CW_OK;
	if (err) {
		*ok = err != CW_EGONE;
		return CW_OK;
	}
	return access_may_read_text(sc, res->type, res->json.p, res->json.n, ok);
}

/* The answer to a read or vread whose store lookup gave err and res: the
 * version, or "not known"/"deleted", with what the caller may not see
 * answered as not known. */
static enum cw_err
answer_read(struct api_req *q, enum cw_err err, const struct store_res *res,
	    const char *vid)
{
	enum cw_err aerr;
	bool ok;

	if (err && err != CW_ENOTFOUND && err != CW_EGONE)
		return err;
	if ((aerr = read_allowed(q, err, res, &ok)))
		return aerr;
	if (!ok)
		err = CW_ENOTFOUND;
	if (err)
		return read_failed(q, err, vid);
	return reply_version(q, res);
}

enum cw_err
api_h_read(struct api_req *q)
{
	struct store_res res;
	enum cw_err err;

	err = store_read(q->api->store, q->a, q->rt->name, q->id, &res);
	if (!err) {
		/* the audit record's patients, from the same snapshot */
		q->read_patients = true;
		q->patients = res.patients;
		q->npatients = res.npatients;
	}
	return answer_read(q, err, &res, NULL);
}

enum cw_err
api_h_vread(struct api_req *q)
{
	struct store_res res;
	char *end;
	long v;
	enum cw_err err;

	v = strtol(q->vid, &end, 10);
	if (*end || v <= 0 || q->vid[0] < '0' || q->vid[0] > '9')
		return diag_err(&q->d, CW_ENOTFOUND, "not-found", NULL,
				"'%s' is not a version id", strlen(q->vid) < 32 ? q->vid : "?");
	err = store_vread(q->api->store, q->a, q->rt->name, q->id, v, &res);
	return answer_read(q, err, &res, q->vid);
}

/* ---- create, update, delete ----------------------------------------------- */

enum cw_err
api_h_create(struct api_req *q)
{
	struct api_op op = {.kind = OP_CREATE, .rt = q->rt, .scope = api_scope(q)};
	struct fhir_query *cond = NULL;
	const char *ine;
	json_t *res;
	enum cw_err err;

	err = api_parse_resource(q, &res);
	if (err)
		return err;
	json_object_del(res, "id");
	err = validate_body(q, res);
	if (err)
		return err;
	ine = api_header(q, "If-None-Exist");
	if (ine) {
		err = api_parse_condition(q->a, q->rt, ine, NULL, &cond, &q->d);
		if (err)
			return err;
	}
	op.res = res;
	op.cond = cond;
	err = write_one(q, &op);
	if (err)
		return err;
	return reply_write(q, &op);
}

enum cw_err
api_h_update(struct api_req *q)
{
	struct api_op op = {.kind = OP_UPDATE, .rt = q->rt, .id = q->id, .scope = api_scope(q)};
	const char *body_id;
	json_t *res;
	enum cw_err err;

	err = api_parse_resource(q, &res);
	if (err)
		return err;
	body_id = json_string_value(json_object_get(res, "id"));
	if (!body_id)
		return diag_err(&q->d, CW_EINVAL, "required",
				arena_printf(q->a, "%s.id", q->rt->name),
				"The resource must carry its id for an update");
	if (strcmp(body_id, q->id))
		return diag_err(&q->d, CW_EINVAL, "invalid",
				arena_printf(q->a, "%s.id", q->rt->name),
				"The resource id does not match the URL");
	err = validate_body(q, res);
	if (err)
		return err;
	err = if_match(q, &op.if_match);
	if (err)
		return err;
	op.res = res;
	err = write_one(q, &op);
	if (err)
		return err;
	return reply_write(q, &op);
}

/* ---- patch ---------------------------------------------------------------- */

static bool
is_json_patch(const char *ct)
{
	static const char want[] = "application/json-patch+json";
	size_t n = sizeof(want) - 1;

	return ct && !strncasecmp(ct, want, n) && (!ct[n] || ct[n] == ';' || ct[n] == ' ');
}

struct patch {
	const json_t *ops;
	long want; /* If-Match, 0: none */
};

enum cw_err
api_patch_binary(struct arena *a, const json_t *res, const char *loc, json_t **out,
		 struct diag *d)
{
	const char *type = api_str_at(res, "resourceType");
	const char *ct = api_str_at(res, "contentType");
	const char *data = api_str_at(res, "data");
	size_t n, cap;
	unsigned char *bin;

	*out = NULL;
	if (!type || strcmp(type, "Binary") || !is_json_patch(ct) || !data)
		return diag_err(d, CW_EMEDIATYPE, "not-supported", loc,
				"A patch in a Bundle is a Binary with contentType "
				"application/json-patch+json and the patch in data (base64); "
				"FHIRPath Patch is not supported");
	cap = strlen(data) / 4 * 3 + 3;
	if (!(bin = arena_alloc(a, cap + 1)))
		return CW_ENOMEM;
	if (sodium_base642bin(bin, cap, data, strlen(data), " \r\n", &n, NULL,
			      sodium_base64_VARIANT_ORIGINAL))
		return diag_err(d, CW_EINVAL, "value", loc ? arena_printf(a, "%s.data", loc) : NULL,
				"The Binary's data is not base64");
	if (fhir_parse_json((const char *)bin, n, out, d))
		return CW_EINVAL;
	return api_json_own_done(a, *out) ? CW_OK : CW_ENOMEM;
}

enum cw_err
api_patch_apply(struct store_tx *tx, struct arena *a, struct api_op *op, const json_t *ops,
		long want, const char *loc, struct diag *d)
{
	struct store_res cur;
	const char *type, *id;
	json_t *res;
	enum cw_err err;

	err = store_tx_read(tx, a, op->rt->name, op->id, &cur);
	if (err)
		return not_there(d, err, loc, op->rt->name, op->id, NULL);
	if (want && cur.version != want)
		return diag_err(d, CW_EPRECOND, "conflict", loc,
				"If-Match names version %ld; the current one is %ld", want,
				cur.version);
	if (fhir_parse_json(cur.json.p, cur.json.n, &res, NULL) || !api_json_own_done(a, res))
		return diag_err(d, CW_EINTERNAL, "exception", loc,
				"Stored resource could not be read");
	if ((err = fhir_json_patch(a, res, ops, d)))
		return err;
	type = json_string_value(json_object_get(res, "resourceType"));
	id = json_string_value(json_object_get(res, "id"));
	if (!type || strcmp(type, op->rt->name) || !id || strcmp(id, op->id))
		return diag_err(d, CW_EINVALID, "invariant", loc,
				"A patch may not change the resource's type or id");
	op->res = res;
	op->if_match = cur.version;
	return CW_OK;
}

/* In the write's transaction: the version stored now, patched, is what is
 * written, so patches racing each other each apply to the one before
 * (none is lost, none needs the client to retry). */
static enum cw_err
patch_in_tx(struct store_tx *tx, struct api_req *q, struct api_op *op, void *ctx)
{
	const struct patch *p = ctx;
	enum cw_err err;

	if ((err = api_patch_apply(tx, q->a, op, p->ops, p->want, NULL, &q->d)))
		return err;
	return validate_body(q, op->res);
}

/* PATCH [type]/[id] with a JSON Patch: the current version, patched, is an
 * update like a PUT of it (validated, access checked, the rules, audited
 * as "patch"). Who may not read the resource is told it is not known. */
enum cw_err
api_h_patch(struct api_req *q)
{
	struct api_op op = {.kind = OP_UPDATE, .rt = q->rt, .id = q->id, .scope = api_scope(q),
			    .patch = true};
	struct patch p = {0};
	struct store_res cur;
	json_t *ops;
	bool ok;
	enum cw_err err, aerr;

	if (q->internal) {
		/* a batch's PATCH entry: its resource, the Binary of the patch */
		json_t *bin;

		if ((err = fhir_parse_json(q->r->body, q->r->body_len, &bin, &q->d)))
			return err;
		if (!api_json_own_done(q->a, bin))
			return CW_ENOMEM;
		if ((err = api_patch_binary(q->a, bin, NULL, &ops, &q->d)))
			return err;
	} else {
		if (!is_json_patch(api_header(q, "Content-Type")))
			return diag_err(&q->d, CW_EMEDIATYPE, "not-supported", NULL,
					"Send the patch as application/json-patch+json (JSON "
					"Patch; FHIRPath Patch is not supported)");
		if (!q->r->body_len)
			return diag_err(&q->d, CW_EINVAL, "required", NULL,
					"The request has no body");
		if ((err = fhir_parse_json(q->r->body, q->r->body_len, &ops, &q->d)))
			return err;
		if (!api_json_own_done(q->a, ops))
			return CW_ENOMEM;
	}
	if ((err = if_match(q, &p.want)))
		return err;
	/* answered as a read would be: what the caller may not see is not known */
	err = store_read(q->api->store, q->a, q->rt->name, q->id, &cur);
	if (err && err != CW_ENOTFOUND && err != CW_EGONE)
		return err;
	if ((aerr = read_allowed(q, err, &cur, &ok)))
		return aerr;
	if (!ok)
		err = CW_ENOTFOUND;
	if (err)
		return read_failed(q, err, NULL);
	p.ops = ops;
	if ((err = write_one_made(q, &op, patch_in_tx, &p)))
		return err;
	return reply_write(q, &op);
}

enum cw_err
api_h_delete(struct api_req *q)
{
	struct api_op op = {.kind = OP_DELETE, .rt = q->rt, .id = q->id, .scope = api_scope(q)};
	enum cw_err err;

	err = if_match(q, &op.if_match);
	if (err)
		return err;
	err = write_one(q, &op);
	if (err)
		return err;
	return reply_write(q, &op);
}

/* The request query as the strict condition of a conditional update or
 * delete. */
static enum cw_err
url_condition(struct api_req *q, struct fhir_query **out)
{
	struct fhir_query *fq;
	struct fhir_kv *kv;
	size_t n;
	enum cw_err err;

	err = query_kv(q, &kv, &n);
	if (err)
		return err;
	fq = arena_zalloc(q->a, sizeof(*fq));
	if (!fq)
		return CW_ENOMEM;
	err = fhir_query_parse(q->a, q->rt, kv, n, true, fq, &q->d);
	if (err)
		return err;
	if (!fq->nparams)
		return diag_err(&q->d, CW_EINVAL, "required", NULL,
				"A conditional %s needs search criteria in the URL",
				!strcmp(q->r->method, "PUT") ? "update" : "delete");
	*out = fq;
	return CW_OK;
}

enum cw_err
api_h_cond_update(struct api_req *q)
{
	struct api_op op = {.kind = OP_UPDATE, .rt = q->rt, .scope = api_scope(q)};
	struct fhir_query *cond;
	json_t *res;
	enum cw_err err;

	err = api_parse_resource(q, &res);
	if (err)
		return err;
	err = url_condition(q, &cond);
	if (err)
		return err;
	err = validate_body(q, res);
	if (err)
		return err;
	err = if_match(q, &op.if_match);
	if (err)
		return err;
	op.res = res;
	op.cond = cond;
	err = write_one(q, &op);
	if (err)
		return err;
	return reply_write(q, &op);
}

enum cw_err
api_h_cond_delete(struct api_req *q)
{
	struct api_op op = {.kind = OP_DELETE, .rt = q->rt, .scope = api_scope(q)};
	struct fhir_query *cond;
	enum cw_err err;

	err = url_condition(q, &cond);
	if (err)
		return err;
	op.cond = cond;
	err = write_one(q, &op);
	if (err)
		return err;
	return reply_write(q, &op);
}
