/* notify/subs.c: what a Subscription may say, and which writes match one.
 *
 * The criteria of a Subscription are a search. Rather than a second
 * evaluator beside the store's (which would drift from it), a written
 * version is matched by running each criteria as a search with _id set to
 * the version's id, inside the change's transaction: what matches is what
 * a search would have found. Only Subscriptions of the written type are
 * tried, so a write of a type nobody subscribed to costs a lookup.
 *
 * The list of Subscriptions is read from the database on first need and
 * again after any job that wrote a Subscription (store_set_group_hook tells
 * when its group ended, committed or not), on the writer thread only. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "notify/notify_int.h"

/* Search parameters that shape a result page, not what matches: a
 * criteria with one would not mean what it says. */
static const char *const result_params[] = {
	"_sort", "_count", "_include", "_revinclude", "_summary", "_elements",
	"_total", "_contained", "_containedType", "_cursor", "_format", "_pretty",
};

enum cw_err
notify_parse_criteria(struct arena *a, const char *criteria, const char *loc,
		      const struct fhir_restype **rt, struct fhir_kv **kv,
		      size_t *nkv, struct diag *d)
{
	const char *qm = criteria ? strchr(criteria, '?') : NULL;
	size_t tn = criteria ? (qm ? (size_t)(qm - criteria) : strlen(criteria)) : 0;
	struct fhir_query q;
	size_t i, k, before = d->n;
	enum cw_err err;

	*rt = tn ? fhir_restype_findn(criteria, tn) : NULL;
	if (!*rt)
		return diag_err(d, CW_EINVALID, "not-supported", loc,
				"criteria must start with a resource type careweave serves"
				" (Communication?recipient=Practitioner/123)");
	*kv = NULL;
	*nkv = 0;
	if (qm && qm[1] && (err = fhir_form_split(a, qm + 1, strlen(qm + 1), kv, nkv)))
		return err;
	for (i = 0; i < *nkv; i++) {
		for (k = 0; k < sizeof(result_params) / sizeof(result_params[0]); k++)
			if (!strcmp((*kv)[i].key, result_params[k]))
				return diag_err(d, CW_EINVALID, "not-supported", loc,
						"criteria may not use %s: it shapes a result"
						" page, not what matches", result_params[k]);
		if (!strcmp((*kv)[i].key, "_id"))
			return diag_err(d, CW_EINVALID, "not-supported", loc,
					"criteria may not use _id (subscribe to the"
					" resource's type with a parameter that names it)");
	}
	/* the same parser a search uses, strict: an unknown parameter or a
	 * malformed value is an error now, not a Subscription that never fires */
	err = fhir_query_parse(a, *rt, *kv, *nkv, true, &q, d);
	if (err) {
		/* the parser names the parameter; the client wrote criteria */
		for (i = before; i < d->n; i++)
			d->issues[i].loc = loc;
		return CW_EINVALID;
	}
	return CW_OK;
}

static bool
is_loopback(const char *host)
{
	return !strcmp(host, "localhost") || !strcmp(host, "[::1]") ||
	       !strcmp(host, "::1") || !strncmp(host, "127.", 4);
}

bool
notify_endpoint_host(const char *url, char *out, const char **why)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	bool ok = false;

	*out = '\0';
	*why = "the endpoint is not a URL";
	if (!u)
		return false;
	if (strlen(url) < NOTIFY_ENDPOINT_LEN &&
	    curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		if (!strcmp(scheme, "https")) {
			ok = true;
		} else if (!strcmp(scheme, "http")) {
			ok = is_loopback(host);
			if (!ok)
				*why = "the endpoint must be https (plain http only to"
				       " this machine: 127.0.0.1, ::1, localhost)";
		} else {
			*why = "the endpoint must be an https URL";
		}
		if (ok)
			snprintf(out, NOTIFY_ENDPOINT_LEN, "%s", host);
	}
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

enum cw_err
notify_parse_channel(const json_t *res, const char *loc, struct nchannel *out,
		     struct diag *d)
{
	const json_t *ch = json_object_get(res, "channel"), *h, *v;
	const char *type = json_string_value(json_object_get(ch, "type"));
	const char *payload = json_string_value(json_object_get(ch, "payload"));
	const char *why;
	size_t i, nerr = d->nerrors;

