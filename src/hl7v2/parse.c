/* hl7v2/parse.c: reading an HL7 v2 message.
 *
 * hl7_parse copies the text into the arena and indexes it once: where each
 * segment starts and where each of its fields lies. Repetitions, components
 * and subcomponents are found when a value is asked for, by scanning that
 * one field, so a read costs the length of the field, never of the message.
 * Escape sequences are undone on the way out, into a fresh arena string.
 *
 * MSH is numbered apart: its fourth byte is the field separator and is
 * MSH-1, the encoding characters up to the next separator are MSH-2, and
 * neither is split or decoded. The DTM conversions live here too, since
 * they are how a value read from a message becomes a FHIR one. */
#include <stdio.h>
#include <string.h>

#include "hl7v2/hl7v2.h"

const char HL7_NULL[] = "\"\"";

/* A field: its bytes in the copy of the message. */
struct fld {
	uint32_t off, len;
};

struct seg {
	char name[4];
	uint32_t first; /* index of its first field in m->flds */
	uint32_t nflds; /* fields after the name (for MSH, MSH-2 onwards) */
};

struct hl7_msg {
	struct arena *a; /* where hl7_get puts what it decodes */
	const char *text;
	size_t n;
	struct hl7_delims dl;
	char fs_str[2]; /* MSH-1 as a string */
	struct seg *segs;
	size_t nsegs;
	struct fld *flds;
};

static enum cw_err
fail(struct diag *d, enum cw_err err, const char *code, const char *loc,
     const char *what)
{
	if (d)
		diag_err(d, err, code, loc, "%s", what);
	return err;
}

static bool
is_alnum(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9');
}

static bool
is_eol(char c)
{
	return c == '\r' || c == '\n';
}

/* A line holding only blanks is an empty line between segments. */
static bool
is_blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t')
			return false;
	return true;
}

/* Reads MSH-1 and MSH-2 from the start of t (which begins "MSH"). */
static enum cw_err
read_delims(const char *t, size_t n, struct hl7_delims *dl, struct diag *d)
{
	char seen[6];
	size_t k = 0, i;

	if (n < 4 || is_eol(t[3]))
		return fail(d, CW_EINVAL, "structure", "MSH-1",
			    "the MSH segment is too short to declare its separators");
	dl->field = t[3];
	for (i = 4; i < n && t[i] != dl->field && !is_eol(t[i]); i++) {
		if (k == 5)
			return fail(d, CW_EINVAL, "structure", "MSH-2",
				    "MSH-2 declares more than five encoding characters");
		seen[k++] = t[i];
	}
	if (k < 4)
		return fail(d, CW_EINVAL, "structure", "MSH-2",
			    "MSH-2 must declare the component, repetition, escape "
			    "and subcomponent characters");
	seen[k++] = dl->field;
	for (i = 0; i < k; i++) {
		if (is_alnum(seen[i]) || seen[i] == ' ')
			return fail(d, CW_EINVAL, "structure", "MSH-2",
				    "a separator in MSH-1 or MSH-2 is a letter, "
				    "digit or space");
		for (size_t j = i + 1; j < k; j++)
			if (seen[i] == seen[j])
				return fail(d, CW_EINVAL, "structure", "MSH-2",
					    "a separator is declared twice in "
					    "MSH-1 and MSH-2");
	}
	dl->component = seen[0];
	dl->repetition = seen[1];
	dl->escape = seen[2];
	dl->subcomponent = seen[3];
	dl->truncation = k == 6 ? seen[4] : '\0';
	return CW_OK;
}

/* The minor version of "2.N[.x]" (1 to 9), 0 when v is not one. */
static unsigned
version_minor(const char *v)
{
	if (!v || v[0] != '2' || v[1] != '.' || v[2] < '0' || v[2] > '9')
		return 0;
	if (v[3] != '\0' && v[3] != '.')
		return 0;
	return (unsigned)(v[2] - '0');
}

