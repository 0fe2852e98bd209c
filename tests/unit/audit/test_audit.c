/* tests/unit/audit/test_audit.c: the audit trail, store and queue.
 *
 * The chain: records appended through store_write chain from 32 zero bytes
 * (checked against BLAKE2b of the column encoding computed here, so the
 * encoding is pinned), verify says intact; altering one row's column with
 * raw sqlite3 (the triggers dropped first, as someone with the file would)
 * names that seq, whichever column it is; deleting one names the gap. A
 * rolled-back job leaves no record and no link. The queue: records reach
 * the table after audit_flush, patients are listed newest first, and with
 * the bound reached a non-waiting queue call is CW_EBUSY and queues
 * nothing; a patient's list crosses the patient index's chunks in order. What the rendered JSON says: codes, agent, entity, patient
 * role, parameter names only, the same from a packed record as from the
 * stored one. */
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

	if (f->s)
		store_close(f->s);
	unit_rm_dir(f->dir); /* the db, its -wal and -shm */
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

/* n read records in one job; every `both`th (if set) names p1 and p2. */
struct add_job {
	struct arena *a;
	int n;
	bool fail;
	int both;
};

static enum cw_err
add_fn(struct store_tx *tx, void *ctx)
{
	static const char *const p12[] = {"p1", "p2"};
	struct add_job *j = ctx;
	enum cw_err err;

	for (int i = 1; i <= j->n; i++) {
		struct audit_event ev = read_event("Observation", "o1");

		if (j->both && i % j->both == 0) {
			ev.patients = p12;
			ev.npatients = 2;
		}
		if ((err = audit_tx_write(tx, j->a, &ev)))
			return err;
	}
	return j->fail ? CW_ECONFLICT : CW_OK;
}

static void
add(struct fx *f, int n)
{
	struct add_job j = {f->a, n, false, 0};

	assert_int_equal(store_write(f->s, add_fn, &j), CW_OK);
}

static struct store_audit_check
verify(struct fx *f)
{
	struct store_audit_check ck;

	assert_int_equal(store_audit_verify(f->s, &ck), CW_OK);
	return ck;
}

/* The chain verifies, over this many records. */
static void
intact(struct fx *f, int64_t records)
{
	struct store_audit_check ck = verify(f);

	assert_int_equal(ck.records, records);
	assert_int_equal(ck.bad_seq, 0);
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

/* One read record with a purpose (BTG: made through a grant). */
static enum cw_err
add_btg_fn(struct store_tx *tx, void *ctx)
{
	struct audit_event ev = read_event("Observation", "o1");

	ev.purpose = AUDIT_PURPOSE_BTG;
	return audit_tx_write(tx, ctx, &ev);
}

/* The canonical encoding, written again here from the README's words:
 * a version byte 1, five integers as 8-byte big-endian, eight strings as a
 * 4-byte big-endian length and the bytes (NULL: length 0xffffffff); a row
 * with a purpose (column 14 here) has the version byte 2 and the purpose
 * as one more 8-byte integer at the end. */
static void
hash_row(sqlite3_stmt *q, const unsigned char prev[32], unsigned char out[32])
{
	crypto_generichash_state st;
	int64_t purpose = sqlite3_column_int64(q, 14);
	unsigned char b[8], v = purpose ? 2 : 1;

	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, prev, 32);
	crypto_generichash_update(&st, &v, 1);
	for (int c = 0; c < 5; c++) {
		uint64_t x = (uint64_t)sqlite3_column_int64(q, c);

		for (int i = 0; i < 8; i++)
			b[i] = (unsigned char)(x >> (56 - 8 * i));
		crypto_generichash_update(&st, b, 8);
	}
	for (int c = 5; c < 13; c++) {
		bool null = sqlite3_column_type(q, c) == SQLITE_NULL;
		uint32_t n = null ? UINT32_MAX : (uint32_t)sqlite3_column_bytes(q, c);

		for (int i = 0; i < 4; i++)
			b[i] = (unsigned char)(n >> (24 - 8 * i));
		crypto_generichash_update(&st, b, 4);
		if (!null)
			crypto_generichash_update(&st, sqlite3_column_text(q, c),
						  sqlite3_column_bytes(q, c));
	}
	if (purpose) {
		for (int i = 0; i < 8; i++)
			b[i] = (unsigned char)((uint64_t)purpose >> (56 - 8 * i));
		crypto_generichash_update(&st, b, 8);
	}
	crypto_generichash_final(&st, out, 32);
}

