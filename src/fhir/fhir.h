/* fhir/fhir.h: the FHIR R4 model and what careweave does with it.
 *
 * The model (types, elements, cardinality, required bindings, search
 * parameters with their compiled expressions, the patient compartment) is
 * generated from the official R4 definitions by tools/gen-fhir.mjs into
 * model_gen.c; never edit that file by hand. Which resource types careweave
 * serves is the one-line-per-type list in served.def.
 *
 * On top of the model: validation of resources (validate.c), extraction of
 * search index rows (extract.c), parsing of search queries (query.c) and
 * OperationOutcome/Bundle helpers (outcome.c). Resources travel as jansson
 * values. Nothing here knows about HTTP or SQL. */
#ifndef CW_FHIR_H
#define CW_FHIR_H

#include <jansson.h>

#include "base/base.h"

/* How careweave writes JSON. jansson keeps decimals as doubles; 15
 * significant digits give back what was written ("7.1", not
 * "7.0999999999999996"). */
#define FHIR_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* ---- the generated model --------------------------------------------- */

enum fhir_kind {
	FHIR_PRIMITIVE,
	FHIR_COMPLEX,  /* a datatype: HumanName, CodeableConcept, ... */
	FHIR_RESOURCE,
	FHIR_BACKBONE, /* an element with its own children: Patient.contact */
};

/* How a primitive's JSON value is checked. */
enum fhir_prim {
	PRIM_NONE = 0, /* not a primitive */
	PRIM_BOOLEAN,
	PRIM_INTEGER,
	PRIM_UNSIGNEDINT,
	PRIM_POSITIVEINT,
	PRIM_DECIMAL,
	PRIM_STRING,
	PRIM_MARKDOWN,
	PRIM_CODE,
	PRIM_ID,
	PRIM_URI,
	PRIM_URL,
	PRIM_CANONICAL,
	PRIM_OID,
	PRIM_UUID,
	PRIM_BASE64BINARY,
	PRIM_INSTANT,
	PRIM_DATE,
	PRIM_DATETIME,
	PRIM_TIME,
	PRIM_XHTML,
};

/* The codes of a value set bound with strength "required". */
struct fhir_valueset {
	const char *url;
	size_t ncodes;
	const char *const *codes; /* sorted (strcmp) for bsearch */
};

struct fhir_type;

/* One allowed type of an element. For a choice element value[x] each entry
 * is one allowed type; the JSON key is the element name followed by
 * suffix ("valueQuantity"). */
struct fhir_elemtype {
	const char *code;             /* "string", "Quantity", "Reference", ... */
	const char *suffix;           /* "Quantity", "String": capitalized code */
	const struct fhir_type *type; /* its definition (backbone: the nested type) */
};

struct fhir_elem {
	const char *name;       /* JSON name; for value[x] it is "value" */
	bool choice;            /* name[x] */
	uint32_t min;
	int32_t max;            /* -1 for * */
	uint8_t ntypes;
	const struct fhir_elemtype *types;
	const struct fhir_valueset *binding; /* required binding or NULL */
	bool summary;           /* ElementDefinition.isSummary: kept by _summary=true */
	/* contentReference (#Questionnaire.item) is resolved by the generator:
	 * types[0].type points at the referenced backbone type. */
};

struct fhir_type {
	const char *name;  /* "Patient", "HumanName", "Patient.contact" */
	enum fhir_kind kind;
	enum fhir_prim prim;
	size_t nelems;
	const struct fhir_elem *elems; /* sorted by name (strcmp) */
};

enum fhir_sptype {
	SP_NUMBER,
	SP_DATE,
	SP_STRING,
	SP_TOKEN,
	SP_REFERENCE,
	SP_COMPOSITE,
	SP_QUANTITY,
	SP_URI,
	SP_SPECIAL,
};

/* One step of a compiled search expression. The walk starts at the resource
 * root; each step takes the named child (for a choice element the name is
 * the base name, "value", and as_type picks one type: "Quantity"). where_*
 * keep only elements whose child where_field equals where_value
 * (Patient.telecom.where(system='email')). */
struct fhir_path_step {
	const char *name;
	const char *as_type;     /* NULL or a type code ("Quantity", "dateTime") */
	const char *where_field; /* NULL or a child name */
	const char *where_value;
};

/* One alternative of an expression ("A | B" has two), for one resource
 * type. ref_target restricts references: .where(resolve() is Patient). */
struct fhir_sp_path {
	uint8_t nsteps;
	const struct fhir_path_step *steps;
	const char *ref_target; /* NULL or a resource type */
};

