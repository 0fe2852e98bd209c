/* api/api.c: the front door of the FHIR REST API.
 *
 * Owns the route table (read it top to bottom: the first pattern that
 * matches the path decides; a path that matches with another method is
 * 405), content negotiation (JSON only: XML asked for is 406, XML sent is
 * 415), the Prefer header, the one table from cw_err to HTTP status and
 * IssueType, and the per-request log line. Handlers live in rest.c,
 * search.c, bundle.c and capability.c (CDS Hooks, outside /fhir, in
 * cds.c); they return a cw_err and leave the
 * issues in q->d, and this file turns that into an OperationOutcome.
 *
 * The log line carries the method, the route pattern (never the path, which
 * holds ids, nor the query, which may hold names), the resource type, the
 * status and the duration. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/api_int.h"

/* ---- the cw_err table ---------------------------------------------------- */

static const struct {
	int status;
	const char *issue; /* FHIR IssueType */
} err_table[CW_ERR_COUNT] = {
	[CW_OK]           = {200, "informational"},
	[CW_EINVAL]       = {400, "invalid"},
	[CW_EINVALID]     = {422, "invalid"},
	[CW_ENOTFOUND]    = {404, "not-found"},
	[CW_EGONE]        = {410, "deleted"},
	[CW_ECONFLICT]    = {409, "conflict"},
	[CW_EPRECOND]     = {412, "conflict"},
	[CW_ETOOBIG]      = {413, "too-costly"},
	[CW_EUNAUTH]      = {401, "login"},
	[CW_EFORBIDDEN]   = {403, "forbidden"},
	[CW_ENOTALLOWED]  = {405, "not-supported"},
	[CW_EMEDIATYPE]   = {415, "not-supported"},
	[CW_EUNSUPPORTED] = {501, "not-supported"},
	[CW_EBUSY]        = {503, "transient"},
	[CW_ETIMEOUT]     = {503, "timeout"},
	[CW_ERATE]        = {429, "throttled"},
	[CW_ENOMEM]       = {500, "exception"},
	[CW_EIO]          = {500, "exception"},
	[CW_EINTERNAL]    = {500, "exception"},
};

int
api_status_of(enum cw_err err)
{
	if ((unsigned)err >= CW_ERR_COUNT || !err_table[err].status)
		return 500;
	return err_table[err].status;
}

const char *
api_issue_code(enum cw_err err)
{
	if ((unsigned)err >= CW_ERR_COUNT || !err_table[err].issue)
		return "exception";
	return err_table[err].issue;
}

/* The status line of each status careweave answers ("201 Created"),
 * written out: a transaction's response says one per entry. */
static const struct {
	int status;
	const char *line;
} reason_table[] = {
	{200, "200 OK"},
	{201, "201 Created"},
	{204, "204 No Content"},
	{304, "304 Not Modified"},
	{400, "400 Bad Request"},
	{401, "401 Unauthorized"},
	{403, "403 Forbidden"},
	{404, "404 Not Found"},
	{405, "405 Method Not Allowed"},
	{406, "406 Not Acceptable"},
	{409, "409 Conflict"},
	{410, "410 Gone"},
	{412, "412 Precondition Failed"},
	{413, "413 Payload Too Large"},
	{415, "415 Unsupported Media Type"},
	{422, "422 Unprocessable Entity"},
	{429, "429 Too Many Requests"},
	{500, "500 Internal Server Error"},
	{501, "501 Not Implemented"},
	{503, "503 Service Unavailable"},
};

const char *
api_status_text(struct arena *a, int status)
{
	size_t i;

	for (i = 0; i < sizeof(reason_table) / sizeof(reason_table[0]); i++)
		if (reason_table[i].status == status)
			return reason_table[i].line;
	return arena_printf(a, "%d", status);
}

/* ---- the route table ------------------------------------------------------ */

/* Patterns are the path after /fhir, segment by segment. {type}, {comp}
 * and {id} match a segment that does not start with '_' or '$'; {vid} any
 * segment. {type} must be a served type (else 404); {comp} is the
 * compartment's type in a compartment search (Patient/123/Observation),
 * checked by its handler. Routes that share a pattern are listed together. */
