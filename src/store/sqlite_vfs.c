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
 * Only the writer connection opens files through this VFS (sq_vfs_name);
 * readers and the checkpointer never write the WAL. Main database, journal
 * and shared-memory calls pass straight through. */
#include <string.h>

#include "store/store_int.h"

#define SQ_VFS_NAME "careweave-wal"
/* One pwrite per WAL_BUF_BYTES of frames. The unix VFS writes at most
 * 128 KiB - 1 per call (it masks the length with 0x1ffff: a larger write
 * comes back as "disk full"), so the buffer stays under that. */
#define WAL_BUF_BYTES (124u << 10)

struct wal_file {
	sqlite3_file base;    /* pMethods: wal_methods or pass_methods */
	sqlite3_file *real;   /* the default VFS's file, right after us */
	bool is_wal;
	unsigned char *buf;   /* WAL_BUF_BYTES, allocated on first append */
	size_t len;           /* bytes buffered */
	sqlite3_int64 off;    /* file offset of buf[0] */
};

static sqlite3_vfs *real_vfs;
static sqlite3_vfs wal_vfs;

/* Writes the buffered bytes out. On failure they are dropped: SQLite
 * fails the transaction on the error and rewrites what it needs. */
static int
wal_flush(struct wal_file *f)
{
	int rc;

	if (!f->len)
		return SQLITE_OK;
	rc = f->real->pMethods->xWrite(f->real, f->buf, (int)f->len, f->off);
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
	rc2 = f->real->pMethods->xClose(f->real);
	return rc != SQLITE_OK ? rc : rc2;
}

static int
wf_read(sqlite3_file *p, void *dst, int n, sqlite3_int64 off)
{
	struct wal_file *f = (struct wal_file *)p;
	int rc = wal_flush(f);

	if (rc != SQLITE_OK)
		return rc;
	return f->real->pMethods->xRead(f->real, dst, n, off);
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
	return f->real->pMethods->xWrite(f->real, src, n, off);
}