enum cw_err
hl7_parse(struct arena *a, const char *text, size_t n, struct hl7_msg **out,
	  struct diag *d)
{
	struct hl7_msg *m;
	size_t i, start, nsegs = 0, nseps = 0, s = 0, f = 0;
	char *copy;
	char loc[48];

	*out = NULL;
	if (n > HL7_MSG_MAX)
		return fail(d, CW_ETOOBIG, "too-long", NULL,
			    "the message is larger than 1 MiB");
	if (!text || n == 0)
		return fail(d, CW_EINVAL, "structure", NULL, "the message is empty");
	if (memchr(text, '\0', n))
		return fail(d, CW_EINVAL, "structure", NULL,
			    "the message holds a NUL byte");
	/* Leading empty lines are tolerated like the ones between segments. */
	for (start = 0; start < n && (is_eol(text[start]) ||
				      text[start] == ' ' || text[start] == '\t');
	     start++)
		;
	if (n - start < 3 || memcmp(text + start, "MSH", 3) != 0)
		return fail(d, CW_EINVAL, "structure", NULL,
			    "the message does not begin with an MSH segment");
	m = arena_zalloc(a, sizeof(*m));
	copy = m ? arena_alloc(a, n - start + 1) : NULL;
	if (!copy)
		return fail(d, CW_ENOMEM, "exception", NULL,
			    "no memory to parse the message");
	memcpy(copy, text + start, n - start);
	copy[n - start] = '\0';
	m->a = a;
	m->text = copy;
	m->n = n - start;
	if (read_delims(copy, m->n, &m->dl, d))
		return CW_EINVAL;
	m->fs_str[0] = m->dl.field;

	/* Pass one counts, so the index is two exact allocations. */
	for (i = 0; i < m->n;) {
		size_t e = i;

		while (e < m->n && !is_eol(copy[e]))
			e++;
		if (!is_blank(copy + i, e - i)) {
			if (++nsegs > HL7_SEGMENTS_MAX)
				return fail(d, CW_EINVAL, "too-long", NULL,
					    "the message has more than 5000 segments");
			for (size_t j = i; j < e; j++)
				nseps += copy[j] == m->dl.field;
		}
		i = e + 1;
	}
	m->segs = arena_alloc(a, nsegs * sizeof(*m->segs));
	m->flds = arena_alloc(a, (nseps + 1) * sizeof(*m->flds));
	if (!m->segs || !m->flds)
		return fail(d, CW_ENOMEM, "exception", NULL,
			    "no memory to parse the message");

	for (i = 0; i < m->n;) {
		size_t e = i, p;
		struct seg *sg;
		bool msh = s == 0;

		while (e < m->n && !is_eol(copy[e]))
			e++;
		if (is_blank(copy + i, e - i)) {
			i = e + 1;
			continue;
		}
		sg = &m->segs[s];
		if (e - i < 3 || !is_alnum(copy[i]) || !is_alnum(copy[i + 1]) ||
		    !is_alnum(copy[i + 2]) || (e - i > 3 && copy[i + 3] != m->dl.field)) {
			snprintf(loc, sizeof(loc), "segment %zu", s + 1);
			if (d)
				diag_err(d, CW_EINVAL, "structure", loc,
					 "segment %zu: the name is not three "
					 "letters or digits", s + 1);
			return CW_EINVAL;
		}
		memcpy(sg->name, copy + i, 3);
		sg->name[3] = '\0';
		if (!msh && strcmp(sg->name, "MSH") == 0) {
			if (d)
				diag_err(d, CW_EINVAL, "structure", NULL,
					 "segment %zu: a second MSH (batches are "
					 "not taken)", s + 1);
			return CW_EINVAL;
		}
		sg->first = (uint32_t)f;
		sg->nflds = 0;
		/* Fields start after each separator; MSH-1 is the first one
		 * itself, so MSH's pieces start at MSH-2. */
		for (p = i + 3; p < e;) {
			size_t q = p + 1;
			unsigned reps = 1;

			while (q < e && copy[q] != m->dl.field) {
				reps += copy[q] == m->dl.repetition;
				q++;
			}
			if (reps > HL7_REPS_MAX && !(msh && sg->nflds == 0)) {
				if (d)
					diag_err(d, CW_EINVAL, "too-long", NULL,
						 "segment %zu (%s) field %u has more "
						 "than %u repetitions", s + 1, sg->name,
						 sg->nflds + (msh ? 2 : 1), HL7_REPS_MAX);
				return CW_EINVAL;
			}
			m->flds[f].off = (uint32_t)(p + 1);
			m->flds[f].len = (uint32_t)(q - p - 1);
			f++;
			sg->nflds++;
			p = q;
		}
		s++;
		i = e + 1;
	}
	m->nsegs = s;
	/* The truncation character exists from 2.7. */
	if (m->dl.truncation) {
		const char *v = hl7_get(m, 0, 12, 0, 1, 1);
		unsigned minor = version_minor(v);

		if (minor && minor < 7)
			m->dl.truncation = '\0';
	}
	*out = m;
	return CW_OK;
}

