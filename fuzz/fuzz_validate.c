/* fuzz/fuzz_validate.c: libFuzzer target for request bodies.
 *
 * Runs what every FHIR write runs on untrusted bytes: fhir_parse_json, then
 * fhir_validate and fhir_outcome on whatever parsed, with a fresh arena and
 * diag per input so one input cannot hide a bug behind another's state. */
#include <stddef.h>
#include <stdint.h>

#include "fhir/fhir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena *a = arena_new(16 << 20);
	struct diag d;
	json_t *res = NULL, *oo;

	if (!a)
		return 0;
	diag_init(&d, a);
	if (fhir_parse_json((const char *)data, size, &res, &d) == CW_OK) {
		/* first as whatever it says it is, then as a Patient */
		fhir_validate(res, NULL, &d);
		fhir_validate(res, "Patient", &d);
		json_decref(res);
	}
	oo = fhir_outcome(&d);
	json_decref(oo);
	arena_free(a);
	return 0;
}
