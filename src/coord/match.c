/* coord/match.c: patient matching, the scorer and the candidate search.
 *
 * A Patient is first boiled down to what is compared (struct person):
 * name tokens folded as the search index folds them (case, Latin
 * diacritics) with punctuation dropped and hyphenated or double family
 * names split, each with a phonetic key; the birth date with its
 * precision; the administrative gender; postal codes and first address
 * lines normalized; phone digits (the last 10); identifiers with a
 * system. Two persons are then compared part by part: each part earns
 * points when it agrees, fewer when it is only near, loses some when it
 * differs in a way people's records rarely do (given name, birth date,
 * sex) and nothing when it differs in a way lives do (family name,
 * address, phone). The sum is the score; rules on top keep "certain" for
 * what may be linked without a person looking. Everything is in fixed
 * arrays with the limits of coord.h: no input makes it allocate more than
 * the reasons' words. The weights and rules are in README.md. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord/coord_int.h"

/* Points of each part (the sum of the agreeing parts is 1). */
#define W_FAMILY 0.20
#define W_GIVEN 0.20
#define W_BIRTH 0.25
#define W_SEX 0.05
#define W_POSTAL 0.05
#define W_LINE 0.10
#define W_PHONE 0.15
/* Near agreement, as a share of the part's points. */
#define F_NEAR 0.70    /* a name spelled alike (phonetic key, one edit) */
#define F_SHARED 0.80  /* one part of a double name, or a former name */
#define F_INITIAL 0.40 /* a given name's initial */
#define F_SWAPPED 0.60 /* birth day and month swapped */
#define F_DIGIT 0.50   /* birth date one digit off, or two adjacent swapped */
#define F_MONTH 0.40   /* only year and month to compare */
#define F_YEAR 0.20    /* only the year */
/* What differing costs (points taken). */
#define P_GIVEN 0.20
#define P_BIRTH 0.25
#define P_SEX 0.15
#define P_ID_CONFLICT 0.30 /* same identifier system, another value */

#define TOK_MAX 40  /* bytes of one name token kept (longer: cut) */
#define KEY_MAX 12  /* phonetic key */
#define LINE_MAX 96
#define POSTAL_MAX 16
#define SEARCHES_MAX 16
/* The scratch memory of folding one person's names and lines (about 40
 * of at most 257 bytes each), reset for each candidate. */
#define SCRATCH_MAX (1u << 20)

struct tok {
	char s[TOK_MAX + 1];
	char key[KEY_MAX + 1];
};

/* The family name of one HumanName, in tokens. */
struct family {
	struct tok t[4];
	size_t n;
	char joined[TOK_MAX + 1]; /* the tokens without spaces */
	bool old;                 /* use old, or maiden */
};

struct addr {
	char postal[POSTAL_MAX + 1];
	char line[LINE_MAX + 1];
};

struct person {
	struct family fam[COORD_MATCH_NAMES_MAX];
	size_t nfam;
	struct tok giv[COORD_MATCH_TOKENS_MAX];
	size_t ngiv;
	int by, bm, bd, bprec; /* bprec: 0 none, 1 year, 2 month, 3 day */
	char sex;              /* 'm', 'f', 0: unknown or other */
	bool deceased;         /* deceasedBoolean true, or a deceasedDateTime */
	struct addr ad[COORD_MATCH_ADDRS_MAX];
	size_t nad;
	char phone[COORD_MATCH_PHONES_MAX][11];
	size_t nphone;
	struct {
		const char *system, *value;
	} id[COORD_MATCH_IDS_MAX];
	size_t nid;
};

/* ---- folding text ---------------------------------------------------------- */

/* s folded (fhir_normalize: lower case, Latin diacritics) into out, at
 * most cap - 1 bytes: letters and digits kept, apostrophes and dots
 * dropped (O'Brien, St. John), anything else a space. Bytes of other
 * scripts are kept as they are (compared exactly, never phonetically). */
static void
fold(const char *s, char *out, size_t cap)
{
	size_t o = 0, n = strlen(s);
	bool space = false;

	for (size_t i = 0; i < n && o + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c + 32);
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80) {
			if (space && o) {
				out[o++] = ' ';
				if (o + 1 >= cap)
					break;
			}
			space = false;
			out[o++] = (char)c;
		} else if (c != '\'' && c != '.') {
			space = true;
		}
	}
	out[o] = '\0';
}

/* The first 256 bytes of s folded as the search index folds them
 * (fhir_normalize: Latin diacritics, case) in scratch, then fold() into
 * out. scratch NULL: case only (enough to tell whether there is a name). */
static void
fold_name(struct arena *scratch, const char *s, char *out, size_t cap)
{
	size_t n = strnlen(s, 256);
	char *f = scratch ? fhir_normalize(scratch, s, n) : NULL;
	char buf[257];

	if (!f) {
		/* a bounded copy: fold() reads to the end */
		memcpy(buf, s, n);
		buf[n] = '\0';
		f = buf;
	}
	fold(f, out, cap);
}

/* ---- a phonetic key ---------------------------------------------------------- */

/* careweave's own key for names spelled alike: consonant sounds of
 * English and Romance spellings made one (ph f, ck k, soft c s, qu kw, x ks,
 * z s, v f, d t, dg j, soft g j; th, sh and ch one sound each; the silent k
 * of kn, g of gn, w of wr, p of ps, gh inside a word), h after a letter
 * dropped, y read as i, a final silent e dropped, repeats collapsed.
 * Vowels are kept (Jane and John must stay apart). Smith and Smyth, Jon and
 * John, Stephen and Steven, Meyer and Meier get one key; Catherine and
 * Kathryn keys one edit apart. Letters a-z only (other bytes end it). */
