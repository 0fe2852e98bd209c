/* fhir/subset.c: _elements and _summary applied to a resource for output.
 *
 * A subset is a copy that keeps resourceType, id, meta, every mandatory
 * element (min > 0, so the result still validates) and what was asked for,
 * and says so with the SUBSETTED tag in meta.tag, as the FHIR search page
 * requires.
 *
 * _summary=true keeps the top-level elements the official definitions mark
 * isSummary (carried in the generated model), whole; _summary=text keeps
 * text and the mandatory elements; _summary=data drops text. */
#include <string.h>

#include "fhir/fhir.h"

#define SUBSETTED_SYSTEM "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"

static bool
in_list(const char *name, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], name) == 0)
			return true;
	return false;
}

/* The element a JSON key belongs to: "valueQuantity" -> value,
 * "_birthDate" -> birthDate. NULL if the model does not know it. */
static const struct fhir_elem *
elem_of_key(const struct fhir_type *t, const char *key)
{
	if (key[0] == '_')
		key++;
	return fhir_elem_find(t, key, NULL);
}

static bool
keep_key(const struct fhir_type *t, const char *key, const struct fhir_query *q)
{
	const struct fhir_elem *el;
	const char *name;

	if (strcmp(key, "resourceType") == 0 || strcmp(key, "id") == 0 ||
	    strcmp(key, "meta") == 0)
		return true;
	el = elem_of_key(t, key);
	if (el && el->min > 0)
		return true;
	name = el ? el->name : (key[0] == '_' ? key + 1 : key);
	if (q->nelements)
		return in_list(name, q->elements, q->nelements);
	switch (q->summary) {
	case SUMMARY_TRUE:
		return el && el->summary;
	case SUMMARY_TEXT:
		return strcmp(name, "text") == 0;
	case SUMMARY_DATA:
		return strcmp(name, "text") != 0;
	default:
		return true;
	}
}

static bool
has_subsetted(const json_t *tags)
{
	size_t i;
	const json_t *t;

	json_array_foreach(tags, i, t) {
		const char *sys = json_string_value(json_object_get(t, "system"));
		const char *code = json_string_value(json_object_get(t, "code"));

		if (sys && code && strcmp(sys, SUBSETTED_SYSTEM) == 0 &&
		    strcmp(code, "SUBSETTED") == 0)
			return true;
	}
	return false;
}

/* Adds the SUBSETTED tag to out.meta (a copy, never the caller's meta). */
static bool
tag_subsetted(json_t *out)
{
	json_t *meta = json_object_get(out, "meta"), *tags;

	if (!json_is_object(meta)) {
		meta = json_object();
		if (!meta || json_object_set_new(out, "meta", meta))
			return false;
	}
	tags = json_object_get(meta, "tag");
	if (!json_is_array(tags)) {
		tags = json_array();
		if (!tags || json_object_set_new(meta, "tag", tags))
			return false;
	}
	if (has_subsetted(tags))
		return true;
	return json_array_append_new(tags,
		json_pack("{s:s,s:s}", "system", SUBSETTED_SYSTEM, "code",
			  "SUBSETTED")) == 0;
}

json_t *
fhir_subset(const json_t *res, const struct fhir_query *q)
{
	const struct fhir_type *t = NULL;
	const char *rtype, *key;
	json_t *out, *v;

	if (!json_is_object(res))
		return NULL;
	if (!q || (q->nelements == 0 && q->summary != SUMMARY_TRUE &&
		   q->summary != SUMMARY_TEXT && q->summary != SUMMARY_DATA))
		return json_deep_copy(res);
	rtype = json_string_value(json_object_get(res, "resourceType"));
	if (q->rt && rtype && strcmp(q->rt->name, rtype) == 0)
		t = q->rt->type;
	else if (rtype)
		t = fhir_type_find(rtype);

	out = json_object();
	if (!out)
		return NULL;
	json_object_foreach((json_t *)res, key, v) {
		json_t *copy;

		if (!keep_key(t, key, q))
			continue;
		copy = json_deep_copy(v);
		if (!copy || json_object_set_new(out, key, copy))
			goto out_free;
	}
	if (!tag_subsetted(out))
		goto out_free;
	return out;
out_free:
	json_decref(out);
	return NULL;
}
