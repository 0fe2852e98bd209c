/* store/sqlite_glass.c: the break-the-glass grants table (schema migration
 * 5; notice, ended and ended_by from migration 7).
 *
 * access/ decides what a grant means (who may claim one, for how long,
 * that it overrides the patient's Consent); api/glass.c who may end one.
 * This file only writes a grant or its early end inside the caller's
 * transaction, lists the live ones of a user and lists grants for the
 * operator and for an end. The live list is read on every clinician
 * request whose scope is loaded, so it is one lookup on
 * glass_grants_uid(uid, expires); an end sets revoked (which that lookup
 * tests) as well as ended. Nothing here logs a reason. */
#include <string.h>

#include "store/store_int.h"

#define SQL(s) s, sizeof(s) - 1

enum cw_err
store_tx_glass_add(struct store_tx *tx, struct store_glass *g)
{
	sqlite3_stmt *st = sq_prepare(tx->c, SQL(
		"INSERT INTO glass_grants(uid, patient_id, reason, granted, expires,"
		" notice) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"));
	enum cw_err err;

	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_int64(st, 1, g->uid);
	sqlite3_bind_text(st, 2, g->patient_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, g->reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, g->granted);
	sqlite3_bind_int64(st, 5, g->expires);
	if (g->notice)
		sqlite3_bind_text(st, 6, g->notice, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 6);
	err = sq_step_write(tx->c, st, "glass add");
	if (!err)
		g->gid = sqlite3_last_insert_rowid(tx->c->db);
	return err;
}

enum cw_err
store_tx_glass_end(struct store_tx *tx, int64_t gid, int64_t now, int64_t by)
{
	sqlite3_stmt *st = sq_prepare(tx->c, SQL(
		"UPDATE glass_grants SET revoked = 1, ended = ?2, ended_by = ?3"
		" WHERE gid = ?1 AND revoked = 0 AND granted <= ?2 AND expires > ?2"));
	enum cw_err err;

	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_int64(st, 1, gid);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_int64(st, 3, by);
	err = sq_step_write(tx->c, st, "glass end");
	if (!err && sqlite3_changes(tx->c->db) != 1)
		err = CW_ENOTFOUND; /* not live: expired, ended, or no such grant */
	return err;
}

enum cw_err
store_glass_list(struct store *s, struct arena *a,
		 const struct store_glass_filter *f, struct store_glass **out,
		 size_t *n)
{
	/* every filter is bound; a 0 or NULL one matches all */
	static const char sql[] =
		"SELECT g.gid, g.uid, g.patient_id, g.reason, g.granted, g.expires,"
		" g.notice, g.ended, g.ended_by, u.username, e.username"
		" FROM glass_grants g LEFT JOIN users u ON u.uid = g.uid"
		" LEFT JOIN users e ON e.uid = g.ended_by"
		" WHERE (?1 = 0 OR g.gid = ?1) AND (?2 = 0 OR g.uid = ?2)"
		" AND (?3 IS NULL OR g.patient_id = ?3)"
		" AND (?4 = 0 OR (g.revoked = 0 AND g.granted <= ?5 AND g.expires > ?5))"
		" ORDER BY g.gid DESC";
	struct sq_conn *c = sq_reader(s, NULL);
	struct store_glass *v = NULL;
	size_t cap = 0, k = 0;
	sqlite3_stmt *st;
	enum cw_err err = CW_OK;
	bool ok = true;
	int rc;

	*out = NULL;
	*n = 0;
	if (!c)
		return CW_EIO;
	if (!(st = sq_prepare(c, SQL(sql))))
		return CW_EINTERNAL;
	sqlite3_bind_int64(st, 1, f->gid);
	sqlite3_bind_int64(st, 2, f->uid);
	if (f->patient_id)
		sqlite3_bind_text(st, 3, f->patient_id, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 3);
	sqlite3_bind_int(st, 4, f->live_only);
	sqlite3_bind_int64(st, 5, f->now);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_glass *g;

		if (k == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct store_glass *nv = arena_realloc(a, v, cap * sizeof(*v),
							       ncap * sizeof(*v));

			if (!nv) {
				err = CW_ENOMEM;
				break;
			}
			v = nv;
			cap = ncap;
		}
		g = &v[k++];
		*g = (struct store_glass){
			.gid = sqlite3_column_int64(st, 0),
			.uid = sqlite3_column_int64(st, 1),
			.granted = sqlite3_column_int64(st, 4),
			.expires = sqlite3_column_int64(st, 5),
			.ended = sqlite3_column_int64(st, 7),
			.ended_by = sqlite3_column_int64(st, 8),
		};
		g->patient_id = sq_col_str(a, st, 2, &ok);
		g->reason = sq_col_str(a, st, 3, &ok);
		g->notice = sq_col_str(a, st, 6, &ok);
		g->username = sq_col_str(a, st, 9, &ok);
		g->ended_by_name = sq_col_str(a, st, 10, &ok);
		if (!ok) {
			err = CW_ENOMEM;
			break;
		}
	}
	if (!err && rc != SQLITE_DONE)
		err = sq_err(c, rc, "glass list");
	sq_done(st);
	*out = v;
	*n = err ? 0 : k;
	return err;
}

enum cw_err
store_glass_live(struct store *s, struct arena *a, int64_t uid, int64_t now,
		 const char ***ids, size_t *n)
{
	static const char sql[] =
		"SELECT DISTINCT patient_id FROM glass_grants"
		" WHERE uid = ?1 AND expires > ?2 AND granted <= ?2 AND revoked = 0";
	struct sq_conn *c = sq_reader(s, NULL);
	const char **v = NULL;
	size_t cap = 0, k = 0;
	sqlite3_stmt *st;
	enum cw_err err = CW_OK;
	int rc;

	*ids = NULL;
	*n = 0;
	if (!c)
		return CW_EIO;
	if (!(st = sq_prepare(c, SQL(sql))))
		return CW_EINTERNAL;
	sqlite3_bind_int64(st, 1, uid);
	sqlite3_bind_int64(st, 2, now);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (k == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			const char **nv = arena_realloc(a, v, cap * sizeof(*v),
							ncap * sizeof(*v));

			if (!nv) {
				err = CW_ENOMEM;
				break;
			}
			v = nv;
			cap = ncap;
		}
		v[k] = arena_strndup(a, (const char *)sqlite3_column_text(st, 0),
				     (size_t)sqlite3_column_bytes(st, 0));
		if (!v[k]) {
			err = CW_ENOMEM;
			break;
		}
		k++;
	}
	if (!err && rc != SQLITE_DONE)
		err = sq_err(c, rc, "glass live");
	sq_done(st);
	*ids = v;
	*n = err ? 0 : k;
	return err;
}
