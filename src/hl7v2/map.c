/* hl7v2/map.c: HL7 v2 data types as FHIR data types, and the pieces every
 * event mapping shares (problems, transaction entries).
 *
 * The conversions follow HL7's v2-to-FHIR data type maps where careweave
 * uses them: CX -> Identifier, XPN -> HumanName, XAD -> Address, XTN ->
 * ContactPoint, CWE/CE -> CodeableConcept, XCN -> Reference, DTM ->
 * dateTime. A value the sender left empty is absent; the HL7 null ("")
 * is absent too (careweave never deletes a value it holds because a feed
 * sent ""; said in the README). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir.h"
#include "hl7v2/map_int.h"

enum cw_err
hl7_map_problem(struct hl7_map *mp, long seg, unsigned field, int code, bool fatal,
		const char *fmt, ...)
{
	struct hl7_problem *p;
	va_list ap;
	char buf[240];

	if (fatal)
		mp->failed = true;
	if (mp->nproblems == HL7_MAP_PROBLEMS_MAX)
		return fatal ? CW_EINVAL : CW_OK;
	p = &mp->problems[mp->nproblems++];
	memset(p, 0, sizeof(*p));
	if (seg >= 0) {
		const char *name = hl7_segment_name(mp->m, (size_t)seg);

		p->segment = name;
		p->seq = 1;
		for (long i = 0; i < seg; i++)
			p->seq += !strcmp(hl7_segment_name(mp->m, (size_t)i), name);
	}
	p->field = field;
	p->code = code;
	p->warning = !fatal;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	p->text = arena_strdup(mp->a, buf);
	return fatal ? CW_EINVAL : CW_OK;
}

/* ---- values -------------------------------------------------------------- */

/* The value, or NULL for absent and the HL7 null. */
static const char *
get(struct hl7_map *mp, long seg, unsigned field, unsigned rep, unsigned comp,
    unsigned sub)
{
	const char *v;

	if (seg < 0)
		return NULL;
	v = hl7_get(mp->m, (size_t)seg, field, rep, comp, sub);
	return v == HL7_NULL ? NULL : v;
}

