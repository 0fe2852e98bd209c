/* coord/coord_int.h: what the rules of coord/ share (coord.c), and each
 * rule's entry points (medsafety.c, labs.c; reconcile.c, the reconciled
 * medication list, uses struct coord only). Not for use outside coord/.
 *
 * Every function here reads through the caller's store transaction and
 * allocates in the caller's arena; nothing outlives the rule evaluation. */
#ifndef CW_COORD_INT_H
#define CW_COORD_INT_H

#include "coord/coord.h"

#define COORD_FINDINGS_MAX 64
#define COORD_NOTIFY_MAX 32

struct coord {
	const struct kb *kb;
};

/* o[key] as a string, or NULL. */
const char *coord_str_at(const json_t *o, const char *key);
/* A resource of tx as JSON, owned by the arena; NULL if absent. */
json_t *coord_read_json(struct store_tx *tx, struct arena *a, const char *type,
			const char *id, struct diag *d);
/* The ids of type matching the search parameters kv_pairs (npairs key,
 * value pairs, flattened) in tx, at most max. */
enum cw_err coord_match(struct store_tx *tx, struct arena *a, const char *type,
			const char *const *kv_pairs, size_t npairs, size_t max,
			const char ***ids, size_t *n, struct diag *d);
/* A CodeableConcept's codings into out (at most max), its text into *text. */
size_t coord_codings_of(const json_t *cc, struct kb_coding *out, size_t max,
			const char **text);

/* The findings of one evaluation, at most COORD_FINDINGS_MAX. */
struct coord_findings {
	struct arena *a;
	struct coord_finding *f;
	size_t n;
};

/* A zeroed finding to fill, or NULL when full or out of memory. */
struct coord_finding *coord_add_finding(struct coord_findings *fs);
/* "rule:x:y" with x and y in a fixed order (the pair has one key whichever
 * came first), made a valid token search value. */
const char *coord_pair_key(struct arena *a, const char *rule, const char *x,
			   const char *y);
/* The references a list of source keys names ("onc-ni,cw-summary"), their
 * texts joined by "; " (a key the kb does not know stays as it is). */
const char *coord_source_words(const struct coord *co, struct arena *a,
			       const char *keys);

/* Whom a rule tells, besides the author of the change. */
enum coord_told {
	COORD_TELL_PCP = 1,        /* primary care physician, general practitioner */
	COORD_TELL_PHARMACIST = 2,
	COORD_TELL_COORDINATOR = 4, /* care coordinator, case manager */
};

/* Fills out->notify with author (a Practitioner or PractitionerRole
 * reference, or NULL) and the members of the patient's active care teams
 * whose role is one of told. */
enum cw_err coord_load_notify(struct store_tx *tx, struct arena *a,
			      const char *patient, const char *author,
			      unsigned told, struct coord_report *out,
			      struct diag *d);

/* medsafety.c: MedicationRequest and MedicationStatement. */
bool coord_med_current(const char *type, const json_t *res);
enum cw_err coord_med_check(struct coord *co, struct store_tx *tx,
			    struct arena *a, const char *type, const char *ref,
			    const json_t *res, struct coord_report *out,
			    struct diag *d);

/* medsafety.c: AllergyIntolerance (every current medication against it). */
bool coord_allergy_current(const json_t *res);
enum cw_err coord_allergy_check(struct coord *co, struct store_tx *tx,
				struct arena *a, const char *ref, const json_t *res,
				struct coord_report *out, struct diag *d);

/* labs.c: ServiceRequest. */
bool coord_lab_current(const json_t *res);
enum cw_err coord_lab_check(struct coord *co, struct store_tx *tx,
			    struct arena *a, const char *ref, const json_t *res,
			    struct coord_report *out, struct diag *d);

#endif
