/* http/server.c: the HTTP server on libmicrohttpd, its limits and response
 * encoding.
 *
 * Threads, two kinds:
 * - poll threads: MHD runs a pool of `threads` of them (epoll, one per
 *   thread, default one per core). They read requests, run GET, HEAD and
 *   OPTIONS handlers inline (reads are fast and never wait on a commit)
 *   and send every response. They must never block.
 * - workers: `workers` plain threads (default 32) that run the handler for
 *   every other method. Such a request may write, and a write blocks until
 *   the group commit is on disk; run on a poll thread it would stall every
 *   other connection that thread owns. So on the final access-handler call
 *   the connection is suspended (MHD_suspend_connection), queued, and a
 *   worker runs the handler into c->resp, then resumes it; MHD calls the
 *   access handler again and the poll thread sends c->resp. The number of
 *   workers bounds how many writes one group commit can carry.
 * Nothing is created per request: the queue is a list linked through the
 * conns themselves.
 *
 * The hand-off invariant. A conn is owned by exactly one side at a time:
 *   poll thread --(suspend, then enqueue, under pool.lock)--> queue
 *   queue --(dequeue)--> one worker --(MHD_resume_connection)--> poll thread
 * Between the suspend and the resume MHD neither polls the socket nor
 * applies the idle timeout to it, so it calls none of our callbacks for
 * that connection (no on_access, no on_completed, no on_connection close)
 * and frees neither the MHD_Connection nor our conn: a client that hangs up
 * meanwhile is noticed only after the resume, when sending the answer
 * fails, and then on_completed and on_connection run on the poll thread as
 * for any other closed connection. The conn's arena, body and request are
 * therefore valid for the whole job, and the worker reads request headers
 * (http_req_header) from a connection no other thread touches. The worker's
 * last access to c or mc is the MHD_resume_connection call; after it the
 * conn may be freed at any time. MHD_stop_daemon panics on a connection
 * still suspended, so http_stop first closes the queue to new jobs (a
 * request arriving after that runs inline on its poll thread), lets the
 * workers finish every queued job (each ending in a resume) and joins them,
 * and only then stops MHD, which takes pending resumes first.
 *
 * Memory: each connection owns one arena, made when the connection opens and
 * freed when it closes. A request allocates its query array, its body and
 * whatever the handler needs from that arena; the response body is handed to
 * MHD as a persistent buffer pointing into it (or into static memory), and
 * the arena is reset in the request-completed callback, after MHD has sent
 * the last byte. Steady state on a keep-alive connection is therefore a
 * pointer bump per allocation and no malloc beyond what MHD itself does.
 * Requests on one connection are strictly sequential (MHD does not run two
 * requests of a connection at once), so the connection state doubles as the
 * request state; a suspended request keeps its connection (and arena) to
 * itself until the response has gone.
 *
 * Limits: max_body is checked against Content-Length before any of the body
 * is read: a client that asked for 100 Continue gets 413 at once; any other
 * is already sending, so the body is read and dropped, then 413 (closing
 * with it unread would reset the connection and lose the answer). A chunked
 * body is checked against its running total the same way; a client that
 * keeps sending past max_body + DRAIN_MAX is cut off. A query string over
 * MAX_QUERY_BYTES or MAX_QUERY_PARAMS gets 414 (measured in on_uri, before
 * MHD parses it), request headers over MAX_HEADER_BYTES 431, and a %00 in a
 * query parameter 400.
 *
 * Timeouts, two of them:
 * - conn_timeout_s is MHD's idle timeout: a connection with no bytes moving
 *   for that long is closed without an answer, whether it sits idle between
 *   keep-alive requests or stalls mid-request.
 * - request_timeout_s bounds the body: the clock starts when MHD has read the
 *   request line (on_uri, the earliest moment it tells us of), and a body
 *   chunk that arrives after the deadline with more still to come gets 408
 *   (error_fn's body) and the connection is closed. It is checked only when
 *   a chunk arrives; a client that sends nothing more is the idle timeout's.
 *   A body is thus done within request_timeout_s + conn_timeout_s.
 * What is not bounded by a deadline: headers that dribble in slowly are read
 *   by MHD without calling us, so a client that sends a header byte just
 *   inside every conn_timeout_s keeps its connection until CONN_MEMORY
 *   fills (then MHD answers 431/413): at a byte every 29 s that is months.
 *   max_conns caps how many such clients there can be. And there is no
 *   deadline on the handler itself.
 *
 * Responses: gzip (one deflate stream per poll thread, reset per use) when
 * the client accepts it and the body is at least gzip_min bytes; Vary:
 * Accept-Encoding and the security headers on every response unless the
 * handler set its own value for one of them.
 *
 * Logging: nothing per request at info level (paths may hold ids); at debug
 * one line with method, status and duration. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <zlib.h>

#include "http/http.h"

#define DEFAULT_MAX_CONNS 512
#define THREADS_MAX 64                /* threads 0: one per core, at most 64 */
#define DEFAULT_WORKERS 32            /* workers 0: 32 */
#define WORKERS_MAX 256
#define DEFAULT_TIMEOUT_S 30
#define DEFAULT_REQUEST_TIMEOUT_S 60
#define DEFAULT_MAX_BODY (16u << 20)
#define DEFAULT_GZIP_MIN 1400
/* MHD memory per connection: the request line and headers (each at most
 * 32 KiB, below), their index and the response headers. MHD zeroes the
 * whole of it between keep-alive requests: at 256 KiB that memset was 15%
 * of a read's CPU. */
