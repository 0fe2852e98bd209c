/* kb/load.c: reading data/kb/ into the in-memory kb.
 *
 * Each file is read whole into the kb's arena and split in place: the
 * strings the kb hands out are the file's own bytes. Files are read in
 * dependency order (sources, classes, drugs, products, then the rules and
 * the labs that name them), and every row is checked as it is turned into
 * table entries; a bad row is reported as "file:line: reason" and loading
 * goes on, so one run names every problem, but any problem means no kb.
 * What lookups need at run time is precomputed here: class membership as
 * one bitset per drug (ancestors included), the interaction rules each drug
 * takes part in, panel membership as one bitset per test. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kb/kb_int.h"

#define KB_FILE_MAX (16u << 20)
#define KB_MAX_REPORTS 100
#define KB_MAX_COLS 8
#define KB_NAME_MAX 256

struct row {
	unsigned line;
	char *col[KB_MAX_COLS];
};

struct file {
	char path[512];
	struct row *row;
	size_t n;
};

struct loader {
	struct kb *kb;
	kb_report_fn *report;
	void *arg;
	const char *dir;
	size_t nbad;
	bool io;
	const char *path; /* of the row being checked */
	unsigned line;
};

static void bad(struct loader *L, const char *fmt, ...) CW_PRINTF(2, 3);

static void
bad(struct loader *L, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	if (L->line)
		n = snprintf(msg, sizeof(msg), "%s:%u: ", L->path, L->line);
	else
		n = snprintf(msg, sizeof(msg), "%s: ", L->path);
	if (n < 0 || (size_t)n >= sizeof(msg))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	L->nbad++;
	if (!L->report)
		return;
	if (L->nbad <= KB_MAX_REPORTS)
		L->report(L->arg, msg);
	else if (L->nbad == KB_MAX_REPORTS + 1)
		L->report(L->arg, "(more problems not shown)");
}

static void
at(struct loader *L, const struct file *f, const struct row *r)
{
	L->path = f->path;
	L->line = r ? r->line : 0;
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ')
		s++;
	e = s + strlen(s);
	while (e > s && e[-1] == ' ')
		*--e = '\0';
	return s;
}

/* Reads dir/name, checks its header line against cols and splits every
 * other line that is neither empty nor a '#' comment into ncols fields. */
static bool
read_tsv(struct loader *L, const char *name, const char *const *cols,
	 size_t ncols, struct file *f)
{
	struct arena *a = L->kb->a;
	struct stat st = {0};
	FILE *fp;
	char *buf, *p;
	size_t len = 0, lines = 1;
	bool header = false;
	unsigned line = 0;

	memset(f, 0, sizeof(*f));
	snprintf(f->path, sizeof(f->path), "%s/%s", L->dir, name);
	L->path = f->path;
	L->line = 0;
	fp = fopen(f->path, "rb");
	if (!fp) {
		bad(L, "cannot read: %s", strerror(errno));
		L->io = true;
		return false;
	}
	if (fstat(fileno(fp), &st) != 0 || st.st_size > KB_FILE_MAX) {
		bad(L, "%s", st.st_size > KB_FILE_MAX ? "larger than 16 MiB"
						      : strerror(errno));
		L->io = true;
		fclose(fp);
		return false;
	}
	buf = arena_alloc(a, (size_t)st.st_size + 1);
	if (buf)
		len = fread(buf, 1, (size_t)st.st_size + 1, fp);
	if (!buf || ferror(fp) || len > (size_t)st.st_size) {
		bad(L, "%s", !buf ? "out of memory" : ferror(fp) ? "read error"
								  : "changed while read");
		L->io = true;
		fclose(fp);
		return false;
	}
	fclose(fp);
	buf[len] = '\0';
	/* FNV-1a over every file, in load order: kb_fingerprint */
	for (size_t i = 0; i < len; i++)
		L->kb->digest = (L->kb->digest ^ (unsigned char)buf[i]) * 0x100000001b3ULL;
	for (size_t i = 0; i < len; i++)
		lines += buf[i] == '\n';
	f->row = arena_alloc(a, lines * sizeof(*f->row));
	if (!f->row) {
		bad(L, "out of memory");
		L->io = true;
		return false;
	}
	if (memchr(buf, '\0', len)) {
		bad(L, "a NUL byte: not a text file");
		return false;
	}
	for (p = buf; *p;) {
		char *nl = strchr(p, '\n'), *q;
		struct row r = {0};
		size_t n = 0;

		if (nl)
			*nl = '\0';
		line++;
		if (nl > p && nl[-1] == '\r')
			nl[-1] = '\0';
		else if (!nl && *p && p[strlen(p) - 1] == '\r')
			p[strlen(p) - 1] = '\0';
		q = p;
		p = nl ? nl + 1 : p + strlen(p);
		if (*q == '#' || q[strspn(q, " \t")] == '\0')
			continue;
		L->line = r.line = line;
		for (;;) {
			char *tab = strchr(q, '\t');

			if (tab)
				*tab = '\0';
			if (n < KB_MAX_COLS)
				r.col[n] = trim(q);
			n++;
			if (!tab)
				break;
			q = tab + 1;
		}
		if (!header) {
			bool ok = n == ncols;

			for (size_t i = 0; ok && i < ncols; i++)
				ok = strcmp(r.col[i], cols[i]) == 0;
			if (!ok) {
				char want[256] = "";
				size_t w = 0;

				for (size_t i = 0; i < ncols && w < sizeof(want); i++)
					w += (size_t)snprintf(want + w, sizeof(want) - w,
							      "%s%s", i ? ", " : "", cols[i]);
				bad(L, "the header line must name the columns %s "
				       "(tab-separated)", want);
				return false;
			}
			header = true;
			continue;
		}
		if (n != ncols) {
			bad(L, "%zu columns, expected %zu (tab-separated)", n, ncols);
			continue;
		}
		f->row[f->n++] = r;
	}
	if (!header) {
		L->line = 0;
		bad(L, "no header line");
		return false;
	}
	return true;
}

