/* cli/user.c: `careweave user add|list|disable|reset-password|totp`, and the
 * demo users.
 *
 * The operator's door to the users table: it runs with the database file's
 * permissions, like import and export, and signs in as nobody. Subcommands
 * are a cli_sub table (cli_run_sub, common.c). Passwords are never taken
 * as an argument (they would sit in the shell history and in
 * /proc/PID/cmdline): they come from standard input when it is not a
 * terminal (or with --password-stdin), else
 * from a prompt typed twice without echo. They are read with read(2), not
 * stdio, so no libc buffer keeps a copy, and wiped once hashed. Nothing
 * here prints a hash. A TOTP secret is printed once, when it is made
 * (`user totp`, `user add --admin`, the demo's admin), and never again. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "access/access.h"
#include "cli/cli.h"
#include "store/store.h"

#define PW_BUF (ACCESS_PASSWORD_MAX + 2)

/* Maps an access/store error to the README's exit codes. */
static int
exit_of(enum cw_err err)
{
	switch (err) {
	case CW_OK:
		return CLI_OK;
	case CW_EINVAL:
	case CW_EINVALID:
	case CW_ECONFLICT:
	case CW_ENOTFOUND:
		return CLI_EDATA;
	default:
		return CLI_EIO;
	}
}

static void
print_issue(const char *cmd, enum cw_err err, const struct diag *d)
{
	cli_err(cmd, "%s", d->n ? d->issues[0].msg : cw_strerror(err));
}

/* Reads one line from fd into buf (at most cap - 1 bytes, NUL-terminated,
 * without the line end). -1 on a read error, -2 when the line is too long. */
static int
read_line(int fd, char *buf, size_t cap, size_t *n)
{
	size_t k = 0;
	ssize_t r;
	char c;

	for (;;) {
		r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0 || c == '\n')
			break;
		if (k + 1 >= cap) {
			/* drain the rest so nothing is left for the shell */
			while ((r = read(fd, &c, 1)) == 1 && c != '\n')
				;
			return -2;
		}
		buf[k++] = c;
	}
	if (k && buf[k - 1] == '\r')
		k--;
	buf[k] = '\0';
	*n = k;
	return 0;
}

/* Prompts on the terminal with echo off. */
static int
prompt(const char *what, char *buf, size_t cap, size_t *n)
{
	struct termios old, quiet;
	int rc;

	fprintf(stderr, "%s: ", what);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &old) != 0)
		return -1;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0)
		return -1;
	rc = read_line(STDIN_FILENO, buf, cap, n);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	return rc;
}

/* Gets the new password into pw (PW_BUF bytes). Returns an exit code. */
static int
get_password(const char *cmd, bool from_stdin, char *pw, size_t *n)
{
	char again[PW_BUF];
	size_t n2 = 0;
	int rc;

	if (from_stdin || !isatty(STDIN_FILENO)) {
		rc = read_line(STDIN_FILENO, pw, PW_BUF, n);
	} else {
		rc = prompt("New password", pw, PW_BUF, n);
		if (!rc)
			rc = prompt("Same password again", again, sizeof(again), &n2);
		if (!rc && (n2 != *n || sodium_memcmp(pw, again, *n))) {
			sodium_memzero(again, sizeof(again));
			cli_err(cmd, "the two passwords differ");
			return CLI_EDATA;
		}
		sodium_memzero(again, sizeof(again));
	}
	if (rc == -2) {
		cli_err(cmd, "the password is longer than %d bytes", ACCESS_PASSWORD_MAX);
		return CLI_EDATA;
	}
	if (rc) {
		cli_err(cmd, "cannot read the password: %s", strerror(errno));
		return CLI_EIO;
	}
	return CLI_OK;
}

/* Prints a new TOTP secret of name, the one time it is shown. */
static void
print_totp(const char *indent, const char *name, const struct access_totp *t)
{
	printf("%sone-time codes (TOTP) for %s: add this secret to an authenticator app;\n"
	       "%sit is shown this once ('careweave user totp %s' makes a new one)\n"
	       "%s  secret  %s\n%s  uri     %s\n",
	       indent, name, indent, name, indent, t->secret, indent, t->uri);
}

/* ---- the subcommands ------------------------------------------------------ */