static void
phonetic(const char *s, char *key)
{
	char out[64];
	size_t o = 0, n = strlen(s);

	for (size_t i = 0; i < n && o + 2 < sizeof(out); i++) {
		char c = s[i], nx = i + 1 < n ? s[i + 1] : 0, code = 0;

		if (c < 'a' || c > 'z')
			break;
		if (i == 0 && ((c == 'k' && nx == 'n') || (c == 'g' && nx == 'n') ||
			       (c == 'w' && nx == 'r') || (c == 'p' && nx == 's')))
			continue;
		switch (c) {
		case 'a': case 'i': case 'o': case 'u':
			code = c;
			break;
		case 'y':
			code = 'i';
			break;
		case 'e':
			code = i + 1 == n && o > 1 ? 0 : 'e';
			break;
		case 'p':
			code = nx == 'h' ? (i++, 'f') : 'p';
			break;
		case 'c':
			if (nx == 'k' || nx == 'h')
				i++;
			code = nx == 'h' ? 'x' : nx == 'k' ? 'k' :
			       nx == 'e' || nx == 'i' || nx == 'y' ? 's' : 'k';
			break;
		case 's':
			if (nx == 'c' && i + 2 < n && s[i + 2] == 'h') {
				/* Schmidt, Schneider: s then k */
				i += 2;
				if (!o || out[o - 1] != 's')
					out[o++] = 's';
				code = 'k';
			} else if (nx == 'h') {
				i++;
				code = 'x';
			} else {
				code = 's';
			}
			break;
		case 't':
			code = nx == 'h' ? (i++, '0') : 't';
			break;
		case 'd':
			code = nx == 'g' ? (i++, 'j') : 't';
			break;
		case 'g':
			code = nx == 'e' || nx == 'i' || nx == 'y' ? 'j' : 'k';
			if (nx == 'h') {
				i++;
				code = i == 1 ? 'k' : 0;
			}
			break;
		case 'q':
			code = 'k';
			break;
		case 'x':
			out[o++] = 'k';
			code = 's';
			break;
		case 'z':
			code = 's';
			break;
		case 'v':
			code = 'f';
			break;
		case 'h':
			code = o == 0 ? 'h' : 0;
			break;
		default:
			code = c;
		}
		if (code && (o == 0 || out[o - 1] != code))
			out[o++] = code;
	}
	if (o > KEY_MAX)
		o = KEY_MAX;
	memcpy(key, out, o);
	key[o] = '\0';
}

/* Optimal string alignment distance, capped: whether x and y are at most
 * one insertion, deletion, substitution or swap of neighbours apart. */
static bool
one_edit(const char *x, const char *y)
{
	size_t nx = strlen(x), ny = strlen(y), i = 0;

	if (nx > ny + 1 || ny > nx + 1)
		return false;
	while (i < nx && i < ny && x[i] == y[i])
		i++;
	if (i == nx && i == ny)
		return true;
	if (nx == ny)
		return !strcmp(x + i + 1, y + i + 1) ||
		       (i + 1 < nx && x[i] == y[i + 1] && x[i + 1] == y[i] &&
			!strcmp(x + i + 2, y + i + 2));
	return nx > ny ? !strcmp(x + i + 1, y + i) : !strcmp(x + i, y + i + 1);
}

/* ---- what is compared of a Patient -------------------------------------------- */

static void
tok_set(struct tok *t, const char *s, size_t n)
{
	if (n > TOK_MAX)
		n = TOK_MAX;
	memcpy(t->s, s, n);
	t->s[n] = '\0';
	phonetic(t->s, t->key);
}

/* Splits folded text into up to max tokens of t; returns how many. */
static size_t
tokens(const char *folded, struct tok *t, size_t max)
{
	size_t k = 0;

	for (const char *p = folded; *p && k < max;) {
		size_t n = strcspn(p, " ");

		if (n)
			tok_set(&t[k++], p, n);
		p += n;
		p += *p == ' ';
	}
	return k;
}

static void
names_of(struct arena *a, const json_t *p, struct person *pe)
{
	json_t *names = json_object_get(p, "name"), *nm, *g;
	size_t i, j;

	json_array_foreach(names, i, nm) {
		const char *use = coord_str_at(nm, "use"), *fam = coord_str_at(nm, "family");
		bool old = use && (!strcmp(use, "old") || !strcmp(use, "maiden"));
		char f[256];

		if (i == COORD_MATCH_NAMES_MAX)
			break;
		if (fam && pe->nfam < COORD_MATCH_NAMES_MAX) {
			struct family *fm = &pe->fam[pe->nfam];
			size_t o = 0;

			fold_name(a, fam, f, sizeof(f));
			fm->n = tokens(f, fm->t, 4);
			for (size_t k = 0; k < fm->n; k++)
				for (const char *c = fm->t[k].s; *c && o < TOK_MAX; c++)
					fm->joined[o++] = *c;
			fm->joined[o] = '\0';
			fm->old = old;
			if (fm->n)
				pe->nfam++;
		}
		json_array_foreach(json_object_get(nm, "given"), j, g) {
			const char *s = json_string_value(g);

			if (!s || pe->ngiv == COORD_MATCH_TOKENS_MAX)
				continue;
			fold_name(a, s, f, sizeof(f));
			pe->ngiv += tokens(f, pe->giv + pe->ngiv,
					   COORD_MATCH_TOKENS_MAX - pe->ngiv);
		}
	}
}

