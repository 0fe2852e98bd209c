/* fhir/json_parse.c: the JSON reader every request body goes through.
 *
 * It builds jansson values, as jansson's own reader would with
 * JSON_REJECT_DUPLICATES, with one difference FHIR needs: a number with a
 * fraction or an exponent becomes the string FHIR_DECIMAL_MARK + its
 * literal, so "7.20" keeps its precision (fhir/json.c writes it back as a
 * number). Ours rather than json_loadb because that reader takes bytes one
 * at a time through a stream and needed a first pass of ours to mark the
 * decimals: together they were 83% of a transaction Bundle's request
 * thread (callgrind), about 190 instructions per byte.
 *
 * What it accepts is RFC 8259 with jansson's rules: an object or array at
 * the top, valid UTF-8 (no overlong forms, no surrogates, nothing past
 * U+10FFFF), \u escapes with surrogate pairs, no \u0000, no control
 * characters in strings, integers that fit json_int_t, at most
 * JSON_MAX_DEPTH levels of nesting, no duplicate keys. It also refuses
 * U+E000 anywhere in a string, raw or escaped, so that every marked string
 * in memory is one of ours. fuzz/fuzz_json.c checks it against json_loadb
 * on arbitrary bytes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir_int.h"

#define MARK FHIR_DECIMAL_MARK
#define MARK_LEN (sizeof(MARK) - 1)
/* jansson's own limit (JSON_PARSER_MAX_DEPTH), so nothing it took is refused. */
#define JSON_MAX_DEPTH 2048
/* Bodies from this size on parse into a pool of their own (json_pool.c):
 * a Bundle's tree is built and freed in a few large blocks. */
#define POOL_MIN_BODY ((size_t)64 << 10)

struct jp {
	const char *start, *p, *end;
	int depth;
	const char *err;    /* what went wrong, for the client */
	const char *err_at; /* where */
	bool nomem;         /* the failure was out of memory */
	char *buf;          /* scratch for strings with escapes */
	size_t cap;
};

static json_t *parse_value(struct jp *j);

static json_t *
fail(struct jp *j, const char *at, const char *msg)
{
	if (!j->err) {
		j->err = msg;
		j->err_at = at;
	}
	return NULL;
}

static json_t *
nomem(struct jp *j, const char *at)
{
	j->nomem = true;
	return fail(j, at, "out of memory");
}

static void
skip_ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' ||
				 *j->p == '\r' || *j->p == '\t'))
		j->p++;
}

static bool
buf_reserve(struct jp *j, size_t n)
{
	char *nb;
	size_t cap = j->cap ? j->cap : 256;

	if (n <= j->cap)
		return true;
	while (cap < n)
		cap *= 2;
	nb = realloc(j->buf, cap);
	if (!nb)
		return false;
	j->buf = nb;
	j->cap = cap;
	return true;
}

static long
hex4(const char *p, const char *end)
{
	long v = 0;

	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		int h = hex_value(p[i]);

		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* Length of the valid UTF-8 sequence at p (2 to 4 bytes), 0 if invalid:
 * overlong forms, surrogates and code points past U+10FFFF are invalid. */
static size_t
utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0];
	size_t n;
	unsigned long cp;

	if (c >= 0xC2 && c <= 0xDF)
		n = 2, cp = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3, cp = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
		return 0;
	return n;
}