static void
add_usage(FILE *f)
{
	fprintf(f,
		"usage: careweave user add --username NAME (--role ROLE --link TYPE/ID | --admin)\n"
		"                          [--db PATH] [--password-stdin]\n\n"
		"Adds a person who may sign in. The password is read from standard input\n"
		"when it is not a terminal (one line), else prompted for twice. At least\n"
		"%d characters. There are no default passwords. An admin gets a TOTP\n"
		"secret for one-time codes at once (printed this once): admins sign in\n"
		"with a code from an authenticator app as well.\n\n"
		"  --username NAME    1 to 64 of a-z 0-9 . _ @ - (letters are lower-cased)\n"
		"  --role ROLE        admin, coordinator, physician, nurse, pharmacist,\n"
		"                     therapist, social-worker, patient, caregiver,\n"
		"                     privacy-officer (no clinical data; told of every\n"
		"                     break-the-glass), service (another system: needs\n"
		"                     --system-client)\n"
		"  --link TYPE/ID     the resource this person is: Practitioner/ID for\n"
		"                     clinical roles and privacy officers, Patient/ID for a patient,\n"
		"                     RelatedPerson/ID for a caregiver; it must exist.\n"
		"                     Admins need none; a service may link to a Device.\n"
		"  --admin            the same as --role admin (the first user)\n"
		"  --system-client    confirms --role service: a system-to-system client\n"
		"                     (an EHR interface) that reads and writes every\n"
		"                     patient's record; never give it to a person\n"
		"  --password-stdin   read the password from standard input\n"
		"  --key-file FILE    the database's key file\n"
		"                     (default $CAREWEAVE_KEY_FILE)\n"
		"  --db PATH          database file (default %s)\n",
		ACCESS_PASSWORD_MIN, CLI_DEFAULT_DB);
}

static int
user_add(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, 'd'},
		CLI_KEY_FILE_OPTION,
		{"username", required_argument, NULL, 'u'},
		{"role", required_argument, NULL, 'r'},
		{"link", required_argument, NULL, 'l'},
		{"admin", no_argument, NULL, 'A'},
		{"system-client", no_argument, NULL, 'S'},
		{"password-stdin", no_argument, NULL, 'P'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *key_file = NULL, *db = CLI_DEFAULT_DB, *username = NULL, *role_s = NULL,
		   *link = NULL;
	enum access_role role;
	char pw[PW_BUF];
	bool from_stdin = false, admin = false, system_client = false;
	struct store *s;
	struct arena *a;
	struct diag d;
	enum cw_err err;
	size_t n = 0;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case CLI_OPT_KEY_FILE:
			key_file = optarg;
			break;
		case 'd': db = optarg; break;
		case 'u': username = optarg; break;
		case 'r': role_s = optarg; break;
		case 'l': link = optarg; break;
		case 'A': admin = true; break;
		case 'S': system_client = true; break;
		case 'P': from_stdin = true; break;
		case 'h': add_usage(stdout); return CLI_OK;
		default: add_usage(stderr); return CLI_EUSAGE;
		}
	}
	if (optind < argc) {
		cli_err("user add", "unexpected argument '%s'", argv[optind]);
		return CLI_EUSAGE;
	}
	if (!username) {
		cli_err("user add", "--username is required");
		return CLI_EUSAGE;
	}
	if (admin && role_s && strcmp(role_s, "admin")) {
		cli_err("user add", "--admin and --role %s contradict each other", role_s);
		return CLI_EUSAGE;
	}
	if (admin)
		role_s = "admin";
	if (!role_s) {
		cli_err("user add", "--role (or --admin) is required");
		return CLI_EUSAGE;
	}
	if (!access_role_parse(role_s, &role)) {
		cli_err("user add", "--role: '%s' is not a role (see --help)", role_s);
		return CLI_EUSAGE;
	}
	/* A service account sees every record: nobody makes one by accident. */
	if ((role == ACCESS_SERVICE) != system_client) {
		cli_err("user add", role == ACCESS_SERVICE ?
			"--role service sees every patient's record; confirm with --system-client" :
			"--system-client goes with --role service only");
		return CLI_EUSAGE;
	}
	if ((rc = get_password("user add", from_stdin, pw, &n)))
		goto out_wipe;
	s = cli_open_store("user add", db, false, key_file);
	if (!s) {
		rc = CLI_EIO;
		goto out_wipe;
	}
	a = arena_new(0);
	if (!a) {
		rc = CLI_EIO;
		goto out_store;
	}
	diag_init(&d, a);
	err = access_user_add(s, a, username, role, link, pw, n, &d);
	if (err) {
		print_issue("user add", err, &d);
	} else {
		char name[ACCESS_USERNAME_MAX + 1];
		struct access_totp t;

		access_username_norm(username, name, &d);
		printf("added user %s (%s%s%s)\n", name,
		       access_role_name(role), link ? ", " : "", link ? link : "");
		if (role == ACCESS_ADMIN) {
			err = access_user_totp_set(s, name, true, &t, &d);
			if (err)
				print_issue("user add", err, &d);
			else
				print_totp("", name, &t);
			sodium_memzero(&t, sizeof(t));
		}
	}
	rc = exit_of(err);
	arena_free(a);
