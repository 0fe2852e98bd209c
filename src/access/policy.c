/* access/policy.c: who may see and change what.
 *
 * Every authorization rule of careweave is here, behind access.h: roles,
 * care-team membership, the patient's Consent and security labels. api/
 * asks three questions (which patients may this user read at all, may
 * they read this stored resource, may they make this write) and never
 * decides anything itself. The answers are computed from the data
 * (CareTeam, Consent, PractitionerRole, RelatedPerson) through store.h,
 * once per request, in the request's arena (struct access_scope): a
 * Consent or CareTeam change is seen by the next request, and one request
 * that touches many patients reads the rules once. Break-the-glass grants
 * join the scope the same way (one lookup of the user's live grants), so
 * a grant's end is seen by the next request too. The table of what each
 * role may do is in access/README.md. */
#include <stdlib.h>
#include <string.h>

#include "access/access.h"

#define RT_SYSTEM "http://hl7.org/fhir/resource-types"
#define CONF_SYSTEM "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
#define ACT_SYSTEM "http://terminology.hl7.org/CodeSystem/v3-ActCode"
/* Pages read while loading a scope; more is a caseload we refuse. */
#define SCOPE_PAGES 100
#define SNOMED "http://snomed.info/sct"

/* Sensitive security labels: withheld unless a Consent names them. One
 * table, so adding a code is adding a line. */
static const struct {
	const char *system;
	const char *code;
} sensitive[] = {
	{CONF_SYSTEM, "R"},       /* restricted */
	{CONF_SYSTEM, "V"},       /* very restricted */
	{ACT_SYSTEM, "ETH"},      /* substance abuse */
	{ACT_SYSTEM, "GDIS"},     /* genetic disease */
	{ACT_SYSTEM, "HIV"},
	{ACT_SYSTEM, "MST"},      /* military sexual trauma */
	{ACT_SYSTEM, "PSY"},      /* psychiatry */
	{ACT_SYSTEM, "PSYTHPN"},  /* psychotherapy note */
	{ACT_SYSTEM, "SCA"},      /* sickle cell */
	{ACT_SYSTEM, "SDV"},      /* sexual assault, abuse, domestic violence */
	{ACT_SYSTEM, "SEX"},      /* sexuality and reproductive health */
	{ACT_SYSTEM, "STD"},
	{ACT_SYSTEM, "SUD"},      /* substance use disorder */
	{ACT_SYSTEM, "TBOO"},     /* taboo */
};

/* What a patient may write in their own compartment (README table). */
static const char *const patient_writable[] = {
	"Communication", "Consent", "MedicationStatement", "QuestionnaireResponse",
};

bool
access_label_sensitive(const char *system, const char *code)
{
	if (!system || !code)
		return false;
	for (size_t i = 0; i < sizeof(sensitive) / sizeof(sensitive[0]); i++)
		if (!strcmp(sensitive[i].system, system) &&
		    !strcmp(sensitive[i].code, code))
			return true;
	return false;
}

/* ---- small helpers ------------------------------------------------------- */

struct strs {
	size_t n, cap;
	const char **v;
};

static bool
strs_has(const struct strs *s, const char *x)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], x))
			return true;
	return false;
}

static enum cw_err
strs_add(struct arena *a, struct strs *s, const char *x)
{
	if (!x || strs_has(s, x))
		return CW_OK;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		const char **v = arena_realloc(a, s->v, s->cap * sizeof(*v),
					       cap * sizeof(*v));

		if (!v)
			return CW_ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n] = arena_strdup(a, x);
	return s->v[s->n++] ? CW_OK : CW_ENOMEM;
}

static bool
list_has(const char *const *v, size_t n, const char *x)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], x))
			return true;
	return false;
}

