/* fhir/outcome.c: OperationOutcome from a request's diagnostics.
 *
 * Every error careweave returns to a FHIR client is one of these, built from
 * the diag the request carried: one issue per diag issue, in the order they
 * were found, so a client sees all problems at once. Only the client-safe
 * parts of the diag (message, location) go out; the log detail never does. */
#include "fhir/fhir_int.h"

static const char *
sev_name(enum diag_sev s)
{
	switch (s) {
	case DIAG_FATAL: return "fatal";
	case DIAG_ERROR: return "error";
	case DIAG_WARNING: return "warning";
	case DIAG_INFO: return "information";
	}
	return "error";
}

static json_t *
issue(const char *sev, const char *code, const char *msg, const char *loc)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	json_object_set_new(o, "severity", json_string(sev));
	json_object_set_new(o, "code", json_string(code ? code : "processing"));
	if (msg)
		json_object_set_new(o, "diagnostics", json_string(msg));
	if (loc) {
		json_t *a = json_array();

		json_array_append_new(a, json_string(loc));
		json_object_set_new(o, "expression", a);
	}
	return o;
}

json_t *
fhir_outcome(const struct diag *d)
{
	json_t *oo = json_object();
	json_t *issues = json_array();

	if (!oo || !issues) {
		json_decref(oo);
		json_decref(issues);
		return NULL;
	}
	json_object_set_new(oo, "resourceType", json_string("OperationOutcome"));
	if (!d || d->n == 0) {
		json_array_append_new(issues,
				      issue("information", "informational",
					    "All OK", NULL));
	} else {
		for (size_t i = 0; i < d->n; i++) {
			const struct diag_issue *is = &d->issues[i];

			json_array_append_new(issues,
					      issue(sev_name(is->sev), is->code,
						    is->msg, is->loc));
		}
		if (d->dropped)
			json_array_append_new(issues,
					      issue("warning", "too-costly",
						    "Further issues were not reported",
						    NULL));
	}
	json_object_set_new(oo, "issue", issues);
	return oo;
}
