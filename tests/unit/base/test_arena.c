/* Unit tests for base/arena.c, base/sbuf.c, base/diag.c, base/thread.c and
 * base/id.c. */
#include "unit.h"

static int cleanup_calls;
static void count_cleanup(void *arg) { cleanup_calls += *(int *)arg; }

static void
arena_allocates_aligned_and_grows(void **state)
{
	struct arena *a = arena_new(0);
	char *big;
	int i;

	assert_non_null(a);
	for (i = 0; i < 1000; i++) {
		void *p = arena_alloc(a, (size_t)i + 1);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % 16, 0);
		memset(p, 0xab, (size_t)i + 1);
	}
	big = arena_alloc(a, 1 << 20);
	assert_non_null(big);
	memset(big, 1, 1 << 20);
	assert_true(arena_used(a) >= (1 << 20));
	arena_reset(a);
	assert_int_equal(arena_used(a), 0);
	assert_non_null(arena_alloc(a, 10));
	arena_free(a);
}

static void
arena_cap_refuses_past_max(void **state)
{
	struct arena *a = arena_new(64 * 1024);

	assert_non_null(arena_alloc(a, 16 * 1024));
	assert_null(arena_alloc(a, 128 * 1024));
	assert_null(arena_alloc(a, SIZE_MAX - 4));
	arena_free(a);
}

static void
arena_cleanups_run_newest_first_once(void **state)
{
	struct arena *a = arena_new(0);
	int one = 1, ten = 10;

	cleanup_calls = 0;
	assert_true(arena_on_free(a, count_cleanup, &one));
	assert_true(arena_on_free(a, count_cleanup, &ten));
	arena_reset(a);
	assert_int_equal(cleanup_calls, 11);
	arena_free(a);
	assert_int_equal(cleanup_calls, 11);
}

/* Done cleanups can be taken out and run apart from the arena (the HTTP
 * worker runs them while the answer is sent); untaken ones run at reset,
 * and taking twice gives nothing. */
static void
arena_done_cleanups_run_once(void **state)
{
	struct arena *a = arena_new(0);
	struct arena_done *d;
	int one = 1, ten = 10, hundred = 100;

	cleanup_calls = 0;
	assert_null(arena_take_done(a));
	assert_true(arena_on_done(a, count_cleanup, &one));
	assert_true(arena_on_done(a, count_cleanup, &ten));
	assert_true(arena_on_free(a, count_cleanup, &hundred));
	d = arena_take_done(a);
	assert_non_null(d);
	assert_null(arena_take_done(a));
	arena_reset(a); /* the on_free one only */
	assert_int_equal(cleanup_calls, 100);
	arena_done_run(d);
	assert_int_equal(cleanup_calls, 111);
	assert_true(arena_on_done(a, count_cleanup, &one));
	arena_free(a); /* not taken: runs at free */
	assert_int_equal(cleanup_calls, 112);
	arena_done_run(NULL);
}

static void
arena_realloc_keeps_content(void **state)
{
	struct arena *a = arena_new(0);
	char *p = arena_strdup(a, "hello");

	p = arena_realloc(a, p, 6, 40000);
	assert_non_null(p);
	assert_string_equal(p, "hello");
	assert_string_equal(arena_printf(a, "%s-%d", "x", 42), "x-42");
	arena_free(a);
}

static void
sbuf_appends_and_caps(void **state)
{
	struct sbuf sb = SBUF_INIT(16);
	char *p;
	size_t n;

	assert_string_equal(sb.buf, "");
	assert_int_equal(sbuf_adds(&sb, "abc"), CW_OK);
	assert_int_equal(sbuf_addf(&sb, "%d", 123), CW_OK);
	assert_string_equal(sb.buf, "abc123");
	assert_int_equal(sbuf_adds(&sb, "0123456789abc"), CW_ETOOBIG);
	assert_true(sb.toobig);
	assert_int_equal(sbuf_addch(&sb, 'x'), CW_ETOOBIG);
	assert_string_equal(sb.buf, "abc123");
	p = sbuf_detach(&sb, &n);
	assert_int_equal(n, 6);
	assert_string_equal(p, "abc123");
	free(p);
	assert_string_equal(sb.buf, "");
	sbuf_release(&sb);
}

