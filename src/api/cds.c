/* api/cds.c: CDS Hooks 1.x services, so an EHR can ask careweave at order time.
 *
 * GET /cds-services is the discovery document (no session needed: it
 * holds no health data, like /fhir/metadata). POST /cds-services/{id}
 * calls a service: the request is checked (hook, hookInstance, context
 * with userId, patientId and the draftOrders Bundle; selections for
 * order-select), then every draft order of a type coord/ has rules for
 * (coord_watches: today MedicationRequest and MedicationStatement; any
 * type a rule is added for, ServiceRequest included, comes through the
 * same way) is checked, and what the rules find becomes cards:
 *
 *   - the patient is in careweave's store and the caller may read them:
 *     api_rules_check, exactly what $check runs (the caller's right to
 *     write the order first, the record read in a transaction that writes
 *     nothing); the audit record names the patient;
 *   - otherwise the records the request prefetched (patient, medications,
 *     statements, allergies; coord_check_given); nothing of careweave's
 *     is read, and an info card says what was not sent.
 *
 * Each finding is one card, whatever rule produced it (the table below
 * maps severity to indicator); a medication careweave cannot identify is
 * an info card saying it was not checked. Draft orders are checked against
 * the record, not against each other. Nothing is written.
 *
 * POST needs a careweave session (a Bearer token; a service user for an
 * EHR), not the JWT the CDS Hooks specification describes; requests that
 * passed the session check are recorded (api_trail_request) as an
 * operation. Errors answer an OperationOutcome, as everywhere in
 * careweave: 400 for a request that is not a CDS Hooks call of this
 * service. */
#include <string.h>

#include "api/api_int.h"
#include "coord/coord.h"

#define CDS_PATH "/cds-services"
#define API_CT_JSON "application/json; charset=utf-8"
#define SUMMARY_MAX 139 /* the specification: under 140 characters */
/* Draft orders one call may hold: each is checked in its own store
 * transaction, so a body cannot make careweave run thousands. */
#define CDS_DRAFTS_MAX 100

static const struct cds_service {
	const char *id;
	const char *hook;
	bool selections; /* order-select: only the selected drafts get cards */
	const char *title;
	const char *description;
} services[] = {
	{"careweave-medication-safety-select", "order-select", true,
	 "careweave medication safety (order select)",
	 "Checks the selected draft orders against the patient's current "
	 "medications and allergies in careweave (or the prefetched ones for a "
	 "patient careweave does not hold): drug interactions, allergies and "
	 "cross-reactivity, duplicate therapy, and the other rules careweave "
	 "runs on an order."},
	{"careweave-medication-safety-sign", "order-sign", false,
	 "careweave medication safety (order sign)",
	 "Checks every draft order about to be signed against the patient's "
	 "current medications and allergies in careweave (or the prefetched "
	 "ones for a patient careweave does not hold): drug interactions, "
	 "allergies and cross-reactivity, duplicate therapy, and the other "
	 "rules careweave runs on an order."},
};

#define NSERVICES (sizeof(services) / sizeof(services[0]))

/* The prefetch templates every service asks for; the same keys are read
 * from a request's prefetch. */
static const struct {
	const char *key;
	const char *tmpl;
	bool warn_missing; /* an info card when a patient careweave does not
			      hold comes without it */
} prefetch_keys[] = {
	{"patient",     "Patient/{{context.patientId}}", false},
	{"medications", "MedicationRequest?patient={{context.patientId}}&status=active,on-hold", true},
	{"statements",  "MedicationStatement?patient={{context.patientId}}&status=active,on-hold,intended", false},
	{"allergies",   "AllergyIntolerance?patient={{context.patientId}}", true},
};

#define NPREFETCH (sizeof(prefetch_keys) / sizeof(prefetch_keys[0]))

/* What a finding is called at the head of its card; a code not listed
 * (a rule added later) is called by its code_display. */
