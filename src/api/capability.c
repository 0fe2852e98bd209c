/* api/capability.c: the CapabilityStatement served at GET /fhir/metadata.
 *
 * It is built once, at api_new, from the same tables that drive the server
 * (served.def through fhir_restype_at, each type's supported search
 * parameters, the interactions the route table serves), so it cannot claim
 * what the code does not do; /metadata then serves the cached text. */
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"

#ifndef CW_VERSION
#define CW_VERSION "0.1.0"
#endif

/* What every served type supports: the route table's instance and type
 * interactions. */
static const char *const type_interactions[] = {
	"read", "vread", "update", "patch", "delete", "history-instance",
	"history-type", "create", "search-type",
};

/* AuditEvent is the audit trail (api.c's routes): read and searched,
 * never written, and has no versions. */
static const char *const audit_interactions[] = {"read", "search-type"};

static const char *const system_interactions[] = {
	"transaction", "batch", "history-system",
};

static const char *const sptype_names[] = {
	[SP_NUMBER] = "number",       [SP_DATE] = "date",
	[SP_STRING] = "string",       [SP_TOKEN] = "token",
	[SP_REFERENCE] = "reference", [SP_COMPOSITE] = "composite",
	[SP_QUANTITY] = "quantity",   [SP_URI] = "uri",
	[SP_SPECIAL] = "special",
};

static json_t *
interactions(const char *const *codes, size_t n)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:s}", "code", codes[i]));
	return arr;
}

static bool
targets_type(const struct fhir_searchparam *sp, const char *type)
{
	size_t i;

	if (!sp->ntargets)
		return true;
	for (i = 0; i < sp->ntargets; i++)
		if (!strcmp(sp->targets[i], type))
			return true;
	return false;
}

static json_t *
resource_entry(const struct fhir_restype *rt)
{
	json_t *r, *params = json_array(), *inc = json_array(), *rev = json_array();
	const struct fhir_searchparam *sp;
	const struct fhir_restype *src;
	bool audit = !strcmp(rt->name, "AuditEvent"); /* read and searched only */
	size_t i, j;

	for (i = 0; i < rt->nparams; i++) {
		sp = &rt->params[i];
		if (!sp->supported)
			continue;
		json_array_append_new(params,
			json_pack("{s:s,s:s,s:s}", "name", sp->code, "definition",
				  sp->url ? sp->url : "", "type",
				  sptype_names[sp->type]));
		if (sp->type == SP_REFERENCE)
			json_array_append_new(inc, json_sprintf("%s:%s", rt->name,
								 sp->code));
	}
	if (json_array_size(inc))
		json_array_insert_new(inc, 0, json_string("*"));
	for (i = 0; i < fhir_restype_count(); i++) {
		src = fhir_restype_at(i);
		for (j = 0; j < src->nparams; j++) {
			sp = &src->params[j];
			if (sp->supported && sp->type == SP_REFERENCE &&
			    sp->code[0] != '_' && targets_type(sp, rt->name))
				json_array_append_new(rev, json_sprintf("%s:%s",
						      src->name, sp->code));
		}
	}
	r = json_pack("{s:s,s:s,s:o,s:s,s:b,s:b,s:b,s:s,s:b,s:s,s:o,s:o,s:o}",
		      "type", rt->name,
		      "profile", "",
		      "interaction", audit ?
			      interactions(audit_interactions, sizeof(audit_interactions) /
							       sizeof(audit_interactions[0])) :
			      interactions(type_interactions, sizeof(type_interactions) /
							      sizeof(type_interactions[0])),
		      "versioning", audit ? "no-version" : "versioned",
		      "readHistory", !audit,
		      "updateCreate", !audit,
		      "conditionalCreate", !audit,
		      "conditionalRead", "not-match",
		      "conditionalUpdate", !audit,
		      "conditionalDelete", audit ? "not-supported" : "single",
		      "searchInclude", inc,
		      "searchRevInclude", rev,
		      "searchParam", params);
	if (!r)
		return NULL;
	json_object_set_new(r, "profile",
			    json_sprintf("http://hl7.org/fhir/StructureDefinition/%s",
					 rt->name));
	if (!strcmp(rt->name, "Patient"))
		json_object_set_new(r, "operation",
			json_pack("[{s:s,s:s},{s:s,s:s,s:s},{s:s,s:s,s:s},{s:s,s:s,s:s},"
				  "{s:s,s:s,s:s}]",
				  "name", "everything", "definition",
				  "http://hl7.org/fhir/OperationDefinition/Patient-everything",
				  "name", "match", "definition",
				  "http://hl7.org/fhir/OperationDefinition/Patient-match",
				  "documentation", "POST only. Identifiers (system and value) "
				  "first, else a score over name, birth date, sex, address and "
				  "phone (src/coord/README.md); Patients graded possible or "
				  "better that the caller may read, best first, with "
				  "search.score and the match-grade extension; count at most 50 "
				  "(default 10); onlyCertainMatches answers only a certain match, "
				  "and none when two records would be",
				  "name", "medication-list", "definition",
				  "urn:careweave:OperationDefinition:Patient-medication-list",
				  "documentation", "The reconciled medication list: every "
				  "MedicationRequest and MedicationStatement the caller may see, "
				  "current or stopped in the last `recent` days (default 90), "
				  "grouped by ingredient, with the discrepancies between sources "
				  "(a List of contained Lists, one per group; GET or POST)",
				  /* careweave's own (src/access/README.md) */
				  "name", "break-glass", "definition",
				  "urn:careweave:OperationDefinition:Patient-break-glass",
				  "documentation", "Emergency access with a reason (Parameters: "
				  "reason, minutes); the patient's coordinators and the "
				  "privacy officers are told",
				  "name", "break-glass-end", "definition",
				  "urn:careweave:OperationDefinition:Patient-break-glass-end",
				  "documentation", "Ends live break-the-glass grants early: "
				  "one's own, or any for a privacy officer (Parameters: grant, "
				  "reason; both optional)"));
	if (!strcmp(rt->name, "Task"))
		json_object_set_new(r, "operation",
			json_pack("[{s:s,s:s,s:s}]",
				  "name", "worklist", "definition",
				  "urn:careweave:OperationDefinition:Task-worklist",
				  "documentation", "A care team member's open Tasks (owner, default "
				  "the caller's Practitioner), most pressing first, and the reviews "
				  "of results open longer than unreviewed-days (default 3), over what "
				  "the caller may read: a Bundle (searchset) (GET)"));
	if (!strcmp(rt->name, "Encounter"))
		json_object_set_new(r, "operation",
			json_pack("[{s:s,s:s,s:s}]",
				  "name", "readmission-risk", "definition",
				  "urn:careweave:OperationDefinition:Encounter-readmission-risk",
				  "documentation", "The readmission risk of an inpatient stay at "
				  "discharge: a Bundle (collection) of two RiskAssessments, the LACE "
				  "index and the HOSPITAL score, computed now from the record the "
				  "caller may see and not stored; each component with what it came "
				  "from, and the inputs that were missing (GET)"));
	return r;
}

