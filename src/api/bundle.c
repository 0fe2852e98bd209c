/* api/bundle.c: batch and transaction Bundles (POST /fhir, careweave import).
 *
 * A transaction is atomic: every entry is parsed and validated first (all
 * problems reported, located as Bundle.entry[3].resource.birthDate), then
 * ONE store_write callback does all the writes in FHIR's order:
 *
 *   1. DELETE entries (plain and conditional), in Bundle order
 *   2. resolve POST and PUT entries: conditions (If-None-Exist, conditional
 *      PUT URLs) are matched inside the transaction and every entry gets its
 *      final id (a POST gets a new server id, whatever id it carried)
 *   3. map each entry's fullUrl (urn:uuid:..., or an absolute URL) to
 *      Type/id; refuse two entries writing the same resource
 *   4. for each POST, then each PUT: rewrite the resource's references
 *      (any string equal to a urn: fullUrl, any Reference.reference equal
 *      to a fullUrl, and conditional references Type?criteria, which must
 *      match exactly one resource as of that moment, so earlier entries of
 *      this transaction count), then write it
 *   5. after the commit: GET entries, served like batch entries
 *
 * Every version the transaction writes has one lastUpdated. With 64
 * creates or more, the creates are validated by a helper thread during the
 * job, not before it, and the helper does step 4's rewriting, the stored
 * text and the index rows of the creates ahead of the writer (struct pipe).
 *
 * Any error returns from the callback and the store rolls everything back;
 * d names the entry. A conditional reference matching nothing is 400, more
 * than one 412; with api_bundle_opt.lenient_refs a reference matching
 * nothing becomes a logical reference (type + identifier) and a warning.
 *
 * A batch is a list of independent requests: each entry is served as an
 * internal request through the same route table and handlers as REST (so
 * each write is its own store_write), and its response becomes the entry's
 * response. Transaction entries are not run that way because they must
 * share one store transaction.
 *
 * Limits: API_BUNDLE_MAX_ENTRIES entries (413 beyond). Transaction
 * responses carry status, location, etag and lastModified; the resources
 * themselves only with Prefer: return=representation (a 10,000-entry
 * import should not echo itself back). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

/* ---- a small string map in arena memory ----------------------------------- */

struct hslot {
	const char *key;
	const char *val;
	size_t idx;
};

struct hmap {
	struct arena *a;
	size_t cap, n;
	struct hslot *t;
};

static uint64_t
hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct hslot *
hmap_find(const struct hmap *m, const char *key)
{
	size_t i;

	if (!m->cap)
		return NULL;
	i = hash_str(key) & (m->cap - 1);
	while (m->t[i].key && strcmp(m->t[i].key, key))
		i = (i + 1) & (m->cap - 1);
	return &m->t[i];
}

static const struct hslot *
hmap_get(const struct hmap *m, const char *key)
{
	struct hslot *s = hmap_find(m, key);

	return s && s->key ? s : NULL;
}

/* Adds key (which must not be there yet). false when out of memory. */
static bool
hmap_put(struct hmap *m, const char *key, const char *val, size_t idx)
{
	struct hslot *old = m->t, *s;
	size_t oldcap = m->cap, i;

	if (2 * (m->n + 1) > m->cap) {
		m->cap = m->cap ? 2 * m->cap : 64;
		m->t = arena_zalloc(m->a, m->cap * sizeof(*m->t));
		if (!m->t)
			return false;
		for (i = 0; i < oldcap; i++) {
			if (!old[i].key)
				continue;
			*hmap_find(m, old[i].key) = old[i];
		}
	}
	s = hmap_find(m, key);
	s->key = key;
	s->val = val;
	s->idx = idx;
	m->n++;
	return true;
}

/* ---- entries ---------------------------------------------------------------- */

enum bmethod { BM_GET, BM_HEAD, BM_POST, BM_PUT, BM_DELETE, BM_PATCH };

static const char *const method_names[] = {
	[BM_GET] = "GET", [BM_HEAD] = "HEAD", [BM_POST] = "POST",
	[BM_PUT] = "PUT", [BM_DELETE] = "DELETE", [BM_PATCH] = "PATCH",
};

enum bret { BRET_DEFAULT, BRET_REPR, BRET_MINIMAL, BRET_OUTCOME };

struct bentry {
	size_t i;
	const char *loc;          /* "Bundle.entry[3]" */
	json_t *entry;
	json_t *res;              /* entry.resource or NULL */
	const char *full_url;
	enum bmethod method;
	const char *url;          /* request.url, relative to the base */
	const char *if_none_exist, *if_match, *if_none_match, *if_modified_since;
	struct api_op op;         /* transaction writes */
	json_t *patch;            /* a PATCH entry's JSON Patch (its Binary) */
	json_t *response;         /* the response entry, once known */
	bool check_later;         /* a create the helper checks (fhir_validate) */
	enum cw_err verr;         /* ... its verdict */
	struct diag *vissues;     /* ... and issues (helper's arena) */
	bool piped;               /* a create the helper makes ready (struct pipe) */
	bool prepared;            /* ... and did: prep holds it */
	struct store_prep prep;
};

struct pipe;

struct bctx {
	struct api *api;
	struct arena *a;
	struct diag *d;
	bool lenient_refs;
	enum bret ret;
	const char *prefer;       /* Prefer passed on to batch entries */
	const struct access_who *who; /* the caller, passed on to entries */
	const char *remote;       /* the caller's address, for audit records */
	struct access_scope *scope;   /* who's access, checked on each write */
	size_t n;
	struct bentry *e;
	struct hmap urls;         /* fullUrl -> "Type/id" */
	struct hmap targets;      /* "Type/id" written -> entry */
	struct hmap refs;         /* resolved conditional references */
	struct pipe *pipe;        /* the helper of this transaction, or NULL */
	bool check_later;         /* its creates are checked by the helper */
	bool audited;             /* the Bundle's record is written (a committed
				     transaction; a batch's entries record
				     themselves) */
	bool answered;            /* tx_ready ran: answer, answer_err */
	json_t *answer;
	enum cw_err answer_err;
	const struct api_bundle_opt *opt; /* the door's agent and hook, or NULL */
};

