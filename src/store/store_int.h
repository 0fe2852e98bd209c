/* store/store_int.h: what sqlite.c and sqlite_search.c share, nothing more.
 *
 * A store is one database file, one writer connection owned by the writer
 * thread, one checkpointer connection owned by the checkpointer thread,
 * and one reader connection per thread that reads (opened lazily,
 * found through a pthread key, closed by store_close). Every connection
 * caches its prepared statements: a fixed table for the write and lookup
 * paths, and a small LRU keyed by SQL text for generated search SQL. None of
 * these names leave store/. See store/README.md for the invariants. */
#ifndef CW_STORE_INT_H
#define CW_STORE_INT_H

#include <pthread.h>
#include <sqlite3.h>

#include "store/store.h"

/* Statements every connection may need, prepared on first use. The SQL
 * text is the table sq_fixed_sql[] in sqlite.c. */
enum sq_fixed {
	SQ_BEGIN_IMM,
	SQ_BEGIN_READ,
	SQ_COMMIT,
	SQ_ROLLBACK,
	SQ_SP_JOB,
	SQ_SP_JOB_RELEASE,
	SQ_SP_JOB_ROLLBACK,
	SQ_CUR,
	SQ_READ,
	SQ_READ_RID,
	SQ_VREAD,
	SQ_INS_RES,
	SQ_UPD_RES,
	SQ_INS_VER,
	SQ_KEEP_VER,
	SQ_DEL_TOKEN,
	SQ_DEL_STRING,
	SQ_DEL_REF,
	SQ_DEL_DATE,
	SQ_DEL_NUMBER,
	SQ_DEL_QTY,
	SQ_DEL_URI,
	SQ_DEL_COMP,
	SQ_INS_TOKEN,
	SQ_INS_STRING,
	SQ_INS_REF,
	SQ_INS_DATE,
	SQ_INS_NUMBER,
	SQ_INS_QTY,
	SQ_INS_URI,
	SQ_INS_COMP,
	SQ_COUNT_TYPE,
	SQ_COUNT_ALL,
	SQ_NFIXED
};

#define SQ_DYN_CACHE 64

/* The text of a version over alias v: the current version's text lives
 * only in res (its versions.json is NULL), older ones in versions. */
#define VERSION_JSON                                                   \
	"coalesce(v.json, (SELECT r.json FROM res r WHERE r.type = v.type" \
	" AND r.id = v.id))"

struct sq_dyn {
	char *sql;     /* heap copy, the cache key */
	size_t len;
	uint64_t hash;
	uint64_t used; /* LRU tick */
	sqlite3_stmt *st;
};

struct sq_conn {
	sqlite3 *db;
	sqlite3_stmt *fixed[SQ_NFIXED];
	struct sq_dyn dyn[SQ_DYN_CACHE];
	uint64_t tick;
	struct sq_conn *next; /* in store.conns */
};

struct sq_job;

struct store {
	char *path;
	struct sq_crypt *crypt;    /* NULL: the file is not encrypted */
	struct store_options opt;
	pthread_key_t key;         /* this thread's reader sq_conn */
	pthread_mutex_t conns_mu;
	struct sq_conn *conns;     /* every reader connection, for close */

	/* writer; everything below mu is guarded by it */
	bool has_writer;
	pthread_t writer;
	struct sq_conn *wconn;     /* used by the writer thread only */
	void (*group_hook)(void *ctx); /* store_set_group_hook */
	void *group_hook_ctx;
	struct arena *tx_arena;    /* store_tx_arena(), reset after commit */
	struct arena *scratch;     /* one put's rows, reset after each put */
	struct sbuf jbuf;          /* serialized JSON of one put */
	int64_t last_ms;           /* lastUpdated never goes backwards */
	struct sq_job **batch;     /* the group being committed (max_group) */
	/* the facts row a job last read or wrote (sqlite_facts.c): a module
	 * reads back what it just wrote without SQLite; forgotten at the start
	 * of every job (so a rolled-back job leaves nothing in it) */
	struct {
		char *name, *body;
		size_t n, cap;
		bool valid;
	} facts_last;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct sq_job *head, *tail;
	bool stopping;
	/* the writer's work while it has no job (sqlite.c, writer_idle):
	 * the step it is at, the WAL file's descriptor while it grows, and
	 * (under mu) whether a turn is under way, for a job to interrupt */
	int idle_step;
	int prefill_fd;
	bool idle_turn;

	/* checkpointer: copies the WAL into the database off the commit
	 * path; everything below ck_mu is guarded by it */
	bool has_ckpt;
	pthread_t ckpt;
	struct sq_conn *cconn;     /* used by the checkpointer thread only */
	pthread_mutex_t ck_mu;
	pthread_cond_t ck_cv;
	int wal_frames;            /* frames in the WAL after the last commit */
	int last_commit_frames;    /* frames the last commit added */
	uint64_t commits;          /* commits so far (the idle clock) */
	bool ck_wanted;            /* the WAL passed CKPT_FRAMES */
	bool ck_stopping;
};

struct store_tx {
	struct store *s;
	struct sq_conn *c;
	enum cw_err poisoned; /* a write of this job failed half way */
	int64_t stamp;        /* store_tx_stamp's time for this job's writes, or 0 */
};

/* Forgets the facts row kept from the last job; frees it too when done
 * (store_close). */
void sq_facts_forget(struct store *s, bool done);

/* The calling thread's reader connection, opened on first use. NULL with
 * an issue in d (may be NULL) when the database cannot be opened. */