/* ---- lists and names --------------------------------------------------- */

/* Calls fn on each element of a sep-separated list (spaces trimmed; empty
 * elements reported). */
struct elem {
	const char *p;
	size_t n;
};

static size_t
split(struct loader *L, const char *s, char sep, struct elem *out, size_t max,
      const char *what)
{
	size_t n = 0;

	if (!*s)
		return 0;
	for (;;) {
		const char *e = strchr(s, sep), *end = e ? e : s + strlen(s);
		const char *b = s;

		while (b < end && *b == ' ')
			b++;
		while (end > b && end[-1] == ' ')
			end--;
		if (b == end)
			bad(L, "an empty element in the %s list", what);
		else if (n < max)
			out[n++] = (struct elem){b, (size_t)(end - b)};
		else {
			bad(L, "more than %zu elements in the %s list", max, what);
			break;
		}
		if (!e)
			break;
		s = e + 1;
	}
	return n;
}

static const char *
describe(const struct kb *kb, uint32_t v, char *buf, size_t cap)
{
	unsigned id = KB_ID(v);

	switch (KB_KIND(v)) {
	case KB_N_DRUG:
		snprintf(buf, cap, "the drug '%s'", kb->drug[id].name);
		break;
	case KB_N_PRODUCT:
		snprintf(buf, cap, "the product '%s'", kb->prod[id].name);
		break;
	case KB_N_CLASS:
		snprintf(buf, cap, "the class '%s'", kb->cls[id].name);
		break;
	default:
		snprintf(buf, cap, "the test '%s'", kb->lab[id].name);
		break;
	}
	return buf;
}

static void
add_name(struct loader *L, struct kb_tab *t, const char *s, size_t n,
	 uint32_t val)
{
	struct kb *kb = L->kb;
	char buf[KB_NAME_MAX], tmp[KB_NAME_MAX], what[320];
	size_t len, words = 1;
	uint32_t old;
	char *key;
	int r;

	if (n >= sizeof(tmp)) {
		bad(L, "the name '%.40s...' is longer than %d bytes", s, KB_NAME_MAX - 1);
		return;
	}
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	len = kb_normalize(tmp, buf, sizeof(buf));
	if (len == 0) {
		bad(L, "the name '%s' has no letters or digits", tmp);
		return;
	}
	if (len >= sizeof(buf)) {
		bad(L, "the name '%s' is too long", tmp);
		return;
	}
	for (size_t i = 0; i < len; i++)
		words += buf[i] == ' ';
	if (t == &kb->names && words > KB_MAX_NGRAM) {
		bad(L, "the name '%s' has more than %d words", tmp, KB_MAX_NGRAM);
		return;
	}
	if (!(key = arena_strndup(kb->a, buf, len))) {
		bad(L, "out of memory");
		return;
	}
	r = kb_tab_put(t, key, len, val, &old);
	if (r < 0)
		bad(L, "out of memory");
	else if (r == 0 && old != val)
		bad(L, "the name '%s' already names %s", tmp,
		    describe(kb, old, what, sizeof(what)));
	if (t == &kb->names && r > 0) {
		size_t fl = strcspn(key, " ");
		struct kb_slot *sl;

		if (words > kb->max_ngram)
			kb->max_ngram = (unsigned)words;
		int fr = kb_tab_put(&kb->first, key, fl, (uint32_t)words, &old);

		if (fr < 0)
			bad(L, "out of memory");
		else if (fr == 0 && old < words && (sl = kb_tab_slot(&kb->first, key, fl)))
			sl->val = (uint32_t)words;
	}
	kb->nnames += r > 0;
}

static void
add_names(struct loader *L, struct kb_tab *t, const char *list, uint32_t val)
{
	struct elem e[64];
	size_t n = split(L, list, '|', e, 64, "names");

	for (size_t i = 0; i < n; i++)
		add_name(L, t, e[i].p, e[i].n, val);
}

/* What a name in a rule or list stands for: the value, or 0. */
static uint32_t
lookup(const struct kb *kb, const struct kb_tab *t, const char *s, size_t n)
{
	char buf[KB_NAME_MAX], tmp[KB_NAME_MAX];
	size_t len;
	uint32_t v;

	if (n >= sizeof(tmp))
		return 0;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	len = kb_normalize(tmp, buf, sizeof(buf));
	if (len == 0 || len >= sizeof(buf) || !kb_tab_get(t, buf, len, &v))
		return 0;
	return v;
}

static bool
check_source(struct loader *L, const char *s)
{
	struct elem e[16];
	size_t n = split(L, s, ',', e, 16, "source");
	uint32_t v;
	bool ok = n > 0;

	if (!n)
		bad(L, "no source: every row names the reference it came from");
	for (size_t i = 0; i < n; i++) {
		if (!kb_tab_get(&L->kb->src, e[i].p, e[i].n, &v)) {
			bad(L, "the source '%.*s' is not in sources.tsv", (int)e[i].n,
			    e[i].p);
			ok = false;
		}
	}
	return ok;
}

static bool
parse_severity(struct loader *L, const char *s, enum kb_severity *out)
{
	if (strcmp(s, "high") == 0)
		*out = KB_SEV_HIGH;
	else if (strcmp(s, "moderate") == 0)
		*out = KB_SEV_MODERATE;
	else if (strcmp(s, "low") == 0)
		*out = KB_SEV_LOW;
	else {
		bad(L, "the severity '%s' is not high, moderate or low", s);
		return false;
	}
	return true;
}

static bool
need(struct loader *L, const char *v, const char *col)
{
	if (*v)
		return true;
	bad(L, "the %s column is empty", col);
	return false;
}

