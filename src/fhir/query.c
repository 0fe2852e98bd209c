/* fhir/query.c: FHIR search parameters parsed into struct fhir_query.
 *
 * The parser turns decoded key=value pairs into a typed structure: each
 * value is parsed by its parameter's type (a date into a UTC range, a token
 * into system|code, a quantity into number, system and unit) so the store
 * only ever binds typed values; nothing here builds SQL and no input text is
 * interpreted beyond the FHIR search grammar.
 *
 * Shape of a key: name[:modifier][.chained-name[:modifier]], or the reverse
 * chain _has:Type:refparam:param, or a result parameter (_count, _sort,
 * _include, ...). One level of chaining and of _has is supported.
 *
 * Every problem is reported (all of them, not the first) as an issue whose
 * location is the parameter key. Counts are bounded (QUERY_MAX_PARAMS keys,
 * QUERY_MAX_VALUES values per key) so a query cannot make the parser
 * allocate without bound; all memory comes from the caller's arena. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fhir/fhir_int.h"

#define QUERY_MAX_PARAMS 100
#define QUERY_MAX_VALUES 100

struct qctx {
	struct arena *a;
	struct diag *d;
	bool strict;
	bool nomem;
	const char *key; /* the key being parsed: every issue's location */
};

/* Outcome of parsing one search parameter. */
enum pres { P_OK, P_UNKNOWN, P_ERROR };

static const struct {
	const char *name;
	enum fhir_modifier mod;
} modifiers[] = {
	{"exact", MOD_EXACT},   {"contains", MOD_CONTAINS},
	{"missing", MOD_MISSING}, {"not", MOD_NOT},
	{"text", MOD_TEXT},     {"identifier", MOD_IDENTIFIER},
	{"above", MOD_ABOVE},   {"below", MOD_BELOW},
};

static const char *const prefixes[] = {
	[PFX_EQ] = "eq", [PFX_NE] = "ne", [PFX_GT] = "gt", [PFX_LT] = "lt",
	[PFX_GE] = "ge", [PFX_LE] = "le", [PFX_SA] = "sa", [PFX_EB] = "eb",
	[PFX_AP] = "ap",
};

static const char *const sptype_names[] = {
	[SP_NUMBER] = "number",       [SP_DATE] = "date",
	[SP_STRING] = "string",       [SP_TOKEN] = "token",
	[SP_REFERENCE] = "reference", [SP_COMPOSITE] = "composite",
	[SP_QUANTITY] = "quantity",   [SP_URI] = "uri",
	[SP_SPECIAL] = "special",
};

static enum pres bad(struct qctx *c, const char *code, const char *fmt, ...)
	CW_PRINTF(3, 4);

/* Adds an error issue located at the current key. */
static enum pres
bad(struct qctx *c, const char *code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	diag_add(c->d, DIAG_ERROR, code, c->key, "%s", msg);
	return P_ERROR;
}

static char *
dupn(struct qctx *c, const char *s, size_t n)
{
	char *p = arena_strndup(c->a, s, n);

	if (!p)
		c->nomem = true;
	return p;
}

static char *
dup(struct qctx *c, const char *s)
{
	return dupn(c, s, strlen(s));
}

/* ---- escaping -------------------------------------------------------- */

/* Splits s on sep where it is not escaped by a backslash. Pieces keep their
 * escapes (unescape() removes them once the last split is done). At most
 * max pieces; returns false (and sets *n past max) when there are more. */
static bool
split(struct qctx *c, const char *s, char sep, size_t max, char ***out,
      size_t *n)
{
	size_t k = 1, i;
	const char *start = s;
	char **v;

	for (i = 0; s[i]; i++) {
		if (s[i] == '\\' && s[i + 1]) {
			i++;
			continue;
		}
		if (s[i] == sep)
			k++;
	}
	*n = k;
	if (k > max)
		return false;
	v = arena_alloc(c->a, k * sizeof(*v));
	if (!v) {
		c->nomem = true;
		return false;
	}
	k = 0;
	for (i = 0;; i++) {
		if (s[i] == '\\' && s[i + 1]) {
			i++;
			continue;
		}
		if (s[i] == sep || !s[i]) {
			v[k++] = dupn(c, start, (size_t)(s + i - start));
			if (!s[i])
				break;
			start = s + i + 1;
		}
	}
	*out = v;
	return !c->nomem;
}

