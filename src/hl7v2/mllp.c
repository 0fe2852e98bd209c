/* hl7v2/mllp.c: the MLLP listener: connections, framing, limits, TLS.
 *
 * Threads, two kinds:
 * - the I/O thread owns the listening socket and every connection. All
 *   sockets are non-blocking; it polls them, reads, finds frames, writes
 *   answers and enforces the timeouts. It never runs the handler and never
 *   waits on anything but poll, so a sender that stops reading its ACKs
 *   (its answer waits in c->out for POLLOUT) holds up nobody else.
 * - workers run the handler, one message at a time each.
 * One poll loop rather than a thread per connection: TLS sessions, the
 * deadlines and shutdown then live on one thread and need no locks, and
 * a connection costs a struct, not a stack. poll over a rebuilt array
 * rather than epoll: there are at most max_conns (32 by default, 1024 at
 * most) descriptors, and leaving a connection out of the array is how it
 * stops being polled while its message is on a worker.
 *
 * The hand-off invariant. A conn is owned by one side at a time:
 *   I/O thread --(a message complete: busy = true, queued under lock)-->
 *   a worker --(handler ran into c->reply; onto the done list, wake)-->
 *   I/O thread (busy = false, reply framed into c->out)
 * While busy the I/O thread neither polls, reads, times out nor frees the
 * conn, and touches none of c->msg and c->reply; the worker touches only
 * those (and reads c->too_big and c->peer, fixed meanwhile). A sender that
 * hangs up meanwhile is noticed when its answer cannot be sent.
 *
 * Framing (a state per connection; README.md, "The MLLP listener", says why):
 *   OUTSIDE --0x0B--> IN        anything else outside a frame is skipped
 *   IN --0x0B--> IN (restart)   the message so far is dropped
 *   IN --0x1C--> END
 *   END --0x0D--> OUTSIDE       a message: to a worker
 *   END --other--> OUTSIDE      a broken frame: dropped, no answer, and
 *                               that byte is read again outside a frame
 * Bytes past max_message are counted, not kept (too_big).
 *
 * Memory: per connection a struct with a 16 KiB read buffer, the message
 * (grows to max_message at most), the reply (MLLP_REPLY_MAX) and the
 * framed answer being sent. Nothing is allocated per message once the
 * buffers have grown.
 *
 * Logging: connections opened and closed, with the peer address, the
 * reason and counts. Never a byte of a message. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "hl7v2/hl7v2.h"
#include "hl7v2/mllp.h"

#define DEFAULT_MAX_CONNS 32
#define MAX_CONNS_MAX 1024
#define MAX_MESSAGE_MAX (64u << 20)
#define DEFAULT_IDLE_S 300
#define DEFAULT_MESSAGE_S 60
#define TIMEOUT_MAX_S 86400
#define DEFAULT_WORKERS 4
#define WORKERS_MAX 64
#define RBUF_SIZE 16384
#define READS_PER_TURN 8      /* reads of one connection before the next */
#define ACCEPTS_PER_TURN 64
#define ACCEPT_PAUSE_MS 100   /* out of descriptors: stop accepting a while */
#define LISTEN_BACKLOG 64
#define POLL_MAX_MS 1000
#define STOP_GRACE_MS 5000
#define REFUSED_LOG_MS 10000  /* at most one "refused" (or "pausing") line per this */
#define TLS_PEM_MAX (1u << 20)
#define KEEP_BUFFER (64u << 10) /* larger buffers are freed after use */
/* TLS 1.2 and 1.3 only, as http/ (GnuTLS priority string). */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

#define MLLP_SB 0x0B
#define MLLP_EB 0x1C
#define MLLP_CR 0x0D

enum frame { F_OUTSIDE, F_IN, F_END };

