/* store/sqlite_search.c: search, history and $everything over SQLite.
 *
 * A parsed fhir_query becomes one SQL statement with every value bound:
 * the SQL text is put together only from the fixed table names, column
 * names and operators below, never from a value. Each query parameter is
 * one subquery on its index table (values ORed inside it, parameters ANDed).
 * The most selective parameter drives the search as `r.rid IN (...)` over
 * its value index; the others are `EXISTS` probes on the (rid, param)
 * primary key of their tables, so a search by patient and code costs one
 * index range plus a few probes per candidate. A compartment search
 * (Patient/123/Observation) adds the patient's compartment rows as one
 * more condition, and they drive the search when they are fewer than the
 * best parameter's rows: one patient's compartment is usually small.
 *
 * Pages are keyset pages: a cursor names the last (or first) row's sort
 * key and rowid, and the next page starts strictly after it, so page 10,000
 * costs what page 1 costs. Cursors are versioned text in base64url and are
 * parsed strictly; see store/README.md for the format. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

#define SQL_MAX (1u << 20)
#define INCLUDE_MAX 5000
#define CURSOR_MAX 4096

/* ---- the query builder ------------------------------------------------ */

enum bind_kind { BK_TEXT, BK_INT, BK_REAL, BK_NULL };

struct bind {
	enum bind_kind k;
	const char *s;
	int64_t i;
	double d;
};

/* The rowids [lo, hi] a search's matches all lie in: the least and
 * greatest rowid of one parameter's rows, from two seeks (seek_span) or a
 * count that saw them all (driver_rows); struct plan. */
struct rid_span {
	bool on;
	int64_t lo, hi;
};

struct qb {
	struct arena *a;
	struct diag *d;
	struct sbuf sql;
	struct bind *b;
	size_t nb, cap;
	unsigned alias;
	enum cw_err err;
	/* keyset bound for the driver: " > " or " < " and the rowid, put
	 * inside the driver's subquery so it stays a range on its index */
	const char *drive_op;
	int64_t drive_rid;
	/* the rowid span every match lies in (struct plan), put there too */
	struct rid_span span;
};

static void
qb_init(struct qb *q, struct arena *a, struct diag *d)
{
	memset(q, 0, sizeof(*q));
	q->a = a;
	q->d = d;
	sbuf_init(&q->sql, SQL_MAX);
	/* Most statements fit: one malloc, not a realloc at every doubling
	 * from 64 bytes (a failure shows at the first append). */
	(void)sbuf_grow(&q->sql, 1023);
}

static void
qb_release(struct qb *q)
{
	sbuf_release(&q->sql);
}

/* A problem with the query itself: an issue for the client, once. */
static enum cw_err
qb_fail(struct qb *q, enum cw_err err, const char *code, const char *msg)
{
	if (q->err)
		return q->err;
	q->err = err;
	if (q->d)
		diag_err(q->d, err, code, NULL, "%s", msg);
	return q->err;
}

static void
qs(struct qb *q, const char *s)
{
	if (!q->err && sbuf_adds(&q->sql, s) != CW_OK)
		q->err = CW_ETOOBIG;
}

/* Formats SQL text. Only ever called with our own aliases and names, so
 * only %s and %zu: a search builds its statements on every request, and
 * vsnprintf was a sixth of a search by patient and code. */
static void CW_PRINTF(2, 3)
qf(struct qb *q, const char *fmt, ...)
{
	char num[24];
	va_list ap;
	const char *p = fmt, *s;
	size_t n;

	va_start(ap, fmt);
	while (!q->err && *p) {
		n = strcspn(p, "%");
		if (n && sbuf_add(&q->sql, p, n) != CW_OK)
			q->err = CW_ETOOBIG;
		p += n;
		if (q->err || !*p)
			break;
		if (p[1] == 's') {
			s = va_arg(ap, const char *);
			if (!s) {
				q->err = CW_EINTERNAL;
				break;
			}
			n = strlen(s);
			p += 2;
		} else if (p[1] == 'z' && p[2] == 'u') {
			n = (size_t)snprintf(num, sizeof(num), "%zu", va_arg(ap, size_t));
			s = num;
			p += 3;
		} else {
			q->err = CW_EINTERNAL; /* a format qf does not know */
			break;
		}
		if (sbuf_add(&q->sql, s, n) != CW_OK)
			q->err = CW_ETOOBIG;
	}
	va_end(ap);
}

static struct bind *
qb_push(struct qb *q)
{
	if (q->err)
		return NULL;
	if (q->nb == q->cap) {
		size_t ncap = q->cap ? q->cap * 2 : 32;
		struct bind *nb = arena_realloc(q->a, q->b, q->cap * sizeof(*nb),
						ncap * sizeof(*nb));

		if (!nb || ncap > 30000) {
			q->err = CW_ETOOBIG;
			return NULL;
		}
		q->b = nb;
		q->cap = ncap;
	}
	qs(q, "?");
	return &q->b[q->nb++];
}

static void
qtext(struct qb *q, const char *s)
{
	struct bind *b = qb_push(q);

	if (b)
		*b = (struct bind){.k = s ? BK_TEXT : BK_NULL, .s = s};
}

static void
qint(struct qb *q, int64_t v)
{
	struct bind *b = qb_push(q);

	if (b)
		*b = (struct bind){.k = BK_INT, .i = v};
}

static void
qreal(struct qb *q, double v)
{
	struct bind *b = qb_push(q);

	if (b)
		*b = (struct bind){.k = BK_REAL, .d = v};
}

static const char *
qalias(struct qb *q, char prefix)
{
	const char *s = arena_printf(q->a, "%c%u", prefix, ++q->alias);

	if (!s && !q->err)
		q->err = CW_ENOMEM;
	return s ? s : "z";
}

/* The driver's bounds on its rowids over alias x: the keyset bound and
 * the span, each written once (the first driver to take them). */
static void
drive_bounds(struct qb *q, const char *x)
{
	if (q->drive_op) {
		qf(q, " AND %s.rid%s", x, q->drive_op), qint(q, q->drive_rid);
		q->drive_op = NULL;
	}
	if (q->span.on) {
		qf(q, " AND %s.rid >= ", x), qint(q, q->span.lo);
		qf(q, " AND %s.rid <= ", x), qint(q, q->span.hi);
		q->span.on = false;
	}
}

/* Prepares (through the connection's cache) and binds. */
static sqlite3_stmt *
qb_stmt(struct qb *q, struct sq_conn *c)
{
	sqlite3_stmt *st;

	if (q->err)
		return NULL;
	st = sq_prepare(c, q->sql.buf, q->sql.len);
	if (!st) {
		q->err = CW_EINTERNAL;
		return NULL;
	}
	for (size_t i = 0; i < q->nb; i++) {
		const struct bind *b = &q->b[i];
		int n = (int)i + 1;

		switch (b->k) {
		case BK_TEXT:
			sqlite3_bind_text(st, n, b->s, -1, SQLITE_TRANSIENT);
			break;
		case BK_INT:
			sqlite3_bind_int64(st, n, b->i);
			break;
		case BK_REAL:
			sqlite3_bind_double(st, n, b->d);
			break;
		case BK_NULL:
			sqlite3_bind_null(st, n);
			break;
		}
	}
	return st;
}

/* ---- conditions ------------------------------------------------------- */

/* The index table of each parameter type: the only table names search
 * SQL ever contains, with res, versions and compartment. */
static const char *const ix_table[] = {
	[SP_NUMBER] = "ix_number",
	[SP_DATE] = "ix_date",
	[SP_STRING] = "ix_string",
	[SP_TOKEN] = "ix_token",
	[SP_REFERENCE] = "ix_ref",
	[SP_COMPOSITE] = NULL,
	[SP_QUANTITY] = "ix_quantity",
	[SP_URI] = "ix_uri",
	[SP_SPECIAL] = NULL,
};

static bool
is_code(const struct fhir_searchparam *sp, const char *code)
{
	return sp && strcmp(sp->code, code) == 0;
}

/* Binds the number index rows carry for sp of type ("Condition.patient",
 * sq_param_id). The bare code is shared by every type ("patient"); the
 * type keeps one type's rows together in the value indexes. */
static void
qparam(struct qb *q, const char *type, const struct fhir_searchparam *sp)
{
	qint(q, sq_param_id(type, sp->code));
}

/* "x.param = N": which of x's rows are sp's. In ix_ref (ref_rows) a
 * parameter with rows_of has no rows of its own: patient's are subject's
 * rows to a Patient, "x.param = <subject> AND x.ref_type = 'Patient'".
 * Elsewhere (a reference's :identifier rows, in ix_token) sp's rows are
 * its own. plus writes +x.param (see rows_where). */
static void
qrows(struct qb *q, const char *x, bool plus, const char *type,
      const struct fhir_searchparam *sp, bool ref_rows)
{
	const struct fhir_searchparam *of = ref_rows ? sp->rows_of : NULL;

	qf(q, "%s%s.param = ", plus ? "+" : "", x);
	qparam(q, type, of ? of : sp);
	if (of)
		qf(q, " AND %s.ref_type = ", x), qtext(q, sp->paths[0].ref_target);
}

/* How well a parameter narrows a search when it drives it from its value
 * index; 0 means never drive from it (it would scan its whole index). */
static int
drive_score(const struct fhir_qparam *p)
{
	if (p->has_rt || !p->sp)
		return 0;
	if (p->mod == MOD_MISSING || p->mod == MOD_NOT || p->mod == MOD_TEXT ||
	    p->mod == MOD_CONTAINS || p->mod == MOD_ABOVE)
		return 0;
	if (is_code(p->sp, "_id") || is_code(p->sp, "_lastUpdated"))
		return 0;
	if (p->chain)
		return 50;
	switch (p->sp->type) {
	case SP_REFERENCE:
		return 90;
	case SP_TOKEN:
		return 70;
	case SP_STRING:
	case SP_URI:
		return 60;
	case SP_QUANTITY:
		return 40;
	default:
		return 0;
	}
}

#define DRIVE_MIN 40

/* The smallest string greater than every string starting with s: s plus a
 * 0xFF byte, which never occurs in UTF-8. Prefix match as a range keeps
 * the (param, value) index usable. */
static const char *
prefix_end(struct qb *q, const char *s)
{
	const char *e = arena_printf(q->a, "%s\xff", s);

	if (!e && !q->err)
		q->err = CW_ENOMEM;
	return e;
}

