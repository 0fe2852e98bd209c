/* cli/import.c: `careweave import` and `careweave demo`: loading files
 * through the one write path.
 *
 * Everything goes through api_bundle, as a POST of a transaction to /fhir
 * would: validation, the store transaction, the same rules. Two inputs:
 *
 * - .json: a Bundle. transaction and batch Bundles go in as they are;
 *   collection, searchset, document and message Bundles become a transaction
 *   of PUT Type/id (POST Type without an id), so ids are kept; a single
 *   resource becomes a transaction of one entry.
 * - .ndjson: one resource a line (bulk export, Synthea). Lines are grouped
 *   into transactions of CHUNK_RESOURCES (or CHUNK_BYTES of JSON), each
 *   entry a PUT Type/id.
 *
 * All with lenient_refs: a conditional reference
 * (Practitioner?identifier=sys|val) is resolved inside the transaction when
 * its target exists, else kept as a logical reference with a warning; those
 * warnings are counted and their distinct queries reported (identifiers of
 * practitioners and organizations, not PHI; at most 20 shown).
 *
 * So that a whole export loads in any file order, files are imported by
 * dependency rank (Organization, Location, Practitioner, PractitionerRole,
 * Patient, RelatedPerson, Device, Medication, Encounter, then the rest),
 * whatever order they were named in; demo keeps its own (name) order.
 *
 * A bad line or entry stops the import: its transaction is rolled back, the
 * file, line and validation issues are printed, and the count of resources
 * committed before it (in earlier transactions, which stay) is given. Exit
 * codes: 0 ok, 1 data errors, 2 usage, 3 I/O or database. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "cli/cli.h"
#include "fhir/fhir.h"
#include "store/store.h"

#define CHUNK_RESOURCES 1000
#define CHUNK_BYTES (32u << 20)
#define MAX_JSON_FILE ((size_t)1 << 30)
#define MAX_SHOWN_QUERIES 20
#define MAX_KEPT_QUERIES 10000
#define IMPORT_BASE_URL "http://127.0.0.1:8080/fhir"

/* Dependency order: what others point at goes first. */
static const char *const rank_types[] = {
	"Organization", "Location", "Practitioner", "PractitionerRole",
	"Patient", "RelatedPerson", "Device", "Medication", "Encounter",
};
#define RANK_COUNT (sizeof(rank_types) / sizeof(rank_types[0]))
#define RANK_OTHER ((int)RANK_COUNT)

struct ifile {
	char *path;
	bool ndjson;
	int rank;
	size_t order;
	long lines; /* non-empty lines of an .ndjson file */
};

struct typecount {
	const char *type; /* static: the model's name */
	long n;
};

struct condref {
	json_t *obj;       /* the Reference object, inside the transaction */
	const char *query; /* its conditional reference (arena) */
};

struct importer {
	const char *cmd;
	struct api *api;
	struct arena *arena;
	const struct cli_import_opt *opt;

	long committed;
	long total;
	long batch_failed;
	struct typecount *types;
	size_t ntypes;
	long unresolved;
	char **queries; /* distinct unresolved conditional references */
	size_t nqueries;
	long queries_dropped;
	struct condref *refs; /* conditional references of the transaction */
	size_t nrefs;
	size_t caprefs;

	bool tty;
	double t0;
	double last_progress;
	bool progress_shown;