static enum cw_err
entry_parse(struct bctx *b, struct bentry *e, json_t *entry, struct diag *d)
{
	json_t *req, *res;
	const char *m, *url;
	size_t i;

	e->entry = entry;
	e->loc = arena_printf(b->a, "Bundle.entry[%zu]", e->i);
	if (!e->loc)
		return CW_ENOMEM;
	if (!json_is_object(entry))
		return diag_err(d, CW_EINVAL, "structure", e->loc,
				"A Bundle entry must be an object");
	req = json_object_get(entry, "request");
	m = json_string_value(json_object_get(req, "method"));
	url = json_string_value(json_object_get(req, "url"));
	if (!m || !url)
		return diag_err(d, CW_EINVAL, "required",
				arena_printf(b->a, "%s.request", e->loc),
				"Each entry needs request.method and request.url");
	for (i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++)
		if (!strcmp(m, method_names[i]))
			break;
	if (i == sizeof(method_names) / sizeof(method_names[0]))
		return diag_err(d, CW_EINVAL, "value",
				arena_printf(b->a, "%s.request.method", e->loc),
				"Unknown method");
	e->method = (enum bmethod)i;
	res = json_object_get(entry, "resource");
	if (res && !json_is_object(res))
		return diag_err(d, CW_EINVAL, "structure",
				arena_printf(b->a, "%s.resource", e->loc),
				"resource must be an object");
	e->res = res;
	e->full_url = json_string_value(json_object_get(entry, "fullUrl"));
	e->if_none_exist = json_string_value(json_object_get(req, "ifNoneExist"));
	e->if_match = json_string_value(json_object_get(req, "ifMatch"));
	e->if_none_match = json_string_value(json_object_get(req, "ifNoneMatch"));
	e->if_modified_since =
		json_string_value(json_object_get(req, "ifModifiedSince"));
	if (!strncmp(url, b->api->base, b->api->base_len) &&
	    (url[b->api->base_len] == '/' || !url[b->api->base_len]))
		url += b->api->base_len;
	while (*url == '/')
		url++;
	if (!strncmp(url, "http:", 5) || !strncmp(url, "https:", 6))
		return diag_err(d, CW_EINVAL, "not-supported",
				arena_printf(b->a, "%s.request.url", e->loc),
				"request.url must be relative to this server");
	e->url = url;
	return CW_OK;
}

/* ---- transaction: preparing entries -------------------------------------- */

/* Copies the validation issues of one entry into d with locations moved
 * under Bundle.entry[i].resource. */
static void
relocate_issues(struct bctx *b, struct bentry *e, const struct diag *sub,
		const char *type)
{
	const struct diag_issue *is;
	const char *rest;
	size_t i, tl = strlen(type);

	for (i = 0; i < sub->n; i++) {
		is = &sub->issues[i];
		rest = is->loc ? is->loc : "";
		if (!strncmp(rest, type, tl) && (rest[tl] == '.' || rest[tl] == '[' ||
						 !rest[tl]))
			rest += tl;
		else if (*rest)
			rest = arena_printf(b->a, ".%s", rest);
		diag_add(b->d, is->sev, is->code,
			 arena_printf(b->a, "%s.resource%s", e->loc, rest), "%s",
			 is->msg ? is->msg : "");
	}
}

/* Splits "Type/id?query" of e->url. */
static enum cw_err
split_url(struct bctx *b, struct bentry *e, const struct fhir_restype **rt,
	  const char **id, const char **query)
{
	const char *u = e->url, *qm = strchr(u, '?'), *sl;
	size_t plen = qm ? (size_t)(qm - u) : strlen(u);
	const char *loc = arena_printf(b->a, "%s.request.url", e->loc);

	*query = qm ? qm + 1 : NULL;
	*id = NULL;
	sl = memchr(u, '/', plen);
	*rt = fhir_restype_findn(u, sl ? (size_t)(sl - u) : plen);
	if (!*rt)
		return diag_err(b->d, CW_EINVAL, "not-supported", loc,
				"The URL does not name a supported resource type");
	if (sl) {
		*id = arena_strndup(b->a, sl + 1, plen - (size_t)(sl + 1 - u));
		if (!*id)
			return CW_ENOMEM;
		if (!id_is_valid(*id, strlen(*id)))
			return diag_err(b->d, CW_EINVAL, "value", loc,
					"The URL does not end in a valid id");
	}
	return CW_OK;
}

static enum cw_err
tx_prep(struct bctx *b, struct bentry *e)
{
	const struct fhir_restype *rt;
	const char *id, *query, *rtype, *body_id;
	struct fhir_query *cond = NULL;
	struct diag sub;
	enum cw_err err;

	if (e->method == BM_GET || e->method == BM_HEAD)
		return CW_OK;
	err = split_url(b, e, &rt, &id, &query);
	if (err)
		return err;
	if (!strcmp(rt->name, "AuditEvent"))
		/* the audit trail is written by the server only */
		return diag_err(b->d, CW_ENOTALLOWED, "not-supported",
				arena_printf(b->a, "%s.request", e->loc),
				"AuditEvent records cannot be written through the API");
	e->op.rt = rt;
	e->op.loc = e->loc;
	e->op.coord = b->api->coord;
	e->op.notify = b->api->notify;
	e->op.owner = b->who ? b->who->username : NULL;
	e->op.report_only = b->api->rules_report_only || (b->opt && b->opt->report_only);
	if (e->method == BM_POST && (id || query))
		return diag_err(b->d, CW_EINVAL, "invalid",
				arena_printf(b->a, "%s.request.url", e->loc),
				"A create's URL is just the resource type");
	if (e->method != BM_POST && !id && !query)
		return diag_err(b->d, CW_EINVAL, "invalid",
				arena_printf(b->a, "%s.request.url", e->loc),
				"An update or delete needs Type/id or Type?criteria");
	if (e->method == BM_PATCH && !id)
		return diag_err(b->d, CW_EINVAL, "not-supported",
				arena_printf(b->a, "%s.request.url", e->loc),
				"A patch needs Type/id (a conditional patch is not supported)");
	if (e->if_match) {
		e->op.if_match = api_parse_etag(e->if_match);
		if (e->op.if_match < 0)
			return diag_err(b->d, CW_EINVAL, "value",
					arena_printf(b->a, "%s.request.ifMatch", e->loc),
					"ifMatch must be a version ETag: W/\"3\"");
	}
	if (query) {
		err = api_parse_condition(b->a, rt, query,
					  arena_printf(b->a, "%s.request.url", e->loc),
					  &cond, b->d);
		if (err)
			return err;
	}
	if (e->method == BM_PATCH) {
		/* applied in the transaction to the version stored then */
		e->op.kind = OP_UPDATE;
		e->op.id = id;
		e->op.patch = true;
		e->op.scope = b->scope;
		return api_patch_binary(b->a, e->res, arena_printf(b->a, "%s.resource", e->loc),
					&e->patch, b->d);
	}
	if (e->method == BM_DELETE) {
		e->op.kind = OP_DELETE;
		e->op.id = id;
		e->op.cond = cond;
		e->op.scope = b->scope;
		err = api_restrict_query(b->scope, cond);
		if (err)
			return err;
		return CW_OK;
	}
	if (!e->res)
		return diag_err(b->d, CW_EINVAL, "required",
				arena_printf(b->a, "%s.resource", e->loc),
				"A create or update entry needs a resource");
	rtype = json_string_value(json_object_get(e->res, "resourceType"));
	if (!rtype || strcmp(rtype, rt->name))
		return diag_err(b->d, CW_EINVAL, "invalid",
				arena_printf(b->a, "%s.resource.resourceType", e->loc),
				"resourceType does not match request.url");
	if (e->method == BM_POST) {
		json_object_del(e->res, "id");
		if (e->if_none_exist) {
			err = api_parse_condition(b->a, rt, e->if_none_exist,
						  arena_printf(b->a, "%s.request.ifNoneExist", e->loc),
						  &cond, b->d);
			if (err)
				return err;
		}
		e->op.kind = OP_CREATE;
	} else {
		body_id = json_string_value(json_object_get(e->res, "id"));
		if (id && !body_id)
			json_object_set_new(e->res, "id", json_string(id));
		else if (id && strcmp(body_id, id))
			return diag_err(b->d, CW_EINVAL, "invalid",
					arena_printf(b->a, "%s.resource.id", e->loc),
					"The resource id does not match request.url");
		e->op.kind = OP_UPDATE;
		e->op.id = id;
	}
	e->op.res = e->res;
	e->op.cond = cond;
	e->op.scope = b->scope;
	err = api_restrict_query(b->scope, cond);
	if (err)
		return err;
	if (b->check_later && e->method == BM_POST) {
		e->check_later = true;
		return CW_OK;
	}
	diag_init(&sub, b->a);
	err = fhir_validate(e->res, rt->name, &sub);
	relocate_issues(b, e, &sub, rt->name);
	return err;
}

