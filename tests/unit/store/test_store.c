/* tests/unit/store/test_store.c: the SQLite store through store.h only.
 *
 * Versions, history, vread, deletes as versions, If-Match, create
 * conflicts, concurrent read-modify-write and conditional create through
 * the group-committing writer, every index type through search, sorting,
 * keyset paging both ways, includes, $everything, compartment search,
 * cursor validation and SQL text as search values. Each test gets its own database in a fresh
 * temporary directory. Queries are built by hand (not by fhir_query_parse)
 * so the store is tested on exactly the fields it reads. With
 * CW_TEST_ENCRYPTED=1 in the environment (make unit runs it both ways)
 * every store is opened with a key: the same tests through sqlite_crypt.c. */
#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"

#include "fhir/fhir.h"
#include "store/store.h"

/* The key every store is opened with, or NULL (CW_TEST_ENCRYPTED). */
static const unsigned char *test_key;

static struct store *
open_store(const char *path, bool readonly, struct diag *d)
{
	struct store_options o = {.readonly = readonly, .key = test_key};

	return store_open(path, &o, d);
}

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
	snprintf(f->dir, sizeof(f->dir), "/tmp/cw-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/test.db", f->dir);
	f->a = arena_new(0);
	diag_init(&d, f->a);
	f->s = open_store(f->path, false, &d);
	assert_non_null(f->s);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	store_close(f->s);
	unit_rm_dir(f->dir);
	arena_free(f->a);
	free(f);
	return 0;
}

/* ---- writing helpers --------------------------------------------------- */

struct put_ctx {
	struct arena *a;
	const char *const *json;
	size_t n;
	bool create;
	long if_match;
	const struct fhir_restype *rt;
	struct store_res out;
	bool created;
	enum cw_err fail_with; /* returned after the puts, to test rollback */
};

static enum cw_err
put_fn(struct store_tx *tx, void *arg)
{
	struct put_ctx *c = arg;

	for (size_t i = 0; i < c->n; i++) {
		json_error_t je;
		json_t *r = json_loads(c->json[i], 0, &je);
		struct store_put p = {.res = r, .create = c->create,
				      .if_match = c->if_match, .rt = c->rt};
		enum cw_err err;

		if (!r)
			return CW_EINVAL;
		err = store_tx_put(tx, c->a, &p, &c->out, &c->created);
		json_decref(r);
		if (err)
			return err;
	}
	return c->fail_with;
}

static enum cw_err
put1(struct fx *f, const char *json, bool create, long if_match,
     struct store_res *out, bool *created)
{
	struct put_ctx c = {.a = f->a, .json = &json, .n = 1, .create = create,
			    .if_match = if_match};
	enum cw_err err = store_write(f->s, put_fn, &c);

	if (out)
		*out = c.out;
	if (created)
		*created = c.created;
	return err;
}

static void
put_ok(struct fx *f, const char *json)
{
	assert_int_equal(put1(f, json, false, 0, NULL, NULL), CW_OK);
}

struct del_ctx {
	struct arena *a;
	const char *type, *id;
	long if_match;
	struct store_res out;
	bool existed;
};

static enum cw_err
del_fn(struct store_tx *tx, void *arg)
{
	struct del_ctx *c = arg;

	return store_tx_delete(tx, c->a, c->type, c->id, c->if_match, &c->out,
			       &c->existed);
}

/* ---- versions ---------------------------------------------------------- */

static void
test_versions_history(void **state)
{
	struct fx *f = *state;
	struct store_res r;
	struct store_page pg;
	struct store_hist_opt ho = {.count = 10};
	struct del_ctx dc = {.a = f->a, .type = "Patient", .id = "p1"};
	struct diag d;
	bool created;

	diag_init(&d, f->a);
	assert_int_equal(put1(f, "{\"resourceType\":\"Patient\",\"id\":\"p1\","
			      "\"gender\":\"female\"}", true, 0, &r, &created), CW_OK);
	assert_true(created);
	assert_int_equal(r.version, 1);
	assert_non_null(strstr(r.json.p, "\"versionId\":\"1\""));
	assert_non_null(strstr(r.json.p, "\"lastUpdated\":\""));
	assert_int_equal(put1(f, "{\"resourceType\":\"Patient\",\"id\":\"p1\","
			      "\"gender\":\"male\"}", false, 0, &r, &created), CW_OK);
	assert_false(created);
	assert_int_equal(r.version, 2);

	assert_int_equal(store_read(f->s, f->a, "Patient", "p1", &r), CW_OK);
	assert_int_equal(r.version, 2);
	assert_non_null(strstr(r.json.p, "\"male\""));
	assert_int_equal(store_vread(f->s, f->a, "Patient", "p1", 1, &r), CW_OK);
	assert_non_null(strstr(r.json.p, "\"female\""));
	assert_non_null(strstr(r.json.p, "\"versionId\":\"1\""));
	assert_int_equal(store_vread(f->s, f->a, "Patient", "p1", 7, &r),
			 CW_ENOTFOUND);
	assert_int_equal(store_read(f->s, f->a, "Patient", "nope", &r),
			 CW_ENOTFOUND);

	/* Delete is a version; reading it is gone; deleting again is fine. */
	assert_int_equal(store_write(f->s, del_fn, &dc), CW_OK);
	assert_true(dc.existed);
	assert_int_equal(dc.out.version, 3);
	assert_int_equal(store_read(f->s, f->a, "Patient", "p1", &r), CW_EGONE);
	assert_int_equal(r.version, 3);
	assert_int_equal(store_vread(f->s, f->a, "Patient", "p1", 3, &r), CW_EGONE);
	assert_int_equal(store_write(f->s, del_fn, &dc), CW_OK);
	assert_false(dc.existed);
	long n;
	assert_int_equal(store_count(f->s, "Patient", &n), CW_OK);
	assert_int_equal(n, 0);

	/* Update after delete recreates it with the next version. */
	assert_int_equal(put1(f, "{\"resourceType\":\"Patient\",\"id\":\"p1\"}",
			      false, 0, &r, &created), CW_OK);
	assert_true(created);
	assert_int_equal(r.version, 4);
	assert_int_equal(store_count(f->s, "Patient", &n), CW_OK);
	assert_int_equal(n, 1);

	assert_int_equal(store_history(f->s, f->a, "Patient", "p1", &ho, &pg, &d),
			 CW_OK);
	assert_int_equal(pg.n, 4);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(pg.res[i].version, 4 - (long)i);
	assert_true(pg.res[1].deleted);
	assert_null(pg.next);
	/* The current version's text lives in res only, older ones in
	 * versions (moved there by the update and the delete). */
	assert_non_null(strstr(pg.res[0].json.p, "\"versionId\":\"4\""));
	assert_int_equal(pg.res[1].json.n, 0);
	assert_non_null(strstr(pg.res[2].json.p, "\"male\""));
	assert_non_null(strstr(pg.res[2].json.p, "\"versionId\":\"2\""));
	assert_non_null(strstr(pg.res[3].json.p, "\"female\""));
	assert_int_equal(store_vread(f->s, f->a, "Patient", "p1", 2, &r), CW_OK);
	assert_non_null(strstr(r.json.p, "\"versionId\":\"2\""));
	assert_int_equal(store_vread(f->s, f->a, "Patient", "p1", 4, &r), CW_OK);
	assert_non_null(strstr(r.json.p, "\"versionId\":\"4\""));

	/* Paged history: 2 per page, newest first, then back. */
	ho.count = 3;
	assert_int_equal(store_history(f->s, f->a, "Patient", "p1", &ho, &pg, &d),
			 CW_OK);
	assert_int_equal(pg.n, 3);
	assert_non_null(pg.next);
	ho.cursor = pg.next;
	assert_int_equal(store_history(f->s, f->a, "Patient", "p1", &ho, &pg, &d),
			 CW_OK);
	assert_int_equal(pg.n, 1);
	assert_int_equal(pg.res[0].version, 1);
	assert_null(pg.next);
	assert_non_null(pg.prev);
	ho.cursor = pg.prev;
	assert_int_equal(store_history(f->s, f->a, "Patient", "p1", &ho, &pg, &d),
			 CW_OK);
	assert_int_equal(pg.n, 3);
	assert_int_equal(pg.res[0].version, 4);
	assert_null(pg.prev);

	/* Type and system history. */
	ho.cursor = NULL;
	ho.count = 50;
	assert_int_equal(store_history(f->s, f->a, "Patient", NULL, &ho, &pg, &d),
			 CW_OK);
	assert_int_equal(pg.n, 4);
	assert_int_equal(store_history(f->s, f->a, NULL, NULL, &ho, &pg, &d), CW_OK);
	assert_int_equal(pg.n, 4);
	ho.since = pg.res[0].last_updated + 1;
	assert_int_equal(store_history(f->s, f->a, NULL, NULL, &ho, &pg, &d), CW_OK);
	assert_int_equal(pg.n, 0);
	ho.since = 0;
	assert_int_equal(store_history(f->s, f->a, "Patient", "zz", &ho, &pg, &d),
			 CW_ENOTFOUND);
	assert_int_equal(store_check(f->s, &d), CW_OK);
}

static void
test_if_match_conflict(void **state)
{
	struct fx *f = *state;
	struct store_res r;
	struct del_ctx dc = {.a = f->a, .type = "Patient", .id = "p2", .if_match = 1};
	const char *p = "{\"resourceType\":\"Patient\",\"id\":\"p2\"}";

	assert_int_equal(put1(f, p, true, 0, &r, NULL), CW_OK);
	assert_int_equal(put1(f, p, true, 0, &r, NULL), CW_ECONFLICT);
	assert_int_equal(put1(f, p, false, 1, &r, NULL), CW_OK);
	assert_int_equal(r.version, 2);
	assert_int_equal(put1(f, p, false, 1, &r, NULL), CW_EPRECOND);
	assert_int_equal(store_write(f->s, del_fn, &dc), CW_EPRECOND);
	dc.if_match = 2;
	assert_int_equal(store_write(f->s, del_fn, &dc), CW_OK);
	/* If-Match on something that does not exist. */
	assert_int_equal(put1(f, "{\"resourceType\":\"Patient\",\"id\":\"p9\"}",
			      false, 3, &r, NULL), CW_EPRECOND);
	/* A server-assigned id is time-ordered and valid. */
	assert_int_equal(put1(f, "{\"resourceType\":\"Patient\"}", true, 0, &r,
			      NULL), CW_OK);
	assert_int_equal(strlen(r.id), ID_LEN);
	/* Without an id an update is refused. */
	assert_int_equal(put1(f, "{\"resourceType\":\"Patient\"}", false, 0, &r,
			      NULL), CW_EINVAL);
}

