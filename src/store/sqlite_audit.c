/* store/sqlite_audit.c: the audit and audit_patient tables (migration 6;
 * the purpose column, migration 7).
 *
 * audit/ decides what an AuditEvent says; this file only appends the rows,
 * chains them and reads them back. A row is the typed columns of struct
 * store_audit, about 100 bytes for a read where the AuditEvent JSON was
 * 830: nothing here builds or stores JSON. The chain: hash = BLAKE2b-256(
 * previous row's hash || encode(columns)), the first row chaining from 32
 * zero bytes; chain_hash below is the one encoder, for append and verify
 * alike. Appends run only inside store_write callbacks, on the writer
 * thread, so the rows get one order and the hash of the last row, read
 * inside the same transaction, is always the one the next row chains to (a
 * rolled-back job leaves neither its rows nor a link to them). There is no
 * update or delete here, and the schema's triggers refuse both.
 *
 * audit_patient is keyed (chunk, patient_id, seq), chunk = seq >> 12: a
 * flush of 1,000 reads of 1,000 patients inserts into the current chunk's
 * few pages, where keyed (patient_id, seq) it dirtied about one page per
 * patient (10x the WAL bytes of everything else the trail writes). A
 * patient's records are then one seek per chunk, newest chunk first
 * (store_audit_list): 250 seeks a million records.
 *
 * Statements are cached by their SQL text (sq_prepare); every value is
 * bound. Nothing here logs a record's content. */
#include <string.h>

#include <sodium.h>

#include "store/store_int.h"

#define SQL(s) s, sizeof(s) - 1

/* The columns in encoding order; a reader selects them in this order too
 * (COLS), and row_of reads them back. */
#define COLS "seq, at, subtype, action, status, user, role, link, remote," \
	     " entity, params, patients, detail, purpose"
#define ENC_VERSION 1
#define ENC_VERSION_PURPOSE 2 /* a row with a purpose (migration 7) */
#define CHUNK_BITS 12 /* audit_patient.chunk = seq >> CHUNK_BITS */

static void
put_int(crypto_generichash_state *h, int64_t v)
{
	unsigned char b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)((uint64_t)v >> (56 - 8 * i));
	crypto_generichash_update(h, b, 8);
}

/* A string as 4 bytes of length (big-endian) and its bytes; NULL as length
 * 0xffffffff, so NULL, "" and a moved boundary all hash differently. */
static void
put_str(crypto_generichash_state *h, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	uint32_t len = s ? (uint32_t)n : UINT32_MAX;
	unsigned char b[4] = {len >> 24, len >> 16, len >> 8, len};

	crypto_generichash_update(h, b, 4);
	if (s)
		crypto_generichash_update(h, (const unsigned char *)s, n);
}

/* hash = BLAKE2b-256(prev || version byte || seq, at, subtype, action,
 * status as 8-byte big-endian || user, role, link, remote, entity, params,
 * patients, detail as length-prefixed strings). A row whose purpose is not
 * 0 has the version byte 2 and its purpose as one more 8-byte integer at
 * the end; a row without one encodes as version 1 did, so the rows chained
 * before migration 7 verify unchanged. */
static void
chain_hash(const unsigned char prev[STORE_AUDIT_HASH], const struct store_audit *r,
	   unsigned char out[STORE_AUDIT_HASH])
{
	crypto_generichash_state h;
	unsigned char v = r->purpose ? ENC_VERSION_PURPOSE : ENC_VERSION;

	crypto_generichash_init(&h, NULL, 0, STORE_AUDIT_HASH);
	crypto_generichash_update(&h, prev, STORE_AUDIT_HASH);
	crypto_generichash_update(&h, &v, 1);
	put_int(&h, r->seq);
	put_int(&h, r->at);
	put_int(&h, r->subtype);
	put_int(&h, r->action);
	put_int(&h, r->status);
	put_str(&h, r->user);
	put_str(&h, r->role);
	put_str(&h, r->link);
	put_str(&h, r->remote);
	put_str(&h, r->entity);
	put_str(&h, r->params);
	put_str(&h, r->patients);
	put_str(&h, r->detail);
	if (r->purpose)
		put_int(&h, r->purpose);
	crypto_generichash_final(&h, out, STORE_AUDIT_HASH);
}

