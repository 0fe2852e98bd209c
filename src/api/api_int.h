/* api/api_int.h: what the files of api/ share.
 *
 *   api.c         the route table, api_handle, content negotiation, the
 *                 cw_err -> HTTP status table, response helpers
 *   rest.c        read, vread, create, update, delete (plain and
 *                 conditional) and the write-path core (struct api_op)
 *   search.c      search (GET and POST, also within a patient's
 *                 compartment), history, $everything, and the paged
 *                 Bundle writer they share
 *   bundle.c      batch and transaction Bundles (api_bundle)
 *   capability.c  the CapabilityStatement served at /metadata
 *   auth.c        /auth/login, /auth/logout, /auth/session, and the one
 *                 check every /fhir request passes (api_auth_gate)
 *   cds.c         CDS Hooks 1.x: GET /cds-services and the order-select
 *                 and order-sign services, the rules' findings as cards
 *   glass.c       Patient/{id}/$break-glass: an emergency access grant,
 *                 its notification and its audit call site; its early
 *                 end ($break-glass-end, api_glass_end for the CLI)
 *   medlist.c     Patient/{id}/$medication-list: the reconciled
 *                 medication list (the rules are coord/reconcile.c's)
 *   match.c       Patient/$match: the patient matcher (coord/match.c)
 *                 over what the caller may read
 *   risk.c        Encounter/{id}/$readmission-risk: LACE and HOSPITAL
 *                 (the scores are coord/risk.c's)
 *   measures.c    $transitions-measures: the counts of a period over what
 *                 the caller may read (coord/measures.c's)
 *   worklist.c    Task/$worklist: a team member's open Tasks and the
 *                 overdue reviews of results, most pressing first
 *   notify.c      what notify/ asks of a delivery: may the Subscription's
 *                 owner read the resource now, the record of the send,
 *                 the Subscription's status as careweave's own write
 *   trail.c       the AuditEvent of every request (api_trail_request,
 *                 called once in serve()) and of every change (inside its
 *                 store_write callback), and the AuditEvent endpoints
 *
 * Handlers take a struct api_req and return a cw_err: on CW_OK they have
 * filled the response, otherwise api_handle turns the error and the issues
 * in q->d into an OperationOutcome with the status from api_status_of. */
#ifndef CW_API_INT_H
#define CW_API_INT_H

#include "access/access.h"
#include "api/api.h"
#include "audit/audit.h"

#define API_CT_FHIR "application/fhir+json; charset=utf-8"
/* Entries accepted in one batch or transaction Bundle; more is 413. */
#define API_BUNDLE_MAX_ENTRIES 10000
/* Cap of a response built in memory (search pages, history pages). */
#define API_RESP_MAX (256u << 20)

struct api {
	struct store *store;
	char *base;            /* absolute, no trailing slash */
	size_t base_len;
	char *capability;      /* CapabilityStatement text, built once */
	size_t capability_len;
	struct access *access; /* sessions (borrowed); NULL only when local */
	bool local;            /* api_options.local: no sign-in (CLI doors) */
	struct audit *audit;   /* the read-record queue (borrowed); NULL: every
				  record is its own commit (CLI doors) */
	struct coord *coord;   /* the write path's rules (borrowed); NULL: none */
	struct notify *notify; /* Subscriptions (borrowed); NULL: none */
	bool rules_report_only; /* api_options.rules_report_only */
	struct runner *tx_helper; /* a big transaction's helper (bundle.c);
				     NULL: the writer does all */
};

enum api_return { RET_REPRESENTATION, RET_MINIMAL, RET_OUTCOME };

/* One request being served. Also used for the entries of a batch, which
 * are served as internal requests with their headers in hdrs. */