struct route {
	const char *method;
	const char *pattern;
	api_handler_fn fn;
	bool own_gate; /* the handler decides who may ask, not the type
			  (access_role_may_ask): a privacy officer ends
			  grants on a Patient they may not read */
};

static const struct route routes[] = {
	/* method    pattern                        handler          own_gate */
	{"GET",    "metadata",                    api_h_metadata, false},
	{"GET",    "$transitions-measures",       api_h_transitions_measures, false},
	{"POST",   "",                            api_h_bundle, false},
	{"GET",    "_history",                    api_h_history, false},
	/* AuditEvents are the audit trail, not stored resources: read from
	 * its table, never written through the API (any other method: 405) */
	{"GET",    "AuditEvent",                  api_h_audit_search, false},
	{"GET",    "AuditEvent/{id}",             api_h_audit_read, false},
	{"GET",    "{type}",                      api_h_search, false},
	{"POST",   "{type}",                      api_h_create, false},
	{"PUT",    "{type}",                      api_h_cond_update, false},
	{"DELETE", "{type}",                      api_h_cond_delete, false},
	{"GET",    "{type}/_history",             api_h_history, false},
	{"POST",   "{type}/_search",              api_h_search_post, false},
	{"POST",   "{type}/$check",               api_h_check, false},
	{"POST",   "{type}/$match",               api_h_match, false},
	{"GET",    "{type}/$worklist",            api_h_worklist, false},
	{"GET",    "{type}/{id}",                 api_h_read, false},
	{"PUT",    "{type}/{id}",                 api_h_update, false},
	{"PATCH",  "{type}/{id}",                 api_h_patch, false},
	{"DELETE", "{type}/{id}",                 api_h_delete, false},
	{"GET",    "{type}/{id}/_history",        api_h_history, false},
	{"GET",    "{type}/{id}/_history/{vid}",  api_h_vread, false},
	{"GET",    "{type}/{id}/$everything",     api_h_everything, false},
	{"POST",   "{type}/{id}/$everything",     api_h_everything, false},
	{"GET",    "{type}/{id}/$medication-list", api_h_medication_list, false},
	{"POST",   "{type}/{id}/$medication-list", api_h_medication_list, false},
	{"GET",    "{type}/{id}/$readmission-risk", api_h_readmission_risk, false},
	{"POST",   "{type}/{id}/$break-glass",    api_h_break_glass, false},
	{"POST",   "{type}/{id}/$break-glass-end", api_h_break_glass_end, true},
	{"GET",    "{comp}/{id}/{type}",          api_h_compartment, false},
	{"POST",   "{comp}/{id}/{type}/_search",  api_h_compartment_post, false},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))
#define MAX_SEGS 6

struct captures {
	const char *type, *comp, *id, *vid;
};

static bool
route_match(const char *pattern, char **seg, size_t nseg, struct captures *c)
{
	const char *p = pattern;
	size_t i = 0, len;

	memset(c, 0, sizeof(*c));
	while (*p) {
		len = strcspn(p, "/");
		if (i == nseg)
			return false;
		if (p[0] == '{') {
			if (seg[i][0] == '_' || seg[i][0] == '$') {
				if (strncmp(p, "{vid}", len))
					return false;
			}
			if (!strncmp(p, "{type}", len))
				c->type = seg[i];
			else if (!strncmp(p, "{comp}", len))
				c->comp = seg[i];
			else if (!strncmp(p, "{id}", len))
				c->id = seg[i];
			else
				c->vid = seg[i];
		} else if (strlen(seg[i]) != len || strncmp(p, seg[i], len)) {
			return false;
		}
		i++;
		p += len;
		if (*p == '/')
			p++;
	}
	return i == nseg;
}

/* Splits the path after /fhir into segments (arena copies). false if the
 * path is not under /fhir or has empty or too many segments. */
