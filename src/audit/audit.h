/* audit/audit.h: the audit trail. An AuditEvent for every access to health
 * data and every change, hash-chained in the store so tampering shows.
 *
 * What a record says is decided here: who (user, role, linked resource),
 * from where (the client address), what (Type/id, or for a search the type
 * and the parameter NAMES, never their values, which are PHI such as a
 * name), which patients (ids only), when and the outcome. A record is kept
 * as the columns of struct store_audit (audit_pack: short strings, no
 * JSON) and rendered as FHIR R4 AuditEvent JSON only when someone reads it
 * (audit_render). No names, birth dates or other values: ids only. A
 * failed sign-in of a username that names nobody stores no username at all
 * (a hash of a short name is guessed in seconds).
 *
 * How a record reaches the disk depends on what caused it:
 *
 *   a change (create, update, delete, transaction; conditional ones)
 *       audit_tx_write inside the same store_write callback as the change:
 *       a rolled-back write leaves no record, a committed one always has
 *       it. The same commit makes both durable.
 *   a read (read, vread, search, history, $everything, compartment search)
 *       audit_queue: reads run on HTTP poll threads that must never wait,
 *       at 50,000+/s, so they cannot each cost a commit. Records (one small
 *       malloc block each) wait in a bounded queue (AUDIT_QUEUE_MAX) and a
 *       flusher thread writes them in one store_write per batch, every
 *       AUDIT_FLUSH_MS or as soon as AUDIT_FLUSH_AT are waiting. When the
 *       queue is full a read is not served without its record: a poll
 *       thread gets CW_EBUSY (the API answers 503 with Retry-After, the
 *       data unsent); a thread that may block (a write worker, the CLI)
 *       waits for room.
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

#define AUDIT_QUEUE_MAX 65536    /* records waiting (and in flight): about
				    2 s of reads at the bench's rate, 13 MiB */
#define AUDIT_FLUSH_MS 100       /* a queued record waits at most this */
#define AUDIT_FLUSH_AT 4096      /* or until this many are waiting */
#define AUDIT_SEARCH_PATIENTS 100 /* patients named by one search record */

enum audit_kind {
	AUDIT_REST,   /* a FHIR interaction */
	AUDIT_LOGIN,  /* sign-in, failed or not */
	AUDIT_LOGOUT, /* sign-out */
	AUDIT_BREAK_GLASS, /* an emergency access grant (api/glass.c): action
			      'E' its claim, 'D' its early end */
	AUDIT_EXPORT, /* a resource sent out of careweave (a Subscription's
			 notice, notify/): DICOM 110106 Export, remote the
			 endpoint's host */
};

/* Why an access was made, when it is not the ordinary care of the user's
 * own patients (store_audit.purpose; the number is stored and hashed:
 * never renumber). Rendered as purposeOfEvent. */
enum audit_purpose {
	AUDIT_PURPOSE_NONE = 0,
	AUDIT_PURPOSE_BTG = 1, /* v3-ActReason BTG: the request reached a
				  patient only through a break-the-glass grant */
};

/* What happened, as stored (store_audit.subtype): the number is in the
 * table and in the chain hash, so never renumber; append. The codes and
 * their systems are the table audit_subtypes in audit.c. */
enum audit_subtype {
	AUDIT_SUB_NONE = 0,    /* a REST record without an interaction */
	AUDIT_SUB_READ,
	AUDIT_SUB_VREAD,
	AUDIT_SUB_SEARCH_TYPE,
	AUDIT_SUB_HISTORY_INSTANCE,
	AUDIT_SUB_HISTORY_TYPE,
	AUDIT_SUB_HISTORY_SYSTEM,
	AUDIT_SUB_CREATE,
	AUDIT_SUB_UPDATE,
	AUDIT_SUB_DELETE,
	AUDIT_SUB_TRANSACTION,
	AUDIT_SUB_BATCH,
	AUDIT_SUB_OPERATION,
	AUDIT_SUB_LOGIN,       /* DICOM 110122 */
	AUDIT_SUB_LOGOUT,      /* DICOM 110123 */
	AUDIT_SUB_BREAK_GLASS, /* v3-ActReason BTG, the reason in detail */
	AUDIT_SUB_EXPORT,      /* DICOM 110106: sent to a Subscription's endpoint */
	AUDIT_SUB_PATCH,       /* the patch interaction (an update by JSON Patch) */
	AUDIT_NSUB
};

/* One thing a record is about. */
struct audit_entity {
	const char *type;    /* resource type ("Patient"), or NULL */
	const char *id;      /* its id, or NULL (a search, a create that failed) */
	const char *params;  /* a search: parameter names "name,_count", or NULL;
				stored for the first entity only */
};

/* What happened. Strings are borrowed for the call. */
struct audit_event {
	enum audit_kind kind;
	const char *interaction; /* http://hl7.org/fhir/restful-interaction code
				    ("read", "search-type", "create", ...); one
				    careweave does not know is "operation" */
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
	const char *detail;      /* a reason the user gave, or NULL */
	int purpose;             /* enum audit_purpose (a flag, no text) */
	int64_t at;              /* ms; 0: now */
};

/* The outcome code of an HTTP status: "0" success, "4" minor failure
 * (4xx), "8" serious failure (5xx). Static storage. */
const char *audit_outcome(int status);

/* The code of a stored subtype ("read", "110122"), "-" for none or one
 * this build does not know. Static storage. */
const char *audit_subtype_code(int subtype);

/* The record of ev as the store keeps it: *out and every string it points
 * to in one block of memory, allocated in a, or with malloc when a is NULL
 * (the caller frees *out). No JSON: short strings only, about 150 bytes
 * for a read. CW_ETOOBIG when its entity or patient list is over
 * AUDIT_LIST_MAX (a transaction of 10,000 entries is about 0.5 MiB). */
#define AUDIT_LIST_MAX (8u << 20)
enum cw_err audit_pack(struct arena *a, const struct audit_event *ev,
		       struct store_audit **out);

/* Appends the FHIR R4 AuditEvent of stored record r to sb (its id is
 * r->seq). The same text every time it is rendered. */
void audit_render(struct sbuf *sb, const struct store_audit *r);

/* Packs and appends ev inside a store_write callback (a change's own
 * transaction). */
enum cw_err audit_tx_write(struct store_tx *tx, struct arena *a,
			   const struct audit_event *ev);

/* Packs ev and writes it in its own durable commit. Blocks. */
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

/* Queues ev (packed with malloc: nothing of the caller's is kept; a is
 * not used and may be NULL). With may_wait false
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
