/* Unit tests for hl7v2/parse.c: the knowledge-base examples, delimiters,
 * escapes, limits, malformed input and DTM conversion. */
#include "unit.h"

#include "hl7v2/hl7v2.h"

/* The three example messages of the knowledge base (shared/kb/hl7v2.md),
 * segments joined by CR. */
static const char ADT_A01[] =
	"MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|GHH LAB, INC.|GOOD HEALTH HOSPITAL|"
	"198808181126|SECURITY|ADT^A01^ADT_A01|MSG00001|P|2.8||\r"
	"EVN|A01|200708181123||\r"
	"PID|1||PATID1234^5^M11^ADT1^MR^GOOD HEALTH HOSPITAL~123456789^^^USSSA^SS||"
	"EVERYMAN^ADAM^A^III||19610615|M||C|2222 HOME STREET^^GREENSBORO^NC^27401-1020|"
	"GL|(555) 555-2004|(555)555-2004||S||PATID12345001^2^M10^ADT1^AN^A|444333333|"
	"987654^NC|\r"
	"NK1|1|NUCLEAR^NELDA^W|SPO^SPOUSE||||NK^NEXT OF KIN\r"
	"PV1|1|I|2000^2012^01||||004777^ATTEND^AARON^A|||SUR||||ADM|A0|\r";

static const char ADT_A03[] =
	"MSH|^~\\&|Tutorial_ADTSystem|MCM|BTAHL7InterfaceEngine||199601121005||"
	"ADT^A03|000001|P|2.3.1\r"
	"EVN|A03|199601121005||01||199601121000\r"
	"PID|||191919^^^MYHOS^MR~123-45-6789^^^USSSA^SS|253763|SMITH^JOHN^Q||19560129|"
	"M|||123MAIN^^BUFFALO^NY^98052^\"\"||(123)555-0100||S|M|10199925^^^MYHOS^AN|"
	"123-45-6789\r"
	"PV1|1|I|2000^2012^01^hey&test&DNS^test^test^test^test^test||||"
	"004777^MILLER^CONNIE^A.|||SUR||||2|A0\r";

static const char ORU_R01[] =
	"MSH|^~\\&|GHH LAB|ELAB-3|GHH OE|BLDG4|200202150930||ORU^R01|CNTRL-3456|P|2.4\r"
	"PID|||555-44-4444||EVERYWOMAN^EVE^E^^^^L|JONES|19620320|F|||"
	"153 FERNWOOD DR.^^STATESVILLE^OH^35292||(206)3345232|(206)752-121||||"
	"AC555444444||67-A4335^OH^20030520\r"
	"OBR|1|845439^GHH OE|1045813^GHH LAB|1554-5^GLUCOSE|||200202150730||||||||"
	"555-55-5555^PRIMARY^PATRICIA P^^^^MD^^LEVEL SEVEN HEALTHCARE, INC.|||||||||F"
	"||||||444-44-4444^HIPPOCRATES^HOWARD H^^^^MD\r"
	"OBX|1|SN|1554-5^GLUCOSE^POST 12H CFST:MCNC:PT:SER/PLAS:QN||^182|mg/dl|70_105|"
	"H|||F\r";

struct fx {
	struct arena *a;
	struct diag d;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->a = arena_new(0);
	diag_init(&f->d, f->a);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	arena_free(f->a);
	free(f);
	return 0;
}

static struct hl7_msg *
parse_ok(struct fx *f, const char *text)
{
	struct hl7_msg *m = NULL;

	assert_int_equal(hl7_parse(f->a, text, strlen(text), &m, &f->d), CW_OK);
	assert_non_null(m);
	return m;
}

/* Parses text, expecting err and a diag saying why. */
static void
parse_fails(struct fx *f, const char *text, size_t n, enum cw_err err)
{
	struct hl7_msg *m = (struct hl7_msg *)1;
	struct diag d;

	diag_init(&d, f->a);
	assert_int_equal(hl7_parse(f->a, text, n, &m, &d), err);
	assert_null(m);
	assert_true(diag_has_errors(&d));
	assert_non_null(d.issues[0].msg);
}

static long
seg(const struct hl7_msg *m, const char *name)
{
	long i = hl7_find(m, name, 0, 0);

	assert_true(i >= 0);
	return i;
}