/* sbuf_addf writes into the room there is, grows when it does not fit,
 * and at the cap keeps nothing of the append that did not fit. */
static void
sbuf_formats_into_room_and_caps(void **state)
{
	struct sbuf sb = SBUF_INIT(100);
	char want[101];
	size_t n = 0;

	for (int i = 0; i < 30; i++) {
		assert_int_equal(sbuf_addf(&sb, "%d,", i % 10), CW_OK);
		n += (size_t)snprintf(want + n, sizeof(want) - n, "%d,", i % 10);
		assert_int_equal(sb.len, n);
		assert_string_equal(sb.buf, want);
	}
	/* 60 bytes held; 41 more would pass the cap of 100. */
	assert_int_equal(sbuf_addf(&sb, "%41s", "x"), CW_ETOOBIG);
	assert_true(sb.toobig);
	assert_int_equal(sb.len, 60);
	assert_string_equal(sb.buf, want);
	assert_int_equal(sbuf_addf(&sb, "%s", "y"), CW_ETOOBIG);
	assert_string_equal(sb.buf, want);
	sbuf_reset(&sb);
	assert_int_equal(sbuf_addf(&sb, "%40s|%s", "a", "b"), CW_OK);
	assert_int_equal(sb.len, 42);
	assert_int_equal(sbuf_addf(&sb, "%58s", "c"), CW_OK); /* exactly the cap */
	assert_int_equal(sb.len, 100);
	sbuf_release(&sb);
}

static void
sbuf_escapes_json(void **state)
{
	struct sbuf sb = SBUF_INIT(0);
	const char in[] = "a\"b\\c\nd\x01";

	assert_int_equal(sbuf_add_json_str(&sb, in, sizeof(in) - 1), CW_OK);
	assert_string_equal(sb.buf, "a\\\"b\\\\c\\nd\\u0001");
	sbuf_release(&sb);
}

static void
diag_counts_and_caps(void **state)
{
	struct arena *a = arena_new(0);
	struct diag d;
	int i;

	diag_init(&d, a);
	assert_false(diag_has_errors(&d));
	diag_add(&d, DIAG_WARNING, "informational", NULL, "just so");
	assert_false(diag_has_errors(&d));
	assert_int_equal(diag_err(&d, CW_EINVALID, "value", "Patient.birthDate",
				  "bad %s", "date"), CW_EINVALID);
	assert_true(diag_has_errors(&d));
	assert_string_equal(d.issues[1].msg, "bad date");
	assert_string_equal(d.issues[1].loc, "Patient.birthDate");
	for (i = 0; i < 200; i++)
		diag_add(&d, DIAG_ERROR, "value", NULL, "n%d", i);
	assert_int_equal(d.n, DIAG_MAX_ISSUES);
	assert_int_equal(d.dropped, 202 - DIAG_MAX_ISSUES);
	arena_free(a);
}

/* Blocks freed by arenas on one thread are taken by arenas on others
 * (base/arena.c keeps them in a shared cache): four threads at once, each
 * filling arenas of several blocks with its own byte and checking every
 * byte before it frees them, so a block handed to two arenas would show. */
#define SHARE_THREADS 4
#define SHARE_ROUNDS 200
#define SHARE_ALLOCS 40 /* of 1,000 bytes: three blocks an arena */

static void *
share_main(void *arg)
{
	unsigned char mark = (unsigned char)(uintptr_t)arg;
	unsigned char *p[SHARE_ALLOCS];
	bool ok = true;

	for (int r = 0; r < SHARE_ROUNDS && ok; r++) {
		struct arena *a = arena_new(0);

		if (!a)
			return NULL;
		for (int i = 0; i < SHARE_ALLOCS; i++) {
			p[i] = arena_alloc(a, 1000);
			if (!p[i]) {
				ok = false;
				break;
			}
			memset(p[i], mark, 1000);
		}
		for (int i = 0; i < SHARE_ALLOCS && ok; i++)
			for (int k = 0; k < 1000; k++)
				ok &= p[i][k] == mark;
		if (r % 2)
			arena_reset(a); /* a reset gives blocks back too */
		arena_free(a);
	}
	return ok ? arg : NULL;
}

