/* api/trail.c: the audit record of every FHIR request, and AuditEvent reads.
 *
 * api_trail_request is called once, in serve(), after the route table and
 * the handler, for requests from the network and batch entries alike, so
 * no route (present or future) goes unrecorded. It names the interaction
 * from the route pattern and method (the table below), the entity (Type/id,
 * or the type and the search parameter NAMES: values are PHI), and the
 * patients: the compartment of what was read or shown (a search: of the
 * first AUDIT_SEARCH_PATIENTS distinct patients of its page).
 *
 * Changes are recorded by api_trail_tx_op / api_trail_tx_bundle inside the
 * store_write callback that makes them, so the record and the change
 * commit together; the request then only marks itself audited. A change
 * that failed (422 before the store, 412 or 409 rolled back in it) leaves
 * no resource and is recorded here with its outcome.
 *
 * A transaction Bundle gets ONE record with one entity per write entry
 * (and the union of their patients), not one per entry: it is one
 * interaction of one caller, and a 10,000-entry import must not add
 * 10,000 chained rows to its own commit. GET entries of a transaction and
 * every entry of a batch pass serve() and are recorded one by one.
 *
 * Reads are queued (audit_queue): a poll thread never waits, so a full
 * queue turns the answer into 503 + Retry-After; the data is not sent
 * without its record. Workers (and batch entries, which run on one) wait
 * for room instead. A local API (the CLI doors) has no queue: each record
 * is its own commit. */
#include <string.h>

#include "api/api_int.h"

/* Route pattern and method -> interaction and action. First match wins;
 * method NULL matches any. */
static const struct {
	const char *pattern;
	const char *method;
	const char *interaction;
	char action;
	bool instance; /* names {type}/{id} */
} trail_table[] = {
	/* pattern                        method    interaction          action */
	{"",                             NULL,     "transaction",       'E', false},
	{"_history",                     NULL,     "history-system",    'R', false},
	{"$transitions-measures",        NULL,     "operation",         'E', false},
	{"AuditEvent",                   "GET",    "search-type",       'R', false},
	{"AuditEvent",                   NULL,     "create",            'C', false},
	{"AuditEvent/{id}",              "GET",    "read",              'R', true},
	{"AuditEvent/{id}",              "DELETE", "delete",            'D', true},
	{"AuditEvent/{id}",              NULL,     "update",            'U', true},
	{"{type}",                       "GET",    "search-type",       'R', false},
	{"{type}",                       "POST",   "create",            'C', false},
	{"{type}",                       "PUT",    "update",            'U', false},
	{"{type}",                       "DELETE", "delete",            'D', false},
	{"{type}/_history",              NULL,     "history-type",      'R', false},
	{"{type}/_search",               NULL,     "search-type",       'R', false},
	{"{type}/{id}",                  "GET",    "read",              'R', true},
	{"{type}/{id}",                  "PUT",    "update",            'U', true},
	{"{type}/{id}",                  "PATCH",  "patch",             'U', true},
	{"{type}/{id}",                  "DELETE", "delete",            'D', true},
	{"{type}/{id}",                  NULL,     "read",              'R', true},
	{"{type}/{id}/_history",         NULL,     "history-instance",  'R', true},
	{"{type}/{id}/_history/{vid}",   NULL,     "vread",             'R', true},
	{"{type}/{id}/$everything",      NULL,     "operation",         'E', true},
	{"{type}/{id}/$medication-list", NULL,     "operation",         'E', true},
	{"{type}/{id}/$readmission-risk", NULL,    "operation",         'E', true},
	{"{comp}/{id}/{type}",           NULL,     "search-type",       'R', false},
	{"{comp}/{id}/{type}/_search",   NULL,     "search-type",       'R', false},
};

#define NTRAIL (sizeof(trail_table) / sizeof(trail_table[0]))

/* Control parameters a record may name besides the type's own. */
static const char *const control_params[] = {
	"_count", "_sort", "_include", "_revinclude", "_summary", "_elements",
	"_total", "_cursor", "_format", "_since", "_at", "_type", "_has",
	"_id", "_lastUpdated", "_tag", "_profile", "_security", "_pretty",
	"_contained", "_containedType", "patient",
};