	/* the transaction being built */
	const char *file;
	json_t *bundle;
	json_t *entries;
	long *lines;                      /* entry -> line in file */
	const struct fhir_restype **rts;  /* entry -> type */
	size_t nchunk;
	size_t chunk_bytes;
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- progress and report ---------------------------------------------- */

static void
progress(struct importer *im, bool force)
{
	double t = now_s(), rate;

	if (!im->opt->progress)
		return;
	if (!force && t - im->last_progress < 0.5)
		return;
	im->last_progress = t;
	rate = t > im->t0 ? (double)im->committed / (t - im->t0) : 0;
	if (im->total < im->committed)
		im->total = im->committed;
	fprintf(stderr, "%simport: %ld/%ld resources, %.0f/s%s",
		im->tty ? "\r" : "", im->committed, im->total, rate,
		im->tty ? "\033[K" : "\n");
	fflush(stderr);
	im->progress_shown = true;
}

static void
progress_end(struct importer *im)
{
	if (im->progress_shown && im->tty) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
}

static void
count_type(struct importer *im, const char *type)
{
	struct typecount *t;

	for (size_t i = 0; i < im->ntypes; i++) {
		if (im->types[i].type == type || strcmp(im->types[i].type, type) == 0) {
			im->types[i].n++;
			return;
		}
	}
	t = realloc(im->types, (im->ntypes + 1) * sizeof(*t));
	if (!t)
		return;
	im->types = t;
	im->types[im->ntypes].type = type;
	im->types[im->ntypes].n = 1;
	im->ntypes++;
}

static int
typecount_cmp(const void *a, const void *b)
{
	const struct typecount *x = a, *y = b;

	return strcmp(x->type, y->type);
}

static void
report(struct importer *im, size_t nfiles)
{
	double t = now_s() - im->t0;

	/* qsort(NULL, 0, ...) is undefined: nothing was committed. */
	if (im->ntypes)
		qsort(im->types, im->ntypes, sizeof(*im->types), typecount_cmp);
	printf("imported %ld resources from %zu file%s in %.1f s (%.0f/s)\n",
	       im->committed, nfiles, nfiles == 1 ? "" : "s", t,
	       t > 0 ? (double)im->committed / t : 0.0);
	if (!im->opt->quiet)
		for (size_t i = 0; i < im->ntypes; i++)
			printf("  %-28s %ld\n", im->types[i].type, im->types[i].n);
	if (im->unresolved) {
		size_t shown = im->nqueries < MAX_SHOWN_QUERIES ? im->nqueries
							       : MAX_SHOWN_QUERIES;

		printf("unresolved conditional references: %ld (%zu distinct%s), "
		       "kept as logical references\n",
		       im->unresolved, im->nqueries + (size_t)im->queries_dropped,
		       im->queries_dropped ? " or more" : "");
		for (size_t i = 0; i < shown; i++)
			printf("  %s\n", im->queries[i]);
		if (im->nqueries > shown)
			printf("  ... and %zu more\n", im->nqueries - shown);
	}
	if (im->batch_failed)
		printf("batch entries that failed: %ld\n", im->batch_failed);
	fflush(stdout);
}

/* ---- unresolved conditional references --------------------------------- */

static void
remember_query(struct importer *im, const char *q, size_t n)
{
	char **nq;

	for (size_t i = 0; i < im->nqueries; i++)
		if (strlen(im->queries[i]) == n && memcmp(im->queries[i], q, n) == 0)
			return;
	if (im->nqueries >= MAX_KEPT_QUERIES) {
		im->queries_dropped = 1;
		return;
	}
	nq = realloc(im->queries, (im->nqueries + 1) * sizeof(*nq));
	if (!nq)
		return;
	im->queries = nq;
	im->queries[im->nqueries] = strndup(q, n);
	if (im->queries[im->nqueries])
		im->nqueries++;
}

/* Finds "Type?params" in text: a served type name right before a '?'. */
static bool
find_query(const char *text, const char **q, size_t *n)
{
	for (const char *p = strchr(text, '?'); p; p = strchr(p + 1, '?')) {
		const char *s = p, *e = p + 1;

		while (s > text && isalpha((unsigned char)s[-1]))
			s--;
		if (s == p || !fhir_restype_findn(s, (size_t)(p - s)))
			continue;
		while (*e && !isspace((unsigned char)*e) && *e != '\'' &&
		       *e != '"' && *e != ')' && *e != ',')
			e++;
		*q = s;
		*n = (size_t)(e - s);
		return true;
	}
	return false;
}

/* A conditional reference: "Type?query", Type served. */
static bool
is_conditional(const char *s)
{
	const char *qm = strchr(s, '?');

	return qm && qm > s && !memchr(s, '/', (size_t)(qm - s)) &&
	       strncmp(s, "urn:", 4) != 0 && fhir_restype_findn(s, (size_t)(qm - s));
}

/* Records the Reference objects in j whose reference is conditional, so
 * that after the transaction the ones api_bundle had to keep as logical
 * references (it drops their "reference") can be named. */
static void
scan_refs(struct importer *im, json_t *j)
{
	const char *key;
	json_t *v;
	size_t i;

	if (json_is_array(j)) {
		json_array_foreach(j, i, v)
			if (json_is_object(v) || json_is_array(v))
				scan_refs(im, v);
		return;
	}
	if (!json_is_object(j))
		return;
	json_object_foreach(j, key, v) {
		if (json_is_string(v)) {
			if (strcmp(key, "reference") == 0 &&
			    is_conditional(json_string_value(v))) {
				struct condref *cr;

				if (im->nrefs == im->caprefs) {
					size_t cap = im->caprefs ? im->caprefs * 2 : 256;

					cr = realloc(im->refs, cap * sizeof(*cr));
					if (!cr)
						return;
					im->refs = cr;
					im->caprefs = cap;
				}
				cr = &im->refs[im->nrefs];
				cr->obj = j;
				cr->query = arena_strdup(im->arena, json_string_value(v));
				if (cr->query)
					im->nrefs++;
			}
		} else if (json_is_object(v) || json_is_array(v)) {
			scan_refs(im, v);
		}
	}
}

/* Counts the conditional references api_bundle could not resolve: by its
 * warnings, and by the recorded references it turned into logical ones. */
static void
collect_unresolved(struct importer *im, const struct diag *d)
{
	long nwarn = 0, nlogical = 0;

	for (size_t i = 0; i < d->n; i++) {
		const struct diag_issue *is = &d->issues[i];
		const char *q;
		size_t n;

		if (is->sev != DIAG_WARNING || !is->msg ||
		    !strstr(is->msg, "onditional reference"))
			continue;
		nwarn++;
		if (find_query(is->msg, &q, &n))
			remember_query(im, q, n);
	}
	for (size_t i = 0; i < im->nrefs; i++) {
		if (json_object_get(im->refs[i].obj, "reference"))
			continue;
		nlogical++;
		remember_query(im, im->refs[i].query, strlen(im->refs[i].query));
	}
	im->nrefs = 0;
	im->unresolved += nwarn > nlogical ? nwarn : nlogical;
}

/* ---- the transaction being built ---------------------------------------- */

static bool
chunk_init(struct importer *im)
{
	im->bundle = json_pack("{s:s, s:s, s:[]}", "resourceType", "Bundle",
			       "type", "transaction", "entry");
	im->entries = im->bundle ? json_object_get(im->bundle, "entry") : NULL;
	im->lines = calloc(CHUNK_RESOURCES, sizeof(*im->lines));
	im->rts = calloc(CHUNK_RESOURCES, sizeof(*im->rts));
	return im->entries && im->lines && im->rts;
}

static void
chunk_release(struct importer *im)
{
	json_decref(im->bundle);
	free(im->lines);
	free(im->rts);
}

/* The entry index an issue points at: "Bundle.entry[12]..." or "entry 12". */
static long
issue_entry(const struct diag_issue *is)
{
	const char *texts[2] = {is->loc, is->msg};

	for (int i = 0; i < 2; i++) {
		const char *p;

		if (!texts[i])
			continue;
		p = strstr(texts[i], "entry[");
		if (p)
			return strtol(p + 6, NULL, 10);
		p = strstr(texts[i], "entry ");
		if (p && isdigit((unsigned char)p[6]))
			return strtol(p + 6, NULL, 10);
	}
	return -1;
}

static const char *
sev_name(enum diag_sev s)
{
	switch (s) {
	case DIAG_FATAL: return "fatal";
	case DIAG_ERROR: return "error";
	case DIAG_WARNING: return "warning";
	default: return "info";
	}
}

/* Prints d's issues. With type, locations inside the transaction
 * ("Bundle.entry[5].resource.birthDate") are shown as the line's own
 * ("Patient.birthDate"): NDJSON users think in lines, not entries. */
static void
print_issues(const struct diag *d, bool errors_only, const char *type)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct diag_issue *is = &d->issues[i];
		const char *loc = is->loc, *r;