/* An RxCUI: 1 to 10 digits. Its status must agree with it. */
static void
check_code(struct loader *L, const char *code, const char *status, uint32_t val)
{
	size_t n = strlen(code);
	uint32_t old;
	char what[320];
	int r;

	if (strcmp(status, "verified") && strcmp(status, "unverified") &&
	    strcmp(status, "unknown")) {
		bad(L, "the code_status '%s' is not verified, unverified or unknown",
		    status);
		return;
	}
	if (!n) {
		if (strcmp(status, "unknown") != 0)
			bad(L, "code_status %s without a code", status);
		return;
	}
	if (strcmp(status, "unknown") == 0) {
		bad(L, "code_status unknown with a code: say verified or unverified");
		return;
	}
	if (n > 10 || strspn(code, "0123456789") != n) {
		bad(L, "the RxCUI '%s' is not 1 to 10 digits", code);
		return;
	}
	r = kb_tab_put(&L->kb->rxcui, code, n, val, &old);
	if (r < 0)
		bad(L, "out of memory");
	else if (r == 0)
		bad(L, "the RxCUI %s already belongs to %s", code,
		    describe(L->kb, old, what, sizeof(what)));
}

bool
kb_loinc_valid(const char *s, size_t n)
{
	unsigned sum = 0, k = 0;
	size_t dash;

	if (n < 3 || n > 9 || s[n - 2] != '-')
		return false;
	dash = n - 2;
	if (s[n - 1] < '0' || s[n - 1] > '9')
		return false;
	for (size_t i = dash; i-- > 0; k++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return false;
		d = (unsigned)(s[i] - '0');
		if (k % 2 == 0) {
			d *= 2;
			d = d / 10 + d % 10;
		}
		sum += d;
	}
	return (10 - sum % 10) % 10 == (unsigned)(s[n - 1] - '0');
}

/* ---- the files --------------------------------------------------------- */

static const char *const SRC_COLS[] = {"key", "reference"};
static const char *const CLS_COLS[] = {"class", "parent", "names", "therapy", "source"};
static const char *const DRUG_COLS[] = {"ingredient", "rxcui", "code_status",
					"names", "classes", "source"};
static const char *const PROD_COLS[] = {"product", "rxcui", "code_status",
					"names", "ingredients", "source"};
static const char *const DDI_COLS[] = {"id", "a", "b", "severity",
				       "interruptive", "effect", "advice", "source"};
static const char *const ALR_COLS[] = {"allergen", "reacts", "severity", "note",
				       "source"};
static const char *const LAB_COLS[] = {"test", "loinc", "loinc_status", "panels",
				       "intervals_as", "names", "source"};
static const char *const RT_COLS[] = {"test", "situation", "min_days", "note",
				      "source"};
static const char *const CG_COLS[] = {"group", "name", "lace", "lace_item",
				      "charlson", "supersedes", "source"};
static const char *const CM_COLS[] = {"system", "code", "group", "display", "source"};
#define NCOLS(c) (sizeof(c) / sizeof((c)[0]))

static void
load_sources(struct loader *L, struct file *f)
{
	struct kb *kb = L->kb;

	kb->srctext = arena_zalloc(kb->a, (f->n + 1) * sizeof(*kb->srctext));
	if (!kb->srctext || !kb_tab_init(&kb->src, kb->a, f->n)) {
		bad(L, "out of memory");
		return;
	}
	for (size_t i = 0; i < f->n; i++) {
		struct row *r = &f->row[i];
		const char *k = r->col[0];
		uint32_t old;

		at(L, f, r);
		if (!need(L, k, "key") || !need(L, r->col[1], "reference"))
			continue;
		if (strcspn(k, " ,|") != strlen(k)) {
			bad(L, "the source key '%s' has a space, ',' or '|'", k);
			continue;
		}
		if (kb_tab_put(&kb->src, k, strlen(k), (uint32_t)kb->nsrc, &old) <= 0) {
			bad(L, "the source key '%s' is there twice", k);
			continue;
		}
		kb->srctext[kb->nsrc++] = r->col[1];
	}
}

static void
load_classes(struct loader *L, struct file *f)
{
	struct kb *kb = L->kb;

	if (f->n > KB_MAX_ITEMS) {
		bad(L, "more than %d classes", KB_MAX_ITEMS);
		return;
	}
	kb->cls = arena_zalloc(kb->a, (f->n + 1) * sizeof(*kb->cls));
	kb->cls_parent = arena_zalloc(kb->a, (f->n + 1) * sizeof(int));
	if (!kb->cls || !kb->cls_parent) {
		bad(L, "out of memory");
		return;
	}
	for (size_t i = 0; i < f->n; i++) {
		struct row *r = &f->row[i];
		unsigned id = (unsigned)kb->ncls;

		at(L, f, r);
		if (!need(L, r->col[0], "class"))
			continue;
		check_source(L, r->col[4]);
		kb->cls[id] = (struct kb_class){r->col[0], r->col[1], r->col[2], r->col[4], false};
		if (strcmp(r->col[3], "yes") == 0)
			kb->cls[id].therapy = true;
		else if (strcmp(r->col[3], "no") != 0)
			bad(L, "therapy is '%s', not yes or no", r->col[3]);
		kb->ncls++;
		add_name(L, &kb->names, r->col[0], strlen(r->col[0]), KB_VAL(KB_N_CLASS, id));
		add_names(L, &kb->names, r->col[2], KB_VAL(KB_N_CLASS, id));
	}
	/* parents, once every class is known: any order in the file */
	for (size_t i = 0, id = 0; i < f->n; i++) {
		struct row *r = &f->row[i];
		const char *p;
		uint32_t v;

		if (!*r->col[0])
			continue;
		at(L, f, r);
		p = kb->cls[id].parent;
		kb->cls_parent[id] = -1;
		if (*p) {
			v = lookup(kb, &kb->names, p, strlen(p));
			if (KB_KIND(v) != KB_N_CLASS)
				bad(L, "the parent '%s' is not a class of classes.tsv", p);
			else if (KB_ID(v) == id)
				bad(L, "the class '%s' is its own parent", p);
			else
				kb->cls_parent[id] = (int)KB_ID(v);
		}
		id++;
	}
	for (size_t c = 0; c < kb->ncls; c++) {
		int p = kb->cls_parent[c];

		for (size_t steps = 0; p >= 0; steps++) {
			if (steps > kb->ncls) {
				L->path = f->path;
				L->line = 0;
				bad(L, "the parents of '%s' go round in a circle", kb->cls[c].name);
				kb->cls_parent[c] = -1;
				break;
			}
			p = kb->cls_parent[p];
		}
	}
	kb->words = (kb->ncls + 63) / 64;
	if (!kb->words)
		kb->words = 1;
	kb->cls_bits = arena_zalloc(kb->a, (kb->ncls + 1) * kb->words * sizeof(uint64_t));
	if (!kb->cls_bits) {
		bad(L, "out of memory");
		return;
	}
	for (size_t c = 0; c < kb->ncls; c++) {
		uint64_t *b = kb->cls_bits + c * kb->words;
		int p = (int)c;

		for (size_t steps = 0; p >= 0 && steps <= kb->ncls; steps++) {
			kb_set_bit(b, (size_t)p);
			p = kb->cls_parent[p];
		}
	}
}

