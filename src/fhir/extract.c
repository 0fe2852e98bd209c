/* fhir/extract.c: search index rows from a resource, and its compartment.
 *
 * Every supported search parameter of a served type comes with its
 * expression compiled into steps (fhir_sp_path). Extraction walks those
 * steps over the jansson value, guided by the generated type tables: an
 * array fans out, a choice element ("value") is found under its typed keys
 * ("valueQuantity"), as_type keeps one of them, where_* filters items.
 * Whatever the walk reaches is turned into rows by the parameter type and
 * the FHIR type of the reached value (a date param over a Period gives one
 * row with the start's low and the end's high bound).
 *
 * The walk is linear in the size of the resource per parameter path, and
 * duplicates are removed with one hash pass at the end, so ingest never
 * does quadratic work. Rows own their strings (arena copies), so they stay
 * valid after the jansson value is released.
 *
 * fhir_normalize lives here too because index rows and query values must be
 * normalized the same way; query.c calls it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir_int.h"

#define FHIRPATH_SYSTEM "http://hl7.org/fhirpath/System."

struct xctx {
	struct arena *a;
	const struct fhir_searchparam *sp;
	const struct fhir_sp_path *path;
	struct fhir_idx *rows;
	size_t n, cap;
	bool nomem;
};

/* ---- normalization --------------------------------------------------- */

/* U+00C0..U+017F folded to one ASCII letter; '.' keeps the character as is,
 * '?' is a two-letter fold handled in fold2(). */
static const char fold1[] =
	"aaaaaa?ceeeeiiii" "dnooooo.ouuuuy??" /* C0-DF */
	"aaaaaa?ceeeeiiii" "dnooooo.ouuuuy?y" /* E0-FF */
	"aaaaaaccccccccdd" "ddeeeeeeeeeegggg" /* 100-11F */
	"gggghhhhiiiiiiii" "ii??jjkkklllllll" /* 120-13F */
	"lllnnnnnnnnnoooo" "oo??rrrrrrssssss" /* 140-15F */
	"ssttttttuuuuuuuu" "uuuuwwyyyzzzzzzs"; /* 160-17F */

static const char *
fold2(unsigned cp)
{
	switch (cp) {
	case 0xC6: case 0xE6: return "ae";
	case 0xDE: case 0xFE: return "th";
	case 0xDF: return "ss";
	case 0x132: case 0x133: return "ij";
	case 0x152: case 0x153: return "oe";
	}
	return NULL;
}

static bool
is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	       c == '\v';
}

char *
fhir_normalize(struct arena *a, const char *s, size_t n)
{
	/* A fold never makes text longer: two UTF-8 bytes give at most two
	 * ASCII letters, whitespace runs shrink. */
	char *out = arena_alloc(a, n + 1);
	size_t i = 0, o = 0;
	bool pending_space = false;

	if (!out)
		return NULL;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		char buf[2];
		const char *rep = NULL;
		size_t rn = 0, used = 1;

		if (is_space(c)) {
			pending_space = o > 0;
			i++;
			continue;
		}
		if (c < 0x80) {
			buf[0] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
			rep = buf;
			rn = 1;
		} else if ((c == 0xC3 || c == 0xC4 || c == 0xC5) && i + 1 < n &&
			   ((unsigned char)s[i + 1] & 0xC0) == 0x80) {
			unsigned cp = ((c & 0x1Fu) << 6) |
				      ((unsigned char)s[i + 1] & 0x3Fu);
			char f = fold1[cp - 0xC0];

			used = 2;
			if (f == '?') {
				rep = fold2(cp);
				rn = 2;
			} else if (f != '.') {
				buf[0] = f;
				rep = buf;
				rn = 1;
			}
		} else if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] == 0xA0) {
			pending_space = o > 0; /* no-break space */
			i += 2;
			continue;
		}
		if (pending_space) {
			out[o++] = ' ';
			pending_space = false;
		}
		if (rep) {
			memcpy(out + o, rep, rn);
			o += rn;
		} else {
			out[o++] = (char)c; /* other UTF-8 bytes pass through */
			if (used == 2)
				out[o++] = s[i + 1];
		}
		i += used;
	}
	out[o] = '\0';
	return out;
}

/* ---- rows ------------------------------------------------------------ */

