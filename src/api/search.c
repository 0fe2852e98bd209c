/* api/search.c: search, history and $everything, and the paged Bundle
 * they share.
 *
 * A page is written straight into one sbuf: the Bundle's own fields, the
 * links, then each entry with the stored JSON text pasted in as it is, so a
 * page of 1000 resources costs 1000 copies and no parse. Only _elements and
 * _summary (which change a resource) make us parse and re-encode, and only
 * the matches.
 *
 * Links are absolute and carry the request's parameters (minus those a
 * lenient search ignored, minus _cursor) plus _cursor=<the store's opaque
 * page token>, percent-encoded; the store pages by keyset, so the 10,000th
 * page costs what the first does.
 *
 * A compartment search (GET Patient/123/Observation?code=x) is a search of
 * Observation with the store told the compartment (fhir_query's
 * compartment_patient); its links keep the compartment path. Only the
 * Patient compartment is served. */
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

struct page_spec {
	const char *btype;              /* "searchset" or "history" */
	const char *path;               /* after the base: "Patient/_history" */
	const struct fhir_kv *kv;       /* parameters carried in the links */
	size_t nkv;
	const char *cursor;             /* this page's cursor, or NULL */
	const struct store_page *page;
	const struct fhir_query *subset; /* _elements/_summary for matches */
	bool history;
	bool count_only;
	struct access_scope *scope;     /* entries the caller may not see are
					   withheld; NULL: local, all */
};

static void
add_link(struct sbuf *sb, struct api *api, const struct page_spec *ps,
	 const char *rel, const char *cursor, bool *first)
{
	size_t i;
	bool amp = false;

	sbuf_adds(sb, *first ? "{\"relation\":\"" : ",{\"relation\":\"");
	*first = false;
	sbuf_adds(sb, rel);
	sbuf_adds(sb, "\",\"url\":\"");
	sbuf_add_json_str(sb, api->base, api->base_len);
	sbuf_addch(sb, '/');
	sbuf_add_json_str(sb, ps->path, strlen(ps->path));
	for (i = 0; i < ps->nkv; i++) {
		struct sbuf enc = SBUF_INIT(1 << 20);

		sbuf_addch(sb, amp ? '&' : '?');
		amp = true;
		api_url_encode(&enc, ps->kv[i].key);
		sbuf_addch(&enc, '=');
		api_url_encode(&enc, ps->kv[i].value);
		sbuf_add_json_str(sb, enc.buf, enc.len);
		sbuf_release(&enc);
	}
	if (cursor) {
		struct sbuf enc = SBUF_INIT(1 << 20);

		sbuf_adds(sb, amp ? "&_cursor=" : "?_cursor=");
		api_url_encode(&enc, cursor);
		sbuf_add_json_str(sb, enc.buf, enc.len);
		sbuf_release(&enc);
	}
	sbuf_adds(sb, "\"}");
}

static void
add_full_url(struct sbuf *sb, struct api *api, const struct store_res *r)
{
	sbuf_adds(sb, "{\"fullUrl\":\"");
	sbuf_add_json_str(sb, api->base, api->base_len);
	sbuf_addch(sb, '/');
	sbuf_adds(sb, r->type);
	sbuf_addch(sb, '/');
	sbuf_add_json_str(sb, r->id, strlen(r->id));
	sbuf_addch(sb, '"');
}

static enum cw_err
add_resource(struct sbuf *sb, struct arena *a, const struct store_res *r,
	     const struct fhir_query *subset, struct diag *d)
{
	json_t *full, *sub;
	char *text;

	sbuf_adds(sb, ",\"resource\":");
	if (!subset)
		return sbuf_add(sb, r->json.p, r->json.n);
	fhir_parse_json(r->json.p, r->json.n, &full, NULL);
	if (!full)
		return diag_err(d, CW_EINTERNAL, "exception", NULL,
				"A stored resource could not be read");
	sub = fhir_subset(full, subset);
	json_decref(full);
	text = sub ? fhir_dump(sub, NULL) : NULL;
	json_decref(sub);
	if (!text)
		return CW_ENOMEM;
	sbuf_adds(sb, text);
	free(text);
	return CW_OK;
}