static void
load_drugs(struct loader *L, struct file *f)
{
	struct kb *kb = L->kb;

	if (f->n > KB_MAX_ITEMS) {
		bad(L, "more than %d drugs", KB_MAX_ITEMS);
		return;
	}
	kb->drug = arena_zalloc(kb->a, (f->n + 1) * sizeof(*kb->drug));
	kb->drug_bits = arena_zalloc(kb->a, (f->n + 1) * kb->words * sizeof(uint64_t));
	if (!kb->drug || !kb->drug_bits) {
		bad(L, "out of memory");
		return;
	}
	for (size_t i = 0; i < f->n; i++) {
		struct row *r = &f->row[i];
		unsigned id = (unsigned)kb->ndrug;
		uint64_t *bits = kb->drug_bits + id * kb->words;
		struct elem e[64];
		size_t n;

		at(L, f, r);
		if (!need(L, r->col[0], "ingredient"))
			continue;
		kb->drug[id] = (struct kb_drug){r->col[0], r->col[1], r->col[2],
						r->col[3], r->col[4], r->col[5]};
		kb->ndrug++;
		add_name(L, &kb->names, r->col[0], strlen(r->col[0]), KB_VAL(KB_N_DRUG, id));
		check_code(L, r->col[1], r->col[2], KB_VAL(KB_N_DRUG, id));
		add_names(L, &kb->names, r->col[3], KB_VAL(KB_N_DRUG, id));
		n = split(L, r->col[4], '|', e, 64, "classes");
		for (size_t k = 0; k < n; k++) {
			uint32_t v = lookup(kb, &kb->names, e[k].p, e[k].n);

			if (KB_KIND(v) != KB_N_CLASS) {
				bad(L, "the class '%.*s' is not in classes.tsv", (int)e[k].n,
				    e[k].p);
				continue;
			}
			for (size_t w = 0; w < kb->words; w++)
				bits[w] |= kb->cls_bits[KB_ID(v) * kb->words + w];
		}
		check_source(L, r->col[5]);
	}
}

static void
load_products(struct loader *L, struct file *f)
{
	struct kb *kb = L->kb;
	size_t ning = 0;

	if (f->n > KB_MAX_ITEMS) {
		bad(L, "more than %d products", KB_MAX_ITEMS);
		return;
	}
	for (size_t i = 0; i < f->n; i++)
		ning += 1 + strlen(f->row[i].col[4]) / 2;
	kb->prod = arena_zalloc(kb->a, (f->n + 1) * sizeof(*kb->prod));
	kb->prod_off = arena_zalloc(kb->a, (f->n + 1) * sizeof(uint32_t));
	kb->prod_ing = arena_zalloc(kb->a, (ning + 1) * sizeof(uint16_t));
	if (!kb->prod || !kb->prod_off || !kb->prod_ing) {
		bad(L, "out of memory");
		return;
	}
	for (size_t i = 0; i < f->n; i++) {
		struct row *r = &f->row[i];
		unsigned id = (unsigned)kb->nprod;
		uint32_t off = kb->prod_off[id];
		struct elem e[KB_MAP_MAX];
		size_t n;

		at(L, f, r);
		if (!need(L, r->col[0], "product"))
			continue;
		kb->prod[id] = (struct kb_product){r->col[0], r->col[1], r->col[2],
						   r->col[3], r->col[4], r->col[5]};
		check_code(L, r->col[1], r->col[2], KB_VAL(KB_N_PRODUCT, id));
		add_names(L, &kb->names, r->col[3], KB_VAL(KB_N_PRODUCT, id));
		n = split(L, r->col[4], '|', e, KB_MAP_MAX, "ingredients");
		if (!n)
			bad(L, "a product names its ingredients");
		for (size_t k = 0; k < n; k++) {
			uint32_t v = lookup(kb, &kb->names, e[k].p, e[k].n);

			if (KB_KIND(v) != KB_N_DRUG) {
				bad(L, "the ingredient '%.*s' is not a drug of drugs.tsv",
				    (int)e[k].n, e[k].p);
				continue;
			}
			kb->prod_ing[off++] = (uint16_t)KB_ID(v);
		}
		check_source(L, r->col[5]);
		kb->nprod++;
		kb->prod_off[kb->nprod] = off;
	}
}

