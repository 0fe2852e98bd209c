/* cli/key.c: `careweave key new` and `careweave backup`.
 *
 * The key of an encrypted database is a file of 64 hex digits and a
 * newline, readable by its owner only (cli_load_key reads it). Whoever has
 * the file and the database has the data; whoever loses the key has lost
 * the data: there is no way back without it. A backup is the database
 * copied online, as of one commit, encrypted with the same key. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cli/cli.h"
#include "store/store.h"

static void
key_usage(FILE *f)
{
	fprintf(f, "usage: careweave key new FILE\n\n"
		   "Writes a new random database key (32 bytes as 64 hex digits and a\n"
		   "newline) to FILE, which must not exist, readable by its owner only\n"
		   "(mode 0600). Give it to every command with --key-file FILE or\n"
		   "$CAREWEAVE_KEY_FILE. Keep a copy apart from the database and its\n"
		   "backups: without the key the data cannot be read by anyone.\n");
}

/* Writes all of buf; false with errno set. */
static bool
write_all(int fd, const char *buf, size_t n)
{
	while (n) {
		ssize_t w = write(fd, buf, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return false;
		buf += w;
		n -= (size_t)w;
	}
	return true;
}

static int
key_new(const char *path)
{
	unsigned char *key = NULL;
	char *hex = NULL;
	int fd, rc = CLI_EIO;

	if (sodium_init() < 0) {
		cli_err("key new", "libsodium cannot start");
		return CLI_EIO;
	}
	key = sodium_malloc(STORE_KEY_BYTES);
	hex = sodium_malloc(2 * STORE_KEY_BYTES + 2);
	if (!key || !hex) {
		cli_err("key new", "out of memory");
		goto out_free;
	}
	randombytes_buf(key, STORE_KEY_BYTES);
	sodium_bin2hex(hex, 2 * STORE_KEY_BYTES + 1, key, STORE_KEY_BYTES);
	hex[2 * STORE_KEY_BYTES] = '\n';
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		cli_err("key new", "cannot create %s: %s", path, strerror(errno));
		goto out_free;
	}
	if (!write_all(fd, hex, 2 * STORE_KEY_BYTES + 1) || fsync(fd) != 0) {
		cli_err("key new", "cannot write %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		goto out_free;
	}
	close(fd);
	printf("wrote a new key to %s (keep a copy apart from the database)\n", path);
	rc = CLI_OK;
out_free:
	sodium_free(hex);
	sodium_free(key);
	return rc;
}

int
cli_key(int argc, char **argv)
{
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		key_usage(stdout);
		return CLI_OK;
	}
	if (argc != 3 || strcmp(argv[1], "new") != 0) {
		key_usage(stderr);
		return CLI_EUSAGE;
	}
	return key_new(argv[2]);
}

static void
backup_usage(FILE *f)
{
	fprintf(f, "usage: careweave backup --out FILE [--db PATH] [--key-file FILE]\n\n"
		   "Copies the database to FILE while the server may be running: the\n"
		   "copy is the database as of one commit, written to FILE.tmp, synced\n"
		   "and renamed to FILE. An encrypted database gives an encrypted copy\n"
		   "(the same key). To restore: stop the server, move the database and\n"
		   "its -wal and -shm files away, copy FILE to the database's path.\n\n"
		   "  --out FILE        where the copy goes (replaced if it exists)\n"
		   "  --key-file FILE   the database's key file\n"
		   "                    (default $CAREWEAVE_KEY_FILE)\n"
		   "  --db PATH         database file (default %s)\n", CLI_DEFAULT_DB);
}

int
cli_backup(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, 'd'},
		CLI_KEY_FILE_OPTION,
		{"out", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *key_file = NULL, *db = CLI_DEFAULT_DB, *out = NULL;
	struct store *s;
	struct arena *a;
	struct diag d;
	int c, rc = CLI_OK;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case CLI_OPT_KEY_FILE:
			key_file = optarg;
			break;
		case 'd':
			db = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			backup_usage(stdout);
			return CLI_OK;
		default:
			backup_usage(stderr);
			return CLI_EUSAGE;
		}
	}
	if (optind < argc || !out) {
		backup_usage(stderr);
		return CLI_EUSAGE;
	}
	s = cli_open_store("backup", db, true, key_file);
	if (!s)
		return CLI_EIO;
	if (!(a = arena_new(0))) {
		store_close(s);
		cli_err("backup", "out of memory");
		return CLI_EIO;
	}
	diag_init(&d, a);
	if (store_backup(s, out, &d) != CW_OK) {
		cli_err("backup", "cannot back up %s to %s: %s", db, out,
			d.n ? d.issues[0].msg : "unknown error");
		rc = CLI_EIO;
	} else {
		printf("backed up %s to %s%s\n", db, out,
		       store_is_encrypted(s) ? " (encrypted)" : "");
	}
	arena_free(a);
	store_close(s);
	return rc;
}
