/* cli/hl7.c: `careweave hl7 list`, `careweave hl7 show` and
 * `careweave hl7 replay`.
 *
 * The operator's view of the HL7 v2 message log (store migration 9):
 * what each feed sent, what careweave answered and did, and why a message
 * failed; and the replay of a failed message once its cause is fixed,
 * through the same receiving code as the listener (hl7v2/receive.c) on a
 * local API with the rules, so a replay is what a resend would be. `list`
 * shows keys, types, outcomes and the reason in words; `show` prints the
 * message itself (PHI: nothing of it goes to a log, and each show is an
 * access in the audit trail, recorded before anything is printed, like
 * `careweave export`). Subcommands are a cli_sub table (cli_run_sub). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "audit/audit.h"
#include "cli/cli.h"
#include "coord/coord.h"
#include "hl7v2/receive.h"
#include "kb/kb.h"
#include "store/store.h"

static const char *
outcome_word(int outcome)
{
	switch (outcome) {
	case STORE_HL7_ACCEPTED:
		return "accepted";
	case STORE_HL7_ERROR:
		return "error";
	case STORE_HL7_REJECTED:
		return "rejected";
	default:
		return "?";
	}
}

static void
list_usage(FILE *f)
{
	fprintf(f, "usage: careweave hl7 list [--failed|--rejected|--accepted] [--before SEQ]\n"
		   "                          [--limit N] [--db PATH]\n\n"
		   "Lists the HL7 v2 messages received, newest first: number, when, sender\n"
		   "and facility, control id, type, outcome (accepted AA, error AE,\n"
		   "rejected AR), attempts, and why it failed. Never the message itself\n"
		   "(careweave hl7 show SEQ).\n\n"
		   "  --failed        only messages not applied (AE: fix the cause, replay)\n"
		   "  --rejected      only messages careweave does not take (AR)\n"
		   "  --accepted      only messages applied (AA)\n"
		   "  --before SEQ    the page of older messages, below number SEQ\n"
		   "  --limit N       at most N (1 to 1000; default 50)\n"
		   "  --key-file FILE the database's key file (default $CAREWEAVE_KEY_FILE)\n"
		   "  --db PATH       database file (default %s)\n", CLI_DEFAULT_DB);
}

static int
hl7_list(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, 'd'},
		CLI_KEY_FILE_OPTION,
		{"failed", no_argument, NULL, 'f'},
		{"rejected", no_argument, NULL, 'r'},
		{"accepted", no_argument, NULL, 'a'},
		{"before", required_argument, NULL, 'b'},
		{"limit", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *key_file = NULL, *db = CLI_DEFAULT_DB;
	struct store_hl7_filter flt = {.outcome = -1, .limit = 50};
	unsigned long long num;
	struct store_hl7 *v;
	size_t n = 0;
	struct store *s;
	struct arena *a;
	enum cw_err err;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case CLI_OPT_KEY_FILE: key_file = optarg; break;
		case 'd': db = optarg; break;
		case 'f': flt.outcome = STORE_HL7_ERROR; break;
		case 'r': flt.outcome = STORE_HL7_REJECTED; break;
		case 'a': flt.outcome = STORE_HL7_ACCEPTED; break;
		case 'b':
			if (!cli_parse_num(optarg, 1, INT64_MAX, false, &num)) {
				cli_err("hl7 list", "--before wants a message number, not '%s'", optarg);
				return CLI_EUSAGE;
			}
			flt.before = (int64_t)num;
			break;
		case 'l':
			if (!cli_parse_num(optarg, 1, 1000, false, &num)) {
				cli_err("hl7 list", "--limit wants 1 to 1000, not '%s'", optarg);
				return CLI_EUSAGE;
			}
			flt.limit = (size_t)num;
			break;
		case 'h': list_usage(stdout); return CLI_OK;
		default: list_usage(stderr); return CLI_EUSAGE;
		}
	}
	if (optind < argc) {
		cli_err("hl7 list", "unexpected argument '%s'", argv[optind]);
		return CLI_EUSAGE;
	}
	if (!(s = cli_open_store("hl7 list", db, true, key_file)))
		return CLI_EIO;
	a = arena_new(0);
	err = a ? store_hl7_list(s, a, &flt, &v, &n) : CW_ENOMEM;
	if (err) {
		cli_err("hl7 list", "cannot read the message log: %s", cw_strerror(err));
	} else {
		printf("%-7s %-24s %-30s %-20s %-8s %-9s %-3s %s\n", "SEQ", "RECEIVED",
		       "FROM", "CONTROL ID", "TYPE", "OUTCOME", "N", "WHY");
		for (size_t i = 0; i < n; i++) {
			char when[32], from[64];

			time_format_instant(v[i].updated, when);
			snprintf(from, sizeof(from), "%s@%s", v[i].sender, v[i].facility);
			printf("%-7lld %-24s %-30.30s %-20.20s %-8s %-9s %-3d %s\n",
			       (long long)v[i].seq, when, from, v[i].control_id,
			       v[i].type ? v[i].type : "-", outcome_word(v[i].outcome),
			       v[i].attempts, v[i].detail ? v[i].detail : "");
		}
		printf("%zu message%s\n", n, n == 1 ? "" : "s");
	}
	arena_free(a);
	store_close(s);
	return err ? CLI_EIO : CLI_OK;
}

/* Prints an HL7 message one segment a line (CR, LF or CRLF ends one). */
static void
print_segments(const char *p, size_t n)
{
	size_t start = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && p[i] != '\r' && p[i] != '\n')
			continue;
		if (i > start)
			printf("  %.*s\n", (int)(i - start), p + start);
		start = i + 1;
	}
}