static void
arena_blocks_are_shared_between_threads(void **state)
{
	pthread_t th[SHARE_THREADS];

	for (uintptr_t t = 0; t < SHARE_THREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, share_main, (void *)(t + 1)), 0);
	for (uintptr_t t = 0; t < SHARE_THREADS; t++) {
		void *ret;

		assert_int_equal(pthread_join(th[t], &ret), 0);
		assert_ptr_equal(ret, (void *)(t + 1)); /* every byte was its own */
	}
}

/* A runner runs each job handed to it on its own (named) thread, refuses
 * a second while one is in hand, and waits for a job in hand when freed. */
struct runner_job {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool go;      /* the test lets the job finish */
	int runs;
	char name[16];
};

static void *
runner_job_main(void *arg)
{
	struct runner_job *j = arg;

	pthread_getname_np(pthread_self(), j->name, sizeof(j->name));
	pthread_mutex_lock(&j->mu);
	while (!j->go)
		pthread_cond_wait(&j->cv, &j->mu);
	j->runs++;
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

static void
runner_runs_one_job_at_a_time(void **state)
{
	struct runner *r = runner_new("cw-test-runner");
	struct runner_job j = {.mu = PTHREAD_MUTEX_INITIALIZER,
			       .cv = PTHREAD_COND_INITIALIZER};

	assert_non_null(r);
	assert_int_equal(runner_start(NULL, runner_job_main, &j), -1);
	assert_int_equal(runner_start(r, runner_job_main, &j), 0);
	assert_int_equal(runner_start(r, runner_job_main, &j), -1); /* busy */
	pthread_mutex_lock(&j.mu);
	j.go = true;
	pthread_cond_broadcast(&j.cv);
	pthread_mutex_unlock(&j.mu);
	runner_wait(r);
	assert_int_equal(j.runs, 1);
	assert_string_equal(j.name, "cw-test-runner");
	runner_wait(r); /* nothing in hand: returns */
	for (int i = 0; i < 50; i++) {
		assert_int_equal(runner_start(r, runner_job_main, &j), 0);
		runner_wait(r);
	}
	assert_int_equal(j.runs, 51);
	assert_int_equal(runner_start(r, runner_job_main, &j), 0);
	runner_free(r); /* the job in hand runs before the thread ends */
	assert_int_equal(j.runs, 52);
	runner_free(NULL);
}

static void
ids_are_uuidv7_and_ordered(void **state)
{
	char a[ID_LEN + 1], b[ID_LEN + 1];

	id_new(a);
	assert_int_equal(strlen(a), 36);
	assert_int_equal(a[14], '7');
	assert_true(id_is_valid(a, strlen(a)));
	id_new(b);
	assert_true(strncmp(a, b, 13) <= 0); /* the ms prefix never goes back */
	assert_false(id_is_valid("a/b", 3));
	assert_false(id_is_valid("", 0));
	assert_true(id_is_valid("moss-patient.1", 14));
	assert_false(id_is_valid("x' OR '1'='1", 12));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(arena_allocates_aligned_and_grows),
		cmocka_unit_test(arena_cap_refuses_past_max),
		cmocka_unit_test(arena_cleanups_run_newest_first_once),
		cmocka_unit_test(arena_done_cleanups_run_once),
		cmocka_unit_test(arena_realloc_keeps_content),
		cmocka_unit_test(sbuf_appends_and_caps),
		cmocka_unit_test(sbuf_formats_into_room_and_caps),
		cmocka_unit_test(sbuf_escapes_json),
		cmocka_unit_test(diag_counts_and_caps),
		cmocka_unit_test(arena_blocks_are_shared_between_threads),
		cmocka_unit_test(runner_runs_one_job_at_a_time),
		cmocka_unit_test(ids_are_uuidv7_and_ordered),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