struct conn {
	struct mllp *l;
	int fd;
	gnutls_session_t tls;     /* NULL: plain TCP */
	bool handshaken;
	char peer[INET6_ADDRSTRLEN + 8];
	/* framing */
	enum frame st;
	struct sbuf msg;          /* the message so far, max_message at most */
	bool too_big;
	unsigned char rbuf[RBUF_SIZE];
	size_t roff, rlen;        /* unread bytes: rbuf[roff..rlen) */
	/* answering */
	struct sbuf reply;        /* the worker's */
	struct sbuf out;          /* framed, being sent from ooff */
	size_t ooff;
	bool busy;                /* the message is with a worker */
	bool ready;               /* may read on without poll saying so */
	short want;               /* POLLIN or POLLOUT: what it waits for */
	bool dead;
	bool gone;                /* the peer closed or the transport failed */
	const char *why;          /* why it closed, for the log */
	/* clocks (ms, monotonic) */
	int64_t last_ms;          /* a byte moved */
	int64_t begin_ms;         /* a message (or the handshake) began; 0: none */
	/* counts for the log */
	unsigned long nmsg, nbig, nbroken, nrestart;
	unsigned long long bytes_in;
	struct conn *next;        /* in the job queue or the done list */
};

struct mllp {
	mllp_handler *fn;
	void *ctx;
	unsigned max_conns;
	size_t max_message;
	int64_t idle_ms, message_ms;
	unsigned port;
	int lfd;
	int wake;                 /* eventfd: a job is done, or stop */
	/* TLS */
	bool tls;
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
	/* the I/O thread's own */
	pthread_t io;
	bool io_started;
	struct conn **conns;
	unsigned nconns;
	struct pollfd *pfd;       /* max_conns + 2: wake, listener, conns */
	struct conn **pc;         /* the conn of each pfd entry, or NULL */
	int64_t now;
	int64_t accept_at;        /* accept again from then on */
	int64_t refused_logged;
	int64_t pause_logged;
	unsigned long refused;
	bool stop_begun;
	/* shared with the workers, under lock */
	pthread_mutex_t lock;
	pthread_cond_t more;
	struct conn *qhead, *qtail; /* jobs, oldest first */
	struct conn *done;          /* handled, answer in c->reply */
	bool closing;               /* workers exit when the queue is empty */
	unsigned nworkers;
	pthread_t *workers;
	atomic_bool stopping;
};

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
wake_io(struct mllp *l)
{
	uint64_t one = 1;

	/* EAGAIN: the counter is already non-zero, the thread will wake. */
	if (write(l->wake, &one, sizeof(one)) < 0) {
	}
}

/* ---- workers ----------------------------------------------------------- */

static void *
worker_main(void *arg)
{
	struct mllp *l = arg;

	for (;;) {
		struct conn *c;

		pthread_mutex_lock(&l->lock);
		while (!l->qhead && !l->closing)
			pthread_cond_wait(&l->more, &l->lock);
		c = l->qhead;
		if (!c) {
			pthread_mutex_unlock(&l->lock);
			break;
		}
		l->qhead = c->next;
		if (!l->qhead)
			l->qtail = NULL;
		pthread_mutex_unlock(&l->lock);

		sbuf_reset(&c->reply);
		l->fn(l->ctx, c->msg.buf, c->msg.len, c->too_big, c->peer, &c->reply);

		pthread_mutex_lock(&l->lock);
		c->next = l->done;
		l->done = c;
		pthread_mutex_unlock(&l->lock);
		wake_io(l);
	}
	return NULL;
}

static void
dispatch(struct conn *c)
{
	struct mllp *l = c->l;

	c->busy = true;
	c->nmsg++;
	if (c->too_big)
		c->nbig++;
	c->next = NULL;
	pthread_mutex_lock(&l->lock);
	if (l->qtail)
		l->qtail->next = c;
	else
		l->qhead = c;
	l->qtail = c;
	pthread_cond_signal(&l->more);
	pthread_mutex_unlock(&l->lock);
}

/* ---- framing ----------------------------------------------------------- */

static void
msg_begin(struct conn *c)
{
	sbuf_reset(&c->msg);
	c->too_big = false;
	c->st = F_IN;
	c->begin_ms = c->l->now;
}

/* Keeps what fits under max_message; the rest only marks the message. */
static void
msg_add(struct conn *c, const unsigned char *p, size_t n)
{
	size_t room = c->l->max_message - c->msg.len;

	if (n > room) {
		c->too_big = true;
		n = room;
	}
	if (n && sbuf_add(&c->msg, p, n) != CW_OK)
		c->too_big = true; /* out of memory: answered as too big */
}

/* Feeds the unread bytes of c->rbuf to the frame state machine. True when
 * a message is complete (the bytes after it stay unread). */