static void
chain_is_blake2b_from_zeros(void **state)
{
	struct fx *f = *state;
	unsigned char prev[32] = {0}, h[32];
	sqlite3 *db;
	sqlite3_stmt *q;
	int rows = 0, btg = 0;

	add(f, 3);
	assert_int_equal(store_write(f->s, add_btg_fn, f->a), CW_OK);
	add(f, 2);
	intact(f, 6);
	db = raw_db(f);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT seq, at, subtype, action,"
					    " status, user, role, link, remote, entity,"
					    " params, patients, detail, hash, purpose FROM audit"
					    " ORDER BY seq", -1, &q, NULL), SQLITE_OK);
	while (sqlite3_step(q) == SQLITE_ROW) {
		assert_int_equal(sqlite3_column_int64(q, 0), ++rows);
		assert_string_equal((const char *)sqlite3_column_text(q, 9),
				    "Observation/o1");
		assert_int_equal(sqlite3_column_type(q, 12), SQLITE_NULL);
		btg += sqlite3_column_int(q, 14) == AUDIT_PURPOSE_BTG;
		hash_row(q, prev, h);
		assert_int_equal(sqlite3_column_bytes(q, 13), 32);
		assert_memory_equal(h, sqlite3_column_blob(q, 13), 32);
		memcpy(prev, h, 32);
	}
	sqlite3_finalize(q);
	/* the schema refuses changes to a record */
	assert_int_not_equal(sqlite3_exec(db, "UPDATE audit SET at = 0", NULL, NULL,
					  NULL), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(db, "DELETE FROM audit", NULL, NULL, NULL),
			     SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(rows, 6);
	assert_int_equal(btg, 1);
	reopen(f);
}

static void
rollback_leaves_no_link(void **state)
{
	struct fx *f = *state;
	struct add_job j = {f->a, 2, true, 0};

	add(f, 1);
	assert_int_equal(store_write(f->s, add_fn, &j), CW_ECONFLICT);
	add(f, 1);
	intact(f, 2);
}

static void
verify_names_altered_record(void **state)
{
	struct fx *f = *state;
	/* every column is in the hash: each change is found at its row */
	static const char *const changes[] = {
		"at = at + 1", "subtype = 2", "action = 67", "status = 500",
		"user = 'bob'", "role = NULL", "link = 'Practitioner/pr2'",
		"remote = '10.9.9.9'", "entity = 'Observation/o2'",
		"params = ''", "patients = 'p1 p2'", "detail = 'x'",
		"user = CAST('ann' AS BLOB)", "purpose = 1",
	};
	struct store_audit_check ck;
	char sql[200];
	sqlite3 *db;

	add(f, 5);
	db = raw_db(f);
	exec_ok(db, "DROP TRIGGER audit_no_update");
	exec_ok(db, "UPDATE audit SET user = 'bob' WHERE seq = 3");
	sqlite3_close(db);
	reopen(f);
	ck = verify(f);
	assert_int_equal(ck.bad_seq, 3);
	assert_false(ck.missing);
	for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
		db = raw_db(f);
		/* seq 3 stays altered; change seq 2 and put it back */
		exec_ok(db, "CREATE TABLE keep AS SELECT * FROM audit WHERE seq = 2");
		snprintf(sql, sizeof(sql), "UPDATE audit SET %s WHERE seq = 2", changes[i]);
		exec_ok(db, sql);
		sqlite3_close(db);
		reopen(f);
		ck = verify(f);
		if (ck.bad_seq != 2)
			fprintf(stderr, "not found: %s\n", changes[i]);
		assert_int_equal(ck.bad_seq, 2);
		db = raw_db(f);
		exec_ok(db, "DROP TRIGGER IF EXISTS audit_no_delete;"
			    " DELETE FROM audit WHERE seq = 2;"
			    " INSERT INTO audit SELECT * FROM keep; DROP TABLE keep");
		sqlite3_close(db);
		reopen(f);
		assert_int_equal(verify(f).bad_seq, 3);
	}
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