/* The text of column i, borrowed until the next step; false when it is
 * not NULL or text without a NUL inside (not a row we wrote). */
static bool
col_text(sqlite3_stmt *st, int i, const char **out)
{
	int t = sqlite3_column_type(st, i);

	*out = NULL;
	if (t == SQLITE_NULL)
		return true;
	if (t != SQLITE_TEXT)
		return false;
	*out = (const char *)sqlite3_column_text(st, i);
	return *out && strlen(*out) == (size_t)sqlite3_column_bytes(st, i);
}

/* Row st (columns COLS) as r, strings borrowed from st. */
static bool
row_of(sqlite3_stmt *st, struct store_audit *r)
{
	memset(r, 0, sizeof(*r));
	r->seq = sqlite3_column_int64(st, 0);
	r->at = sqlite3_column_int64(st, 1);
	r->subtype = sqlite3_column_int(st, 2);
	r->action = sqlite3_column_int(st, 3);
	r->status = sqlite3_column_int(st, 4);
	r->purpose = sqlite3_column_int(st, 13);
	return col_text(st, 5, &r->user) && col_text(st, 6, &r->role) &&
	       col_text(st, 7, &r->link) && col_text(st, 8, &r->remote) &&
	       col_text(st, 9, &r->entity) && col_text(st, 10, &r->params) &&
	       col_text(st, 11, &r->patients) && col_text(st, 12, &r->detail);
}

static void
bind_opt(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* The seq and hash of the last row, or 0 and zeros for an empty table. */
static enum cw_err
last_hash(struct sq_conn *c, int64_t *seq, unsigned char out[STORE_AUDIT_HASH])
{
	sqlite3_stmt *st = sq_prepare(c, SQL(
		"SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"));
	enum cw_err err = CW_OK;
	int rc;

	memset(out, 0, STORE_AUDIT_HASH);
	*seq = 0;
	if (!st)
		return CW_EINTERNAL;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*seq = sqlite3_column_int64(st, 0);
		if (sqlite3_column_bytes(st, 1) == STORE_AUDIT_HASH)
			memcpy(out, sqlite3_column_blob(st, 1), STORE_AUDIT_HASH);
		else
			err = CW_EINTERNAL; /* not a row we wrote */
	} else if (rc != SQLITE_DONE) {
		err = sq_err(c, rc, "audit last hash");
	}
	sq_done(st);
	return err;
}

/* The two statements of an append, looked up once per batch (a lookup
 * hashes the SQL text: an eighth of a record's cost when done per row). */
struct appender {
	struct sq_conn *c;
	sqlite3_stmt *row, *patient;
};

/* Appends r as row seq (the last one plus one: the seq is in the hash, so
 * it is chosen here, not by SQLite) and its audit_patient rows. */