static bool
frame_feed(struct conn *c)
{
	const unsigned char *p = c->rbuf;
	size_t i = c->roff, n = c->rlen;

	while (i < n) {
		switch (c->st) {
		case F_OUTSIDE: {
			const unsigned char *q = memchr(p + i, MLLP_SB, n - i);

			if (!q) {
				i = n;
				break;
			}
			i = (size_t)(q - p) + 1;
			msg_begin(c);
			break;
		}
		case F_IN: {
			size_t j = i;

			while (j < n && p[j] != MLLP_SB && p[j] != MLLP_EB)
				j++;
			msg_add(c, p + i, j - i);
			i = j;
			if (i == n)
				break;
			if (p[i] == MLLP_SB) {
				c->nrestart++;
				msg_begin(c);
			} else {
				c->st = F_END;
			}
			i++;
			break;
		}
		case F_END:
			c->st = F_OUTSIDE;
			c->begin_ms = 0;
			if (p[i] == MLLP_CR) {
				c->roff = i + 1;
				return true;
			}
			/* Not the end of a block, and 0x1C may not occur
			 * inside one: the frame is broken. This byte is read
			 * again outside a frame (it may be the next 0x0B). */
			c->nbroken++;
			break;
		}
	}
	c->roff = c->rlen = 0;
	return false;
}

/* ---- transport --------------------------------------------------------- */

#define IO_AGAIN (-1)
#define IO_CLOSED (-2)
#define IO_ERROR (-3)

static ssize_t
tls_result(struct conn *c, ssize_t r)
{
	if (r >= 0)
		return r;
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
		c->want = gnutls_record_get_direction(c->tls) ? POLLOUT : POLLIN;
		return IO_AGAIN;
	}
	if (r == GNUTLS_E_PREMATURE_TERMINATION)
		return IO_CLOSED;
	c->why = "TLS error";
	log_debug("mllp: %s: %s", c->peer, gnutls_strerror((int)r));
	return IO_ERROR;
}

/* Reads into rbuf: >0 bytes, 0 the peer closed, or IO_*. */
static ssize_t
conn_read(struct conn *c)
{
	ssize_t k;

	if (c->tls) {
		for (int tries = 0; tries < 4; tries++) {
			k = gnutls_record_recv(c->tls, c->rbuf, sizeof(c->rbuf));
			/* A warning alert is no data and no end: read on. */
			if (k != GNUTLS_E_WARNING_ALERT_RECEIVED)
				return tls_result(c, k);
		}
		c->why = "TLS alerts";
		return IO_ERROR;
	}
	for (;;) {
		k = recv(c->fd, c->rbuf, sizeof(c->rbuf), 0);
		if (k >= 0)
			return k;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->want = POLLIN;
			return IO_AGAIN;
		}
		if (errno == ECONNRESET)
			return IO_CLOSED;
		c->why = "read error";
		return IO_ERROR;
	}
}

static ssize_t
conn_write(struct conn *c, const char *p, size_t n)
{
	ssize_t k;

	if (c->tls)
		return tls_result(c, gnutls_record_send(c->tls, p, n));
	for (;;) {
		k = send(c->fd, p, n, MSG_NOSIGNAL);
		if (k >= 0)
			return k;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->want = POLLOUT;
			return IO_AGAIN;
		}
		if (errno == EPIPE || errno == ECONNRESET)
			return IO_CLOSED;
		c->why = "write error";
		return IO_ERROR;
	}
}

static void
conn_kill(struct conn *c, const char *why)
{
	if (!c->dead) {
		c->dead = true;
		if (!c->why)
			c->why = why;
	}
}

/* Sends what c->out holds. True when all of it went. */
static bool
conn_flush(struct conn *c)
{
	while (c->ooff < c->out.len) {
		ssize_t k = conn_write(c, c->out.buf + c->ooff, c->out.len - c->ooff);

		if (k == IO_AGAIN)
			return false;
		if (k < 0) {
			c->gone = true;
			conn_kill(c, "peer gone before its answer");
			return false;
		}
		c->ooff += (size_t)k;
		c->last_ms = c->l->now;
	}
	sbuf_reset(&c->out);
	c->ooff = 0;
	return true;
}

/* Moves c on as far as it goes without waiting: the handshake, sending
 * the answer, then reading and framing until a message is complete (to a
 * worker) or the socket has nothing more. */