		if (errors_only && is->sev > DIAG_ERROR)
			continue;
		if (type && loc && strncmp(loc, "Bundle.entry[", 13) == 0 &&
		    (r = strstr(loc, "].resource")) != NULL) {
			r += 10;
			fprintf(stderr, "  %s %s%s: %s\n", sev_name(is->sev), type,
				r, is->msg ? is->msg : "");
			continue;
		}
		fprintf(stderr, "  %s %s%s%s\n", sev_name(is->sev),
			loc ? loc : "", loc ? ": " : "", is->msg ? is->msg : "");
	}
	if (d->dropped)
		fprintf(stderr, "  ... and %zu more issues\n", d->dropped);
}

static int
exit_of(enum cw_err err)
{
	switch (err) {
	case CW_EIO:
	case CW_ENOMEM:
	case CW_EINTERNAL:
	case CW_EBUSY:
	case CW_ETIMEOUT:
		return CLI_EIO;
	default:
		return CLI_EDATA;
	}
}

static void
stopped(struct importer *im)
{
	progress_end(im);
	cli_err(im->cmd, "stopped; %ld resources were committed before this "
		"(transactions already committed stay in the database)",
		im->committed);
}

/* An NDJSON transaction failed: say which line, and why. */
static void
report_chunk_failure(struct importer *im, const struct diag *d,
		     enum cw_err err)
{
	long idx = -1;

	for (size_t i = 0; i < d->n && idx < 0; i++)
		if (d->issues[i].sev <= DIAG_ERROR)
			idx = issue_entry(&d->issues[i]);
	progress_end(im);
	if (idx >= 0 && (size_t)idx < im->nchunk) {
		cli_err(im->cmd, "%s:%ld: %s/%s: %s", im->file, im->lines[idx],
			im->rts[idx]->name,
			json_string_value(json_object_get(
				json_object_get(json_array_get(im->entries, (size_t)idx),
						"resource"), "id")) ?: "(no id)",
			cw_strerror(err));
		print_issues(d, true, im->rts[idx]->name);
		return;
	}
	/* The issue names no entry: find the first line that does not
	 * validate on its own. */
	for (size_t i = 0; i < im->nchunk; i++) {
		json_t *res = json_object_get(json_array_get(im->entries, i), "resource");
		struct diag vd;

		diag_init(&vd, im->arena);
		if (fhir_validate(res, NULL, &vd) != CW_OK) {
			cli_err(im->cmd, "%s:%ld: invalid %s resource", im->file,
				im->lines[i], im->rts[i]->name);
			print_issues(&vd, true, NULL);
			return;
		}
	}
	cli_err(im->cmd, "%s: lines %ld-%ld: transaction failed: %s", im->file,
		im->nchunk ? im->lines[0] : 0,
		im->nchunk ? im->lines[im->nchunk - 1] : 0, cw_strerror(err));
	print_issues(d, false, NULL);
}

