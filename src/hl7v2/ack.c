/* hl7v2/ack.c: the ACK answering a message.
 *
 * An ACK is written in the sender's delimiters and version, so their
 * engine reads it as it reads its own messages: MSH with the applications
 * swapped, MSA, and one ERR per problem, whose shape changed in 2.5 (ERR-1
 * before, ERR-2..8 from then on). Header fields are echoed as the message
 * wrote them (they are already escaped in its delimiters); what careweave
 * writes itself goes through hl7_escape.
 *
 * When nothing parsed, the answer is an AR in 2.5 with the default
 * delimiters, and the little that can be read from the first line of what
 * arrived is salvaged byte by byte, within nraw and with control bytes
 * dropped: it names the sender and the message the AR is for. */
#include <stdio.h>
#include <string.h>

#include "hl7v2/hl7v2.h"

/* Longest value salvaged from an unparsed message (MSH-10 is at most 199
 * characters from 2.5). */
#define SALVAGE_MAX 199

static const struct {
	int code;
	const char *text;
} table_0357[] = {
	{0, "Message accepted"},
	{100, "Segment sequence error"},
	{101, "Required field missing"},
	{102, "Data type error"},
	{103, "Table value not found"},
	{200, "Unsupported message type"},
	{201, "Unsupported event code"},
	{202, "Unsupported processing id"},
	{203, "Unsupported version id"},
	{204, "Unknown key identifier"},
	{205, "Duplicate key identifier"},
	{206, "Application record locked"},
	{207, "Application internal error"},
};

static const char *
code_text(int code)
{
	for (size_t i = 0; i < sizeof(table_0357) / sizeof(table_0357[0]); i++)
		if (table_0357[i].code == code)
			return table_0357[i].text;
	return NULL;
}

/* What the MSH of the ACK is built from. Raw values are already in the
 * delimiters of the ACK; plain ones are escaped when written. */
struct ack_src {
	struct hl7_delims dl;
	struct span enc;          /* MSH-2 */
	struct span app[4];       /* MSH-3..6 as received */
	struct span proc, vers;   /* MSH-11, MSH-12 */
	const char *trigger;      /* plain */
	const char *control_id;   /* plain */
	unsigned minor;           /* of the version: ERR shape, MSH-10 length */
};

static unsigned
minor_of(struct span v)
{
	if (v.n < 3 || v.p[0] != '2' || v.p[1] != '.' || v.p[2] < '1' || v.p[2] > '9')
		return 5;
	if (v.n > 3 && v.p[3] >= '0' && v.p[3] <= '9')
		return 5;
	return (unsigned)(v.p[2] - '0');
}

/* The first component of raw field f, as a span. */
static struct span
first_comp(struct span f, char comp)
{
	const char *q = memchr(f.p, comp, f.n);

	if (q)
		f.n = (size_t)(q - f.p);
	return f;
}

static void
from_msg(const struct hl7_msg *m, struct ack_src *s)
{
	const char *v;

	s->dl = *hl7_delims(m);
	s->enc = hl7_raw(m, 0, 2);
	for (unsigned i = 0; i < 4; i++)
		s->app[i] = hl7_raw(m, 0, 3 + i);
	s->proc = hl7_raw(m, 0, 11);
	s->vers = hl7_raw(m, 0, 12);
	v = hl7_get(m, 0, 9, 0, 2, 0);
	s->trigger = v == HL7_NULL ? NULL : v;
	v = hl7_get(m, 0, 10, 0, 0, 0);
	s->control_id = v == HL7_NULL ? NULL : v;
	s->minor = minor_of(first_comp(s->vers, s->dl.component));
}

/* Copies the printable bytes of f (at most SALVAGE_MAX) into the arena. */
static const char *
salvage_text(struct arena *a, struct span f)
{
	char *o = arena_alloc(a, SALVAGE_MAX + 1);
	size_t on = 0;

	if (!o)
		return NULL;
	for (size_t i = 0; i < f.n && on < SALVAGE_MAX; i++) {
		unsigned char c = (unsigned char)f.p[i];

		if (c >= 0x20 && c != 0x7f)
			o[on++] = (char)c;
	}
	o[on] = '\0';
	return on ? o : NULL;
}

/* From the first line of raw, which is not a message we could parse: the
 * separators it seems to use, then MSH-3..6, MSH-9.2 and MSH-10, first
 * components only, as plain text. */
