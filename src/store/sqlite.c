/* store/sqlite.c: the embedded store: schema, connections, the writer.
 *
 * Owns the database file's life (open, migrate, close), the per-thread
 * reader connections with their statement caches, and the one writer
 * thread that groups concurrent store_write calls into one durable commit:
 * BEGIN IMMEDIATE, one SAVEPOINT per caller, one COMMIT with
 * synchronous=FULL, then every caller is woken with its own result; and
 * the checkpointer thread that copies the WAL into the database off the
 * commit path. Also the single-row paths: read, vread, count, check and the
 * store_tx_* writes with their index rows. Search, history and $everything live in
 * sqlite_search.c. The invariants are written down in store/README.md. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "store/store_int.h"

/* ---- schema ----------------------------------------------------------- */

/* Migrations run in order inside one IMMEDIATE transaction; schema_version
 * holds the number of the last one applied. Never edit a shipped entry:
 * add the next one. */

/* Rebuilds index table t with an integer param column: cols are its value
 * columns, names their names, idx the value index's columns. */
#define MIGRATE_PARAM(t, cols, names, idx)                                   \
	"CREATE TABLE " t "_new(rid INTEGER NOT NULL, param INTEGER NOT NULL,"  \
	"  seq INTEGER NOT NULL, " cols ","                                      \
	"  PRIMARY KEY(rid, param, seq)) WITHOUT ROWID;"                         \
	"INSERT INTO " t "_new SELECT rid, cw_param_id(param), seq, " names     \
	"  FROM " t ";"                                                          \
	"DROP TABLE " t ";"                                                      \
	"ALTER TABLE " t "_new RENAME TO " t ";"                                 \
	"CREATE INDEX " t "_v ON " t "(" idx ");"