/* Commits the transaction built so far. */
static int
chunk_flush(struct importer *im)
{
	struct api_bundle_opt bo = {.lenient_refs = true};
	json_t *out = NULL;
	struct diag d;
	enum cw_err err;

	if (!im->nchunk)
		return CLI_OK;
	diag_init(&d, im->arena);
	err = api_bundle(im->api, im->arena, im->bundle, &bo, &out, &d);
	if (err) {
		report_chunk_failure(im, &d, err);
		json_decref(out);
		return exit_of(err);
	}
	for (size_t i = 0; i < im->nchunk; i++)
		count_type(im, im->rts[i]->name);
	collect_unresolved(im, &d);
	im->committed += (long)im->nchunk;
	json_decref(out);
	json_array_clear(im->entries);
	im->nchunk = 0;
	im->chunk_bytes = 0;
	arena_reset(im->arena);
	progress(im, false);
	return CLI_OK;
}

/* Adds res (taken) to the transaction: PUT Type/id, or POST Type. */
static bool
chunk_add(struct importer *im, json_t *res, const struct fhir_restype *rt,
	  const char *id, long line)
{
	char url[160];
	json_t *entry;

	if (id)
		snprintf(url, sizeof(url), "%s/%s", rt->name, id);
	else
		snprintf(url, sizeof(url), "%s", rt->name);
	entry = json_pack("{s:o, s:{s:s, s:s}}", "resource", res, "request",
			  "method", id ? "PUT" : "POST", "url", url);
	if (!entry || json_array_append_new(im->entries, entry) != 0)
		return false;
	im->lines[im->nchunk] = line;
	im->rts[im->nchunk] = rt;
	im->nchunk++;
	scan_refs(im, res);
	return true;
}

/* ---- NDJSON ------------------------------------------------------------ */

static bool
blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isspace((unsigned char)s[i]))
			return false;
	return true;
}