/* Removes the FHIR search escapes \, \| \$ \\ in place. */
static char *
unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (*r == '\\' && (r[1] == ',' || r[1] == '|' || r[1] == '$' ||
				   r[1] == '\\'))
			r++;
		*w++ = *r;
	}
	*w = '\0';
	return s;
}

/* ---- value parsers --------------------------------------------------- */

/* Takes a comparison prefix off *s. A value starting with two letters that
 * are not a prefix is an error; no letters is eq. */
static bool
take_prefix(const char **s, enum fhir_prefix *p)
{
	const char *v = *s;

	*p = PFX_EQ;
	if (!((v[0] >= 'a' && v[0] <= 'z') || (v[0] >= 'A' && v[0] <= 'Z')))
		return true;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		if (v[0] == prefixes[i][0] && v[1] == prefixes[i][1]) {
			*p = (enum fhir_prefix)i;
			*s = v + 2;
			return true;
		}
	}
	return false;
}

/* A FHIR decimal: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. *half is
 * half the unit of the last written digit (the implicit precision). */
static bool
parse_decimal(const char *s, double *v, double *half)
{
	const char *p = s;
	int dec = 0;
	long exp10 = 0;

	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return false;
	if (*p == '.') {
		p++;
		if (!(*p >= '0' && *p <= '9'))
			return false;
		while (*p >= '0' && *p <= '9') {
			p++;
			dec++;
		}
	}
	if (*p == 'e' || *p == 'E') {
		char *end;

		p++;
		if (!((*p >= '0' && *p <= '9') ||
		      ((*p == '+' || *p == '-') && p[1] >= '0' && p[1] <= '9')))
			return false;
		errno = 0;
		exp10 = strtol(p, &end, 10);
		if (errno || exp10 > 400 || exp10 < -400)
			return false;
		p = end;
	}
	if (*p)
		return false;
	if (dec > 400)
		return false;
	*v = strtod(s, NULL);
	if (!isfinite(*v))
		return false;
	*half = 0.5 * pow(10.0, (double)(exp10 - dec));
	return true;
}

static bool
is_type_name(const char *s, size_t n)
{
	if (n == 0 || n > 64 || s[0] < 'A' || s[0] > 'Z')
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')))
			return false;
	return true;
}

static bool
sp_targets(const struct fhir_searchparam *sp, const char *type)
{
	if (sp->ntargets == 0)
		return true;
	for (size_t i = 0; i < sp->ntargets; i++)
		if (strcmp(sp->targets[i], type) == 0)
			return true;
	return false;
}

static enum pres
parse_number(struct qctx *c, const char *s, bool allow_prefix,
	     struct fhir_qvalue *v)
{
	double half;

	if (allow_prefix && !take_prefix(&s, &v->prefix))
		return bad(c, "value", "'%.40s' has an unknown prefix (use eq, ne, gt, lt, ge, le, sa, eb or ap)", s);
	if (!parse_decimal(s, &v->num, &half))
		return bad(c, "value", "'%.40s' is not a number", s);
	v->num_lo = v->num - half;
	v->num_hi = v->num + half;
	return P_OK;
}

static enum pres
parse_date(struct qctx *c, const char *s, struct fhir_qvalue *v)
{
	struct time_range r;

	if (!take_prefix(&s, &v->prefix))
		return bad(c, "value", "'%.40s' has an unknown prefix (use eq, ne, gt, lt, ge, le, sa, eb or ap)", s);
	if (time_parse(s, strlen(s), TIME_SEARCH, &r) != CW_OK)
		return bad(c, "value", "'%.40s' is not a valid date (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss][zone])", s);
	v->lo = r.lo;
	v->hi = r.hi;
	return P_OK;
}

