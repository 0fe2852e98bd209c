/* coord/coord.c: what the rules share, and which rule a change goes to.
 *
 * coord_on_change and coord_check_proposed dispatch by resource type to
 * the rule that owns it (medsafety.c, labs.c); the reading helpers, the
 * finding keys, whom to tell and the DetectedIssue itself are the same for
 * every rule and live here, so the findings of all rules look alike and
 * api/rules.c handles them as one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coord/coord_int.h"

struct coord *
coord_new(const struct kb *kb)
{
	struct coord *co = calloc(1, sizeof(*co));

	if (co)
		co->kb = kb;
	return co;
}

void
coord_free(struct coord *co)
{
	if (co)
		free(co->holidays);
	free(co);
}

static int
cmp_day(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

	return (a > b) - (a < b);
}

enum cw_err
coord_holidays_parse(struct coord *co, const char *text, size_t n, const char *name,
		     struct diag *d)
{
	int64_t *days = NULL;
	size_t nd = 0, line = 0, nerr = d->nerrors;

	for (size_t at = 0; at < n;) {
		const char *s = text + at, *nl = memchr(s, '\n', n - at);
		size_t len = nl ? (size_t)(nl - s) : n - at, k;
		struct time_range tr;

		at += len + (nl != NULL);
		line++;
		for (k = 0; k < len && s[k] != '#'; k++)
			;
		while (k > 0 && strchr(" \t\r", s[k - 1]))
			k--;
		while (k > 0 && strchr(" \t", *s)) {
			s++;
			k--;
		}
		if (!k)
			continue;
		if (k != 10 || time_parse(s, k, TIME_DATE, &tr)) {
			diag_err(d, CW_EINVALID, "value", NULL, "%s:%zu: '%.*s' is not a date "
				 "YYYY-MM-DD", name, line, (int)(k > 40 ? 40 : k), s);
			continue;
		}
		if (nd == COORD_HOLIDAYS_MAX) {
			diag_err(d, CW_EINVALID, "too-costly", NULL, "%s:%zu: more than %d "
				 "holidays", name, line, COORD_HOLIDAYS_MAX);
			break;
		}
		if (!days && !(days = malloc(COORD_HOLIDAYS_MAX * sizeof(*days))))
			return CW_ENOMEM;
		days[nd++] = tr.lo / TIME_DAY_MS;
	}
	if (d->nerrors > nerr) {
		free(days);
		return CW_EINVALID;
	}
	if (nd) {
		size_t o = 0;

		qsort(days, nd, sizeof(*days), cmp_day);
		for (size_t i = 0; i < nd; i++)
			if (!o || days[i] != days[o - 1])
				days[o++] = days[i];
		nd = o;
	}
	free(co->holidays);
	co->holidays = days;
	co->nholidays = nd;
	return CW_OK;
}

size_t
coord_holidays(const struct coord *co)
{
	return co ? co->nholidays : 0;
}

static bool
holiday(const struct coord *co, int64_t day)
{
	return co && co->nholidays &&
	       bsearch(&day, co->holidays, co->nholidays, sizeof(day), cmp_day);
}

enum cw_err
coord_set_timezone(struct coord *co, const char *zone)
{
	char path[256];

	/* a name under the zone database, never a path out of it */
	if (!zone || !*zone || strlen(zone) > 64 || zone[0] == '/' || strstr(zone, "..") ||
	    strspn(zone, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+-/") !=
		    strlen(zone))
		return CW_EINVAL;
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", zone);
	if (access(path, R_OK) != 0)
		return CW_EINVAL;
	if (setenv("TZ", zone, 1) != 0)
		return CW_ENOMEM;
	tzset();
	co->local_days = true;
	return CW_OK;
}

/* The day number (days since 1970-01-01) of the date ms falls on, and its
 * weekday (0 Sunday), in the clinic's days or UTC's. */