/* The error a transaction answers with when several entries fail: the
 * first that is not plain invalid content, else that. */
static enum cw_err
worse(enum cw_err first, enum cw_err err)
{
	return err && (!first || first == CW_EINVALID) ? err : first;
}

/* Checks now the creates left to the helper (there is none after all, or
 * the transaction is refused before it starts). */
static enum cw_err
check_now(struct bctx *b)
{
	enum cw_err first = CW_OK;
	struct diag sub;

	for (size_t i = 0; i < b->n; i++) {
		struct bentry *e = &b->e[i];

		if (!e->check_later)
			continue;
		e->check_later = false;
		diag_init(&sub, b->a);
		first = worse(first, fhir_validate(e->res, e->op.rt->name, &sub));
		relocate_issues(b, e, &sub, e->op.rt->name);
	}
	return first;
}

/* ---- transaction: references ---------------------------------------------- */

static enum cw_err
logical_ref(struct bctx *b, struct bentry *e, json_t *obj,
	    const struct fhir_restype *rt, const char *query)
{
	struct fhir_kv *kv;
	size_t nkv;
	const char *bar;
	json_t *ident = NULL;

	if (!fhir_form_split(b->a, query, strlen(query), &kv, &nkv) && nkv == 1 &&
	    !strcmp(kv[0].key, "identifier")) {
		bar = strchr(kv[0].value, '|');
		if (!bar)
			ident = json_pack("{s:s}", "value", kv[0].value);
		else if (bar == kv[0].value)
			ident = json_pack("{s:s}", "value", bar + 1);
		else
			ident = json_pack("{s:s%,s:s}", "system", kv[0].value,
					  (size_t)(bar - kv[0].value), "value", bar + 1);
	}
	json_object_del(obj, "reference");
	if (!json_object_get(obj, "type"))
		json_object_set_new(obj, "type", json_string(rt->name));
	if (ident && !json_object_get(obj, "identifier"))
		json_object_set_new(obj, "identifier", ident);
	else
		json_decref(ident);
	diag_add(b->d, DIAG_WARNING, "not-found",
		 arena_printf(b->a, "%s.resource", e->loc),
		 "A conditional reference to %s matched nothing; kept as a logical reference",
		 rt->name);
	return CW_OK;
}

/* obj is a Reference whose reference is ref: map a fullUrl, resolve a
 * conditional reference. */
static enum cw_err
fix_reference(struct bctx *b, struct store_tx *tx, struct bentry *e,
	      json_t *obj, json_t *ref)
{
	const char *s = json_string_value(ref), *qm, *val, **ids;
	const struct fhir_restype *rt;
	const struct hslot *hit;
	struct fhir_query *fq;
	size_t n;
	enum cw_err err;

	hit = hmap_get(&b->urls, s);
	if (hit) {
		json_string_set(ref, hit->val);
		return CW_OK;
	}
	if (api_bundle_name(s))
		return diag_err(b->d, CW_EINVAL, "not-found",
				arena_printf(b->a, "%s.resource", e->loc),
				"The reference %s names no entry of this Bundle", s);
	if (!api_conditional_ref(s))
		return CW_OK;
	qm = s + api_conditional_ref(s);
	rt = fhir_restype_findn(s, (size_t)(qm - s));
	if (!rt)
		return CW_OK;
	hit = hmap_get(&b->refs, s);
	if (hit) {
		json_string_set(ref, hit->val);
		return CW_OK;
	}
	err = api_parse_condition(b->a, rt, qm + 1,
				  arena_printf(b->a, "%s.resource", e->loc), &fq, b->d);
	if (err)
		return err;
	err = store_tx_match(tx, b->a, fq, 2, &ids, &n, b->d);
	if (err)
		return err;
	if (n > 1)
		return diag_err(b->d, CW_EPRECOND, "multiple-matches",
				arena_printf(b->a, "%s.resource", e->loc),
				"The conditional reference %s matched more than one resource",
				s);
	if (n == 0) {
		if (b->lenient_refs)
			return logical_ref(b, e, obj, rt, qm + 1);
		return diag_err(b->d, CW_EINVAL, "not-found",
				arena_printf(b->a, "%s.resource", e->loc),
				"The conditional reference %s matched nothing", s);
	}
	val = arena_printf(b->a, "%s/%s", rt->name, ids[0]);
	s = arena_strdup(b->a, s);
	if (!val || !s || !hmap_put(&b->refs, s, val, e->i))
		return CW_ENOMEM;
	json_string_set(ref, val);
	return CW_OK;
}

static void
fix_urn(const struct hmap *urls, json_t *str)
{
	const char *s = json_string_value(str);
	const struct hslot *hit;

	if (strncmp(s, "urn:", 4))
		return;
	hit = hmap_get(urls, s);
	if (hit)
		json_string_set(str, hit->val);
}

/* What walk does with each Reference (obj, its reference string ref). */
typedef enum cw_err (*ref_fn)(void *ctx, json_t *obj, json_t *ref);

/* Rewrites every string of v naming an entry (urls) and hands each
 * Reference to fn: on the writer fix_reference, on the helper pipe_ref. */