static void
add_history_parts(struct sbuf *sb, struct arena *a, const struct store_res *r)
{
	char when[32];
	const char *method = r->deleted ? "DELETE" : r->version == 1 ? "POST" : "PUT";
	int status = r->deleted ? 204 : r->version == 1 ? 201 : 200;

	sbuf_adds(sb, ",\"request\":{\"method\":\"");
	sbuf_adds(sb, method);
	sbuf_adds(sb, "\",\"url\":\"");
	sbuf_adds(sb, r->type);
	if (r->version != 1 || r->deleted) {
		sbuf_addch(sb, '/');
		sbuf_add_json_str(sb, r->id, strlen(r->id));
	}
	time_format_instant(r->last_updated, when);
	sbuf_addf(sb, "\"},\"response\":{\"status\":\"%s\",\"etag\":\"W/\\\"%ld\\\"\","
		  "\"lastModified\":\"%s\"}",
		  api_status_text(a, status), r->version, when);
}

static enum cw_err
write_page(struct api_req *q, const struct page_spec *ps)
{
	struct sbuf sb = SBUF_INIT(API_RESP_MAX);
	const struct store_page *pg = ps->page;
	char id[ID_LEN + 1], now[32];
	bool first = true, any = false, *keep;
	size_t i, withheld = 0;
	char *text;
	size_t len;
	enum cw_err err = CW_OK;

	/* Which entries the caller may see, decided before anything is
	 * written: access/ looks at each one's patients, type and labels. */
	keep = arena_alloc(q->a, pg->n + pg->nincluded + 1);
	if (!keep)
		return CW_ENOMEM;
	for (i = 0; i < pg->n + pg->nincluded && !err; i++) {
		const struct store_res *r = i < pg->n ? &pg->res[i] :
					    &pg->included[i - pg->n];

		keep[i] = true;
		if (ps->scope && !access_scope_all(ps->scope))
			err = access_may_read_text(ps->scope, r->type, r->json.p,
						   r->json.n, &keep[i]);
		withheld += !keep[i];
	}
	if (err)
		return err;
	id_new(id);
	time_format_instant(time_now_ms(), now);
	sbuf_addf(&sb, "{\"resourceType\":\"Bundle\",\"id\":\"%s\",\"meta\":"
		  "{\"lastUpdated\":\"%s\"},\"type\":\"%s\"", id, now, ps->btype);
	if (pg->total >= 0)
		sbuf_addf(&sb, ",\"total\":%ld", pg->total);
	else if (!ps->history && !ps->cursor && !pg->next && !pg->prev) {
		/* Everything fits on this first page: the total costs nothing. */
		size_t kept = 0;

		for (i = 0; i < pg->n; i++)
			kept += keep[i];
		sbuf_addf(&sb, ",\"total\":%zu", kept);
	}
	sbuf_adds(&sb, ",\"link\":[");
	add_link(&sb, q->api, ps, "self", ps->cursor, &first);
	if (!ps->count_only && pg->next)
		add_link(&sb, q->api, ps, "next", pg->next, &first);
	if (!ps->count_only && pg->prev)
		add_link(&sb, q->api, ps, "previous", pg->prev, &first);
	sbuf_addch(&sb, ']');
	if (!ps->count_only && (pg->n + pg->nincluded > withheld ||
				(withheld && !ps->history))) {
		sbuf_adds(&sb, ",\"entry\":[");
		for (i = 0; i < pg->n && !err; i++) {
			const struct store_res *r = &pg->res[i];

			if (!keep[i])
				continue;
			if (any)
				sbuf_addch(&sb, ',');
			any = true;
			add_full_url(&sb, q->api, r);
			if (!r->deleted && r->json.n)
				err = add_resource(&sb, q->a, r, ps->subset, &q->d);
			if (ps->history)
				add_history_parts(&sb, q->a, r);
			else
				sbuf_adds(&sb, ",\"search\":{\"mode\":\"match\"}");
			sbuf_addch(&sb, '}');
		}
		for (i = 0; i < pg->nincluded && !err; i++) {
			if (!keep[pg->n + i])
				continue;
			if (any)
				sbuf_addch(&sb, ',');
			any = true;
			add_full_url(&sb, q->api, &pg->included[i]);
			err = add_resource(&sb, q->a, &pg->included[i], NULL, &q->d);
			sbuf_adds(&sb, ",\"search\":{\"mode\":\"include\"}}");
		}
		/* Says that something was withheld, never what or how much. */
		if (withheld && !ps->history)
			sbuf_adds(&sb, any ? "," : "");
		if (withheld && !ps->history)
			sbuf_adds(&sb, "{\"resource\":{\"resourceType\":\"OperationOutcome\","
				  "\"issue\":[{\"severity\":\"information\",\"code\":\"suppressed\","
				  "\"diagnostics\":\"Some entries were withheld: the patient's "
				  "consent or the data's sensitivity does not let you see them\"}]},"
				  "\"search\":{\"mode\":\"outcome\"}}");
		sbuf_addch(&sb, ']');
	}
	sbuf_addch(&sb, '}');
	if (!err && sb.toobig)
		err = diag_err(&q->d, CW_ETOOBIG, "too-costly", NULL,
			       "The page is too large; ask for a smaller _count");
	if (err) {
		sbuf_release(&sb);
		return err;
	}
	text = api_free_own(q->a, sbuf_detach(&sb, &len));
	if (!text)
		return CW_ENOMEM;
	api_reply(q, 200, text, len);
	/* what the page showed, for the audit record (trail.c) */
	if (pg->nincluded) {
		struct store_res *all = arena_alloc(q->a, (pg->n + pg->nincluded) *
							  sizeof(*all));

		if (!all)
			return CW_ENOMEM;
		if (pg->n)
			memcpy(all, pg->res, pg->n * sizeof(*all));
		memcpy(all + pg->n, pg->included, pg->nincluded * sizeof(*all));
		q->seen = all;
	} else {
		q->seen = pg->res;
	}
	q->nseen = ps->count_only ? 0 : pg->n + pg->nincluded;
	return CW_OK;
}

