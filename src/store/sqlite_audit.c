/* store/sqlite_audit.c: the audit and audit_patient tables (migration 4).
 *
 * audit/ decides what an AuditEvent says; this file only appends the rows,
 * chains them and reads them back. The chain: hash = BLAKE2b-256(previous
 * row's hash || json), the first row chaining from 32 zero bytes. Appends
 * run only inside store_write callbacks, on the writer thread, so the rows
 * get one order and the hash of the last row, read inside the same
 * transaction, is always the one the next row chains to (a rolled-back job
 * leaves neither its rows nor a link to them). There is no update or
 * delete here, and the schema's triggers refuse both.
 *
 * Statements are cached by their SQL text (sq_prepare); every value is
 * bound. Nothing here logs a record's content. */
#include <string.h>

#include <sodium.h>

#include "store/store_int.h"

#define SQL(s) s, sizeof(s) - 1

static enum cw_err
step_done(struct sq_conn *c, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	enum cw_err err = rc == SQLITE_DONE ? CW_OK : sq_err(c, rc, what);

	sq_done(st);
	return err;
}

static void
chain_hash(const unsigned char prev[STORE_AUDIT_HASH], const void *json,
	   size_t n, unsigned char out[STORE_AUDIT_HASH])
{
	crypto_generichash_state h;

	crypto_generichash_init(&h, NULL, 0, STORE_AUDIT_HASH);
	crypto_generichash_update(&h, prev, STORE_AUDIT_HASH);
	crypto_generichash_update(&h, json, n);
	crypto_generichash_final(&h, out, STORE_AUDIT_HASH);
}

/* The hash of the last row, or zeros for an empty table. */
static enum cw_err
last_hash(struct sq_conn *c, unsigned char out[STORE_AUDIT_HASH])
{
	sqlite3_stmt *st = sq_prepare(c, SQL(
		"SELECT hash FROM audit ORDER BY seq DESC LIMIT 1"));
	enum cw_err err = CW_OK;
	int rc;

	memset(out, 0, STORE_AUDIT_HASH);
	if (!st)
		return CW_EINTERNAL;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 0) == STORE_AUDIT_HASH)
			memcpy(out, sqlite3_column_blob(st, 0), STORE_AUDIT_HASH);
		else
			err = CW_EINTERNAL; /* not a row we wrote */
	} else if (rc != SQLITE_DONE) {
		err = sq_err(c, rc, "audit last hash");
	}
	sq_done(st);
	return err;
}

static enum cw_err
append_one(struct sq_conn *c, const struct store_audit *r,
	   unsigned char prev[STORE_AUDIT_HASH])
{
	unsigned char h[STORE_AUDIT_HASH];
	sqlite3_stmt *st;
	enum cw_err err;
	int64_t seq;

	chain_hash(prev, r->json.p, r->json.n, h);
	if (!(st = sq_prepare(c, SQL(
		"INSERT INTO audit(id, at, json, hash) VALUES(?1, ?2, ?3, ?4)"))))
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, r->at);
	sqlite3_bind_text(st, 3, r->json.p, (int)r->json.n, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, h, STORE_AUDIT_HASH, SQLITE_STATIC);
	if ((err = step_done(c, st, "audit append")))
		return err;
	seq = sqlite3_last_insert_rowid(c->db);
	for (size_t i = 0; i < r->npatients; i++) {
		if (!(st = sq_prepare(c, SQL(
			"INSERT OR IGNORE INTO audit_patient(patient_id, seq)"
			" VALUES(?1, ?2)"))))
			return CW_EINTERNAL;
		sqlite3_bind_text(st, 1, r->patients[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, seq);
		if ((err = step_done(c, st, "audit patient")))
			return err;
	}
	memcpy(prev, h, STORE_AUDIT_HASH);
	return CW_OK;
}

enum cw_err
store_tx_audit_append(struct store_tx *tx, const struct store_audit *recs,
		      size_t n)
{
	unsigned char prev[STORE_AUDIT_HASH];
	enum cw_err err;

	if (!n)
		return CW_OK;
	if ((err = last_hash(tx->c, prev)))
		return err;
	for (size_t i = 0; i < n; i++) {
		err = append_one(tx->c, &recs[i], prev);
		if (err) {
			/* rows of this job may be half written: roll it back */
			if (!tx->poisoned)
				tx->poisoned = err;
			return err;
		}
	}
	return CW_OK;
}