static void
test_failed_job_rolls_back(void **state)
{
	struct fx *f = *state;
	const char *json[] = {
		"{\"resourceType\":\"Patient\",\"id\":\"rb1\"}",
		"{\"resourceType\":\"Patient\",\"id\":\"rb2\"}",
	};
	struct put_ctx c = {.a = f->a, .json = json, .n = 2,
			    .fail_with = CW_EINVALID};
	struct store_res r;

	assert_int_equal(store_write(f->s, put_fn, &c), CW_EINVALID);
	assert_int_equal(store_read(f->s, f->a, "Patient", "rb1", &r), CW_ENOTFOUND);
	assert_int_equal(store_read(f->s, f->a, "Patient", "rb2", &r), CW_ENOTFOUND);
	c.fail_with = CW_OK;
	assert_int_equal(store_write(f->s, put_fn, &c), CW_OK);
	assert_int_equal(store_read(f->s, f->a, "Patient", "rb2", &r), CW_OK);
}

/* Facts rows (sqlite_facts.c): what a job writes it reads back at once,
 * a later job sees what committed, and a job that fails leaves neither its
 * row nor the writer's memory of it. */
struct facts_ctx {
	struct arena *a;
	const char *name;
	const char *put;      /* body to put, or NULL: drop */
	const char *seen;     /* the body read after the put, or NULL */
	const char *before;   /* the body read before the put, or NULL */
	enum cw_err fail_with;
};

static enum cw_err
facts_fn(struct store_tx *tx, void *arg)
{
	struct facts_ctx *c = arg;
	struct span body;
	bool found;
	enum cw_err err;

	if ((err = store_tx_facts_get(tx, c->a, c->name, &body, &found)))
		return err;
	c->before = found ? body.p : NULL;
	err = c->put ? store_tx_facts_put(tx, c->name, c->put, strlen(c->put)) :
		       store_tx_facts_drop(tx, c->name);
	if (err || (err = store_tx_facts_get(tx, c->a, c->name, &body, &found)))
		return err;
	c->seen = found ? body.p : NULL;
	return c->fail_with;
}

static void
test_facts_rows(void **state)
{
	struct fx *f = *state;
	struct facts_ctx c = {.a = f->a, .name = "coord/p1", .put = "first"};

	assert_int_equal(store_write(f->s, facts_fn, &c), CW_OK);
	assert_null(c.before);
	assert_string_equal(c.seen, "first");
	/* a failed job: its own read saw its put, nothing of it stays */
	c.put = "second";
	c.fail_with = CW_EINVALID;
	assert_int_equal(store_write(f->s, facts_fn, &c), CW_EINVALID);
	assert_string_equal(c.before, "first");
	assert_string_equal(c.seen, "second");
	c.put = "third";
	c.fail_with = CW_OK;
	assert_int_equal(store_write(f->s, facts_fn, &c), CW_OK);
	assert_string_equal(c.before, "first");
	/* another name is another row; a drop leaves none */
	c.name = "coord/p2";
	c.put = NULL;
	assert_int_equal(store_write(f->s, facts_fn, &c), CW_OK);
	assert_null(c.before);
	assert_null(c.seen);
	c.name = "coord/p1";
	assert_int_equal(store_write(f->s, facts_fn, &c), CW_OK);
	assert_string_equal(c.before, "third");
	assert_null(c.seen);
	/* a reopened store reads what committed */
	c.put = "fourth";
	assert_int_equal(store_write(f->s, facts_fn, &c), CW_OK);
	store_close(f->s);
	{
		struct diag d;

		diag_init(&d, f->a);
		f->s = open_store(f->path, false, &d);
		assert_non_null(f->s);
	}
	c.put = "fifth";
	assert_int_equal(store_write(f->s, facts_fn, &c), CW_OK);
	assert_string_equal(c.before, "fourth");
}

/* The HL7 v2 message log: one row per key; a message sent again counts
 * one more attempt and keeps its first receipt; the list pages newest
 * first and filters by outcome. */
struct hl7_ctx {
	struct arena *a;
	struct store_hl7 m;
	struct store_hl7 got;
	enum cw_err get_err;
};

static enum cw_err
hl7_fn(struct store_tx *tx, void *arg)
{
	struct hl7_ctx *c = arg;
	enum cw_err err;

	c->get_err = store_tx_hl7_get(tx, c->a, c->m.sender, c->m.facility,
				      c->m.control_id, &c->got);
	if (c->get_err && c->get_err != CW_ENOTFOUND)
		return c->get_err;
	err = store_tx_hl7_put(tx, &c->m);
	return err;
}

static void
test_hl7_log(void **state)
{
	struct fx *f = *state;
	struct hl7_ctx c = {.a = f->a};
	struct store_hl7 *v, one;
	struct store_hl7_filter flt = {.outcome = -1, .limit = 10};
	size_t n;

	c.m = (struct store_hl7){.sender = "ADT1", .facility = "GHH", .control_id = "MSG1",
				 .type = "ADT^A01", .version = "2.5", .peer = "127.0.0.1:1",
				 .updated = 1000, .outcome = STORE_HL7_ERROR,
				 .ack = "MSA|AE|MSG1", .detail = "unknown patient",
				 .raw = SPAN_LIT("MSH|^~\\&|ADT1|GHH")};
	assert_int_equal(store_write(f->s, hl7_fn, &c), CW_OK);
	assert_int_equal(c.get_err, CW_ENOTFOUND);
	assert_int_equal(c.m.attempts, 1);
	assert_int_equal(c.m.received, 1000);
	/* sent again, and accepted this time */
	c.m.updated = 2000;
	c.m.outcome = STORE_HL7_ACCEPTED;
	c.m.ack = "MSA|AA|MSG1";
	c.m.detail = NULL;
	c.m.resources = "Patient/p1";
	assert_int_equal(store_write(f->s, hl7_fn, &c), CW_OK);
	assert_int_equal(c.get_err, CW_OK);
	assert_string_equal(c.got.ack, "MSA|AE|MSG1");
	assert_int_equal(c.m.attempts, 2);
	assert_int_equal(c.m.received, 1000);
	/* another message of another sender */
	c.m.sender = "LAB";
	c.m.control_id = "MSG1";
	c.m.outcome = STORE_HL7_REJECTED;
	assert_int_equal(store_write(f->s, hl7_fn, &c), CW_OK);
	assert_int_equal(store_hl7_list(f->s, f->a, &flt, &v, &n), CW_OK);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].sender, "LAB");
	assert_string_equal(v[1].sender, "ADT1");
	assert_int_equal(v[1].attempts, 2);
	assert_string_equal(v[1].resources, "Patient/p1");
	flt.outcome = STORE_HL7_ACCEPTED;
	assert_int_equal(store_hl7_list(f->s, f->a, &flt, &v, &n), CW_OK);
	assert_int_equal(n, 1);
	assert_int_equal(store_hl7_get(f->s, f->a, v[0].seq, &one), CW_OK);
	assert_string_equal(one.ack, "MSA|AA|MSG1");
	assert_int_equal(one.raw.n, strlen("MSH|^~\\&|ADT1|GHH"));
	flt.outcome = -1;
	flt.before = v[0].seq;
	assert_int_equal(store_hl7_list(f->s, f->a, &flt, &v, &n), CW_OK);
	assert_int_equal(n, 0);
	assert_int_equal(store_hl7_get(f->s, f->a, 999, &one), CW_ENOTFOUND);
}

/* The Subscription notice queue: due in order, a failed try holds back
 * every notice of its Subscription, dropping one or all, and the owner
 * row. */
struct notice_ctx {
	int step;
	int64_t seq;
};

static enum cw_err
notice_fn(struct store_tx *tx, void *arg)
{
	struct notice_ctx *c = arg;
	enum cw_err err = CW_OK;

	switch (c->step) {
	case 0:
		if ((err = store_tx_notice_add(tx, "s1", "Communication", "c1", 1, 1000)) ||
		    (err = store_tx_notice_add(tx, "s2", "Flag", "f1", 2, 1001)) ||
		    (err = store_tx_notice_add(tx, "s1", "Communication", "c2", 1, 1002)) ||
		    (err = store_tx_sub_owner_set(tx, "s1", "nora")))
			return err;
		break;
	case 1:
		err = store_tx_notice_retry(tx, c->seq, "s1", 1, 5000, "the endpoint answered HTTP 503");
		break;
	case 2:
		err = store_tx_notice_drop(tx, c->seq);
		break;
	case 3:
		if ((err = store_tx_notice_drop_sub(tx, "s1")) ||
		    (err = store_tx_sub_owner_set(tx, "s1", NULL)))
			return err;
		break;
	case 4:
		/* a job that fails queues nothing */
		store_tx_notice_add(tx, "s3", "Flag", "f9", 1, 1000);
		return CW_EINVALID;
	}
	return err;
}

static void
test_notice_queue(void **state)
{
	struct fx *f = *state;
	struct notice_ctx c = {0};
	struct store_notice *v;
	const char *owner;
	int64_t next;
	size_t n;
	long count;

	assert_int_equal(store_write(f->s, notice_fn, &c), CW_OK);
	assert_int_equal(store_sub_owner_get(f->s, f->a, "s1", &owner), CW_OK);
	assert_string_equal(owner, "nora");
	assert_int_equal(store_sub_owner_get(f->s, f->a, "s2", &owner), CW_OK);
	assert_null(owner);
	/* nothing is due before its time */
	assert_int_equal(store_notice_due(f->s, f->a, 999, 10, &v, &n, &next), CW_OK);
	assert_int_equal(n, 0);
	assert_int_equal(next, 1000);
	assert_int_equal(store_notice_due(f->s, f->a, 2000, 2, &v, &n, &next), CW_OK);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].sub_id, "s1");
	assert_string_equal(v[0].id, "c1");
	assert_string_equal(v[1].type, "Flag");
	assert_int_equal(v[1].version, 2);
	assert_int_equal(next, 1002); /* the one left over */
	/* s1's first try fails: both its notices wait, s2's does not */
	c.step = 1;
	c.seq = v[0].seq;
	assert_int_equal(store_write(f->s, notice_fn, &c), CW_OK);
	assert_int_equal(store_notice_due(f->s, f->a, 2000, 10, &v, &n, &next), CW_OK);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].sub_id, "s2");
	assert_int_equal(next, 5000);
	assert_int_equal(store_notice_due(f->s, f->a, 5000, 10, &v, &n, &next), CW_OK);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].sub_id, "s2");
	assert_int_equal(v[1].attempts, 1);
	assert_string_equal(v[1].error, "the endpoint answered HTTP 503");
	assert_null(v[2].error);
	/* delivered: gone */
	c.step = 2;
	c.seq = v[0].seq;
	assert_int_equal(store_write(f->s, notice_fn, &c), CW_OK);
	assert_int_equal(store_notice_count(f->s, NULL, &count), CW_OK);
	assert_int_equal(count, 2);
	assert_int_equal(store_notice_count(f->s, "s1", &count), CW_OK);
	assert_int_equal(count, 2);
	/* the Subscription is gone: all of it */
	c.step = 3;
	assert_int_equal(store_write(f->s, notice_fn, &c), CW_OK);
	assert_int_equal(store_notice_count(f->s, NULL, &count), CW_OK);
	assert_int_equal(count, 0);
	assert_int_equal(store_sub_owner_get(f->s, f->a, "s1", &owner), CW_OK);
	assert_null(owner);
	c.step = 4;
	assert_int_equal(store_write(f->s, notice_fn, &c), CW_EINVALID);
	assert_int_equal(store_notice_count(f->s, NULL, &count), CW_OK);
	assert_int_equal(count, 0);
}