struct api_req {
	struct api *api;
	struct http_req *r;
	struct http_resp *w;
	struct arena *a;
	struct diag d;
	const struct access_who *who;  /* the signed-in caller; NULL on a
					  local API (CLI) */
	struct access_scope *scope;    /* what who may see: api_scope() */
	const char *route;             /* the matched pattern, for the log */
	const struct fhir_restype *rt; /* {type} */
	const char *id;                /* {id} */
	const char *vid;               /* {vid} */
	const char *comp;              /* {comp}: compartment type, unchecked */
	json_t *outcome_contained;     /* resources an error's OperationOutcome holds */
	enum api_return ret;           /* Prefer: return= */
	bool strict;                   /* Prefer: handling=strict */
	bool internal;                 /* a batch entry: headers come from hdrs */
	size_t nhdrs;
	const struct http_kv *hdrs;
	/* for the audit record (trail.c) */
	bool audited;                  /* written already: a committed change
					  (in its own transaction) or a batch
					  (its entries are recorded one by one) */
	const struct store_res *seen;  /* what a search or history page showed */
	size_t nseen;
	bool read_patients;            /* a read found the resource: its
					  patients are these (store_read) */
	const char **patients;
	size_t npatients;
	const char *interaction;       /* set by a handler that knows better
					  than the route ("batch") */
};

typedef enum cw_err (*api_handler_fn)(struct api_req *q);

/* ---- api.c ------------------------------------------------------------ */

/* The string member key of object o, or NULL (o NULL or not an object, no
 * such member, not a string). */
const char *api_str_at(const json_t *o, const char *key);
/* A request header (case-insensitive) or NULL. */
const char *api_header(const struct api_req *q, const char *name);
/* The FHIR IssueType code for err ("not-found"). */
const char *api_issue_code(enum cw_err err);
/* "201 Created": the status line text used in Bundle entry responses
 * (static storage; an unlisted status in a). */
const char *api_status_text(struct arena *a, int status);
/* Sets the response body: text in arena or static memory. */
void api_reply(struct api_req *q, int status, const char *body, size_t n);
/* Dumps v (compact) as the response body. Does not take v. */
enum cw_err api_reply_json(struct api_req *q, int status, const json_t *v);
/* An OperationOutcome of q->d (or one issue saying what err means). */
void api_reply_outcome(struct api_req *q, int status, enum cw_err err);
/* Takes ownership of v: json_decref when the arena is freed. */
json_t *api_json_own(struct arena *a, json_t *v);
/* The same for a value nothing points into once the handler has returned
 * (a parsed request body; a response already written out as text): it may
 * be released before the answer is sent (arena_on_done). */
json_t *api_json_own_done(struct arena *a, json_t *v);
/* Takes ownership of malloc'd p. */
void *api_free_own(struct arena *a, void *p);
/* Appends s percent-encoded for a query component. */
enum cw_err api_url_encode(struct sbuf *sb, const char *s);
/* Checks Content-Type of a request body: form for POST _search, else JSON. */
enum cw_err api_check_body_type(struct api_req *q, bool form);
/* Serves an internal request (a batch entry) through the route table. */
void api_dispatch(struct api_req *q);
/* Parses an ETag / If-Match value W/"3", "3" or 3. -1 if malformed. */
long api_parse_etag(const char *s);

/* The caller's access scope (made on first use, in the request's arena);
 * NULL on a local API, which may do everything. */
struct access_scope *api_scope(struct api_req *q);
/* Restricts fq (may be NULL: only loads the scope) to the patients sc
 * reaches; nothing for a NULL or unrestricted scope. */
enum cw_err api_restrict_query(struct access_scope *sc, struct fhir_query *fq);

/* ---- rest.c ----------------------------------------------------------- */

enum api_op_kind { OP_CREATE, OP_UPDATE, OP_DELETE };

/* One write through the write path, run inside a store_write callback:
 * api_op_resolve evaluates the condition (if any) and settles the target
 * id; api_op_exec writes. A transaction resolves all its ops before it
 * executes any, so references to entries can be rewritten in between. */