static const struct {
	const char *code;
	const char *title;
} titles[] = {
	{"DRG",       "Drug interaction"},
	{"ALGY",      "Allergy"},
	{"RALG",      "Possible cross-reactive allergy"},
	{"DUPTHPGEN", "Duplicate medication"},
	{"DUPTHPCLS", "Duplicate therapy"},
};

bool
api_cds_path(const char *path)
{
	size_t n = strlen(CDS_PATH);

	return !strncmp(path, CDS_PATH, n) && (!path[n] || path[n] == '/');
}

static enum cw_err
reply(struct api_req *q, json_t *v)
{
	enum cw_err err;

	if (!api_json_own(q->a, v))
		return CW_ENOMEM;
	err = api_reply_json(q, 200, v);
	if (!err)
		q->w->content_type = API_CT_JSON;
	return err;
}

/* ---- discovery ----------------------------------------------------------- */

static enum cw_err
discovery(struct api_req *q)
{
	json_t *list = json_array();

	for (size_t i = 0; list && i < NSERVICES; i++) {
		json_t *pf = json_object(), *s;

		for (size_t k = 0; pf && k < NPREFETCH; k++)
			if (json_object_set_new(pf, prefetch_keys[k].key,
						json_string(prefetch_keys[k].tmpl))) {
				json_decref(pf);
				pf = NULL;
			}
		s = pf ? json_pack("{s:s, s:s, s:s, s:s, s:o}", "hook", services[i].hook,
				   "title", services[i].title, "description",
				   services[i].description, "id", services[i].id,
				   "prefetch", pf) : NULL;
		if (!s || json_array_append_new(list, s)) {
			json_decref(list);
			list = NULL;
		}
	}
	if (!list)
		return CW_ENOMEM;
	return reply(q, json_pack("{s:o}", "services", list));
}

/* ---- cards ------------------------------------------------------------------ */

/* The cards of one call, by indicator: critical first, then warning, info. */
struct cards {
	json_t *by[3];
	bool others_said; /* the record's unidentified medications: one card */
};

enum { IND_CRITICAL, IND_WARNING, IND_INFO };
static const char *const indicator_names[] = {"critical", "warning", "info"};

static int
indicator_of(const struct coord_finding *f)
{
	if (!f->interruptive || f->severity == KB_SEV_LOW)
		return IND_INFO;
	return f->severity == KB_SEV_HIGH ? IND_CRITICAL : IND_WARNING;
}

/* s with the markdown characters that format inline escaped: names come
 * from other systems and must not become links, HTML or emphasis. ('#',
 * '-' and '+' count only at the start of a line, and every line here
 * starts with careweave's own words or the kb's.) */
static void
md_add(struct sbuf *sb, const char *s)
{
	for (; s && *s; s++) {
		if (strchr("\\`*_[]<>|~", *s))
			sbuf_addch(sb, '\\');
		sbuf_addch(sb, *s);
	}
}

/* The first max bytes of s at most, cut at a UTF-8 character boundary,
 * with "..." when cut. */
static const char *
shorten(struct arena *a, const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return s;
	n = max - 3;
	while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return arena_printf(a, "%.*s...", (int)n, s);
}

static json_t *
card_new(struct api_req *q, int ind, const char *summary, const char *detail,
	 const struct coord_finding *f)
{
	char uuid[ID_LEN + 1];
	json_t *src, *c;

	id_new(uuid);
	src = f ? json_pack("{s:s, s:{s:s, s:s, s:s}}", "label", "careweave", "topic",
			    "system", V3_ACT_CODE, "code", f->code, "display",
			    f->code_display) :
		  json_pack("{s:s}", "label", "careweave");
	c = src ? json_pack("{s:s, s:s, s:s, s:s, s:o}", "uuid", uuid, "summary",
			    shorten(q->a, summary ? summary : "careweave", SUMMARY_MAX),
			    "indicator", indicator_names[ind], "detail", detail ? detail : "",
			    "source", src) : NULL;
	return c;
}

