/* cli/export.c: `careweave export` (one patient's record) and
 * `careweave check` (database integrity).
 *
 * export asks the API itself, with an in-process GET of
 * /fhir/Patient/ID/$everything, so the file holds exactly what a client of
 * the server would get (same compartment rules, same access path). The
 * pages are followed through their next links and merged into one
 * searchset Bundle. Each page leaves an AuditEvent (operation, by the
 * local operator), written before the page is used. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "cli/cli.h"
#include "http/http.h"
#include "store/store.h"

#define EXPORT_BASE_URL "http://127.0.0.1:8080/fhir"
#define EXPORT_PAGE "1000"
#define MAX_PAGES 100000

/* Fills r from an absolute or relative URL (a page link). */
static bool
request_from_url(struct arena *a, const char *url, struct http_req *r)
{
	const char *p = strstr(url, "://"), *q;
	size_t nq = 0;

	p = p ? strchr(p + 3, '/') : url;
	if (!p)
		return false;
	q = strchr(p, '?');
	r->path = fhir_url_decode(a, p, q ? (size_t)(q - p) : strlen(p), false);
	r->nquery = 0;
	r->query = NULL;
	if (!r->path)
		return false;
	if (!q)
		return true;
	q++;
	for (const char *s = q; *s; s++)
		nq += *s == '&';
	r->query = arena_alloc(a, (nq + 1) * sizeof(*r->query));
	if (!r->query)
		return false;
	while (*q) {
		const char *amp = strchr(q, '&'), *eq;
		size_t len = amp ? (size_t)(amp - q) : strlen(q);

		eq = memchr(q, '=', len);
		if (len) {
			struct http_kv *kv = &r->query[r->nquery++];

			kv->key = fhir_url_decode(a, q, eq ? (size_t)(eq - q) : len, true);
			kv->value = eq ? fhir_url_decode(a, eq + 1, len - (size_t)(eq - q) - 1, true)
				       : "";
			if (!kv->key || !kv->value)
				return false;
		}
		q += len;
		if (*q == '&')
			q++;
	}
	return true;
}

/* Prints the issues of an OperationOutcome body (client-safe text). */
static void
print_outcome(const char *body, size_t n)
{
	json_t *oo = json_loadb(body, n, 0, NULL), *is;
	size_t i;

	json_array_foreach(json_object_get(oo, "issue"), i, is) {
		const char *d = json_string_value(json_object_get(is, "diagnostics"));
		const char *code = json_string_value(json_object_get(is, "code"));

		fprintf(stderr, "  %s: %s\n", code ? code : "issue", d ? d : "");
	}
	json_decref(oo);
}

static void
export_usage(FILE *f)
{
	fprintf(f,
		"usage: careweave export --patient ID [--db PATH] [--out FILE]\n\n"
		"Writes the patient's $everything as one searchset Bundle (all pages)\n"
		"to FILE or standard output.\n\n"
		"  --patient ID   the Patient's id\n"
		"  --key-file FILE the database's key file\n"
		"                  (default $CAREWEAVE_KEY_FILE)\n"
		"  --db PATH      database file (default %s)\n"
		"  --out FILE     output file (default standard output)\n"
		"\nExit status: 0 ok, 1 unknown patient, 2 usage, 3 I/O or database error.\n",
		CLI_DEFAULT_DB);
}

