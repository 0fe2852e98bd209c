/* store/store.h: the only door to the database.
 *
 * A store holds FHIR resources, every version of them, the search index rows
 * extracted when each version was written, and the patient compartment each
 * resource belongs to. Callers never see SQL. sqlite.c is the embedded
 * implementation; a PostgreSQL one can sit behind this same header.
 *
 * Reads (store_read, store_search, ...) may be called from any thread; each
 * thread gets its own connection. Writes go through store_write(): the
 * caller's function runs inside a write transaction on the store's writer,
 * where it reads, checks conditions and puts resources with the store_tx_*
 * calls. Concurrent store_write calls are grouped into one durable commit
 * (group commit); each caller's function runs in its own savepoint, so one
 * failing call rolls back alone. store_write returns only after the commit
 * is on disk (synchronous=FULL): an acknowledged write survives power loss.
 *
 * Stored JSON is the served text with meta.versionId and meta.lastUpdated
 * already in it, so a read is a lookup and a copy. */
#ifndef CW_STORE_H
#define CW_STORE_H

#include <jansson.h>

#include "base/base.h"
#include "fhir/fhir.h"

struct store;    /* opaque */
struct store_tx; /* opaque; valid only inside a store_write callback */

struct store_options {
	bool readonly;          /* open without the writer (export, tools) */
	unsigned busy_timeout_ms; /* 0: 5000 */
	unsigned max_group;     /* writers grouped into one commit; 0: 64 */
	/* STORE_KEY_BYTES bytes, or NULL: the database file, its WAL and
	 * backups are encrypted page by page with this key (sqlite_crypt.c).
	 * The store keeps its own copy in locked memory and wipes it at
	 * close; the caller may wipe this one once store_open returns. */
	const unsigned char *key;
};

#define STORE_KEY_BYTES 32

/* Opens (creating and migrating if needed) the database at path. On failure
 * returns NULL and fills d with why. Close with store_close(). */
struct store *store_open(const char *path, const struct store_options *opt,
			 struct diag *d);
/* Waits for queued writes, stops the writer, closes every connection. */
void store_close(struct store *s);

/* One stored version of a resource. json points into arena memory. */
struct store_res {
	const char *type;
	const char *id;
	long version;
	int64_t last_updated; /* ms since epoch */
	bool deleted;         /* this version is a delete (json is empty) */
	struct span json;
	/* The patients whose compartment the (current) version is in (a
	 * Patient is in its own), as store_tx_patients would list them, for
	 * the audit record: filled by store_tx_put, store_read and for every
	 * resource of a search or $everything page (patients_known); not by
	 * vread or history. */
	const char **patients;
	size_t npatients;
	bool patients_known;
};

/* Current version of type/id. CW_ENOTFOUND if it never existed, CW_EGONE if
 * its current version is a delete (out is still filled: version, time). */
enum cw_err store_read(struct store *s, struct arena *a, const char *type,
		       const char *id, struct store_res *out);
/* A given version. CW_ENOTFOUND if there is no such version; CW_EGONE if
 * that version is a delete. */
enum cw_err store_vread(struct store *s, struct arena *a, const char *type,
			const char *id, long version, struct store_res *out);

/* A page of results: matches in order, then included resources. */
struct store_page {
	size_t n;
	struct store_res *res;      /* matches (history: versions, newest first) */
	size_t nincluded;
	struct store_res *included; /* _include/_revinclude results */
	long total;                 /* -1 when not computed */
	const char *next;           /* opaque cursor for the next page or NULL */
	const char *prev;           /* opaque cursor for the previous page or NULL */
};

/* Runs q. Results are ordered by q->sort (then by insertion order) and paged
 * by keyset: q->cursor (from a previous page's next/prev) continues where
 * that page ended, at the same cost on page 1 and page 10,000. With
 * q->summary == SUMMARY_COUNT only total is filled. Total is computed when
 * q->total asks for it or for _summary=count. CW_EINVAL (with an issue in d)
 * for a cursor that is not one of ours. */