/* ---- patients of resources -------------------------------------------- */

/* Adds id to v (arena array of cap max) unless it is there. */
static bool
add_patient(struct arena *a, const char ***v, size_t *n, size_t max,
	    const char *id, size_t len)
{
	for (size_t i = 0; i < *n; i++)
		if (strlen((*v)[i]) == len && !memcmp((*v)[i], id, len))
			return true;
	if (*n == max)
		return true;
	if (!*v && !(*v = arena_zalloc(a, (max + 1) * sizeof(**v))))
		return false;
	if (!((*v)[*n] = arena_strndup(a, id, len)))
		return false;
	(*n)++;
	return true;
}

/* Collects the patient_id column of st's rows. */
static enum cw_err
collect(struct sq_conn *c, sqlite3_stmt *st, struct arena *a,
	const char ***ids, size_t *n, size_t max)
{
	enum cw_err err = CW_OK;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *p = (const char *)sqlite3_column_text(st, 0);

		if (p && !add_patient(a, ids, n, max, p,
				      (size_t)sqlite3_column_bytes(st, 0))) {
			err = CW_ENOMEM;
			break;
		}
	}
	if (!err && rc != SQLITE_ROW && rc != SQLITE_DONE)
		err = sq_err(c, rc, "audit patients");
	sq_done(st);
	return err;
}

#define TX_PATIENTS_MAX 1000

enum cw_err
store_tx_patients(struct store_tx *tx, struct arena *a, const char *type,
		  const char *id, const char ***ids, size_t *n)
{
	sqlite3_stmt *st;

	*ids = NULL;
	*n = 0;
	if (!strcmp(type, "Patient") &&
	    !add_patient(a, ids, n, TX_PATIENTS_MAX, id, strlen(id)))
		return CW_ENOMEM;
	if (!(st = sq_prepare(tx->c, SQL(
		"SELECT c.patient_id FROM res r JOIN compartment c ON c.rid = r.rid"
		" WHERE r.type = ?1 AND r.id = ?2"))))
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	return collect(tx->c, st, a, ids, n, TX_PATIENTS_MAX);
}

enum cw_err
store_patients_of(struct store *s, struct arena *a, const struct store_res *res,
		  size_t nres, size_t max, const char ***ids, size_t *n)
{
	struct sq_conn *c;
	struct sbuf sb = SBUF_INIT(1 << 20);
	enum cw_err err = CW_OK;
	bool *done;

	*ids = NULL;
	*n = 0;
	if (!nres || !max)
		return CW_OK;
	if (!(c = sq_reader(s, NULL)))
		return CW_EIO;
	if (!(done = arena_zalloc(a, nres * sizeof(*done))))
		return CW_ENOMEM;
	/* One query per type: its ids as a JSON array for json_each. */
	for (size_t i = 0; i < nres && !err && *n < max; i++) {
		const char *type = res[i].type;
		sqlite3_stmt *st;
		size_t k = 0;

		if (done[i])
			continue;
		sbuf_reset(&sb);
		sbuf_addch(&sb, '[');
		for (size_t j = i; j < nres; j++) {
			const char *id = res[j].id;

			if (done[j] || strcmp(res[j].type, type))
				continue;
			done[j] = true;
			if (!strcmp(type, "Patient") &&
			    !add_patient(a, ids, n, max, id, strlen(id))) {
				err = CW_ENOMEM;
				break;
			}
			if (strpbrk(id, "\"\\"))
				continue; /* not an id we store */
			sbuf_addf(&sb, "%s\"%s\"", k++ ? "," : "", id);
		}
		sbuf_addch(&sb, ']');
		if (err || !k || !strcmp(type, "Patient"))
			continue;
		if (sb.toobig) {
			err = CW_ETOOBIG;
			break;
		}
		if (!(st = sq_prepare(c, SQL(
			"SELECT DISTINCT c.patient_id FROM res r"
			" JOIN compartment c ON c.rid = r.rid"
			" WHERE r.type = ?1 AND r.id IN (SELECT value FROM json_each(?2))")))) {
			err = CW_EINTERNAL;
			break;
		}
		sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, sb.buf, (int)sb.len, SQLITE_STATIC);
		err = collect(c, st, a, ids, n, max);
	}
	sbuf_release(&sb);
	return err;
}

