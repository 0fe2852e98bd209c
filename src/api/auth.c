/* api/auth.c: sign-in over HTTP, and the check in front of every /fhir route.
 *
 * Owns the HTTP side of sessions: where a token comes from (the
 * Authorization header, or the cw_session cookie with the cw_csrf double
 * submit), the cookies login sets, the three /auth endpoints, and
 * api_auth_gate, which api_handle calls before the route table so that no
 * FHIR route, present or future, is reachable without a session (GET
 * /fhir/metadata excepted: clients read it before they sign in). The rules
 * (hashing, expiry, lockout) are access/'s.
 *
 * A request body holding a password is wiped once it has been read; no
 * username, password or token reaches a log line. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "api/api_int.h"

#define API_CT_JSON "application/json; charset=utf-8"
#define COOKIE_SESSION "cw_session"
#define COOKIE_CSRF "cw_csrf"

bool
api_auth_path(const char *path)
{
	return !strncmp(path, "/auth/", 6);
}

/* The value of cookie name in a Cookie header, copied into a; NULL. */
static const char *
cookie_get(struct arena *a, const char *hdr, const char *name)
{
	size_t nl = strlen(name), vl;
	const char *p = hdr;

	while (p && *p) {
		while (*p == ' ' || *p == ';' || *p == '\t')
			p++;
		vl = strcspn(p, ";");
		if (vl > nl && !strncmp(p, name, nl) && p[nl] == '=') {
			const char *v = p + nl + 1;
			size_t n = vl - nl - 1;

			while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
				n--;
			return arena_strndup(a, v, n);
		}
		p += vl;
	}
	return NULL;
}

static bool
changes_state(const char *method)
{
	return strcmp(method, "GET") && strcmp(method, "HEAD") &&
	       strcmp(method, "OPTIONS");
}

/* Fills cred from the request. false (issue in q->d) when Authorization
 * names a scheme other than Bearer: better a clear 401 than to ignore it. */
static bool
cred_of(struct api_req *q, struct access_cred *cred)
{
	const char *auth = api_header(q, "Authorization");
	const char *cookies = api_header(q, "Cookie");

	memset(cred, 0, sizeof(*cred));
	cred->changes_state = changes_state(q->r->method);
	/* Only other methods run on a worker, which may wait on a commit. */
	cred->may_block = cred->changes_state;
	if (auth) {
		if (strncasecmp(auth, "Bearer ", 7)) {
			diag_add(&q->d, DIAG_ERROR, "login", NULL,
				 "Only 'Authorization: Bearer TOKEN' is accepted");
			return false;
		}
		auth += 7;
		while (*auth == ' ')
			auth++;
		cred->token = auth;
		return true;
	}
	if (cookies) {
		cred->token = cookie_get(q->a, cookies, COOKIE_SESSION);
		cred->from_cookie = cred->token != NULL;
		cred->csrf_cookie = cookie_get(q->a, cookies, COOKIE_CSRF);
		cred->csrf_header = api_header(q, "X-CSRF-Token");
	}
	return true;
}

/* Authenticates q into *who (arena). Adds WWW-Authenticate to a 401. */
static enum cw_err
authenticate(struct api_req *q, struct access_who *who)
{
	struct access_cred cred;
	enum cw_err err;

	if (!cred_of(q, &cred))
		err = CW_EUNAUTH;
	else
		err = access_authenticate(q->api->access, q->a, &cred, who, &q->d);
	if (err == CW_EUNAUTH)
		http_resp_header(q->w, "WWW-Authenticate",
				 cred.token ? "Bearer realm=\"careweave\", error=\"invalid_token\""
					    : "Bearer realm=\"careweave\"");
	return err;
}