/* ---- search ---------------------------------------------------------------- */

static bool
was_ignored(const struct fhir_query *fq, const char *key)
{
	size_t i, n = strcspn(key, ":.");

	for (i = 0; i < fq->nignored; i++) {
		if (!strcmp(fq->ignored[i], key))
			return true;
		if (strlen(fq->ignored[i]) == n && !strncmp(fq->ignored[i], key, n))
			return true;
	}
	return false;
}

/* Searches q->rt with kv; pid (or NULL) restricts it to that patient's
 * compartment. */
static enum cw_err
run_search(struct api_req *q, const struct fhir_kv *kv, size_t nkv,
	   const char *pid)
{
	struct fhir_query fq;
	struct store_page page;
	struct page_spec ps = {.btype = "searchset"};
	struct fhir_kv *keep, *all;
	const char *by_key, *by_value;
	bool by_ref;
	size_t i, nkeep = 0;
	enum cw_err err;

	ps.scope = api_scope(q);
	if (q->who && !ps.scope)
		return CW_ENOMEM;
	/* A role that reaches resources by reference, not by patient, has
	 * that reference added to the query (not to the links). */
	by_ref = access_search_by_ref(ps.scope, q->rt, &by_key, &by_value);
	all = arena_alloc(q->a, (nkv + 1) * sizeof(*all));
	if (!all)
		return CW_ENOMEM;
	if (nkv)
		memcpy(all, kv, nkv * sizeof(*kv));
	all[nkv] = (struct fhir_kv){by_ref ? by_key : NULL, by_ref ? by_value : NULL};
	memset(&fq, 0, sizeof(fq));
	err = fhir_query_parse(q->a, q->rt, all, nkv + by_ref, q->strict, &fq,
			       &q->d);
	if (err)
		return err;
	fq.compartment_patient = pid;
	err = by_ref && !pid ? CW_OK : api_restrict_query(ps.scope, &fq);
	if (err)
		return err;
	memset(&page, 0, sizeof(page));
	err = store_search(q->api->store, q->a, &fq, &page, &q->d);
	if (err)
		return err;
	keep = arena_alloc(q->a, (nkv + 1) * sizeof(*keep));
	if (!keep)
		return CW_ENOMEM;
	for (i = 0; i < nkv; i++) {
		if (!strcmp(kv[i].key, "_cursor") || was_ignored(&fq, kv[i].key))
			continue;
		keep[nkeep] = kv[i];
		/* The links say the page size actually used (_count is capped). */
		if (!strcmp(kv[i].key, "_count") && fq.summary != SUMMARY_COUNT)
			keep[nkeep].value = arena_printf(q->a, "%u", fq.count);
		if (!keep[nkeep].value)
			return CW_ENOMEM;
		nkeep++;
	}
	ps.path = pid ? arena_printf(q->a, "Patient/%s/%s", pid, q->rt->name) :
		  q->rt->name;
	if (!ps.path)
		return CW_ENOMEM;
	ps.kv = keep;
	ps.nkv = nkeep;
	ps.cursor = fq.cursor;
	ps.page = &page;
	ps.count_only = fq.summary == SUMMARY_COUNT;
	if (fq.nelements || fq.summary == SUMMARY_TRUE ||
	    fq.summary == SUMMARY_TEXT || fq.summary == SUMMARY_DATA)
		ps.subset = &fq;
	return write_page(q, &ps);
}