static int
seq_arg(const char *cmd, int argc, char **argv, int64_t *seq)
{
	unsigned long long num;

	if (optind + 1 != argc) {
		cli_err(cmd, optind < argc ? "one message number only" :
			"which message? (its SEQ, from 'careweave hl7 list')");
		return CLI_EUSAGE;
	}
	if (!cli_parse_num(argv[optind], 1, INT64_MAX, false, &num)) {
		cli_err(cmd, "a message number is a number, not '%s'", argv[optind]);
		return CLI_EUSAGE;
	}
	*seq = (int64_t)num;
	return CLI_OK;
}

static void
print_row(const struct store_hl7 *m)
{
	char first[32], last[32];

	time_format_instant(m->received, first);
	time_format_instant(m->updated, last);
	printf("message %lld: %s from %s@%s, control id %s, version %s\n", (long long)m->seq,
	       m->type ? m->type : "?", m->sender, m->facility, m->control_id,
	       m->version ? m->version : "?");
	printf("received %s; last %s (%d time%s) from %s\n", first, last, m->attempts,
	       m->attempts == 1 ? "" : "s", m->peer ? m->peer : "a replay");
	printf("outcome: %s%s%s\n", outcome_word(m->outcome), m->detail ? ": " : "",
	       m->detail ? m->detail : "");
	if (m->resources)
		printf("wrote: %s\n", m->resources);
}

/* The audit record of a show: an operator's read of what the message
 * wrote ("Patient/x Encounter/y": the entities) and of the patients they
 * are about (their compartments: an A03 writes the Encounter, not the
 * Patient, and still shows the patient's PID). A message that wrote
 * nothing names no patient careweave knows of; the record still says
 * that the log was read, and when. */