static int
digits(const char *s, size_t n)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static void
birth_of(const json_t *p, struct person *pe)
{
	const char *b = coord_str_at(p, "birthDate");
	struct time_range tr;
	size_t n;

	if (!b || (n = strlen(b)) > 10 || time_parse(b, n, TIME_DATE, &tr))
		return;
	pe->by = digits(b, 4);
	pe->bprec = 1;
	if (n >= 7) {
		pe->bm = digits(b + 5, 2);
		pe->bprec = 2;
	}
	if (n == 10) {
		pe->bd = digits(b + 8, 2);
		pe->bprec = 3;
	}
}

/* The common words of a street line made one ("Street" and "St"). */
static const char *const street_words[][2] = {
	{"street", "st"}, {"avenue", "ave"}, {"av", "ave"}, {"road", "rd"},
	{"drive", "dr"}, {"lane", "ln"}, {"court", "ct"}, {"boulevard", "blvd"},
	{"place", "pl"}, {"apartment", "apt"}, {"suite", "ste"}, {"north", "n"},
	{"south", "s"}, {"east", "e"}, {"west", "w"}, {"highway", "hwy"},
};

static void
line_of(struct arena *a, const char *s, char *out)
{
	char f[LINE_MAX * 2];
	size_t o = 0;

	fold_name(a, s, f, sizeof(f));
	for (const char *p = f; *p;) {
		size_t n = strcspn(p, " ");
		const char *w = p;
		size_t wn = n;

		for (size_t k = 0; k < sizeof(street_words) / sizeof(street_words[0]); k++)
			if (strlen(street_words[k][0]) == n && !strncmp(p, street_words[k][0], n)) {
				w = street_words[k][1];
				wn = strlen(w);
				break;
			}
		if (o && o < LINE_MAX)
			out[o++] = ' ';
		for (size_t k = 0; k < wn && o < LINE_MAX; k++)
			out[o++] = w[k];
		p += n;
		p += *p == ' ';
	}
	out[o] = '\0';
}

static void
addresses_of(struct arena *a, const json_t *p, struct person *pe)
{
	json_t *ad;
	size_t i;

	json_array_foreach(json_object_get(p, "address"), i, ad) {
		struct addr *x;
		const char *pc = coord_str_at(ad, "postalCode");
		const char *l0 = json_string_value(json_array_get(json_object_get(ad, "line"), 0));
		size_t o = 0;

		if (pe->nad == COORD_MATCH_ADDRS_MAX)
			break;
		x = &pe->ad[pe->nad];
		memset(x, 0, sizeof(*x));
		for (const char *c = pc; c && *c && o < POSTAL_MAX; c++)
			if ((*c >= '0' && *c <= '9') || (*c >= 'A' && *c <= 'Z'))
				x->postal[o++] = *c;
			else if (*c >= 'a' && *c <= 'z')
				x->postal[o++] = (char)(*c - 32);
		x->postal[o] = '\0';
		if (l0)
			line_of(a, l0, x->line);
		if (x->postal[0] || x->line[0])
			pe->nad++;
	}
}

static void
phones_of(const json_t *p, struct person *pe)
{
	json_t *t;
	size_t i;

	json_array_foreach(json_object_get(p, "telecom"), i, t) {
		const char *sys = coord_str_at(t, "system"), *v = coord_str_at(t, "value");
		char d[32];
		size_t n = 0;

		if (!v || !sys || (strcmp(sys, "phone") && strcmp(sys, "sms")) ||
		    pe->nphone == COORD_MATCH_PHONES_MAX)
			continue;
		for (const char *c = v; *c && n < sizeof(d) - 1; c++)
			if (*c >= '0' && *c <= '9')
				d[n++] = *c;
		d[n] = '\0';
		/* fewer than 7 digits is an extension or a mistake, not a number */
		if (n < 7)
			continue;
		memcpy(pe->phone[pe->nphone], n > 10 ? d + n - 10 : d, (n > 10 ? 10 : n) + 1);
		pe->nphone++;
	}
}

static void
ids_of(const json_t *p, struct person *pe)
{
	json_t *id;
	size_t i;

	json_array_foreach(json_object_get(p, "identifier"), i, id) {
		const char *s = coord_str_at(id, "system"), *v = coord_str_at(id, "value");

		if (!s || !v || !*s || !*v || pe->nid == COORD_MATCH_IDS_MAX)
			continue;
		pe->id[pe->nid].system = s;
		pe->id[pe->nid].value = v;
		pe->nid++;
	}
}

static void
person_of(struct arena *a, const json_t *p, struct person *pe)
{
	const char *g = coord_str_at(p, "gender");

	memset(pe, 0, sizeof(*pe));
	names_of(a, p, pe);
	birth_of(p, pe);
	/* only male and female disagree: other and unknown say nothing */
	pe->sex = g && !strcmp(g, "male") ? 'm' : g && !strcmp(g, "female") ? 'f' : 0;
	pe->deceased = json_is_true(json_object_get(p, "deceasedBoolean")) ||
		       json_is_string(json_object_get(p, "deceasedDateTime"));
	addresses_of(a, p, pe);
	phones_of(p, pe);
	ids_of(p, pe);
}

/* ---- comparing parts ------------------------------------------------------------- */

/* Each part's outcome: how, the share of its points (negative: taken), and
 * the words when it is partial. */
struct part {
	enum coord_match_how how;
	double pts;
	const char *words;
};

