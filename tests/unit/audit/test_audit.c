/* tests/unit/audit/test_audit.c: the audit trail, store and queue.
 *
 * The chain: records appended through store_write chain from 32 zero bytes
 * (checked against BLAKE2b computed here), verify says intact; altering one
 * row's json with raw sqlite3 (the triggers dropped first, as someone with
 * the file would) names that seq; deleting one names the gap. A rolled-back
 * job leaves no record and no link. The queue: records reach the table
 * after audit_flush, patients are listed newest first, and with the bound
 * reached a non-waiting queue call is CW_EBUSY and queues nothing. What the
 * JSON says: codes, agent, entity, patient role, parameter names only. */
#include <sqlite3.h>
#include <sodium.h>
#include <unistd.h>

#include "unit.h"

#include "audit/audit.h"
#include "store/store.h"

struct fx {
	char dir[64];
	char path[128];
	struct store *s;
	struct arena *a;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct diag d;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/cw-audit-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/test.db", f->dir);
	f->a = arena_new(0);
	diag_init(&d, f->a);
	f->s = store_open(f->path, NULL, &d);
	assert_non_null(f->s);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char p[160];

	if (f->s)
		store_close(f->s);
	unlink(f->path);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	rmdir(f->dir);
	arena_free(f->a);
	free(f);
	return 0;
}

static void
exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK)
		fprintf(stderr, "sqlite: %s\n", msg ? msg : "?");
	sqlite3_free(msg);
	assert_int_equal(rc, SQLITE_OK);
}

static const char *const pats[] = {"p1", "p2"};

static struct audit_event
read_event(const char *type, const char *id)
{
	static struct audit_entity what;

	what = (struct audit_entity){.type = type, .id = id};
	return (struct audit_event){
		.kind = AUDIT_REST, .interaction = "read", .action = 'R',
		.status = 200, .user = "ann", .role = "nurse",
		.link = "Practitioner/pr1", .remote = "127.0.0.1",
		.what = &what, .nwhat = 1, .patients = pats, .npatients = 1};
}

struct add_job {
	struct arena *a;
	int n;
	bool fail;
};

static enum cw_err
add_fn(struct store_tx *tx, void *ctx)
{
	struct add_job *j = ctx;
	enum cw_err err;

	for (int i = 0; i < j->n; i++) {
		struct audit_event ev = read_event("Observation", "o1");

		if ((err = audit_tx_write(tx, j->a, &ev)))
			return err;
	}
	return j->fail ? CW_ECONFLICT : CW_OK;
}

static void
add(struct fx *f, int n)
{
	struct add_job j = {f->a, n, false};

	assert_int_equal(store_write(f->s, add_fn, &j), CW_OK);
}

static struct store_audit_check
verify(struct fx *f)
{
	struct store_audit_check ck;

	assert_int_equal(store_audit_verify(f->s, &ck), CW_OK);
	return ck;
}

static sqlite3 *
raw_db(struct fx *f)
{
	sqlite3 *db;

	store_close(f->s);
	f->s = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	return db;
}

static void
reopen(struct fx *f)
{
	struct diag d;

	diag_init(&d, f->a);
	f->s = store_open(f->path, NULL, &d);
	assert_non_null(f->s);
}

static void
chain_is_blake2b_from_zeros(void **state)
{
	struct fx *f = *state;
	unsigned char prev[32] = {0}, h[32];
	crypto_generichash_state st;
	sqlite3 *db;
	sqlite3_stmt *q;
	int rows = 0;

	add(f, 3);
	add(f, 2);
	assert_int_equal(verify(f).records, 5);
	assert_int_equal(verify(f).bad_seq, 0);
	db = raw_db(f);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT seq, json, hash FROM audit"
					    " ORDER BY seq", -1, &q, NULL), SQLITE_OK);
	while (sqlite3_step(q) == SQLITE_ROW) {
		assert_int_equal(sqlite3_column_int64(q, 0), ++rows);
		crypto_generichash_init(&st, NULL, 0, 32);
		crypto_generichash_update(&st, prev, 32);
		crypto_generichash_update(&st, sqlite3_column_blob(q, 1),
					  (size_t)sqlite3_column_bytes(q, 1));
		crypto_generichash_final(&st, h, 32);
		assert_int_equal(sqlite3_column_bytes(q, 2), 32);
		assert_memory_equal(h, sqlite3_column_blob(q, 2), 32);
		memcpy(prev, h, 32);
	}
	sqlite3_finalize(q);
	/* the schema refuses changes to a record */
	assert_int_not_equal(sqlite3_exec(db, "UPDATE audit SET at = 0", NULL, NULL,
					  NULL), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit", NULL, NULL, NULL),
			     SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(rows, 5);
	reopen(f);
}

