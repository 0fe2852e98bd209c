/* store/sqlite_auth.c: the users and sessions tables (schema migrations 3
 * and 5).
 *
 * access/ owns what these rows mean (roles, lockout, expiry); this file
 * only reads and writes them, through the same writer and reader
 * connections as resources. Writes go through store_write so they share
 * group commit and durability with everything else: a session the client
 * was told about survives a crash, and a revocation is on disk before
 * sign-out answers. Statements are cached by their SQL text (sq_prepare),
 * every value is bound. Nothing here logs a username, hash or token. */
#include <string.h>

#include "store/store_int.h"

#define SQL(s) s, sizeof(s) - 1

/* The columns row_user reads, in its order (u. for the session join). */
#define USER_COLS(u)                                                          \
	u "uid, " u "username, " u "role, " u "link, " u "hash, " u "disabled, " \
	u "failed, " u "lockouts, " u "locked_until, " u "created, " u "totp, "  \
	u "totp_step"

/* Copies a text column into a (NULL when SQL NULL). false on no memory. */
static bool
col_text(struct arena *a, sqlite3_stmt *st, int col, const char **out)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	if (!t) {
		*out = NULL;
		return sqlite3_errcode(sqlite3_db_handle(st)) != SQLITE_NOMEM;
	}
	*out = arena_strndup(a, (const char *)t,
			     (size_t)sqlite3_column_bytes(st, col));
	return *out != NULL;
}

/* Fills u from columns col.. in the order of user_cols. */
static enum cw_err
row_user(struct arena *a, sqlite3_stmt *st, int col, struct store_user *u)
{
	memset(u, 0, sizeof(*u));
	u->uid = sqlite3_column_int64(st, col);
	if (!col_text(a, st, col + 1, &u->username) ||
	    !col_text(a, st, col + 2, &u->role) ||
	    !col_text(a, st, col + 3, &u->link) ||
	    !col_text(a, st, col + 4, &u->hash))
		return CW_ENOMEM;
	u->disabled = sqlite3_column_int(st, col + 5) != 0;
	u->failed = sqlite3_column_int(st, col + 6);
	u->lockouts = sqlite3_column_int(st, col + 7);
	u->locked_until = sqlite3_column_int64(st, col + 8);
	u->created = sqlite3_column_int64(st, col + 9);
	if (sqlite3_column_bytes(st, col + 10) == STORE_TOTP_KEY) {
		unsigned char *k = arena_alloc(a, STORE_TOTP_KEY);

		if (!k)
			return CW_ENOMEM;
		memcpy(k, sqlite3_column_blob(st, col + 10), STORE_TOTP_KEY);
		u->totp = k;
	}
	u->totp_step = sqlite3_column_int64(st, col + 11);
	if (!u->username || !u->role || !u->hash)
		return CW_EINTERNAL; /* NOT NULL columns */
	return CW_OK;
}

/* ---- users ------------------------------------------------------------ */

struct user_job {
	const struct store_user *u;
	const char *username;
	const char *hash;
	const unsigned char *totp;
	int64_t uid, until;
	int failed, lockouts;
	bool disabled;
	bool found;
};

static enum cw_err
user_add_fn(struct store_tx *tx, void *ctx)
{
	struct user_job *j = ctx;
	sqlite3_stmt *st = sq_prepare(tx->c, SQL(
		"INSERT INTO users(username, role, link, hash, created)"
		" VALUES(?1, ?2, ?3, ?4, ?5)"));

	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, j->u->username, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, j->u->role, -1, SQLITE_STATIC);
	if (j->u->link)
		sqlite3_bind_text(st, 3, j->u->link, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 3);
	sqlite3_bind_text(st, 4, j->u->hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, time_now_ms());
	return sq_step_write(tx->c, st, "user add");
}

enum cw_err
store_user_add(struct store *s, const struct store_user *u)
{
	struct user_job j = {.u = u};

	return store_write(s, user_add_fn, &j);
}