/* A rule's side: a drug or class name. */
static bool
side(struct loader *L, const char *name, const char *col, struct kb_side *s)
{
	uint32_t v = lookup(L->kb, &L->kb->names, name, strlen(name));

	if (!need(L, name, col))
		return false;
	if (KB_KIND(v) != KB_N_DRUG && KB_KIND(v) != KB_N_CLASS) {
		bad(L, "'%s' (%s) is neither a drug of drugs.tsv nor a class of "
		       "classes.tsv", name, col);
		return false;
	}
	s->kind = (uint8_t)KB_KIND(v);
	s->id = (uint16_t)KB_ID(v);
	return true;
}

static bool
side_matches(const struct kb *kb, const struct kb_side *s, unsigned drug)
{
	if (s->kind == KB_N_DRUG)
		return s->id == drug;
	return kb_bit(kb->drug_bits + drug * kb->words, s->id);
}

static bool
same_side(const struct kb_side *a, const struct kb_side *b)
{
	return a->kind == b->kind && a->id == b->id;
}

static void
load_interactions(struct loader *L, struct file *f)
{
	struct kb *kb = L->kb;
	struct kb_tab ids;
	size_t total = 0;

	kb->ddi = arena_zalloc(kb->a, (f->n + 1) * sizeof(*kb->ddi));
	kb->ddi_side = arena_zalloc(kb->a, (f->n + 1) * 2 * sizeof(*kb->ddi_side));
	kb->drug_ddi_off = arena_zalloc(kb->a, (kb->ndrug + 1) * sizeof(uint32_t));
	if (!kb->ddi || !kb->ddi_side || !kb->drug_ddi_off ||
	    !kb_tab_init(&ids, kb->a, f->n)) {
		bad(L, "out of memory");
		return;
	}
	if (f->n > KB_MAX_ITEMS) {
		bad(L, "more than %d interactions", KB_MAX_ITEMS);
		return;
	}
	for (size_t i = 0; i < f->n; i++) {
		struct row *r = &f->row[i];
		struct kb_interaction *x = &kb->ddi[kb->nddi];
		struct kb_side *s = &kb->ddi_side[2 * kb->nddi];
		bool ok = true;
		uint32_t old;

		at(L, f, r);
		x->id = r->col[0];
		x->a = r->col[1];
		x->b = r->col[2];
		x->effect = r->col[5];
		x->advice = r->col[6];
		x->source = r->col[7];
		ok &= need(L, x->id, "id");
		if (*x->id && kb_tab_put(&ids, x->id, strlen(x->id), 0, &old) <= 0) {
			bad(L, "the id '%s' is there twice", x->id);
			ok = false;
		}
		ok &= side(L, x->a, "a", &s[0]);
		ok &= side(L, x->b, "b", &s[1]);
		ok &= parse_severity(L, r->col[3], &x->severity);
		if (strcmp(r->col[4], "yes") == 0)
			x->interruptive = true;
		else if (strcmp(r->col[4], "no") != 0) {
			bad(L, "interruptive is '%s', not yes or no", r->col[4]);
			ok = false;
		}
		ok &= need(L, x->effect, "effect");
		ok &= need(L, x->advice, "advice");
		ok &= check_source(L, x->source);
		for (size_t j = 0; ok && j < kb->nddi; j++) {
			struct kb_side *o = &kb->ddi_side[2 * j];

			if ((same_side(&o[0], &s[0]) && same_side(&o[1], &s[1])) ||
			    (same_side(&o[0], &s[1]) && same_side(&o[1], &s[0]))) {
				bad(L, "the pair %s / %s is there already (%s)", x->a, x->b,
				    kb->ddi[j].id);
				ok = false;
			}
		}
		if (ok)
			kb->nddi++;
	}
	/* each drug's rules, each once */
	for (int pass = 0; pass < 2; pass++) {
		total = 0;
		for (size_t d = 0; d < kb->ndrug; d++) {
			kb->drug_ddi_off[d] = (uint32_t)total;
			for (size_t j = 0; j < kb->nddi; j++) {
				struct kb_side *s = &kb->ddi_side[2 * j];

				if (!side_matches(kb, &s[0], (unsigned)d) &&
				    !side_matches(kb, &s[1], (unsigned)d))
					continue;
				if (pass)
					kb->drug_ddi[total] = (uint16_t)j;
				total++;
			}
		}
		kb->drug_ddi_off[kb->ndrug] = (uint32_t)total;
		if (!pass && !(kb->drug_ddi = arena_zalloc(kb->a, (total + 1) * sizeof(uint16_t)))) {
			bad(L, "out of memory");
			return;
		}
	}
}

static void
load_allergy(struct loader *L, struct file *f)
{
	struct kb *kb = L->kb;

	kb->alr = arena_zalloc(kb->a, (f->n + 1) * sizeof(*kb->alr));
	kb->alr_side = arena_zalloc(kb->a, (f->n + 1) * 2 * sizeof(*kb->alr_side));
	if (!kb->alr || !kb->alr_side) {
		bad(L, "out of memory");
		return;
	}
	for (size_t i = 0; i < f->n; i++) {
		struct row *r = &f->row[i];
		struct kb_allergy_rule *x = &kb->alr[kb->nalr];
		struct kb_side *s = &kb->alr_side[2 * kb->nalr];
		bool ok = true;

		at(L, f, r);
		x->allergen = r->col[0];
		x->reacts = r->col[1];
		x->note = r->col[3];
		x->source = r->col[4];
		ok &= side(L, x->allergen, "allergen", &s[0]);
		ok &= side(L, x->reacts, "reacts", &s[1]);
		ok &= parse_severity(L, r->col[2], &x->severity);
		ok &= need(L, x->note, "note");
		ok &= check_source(L, x->source);
		for (size_t j = 0; ok && j < kb->nalr; j++) {
			struct kb_side *o = &kb->alr_side[2 * j];

			if (same_side(&o[0], &s[0]) && same_side(&o[1], &s[1])) {
				bad(L, "the rule %s -> %s is there already", x->allergen,
				    x->reacts);
				ok = false;
			}
		}
		if (ok)
			kb->nalr++;
	}
}

