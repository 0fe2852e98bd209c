/* store/sqlite_shim.c: what every careweave VFS shim shares.
 *
 * A shim (sqlite_vfs.c, which gathers the writer's WAL appends;
 * sqlite_crypt.c, which seals pages) sits over a lower VFS and does a
 * few calls itself; every other call, of the VFS and of its files, goes
 * down unchanged. This file is that "unchanged": a VFS whose calls pass
 * to the lower VFS kept in pAppData, io methods that pass to the lower
 * file a shim file holds, and the opening of that lower file. */
#include <string.h>

#include "store/store_int.h"

/* ---- files -------------------------------------------------------------- */

#define REAL(p) (((struct sq_shim_file *)(p))->real)

static int
sh_close(sqlite3_file *p)
{
	return REAL(p)->pMethods->xClose(REAL(p));
}

static int
sh_read(sqlite3_file *p, void *dst, int n, sqlite3_int64 off)
{
	return REAL(p)->pMethods->xRead(REAL(p), dst, n, off);
}

static int
sh_write(sqlite3_file *p, const void *src, int n, sqlite3_int64 off)
{
	return REAL(p)->pMethods->xWrite(REAL(p), src, n, off);
}

static int
sh_truncate(sqlite3_file *p, sqlite3_int64 size)
{
	return REAL(p)->pMethods->xTruncate(REAL(p), size);
}

static int
sh_sync(sqlite3_file *p, int flags)
{
	return REAL(p)->pMethods->xSync(REAL(p), flags);
}

static int
sh_file_size(sqlite3_file *p, sqlite3_int64 *size)
{
	return REAL(p)->pMethods->xFileSize(REAL(p), size);
}

static int
sh_lock(sqlite3_file *p, int lock)
{
	return REAL(p)->pMethods->xLock(REAL(p), lock);
}

static int
sh_unlock(sqlite3_file *p, int lock)
{
	return REAL(p)->pMethods->xUnlock(REAL(p), lock);
}

static int
sh_check_reserved(sqlite3_file *p, int *out)
{
	return REAL(p)->pMethods->xCheckReservedLock(REAL(p), out);
}

static int
sh_file_control(sqlite3_file *p, int op, void *arg)
{
	return REAL(p)->pMethods->xFileControl(REAL(p), op, arg);
}

static int
sh_sector_size(sqlite3_file *p)
{
	return REAL(p)->pMethods->xSectorSize(REAL(p));
}

static int
sh_device_characteristics(sqlite3_file *p)
{
	return REAL(p)->pMethods->xDeviceCharacteristics(REAL(p));
}

static int
sh_shm_map(sqlite3_file *p, int region, int size, int extend,
	   void volatile **out)
{
	return REAL(p)->pMethods->xShmMap(REAL(p), region, size, extend, out);
}

static int
sh_shm_lock(sqlite3_file *p, int offset, int n, int flags)
{
	return REAL(p)->pMethods->xShmLock(REAL(p), offset, n, flags);
}

static void
sh_shm_barrier(sqlite3_file *p)
{
	REAL(p)->pMethods->xShmBarrier(REAL(p));
}

static int
sh_shm_unmap(sqlite3_file *p, int del)
{
	return REAL(p)->pMethods->xShmUnmap(REAL(p), del);
}

static int
sh_fetch(sqlite3_file *p, sqlite3_int64 off, int n, void **out)
{
	return REAL(p)->pMethods->xFetch(REAL(p), off, n, out);
}

static int
sh_unfetch(sqlite3_file *p, sqlite3_int64 off, void *ptr)
{
	return REAL(p)->pMethods->xUnfetch(REAL(p), off, ptr);
}

void
sq_shim_io(sqlite3_io_methods *m, int version)
{
	*m = (sqlite3_io_methods){
		.iVersion = version,
		.xClose = sh_close,
		.xRead = sh_read,
		.xWrite = sh_write,
		.xTruncate = sh_truncate,
		.xSync = sh_sync,
		.xFileSize = sh_file_size,
		.xLock = sh_lock,
		.xUnlock = sh_unlock,
		.xCheckReservedLock = sh_check_reserved,
		.xFileControl = sh_file_control,
		.xSectorSize = sh_sector_size,
		.xDeviceCharacteristics = sh_device_characteristics,
		.xShmMap = sh_shm_map,
		.xShmLock = sh_shm_lock,
		.xShmBarrier = sh_shm_barrier,
		.xShmUnmap = sh_shm_unmap,
		.xFetch = version >= 3 ? sh_fetch : NULL,
		.xUnfetch = version >= 3 ? sh_unfetch : NULL,
	};
}

