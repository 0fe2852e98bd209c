/* fhir/fhir_int.h: declarations shared inside the fhir module only.
 *
 * The generated tables in model_gen.c are reached through these names; the
 * rest of careweave uses the lookups in fhir.h. */
#ifndef CW_FHIR_INT_H
#define CW_FHIR_INT_H

#include "fhir/fhir.h"

/* Every R4 type (resources, datatypes, primitives, backbone elements),
 * sorted by name (strcmp) for bsearch. */
extern const struct fhir_type *const fhir_gen_types[];
extern const size_t fhir_gen_ntypes;

/* One restype per R4 resource type exists in model_gen.c; the served ones
 * are declared here from served.def. */
#define SERVED(T) extern const struct fhir_restype fhir_rt_##T;
#include "fhir/served.def"
#undef SERVED

/* The length of "<base>/" when s starts with the server's own base URL
 * and a slash (fhir_set_base_url), else 0. */
size_t fhir_own_base_len(const char *s);

/* jansson's allocator (json_pool.c). While a pool is current on a thread,
 * jansson's allocations there bump in its 1 MiB blocks; elsewhere they go to
 * malloc. fhir_pool_begin makes a new pool current (NULL, and nothing
 * changes, if one already is or memory is short); fhir_pool_end stops it.
 * Values from a pool may be freed on any thread at any time: the pool's
 * blocks go back to a shared cache (at most 64 MiB) when its last value is
 * freed. */
struct json_pool;
struct json_pool *fhir_pool_begin(void);
void fhir_pool_end(struct json_pool *p);
/* Blocks held by pools with values still alive (for tests). */
size_t fhir_pool_blocks_held(void);

#endif