static void
conn_pump(struct conn *c)
{
	struct mllp *l = c->l;

	c->ready = false;
	if (c->busy || c->dead)
		return;
	if (c->tls && !c->handshaken) {
		int r = gnutls_handshake(c->tls);

		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
			c->want = gnutls_record_get_direction(c->tls) ? POLLOUT : POLLIN;
			return;
		}
		if (r < 0) {
			log_debug("mllp: %s: handshake: %s", c->peer, gnutls_strerror(r));
			c->gone = true;
			conn_kill(c, "TLS handshake failed");
			return;
		}
		c->handshaken = true;
		c->begin_ms = 0;
		c->last_ms = l->now;
	}
	if (c->ooff < c->out.len && !conn_flush(c))
		return;
	if (l->stop_begun)
		return;
	for (int turn = 0; turn < READS_PER_TURN;) {
		ssize_t k;

		if (c->roff < c->rlen) {
			if (frame_feed(c)) {
				dispatch(c);
				return;
			}
			continue;
		}
		k = conn_read(c);
		if (k == IO_AGAIN)
			return;
		if (k == 0 || k == IO_CLOSED) {
			c->gone = true;
			conn_kill(c, c->st == F_OUTSIDE ? "closed by peer"
						       : "closed by peer mid-message");
			return;
		}
		if (k < 0) {
			c->gone = true;
			conn_kill(c, "error");
			return;
		}
		c->roff = 0;
		c->rlen = (size_t)k;
		c->bytes_in += (unsigned long long)k;
		c->last_ms = l->now;
		turn++;
	}
	/* Its share of this turn is used: back soon, without waiting for
	 * poll (TLS may hold decrypted bytes poll cannot see). */
	c->ready = true;
}

/* The worker is done with c: frame its answer and move on. */
static void
conn_answered(struct conn *c)
{
	struct mllp *l = c->l;

	c->busy = false;
	c->last_ms = l->now;
	if (c->reply.toobig) {
		log_warn("mllp: %s: the answer to message %lu is over %u bytes: "
			 "not sent", c->peer, c->nmsg, MLLP_REPLY_MAX);
	} else if (c->reply.len) {
		sbuf_reset(&c->out);
		c->ooff = 0;
		if (sbuf_addch(&c->out, MLLP_SB) || sbuf_add(&c->out, c->reply.buf, c->reply.len) ||
		    sbuf_addch(&c->out, MLLP_EB) || sbuf_addch(&c->out, MLLP_CR)) {
			log_warn("mllp: %s: out of memory for an answer", c->peer);
			sbuf_reset(&c->out);
		}
	}
	/* A big message or answer need not keep its memory while the
	 * connection waits for the next. */
	if (c->reply.alloc > KEEP_BUFFER)
		sbuf_release(&c->reply);
	else
		sbuf_reset(&c->reply);
	if (c->msg.alloc > KEEP_BUFFER)
		sbuf_release(&c->msg);
	conn_pump(c);
}

/* ---- connections ------------------------------------------------------- */

static void
peer_text(const struct sockaddr_storage *ss, char *out, size_t n)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		port = ntohs(s4->sin_port);
		snprintf(out, n, "%s:%u", ip, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		port = ntohs(s6->sin6_port);
		snprintf(out, n, "[%s]:%u", ip, port);
	} else {
		snprintf(out, n, "?");
	}
}

/* Closing a socket with unread bytes makes the kernel reset it, and a
 * reset can make the peer drop an answer it has not read yet. So a close
 * of ours (timeout, stop) ends the sending side first and throws away
 * what is already waiting; what arrives later may still cause a reset. */
static void
close_gently(int fd)
{
	char buf[4096];

	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 16; i++)
		if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
			break;
}

static void
conn_free(struct conn *c)
{
	if (c->tls) {
		/* Best effort, non-blocking: say goodbye if it goes at once. */
		if (c->handshaken && !c->gone)
			gnutls_bye(c->tls, GNUTLS_SHUT_WR);
		gnutls_deinit(c->tls);
	}
	if (c->fd >= 0) {
		if (!c->gone)
			close_gently(c->fd);
		close(c->fd);
	}
	sbuf_release(&c->msg);
	sbuf_release(&c->reply);
	sbuf_release(&c->out);
	free(c);
}