static const char *const migrations[] = {
	/* 1: the initial schema */
	"CREATE TABLE res("
	"  rid INTEGER PRIMARY KEY,"
	"  type TEXT NOT NULL,"
	"  id TEXT NOT NULL,"
	"  version INTEGER NOT NULL,"
	"  updated INTEGER NOT NULL,"
	"  deleted INTEGER NOT NULL DEFAULT 0,"
	"  json TEXT NOT NULL,"
	"  UNIQUE(type, id));"
	"CREATE INDEX res_type ON res(type, deleted);"
	"CREATE TABLE versions("
	"  vid INTEGER PRIMARY KEY,"
	"  type TEXT NOT NULL,"
	"  id TEXT NOT NULL,"
	"  version INTEGER NOT NULL,"
	"  updated INTEGER NOT NULL,"
	"  deleted INTEGER NOT NULL,"
	"  json TEXT,"
	"  UNIQUE(type, id, version));"
	"CREATE INDEX versions_type ON versions(type);"
	"CREATE TABLE ix_token(rid INTEGER NOT NULL, param TEXT NOT NULL,"
	"  seq INTEGER NOT NULL, system TEXT, code TEXT, text TEXT,"
	"  PRIMARY KEY(rid, param, seq)) WITHOUT ROWID;"
	"CREATE INDEX ix_token_v ON ix_token(param, code, system);"
	"CREATE TABLE ix_string(rid INTEGER NOT NULL, param TEXT NOT NULL,"
	"  seq INTEGER NOT NULL, norm TEXT, raw TEXT,"
	"  PRIMARY KEY(rid, param, seq)) WITHOUT ROWID;"
	"CREATE INDEX ix_string_v ON ix_string(param, norm);"
	"CREATE TABLE ix_ref(rid INTEGER NOT NULL, param TEXT NOT NULL,"
	"  seq INTEGER NOT NULL, ref_type TEXT, ref_id TEXT, raw TEXT,"
	"  PRIMARY KEY(rid, param, seq)) WITHOUT ROWID;"
	"CREATE INDEX ix_ref_v ON ix_ref(param, ref_id, ref_type);"
	"CREATE TABLE ix_date(rid INTEGER NOT NULL, param TEXT NOT NULL,"
	"  seq INTEGER NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL,"
	"  PRIMARY KEY(rid, param, seq)) WITHOUT ROWID;"
	"CREATE INDEX ix_date_v ON ix_date(param, lo);"
	"CREATE TABLE ix_number(rid INTEGER NOT NULL, param TEXT NOT NULL,"
	"  seq INTEGER NOT NULL, num REAL, lo REAL, hi REAL,"
	"  PRIMARY KEY(rid, param, seq)) WITHOUT ROWID;"
	"CREATE INDEX ix_number_v ON ix_number(param, num);"
	"CREATE TABLE ix_quantity(rid INTEGER NOT NULL, param TEXT NOT NULL,"
	"  seq INTEGER NOT NULL, num REAL, lo REAL, hi REAL, system TEXT,"
	"  code TEXT, PRIMARY KEY(rid, param, seq)) WITHOUT ROWID;"
	"CREATE INDEX ix_quantity_v ON ix_quantity(param, code, num);"
	"CREATE TABLE ix_uri(rid INTEGER NOT NULL, param TEXT NOT NULL,"
	"  seq INTEGER NOT NULL, raw TEXT,"
	"  PRIMARY KEY(rid, param, seq)) WITHOUT ROWID;"
	"CREATE INDEX ix_uri_v ON ix_uri(param, raw);"
	"CREATE TABLE compartment(patient_id TEXT NOT NULL,"
	"  rid INTEGER NOT NULL, PRIMARY KEY(patient_id, rid)) WITHOUT ROWID;"
	"CREATE INDEX compartment_rid ON compartment(rid);",

	/* 2: index rows name their parameter by number (sq_param_id), not
	 * by its text: every row and value-index entry is about 20 bytes
	 * shorter. cw_param_id() is the same function, registered on the
	 * writer's connection for this step. */
	MIGRATE_PARAM("ix_token", "system TEXT, code TEXT, text TEXT",
		      "system, code, text", "param, code, system")
	MIGRATE_PARAM("ix_string", "norm TEXT, raw TEXT", "norm, raw",
		      "param, norm")
	MIGRATE_PARAM("ix_ref", "ref_type TEXT, ref_id TEXT, raw TEXT",
		      "ref_type, ref_id, raw", "param, ref_id, ref_type")
	MIGRATE_PARAM("ix_date", "lo INTEGER NOT NULL, hi INTEGER NOT NULL",
		      "lo, hi", "param, lo")
	MIGRATE_PARAM("ix_number", "num REAL, lo REAL, hi REAL",
		      "num, lo, hi", "param, num")
	MIGRATE_PARAM("ix_quantity",
		      "num REAL, lo REAL, hi REAL, system TEXT, code TEXT",
		      "num, lo, hi, system, code", "param, code, num")
	MIGRATE_PARAM("ix_uri", "raw TEXT", "raw", "param, raw"),

	/* 3: people who sign in, and their sessions (access/). Kept apart
	 * from res: they are not FHIR resources and are never served as
	 * such. A session is stored only as the hash of its token, so a
	 * copy of this file gives no live tokens. */
	"CREATE TABLE users("
	"  uid INTEGER PRIMARY KEY,"
	"  username TEXT NOT NULL UNIQUE,"
	"  role TEXT NOT NULL,"
	"  link TEXT,"
	"  hash TEXT NOT NULL,"
	"  disabled INTEGER NOT NULL DEFAULT 0,"
	"  failed INTEGER NOT NULL DEFAULT 0,"
	"  lockouts INTEGER NOT NULL DEFAULT 0,"
	"  locked_until INTEGER NOT NULL DEFAULT 0,"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE sessions("
	"  hash BLOB PRIMARY KEY,"
	"  uid INTEGER NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  last_seen INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL,"
	"  revoked INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
	"CREATE INDEX sessions_uid ON sessions(uid);"
	"CREATE INDEX sessions_expires ON sessions(expires);",

	/* 4: a second factor (access/totp.c): the user's TOTP secret (20
	 * bytes, NULL: none) and the last time step a code was accepted
	 * for, so a code works once. */
	"ALTER TABLE users ADD COLUMN totp BLOB;"
	"ALTER TABLE users ADD COLUMN totp_step INTEGER NOT NULL DEFAULT 0;",

	/* 5: break-the-glass grants (access/, sqlite_glass.c). Kept apart
	 * from res like users and sessions: a grant is not a FHIR resource
	 * and is never served, searched or exported as one (the Communication
	 * written with it is). The index answers the one hot question, the
	 * live grants of one user, at every clinician's request. */
	"CREATE TABLE glass_grants("
	"  gid INTEGER PRIMARY KEY,"
	"  uid INTEGER NOT NULL,"
	"  patient_id TEXT NOT NULL,"
	"  reason TEXT NOT NULL,"
	"  granted INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL,"
	"  revoked INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX glass_grants_uid ON glass_grants(uid, expires);",

	/* 6: the audit trail (audit/, sqlite_audit.c). Its own tables, not
	 * res: AuditEvents are never indexed, versioned or changed. A record
	 * is typed columns (audit/ renders the AuditEvent JSON from them when
	 * it is read; its id is the seq, so there is no id index), and the
	 * BLAKE2b-256 chain hash over the previous row's hash and a canonical
	 * encoding of the columns. audit_patient lists every patient a record
	 * names (a search names many), for the accounting of disclosures,
	 * keyed by the seq's chunk first so that new rows land in the last few
	 * pages instead of one page per patient (sqlite_audit.c). The
	 * triggers make UPDATE and DELETE fail, so no code path (ours or a
	 * future bug) can change a record; someone with the file can still
	 * drop them, which is what the chain is for. */
	"CREATE TABLE audit("
	"  seq INTEGER PRIMARY KEY,"
	"  at INTEGER NOT NULL,"
	"  subtype INTEGER NOT NULL,"
	"  action INTEGER NOT NULL,"
	"  status INTEGER NOT NULL,"
	"  user TEXT,"
	"  role TEXT,"
	"  link TEXT,"
	"  remote TEXT,"
	"  entity TEXT,"
	"  params TEXT,"
	"  patients TEXT,"
	"  detail TEXT,"
	"  hash BLOB NOT NULL);"
	"CREATE TABLE audit_patient("
	"  chunk INTEGER NOT NULL,"
	"  patient_id TEXT NOT NULL,"
	"  seq INTEGER NOT NULL,"
	"  PRIMARY KEY(chunk, patient_id, seq)) WITHOUT ROWID;"
	"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;"
	"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;"
	"CREATE TRIGGER audit_patient_no_update BEFORE UPDATE ON audit_patient"
	"  BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;"
	"CREATE TRIGGER audit_patient_no_delete BEFORE DELETE ON audit_patient"
	"  BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;",

	/* 7: break-the-glass grants can end early (api/glass.c
	 * $break-glass-end, `careweave glass end`): when (ended, ms; NULL:
	 * not ended) and by whom (ended_by: a uid, 0 for an operator tool),
	 * and the grant's notification (notice, a Communication id), whose
	 * recipients are told of the end. An index by patient for the
	 * privacy officer's "every live grant on this patient". And the
	 * audit record's purpose (audit.purpose: 0 none, 1 v3-ActReason BTG,
	 * a read made only through a grant); a row with 0 hashes as before,
	 * so the rows already chained still verify. ADD COLUMN fires no
	 * UPDATE trigger. */
	"ALTER TABLE glass_grants ADD COLUMN notice TEXT;"
	"ALTER TABLE glass_grants ADD COLUMN ended INTEGER;"
	"ALTER TABLE glass_grants ADD COLUMN ended_by INTEGER;"
	"CREATE INDEX glass_grants_patient ON glass_grants(patient_id);"
	"ALTER TABLE audit ADD COLUMN purpose INTEGER NOT NULL DEFAULT 0;",

	/* 8: what a module keeps derived from the resources (sqlite_facts.c):
	 * coord/'s summary of one patient's medications, allergies and live
	 * findings, so a check reads one row instead of searching and parsing
	 * the record. Written in the transaction of the change it follows;
	 * a row may be dropped at any time (it is made again from the
	 * resources), so no migration ever has to convert one. */
	"CREATE TABLE facts("
	"  name TEXT PRIMARY KEY,"
	"  body BLOB NOT NULL);",

	/* 9: the HL7 v2 message log (sqlite_hl7.c): every message received,
	 * as it arrived, with what careweave answered and did, so an operator
	 * can see and replay what failed (`careweave hl7`). One row per
	 * (sending application, facility, control id): a message sent again
	 * finds its row, and a message already accepted changes nothing. Not
	 * FHIR resources: never served, indexed or exported. */
	"CREATE TABLE hl7_messages("
	"  seq INTEGER PRIMARY KEY,"
	"  sender TEXT NOT NULL,"
	"  facility TEXT NOT NULL,"
	"  control_id TEXT NOT NULL,"
	"  type TEXT,"
	"  version TEXT,"
	"  peer TEXT,"
	"  received INTEGER NOT NULL,"
	"  updated INTEGER NOT NULL,"
	"  attempts INTEGER NOT NULL,"
	"  outcome INTEGER NOT NULL,"
	"  ack TEXT,"
	"  detail TEXT,"
	"  resources TEXT,"
	"  raw BLOB NOT NULL);"
	"CREATE UNIQUE INDEX hl7_messages_key ON hl7_messages(sender, facility, control_id);"
	"CREATE INDEX hl7_messages_outcome ON hl7_messages(outcome, seq);",

	/* 10: Subscription notifications (sqlite_notify.c, for notify/). The
	 * queue holds what is to be sent: one row per (Subscription, the
	 * version of a resource that matched its criteria), written in the
	 * transaction of that change, so a notice exists exactly when the
	 * change committed; a row is deleted once delivered or given up.
	 * Whose rights a Subscription delivers with (its owner: the username
	 * of the user who last wrote it; no row: the operator's door) is the
	 * server's to say, never the resource's, so it has a table of its
	 * own. Neither is served, indexed or exported. */
	"CREATE TABLE notify_owner("
	"  sub_id TEXT PRIMARY KEY,"
	"  owner TEXT NOT NULL);"
	"CREATE TABLE notify_queue("
	"  seq INTEGER PRIMARY KEY,"
	"  sub_id TEXT NOT NULL,"
	"  type TEXT NOT NULL,"
	"  res_id TEXT NOT NULL,"
	"  version INTEGER NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  due INTEGER NOT NULL,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  error TEXT);"
	"CREATE INDEX notify_queue_due ON notify_queue(due, seq);"
	"CREATE INDEX notify_queue_sub ON notify_queue(sub_id, seq);",

	/* 11: a parameter with rows_of (patient, Encounter's practitioner)
	 * keeps no rows of its own: they are rows_of's rows to one type
	 * (subject's to a Patient), about one row fewer per clinical
	 * resource. A reference row to an absolute URL now carries the
	 * URL's type (no id): the rows those parameters take are found by
	 * type whatever the URL. */
	"UPDATE ix_ref SET ref_type = cw_ref_type(raw)"
	"  WHERE ref_type IS NULL AND raw IS NOT NULL AND param IN"
	"  (SELECT value FROM json_each(cw_rows_of_params(1)));"
	"DELETE FROM ix_ref WHERE param IN"
	"  (SELECT value FROM json_each(cw_rows_of_params(0)));",
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

static const char *const sq_fixed_sql[SQ_NFIXED] = {
	[SQ_BEGIN_IMM] = "BEGIN IMMEDIATE",
	[SQ_BEGIN_READ] = "BEGIN",
	[SQ_COMMIT] = "COMMIT",
	[SQ_ROLLBACK] = "ROLLBACK",
	[SQ_SP_JOB] = "SAVEPOINT job",
	[SQ_SP_JOB_RELEASE] = "RELEASE job",
	[SQ_SP_JOB_ROLLBACK] = "ROLLBACK TO job",
	[SQ_CUR] = "SELECT rid, version, deleted, updated FROM res"
		   " WHERE type = ?1 AND id = ?2",
	/* with the patients of its compartment (for the read's audit record):
	 * a covering range of compartment_rid, in the same snapshot */
	[SQ_READ] = "SELECT type, id, version, updated, deleted, json,"
		    " (SELECT group_concat(c.patient_id, ' ') FROM compartment c"
		    "  WHERE c.rid = res.rid) FROM res"
		    " WHERE type = ?1 AND id = ?2",
	[SQ_READ_RID] = "SELECT type, id, version, updated, deleted, json,"
			" (SELECT group_concat(c.patient_id, ' ') FROM compartment c"
			"  WHERE c.rid = res.rid) FROM res WHERE rid = ?1",
	[SQ_VREAD] = "SELECT v.type, v.id, v.version, v.updated, v.deleted, "
		     VERSION_JSON " FROM versions v WHERE v.type = ?1"
		     " AND v.id = ?2 AND v.version = ?3",
	[SQ_INS_RES] = "INSERT INTO res(type, id, version, updated, deleted,"
		       " json) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	[SQ_UPD_RES] = "UPDATE res SET version = ?2, updated = ?3,"
		       " deleted = ?4, json = ?5 WHERE rid = ?1",
	[SQ_INS_VER] = "INSERT INTO versions(type, id, version, updated,"
		       " deleted, json) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	[SQ_KEEP_VER] = "UPDATE versions SET json = (SELECT json FROM res"
			" WHERE rid = ?1) WHERE type = ?2 AND id = ?3"
			" AND version = ?4 AND json IS NULL",
	[SQ_DEL_TOKEN] = "DELETE FROM ix_token WHERE rid = ?1",
	[SQ_DEL_STRING] = "DELETE FROM ix_string WHERE rid = ?1",
	[SQ_DEL_REF] = "DELETE FROM ix_ref WHERE rid = ?1",
	[SQ_DEL_DATE] = "DELETE FROM ix_date WHERE rid = ?1",
	[SQ_DEL_NUMBER] = "DELETE FROM ix_number WHERE rid = ?1",
	[SQ_DEL_QTY] = "DELETE FROM ix_quantity WHERE rid = ?1",
	[SQ_DEL_URI] = "DELETE FROM ix_uri WHERE rid = ?1",
	[SQ_DEL_COMP] = "DELETE FROM compartment WHERE rid = ?1",
	[SQ_INS_TOKEN] = "INSERT INTO ix_token(rid, param, seq, system, code,"
			 " text) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	[SQ_INS_STRING] = "INSERT INTO ix_string(rid, param, seq, norm, raw)"
			  " VALUES(?1, ?2, ?3, ?4, ?5)",
	[SQ_INS_REF] = "INSERT INTO ix_ref(rid, param, seq, ref_type, ref_id,"
		       " raw) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	[SQ_INS_DATE] = "INSERT INTO ix_date(rid, param, seq, lo, hi)"
			" VALUES(?1, ?2, ?3, ?4, ?5)",
	[SQ_INS_NUMBER] = "INSERT INTO ix_number(rid, param, seq, num, lo, hi)"
			  " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	[SQ_INS_QTY] = "INSERT INTO ix_quantity(rid, param, seq, num, lo, hi,"
		       " system, code) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[SQ_INS_URI] = "INSERT INTO ix_uri(rid, param, seq, raw)"
		       " VALUES(?1, ?2, ?3, ?4)",
	[SQ_INS_COMP] = "INSERT OR IGNORE INTO compartment(patient_id, rid)"
			" VALUES(?1, ?2)",
	[SQ_COUNT_TYPE] = "SELECT count(*) FROM res WHERE type = ?1"
			  " AND deleted = 0",
	[SQ_COUNT_ALL] = "SELECT count(*) FROM res WHERE deleted = 0",
};

/* The delete statements that drop a resource's index rows, in one list so
 * a new index table cannot be forgotten on update or delete. */
static const enum sq_fixed index_deletes[] = {
	SQ_DEL_TOKEN, SQ_DEL_STRING, SQ_DEL_REF, SQ_DEL_DATE,
	SQ_DEL_NUMBER, SQ_DEL_QTY, SQ_DEL_URI, SQ_DEL_COMP,
};

/* ---- connections and statements -------------------------------------- */

/* The longest text of one stored version. */
#define STORE_TEXT_MAX (64u << 20)
/* Page caches (negative: KiB) and the readers' mmap window. A reader's
 * cache holds what mmap cannot serve: pages still in the WAL. */
#define WRITER_CACHE "-262144"       /* 256 MiB */
#define READER_CACHE "-65536"        /* 64 MiB */
#define READER_MMAP "1073741824"     /* 1 GiB */
/* The WAL: the checkpointer is woken past CKPT_FRAMES (SQLite's own
 * autocheckpoint point) and rests CKPT_GAP_MS between checkpoints (each
 * costs two fsyncs, which slow the writer's own: checkpointing after every
 * small commit halved creates/s). Past CKPT_HARD_FRAMES the writer
 * checkpoints after its commit itself: by then the checkpointer has copied
 * most frames, and only a checkpoint with no write in flight lets the next
 * transaction start the WAL over. On restart the file is cut back to
 * WAL_KEEP_BYTES, about what back-to-back transaction Bundles grow it to,
 * so they write into pages the file already has; after CKPT_IDLE_MS
 * without a commit the checkpointer restarts it (ckpt_main). */
#define CKPT_FRAMES 1000
#define CKPT_GAP_MS 100
#define CKPT_HARD_FRAMES 8192        /* 32 MiB of 4 KiB pages */
/* After a big commit (a transaction Bundle: about 2,500 frames per 1,000
 * entries) the checkpointer goes on without its rest, and the writer's own
 * checkpoint waits for CKPT_HARD_FRAMES_BIG: at 8,192 frames it came every
 * third or fourth Bundle and cost 40-60 ms inside that Bundle's commit
 * (syncing the pages the checkpointer had copied). Small commits keep the
 * rest and the lower limit, which is what keeps creates/s up. */
#define CKPT_BIG_COMMIT 1000
#define CKPT_HARD_FRAMES_BIG 32768   /* 128 MiB */
/* While big commits keep coming, the checkpointer leaves them in the WAL
 * until CKPT_QUIET_MS pass without a commit, or the WAL reaches
 * CKPT_DEFER_FRAMES: half the writer's limit, so the checkpointer has the
 * other half to catch up in before the writer must checkpoint itself. A
 * checkpoint beside the next big transaction took a quarter of the
 * machine (every page it copies is a write of its own, and its sync
 * queues on the disk before the writer's commit), and ingest ran at
 * 7,300-8,800 resources/s against 9,300-10,500 with it left for the
 * pause; pages written by several Bundles are copied once. */
#define CKPT_DEFER_FRAMES (CKPT_HARD_FRAMES_BIG / 2)
#define CKPT_QUIET_MS 250
#define WAL_KEEP_BYTES "134217728"   /* 128 MiB */
#define CKPT_IDLE_MS 1000

enum cw_err
sq_err(struct sq_conn *c, int rc, const char *what)
{
	int prim = rc & 0xff;

	if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW)
		return CW_OK;
	log_error("store: %s: %s (%d)", what,
		  c && c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc), rc);
	switch (prim) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return CW_EBUSY;
	case SQLITE_NOMEM:
		return CW_ENOMEM;
	case SQLITE_TOOBIG:
		return CW_ETOOBIG;
	case SQLITE_CONSTRAINT:
		return CW_ECONFLICT;
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_CORRUPT:
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
		return CW_EIO;
	default:
		return CW_EINTERNAL;
	}
}

sqlite3_stmt *
sq_fixed(struct sq_conn *c, enum sq_fixed which)
{
	int rc;

	if (c->fixed[which])
		return c->fixed[which];
	rc = sqlite3_prepare_v3(c->db, sq_fixed_sql[which], -1,
				SQLITE_PREPARE_PERSISTENT, &c->fixed[which],
				NULL);
	if (rc != SQLITE_OK) {
		sq_err(c, rc, "prepare");
		c->fixed[which] = NULL;
	}
	return c->fixed[which];
}

static uint64_t
fnv1a(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

sqlite3_stmt *
sq_prepare(struct sq_conn *c, const char *sql, size_t len)
{
	uint64_t h = fnv1a(sql, len);
	struct sq_dyn *victim = &c->dyn[0];
	sqlite3_stmt *st;
	int rc;

	for (size_t i = 0; i < SQ_DYN_CACHE; i++) {
		struct sq_dyn *e = &c->dyn[i];

		if (e->st && e->hash == h && e->len == len &&
		    memcmp(e->sql, sql, len) == 0) {
			e->used = ++c->tick;
			return e->st;
		}
		if (!e->st || (victim->st && e->used < victim->used))
			victim = e;
	}
	/* Generated SQL holds placeholders only, never values: safe to log. */
	log_debug("store: prepare %.*s", (int)len, sql);
	rc = sqlite3_prepare_v3(c->db, sql, (int)len,
				SQLITE_PREPARE_PERSISTENT, &st, NULL);
	if (rc != SQLITE_OK) {
		sq_err(c, rc, "prepare search");
		return NULL;
	}
	if (victim->st) {
		sqlite3_finalize(victim->st);
		free(victim->sql);
		victim->st = NULL;
	}
	victim->sql = malloc(len + 1);
	if (!victim->sql) {
		/* Uncached: still usable once, but we would leak it; refuse. */
		sqlite3_finalize(st);
		return NULL;
	}
	memcpy(victim->sql, sql, len);
	victim->sql[len] = '\0';
	victim->len = len;
	victim->hash = h;
	victim->used = ++c->tick;
	victim->st = st;
	return st;
}

void
sq_done(sqlite3_stmt *st)
{
	if (!st)
		return;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int
sq_exec_fixed(struct sq_conn *c, enum sq_fixed which)
{
	sqlite3_stmt *st = sq_fixed(c, which);
	int rc;

	if (!st)
		return SQLITE_ERROR;
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static void
conn_close(struct sq_conn *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < SQ_NFIXED; i++)
		sqlite3_finalize(c->fixed[i]);
	for (size_t i = 0; i < SQ_DYN_CACHE; i++) {
		sqlite3_finalize(c->dyn[i].st);
		free(c->dyn[i].sql);
	}
	sqlite3_close_v2(c->db);
	free(c);
}

static int
exec_sql(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

enum conn_kind { CONN_READER, CONN_WRITER, CONN_CKPT };

/* Asks for n reserved bytes at the end of every page of a database not
 * yet written; n < 0 only asks (SQLITE_FCNTL_RESERVE_BYTES). */
static int
set_reserve(sqlite3 *db, int n)
{
	return sqlite3_file_control(db, "main", SQLITE_FCNTL_RESERVE_BYTES, &n);
}

/* An encrypted database must have the page layout sqlite_crypt.c seals:
 * 4096-byte pages, 40 of them reserved. Asked of a connection that never
 * set a reserve of its own (SQLite answers the larger of the two). */
static enum cw_err
check_layout(struct sq_conn *c, struct diag *d)
{
	sqlite3_stmt *st;
	int reserve = -1, page = 0, rc;

	rc = sqlite3_prepare_v2(c->db, "PRAGMA page_size", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		page = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_file_control(c->db, "main", SQLITE_FCNTL_RESERVE_BYTES, &reserve);
	if (page == SQ_CRYPT_PAGE && reserve == SQ_CRYPT_RESERVE)
		return CW_OK;
	log_error("store: encrypted database has pages of %d bytes with %d reserved",
		  page, reserve);
	return diag_err(d, CW_EIO, "exception", NULL,
			"the encrypted database does not have the expected page layout");
}

/* Opens one connection. The writer creates the file and runs in WAL with
 * synchronous=FULL and a page cache large enough to hold the hot part of
 * every index (a bundle of 1,000 resources dirties ~3,500 pages and reads
 * more; at 32 MiB a third of its B-tree descents went to pread). Readers are
 * query_only and read the file through mmap. The checkpointer only copies
 * WAL frames into the file: no cache to speak of, and no busy wait (a
 * checkpoint that meets a busy lock is just tried again later). */
static struct sq_conn *
conn_open(struct store *s, enum conn_kind kind, struct diag *d)
{
	struct sq_conn *c = calloc(1, sizeof(*c));
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
	bool writer = kind == CONN_WRITER;
	const char *vfs;
	int rc;

	if (!c) {
		if (d)
			diag_err(d, CW_ENOMEM, "exception", NULL, "out of memory");
		return NULL;
	}
	if (writer)
		flags |= SQLITE_OPEN_CREATE;
	vfs = s->crypt ? sq_crypt_vfs(s->crypt, writer)
		       : writer ? sq_vfs_name() : NULL;
	rc = sqlite3_open_v2(s->path, &c->db, flags, vfs);
	if (rc != SQLITE_OK && kind == CONN_READER) {
		/* A read-only file: readers can live with that. */
		sqlite3_close_v2(c->db);
		c->db = NULL;
		rc = sqlite3_open_v2(s->path, &c->db,
				     SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
				     vfs);
	}
	if (rc != SQLITE_OK)
		goto out_fail;
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, (int)s->opt.busy_timeout_ms);
	switch (kind) {
	case CONN_WRITER:
		/* An encrypted database: 4096-byte pages with room for the
		 * nonce and tag, fixed before its first write (no-ops on one
		 * that exists; check_layout checks). */
		if (s->crypt && (rc = exec_sql(c->db, "PRAGMA page_size=4096")) == SQLITE_OK)
			rc = set_reserve(c->db, SQ_CRYPT_RESERVE);
		if (rc == SQLITE_OK)
			rc = exec_sql(c->db, "PRAGMA journal_mode=WAL");
		if (rc == SQLITE_OK)
			rc = exec_sql(c->db, "PRAGMA synchronous=FULL;"
					     "PRAGMA foreign_keys=OFF;"
					     "PRAGMA temp_store=MEMORY;"
					     "PRAGMA cache_size=" WRITER_CACHE ";"
					     "PRAGMA journal_size_limit=" WAL_KEEP_BYTES);
		break;
	case CONN_READER:
		rc = exec_sql(c->db, "PRAGMA query_only=1;"
				     "PRAGMA temp_store=MEMORY;"
				     "PRAGMA cache_size=" READER_CACHE ";"
				     "PRAGMA mmap_size=" READER_MMAP);
		break;
	case CONN_CKPT:
		sqlite3_busy_timeout(c->db, 0);
		rc = exec_sql(c->db, "PRAGMA synchronous=FULL;"
				     "PRAGMA temp_store=MEMORY");
		break;
	}
	if (rc != SQLITE_OK)
		goto out_fail;
	return c;

out_fail:
	log_error("store: cannot open database: %s",
		  c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
	if (d)
		diag_err(d, CW_EIO, "exception", NULL,
			 "the database cannot be opened");
	conn_close(c);
	return NULL;
}

struct sq_conn *
sq_reader(struct store *s, struct diag *d)
{
	struct sq_conn *c = pthread_getspecific(s->key);

	if (c)
		return c;
	c = conn_open(s, CONN_READER, d);
	if (!c)
		return NULL;
	if (pthread_setspecific(s->key, c) != 0) {
		conn_close(c);
		return NULL;
	}
	pthread_mutex_lock(&s->conns_mu);
	c->next = s->conns;
	s->conns = c;
	pthread_mutex_unlock(&s->conns_mu);
	return c;
}

/* ---- search parameters by number ------------------------------------- */

/* FNV-1a over "Type.code", kept to 31 bits so SQLite stores it in four
 * bytes. The numbers are in every database: never change this function.
 * tests/unit/store/test_param_id.c pins a few values and checks that no
 * two parameters of the served types share one. */
int64_t
sq_param_id(const char *type, const char *code)
{
	uint32_t h = 2166136261u;

	for (const char *p = type; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	h = (h ^ (unsigned char)'.') * 16777619u;
	for (const char *p = code; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return (int64_t)(h & 0x7fffffffu);
}

/* cw_param_id('Type.code'): the same number, for migration 2. */
static void
sql_param_id(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const char *name = (const char *)sqlite3_value_text(argv[0]);
	const char *dot = name ? strchr(name, '.') : NULL;
	char type[128];

	(void)argc;
	if (!dot || (size_t)(dot - name) >= sizeof(type)) {
		sqlite3_result_error(ctx, "cw_param_id: not Type.code", -1);
		return;
	}
	memcpy(type, name, (size_t)(dot - name));
	type[dot - name] = '\0';
	sqlite3_result_int64(ctx, sq_param_id(type, dot + 1));
}

/* cw_ref_type(raw): the type a reference's text names (fhir_ref_type),
 * or NULL; for migration 11. */
static void
sql_ref_type(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const char *type;
	size_t n = fhir_ref_type((const char *)sqlite3_value_text(argv[0]), &type);

	(void)argc;
	if (n)
		sqlite3_result_text(ctx, type, (int)n, SQLITE_TRANSIENT);
	else
		sqlite3_result_null(ctx);
}

/* cw_rows_of_params(0): the numbers of the served parameters with rows_of
 * (they keep no rows of their own); (1): of the parameters they take their
 * rows from. A JSON array, for migration 11. */
static void
sql_rows_of_params(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct sbuf sb = SBUF_INIT(1u << 20);
	enum cw_err err = sbuf_addch(&sb, '[');
	bool sources = sqlite3_value_int(argv[0]) != 0, any = false;

	(void)argc;
	for (size_t i = 0; !err && i < fhir_restype_count(); i++) {
		const struct fhir_restype *rt = fhir_restype_at(i);

		for (size_t k = 0; !err && k < rt->nparams; k++) {
			const struct fhir_searchparam *of = rt->params[k].rows_of;

			if (!of)
				continue;
			err = sbuf_addf(&sb, "%s%lld", any ? "," : "",
					(long long)sq_param_id(rt->name, sources ? of->code
									: rt->params[k].code));
			any = true;
		}
	}
	if (!err)
		err = sbuf_addch(&sb, ']');
	if (err)
		sqlite3_result_error_nomem(ctx);
	else
		sqlite3_result_text(ctx, sb.buf, (int)sb.len, SQLITE_TRANSIENT);
	sbuf_release(&sb);
}

/* ---- migrations ------------------------------------------------------- */

static int
schema_version(sqlite3 *db, int *out)
{
	sqlite3_stmt *st;
	int rc;

	*out = 0;
	rc = sqlite3_prepare_v2(db,
				"SELECT count(*) FROM sqlite_master"
				" WHERE type = 'table' AND name = 'schema_version'",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_int(st, 0) == 0) {
		sqlite3_finalize(st);
		return SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return rc;
	rc = sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1,
				&st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static enum cw_err
migrate(struct sq_conn *c, struct diag *d)
{
	sqlite3_stmt *st = NULL;
	int have, rc;

	rc = sqlite3_create_function(c->db, "cw_param_id", 1,
				     SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
				     sql_param_id, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_create_function(c->db, "cw_ref_type", 1,
					     SQLITE_UTF8 | SQLITE_DETERMINISTIC,
					     NULL, sql_ref_type, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_create_function(c->db, "cw_rows_of_params", 1,
					     SQLITE_UTF8 | SQLITE_DETERMINISTIC,
					     NULL, sql_rows_of_params, NULL, NULL);
	if (rc != SQLITE_OK)
		goto out_fail;
	rc = exec_sql(c->db, "BEGIN IMMEDIATE");
	if (rc != SQLITE_OK)
		goto out_fail;
	rc = schema_version(c->db, &have);
	if (rc != SQLITE_OK)
		goto out_rollback;
	if (have > SCHEMA_VERSION) {
		exec_sql(c->db, "ROLLBACK");
		log_error("store: database schema %d is newer than this build (%d)",
			  have, SCHEMA_VERSION);
		return diag_err(d, CW_EIO, "exception", NULL,
				"the database was written by a newer careweave");
	}
	if (have == 0) {
		rc = exec_sql(c->db, "CREATE TABLE schema_version("
				     "version INTEGER NOT NULL);"
				     "INSERT INTO schema_version VALUES(0)");
		if (rc != SQLITE_OK)
			goto out_rollback;
	}
	for (int v = have; v < SCHEMA_VERSION; v++) {
		rc = exec_sql(c->db, migrations[v]);
		if (rc != SQLITE_OK)
			goto out_rollback;
		log_info("store: applied schema migration %d", v + 1);
	}
	rc = sqlite3_prepare_v2(c->db, "UPDATE schema_version SET version = ?1",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		goto out_rollback;
	sqlite3_bind_int(st, 1, SCHEMA_VERSION);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		goto out_rollback;
	rc = exec_sql(c->db, "COMMIT");
	if (rc != SQLITE_OK)
		goto out_rollback;
	return CW_OK;

out_rollback:
	sq_err(c, rc, "migrate");
	exec_sql(c->db, "ROLLBACK");
	return diag_err(d, CW_EIO, "exception", NULL,
			"the database schema cannot be set up");
out_fail:
	sq_err(c, rc, "migrate");
	return diag_err(d, CW_EIO, "exception", NULL,
			"the database cannot be locked for setup");
}

/* ---- the writer and group commit ------------------------------------- */

struct sq_job {
	store_tx_fn fn;
	store_ready_fn ready;     /* or NULL */
	void *ctx;
	enum cw_err result;
	bool staged;              /* fn done and kept: ready may run */
	bool done;
	pthread_cond_t cv;
	struct sq_job *next;
};

/* Tells the callers whose jobs stand that the commit is starting, so
 * their ready() runs beside it. */
static void
stage_ready(struct store *s, struct sq_job **jobs, size_t n)
{
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < n; i++) {
		if (jobs[i]->ready && jobs[i]->result == CW_OK) {
			jobs[i]->staged = true;
			pthread_cond_signal(&jobs[i]->cv);
		}
	}
	pthread_mutex_unlock(&s->mu);
}

/* Runs one group in one transaction. Each job gets its own savepoint so a
 * failing job rolls back alone; the COMMIT is shared. A group of one needs
 * no savepoint: the transaction is its savepoint. */
static void
run_group(struct store *s, struct sq_job **jobs, size_t n)
{
	struct sq_conn *c = s->wconn;
	struct store_tx tx = {.s = s, .c = c};
	bool alone = n == 1;
	enum cw_err err;
	size_t i;
	int rc;

	rc = sq_exec_fixed(c, SQ_BEGIN_IMM);
	if (rc != SQLITE_OK) {
		err = sq_err(c, rc, "begin");
		for (i = 0; i < n; i++)
			jobs[i]->result = err;
		return;
	}
	for (i = 0; i < n; i++) {
		if (!alone && (rc = sq_exec_fixed(c, SQ_SP_JOB)) != SQLITE_OK) {
			jobs[i]->result = sq_err(c, rc, "savepoint");
			continue;
		}
		tx.poisoned = CW_OK;
		tx.stamp = 0;
		sq_facts_forget(s, false);
		err = jobs[i]->fn(&tx, jobs[i]->ctx);
		if (!err)
			err = tx.poisoned;
		if (sqlite3_get_autocommit(c->db)) {
			/* SQLite rolled the whole transaction back (I/O
			 * error, full disk): nothing of this group stands. */
			log_error("store: write transaction lost, failing %zu writes", n);
			for (size_t k = 0; k < n; k++)
				if (k > i || jobs[k]->result == CW_OK)
					jobs[k]->result = CW_EIO;
			if (err)
				jobs[i]->result = err;
			goto out_reset;
		}
		jobs[i]->result = err;
		if (alone) {
			if (err) {
				sq_exec_fixed(c, SQ_ROLLBACK);
				goto out_reset;
			}
			break;
		}
		if (err && (rc = sq_exec_fixed(c, SQ_SP_JOB_ROLLBACK)) != SQLITE_OK)
			sq_err(c, rc, "rollback to savepoint");
		rc = sq_exec_fixed(c, SQ_SP_JOB_RELEASE);
		if (rc != SQLITE_OK && !err)
			jobs[i]->result = sq_err(c, rc, "release savepoint");
	}
	stage_ready(s, jobs, n);
	rc = sq_exec_fixed(c, SQ_COMMIT);
	if (rc != SQLITE_OK) {
		err = sq_err(c, rc, "commit");
		if (err == CW_OK || err == CW_EINTERNAL)
			err = CW_EIO;
		if (!sqlite3_get_autocommit(c->db))
			sq_exec_fixed(c, SQ_ROLLBACK);
		for (i = 0; i < n; i++)
			if (jobs[i]->result == CW_OK)
				jobs[i]->result = err;
	}
out_reset:
	arena_reset(s->tx_arena);
}

void
store_set_group_hook(struct store *s, void (*fn)(void *ctx), void *ctx)
{
	/* under the lock the writer reads them with, between groups */
	pthread_mutex_lock(&s->mu);
	s->group_hook = fn;
	s->group_hook_ctx = ctx;
	pthread_mutex_unlock(&s->mu);
}

/* ---- the writer's idle work ------------------------------------------ */

/* Two costs of a big write that a store pays once and can pay ahead, while
 * the writer has nothing to do (measured with ten 1,000-entry Bundles into
 * a freshly started server, bench/README "A writer that is ready"):
 *
 * - A WAL grown past its old end writes into new page-cache pages, and on
 *   a VM whose host takes back free memory each costs several us to touch:
 *   the commits took 60 ms a Bundle against 15 in a WAL the file already
 *   had. So the WAL file is grown to the size it is kept at
 *   (WAL_KEEP_BYTES) with zeros, PREFILL_STEP_BYTES a turn. SQLite reads
 *   a WAL only up to its last valid frame (a frame carries the header's
 *   salt and a running checksum), so what lies past it is never read as a
 *   frame, as with the old frames past a restarted WAL's end. Only a store
 *   whose database is at least that big gets it, so a new or small one
 *   (every test's) writes no 128 MiB. Safe beside SQLite because only the
 *   writer thread ever writes the WAL, and it does this between jobs.
 * - The writer's page cache starts empty, and a Bundle's index rows land
 *   all over the value indexes: its job took 85-100 ms cold against 55-62
 *   with those indexes read once into the cache, one index a turn
 *   (warm_sql), until the cache is three quarters full.
 *
 * A job that comes interrupts a warming turn (sqlite3_interrupt: that
 * index stays partly read) and waits for a prefill turn (1 MiB of writes)
 * at most. */
#define PREFILL_STEP_BYTES (1u << 20)
#define PREFILL_CHUNK (256u << 10)
static const char *const warm_sql[] = {
	"SELECT count(*) FROM ix_token INDEXED BY ix_token_v",
	"SELECT count(*) FROM ix_ref INDEXED BY ix_ref_v",
	"SELECT count(*) FROM ix_date INDEXED BY ix_date_v",
	"SELECT count(*) FROM ix_uri INDEXED BY ix_uri_v",
	"SELECT count(*) FROM ix_quantity INDEXED BY ix_quantity_v",
	"SELECT count(*) FROM ix_string INDEXED BY ix_string_v",
};
/* writer_idle's steps: the prefill, then one per warm_sql entry */
enum {
	IDLE_PREFILL,
	IDLE_WARM,
	IDLE_DONE = IDLE_WARM + (int)(sizeof(warm_sql) / sizeof(warm_sql[0])),
};

/* The database size from which the WAL is grown ahead: WAL_KEEP_BYTES.
 * Test builds take $CAREWEAVE_TEST_PREFILL_MIN instead, so a small test
 * database gets it too; a release build has no such code. */
static int64_t
prefill_min(void)
{
#ifdef CW_TEST_HOOKS
	const char *v = getenv("CAREWEAVE_TEST_PREFILL_MIN");

	if (v && *v)
		return atoll(v);
#endif
	return atoll(WAL_KEEP_BYTES);
}

/* One turn of growing the WAL file; false when it is grown (or cannot
 * be: then it simply grows as SQLite writes it). */
static bool
prefill_turn(struct store *s)
{
	static const char zeros[PREFILL_CHUNK];
	int64_t keep = atoll(WAL_KEEP_BYTES);
	struct statvfs fs;
	struct stat st;
	char path[PATH_MAX];

	if (s->prefill_fd < 0) {
		/* and not where it would take the last of the disk */
		if (stat(s->path, &st) != 0 || st.st_size < prefill_min() ||
		    statvfs(s->path, &fs) != 0 ||
		    (int64_t)fs.f_bavail * (int64_t)fs.f_frsize < 4 * keep ||
		    snprintf(path, sizeof(path), "%s-wal", s->path) >= (int)sizeof(path) ||
		    (s->prefill_fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
			return false;
	}
	if (fstat(s->prefill_fd, &st) == 0 && st.st_size < keep) {
		int64_t off = st.st_size, end = off + PREFILL_STEP_BYTES;

		if (end > keep)
			end = keep;
		for (; off < end; off += (int64_t)sizeof(zeros))
			if (pwrite(s->prefill_fd, zeros, sizeof(zeros), off) !=
			    (ssize_t)sizeof(zeros))
				break;
		if (off >= end && end < keep)
			return true;
	}
	close(s->prefill_fd);
	s->prefill_fd = -1;
	return false;
}

/* One turn of warming the writer's cache: the next step, IDLE_DONE when
 * the cache is warm. An index a job interrupted is left partly read: a
 * store that writes steadily would otherwise start it over between every
 * two jobs, for ever. */
static int
warm_turn(struct store *s, int step)
{
	int cur = 0, hi = 0, rc;
	int64_t cache = -atoll(WRITER_CACHE) * 1024;

	sqlite3_db_status(s->wconn->db, SQLITE_DBSTATUS_CACHE_USED, &cur, &hi, 0);
	if ((int64_t)cur >= cache / 4 * 3)
		return IDLE_DONE;
	rc = sqlite3_exec(s->wconn->db, warm_sql[step - IDLE_WARM], NULL, NULL, NULL);
	/* any other error (an index an old schema lacks) ends the warming */
	return rc == SQLITE_OK || rc == SQLITE_INTERRUPT ? step + 1 : IDLE_DONE;
}

/* Does one turn of the idle work; false when there is none left. On the
 * writer thread, between jobs. */
static bool
writer_idle(struct store *s)
{
	if (s->idle_step == IDLE_PREFILL && !prefill_turn(s))
		s->idle_step = IDLE_WARM;
	else if (s->idle_step >= IDLE_WARM && s->idle_step < IDLE_DONE)
		s->idle_step = warm_turn(s, s->idle_step);
	return s->idle_step < IDLE_DONE;
}

/* Under s->mu: the writer has a job or is to stop. A warming turn in
 * progress is interrupted; a stale interrupt is harmless, since SQLite
 * clears it when the writer's next statement starts with none running. */
static void
wake_writer(struct store *s)
{
	pthread_cond_signal(&s->cv);
	if (s->idle_turn)
		sqlite3_interrupt(s->wconn->db);
}

static void *
writer_main(void *arg)
{
	struct store *s = arg;
	struct sq_job **jobs = s->batch;
	void (*hook)(void *ctx);
	void *hook_ctx;
	size_t n;
	bool idle_work = true;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->head && !s->stopping) {
			if (idle_work) {
				s->idle_turn = true;
				pthread_mutex_unlock(&s->mu);
				idle_work = writer_idle(s);
				pthread_mutex_lock(&s->mu);
				s->idle_turn = false;
				continue;
			}
			pthread_cond_wait(&s->cv, &s->mu);
		}
		if (!s->head)
			break; /* stopping and drained */
		for (n = 0; s->head && n < s->opt.max_group; n++) {
			jobs[n] = s->head;
			s->head = s->head->next;
		}
		if (!s->head)
			s->tail = NULL;
		hook = s->group_hook;
		hook_ctx = s->group_hook_ctx;
		pthread_mutex_unlock(&s->mu);
		run_group(s, jobs, n);
		/* before the callers return: they may count on what it did */
		if (hook)
			hook(hook_ctx);
		pthread_mutex_lock(&s->mu);
		/* Once done is set and mu released, the caller may return and
		 * its job (on its stack) is gone: touch nothing after. */
		for (size_t i = 0; i < n; i++) {
			jobs[i]->done = true;
			pthread_cond_signal(&jobs[i]->cv);
		}
	}
	pthread_mutex_unlock(&s->mu);
	if (s->prefill_fd >= 0)
		close(s->prefill_fd);
	return NULL;
}

enum cw_err
store_write(struct store *s, store_tx_fn fn, void *ctx)
{
	return store_write_ready(s, fn, NULL, ctx);
}

enum cw_err
store_write_ready(struct store *s, store_tx_fn fn, store_ready_fn ready,
		  void *ctx)
{
	struct sq_job job = {.fn = fn, .ready = ready, .ctx = ctx};
	bool readied = false;
	enum cw_err err;

	if (!s->has_writer)
		return CW_ENOTALLOWED;
	if (pthread_cond_init(&job.cv, NULL) != 0)
		return CW_ENOMEM;
	pthread_mutex_lock(&s->mu);
	if (s->stopping) {
		pthread_mutex_unlock(&s->mu);
		pthread_cond_destroy(&job.cv);
		return CW_EBUSY;
	}
	if (s->tail)
		s->tail->next = &job;
	else
		s->head = &job;
	s->tail = &job;
	wake_writer(s);
	while (!job.done) {
		if (job.staged && !readied) {
			readied = true;
			pthread_mutex_unlock(&s->mu);
			ready(ctx);
			pthread_mutex_lock(&s->mu);
			continue;
		}
		pthread_cond_wait(&job.cv, &s->mu);
	}
	err = job.result;
	pthread_mutex_unlock(&s->mu);
	pthread_cond_destroy(&job.cv);
	return err;
}

struct arena *
store_tx_arena(struct store_tx *tx)
{
	return tx->s->tx_arena;
}

/* ---- the checkpointer ------------------------------------------------- */

/* Called by SQLite on the writer thread after each commit, with the WAL's
 * frame count. It replaces SQLite's autocheckpoint, which copied the WAL
 * into the database inside the commit (9% of a bundle's time): wake the
 * checkpointer instead, and checkpoint here only when it falls far behind,
 * so the WAL stays bounded. */
static int
wal_hook(void *arg, sqlite3 *db, const char *name, int nframes)
{
	struct store *s = arg;
	bool big;

	pthread_mutex_lock(&s->ck_mu);
	/* nframes counts from the start of the WAL, which may have restarted */
	s->last_commit_frames = nframes > s->wal_frames ? nframes - s->wal_frames
						    : nframes;
	big = s->last_commit_frames >= CKPT_BIG_COMMIT;
	s->wal_frames = nframes;
	s->commits++;
	if (nframes >= CKPT_FRAMES && !s->ck_wanted) {
		s->ck_wanted = true;
		pthread_cond_signal(&s->ck_cv);
	}
	pthread_mutex_unlock(&s->ck_mu);
	if (nframes >= (big ? CKPT_HARD_FRAMES_BIG : CKPT_HARD_FRAMES))
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE,
					  NULL, NULL);
	return SQLITE_OK;
}

/* Runs one checkpoint on the checkpointer's connection. Busy is normal (a
 * reader or the writer holds what it needs): the next round retries. */
static int
checkpoint(struct store *s, int mode)
{
	int rc = sqlite3_wal_checkpoint_v2(s->cconn->db, NULL, mode, NULL, NULL);

	if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY &&
	    (rc & 0xff) != SQLITE_LOCKED)
		sq_err(s->cconn, rc, "checkpoint");
	return rc;
}

static void
deadline(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* The checkpointer thread: a PASSIVE checkpoint (never blocks the writer
 * or readers) when the WAL has passed CKPT_FRAMES, at most one per
 * CKPT_GAP_MS (after big commits: when they pause, or the WAL has
 * reached CKPT_DEFER_FRAMES, and then without a rest), and a RESTART
 * once the store has been idle for CKPT_IDLE_MS, so an idle store has
 * everything in the database file and the next write starts the WAL over.
 * Not TRUNCATE: the file's pages stay in the page cache for the next
 * writes, where a file grown again from nothing takes new pages, which on
 * this VM cost several microseconds each to touch (bench/README).
 * Checkpoints never weaken durability: a commit is durable in the WAL
 * (synchronous=FULL) before it is acknowledged, and a checkpoint syncs the
 * database before the WAL is reused. */
static void *
ckpt_main(void *arg)
{
	struct store *s = arg;
	uint64_t restarted_at = 0, before;
	struct timespec ts;
	int rc;

	pthread_mutex_lock(&s->ck_mu);
	while (!s->ck_stopping) {
		if (!s->ck_wanted) {
			before = s->commits;
			deadline(&ts, CKPT_IDLE_MS);
			pthread_cond_timedwait(&s->ck_cv, &s->ck_mu, &ts);
			if (s->ck_stopping)
				break;
			if (!s->ck_wanted) {
				if (s->commits != before || s->commits == restarted_at ||
				    s->wal_frames == 0)
					continue;
				pthread_mutex_unlock(&s->ck_mu);
				rc = checkpoint(s, SQLITE_CHECKPOINT_RESTART);
				pthread_mutex_lock(&s->ck_mu);
				if (rc == SQLITE_OK)
					restarted_at = before;
				continue;
			}
		}
		s->ck_wanted = false;
		if (s->last_commit_frames >= CKPT_BIG_COMMIT &&
		    s->wal_frames < CKPT_DEFER_FRAMES) {
			before = s->commits;
			deadline(&ts, CKPT_QUIET_MS);
			while (!s->ck_stopping && s->commits == before &&
			       pthread_cond_timedwait(&s->ck_cv, &s->ck_mu, &ts) == 0)
				;
			if (s->ck_stopping)
				break;
			if (s->commits != before)
				continue; /* the flow goes on: decide again */
		}
		pthread_mutex_unlock(&s->ck_mu);
		checkpoint(s, SQLITE_CHECKPOINT_PASSIVE);
		pthread_mutex_lock(&s->ck_mu);
		if (s->last_commit_frames >= CKPT_BIG_COMMIT)
			continue; /* big transactions flow: no rest */
		deadline(&ts, CKPT_GAP_MS);
		while (!s->ck_stopping &&
		       pthread_cond_timedwait(&s->ck_cv, &s->ck_mu, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&s->ck_mu);
	return NULL;
}

/* Opens the checkpointer's connection, starts it and hands the WAL to it.
 * Before the writer thread starts: the hook runs on the writer. */
static enum cw_err
ckpt_start(struct store *s, struct diag *d)
{
	s->cconn = conn_open(s, CONN_CKPT, d);
	if (!s->cconn)
		return CW_EIO;
	if (thread_start(&s->ckpt, ckpt_main, s, "cw-checkpoint") != 0)
		return diag_err(d, CW_EINTERNAL, "exception", NULL,
				"the checkpointer thread cannot start");
	s->has_ckpt = true;
	sqlite3_wal_hook(s->wconn->db, wal_hook, s);
	return CW_OK;
}

static void
ckpt_stop(struct store *s)
{
	if (!s->has_ckpt)
		return;
	pthread_mutex_lock(&s->ck_mu);
	s->ck_stopping = true;
	pthread_cond_signal(&s->ck_cv);
	pthread_mutex_unlock(&s->ck_mu);
	pthread_join(s->ckpt, NULL);
	s->has_ckpt = false;
}

/* ---- open and close --------------------------------------------------- */

static void
store_free(struct store *s)
{
	struct sq_conn *c, *next;

	for (c = s->conns; c; c = next) {
		next = c->next;
		conn_close(c);
	}
	ckpt_stop(s);
	conn_close(s->cconn);
	conn_close(s->wconn);
	pthread_key_delete(s->key);
	pthread_mutex_destroy(&s->conns_mu);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->ck_mu);
	pthread_cond_destroy(&s->ck_cv);
	if (s->tx_arena)
		arena_free(s->tx_arena);
	sq_facts_forget(s, true);
	if (s->scratch)
		arena_free(s->scratch);
	sbuf_release(&s->jbuf);
	sq_crypt_free(s->crypt); /* after every connection closed */
	free(s->batch);
	free(s->path);
	free(s);
}

/* SQLite's allocation statistics take a global mutex on every malloc; we
 * never read them. Must run before SQLite initializes; if someone else
 * initialized it first the call fails harmlessly. */
static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

static void
sqlite_global_init(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

struct store *
store_open(const char *path, const struct store_options *opt,
	   struct diag *d)
{
	struct store *s;
	struct sq_conn *c;
	pthread_condattr_t ca;
	int have = 0;

	pthread_once(&sqlite_once, sqlite_global_init);

	s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(path))) {
		free(s);
		diag_err(d, CW_ENOMEM, "exception", NULL, "out of memory");
		return NULL;
	}
	if (opt)
		s->opt = *opt;
	if (!s->opt.busy_timeout_ms)
		s->opt.busy_timeout_ms = 5000;
	if (!s->opt.max_group)
		s->opt.max_group = 64;
	sbuf_init(&s->jbuf, STORE_TEXT_MAX);
	pthread_mutex_init(&s->conns_mu, NULL);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	pthread_mutex_init(&s->ck_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->ck_cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_key_create(&s->key, NULL) != 0) {
		diag_err(d, CW_ENOMEM, "exception", NULL, "out of thread keys");
		pthread_mutex_destroy(&s->conns_mu);
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->ck_mu);
		pthread_cond_destroy(&s->ck_cv);
		free(s->path);
		free(s);
		return NULL;
	}
	/* Before SQLite touches the file: a wrong key, a key for a plain
	 * file or no key for an encrypted one is refused here, having
	 * written nothing. */
	if (sq_crypt_probe(path, s->opt.key, d) != CW_OK)
		goto out_free;
	if (s->opt.key) {
		s->crypt = sq_crypt_new(s->opt.key);
		s->opt.key = NULL; /* the caller's copy; ours is in s->crypt */
		if (!s->crypt) {
			diag_err(d, CW_EINTERNAL, "exception", NULL,
				 "the encryption layer cannot start");
			goto out_free;
		}
	}
	if (s->opt.readonly) {
		c = sq_reader(s, d);
		if (!c)
			goto out_free;
		if (schema_version(c->db, &have) != SQLITE_OK ||
		    have != SCHEMA_VERSION) {
			diag_err(d, CW_EIO, "exception", NULL,
				 "the database is missing or has another schema");
			goto out_free;
		}
		if (s->crypt && check_layout(c, d) != CW_OK)
			goto out_free;
		return s;
	}
	s->tx_arena = arena_new(0);
	s->scratch = arena_new(0);
	s->batch = calloc(s->opt.max_group, sizeof(*s->batch));
	if (!s->tx_arena || !s->scratch || !s->batch) {
		diag_err(d, CW_ENOMEM, "exception", NULL, "out of memory");
		goto out_free;
	}
	s->wconn = conn_open(s, CONN_WRITER, d);
	if (!s->wconn)
		goto out_free;
	if (migrate(s->wconn, d) != CW_OK)
		goto out_free;
	if (s->crypt) {
		/* a reader, which asked for no reserve of its own */
		c = sq_reader(s, d);
		if (!c || schema_version(c->db, &have) != SQLITE_OK ||
		    check_layout(c, d) != CW_OK)
			goto out_free;
	}
	if (ckpt_start(s, d) != CW_OK)
		goto out_free;
	s->prefill_fd = -1;
	if (thread_start(&s->writer, writer_main, s, "cw-writer") != 0) {
		diag_err(d, CW_EINTERNAL, "exception", NULL,
			 "the writer thread cannot start");
		goto out_free;
	}
	s->has_writer = true;
	return s;

out_free:
	store_free(s);
	return NULL;
}

void
store_close(struct store *s)
{
	if (!s)
		return;
	if (s->has_writer) {
		pthread_mutex_lock(&s->mu);
		s->stopping = true;
		wake_writer(s);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->writer, NULL);
		ckpt_stop(s);
		/* A passive checkpoint keeps the WAL short for the next open. */
		sqlite3_wal_checkpoint_v2(s->wconn->db, NULL,
					  SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	}
	store_free(s);
}

/* ---- reading one resource --------------------------------------------- */

enum cw_err
sq_row_res(struct arena *a, sqlite3_stmt *st, int col, struct store_res *out)
{
	const char *type = (const char *)sqlite3_column_text(st, col);
	const char *id = (const char *)sqlite3_column_text(st, col + 1);
	const char *json = (const char *)sqlite3_column_text(st, col + 5);
	int jn = sqlite3_column_bytes(st, col + 5);
	const struct fhir_restype *rt;
	char *j;

	memset(out, 0, sizeof(*out));
	if (!type || !id)
		return CW_EINTERNAL;
	rt = fhir_restype_find(type);
	out->type = rt ? rt->name : arena_strdup(a, type);
	out->id = arena_strdup(a, id);
	out->version = (long)sqlite3_column_int64(st, col + 2);
	out->last_updated = sqlite3_column_int64(st, col + 3);
	out->deleted = sqlite3_column_int(st, col + 4) != 0;
	j = arena_strndup(a, json ? json : "", json ? (size_t)jn : 0);
	if (!out->type || !out->id || !j)
		return CW_ENOMEM;
	out->json.p = j;
	out->json.n = json ? (size_t)jn : 0;
	return CW_OK;
}

/* Column col of st: patient ids, one space between, into out->patients
 * (a Patient is in its own compartment). */
static enum cw_err
row_patients(struct arena *a, sqlite3_stmt *st, int col, struct store_res *out)
{
	const char *p = (const char *)sqlite3_column_text(st, col);

	out->patients_known = true;
	if (!strcmp(out->type, "Patient") &&
	    !sq_add_patient(a, &out->patients, &out->npatients,
			    TX_PATIENTS_MAX, out->id, strlen(out->id)))
		return CW_ENOMEM;
	while (p && *p) {
		size_t n = strcspn(p, " ");

		if (n && !sq_add_patient(a, &out->patients, &out->npatients,
					 TX_PATIENTS_MAX, p, n))
			return CW_ENOMEM;
		p += n;
		p += strspn(p, " ");
	}
	return CW_OK;
}

/* Runs a lookup statement already bound: one row into out; with a 7th
 * column, its patients (row_patients). */
static enum cw_err
read_one(struct sq_conn *c, struct arena *a, sqlite3_stmt *st,
	 struct store_res *out)
{
	enum cw_err err;
	int rc;

	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		err = CW_ENOTFOUND;
	else if (rc != SQLITE_ROW)
		err = sq_err(c, rc, "read");
	else {
		err = sq_row_res(a, st, 0, out);
		if (!err && sqlite3_column_count(st) > 6)
			err = row_patients(a, st, 6, out);
		if (!err && out->deleted)
			err = CW_EGONE;
	}
	sq_done(st);
	return err;
}

enum cw_err
sq_read_rid(struct sq_conn *c, struct arena *a, int64_t rid,
	    struct store_res *out)
{
	sqlite3_stmt *st = sq_fixed(c, SQ_READ_RID);

	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_int64(st, 1, rid);
	return read_one(c, a, st, out);
}

static enum cw_err
read_in(struct sq_conn *c, struct arena *a, const char *type, const char *id,
	struct store_res *out)
{
	sqlite3_stmt *st = sq_fixed(c, SQ_READ);

	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	return read_one(c, a, st, out);
}

enum cw_err
store_read(struct store *s, struct arena *a, const char *type,
	   const char *id, struct store_res *out)
{
	struct sq_conn *c = sq_reader(s, NULL);

	memset(out, 0, sizeof(*out));
	if (!c)
		return CW_EIO;
	return read_in(c, a, type, id, out);
}

enum cw_err
store_vread(struct store *s, struct arena *a, const char *type,
	    const char *id, long version, struct store_res *out)
{
	struct sq_conn *c = sq_reader(s, NULL);
	sqlite3_stmt *st;

	memset(out, 0, sizeof(*out));
	if (!c)
		return CW_EIO;
	if (!(st = sq_fixed(c, SQ_VREAD)))
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, version);
	return read_one(c, a, st, out);
}

enum cw_err
store_tx_read(struct store_tx *tx, struct arena *a, const char *type,
	      const char *id, struct store_res *out)
{
	memset(out, 0, sizeof(*out));
	return read_in(tx->c, a, type, id, out);
}

enum cw_err
store_count(struct store *s, const char *type, long *out)
{
	struct sq_conn *c = sq_reader(s, NULL);
	sqlite3_stmt *st;
	enum cw_err err = CW_OK;
	int rc;

	*out = 0;
	if (!c)
		return CW_EIO;
	st = sq_fixed(c, type ? SQ_COUNT_TYPE : SQ_COUNT_ALL);
	if (!st)
		return CW_EINTERNAL;
	if (type)
		sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = (long)sqlite3_column_int64(st, 0);
	else
		err = sq_err(c, rc, "count");
	sq_done(st);
	return err;
}

const char *
sq_col_str(struct arena *a, sqlite3_stmt *st, int i, bool *ok)
{
	const char *s;

	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return NULL;
	s = arena_strndup(a, (const char *)sqlite3_column_text(st, i),
			  (size_t)sqlite3_column_bytes(st, i));
	if (!s)
		*ok = false;
	return s;
}

enum cw_err
store_check(struct store *s, struct diag *d)
{
	struct sq_conn *c = sq_reader(s, d);
	sqlite3_stmt *st;
	enum cw_err err = CW_OK;
	int rc;

	if (!c)
		return CW_EIO;
	rc = sqlite3_prepare_v2(c->db, "PRAGMA integrity_check", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_err(c, rc, "integrity_check");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *msg = (const char *)sqlite3_column_text(st, 0);

		if (msg && strcmp(msg, "ok") == 0)
			continue;
		/* The messages name pages and indexes, not values. */
		log_error("store: integrity_check: %s", msg ? msg : "?");
		err = CW_EIO;
	}
	if (rc != SQLITE_DONE && !err)
		err = sq_err(c, rc, "integrity_check");
	sqlite3_finalize(st);
	if (err)
		diag_err(d, err, "exception", NULL,
			 "the database failed its integrity check");
	return err;
}

bool
store_is_encrypted(const struct store *s)
{
	return s->crypt != NULL;
}

/* Syncs the file or folder at path. */
static int
sync_path(const char *path, bool dir)
{
	int fd = open(path, (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* The destination runs with journal_mode=OFF: nobody else sees out.tmp,
 * and the rename is what makes the copy appear whole, so a journal would
 * only be one more file (and, encrypted, one with page images). */
enum cw_err
store_backup(struct store *s, const char *out, struct diag *d)
{
	struct sq_conn *src = sq_reader(s, d);
	char *tmp = NULL, *dir = NULL, *slash;
	sqlite3 *dst = NULL;
	sqlite3_backup *b;
	enum cw_err err = CW_EIO;
	int rc;

	if (!src)
		return CW_EIO;
	if (!(tmp = sqlite3_mprintf("%s.tmp", out)) ||
	    !(dir = sqlite3_mprintf("%s", out))) {
		err = diag_err(d, CW_ENOMEM, "exception", NULL, "out of memory");
		goto out_free;
	}
	if (unlink(tmp) != 0 && errno != ENOENT) {
		diag_err(d, CW_EIO, "exception", NULL,
			 "the backup's temporary file cannot be replaced");
		goto out_free;
	}
	rc = sqlite3_open_v2(tmp, &dst,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX,
			     s->crypt ? sq_crypt_vfs(s->crypt, false) : NULL);
	if (rc == SQLITE_OK)
		rc = exec_sql(dst, "PRAGMA journal_mode=OFF;"
				   "PRAGMA synchronous=FULL;"
				   "PRAGMA temp_store=MEMORY");
	if (rc == SQLITE_OK && s->crypt &&
	    (rc = exec_sql(dst, "PRAGMA page_size=4096")) == SQLITE_OK)
		rc = set_reserve(dst, SQ_CRYPT_RESERVE);
	if (rc != SQLITE_OK) {
		log_error("store: backup: %s", sqlite3_errmsg(dst));
		diag_err(d, CW_EIO, "exception", NULL,
			 "the backup file cannot be created");
		goto out_close;
	}
	b = sqlite3_backup_init(dst, "main", src->db, "main");
	if (!b) {
		log_error("store: backup: %s", sqlite3_errmsg(dst));
		diag_err(d, CW_EIO, "exception", NULL, "the backup cannot start");
		goto out_close;
	}
	/* All of it in one step: one read transaction, one snapshot. */
	rc = sqlite3_backup_step(b, -1);
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	if (sqlite3_backup_finish(b) != SQLITE_OK && rc == SQLITE_OK)
		rc = sqlite3_errcode(dst);
	if (rc != SQLITE_OK) {
		err = sq_err(src, rc, "backup");
		diag_err(d, err, "exception", NULL, "the backup failed");
		goto out_close;
	}
	rc = sqlite3_close(dst);
	dst = NULL;
	if (rc != SQLITE_OK || sync_path(tmp, false) != 0 ||
	    rename(tmp, out) != 0) {
		diag_err(d, CW_EIO, "exception", NULL,
			 "the backup cannot be written out");
		goto out_close;
	}
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	if (sync_path(slash ? dir : ".", true) != 0)
		log_warn("store: backup: the folder of the copy cannot be synced");
	err = CW_OK;
out_close:
	if (dst)
		sqlite3_close(dst);
	if (err)
		unlink(tmp);
out_free:
	sqlite3_free(tmp);
	sqlite3_free(dir);
	return err;
}

/* ---- writing ---------------------------------------------------------- */

/* The current row of type/id, if any. */
struct cur {
	bool exists;
	bool deleted;
	int64_t rid;
	long version;
	int64_t updated;
};

static enum cw_err
get_cur(struct sq_conn *c, const char *type, const char *id, struct cur *cur)
{
	sqlite3_stmt *st = sq_fixed(c, SQ_CUR);
	enum cw_err err = CW_OK;
	int rc;

	memset(cur, 0, sizeof(*cur));
	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		cur->exists = true;
		cur->rid = sqlite3_column_int64(st, 0);
		cur->version = (long)sqlite3_column_int64(st, 1);
		cur->deleted = sqlite3_column_int(st, 2) != 0;
		cur->updated = sqlite3_column_int64(st, 3);
	} else if (rc != SQLITE_DONE) {
		err = sq_err(c, rc, "lookup");
	}
	sq_done(st);
	return err;
}

enum cw_err
sq_step_write(struct sq_conn *c, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	enum cw_err err = rc == SQLITE_DONE ? CW_OK : sq_err(c, rc, what);

	sq_done(st);
	return err;
}

static void
bind_opt_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s && *s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static enum cw_err
drop_index_rows(struct sq_conn *c, int64_t rid)
{
	for (size_t i = 0; i < sizeof(index_deletes) / sizeof(index_deletes[0]); i++) {
		sqlite3_stmt *st = sq_fixed(c, index_deletes[i]);
		enum cw_err err;

		if (!st)
			return CW_EINTERNAL;
		sqlite3_bind_int64(st, 1, rid);
		err = sq_step_write(c, st, "drop index rows");
		if (err)
			return err;
	}
	return CW_OK;
}

/* _id and _lastUpdated are answered from res itself, and a parameter with
 * rows_of from that one's rows (patient from subject's to a Patient, see
 * qrows in sqlite_search.c): no rows of their own. */
static bool
indexed_elsewhere(const struct fhir_searchparam *sp)
{
	return sp->rows_of || (sp->code[0] == '_' &&
			       (strcmp(sp->code, "_id") == 0 ||
				strcmp(sp->code, "_lastUpdated") == 0));
}

/* Index rows are keyed by the type-qualified parameter ("Condition.patient",
 * as its number sq_param_id): a code like "patient" is shared by every
 * type, and one value index over all of them made a patient's rows of
 * every type the driver's rows of a Condition search. */
static enum cw_err
write_index_row(struct sq_conn *c, int64_t rid, int seq, int64_t param,
		const struct fhir_idx *r)
{
	const struct fhir_searchparam *sp = r->sp;
	sqlite3_stmt *st;
	enum sq_fixed which;

	switch (sp->type) {
	case SP_TOKEN:
		which = SQ_INS_TOKEN;
		break;
	case SP_STRING:
		which = SQ_INS_STRING;
		break;
	case SP_REFERENCE:
		/* A Reference.identifier row (no reference text) is a token
		 * row under the same param: that is :identifier search. */
		which = r->raw || r->ref_id ? SQ_INS_REF : SQ_INS_TOKEN;
		break;
	case SP_DATE:
		which = SQ_INS_DATE;
		break;
	case SP_NUMBER:
		which = SQ_INS_NUMBER;
		break;
	case SP_QUANTITY:
		which = SQ_INS_QTY;
		break;
	case SP_URI:
		which = SQ_INS_URI;
		break;
	default:
		return CW_OK;
	}
	if (!(st = sq_fixed(c, which)))
		return CW_EINTERNAL;
	sqlite3_bind_int64(st, 1, rid);
	sqlite3_bind_int64(st, 2, param);
	sqlite3_bind_int(st, 3, seq);
	switch (which) {
	case SQ_INS_TOKEN:
		bind_opt_text(st, 4, r->system);
		bind_opt_text(st, 5, r->code);
		bind_opt_text(st, 6, r->text);
		break;
	case SQ_INS_STRING:
		bind_opt_text(st, 4, r->text);
		bind_opt_text(st, 5, r->raw);
		break;
	case SQ_INS_REF:
		bind_opt_text(st, 4, r->ref_type);
		bind_opt_text(st, 5, r->ref_id);
		bind_opt_text(st, 6, r->raw);
		break;
	case SQ_INS_DATE:
		sqlite3_bind_int64(st, 4, r->lo);
		sqlite3_bind_int64(st, 5, r->hi);
		break;
	case SQ_INS_NUMBER:
	case SQ_INS_QTY:
		sqlite3_bind_double(st, 4, r->num);
		sqlite3_bind_double(st, 5, r->num_lo);
		sqlite3_bind_double(st, 6, r->num_hi);
		if (which == SQ_INS_QTY) {
			bind_opt_text(st, 7, r->system);
			bind_opt_text(st, 8, r->code);
		}
		break;
	case SQ_INS_URI:
		bind_opt_text(st, 4, r->raw);
		break;
	default:
		break;
	}
	return sq_step_write(c, st, "index row");
}

/* A resource's index rows and the patients of its compartment (in a). */
static enum cw_err
index_rows(struct arena *a, const json_t *res, const struct fhir_restype *rt,
	   struct store_prep *p)
{
	enum cw_err err = fhir_extract(a, res, rt, &p->rows, &p->nrows);

	if (err)
		return err;
	return fhir_compartment(a, res, rt, p->rows, p->nrows, &p->pids, &p->npids);
}

/* Writes rid's index and compartment rows, as index_rows made them. */
static enum cw_err
write_index(struct sq_conn *c, int64_t rid, const struct fhir_restype *rt,
	    const struct store_prep *p)
{
	enum cw_err err;

	for (size_t i = 0; i < p->nrows; i++) {
		if (!p->rows[i].sp || indexed_elsewhere(p->rows[i].sp))
			continue;
		err = write_index_row(c, rid, (int)i,
				      sq_param_id(rt->name, p->rows[i].sp->code),
				      &p->rows[i]);
		if (err)
			return err;
	}
	for (size_t i = 0; i < p->npids; i++) {
		sqlite3_stmt *st = sq_fixed(c, SQ_INS_COMP);

		if (!st)
			return CW_EINTERNAL;
		sqlite3_bind_text(st, 1, p->pids[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, rid);
		err = sq_step_write(c, st, "compartment row");
		if (err)
			return err;
	}
	return CW_OK;
}

/* The current version's text is stored once, in res; its versions row has
 * NULL json. Before res is overwritten, the text moves to that row. */
static enum cw_err
keep_version(struct sq_conn *c, int64_t rid, const char *type,
	     const char *id, long version)
{
	sqlite3_stmt *st = sq_fixed(c, SQ_KEEP_VER);

	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_int64(st, 1, rid);
	sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, version);
	return sq_step_write(c, st, "keep version");
}

/* Sets id and meta in res: the stored text carries them. */
static enum cw_err
set_meta(json_t *res, const char *id, long version, int64_t ms)
{
	char vbuf[24], tbuf[32];
	json_t *meta = json_object_get(res, "meta");

	snprintf(vbuf, sizeof(vbuf), "%ld", version);
	time_format_instant(ms, tbuf);
	if (json_object_set_new(res, "id", json_string(id)) != 0)
		return CW_ENOMEM;
	if (!json_is_object(meta)) {
		meta = json_object();
		if (!meta || json_object_set_new(res, "meta", meta) != 0)
			return CW_ENOMEM;
	}
	if (json_object_set_new(meta, "versionId", json_string(vbuf)) != 0 ||
	    json_object_set_new(meta, "lastUpdated", json_string(tbuf)) != 0)
		return CW_ENOMEM;
	return CW_OK;
}

/* The next lastUpdated: now, but never before the previous version nor the
 * store's last write, so history and _since see time move forward. */
static int64_t
clock_ms(struct store *s, int64_t prev)
{
	int64_t now = time_now_ms();

	if (now < prev)
		now = prev;
	if (now < s->last_ms)
		now = s->last_ms;
	s->last_ms = now;
	return now;
}

/* A write's lastUpdated: the job's stamp once store_tx_stamp has set one
 * (every version a transaction writes then has the same time), else the
 * clock. */
static int64_t
next_ms(struct store_tx *tx, int64_t prev)
{
	if (tx->stamp && tx->stamp >= prev)
		return tx->stamp;
	return clock_ms(tx->s, prev);
}

static enum cw_err
put_rows(struct store_tx *tx, struct arena *a, const struct store_put *put,
	 const struct fhir_restype *rt, const char *id, const struct cur *cur,
	 struct store_res *out)
{
	struct store *s = tx->s;
	struct sq_conn *c = tx->c;
	long version = cur->exists ? cur->version + 1 : 1;
	const struct store_prep *prep = put->prep;
	struct store_prep made;
	int64_t ms, rid = cur->rid;
	sqlite3_stmt *st;
	enum cw_err err;
	const char *text;
	size_t len;

	if (prep) {
		/* made ready off the writer (a fresh id: cur is empty) */
		ms = prep->ms;
		text = prep->text;
		len = prep->len;
	} else {
		ms = next_ms(tx, cur->exists ? cur->updated : 0);
		err = set_meta(put->res, id, version, ms);
		if (err)
			return err;
		sbuf_reset(&s->jbuf);
		if ((err = fhir_dump_to(put->res, &s->jbuf)))
			return err;
		len = s->jbuf.len;
		if (!(text = arena_strndup(a, s->jbuf.buf, len)))
			return CW_ENOMEM;
	}

	if (cur->exists) {
		if (!cur->deleted &&
		    (err = keep_version(c, rid, rt->name, id, cur->version)))
			return err;
		if (!(st = sq_fixed(c, SQ_UPD_RES)))
			return CW_EINTERNAL;
		sqlite3_bind_int64(st, 1, rid);
		sqlite3_bind_int64(st, 2, version);
		sqlite3_bind_int64(st, 3, ms);
		sqlite3_bind_int(st, 4, 0);
		sqlite3_bind_text(st, 5, text, (int)len, SQLITE_STATIC);
		if ((err = sq_step_write(c, st, "update")))
			return err;
		if (!cur->deleted && (err = drop_index_rows(c, rid)))
			return err;
	} else {
		if (!(st = sq_fixed(c, SQ_INS_RES)))
			return CW_EINTERNAL;
		sqlite3_bind_text(st, 1, rt->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, version);
		sqlite3_bind_int64(st, 4, ms);
		sqlite3_bind_int(st, 5, 0);
		sqlite3_bind_text(st, 6, text, (int)len, SQLITE_STATIC);
		if ((err = sq_step_write(c, st, "insert")))
			return err;
		rid = sqlite3_last_insert_rowid(c->db);
	}
	if (!(st = sq_fixed(c, SQ_INS_VER)))
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, rt->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, version);
	sqlite3_bind_int64(st, 4, ms);
	sqlite3_bind_int(st, 5, 0);
	sqlite3_bind_null(st, 6); /* the text is in res (keep_version) */
	if ((err = sq_step_write(c, st, "insert version")))
		return err;
	if (!prep) {
		if ((err = index_rows(s->scratch, put->res, rt, &made)))
			return err;
		prep = &made;
	}
	if ((err = write_index(c, rid, rt, prep)))
		return err;
	/* whose record changed, without reading back what was just written */
	out->patients_known = true;
	if (!strcmp(rt->name, "Patient") &&
	    !sq_add_patient(a, &out->patients, &out->npatients,
			    TX_PATIENTS_MAX, id, strlen(id)))
		return CW_ENOMEM;
	for (size_t i = 0; i < prep->npids; i++)
		if (!sq_add_patient(a, &out->patients, &out->npatients,
				    TX_PATIENTS_MAX, prep->pids[i], strlen(prep->pids[i])))
			return CW_ENOMEM;

	out->type = rt->name;
	out->id = arena_strdup(a, id);
	out->version = version;
	out->last_updated = ms;
	out->deleted = false;
	out->json.p = text;
	out->json.n = len;
	return out->id ? CW_OK : CW_ENOMEM;
}

enum cw_err
store_prep_create(struct arena *a, json_t *res, const struct fhir_restype *rt,
		  const char *id, int64_t ms, struct store_prep *out)
{
	struct sbuf sb = SBUF_INIT(STORE_TEXT_MAX);
	enum cw_err err;

	memset(out, 0, sizeof(*out));
	out->ms = ms;
	if ((err = set_meta(res, id, 1, ms)) || (err = fhir_dump_to(res, &sb)))
		goto out;
	out->len = sb.len;
	if (!(out->text = arena_strndup(a, sb.buf, sb.len))) {
		err = CW_ENOMEM;
		goto out;
	}
	err = index_rows(a, res, rt, out);
out:
	sbuf_release(&sb);
	return err;
}

int64_t
store_tx_stamp(struct store_tx *tx)
{
	if (!tx->stamp)
		tx->stamp = clock_ms(tx->s, 0);
	return tx->stamp;
}

/* A put or delete that failed after it started writing leaves the job
 * half done: poison the job so run_group rolls it back whatever fn
 * returns. (A savepoint per put would do the same, but SQLite journals
 * every page a savepoint touches: it cost 3x the whole put.) */
static enum cw_err
poison(struct store_tx *tx, enum cw_err err)
{
	if (err && !tx->poisoned)
		tx->poisoned = err;
	return err;
}

enum cw_err
store_tx_put(struct store_tx *tx, struct arena *a, const struct store_put *put,
	     struct store_res *out, bool *created)
{
	const struct fhir_restype *rt = put->rt;
	const char *id;
	char idbuf[ID_LEN + 1];
	struct cur cur;
	enum cw_err err;

	memset(out, 0, sizeof(*out));
	if (created)
		*created = false;
	if (!json_is_object(put->res))
		return CW_EINVAL;
	if (!rt)
		rt = fhir_restype_find(json_string_value(
			json_object_get(put->res, "resourceType")));
	if (!rt)
		return CW_EINVAL;
	id = json_string_value(json_object_get(put->res, "id"));
	if (!id) {
		if (!put->create)
			return CW_EINVAL;
		id_new(idbuf);
		id = idbuf;
	} else if (!id_is_valid(id, strlen(id))) {
		return CW_EINVAL;
	}
	/* id may point into put->res, which set_meta replaces: copy it. */
	id = arena_strdup(a, id);
	if (!id)
		return CW_ENOMEM;
	if (put->prep && !(put->create && put->fresh_id))
		return CW_EINVAL; /* a prepared put is a first version */
	if (put->create && put->fresh_id)
		memset(&cur, 0, sizeof(cur));
	else if ((err = get_cur(tx->c, rt->name, id, &cur)))
		return err;
	if (put->create && cur.exists && !cur.deleted)
		return CW_ECONFLICT;
	if (put->if_match > 0 && (!cur.exists || cur.version != put->if_match))
		return CW_EPRECOND;

	err = poison(tx, put_rows(tx, a, put, rt, id, &cur, out));
	arena_reset(tx->s->scratch);
	if (err) {
		memset(out, 0, sizeof(*out));
		return err;
	}
	if (created)
		*created = !cur.exists || cur.deleted;
	return CW_OK;
}

enum cw_err
store_tx_delete(struct store_tx *tx, struct arena *a, const char *type,
		const char *id, long if_match, struct store_res *out,
		bool *existed)
{
	struct sq_conn *c = tx->c;
	const struct fhir_restype *rt = fhir_restype_find(type);
	struct cur cur;
	sqlite3_stmt *st;
	enum cw_err err;
	int64_t ms;

	memset(out, 0, sizeof(*out));
	if (existed)
		*existed = false;
	if (!rt || !id)
		return CW_EINVAL;
	err = get_cur(c, rt->name, id, &cur);
	if (err)
		return err;
	if (if_match > 0 && (!cur.exists || cur.version != if_match))
		return CW_EPRECOND;
	if (!cur.exists || cur.deleted) {
		if (cur.exists) {
			out->type = rt->name;
			out->id = arena_strdup(a, id);
			out->version = cur.version;
			out->last_updated = cur.updated;
			out->deleted = true;
			out->json.p = "";
		}
		return CW_OK;
	}
	ms = next_ms(tx, cur.updated);
	if ((err = keep_version(c, cur.rid, rt->name, id, cur.version)))
		goto out_sp;
	if (!(st = sq_fixed(c, SQ_UPD_RES))) {
		err = CW_EINTERNAL;
		goto out_sp;
	}
	sqlite3_bind_int64(st, 1, cur.rid);
	sqlite3_bind_int64(st, 2, cur.version + 1);
	sqlite3_bind_int64(st, 3, ms);
	sqlite3_bind_int(st, 4, 1);
	sqlite3_bind_text(st, 5, "", 0, SQLITE_STATIC);
	if ((err = sq_step_write(c, st, "delete")))
		goto out_sp;
	if (!(st = sq_fixed(c, SQ_INS_VER))) {
		err = CW_EINTERNAL;
		goto out_sp;
	}
	sqlite3_bind_text(st, 1, rt->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, cur.version + 1);
	sqlite3_bind_int64(st, 4, ms);
	sqlite3_bind_int(st, 5, 1);
	sqlite3_bind_text(st, 6, "", 0, SQLITE_STATIC);
	if ((err = sq_step_write(c, st, "delete version")))
		goto out_sp;
	err = drop_index_rows(c, cur.rid);
out_sp:
	if (poison(tx, err))
		return err;
	if (existed)
		*existed = true;
	out->type = rt->name;
	out->id = arena_strdup(a, id);
	out->version = cur.version + 1;
	out->last_updated = ms;
	out->deleted = true;
	out->json.p = "";
	return out->id ? CW_OK : CW_ENOMEM;
}
