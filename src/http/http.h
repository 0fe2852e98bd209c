/* http/http.h: the HTTP server (libmicrohttpd), limits and response encoding.
 *
 * http/ knows HTTP and nothing of FHIR: it accepts connections, reads a
 * request (refusing bodies over max_body with 413 before reading them),
 * hands it to one handler function (inline on a poll thread for GET, HEAD
 * and OPTIONS, on a blocking worker for every other method, which may wait
 * on a commit), and sends what the handler filled in,
 * gzip-compressed when the client accepts it and the body is large, with the
 * security headers every response carries. Every limit is an explicit option. */
#ifndef CW_HTTP_H
#define CW_HTTP_H

#include "base/base.h"

struct http_server; /* opaque */

struct http_kv {
	const char *key;
	const char *value;
};

#define HTTP_MAX_HEADERS 16

struct http_req {
	struct arena *arena;     /* dies with the request */
	const char *method;      /* "GET", ... */
	const char *path;        /* decoded path, no query: "/fhir/Patient/1" */
	size_t nquery;
	struct http_kv *query;   /* decoded query parameters in order, repeats kept */
	const char *body;        /* NUL-terminated; "" when none */
	size_t body_len;
	const char *remote;      /* peer address text ("127.0.0.1", "::1") */
	bool tls;                /* came over TLS (http_options.tls_cert):
				    api/ adds Secure to its cookies */
	void *conn;              /* for http_req_header */
};

/* A request header by name (case-insensitive) or NULL. */
const char *http_req_header(const struct http_req *r, const char *name);

struct http_resp {
	int status;
	const char *content_type;
	size_t nheaders;
	struct http_kv headers[HTTP_MAX_HEADERS];
	const char *body;        /* arena memory or static */
	size_t body_len;
};

/* Adds a response header (both strings must outlive the request: arena or
 * static). Silently ignored past HTTP_MAX_HEADERS. */
void http_resp_header(struct http_resp *w, const char *key, const char *value);

/* Serves one request. Called on a poll thread for GET, HEAD and OPTIONS
 * (it must not block there: every connection of that thread waits) and on
 * a worker thread for other methods (it may block, e.g. on a commit). Any
 * thread may call it at any time; r and w stay valid until it returns. */
typedef void (*http_handler_fn)(void *ctx, struct http_req *r,
				struct http_resp *w);

/* Fills w for an answer http/ makes itself (413 for a body over the limit,
 * 408 for a body still arriving at request_timeout_s, 500 when a handler
 * fails or memory runs out), so that it looks like the handler's own
 * errors (for the API: an OperationOutcome). msg is a short client-safe
 * reason; memory for the body comes from a. */
typedef void (*http_error_fn)(void *ctx, struct arena *a, int status,
			      const char *msg, struct http_resp *w);

struct http_options {
	const char *bind;          /* address, default "127.0.0.1" */
	unsigned port;             /* 0: pick a free port (see http_port) */
	unsigned threads;          /* poll threads, 0: one per core, at most
				      64; they run GET/HEAD/OPTIONS inline
				      and never wait */
	unsigned workers;          /* blocking worker threads for the other
				      methods, 0: 32, at most 256; each
				      write waiting on a group commit holds
				      one, so they bound a commit's size */
	unsigned max_conns;        /* 0: 512 */
	unsigned conn_timeout_s;   /* idle connection timeout, 0: 30 */
	unsigned request_timeout_s; /* a body still arriving this long after
				       the request line: 408 and close, 0: 60
				       (checked as body bytes arrive; see
				       server.c for what it does not bound) */
	size_t max_body;           /* bytes, 0: 16 MiB; larger bodies get 413 */
	size_t gzip_min;           /* compress bodies at least this big, 0: 1400 */
	size_t arena_max;          /* per-request arena cap, 0: 256 MiB */
	http_error_fn error_fn;    /* NULL: plain-text bodies for http/'s own answers */
	/* TLS: both PEM texts (certificate chain, private key) or neither.
	 * With them every connection is TLS 1.2 or 1.3 (GnuTLS through
	 * libmicrohttpd) and every answer carries Strict-Transport-Security. */
	const char *tls_cert;
	const char *tls_key;
};

/* Starts listening and serving. NULL (with d filled) if it cannot bind. */
struct http_server *http_start(const struct http_options *opt,
			       http_handler_fn fn, void *ctx, struct diag *d);
/* The port actually bound. */
unsigned http_port(const struct http_server *srv);
/* Stops accepting, finishes requests in flight, frees the server. */
void http_stop(struct http_server *srv);

#endif