static void
adt_a01_reads(void **state)
{
	struct fx *f = *state;
	struct hl7_msg *m = parse_ok(f, ADT_A01);
	struct hl7_header h;
	long pid, pv1;

	assert_int_equal(hl7_segment_count(m), 5);
	assert_string_equal(hl7_segment_name(m, 0), "MSH");
	assert_string_equal(hl7_segment_name(m, 4), "PV1");
	assert_null(hl7_segment_name(m, 5));
	assert_int_equal(hl7_header(m, &h, &f->d), CW_OK);
	assert_string_equal(h.sending_app, "ADT1");
	assert_string_equal(h.sending_facility, "GOOD HEALTH HOSPITAL");
	assert_string_equal(h.receiving_app, "GHH LAB, INC.");
	assert_string_equal(h.receiving_facility, "GOOD HEALTH HOSPITAL");
	assert_string_equal(h.datetime, "198808181126");
	assert_string_equal(h.type, "ADT");
	assert_string_equal(h.trigger, "A01");
	assert_string_equal(h.structure, "ADT_A01");
	assert_string_equal(h.control_id, "MSG00001");
	assert_string_equal(h.processing_id, "P");
	assert_string_equal(h.version, "2.8");

	pid = seg(m, "PID");
	assert_int_equal(hl7_reps(m, pid, 3), 2);
	assert_string_equal(hl7_get(m, pid, 3, 0, 1, 0), "PATID1234");
	assert_string_equal(hl7_get(m, pid, 3, 0, 4, 0), "ADT1");
	assert_string_equal(hl7_get(m, pid, 3, 0, 5, 0), "MR");
	assert_string_equal(hl7_get(m, pid, 3, 0, 6, 0), "GOOD HEALTH HOSPITAL");
	assert_string_equal(hl7_get(m, pid, 3, 1, 1, 0), "123456789");
	assert_null(hl7_get(m, pid, 3, 1, 2, 0));
	assert_string_equal(hl7_get(m, pid, 3, 1, 4, 0), "USSSA");
	assert_string_equal(hl7_get(m, pid, 3, 1, 5, 0), "SS");
	assert_null(hl7_get(m, pid, 3, 2, 1, 0));
	assert_string_equal(hl7_get(m, pid, 3, 1, 0, 0), "123456789^^^USSSA^SS");
	assert_string_equal(hl7_get(m, pid, 5, 0, 1, 0), "EVERYMAN");
	assert_string_equal(hl7_get(m, pid, 5, 0, 2, 0), "ADAM");
	assert_string_equal(hl7_get(m, pid, 5, 0, 3, 0), "A");
	assert_string_equal(hl7_get(m, pid, 5, 0, 4, 0), "III");
	assert_null(hl7_get(m, pid, 5, 0, 5, 0));
	assert_string_equal(hl7_get(m, pid, 7, 0, 0, 0), "19610615");
	assert_string_equal(hl7_get(m, pid, 8, 0, 1, 1), "M");
	assert_string_equal(hl7_get(m, pid, 11, 0, 3, 0), "GREENSBORO");
	assert_string_equal(hl7_get(m, pid, 18, 0, 1, 0), "PATID12345001");
	assert_null(hl7_get(m, pid, 2, 0, 0, 0));
	assert_int_equal(hl7_reps(m, pid, 2), 0);
	/* past the last field, and the empty one the trailing | leaves */
	assert_null(hl7_get(m, pid, 23, 0, 0, 0));
	assert_null(hl7_get(m, pid, 99, 0, 0, 0));

	pv1 = seg(m, "PV1");
	assert_string_equal(hl7_get(m, pv1, 2, 0, 0, 0), "I");
	assert_string_equal(hl7_get(m, pv1, 3, 0, 1, 0), "2000");
	assert_string_equal(hl7_get(m, pv1, 3, 0, 3, 0), "01");
	assert_string_equal(hl7_get(m, pv1, 7, 0, 2, 0), "ATTEND");
	assert_string_equal(hl7_get(m, pv1, 10, 0, 0, 0), "SUR");

	assert_string_equal(hl7_get(m, seg(m, "NK1"), 3, 0, 2, 0), "SPOUSE");
	assert_string_equal(hl7_get(m, seg(m, "EVN"), 2, 0, 0, 0), "200708181123");
	assert_int_equal(f->d.nerrors, 0);
}