enum cw_err
store_user_get(struct store *s, struct arena *a, const char *username,
	       struct store_user *out)
{
	static const char sql[] =
		"SELECT " USER_COLS("") " FROM users WHERE username = ?1";
	struct sq_conn *c = sq_reader(s, NULL);
	sqlite3_stmt *st;
	enum cw_err err;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!c)
		return CW_EIO;
	if (!(st = sq_prepare(c, SQL(sql))))
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, username, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		err = row_user(a, st, 0, out);
	else if (rc == SQLITE_DONE)
		err = CW_ENOTFOUND;
	else
		err = sq_err(c, rc, "user get");
	sq_done(st);
	return err;
}

enum cw_err
store_user_list(struct store *s, struct arena *a, struct store_user **out,
		size_t *n)
{
	struct sq_conn *c = sq_reader(s, NULL);
	struct store_user *v = NULL;
	size_t cap = 0, k = 0;
	sqlite3_stmt *st;
	enum cw_err err = CW_OK;
	int rc;

	*out = NULL;
	*n = 0;
	if (!c)
		return CW_EIO;
	if (!(st = sq_prepare(c, SQL("SELECT " USER_COLS("")
				    " FROM users ORDER BY username"))))
		return CW_EINTERNAL;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (k == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct store_user *nv = arena_realloc(
				a, v, cap * sizeof(*v), ncap * sizeof(*v));

			if (!nv) {
				err = CW_ENOMEM;
				break;
			}
			v = nv;
			cap = ncap;
		}
		if ((err = row_user(a, st, 0, &v[k])))
			break;
		k++;
	}
	if (!err && rc != SQLITE_DONE)
		err = sq_err(c, rc, "user list");
	sq_done(st);
	*out = v;
	*n = err ? 0 : k;
	return err;
}

/* Revokes every session of uid. */
static enum cw_err
revoke_user_sessions(struct sq_conn *c, int64_t uid)
{
	sqlite3_stmt *st = sq_prepare(c, SQL(
		"UPDATE sessions SET revoked = 1 WHERE uid = ?1"));

	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_int64(st, 1, uid);
	return sq_step_write(c, st, "revoke sessions");
}

/* The uid of username inside the transaction; CW_ENOTFOUND. */
static enum cw_err
uid_of(struct sq_conn *c, const char *username, int64_t *uid)
{
	sqlite3_stmt *st = sq_prepare(c, SQL(
		"SELECT uid FROM users WHERE username = ?1"));
	enum cw_err err;
	int rc;

	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, username, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*uid = sqlite3_column_int64(st, 0);
		err = CW_OK;
	} else {
		err = rc == SQLITE_DONE ? CW_ENOTFOUND : sq_err(c, rc, "uid");
	}
	sq_done(st);
	return err;
}

/* Prepares sql, an UPDATE of users whose ?1 is the uid, for username
 * inside the transaction: *uid found and bound. CW_ENOTFOUND. */
static enum cw_err
user_update(struct sq_conn *c, const char *username, const char *sql,
	    size_t n, int64_t *uid, sqlite3_stmt **st)
{
	enum cw_err err;

	if ((err = uid_of(c, username, uid)))
		return err;
	if (!(*st = sq_prepare(c, sql, n)))
		return CW_EINTERNAL;
	sqlite3_bind_int64(*st, 1, *uid);
	return CW_OK;
}

static enum cw_err
set_disabled_fn(struct store_tx *tx, void *ctx)
{
	struct user_job *j = ctx;
	sqlite3_stmt *st;
	enum cw_err err;
	int64_t uid;

	if ((err = user_update(tx->c, j->username, SQL(
		"UPDATE users SET disabled = ?2 WHERE uid = ?1"), &uid, &st)))
		return err;
	sqlite3_bind_int(st, 2, j->disabled);
	if ((err = sq_step_write(tx->c, st, "user disable")))
		return err;
	return j->disabled ? revoke_user_sessions(tx->c, uid) : CW_OK;
}

enum cw_err
store_user_set_disabled(struct store *s, const char *username, bool disabled)
{
	struct user_job j = {.username = username, .disabled = disabled};

	return store_write(s, set_disabled_fn, &j);
}

