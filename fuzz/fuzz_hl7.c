/* fuzz/fuzz_hl7.c: the HL7 v2 parser and the ACK.
 *
 * Whatever arrives, hl7_parse either refuses it or indexes it; every value
 * of the first fields of every segment is then read, down to
 * subcomponents, and checked against the raw field: a piece without an
 * escape character reads back as itself (or as HL7_NULL for ""). Every
 * value read goes through the DTM conversions. Then an ACK is built, for
 * the message and for the raw bytes alone, and each must parse again with
 * its MSA where it belongs. Anything else aborts. */
#include <stdlib.h>
#include <string.h>

#include "hl7v2/hl7v2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FIELDS_READ 40

/* The k-th piece of s split at sep. */
static struct span
nth(struct span s, char sep, unsigned k)
{
	const char *p = s.p, *end = s.p + s.n, *q;

	while (k-- > 0) {
		q = memchr(p, sep, (size_t)(end - p));
		p = q ? q + 1 : end;
	}
	q = memchr(p, sep, (size_t)(end - p));
	return (struct span){p, (size_t)((q ? q : end) - p)};
}

static unsigned
count(struct span s, char sep)
{
	unsigned n = 1;

	for (size_t i = 0; i < s.n; i++)
		n += s.p[i] == sep;
	return n;
}

static void
check_value(const struct hl7_delims *dl, struct span raw, const char *v)
{
	char dt[HL7_DATETIME_MAX];
	int64_t ms;

	if (raw.n == 0) {
		if (v)
			abort();
		return;
	}
	if (raw.n == 2 && raw.p[0] == '"' && raw.p[1] == '"') {
		if (v != HL7_NULL)
			abort();
		return;
	}
	if (!memchr(raw.p, dl->escape, raw.n) &&
	    (!v || strlen(v) != raw.n || memcmp(v, raw.p, raw.n) != 0))
		abort();
	if (v && v != HL7_NULL) {
		if (hl7_datetime(v, 0, dt) != hl7_datetime_ms(v, 0, &ms))
			abort();
	}
}

static void
read_all(const struct hl7_msg *m)
{
	const struct hl7_delims *dl = hl7_delims(m);

	for (size_t s = 0; s < hl7_segment_count(m); s++) {
		const char *name = hl7_segment_name(m, s);

		if (!name || strlen(name) != 3 || hl7_find(m, name, s, 0) != (long)s)
			abort();
		for (unsigned f = s == 0 ? 3 : 1; f <= FIELDS_READ; f++) {
			struct span raw = hl7_raw(m, s, f);
			unsigned reps = hl7_reps(m, s, f);

			if (reps != (raw.n ? count(raw, dl->repetition) : 0))
				abort();
			for (unsigned r = 0; r < reps; r++) {
				struct span rs = nth(raw, dl->repetition, r);
				unsigned nc = count(rs, dl->component);

				check_value(dl, rs, hl7_get(m, s, f, r, 0, 0));
				for (unsigned c = 1; c <= nc; c++) {
					struct span cs = nth(rs, dl->component, c - 1);
					unsigned ns = count(cs, dl->subcomponent);

					check_value(dl, cs, hl7_get(m, s, f, r, c, 0));
					for (unsigned k = 1; k <= ns; k++)
						check_value(dl, nth(cs, dl->subcomponent, k - 1),
							    hl7_get(m, s, f, r, c, k));
					if (hl7_get(m, s, f, r, c, ns + 1))
						abort();
				}
				if (hl7_get(m, s, f, r, nc + 1, 0))
					abort();
			}
			if (hl7_get(m, s, f, reps, 1, 0))
				abort();
		}
	}
}

/* The ACK must be a message whose second segment is MSA. */
static void
check_ack(struct arena *a, const struct hl7_msg *m, const uint8_t *data,
	  size_t size)
{
	static const struct hl7_problem p[] = {
		{"PID", 1, 3, 101, false, "required field missing"},
		{NULL, 0, 0, 207, true, "text with | ^ ~ \\ & # \r\n separators"},
	};
	struct sbuf out = SBUF_INIT(2 * HL7_MSG_MAX);
	struct hl7_msg *back;
	struct hl7_header h;
	struct diag d;

	diag_init(&d, a);
	if (hl7_ack(a, m, (const char *)data, size, HL7_AE, p, 2, &out) != CW_OK)
		abort();
	if (out.len > HL7_MSG_MAX) /* a huge MSH echoed */
		goto out_release;
	if (hl7_parse(a, out.buf, out.len, &back, &d) != CW_OK)
		abort();
	if (hl7_segment_count(back) != 4 || hl7_find(back, "MSA", 0, 0) != 1)
		abort();
	hl7_header(back, &h, &d);
	if (!h.type || strcmp(h.type, "ACK") != 0 || !h.control_id)
		abort();
out_release:
	sbuf_release(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct arena *a = arena_new(64u << 20);
	struct hl7_msg *m = NULL;
	struct hl7_header h;
	struct diag d;

	if (!a)
		return 0;
	diag_init(&d, a);
	if (hl7_parse(a, (const char *)data, size, &m, &d) == CW_OK) {
		read_all(m);
		hl7_header(m, &h, &d);
		check_ack(a, m, data, size);
	} else if (!diag_has_errors(&d) || m) {
		abort();
	}
	check_ack(a, NULL, data, size);
	arena_free(a);
	return 0;
}