/* system|code, |code, system|, code. */
static enum pres
parse_token(struct qctx *c, char *s, struct fhir_qvalue *v)
{
	char **parts;
	size_t n;

	if (!split(c, s, '|', 2, &parts, &n)) {
		if (c->nomem)
			return P_ERROR;
		return bad(c, "value", "'%.40s' has more than one '|' (use system|code)", s);
	}
	if (n == 1) {
		v->code = unescape(parts[0]);
		return P_OK;
	}
	v->system = unescape(parts[0]);     /* "" means: no system */
	v->code = *parts[1] ? unescape(parts[1]) : NULL;
	if (!*v->system && !v->code)
		return bad(c, "value", "'%.40s' names neither a system nor a code", s);
	return P_OK;
}

/* [prefix]number[|system|code] */
static enum pres
parse_quantity(struct qctx *c, char *s, struct fhir_qvalue *v)
{
	char **parts;
	size_t n;
	enum pres r;

	if (!split(c, s, '|', 3, &parts, &n) || (n != 1 && n != 3)) {
		if (c->nomem)
			return P_ERROR;
		return bad(c, "value", "'%.40s' is not a quantity (number|system|code)", s);
	}
	r = parse_number(c, unescape(parts[0]), true, v);
	if (r != P_OK)
		return r;
	if (n == 3) {
		v->system = *parts[1] ? unescape(parts[1]) : NULL;
		v->code = *parts[2] ? unescape(parts[2]) : NULL;
	}
	return P_OK;
}

/* Type/id, Type/id/_history/v, id, or an absolute URL (kept raw). */
static enum pres
parse_reference(struct qctx *c, const struct fhir_searchparam *sp,
		const char *mod_type, char *s, struct fhir_qvalue *v)
{
	char *slash;
	const char *type = NULL, *id;

	s += fhir_own_base_len(s); /* our own base: a local reference */
	id = s;
	if (strchr(s, ':')) {
		v->raw = s; /* http://..., urn:uuid:... */
		return P_OK;
	}
	slash = strchr(s, '/');
	if (slash) {
		char *rest = slash + 1, *h = strchr(rest, '/');

		if (h) {
			/* only Type/id/_history/v */
			char *ver = h + 1;

			if (strncmp(ver, "_history/", 9) != 0 || !ver[9] ||
			    strchr(ver + 9, '/'))
				return bad(c, "value", "'%.60s' is not a reference (Type/id)", s);
			*h = '\0';
		}
		*slash = '\0';
		type = s;
		id = rest;
		if (!is_type_name(type, strlen(type)) || !fhir_type_find(type))
			return bad(c, "value", "'%.40s' is not a resource type", type);
		if (mod_type && strcmp(mod_type, type) != 0)
			return bad(c, "value", "reference type '%.40s' contradicts the type modifier", type);
		if (!sp_targets(sp, type))
			return bad(c, "value", "this parameter cannot refer to a %.40s", type);
	} else if (mod_type) {
		type = mod_type;
	} else if (sp->ntargets == 1) {
		type = sp->targets[0];
	}
	if (!id_is_valid(id, strlen(id)))
		return bad(c, "value", "'%.64s' is not a valid resource id", id);
	v->ref_type = type;
	v->ref_id = id;
	return P_OK;
}

static enum pres
parse_value(struct qctx *c, const struct fhir_searchparam *sp,
	    const struct fhir_qparam *qp, char *s, struct fhir_qvalue *v)
{
	if (qp->mod == MOD_MISSING) {
		if (strcmp(s, "true") == 0)
			v->missing = true;
		else if (strcmp(s, "false") != 0)
			return bad(c, "value", "'%.40s': :missing takes true or false", s);
		return P_OK;
	}
	switch (sp->type) {
	case SP_NUMBER:
		return parse_number(c, unescape(s), true, v);
	case SP_DATE:
		return parse_date(c, unescape(s), v);
	case SP_STRING:
		unescape(s);
		v->raw = s;
		v->text = fhir_normalize(c->a, s, strlen(s));
		if (!v->text)
			c->nomem = true;
		return c->nomem ? P_ERROR : P_OK;
	case SP_TOKEN:
		if (qp->mod == MOD_TEXT) {
			unescape(s);
			v->text = fhir_normalize(c->a, s, strlen(s));
			if (!v->text)
				c->nomem = true;
			return c->nomem ? P_ERROR : P_OK;
		}
		return parse_token(c, s, v);
	case SP_REFERENCE:
		if (qp->mod == MOD_IDENTIFIER)
			return parse_token(c, s, v);
		return parse_reference(c, sp, qp->mod == MOD_TYPE ? qp->mod_type : NULL,
				       unescape(s), v);
	case SP_QUANTITY:
		return parse_quantity(c, s, v);
	case SP_URI:
		v->raw = unescape(s);
		return P_OK;
	case SP_COMPOSITE:
	case SP_SPECIAL:
		break;
	}
	return bad(c, "not-supported", "%s parameters are not supported", sptype_names[sp->type]);
}