static int
import_ndjson(struct importer *im, const struct ifile *f)
{
	FILE *fp = fopen(f->path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long lineno = 0;
	int rc = CLI_OK;

	if (!fp) {
		progress_end(im);
		cli_err(im->cmd, "cannot open %s: %s", f->path, strerror(errno));
		return CLI_EIO;
	}
	im->file = f->path;
	while ((n = getline(&line, &cap, fp)) >= 0) {
		const struct fhir_restype *rt;
		const char *type, *id;
		json_t *res, *jid;
		struct diag d;

		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (blank(line, (size_t)n))
			continue;
		diag_init(&d, im->arena);
		if (fhir_parse_json(line, (size_t)n, &res, &d) != CW_OK) {
			progress_end(im);
			cli_err(im->cmd, "%s:%ld: malformed JSON", f->path, lineno);
			print_issues(&d, false, NULL);
			rc = CLI_EDATA;
			goto out;
		}
		type = json_string_value(json_object_get(res, "resourceType"));
		rt = type ? fhir_restype_find(type) : NULL;
		if (!rt) {
			progress_end(im);
			if (type && fhir_type_find(type))
				cli_err(im->cmd, "%s:%ld: resource type %s is not served",
					f->path, lineno, type);
			else
				cli_err(im->cmd, "%s:%ld: not a FHIR resource "
					"(missing or unknown resourceType)", f->path, lineno);
			json_decref(res);
			rc = CLI_EDATA;
			goto out;
		}
		jid = json_object_get(res, "id");
		id = json_string_value(jid);
		if (jid && (!id || !id_is_valid(id, strlen(id)))) {
			progress_end(im);
			cli_err(im->cmd, "%s:%ld: %s.id is not a valid FHIR id",
				f->path, lineno, rt->name);
			json_decref(res);
			rc = CLI_EDATA;
			goto out;
		}
		if (!chunk_add(im, res, rt, id, lineno)) {
			progress_end(im);
			cli_err(im->cmd, "out of memory");
			rc = CLI_EIO;
			goto out;
		}
		im->chunk_bytes += (size_t)n;
		if (im->nchunk >= CHUNK_RESOURCES || im->chunk_bytes >= CHUNK_BYTES) {
			rc = chunk_flush(im);
			if (rc)
				goto out;
		}
	}
	if (ferror(fp)) {
		progress_end(im);
		cli_err(im->cmd, "cannot read %s: %s", f->path, strerror(errno));
		rc = CLI_EIO;
		goto out;
	}
	rc = chunk_flush(im);
out:
	if (rc) {
		json_array_clear(im->entries);
		im->nchunk = 0;
		im->chunk_bytes = 0;
		im->nrefs = 0;
	}
	free(line);
	fclose(fp);
	return rc;
}

/* ---- Bundles and single resources (.json) ------------------------------ */


/* A collection (or searchset, document, message) as a transaction of PUTs
 * by id. Entries of searchset mode "outcome" are dropped. */
static json_t *
as_transaction(const json_t *bundle, const char *path, const char *cmd)
{
	json_t *tx = json_pack("{s:s, s:s, s:[]}", "resourceType", "Bundle",
			       "type", "transaction", "entry");
	json_t *entries = json_object_get(tx, "entry");
	json_t *e;
	size_t i;

	if (!tx)
		return NULL;
	json_array_foreach(json_object_get(bundle, "entry"), i, e) {
		json_t *res = json_object_get(e, "resource");
		const char *mode = json_string_value(
			json_object_get(json_object_get(e, "search"), "mode"));
		const char *type = json_string_value(json_object_get(res, "resourceType"));
		const char *id = json_string_value(json_object_get(res, "id"));
		json_t *fu = json_object_get(e, "fullUrl");
		char url[160];
		json_t *ne;

		if (mode && strcmp(mode, "outcome") == 0)
			continue;
		if (!type) {
			cli_err(cmd, "%s: entry %zu has no resource", path, i);
			json_decref(tx);
			return NULL;
		}
		if (id && strlen(id) <= 64)
			snprintf(url, sizeof(url), "%s/%s", type, id);
		else
			snprintf(url, sizeof(url), "%.64s", type);
		ne = json_pack("{s:O, s:{s:s, s:s}}", "resource", res, "request",
			       "method", id ? "PUT" : "POST", "url", url);
		if (ne && fu)
			json_object_set(ne, "fullUrl", fu);
		if (!ne || json_array_append_new(entries, ne) != 0) {
			json_decref(tx);
			return NULL;
		}
	}
	return tx;
}

/* One failed batch entry: its status and the outcome's (client-safe)
 * issues. */
static void
batch_failure(struct importer *im, const char *path, size_t i, const char *st,
	      const json_t *oo)
{
	json_t *is;
	size_t k;

	progress_end(im);
	cli_err(im->cmd, "%s: Bundle.entry[%zu] failed: %s", path, i,
		st ? st : "(no status)");
	json_array_foreach(json_object_get(oo, "issue"), k, is) {
		const char *sev = json_string_value(json_object_get(is, "severity"));
		const char *diag = json_string_value(json_object_get(is, "diagnostics"));
		json_t *ex = json_array_get(json_object_get(is, "expression"), 0);

		fprintf(stderr, "  %s %s%s%s\n", sev ? sev : "error",
			json_string_value(ex) ? json_string_value(ex) : "",
			json_string_value(ex) ? ": " : "", diag ? diag : "");
	}
}

static void
count_bundle(struct importer *im, const char *path, const json_t *tx,
	     const json_t *out, bool batch)
{
	json_t *e;
	size_t i;

	json_array_foreach(json_object_get(tx, "entry"), i, e) {
		const char *type = json_string_value(
			json_object_get(json_object_get(e, "resource"), "resourceType"));
		const struct fhir_restype *rt = type ? fhir_restype_find(type) : NULL;

		if (batch) {
			json_t *resp = json_object_get(
				json_array_get(json_object_get(out, "entry"), i), "response");
			const char *st = json_string_value(json_object_get(resp, "status"));

			if (!st || st[0] != '2') {
				if (im->batch_failed++ < MAX_SHOWN_QUERIES)
					batch_failure(im, path, i, st, json_object_get(resp, "outcome"));
				continue;
			}
		}
		if (rt) {
			count_type(im, rt->name);
			im->committed++;
		}
	}
}

static int
import_json(struct importer *im, const struct ifile *f)
{
	struct api_bundle_opt bo = {.lenient_refs = true};
	json_t *doc = NULL, *tx = NULL, *out = NULL;
	const char *rtype, *btype;
	struct diag d;
	enum cw_err err;
	size_t len;
	char *text;
	int e, rc = CLI_OK;
	bool batch = false;

	text = cli_read_file(f->path, MAX_JSON_FILE, &len, &e);
	if (!text) {
		progress_end(im);
		cli_err(im->cmd, "cannot read %s: %s", f->path, strerror(e));
		return CLI_EIO;
	}
	diag_init(&d, im->arena);
	if (fhir_parse_json(text, len, &doc, &d) != CW_OK) {
		progress_end(im);
		cli_err(im->cmd, "%s: malformed JSON", f->path);
		print_issues(&d, false, NULL);
		rc = CLI_EDATA;
		goto out;
	}
	rtype = json_string_value(json_object_get(doc, "resourceType"));
	btype = json_string_value(json_object_get(doc, "type"));
	if (!rtype || (strcmp(rtype, "Bundle") != 0 && !fhir_restype_find(rtype))) {
		progress_end(im);
		cli_err(im->cmd, "%s: not a FHIR Bundle or served resource "
			"(missing or unknown resourceType)", f->path);
		rc = CLI_EDATA;
		goto out;
	}
	if (strcmp(rtype, "Bundle") != 0) {
		const char *id = json_string_value(json_object_get(doc, "id"));
		char url[160];

		if (id && strlen(id) <= 64)
			snprintf(url, sizeof(url), "%s/%s", rtype, id);
		else
			snprintf(url, sizeof(url), "%s", rtype);
		tx = json_pack("{s:s, s:s, s:[{s:O, s:{s:s, s:s}}]}",
			       "resourceType", "Bundle", "type", "transaction",
			       "entry", "resource", doc, "request", "method",
			       id ? "PUT" : "POST", "url", url);
	} else if (btype && (strcmp(btype, "transaction") == 0 ||
			     strcmp(btype, "batch") == 0)) {
		batch = strcmp(btype, "batch") == 0;
		tx = json_incref(doc);
	} else if (btype && (strcmp(btype, "collection") == 0 ||
			     strcmp(btype, "searchset") == 0 ||
			     strcmp(btype, "document") == 0 ||
			     strcmp(btype, "message") == 0)) {
		tx = as_transaction(doc, f->path, im->cmd);
		if (!tx) {
			rc = CLI_EDATA;
			goto out;
		}
	} else {
		progress_end(im);
		cli_err(im->cmd, "%s: Bundle type '%s' cannot be imported "
			"(transaction, batch, collection, searchset, document or message)",
			f->path, btype ? btype : "(none)");
		rc = CLI_EDATA;
		goto out;
	}
	if (!tx) {
		cli_err(im->cmd, "out of memory");
		rc = CLI_EIO;
		goto out;
	}
	im->total += (long)json_array_size(json_object_get(tx, "entry"));
	progress(im, false);
	im->nrefs = 0;
	scan_refs(im, tx);
	diag_init(&d, im->arena);
	err = api_bundle(im->api, im->arena, tx, &bo, &out, &d);
	if (err) {
		progress_end(im);
		cli_err(im->cmd, "%s: %s failed: %s", f->path,
			batch ? "batch" : "transaction", cw_strerror(err));
		print_issues(&d, true, NULL);
		rc = exit_of(err);
		goto out;
	}
	count_bundle(im, f->path, tx, out, batch);
	collect_unresolved(im, &d);
	progress(im, false);
out:
	json_decref(out);
	json_decref(tx);
	json_decref(doc);
	free(text);
	arena_reset(im->arena);
	return rc;
}

/* ---- the file list ------------------------------------------------------ */

static bool
has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);

	return n >= m && strcmp(s + n - m, suf) == 0;
}