const struct hl7_delims *
hl7_delims(const struct hl7_msg *m)
{
	return &m->dl;
}

size_t
hl7_segment_count(const struct hl7_msg *m)
{
	return m->nsegs;
}

const char *
hl7_segment_name(const struct hl7_msg *m, size_t i)
{
	return i < m->nsegs ? m->segs[i].name : NULL;
}

long
hl7_find(const struct hl7_msg *m, const char *name, size_t from, size_t k)
{
	for (size_t i = from; i < m->nsegs; i++)
		if (strcmp(m->segs[i].name, name) == 0 && k-- == 0)
			return (long)i;
	return -1;
}

/* The field's bytes; false when the segment or field is not there. MSH-1
 * and MSH-2 come back with *whole set: they are never split. */
static bool
field_span(const struct hl7_msg *m, size_t seg, unsigned field, struct span *sp,
	   bool *whole)
{
	const struct seg *sg;
	unsigned idx;

	*whole = false;
	if (seg >= m->nsegs || field == 0)
		return false;
	sg = &m->segs[seg];
	if (seg == 0) {
		if (field == 1) {
			*sp = (struct span){m->fs_str, 1};
			*whole = true;
			return true;
		}
		idx = field - 2;
		*whole = field == 2;
	} else {
		idx = field - 1;
	}
	if (idx >= sg->nflds)
		return false;
	sp->p = m->text + m->flds[sg->first + idx].off;
	sp->n = m->flds[sg->first + idx].len;
	return true;
}

/* The k-th (from 0) piece of sp between separators sep; false if fewer. */
static bool
piece(struct span *sp, char sep, unsigned k)
{
	const char *p = sp->p, *end = sp->p + sp->n;

	for (; k > 0; k--) {
		const char *q = memchr(p, sep, (size_t)(end - p));

		if (!q)
			return false;
		p = q + 1;
	}
	{
		const char *q = memchr(p, sep, (size_t)(end - p));

		sp->p = p;
		sp->n = (size_t)((q ? q : end) - p);
	}
	return true;
}

/* Undoes the escape sequence between the escape characters, body[0..n),
 * appending to o; false when it is not one this parser knows, so the
 * caller keeps it as text. */
