/* tests/unit/hl7v2/test_mllp.c: the MLLP listener over real sockets.
 *
 * The handler answers "ACK:" and the message (or "BIG:" and the bytes
 * kept for one over max_message), so what is checked is what goes over
 * the wire: framing split and joined across writes, bytes outside frames,
 * restarts and broken frames, many senders at once, the limits and
 * timeouts, senders that vanish or stop reading, stopping with
 * connections open, and the same over TLS with a throwaway certificate.
 * SIGPIPE is left at its default on purpose: a write to a closed peer
 * that raised it would end this test. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include <gnutls/gnutls.h>

#include "unit.h"

#include "hl7v2/mllp.h"

static atomic_int calls;
static atomic_int started;   /* handlers begun */
static atomic_int last_big;  /* too_big of the last call */

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

/* "ACK:<msg>"; "BIG:<kept bytes>" for too_big; a message starting with
 * SLEEP first takes 300 ms; QUIET gets no answer; HUGE answers 600 KiB;
 * LEN answers "LEN:<its length>". */
static void
handler(void *ctx, const char *msg, size_t n, bool too_big, const char *peer,
	struct sbuf *reply)
{
	atomic_fetch_add(&started, 1);
	assert_int_equal(msg[n], '\0');
	assert_non_null(strchr(peer, ':'));
	assert_int_equal(reply->len, 0);
	atomic_store(&last_big, too_big);
	if (n >= 5 && memcmp(msg, "SLEEP", 5) == 0)
		nap_ms(300);
	if (too_big) {
		sbuf_addf(reply, "BIG:%zu", n);
	} else if (n >= 5 && memcmp(msg, "QUIET", 5) == 0) {
		/* nothing */
	} else if (n >= 3 && memcmp(msg, "LEN", 3) == 0) {
		sbuf_addf(reply, "LEN:%zu", n);
	} else if (n >= 4 && memcmp(msg, "HUGE", 4) == 0) {
		for (int i = 0; i < 600 * 1024 / 8; i++)
			sbuf_add(reply, "01234567", 8);
	} else {
		sbuf_adds(reply, "ACK:");
		sbuf_add(reply, msg, n);
	}
	atomic_fetch_add(&calls, 1);
}

static struct mllp *
start(const struct mllp_options *o)
{
	struct arena *a = arena_new(0);
	struct diag d;
	struct mllp *l;

	diag_init(&d, a);
	l = mllp_start(o, handler, NULL, &d);
	if (!l)
		fprintf(stderr, "mllp_start: %s\n", d.n ? d.issues[0].msg : "?");
	arena_free(a);
	assert_non_null(l);
	return l;
}

static int
dial(const struct mllp *l)
{
	struct sockaddr_in sa = {0};
	struct timeval tv = {5, 0};
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	assert_true(fd >= 0);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)mllp_port(l));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void
send_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t k = send(fd, s, n, MSG_NOSIGNAL);

		assert_true(k > 0);
		s += k;
		n -= (size_t)k;
	}
}

static void
send_str(int fd, const char *s)
{
	send_all(fd, s, strlen(s));
}

/* Reads one framed answer into out (unframed, NUL-terminated). */
static void
read_frame(int fd, char *out, size_t cap)
{
	size_t n = 0;
	char ch;

	assert_int_equal(recv(fd, &ch, 1, 0), 1);
	assert_int_equal(ch, 0x0B);
	for (;;) {
		assert_int_equal(recv(fd, &ch, 1, 0), 1);
		if (ch == 0x1C)
			break;
		assert_true(n + 1 < cap);
		out[n++] = ch;
	}
	assert_int_equal(recv(fd, &ch, 1, 0), 1);
	assert_int_equal(ch, 0x0D);
	out[n] = '\0';
}

