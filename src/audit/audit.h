/* audit/audit.h: the audit trail. An AuditEvent for every access to health
 * data and every change, hash-chained in the store so tampering shows.
 *
 * What a record says is decided here (audit_build): FHIR R4 AuditEvent
 * JSON with who (user, role, linked resource), from where (the client
 * address), what (Type/id, or for a search the type and the parameter
 * NAMES, never their values, which are PHI such as a name), which patients
 * (ids only), when and the outcome. No names, birth dates or other values:
 * ids only. A failed sign-in of a username that names nobody stores no
 * username at all (a hash of a short name is guessed in seconds).
 *
 * How a record reaches the disk depends on what caused it:
 *
 *   a change (create, update, delete, transaction; conditional ones)
 *       audit_tx_write inside the same store_write callback as the change:
 *       a rolled-back write leaves no record, a committed one always has
 *       it. The same commit makes both durable.
 *   a read (read, vread, search, history, $everything, compartment search)
 *       audit_queue: reads run on HTTP poll threads that must never wait,
 *       at 50,000+/s, so they cannot each cost a commit. Records wait in a
 *       bounded queue (AUDIT_QUEUE_MAX) and a flusher thread writes them
 *       in one store_write per batch, every AUDIT_FLUSH_MS or as soon as
 *       AUDIT_FLUSH_AT are waiting. When the queue is full a read is not
 *       served without its record: a poll thread gets CW_EBUSY (the API
 *       answers 503 with Retry-After, the data unsent); a thread that may
 *       block (a write worker, the CLI) waits for room.
 *   sign-in, sign-out, failed sign-in, failed writes
 *       audit_write (its own durable commit) or audit_queue from a worker.
 *
 * What a crash can lose: a power loss or SIGKILL loses at most the read
 * records still queued, i.e. the last AUDIT_FLUSH_MS (100 ms) of reads
 * (bounded by AUDIT_QUEUE_MAX records). Never the record of a change: it
 * is in the change's own commit. audit_free flushes the queue, so an
 * orderly shutdown loses nothing; close the store after it.
 *
 * Thread safety: audit_queue and audit_flush may be called from any thread
 * at once (one mutex, held to copy a pointer). */
#ifndef CW_AUDIT_H
#define CW_AUDIT_H

#include "base/base.h"
#include "store/store.h"

struct audit; /* opaque: the read-record queue and its flusher thread */

#define AUDIT_QUEUE_MAX 8192     /* records waiting (and in flight) */
#define AUDIT_FLUSH_MS 100       /* a queued record waits at most this */
#define AUDIT_FLUSH_AT 1000      /* or until this many are waiting */
#define AUDIT_SEARCH_PATIENTS 100 /* patients named by one search record */

enum audit_kind {
	AUDIT_REST,   /* a FHIR interaction */
	AUDIT_LOGIN,  /* sign-in, failed or not */
	AUDIT_LOGOUT, /* sign-out */
};

/* One thing a record is about. */
struct audit_entity {
	const char *type;    /* resource type ("Patient"), or NULL */
	const char *id;      /* its id, or NULL (a search, a create that failed) */
	const char *params;  /* a search: parameter names "name,_count", or NULL */
};

/* What happened. Strings are borrowed for the call. */
struct audit_event {
	enum audit_kind kind;
	const char *interaction; /* http://hl7.org/fhir/restful-interaction code
				    ("read", "search-type", "create", ...) */
	char action;             /* C R U D E */
	int status;              /* the HTTP status answered */
	const char *user;        /* username; NULL: not known (a failed sign-in
				    of nobody) or an operator tool (local) */
	const char *role;        /* the careweave role, or NULL */
	const char *link;        /* "Practitioner/abc", or NULL */
	bool local;              /* an operator tool (careweave import, export) */
	const char *remote;      /* client address, or NULL */
	const struct audit_entity *what;
	size_t nwhat;
	const char *const *patients; /* ids of the patients concerned */
	size_t npatients;
	int64_t at;              /* ms; 0: now */
};

/* The outcome code of an HTTP status: "0" success, "4" minor failure
 * (4xx), "8" serious failure (5xx). Static storage. */
const char *audit_outcome(int status);

/* Builds the record of ev: a new id, the AuditEvent JSON text (arena
 * memory) and the patients, ready for store_tx_audit_append. */
enum cw_err audit_build(struct arena *a, const struct audit_event *ev,
			struct store_audit *out);

/* Builds and appends ev inside a store_write callback (a change's own
 * transaction). */
enum cw_err audit_tx_write(struct store_tx *tx, struct arena *a,
			   const struct audit_event *ev);

/* Builds ev and writes it in its own durable commit. Blocks. */
enum cw_err audit_write(struct store *s, struct arena *a,
			const struct audit_event *ev);

struct audit_options {
	unsigned queue_max; /* 0: AUDIT_QUEUE_MAX */
	unsigned flush_ms;  /* 0: AUDIT_FLUSH_MS */
	unsigned flush_at;  /* 0: AUDIT_FLUSH_AT */
};

/* Starts the queue and its flusher over s (borrowed: close it after
 * audit_free). NULL when out of memory or no thread can start. */
struct audit *audit_new(struct store *s, const struct audit_options *opt);
/* Flushes what is queued, stops the flusher, frees. */
void audit_free(struct audit *au);

/* Queues ev (copied: nothing of the caller's is kept). With may_wait false
 * (a poll thread) a full queue is CW_EBUSY and nothing is queued; with
 * may_wait true the caller waits for room. */
enum cw_err audit_queue(struct audit *au, struct arena *a,
			const struct audit_event *ev, bool may_wait);
/* Returns once every record queued before the call is committed (or its
 * flush failed: the flusher logs it and tries again). */
void audit_flush(struct audit *au);
/* Records queued or in flight now (for tests and the log). */
size_t audit_pending(struct audit *au);

#endif
