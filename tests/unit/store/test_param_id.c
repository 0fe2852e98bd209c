/* tests/unit/store/test_param_id.c: the numbers that name search
 * parameters in the index tables.
 *
 * They are stored in every database, so they must never change (a few are
 * pinned here), and no two parameters of the served types may share one
 * (their index rows would mix). A database of schema 1, which named them
 * by text, is migrated at open and answers the same searches; so is one
 * of schema 10, which kept rows for patient beside subject. */
#include <sqlite3.h>
#include <unistd.h>

#include "unit.h"

#include "fhir/fhir.h"
#include "store/store_int.h"

static void
numbers_are_stable(void **state)
{
	/* FNV-1a of "Type.code", 31 bits; computed once, never to change. */
	assert_int_equal(sq_param_id("Patient", "name"), 0x66d13cf3);
	assert_true(sq_param_id("Condition", "patient") !=
		    sq_param_id("Observation", "patient"));
	assert_int_equal(sq_param_id("Condition", "patient"),
			 sq_param_id("Condition", "patient"));
}

static int
cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void
served_parameters_do_not_collide(void **state)
{
	size_t n = 0, cap = 0;
	int64_t *ids = NULL;

	for (size_t i = 0; i < fhir_restype_count(); i++) {
		const struct fhir_restype *rt = fhir_restype_at(i);

		for (size_t k = 0; k < rt->nparams; k++) {
			if (n == cap) {
				cap = cap ? cap * 2 : 256;
				ids = realloc(ids, cap * sizeof(*ids));
				assert_non_null(ids);
			}
			ids[n++] = sq_param_id(rt->name, rt->params[k].code);
		}
	}
	assert_true(n > 500);
	qsort(ids, n, sizeof(*ids), cmp_id);
	for (size_t i = 1; i < n; i++)
		if (ids[i] == ids[i - 1])
			fail_msg("two served search parameters share the number %lld",
				 (long long)ids[i]);
	free(ids);
}

static const char *const v1_docs[] = {
	"{\"resourceType\":\"Patient\",\"id\":\"m1\",\"name\":[{\"family\":\"Moss\"}],"
	"\"birthDate\":\"1951-03-02\"}",
	"{\"resourceType\":\"Patient\",\"id\":\"d1\",\"name\":[{\"family\":\"Delgado\"}]}",
	"{\"resourceType\":\"Condition\",\"id\":\"c1\",\"subject\":{\"reference\":\"Patient/m1\"},"
	"\"code\":{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"44054006\"}]}}",
};

/* What put_docs writes: n resources' JSON texts. */
struct docs {
	struct arena *a;
	const char *const *json;
	size_t n;
};

static enum cw_err
put_docs(struct store_tx *tx, void *arg)
{
	const struct docs *dd = arg;
	struct arena *a = dd->a;

	for (size_t i = 0; i < dd->n; i++) {
		json_t *r = json_loads(dd->json[i], 0, NULL);
		struct store_put p = {.res = r};
		struct store_res out;
		enum cw_err err = r ? store_tx_put(tx, a, &p, &out, NULL) : CW_EINVAL;

		json_decref(r);
		if (err)
			return err;
	}
	return CW_OK;
}

/* ids of type matching code=v. */
static const char *
ids_of_value(struct store *s, struct arena *a, const char *type, const char *code,
	     struct fhir_qvalue v)
{
	struct fhir_qparam p = {.nvalues = 1, .values = &v};
	struct fhir_query q = {.rt = fhir_restype_find(type), .nparams = 1,
			       .params = &p};
	struct store_page pg;
	struct diag d;
	char *out = arena_strdup(a, "");

	p.sp = fhir_sp_find(q.rt, code);
	assert_non_null(p.sp);
	diag_init(&d, a);
	assert_int_equal(store_search(s, a, &q, &pg, &d), CW_OK);
	for (size_t i = 0; i < pg.n; i++)
		out = arena_printf(a, "%s%s%s", out, i ? "," : "", pg.res[i].id);
	return out;
}