static void
day_of(const struct coord *co, int64_t ms, int64_t *day, int *wd)
{
	int64_t days = ms >= 0 ? ms / TIME_DAY_MS : (ms - TIME_DAY_MS + 1) / TIME_DAY_MS;

	if (co && co->local_days) {
		time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
		struct tm tm;

		if (localtime_r(&t, &tm)) {
			*day = time_days_from_civil((int64_t)tm.tm_year + 1900,
						    (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday);
			*wd = tm.tm_wday;
			return;
		}
	}
	*day = days;
	*wd = (int)(((days + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday: 0 = Sunday */
}

bool
coord_watches(const char *type)
{
	return !strcmp(type, "MedicationRequest") ||
	       !strcmp(type, "MedicationStatement") ||
	       !strcmp(type, "ServiceRequest") ||
	       !strcmp(type, "AllergyIntolerance");
}

/* ---- reading what the record says --------------------------------------- */

const char *
coord_str_at(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static void
decref_cb(void *p)
{
	json_decref(p);
}

json_t *
coord_read_json(struct store_tx *tx, struct arena *a, const char *type,
		const char *id, struct diag *d)
{
	struct store_res r;
	json_t *v = NULL;

	if (store_tx_read(tx, a, type, id, &r) != CW_OK)
		return NULL;
	if (fhir_parse_json(r.json.p, r.json.n, &v, NULL) != CW_OK)
		return NULL;
	if (!arena_on_free(a, decref_cb, v)) {
		json_decref(v);
		return NULL;
	}
	(void)d;
	return v;
}

enum cw_err
coord_match(struct store_tx *tx, struct arena *a, const char *type,
      const char *const *kv_pairs, size_t npairs, size_t max,
      const char ***ids, size_t *n, struct diag *d)
{
	const struct fhir_restype *rt = fhir_restype_find(type);
	struct fhir_kv *kv = arena_alloc(a, npairs * sizeof(*kv));
	struct fhir_query *q = arena_zalloc(a, sizeof(*q));
	enum cw_err err;

	*ids = NULL;
	*n = 0;
	if (!rt)
		return CW_EINTERNAL;
	if (!kv || !q)
		return CW_ENOMEM;
	for (size_t i = 0; i < npairs; i++) {
		kv[i].key = kv_pairs[2 * i];
		kv[i].value = kv_pairs[2 * i + 1];
	}
	if ((err = fhir_query_parse(a, rt, kv, npairs, true, q, d)))
		return err;
	return store_tx_match(tx, a, q, max, ids, n, d);
}

size_t
coord_codings_of(const json_t *cc, struct kb_coding *out, size_t max,
		 const char **text)
{
	size_t i, n = 0;
	json_t *c;

	*text = coord_str_at(cc, "text");
	json_array_foreach(json_object_get(cc, "coding"), i, c) {
		if (n == max)
			break;
		out[n].system = coord_str_at(c, "system");
		out[n].code = coord_str_at(c, "code");
		out[n].display = coord_str_at(c, "display");
		n++;
	}
	return n;
}

struct coord_finding *
coord_add_finding(struct coord_findings *fs)
{
	if (!fs->f && !(fs->f = arena_zalloc(fs->a, COORD_FINDINGS_MAX * sizeof(*fs->f))))
		return NULL;
	if (fs->n == COORD_FINDINGS_MAX)
		return NULL;
	return &fs->f[fs->n++];
}

bool
coord_finding_known(const struct coord_findings *fs, const char *key)
{
	return fs->known && key && coord_facts_raised(fs->known, key);
}

const char *
coord_pair_key(struct arena *a, const char *rule, const char *what, const char *x,
	       const char *y)
{
	const char *part[4];
	size_t len[4], n = 0, total = 0;
	char *k, *p;

	if (strcmp(x, y) > 0) {
		const char *t = x;

		x = y;
		y = t;
	}
	part[n++] = rule;
	if (what)
		part[n++] = what;
	part[n++] = x;
	part[n++] = y;
	for (size_t i = 0; i < n; i++)
		total += (len[i] = strlen(part[i])) + 1;
	/* "rule:what:x:y", put together by hand: one is made for every pair
	 * compared on every write */
	if (!(k = arena_alloc(a, total)))
		return NULL;
	for (size_t i = 0, at = 0; i < n; i++) {
		memcpy(k + at, part[i], len[i]);
		at += len[i];
		k[at++] = i + 1 < n ? ':' : '\0';
	}
	/* a token search value: no '|' (system separator), ',' (or), '$' or '\\' */
	for (p = k; *p; p++)
		if (*p == '|' || *p == ',' || *p == '$' || *p == '\\')
			*p = '-';
	return k;
}

const char *
coord_source_words(const struct coord *co, struct arena *a, const char *keys)
{
	char *out = NULL;

	while (keys && *keys) {
		size_t n = strcspn(keys, ",");
		char key[64];
		const char *t;

		if (n && n < sizeof(key)) {
			memcpy(key, keys, n);
			key[n] = '\0';
			t = kb_source_text(co->kb, key);
			out = out ? arena_printf(a, "%s; %s", out, t ? t : key) :
				    arena_strdup(a, t ? t : key);
		}
		keys += n + (keys[n] == ',');
	}
	return out;
}

/* ---- what the workflow rules share ---------------------------------------- */

int64_t
coord_ms_of(const char *t)
{
	struct time_range r;

	if (!t || time_parse(t, strlen(t), TIME_DATETIME, &r))
		return -1;
	return r.lo;
}

bool
coord_recent(int64_t ms)
{
	return ms >= 0 && time_now_ms() - ms <= COORD_RECENT_DAYS * TIME_DAY_MS;
}

int64_t
coord_business_days(const struct coord *co, int64_t ms, int n)
{
	while (n > 0) {
		int64_t day;
		int wd;

		ms += TIME_DAY_MS;
		/* that day is not a Saturday or a Sunday, nor a holiday */
		day_of(co, ms, &day, &wd);
		if (wd != 0 && wd != 6 && !holiday(co, day))
			n--;
	}
	return ms;
}

bool
coord_inpatient_class(const char *cls)
{
	return cls && (!strcmp(cls, "IMP") || !strcmp(cls, "ACUTE") || !strcmp(cls, "NONAC") ||
		       !strcmp(cls, "OBSENC"));
}

enum cw_err
coord_add_write(struct coord_report *r, struct arena *a, json_t *res, const char *id)
{
	if (!res)
		return CW_ENOMEM;
	if (!arena_on_free(a, decref_cb, res)) {
		json_decref(res);
		return CW_ENOMEM;
	}
	if (r->nwrites == COORD_WRITES_MAX)
		return CW_ETOOBIG;
	if (!r->writes && !(r->writes = arena_zalloc(a, COORD_WRITES_MAX * sizeof(*r->writes))))
		return CW_ENOMEM;
	r->writes[r->nwrites].res = res;
	r->writes[r->nwrites].id = id;
	r->nwrites++;
	return CW_OK;
}

/* ---- whom to tell --------------------------------------------------------- */

static bool
coding_is(const json_t *cc, const char *system, const char *code)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(cc, "coding"), i, c) {
		const char *s = coord_str_at(c, "system"), *k = coord_str_at(c, "code");

		if (s && k && !strcmp(s, system) && !strcmp(k, code))
			return true;
	}
	return false;
}

static bool
says(const char *text, const char *what)
{
	return text && strcasestr(text, what) != NULL;
}

static bool
concept_says(const json_t *cc, const char *what)
{
	size_t i;
	json_t *c;

	if (says(coord_str_at(cc, "text"), what))
		return true;
	json_array_foreach(json_object_get(cc, "coding"), i, c)
		if (says(coord_str_at(c, "display"), what))
			return true;
	return false;
}

#define SCT "http://snomed.info/sct"
#define NUCC "http://nucc.org/provider-taxonomy"

/* Whether a CareTeam participant's role is one of told (enum coord_told):
 * the primary care physician, a pharmacist, the care coordinator. */
static bool
role_told(const json_t *roles, unsigned told)
{
	size_t i;
	json_t *cc;

	if (told & COORD_TELL_ALL)
		return true;
	json_array_foreach(roles, i, cc) {
		if ((told & COORD_TELL_PCP) &&
		    (coding_is(cc, SCT, "446050000") ||  /* primary care physician */
		     coding_is(cc, SCT, "62247001") ||   /* general practitioner */
		     coding_is(cc, NUCC, "207Q00000X") || /* family medicine */
		     coding_is(cc, NUCC, "208D00000X") || /* general practice */
		     concept_says(cc, "primary care")))
			return true;
		if ((told & COORD_TELL_PHARMACIST) &&
		    (coding_is(cc, SCT, "46255001") ||   /* pharmacist */
		     coding_is(cc, NUCC, "183500000X") || /* pharmacist */
		     concept_says(cc, "pharmacist")))
			return true;
		if ((told & COORD_TELL_COORDINATOR) &&
		    (coding_is(cc, SCT, "768730001") ||  /* care coordinator */
		     coding_is(cc, NUCC, "163WC0400X") || /* case management RN */
		     concept_says(cc, "care coordinator") || concept_says(cc, "case manag")))
			return true;
	}
	return false;
}

static bool
add_ref(struct arena *a, const char ***v, size_t *n, const char *ref)
{
	if (!ref || (strncmp(ref, "Practitioner/", 13) && strncmp(ref, "PractitionerRole/", 17)))
		return true;
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*v)[i], ref))
			return true;
	if (*n == COORD_NOTIFY_MAX)
		return true;
	if (!*v && !(*v = arena_alloc(a, COORD_NOTIFY_MAX * sizeof(**v))))
		return false;
	(*v)[(*n)++] = ref;
	return true;
}

