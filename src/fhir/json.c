/* fhir/json.c: reading and writing FHIR JSON without losing decimals.
 *
 * FHIR decimals keep the precision they were written with: "7.20" is not
 * "7.2", and 0.1 must not come back as 0.10000000000000001. jansson holds
 * every real as a double, so before jansson parses a body, each number with
 * a fraction or an exponent is rewritten into a string made of
 * FHIR_DECIMAL_MARK and the literal; after jansson writes JSON, those strings
 * become bare numbers again. Integers stay jansson integers (exact).
 *
 * The mark is U+E000, a private-use character. Input that already holds it
 * is refused, so every marked string in memory is one of ours. Everything in
 * careweave that reads a decimal goes through fhir_number(); everything
 * that writes JSON goes through fhir_dump() or fhir_restore_decimals(). */
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir_int.h"

#define MARK FHIR_DECIMAL_MARK
#define MARK_LEN (sizeof(MARK) - 1)

/* Length of a JSON number token at p (RFC 8259 grammar), 0 if none; *real
 * tells whether it has a fraction or exponent. */
static size_t
number_len(const char *p, const char *end, bool *real)
{
	const char *s = p;

	*real = false;
	if (s < end && *s == '-')
		s++;
	if (s >= end || *s < '0' || *s > '9')
		return 0;
	if (*s == '0')
		s++;
	else
		while (s < end && *s >= '0' && *s <= '9')
			s++;
	if (s < end && *s == '.') {
		const char *f = ++s;

		while (s < end && *s >= '0' && *s <= '9')
			s++;
		if (s == f)
			return 0;
		*real = true;
	}
	if (s < end && (*s == 'e' || *s == 'E')) {
		const char *x;

		s++;
		if (s < end && (*s == '+' || *s == '-'))
			s++;
		x = s;
		while (s < end && *s >= '0' && *s <= '9')
			s++;
		if (s == x)
			return 0;
		*real = true;
	}
	return (size_t)(s - p);
}

static bool
is_mark_escape(const char *p, const char *end)
{
	/* \ue000 in any case */
	return end - p >= 6 && p[1] == 'u' && (p[2] == 'e' || p[2] == 'E') &&
	       p[3] == '0' && p[4] == '0' && p[5] == '0';
}

/* One tokenizer for both passes, so they cannot disagree: with out NULL it
 * only measures (returns the marked length, or SIZE_MAX when a string holds
 * the mark character); with out it writes the marked text. Strings are
 * copied as they are; numbers with a fraction or exponent are wrapped. */
static size_t
mark_pass(const char *body, size_t n, char *out, size_t *ndec)
{
	const char *p = body, *end = body + n;
	size_t len = 0;
	bool real;

	*ndec = 0;
	while (p < end) {
		if (*p == '"') {
			const char *s = p++;

			while (p < end && *p != '"') {
				if (*p == '\\') {
					if (is_mark_escape(p, end))
						return SIZE_MAX;
					p += end - p >= 2 ? 2 : 1;
				} else if ((unsigned char)*p == 0xEE && end - p >= 3 &&
					   !memcmp(p, MARK, MARK_LEN)) {
					return SIZE_MAX;
				} else {
					p++;
				}
			}
			if (p < end)
				p++;
			if (out)
				memcpy(out + len, s, (size_t)(p - s));
			len += (size_t)(p - s);
		} else if (*p == '-' || (*p >= '0' && *p <= '9')) {
			size_t k = number_len(p, end, &real);

			if (!k) {
				k = 1;
				real = false;
			}
			if (real) {
				if (out) {
					out[len] = '"';
					memcpy(out + len + 1, MARK, MARK_LEN);
				}
				len += 1 + MARK_LEN;
				(*ndec)++;
			}
			if (out)
				memcpy(out + len, p, k);
			len += k;
			if (real) {
				if (out)
					out[len] = '"';
				len++;
			}
			p += k;
		} else {
			if (out)
				out[len] = *p;
			len++;
			p++;
		}
	}
	return len;
}

enum cw_err
fhir_parse_json(const char *body, size_t n, json_t **out, struct diag *d)
{
	json_error_t err;
	size_t ndec, mn;
	char *marked = NULL;

	*out = NULL;
	mn = mark_pass(body, n, NULL, &ndec);
	if (mn == SIZE_MAX) {
		if (d)
			diag_err(d, CW_EINVAL, "structure", NULL,
				 "The character U+E000 (private use) is not accepted");
		return CW_EINVAL;
	}
	if (ndec) {
		marked = malloc(mn + 1);
		if (!marked)
			return CW_ENOMEM;
		mark_pass(body, n, marked, &ndec);
		marked[mn] = '\0';
		body = marked;
		n = mn;
	}
	*out = json_loadb(body, n, JSON_REJECT_DUPLICATES, &err);
	free(marked);
	if (!*out) {
		/* With marked decimals, columns after the first decimal on a
		 * line are a few characters off; the line is exact. */
		if (d)
			diag_err(d, CW_EINVAL, "structure", NULL,
				 "Invalid JSON at line %d, column %d: %s",
				 err.line, err.column, err.text);
		return CW_EINVAL;
	}
	return CW_OK;
}

bool
fhir_number(const json_t *v, double *out, const char **literal)
{
	const char *s;

	if (literal)
		*literal = NULL;
	if (json_is_integer(v)) {
		if (out)
			*out = (double)json_integer_value(v);
		return true;
	}
	if (json_is_real(v)) {
		if (out)
			*out = json_real_value(v);
		return true;
	}
	if (!json_is_string(v))
		return false;
	s = json_string_value(v);
	if (strncmp(s, MARK, MARK_LEN))
		return false;
	if (out)
		*out = strtod(s + MARK_LEN, NULL);
	if (literal)
		*literal = s + MARK_LEN;
	return true;
}

bool
fhir_is_decimal_literal(const json_t *v)
{
	return json_is_string(v) &&
	       !strncmp(json_string_value(v), MARK, MARK_LEN);
}

size_t
fhir_restore_decimals(char *text, size_t n)
{
	char *r = text, *w = text, *end = text + n, *hit;

	while ((hit = memmem(r, (size_t)(end - r), "\"" MARK, MARK_LEN + 1))) {
		char *lit = hit + 1 + MARK_LEN, *q = lit;

		while (q < end && *q != '"')
			q++;
		if (q >= end)
			break;
		memmove(w, r, (size_t)(hit - r));
		w += hit - r;
		memmove(w, lit, (size_t)(q - lit));
		w += q - lit;
		r = q + 1;
	}
	memmove(w, r, (size_t)(end - r));
	w += end - r;
	if (w < end)
		*w = '\0';
	return (size_t)(w - text);
}

char *
fhir_dump(const json_t *v, size_t *len)
{
	char *text = json_dumps(v, FHIR_JSON_FLAGS);
	size_t n;

	if (!text)
		return NULL;
	n = fhir_restore_decimals(text, strlen(text));
	if (len)
		*len = n;
	return text;
}
