/* kb/query.c: the questions asked of a loaded kb.
 *
 * Finding one drug, class or test; class membership; the interactions
 * between two mapped medications; what an allergy says about a medication;
 * lab panels and retest intervals. Everything the answers need was
 * precomputed by load.c (class bitsets, each drug's rules, panel bitsets),
 * so these are table reads and loops over a handful of entries, with no
 * allocation: the write path calls them on every medication. */
#include <string.h>

#include "kb/kb_int.h"

const char *
kb_severity_name(enum kb_severity s)
{
	switch (s) {
	case KB_SEV_HIGH:
		return "high";
	case KB_SEV_MODERATE:
		return "moderate";
	case KB_SEV_LOW:
		return "low";
	}
	return "?";
}

void
kb_count(const struct kb *kb, struct kb_counts *o)
{
	o->drugs = kb->ndrug;
	o->products = kb->nprod;
	o->classes = kb->ncls;
	o->interactions = kb->nddi;
	o->allergy_rules = kb->nalr;
	o->labs = kb->nlab;
	o->retest_rules = kb->nrt;
	o->sources = kb->nsrc;
	o->names = kb->nnames;
	o->comorbidity_groups = kb->ncg;
	o->comorbidity_codes = kb->ncm;
}

#define AT(arr, n) return id < (n) ? &kb->arr[id] : NULL

const struct kb_drug *kb_drug_at(const struct kb *kb, unsigned id) { AT(drug, kb->ndrug); }
const struct kb_product *kb_product_at(const struct kb *kb, unsigned id) { AT(prod, kb->nprod); }
const struct kb_class *kb_class_at(const struct kb *kb, unsigned id) { AT(cls, kb->ncls); }
const struct kb_interaction *kb_interaction_at(const struct kb *kb, unsigned id) { AT(ddi, kb->nddi); }
const struct kb_allergy_rule *kb_allergy_rule_at(const struct kb *kb, unsigned id) { AT(alr, kb->nalr); }
const struct kb_lab *kb_lab_at(const struct kb *kb, unsigned id) { AT(lab, kb->nlab); }

const char *
kb_source_text(const struct kb *kb, const char *key)
{
	uint32_t v;

	if (!kb_tab_get(&kb->src, key, strlen(key), &v))
		return NULL;
	return kb->srctext[v];
}

/* The value of name in t after normalizing, or 0. */
static uint32_t
find_name(const struct kb_tab *t, const char *s)
{
	char buf[256];
	size_t n = kb_normalize(s, buf, sizeof(buf));
	uint32_t v;

	if (!n || n >= sizeof(buf) || !kb_tab_get(t, buf, n, &v))
		return 0;
	return v;
}

static int
find_kind(const struct kb *kb, const char *s, unsigned kind, bool code)
{
	uint32_t v;

	if (code && kb_tab_get(&kb->rxcui, s, strlen(s), &v) && KB_KIND(v) == kind)
		return (int)KB_ID(v);
	v = find_name(&kb->names, s);
	return KB_KIND(v) == kind ? (int)KB_ID(v) : -1;
}

int
kb_find_drug(const struct kb *kb, const char *s)
{
	return find_kind(kb, s, KB_N_DRUG, true);
}

int
kb_find_product(const struct kb *kb, const char *s)
{
	return find_kind(kb, s, KB_N_PRODUCT, true);
}

int
kb_find_class(const struct kb *kb, const char *s)
{
	return find_kind(kb, s, KB_N_CLASS, false);
}

int
kb_find_lab(const struct kb *kb, const char *s)
{
	uint32_t v;

	if (kb_tab_get(&kb->labname, s, strlen(s), &v))
		return (int)KB_ID(v);
	v = find_name(&kb->labname, s);
	return v ? (int)KB_ID(v) : -1;
}

/* ---- classes --------------------------------------------------------- */

bool
kb_drug_in_class(const struct kb *kb, unsigned drug, unsigned cls)
{
	if (drug >= kb->ndrug || cls >= kb->ncls)
		return false;
	return kb_bit(kb->drug_bits + drug * kb->words, cls);
}

bool
kb_class_is_therapy(const struct kb *kb, unsigned cls)
{
	return cls < kb->ncls && kb->cls[cls].therapy;
}