struct fhir_searchparam {
	const char *code;           /* "birthdate" */
	enum fhir_sptype type;
	const char *url;            /* canonical URL of the SearchParameter */
	const char *expression;     /* the part of the official expression for this type */
	size_t npaths;
	const struct fhir_sp_path *paths;
	size_t ntargets;
	const char *const *targets; /* reference target types */
	bool supported;             /* false when the expression uses FHIRPath the
	                               compiler does not handle: not indexed,
	                               not advertised, rejected in queries */
	/* Set when this parameter's rows are rows_of's reference rows to one
	 * type (paths[0].ref_target): patient is subject's rows to a Patient.
	 * The store writes only rows_of's and searches those. */
	const struct fhir_searchparam *rows_of;
};

/* A resource type with everything careweave needs to serve it. */
struct fhir_restype {
	const char *name;
	const struct fhir_type *type;
	size_t nparams;
	const struct fhir_searchparam *params; /* sorted by code; includes the
	                                          Resource-level _id, _lastUpdated,
	                                          _tag, _profile, _security */
	size_t ncompartment;
	const char *const *compartment_params; /* params linking to a Patient */
};

/* All resource and data types of R4 (generated). NULL if unknown. */
const struct fhir_type *fhir_type_find(const char *name);
/* The resource types careweave serves (served.def); NULL if not served. */
const struct fhir_restype *fhir_restype_find(const char *name);
const struct fhir_restype *fhir_restype_findn(const char *name, size_t n);
/* The resource type a reference's text names ("Patient/p1", or an absolute
 * URL ending in Type/id[/_history/v]), as index rows keep it in ref_type:
 * its length, with *type at its start; 0 for a fragment, a conditional
 * reference, a urn: or anything else. */
size_t fhir_ref_type(const char *ref, const char **type);
/* Iteration over the served types, in served.def order. */
size_t fhir_restype_count(void);
const struct fhir_restype *fhir_restype_at(size_t i);
/* A served type's search parameter by code; NULL if unknown. */
const struct fhir_searchparam *fhir_sp_find(const struct fhir_restype *rt,
					    const char *code);
/* A child element by JSON key. For choice elements, key is the full JSON key
 * ("valueQuantity") and *chosen is set to the matching type. NULL if the
 * type has no such element. */
const struct fhir_elem *fhir_elem_find(const struct fhir_type *t,
				       const char *key,
				       const struct fhir_elemtype **chosen);
/* Is code in the value set? */
bool fhir_valueset_has(const struct fhir_valueset *vs, const char *code);

/* The server's own base URL ("http://127.0.0.1:8080/fhir"). An absolute
 * reference under it is a local one: indexed and searched as Type/id.
 * Set once at start-up before any other thread uses the fhir module; the
 * string must live as long as the process. NULL (the default): none. */
void fhir_set_base_url(const char *base);

/* ---- validation ------------------------------------------------------ */

/* Checks a resource against the model: resourceType known and served (and
 * equal to expected_type if that is not NULL), no unknown elements, JSON
 * types and primitive formats, choice types, cardinality, required
 * bindings, contained resources, id format. Every problem is added to d as
 * an issue with a FHIRPath location (Patient.birthDate,
 * Patient.name[1].given[0]); all of them, not just the first.
 * Returns CW_OK or CW_EINVALID. */
enum cw_err fhir_validate(const json_t *res, const char *expected_type,
			  struct diag *d);

/* ---- JSON that keeps decimals as written ------------------------------ */

/* FHIR decimals keep their written precision ("7.20" is not "7.2"), which a
 * double cannot. fhir_parse_json turns every JSON number with a fraction or
 * exponent into a string of FHIR_DECIMAL_MARK and the literal; fhir_dump
 * and fhir_dump_to write them back as numbers. Read numbers with
 * fhir_number(), write JSON with fhir_dump(). */
#define FHIR_DECIMAL_MARK "\xEE\x80\x80" /* U+E000, private use */

/* Parses body as JSON (rejecting duplicate keys and the mark character).
 * On failure adds a "structure" issue with the line (d may be NULL) and
 * returns CW_EINVAL. The caller owns *out (json_decref). */
enum cw_err fhir_parse_json(const char *body, size_t n, json_t **out,
			    struct diag *d);
/* Is v a JSON number (integer, or a decimal as fhir_parse_json keeps it)?
 * If so *out gets its value and *literal (either may be NULL) its text for
 * a marked decimal, NULL otherwise. */