static struct fhir_kv *
query_kv(struct api_req *q, size_t extra)
{
	struct fhir_kv *kv = arena_alloc(q->a, (q->r->nquery + extra + 1) * sizeof(*kv));
	size_t i;

	if (!kv)
		return NULL;
	for (i = 0; i < q->r->nquery; i++) {
		kv[i].key = q->r->query[i].key;
		kv[i].value = q->r->query[i].value;
	}
	return kv;
}

enum cw_err
api_h_search(struct api_req *q)
{
	struct fhir_kv *kv = query_kv(q, 0);

	if (!kv)
		return CW_ENOMEM;
	return run_search(q, kv, q->r->nquery, NULL);
}

/* POST .../_search: the query string and the form body together. */
static enum cw_err
search_post(struct api_req *q, const char *pid)
{
	struct fhir_kv *form = NULL, *kv;
	size_t nform = 0;
	enum cw_err err;

	if (q->r->body_len) {
		err = api_check_body_type(q, true);
		if (err)
			return err;
		err = fhir_form_split(q->a, q->r->body, q->r->body_len, &form, &nform);
		if (err)
			return err;
	}
	kv = query_kv(q, nform);
	if (!kv)
		return CW_ENOMEM;
	if (nform)
		memcpy(kv + q->r->nquery, form, nform * sizeof(*kv));
	return run_search(q, kv, q->r->nquery + nform, pid);
}

enum cw_err
api_h_search_post(struct api_req *q)
{
	return search_post(q, NULL);
}

/* ---- compartment search ---------------------------------------------------- */

/* The other compartments FHIR R4 defines: asked for, they are "not
 * supported" (400) rather than "no such thing" (404). */
static const char *const other_compartments[] = {
	"Encounter", "RelatedPerson", "Practitioner", "Device",
};

/* A patient the caller may not read is, to them, one that does not exist
 * (404 either way, so the answer does not tell them apart). */
enum cw_err
api_patient_reachable(struct api_req *q)
{
	struct access_scope *sc = api_scope(q);
	struct access_grant g;
	enum cw_err err;

	if (!q->who)
		return CW_OK;
	if (!sc)
		return CW_ENOMEM;
	err = access_patient_scope(sc, q->id, &g);
	if (err)
		return err;
	if (!g.read)
		return diag_err(&q->d, CW_ENOTFOUND, "not-found", NULL,
				"Patient/%s is not known", q->id);
	return CW_OK;
}

/* Checks a compartment search before it runs: the Patient compartment,
 * a type that can be in it, a patient that exists. */