/* Logs and frees c; open: how many stay open after it. */
static void
conn_close(struct conn *c, unsigned open)
{
	log_info("mllp: %s closed (%s): %lu messages, %lu too big, %lu broken "
		 "frames, %lu restarted, %llu bytes in, %u open", c->peer,
		 c->why ? c->why : "closed", c->nmsg, c->nbig, c->nbroken,
		 c->nrestart, c->bytes_in, open);
	conn_free(c);
}

static enum cw_err
conn_tls(struct conn *c)
{
	struct mllp *l = c->l;

	if (gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0) {
		c->tls = NULL;
		return CW_ENOMEM;
	}
	if (gnutls_priority_set(c->tls, l->prio) < 0 ||
	    gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, l->cred) < 0)
		return CW_EINTERNAL;
	gnutls_certificate_server_set_request(c->tls, GNUTLS_CERT_IGNORE);
	/* The listener's own deadline (message_timeout_s) bounds it. */
	gnutls_handshake_set_timeout(c->tls, GNUTLS_INDEFINITE_TIMEOUT);
	gnutls_transport_set_int(c->tls, c->fd);
	return CW_OK;
}

static void
accept_one(struct mllp *l, int fd, const struct sockaddr_storage *ss)
{
	struct conn *c;
	char peer[INET6_ADDRSTRLEN + 8];
	int one = 1;

	peer_text(ss, peer, sizeof(peer));
	if (l->nconns >= l->max_conns) {
		close(fd);
		l->refused++;
		if (l->now - l->refused_logged >= REFUSED_LOG_MS || !l->refused_logged) {
			log_warn("mllp: refused %s: %u connections open (max_conns); "
				 "%lu refused so far", peer, l->nconns, l->refused);
			l->refused_logged = l->now;
		}
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		log_warn("mllp: refused %s: out of memory", peer);
		return;
	}
	c->l = l;
	c->fd = fd;
	memcpy(c->peer, peer, sizeof(peer));
	sbuf_init(&c->msg, l->max_message);
	sbuf_init(&c->reply, MLLP_REPLY_MAX);
	sbuf_init(&c->out, MLLP_REPLY_MAX + 3);
	c->st = F_OUTSIDE;
	c->want = POLLIN;
	c->last_ms = l->now;
	/* ACKs are small and the sender waits for each. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (l->tls) {
		if (conn_tls(c) != CW_OK) {
			log_warn("mllp: refused %s: cannot start a TLS session", peer);
			conn_free(c);
			return;
		}
		c->begin_ms = l->now; /* the handshake has message_timeout_s */
	}
	l->conns[l->nconns++] = c;
	log_info("mllp: %s opened%s, %u open", c->peer, l->tls ? " (TLS)" : "",
		 l->nconns);
	conn_pump(c);
}

static void
accept_some(struct mllp *l)
{
	for (int i = 0; i < ACCEPTS_PER_TURN; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(l->lfd, (struct sockaddr *)&ss, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending
			 * connection stays in the backlog; polling it again
			 * at once would spin. */
			if (l->now - l->pause_logged >= REFUSED_LOG_MS || !l->pause_logged) {
				log_warn("mllp: cannot accept: %s; pausing %d ms at a time",
					 strerror(errno), ACCEPT_PAUSE_MS);
				l->pause_logged = l->now;
			}
			l->accept_at = l->now + ACCEPT_PAUSE_MS;
			return;
		}
		accept_one(l, fd, &ss);
	}
}

/* Closes what timed out; the earliest deadline left, in ms from now. */
static int64_t
check_deadlines(struct mllp *l)
{
	int64_t next = POLL_MAX_MS;

	for (unsigned i = 0; i < l->nconns; i++) {
		struct conn *c = l->conns[i];
		int64_t left;

		if (c->busy || c->dead)
			continue;
		if (c->begin_ms) {
			left = c->begin_ms + l->message_ms - l->now;
			if (left <= 0) {
				conn_kill(c, c->handshaken || !c->tls ? "message timeout"
								     : "TLS handshake timeout");
				continue;
			}
			if (left < next)
				next = left;
		}
		left = c->last_ms + l->idle_ms - l->now;
		if (left <= 0) {
			conn_kill(c, "idle timeout");
			continue;
		}
		if (left < next)
			next = left;
	}
	return next;
}

