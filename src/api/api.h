/* api/api.h: the FHIR R4 REST API and the one write path.
 *
 * api_handle serves HTTP requests under /fhir (read, vread, create, update,
 * delete, history, search, batch/transaction, metadata, $everything). Every
 * change, whatever door it came in by (REST, a transaction Bundle, the CLI
 * import, later HL7 v2), goes through the same write path:
 * validate (fhir/) -> store transaction (store/) -> commit.
 *
 * Sign-in: POST /auth/login, POST /auth/logout and GET /auth/session are
 * served here too (api/auth.c, over access/). Every request under /fhir
 * except GET /fhir/metadata must carry a session; the check is made once,
 * in api_handle, before the route table. */
#ifndef CW_API_H
#define CW_API_H

#include <jansson.h>

#include "base/base.h"
#include "http/http.h"
#include "store/store.h"

struct api; /* opaque */

struct access;
struct audit;

struct api_options {
	const char *base_url; /* absolute base for links and Location:
	                         "http://127.0.0.1:8080/fhir" */
	struct access *access; /* sessions (borrowed): every /fhir request
	                          but GET metadata must carry one */
	bool local;           /* an in-process door (CLI export and import,
	                         unit tests): requests need no session and
	                         /auth is not served. Never set for a socket. */
	struct coord *coord;  /* the write path's rules (coord/, borrowed); NULL:
	                         changes are not checked */
	struct notify *notify; /* Subscriptions (notify/, borrowed): what is
	                          written is matched and its notices queued;
	                          NULL: none (imports, tools) */
	bool rules_report_only; /* the rules record their findings but never
	                           refuse a change (imports of what was already
	                           prescribed elsewhere) */
	struct audit *audit;  /* the read-record queue (borrowed; free it after
	                         api_free, before closing the store). Required
	                         with access; NULL on a local API: each record
	                         is then its own commit. */
};

/* A new API over s (borrowed: the caller closes it after api_free). NULL
 * when out of memory, or when opt has neither access nor local, or access
 * without audit: an API that would serve the network without sign-in or
 * without its audit trail is refused. */
struct api *api_new(struct store *s, const struct api_options *opt);
void api_free(struct api *api);

/* The hooks notify/ delivers through (api/notify.c): the owner's access
 * to each resource sent, the record of each delivery, the Subscription's
 * status. The api must outlive the notify started with them. */
struct notify_hooks;
void api_notify_hooks(struct api *api, struct notify_hooks *out);

/* http_handler_fn: serves one request (ctx is the struct api). */
void api_handle(void *ctx, struct http_req *r, struct http_resp *w);

struct api_bundle_opt {
	/* For imports of real exports: a conditional reference
	 * (Practitioner?identifier=sys|val) that matches nothing becomes a
	 * logical reference {type, identifier, display} and a warning issue,
	 * instead of failing the whole transaction. */
	bool lenient_refs;
	/* An in-process door that is not the operator (an HL7 v2 feed): the
	 * audit record names this agent ("hl7v2:ADT1@GOOD HEALTH HOSPITAL",
	 * role "interface") and remote (the sender's address); NULL: the
	 * local operator. The agent is recorded, not checked: the door
	 * decided it may write. */
	const char *agent;
	const char *remote;
	/* The entries are records made elsewhere already (an HL7 v2 merge
	 * moving a record's resources): the rules record their findings and
	 * never refuse, as for an import. */
	bool report_only;
	/* A transaction only: called inside its job once every entry and
	 * its record are written, with what was written ("Type/id", one per
	 * entry that wrote); an error rolls the whole transaction back.
	 * The door records its own work with the change (the HL7 message
	 * log), so that both commit or neither does. */
	enum cw_err (*in_tx)(struct store_tx *tx, void *ctx,
			     const char *const *written, size_t nwritten);
	void *in_tx_ctx;
};

/* Processes a batch or transaction Bundle through the write path, as POST
 * /fhir would, and returns the response Bundle in *out (caller owns it).
 * A transaction is atomic: on error nothing is written, the error is
 * returned and d says which entry failed and why. */
enum cw_err api_bundle(struct api *api, struct arena *a, json_t *bundle,
		       const struct api_bundle_opt *opt, json_t **out,
		       struct diag *d);

/* Ends break-the-glass grant gid early, as `careweave glass end` (a local
 * API only: the operator's door, signed in as nobody): the grant's end, a
 * Communication to the recipients of the grant's notification and the
 * audit record, in one transaction. CW_ENOTFOUND when gid is not live
 * (no such grant, expired or ended already); reason (NULL: none) is
 * checked as a claim's is. d says why on failure. */
enum cw_err api_glass_end(struct api *api, struct arena *a, int64_t gid,
			  const char *reason, struct diag *d);

/* http_error_fn: the OperationOutcome body of an answer http/ makes itself
 * (413 for an oversized body, 500). ctx is the struct api. */
void api_error_body(void *ctx, struct arena *a, int status, const char *msg,
		    struct http_resp *w);

/* The HTTP status for err (the one table). */
int api_status_of(enum cw_err err);

#endif
