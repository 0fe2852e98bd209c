/* tests/unit/http/test_server.c: the HTTP server over real sockets.
 *
 * Starts http/ on port 0 with an echo handler and talks raw HTTP/1.1 to it,
 * so what is checked is what goes over the wire: query parameters in order,
 * bodies, the 413 limits, the request timeout (408), gzip, security
 * headers and keep-alive; and the hand-off of writes to the workers: a POST
 * that blocks does not hold up a GET on the same poll thread, clients that
 * hang up mid-job, and stopping with jobs in flight. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "unit.h"

#include "http/http.h"

#define MAX_BODY 1024

static struct http_server *srv;

static void
nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Echo: method, path, each query pair, then the body. /sleep and /nap
 * first block the thread for 300 ms and 20 ms (a write waiting on a
 * commit). */
static void
echo(void *ctx, struct http_req *r, struct http_resp *w)
{
	struct sbuf sb = SBUF_INIT(1 << 20);
	char *out;
	size_t n;

	if (strcmp(r->path, "/nostatus") == 0)
		return;
	if (strcmp(r->path, "/sleep") == 0)
		nap_ms(300);
	else if (strcmp(r->path, "/nap") == 0)
		nap_ms(20);
	if (strcmp(r->path, "/big") == 0) {
		char *big = arena_alloc(r->arena, 8000);

		assert_non_null(big);
		for (int i = 0; i < 8000; i++)
			big[i] = "{\"resourceType\":\"Patient\"}"[i % 26];
		w->status = 200;
		w->content_type = "application/fhir+json";
		w->body = big;
		w->body_len = 8000;
		return;
	}
	sbuf_addf(&sb, "%s %s\n", r->method, r->path);
	for (size_t i = 0; i < r->nquery; i++)
		sbuf_addf(&sb, "%s=%s\n", r->query[i].key, r->query[i].value);
	const char *h = http_req_header(r, "x-test");
	if (h)
		sbuf_addf(&sb, "x-test: %s\n", h);
	sbuf_addf(&sb, "body(%zu):", r->body_len);
	sbuf_add(&sb, r->body, r->body_len);
	out = arena_alloc(r->arena, sb.len + 1);
	assert_non_null(out);
	memcpy(out, sb.buf, sb.len + 1);
	n = sb.len;
	sbuf_release(&sb);
	w->status = 200;
	w->content_type = "text/plain";
	http_resp_header(w, "X-Echo", "yes");
	w->body = out;
	w->body_len = n;
}

static int
setup(void **state)
{
	struct arena *a = arena_new(0);
	struct diag d;
	struct http_options o = {
		.bind = "127.0.0.1",
		.port = 0,
		.threads = 2,
		.max_body = MAX_BODY,
		.conn_timeout_s = 5,
	};

	diag_init(&d, a);
	srv = http_start(&o, echo, NULL, &d);
	arena_free(a);
	return srv ? 0 : -1;
}

static int
teardown(void **state)
{
	http_stop(srv);
	return 0;
}

static int
dial(void)
{
	struct sockaddr_in sa = {0};
	struct timeval tv = {5, 0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)http_port(srv));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void
send_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t k = send(fd, s, n, MSG_NOSIGNAL);

		if (k <= 0)
			return; /* the server may close early (413) */
		s += k;
		n -= (size_t)k;
	}
}

struct resp {
	int status;
	char head[4096];
	char *body;
	size_t body_len;
};

/* Reads one response (Content-Length framed, which is all MHD sends for
 * buffer responses). buf carries bytes read past it to the next call. */
static char carry[65536];
static size_t ncarry;

static void
read_resp(int fd, struct resp *r)
{
	char *end;
	size_t need;
	const char *cl;

	memset(r, 0, sizeof(*r));
	for (;;) {
		carry[ncarry] = '\0';
		end = strstr(carry, "\r\n\r\n");
		if (end)
			break;
		ssize_t k = recv(fd, carry + ncarry, sizeof(carry) - 1 - ncarry, 0);
		assert_true(k > 0);
		ncarry += (size_t)k;
	}
	size_t hl = (size_t)(end - carry) + 4;
	assert_true(hl < sizeof(r->head));
	memcpy(r->head, carry, hl);
	r->head[hl] = '\0';
	assert_int_equal(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1);
	cl = strcasestr(r->head, "\r\nContent-Length:");
	need = cl ? strtoul(cl + 17, NULL, 10) : 0;
	while (ncarry < hl + need) {
		ssize_t k = recv(fd, carry + ncarry, sizeof(carry) - 1 - ncarry, 0);
		assert_true(k > 0);
		ncarry += (size_t)k;
	}
	r->body = malloc(need + 1);
	memcpy(r->body, carry + hl, need);
	r->body[need] = '\0';
	r->body_len = need;
	memmove(carry, carry + hl + need, ncarry - hl - need);
	ncarry -= hl + need;
}

