/* cli/kb.c: `careweave kb check` and `careweave kb lookup`.
 *
 * check loads the knowledge base the way serve does and prints either its
 * counts or every problem as FILE:LINE: REASON. lookup answers what
 * careweave knows about one name or code: a drug (ingredient, brand,
 * synonym, RxCUI), a product, a class, a lab test (name or LOINC); text
 * that is none of these is mapped as a medication would be, so
 * "Coumadin 5 mg tablet" shows what the medication checks will see. Also
 * cli_kb_open, shared with serve: where the kb is and how its problems
 * are told. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "coord/coord.h"
#include "kb/kb.h"

static void
kb_usage(FILE *f)
{
	fprintf(f,
		"usage: careweave kb check [--kb DIR]\n"
		"       careweave kb lookup NAME|CODE [--kb DIR]\n\n"
		"check   load and validate every file of the knowledge base: prints its\n"
		"        counts (exit 0) or every problem as FILE:LINE: REASON (exit 1)\n"
		"lookup  what careweave knows about a drug (ingredient, brand name,\n"
		"        synonym, RxCUI), a product, a class or a lab test (name or\n"
		"        LOINC); other text is mapped as a medication would be\n"
		"        (\"Coumadin 5 mg tablet\"). Exit 0 found, 4 not found\n\n"
		"options:\n"
		"  --kb DIR    the knowledge base folder (default $%s, else ./%s)\n"
		"  -h, --help  this text\n\n"
		"exit codes: 0 ok, 1 the knowledge base is invalid, 2 usage,\n"
		"3 it cannot be read, 4 not found\n", KB_ENV, KB_DEFAULT_DIR);
}

static void
report_stderr(void *arg, const char *msg)
{
	fprintf(stderr, "%s\n", msg);
}

struct kb *
cli_kb_open(const char *cmd, const char *dir, bool optional, int *rc)
{
	bool named;
	const char *d = kb_dir(dir, &named);
	enum cw_err err;
	struct kb *kb;

	*rc = CLI_OK;
	if (optional && !named && access(d, F_OK) != 0 && errno == ENOENT)
		return NULL;
	kb = kb_load(d, report_stderr, NULL, &err);
	if (!kb) {
		cli_err(cmd, "the knowledge base in %s %s", d,
			err == CW_EIO ? "cannot be read" : "is invalid (see above)");
		*rc = err == CW_EIO ? CLI_EIO : CLI_EDATA;
	}
	return kb;
}

int
cli_rules_open(const char *cmd, const char *dir, struct kb **kb, struct coord **co)
{
	int rc;

	*co = NULL;
	if (!(*kb = cli_kb_open(cmd, dir, false, &rc))) {
		if (rc == CLI_EIO)
			cli_err(cmd, "without a knowledge base no medication could be "
				"checked: give --kb DIR or set %s", KB_ENV);
		return rc;
	}
	if (!(*co = coord_new(*kb))) {
		cli_err(cmd, "cannot start the rules (out of memory)");
		kb_free(*kb);
		*kb = NULL;
		return CLI_EIO;
	}
	return CLI_OK;
}

void
cli_rules_close(struct kb *kb, struct coord *co)
{
	coord_free(co);
	kb_free(kb);
}

static void
print_sources(const struct kb *kb, const char *keys)
{
	char k[64];

	while (*keys) {
		size_t n = strcspn(keys, ",");
		const char *t;

		snprintf(k, sizeof(k), "%.*s", (int)n, keys);
		t = kb_source_text(kb, k);
		printf("  source   %s: %s\n", k, t ? t : "?");
		keys += n;
		if (*keys == ',')
			keys++;
	}
}

static void
print_list(const char *label, const char *list)
{
	if (!*list)
		return;
	printf("  %-8s ", label);
	for (const char *p = list; *p; p++)
		fputs(*p == '|' ? ", " : (char[2]){*p, 0}, stdout);
	putchar('\n');
}

/* Whether a rule side (a drug or class name) covers drug d / class c. */
static bool
side_covers(const struct kb *kb, const char *side, int d, int c)
{
	int sd = kb_find_drug(kb, side), sc = kb_find_class(kb, side);

	if (d >= 0)
		return sd == d || (sc >= 0 && kb_drug_in_class(kb, (unsigned)d, (unsigned)sc));
	return sc >= 0 && (sc == c || kb_class_within(kb, (unsigned)c, (unsigned)sc));
}