static enum cw_err
set_hash_fn(struct store_tx *tx, void *ctx)
{
	struct user_job *j = ctx;
	sqlite3_stmt *st;
	enum cw_err err;
	int64_t uid;

	if ((err = user_update(tx->c, j->username, SQL(
		"UPDATE users SET hash = ?2, failed = 0, lockouts = 0,"
		" locked_until = 0 WHERE uid = ?1"), &uid, &st)))
		return err;
	sqlite3_bind_text(st, 2, j->hash, -1, SQLITE_STATIC);
	if ((err = sq_step_write(tx->c, st, "user password")))
		return err;
	return revoke_user_sessions(tx->c, uid);
}

enum cw_err
store_user_set_hash(struct store *s, const char *username, const char *hash)
{
	struct user_job j = {.username = username, .hash = hash};

	return store_write(s, set_hash_fn, &j);
}

static enum cw_err
set_totp_fn(struct store_tx *tx, void *ctx)
{
	struct user_job *j = ctx;
	sqlite3_stmt *st;
	enum cw_err err;
	int64_t uid;

	if ((err = user_update(tx->c, j->username, SQL(
		"UPDATE users SET totp = ?2, totp_step = 0 WHERE uid = ?1"),
		&uid, &st)))
		return err;
	if (j->totp)
		sqlite3_bind_blob(st, 2, j->totp, STORE_TOTP_KEY, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 2);
	if ((err = sq_step_write(tx->c, st, "user totp")))
		return err;
	return revoke_user_sessions(tx->c, uid);
}

enum cw_err
store_user_set_totp(struct store *s, const char *username,
		    const unsigned char *key)
{
	struct user_job j = {.username = username, .totp = key};

	return store_write(s, set_totp_fn, &j);
}

static enum cw_err
set_failures_fn(struct store_tx *tx, void *ctx)
{
	struct user_job *j = ctx;
	sqlite3_stmt *st = sq_prepare(tx->c, SQL(
		"UPDATE users SET failed = ?2, lockouts = ?3, locked_until = ?4"
		" WHERE uid = ?1"));

	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_int64(st, 1, j->uid);
	sqlite3_bind_int(st, 2, j->failed);
	sqlite3_bind_int(st, 3, j->lockouts);
	sqlite3_bind_int64(st, 4, j->until);
	return sq_step_write(tx->c, st, "user failures");
}

enum cw_err
store_user_set_failures(struct store *s, int64_t uid, int failed,
			int lockouts, int64_t locked_until)
{
	struct user_job j = {.uid = uid, .failed = failed, .lockouts = lockouts,
			     .until = locked_until};

	return store_write(s, set_failures_fn, &j);
}

/* ---- sessions --------------------------------------------------------- */

struct session_job {
	const struct store_session *ss;
	const unsigned char *hash;
	int64_t now;
};

static enum cw_err
session_add_fn(struct store_tx *tx, void *ctx)
{
	struct session_job *j = ctx;
	sqlite3_stmt *st;
	enum cw_err err;

	/* A TOTP step is used once: whichever of two sign-ins with the
	 * same code commits first takes it, the other changes nothing. */
	if (j->ss->totp_step > 0) {
		if (!(st = sq_prepare(tx->c, SQL(
			"UPDATE users SET totp_step = ?2"
			" WHERE uid = ?1 AND totp_step < ?2"))))
			return CW_EINTERNAL;
		sqlite3_bind_int64(st, 1, j->ss->uid);
		sqlite3_bind_int64(st, 2, j->ss->totp_step);
		if ((err = sq_step_write(tx->c, st, "totp step")))
			return err;
		if (sqlite3_changes(tx->c->db) != 1)
			return CW_ECONFLICT;
	}
	if (!(st = sq_prepare(tx->c, SQL(
		"DELETE FROM sessions WHERE expires < ?1"))))
		return CW_EINTERNAL;
	sqlite3_bind_int64(st, 1, j->now);
	if ((err = sq_step_write(tx->c, st, "session sweep")))
		return err;
	if (!(st = sq_prepare(tx->c, SQL(
		"INSERT INTO sessions(hash, uid, created, last_seen, expires)"
		" VALUES(?1, ?2, ?3, ?4, ?5)"))))
		return CW_EINTERNAL;
	sqlite3_bind_blob(st, 1, j->ss->hash, STORE_SESSION_HASH, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, j->ss->uid);
	sqlite3_bind_int64(st, 3, j->ss->created);
	sqlite3_bind_int64(st, 4, j->ss->last_seen);
	sqlite3_bind_int64(st, 5, j->ss->expires);
	if ((err = sq_step_write(tx->c, st, "session add")))
		return err;
	if (!(st = sq_prepare(tx->c, SQL(
		"UPDATE users SET failed = 0, lockouts = 0, locked_until = 0"
		" WHERE uid = ?1"))))
		return CW_EINTERNAL;
	sqlite3_bind_int64(st, 1, j->ss->uid);
	return sq_step_write(tx->c, st, "user signed in");
}