static enum cw_err
audit_show(struct store *s, struct arena *a, const struct store_hl7 *m)
{
	struct audit_event ev = {.kind = AUDIT_REST, .interaction = "read",
				 .action = 'R', .status = 200, .local = true,
				 .remote = "cli"};
	const char *p = m->resources ? m->resources : "";
	size_t cap = 1, nres = 0;
	struct audit_entity *what;
	struct store_res *res;
	const char **pats = NULL;
	enum cw_err err;

	for (const char *q = p; *q; q++)
		cap += *q == ' ';
	what = arena_alloc(a, cap * sizeof(*what));
	res = arena_zalloc(a, cap * sizeof(*res));
	if (!what || !res)
		return CW_ENOMEM;
	while (*p) {
		size_t n = strcspn(p, " ");
		const char *slash = memchr(p, '/', n);

		if (slash && slash > p && (size_t)(slash - p) + 1 < n) {
			char *type = arena_strndup(a, p, (size_t)(slash - p));
			char *id = arena_strndup(a, slash + 1, n - (size_t)(slash - p) - 1);

			if (!type || !id)
				return CW_ENOMEM;
			what[ev.nwhat++] = (struct audit_entity){.type = type, .id = id};
			res[nres].type = type;
			res[nres++].id = id;
		}
		p += n;
		p += strspn(p, " ");
	}
	ev.what = what;
	if (nres && (err = store_patients_of(s, a, res, nres, AUDIT_SEARCH_PATIENTS, &pats,
					     &ev.npatients)))
		return err;
	ev.patients = pats;
	return audit_write(s, a, &ev);
}

static void
show_usage(FILE *f)
{
	fprintf(f, "usage: careweave hl7 show SEQ [--db PATH]\n\n"
		   "Shows message SEQ of the HL7 v2 message log: its key, when and how\n"
		   "often it came, the outcome and why, what it wrote, the message as\n"
		   "received and the answer careweave gave, one segment a line. The\n"
		   "message holds patient information: show it only to whom may see it;\n"
		   "each show is recorded in the audit trail (careweave audit report).\n\n"
		   "  --key-file FILE the database's key file (default $CAREWEAVE_KEY_FILE)\n"
		   "  --db PATH       database file (default %s)\n", CLI_DEFAULT_DB);
}

static int
hl7_show(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, 'd'},
		CLI_KEY_FILE_OPTION,
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *key_file = NULL, *db = CLI_DEFAULT_DB;
	struct store_hl7 m;
	struct store *s;
	struct arena *a;
	int64_t seq;
	enum cw_err err;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case CLI_OPT_KEY_FILE: key_file = optarg; break;
		case 'd': db = optarg; break;
		case 'h': show_usage(stdout); return CLI_OK;
		default: show_usage(stderr); return CLI_EUSAGE;
		}
	}
	if ((rc = seq_arg("hl7 show", argc, argv, &seq)) != CLI_OK)
		return rc;
	/* Writable, for the audit record; a missing file is still opened
	 * read-only so that it fails without being created. */
	if (!(s = cli_open_store("hl7 show", db, access(db, F_OK) != 0, key_file)))
		return CLI_EIO;
	a = arena_new(0);
	err = a ? store_hl7_get(s, a, seq, &m) : CW_ENOMEM;
	if (err == CW_ENOTFOUND) {
		cli_err("hl7 show", "no message %lld in the log", (long long)seq);
	} else if (err) {
		cli_err("hl7 show", "cannot read the message log: %s", cw_strerror(err));
	} else if ((err = audit_show(s, a, &m))) {
		/* no disclosure without its record */
		cli_err("hl7 show", "cannot write the audit record, nothing shown: %s",
			cw_strerror(err));
	} else {
		print_row(&m);
		printf("message (%zu bytes):\n", m.raw.n);
		print_segments(m.raw.p, m.raw.n);
		if (m.ack) {
			printf("answer:\n");
			print_segments(m.ack, strlen(m.ack));
		}
	}
	arena_free(a);
	store_close(s);
	return !err ? CLI_OK : err == CW_ENOTFOUND ? CLI_ENOTFOUND : CLI_EIO;
}