static enum cw_err
check_compartment(struct api_req *q)
{
	struct store_res pat;
	enum cw_err err;
	size_t i;

	if (strcmp(q->comp, "Patient")) {
		for (i = 0; i < sizeof(other_compartments) / sizeof(other_compartments[0]); i++)
			if (!strcmp(q->comp, other_compartments[i]))
				return diag_err(&q->d, CW_EINVAL, "not-supported", NULL,
						"Only the Patient compartment is supported");
		return diag_err(&q->d, CW_ENOTFOUND, "not-supported", NULL,
				"'%.64s' is not a compartment", q->comp);
	}
	if (q->rt->ncompartment == 0 && strcmp(q->rt->name, "Patient"))
		return diag_err(&q->d, CW_EINVAL, "not-supported", NULL,
				"%s resources are not in the Patient compartment",
				q->rt->name);
	err = api_patient_reachable(q);
	if (err)
		return err;
	err = store_read(q->api->store, q->a, "Patient", q->id, &pat);
	if (err == CW_ENOTFOUND)
		return diag_err(&q->d, err, "not-found", NULL,
				"Patient/%s is not known", q->id);
	if (err == CW_EGONE)
		return diag_err(&q->d, err, "deleted", NULL,
				"Patient/%s is deleted", q->id);
	return err;
}

enum cw_err
api_h_compartment(struct api_req *q)
{
	struct fhir_kv *kv;
	enum cw_err err = check_compartment(q);

	if (err)
		return err;
	kv = query_kv(q, 0);
	if (!kv)
		return CW_ENOMEM;
	return run_search(q, kv, q->r->nquery, q->id);
}

enum cw_err
api_h_compartment_post(struct api_req *q)
{
	enum cw_err err = check_compartment(q);

	if (err)
		return err;
	return search_post(q, q->id);
}

/* ---- history and $everything ----------------------------------------------- */

static enum cw_err
parse_count(struct api_req *q, const char *v, unsigned *out)
{
	char *end;
	long n = strtol(v, &end, 10);

	if (!*v || *end || n < 0 || v[0] == '-' || v[0] == '+')
		return diag_err(&q->d, CW_EINVAL, "value", "_count",
				"_count must be a non-negative integer");
	*out = n > FHIR_COUNT_MAX ? FHIR_COUNT_MAX : (unsigned)n;
	return CW_OK;
}

static enum cw_err
parse_time(struct api_req *q, const char *key, const char *v, bool hi,
	   int64_t *out)
{
	struct time_range tr;

	if (time_parse(v, strlen(v), TIME_SEARCH, &tr))
		return diag_err(&q->d, CW_EINVAL, "value", key,
				"%s must be an instant (2024-01-31T10:00:00Z)", key);
	*out = hi ? tr.hi : tr.lo;
	return CW_OK;
}

enum cw_err
api_h_history(struct api_req *q)
{
	struct store_hist_opt ho = {.count = FHIR_COUNT_DEFAULT};
	struct store_page page;
	struct page_spec ps = {.btype = "history", .history = true};
	struct fhir_kv *keep;
	size_t i, nkeep = 0;
	const char *k, *v;
	enum cw_err err = CW_OK;

	keep = arena_alloc(q->a, (q->r->nquery + 1) * sizeof(*keep));
	if (!keep)
		return CW_ENOMEM;
	for (i = 0; i < q->r->nquery && !err; i++) {
		k = q->r->query[i].key;
		v = q->r->query[i].value;
		if (!strcmp(k, "_since"))
			err = parse_time(q, k, v, false, &ho.since);
		else if (!strcmp(k, "_at"))
			err = parse_time(q, k, v, true, &ho.at);
		else if (!strcmp(k, "_count"))
			err = parse_count(q, v, &ho.count);
		else if (!strcmp(k, "_cursor")) {
			ho.cursor = v;
			continue;
		} else if (!strcmp(k, "_format") || !strcmp(k, "_pretty"))
			;
		else if (q->strict)
			err = diag_err(&q->d, CW_EINVAL, "not-supported", k,
				       "Unknown history parameter");
		else
			continue;
		keep[nkeep++] = (struct fhir_kv){k, v};
	}
	if (err)
		return err;
	ps.scope = api_scope(q);
	if (q->who && !ps.scope)
		return CW_ENOMEM;
	if (q->id && !access_scope_all(ps.scope)) {
		/* Instance history of something hidden is "not known". */
		struct store_res cur;
		bool ok = false;

		err = store_read(q->api->store, q->a, q->rt->name, q->id, &cur);
		if (!err)
			err = access_may_read_text(ps.scope, cur.type, cur.json.p,
						   cur.json.n, &ok);
		else if (err == CW_ENOTFOUND || err == CW_EGONE)
			err = CW_OK;
		if (err)
			return err;
		if (!ok)
			return diag_err(&q->d, CW_ENOTFOUND, "not-found", NULL,
					"%s/%s is not known", q->rt->name, q->id);
	}
	memset(&page, 0, sizeof(page));
	err = store_history(q->api->store, q->a, q->rt ? q->rt->name : NULL,
			    q->id, &ho, &page, &q->d);
	if (err == CW_ENOTFOUND && !diag_has_errors(&q->d))
		return diag_err(&q->d, err, "not-found", NULL, "%s/%s is not known",
				q->rt ? q->rt->name : "?", q->id ? q->id : "?");
	if (err)
		return err;
	ps.path = !q->rt ? "_history" :
		  !q->id ? arena_printf(q->a, "%s/_history", q->rt->name) :
		  arena_printf(q->a, "%s/%s/_history", q->rt->name, q->id);
	ps.kv = keep;
	ps.nkv = nkeep;
	ps.cursor = ho.cursor;
	ps.page = &page;
	return write_page(q, &ps);
}