#define CONN_MEMORY (96u << 10)
#define CONN_MEMORY_INCREMENT 4096
#define MAX_QUERY_BYTES (32u << 10)   /* longer query strings get 414 */
#define MAX_QUERY_PARAMS 1000         /* more parameters get 414 */
#define MAX_HEADER_BYTES (32u << 10)  /* all request headers together, else 431 */
#define LISTEN_BACKLOG 511
#define STOP_GRACE_MS 5000
#define DRAIN_MAX (8u << 20)          /* bytes read past max_body for a 413 */

struct http_server {
	struct MHD_Daemon *mhd;
	http_handler_fn fn;
	http_error_fn error_fn;
	void *ctx;
	size_t max_body;
	size_t gzip_min;
	size_t arena_max;
	unsigned request_timeout_s;
	unsigned port;
	bool tls;
	atomic_long inflight; /* requests begun and not completed */
	/* the blocking workers and their queue of suspended conns */
	pthread_mutex_t lock;
	pthread_cond_t more;      /* a job was queued, or closing */
	struct conn *head, *tail; /* queued jobs, oldest first */
	bool closing;             /* no new jobs; workers exit when empty */
	unsigned nworkers;        /* started */
	pthread_t *workers;
};

/* Where the current request's handler stands. */
enum job {
	JOB_NONE,   /* inline, or not yet served */
	JOB_QUEUED, /* suspended: queued or running on a worker */
	JOB_DONE,   /* resumed: c->resp is ready to send */
};

/* One per connection; also the state of its current request. */
struct conn {
	struct http_server *srv;
	struct arena *arena;
	char remote[INET6_ADDRSTRLEN];
	/* the current request */
	bool active;
	bool toobig;     /* body over max_body: drain, then 413 */
	bool nomem;      /* the arena refused the body */
	char *body;
	size_t body_len;
	size_t body_cap;
	size_t drained;
	int status;
	char method[12];
	struct timespec t0;      /* when the request line was read */
	size_t content_length;   /* announced; SIZE_MAX when chunked or none */
	struct http_req req;
	/* hand-off to a worker (see the invariant at the top) */
	enum job job;
	struct MHD_Connection *mc;
	struct conn *next;       /* in the srv queue */
	struct http_resp resp;   /* filled by the worker */
};

/* One year; no preload: that is the operator's choice for the domain. */
#define HSTS "max-age=31536000; includeSubDomains"
/* TLS 1.2 and 1.3 only (GnuTLS priority string). */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