static void
reap(struct mllp *l)
{
	unsigned j = 0;

	for (unsigned i = 0; i < l->nconns; i++) {
		struct conn *c = l->conns[i];

		if (c->dead && !c->busy) {
			conn_close(c, l->nconns - 1 - (i - j));
			continue;
		}
		l->conns[j++] = c;
	}
	l->nconns = j;
}

static void
take_done(struct mllp *l)
{
	struct conn *c;
	uint64_t v;

	if (read(l->wake, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing new */
	}
	pthread_mutex_lock(&l->lock);
	c = l->done;
	l->done = NULL;
	pthread_mutex_unlock(&l->lock);
	while (c) {
		struct conn *next = c->next;

		c->next = NULL;
		conn_answered(c);
		c = next;
	}
}

/* Stopping: is anything still to finish (a message on a worker, an answer
 * not yet sent)? */
static bool
stop_pending(struct mllp *l)
{
	for (unsigned i = 0; i < l->nconns; i++) {
		struct conn *c = l->conns[i];

		if (c->busy || (!c->dead && c->ooff < c->out.len))
			return true;
	}
	return false;
}

static void *
io_main(void *arg)
{
	struct mllp *l = arg;
	struct pollfd *pfd = l->pfd;
	struct conn **pc = l->pc;
	int64_t stop_deadline = 0;

	for (;;) {
		int64_t wait;
		unsigned n = 0;
		bool ready = false;

		l->now = mono_ms();
		if (atomic_load(&l->stopping) && !l->stop_begun) {
			l->stop_begun = true;
			stop_deadline = l->now + STOP_GRACE_MS;
			close(l->lfd);
			l->lfd = -1;
		}
		take_done(l);
		wait = check_deadlines(l);
		reap(l);
		if (l->stop_begun && (!stop_pending(l) || l->now >= stop_deadline))
			break;

		pfd[n] = (struct pollfd){.fd = l->wake, .events = POLLIN};
		pc[n++] = NULL;
		if (l->lfd >= 0) {
			if (l->now >= l->accept_at) {
				pfd[n] = (struct pollfd){.fd = l->lfd, .events = POLLIN};
				pc[n++] = NULL;
			} else if (l->accept_at - l->now < wait) {
				wait = l->accept_at - l->now;
			}
		}
		for (unsigned i = 0; i < l->nconns; i++) {
			struct conn *c = l->conns[i];

			if (c->busy || c->dead)
				continue;
			if (c->ready)
				ready = true;
			/* Stopping: only answers still to send are polled. */
			if (l->stop_begun && c->ooff >= c->out.len)
				continue;
			pfd[n] = (struct pollfd){.fd = c->fd, .events = c->want};
			pc[n++] = c;
		}
		if (ready)
			wait = 0;
		if (l->stop_begun && stop_deadline - l->now < wait)
			wait = stop_deadline - l->now;
		if (wait < 0)
			wait = 0;
		if (poll(pfd, n, (int)wait) < 0) {
			if (errno != EINTR) {
				/* ENOMEM: try again in a moment */
				log_error("mllp: poll: %s", strerror(errno));
				nanosleep(&(struct timespec){0, 100 * 1000000}, NULL);
			}
			continue;
		}
		l->now = mono_ms();
		for (unsigned i = 0; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			if (pc[i])
				conn_pump(pc[i]);
			else if (pfd[i].fd == l->lfd)
				accept_some(l);
			/* the wake eventfd is read by take_done */
		}
		for (unsigned i = 0; i < l->nconns; i++)
			if (l->conns[i]->ready)
				conn_pump(l->conns[i]);
	}
	/* Whatever is not busy closes now; a conn still with a worker is
	 * closed by mllp_stop once the workers are joined. */
	for (unsigned i = 0; i < l->nconns; i++)
		if (!l->conns[i]->busy)
			conn_kill(l->conns[i], "listener stopping");
	reap(l);
	return NULL;
}

/* ---- start and stop ---------------------------------------------------- */

static bool
parse_bind(const char *addr, unsigned port, struct sockaddr_storage *ss,
	   socklen_t *len)
{
	char buf[INET6_ADDRSTRLEN + 2];
	size_t n = strlen(addr);
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (strcmp(addr, "localhost") == 0)
		addr = "127.0.0.1";
	if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']' && n - 2 < sizeof(buf)) {
		memcpy(buf, addr + 1, n - 2);
		buf[n - 2] = '\0';
		addr = buf;
	}
	if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*len = sizeof(*in4);
		return true;
	}
	if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return true;
	}
	return false;
}

