/* store/sqlite_vfs.c: a VFS shim that coalesces the writer's WAL appends.
 *
 * SQLite writes each WAL frame with two pwrite calls (a 24-byte header,
 * then the page), so a 1,000-entry transaction Bundle, about 3,500 frames,
 * cost 7,000 system calls at commit: measured, a third of the writer's time
 * for that bundle went into the commit, most of it per-call kernel work.
 * This shim sits over the default ("unix") VFS and, for WAL files only,
 * gathers appends that follow each other into one buffer written with a
 * single pwrite when it fills (about 110 calls instead of 7,000).
 *
 * Durability is unchanged: nothing is promised before xSync, and xSync
 * writes the buffer out before it syncs. Every other call that could see
 * the file (xRead, xFileSize, xTruncate, xClose) writes the buffer out
 * first, so this handle never disagrees with the file. Other connections
 * read only frames of committed transactions, which were synced, hence
 * written out. A write that is not the next append (SQLite rewinding the
 * WAL after ROLLBACK TO, or restarting it at offset 0) writes the buffer
 * out and starts over at that offset. A failed write surfaces as the
 * result of the call that caused it, so the transaction fails as it
 * would have without the shim.
 *
 * Only the writer connection opens files through this VFS (sq_vfs_name;
 * under sqlite_crypt.c's VFS when the store is encrypted, which passes
 * its appends down in the same order); readers and the checkpointer never
 * write the WAL. Main database, journal and shared-memory calls pass
 * straight through (sqlite_shim.c). */
#include <string.h>

#include "store/store_int.h"

#define SQ_VFS_NAME "careweave-wal"
/* One pwrite per WAL_BUF_BYTES of frames. The unix VFS writes at most
 * 128 KiB - 1 per call (it masks the length with 0x1ffff: a larger write
 * comes back as "disk full"), so the buffer stays under that. */
#define WAL_BUF_BYTES (124u << 10)

struct wal_file {
	struct sq_shim_file sh; /* pMethods: wf_methods; real: the default VFS's file */
	bool is_wal;
	unsigned char *buf;   /* WAL_BUF_BYTES, allocated on first append */
	size_t len;           /* bytes buffered */
	sqlite3_int64 off;    /* file offset of buf[0] */
};

static sqlite3_vfs wal_vfs;
static sqlite3_io_methods wf_methods;

#define REAL(f) ((f)->sh.real)

/* Writes the buffered bytes out. On failure they are dropped: SQLite
 * fails the transaction on the error and rewrites what it needs. */
static int
wal_flush(struct wal_file *f)
{
	int rc;

	if (!f->len)
		return SQLITE_OK;
	rc = REAL(f)->pMethods->xWrite(REAL(f), f->buf, (int)f->len, f->off);
	f->len = 0;
	return rc;
}

static int
wf_close(sqlite3_file *p)
{
	struct wal_file *f = (struct wal_file *)p;
	int rc = wal_flush(f), rc2;

	sqlite3_free(f->buf);
	f->buf = NULL;
	rc2 = REAL(f)->pMethods->xClose(REAL(f));
	return rc != SQLITE_OK ? rc : rc2;
}

static int
wf_read(sqlite3_file *p, void *dst, int n, sqlite3_int64 off)
{
	struct wal_file *f = (struct wal_file *)p;
	int rc = wal_flush(f);

	if (rc != SQLITE_OK)
		return rc;
	return REAL(f)->pMethods->xRead(REAL(f), dst, n, off);
}

static int
wf_write(sqlite3_file *p, const void *src, int n, sqlite3_int64 off)
{
	struct wal_file *f = (struct wal_file *)p;
	int rc;

	if (!f->is_wal || n <= 0 || (size_t)n > WAL_BUF_BYTES)
		goto out_direct;
	if (f->len && off == f->off + (sqlite3_int64)f->len &&
	    f->len + (size_t)n <= WAL_BUF_BYTES) {
		memcpy(f->buf + f->len, src, (size_t)n);
		f->len += (size_t)n;
		return SQLITE_OK;
	}
	rc = wal_flush(f);
	if (rc != SQLITE_OK)
		return rc;
	if (!f->buf && !(f->buf = sqlite3_malloc(WAL_BUF_BYTES)))
		goto out_direct; /* no memory for the buffer: write as is */
	memcpy(f->buf, src, (size_t)n);
	f->len = (size_t)n;
	f->off = off;
	return SQLITE_OK;

out_direct:
	rc = wal_flush(f);
	if (rc != SQLITE_OK)
		return rc;
	return REAL(f)->pMethods->xWrite(REAL(f), src, n, off);
}

static int
wf_truncate(sqlite3_file *p, sqlite3_int64 size)
{
	struct wal_file *f = (struct wal_file *)p;
	int rc = wal_flush(f);

	return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int
wf_sync(sqlite3_file *p, int flags)
{
	struct wal_file *f = (struct wal_file *)p;
	int rc = wal_flush(f);

	return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int
wf_file_size(sqlite3_file *p, sqlite3_int64 *size)
{
	struct wal_file *f = (struct wal_file *)p;
	int rc = wal_flush(f);

	return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xFileSize(REAL(f), size);
}

/* ---- the VFS: the default one's (sqlite_shim.c) but for xOpen ------------ */

static int
wv_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *p, int flags,
	int *out_flags)
{
	struct wal_file *f = (struct wal_file *)p;
	int rc;

	memset(f, 0, sizeof(*f));
	/* Our methods are version 3; so is the unix VFS. Anything older
	 * would lack xShmMap and xFetch, which WAL mode needs. */
	rc = sq_shim_open_lower(vfs, &f->sh, sizeof(*f), name, flags, out_flags, 3);
	if (rc != SQLITE_OK)
		return rc;
	f->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
	f->sh.base.pMethods = &wf_methods;
	return SQLITE_OK;
}

static pthread_once_t wv_once = PTHREAD_ONCE_INIT;
static int wv_rc = SQLITE_ERROR;

static void
wv_register(void)
{
	if (!sq_shim_vfs(&wal_vfs, sqlite3_vfs_find(NULL), SQ_VFS_NAME,
			 sizeof(struct wal_file), wv_open))
		return;
	/* Main database, journal and shared-memory calls pass through. */
	sq_shim_io(&wf_methods, 3);
	wf_methods.xClose = wf_close;
	wf_methods.xRead = wf_read;
	wf_methods.xWrite = wf_write;
	wf_methods.xTruncate = wf_truncate;
	wf_methods.xSync = wf_sync;
	wf_methods.xFileSize = wf_file_size;
	wv_rc = sqlite3_vfs_register(&wal_vfs, 0);
}

const char *
sq_vfs_name(void)
{
	pthread_once(&wv_once, wv_register);
	return wv_rc == SQLITE_OK ? SQ_VFS_NAME : NULL;
}