static void
load_labs(struct loader *L, struct file *f)
{
	struct kb *kb = L->kb;
	int *panel_first;

	if (f->n > KB_MAX_ITEMS) {
		bad(L, "more than %d tests", KB_MAX_ITEMS);
		return;
	}
	kb->lab = arena_zalloc(kb->a, (f->n + 1) * sizeof(*kb->lab));
	kb->lab_as = arena_zalloc(kb->a, (f->n + 1) * sizeof(int));
	kb->lwords = (f->n + 63) / 64 + 1;
	kb->lab_bits = arena_zalloc(kb->a, (f->n + 1) * kb->lwords * sizeof(uint64_t));
	panel_first = arena_zalloc(kb->a, (f->n + 1) * sizeof(int));
	if (!kb->lab || !kb->lab_as || !kb->lab_bits || !panel_first ||
	    !kb_tab_init(&kb->labname, kb->a, 4 * f->n)) {
		bad(L, "out of memory");
		return;
	}
	for (size_t i = 0; i < f->n; i++) {
		struct row *r = &f->row[i];
		unsigned id = (unsigned)kb->nlab;
		const char *st = r->col[2];
		struct elem e[16];
		size_t n;

		at(L, f, r);
		if (!need(L, r->col[0], "test"))
			continue;
		kb->lab[id] = (struct kb_lab){r->col[0], r->col[1], r->col[2], r->col[3],
					      r->col[4], r->col[5], r->col[6]};
		kb->nlab++;
		add_name(L, &kb->labname, r->col[0], strlen(r->col[0]), KB_VAL(KB_N_LAB, id));
		add_names(L, &kb->labname, r->col[5], KB_VAL(KB_N_LAB, id));
		n = split(L, r->col[1], '|', e, 16, "loinc");
		if (strcmp(st, "verified") && strcmp(st, "unverified") && strcmp(st, "unknown"))
			bad(L, "the loinc_status '%s' is not verified, unverified or unknown", st);
		else if (!n != !strcmp(st, "unknown"))
			bad(L, "loinc_status %s %s", st, n ? "with a code: say verified or unverified"
							   : "without a code");
		for (size_t k = 0; k < n; k++) {
			uint32_t old;
			char what[320];
			int rr;

			if (!kb_loinc_valid(e[k].p, e[k].n)) {
				bad(L, "'%.*s' is not a LOINC code (digits, '-', a Mod 10 "
				       "check digit)", (int)e[k].n, e[k].p);
				continue;
			}
			rr = kb_tab_put(&kb->labname, e[k].p, e[k].n, KB_VAL(KB_N_LAB, id), &old);
			if (rr == 0)
				bad(L, "the LOINC code %.*s already belongs to %s", (int)e[k].n,
				    e[k].p, describe(kb, old, what, sizeof(what)));
		}
		check_source(L, r->col[6]);
	}
	/* panels and intervals_as, once every test is known */
	for (size_t i = 0, id = 0; i < f->n; i++) {
		struct row *r = &f->row[i];
		struct elem e[16];
		size_t n;
		const char *as;

		if (!*r->col[0])
			continue;
		at(L, f, r);
		kb->lab_as[id] = -1;
		as = kb->lab[id].intervals_as;
		if (*as) {
			uint32_t v = lookup(kb, &kb->labname, as, strlen(as));

			if (!v || KB_ID(v) == id)
				bad(L, "intervals_as '%s' is not another test of labs.tsv", as);
			else
				kb->lab_as[id] = (int)KB_ID(v);
		}
		n = split(L, kb->lab[id].panels, '|', e, 16, "panels");
		for (size_t k = 0; k < n; k++) {
			uint32_t v = lookup(kb, &kb->labname, e[k].p, e[k].n);

			if (!v || KB_ID(v) == id)
				bad(L, "the panel '%.*s' is not another test of labs.tsv",
				    (int)e[k].n, e[k].p);
			else
				kb_set_bit(kb->lab_bits + id * kb->lwords, KB_ID(v));
		}
		id++;
	}
	/* close the panel relation: a member of a member is a member */
	for (bool changed = true; changed;) {
		changed = false;
		for (size_t t = 0; t < kb->nlab; t++) {
			uint64_t *b = kb->lab_bits + t * kb->lwords;

			for (size_t p = 0; p < kb->nlab; p++) {
				const uint64_t *pb = kb->lab_bits + p * kb->lwords;

				if (!kb_bit(b, p))
					continue;
				for (size_t w = 0; w < kb->lwords; w++) {
					if ((b[w] | pb[w]) != b[w]) {
						b[w] |= pb[w];
						changed = true;
					}
				}
			}
		}
	}
	for (size_t t = 0; t < kb->nlab; t++) {
		if (kb_bit(kb->lab_bits + t * kb->lwords, t)) {
			L->path = f->path;
			L->line = 0;
			bad(L, "the panels of '%s' go round in a circle", kb->lab[t].name);
		}
	}
	for (size_t t = 0; t < kb->nlab; t++) {
		int p = kb->lab_as[t];

		for (size_t steps = 0; p >= 0; steps++) {
			if (steps > kb->nlab) {
				L->path = f->path;
				L->line = 0;
				bad(L, "intervals_as of '%s' goes round in a circle",
				    kb->lab[t].name);
				kb->lab_as[t] = -1;
				break;
			}
			p = kb->lab_as[p];
		}
	}
}

