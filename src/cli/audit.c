/* cli/audit.c: `careweave audit verify`, `report` and `dump`.
 *
 * verify recomputes the hash chain of the audit table on a read-only
 * store (store_audit_verify) and names the first record that was altered
 * or is missing. report is the accounting of disclosures for one patient:
 * who touched that record, when, how and with what outcome, newest first,
 * read from the record's columns, the same ones the AuditEvent is rendered
 * from (ids, codes and times only; the records hold no PHI values, so
 * neither does the table). dump writes every record as its AuditEvent
 * JSON, one a line (NDJSON), newest first: the same text the API serves,
 * for tools (the API test suite compares it with the requests it made). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "cli/cli.h"
#include "store/store.h"

static void
audit_usage(FILE *f)
{
	fprintf(f,
		"usage: careweave audit verify [--db PATH]\n"
		"       careweave audit report --patient ID [--since DATE] [--db PATH]\n"
		"       careweave audit dump [--since DATE] [--db PATH]\n\n"
		"verify  recompute the audit trail's hash chain; prints\n"
		"        \"audit: N records, chain intact\" (exit 0) or the first record\n"
		"        that was altered or is missing (exit 1)\n"
		"report  who accessed one patient's record: when, who (role), what,\n"
		"        the interaction and its outcome, newest first; an access made\n"
		"        only through a break-the-glass grant shows BTG after the\n"
		"        interaction, a grant and its early end as BTG and BTG-end\n"
		"dump    every record as its AuditEvent JSON, one a line, newest first\n\n"
		"options:\n"
		"  --db PATH       database file (default %s)\n"
		"  --key-file FILE the database's key file\n"
		"                  (default $CAREWEAVE_KEY_FILE)\n"
		"  --patient ID    the Patient id (report)\n"
		"  --since DATE    only records from then on: YYYY-MM-DD or an instant\n"
		"  -h, --help      this text\n", CLI_DEFAULT_DB);
}

static int
do_verify(const char *db, const char *key_file)
{
	struct store_audit_check ck;
	struct store *s = cli_open_store("audit", db, true, key_file);
	int rc = CLI_OK;

	if (!s)
		return CLI_EIO;
	if (store_audit_verify(s, &ck)) {
		cli_err("audit", "cannot read the audit trail of %s", db);
		rc = CLI_EIO;
	} else if (ck.bad_seq && ck.missing) {
		printf("audit: record %lld is missing (chain broken after %lld records)\n",
		       (long long)ck.bad_seq, (long long)(ck.bad_seq - 1));
		rc = CLI_EDATA;
	} else if (ck.bad_seq) {
		printf("audit: record %lld does not match its hash (altered; "
		       "chain broken after %lld records)\n",
		       (long long)ck.bad_seq, (long long)(ck.bad_seq - 1));
		rc = CLI_EDATA;
	} else {
		printf("audit: %lld records, chain intact\n", (long long)ck.records);
	}
	store_close(s);
	return rc;
}

static const char *
or_dash(const char *s)
{
	return s ? s : "-";
}

static void
report_row(const struct store_audit *r)
{
	const char *sub = audit_subtype_code(r->subtype);
	char when[32], what[160], how[48];
	size_t n;

	time_format_instant(r->at, when);
	/* what: the first entity (a compartment search's own type comes
	 * before the Patient it ran in), else the first patient */
	if (r->entity) {
		n = strcspn(r->entity, " ");
		snprintf(what, sizeof(what), "%.*s", (int)n, r->entity);
	} else if (r->patients) {
		n = strcspn(r->patients, " ");
		snprintf(what, sizeof(what), "Patient/%.*s", (int)n, r->patients);
	} else {
		snprintf(what, sizeof(what), "-");
	}
	if (r->subtype == AUDIT_SUB_LOGIN)
		sub = "sign-in";
	else if (r->subtype == AUDIT_SUB_LOGOUT)
		sub = "sign-out";
	else if (r->subtype == AUDIT_SUB_BREAK_GLASS)
		sub = r->action == 'D' ? "BTG-end" : "BTG";
	/* an access made only through a break-the-glass grant says so */
	snprintf(how, sizeof(how), "%s%s", sub,
		 r->purpose == AUDIT_PURPOSE_BTG ? " BTG" : "");
	printf("%-24s  %-20s  %-13s  %-16s  %-40s  %s\n", when, or_dash(r->user),
	       or_dash(r->role), how, what, audit_outcome(r->status));
}