/* Values of one parameter: comma-separated, ORed. Empty items are skipped. */
static enum pres
parse_values(struct qctx *c, const struct fhir_searchparam *sp,
	     struct fhir_qparam *qp, const char *value)
{
	char **items;
	size_t n;
	enum pres res = P_OK;

	if (!split(c, value, ',', QUERY_MAX_VALUES, &items, &n)) {
		if (c->nomem)
			return P_ERROR;
		diag_add(c->d, DIAG_ERROR, "too-costly", c->key,
			 "more than %d values for one parameter", QUERY_MAX_VALUES);
		return P_ERROR;
	}
	qp->values = arena_zalloc(c->a, n * sizeof(*qp->values));
	if (!qp->values) {
		c->nomem = true;
		return P_ERROR;
	}
	for (size_t i = 0; i < n; i++) {
		struct fhir_qvalue *v = &qp->values[qp->nvalues];

		if (!*items[i])
			continue;
		if (parse_value(c, sp, qp, items[i], v) != P_OK)
			res = P_ERROR;
		else
			qp->nvalues++;
	}
	if (res == P_OK && qp->nvalues == 0)
		return bad(c, "value", "%s", "the parameter has no value");
	return res;
}

/* ---- parameters ------------------------------------------------------ */

/* Checks that modifier m suits sp; sets mod/mod_type. */
static enum pres
parse_modifier(struct qctx *c, const struct fhir_searchparam *sp,
	       const char *m, struct fhir_qparam *qp)
{
	enum fhir_sptype t = sp->type;
	bool ok;

	for (size_t i = 0; i < sizeof(modifiers) / sizeof(modifiers[0]); i++) {
		if (strcmp(m, modifiers[i].name) != 0)
			continue;
		qp->mod = modifiers[i].mod;
		switch (qp->mod) {
		case MOD_MISSING:
			ok = true;
			break;
		case MOD_EXACT:
		case MOD_CONTAINS:
			ok = t == SP_STRING;
			break;
		case MOD_NOT:
		case MOD_TEXT:
			ok = t == SP_TOKEN;
			break;
		case MOD_IDENTIFIER:
			ok = t == SP_REFERENCE;
			break;
		case MOD_ABOVE:
		case MOD_BELOW:
			ok = t == SP_URI;
			break;
		default:
			ok = false;
			break;
		}
		if (!ok) {
			diag_add(c->d, DIAG_ERROR, "not-supported", c->key,
				 "the :%s modifier does not apply to %s parameters",
				 modifiers[i].name, sptype_names[t]);
			return P_ERROR;
		}
		return P_OK;
	}
	if (t == SP_REFERENCE && is_type_name(m, strlen(m))) {
		if (!fhir_restype_find(m))
			return bad(c, "not-supported", "'%.40s' is not a resource type this server serves", m);
		if (!sp_targets(sp, m))
			return bad(c, "value", "this parameter cannot refer to a %.40s", m);
		qp->mod = MOD_TYPE;
		qp->mod_type = fhir_restype_find(m)->name;
		return P_OK;
	}
	return bad(c, "not-supported", "unknown or unsupported modifier ':%.40s'", m);
}