static int
rank_of(const char *type)
{
	for (size_t i = 0; i < RANK_COUNT; i++)
		if (strcmp(rank_types[i], type) == 0)
			return (int)i;
	return RANK_OTHER;
}

/* The resource type of an NDJSON file: from its name (Patient.ndjson,
 * Patient.000.ndjson, Patient-1.ndjson) or else its first line. */
static const char *
ndjson_type(const char *path)
{
	const char *base = strrchr(path, '/');
	const struct fhir_restype *rt;
	size_t n = 0;
	FILE *fp;
	char *line = NULL;
	size_t cap = 0;
	const char *type = NULL;

	base = base ? base + 1 : path;
	while (isalpha((unsigned char)base[n]))
		n++;
	rt = n ? fhir_restype_findn(base, n) : NULL;
	if (rt)
		return rt->name;
	fp = fopen(path, "r");
	if (!fp)
		return NULL;
	while (getline(&line, &cap, fp) > 0) {
		json_t *j;

		if (blank(line, strlen(line)))
			continue;
		j = json_loads(line, 0, NULL);
		rt = fhir_restype_find(json_string_value(json_object_get(j, "resourceType")) ?: "");
		type = rt ? rt->name : NULL;
		json_decref(j);
		break;
	}
	free(line);
	fclose(fp);
	return type;
}

static long
count_lines(const char *path)
{
	FILE *fp = fopen(path, "rb");
	char buf[65536];
	size_t n;
	long lines = 0;
	bool content = false;

	if (!fp)
		return 0;
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0) {
		for (size_t i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				lines += content;
				content = false;
			} else if (!isspace((unsigned char)buf[i])) {
				content = true;
			}
		}
	}
	lines += content;
	fclose(fp);
	return lines;
}

struct filelist {
	struct ifile *f;
	size_t n;
	size_t cap;
};

static int
add_file(struct filelist *fl, const char *cmd, const char *path)
{
	struct ifile *f;

	if (!has_suffix(path, ".json") && !has_suffix(path, ".ndjson")) {
		cli_err(cmd, "%s: unknown kind of file (want .json or .ndjson)", path);
		return CLI_EUSAGE;
	}
	if (fl->n == fl->cap) {
		size_t cap = fl->cap ? fl->cap * 2 : 16;

		f = realloc(fl->f, cap * sizeof(*f));
		if (!f)
			return CLI_EIO;
		fl->f = f;
		fl->cap = cap;
	}
	f = &fl->f[fl->n];
	memset(f, 0, sizeof(*f));
	f->path = strdup(path);
	if (!f->path)
		return CLI_EIO;
	f->order = fl->n;
	f->ndjson = has_suffix(path, ".ndjson");
	fl->n++;
	return CLI_OK;
}

static int
strptr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds a directory's .json and .ndjson files, sorted by name. */
static int
add_dir(struct filelist *fl, const char *cmd, const char *dir)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = CLI_OK;

	if (!dp) {
		cli_err(cmd, "cannot open folder %s: %s", dir, strerror(errno));
		return CLI_EIO;
	}
	while ((de = readdir(dp))) {
		if (de->d_name[0] == '.' ||
		    (!has_suffix(de->d_name, ".json") && !has_suffix(de->d_name, ".ndjson")))
			continue;
		if (n == cap) {
			char **nn;

			cap = cap ? cap * 2 : 32;
			nn = realloc(names, cap * sizeof(*nn));
			if (!nn) {
				rc = CLI_EIO;
				goto out;
			}
			names = nn;
		}
		names[n] = malloc(strlen(dir) + strlen(de->d_name) + 2);
		if (!names[n]) {
			rc = CLI_EIO;
			goto out;
		}
		snprintf(names[n], strlen(dir) + strlen(de->d_name) + 2, "%s%s%s", dir,
			 has_suffix(dir, "/") ? "" : "/", de->d_name);
		n++;
	}
	if (!n)
		cli_err(cmd, "warning: no .json or .ndjson files in %s", dir);
	else
		qsort(names, n, sizeof(*names), strptr_cmp);
	for (size_t i = 0; i < n && rc == CLI_OK; i++)
		rc = add_file(fl, cmd, names[i]);
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(dp);
	return rc;
}