static const char *const security_headers[][2] = {
	{"X-Content-Type-Options", "nosniff"},
	{"Cache-Control", "no-store"},
	{"Referrer-Policy", "no-referrer"},
	{"X-Frame-Options", "DENY"},
	{"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
	{"Vary", "Accept-Encoding"},
};

/* ---- gzip ------------------------------------------------------------- */

static pthread_key_t zkey;
static pthread_once_t zonce = PTHREAD_ONCE_INIT;
static bool zkey_ok;

static void
zstream_free(void *p)
{
	z_stream *z = p;

	deflateEnd(z);
	free(z);
}

static void
zkey_make(void)
{
	zkey_ok = pthread_key_create(&zkey, zstream_free) == 0;
}

/* This thread's deflate stream, ready for a new gzip member. */
static z_stream *
zstream_get(void)
{
	z_stream *z;

	pthread_once(&zonce, zkey_make);
	if (!zkey_ok)
		return NULL;
	z = pthread_getspecific(zkey);
	if (z) {
		if (deflateReset(z) == Z_OK)
			return z;
		return NULL;
	}
	z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	/* Level 1: JSON compresses well even at the fastest level, and the
	 * CPU goes to serving requests. 15 + 16: gzip wrapper. */
	if (deflateInit2(z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		free(z);
		return NULL;
	}
	if (pthread_setspecific(zkey, z) != 0) {
		zstream_free(z);
		return NULL;
	}
	return z;
}

/* Compresses in[0..n) into arena memory. False (nothing changed) when it
 * cannot, or when the result is not smaller. */
static bool
gzip_body(struct arena *a, const char *in, size_t n, const char **out,
	  size_t *outn)
{
	z_stream *z;
	uLong bound;
	unsigned char *buf;

	if (n > UINT32_MAX)
		return false;
	z = zstream_get();
	if (!z)
		return false;
	bound = deflateBound(z, (uLong)n);
	buf = arena_alloc(a, bound);
	if (!buf)
		return false;
	z->next_in = (unsigned char *)in;
	z->avail_in = (uInt)n;
	z->next_out = buf;
	z->avail_out = (uInt)bound;
	if (deflate(z, Z_FINISH) != Z_STREAM_END || z->total_out >= n)
		return false;
	*out = (const char *)buf;
	*outn = z->total_out;
	return true;
}

/* Does an Accept-Encoding value allow gzip? Tokens are compared without
 * case; "gzip;q=0" refuses it, "*" allows it unless gzip is refused. */
static bool
accepts_gzip(const char *ae)
{
	bool star = false, gzip = false, gzip_refused = false;
	const char *p = ae;

	while (*p) {
		const char *name, *end, *q;
		size_t len;
		bool zero = false;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		name = p;
		while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
			p++;
		len = (size_t)(p - name);
		end = p;
		while (*end && *end != ',')
			end++;
		q = p;
		while (q < end) {
			if ((q[0] == 'q' || q[0] == 'Q') && q[1] == '=') {
				const char *v = q + 2;

				zero = v[0] == '0';
				if (zero && v[1] == '.') {
					for (v += 2; v < end && *v >= '0' && *v <= '9'; v++)
						if (*v != '0')
							zero = false;
				}
				break;
			}
			q++;
		}
		if ((len == 4 && strncasecmp(name, "gzip", 4) == 0) ||
		    (len == 6 && strncasecmp(name, "x-gzip", 6) == 0)) {
			if (zero)
				gzip_refused = true;
			else
				gzip = true;
		} else if (len == 1 && name[0] == '*' && !zero) {
			star = true;
		}
		p = end;
	}
	return gzip || (star && !gzip_refused);
}

/* ---- the request/response API for handlers ---------------------------- */

const char *
http_req_header(const struct http_req *r, const char *name)
{
	if (!r->conn)
		return NULL;
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

void
http_resp_header(struct http_resp *w, const char *key, const char *value)
{
	if (w->nheaders >= HTTP_MAX_HEADERS)
		return;
	w->headers[w->nheaders].key = key;
	w->headers[w->nheaders].value = value;
	w->nheaders++;
}

/* ---- serving ---------------------------------------------------------- */

static bool
resp_has_header(const struct http_resp *w, const char *key)
{
	for (size_t i = 0; i < w->nheaders; i++)
		if (strcasecmp(w->headers[i].key, key) == 0)
			return true;
	return false;
}

static enum MHD_Result send_simple(struct conn *c, struct MHD_Connection *mc,
				   int status, const char *text);

static enum MHD_Result
send_resp(struct conn *c, struct MHD_Connection *mc, struct http_resp *w)
{
	struct http_server *srv = c->srv;
	struct MHD_Response *resp;
	const char *body = w->body ? w->body : "";
	size_t len = w->body ? w->body_len : 0;
	enum MHD_Result ret;

	if (w->status < 100 || w->status > 999) {
		if (w->status != 0)
			log_warn("http: handler set invalid status %d", w->status);
		return send_simple(c, mc, 500, "internal server error\n");
	}
	if (len >= srv->gzip_min && !resp_has_header(w, "Content-Encoding")) {
		const char *ae = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_ACCEPT_ENCODING);
		const char *z;
		size_t zn;

		if (ae && accepts_gzip(ae) && gzip_body(c->arena, body, len, &z, &zn)) {
			body = z;
			len = zn;
			http_resp_header(w, "Content-Encoding", "gzip");
		}
	}
	/* PERSISTENT: the body lives in the connection's arena (or static
	 * memory) until on_completed resets it, after the last byte went. */
	resp = MHD_create_response_from_buffer(len, (void *)body,
					       MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	if (w->content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					w->content_type);
	for (size_t i = 0; i < w->nheaders; i++)
		MHD_add_response_header(resp, w->headers[i].key,
					w->headers[i].value);
	for (size_t i = 0; i < sizeof(security_headers) / sizeof(security_headers[0]); i++)
		if (!resp_has_header(w, security_headers[i][0]))
			MHD_add_response_header(resp, security_headers[i][0],
						security_headers[i][1]);
	/* Only over TLS: a browser ignores it on plain HTTP, and sending it
	 * there would promise what this port does not do. */
	if (c->srv->tls)
		MHD_add_response_header(resp, "Strict-Transport-Security", HSTS);
	c->status = w->status;
	ret = MHD_queue_response(mc, (unsigned)w->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Fills w with an answer made here rather than by the handler (413, 500):
 * error_fn's body when there is one, else text. */
static void
simple_resp(struct conn *c, int status, const char *text, struct http_resp *w)
{
	*w = (struct http_resp){
		.status = status,
		.content_type = "text/plain; charset=utf-8",
		.body = text,
		.body_len = strlen(text),
	};
	if (c->srv->error_fn) {
		struct http_resp e = {0};

		c->srv->error_fn(c->srv->ctx, c->arena, status, text, &e);
		if (e.status == status && e.body)
			*w = e;
	}
}

static enum MHD_Result
send_simple(struct conn *c, struct MHD_Connection *mc, int status,
	    const char *text)
{
	struct http_resp w;

	simple_resp(c, status, text, &w);
	return send_resp(c, mc, &w);
}

/* The request ran past request_timeout_s with body bytes still to come:
 * answer 408 and close. MHD 0.9.75 takes a response only before the first
 * body byte or after the last (MHD_queue_response fails in between), so
 * the answer is written to the socket here, while MHD is only reading from
 * it, and MHD is then told to close the connection. The answer is small
 * and the socket's send buffer empty, so one send() normally takes it
 * whole; when it does not, the client sees the connection close. */
static enum MHD_Result
request_timed_out(struct conn *c, struct MHD_Connection *mc)
{
	const union MHD_ConnectionInfo *ci;
	struct sbuf sb = SBUF_INIT(64u << 10);
	struct http_resp w;

	c->status = 408;
	log_debug("http %s: request body not complete after %u s, 408",
		  c->method, c->srv->request_timeout_s);
	/* Over TLS the socket carries records, not text: nothing can be
	 * written past MHD, so the client only sees the connection close. */
	if (c->srv->tls)
		return MHD_NO;
	ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return MHD_NO;
	simple_resp(c, 408, "request timeout: the body did not arrive in time\n", &w);
	sbuf_addf(&sb, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
		  "Content-Length: %zu\r\n", w.body_len);
	if (w.content_type)
		sbuf_addf(&sb, "Content-Type: %s\r\n", w.content_type);
	for (size_t i = 0; i < w.nheaders; i++)
		sbuf_addf(&sb, "%s: %s\r\n", w.headers[i].key, w.headers[i].value);
	for (size_t i = 0; i < sizeof(security_headers) / sizeof(security_headers[0]); i++)
		if (!resp_has_header(&w, security_headers[i][0]))
			sbuf_addf(&sb, "%s: %s\r\n", security_headers[i][0],
				  security_headers[i][1]);
	sbuf_adds(&sb, "\r\n");
	if (sbuf_add(&sb, w.body, w.body_len) == CW_OK)
		(void)send(ci->connect_fd, sb.buf, sb.len,
			   MSG_NOSIGNAL | MSG_DONTWAIT);
	sbuf_release(&sb);
	return MHD_NO;
}

struct argfill {
	struct http_kv *kv;
	size_t n;
	size_t cap;
	bool nul; /* a decoded key or value holds a NUL byte (%00) */
};

static enum MHD_Result
on_arg(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
       const char *value, size_t value_size)
{
	struct argfill *f = cls;

	if (f->n >= f->cap)
		return MHD_NO;
	/* A %00 would silently cut the C string short and widen a search. */
	if (strlen(key) != key_size || (value && strlen(value) != value_size)) {
		f->nul = true;
		return MHD_NO;
	}
	f->kv[f->n].key = key;
	f->kv[f->n].value = value ? value : "";
	f->n++;
	return MHD_YES;
}

/* Fills c->req for the handler. On a problem with the request itself
 * (memory, a NUL in the query) fills c->resp with the answer and returns
 * false. Runs on the poll thread: it reads MHD's connection state. */
static bool
req_prepare(struct conn *c, struct MHD_Connection *mc, const char *url,
	    const char *method)
{
	struct http_req *r = &c->req;
	int nargs;

	memset(r, 0, sizeof(*r));
	r->arena = c->arena;
	r->method = method;
	r->path = url;
	r->remote = c->remote;
	r->tls = c->srv->tls;
	r->conn = mc;
	nargs = MHD_get_connection_values(mc, MHD_GET_ARGUMENT_KIND, NULL, NULL);
	if (nargs > 0) {
		struct argfill f = {0};

		f.kv = arena_alloc(c->arena, (size_t)nargs * sizeof(*f.kv));
		if (!f.kv) {
			simple_resp(c, 500, "out of memory\n", &c->resp);
			return false;
		}
		f.cap = (size_t)nargs;
		MHD_get_connection_values_n(mc, MHD_GET_ARGUMENT_KIND, on_arg, &f);
		if (f.nul) {
			simple_resp(c, 400, "query parameters must not contain "
				    "NUL (%00)\n", &c->resp);
			return false;
		}
		r->query = f.kv;
		r->nquery = f.n;
	}
	if (c->body) {
		c->body[c->body_len] = '\0';
		r->body = c->body;
		r->body_len = c->body_len;
	} else {
		r->body = "";
		r->body_len = 0;
	}
	return true;
}

/* May the handler for this method wait (on a commit)? Everything but the
 * methods that only read goes to a worker. */
static bool
may_block(const char *method)
{
	return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
	       strcmp(method, "OPTIONS") != 0;
}

/* Suspends the connection and queues it for a worker. False (nothing
 * done) once http_stop has closed the queue: the caller serves inline.
 * The suspend happens under the lock so that http_stop cannot close the
 * queue between it and the enqueue and leave the connection suspended. */
static bool
job_queue(struct conn *c, struct MHD_Connection *mc)
{
	struct http_server *srv = c->srv;
	bool queued = false;

	pthread_mutex_lock(&srv->lock);
	if (!srv->closing) {
		c->job = JOB_QUEUED;
		c->mc = mc;
		c->next = NULL;
		MHD_suspend_connection(mc);
		if (srv->tail)
			srv->tail->next = c;
		else
			srv->head = c;
		srv->tail = c;
		pthread_cond_signal(&srv->more);
		queued = true;
	}
	pthread_mutex_unlock(&srv->lock);
	return queued;
}

static void *
worker_main(void *arg)
{
	struct http_server *srv = arg;

	pthread_mutex_lock(&srv->lock);
	for (;;) {
		struct conn *c;
		struct MHD_Connection *mc;
		struct arena_done *done;

		while (!srv->head && !srv->closing)
			pthread_cond_wait(&srv->more, &srv->lock);
		c = srv->head;
		if (!c)
			break; /* closing and drained */
		srv->head = c->next;
		if (!srv->head)
			srv->tail = NULL;
		pthread_mutex_unlock(&srv->lock);

		c->resp = (struct http_resp){0};
		srv->fn(srv->ctx, &c->req, &c->resp);
		done = arena_take_done(c->arena);
		c->job = JOB_DONE;
		mc = c->mc;
		/* The last touch of c: once resumed, the poll thread owns it
		 * and may free it (MHD_resume_connection takes MHD's lock,
		 * which orders the writes above before its next look). */
		MHD_resume_connection(mc);
		/* While the answer goes out: free what the handler left to
		 * free early (a parsed Bundle: milliseconds of free() that
		 * would otherwise sit between this answer and the next
		 * request on the poll thread, freed on the thread that made
		 * it). */
		arena_done_run(done);

		pthread_mutex_lock(&srv->lock);
	}
	pthread_mutex_unlock(&srv->lock);
	return NULL;
}

/* The final call for a complete request: answer inline, or hand the
 * handler to a worker and answer when MHD calls again after the resume. */
static enum MHD_Result
serve(struct conn *c, struct MHD_Connection *mc, const char *url,
      const char *method)
{
	struct http_server *srv = c->srv;

	if (c->job == JOB_DONE) {
		c->job = JOB_NONE;
		return send_resp(c, mc, &c->resp);
	}
	if (c->job == JOB_QUEUED)
		return MHD_YES; /* not expected: MHD does not call a suspended conn */
	if (!req_prepare(c, mc, url, method))
		return send_resp(c, mc, &c->resp);
	if (may_block(method) && job_queue(c, mc))
		return MHD_YES;
	c->resp = (struct http_resp){0};
	srv->fn(srv->ctx, &c->req, &c->resp);
	return send_resp(c, mc, &c->resp);
}

/* Appends upload bytes to the body, in the arena. */
static void
body_add(struct conn *c, const char *p, size_t n)
{
	size_t need;

	if (c->toobig || c->nomem) {
		c->drained += n;
		return;
	}
	if (n > c->srv->max_body - c->body_len) {
		c->toobig = true;
		c->drained += n;
		return;
	}
	need = c->body_len + n + 1;
	if (need > c->body_cap) {
		size_t cap = c->body_cap ? c->body_cap : 4096;
		char *nb;

		while (cap < need)
			cap *= 2;
		if (cap > c->srv->max_body + 1)
			cap = c->srv->max_body + 1;
		nb = c->body ? arena_realloc(c->arena, c->body, c->body_cap, cap)
			     : arena_alloc(c->arena, cap);
		if (!nb) {
			c->nomem = true;
			c->drained += n;
			return;
		}
		c->body = nb;
		c->body_cap = cap;
	}
	memcpy(c->body + c->body_len, p, n);
	c->body_len += n;
}

/* Is more of the body expected? A Content-Length body is complete when
 * that many bytes came; a chunked one only MHD knows about. */
static bool
body_pending(const struct conn *c)
{
	return c->content_length == SIZE_MAX ||
	       c->body_len + c->drained < c->content_length;
}

/* Has the request run past request_timeout_s since its request line? The
 * coarse clock is read from the vDSO (no system call) and a tick of error
 * does not matter for a deadline counted in seconds. */
static bool
past_deadline(const struct conn *c)
{
	struct timespec now;
	long long ns;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	ns = (long long)(now.tv_sec - c->t0.tv_sec) * 1000000000 +
	     (now.tv_nsec - c->t0.tv_nsec);
	return ns >= (long long)c->srv->request_timeout_s * 1000000000;
}

static void
request_begin(struct conn *c, struct MHD_Connection *mc, const char *method)
{
	size_t ml = strlen(method);

	c->active = true;
	c->toobig = false;
	c->nomem = false;
	c->body = NULL;
	c->body_len = c->body_cap = c->drained = 0;
	c->status = 0;
	if (ml >= sizeof(c->method))
		ml = sizeof(c->method) - 1;
	memcpy(c->method, method, ml);
	c->method[ml] = '\0';
	c->content_length = SIZE_MAX;
	c->job = JOB_NONE;
	atomic_fetch_add_explicit(&c->srv->inflight, 1, memory_order_relaxed);
}

/* MHD 0.9.75 stores every query parameter in the connection's memory pool
 * and, when the pool runs out while parsing them, neither answers nor
 * closes: the client waits for the idle timeout. So the query is measured
 * here, before MHD parses it; one that is too long or has too many
 * parameters is cut off (MHD then parses nothing) and answered 414. */
static char uri_too_long; /* marker returned as the request's context */

static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
	const union MHD_ConnectionInfo *ci;
	char *q = strchr(uri, '?');
	size_t params = 1;

	/* The request's clock starts at its request line, the earliest
	 * moment MHD tells us of: the request timeout counts from here. */
	ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (ci && ci->socket_context)
		clock_gettime(CLOCK_MONOTONIC,
			      &((struct conn *)ci->socket_context)->t0);
	if (!q)
		return NULL;
	for (const char *p = q + 1; *p; p++)
		params += *p == '&';
	if (strlen(q + 1) <= MAX_QUERY_BYTES && params <= MAX_QUERY_PARAMS)
		return NULL;
	q[1] = '\0'; /* MHD's own buffer, parsed right after this call */
	return &uri_too_long;
}

static enum MHD_Result
add_header_size(void *cls, enum MHD_ValueKind kind, const char *key,
		size_t key_size, const char *value, size_t value_size)
{
	*(size_t *)cls += key_size + value_size + 4;
	return MHD_YES;
}

/* The pool that holds the headers is large (it also holds the query), so
 * the header limit is checked here, explicitly. */
static bool
headers_too_big(struct MHD_Connection *mc)
{
	size_t n = 0;

	MHD_get_connection_values_n(mc, MHD_HEADER_KIND, add_header_size, &n);
	return n > MAX_HEADER_BYTES;
}

static enum MHD_Result
on_access(void *cls, struct MHD_Connection *mc, const char *url,
	  const char *method, const char *version, const char *upload,
	  size_t *upload_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct conn *c = *con_cls == &uri_too_long ? NULL : *con_cls;

	if (!c) {
		const union MHD_ConnectionInfo *ci;
		const char *cl;
		bool too_long = *con_cls == &uri_too_long;

		ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		if (!ci || !ci->socket_context)
			return MHD_NO;
		c = ci->socket_context;
		request_begin(c, mc, method);
		*con_cls = c;
		if (too_long)
			return send_simple(c, mc, 414, "query string too long\n");
		if (headers_too_big(mc))
			return send_simple(c, mc, 431, "request headers too large\n");
		cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
						 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl) {
			char *end;
			unsigned long long n;

			errno = 0;
			n = strtoull(cl, &end, 10);
			if (errno || end == cl || n > srv->max_body + DRAIN_MAX)
				return send_simple(c, mc, 413,
						   "request body too large\n");
			c->content_length = (size_t)n;
			if (n > srv->max_body) {
				/* A client waiting for 100 Continue is told
				 * now and sends nothing. Any other client is
				 * already sending: read and drop the body,
				 * then answer 413, because closing with the
				 * body unread makes the kernel reset the
				 * connection and the 413 is lost. */
				const char *ex = MHD_lookup_connection_value(
					mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);

				if (ex && !strcasecmp(ex, "100-continue"))
					return send_simple(c, mc, 413,
							   "request body too large\n");
				c->toobig = true;
			} else if (n > 0) {
				/* The exact size up front: no regrowth. */
				c->body = arena_alloc(c->arena, (size_t)n + 1);
				if (!c->body)
					return send_simple(c, mc, 413,
							   "request body too large\n");
				c->body_cap = (size_t)n + 1;
			}
		}
		return MHD_YES;
	}
	if (*upload_size) {
		body_add(c, upload, *upload_size);
		*upload_size = 0;
		/* Draining is for a polite 413; a client that keeps going
		 * far past the limit is cut off. */
		if (c->body_len + c->drained > srv->max_body + DRAIN_MAX)
			return MHD_NO;
		if (body_pending(c) && past_deadline(c))
			return request_timed_out(c, mc);
		return MHD_YES;
	}
	if (c->toobig || c->nomem)
		return send_simple(c, mc, 413, "request body too large\n");
	return serve(c, mc, url, method);
}

static void
on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
	     enum MHD_RequestTerminationCode toe)
{
	struct conn *c = *con_cls;
	struct timespec t1;
	long long us;

	if (!c || !c->active)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	us = (long long)(t1.tv_sec - c->t0.tv_sec) * 1000000 +
	     (t1.tv_nsec - c->t0.tv_nsec) / 1000;
	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
		log_debug("http %s %d %lldus", c->method, c->status, us);
	else
		log_debug("http %s %d %lldus aborted (%d)", c->method, c->status,
			  us, (int)toe);
	arena_reset(c->arena);
	c->body = NULL;
	c->active = false;
	*con_cls = NULL;
	atomic_fetch_sub_explicit(&c->srv->inflight, 1, memory_order_relaxed);
}

static void
on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
	      enum MHD_ConnectionNotificationCode code)
{
	struct http_server *srv = cls;
	struct conn *c = *socket_context;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci;

		c = calloc(1, sizeof(*c));
		if (!c)
			return;
		c->srv = srv;
		c->arena = arena_new(srv->arena_max);
		if (!c->arena) {
			free(c);
			return;
		}
		ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		if (ci && ci->client_addr) {
			const struct sockaddr *sa = ci->client_addr;

			if (sa->sa_family == AF_INET)
				inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
					  c->remote, sizeof(c->remote));
			else if (sa->sa_family == AF_INET6)
				inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
					  c->remote, sizeof(c->remote));
		}
		*socket_context = c;
		return;
	}
	if (!c)
		return;
	if (c->active) {
		/* Not expected (MHD reports completion first); keep the
		 * in-flight count right anyway. */
		atomic_fetch_sub_explicit(&srv->inflight, 1, memory_order_relaxed);
	}
	arena_free(c->arena);
	free(c);
	*socket_context = NULL;
}

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[256];

	/* MHD's own messages (bad requests, resource limits) are about the
	 * protocol, not about patients; still only at debug level. */
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	log_debug("http: mhd: %s", buf);
}