struct api_op {
	enum api_op_kind kind;
	const struct fhir_restype *rt;
	json_t *res;                   /* create, update: validated resource */
	const char *id;                /* target; create: NULL or preassigned */
	const struct fhir_query *cond; /* If-None-Exist or conditional criteria */
	long if_match;                 /* >0: version required */
	bool create_with_id;           /* conditional update, no match, body id */
	bool patch;                    /* an update made by a patch (the audit
					  record's interaction) */
	bool fresh_id;                 /* create: id made by id_new in api_op_resolve */
	bool noop;                     /* matched existing (create), none (delete) */
	const struct store_prep *prep; /* a fresh create made ready off the
					  writer (bundle.c), or NULL */
	const char **patients;         /* compartment of the target (audit) */
	size_t npatients;
	const char *loc;               /* "Bundle.entry[3]" for issues, or NULL */
	struct access_scope *scope;    /* the writer's access; NULL: local */
	struct coord *coord;           /* the rules to run (rules.c), and what
					  they keep of a patient, which
					  api_op_exec keeps true
					  (coord_note_write); NULL: no rules,
					  what was kept of the patient is
					  dropped */
	bool report_only;              /* the rules record findings, never refuse */
	struct notify *notify;         /* the Subscriptions matched on what is
					  written (notify/); NULL: none */
	const char *owner;             /* the signed-in writer's username: a
					  Subscription written delivers with
					  their rights; NULL: careweave's own
					  or an operator's (the owner stays) */
	/* results */
	json_t *blocked;               /* the DetectedIssues that refused it (409) */
	bool deleted;                  /* delete: there was a live version */
	int status;                    /* 200, 201, 204 */
	bool has_out;
	struct store_res out;
};

/* References that only a transaction can resolve. api_bundle_name: a
 * "urn:uuid:..." or "urn:oid:..." name of a Bundle entry. api_conditional_ref:
 * the length of Type in "Type?criteria" (no '/' or ':' before the '?'),
 * 0 if ref is not a conditional reference. */
bool api_bundle_name(const char *ref);
size_t api_conditional_ref(const char *ref);

enum cw_err api_op_resolve(struct store_tx *tx, struct arena *a,
			   struct api_op *op, struct diag *d);
enum cw_err api_op_exec(struct store_tx *tx, struct arena *a,
			struct api_op *op, struct diag *d);
/* The access check of op (access/ decides), in tx; api_op_exec runs it
 * first. CW_OK when op->scope is NULL (careweave's own writes). */
enum cw_err api_op_authorize(struct store_tx *tx, struct arena *a,
			     struct api_op *op, struct diag *d);
/* rules.c: runs coord/'s rules on op (written in tx) and writes what they
 * find; CW_ECONFLICT when a high-severity finding refuses the change
 * (op->blocked holds its DetectedIssues). Called after api_op_exec, by
 * the caller: a transaction calls it for each entry once every entry is
 * written, so the rules see the whole Bundle (an allergy or care team
 * written after the prescription in the same Bundle counts). */
enum cw_err api_rules_apply(struct store_tx *tx, struct arena *a,
			    struct api_op *op, struct diag *d);
/* What a finding's records say of their sensitivity (rules.c): the
 * sensitive meta.security labels among them (labels, NULL when none),
 * whether there are any, and whether scope may not read one (hidden). */
struct rules_sens {
	json_t *labels;
	bool sensitive;
	bool hidden;
};
struct coord_finding;
struct coord_report;
enum cw_err api_rules_sensitivity(struct store_tx *tx, struct arena *a,
				  struct access_scope *scope,
				  const struct coord_finding *f,
				  struct rules_sens *out);
/* The words, and the DetectedIssue, of f for whom a record it names may
 * not be shown. */
const char *api_rules_restricted_words(struct arena *a, const struct coord_finding *f);
json_t *api_rules_restricted_issue(struct arena *a, const struct coord_report *r,
				   const struct coord_finding *f, const char *now);
/* ETag, Last-Modified (and Location for 201) headers of a stored version. */
void api_version_headers(struct api_req *q, const struct store_res *res,
			 bool location);
/* Parses a query string for a condition (strict) into q; NULL query or an
 * empty one is CW_EINVAL. */
enum cw_err api_parse_condition(struct arena *a, const struct fhir_restype *rt,
				const char *query, const char *loc,
				struct fhir_query **out, struct diag *d);

