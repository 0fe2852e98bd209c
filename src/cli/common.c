/* cli/common.c: what several commands share: error lines, number options,
 * the key file, opening the store.
 *
 * Messages name the command and the file or option at fault and never
 * print resource contents: the store's diagnostics are client-safe text
 * about the database, not about patients. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

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

static void
sub_usage(FILE *f, const char *cmd, const char *about, const struct cli_sub *subs, size_t n)
{
	int w = 0;

	fprintf(f, "usage: careweave %s <", cmd);
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "%s%s", i ? "|" : "", subs[i].name);
		if ((int)strlen(subs[i].name) > w)
			w = (int)strlen(subs[i].name);
	}
	fprintf(f, "> [options]\n\n%s\n\n", about);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "  %-*s  %s\n", w, subs[i].name, subs[i].help);
	fprintf(f, "\n'careweave %s <subcommand> --help' describes its options.\n", cmd);
}

int
cli_run_sub(const char *cmd, const char *about, const struct cli_sub *subs, size_t n,
	    int argc, char **argv)
{
	static char prog[64];
	char names[256];
	size_t o = 0;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		sub_usage(argc < 2 ? stderr : stdout, cmd, about, subs, n);
		return argc < 2 ? CLI_EUSAGE : CLI_OK;
	}
	if (!getenv("CAREWEAVE_LOG"))
		log_set_level(LOG_WARN);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(argv[1], subs[i].name))
			continue;
		snprintf(prog, sizeof(prog), "careweave %s %s", cmd, subs[i].name);
		argv[1] = prog;
		return subs[i].fn(argc - 1, argv + 1);
	}
	names[0] = '\0';
	for (size_t i = 0; i < n && o < sizeof(names); i++)
		o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s", i ? ", " : "",
				      subs[i].name);
	cli_err(cmd, "'%s' is not a careweave %s command (%s)", argv[1], cmd, names);
	return CLI_EUSAGE;
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

/* A key file: 64 hex digits, an optional newline, nothing else. */
#define KEY_HEX (2 * STORE_KEY_BYTES)

bool
cli_load_key(const char *cmd, const char *path, unsigned char **key)
{
	char *hex = NULL;
	struct stat st;
	size_t n = 0, bin = 0;
	ssize_t r;
	bool ok = false;
	int fd;

	*key = NULL;
	if (!path && !(path = getenv(CLI_KEY_ENV)))
		return true;
	if (sodium_init() < 0) {
		cli_err(cmd, "libsodium cannot start");
		return false;
	}
	if (!*path) {
		cli_err(cmd, "the key file name is empty");
		return false;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		cli_err(cmd, "cannot read the key file %s: %s", path, strerror(errno));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		cli_err(cmd, "the key file %s is not a regular file", path);
		goto out_close;
	}
	if (st.st_mode & 077) {
		cli_err(cmd, "the key file %s may be read by others (mode %04o): "
			"run 'chmod 600 %s'", path, (unsigned)(st.st_mode & 07777), path);
		goto out_close;
	}
	hex = sodium_malloc(KEY_HEX + 2);
	*key = sodium_malloc(STORE_KEY_BYTES);
	if (!hex || !*key) {
		cli_err(cmd, "out of memory");
		goto out_close;
	}
	while (n < KEY_HEX + 2 && (r = read(fd, hex + n, KEY_HEX + 2 - n)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			cli_err(cmd, "cannot read the key file %s: %s", path,
				strerror(errno));
			goto out_close;
		}
		n += (size_t)r;
	}
	if (n == KEY_HEX + 1 && hex[KEY_HEX] == '\n')
		n--;
	if (n != KEY_HEX ||
	    sodium_hex2bin(*key, STORE_KEY_BYTES, hex, KEY_HEX, NULL, &bin, NULL) != 0 ||
	    bin != STORE_KEY_BYTES) {
		cli_err(cmd, "the key file %s is not 64 hex digits and a newline "
			"(make one with 'careweave key new FILE')", path);
		goto out_close;
	}
	ok = true;
out_close:
	if (fd >= 0)
		close(fd);
	sodium_free(hex);
	if (!ok) {
		sodium_free(*key);
		*key = NULL;
	}
	return ok;
}

struct store *
cli_open_store(const char *cmd, const char *path, bool readonly,
	       const char *key_file)
{
	struct store_options so = {.readonly = readonly};
	unsigned char *key;
	struct arena *a;
	struct store *s = NULL;
	struct diag d;

	if (!cli_load_key(cmd, key_file, &key))
		return NULL;
	so.key = key;
	if (!(a = arena_new(0))) {
		cli_err(cmd, "out of memory");
		goto out_key;
	}
	diag_init(&d, a);
	if (readonly) {
		struct stat st;

		if (stat(path, &st) != 0) {
			cli_err(cmd, "cannot open database %s: %s", path,
				strerror(errno));
			goto out_arena;
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
out_arena:
	arena_free(a);
out_key:
	sodium_free(key); /* the store keeps its own copy */
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