static void
rollback_leaves_no_link(void **state)
{
	struct fx *f = *state;
	struct add_job j = {f->a, 2, true};

	add(f, 1);
	assert_int_equal(store_write(f->s, add_fn, &j), CW_ECONFLICT);
	add(f, 1);
	assert_int_equal(verify(f).records, 2);
	assert_int_equal(verify(f).bad_seq, 0);
}

static void
verify_names_altered_record(void **state)
{
	struct fx *f = *state;
	struct store_audit_check ck;
	sqlite3 *db;

	add(f, 5);
	db = raw_db(f);
	exec_ok(db, "DROP TRIGGER audit_no_update;"
		    " UPDATE audit SET json = replace(json, '\"ann\"', '\"bob\"')"
		    " WHERE seq = 3");
	sqlite3_close(db);
	reopen(f);
	ck = verify(f);
	assert_int_equal(ck.bad_seq, 3);
	assert_false(ck.missing);
}

static void
verify_names_gap(void **state)
{
	struct fx *f = *state;
	struct store_audit_check ck;
	sqlite3 *db;

	add(f, 5);
	db = raw_db(f);
	exec_ok(db, "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = 2");
	sqlite3_close(db);
	reopen(f);
	ck = verify(f);
	assert_int_equal(ck.bad_seq, 2);
	assert_true(ck.missing);

	/* the first record removed is a gap too */
	db = raw_db(f);
	exec_ok(db, "DELETE FROM audit WHERE seq = 1");
	sqlite3_close(db);
	reopen(f);
	ck = verify(f);
	assert_int_equal(ck.bad_seq, 1);
	assert_true(ck.missing);
}

static void
json_says_ids_and_codes(void **state)
{
	struct fx *f = *state;
	struct audit_entity what = {.type = "Patient", .params = "name,_count"};
	struct audit_event ev = {.kind = AUDIT_REST, .interaction = "search-type",
				 .action = 'R', .status = 422, .user = "ann",
				 .role = "nurse", .remote = "10.0.0.9",
				 .what = &what, .nwhat = 1, .patients = pats,
				 .npatients = 2};
	struct store_audit r;
	json_error_t je;
	json_t *v, *e;

	assert_int_equal(audit_build(f->a, &ev, &r), CW_OK);
	v = json_loadb(r.json.p, r.json.n, 0, &je);
	assert_non_null(v);
	assert_string_equal(json_string_value(json_object_get(v, "resourceType")),
			    "AuditEvent");
	assert_string_equal(json_string_value(json_object_get(v, "id")), r.id);
	assert_string_equal(json_string_value(json_object_get(v, "outcome")), "4");
	assert_string_equal(json_string_value(json_object_get(v, "action")), "R");
	assert_string_equal(json_string_value(json_object_get(
		json_array_get(json_object_get(v, "subtype"), 0), "code")), "search-type");
	e = json_array_get(json_object_get(v, "agent"), 0);
	assert_string_equal(json_string_value(json_object_get(
		json_object_get(json_object_get(e, "who"), "identifier"), "value")), "ann");
	assert_string_equal(json_string_value(json_object_get(
		json_object_get(e, "network"), "address")), "10.0.0.9");
	assert_true(json_is_true(json_object_get(e, "requestor")));
	e = json_object_get(v, "entity");
	assert_int_equal(json_array_size(e), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(
		json_object_get(json_array_get(e, 0), "detail"), 0), "valueString")),
		"name,_count");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
		json_array_get(e, 2), "what"), "reference")), "Patient/p2");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
		json_array_get(e, 2), "role"), "code")), "1");
	json_decref(v);
	assert_string_equal(audit_outcome(201), "0");
	assert_string_equal(audit_outcome(503), "8");
}