	memset(out, 0, sizeof(*out));
	if (!type || strcmp(type, "rest-hook"))
		diag_err(d, CW_EINVALID, "not-supported",
			 arena_printf(d->a, "%s.channel.type", loc),
			 "careweave sends on the rest-hook channel only");
	out->endpoint = json_string_value(json_object_get(ch, "endpoint"));
	if (!out->endpoint)
		diag_err(d, CW_EINVALID, "required",
			 arena_printf(d->a, "%s.channel.endpoint", loc),
			 "a rest-hook Subscription needs an endpoint");
	else if (!notify_endpoint_host(out->endpoint, out->host, &why))
		diag_err(d, CW_EINVALID, "value",
			 arena_printf(d->a, "%s.channel.endpoint", loc), "%s", why);
	if (payload && strcmp(payload, "application/fhir+json") &&
	    strcmp(payload, "application/json"))
		diag_err(d, CW_EINVALID, "not-supported",
			 arena_printf(d->a, "%s.channel.payload", loc),
			 "careweave sends application/fhir+json, or no payload");
	out->payload = payload != NULL;
	h = json_object_get(ch, "header");
	if (json_array_size(h) > NOTIFY_HEADERS_MAX)
		diag_err(d, CW_EINVALID, "too-long",
			 arena_printf(d->a, "%s.channel.header", loc),
			 "at most %d headers", NOTIFY_HEADERS_MAX);
	json_array_foreach (h, i, v) {
		const char *s = json_string_value(v), *colon = s ? strchr(s, ':') : NULL;

		if (i >= NOTIFY_HEADERS_MAX)
			break;
		if (!s || !colon || colon == s || strlen(s) > NOTIFY_HEADER_LEN ||
		    strpbrk(s, "\r\n") || strcspn(s, " \t") < (size_t)(colon - s)) {
			diag_err(d, CW_EINVALID, "value",
				 arena_printf(d->a, "%s.channel.header[%zu]", loc, i),
				 "a header is one line \"Name: value\" of at most %d bytes",
				 NOTIFY_HEADER_LEN);
			continue;
		}
		out->headers[out->nheaders++] = s;
	}
	return d->nerrors > nerr ? CW_EINVALID : CW_OK;
}

/* ---- the hosts an endpoint may name ----------------------------------------- */

/* One name of a list: letters, digits, '-', '.', ':' (an address) and the
 * brackets of an IPv6 address, or "*." and a name. */
static bool
host_name_ok(const char *s, size_t n)
{
	if (n >= 2 && s[0] == '*' && s[1] == '.') {
		s += 2;
		n -= 2;
	}
	if (!n || n >= NOTIFY_ENDPOINT_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || strchr("-.:[]", s[i])))
			return false;
	return true;
}

const char *
notify_hosts_check(const char *list)
{
	size_t k = 0;

	if (!list || !*list)
		return NULL;
	for (const char *p = list;; p++) {
		size_t n = strcspn(p, ",");

		if (!host_name_ok(p, n))
			return "each host is a name or an address (or *.name), comma-separated";
		if (++k > NOTIFY_HOSTS_MAX)
			return "too many hosts";
		p += n;
		if (!*p)
			return NULL;
	}
}