static void
load_retest(struct loader *L, struct file *f)
{
	struct kb *kb = L->kb;
	size_t *cnt;
	int *of;

	kb->rt = arena_zalloc(kb->a, (f->n + 1) * sizeof(*kb->rt));
	kb->rt_by_lab = arena_zalloc(kb->a, (f->n + 1) * sizeof(*kb->rt_by_lab));
	kb->lab_rt_off = arena_zalloc(kb->a, (kb->nlab + 2) * sizeof(uint32_t));
	cnt = arena_zalloc(kb->a, (kb->nlab + 1) * sizeof(size_t));
	of = arena_zalloc(kb->a, (f->n + 1) * sizeof(int));
	if (!kb->rt || !kb->rt_by_lab || !kb->lab_rt_off || !cnt || !of) {
		bad(L, "out of memory");
		return;
	}
	for (size_t i = 0; i < f->n; i++) {
		struct row *r = &f->row[i];
		struct kb_retest *x = &kb->rt[kb->nrt];
		uint32_t v = 0;
		bool ok = true;
		char *end;
		unsigned long days;

		at(L, f, r);
		x->test = r->col[0];
		x->situation = r->col[1];
		x->note = r->col[3];
		x->source = r->col[4];
		if (need(L, x->test, "test") &&
		    !(v = lookup(kb, &kb->labname, x->test, strlen(x->test)))) {
			bad(L, "the test '%s' is not in labs.tsv", x->test);
			ok = false;
		}
		ok &= need(L, x->situation, "situation");
		errno = 0;
		days = strtoul(r->col[2], &end, 10);
		if (!*r->col[2] || *end || errno || days > 36500 || r->col[2][0] == '-') {
			bad(L, "min_days '%s' is not a whole number of days (0 to 36500)",
			    r->col[2]);
			ok = false;
		}
		x->min_days = (unsigned)days;
		ok &= check_source(L, x->source);
		for (size_t j = 0; ok && j < kb->nrt; j++) {
			if (of[j] == (int)KB_ID(v) &&
			    strcmp(kb->rt[j].situation, x->situation) == 0) {
				bad(L, "the test '%s' has the situation '%s' already", x->test,
				    x->situation);
				ok = false;
			}
		}
		if (ok) {
			of[kb->nrt++] = (int)KB_ID(v);
			cnt[KB_ID(v)]++;
		}
	}
	for (size_t t = 0; t < kb->nlab; t++)
		kb->lab_rt_off[t + 1] = kb->lab_rt_off[t] + (uint32_t)cnt[t];
	memset(cnt, 0, kb->nlab * sizeof(size_t));
	for (size_t j = 0; j < kb->nrt; j++) {
		size_t t = (size_t)of[j];

		kb->rt_by_lab[kb->lab_rt_off[t] + cnt[t]++] = &kb->rt[j];
	}
}

/* A weight: a whole number from 0 to 20. */
static bool
weight(struct loader *L, const char *s, const char *col, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v > 20 || *s == '-' || *s == '+') {
		bad(L, "%s '%s' is not a whole number from 0 to 20", col, s);
		return false;
	}
	*out = (unsigned)v;
	return true;
}

#define KB_MAX_CGROUPS 64

static void
load_cgroups(struct loader *L, struct file *f)
{
	struct kb *kb = L->kb;

	if (f->n > KB_MAX_CGROUPS) {
		bad(L, "more than %d comorbidity groups", KB_MAX_CGROUPS);
		return;
	}
	kb->cg = arena_zalloc(kb->a, (f->n + 1) * sizeof(*kb->cg));
	if (!kb->cg || !kb_tab_init(&kb->cgname, kb->a, f->n + 1)) {
		bad(L, "out of memory");
		return;
	}
	for (size_t i = 0; i < f->n; i++) {
		struct row *r = &f->row[i];
		struct kb_cgroup *g = &kb->cg[kb->ncg];
		bool ok = true;
		uint32_t old;

		at(L, f, r);
		*g = (struct kb_cgroup){r->col[0], r->col[1], 0, r->col[3], 0, -1, r->col[6]};
		ok &= need(L, g->group, "group");
		ok &= need(L, g->name, "name");
		ok &= need(L, g->lace_item, "lace_item");
		ok &= weight(L, r->col[2], "lace", &g->lace);
		ok &= weight(L, r->col[4], "charlson", &g->charlson);
		ok &= check_source(L, g->source);
		if (ok && kb_tab_put(&kb->cgname, g->group, strlen(g->group),
				     (uint32_t)kb->ncg, &old) <= 0) {
			bad(L, "the group '%s' is there twice", g->group);
			ok = false;
		}
		if (ok)
			kb->ncg++;
	}
	/* supersedes, once every group is known; one step only (checked
	 * below), so there are no circles and a scorer needs no closure */
	for (size_t i = 0, id = 0; i < f->n && id < kb->ncg; i++) {
		struct row *r = &f->row[i];
		const char *sup = r->col[5];
		uint32_t v;

		if (strcmp(r->col[0], kb->cg[id].group))
			continue; /* a row refused above */
		at(L, f, r);
		if (*sup) {
			if (!kb_tab_get(&kb->cgname, sup, strlen(sup), &v) || v == id)
				bad(L, "supersedes '%s' is not another group of this file", sup);
			else
				kb->cg[id].supersedes = (int)v;
		}
		id++;
	}
	for (size_t id = 0; id < kb->ncg; id++) {
		int s = kb->cg[id].supersedes;

		if (s >= 0 && kb->cg[s].supersedes >= 0) {
			L->path = f->path;
			L->line = 0;
			bad(L, "'%s' supersedes '%s', which supersedes another: one step only",
			    kb->cg[id].group, kb->cg[s].group);
		}
	}
}