/* Opens f's store again, as a restart does (the store is closed), and
 * counts type's resources. */
static long
reopened_count(struct fx *f, const char *type)
{
	struct diag d;
	long n = -1;

	diag_init(&d, f->a);
	f->s = open_store(f->path, false, &d);
	assert_non_null(f->s);
	assert_int_equal(store_count(f->s, type, &n), CW_OK);
	return n;
}

/* A transaction of several MiB of WAL goes through the writer's VFS,
 * which gathers the WAL appends into large writes: what a commit wrote
 * must be what a reader and a reopened store see, and a failed one must
 * leave nothing. */
#define BIG_TX 2000

static void
test_large_transaction(void **state)
{
	struct fx *f = *state;
	const char **json = calloc(BIG_TX, sizeof(*json));
	struct put_ctx c = {.a = f->a, .n = BIG_TX};
	struct store_res r;
	struct diag d;
	long n;

	assert_non_null(json);
	for (size_t i = 0; i < BIG_TX; i++)
		json[i] = arena_printf(f->a, "{\"resourceType\":\"Patient\",\"id\":\"big%zu\","
				       "\"name\":[{\"family\":\"Family%zu\",\"given\":[\"Given%zu\"]}],"
				       "\"birthDate\":\"19%02zu-01-01\"}", i, i, i, i % 100);
	c.json = json;
	c.fail_with = CW_EINVALID;
	assert_int_equal(store_write(f->s, put_fn, &c), CW_EINVALID);
	assert_int_equal(store_count(f->s, "Patient", &n), CW_OK);
	assert_int_equal(n, 0);
	c.fail_with = CW_OK;
	assert_int_equal(store_write(f->s, put_fn, &c), CW_OK);
	assert_int_equal(store_count(f->s, "Patient", &n), CW_OK);
	assert_int_equal(n, BIG_TX);
	assert_int_equal(store_read(f->s, f->a, "Patient", "big1999", &r), CW_OK);
	assert_non_null(strstr(r.json.p, "Family1999"));

	store_close(f->s);
	assert_int_equal(reopened_count(f, "Patient"), BIG_TX);
	assert_int_equal(store_read(f->s, f->a, "Patient", "big0", &r), CW_OK);
	assert_int_equal(store_check(f->s, &d), CW_OK);
	free(json);
}

/* Big transactions back to back leave their checkpoint until they pause
 * (sqlite.c, CKPT_DEFER_FRAMES): it must still come. After two commits of
 * over 1,000 WAL frames each (1,200 Patients of 4 KB), the database file
 * alone, copied without its WAL while the store stays open, holds both
 * within a few seconds. */
#define CKPT_TX 1200
#define CKPT_WAIT_MS 10000

static bool
copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
	char buf[65536];
	size_t n;
	bool ok = in && out;

	while (ok && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		ok = fwrite(buf, 1, n, out) == n;
	if (in)
		fclose(in);
	if (out && fclose(out) != 0)
		ok = false;
	return ok;
}

/* Patients in a copy of the database file alone; -1 if it cannot be read
 * (a checkpoint was writing it while it was copied). */
static long
patients_in_file_alone(struct fx *f)
{
	char copy[160], side[176];
	struct store *s;
	struct diag d;
	long n = -1;

	snprintf(copy, sizeof(copy), "%s/alone.db", f->dir);
	for (size_t i = 0; i < 3; i++) {
		snprintf(side, sizeof(side), "%s%s", copy, (const char *[]){"", "-wal", "-shm"}[i]);
		unlink(side);
	}
	if (!copy_file(f->path, copy))
		return -1;
	diag_init(&d, f->a);
	if (!(s = open_store(copy, true, &d)))
		return -1;
	if (store_count(s, "Patient", &n) != CW_OK)
		n = -1;
	store_close(s);
	return n;
}

static void
test_big_commits_checkpointed(void **state)
{
	struct fx *f = *state;
	const char **json = calloc(CKPT_TX, sizeof(*json));
	char note[4001];
	struct put_ctx c = {.a = f->a, .n = CKPT_TX};
	long n = -1;

	assert_non_null(json);
	memset(note, 'x', sizeof(note) - 1);
	note[sizeof(note) - 1] = '\0';
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < CKPT_TX; i++)
			json[i] = arena_printf(f->a, "{\"resourceType\":\"Patient\",\"id\":\"ck%d-%zu\","
					       "\"text\":{\"status\":\"generated\",\"div\":\"<div>%s</div>\"}}",
					       round, i, note);
		c.json = json;
		assert_int_equal(store_write(f->s, put_fn, &c), CW_OK);
	}
	for (int waited = 0; waited < CKPT_WAIT_MS && n != 2 * CKPT_TX; waited += 50) {
		usleep(50 * 1000);
		n = patients_in_file_alone(f);
	}
	assert_int_equal(n, 2 * CKPT_TX);
	free(json);
}

/* A WAL grown ahead with zeros (sqlite.c, prefill_turn) must read back as
 * the frames written, no more: a child process opens the store, waits till
 * the WAL has its kept size, commits, and ends without closing (as a crash
 * would leave it); the parent then finds every commit and a sound file.
 * The database is small, so the test build's hook lowers the threshold. */
#define PREFILL_KEEP (128 << 20) /* WAL_KEEP_BYTES */
#define PREFILL_PUTS 50

static void
test_prefilled_wal_recovers(void **state)
{
	struct fx *f = *state;
	char wal[160];
	struct store_res r;
	struct stat st;
	struct diag d;
	pid_t pid;
	int status;

	store_close(f->s);
	f->s = NULL;
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	setenv("CAREWEAVE_TEST_PREFILL_MIN", "0", 1);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *s;
		int waited = 0;

		diag_init(&d, f->a);
		if (!(s = open_store(f->path, false, &d)))
			_exit(2);
		while ((stat(wal, &st) != 0 || st.st_size < PREFILL_KEEP) && waited++ < 400)
			usleep(25 * 1000);
		if (st.st_size < PREFILL_KEEP)
			_exit(3);
		f->s = s;
		for (int i = 0; i < PREFILL_PUTS; i++)
			if (put1(f, arena_printf(f->a, "{\"resourceType\":\"Patient\",\"id\":\"pf%d\","
						 "\"name\":[{\"family\":\"Prefill%d\"}]}", i, i),
				 false, 0, NULL, NULL) != CW_OK)
				_exit(4);
		_exit(0); /* no store_close: the WAL stays as a crash leaves it */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	unsetenv("CAREWEAVE_TEST_PREFILL_MIN");
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(stat(wal, &st), 0);
	assert_true(st.st_size >= PREFILL_KEEP);

	assert_int_equal(reopened_count(f, "Patient"), PREFILL_PUTS);
	assert_int_equal(store_read(f->s, f->a, "Patient", "pf49", &r), CW_OK);
	assert_non_null(strstr(r.json.p, "Prefill49"));
	assert_int_equal(store_check(f->s, &d), CW_OK);
}

/* store_write_ready: ready runs once fn has succeeded, before the call
 * returns, with what fn left; never when fn fails. */
struct ready_ctx {
	struct put_ctx put;
	int readied;
	bool put_done_first;
};

static enum cw_err
ready_put_fn(struct store_tx *tx, void *arg)
{
	return put_fn(tx, &((struct ready_ctx *)arg)->put);
}

static void
ready_fn(void *arg)
{
	struct ready_ctx *c = arg;

	c->readied++;
	c->put_done_first = c->put.out.version == 1 && c->put.created;
}

static void
test_write_ready(void **state)
{
	struct fx *f = *state;
	const char *json = "{\"resourceType\":\"Patient\",\"id\":\"rd1\"}";
	struct ready_ctx c = {.put = {.a = f->a, .json = &json, .n = 1}};
	long n;

	assert_int_equal(store_write_ready(f->s, ready_put_fn, ready_fn, &c), CW_OK);
	assert_int_equal(c.readied, 1);
	assert_true(c.put_done_first);

	c = (struct ready_ctx){.put = {.a = f->a, .json = &json, .n = 1,
				       .fail_with = CW_EINVALID}};
	json = "{\"resourceType\":\"Patient\",\"id\":\"rd2\"}";
	assert_int_equal(store_write_ready(f->s, ready_put_fn, ready_fn, &c), CW_EINVALID);
	assert_int_equal(c.readied, 0);
	assert_int_equal(store_count(f->s, "Patient", &n), CW_OK);
	assert_int_equal(n, 1);
}

/* ---- concurrency ------------------------------------------------------- */

#define RMW_THREADS 16
#define RMW_EACH 8

struct rmw_arg {
	struct fx *f;
	pthread_barrier_t *bar;
	int ok;
	int retries;
};

static void *
rmw_thread(void *p)
{
	struct rmw_arg *ra = p;
	struct arena *a = arena_new(0);
	const char *json = "{\"resourceType\":\"Patient\",\"id\":\"rmw\"}";

	pthread_barrier_wait(ra->bar);
	while (ra->ok < RMW_EACH) {
		struct store_res r;
		struct put_ctx c = {.a = a, .json = &json, .n = 1};
		enum cw_err err;

		if (store_read(ra->f->s, a, "Patient", "rmw", &r) != CW_OK)
			break;
		c.if_match = r.version;
		err = store_write(ra->f->s, put_fn, &c);
		if (err == CW_OK)
			ra->ok++;
		else if (err == CW_EPRECOND)
			ra->retries++;
		else
			break;
		arena_reset(a);
	}
	arena_free(a);
	return NULL;
}

static void
test_concurrent_rmw(void **state)
{
	struct fx *f = *state;
	pthread_t th[RMW_THREADS];
	struct rmw_arg args[RMW_THREADS];
	pthread_barrier_t bar;
	struct store_res r;
	int total = 0;

	put_ok(f, "{\"resourceType\":\"Patient\",\"id\":\"rmw\"}");
	pthread_barrier_init(&bar, NULL, RMW_THREADS);
	for (int i = 0; i < RMW_THREADS; i++) {
		args[i] = (struct rmw_arg){.f = f, .bar = &bar};
		assert_int_equal(pthread_create(&th[i], NULL, rmw_thread, &args[i]), 0);
	}
	for (int i = 0; i < RMW_THREADS; i++) {
		pthread_join(th[i], NULL);
		total += args[i].ok;
	}
	pthread_barrier_destroy(&bar);
	assert_int_equal(total, RMW_THREADS * RMW_EACH);
	assert_int_equal(store_read(f->s, f->a, "Patient", "rmw", &r), CW_OK);
	assert_int_equal(r.version, 1 + total);
}