static enum cw_err
walk(const struct hmap *urls, json_t *v, ref_fn fn, void *ctx)
{
	const char *k;
	json_t *c;
	size_t i;
	enum cw_err err;

	if (json_is_object(v)) {
		c = json_object_get(v, "reference");
		if (json_is_string(c)) {
			err = fn(ctx, v, c);
			if (err)
				return err;
		}
		json_object_foreach(v, k, c) {
			if (json_is_string(c)) {
				fix_urn(urls, c);
			} else if (json_is_object(c) || json_is_array(c)) {
				err = walk(urls, c, fn, ctx);
				if (err)
					return err;
			}
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, c) {
			if (json_is_string(c)) {
				fix_urn(urls, c);
			} else if (json_is_object(c) || json_is_array(c)) {
				err = walk(urls, c, fn, ctx);
				if (err)
					return err;
			}
		}
	}
	return CW_OK;
}

struct entry_walk {
	struct bctx *b;
	struct store_tx *tx;
	struct bentry *e;
};

static enum cw_err
entry_ref(void *ctx, json_t *obj, json_t *ref)
{
	struct entry_walk *w = ctx;

	return fix_reference(w->b, w->tx, w->e, obj, ref);
}

/* The writer's walk of an entry's resource (or patch). */
static enum cw_err
walk_entry(struct bctx *b, struct store_tx *tx, struct bentry *e, json_t *v)
{
	struct entry_walk w = {b, tx, e};

	return walk(&b->urls, v, entry_ref, &w);
}

/* Records what e writes; two entries writing one resource fail. */
static enum cw_err
claim_target(struct bctx *b, struct bentry *e)
{
	const struct hslot *hit;
	const char *key;

	if (e->op.noop && e->op.kind == OP_DELETE)
		return CW_OK;
	key = arena_printf(b->a, "%s/%s", e->op.rt->name, e->op.id);
	if (!key)
		return CW_ENOMEM;
	hit = hmap_get(&b->targets, key);
	if (hit)
		return diag_err(b->d, CW_EINVAL, "duplicate", e->loc,
				"Bundle.entry[%zu] and Bundle.entry[%zu] both write %s",
				hit->idx, e->i, key);
	if (!hmap_put(&b->targets, key, key, e->i))
		return CW_ENOMEM;
	if (e->full_url && e->method != BM_DELETE) {
		if (hmap_get(&b->urls, e->full_url))
			return diag_err(b->d, CW_EINVAL, "duplicate",
					arena_printf(b->a, "%s.fullUrl", e->loc),
					"Two entries have the same fullUrl");
		if (!hmap_put(&b->urls, e->full_url, key, e->i))
			return CW_ENOMEM;
	}
	return CW_OK;
}

/* The transaction's one audit record (see api/trail.c for why one): an
 * entity per write entry, the patients of all of them. */
static enum cw_err
record_tx(struct bctx *b, struct store_tx *tx)
{
	const struct api_op **ops = arena_alloc(b->a, (b->n + 1) * sizeof(*ops));
	const char **pats = NULL;
	struct hmap seen = {.a = b->a};
	size_t nops = 0, np = 0, cap = 0;

	if (!ops)
		return CW_ENOMEM;
	for (size_t i = 0; i < b->n; i++) {
		const struct api_op *op = &b->e[i].op;

		if (b->e[i].method == BM_GET || b->e[i].method == BM_HEAD)
			continue;
		ops[nops++] = op;
		for (size_t k = 0; k < op->npatients; k++) {
			const char *p = op->patients[k];

			if (hmap_get(&seen, p))
				continue;
			if (!hmap_put(&seen, p, p, np))
				return CW_ENOMEM;
			if (np == cap) {
				size_t nc = cap ? cap * 2 : 16;
				const char **nv = arena_realloc(b->a, pats,
					cap * sizeof(*pats), nc * sizeof(*pats));

				if (!nv)
					return CW_ENOMEM;
				pats = nv;
				cap = nc;
			}
			pats[np++] = p;
		}
	}
	return api_trail_tx_bundle(tx, b->a, b->who, b->opt ? b->opt->agent : NULL,
				   b->remote, ops, nops, pats, np);
}

/* The door's own record of what the transaction wrote (api_bundle_opt.in_tx). */
static enum cw_err
door_in_tx(struct bctx *b, struct store_tx *tx)
{
	const char **w;
	size_t n = 0;

	if (!b->opt || !b->opt->in_tx)
		return CW_OK;
	if (!(w = arena_alloc(b->a, (b->n + 1) * sizeof(*w))))
		return CW_ENOMEM;
	for (size_t i = 0; i < b->n; i++) {
		const struct api_op *op = &b->e[i].op;

		if (b->e[i].method == BM_GET || b->e[i].method == BM_HEAD || !op->rt ||
		    !op->id || op->noop)
			continue;
		if (!(w[n++] = arena_printf(b->a, "%s/%s", op->rt->name, op->id)))
			return CW_ENOMEM;
	}
	return b->opt->in_tx(tx, b->opt->in_tx_ctx, w, n);
}

static bool
in_pass(const struct bentry *e, int pass)
{
	return pass ? e->method == BM_PUT || e->method == BM_PATCH : e->method == BM_POST;
}

/* A PATCH entry's resource: the version stored now with its patch, then
 * validated as any entry's resource is (issues under the entry). */
static enum cw_err
patch_entry(struct bctx *b, struct store_tx *tx, struct bentry *e)
{
	struct diag sub;
	enum cw_err err;

	diag_init(&sub, b->a);
	err = api_patch_apply(tx, b->a, &e->op, e->patch, e->op.if_match, NULL, &sub);
	if (!err)
		err = fhir_validate(e->op.res, e->op.rt->name, &sub);
	relocate_issues(b, e, &sub, e->op.rt->name);
	return err;
}

/* ---- transaction: creates made ready beside the writer ----------------------- */

/* A big transaction's creates spent a third of the writer's time on work
 * that needs no database: rewriting references, serializing, extracting
 * index rows; and their checks (validation) held up the job's start. While
 * the writer inserts, a helper thread checks the creates ahead of it and
 * does that work (store_prep_create), so on two cores the writer only
 * inserts. A create that fails its check stops the writer there
 * (pipe_refused). The helper touches only its entries' resources, its own
 * arena and what nothing writes while it runs (b->urls, the written types).
 * A conditional reference it asks the writer to resolve (the writer owns
 * the transaction), and only one to a type no entry writes: its answer is
 * the same whenever it is asked. Anything else (a reference it may not
 * resolve, an error) leaves the entry to the writer, done as before. */
#define PIPE_MIN 64 /* fewer creates: not worth a thread */

