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
 * are settled.
 *
 * The readmission risk (risk.c): at discharge, the LACE index and the
 * HOSPITAL score of an inpatient stay, from the patient's record, each
 * component with what it was computed from or what was missing.
 *
 * Transitions of care (transitions.c): when an Encounter is an admission
 * (in progress, inpatient or emergency) or a discharge (finished,
 * inpatient), the work the care team is to do: the admission notice, the
 * "currently admitted" and readmission flags, the Tasks after discharge
 * with due dates from the discharge time and the readmission risk
 * (risk.c); a cancelled stay or discharge cancels its work. Reported as
 * coord_report.writes (coord_follows, not coord_watches: an Encounter is
 * not an order to check).
 *
 * Results routing (results.c): a final DiagnosticReport gives the
 * ordering provider and the primary care physicians a review Task, its
 * priority by the result's flags. The measures of a period (measures.c)
 * count admissions, readmissions and follow-ups from given records.
 *
 * The reconciled medication list (reconcile.c) is the other kind of rule:
 * given the patient's medication records, it groups them and says where
 * the sources disagree; it reads and writes nothing.
 *
 * The patient matcher (match.c) says which held Patients a Patient sent
 * by a feed or a $match caller may be: identifiers first, else a score
 * over name, birth date, sex, address and phone, graded certain,
 * probable, possible or certainly-not; it reads in the caller's
 * transaction and writes nothing. */
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
struct coord_facts; /* coord/'s own: what it keeps of a patient */

/* kb is borrowed and must outlive the coord. NULL on no memory. */
struct coord *coord_new(const struct kb *kb);
void coord_free(struct coord *co);

#define COORD_HOLIDAYS_MAX 4096 /* dates in a holiday list */
/* The days besides Saturday and Sunday that are not business days (public
 * holidays: the 2 business days of a discharge's first contact skip them),
 * from text[0..n): one date YYYY-MM-DD a line; '#' to the end of a line is
 * a comment; blank lines do not count. Replaces co's list only when all of
 * it reads: else CW_EINVALID with one issue per bad line, "name:LINE: why",
 * in d. */
enum cw_err coord_holidays_parse(struct coord *co, const char *text, size_t n,
				 const char *name, struct diag *d);
/* How many holidays co knows (0: weekends only). */
size_t coord_holidays(const struct coord *co);
/* Counts business days in the days of zone (an IANA name,
 * "America/Chicago"), not UTC's: a Friday-evening discharge in Chicago is
 * a Friday there. Sets the process's time zone (TZ; nothing else in
 * careweave reads local time). CW_EINVAL when zone is no zone the system
 * knows (tzdata). */
enum cw_err coord_set_timezone(struct coord *co, const char *zone);

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
	bool raised;             /* a final DetectedIssue with this key is on
				    the record already (coord_on_change) */
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
	/* coord/'s own: whom the rule tells besides the team (the author of
	 * the change) and which members (enum coord_told in coord_int.h),
	 * loaded into notify only when a finding is new; and what the rule
	 * read of the patient's kept records */
	const char *notify_author;
	unsigned notify_told;
	struct coord_facts *facts;
	/* a write's check (coord_on_change): a finding already raised is left
	 * out where the rule can tell early (the medication rules), else
	 * marked raised */
	bool new_only;
	/* the work a rule makes or changes besides findings (transitions of
	 * care: Tasks, Flags, Communications), in order: written as
	 * careweave's own, a create when id is NULL, else an update of id */
	struct coord_write *writes;
	size_t nwrites;
};

/* One resource a rule writes (coord_report.writes). */
struct coord_write {
	json_t *res;    /* owned by the report's arena */
	const char *id; /* NULL: create */
};
#define COORD_WRITES_MAX 32

/* An inpatient stay's class (v3-ActCode IMP, ACUTE, NONAC, OBSENC): what a
 * discharge is followed up for, the measures count and a feed gives an
 * EpisodeOfCare. */
bool coord_inpatient_class(const char *cls);

/* Whether changes of this type start work for the care team (Encounter:
 * transitions of care, transitions.c; DiagnosticReport: results routing,
 * results.c). coord_on_change handles them. */
bool coord_follows(const char *type);

/* Whether writes of this type change what the rules keep of a patient
 * (coord_note_write): MedicationRequest, MedicationStatement,
 * AllergyIntolerance, DetectedIssue. */
bool coord_keeps(const char *type);

/* Keeps what the rules know of a patient true after a write of type/id
 * (res its new version, NULL: deleted), in the same transaction: the one
 * write path calls it for every put and delete of a type coord_keeps,
 * before the rules run. fresh: the record did not exist before. before:
 * the patient ids the previous version was about (store_tx_patients
 * before the write), nbefore of them. co NULL (a write without rules):
 * what was kept of those patients is dropped, to be made again. */