int
cli_export(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"patient", required_argument, NULL, 'p'},
		{"db", required_argument, NULL, 'd'},
		CLI_KEY_FILE_OPTION,
		{"out", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	/* An operator door: runs with the database file's permissions. */
	struct api_options ao = {.base_url = EXPORT_BASE_URL, .local = true};
	const char *key_file = NULL, *db = CLI_DEFAULT_DB, *patient = NULL, *outpath = NULL;
	json_t *merged = NULL, *entries = NULL;
	char *text = NULL;
	size_t tlen = 0;
	struct store *s;
	struct api *api = NULL;
	struct arena *a = NULL;
	char *url = NULL;
	FILE *out;
	int c, rc = CLI_OK;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p':
			patient = optarg;
			break;
		case CLI_OPT_KEY_FILE:
			key_file = optarg;
			break;
		case 'd':
			db = optarg;
			break;
		case 'o':
			outpath = optarg;
			break;
		case 'h':
			export_usage(stdout);
			return CLI_OK;
		default:
			export_usage(stderr);
			return CLI_EUSAGE;
		}
	}
	if (optind < argc) {
		cli_err("export", "unexpected argument '%s'", argv[optind]);
		return CLI_EUSAGE;
	}
	if (!patient) {
		cli_err("export", "--patient ID is required");
		return CLI_EUSAGE;
	}
	if (!id_is_valid(patient, strlen(patient))) {
		cli_err("export", "--patient: '%s' is not a FHIR id", patient);
		return CLI_EUSAGE;
	}
	/* The API logs each request at info: noise on a command line. */
	if (!getenv("CAREWEAVE_LOG"))
		log_set_level(LOG_WARN);
	/* Writable, for the audit record of each page (an export is an
	 * access like any other); a missing file is still opened read-only
	 * so that it fails without being created. */
	s = cli_open_store("export", db, access(db, F_OK) != 0, key_file);
	if (!s)
		return CLI_EIO;
	a = arena_new(0);
	api = api_new(s, &ao);
	merged = json_pack("{s:s, s:s, s:I, s:[]}", "resourceType", "Bundle",
			   "type", "searchset", "total", (json_int_t)0, "entry");
	entries = json_object_get(merged, "entry");
	if (!a || !api || !entries) {
		cli_err("export", "out of memory");
		rc = CLI_EIO;
		goto out;
	}
	url = malloc(strlen(patient) + 64);
	if (!url) {
		rc = CLI_EIO;
		goto out;
	}
	snprintf(url, strlen(patient) + 64, "/fhir/Patient/%s/$everything?_count=" EXPORT_PAGE,
		 patient);
	for (int page = 0; url && page < MAX_PAGES; page++) {
		struct http_req r = {.arena = a, .method = "GET", .body = "",
				     .remote = "cli"};
		struct http_resp w = {0};
		json_t *doc, *e, *l;
		const char *next = NULL;
		size_t i;

		if (!request_from_url(a, url, &r)) {
			cli_err("export", "cannot follow the page link");
			rc = CLI_EIO;
			goto out;
		}
		api_handle(api, &r, &w);
		if (w.status == 404 || w.status == 410) {
			cli_err("export", "patient %s not found", patient);
			rc = CLI_EDATA;
			goto out;
		}
		if (w.status != 200) {
			cli_err("export", "$everything failed with status %d", w.status);
			if (w.body)
				print_outcome(w.body, w.body_len);
			rc = w.status >= 500 ? CLI_EIO : CLI_EDATA;
			goto out;
		}
		fhir_parse_json(w.body ? w.body : "", w.body_len, &doc, NULL);
		if (!doc) {
			cli_err("export", "the API returned a body that is not JSON");
			rc = CLI_EIO;
			goto out;
		}
		json_array_foreach(json_object_get(doc, "entry"), i, e)
			json_array_append(entries, e);
		json_array_foreach(json_object_get(doc, "link"), i, l) {
			const char *rel = json_string_value(json_object_get(l, "relation"));

			if (rel && strcmp(rel, "next") == 0)
				next = json_string_value(json_object_get(l, "url"));
		}
		free(url);
		url = next ? strdup(next) : NULL;
		json_decref(doc);
		arena_reset(a);
	}
	json_object_set_new(merged, "total", json_integer((json_int_t)json_array_size(entries)));
	out = outpath ? fopen(outpath, "w") : stdout;
	if (!out) {
		cli_err("export", "cannot write %s: %m", outpath);
		rc = CLI_EIO;
		goto out;
	}
	text = fhir_dump(merged, &tlen);
	if (!text || fwrite(text, 1, tlen, out) != tlen || fputc('\n', out) == EOF ||
	    fflush(out) != 0) {
		cli_err("export", "cannot write %s: %m", outpath ? outpath : "standard output");
		rc = CLI_EIO;
	}
	if (outpath && fclose(out) != 0 && rc == CLI_OK) {
		cli_err("export", "cannot write %s: %m", outpath);
		rc = CLI_EIO;
	}
	if (rc == CLI_OK)
		log_info("exported %zu resources", json_array_size(entries));
out:
	free(url);
	free(text);
	json_decref(merged);
	if (api)
		api_free(api);
	arena_free(a);
	store_close(s);
	return rc;
}

static void
check_usage(FILE *f)
{
	fprintf(f,
		"usage: careweave check [--db PATH]\n\n"
		"Runs the database's integrity check and prints ok or the problem.\n\n"
		"  --key-file FILE the database's key file\n"
		"                  (default $CAREWEAVE_KEY_FILE)\n"
		"  --db PATH   database file (default %s)\n"
		"\nExit status: 0 ok, 1 the check found problems, 2 usage, 3 cannot open.\n",
		CLI_DEFAULT_DB);
}

int
cli_check(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, 'd'},
		CLI_KEY_FILE_OPTION,
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *key_file = NULL, *db = CLI_DEFAULT_DB;
	struct store *s;
	struct arena *a;
	struct diag d;
	enum cw_err err;
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
		case 'h':
			check_usage(stdout);
			return CLI_OK;
		default:
			check_usage(stderr);
			return CLI_EUSAGE;
		}
	}
	if (optind < argc) {
		cli_err("check", "unexpected argument '%s'", argv[optind]);
		return CLI_EUSAGE;
	}
	s = cli_open_store("check", db, true, key_file);
	if (!s)
		return CLI_EIO;
	a = arena_new(0);
	if (!a) {
		store_close(s);
		return CLI_EIO;
	}
	diag_init(&d, a);
	err = store_check(s, &d);
	if (err == CW_OK) {
		printf("ok\n");
	} else {
		printf("%s: %s\n", db, cw_strerror(err));
		for (size_t i = 0; i < d.n; i++)
			printf("  %s\n", d.issues[i].msg ? d.issues[i].msg : "");
		rc = err == CW_EIO || err == CW_ENOMEM ? CLI_EIO : CLI_EDATA;
	}
	arena_free(a);
	store_close(s);
	return rc;
}