static void
adt_a03_reads(void **state)
{
	struct fx *f = *state;
	struct hl7_msg *m = parse_ok(f, ADT_A03);
	struct hl7_header h;
	long pid, pv1;

	assert_int_equal(hl7_header(m, &h, &f->d), CW_OK);
	assert_string_equal(h.type, "ADT");
	assert_string_equal(h.trigger, "A03");
	assert_null(h.structure);
	assert_null(h.receiving_facility);
	assert_string_equal(h.datetime, "199601121005");
	assert_string_equal(h.version, "2.3.1");
	assert_string_equal(h.control_id, "000001");

	pid = seg(m, "PID");
	assert_int_equal(hl7_reps(m, pid, 3), 2);
	assert_string_equal(hl7_get(m, pid, 3, 0, 1, 0), "191919");
	assert_string_equal(hl7_get(m, pid, 3, 0, 4, 0), "MYHOS");
	assert_string_equal(hl7_get(m, pid, 3, 1, 1, 0), "123-45-6789");
	assert_string_equal(hl7_get(m, pid, 4, 0, 0, 0), "253763");
	assert_string_equal(hl7_get(m, pid, 5, 0, 3, 0), "Q");
	/* the HL7 null in PID-11.6 */
	assert_ptr_equal(hl7_get(m, pid, 11, 0, 6, 0), HL7_NULL);
	assert_string_equal(hl7_get(m, pid, 11, 0, 5, 0), "98052");
	/* the tutorial's PID has one field fewer than the standard's */
	assert_string_equal(hl7_get(m, pid, 17, 0, 4, 0), "MYHOS");
	assert_string_equal(hl7_get(m, pid, 18, 0, 0, 0), "123-45-6789");
	assert_null(hl7_get(m, pid, 19, 0, 0, 0));

	pv1 = seg(m, "PV1");
	assert_string_equal(hl7_get(m, pv1, 3, 0, 4, 0), "hey&test&DNS");
	assert_string_equal(hl7_get(m, pv1, 3, 0, 4, 1), "hey");
	assert_string_equal(hl7_get(m, pv1, 3, 0, 4, 2), "test");
	assert_string_equal(hl7_get(m, pv1, 3, 0, 4, 3), "DNS");
	assert_null(hl7_get(m, pv1, 3, 0, 4, 4));
	assert_string_equal(hl7_get(m, pv1, 3, 0, 9, 0), "test");
	assert_string_equal(hl7_get(m, pv1, 7, 0, 4, 0), "A.");
	assert_string_equal(hl7_get(m, pv1, 15, 0, 0, 0), "A0");
}

static void
oru_r01_reads(void **state)
{
	struct fx *f = *state;
	struct hl7_msg *m = parse_ok(f, ORU_R01);
	struct hl7_header h;
	long obr, obx;

	assert_int_equal(hl7_header(m, &h, &f->d), CW_OK);
	assert_string_equal(h.type, "ORU");
	assert_string_equal(h.trigger, "R01");
	assert_string_equal(h.version, "2.4");
	obr = seg(m, "OBR");
	assert_string_equal(hl7_get(m, obr, 4, 0, 1, 0), "1554-5");
	assert_string_equal(hl7_get(m, obr, 4, 0, 2, 0), "GLUCOSE");
	assert_string_equal(hl7_get(m, obr, 2, 0, 2, 0), "GHH OE");
	assert_string_equal(hl7_get(m, obr, 7, 0, 0, 0), "200202150730");
	/* the example's OBR is a field short of the standard's: the ordering
	 * provider lands in 15 */
	assert_string_equal(hl7_get(m, obr, 15, 0, 9, 0),
			    "LEVEL SEVEN HEALTHCARE, INC.");
	assert_string_equal(hl7_get(m, obr, 24, 0, 0, 0), "F");
	assert_string_equal(hl7_get(m, obr, 30, 0, 2, 0), "HIPPOCRATES");
	obx = seg(m, "OBX");
	assert_string_equal(hl7_get(m, obx, 2, 0, 0, 0), "SN");
	assert_string_equal(hl7_get(m, obx, 3, 0, 3, 0),
			    "POST 12H CFST:MCNC:PT:SER/PLAS:QN");
	/* SN "^182": no comparator, the number in component 2 */
	assert_null(hl7_get(m, obx, 5, 0, 1, 0));
	assert_string_equal(hl7_get(m, obx, 5, 0, 2, 0), "182");
	assert_string_equal(hl7_get(m, obx, 5, 0, 0, 0), "^182");
	assert_string_equal(hl7_get(m, obx, 6, 0, 0, 0), "mg/dl");
	assert_string_equal(hl7_get(m, obx, 8, 0, 0, 0), "H");
	assert_string_equal(hl7_get(m, obx, 11, 0, 0, 0), "F");
	assert_null(hl7_get(m, obx, 12, 0, 0, 0));
	assert_int_equal(hl7_find(m, "OBX", 0, 1), -1);
	assert_int_equal(hl7_find(m, "ZZZ", 0, 0), -1);
}