static enum cw_err
append_one(struct appender *ap, const struct store_audit *in, int64_t seq,
	   unsigned char prev[STORE_AUDIT_HASH])
{
	unsigned char h[STORE_AUDIT_HASH];
	struct store_audit r = *in;
	sqlite3_stmt *st = ap->row;
	struct sq_conn *c = ap->c;
	enum cw_err err;
	const char *p;

	r.seq = seq;
	chain_hash(prev, &r, h);
	sqlite3_bind_int64(st, 1, r.seq);
	sqlite3_bind_int64(st, 2, r.at);
	sqlite3_bind_int(st, 3, r.subtype);
	sqlite3_bind_int(st, 4, r.action);
	sqlite3_bind_int(st, 5, r.status);
	bind_opt(st, 6, r.user);
	bind_opt(st, 7, r.role);
	bind_opt(st, 8, r.link);
	bind_opt(st, 9, r.remote);
	bind_opt(st, 10, r.entity);
	bind_opt(st, 11, r.params);
	bind_opt(st, 12, r.patients);
	bind_opt(st, 13, r.detail);
	sqlite3_bind_int(st, 14, r.purpose);
	sqlite3_bind_blob(st, 15, h, STORE_AUDIT_HASH, SQLITE_STATIC);
	if ((err = sq_step_write(c, st, "audit append")))
		return err;
	for (p = r.patients; p && *p; p += strspn(p, " ")) {
		size_t n = strcspn(p, " ");

		st = ap->patient;
		sqlite3_bind_int64(st, 1, seq >> CHUNK_BITS);
		sqlite3_bind_text(st, 2, p, (int)n, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, seq);
		if ((err = sq_step_write(c, st, "audit patient")))
			return err;
		p += n;
	}
	memcpy(prev, h, STORE_AUDIT_HASH);
	return CW_OK;
}

