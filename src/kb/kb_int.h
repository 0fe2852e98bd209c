/* kb/kb_int.h: what the files of kb/ share: the loaded kb's layout and its
 * hash tables. Nothing outside src/kb includes this. */
#ifndef CW_KB_INT_H
#define CW_KB_INT_H

#include "kb/kb.h"

/* ---- hash table: string key -> 32-bit value -------------------------- */

/* Open addressing, linear probing, power-of-two size at most half full.
 * Keys are not copied: they live in the kb's arena. Built once at load
 * (growing as it fills), read-only afterwards. */
struct kb_slot {
	const char *key; /* NULL: empty */
	uint32_t len;
	uint32_t hash;
	uint32_t val;
};

struct kb_tab {
	struct arena *a;
	struct kb_slot *slot;
	uint32_t mask;
	uint32_t n;
};

uint32_t kb_hash(const char *s, size_t n);
/* Sizes t for n keys (it grows past them). False when memory is short. */
bool kb_tab_init(struct kb_tab *t, struct arena *a, size_t n);
/* Adds key -> val: 1. When the key is there already, leaves it and returns
 * 0 with *old set to its value; -1 when memory is short. */
int kb_tab_put(struct kb_tab *t, const char *key, size_t len, uint32_t val,
		uint32_t *old);
/* The slot holding key (to change its value while loading), or NULL. */
struct kb_slot *kb_tab_slot(struct kb_tab *t, const char *key, size_t len);
/* The value of key, or false. */
bool kb_tab_get(const struct kb_tab *t, const char *key, size_t len,
		uint32_t *val);

/* What a name (names table) or a code (codes table) stands for: the kind in
 * the top byte, the number below. */
enum { KB_N_DRUG = 1, KB_N_PRODUCT, KB_N_CLASS, KB_N_LAB };
#define KB_VAL(kind, id) (((uint32_t)(kind) << 24) | (uint32_t)(id))
#define KB_KIND(v) ((v) >> 24)
#define KB_ID(v) ((v) & 0xffffffu)

/* A rule's side: a drug or a class. */
struct kb_side {
	uint8_t kind; /* KB_N_DRUG or KB_N_CLASS */
	uint16_t id;
};

/* ---- the loaded kb --------------------------------------------------- */

#define KB_MAX_ITEMS 60000 /* ids fit uint16_t with room for "none" */
#define KB_MAX_NGRAM 8     /* the most words a name may have */

struct kb {
	struct arena *a;
	uint64_t digest; /* kb_fingerprint */

	struct kb_drug *drug;
	size_t ndrug;
	struct kb_product *prod;
	size_t nprod;
	uint32_t *prod_off; /* nprod + 1 offsets into prod_ing */
	uint16_t *prod_ing;
	struct kb_class *cls;
	size_t ncls;
	int *cls_parent;    /* -1 at the top */
	size_t words;       /* uint64_t words in one class bitset */
	uint64_t *drug_bits; /* ndrug * words: every class a drug is in */
	uint64_t *cls_bits;  /* ncls * words: a class and those above it */

	struct kb_interaction *ddi;
	struct kb_side *ddi_side; /* 2 per rule: a, b */
	size_t nddi;
	uint32_t *drug_ddi_off; /* ndrug + 1 offsets into drug_ddi */
	uint16_t *drug_ddi;     /* rules a drug takes part in, each once */

	struct kb_allergy_rule *alr;
	struct kb_side *alr_side; /* 2 per rule: allergen, reacts */
	size_t nalr;

	struct kb_lab *lab;
	size_t nlab;
	size_t lwords;      /* uint64_t words in one lab bitset */
	uint64_t *lab_bits; /* nlab * lwords: the panels a test is in (any depth) */
	int *lab_as;        /* intervals_as, -1 when none */
	struct kb_retest *rt;
	size_t nrt;
	uint32_t *lab_rt_off; /* nlab + 1 offsets into rt_by_lab */
	const struct kb_retest **rt_by_lab;

	struct kb_cgroup *cg; /* comorbidity groups */
	size_t ncg;
	struct kb_comorbid *cm; /* comorbidity codes */
	size_t ncm;
	struct kb_tab cgname; /* group name -> number */
	struct kb_tab cmcode; /* "i:I252" (ICD-10 prefix, no dots) or "s:22298006" -> row */

	size_t nsrc;
	size_t nnames;

	struct kb_tab names;   /* normalized drug, product and class names */
	struct kb_tab first;   /* a name's first word -> the most words of the
	                          names starting with it */
	struct kb_tab rxcui;   /* RxCUI -> drug or product */
	struct kb_tab labname; /* normalized test names and LOINC codes */
	struct kb_tab src;     /* source key -> its index in srctext */
	const char **srctext;
	unsigned max_ngram;
};

/* A LOINC code: up to 7 digits, '-', the Mod 10 check digit (LOINC's
 * own algorithm: from the right, double every other digit starting with
 * the last, add all the digits; the check digit brings the sum to a
 * multiple of 10). */
bool kb_loinc_valid(const char *s, size_t n);

/* The longest comorbidity code (SNOMED CT ids are at most 18 digits). */
#define KB_CODE_MAX 18
/* The comorbidity table's key of a code: "i:" and the ICD-10 code upper
 * case without dots or spaces, or "s:" and the SNOMED CT code. Its length,
 * or 0 when the code cannot be one (empty, too long, a character that
 * is not a letter or digit). */
size_t kb_code_key(bool icd, const char *code, char *out, size_t cap);

/* Whether map.c's word tables are sorted, as its binary search needs:
 * kb_load refuses to load otherwise, so an edit that breaks the order is
 * caught by the first test run. */
bool kb_noise_sorted(void);

static inline bool
kb_bit(const uint64_t *bits, size_t i)
{
	return (bits[i >> 6] >> (i & 63)) & 1;
}

static inline void
kb_set_bit(uint64_t *bits, size_t i)
{
	bits[i >> 6] |= (uint64_t)1 << (i & 63);
}

#endif