out_store:
	store_close(s);
out_wipe:
	sodium_memzero(pw, sizeof(pw));
	return rc;
}

static void
list_usage(FILE *f)
{
	fprintf(f, "usage: careweave user list [--db PATH]\n\n"
		   "Lists the users: username, role, link, whether one-time codes (TOTP)\n"
		   "are on, and state (active, disabled, or locked until a time after\n"
		   "failed sign-ins). Never a hash or a secret.\n\n"
		   "  --key-file FILE the database's key file\n"
		   "                  (default $CAREWEAVE_KEY_FILE)\n"
		   "  --db PATH   database file (default %s)\n", CLI_DEFAULT_DB);
}

static int
user_list(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, 'd'},
		CLI_KEY_FILE_OPTION,
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *key_file = NULL, *db = CLI_DEFAULT_DB;
	struct store_user *u;
	struct store *s;
	struct arena *a;
	enum cw_err err;
	int64_t now = time_now_ms();
	size_t n = 0;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case CLI_OPT_KEY_FILE:
			key_file = optarg;
			break;
		case 'd': db = optarg; break;
		case 'h': list_usage(stdout); return CLI_OK;
		default: list_usage(stderr); return CLI_EUSAGE;
		}
	}
	if (optind < argc) {
		cli_err("user list", "unexpected argument '%s'", argv[optind]);
		return CLI_EUSAGE;
	}
	s = cli_open_store("user list", db, true, key_file);
	if (!s)
		return CLI_EIO;
	a = arena_new(0);
	err = a ? store_user_list(s, a, &u, &n) : CW_ENOMEM;
	if (err) {
		cli_err("user list", "cannot read the users: %s", cw_strerror(err));
	} else {
		printf("%-24s %-14s %-36s %-4s %s\n", "USERNAME", "ROLE", "LINK",
		       "TOTP", "STATE");
		for (size_t i = 0; i < n; i++) {
			char when[32], state[64];

			if (u[i].disabled) {
				snprintf(state, sizeof(state), "disabled");
			} else if (u[i].locked_until > now) {
				time_format_instant(u[i].locked_until, when);
				snprintf(state, sizeof(state), "locked until %s", when);
			} else {
				snprintf(state, sizeof(state), "active");
			}
			printf("%-24s %-14s %-36s %-4s %s\n", u[i].username,
			       u[i].role, u[i].link ? u[i].link : "-",
			       u[i].totp ? "on" : "off", state);
		}
	}
	arena_free(a);
	store_close(s);
	return exit_of(err);
}

static void
disable_usage(FILE *f)
{
	fprintf(f, "usage: careweave user disable --username NAME [--db PATH]\n\n"
		   "Disables a user: they can no longer sign in, and their sessions end\n"
		   "at once.\n\n"
		   "  --username NAME   the user\n"
		   "  --key-file FILE   the database's key file\n"
		   "                    (default $CAREWEAVE_KEY_FILE)\n"
		   "  --db PATH         database file (default %s)\n", CLI_DEFAULT_DB);
}

static void
reset_usage(FILE *f)
{
	fprintf(f, "usage: careweave user reset-password --username NAME [--db PATH]\n"
		   "                                     [--password-stdin]\n\n"
		   "Sets a new password (read as for 'user add'), clears a lock after\n"
		   "failed sign-ins and ends every session of the user.\n\n"
		   "  --username NAME    the user\n"
		   "  --password-stdin   read the password from standard input\n"
		   "  --key-file FILE    the database's key file\n"
		   "                     (default $CAREWEAVE_KEY_FILE)\n"
		   "  --db PATH          database file (default %s)\n", CLI_DEFAULT_DB);
}

