/* notify/notify.h: FHIR R4 Subscriptions, rest-hook channel.
 *
 * Two halves. In the write path (the store's writer thread), every
 * version written is matched against the active Subscriptions of its type
 * (their criteria run as a search restricted to that one resource, inside
 * the change's transaction, so the answer is the one a search would give),
 * and each match queues a notice in the same transaction. After commit,
 * one delivery thread sends the queued notices: with no payload a POST
 * with no body to the endpoint, with payload application/fhir+json a PUT
 * of the version to endpoint/Type/id. A notice is sent only if the
 * Subscription's owner may read the resource at that moment (the door
 * above decides: struct notify_hooks), and every delivery is audited there.
 * A failed delivery is tried again later (backoff, in order per
 * Subscription); after NOTIFY_ERROR_AFTER failures in a row the
 * Subscription's status becomes error, with why, and active again on the
 * next success; after NOTIFY_ATTEMPTS_MAX a notice is given up. */
#ifndef CW_NOTIFY_H
#define CW_NOTIFY_H

#include <jansson.h>

#include "base/base.h"
#include "store/store.h"

struct notify; /* opaque */

#define NOTIFY_SUBS_MAX 1000        /* Subscriptions matched (active, error) */
#define NOTIFY_BATCH 64             /* notices read per round */
#define NOTIFY_PARALLEL 8           /* deliveries in flight (one per Subscription) */
#define NOTIFY_CONNECT_MS 5000      /* to connect to an endpoint */
#define NOTIFY_TIMEOUT_MS 10000     /* one delivery, connect to answer */
#define NOTIFY_ANSWER_MAX 65536     /* bytes of an endpoint's answer read (then dropped) */
#define NOTIFY_HEADERS_MAX 10       /* channel.header entries */
#define NOTIFY_HEADER_LEN 1024      /* bytes of one */
#define NOTIFY_ENDPOINT_LEN 2048    /* bytes of channel.endpoint */
#define NOTIFY_HOSTS_MAX 64         /* names in notify_options.endpoint_hosts */
#define NOTIFY_BACKOFF_MS 5000      /* the first retry (default); doubling */
#define NOTIFY_BACKOFF_MAX_MS 3600000 /* at most an hour between tries */
#define NOTIFY_ATTEMPTS_MAX 12      /* then the notice is given up (about 3.5 h) */
#define NOTIFY_ERROR_AFTER 3        /* failures in a row: status error */
#define NOTIFY_IDLE_MS 5000         /* the queue is looked at this often anyway */

/* What the door above decides for a delivery (api/: access and audit).
 * Called on the delivery thread. */
struct notify_hooks {
	/* Whether owner (a username; NULL: the operator's door) may be sent
	 * res, a stored version, now; *agent (in a) is who is sending, for
	 * sent. */
	enum cw_err (*may_send)(void *ctx, struct arena *a, const char *owner,
				const struct store_res *res, bool *ok,
				const void **agent);
	/* A delivery was tried and the endpoint answered status (0: none
	 * answered): the record of the disclosure, by the agent may_send
	 * gave. host is the endpoint's host, never its path or query (which
	 * may hold a secret). */
	void (*sent)(void *ctx, struct arena *a, const void *agent,
		     const char *host, const struct store_res *res, int status);
	/* Sets Subscription sub_id's status ("active", "error") and error
	 * (NULL: none), as careweave's own write. */
	enum cw_err (*set_status)(void *ctx, const char *sub_id,
				  const char *status, const char *error);
	void *ctx;
};

struct notify_options {
	unsigned retry_ms; /* the first retry after a failure, doubling up
			      to NOTIFY_BACKOFF_MAX_MS; 0: NOTIFY_BACKOFF_MS
			      (`serve --subscription-retry-ms`) */
	/* The hosts an endpoint may name, comma-separated: a name or address
	 * as written in the URL ("hooks.example.org", "127.0.0.1",
	 * "[::1]"), or "*.example.org" for any name under example.org; case
	 * does not matter. NULL or "": any https host (and http to this
	 * machine). `serve --subscription-hosts`; notify_hosts_check says
	 * whether a list is one. */
	const char *endpoint_hosts;
};

/* NULL when list is a list of endpoint hosts notify_options takes, else
 * why not (static words). */
const char *notify_hosts_check(const char *list);

/* A new matcher and queue over s (borrowed); opt may be NULL. Nothing is
 * sent until notify_start. Installs the store's group hook. */
struct notify *notify_new(struct store *s, const struct notify_options *opt);
/* Starts the delivery thread with hooks (copied). */
enum cw_err notify_start(struct notify *n, const struct notify_hooks *hooks);
/* Stops the thread (a delivery in flight is let finish or time out) and
 * frees. What is queued stays queued for the next start. */
void notify_free(struct notify *n);

/* Checks a Subscription about to be written and sets what the server
 * sets: a requested one becomes active. CW_EINVALID (422) with the issues
 * in d (at loc, e.g. "Subscription") for criteria that are not a search
 * of a served type careweave can match, a channel other than rest-hook,
 * an endpoint that is not https (http only to a loopback address) or,
 * when it is requested or active, names a host n's options do not allow
 * (off or error may be written: the owner turns it off, careweave says
 * why it fails), a payload other than application/fhir+json, or a header
 * that is not one "Name: value" line.
 * n may be NULL (a door without notifications: no host list); the
 * delivery checks the host again, so a Subscription written by such a
 * door sends nowhere the server does not allow. */
enum cw_err notify_check_subscription(const struct notify *n, json_t *res,
				      const char *loc, struct diag *d);

/* A version was written in tx (a put; deletes never match): queues a
 * notice for each matching Subscription. type is a served type, version
 * the one stored. A Subscription itself makes the matcher read them all
 * again. n may be NULL (a door without notifications: nothing). */
enum cw_err notify_note_write(struct notify *n, struct store_tx *tx,
			      struct arena *a, const char *type, const char *id,
			      long version);

/* Wakes the delivery thread (tests; the group hook does it after commits). */
void notify_kick(struct notify *n);

#endif