enum cw_err store_search(struct store *s, struct arena *a,
			 const struct fhir_query *q, struct store_page *out,
			 struct diag *d);

struct store_hist_opt {
	int64_t since;      /* _since in ms, 0 for none */
	int64_t at;         /* _at upper bound in ms, 0 for none */
	unsigned count;     /* page size */
	const char *cursor; /* from a previous page */
};
/* History of one resource (type and id), of a type (id NULL) or of the
 * whole system (both NULL), newest first, paged like store_search. */
enum cw_err store_history(struct store *s, struct arena *a, const char *type,
			  const char *id, const struct store_hist_opt *opt,
			  struct store_page *out, struct diag *d);

/* Everything in patient's compartment (the Patient first), paged. types
 * restricts to the listed resource types when ntypes > 0. since (ms, 0 for
 * none) keeps only resources updated since then. CW_ENOTFOUND if the Patient
 * does not exist. */
enum cw_err store_everything(struct store *s, struct arena *a,
			     const char *patient_id, const char *const *types,
			     size_t ntypes, int64_t since, unsigned count,
			     const char *cursor, struct store_page *out,
			     struct diag *d);

/* Number of current (not deleted) resources of type, or of all if NULL. */
enum cw_err store_count(struct store *s, const char *type, long *out);

/* ---- writing ---------------------------------------------------------- */

typedef enum cw_err (*store_tx_fn)(struct store_tx *tx, void *ctx);

/* Runs fn(tx, ctx) inside a write transaction and commits durably. If fn
 * returns an error, everything it did is rolled back and that error is
 * returned; otherwise the commit's result. fn runs on the writer thread, so
 * it must not call store_write itself, and it must use the store_tx_* calls
 * (not store_read) to see the transaction's own state. The caller's arena
 * may be used from fn (the caller is blocked meanwhile). */
enum cw_err store_write(struct store *s, store_tx_fn fn, void *ctx);

typedef void (*store_ready_fn)(void *ctx);

/* store_write, and once fn has returned CW_OK, ready(ctx) runs on the
 * calling thread while the commit syncs: the caller prepares its answer
 * there (a big transaction's commit is a tenth of its time, and mostly a
 * wait on the disk), and sends it only if this returns CW_OK, since the
 * commit may still fail. ready must not read the store (what fn wrote is
 * not visible before the commit) and may use what fn left in ctx: fn has
 * returned. It does not run if fn failed. */
enum cw_err store_write_ready(struct store *s, store_tx_fn fn,
			      store_ready_fn ready, void *ctx);

/* A create made ready off the writer (store_prep_create, on any thread):
 * the stored text and the index and compartment rows, so the writer only
 * inserts them. In the arena store_prep_create was given. */
struct store_prep {
	int64_t ms;             /* lastUpdated (store_tx_stamp) */
	const char *text;       /* the resource as stored, meta set */
	size_t len;
	struct fhir_idx *rows;  /* fhir_extract's */
	size_t nrows;
	const char **pids;      /* fhir_compartment's */
	size_t npids;
};

struct store_put {
	json_t *res;            /* the resource; the store sets id (if missing),
	                           meta.versionId and meta.lastUpdated in it */
	bool create;            /* a create: assign a new id if res has none;
	                           with an id, fail CW_ECONFLICT if it exists */
	long if_match;          /* >0: fail CW_EPRECOND unless current version is this */
	bool fresh_id;          /* create whose id the caller just made with
	                           id_new: no version can exist, so the store
	                           skips looking (UNIQUE(type, id) still holds) */
	const struct fhir_restype *rt;
	const struct store_prep *prep; /* a fresh_id create made ready by
				  store_prep_create from res, or NULL */
};

/* Makes a create of res (type rt, new id, first version, lastUpdated ms)
 * ready to write: sets its id and meta, serializes it, extracts its index
 * and compartment rows, all in a. Touches no store state: any thread may
 * run it, one resource at a time. */