#define CC_THREADS 32

struct cc_arg {
	struct fx *f;
	pthread_barrier_t *bar;
	enum cw_err err;
	bool created;
};

static struct fhir_query
q_new(const char *type)
{
	struct fhir_query q = {.rt = fhir_restype_find(type)};

	assert_non_null(q.rt);
	return q;
}

/* Adds a parameter to q with nv zeroed values, returned for filling. */
static struct fhir_qvalue *
q_add(struct arena *a, struct fhir_query *q, const char *code,
      enum fhir_modifier mod, size_t nv)
{
	struct fhir_qparam *np = arena_zalloc(a, (q->nparams + 1) * sizeof(*np));
	struct fhir_qparam *p;

	assert_non_null(np);
	if (q->nparams)
		memcpy(np, q->params, q->nparams * sizeof(*np));
	p = &np[q->nparams];
	p->sp = fhir_sp_find(q->rt, code);
	assert_non_null(p->sp);
	p->mod = mod;
	p->nvalues = nv;
	p->values = arena_zalloc(a, nv * sizeof(*p->values));
	q->params = np;
	q->nparams++;
	return p->values;
}

static enum cw_err
cc_fn(struct store_tx *tx, void *arg)
{
	struct cc_arg *ca = arg;
	struct arena *a = store_tx_arena(tx);
	struct fhir_query q = q_new("Patient");
	struct fhir_qvalue *v = q_add(a, &q, "identifier", MOD_NONE, 1);
	struct diag d;
	const char **ids;
	size_t n;
	enum cw_err err;
	json_t *res;
	struct store_res out;
	struct store_put put = {.create = true};

	diag_init(&d, a);
	v->system = "urn:cc";
	v->code = "42";
	err = store_tx_match(tx, a, &q, 2, &ids, &n, &d);
	if (err)
		return err;
	if (n > 0)
		return CW_OK;
	res = json_pack("{s:s, s:[{s:s, s:s}]}", "resourceType", "Patient",
			"identifier", "system", "urn:cc", "value", "42");
	put.res = res;
	err = store_tx_put(tx, a, &put, &out, &ca->created);
	json_decref(res);
	return err;
}

static void *
cc_thread(void *p)
{
	struct cc_arg *ca = p;

	pthread_barrier_wait(ca->bar);
	ca->err = store_write(ca->f->s, cc_fn, ca);
	return NULL;
}

static void
test_conditional_create_race(void **state)
{
	struct fx *f = *state;
	pthread_t th[CC_THREADS];
	struct cc_arg args[CC_THREADS];
	pthread_barrier_t bar;
	int created = 0;
	long n;

	pthread_barrier_init(&bar, NULL, CC_THREADS);
	for (int i = 0; i < CC_THREADS; i++) {
		args[i] = (struct cc_arg){.f = f, .bar = &bar};
		assert_int_equal(pthread_create(&th[i], NULL, cc_thread, &args[i]), 0);
	}
	for (int i = 0; i < CC_THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].err, CW_OK);
		created += args[i].created;
	}
	pthread_barrier_destroy(&bar);
	assert_int_equal(created, 1);
	assert_int_equal(store_count(f->s, "Patient", &n), CW_OK);
	assert_int_equal(n, 1);
}

/* ---- search ------------------------------------------------------------ */

static const char *const search_data[] = {
	"{\"resourceType\":\"Patient\",\"id\":\"pa\",\"gender\":\"female\","
	"\"birthDate\":\"1980-05-10\",\"name\":[{\"family\":\"Smith\","
	"\"given\":[\"Anna\"]}],\"identifier\":[{\"system\":\"urn:mrn\","
	"\"value\":\"111\"}]}",
	"{\"resourceType\":\"Patient\",\"id\":\"pb\",\"gender\":\"male\","
	"\"birthDate\":\"1975\",\"name\":[{\"family\":\"Smithson\","
	"\"given\":[\"Bob\"]}],\"identifier\":[{\"system\":\"urn:other\","
	"\"value\":\"111\"}]}",
	"{\"resourceType\":\"Patient\",\"id\":\"pc\",\"birthDate\":\"1990-01-01\","
	"\"name\":[{\"family\":\"M\xc3\xbcller\",\"given\":[\"Carl\"]}],"
	"\"identifier\":[{\"value\":\"222\"}]}",
	"{\"resourceType\":\"Observation\",\"id\":\"o1\",\"status\":\"final\","
	"\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"1234-5\","
	"\"display\":\"Glucose\"}]},\"subject\":{\"reference\":\"Patient/pa\"},"
	"\"effectiveDateTime\":\"2021-03-04T10:00:00Z\",\"valueQuantity\":"
	"{\"value\":5.4,\"unit\":\"mg/dL\",\"system\":\"http://unitsofmeasure.org\","
	"\"code\":\"mg/dL\"}}",
	"{\"resourceType\":\"Observation\",\"id\":\"o2\",\"status\":\"preliminary\","
	"\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"9999-9\","
	"\"display\":\"Blood pressure\"}]},\"subject\":{\"reference\":\"Patient/pa\"},"
	"\"effectiveDateTime\":\"2022-01-01\",\"valueQuantity\":"
	"{\"value\":120,\"unit\":\"mm[Hg]\",\"system\":\"http://unitsofmeasure.org\","
	"\"code\":\"mm[Hg]\"}}",
	"{\"resourceType\":\"Observation\",\"id\":\"o3\",\"status\":\"final\","
	"\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"1234-5\","
	"\"display\":\"Glucose\"}]},\"subject\":{\"reference\":\"Patient/pb\"},"
	"\"effectiveDateTime\":\"2021-06\",\"valueQuantity\":"
	"{\"value\":7.1,\"unit\":\"mg/dL\",\"system\":\"http://unitsofmeasure.org\","
	"\"code\":\"mg/dL\"}}",
	"{\"resourceType\":\"Questionnaire\",\"id\":\"q1\",\"status\":\"active\","
	"\"url\":\"http://example.org/q/phq9\"}",
	"{\"resourceType\":\"Questionnaire\",\"id\":\"q2\",\"status\":\"active\","
	"\"url\":\"http://example.org/q/gad7\"}",
};

static void
load_search_data(struct fx *f)
{
	struct put_ctx c = {.a = f->a, .json = search_data,
			    .n = sizeof(search_data) / sizeof(search_data[0])};

	assert_int_equal(store_write(f->s, put_fn, &c), CW_OK);
}

/* Runs q and returns the ids of the matches joined by ',' in order, or
 * "ERR" on failure. */
static const char *
ids_of(struct fx *f, const struct fhir_query *q)
{
	struct store_page pg;
	struct diag d;
	struct sbuf sb = SBUF_INIT(1 << 20);
	const char *out;

	diag_init(&d, f->a);
	if (store_search(f->s, f->a, q, &pg, &d) != CW_OK)
		return "ERR";
	for (size_t i = 0; i < pg.n; i++) {
		if (i)
			sbuf_addch(&sb, ',');
		sbuf_adds(&sb, pg.res[i].id);
	}
	out = arena_strdup(f->a, sb.buf);
	sbuf_release(&sb);
	return out;
}

static void
date_value(struct fhir_qvalue *v, enum fhir_prefix pfx, const char *s)
{
	struct time_range tr;

	assert_int_equal(time_parse(s, strlen(s), TIME_SEARCH, &tr), CW_OK);
	v->prefix = pfx;
	v->lo = tr.lo;
	v->hi = tr.hi;
}

static void
test_search_token(void **state)
{
	struct fx *f = *state;
	struct fhir_query q;
	struct fhir_qvalue *v;

	load_search_data(f);
	q = q_new("Patient");
	v = q_add(f->a, &q, "identifier", MOD_NONE, 1);
	v->system = "urn:mrn", v->code = "111";
	assert_string_equal(ids_of(f, &q), "pa");
	q = q_new("Patient");
	v = q_add(f->a, &q, "identifier", MOD_NONE, 1);
	v->code = "111";
	assert_string_equal(ids_of(f, &q), "pa,pb");
	q = q_new("Patient");
	v = q_add(f->a, &q, "identifier", MOD_NONE, 1);
	v->system = "", v->code = "222";
	assert_string_equal(ids_of(f, &q), "pc");
	v->code = "111";
	assert_string_equal(ids_of(f, &q), "");
	q = q_new("Patient");
	v = q_add(f->a, &q, "identifier", MOD_NONE, 1);
	v->system = "urn:other";
	assert_string_equal(ids_of(f, &q), "pb");
	/* ORed values. */
	q = q_new("Patient");
	v = q_add(f->a, &q, "identifier", MOD_NONE, 2);
	v[0].code = "222", v[1].system = "urn:other", v[1].code = "111";
	assert_string_equal(ids_of(f, &q), "pb,pc");
	q = q_new("Patient");
	v = q_add(f->a, &q, "gender", MOD_NOT, 1);
	v->code = "male";
	assert_string_equal(ids_of(f, &q), "pa,pc");
	q = q_new("Patient");
	v = q_add(f->a, &q, "gender", MOD_MISSING, 1);
	v->missing = true;
	assert_string_equal(ids_of(f, &q), "pc");
	v->missing = false;
	assert_string_equal(ids_of(f, &q), "pa,pb");
	q = q_new("Observation");
	v = q_add(f->a, &q, "code", MOD_TEXT, 1);
	v->text = "gluc";
	assert_string_equal(ids_of(f, &q), "o1,o3");
	/* _id */
	q = q_new("Patient");
	v = q_add(f->a, &q, "_id", MOD_NONE, 2);
	v[0].code = "pc", v[1].code = "pa";
	assert_string_equal(ids_of(f, &q), "pa,pc");
	/* ANDed params: code and patient. */
	q = q_new("Observation");
	v = q_add(f->a, &q, "code", MOD_NONE, 1);
	v->system = "http://loinc.org", v->code = "1234-5";
	v = q_add(f->a, &q, "subject", MOD_NONE, 1);
	v->ref_type = "Patient", v->ref_id = "pb";
	assert_string_equal(ids_of(f, &q), "o3");
}