/* ---- reading ------------------------------------------------------------ */

static enum cw_err
row_audit(struct arena *a, sqlite3_stmt *st, struct store_audit *out)
{
	const char *id = (const char *)sqlite3_column_text(st, 1);
	const char *json = (const char *)sqlite3_column_text(st, 3);

	memset(out, 0, sizeof(*out));
	out->seq = sqlite3_column_int64(st, 0);
	out->at = sqlite3_column_int64(st, 2);
	if (!id || !json)
		return CW_EINTERNAL;
	out->id = arena_strdup(a, id);
	out->json.n = (size_t)sqlite3_column_bytes(st, 3);
	out->json.p = arena_strndup(a, json, out->json.n);
	return out->id && out->json.p ? CW_OK : CW_ENOMEM;
}

enum cw_err
store_audit_get(struct store *s, struct arena *a, const char *id,
		struct store_audit *out)
{
	struct sq_conn *c = sq_reader(s, NULL);
	sqlite3_stmt *st;
	enum cw_err err;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!c)
		return CW_EIO;
	if (!(st = sq_prepare(c, SQL(
		"SELECT seq, id, at, json FROM audit WHERE id = ?1"))))
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		err = row_audit(a, st, out);
	else
		err = rc == SQLITE_DONE ? CW_ENOTFOUND : sq_err(c, rc, "audit get");
	sq_done(st);
	return err;
}

enum cw_err
store_audit_list(struct store *s, struct arena *a, const char *patient,
		 int64_t before, int64_t since, size_t max,
		 struct store_audit **out, size_t *n)
{
	struct sq_conn *c = sq_reader(s, NULL);
	sqlite3_stmt *st;
	enum cw_err err = CW_OK;
	size_t k = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (!c)
		return CW_EIO;
	if (!(*out = arena_zalloc(a, (max + 1) * sizeof(**out))))
		return CW_ENOMEM;
	if (patient)
		st = sq_prepare(c, SQL(
			"SELECT a.seq, a.id, a.at, a.json FROM audit_patient p"
			" JOIN audit a ON a.seq = p.seq"
			" WHERE p.patient_id = ?1 AND p.seq < ?2 AND a.at >= ?3"
			" ORDER BY p.seq DESC LIMIT ?4"));
	else
		st = sq_prepare(c, SQL(
			"SELECT seq, id, at, json FROM audit"
			" WHERE seq < ?2 AND at >= ?3 ORDER BY seq DESC LIMIT ?4"));
	if (!st)
		return CW_EINTERNAL;
	if (patient)
		sqlite3_bind_text(st, 1, patient, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, before > 0 ? before : INT64_MAX);
	sqlite3_bind_int64(st, 3, since);
	sqlite3_bind_int64(st, 4, (int64_t)max);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && k < max) {
		if ((err = row_audit(a, st, &(*out)[k])))
			break;
		k++;
	}
	if (!err && rc != SQLITE_ROW && rc != SQLITE_DONE)
		err = sq_err(c, rc, "audit list");
	sq_done(st);
	*n = err ? 0 : k;
	return err;
}

enum cw_err
store_audit_verify(struct store *s, struct store_audit_check *out)
{
	unsigned char prev[STORE_AUDIT_HASH] = {0}, h[STORE_AUDIT_HASH];
	struct sq_conn *c = sq_reader(s, NULL);
	sqlite3_stmt *st;
	enum cw_err err = CW_OK;
	int64_t want = 1, seq;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!c)
		return CW_EIO;
	if (!(st = sq_prepare(c, SQL(
		"SELECT seq, json, hash FROM audit ORDER BY seq"))))
		return CW_EINTERNAL;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		seq = sqlite3_column_int64(st, 0);
		out->records++;
		if (seq != want) {
			out->bad_seq = want;
			out->missing = true;
			break;
		}
		chain_hash(prev, sqlite3_column_blob(st, 1),
			   (size_t)sqlite3_column_bytes(st, 1), h);
		if (sqlite3_column_bytes(st, 2) != STORE_AUDIT_HASH ||
		    sodium_memcmp(h, sqlite3_column_blob(st, 2), STORE_AUDIT_HASH)) {
			out->bad_seq = seq;
			break;
		}
		memcpy(prev, h, STORE_AUDIT_HASH);
		want++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		err = sq_err(c, rc, "audit verify");
	sq_done(st);
	return err;
}
