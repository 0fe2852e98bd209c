/* hl7v2/map_int.h: what the mappings of HL7 v2 messages to FHIR share
 * (map.c: data types; adt.c: ADT events; receive.c: the pipeline). Not for
 * use outside hl7v2/.
 *
 * A mapping reads a parsed message and says what it means for the record
 * as the entries of a FHIR transaction Bundle, which receive.c runs
 * through the one write path (api_bundle: validation, access, rules,
 * audit) together with the message's log row. Problems go into a list of
 * struct hl7_problem (never values of the message) that becomes the ERR
 * segments of the answer. */
#ifndef CW_HL7V2_MAP_INT_H
#define CW_HL7V2_MAP_INT_H

#include <jansson.h>

#include "hl7v2/hl7v2.h"
#include "coord/coord.h"
#include "store/store.h"

/* The identifier system careweave gives an HL7 v2 identifier whose
 * assigning authority has no URI or OID: this prefix and the authority's
 * namespace ("urn:careweave:hl7v2:id:GOOD HEALTH HOSPITAL:MR"). */
#define HL7_ID_SYSTEM_PREFIX "urn:careweave:hl7v2:id:"
#define HL7_V2_TABLE "http://terminology.hl7.org/CodeSystem/v2-"
#define HL7_MAP_PROBLEMS_MAX 32
/* Resources an A40 moves from the retired record in one message. */
#define HL7_MERGE_MOVE_MAX 5000

/* One message being mapped. */
struct hl7_map {
	struct arena *a;
	struct store *store;       /* read-only lookups (the existing Patient) */
	struct coord *coord;       /* the patient matcher's (may be NULL) */
	const struct hl7_msg *m;
	const struct hl7_header *h;
	int tz_minutes;            /* local time of the feed's DTMs without a zone */
	json_t *entries;           /* the transaction's entries (owned by a) */
	struct hl7_problem problems[HL7_MAP_PROBLEMS_MAX];
	size_t nproblems;
	bool failed;               /* a problem that stops the message (AE) */
	bool report_only;          /* the entries hold records made elsewhere
				      already (a merge moves them): the rules
				      record findings and never refuse */
};

/* Says a problem at segment (seg index, for its name and sequence) and
 * field; fatal: the message is not applied (AE). Always returns CW_EINVAL
 * when fatal, CW_OK otherwise, so a mapping can `return hl7_problem_at()`. */
enum cw_err hl7_map_problem(struct hl7_map *mp, long seg, unsigned field,
			    int code, bool fatal, const char *fmt, ...) CW_PRINTF(6, 7);

/* ---- data types (map.c) ----------------------------------------------- */

/* The FHIR identifier of a CX (PID-3, PV1-19, ...) repetition rep of field
 * at seg: {system, value, type}; NULL when it has no ID. */
json_t *hl7_map_cx(struct hl7_map *mp, long seg, unsigned field, unsigned rep);
/* An XPN (a person's name) as a FHIR HumanName; NULL when empty. */
json_t *hl7_map_xpn(struct hl7_map *mp, long seg, unsigned field, unsigned rep);
/* An XAD as a FHIR Address; NULL when empty. */
json_t *hl7_map_xad(struct hl7_map *mp, long seg, unsigned field, unsigned rep);
/* An XTN as a FHIR ContactPoint with use (home, work); NULL when empty. */
json_t *hl7_map_xtn(struct hl7_map *mp, long seg, unsigned field, unsigned rep,
		    const char *use);
/* A CWE/CE as a FHIR CodeableConcept (coding system from the name of the
 * coding system: I10 -> ICD-10-CM, SCT/SNM -> SNOMED CT, LN -> LOINC,
 * HL7nnnn -> the v2 table, else kept as a urn); NULL when empty. */
json_t *hl7_map_cwe(struct hl7_map *mp, long seg, unsigned field, unsigned rep);
/* A code of HL7 table `table` ("0004") as a CodeableConcept; NULL if empty. */
json_t *hl7_map_table(struct hl7_map *mp, long seg, unsigned field, const char *table);
/* A DTM as a FHIR dateTime (date: only the date part); NULL when absent,
 * and a non-fatal problem when it is not a valid DTM. */
const char *hl7_map_dtm(struct hl7_map *mp, long seg, unsigned field, bool date);
/* An XCN (a practitioner) as a Reference with its identifier and display
 * (no Practitioner is created); NULL when empty. */
json_t *hl7_map_xcn(struct hl7_map *mp, long seg, unsigned field, unsigned rep);

/* "system|value" as a search parameter value inside a URL (an entry's
 * conditional url, ifNoneExist): percent-encoded but for the separator. */
const char *hl7_map_token_query(struct arena *a, const char *system, const char *value);
/* s made fit to be part of a token value careweave makes (an identifier of
 * its own): '|', ',', '$' and '\\' become '-'. */
const char *hl7_map_key(struct arena *a, const char *s);

/* An HL7 number ("182", "-.5", "+7.20") as a FHIR decimal that keeps its
 * written precision (a marked literal, fhir.h); NULL when not a number. */
json_t *hl7_map_decimal(struct arena *a, const char *lit);

/* A transaction entry: method and url, with the resource (stolen) and
 * its If-None-Exist / If-Match (NULL: none). fullUrl "urn:uuid:..."
 * when full_url is set (for references between entries). */
enum cw_err hl7_map_entry(struct hl7_map *mp, const char *method, const char *url,
			  json_t *res, const char *if_none_exist, const char *if_match,
			  const char *full_url);

/* ---- what careweave holds (adt.c) ------------------------------------- */

struct hl7_found {
	json_t *res;     /* owned by the map's arena */
	const char *id;
	long version;
	int n;           /* how many matched (at most 2 looked at) */
};

/* The resources of type matching key=value (and key2=value2 when key2 is
 * set), newest first, as committed (the store's readers); f->n says
 * whether there were 0, 1 or more, f->res is the first. */
enum cw_err hl7_map_find(struct hl7_map *mp, const char *type, const char *key,
			 const char *value, const char *key2, const char *value2,
			 struct hl7_found *f, struct diag *d);
/* Adds the entry of the Patient the PID at pid names (found by identifier,
 * else the matcher, else new; see adt.c): *ref is how other entries name
 * it ("Patient/x" or a urn:uuid), *key its first identifier as a token. */
enum cw_err hl7_map_patient(struct hl7_map *mp, long pid, const char **ref,
			    const char **key, struct diag *d);

/* ---- the events ------------------------------------------------------- */

/* ADT (adt.c): A01, A02, A03, A04, A05, A06, A07, A08, A11, A12, A13. */
bool hl7_adt_handles(const char *trigger);
enum cw_err hl7_adt_map(struct hl7_map *mp, struct diag *d);

/* ORU^R01 (oru.c): results. */
enum cw_err hl7_oru_map(struct hl7_map *mp, struct diag *d);

#endif
