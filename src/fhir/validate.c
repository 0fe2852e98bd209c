/* fhir/validate.c: parsing request bodies and checking resources against
 * the generated R4 model.
 *
 * One walk over the JSON tree, driven by the model: every object is checked
 * against its fhir_type (unknown keys, arrays exactly where max != 1,
 * choice types, min cardinality), every primitive against its JSON type and
 * format, required bindings on coded primitives, references for syntax,
 * contained resources recursively. Every problem becomes a diag issue; the
 * walk never stops at the first one.
 *
 * Ingest runs this on every write (target: 10,000 resources/s), so the walk
 * allocates nothing: the current location is a stack of (key, index)
 * segments and becomes a FHIRPath string only when an issue is reported.
 * Error codes used: "structure" (unknown element, wrong JSON type, array vs
 * scalar), "value" (bad format or range), "required" (missing element),
 * "code-invalid" (not in a required value set), "invalid" and
 * "not-supported" (resourceType). */
#include <stdio.h>
#include <string.h>

#include "fhir/fhir_int.h"

#define MAX_DEPTH 96     /* location segments; deeper input is rejected */
#define MAX_ELEMS 128    /* the largest R4 type has 54 elements */
#define LOC_MAX 512

struct seg {
	const char *key; /* NULL for an index-only segment */
	long idx;        /* -1 when the segment has no index */
};

struct vctx {
	struct diag *d;
	size_t nerr;
	bool too_deep;
	size_t depth;
	struct seg segs[MAX_DEPTH];
};

/* ---- locations and reporting ---------------------------------------- */

static bool
push(struct vctx *v, const char *key, long idx)
{
	if (v->depth >= MAX_DEPTH) {
		if (!v->too_deep) {
			v->too_deep = true;
			v->nerr++;
			diag_add(v->d, DIAG_ERROR, "structure", NULL,
				 "The resource is nested too deeply");
		}
		return false;
	}
	v->segs[v->depth].key = key;
	v->segs[v->depth].idx = idx;
	v->depth++;
	return true;
}

static void
pop(struct vctx *v)
{
	v->depth--;
}

/* Builds "Patient.name[1].given[0]" (plus an optional last key) into buf.
 * Only called when reporting; diag_add copies it into the arena. */
static const char *
loc_build(struct vctx *v, const char *extra, char *buf, size_t cap)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i <= v->depth; i++) {
		const char *key = i < v->depth ? v->segs[i].key : extra;
		long idx = i < v->depth ? v->segs[i].idx : -1;
		int w = 0;

		if (key)
			w = snprintf(buf + n, cap - n, "%s%s", n ? "." : "", key);
		if (w < 0 || (size_t)w >= cap - n)
			break;
		n += (size_t)w;
		if (idx >= 0) {
			w = snprintf(buf + n, cap - n, "[%ld]", idx);
			if (w < 0 || (size_t)w >= cap - n)
				break;
			n += (size_t)w;
		}
	}
	return buf;
}

static void report(struct vctx *v, const char *code, const char *extra,
		   const char *fmt, ...) CW_PRINTF(4, 5);

static void
report(struct vctx *v, const char *code, const char *extra, const char *fmt,
       ...)
{
	char msg[256], loc[LOC_MAX];
	va_list ap;

	v->nerr++;
	if (v->d->n >= DIAG_MAX_ISSUES || !v->d->a) {
		/* past the cap diag only counts: skip the formatting */
		diag_add(v->d, DIAG_ERROR, code, NULL, "%s", "");
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	diag_add(v->d, DIAG_ERROR, code, loc_build(v, extra, loc, sizeof(loc)),
		 "%s", msg);
}

/* ---- primitive formats ---------------------------------------------- */

static bool
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
has_ws(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (is_ws(s[i]) || s[i] == '\f' || s[i] == '\v')
			return true;
	return false;
}

/* code: [^\s]+(\s[^\s]+)* */
static bool
code_ok(const char *s, size_t n)
{
	if (!n || is_ws(s[0]) || is_ws(s[n - 1]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (is_ws(s[i]) && is_ws(s[i - 1]))
			return false;
	return true;
}

/* oid: urn:oid:[0-2](\.(0|[1-9][0-9]*))+ */
static bool
oid_ok(const char *s, size_t n)
{
	size_t i = 8;

	if (n < 11 || memcmp(s, "urn:oid:", 8) != 0)
		return false;
	if (s[i] < '0' || s[i] > '2')
		return false;
	i++;
	if (i >= n)
		return false;
	while (i < n) {
		size_t start;

		if (s[i] != '.')
			return false;
		start = ++i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == start || (s[start] == '0' && i - start > 1))
			return false;
	}
	return true;
}

static bool
is_hex_lower(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* uuid: urn:uuid:8-4-4-4-12 lower-case hex */
static bool
uuid_ok(const char *s, size_t n)
{
	if (n != 45 || memcmp(s, "urn:uuid:", 9) != 0)
		return false;
	s += 9;
	for (size_t i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!is_hex_lower(s[i])) {
			return false;
		}
	}
	return true;
}

/* base64Binary: (\s*([0-9a-zA-Z\+/=]){4}\s*)+ */
static bool
base64_ok(const char *s, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (is_ws(c))
			continue;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '='))
			return false;
		k++;
	}
	return k > 0 && k % 4 == 0;
}

