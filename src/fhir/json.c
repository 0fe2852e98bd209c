/* fhir/json.c: decimals as written, and the JSON writer.
 *
 * FHIR decimals keep the precision they were written with: "7.20" is not
 * "7.2", and 0.1 must not come back as 0.10000000000000001. jansson holds
 * every real as a double, so the reader (json_parse.c) turns each number
 * with a fraction or an exponent into a string made of FHIR_DECIMAL_MARK
 * and the literal; when careweave writes JSON (fhir_dump_to, here), those
 * strings become bare numbers again. Integers stay jansson integers
 * (exact).
 *
 * The mark is U+E000, a private-use character. Input that already holds it
 * is refused, so every marked string in memory is one of ours. Everything in
 * careweave that reads a decimal goes through fhir_number(); everything
 * that writes JSON goes through fhir_dump() or fhir_dump_to(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir_int.h"

#define MARK FHIR_DECIMAL_MARK
#define MARK_LEN (sizeof(MARK) - 1)

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

/* Writes v as compact JSON: what json_dumps(v, FHIR_JSON_FLAGS) gives, with
 * marked decimals written as the numbers they were, in one pass straight
 * into sb. Ours rather than jansson's dump because that dump hands its
 * output over in many small callback calls and formats every integer with
 * snprintf: it was more than a quarter of the writer's instructions on a
 * transaction Bundle. Object members come in jansson's order, which is
 * insertion order. */
static enum cw_err
dump_value(const json_t *v, struct sbuf *sb)
{
	enum cw_err err = CW_OK;
	const char *key, *str;
	json_t *m;
	size_t i, n;
	char num[32], *e;
	int k;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		err = sbuf_addch(sb, '{');
		i = 0;
		json_object_foreach((json_t *)v, key, m) {
			if (err)
				break;
			if (i++)
				err = sbuf_addch(sb, ',');
			if (!err)
				err = sbuf_addch(sb, '"');
			if (!err)
				err = sbuf_add_json_str(sb, key, strlen(key));
			if (!err)
				err = sbuf_add(sb, "\":", 2);
			if (!err)
				err = dump_value(m, sb);
		}
		return err ? err : sbuf_addch(sb, '}');
	case JSON_ARRAY:
		err = sbuf_addch(sb, '[');
		n = json_array_size(v);
		for (i = 0; i < n && !err; i++) {
			if (i)
				err = sbuf_addch(sb, ',');
			if (!err)
				err = dump_value(json_array_get(v, i), sb);
		}
		return err ? err : sbuf_addch(sb, ']');
	case JSON_STRING:
		str = json_string_value(v);
		n = json_string_length(v);
		if (n > MARK_LEN && !memcmp(str, MARK, MARK_LEN))
			return sbuf_add(sb, str + MARK_LEN, n - MARK_LEN);
		err = sbuf_addch(sb, '"');
		if (!err)
			err = sbuf_add_json_str(sb, str, n);
		return err ? err : sbuf_addch(sb, '"');
	case JSON_INTEGER:
		k = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
			     json_integer_value(v));
		return sbuf_add(sb, num, (size_t)k);
	case JSON_REAL:
		/* As jansson writes it: 15 significant digits, and always
		 * a fraction or exponent so it reads back as a real. */
		k = snprintf(num, sizeof(num), "%.15g", json_real_value(v));
		if (k <= 0 || (size_t)k >= sizeof(num))
			return CW_EINVAL;
		if (!strpbrk(num, ".eEni")) {
			num[k++] = '.';
			num[k++] = '0';
		} else if ((e = strchr(num, 'e'))) {
			/* "1e+20" -> "1e20", "1e-05" -> "1e-5" */
			char *w = e + 1, *r = w;

			if (*r == '+')
				r++;
			else if (*r == '-')
				w++, r++;
			while (*r == '0' && r[1])
				r++;
			memmove(w, r, strlen(r) + 1);
			k = (int)strlen(num);
		}
		return sbuf_add(sb, num, (size_t)k);
	case JSON_TRUE:
		return sbuf_add(sb, "true", 4);
	case JSON_FALSE:
		return sbuf_add(sb, "false", 5);
	case JSON_NULL:
		return sbuf_add(sb, "null", 4);
	}
	return CW_EINVAL;
}

enum cw_err
fhir_dump_to(const json_t *v, struct sbuf *sb)
{
	if (!v)
		return CW_EINVAL;
	return dump_value(v, sb);
}

char *
fhir_dump(const json_t *v, size_t *len)
{
	struct sbuf sb = SBUF_INIT(0);

	if (fhir_dump_to(v, &sb) != CW_OK) {
		sbuf_release(&sb);
		return NULL;
	}
	return sbuf_detach(&sb, len);
}