enum cw_err store_prep_create(struct arena *a, json_t *res,
			      const struct fhir_restype *rt, const char *id,
			      int64_t ms, struct store_prep *out);
/* The time of the job's writes from now on: what store_prep_create is
 * given for the creates it makes ready, and the lastUpdated of every other
 * version the job writes after (a transaction Bundle's versions all have
 * the same). Set once per job. */
int64_t store_tx_stamp(struct store_tx *tx);

/* Writes a new version (or the first). On success out has the stored
 * version (id, version, time, json text in a). created tells whether this
 * made the resource (first version, or recreated after delete). The caller
 * has validated res; the store extracts its index rows and compartment. */
enum cw_err store_tx_put(struct store_tx *tx, struct arena *a,
			 const struct store_put *put, struct store_res *out,
			 bool *created);
/* Writes a delete version. CW_OK also when already deleted or absent
 * (*existed tells). if_match as in store_put. */
enum cw_err store_tx_delete(struct store_tx *tx, struct arena *a,
			    const char *type, const char *id, long if_match,
			    struct store_res *out, bool *existed);
/* Reads inside the transaction (sees its own writes). As store_read. */
enum cw_err store_tx_read(struct store_tx *tx, struct arena *a,
			  const char *type, const char *id,
			  struct store_res *out);
/* Runs a search inside the transaction, for conditional operations: ids of
 * at most max matches in *ids, their number in *n. */
enum cw_err store_tx_match(struct store_tx *tx, struct arena *a,
			   const struct fhir_query *q, size_t max,
			   const char ***ids, size_t *n, struct diag *d);
/* The arena of the transaction's own scratch memory, reset after commit. */
struct arena *store_tx_arena(struct store_tx *tx);

/* Calls fn(ctx) on the writer thread after every group of jobs has ended,
 * committed or rolled back, before their callers return: a module that
 * keeps state about what the jobs wrote (notify/: its Subscriptions, the
 * notices to send) learns that a commit may have made something real.
 * Set it before the first store_write; fn must not call the store. To
 * unset it (NULL) while writes go on, follow with one store_write: once
 * that returns, no call of the old fn is in flight (the writer takes the
 * store's lock between groups, so the next group sees the change). */
void store_set_group_hook(struct store *s, void (*fn)(void *ctx), void *ctx);

/* ---- derived rows (sqlite_facts.c) -------------------------------------
 *
 * A module may keep what it derives from the resources in a row of its
 * own, named "module/key" (coord/: one per patient), read and written in
 * the transaction of the change it follows. The store never interprets a
 * body; a row may be dropped at any time and must be made again from the
 * resources by whoever keeps it. */

/* The body of row name, NUL-terminated, copied into a; *found false (and
 * out empty) when there is none. */
enum cw_err store_tx_facts_get(struct store_tx *tx, struct arena *a,
			       const char *name, struct span *out, bool *found);
/* Creates or replaces row name with the n bytes of body. */
enum cw_err store_tx_facts_put(struct store_tx *tx, const char *name,
			       const void *body, size_t n);
/* Drops row name (nothing when there is none). */
enum cw_err store_tx_facts_drop(struct store_tx *tx, const char *name);

/* ---- people and sessions (for access/) -------------------------------- */

/* A person who signs in. Not a FHIR resource: users live in their own
 * table and are never served, searched or exported. Strings point into
 * arena memory on the way out. */
struct store_user {
	int64_t uid;
	const char *username;
	const char *role;     /* access/ checks the name */
	const char *link;     /* "Practitioner/abc", or NULL (admins) */
	const char *hash;     /* argon2id PHC string; never logged or printed */
	bool disabled;
	int failed;           /* consecutive failed sign-ins since the last lock */
	int lockouts;         /* locks since the last successful sign-in */
	int64_t locked_until; /* ms since epoch, 0 when not locked */
	int64_t created;      /* ms */
	const unsigned char *totp; /* STORE_TOTP_KEY bytes of TOTP secret, or
				      NULL (none); never logged or printed */
	int64_t totp_step;    /* the last TOTP time step accepted, 0: none */
};