static bool
is_control(const char *name, size_t n)
{
	for (size_t i = 0; i < sizeof(control_params) / sizeof(control_params[0]); i++)
		if (strlen(control_params[i]) == n &&
		    !strncmp(control_params[i], name, n))
			return true;
	return false;
}

/* The key as the record may show it: a parameter careweave knows for rt
 * (with its modifier or chain), else "(other)": a name the client made up
 * could be a value in disguise. */
static const char *
param_name(struct arena *a, const struct fhir_restype *rt, const char *key)
{
	size_t n = strcspn(key, ":."), len = strlen(key);
	char *base;

	if (len > 100 || strspn(key, "abcdefghijklmnopqrstuvwxyz"
				"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-:.") != len)
		return "(other)";
	if (is_control(key, n))
		return key;
	if (!rt || !(base = arena_strndup(a, key, n)))
		return "(other)";
	return fhir_sp_find(rt, base) ? key : "(other)";
}

/* "name,birthdate": the distinct parameter names of kv, or NULL. */
static const char *
param_names(struct api_req *q, const struct fhir_restype *rt,
	    const struct http_kv *kv, size_t n)
{
	struct sbuf sb = SBUF_INIT(16 * 1024);
	const char *out = NULL;

	for (size_t i = 0; i < n; i++) {
		const char *name = param_name(q->a, rt, kv[i].key);
		bool dup = false;

		for (size_t j = 0; j < i && !dup; j++)
			dup = !strcmp(param_name(q->a, rt, kv[j].key), name);
		if (dup)
			continue;
		if (sb.len)
			sbuf_addch(&sb, ',');
		sbuf_adds(&sb, name);
	}
	if (sb.len && !sb.toobig)
		out = arena_strndup(q->a, sb.buf, sb.len);
	sbuf_release(&sb);
	return out;
}

/* The names of a POST _search body (a form) or of the query string. */
static const char *
search_names(struct api_req *q)
{
	const struct http_kv *kv = q->r->query;
	size_t n = q->r->nquery;

	if (q->r->body_len && !strcmp(q->r->method, "POST")) {
		struct fhir_kv *fk;
		size_t nf;

		if (!fhir_form_split(q->a, q->r->body, q->r->body_len, &fk, &nf)) {
			struct http_kv *hk = arena_alloc(q->a, (nf + n + 1) * sizeof(*hk));

			if (hk) {
				for (size_t i = 0; i < n; i++)
					hk[i] = kv[i];
				for (size_t i = 0; i < nf; i++)
					hk[n + i] = (struct http_kv){fk[i].key, fk[i].value};
				kv = hk;
				n += nf;
			}
		}
	}
	return param_names(q, q->rt, kv, n);
}

static void
who_of(struct audit_event *ev, const struct access_who *who, bool local)
{
	if (who) {
		ev->user = who->username;
		ev->role = access_role_name(who->role);
		ev->link = who->link;
	} else {
		ev->local = local;
	}
}

/* Adds id to the arena array v (n used, cap *cap) unless it is there. */
static bool
add_id(struct arena *a, const char ***v, size_t *n, size_t *cap, const char *id)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*v)[i], id))
			return true;
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		const char **nv = arena_realloc(a, *v, *cap * sizeof(**v),
						nc * sizeof(**v));

		if (!nv)
			return false;
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = id;
	return true;
}

/* BTG when the request reached one of its patients only through a
 * break-the-glass grant (the scope already decided it: no lookup), so the
 * accounting of disclosures shows emergency accesses as such. */
static int
purpose_of(const struct access_scope *sc, const char *const *pats, size_t n)
{
	for (size_t i = 0; sc && i < n; i++)
		if (access_scope_glass(sc, pats[i]))
			return AUDIT_PURPOSE_BTG;
	return AUDIT_PURPOSE_NONE;
}