static json_t *
rendered(const struct store_audit *r)
{
	struct sbuf sb = SBUF_INIT(1 << 20);
	json_error_t je;
	json_t *v;

	audit_render(&sb, r);
	v = json_loadb(sb.buf, sb.len, 0, &je);
	assert_non_null(v);
	sbuf_release(&sb);
	return v;
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
	struct store_audit *r;
	json_t *v, *e;

	assert_int_equal(audit_pack(f->a, &ev, &r), CW_OK);
	assert_string_equal(r->entity, "Patient");
	assert_string_equal(r->patients, "p1 p2");
	assert_int_equal(r->subtype, AUDIT_SUB_SEARCH_TYPE);
	r->seq = 7;
	v = rendered(r);
	assert_string_equal(json_string_value(json_object_get(v, "resourceType")),
			    "AuditEvent");
	assert_string_equal(json_string_value(json_object_get(v, "id")), "7");
	assert_string_equal(json_string_value(json_object_get(v, "outcome")), "4");
	assert_string_equal(json_string_value(json_object_get(v, "outcomeDesc")),
			    "HTTP 422");
	assert_string_equal(json_string_value(json_object_get(v, "action")), "R");
	assert_string_equal(json_string_value(json_object_get(
		json_array_get(json_object_get(v, "subtype"), 0), "code")), "search-type");
	assert_null(json_object_get(v, "purposeOfEvent"));
	e = json_array_get(json_object_get(v, "agent"), 0);
	assert_string_equal(json_string_value(json_object_get(
		json_object_get(json_object_get(e, "who"), "identifier"), "value")), "ann");
	assert_string_equal(json_string_value(json_object_get(
		json_object_get(e, "network"), "address")), "10.0.0.9");
	assert_true(json_is_true(json_object_get(e, "requestor")));
	e = json_object_get(v, "entity");
	assert_int_equal(json_array_size(e), 3);
	assert_string_equal(json_string_value(json_object_get(json_object_get(
		json_array_get(e, 0), "what"), "type")), "Patient");
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

/* What is stored renders as what was packed; a sign-in, an operator tool
 * and a reason render as before. */
struct put_job {
	struct store_audit *r;
	size_t n;
};

static enum cw_err
put_fn(struct store_tx *tx, void *ctx)
{
	struct put_job *j = ctx;

	return store_tx_audit_append(tx, j->r, j->n);
}

static void
stored_renders_as_packed(void **state)
{
	struct fx *f = *state;
	struct audit_entity what[3] = {{.type = "Observation", .id = "o1"},
				       {.type = "Condition", .id = "c1"},
				       {.type = NULL, .id = "x"}};
	struct audit_event evs[3] = {
		{.kind = AUDIT_REST, .interaction = "transaction", .action = 'E',
		 .status = 200, .local = true, .what = what, .nwhat = 3,
		 .patients = pats, .npatients = 2, .at = 1700000000123},
		{.kind = AUDIT_LOGIN, .status = 401, .remote = "::1",
		 .at = 1700000000124},
		{.kind = AUDIT_REST, .interaction = "read", .action = 'R',
		 .status = 200, .user = "ann", .role = "physician",
		 .link = "Practitioner/pr1", .detail = "emergency: \"unconscious\"",
		 .what = what, .nwhat = 1, .at = 1700000000125},
	};
	struct store_audit recs[3], *r, got;
	struct put_job j = {recs, 3};
	char id[24];
	json_t *a, *b, *e;

	for (int i = 0; i < 3; i++) {
		assert_int_equal(audit_pack(f->a, &evs[i], &r), CW_OK);
		recs[i] = *r;
	}
	assert_string_equal(recs[0].entity, "Observation/o1 Condition/c1 Resource");
	assert_string_equal(recs[0].role, "operator");
	assert_int_equal(store_write(f->s, put_fn, &j), CW_OK);
	for (int i = 0; i < 3; i++) {
		recs[i].seq = i + 1;
		snprintf(id, sizeof(id), "%d", i + 1);
		assert_int_equal(store_audit_get(f->s, f->a, id, &got), CW_OK);
		a = rendered(&recs[i]);
		b = rendered(&got);
		assert_true(json_equal(a, b));
		json_decref(b);
		if (i == 0) {
			e = json_object_get(a, "entity");
			assert_int_equal(json_array_size(e), 5);
			assert_string_equal(json_string_value(json_object_get(json_object_get(
				json_array_get(e, 2), "what"), "type")), "Resource");
			e = json_array_get(json_object_get(a, "agent"), 0);
			e = json_array_get(json_object_get(e, "role"), 0);
			e = json_array_get(json_object_get(e, "coding"), 0);
			assert_string_equal(json_string_value(json_object_get(e, "code")),
					    "operator");
		} else if (i == 1) {
			assert_string_equal(json_string_value(json_object_get(
				json_object_get(a, "type"), "code")), "110114");
			assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(a, "subtype"), 0), "code")),
				"110122");
			assert_null(json_object_get(a, "entity"));
			assert_string_equal(json_string_value(json_object_get(a, "recorded")),
					    "2023-11-14T22:13:20.124Z");
		} else {
			assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(a, "purposeOfEvent"), 0),
				"text")), "emergency: \"unconscious\"");
		}
		json_decref(a);
	}
	assert_int_equal(store_audit_get(f->s, f->a, "01", &got), CW_ENOTFOUND);
	assert_int_equal(store_audit_get(f->s, f->a, "4", &got), CW_ENOTFOUND);
	assert_int_equal(verify(f).bad_seq, 0);
}