static void
test_search_string_ref_uri(void **state)
{
	struct fx *f = *state;
	struct fhir_query q;
	struct fhir_qvalue *v;

	load_search_data(f);
	q = q_new("Patient");
	v = q_add(f->a, &q, "name", MOD_NONE, 1);
	v->text = "smi";
	assert_string_equal(ids_of(f, &q), "pa,pb");
	q = q_new("Patient");
	v = q_add(f->a, &q, "name", MOD_EXACT, 1);
	v->raw = "Smith";
	assert_string_equal(ids_of(f, &q), "pa");
	v->raw = "smith";
	assert_string_equal(ids_of(f, &q), "");
	q = q_new("Patient");
	v = q_add(f->a, &q, "name", MOD_CONTAINS, 1);
	v->text = "ith";
	assert_string_equal(ids_of(f, &q), "pa,pb");
	q = q_new("Patient");
	v = q_add(f->a, &q, "family", MOD_NONE, 1);
	v->text = fhir_normalize(f->a, "MUL", 3);
	assert_string_equal(ids_of(f, &q), "pc");

	q = q_new("Observation");
	v = q_add(f->a, &q, "subject", MOD_NONE, 1);
	v->ref_type = "Patient", v->ref_id = "pa";
	assert_string_equal(ids_of(f, &q), "o1,o2");
	v->ref_type = NULL;
	assert_string_equal(ids_of(f, &q), "o1,o2");
	v->ref_type = "Group";
	assert_string_equal(ids_of(f, &q), "");
	q = q_new("Observation");
	v = q_add(f->a, &q, "subject", MOD_TYPE, 1);
	q.params[0].mod_type = "Patient";
	v->ref_id = "pb";
	assert_string_equal(ids_of(f, &q), "o3");
	q = q_new("Observation");
	v = q_add(f->a, &q, "patient", MOD_NONE, 1);
	v->raw = "Patient/pb";
	assert_string_equal(ids_of(f, &q), "o3");

	q = q_new("Questionnaire");
	v = q_add(f->a, &q, "url", MOD_NONE, 1);
	v->raw = "http://example.org/q/phq9";
	assert_string_equal(ids_of(f, &q), "q1");
	q = q_new("Questionnaire");
	v = q_add(f->a, &q, "url", MOD_BELOW, 1);
	v->raw = "http://example.org/q/";
	assert_string_equal(ids_of(f, &q), "q1,q2");
	q = q_new("Questionnaire");
	v = q_add(f->a, &q, "url", MOD_ABOVE, 1);
	v->raw = "http://example.org/q/phq9/extra";
	assert_string_equal(ids_of(f, &q), "q1");
}

static void
test_search_date_quantity(void **state)
{
	struct fx *f = *state;
	struct fhir_query q;
	struct fhir_qvalue *v;
	static const struct {
		const char *type, *code;
		enum fhir_prefix pfx;
		const char *value, *want;
	} cases[] = {
		{"Observation", "date", PFX_EQ, "2021", "o1,o3"},
		{"Observation", "date", PFX_GE, "2022", "o2"},
		{"Observation", "date", PFX_LT, "2021-06", "o1"},
		{"Observation", "date", PFX_EQ, "2021-06", "o3"},
		{"Observation", "date", PFX_EQ, "2021-03-04T10:00:00Z", "o1"},
		{"Observation", "date", PFX_GT, "2021-12-31", "o2"},
		{"Observation", "date", PFX_LE, "2021-03-04", "o1"},
		{"Patient", "birthdate", PFX_EQ, "1975", "pb"},
		{"Patient", "birthdate", PFX_EB, "1976", "pb"},
		{"Patient", "birthdate", PFX_SA, "1985", "pc"},
		{"Patient", "birthdate", PFX_NE, "1980-05-10", "pb,pc"},
		{"Patient", "birthdate", PFX_AP, "1980-05-11", "pa,pb"}, /* ±4.6 years */
	};

	load_search_data(f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		q = q_new(cases[i].type);
		v = q_add(f->a, &q, cases[i].code, MOD_NONE, 1);
		date_value(v, cases[i].pfx, cases[i].value);
		assert_string_equal(ids_of(f, &q), cases[i].want);
	}

	q = q_new("Observation");
	v = q_add(f->a, &q, "value-quantity", MOD_NONE, 1);
	v->num = 5.4, v->num_lo = 5.35, v->num_hi = 5.45;
	v->system = "http://unitsofmeasure.org", v->code = "mg/dL";
	assert_string_equal(ids_of(f, &q), "o1");
	v->code = "mm[Hg]";
	assert_string_equal(ids_of(f, &q), "");
	q = q_new("Observation");
	v = q_add(f->a, &q, "value-quantity", MOD_NONE, 1);
	v->prefix = PFX_GT, v->num = v->num_lo = v->num_hi = 6;
	assert_string_equal(ids_of(f, &q), "o2,o3");
	v->prefix = PFX_LT, v->num = v->num_lo = v->num_hi = 100, v->code = "mg/dL";
	assert_string_equal(ids_of(f, &q), "o1,o3");
	v->prefix = PFX_AP, v->num = 7, v->num_lo = 6.5, v->num_hi = 7.5;
	assert_string_equal(ids_of(f, &q), "o3");
}

/* No served type has a number parameter; give Observation one. */
static const struct fhir_path_step num_steps[] = {
	{.name = "value", .as_type = "Quantity"}, {.name = "value"},
};
static const struct fhir_sp_path num_path = {.nsteps = 2, .steps = num_steps};
static struct fhir_searchparam num_sp = {
	.code = "value-num", .type = SP_NUMBER, .npaths = 1, .paths = &num_path,
	.supported = true,
};

static void
test_search_number(void **state)
{
	struct fx *f = *state;
	const struct fhir_restype *obs = fhir_restype_find("Observation");
	struct fhir_restype rt = *obs;
	struct fhir_qparam p = {.sp = &num_sp};
	struct fhir_qvalue v;
	struct fhir_query q = {.rt = obs, .nparams = 1, .params = &p};
	const char *json[3];
	struct put_ctx c = {.a = f->a, .json = json, .n = 3, .rt = &rt};
	static const struct {
		enum fhir_prefix pfx;
		double num, lo, hi;
		const char *want;
	} cases[] = {
		{PFX_EQ, 2.5, 2.45, 2.55, "n1"},
		{PFX_EQ, 100, 99.5, 100.5, "n2"},
		{PFX_NE, 100, 99.5, 100.5, "n0,n1"},
		{PFX_GT, 2, 1.5, 2.5, "n1,n2"},
		{PFX_LE, 2.5, 2.45, 2.55, "n0,n1"},
		{PFX_SA, 2, 1.5, 2.5, "n2"},
		{PFX_EB, 3, 2.5, 3.5, "n0"},
		{PFX_AP, 1, 0.5, 1.5, "n0"},
	};

	rt.nparams = 1;
	rt.params = &num_sp;
	json[0] = "{\"resourceType\":\"Observation\",\"id\":\"n0\",\"status\":"
		  "\"final\",\"code\":{\"text\":\"x\"},\"valueQuantity\":{\"value\":1}}";
	json[1] = "{\"resourceType\":\"Observation\",\"id\":\"n1\",\"status\":"
		  "\"final\",\"code\":{\"text\":\"x\"},\"valueQuantity\":{\"value\":2.5}}";
	json[2] = "{\"resourceType\":\"Observation\",\"id\":\"n2\",\"status\":"
		  "\"final\",\"code\":{\"text\":\"x\"},\"valueQuantity\":{\"value\":100}}";
	assert_int_equal(store_write(f->s, put_fn, &c), CW_OK);
	p.nvalues = 1;
	p.values = &v;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		v = (struct fhir_qvalue){.prefix = cases[i].pfx, .num = cases[i].num,
					 .num_lo = cases[i].lo, .num_hi = cases[i].hi};
		assert_string_equal(ids_of(f, &q), cases[i].want);
	}
}

static void
test_search_chain_has(void **state)
{
	struct fx *f = *state;
	struct fhir_query q, cq;
	struct fhir_qvalue *v;
	struct fhir_qparam *chain, *has;

	load_search_data(f);
	/* Observation?subject:Patient.name=smithson */
	cq = q_new("Patient");
	v = q_add(f->a, &cq, "name", MOD_NONE, 1);
	v->text = "smithson";
	q = q_new("Observation");
	q_add(f->a, &q, "subject", MOD_NONE, 0);
	chain = &q.params[0];
	chain->chain_rt = cq.rt;
	chain->chain = &cq.params[0];
	assert_string_equal(ids_of(f, &q), "o3");
	v->text = "smith";
	assert_string_equal(ids_of(f, &q), "o1,o2,o3");

	/* Patient?_has:Observation:patient:code=1234-5 */
	cq = q_new("Observation");
	v = q_add(f->a, &cq, "code", MOD_NONE, 1);
	v->code = "1234-5";
	q = q_new("Patient");
	has = arena_zalloc(f->a, sizeof(*has));
	has->has_rt = cq.rt;
	has->has_sp = fhir_sp_find(cq.rt, "patient");
	has->has = &cq.params[0];
	q.params = has;
	q.nparams = 1;
	assert_string_equal(ids_of(f, &q), "pa,pb");
	v->code = "9999-9";
	assert_string_equal(ids_of(f, &q), "pa");
}