/* Replaces the answer: the record could not be kept, so nothing is served. */
static void
refuse(struct api_req *q, enum cw_err err)
{
	diag_init(&q->d, q->a);
	if (err == CW_EBUSY) {
		if (!q->internal)
			http_resp_header(q->w, "Retry-After", "1");
		diag_add(&q->d, DIAG_ERROR, "transient", NULL,
			 "The audit trail is busy; try again shortly");
	} else {
		diag_add(&q->d, DIAG_ERROR, "exception", NULL,
			 "The access could not be recorded");
	}
	q->w->nheaders = 0;
	api_reply_outcome(q, err == CW_EBUSY ? 503 : 500, err);
	log_error("audit: a %s was refused: its record could not be kept (%s)",
		  q->route, cw_strerror(err));
}

void
api_trail_request(struct api_req *q)
{
	struct audit_event ev = {.kind = AUDIT_REST};
	struct audit_entity what[2];
	const char **pats = NULL;
	size_t npats = 0, cap = 0, i;
	const char *m = !strcmp(q->r->method, "HEAD") ? "GET" : q->r->method;
	const char *type;
	bool may_wait, aud;
	enum cw_err err;

	if (q->audited || !strcmp(q->route, "?") || !strcmp(q->route, "metadata"))
		return;
	for (i = 0; i < NTRAIL; i++)
		if (!strcmp(trail_table[i].pattern, q->route) &&
		    (!trail_table[i].method || !strcmp(trail_table[i].method, m)))
			break;
	aud = !strncmp(q->route, "AuditEvent", 10);
	type = aud ? "AuditEvent" : q->rt ? q->rt->name : NULL;
	/* A route this table does not know yet is still recorded, as an
	 * operation on what it names. */
	ev.interaction = q->interaction ? q->interaction :
			 i < NTRAIL ? trail_table[i].interaction : "operation";
	ev.action = i < NTRAIL ? trail_table[i].action : 'E';
	ev.status = q->w->status ? q->w->status : 500;
	ev.remote = q->r->remote;
	who_of(&ev, q->who, q->api->local);
	memset(what, 0, sizeof(what));
	what[0].type = type;
	if (i == NTRAIL || trail_table[i].instance)
		what[0].id = q->id;
	else if (ev.action == 'R' && type)
		what[0].params = search_names(q);
	ev.what = what;
	ev.nwhat = type ? 1 : 0;
	if (q->comp && q->id) {
		/* a compartment search: Patient/X/Observation names Patient/X
		 * (first when the type is not one served: Patient/X/Nope) */
		what[ev.nwhat].type = q->comp;
		what[ev.nwhat].id = q->id;
		ev.nwhat++;
		if (!strcmp(q->comp, "Patient") &&
		    !add_id(q->a, &pats, &npats, &cap, q->id))
			goto out_nomem;
	}
	/* Whose record: the resource's compartment (instance interactions,
	 * also a failed change of an existing one), or what a page showed.
	 * Reads of the audit trail name no patient: polling it would grow
	 * the very list it reads. */
	if (!aud && q->rt && q->id && (i == NTRAIL || trail_table[i].instance)) {
		struct store_res one = {.type = q->rt->name, .id = q->id};
		const char **v;
		size_t n;

		if (!strcmp(ev.interaction, "operation") &&
		    !strcmp(q->rt->name, "Patient")) {
			if (!add_id(q->a, &pats, &npats, &cap, q->id))
				goto out_nomem;
		} else if (q->read_patients) {
			for (size_t k = 0; k < q->npatients; k++)
				if (!add_id(q->a, &pats, &npats, &cap, q->patients[k]))
					goto out_nomem;
		} else if (!store_patients_of(q->api->store, q->a, &one, 1,
					      AUDIT_SEARCH_PATIENTS, &v, &n)) {
			for (size_t k = 0; k < n; k++)
				if (!add_id(q->a, &pats, &npats, &cap, v[k]))
					goto out_nomem;
		}
	}
	/* an operation on no instance that read a patient's record ($check) */
	if (!aud && !q->id && q->read_patients)
		for (size_t k = 0; k < q->npatients; k++)
			if (!add_id(q->a, &pats, &npats, &cap, q->patients[k]))
				goto out_nomem;
	if (!aud && q->nseen) {
		/* A search page's resources were read with their patients;
		 * only the rest (history) asks the store again. */
		struct store_res *ask = arena_alloc(q->a, q->nseen * sizeof(*ask));
		size_t nask = 0;
		const char **v;
		size_t n;

		if (!ask)
			goto out_nomem;
		for (size_t k = 0; k < q->nseen; k++) {
			const struct store_res *r = &q->seen[k];

			if (!r->patients_known) {
				ask[nask++] = *r;
				continue;
			}
			for (size_t j = 0; j < r->npatients &&
					   npats < AUDIT_SEARCH_PATIENTS; j++)
				if (!add_id(q->a, &pats, &npats, &cap, r->patients[j]))
					goto out_nomem;
		}
		if (nask && !store_patients_of(q->api->store, q->a, ask, nask,
					       AUDIT_SEARCH_PATIENTS, &v, &n))
			for (size_t k = 0; k < n && npats < AUDIT_SEARCH_PATIENTS; k++)
				if (!add_id(q->a, &pats, &npats, &cap, v[k]))
					goto out_nomem;
	}
	ev.patients = pats;
	ev.npatients = npats;
	ev.purpose = purpose_of(q->scope, pats, npats);
	/* GET runs on a poll thread, everything else on a worker (batch
	 * entries too, whatever their own method). */
	may_wait = q->internal || strcmp(m, "GET");
	if (q->api->audit)
		err = audit_queue(q->api->audit, q->a, &ev, may_wait);
	else
		err = audit_write(q->api->store, q->a, &ev);
	if (err)
		refuse(q, err);
	return;

out_nomem:
	refuse(q, CW_ENOMEM);
}