static size_t
utf8_put(char *o, unsigned long cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

static bool
is_mark_at(const char *p, const char *end)
{
	return end - p >= (ptrdiff_t)MARK_LEN && !memcmp(p, MARK, MARK_LEN);
}

/* Parses the string whose opening quote is at j->p. On success *out and
 * *len give its bytes: inside the input when it has no escapes, else in
 * j->buf (valid until the next string). */
static bool
parse_string(struct jp *j, const char **out, size_t *len)
{
	const char *s = ++j->p, *p = s, *end = j->end;
	size_t n;

	/* The common case: no escapes, ASCII or valid UTF-8. */
	for (;;) {
		if (p >= end) {
			fail(j, s - 1, "unterminated string");
			return false;
		}
		unsigned char c = (unsigned char)*p;

		if (c == '"') {
			*out = s;
			*len = (size_t)(p - s);
			j->p = p + 1;
			return true;
		}
		if (c == '\\')
			break;
		if (c < 0x20) {
			fail(j, p, "control character in a string");
			return false;
		}
		if (c < 0x80) {
			p++;
			continue;
		}
		if (!(n = utf8_len((const unsigned char *)p, (const unsigned char *)end))) {
			fail(j, p, "invalid UTF-8 in a string");
			return false;
		}
		if (is_mark_at(p, end)) {
			fail(j, p, "the character U+E000 (private use) is not accepted");
			return false;
		}
		p += n;
	}

	/* With escapes: copy into the scratch buffer. The output is never
	 * longer than the input (an escape of 6 bytes gives at most 3, a
	 * pair of 12 gives 4). */
	n = (size_t)(p - s);
	{
		const char *q = p;

		while (q < end && *q != '"')
			q += *q == '\\' && q + 1 < end ? 2 : 1;
		if (!buf_reserve(j, (size_t)(q - s) + 1)) {
			nomem(j, s);
			return false;
		}
	}
	memcpy(j->buf, s, n);
	while (p < end) {
		unsigned char c = (unsigned char)*p;
		size_t k;

		if (c == '"') {
			*out = j->buf;
			*len = n;
			j->p = p + 1;
			return true;
		}
		if (c < 0x20) {
			fail(j, p, "control character in a string");
			return false;
		}
		if (c >= 0x80) {
			if (!(k = utf8_len((const unsigned char *)p, (const unsigned char *)end))) {
				fail(j, p, "invalid UTF-8 in a string");
				return false;
			}
			if (is_mark_at(p, end)) {
				fail(j, p, "the character U+E000 (private use) is not accepted");
				return false;
			}
			memcpy(j->buf + n, p, k);
			n += k;
			p += k;
			continue;
		}
		if (c != '\\') {
			j->buf[n++] = (char)c;
			p++;
			continue;
		}
		if (p + 1 >= end) {
			fail(j, p, "unterminated string");
			return false;
		}
		switch (p[1]) {
		case '"': j->buf[n++] = '"'; break;
		case '\\': j->buf[n++] = '\\'; break;
		case '/': j->buf[n++] = '/'; break;
		case 'b': j->buf[n++] = '\b'; break;
		case 'f': j->buf[n++] = '\f'; break;
		case 'n': j->buf[n++] = '\n'; break;
		case 'r': j->buf[n++] = '\r'; break;
		case 't': j->buf[n++] = '\t'; break;
		case 'u': {
			long cp = hex4(p + 2, end), lo;

			if (cp < 0) {
				fail(j, p, "invalid \\u escape");
				return false;
			}
			if (cp >= 0xDC00 && cp <= 0xDFFF) {
				fail(j, p, "invalid Unicode \\u escape (a lone low surrogate)");
				return false;
			}
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				if (end - p < 12 || p[6] != '\\' || p[7] != 'u' ||
				    (lo = hex4(p + 8, end)) < 0xDC00 || lo > 0xDFFF) {
					fail(j, p, "invalid Unicode \\u escape (a high surrogate without its pair)");
					return false;
				}
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				p += 6;
			}
			if (cp == 0) {
				fail(j, p, "\\u0000 is not allowed in a string");
				return false;
			}
			if (cp == 0xE000) {
				fail(j, p, "the character U+E000 (private use) is not accepted");
				return false;
			}
			n += utf8_put(j->buf + n, (unsigned long)cp);
			p += 6;
			continue;
		}
		default:
			fail(j, p, "invalid escape in a string");
			return false;
		}
		p += 2;
	}
	fail(j, s - 1, "unterminated string");
	return false;
}

/* A number (RFC 8259 grammar). An integer becomes a jansson integer (and
 * must fit); one with a fraction or exponent becomes a marked string. */
static json_t *
parse_number(struct jp *j)
{
	const char *s = j->p, *p = s, *end = j->end;
	bool real = false;
	json_t *v;

	if (p < end && *p == '-')
		p++;
	if (p >= end || *p < '0' || *p > '9')
		return fail(j, s, "invalid number");
	if (*p == '0')
		p++;
	else
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	if (p < end && *p == '.') {
		const char *f = ++p;

		while (p < end && *p >= '0' && *p <= '9')
			p++;
		if (p == f)
			return fail(j, s, "invalid number");
		real = true;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		const char *x;

		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		x = p;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		if (p == x)
			return fail(j, s, "invalid number");
		real = true;
	}
	if (p < end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == '+' ||
			*p == '-' || *p == 'e' || *p == 'E'))
		return fail(j, s, "invalid number"); /* 01, 1.2.3 */
	if (real) {
		size_t n = (size_t)(p - s);
		char small[64], *t = n + MARK_LEN <= sizeof(small) ? small : malloc(n + MARK_LEN);

		if (!t)
			return nomem(j, s);
		memcpy(t, MARK, MARK_LEN);
		memcpy(t + MARK_LEN, s, n);
		v = json_stringn_nocheck(t, n + MARK_LEN);
		if (t != small)
			free(t);
	} else {
		char digits[32], *e;
		long long x;
		size_t n = (size_t)(p - s);

		if (n >= sizeof(digits))
			return fail(j, s, s[0] == '-' ? "too big negative integer" : "too big integer");
		memcpy(digits, s, n);
		digits[n] = '\0';
		errno = 0;
		x = strtoll(digits, &e, 10);
		if (errno == ERANGE || e != digits + n)
			return fail(j, s, s[0] == '-' ? "too big negative integer" : "too big integer");
		v = json_integer((json_int_t)x);
	}
	if (!v)
		return nomem(j, s);
	j->p = p;
	return v;
}