static const char *
prim_name(enum fhir_prim p)
{
	switch (p) {
	case PRIM_BOOLEAN: return "boolean";
	case PRIM_INTEGER: return "integer";
	case PRIM_UNSIGNEDINT: return "unsignedInt";
	case PRIM_POSITIVEINT: return "positiveInt";
	case PRIM_DECIMAL: return "decimal";
	case PRIM_STRING: return "string";
	case PRIM_MARKDOWN: return "markdown";
	case PRIM_CODE: return "code";
	case PRIM_ID: return "id";
	case PRIM_URI: return "uri";
	case PRIM_URL: return "url";
	case PRIM_CANONICAL: return "canonical";
	case PRIM_OID: return "oid";
	case PRIM_UUID: return "uuid";
	case PRIM_BASE64BINARY: return "base64Binary";
	case PRIM_INSTANT: return "instant";
	case PRIM_DATE: return "date";
	case PRIM_DATETIME: return "dateTime";
	case PRIM_TIME: return "time";
	case PRIM_XHTML: return "xhtml";
	case PRIM_NONE: break;
	}
	return "primitive";
}

/* Checks a primitive value; the current location is the element itself. */
static void
check_primitive(struct vctx *v, const json_t *val, enum fhir_prim prim,
		const struct fhir_valueset *binding)
{
	struct time_range tr;
	const char *s;
	size_t n;
	bool ok = true;

	switch (prim) {
	case PRIM_BOOLEAN:
		if (!json_is_boolean(val))
			report(v, "structure", NULL, "Expected a JSON boolean");
		return;
	case PRIM_INTEGER:
	case PRIM_UNSIGNEDINT:
	case PRIM_POSITIVEINT: {
		json_int_t i, lo;

		if (!json_is_integer(val)) {
			report(v, "structure", NULL,
			       "Expected a JSON integer for %s", prim_name(prim));
			return;
		}
		i = json_integer_value(val);
		lo = prim == PRIM_INTEGER ? -2147483648LL
		     : prim == PRIM_UNSIGNEDINT ? 0 : 1;
		if (i < lo || i > 2147483647LL)
			report(v, "value", NULL, "The value is out of range for %s",
			       prim_name(prim));
		return;
	}
	case PRIM_DECIMAL:
		if (!fhir_number(val, NULL, NULL))
			report(v, "structure", NULL, "Expected a JSON number for decimal");
		return;
	default:
		break;
	}
	if (!json_is_string(val) || fhir_is_decimal_literal(val)) {
		report(v, "structure", NULL, "Expected a JSON string for %s",
		       prim_name(prim));
		return;
	}
	s = json_string_value(val);
	n = json_string_length(val);
	if (n == 0) {
		report(v, "value", NULL, "Strings must not be empty");
		return;
	}
	switch (prim) {
	case PRIM_CODE:
		ok = code_ok(s, n);
		break;
	case PRIM_ID:
		ok = id_is_valid(s, n);
		break;
	case PRIM_URI:
	case PRIM_URL:
	case PRIM_CANONICAL:
		ok = !has_ws(s, n);
		break;
	case PRIM_OID:
		ok = oid_ok(s, n);
		break;
	case PRIM_UUID:
		ok = uuid_ok(s, n);
		break;
	case PRIM_BASE64BINARY:
		ok = base64_ok(s, n);
		break;
	case PRIM_DATE:
		ok = time_parse(s, n, TIME_DATE, &tr) == CW_OK;
		break;
	case PRIM_DATETIME:
		ok = time_parse(s, n, TIME_DATETIME, &tr) == CW_OK;
		break;
	case PRIM_INSTANT:
		ok = time_parse(s, n, TIME_INSTANT, &tr) == CW_OK;
		break;
	case PRIM_TIME:
		ok = time_is_valid_time(s, n);
		break;
	case PRIM_XHTML:
		if (n < 4 || memcmp(s, "<div", 4) != 0) {
			report(v, "value", NULL,
			       "Narrative div must start with <div");
			return;
		}
		break;
	default:
		break;
	}
	if (!ok) {
		report(v, "value", NULL, "Not a valid %s", prim_name(prim));
		return;
	}
	if (binding && (prim == PRIM_CODE || prim == PRIM_STRING ||
			prim == PRIM_URI) && !fhir_valueset_has(binding, s))
		report(v, "code-invalid", NULL,
		       "The code '%.64s' is not in the required value set %s",
		       s, binding->url);
}