int
sq_shim_open_lower(sqlite3_vfs *vfs, struct sq_shim_file *f, size_t size,
		   sqlite3_filename name, int flags, int *out_flags,
		   int min_version)
{
	sqlite3_vfs *lower = vfs->pAppData;
	int rc;

	f->base.pMethods = NULL;
	f->real = (sqlite3_file *)((char *)f + size);
	rc = lower->xOpen(lower, name, f->real, flags, out_flags);
	if (rc == SQLITE_OK && f->real->pMethods &&
	    f->real->pMethods->iVersion >= min_version)
		return SQLITE_OK;
	/* SQLite calls xClose only when pMethods is set: ours stays NULL. */
	if (f->real->pMethods)
		f->real->pMethods->xClose(f->real);
	return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
}

/* ---- the VFS ---------------------------------------------------------------- */

#define LOWER(v) ((sqlite3_vfs *)(v)->pAppData)

static int
sv_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	return LOWER(vfs)->xDelete(LOWER(vfs), name, sync_dir);
}

static int
sv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	return LOWER(vfs)->xAccess(LOWER(vfs), name, flags, out);
}

static int
sv_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	return LOWER(vfs)->xFullPathname(LOWER(vfs), name, n, out);
}

static void *
sv_dlopen(sqlite3_vfs *vfs, const char *name)
{
	return LOWER(vfs)->xDlOpen(LOWER(vfs), name);
}

static void
sv_dlerror(sqlite3_vfs *vfs, int n, char *out)
{
	LOWER(vfs)->xDlError(LOWER(vfs), n, out);
}

static void (*sv_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	return LOWER(vfs)->xDlSym(LOWER(vfs), h, sym);
}

static void
sv_dlclose(sqlite3_vfs *vfs, void *h)
{
	LOWER(vfs)->xDlClose(LOWER(vfs), h);
}

static int
sv_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	return LOWER(vfs)->xRandomness(LOWER(vfs), n, out);
}

static int
sv_sleep(sqlite3_vfs *vfs, int us)
{
	return LOWER(vfs)->xSleep(LOWER(vfs), us);
}

static int
sv_current_time(sqlite3_vfs *vfs, double *out)
{
	return LOWER(vfs)->xCurrentTime(LOWER(vfs), out);
}

static int
sv_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	return LOWER(vfs)->xGetLastError ? LOWER(vfs)->xGetLastError(LOWER(vfs), n, out)
					 : 0;
}

static int
sv_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	return LOWER(vfs)->xCurrentTimeInt64(LOWER(vfs), out);
}

bool
sq_shim_vfs(sqlite3_vfs *vfs, sqlite3_vfs *lower, const char *name,
	    size_t file_size,
	    int (*open)(sqlite3_vfs *, sqlite3_filename, sqlite3_file *, int, int *))
{
	if (!lower || lower->iVersion < 2 || !lower->xCurrentTimeInt64)
		return false;
	*vfs = (sqlite3_vfs){
		.iVersion = 2,
		.szOsFile = (int)file_size + lower->szOsFile,
		.mxPathname = lower->mxPathname,
		.zName = name,
		.pAppData = lower,
		.xOpen = open,
		.xDelete = sv_delete,
		.xAccess = sv_access,
		.xFullPathname = sv_full_pathname,
		.xDlOpen = sv_dlopen,
		.xDlError = sv_dlerror,
		.xDlSym = sv_dlsym,
		.xDlClose = sv_dlclose,
		.xRandomness = sv_randomness,
		.xSleep = sv_sleep,
		.xCurrentTime = sv_current_time,
		.xGetLastError = sv_get_last_error,
		.xCurrentTimeInt64 = sv_current_time_int64,
	};
	return true;
}