/* Today as YYYY-MM-DD, for the participants' periods. */
static void
today(char out[11])
{
	char at[32];

	time_format_instant(time_now_ms(), at);
	memcpy(out, at, 10);
	out[10] = '\0';
}

enum cw_err
coord_load_notify(struct store_tx *tx, struct arena *a, const char *patient,
		  const char *author, unsigned told, struct coord_report *out,
		  struct diag *d)
{
	const char *q[] = {"subject", patient, "status", "active"};
	const char **ids;
	size_t n;
	char day[11];
	enum cw_err err;

	if (!add_ref(a, &out->notify, &out->nnotify, author))
		return CW_ENOMEM;
	err = coord_match(tx, a, "CareTeam", q, 2, 20, &ids, &n, d);
	if (err)
		return err;
	today(day);
	for (size_t i = 0; i < n; i++) {
		json_t *team = coord_read_json(tx, a, "CareTeam", ids[i], d), *p;
		size_t k;

		json_array_foreach(json_object_get(team, "participant"), k, p) {
			const char *end = coord_str_at(json_object_get(p, "period"), "end");

			if (end && strncmp(end, day, 10) < 0)
				continue;
			if (role_told(json_object_get(p, "role"), told) &&
			    !add_ref(a, &out->notify, &out->nnotify,
				     coord_str_at(json_object_get(p, "member"), "reference")))
				return CW_ENOMEM;
		}
	}
	return CW_OK;
}