static void
roundtrip(const char *req, struct resp *r)
{
	int fd = dial();

	ncarry = 0;
	send_all(fd, req, strlen(req));
	read_resp(fd, r);
	close(fd);
}

static bool
has_header(const struct resp *r, const char *line)
{
	return strcasestr(r->head, line) != NULL;
}

static void
test_get_query_repeats(void **state)
{
	struct resp r;

	roundtrip("GET /fhir/Patient?name=a%20b&name=c&_count=2&flag HTTP/1.1\r\n"
		  "Host: x\r\nX-Test: hello\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "GET /fhir/Patient\nname=a b\nname=c\n_count=2\n"
				    "flag=\nx-test: hello\nbody(0):");
	assert_true(has_header(&r, "\r\nX-Echo: yes\r\n"));
	free(r.body);
}

static void
test_decoded_path(void **state)
{
	struct resp r;

	roundtrip("GET /fhir/a%20b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "GET /fhir/a b\nbody(0):");
	free(r.body);
}

static void
test_post_body(void **state)
{
	struct resp r;

	roundtrip("POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
		  "Content-Length: 11\r\nConnection: close\r\n\r\nhello world", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "POST /fhir/Patient\nbody(11):hello world");
	free(r.body);
}

static void
test_post_chunked(void **state)
{
	struct resp r;

	roundtrip("POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
		  "Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "POST /c\nbody(11):hello world");
	free(r.body);
}

static void
test_body_too_big_by_length(void **state)
{
	char req[256];
	struct resp r;

	struct sbuf sb = SBUF_INIT(0);

	/* With Expect: 100-continue: answered before any body byte is sent. */
	snprintf(req, sizeof(req), "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
		 "Expect: 100-continue\r\n\r\n", MAX_BODY + 1);
	roundtrip(req, &r);
	assert_int_equal(r.status, 413);
	assert_true(has_header(&r, "\r\nX-Content-Type-Options: nosniff\r\n"));
	free(r.body);

	/* Without it the client sends the body at once: the server reads it
	 * to the end and answers 413 (not a connection reset). */
	sbuf_addf(&sb, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
		  "Connection: close\r\n\r\n", MAX_BODY + 1);
	for (int i = 0; i < MAX_BODY + 1; i++)
		sbuf_addch(&sb, 'a');
	roundtrip(sb.buf, &r);
	sbuf_release(&sb);
	assert_int_equal(r.status, 413);
	free(r.body);
}

static void
test_body_too_big_chunked(void **state)
{
	struct sbuf sb = SBUF_INIT(0);
	struct resp r;

	sbuf_adds(&sb, "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
		       "Connection: close\r\n\r\n");
	for (int i = 0; i < 3; i++) {
		sbuf_addf(&sb, "%x\r\n", 600);
		for (int j = 0; j < 600; j++)
			sbuf_addch(&sb, 'a');
		sbuf_adds(&sb, "\r\n");
	}
	sbuf_adds(&sb, "0\r\n\r\n");
	roundtrip(sb.buf, &r);
	sbuf_release(&sb);
	assert_int_equal(r.status, 413);
	free(r.body);
}

static void
test_gzip(void **state)
{
	struct resp r;
	unsigned char out[10000];
	z_stream z = {0};

	roundtrip("GET /big HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br, gzip;q=0.8\r\n"
		  "Connection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_true(has_header(&r, "\r\nContent-Encoding: gzip\r\n"));
	assert_true(has_header(&r, "\r\nVary: Accept-Encoding\r\n"));
	assert_true(r.body_len < 8000);
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = (unsigned char *)r.body;
	z.avail_in = (uInt)r.body_len;
	z.next_out = out;
	z.avail_out = sizeof(out);
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	assert_int_equal(z.total_out, 8000);
	assert_memory_equal(out, "{\"resourceType\":\"Patient\"}", 26);
	inflateEnd(&z);
	free(r.body);

	/* Refused with q=0, or not asked for: plain. */
	roundtrip("GET /big HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip;q=0, *\r\n"
		  "Connection: close\r\n\r\n", &r);
	assert_false(has_header(&r, "Content-Encoding"));
	assert_int_equal(r.body_len, 8000);
	free(r.body);
	roundtrip("GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_false(has_header(&r, "Content-Encoding"));
	free(r.body);
}

static void
test_security_headers(void **state)
{
	struct resp r;

	roundtrip("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_true(has_header(&r, "\r\nX-Content-Type-Options: nosniff\r\n"));
	assert_true(has_header(&r, "\r\nCache-Control: no-store\r\n"));
	assert_true(has_header(&r, "\r\nReferrer-Policy: no-referrer\r\n"));
	assert_true(has_header(&r, "\r\nX-Frame-Options: DENY\r\n"));
	assert_true(has_header(&r, "\r\nContent-Security-Policy: default-src 'none'; "
				   "frame-ancestors 'none'\r\n"));
	free(r.body);
}

static void
test_no_status_is_500(void **state)
{
	struct resp r;

	roundtrip("GET /nostatus HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 500);
	free(r.body);
}

static void
test_keep_alive(void **state)
{
	int fd = dial();
	struct resp r;
	const char *req = "POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";

	ncarry = 0;
	send_all(fd, req, strlen(req));
	read_resp(fd, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "POST /one\nbody(3):abc");
	free(r.body);
	req = "GET /two?x=1 HTTP/1.1\r\nHost: x\r\n\r\n";
	send_all(fd, req, strlen(req));
	read_resp(fd, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "GET /two\nx=1\nbody(0):");
	free(r.body);
	close(fd);
}

/* A client that goes away mid-body, or sends headers past the connection
 * memory, leaves the server serving. */
static void
test_abort_and_big_headers(void **state)
{
	const char *req = "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n0123456789";
	struct sbuf sb = SBUF_INIT(0);
	struct resp r;
	int fd = dial();

	send_all(fd, req, strlen(req));
	close(fd);

	sbuf_adds(&sb, "GET /h HTTP/1.1\r\nHost: x\r\nX-Big: ");
	for (int i = 0; i < 100000; i++)
		sbuf_addch(&sb, 'a');
	sbuf_adds(&sb, "\r\nConnection: close\r\n\r\n");
	roundtrip(sb.buf, &r);
	sbuf_release(&sb);
	assert_true(r.status == 431 || r.status == 413);
	free(r.body);

	roundtrip("GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	free(r.body);
}

/* error_fn for the timeout server: a recognizable body. */
static void
error_body(void *ctx, struct arena *a, int status, const char *msg,
	   struct http_resp *w)
{
	w->status = status;
	w->content_type = "application/x-test";
	w->body = arena_printf(a, "error %d: %.*s", status,
			       (int)strcspn(msg, "\n"), msg);
	w->body_len = w->body ? strlen(w->body) : 0;
}

static struct http_server *
start_timeout_server(void)
{
	struct arena *a = arena_new(0);
	struct http_server *s;
	struct diag d;
	struct http_options o = {
		.bind = "127.0.0.1",
		.threads = 1,
		.max_body = MAX_BODY,
		.conn_timeout_s = 5,
		.request_timeout_s = 1,
		.error_fn = error_body,
	};

	diag_init(&d, a);
	s = http_start(&o, echo, NULL, &d);
	arena_free(a);
	assert_non_null(s);
	return s;
}

/* request_timeout_s: a body chunk that arrives after the deadline with
 * more to come gets 408 (error_fn's body) and the connection closes; a
 * body that completes in time, or whose last chunk is the late one, is
 * served. */
static void
test_request_timeout(void **state)
{
	const char *head = "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n";
	struct http_server *saved = srv;
	struct resp r;
	char byte;
	int fd;

	srv = start_timeout_server();

	/* Late and not finished: 408, then the server closes. */
	fd = dial();
	ncarry = 0;
	send_all(fd, head, strlen(head));
	send_all(fd, "0123456789", 10);
	nap_ms(1200);
	send_all(fd, "01234", 5);
	read_resp(fd, &r);
	assert_int_equal(r.status, 408);
	assert_true(has_header(&r, "\r\nConnection: close\r\n"));
	assert_true(has_header(&r, "\r\nContent-Type: application/x-test\r\n"));
	assert_true(has_header(&r, "\r\nX-Content-Type-Options: nosniff\r\n"));
	assert_string_equal(r.body, "error 408: request timeout: the body did not "
				    "arrive in time");
	free(r.body);
	assert_int_equal(recv(fd, &byte, 1, 0), 0);
	close(fd);

	/* Slow but in time: served. */
	fd = dial();
	ncarry = 0;
	send_all(fd, head, strlen(head));
	send_all(fd, "0123456789", 10);
	nap_ms(300);
	send_all(fd, "abcdefghij", 10);
	read_resp(fd, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "POST /slow\nbody(20):0123456789abcdefghij");
	free(r.body);
	close(fd);

	/* The late chunk completes the body: nothing left to wait for, so
	 * it is served rather than refused. */
	fd = dial();
	ncarry = 0;
	send_all(fd, head, strlen(head));
	nap_ms(1200);
	send_all(fd, "0123456789abcdefghij", 20);
	read_resp(fd, &r);
	assert_int_equal(r.status, 200);
	free(r.body);
	close(fd);

	http_stop(srv);
	srv = saved;
}

/* One poll thread, so that a handler blocking it would hold up every
 * other connection. */
static struct http_server *
start_one_poll_thread(unsigned workers)
{
	struct arena *a = arena_new(0);
	struct http_server *s;
	struct diag d;
	struct http_options o = {
		.bind = "127.0.0.1",
		.threads = 1,
		.workers = workers,
		.max_body = MAX_BODY,
		.conn_timeout_s = 5,
	};

	diag_init(&d, a);
	s = http_start(&o, echo, NULL, &d);
	arena_free(a);
	assert_non_null(s);
	return s;
}

static const char sleep_req[] =
	"POST /sleep HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";

/* A POST whose handler blocks for 300 ms runs on a worker: a GET on
 * another connection, on the same (only) poll thread, is answered at once,
 * and the POST is answered after its handler returns. */
static void
test_blocking_post_does_not_delay_get(void **state)
{
	struct http_server *saved = srv;
	const char *req;
	struct resp r;
	long t0, t;
	int fd;

	srv = start_one_poll_thread(4);
	fd = dial();
	t0 = now_ms();
	send_all(fd, sleep_req, strlen(sleep_req));
	nap_ms(30); /* let it reach its worker */

	t = now_ms();
	roundtrip("GET /quick HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	t = now_ms() - t;
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "GET /quick\nbody(0):");
	free(r.body);
	assert_true(t < 150);

	ncarry = 0;
	read_resp(fd, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "POST /sleep\nbody(3):abc");
	free(r.body);
	assert_true(now_ms() - t0 >= 300);

	/* The connection stays usable after its suspended request. */
	req = "GET /next HTTP/1.1\r\nHost: x\r\n\r\n";
	send_all(fd, req, strlen(req));
	ncarry = 0;
	read_resp(fd, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "GET /next\nbody(0):");
	free(r.body);
	close(fd);
	http_stop(srv);
	srv = saved;
}

#define NCONC 48

/* Many POSTs at once, more than there are workers, two per keep-alive
 * connection: every one answered, each with its own body. */
static void
test_many_concurrent_posts(void **state)
{
	struct http_server *saved = srv;
	int fds[NCONC];
	char req[160], want[64];
	struct resp r;

	srv = start_one_poll_thread(8);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < NCONC; i++) {
			if (!round)
				fds[i] = dial();
			snprintf(req, sizeof(req), "%s /nap HTTP/1.1\r\nHost: x\r\n"
				 "Content-Length: 6\r\n\r\nb%02d-%02d",
				 i % 3 == 2 ? "DELETE" : i % 3 ? "PUT" : "POST", round, i);
			send_all(fds[i], req, strlen(req));
		}
		for (int i = 0; i < NCONC; i++) {
			ncarry = 0;
			read_resp(fds[i], &r);
			assert_int_equal(r.status, 200);
			snprintf(want, sizeof(want), "%s /nap\nbody(6):b%02d-%02d",
				 i % 3 == 2 ? "DELETE" : i % 3 ? "PUT" : "POST", round, i);
			assert_string_equal(r.body, want);
			free(r.body);
		}
	}
	for (int i = 0; i < NCONC; i++)
		close(fds[i]);
	http_stop(srv);
	srv = saved;
}

/* Closes with a reset, so the server's next send fails at once. */
static void
hang_up(int fd)
{
	struct linger l = {1, 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

/* Clients that go away while their POST runs on a worker, or waits in the
 * queue behind a busy one: the server stays up and keeps serving (and
 * under ASan, nothing touches a freed connection). */
static void
test_client_gone_during_job(void **state)
{
	struct http_server *saved = srv;
	struct resp r;
	int running, queued, fin;

	srv = start_one_poll_thread(1);
	running = dial();
	send_all(running, sleep_req, strlen(sleep_req));
	nap_ms(30);
	queued = dial();
	send_all(queued, sleep_req, strlen(sleep_req));
	fin = dial(); /* a polite close (FIN) while queued */
	send_all(fin, sleep_req, strlen(sleep_req));
	nap_ms(30);
	hang_up(running);
	hang_up(queued);
	close(fin);

	/* Reads go on meanwhile... */
	roundtrip("GET /alive HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	free(r.body);
	/* ...and once the three jobs are done, writes too. */
	nap_ms(1000);
	roundtrip("POST /after HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
		  "Connection: close\r\n\r\nok", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "POST /after\nbody(2):ok");
	free(r.body);
	http_stop(srv);
	srv = saved;
}

/* http_stop with a POST running, more queued, one whose client left: the
 * jobs finish (the clients still within the grace period get their
 * answer), and then the server stops without a crash. */
static void
test_stop_with_posts_in_flight(void **state)
{
	struct http_server *saved = srv;
	struct resp r;
	int fds[3], gone;

	srv = start_one_poll_thread(1);
	for (int i = 0; i < 3; i++) {
		fds[i] = dial();
		send_all(fds[i], sleep_req, strlen(sleep_req));
	}
	gone = dial();
	send_all(gone, sleep_req, strlen(sleep_req));
	nap_ms(50);
	hang_up(gone);
	http_stop(srv);
	srv = saved;
	for (int i = 0; i < 3; i++) {
		ncarry = 0;
		read_resp(fds[i], &r);
		assert_int_equal(r.status, 200);
		assert_string_equal(r.body, "POST /sleep\nbody(3):abc");
		free(r.body);
		close(fds[i]);
	}

	/* Stopped at once, before the worker got to the job. */
	srv = start_one_poll_thread(2);
	fds[0] = dial();
	send_all(fds[0], sleep_req, strlen(sleep_req));
	http_stop(srv);
	close(fds[0]);
	srv = saved;
}

static void
test_bad_bind(void **state)
{
	struct arena *a = arena_new(0);
	struct diag d;
	struct http_options o = {.bind = "not-an-address", .port = 0};

	diag_init(&d, a);
	assert_null(http_start(&o, echo, NULL, &d));
	assert_true(diag_has_errors(&d));
	arena_free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_query_repeats),
		cmocka_unit_test(test_decoded_path),
		cmocka_unit_test(test_post_body),
		cmocka_unit_test(test_post_chunked),
		cmocka_unit_test(test_body_too_big_by_length),
		cmocka_unit_test(test_body_too_big_chunked),
		cmocka_unit_test(test_gzip),
		cmocka_unit_test(test_security_headers),
		cmocka_unit_test(test_no_status_is_500),
		cmocka_unit_test(test_keep_alive),
		cmocka_unit_test(test_abort_and_big_headers),
		cmocka_unit_test(test_request_timeout),
		cmocka_unit_test(test_blocking_post_does_not_delay_get),
		cmocka_unit_test(test_many_concurrent_posts),
		cmocka_unit_test(test_client_gone_during_job),
		cmocka_unit_test(test_stop_with_posts_in_flight),
		cmocka_unit_test(test_bad_bind),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