/* ---- changes, inside their transaction ------------------------------------ */

static const char *
op_interaction(const struct api_op *op, char *action)
{
	switch (op->kind) {
	case OP_CREATE:
		*action = 'C';
		return "create";
	case OP_UPDATE:
		*action = 'U';
		return op->patch ? "patch" : "update";
	case OP_DELETE:
		*action = 'D';
		return "delete";
	}
	*action = 'E';
	return "operation";
}

enum cw_err
api_trail_tx_op(struct store_tx *tx, struct arena *a,
		const struct access_who *who, const char *remote,
		const struct api_op *op)
{
	struct audit_event ev = {.kind = AUDIT_REST};
	struct audit_entity what = {.type = op->rt->name, .id = op->id};

	ev.interaction = op_interaction(op, &ev.action);
	ev.status = op->status;
	ev.remote = remote;
	who_of(&ev, who, who == NULL);
	ev.what = &what;
	ev.nwhat = 1;
	ev.patients = op->patients;
	ev.npatients = op->npatients;
	ev.purpose = purpose_of(op->scope, op->patients, op->npatients);
	return audit_tx_write(tx, a, &ev);
}

/* The record of a disclosure: what was sent, whose it is, to which host.
 * An error is logged (the notice is already sent: nothing to refuse). */
void
api_trail_export(struct api *api, struct arena *a, const struct access_who *who,
		 const char *host, const struct store_res *res, int status)
{
	/* no answer at all is recorded as 504, a failure, never as 0 */
	struct audit_event ev = {.kind = AUDIT_EXPORT, .interaction = "export",
				 .action = 'R', .status = status ? status : 504,
				 .remote = host};
	struct audit_entity what = {.type = res->type, .id = res->id};
	const char **pats = NULL;
	size_t npats = 0;
	enum cw_err err;

	who_of(&ev, who, who == NULL);
	ev.what = &what;
	ev.nwhat = 1;
	err = store_patients_of(api->store, a, res, 1, AUDIT_SEARCH_PATIENTS, &pats, &npats);
	ev.patients = pats;
	ev.npatients = npats;
	if (!err)
		err = api->audit ? audit_queue(api->audit, a, &ev, true)
				 : audit_write(api->store, a, &ev);
	if (err)
		log_error("audit: the record of a Subscription's delivery of %s failed: %s",
			  res->type, cw_strerror(err));
}