struct pipe {
	struct bctx *b;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct arena *a;          /* the helper's: the creates made ready */
	int64_t ms;               /* their lastUpdated */
	const struct fhir_restype **written; /* types the Bundle writes */
	size_t nwritten;
	/* under mu */
	size_t next;              /* entries before it are the helper's no more */
	struct hmap resolved;     /* conditional reference -> "Type/id" (in b->a) */
	const char *want;         /* the reference the helper waits on */
	bool answered;
	const char *answer;       /* "Type/id", or NULL: leave it to the writer */
	bool stop;                /* the writer is done with the helper */
};

static bool
pipe_writes(const struct pipe *p, const struct fhir_restype *rt)
{
	for (size_t i = 0; i < p->nwritten; i++)
		if (p->written[i] == rt)
			return true;
	return false;
}

/* The helper's part of fix_reference. CW_EBUSY: the writer's to do. */
static enum cw_err
pipe_ref(void *ctx, json_t *obj, json_t *ref)
{
	struct pipe *p = ctx;
	const char *s = json_string_value(ref), *val;
	const struct hslot *hit;
	const struct fhir_restype *rt;
	size_t tn;

	(void)obj;
	if ((hit = hmap_get(&p->b->urls, s))) {
		json_string_set(ref, hit->val);
		return CW_OK;
	}
	if (api_bundle_name(s))
		return CW_EBUSY; /* names no entry: the writer reports it */
	if (!(tn = api_conditional_ref(s)) || !(rt = fhir_restype_findn(s, tn)))
		return CW_OK;
	if (pipe_writes(p, rt))
		return CW_EBUSY;
	pthread_mutex_lock(&p->mu);
	if ((hit = hmap_get(&p->resolved, s))) {
		val = hit->val;
	} else {
		p->want = s;
		p->answered = false;
		pthread_cond_broadcast(&p->cv);
		while (!p->answered && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		val = p->answered ? p->answer : NULL;
		p->want = NULL;
	}
	pthread_mutex_unlock(&p->mu);
	if (!val)
		return CW_EBUSY;
	json_string_set(ref, val);
	return CW_OK;
}

static void *
pipe_main(void *arg)
{
	struct pipe *p = arg;
	struct bctx *b = p->b;
	bool stop = false, failed = false;

	for (size_t i = 0; i < b->n && !stop; i++) {
		struct bentry *e = &b->e[i];

		if (e->check_later) {
			/* every create is checked, for the whole list of problems */
			if (!(e->vissues = arena_alloc(p->a, sizeof(*e->vissues)))) {
				e->verr = CW_ENOMEM;
			} else {
				diag_init(e->vissues, p->a);
				e->verr = fhir_validate(e->res, e->op.rt->name, e->vissues);
			}
			failed |= e->verr != CW_OK;
		}
		if (e->piped && !failed)
			e->prepared = !walk(&b->urls, e->op.res, pipe_ref, p) &&
				      !store_prep_create(p->a, e->op.res, e->op.rt,
							 e->op.id, p->ms, &e->prep);
		pthread_mutex_lock(&p->mu);
		p->next = i + 1;
		stop = p->stop;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
	pthread_mutex_lock(&p->mu);
	p->next = SIZE_MAX;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Answers the helper's question, under p->mu, on the writer: as
 * fix_reference resolves, quietly (the writer's own walk reports). */
static void
pipe_answer(struct pipe *p, struct store_tx *tx)
{
	struct bctx *b = p->b;
	const char *s = p->want, *qm, **ids, *key, *val = NULL;
	const struct fhir_restype *rt;
	struct fhir_query *fq;
	struct diag quiet;
	size_t n;

	diag_init(&quiet, b->a);
	qm = s + api_conditional_ref(s);
	rt = fhir_restype_findn(s, (size_t)(qm - s));
	if (rt && !api_parse_condition(b->a, rt, qm + 1, "Bundle", &fq, &quiet) &&
	    !store_tx_match(tx, b->a, fq, 2, &ids, &n, &quiet) && n == 1 &&
	    (val = arena_printf(b->a, "%s/%s", rt->name, ids[0])) &&
	    (key = arena_strdup(b->a, s)) && !hmap_put(&p->resolved, key, val, 0))
		val = NULL;
	p->answer = val;
	p->answered = true;
	pthread_cond_broadcast(&p->cv);
}

/* A create with a new id: what the helper can make ready (a Subscription
 * is the notifier's to check first). */
static bool
pipe_takes(const struct bentry *e)
{
	return e->method == BM_POST && e->op.kind == OP_CREATE && !e->op.noop &&
	       e->op.fresh_id && e->op.res && strcmp(e->op.rt->name, "Subscription");
}

/* Starts the helper when the Bundle has creates enough; without one (few
 * creates, no thread to be had) the writer does all as before. */
static enum cw_err
pipe_start(struct bctx *b, struct store_tx *tx)
{
	struct pipe *p;
	size_t ncreate = 0;

	for (size_t i = 0; i < b->n; i++)
		ncreate += pipe_takes(&b->e[i]);
	if (ncreate < PIPE_MIN)
		return check_now(b);
	if (!(p = arena_zalloc(b->a, sizeof(*p))) ||
	    !(p->written = arena_alloc(b->a, b->n * sizeof(*p->written))))
		return CW_ENOMEM;
	p->b = b;
	p->resolved = (struct hmap){.a = b->a};
	for (size_t i = 0; i < b->n; i++) {
		struct bentry *e = &b->e[i];

		if ((e->method == BM_POST || e->method == BM_PUT || e->method == BM_PATCH) &&
		    e->op.rt && !pipe_writes(p, e->op.rt))
			p->written[p->nwritten++] = e->op.rt;
	}
	p->ms = store_tx_stamp(tx);
	/* the made-ready texts are the responses' until the request ends */
	if (!(p->a = arena_new(0)))
		return CW_ENOMEM;
	if (!arena_on_free(b->a, (void (*)(void *))arena_free, p->a)) {
		arena_free(p->a);
		return CW_ENOMEM;
	}
	for (size_t i = 0; i < b->n; i++)
		b->e[i].piped = pipe_takes(&b->e[i]);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (runner_start(b->api->tx_helper, pipe_main, p)) {
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->mu);
		for (size_t i = 0; i < b->n; i++)
			b->e[i].piped = false;
		return check_now(b);
	}
	b->pipe = p;
	return CW_OK;
}

/* Waits until the helper is past entry i, answering its questions. */
static void
pipe_wait(struct pipe *p, struct store_tx *tx, size_t i)
{
	pthread_mutex_lock(&p->mu);
	for (;;) {
		if (p->want && !p->answered)
			pipe_answer(p, tx);
		else if (p->next > i)
			break;
		else
			pthread_cond_wait(&p->cv, &p->mu);
	}
	pthread_mutex_unlock(&p->mu);
}

/* Entry i failed its checks on the helper: once the helper has checked
 * the rest, every entry's problems are reported, as they are when the
 * checks run before the transaction. */
static enum cw_err
pipe_refused(struct bctx *b, struct store_tx *tx)
{
	enum cw_err first = CW_OK;

	pipe_wait(b->pipe, tx, b->n - 1);
	for (size_t i = 0; i < b->n; i++) {
		struct bentry *e = &b->e[i];

		if (!e->check_later)
			continue;
		first = worse(first, e->verr);
		if (e->vissues)
			relocate_issues(b, e, e->vissues, e->op.rt->name);
	}
	return first;
}

/* Stops the helper (it ends at its next entry) and waits for it. */
static void
pipe_end(struct bctx *b)
{
	struct pipe *p = b->pipe;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	runner_wait(b->api->tx_helper);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	b->pipe = NULL;
}

static enum cw_err
tx_run(struct store_tx *tx, struct bctx *b)
{
	struct bentry *e;
	size_t i;
	int pass;
	enum cw_err err;

	b->urls = (struct hmap){.a = b->a};
	b->targets = (struct hmap){.a = b->a};
	b->refs = (struct hmap){.a = b->a};
	/* one time for every version the transaction writes */
	store_tx_stamp(tx);
	for (i = 0; i < b->n; i++) {
		e = &b->e[i];
		if (e->method != BM_DELETE)
			continue;
		err = api_op_resolve(tx, b->a, &e->op, b->d);
		if (!err)
			err = claim_target(b, e);
		if (!err)
			err = api_op_exec(tx, b->a, &e->op, b->d);
		if (err)
			return err;
	}
	/* FHIR's order: creates, then updates and patches */
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < b->n; i++) {
			e = &b->e[i];
			if (!in_pass(e, pass))
				continue;
			err = api_op_resolve(tx, b->a, &e->op, b->d);
			if (!err)
				err = claim_target(b, e);
			if (err)
				return err;
		}
	}
	if ((err = pipe_start(b, tx)))
		return err;
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < b->n; i++) {
			e = &b->e[i];
			if (!in_pass(e, pass))
				continue;
			if (b->pipe && (e->piped || e->check_later)) {
				pipe_wait(b->pipe, tx, i);
				if (e->verr)
					return pipe_refused(b, tx);
			}
			if (e->method == BM_PATCH) {
				/* its values may name entries (urn:uuid:) too */
				if ((err = walk_entry(b, tx, e, e->patch)) ||
				    (err = patch_entry(b, tx, e)))
					return err;
			} else if (e->prepared) {
				e->op.prep = &e->prep;
			} else if (!e->op.noop) {
				err = walk_entry(b, tx, e, e->op.res);
				if (err)
					return err;
			}
			err = api_op_exec(tx, b->a, &e->op, b->d);
			if (err)
				return err;
		}
	}
	pipe_end(b);
	/* The rules once everything is written: they see the whole Bundle. */
	for (i = 0; i < b->n; i++) {
		e = &b->e[i];
		if (e->method == BM_GET || e->method == BM_HEAD)
			continue;
		if ((err = api_rules_apply(tx, b->a, &e->op, b->d)))
			return err;
	}
	if ((err = record_tx(b, tx)))
		return err;
	return door_in_tx(b, tx);
}