static int
do_report(const char *db, const char *key_file, const char *patient,
	  int64_t since)
{
	struct store *s;
	struct arena *a;
	struct store_audit *v;
	size_t n, total = 0;
	int64_t before = 0;
	int rc = CLI_OK;

	if (!(s = cli_open_store("audit", db, true, key_file)))
		return CLI_EIO;
	if (!(a = arena_new(0))) {
		store_close(s);
		return CLI_EIO;
	}
	printf("accounting of disclosures: Patient/%s\n", patient);
	printf("%-24s  %-20s  %-13s  %-16s  %-40s  %s\n", "when", "who", "role",
	       "interaction", "what", "outcome");
	for (;;) {
		if (store_audit_list(s, a, patient, before, since, 500, &v, &n)) {
			cli_err("audit", "cannot read the audit trail of %s", db);
			rc = CLI_EIO;
			break;
		}
		for (size_t i = 0; i < n; i++)
			report_row(&v[i]);
		total += n;
		if (n < 500)
			break;
		before = v[n - 1].seq;
		arena_reset(a);
	}
	if (rc == CLI_OK)
		printf("%zu record%s (outcome 0 success, 4 refused or failed, 8 server error)\n",
		       total, total == 1 ? "" : "s");
	arena_free(a);
	store_close(s);
	return rc;
}

static int
do_dump(const char *db, const char *key_file, int64_t since)
{
	struct sbuf sb = SBUF_INIT(64u << 20);
	struct store *s;
	struct arena *a;
	struct store_audit *v;
	size_t n;
	int64_t before = 0;
	int rc = CLI_OK;

	if (!(s = cli_open_store("audit", db, true, key_file)))
		return CLI_EIO;
	if (!(a = arena_new(0))) {
		store_close(s);
		return CLI_EIO;
	}
	for (;;) {
		if (store_audit_list(s, a, NULL, before, since, 500, &v, &n)) {
			cli_err("audit", "cannot read the audit trail of %s", db);
			rc = CLI_EIO;
			break;
		}
		for (size_t i = 0; i < n; i++) {
			sbuf_reset(&sb);
			audit_render(&sb, &v[i]);
			if (!sb.toobig)
				printf("%.*s\n", (int)sb.len, sb.buf);
		}
		if (n < 500)
			break;
		before = v[n - 1].seq;
		arena_reset(a);
	}
	sbuf_release(&sb);
	arena_free(a);
	store_close(s);
	return rc;
}

int
cli_audit(int argc, char **argv)
{
	static const struct option opts[] = {
		{"db", required_argument, NULL, 'd'},
		{"patient", required_argument, NULL, 'p'},
		{"since", required_argument, NULL, 's'},
		CLI_KEY_FILE_OPTION,
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *db = CLI_DEFAULT_DB, *patient = NULL, *since_s = NULL, *sub;
	const char *key_file = NULL;
	struct time_range tr;
	int c;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		audit_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_EUSAGE : CLI_OK;
	}
	sub = argv[1];
	if (strcmp(sub, "verify") && strcmp(sub, "report") && strcmp(sub, "dump")) {
		cli_err("audit", "'%s' is not an audit command (verify, report, dump)", sub);
		return CLI_EUSAGE;
	}
	argv[1] = argv[0];
	argc--;
	argv++;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			db = optarg;
			break;
		case 'p':
			patient = optarg;
			break;
		case 's':
			since_s = optarg;
			break;
		case CLI_OPT_KEY_FILE:
			key_file = optarg;
			break;
		case 'h':
			audit_usage(stdout);
			return CLI_OK;
		default:
			audit_usage(stderr);
			return CLI_EUSAGE;
		}
	}
	if (optind < argc) {
		cli_err("audit", "unexpected argument '%s'", argv[optind]);
		return CLI_EUSAGE;
	}
	if (!strcmp(sub, "verify")) {
		if (patient || since_s) {
			cli_err("audit", "verify takes only --db and --key-file");
			return CLI_EUSAGE;
		}
		return do_verify(db, key_file);
	}
	if (since_s && time_parse(since_s, strlen(since_s), TIME_DATETIME, &tr)) {
		cli_err("audit", "--since wants a date (YYYY-MM-DD) or an instant, not '%s'",
			since_s);
		return CLI_EUSAGE;
	}
	if (!strcmp(sub, "dump")) {
		if (patient) {
			cli_err("audit", "dump lists every record (no --patient)");
			return CLI_EUSAGE;
		}
		return do_dump(db, key_file, since_s ? tr.lo : 0);
	}
	if (!patient || !id_is_valid(patient, strlen(patient))) {
		cli_err("audit", "report needs --patient ID (a FHIR id)");
		return CLI_EUSAGE;
	}
	return do_report(db, key_file, patient, since_s ? tr.lo : 0);
}