static void
expect_frame(int fd, const char *want)
{
	char buf[4096];

	read_frame(fd, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

/* The server closes fd within ms: recv sees the end (or a reset). */
static void
expect_closed(int fd, long ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char buf[64];

	assert_int_equal(poll(&p, 1, (int)ms), 1);
	assert_true(recv(fd, buf, sizeof(buf), 0) <= 0);
}

/* Nothing arrives on fd within ms. */
static void
expect_quiet(int fd, long ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	assert_int_equal(poll(&p, 1, (int)ms), 0);
}

static struct mllp *lis; /* the default listener of most tests */

static int
setup(void **state)
{
	struct mllp_options o = {.max_message = 64, .idle_timeout_s = 5};

	lis = start(&o);
	return 0;
}

static int
teardown(void **state)
{
	mllp_stop(lis);
	return 0;
}

static void
test_one_message(void **state)
{
	int fd = dial(lis);

	send_str(fd, "\x0bMSH|one\r\x1c\x0d");
	expect_frame(fd, "ACK:MSH|one\r");
	close(fd);
}

static void
test_several_in_one_write(void **state)
{
	int fd = dial(lis);

	send_str(fd, "\x0b" "A1\x1c\x0d\x0b" "B22\x1c\x0d\x0b" "C333\x1c\x0d");
	expect_frame(fd, "ACK:A1");
	expect_frame(fd, "ACK:B22");
	expect_frame(fd, "ACK:C333");
	close(fd);
}

static void
test_split_byte_by_byte(void **state)
{
	const char *m = "\x0bMSH|split|me\rPID|1\r\x1c\x0d";
	int fd = dial(lis);

	for (const char *p = m; *p; p++) {
		send_all(fd, p, 1);
		nap_ms(2);
	}
	expect_frame(fd, "ACK:MSH|split|me\rPID|1\r");
	close(fd);
}

static void
test_outside_frames_and_restart(void **state)
{
	int fd = dial(lis);

	/* garbage, a stray end block, then a frame */
	send_str(fd, "junk\r\n\x1c\x0dmore\x0bGOOD\x1c\x0d");
	expect_frame(fd, "ACK:GOOD");
	/* a 0x0B inside a message starts it again */
	send_str(fd, "\x0bhalf of one\x0bWHOLE\x1c\x0d");
	expect_frame(fd, "ACK:WHOLE");
	/* 0x1C not followed by 0x0D: that frame is dropped, unanswered,
	 * and the byte after it is read outside a frame (here a 0x0B) */
	send_str(fd, "\x0b" "BAD\x1cX\x0b" "BAD2\x1c\x0bNEXT\x1c\x0d");
	expect_frame(fd, "ACK:NEXT");
	/* an empty message is a message */
	send_str(fd, "\x0b\x1c\x0d");
	expect_frame(fd, "ACK:");
	close(fd);
}

static void
test_nul_and_binary_bytes(void **state)
{
	int fd = dial(lis);
	char want[8] = {'A', 'C', 'K', ':', 'a', '\0', 'b', '\x0d'};
	char buf[16] = {0};
	ssize_t k;

	send_all(fd, "\x0b" "a\0b\x0d\x1c\x0d", 7);
	/* the answer holds a NUL: read it raw */
	k = recv(fd, buf, 11, MSG_WAITALL);
	assert_int_equal(k, 11);
	assert_int_equal(buf[0], 0x0B);
	assert_memory_equal(buf + 1, want, 8);
	assert_int_equal(buf[9], 0x1C);
	assert_int_equal(buf[10], 0x0D);
	close(fd);
}

static void
concurrent(int n)
{
	int fd[10];
	char m[64], want[64];

	for (int i = 0; i < n; i++)
		fd[i] = dial(lis);
	for (int i = 0; i < n; i++) {
		snprintf(m, sizeof(m), "\x0bSLEEP %d\x1c\x0d", i);
		send_str(fd[i], m);
	}
	for (int i = 0; i < n; i++) {
		snprintf(want, sizeof(want), "ACK:SLEEP %d", i);
		expect_frame(fd[i], want);
		close(fd[i]);
	}
}

static void
test_two_concurrent(void **state)
{
	long t0 = now_ms();

	concurrent(2);
	/* two handlers of 300 ms ran side by side */
	assert_true(now_ms() - t0 < 590);
}

static void
test_ten_concurrent(void **state)
{
	long t0 = now_ms();

	concurrent(10);
	/* four workers: three rounds of 300 ms, not ten */
	assert_true(now_ms() - t0 < 2000);
}

static void
test_in_order_on_one_connection(void **state)
{
	int fd = dial(lis);

	/* the second waits for the first, though it is quick */
	send_str(fd, "\x0bSLEEP a\x1c\x0d\x0bquick b\x1c\x0d");
	expect_frame(fd, "ACK:SLEEP a");
	expect_frame(fd, "ACK:quick b");
	close(fd);
}

static void
test_too_big(void **state)
{
	char big[300];
	int fd = dial(lis);

	memset(big, 'x', sizeof(big));
	big[0] = 0x0b;
	big[sizeof(big) - 2] = 0x1c;
	big[sizeof(big) - 1] = 0x0d;
	send_all(fd, big, sizeof(big));
	expect_frame(fd, "BIG:64"); /* max_message bytes were kept */
	assert_true(atomic_load(&last_big));
	/* the connection survives */
	send_str(fd, "\x0bsmall\x1c\x0d");
	expect_frame(fd, "ACK:small");
	assert_false(atomic_load(&last_big));
	/* exactly max_message is not too big */
	memset(big, 'y', sizeof(big));
	big[0] = 0x0b;
	big[65] = 0x1c;
	big[66] = 0x0d;
	send_all(fd, big, 67);
	read_frame(fd, big, sizeof(big));
	assert_int_equal(strlen(big), 4 + 64);
	close(fd);
}

/* A sender that sends and then shuts its side (printf ... | nc) still
 * gets its answers, then the close. */
static void
test_half_close(void **state)
{
	int fd = dial(lis);

	send_str(fd, "\x0bone\x1c\x0d\x0btwo\x1c\x0d");
	shutdown(fd, SHUT_WR);
	expect_frame(fd, "ACK:one");
	expect_frame(fd, "ACK:two");
	expect_closed(fd, 1000);
	close(fd);
}

static void
test_ipv6(void **state)
{
	struct arena *a = arena_new(0);
	struct mllp_options o = {.bind = "::1"};
	struct sockaddr_in6 sa = {0};
	struct timeval tv = {5, 0};
	struct diag d;
	struct mllp *l;
	int fd;

	diag_init(&d, a);
	l = mllp_start(&o, handler, NULL, &d);
	arena_free(a);
	if (!l)
		skip(); /* no IPv6 loopback here */
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	sa.sin6_family = AF_INET6;
	sa.sin6_port = htons((uint16_t)mllp_port(l));
	sa.sin6_addr = in6addr_loopback;
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	send_str(fd, "\x0bsix\x1c\x0d");
	expect_frame(fd, "ACK:six");
	close(fd);
	mllp_stop(l);
}

static void
test_no_answer(void **state)
{
	int fd = dial(lis);

	send_str(fd, "\x0bQUIET\x1c\x0d");
	expect_quiet(fd, 150);
	send_str(fd, "\x0bthen\x1c\x0d");
	expect_frame(fd, "ACK:then");
	close(fd);
}

/* A sender that never reads its (large) answers holds up nobody. */
static void
test_slow_reader(void **state)
{
	int slow = dial(lis), fd;
	long t0;

	for (int i = 0; i < 8; i++)
		send_str(slow, "\x0bHUGE\x1c\x0d");
	nap_ms(100);
	t0 = now_ms();
	fd = dial(lis);
	send_str(fd, "\x0b" "fast\x1c\x0d");
	expect_frame(fd, "ACK:fast");
	assert_true(now_ms() - t0 < 1000);
	close(fd);
	close(slow); /* with answers unread: the listener sees a reset */
	fd = dial(lis);
	send_str(fd, "\x0b" "after\x1c\x0d");
	expect_frame(fd, "ACK:after");
	close(fd);
}

static void
test_peer_closes_mid_message(void **state)
{
	int before, fd = dial(lis);

	send_str(fd, "\x0bhalf a mess");
	nap_ms(20);
	before = atomic_load(&calls);
	close(fd);
	/* and one that leaves while its message is being handled */
	fd = dial(lis);
	send_str(fd, "\x0bSLEEP gone\x1c\x0d");
	nap_ms(20);
	close(fd);
	nap_ms(400);
	assert_int_equal(atomic_load(&calls), before + 1);
	fd = dial(lis);
	send_str(fd, "\x0bstill here\x1c\x0d");
	expect_frame(fd, "ACK:still here");
	close(fd);
}

/* The framing rules of src/hl7v2/README.md (the listener), a byte at a time, as a model for
 * the listener's (which scans whole reads): appends each message the
 * handler should see, as the test handler answers it, to out. */
struct model {
	int st; /* 0 outside, 1 in, 2 after 0x1C */
	char cur[128];
	size_t n;
	bool big;
};

static void
model_byte(struct model *m, unsigned char b, struct sbuf *out)
{
	if (m->st == 2) {
		m->st = 0;
		if (b == 0x0D) {
			sbuf_addch(out, 0x0B);
			if (m->big) {
				sbuf_addf(out, "BIG:64");
			} else {
				sbuf_adds(out, "ACK:");
				sbuf_add(out, m->cur, m->n);
			}
			sbuf_add(out, "\x1c\x0d", 2);
			return;
		}
	}
	if (m->st == 0) {
		if (b == 0x0B) {
			m->st = 1;
			m->n = 0;
			m->big = false;
		}
		return;
	}
	if (b == 0x0B) {
		m->n = 0;
		m->big = false;
	} else if (b == 0x1C) {
		m->st = 2;
	} else if (m->n < 64) {
		m->cur[m->n++] = (char)b;
	} else {
		m->big = true;
	}
}

/* Frames, broken frames, restarts and noise at random, sent in random
 * pieces: the answers are the model's, in order, and nothing else. */
static void
test_random_framing(void **state)
{
	static const char alpha[] = "abcxyz019|^~&\r\n\0";
	struct sbuf in = SBUF_INIT(0), want = SBUF_INIT(0);
	struct model m = {0};
	unsigned x = 2026;
	int fd = dial(lis);
	char *got;
	size_t off = 0;

#define RND() (x = x * 1103515245u + 12345u, (x >> 16) & 0x7fff)
	for (int i = 0; i < 400; i++) {
		unsigned kind = RND() % 10, len = RND() % 90;

		if (kind < 6) /* a good frame, sometimes too long */
			sbuf_addch(&in, 0x0B);
		for (unsigned j = 0; j < len; j++) {
			if (kind >= 8 && RND() % 5 == 0)
				sbuf_addch(&in, "\x0b\x1c\x0d"[RND() % 3]);
			else
				sbuf_addch(&in, alpha[RND() % (sizeof(alpha) - 1)]);
		}
		if (kind < 6) {
			sbuf_addch(&in, 0x1C);
			sbuf_addch(&in, 0x0D);
		} else if (kind == 6) { /* a broken end */
			sbuf_addch(&in, 0x1C);
		}
	}
#undef RND
	for (size_t i = 0; i < in.len; i++)
		model_byte(&m, (unsigned char)in.buf[i], &want);
	while (off < in.len) {
		size_t k = 1 + (size_t)(rand() % 300);

		if (k > in.len - off)
			k = in.len - off;
		send_all(fd, in.buf + off, k);
		off += k;
	}
	assert_true(want.len > 1000);
	got = malloc(want.len);
	assert_int_equal(recv(fd, got, want.len, MSG_WAITALL), (ssize_t)want.len);
	assert_memory_equal(got, want.buf, want.len);
	expect_quiet(fd, 100);
	free(got);
	sbuf_release(&in);
	sbuf_release(&want);
	close(fd);
}

/* Random bytes, framing characters among them: no crash, no hang. */
static void
test_noise(void **state)
{
	static char noise[1 << 16];
	unsigned x = 12345;
	int fd = dial(lis);

	for (size_t i = 0; i < sizeof(noise); i++) {
		x = x * 1103515245u + 12345u;
		noise[i] = (char)(x >> 16);
		if ((x >> 8) % 7 == 0)
			noise[i] = "\x0b\x1c\x0d"[(x >> 4) % 3];
	}
	send_all(fd, noise, sizeof(noise));
	close(fd);
	fd = dial(lis);
	send_str(fd, "\x0bok\x1c\x0d");
	expect_frame(fd, "ACK:ok");
	close(fd);
}

static void
test_idle_timeout(void **state)
{
	struct mllp_options o = {.idle_timeout_s = 1};
	struct mllp *l = start(&o);
	int fd = dial(l);
	long t0 = now_ms();

	send_str(fd, "\x0bhello\x1c\x0d");
	expect_frame(fd, "ACK:hello");
	expect_closed(fd, 2500);
	assert_true(now_ms() - t0 >= 900);
	close(fd);
	mllp_stop(l);
}

/* A message dribbled in, a byte at a time inside the idle timeout, is
 * still cut off at message_timeout_s. */
static void
test_message_timeout(void **state)
{
	struct mllp_options o = {.idle_timeout_s = 10, .message_timeout_s = 1};
	struct mllp *l = start(&o);
	int fd = dial(l);
	long t0 = now_ms();
	bool closed = false;

	send_str(fd, "\x0b");
	while (now_ms() - t0 < 3000) {
		if (send(fd, "x", 1, MSG_NOSIGNAL) != 1) {
			closed = true;
			break;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 200) == 1) {
			char b;

			assert_true(recv(fd, &b, 1, 0) <= 0);
			closed = true;
			break;
		}
	}
	assert_true(closed);
	assert_true(now_ms() - t0 >= 900);
	close(fd);
	mllp_stop(l);
}

static void
test_max_conns(void **state)
{
	struct mllp_options o = {.max_conns = 2};
	struct mllp *l = start(&o);
	int a = dial(l), b = dial(l), c;

	send_str(a, "\x0b" "a\x1c\x0d");
	expect_frame(a, "ACK:a");
	send_str(b, "\x0b" "b\x1c\x0d");
	expect_frame(b, "ACK:b");
	c = dial(l); /* the kernel accepts it; the listener closes it */
	expect_closed(c, 1000);
	close(c);
	close(a);
	/* a place is free again once the listener noticed */
	for (int i = 0; i < 50; i++) {
		c = dial(l);
		if (send(c, "\x0b" "c\x1c\x0d", 4, MSG_NOSIGNAL) == 4) {
			char buf[16];
			struct pollfd p = {.fd = c, .events = POLLIN};

			if (poll(&p, 1, 1000) == 1 && recv(c, buf, 1, MSG_PEEK) == 1)
				break;
		}
		close(c);
		c = -1;
		nap_ms(20);
	}
	assert_true(c >= 0);
	expect_frame(c, "ACK:c");
	close(c);
	close(b);
	mllp_stop(l);
}

struct stopper {
	struct mllp *l;
};

static void *
stop_main(void *arg)
{
	struct stopper *s = arg;

	mllp_stop(s->l);
	return NULL;
}

/* mllp_stop while a message is being handled: its answer still goes
 * out; an idle connection and one mid-message are closed. */
static void
test_stop_with_connections(void **state)
{
	struct mllp_options o = {0};
	struct stopper s;
	pthread_t t;
	int busy, idle, half, n0;
	long t0;

	s.l = start(&o);
	busy = dial(s.l);
	idle = dial(s.l);
	half = dial(s.l);
	send_str(half, "\x0bpart");
	send_str(idle, "\x0b" "first\x1c\x0d");
	expect_frame(idle, "ACK:first");
	n0 = atomic_load(&started);
	send_str(busy, "\x0bSLEEP stop\x1c\x0d");
	while (atomic_load(&started) == n0)
		nap_ms(5);
	t0 = now_ms();
	assert_int_equal(pthread_create(&t, NULL, stop_main, &s), 0);
	expect_frame(busy, "ACK:SLEEP stop");
	expect_closed(busy, 2000);
	expect_closed(idle, 2000);
	expect_closed(half, 2000);
	pthread_join(t, NULL);
	assert_true(now_ms() - t0 < 2000);
	close(busy);
	close(idle);
	close(half);
}

static void
test_bad_options(void **state)
{
	struct arena *a = arena_new(0);
	struct diag d;
	struct mllp_options o = {.bind = "not an address"};

	diag_init(&d, a);
	assert_null(mllp_start(&o, handler, NULL, &d));
	assert_true(diag_has_errors(&d));
	diag_init(&d, a);
	o = (struct mllp_options){.tls_cert = "x"};
	assert_null(mllp_start(&o, handler, NULL, &d));
	diag_init(&d, a);
	o = (struct mllp_options){.tls_cert = "not pem", .tls_key = "not pem"};
	assert_null(mllp_start(&o, handler, NULL, &d));
	assert_true(diag_has_errors(&d));
	arena_free(a);
}

/* ---- TLS ------------------------------------------------------------- */

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

static void
tls_send(gnutls_session_t s, const char *p)
{
	size_t n = strlen(p);

	while (n) {
		ssize_t k = gnutls_record_send(s, p, n);

		assert_true(k > 0);
		p += k;
		n -= (size_t)k;
	}
}

static void
tls_expect(gnutls_session_t s, const char *want)
{
	char buf[256];
	size_t n = 0;

	while (n < 3 || buf[n - 1] != 0x0D || buf[n - 2] != 0x1C) {
		ssize_t k = gnutls_record_recv(s, buf + n, sizeof(buf) - 1 - n);

		assert_true(k > 0);
		n += (size_t)k;
	}
	buf[n - 2] = '\0';
	assert_int_equal(buf[0], 0x0B);
	assert_string_equal(buf + 1, want);
}

static void
test_tls(void **state)
{
	char dir[] = "/tmp/cw-mllp-XXXXXX", cmd[1024], path[512];
	struct mllp_options o = {.message_timeout_s = 1};
	gnutls_certificate_credentials_t cred;
	gnutls_session_t s;
	gnutls_protocol_t v;
	struct mllp *l;
	char *cert, *key;
	int fd, r;
	long t0;

	assert_non_null(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
		 "-nodes -days 1 -subj /CN=localhost -keyout %s/key.pem "
		 "-out %s/cert.pem 2>/dev/null", dir, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/cert.pem", dir);
	cert = slurp(path);
	snprintf(path, sizeof(path), "%s/key.pem", dir);
	key = slurp(path);
	unit_rm_dir(dir);
	o.tls_cert = cert;
	o.tls_key = key;
	l = start(&o);

	/* a sender that never starts its handshake is cut off */
	fd = dial(l);
	t0 = now_ms();
	expect_closed(fd, 2500);
	assert_true(now_ms() - t0 >= 900);
	close(fd);

	/* a plain-TCP sender on the TLS port is closed, nothing else */
	fd = dial(l);
	send_str(fd, "\x0bplain\x1c\x0d");
	expect_closed(fd, 2000);
	close(fd);

	fd = dial(l);
	assert_int_equal(gnutls_certificate_allocate_credentials(&cred), 0);
	assert_int_equal(gnutls_init(&s, GNUTLS_CLIENT), 0);
	assert_int_equal(gnutls_set_default_priority(s), 0);
	assert_int_equal(gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred), 0);
	gnutls_transport_set_int(s, fd);
	do
		r = gnutls_handshake(s);
	while (r < 0 && !gnutls_error_is_fatal(r));
	assert_int_equal(r, 0);
	v = gnutls_protocol_get_version(s);
	assert_true(v == GNUTLS_TLS1_3 || v == GNUTLS_TLS1_2);
	tls_send(s, "\x0bMSH|tls\r\x1c\x0d");
	tls_expect(s, "ACK:MSH|tls\r");
	tls_send(s, "noise\x0b" "A\x1c\x0d\x0b");
	tls_send(s, "B\x1c\x0d");
	tls_expect(s, "ACK:A");
	tls_expect(s, "ACK:B");
	/* three messages of 100 KB in one go: many TLS records, more than
	 * one read buffer each, decrypted bytes left waiting in GnuTLS */
	{
		size_t one = 100000, n = 3 * (one + 3);
		char *big = malloc(n), *p = big;

		for (int i = 0; i < 3; i++) {
			*p++ = 0x0B;
			memset(p, 'z', one);
			memcpy(p, "LEN", 3);
			p += one;
			*p++ = 0x1C;
			*p++ = 0x0D;
		}
		for (size_t off = 0; off < n;) {
			ssize_t k = gnutls_record_send(s, big + off, n - off);

			assert_true(k > 0);
			off += (size_t)k;
		}
		free(big);
		tls_expect(s, "LEN:100000");
		tls_expect(s, "LEN:100000");
		tls_expect(s, "LEN:100000");
	}
	gnutls_bye(s, GNUTLS_SHUT_RDWR);
	gnutls_deinit(s);
	gnutls_certificate_free_credentials(cred);
	close(fd);
	mllp_stop(l);
	free(cert);
	free(key);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_message),
		cmocka_unit_test(test_several_in_one_write),
		cmocka_unit_test(test_split_byte_by_byte),
		cmocka_unit_test(test_outside_frames_and_restart),
		cmocka_unit_test(test_nul_and_binary_bytes),
		cmocka_unit_test(test_two_concurrent),
		cmocka_unit_test(test_ten_concurrent),
		cmocka_unit_test(test_in_order_on_one_connection),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_half_close),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_no_answer),
		cmocka_unit_test(test_slow_reader),
		cmocka_unit_test(test_peer_closes_mid_message),
		cmocka_unit_test(test_random_framing),
		cmocka_unit_test(test_noise),
		cmocka_unit_test(test_idle_timeout),
		cmocka_unit_test(test_message_timeout),
		cmocka_unit_test(test_max_conns),
		cmocka_unit_test(test_stop_with_connections),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_tls),
	};

	log_set_level(LOG_WARN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