static enum cw_err
tx_cb(struct store_tx *tx, void *ctx)
{
	struct bctx *b = ctx;
	enum cw_err err = tx_run(tx, b);

	pipe_end(b); /* when tx_run failed with the helper running */
	return err;
}

/* ---- internal requests (batch entries, transaction GETs) ------------------ */

static json_t *
response_of(struct bctx *b, const struct http_resp *w, bool keep_body)
{
	json_t *resp, *entry, *body = NULL, *meta;
	const char *loc = NULL, *etag = NULL, *lu;
	size_t i;

	for (i = 0; i < w->nheaders; i++) {
		if (!strcmp(w->headers[i].key, "Location"))
			loc = w->headers[i].value;
		else if (!strcmp(w->headers[i].key, "ETag"))
			etag = w->headers[i].value;
	}
	if (loc && !strncmp(loc, b->api->base, b->api->base_len) &&
	    loc[b->api->base_len] == '/')
		loc += b->api->base_len + 1;
	if (w->body_len)
		fhir_parse_json(w->body, w->body_len, &body, NULL);
	resp = json_pack("{s:s}", "status", api_status_text(b->a, w->status));
	if (!resp) {
		json_decref(body);
		return NULL;
	}
	if (loc)
		json_object_set_new(resp, "location", json_string(loc));
	if (etag)
		json_object_set_new(resp, "etag", json_string(etag));
	meta = json_object_get(body, "meta");
	lu = json_string_value(json_object_get(meta, "lastUpdated"));
	if (lu && w->status < 300)
		json_object_set_new(resp, "lastModified", json_string(lu));
	entry = json_object();
	if (body && w->status >= 400) {
		json_object_set_new(resp, "outcome", body);
		body = NULL;
	}
	json_object_set_new(entry, "response", resp);
	if (body && keep_body)
		json_object_set_new(entry, "resource", body);
	else
		json_decref(body);
	return entry;
}

static json_t *
run_internal(struct bctx *b, struct bentry *e)
{
	struct http_req r;
	struct http_resp w;
	struct api_req q;
	struct http_kv hdrs[8];
	struct fhir_kv *kv = NULL;
	size_t nh = 0, nkv = 0, i;
	const char *qm = strchr(e->url, '?');
	char *body;

	memset(&r, 0, sizeof(r));
	memset(&w, 0, sizeof(w));
	memset(&q, 0, sizeof(q));
	r.arena = b->a;
	r.method = method_names[e->method];
	r.path = arena_printf(b->a, "/fhir/%.*s",
			      (int)(qm ? (size_t)(qm - e->url) : strlen(e->url)),
			      e->url);
	if (qm && fhir_form_split(b->a, qm + 1, strlen(qm + 1), &kv, &nkv))
		return NULL;
	r.query = arena_alloc(b->a, (nkv + 1) * sizeof(*r.query));
	if (!r.path || !r.query)
		return NULL;
	for (i = 0; i < nkv; i++)
		r.query[i] = (struct http_kv){kv[i].key, kv[i].value};
	r.nquery = nkv;
	r.body = "";
	/* a PATCH's resource is the Binary of its patch: api_h_patch reads it */
	if (e->res && (e->method == BM_POST || e->method == BM_PUT || e->method == BM_PATCH)) {
		body = api_free_own(b->a, fhir_dump(e->res, NULL));
		if (!body)
			return NULL;
		r.body = body;
		r.body_len = strlen(body);
		hdrs[nh++] = (struct http_kv){"Content-Type", "application/fhir+json"};
	}
#define HDR(name, v) \
	if (v) \
		hdrs[nh++] = (struct http_kv){name, v}
	HDR("If-None-Exist", e->if_none_exist);
	HDR("If-Match", e->if_match);
	HDR("If-None-Match", e->if_none_match);
	HDR("If-Modified-Since", e->if_modified_since);
	HDR("Prefer", b->prefer);
#undef HDR
	r.remote = b->remote ? b->remote : "internal";
	q.api = b->api;
	q.who = b->who;
	q.scope = b->scope; /* one scope for every entry: the rules read once */
	q.r = &r;
	q.w = &w;
	q.a = b->a;
	q.hdrs = hdrs;
	q.nhdrs = nh;
	api_dispatch(&q);
	return response_of(b, &w, e->method != BM_HEAD);
}