static enum cw_err
card_add(struct cards *cs, int ind, json_t *c)
{
	if (!c)
		return CW_ENOMEM;
	if (!cs->by[ind] && !(cs->by[ind] = json_array())) {
		json_decref(c);
		return CW_ENOMEM;
	}
	return json_array_append_new(cs->by[ind], c) ? CW_ENOMEM : CW_OK;
}

/* What a draft order calls what it orders, for a suggestion's label. */
static const char *
draft_words(const json_t *res, const char *ref)
{
	const json_t *cc = json_object_get(res, "medicationCodeableConcept");
	const json_t *c;

	if (!cc)
		cc = json_object_get(res, "code");
	c = json_array_get(json_object_get(cc, "coding"), 0);
	if (api_str_at(cc, "text"))
		return api_str_at(cc, "text");
	if (api_str_at(c, "display"))
		return api_str_at(c, "display");
	return ref;
}

/* The card of finding f about the draft ref (res): what, what to do, the
 * source; and, when it asks for a decision, the suggestion to remove the
 * draft (an action delete naming it). */
static enum cw_err
finding_card(struct api_req *q, struct cards *cs, const struct coord_finding *f,
	     const json_t *res, const char *ref)
{
	const char *title = f->code_display ? f->code_display : "Finding";
	struct sbuf md = SBUF_INIT(64 * 1024);
	int ind = indicator_of(f);
	json_t *c;
	char uuid[ID_LEN + 1];

	for (size_t i = 0; i < sizeof(titles) / sizeof(titles[0]); i++)
		if (f->code && !strcmp(f->code, titles[i].code))
			title = titles[i].title;
	sbuf_adds(&md, "**");
	md_add(&md, title);
	sbuf_addf(&md, "** (severity %s)\n\n", kb_severity_name(f->severity));
	md_add(&md, f->detail);
	if (f->mitigation) {
		sbuf_adds(&md, "\n\n**What to do:** ");
		md_add(&md, f->mitigation);
	}
	if (f->source) {
		sbuf_adds(&md, "\n\n*Source:* ");
		md_add(&md, f->source);
	}
	if (md.toobig) {
		sbuf_release(&md);
		return CW_ENOMEM;
	}
	c = card_new(q, ind,
		     arena_printf(q->a, "%s: %s", title, f->summary ? f->summary : f->detail),
		     arena_strndup(q->a, md.buf, md.len), f);
	sbuf_release(&md);
	if (c && ind != IND_INFO && ref) {
		json_t *sug;

		id_new(uuid);
		sug = json_pack("[{s:s, s:s, s:[{s:s, s:s, s:[s]}]}]",
				"label", shorten(q->a, arena_printf(q->a, "Remove %s from the order",
								    draft_words(res, ref)), 80),
				"uuid", uuid, "actions", "type", "delete", "description",
				arena_printf(q->a, "Remove the draft order %s", ref),
				"resourceId", ref);
		if (!sug || json_object_set_new(c, "suggestions", sug) ||
		    json_object_set_new(c, "selectionBehavior", json_string("at-most-one"))) {
			json_decref(c);
			return CW_ENOMEM;
		}
	}
	return card_add(cs, ind, c);
}