/* spec is name[:modifier][.chain]. Fills qp. */
static enum pres
parse_param(struct qctx *c, const struct fhir_restype *rt, const char *spec,
	    const char *value, bool allow_chain, struct fhir_qparam *qp)
{
	size_t nlen = strcspn(spec, ":.");
	const char *name = dupn(c, spec, nlen), *mod = NULL, *chain = NULL;
	const struct fhir_searchparam *sp;
	enum pres r;

	if (!name)
		return P_ERROR;
	if (spec[nlen] == ':') {
		const char *m = spec + nlen + 1;
		size_t mlen = strcspn(m, ".");

		mod = dupn(c, m, mlen);
		if (!mod)
			return P_ERROR;
		if (m[mlen] == '.')
			chain = m + mlen + 1;
	} else if (spec[nlen] == '.') {
		chain = spec + nlen + 1;
	}
	sp = fhir_sp_find(rt, name);
	if (!sp || !sp->supported)
		return P_UNKNOWN;
	qp->sp = sp;

	if (mod && *mod == '\0')
		return bad(c, "invalid", "%s", "empty modifier");
	if (mod && (r = parse_modifier(c, sp, mod, qp)) != P_OK)
		return r;
	if (!chain)
		return parse_values(c, sp, qp, value);

	/* subject:Patient.name=x / subject.name=x */
	if (!allow_chain)
		return bad(c, "not-supported", "%s", "only one level of chaining is supported");
	if (sp->type != SP_REFERENCE)
		return bad(c, "invalid", "'%.40s' is not a reference parameter and cannot be chained", sp->code);
	if (qp->mod != MOD_NONE && qp->mod != MOD_TYPE)
		return bad(c, "invalid", "%s", "only a type modifier may precede a chain");
	if (!*chain)
		return bad(c, "invalid", "%s", "empty chained parameter");
	if (!qp->mod_type) {
		if (sp->ntargets != 1) {
			diag_add(c->d, DIAG_ERROR, "invalid", c->key,
				 "'%s' may refer to several resource types: name one, as in %s:Patient.%s",
				 sp->code, sp->code, chain);
			return P_ERROR;
		}
		qp->mod_type = sp->targets[0];
	}
	qp->chain_rt = fhir_restype_find(qp->mod_type);
	if (!qp->chain_rt)
		return bad(c, "not-supported", "'%.40s' is not a resource type this server serves", qp->mod_type);
	qp->chain = arena_zalloc(c->a, sizeof(*qp->chain));
	if (!qp->chain) {
		c->nomem = true;
		return P_ERROR;
	}
	r = parse_param(c, qp->chain_rt, chain, value, false, qp->chain);
	return r; /* P_UNKNOWN: the caller decides by strictness */
}

/* _has:Type:refparam:param[:modifier]=value */
static enum pres
parse_has(struct qctx *c, const struct fhir_restype *rt, const char *key,
	  const char *value, struct fhir_qparam *qp)
{
	const char *p = key + 5, *colon;
	char *type, *ref;
	enum pres r;

	colon = strchr(p, ':');
	if (!colon)
		goto out_shape;
	type = dupn(c, p, (size_t)(colon - p));
	p = colon + 1;
	colon = strchr(p, ':');
	if (!colon || !type)
		goto out_shape;
	ref = dupn(c, p, (size_t)(colon - p));
	p = colon + 1;
	if (!ref || !*p)
		goto out_shape;
	if (strncmp(p, "_has", 4) == 0)
		return bad(c, "not-supported", "%s", "only one level of _has is supported");
	if (strchr(p, '.'))
		return bad(c, "not-supported", "%s", "chaining inside _has is not supported");
	qp->has_rt = fhir_restype_find(type);
	if (!qp->has_rt)
		return bad(c, "not-supported", "'%.40s' is not a resource type this server serves", type);
	qp->has_sp = fhir_sp_find(qp->has_rt, ref);
	if (!qp->has_sp || !qp->has_sp->supported || qp->has_sp->type != SP_REFERENCE)
		return bad(c, "invalid", "'%.40s' is not a reference parameter of that type", ref);
	if (!sp_targets(qp->has_sp, rt->name)) {
		diag_add(c->d, DIAG_ERROR, "invalid", c->key,
			 "%s.%s never refers to a %s", qp->has_rt->name,
			 qp->has_sp->code, rt->name);
		return P_ERROR;
	}
	qp->has = arena_zalloc(c->a, sizeof(*qp->has));
	if (!qp->has) {
		c->nomem = true;
		return P_ERROR;
	}
	r = parse_param(c, qp->has_rt, p, value, false, qp->has);
	if (r == P_UNKNOWN)
		return bad(c, "not-supported", "unknown or unsupported parameter '%.40s' in _has", p);
	return r;
out_shape:
	return bad(c, "invalid", "%s", "_has takes the form _has:Type:reference-parameter:parameter");
}