static void
load_comorbidity(struct loader *L, struct file *f)
{
	struct kb *kb = L->kb;

	if (f->n > KB_MAX_ITEMS) {
		bad(L, "more than %d comorbidity codes", KB_MAX_ITEMS);
		return;
	}
	kb->cm = arena_zalloc(kb->a, (f->n + 1) * sizeof(*kb->cm));
	if (!kb->cm || !kb_tab_init(&kb->cmcode, kb->a, f->n + 1)) {
		bad(L, "out of memory");
		return;
	}
	for (size_t i = 0; i < f->n; i++) {
		struct row *r = &f->row[i];
		struct kb_comorbid *c = &kb->cm[kb->ncm];
		char key[2 + KB_CODE_MAX + 1], *k;
		size_t n = 0;
		bool ok = true, icd = false;
		uint32_t v, old;

		at(L, f, r);
		*c = (struct kb_comorbid){r->col[0], r->col[1], 0, r->col[3], r->col[4]};
		if (!strcmp(c->system, "icd-10"))
			icd = true;
		else if (strcmp(c->system, "snomed")) {
			bad(L, "the system '%s' is not icd-10 or snomed", c->system);
			ok = false;
		}
		if (ok && need(L, c->code, "code")) {
			n = kb_code_key(icd, c->code, key, sizeof(key));
			/* an ICD-10 category at the least: a letter and two digits */
			if (!n || (icd && (n < 5 || key[2] < 'A' || key[2] > 'Z' ||
					   key[3] < '0' || key[3] > '9' || key[4] < '0' ||
					   key[4] > '9')) ||
			    (!icd && (n < 2 + 6 || key[2] == '0'))) {
				bad(L, "'%s' is not %s", c->code, icd ?
				    "an ICD-10 code (a letter, two digits, more letters or digits)" :
				    "a SNOMED CT identifier (6 to 18 digits)");
				ok = false;
			}
		} else {
			ok = false;
		}
		if (need(L, r->col[2], "group")) {
			if (!kb_tab_get(&kb->cgname, r->col[2], strlen(r->col[2]), &v)) {
				bad(L, "the group '%s' is not in comorbidity-groups.tsv", r->col[2]);
				ok = false;
			}
			c->group = v;
		} else {
			ok = false;
		}
		ok &= check_source(L, c->source);
		if (!ok)
			continue;
		if (!(k = arena_strndup(kb->a, key, n))) {
			bad(L, "out of memory");
			continue;
		}
		if (kb_tab_put(&kb->cmcode, k, n, (uint32_t)kb->ncm, &old) <= 0) {
			bad(L, "the code %s %s is there already (group %s)", c->system, c->code,
			    kb->cg[kb->cm[old].group].group);
			continue;
		}
		kb->ncm++;
	}
}

struct kb *
kb_load(const char *dir, kb_report_fn *report, void *arg, enum cw_err *err)
{
	struct loader L = {.report = report, .arg = arg, .dir = dir};
	struct arena *a = arena_new(0);
	struct file f;
	struct kb *kb;

	if (err)
		*err = CW_ENOMEM;
	if (!a)
		return NULL;
	if (!(kb = arena_zalloc(a, sizeof(*kb)))) {
		arena_free(a);
		return NULL;
	}
	kb->a = a;
	kb->digest = 0xcbf29ce484222325ULL ^ KB_MAP_REVISION;
	L.kb = kb;
	if (!kb_tab_init(&kb->names, a, 1024) || !kb_tab_init(&kb->first, a, 1024) ||
	    !kb_tab_init(&kb->rxcui, a, 256)) {
		arena_free(a);
		return NULL;
	}
	/* each needs the ones before it; a file that cannot be read at all
	 * leaves its tables empty, and the later files say what they miss */
	if (read_tsv(&L, "sources.tsv", SRC_COLS, NCOLS(SRC_COLS), &f))
		load_sources(&L, &f);
	if (read_tsv(&L, "classes.tsv", CLS_COLS, NCOLS(CLS_COLS), &f))
		load_classes(&L, &f);
	if (!kb->cls_bits) {
		kb->words = 1;
		kb->cls_bits = arena_zalloc(a, sizeof(uint64_t));
	}
	if (read_tsv(&L, "drugs.tsv", DRUG_COLS, NCOLS(DRUG_COLS), &f))
		load_drugs(&L, &f);
	if (read_tsv(&L, "products.tsv", PROD_COLS, NCOLS(PROD_COLS), &f))
		load_products(&L, &f);
	if (read_tsv(&L, "interactions.tsv", DDI_COLS, NCOLS(DDI_COLS), &f))
		load_interactions(&L, &f);
	if (read_tsv(&L, "allergy.tsv", ALR_COLS, NCOLS(ALR_COLS), &f))
		load_allergy(&L, &f);
	if (read_tsv(&L, "labs.tsv", LAB_COLS, NCOLS(LAB_COLS), &f))
		load_labs(&L, &f);
	if (kb->lab_as && read_tsv(&L, "lab-retest.tsv", RT_COLS, NCOLS(RT_COLS), &f))
		load_retest(&L, &f);
	if (read_tsv(&L, "comorbidity-groups.tsv", CG_COLS, NCOLS(CG_COLS), &f))
		load_cgroups(&L, &f);
	if (kb->cg && read_tsv(&L, "comorbidity.tsv", CM_COLS, NCOLS(CM_COLS), &f))
		load_comorbidity(&L, &f);
	if (!kb_noise_sorted()) {
		L.path = "src/kb/map.c";
		L.line = 0;
		bad(&L, "internal: the noise word tables are not sorted");
	}
	if (L.nbad || !kb->drug_ddi || !kb->rt_by_lab || !kb->cm) {
		if (err)
			*err = L.io ? CW_EIO : CW_EINVALID;
		if (!L.nbad && report)
			report(arg, "the knowledge base is incomplete");
		arena_free(a);
		return NULL;
	}
	if (err)
		*err = CW_OK;
	return kb;
}

uint64_t
kb_fingerprint(const struct kb *kb)
{
	return kb->digest;
}

void
kb_free(struct kb *kb)
{
	if (kb)
		arena_free(kb->a);
}

const char *
kb_dir(const char *dir, bool *explicit_dir)
{
	const char *env = getenv(KB_ENV);

	*explicit_dir = true;
	if (dir && *dir)
		return dir;
	if (env && *env)
		return env;
	*explicit_dir = false;
	return KB_DEFAULT_DIR;
}