enum cw_err coord_note_write(struct coord *co, struct store_tx *tx,
			     struct arena *a, const char *type, const char *id,
			     const json_t *res, bool fresh,
			     const char *const *before, size_t nbefore,
			     struct diag *d);

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

/* ---- the reconciled medication list (reconcile.c) --------------------- */

/* Patient/{id}/$medication-list: every medication record of the patient,
 * from every source, grouped by what it is (its ingredient set), with what
 * the sources disagree about. The caller reads the records (whatever the
 * caller may see) and passes them; coord/ decides which to list, groups
 * them and states the discrepancies; it reads nothing itself. The rules
 * and their limits are in src/coord/README.md. */

/* The flags of the list's entries and groups (a careweave CodeSystem): the
 * code names of enum coord_list_flag and of enum coord_list_state. */
#define COORD_LIST_FLAG_SYSTEM "https://careweave.org/fhir/CodeSystem/medication-list-flag"
/* A stopped record is listed when it ended at most this many days ago. */
#define COORD_LIST_RECENT_DAYS 90
#define COORD_LIST_RECENT_MAX 3650
/* Records one list considers, groups and entries of a group. */
#define COORD_LIST_MAX 4000

/* Where an entry comes from. */
enum coord_list_source {
	COORD_SRC_PRESCRIPTION = 1, /* a MedicationRequest order, outpatient,
				       community or no category */
	COORD_SRC_DISCHARGE,        /* an order of category discharge */
	COORD_SRC_INPATIENT,        /* an order of category inpatient */
	COORD_SRC_PROPOSAL,         /* intent proposal or plan: not prescribed */
	COORD_SRC_PATIENT,          /* a statement from the Patient or a RelatedPerson */
	COORD_SRC_CLINICIAN,        /* a statement from a Practitioner(Role) */
	COORD_SRC_ORGANIZATION,     /* a statement from an Organization (a pharmacy) */
	COORD_SRC_UNSTATED,         /* a statement that names no source */
	COORD_SRC_COUNT
};

/* What the record says of itself. */
enum coord_list_state {
	COORD_ST_ACTIVE = 1, /* active */
	COORD_ST_ON_HOLD,    /* on-hold */
	COORD_ST_INTENDED,   /* a statement's intended */
	COORD_ST_ENDED,      /* stopped, completed, cancelled, not-taken */
	COORD_ST_UNKNOWN,    /* unknown */
	COORD_ST_COUNT
};

/* What reconciliation found: bits of an entry's and a group's flags. */
enum coord_list_flag {
	COORD_FLAG_DOSE = 1u << 0,           /* dose-differs */
	COORD_FLAG_STOPPED_ACTIVE = 1u << 1, /* stopped-vs-active */
	COORD_FLAG_NOT_PRESCRIBED = 1u << 2, /* not-prescribed */
	COORD_FLAG_DUPLICATE = 1u << 3,      /* duplicate */
	COORD_FLAG_UNCHECKED = 1u << 4,      /* unchecked */
	COORD_FLAG_COURSE_ENDED = 1u << 5,   /* course-ended */
	COORD_FLAG_SUPERSEDED = 1u << 6,     /* superseded (information) */
	COORD_FLAG_COUNT_BITS = 7
};
/* The flags a reconciler must look at (the rest are information). */
#define COORD_FLAG_DISCREPANCIES (COORD_FLAG_DOSE | COORD_FLAG_STOPPED_ACTIVE | \
				  COORD_FLAG_NOT_PRESCRIBED | COORD_FLAG_DUPLICATE | \
				  COORD_FLAG_COURSE_ENDED)

/* One record as the caller read it. medication: the Medication that
 * res.medicationReference names, when it is not contained (the caller
 * read it, if the caller may), else NULL. updated: meta.lastUpdated (ms). */
struct coord_list_input {
	const char *ref;       /* "MedicationRequest/x" */
	const json_t *res;
	const json_t *medication;
	int64_t updated;
};

struct coord_list_entry {
	const char *ref;          /* the source record */
	enum coord_list_source source;
	enum coord_list_state state;
	const char *status;       /* the record's own status */
	const char *words;        /* what the record calls the medication */
	const char *dosage;       /* the first dosage's text, or NULL */
	const char *dose;         /* the dose compared ("1000 mg"), or NULL */
	const char *by;           /* requester / informationSource reference, or NULL */
	const char *by_display;   /* its display, or NULL */
	const char *when;         /* authoredOn, dateAsserted or the effective
				     time, as the record writes it; or NULL */
	const char *ended;        /* when it ended (YYYY-MM-DD), ENDED only */
	bool reported;            /* a MedicationRequest recorded from a report
				     (reportedBoolean, reportedReference) */
	unsigned flags;           /* enum coord_list_flag bits */
	const char *why;          /* plain words for the flags, or NULL */
};