struct sq_conn *sq_reader(struct store *s, struct diag *d);
/* A fixed statement, prepared on first use; NULL on failure. */
sqlite3_stmt *sq_fixed(struct sq_conn *c, enum sq_fixed which);
/* A cached statement for generated SQL; NULL on failure. The statement
 * stays cached: callers sq_done() it, never finalize it. */
sqlite3_stmt *sq_prepare(struct sq_conn *c, const char *sql, size_t len);
/* Resets st and clears its bindings so the cache can hand it out again. */
void sq_done(sqlite3_stmt *st);
/* Runs a fixed statement that returns no rows. */
int sq_exec_fixed(struct sq_conn *c, enum sq_fixed which);
/* Maps a SQLite result code to ours, logging the SQLite message (which
 * never carries values: all values are bound). */
enum cw_err sq_err(struct sq_conn *c, int rc, const char *what);
/* Steps a fully bound write statement once (SQLITE_DONE: CW_OK, else
 * sq_err with what) and sq_done()s it. */
enum cw_err sq_step_write(struct sq_conn *c, sqlite3_stmt *st, const char *what);
/* Text column i of st's row copied into a; NULL for SQL NULL, and NULL
 * with *ok false when a is full. */
const char *sq_col_str(struct arena *a, sqlite3_stmt *st, int i, bool *ok);
/* Fills out from the current row of st, columns from col:
 * type, id, version, updated, deleted, json. Strings copied into a. */
enum cw_err sq_row_res(struct arena *a, sqlite3_stmt *st, int col,
		       struct store_res *out);
/* The number that names search parameter code of type in the index
 * tables' param column (a hash of "Type.code"; stored, so never changed). */
int64_t sq_param_id(const char *type, const char *code);
/* The name of the VFS the writer opens the database with: the default
 * VFS with the WAL appends of a transaction gathered into few large writes
 * (sqlite_vfs.c). NULL if it could not be registered (use the default). */
const char *sq_vfs_name(void);
/* ---- VFS shims (sqlite_shim.c) ---- */

/* The head of every file a careweave VFS shim opens: SQLite's file, and
 * the lower VFS's file, which sits in the same allocation right after
 * the shim's own struct (the shim's szOsFile counts both). */
struct sq_shim_file {
	sqlite3_file base;
	sqlite3_file *real;
};
/* Fills m with io methods (version 2: no xFetch, or 3) that each pass
 * the call down to the lower file; the shim then sets those it does. */
void sq_shim_io(sqlite3_io_methods *m, int version);
/* Fills vfs: named name, xOpen open, files of file_size bytes (the shim's
 * struct) plus lower's; every other call passes to lower (in pAppData).
 * False when lower cannot carry a shim. */
bool sq_shim_vfs(sqlite3_vfs *vfs, sqlite3_vfs *lower, const char *name,
		 size_t file_size,
		 int (*open)(sqlite3_vfs *, sqlite3_filename, sqlite3_file *, int, int *));
/* For the shim's xOpen: opens name on the lower VFS into f->real, placed
 * size bytes after f. On failure (or a lower file whose io methods are
 * older than min_version) it is closed again and f->base.pMethods is
 * NULL, as SQLite wants of a failed open. */
int sq_shim_open_lower(sqlite3_vfs *vfs, struct sq_shim_file *f, size_t size,
		       sqlite3_filename name, int flags, int *out_flags,
		       int min_version);

/* ---- encryption at rest (sqlite_crypt.c) ---- */

#define SQ_CRYPT_KEY STORE_KEY_BYTES /* XChaCha20-Poly1305 key bytes */
#define SQ_CRYPT_PAGE 4096  /* the page size of an encrypted database */
#define SQ_CRYPT_RESERVE 40 /* nonce (24) and tag (16) at each page's end */

struct sq_crypt;
/* Copies key (SQ_CRYPT_KEY bytes) into locked memory and registers the two
 * VFSes that seal this store's pages: one over the writer's WAL shim, one
 * over the default VFS. NULL on failure. */
struct sq_crypt *sq_crypt_new(const unsigned char *key);
/* Unregisters the VFSes and wipes the key. After every connection closed. */
void sq_crypt_free(struct sq_crypt *c);
/* The VFS name a connection of this store opens the database with. */
const char *sq_crypt_vfs(const struct sq_crypt *c, bool writer);
/* Before anything opens path: CW_EFORBIDDEN with a clear issue when key
 * (NULL: none) does not fit the file: a key for a plain file, no key for
 * an encrypted one, or a key that does not open it. A missing or empty
 * file fits both. Reads only. */
enum cw_err sq_crypt_probe(const char *path, const unsigned char *key,
			   struct diag *d);
/* Seals one plain page (src, SQ_CRYPT_PAGE bytes, whose reserved tail is
 * zeros) into dst; kind 'D' (index: page number) or 'W' (frame number).
 * -1 when the reserved bytes are not zeros. */
int sq_crypt_seal(const unsigned char *key, char kind, uint64_t index,
		  const unsigned char *src, unsigned char *dst);
/* Opens a sealed page in place (its reserved tail reads as zeros); -1 when
 * it does not authenticate under key, kind and index. */
int sq_crypt_open(const unsigned char *key, char kind, uint64_t index,
		  unsigned char *page);

/* Reads the resource with this rowid into out (current version). */
enum cw_err sq_read_rid(struct sq_conn *c, struct arena *a, int64_t rid,
			struct store_res *out);

/* The most patients one change's audit record names (store_tx_patients,
 * store_tx_put's out->patients). */
#define TX_PATIENTS_MAX 1000
/* Adds id (len bytes) to the arena list *v of *n (room for max, allocated
 * on first use) unless it is there or the list is full. false: no memory. */
bool sq_add_patient(struct arena *a, const char ***v, size_t *n, size_t max,
		    const char *id, size_t len);

#endif