static void
queue_flushes_and_lists(void **state)
{
	struct fx *f = *state;
	struct audit *au = audit_new(f->s, NULL);
	struct store_audit *v, one;
	size_t n;

	assert_non_null(au);
	for (int i = 0; i < 10; i++) {
		struct audit_event ev = read_event("Patient", "p1");

		assert_int_equal(audit_queue(au, f->a, &ev, false), CW_OK);
	}
	audit_flush(au);
	assert_int_equal(audit_pending(au), 0);
	assert_int_equal(store_audit_list(f->s, f->a, "p1", 0, 0, 100, &v, &n), CW_OK);
	assert_int_equal(n, 10);
	assert_true(v[0].seq > v[9].seq); /* newest first */
	assert_int_equal(store_audit_list(f->s, f->a, "p1", v[4].seq, 0, 100, &v, &n),
			 CW_OK);
	assert_int_equal(n, 5);
	assert_int_equal(store_audit_list(f->s, f->a, "p2", 0, 0, 100, &v, &n), CW_OK);
	assert_int_equal(n, 0);
	assert_int_equal(store_audit_list(f->s, f->a, "p1", 0, 0, 1, &v, &n), CW_OK);
	assert_int_equal(store_audit_get(f->s, f->a, v[0].id, &one), CW_OK);
	assert_int_equal(one.seq, v[0].seq);
	assert_int_equal(store_audit_get(f->s, f->a, "nope", &one), CW_ENOTFOUND);
	/* and the flusher runs by itself within its interval */
	{
		struct audit_event ev = read_event("Patient", "p1");

		assert_int_equal(audit_queue(au, f->a, &ev, false), CW_OK);
	}
	for (int i = 0; i < 200 && audit_pending(au); i++)
		usleep(10 * 1000);
	assert_int_equal(audit_pending(au), 0);
	audit_free(au);
	assert_int_equal(verify(f).records, 11);
	assert_int_equal(verify(f).bad_seq, 0);
}

static void
queue_is_bounded(void **state)
{
	struct fx *f = *state;
	/* a flusher that waits a minute unless asked (flush_at above the
	 * bound never triggers): the queue fills */
	struct audit_options o = {.queue_max = 4, .flush_ms = 60000, .flush_at = 8};
	struct audit *au = audit_new(f->s, &o);
	struct audit_event ev = read_event("Patient", "p1");
	int ok = 0;

	assert_non_null(au);
	for (int i = 0; i < 6; i++)
		ok += audit_queue(au, f->a, &ev, false) == CW_OK;
	assert_int_equal(ok, 4);
	assert_int_equal(audit_pending(au), 4);
	assert_int_equal(audit_queue(au, f->a, &ev, false), CW_EBUSY);
	audit_flush(au);
	assert_int_equal(audit_pending(au), 0);
	assert_int_equal(audit_queue(au, f->a, &ev, false), CW_OK);
	audit_free(au); /* flushes the last one */
	assert_int_equal(verify(f).records, 5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(chain_is_blake2b_from_zeros, setup, teardown),
		cmocka_unit_test_setup_teardown(rollback_leaves_no_link, setup, teardown),
		cmocka_unit_test_setup_teardown(verify_names_altered_record, setup, teardown),
		cmocka_unit_test_setup_teardown(verify_names_gap, setup, teardown),
		cmocka_unit_test_setup_teardown(json_says_ids_and_codes, setup, teardown),
		cmocka_unit_test_setup_teardown(queue_flushes_and_lists, setup, teardown),
		cmocka_unit_test_setup_teardown(queue_is_bounded, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