static int
ifile_cmp(const void *a, const void *b)
{
	const struct ifile *x = a, *y = b;

	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* A .json file's rank: Synthea's shared bundles first, then the rest. */
static int
json_rank(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	if (strncmp(base, "hospitalInformation", 19) == 0)
		return rank_of("Organization");
	if (strncmp(base, "practitionerInformation", 23) == 0)
		return rank_of("Practitioner");
	return RANK_OTHER;
}

int
cli_import_paths(const char *cmd, struct store *s, char **paths,
		 size_t npaths, const struct cli_import_opt *opt)
{
	/* An operator door: runs with the database file's permissions. */
	struct api_options ao = {.base_url = IMPORT_BASE_URL, .local = true};
	struct filelist fl = {0};
	struct importer im = {0};
	int rc = CLI_OK;

	for (size_t i = 0; i < npaths && rc == CLI_OK; i++) {
		struct stat st;

		if (stat(paths[i], &st) != 0) {
			cli_err(cmd, "cannot open %s: %s", paths[i], strerror(errno));
			rc = CLI_EIO;
		} else if (S_ISDIR(st.st_mode)) {
			rc = add_dir(&fl, cmd, paths[i]);
		} else {
			rc = add_file(&fl, cmd, paths[i]);
		}
	}
	if (rc)
		goto out_files;
	for (size_t i = 0; i < fl.n; i++) {
		struct ifile *f = &fl.f[i];

		if (f->ndjson) {
			const char *type = ndjson_type(f->path);

			f->rank = type ? rank_of(type) : RANK_OTHER;
			f->lines = count_lines(f->path);
			im.total += f->lines;
		} else {
			f->rank = json_rank(f->path);
		}
	}
	if (!opt->keep_order && fl.n)
		qsort(fl.f, fl.n, sizeof(*fl.f), ifile_cmp);

	im.cmd = cmd;
	im.opt = opt;
	im.tty = isatty(STDERR_FILENO);
	im.arena = arena_new(0);
	ao.coord = opt->coord;
	ao.rules_report_only = true;
	im.api = api_new(s, &ao);
	if (!im.arena || !im.api || !chunk_init(&im)) {
		cli_err(cmd, "cannot start the import (out of memory)");
		rc = CLI_EIO;
		goto out;
	}
	im.t0 = now_s();
	for (size_t i = 0; i < fl.n && rc == CLI_OK; i++) {
		log_debug("import: file %zu of %zu", i + 1, fl.n);
		rc = fl.f[i].ndjson ? import_ndjson(&im, &fl.f[i])
				    : import_json(&im, &fl.f[i]);
	}
	if (rc) {
		stopped(&im);
	} else {
		progress(&im, true);
		progress_end(&im);
	}
	report(&im, fl.n);
	if (rc == CLI_OK && im.batch_failed)
		rc = CLI_EDATA;
out:
	chunk_release(&im);
	if (im.api)
		api_free(im.api);
	arena_free(im.arena);
	for (size_t i = 0; i < im.nqueries; i++)
		free(im.queries[i]);
	free(im.queries);
	free(im.types);
	free(im.refs);
out_files:
	for (size_t i = 0; i < fl.n; i++)
		free(fl.f[i].path);
	free(fl.f);
	return rc;
}

/* ---- the commands -------------------------------------------------------- */

static void
import_usage(FILE *f)
{
	fprintf(f,
		"usage: careweave import [--db PATH] [--progress] [--quiet] [--kb DIR] FILE|DIR...\n\n"
		"Loads FHIR data through the API's write path (validation included):\n"
		"  .json    a Bundle (transaction or batch as is; collection or searchset\n"
		"           as a transaction of PUTs by id) or a single resource\n"
		"  .ndjson  one resource a line, committed in transactions of %d\n"
		"Folders are read for their .json and .ndjson files. Files are imported in\n"
		"dependency order (Organization, Location, Practitioner, PractitionerRole,\n"
		"Patient, RelatedPerson, Device, Medication, Encounter, then the rest).\n"
		"Conditional references that match nothing are kept as logical references\n"
		"and reported. The medication rules run on what is imported and record\n"
		"their findings (DetectedIssues); they never refuse an import.\n\n"
		"  --key-file FILE the database's key file\n"
		"                  (default $CAREWEAVE_KEY_FILE)\n"
		"  --db PATH      database file (default %s)\n"
		"  --progress     progress on stderr even when it is not a terminal\n"
		"  --quiet        no per-type counts\n"
		"  --kb DIR       the knowledge base folder (default $CAREWEAVE_KB, else\n"
		"                 ./data/kb)\n\n"
		"Exit status: 0 ok, 1 bad data (import stops; earlier transactions stay),\n"
		"2 usage, 3 I/O or database error.\n",
		CHUNK_RESOURCES, CLI_DEFAULT_DB);
}

int
cli_import(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, 'd'},
		CLI_KEY_FILE_OPTION,
		{"progress", no_argument, NULL, 'p'},
		{"quiet", no_argument, NULL, 'q'},
		{"kb", required_argument, NULL, 'B'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct cli_import_opt opt = {.progress = isatty(STDERR_FILENO)};
	const char *key_file = NULL, *db = CLI_DEFAULT_DB, *kb_path = NULL;
	struct store *s;
	struct kb *kb;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "hq", longopts, NULL)) != -1) {
		switch (c) {
		case CLI_OPT_KEY_FILE:
			key_file = optarg;
			break;
		case 'd':
			db = optarg;
			break;
		case 'p':
			opt.progress = true;
			break;
		case 'q':
			opt.quiet = true;
			break;
		case 'B':
			kb_path = optarg;
			break;
		case 'h':
			import_usage(stdout);
			return CLI_OK;
		default:
			import_usage(stderr);
			return CLI_EUSAGE;
		}
	}
	if (optind >= argc) {
		cli_err("import", "name at least one file or folder to import");
		import_usage(stderr);
		return CLI_EUSAGE;
	}
	if ((rc = cli_rules_open("import", kb_path, &kb, &opt.coord)) != CLI_OK)
		return rc;
	s = cli_open_store("import", db, false, key_file);
	if (!s) {
		cli_rules_close(kb, opt.coord);
		return CLI_EIO;
	}
	rc = cli_import_paths("import", s, argv + optind, (size_t)(argc - optind), &opt);
	store_close(s);
	cli_rules_close(kb, opt.coord);
	return rc;
}