/* Moves the locations in a batch entry's outcome (Patient.birthDate) under
 * the entry (Bundle.entry[1].resource.birthDate), as a transaction has them. */
static void
relocate_outcome(struct bctx *b, const struct bentry *e, json_t *entry)
{
	json_t *issues, *is, *exprs, *x;
	const char *type, *s;
	size_t i, j, tl;

	type = json_string_value(json_object_get(e->res, "resourceType"));
	issues = json_object_get(json_object_get(json_object_get(entry, "response"),
						 "outcome"), "issue");
	if (!type || !issues)
		return;
	tl = strlen(type);
	json_array_foreach(issues, i, is) {
		exprs = json_object_get(is, "expression");
		json_array_foreach(exprs, j, x) {
			s = json_string_value(x);
			if (s && !strncmp(s, type, tl) && (s[tl] == '.' || s[tl] == '[' || !s[tl]))
				json_array_set_new(exprs, j,
					json_sprintf("%s.resource%s", e->loc, s + tl));
		}
	}
}

/* ---- responses ----------------------------------------------------------- */

/* The parts joined as a JSON string, without printf: a transaction's
 * response says three such per entry. NULL when over 1 KiB (never: base,
 * type, id and version) or out of memory. */
static json_t *
joined(const char *const *parts, size_t n)
{
	char buf[1024];
	size_t len = 0, k;

	for (size_t i = 0; i < n; i++) {
		k = strlen(parts[i]);
		if (len + k > sizeof(buf))
			return NULL;
		memcpy(buf + len, parts[i], k);
		len += k;
	}
	return json_stringn(buf, len);
}

static json_t *
write_response(struct bctx *b, const struct bentry *e)
{
	const struct api_op *op = &e->op;
	json_t *entry, *resp, *res;
	char when[32];

	resp = json_pack("{s:s}", "status", api_status_text(b->a, op->status));
	entry = json_object();
	if (!resp || !entry) {
		json_decref(resp);
		json_decref(entry);
		return NULL;
	}
	if (op->id)
		json_object_set_new(entry, "fullUrl", joined((const char *[]){
			b->api->base, "/", op->rt->name, "/", op->id}, 5));
	if (op->has_out && op->kind != OP_DELETE) {
		char v[24];

		snprintf(v, sizeof(v), "%ld", op->out.version);
		json_object_set_new(resp, "location", joined((const char *[]){
			op->rt->name, "/", op->out.id, "/_history/", v}, 5));
		json_object_set_new(resp, "etag", joined((const char *[]){"W/\"", v, "\""}, 3));
		time_format_instant(op->out.last_updated, when);
		json_object_set_new(resp, "lastModified", json_string(when));
		if (b->ret == BRET_REPR) {
			fhir_parse_json(op->out.json.p, op->out.json.n, &res, NULL);
			if (res)
				json_object_set_new(entry, "resource", res);
		}
	}
	if (b->ret == BRET_OUTCOME)
		json_object_set_new(resp, "outcome",
				    json_pack("{s:s,s:[{s:s,s:s}]}", "resourceType",
					      "OperationOutcome", "issue", "severity",
					      "information", "code", "informational"));
	json_object_set_new(entry, "response", resp);
	return entry;
}

static enum cw_err
finish(struct bctx *b, const char *type, json_t **out)
{
	json_t *bundle, *entries = json_array();
	char id[ID_LEN + 1], now[32];
	size_t i;

	if (!entries)
		return CW_ENOMEM;
	for (i = 0; i < b->n; i++) {
		if (!b->e[i].response ||
		    json_array_append_new(entries, b->e[i].response)) {
			for (; i < b->n; i++)
				json_decref(b->e[i].response);
			json_decref(entries);
			return CW_ENOMEM;
		}
		b->e[i].response = NULL;
	}
	id_new(id);
	time_format_instant(time_now_ms(), now);
	bundle = json_pack("{s:s,s:s,s:{s:s},s:s,s:o}", "resourceType", "Bundle",
			   "id", id, "meta", "lastUpdated", now, "type", type,
			   "entry", entries);
	if (!bundle)
		return CW_ENOMEM;
	*out = bundle;
	return CW_OK;
}

static void
drop_responses(struct bctx *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		json_decref(b->e[i].response);
		b->e[i].response = NULL;
	}
}

/* ---- transaction and batch ------------------------------------------------ */

/* The transaction-response, from what the entries did. */
static enum cw_err
tx_answer(struct bctx *b, json_t **out)
{
	for (size_t i = 0; i < b->n; i++) {
		struct bentry *e = &b->e[i];

		if (e->method == BM_GET || e->method == BM_HEAD)
			e->response = run_internal(b, e);
		else
			e->response = write_response(b, e);
		if (!e->response) {
			drop_responses(b);
			return CW_ENOMEM;
		}
	}
	return finish(b, "transaction-response", out);
}

/* The answer made while the commit syncs (store_write_ready), for a
 * transaction with no reads: those must see the commit. */
static void
tx_ready(void *ctx)
{
	struct bctx *b = ctx;

	b->answer_err = tx_answer(b, &b->answer);
	b->answered = true;
}