enum cw_err
api_auth_gate(struct api_req *q)
{
	struct access_who *who;
	const char *m = q->r->method, *p = q->r->path;
	enum cw_err err;

	if (q->api->local)
		return CW_OK;
	if ((!strcmp(m, "GET") || !strcmp(m, "HEAD")) &&
	    (!strcmp(p, "/fhir/metadata") || !strcmp(p, "/fhir/metadata/")))
		return CW_OK;
	who = arena_zalloc(q->a, sizeof(*who));
	if (!who)
		return CW_ENOMEM;
	err = authenticate(q, who);
	if (err)
		return err;
	q->who = who;
	/* Admins manage users (the CLI, /auth); clinical data is not theirs. */
	if (who->role == ACCESS_ADMIN)
		return diag_err(&q->d, CW_EFORBIDDEN, "forbidden", NULL,
				"An admin account does not see clinical data");
	return CW_OK;
}

/* ---- the /auth endpoints ------------------------------------------------ */

static const char *
cookie_line(struct api_req *q, const char *name, const char *value,
	    bool http_only, bool clear)
{
	/* Secure whenever the request came over TLS (http_req.tls); without
	 * TLS a Secure cookie would never come back. */
	return arena_printf(q->a, "%s=%s; Path=/; SameSite=Strict%s%s%s", name,
			    value, http_only ? "; HttpOnly" : "",
			    q->r->tls ? "; Secure" : "",
			    clear ? "; Max-Age=0" : "");
}

static json_t *
user_json(const struct access_who *w)
{
	return json_pack("{s:s, s:s, s:s?}", "username", w->username, "role",
			 access_role_name(w->role), "link", w->link);
}

static enum cw_err
reply_plain_json(struct api_req *q, int status, json_t *v)
{
	enum cw_err err;

	if (!api_json_own(q->a, v))
		return CW_ENOMEM;
	err = api_reply_json(q, status, v);
	if (!err)
		q->w->content_type = API_CT_JSON;
	return err;
}

static enum cw_err
h_login(struct api_req *q)
{
	struct access_login lg;
	json_error_t jerr;
	json_t *body, *u, *p, *c, *out;
	char when[32];
	unsigned retry = 0;
	enum cw_err err;

	body = json_loadb(q->r->body, q->r->body_len, 0, &jerr);
	/* The body holds a password: it is not needed past this point. */
	sodium_memzero((char *)q->r->body, q->r->body_len);
	if (!body)
		return diag_err(&q->d, CW_EINVAL, "invalid", NULL,
				"Send {\"username\": ..., \"password\": ..., "
				"\"totp\": ...} as JSON (totp: the one-time "
				"code, when the user has one)");
	api_json_own(q->a, body);
	u = json_object_get(body, "username");
	p = json_object_get(body, "password");
	c = json_object_get(body, "totp");
	if (!json_is_string(u) || !json_is_string(p) ||
	    (c && !json_is_null(c) && !json_is_string(c))) {
		if (json_is_string(p))
			sodium_memzero((char *)json_string_value(p),
				       json_string_length(p));
		return diag_err(&q->d, CW_EINVAL, "required", NULL,
				"username and password are required strings; "
				"totp, when sent, is a string of %d digits",
				ACCESS_TOTP_DIGITS);
	}
	/* Anything else in the body (a "role", say) is ignored: who a user
	 * is comes from the database, never from the request. */
	err = access_login(q->api->access, q->a, q->r->remote,
			   json_string_value(u), json_string_value(p),
			   json_string_length(p), json_string_value(c), &lg,
			   &retry, &q->d);
	sodium_memzero((char *)json_string_value(p), json_string_length(p));
	/* Every attempt is recorded; lg.who names the user only when the
	 * username was someone's (never the name tried, never the password). */
	api_trail_auth(q, AUDIT_LOGIN, &lg.who, api_status_of(err));
	if (err == CW_ERATE)
		http_resp_header(q->w, "Retry-After", arena_printf(q->a, "%u", retry));
	if (err == CW_EUNAUTH)
		http_resp_header(q->w, "WWW-Authenticate", "Bearer realm=\"careweave\"");
	if (err)
		return err;
	time_format_instant(lg.who.expires, when);
	out = json_pack("{s:s, s:s, s:s, s:o}", "token", lg.token, "csrf",
			lg.csrf, "expires", when, "user", user_json(&lg.who));
	http_resp_header(q->w, "Set-Cookie",
			 cookie_line(q, COOKIE_SESSION, lg.token, true, false));
	http_resp_header(q->w, "Set-Cookie",
			 cookie_line(q, COOKIE_CSRF, lg.csrf, false, false));
	sodium_memzero(&lg, sizeof(lg));
	if (!out)
		return CW_ENOMEM;
	return reply_plain_json(q, 200, out);
}

