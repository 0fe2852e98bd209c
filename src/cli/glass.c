/* cli/glass.c: `careweave glass list` and `careweave glass end`.
 *
 * The operator's view of break-the-glass grants (schema migrations 5 and
 * 7): who holds or held emergency access to which patient, from when until
 * when, and whether it was ended early and by whom; and the operator's
 * early end of one grant. An end goes through the API's own code
 * (api_glass_end on a local API, signed in as nobody), so it is what
 * $break-glass-end does: the grant's end, a Communication to those told
 * of the grant, and the audit record, in one transaction. The list shows
 * ids, names and times, never the reason (the clinician's words, which
 * may hold anything: the grant's notification and audit record have it).
 * Subcommands are a cli_sub table run by cli_run_sub (common.c). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "cli/cli.h"
#include "store/store.h"

static void
list_usage(FILE *f)
{
	fprintf(f, "usage: careweave glass list [--patient ID] [--all] [--db PATH]\n\n"
		   "Lists the break-the-glass grants live now (with --all, every grant:\n"
		   "expired and ended ones too), newest first: id, user, patient, when\n"
		   "granted, until when, and state (live, expired, or ended at a time by\n"
		   "a user or the operator). Never the reason.\n\n"
		   "  --patient ID    only the grants on this Patient\n"
		   "  --all           every grant, not only the live ones\n"
		   "  --key-file FILE the database's key file\n"
		   "                  (default $CAREWEAVE_KEY_FILE)\n"
		   "  --db PATH       database file (default %s)\n", CLI_DEFAULT_DB);
}

static void
end_usage(FILE *f)
{
	fprintf(f, "usage: careweave glass end ID [--reason TEXT] [--db PATH]\n\n"
		   "Ends the live break-the-glass grant ID (from 'careweave glass list')\n"
		   "now: the clinician's access to the patient stops at their next\n"
		   "request; those told of the grant (the patient's coordinators and the\n"
		   "privacy officers) get a Communication saying so, and the audit trail\n"
		   "records it (BTG, action D), all in one transaction. Exits 1 when the\n"
		   "grant is not live (no such grant, expired or ended already).\n\n"
		   "  --reason TEXT   why it is ended (10 to 1000 characters; optional)\n"
		   "  --key-file FILE the database's key file\n"
		   "                  (default $CAREWEAVE_KEY_FILE)\n"
		   "  --db PATH       database file (default %s)\n", CLI_DEFAULT_DB);
}

static int
glass_list(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, 'd'},
		CLI_KEY_FILE_OPTION,
		{"patient", required_argument, NULL, 'p'},
		{"all", no_argument, NULL, 'a'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *key_file = NULL, *db = CLI_DEFAULT_DB, *patient = NULL;
	struct store_glass_filter f = {.now = time_now_ms(), .live_only = true};
	struct store_glass *g;
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
		case 'p': patient = optarg; break;
		case 'a': f.live_only = false; break;
		case 'h': list_usage(stdout); return CLI_OK;
		default: list_usage(stderr); return CLI_EUSAGE;
		}
	}
	if (optind < argc) {
		cli_err("glass list", "unexpected argument '%s'", argv[optind]);
		return CLI_EUSAGE;
	}
	if (patient && !id_is_valid(patient, strlen(patient))) {
		cli_err("glass list", "--patient wants a Patient id, not '%s'", patient);
		return CLI_EUSAGE;
	}
	f.patient_id = patient;
	if (!(s = cli_open_store("glass list", db, true, key_file)))
		return CLI_EIO;
	a = arena_new(0);
	err = a ? store_glass_list(s, a, &f, &g, &n) : CW_ENOMEM;
	if (err) {
		cli_err("glass list", "cannot read the grants: %s", cw_strerror(err));
	} else {
		printf("%-6s %-24s %-36s %-24s %-24s %s\n", "ID", "USER", "PATIENT",
		       "GRANTED", "UNTIL", "STATE");
		for (size_t i = 0; i < n; i++) {
			char from[32], until[32], when[32], state[128];

			time_format_instant(g[i].granted, from);
			time_format_instant(g[i].expires, until);
			if (g[i].ended) {
				const char *by = g[i].ended_by ? g[i].ended_by_name :
					"the operator";

				time_format_instant(g[i].ended, when);
				snprintf(state, sizeof(state), "ended %s by %s", when,
					 by ? by : "a user");
			} else {
				snprintf(state, sizeof(state), "%s",
					 g[i].expires <= f.now ? "expired" :
					 g[i].granted > f.now ? "not yet" : "live");
			}
			printf("%-6lld %-24s %-36s %-24s %-24s %s\n", (long long)g[i].gid,
			       g[i].username ? g[i].username : "-", g[i].patient_id,
			       from, until, state);
		}
		printf("%zu grant%s%s\n", n, n == 1 ? "" : "s",
		       f.live_only ? " live" : "");
	}
	arena_free(a);
	store_close(s);
	return err ? CLI_EIO : CLI_OK;
}

static int
glass_end(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, 'd'},
		CLI_KEY_FILE_OPTION,
		{"reason", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct api_options ao = {.base_url = "http://127.0.0.1:8080/fhir", .local = true};
	const char *key_file = NULL, *db = CLI_DEFAULT_DB, *reason = NULL;
	unsigned long long gid;
	struct store *s;
	struct arena *a;
	struct api *api;
	struct diag d;
	enum cw_err err = CW_ENOMEM;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case CLI_OPT_KEY_FILE: key_file = optarg; break;
		case 'd': db = optarg; break;
		case 'r': reason = optarg; break;
		case 'h': end_usage(stdout); return CLI_OK;
		default: end_usage(stderr); return CLI_EUSAGE;
		}
	}
	if (optind + 1 != argc) {
		cli_err("glass end", optind < argc ? "one grant id only" :
			"which grant? (careweave glass end ID; see 'careweave glass list')");
		return CLI_EUSAGE;
	}
	if (!cli_parse_num(argv[optind], 1, INT64_MAX, false, &gid)) {
		cli_err("glass end", "a grant id is a number, not '%s'", argv[optind]);
		return CLI_EUSAGE;
	}
	if (!(s = cli_open_store("glass end", db, false, key_file)))
		return CLI_EIO;
	a = arena_new(0);
	api = a ? api_new(s, &ao) : NULL;
	if (api) {
		diag_init(&d, a);
		err = api_glass_end(api, a, (int64_t)gid, reason, &d);
		if (err)
			cli_err("glass end", "%s", d.n ? d.issues[0].msg : cw_strerror(err));
		else
			printf("ended grant %llu; those told of it are told of its end\n", gid);
	} else {
		cli_err("glass end", "out of memory");
	}
	rc = !err ? CLI_OK : err == CW_ENOTFOUND || err == CW_EINVALID ||
			     err == CW_EINVAL ? CLI_EDATA : CLI_EIO;
	api_free(api);
	arena_free(a);
	store_close(s);
	return rc;
}

static const struct cli_sub subcommands[] = {
	{"list", glass_list, "list live break-the-glass grants (--all: every one)"},
	{"end", glass_end, "end a live grant now, telling those told of it"},
};

int
cli_glass(int argc, char **argv)
{
	return cli_run_sub("glass", "Break-the-glass emergency access grants (src/access/README.md). Runs\n"
			   "on the database file directly, with its permissions.",
			   subcommands, sizeof(subcommands) / sizeof(subcommands[0]), argc, argv);
}