static enum cw_err
run_transaction(struct bctx *b, json_t *entries, json_t **out)
{
	enum cw_err err, first = CW_OK;
	size_t i, ncreate = 0;
	bool reads = false;

	/* a big Bundle's creates are checked beside the writer (struct pipe) */
	for (i = 0; i < b->n; i++) {
		json_t *entry = json_array_get(entries, i);

		ncreate += json_object_get(entry, "resource") &&
			   !strcmp(json_string_value(json_object_get(
				   json_object_get(entry, "request"), "method")) ?: "", "POST");
	}
	b->check_later = ncreate >= PIPE_MIN;
	for (i = 0; i < b->n; i++) {
		b->e[i].i = i;
		err = entry_parse(b, &b->e[i], json_array_get(entries, i), b->d);
		if (!err)
			err = tx_prep(b, &b->e[i]);
		if (err == CW_ENOMEM)
			return err;
		first = worse(first, err);
	}
	if (first)
		/* every problem is reported, the creates' content too */
		first = worse(first, check_now(b));
	if (first) {
		diag_log(b->d, "transaction refused before writing: %s",
			 cw_strerror(first));
		return first;
	}
	for (i = 0; i < b->n; i++)
		reads |= b->e[i].method == BM_GET || b->e[i].method == BM_HEAD;
	err = store_write_ready(b->api->store, tx_cb, reads ? NULL : tx_ready, b);
	/* committed with its record, or rolled back with it */
	b->audited = err == CW_OK;
	if (err) {
		json_decref(b->answer);
		if (!diag_has_errors(b->d))
			diag_err(b->d, err, api_issue_code(err), NULL,
				 "The transaction failed: %s", cw_strerror(err));
		diag_log(b->d, "transaction of %zu entries rolled back: %s", b->n,
			 cw_strerror(err));
		return err;
	}
	if (b->answered) {
		*out = b->answer;
		return b->answer_err;
	}
	return tx_answer(b, out);
}

static enum cw_err
run_batch(struct bctx *b, json_t *entries, json_t **out)
{
	struct diag sub;
	json_t *oo;
	size_t i;
	enum cw_err err;

	for (i = 0; i < b->n; i++) {
		struct bentry *e = &b->e[i];

		e->i = i;
		diag_init(&sub, b->a);
		err = entry_parse(b, e, json_array_get(entries, i), &sub);
		if (!err && e->method == BM_POST && !e->url[0])
			err = diag_err(&sub, CW_EINVAL, "not-supported", e->loc,
				       "Bundles do not nest");
		if (err) {
			oo = fhir_outcome(&sub);
			e->response = json_pack("{s:{s:s,s:o*}}", "response",
						"status",
						api_status_text(b->a, api_status_of(err)),
						"outcome", oo);
		} else {
			e->response = run_internal(b, e);
			if (e->response && e->res)
				relocate_outcome(b, e, e->response);
		}
		if (!e->response) {
			drop_responses(b);
			return CW_ENOMEM;
		}
	}
	b->audited = true;
	return finish(b, "batch-response", out);
}

static enum cw_err
bundle_run(struct api *api, struct arena *a, json_t *bundle,
	   const struct api_bundle_opt *opt, enum bret ret, const char *prefer,
	   const struct access_who *who, const char *remote, bool *audited,
	   json_t **blocked, json_t **out, struct diag *d)
{
	struct bctx b = {.api = api, .a = a, .d = d, .ret = ret, .prefer = prefer,
			 .who = who, .remote = remote};
	const char *rtype, *type;
	json_t *entries;
	enum cw_err err;

	*out = NULL;
	if (who) {
		b.scope = access_scope_new(api->access, api->store, a, who);
		if (!b.scope)
			return CW_ENOMEM;
	}
	b.lenient_refs = opt && opt->lenient_refs;
	b.opt = opt;
	if (!who && opt && opt->remote)
		b.remote = opt->remote;
	rtype = json_string_value(json_object_get(bundle, "resourceType"));
	if (!json_is_object(bundle) || !rtype || strcmp(rtype, "Bundle"))
		return diag_err(d, CW_EINVAL, "invalid", "resourceType",
				"POST to the base takes a batch or transaction Bundle");
	type = json_string_value(json_object_get(bundle, "type"));
	if (!type || (strcmp(type, "transaction") && strcmp(type, "batch")))
		return diag_err(d, CW_EINVAL, "value", "Bundle.type",
				"Bundle.type must be batch or transaction");
	entries = json_object_get(bundle, "entry");
	if (entries && !json_is_array(entries))
		return diag_err(d, CW_EINVAL, "structure", "Bundle.entry",
				"Bundle.entry must be an array");
	b.n = json_array_size(entries);
	if (b.n > API_BUNDLE_MAX_ENTRIES)
		return diag_err(d, CW_ETOOBIG, "too-costly", "Bundle.entry",
				"A Bundle may have at most %d entries",
				API_BUNDLE_MAX_ENTRIES);
	b.e = arena_zalloc(a, (b.n + 1) * sizeof(*b.e));
	if (!b.e)
		return CW_ENOMEM;
	if (!strcmp(type, "transaction"))
		err = run_transaction(&b, entries, out);
	else
		err = run_batch(&b, entries, out);
	if (audited)
		*audited = b.audited;
	/* the DetectedIssues that refused an entry, for the OperationOutcome */
	for (size_t i = 0; blocked && err == CW_ECONFLICT && i < b.n; i++) {
		json_t *v;
		size_t k;

		if (!b.e[i].op.blocked)
			continue;
		if (!*blocked && !(*blocked = api_json_own(a, json_array())))
			break;
		json_array_foreach(b.e[i].op.blocked, k, v)
			json_array_append(*blocked, v);
	}
	return err;
}

enum cw_err
api_bundle(struct api *api, struct arena *a, json_t *bundle,
	   const struct api_bundle_opt *opt, json_t **out, struct diag *d)
{
	return bundle_run(api, a, bundle, opt, BRET_DEFAULT, NULL, NULL, NULL,
			  NULL, NULL, out, d);
}

enum cw_err
api_h_bundle(struct api_req *q)
{
	struct api_bundle_opt opt = {.lenient_refs = false};
	const char *prefer = api_header(q, "Prefer");
	enum bret ret = BRET_DEFAULT;
	json_t *bundle = NULL, *out = NULL;
	enum cw_err err;

	if (q->internal)
		return diag_err(&q->d, CW_EINVAL, "not-supported", NULL,
				"Bundles do not nest");
	err = api_check_body_type(q, false);
	if (err)
		return err;
	if (!q->r->body_len)
		return diag_err(&q->d, CW_EINVAL, "required", NULL,
				"The request has no body");
	err = fhir_parse_json(q->r->body, q->r->body_len, &bundle, &q->d);
	if (err)
		return err;
	if (!api_json_own_done(q->a, bundle))
		return CW_ENOMEM;
	if (!strcmp(json_string_value(json_object_get(bundle, "type")) ?: "",
		    "batch"))
		q->interaction = "batch";
	if (prefer && strstr(prefer, "return=representation"))
		ret = BRET_REPR;
	else if (prefer && strstr(prefer, "return=minimal"))
		ret = BRET_MINIMAL;
	else if (prefer && strstr(prefer, "return=OperationOutcome"))
		ret = BRET_OUTCOME;
	err = bundle_run(q->api, q->a, bundle, &opt, ret, prefer, q->who,
			 q->r->remote, &q->audited, &q->outcome_contained, &out,
			 &q->d);
	if (err)
		return err;
	if (!api_json_own_done(q->a, out))
		return CW_ENOMEM;
	return api_reply_json(q, 200, out);
}
