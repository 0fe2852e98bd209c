/* store/sqlite_notify.c: the queue of Subscription notices and the owner
 * of each Subscription (schema migration 10).
 *
 * notify/ decides what matches and how it is sent; this file keeps the
 * rows. A notice is queued inside the transaction of the change that
 * matched, so it commits with it or not at all, and names the version, not
 * the content: what is sent is read when it is sent. Rows carry ids and
 * short error words, no PHI. */
#include <string.h>

#include "store/store_int.h"

#define SQL(s) s, sizeof(s) - 1

enum cw_err
store_tx_notice_add(struct store_tx *tx, const char *sub_id, const char *type,
		    const char *id, long version, int64_t now)
{
	sqlite3_stmt *st = sq_prepare(tx->c, SQL(
		"INSERT INTO notify_queue(sub_id, type, res_id, version, created, due)"
		" VALUES(?1, ?2, ?3, ?4, ?5, ?5)"));

	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, sub_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, version);
	sqlite3_bind_int64(st, 5, now);
	return sq_step_write(tx->c, st, "notice add");
}

enum cw_err
store_notice_due(struct store *s, struct arena *a, int64_t now, size_t max,
		 struct store_notice **out, size_t *n, int64_t *next)
{
	struct sq_conn *c = sq_reader(s, NULL);
	sqlite3_stmt *st;
	struct store_notice *v;
	enum cw_err err = CW_OK;
	bool ok = true;
	size_t k = 0;
	int rc;

	*out = NULL;
	*n = 0;
	*next = 0;
	if (!c)
		return CW_EIO;
	if (!(v = arena_alloc(a, (max ? max : 1) * sizeof(*v))))
		return CW_ENOMEM;
	/* one row past max tells when the next one is due */
	st = sq_prepare(c, SQL(
		"SELECT seq, sub_id, type, res_id, version, created, due, attempts, error"
		" FROM notify_queue ORDER BY due, seq LIMIT ?1"));
	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_int64(st, 1, (int64_t)max + 1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t due = sqlite3_column_int64(st, 6);

		if (due > now || k == max) {
			*next = due;
			break;
		}
		v[k] = (struct store_notice){
			.seq = sqlite3_column_int64(st, 0),
			.sub_id = sq_col_str(a, st, 1, &ok),
			.type = sq_col_str(a, st, 2, &ok),
			.id = sq_col_str(a, st, 3, &ok),
			.version = (long)sqlite3_column_int64(st, 4),
			.created = sqlite3_column_int64(st, 5),
			.due = due,
			.attempts = sqlite3_column_int(st, 7),
			.error = sq_col_str(a, st, 8, &ok),
		};
		k++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		err = sq_err(c, rc, "notice due");
	else if (!ok)
		err = CW_ENOMEM;
	sq_done(st);
	*out = v;
	*n = k;
	return err;
}

enum cw_err
store_tx_notice_drop(struct store_tx *tx, int64_t seq)
{
	sqlite3_stmt *st = sq_prepare(tx->c, SQL(
		"DELETE FROM notify_queue WHERE seq = ?1"));

	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_int64(st, 1, seq);
	return sq_step_write(tx->c, st, "notice drop");
}

enum cw_err
store_tx_notice_drop_sub(struct store_tx *tx, const char *sub_id)
{
	sqlite3_stmt *st = sq_prepare(tx->c, SQL(
		"DELETE FROM notify_queue WHERE sub_id = ?1"));

	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, sub_id, -1, SQLITE_STATIC);
	return sq_step_write(tx->c, st, "notice drop sub");
}

enum cw_err
store_tx_notice_retry(struct store_tx *tx, int64_t seq, const char *sub_id,
		      int attempts, int64_t due, const char *error)
{
	sqlite3_stmt *st = sq_prepare(tx->c, SQL(
		"UPDATE notify_queue SET attempts = ?2, error = ?3 WHERE seq = ?1"));
	enum cw_err err;

	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_int(st, 2, attempts);
	if (error)
		sqlite3_bind_text(st, 3, error, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 3);
	if ((err = sq_step_write(tx->c, st, "notice retry")))
		return err;
	st = sq_prepare(tx->c, SQL(
		"UPDATE notify_queue SET due = ?2 WHERE sub_id = ?1 AND due < ?2"));
	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, sub_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, due);
	return sq_step_write(tx->c, st, "notice retry sub");
}

enum cw_err
store_notice_count(struct store *s, const char *sub_id, long *out)
{
	struct sq_conn *c = sq_reader(s, NULL);
	sqlite3_stmt *st;
	enum cw_err err = CW_OK;
	int rc;

	*out = 0;
	if (!c)
		return CW_EIO;
	st = sub_id ? sq_prepare(c, SQL("SELECT count(*) FROM notify_queue WHERE sub_id = ?1"))
		    : sq_prepare(c, SQL("SELECT count(*) FROM notify_queue"));
	if (!st)
		return CW_EINTERNAL;
	if (sub_id)
		sqlite3_bind_text(st, 1, sub_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = (long)sqlite3_column_int64(st, 0);
	else
		err = sq_err(c, rc, "notice count");
	sq_done(st);
	return err;
}

enum cw_err
store_tx_sub_owner_set(struct store_tx *tx, const char *sub_id, const char *owner)
{
	sqlite3_stmt *st;

	if (!owner) {
		st = sq_prepare(tx->c, SQL("DELETE FROM notify_owner WHERE sub_id = ?1"));
		if (!st)
			return CW_EINTERNAL;
		sqlite3_bind_text(st, 1, sub_id, -1, SQLITE_STATIC);
		return sq_step_write(tx->c, st, "sub owner drop");
	}
	st = sq_prepare(tx->c, SQL(
		"INSERT INTO notify_owner(sub_id, owner) VALUES(?1, ?2)"
		" ON CONFLICT(sub_id) DO UPDATE SET owner = excluded.owner"));
	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, sub_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
	return sq_step_write(tx->c, st, "sub owner set");
}

enum cw_err
store_sub_owner_get(struct store *s, struct arena *a, const char *sub_id,
		    const char **owner)
{
	struct sq_conn *c = sq_reader(s, NULL);
	sqlite3_stmt *st;
	enum cw_err err = CW_OK;
	bool ok = true;
	int rc;

	*owner = NULL;
	if (!c)
		return CW_EIO;
	st = sq_prepare(c, SQL("SELECT owner FROM notify_owner WHERE sub_id = ?1"));
	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, sub_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*owner = sq_col_str(a, st, 0, &ok);
	else if (rc != SQLITE_DONE)
		err = sq_err(c, rc, "sub owner get");
	sq_done(st);
	return err ? err : ok ? CW_OK : CW_ENOMEM;
}
