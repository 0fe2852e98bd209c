/* coord/coord.h: the coordination rules of the write path.
 *
 * Rules look at a change about to be committed, read what they need of the
 * patient's record inside the same store transaction, and say what the
 * change means for the care team: findings (a FHIR DetectedIssue each), the
 * people to tell, and findings that earlier changes raised and this one
 * settles. They write nothing themselves: api/ (rules.c) turns what they
 * say into resources through the one write path, in the same transaction,
 * so a change and its findings commit or roll back together.
 *
 * The medication rules (medsafety.c): when a MedicationRequest or
 * MedicationStatement is current (active, on-hold; a statement also
 * intended), its ingredients (kb_map_medication) are compared with every
 * other current medication of the patient, from any prescriber or
 * reported by the patient, and with the patient's active allergies:
 * drug-drug interactions, drug-allergy and cross-reactive allergy, and
 * therapeutic duplication (the same ingredient twice, or two drugs of a
 * class the kb marks as one therapy). A medication the kb cannot map is
 * reported as unchecked, never passed as safe. When a medication stops
 * being current (stopped, completed, cancelled, entered-in-error,
 * not-taken, deleted) the findings that implicate it are settled.
 *
 * The lab rules (labs.c): when a ServiceRequest for a laboratory test is
 * current (active, on-hold, draft), the test (kb_find_lab: its LOINC
 * codes, else its name) is compared with the patient's results
 * (Observation, DiagnosticReport) and their other pending orders for the
 * same test, a panel containing it or a member of the ordered panel,
 * within the test's shortest minimum retest interval before the order's
 * authoredOn: a duplicate test, with when it was done and what it showed.
 * A lab order careweave does not know is reported as unchecked. When the
 * order is revoked, completed, entered in error or deleted its findings
 * are settled. */
#ifndef CW_COORD_H
#define CW_COORD_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "base/base.h"
#include "kb/kb.h"
#include "store/store.h"

/* The identifier system of the DetectedIssues careweave raises: the value
 * names the rule and what it found ("ddi:onc3:MedicationRequest/a:
 * MedicationRequest/b"), so the same finding is raised once. */
#define COORD_ISSUE_SYSTEM "urn:careweave:detected-issue"
/* The extension a MedicationRequest or MedicationStatement carries to
 * write despite a high-severity finding: valueString, the reason. */
#define COORD_OVERRIDE_URL "https://careweave.org/fhir/StructureDefinition/override-reason"
#define V3_ACT_CODE "http://terminology.hl7.org/CodeSystem/v3-ActCode"
/* careweave's own DetectedIssue codes, where v3-ActCode has none that fits
 * (the binding is preferred): "dup-order", a duplicate pending order. */
#define COORD_ISSUE_CODES "https://careweave.org/fhir/CodeSystem/detected-issue"

struct coord; /* opaque: the kb and the rules' settings */

/* kb is borrowed and must outlive the coord. NULL on no memory. */
struct coord *coord_new(const struct kb *kb);
void coord_free(struct coord *co);

/* One finding about the change, already in the words the team reads. */
struct coord_finding {
	enum kb_severity severity;
	bool interruptive;       /* false: shown as information, never blocks */
	const char *code_system; /* NULL: v3-ActCode */
	const char *code;        /* DRG, ALGY, RALG, DUPTHPCLS, DUPTHPGEN, ALLDONE, ... */
	const char *code_display;
	const char *priority;    /* the Communication's, NULL: by severity */
	const char *detail;      /* plain words: what and why */
	const char *summary;     /* a few words naming it ("warfarin with
				    naproxen"), for a CDS Hooks card's
				    summary; NULL: the card says it from
				    code_display and detail */
	const char *mitigation;  /* what to do instead, or NULL */
	const char *key;         /* the identifier value (COORD_ISSUE_SYSTEM) */
	const char *implicated[2]; /* "MedicationRequest/a", the other or NULL */
	const char *source;      /* the reference the rule comes from */
};

/* What the rules say about one change. Everything is in the arena. */
struct coord_report {
	const char *patient;       /* "Patient/x", or NULL: nothing to say */
	const char *topic;         /* what the rule is, for the team's message:
				      "Medication safety", "Duplicate test" */
	struct coord_finding *findings;
	size_t nfindings;
	/* the changed medication could not be mapped to ingredients (or only
	 * partly): careweave could not check it; what it did not know */
	bool unchecked;
	const char *unchecked_for; /* what was not checked: "interactions,
				      duplicates or allergies" */
	const char *unchecked_what;
	/* other current medications careweave could not check, as Type/id */
	const char **unchecked_others;
	size_t nunchecked_others;
	/* "Type/id" of what this change implicates that is no longer current:
	 * the findings implicating it are to be settled */
	/* the change is never refused, whatever the findings (recording an
	 * allergy: what it means for the medications is reported) */
	bool never_refuses;
	const char *settles;
	/* the mitigation of the settled findings (v3-ActCode), and its words;
	 * NULL: "13", "Stopped Concurrent Therapy" */
	const char *settle_code, *settle_display;
	/* whom to tell: Practitioner (or PractitionerRole) references of the
	 * prescriber and of the care team's primary care physician,
	 * pharmacist and coordinator; each once */
	const char **notify;
	size_t nnotify;
};

/* Whether changes of this type have rules (cheap: call before coord_on_change). */
bool coord_watches(const char *type);

/* The rules for the change of type/id to res (NULL: deleted), read in tx.
 * Fills out (zeroed first). The change itself must already be in tx (its
 * own version is ignored among "the others"). */
enum cw_err coord_on_change(struct coord *co, struct store_tx *tx,
			    struct arena *a, const char *type, const char *id,
			    const json_t *res, struct coord_report *out,
			    struct diag *d);

/* The same checks for a proposed medication or order that is not written (for
 * $check and CDS Hooks): res need not have an id; read through tx as
 * well, which the caller rolls back or has only read with. */
enum cw_err coord_check_proposed(struct coord *co, struct store_tx *tx,
				 struct arena *a, const json_t *res,
				 struct coord_report *out, struct diag *d);

/* Records a caller gives instead of the store's (CDS Hooks prefetch: a
 * patient careweave does not hold). Borrowed JSON values: the patient's
 * MedicationRequests, MedicationStatements and AllergyIntolerances (other
 * types are ignored, but for Medications a medicationReference names), in
 * any order; those about another patient than the proposed medication's
 * subject (a relative reference, or an absolute one ending in it) are
 * ignored, and so are those that are not current (the same tests as for
 * the store's records). */
struct coord_given {
	const json_t *const *res;
	size_t n;
};

/* The same checks as coord_check_proposed for a proposed medication that
 * is not written, compared with given instead of the patient's record in
 * the store: no transaction, nothing read. The report has no one to
 * notify. At most the limits of the store's record apply (the first 200
 * current requests and statements, 100 allergies). Only the medication
 * rules run over given records: a res of another type reports nothing. */
enum cw_err coord_check_given(struct coord *co, struct arena *a,
			      const json_t *res, const struct coord_given *given,
			      struct coord_report *out, struct diag *d);

/* The DetectedIssue of finding f about patient, with when (an instant). A
 * new value; NULL on no memory. */
json_t *coord_issue(const struct coord_report *r, const struct coord_finding *f,
		    const char *when);

#endif