/* disable and reset-password: the same options, one action. */
static int
user_change(int argc, char **argv, bool reset)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, 'd'},
		CLI_KEY_FILE_OPTION,
		{"username", required_argument, NULL, 'u'},
		{"password-stdin", no_argument, NULL, 'P'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *cmd = reset ? "user reset-password" : "user disable";
	const char *key_file = NULL, *db = CLI_DEFAULT_DB, *username = NULL;
	void (*usage)(FILE *) = reset ? reset_usage : disable_usage;
	char pw[PW_BUF];
	bool from_stdin = false;
	struct store *s;
	struct arena *a;
	struct diag d;
	enum cw_err err;
	size_t n = 0;
	int c, rc = CLI_OK;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case CLI_OPT_KEY_FILE:
			key_file = optarg;
			break;
		case 'd': db = optarg; break;
		case 'u': username = optarg; break;
		case 'P':
			if (!reset) {
				usage(stderr);
				return CLI_EUSAGE;
			}
			from_stdin = true;
			break;
		case 'h': usage(stdout); return CLI_OK;
		default: usage(stderr); return CLI_EUSAGE;
		}
	}
	if (optind < argc) {
		cli_err(cmd, "unexpected argument '%s'", argv[optind]);
		return CLI_EUSAGE;
	}
	if (!username) {
		cli_err(cmd, "--username is required");
		return CLI_EUSAGE;
	}
	if (reset && (rc = get_password(cmd, from_stdin, pw, &n)))
		goto out_wipe;
	s = cli_open_store(cmd, db, false, key_file);
	if (!s) {
		rc = CLI_EIO;
		goto out_wipe;
	}
	a = arena_new(0);
	if (!a) {
		rc = CLI_EIO;
		goto out_store;
	}
	diag_init(&d, a);
	err = reset ? access_user_reset_password(s, username, pw, n, &d)
		    : access_user_disable(s, username, &d);
	if (err)
		print_issue(cmd, err, &d);
	else
		printf("%s %s; their sessions have ended\n",
		       reset ? "new password set for" : "disabled", username);
	rc = exit_of(err);
	arena_free(a);
out_store:
	store_close(s);
out_wipe:
	if (reset)
		sodium_memzero(pw, sizeof(pw));
	return rc;
}

static int
user_disable(int argc, char **argv)
{
	return user_change(argc, argv, false);
}

static int
user_reset(int argc, char **argv)
{
	return user_change(argc, argv, true);
}

static void
totp_usage(FILE *f)
{
	fprintf(f, "usage: careweave user totp USERNAME [--off] [--db PATH]\n\n"
		   "Gives the user a new TOTP secret for one-time codes (RFC 6238: SHA-1,\n"
		   "6 digits, 30 s), replacing any they had, and prints it this once as\n"
		   "base32 and as an otpauth:// URI for an authenticator app. From then\n"
		   "on they sign in with a code as well. Admins cannot sign in without.\n"
		   "Either way every session of the user ends.\n\n"
		   "  --off       remove the secret instead (an admin then cannot sign in)\n"
		   "  --key-file FILE the database's key file\n"
		   "                  (default $CAREWEAVE_KEY_FILE)\n"
		   "  --db PATH   database file (default %s)\n", CLI_DEFAULT_DB);
}

static int
user_totp(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, 'd'},
		CLI_KEY_FILE_OPTION,
		{"username", required_argument, NULL, 'u'},
		{"off", no_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *key_file = NULL, *db = CLI_DEFAULT_DB, *username = NULL;
	char name[ACCESS_USERNAME_MAX + 1];
	struct access_totp t;
	bool off = false;
	struct store *s;
	struct arena *a;
	struct diag d;
	enum cw_err err = CW_ENOMEM;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': db = optarg; break;
		case CLI_OPT_KEY_FILE: key_file = optarg; break;
		case 'u': username = optarg; break;
		case 'o': off = true; break;
		case 'h': totp_usage(stdout); return CLI_OK;
		default: totp_usage(stderr); return CLI_EUSAGE;
		}
	}
	if (!username && optind < argc)
		username = argv[optind++];
	if (optind < argc) {
		cli_err("user totp", "unexpected argument '%s'", argv[optind]);
		return CLI_EUSAGE;
	}
	if (!username) {
		cli_err("user totp", "which user? (careweave user totp USERNAME)");
		return CLI_EUSAGE;
	}
	s = cli_open_store("user totp", db, false, key_file);
	if (!s)
		return CLI_EIO;
	a = arena_new(0);
	if (a) {
		diag_init(&d, a);
		err = access_user_totp_set(s, username, !off, &t, &d);
		if (err) {
			print_issue("user totp", err, &d);
		} else {
			access_username_norm(username, name, &d);
			if (off)
				printf("one-time codes off for %s; their sessions have ended\n",
				       name);
			else
				print_totp("", name, &t);
		}
		sodium_memzero(&t, sizeof(t));
	}
	arena_free(a);
	store_close(s);
	return exit_of(err);
}