static struct fhir_idx *
row_new(struct xctx *x)
{
	struct fhir_idx *r;

	if (x->nomem)
		return NULL;
	if (x->n == x->cap) {
		size_t ncap = x->cap ? x->cap * 2 : 32;
		struct fhir_idx *nr = arena_realloc(x->a, x->rows,
						    x->cap * sizeof(*nr),
						    ncap * sizeof(*nr));

		if (!nr) {
			x->nomem = true;
			return NULL;
		}
		x->rows = nr;
		x->cap = ncap;
	}
	r = &x->rows[x->n++];
	memset(r, 0, sizeof(*r));
	r->sp = x->sp;
	return r;
}

static const char *
dup(struct xctx *x, const char *s)
{
	char *d;

	if (!s)
		return NULL;
	d = arena_strdup(x->a, s);
	if (!d)
		x->nomem = true;
	return d;
}

static const char *
norm(struct xctx *x, const char *s)
{
	char *d;

	if (!s)
		return NULL;
	d = fhir_normalize(x->a, s, strlen(s));
	if (!d)
		x->nomem = true;
	return d;
}

static const char *
str_of(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* ---- value conversions ----------------------------------------------- */

/* Half the unit of the last digit of v's shortest round-trip decimal form:
 * 1.5 -> 0.05, 100 -> 0.5, 1e3 -> 500. jansson keeps doubles, not the
 * text, so "1.50" is seen as 1.5. */
static double
half_precision(double v, bool is_int)
{
	char buf[40];
	const char *dot, *e;
	int dec = 0, exp10 = 0;

	if (is_int || !isfinite(v))
		return 0.5;
	for (int p = 1; p <= 17; p++) {
		snprintf(buf, sizeof(buf), "%.*g", p, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	e = strpbrk(buf, "eE");
	dot = strchr(buf, '.');
	if (dot)
		dec = (int)((e ? e : buf + strlen(buf)) - dot - 1);
	if (e)
		exp10 = atoi(e + 1);
	return 0.5 * pow(10.0, -(double)(dec - exp10));
}

/* Half the unit of the last written digit of a decimal literal: "7.20"
 * gives 0.005, "1e2" gives 0.5. */
static double
half_of_literal(const char *lit)
{
	const char *dot = strchr(lit, '.'), *e = strpbrk(lit, "eE");
	int dec = 0, exp10 = e ? atoi(e + 1) : 0;

	if (dot)
		dec = (int)((e ? e : lit + strlen(lit)) - dot - 1);
	return 0.5 * pow(10.0, -(double)(dec - exp10));
}

static bool
num_of(const json_t *j, double *v, double *half)
{
	const char *lit;

	if (json_is_integer(j)) {
		*v = (double)json_integer_value(j);
		*half = 0.5;
		return true;
	}
	if (!fhir_number(j, v, &lit))
		return false;
	*half = lit ? half_of_literal(lit) : half_precision(*v, false);
	return true;
}

static bool
is_type_name(const char *s, size_t n)
{
	if (n == 0 || n > 64 || s[0] < 'A' || s[0] > 'Z')
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')))
			return false;
	return true;
}

/* Splits a reference: "Type/id" and "Type/id/_history/v" are local; an
 * absolute URL (http:, urn:), a fragment (#x) or a conditional reference
 * (Type?query) is not. *type_only gets the type of an absolute URL ending
 * in Type/id[/_history/v] so ref_target can still be checked. */
static bool
ref_split(const char *s, const char **type, size_t *tn, const char **id,
	  size_t *idn, bool *absolute)
{
	const char *end = s + strlen(s), *p, *seg[4];
	size_t nseg = 0;

	*absolute = strchr(s, ':') != NULL;
	if (*s == '#' || strchr(s, '?'))
		return false;
	/* take the last four segments at most */
	p = end;
	while (p > s && nseg < 4) {
		const char *q = p;

		while (q > s && q[-1] != '/')
			q--;
		seg[nseg++] = q;
		if (q == s)
			break;
		p = q - 1;
	}
	/* seg[0] is the last segment. */
	if (nseg >= 4 && strncmp(seg[1], "_history/", 9) == 0) {
		*type = seg[3];
		*tn = (size_t)(seg[2] - seg[3] - 1);
		*id = seg[2];
		*idn = (size_t)(seg[1] - seg[2] - 1);
		if (!*absolute && seg[3] != s)
			return false;
	} else if (nseg >= 2) {
		*type = seg[1];
		*tn = (size_t)(seg[0] - seg[1] - 1);
		*id = seg[0];
		*idn = (size_t)(end - seg[0]);
		if (!*absolute && seg[1] != s)
			return false;
	} else {
		return false;
	}
	return is_type_name(*type, *tn) && id_is_valid(*id, *idn);
}

size_t
fhir_ref_type(const char *ref, const char **type)
{
	const char *id;
	size_t tn = 0, idn;
	bool absolute;

	*type = NULL;
	if (!ref || !ref_split(ref, type, &tn, &id, &idn, &absolute))
		return 0;
	return tn;
}

static void
emit_reference(struct xctx *x, const json_t *v)
{
	const char *ref = str_of(v, "reference"), *type = NULL, *id = NULL;
	const json_t *ident = json_object_get(v, "identifier");
	const char *target = x->path->ref_target;
	size_t tn = 0, idn = 0;
	bool absolute, local;
	struct fhir_idx *r;

	if (ident && json_is_object(ident) && str_of(ident, "value")) {
		/* For subject:identifier=system|value. */
		if (!target && (r = row_new(x))) {
			r->system = dup(x, str_of(ident, "system"));
			r->code = dup(x, str_of(ident, "value"));
		}
	}
	if (!ref || !*ref)
		return;
	local = ref_split(ref, &type, &tn, &id, &idn, &absolute);
	if (local && absolute && fhir_own_base_len(ref) &&
	    !strchr(ref + fhir_own_base_len(ref), ':'))
		absolute = false; /* our own base: a local reference */
	if (target && (!local || strlen(target) != tn ||
		       memcmp(target, type, tn) != 0))
		return;
	if (!(r = row_new(x)))
		return;
	r->raw = dup(x, ref);
	/* An absolute URL keeps its type but no id (it names no resource
	 * here): a parameter with rows_of finds its rows by that type. */
	if (local) {
		char *t = arena_strndup(x->a, type, tn);
		char *i = absolute ? NULL : arena_strndup(x->a, id, idn);

		if (!t || (!absolute && !i))
			x->nomem = true;
		r->ref_type = t;
		r->ref_id = i;
	}
}

static void
emit_date_str(struct xctx *x, const char *s)
{
	struct time_range tr;
	struct fhir_idx *r;

	if (!s || time_parse(s, strlen(s), TIME_DATETIME, &tr) != CW_OK)
		return;
	if ((r = row_new(x))) {
		r->lo = tr.lo;
		r->hi = tr.hi;
	}
}

static void
emit_period(struct xctx *x, const json_t *v)
{
	const char *start = str_of(v, "start"), *end = str_of(v, "end");
	struct time_range a, b;
	struct fhir_idx *r;
	bool has_a, has_b;

	has_a = start && time_parse(start, strlen(start), TIME_DATETIME, &a) == CW_OK;
	has_b = end && time_parse(end, strlen(end), TIME_DATETIME, &b) == CW_OK;
	if (!has_a && !has_b)
		return;
	if ((r = row_new(x))) {
		r->lo = has_a ? a.lo : INT64_MIN;
		r->hi = has_b ? b.hi : INT64_MAX;
	}
}

static void
emit_timing(struct xctx *x, const json_t *v)
{
	const json_t *ev = json_object_get(v, "event"), *rep, *e;
	size_t i;

	json_array_foreach(ev, i, e)
		emit_date_str(x, json_string_value(e));
	rep = json_object_get(v, "repeat");
	if (json_is_object(rep) && json_is_object(json_object_get(rep, "boundsPeriod")))
		emit_period(x, json_object_get(rep, "boundsPeriod"));
}

static void
emit_quantity(struct xctx *x, const json_t *v, bool money)
{
	double num, half;
	const char *code;
	struct fhir_idx *r;

	if (!num_of(json_object_get(v, "value"), &num, &half))
		return;
	if (!(r = row_new(x)))
		return;
	r->num = num;
	r->num_lo = num - half;
	r->num_hi = num + half;
	if (money) {
		code = str_of(v, "currency");
		r->system = code ? "urn:iso:std:iso:4217" : NULL;
	} else {
		code = str_of(v, "code");
		if (!code)
			code = str_of(v, "unit");
		r->system = dup(x, str_of(v, "system"));
	}
	r->code = dup(x, code);
}

static void
emit_token(struct xctx *x, const char *system, const char *code,
	   const char *text)
{
	struct fhir_idx *r;

	if (!code && !text)
		return;
	if ((r = row_new(x))) {
		r->system = dup(x, system);
		r->code = dup(x, code);
		r->text = norm(x, text);
	}
}

static void
emit_coding(struct xctx *x, const json_t *c, const char *fallback_text)
{
	const char *display = str_of(c, "display");

	if (!json_is_object(c))
		return;
	emit_token(x, str_of(c, "system"), str_of(c, "code"),
		   display ? display : fallback_text);
}

static void
emit_string(struct xctx *x, const char *s)
{
	struct fhir_idx *r;

	if (!s || !*s)
		return;
	if ((r = row_new(x))) {
		r->text = norm(x, s);
		r->raw = dup(x, s);
	}
}

/* Whether the rows from first on (one CodeableConcept's codings) already
 * answer every :text search its text would: :text matches a substring of
 * a row's text, so a text that is part of a coding's display needs no row
 * of its own. Most real concepts repeat their first display as text; the
 * row saved is one of the costliest kinds to write (a random insert into
 * the token value index). */
static bool
text_covered(struct xctx *x, size_t first, const char *text)
{
	const char *t = norm(x, text);

	if (!t)
		return false;
	for (size_t k = first; k < x->n; k++)
		if (x->rows[k].text && strstr(x->rows[k].text, t))
			return true;
	return false;
}

/* Each string of an element that may be one string or an array of them. */
static void
emit_strings(struct xctx *x, const json_t *v)
{
	size_t i;
	const json_t *e;

	if (json_is_string(v)) {
		emit_string(x, json_string_value(v));
		return;
	}
	json_array_foreach(v, i, e)
		emit_string(x, json_string_value(e));
}

/* When the walk could not type a value (an element the model does not
 * know), guess the datatype from the JSON shape. */
static const char *
guess_type(const json_t *v)
{
	if (fhir_is_decimal_literal(v) || json_is_real(v))
		return "decimal";
	if (json_is_string(v))
		return "string";
	if (json_is_boolean(v))
		return "boolean";
	if (json_is_integer(v))
		return "integer";
	if (!json_is_object(v))
		return NULL;
	if (json_object_get(v, "reference") || json_object_get(v, "identifier"))
		return "Reference";
	if (json_object_get(v, "coding"))
		return "CodeableConcept";
	if (json_object_get(v, "start") || json_object_get(v, "end"))
		return "Period";
	if (json_object_get(v, "family") || json_object_get(v, "given"))
		return "HumanName";
	if (json_object_get(v, "value") && json_object_get(v, "currency"))
		return "Money";
	if (fhir_number(json_object_get(v, "value"), NULL, NULL))
		return "Quantity";
	if (json_object_get(v, "code"))
		return "Coding";
	if (json_object_get(v, "value"))
		return "Identifier";
	return NULL;
}

static bool
is(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static bool
is_quantity_type(const char *t)
{
	return is(t, "Quantity") || is(t, "Age") || is(t, "Duration") ||
	       is(t, "SimpleQuantity") || is(t, "Distance") || is(t, "Count") ||
	       is(t, "MoneyQuantity");
}

static bool
is_uri_type(const char *t)
{
	return is(t, "uri") || is(t, "url") || is(t, "canonical") ||
	       is(t, "oid") || is(t, "uuid");
}

/* Turns one reached value of FHIR type t into rows for x->sp. */
static void
emit(struct xctx *x, const json_t *v, const char *t)
{
	const char *s = json_string_value(v);
	size_t i;
	const json_t *e;

	if (!t)
		t = guess_type(v);
	if (!t)
		return;
	if (strncmp(t, FHIRPATH_SYSTEM, sizeof(FHIRPATH_SYSTEM) - 1) == 0)
		t = json_is_string(v) ? "string" : guess_type(v);
	if (!t)
		return;

	switch (x->sp->type) {
	case SP_TOKEN:
		if (json_is_boolean(v)) {
			emit_token(x, NULL, json_is_true(v) ? "true" : "false", NULL);
		} else if (s) {
			if (*s)
				emit_token(x, NULL, s, NULL);
		} else if (json_is_integer(v)) {
			char buf[32];

			snprintf(buf, sizeof(buf), "%lld",
				 (long long)json_integer_value(v));
			emit_token(x, NULL, buf, NULL);
		} else if (is(t, "Coding")) {
			emit_coding(x, v, NULL);
		} else if (is(t, "CodeableConcept")) {
			const char *text = str_of(v, "text");
			size_t first = x->n;

			json_array_foreach(json_object_get(v, "coding"), i, e)
				emit_coding(x, e, NULL);
			if (text && *text && !text_covered(x, first, text))
				emit_token(x, NULL, NULL, text);
		} else if (is(t, "Identifier")) {
			const json_t *ty = json_object_get(v, "type");

			emit_token(x, str_of(v, "system"), str_of(v, "value"),
				   json_is_object(ty) ? str_of(ty, "text") : NULL);
		} else if (is(t, "ContactPoint")) {
			emit_token(x, str_of(v, "system"), str_of(v, "value"), NULL);
		}
		break;
	case SP_STRING:
		if (s) {
			emit_string(x, s);
		} else if (is(t, "HumanName")) {
			emit_strings(x, json_object_get(v, "family"));
			emit_strings(x, json_object_get(v, "given"));
			emit_strings(x, json_object_get(v, "prefix"));
			emit_strings(x, json_object_get(v, "suffix"));
			emit_strings(x, json_object_get(v, "text"));
		} else if (is(t, "Address")) {
			emit_strings(x, json_object_get(v, "line"));
			emit_strings(x, json_object_get(v, "city"));
			emit_strings(x, json_object_get(v, "district"));
			emit_strings(x, json_object_get(v, "state"));
			emit_strings(x, json_object_get(v, "postalCode"));
			emit_strings(x, json_object_get(v, "country"));
			emit_strings(x, json_object_get(v, "text"));
		} else if (is(t, "CodeableConcept")) {
			emit_strings(x, json_object_get(v, "text"));
		} else if (is(t, "Coding")) {
			emit_strings(x, json_object_get(v, "display"));
		}
		break;
	case SP_REFERENCE:
		if (json_is_object(v)) {
			emit_reference(x, v);
		} else if (s && *s && !x->path->ref_target) {
			struct fhir_idx *r = row_new(x); /* canonical, uri */

			if (r)
				r->raw = dup(x, s);
		}
		break;
	case SP_DATE:
		if (s)
			emit_date_str(x, s);
		else if (is(t, "Period"))
			emit_period(x, v);
		else if (is(t, "Timing"))
			emit_timing(x, v);
		break;
	case SP_NUMBER: {
		double num, half;
		const json_t *nv = json_is_object(v) ? json_object_get(v, "value") : v;
		struct fhir_idx *r;

		if (num_of(nv, &num, &half) && (r = row_new(x))) {
			r->num = num;
			r->num_lo = num - half;
			r->num_hi = num + half;
		}
		break;
	}
	case SP_QUANTITY:
		if (is(t, "Money"))
			emit_quantity(x, v, true);
		else if (json_is_object(v) && (is_quantity_type(t) ||
					       fhir_number(json_object_get(v, "value"), NULL, NULL)))
			emit_quantity(x, v, false);
		break;
	case SP_URI:
		if (s && *s && (is_uri_type(t) || is(t, "string") || is(t, "code"))) {
			struct fhir_idx *r = row_new(x);

			if (r)
				r->raw = dup(x, s);
		}
		break;
	case SP_COMPOSITE:
	case SP_SPECIAL:
		break;
	}
}

/* ---- the walk -------------------------------------------------------- */

static const struct fhir_elem *
elem_by_name(const struct fhir_type *t, const char *name)
{
	size_t lo = 0, hi;

	if (!t || !t->elems)
		return NULL;
	hi = t->nelems;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, t->elems[mid].name);

		if (c == 0)
			return &t->elems[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static bool
where_ok(const struct fhir_path_step *st, const json_t *item)
{
	const json_t *f;

	if (!st->where_field)
		return true;
	f = json_object_get(item, st->where_field);
	if (json_is_string(f))
		return st->where_value && strcmp(json_string_value(f), st->where_value) == 0;
	if (json_is_boolean(f))
		return st->where_value &&
		       strcmp(json_is_true(f) ? "true" : "false", st->where_value) == 0;
	return false;
}

static void walk(struct xctx *x, size_t step, const json_t *node,
		 const struct fhir_type *t, const char *tcode);

/* The value under one JSON key of a step: fan out arrays, filter, go on. */
static void
descend(struct xctx *x, size_t step, const json_t *child,
	const struct fhir_type *t, const char *tcode)
{
	const struct fhir_path_step *st = &x->path->steps[step];
	size_t i;
	const json_t *e;

	if (json_is_array(child)) {
		json_array_foreach(child, i, e)
			if (!json_is_array(e) && where_ok(st, e))
				walk(x, step + 1, e, t, tcode);
		return;
	}
	if (where_ok(st, child))
		walk(x, step + 1, child, t, tcode);
}

static void
walk(struct xctx *x, size_t step, const json_t *node,
     const struct fhir_type *t, const char *tcode)
{
	const struct fhir_path_step *st;
	const struct fhir_elem *el;
	char key[128];

	if (x->nomem)
		return;
	if (step == x->path->nsteps) {
		emit(x, node, tcode);
		return;
	}
	if (!json_is_object(node))
		return;
	st = &x->path->steps[step];
	el = elem_by_name(t, st->name);
	if (el && el->choice) {
		for (size_t i = 0; i < el->ntypes; i++) {
			const struct fhir_elemtype *et = &el->types[i];
			const json_t *child;

			if (st->as_type && strcmp(st->as_type, et->code) != 0)
				continue;
			if (snprintf(key, sizeof(key), "%s%s", el->name,
				     et->suffix) >= (int)sizeof(key))
				continue;
			child = json_object_get(node, key);
			if (child)
				descend(x, step, child, et->type, et->code);
		}
		return;
	}
	if (el) {
		const json_t *child = json_object_get(node, st->name);
		const struct fhir_elemtype *et = el->ntypes ? &el->types[0] : NULL;

		if (child)
			descend(x, step, child, et ? et->type : NULL,
				et ? et->code : NULL);
		return;
	}
	/* Not in the model (or no model): plain key, or name+Type for as_type. */
	if (st->as_type) {
		char up = st->as_type[0];

		if (up >= 'a' && up <= 'z')
			up = (char)(up - 32);
		if (snprintf(key, sizeof(key), "%s%c%s", st->name, up,
			     st->as_type + 1) < (int)sizeof(key)) {
			const json_t *child = json_object_get(node, key);

			if (child) {
				descend(x, step, child, fhir_type_find(st->as_type),
					st->as_type);
				return;
			}
		}
	}
	{
		const json_t *child = json_object_get(node, st->name);

		if (child)
			descend(x, step, child, NULL, st->as_type);
	}
}

/* ---- duplicates ------------------------------------------------------ */

static uint64_t
mix_str(uint64_t h, const char *s)
{
	if (!s)
		return (h ^ 0xff) * 0x100000001b3ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return (h ^ 0xfe) * 0x100000001b3ULL;
}

static uint64_t
mix_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

static uint64_t
row_hash(const struct fhir_idx *r)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	h = mix_bytes(h, &r->sp, sizeof(r->sp));
	h = mix_str(h, r->system);
	h = mix_str(h, r->code);
	h = mix_str(h, r->text);
	h = mix_str(h, r->raw);
	h = mix_str(h, r->ref_type);
	h = mix_str(h, r->ref_id);
	h = mix_bytes(h, &r->lo, sizeof(r->lo));
	h = mix_bytes(h, &r->hi, sizeof(r->hi));
	h = mix_bytes(h, &r->num, sizeof(r->num));
	h = mix_bytes(h, &r->num_lo, sizeof(r->num_lo));
	h = mix_bytes(h, &r->num_hi, sizeof(r->num_hi));
	return h;
}

static bool
str_same(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool
row_same(const struct fhir_idx *a, const struct fhir_idx *b)
{
	return a->sp == b->sp && str_same(a->system, b->system) &&
	       str_same(a->code, b->code) && str_same(a->text, b->text) &&
	       str_same(a->raw, b->raw) && str_same(a->ref_type, b->ref_type) &&
	       str_same(a->ref_id, b->ref_id) && a->lo == b->lo &&
	       a->hi == b->hi &&
	       memcmp(&a->num, &b->num, sizeof(a->num)) == 0 &&
	       memcmp(&a->num_lo, &b->num_lo, sizeof(a->num_lo)) == 0 &&
	       memcmp(&a->num_hi, &b->num_hi, sizeof(a->num_hi)) == 0;
}

/* Removes duplicates in place, keeping first occurrences in order. */
static enum cw_err
dedup(struct arena *a, struct fhir_idx *rows, size_t *n)
{
	size_t cap = 16, kept = 0;
	uint32_t *slots;

	if (*n < 2)
		return CW_OK;
	while (cap < *n * 2)
		cap *= 2;
	slots = arena_alloc(a, cap * sizeof(*slots));
	if (!slots)
		return CW_ENOMEM;
	memset(slots, 0, cap * sizeof(*slots)); /* 0 = empty, else index + 1 */
	for (size_t i = 0; i < *n; i++) {
		uint64_t h = row_hash(&rows[i]);
		size_t s = (size_t)h & (cap - 1);
		bool seen = false;

		while (slots[s]) {
			if (row_same(&rows[slots[s] - 1], &rows[i])) {
				seen = true;
				break;
			}
			s = (s + 1) & (cap - 1);
		}
		if (seen)
			continue;
		if (kept != i)
			rows[kept] = rows[i];
		slots[s] = (uint32_t)(kept + 1);
		kept++;
	}
	*n = kept;
	return CW_OK;
}

/* ---- entry points ---------------------------------------------------- */

enum cw_err
fhir_extract(struct arena *a, const json_t *res, const struct fhir_restype *rt,
	     struct fhir_idx **out, size_t *n)
{
	struct xctx x = {.a = a};
	enum cw_err err;

	*out = NULL;
	*n = 0;
	if (!json_is_object(res) || !rt)
		return CW_EINVAL;
	for (size_t i = 0; i < rt->nparams; i++) {
		const struct fhir_searchparam *sp = &rt->params[i];

		if (!sp->supported || sp->type == SP_COMPOSITE ||
		    sp->type == SP_SPECIAL)
			continue;
		x.sp = sp;
		for (size_t p = 0; p < sp->npaths; p++) {
			x.path = &sp->paths[p];
			if (x.path->nsteps == 0)
				continue;
			walk(&x, 0, res, rt->type, rt->name);
		}
		if (x.nomem)
			return CW_ENOMEM;
	}
	err = dedup(a, x.rows, &x.n);
	if (err)
		return err;
	*out = x.rows;
	*n = x.n;
	return CW_OK;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool
is_compartment_param(const struct fhir_restype *rt,
		     const struct fhir_searchparam *sp)
{
	for (size_t i = 0; i < rt->ncompartment; i++)
		if (strcmp(rt->compartment_params[i], sp->code) == 0)
			return true;
	return false;
}

enum cw_err
fhir_compartment(struct arena *a, const json_t *res,
		 const struct fhir_restype *rt, const struct fhir_idx *rows,
		 size_t nrows, const char ***ids, size_t *nids)
{
	const char **v;
	size_t k = 0, m = 0;

	*ids = NULL;
	*nids = 0;
	if (!rt)
		return CW_EINVAL;
	if (strcmp(rt->name, "Patient") == 0) {
		const char *id = json_string_value(json_object_get(res, "id"));

		if (!id)
			return CW_OK;
		v = arena_alloc(a, sizeof(*v));
		if (!v || !(v[0] = arena_strdup(a, id)))
			return CW_ENOMEM;
		*ids = v;
		*nids = 1;
		return CW_OK;
	}
	if (rt->ncompartment == 0 || nrows == 0)
		return CW_OK;
	v = arena_alloc(a, nrows * sizeof(*v));
	if (!v)
		return CW_ENOMEM;
	for (size_t i = 0; i < nrows; i++) {
		const struct fhir_idx *r = &rows[i];

		if (r->sp && r->sp->type == SP_REFERENCE && r->ref_id &&
		    r->ref_type && strcmp(r->ref_type, "Patient") == 0 &&
		    is_compartment_param(rt, r->sp))
			v[k++] = r->ref_id;
	}
	if (k == 0)
		return CW_OK;
	qsort(v, k, sizeof(*v), cmp_str);
	for (size_t i = 0; i < k; i++)
		if (m == 0 || strcmp(v[m - 1], v[i]) != 0)
			v[m++] = v[i];
	*ids = v;
	*nids = m;
	return CW_OK;
}