bool fhir_number(const json_t *v, double *out, const char **literal);
/* Is v a decimal kept as its literal? */
bool fhir_is_decimal_literal(const json_t *v);
/* Compact JSON text of v (json_dumps with FHIR_JSON_FLAGS would give the
 * same) with decimals written as the numbers they were. Caller frees;
 * *len (if not NULL) gets the length. NULL on failure. */
char *fhir_dump(const json_t *v, size_t *len);
/* The same, appended to sb: CW_ETOOBIG when sb's cap is reached. */
enum cw_err fhir_dump_to(const json_t *v, struct sbuf *sb);

/* ---- JSON Patch ------------------------------------------------------- */

#define FHIR_PATCH_OPS_MAX 1000 /* operations in one patch document */

/* Applies the JSON Patch ops (RFC 6902: an array of add, remove, replace,
 * move, copy, test; paths are JSON Pointers) to doc in place, in order.
 * CW_EINVAL (400) when the document is malformed, CW_EINVALID (422) when
 * an operation does not apply (a path that names nothing, a test that
 * fails), CW_ETOOBIG past FHIR_PATCH_OPS_MAX; each with its issue in d.
 * doc may be half patched after a failure: patch a copy. Scratch in a. */
enum cw_err fhir_json_patch(struct arena *a, json_t *doc, const json_t *ops,
			    struct diag *d);

/* ---- search index extraction ----------------------------------------- */

/* One index row. Which fields are used depends on type:
 *   SP_TOKEN      system (may be NULL), code, text (display/text, normalized)
 *   SP_STRING     text (normalized: lower case, accents folded), raw
 *   SP_REFERENCE  ref_type, ref_id (local refs), raw (the whole reference,
 *                 also for absolute URLs and canonicals)
 *   SP_URI        raw
 *   SP_DATE       lo, hi (ms, inclusive)
 *   SP_NUMBER     num, num_lo, num_hi (implicit precision range)
 *   SP_QUANTITY   num, num_lo, num_hi, system, code (the unit code; falls back
 *                 to unit text)
 */
struct fhir_idx {
	const struct fhir_searchparam *sp;
	const char *system;
	const char *code;
	const char *text;
	const char *raw;
	const char *ref_type;
	const char *ref_id;
	int64_t lo, hi;
	double num, num_lo, num_hi;
};

/* Evaluates every supported search parameter of rt over res and returns the
 * rows in *out (arena memory). Duplicate rows are removed. */
enum cw_err fhir_extract(struct arena *a, const json_t *res,
			 const struct fhir_restype *rt, struct fhir_idx **out,
			 size_t *n);

/* The ids of the patients whose compartment res belongs to: the Patient
 * itself, or the targets of rt's compartment params that are Patient
 * references. Computed from rows fhir_extract returned. */
enum cw_err fhir_compartment(struct arena *a, const json_t *res,
			     const struct fhir_restype *rt,
			     const struct fhir_idx *rows, size_t nrows,
			     const char ***ids, size_t *nids);

/* Lower-cases and folds accents/punctuation the way string search matches:
 * both index rows and query values go through it. Arena memory. */
char *fhir_normalize(struct arena *a, const char *s, size_t n);

/* ---- search queries -------------------------------------------------- */

struct fhir_kv {
	const char *key;   /* decoded: "name:exact", "subject:Patient.name" */
	const char *value; /* decoded */
};

enum fhir_prefix { PFX_EQ, PFX_NE, PFX_GT, PFX_LT, PFX_GE, PFX_LE, PFX_SA, PFX_EB, PFX_AP };

enum fhir_modifier {
	MOD_NONE,
	MOD_EXACT,
	MOD_CONTAINS,
	MOD_MISSING,
	MOD_NOT,
	MOD_TEXT,
	MOD_TYPE,       /* reference restricted to a type: subject:Patient=123 */
	MOD_IDENTIFIER, /* reference by identifier: subject:identifier=sys|val */
	MOD_ABOVE,
	MOD_BELOW,
};

/* One value of a parameter (values of one parameter are ORed). Fields as in
 * fhir_idx, from the value's parsed form:
 *   token      system (NULL = any; "" = no system: "|code"), code (NULL = any)
 *   string     text (normalized)
 *   reference  ref_type (NULL = any), ref_id, raw (absolute URL)
 *   date       lo, hi of the value's own precision, prefix
 *   number/quantity  num, num_lo, num_hi, prefix; quantity system, code
 *   uri        raw
 * missing is set for :missing (true/false). */
struct fhir_qvalue {
	enum fhir_prefix prefix;
	const char *system, *code, *text, *raw, *ref_type, *ref_id;
	int64_t lo, hi;
	double num, num_lo, num_hi;
	bool missing;
};