enum cw_err api_h_read(struct api_req *q);
enum cw_err api_h_vread(struct api_req *q);
enum cw_err api_h_create(struct api_req *q);
enum cw_err api_h_update(struct api_req *q);
enum cw_err api_h_patch(struct api_req *q);
/* The patch of op (OP_UPDATE, rt and id set) in tx: the version stored now
 * (412 when want > 0 names another), ops applied (fhir_json_patch), the
 * type and id unchanged; sets op->res (owned by a) and op->if_match to
 * that version. Not validated: the caller validates op->res. Issues at
 * loc (NULL: none) in d. */
enum cw_err api_patch_apply(struct store_tx *tx, struct arena *a, struct api_op *op,
			    const json_t *ops, long want, const char *loc, struct diag *d);
/* The JSON Patch a Bundle carries for a PATCH entry: res is a Binary with
 * contentType application/json-patch+json and the patch base64 in data.
 * *out (owned by a) the parsed patch; else 415 (not such a Binary) or 400
 * (data not base64, not JSON), the issue at loc in d. */
enum cw_err api_patch_binary(struct arena *a, const json_t *res, const char *loc,
			     json_t **out, struct diag *d);
enum cw_err api_h_delete(struct api_req *q);
enum cw_err api_h_cond_update(struct api_req *q);
enum cw_err api_h_cond_delete(struct api_req *q);

/* ---- search.c --------------------------------------------------------- */

enum cw_err api_h_search(struct api_req *q);
enum cw_err api_h_search_post(struct api_req *q);
enum cw_err api_h_history(struct api_req *q);
enum cw_err api_h_everything(struct api_req *q);
/* Patient/{id}/{type}[/_search]: search within a patient's compartment. */
enum cw_err api_h_compartment(struct api_req *q);
enum cw_err api_h_compartment_post(struct api_req *q);
/* CW_OK when q->id (a Patient) is in the caller's reach (or the API is
 * local); else 404 "not known", as for one that does not exist. */
enum cw_err api_patient_reachable(struct api_req *q);

/* ---- medlist.c -------------------------------------------------------- */

/* GET and POST Patient/{id}/$medication-list (parameter recent, days). */
enum cw_err api_h_medication_list(struct api_req *q);
/* Whether the caller may see r, as a search's match is checked: its
 * role may ask for the type, and its scope (consent, labels) lets it. */
enum cw_err api_may_read_res(struct api_req *q, const struct store_res *r, bool *ok);

/* ---- risk.c ----------------------------------------------------------- */

/* GET Encounter/{id}/$readmission-risk: LACE and HOSPITAL, computed now. */
enum cw_err api_h_readmission_risk(struct api_req *q);
enum cw_err api_h_transitions_measures(struct api_req *q);
enum cw_err api_h_worklist(struct api_req *q);

/* ---- match.c ---------------------------------------------------------- */

/* POST Patient/$match (Parameters: resource, onlyCertainMatches, count). */
enum cw_err api_h_match(struct api_req *q);

/* ---- bundle.c --------------------------------------------------------- */

enum cw_err api_h_bundle(struct api_req *q);

/* ---- auth.c ----------------------------------------------------------- */

/* Whether path is under /auth/ (served by api_auth_serve, not the FHIR
 * route table). */
bool api_auth_path(const char *path);
/* Serves /auth/login, /auth/logout and /auth/session. */
void api_auth_serve(struct api_req *q);
/* The one check in front of the FHIR route table: a valid session, except
 * for GET /fhir/metadata and a local API. On CW_OK q->who is set; on an
 * error q->d says why (and a 401 carries WWW-Authenticate). */
enum cw_err api_auth_gate(struct api_req *q);

/* ---- cds.c ------------------------------------------------------------ */

/* Whether path is /cds-services or under it (served by api_cds_serve, not
 * the FHIR route table). */
bool api_cds_path(const char *path);
/* Serves CDS Hooks: GET /cds-services (discovery, no session) and POST
 * /cds-services/{id} (a session; recorded). */
