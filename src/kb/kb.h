/* kb/kb.h: careweave's clinical knowledge base.
 *
 * What careweave knows about drugs and laboratory tests, read once from the
 * tab-separated files in data/kb/ (the formats are in src/kb/README.md):
 * drugs by ingredient with their RxNorm codes, brand names, synonyms and
 * classes; products (combinations, clinical drug codes); drug-drug
 * interactions between drugs or classes; allergy cross-reactivity; lab tests
 * with their LOINC codes, panels and minimum retest intervals. Every row
 * names the public reference it came from.
 *
 * A loaded kb is immutable: every function below may be called from any
 * thread at once. Lookups allocate nothing; their results point into the kb
 * and live as long as it does. Drugs, classes and labs are numbered from 0
 * in file order (the numbers change when the files do: keep names or codes,
 * not numbers, anywhere that outlives the process). */
#ifndef CW_KB_H
#define CW_KB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

struct kb; /* opaque */

/* The directory used when neither --kb nor $CAREWEAVE_KB names one,
 * relative to the working directory. */
#define KB_DEFAULT_DIR "data/kb"
#define KB_ENV "CAREWEAVE_KB"

#define KB_RXNORM "http://www.nlm.nih.gov/research/umls/rxnorm"
#define KB_LOINC "http://loinc.org"

/* ---- loading --------------------------------------------------------- */

/* Called once per problem found while loading, with "file:line: reason"
 * (file is the path as opened). */
typedef void kb_report_fn(void *arg, const char *msg);

/* Loads every file of the knowledge base from dir. Each row is checked
 * (column count, header, unknown drug, class or source named, bad severity,
 * duplicate key or name, bad code or LOINC check digit); every problem is
 * reported through report (NULL: not reported), at most 100. Returns NULL
 * if any was found or a file cannot be read (reported too); *err, when not
 * NULL, is then CW_EIO for a file that cannot be read, else CW_EINVALID.
 * The caller frees the kb with kb_free(). Costs a few milliseconds. */
struct kb *kb_load(const char *dir, kb_report_fn *report, void *arg,
		   enum cw_err *err);
void kb_free(struct kb *kb);

/* Which mapping rules map.c applies: raise it whenever a change there can
 * map a medication or allergy differently, so that what was mapped and
 * kept (coord/'s facts) is mapped again. */
#define KB_MAP_REVISION 1
/* A number that changes when any kb file or KB_MAP_REVISION changes:
 * whatever was derived from another kb is to be derived again. */
uint64_t kb_fingerprint(const struct kb *kb);

/* The directory to load: dir when set, else $CAREWEAVE_KB when set, else
 * KB_DEFAULT_DIR. *explicit says whether it was named (by dir or the
 * environment), so a caller can refuse a missing named directory but
 * tolerate a missing default. Static or the caller's storage. */
const char *kb_dir(const char *dir, bool *explicit_dir);

struct kb_counts {
	size_t drugs, products, classes, interactions, allergy_rules, labs,
		retest_rules, sources, names, comorbidity_groups, comorbidity_codes;
};
void kb_count(const struct kb *kb, struct kb_counts *out);

/* ---- what the kb holds (read-only views) ----------------------------- */

enum kb_severity { KB_SEV_LOW = 1, KB_SEV_MODERATE, KB_SEV_HIGH };
/* "low", "moderate", "high". */
const char *kb_severity_name(enum kb_severity s);

/* The text fields are the row's own, NUL-terminated; lists stay in the
 * file's form ("Coumadin|Jantoven"). code_status: "verified",
 * "unverified" or "unknown" (code empty). */
struct kb_drug {
	const char *name;        /* the ingredient, as in drugs.tsv */
	const char *rxcui;       /* "" when careweave has no code */
	const char *code_status;
	const char *names;       /* brands and synonyms */
	const char *classes;     /* the direct classes */
	const char *source;
};

struct kb_product {
	const char *name;
	const char *rxcui;
	const char *code_status;
	const char *names;
	const char *ingredients;
	const char *source;
};

struct kb_class {
	const char *name;
	const char *parent; /* "" at the top */
	const char *names;
	const char *source;
	bool therapy;       /* two different drugs of it at once are a duplicate */
};

struct kb_interaction {
	const char *id;
	const char *a, *b; /* a drug or class name */
	enum kb_severity severity;
	bool interruptive;
	const char *effect;
	const char *advice;
	const char *source;
};

struct kb_allergy_rule {
	const char *allergen, *reacts; /* a drug or class name */
	enum kb_severity severity;
	const char *note;
	const char *source;
};

struct kb_lab {
	const char *name;
	const char *loinc;  /* "4548-4|17856-6", "" when none */
	const char *loinc_status;
	const char *panels; /* the panels it is directly part of */
	const char *intervals_as;
	const char *names;
	const char *source;
};

struct kb_retest {
	const char *test;
	const char *situation;
	unsigned min_days;
	const char *note;
	const char *source;
};