/* Spelled alike: the same phonetic key, or keys of five or more one edit
 * apart, or the tokens themselves one edit apart when they have at least
 * min_edit letters (a typo; John and Joan are one edit apart too, so
 * given names ask for more letters than family names). */
static bool
near_tok(const struct tok *x, const struct tok *y, size_t min_edit)
{
	size_t kx = strlen(x->key), ky = strlen(y->key);

	if (kx > 1 && !strcmp(x->key, y->key))
		return true;
	if (kx >= 5 && ky >= 5 && one_edit(x->key, y->key))
		return true;
	return strlen(x->s) >= min_edit && strlen(y->s) >= min_edit && one_edit(x->s, y->s);
}

static void
cmp_family(const struct person *a, const struct person *b, struct part *out)
{
	int best = 0; /* 3 exact, 2 shared (or former), 1 near */
	bool former = false;

	*out = (struct part){COORD_HOW_UNKNOWN, 0, NULL};
	if (!a->nfam || !b->nfam)
		return;
	for (size_t i = 0; i < a->nfam; i++)
		for (size_t j = 0; j < b->nfam; j++) {
			const struct family *x = &a->fam[i], *y = &b->fam[j];
			bool old = x->old || y->old;
			int lvl = 0;

			if (!strcmp(x->joined, y->joined)) {
				lvl = 3;
			} else {
				for (size_t k = 0; k < x->n && lvl < 2; k++)
					for (size_t l = 0; l < y->n && lvl < 2; l++)
						if (!strcmp(x->t[k].s, y->t[l].s))
							lvl = 2;
						else if (near_tok(&x->t[k], &y->t[l], 4))
							lvl = 1;
				if (lvl < 1 && strlen(x->joined) >= 4 &&
				    one_edit(x->joined, y->joined))
					lvl = 1;
			}
			if (old && lvl == 3)
				lvl = 2;
			if (lvl > best || (lvl == best && lvl == 2 && !old)) {
				former = old && lvl == 2;
				best = lvl;
			}
		}
	if (best == 3)
		*out = (struct part){COORD_HOW_AGREES, W_FAMILY, NULL};
	else if (best == 2)
		*out = (struct part){COORD_HOW_PARTIAL, W_FAMILY * F_SHARED,
				     former ? "family name agrees with a former one" :
				     "family names share a part"};
	else if (best == 1)
		*out = (struct part){COORD_HOW_PARTIAL, W_FAMILY * F_NEAR,
				     "family name is spelled alike"};
	else
		/* a family name changes (marriage): differing costs nothing */
		*out = (struct part){COORD_HOW_DIFFERS, 0, NULL};
}

static void
cmp_given(const struct person *a, const struct person *b, struct part *out)
{
	int best = 0; /* 3 exact, 2 near, 1 initial */

	*out = (struct part){COORD_HOW_UNKNOWN, 0, NULL};
	if (!a->ngiv || !b->ngiv)
		return;
	for (size_t i = 0; i < a->ngiv; i++)
		for (size_t j = 0; j < b->ngiv; j++) {
			const struct tok *x = &a->giv[i], *y = &b->giv[j];
			size_t nx = strlen(x->s), ny = strlen(y->s);
			int lvl = 0;

			if (nx > 1 && ny > 1 && !strcmp(x->s, y->s))
				lvl = 3;
			else if (nx > 1 && ny > 1 && near_tok(x, y, 5))
				lvl = 2;
			else if ((nx == 1 || ny == 1) && x->s[0] == y->s[0])
				lvl = 1;
			if (lvl > best)
				best = lvl;
		}
	if (best == 3)
		*out = (struct part){COORD_HOW_AGREES, W_GIVEN, NULL};
	else if (best == 2)
		*out = (struct part){COORD_HOW_PARTIAL, W_GIVEN * F_NEAR,
				     "given name is spelled alike"};
	else if (best == 1)
		*out = (struct part){COORD_HOW_PARTIAL, W_GIVEN * F_INITIAL,
				     "given name initial agrees"};
	else
		*out = (struct part){COORD_HOW_DIFFERS, -P_GIVEN, NULL};
}

/* How many of the eight digits of YYYYMMDD differ, or 9 when two
 * neighbouring digits are swapped (a transposition, counted as one). */
static int
date_digits_off(const struct person *a, const struct person *b)
{
	char x[16], y[16];
	int off = 0, first = -1, second = -1;

	snprintf(x, sizeof(x), "%04d%02d%02d", a->by, a->bm, a->bd);
	snprintf(y, sizeof(y), "%04d%02d%02d", b->by, b->bm, b->bd);
	for (int i = 0; i < 8; i++)
		if (x[i] != y[i]) {
			if (!off)
				first = i;
			else
				second = i;
			off++;
		}
	if (off == 2 && second == first + 1 && x[first] == y[second] && x[second] == y[first])
		return 9;
	return off;
}

