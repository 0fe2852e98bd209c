/* fhir/model.c: lookups over the generated FHIR R4 model.
 *
 * model_gen.c holds the tables (every R4 type and resource type); this file
 * adds what careweave chooses: the served resource types, listed once in
 * served.def and turned into an array here by an X-macro, so serving another
 * type is a one-line change. Every lookup is a bsearch over a table the
 * generator sorted with strcmp; nothing allocates. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir_int.h"

static const char *own_base;
static size_t own_base_n;

void
fhir_set_base_url(const char *base)
{
	own_base = base;
	own_base_n = base ? strlen(base) : 0;
	while (own_base_n && own_base[own_base_n - 1] == '/')
		own_base_n--;
}

size_t
fhir_own_base_len(const char *s)
{
	if (!own_base_n || strncmp(s, own_base, own_base_n) || s[own_base_n] != '/')
		return 0;
	return own_base_n + 1;
}

static const struct fhir_restype *const served[] = {
#define SERVED(T) &fhir_rt_##T,
#include "fhir/served.def"
#undef SERVED
};

#define NSERVED (sizeof(served) / sizeof(served[0]))

/* The served list sorted by name for findn, built once (pthread_once, so
 * worker threads may race to the first lookup). served.def order is kept
 * for iteration. */
static const struct fhir_restype *served_sorted[NSERVED];
static pthread_once_t served_once = PTHREAD_ONCE_INIT;

static int
cmp_rt(const void *a, const void *b)
{
	const struct fhir_restype *x = *(const struct fhir_restype *const *)a;
	const struct fhir_restype *y = *(const struct fhir_restype *const *)b;
	return strcmp(x->name, y->name);
}

static void
sort_served(void)
{
	memcpy(served_sorted, served, sizeof(served_sorted));
	qsort(served_sorted, NSERVED, sizeof(served_sorted[0]), cmp_rt);
}

/* Compares a (name, n) key with a NUL-terminated name as strcmp would. */
static int
cmpn(const char *key, size_t n, const char *name)
{
	size_t len = strlen(name);
	int c = memcmp(key, name, n < len ? n : len);

	if (c)
		return c;
	return n < len ? -1 : n > len ? 1 : 0;
}

const struct fhir_type *
fhir_type_find(const char *name)
{
	size_t lo = 0, hi = fhir_gen_ntypes;

	if (!name)
		return NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, fhir_gen_types[mid]->name);

		if (c == 0)
			return fhir_gen_types[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const struct fhir_restype *
fhir_restype_findn(const char *name, size_t n)
{
	size_t lo = 0, hi = NSERVED;

	if (!name)
		return NULL;
	pthread_once(&served_once, sort_served);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmpn(name, n, served_sorted[mid]->name);

		if (c == 0)
			return served_sorted[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const struct fhir_restype *
fhir_restype_find(const char *name)
{
	return name ? fhir_restype_findn(name, strlen(name)) : NULL;
}

size_t
fhir_restype_count(void)
{
	return NSERVED;
}

const struct fhir_restype *
fhir_restype_at(size_t i)
{
	return i < NSERVED ? served[i] : NULL;
}

const struct fhir_searchparam *
fhir_sp_find(const struct fhir_restype *rt, const char *code)
{
	size_t lo = 0, hi;

	if (!rt || !code)
		return NULL;
	hi = rt->nparams;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(code, rt->params[mid].code);

		if (c == 0)
			return &rt->params[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Finds the element whose name is the longest prefix of key that is also
 * an element, for choice keys ("valueQuantity" -> "value"). Elements are
 * sorted, so a plain bsearch on the full key lands next to its prefixes;
 * walking back from the insertion point visits candidates in descending
 * order, and a name that is a prefix of key sorts before key. */
const struct fhir_elem *
fhir_elem_find(const struct fhir_type *t, const char *key,
	       const struct fhir_elemtype **chosen)
{
	size_t lo = 0, hi, klen;

	if (chosen)
		*chosen = NULL;
	if (!t || !key || !t->nelems)
		return NULL;
	hi = t->nelems;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, t->elems[mid].name);

		if (c == 0) {
			const struct fhir_elem *e = &t->elems[mid];

			if (e->choice)
				return NULL; /* "value[x]" is never a bare key */
			if (chosen && e->ntypes)
				*chosen = &e->types[0];
			return e;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	/* lo is the insertion point; any prefix of key sorts before it. */
	klen = strlen(key);
	while (lo > 0) {
		const struct fhir_elem *e = &t->elems[--lo];
		size_t n = strlen(e->name);

		if (n >= klen || memcmp(e->name, key, n) != 0) {
			/* Names sharing fewer leading chars end the run. */
			if (e->name[0] != key[0])
				break;
			continue;
		}
		if (!e->choice)
			continue;
		for (uint8_t i = 0; i < e->ntypes; i++) {
			if (strcmp(key + n, e->types[i].suffix) == 0) {
				if (chosen)
					*chosen = &e->types[i];
				return e;
			}
		}
		return NULL;
	}
	return NULL;
}

static int
cmp_code(const void *k, const void *m)
{
	return strcmp((const char *)k, *(const char *const *)m);
}

bool
fhir_valueset_has(const struct fhir_valueset *vs, const char *code)
{
	if (!vs || !code)
		return false;
	return bsearch(code, vs->codes, vs->ncodes, sizeof(vs->codes[0]),
		       cmp_code) != NULL;
}