/* The cards of one draft's report. */
static enum cw_err
report_cards(struct api_req *q, struct cards *cs, const struct coord_report *r,
	     const json_t *res, const char *ref, const bool *hidden)
{
	enum cw_err err;

	for (size_t i = 0; i < r->nfindings; i++) {
		struct coord_finding f = r->findings[i];

		/* a record the caller may not read is not named (rules.c) */
		if (hidden && hidden[i]) {
			f.detail = f.summary = api_rules_restricted_words(q->a, &r->findings[i]);
			f.mitigation = NULL;
			f.source = NULL;
			f.implicated[1] = NULL;
		}
		if ((err = finding_card(q, cs, &f, res, ref)))
			return err;
	}
	if (r->unchecked) {
		struct sbuf md = SBUF_INIT(16 * 1024);
		json_t *c;

		sbuf_adds(&md, "careweave could not check this order for interactions, "
			       "duplicates or allergies: ");
		md_add(&md, r->unchecked_what);
		sbuf_adds(&md, ".\n\nIt is **not** known to be safe: check it by hand.");
		c = md.toobig ? NULL :
		    card_new(q, IND_INFO, arena_printf(q->a, "Not checked by careweave: %s",
						       draft_words(res, ref ? ref : "a draft order")),
			     arena_strndup(q->a, md.buf, md.len), NULL);
		sbuf_release(&md);
		if ((err = card_add(cs, IND_INFO, c)))
			return err;
	}
	if (r->nunchecked_others && !cs->others_said) {
		struct sbuf md = SBUF_INIT(16 * 1024);
		json_t *c;

		cs->others_said = true;
		sbuf_adds(&md, "careweave cannot identify these current medications of the "
			       "patient, so the orders were not compared with them:");
		for (size_t i = 0; i < r->nunchecked_others; i++) {
			sbuf_adds(&md, "\n- ");
			md_add(&md, r->unchecked_others[i]);
		}
		c = md.toobig ? NULL :
		    card_new(q, IND_INFO, arena_printf(q->a, "%zu current medication%s not compared",
						       r->nunchecked_others,
						       r->nunchecked_others == 1 ? "" : "s"),
			     arena_strndup(q->a, md.buf, md.len), NULL);
		sbuf_release(&md);
		if ((err = card_add(cs, IND_INFO, c)))
			return err;
	}
	return CW_OK;
}

/* ---- the request -------------------------------------------------------------- */

static enum cw_err
bad(struct api_req *q, const char *where, const char *what)
{
	return diag_err(&q->d, CW_EINVAL, "invalid", where, "%s", what);
}

/* The resources of a prefetched value (a Bundle's entries, or one
 * resource) appended to v. */
static enum cw_err
prefetched(struct api_req *q, const char *key, const json_t *val,
	   const json_t ***v, size_t *n, size_t *cap)
{
	const char *rt = api_str_at(val, "resourceType");
	const json_t *e;
	size_t i, add;

	if (!json_is_object(val) || !rt)
		return bad(q, arena_printf(q->a, "prefetch.%s", key),
			   "A prefetched value is a FHIR resource or Bundle (or null)");
	add = !strcmp(rt, "Bundle") ? json_array_size(json_object_get(val, "entry")) : 1;
	if (*n + add > *cap) {
		size_t nc = *n + add + 8;
		const json_t **nv = arena_realloc(q->a, *v, *cap * sizeof(**v), nc * sizeof(**v));

		if (!nv)
			return CW_ENOMEM;
		*v = nv;
		*cap = nc;
	}
	if (strcmp(rt, "Bundle")) {
		(*v)[(*n)++] = val;
		return CW_OK;
	}
	json_array_foreach(json_object_get(val, "entry"), i, e) {
		const json_t *res = json_object_get(e, "resource");

		if (json_is_object(res))
			(*v)[(*n)++] = res;
	}
	return CW_OK;
}

/* The request, as far as this file reads it. */
struct call {
	const struct cds_service *svc;
	const char *patient_id;
	const char *patient_ref;         /* "Patient/<patientId>" */
	const json_t *drafts;            /* draftOrders.entry */
	const json_t *selections;        /* order-select */
	const json_t **given;            /* the prefetched records */
	size_t ngiven, capgiven;
	bool missing[NPREFETCH];         /* a key not prefetched (or null) */
};

static bool
selected(const struct call *c, const char *ref)
{
	size_t i;
	const json_t *s;

	if (!c->svc->selections)
		return true;
	json_array_foreach(c->selections, i, s)
		if (json_string_value(s) && !strcmp(json_string_value(s), ref))
			return true;
	return false;
}