static json_t *
parse_object(struct jp *j)
{
	const char *open = j->p++, *key, *at;
	json_t *obj = json_object(), *v;
	size_t klen, before;

	if (!obj)
		return nomem(j, open);
	skip_ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return obj;
	}
	for (;;) {
		skip_ws(j);
		if (j->p >= j->end || *j->p != '"') {
			fail(j, j->p, "string or '}' expected");
			goto out_free;
		}
		at = j->p;
		if (!parse_string(j, &key, &klen))
			goto out_free;
		/* A key with escapes sits in j->buf, which the value's own
		 * strings reuse: keep a copy (the usual key points into the
		 * input and needs none). */
		char kbuf[256], *kheap = NULL;

		if (key == j->buf) {
			if (klen >= sizeof(kbuf) && !(kheap = malloc(klen))) {
				nomem(j, at);
				goto out_free;
			}
			key = memcpy(kheap ? kheap : kbuf, key, klen);
		}
		skip_ws(j);
		if (j->p >= j->end || *j->p != ':') {
			free(kheap);
			fail(j, j->p, "':' expected");
			goto out_free;
		}
		j->p++;
		v = parse_value(j);
		if (!v) {
			free(kheap);
			goto out_free;
		}
		before = json_object_size(obj);
		if (json_object_setn_new_nocheck(obj, key, klen, v) != 0) {
			free(kheap);
			nomem(j, at);
			goto out_free;
		}
		free(kheap);
		if (json_object_size(obj) == before) {
			fail(j, at, "duplicate object key");
			goto out_free;
		}
		skip_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			return obj;
		}
		fail(j, j->p, "',' or '}' expected");
		goto out_free;
	}
out_free:
	json_decref(obj);
	return NULL;
}

static json_t *
parse_array(struct jp *j)
{
	const char *open = j->p++;
	json_t *arr = json_array(), *v;

	if (!arr)
		return nomem(j, open);
	skip_ws(j);
	if (j->p < j->end && *j->p == ']') {
		j->p++;
		return arr;
	}
	for (;;) {
		v = parse_value(j);
		if (!v)
			goto out_free;
		if (json_array_append_new(arr, v) != 0) {
			nomem(j, j->p);
			goto out_free;
		}
		skip_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == ']') {
			j->p++;
			return arr;
		}
		fail(j, j->p, "',' or ']' expected");
		goto out_free;
	}
out_free:
	json_decref(arr);
	return NULL;
}

static json_t *
literal(struct jp *j, const char *word, size_t n, json_t *v)
{
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n))
		return fail(j, j->p, "invalid token");
	j->p += n;
	return v;
}

static json_t *
parse_value(struct jp *j)
{
	json_t *v = NULL;
	const char *s;
	size_t n;

	skip_ws(j);
	if (j->p >= j->end)
		return fail(j, j->p, "unexpected end of input");
	switch (*j->p) {
	case '{':
	case '[':
		if (++j->depth > JSON_MAX_DEPTH)
			return fail(j, j->p, "maximum nesting depth exceeded");
		v = *j->p == '{' ? parse_object(j) : parse_array(j);
		j->depth--;
		break;
	case '"':
		if (parse_string(j, &s, &n)) {
			v = json_stringn_nocheck(s, n);
			if (!v)
				nomem(j, s);
		}
		break;
	case 't':
		v = literal(j, "true", 4, json_true());
		break;
	case 'f':
		v = literal(j, "false", 5, json_false());
		break;
	case 'n':
		v = literal(j, "null", 4, json_null());
		break;
	default:
		if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
			v = parse_number(j);
		else
			fail(j, j->p, "invalid token");
	}
	return v;
}

/* Line and column (in characters) of at, both from 1. */
static void
position(const struct jp *j, const char *at, int *line, int *col)
{
	const char *p;

	*line = 1;
	*col = 1;
	for (p = j->start; p < at && p < j->end; p++) {
		if (*p == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)*p & 0xC0) != 0x80) {
			(*col)++;
		}
	}
}

enum cw_err
fhir_parse_json(const char *body, size_t n, json_t **out, struct diag *d)
{
	struct jp j = {.start = body, .p = body, .end = body + n};
	struct json_pool *pool = n >= POOL_MIN_BODY ? fhir_pool_begin() : NULL;
	json_t *v = NULL;
	int line, col;

	*out = NULL;
	skip_ws(&j);
	if (j.p < j.end && (*j.p == '{' || *j.p == '['))
		v = parse_value(&j);
	else
		fail(&j, j.p, "'[' or '{' expected");
	fhir_pool_end(pool);
	if (v) {
		skip_ws(&j);
		if (j.p < j.end) {
			fail(&j, j.p, "end of input expected");
			json_decref(v);
			v = NULL;
		}
	}
	free(j.buf);
	if (!v) {
		if (j.nomem)
			return CW_ENOMEM;
		if (d) {
			position(&j, j.err_at ? j.err_at : j.p, &line, &col);
			diag_err(d, CW_EINVAL, "structure", NULL,
				 "Invalid JSON at line %d, column %d: %s", line,
				 col, j.err ? j.err : "invalid input");
		}
		return CW_EINVAL;
	}
	*out = v;
	return CW_OK;
}