static void
test_search_sort_include(void **state)
{
	struct fx *f = *state;
	struct fhir_query q;
	struct fhir_qvalue *v;
	struct fhir_sort sort;
	struct fhir_include inc[2];
	struct store_page pg;
	struct diag d;

	diag_init(&d, f->a);
	load_search_data(f);
	q = q_new("Patient");
	sort = (struct fhir_sort){.sp = fhir_sp_find(q.rt, "birthdate")};
	q.sort = &sort;
	q.nsort = 1;
	assert_string_equal(ids_of(f, &q), "pb,pa,pc");
	sort.desc = true;
	assert_string_equal(ids_of(f, &q), "pc,pa,pb");
	sort = (struct fhir_sort){.sp = fhir_sp_find(q.rt, "family")};
	assert_string_equal(ids_of(f, &q), "pc,pa,pb");
	sort = (struct fhir_sort){.sp = fhir_sp_find(q.rt, "gender")};
	assert_string_equal(ids_of(f, &q), "pa,pb,pc"); /* no gender: last */
	sort.desc = true;
	assert_string_equal(ids_of(f, &q), "pb,pa,pc");
	sort = (struct fhir_sort){.sp = NULL, .desc = true};
	assert_string_equal(ids_of(f, &q), "pc,pb,pa");

	/* Observation?code=1234-5&_include=Observation:subject&_total=accurate */
	q = q_new("Observation");
	v = q_add(f->a, &q, "code", MOD_NONE, 1);
	v->code = "1234-5";
	inc[0] = (struct fhir_include){.src = q.rt,
				       .sp = fhir_sp_find(q.rt, "subject")};
	q.include = inc;
	q.ninclude = 1;
	q.total = TOTAL_ACCURATE;
	assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_OK);
	assert_int_equal(pg.n, 2);
	assert_int_equal(pg.total, 2);
	assert_int_equal(pg.nincluded, 2);
	assert_string_equal(pg.included[0].id, "pa");
	assert_string_equal(pg.included[1].id, "pb");
	q.summary = SUMMARY_COUNT;
	assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_OK);
	assert_int_equal(pg.n, 0);
	assert_int_equal(pg.total, 2);

	/* Patient?_id=pa&_revinclude=Observation:subject */
	q = q_new("Patient");
	v = q_add(f->a, &q, "_id", MOD_NONE, 1);
	v->code = "pa";
	inc[0] = (struct fhir_include){.rev = true,
				       .src = fhir_restype_find("Observation"),
				       .sp = fhir_sp_find(fhir_restype_find("Observation"),
							  "subject")};
	q.include = inc;
	q.ninclude = 1;
	assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_OK);
	assert_int_equal(pg.n, 1);
	assert_int_equal(pg.nincluded, 2);
	assert_string_equal(pg.included[0].id, "o1");
	assert_string_equal(pg.included[1].id, "o2");

	/* Observation?_id=o1&_include=Observation:subject
	 *   &_revinclude:iterate=Observation:subject: o2 comes through pa,
	 *   o1 is not repeated. */
	q = q_new("Observation");
	v = q_add(f->a, &q, "_id", MOD_NONE, 1);
	v->code = "o1";
	inc[0] = (struct fhir_include){.src = q.rt,
				       .sp = fhir_sp_find(q.rt, "subject")};
	inc[1] = (struct fhir_include){.rev = true, .iterate = true, .src = q.rt,
				       .sp = fhir_sp_find(q.rt, "subject")};
	q.include = inc;
	q.ninclude = 2;
	assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_OK);
	assert_int_equal(pg.n, 1);
	assert_int_equal(pg.nincluded, 2);
	assert_string_equal(pg.included[0].id, "pa");
	assert_string_equal(pg.included[1].id, "o2");
}

static void
test_everything(void **state)
{
	struct fx *f = *state;
	struct store_page pg;
	struct diag d;
	const char *obs[] = {"Observation"};

	diag_init(&d, f->a);
	load_search_data(f);
	assert_int_equal(store_everything(f->s, f->a, "pa", NULL, 0, 0, 2, NULL,
					  &pg, &d), CW_OK);
	assert_int_equal(pg.n, 2);
	assert_string_equal(pg.res[0].id, "pa");
	assert_string_equal(pg.res[1].id, "o1");
	assert_non_null(pg.next);
	assert_int_equal(store_everything(f->s, f->a, "pa", NULL, 0, 0, 2,
					  pg.next, &pg, &d), CW_OK);
	assert_int_equal(pg.n, 1);
	assert_string_equal(pg.res[0].id, "o2");
	assert_null(pg.next);
	assert_int_equal(store_everything(f->s, f->a, "pa", obs, 1, 0, 10, NULL,
					  &pg, &d), CW_OK);
	assert_int_equal(pg.n, 2);
	assert_string_equal(pg.res[0].id, "o1");
	assert_int_equal(store_everything(f->s, f->a, "nobody", NULL, 0, 0, 10,
					  NULL, &pg, &d), CW_ENOTFOUND);
}

static void
test_sql_text_as_values(void **state)
{
	struct fx *f = *state;
	struct fhir_query q;
	struct fhir_qvalue *v;
	struct diag d;
	long n;
	static const char *const evil[] = {
		"'; DROP TABLE res; --",
		"x' OR '1'='1",
		"\") OR 1=1 --",
		"%",
		"_",
		"1); DELETE FROM ix_token; --",
	};

	diag_init(&d, f->a);
	load_search_data(f);
	for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++) {
		q = q_new("Patient");
		v = q_add(f->a, &q, "name", MOD_CONTAINS, 1);
		v->text = evil[i];
		assert_string_equal(ids_of(f, &q), "");
		q = q_new("Patient");
		v = q_add(f->a, &q, "identifier", MOD_NONE, 1);
		v->system = evil[i], v->code = evil[i];
		assert_string_equal(ids_of(f, &q), "");
		q = q_new("Patient");
		v = q_add(f->a, &q, "_id", MOD_NONE, 1);
		v->code = evil[i];
		assert_string_equal(ids_of(f, &q), "");
	}
	assert_int_equal(store_count(f->s, NULL, &n), CW_OK);
	assert_int_equal(n, 8);
	assert_int_equal(store_check(f->s, &d), CW_OK);
	q = q_new("Patient");
	v = q_add(f->a, &q, "identifier", MOD_NONE, 1);
	v->code = "111";
	assert_string_equal(ids_of(f, &q), "pa,pb");
}

/* The same store paths through the real query parser. */
static const char *
ids_parsed(struct fx *f, const char *type, const char *key, const char *value)
{
	struct fhir_kv kv = {key, value};
	struct fhir_query q;
	struct diag d;

	diag_init(&d, f->a);
	if (fhir_query_parse(f->a, fhir_restype_find(type), &kv, 1, true, &q,
			     &d) != CW_OK)
		return "PARSE";
	return ids_of(f, &q);
}

static void
test_search_parsed(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *type, *key, *value, *want;
	} cases[] = {
		{"Patient", "identifier", "urn:mrn|111", "pa"},
		{"Patient", "identifier", "|222", "pc"},
		{"Patient", "gender:missing", "true", "pc"},
		{"Patient", "name", "SMI", "pa,pb"},
		{"Patient", "name:exact", "Smith", "pa"},
		{"Patient", "name:contains", "thso", "pb"},
		{"Patient", "birthdate", "lt1980", "pb"},
		{"Patient", "_id", "pb,pc", "pb,pc"},
		{"Observation", "subject", "Patient/pa", "o1,o2"},
		{"Observation", "patient", "pb", "o3"},
		{"Observation", "code", "http://loinc.org|1234-5", "o1,o3"},
		{"Observation", "code:text", "blood", "o2"},
		{"Observation", "value-quantity", "gt100||mm[Hg]", "o2"},
		{"Observation", "date", "2021", "o1,o3"},
		{"Observation", "subject:Patient.name", "smithson", "o3"},
		{"Observation", "patient.family", "smith", "o1,o2,o3"},
		{"Patient", "_has:Observation:patient:code", "9999-9", "pa"},
		{"Questionnaire", "url:below", "http://example.org/", "q1,q2"},
	};

	load_search_data(f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = ids_parsed(f, cases[i].type, cases[i].key,
					     cases[i].value);

		if (strcmp(got, cases[i].want) != 0)
			print_error("%s?%s=%s\n", cases[i].type, cases[i].key,
				    cases[i].value);
		assert_string_equal(got, cases[i].want);
	}
}

static void
test_readonly(void **state)
{
	struct fx *f = *state;
	struct store_res r;
	struct diag d;

	put_ok(f, "{\"resourceType\":\"Patient\",\"id\":\"ro\"}");
	store_close(f->s);
	diag_init(&d, f->a);
	f->s = open_store(f->path, true, &d);
	assert_non_null(f->s);
	assert_int_equal(store_read(f->s, f->a, "Patient", "ro", &r), CW_OK);
	assert_int_equal(put1(f, "{\"resourceType\":\"Patient\"}", true, 0,
			      NULL, NULL), CW_ENOTALLOWED);
	assert_int_equal(store_check(f->s, &d), CW_OK);
}

/* ---- paging ------------------------------------------------------------ */

#define NPAGE 1000

static void
load_paging_data(struct fx *f)
{
	const char **json = arena_alloc(f->a, NPAGE * sizeof(*json));
	struct put_ctx c = {.a = f->a, .json = json, .n = NPAGE};

	for (int i = 0; i < NPAGE; i++) {
		if (i % 10 == 0)
			json[i] = arena_printf(f->a,
				"{\"resourceType\":\"Observation\",\"id\":\"pg-%04d\","
				"\"status\":\"final\",\"code\":{\"coding\":[{"
				"\"system\":\"urn:page\",\"code\":\"x\"}]}}", i);
		else
			json[i] = arena_printf(f->a,
				"{\"resourceType\":\"Observation\",\"id\":\"pg-%04d\","
				"\"status\":\"final\",\"code\":{\"coding\":[{"
				"\"system\":\"urn:page\",\"code\":\"x\"}]},"
				"\"valueQuantity\":{\"value\":%d}}", i, i % 7);
	}
	assert_int_equal(store_write(f->s, put_fn, &c), CW_OK);
}

/* Pages through q forward, then back from the last page, and checks both
 * walks give want[] exactly. */
static void
walk_pages(struct fx *f, struct fhir_query *q, const int *want)
{
	int *got = calloc(NPAGE, sizeof(*got));
	struct store_page pg;
	struct diag d;
	size_t n = 0, pos;
	const char *last_prev = NULL;
	int pages = 0;

	diag_init(&d, f->a);
	q->count = 37;
	q->cursor = NULL;
	for (;;) {
		assert_int_equal(store_search(f->s, f->a, q, &pg, &d), CW_OK);
		if (pages++ == 0)
			assert_null(pg.prev);
		else
			assert_non_null(pg.prev);
		for (size_t i = 0; i < pg.n; i++) {
			assert_true(n < NPAGE);
			got[n++] = atoi(pg.res[i].id + 3);
		}
		last_prev = pg.prev;
		if (!pg.next)
			break;
		q->cursor = pg.next;
	}
	assert_int_equal(n, NPAGE);
	for (size_t i = 0; i < NPAGE; i++)
		assert_int_equal(got[i], want[i]);

	/* Backwards from the last page's prev link. */
	pos = NPAGE - (NPAGE % 37 ? NPAGE % 37 : 37);
	q->cursor = last_prev;
	while (q->cursor) {
		assert_int_equal(store_search(f->s, f->a, q, &pg, &d), CW_OK);
		assert_true(pg.n == 37);
		assert_non_null(pg.next);
		pos -= pg.n;
		for (size_t i = 0; i < pg.n; i++)
			assert_int_equal(atoi(pg.res[i].id + 3), want[pos + i]);
		q->cursor = pg.prev;
	}
	assert_int_equal(pos, 0);
	free(got);
}

static int *want_value_desc;

static int
cmp_value_desc(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	int vx = x % 10 ? x % 7 : -1, vy = y % 10 ? y % 7 : -1;

	if (vx != vy) {
		if (vx < 0 || vy < 0)
			return vx < 0 ? 1 : -1; /* missing last */
		return vy - vx;
	}
	return x - y;
}