/* Whether a reference names the context's patient (relative, or an
 * absolute URL of the EHR's server ending in Patient/<id>). */
static bool
about_patient(const char *ref, const struct call *c)
{
	size_t n = ref ? strlen(ref) : 0, p = strlen(c->patient_ref);

	if (!ref)
		return false;
	return !strcmp(ref, c->patient_ref) ||
	       (n > p && ref[n - p - 1] == '/' && !strcmp(ref + n - p, c->patient_ref));
}

static enum cw_err
parse_call(struct api_req *q, const json_t *body, struct call *c)
{
	const json_t *ctx, *drafts, *pf, *e;
	const char *hook = api_str_at(body, "hook"), *hi = api_str_at(body, "hookInstance");
	size_t i;
	enum cw_err err;

	if (!hook)
		return bad(q, "hook", "hook is required: the name of the hook called");
	if (strcmp(hook, c->svc->hook))
		return bad(q, "hook", arena_printf(q->a, "The service %s answers the %s hook, not '%s'",
						   c->svc->id, c->svc->hook, shorten(q->a, hook, 64)));
	if (!hi || !*hi)
		return bad(q, "hookInstance", "hookInstance is required: a UUID for this call");
	ctx = json_object_get(body, "context");
	if (!json_is_object(ctx))
		return bad(q, "context", "context is required: an object with userId, patientId "
			   "and draftOrders");
	if (!api_str_at(ctx, "userId") || !*api_str_at(ctx, "userId"))
		return bad(q, "context.userId", "context.userId is required (Practitioner/123)");
	c->patient_id = api_str_at(ctx, "patientId");
	if (!c->patient_id || !id_is_valid(c->patient_id, strlen(c->patient_id)))
		return bad(q, "context.patientId", "context.patientId is required: the FHIR id "
			   "of the patient");
	if (json_object_get(ctx, "encounterId") && !api_str_at(ctx, "encounterId"))
		return bad(q, "context.encounterId", "context.encounterId, when sent, is a string");
	if (!(c->patient_ref = arena_printf(q->a, "Patient/%s", c->patient_id)))
		return CW_ENOMEM;
	drafts = json_object_get(ctx, "draftOrders");
	if (!json_is_object(drafts) || !api_str_at(drafts, "resourceType") ||
	    strcmp(api_str_at(drafts, "resourceType"), "Bundle"))
		return bad(q, "context.draftOrders", "context.draftOrders is required: a FHIR "
			   "Bundle of the draft orders");
	c->drafts = json_object_get(drafts, "entry");
	if (c->drafts && !json_is_array(c->drafts))
		return bad(q, "context.draftOrders.entry", "draftOrders.entry is a list");
	if (json_array_size(c->drafts) > CDS_DRAFTS_MAX)
		return diag_err(&q->d, CW_ETOOBIG, "too-costly", "context.draftOrders.entry",
				"At most %d draft orders in one call", CDS_DRAFTS_MAX);
	json_array_foreach(c->drafts, i, e) {
		const json_t *res = json_object_get(e, "resource");

		if (!json_is_object(res) || !api_str_at(res, "resourceType"))
			return bad(q, arena_printf(q->a, "context.draftOrders.entry[%zu]", i),
				   "Each draft order entry holds a resource with its resourceType");
	}
	if (c->svc->selections) {
		c->selections = json_object_get(ctx, "selections");
		if (!json_is_array(c->selections) || !json_array_size(c->selections))
			return bad(q, "context.selections", "context.selections is required: the "
				   "references (MedicationRequest/123) of the selected draft orders");
		json_array_foreach(c->selections, i, e) {
			const char *s = json_string_value(e);
			size_t k;
			const json_t *d;
			bool found = false;

			if (!s)
				return bad(q, "context.selections", "Each selection is a string");
			json_array_foreach(c->drafts, k, d) {
				const json_t *res = json_object_get(d, "resource");
				const char *id = api_str_at(res, "id");

				found = found || (id && !strcmp(s, arena_printf(q->a, "%s/%s",
						  api_str_at(res, "resourceType"), id)));
			}
			if (!found)
				return bad(q, arena_printf(q->a, "context.selections[%zu]", i),
					   "A selection names no draft order of draftOrders");
		}
	}
	pf = json_object_get(body, "prefetch");
	if (pf && !json_is_null(pf) && !json_is_object(pf))
		return bad(q, "prefetch", "prefetch, when sent, is an object");
	for (size_t k = 0; k < NPREFETCH; k++) {
		const json_t *v = json_object_get(pf, prefetch_keys[k].key);

		c->missing[k] = !v || json_is_null(v);
		if (c->missing[k])
			continue;
		if (!strcmp(prefetch_keys[k].key, "patient")) {
			if (!api_str_at(v, "resourceType") || strcmp(api_str_at(v, "resourceType"), "Patient") ||
			    !api_str_at(v, "id") || strcmp(api_str_at(v, "id"), c->patient_id))
				return bad(q, "prefetch.patient", "prefetch.patient is the Patient "
					   "context.patientId names");
			continue;
		}
		if ((err = prefetched(q, prefetch_keys[k].key, v, &c->given, &c->ngiven,
				      &c->capgiven)))
			return err;
	}
	return CW_OK;
}