static void
from_raw(struct arena *a, const char *raw, size_t nraw, struct ack_src *s,
	 const char *plain[4])
{
	size_t i, e, p;
	char fs, comp = '\0';
	unsigned field;

	if (!raw)
		return;
	for (i = 0; i < nraw && (raw[i] == '\r' || raw[i] == '\n' || raw[i] == ' ' ||
				 raw[i] == '\t' || raw[i] == 0x0b);
	     i++)
		;
	if (nraw - i < 4 || memcmp(raw + i, "MSH", 3) != 0)
		return;
	raw += i;
	nraw -= i;
	for (e = 0; e < nraw && e < HL7_MSG_MAX && raw[e] != '\r' && raw[e] != '\n'; e++)
		;
	fs = raw[3];
	if ((unsigned char)fs < 0x20 || fs == ' ' || (fs >= '0' && fs <= '9') ||
	    (fs >= 'A' && fs <= 'Z') || (fs >= 'a' && fs <= 'z'))
		return;
	if (e > 4 && raw[4] != fs)
		comp = raw[4];
	/* field numbering as in hl7_get: the piece after the first separator
	 * is MSH-2 */
	for (p = 3, field = 2; p < e && field <= 10; field++) {
		size_t q = p + 1;
		struct span f, c1;

		while (q < e && raw[q] != fs)
			q++;
		f = (struct span){raw + p + 1, q - p - 1};
		c1 = comp ? first_comp(f, comp) : f;
		if (field >= 3 && field <= 6) {
			plain[field - 3] = salvage_text(a, c1);
		} else if (field == 9 && comp && c1.n < f.n) {
			f.p += c1.n + 1;
			f.n -= c1.n + 1;
			s->trigger = salvage_text(a, first_comp(f, comp));
		} else if (field == 10) {
			s->control_id = salvage_text(a, c1);
		}
		p = q;
	}
}

/* MSH-7: now, in UTC. Escaped like any value: a sender may have chosen
 * '+' as a separator. */
static enum cw_err
add_time(const struct hl7_delims *dl, struct sbuf *out)
{
	char iso[32], dtm[24];

	/* "2026-11-23T17:50:00.123Z" to DTM "20261123175000+0000" */
	time_format_instant(time_now_ms(), iso);
	snprintf(dtm, sizeof(dtm), "%.4s%.2s%.2s%.2s%.2s%.2s+0000", iso, iso + 5,
		 iso + 8, iso + 11, iso + 14, iso + 17);
	return hl7_escape(dl, dtm, out);
}

/* MSH-10: a UUIDv7 from 2.5, where ST holds 199 characters; before, 20
 * hex digits (48 bits of milliseconds, 32 random) fit the 20 allowed.
 * Escaped too, for a sender whose separators include '-'. */
static enum cw_err
add_control_id(const struct hl7_delims *dl, struct sbuf *out, unsigned minor)
{
	char id[ID_LEN + 1];
	uint32_t r;

	if (minor >= 5) {
		id_new(id);
	} else {
		id_random_bytes(&r, sizeof(r));
		snprintf(id, sizeof(id), "%012llx%08x",
			 (unsigned long long)time_now_ms() & 0xffffffffffffULL,
			 (unsigned)r);
	}
	return hl7_escape(dl, id, out);
}

static enum cw_err
add_err(struct sbuf *out, const struct ack_src *s, const struct hl7_problem *pr)
{
	const struct hl7_delims *dl = &s->dl;
	const char *ctext = code_text(pr->code);
	char f = dl->field, c = dl->component, t = dl->subcomponent;
	enum cw_err err;

	err = sbuf_addf(out, "ERR%c", f);
	if (s->minor < 5) {
		/* ERR-1 (ELD): segment^seq^field^code&text&HL70357 */
		const char *text = pr->text ? pr->text : ctext;

		if (!err && pr->segment)
			err = hl7_escape(dl, pr->segment, out);
		if (!err && pr->seq)
			err = sbuf_addf(out, "%c%u", c, pr->seq);
		else if (!err)
			err = sbuf_addch(out, c);
		if (!err && pr->field)
			err = sbuf_addf(out, "%c%u", c, pr->field);
		else if (!err)
			err = sbuf_addch(out, c);
		if (!err)
			err = sbuf_addf(out, "%c%d%c", c, pr->code, t);
		if (!err && text)
			err = hl7_escape(dl, text, out);
		if (!err)
			err = sbuf_addf(out, "%cHL70357\r", t);
		return err;
	}
	/* ERR-2 (ERL) segment^seq^field, ERR-3 (CWE) code^text^HL70357,
	 * ERR-4 severity, ERR-8 the text for a person. */
	if (!err)
		err = sbuf_addch(out, f);
	if (!err && pr->segment) {
		err = hl7_escape(dl, pr->segment, out);
		if (!err && (pr->seq || pr->field))
			err = sbuf_addf(out, "%c%u", c, pr->seq ? pr->seq : 1);
		if (!err && pr->field)
			err = sbuf_addf(out, "%c%u", c, pr->field);
	}
	if (!err)
		err = sbuf_addf(out, "%c%d%c", f, pr->code, c);
	if (!err && ctext)
		err = hl7_escape(dl, ctext, out);
	if (!err)
		err = sbuf_addf(out, "%cHL70357%c%c", c, f, pr->warning ? 'W' : 'E');
	if (!err && pr->text) {
		err = sbuf_addf(out, "%c%c%c%c", f, f, f, f);
		if (!err)
			err = hl7_escape(dl, pr->text, out);
	}
	if (!err)
		err = sbuf_addch(out, '\r');
	return err;
}

