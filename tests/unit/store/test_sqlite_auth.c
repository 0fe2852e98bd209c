/* tests/unit/store/test_sqlite_auth.c: access/'s tables: users, sessions
 * and break-the-glass grants (sqlite_auth.c, sqlite_glass.c; they share
 * this fixture).
 *
 * Schema migration 3 upgrading a version-2 database in place (made by
 * dropping the new tables from a fresh one and setting schema_version
 * back to 2, which is what a database written before this change holds),
 * with its resources kept; then the store_user_* and store_session_*
 * calls: a taken username, disable revoking sessions, a new password
 * clearing the lock and revoking, a sign-in clearing failures and sweeping
 * sessions past their absolute end. Migration 4 (the TOTP columns) over a
 * version-3 database, and a TOTP step taken once; a grant live only
 * between granted and expires, per user and patient. */
#include <sqlite3.h>
#include <unistd.h>

#include "unit.h"

#include "fhir/fhir.h"
#include "store/store.h"

struct fx {
	char dir[64];
	char path[128];
	struct store *s;
	struct arena *a;
};

static struct store *
open_store(struct fx *f)
{
	struct diag d;

	diag_init(&d, f->a);
	return store_open(f->path, NULL, &d);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/cw-sqauth-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/test.db", f->dir);
	f->a = arena_new(0);
	f->s = open_store(f);
	assert_non_null(f->s);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	if (f->s)
		store_close(f->s);
	unit_rm_dir(f->dir); /* the db, its -wal and -shm */
	arena_free(f->a);
	free(f);
	return 0;
}

static enum cw_err
put_fn(struct store_tx *tx, void *arg)
{
	struct arena *a = arg;
	json_t *r = json_loads("{\"resourceType\":\"Practitioner\",\"id\":\"p1\"}", 0, NULL);
	struct store_put p = {.res = r, .rt = fhir_restype_find("Practitioner")};
	struct store_res out;
	bool created;
	enum cw_err err = store_tx_put(tx, a, &p, &out, &created);

	json_decref(r);
	return err;
}

static void
exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
}