bool
kb_class_within(const struct kb *kb, unsigned sub, unsigned cls)
{
	if (sub >= kb->ncls || cls >= kb->ncls)
		return false;
	return kb_bit(kb->cls_bits + sub * kb->words, cls);
}

size_t
kb_drug_classes(const struct kb *kb, unsigned drug, unsigned *out, size_t max)
{
	size_t n = 0;

	if (drug >= kb->ndrug)
		return 0;
	/* the direct classes are those no other class of the drug is below */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t c = 0; c < kb->ncls; c++) {
			bool direct = true;

			if (!kb_drug_in_class(kb, drug, (unsigned)c))
				continue;
			for (size_t o = 0; direct && o < kb->ncls; o++)
				direct = o == c || !kb_drug_in_class(kb, drug, (unsigned)o) ||
					 !kb_class_within(kb, (unsigned)o, (unsigned)c);
			if (direct != (pass == 0))
				continue;
			if (n < max)
				out[n] = (unsigned)c;
			n++;
		}
	}
	return n;
}

size_t
kb_class_members(const struct kb *kb, unsigned cls, unsigned *out, size_t max)
{
	size_t n = 0;

	for (size_t d = 0; d < kb->ndrug; d++) {
		if (!kb_drug_in_class(kb, (unsigned)d, cls))
			continue;
		if (n < max)
			out[n] = (unsigned)d;
		n++;
	}
	return n;
}

/* ---- interactions ---------------------------------------------------- */

static bool
matches(const struct kb *kb, const struct kb_side *s, unsigned drug)
{
	if (s->kind == KB_N_DRUG)
		return s->id == drug;
	return kb_bit(kb->drug_bits + drug * kb->words, s->id);
}

size_t
kb_interactions(const struct kb *kb, const struct kb_mapping *a,
		const struct kb_mapping *b, struct kb_ddi_hit *out, size_t max)
{
	size_t n = 0;

	for (unsigned i = 0; i < a->n; i++) {
		unsigned x = a->ref[i].id;

		if (a->ref[i].kind != KB_REF_DRUG || x >= kb->ndrug)
			continue;
		for (unsigned j = 0; j < b->n; j++) {
			unsigned y = b->ref[j].id;

			if (b->ref[j].kind != KB_REF_DRUG || y == x || y >= kb->ndrug)
				continue;
			for (uint32_t k = kb->drug_ddi_off[x]; k < kb->drug_ddi_off[x + 1]; k++) {
				unsigned r = kb->drug_ddi[k];
				const struct kb_side *s = &kb->ddi_side[2 * r];

				if (!(matches(kb, &s[0], x) && matches(kb, &s[1], y)) &&
				    !(matches(kb, &s[1], x) && matches(kb, &s[0], y)))
					continue;
				if (n < max)
					out[n] = (struct kb_ddi_hit){&kb->ddi[r], (uint16_t)x,
								     (uint16_t)y};
				n++;
			}
		}
	}
	return n;
}

/* ---- allergies ------------------------------------------------------- */

/* Whether the allergy's ref falls under the rule side s: the same drug, a
 * drug of the class, or a class within it. */
static bool
allergen_under(const struct kb *kb, const struct kb_ref *r, const struct kb_side *s)
{
	if (r->kind == KB_REF_DRUG)
		return r->id < kb->ndrug && matches(kb, s, r->id);
	if (s->kind != KB_N_CLASS)
		return false;
	return kb_class_within(kb, r->id, s->id);
}