enum cw_err
hl7_ack(struct arena *a, const struct hl7_msg *m, const char *raw, size_t nraw,
	enum hl7_ack_code code, const struct hl7_problem *problems,
	size_t nproblems, struct sbuf *out)
{
	static const char *const codes[] = {"AA", "AE", "AR"};
	struct ack_src s;
	const char *plain[4] = {NULL, NULL, NULL, NULL};
	char f;
	enum cw_err err;
	size_t i;

	memset(&s, 0, sizeof(s));
	if ((unsigned)code > HL7_AR)
		return CW_EINVAL;
	if (m) {
		from_msg(m, &s);
		/* No version named: the ACK says 2.5, which has no truncation
		 * character, so it must not declare one. */
		if (!s.vers.n && s.dl.truncation) {
			s.dl.truncation = '\0';
			s.enc.n = 4;
		}
	} else {
		s.dl = (struct hl7_delims){'|', '^', '~', '\\', '&', '\0'};
		s.enc = SPAN_LIT("^~\\&");
		s.proc = SPAN_LIT("P");
		s.vers = SPAN_LIT("2.5");
		s.minor = 5;
		code = HL7_AR;
		from_raw(a, raw, nraw, &s, plain);
	}
	f = s.dl.field;

	err = sbuf_addf(out, "MSH%c%.*s", f, (int)s.enc.n, s.enc.p);
	/* MSH-3..6 of the ACK are MSH-5, 6, 3, 4 of the message. */
	for (i = 0; i < 4 && !err; i++) {
		size_t from = (i + 2) % 4;

		err = sbuf_addch(out, f);
		if (!err && m)
			err = sbuf_add(out, s.app[from].p, s.app[from].n);
		else if (!err && plain[from])
			err = hl7_escape(&s.dl, plain[from], out);
	}
	if (!err)
		err = sbuf_addch(out, f);
	if (!err)
		err = add_time(&s.dl, out);
	if (!err)
		err = sbuf_addf(out, "%c%cACK", f, f);
	if (!err && s.trigger) {
		err = sbuf_addch(out, s.dl.component);
		if (!err)
			err = hl7_escape(&s.dl, s.trigger, out);
		if (!err)
			err = sbuf_addf(out, "%cACK", s.dl.component);
	}
	if (!err)
		err = sbuf_addch(out, f);
	if (!err)
		err = add_control_id(&s.dl, out, s.minor);
	if (!err)
		err = sbuf_addf(out, "%c%.*s%c", f, (int)s.proc.n, s.proc.p, f);
	if (!err && s.vers.n)
		err = sbuf_add(out, s.vers.p, s.vers.n);
	else if (!err)
		err = hl7_escape(&s.dl, "2.5", out); /* the sender named none */
	if (!err)
		err = sbuf_addch(out, '\r');

	if (!err)
		err = sbuf_addf(out, "MSA%c%s%c", f, codes[code], f);
	if (!err && s.control_id)
		err = hl7_escape(&s.dl, s.control_id, out);
	if (!err && s.minor < 5 && nproblems > 0 && problems[0].text) {
		err = sbuf_addch(out, f);
		if (!err)
			err = hl7_escape(&s.dl, problems[0].text, out);
	}
	if (!err)
		err = sbuf_addch(out, '\r');
	for (i = 0; i < nproblems && !err; i++)
		err = add_err(out, &s, &problems[i]);
	return err;
}
