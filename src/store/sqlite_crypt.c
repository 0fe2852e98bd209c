/* store/sqlite_crypt.c: the database encrypted at rest, one page at a time.
 *
 * A VFS layer that every connection of an encrypted store opens its files
 * through (writer, checkpointer, readers, backups). It seals each page on
 * its way to the file and opens it on its way back, so SQLite above it
 * sees plain pages and the disk below it sees none:
 *
 *   main db   page k at (k-1)*4096, all of it sealed, page 1 included (the
 *             file does not start with "SQLite format 3")
 *   WAL       32-byte header, plain (magic, page size, salts, checksums:
 *             no data); then frames: 24-byte header, plain (page number,
 *             commit size, salts, checksums over the plain page), and the
 *             4096-byte page, sealed
 *   -shm      the WAL index: page numbers and frame numbers, no content;
 *             passed through
 *   rollback  never holds a page image: an encrypted store is in WAL mode
 *   journal   from its first write, and a journal write that is not a
 *             header (sector-aligned, 4 bytes or 28 bytes of it and zeros)
 *             is refused with SQLITE_IOERR_WRITE rather than written
 *   temp      refused (SQLITE_CANTOPEN): every connection runs with
 *   files     temp_store=MEMORY, so SQLite keeps temp tables, sorts and
 *             statement journals in memory; a temp file would be plaintext
 *
 * A sealed page: the first 4056 bytes are XChaCha20-Poly1305 ciphertext
 * (crypto_aead_xchacha20poly1305_ietf, libsodium), the last 40 are the
 * page's 24-byte random nonce and 16-byte tag. SQLite leaves them alone
 * because the database reserves 40 bytes at the end of every page
 * (SQLITE_FCNTL_RESERVE_BYTES, set by store_open before the first write).
 * The associated data binds a page to its place, "D" and the page number
 * or "W" and the frame number, so pages cannot be moved about unnoticed.
 * (A page can still be rolled back to an older sealed copy of the same
 * place, or the whole file swapped for an older one: that is what a
 * backup is, and what encryption at rest does not cover.)
 *
 * The reserved bytes read back as zeros. SQLite's WAL checksums cover the
 * whole page, reserve included, and are checked again when the WAL is
 * recovered after a crash, so they must come back as SQLite wrote them:
 * SQLite zeros every new page and reads every old one through here, so it
 * only ever writes zeros there, and a page that does not is refused.
 *
 * A page that fails to open is SQLITE_NOTADB for page 1 (the wrong key)
 * and SQLITE_CORRUPT for any other; a WAL read that takes in a frame
 * header too is WAL recovery walking the log, where the last frame may be
 * torn by a crash: there a frame that fails gives zeros, its checksum
 * fails, and recovery stops at it as it would have without us.
 *
 * io_methods version 2: no xFetch, so SQLite never maps the file and
 * reads past this layer (readers lose their mmap: measured in
 * bench/README.md). Under it sits the writer's WAL-coalescing shim
 * (sqlite_vfs.c), which still sees the same ordered appends, or the
 * default VFS. Each encrypted store registers its own two VFSes, named
 * after the store, with the key in their pAppData; the key lives in
 * sodium_malloc'd memory and is wiped when the store closes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "store/store_int.h"

#define REAL(f) ((f)->sh.real)
#define NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES /* 24 */
#define TAG crypto_aead_xchacha20poly1305_ietf_ABYTES      /* 16 */
#define BODY (SQ_CRYPT_PAGE - SQ_CRYPT_RESERVE)           /* 4056 */
#define WAL_HDR 32
#define FRAME_HDR 24
#define FRAME (FRAME_HDR + SQ_CRYPT_PAGE)

_Static_assert(NONCE + TAG == SQ_CRYPT_RESERVE, "reserve holds nonce and tag");

enum file_kind { FILE_DB, FILE_WAL, FILE_JOURNAL };

struct crypt_vfs {
	sqlite3_vfs vfs; /* pAppData: the lower VFS */
	const unsigned char *key;
	char name[64];
	bool registered;
};

struct sq_crypt {
	unsigned char *key; /* SQ_CRYPT_KEY bytes, sodium_malloc'd */
	struct crypt_vfs over_wal;  /* the writer: over sqlite_vfs.c */
	struct crypt_vfs over_unix; /* everyone else */
};

struct crypt_file {
	struct sq_shim_file sh; /* real: the lower VFS's file, right after us */
	const unsigned char *key;
	enum file_kind kind;
	unsigned char *buf; /* one page of scratch, allocated on first use */
};