static const char *
str_at(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* Whether a FHIR Period covers now (absent: always). A bound that does not
 * parse covers nothing: a broken period grants nothing. */
static bool
period_covers(const json_t *period, int64_t now)
{
	struct time_range tr;
	const char *s;

	if (!period)
		return true;
	if ((s = str_at(period, "start"))) {
		if (time_parse(s, strlen(s), TIME_DATETIME, &tr) || now < tr.lo)
			return false;
	}
	if ((s = str_at(period, "end"))) {
		if (time_parse(s, strlen(s), TIME_DATETIME, &tr) || now > tr.hi)
			return false;
	}
	return true;
}

/* "Patient/abc" -> "abc" when ref is of type; NULL otherwise. */
static const char *
ref_id(const json_t *refobj, const char *type)
{
	const char *r = str_at(refobj, "reference");
	size_t n = strlen(type);

	if (!r || strncmp(r, type, n) || r[n] != '/' || !r[n + 1])
		return NULL;
	return r + n + 1;
}

/* ---- consent evaluation (pure) ------------------------------------------- */

static bool
actors_named(const json_t *actor_list, const char *const *actors, size_t nactors)
{
	size_t i;
	json_t *ac;

	json_array_foreach(actor_list, i, ac) {
		const char *r = str_at(json_object_get(ac, "reference"), "reference");

		if (r && list_has(actors, nactors, r))
			return true;
	}
	return false;
}

struct ceval {
	struct arena *a;
	const char *const *actors;
	size_t nactors;
	int64_t now;
	struct access_consent *out;
	struct strs types, labels, dtypes, dlabels;
};

static enum cw_err
eval_provision(struct ceval *ce, const json_t *prov, const char *ptype,
	       const json_t *pactors, bool pcovers, int depth)
{
	const char *type = str_at(prov, "type");
	const json_t *actors = json_object_get(prov, "actor");
	bool covers = pcovers && period_covers(json_object_get(prov, "period"), ce->now);
	json_t *classes = json_object_get(prov, "class");
	json_t *labels = json_object_get(prov, "securityLabel");
	json_t *c, *kids;
	size_t i;
	enum cw_err err = CW_OK;

	if (depth > 8)
		return CW_OK;
	if (!type)
		type = ptype;
	if (!json_array_size(actors))
		actors = pactors;
	if (covers && type) {
		bool deny = !strcmp(type, "deny");
		bool named = json_array_size(actors) ?
			     actors_named(actors, ce->actors, ce->nactors) :
			     deny; /* no actor: a deny covers everyone, a permit nobody */
		bool restricted = json_array_size(classes) || json_array_size(labels);

		if (named) {
			if (deny && !restricted)
				ce->out->deny_all = true;
			if (!deny) {
				ce->out->permit = true;
				if (!restricted)
					ce->out->permit_all = true;
			}
			json_array_foreach(classes, i, c) {
				const char *sys = str_at(c, "system");

				if (sys && strcmp(sys, RT_SYSTEM))
					continue;
				err = strs_add(ce->a, deny ? &ce->dtypes : &ce->types,
					       str_at(c, "code"));
				if (err)
					return err;
			}
			json_array_foreach(labels, i, c) {
				err = strs_add(ce->a, deny ? &ce->dlabels : &ce->labels,
					       str_at(c, "code"));
				if (err)
					return err;
			}
		}
	}
	kids = json_object_get(prov, "provision");
	json_array_foreach(kids, i, c) {
		err = eval_provision(ce, c, type, actors, covers, depth + 1);
		if (err)
			return err;
	}
	return CW_OK;
}

static bool
privacy_scope(const json_t *consent)
{
	json_t *codings = json_object_get(json_object_get(consent, "scope"), "coding");
	json_t *c;
	size_t i;

	json_array_foreach(codings, i, c) {
		const char *code = str_at(c, "code");

		if (code && !strcmp(code, "patient-privacy"))
			return true;
	}
	return false;
}

enum cw_err
access_consent_eval(struct arena *a, const json_t *consent,
		    const char *const *actors, size_t nactors, int64_t now,
		    struct access_consent *out)
{
	struct ceval ce = {.a = a, .actors = actors, .nactors = nactors,
			   .now = now, .out = out};
	const char *status = str_at(consent, "status");
	const json_t *prov = json_object_get(consent, "provision");
	enum cw_err err;

	if (!status || strcmp(status, "active") || !privacy_scope(consent) ||
	    !json_is_object(prov))
		return CW_OK;
	/* Carry what earlier Consents of the patient said. */
	ce.types = (struct strs){out->ntypes, out->ntypes, out->types};
	ce.labels = (struct strs){out->nlabels, out->nlabels, out->labels};
	ce.dtypes = (struct strs){out->ndeny_types, out->ndeny_types, out->deny_types};
	ce.dlabels = (struct strs){out->ndeny_labels, out->ndeny_labels, out->deny_labels};
	err = eval_provision(&ce, prov, NULL, NULL, true, 0);
	out->types = ce.types.v, out->ntypes = ce.types.n;
	out->labels = ce.labels.v, out->nlabels = ce.labels.n;
	out->deny_types = ce.dtypes.v, out->ndeny_types = ce.dtypes.n;
	out->deny_labels = ce.dlabels.v, out->ndeny_labels = ce.dlabels.n;
	return err;
}

bool
access_careteam_member(const json_t *team, const char *const *actors,
		       size_t nactors, int64_t now)
{
	const char *status = str_at(team, "status");
	json_t *parts = json_object_get(team, "participant"), *p;
	size_t i;

	if (!status || strcmp(status, "active") ||
	    !period_covers(json_object_get(team, "period"), now))
		return false;
	json_array_foreach(parts, i, p) {
		const char *r = str_at(json_object_get(p, "member"), "reference");

		if (r && list_has(actors, nactors, r) &&
		    period_covers(json_object_get(p, "period"), now))
			return true;
	}
	return false;
}

/* ---- grants ------------------------------------------------------------- */

/* Whether a stored resource's meta.security labels are all covered. */
static bool
labels_covered(const struct access_grant *g, const json_t *res)
{
	json_t *sec = json_object_get(json_object_get(res, "meta"), "security");
	json_t *c;
	size_t i;

	json_array_foreach(sec, i, c) {
		const char *sys = str_at(c, "system"), *code = str_at(c, "code");

		if (code && list_has(g->deny_labels, g->ndeny_labels, code))
			return false;
		if (!access_label_sensitive(sys, code) || g->all_labels)
			continue;
		if (!list_has(g->labels, g->nlabels, code))
			return false;
	}
	return true;
}

bool
access_grant_covers(const struct access_grant *g, const char *type,
		    const json_t *res)
{
	if (!g->read)
		return false;
	if (list_has(g->deny_types, g->ndeny_types, type))
		return false;
	if (!g->all_types && !list_has(g->types, g->ntypes, type))
		return false;
	return !res || labels_covered(g, res);
}

/* ---- the scope --------------------------------------------------------- */

struct pgrant {
	const char *pid;
	struct access_grant g;
};

struct access_scope {
	struct access *ac;
	struct store *s;
	struct arena *a;
	const struct access_who *who;
	int64_t now;
	bool loaded;
	enum cw_err load_err;
	size_t n, cap;
	struct pgrant *p;           /* the patients in reach */
	const char **ids;           /* their ids, for the search restriction */
	struct strs glass;          /* of them, those reached only through a
				       break-the-glass grant (few: looked
				       through for every audit record) */
};

struct access_scope *
access_scope_new(struct access *ac, struct store *s, struct arena *a,
		 const struct access_who *who)
{
	struct access_scope *sc = arena_zalloc(a, sizeof(*sc));

	if (!sc)
		return NULL;
	sc->ac = ac;
	sc->s = s;
	sc->a = a;
	sc->who = who;
	sc->now = ac ? access_now(ac) : time_now_ms();
	return sc;
}

bool
access_scope_all(const struct access_scope *sc)
{
	return !sc || !sc->who || sc->who->role == ACCESS_SERVICE;
}

bool
access_scope_directory_read(const struct access_scope *sc)
{
	return access_scope_all(sc) || sc->who->role != ACCESS_ADMIN;
}

static struct pgrant *
find_patient(struct access_scope *sc, const char *pid)
{
	for (size_t i = 0; i < sc->n; i++)
		if (!strcmp(sc->p[i].pid, pid))
			return &sc->p[i];
	return NULL;
}

static struct pgrant *
add_patient(struct access_scope *sc, const char *pid)
{
	struct pgrant *pg = find_patient(sc, pid);

	if (pg)
		return pg;
	if (sc->n == sc->cap) {
		size_t cap = sc->cap ? sc->cap * 2 : 8;
		struct pgrant *p = arena_realloc(sc->a, sc->p, sc->cap * sizeof(*p),
						 cap * sizeof(*p));

		if (!p)
			return NULL;
		sc->p = p;
		sc->cap = cap;
	}
	pg = &sc->p[sc->n];
	memset(pg, 0, sizeof(*pg));
	pg->pid = arena_strdup(sc->a, pid);
	if (!pg->pid)
		return NULL;
	sc->n++;
	return pg;
}

/* Runs type?key=value over every page, calling fn on each parsed match. */
typedef enum cw_err (*each_fn)(struct access_scope *sc, const json_t *res,
			       void *ctx);

static enum cw_err
search_each(struct access_scope *sc, const char *type, const char *key,
	    const char *value, each_fn fn, void *ctx)
{
	const struct fhir_restype *rt = fhir_restype_find(type);
	struct fhir_kv kv[2] = {{key, value}, {"_count", "1000"}};
	struct fhir_query fq;
	struct store_page page;
	struct diag d;
	const char *cursor = NULL;
	enum cw_err err;

	if (!rt)
		return CW_EINTERNAL;
	diag_init(&d, sc->a);
	for (int pg = 0; pg < SCOPE_PAGES; pg++) {
		memset(&fq, 0, sizeof(fq));
		err = fhir_query_parse(sc->a, rt, kv, 2, true, &fq, &d);
		if (err)
			return err;
		fq.cursor = cursor;
		memset(&page, 0, sizeof(page));
		err = store_search(sc->s, sc->a, &fq, &page, &d);
		if (err)
			return err;
		for (size_t i = 0; i < page.n; i++) {
			json_t *res = NULL;

			if (fhir_parse_json(page.res[i].json.p, page.res[i].json.n,
					    &res, NULL))
				continue;
			err = fn(sc, res, ctx);
			json_decref(res);
			if (err)
				return err;
		}
		if (!page.next)
			return CW_OK;
		cursor = page.next;
	}
	return CW_ETOOBIG;
}

struct actors {
	struct strs v;
};

static enum cw_err
role_cb(struct access_scope *sc, const json_t *role, void *ctx)
{
	struct actors *act = ctx;
	const json_t *active = json_object_get(role, "active");
	const char *org;
	enum cw_err err;

	if (json_is_false(active) ||
	    !period_covers(json_object_get(role, "period"), sc->now))
		return CW_OK;
	err = strs_add(sc->a, &act->v,
		       arena_printf(sc->a, "PractitionerRole/%s", str_at(role, "id")));
	org = ref_id(json_object_get(role, "organization"), "Organization");
	if (!err && org)
		err = strs_add(sc->a, &act->v, arena_printf(sc->a, "Organization/%s", org));
	return err;
}

struct teams {
	struct actors *act;
	size_t nbase;               /* actors before CareTeams were added */
};

static enum cw_err
team_cb(struct access_scope *sc, const json_t *team, void *ctx)
{
	struct teams *t = ctx;
	const char *pid = ref_id(json_object_get(team, "subject"), "Patient");

	if (!pid || !access_careteam_member(team, t->act->v.v, t->nbase, sc->now))
		return CW_OK;
	if (!add_patient(sc, pid))
		return CW_ENOMEM;
	/* Consents may name the team itself as the actor. */
	return strs_add(sc->a, &t->act->v,
			arena_printf(sc->a, "CareTeam/%s", str_at(team, "id")));
}

struct consents {
	const char *const *actors;
	size_t nactors;
	struct access_consent *per; /* one per scope patient, same order */
};

static enum cw_err
consent_cb(struct access_scope *sc, const json_t *consent, void *ctx)
{
	struct consents *cs = ctx;
	const char *pid = ref_id(json_object_get(consent, "patient"), "Patient");

	for (size_t i = 0; pid && i < sc->n; i++)
		if (!strcmp(sc->p[i].pid, pid))
			return access_consent_eval(sc->a, consent, cs->actors,
						   cs->nactors, sc->now, &cs->per[i]);
	return CW_OK;
}

/* Reads the Consents of every patient in the scope for actors. */
static enum cw_err
load_consents(struct access_scope *sc, const char *const *actors, size_t nactors,
	      struct access_consent **per)
{
	struct consents cs = {actors, nactors, NULL};
	struct sbuf sb = SBUF_INIT(16 << 20);
	enum cw_err err = CW_OK;
	char *list;

	cs.per = arena_zalloc(sc->a, (sc->n + 1) * sizeof(*cs.per));
	if (!cs.per)
		return CW_ENOMEM;
	*per = cs.per;
	if (!sc->n)
		return CW_OK;
	for (size_t i = 0; i < sc->n; i++)
		sbuf_addf(&sb, "%sPatient/%s", i ? "," : "", sc->p[i].pid);
	list = sb.toobig ? NULL : arena_strdup(sc->a, sb.buf);
	sbuf_release(&sb);
	if (!list)
		return CW_ETOOBIG;
	err = search_each(sc, "Consent", "patient", list, consent_cb, &cs);
	return err;
}

static void
grant_from_consent(struct access_grant *g, const struct access_consent *c)
{
	g->labels = c->labels, g->nlabels = c->nlabels;
	g->deny_types = c->deny_types, g->ndeny_types = c->ndeny_types;
	g->deny_labels = c->deny_labels, g->ndeny_labels = c->ndeny_labels;
}

static enum cw_err
load_clinician(struct access_scope *sc)
{
	struct actors act = {{0}};
	struct teams t = {&act, 0};
	struct access_consent *per;
	struct sbuf sb = SBUF_INIT(1 << 20);
	const char *link = sc->who->link;
	char *list;
	enum cw_err err;

	if (!link || strncmp(link, "Practitioner/", 13))
		return CW_OK;
	err = strs_add(sc->a, &act.v, link);
	if (!err)
		err = search_each(sc, "PractitionerRole", "practitioner", link,
				  role_cb, &act);
	if (err)
		return err;
	for (size_t i = 0; i < act.v.n; i++)
		sbuf_addf(&sb, "%s%s", i ? "," : "", act.v.v[i]);
	list = sb.toobig ? NULL : arena_strdup(sc->a, sb.buf);
	sbuf_release(&sb);
	if (!list)
		return CW_ETOOBIG;
	t.nbase = act.v.n;
	err = search_each(sc, "CareTeam", "participant", list, team_cb, &t);
	if (!err)
		err = load_consents(sc, act.v.v, act.v.n, &per);
	if (err)
		return err;
	for (size_t i = 0; i < sc->n; i++) {
		struct access_grant *g = &sc->p[i].g;

		grant_from_consent(g, &per[i]);
		/* The care team gives access; the patient may take it back. */
		g->read = g->write = !per[i].deny_all;
		g->all_types = true;
	}
	return CW_OK;
}

static enum cw_err
load_caregiver(struct access_scope *sc)
{
	struct access_consent *per;
	struct store_res rp;
	const char *link = sc->who->link, *pid;
	const char *actors[1] = {link};
	json_t *res = NULL;
	struct access_grant *g;
	enum cw_err err;

	if (!link || strncmp(link, "RelatedPerson/", 14))
		return CW_OK;
	err = store_read(sc->s, sc->a, "RelatedPerson", link + 14, &rp);
	if (err == CW_ENOTFOUND || err == CW_EGONE)
		return CW_OK;
	if (err)
		return err;
	if (fhir_parse_json(rp.json.p, rp.json.n, &res, NULL))
		return CW_OK;
	pid = ref_id(json_object_get(res, "patient"), "Patient");
	if (pid && !json_is_false(json_object_get(res, "active")))
		pid = arena_strdup(sc->a, pid);
	else
		pid = NULL;
	json_decref(res);
	if (!pid)
		return CW_OK;
	if (!add_patient(sc, pid))
		return CW_ENOMEM;
	err = load_consents(sc, actors, 1, &per);
	if (err)
		return err;
	g = &sc->p[0].g;
	grant_from_consent(g, &per[0]);
	g->all_types = per[0].permit_all;
	g->types = per[0].types, g->ntypes = per[0].ntypes;
	/* Caregivers see only what a permit names them for. */
	g->read = !per[0].deny_all && (per[0].permit_all || per[0].ntypes);
	g->write = false;
	if (!g->read)
		sc->n = 0;
	return CW_OK;
}

/* The patients of the user's live break-the-glass grants: reached as a
 * care-team patient is, and with nothing withheld. The emergency overrides
 * a Consent deny (of everything, of a class or of a label) and the
 * sensitive labels: that is what breaking the glass is for, and what the
 * notification and the audit record answer for (README.md). */
static enum cw_err
load_glass(struct access_scope *sc)
{
	const char **ids;
	size_t n;
	enum cw_err err;

	if (!sc->who->uid)
		return CW_OK;
	err = store_glass_live(sc->s, sc->a, sc->who->uid, sc->now, &ids, &n);
	for (size_t i = 0; !err && i < n; i++) {
		struct pgrant *pg = find_patient(sc, ids[i]);
		/* the care team gave less than the grant does: what is read
		 * of this patient is read because of the grant */
		bool widened = !pg || !pg->g.read || !pg->g.write ||
			       !pg->g.all_types || !pg->g.all_labels;

		if (!(pg = add_patient(sc, ids[i])))
			return CW_ENOMEM;
		pg->g = (struct access_grant){.read = true, .write = true,
					      .all_types = true, .all_labels = true};
		if (widened && (err = strs_add(sc->a, &sc->glass, pg->pid)))
			return err;
	}
	return err;
}

static enum cw_err
load(struct access_scope *sc)
{
	struct pgrant *pg;
	enum cw_err err = CW_OK;

	if (sc->loaded)
		return sc->load_err;
	sc->loaded = true;
	if (access_role_clinical(sc->who->role)) {
		err = load_clinician(sc);
		if (!err)
			err = load_glass(sc);
	} else if (sc->who->role == ACCESS_CAREGIVER) {
		err = load_caregiver(sc);
	} else if (sc->who->role == ACCESS_PATIENT && sc->who->link &&
		   !strncmp(sc->who->link, "Patient/", 8)) {
		/* Their own compartment, all of it, sensitive parts included. */
		pg = add_patient(sc, sc->who->link + 8);
		if (!pg)
			err = CW_ENOMEM;
		else
			pg->g = (struct access_grant){.read = true, .write = true,
						      .all_types = true,
						      .all_labels = true};
	}
	if (!err) {
		sc->ids = arena_alloc(sc->a, (sc->n + 1) * sizeof(*sc->ids));
		if (!sc->ids)
			err = CW_ENOMEM;
		for (size_t i = 0; !err && i < sc->n; i++)
			sc->ids[i] = sc->p[i].pid;
	}
	if (err)
		sc->n = 0;
	sc->load_err = err;
	return err;
}

enum cw_err
access_patient_scope(struct access_scope *sc, const char *pid,
		     struct access_grant *out)
{
	struct pgrant *pg;
	enum cw_err err;

	memset(out, 0, sizeof(*out));
	if (access_scope_all(sc)) {
		*out = (struct access_grant){.read = true, .write = true,
					     .all_types = true, .all_labels = true};
		return CW_OK;
	}
	err = load(sc);
	if (err)
		return err;
	pg = find_patient(sc, pid);
	if (pg)
		*out = pg->g;
	return CW_OK;
}

enum cw_err
access_reachable(struct access_scope *sc, const char *const **ids, size_t *n,
		 bool *all)
{
	enum cw_err err;

	*ids = NULL;
	*n = 0;
	*all = access_scope_all(sc);
	if (*all)
		return CW_OK;
	err = load(sc);
	if (err)
		return err;
	*ids = sc->ids;
	*n = sc->n;
	return CW_OK;
}

/* ---- checks on resources ----------------------------------------------- */

static enum cw_err
patients_of(struct arena *a, const struct fhir_restype *rt, const json_t *res,
	    const char ***ids, size_t *n)
{
	struct fhir_idx *rows = NULL;
	size_t nrows = 0;
	enum cw_err err;

	*ids = NULL;
	*n = 0;
	if (!res || (!rt->ncompartment && strcmp(rt->name, "Patient")))
		return CW_OK;
	err = fhir_extract(a, res, rt, &rows, &nrows);
	if (!err)
		err = fhir_compartment(a, res, rt, rows, nrows, ids, n);
	return err;
}

/* Whether who's link is among the recipients of res (a Communication). */
static bool
addressed_to(const struct access_who *who, const json_t *res)
{
	json_t *rcpt = json_object_get(res, "recipient"), *r;
	size_t i;

	if (!who->link)
		return false;
	json_array_foreach(rcpt, i, r) {
		const char *ref = str_at(r, "reference");

		if (ref && !strcmp(ref, who->link))
			return true;
	}
	return false;
}

enum cw_err
access_may_read_res(struct access_scope *sc, const struct fhir_restype *rt,
		    const json_t *res, bool *ok)
{
	struct access_grant g;
	const char **ids;
	size_t n;
	enum cw_err err;

	*ok = access_scope_all(sc);
	if (*ok)
		return CW_OK;
	/* A Subscription is its owner's (the user who last wrote it): it
	 * names an endpoint and may carry its secret (channel.header), and
	 * it delivers with the owner's rights, so no one else reads or
	 * changes it. One lookup of the owner row. */
	if (!strcmp(rt->name, "Subscription")) {
		const char *id = str_at(res, "id"), *owner = NULL;

		err = id ? store_sub_owner_get(sc->s, sc->a, id, &owner) : CW_OK;
		*ok = !err && owner && sc->who->username &&
		      !strcmp(owner, sc->who->username);
		return err;
	}
	/* A privacy officer's Communications: those addressed to them,
	 * whoever's compartment they are in (or none). */
	if (sc->who->role == ACCESS_PRIVACY_OFFICER &&
	    !strcmp(rt->name, "Communication")) {
		*ok = addressed_to(sc->who, res);
		return CW_OK;
	}
	err = patients_of(sc->a, rt, res, &ids, &n);
	if (err)
		return err;
	if (!n) {
		*ok = access_scope_directory_read(sc);
		return CW_OK;
	}
	if (sc->who->role == ACCESS_PRIVACY_OFFICER)
		return CW_OK; /* no clinical data */
	for (size_t i = 0; i < n; i++) {
		err = access_patient_scope(sc, ids[i], &g);
		if (err)
			return err;
		if (!access_grant_covers(&g, rt->name, res))
			return CW_OK;
	}
	*ok = true;
	return CW_OK;
}

enum cw_err
access_may_read_text(struct access_scope *sc, const char *type,
		     const char *json, size_t n, bool *ok)
{
	const struct fhir_restype *rt = fhir_restype_find(type);
	json_t *res = NULL;
	enum cw_err err;

	*ok = access_scope_all(sc);
	if (*ok)
		return CW_OK;
	if (!rt || !n || fhir_parse_json(json, n, &res, NULL))
		return CW_OK; /* a delete version or unreadable: withheld */
	err = access_may_read_res(sc, rt, res, ok);
	json_decref(res);
	return err;
}

static bool
same_set(const char **a, size_t na, const char **b, size_t nb)
{
	for (size_t i = 0; i < na; i++)
		if (!list_has(b, nb, a[i]))
			return false;
	for (size_t i = 0; i < nb; i++)
		if (!list_has(a, na, b[i]))
			return false;
	return true;
}

enum cw_err
access_check_write(struct access_scope *sc, const struct fhir_restype *rt,
		   const json_t *res, const json_t *cur, const char *loc,
		   struct diag *d)
{
	enum access_role role;
	struct access_grant g;
	const char **pn = NULL, **pc = NULL;
	size_t nn = 0, nc = 0;
	bool ok;
	enum cw_err err;

	if (access_scope_all(sc))
		return CW_OK;
	role = sc->who->role;
	if (role == ACCESS_PRIVACY_OFFICER)
		return diag_err(d, CW_EFORBIDDEN, "forbidden", loc,
				"A privacy officer reads notifications; they change no records");
	if (cur) {
		err = access_may_read_res(sc, rt, cur, &ok);
		if (err)
			return err;
		if (!ok)
			return diag_err(d, CW_ENOTFOUND, "not-found", loc,
					"%s/%.64s is not known", rt->name,
					str_at(cur, "id") ? str_at(cur, "id") : "?");
		err = patients_of(sc->a, rt, cur, &pc, &nc);
		if (err)
			return err;
	}
	err = patients_of(sc->a, rt, res, &pn, &nn);
	if (err)
		return err;
	for (size_t i = 0; i < nn; i++) {
		err = access_patient_scope(sc, pn[i], &g);
		if (err)
			return err;
		if (!g.read)
			return diag_err(d, CW_ENOTFOUND, "not-found", loc,
					"Patient/%s is not known", pn[i]);
	}
	if (res && cur && nc && !same_set(pn, nn, pc, nc))
		return diag_err(d, CW_EFORBIDDEN, "forbidden", loc,
				"A resource cannot be moved to another patient's record");
	if (!nn && !nc) {
		/* The care directory: clinical roles keep it up to date. */
		if (access_role_clinical(role))
			return CW_OK;
		return diag_err(d, CW_EFORBIDDEN, "forbidden", loc,
				"Your role may not change %s resources", rt->name);
	}
	if (role == ACCESS_PATIENT &&
	    !list_has(patient_writable, sizeof(patient_writable) / sizeof(patient_writable[0]),
		      rt->name))
		return diag_err(d, CW_EFORBIDDEN, "forbidden", loc,
				"A patient may not change %s resources", rt->name);
	for (size_t i = 0; i < nn + nc; i++) {
		err = access_patient_scope(sc, i < nn ? pn[i] : pc[i - nn], &g);
		if (err)
			return err;
		if (!g.write)
			return diag_err(d, CW_EFORBIDDEN, "forbidden", loc,
					"You may read but not change this record");
		if (res && !access_grant_covers(&g, rt->name, res))
			return diag_err(d, CW_EFORBIDDEN, "forbidden", loc,
					"The patient's consent does not cover this data for you");
	}
	return CW_OK;
}

/* ---- break-the-glass ------------------------------------------------------ */

bool
access_scope_glass(const struct access_scope *sc, const char *pid)
{
	if (!sc || !sc->loaded || sc->load_err || !pid)
		return false;
	return strs_has(&sc->glass, pid);
}

bool
access_may_end_glass(const struct access_who *who)
{
	return access_may_break_glass(who) ||
	       (who && who->role == ACCESS_PRIVACY_OFFICER && who->uid);
}

bool
access_may_break_glass(const struct access_who *who)
{
	return who && access_role_clinical(who->role) && who->uid && who->link &&
	       !strncmp(who->link, "Practitioner/", 13);
}

enum cw_err
access_glass_check(const struct access *ac, const char *reason, size_t n,
		   long minutes, struct diag *d)
{
	size_t chars = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)reason[i];

		if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
			return diag_err(d, CW_EINVALID, "value", "reason",
					"The reason holds a control character");
		chars += (c & 0xC0) != 0x80;
	}
	if (chars < ACCESS_GLASS_REASON_MIN || chars > ACCESS_GLASS_REASON_MAX)
		return diag_err(d, CW_EINVALID, "value", "reason",
				"The reason must be %d to %d characters",
				ACCESS_GLASS_REASON_MIN, ACCESS_GLASS_REASON_MAX);
	if (minutes < 1 || minutes > (long)access_glass_max(ac))
		return diag_err(d, CW_EINVALID, "value", "minutes",
				"minutes must be from 1 to %u", access_glass_max(ac));
	return CW_OK;
}