/* ---- result parameters ----------------------------------------------- */

static enum pres
parse_count(struct qctx *c, const char *v, struct fhir_query *q)
{
	unsigned long n = 0;

	if (!*v || strlen(v) > 9)
		goto out_bad;
	for (const char *p = v; *p; p++) {
		if (*p < '0' || *p > '9')
			goto out_bad;
		n = n * 10 + (unsigned long)(*p - '0');
	}
	q->count = n > FHIR_COUNT_MAX ? FHIR_COUNT_MAX : (unsigned)n;
	if (n == 0)
		q->summary = SUMMARY_COUNT;
	return P_OK;
out_bad:
	return bad(c, "value", "_count must be a whole number from 0 to 999999999, not '%.20s'", v);
}

static enum pres
parse_sort(struct qctx *c, const struct fhir_restype *rt, const char *v,
	   struct fhir_query *q)
{
	char **items;
	size_t n;
	enum pres res = P_OK;

	if (!split(c, v, ',', QUERY_MAX_VALUES, &items, &n))
		return c->nomem ? P_ERROR : bad(c, "too-costly", "%s", "too many sort keys");
	q->sort = arena_zalloc(c->a, n * sizeof(*q->sort));
	if (!q->sort) {
		c->nomem = true;
		return P_ERROR;
	}
	q->nsort = 0;
	for (size_t i = 0; i < n; i++) {
		const char *name = items[i];
		struct fhir_sort *s = &q->sort[q->nsort];
		const struct fhir_searchparam *sp;

		if (*name == '-') {
			s->desc = true;
			name++;
		}
		if (!*name) {
			res = bad(c, "value", "%s", "empty sort key");
			continue;
		}
		if (strcmp(name, "_id") == 0) {
			s->sp = NULL;
			q->nsort++;
			continue;
		}
		sp = fhir_sp_find(rt, name);
		if (!sp || !sp->supported || sp->type == SP_COMPOSITE ||
		    sp->type == SP_SPECIAL) {
			res = bad(c, "not-supported", "cannot sort by '%.40s'", name);
			continue;
		}
		s->sp = sp;
		q->nsort++;
	}
	return res;
}

/* Type:param[:target] or * (and Type:*). */
static enum pres
parse_include(struct qctx *c, const struct fhir_restype *rt, const char *v,
	      bool rev, bool iterate, struct fhir_query *q)
{
	struct fhir_include *inc = &q->include[q->ninclude];
	char **parts;
	size_t n;

	memset(inc, 0, sizeof(*inc));
	inc->rev = rev;
	inc->iterate = iterate;
	if (strcmp(v, "*") == 0) {
		inc->src = rt;
		q->ninclude++;
		return P_OK;
	}
	if (!split(c, v, ':', 3, &parts, &n) || n < 2)
		return c->nomem ? P_ERROR : bad(c, "value", "'%.60s' is not Type:parameter[:targetType]", v);
	inc->src = fhir_restype_find(parts[0]);
	if (!inc->src)
		return bad(c, "not-supported", "'%.40s' is not a resource type this server serves", parts[0]);
	if (!rev && !iterate && inc->src != rt)
		return bad(c, "invalid", "_include must start with the searched type (or use _include:iterate), not '%.40s'", parts[0]);
	if (strcmp(parts[1], "*") != 0) {
		inc->sp = fhir_sp_find(inc->src, parts[1]);
		if (!inc->sp || !inc->sp->supported || inc->sp->type != SP_REFERENCE)
			return bad(c, "invalid", "'%.40s' is not a reference parameter of that type", parts[1]);
		if (rev && !iterate && !sp_targets(inc->sp, rt->name))
			return bad(c, "invalid", "'%.60s' never refers to the searched type", v);
	}
	if (n == 3) {
		inc->target = fhir_restype_find(parts[2]);
		if (!inc->target)
			return bad(c, "not-supported", "'%.40s' is not a resource type this server serves", parts[2]);
		if (inc->sp && !sp_targets(inc->sp, parts[2]))
			return bad(c, "invalid", "the parameter never refers to a %.40s", parts[2]);
	}
	q->ninclude++;
	return P_OK;
}