static void
queue_flushes_and_lists(void **state)
{
	struct fx *f = *state;
	struct audit *au = audit_new(f->s, NULL);
	struct store_audit *v, one;
	char id[24];
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
	snprintf(id, sizeof(id), "%lld", (long long)v[0].seq);
	assert_int_equal(store_audit_get(f->s, f->a, id, &one), CW_OK);
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
	intact(f, 11);
}

/* A patient's records come newest first across the index's chunks of
 * 4,096 seqs, with the keyset bound and the page size kept. */
static void
list_crosses_chunks(void **state)
{
	struct fx *f = *state;
	struct add_job j = {f->a, 9000, false, 1000};
	struct store_audit *v;
	size_t n;

	assert_int_equal(store_write(f->s, add_fn, &j), CW_OK);
	assert_int_equal(store_audit_list(f->s, f->a, "p2", 0, 0, 100, &v, &n), CW_OK);
	assert_int_equal(n, 9);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(v[i].seq, 9000 - 1000 * (int64_t)i);
	assert_int_equal(store_audit_list(f->s, f->a, "p1", 4100, 0, 10, &v, &n), CW_OK);
	assert_int_equal(n, 10);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(v[i].seq, 4099 - (int64_t)i);
	assert_int_equal(store_audit_list(f->s, f->a, "p2", 4000, 0, 2, &v, &n), CW_OK);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].seq, 3000);
	assert_int_equal(v[1].seq, 2000);
	assert_int_equal(store_audit_list(f->s, f->a, "p1", 0, 0, 9000, &v, &n), CW_OK);
	assert_int_equal(n, 9000);
	assert_int_equal(v[8999].seq, 1);
	assert_int_equal(store_audit_list(f->s, f->a, "p3", 0, 0, 10, &v, &n), CW_OK);
	assert_int_equal(n, 0);
	intact(f, 9000);
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
		cmocka_unit_test_setup_teardown(stored_renders_as_packed, setup, teardown),
		cmocka_unit_test_setup_teardown(queue_flushes_and_lists, setup, teardown),
		cmocka_unit_test_setup_teardown(list_crosses_chunks, setup, teardown),
		cmocka_unit_test_setup_teardown(queue_is_bounded, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
