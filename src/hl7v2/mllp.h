/* hl7v2/mllp.h: the MLLP listener, how hospital feeds deliver HL7 v2.
 *
 * MLLP frames each message as 0x0B, the message, 0x1C 0x0D over one TCP
 * (or TLS) connection; the sender waits for the answer (an ACK) before it
 * sends the next message and resends when none comes. This file is the
 * transport only: it accepts connections, finds the frames, hands each
 * complete message to one handler function on a worker thread and sends
 * back what the handler answered, framed. It knows nothing of what is
 * inside a message (hl7v2.h parses, the receiving side applies it).
 *
 * Threads: one I/O thread polls every connection (non-blocking sockets,
 * TLS included), `workers` threads run the handler. On one connection
 * messages are handled strictly in order, one at a time; different
 * connections are handled in parallel. Every limit is an option below.
 * README.md ("The MLLP listener") has the framing decisions and the state of a connection. */
#ifndef CW_MLLP_H
#define CW_MLLP_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"

struct mllp; /* opaque */

struct mllp_options {
	const char *bind;           /* IPv4 or IPv6 literal (or "localhost")
				       to listen on; NULL: 127.0.0.1, so a
				       feed reaches it only when asked for */
	unsigned port;              /* 0: any free port (mllp_port says which) */
	unsigned max_conns;         /* concurrent sender connections, 0: 32, at
				       most 1024; a connection past it is
				       accepted and closed at once */
	size_t max_message;         /* bytes of one message, 0: HL7_MSG_MAX
				       (1 MiB), at most 64 MiB; see too_big */
	unsigned idle_timeout_s;    /* a connection that moves no byte this
				       long (while careweave is not working on
				       one of its messages) is closed, 0: 300 */
	unsigned message_timeout_s; /* a message begun (0x0B seen), or a TLS
				       handshake, must be complete within
				       this or the connection is closed, 0: 60 */
	unsigned workers;           /* threads running the handler, 0: 4, at
				       most 64 */
	/* MLLP over TLS (1.2 or 1.3, GnuTLS): the PEM text (not file paths)
	 * of the certificate chain and of its private key, both or neither.
	 * NULL: plain TCP. The listener copies what it needs at start. */
	const char *tls_cert;
	const char *tls_key;
};

/* The answer to one message, largest the listener sends. A handler that
 * writes more gets reply->toobig and nothing is sent (a cut ACK would
 * say something else). */
#define MLLP_REPLY_MAX (1u << 20)

/* Called once per complete message, on a worker thread, with the n bytes
 * between the framing characters (msg[n] is '\0' for convenience; the
 * bytes may hold anything but 0x0B and 0x1C, NUL included). msg is valid
 * only during the call. too_big: the message passed max_message; msg then
 * holds its first max_message bytes, enough to answer with a rejection
 * (AR), and the connection stays open for the next message. peer is
 * "ip:port" of the sender, for logs. The handler appends its answer (an
 * ACK, unframed) to reply (empty on entry, capped at MLLP_REPLY_MAX); the
 * listener frames and sends it. An empty reply sends nothing. Several
 * workers call it at once, for different connections: ctx must be safe
 * for that. It should not block for long: a sender waits for its ACK and
 * mllp_stop waits for the handler. */
typedef void mllp_handler(void *ctx, const char *msg, size_t n, bool too_big,
			  const char *peer, struct sbuf *reply);

/* Binds, listens and starts the threads. NULL with d filled (CW_EINVAL for
 * a bad option or a certificate/key that does not load, CW_EIO when the
 * address cannot be bound, CW_ENOMEM) on failure. The process should
 * ignore SIGPIPE anyway; the listener never raises it (MSG_NOSIGNAL). */
struct mllp *mllp_start(const struct mllp_options *o, mllp_handler *fn,
			void *ctx, struct diag *d);

/* The port actually bound. */
unsigned mllp_port(const struct mllp *l);

/* Stops accepting, lets the messages being handled (and those already
 * queued for a worker) finish and their answers go out (for at most 5 s
 * of sending), closes every connection, joins the threads and frees l.
 * A message still arriving gets no answer: its sender resends it. Waits
 * for a handler that is running, however long it takes. NULL: nothing. */
void mllp_stop(struct mllp *l);

#endif