/* Case-insensitive substring. */
static bool
says(const char *s, const char *what)
{
	return s && strcasestr(s, what);
}

/* Whether a CareTeam participant's role names a care coordinator: SNOMED
 * 768730001, or "care coordinator" in its text or a coding's display (the
 * demo teams say "Nurse care coordinator"). */
static bool
role_coordinator(const json_t *roles)
{
	json_t *cc, *c;
	size_t i, j;

	json_array_foreach(roles, i, cc) {
		if (says(str_at(cc, "text"), "care coordinator"))
			return true;
		json_array_foreach(json_object_get(cc, "coding"), j, c) {
			const char *sys = str_at(c, "system"), *code = str_at(c, "code");

			if (says(str_at(c, "display"), "care coordinator") ||
			    (sys && code && !strcmp(sys, SNOMED) &&
			     !strcmp(code, "768730001")))
				return true;
		}
	}
	return false;
}

struct recipients {
	struct strs coordinators; /* Practitioner links of coordinator users */
	struct strs out;
};

/* The Practitioner a PractitionerRole reference stands for, or NULL. */
static const char *
role_practitioner(struct access_scope *sc, const char *ref)
{
	struct store_res r;
	const char *p = NULL;
	json_t *res = NULL;

	if (store_read(sc->s, sc->a, "PractitionerRole", ref + 17, &r) ||
	    fhir_parse_json(r.json.p, r.json.n, &res, NULL))
		return NULL;
	if (!json_is_false(json_object_get(res, "active")) &&
	    period_covers(json_object_get(res, "period"), sc->now))
		p = str_at(json_object_get(res, "practitioner"), "reference");
	p = p ? arena_strdup(sc->a, p) : NULL;
	json_decref(res);
	return p;
}

