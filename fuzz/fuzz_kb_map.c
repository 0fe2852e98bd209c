/* fuzz/fuzz_kb_map.c: libFuzzer target for the knowledge base's text
 * mapping (kb/map.c), which reads medication and allergy text from any
 * client on every write.
 *
 * The kb is data/kb, loaded once (the fuzzer runs from the repository
 * root). The input, up to its first NUL, is mapped as a medication and as
 * an allergy, both as text and as a coding's display (with the input's
 * first line as an RxNorm code); the results are checked for what the API
 * promises (no refs means unchecked, refs in range, each once) and fed to
 * the interaction and allergy lookups and the name lookups. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kb/kb.h"

static struct kb *kb;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	kb = kb_load("data/kb", NULL, NULL, NULL);
	if (!kb)
		abort(); /* run from the repository root */
	return 0;
}

static void
check(const struct kb_mapping *m)
{
	struct kb_counts n;

	kb_count(kb, &n);
	if ((m->n == 0) != (m->status == KB_UNCHECKED) || m->n > KB_MAP_MAX)
		abort();
	if (m->truncated && m->status == KB_MAPPED)
		abort();
	for (unsigned i = 0; i < m->n; i++) {
		const struct kb_ref *r = &m->ref[i];

		if (r->kind == KB_REF_DRUG ? r->id >= n.drugs
		    : r->kind == KB_REF_CLASS ? r->id >= n.classes : 1)
			abort();
		for (unsigned j = 0; j < i; j++) {
			if (m->ref[j].kind == r->kind && m->ref[j].id == r->id)
				abort();
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), code[32];
	struct kb_mapping med, alg, med2;
	struct kb_ddi_hit h[64];
	struct kb_allergy_hit ah[64];
	struct kb_coding c;
	size_t k;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	k = strcspn(s, "\n");
	if (k >= sizeof(code))
		k = sizeof(code) - 1;
	memcpy(code, s, k);
	code[k] = '\0';
	c = (struct kb_coding){KB_RXNORM, code, s};
	kb_map_medication(kb, NULL, 0, s, &med);
	check(&med);
	kb_map_medication(kb, &c, 1, s, &med2);
	check(&med2);
	kb_map_allergy(kb, &c, 1, s, &alg);
	check(&alg);
	if (kb_interactions(kb, &med, &med2, h, 64) > 64 * 64)
		abort();
	if (kb_allergy_check(kb, &alg, &med2, ah, 64) > KB_MAP_MAX)
		abort();
	(void)kb_find_drug(kb, s);
	(void)kb_find_class(kb, s);
	(void)kb_find_lab(kb, s);
	(void)kb_find_product(kb, code);
	free(s);
	return 0;
}