static bool
split_path(struct arena *a, const char *path, char **seg, size_t *nseg)
{
	char *s, *save = NULL, *t;
	size_t n = 0, len;

	if (strncmp(path, "/fhir", 5) || (path[5] && path[5] != '/'))
		return false;
	path += 5;
	if (*path == '/')
		path++;
	len = strlen(path);
	if (len && path[len - 1] == '/')
		len--;
	s = arena_strndup(a, path, len);
	if (!s)
		return false;
	if (strstr(s, "//") || s[0] == '/')
		return false;
	for (t = strtok_r(s, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
		if (n == MAX_SEGS)
			return false;
		seg[n++] = t;
	}
	*nseg = n;
	return true;
}

static enum cw_err
route(struct api_req *q)
{
	char *seg[MAX_SEGS];
	size_t nseg = 0, i;
	const char *method = q->r->method, *pat = NULL;
	struct captures c;
	struct sbuf allow = SBUF_INIT(256);
	enum cw_err err;

	if (!strcmp(method, "HEAD"))
		method = "GET";
	if (!split_path(q->a, q->r->path, seg, &nseg))
		return diag_err(&q->d, CW_ENOTFOUND, "not-found", NULL,
				"No such endpoint");
	for (i = 0; i < NROUTES; i++) {
		if (pat && strcmp(pat, routes[i].pattern))
			continue;
		if (!pat) {
			if (!route_match(routes[i].pattern, seg, nseg, &c))
				continue;
			pat = routes[i].pattern;
		}
		if (strcmp(routes[i].method, method))
			continue;
		q->route = pat;
		if (c.type) {
			q->rt = fhir_restype_find(c.type);
			if (!q->rt && c.comp && c.id && id_is_valid(c.id, strlen(c.id))) {
				/* Patient/X/Nope: the record names the patient probed */
				q->comp = c.comp;
				q->id = c.id;
			}
			if (!q->rt)
				return diag_err(&q->d, CW_ENOTFOUND, "not-supported",
						NULL, "Resource type '%s' is not supported",
						c.type);
		}
		if (c.id) {
			if (!id_is_valid(c.id, strlen(c.id)))
				return diag_err(&q->d, CW_EINVAL, "value", NULL,
						"'%s' is not a valid id", c.id);
			q->id = c.id;
		}
		q->vid = c.vid;
		q->comp = c.comp;
		if (!routes[i].own_gate && !access_role_may_ask(q->who, q->rt))
			return diag_err(&q->d, CW_EFORBIDDEN, "forbidden", NULL,
					"Your role does not see %s resources",
					q->rt->name);
		return routes[i].fn(q);
	}
	if (!pat)
		return diag_err(&q->d, CW_ENOTFOUND, "not-found", NULL,
				"No such endpoint");
	q->route = pat;
	/* what the refused request was aimed at, for its audit record */
	if (c.type)
		q->rt = fhir_restype_find(c.type);
	if (c.id && id_is_valid(c.id, strlen(c.id)))
		q->id = c.id;
	for (i = 0; i < NROUTES; i++) {
		if (strcmp(routes[i].pattern, pat))
			continue;
		if (allow.len)
			sbuf_adds(&allow, ", ");
		sbuf_adds(&allow, routes[i].method);
	}
	if (allow.len && !q->internal)
		http_resp_header(q->w, "Allow", arena_strdup(q->a, allow.buf));
	err = diag_err(&q->d, CW_ENOTALLOWED, "not-supported", NULL,
		       "Method %s is not allowed here (allowed: %s)",
		       !strcmp(q->r->method, "PATCH") ? "PATCH" :
		       strlen(q->r->method) < 10 ? q->r->method : "?",
		       allow.buf);
	sbuf_release(&allow);
	return err;
}

/* ---- headers, Prefer and content negotiation ------------------------------ */

const char *
api_str_at(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

const char *
api_header(const struct api_req *q, const char *name)
{
	size_t i;

	if (q->internal) {
		for (i = 0; i < q->nhdrs; i++)
			if (!strcasecmp(q->hdrs[i].key, name))
				return q->hdrs[i].value;
		return NULL;
	}
	if (!q->r->conn)
		return NULL;
	return http_req_header(q->r, name);
}

static void
parse_prefer(struct api_req *q)
{
	const char *h = api_header(q, "Prefer"), *p, *e;
	size_t n;

	q->ret = RET_REPRESENTATION;
	q->strict = false;
	if (!h)
		return;
	for (p = h; *p; p = e) {
		while (*p == ' ' || *p == ',' || *p == ';' || *p == '\t')
			p++;
		e = p + strcspn(p, ",; \t");
		n = (size_t)(e - p);
#define IS(lit) (n == sizeof(lit) - 1 && !strncasecmp(p, lit, n))
		if (IS("return=minimal"))
			q->ret = RET_MINIMAL;
		else if (IS("return=representation"))
			q->ret = RET_REPRESENTATION;
		else if (IS("return=OperationOutcome"))
			q->ret = RET_OUTCOME;
		else if (IS("handling=strict"))
			q->strict = true;
		else if (IS("handling=lenient"))
			q->strict = false;
#undef IS
	}
}

enum media { MEDIA_JSON, MEDIA_ANY, MEDIA_XML, MEDIA_FORM, MEDIA_OTHER };

static enum media
media_of(const char *s, size_t n)
{
	static const struct {
		const char *name;
		enum media m;
	} tab[] = {
		{"application/fhir+json", MEDIA_JSON},
		{"application/json", MEDIA_JSON},
		{"application/json+fhir", MEDIA_JSON},
		{"application/fhir json", MEDIA_JSON}, /* an unescaped '+' in _format */
		{"json", MEDIA_JSON},
		{"text/json", MEDIA_JSON},
		{"*/*", MEDIA_ANY},
		{"application/*", MEDIA_ANY},
		{"application/fhir+xml", MEDIA_XML},
		{"application/xml+fhir", MEDIA_XML},
		{"application/fhir xml", MEDIA_XML},
		{"application/xml", MEDIA_XML},
		{"text/xml", MEDIA_XML},
		{"xml", MEDIA_XML},
		{"application/x-www-form-urlencoded", MEDIA_FORM},
	};
	size_t i;

	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strlen(tab[i].name) == n && !strncasecmp(tab[i].name, s, n))
			return tab[i].m;
	return MEDIA_OTHER;
}

/* The media type of a header value without its parameters. */
static enum media
media_of_header(const char *h)
{
	return media_of(h, strcspn(h, ";"));
}

/* true when the response (always JSON) is acceptable: _format wins over
 * Accept; an Accept naming none of our types (or a wildcard) is refused. */
static bool
negotiate(struct api_req *q)
{
	const char *fmt = NULL, *acc, *p;
	size_t i, n;
	enum media m;

	for (i = 0; i < q->r->nquery; i++)
		if (!strcmp(q->r->query[i].key, "_format"))
			fmt = q->r->query[i].value;
	if (fmt) {
		m = media_of_header(fmt);
		return m == MEDIA_JSON || m == MEDIA_ANY;
	}
	acc = api_header(q, "Accept");
	if (!acc || !*acc)
		return true;
	for (p = acc; *p; p += n + (p[n] == ',')) {
		n = strcspn(p, ",");
		m = media_of(p, strcspn(p, ";") < n ? strcspn(p, ";") : n);
		if (m == MEDIA_JSON || m == MEDIA_ANY)
			return true;
	}
	/* text/html and friends from a browser without a wildcard: still
	 * refuse, the spec says 406 when we cannot honour Accept. */
	return false;
}

enum cw_err
api_check_body_type(struct api_req *q, bool form)
{
	const char *ct = api_header(q, "Content-Type");
	enum media m;

	if (!ct || !*ct)
		return CW_OK;
	m = media_of_header(ct);
	if (form ? m == MEDIA_FORM : m == MEDIA_JSON)
		return CW_OK;
	return diag_err(&q->d, CW_EMEDIATYPE, "not-supported", NULL,
			m == MEDIA_XML ? "XML is not supported; send application/fhir+json" :
			form ? "Send the search as application/x-www-form-urlencoded" :
			"Send the resource as application/fhir+json");
}

long
api_parse_etag(const char *s)
{
	char *end;
	long v;

	while (*s == ' ')
		s++;
	if (s[0] == 'W' && s[1] == '/')
		s += 2;
	if (*s == '"')
		s++;
	if (*s < '0' || *s > '9')
		return -1;
	v = strtol(s, &end, 10);
	if (*end == '"')
		end++;
	while (*end == ' ')
		end++;
	if (*end || v <= 0)
		return -1;
	return v;
}

/* ---- memory ---------------------------------------------------------------- */

static void
decref_cb(void *p)
{
	json_decref((json_t *)p);
}

/* Hangs v's decref on a with on (arena_on_free or arena_on_done). */
static json_t *
json_own_with(struct arena *a, json_t *v,
	      bool (*on)(struct arena *, void (*)(void *), void *))
{
	if (!v)
		return NULL;
	if (!on(a, decref_cb, v)) {
		json_decref(v);
		return NULL;
	}
	return v;
}

json_t *
api_json_own(struct arena *a, json_t *v)
{
	return json_own_with(a, v, arena_on_free);
}

json_t *
api_json_own_done(struct arena *a, json_t *v)
{
	return json_own_with(a, v, arena_on_done);
}

void *
api_free_own(struct arena *a, void *p)
{
	if (!p)
		return NULL;
	if (!arena_on_free(a, free, p)) {
		free(p);
		return NULL;
	}
	return p;
}

/* ---- forms and URLs -------------------------------------------------------- */

enum cw_err
api_url_encode(struct sbuf *sb, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	enum cw_err err = CW_OK;
	unsigned char c;

	for (; *s && !err; s++) {
		c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || strchr("-._~:/,", c)) {
			err = sbuf_addch(sb, (char)c);
		} else {
			err = sbuf_addch(sb, '%');
			if (!err)
				err = sbuf_addch(sb, hex[c >> 4]);
			if (!err)
				err = sbuf_addch(sb, hex[c & 15]);
		}
	}
	return err;
}

