/* kb/map.c: from what a record says to the drugs the kb knows.
 *
 * Medications and allergies arrive as codes, as a coding's display, or as
 * free text ("Coumadin 5 mg tablet", "ibuprofen 400mg OTC", "PCN"). Codes
 * are looked up as they are; text is normalized (kb_normalize), split into
 * words, and read left to right: at each word the longest run of words
 * that is a name of the kb (an ingredient, a brand, a synonym, a product,
 * a class) is taken; a word that starts no name is either noise (a number,
 * a unit, a dose form, a route, a salt, "OTC": the table below) or not
 * understood. Anything not understood makes the result partial at best,
 * so an ingredient careweave does not know is never passed over in
 * silence. All of it runs in fixed buffers on the stack: no allocation. */
#include <stdlib.h>
#include <string.h>

#include "kb/kb_int.h"

size_t
kb_normalize(const char *s, char *out, size_t cap)
{
	size_t n = 0;
	int prev = 0; /* 0: start or separator, 1: letter, 2: digit */
	bool space = false;

#define PUT(ch)                                                                \
	do {                                                                   \
		if (n + 1 < cap)                                               \
			out[n] = (ch);                                         \
		n++;                                                           \
	} while (0)
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		int cls;

		if (c == '\'')
			continue;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || c >= 0x80)
			cls = 1;
		else if (c >= '0' && c <= '9')
			cls = 2;
		else {
			space = space || prev != 0;
			prev = 0;
			continue;
		}
		if (prev && prev != cls)
			space = true;
		if (space && n > 0)
			PUT(' ');
		space = false;
		PUT((char)c);
		prev = cls;
	}
#undef PUT
	if (cap)
		out[n < cap ? n : cap - 1] = '\0';
	return n;
}

/* Words that carry no ingredient: units, strengths, dose forms, routes,
 * release, packaging, salts and plain English around them. Sorted (the
 * lookup is a binary search). A word here never hides a name: names are
 * tried first at every word. */
static const char *const noise_words[] = {
	"a", "ac", "actuat", "actuation", "an", "and", "anda", "anhydrous", "as",
	"at", "auto", "besylate", "bid", "bitartrate", "bla", "bottle", "brand",
	"bromide", "by", "cap", "caps", "capsule", "capsules", "carbonate", "cc",
	"chew", "chewable", "chloride", "citrate", "coated", "counter", "cr",
	"cream", "daily", "day", "days", "delayed", "dihydrate", "dihydrochloride",
	"disintegrating", "disodium", "dispersible", "dose", "doses", "dr", "drop",
	"drops", "drug", "ds", "ec", "effervescent", "elixir", "enteric", "er", "every",
	"extended", "film", "for", "fumarate", "g", "gel", "generic", "gm", "gram",
	"grams", "granules", "h", "hbr", "hcl", "hfa", "hour", "hours", "hr",
	"hyclate", "hydrobromide", "hydrochloride", "im", "immediate", "implant",
	"in", "inh", "inhal", "inhalation", "inhaler", "inj", "injectable",
	"injection", "injector", "intrauterine", "intravenous", "ir", "iu", "iv",
	"kit", "l", "la", "liquid", "lozenge", "macrocrystals", "maleate", "mcg",
	"meq", "mesylate", "mg", "microgram", "micrograms", "micronized",
	"milligram", "milligrams", "ml", "mmol", "modified", "monohydrate",
	"mouth", "mucosal", "nasal", "nda", "nebulizer", "needed", "odt", "of",
	"ointment", "on", "once", "ophthalmic", "or", "oral", "orally", "otc",
	"otic", "over", "pack", "patch", "pen", "per", "percent", "phosphate",
	"po", "potassium", "powder", "prefilled", "prescription", "prn",
	"propionate", "puff", "puffs", "q", "qd", "qid", "rectal", "release",
	"ring", "rx", "sa", "sc", "sl", "sodium", "solution", "spray", "sr",
	"strength", "subcutaneous", "sublingual", "succinate", "sulfate",
	"sulphate", "suppository", "susp", "suspension", "syringe", "syrup",
	"system", "tab", "tablet", "tablets", "tabs", "take", "tartrate", "the",
	"tid", "times", "to", "topical", "transdermal", "twice", "unit", "units",
	"unt", "vaginal", "vial", "w", "with", "x", "xl", "xr",
};

/* More noise when the text is an allergy ("penicillin allergy", "Aspirin
 * (substance)", "sulfa antibiotics - hives"). Never "no": "no known drug
 * allergies" must stay not understood rather than map to something. */
static const char *const allergy_words[] = {
	"adverse", "agent", "agents", "allergic", "allergies", "allergy",
	"anaphylaxis", "antibiotic", "antibiotics", "class", "containing",
	"group", "history", "hives", "hx", "hypersensitivity", "intolerance",
	"intolerant", "itching", "medication", "medications", "medicinal",
	"product", "rash", "reaction", "reactions", "sensitivity", "substance",
	"swelling", "urticaria",
};

struct word {
	const char *p;
	size_t n;
};

static bool
sorted(const char *const *list, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		if (strcmp(list[i - 1], list[i]) >= 0)
			return false;
	}
	return true;
}

bool
kb_noise_sorted(void)
{
	return sorted(noise_words, sizeof(noise_words) / sizeof(noise_words[0])) &&
	       sorted(allergy_words, sizeof(allergy_words) / sizeof(allergy_words[0]));
}

static int
cmp_word(const void *k, const void *e)
{
	const struct word *w = k;
	const char *s = *(const char *const *)e;
	size_t sn = strlen(s);
	int c = strncmp(w->p, s, w->n < sn ? w->n : sn);

	if (c)
		return c;
	return w->n < sn ? -1 : w->n > sn;
}