/* A write careweave made itself (the rules' DetectedIssue and its
 * Communication: role "rules"; a Subscription's status: "notify"),
 * recorded with that role and no user, in the transaction of the change. */
enum cw_err
api_trail_tx_own(struct store_tx *tx, struct arena *a, const char *role,
		 const struct api_op *op)
{
	struct audit_event ev = {.kind = AUDIT_REST, .role = role};
	struct audit_entity what = {.type = op->rt->name, .id = op->id};

	ev.interaction = op_interaction(op, &ev.action);
	ev.status = op->status;
	ev.what = &what;
	ev.nwhat = 1;
	ev.patients = op->patients;
	ev.npatients = op->npatients;
	return audit_tx_write(tx, a, &ev);
}

enum cw_err
api_trail_tx_bundle(struct store_tx *tx, struct arena *a,
		    const struct access_who *who, const char *agent,
		    const char *remote, const struct api_op *const *ops,
		    size_t nops, const char *const *patients, size_t npatients)
{
	struct audit_event ev = {.kind = AUDIT_REST, .interaction = "transaction",
				 .action = 'E', .status = 200};
	struct audit_entity *what = arena_zalloc(a, (nops + 1) * sizeof(*what));

	if (!what)
		return CW_ENOMEM;
	for (size_t i = 0; i < nops; i++) {
		what[i].type = ops[i]->rt->name;
		what[i].id = ops[i]->id;
	}
	ev.remote = remote;
	if (!who && agent) {
		/* an interface (an HL7 v2 feed): named, not a signed-in user */
		ev.user = agent;
		ev.role = "interface";
	} else {
		who_of(&ev, who, who == NULL);
	}
	ev.what = what;
	ev.nwhat = nops;
	ev.patients = patients;
	ev.npatients = npatients;
	return audit_tx_write(tx, a, &ev);
}

enum cw_err
api_trail_tx_glass(struct store_tx *tx, struct arena *a,
		   const struct access_who *who, const char *remote, char action,
		   const char *patient_id, const char *notice_id,
		   const char *reason)
{
	struct audit_event ev = {.kind = AUDIT_BREAK_GLASS, .action = action,
				 .status = 200, .detail = reason};
	struct audit_entity what[2] = {
		{.type = "Patient", .id = patient_id},
		{.type = "Communication", .id = notice_id},
	};

	ev.remote = remote;
	who_of(&ev, who, who == NULL);
	ev.what = what;
	ev.nwhat = notice_id ? 2 : 1;
	ev.patients = &patient_id;
	ev.npatients = 1;
	return audit_tx_write(tx, a, &ev);
}

/* ---- sign-in and sign-out --------------------------------------------------- */

void
api_trail_auth(struct api_req *q, enum audit_kind kind,
	       const struct access_who *who, int status)
{
	struct audit_event ev = {.kind = kind, .action = 'E', .status = status,
				 .remote = q->r->remote};
	enum cw_err err;

	/* who is NULL, or has no username, when the name tried is nobody's:
	 * then nothing of it is stored. */
	if (who && who->username)
		who_of(&ev, who, false);
	err = audit_write(q->api->store, q->a, &ev);
	if (err)
		log_error("audit: cannot record a sign-%s (%s)",
			  kind == AUDIT_LOGOUT ? "out" : "in", cw_strerror(err));
}

/* ---- the AuditEvent endpoints ---------------------------------------------- */

#define AUDIT_PAGE_DEFAULT 50
#define AUDIT_PAGE_MAX 1000

/* Accounting of disclosures: whose records each role may read. The record
 * of who looked at a chart is itself sensitive, so not every clinician who
 * reaches the patient may read it. A role missing here reads none. A
 * local tool (no caller) reads everything. */
enum disclosure {
	DISCLOSE_NONE,    /* an empty page; a record by id is 404 */
	DISCLOSE_OWN,     /* the records of the Patient the user is */
	DISCLOSE_REACHED, /* of the patients the user's scope reads */
	DISCLOSE_ALL,     /* every record, also the list without patient= */
};