static enum cw_err
listen_on(struct mllp *l, const char *addr, unsigned port, struct diag *d)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int one = 1;

	if (!parse_bind(addr, port, &ss, &sl))
		return diag_err(d, CW_EINVAL, "value", NULL,
				"bind address '%s' is not an IPv4 or IPv6 literal", addr);
	l->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->lfd < 0)
		return diag_err(d, CW_EIO, "exception", NULL, "cannot make a socket: %s",
				strerror(errno));
	setsockopt(l->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l->lfd, (struct sockaddr *)&ss, sl) < 0 ||
	    listen(l->lfd, LISTEN_BACKLOG) < 0)
		return diag_err(d, CW_EIO, "exception", NULL,
				"cannot listen on %s port %u: %s", addr, port,
				strerror(errno));
	sl = sizeof(ss);
	if (getsockname(l->lfd, (struct sockaddr *)&ss, &sl) < 0)
		return diag_err(d, CW_EIO, "exception", NULL, "getsockname: %s",
				strerror(errno));
	l->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						: ((struct sockaddr_in6 *)&ss)->sin6_port);
	return CW_OK;
}

static enum cw_err
tls_setup(struct mllp *l, const char *cert, const char *key, struct diag *d)
{
	gnutls_datum_t dc, dk;
	const char *errpos = NULL;
	size_t nc = strnlen(cert, TLS_PEM_MAX + 1), nk = strnlen(key, TLS_PEM_MAX + 1);
	int r;

	if (nc > TLS_PEM_MAX || nk > TLS_PEM_MAX)
		return diag_err(d, CW_EINVAL, "value", NULL,
				"the TLS certificate or key is over %u bytes", TLS_PEM_MAX);
	if (gnutls_certificate_allocate_credentials(&l->cred) < 0) {
		l->cred = NULL;
		return diag_err(d, CW_ENOMEM, "exception", NULL, "out of memory (TLS)");
	}
	dc = (gnutls_datum_t){(unsigned char *)cert, (unsigned)nc};
	dk = (gnutls_datum_t){(unsigned char *)key, (unsigned)nk};
	r = gnutls_certificate_set_x509_key_mem(l->cred, &dc, &dk, GNUTLS_X509_FMT_PEM);
	if (r < 0)
		return diag_err(d, CW_EINVAL, "value", NULL,
				"the TLS certificate and key do not load (are they "
				"PEM, and do they match?): %s", gnutls_strerror(r));
	r = gnutls_priority_init(&l->prio, TLS_PRIORITIES, &errpos);
	if (r < 0) {
		l->prio = NULL;
		return diag_err(d, CW_EINTERNAL, "exception", NULL,
				"TLS priorities: %s", gnutls_strerror(r));
	}
	l->tls = true;
	return CW_OK;
}

static void
workers_stop(struct mllp *l)
{
	pthread_mutex_lock(&l->lock);
	l->closing = true;
	pthread_cond_broadcast(&l->more);
	pthread_mutex_unlock(&l->lock);
	for (unsigned i = 0; i < l->nworkers; i++)
		pthread_join(l->workers[i], NULL);
	l->nworkers = 0;
}