static enum cw_err
cond_date(struct qb *q, const char *lo, const char *hi,
	  const struct fhir_qvalue *v)
{
	int64_t vlo = v->lo, vhi = v->hi, d, now;

	switch (v->prefix) {
	case PFX_EQ:
		qf(q, "(%s >= ", lo), qint(q, vlo), qf(q, " AND %s <= ", hi),
			qint(q, vhi), qs(q, ")");
		break;
	case PFX_NE:
		qf(q, "(%s < ", lo), qint(q, vlo), qf(q, " OR %s > ", hi),
			qint(q, vhi), qs(q, ")");
		break;
	case PFX_GT:
		qf(q, "%s > ", hi), qint(q, vhi);
		break;
	case PFX_LT:
		qf(q, "%s < ", lo), qint(q, vlo);
		break;
	case PFX_GE:
		qf(q, "%s >= ", hi), qint(q, vlo);
		break;
	case PFX_LE:
		qf(q, "%s <= ", lo), qint(q, vhi);
		break;
	case PFX_SA:
		qf(q, "%s > ", lo), qint(q, vhi);
		break;
	case PFX_EB:
		qf(q, "%s < ", hi), qint(q, vlo);
		break;
	case PFX_AP:
		/* 10% of the distance to now on each side; the value's own
		 * precision (vlo..vhi) is always included. */
		now = time_now_ms();
		d = now > vlo ? (now - vlo) / 10 : (vlo - now) / 10;
		vlo = vlo > INT64_MIN + d ? vlo - d : INT64_MIN;
		vhi = vhi < INT64_MAX - d ? vhi + d : INT64_MAX;
		qf(q, "(%s <= ", lo), qint(q, vhi), qf(q, " AND %s >= ", hi),
			qint(q, vlo), qs(q, ")");
		break;
	}
	return q->err;
}

static enum cw_err
cond_number(struct qb *q, const char *col, const struct fhir_qvalue *v)
{
	double lo = v->num_lo, hi = v->num_hi, d;

	if (!(lo <= v->num && v->num <= hi))
		lo = hi = v->num;
	switch (v->prefix) {
	case PFX_EQ:
		if (lo < hi)
			qf(q, "(%s >= ", col), qreal(q, lo), qf(q, " AND %s < ", col),
				qreal(q, hi), qs(q, ")");
		else
			qf(q, "%s = ", col), qreal(q, v->num);
		break;
	case PFX_NE:
		if (lo < hi)
			qf(q, "(%s < ", col), qreal(q, lo), qf(q, " OR %s >= ", col),
				qreal(q, hi), qs(q, ")");
		else
			qf(q, "%s <> ", col), qreal(q, v->num);
		break;
	case PFX_GT:
		qf(q, "%s > ", col), qreal(q, v->num);
		break;
	case PFX_LT:
		qf(q, "%s < ", col), qreal(q, v->num);
		break;
	case PFX_GE:
		qf(q, "%s >= ", col), qreal(q, v->num);
		break;
	case PFX_LE:
		qf(q, "%s <= ", col), qreal(q, v->num);
		break;
	case PFX_SA:
		qf(q, "%s > ", col), qreal(q, hi);
		break;
	case PFX_EB:
		qf(q, "%s < ", col), qreal(q, lo);
		break;
	case PFX_AP:
		d = fabs(v->num) / 10;
		if (d < (hi - lo) / 2)
			d = (hi - lo) / 2;
		qf(q, "(%s >= ", col), qreal(q, v->num - d),
			qf(q, " AND %s <= ", col), qreal(q, v->num + d), qs(q, ")");
		break;
	}
	return q->err;
}

static enum cw_err
cond_token_value(struct qb *q, const char *x, enum fhir_modifier mod,
		 const struct fhir_qvalue *v)
{
	bool any = true;

	if (mod == MOD_TEXT) {
		const char *t = v->text ? v->text : v->code;

		if (!t)
			return qb_fail(q, CW_EINVAL, "invalid", "a :text search needs a value");
		if (!v->text)
			t = fhir_normalize(q->a, t, strlen(t));
		qf(q, "instr(%s.text, ", x), qtext(q, t), qs(q, ") > 0");
		return q->err;
	}
	if (v->code) {
		qf(q, "%s.code = ", x), qtext(q, v->code);
		any = false;
	}
	if (v->system) {
		if (!any)
			qs(q, " AND ");
		if (*v->system)
			qf(q, "%s.system = ", x), qtext(q, v->system);
		else
			qf(q, "%s.system IS NULL", x);
		any = false;
	}
	if (any)
		qs(q, "1");
	return q->err;
}

static enum cw_err
cond_value(struct qb *q, const struct fhir_qparam *p, const char *x,
	   const struct fhir_qvalue *v)
{
	enum fhir_sptype type = p->sp->type;
	const char *rtype, *t;

	if (type == SP_REFERENCE && p->mod == MOD_IDENTIFIER)
		return cond_token_value(q, x, MOD_NONE, v);
	switch (type) {
	case SP_TOKEN:
		if (p->mod != MOD_NONE && p->mod != MOD_NOT && p->mod != MOD_TEXT)
			break;
		return cond_token_value(q, x, p->mod, v);
	case SP_STRING:
		t = v->text ? v->text : v->raw;
		if (!t)
			break;
		if (p->mod == MOD_NONE) {
			qf(q, "(%s.norm >= ", x), qtext(q, t),
				qf(q, " AND %s.norm < ", x), qtext(q, prefix_end(q, t)),
				qs(q, ")");
			return q->err;
		}
		if (p->mod == MOD_CONTAINS) {
			qf(q, "instr(%s.norm, ", x), qtext(q, t), qs(q, ") > 0");
			return q->err;
		}
		if (p->mod == MOD_EXACT) {
			const char *raw = v->raw ? v->raw : v->text;

			qf(q, "(%s.norm = ", x),
				qtext(q, fhir_normalize(q->a, raw, strlen(raw))),
				qf(q, " AND %s.raw = ", x), qtext(q, raw), qs(q, ")");
			return q->err;
		}
		break;
	case SP_REFERENCE:
		if (p->mod != MOD_NONE && p->mod != MOD_TYPE)
			break;
		rtype = p->mod == MOD_TYPE && p->mod_type ? p->mod_type : v->ref_type;
		if (v->ref_id) {
			qf(q, "%s.ref_id = ", x), qtext(q, v->ref_id);
			if (rtype)
				qf(q, " AND %s.ref_type = ", x), qtext(q, rtype);
			return q->err;
		}
		if (v->raw) {
			qf(q, "%s.raw = ", x), qtext(q, v->raw);
			return q->err;
		}
		return qb_fail(q, CW_EINVAL, "invalid", "a reference search needs a value");
	case SP_DATE:
		if (p->mod != MOD_NONE)
			break;
		return cond_date(q, arena_printf(q->a, "%s.lo", x),
				 arena_printf(q->a, "%s.hi", x), v);
	case SP_NUMBER:
	case SP_QUANTITY:
		if (p->mod != MOD_NONE)
			break;
		qs(q, "("), cond_number(q, arena_printf(q->a, "%s.num", x), v);
		if (type == SP_QUANTITY && v->code && *v->code)
			qf(q, " AND %s.code = ", x), qtext(q, v->code);
		if (type == SP_QUANTITY && v->system && *v->system)
			qf(q, " AND %s.system = ", x), qtext(q, v->system);
		qs(q, ")");
		return q->err;
	case SP_URI:
		t = v->raw ? v->raw : v->text;
		if (!t)
			break;
		if (p->mod == MOD_NONE) {
			qf(q, "%s.raw = ", x), qtext(q, t);
			return q->err;
		}
		if (p->mod == MOD_BELOW) {
			qf(q, "(%s.raw >= ", x), qtext(q, t),
				qf(q, " AND %s.raw < ", x), qtext(q, prefix_end(q, t)),
				qs(q, ")");
			return q->err;
		}
		if (p->mod == MOD_ABOVE) {
			qs(q, "substr("), qtext(q, t),
				qf(q, ", 1, length(%s.raw)) = %s.raw", x, x);
			return q->err;
		}
		break;
	default:
		break;
	}
	qb_fail(q, CW_EINVAL, "not-supported",
		"a search modifier is not supported for this parameter");
	return q->err;
}

static enum cw_err cond_param(struct qb *q, const struct fhir_qparam *p,
		       const char *rtname, const char *A, bool drive);

static enum cw_err
cond_id(struct qb *q, const struct fhir_qparam *p, const char *A)
{
	if (p->mod == MOD_MISSING) {
		qs(q, p->nvalues && p->values[0].missing ? "0" : "1");
		return q->err;
	}
	if (p->mod != MOD_NONE && p->mod != MOD_NOT)
		return qb_fail(q, CW_EINVAL, "not-supported",
			       "a search modifier is not supported for _id");
	qf(q, "%s.id %sIN (", A, p->mod == MOD_NOT ? "NOT " : "");
	for (size_t i = 0; i < p->nvalues; i++) {
		const struct fhir_qvalue *v = &p->values[i];
		const char *id = v->code ? v->code : v->raw ? v->raw : v->text;

		if (i)
			qs(q, ", ");
		qtext(q, id ? id : "");
	}
	qs(q, ")");
	return q->err;
}

static enum cw_err
cond_updated(struct qb *q, const struct fhir_qparam *p, const char *A)
{
	const char *col = arena_printf(q->a, "%s.updated", A);

	if (p->mod == MOD_MISSING) {
		qs(q, p->nvalues && p->values[0].missing ? "0" : "1");
		return q->err;
	}
	if (p->mod != MOD_NONE)
		return qb_fail(q, CW_EINVAL, "not-supported",
			       "a search modifier is not supported for _lastUpdated");
	qs(q, "(");
	for (size_t i = 0; i < p->nvalues; i++) {
		if (i)
			qs(q, " OR ");
		cond_date(q, col, col, &p->values[i]);
	}
	qs(q, ")");
	return q->err;
}

/* subject:Patient.name=x: the reference rows of A whose target is a
 * current resource of the chained type matching the chained parameter. */