/* ---- start and stop --------------------------------------------------- */

/* Closes the queue, lets the workers finish every job already queued (each
 * ends in a resume) and joins them. After this a blocking request runs
 * inline on its poll thread. */
static void
workers_stop(struct http_server *srv)
{
	pthread_mutex_lock(&srv->lock);
	srv->closing = true;
	pthread_cond_broadcast(&srv->more);
	pthread_mutex_unlock(&srv->lock);
	for (unsigned i = 0; i < srv->nworkers; i++)
		pthread_join(srv->workers[i], NULL);
	srv->nworkers = 0;
}

static void
srv_free(struct http_server *srv)
{
	workers_stop(srv);
	pthread_cond_destroy(&srv->more);
	pthread_mutex_destroy(&srv->lock);
	free(srv->workers);
	free(srv);
}

static enum cw_err
workers_start(struct http_server *srv, unsigned n)
{
	srv->workers = calloc(n, sizeof(*srv->workers));
	if (!srv->workers)
		return CW_ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		if (thread_start(&srv->workers[i], worker_main, srv, "cw-http-worker") != 0)
			return CW_EIO;
		srv->nworkers++;
	}
	return CW_OK;
}

static bool
parse_bind(const char *bind, unsigned port, struct sockaddr_storage *ss,
	   bool *v6)
{
	char buf[INET6_ADDRSTRLEN + 2];
	size_t n = strlen(bind);

	memset(ss, 0, sizeof(*ss));
	if (strcmp(bind, "localhost") == 0)
		bind = "127.0.0.1";
	if (n >= 2 && bind[0] == '[' && bind[n - 1] == ']' && n - 2 < sizeof(buf)) {
		memcpy(buf, bind + 1, n - 2);
		buf[n - 2] = '\0';
		bind = buf;
	}
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	if (inet_pton(AF_INET, bind, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*v6 = false;
		return true;
	}
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET6, bind, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*v6 = true;
		return true;
	}
	return false;
}