static void
msh_is_numbered_apart(void **state)
{
	struct fx *f = *state;
	struct hl7_msg *m = parse_ok(f, ADT_A01);
	struct span r;

	assert_string_equal(hl7_get(m, 0, 1, 0, 0, 0), "|");
	assert_string_equal(hl7_get(m, 0, 1, 0, 1, 1), "|");
	assert_string_equal(hl7_get(m, 0, 2, 0, 0, 0), "^~\\&");
	assert_int_equal(hl7_reps(m, 0, 2), 1);
	assert_string_equal(hl7_get(m, 0, 3, 0, 0, 0), "ADT1");
	assert_string_equal(hl7_get(m, 0, 9, 0, 0, 0), "ADT^A01^ADT_A01");
	r = hl7_raw(m, 0, 1);
	assert_true(span_eq(r, "|"));
	r = hl7_raw(m, 0, 9);
	assert_true(span_eq(r, "ADT^A01^ADT_A01"));
	r = hl7_raw(m, 2, 3);
	assert_true(span_eq(r, "PATID1234^5^M11^ADT1^MR^GOOD HEALTH HOSPITAL~"
			       "123456789^^^USSSA^SS"));
	r = hl7_raw(m, 2, 60);
	assert_int_equal(r.n, 0);
	assert_null(hl7_get(m, 0, 0, 0, 0, 0));
	assert_null(hl7_get(m, 9, 1, 0, 0, 0));
	assert_int_equal(hl7_delims(m)->field, '|');
	assert_int_equal(hl7_delims(m)->component, '^');
	assert_int_equal(hl7_delims(m)->repetition, '~');
	assert_int_equal(hl7_delims(m)->escape, '\\');
	assert_int_equal(hl7_delims(m)->subcomponent, '&');
	assert_int_equal(hl7_delims(m)->truncation, '\0');
}

/* Each version from 2.1 to 2.8 in MSH-12 is taken; others are not. */
static void
versions(void **state)
{
	static const char *const ok[] = {"2.1", "2.2", "2.3", "2.3.1", "2.4", "2.5",
					 "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.2"};
	static const char *const bad[] = {"3.0", "2.9", "2.0", "2.10", "25", "x"};
	struct fx *f = *state;
	struct hl7_header h;
	char buf[256];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct diag d;

		snprintf(buf, sizeof(buf),
			 "MSH|^~\\&|A|B|C|D|20200101||ADT^A08|X1|P|%s\rPID|1\r", ok[i]);
		diag_init(&d, f->a);
		assert_int_equal(hl7_header(parse_ok(f, buf), &h, &d), CW_OK);
		assert_string_equal(h.version, ok[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct diag d;

		snprintf(buf, sizeof(buf),
			 "MSH|^~\\&|A|B|C|D|20200101||ADT^A08|X1|P|%s\r", bad[i]);
		diag_init(&d, f->a);
		assert_int_equal(hl7_header(parse_ok(f, buf), &h, &d), CW_EINVAL);
		assert_string_equal(d.issues[0].loc, "MSH-12");
	}
}

static void
header_missing_fields(void **state)
{
	struct fx *f = *state;
	struct hl7_header h;
	struct diag d;

	diag_init(&d, f->a);
	assert_int_equal(hl7_header(parse_ok(f, "MSH|^~\\&|A|B|C|D|2020||ADT||P|2.5"),
				    &h, &d),
			 CW_EINVAL);
	assert_int_equal(d.nerrors, 2); /* trigger and control id */
	assert_string_equal(h.type, "ADT");
	assert_null(h.trigger);
	assert_null(h.control_id);
	diag_init(&d, f->a);
	assert_int_equal(hl7_header(parse_ok(f, "MSH|^~\\&"), &h, &d), CW_EINVAL);
	assert_int_equal(d.nerrors, 3);
	assert_null(h.sending_app);
	assert_null(h.version);
}

/* CR, LF, CRLF, blank lines and no final terminator all split alike. */
static void
terminators(void **state)
{
	static const char *const texts[] = {
		"MSH|^~\\&|A||||||ADT^A01|1|P|2.5\rPID|1||X\rPV1|1|E",
		"MSH|^~\\&|A||||||ADT^A01|1|P|2.5\nPID|1||X\nPV1|1|E\n",
		"MSH|^~\\&|A||||||ADT^A01|1|P|2.5\r\nPID|1||X\r\nPV1|1|E\r\n",
		"\r\nMSH|^~\\&|A||||||ADT^A01|1|P|2.5\r\r\nPID|1||X\n\n  \r\nPV1|1|E\r\r",
	};
	struct fx *f = *state;

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct hl7_msg *m = parse_ok(f, texts[i]);

		assert_int_equal(hl7_segment_count(m), 3);
		assert_string_equal(hl7_get(m, 1, 3, 0, 0, 0), "X");
		assert_string_equal(hl7_get(m, 2, 2, 0, 0, 0), "E");
		assert_string_equal(hl7_get(m, 0, 12, 0, 0, 0), "2.5");
		assert_null(hl7_get(m, 2, 3, 0, 0, 0));
	}
}