enum cw_err
api_capability_build(struct api *api)
{
	json_t *cs, *resources = json_array(), *rest;
	char now[32];
	size_t i;

	for (i = 0; i < fhir_restype_count(); i++)
		json_array_append_new(resources, resource_entry(fhir_restype_at(i)));
	/* compartment: the route table serves Patient/{id}/{type} searches
	 * (search.c), over the compartment the store fills at write time. */
	rest = json_pack("[{s:s,s:o,s:o,s:[s],s:[{s:s,s:s,s:s}]}]", "mode", "server",
			 "resource", resources,
			 "interaction", interactions(system_interactions,
				 sizeof(system_interactions) / sizeof(system_interactions[0])),
			 "compartment",
			 "http://hl7.org/fhir/CompartmentDefinition/patient",
			 "operation", "name", "transitions-measures", "definition",
			 "urn:careweave:OperationDefinition:transitions-measures",
			 "documentation", "Transitions-of-care measures of a period (start, "
			 "end: YYYY-MM-DD; unreviewed-days): admissions, 30-day "
			 "readmissions and the rate, discharges followed up within 2 business "
			 "days, 7 and 14 days, medication reconciliation within 30 days, "
			 "unreviewed results; counted over what the caller may read (GET)");
	time_format_instant(time_now_ms(), now);
	cs = json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:s,s:s,s:s,"
		       "s:{s:s,s:s},s:{s:s,s:s},s:s,s:[s,s],s:o}",
		       "resourceType", "CapabilityStatement",
		       "id", "careweave",
		       "name", "CareweaveCapabilityStatement",
		       "title", "careweave FHIR R4 server",
		       "status", "active",
		       "experimental", 0,
		       "date", now,
		       "publisher", "careweave",
		       "kind", "instance",
		       "software", "name", "careweave", "version", CW_VERSION,
		       "implementation", "description", "careweave care coordination server",
		       "url", api->base,
		       "fhirVersion", "4.0.1",
		       "format", "json", "application/fhir+json",
		       "rest", rest);
	if (!cs)
		return CW_ENOMEM;
	api->capability = fhir_dump(cs, NULL);
	json_decref(cs);
	if (!api->capability)
		return CW_ENOMEM;
	api->capability_len = strlen(api->capability);
	return CW_OK;
}

enum cw_err
api_h_metadata(struct api_req *q)
{
	api_reply(q, 200, q->api->capability, q->api->capability_len);
	return CW_OK;
}