static enum cw_err
recipient_team_cb(struct access_scope *sc, const json_t *team, void *ctx)
{
	struct recipients *rc = ctx;
	const char *status = str_at(team, "status");
	json_t *p;
	size_t i;
	enum cw_err err = CW_OK;

	if (!status || strcmp(status, "active") ||
	    !period_covers(json_object_get(team, "period"), sc->now))
		return CW_OK;
	json_array_foreach(json_object_get(team, "participant"), i, p) {
		const char *r = str_at(json_object_get(p, "member"), "reference");
		const char *who = NULL;

		if (!r || !period_covers(json_object_get(p, "period"), sc->now))
			continue;
		bool prac = !strncmp(r, "Practitioner/", 13);
		bool prole = !strncmp(r, "PractitionerRole/", 17);

		if (role_coordinator(json_object_get(p, "role")) &&
		    (prac || prole || !strncmp(r, "Organization/", 13))) {
			who = r; /* the team says so */
		} else {
			/* a coordinator user, as themselves or through a role */
			who = prac ? r : prole ? role_practitioner(sc, r) : NULL;
			if (who && !strs_has(&rc->coordinators, who))
				who = NULL;
		}
		if (who && (err = strs_add(sc->a, &rc->out, who)))
			return err;
	}
	return CW_OK;
}