/* ids of type matching code=value (a string or token search). */
static const char *
ids_of(struct store *s, struct arena *a, const char *type, const char *code,
       const char *text, const char *sys, const char *tok)
{
	return ids_of_value(s, a, type, code,
			    (struct fhir_qvalue){.text = text, .system = sys, .code = tok});
}

static void
exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

/* Makes the file what schema 1 wrote: index rows named by text, no users
 * or sessions tables. */
static void
back_to_schema_1(const char *path)
{
	static const char *const tables[] = {"ix_token", "ix_string", "ix_ref",
					     "ix_date", "ix_number", "ix_quantity",
					     "ix_uri"};
	sqlite3 *db;
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	exec_ok(db, "BEGIN; CREATE TEMP TABLE names(id INTEGER PRIMARY KEY, name TEXT)");
	assert_int_equal(sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO names VALUES(?1, ?2)",
					    -1, &st, NULL), SQLITE_OK);
	for (size_t i = 0; i < fhir_restype_count(); i++) {
		const struct fhir_restype *rt = fhir_restype_at(i);

		for (size_t k = 0; k < rt->nparams; k++) {
			char name[160];

			snprintf(name, sizeof(name), "%s.%s", rt->name, rt->params[k].code);
			sqlite3_bind_int64(st, 1, sq_param_id(rt->name, rt->params[k].code));
			sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
			assert_int_equal(sqlite3_step(st), SQLITE_DONE);
			sqlite3_reset(st);
		}
	}
	sqlite3_finalize(st);
	/* A text column holds text: rewrite param in place as its name. */
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		char *sql = sqlite3_mprintf("UPDATE %s SET param = (SELECT name FROM names"
					    " WHERE id = %s.param)", tables[i], tables[i]);

		exec_ok(db, sql);
		sqlite3_free(sql);
	}
	exec_ok(db, "DROP TABLE sessions; DROP TABLE users; DROP TABLE glass_grants;"
		    " DROP TABLE audit; DROP TABLE audit_patient; DROP TABLE facts; DROP TABLE hl7_messages;"
		    " DROP TABLE notify_owner; DROP TABLE notify_queue;"
		    " UPDATE schema_version SET version = 1; COMMIT");
	sqlite3_close(db);
}