struct coord_list_group {
	const char *name;         /* "metformin", "hydrochlorothiazide + lisinopril",
				     or the record's words when unchecked */
	bool unchecked;           /* careweave could not map it: grouped by its
				     normalized words, not compared by ingredient */
	struct coord_list_entry *e;
	size_t n;
	unsigned flags;           /* the union of the entries' */
	const char *summary;      /* what a clinician reads first */
};

struct coord_list {
	struct coord_list_group *g; /* by name */
	size_t ng;
	size_t nconsidered;         /* records passed in */
	size_t nold;                /* ended before the window, entered in
				       error, drafts: not listed */
};

/* Reconciles the records in (n of them, at most COORD_LIST_MAX: more is
 * CW_ETOOBIG) as of now (ms): lists the current ones and those that ended
 * in the last recent_days, grouped, with their flags. Everything is in a;
 * costs one kb mapping a record and a comparison per pair of one group. */
enum cw_err coord_medication_list(const struct coord *co, struct arena *a,
				  const struct coord_list_input *in, size_t n,
				  int64_t now, unsigned recent_days,
				  struct coord_list *out);
/* "dose-differs", "active"...: the code of one flag bit or state, and the
 * words a clinician reads ("Dose differs between sources"). */
const char *coord_list_flag_code(unsigned bit);
const char *coord_list_flag_display(unsigned bit);
const char *coord_list_state_code(enum coord_list_state st);
const char *coord_list_state_display(enum coord_list_state st);
/* "prescription", "patient-reported"...: the code of a source kind. */
const char *coord_list_source_code(enum coord_list_source src);
const char *coord_list_source_display(enum coord_list_source src);

/* ---- patient matching (match.c) ----------------------------------------- */

/* Whether a Patient someone sends (an HL7 feed's PID, a $match fragment)
 * is one careweave holds. Identifiers first; otherwise a score over name,
 * birth date, sex, address and phone, each compared on its own so the
 * answer says which agreed and which differed. What the grades are for:
 * certain links, probable asks a coordinator to review, possible and
 * below are no match (a new Patient). The weights, the rules and the
 * limits are in src/coord/README.md, "Patient matching (match.c)". */

/* The grades (the codes of http://hl7.org/fhir/StructureDefinition/
 * match-grade). The score bands: the lowest score of each grade. Why
 * these values: with the weights of match.c, the full name, sex and birth
 * date agreeing exactly make 0.70, which is not enough to link (two
 * people share a name and a birthday more often than a register of
 * thousands makes one think): CERTAIN asks for one more of phone or
 * address on top (0.85), and certain needs the full name and birth date
 * exact besides the score. PROBABLE (0.60) is a birth date and given
 * name agreeing with one more part (the married-name change: birth date,
 * given name and phone); POSSIBLE (0.35) is what is worth showing a
 * person searching, never acted on. */
#define COORD_MATCH_CERTAIN 0.85
#define COORD_MATCH_PROBABLE 0.60
#define COORD_MATCH_POSSIBLE 0.35
#define COORD_MATCH_GRADE_URL "http://hl7.org/fhir/StructureDefinition/match-grade"

/* Limits: the candidates each search finds, the candidates read and
 * scored after the searches are joined, and what of one Patient is
 * compared (names, name parts, identifiers, addresses, phones; the rest
 * is not looked at). */
#define COORD_MATCH_SEARCH_MAX 200
#define COORD_MATCH_CANDIDATES_MAX 1000
#define COORD_MATCH_NAMES_MAX 8
#define COORD_MATCH_TOKENS_MAX 16
#define COORD_MATCH_IDS_MAX 16
#define COORD_MATCH_ADDRS_MAX 8
#define COORD_MATCH_PHONES_MAX 8

enum coord_match_grade {
	COORD_GRADE_CERTAINLY_NOT = 0, /* below POSSIBLE, or known not to be */
	COORD_GRADE_POSSIBLE,
	COORD_GRADE_PROBABLE,
	COORD_GRADE_CERTAIN,
};

/* The parts compared. */
enum coord_match_part {
	COORD_PART_IDENTIFIER = 0,
	COORD_PART_FAMILY,
	COORD_PART_GIVEN,
	COORD_PART_BIRTH,
	COORD_PART_SEX,
	COORD_PART_ADDRESS,
	COORD_PART_PHONE,
	COORD_PART_COUNT
};