static const enum disclosure disclosure_of[ACCESS_ROLE_COUNT] = {
	[ACCESS_PATIENT] = DISCLOSE_OWN,
	[ACCESS_COORDINATOR] = DISCLOSE_REACHED, /* the team's central contact */
	[ACCESS_SERVICE] = DISCLOSE_ALL,
	[ACCESS_PRIVACY_OFFICER] = DISCLOSE_ALL, /* reviews every access */
};

static enum disclosure
disclosure(const struct api_req *q)
{
	if (!q->who)
		return DISCLOSE_ALL;
	if ((unsigned)q->who->role >= ACCESS_ROLE_COUNT)
		return DISCLOSE_NONE;
	return disclosure_of[q->who->role];
}

/* Whether the caller may see the records that name patient_id. */
static enum cw_err
may_list(struct api_req *q, const char *patient_id, bool *ok)
{
	struct access_scope *sc;
	struct access_grant g;
	enum cw_err err;

	*ok = false;
	switch (disclosure(q)) {
	case DISCLOSE_ALL:
		*ok = true;
		return CW_OK;
	case DISCLOSE_OWN:
		*ok = q->who->link && !strncmp(q->who->link, "Patient/", 8) &&
		      !strcmp(q->who->link + 8, patient_id);
		return CW_OK;
	case DISCLOSE_REACHED:
		if (!(sc = api_scope(q)))
			return CW_ENOMEM; /* fail closed */
		if ((err = access_patient_scope(sc, patient_id, &g)))
			return err;
		*ok = g.read;
		return CW_OK;
	case DISCLOSE_NONE:
		break;
	}
	return CW_OK;
}

/* Whether the caller may see record r: one of the patients it names
 * passes may_list (a record naming no patient: DISCLOSE_ALL only). */
static enum cw_err
may_see_record(struct api_req *q, const struct store_audit *r, bool *ok)
{
	const char *p = r->patients;
	enum cw_err err = CW_OK;
	char *id;

	*ok = disclosure(q) == DISCLOSE_ALL;
	while (p && *p && !*ok) {
		size_t n = strcspn(p, " ");

		if (!(id = arena_strndup(q->a, p, n)))
			return CW_ENOMEM;
		if ((err = may_list(q, id, ok)))
			break;
		p += n + strspn(p + n, " ");
	}
	return err;
}

/* The AuditEvent text of r, in the request's arena. */
static enum cw_err
render(struct api_req *q, const struct store_audit *r, char **text, size_t *len)
{
	struct sbuf sb = SBUF_INIT(API_RESP_MAX);

	audit_render(&sb, r);
	if (sb.toobig) {
		sbuf_release(&sb);
		return CW_ETOOBIG;
	}
	*text = api_free_own(q->a, sbuf_detach(&sb, len));
	return *text ? CW_OK : CW_ENOMEM;
}

enum cw_err
api_h_audit_read(struct api_req *q)
{
	struct store_audit r;
	enum cw_err err;
	char *text;
	size_t len;
	bool ok;

	q->rt = fhir_restype_find("AuditEvent");
	err = store_audit_get(q->api->store, q->a, q->id, &r);
	if (!err && (err = may_see_record(q, &r, &ok)) == CW_OK && !ok)
		err = CW_ENOTFOUND; /* as if it did not exist */
	if (err == CW_ENOTFOUND)
		return diag_err(&q->d, err, "not-found", NULL,
				"AuditEvent/%s is not known", q->id);
	if (!err)
		err = render(q, &r, &text, &len);
	if (err)
		return err;
	api_reply(q, 200, text, len);
	return CW_OK;
}

/* A patient's records, newest first: only for whom may_list allows; a
 * patient out of that reach gets an empty page (as a search restricted to
 * the caller's patients would), so existence does not show. Listing every
 * record (no patient=) is for DISCLOSE_ALL (system clients, local tools). */