/* Whether careweave holds the patient and the caller may read them: then
 * careweave's own record is what the orders are checked against. */
static enum cw_err
patient_held(struct api_req *q, const char *id, bool *held)
{
	struct access_scope *sc = api_scope(q);
	struct store_res res;
	enum cw_err err;

	*held = false;
	if (q->who && !sc)
		return CW_ENOMEM;
	err = store_read(q->api->store, q->a, "Patient", id, &res);
	if (err == CW_ENOTFOUND || err == CW_EGONE)
		return CW_OK;
	if (err)
		return diag_err(&q->d, err, "exception", NULL, "The patient could not be read");
	if (!sc) {
		*held = true;
		return CW_OK;
	}
	return access_may_read_text(sc, "Patient", res.json.p, res.json.n, held);
}

/* The draft as the rules get it: a copy, about Patient/<patientId> (the
 * EHR may write its own absolute reference), valid. */
static enum cw_err
draft_of(struct api_req *q, const struct call *c, size_t i, const json_t *res,
	 json_t **out)
{
	const char *type = api_str_at(res, "resourceType");
	const char *subj = api_str_at(json_object_get(res, "subject"), "reference");
	const char *where = arena_printf(q->a, "context.draftOrders.entry[%zu].resource", i);
	json_t *cp;
	enum cw_err err;

	if (subj && !about_patient(subj, c))
		return bad(q, where, "The draft order is about another patient than "
			   "context.patientId");
	if (!(cp = api_json_own(q->a, json_deep_copy(res))))
		return CW_ENOMEM;
	if (json_object_set_new(cp, "subject", json_pack("{s:s}", "reference", c->patient_ref)))
		return CW_ENOMEM;
	err = fhir_validate(cp, type, &q->d);
	if (err == CW_EINVALID || err == CW_EINVAL)
		return diag_err(&q->d, CW_EINVAL, "invalid", where,
				"The draft order is not a valid %s (the issues above)", type);
	if (err)
		return err;
	*out = cp;
	return CW_OK;
}