void api_cds_serve(struct api_req *q);

/* ---- glass.c ---------------------------------------------------------- */

/* POST Patient/{id}/$break-glass: a clinician's emergency access grant. */
enum cw_err api_h_break_glass(struct api_req *q);
/* POST Patient/{id}/$break-glass-end: ends live grants on the patient
 * early (the caller's own; a privacy officer's: any), each with a
 * notification and its audit record in one transaction. */
enum cw_err api_h_break_glass_end(struct api_req *q);
enum cw_err api_h_check(struct api_req *q);
/* Parses the request body as a resource of the URL's type ({type}); the
 * value dies with the arena. Not validated. */
enum cw_err api_parse_resource(struct api_req *q, json_t **out);
struct coord_report;
/* check.c: the rules' findings on res as if q's caller wrote it (their
 * right to write it checked first), in a store transaction that writes
 * nothing. For $check and CDS Hooks. (*hidden)[i]: finding i names a
 * record the caller may not read: answer api_rules_restricted_issue. */
enum cw_err api_rules_check(struct api_req *q, json_t *res,
			    struct coord_report *out, bool **hidden);

/* ---- trail.c ---------------------------------------------------------- */

/* Records q (called once, by serve(), after the handler): the
 * interaction, what and whose, the outcome. Reads are queued (a full queue
 * on a poll thread turns the answer into a 503: nothing is served without
 * its record); changes already recorded in their transaction are skipped;
 * failed changes are recorded here. Requests that matched no route and
 * GET metadata are not recorded (no health data). */
void api_trail_request(struct api_req *q);
/* Inside a store_write callback, after op ran: the change's record, in
 * the same transaction. who NULL: a local tool. */
enum cw_err api_trail_tx_op(struct store_tx *tx, struct arena *a,
			    const struct access_who *who, const char *remote,
			    const struct api_op *op);
/* careweave's own write (who NULL), recorded with role: "rules" (rules.c),
 * "notify" (a Subscription's status, notify.c). */
enum cw_err api_trail_tx_own(struct store_tx *tx, struct arena *a,
			     const char *role, const struct api_op *op);
/* A resource sent to a Subscription's endpoint (host), as who (NULL: a
 * Subscription of the operator's door); status the endpoint's answer, 0
 * none. Queued like a read's record. */
void api_trail_export(struct api *api, struct arena *a,
		      const struct access_who *who, const char *host,
		      const struct store_res *res, int status);
/* The same for a whole transaction Bundle: one record, one entity per
 * write entry, the patients of all of them. agent: with no who, the
 * interface that sent it (role "interface"), or NULL: a local tool. */
enum cw_err api_trail_tx_bundle(struct store_tx *tx, struct arena *a,
				const struct access_who *who, const char *agent,
				const char *remote, const struct api_op *const *ops,
				size_t nops, const char *const *patients,
				size_t npatients);
/* Inside the grant's (action E) or its early end's (action D) store_write
 * callback: the break-the-glass record (subtype BTG; the clinician's reason
 * as its purpose, or the reason given for the end; the patient and the
 * notification Communication as entities). who NULL: an operator tool. */
enum cw_err api_trail_tx_glass(struct store_tx *tx, struct arena *a,
			       const struct access_who *who, const char *remote,
			       char action, const char *patient_id,
			       const char *notice_id, const char *reason);
/* Sign-in (ok or not) and sign-out, each its own durable record. user
 * NULL: the username named nobody, and is not stored. */
void api_trail_auth(struct api_req *q, enum audit_kind kind,
		    const struct access_who *who, int status);
/* GET AuditEvent?patient=X and GET AuditEvent/{id}, from the audit
 * table, newest first. */
enum cw_err api_h_audit_search(struct api_req *q);
enum cw_err api_h_audit_read(struct api_req *q);

/* ---- capability.c ----------------------------------------------------- */

/* Builds the CapabilityStatement text into api->capability. */
enum cw_err api_capability_build(struct api *api);
enum cw_err api_h_metadata(struct api_req *q);

#endif