enum cw_err
store_session_add(struct store *s, const struct store_session *ss, int64_t now)
{
	struct session_job j = {.ss = ss, .now = now};

	return store_write(s, session_add_fn, &j);
}

enum cw_err
store_session_get(struct store *s, struct arena *a,
		  const unsigned char hash[STORE_SESSION_HASH],
		  struct store_session *out)
{
	static const char sql[] =
		"SELECT s.uid, s.created, s.last_seen, s.expires, s.revoked, "
		USER_COLS("u.")
		" FROM sessions s JOIN users u ON u.uid = s.uid WHERE s.hash = ?1";
	struct sq_conn *c = sq_reader(s, NULL);
	sqlite3_stmt *st;
	enum cw_err err;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!c)
		return CW_EIO;
	if (!(st = sq_prepare(c, SQL(sql))))
		return CW_EINTERNAL;
	sqlite3_bind_blob(st, 1, hash, STORE_SESSION_HASH, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		memcpy(out->hash, hash, STORE_SESSION_HASH);
		out->uid = sqlite3_column_int64(st, 0);
		out->created = sqlite3_column_int64(st, 1);
		out->last_seen = sqlite3_column_int64(st, 2);
		out->expires = sqlite3_column_int64(st, 3);
		out->revoked = sqlite3_column_int(st, 4) != 0;
		err = row_user(a, st, 5, &out->user);
	} else {
		err = rc == SQLITE_DONE ? CW_ENOTFOUND : sq_err(c, rc, "session get");
	}
	sq_done(st);
	return err;
}

static enum cw_err
session_touch_fn(struct store_tx *tx, void *ctx)
{
	struct session_job *j = ctx;
	sqlite3_stmt *st = sq_prepare(tx->c, SQL(
		"UPDATE sessions SET last_seen = max(last_seen, ?2) WHERE hash = ?1"));

	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_blob(st, 1, j->hash, STORE_SESSION_HASH, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, j->now);
	return sq_step_write(tx->c, st, "session touch");
}

enum cw_err
store_session_touch(struct store *s, const unsigned char hash[STORE_SESSION_HASH],
		    int64_t last_seen)
{
	struct session_job j = {.hash = hash, .now = last_seen};

	return store_write(s, session_touch_fn, &j);
}

static enum cw_err
session_revoke_fn(struct store_tx *tx, void *ctx)
{
	struct session_job *j = ctx;
	sqlite3_stmt *st = sq_prepare(tx->c, SQL(
		"UPDATE sessions SET revoked = 1 WHERE hash = ?1"));

	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_blob(st, 1, j->hash, STORE_SESSION_HASH, SQLITE_STATIC);
	return sq_step_write(tx->c, st, "session revoke");
}

enum cw_err
store_session_revoke(struct store *s,
		     const unsigned char hash[STORE_SESSION_HASH])
{
	struct session_job j = {.hash = hash};

	return store_write(s, session_revoke_fn, &j);
}