#define STORE_SESSION_HASH 32
#define STORE_TOTP_KEY 20

/* A session as stored: the hash of its token, never the token itself. */
struct store_session {
	unsigned char hash[STORE_SESSION_HASH];
	int64_t uid;
	int64_t created;   /* ms */
	int64_t last_seen; /* ms; written coarsely, see access/README.md */
	int64_t expires;   /* ms: the absolute end, whatever the activity */
	bool revoked;
	int64_t totp_step; /* store_session_add: > 0, the TOTP step this sign-in
			      used, which must be later than the user's last */
	struct store_user user; /* filled by store_session_get */
};

/* Adds u (uid and created are set by the store). CW_ECONFLICT if the
 * username is taken. Waits for the commit. */
enum cw_err store_user_add(struct store *s, const struct store_user *u);
/* The user with this (already normalized) username; CW_ENOTFOUND. */
enum cw_err store_user_get(struct store *s, struct arena *a,
			   const char *username, struct store_user *out);
/* Every user, ordered by username, into an arena array. */
enum cw_err store_user_list(struct store *s, struct arena *a,
			    struct store_user **out, size_t *n);
/* Disables (or enables) a user. Disabling also revokes all the user's
 * sessions in the same transaction. CW_ENOTFOUND if there is no such user. */
enum cw_err store_user_set_disabled(struct store *s, const char *username,
				    bool disabled);
/* Replaces the password hash, clears the failure count and any lock, and
 * revokes every session of the user (a reset signs everyone out). */
enum cw_err store_user_set_hash(struct store *s, const char *username,
				const char *hash);
/* Sets the user's TOTP secret (STORE_TOTP_KEY bytes; NULL removes it),
 * forgets the last accepted step and revokes every session of the user.
 * CW_ENOTFOUND if there is no such user. */
enum cw_err store_user_set_totp(struct store *s, const char *username,
				const unsigned char *key);
/* Records the failure state after a failed sign-in. */
enum cw_err store_user_set_failures(struct store *s, int64_t uid, int failed,
				    int lockouts, int64_t locked_until);

/* A successful sign-in, in one transaction: inserts the session, clears
 * the user's failure count and lockouts, and deletes sessions whose
 * absolute end is before now (ms), so the table does not grow. With
 * ss->totp_step > 0 it first moves the user's last accepted step there,
 * and changes nothing but answers CW_ECONFLICT when that step is not
 * later than the last one (the same code used twice, even at once). */
enum cw_err store_session_add(struct store *s, const struct store_session *ss,
			      int64_t now);
/* The session with this hash, joined with its user. CW_ENOTFOUND. */
enum cw_err store_session_get(struct store *s, struct arena *a,
			      const unsigned char hash[STORE_SESSION_HASH],
			      struct store_session *out);
/* Moves last_seen forward (never back). */
enum cw_err store_session_touch(struct store *s,
				const unsigned char hash[STORE_SESSION_HASH],
				int64_t last_seen);
/* Marks the session revoked (sign-out). CW_OK also when there is none. */
enum cw_err store_session_revoke(struct store *s,
				 const unsigned char hash[STORE_SESSION_HASH]);

/* ---- the audit trail (for audit/) ------------------------------------- */

/* Audit records live in their own append-only table (sqlite_audit.c), not
 * in res: they are never indexed, versioned, changed or deleted. A record
 * is stored as typed columns (not JSON: audit/ renders the AuditEvent from
 * them when one is read), and its AuditEvent id is its seq in decimal.
 * Each row carries hash = BLAKE2b-256(previous row's hash || a canonical
 * length-prefixed encoding of its columns), the first chaining from 32 zero
 * bytes (src/audit/README.md has the encoding). Only these calls write it,
 * and only inside store_write callbacks: the writer thread serializes every
 * write, so the chain has one order and a rolled-back job leaves no link. */

#define STORE_AUDIT_HASH 32

