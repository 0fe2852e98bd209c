/* cli/cli.h: the careweave command line, shared between its files.
 *
 * main.c holds the command table and dispatches to one cli_<command>
 * function per command; each returns the process exit code. The helpers
 * below are what several commands share (options, opening the store). */
#ifndef CW_CLI_H
#define CW_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"

/* Exit codes every command uses. */
enum cli_exit {
	CLI_OK = 0,
	CLI_EDATA = 1,  /* bad data: invalid resources, unknown patient */
	CLI_EUSAGE = 2, /* bad command line */
	CLI_EIO = 3,    /* files, sockets, the database */
	CLI_ENOTFOUND = 4, /* kb lookup: careweave knows no such thing */
};

#define CLI_DEFAULT_DB "./data/careweave.db"

/* The commands (argv[0] is the command's name). */
int cli_serve(int argc, char **argv);
int cli_import(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_demo(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_user(int argc, char **argv);
int cli_audit(int argc, char **argv);
int cli_glass(int argc, char **argv);
int cli_key(int argc, char **argv);
int cli_backup(int argc, char **argv);
int cli_kb(int argc, char **argv);
int cli_hl7(int argc, char **argv);

struct store;
struct api;
struct kb;

/* Loads the knowledge base (kb.c): from dir (--kb), else $CAREWEAVE_KB,
 * else ./data/kb. Every problem is printed on stderr as FILE:LINE: REASON.
 * NULL with *rc CLI_EDATA (invalid) or CLI_EIO (unreadable); when optional
 * and the default folder does not exist, NULL with *rc CLI_OK. */
struct kb *cli_kb_open(const char *cmd, const char *dir, bool optional, int *rc);
struct coord;
/* The knowledge base of dir (kb_dir: --kb, $CAREWEAVE_KB, ./data/kb) and
 * the write path's rules over it, for the doors that write (serve,
 * import, demo): without a kb they refuse to start, since no medication
 * could be checked. An exit code; close with cli_rules_close. */
int cli_rules_open(const char *cmd, const char *dir, struct kb **kb,
		   struct coord **co);
void cli_rules_close(struct kb *kb, struct coord *co);

/* Prints "careweave <cmd>: <message>" on stderr. */
void cli_err(const char *cmd, const char *fmt, ...) CW_PRINTF(2, 3);

/* One subcommand of a command that has several (careweave user add). */
struct cli_sub {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};
/* Runs the subcommand argv[1] of cmd ("user") from subs[0..n): none, or
 * --help, prints the usage (about: what cmd is for, a sentence or two,
 * then the subcommands with their help); an unknown one is a usage error
 * naming those there are. The subcommand gets argv[0] "careweave CMD SUB"
 * (getopt's messages name it) and logs at warn unless CAREWEAVE_LOG
 * says otherwise. */
int cli_run_sub(const char *cmd, const char *about, const struct cli_sub *subs, size_t n,
		int argc, char **argv);

/* Parses a whole decimal number in [min, max] (k, M, G suffixes when
 * size is set: 1024-based). False if it is not one. */
bool cli_parse_num(const char *s, unsigned long long min,
		   unsigned long long max, bool size, unsigned long long *out);

/* The whole file at path, NUL-terminated (caller frees), *len its size.
 * NULL with *err an errno value when it cannot be read or is larger than
 * max bytes (EFBIG). */
char *cli_read_file(const char *path, size_t max, size_t *len, int *err);

/* Every command that opens the database takes --key-file FILE; without
 * it, the file named by $CAREWEAVE_KEY_FILE, if set. */
#define CLI_OPT_KEY_FILE 0x4b46
#define CLI_KEY_FILE_OPTION {"key-file", required_argument, NULL, CLI_OPT_KEY_FILE}
#define CLI_KEY_ENV "CAREWEAVE_KEY_FILE"

/* The key in the key file at path (--key-file; NULL: $CAREWEAVE_KEY_FILE;
 * neither: *key is NULL and the database is not encrypted). A key file
 * is 64 hex digits and a newline, readable by its owner only. *key is
 * sodium_malloc'd (release with sodium_free, which wipes it). False,
 * having said why, when the file cannot be used. */
bool cli_load_key(const char *cmd, const char *path, unsigned char **key);

/* Opens the store at path, creating its folder when writable, with the
 * key of cli_load_key(key_file). On failure prints why (naming the
 * command and the path) and returns NULL. */
struct store *cli_open_store(const char *cmd, const char *path, bool readonly,
			     const char *key_file);

/* Adds the demo's users (one per role of the demo care teams, user.c) with
 * random passwords printed once to stdout; users already there are left
 * as they are. Returns an exit code. */
int cli_demo_users(struct store *s);

/* The import engine (import.c), shared by import and demo. */
struct cli_import_opt {
	bool keep_order; /* import files in the given order (demo) */
	bool progress;   /* progress line on stderr */
	bool quiet;      /* no per-type report */
	struct coord *coord; /* the write path's rules (they never refuse an
	                        import: what was prescribed is recorded, with
	                        its findings) */
};

/* Imports paths (files; directories are expanded to their .json and
 * .ndjson files) into s. Prints the report; returns an exit code. */
int cli_import_paths(const char *cmd, struct store *s, char **paths,
		     size_t npaths, const struct cli_import_opt *opt);

#endif