static void
test_paging(void **state)
{
	struct fx *f = *state;
	struct fhir_query q;
	struct fhir_qvalue *v;
	struct fhir_sort sort;
	int *want = calloc(NPAGE, sizeof(*want));

	load_paging_data(f);
	for (int i = 0; i < NPAGE; i++)
		want[i] = i;
	q = q_new("Observation");
	v = q_add(f->a, &q, "code", MOD_NONE, 1);
	v->system = "urn:page", v->code = "x";
	walk_pages(f, &q, want);

	/* Sorted by value, descending, missing values last, many ties. */
	sort = (struct fhir_sort){.sp = fhir_sp_find(q.rt, "value-quantity"),
				  .desc = true};
	q.sort = &sort;
	q.nsort = 1;
	want_value_desc = want;
	qsort(want, NPAGE, sizeof(*want), cmp_value_desc);
	walk_pages(f, &q, want);
	free(want);
}

static void
test_bad_cursor(void **state)
{
	struct fx *f = *state;
	struct fhir_query q, sorted;
	struct fhir_sort sort;
	struct store_page pg;
	struct diag d;
	const char *good;
	static const char *const bad[] = {
		"!!!", "", "AAAA", "MTpzOm46MDAwMDAwMDA6NQ", /* 1:s:n:00000000:5 */
		"MTpzOm46", "MTpzOnE6MDAwMDAwMDA6NQ==",
	};

	diag_init(&d, f->a);
	load_search_data(f);
	q = q_new("Patient");
	q.count = 1;
	assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_OK);
	assert_non_null(pg.next);
	good = pg.next;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		q.cursor = bad[i];
		diag_init(&d, f->a);
		assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_EINVAL);
		assert_int_equal(d.nerrors, 1);
	}
	/* A cursor of another sort order, or of another kind, is refused. */
	sorted = q_new("Patient");
	sort = (struct fhir_sort){.sp = fhir_sp_find(sorted.rt, "birthdate")};
	sorted.sort = &sort;
	sorted.nsort = 1;
	sorted.cursor = good;
	assert_int_equal(store_search(f->s, f->a, &sorted, &pg, &d), CW_EINVAL);
	struct store_hist_opt ho = {.count = 5, .cursor = good};
	assert_int_equal(store_history(f->s, f->a, NULL, NULL, &ho, &pg, &d),
			 CW_EINVAL);
	/* The good one still works, and a tampered copy does not. */
	q.cursor = good;
	assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_OK);
	char *t = arena_strdup(f->a, good);
	t[strlen(t) - 1] = t[strlen(t) - 1] == 'A' ? 'B' : 'A';
	q.cursor = t;
	assert_int_not_equal(store_search(f->s, f->a, &q, &pg, &d), CW_EINTERNAL);
}

/* A chained parameter pages on the searched type's rowids, driving or not
 * (its nested driver once took the keyset bound for the chained type's). */
static void
test_chain_paging(void **state)
{
	struct fx *f = *state;
	static const struct fhir_kv kv[][2] = {
		{{"subject:Patient.name", "smith"}, {"_count", "1"}},
		{{"subject:Patient.name", "smith"}, {"status", "final,preliminary"}},
	};
	struct fhir_query q;
	struct store_page pg;
	struct sbuf sb = SBUF_INIT(1 << 10);
	struct diag d;

	diag_init(&d, f->a);
	load_search_data(f);
	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
		assert_int_equal(fhir_query_parse(f->a, fhir_restype_find("Observation"),
						  kv[i], 2, true, &q, &d), CW_OK);
		q.count = 1;
		sbuf_reset(&sb);
		do {
			assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_OK);
			for (size_t j = 0; j < pg.n; j++)
				sbuf_addf(&sb, "%s%s", sb.len ? "," : "", pg.res[j].id);
			q.cursor = pg.next;
		} while (q.cursor && sb.len < 100);
		assert_string_equal(sb.buf, "o1,o2,o3");
	}
	sbuf_release(&sb);
}

/* ---- compartment search ------------------------------------------------ */

#define NCOMP 60

/* Observations co-00..co-59: subject cp-a when i % 3 == 0, subject cp-b
 * when i % 3 == 1, subject cp-b and performer cp-a (so in both
 * compartments) when i % 6 == 2, no patient when i % 6 == 5. Code
 * "common" on all, "rare" on co-09 and co-14. Five Conditions of cp-a
 * put other types in its compartment. */
static void
load_compartment_data(struct fx *f)
{
	const char **json = arena_alloc(f->a, (NCOMP + 7) * sizeof(*json));
	struct put_ctx c = {.a = f->a, .json = json, .n = NCOMP + 7};
	size_t n = 0;

	json[n++] = "{\"resourceType\":\"Patient\",\"id\":\"cp-a\"}";
	json[n++] = "{\"resourceType\":\"Patient\",\"id\":\"cp-b\"}";
	for (int i = 0; i < NCOMP; i++) {
		const char *who = i % 3 == 0 ? ",\"subject\":{\"reference\":\"Patient/cp-a\"}" :
				  i % 3 == 1 ? ",\"subject\":{\"reference\":\"Patient/cp-b\"}" :
				  i % 6 == 2 ? ",\"subject\":{\"reference\":\"Patient/cp-b\"},"
					       "\"performer\":[{\"reference\":\"Patient/cp-a\"}]" :
				  "";

		json[n++] = arena_printf(f->a,
			"{\"resourceType\":\"Observation\",\"id\":\"co-%02d\","
			"\"status\":\"final\",\"code\":{\"coding\":["
			"{\"system\":\"urn:c\",\"code\":\"common\"}%s]}%s}", i,
			i == 9 || i == 14 ? ",{\"system\":\"urn:c\",\"code\":\"rare\"}" : "",
			who);
		if (i < 5)
			json[n++] = arena_printf(f->a,
				"{\"resourceType\":\"Condition\",\"id\":\"cc-%d\","
				"\"subject\":{\"reference\":\"Patient/cp-a\"}}", i);
	}
	assert_int_equal(n, NCOMP + 7);
	assert_int_equal(store_write(f->s, put_fn, &c), CW_OK);
}

/* Every page of q (forward with _count 4, then backward from the last
 * page), ids joined by ','; both walks must agree. */
static const char *
compartment_walk(struct fx *f, struct fhir_query *q)
{
	struct sbuf fw = SBUF_INIT(1 << 16);
	const char **ids = arena_alloc(f->a, NCOMP * sizeof(*ids));
	const char *out;
	struct store_page pg;
	struct diag d;
	size_t n = 0, pos;

	diag_init(&d, f->a);
	q->count = 4;
	q->cursor = NULL;
	for (;;) {
		assert_int_equal(store_search(f->s, f->a, q, &pg, &d), CW_OK);
		assert_true(pg.n <= 4);
		for (size_t i = 0; i < pg.n; i++) {
			assert_true(n < NCOMP);
			ids[n++] = pg.res[i].id;
			sbuf_addf(&fw, "%s%s", fw.len ? "," : "", pg.res[i].id);
		}
		if (!pg.next)
			break;
		assert_int_equal(pg.n, 4);
		q->cursor = pg.next;
	}
	/* Back from the last page's prev link to the first page. */
	q->cursor = pg.prev;
	pos = n - pg.n;
	while (q->cursor) {
		assert_int_equal(store_search(f->s, f->a, q, &pg, &d), CW_OK);
		assert_int_equal(pg.n, 4);
		assert_true(pos >= 4);
		pos -= 4;
		for (size_t i = 0; i < pg.n; i++)
			assert_string_equal(pg.res[i].id, ids[pos + i]);
		q->cursor = pg.prev;
	}
	assert_int_equal(pos, 0);
	out = arena_strdup(f->a, fw.buf);
	sbuf_release(&fw);
	return out;
}

/* The access restriction (fhir_query.allowed): a resource matches only if
 * every patient whose compartment it is in is allowed; one in no
 * compartment always does. Paging both ways and the total agree. */
static void
test_allowed_patients(void **state)
{
	static const char *const only_a[] = {"cp-a"};
	static const char *const both[] = {"cp-a", "cp-b"};
	struct fx *f = *state;
	struct sbuf want = SBUF_INIT(1 << 16), none = SBUF_INIT(1 << 16);
	struct fhir_query q;
	struct store_page pg;
	struct diag d;
	long nwant = 0;

	diag_init(&d, f->a);
	load_compartment_data(f);
	for (int i = 0; i < NCOMP; i++) {
		if (i % 3 == 0 || i % 6 == 5) {
			sbuf_addf(&want, "%sco-%02d", want.len ? "," : "", i);
			nwant++;
		}
		if (i % 6 == 5)
			sbuf_addf(&none, "%sco-%02d", none.len ? "," : "", i);
	}
	q = q_new("Observation");
	q.restrict_patients = true;
	q.allowed = only_a;
	q.nallowed = 1;
	assert_string_equal(compartment_walk(f, &q), want.buf);
	q.cursor = NULL;
	q.total = TOTAL_ACCURATE;
	assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_OK);
	assert_int_equal(pg.total, nwant);
	q.total = TOTAL_NONE;
	/* within a compartment too */
	q.compartment_patient = "cp-b";
	assert_string_equal(compartment_walk(f, &q), "");
	q.compartment_patient = NULL;
	q.nallowed = 0;
	assert_string_equal(compartment_walk(f, &q), none.buf);
	q.allowed = both;
	q.nallowed = 2;
	q.cursor = NULL;
	q.total = TOTAL_ACCURATE;
	assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_OK);
	assert_int_equal(pg.total, NCOMP);
	/* Patients are in their own compartment */
	q = q_new("Patient");
	q.restrict_patients = true;
	q.allowed = only_a;
	q.nallowed = 1;
	assert_string_equal(compartment_walk(f, &q), "cp-a");
	sbuf_release(&want);
	sbuf_release(&none);
}

