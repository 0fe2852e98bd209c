/* tests/unit/store/test_crypt.c: the database encrypted at rest.
 *
 * The sealing of one page (round trip, every kind of tamper, a page
 * bound to its place), then whole stores: a patient written to an
 * encrypted store is nowhere in the files in the clear, and neither is
 * SQLite's magic; the files of a plain store hold both (the control). A
 * wrong key, no key, a key for a plain file: refused with the message,
 * the files untouched. A flipped byte in the file: a read fails, never
 * wrong data. A backup is encrypted too and opens with the key.
 * (tests/unit/store/test_store.c runs again encrypted: make unit.) */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "unit.h"

#include "store/store_int.h"

#define NAME "Zqxwvutsrian"

static unsigned char key1[STORE_KEY_BYTES], key2[STORE_KEY_BYTES];

/* ---- one page ---------------------------------------------------------- */

static void
plain_page(unsigned char *p)
{
	for (size_t i = 0; i < SQ_CRYPT_PAGE; i++)
		p[i] = (unsigned char)(i * 7 + 1);
	memset(p + SQ_CRYPT_PAGE - SQ_CRYPT_RESERVE, 0, SQ_CRYPT_RESERVE);
}

static void
test_page_round_trip(void **state)
{
	unsigned char plain[SQ_CRYPT_PAGE], a[SQ_CRYPT_PAGE], b[SQ_CRYPT_PAGE];

	(void)state;
	plain_page(plain);
	assert_int_equal(sq_crypt_seal(key1, 'D', 7, plain, a), 0);
	assert_int_equal(sq_crypt_seal(key1, 'D', 7, plain, b), 0);
	/* a fresh nonce each time: the same page never seals the same */
	assert_memory_not_equal(a, b, SQ_CRYPT_PAGE);
	assert_memory_not_equal(a, plain, 64);
	assert_int_equal(sq_crypt_open(key1, 'D', 7, a), 0);
	assert_memory_equal(a, plain, SQ_CRYPT_PAGE);
}

static void
test_page_tamper(void **state)
{
	unsigned char plain[SQ_CRYPT_PAGE], sealed[SQ_CRYPT_PAGE], p[SQ_CRYPT_PAGE];
	static const size_t flips[] = {0, 100, 4055, 4056, 4079, 4080, 4095};

	(void)state;
	plain_page(plain);
	assert_int_equal(sq_crypt_seal(key1, 'W', 3, plain, sealed), 0);
	for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
		memcpy(p, sealed, SQ_CRYPT_PAGE);
		p[flips[i]] ^= 0x01; /* ciphertext, nonce, tag */
		assert_int_equal(sq_crypt_open(key1, 'W', 3, p), -1);
	}
	memcpy(p, sealed, SQ_CRYPT_PAGE);
	assert_int_equal(sq_crypt_open(key1, 'W', 4, p), -1);  /* moved */
	memcpy(p, sealed, SQ_CRYPT_PAGE);
	assert_int_equal(sq_crypt_open(key1, 'D', 3, p), -1);  /* into the db */
	memcpy(p, sealed, SQ_CRYPT_PAGE);
	assert_int_equal(sq_crypt_open(key2, 'W', 3, p), -1);  /* another key */
	memcpy(p, sealed, SQ_CRYPT_PAGE);
	assert_int_equal(sq_crypt_open(key1, 'W', 3, p), 0);
	assert_memory_equal(p, plain, SQ_CRYPT_PAGE);
}

static void
test_page_reserve_must_be_zero(void **state)
{
	unsigned char plain[SQ_CRYPT_PAGE], sealed[SQ_CRYPT_PAGE];

	(void)state;
	plain_page(plain);
	plain[SQ_CRYPT_PAGE - 1] = 1;
	assert_int_equal(sq_crypt_seal(key1, 'D', 1, plain, sealed), -1);
}

/* ---- whole stores ------------------------------------------------------ */