static enum cw_err
call(struct api_req *q, const struct cds_service *svc)
{
	struct call c = {.svc = svc};
	struct coord_given given, drafts_given;
	struct cards cs = {0};
	json_t *body = NULL, *all;
	bool held, checked = false;
	const json_t *e;
	size_t i;
	enum cw_err err;

	if ((err = api_check_body_type(q, false)))
		return err;
	if (!q->r->body_len)
		return bad(q, NULL, "Send the CDS Hooks request as JSON");
	if ((err = fhir_parse_json(q->r->body, q->r->body_len, &body, &q->d)))
		return err;
	if (!api_json_own(q->a, body))
		return CW_ENOMEM;
	if (!json_is_object(body))
		return bad(q, NULL, "The body is not a JSON object");
	if ((err = parse_call(q, body, &c)))
		return err;
	if (!q->api->coord)
		return diag_err(&q->d, CW_EUNSUPPORTED, "not-supported", NULL,
				"This server runs without its rules");
	if ((err = patient_held(q, c.patient_id, &held)))
		return err;
	/* The other draft orders count as the patient's medications too: an
	 * order signed with another that interacts with it is found. As
	 * given records: a copy about the patient, taken as active. */
	{
		size_t nd = json_array_size(c.drafts);
		const json_t **all_given = arena_alloc(q->a, (c.ngiven + nd + 1) * sizeof(*all_given));

		if (!all_given)
			return CW_ENOMEM;
		for (size_t k = 0; k < c.ngiven; k++)
			all_given[k] = c.given[k];
		given.res = all_given;
		given.n = c.ngiven;
		drafts_given.res = all_given + c.ngiven;
		drafts_given.n = 0;
		json_array_foreach(c.drafts, i, e) {
			const json_t *res = json_object_get(e, "resource");
			json_t *cp;

			if (!coord_watches(api_str_at(res, "resourceType")))
				continue;
			if (!(cp = api_json_own(q->a, json_deep_copy(res))) ||
			    json_object_set_new(cp, "subject", json_pack("{s:s}", "reference", c.patient_ref)) ||
			    json_object_set_new(cp, "status", json_string("active")))
				return CW_ENOMEM;
			if (!api_str_at(cp, "id"))
				json_object_set_new(cp, "id", json_string(arena_printf(q->a, "draft-%zu", i)));
			all_given[c.ngiven + drafts_given.n++] = cp;
		}
		if (!held)
			given.n += drafts_given.n;
	}
	if (held) {
		/* careweave's record is read: the audit record names the patient */
		const char **p = arena_alloc(q->a, sizeof(*p));

		if (!p)
			return CW_ENOMEM;
		p[0] = c.patient_id;
		q->patients = p;
		q->npatients = 1;
		q->read_patients = true;
	}
	json_array_foreach(c.drafts, i, e) {
		const json_t *res = json_object_get(e, "resource");
		const char *type = api_str_at(res, "resourceType"), *id = api_str_at(res, "id");
		const char *ref = id ? arena_printf(q->a, "%s/%s", type, id) : NULL;
		struct coord_report r;
		json_t *draft = NULL;
		bool *hidden = NULL;

		if (!coord_watches(type) || (svc->selections && (!ref || !selected(&c, ref))))
			continue;
		if ((err = draft_of(q, &c, i, res, &draft)))
			return err;
		/* the name its copy among the drafts has, so it is not compared
		 * with itself */
		if (!id)
			json_object_set_new(draft, "id", json_string(arena_printf(q->a, "draft-%zu", i)));
		if (held) {
			q->rt = fhir_restype_find(type);
			err = api_rules_check(q, draft, &r, &hidden);
			q->rt = NULL;
		} else {
			err = coord_check_given(q->api->coord, q->a, draft, &given, &r, &q->d);
		}
		if (err || (err = report_cards(q, &cs, &r, res, ref, hidden)))
			return err;
		if (held && drafts_given.n > 1) {
			/* and with the other drafts of this call (not in the store) */
			struct coord_report rd;

			if ((err = coord_check_given(q->api->coord, q->a, draft, &drafts_given, &rd,
						     &q->d)))
				return err;
			rd.unchecked = false;         /* said by the first report */
			rd.nunchecked_others = 0;
			if ((err = report_cards(q, &cs, &rd, res, ref, NULL)))
				return err;
		}
		checked = true;
	}
	/* a patient careweave does not hold, checked over what was sent: say
	 * what was not */
	for (size_t k = 0; checked && !held && k < NPREFETCH; k++) {
		if (!prefetch_keys[k].warn_missing || !c.missing[k])
			continue;
		err = card_add(&cs, IND_INFO, card_new(q, IND_INFO,
			arena_printf(q->a, "Orders not compared with the patient's %s",
				     prefetch_keys[k].key),
			arena_printf(q->a, "careweave holds no record of this patient that you "
				     "may see, and the request's prefetch had no `%s`: the "
				     "orders were not compared with the patient's %s. Send "
				     "the prefetch the discovery document asks for.",
				     prefetch_keys[k].key, prefetch_keys[k].key), NULL));
		if (err)
			return err;
	}
	if (!(all = api_json_own(q->a, json_array())))
		return CW_ENOMEM;
	err = CW_OK;
	for (int k = IND_CRITICAL; k <= IND_INFO; k++) {
		if (cs.by[k] && json_array_extend(all, cs.by[k]))
			err = CW_ENOMEM;
		json_decref(cs.by[k]);
	}
	if (err)
		return err;
	return reply(q, json_pack("{s:O}", "cards", all));
}