static enum pres
parse_elements(struct qctx *c, const struct fhir_restype *rt, const char *v,
	       struct fhir_query *q)
{
	char **items;
	size_t n;
	enum pres res = P_OK;

	if (!split(c, v, ',', QUERY_MAX_VALUES, &items, &n))
		return c->nomem ? P_ERROR : bad(c, "too-costly", "%s", "too many _elements");
	q->elements = arena_alloc(c->a, n * sizeof(*q->elements));
	if (!q->elements) {
		c->nomem = true;
		return P_ERROR;
	}
	q->nelements = 0;
	for (size_t i = 0; i < n; i++) {
		const char *e = items[i];
		const struct fhir_elem *el = NULL;

		if (!*e)
			continue;
		for (size_t j = 0; rt->type && j < rt->type->nelems; j++)
			if (strcmp(rt->type->elems[j].name, e) == 0)
				el = &rt->type->elems[j];
		if (!el)
			el = fhir_elem_find(rt->type, e, NULL);
		if (!el) {
			if (c->strict)
				res = bad(c, "value", "'%.40s' is not an element of this resource type", e);
			continue;
		}
		q->elements[q->nelements++] = el->name;
	}
	return res;
}

static enum pres
parse_enum(struct qctx *c, const char *v, const char *const *names, size_t n,
	   int *out)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v, names[i]) == 0) {
			*out = (int)i;
			return P_OK;
		}
	}
	return bad(c, "value", "'%.20s' is not an allowed value", v);
}

/* Parameters about the result rather than the match. P_UNKNOWN: not one. */
static enum pres
parse_result_param(struct qctx *c, const struct fhir_restype *rt,
		   const char *key, const char *value, struct fhir_query *q)
{
	static const char *const summaries[] = {
		[SUMMARY_FALSE] = "false", [SUMMARY_TRUE] = "true",
		[SUMMARY_COUNT] = "count", [SUMMARY_TEXT] = "text",
		[SUMMARY_DATA] = "data",
	};
	static const char *const totals[] = {
		[TOTAL_NONE] = "none", [TOTAL_ESTIMATE] = "estimate",
		[TOTAL_ACCURATE] = "accurate",
	};
	int e = 0;
	enum pres r;

	if (strcmp(key, "_format") == 0 || strcmp(key, "_pretty") == 0)
		return P_OK;
	if (strcmp(key, "_count") == 0)
		return parse_count(c, value, q);
	if (strcmp(key, "_sort") == 0)
		return parse_sort(c, rt, value, q);
	if (strcmp(key, "_summary") == 0) {
		r = parse_enum(c, value, summaries, 5, &e);
		if (r == P_OK)
			q->summary = (enum fhir_summary)e;
		return r;
	}
	if (strcmp(key, "_total") == 0) {
		r = parse_enum(c, value, totals, 3, &e);
		if (r == P_OK)
			q->total = (enum fhir_total)e;
		return r;
	}
	if (strcmp(key, "_elements") == 0)
		return parse_elements(c, rt, value, q);
	if (strcmp(key, "_cursor") == 0) {
		q->cursor = dup(c, value);
		return q->cursor ? P_OK : P_ERROR;
	}
	if (strncmp(key, "_include", 8) == 0 || strncmp(key, "_revinclude", 11) == 0) {
		bool rev = key[1] == 'r';
		const char *m = key + (rev ? 11 : 8);
		bool iterate = false;

		if (strcmp(m, ":iterate") == 0 || strcmp(m, ":recurse") == 0)
			iterate = true;
		else if (*m)
			return P_UNKNOWN;
		return parse_include(c, rt, value, rev, iterate, q);
	}
	return P_UNKNOWN;
}

/* ---- entry point ----------------------------------------------------- */

static void
ignore(struct qctx *c, struct fhir_query *q, const char *key)
{
	const char *k = dup(c, key);

	if (k)
		q->ignored[q->nignored++] = k;
}

enum cw_err
fhir_query_parse(struct arena *a, const struct fhir_restype *rt,
		 const struct fhir_kv *kv, size_t n, bool strict,
		 struct fhir_query *q, struct diag *d)
{
	struct qctx c = {.a = a, .d = d, .strict = strict};
	size_t nerr0 = d->nerrors;