static void
other_delimiters(void **state)
{
	struct fx *f = *state;
	struct hl7_msg *m;
	long pid;

	/* * as component, # as field; the message says so in MSH-1/2 */
	m = parse_ok(f, "MSH#*~\\&#SND#FAC#RCV#RFAC#20200101##ADT*A01#C1#P#2.5\r"
			"PID#1##ID1*5*M11*AUTH~ID2***SS##DOE*JANE#a|b^c\r");
	assert_int_equal(hl7_delims(m)->field, '#');
	assert_int_equal(hl7_delims(m)->component, '*');
	assert_string_equal(hl7_get(m, 0, 1, 0, 0, 0), "#");
	assert_string_equal(hl7_get(m, 0, 2, 0, 0, 0), "*~\\&");
	assert_string_equal(hl7_get(m, 0, 9, 0, 2, 0), "A01");
	pid = seg(m, "PID");
	assert_int_equal(hl7_reps(m, pid, 3), 2);
	assert_string_equal(hl7_get(m, pid, 3, 0, 4, 0), "AUTH");
	assert_string_equal(hl7_get(m, pid, 3, 1, 4, 0), "SS");
	assert_string_equal(hl7_get(m, pid, 5, 0, 2, 0), "JANE");
	assert_string_equal(hl7_get(m, pid, 6, 0, 0, 0), "a|b^c"); /* plain text here */

	/* 2.7+ declares a truncation character */
	m = parse_ok(f, "MSH|^~\\&#|A||||||ADT^A01|1|P|2.7\rNTE|1||cut\\P\\here#\r");
	assert_int_equal(hl7_delims(m)->truncation, '#');
	assert_string_equal(hl7_get(m, 0, 2, 0, 0, 0), "^~\\&#");
	assert_string_equal(hl7_get(m, 1, 3, 0, 0, 0), "cut#here#");
	/* and before 2.7 the fifth character means nothing */
	m = parse_ok(f, "MSH|^~\\&#|A||||||ADT^A01|1|P|2.5\r");
	assert_int_equal(hl7_delims(m)->truncation, '\0');
}

static void
escapes(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"a\\F\\b", "a|b"},
		{"a\\S\\b", "a^b"},
		{"a\\T\\b", "a&b"},
		{"a\\R\\b", "a~b"},
		{"a\\E\\b", "a\\b"},
		{"\\X41\\\\X4243\\", "ABC"},
		{"\\X0D0A\\", "\r\n"},
		{"caf\\XC3A9\\", "caf\xc3\xa9"},
		{"\\Xzz\\", "\\Xzz\\"},       /* not hex: kept */
		{"\\X123\\", "\\X123\\"},     /* odd digits: kept */
		{"\\X00\\", "\\X00\\"},       /* a NUL is not produced */
		{"\\H\\bold\\N\\", "bold"},
		{"line1\\.br\\line2", "line1\nline2"},
		{"a\\.sp2\\b", "a\nb"},
		{"\\.in+4\\x\\.ti-2\\\\.fi\\\\.nf\\\\.ce\\", "x"},
		{"open\\F", "open\\F"},       /* unterminated: kept */
		{"\\", "\\"},
		{"\\Q\\x", "\\Q\\x"},         /* unknown: kept */
		{"\\P\\", "\\P\\"},           /* no truncation char declared */
		{"\\\\F\\", "\\|"},           /* empty sequence kept, then \F\ */
		{"\\H\\", NULL},              /* nothing left */
	};
	struct fx *f = *state;
	char buf[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hl7_msg *m;
		const char *v;

		snprintf(buf, sizeof(buf), "MSH|^~\\&|A||||||ADT^A01|1|P|2.5\rNTE|1||%s\r",
			 cases[i].in);
		m = parse_ok(f, buf);
		v = hl7_get(m, 1, 3, 0, 1, 1);
		if (!cases[i].out) {
			assert_null(v);
			continue;
		}
		assert_non_null(v);
		if (strcmp(v, cases[i].out) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, v, cases[i].out);
	}
}