static enum cw_err
cond_chain(struct qb *q, const struct fhir_qparam *p, const char *rtname,
	   const char *A, bool drive)
{
	const struct fhir_restype *crt = p->chain_rt;
	const char *x, *t, *op = q->drive_op;
	struct rid_span span = q->span;

	if (!crt)
		return qb_fail(q, CW_EINVAL, "invalid",
			       "a chained search needs the target type");
	x = qalias(q, 'x');
	t = qalias(q, 't');
	if (drive)
		qf(q, "%s.rid IN (SELECT %s.rid FROM ix_ref %s WHERE ", A, x, x);
	else
		qf(q, "EXISTS (SELECT 1 FROM ix_ref %s WHERE %s.rid = %s.rid AND +",
		   x, x, A);
	qrows(q, x, false, rtname, p->sp, true);
	qf(q, " AND %s.ref_type = ", x), qtext(q, crt->name);
	qf(q, " AND %s.ref_id IN (SELECT %s.id FROM res %s WHERE %s.type = ",
	   x, t, t, t);
	qtext(q, crt->name);
	qf(q, " AND %s.deleted = 0 AND ", t);
	/* The keyset bound and the span are on A's rowids, never the
	 * chained type's: keep the nested driver from taking them. */
	q->drive_op = NULL;
	q->span.on = false;
	cond_param(q, p->chain, crt->name, t, drive_score(p->chain) >= DRIVE_MIN);
	q->drive_op = op;
	q->span = span;
	qs(q, ")");
	if (drive)
		drive_bounds(q, x);
	qs(q, ")");
	return q->err;
}

/* _has:Observation:patient:code=x: A is referenced through the has_rt's
 * has_sp by a current has_rt resource matching has. */
static enum cw_err
cond_has(struct qb *q, const struct fhir_qparam *p, const char *rtname,
	 const char *A)
{
	const char *x, *h, *op = q->drive_op;
	struct rid_span span = q->span;

	if (!p->has_sp || !p->has)
		return qb_fail(q, CW_EINVAL, "invalid", "_has needs a parameter");
	x = qalias(q, 'x');
	h = qalias(q, 'h');
	qf(q, "%s.id IN (SELECT %s.ref_id FROM ix_ref %s JOIN res %s ON %s.rid = %s.rid"
	   " WHERE ", A, x, x, h, h, x);
	qrows(q, x, false, p->has_rt->name, p->has_sp, true);
	qf(q, " AND %s.ref_type = ", x), qtext(q, rtname);
	qf(q, " AND %s.type = ", h), qtext(q, p->has_rt->name);
	qf(q, " AND %s.deleted = 0 AND ", h);
	q->drive_op = NULL; /* the keyset bound and span are not on h's rowids */
	q->span.on = false;
	cond_param(q, p->has, p->has_rt->name, h, drive_score(p->has) >= DRIVE_MIN);
	q->drive_op = op;
	q->span = span;
	qs(q, ")");
	return q->err;
}

/* The table a plain (not chained, not _has) parameter's rows live in. */
static const char *
param_table(const struct fhir_qparam *p)
{
	const struct fhir_searchparam *sp = p->sp;

	if ((unsigned)sp->type >= sizeof(ix_table) / sizeof(ix_table[0]))
		return NULL;
	if (sp->type == SP_REFERENCE && p->mod == MOD_IDENTIFIER)
		return "ix_token";
	return ix_table[sp->type];
}

/* "x.param = ? AND (value OR value ...)": the rows of p's values. A probe
 * (x.rid = r.rid is given) writes +x.param: SQLite must seek the (rid,
 * param) primary key, and without the + it may prefer walking the value
 * index over every row of the param for each candidate. */
static void
rows_where(struct qb *q, const struct fhir_qparam *p, const char *rtname,
	   const char *x, bool probe)
{
	qrows(q, x, probe, rtname, p->sp,
	      p->sp->type == SP_REFERENCE && p->mod != MOD_IDENTIFIER);
	qs(q, " AND (");
	for (size_t i = 0; i < p->nvalues; i++) {
		if (i)
			qs(q, " OR ");
		qs(q, "(");
		cond_value(q, p, x, &p->values[i]);
		qs(q, ")");
	}
	qs(q, ")");
}

static enum cw_err
cond_param(struct qb *q, const struct fhir_qparam *p, const char *rtname,
	   const char *A, bool drive)
{
	const struct fhir_searchparam *sp = p->sp;
	const char *table, *x;
	bool missing;

	if (q->err)
		return q->err;
	if (p->has_rt)
		return cond_has(q, p, rtname, A);
	if (!sp)
		return qb_fail(q, CW_EINVAL, "invalid", "unknown search parameter");
	if (is_code(sp, "_id"))
		return cond_id(q, p, A);
	if (is_code(sp, "_lastUpdated"))
		return cond_updated(q, p, A);
	if (p->chain)
		return cond_chain(q, p, rtname, A, drive);
	table = param_table(p);
	if (!table)
		return qb_fail(q, CW_EINVAL, "not-supported",
			       "this search parameter is not supported");
	if (p->mod == MOD_MISSING) {
		missing = p->nvalues ? p->values[0].missing : true;
		x = qalias(q, 'x');
		qf(q, "%sEXISTS (SELECT 1 FROM %s %s WHERE %s.rid = %s.rid AND ",
		   missing ? "NOT " : "", table, x, x, A);
		qrows(q, x, true, rtname, sp, sp->type == SP_REFERENCE);
		qs(q, ")");
		return q->err;
	}
	if (p->nvalues == 0)
		return qb_fail(q, CW_EINVAL, "invalid", "a search parameter has no value");
	x = qalias(q, 'x');
	if (p->mod == MOD_NOT)
		qf(q, "NOT EXISTS (SELECT 1 FROM %s %s WHERE %s.rid = %s.rid AND ",
		   table, x, x, A);
	else if (drive)
		qf(q, "%s.rid IN (SELECT %s.rid FROM %s %s WHERE ", A, x, table, x);
	else
		qf(q, "EXISTS (SELECT 1 FROM %s %s WHERE %s.rid = %s.rid AND ",
		   table, x, x, A);
	rows_where(q, p, rtname, x, !drive || p->mod == MOD_NOT);
	if (drive)
		drive_bounds(q, x);
	qs(q, ")");
	return q->err;
}

#define DRIVE_PROBE 2000
#define PLAN_MAX 128 /* parameters considered as drivers (queries have <= 100) */

/* The best-scored parameter not yet probed (done), or -1. */
static long
next_candidate(const struct fhir_query *fq, const bool *done)
{
	long cand = -1;
	int cs = DRIVE_MIN - 1;

	for (size_t i = 0; i < fq->nparams && i < PLAN_MAX; i++) {
		int sc = done[i] ? 0 : drive_score(&fq->params[i]);

		if (sc > cs) {
			cs = sc;
			cand = (long)i;
		}
	}
	return cand;
}

/* The parameter to drive the search from, or -1 for a scan of the type. */
static long
pick_driver(const struct fhir_query *fq)
{
	static const bool none[PLAN_MAX];

	return next_candidate(fq, none);
}

/* Runs a bound "SELECT count(*)[, min(rid), max(rid)] FROM (... LIMIT n)"
 * and releases q; with sp, the count's rowid range goes there. 0 when it
 * fails: a plan is only a guess, the page query reports errors. */
static long
count_rows(struct sq_conn *c, struct qb *q, struct rid_span *sp)
{
	sqlite3_stmt *st = qb_stmt(q, c);
	long n = 0;

	if (st && sqlite3_step(st) == SQLITE_ROW) {
		n = (long)sqlite3_column_int64(st, 0);
		if (sp && n > 0) {
			sp->lo = sqlite3_column_int64(st, 1);
			sp->hi = sqlite3_column_int64(st, 2);
		}
	}
	sq_done(st);
	qb_release(q);
	return n;
}

/* A candidate driver's index rows, counted up to limit (inside span when
 * it is on); -1 when they cannot be counted cheaply (a chain). A count
 * under limit saw every row, and then their rowid range is in *seen. */
static long
driver_rows(struct sq_conn *c, struct arena *a, const struct fhir_query *fq,
	    long drv, long limit, struct rid_span span, struct rid_span *seen)
{
	const struct fhir_qparam *p = &fq->params[drv];
	struct qb q;
	long n;

	if (p->chain || !param_table(p))
		return -1;
	qb_init(&q, a, NULL);
	qf(&q, "SELECT count(*), min(rid), max(rid) FROM (SELECT x.rid AS rid"
	   " FROM %s x WHERE ", param_table(p));
	rows_where(&q, p, fq->rt->name, "x", false);
	q.span = span;
	drive_bounds(&q, "x");
	qs(&q, " LIMIT "), qint(&q, limit), qs(&q, ")");
	*seen = (struct rid_span){0};
	n = count_rows(c, &q, seen);
	seen->on = n > 0 && n < limit;
	return n;
}

/* The patient's compartment rows (all types) inside span when it is on,
 * counted up to DRIVE_PROBE: a range on the compartment's (patient_id,
 * rid) primary key. */
static long
compartment_rows(struct sq_conn *c, struct arena *a, const char *pid,
		 struct rid_span span)
{
	struct qb q;

	qb_init(&q, a, NULL);
	qs(&q, "SELECT count(*) FROM (SELECT 1 FROM compartment c"
	       " WHERE c.patient_id = ");
	qtext(&q, pid);
	q.span = span;
	drive_bounds(&q, "c");
	qs(&q, " LIMIT "), qint(&q, DRIVE_PROBE), qs(&q, ")");
	return count_rows(c, &q, NULL);
}

/* What drives a page query: one parameter's value index (drv >= 0), the
 * patient's compartment (comp), or neither (a walk of the type in rowid
 * order, probing every condition). */
struct plan {
	long drv;
	bool comp;
	bool ix; /* r is the driver's own index rows, not res (ix_plan) */
	/* Every match is one of each parameter's rows, so its rowid lies
	 * within theirs: bounding the driver (or the compartment) by that
	 * span costs nothing, and a later candidate counted inside it is
	 * counted only where matches can be. A patient's records written
	 * together (an import, a day's visit) lie close, and a code over
	 * every patient then has a row or two in the span where it had
	 * thousands: one range seek instead of a seek per row of the
	 * patient's. Records spread over years make a wide span, and a
	 * bound that prunes nothing. */
	struct rid_span span;
};

/* Whether p's rows are one key of its value index, whose rows carry the
 * rid after the value: one value, every column of the key bound by an
 * equality. Their least and greatest rowid are then one seek each. */