size_t
kb_allergy_check(const struct kb *kb, const struct kb_mapping *allergy,
		 const struct kb_mapping *med, struct kb_allergy_hit *out,
		 size_t max)
{
	size_t n = 0;

	for (unsigned j = 0; j < med->n; j++) {
		unsigned y = med->ref[j].id;
		struct kb_allergy_hit best = {0};

		if (med->ref[j].kind != KB_REF_DRUG || y >= kb->ndrug)
			continue;
		for (unsigned i = 0; i < allergy->n; i++) {
			const struct kb_ref *r = &allergy->ref[i];
			bool direct = r->kind == KB_REF_DRUG ? r->id == y
							     : kb_drug_in_class(kb, y, r->id);

			if (direct) {
				best = (struct kb_allergy_hit){NULL, KB_SEV_HIGH, *r, (uint16_t)y};
				break;
			}
			for (size_t k = 0; k < kb->nalr; k++) {
				const struct kb_side *s = &kb->alr_side[2 * k];

				if (kb->alr[k].severity <= best.severity ||
				    !allergen_under(kb, r, &s[0]) || !matches(kb, &s[1], y))
					continue;
				best = (struct kb_allergy_hit){&kb->alr[k], kb->alr[k].severity,
							       *r, (uint16_t)y};
			}
		}
		if (!best.severity)
			continue;
		if (n < max)
			out[n] = best;
		n++;
	}
	return n;
}

/* ---- labs ------------------------------------------------------------ */

bool
kb_lab_in_panel(const struct kb *kb, unsigned test, unsigned panel)
{
	if (test >= kb->nlab || panel >= kb->nlab)
		return false;
	return kb_bit(kb->lab_bits + test * kb->lwords, panel);
}

size_t
kb_lab_members(const struct kb *kb, unsigned panel, unsigned *out, size_t max)
{
	size_t n = 0;

	for (size_t t = 0; t < kb->nlab; t++) {
		if (!kb_lab_in_panel(kb, (unsigned)t, panel))
			continue;
		if (n < max)
			out[n] = (unsigned)t;
		n++;
	}
	return n;
}

size_t
kb_lab_retest(const struct kb *kb, unsigned test, const struct kb_retest **out,
	      size_t max, unsigned *from)
{
	size_t n;
	int t = (int)test;

	if (test >= kb->nlab)
		return 0;
	/* load.c refused circles, so this ends */
	while (kb->lab_rt_off[t + 1] == kb->lab_rt_off[t] && kb->lab_as[t] >= 0)
		t = kb->lab_as[t];
	if (from)
		*from = (unsigned)t;
	n = kb->lab_rt_off[t + 1] - kb->lab_rt_off[t];
	for (size_t i = 0; i < n && i < max; i++)
		out[i] = kb->rt_by_lab[kb->lab_rt_off[t] + i];
	return n;
}

/* ---- comorbidities ------------------------------------------------------- */

size_t
kb_code_key(bool icd, const char *code, char *out, size_t cap)
{
	size_t n = 2;

	if (cap < 3)
		return 0;
	out[0] = icd ? 'i' : 's';
	out[1] = ':';
	for (const char *p = code; *p; p++) {
		char c = *p;

		if (icd && (c == '.' || c == ' '))
			continue;
		if (icd && c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (!((c >= '0' && c <= '9') || (icd && c >= 'A' && c <= 'Z')))
			return 0;
		if (n + 1 >= cap || n - 2 >= KB_CODE_MAX)
			return 0;
		out[n++] = c;
	}
	out[n] = '\0';
	return n > 2 ? n : 0;
}

const struct kb_cgroup *
kb_cgroup_at(const struct kb *kb, unsigned id)
{
	return id < kb->ncg ? &kb->cg[id] : NULL;
}

int
kb_find_cgroup(const struct kb *kb, const char *group)
{
	uint32_t v;

	if (!group || !kb_tab_get(&kb->cgname, group, strlen(group), &v))
		return -1;
	return (int)v;
}

const struct kb_comorbid *
kb_comorbidity(const struct kb *kb, const char *system, const char *code)
{
	char key[2 + KB_CODE_MAX + 1];
	size_t n;
	uint32_t v;
	bool icd;

	if (!system || !code)
		return NULL;
	if (!strcmp(system, KB_SNOMED))
		icd = false;
	else if (!strcmp(system, KB_ICD10CM) || !strcmp(system, KB_ICD10))
		icd = true;
	else
		return NULL;
	n = kb_code_key(icd, code, key, sizeof(key));
	if (!n)
		return NULL;
	if (!icd)
		return kb_tab_get(&kb->cmcode, key, n, &v) ? &kb->cm[v] : NULL;
	/* the longest prefix listed: a category (3 characters) at the least */
	for (; n >= 5; n--)
		if (kb_tab_get(&kb->cmcode, key, n, &v))
			return &kb->cm[v];
	return NULL;
}