/* What one part says. UNKNOWN: one side (or both) does not have it, which
 * is never counted as agreement. */
enum coord_match_how {
	COORD_HOW_UNKNOWN = 0,
	COORD_HOW_DIFFERS,
	COORD_HOW_PARTIAL, /* near: a spelling, a swapped date, an initial */
	COORD_HOW_AGREES,
};

struct coord_match_score {
	double score;                 /* 0..1 */
	enum coord_match_grade grade;
	enum coord_match_how how[COORD_PART_COUNT];
	const char *reasons;          /* plain words, no values: "birth date
					 and family name agree; phone differs" */
};

/* Compares two FHIR Patients, a (what is sent) with b (what is held):
 * pure, reads nothing; only the reasons are allocated, in arena. Either
 * may lack any part. CW_ENOMEM only. */
enum cw_err coord_match_score(struct arena *a, const json_t *pa, const json_t *pb,
			      struct coord_match_score *out);

/* "certain", "probable", "possible", "certainly-not". */
const char *coord_match_grade_code(enum coord_match_grade g);

/* Whether who has anything to match on: an identifier with a system, a
 * name, a birth date, a phone or an address. */
bool coord_match_usable(const json_t *who);

struct coord_match {
	const char *id;     /* the Patient's id */
	const json_t *res;  /* as read in the transaction; lives as long as a */
	struct coord_match_score s;
	/* certain on its own, made probable because another record was
	 * certain too; own_reasons: the reasons without saying so (for a
	 * caller who may not see the other record) */
	bool ambiguous;
	const char *own_reasons;
};

/* The Patients held in tx that may be the one described by who (a
 * Patient, need not have an id; its own id, if it has one, is not a
 * candidate): candidates by identifier, family name, birth date (and the
 * same with day and month swapped) and phone, each search at most
 * COORD_MATCH_SEARCH_MAX, joined without repeats, at most
 * COORD_MATCH_CANDIDATES_MAX read; a Patient that is deleted, not active
 * (active false) or replaced by another (link replaced-by) is skipped.
 * Each is scored (coord_match_score); those graded possible or better
 * come back in *out, best first (then by id), at most max of them, in a.
 * When more than one is certain, none is: each becomes probable, "more
 * than one record matches", so two records are never linked to one
 * message without a person deciding. co may be NULL (no kb is used). Costs
 * at most 16 indexed searches and one read and parse per candidate;
 * writes nothing. CW_EINVAL (with the issue in d) when who has nothing to
 * match on. */
enum cw_err coord_match_patient(struct coord *co, struct store_tx *tx,
				struct arena *a, const json_t *who, size_t max,
				struct coord_match **out, size_t *n,
				struct diag *d);

/* ---- transitions-of-care measures (measures.c) -------------------------- */

/* What the measures of [start, end) are computed from: the Encounters of
 * the period and the 30 days around it, and the Tasks transitions.c and
 * results.c made (others are ignored); borrowed. */
struct coord_measures_input {
	const json_t *const *encounters;
	size_t nencounters;
	const json_t *const *tasks;
	size_t ntasks;
	int64_t start, end;       /* ms */
	int64_t now;              /* ms, for the age of unreviewed results */
	unsigned unreviewed_days; /* a result unreviewed longer is overdue */
	const struct coord *co;   /* its holidays, for business days; NULL: none */
};

/* The counts (src/coord/README.md, "Measures", defines each). */
struct coord_measures {
	unsigned admissions;            /* inpatient stays begun in the period */
	unsigned readmissions;          /* of them, within 30 days of a discharge */
	unsigned discharges;            /* inpatient stays ended in the period */
	unsigned discharges_readmitted; /* of them, followed by an admission within 30 days */
	unsigned contact_2d;            /* the contact Task done within 2 business days */
	unsigned visit_7d, visit_14d;   /* a visit (or the follow-up Task done) within 7, 14 days */
	unsigned medrec_30d;            /* medication reconciliation done within 30 days */
	unsigned unreviewed;            /* results with a review Task still open */
	unsigned unreviewed_old;        /* of them, open longer than unreviewed_days */
};

/* Computes the measures of in. CW_ETOOBIG past 20,000 Encounters. */
enum cw_err coord_measures(struct arena *a, const struct coord_measures_input *in,
			   struct coord_measures *out);

/* ---- readmission risk (risk.c) ------------------------------------------ */

/* LACE (van Walraven 2010) and HOSPITAL (Donze 2013) at discharge from an
 * inpatient stay. The rules, what counts for each component and the limits
 * are in src/coord/README.md, "Readmission risk". */

