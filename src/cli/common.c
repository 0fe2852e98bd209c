/* cli/common.c: what several commands share: error lines, number options,
 * opening the store.
 *
 * Messages name the command and the file or option at fault and never
 * print resource contents: the store's diagnostics are client-safe text
 * about the database, not about patients. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "store/store.h"

void
cli_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "careweave %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

bool
cli_parse_num(const char *s, unsigned long long min, unsigned long long max,
	      bool size, unsigned long long *out)
{
	unsigned long long v, mul = 1;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return false;
	if (size && *end) {
		switch (*end) {
		case 'k': case 'K': mul = 1ull << 10; break;
		case 'm': case 'M': mul = 1ull << 20; break;
		case 'g': case 'G': mul = 1ull << 30; break;
		default: return false;
		}
		end++;
		if (*end == 'i' || *end == 'I')
			end++;
		if (*end == 'b' || *end == 'B')
			end++;
	}
	if (*end)
		return false;
	if (v > max / mul)
		return false;
	v *= mul;
	if (v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* Creates the folder holding path when it is missing (one level). */
static void
ensure_parent(const char *cmd, const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[4096];
	size_t n;

	if (!slash || slash == path)
		return;
	n = (size_t)(slash - path);
	if (n >= sizeof(dir))
		return;
	memcpy(dir, path, n);
	dir[n] = '\0';
	if (mkdir(dir, 0700) == 0)
		log_info("created folder %s", dir);
	else if (errno != EEXIST)
		cli_err(cmd, "cannot create folder %s: %s", dir, strerror(errno));
}

struct store *
cli_open_store(const char *cmd, const char *path, bool readonly)
{
	struct store_options so = {.readonly = readonly};
	struct arena *a = arena_new(0);
	struct store *s;
	struct diag d;

	if (!a) {
		cli_err(cmd, "out of memory");
		return NULL;
	}
	diag_init(&d, a);
	if (readonly) {
		struct stat st;

		if (stat(path, &st) != 0) {
			cli_err(cmd, "cannot open database %s: %s", path,
				strerror(errno));
			arena_free(a);
			return NULL;
		}
	} else {
		ensure_parent(cmd, path);
	}
	s = store_open(path, &so, &d);
	if (!s) {
		cli_err(cmd, "cannot open database %s: %s", path,
			d.n ? d.issues[0].msg : "unknown error");
		if (d.log[0])
			log_error("store_open: %s", d.log);
	}
	arena_free(a);
	return s;
}

char *
cli_read_file(const char *path, size_t max, size_t *len, int *err)
{
	FILE *fp = fopen(path, "rb");
	struct stat st;
	char *buf;
	size_t n;

	*err = 0;
	if (!fp) {
		*err = errno;
		return NULL;
	}
	if (fstat(fileno(fp), &st) != 0 || (size_t)st.st_size > max) {
		*err = errno ? errno : EFBIG;
		fclose(fp);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		*err = ENOMEM;
		fclose(fp);
		return NULL;
	}
	n = fread(buf, 1, (size_t)st.st_size, fp);
	if (n != (size_t)st.st_size && ferror(fp)) {
		*err = errno ? errno : EIO;
		free(buf);
		fclose(fp);
		return NULL;
	}
	fclose(fp);
	buf[n] = '\0';
	*len = n;
	return buf;
}