/* One record: the columns of one row of audit. Strings borrowed on the way
 * in (NULL: none), arena memory on the way out. `entity` and `patients`
 * are lists separated by one space (ids, types and parameter names hold no
 * space): "Observation/o1", "Patient Patient/p1", "p1 p2". */
struct store_audit {
	int64_t seq;          /* set by the store: 1, 2, 3, ...; the AuditEvent id */
	int64_t at;           /* ms: AuditEvent.recorded */
	int subtype;          /* what happened: audit/'s enum audit_subtype */
	int action;           /* 'C', 'R', 'U', 'D', 'E' */
	int status;           /* the HTTP status answered */
	const char *user;     /* username, or NULL */
	const char *role;     /* careweave role ("operator": a CLI door), or NULL */
	const char *link;     /* "Practitioner/abc", or NULL */
	const char *remote;   /* client address, or NULL */
	const char *entity;   /* what: "Type/id" or "Type" (a search), listed */
	const char *params;   /* a search's parameter NAMES "name,_count", or NULL */
	const char *patients; /* ids of the patients it names, listed, or NULL */
	const char *detail;   /* a reason given (break-the-glass), or NULL */
	int purpose;          /* audit/'s enum audit_purpose: 0 none, 1 BTG (a
				 read made only through a break-the-glass
				 grant); hashed only when not 0 */
};

/* Appends n records in order, chaining each to the one before (one lookup
 * of the last hash, then n inserts). A failure half way poisons the job. */
enum cw_err store_tx_audit_append(struct store_tx *tx,
				  const struct store_audit *recs, size_t n);
/* The patients whose compartment the current version of type/id is in
 * (a Patient: itself), as the transaction sees it: call it after a put,
 * and before a delete (which drops the rows). Arena array; *n may be 0. */
enum cw_err store_tx_patients(struct store_tx *tx, struct arena *a,
			      const char *type, const char *id,
			      const char ***ids, size_t *n);
/* The distinct patients of res[0..nres) (from the compartment table; a
 * Patient is its own), at most max of them. One query per resource type
 * among them, so a page of 50 costs about what one read does. */
enum cw_err store_patients_of(struct store *s, struct arena *a,
			      const struct store_res *res, size_t nres,
			      size_t max, const char ***ids, size_t *n);
/* The record with AuditEvent id (its seq in decimal); CW_ENOTFOUND. */
enum cw_err store_audit_get(struct store *s, struct arena *a, const char *id,
			    struct store_audit *out);
/* Records newest first: those naming patient (NULL: all), with seq below
 * before (0: no bound; the keyset of the next page) and at >= since (ms, 0:
 * none), at most max, into an arena array. */
enum cw_err store_audit_list(struct store *s, struct arena *a,
			     const char *patient, int64_t before, int64_t since,
			     size_t max, struct store_audit **out, size_t *n);

/* What store_audit_verify found. */
struct store_audit_check {
	int64_t records;  /* rows read */
	int64_t bad_seq;  /* 0: the chain is intact; else the first seq that
			     does not match, or the first one missing */
	bool missing;     /* bad_seq is missing (a gap), not altered */
};
/* Recomputes the chain over every row in seq order, on a reader snapshot.
 * CW_OK whatever it finds (out says); an error only when it cannot read.
 * Costs one pass over the table (about 1 s per million records). */
enum cw_err store_audit_verify(struct store *s, struct store_audit_check *out);

/* Copies the database, online (writers and other processes go on), into a
 * new file at out: written to out.tmp, synced, renamed over out, the
 * folder synced. Encrypted with the store's key when it has one. One read
 * transaction: the copy is the database as of one commit. */
enum cw_err store_backup(struct store *s, const char *out, struct diag *d);

/* True when the store's file is encrypted (store_options.key). */
bool store_is_encrypted(const struct store *s);

/* ---- break-the-glass grants (for access/) ------------------------------ */