/* ---- one page --------------------------------------------------------- */

static void
page_ad(unsigned char ad[9], char kind, uint64_t index)
{
	ad[0] = (unsigned char)kind;
	for (int i = 0; i < 8; i++)
		ad[1 + i] = (unsigned char)(index >> (8 * i));
}

int
sq_crypt_seal(const unsigned char *key, char kind, uint64_t index,
	      const unsigned char *src, unsigned char *dst)
{
	unsigned char ad[9];

	for (size_t i = BODY; i < SQ_CRYPT_PAGE; i++)
		if (src[i])
			return -1;
	page_ad(ad, kind, index);
	randombytes_buf(dst + BODY, NONCE);
	crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
		dst, dst + BODY + NONCE, NULL, src, BODY, ad, sizeof(ad), NULL,
		dst + BODY, key);
	return 0;
}

int
sq_crypt_open(const unsigned char *key, char kind, uint64_t index,
	      unsigned char *page)
{
	unsigned char ad[9], nonce[NONCE], tag[TAG];
	int rc;

	page_ad(ad, kind, index);
	memcpy(nonce, page + BODY, NONCE);
	memcpy(tag, page + BODY + NONCE, TAG);
	rc = crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
		page, NULL, page, BODY, tag, ad, sizeof(ad), nonce, key);
	memset(page + BODY, 0, SQ_CRYPT_RESERVE);
	return rc;
}

static unsigned char *
scratch(struct crypt_file *f)
{
	if (!f->buf)
		f->buf = sqlite3_malloc(SQ_CRYPT_PAGE);
	return f->buf;
}

/* ---- the main database file ------------------------------------------- */

static int
db_read(struct crypt_file *f, unsigned char *dst, int n, sqlite3_int64 off)
{
	sqlite3_int64 end = off + n;
	bool short_read = false;

	for (sqlite3_int64 pg = off / SQ_CRYPT_PAGE; pg * SQ_CRYPT_PAGE < end; pg++) {
		sqlite3_int64 start = pg * SQ_CRYPT_PAGE;
		sqlite3_int64 lo = off > start ? off : start;
		sqlite3_int64 hi = end < start + SQ_CRYPT_PAGE ? end : start + SQ_CRYPT_PAGE;
		bool whole = lo == start && hi == start + SQ_CRYPT_PAGE;
		unsigned char *p = whole ? dst + (start - off) : scratch(f);
		int rc;

		if (!p)
			return SQLITE_NOMEM;
		rc = REAL(f)->pMethods->xRead(REAL(f), p, SQ_CRYPT_PAGE, start);
		if (rc == SQLITE_IOERR_SHORT_READ) {
			/* past the end (or a torn last page): zeros, as SQLite
			 * expects of a short read */
			memset(p, 0, SQ_CRYPT_PAGE);
			short_read = true;
		} else if (rc != SQLITE_OK) {
			return rc;
		} else if (sq_crypt_open(f->key, 'D', (uint64_t)pg + 1, p) != 0) {
			if (pg == 0)
				return SQLITE_NOTADB;
			log_error("store: page %lld of the database does not "
				  "authenticate", (long long)pg + 1);
			return SQLITE_CORRUPT;
		}
		if (!whole)
			memcpy(dst + (lo - off), p + (lo - start), (size_t)(hi - lo));
	}
	return short_read ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
}