enum cw_err
access_glass_recipients(struct access_scope *sc, const char *patient_id,
			const char ***refs, size_t *n)
{
	struct recipients rc = {{0}, {0}};
	struct store_user *u;
	size_t nu;
	const char *subject;
	enum cw_err err;

	*refs = NULL;
	*n = 0;
	err = store_user_list(sc->s, sc->a, &u, &nu);
	for (size_t i = 0; !err && i < nu; i++) {
		if (u[i].disabled || !u[i].link ||
		    strncmp(u[i].link, "Practitioner/", 13))
			continue;
		if (!strcmp(u[i].role, access_role_name(ACCESS_COORDINATOR)))
			err = strs_add(sc->a, &rc.coordinators, u[i].link);
		else if (!strcmp(u[i].role, access_role_name(ACCESS_PRIVACY_OFFICER)))
			err = strs_add(sc->a, &rc.out, u[i].link);
	}
	if (err)
		return err;
	subject = arena_printf(sc->a, "Patient/%s", patient_id);
	if (!subject)
		return CW_ENOMEM;
	err = search_each(sc, "CareTeam", "subject", subject, recipient_team_cb, &rc);
	if (err)
		return err;
	*refs = rc.out.v;
	*n = rc.out.n;
	return CW_OK;
}

bool
access_role_may_ask(const struct access_who *who, const struct fhir_restype *rt)
{
	if (!who || who->role != ACCESS_PRIVACY_OFFICER || !rt)
		return true;
	if (!strcmp(rt->name, "Communication"))
		return true;
	return !rt->ncompartment && strcmp(rt->name, "Patient");
}

bool
access_search_by_ref(const struct access_scope *sc, const struct fhir_restype *rt,
		     const char **param, const char **value)
{
	if (access_scope_all(sc) || sc->who->role != ACCESS_PRIVACY_OFFICER ||
	    !sc->who->link || strcmp(rt->name, "Communication"))
		return false;
	*param = "recipient";
	*value = sc->who->link;
	return true;
}