enum cw_err
api_h_audit_search(struct api_req *q)
{
	const char *patient = NULL, *before_s = NULL, *count_s = NULL;
	struct sbuf sb = SBUF_INIT(API_RESP_MAX);
	struct store_audit *v;
	unsigned long count = AUDIT_PAGE_DEFAULT;
	long long before = 0;
	char id[ID_LEN + 1], now[32], *text, *end;
	size_t n, len;
	enum cw_err err;

	q->rt = fhir_restype_find("AuditEvent");
	for (size_t i = 0; i < q->r->nquery; i++) {
		const char *k = q->r->query[i].key, *val = q->r->query[i].value;

		if (!strcmp(k, "patient"))
			patient = val;
		else if (!strcmp(k, "_cursor"))
			before_s = val;
		else if (!strcmp(k, "_count"))
			count_s = val;
		else if (strcmp(k, "_format"))
			return diag_err(&q->d, CW_EINVAL, "not-supported", NULL,
					"AuditEvent is searched by patient, _count and _cursor only");
	}
	if (patient && !strncmp(patient, "Patient/", 8))
		patient += 8;
	if (patient && !id_is_valid(patient, strlen(patient)))
		return diag_err(&q->d, CW_EINVAL, "value", NULL,
				"patient must be a Patient id");
	if (count_s) {
		count = strtoul(count_s, &end, 10);
		if (*end || !*count_s || count == 0)
			return diag_err(&q->d, CW_EINVAL, "value", NULL,
					"_count must be a positive number");
		if (count > AUDIT_PAGE_MAX)
			count = AUDIT_PAGE_MAX;
	}
	if (before_s) {
		before = strtoll(before_s, &end, 10);
		if (*end || before <= 0)
			return diag_err(&q->d, CW_EINVAL, "invalid", NULL,
					"_cursor is not one of ours");
	}
	if (!patient && disclosure(q) != DISCLOSE_ALL)
		return diag_err(&q->d, CW_EFORBIDDEN, "forbidden", NULL,
				"AuditEvent is listed per patient: "
				"AuditEvent?patient=ID");
	if (patient) {
		bool ok;

		if ((err = may_list(q, patient, &ok)))
			return err;
		if (!ok)
			count = 0; /* an empty page */
	}
	if (count)
		err = store_audit_list(q->api->store, q->a, patient, before, 0,
				       count, &v, &n);
	else
		v = NULL, n = 0;
	if (err)
		return err;
	id_new(id);
	time_format_instant(time_now_ms(), now);
	sbuf_addf(&sb, "{\"resourceType\":\"Bundle\",\"id\":\"%s\",\"meta\":"
		  "{\"lastUpdated\":\"%s\"},\"type\":\"searchset\",\"link\":["
		  "{\"relation\":\"self\",\"url\":\"%s/AuditEvent%s%s\"}", id, now,
		  q->api->base, patient ? "?patient=" : "", patient ? patient : "");
	if (n && n == count)
		/* the next page: records older than the last one here */
		sbuf_addf(&sb, ",{\"relation\":\"next\",\"url\":\"%s/AuditEvent?%s%s%s"
			  "_count=%lu&_cursor=%lld\"}", q->api->base,
			  patient ? "patient=" : "", patient ? patient : "",
			  patient ? "&" : "", count, (long long)v[n - 1].seq);
	sbuf_adds(&sb, "]");
	if (n) {
		sbuf_adds(&sb, ",\"entry\":[");
		for (size_t i = 0; i < n; i++) {
			sbuf_addf(&sb, "%s{\"fullUrl\":\"%s/AuditEvent/%lld\",\"resource\":",
				  i ? "," : "", q->api->base, (long long)v[i].seq);
			audit_render(&sb, &v[i]);
			sbuf_adds(&sb, ",\"search\":{\"mode\":\"match\"}}");
		}
		sbuf_addch(&sb, ']');
	}
	sbuf_addch(&sb, '}');
	if (sb.toobig) {
		sbuf_release(&sb);
		return diag_err(&q->d, CW_ETOOBIG, "too-costly", NULL,
				"The page is too large; ask for a smaller _count");
	}
	text = api_free_own(q->a, sbuf_detach(&sb, &len));
	if (!text)
		return CW_ENOMEM;
	api_reply(q, 200, text, len);
	return CW_OK;
}
