/* fuzz/fuzz_json.c: careweave's JSON reader against jansson's.
 *
 * fhir_parse_json must accept exactly what json_loadb accepts with
 * JSON_REJECT_DUPLICATES and build the same tree, but for the two ways it
 * is meant to differ: a number with a fraction or exponent becomes a marked
 * string of its literal (so it is equal when strtod of the literal is
 * jansson's real, and accepted where jansson's real overflows), and U+E000
 * is refused. Input with a NUL byte is only parsed, not compared: jansson
 * reads a NUL in its buffer as "fetch more" and so takes "[9\0,7]" as
 * [9,7], where we refuse it. Anything else is a bug in one of the two
 * readers, and this target aborts on it. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
same(const json_t *ours, const json_t *theirs)
{
	const char *lit, *key;
	json_t *v;
	size_t i;

	if (json_is_real(theirs))
		return fhir_number(ours, NULL, &lit) && lit &&
		       strtod(lit, NULL) == json_real_value(theirs);
	if (json_typeof(ours) != json_typeof(theirs))
		return false;
	switch (json_typeof(ours)) {
	case JSON_OBJECT:
		if (json_object_size(ours) != json_object_size(theirs))
			return false;
		json_object_foreach((json_t *)theirs, key, v)
			if (!same(json_object_get(ours, key), v))
				return false;
		return true;
	case JSON_ARRAY:
		if (json_array_size(ours) != json_array_size(theirs))
			return false;
		for (i = 0; i < json_array_size(ours); i++)
			if (!same(json_array_get(ours, i), json_array_get(theirs, i)))
				return false;
		return true;
	default:
		return json_equal(ours, theirs);
	}
}

/* Does the input hold U+E000, raw or as a \u escape (an escaped backslash
 * followed by "ue000" is not one)? */
static bool
has_mark(const uint8_t *data, size_t size)
{
	for (size_t i = 0; i < size; i++) {
		if (i + 2 < size && data[i] == 0xEE && data[i + 1] == 0x80 &&
		    data[i + 2] == 0x80)
			return true;
		if (data[i] != '\\' || i + 1 >= size)
			continue;
		if (data[i + 1] == 'u' && i + 5 < size &&
		    (data[i + 2] == 'e' || data[i + 2] == 'E') &&
		    data[i + 3] == '0' && data[i + 4] == '0' && data[i + 5] == '0')
			return true;
		i++; /* skip the escaped character */
	}
	return false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *ours = NULL, *theirs;
	json_error_t err;
	enum cw_err rc;

	rc = fhir_parse_json((const char *)data, size, &ours, NULL);
	theirs = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &err);
	if (memchr(data, '\0', size)) {
		/* parsed above for memory errors; jansson is no oracle here */
	} else if (has_mark(data, size)) {
		if (rc == CW_OK)
			abort(); /* U+E000 must be refused */
	} else if (rc == CW_OK && theirs) {
		if (!same(ours, theirs))
			abort();
	} else if (rc == CW_OK && !theirs) {
		if (!strstr(err.text, "real number overflow"))
			abort(); /* we took what jansson refused */
	} else if (rc != CW_OK && theirs) {
		abort(); /* we refused what jansson took */
	}
	json_decref(ours);
	json_decref(theirs);
	return 0;
}