/* ---- responses ------------------------------------------------------------- */

void
api_reply(struct api_req *q, int status, const char *body, size_t n)
{
	q->w->status = status;
	q->w->content_type = n ? API_CT_FHIR : NULL;
	q->w->body = n ? body : "";
	q->w->body_len = n;
}

enum cw_err
api_reply_json(struct api_req *q, int status, const json_t *v)
{
	char *text = api_free_own(q->a, fhir_dump(v, NULL));

	if (!text)
		return diag_err(&q->d, CW_ENOMEM, "exception", NULL,
				"Out of memory");
	api_reply(q, status, text, strlen(text));
	return CW_OK;
}

void
api_reply_outcome(struct api_req *q, int status, enum cw_err err)
{
	static const char fallback[] =
		"{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":"
		"\"error\",\"code\":\"exception\"}]}";
	json_t *oo;

	if (err && !diag_has_errors(&q->d))
		diag_add(&q->d, DIAG_ERROR, api_issue_code(err), NULL, "%s",
			 cw_strerror(err));
	oo = api_json_own(q->a, fhir_outcome(&q->d));
	if (oo && q->outcome_contained)
		json_object_set(oo, "contained", q->outcome_contained);
	if (!oo || api_reply_json(q, status, oo))
		api_reply(q, status, fallback, sizeof(fallback) - 1);
}