static const struct cli_sub subcommands[] = {
	{"add", user_add, "add a person who may sign in"},
	{"list", user_list, "list users, their roles, links and states"},
	{"disable", user_disable, "stop a user signing in and end their sessions"},
	{"reset-password", user_reset, "set a new password and end their sessions"},
	{"totp", user_totp, "give a user a new one-time code secret (admins need one)"},
};

int
cli_user(int argc, char **argv)
{
	return cli_run_sub("user", "Manages the people who sign in to careweave serve. Runs on the\n"
			   "database file directly, with its permissions.",
			   subcommands, sizeof(subcommands) / sizeof(subcommands[0]), argc, argv);
}

/* ---- the demo's users ------------------------------------------------------ */

/* One user per role of the demo care teams (data/demo/README.md). */
static const struct {
	const char *username;
	enum access_role role;
	const char *link;
} demo_users[] = {
	{"admin", ACCESS_ADMIN, NULL},
	{"grace", ACCESS_COORDINATOR, "Practitioner/grace-lindqvist"},
	{"anita", ACCESS_PHYSICIAN, "Practitioner/anita-okafor"},
	{"denise", ACCESS_NURSE, "Practitioner/denise-carter"},
	{"priya", ACCESS_PHARMACIST, "Practitioner/priya-natarajan"},
	{"luis", ACCESS_THERAPIST, "Practitioner/luis-ortega"},
	{"tom", ACCESS_SOCIAL_WORKER, "Practitioner/tom-becker"},
	{"walter", ACCESS_PATIENT, "Patient/moss-patient"},
	{"ellen", ACCESS_CAREGIVER, "RelatedPerson/moss-daughter"},
};

int
cli_demo_users(struct store *s)
{
	char pw[ACCESS_DEMO_PASSWORD_LEN + 1];
	struct store_user u;
	struct arena *a = arena_new(0);
	struct diag d;
	enum cw_err err;
	int rc = CLI_OK;

	if (!a)
		return CLI_EIO;
	printf("\ndemo users (each password is shown this once and stored only as a hash):\n"
	       "  %-8s %-14s %-30s %s\n", "USERNAME", "ROLE", "LINK", "PASSWORD");
	for (size_t i = 0; i < sizeof(demo_users) / sizeof(demo_users[0]); i++) {
		const char *link = demo_users[i].link;

		arena_reset(a);
		diag_init(&d, a);
		if (store_user_get(s, a, demo_users[i].username, &u) == CW_OK) {
			printf("  %-8s %-14s %-30s %s\n", demo_users[i].username,
			       access_role_name(demo_users[i].role), link ? link : "-",
			       "(exists; careweave user reset-password)");
			continue;
		}
		access_demo_password(pw);
		err = access_user_add(s, a, demo_users[i].username,
				      demo_users[i].role, link, pw, strlen(pw), &d);
		if (err) {
			print_issue("demo", err, &d);
			if (exit_of(err) == CLI_EIO)
				rc = CLI_EIO;
		} else {
			struct access_totp t;

			printf("  %-8s %-14s %-30s %s\n", demo_users[i].username,
			       access_role_name(demo_users[i].role), link ? link : "-", pw);
			if (demo_users[i].role == ACCESS_ADMIN) {
				if ((err = access_user_totp_set(s, demo_users[i].username,
								true, &t, &d))) {
					print_issue("demo", err, &d);
					rc = CLI_EIO;
				} else {
					print_totp("           ", demo_users[i].username, &t);
				}
				sodium_memzero(&t, sizeof(t));
			}
		}
		sodium_memzero(pw, sizeof(pw));
	}
	fflush(stdout);
	arena_free(a);
	return rc;
}