static void
replay_usage(FILE *f)
{
	fprintf(f, "usage: careweave hl7 replay SEQ [--kb DIR] [--db PATH]\n\n"
		   "Processes message SEQ of the HL7 v2 message log again, as if its sender\n"
		   "had sent it now (after the cause of its failure is fixed: a patient\n"
		   "merged, a code added), with the rules and the audit trail of the\n"
		   "listener. Prints the outcome and the answer. Exits 1 when the message\n"
		   "was accepted already or fails again.\n\n"
		   "  --kb DIR        the knowledge base (default $CAREWEAVE_KB, else ./data/kb)\n"
		   "  --key-file FILE the database's key file (default $CAREWEAVE_KEY_FILE)\n"
		   "  --db PATH       database file (default %s)\n", CLI_DEFAULT_DB);
}

static int
hl7_replay_cmd(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, 'd'},
		CLI_KEY_FILE_OPTION,
		{"kb", required_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct api_options ao = {.base_url = "http://127.0.0.1:8080/fhir", .local = true};
	const char *key_file = NULL, *db = CLI_DEFAULT_DB, *kb_path = NULL;
	struct hl7_receiver_options ro = {0};
	struct hl7_receiver *r = NULL;
	struct store_hl7 m;
	struct store *s;
	struct arena *a;
	struct api *api = NULL;
	struct kb *kb = NULL;
	struct coord *co = NULL;
	struct diag d;
	int64_t seq;
	enum cw_err err = CW_ENOMEM;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case CLI_OPT_KEY_FILE: key_file = optarg; break;
		case 'd': db = optarg; break;
		case 'k': kb_path = optarg; break;
		case 'h': replay_usage(stdout); return CLI_OK;
		default: replay_usage(stderr); return CLI_EUSAGE;
		}
	}
	if ((rc = seq_arg("hl7 replay", argc, argv, &seq)) != CLI_OK)
		return rc;
	if ((rc = cli_rules_open("hl7 replay", kb_path, &kb, &co)) != CLI_OK)
		return rc;
	if (!(s = cli_open_store("hl7 replay", db, false, key_file))) {
		cli_rules_close(kb, co);
		return CLI_EIO;
	}
	ao.coord = co;
	a = arena_new(0);
	if (a)
		api = api_new(s, &ao);
	ro.api = api;
	ro.store = s;
	ro.coord = co;
	if (api)
		r = hl7_receiver_new(&ro);
	if (r) {
		diag_init(&d, a);
		err = hl7_replay(r, seq, &m, &d);
		if (err == CW_ENOTFOUND)
			cli_err("hl7 replay", "no message %lld in the log", (long long)seq);
		else if (err)
			cli_err("hl7 replay", "%s", d.n ? d.issues[0].msg : cw_strerror(err));
		else
			print_row(&m);
	} else {
		cli_err("hl7 replay", "out of memory");
	}
	rc = err == CW_ENOTFOUND ? CLI_ENOTFOUND : err == CW_EINVAL ? CLI_EDATA :
	     err ? CLI_EIO : m.outcome == STORE_HL7_ACCEPTED ? CLI_OK : CLI_EDATA;
	hl7_receiver_free(r);
	api_free(api);
	arena_free(a);
	store_close(s);
	cli_rules_close(kb, co);
	return rc;
}

static const struct cli_sub subcommands[] = {
	{"list", hl7_list, "list the messages received, newest first (--failed: to fix)"},
	{"show", hl7_show, "show one message: outcome, what it wrote, the message, the answer"},
	{"replay", hl7_replay_cmd, "process a failed message again, once its cause is fixed"},
};

int
cli_hl7(int argc, char **argv)
{
	return cli_run_sub("hl7", "The HL7 v2 message log (src/hl7v2/README.md): every message the\n"
			   "listener received (careweave serve --mllp-port), with its outcome.\n"
			   "Runs on the database file directly, with its permissions.",
			   subcommands, sizeof(subcommands) / sizeof(subcommands[0]), argc, argv);
}