static void
test_migrates_v1(void **state)
{
	struct fx *f = *state;
	struct store_user u = {.username = "ann", .role = "admin", .hash = "$x"};
	struct store_res res;
	sqlite3 *db;
	int v = 0;

	assert_int_equal(store_write(f->s, put_fn, f->a), CW_OK);
	store_close(f->s);
	f->s = NULL;
	/* back to what a version-2 database holds */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	exec_ok(db, "DROP TABLE sessions; DROP TABLE users; DROP TABLE glass_grants;"
		    " DROP TABLE audit; DROP TABLE audit_patient; DROP TABLE facts; DROP TABLE hl7_messages;"
		    " DROP TABLE notify_owner; DROP TABLE notify_queue;"
		    " UPDATE schema_version SET version = 2");
	sqlite3_close(db);

	f->s = open_store(f);
	assert_non_null(f->s);
	assert_int_equal(store_read(f->s, f->a, "Practitioner", "p1", &res), CW_OK);
	assert_int_equal(store_user_add(f->s, &u), CW_OK);
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	{
		sqlite3_stmt *st;

		assert_int_equal(sqlite3_prepare_v2(db, "SELECT version FROM schema_version",
						    -1, &st, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		v = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	assert_int_equal(v, 11); /* the newest migration (11: rows_of parameters keep no rows) */
	/* and a third open changes nothing */
	f->s = open_store(f);
	assert_non_null(f->s);
}

static void
test_users(void **state)
{
	struct fx *f = *state;
	struct store_user a = {.username = "ann", .role = "admin", .hash = "$h1"};
	struct store_user b = {.username = "bob", .role = "nurse",
			       .link = "Practitioner/p1", .hash = "$h2"};
	struct store_user got, *list;
	size_t n;

	assert_int_equal(store_user_add(f->s, &b), CW_OK);
	assert_int_equal(store_user_add(f->s, &a), CW_OK);
	assert_int_equal(store_user_add(f->s, &a), CW_ECONFLICT);
	assert_int_equal(store_user_get(f->s, f->a, "nobody", &got), CW_ENOTFOUND);
	assert_int_equal(store_user_get(f->s, f->a, "bob", &got), CW_OK);
	assert_string_equal(got.role, "nurse");
	assert_string_equal(got.link, "Practitioner/p1");
	assert_string_equal(got.hash, "$h2");
	assert_false(got.disabled);
	assert_int_equal(store_user_list(f->s, f->a, &list, &n), CW_OK);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].username, "ann");
	assert_null(list[0].link);
	assert_string_equal(list[1].username, "bob");

	assert_int_equal(store_user_set_failures(f->s, got.uid, 3, 2, 12345), CW_OK);
	assert_int_equal(store_user_get(f->s, f->a, "bob", &got), CW_OK);
	assert_int_equal(got.failed, 3);
	assert_int_equal(got.lockouts, 2);
	assert_int_equal(got.locked_until, 12345);
	assert_int_equal(store_user_set_hash(f->s, "bob", "$h3"), CW_OK);
	assert_int_equal(store_user_get(f->s, f->a, "bob", &got), CW_OK);
	assert_string_equal(got.hash, "$h3");
	assert_int_equal(got.failed + got.lockouts + (int)got.locked_until, 0);
	assert_int_equal(store_user_set_hash(f->s, "nobody", "$h"), CW_ENOTFOUND);
	assert_int_equal(store_user_set_disabled(f->s, "nobody", true), CW_ENOTFOUND);
}

static void
test_sessions(void **state)
{
	struct fx *f = *state;
	struct store_user u = {.username = "cat", .role = "admin", .hash = "$h"};
	struct store_session s1 = {0}, s2 = {0}, old = {0}, got;
	struct store_user cu;

	assert_int_equal(store_user_add(f->s, &u), CW_OK);
	assert_int_equal(store_user_get(f->s, f->a, "cat", &cu), CW_OK);
	assert_int_equal(store_user_set_failures(f->s, cu.uid, 4, 1, 0), CW_OK);
	memset(old.hash, 7, sizeof(old.hash));
	old.uid = cu.uid;
	old.created = old.last_seen = 100;
	old.expires = 200;
	assert_int_equal(store_session_add(f->s, &old, 150), CW_OK);
	memset(s1.hash, 1, sizeof(s1.hash));
	s1.uid = cu.uid;
	s1.created = s1.last_seen = 1000;
	s1.expires = 5000;
	/* adding at 1000 sweeps the session that ended at 200 */
	assert_int_equal(store_session_add(f->s, &s1, 1000), CW_OK);
	assert_int_equal(store_session_get(f->s, f->a, old.hash, &got), CW_ENOTFOUND);
	assert_int_equal(store_session_get(f->s, f->a, s1.hash, &got), CW_OK);
	assert_int_equal(got.expires, 5000);
	assert_false(got.revoked);
	assert_string_equal(got.user.username, "cat");
	assert_int_equal(got.user.failed, 0); /* a sign-in clears failures */
	assert_int_equal(got.user.lockouts, 0);

	assert_int_equal(store_session_touch(f->s, s1.hash, 2000), CW_OK);
	assert_int_equal(store_session_touch(f->s, s1.hash, 1500), CW_OK);
	assert_int_equal(store_session_get(f->s, f->a, s1.hash, &got), CW_OK);
	assert_int_equal(got.last_seen, 2000); /* never goes back */

	memset(s2.hash, 2, sizeof(s2.hash));
	s2.uid = cu.uid;
	s2.created = s2.last_seen = 1000;
	s2.expires = 5000;
	assert_int_equal(store_session_add(f->s, &s2, 1000), CW_OK);
	assert_int_equal(store_session_revoke(f->s, s1.hash), CW_OK);
	assert_int_equal(store_session_get(f->s, f->a, s1.hash, &got), CW_OK);
	assert_true(got.revoked);
	assert_int_equal(store_session_get(f->s, f->a, s2.hash, &got), CW_OK);
	assert_false(got.revoked);
	/* disabling revokes every session of the user */
	assert_int_equal(store_user_set_disabled(f->s, "cat", true), CW_OK);
	assert_int_equal(store_session_get(f->s, f->a, s2.hash, &got), CW_OK);
	assert_true(got.revoked);
	assert_true(got.user.disabled);
}

static void
test_totp(void **state)
{
	struct fx *f = *state;
	struct store_user u = {.username = "dan", .role = "admin", .hash = "$h"};
	unsigned char key[STORE_TOTP_KEY];
	struct store_session ss = {0}, got;
	struct store_user cu;
	sqlite3 *db;

	assert_int_equal(store_user_add(f->s, &u), CW_OK);
	store_close(f->s);
	f->s = NULL;
	/* back to what a version-3 database holds: users without the columns */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	exec_ok(db, "ALTER TABLE users DROP COLUMN totp_step;"
		    " ALTER TABLE users DROP COLUMN totp; DROP TABLE glass_grants;"
		    " DROP TABLE audit; DROP TABLE audit_patient; DROP TABLE facts; DROP TABLE hl7_messages;"
		    " DROP TABLE notify_owner; DROP TABLE notify_queue;"
		    " UPDATE schema_version SET version = 3");
	sqlite3_close(db);
	f->s = open_store(f);
	assert_non_null(f->s);
	assert_int_equal(store_user_get(f->s, f->a, "dan", &cu), CW_OK);
	assert_null(cu.totp);
	assert_int_equal(cu.totp_step, 0);

	memset(key, 0x5a, sizeof(key));
	assert_int_equal(store_user_set_totp(f->s, "dan", key), CW_OK);
	assert_int_equal(store_user_set_totp(f->s, "nobody", key), CW_ENOTFOUND);
	assert_int_equal(store_user_get(f->s, f->a, "dan", &cu), CW_OK);
	assert_non_null(cu.totp);
	assert_memory_equal(cu.totp, key, sizeof(key));
	/* a sign-in takes its step once */
	memset(ss.hash, 3, sizeof(ss.hash));
	ss.uid = cu.uid;
	ss.created = ss.last_seen = 1000;
	ss.expires = 5000;
	ss.totp_step = 40;
	assert_int_equal(store_session_add(f->s, &ss, 1000), CW_OK);
	ss.hash[0] = 4;
	assert_int_equal(store_session_add(f->s, &ss, 1000), CW_ECONFLICT);
	assert_int_equal(store_session_get(f->s, f->a, ss.hash, &got), CW_ENOTFOUND);
	ss.totp_step = 39;
	assert_int_equal(store_session_add(f->s, &ss, 1000), CW_ECONFLICT);
	ss.totp_step = 41;
	assert_int_equal(store_session_add(f->s, &ss, 1000), CW_OK);
	assert_int_equal(store_session_get(f->s, f->a, ss.hash, &got), CW_OK);
	assert_int_equal(got.user.totp_step, 41);
	/* a new secret (or none) forgets the step and ends the sessions */
	assert_int_equal(store_user_set_totp(f->s, "dan", NULL), CW_OK);
	assert_int_equal(store_session_get(f->s, f->a, ss.hash, &got), CW_OK);
	assert_true(got.revoked);
	assert_null(got.user.totp);
	assert_int_equal(got.user.totp_step, 0);
}

static enum cw_err
glass_fn(struct store_tx *tx, void *arg)
{
	struct store_glass *g = arg;
	enum cw_err err = CW_OK;

	for (; !err && g->patient_id; g++)
		err = store_tx_glass_add(tx, g);
	return err;
}

struct glass_end_job {
	int64_t gid, now, by;
};

static enum cw_err
glass_end_fn(struct store_tx *tx, void *arg)
{
	struct glass_end_job *j = arg;

	return store_tx_glass_end(tx, j->gid, j->now, j->by);
}

#define GRANT(u, p, r, from, to) \
	{.uid = (u), .patient_id = (p), .reason = (r), .granted = (from), .expires = (to)}

static void
test_glass(void **state)
{
	struct fx *f = *state;
	struct store_glass g[] = {
		GRANT(7, "p1", "unconscious in the ED", 1000, 5000),
		GRANT(7, "p1", "again, a later grant", 4000, 9000),
		GRANT(7, "p2", "another patient", 6000, 7000),
		GRANT(8, "p3", "another user", 1000, 9000),
		{0},
	};
	struct store_glass_filter lf = {0};
	struct glass_end_job ej;
	struct store_glass *l;
	const char **ids;
	size_t n;

	assert_int_equal(store_write(f->s, glass_fn, g), CW_OK);
	assert_true(g[0].gid > 0 && g[1].gid == g[0].gid + 1); /* ids are set */
	assert_int_equal(store_glass_live(f->s, f->a, 7, 999, &ids, &n), CW_OK);
	assert_int_equal(n, 0); /* not yet */
	assert_int_equal(store_glass_live(f->s, f->a, 7, 4500, &ids, &n), CW_OK);
	assert_int_equal(n, 1); /* two grants, one patient */
	assert_string_equal(ids[0], "p1");
	assert_int_equal(store_glass_live(f->s, f->a, 7, 6500, &ids, &n), CW_OK);
	assert_int_equal(n, 2);
	assert_int_equal(store_glass_live(f->s, f->a, 7, 9000, &ids, &n), CW_OK);
	assert_int_equal(n, 0); /* expires is the first moment it is over */
	assert_int_equal(store_glass_live(f->s, f->a, 9, 4500, &ids, &n), CW_OK);
	assert_int_equal(n, 0);

	/* the list: newest first, filtered by patient and liveness */
	assert_int_equal(store_glass_list(f->s, f->a, &lf, &l, &n), CW_OK);
	assert_int_equal(n, 4);
	assert_int_equal(l[0].gid, g[3].gid);
	lf = (struct store_glass_filter){.patient_id = "p1", .live_only = true, .now = 4500};
	assert_int_equal(store_glass_list(f->s, f->a, &lf, &l, &n), CW_OK);
	assert_int_equal(n, 2);

	/* an early end: only of a live grant, once */
	ej = (struct glass_end_job){g[1].gid, 4500, 8};
	assert_int_equal(store_write(f->s, glass_end_fn, &ej), CW_OK);
	assert_int_equal(store_write(f->s, glass_end_fn, &ej), CW_ENOTFOUND);
	ej = (struct glass_end_job){g[2].gid, 7000, 8}; /* expired */
	assert_int_equal(store_write(f->s, glass_end_fn, &ej), CW_ENOTFOUND);
	ej = (struct glass_end_job){999, 4500, 8}; /* no such grant */
	assert_int_equal(store_write(f->s, glass_end_fn, &ej), CW_ENOTFOUND);
	/* p1 is still reached through the first grant, not the ended one */
	assert_int_equal(store_glass_live(f->s, f->a, 7, 4500, &ids, &n), CW_OK);
	assert_int_equal(n, 1);
	assert_int_equal(store_glass_live(f->s, f->a, 7, 6500, &ids, &n), CW_OK);
	assert_int_equal(n, 1); /* p2 only: the later p1 grant is ended */
	assert_string_equal(ids[0], "p2");
	lf = (struct store_glass_filter){.gid = g[1].gid};
	assert_int_equal(store_glass_list(f->s, f->a, &lf, &l, &n), CW_OK);
	assert_int_equal(n, 1);
	assert_int_equal(l[0].ended, 4500);
	assert_int_equal(l[0].ended_by, 8);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_migrates_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_users, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_totp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_glass, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