/* ---- which rule --------------------------------------------------------- */

static bool
current(const char *type, const json_t *res)
{
	if (!strcmp(type, "AllergyIntolerance"))
		return coord_allergy_current(res);
	return !strcmp(type, "ServiceRequest") ? coord_lab_current(res) :
						 coord_med_current(type, res);
}

static enum cw_err
check(struct coord *co, struct store_tx *tx, struct arena *a, const char *type,
      const char *ref, const json_t *res, struct coord_report *out,
      struct diag *d)
{
	if (!ref)
		return CW_ENOMEM;
	if (!strcmp(type, "ServiceRequest"))
		return coord_lab_check(co, tx, a, ref, res, out, d);
	if (!strcmp(type, "AllergyIntolerance"))
		return coord_allergy_check(co, tx, a, ref, res, out, d);
	return coord_med_check(co, tx, a, type, ref, res, out, d);
}

/* Which findings of a change's report are on the record already (its
 * patient's kept records), and, when one is new, whom to tell. */
static enum cw_err
mark_raised(struct coord *co, struct store_tx *tx, struct arena *a,
	    struct coord_report *out, struct diag *d)
{
	size_t fresh = 0;
	enum cw_err err;

	if (!out->nfindings || !out->patient)
		return CW_OK;
	if (!out->facts) {
		if (!(out->facts = arena_zalloc(a, sizeof(*out->facts))))
			return CW_ENOMEM;
		if ((err = coord_facts_load(co, tx, a, out->patient, out->facts, d)))
			return err;
	}
	for (size_t i = 0; i < out->nfindings; i++) {
		struct coord_finding *f = &out->findings[i];

		f->raised = coord_facts_raised(out->facts, f->key);
		fresh += !f->raised;
	}
	if (!fresh || !out->notify_told)
		return CW_OK;
	return coord_load_notify(tx, a, out->patient, out->notify_author, out->notify_told,
				 out, d);
}