/* s percent-encoded where a URI may not hold it as it is (spaces, '|'...). */
static const char *
uri_part(struct arena *a, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = arena_alloc(a, 3 * n + 1), *o = out;

	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
		    *p == '~') {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

static bool
set_str(json_t *o, const char *key, const char *v)
{
	return !v || !*v || json_object_set_new(o, key, json_string(v)) == 0;
}

/* An empty object or array is not FHIR: drop it. */
static json_t *
nonempty(json_t *o)
{
	if (o && json_is_object(o) && json_object_size(o) == 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *
hl7_map_cx(struct hl7_map *mp, long seg, unsigned field, unsigned rep)
{
	const char *id = get(mp, seg, field, rep, 1, 0);
	const char *ns = get(mp, seg, field, rep, 4, 1);
	const char *uid = get(mp, seg, field, rep, 4, 2);
	const char *uidtype = get(mp, seg, field, rep, 4, 3);
	const char *type = get(mp, seg, field, rep, 5, 0);
	const char *system;
	json_t *ident;

	if (!id)
		return NULL;
	if ((type && !strcmp(type, "SS")) || (ns && !strcmp(ns, "USSSA")))
		system = "http://hl7.org/fhir/sid/us-ssn";
	else if (uid && uidtype && !strcasecmp(uidtype, "ISO"))
		system = arena_printf(mp->a, "urn:oid:%s", uid);
	else if (uid && uidtype && !strcasecmp(uidtype, "URI"))
		system = uid;
	else
		/* the authority's own numbering, of this kind (MR, AN...): the
		 * sending facility's when the identifier names none */
		system = arena_printf(mp->a, HL7_ID_SYSTEM_PREFIX "%s:%s",
				      uri_part(mp->a, ns ? ns : mp->h->sending_facility ?
					       mp->h->sending_facility : "unknown"),
				      uri_part(mp->a, type ? type : "ID"));
	ident = json_pack("{s:s, s:s}", "system", system ? system : "", "value", id);
	if (ident && type)
		json_object_set_new(ident, "type",
				    json_pack("{s:[{s:s, s:s}]}", "coding", "system",
					      HL7_V2_TABLE "0203", "code", type));
	return ident;
}

json_t *
hl7_map_xpn(struct hl7_map *mp, long seg, unsigned field, unsigned rep)
{
	/* 2.3 writes the family name as FN: its first subcomponent */
	const char *family = get(mp, seg, field, rep, 1, 1);
	const char *given = get(mp, seg, field, rep, 2, 0);
	const char *middle = get(mp, seg, field, rep, 3, 0);
	const char *suffix = get(mp, seg, field, rep, 4, 0);
	const char *prefix = get(mp, seg, field, rep, 5, 0);
	const char *type = get(mp, seg, field, rep, 7, 0);
	json_t *n = json_object(), *g = json_array();

	if (!n || !g) {
		json_decref(n);
		json_decref(g);
		return NULL;
	}
	set_str(n, "family", family);
	if (given)
		json_array_append_new(g, json_string(given));
	if (middle)
		json_array_append_new(g, json_string(middle));
	if (json_array_size(g))
		json_object_set_new(n, "given", g);
	else
		json_decref(g);
	if (prefix)
		json_object_set_new(n, "prefix", json_pack("[s]", prefix));
	if (suffix)
		json_object_set_new(n, "suffix", json_pack("[s]", suffix));
	if (!family && !given) {
		json_decref(n);
		return NULL;
	}
	if (type) {
		/* HL7 table 0200 to FHIR name-use */
		const char *use = !strcmp(type, "L") ? "official" : !strcmp(type, "M") ? "maiden" :
				  !strcmp(type, "D") ? "usual" :
				  (!strcmp(type, "A") || !strcmp(type, "N")) ? "nickname" :
				  !strcmp(type, "T") ? "temp" : !strcmp(type, "S") ? "anonymous" :
				  NULL;

		set_str(n, "use", use);
	}
	return n;
}

json_t *
hl7_map_xad(struct hl7_map *mp, long seg, unsigned field, unsigned rep)
{
	const char *street = get(mp, seg, field, rep, 1, 1);
	const char *other = get(mp, seg, field, rep, 2, 0);
	const char *type = get(mp, seg, field, rep, 7, 0);
	json_t *ad = json_object(), *lines = json_array();

	if (!ad || !lines) {
		json_decref(ad);
		json_decref(lines);
		return NULL;
	}
	if (street)
		json_array_append_new(lines, json_string(street));
	if (other)
		json_array_append_new(lines, json_string(other));
	if (json_array_size(lines))
		json_object_set_new(ad, "line", lines);
	else
		json_decref(lines);
	set_str(ad, "city", get(mp, seg, field, rep, 3, 0));
	set_str(ad, "state", get(mp, seg, field, rep, 4, 0));
	set_str(ad, "postalCode", get(mp, seg, field, rep, 5, 0));
	set_str(ad, "country", get(mp, seg, field, rep, 6, 0));
	if (json_object_size(ad) && type) {
		/* HL7 table 0190 to FHIR address-use */
		const char *use = !strcmp(type, "H") ? "home" : !strcmp(type, "B") ? "work" :
				  (!strcmp(type, "C") || !strcmp(type, "T")) ? "temp" :
				  !strcmp(type, "BA") ? "old" : NULL;

		set_str(ad, "use", use);
		if (!strcmp(type, "M"))
			set_str(ad, "type", "postal");
	}
	return nonempty(ad);
}

json_t *
hl7_map_xtn(struct hl7_map *mp, long seg, unsigned field, unsigned rep,
	    const char *use)
{
	const char *text = get(mp, seg, field, rep, 1, 0);
	const char *code = get(mp, seg, field, rep, 2, 0);
	const char *equip = get(mp, seg, field, rep, 3, 0);
	const char *email = get(mp, seg, field, rep, 4, 0);
	const char *area = get(mp, seg, field, rep, 6, 0);
	const char *local = get(mp, seg, field, rep, 7, 0);
	const char *system = "phone", *value = text;
	json_t *cp;

	if (email || (code && !strcmp(code, "NET")) || (equip && !strcmp(equip, "Internet"))) {
		system = "email";
		value = email ? email : text;
	} else if (equip && !strcmp(equip, "FX")) {
		system = "fax";
	}
	if (!value && local)
		value = area ? arena_printf(mp->a, "(%s) %s", area, local) : local;
	if (!value)
		return NULL;
	if (equip && !strcmp(equip, "CP"))
		use = "mobile";
	else if (code && !strcmp(code, "WPN"))
		use = "work";
	else if (code && !strcmp(code, "PRN"))
		use = "home";
	cp = json_pack("{s:s, s:s}", "system", system, "value", value);
	if (cp && use)
		json_object_set_new(cp, "use", json_string(use));
	return cp;
}

/* The FHIR system of an HL7 coding system name (HL7 table 0396). */
static const char *
coding_system(struct arena *a, const char *name)
{
	if (!name)
		return NULL;
	/* an HL7 table 0396 name is short, with no spaces: anything else in
	 * that place (a long name some senders put there) names no system */
	if (strlen(name) > 20 || strpbrk(name, " :/"))
		return NULL;
	if (!strcmp(name, "I10") || !strcmp(name, "I10C") || !strcmp(name, "ICD10CM") ||
	    !strcmp(name, "I10-CM"))
		return "http://hl7.org/fhir/sid/icd-10-cm";
	if (!strcmp(name, "I9") || !strcmp(name, "I9C") || !strcmp(name, "I9CM"))
		return "http://hl7.org/fhir/sid/icd-9-cm";
	if (!strcmp(name, "SCT") || !strcmp(name, "SNM") || !strcmp(name, "SNM3") ||
	    !strcmp(name, "SNOMED-CT"))
		return "http://snomed.info/sct";
	if (!strcmp(name, "LN") || !strcmp(name, "LOINC"))
		return "http://loinc.org";
	if (!strcmp(name, "RXNORM"))
		return "http://www.nlm.nih.gov/research/umls/rxnorm";
	if (!strcmp(name, "UCUM"))
		return "http://unitsofmeasure.org";
	if (!strncmp(name, "HL7", 3) && strlen(name) == 7)
		return arena_printf(a, HL7_V2_TABLE "%s", name + 3);
	/* a local code system: named, so the same code from the same sender
	 * is recognised again */
	return arena_printf(a, "urn:careweave:hl7v2:cs:%s", uri_part(a, name));
}

static json_t *
coding(struct hl7_map *mp, const char *code, const char *display, const char *sys)
{
	json_t *c = json_object();

	if (!c)
		return NULL;
	set_str(c, "system", coding_system(mp->a, sys));
	set_str(c, "code", code);
	set_str(c, "display", display);
	return c;
}

json_t *
hl7_map_cwe(struct hl7_map *mp, long seg, unsigned field, unsigned rep)
{
	const char *code = get(mp, seg, field, rep, 1, 0);
	const char *text = get(mp, seg, field, rep, 2, 0);
	const char *sys = get(mp, seg, field, rep, 3, 0);
	const char *code2 = get(mp, seg, field, rep, 4, 0);
	const char *text2 = get(mp, seg, field, rep, 5, 0);
	const char *sys2 = get(mp, seg, field, rep, 6, 0);
	json_t *cc = json_object(), *cs = json_array();

	if (!cc || !cs) {
		json_decref(cc);
		json_decref(cs);
		return NULL;
	}
	if (code)
		json_array_append_new(cs, coding(mp, code, text, sys));
	if (code2)
		json_array_append_new(cs, coding(mp, code2, text2, sys2));
	if (json_array_size(cs))
		json_object_set_new(cc, "coding", cs);
	else
		json_decref(cs);
	set_str(cc, "text", text ? text : text2);
	return nonempty(cc);
}

json_t *
hl7_map_table(struct hl7_map *mp, long seg, unsigned field, const char *table)
{
	const char *code = get(mp, seg, field, 0, 1, 0);
	const char *text = get(mp, seg, field, 0, 2, 0);
	json_t *cc;

	if (!code)
		return NULL;
	cc = json_pack("{s:[{s:s, s:s}]}", "coding", "system",
		       arena_printf(mp->a, HL7_V2_TABLE "%s", table), "code", code);
	if (cc && text)
		json_object_set_new(cc, "text", json_string(text));
	return cc;
}

const char *
hl7_map_dtm(struct hl7_map *mp, long seg, unsigned field, bool date)
{
	const char *v = get(mp, seg, field, 0, 1, 0);
	char out[HL7_DATETIME_MAX], *t;

	if (!v)
		return NULL;
	if (!hl7_datetime(v, mp->tz_minutes, out)) {
		hl7_map_problem(mp, seg, field, 102, false,
				"Not a valid date/time (DTM); left out");
		return NULL;
	}
	if (date && (t = strchr(out, 'T')))
		*t = '\0';
	return arena_strdup(mp->a, out);
}

json_t *
hl7_map_xcn(struct hl7_map *mp, long seg, unsigned field, unsigned rep)
{
	const char *id = get(mp, seg, field, rep, 1, 0);
	const char *family = get(mp, seg, field, rep, 2, 1);
	const char *given = get(mp, seg, field, rep, 3, 0);
	const char *auth = get(mp, seg, field, rep, 9, 1);
	json_t *r = json_object();

	if (!r)
		return NULL;
	if (id)
		json_object_set_new(r, "identifier", json_pack("{s:s, s:s}",
			"system", arena_printf(mp->a, HL7_ID_SYSTEM_PREFIX "%s:staff",
					       uri_part(mp->a, auth ? auth :
							mp->h->sending_facility ?
							mp->h->sending_facility : "unknown")),
			"value", id));
	if (family || given)
		json_object_set_new(r, "display", json_string(
			given && family ? arena_printf(mp->a, "%s %s", given, family) :
			family ? family : given));
	return nonempty(r);
}

json_t *
hl7_map_decimal(struct arena *a, const char *lit)
{
	const char *p = lit;
	char *out, *o;
	bool digits = false, dot = false;

	if (!lit)
		return NULL;
	if (*p == '+')
		p++;
	/* the JSON number of the HL7 one, its written precision kept:
	 * "-.5" is -0.5, "5." is 5 */
	if (!(out = arena_alloc(a, strlen(p) + 3)))
		return NULL;
	o = out;
	if (*p == '-')
		*o++ = *p++;
	if (*p == '.')
		*o++ = '0';
	for (; *p; p++) {
		if (*p >= '0' && *p <= '9') {
			digits = true;
			*o++ = *p;
		} else if (*p == '.' && !dot) {
			dot = true;
			if (p[1])
				*o++ = '.';
		} else {
			return NULL;
		}
	}
	*o = '\0';
	if (!digits || strlen(out) > 40)
		return NULL;
	if (!strchr(out, '.'))
		return json_integer(strtoll(out, NULL, 10));
	return json_string(arena_printf(a, FHIR_DECIMAL_MARK "%s", out));
}

/* ---- the transaction ----------------------------------------------------- */

/* s with what would end or change a query parameter percent-encoded. */
static const char *
query_part(struct arena *a, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = arena_alloc(a, 3 * strlen(s) + 1), *o = out;

	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p <= ' ' || *p >= 0x7f || *p == '%' || *p == '&' || *p == '#' ||
		    *p == '+' || *p == '=' || *p == '?') {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		} else {
			*o++ = (char)*p;
		}
	}
	*o = '\0';
	return out;
}

const char *
hl7_map_token_query(struct arena *a, const char *system, const char *value)
{
	const char *sys = query_part(a, system ? system : ""), *val = query_part(a, value ? value : "");

	return sys && val ? arena_printf(a, "%s|%s", sys, val) : NULL;
}

const char *
hl7_map_key(struct arena *a, const char *s)
{
	char *k = arena_strdup(a, s ? s : "");

	for (char *p = k; p && *p; p++)
		if (*p == '|' || *p == ',' || *p == '$' || *p == '\\')
			*p = '-';
	return k;
}

enum cw_err
hl7_map_entry(struct hl7_map *mp, const char *method, const char *url, json_t *res,
	      const char *if_none_exist, const char *if_match, const char *full_url)
{
	json_t *req = json_pack("{s:s, s:s}", "method", method, "url", url), *e;

	if (!req) {
		json_decref(res);
		return CW_ENOMEM;
	}
	if (if_none_exist)
		json_object_set_new(req, "ifNoneExist", json_string(if_none_exist));
	if (if_match)
		json_object_set_new(req, "ifMatch", json_string(if_match));
	e = json_pack("{s:o}", "request", req);
	if (!e) {
		json_decref(res);
		return CW_ENOMEM;
	}
	if (res)
		json_object_set_new(e, "resource", res);
	if (full_url)
		json_object_set_new(e, "fullUrl", json_string(full_url));
	return json_array_append_new(mp->entries, e) ? CW_ENOMEM : CW_OK;
}