static void
test_compartment_search(void **state)
{
	struct fx *f = *state;
	struct del_ctx del = {.a = f->a, .type = "Observation", .id = "co-03"};
	struct sbuf want = SBUF_INIT(1 << 16);
	struct fhir_query q, qb;
	struct fhir_qvalue *v;
	struct fhir_sort sort;
	struct store_page pg;
	struct diag d;
	const char *cur_a;
	long nwant = 0;

	diag_init(&d, f->a);
	load_compartment_data(f);
	assert_int_equal(store_write(f->s, del_fn, &del), CW_OK);
	for (int i = 0; i < NCOMP; i++) {
		if ((i % 3 == 0 || i % 6 == 2) && i != 3) {
			sbuf_addf(&want, "%sco-%02d", want.len ? "," : "", i);
			nwant++;
		}
	}

	/* Every Observation of cp-a's compartment (by subject or by
	 * performer), page by page both ways; the compartment drives. */
	q = q_new("Observation");
	q.compartment_patient = "cp-a";
	assert_string_equal(compartment_walk(f, &q), want.buf);

	/* The same with a parameter that has more rows than the compartment
	 * (the compartment still drives) and one that has fewer (the
	 * parameter drives, the compartment is probed). */
	v = q_add(f->a, &q, "code", MOD_NONE, 1);
	v->system = "urn:c", v->code = "common";
	assert_string_equal(compartment_walk(f, &q), want.buf);
	v->code = "rare";
	assert_string_equal(compartment_walk(f, &q), "co-09,co-14");
	qb = q;
	qb.compartment_patient = "cp-b";
	assert_string_equal(compartment_walk(f, &qb), "co-14");
	qb.params = NULL;
	qb.nparams = 0;
	qb.count = 1000;
	qb.cursor = NULL;
	assert_string_equal(ids_of(f, &qb),
			    "co-01,co-02,co-04,co-07,co-08,co-10,co-13,co-14,co-16,"
			    "co-19,co-20,co-22,co-25,co-26,co-28,co-31,co-32,co-34,"
			    "co-37,co-38,co-40,co-43,co-44,co-46,co-49,co-50,co-52,"
			    "co-55,co-56,co-58");

	/* Counts and other types. */
	q = q_new("Observation");
	q.compartment_patient = "cp-a";
	q.summary = SUMMARY_COUNT;
	assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_OK);
	assert_int_equal(pg.total, nwant);
	q = q_new("Condition");
	q.compartment_patient = "cp-a";
	q.total = TOTAL_ACCURATE;
	assert_string_equal(ids_of(f, &q), "cc-0,cc-1,cc-2,cc-3,cc-4");
	q.compartment_patient = "cp-b";
	assert_string_equal(ids_of(f, &q), "");
	q = q_new("Patient");
	q.compartment_patient = "cp-b";
	assert_string_equal(ids_of(f, &q), "cp-b");
	q = q_new("Observation");
	q.compartment_patient = "nobody";
	assert_string_equal(ids_of(f, &q), "");

	/* Sorted by _id descending within the compartment. */
	q = q_new("Observation");
	q.compartment_patient = "cp-a";
	sort = (struct fhir_sort){.sp = NULL, .desc = true};
	q.sort = &sort;
	q.nsort = 1;
	q.count = 1000;
	assert_string_equal(ids_of(f, &q),
			    "co-57,co-56,co-54,co-51,co-50,co-48,co-45,co-44,co-42,"
			    "co-39,co-38,co-36,co-33,co-32,co-30,co-27,co-26,co-24,"
			    "co-21,co-20,co-18,co-15,co-14,co-12,co-09,co-08,co-06,"
			    "co-02,co-00");
	q.count = 4;
	assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_OK);
	q.cursor = pg.next;
	assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_OK);
	assert_string_equal(pg.res[0].id, "co-50");

	/* A cursor belongs to its compartment: refused in another one and
	 * in the plain search, and a plain search's cursor in a compartment. */
	q = q_new("Observation");
	q.compartment_patient = "cp-a";
	q.count = 2;
	assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_OK);
	cur_a = pg.next;
	assert_non_null(cur_a);
	q.compartment_patient = "cp-b";
	q.cursor = cur_a;
	diag_init(&d, f->a);
	assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_EINVAL);
	assert_int_equal(d.nerrors, 1);
	q.compartment_patient = NULL;
	assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_EINVAL);
	q.cursor = NULL;
	assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_OK);
	q.cursor = pg.next;
	q.compartment_patient = "cp-a";
	assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_EINVAL);
	sbuf_release(&want);
}

/* A Condition of patient sp-a: code X, Y or Z. */
static const char *
span_condition(struct fx *f, const char *id, const char *pid, const char *code)
{
	return arena_printf(f->a,
		"{\"resourceType\":\"Condition\",\"id\":\"%s\","
		"\"code\":{\"coding\":[{\"system\":\"urn:s\",\"code\":\"%s\"}]},"
		"\"subject\":{\"reference\":\"Patient/%s\"}}", id, code, pid);
}

/* The rowid span of the planner (struct plan): the patient's Conditions
 * in two bursts (sa-00..09, then sa-10..14 after forty of other
 * patients'), with code X at both ends of each burst's matches and Z on
 * a few rows of either side. Every match is found, at the span's edges
 * too, paging both ways, whether the patient's rows drive (X: more rows
 * in the span than the patient has), the code's (Z: fewer), or the
 * compartment (which takes the code's span). */
static void
test_search_span(void **state)
{
	struct fx *f = *state;
	const char *json[40];
	struct put_ctx c = {.a = f->a, .json = json};
	struct fhir_query q;
	struct fhir_qvalue *v;
	struct store_page pg;
	struct diag d;

	diag_init(&d, f->a);
	c.n = 0;
	json[c.n++] = "{\"resourceType\":\"Patient\",\"id\":\"sp-a\"}";
	json[c.n++] = span_condition(f, "sz-early", "sp-b", "Z");
	assert_int_equal(store_write(f->s, put_fn, &c), CW_OK);
	c.n = 0;
	for (int i = 0; i < 10; i++)
		json[c.n++] = span_condition(f, arena_printf(f->a, "sa-%02d", i), "sp-a",
					     i == 0 || i == 9 ? "X" : i == 4 ? "Z" : "Y");
	assert_int_equal(store_write(f->s, put_fn, &c), CW_OK);
	c.n = 0;
	for (int i = 0; i < 40; i++)
		json[c.n++] = span_condition(f, arena_printf(f->a, "so-%02d", i),
					     i % 2 ? "sp-b" : "sp-c", i % 10 == 5 ? "Z" : "X");
	assert_int_equal(store_write(f->s, put_fn, &c), CW_OK);
	c.n = 0;
	for (int i = 10; i < 15; i++)
		json[c.n++] = span_condition(f, arena_printf(f->a, "sa-%02d", i), "sp-a",
					     i == 14 ? "X" : i == 12 ? "Z" : "Y");
	assert_int_equal(store_write(f->s, put_fn, &c), CW_OK);

	q = q_new("Condition");
	v = q_add(f->a, &q, "patient", MOD_NONE, 1);
	v->ref_type = "Patient", v->ref_id = "sp-a";
	v = q_add(f->a, &q, "code", MOD_NONE, 1);
	v->system = "urn:s", v->code = "X";
	assert_string_equal(compartment_walk(f, &q), "sa-00,sa-09,sa-14");
	q.count = 1;
	q.total = TOTAL_ACCURATE;
	q.cursor = NULL;
	assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_OK);
	assert_int_equal(pg.total, 3);
	q.total = TOTAL_NONE;
	v->code = "Z";
	assert_string_equal(compartment_walk(f, &q), "sa-04,sa-12");
	/* Either code: both a patient's and other patients' rows in the span. */
	q.params[1].values = arena_zalloc(f->a, 2 * sizeof(*v));
	q.params[1].nvalues = 2;
	q.params[1].values[0] = (struct fhir_qvalue){.system = "urn:s", .code = "X"};
	q.params[1].values[1] = (struct fhir_qvalue){.system = "urn:s", .code = "Z"};
	assert_string_equal(compartment_walk(f, &q), "sa-00,sa-04,sa-09,sa-12,sa-14");

	/* The compartment search: the code counted first gives the span. */
	q = q_new("Condition");
	q.compartment_patient = "sp-a";
	v = q_add(f->a, &q, "code", MOD_NONE, 1);
	v->system = "urn:s", v->code = "X";
	assert_string_equal(compartment_walk(f, &q), "sa-00,sa-09,sa-14");
	v->code = "Z";
	assert_string_equal(compartment_walk(f, &q), "sa-04,sa-12");
	q.summary = SUMMARY_COUNT;
	assert_int_equal(store_search(f->s, f->a, &q, &pg, &d), CW_OK);
	assert_int_equal(pg.total, 2);

	/* Another patient's rows lie around sp-a's second burst. */
	q = q_new("Condition");
	v = q_add(f->a, &q, "patient", MOD_NONE, 1);
	v->ref_type = "Patient", v->ref_id = "sp-b";
	v = q_add(f->a, &q, "code", MOD_NONE, 1);
	v->system = "urn:s", v->code = "Z";
	assert_string_equal(compartment_walk(f, &q), "sz-early,so-05,so-15,so-25,so-35");
}

/* ---- cost -------------------------------------------------------------- */

/* Prints the store's cost per put inside big transactions (not asserted:
 * this build has sanitizers; bench/ measures the release build). */
static void
test_put_cost(void **state)
{
	struct fx *f = *state;
	enum { N = 2000, BATCH = 500 };
	const char **json = arena_alloc(f->a, BATCH * sizeof(*json));
	struct timespec t0, t1;
	long n;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int b = 0; b < N / BATCH; b++) {
		struct put_ctx c = {.a = f->a, .json = json, .n = BATCH};

		for (int i = 0; i < BATCH; i++)
			json[i] = arena_printf(f->a,
				"{\"resourceType\":\"Observation\",\"id\":\"c%d-%d\","
				"\"status\":\"final\",\"code\":{\"coding\":[{\"system\":"
				"\"http://loinc.org\",\"code\":\"%d\"}]},\"subject\":"
				"{\"reference\":\"Patient/p%d\"},\"effectiveDateTime\":"
				"\"2021-03-04T10:00:00Z\",\"valueQuantity\":{\"value\":%d,"
				"\"system\":\"http://unitsofmeasure.org\",\"code\":\"mg\"}}",
				b, i, i % 50, i % 100, i);
		assert_int_equal(store_write(f->s, put_fn, &c), CW_OK);
		arena_reset(f->a);
		json = arena_alloc(f->a, BATCH * sizeof(*json));
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(store_count(f->s, "Observation", &n), CW_OK);
	assert_int_equal(n, N);
	print_message("store put (incl. JSON parse, sanitizers on): %.1f us/resource\n",
		      ((t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3) / N);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_versions_history, setup, teardown),
		cmocka_unit_test_setup_teardown(test_if_match_conflict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_job_rolls_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_facts_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hl7_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notice_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_commits_checkpointed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefilled_wal_recovers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_ready, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_rmw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conditional_create_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_search_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_search_string_ref_uri, setup, teardown),
		cmocka_unit_test_setup_teardown(test_search_date_quantity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_search_number, setup, teardown),
		cmocka_unit_test_setup_teardown(test_search_chain_has, setup, teardown),
		cmocka_unit_test_setup_teardown(test_search_sort_include, setup, teardown),
		cmocka_unit_test_setup_teardown(test_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sql_text_as_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_search_parsed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paging, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_cursor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_paging, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compartment_search, setup, teardown),
		cmocka_unit_test_setup_teardown(test_search_span, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allowed_patients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_cost, setup, teardown),
	};

	static const unsigned char key[STORE_KEY_BYTES] = "0123456789abcdef0123456789abcde";
	const char *enc = getenv("CW_TEST_ENCRYPTED");

	if (enc && strcmp(enc, "1") == 0) {
		test_key = key;
		print_message("every store encrypted (CW_TEST_ENCRYPTED=1)\n");
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