static bool
unescape_one(const struct hl7_delims *dl, const char *body, size_t n, char *o,
	     size_t *on)
{
	if (n == 1) {
		char c;

		switch (body[0]) {
		case 'F': c = dl->field; break;
		case 'S': c = dl->component; break;
		case 'T': c = dl->subcomponent; break;
		case 'R': c = dl->repetition; break;
		case 'E': c = dl->escape; break;
		case 'P': c = dl->truncation; break;
		case 'H': /* highlighting on and off: no place in plain text */
		case 'N': return true;
		default: return false;
		}
		if (!c)
			return false;
		o[(*on)++] = c;
		return true;
	}
	if (n >= 3 && body[0] == 'X' && (n - 1) % 2 == 0) {
		size_t k = *on;

		for (size_t i = 1; i < n; i += 2) {
			int hi = hex_value(body[i]), lo = hex_value(body[i + 1]);

			/* a NUL would cut the C string the caller gets */
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return false;
			o[k++] = (char)(hi << 4 | lo);
		}
		*on = k;
		return true;
	}
	if (n >= 2 && body[0] == '.') {
		/* Formatting: a line break (.br, .sp) becomes a newline; the
		 * rest (.fi .nf .in .ti .sk .ce) means nothing in plain text. */
		if ((n >= 3 && memcmp(body, ".br", 3) == 0) ||
		    (n >= 3 && memcmp(body, ".sp", 3) == 0))
			o[(*on)++] = '\n';
		return true;
	}
	return false;
}

/* sp decoded into a fresh arena string; NULL when that is empty. */
static const char *
decode(const struct hl7_msg *m, struct span sp)
{
	const struct hl7_delims *dl = &m->dl;
	char *o;
	size_t i, on = 0;

	if (sp.n == 0)
		return NULL;
	if (sp.n == 2 && sp.p[0] == '"' && sp.p[1] == '"')
		return HL7_NULL;
	o = arena_alloc(m->a, sp.n + 1); /* decoding never lengthens */
	if (!o)
		return NULL;
	for (i = 0; i < sp.n; i++) {
		const char *e;

		if (sp.p[i] != dl->escape) {
			o[on++] = sp.p[i];
			continue;
		}
		e = memchr(sp.p + i + 1, dl->escape, sp.n - i - 1);
		if (!e) { /* unterminated: the rest is text */
			memcpy(o + on, sp.p + i, sp.n - i);
			on += sp.n - i;
			break;
		}
		if (!unescape_one(dl, sp.p + i + 1, (size_t)(e - sp.p - i - 1), o,
				  &on)) {
			/* Not a sequence we know: kept as text, and the closing
			 * escape character may open the next one. */
			o[on++] = sp.p[i];
			continue;
		}
		i = (size_t)(e - sp.p);
	}
	o[on] = '\0';
	return on ? o : NULL;
}

const char *
hl7_get(const struct hl7_msg *m, size_t seg, unsigned field, unsigned rep,
	unsigned comp, unsigned sub)
{
	struct span sp;
	bool whole;

	if (!field_span(m, seg, field, &sp, &whole))
		return NULL;
	if (whole) { /* MSH-1, MSH-2: as written, one value */
		if (rep > 0 || comp > 1 || sub > 1 || sp.n == 0)
			return NULL;
		return arena_strndup(m->a, sp.p, sp.n);
	}
	if (!piece(&sp, m->dl.repetition, rep))
		return NULL;
	if (comp > 0) {
		if (!piece(&sp, m->dl.component, comp - 1))
			return NULL;
		if (sub > 0 && !piece(&sp, m->dl.subcomponent, sub - 1))
			return NULL;
	}
	return decode(m, sp);
}

unsigned
hl7_reps(const struct hl7_msg *m, size_t seg, unsigned field)
{
	struct span sp;
	bool whole;
	unsigned n = 1;

	if (!field_span(m, seg, field, &sp, &whole) || sp.n == 0)
		return 0;
	if (whole)
		return 1;
	for (size_t i = 0; i < sp.n; i++)
		n += sp.p[i] == m->dl.repetition;
	return n;
}

struct span
hl7_raw(const struct hl7_msg *m, size_t seg, unsigned field)
{
	struct span sp = {"", 0};
	bool whole;

	if (!field_span(m, seg, field, &sp, &whole))
		return (struct span){"", 0};
	return sp;
}