enum cw_err
coord_on_change(struct coord *co, struct store_tx *tx, struct arena *a,
		const char *type, const char *id, const json_t *res,
		struct coord_report *out, struct diag *d)
{
	const char *ref;
	enum cw_err err;

	memset(out, 0, sizeof(*out));
	if (co && coord_follows(type))
		return !strcmp(type, "DiagnosticReport") ?
		       coord_results(co, tx, a, id, res, out, d) :
		       coord_transitions(co, tx, a, id, res, out, d);
	if (!co || !coord_watches(type))
		return CW_OK;
	if (!(ref = arena_printf(a, "%s/%s", type, id)))
		return CW_ENOMEM;
	if (!res || !current(type, res)) {
		/* deleted, stopped, completed, revoked...: what it was part of is settled */
		out->settles = ref;
		if (!strcmp(type, "ServiceRequest") || !strcmp(type, "AllergyIntolerance")) {
			out->settle_code = "8";
			out->settle_display = "Other Action Taken";
		}
		return CW_OK;
	}
	out->new_only = true;
	if ((err = check(co, tx, a, type, ref, res, out, d)))
		return err;
	return mark_raised(co, tx, a, out, d);
}

enum cw_err
coord_check_proposed(struct coord *co, struct store_tx *tx, struct arena *a,
		     const json_t *res, struct coord_report *out, struct diag *d)
{
	const char *type = coord_str_at(res, "resourceType");

	memset(out, 0, sizeof(*out));
	if (!co || !type || !coord_watches(type))
		return CW_OK;
	return check(co, tx, a, type,
		     arena_printf(a, "%s/%s", type, coord_str_at(res, "id") ?
				  coord_str_at(res, "id") : "proposed"),
		     res, out, d);
}

/* ---- the DetectedIssue ---------------------------------------------------- */

json_t *
coord_issue(const struct coord_report *r, const struct coord_finding *f,
	    const char *when)
{
	json_t *di, *impl = json_array();

	for (size_t i = 0; impl && i < 2; i++)
		if (f->implicated[i] &&
		    json_array_append_new(impl, json_pack("{s:s}", "reference", f->implicated[i]))) {
			json_decref(impl);
			return NULL;
		}
	di = json_pack("{s:s, s:[{s:s, s:s}], s:s, s:{s:[{s:s, s:s, s:s}]}, s:s,"
		       " s:{s:s}, s:s, s:o, s:s}",
		       "resourceType", "DetectedIssue",
		       "identifier", "system", COORD_ISSUE_SYSTEM, "value", f->key,
		       "status", "final",
		       "code", "coding", "system", f->code_system ? f->code_system : V3_ACT_CODE,
		       "code", f->code,
		       "display", f->code_display,
		       "severity", kb_severity_name(f->severity),
		       "patient", "reference", r->patient,
		       "identifiedDateTime", when,
		       "implicated", impl,
		       "detail", f->detail);
	if (di && f->source)
		json_object_set_new(di, "detail", json_sprintf("%s (Source: %s.)", f->detail,
							       f->source));
	return di;
}