static void
cmp_birth(const struct person *a, const struct person *b, struct part *out)
{
	int prec = a->bprec < b->bprec ? a->bprec : b->bprec, off;

	*out = (struct part){COORD_HOW_UNKNOWN, 0, NULL};
	if (!prec)
		return;
	if (prec < 3) {
		bool same = a->by == b->by && (prec == 1 || a->bm == b->bm);

		if (same)
			*out = (struct part){COORD_HOW_PARTIAL,
					     W_BIRTH * (prec == 1 ? F_YEAR : F_MONTH),
					     prec == 1 ? "birth year agrees (no full date to compare)" :
					     "birth year and month agree (no full date to compare)"};
		else
			*out = (struct part){COORD_HOW_DIFFERS, -P_BIRTH, NULL};
		return;
	}
	if (a->by == b->by && a->bm == b->bm && a->bd == b->bd) {
		*out = (struct part){COORD_HOW_AGREES, W_BIRTH, NULL};
		return;
	}
	if (a->by == b->by && a->bm == b->bd && a->bd == b->bm) {
		*out = (struct part){COORD_HOW_PARTIAL, W_BIRTH * F_SWAPPED,
				     "birth date has day and month swapped"};
		return;
	}
	off = date_digits_off(a, b);
	if (off == 1 || off == 9)
		*out = (struct part){COORD_HOW_PARTIAL, W_BIRTH * F_DIGIT,
				     off == 1 ? "birth date is one digit off" :
				     "birth date has two digits swapped"};
	else
		*out = (struct part){COORD_HOW_DIFFERS, -P_BIRTH, NULL};
}

static void
cmp_sex(const struct person *a, const struct person *b, struct part *out)
{
	if (!a->sex || !b->sex)
		*out = (struct part){COORD_HOW_UNKNOWN, 0, NULL};
	else if (a->sex == b->sex)
		*out = (struct part){COORD_HOW_AGREES, W_SEX, NULL};
	else
		*out = (struct part){COORD_HOW_DIFFERS, -P_SEX, NULL};
}

static bool
postal_same(const char *x, const char *y)
{
	size_t nx = strlen(x), ny = strlen(y);

	if (!nx || !ny)
		return false;
	if (!strcmp(x, y))
		return true;
	/* a ZIP+4 and its ZIP */
	return nx >= 5 && ny >= 5 && digits(x, 5) >= 0 && digits(y, 5) >= 0 &&
	       !strncmp(x, y, 5) && (nx == 5 || ny == 5);
}

static void
cmp_address(const struct person *a, const struct person *b, struct part *out)
{
	double best = 0;

	*out = (struct part){COORD_HOW_UNKNOWN, 0, NULL};
	if (!a->nad || !b->nad)
		return;
	for (size_t i = 0; i < a->nad; i++)
		for (size_t j = 0; j < b->nad; j++) {
			const struct addr *x = &a->ad[i], *y = &b->ad[j];
			bool pc = postal_same(x->postal, y->postal);
			bool pc_differs = x->postal[0] && y->postal[0] && !pc;
			double v = pc ? W_POSTAL : 0;

			/* the same line in another postal code is another house */
			if (!pc_differs && x->line[0] && !strcmp(x->line, y->line))
				v += W_LINE;
			if (v > best)
				best = v;
		}
	if (best >= W_POSTAL + W_LINE - 1e-9)
		*out = (struct part){COORD_HOW_AGREES, best, NULL};
	else if (best > 0)
		*out = (struct part){COORD_HOW_PARTIAL, best,
				     best >= W_LINE - 1e-9 ? "street line agrees" :
				     "postal code agrees"};
	else
		/* people move: an address that differs costs nothing */
		*out = (struct part){COORD_HOW_DIFFERS, 0, NULL};
}

static void
cmp_phone(const struct person *a, const struct person *b, struct part *out)
{
	*out = (struct part){COORD_HOW_UNKNOWN, 0, NULL};
	if (!a->nphone || !b->nphone)
		return;
	for (size_t i = 0; i < a->nphone; i++)
		for (size_t j = 0; j < b->nphone; j++) {
			const char *x = a->phone[i], *y = b->phone[j];
			size_t nx = strlen(x), ny = strlen(y);

			/* a number without its area code is the end of one with it */
			if (nx <= ny ? !strcmp(x, y + ny - nx) : !strcmp(y, x + nx - ny)) {
				*out = (struct part){COORD_HOW_AGREES, W_PHONE, NULL};
				return;
			}
		}
	*out = (struct part){COORD_HOW_DIFFERS, 0, NULL};
}

/* AGREES: a system and value in common; DIFFERS: a system in common with
 * no value in common (evidence against); else UNKNOWN. */
static enum coord_match_how
cmp_ids(const struct person *a, const struct person *b)
{
	bool shared_system = false;

	for (size_t i = 0; i < a->nid; i++)
		for (size_t j = 0; j < b->nid; j++)
			if (!strcmp(a->id[i].system, b->id[j].system)) {
				if (!strcmp(a->id[i].value, b->id[j].value))
					return COORD_HOW_AGREES;
				shared_system = true;
			}
	return shared_system ? COORD_HOW_DIFFERS : COORD_HOW_UNKNOWN;
}

/* ---- the score and its words ----------------------------------------------------------- */

static const char *const part_words[COORD_PART_COUNT] = {
	[COORD_PART_IDENTIFIER] = "identifier", [COORD_PART_FAMILY] = "family name",
	[COORD_PART_GIVEN] = "given name", [COORD_PART_BIRTH] = "birth date",
	[COORD_PART_SEX] = "sex", [COORD_PART_ADDRESS] = "address",
	[COORD_PART_PHONE] = "phone",
};

/* "a", "a and b", "a, b and c" of the parts with how h, then verb. */
static void
say_parts(struct sbuf *sb, const enum coord_match_how *how, enum coord_match_how h,
	  const char *one, const char *many)
{
	size_t n = 0, k = 0;

	for (int p = 0; p < COORD_PART_COUNT; p++)
		n += how[p] == h;
	if (!n)
		return;
	if (sb->len)
		sbuf_adds(sb, "; ");
	for (int p = 0; p < COORD_PART_COUNT; p++) {
		if (how[p] != h)
			continue;
		if (k)
			sbuf_adds(sb, k + 1 == n ? " and " : ", ");
		sbuf_adds(sb, part_words[p]);
		k++;
	}
	sbuf_addch(sb, ' ');
	sbuf_adds(sb, n == 1 ? one : many);
}

