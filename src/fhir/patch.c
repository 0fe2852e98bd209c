/* fhir/patch.c: JSON Patch (RFC 6902) over a parsed resource, for the FHIR
 * patch interaction (PATCH [type]/[id], application/json-patch+json).
 *
 * Paths are JSON Pointers (RFC 6901: "/name/0/given", "~1" for '/', "~0"
 * for '~', "-" after an array's last element). The operations run in
 * order on the document given; the caller patches a copy, so a failure
 * half way leaves nothing changed where it matters. The whole document
 * (path "") is not an operand: a resource keeps being the resource. */
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

#define PATCH_DEPTH_MAX 64  /* tokens in a path */

/* A pointer's tokens, unescaped, in the arena. */
struct ptr {
	char *tok[PATCH_DEPTH_MAX];
	size_t n;
};

static bool
ptr_parse(struct arena *a, const char *s, struct ptr *p)
{
	p->n = 0;
	if (*s != '/')
		return false;
	while (*s == '/') {
		const char *e = s + 1 + strcspn(s + 1, "/");
		char *t, *o;

		if (p->n == PATCH_DEPTH_MAX || !(t = arena_alloc(a, (size_t)(e - s))))
			return false;
		o = t;
		for (const char *c = s + 1; c < e; c++) {
			if (*c != '~') {
				*o++ = *c;
			} else if (c + 1 < e && (c[1] == '0' || c[1] == '1')) {
				*o++ = c[1] == '0' ? '~' : '/';
				c++;
			} else {
				return false; /* '~' not followed by 0 or 1 */
			}
		}
		*o = '\0';
		p->tok[p->n++] = t;
		s = e;
	}
	return true;
}

/* An array index token: digits without a leading zero. -1 when not one. */
static long
index_of(const char *t)
{
	char *end;
	long v;

	if (!*t || (t[0] == '0' && t[1]) || t[0] < '0' || t[0] > '9' || strlen(t) > 9)
		return -1;
	v = strtol(t, &end, 10);
	return *end ? -1 : v;
}

/* The value the first n tokens name, or NULL. */
static json_t *
walk(json_t *doc, const struct ptr *p, size_t n)
{
	json_t *v = doc;

	for (size_t i = 0; v && i < n; i++) {
		if (json_is_object(v)) {
			v = json_object_get(v, p->tok[i]);
		} else if (json_is_array(v)) {
			long k = index_of(p->tok[i]);

			v = k < 0 ? NULL : json_array_get(v, (size_t)k);
		} else {
			v = NULL;
		}
	}
	return v;
}

/* Numbers compare by value (1, 1.0 and a decimal kept as "1.00" are one
 * number: fhir_number), the rest as jansson does, members in any order. */
static bool
same(const json_t *x, const json_t *y)
{
	const char *k;
	json_t *v;
	size_t i;
	double nx, ny;

	if (fhir_number(x, &nx, NULL) && fhir_number(y, &ny, NULL))
		return nx == ny;
	if (json_typeof(x) != json_typeof(y))
		return false;
	if (json_is_object(x)) {
		if (json_object_size(x) != json_object_size(y))
			return false;
		json_object_foreach((json_t *)x, k, v) {
			const json_t *w = json_object_get(y, k);

			if (!w || !same(v, w))
				return false;
		}
		return true;
	}
	if (json_is_array(x)) {
		if (json_array_size(x) != json_array_size(y))
			return false;
		json_array_foreach(x, i, v)
			if (!same(v, json_array_get(y, i)))
				return false;
		return true;
	}
	return json_equal(x, y);
}

static enum cw_err
fail(struct diag *d, size_t i, const char *op, const char *path, const char *why)
{
	return diag_err(d, CW_EINVALID, "processing", NULL,
			"Patch operation %zu (%s %s): %s", i, op,
			strlen(path) < 200 ? path : "...", why);
}

/* Puts val (stolen) at p: an object member set, or an array element
 * inserted (add) or replaced (replace). */
static enum cw_err
put(json_t *doc, const struct ptr *p, json_t *val, bool insert, struct diag *d,
    size_t i, const char *op, const char *path)
{
	json_t *parent = walk(doc, p, p->n - 1);
	const char *last = p->tok[p->n - 1];

	if (json_is_object(parent)) {
		if (!insert && !json_object_get(parent, last)) {
			json_decref(val);
			return fail(d, i, op, path, "the path names nothing");
		}
		return json_object_set_new(parent, last, val) ? CW_ENOMEM : CW_OK;
	}
	if (json_is_array(parent)) {
		size_t size = json_array_size(parent);
		long k = !strcmp(last, "-") && insert ? (long)size : index_of(last);

		if (k < 0 || (size_t)k > size || (!insert && (size_t)k == size)) {
			json_decref(val);
			return fail(d, i, op, path, "the array has no such index");
		}
		if (insert)
			return json_array_insert_new(parent, (size_t)k, val) ? CW_ENOMEM : CW_OK;
		return json_array_set_new(parent, (size_t)k, val) ? CW_ENOMEM : CW_OK;
	}
	json_decref(val);
	return fail(d, i, op, path, "the path's parent is not an object or an array");
}