static void
mllp_free(struct mllp *l)
{
	workers_stop(l);
	/* Conns that were with a worker when the I/O thread ended. */
	for (unsigned i = 0; i < l->nconns; i++) {
		conn_kill(l->conns[i], "listener stopping");
		conn_close(l->conns[i], l->nconns - 1 - i);
	}
	free(l->conns);
	free(l->pfd);
	free(l->pc);
	free(l->workers);
	if (l->lfd >= 0)
		close(l->lfd);
	if (l->wake >= 0)
		close(l->wake);
	if (l->prio)
		gnutls_priority_deinit(l->prio);
	if (l->cred)
		gnutls_certificate_free_credentials(l->cred);
	pthread_cond_destroy(&l->more);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

struct mllp *
mllp_start(const struct mllp_options *opt, mllp_handler *fn, void *ctx,
	   struct diag *d)
{
	struct mllp_options o = *opt;
	struct mllp *l;

	if (!o.bind || !*o.bind)
		o.bind = "127.0.0.1";
	if (!fn) {
		diag_err(d, CW_EINVAL, "value", NULL, "no message handler");
		return NULL;
	}
	if (o.port > 65535) {
		diag_err(d, CW_EINVAL, "value", NULL, "port %u is out of range", o.port);
		return NULL;
	}
	if (!o.tls_cert != !o.tls_key) {
		diag_err(d, CW_EINVAL, "value", NULL,
			 "MLLP over TLS needs both a certificate and a key");
		return NULL;
	}
	if (!o.max_conns)
		o.max_conns = DEFAULT_MAX_CONNS;
	if (o.max_conns > MAX_CONNS_MAX)
		o.max_conns = MAX_CONNS_MAX;
	if (!o.max_message)
		o.max_message = HL7_MSG_MAX;
	if (o.max_message > MAX_MESSAGE_MAX)
		o.max_message = MAX_MESSAGE_MAX;
	if (!o.idle_timeout_s)
		o.idle_timeout_s = DEFAULT_IDLE_S;
	if (!o.message_timeout_s)
		o.message_timeout_s = DEFAULT_MESSAGE_S;
	if (o.idle_timeout_s > TIMEOUT_MAX_S)
		o.idle_timeout_s = TIMEOUT_MAX_S;
	if (o.message_timeout_s > TIMEOUT_MAX_S)
		o.message_timeout_s = TIMEOUT_MAX_S;
	if (!o.workers)
		o.workers = DEFAULT_WORKERS;
	if (o.workers > WORKERS_MAX)
		o.workers = WORKERS_MAX;

	l = calloc(1, sizeof(*l));
	if (!l) {
		diag_err(d, CW_ENOMEM, "exception", NULL, "out of memory");
		return NULL;
	}
	l->fn = fn;
	l->ctx = ctx;
	l->max_conns = o.max_conns;
	l->max_message = o.max_message;
	l->idle_ms = (int64_t)o.idle_timeout_s * 1000;
	l->message_ms = (int64_t)o.message_timeout_s * 1000;
	l->lfd = -1;
	atomic_init(&l->stopping, false);
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->more, NULL);
	l->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	l->conns = calloc(o.max_conns, sizeof(*l->conns));
	l->pfd = calloc(o.max_conns + 2, sizeof(*l->pfd));
	l->pc = calloc(o.max_conns + 2, sizeof(*l->pc));
	l->workers = calloc(o.workers, sizeof(*l->workers));
	if (l->wake < 0 || !l->conns || !l->pfd || !l->pc || !l->workers) {
		diag_err(d, CW_ENOMEM, "exception", NULL, "out of memory or descriptors");
		goto out_free;
	}
	if (o.tls_cert && tls_setup(l, o.tls_cert, o.tls_key, d) != CW_OK)
		goto out_free;
	if (listen_on(l, o.bind, o.port, d) != CW_OK)
		goto out_free;
	for (unsigned i = 0; i < o.workers; i++) {
		if (thread_start(&l->workers[i], worker_main, l, "cw-mllp-worker") != 0) {
			diag_err(d, CW_ENOMEM, "exception", NULL,
				 "cannot start %u worker threads", o.workers);
			goto out_free;
		}
		l->nworkers++;
	}
	if (thread_start(&l->io, io_main, l, "cw-mllp-io") != 0) {
		diag_err(d, CW_ENOMEM, "exception", NULL, "cannot start the I/O thread");
		goto out_free;
	}
	l->io_started = true;
	log_info("mllp: listening on %s port %u%s", o.bind, l->port,
		 l->tls ? " (TLS)" : "");
	return l;
out_free:
	mllp_free(l);
	return NULL;
}

unsigned
mllp_port(const struct mllp *l)
{
	return l->port;
}

void
mllp_stop(struct mllp *l)
{
	if (!l)
		return;
	atomic_store(&l->stopping, true);
	wake_io(l);
	if (l->io_started)
		pthread_join(l->io, NULL);
	mllp_free(l);
	log_info("mllp: stopped");
}