static bool
span_seekable(const struct fhir_qparam *p)
{
	const struct fhir_qvalue *v = p->values;

	if (p->chain || p->has_rt || !p->sp || p->nvalues != 1 || !param_table(p))
		return false;
	switch (p->sp->type) {
	case SP_TOKEN:
		return p->mod == MOD_NONE && v->code && v->system && *v->system;
	case SP_REFERENCE:
		if (p->mod == MOD_IDENTIFIER)
			return v->code && v->system && *v->system;
		return (p->mod == MOD_NONE || p->mod == MOD_TYPE) && v->ref_id &&
		       (v->ref_type || p->mod == MOD_TYPE || p->sp->rows_of);
	case SP_URI:
		return p->mod == MOD_NONE && (v->raw || v->text);
	default:
		return false;
	}
}

/* The least and greatest rowid of drv's rows (span_seekable) into *out:
 * 1, or 0 when it has none, -1 when the statement failed. */
static int
seek_span(struct sq_conn *c, struct arena *a, const struct fhir_query *fq,
	  long drv, struct rid_span *out)
{
	const struct fhir_qparam *p = &fq->params[drv];
	sqlite3_stmt *st;
	struct qb q;
	int r = -1;

	qb_init(&q, a, NULL);
	for (int i = 0; i < 2; i++) {
		qf(&q, "%s(SELECT %s(x.rid) FROM %s x WHERE ", i ? ", " : "SELECT ",
		   i ? "max" : "min", param_table(p));
		rows_where(&q, p, fq->rt->name, "x", false);
		qs(&q, ")");
	}
	st = qb_stmt(&q, c);
	if (st && sqlite3_step(st) == SQLITE_ROW) {
		r = sqlite3_column_type(st, 0) != SQLITE_NULL;
		if (r) {
			out->on = true;
			out->lo = sqlite3_column_int64(st, 0);
			out->hi = sqlite3_column_int64(st, 1);
		}
	}
	sq_done(st);
	qb_release(&q);
	return r;
}

/* A driver with this few rows in the span drives at once (quick_driver). */
#define DRIVE_QUICK 16

/* With the span of the best-scored parameter (top) taken by two seeks, a
 * parameter with fewer than DRIVE_QUICK rows inside it drives without
 * top's rows being counted: a patient's Conditions written together and
 * the one or two rows of a code among them. The driver (its count in
 * *bestn, the span narrowed to its rows), or -1 when every other
 * parameter has as many rows in the span: each count cost at most
 * DRIVE_QUICK index steps, and count_drivers decides. */
static long
quick_driver(struct sq_conn *c, struct arena *a, const struct fhir_query *fq,
	     long top, struct rid_span *span, long *bestn)
{
	bool done[PLAN_MAX] = {false};
	struct rid_span seen;
	long cand, n;

	done[top] = true; /* from next_candidate: under PLAN_MAX */
	while ((cand = next_candidate(fq, done)) >= 0) {
		done[cand] = true;
		n = driver_rows(c, a, fq, cand, DRIVE_QUICK, *span, &seen);
		if (n >= 0 && n < DRIVE_QUICK) {
			*bestn = n;
			if (seen.on)
				*span = seen;
			return cand;
		}
	}
	return -1;
}

/* Every parameter that may drive, counted best-scored first up to the
 * fewest rows found so far (*bestn, at first DRIVE_PROBE), so after the
 * first count the others stop early, each inside the span of the fewest
 * so far. The one with the fewest rows, or -1 when none is under
 * DRIVE_PROBE (or none can be counted). */
static long
count_drivers(struct sq_conn *c, struct arena *a, const struct fhir_query *fq,
	      struct rid_span *span, long *bestn)
{
	bool done[PLAN_MAX] = {false};
	struct rid_span seen;
	long best = -1, cand, n;

	while (*bestn > 0 && (cand = next_candidate(fq, done)) >= 0) {
		done[cand] = true;
		n = driver_rows(c, a, fq, cand, *bestn, *span, &seen);
		if (n >= 0 && n < *bestn) {
			best = cand;
			*bestn = n;
			if (seen.on)
				*span = seen;
		}
	}
	return best;
}

/* A driver is materialized whole before the page is cut from it: worth it
 * for a patient's rows, not for status=final over every Observation. The
 * best-scored parameter's span comes first when two seeks give it, and a
 * parameter with few rows inside it drives (quick_driver); otherwise the
 * parameters are counted (count_drivers) and the one with the fewest rows
 * drives. When every count reaches DRIVE_PROBE, walking the type in rowid
 * order and probing each parameter finds a page sooner (a chain, which
 * cannot be counted, drives only when it is the best-scored parameter and
 * nothing counted is under the limit). In a compartment search the smaller
 * of the driver's rows and the patient's compartment drives; the
 * compartment also when both are large, since a walk of the type would
 * probe every other patient's rows too. */
static struct plan
plan_search(struct sq_conn *c, struct arena *a, const struct fhir_query *fq)
{
	struct plan pl = {.drv = pick_driver(fq)};
	long top = pl.drv, best = -1, bestn = DRIVE_PROBE;
	struct rid_span span = {0};

	if (top >= 0 && span_seekable(&fq->params[top])) {
		switch (seek_span(c, a, fq, top, &span)) {
		case 0: /* nothing matches: top drives over no rows */
			best = top;
			bestn = 0;
			break;
		case 1:
			best = quick_driver(c, a, fq, top, &span, &bestn);
			break;
		}
	}
	if (best < 0)
		best = count_drivers(c, a, fq, &span, &bestn);
	if (best >= 0) {
		pl.drv = best;
		pl.span = span;
	} else if (top >= 0 && !fq->params[top].chain) {
		pl.drv = -1;
	}
	if (!fq->compartment_patient)
		return pl;
	if (best >= 0 && bestn < compartment_rows(c, a, fq->compartment_patient, span))
		return pl;
	pl.drv = -1;
	pl.comp = true;
	return pl;
}

/* The patient's compartment over alias r: driving (rowids from the
 * compartment's primary key range, with the keyset bound inside) or a
 * probe of that key for each candidate. */
static void
cond_compartment(struct qb *q, const char *pid, bool drive)
{
	const char *c = qalias(q, 'c');

	if (drive)
		qf(q, "r.rid IN (SELECT %s.rid FROM compartment %s WHERE "
		   "%s.patient_id = ", c, c, c);
	else
		qf(q, "EXISTS (SELECT 1 FROM compartment %s WHERE %s.patient_id = ",
		   c, c);
	qtext(q, pid);
	if (!drive)
		qf(q, " AND %s.rid = r.rid", c);
	else
		drive_bounds(q, c);
	qs(q, ")");
}

/* The access restriction over alias r: no compartment row of r names a
 * patient outside the allowed list, which is bound as one JSON array
 * (json_each), so any number of patients is one parameter. */
static void
cond_allowed(struct qb *q, const struct fhir_query *fq)
{
	const char *c = qalias(q, 'c');
	json_t *arr = json_array();
	char *text = NULL;

	for (size_t i = 0; arr && i < fq->nallowed; i++)
		if (json_array_append_new(arr, json_string(fq->allowed[i])))
			break;
	if (arr)
		text = fhir_dump(arr, NULL);
	json_decref(arr);
	if (!text) {
		if (!q->err)
			q->err = CW_ENOMEM;
		return;
	}
	qf(q, "NOT EXISTS (SELECT 1 FROM compartment %s WHERE %s.rid = r.rid AND "
	   "%s.patient_id NOT IN (SELECT value FROM json_each(", c, c, c);
	qtext(q, arena_strdup(q->a, text));
	qs(q, ")))");
	free(text);
}

/* Whether a page can be cut from the driver's index rows alone, with no
 * seek into res per candidate: index rows exist only for the current,
 * not deleted version of a resource (drop_index_rows), and their param
 * number belongs to one type (sq_param_id; test_param_id.c checks that no
 * two served parameters share one), so the driver's rows are already
 * live resources of the searched type. Only a plain parameter's rows
 * qualify, and only when no other condition reads a column of res (_id,
 * _lastUpdated, _has compare r.id or r.updated); everything else probes
 * by r.rid, which the index rows carry. */
static bool
ix_plan(const struct fhir_query *fq, struct plan pl)
{
	const struct fhir_qparam *p;

	if (pl.drv < 0 || pl.comp)
		return false;
	p = &fq->params[pl.drv];
	if (p->chain || p->has_rt || !p->sp || p->mod == MOD_NOT ||
	    p->mod == MOD_MISSING || !param_table(p))
		return false;
	for (size_t i = 0; i < fq->nparams; i++) {
		const struct fhir_qparam *o = &fq->params[i];

		if (o->has_rt || !o->sp || is_code(o->sp, "_id") ||
		    is_code(o->sp, "_lastUpdated"))
			return false;
	}
	return true;
}

/* The WHERE clause of q over alias r: type, not deleted, the compartment,
 * the access restriction, every param; pl says what drives. With pl.ix, r
 * is the driver's index table (ix_plan), and its rows stand for type,
 * deleted and the driver itself. */
static void
build_filter(struct qb *q, const struct fhir_query *fq, struct plan pl)
{
	/* When rowids drive (a parameter's rows or the compartment), each is
	 * one seek on res's integer key; through res_type it would be a
	 * seek on (type, deleted, rowid), comparing the type's text. */
	const char *un = pl.drv >= 0 || pl.comp ? "+" : "";

	q->span = pl.span;
	if (pl.ix) {
		rows_where(q, &fq->params[pl.drv], fq->rt->name, "r", false);
		drive_bounds(q, "r");
	} else {
		qf(q, "%sr.type = ", un), qtext(q, fq->rt->name);
		qf(q, " AND %sr.deleted = 0", un);
	}
	/* Types outside the Patient compartment have no compartment rows. */
	if (fq->restrict_patients &&
	    (fq->rt->ncompartment || !strcmp(fq->rt->name, "Patient"))) {
		qs(q, " AND ");
		cond_allowed(q, fq);
	}
	if (fq->compartment_patient) {
		qs(q, " AND ");
		cond_compartment(q, fq->compartment_patient, pl.comp);
	}
	for (size_t i = 0; i < fq->nparams; i++) {
		if (pl.ix && (long)i == pl.drv)
			continue;
		qs(q, " AND ");
		cond_param(q, &fq->params[i], fq->rt->name, "r", (long)i == pl.drv);
	}
}

/* ---- cursors ---------------------------------------------------------- */