/* ---- references ----------------------------------------------------- */

static bool
is_resource_type(const char *s, size_t n)
{
	char name[64];
	const struct fhir_type *t;

	if (n == 0 || n >= sizeof(name))
		return false;
	memcpy(name, s, n);
	name[n] = '\0';
	t = fhir_type_find(name);
	return t && t->kind == FHIR_RESOURCE;
}

/* Type/id[/_history/vid], #local, urn:uuid:, urn:oid:, scheme://..., or a
 * conditional Type?query. The caller decides later whether a conditional
 * reference is acceptable where it appears. */
static bool
reference_ok(const char *s, size_t n)
{
	const char *slash, *q, *end = s + n;
	size_t i;

	if (n == 0 || has_ws(s, n))
		return false;
	if (s[0] == '#')
		return n == 1 || id_is_valid(s + 1, n - 1);
	if (n > 9 && memcmp(s, "urn:uuid:", 9) == 0)
		return true;
	if (n > 8 && memcmp(s, "urn:oid:", 8) == 0)
		return true;
	for (i = 0; i < n && ((s[i] >= 'a' && s[i] <= 'z') ||
			      (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '+' ||
			      s[i] == '-' || s[i] == '.'); i++)
		;
	if (i > 0 && i + 3 < n && memcmp(s + i, "://", 3) == 0)
		return true;
	q = memchr(s, '?', n);
	slash = memchr(s, '/', n);
	if (q && (!slash || q < slash))
		return is_resource_type(s, (size_t)(q - s)) && q + 1 < end;
	if (!slash || !is_resource_type(s, (size_t)(slash - s)))
		return false;
	s = slash + 1;
	slash = memchr(s, '/', (size_t)(end - s));
	if (!slash)
		return id_is_valid(s, (size_t)(end - s));
	if (!id_is_valid(s, (size_t)(slash - s)))
		return false;
	s = slash + 1;
	if ((size_t)(end - s) < 10 || memcmp(s, "_history/", 9) != 0)
		return false;
	return id_is_valid(s + 9, (size_t)(end - s - 9));
}

/* ---- the walk ------------------------------------------------------- */

static void check_object(struct vctx *v, const json_t *obj,
			 const struct fhir_type *t, bool is_resource);
static void check_resource(struct vctx *v, const json_t *res, bool contained);

/* A required binding on a Coding or CodeableConcept: the code (for a
 * CodeableConcept, some coding's code) must be in the value set. The
 * generated value sets hold codes without their systems, so the system is
 * not compared. */
static void
check_coded(struct vctx *v, const json_t *val, const char *code,
	    const struct fhir_valueset *vs)
{
	const json_t *codings, *c;
	size_t i;

	if (strcmp(code, "Coding") == 0) {
		const char *s = json_string_value(json_object_get(val, "code"));

		if (s && !fhir_valueset_has(vs, s))
			report(v, "code-invalid", "code",
			       "The code '%.64s' is not in the required value set %s",
			       s, vs->url);
		return;
	}
	if (strcmp(code, "CodeableConcept") != 0)
		return;
	codings = json_object_get(val, "coding");
	json_array_foreach(codings, i, c) {
		const char *s = json_string_value(json_object_get(c, "code"));

		if (s && fhir_valueset_has(vs, s))
			return;
	}
	report(v, "code-invalid", NULL,
	       "No coding is from the required value set %s", vs->url);
}

static void
check_value(struct vctx *v, const json_t *val, const struct fhir_elem *e,
	    const struct fhir_elemtype *et)
{
	const struct fhir_type *t = et->type;

	if (!t) { /* "Resource": contained, Bundle.entry.resource, ... */
		check_resource(v, val, strcmp(e->name, "contained") == 0);
		return;
	}
	if (t->kind == FHIR_PRIMITIVE) {
		check_primitive(v, val, t->prim, e->binding);
		return;
	}
	if (!json_is_object(val)) {
		report(v, "structure", NULL, "Expected a JSON object for %s",
		       et->code);
		return;
	}
	check_object(v, val, t, false);
	if (e->binding)
		check_coded(v, val, et->code, e->binding);
	if (strcmp(et->code, "Reference") == 0) {
		const json_t *r = json_object_get(val, "reference");

		if (json_is_string(r) &&
		    !reference_ok(json_string_value(r), json_string_length(r)))
			report(v, "value", "reference",
			       "Not a valid reference (Type/id, absolute URL, "
			       "#id, urn:uuid: or Type?query)");
	}
}

/* The companion of a primitive ("_birthDate"): an object with id and
 * extension, or for a repeating primitive an array of those and nulls
 * aligned with the values. */
static void
check_companion(struct vctx *v, const json_t *obj, const char *key,
		const json_t *val, const struct fhir_elem *e,
		const struct fhir_elemtype *et)
{
	const json_t *prim = json_object_get(obj, key + 1);
	size_t i;
	const json_t *item;

	if (e->max != 1) {
		if (!json_is_array(val)) {
			report(v, "structure", key, "Expected a JSON array");
			return;
		}
		if (json_is_array(prim) && json_array_size(prim) != json_array_size(val))
			report(v, "structure", key,
			       "The array must line up with %s", key + 1);
		json_array_foreach(val, i, item) {
			if (json_is_null(item))
				continue;
			if (!push(v, key, (long)i))
				return;
			if (!json_is_object(item))
				report(v, "structure", NULL, "Expected a JSON object or null");
			else
				check_object(v, item, et->type, false);
			pop(v);
		}
		return;
	}
	if (!push(v, key, -1))
		return;
	if (!json_is_object(val))
		report(v, "structure", NULL, "Expected a JSON object");
	else
		check_object(v, val, et->type, false);
	pop(v);
}

/* A null in a repeating primitive is allowed where the companion array has
 * an object at the same index. */
static bool
null_allowed(const json_t *obj, const char *key, size_t i)
{
	char name[128];
	const json_t *c;
	int w = snprintf(name, sizeof(name), "_%s", key);

	if (w < 0 || (size_t)w >= sizeof(name))
		return false;
	c = json_object_get(obj, name);
	return json_is_array(c) && json_is_object(json_array_get(c, i));
}

static void
check_element(struct vctx *v, const json_t *obj, const char *key,
	      const json_t *val, const struct fhir_elem *e,
	      const struct fhir_elemtype *et)
{
	bool prim = et->type && et->type->kind == FHIR_PRIMITIVE;
	size_t i;
	const json_t *item;

	if (e->max == 1) {
		if (!push(v, key, -1))
			return;
		if (json_is_array(val))
			report(v, "structure", NULL,
			       "The element repeats at most once: expected a "
			       "value, not an array");
		else if (json_is_null(val))
			report(v, "structure", NULL, "null is not allowed here");
		else
			check_value(v, val, e, et);
		pop(v);
		return;
	}
	if (!json_is_array(val)) {
		if (!push(v, key, -1))
			return;
		report(v, "structure", NULL,
		       "The element repeats: expected a JSON array");
		pop(v);
		return;
	}
	if (json_array_size(val) == 0) {
		report(v, "structure", key, "Arrays must not be empty");
		return;
	}
	if (e->max > 0 && json_array_size(val) > (size_t)e->max)
		report(v, "structure", key, "At most %d values are allowed",
		       (int)e->max);
	json_array_foreach(val, i, item) {
		if (!push(v, key, (long)i))
			return;
		if (json_is_null(item)) {
			if (!prim || !null_allowed(obj, key, i))
				report(v, "structure", NULL,
				       "null is not allowed here");
		} else {
			check_value(v, item, e, et);
		}
		pop(v);
	}
}

static void
check_object(struct vctx *v, const json_t *obj, const struct fhir_type *t,
	     bool is_resource)
{
	unsigned char seen[MAX_ELEMS];
	const char *key;
	const json_t *val;
	size_t nkeys = 0;

	if (t->nelems <= MAX_ELEMS)
		memset(seen, 0, t->nelems);
	json_object_foreach((json_t *)obj, key, val) {
		const struct fhir_elemtype *et = NULL;
		const struct fhir_elem *e;
		bool companion = key[0] == '_';
		size_t ei, ti;

		nkeys++;
		if (is_resource && strcmp(key, "resourceType") == 0)
			continue;
		e = fhir_elem_find(t, companion ? key + 1 : key, &et);
		if (!e || !et) {
			report(v, "structure", key, "Unknown element '%.64s'", key);
			continue;
		}
		if (companion && (!et->type || et->type->kind != FHIR_PRIMITIVE)) {
			report(v, "structure", key,
			       "Only primitive elements have a '_' companion");
			continue;
		}
		ei = (size_t)(e - t->elems);
		ti = (size_t)(et - e->types);
		if (ei < MAX_ELEMS && t->nelems <= MAX_ELEMS) {
			if (seen[ei] && seen[ei] != ti + 1)
				report(v, "structure", key,
				       "Only one type of %s[x] may be present",
				       e->name);
			seen[ei] = (unsigned char)(ti + 1);
		}
		if (companion)
			check_companion(v, obj, key, val, e, et);
		else
			check_element(v, obj, key, val, e, et);
	}
	if (nkeys == 0 && !is_resource) {
		report(v, "structure", NULL, "Objects must not be empty");
		return;
	}
	if (t->nelems > MAX_ELEMS)
		return;
	for (size_t i = 0; i < t->nelems; i++) {
		const struct fhir_elem *e = &t->elems[i];
		char name[80];

		if (e->min == 0 || seen[i])
			continue;
		snprintf(name, sizeof(name), "%s%s", e->name,
			 e->choice ? "[x]" : "");
		report(v, "required", name, "Missing required element %s",
		       name);
	}
}

static void
check_resource(struct vctx *v, const json_t *res, bool contained)
{
	const json_t *rt;
	const struct fhir_type *t;
	const char *name;

	if (!json_is_object(res)) {
		report(v, "structure", NULL, "Expected a resource (JSON object)");
		return;
	}
	rt = json_object_get(res, "resourceType");
	if (!rt) {
		report(v, "required", "resourceType", "Missing resourceType");
		return;
	}
	if (!json_is_string(rt)) {
		report(v, "structure", "resourceType",
		       "resourceType must be a JSON string");
		return;
	}
	name = json_string_value(rt);
	t = fhir_type_find(name);
	if (!t || t->kind != FHIR_RESOURCE ||
	    strcmp(name, "Resource") == 0 || strcmp(name, "DomainResource") == 0) {
		report(v, "invalid", "resourceType",
		       "Unknown resourceType '%.64s'", name);
		return;
	}
	if (contained) {
		const json_t *id = json_object_get(res, "id");

		if (!id)
			report(v, "required", "id",
			       "A contained resource must have an id");
		if (json_object_get(res, "contained"))
			report(v, "structure", "contained",
			       "A contained resource must not contain resources");
	}
	check_object(v, res, t, true);
}

enum cw_err
fhir_validate(const json_t *res, const char *expected_type, struct diag *d)
{
	struct vctx v = {.d = d};
	const json_t *rt;
	const char *name;

	if (!json_is_object(res)) {
		diag_add(d, DIAG_ERROR, "structure", NULL,
			 "A resource must be a JSON object");
		return CW_EINVALID;
	}
	rt = json_object_get(res, "resourceType");
	if (!rt) {
		diag_add(d, DIAG_ERROR, "required", "resourceType",
			 "Missing resourceType");
		return CW_EINVALID;
	}
	if (!json_is_string(rt)) {
		diag_add(d, DIAG_ERROR, "structure", "resourceType",
			 "resourceType must be a JSON string");
		return CW_EINVALID;
	}
	name = json_string_value(rt);
	if (!fhir_restype_find(name)) {
		const struct fhir_type *t = fhir_type_find(name);

		if (t && t->kind == FHIR_RESOURCE && strcmp(name, "Resource") &&
		    strcmp(name, "DomainResource"))
			diag_add(d, DIAG_ERROR, "not-supported", "resourceType",
				 "Resource type '%s' is not served here", name);
		else
			diag_add(d, DIAG_ERROR, "invalid", "resourceType",
				 "Unknown resourceType '%.64s'", name);
		return CW_EINVALID;
	}
	if (expected_type && strcmp(name, expected_type) != 0) {
		diag_add(d, DIAG_ERROR, "invalid", "resourceType",
			 "resourceType '%s' does not match the expected type '%s'",
			 name, expected_type);
		return CW_EINVALID;
	}
	v.segs[0].key = name;
	v.segs[0].idx = -1;
	v.depth = 1;
	check_object(&v, res, fhir_type_find(name), true);
	return v.nerr ? CW_EINVALID : CW_OK;
}