static void
escape_round_trips(void **state)
{
	struct fx *f = *state;
	struct sbuf sb = SBUF_INIT(4096);
	const struct hl7_delims dl = {'|', '^', '~', '\\', '&', '#'};
	const char *s = "a|b^c~d\\e&f#g\rh\ni";
	struct hl7_msg *m;

	assert_int_equal(hl7_escape(&dl, s, &sb), CW_OK);
	assert_string_equal(sb.buf, "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\\P\\g\\X0D\\h\\X0A\\i");
	sbuf_reset(&sb);
	assert_int_equal(sbuf_adds(&sb, "MSH|^~\\&#|A||||||ADT^A01|1|P|2.8\rNTE|1||"),
			 CW_OK);
	assert_int_equal(hl7_escape(&dl, s, &sb), CW_OK);
	m = parse_ok(f, sb.buf);
	assert_string_equal(hl7_get(m, 1, 3, 0, 1, 1), s);
	sbuf_release(&sb);
}

static void
null_and_missing(void **state)
{
	struct fx *f = *state;
	struct hl7_msg *m =
		parse_ok(f, "MSH|^~\\&|A||||||ADT^A08|1|P|2.5\rPID|\"\"|||\"\"^X|\"x\"\rPV1\r");

	assert_ptr_equal(hl7_get(m, 1, 1, 0, 0, 0), HL7_NULL);
	assert_ptr_equal(hl7_get(m, 1, 1, 0, 1, 1), HL7_NULL);
	assert_null(hl7_get(m, 1, 1, 0, 2, 0));
	assert_ptr_equal(hl7_get(m, 1, 4, 0, 1, 0), HL7_NULL);
	assert_string_equal(hl7_get(m, 1, 4, 0, 0, 0), "\"\"^X");
	assert_string_equal(hl7_get(m, 1, 5, 0, 0, 0), "\"x\"");
	assert_null(hl7_get(m, 1, 2, 0, 0, 0));
	assert_null(hl7_get(m, 1, 6, 0, 0, 0));
	/* a segment with no fields at all */
	assert_string_equal(hl7_segment_name(m, 2), "PV1");
	assert_null(hl7_get(m, 2, 1, 0, 0, 0));
	assert_int_equal(hl7_reps(m, 2, 1), 0);
	assert_int_equal(hl7_raw(m, 2, 1).n, 0);
}

static void
z_segments_kept(void **state)
{
	struct fx *f = *state;
	struct hl7_msg *m = parse_ok(f, "MSH|^~\\&|A||||||ADT^A01|1|P|2.5\rZPI|1|local^x\r"
					"PID|1\rZPI|2|other\rZ01|9\r");

	assert_int_equal(hl7_segment_count(m), 5);
	assert_int_equal(hl7_find(m, "ZPI", 0, 0), 1);
	assert_int_equal(hl7_find(m, "ZPI", 0, 1), 3);
	assert_int_equal(hl7_find(m, "ZPI", 2, 0), 3);
	assert_int_equal(hl7_find(m, "ZPI", 4, 0), -1);
	assert_string_equal(hl7_get(m, 1, 2, 0, 2, 0), "x");
	assert_string_equal(hl7_get(m, 4, 1, 0, 0, 0), "9");
}