/* By number (0 .. count-1); NULL when out of range. */
const struct kb_drug *kb_drug_at(const struct kb *kb, unsigned id);
const struct kb_product *kb_product_at(const struct kb *kb, unsigned id);
const struct kb_class *kb_class_at(const struct kb *kb, unsigned id);
const struct kb_interaction *kb_interaction_at(const struct kb *kb, unsigned id);
const struct kb_allergy_rule *kb_allergy_rule_at(const struct kb *kb, unsigned id);
const struct kb_lab *kb_lab_at(const struct kb *kb, unsigned id);
/* The reference a source key names ("onc-hp"), NULL if none. */
const char *kb_source_text(const struct kb *kb, const char *key);

/* ---- finding one thing ----------------------------------------------- */

/* A drug by its ingredient name, a brand name or synonym (case, spaces and
 * punctuation ignored: "CO-TRIMOXAZOLE"), or its RxCUI. -1 if none. A
 * product's name or code finds nothing here: see kb_find_product. */
int kb_find_drug(const struct kb *kb, const char *name_or_rxcui);
int kb_find_product(const struct kb *kb, const char *name_or_rxcui);
/* A class by its name or one of its other names ("PCN"). -1 if none. */
int kb_find_class(const struct kb *kb, const char *name);
/* A lab test by name, other name or any one of its LOINC codes. -1 if none. */
int kb_find_lab(const struct kb *kb, const char *name_or_loinc);

/* ---- classes --------------------------------------------------------- */

/* Whether drug is in cls, directly or through a class below it. O(1). */
bool kb_drug_in_class(const struct kb *kb, unsigned drug, unsigned cls);
/* Whether two different drugs of cls (or of classes below it) taken at
 * once are a therapeutic duplication: classes.tsv's therapy column. */
bool kb_class_is_therapy(const struct kb *kb, unsigned cls);
/* Whether cls is sub (or below it). */
bool kb_class_within(const struct kb *kb, unsigned sub, unsigned cls);
/* Every class drug is in, its direct ones first then their parents, each
 * once: up to max ids into out; returns how many there are. */
size_t kb_drug_classes(const struct kb *kb, unsigned drug, unsigned *out,
		       size_t max);
/* The drugs in cls (or below it), in file order: as kb_drug_classes. */
size_t kb_class_members(const struct kb *kb, unsigned cls, unsigned *out,
			size_t max);

/* ---- mapping what a record says to what the kb knows ------------------ */

/* What a mapping found: a drug or, for allergies only, a class ("PCN"). */
enum kb_ref_kind { KB_REF_DRUG = 1, KB_REF_CLASS };
/* How: by a code (an RxCUI of a drug or product) or by name (a coding's
 * display or the text). */
enum kb_via { KB_VIA_CODE = 1, KB_VIA_NAME };

struct kb_ref {
	uint8_t kind; /* enum kb_ref_kind */
	uint8_t via;  /* enum kb_via */
	uint16_t id;  /* the drug or class number */
};

/* The result of mapping one medication or allergy.
 *   KB_MAPPED    every part of it was understood: refs hold what it is.
 *   KB_PARTIAL   some ingredients were found, but some words were not
 *                understood (an ingredient careweave does not know may be
 *                among them): check the refs, and report the rest unchecked.
 *   KB_UNCHECKED nothing was found: careweave cannot check it. Never treat
 *                this as safe. */
enum kb_status { KB_UNCHECKED = 0, KB_PARTIAL, KB_MAPPED };

#define KB_MAP_MAX 16

struct kb_mapping {
	enum kb_status status;
	unsigned n; /* refs found, each once */
	struct kb_ref ref[KB_MAP_MAX];
	bool truncated;   /* more than KB_MAP_MAX: status is at most partial */
	char unknown[48]; /* the first word not understood, normalized, or "" */
};

/* One FHIR Coding; any field may be NULL. */
struct kb_coding {
	const char *system;
	const char *code;
	const char *display;
};

/* Maps a medication (a MedicationRequest's medicationCodeableConcept, a
 * Medication's code) to ingredients: RxNorm codes of ingredients and
 * products first, then each coding's display and the text by name: case,
 * punctuation, doses and strengths ("5 mg", "400mg", "0.4 MG/ACTUAT"),
 * forms and routes ("tablet", "oral", "ER", "OTC") and salts
 * ("hydrochloride", "HCl", "sodium") are ignored, brand names and
 * synonyms count ("Coumadin 5 mg tablet" is warfarin). The status is
 * KB_MAPPED when a code matched or a display or the text was understood
 * entirely, else KB_PARTIAL when something was found, else KB_UNCHECKED;
 * the refs are everything found in any of them. A class name is not a
 * medication: "insulin" alone is unchecked. text may be NULL. Allocates
 * nothing; under a microsecond for a code, a display of ten words and a
 * text of five (0.9 us measured on the development machine). */
void kb_map_medication(const struct kb *kb, const struct kb_coding *codings,
		       size_t ncodings, const char *text,
		       struct kb_mapping *out);