/* data/demo relative to the working folder, else to the binary
 * (build/rel/careweave -> ../../data/demo). */
static bool
find_demo_dir(char *out, size_t n)
{
	char exe[4096];
	ssize_t k;
	struct stat st;

	if (stat("data/demo", &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(out, n, "data/demo");
		return true;
	}
	k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (k <= 0)
		return false;
	exe[k] = '\0';
	for (int up = 0; up < 3; up++) {
		char *slash = strrchr(exe, '/');

		if (!slash)
			return false;
		*slash = '\0';
		snprintf(out, n, "%s/data/demo", exe);
		if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
			return true;
	}
	return false;
}

static void
demo_usage(FILE *f)
{
	fprintf(f,
		"usage: careweave demo [--db PATH] [--dir DIR] [--kb DIR]\n\n"
		"Loads the demo Bundles (DIR/*.json in name order, DIR defaults to\n"
		"data/demo) through the import path. The Bundles PUT fixed ids, so\n"
		"running it again leaves the same data.\n\n"
		"Then adds one user per role of the demo care teams (admin, grace the\n"
		"coordinator, anita the physician, denise, priya, luis, tom, walter the\n"
		"patient and ellen his daughter) with random passwords, printed this\n"
		"once, and the admin's TOTP secret for one-time codes with them;\n"
		"users that exist are left as they are.\n\n"
		"  --key-file FILE the database's key file\n"
		"                  (default $CAREWEAVE_KEY_FILE)\n"
		"  --db PATH   database file (default %s)\n"
		"  --dir DIR   folder of demo Bundles\n"
		"  --kb DIR    the knowledge base folder (default $CAREWEAVE_KB, else\n"
		"              ./data/kb): the medication rules run on the demo data\n",
		CLI_DEFAULT_DB);
}

int
cli_demo(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"db", required_argument, NULL, 'd'},
		CLI_KEY_FILE_OPTION,
		{"dir", required_argument, NULL, 'D'},
		{"kb", required_argument, NULL, 'B'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct cli_import_opt opt = {.keep_order = true,
				     .progress = isatty(STDERR_FILENO)};
	const char *key_file = NULL, *db = CLI_DEFAULT_DB, *dir = NULL, *kb_path = NULL;
	struct kb *kb;
	char found[4200];
	char *paths[1];
	struct store *s;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case CLI_OPT_KEY_FILE:
			key_file = optarg;
			break;
		case 'd':
			db = optarg;
			break;
		case 'D':
			dir = optarg;
			break;
		case 'B':
			kb_path = optarg;
			break;
		case 'h':
			demo_usage(stdout);
			return CLI_OK;
		default:
			demo_usage(stderr);
			return CLI_EUSAGE;
		}
	}
	if (optind < argc) {
		cli_err("demo", "unexpected argument '%s'", argv[optind]);
		return CLI_EUSAGE;
	}
	if (!dir) {
		if (!find_demo_dir(found, sizeof(found))) {
			cli_err("demo", "cannot find data/demo (run from the repository, "
				"or give --dir)");
			return CLI_EIO;
		}
		dir = found;
	}
	if ((rc = cli_rules_open("demo", kb_path, &kb, &opt.coord)) != CLI_OK)
		return rc;
	s = cli_open_store("demo", db, false, key_file);
	if (!s) {
		cli_rules_close(kb, opt.coord);
		return CLI_EIO;
	}
	paths[0] = (char *)dir;
	rc = cli_import_paths("demo", s, paths, 1, &opt);
	if (rc == CLI_OK)
		rc = cli_demo_users(s);
	store_close(s);
	cli_rules_close(kb, opt.coord);
	return rc;
}