/* A header value: the HL7 null means nothing here. */
static const char *
hdr(const struct hl7_msg *m, unsigned field, unsigned comp)
{
	const char *v = hl7_get(m, 0, field, 0, comp, 0);

	return v == HL7_NULL ? NULL : v;
}

enum cw_err
hl7_header(const struct hl7_msg *m, struct hl7_header *h, struct diag *d)
{
	enum cw_err err = CW_OK;

	h->sending_app = hdr(m, 3, 1);
	h->sending_facility = hdr(m, 4, 1);
	h->receiving_app = hdr(m, 5, 1);
	h->receiving_facility = hdr(m, 6, 1);
	h->datetime = hdr(m, 7, 1);
	h->type = hdr(m, 9, 1);
	h->trigger = hdr(m, 9, 2);
	h->structure = hdr(m, 9, 3);
	h->control_id = hdr(m, 10, 0);
	h->processing_id = hdr(m, 11, 1);
	h->version = hdr(m, 12, 1);
	if (!h->type)
		err = fail(d, CW_EINVAL, "required", "MSH-9",
			   "MSH-9.1, the message type, is missing");
	if (!h->trigger)
		err = fail(d, CW_EINVAL, "required", "MSH-9",
			   "MSH-9.2, the trigger event, is missing");
	if (!h->control_id)
		err = fail(d, CW_EINVAL, "required", "MSH-10",
			   "MSH-10, the message control id, is missing");
	if (h->version) {
		unsigned minor = version_minor(h->version);

		if (minor < 1 || minor > 8)
			err = fail(d, CW_EINVAL, "not-supported", "MSH-12",
				   "MSH-12 names a version other than 2.1 to 2.8");
	}
	return err;
}

/* ---- DTM ------------------------------------------------------------ */

#define MS_PER_MIN (60LL * 1000)

/* A DTM split into its parts; prec counts the parts given (1 year ... 6
 * seconds), frac the digits after the point. */
struct dtm {
	int y;
	unsigned mo, d, h, mi, s;
	unsigned prec;
	char frac[5];
	bool has_zone;
	int zone; /* minutes east of UTC */
};

static bool
digits(const char *s, unsigned k, unsigned *v)
{
	*v = 0;
	for (unsigned i = 0; i < k; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (unsigned)(s[i] - '0');
	}
	return true;
}

static bool
leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* FHIR zones run from -13:59 to +14:00. */
static bool
zone_ok(int minutes)
{
	int a = minutes < 0 ? -minutes : minutes;

	return a <= 14 * 60;
}

static bool
dtm_read(const char *s, struct dtm *t)
{
	static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30,
					      31, 31, 30, 31, 30, 31};
	unsigned *parts[5], v, i = 4, k;

	memset(t, 0, sizeof(*t));
	if (!s || !digits(s, 4, &v) || v == 0)
		return false;
	t->y = (int)v;
	t->prec = 1;
	t->mo = t->d = 1;
	parts[0] = &t->mo;
	parts[1] = &t->d;
	parts[2] = &t->h;
	parts[3] = &t->mi;
	parts[4] = &t->s;
	for (k = 0; k < 5 && s[i] >= '0' && s[i] <= '9'; k++, i += 2) {
		if (!digits(s + i, 2, parts[k]))
			return false;
		t->prec++;
	}
	if (s[i] == '.') {
		unsigned nf = 0;

		if (t->prec != 6)
			return false;
		for (i++; s[i] >= '0' && s[i] <= '9'; i++) {
			if (nf == 4)
				return false;
			t->frac[nf++] = s[i];
		}
		if (nf == 0)
			return false;
	}
	if (s[i] == '+' || s[i] == '-') {
		unsigned zh, zm;

		if (!digits(s + i + 1, 2, &zh) || !digits(s + i + 3, 2, &zm) ||
		    zm > 59)
			return false;
		t->has_zone = true;
		t->zone = (int)(zh * 60 + zm) * (s[i] == '-' ? -1 : 1);
		if (!zone_ok(t->zone))
			return false;
		i += 5;
	}
	if (s[i] != '\0')
		return false;
	if (t->mo < 1 || t->mo > 12)
		return false;
	if (t->d < 1 || t->d > (t->mo == 2 && leap(t->y) ? 29u : dim[t->mo - 1]))
		return false;
	return t->h < 24 && t->mi < 60 && t->s < 60;
}