/* A cursor is base64url (no padding) of
 *   1:<kind>:<dir>:<fingerprint>:<rowid>[:<key>]...
 * kind s (search), h (history), e (everything); dir n (after the anchor)
 * or p (before it); fingerprint 8 hex digits of what the cursor belongs to
 * (type, sort and compartment for a search); each key n (null), i<integer>, d<real> or
 * s<hex bytes>. */

enum key_kind { KEY_NULL, KEY_INT, KEY_REAL, KEY_TEXT };

struct key {
	enum key_kind k;
	int64_t i;
	double d;
	const char *s;
};

struct cursor {
	char kind;
	char dir;
	uint32_t fp;
	int64_t rid;
	size_t nkeys;
	struct key *keys;
};

static const char b64url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *
b64_encode(struct arena *a, const unsigned char *p, size_t n)
{
	char *out = arena_alloc(a, (n + 2) / 3 * 4 + 1), *o = out;
	size_t i;

	if (!out)
		return NULL;
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		*o++ = b64url[v >> 18 & 63];
		*o++ = b64url[v >> 12 & 63];
		*o++ = b64url[v >> 6 & 63];
		*o++ = b64url[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;

		*o++ = b64url[v >> 18 & 63];
		*o++ = b64url[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

		*o++ = b64url[v >> 18 & 63];
		*o++ = b64url[v >> 12 & 63];
		*o++ = b64url[v >> 6 & 63];
	}
	*o = '\0';
	return out;
}

static int
b64_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Strict: only the alphabet, no padding, no stray bits. NUL-terminated
 * output; NULL if s is not canonical base64url. */
static char *
b64_decode(struct arena *a, const char *s, size_t n, size_t *outn)
{
	char *out, *o;
	uint32_t acc = 0;
	int bits = 0;

	if (n % 4 == 1)
		return NULL;
	out = arena_alloc(a, n / 4 * 3 + 3);
	if (!out)
		return NULL;
	o = out;
	for (size_t i = 0; i < n; i++) {
		int v = b64_val(s[i]);

		if (v < 0)
			return NULL;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			*o++ = (char)(acc >> bits & 0xff);
		}
	}
	if (bits && (acc & ((1u << bits) - 1)))
		return NULL;
	*o = '\0';
	*outn = (size_t)(o - out);
	return out;
}