struct http_server *
http_start(const struct http_options *opt, http_handler_fn fn, void *ctx,
	   struct diag *d)
{
	struct http_options o = *opt;
	struct http_server *srv;
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *di;
	unsigned flags;
	bool v6;

	if (!o.bind || !*o.bind)
		o.bind = "127.0.0.1";
	if (o.port > 65535) {
		diag_err(d, CW_EINVAL, "value", NULL, "port %u is out of range", o.port);
		return NULL;
	}
	if (!o.tls_cert != !o.tls_key) {
		diag_err(d, CW_EINVAL, "value", NULL,
			 "TLS needs both a certificate and a key");
		return NULL;
	}
	if (!parse_bind(o.bind, o.port, &ss, &v6)) {
		diag_err(d, CW_EINVAL, "value", NULL,
			 "bind address '%s' is not an IPv4 or IPv6 literal", o.bind);
		return NULL;
	}
	if (!o.threads) {
		/* Poll threads never wait (writes go to the workers), so one
		 * per core keeps every core busy. */
		long nc = sysconf(_SC_NPROCESSORS_ONLN);

		o.threads = nc > 0 ? (unsigned)nc : 1;
		if (o.threads > THREADS_MAX)
			o.threads = THREADS_MAX;
	}
	/* A write holds its worker until the group commit is on disk, and a
	 * group can only carry as many writes as there are workers waiting. */
	if (!o.workers)
		o.workers = DEFAULT_WORKERS;
	if (o.workers > WORKERS_MAX)
		o.workers = WORKERS_MAX;
	if (!o.max_conns)
		o.max_conns = DEFAULT_MAX_CONNS;
	if (o.max_conns < o.threads)
		o.max_conns = o.threads;
	if (!o.conn_timeout_s)
		o.conn_timeout_s = DEFAULT_TIMEOUT_S;
	if (!o.request_timeout_s)
		o.request_timeout_s = DEFAULT_REQUEST_TIMEOUT_S;
	if (!o.max_body)
		o.max_body = DEFAULT_MAX_BODY;
	if (!o.gzip_min)
		o.gzip_min = DEFAULT_GZIP_MIN;
	/* The body lives in the arena, so the arena must hold it. */
	if (o.arena_max && o.arena_max < o.max_body + (1u << 20))
		o.arena_max = o.max_body + (1u << 20);

	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		diag_err(d, CW_ENOMEM, "exception", NULL, "out of memory");
		return NULL;
	}
	srv->fn = fn;
	srv->error_fn = o.error_fn;
	srv->ctx = ctx;
	srv->max_body = o.max_body;
	srv->gzip_min = o.gzip_min;
	srv->arena_max = o.arena_max;
	srv->request_timeout_s = o.request_timeout_s;
	srv->tls = o.tls_cert != NULL;
	atomic_init(&srv->inflight, 0);
	pthread_mutex_init(&srv->lock, NULL);
	pthread_cond_init(&srv->more, NULL);
	if (workers_start(srv, o.workers) != CW_OK) {
		diag_err(d, CW_ENOMEM, "exception", NULL,
			 "cannot start %u worker threads", o.workers);
		srv_free(srv);
		return NULL;
	}

	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
		MHD_ALLOW_SUSPEND_RESUME;
	if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
		flags |= MHD_USE_EPOLL;
	else
		flags |= MHD_USE_POLL;
	if (v6)
		flags |= MHD_USE_IPv6;

	/* The logger first, so that MHD's messages about the options that
	 * follow go through it too. */
	struct MHD_OptionItem mo[] = {
		{MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, srv},
		{MHD_OPTION_SOCK_ADDR, 0, &ss},
		{MHD_OPTION_CONNECTION_LIMIT, (intptr_t)o.max_conns, NULL},
		{MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)o.conn_timeout_s, NULL},
		{MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)CONN_MEMORY, NULL},
		{MHD_OPTION_CONNECTION_MEMORY_INCREMENT, (intptr_t)CONN_MEMORY_INCREMENT, NULL},
		{MHD_OPTION_LISTEN_BACKLOG_SIZE, (intptr_t)LISTEN_BACKLOG, NULL},
		{MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, srv},
		{MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, srv},
		{MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, srv},
		/* last, and only with more than one thread (MHD warns on 1) */
		{o.threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
		 (intptr_t)o.threads, NULL},
		{MHD_OPTION_END, 0, NULL},
	};

	struct MHD_OptionItem tls[] = {
		{MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)o.tls_cert},
		{MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)o.tls_key},
		{MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES},
		{MHD_OPTION_END, 0, NULL},
	};

	if (srv->tls)
		flags |= MHD_USE_TLS;
	errno = 0;
	srv->mhd = MHD_start_daemon(flags, (uint16_t)o.port, NULL, NULL,
				    on_access, srv, MHD_OPTION_ARRAY, mo,
				    MHD_OPTION_ARRAY, srv->tls ? tls : tls + 3,
				    MHD_OPTION_END);
	if (!srv->mhd) {
		int e = errno;

		if (srv->tls)
			diag_err(d, CW_EIO, "exception", NULL,
				 "cannot listen on %s port %u with TLS: is the "
				 "certificate and key PEM, and do they match?%s%s",
				 o.bind, o.port, e ? " " : "", e ? strerror(e) : "");
		else
			diag_err(d, CW_EIO, "exception", NULL, "cannot listen on %s port %u%s%s",
				 o.bind, o.port, e ? ": " : "", e ? strerror(e) : "");
		srv_free(srv);
		return NULL;
	}
	di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = di && di->port ? di->port : o.port;
	return srv;
}

unsigned
http_port(const struct http_server *srv)
{
	return srv->port;
}

void
http_stop(struct http_server *srv)
{
	MHD_socket ls;
	struct timespec nap = {0, 10 * 1000 * 1000};

	if (!srv)
		return;
	/* Stop accepting, let requests in flight finish (bounded), then
	 * close everything, idle keep-alive connections included. The
	 * workers are drained and joined before MHD stops: MHD_stop_daemon
	 * must find no connection suspended (see the top of this file). */
	ls = MHD_quiesce_daemon(srv->mhd);
	for (int ms = 0; ms < STOP_GRACE_MS; ms += 10) {
		if (atomic_load(&srv->inflight) <= 0)
			break;
		nanosleep(&nap, NULL);
	}
	workers_stop(srv);
	MHD_stop_daemon(srv->mhd);
	if (ls != MHD_INVALID_SOCKET)
		close(ls);
	srv_free(srv);
}