static int
db_write(struct crypt_file *f, const unsigned char *src, int n,
	 sqlite3_int64 off)
{
	unsigned char *p = scratch(f);

	if (!p)
		return SQLITE_NOMEM;
	if (off % SQ_CRYPT_PAGE || n % SQ_CRYPT_PAGE) {
		log_error("store: refused a write of part of a page (%d bytes at %lld)",
			  n, (long long)off);
		return SQLITE_IOERR_WRITE;
	}
	for (int i = 0; i < n; i += SQ_CRYPT_PAGE) {
		uint64_t pgno = (uint64_t)((off + i) / SQ_CRYPT_PAGE) + 1;
		int rc;

		if (sq_crypt_seal(f->key, 'D', pgno, src + i, p) != 0) {
			log_error("store: page %llu has data in its reserved bytes",
				  (unsigned long long)pgno);
			return SQLITE_IOERR_WRITE;
		}
		rc = REAL(f)->pMethods->xWrite(REAL(f), p, SQ_CRYPT_PAGE, off + i);
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

/* ---- the WAL ------------------------------------------------------------ */

/* Frame i's page lies at WAL_HDR + i*FRAME + FRAME_HDR. */
static sqlite3_int64
frame_page(sqlite3_int64 i)
{
	return WAL_HDR + i * FRAME + FRAME_HDR;
}

static int
wal_read(struct crypt_file *f, unsigned char *dst, int n, sqlite3_int64 off)
{
	sqlite3_int64 end = off + n;
	/* Only recovery (and checksum rewriting) read headers with pages. */
	bool lenient = !(n == SQ_CRYPT_PAGE && off >= WAL_HDR &&
			 (off - WAL_HDR) % FRAME == FRAME_HDR);
	int rc, lrc;

	lrc = REAL(f)->pMethods->xRead(REAL(f), dst, n, off);
	if (lrc != SQLITE_OK && lrc != SQLITE_IOERR_SHORT_READ)
		return lrc;
	if (end <= WAL_HDR + FRAME_HDR)
		return lrc;
	for (sqlite3_int64 i = off < WAL_HDR ? 0 : (off - WAL_HDR) / FRAME;
	     frame_page(i) < end; i++) {
		sqlite3_int64 start = frame_page(i);
		sqlite3_int64 lo = off > start ? off : start;
		sqlite3_int64 hi = end < start + SQ_CRYPT_PAGE ? end : start + SQ_CRYPT_PAGE;
		bool whole = lo == start && hi == start + SQ_CRYPT_PAGE;
		unsigned char *p = whole ? dst + (start - off) : scratch(f);

		if (hi <= lo)
			continue;
		if (!p)
			return SQLITE_NOMEM;
		if (!whole) {
			rc = REAL(f)->pMethods->xRead(REAL(f), p, SQ_CRYPT_PAGE, start);
			if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ)
				return rc;
		}
		if (sq_crypt_open(f->key, 'W', (uint64_t)i, p) != 0) {
			memset(p, 0, SQ_CRYPT_PAGE);
			if (!lenient && lrc == SQLITE_OK) {
				log_error("store: WAL frame %lld does not authenticate",
					  (long long)i);
				return SQLITE_CORRUPT;
			}
		}
		if (!whole)
			memcpy(dst + (lo - off), p + (lo - start), (size_t)(hi - lo));
	}
	return lrc;
}

/* Writes the plain parts as they come (the coalescing shim below sees
 * the same appends) and seals each page part, which must be whole. */
static int
wal_write(struct crypt_file *f, const unsigned char *src, int n,
	  sqlite3_int64 off)
{
	sqlite3_int64 pos = off, end = off + n;

	while (pos < end) {
		sqlite3_int64 i = pos < WAL_HDR ? -1 : (pos - WAL_HDR) / FRAME;
		sqlite3_int64 page = i < 0 ? WAL_HDR : frame_page(i);
		const unsigned char *s = src + (pos - off);
		int rc;

		if (i >= 0 && pos >= page) {
			unsigned char *p = scratch(f);

			if (!p)
				return SQLITE_NOMEM;
			if (pos != page || end < page + SQ_CRYPT_PAGE) {
				log_error("store: refused a write of part of WAL frame %lld",
					  (long long)i);
				return SQLITE_IOERR_WRITE;
			}
			if (sq_crypt_seal(f->key, 'W', (uint64_t)i, s, p) != 0) {
				log_error("store: WAL frame %lld has data in its "
					  "reserved bytes", (long long)i);
				return SQLITE_IOERR_WRITE;
			}
			rc = REAL(f)->pMethods->xWrite(REAL(f), p, SQ_CRYPT_PAGE, pos);
			pos += SQ_CRYPT_PAGE;
		} else {
			/* a header (of the WAL or of a frame): plain */
			sqlite3_int64 upto = i < 0 ? WAL_HDR : page;

			if (upto > end)
				upto = end;
			rc = REAL(f)->pMethods->xWrite(REAL(f), s, (int)(upto - pos), pos);
			pos = upto;
		}
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

/* ---- the rollback journal ----------------------------------------------- */

/* Switching a new database to WAL writes page 1 under a rollback journal
 * that holds only its header (an empty file has no page to save). A
 * header is sector-aligned: 28 bytes and zeros. Anything else (a page
 * image) is refused. */
static bool
journal_header(const unsigned char *src, int n, sqlite3_int64 off)
{
	if (n <= 4)
		return true; /* a page number or a checksum */
	if (off % 512)
		return false;
	for (int i = 28; i < n; i++)
		if (src[i])
			return false;
	return true;
}

/* ---- io methods: those not here pass through (sqlite_shim.c) ----------- */

static int
cf_close(sqlite3_file *p)
{
	struct crypt_file *f = (struct crypt_file *)p;

	if (f->buf) {
		sodium_memzero(f->buf, SQ_CRYPT_PAGE);
		sqlite3_free(f->buf);
		f->buf = NULL;
	}
	return REAL(f)->pMethods->xClose(REAL(f));
}

static int
cf_read(sqlite3_file *p, void *dst, int n, sqlite3_int64 off)
{
	struct crypt_file *f = (struct crypt_file *)p;

	switch (f->kind) {
	case FILE_DB:
		return db_read(f, dst, n, off);
	case FILE_WAL:
		return wal_read(f, dst, n, off);
	default:
		return REAL(f)->pMethods->xRead(REAL(f), dst, n, off);
	}
}

static int
cf_write(sqlite3_file *p, const void *src, int n, sqlite3_int64 off)
{
	struct crypt_file *f = (struct crypt_file *)p;

	switch (f->kind) {
	case FILE_DB:
		return db_write(f, src, n, off);
	case FILE_WAL:
		return wal_write(f, src, n, off);
	default:
		if (!journal_header(src, n, off)) {
			log_error("store: refused a rollback journal write of an "
				  "encrypted database (%d bytes)", n);
			return SQLITE_IOERR_WRITE;
		}
		return REAL(f)->pMethods->xWrite(REAL(f), src, n, off);
	}
}

static int
cf_file_control(sqlite3_file *p, int op, void *arg)
{
	struct crypt_file *f = (struct crypt_file *)p;

	/* SQLite asks the VFS stack for its names with VFSNAME: ours first */
	if (op == SQLITE_FCNTL_VFSNAME) {
		char *below = NULL;

		REAL(f)->pMethods->xFileControl(REAL(f), op, &below);
		*(char **)arg = sqlite3_mprintf("careweave-crypt/%z", below);
		return SQLITE_OK;
	}
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

/* Version 2: no xFetch/xUnfetch, so no memory map bypasses the sealing. */
static sqlite3_io_methods cf_methods;
static pthread_once_t cf_once = PTHREAD_ONCE_INIT;

static void
cf_init(void)
{
	sq_shim_io(&cf_methods, 2);
	cf_methods.xClose = cf_close;
	cf_methods.xRead = cf_read;
	cf_methods.xWrite = cf_write;
	cf_methods.xFileControl = cf_file_control;
}

/* ---- the VFS ------------------------------------------------------------- */

static int
cv_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *p, int flags,
	int *out_flags)
{
	struct crypt_file *f = (struct crypt_file *)p;
	int rc;

	memset(f, 0, sizeof(*f));
	if (flags & SQLITE_OPEN_MAIN_DB)
		f->kind = FILE_DB;
	else if (flags & SQLITE_OPEN_WAL)
		f->kind = FILE_WAL;
	else if (flags & SQLITE_OPEN_MAIN_JOURNAL)
		f->kind = FILE_JOURNAL;
	else {
		/* temp files: temp_store=MEMORY should have kept them in
		 * memory; never write them in the clear */
		log_error("store: refused to open a temporary file (flags %#x) "
			  "for an encrypted database", (unsigned)flags);
		return SQLITE_CANTOPEN;
	}
	f->key = ((struct crypt_vfs *)vfs)->key;
	/* version 2 below us is enough: we never pass xFetch down */
	rc = sq_shim_open_lower(vfs, &f->sh, sizeof(*f), name, flags, out_flags, 2);
	if (rc != SQLITE_OK)
		return rc;
	f->sh.base.pMethods = &cf_methods;
	return SQLITE_OK;
}

static int
register_vfs(struct crypt_vfs *cv, const struct sq_crypt *c,
	     sqlite3_vfs *lower, const char *suffix)
{
	snprintf(cv->name, sizeof(cv->name), "careweave-crypt-%p-%s",
		 (const void *)c, suffix);
	cv->key = c->key;
	if (!sq_shim_vfs(&cv->vfs, lower, cv->name, sizeof(struct crypt_file),
			 cv_open) ||
	    sqlite3_vfs_register(&cv->vfs, 0) != SQLITE_OK)
		return SQLITE_ERROR;
	cv->registered = true;
	return SQLITE_OK;
}

struct sq_crypt *
sq_crypt_new(const unsigned char *key)
{
	struct sq_crypt *c;
	const char *wal = sq_vfs_name();

	pthread_once(&cf_once, cf_init);
	if (sodium_init() < 0 || !(c = calloc(1, sizeof(*c))))
		return NULL;
	c->key = sodium_malloc(SQ_CRYPT_KEY);
	if (!c->key) {
		free(c);
		return NULL;
	}
	memcpy(c->key, key, SQ_CRYPT_KEY);
	sodium_mprotect_readonly(c->key);
	if (register_vfs(&c->over_unix, c, sqlite3_vfs_find(NULL), "r") != SQLITE_OK ||
	    register_vfs(&c->over_wal, c,
			 sqlite3_vfs_find(wal) ? sqlite3_vfs_find(wal)
					       : sqlite3_vfs_find(NULL),
			 "w") != SQLITE_OK) {
		sq_crypt_free(c);
		return NULL;
	}
	return c;
}

void
sq_crypt_free(struct sq_crypt *c)
{
	if (!c)
		return;
	if (c->over_wal.registered)
		sqlite3_vfs_unregister(&c->over_wal.vfs);
	if (c->over_unix.registered)
		sqlite3_vfs_unregister(&c->over_unix.vfs);
	sodium_free(c->key); /* wipes it */
	free(c);
}

const char *
sq_crypt_vfs(const struct sq_crypt *c, bool writer)
{
	return writer ? c->over_wal.name : c->over_unix.name;
}

/* ---- the probe ------------------------------------------------------------ */

static const char sqlite_magic[16] = "SQLite format 3";

/* Reads up to n bytes at off; the number read, -1 on error. */
static ssize_t
read_at(int fd, unsigned char *buf, size_t n, off_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, buf + got, n - got, off + (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* The first page of the database as it would be read: from the file,
 * or (a new database whose first commit was never checkpointed) from
 * the WAL's first frame. *where tells which; false when neither has one. */
static bool
first_page(const char *path, unsigned char page[SQ_CRYPT_PAGE],
	   char *where)
{
	char wal[4200];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read_at(fd, page, SQ_CRYPT_PAGE, 0) : -1;

	if (fd >= 0)
		close(fd);
	if (n > 0) {
		if (n < SQ_CRYPT_PAGE)
			memset(page + n, 0, (size_t)(SQ_CRYPT_PAGE - n));
		*where = 'D';
		return true;
	}
	if (snprintf(wal, sizeof(wal), "%s-wal", path) >= (int)sizeof(wal))
		return false;
	fd = open(wal, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read_at(fd, page, SQ_CRYPT_PAGE, WAL_HDR + FRAME_HDR) : -1;
	if (fd >= 0)
		close(fd);
	if (n != SQ_CRYPT_PAGE)
		return false;
	*where = 'W';
	return true;
}

enum cw_err
sq_crypt_probe(const char *path, const unsigned char *key, struct diag *d)
{
	unsigned char *page;
	enum cw_err err = CW_OK;
	bool plain;
	char where;

	if (sodium_init() < 0)
		return diag_err(d, CW_EINTERNAL, "exception", NULL,
				"libsodium cannot start");
	if (!(page = sodium_malloc(SQ_CRYPT_PAGE)))
		return diag_err(d, CW_ENOMEM, "exception", NULL, "out of memory");
	/* A server may be checkpointing into page 1 as we read it, outside
	 * SQLite's locks: a torn read does not open, so read again before
	 * calling the key wrong. */
	for (int tries = 0;; tries++) {
		if (!first_page(path, page, &where))
			goto out; /* a new database: either way is fine */
		plain = memcmp(page, sqlite_magic, sizeof(sqlite_magic)) == 0;
		if (plain || !key || tries == 3 ||
		    sq_crypt_open(key, where, where == 'D' ? 1 : 0, page) == 0)
			break;
		usleep(20000);
	}
	if (plain && key)
		err = diag_err(d, CW_EFORBIDDEN, "security", NULL,
			       "the database is not encrypted, but a key was "
			       "given (leave out the key to open it)");
	else if (!plain && !key)
		err = diag_err(d, CW_EFORBIDDEN, "security", NULL,
			       "the database is encrypted (or is not a "
			       "careweave database): give its key with "
			       "--key-file or CAREWEAVE_KEY_FILE");
	else if (key && memcmp(page, sqlite_magic, sizeof(sqlite_magic)) != 0)
		err = diag_err(d, CW_EFORBIDDEN, "security", NULL,
			       "this key does not open the database");
out:
	sodium_free(page);
	return err;
}
