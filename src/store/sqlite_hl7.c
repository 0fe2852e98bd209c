/* store/sqlite_hl7.c: the HL7 v2 message log (schema migration 9).
 *
 * hl7v2/ decides what a message means and what to answer; this file keeps
 * the row of each message key inside the caller's transaction (so a row
 * commits with what the message wrote, or is written on its own when the
 * message failed) and lists rows for the operator. A row holds the raw
 * message: PHI, kept in the database file only (encrypted with it), never
 * logged. */
#include <string.h>

#include "store/store_int.h"

#define SQL(s) s, sizeof(s) - 1

#define HL7_COLS "seq, sender, facility, control_id, type, version, peer, received," \
		 " updated, attempts, outcome, detail, resources"

/* Fills m from a row of HL7_COLS (then ack and raw when whole). */
static bool
row_of(struct arena *a, sqlite3_stmt *st, bool whole, struct store_hl7 *m)
{
	bool ok = true;

	memset(m, 0, sizeof(*m));
	m->seq = sqlite3_column_int64(st, 0);
	m->sender = sq_col_str(a, st, 1, &ok);
	m->facility = sq_col_str(a, st, 2, &ok);
	m->control_id = sq_col_str(a, st, 3, &ok);
	m->type = sq_col_str(a, st, 4, &ok);
	m->version = sq_col_str(a, st, 5, &ok);
	m->peer = sq_col_str(a, st, 6, &ok);
	m->received = sqlite3_column_int64(st, 7);
	m->updated = sqlite3_column_int64(st, 8);
	m->attempts = sqlite3_column_int(st, 9);
	m->outcome = sqlite3_column_int(st, 10);
	m->detail = sq_col_str(a, st, 11, &ok);
	m->resources = sq_col_str(a, st, 12, &ok);
	if (whole) {
		size_t n = (size_t)sqlite3_column_bytes(st, 14);
		char *raw = arena_alloc(a, n + 1);

		m->ack = sq_col_str(a, st, 13, &ok);
		if (!raw)
			return false;
		if (n)
			memcpy(raw, sqlite3_column_blob(st, 14), n);
		raw[n] = '\0';
		m->raw.p = raw;
		m->raw.n = n;
	}
	return ok;
}

static void
bind_opt(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static enum cw_err
get_key(struct sq_conn *c, struct arena *a, const char *sender, const char *facility,
	const char *control_id, struct store_hl7 *out)
{
	sqlite3_stmt *st = sq_prepare(c, SQL(
		"SELECT " HL7_COLS ", ack, raw FROM hl7_messages"
		" WHERE sender = ?1 AND facility = ?2 AND control_id = ?3"));
	enum cw_err err = CW_OK;
	int rc;

	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, sender ? sender : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, facility ? facility : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, control_id ? control_id : "", -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		err = row_of(a, st, true, out) ? CW_OK : CW_ENOMEM;
	else if (rc == SQLITE_DONE)
		err = CW_ENOTFOUND;
	else
		err = sq_err(c, rc, "hl7 get");
	sq_done(st);
	return err;
}

enum cw_err
store_tx_hl7_get(struct store_tx *tx, struct arena *a, const char *sender,
		 const char *facility, const char *control_id, struct store_hl7 *out)
{
	return get_key(tx->c, a, sender, facility, control_id, out);
}

enum cw_err
store_hl7_find(struct store *s, struct arena *a, const char *sender,
	       const char *facility, const char *control_id, struct store_hl7 *out)
{
	struct sq_conn *c = sq_reader(s, NULL);

	return c ? get_key(c, a, sender, facility, control_id, out) : CW_EIO;
}

enum cw_err
store_tx_hl7_put(struct store_tx *tx, struct store_hl7 *m)
{
	sqlite3_stmt *st = sq_prepare(tx->c, SQL(
		"INSERT INTO hl7_messages(sender, facility, control_id, type, version,"
		" peer, received, updated, attempts, outcome, ack, detail, resources, raw)"
		" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 1, ?8, ?9, ?10, ?11, ?12)"
		" ON CONFLICT(sender, facility, control_id) DO UPDATE SET"
		" type = excluded.type, version = excluded.version, peer = excluded.peer,"
		" updated = excluded.updated, attempts = attempts + 1,"
		" outcome = excluded.outcome, ack = excluded.ack, detail = excluded.detail,"
		" resources = excluded.resources, raw = excluded.raw"
		" RETURNING seq, received, attempts"));
	enum cw_err err = CW_OK;
	int rc;

	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, m->sender ? m->sender : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, m->facility ? m->facility : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, m->control_id ? m->control_id : "", -1, SQLITE_STATIC);
	bind_opt(st, 4, m->type);
	bind_opt(st, 5, m->version);
	bind_opt(st, 6, m->peer);
	sqlite3_bind_int64(st, 7, m->updated);
	sqlite3_bind_int(st, 8, m->outcome);
	bind_opt(st, 9, m->ack);
	bind_opt(st, 10, m->detail);
	bind_opt(st, 11, m->resources);
	sqlite3_bind_blob(st, 12, m->raw.n ? m->raw.p : "", (int)m->raw.n, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		m->seq = sqlite3_column_int64(st, 0);
		m->received = sqlite3_column_int64(st, 1);
		m->attempts = sqlite3_column_int(st, 2);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE)
		err = sq_err(tx->c, rc, "hl7 put");
	sq_done(st);
	return err;
}

enum cw_err
store_hl7_list(struct store *s, struct arena *a, const struct store_hl7_filter *f,
	       struct store_hl7 **out, size_t *n)
{
	struct sq_conn *c = sq_reader(s, NULL);
	struct store_hl7 *v;
	size_t limit = f->limit ? f->limit : 100, k = 0;
	sqlite3_stmt *st;
	enum cw_err err = CW_OK;
	int rc;

	*out = NULL;
	*n = 0;
	if (limit > 1000)
		limit = 1000;
	if (!c)
		return CW_EIO;
	if (!(v = arena_alloc(a, limit * sizeof(*v))))
		return CW_ENOMEM;
	if (!(st = sq_prepare(c, SQL(
		"SELECT " HL7_COLS " FROM hl7_messages"
		" WHERE (?1 < 0 OR outcome = ?1) AND (?2 <= 0 OR seq < ?2)"
		" ORDER BY seq DESC LIMIT ?3"))))
		return CW_EINTERNAL;
	sqlite3_bind_int(st, 1, f->outcome);
	sqlite3_bind_int64(st, 2, f->before);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!row_of(a, st, false, &v[k])) {
			err = CW_ENOMEM;
			break;
		}
		k++;
	}
	if (!err && rc != SQLITE_DONE)
		err = sq_err(c, rc, "hl7 list");
	sq_done(st);
	if (!err) {
		*out = v;
		*n = k;
	}
	return err;
}

enum cw_err
store_hl7_get(struct store *s, struct arena *a, int64_t seq, struct store_hl7 *out)
{
	struct sq_conn *c = sq_reader(s, NULL);
	sqlite3_stmt *st;
	enum cw_err err;
	int rc;

	if (!c)
		return CW_EIO;
	if (!(st = sq_prepare(c, SQL("SELECT " HL7_COLS ", ack, raw FROM hl7_messages"
				     " WHERE seq = ?1"))))
		return CW_EINTERNAL;
	sqlite3_bind_int64(st, 1, seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		err = row_of(a, st, true, out) ? CW_OK : CW_ENOMEM;
	else if (rc == SQLITE_DONE)
		err = CW_ENOTFOUND;
	else
		err = sq_err(c, rc, "hl7 get");
	sq_done(st);
	return err;
}
