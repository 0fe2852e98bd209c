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

#endif
