/* cli/main.c: the careweave entry point and its command table.
 *
 * Like git.c, the commands are a table (name, function, one line of help)
 * read top to bottom; main only picks the row. Each command parses its own
 * options with getopt_long and answers its own --help. Exit codes are the
 * same for all (cli.h): 0 ok, 1 data errors, 2 usage, 3 I/O or database
 * (and 4 for what kb lookup does not find). */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"

struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct cmd commands[] = {
	{"serve", cli_serve, "serve the FHIR R4 API over HTTP"},
	{"import", cli_import, "load FHIR Bundles (.json) and NDJSON files (.ndjson)"},
	{"export", cli_export, "write one patient's record ($everything) as a Bundle"},
	{"demo", cli_demo, "load the demo data (data/demo/*.json) and its users"},
	{"user", cli_user, "add, list, disable users; reset a password"},
	{"check", cli_check, "check the database's integrity"},
	{"backup", cli_backup, "copy the database, online, to a file"},
	{"key", cli_key, "make a key for an encrypted database (key new FILE)"},
	{"audit", cli_audit, "verify the audit trail's hash chain; report who saw a patient's record"},
	{"glass", cli_glass, "list break-the-glass grants; end one early"},
	{"kb", cli_kb, "check the knowledge base; look up a drug, class or lab test"},
	{"hl7", cli_hl7, "list the HL7 v2 messages received; show one; replay a failed one"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
usage(FILE *f)
{
	fprintf(f, "usage: careweave <command> [options]\n\n"
		   "careweave is a FHIR R4 care coordination server.\n\n"
		   "commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\n'careweave <command> --help' describes a command's options.\n"
		   "Environment: CAREWEAVE_LOG=debug|info|warn|error (default info);\n"
		   "CAREWEAVE_KEY_FILE=FILE: the database's key, as --key-file FILE;\n"
		   "CAREWEAVE_KB=DIR: the knowledge base folder, as --kb DIR (default ./data/kb).\n");
}

static void
set_log_level(void)
{
	const char *lv = getenv("CAREWEAVE_LOG");

	if (!lv)
		return;
	if (strcasecmp(lv, "debug") == 0)
		log_set_level(LOG_DEBUG);
	else if (strcasecmp(lv, "info") == 0)
		log_set_level(LOG_INFO);
	else if (strcasecmp(lv, "warn") == 0)
		log_set_level(LOG_WARN);
	else if (strcasecmp(lv, "error") == 0)
		log_set_level(LOG_ERROR);
}

/* A request's memory (a parsed Bundle is tens of MiB of small jansson
 * blocks) is freed when it ends and needed again by the next one. glibc's
 * defaults hand it back to the kernel each time (trimming the heap top,
 * mmap for big blocks) and fault it in again: measured, page faults and
 * heap trimming were a tenth of a transaction Bundle's time. Keep up to
 * 256 MiB of freed heap per arena instead; mmap only past 32 MiB. */
static void
tune_malloc(void)
{
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	mallopt(M_TOP_PAD, 16 << 20);
}

int
main(int argc, char **argv)
{
	const char *name;

	if (argc < 2) {
		usage(stderr);
		return CLI_EUSAGE;
	}
	name = argv[1];
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 ||
	    strcmp(name, "help") == 0) {
		usage(stdout);
		return CLI_OK;
	}
	set_log_level();
	tune_malloc();
	for (size_t i = 0; i < NCOMMANDS; i++) {
		static char prog[64];

		if (strcmp(name, commands[i].name) != 0)
			continue;
		/* getopt's own messages then say "careweave import: ..." */
		snprintf(prog, sizeof(prog), "careweave %s", commands[i].name);
		argv[1] = prog;
		return commands[i].fn(argc - 1, argv + 1);
	}
	fprintf(stderr, "careweave: '%s' is not a careweave command. "
			"See 'careweave --help'.\n", name);
	return CLI_EUSAGE;
}