static void
malformed(void **state)
{
	struct fx *f = *state;
	static const char nul[] = "MSH|^~\\&|A||||||ADT^A01|1|P|2.5\rPID|1|\0|x\r";
	static const char *const bad[] = {
		"",
		"hello world",
		"PID|1||X\rMSH|^~\\&|A\r",  /* MSH not first */
		"MSH",                      /* too short */
		"MSH|",
		"MSH|^~\\",                 /* three encoding characters */
		"MSH|^~\\&*?|A",            /* six */
		"MSH|^^\\&|A",              /* a repeated separator */
		"MSH|^~\\||A",
		"MSH|^~a&|A",               /* a letter as separator */
		"MSH\r^~\\&",
		"MSH|^~\\&|A\rP1|x\r",      /* a segment name of two */
		"MSH|^~\\&|A\rPIDX|x\r",    /* of four */
		"MSH|^~\\&|A\rP-D|x\r",
		"MSH|^~\\&|A\rPID|1\rMSH|^~\\&|B\r", /* a batch */
		"\x0b\x1c\r",
	};
	struct sbuf sb = SBUF_INIT(HL7_MSG_MAX + 16);
	struct diag d;
	struct hl7_msg *m;
	unsigned i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		parse_fails(f, bad[i], strlen(bad[i]), CW_EINVAL);
	parse_fails(f, nul, sizeof(nul) - 1, CW_EINVAL);

	/* the segment limit: 5000 pass, 5001 do not */
	assert_int_equal(sbuf_adds(&sb, "MSH|^~\\&|A||||||ORU^R01|1|P|2.5\r"), CW_OK);
	for (i = 1; i < HL7_SEGMENTS_MAX; i++)
		assert_int_equal(sbuf_adds(&sb, "OBX|1\r"), CW_OK);
	diag_init(&d, f->a);
	assert_int_equal(hl7_parse(f->a, sb.buf, sb.len, &m, &d), CW_OK);
	assert_int_equal(hl7_segment_count(m), HL7_SEGMENTS_MAX);
	assert_int_equal(sbuf_adds(&sb, "OBX|1\r"), CW_OK);
	parse_fails(f, sb.buf, sb.len, CW_EINVAL);

	/* the repetition limit */
	sbuf_reset(&sb);
	assert_int_equal(sbuf_adds(&sb, "MSH|^~\\&|A||||||ADT^A01|1|P|2.5\rPID|1||x"), CW_OK);
	for (i = 1; i < HL7_REPS_MAX; i++)
		assert_int_equal(sbuf_adds(&sb, "~x"), CW_OK);
	diag_init(&d, f->a);
	assert_int_equal(hl7_parse(f->a, sb.buf, sb.len, &m, &d), CW_OK);
	assert_int_equal(hl7_reps(m, 1, 3), HL7_REPS_MAX);
	assert_string_equal(hl7_get(m, 1, 3, HL7_REPS_MAX - 1, 0, 0), "x");
	assert_int_equal(sbuf_adds(&sb, "~x"), CW_OK);
	parse_fails(f, sb.buf, sb.len, CW_EINVAL);

	/* the size limit */
	sbuf_reset(&sb);
	assert_int_equal(sbuf_adds(&sb, "MSH|^~\\&|A||||||ADT^A01|1|P|2.5\rNTE|1||"), CW_OK);
	while (sb.len <= HL7_MSG_MAX)
		assert_int_equal(sbuf_addch(&sb, 'x'), CW_OK);
	parse_fails(f, sb.buf, sb.len, CW_ETOOBIG);
	sbuf_release(&sb);
}

/* An arena too small for the message or its index: CW_ENOMEM, whatever
 * the allocation that fails; reads in a full arena give NULL, never a
 * crash. */
static void
arena_exhaustion(void **state)
{
	struct sbuf sb = SBUF_INIT(HL7_MSG_MAX);
	size_t cap;
	bool saw_nomem = false, saw_ok = false;

	assert_int_equal(sbuf_adds(&sb, "MSH|^~\\&|A||||||ORU^R01|1|P|2.5\r"), CW_OK);
	for (unsigned i = 0; i < 3000; i++)
		assert_int_equal(sbuf_adds(&sb, "OBX|1|NM|x^y^LN||12.5|mg\r"), CW_OK);
	for (cap = 16 * 1024; cap <= 512 * 1024; cap += 8 * 1024) {
		struct arena *a = arena_new(cap);
		struct hl7_msg *m = NULL;
		struct diag d;
		enum cw_err err;

		diag_init(&d, NULL); /* the diag must not need the arena */
		err = hl7_parse(a, sb.buf, sb.len, &m, &d);
		if (err == CW_OK) {
			saw_ok = true;
			assert_int_equal(hl7_segment_count(m), 3001);
			for (size_t k = 1; k < 3001; k++)
				(void)hl7_get(m, k, 5, 0, 0, 0);
		} else {
			assert_int_equal(err, CW_ENOMEM);
			assert_null(m);
			saw_nomem = true;
		}
		arena_free(a);
	}
	assert_true(saw_ok && saw_nomem);
	sbuf_release(&sb);
	*state = *state;
}

/* The parse keeps its own copy: the caller's buffer may be reused. */
static void
text_is_copied(void **state)
{
	struct fx *f = *state;
	char buf[] = "MSH|^~\\&|A||||||ADT^A01|1|P|2.5\rPID|1||X\r";
	struct hl7_msg *m = parse_ok(f, buf);

	memset(buf, 'z', sizeof(buf) - 1);
	assert_string_equal(hl7_get(m, 1, 3, 0, 0, 0), "X");
	assert_true(span_eq(hl7_raw(m, 0, 3), "A"));
}