static enum cw_err
h_logout(struct api_req *q)
{
	struct access_who who;
	enum cw_err err;

	if ((err = authenticate(q, &who)))
		return err;
	err = access_logout(q->api->access, &who);
	api_trail_auth(q, AUDIT_LOGOUT, &who, err ? api_status_of(err) : 204);
	if (err)
		return diag_err(&q->d, err, "exception", NULL,
				"Cannot end the session");
	http_resp_header(q->w, "Set-Cookie",
			 cookie_line(q, COOKIE_SESSION, "", true, true));
	http_resp_header(q->w, "Set-Cookie",
			 cookie_line(q, COOKIE_CSRF, "", false, true));
	/* Nothing with health data stays in the browser after sign-out: it
	 * drops its HTTP cache, cookies and the origin's storage
	 * (localStorage, sessionStorage, IndexedDB, service workers), on top
	 * of Cache-Control: no-store on every answer. */
	http_resp_header(q->w, "Clear-Site-Data", "\"cache\", \"cookies\", \"storage\"");
	api_reply(q, 204, NULL, 0);
	return CW_OK;
}

static enum cw_err
h_session(struct api_req *q)
{
	struct access_who who;
	char when[32], abs[32];
	enum cw_err err;
	json_t *out;

	if ((err = authenticate(q, &who)))
		return err;
	time_format_instant(who.expires, when);
	time_format_instant(who.absolute, abs);
	out = json_pack("{s:s, s:s, s:o}", "expires", when, "expiresAbsolute",
			abs, "user", user_json(&who));
	if (!out)
		return CW_ENOMEM;
	return reply_plain_json(q, 200, out);
}

static const struct {
	const char *method;
	const char *path;
	api_handler_fn fn;
} auth_routes[] = {
	/* method  path              handler */
	{"POST",  "/auth/login",    h_login},
	{"POST",  "/auth/logout",   h_logout},
	{"GET",   "/auth/session",  h_session},
};

void
api_auth_serve(struct api_req *q)
{
	const char *m = !strcmp(q->r->method, "HEAD") ? "GET" : q->r->method;
	enum cw_err err = CW_ENOTFOUND;
	bool path_known = false;

	q->route = "(auth)";
	if (q->api->local) {
		diag_add(&q->d, DIAG_ERROR, "not-found", NULL, "No such endpoint");
		api_reply_outcome(q, 404, CW_ENOTFOUND);
		return;
	}
	for (size_t i = 0; i < sizeof(auth_routes) / sizeof(auth_routes[0]); i++) {
		if (strcmp(auth_routes[i].path, q->r->path))
			continue;
		path_known = true;
		q->route = auth_routes[i].path + 1;
		if (strcmp(auth_routes[i].method, m))
			continue;
		err = auth_routes[i].fn(q);
		if (err)
			api_reply_outcome(q, api_status_of(err), err);
		return;
	}
	if (path_known)
		err = diag_err(&q->d, CW_ENOTALLOWED, "not-supported", NULL,
			       "Method not allowed here");
	else
		err = diag_err(&q->d, CW_ENOTFOUND, "not-found", NULL,
			       "No such endpoint");
	api_reply_outcome(q, api_status_of(err), err);
}