static void
say(struct sbuf *sb, const char *words)
{
	if (sb->len)
		sbuf_adds(sb, "; ");
	sbuf_adds(sb, words);
}

static enum coord_match_grade
grade_of(double score)
{
	return score >= COORD_MATCH_CERTAIN ? COORD_GRADE_CERTAIN :
	       score >= COORD_MATCH_PROBABLE ? COORD_GRADE_PROBABLE :
	       score >= COORD_MATCH_POSSIBLE ? COORD_GRADE_POSSIBLE :
	       COORD_GRADE_CERTAINLY_NOT;
}

static double
clamp01(double v)
{
	return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* Rounded to 3 decimals, so the score reads the same in every answer. */
static double
round3(double v)
{
	return round(v * 1000) / 1000;
}

static enum cw_err
compare(struct arena *a, const struct person *x, const struct person *y,
	struct coord_match_score *out)
{
	struct part p[COORD_PART_COUNT];
	struct sbuf sb = SBUF_INIT(4096);
	enum coord_match_how *how = out->how;
	double demo = 0;
	const char *note = NULL;

	memset(out, 0, sizeof(*out));
	memset(p, 0, sizeof(p));
	p[COORD_PART_IDENTIFIER].how = cmp_ids(x, y);
	cmp_family(x, y, &p[COORD_PART_FAMILY]);
	cmp_given(x, y, &p[COORD_PART_GIVEN]);
	cmp_birth(x, y, &p[COORD_PART_BIRTH]);
	cmp_sex(x, y, &p[COORD_PART_SEX]);
	cmp_address(x, y, &p[COORD_PART_ADDRESS]);
	cmp_phone(x, y, &p[COORD_PART_PHONE]);
	for (int i = 0; i < COORD_PART_COUNT; i++) {
		how[i] = p[i].how;
		demo += p[i].pts;
	}
	/* rounded before grading, so the score shown and the grade agree */
	demo = round3(clamp01(demo));
	if (how[COORD_PART_IDENTIFIER] == COORD_HOW_AGREES) {
		/* demographics flatly contradicting the identifier: a typing
		 * error in the number, a shared or recycled one. A family name
		 * alone may differ (marriage); a given name may not (a twin
		 * registered under the other's number) */
		bool contradicted = how[COORD_PART_BIRTH] == COORD_HOW_DIFFERS ||
				    how[COORD_PART_SEX] == COORD_HOW_DIFFERS ||
				    how[COORD_PART_GIVEN] == COORD_HOW_DIFFERS;

		if (!contradicted) {
			out->score = 0.95 + 0.05 * demo;
			out->grade = COORD_GRADE_CERTAIN;
		} else {
			out->score = fmin(fmax(demo + P_ID_CONFLICT, COORD_MATCH_PROBABLE),
					  COORD_MATCH_CERTAIN - 0.01);
			out->grade = COORD_GRADE_PROBABLE;
			note = "the identifier agrees but the demographics contradict it: "
			       "to review, not linked";
		}
	} else {
		out->score = demo;
		if (how[COORD_PART_IDENTIFIER] == COORD_HOW_DIFFERS)
			out->score = round3(clamp01(demo - P_ID_CONFLICT));
		out->grade = grade_of(out->score);
		if (out->grade == COORD_GRADE_CERTAIN &&
		    (how[COORD_PART_FAMILY] != COORD_HOW_AGREES ||
		     how[COORD_PART_GIVEN] != COORD_HOW_AGREES ||
		     how[COORD_PART_BIRTH] != COORD_HOW_AGREES)) {
			out->grade = COORD_GRADE_PROBABLE;
			out->score = COORD_MATCH_CERTAIN - 0.01;
			note = "certain needs the full name and birth date to agree exactly";
		}
		if (out->grade == COORD_GRADE_CERTAIN &&
		    how[COORD_PART_IDENTIFIER] == COORD_HOW_DIFFERS) {
			out->grade = COORD_GRADE_PROBABLE;
			out->score = COORD_MATCH_CERTAIN - 0.01;
		}
		if (how[COORD_PART_GIVEN] == COORD_HOW_DIFFERS &&
		    out->grade > COORD_GRADE_POSSIBLE) {
			out->grade = COORD_GRADE_POSSIBLE;
			out->score = COORD_MATCH_PROBABLE - 0.01;
			note = "given names differ: a twin or relative may share the rest";
		}
	}
	/* a message about someone the record says has died is more often
	 * about someone else than a late one: never linked unseen */
	if (y->deceased && out->grade == COORD_GRADE_CERTAIN) {
		out->grade = COORD_GRADE_PROBABLE;
		out->score = COORD_MATCH_CERTAIN - 0.01;
		note = "the held record says the patient has died: to review";
	}
	out->score = round3(out->score);
	say_parts(&sb, how, COORD_HOW_AGREES, "agrees", "agree");
	for (int i = 0; i < COORD_PART_COUNT; i++)
		if (how[i] == COORD_HOW_PARTIAL && p[i].words)
			say(&sb, p[i].words);
	if (how[COORD_PART_IDENTIFIER] == COORD_HOW_DIFFERS)
		say(&sb, "an identifier of the same system has another value");
	{
		enum coord_match_how said[COORD_PART_COUNT];

		memcpy(said, how, sizeof(said));
		said[COORD_PART_IDENTIFIER] = COORD_HOW_UNKNOWN; /* said above */
		say_parts(&sb, said, COORD_HOW_DIFFERS, "differs", "differ");
	}
	if (note)
		say(&sb, note);
	if (!sb.len)
		sbuf_adds(&sb, "nothing to compare");
	out->reasons = sb.toobig ? NULL : arena_strndup(a, sb.buf, sb.len);
	sbuf_release(&sb);
	return out->reasons ? CW_OK : CW_ENOMEM;
}

enum cw_err
coord_match_score(struct arena *a, const json_t *pa, const json_t *pb,
		  struct coord_match_score *out)
{
	struct person *x = malloc(2 * sizeof(*x));
	struct arena *scratch = arena_new(SCRATCH_MAX);
	enum cw_err err = CW_ENOMEM;

	/* two persons are about 14 KiB: not for a worker's stack */
	if (x && scratch) {
		person_of(scratch, pa, &x[0]);
		person_of(scratch, pb, &x[1]);
		err = compare(a, &x[0], &x[1], out);
	}
	arena_free(scratch);
	free(x);
	return err;
}

const char *
coord_match_grade_code(enum coord_match_grade g)
{
	switch (g) {
	case COORD_GRADE_CERTAIN:
		return "certain";
	case COORD_GRADE_PROBABLE:
		return "probable";
	case COORD_GRADE_POSSIBLE:
		return "possible";
	case COORD_GRADE_CERTAINLY_NOT:
		break;
	}
	return "certainly-not";
}

static bool
usable(const struct person *pe)
{
	return pe->nid || pe->nfam || pe->ngiv || pe->bprec || pe->nad || pe->nphone;
}

bool
coord_match_usable(const json_t *who)
{
	struct person *pe = malloc(sizeof(*pe));
	bool ok;

	if (!pe)
		return false;
	person_of(NULL, who, pe);
	ok = usable(pe);
	free(pe);
	return ok;
}

/* ---- candidates -------------------------------------------------------------------------- */

/* v with the search escapes (\ | , $) added, in a. */
static const char *
escaped(struct arena *a, const char *v)
{
	size_t n = strnlen(v, 1024), o = 0;
	char *out = arena_alloc(a, 2 * n + 1);

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (v[i] == '\\' || v[i] == '|' || v[i] == ',' || v[i] == '$')
			out[o++] = '\\';
		out[o++] = v[i];
	}
	out[o] = '\0';
	return out;
}

