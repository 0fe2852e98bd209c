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
/* The current medication requests (and, apart, statements) and allergies
 * of a patient the medication rules read when they make what they keep of
 * the patient (facts.c), or take from a caller (CDS Hooks prefetch); a
 * patient with more is checked against the first ones, said in the log
 * (ids only). */
#define COORD_MEDS_MAX 200
#define COORD_ALLERGIES_MAX 100

struct coord {
	const struct kb *kb;
	int64_t *holidays; /* day numbers (days since 1970-01-01 of the
			      date), sorted, no repeats: coord_holidays_parse */
	size_t nholidays;
	bool local_days;   /* business days are the days of the process's
			      time zone (coord_set_timezone), not UTC's */
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

/* The words of a CodeableConcept naming a medication or allergen: its
 * text, else the first coding's display, else its code. */
const char *coord_concept_words(const json_t *cc);
/* The patient a record of type is about ("Patient/x": an allergy's or a
 * DetectedIssue's patient, else the subject), or NULL. */
const char *coord_patient_of(const char *type, const json_t *res);

/* ---- what the workflow rules share (transitions.c, results.c,
 * measures.c; in coord.c) ------------------------------------------------ */

/* An event older than this gives no work (transitions.c, results.c): the
 * reference's windows are 30 days at most, and a record loaded with years
 * of history must not give the team a task per old stay or result. */
#define COORD_RECENT_DAYS 30

/* ms of a FHIR dateTime (the start of the period it names), or -1. */
int64_t coord_ms_of(const char *datetime);
/* Whether ms is at most COORD_RECENT_DAYS before now: the wall clock decides
 * only whether an event is still one to act on, never the work's dates. */
bool coord_recent(int64_t ms);
/* ms plus n business days: Monday to Friday, less co's holidays (co may
 * be NULL: weekends only). Days are the clinic's (coord_set_timezone), or
 * UTC's when none is set. */
int64_t coord_business_days(const struct coord *co, int64_t ms, int n);
/* Adds res (stolen; NULL: out of memory) to r->writes, a create when id is
 * NULL, else an update of id. CW_ETOOBIG past COORD_WRITES_MAX. */
enum cw_err coord_add_write(struct coord_report *r, struct arena *a, json_t *res,
			    const char *id);

/* ---- what the rules keep of a patient (facts.c) ----------------------- */

/* The kinds of record kept. */
enum {
	COORD_FACT_REQUEST = 'm',   /* a current MedicationRequest */
	COORD_FACT_STATEMENT = 's', /* a current MedicationStatement */
	COORD_FACT_ALLERGY = 'a',   /* a current AllergyIntolerance */
	COORD_FACT_FINDING = 'd',   /* a final DetectedIssue careweave raised */
};

/* What the rules know of one record. */
struct coord_fact {
	char kind;
	const char *type;   /* "MedicationRequest", ... */
	const char *ref;    /* "MedicationRequest/x" */
	const char *by;     /* a medication's prescriber or reporter, or NULL */
	const char *words;  /* what it calls the medication or allergen */
	const char *medref; /* "Medication/x" not yet mapped (coord_fact_resolve),
			       or NULL */
	const char *key;    /* a finding's identifier value */
	struct kb_mapping map;
};

/* The records kept of one patient, in no order. */
struct coord_facts {
	const char *patient; /* "Patient/x" */
	struct coord_fact *e;
	size_t n, cap;
};

/* What the rules know of res (of type, at ref), into out, and whether it
 * is a record they keep (current). A medication that names a Medication resource
 * is mapped through tx (or given, when tx is NULL), unless keep_medref:
 * then out->medref names it. */
bool coord_fact_of(struct coord *co, struct store_tx *tx, struct arena *a,
		   const char *type, const char *ref, const json_t *res,
		   const struct coord_given *given, bool keep_medref,
		   struct coord_fact *out, struct diag *d);
/* Maps the Medication f->medref names, read in tx. */
enum cw_err coord_fact_resolve(struct coord *co, struct store_tx *tx,
			       struct arena *a, struct coord_fact *f,
			       struct diag *d);
/* The kept records of patient as tx sees them (made from the record when
 * there is no row to read; then kept). */
enum cw_err coord_facts_load(struct coord *co, struct store_tx *tx,
			     struct arena *a, const char *patient,
			     struct coord_facts *out, struct diag *d);
/* Whether a final finding with key is on f's patient's record. */
bool coord_facts_raised(const struct coord_facts *f, const char *key);

/* The findings of one evaluation, at most COORD_FINDINGS_MAX. */
struct coord_findings {
	struct arena *a;
	struct coord_finding *f;
	size_t n;
	/* when set (a write's check, coord_report.new_only): findings already
	 * on this record are left out, words and all */
	const struct coord_facts *known;
};

/* A zeroed finding to fill, or NULL when full or out of memory. */
struct coord_finding *coord_add_finding(struct coord_findings *fs);
/* Whether the finding key is to be left out (fs->known has it raised). */
bool coord_finding_known(const struct coord_findings *fs, const char *key);
/* "rule:what:x:y" ("rule:x:y" when what is NULL) with x and y in a fixed
 * order (the pair has one key whichever came first), made a valid token
 * search value. NULL on no memory. */
const char *coord_pair_key(struct arena *a, const char *rule, const char *what,
			   const char *x, const char *y);
/* The references a list of source keys names ("onc-ni,cw-summary"), their
 * texts joined by "; " (a key the kb does not know stays as it is). */
const char *coord_source_words(const struct coord *co, struct arena *a,
			       const char *keys);

/* Whom a rule tells, besides the author of the change. */
enum coord_told {
	COORD_TELL_PCP = 1,        /* primary care physician, general practitioner */
	COORD_TELL_PHARMACIST = 2,
	COORD_TELL_COORDINATOR = 4, /* care coordinator, case manager */
	COORD_TELL_ALL = 0x80,      /* every member of the team */
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

/* transitions.c: Encounter (the work a hospital stay gives the team). */
enum cw_err coord_transitions(struct coord *co, struct store_tx *tx,
			      struct arena *a, const char *id, const json_t *enc,
			      struct coord_report *out, struct diag *d);

/* results.c: DiagnosticReport (a review task for whom it concerns). */
enum cw_err coord_results(struct coord *co, struct store_tx *tx, struct arena *a,
			  const char *id, const json_t *rep, struct coord_report *out,
			  struct diag *d);

/* labs.c: ServiceRequest. */
bool coord_lab_current(const json_t *res);
enum cw_err coord_lab_check(struct coord *co, struct store_tx *tx,
			    struct arena *a, const char *ref, const json_t *res,
			    struct coord_report *out, struct diag *d);

#endif