/* ---- serving ------------------------------------------------------------------ */

static const struct cds_service *
service_find(const char *id, size_t n)
{
	for (size_t i = 0; i < NSERVICES; i++)
		if (strlen(services[i].id) == n && !strncmp(services[i].id, id, n))
			return &services[i];
	return NULL;
}

void
api_cds_serve(struct api_req *q)
{
	const char *m = !strcmp(q->r->method, "HEAD") ? "GET" : q->r->method;
	const char *p = q->r->path + strlen(CDS_PATH);
	const struct cds_service *svc;
	size_t n;
	enum cw_err err;

	q->route = "cds-services";
	if (q->api->local) {
		err = diag_err(&q->d, CW_ENOTFOUND, "not-found", NULL, "No such endpoint");
		api_reply_outcome(q, api_status_of(err), err);
		return;
	}
	if (!*p || !strcmp(p, "/")) {
		/* discovery: no health data, no session, not recorded */
		if (strcmp(m, "GET")) {
			http_resp_header(q->w, "Allow", "GET");
			err = diag_err(&q->d, CW_ENOTALLOWED, "not-supported", NULL,
				       "GET /cds-services lists the services; POST "
				       "/cds-services/{id} calls one");
		} else {
			err = discovery(q);
		}
		if (err)
			api_reply_outcome(q, api_status_of(err), err);
		return;
	}
	p++;
	n = strlen(p);
	if (n && p[n - 1] == '/')
		n--;
	if (!n || memchr(p, '/', n)) {
		err = diag_err(&q->d, CW_ENOTFOUND, "not-found", NULL, "No such endpoint");
		api_reply_outcome(q, api_status_of(err), err);
		return;
	}
	/* A service call reads the patient's record: a session first, as for
	 * every /fhir route (a refusal here is not recorded, as the gate's). */
	if ((err = api_auth_gate(q))) {
		q->route = "(sign-in)";
		api_reply_outcome(q, api_status_of(err), err);
		return;
	}
	q->route = "cds-services/{id}";
	q->interaction = "operation";
	svc = service_find(p, n);
	if (strcmp(m, "POST")) {
		http_resp_header(q->w, "Allow", "POST");
		err = diag_err(&q->d, CW_ENOTALLOWED, "not-supported", NULL,
			       "A CDS service is called with POST");
	} else if (!svc) {
		err = diag_err(&q->d, CW_ENOTFOUND, "not-found", NULL,
			       "careweave has no CDS service by that id; GET /cds-services "
			       "lists them");
	} else {
		err = call(q, svc);
	}
	if (err)
		api_reply_outcome(q, api_status_of(err), err);
	api_trail_request(q);
}