enum cw_err
api_h_everything(struct api_req *q)
{
	struct store_page page;
	struct page_spec ps = {.btype = "searchset"};
	struct fhir_kv *keep;
	const char **types;
	size_t i, ntypes = 0, maxtypes = 0, nkeep = 0, n;
	const char *k, *v, *cursor = NULL;
	unsigned count = FHIR_COUNT_DEFAULT;
	int64_t since = 0;
	enum cw_err err = CW_OK;

	if (strcmp(q->rt->name, "Patient"))
		return diag_err(&q->d, CW_ENOTFOUND, "not-supported", NULL,
				"$everything is served for Patient only");
	for (i = 0; i < q->r->nquery; i++)
		if (!strcmp(q->r->query[i].key, "_type"))
			maxtypes += fhir_restype_count();
	types = arena_alloc(q->a, (maxtypes + 1) * sizeof(*types));
	keep = arena_alloc(q->a, (q->r->nquery + 1) * sizeof(*keep));
	if (!types || !keep)
		return CW_ENOMEM;
	for (i = 0; i < q->r->nquery && !err; i++) {
		k = q->r->query[i].key;
		v = q->r->query[i].value;
		if (!strcmp(k, "_since")) {
			err = parse_time(q, k, v, false, &since);
		} else if (!strcmp(k, "_count")) {
			err = parse_count(q, v, &count);
		} else if (!strcmp(k, "_cursor")) {
			cursor = v;
			continue;
		} else if (!strcmp(k, "_type")) {
			for (; *v && !err; v += n + (v[n] == ',')) {
				const struct fhir_restype *rt;

				n = strcspn(v, ",");
				rt = fhir_restype_findn(v, n);
				if (!rt && n)
					err = diag_err(&q->d, CW_EINVAL, "not-supported",
						       "_type", "Resource type '%.*s' is not supported",
						       (int)(n < 64 ? n : 64), v);
				else if (rt && ntypes < maxtypes)
					types[ntypes++] = rt->name;
			}
		} else if (!strcmp(k, "_format") || !strcmp(k, "_pretty")) {
			;
		} else if (q->strict) {
			err = diag_err(&q->d, CW_EINVAL, "not-supported", k,
				       "Unknown $everything parameter");
		} else {
			continue;
		}
		keep[nkeep++] = (struct fhir_kv){k, q->r->query[i].value};
	}
	if (err)
		return err;
	err = api_patient_reachable(q);
	if (err)
		return err;
	ps.scope = q->scope;
	memset(&page, 0, sizeof(page));
	err = store_everything(q->api->store, q->a, q->id, types, ntypes, since,
			       count, cursor, &page, &q->d);
	if (err == CW_ENOTFOUND && !diag_has_errors(&q->d))
		return diag_err(&q->d, err, "not-found", NULL,
				"Patient/%s is not known", q->id);
	if (err)
		return err;
	ps.path = arena_printf(q->a, "Patient/%s/$everything", q->id);
	ps.kv = keep;
	ps.nkv = nkeep;
	ps.cursor = cursor;
	ps.page = &page;
	return write_page(q, &ps);
}