/* The CodeSystem of RiskAssessment.method: "lace", "hospital". */
#define COORD_RISK_SYSTEM "https://careweave.org/fhir/CodeSystem/risk-score"
/* Records of each kind (encounters, conditions, results, procedures) one
 * computation takes; coord_risk_read stops there and says so. */
#define COORD_RISK_RECORDS_MAX 5000
/* The references one component lists (the count says how many there were). */
#define COORD_RISK_REFS_MAX 20

enum coord_risk_score { COORD_RISK_LACE = 1, COORD_RISK_HOSPITAL };

/* One record as the caller read it: "Type/id" and the resource. */
struct coord_risk_record {
	const char *ref;
	const json_t *res;
};

/* The index stay and the patient's records a score is computed from. Only
 * the patient's own records should be passed; records of another patient
 * are ignored. Observations may be all of the patient's or only those of
 * LOINC 718-7 and 2951-2. */
struct coord_risk_input {
	const char *encounter_ref; /* "Encounter/x" */
	const json_t *encounter;
	const struct coord_risk_record *encounters; /* the patient's others too */
	size_t nencounters;
	const struct coord_risk_record *conditions;
	size_t nconditions;
	const struct coord_risk_record *observations;
	size_t nobservations;
	const struct coord_risk_record *procedures;
	size_t nprocedures;
	/* some of the record was not read (a limit, or withheld from the
	 * caller): said in every assessment, whose total may then be low */
	const char *incomplete;
};

struct coord_risk_component {
	const char *code;  /* "L", "A", "C", "E"; "H", "O", "S", "P", "I", "A12", "LOS" */
	const char *name;  /* "length of stay" */
	bool missing;      /* the record does not say: no points counted */
	unsigned points;
	unsigned max;      /* the most it can give */
	const char *value; /* what it was computed from, in words; when
			      missing, what was looked for and not found */
	const char **refs; /* the records it came from */
	size_t nrefs;      /* listed (at most COORD_RISK_REFS_MAX) */
	size_t nfound;     /* there were */
};

struct coord_risk {
	enum coord_risk_score score;
	const char *method_code;    /* "lace", "hospital" */
	const char *method_display; /* "LACE index", "HOSPITAL score" */
	const char *outcome;        /* what it predicts */
	const char *patient;        /* "Patient/x" */
	const char *encounter;      /* "Encounter/y" */
	unsigned total;             /* the points of the components not missing */
	unsigned highest;           /* total + the most the missing ones could add */
	unsigned max;               /* 19, 13 */
	bool lower_bound;           /* a component is missing: total is a floor */
	const char *band;           /* of total: "low", "moderate", "high";
				       HOSPITAL: "low", "intermediate", "high" */
	const char *band_highest;   /* of highest (the same when nothing is missing) */
	const char *risk_code;      /* risk-probability: low, moderate, high */
	bool has_probability;       /* the reference gives one for the band */
	double probability;         /* HOSPITAL's: 0.058, 0.119, 0.228 */
	struct coord_risk_component c[8];
	size_t nc;
	const char **basis;         /* every record a component used, once */
	size_t nbasis;
	const char *missing;        /* "length of stay, acute admission", or NULL */
	const char *summary;        /* one line a clinician reads first */
	const char *incomplete;     /* coord_risk_input.incomplete */
};

/* Computes both scores for in (the discharge is in->encounter's
 * period.end; an open period is scored as of now, its length missing).
 * CW_EINVALID, with d saying why, for an Encounter that is not an
 * inpatient stay of a patient. Everything is in a; reads nothing. */
enum cw_err coord_risk_compute(const struct coord *co, struct arena *a,
			       const struct coord_risk_input *in,
			       struct coord_risk *lace, struct coord_risk *hospital,
			       struct diag *d);

/* Reads in tx what coord_risk_compute needs for Encounter/id: the
 * encounter (CW_ENOTFOUND, CW_EGONE), then the patient's encounters,
 * conditions, haemoglobin and sodium results and procedures, at most
 * COORD_RISK_RECORDS_MAX of each (more: in->incomplete says so). For the
 * write path (a discharge message): no caller's access applies. */
enum cw_err coord_risk_read(struct coord *co, struct store_tx *tx, struct arena *a,
			    const char *encounter_id, struct coord_risk_input *in,
			    struct diag *d);

/* The RiskAssessment of r (status final, not stored: no id), assessed at
 * when (an instant). A new value; NULL on no memory. */
json_t *coord_risk_assessment(const struct coord_risk *r, const char *when);

#endif
