/* store/sqlite_glass.c: the break-the-glass grants table (schema migration 5).
 *
 * access/ decides what a grant means (who may claim one, for how long,
 * that it overrides the patient's Consent); this file only writes a grant
 * inside the caller's transaction and lists the live ones of a user. The
 * list is read on every clinician request whose scope is loaded, so it is
 * one lookup on glass_grants_uid(uid, expires). Nothing here logs a
 * reason. */
#include <string.h>

#include "store/store_int.h"

#define SQL(s) s, sizeof(s) - 1

enum cw_err
store_tx_glass_add(struct store_tx *tx, const struct store_glass *g)
{
	sqlite3_stmt *st = sq_prepare(tx->c, SQL(
		"INSERT INTO glass_grants(uid, patient_id, reason, granted, expires)"
		" VALUES(?1, ?2, ?3, ?4, ?5)"));

	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_int64(st, 1, g->uid);
	sqlite3_bind_text(st, 2, g->patient_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, g->reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, g->granted);
	sqlite3_bind_int64(st, 5, g->expires);
	return sq_step_write(tx->c, st, "glass add");
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