/* An emergency access grant: user uid may reach patient_id until expires
 * or until it is ended early (ended). Not a FHIR resource (own table, never
 * served). The reason is the clinician's words: never logged. */
struct store_glass {
	int64_t gid;          /* the grant's id: set by the store (add, list) */
	int64_t uid;
	const char *patient_id;
	const char *reason;
	int64_t granted;      /* ms */
	int64_t expires;      /* ms */
	const char *notice;   /* the grant's notification (a Communication id),
				 or NULL (a grant from before migration 7) */
	int64_t ended;        /* ms when it was ended early; 0: it was not */
	int64_t ended_by;     /* the uid that ended it; 0: an operator tool */
	const char *username; /* store_glass_list: the username of uid */
	const char *ended_by_name; /* store_glass_list: of ended_by, or NULL */
};

/* Records g inside a store_write callback, so the grant commits with what
 * the caller writes beside it (the notification) or not at all. Sets
 * g->gid. */
enum cw_err store_tx_glass_add(struct store_tx *tx, struct store_glass *g);
/* Ends grant gid at now, by uid by (0: an operator tool), inside a
 * store_write callback: CW_ENOTFOUND unless it was live at now (granted <=
 * now < expires, not ended), so two ends of one grant end it once. */
enum cw_err store_tx_glass_end(struct store_tx *tx, int64_t gid, int64_t now,
			       int64_t by);
/* The patient ids of uid's grants live at now (granted <= now < expires,
 * not ended), distinct, into an arena array. One indexed lookup. */
enum cw_err store_glass_live(struct store *s, struct arena *a, int64_t uid,
			     int64_t now, const char ***ids, size_t *n);

/* Which grants store_glass_list returns; 0 or NULL: any. */
struct store_glass_filter {
	int64_t gid;
	int64_t uid;
	const char *patient_id;
	bool live_only;       /* only those live at now */
	int64_t now;          /* ms */
};
/* Grants matching f, newest first, with their usernames, into an arena
 * array (strings in the arena too). */
enum cw_err store_glass_list(struct store *s, struct arena *a,
			     const struct store_glass_filter *f,
			     struct store_glass **out, size_t *n);

/* ---- the HL7 v2 message log (sqlite_hl7.c, for hl7v2/) ------------------
 *
 * Every message a feed sent, as it arrived, with the answer careweave gave
 * and what it wrote. One row per key (sending application, sending
 * facility, control id: MSH-3, MSH-4, MSH-10): a message sent again finds
 * its row. Not FHIR resources: never served, searched or exported. */

enum store_hl7_outcome {
	STORE_HL7_ACCEPTED = 0, /* applied (ACK AA) */
	STORE_HL7_ERROR = 1,    /* understood, not applied (AE): fix, replay */
	STORE_HL7_REJECTED = 2, /* not taken (AR): type, version, not HL7 */
};

struct store_hl7 {
	int64_t seq;            /* the row's number (the store sets it) */
	const char *sender;     /* MSH-3.1, "" when absent */
	const char *facility;   /* MSH-4.1, "" when absent */
	const char *control_id; /* MSH-10, "" when absent */
	const char *type;       /* "ADT^A01", or NULL */
	const char *version;    /* MSH-12, or NULL */
	const char *peer;       /* "ip:port" it came from, or NULL (a replay) */
	int64_t received;       /* ms: first received (the store keeps it) */
	int64_t updated;        /* ms: last received or replayed */
	int attempts;           /* times received or replayed (the store counts) */
	int outcome;            /* enum store_hl7_outcome */
	const char *ack;        /* the answer sent, or NULL */
	const char *detail;     /* why, in words (no values of the message) */
	const char *resources;  /* what it wrote: "Patient/x Encounter/y", or NULL */
	struct span raw;        /* the message as received */
};

/* The row of a key, inside a store_write callback; CW_ENOTFOUND if none. */
enum cw_err store_tx_hl7_get(struct store_tx *tx, struct arena *a,
			     const char *sender, const char *facility,
			     const char *control_id, struct store_hl7 *out);