enum cw_err
store_tx_audit_append(struct store_tx *tx, const struct store_audit *recs,
		      size_t n)
{
	unsigned char prev[STORE_AUDIT_HASH];
	struct appender ap = {tx->c, NULL, NULL};
	enum cw_err err;
	int64_t seq;

	if (!n)
		return CW_OK;
	if ((err = last_hash(tx->c, &seq, prev)))
		return err;
	/* nothing else is prepared until the loop ends, so neither leaves
	 * the statement cache */
	if (!(ap.row = sq_prepare(tx->c, SQL(
		"INSERT INTO audit(" COLS ", hash)"
		" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
		" ?15)"))) ||
	    !(ap.patient = sq_prepare(tx->c, SQL(
		"INSERT OR IGNORE INTO audit_patient(chunk, patient_id, seq)"
		" VALUES(?1, ?2, ?3)"))))
		return CW_EINTERNAL;
	for (size_t i = 0; i < n; i++) {
		err = append_one(&ap, &recs[i], ++seq, prev);
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
bool
sq_add_patient(struct arena *a, const char ***v, size_t *n, size_t max,
	       const char *id, size_t len)
{
	for (size_t i = 0; i < *n; i++)
		if (strlen((*v)[i]) == len && !memcmp((*v)[i], id, len))
			return true;
	if (*n == max)
		return true;
	/* room for 4, then doubling: most lists hold one patient */
	if (*n >= 4 ? !(*n & (*n - 1)) : !*v) {
		size_t cap = *n >= 4 ? *n : 0, nc = cap ? cap * 2 : 4;
		const char **nv = arena_realloc(a, *v, cap * sizeof(**v),
						(nc + 1) * sizeof(**v));

		if (!nv)
			return false;
		*v = nv;
	}
	if (!((*v)[*n] = arena_strndup(a, id, len)))
		return false;
	(*n)++;
	(*v)[*n] = NULL;
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

		if (p && !sq_add_patient(a, ids, n, max, p,
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


/* Adds the compartment patients of one resource to ids: two key lookups,
 * no JSON array (an instance read's record asks this on a poll thread). */
static enum cw_err
patients_of_one(struct sq_conn *c, struct arena *a, const char *type,
		const char *id, size_t max, const char ***ids, size_t *n)
{
	sqlite3_stmt *st;

	if (!(st = sq_prepare(c, SQL(
		"SELECT c.patient_id FROM res r JOIN compartment c ON c.rid = r.rid"
		" WHERE r.type = ?1 AND r.id = ?2"))))
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	return collect(c, st, a, ids, n, max);
}

enum cw_err
store_tx_patients(struct store_tx *tx, struct arena *a, const char *type,
		  const char *id, const char ***ids, size_t *n)
{
	*ids = NULL;
	*n = 0;
	if (!strcmp(type, "Patient") &&
	    !sq_add_patient(a, ids, n, TX_PATIENTS_MAX, id, strlen(id)))
		return CW_ENOMEM;
	return patients_of_one(tx->c, a, type, id, TX_PATIENTS_MAX, ids, n);
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
	if (nres == 1 && strcmp(res[0].type, "Patient"))
		return patients_of_one(c, a, res[0].type, res[0].id, max, ids, n);
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
			    !sq_add_patient(a, ids, n, max, id, strlen(id))) {
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

static char *
dup_opt(struct arena *a, const char *s, bool *ok)
{
	char *d;

	if (!s)
		return NULL;
	if (!(d = arena_strdup(a, s)))
		*ok = false;
	return d;
}

/* Row st as *out, strings copied into the arena. */
static enum cw_err
row_audit(struct arena *a, sqlite3_stmt *st, struct store_audit *out)
{
	struct store_audit r;
	bool ok = true;

	if (!row_of(st, &r))
		return CW_EINTERNAL; /* not a row we wrote */
	*out = r;
	out->user = dup_opt(a, r.user, &ok);
	out->role = dup_opt(a, r.role, &ok);
	out->link = dup_opt(a, r.link, &ok);
	out->remote = dup_opt(a, r.remote, &ok);
	out->entity = dup_opt(a, r.entity, &ok);
	out->params = dup_opt(a, r.params, &ok);
	out->patients = dup_opt(a, r.patients, &ok);
	out->detail = dup_opt(a, r.detail, &ok);
	return ok ? CW_OK : CW_ENOMEM;
}

/* "123" -> 123; false for anything but a decimal seq (no sign, no leading
 * zero, at most 18 digits). */
static bool
seq_of_id(const char *id, int64_t *seq)
{
	size_t n = strlen(id);

	if (!n || n > 18 || id[0] == '0' || strspn(id, "0123456789") != n)
		return false;
	*seq = 0;
	for (size_t i = 0; i < n; i++)
		*seq = *seq * 10 + (id[i] - '0');
	return true;
}

enum cw_err
store_audit_get(struct store *s, struct arena *a, const char *id,
		struct store_audit *out)
{
	struct sq_conn *c;
	sqlite3_stmt *st;
	enum cw_err err;
	int64_t seq;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!seq_of_id(id, &seq))
		return CW_ENOTFOUND;
	if (!(c = sq_reader(s, NULL)))
		return CW_EIO;
	if (!(st = sq_prepare(c, SQL(
		"SELECT " COLS " FROM audit WHERE seq = ?1"))))
		return CW_EINTERNAL;
	sqlite3_bind_int64(st, 1, seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		err = row_audit(a, st, out);
	else
		err = rc == SQLITE_DONE ? CW_ENOTFOUND : sq_err(c, rc, "audit get");
	sq_done(st);
	return err;
}

/* Appends to out[*k..max) the rows of st, then finishes st. */
static enum cw_err
collect_rows(struct sq_conn *c, struct arena *a, sqlite3_stmt *st,
	     struct store_audit *out, size_t *k, size_t max)
{
	enum cw_err err = CW_OK;
	int rc = SQLITE_DONE;

	while (*k < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((err = row_audit(a, st, &out[*k])))
			break;
		(*k)++;
	}
	if (!err && *k < max && rc != SQLITE_DONE)
		err = sq_err(c, rc, "audit list");
	sq_done(st);
	return err;
}

/* The records of patient with seq < before and at >= since, newest first:
 * one query per chunk, from before's chunk down to the first. */
static enum cw_err
list_patient(struct sq_conn *c, struct arena *a, const char *patient,
	     int64_t before, int64_t since, struct store_audit *out,
	     size_t *k, size_t max)
{
	sqlite3_stmt *st;
	enum cw_err err = CW_OK;
	int64_t top = before - 1;
	int rc;

	if (!(st = sq_prepare(c, SQL("SELECT max(seq) FROM audit"))))
		return CW_EINTERNAL;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_int64(st, 0) < top)
		top = sqlite3_column_int64(st, 0);
	sq_done(st);
	if (rc != SQLITE_ROW)
		return sq_err(c, rc, "audit list");
	for (int64_t ch = top >> CHUNK_BITS; ch >= 0 && *k < max && !err; ch--) {
		if (!(st = sq_prepare(c, SQL(
			"SELECT a.seq, a.at, a.subtype, a.action, a.status, a.user,"
			" a.role, a.link, a.remote, a.entity, a.params, a.patients,"
			" a.detail, a.purpose FROM audit_patient p"
			" JOIN audit a ON a.seq = p.seq"
			" WHERE p.chunk = ?1 AND p.patient_id = ?2 AND p.seq < ?3"
			" AND a.at >= ?4 ORDER BY p.seq DESC LIMIT ?5"))))
			return CW_EINTERNAL;
		sqlite3_bind_int64(st, 1, ch);
		sqlite3_bind_text(st, 2, patient, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, before);
		sqlite3_bind_int64(st, 4, since);
		sqlite3_bind_int64(st, 5, (int64_t)(max - *k));
		err = collect_rows(c, a, st, out, k, max);
	}
	return err;
}

enum cw_err
store_audit_list(struct store *s, struct arena *a, const char *patient,
		 int64_t before, int64_t since, size_t max,
		 struct store_audit **out, size_t *n)
{
	struct sq_conn *c = sq_reader(s, NULL);
	sqlite3_stmt *st;
	enum cw_err err;
	size_t k = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (!c)
		return CW_EIO;
	if (!(*out = arena_zalloc(a, (max + 1) * sizeof(**out))))
		return CW_ENOMEM;
	if (before <= 0)
		before = INT64_MAX;
	/* one snapshot for every chunk's query */
	if ((rc = sq_exec_fixed(c, SQ_BEGIN_READ)) != SQLITE_OK)
		return sq_err(c, rc, "audit list");
	if (patient) {
		err = list_patient(c, a, patient, before, since, *out, &k, max);
	} else if (!(st = sq_prepare(c, SQL(
			"SELECT " COLS " FROM audit"
			" WHERE seq < ?1 AND at >= ?2 ORDER BY seq DESC LIMIT ?3")))) {
		err = CW_EINTERNAL;
	} else {
		sqlite3_bind_int64(st, 1, before);
		sqlite3_bind_int64(st, 2, since);
		sqlite3_bind_int64(st, 3, (int64_t)max);
		err = collect_rows(c, a, st, *out, &k, max);
	}
	if ((rc = sq_exec_fixed(c, SQ_COMMIT)) != SQLITE_OK && !err)
		err = sq_err(c, rc, "audit list");
	*n = err ? 0 : k;
	return err;
}

enum cw_err
store_audit_verify(struct store *s, struct store_audit_check *out)
{
	unsigned char prev[STORE_AUDIT_HASH] = {0}, h[STORE_AUDIT_HASH];
	struct sq_conn *c = sq_reader(s, NULL);
	struct store_audit r;
	sqlite3_stmt *st;
	enum cw_err err = CW_OK;
	int64_t want = 1;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!c)
		return CW_EIO;
	if (!(st = sq_prepare(c, SQL(
		"SELECT " COLS ", hash FROM audit ORDER BY seq"))))
		return CW_EINTERNAL;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		bool ours = row_of(st, &r);

		out->records++;
		if (r.seq != want) {
			out->bad_seq = want;
			out->missing = true;
			break;
		}
		if (ours)
			chain_hash(prev, &r, h);
		if (!ours || sqlite3_column_bytes(st, 14) != STORE_AUDIT_HASH ||
		    sodium_memcmp(h, sqlite3_column_blob(st, 14), STORE_AUDIT_HASH)) {
			out->bad_seq = r.seq;
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