struct searches {
	const char *kv[SEARCHES_MAX][4];
	size_t npairs[SEARCHES_MAX];
	size_t n;
};

static void
add_search(struct searches *s, const char *k1, const char *v1, const char *k2,
	   const char *v2)
{
	if (s->n == SEARCHES_MAX || !v1 || (k2 && !v2))
		return;
	s->kv[s->n][0] = k1;
	s->kv[s->n][1] = v1;
	s->kv[s->n][2] = k2;
	s->kv[s->n][3] = v2;
	s->npairs[s->n] = k2 ? 2 : 1;
	s->n++;
}

static void
plan_searches(struct arena *a, const json_t *who, const struct person *pe,
	      struct searches *s)
{
	const char *year = pe->bprec ? arena_printf(a, "%04d", pe->by) : NULL;
	json_t *t;
	size_t i;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < pe->nid && i < 5; i++)
		add_search(s, "identifier", arena_printf(a, "%s|%s", escaped(a, pe->id[i].system),
							 escaped(a, pe->id[i].value)), NULL, NULL);
	if (pe->bprec == 3) {
		add_search(s, "birthdate", arena_printf(a, "%04d-%02d-%02d", pe->by, pe->bm,
							pe->bd), NULL, NULL);
		if (pe->bd != pe->bm && pe->bd <= 12) {
			const char *sw = arena_printf(a, "%04d-%02d-%02d", pe->by, pe->bd, pe->bm);

			if (sw && !time_parse(sw, strlen(sw), TIME_DATE, &(struct time_range){0}))
				add_search(s, "birthdate", sw, NULL, NULL);
		}
	}
	/* each family name as written (folded), and its first part; with
	 * the birth year as well when there is one, so a common name's
	 * first 200 are the right ones */
	for (i = 0; i < pe->nfam && i < 3; i++) {
		const struct family *f = &pe->fam[i];

		add_search(s, "family", f->t[0].s, NULL, NULL);
		if (year)
			add_search(s, "family", f->t[0].s, "birthdate", year);
		if (f->n > 1)
			add_search(s, "family", f->t[f->n - 1].s, NULL, NULL);
	}
	json_array_foreach(json_object_get(who, "telecom"), i, t) {
		const char *sys = coord_str_at(t, "system"), *v = coord_str_at(t, "value");

		if (v && sys && (!strcmp(sys, "phone") || !strcmp(sys, "sms")) && strlen(v) < 64)
			add_search(s, "phone", escaped(a, v), NULL, NULL);
	}
	for (i = 0; i < pe->nphone; i++)
		add_search(s, "phone", pe->phone[i], NULL, NULL);
}