	memset(q, 0, sizeof(*q));
	q->rt = rt;
	q->count = FHIR_COUNT_DEFAULT;
	if (!rt)
		return diag_err(d, CW_EINVAL, "not-supported", NULL,
				"resource type not supported");
	if (n > QUERY_MAX_PARAMS)
		return diag_err(d, CW_EINVAL, "too-costly", NULL,
				"more than %d search parameters", QUERY_MAX_PARAMS);
	if (n) {
		q->params = arena_zalloc(a, n * sizeof(*q->params));
		q->include = arena_zalloc(a, n * sizeof(*q->include));
		q->ignored = arena_zalloc(a, n * sizeof(*q->ignored));
		if (!q->params || !q->include || !q->ignored)
			return diag_err(d, CW_ETOOBIG, "too-costly", NULL,
					"the query is too large");
	}
	for (size_t i = 0; i < n && !c.nomem; i++) {
		const char *key = kv[i].key, *value = kv[i].value ? kv[i].value : "";
		struct fhir_qparam *qp = &q->params[q->nparams];
		enum pres r;

		if (!key || !*key) {
			diag_add(d, DIAG_ERROR, "invalid", NULL, "a parameter has no name");
			continue;
		}
		c.key = key;
		if (key[0] == '_' && strncmp(key, "_has:", 5) != 0 &&
		    strncmp(key, "_has.", 5) != 0) {
			r = parse_result_param(&c, rt, key, value, q);
			if (r != P_UNKNOWN)
				continue;
		}
		memset(qp, 0, sizeof(*qp));
		if (strncmp(key, "_has", 4) == 0 && (key[4] == ':' || key[4] == '\0' || key[4] == '.'))
			r = key[4] == ':' ? parse_has(&c, rt, key, value, qp) :
			    bad(&c, "invalid", "%s", "_has takes the form _has:Type:reference-parameter:parameter");
		else
			r = parse_param(&c, rt, key, value, true, qp);
		if (r == P_OK) {
			q->nparams++;
		} else if (r == P_UNKNOWN) {
			if (strict)
				diag_add(d, DIAG_ERROR, "not-supported", key,
					 "unknown or unsupported search parameter '%s' for %s",
					 key, rt->name);
			else
				ignore(&c, q, key);
		}
	}
	if (c.nomem)
		return diag_err(d, CW_ETOOBIG, "too-costly", NULL,
				"the query is too large");
	return d->nerrors > nerr0 ? CW_EINVAL : CW_OK;
}

/* ---- query strings -------------------------------------------------------- */

char *
fhir_url_decode(struct arena *a, const char *s, size_t n, bool plus)
{
	char *out = arena_alloc(a, n + 1), *o = out;
	size_t i;

	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		if (plus && s[i] == '+') {
			*o++ = ' ';
		} else if (s[i] == '%' && i + 2 < n && hex_value(s[i + 1]) >= 0 &&
			   hex_value(s[i + 2]) >= 0) {
			*o++ = (char)(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

enum cw_err
fhir_form_split(struct arena *a, const char *s, size_t n, struct fhir_kv **kv,
	       size_t *nkv)
{
	size_t cap = 1, i, k = 0, len, eq;
	struct fhir_kv *out;
	const char *p = s, *end = s + n;

	for (i = 0; i < n; i++)
		cap += s[i] == '&';
	out = arena_zalloc(a, cap * sizeof(*out));
	if (!out)
		return CW_ENOMEM;
	while (p < end) {
		len = (size_t)(end - p);
		for (i = 0; i < len && p[i] != '&'; i++)
			;
		len = i;
		if (len) {
			for (eq = 0; eq < len && p[eq] != '='; eq++)
				;
			out[k].key = fhir_url_decode(a, p, eq, true);
			out[k].value = eq < len ? fhir_url_decode(a, p + eq + 1,
							     len - eq - 1, true)
						: arena_strdup(a, "");
			if (!out[k].key || !out[k].value)
				return CW_ENOMEM;
			k++;
		}
		p += len + 1;
	}
	*kv = out;
	*nkv = k;
	return CW_OK;
}