static bool
in_list(const char *const *list, size_t n, const char *p, size_t len)
{
	struct word w = {p, len};

	return bsearch(&w, list, n, sizeof(*list), cmp_word) != NULL;
}

static bool
is_noise(const char *p, size_t n, bool allergy)
{
	if (strspn(p, "0123456789") >= n)
		return true;
	if (in_list(noise_words, sizeof(noise_words) / sizeof(noise_words[0]), p, n))
		return true;
	return allergy &&
	       in_list(allergy_words, sizeof(allergy_words) / sizeof(allergy_words[0]), p, n);
}

static void
add_ref(struct kb_mapping *m, unsigned kind, unsigned via, unsigned id)
{
	for (unsigned i = 0; i < m->n; i++) {
		if (m->ref[i].kind == kind && m->ref[i].id == id)
			return;
	}
	if (m->n == KB_MAP_MAX) {
		m->truncated = true;
		return;
	}
	m->ref[m->n++] = (struct kb_ref){(uint8_t)kind, (uint8_t)via, (uint16_t)id};
}

static void
add_value(const struct kb *kb, struct kb_mapping *m, uint32_t v, unsigned via)
{
	unsigned id = KB_ID(v);

	if (KB_KIND(v) == KB_N_DRUG) {
		add_ref(m, KB_REF_DRUG, via, id);
	} else if (KB_KIND(v) == KB_N_PRODUCT) {
		for (uint32_t i = kb->prod_off[id]; i < kb->prod_off[id + 1]; i++)
			add_ref(m, KB_REF_DRUG, via, kb->prod_ing[i]);
	} else if (KB_KIND(v) == KB_N_CLASS) {
		add_ref(m, KB_REF_CLASS, via, id);
	}
}

static void
note_unknown(struct kb_mapping *m, const char *p, size_t n)
{
	if (m->unknown[0])
		return;
	if (n >= sizeof(m->unknown))
		n = sizeof(m->unknown) - 1;
	memcpy(m->unknown, p, n);
	m->unknown[n] = '\0';
}

#define TEXT_MAX 1024
#define WORDS_MAX 192

/* Reads one text. 0: nothing found; 1: something found, something not
 * understood; 2: found, and every word understood. */
static int
map_text(const struct kb *kb, const char *s, bool allergy, struct kb_mapping *m)
{
	char buf[TEXT_MAX];
	struct word w[WORDS_MAX];
	size_t len = kb_normalize(s, buf, sizeof(buf)), nw = 0;
	unsigned found = 0, unknown = 0;

	if (len >= sizeof(buf)) {
		/* the end is cut: the last word may be half a word */
		char *sp = strrchr(buf, ' ');

		len = sp ? (size_t)(sp - buf) : 0;
		buf[len] = '\0';
		unknown++;
	}
	for (size_t i = 0; i < len;) {
		size_t e = i;

		while (e < len && buf[e] != ' ')
			e++;
		if (nw == WORDS_MAX) {
			unknown++;
			break;
		}
		w[nw++] = (struct word){buf + i, e - i};
		i = e + 1;
	}
	for (size_t i = 0; i < nw;) {
		size_t most = nw - i < kb->max_ngram ? nw - i : kb->max_ngram;
		bool hit = false;
		uint32_t longest;

		/* most words start no name: one lookup says so, and otherwise
		 * how long the longest name starting here is */
		if (!kb_tab_get(&kb->first, w[i].p, w[i].n, &longest))
			most = 0;
		else if (longest < most)
			most = longest;

		for (size_t n = most; n >= 1; n--) {
			const char *k = w[i].p;
			size_t kl = (size_t)(w[i + n - 1].p + w[i + n - 1].n - k);
			uint32_t v;

			if (!kb_tab_get(&kb->names, k, kl, &v))
				continue;
			if (KB_KIND(v) == KB_N_CLASS && !allergy) {
				/* "insulin", "statins": a class is not a medication */
				note_unknown(m, k, kl);
				unknown++;
			} else {
				add_value(kb, m, v, KB_VIA_NAME);
				found++;
			}
			i += n;
			hit = true;
			break;
		}
		if (hit)
			continue;
		if (!is_noise(w[i].p, w[i].n, allergy)) {
			note_unknown(m, w[i].p, w[i].n);
			unknown++;
		}
		i++;
	}
	if (!found)
		return 0;
	return unknown ? 1 : 2;
}

static void
map_any(const struct kb *kb, const struct kb_coding *c, size_t nc,
	const char *text, bool allergy, struct kb_mapping *out)
{
	bool full = false;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < nc; i++) {
		uint32_t v;

		if (c[i].system && c[i].code && strcmp(c[i].system, KB_RXNORM) == 0 &&
		    kb_tab_get(&kb->rxcui, c[i].code, strlen(c[i].code), &v)) {
			add_value(kb, out, v, KB_VIA_CODE);
			full = true;
		}
		if (c[i].display && map_text(kb, c[i].display, allergy, out) == 2)
			full = true;
	}
	if (text && map_text(kb, text, allergy, out) == 2)
		full = true;
	if (!out->n)
		out->status = KB_UNCHECKED;
	else if (full && !out->truncated)
		out->status = KB_MAPPED;
	else
		out->status = KB_PARTIAL;
}

void
kb_map_medication(const struct kb *kb, const struct kb_coding *codings,
		  size_t ncodings, const char *text, struct kb_mapping *out)
{
	map_any(kb, codings, ncodings, text, false, out);
}

void
kb_map_allergy(const struct kb *kb, const struct kb_coding *codings,
	       size_t ncodings, const char *text, struct kb_mapping *out)
{
	map_any(kb, codings, ncodings, text, true, out);
}