static void
print_rules(const struct kb *kb, int d, int c)
{
	struct kb_counts n;

	kb_count(kb, &n);
	for (unsigned i = 0; i < n.interactions; i++) {
		const struct kb_interaction *x = kb_interaction_at(kb, i);
		bool a = side_covers(kb, x->a, d, c), b = side_covers(kb, x->b, d, c);

		if (!a && !b)
			continue;
		printf("  interacts with %s: %s, %s (%s): %s; %s [%s]\n",
		       a ? x->b : x->a, kb_severity_name(x->severity),
		       x->interruptive ? "interruptive" : "information only", x->id,
		       x->effect, x->advice, x->source);
	}
	for (unsigned i = 0; i < n.allergy_rules; i++) {
		const struct kb_allergy_rule *x = kb_allergy_rule_at(kb, i);

		if (side_covers(kb, x->allergen, d, c))
			printf("  allergy  to it (as %s) -> warn on %s: %s\n", x->allergen,
			       x->reacts, kb_severity_name(x->severity));
		if (side_covers(kb, x->reacts, d, c))
			printf("  allergy  to %s -> warn on it (as %s): %s\n", x->allergen,
			       x->reacts, kb_severity_name(x->severity));
	}
}

static void
show_drug(const struct kb *kb, unsigned id)
{
	const struct kb_drug *d = kb_drug_at(kb, id);
	unsigned cls[64];
	size_t n = kb_drug_classes(kb, id, cls, 64);

	printf("drug: %s\n", d->name);
	printf("  rxcui    %s (%s)\n", *d->rxcui ? d->rxcui : "-", d->code_status);
	print_list("names", d->names);
	if (n) {
		printf("  classes  ");
		for (size_t i = 0; i < n && i < 64; i++)
			printf("%s%s", i ? "; " : "", kb_class_at(kb, cls[i])->name);
		putchar('\n');
	}
	print_rules(kb, (int)id, -1);
	print_sources(kb, d->source);
}

static void
show_product(const struct kb *kb, unsigned id)
{
	const struct kb_product *p = kb_product_at(kb, id);

	printf("product: %s\n", p->name);
	printf("  rxcui    %s (%s)\n", *p->rxcui ? p->rxcui : "-", p->code_status);
	print_list("names", p->names);
	print_list("contains", p->ingredients);
	print_sources(kb, p->source);
}

static void
show_class(const struct kb *kb, unsigned id)
{
	const struct kb_class *c = kb_class_at(kb, id);
	unsigned m[512];
	size_t n = kb_class_members(kb, id, m, 512);

	printf("class: %s\n", c->name);
	if (*c->parent)
		printf("  parent   %s\n", c->parent);
	print_list("names", c->names);
	if (c->therapy)
		printf("  therapy  two different members at once are a duplicate\n");
	printf("  members  ");
	for (size_t i = 0; i < n && i < 512; i++)
		printf("%s%s", i ? ", " : "", kb_drug_at(kb, m[i])->name);
	printf("%s\n", n ? "" : "(none)");
	print_rules(kb, -1, (int)id);
	print_sources(kb, c->source);
}

static void
show_lab(const struct kb *kb, unsigned id)
{
	const struct kb_lab *l = kb_lab_at(kb, id);
	const struct kb_retest *rt[32];
	unsigned m[256], from = id;
	struct kb_counts c;
	size_t n = kb_lab_members(kb, id, m, 256), first = 1;

	kb_count(kb, &c);
	printf("lab test: %s\n", l->name);
	printf("  loinc    %s (%s)\n", *l->loinc ? l->loinc : "-", l->loinc_status);
	print_list("names", l->names);
	for (unsigned p = 0; p < c.labs; p++) {
		if (!kb_lab_in_panel(kb, id, p))
			continue;
		printf("%s%s", first ? "  part of  " : ", ", kb_lab_at(kb, p)->name);
		first = 0;
	}
	if (!first)
		putchar('\n');
	if (n) {
		printf("  members  ");
		for (size_t i = 0; i < n && i < 256; i++)
			printf("%s%s", i ? ", " : "", kb_lab_at(kb, m[i])->name);
		putchar('\n');
	}
	n = kb_lab_retest(kb, id, rt, 32, &from);
	for (size_t i = 0; i < n && i < 32; i++)
		printf("  retest   not within %u day%s: %s%s%s (%s)\n", rt[i]->min_days,
		       rt[i]->min_days == 1 ? "" : "s", rt[i]->situation,
		       from != id ? ", as " : "", from != id ? kb_lab_at(kb, from)->name : "",
		       rt[i]->source);
	if (!n)
		printf("  retest   no minimum interval known\n");
	print_sources(kb, l->source);
}