static void
datetime_precisions(void **state)
{
	static const struct {
		const char *in;
		int tz;
		const char *out;
	} cases[] = {
		{"2007", 0, "2007"},
		{"200708", 0, "2007-08"},
		{"20070818", 0, "2007-08-18"},
		{"20070818-0500", 0, "2007-08-18"},
		{"2007081811", 0, "2007-08-18T11:00:00Z"},
		{"200708181123", 0, "2007-08-18T11:23:00Z"},
		{"200708181123-0500", 0, "2007-08-18T11:23:00-05:00"},
		{"20070818112359", 60, "2007-08-18T11:23:59+01:00"},
		{"20070818112359.1", -210, "2007-08-18T11:23:59.1-03:30"},
		{"20070818112359.1234+1400", 0, "2007-08-18T11:23:59.1234+14:00"},
		{"20070818112359+0000", 120, "2007-08-18T11:23:59+00:00"},
		{"20000229", 0, "2000-02-29"},
		{"20240229", 0, "2024-02-29"},
		{"20241231235959", 0, "2024-12-31T23:59:59Z"},
	};
	static const char *const bad[] = {
		"", "200", "20071", "2007130", "200713", "200700", "20070230",
		"20230229", "19000229", "20070431", "20070800", "2007081824",
		"200708181160", "20070818112360", "2007081811235", "20070818.1",
		"20070818112359.", "20070818112359.12345", "20070818-05",
		"20070818+1500", "20070818-0560", "2007a818", "0000", "20070818 ",
		"200708181123Z", "x",
	};
	char out[HL7_DATETIME_MAX];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_true(hl7_datetime(cases[i].in, cases[i].tz, out));
		if (strcmp(out, cases[i].out) != 0)
			fail_msg("%s: got %s, want %s", cases[i].in, out, cases[i].out);
		/* what comes out is a FHIR dateTime */
		assert_int_equal(time_parse(out, strlen(out), TIME_DATETIME,
					    &(struct time_range){0, 0}),
				 CW_OK);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ms;

		if (hl7_datetime(bad[i], 0, out))
			fail_msg("%s taken as %s", bad[i], out);
		assert_false(hl7_datetime_ms(bad[i], 0, &ms));
	}
	assert_false(hl7_datetime(NULL, 0, out));
	assert_false(hl7_datetime("20070818112359", 15 * 60, out));
	*state = *state;
}

static void
datetime_ms(void **state)
{
	static const struct {
		const char *in;
		int tz;
		const char *utc;
	} cases[] = {
		{"1970", 0, "1970-01-01T00:00:00.000Z"},
		{"2007", 0, "2007-01-01T00:00:00.000Z"},
		{"200708", 0, "2007-08-01T00:00:00.000Z"},
		{"20070818", 0, "2007-08-18T00:00:00.000Z"},
		{"20070818", 120, "2007-08-17T22:00:00.000Z"},
		{"2007081811", 0, "2007-08-18T11:00:00.000Z"},
		{"200708181123-0500", 0, "2007-08-18T16:23:00.000Z"},
		{"200708181123-0500", 600, "2007-08-18T16:23:00.000Z"},
		{"200708181123", -300, "2007-08-18T16:23:00.000Z"},
		{"20070818112359.1", 0, "2007-08-18T11:23:59.100Z"},
		{"20070818112359.1239", 0, "2007-08-18T11:23:59.123Z"},
		{"20070818000000+0130", 0, "2007-08-17T22:30:00.000Z"},
		{"18991231235959", 0, "1899-12-31T23:59:59.000Z"},
	};
	char iso[32];
	int64_t ms;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_true(hl7_datetime_ms(cases[i].in, cases[i].tz, &ms));
		time_format_instant(ms, iso);
		if (strcmp(iso, cases[i].utc) != 0)
			fail_msg("%s: got %s, want %s", cases[i].in, iso, cases[i].utc);
	}
	*state = *state;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(adt_a01_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(adt_a03_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(oru_r01_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(msh_is_numbered_apart, setup, teardown),
		cmocka_unit_test_setup_teardown(versions, setup, teardown),
		cmocka_unit_test_setup_teardown(header_missing_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(terminators, setup, teardown),
		cmocka_unit_test_setup_teardown(other_delimiters, setup, teardown),
		cmocka_unit_test_setup_teardown(escapes, setup, teardown),
		cmocka_unit_test_setup_teardown(escape_round_trips, setup, teardown),
		cmocka_unit_test_setup_teardown(null_and_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(z_segments_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(text_is_copied, setup, teardown),
		cmocka_unit_test(arena_exhaustion),
		cmocka_unit_test(datetime_precisions),
		cmocka_unit_test(datetime_ms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