/* The same, read as committed (a reader connection): for a look before
 * the job that writes (store_tx_hl7_get inside it decides). */
enum cw_err store_hl7_find(struct store *s, struct arena *a, const char *sender,
			   const char *facility, const char *control_id,
			   struct store_hl7 *out);
/* Records m under its key: a new row, or the key's row with m's outcome,
 * answer, detail, resources, type, version, peer, raw and updated, one
 * more attempt (received stays the first). Sets m->seq. */
enum cw_err store_tx_hl7_put(struct store_tx *tx, struct store_hl7 *m);

/* Which rows store_hl7_list returns: outcome < 0 any; before > 0 only
 * seq < before (paging back); at most limit (1..1000) newest first. */
struct store_hl7_filter {
	int outcome;
	int64_t before;
	size_t limit;
};

/* Rows newest first into an arena array, without raw and ack. */
enum cw_err store_hl7_list(struct store *s, struct arena *a,
			   const struct store_hl7_filter *f,
			   struct store_hl7 **out, size_t *n);
/* The row seq, whole; CW_ENOTFOUND if none. */
enum cw_err store_hl7_get(struct store *s, struct arena *a, int64_t seq,
			  struct store_hl7 *out);

/* ---- Subscription notifications (sqlite_notify.c, for notify/) ---------
 *
 * The notices waiting to be sent: one per (Subscription, version of a
 * resource that matched its criteria), queued inside the transaction of
 * the change, so a notice exists exactly when the change committed, and
 * deleted once it is delivered or given up. And the owner of each
 * Subscription (whose rights it delivers with), which the server sets and
 * the resource cannot. Not FHIR resources: never served or exported. */

struct store_notice {
	int64_t seq;          /* set by the store: the order of queueing */
	const char *sub_id;   /* the Subscription */
	const char *type;     /* what matched: type, id and the version */
	const char *id;
	long version;
	int64_t created;      /* ms: queued */
	int64_t due;          /* ms: not to be tried before */
	int attempts;         /* tries that failed */
	const char *error;    /* why the last one failed (no PHI), or NULL */
};

/* Queues a notice of type/id/version for sub_id, due at now. */
enum cw_err store_tx_notice_add(struct store_tx *tx, const char *sub_id,
				const char *type, const char *id, long version,
				int64_t now);
/* At most max notices due at now (due <= now), oldest due first, into an
 * arena array; *next is the due time of the first one left waiting after
 * them (0: none). Read as committed (a reader connection). */
enum cw_err store_notice_due(struct store *s, struct arena *a, int64_t now,
			     size_t max, struct store_notice **out, size_t *n,
			     int64_t *next);
/* Deletes notice seq (delivered, or given up). */
enum cw_err store_tx_notice_drop(struct store_tx *tx, int64_t seq);
/* Deletes every notice of sub_id (the Subscription is gone or off). */
enum cw_err store_tx_notice_drop_sub(struct store_tx *tx, const char *sub_id);
/* A failed try of notice seq: its attempts and error are set, and every
 * notice of its Subscription waits until due at least, so a Subscription's
 * notices go out in order and a failing endpoint is not hammered. */
enum cw_err store_tx_notice_retry(struct store_tx *tx, int64_t seq,
				  const char *sub_id, int attempts,
				  int64_t due, const char *error);
/* Notices waiting, all or of sub_id (NULL: all). */
enum cw_err store_notice_count(struct store *s, const char *sub_id, long *out);

/* Sets the owner of Subscription sub_id (a username); NULL removes it. */
enum cw_err store_tx_sub_owner_set(struct store_tx *tx, const char *sub_id,
				   const char *owner);
/* The owner of sub_id into a, or *owner NULL when it has none. */
enum cw_err store_sub_owner_get(struct store *s, struct arena *a,
				const char *sub_id, const char **owner);

/* Runs PRAGMA integrity_check; CW_OK when it says ok. */
enum cw_err store_check(struct store *s, struct diag *d);

#endif