enum cw_err
notify_hosts_set(struct notify *n, const char *list)
{
	char *save = NULL, *tok;

	n->nhosts = 0;
	if (!list || !*list)
		return CW_OK;
	if (notify_hosts_check(list))
		return CW_EINVAL;
	if (!(n->hosts_buf = strdup(list)))
		return CW_ENOMEM;
	for (tok = strtok_r(n->hosts_buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		n->hosts[n->nhosts++] = tok;
	return CW_OK;
}

bool
notify_host_allowed(const struct notify *n, const char *host)
{
	size_t hl = strlen(host);

	if (!n || !n->nhosts)
		return true;
	for (size_t i = 0; i < n->nhosts; i++) {
		const char *h = n->hosts[i];

		if (h[0] == '*') {
			/* "*.example.org": a name under it, not example.org itself */
			size_t sl = strlen(h + 1);

			if (hl > sl && !strcasecmp(host + hl - sl, h + 1))
				return true;
		} else if (!strcasecmp(host, h)) {
			return true;
		}
	}
	return false;
}

enum cw_err
notify_check_subscription(const struct notify *n, json_t *res, const char *loc,
			  struct diag *d)
{
	const char *status = json_string_value(json_object_get(res, "status"));
	const char *criteria = json_string_value(json_object_get(res, "criteria"));
	const struct fhir_restype *rt;
	struct nchannel ch;
	struct fhir_kv *kv;
	size_t nkv, nerr = d->nerrors;

	if (!loc)
		loc = "Subscription";
	notify_parse_criteria(d->a, criteria, arena_printf(d->a, "%s.criteria", loc),
			      &rt, &kv, &nkv, d);
	/* Only one the server would send on: the owner turning one off, or
	 * careweave setting error, must not be refused (delivery checks the
	 * host again whatever the status). */
	if (!notify_parse_channel(res, loc, &ch, d) && status &&
	    (!strcmp(status, "requested") || !strcmp(status, "active")) &&
	    !notify_host_allowed(n, ch.host))
		diag_err(d, CW_EINVALID, "value", arena_printf(d->a, "%s.channel.endpoint", loc),
			 "this server sends to a list of hosts only, and %s is not on it "
			 "(careweave serve --subscription-hosts)", ch.host);
	if (d->nerrors > nerr)
		return CW_EINVALID;
	/* R4: the client asks (requested), the server says (active) */
	if (status && !strcmp(status, "requested") &&
	    json_object_set_new(res, "status", json_string("active")))
		return CW_ENOMEM;
	return CW_OK;
}

int64_t
notify_end_ms(const json_t *sub)
{
	const char *end = json_string_value(json_object_get(sub, "end"));
	struct time_range tr;

	return end && !time_parse(end, strlen(end), TIME_INSTANT, &tr) ? tr.lo : 0;
}

/* ---- the matcher ------------------------------------------------------------ */

/* Reads the Subscriptions that may fire (active, error) into n->subs. A
 * stored one whose criteria no longer parse (written before a change of
 * the rules) is left out and logged by id. */
static enum cw_err
load(struct notify *n, struct store_tx *tx, struct arena *a)
{
	static const struct fhir_kv want[] = {{"status", "active,error"}};
	const struct fhir_restype *srt = fhir_restype_find("Subscription");
	struct fhir_query q;
	struct diag d;
	const char **ids;
	size_t nids, i;
	enum cw_err err;

	diag_init(&d, a);
	arena_reset(n->subs_arena);
	n->subs = NULL;
	n->nsubs = 0;
	if (!srt)
		return CW_EINTERNAL;
	if ((err = fhir_query_parse(a, srt, want, 1, true, &q, &d)) ||
	    (err = store_tx_match(tx, a, &q, NOTIFY_SUBS_MAX + 1, &ids, &nids, &d)))
		return err;
	if (nids > NOTIFY_SUBS_MAX) {
		log_warn("notify: more than %d Subscriptions may fire; the first %d are matched",
			 NOTIFY_SUBS_MAX, NOTIFY_SUBS_MAX);
		nids = NOTIFY_SUBS_MAX;
	}
	if (!(n->subs = arena_zalloc(n->subs_arena, (nids ? nids : 1) * sizeof(*n->subs))))
		return CW_ENOMEM;
	for (i = 0; i < nids; i++) {
		struct store_res r;
		struct nsub *ns = &n->subs[n->nsubs];
		const char *criteria;
		struct diag dd;
		json_t *v;

		err = store_tx_read(tx, a, "Subscription", ids[i], &r);
		if (err == CW_EGONE || err == CW_ENOTFOUND)
			continue;
		if (err)
			return err;
		if (!(v = json_loadb(r.json.p, r.json.n, 0, NULL)))
			return CW_ENOMEM;
		criteria = json_string_value(json_object_get(v, "criteria"));
		diag_init(&dd, n->subs_arena);
		err = notify_parse_criteria(n->subs_arena, criteria, "Subscription.criteria",
					    &ns->rt, &ns->kv, &ns->nkv, &dd);
		ns->end = notify_end_ms(v);
		json_decref(v);
		if (err == CW_ENOMEM)
			return err;
		if (err) {
			log_warn("notify: Subscription/%s: its criteria cannot be matched", ids[i]);
			continue;
		}
		if (!(ns->id = arena_strdup(n->subs_arena, ids[i])))
			return CW_ENOMEM;
		n->nsubs++;
	}
	n->loaded = true;
	return CW_OK;
}

/* Whether sub's criteria match type/id as tx sees it. */
static enum cw_err
matches(struct store_tx *tx, struct arena *a, const struct nsub *ns,
	const char *id, bool *out)
{
	struct fhir_kv *kv = arena_alloc(a, (ns->nkv + 1) * sizeof(*kv));
	struct fhir_query q;
	struct diag d;
	const char **ids;
	size_t nids;
	enum cw_err err;

	*out = false;
	if (!kv)
		return CW_ENOMEM;
	if (ns->nkv)
		memcpy(kv, ns->kv, ns->nkv * sizeof(*kv));
	kv[ns->nkv] = (struct fhir_kv){"_id", id};
	diag_init(&d, a);
	if ((err = fhir_query_parse(a, ns->rt, kv, ns->nkv + 1, true, &q, &d)) ||
	    (err = store_tx_match(tx, a, &q, 1, &ids, &nids, &d)))
		return err;
	*out = nids > 0;
	return CW_OK;
}

enum cw_err
notify_note_write(struct notify *n, struct store_tx *tx, struct arena *a,
		  const char *type, const char *id, long version)
{
	int64_t now;
	enum cw_err err;
	size_t i;

	if (!n)
		return CW_OK;
	if (!strcmp(type, "Subscription")) {
		n->loaded = false;
		n->reload_after_group = true;
		return CW_OK;
	}
	if (!n->loaded && (err = load(n, tx, a)))
		return err;
	now = time_now_ms();
	for (i = 0; i < n->nsubs; i++) {
		const struct nsub *ns = &n->subs[i];
		bool hit;

		if (strcmp(ns->rt->name, type) || (ns->end && ns->end <= now))
			continue;
		if ((err = matches(tx, a, ns, id, &hit)))
			return err;
		if (hit) {
			if ((err = store_tx_notice_add(tx, ns->id, type, id, version, now)))
				return err;
			n->queued = true;
		}
	}
	return CW_OK;
}