struct fx {
	char dir[64];
	char path[128];
	struct arena *a;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/cw-crypt-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/test.db", f->dir);
	f->a = arena_new(0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	unit_rm_dir(f->dir);
	arena_free(f->a);
	free(f);
	return 0;
}

static struct store *
open_with(struct fx *f, const char *path, const unsigned char *key,
	  bool readonly, struct diag *d)
{
	struct store_options o = {.key = key, .readonly = readonly};

	diag_init(d, f->a);
	return store_open(path, &o, d);
}

struct put_ctx {
	struct arena *a;
	const char *json;
	struct store_res out;
};

static enum cw_err
put_fn(struct store_tx *tx, void *arg)
{
	struct put_ctx *c = arg;
	json_error_t je;
	json_t *r = json_loads(c->json, 0, &je);
	struct store_put p = {.res = r, .create = true};
	enum cw_err err;

	if (!r)
		return CW_EINVAL;
	err = store_tx_put(tx, c->a, &p, &c->out, NULL);
	json_decref(r);
	return err;
}

static void
put_patient(struct fx *f, struct store *s, const char *id)
{
	char json[256];
	struct put_ctx c = {.a = f->a, .json = json};

	snprintf(json, sizeof(json),
		 "{\"resourceType\":\"Patient\",\"id\":\"%s\","
		 "\"name\":[{\"family\":\"" NAME "\"}]}", id);
	assert_int_equal(store_write(s, put_fn, &c), CW_OK);
}

/* Whether needle is anywhere in the file at path (absent: false). */
static bool
file_has(const char *path, const char *needle)
{
	size_t len = 0;
	char *buf;
	bool found;
	FILE *fp = fopen(path, "rb");
	struct stat st;

	if (!fp)
		return false;
	assert_int_equal(fstat(fileno(fp), &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	len = fread(buf, 1, (size_t)st.st_size, fp);
	fclose(fp);
	found = memmem(buf, len, needle, strlen(needle)) != NULL;
	free(buf);
	return found;
}

static bool
files_have(const char *path, const char *needle)
{
	char p[160];

	snprintf(p, sizeof(p), "%s-wal", path);
	return file_has(path, needle) || file_has(p, needle);
}

static off_t
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Writes, then looks at the files while the store is open (the record
 * is in the WAL) and after it closed (checkpointed into the file). */
static void
write_and_look(struct fx *f, const unsigned char *key, bool expect_plain)
{
	struct store *s;
	struct store_res r;
	char wal[160];
	struct diag d;

	s = open_with(f, f->path, key, false, &d);
	assert_non_null(s);
	assert_int_equal(store_is_encrypted(s), key != NULL);
	put_patient(f, s, "p1");
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_true(file_size(wal) > 0);
	assert_int_equal(file_has(wal, NAME), expect_plain);
	store_close(s);
	assert_int_equal(files_have(f->path, NAME), expect_plain);
	assert_int_equal(files_have(f->path, "SQLite format 3"), expect_plain);

	s = open_with(f, f->path, key, true, &d);
	assert_non_null(s);
	assert_int_equal(store_read(s, f->a, "Patient", "p1", &r), CW_OK);
	assert_non_null(strstr(r.json.p, NAME));
	store_close(s);
}

static void
test_store_encrypted(void **state)
{
	write_and_look(*state, key1, false);
}

static void
test_store_plain_control(void **state)
{
	write_and_look(*state, NULL, true);
}

static void
test_store_wrong_keys(void **state)
{
	struct fx *f = *state;
	struct store *s;
	struct diag d;
	char plain[160];
	off_t size;

	s = open_with(f, f->path, key1, false, &d);
	assert_non_null(s);
	put_patient(f, s, "p1");
	store_close(s);
	size = file_size(f->path);

	assert_null(open_with(f, f->path, key2, false, &d));
	assert_string_equal(d.issues[0].msg, "this key does not open the database");
	assert_null(open_with(f, f->path, NULL, false, &d));
	assert_non_null(strstr(d.issues[0].msg, "the database is encrypted"));
	assert_null(open_with(f, f->path, key2, true, &d));
	/* nothing written by the refused opens */
	assert_int_equal(file_size(f->path), size);
	assert_false(files_have(f->path, NAME));

	snprintf(plain, sizeof(plain), "%s/plain.db", f->dir);
	s = open_with(f, plain, NULL, false, &d);
	assert_non_null(s);
	store_close(s);
	assert_null(open_with(f, plain, key1, false, &d));
	assert_non_null(strstr(d.issues[0].msg, "not encrypted, but a key"));
}

static void
test_store_tamper(void **state)
{
	struct fx *f = *state;
	struct store *s;
	struct store_res r;
	struct diag d;
	unsigned char b;
	off_t size;
	int fd;

	s = open_with(f, f->path, key1, false, &d);
	assert_non_null(s);
	put_patient(f, s, "p1");
	store_close(s);
	/* flip one byte in every page but the first: whatever page holds
	 * the record, reading it must fail, never answer other bytes */
	size = file_size(f->path);
	assert_true(size >= 2 * SQ_CRYPT_PAGE);
	fd = open(f->path, O_RDWR);
	assert_true(fd >= 0);
	for (off_t off = SQ_CRYPT_PAGE + 10; off < size; off += SQ_CRYPT_PAGE) {
		assert_int_equal(pread(fd, &b, 1, off), 1);
		b ^= 0x80;
		assert_int_equal(pwrite(fd, &b, 1, off), 1);
	}
	close(fd);
	s = open_with(f, f->path, key1, true, &d);
	if (s) {
		assert_int_not_equal(store_read(s, f->a, "Patient", "p1", &r), CW_OK);
		store_close(s);
	}
}

static void
test_store_backup(void **state)
{
	struct fx *f = *state;
	struct store *s, *b;
	struct store_res r;
	struct diag d;
	char out[160], tmp[170];

	snprintf(out, sizeof(out), "%s/backup.db", f->dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", out);
	s = open_with(f, f->path, key1, false, &d);
	assert_non_null(s);
	put_patient(f, s, "p1");
	/* online: the store is open and its last commit still in the WAL */
	diag_init(&d, f->a);
	assert_int_equal(store_backup(s, out, &d), CW_OK);
	put_patient(f, s, "p2");
	store_close(s);
	assert_int_equal(file_size(tmp), -1);
	assert_false(file_has(out, NAME));
	assert_false(file_has(out, "SQLite format 3"));
	assert_null(open_with(f, out, key2, true, &d));
	b = open_with(f, out, key1, true, &d);
	assert_non_null(b);
	assert_int_equal(store_read(b, f->a, "Patient", "p1", &r), CW_OK);
	assert_int_equal(store_read(b, f->a, "Patient", "p2", &r), CW_ENOTFOUND);
	assert_int_equal(store_check(b, &d), CW_OK);
	store_close(b);
	/* and it is a database one can go on writing to */
	b = open_with(f, out, key1, false, &d);
	assert_non_null(b);
	put_patient(f, b, "p3");
	store_close(b);
	assert_false(files_have(out, NAME));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_round_trip),
		cmocka_unit_test(test_page_tamper),
		cmocka_unit_test(test_page_reserve_must_be_zero),
		cmocka_unit_test_setup_teardown(test_store_encrypted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_plain_control, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_wrong_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_tamper, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_backup, setup, teardown),
	};

	assert_true(sodium_init() >= 0);
	randombytes_buf(key1, sizeof(key1));
	randombytes_buf(key2, sizeof(key2));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