static uint32_t
hash_str(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* Drops repeats from v[0..*n), keeping the first of each in its place, so
 * the candidates of the first searches (identifiers) come first. */
static enum cw_err
unique(struct arena *a, const char **v, size_t *n)
{
	size_t cap = 16, k = 0;
	const char **set;

	while (cap < 2 * *n)
		cap *= 2;
	if (!(set = arena_zalloc(a, cap * sizeof(*set))))
		return CW_ENOMEM;
	for (size_t i = 0; i < *n; i++) {
		size_t h = hash_str(v[i]) & (cap - 1);

		while (set[h] && strcmp(set[h], v[i]))
			h = (h + 1) & (cap - 1);
		if (set[h])
			continue;
		set[h] = v[i];
		v[k++] = v[i];
	}
	*n = k;
	return CW_OK;
}

static int
cmp_match(const void *x, const void *y)
{
	const struct coord_match *m = x, *n = y;

	if (m->s.score != n->s.score)
		return m->s.score > n->s.score ? -1 : 1;
	return strcmp(m->id, n->id);
}

static void
decref_cb(void *p)
{
	json_decref(p);
}

/* Whether a held Patient may be matched at all. */
static bool
matchable(const json_t *p)
{
	json_t *l;
	size_t i;

	if (json_is_false(json_object_get(p, "active")))
		return false;
	json_array_foreach(json_object_get(p, "link"), i, l) {
		const char *type = coord_str_at(l, "type");

		if (type && !strcmp(type, "replaced-by"))
			return false;
	}
	return true;
}

enum cw_err
coord_match_patient(struct coord *co, struct store_tx *tx, struct arena *a,
		    const json_t *who, size_t max, struct coord_match **out,
		    size_t *n, struct diag *d)
{
	struct person *pe = NULL, *cand;
	struct arena *scratch = NULL;
	struct searches s;
	struct diag sd;
	const char **all = NULL, *self = coord_str_at(who, "id");
	struct coord_match *m = NULL;
	size_t nall = 0, nm = 0, ncertain = 0, skipped = 0;
	enum cw_err err = CW_OK;

	(void)co;
	*out = NULL;
	*n = 0;
	if (!(pe = malloc(2 * sizeof(*pe))) || !(scratch = arena_new(SCRATCH_MAX))) {
		err = CW_ENOMEM;
		goto out_free;
	}
	cand = pe + 1;
	person_of(scratch, who, pe);
	if (!usable(pe)) {
		err = diag_err(d, CW_EINVAL, "required", NULL,
			       "The Patient has nothing to match on: give an identifier "
			       "(system and value), a name, a birth date, a phone or an address");
		goto out_free;
	}
	plan_searches(a, who, pe, &s);
	all = arena_alloc(a, (s.n * COORD_MATCH_SEARCH_MAX + 1) * sizeof(*all));
	if (!all) {
		err = CW_ENOMEM;
		goto out_free;
	}
	/* a search careweave cannot make of the values sent (a query the
	 * parser refuses) is left out, not the request's error */
	diag_init(&sd, a);
	for (size_t i = 0; i < s.n; i++) {
		const char **ids;
		size_t k;

		err = coord_match(tx, a, "Patient", s.kv[i], s.npairs[i],
				  COORD_MATCH_SEARCH_MAX, &ids, &k, &sd);
		if (err == CW_EINVAL) {
			skipped++;
			err = CW_OK;
			continue;
		}
		if (err)
			goto out_free;
		memcpy(all + nall, ids, k * sizeof(*ids));
		nall += k;
	}
	if (skipped)
		log_info("match: %zu candidate searches left out", skipped);
	if ((err = unique(a, all, &nall)))
		goto out_free;
	if (!(m = arena_alloc(a, (nall + 1) * sizeof(*m)))) {
		err = CW_ENOMEM;
		goto out_free;
	}
	for (size_t i = 0, read = 0; i < nall && read < COORD_MATCH_CANDIDATES_MAX; i++) {
		struct store_res r;
		json_t *v = NULL;

		if (self && !strcmp(all[i], self))
			continue;
		read++;
		/* the text and its folding die with the next candidate */
		arena_reset(scratch);
		err = store_tx_read(tx, scratch, "Patient", all[i], &r);
		if (err == CW_ENOTFOUND || err == CW_EGONE) {
			err = CW_OK;
			continue;
		}
		if (err)
			goto out_free;
		if (fhir_parse_json(r.json.p, r.json.n, &v, NULL) || !v)
			continue;
		if (!matchable(v)) {
			json_decref(v);
			continue;
		}
		person_of(scratch, v, cand);
		if ((err = compare(a, pe, cand, &m[nm].s))) {
			json_decref(v);
			goto out_free;
		}
		if (m[nm].s.grade == COORD_GRADE_CERTAINLY_NOT) {
			json_decref(v);
			continue;
		}
		if (!arena_on_free(a, decref_cb, v)) {
			json_decref(v);
			err = CW_ENOMEM;
			goto out_free;
		}
		m[nm].id = all[i];
		m[nm].res = v;
		m[nm].ambiguous = false;
		m[nm].own_reasons = m[nm].s.reasons;
		ncertain += m[nm].s.grade == COORD_GRADE_CERTAIN;
		nm++;
	}
	if (ncertain > 1)
		for (size_t i = 0; i < nm; i++) {
			if (m[i].s.grade != COORD_GRADE_CERTAIN)
				continue;
			m[i].ambiguous = true;
			m[i].s.grade = COORD_GRADE_PROBABLE;
			m[i].s.score = round3(COORD_MATCH_CERTAIN - 0.01);
			m[i].s.reasons = arena_printf(a, "%s; more than one record matches "
						      "certainly: to review", m[i].s.reasons);
			if (!m[i].s.reasons) {
				err = CW_ENOMEM;
				goto out_free;
			}
		}
	if (nm)
		qsort(m, nm, sizeof(*m), cmp_match);
	*out = m;
	*n = nm < max ? nm : max;
out_free:
	arena_free(scratch);
	free(pe);
	return err;
}