static uint32_t
fp_mix(uint32_t h, const char *s)
{
	for (; s && *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	h ^= 0x1f; /* field separator */
	h *= 16777619u;
	return h;
}

static uint32_t
search_fp(const struct fhir_query *q)
{
	uint32_t h = fp_mix(2166136261u, q->rt->name);

	for (size_t i = 0; i < q->nsort; i++) {
		h = fp_mix(h, q->sort[i].sp ? q->sort[i].sp->code : "_id");
		h = fp_mix(h, q->sort[i].desc ? "-" : "+");
	}
	if (q->compartment_patient)
		h = fp_mix(fp_mix(h, "Patient/"), q->compartment_patient);
	return h;
}

static const char *
cursor_make(struct arena *a, char kind, char dir, uint32_t fp, int64_t rid,
	    const struct key *keys, size_t nkeys)
{
	struct sbuf sb = SBUF_INIT(CURSOR_MAX);
	const char *out = NULL;

	sbuf_addf(&sb, "1:%c:%c:%08x:%lld", kind, dir, fp, (long long)rid);
	for (size_t i = 0; i < nkeys; i++) {
		const struct key *k = &keys[i];

		switch (k->k) {
		case KEY_NULL:
			sbuf_adds(&sb, ":n");
			break;
		case KEY_INT:
			sbuf_addf(&sb, ":i%lld", (long long)k->i);
			break;
		case KEY_REAL:
			sbuf_addf(&sb, ":d%.17g", k->d);
			break;
		case KEY_TEXT:
			sbuf_adds(&sb, ":s");
			for (const unsigned char *p = (const unsigned char *)k->s; *p; p++)
				sbuf_addf(&sb, "%02x", *p);
			break;
		}
	}
	if (!sb.toobig)
		out = b64_encode(a, (const unsigned char *)sb.buf, sb.len);
	sbuf_release(&sb);
	return out;
}

static bool
parse_i64(const char *s, size_t n, int64_t *out)
{
	char buf[24], *end;
	long long v;

	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (!(buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9')))
		return false;
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static bool
parse_key(struct arena *a, const char *s, size_t n, struct key *k)
{
	char buf[40], *end;

	if (n == 0)
		return false;
	switch (s[0]) {
	case 'n':
		k->k = KEY_NULL;
		return n == 1;
	case 'i':
		k->k = KEY_INT;
		return parse_i64(s + 1, n - 1, &k->i);
	case 'd':
		if (n - 1 == 0 || n - 1 >= sizeof(buf))
			return false;
		memcpy(buf, s + 1, n - 1);
		buf[n - 1] = '\0';
		errno = 0;
		k->d = strtod(buf, &end);
		k->k = KEY_REAL;
		return !errno && !*end && isfinite(k->d);
	case 's': {
		char *o;

		if ((n - 1) % 2)
			return false;
		o = arena_alloc(a, (n - 1) / 2 + 1);
		if (!o)
			return false;
		for (size_t i = 1; i < n; i += 2) {
			int h = hexval(s[i]), l = hexval(s[i + 1]);

			if (h < 0 || l < 0 || (h == 0 && l == 0))
				return false;
			o[i / 2] = (char)(h << 4 | l);
		}
		o[(n - 1) / 2] = '\0';
		k->k = KEY_TEXT;
		k->s = o;
		return true;
	}
	}
	return false;
}

/* Parses a cursor of kind with exactly nkeys keys and fingerprint fp. A
 * cursor that is not one of ours for this query is CW_EINVAL with an issue. */
static enum cw_err
cursor_parse(struct arena *a, const char *text, char kind, uint32_t fp,
	     size_t nkeys, struct cursor *cur, struct diag *d)
{
	const char *fields[5 + 16];
	size_t lens[5 + 16], nf = 0, n, tn = text ? strlen(text) : 0;
	char *raw;
	uint32_t fpv;

	memset(cur, 0, sizeof(*cur));
	if (tn == 0 || tn > CURSOR_MAX || nkeys > 16)
		goto out_bad;
	raw = b64_decode(a, text, tn, &n);
	if (!raw || strlen(raw) != n)
		goto out_bad;
	for (const char *p = raw;;) {
		const char *e = strchr(p, ':');

		if (nf == sizeof(fields) / sizeof(fields[0]))
			goto out_bad;
		fields[nf] = p;
		lens[nf++] = e ? (size_t)(e - p) : strlen(p);
		if (!e)
			break;
		p = e + 1;
	}
	if (nf != 5 + nkeys)
		goto out_bad;
	if (lens[0] != 1 || fields[0][0] != '1' || lens[1] != 1 ||
	    fields[1][0] != kind || lens[2] != 1 ||
	    (fields[2][0] != 'n' && fields[2][0] != 'p') || lens[3] != 8)
		goto out_bad;
	for (size_t i = 0; i < 8; i++)
		if (hexval(fields[3][i]) < 0)
			goto out_bad;
	fpv = 0;
	for (size_t i = 0; i < 8; i++)
		fpv = fpv << 4 | (uint32_t)hexval(fields[3][i]);
	if (fpv != fp)
		goto out_bad;
	cur->kind = kind;
	cur->dir = fields[2][0];
	cur->fp = fp;
	if (!parse_i64(fields[4], lens[4], &cur->rid) || cur->rid < 0)
		goto out_bad;
	cur->nkeys = nkeys;
	cur->keys = nkeys ? arena_zalloc(a, nkeys * sizeof(*cur->keys)) : NULL;
	if (nkeys && !cur->keys)
		return CW_ENOMEM;
	for (size_t i = 0; i < nkeys; i++)
		if (!parse_key(a, fields[5 + i], lens[5 + i], &cur->keys[i]))
			goto out_bad;
	return CW_OK;

out_bad:
	return diag_err(d, CW_EINVAL, "invalid", NULL,
			"the paging cursor is not valid for this request");
}

/* ---- sorting ---------------------------------------------------------- */

enum sort_kind { SK_TEXT, SK_INT, SK_REAL };

/* The sort key of one _sort entry over alias r, as a bound expression. */
static enum sort_kind
sort_expr(struct qb *q, const char *rtname, const struct fhir_sort *s)
{
	const struct fhir_searchparam *sp = s->sp;
	const char *agg = s->desc ? "max" : "min";

	if (!sp || is_code(sp, "_id")) {
		qs(q, "r.id");
		return SK_TEXT;
	}
	if (is_code(sp, "_lastUpdated")) {
		qs(q, "r.updated");
		return SK_INT;
	}
	switch (sp->type) {
	case SP_STRING:
		qf(q, "(SELECT %s(x.norm) FROM ix_string x", agg);
		break;
	case SP_TOKEN:
		qf(q, "(SELECT %s(x.code) FROM ix_token x", agg);
		break;
	case SP_REFERENCE:
		qf(q, "(SELECT %s(x.ref_id) FROM ix_ref x", agg);
		break;
	case SP_URI:
		qf(q, "(SELECT %s(x.raw) FROM ix_uri x", agg);
		break;
	case SP_DATE:
		qf(q, "(SELECT %s(x.%s) FROM ix_date x", agg, s->desc ? "hi" : "lo");
		break;
	case SP_NUMBER:
		qf(q, "(SELECT %s(x.num) FROM ix_number x", agg);
		break;
	case SP_QUANTITY:
		qf(q, "(SELECT %s(x.num) FROM ix_quantity x", agg);
		break;
	default:
		qb_fail(q, CW_EINVAL, "not-supported",
			"sorting by this parameter is not supported");
		return SK_TEXT;
	}
	qs(q, " WHERE x.rid = r.rid AND ");
	qrows(q, "x", true, rtname, sp, sp->type == SP_REFERENCE);
	qs(q, ")");
	switch (sp->type) {
	case SP_DATE:
		return SK_INT;
	case SP_NUMBER:
	case SP_QUANTITY:
		return SK_REAL;
	default:
		return SK_TEXT;
	}
}

static bool
key_fits(const struct key *k, enum sort_kind sk)
{
	switch (k->k) {
	case KEY_NULL:
		return true;
	case KEY_TEXT:
		return sk == SK_TEXT;
	case KEY_INT:
		return sk == SK_INT || sk == SK_REAL;
	case KEY_REAL:
		return sk == SK_REAL;
	}
	return false;
}

static void
qkey(struct qb *q, const struct key *k)
{
	switch (k->k) {
	case KEY_NULL:
		qtext(q, NULL);
		break;
	case KEY_INT:
		qint(q, k->i);
		break;
	case KEY_REAL:
		qreal(q, k->d);
		break;
	case KEY_TEXT:
		qtext(q, k->s);
		break;
	}
}

/* Rows strictly after (dir n) or before (dir p) the cursor in the order
 * k0 [desc], k1 ..., rid, where null keys sort last. */
static void
keyset_where(struct qb *q, const struct fhir_query *fq, const struct cursor *c)
{
	bool after = c->dir == 'n';

	qs(q, "(");
	for (size_t i = 0; i <= c->nkeys; i++) {
		if (i)
			qs(q, " OR ");
		qs(q, "(");
		for (size_t j = 0; j < i; j++)
			qf(q, "k%zu IS ", j), qkey(q, &c->keys[j]), qs(q, " AND ");
		if (i == c->nkeys) {
			qs(q, after ? "rid > " : "rid < "), qint(q, c->rid);
		} else {
			const struct key *k = &c->keys[i];
			bool desc = fq->sort[i].desc;

			if (k->k == KEY_NULL && after)
				qs(q, "0");
			else if (k->k == KEY_NULL)
				qf(q, "k%zu IS NOT NULL", i);
			else if (after)
				qf(q, "(k%zu %s ", i, desc ? "<" : ">"), qkey(q, k),
					qf(q, " OR k%zu IS NULL)", i);
			else
				qf(q, "k%zu %s ", i, desc ? ">" : "<"), qkey(q, k);
		}
		qs(q, ")");
	}
	qs(q, ")");
}

/* ---- running a search ------------------------------------------------- */

struct hit {
	int64_t rid;
	struct key *keys;
};

/* A tiny open-addressing set of rowids for de-duplicating includes. */
struct ridset {
	int64_t *v;
	size_t cap, n;
};

/* 1 if rid was added, 0 if it was there, -1 out of memory. */
static int
ridset_add(struct arena *a, struct ridset *s, int64_t rid)
{
	size_t i;

	if ((s->n + 1) * 2 > s->cap) {
		struct ridset ns = {.cap = s->cap ? s->cap * 2 : 256};

		ns.v = arena_alloc(a, ns.cap * sizeof(*ns.v));
		if (!ns.v)
			return -1;
		memset(ns.v, 0xff, ns.cap * sizeof(*ns.v)); /* -1: empty */
		for (i = 0; i < s->cap; i++)
			if (s->v[i] >= 0)
				ridset_add(a, &ns, s->v[i]);
		*s = ns;
	}
	for (i = (size_t)(rid * 0x9E3779B97F4A7C15ULL) & (s->cap - 1);
	     s->v[i] >= 0; i = (i + 1) & (s->cap - 1))
		if (s->v[i] == rid)
			return 0;
	s->v[i] = rid;
	s->n++;
	return 1;
}

static unsigned
page_size(unsigned count)
{
	if (count == 0)
		return FHIR_COUNT_DEFAULT;
	return count > FHIR_COUNT_MAX ? FHIR_COUNT_MAX : count;
}

static enum cw_err
run_total(struct sq_conn *c, struct arena *a, const struct fhir_query *fq,
	  struct plan pl, long *total, struct diag *d)
{
	struct qb q;
	sqlite3_stmt *st;
	enum cw_err err;
	int rc;

	qb_init(&q, a, d);
	qs(&q, "SELECT count(*) FROM res r WHERE ");
	build_filter(&q, fq, pl);
	st = qb_stmt(&q, c);
	err = q.err;
	if (st) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			*total = (long)sqlite3_column_int64(st, 0);
		else
			err = sq_err(c, rc, "count");
		sq_done(st);
	}
	qb_release(&q);
	return err;
}

/* Fetches the page's matching rowids (and sort keys) in page order. */
static enum cw_err
run_keys(struct sq_conn *c, struct arena *a, const struct fhir_query *fq,
	 struct plan pl, const struct cursor *cur, unsigned limit,
	 struct hit **out, size_t *nout, struct diag *d)
{
	bool prev = cur && cur->dir == 'p';
	enum sort_kind *kinds = NULL;
	struct hit *hits;
	struct qb q;
	sqlite3_stmt *st;
	enum cw_err err;
	size_t n = 0;
	bool driven = pl.drv >= 0 || pl.comp;
	int rc;

	*out = NULL;
	*nout = 0;
	hits = arena_alloc(a, (limit + 1) * sizeof(*hits));
	if (fq->nsort)
		kinds = arena_alloc(a, fq->nsort * sizeof(*kinds));
	if (!hits || (fq->nsort && !kinds))
		return CW_ENOMEM;
	qb_init(&q, a, d);
	if (fq->nsort == 0 && ix_plan(fq, pl)) {
		/* A resource with two matching rows (two codings, two values)
		 * is one hit; in a one-value key's range the rows are in rid
		 * order already, so neither DISTINCT nor ORDER BY sorts. */
		pl.ix = true;
		qf(&q, "SELECT DISTINCT r.rid FROM %s r WHERE ",
		   param_table(&fq->params[pl.drv]));
		build_filter(&q, fq, pl);
		if (cur)
			qs(&q, prev ? " AND r.rid < " : " AND r.rid > "),
				qint(&q, cur->rid);
		qs(&q, prev ? " ORDER BY r.rid DESC LIMIT " : " ORDER BY r.rid LIMIT ");
	} else if (fq->nsort == 0) {
		qs(&q, "SELECT r.rid FROM res r WHERE ");
		if (cur && driven) {
			q.drive_op = prev ? " < " : " > ";
			q.drive_rid = cur->rid;
		}
		build_filter(&q, fq, pl);
		if (cur && !driven)
			qs(&q, prev ? " AND r.rid < " : " AND r.rid > "),
				qint(&q, cur->rid);
		qs(&q, prev ? " ORDER BY r.rid DESC LIMIT " : " ORDER BY r.rid LIMIT ");
	} else {
		qs(&q, "SELECT rid");
		for (size_t i = 0; i < fq->nsort; i++)
			qf(&q, ", k%zu", i);
		qs(&q, " FROM (SELECT r.rid AS rid");
		for (size_t i = 0; i < fq->nsort; i++) {
			qs(&q, ", ");
			kinds[i] = sort_expr(&q, fq->rt->name, &fq->sort[i]);
			qf(&q, " AS k%zu", i);
		}
		qs(&q, " FROM res r WHERE ");
		build_filter(&q, fq, pl);
		qs(&q, ")");
		if (cur) {
			for (size_t i = 0; i < cur->nkeys; i++)
				if (!key_fits(&cur->keys[i], kinds[i])) {
					qb_release(&q);
					return diag_err(d, CW_EINVAL, "invalid", NULL,
							"the paging cursor is not valid for this request");
				}
			qs(&q, " WHERE ");
			keyset_where(&q, fq, cur);
		}
		qs(&q, " ORDER BY ");
		for (size_t i = 0; i < fq->nsort; i++) {
			bool desc = fq->sort[i].desc != prev;

			qf(&q, "k%zu IS NULL%s, k%zu %s, ", i, prev ? " DESC" : "",
			   i, desc ? "DESC" : "ASC");
		}
		qs(&q, prev ? "rid DESC LIMIT " : "rid ASC LIMIT ");
	}
	qint(&q, (int64_t)limit + 1);
	st = qb_stmt(&q, c);
	err = q.err;
	while (st && (rc = sqlite3_step(st)) == SQLITE_ROW && n <= limit) {
		struct hit *h = &hits[n++];

		h->rid = sqlite3_column_int64(st, 0);
		h->keys = NULL;
		if (!fq->nsort)
			continue;
		h->keys = arena_zalloc(a, fq->nsort * sizeof(*h->keys));
		if (!h->keys) {
			err = CW_ENOMEM;
			break;
		}
		for (size_t i = 0; i < fq->nsort; i++) {
			struct key *k = &h->keys[i];
			int col = (int)i + 1;

			switch (sqlite3_column_type(st, col)) {
			case SQLITE_INTEGER:
				k->k = KEY_INT;
				k->i = sqlite3_column_int64(st, col);
				break;
			case SQLITE_FLOAT:
				k->k = KEY_REAL;
				k->d = sqlite3_column_double(st, col);
				break;
			case SQLITE_NULL:
				k->k = KEY_NULL;
				break;
			default:
				k->k = KEY_TEXT;
				k->s = arena_strdup(a, (const char *)sqlite3_column_text(st, col));
				if (!k->s)
					err = CW_ENOMEM;
				break;
			}
		}
	}
	if (st && !err && rc != SQLITE_ROW && rc != SQLITE_DONE)
		err = sq_err(c, rc, "search");
	sq_done(st);
	qb_release(&q);
	if (err)
		return err;
	*out = hits;
	*nout = n;
	return CW_OK;
}

/* Appends the resources of rids to list (deduplicated through seen). */
/* The included resources so far, with their rowids. */
struct inclist {
	struct store_res *res;
	int64_t *rids;
	size_t n, cap;
};

/* Appends the resources of rids not seen yet. */
static enum cw_err
add_rows(struct sq_conn *c, struct arena *a, const int64_t *rids, size_t n,
	 struct ridset *seen, struct inclist *l)
{
	for (size_t i = 0; i < n; i++) {
		enum cw_err err;
		int added;

		if (l->n >= INCLUDE_MAX)
			return CW_OK;
		added = ridset_add(a, seen, rids[i]);
		if (added < 0)
			return CW_ENOMEM;
		if (!added)
			continue;
		if (l->n == l->cap) {
			size_t ncap = l->cap ? l->cap * 2 : 64;
			struct store_res *nr = arena_realloc(a, l->res,
							     l->cap * sizeof(*nr),
							     ncap * sizeof(*nr));
			int64_t *ni = arena_realloc(a, l->rids,
						    l->cap * sizeof(*ni),
						    ncap * sizeof(*ni));

			if (!nr || !ni)
				return CW_ENOMEM;
			l->res = nr;
			l->rids = ni;
			l->cap = ncap;
		}
		err = sq_read_rid(c, a, rids[i], &l->res[l->n]);
		if (err == CW_ENOTFOUND || err == CW_EGONE)
			continue;
		if (err)
			return err;
		l->rids[l->n++] = rids[i];
	}
	return CW_OK;
}

/* Collects rowids from a bound statement's first column. */
static enum cw_err
collect_rids(struct sq_conn *c, struct arena *a, sqlite3_stmt *st,
	     int64_t **rids, size_t *n)
{
	size_t cap = 0;
	int rc;

	*rids = NULL;
	*n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			int64_t *nv = arena_realloc(a, *rids, cap * sizeof(**rids),
						    ncap * sizeof(**rids));

			if (!nv) {
				sq_done(st);
				return CW_ENOMEM;
			}
			*rids = nv;
			cap = ncap;
		}
		(*rids)[(*n)++] = sqlite3_column_int64(st, 0);
		if (*n >= INCLUDE_MAX)
			break;
	}
	sq_done(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? CW_OK : sq_err(c, rc, "include");
}

/* x.param restricted to inc's parameter, or to every reference parameter
 * of src for "*". */
static void
include_params(struct qb *q, const struct fhir_include *inc)
{
	size_t k = 0;

	if (inc->sp) {
		qrows(q, "x", false, inc->src->name, inc->sp, true);
		return;
	}
	/* rows_of's rows are there under the parameter they name */
	qs(q, "x.param IN (");
	for (size_t i = 0; i < inc->src->nparams; i++) {
		if (inc->src->params[i].type != SP_REFERENCE ||
		    inc->src->params[i].rows_of)
			continue;
		if (k++)
			qs(q, ", ");
		qparam(q, inc->src->name, &inc->src->params[i]);
	}
	if (!k)
		qint(q, -1); /* no reference parameters: matches nothing */
	qs(q, ")");
}

/* One round of _include/_revinclude over the sources (resources with their
 * rowids); new results are appended to the included list. */
static enum cw_err
include_round(struct sq_conn *c, struct arena *a, const struct fhir_query *fq,
	      bool iterate_round, const struct store_res *src,
	      const int64_t *src_rids, size_t nsrc, struct ridset *seen,
	      struct inclist *l, struct diag *d)
{
	for (size_t i = 0; i < fq->ninclude; i++) {
		const struct fhir_include *inc = &fq->include[i];
		size_t k = 0;
		struct qb q;
		sqlite3_stmt *st;
		int64_t *rids;
		size_t nr;
		enum cw_err err;

		if (!inc->src || (iterate_round && !inc->iterate))
			continue;
		qb_init(&q, a, d);
		if (!inc->rev) {
			qs(&q, "SELECT t.rid FROM ix_ref x JOIN res t ON t.type = x.ref_type"
			       " AND t.id = x.ref_id WHERE x.rid IN (");
			for (size_t j = 0; j < nsrc; j++) {
				if (strcmp(src[j].type, inc->src->name) != 0)
					continue;
				if (k++)
					qs(&q, ", ");
				qint(&q, src_rids[j]);
			}
			qs(&q, ") AND ");
			include_params(&q, inc);
			if (inc->target)
				qs(&q, " AND x.ref_type = "), qtext(&q, inc->target->name);
			qs(&q, " AND t.deleted = 0");
		} else {
			/* Sources may be of several types: ref_type and ref_id
			 * are matched in pairs. */
			qs(&q, "SELECT s.rid FROM ix_ref x JOIN res s ON s.rid = x.rid WHERE ");
			include_params(&q, inc);
			qs(&q, " AND s.type = "), qtext(&q, inc->src->name);
			qs(&q, " AND s.deleted = 0 AND (");
			for (size_t j = 0; j < nsrc; j++) {
				if (inc->target && strcmp(src[j].type, inc->target->name) != 0)
					continue;
				if (k++)
					qs(&q, " OR ");
				qs(&q, "(x.ref_id = "), qtext(&q, src[j].id);
				qs(&q, " AND x.ref_type = "), qtext(&q, src[j].type);
				qs(&q, ")");
			}
			qs(&q, ")");
		}
		if (k == 0) {
			qb_release(&q);
			continue;
		}
		st = qb_stmt(&q, c);
		err = q.err;
		qb_release(&q);
		if (err)
			return err;
		err = collect_rids(c, a, st, &rids, &nr);
		if (!err)
			err = add_rows(c, a, rids, nr, seen, l);
		if (err)
			return err;
	}
	return CW_OK;
}

static enum cw_err
run_includes(struct sq_conn *c, struct arena *a, const struct fhir_query *fq,
	     const int64_t *rids, struct store_page *out, struct diag *d)
{
	struct ridset seen = {0};
	struct inclist l = {0};
	struct store_res *src;
	int64_t *src_rids;
	size_t first;
	enum cw_err err;
	bool iterate = false;

	for (size_t i = 0; i < out->n; i++)
		if (ridset_add(a, &seen, rids[i]) < 0)
			return CW_ENOMEM;
	err = include_round(c, a, fq, false, out->res, rids, out->n, &seen,
			    &l, d);
	if (err)
		return err;
	for (size_t i = 0; i < fq->ninclude; i++)
		iterate |= fq->include[i].iterate;
	if (iterate && l.n) {
		/* The second round reads the first round's results while
		 * appending to the same list: give it a copy. */
		first = l.n;
		src = arena_alloc(a, first * sizeof(*src));
		src_rids = arena_alloc(a, first * sizeof(*src_rids));
		if (!src || !src_rids)
			return CW_ENOMEM;
		memcpy(src, l.res, first * sizeof(*src));
		memcpy(src_rids, l.rids, first * sizeof(*src_rids));
		err = include_round(c, a, fq, true, src, src_rids, first, &seen,
				    &l, d);
		if (err)
			return err;
	}
	out->included = l.res;
	out->nincluded = l.n;
	return CW_OK;
}

static enum cw_err
search_in(struct sq_conn *c, struct arena *a, const struct fhir_query *fq,
	  struct store_page *out, struct diag *d)
{
	unsigned limit = page_size(fq->count);
	uint32_t fp = search_fp(fq);
	struct cursor cur, *curp = NULL;
	struct plan pl = {.drv = -1};
	struct hit *hits;
	int64_t *rids;
	size_t n, keep;
	bool prev, more;
	enum cw_err err;

	if (fq->cursor) {
		err = cursor_parse(a, fq->cursor, 's', fp, fq->nsort, &cur, d);
		if (err)
			return err;
		curp = &cur;
	}
	if (fq->summary != SUMMARY_COUNT || fq->compartment_patient)
		pl = plan_search(c, a, fq);
	if (fq->total != TOTAL_NONE || fq->summary == SUMMARY_COUNT) {
		/* A count reads every match: without a compartment, any
		 * driver (even a large one) beats a walk of the type. */
		struct plan tpl = {.drv = pick_driver(fq)};

		if (fq->compartment_patient || pl.drv >= 0)
			tpl = pl;
		err = run_total(c, a, fq, tpl, &out->total, d);
		if (err)
			return err;
	}
	if (fq->summary == SUMMARY_COUNT)
		return CW_OK;
	err = run_keys(c, a, fq, pl, curp, limit, &hits, &n, d);
	if (err)
		return err;
	prev = curp && curp->dir == 'p';
	more = n > limit;
	keep = more ? limit : n;
	if (prev) {
		/* Fetched backwards from the anchor: turn into page order. */
		for (size_t i = 0; i < keep / 2; i++) {
			struct hit t = hits[i];

			hits[i] = hits[keep - 1 - i];
			hits[keep - 1 - i] = t;
		}
	}
	out->res = keep ? arena_alloc(a, keep * sizeof(*out->res)) : NULL;
	rids = keep ? arena_alloc(a, keep * sizeof(*rids)) : NULL;
	if (keep && (!out->res || !rids))
		return CW_ENOMEM;
	for (size_t i = 0; i < keep; i++) {
		err = sq_read_rid(c, a, hits[i].rid, &out->res[out->n]);
		if (err == CW_ENOTFOUND || err == CW_EGONE)
			continue;
		if (err)
			return err;
		rids[out->n++] = hits[i].rid;
	}
	if (keep) {
		const struct hit *first = &hits[0], *last = &hits[keep - 1];
		bool has_next = prev ? true : more;
		bool has_prev = prev ? more : curp != NULL;

		if (has_next)
			out->next = cursor_make(a, 's', 'n', fp, last->rid,
						last->keys, fq->nsort);
		if (has_prev)
			out->prev = cursor_make(a, 's', 'p', fp, first->rid,
						first->keys, fq->nsort);
		if ((has_next && !out->next) || (has_prev && !out->prev))
			return CW_ENOMEM;
	}
	if (fq->ninclude && out->n)
		return run_includes(c, a, fq, rids, out, d);
	return CW_OK;
}

/* Runs fn inside one read transaction, so every statement of a page sees
 * the same snapshot. */
static enum cw_err
in_read_tx(struct sq_conn *c, enum cw_err err)
{
	int rc = sq_exec_fixed(c, err ? SQ_ROLLBACK : SQ_COMMIT);

	if (rc != SQLITE_OK && !err)
		err = sq_err(c, rc, "end read");
	return err;
}

static enum cw_err
begin_read(struct sq_conn *c)
{
	int rc = sq_exec_fixed(c, SQ_BEGIN_READ);

	return rc == SQLITE_OK ? CW_OK : sq_err(c, rc, "begin read");
}

enum cw_err
store_search(struct store *s, struct arena *a, const struct fhir_query *q,
	     struct store_page *out, struct diag *d)
{
	struct sq_conn *c;
	enum cw_err err;

	memset(out, 0, sizeof(*out));
	out->total = -1;
	if (!q || !q->rt)
		return diag_err(d, CW_EINVAL, "invalid", NULL,
				"a search needs a resource type");
	c = sq_reader(s, d);
	if (!c)
		return CW_EIO;
	if ((err = begin_read(c)))
		return err;
	err = in_read_tx(c, search_in(c, a, q, out, d));
	if (err) {
		long total = out->total;

		memset(out, 0, sizeof(*out));
		out->total = total;
	}
	return err;
}

enum cw_err
store_tx_match(struct store_tx *tx, struct arena *a,
	       const struct fhir_query *fq, size_t max, const char ***ids,
	       size_t *n, struct diag *d)
{
	struct sq_conn *c = tx->c;
	struct qb q;
	struct plan pl;
	sqlite3_stmt *st;
	const char **v;
	enum cw_err err;
	int rc = SQLITE_DONE;

	*ids = NULL;
	*n = 0;
	if (!fq || !fq->rt)
		return diag_err(d, CW_EINVAL, "invalid", NULL,
				"a search needs a resource type");
	if (max == 0)
		return CW_OK;
	v = arena_alloc(a, max * sizeof(*v));
	if (!v)
		return CW_ENOMEM;
	qb_init(&q, a, d);
	qs(&q, "SELECT r.id FROM res r WHERE ");
	pl = (struct plan){.drv = pick_driver(fq)};
	pl.comp = fq->compartment_patient && pl.drv < 0;
	build_filter(&q, fq, pl);
	qs(&q, " ORDER BY r.rid LIMIT "), qint(&q, (int64_t)max);
	st = qb_stmt(&q, c);
	err = q.err;
	while (st && *n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		v[*n] = arena_strdup(a, (const char *)sqlite3_column_text(st, 0));
		if (!v[*n]) {
			err = CW_ENOMEM;
			break;
		}
		(*n)++;
	}
	if (st && !err && rc != SQLITE_ROW && rc != SQLITE_DONE)
		err = sq_err(c, rc, "match");
	sq_done(st);
	qb_release(&q);
	*ids = v;
	return err;
}

/* ---- history ---------------------------------------------------------- */

static uint32_t
history_fp(const char *type, const char *id)
{
	return fp_mix(fp_mix(2166136261u, type ? type : ""), id ? id : "");
}

static enum cw_err
history_in(struct sq_conn *c, struct arena *a, const char *type,
	   const char *id, const struct store_hist_opt *opt,
	   struct store_page *out, struct diag *d)
{
	unsigned limit = page_size(opt ? opt->count : 0);
	uint32_t fp = history_fp(type, id);
	struct cursor cur, *curp = NULL;
	int64_t *vids;
	struct qb q;
	sqlite3_stmt *st;
	enum cw_err err;
	bool prev, more;
	size_t n = 0;
	int rc = SQLITE_DONE;

	if (opt && opt->cursor) {
		err = cursor_parse(a, opt->cursor, 'h', fp, 0, &cur, d);
		if (err)
			return err;
		curp = &cur;
	}
	prev = curp && curp->dir == 'p';
	out->res = arena_alloc(a, (limit + 1) * sizeof(*out->res));
	vids = arena_alloc(a, (limit + 1) * sizeof(*vids));
	if (!out->res || !vids)
		return CW_ENOMEM;
	qb_init(&q, a, d);
	qs(&q, "SELECT v.vid, v.type, v.id, v.version, v.updated, v.deleted, "
	       VERSION_JSON " FROM versions v WHERE 1");
	if (type)
		qs(&q, " AND v.type = "), qtext(&q, type);
	if (type && id)
		qs(&q, " AND v.id = "), qtext(&q, id);
	if (opt && opt->since)
		qs(&q, " AND v.updated >= "), qint(&q, opt->since);
	if (opt && opt->at)
		qs(&q, " AND v.updated <= "), qint(&q, opt->at);
	if (curp)
		qs(&q, prev ? " AND v.vid > " : " AND v.vid < "), qint(&q, curp->rid);
	qs(&q, prev ? " ORDER BY v.vid ASC LIMIT " : " ORDER BY v.vid DESC LIMIT ");
	qint(&q, (int64_t)limit + 1);
	st = qb_stmt(&q, c);
	err = q.err;
	while (st && !err && n <= limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		vids[n] = sqlite3_column_int64(st, 0);
		err = sq_row_res(a, st, 1, &out->res[n]);
		n++;
	}
	if (st && !err && rc != SQLITE_ROW && rc != SQLITE_DONE)
		err = sq_err(c, rc, "history");
	sq_done(st);
	qb_release(&q);
	if (err)
		return err;
	more = n > limit;
	out->n = more ? limit : n;
	if (prev) {
		for (size_t i = 0; i < out->n / 2; i++) {
			struct store_res t = out->res[i];
			int64_t tv = vids[i];

			out->res[i] = out->res[out->n - 1 - i];
			out->res[out->n - 1 - i] = t;
			vids[i] = vids[out->n - 1 - i];
			vids[out->n - 1 - i] = tv;
		}
	}
	if (out->n) {
		if (prev ? true : more)
			out->next = cursor_make(a, 'h', 'n', fp, vids[out->n - 1], NULL, 0);
		if (prev ? more : curp != NULL)
			out->prev = cursor_make(a, 'h', 'p', fp, vids[0], NULL, 0);
	} else if (id && !curp) {
		/* An empty page for one resource: did it ever exist? */
		sqlite3_stmt *cs = sq_fixed(c, SQ_CUR);

		if (!cs)
			return CW_EINTERNAL;
		sqlite3_bind_text(cs, 1, type, -1, SQLITE_STATIC);
		sqlite3_bind_text(cs, 2, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(cs);
		sq_done(cs);
		if (rc == SQLITE_DONE)
			return diag_err(d, CW_ENOTFOUND, "not-found", NULL,
					"the resource does not exist");
		if (rc != SQLITE_ROW)
			return sq_err(c, rc, "history");
	}
	return CW_OK;
}

enum cw_err
store_history(struct store *s, struct arena *a, const char *type,
	      const char *id, const struct store_hist_opt *opt,
	      struct store_page *out, struct diag *d)
{
	struct sq_conn *c;
	enum cw_err err;

	memset(out, 0, sizeof(*out));
	out->total = -1;
	if (id && !type)
		return diag_err(d, CW_EINVAL, "invalid", NULL,
				"instance history needs a type");
	c = sq_reader(s, d);
	if (!c)
		return CW_EIO;
	if ((err = begin_read(c)))
		return err;
	err = in_read_tx(c, history_in(c, a, type, id, opt, out, d));
	if (err) {
		memset(out, 0, sizeof(*out));
		out->total = -1;
	}
	return err;
}

/* ---- $everything ------------------------------------------------------ */

static bool
type_wanted(const char *type, const char *const *types, size_t ntypes)
{
	if (ntypes == 0)
		return true;
	for (size_t i = 0; i < ntypes; i++)
		if (types[i] && strcmp(types[i], type) == 0)
			return true;
	return false;
}

static enum cw_err
everything_in(struct sq_conn *c, struct arena *a, const char *pid,
	      const char *const *types, size_t ntypes, int64_t since,
	      unsigned count, const char *cursor, struct store_page *out,
	      struct diag *d)
{
	unsigned limit = page_size(count);
	uint32_t fp = history_fp("Patient", pid);
	struct cursor cur, *curp = NULL;
	int64_t prid, updated, last = 0, *rids;
	bool deleted;
	size_t nr, want;
	struct qb q;
	sqlite3_stmt *st;
	enum cw_err err;
	int rc;

	if (cursor) {
		err = cursor_parse(a, cursor, 'e', fp, 0, &cur, d);
		if (err)
			return err;
		if (cur.dir != 'n')
			return diag_err(d, CW_EINVAL, "invalid", NULL,
					"the paging cursor is not valid for this request");
		curp = &cur;
		last = cur.rid;
	}
	st = sq_fixed(c, SQ_CUR);
	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, "Patient", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, pid, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	prid = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	deleted = rc == SQLITE_ROW && sqlite3_column_int(st, 2);
	updated = rc == SQLITE_ROW ? sqlite3_column_int64(st, 3) : 0;
	sq_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sq_err(c, rc, "everything");
	if (rc != SQLITE_ROW || deleted)
		return diag_err(d, deleted ? CW_EGONE : CW_ENOTFOUND,
				deleted ? "deleted" : "not-found", NULL,
				"the patient does not exist");

	out->res = arena_alloc(a, (limit + 1) * sizeof(*out->res));
	if (!out->res)
		return CW_ENOMEM;
	if (!curp && type_wanted("Patient", types, ntypes) && updated >= since) {
		err = sq_read_rid(c, a, prid, &out->res[0]);
		if (err)
			return err;
		out->n = 1;
	}
	want = limit - out->n;
	qb_init(&q, a, d);
	qs(&q, "SELECT c.rid FROM compartment c JOIN res r ON r.rid = c.rid"
	       " WHERE c.patient_id = ");
	qtext(&q, pid);
	qs(&q, " AND c.rid > "), qint(&q, last);
	qs(&q, " AND c.rid <> "), qint(&q, prid);
	qs(&q, " AND r.deleted = 0");
	if (ntypes) {
		qs(&q, " AND r.type IN (");
		for (size_t i = 0; i < ntypes; i++) {
			if (i)
				qs(&q, ", ");
			qtext(&q, types[i] ? types[i] : "");
		}
		qs(&q, ")");
	}
	if (since)
		qs(&q, " AND r.updated >= "), qint(&q, since);
	qs(&q, " ORDER BY c.rid LIMIT "), qint(&q, (int64_t)want + 1);
	st = qb_stmt(&q, c);
	err = q.err;
	qb_release(&q);
	if (err)
		return err;
	err = collect_rids(c, a, st, &rids, &nr);
	if (err)
		return err;
	for (size_t i = 0; i < nr && i < want; i++) {
		err = sq_read_rid(c, a, rids[i], &out->res[out->n]);
		if (err == CW_ENOTFOUND || err == CW_EGONE)
			continue;
		if (err)
			return err;
		out->n++;
		last = rids[i];
	}
	if (nr > want) {
		out->next = cursor_make(a, 'e', 'n', fp, last, NULL, 0);
		if (!out->next)
			return CW_ENOMEM;
	}
	return CW_OK;
}

enum cw_err
store_everything(struct store *s, struct arena *a, const char *patient_id,
		 const char *const *types, size_t ntypes, int64_t since,
		 unsigned count, const char *cursor, struct store_page *out,
		 struct diag *d)
{
	struct sq_conn *c;
	enum cw_err err;

	memset(out, 0, sizeof(*out));
	out->total = -1;
	if (!patient_id)
		return diag_err(d, CW_EINVAL, "invalid", NULL, "no patient given");
	c = sq_reader(s, d);
	if (!c)
		return CW_EIO;
	if ((err = begin_read(c)))
		return err;
	err = in_read_tx(c, everything_in(c, a, patient_id, types, ntypes, since,
					  count, cursor, out, d));
	if (err) {
		memset(out, 0, sizeof(*out));
		out->total = -1;
	}
	return err;
}