void
api_error_body(void *ctx, struct arena *a, int status, const char *msg,
	       struct http_resp *w)
{
	struct diag d;
	json_t *oo;
	char *text;
	size_t n;

	(void)ctx;
	diag_init(&d, a);
	n = strcspn(msg, "\n");
	diag_add(&d, DIAG_ERROR,
		 status == 413 || status == 414 || status == 431 ? "too-long" :
		 status == 408 ? "timeout" :
		 status < 500 ? "invalid" : "exception", NULL,
		 "%.*s", (int)n, msg);
	oo = fhir_outcome(&d);
	text = oo ? fhir_dump(oo, NULL) : NULL;
	json_decref(oo);
	if (!text)
		return;
	w->body = arena_strdup(a, text);
	free(text);
	if (!w->body)
		return;
	w->status = status;
	w->content_type = API_CT_FHIR;
	w->body_len = strlen(w->body);
}

/* ---- serving ----------------------------------------------------------------- */

static void
serve(struct api_req *q)
{
	enum cw_err err;

	parse_prefer(q);
	err = route(q);
	if (err)
		api_reply_outcome(q, api_status_of(err), err);
	/* The one place a FHIR interaction is recorded, whichever door it came
	 * by (a request, a batch entry): after the handler, so the record has
	 * the outcome, and no route can forget it. */
	api_trail_request(q);
}