static int
wf_truncate(sqlite3_file *p, sqlite3_int64 size)
{
	struct wal_file *f = (struct wal_file *)p;
	int rc = wal_flush(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int
wf_sync(sqlite3_file *p, int flags)
{
	struct wal_file *f = (struct wal_file *)p;
	int rc = wal_flush(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int
wf_file_size(sqlite3_file *p, sqlite3_int64 *size)
{
	struct wal_file *f = (struct wal_file *)p;
	int rc = wal_flush(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

/* ---- calls that pass straight through ------------------------------------ */

#define REAL(p) (((struct wal_file *)(p))->real)

static int
wf_lock(sqlite3_file *p, int lock)
{
	return REAL(p)->pMethods->xLock(REAL(p), lock);
}

static int
wf_unlock(sqlite3_file *p, int lock)
{
	return REAL(p)->pMethods->xUnlock(REAL(p), lock);
}

static int
wf_check_reserved(sqlite3_file *p, int *out)
{
	return REAL(p)->pMethods->xCheckReservedLock(REAL(p), out);
}

static int
wf_file_control(sqlite3_file *p, int op, void *arg)
{
	return REAL(p)->pMethods->xFileControl(REAL(p), op, arg);
}

static int
wf_sector_size(sqlite3_file *p)
{
	return REAL(p)->pMethods->xSectorSize(REAL(p));
}

static int
wf_device_characteristics(sqlite3_file *p)
{
	return REAL(p)->pMethods->xDeviceCharacteristics(REAL(p));
}

static int
wf_shm_map(sqlite3_file *p, int region, int size, int extend,
	   void volatile **out)
{
	return REAL(p)->pMethods->xShmMap(REAL(p), region, size, extend, out);
}

static int
wf_shm_lock(sqlite3_file *p, int offset, int n, int flags)
{
	return REAL(p)->pMethods->xShmLock(REAL(p), offset, n, flags);
}

static void
wf_shm_barrier(sqlite3_file *p)
{
	REAL(p)->pMethods->xShmBarrier(REAL(p));
}

static int
wf_shm_unmap(sqlite3_file *p, int del)
{
	return REAL(p)->pMethods->xShmUnmap(REAL(p), del);
}

static int
wf_fetch(sqlite3_file *p, sqlite3_int64 off, int n, void **out)
{
	return REAL(p)->pMethods->xFetch(REAL(p), off, n, out);
}

static int
wf_unfetch(sqlite3_file *p, sqlite3_int64 off, void *ptr)
{
	return REAL(p)->pMethods->xUnfetch(REAL(p), off, ptr);
}

static sqlite3_io_methods wf_methods = {
	.iVersion = 3,
	.xClose = wf_close,
	.xRead = wf_read,
	.xWrite = wf_write,
	.xTruncate = wf_truncate,
	.xSync = wf_sync,
	.xFileSize = wf_file_size,
	.xLock = wf_lock,
	.xUnlock = wf_unlock,
	.xCheckReservedLock = wf_check_reserved,
	.xFileControl = wf_file_control,
	.xSectorSize = wf_sector_size,
	.xDeviceCharacteristics = wf_device_characteristics,
	.xShmMap = wf_shm_map,
	.xShmLock = wf_shm_lock,
	.xShmBarrier = wf_shm_barrier,
	.xShmUnmap = wf_shm_unmap,
	.xFetch = wf_fetch,
	.xUnfetch = wf_unfetch,
};

/* ---- the VFS ---------------------------------------------------------------- */

static int
wv_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *p, int flags,
	int *out_flags)
{
	struct wal_file *f = (struct wal_file *)p;
	int rc;

	(void)vfs;
	memset(f, 0, sizeof(*f));
	f->real = (sqlite3_file *)(f + 1);
	rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
	if (rc != SQLITE_OK || !f->real->pMethods) {
		/* SQLite calls xClose only when pMethods is set. */
		if (f->real->pMethods)
			f->real->pMethods->xClose(f->real);
		f->base.pMethods = NULL;
		return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
	}
	/* Our methods are version 3; so is the unix VFS. Anything older
	 * would lack xShmMap and xFetch, which WAL mode needs. */
	if (f->real->pMethods->iVersion < 3) {
		f->real->pMethods->xClose(f->real);
		f->base.pMethods = NULL;
		return SQLITE_CANTOPEN;
	}
	f->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
	f->base.pMethods = &wf_methods;
	return SQLITE_OK;
}

/* The rest of the VFS is the default one's. */
static int
wv_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int
wv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int
wv_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *
wv_dlopen(sqlite3_vfs *vfs, const char *name)
{
	return real_vfs->xDlOpen(real_vfs, name);
}

static void
wv_dlerror(sqlite3_vfs *vfs, int n, char *out)
{
	real_vfs->xDlError(real_vfs, n, out);
}

static void (*wv_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	return real_vfs->xDlSym(real_vfs, h, sym);
}

static void
wv_dlclose(sqlite3_vfs *vfs, void *h)
{
	real_vfs->xDlClose(real_vfs, h);
}

static int
wv_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	return real_vfs->xRandomness(real_vfs, n, out);
}

static int
wv_sleep(sqlite3_vfs *vfs, int us)
{
	return real_vfs->xSleep(real_vfs, us);
}

static int
wv_current_time(sqlite3_vfs *vfs, double *out)
{
	return real_vfs->xCurrentTime(real_vfs, out);
}

static int
wv_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, n, out) : 0;
}

static int
wv_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static pthread_once_t wv_once = PTHREAD_ONCE_INIT;
static int wv_rc = SQLITE_ERROR;

static void
wv_register(void)
{
	real_vfs = sqlite3_vfs_find(NULL);
	if (!real_vfs || real_vfs->iVersion < 2 || !real_vfs->xCurrentTimeInt64)
		return;
	wal_vfs = (sqlite3_vfs){
		.iVersion = 2,
		.szOsFile = (int)sizeof(struct wal_file) + real_vfs->szOsFile,
		.mxPathname = real_vfs->mxPathname,
		.zName = SQ_VFS_NAME,
		.xOpen = wv_open,
		.xDelete = wv_delete,
		.xAccess = wv_access,
		.xFullPathname = wv_full_pathname,
		.xDlOpen = wv_dlopen,
		.xDlError = wv_dlerror,
		.xDlSym = wv_dlsym,
		.xDlClose = wv_dlclose,
		.xRandomness = wv_randomness,
		.xSleep = wv_sleep,
		.xCurrentTime = wv_current_time,
		.xGetLastError = wv_get_last_error,
		.xCurrentTimeInt64 = wv_current_time_int64,
	};
	wv_rc = sqlite3_vfs_register(&wal_vfs, 0);
}

const char *
sq_vfs_name(void)
{
	pthread_once(&wv_once, wv_register);
	return wv_rc == SQLITE_OK ? SQ_VFS_NAME : NULL;
}