/* One query parameter: a (possibly chained) search on one parameter. */
struct fhir_qparam {
	const struct fhir_searchparam *sp;
	enum fhir_modifier mod;
	const char *mod_type;             /* for MOD_TYPE or the chain's target */
	size_t nvalues;
	struct fhir_qvalue *values;
	/* subject:Patient.name=x: sp is "subject", chain is the "name" param of
	 * chain_rt, matched against the referenced resources. */
	const struct fhir_restype *chain_rt;
	struct fhir_qparam *chain;
	/* _has:Observation:patient:code=x: resources referenced through has_sp
	 * ("patient" of Observation) by an Observation matching has. */
	const struct fhir_restype *has_rt;
	const struct fhir_searchparam *has_sp;
	struct fhir_qparam *has;
};

struct fhir_sort {
	const struct fhir_searchparam *sp; /* NULL means _id; _lastUpdated is a param */
	bool desc;
};

struct fhir_include {
	bool rev;                             /* _revinclude */
	bool iterate;                         /* :iterate (one extra round) */
	const struct fhir_restype *src;       /* the type holding the reference */
	const struct fhir_searchparam *sp;    /* NULL for "*" */
	const struct fhir_restype *target;    /* optional :Type */
};

enum fhir_total { TOTAL_NONE, TOTAL_ESTIMATE, TOTAL_ACCURATE };
enum fhir_summary { SUMMARY_FALSE, SUMMARY_TRUE, SUMMARY_COUNT, SUMMARY_TEXT, SUMMARY_DATA };

#define FHIR_COUNT_DEFAULT 50
#define FHIR_COUNT_MAX 1000

struct fhir_query {
	const struct fhir_restype *rt;
	size_t nparams;
	struct fhir_qparam *params; /* ANDed */
	size_t nsort;
	struct fhir_sort *sort;
	size_t ninclude;
	struct fhir_include *include;
	size_t nelements;
	const char **elements;      /* _elements */
	unsigned count;             /* _count, capped at FHIR_COUNT_MAX */
	enum fhir_total total;
	enum fhir_summary summary;
	const char *cursor;         /* _cursor: opaque page token from a link */
	size_t nignored;            /* unknown params dropped under lenient handling */
	const char **ignored;
	/* Compartment search (GET Patient/123/Observation): NULL for none, else
	 * the id of the Patient whose compartment the matches must be in (the
	 * compartment the store fills at write time from rt's
	 * compartment_params). fhir_query_parse never sets it; the caller does,
	 * after parsing. The patient need not exist: then nothing matches. A
	 * cursor belongs to its compartment and is refused in another. */
	const char *compartment_patient;
	/* Access restriction (api/ sets it from access/, never the client):
	 * when restrict_patients, a resource matches only if every patient
	 * whose compartment it is in is one of allowed[] (a resource in no
	 * compartment still matches). Applied in the SQL, so paging and
	 * totals stay right. */
	bool restrict_patients;
	size_t nallowed;
	const char *const *allowed;
};

/* Parses search parameters for type into q (arena memory). Unknown or
 * unsupported parameters are errors when strict, else skipped and listed in
 * q->ignored. Bad values (a date that is not a date, an unknown modifier or
 * prefix) are always errors. Errors go to d; returns CW_EINVAL. Parameters
 * that are not search parameters (_format, _pretty) are skipped. */
enum cw_err fhir_query_parse(struct arena *a, const struct fhir_restype *rt,
			     const struct fhir_kv *kv, size_t n, bool strict,
			     struct fhir_query *q, struct diag *d);
/* Splits and decodes an application/x-www-form-urlencoded string (also a
 * query string) into kv pairs in arena memory, for fhir_query_parse. */
enum cw_err fhir_form_split(struct arena *a, const char *s, size_t n,
			    struct fhir_kv **kv, size_t *nkv);
/* Percent-decodes s[0..n) into the arena ('+' as a space when plus: a
 * query component, not a path). NULL when out of memory. */
char *fhir_url_decode(struct arena *a, const char *s, size_t n, bool plus);

/* ---- OperationOutcome and Bundle helpers ----------------------------- */

/* Builds an OperationOutcome from d's issues (a single informational issue
 * when d has none). Caller owns the result. */
json_t *fhir_outcome(const struct diag *d);

/* Applies _elements/_summary to a copy of a resource for output: keeps
 * mandatory elements and the listed ones, and tags meta with SUBSETTED.
 * Caller owns the result. */
json_t *fhir_subset(const json_t *res, const struct fhir_query *q);

#endif