static int
do_lookup(const struct kb *kb, const char *q)
{
	int d = kb_find_drug(kb, q), p = kb_find_product(kb, q);
	int c = kb_find_class(kb, q), l = kb_find_lab(kb, q);
	struct kb_mapping m;
	const char *st;

	if (d >= 0)
		show_drug(kb, (unsigned)d);
	if (p >= 0)
		show_product(kb, (unsigned)p);
	if (c >= 0)
		show_class(kb, (unsigned)c);
	if (l >= 0)
		show_lab(kb, (unsigned)l);
	if (d >= 0 || p >= 0 || c >= 0 || l >= 0)
		return CLI_OK;
	kb_map_medication(kb, NULL, 0, q, &m);
	if (m.status == KB_UNCHECKED) {
		printf("not found: careweave knows no drug, class or lab test '%s'; "
		       "as a medication it would be unchecked\n", q);
		return CLI_ENOTFOUND;
	}
	st = m.status == KB_MAPPED ? "mapped" : "partial";
	printf("medication text: %s", st);
	if (m.status == KB_PARTIAL)
		printf(" ('%s' not understood: the rest is unchecked)", m.unknown);
	printf("\n  ingredients ");
	for (unsigned i = 0; i < m.n; i++)
		printf("%s%s", i ? ", " : "", kb_drug_at(kb, m.ref[i].id)->name);
	putchar('\n');
	for (unsigned i = 0; i < m.n; i++)
		show_drug(kb, m.ref[i].id);
	return CLI_OK;
}

int
cli_kb(int argc, char **argv)
{
	static const struct option opts[] = {
		{"kb", required_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *dir = NULL, *sub;
	struct kb *kb;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			dir = optarg;
			break;
		case 'h':
			kb_usage(stdout);
			return CLI_OK;
		default:
			kb_usage(stderr);
			return CLI_EUSAGE;
		}
	}
	if (optind >= argc) {
		kb_usage(stderr);
		return CLI_EUSAGE;
	}
	sub = argv[optind];
	if (strcmp(sub, "check") == 0) {
		if (optind + 1 != argc) {
			cli_err("kb", "check takes no argument ('%s')", argv[optind + 1]);
			return CLI_EUSAGE;
		}
	} else if (strcmp(sub, "lookup") == 0) {
		if (optind + 2 != argc) {
			cli_err("kb", "lookup takes one NAME or CODE (quote text with spaces)");
			return CLI_EUSAGE;
		}
	} else {
		cli_err("kb", "'%s' is not check or lookup", sub);
		return CLI_EUSAGE;
	}
	if (!(kb = cli_kb_open("kb", dir, false, &rc)))
		return rc;
	if (strcmp(sub, "check") == 0) {
		struct kb_counts n;
		bool named;

		kb_count(kb, &n);
		printf("kb: %s: %zu drugs, %zu products, %zu classes, %zu interactions, "
		       "%zu allergy rules, %zu lab tests, %zu retest intervals, "
		       "%zu comorbidity codes in %zu groups, %zu sources, %zu names: ok\n",
		       kb_dir(dir, &named), n.drugs, n.products, n.classes,
		       n.interactions, n.allergy_rules, n.labs, n.retest_rules,
		       n.comorbidity_codes, n.comorbidity_groups, n.sources, n.names);
		rc = CLI_OK;
	} else {
		rc = do_lookup(kb, argv[optind + 1]);
	}
	kb_free(kb);
	return rc;
}