static enum cw_err
drop(json_t *doc, const struct ptr *p, struct diag *d, size_t i, const char *op,
     const char *path)
{
	json_t *parent = walk(doc, p, p->n - 1);
	const char *last = p->tok[p->n - 1];

	if (json_is_object(parent) && json_object_get(parent, last))
		return json_object_del(parent, last) ? CW_EINTERNAL : CW_OK;
	if (json_is_array(parent)) {
		long k = index_of(last);

		if (k >= 0 && (size_t)k < json_array_size(parent))
			return json_array_remove(parent, (size_t)k) ? CW_EINTERNAL : CW_OK;
	}
	return fail(d, i, op, path, "the path names nothing");
}

/* One operation. CW_EINVAL: the operation is malformed (the patch
 * document is wrong); CW_EINVALID: it does not apply to this resource. */
static enum cw_err
apply_one(struct arena *a, json_t *doc, const json_t *o, size_t i, struct diag *d)
{
	const char *op = json_string_value(json_object_get(o, "op"));
	const char *path = json_string_value(json_object_get(o, "path"));
	const char *from = json_string_value(json_object_get(o, "from"));
	json_t *value = json_object_get(o, "value"), *v;
	struct ptr p, f;
	bool needs_value, needs_from;

	if (!json_is_object(o) || !op || !path)
		return diag_err(d, CW_EINVAL, "structure", NULL,
				"Patch operation %zu needs \"op\" and \"path\" strings", i);
	needs_value = !strcmp(op, "add") || !strcmp(op, "replace") || !strcmp(op, "test");
	needs_from = !strcmp(op, "move") || !strcmp(op, "copy");
	if (!needs_value && !needs_from && strcmp(op, "remove"))
		return diag_err(d, CW_EINVAL, "value", NULL,
				"Patch operation %zu: \"%s\" is not a JSON Patch operation (add, "
				"remove, replace, move, copy, test)", i,
				strlen(op) < 32 ? op : "?");
	if ((needs_value && !value) || (needs_from && !from))
		return diag_err(d, CW_EINVAL, "required", NULL,
				"Patch operation %zu (%s) needs \"%s\"", i, op,
				needs_value ? "value" : "from");
	if (!*path || (from && needs_from && !*from))
		return fail(d, i, op, path, "the whole resource is not patched (path \"\")");
	if (!ptr_parse(a, path, &p) || (needs_from && !ptr_parse(a, from, &f)))
		return diag_err(d, CW_EINVAL, "value", NULL,
				"Patch operation %zu: not a JSON Pointer (\"/a/0/b\", ~0 and ~1 "
				"escapes)", i);
	if (!strcmp(op, "test")) {
		v = walk(doc, &p, p.n);
		return v && same(v, value) ? CW_OK :
		       fail(d, i, op, path, v ? "the value differs" : "the path names nothing");
	}
	if (!strcmp(op, "remove"))
		return drop(doc, &p, d, i, op, path);
	if (!strcmp(op, "add") || !strcmp(op, "replace"))
		return put(doc, &p, json_deep_copy(value), !strcmp(op, "add"), d, i, op, path);
	/* move, copy */
	if (!(v = walk(doc, &f, f.n)))
		return fail(d, i, op, from, "\"from\" names nothing");
	if (!strcmp(op, "move")) {
		size_t fl = strlen(from);

		if (!strncmp(path, from, fl) && path[fl] == '/')
			return fail(d, i, op, path, "a value cannot move into itself");
		if (!strcmp(path, from))
			return CW_OK;
		json_incref(v);
		if (drop(doc, &f, d, i, op, from)) {
			json_decref(v);
			return CW_EINVALID;
		}
		return put(doc, &p, v, true, d, i, op, path);
	}
	return put(doc, &p, json_deep_copy(v), true, d, i, op, path);
}

enum cw_err
fhir_json_patch(struct arena *a, json_t *doc, const json_t *ops, struct diag *d)
{
	const json_t *o;
	size_t i;
	enum cw_err err;

	if (!json_is_array(ops))
		return diag_err(d, CW_EINVAL, "structure", NULL,
				"A JSON Patch document is an array of operations");
	if (json_array_size(ops) > FHIR_PATCH_OPS_MAX)
		return diag_err(d, CW_ETOOBIG, "too-costly", NULL,
				"A patch may have at most %d operations", FHIR_PATCH_OPS_MAX);
	json_array_foreach(ops, i, o)
		if ((err = apply_one(a, doc, o, i, d)))
			return err;
	return CW_OK;
}
