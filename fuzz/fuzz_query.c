/* fuzz/fuzz_query.c: libFuzzer target for the search query parser.
 *
 * The input is read as a query string: '&' separates parameters, the first
 * '=' splits key from value (no percent-decoding: the parser sees decoded
 * text, so arbitrary bytes are exactly what it must survive). Each query is
 * parsed for a few resource types, strict and lenient, in a capped arena. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fhir/fhir.h"

#define MAX_KV 128

static const char *const types[] = {"Patient", "Observation", "Encounter",
				    "MedicationRequest"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena *a = arena_new(8u << 20);
	struct fhir_kv kv[MAX_KV];
	char *buf;
	size_t n = 0, i = 0;

	if (!a)
		return 0;
	buf = arena_alloc(a, size + 1);
	if (!buf)
		goto out_free_arena;
	memcpy(buf, data, size);
	buf[size] = '\0';
	/* key=value&key=value; an embedded NUL ends the query. */
	while (i <= size && n < MAX_KV) {
		char *start = buf + i, *amp = strchr(start, '&'), *eq;

		if (amp)
			*amp = '\0';
		eq = strchr(start, '=');
		if (eq)
			*eq = '\0';
		kv[n].key = start;
		kv[n].value = eq ? eq + 1 : "";
		n++;
		if (!amp)
			break;
		i = (size_t)(amp - buf) + 1;
	}
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		const struct fhir_restype *rt = fhir_restype_find(types[t]);

		for (int strict = 0; strict < 2; strict++) {
			struct fhir_query q;
			struct diag d;

			diag_init(&d, a);
			if (fhir_query_parse(a, rt, kv, n, strict, &q, &d) == CW_OK &&
			    q.nelements) {
				json_t *res = json_pack("{s:s,s:s,s:[{s:s}]}",
							"resourceType", types[t],
							"id", "x", "name", "family", "f");
				json_t *out = fhir_subset(res, &q);

				json_decref(out);
				json_decref(res);
			}
		}
	}
out_free_arena:
	arena_free(a);
	return 0;
}