/* The same for an AllergyIntolerance's code: as kb_map_medication, and a
 * class counts too ("PCN", "penicillin allergy", "sulfa"); words such as
 * "allergy", "intolerance" or "substance" are ignored. A food or
 * environmental allergen (no drug in it) is KB_UNCHECKED: the kb does not
 * know it, which the caller may show as "not a medication allergy". */
void kb_map_allergy(const struct kb *kb, const struct kb_coding *codings,
		    size_t ncodings, const char *text, struct kb_mapping *out);

/* ---- interactions and allergies -------------------------------------- */

struct kb_ddi_hit {
	const struct kb_interaction *rule;
	uint16_t drug_a; /* the drug of a that matched */
	uint16_t drug_b; /* the drug of b that matched */
};

/* The interactions between the drugs of a and those of b (their KB_REF_DRUG
 * refs; a drug with itself never interacts): every rule that matches a
 * pair, either way round, once per pair and rule. Up to max hits into out;
 * returns how many there are (more than max when out was too small).
 * Allocates nothing. */
size_t kb_interactions(const struct kb *kb, const struct kb_mapping *a,
		       const struct kb_mapping *b, struct kb_ddi_hit *out,
		       size_t max);

struct kb_allergy_hit {
	const struct kb_allergy_rule *rule; /* NULL for a direct match */
	enum kb_severity severity;          /* KB_SEV_HIGH when direct */
	struct kb_ref allergen;             /* the allergy's ref that matched */
	uint16_t drug;                      /* the medication's drug */
};

/* What the allergy (kb_map_allergy) says about the medication
 * (kb_map_medication): for each drug of the medication at most one hit,
 * the strongest: a direct match (the allergy's drug, or a drug of its
 * class) or the most severe cross-reactivity rule. Up to max into out;
 * returns how many there are. Allocates nothing. */
size_t kb_allergy_check(const struct kb *kb, const struct kb_mapping *allergy,
			const struct kb_mapping *med, struct kb_allergy_hit *out,
			size_t max);

/* ---- laboratory tests ------------------------------------------------ */

/* Whether test is part of panel, directly or through a panel within it. */
bool kb_lab_in_panel(const struct kb *kb, unsigned test, unsigned panel);
/* The tests of panel (at any depth), in file order: up to max into out;
 * returns how many there are. */
size_t kb_lab_members(const struct kb *kb, unsigned panel, unsigned *out,
		      size_t max);
/* The minimum retest intervals of test: its own, or else those of its
 * intervals_as test (followed as far as it goes). *from is set to the test
 * whose intervals they are. Up to max pointers into out; returns how many
 * there are. */
size_t kb_lab_retest(const struct kb *kb, unsigned test,
		     const struct kb_retest **out, size_t max, unsigned *from);

/* ---- comorbidities ----------------------------------------------------- */

#define KB_SNOMED "http://snomed.info/sct"
#define KB_ICD10CM "http://hl7.org/fhir/sid/icd-10-cm"
#define KB_ICD10 "http://hl7.org/fhir/sid/icd-10"

/* A comorbidity group of the readmission scores (comorbidity-groups.tsv),
 * numbered from 0 in file order. Two groups with one lace_item count once
 * in LACE (mild liver and mild renal disease). */
struct kb_cgroup {
	const char *group;      /* "diabetes-complicated" */
	const char *name;       /* "diabetes with end-organ damage" */
	unsigned lace;          /* its LACE comorbidity weight */
	const char *lace_item;  /* the LACE item it counts in */
	unsigned charlson;      /* its Charlson 1987 weight (0: not counted) */
	int supersedes;         /* the milder group it replaces, or -1 */
	const char *source;
};

/* One code of a group (comorbidity.tsv). */
struct kb_comorbid {
	const char *system;  /* "icd-10" or "snomed", as in the file */
	const char *code;    /* as in the file ("I25.2") */
	unsigned group;
	const char *display; /* "" when the file gives none */
	const char *source;
};

/* The group a condition code is in: SNOMED CT (KB_SNOMED) by the code
 * exactly; ICD-10-CM or ICD-10 (KB_ICD10CM, KB_ICD10) by the longest
 * prefix the file lists, dots, spaces and case ignored ("i25.2" is I25.2).
 * NULL when the code is in no group, or the system is another one.
 * Allocates nothing; a few hash lookups. */
const struct kb_comorbid *kb_comorbidity(const struct kb *kb, const char *system,
					 const char *code);
/* A group by number (NULL out of range) or by name (-1 if none). */
const struct kb_cgroup *kb_cgroup_at(const struct kb *kb, unsigned id);
int kb_find_cgroup(const struct kb *kb, const char *group);

/* ---- text ------------------------------------------------------------ */

/* Normalizes s as the kb compares names: ASCII lower case, every run of
 * anything but letters and digits one space, a space between digits and
 * letters ("400mg" -> "400 mg"), apostrophes dropped ("John's" ->
 * "johns"), no space at either end. Writes at most cap bytes with the NUL;
 * returns the length it needed (as snprintf). */
size_t kb_normalize(const char *s, char *out, size_t cap);

#endif