bool
hl7_datetime(const char *dtm, int tz_minutes, char out[HL7_DATETIME_MAX])
{
	struct dtm t;
	int z, n;

	if (!dtm_read(dtm, &t) || !zone_ok(tz_minutes))
		return false;
	switch (t.prec) {
	case 1:
		n = snprintf(out, HL7_DATETIME_MAX, "%04d", t.y);
		return n > 0;
	case 2:
		n = snprintf(out, HL7_DATETIME_MAX, "%04d-%02u", t.y, t.mo);
		return n > 0;
	case 3:
		n = snprintf(out, HL7_DATETIME_MAX, "%04d-%02u-%02u", t.y, t.mo, t.d);
		return n > 0;
	}
	/* FHIR's dateTime with a time has seconds and a zone. */
	n = snprintf(out, HL7_DATETIME_MAX, "%04d-%02u-%02uT%02u:%02u:%02u%s%s",
		     t.y, t.mo, t.d, t.h, t.mi, t.s, t.frac[0] ? "." : "", t.frac);
	if (n < 0 || n >= HL7_DATETIME_MAX - 7)
		return false;
	if (!t.has_zone && tz_minutes == 0) {
		out[n++] = 'Z';
		out[n] = '\0';
		return true;
	}
	z = t.has_zone ? t.zone : tz_minutes;
	snprintf(out + n, HL7_DATETIME_MAX - (size_t)n, "%c%02d:%02d",
		 z < 0 ? '-' : '+', (z < 0 ? -z : z) / 60, (z < 0 ? -z : z) % 60);
	return true;
}

bool
hl7_datetime_ms(const char *dtm, int tz_minutes, int64_t *ms)
{
	struct dtm t;
	int64_t v;
	unsigned fr = 0;

	if (!dtm_read(dtm, &t) || !zone_ok(tz_minutes))
		return false;
	for (unsigned i = 0; i < 3; i++)
		fr = fr * 10 + (t.frac[i] ? (unsigned)(t.frac[i] - '0') : 0);
	v = time_days_from_civil(t.y, t.mo, t.d) * 24 * 60 * MS_PER_MIN;
	v += ((int64_t)t.h * 60 + t.mi) * MS_PER_MIN + (int64_t)t.s * 1000 + fr;
	v -= (int64_t)(t.has_zone ? t.zone : tz_minutes) * MS_PER_MIN;
	*ms = v;
	return true;
}

/* ---- escaping ------------------------------------------------------- */

enum cw_err
hl7_escape(const struct hl7_delims *dl, const char *s, struct sbuf *out)
{
	enum cw_err err = CW_OK;
	const char *run = s;

	for (; *s && !err; s++) {
		const char *seq = NULL;
		char c = *s;

		if (c == dl->field)
			seq = "F";
		else if (c == dl->component)
			seq = "S";
		else if (c == dl->subcomponent)
			seq = "T";
		else if (c == dl->repetition)
			seq = "R";
		else if (c == dl->escape)
			seq = "E";
		else if (dl->truncation && c == dl->truncation)
			seq = "P";
		else if (c == '\r')
			seq = "X0D";
		else if (c == '\n')
			seq = "X0A";
		if (!seq)
			continue;
		err = sbuf_add(out, run, (size_t)(s - run));
		if (!err)
			err = sbuf_addf(out, "%c%s%c", dl->escape, seq, dl->escape);
		run = s + 1;
	}
	if (!err)
		err = sbuf_add(out, run, (size_t)(s - run));
	return err;
}
