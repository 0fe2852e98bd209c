/* fuzz/fuzz_patch.c: JSON Patch (src/fhir/patch.c) on any patch document.
 *
 * The input is parsed as careweave parses a request body; a document it
 * takes is applied to a copy of a Task with nested objects, arrays and a
 * kept decimal. Whatever the operations, the patch must not crash, leak or
 * read out of bounds, must say why when it refuses (an issue in d), and a
 * patch it applies must leave a tree that writes back as JSON that reads
 * again. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char task[] =
	"{\"resourceType\":\"Task\",\"id\":\"t1\",\"status\":\"requested\",\"intent\":\"order\","
	"\"for\":{\"reference\":\"Patient/p1\"},\"note\":[{\"text\":\"a\"},{\"text\":\"b\"}],"
	"\"input\":[{\"type\":{\"text\":\"km\"},\"valueDecimal\":12.50},"
	"{\"type\":{\"text\":\"seats\"},\"valueInteger\":1}],"
	"\"extension\":[{\"url\":\"https://example.org/a~b/c\",\"valueString\":\"x\"}]}";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_t *base;
	struct arena *a;
	struct diag d;
	json_t *ops = NULL, *doc, *back = NULL;
	enum cw_err err;

	if (!base && fhir_parse_json(task, sizeof(task) - 1, &base, NULL))
		abort();
	if (fhir_parse_json((const char *)data, size, &ops, NULL))
		return 0;
	a = arena_new(0);
	doc = json_deep_copy(base);
	if (!a || !doc)
		abort();
	diag_init(&d, a);
	err = fhir_json_patch(a, doc, ops, &d);
	if (err && !d.n)
		abort(); /* refused without saying why */
	if (!err) {
		size_t n;
		char *text = fhir_dump(doc, &n);

		if (!text || fhir_parse_json(text, n, &back, NULL))
			abort();
		free(text);
		json_decref(back);
	}
	json_decref(doc);
	json_decref(ops);
	arena_free(a);
	return 0;
}