void
api_dispatch(struct api_req *q)
{
	diag_init(&q->d, q->a);
	q->internal = true;
	serve(q);
}

void
api_handle(void *ctx, struct http_req *r, struct http_resp *w)
{
	struct api_req q;
	int64_t t0 = time_now_ms();
	enum cw_err err;

	memset(&q, 0, sizeof(q));
	q.api = ctx;
	q.r = r;
	q.w = w;
	q.a = r->arena;
	q.route = "?"; /* no route matched */
	diag_init(&q.d, q.a);
	if (api_auth_path(r->path)) {
		api_auth_serve(&q);
		log_info("auth %s /%s -> %d in %lld ms", r->method, q.route,
			 w->status, (long long)(time_now_ms() - t0));
		return;
	}
	/* CDS Hooks (not FHIR, outside /fhir): its discovery is open, its
	 * services pass the same session gate (api_cds_serve). */
	if (api_cds_path(r->path)) {
		api_cds_serve(&q);
		log_info("cds %s /%s -> %d in %lld ms", r->method, q.route,
			 w->status, (long long)(time_now_ms() - t0));
		return;
	}
	/* The one place a FHIR request is let in: before content negotiation
	 * and the route table, so an unauthenticated caller learns nothing
	 * about routes, types or ids. */
	err = api_auth_gate(&q);
	if (err) {
		q.route = "(sign-in)";
		api_reply_outcome(&q, api_status_of(err), err);
	} else if (!negotiate(&q)) {
		q.route = "(negotiation)";
		diag_add(&q.d, DIAG_ERROR, "not-supported", NULL,
			 "Only JSON is supported (application/fhir+json)");
		api_reply_outcome(&q, 406, CW_OK);
	} else {
		serve(&q);
	}
	if (w->status >= 500)
		log_error("fhir %s /fhir/%s %s -> %d in %lld ms: %s", r->method, q.route,
			  q.rt ? q.rt->name : "-", w->status,
			  (long long)(time_now_ms() - t0),
			  q.d.log[0] ? q.d.log : "no detail");
	else
		log_info("fhir %s /fhir/%s %s -> %d in %lld ms", r->method, q.route,
			 q.rt ? q.rt->name : "-", w->status,
			 (long long)(time_now_ms() - t0));
}

/* ---- lifetime ---------------------------------------------------------------- */

struct api *
api_new(struct store *s, const struct api_options *opt)
{
	struct api *api = calloc(1, sizeof(*api));
	const char *base = opt && opt->base_url ? opt->base_url :
			   "http://127.0.0.1:8080/fhir";
	size_t n = strlen(base);

	/* Fail closed: an API for a socket without sessions is a bug. */
	if (!opt || (!opt->access && !opt->local) ||
	    (opt->access && !opt->audit)) {
		free(api);
		return NULL;
	}
	if (!api)
		return NULL;
	api->access = opt->access;
	api->local = opt->local;
	api->audit = opt->audit;
	api->coord = opt->coord;
	api->notify = opt->notify;
	api->rules_report_only = opt->rules_report_only;
	while (n && base[n - 1] == '/')
		n--;
	api->store = s;
	api->base = strndup(base, n);
	api->base_len = n;
	if (!api->base || api_capability_build(api)) {
		api_free(api);
		return NULL;
	}
	fhir_set_base_url(api->base);
	/* one is enough: transactions run on the store's one writer */
	api->tx_helper = runner_new("cw-tx-helper");
	return api;
}

void
api_free(struct api *api)
{
	fhir_set_base_url(NULL);
	if (!api)
		return;
	runner_free(api->tx_helper);
	free(api->base);
	free(api->capability);
	free(api);
}