static int
count_of(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int n;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* A store in a new directory dir (a mkdtemp template) at path, holding
 * the n docs. */
static void
db_with(char *dir, char *path, size_t pathsz, struct arena *a,
	const char *const *docs, size_t n)
{
	struct diag d;
	struct store *s;

	assert_non_null(mkdtemp(dir));
	snprintf(path, pathsz, "%s/test.db", dir);
	diag_init(&d, a);
	s = store_open(path, NULL, &d);
	assert_non_null(s);
	assert_int_equal(store_write(s, put_docs, &(struct docs){a, docs, n}), CW_OK);
	store_close(s);
}

/* Removes what db_with made. */
static void
db_remove(const char *dir, const char *path)
{
	char p2[96];

	for (int i = 0; i < 3; i++) {
		snprintf(p2, sizeof(p2), "%s%s", path, (const char *[]){"", "-wal", "-shm"}[i]);
		unlink(p2);
	}
	rmdir(dir);
}

static void
schema_1_is_migrated(void **state)
{
	char dir[] = "/tmp/cw-migrate-XXXXXX", path[64];
	struct arena *a = arena_new(0);
	struct store *s;
	struct diag d;
	sqlite3 *db;

	db_with(dir, path, sizeof(path), a, v1_docs, sizeof(v1_docs) / sizeof(v1_docs[0]));
	back_to_schema_1(path);

	/* schema 1 really holds names now */
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(count_of(db, "SELECT count(*) FROM ix_string"
				      " WHERE param = 'Patient.name'"), 2);
	sqlite3_close(db);

	diag_init(&d, a);
	s = store_open(path, NULL, &d);
	assert_non_null(s);
	assert_string_equal(ids_of(s, a, "Patient", "name", "moss", NULL, NULL), "m1");
	assert_string_equal(ids_of(s, a, "Patient", "family", "delg", NULL, NULL), "d1");
	assert_string_equal(ids_of(s, a, "Condition", "code", NULL,
				   "http://snomed.info/sct", "44054006"), "c1");
	assert_int_equal(store_check(s, &d), CW_OK);
	store_close(s);

	db_remove(dir, path);
	arena_free(a);
}

/* ids of type whose reference parameter code matches (ref_type/ref_id,
 * or raw for an absolute URL). */
static const char *
ref_ids(struct store *s, struct arena *a, const char *type, const char *code,
	const char *rtype, const char *rid, const char *raw)
{
	return ids_of_value(s, a, type, code,
			    (struct fhir_qvalue){.ref_type = rtype, .ref_id = rid, .raw = raw});
}

static const char *const v10_docs[] = {
	"{\"resourceType\":\"Patient\",\"id\":\"m1\",\"name\":[{\"family\":\"Moss\"}]}",
	"{\"resourceType\":\"Condition\",\"id\":\"c1\",\"subject\":{\"reference\":\"Patient/m1\"}}",
	"{\"resourceType\":\"Condition\",\"id\":\"c2\","
	"\"subject\":{\"reference\":\"https://other.example/fhir/Patient/p9\"}}",
	"{\"resourceType\":\"Condition\",\"id\":\"c3\","
	"\"subject\":{\"reference\":\"https://other.example/fhir/Group/g1\"}}",
};

/* Schema 10 kept rows for Condition.patient beside Condition.subject, and
 * a reference to an absolute URL had no type. Migration 11 drops the
 * first and types the second; patient searches answer as before. */
static void
schema_10_rows_of_are_migrated(void **state)
{
	char dir[] = "/tmp/cw-migrate-XXXXXX", path[64], *sql;
	struct arena *a = arena_new(0);
	long long subj = sq_param_id("Condition", "subject");
	long long pat = sq_param_id("Condition", "patient");
	struct store *s;
	struct diag d;
	sqlite3 *db;

	db_with(dir, path, sizeof(path), a, v10_docs, sizeof(v10_docs) / sizeof(v10_docs[0]));

	/* what schema 10 wrote: patient rows of their own, untyped URLs */
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sql = sqlite3_mprintf("BEGIN;"
			      "UPDATE ix_ref SET ref_type = NULL WHERE ref_id IS NULL;"
			      "INSERT INTO ix_ref SELECT rid, %lld, seq + 100, ref_type, ref_id, raw"
			      "  FROM ix_ref WHERE param = %lld AND (ref_type = 'Patient'"
			      "  OR raw LIKE '%%/Patient/%%');"
			      "UPDATE schema_version SET version = 10; COMMIT", pat, subj);
	exec_ok(db, sql);
	sqlite3_free(sql);
	sql = sqlite3_mprintf("SELECT count(*) FROM ix_ref WHERE param = %lld", pat);
	assert_int_equal(count_of(db, sql), 2);
	sqlite3_close(db);

	diag_init(&d, a);
	s = store_open(path, NULL, &d);
	assert_non_null(s);
	assert_string_equal(ref_ids(s, a, "Condition", "patient", "Patient", "m1", NULL), "c1");
	assert_string_equal(ref_ids(s, a, "Condition", "patient", NULL, NULL,
				    "https://other.example/fhir/Patient/p9"), "c2");
	/* a Group is a subject but not a patient */
	assert_string_equal(ref_ids(s, a, "Condition", "patient", NULL, NULL,
				    "https://other.example/fhir/Group/g1"), "");
	assert_string_equal(ref_ids(s, a, "Condition", "subject", NULL, NULL,
				    "https://other.example/fhir/Group/g1"), "c3");
	assert_int_equal(store_check(s, &d), CW_OK);
	store_close(s);

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(count_of(db, sql), 0);
	assert_int_equal(count_of(db, "SELECT count(*) FROM ix_ref WHERE ref_id IS NULL"
				      " AND ref_type IS NULL"), 0);
	sqlite3_free(sql);
	sqlite3_close(db);

	db_remove(dir, path);
	arena_free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(numbers_are_stable),
		cmocka_unit_test(served_parameters_do_not_collide),
		cmocka_unit_test(schema_1_is_migrated),
		cmocka_unit_test(schema_10_rows_of_are_migrated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
