/* Unit tests for hl7v2/ack.c: every ACK built here is parsed back with
 * hl7_parse and read field by field. */
#include "unit.h"

#include "hl7v2/hl7v2.h"

static const char ADT_25[] =
	"MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|CAREWEAVE|CW FAC|198808181126|SECURITY|"
	"ADT^A01^ADT_A01|MSG00001|P|2.5.1\r"
	"PID|1||PATID1234^5^M11^ADT1^MR\r";

static const char ADT_23[] =
	"MSH|^~\\&|Tutorial_ADTSystem|MCM|BTAHL7InterfaceEngine||199601121005||"
	"ADT^A03|000001|T|2.3.1\r"
	"PID|||191919^^^MYHOS^MR\r";

struct fx {
	struct arena *a;
	struct diag d;
	struct sbuf out;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->a = arena_new(0);
	diag_init(&f->d, f->a);
	sbuf_init(&f->out, 64 * 1024);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	sbuf_release(&f->out);
	arena_free(f->a);
	free(f);
	return 0;
}

static struct hl7_msg *
parse(struct fx *f, const char *text, size_t n)
{
	struct hl7_msg *m = NULL;

	assert_int_equal(hl7_parse(f->a, text, n, &m, &f->d), CW_OK);
	return m;
}

/* Builds the ACK and parses it back; checks it is CR-separated only. */
static struct hl7_msg *
ack(struct fx *f, const struct hl7_msg *m, const char *raw, size_t nraw,
    enum hl7_ack_code code, const struct hl7_problem *p, size_t np)
{
	sbuf_reset(&f->out);
	assert_int_equal(hl7_ack(f->a, m, raw, nraw, code, p, np, &f->out), CW_OK);
	assert_null(strchr(f->out.buf, '\n'));
	assert_int_equal(f->out.buf[f->out.len - 1], '\r');
	return parse(f, f->out.buf, f->out.len);
}

static void
check_msh(struct fx *f, const struct hl7_msg *a, const char *version,
	  const char *trigger)
{
	struct hl7_header h;
	char dt[HL7_DATETIME_MAX];
	int64_t ms, now = time_now_ms();

	assert_int_equal(hl7_header(a, &h, &f->d), CW_OK);
	assert_string_equal(h.type, "ACK");
	assert_string_equal(h.trigger, trigger);
	assert_string_equal(h.structure, "ACK");
	assert_string_equal(h.version, version);
	assert_non_null(h.control_id);
	/* MSH-7 is now, to the second, in UTC */
	assert_true(hl7_datetime(h.datetime, 0, dt));
	assert_true(hl7_datetime_ms(h.datetime, 0, &ms));
	assert_true(ms <= now && ms > now - 5000);
}

static void
aa_in_25(void **state)
{
	struct fx *f = *state;
	struct hl7_msg *m = parse(f, ADT_25, strlen(ADT_25));
	struct hl7_msg *a = ack(f, m, ADT_25, strlen(ADT_25), HL7_AA, NULL, 0);
	struct hl7_header h;
	long msa;

	check_msh(f, a, "2.5.1", "A01");
	assert_int_equal(hl7_header(a, &h, &f->d), CW_OK);
	/* sender and receiver swapped */
	assert_string_equal(h.sending_app, "CAREWEAVE");
	assert_string_equal(h.sending_facility, "CW FAC");
	assert_string_equal(h.receiving_app, "ADT1");
	assert_string_equal(h.receiving_facility, "GOOD HEALTH HOSPITAL");
	assert_string_equal(h.processing_id, "P");
	assert_int_equal(strlen(h.control_id), ID_LEN);
	assert_true(id_is_valid(h.control_id, ID_LEN));
	assert_int_equal(hl7_segment_count(a), 2);
	msa = hl7_find(a, "MSA", 0, 0);
	assert_int_equal(msa, 1);
	assert_string_equal(hl7_get(a, msa, 1, 0, 0, 0), "AA");
	assert_string_equal(hl7_get(a, msa, 2, 0, 0, 0), "MSG00001");
	assert_null(hl7_get(a, msa, 3, 0, 0, 0));
	assert_int_equal(hl7_find(a, "ERR", 0, 0), -1);
}

static void
ae_and_ar_in_25(void **state)
{
	const struct hl7_problem p[] = {
		{"PID", 1, 3, 101, false, "no patient identifier"},
		{"PV1", 2, 0, 103, true, "unknown | class ^ & ~ \\"},
		{NULL, 0, 0, 207, false, NULL},
	};
	struct fx *f = *state;
	struct hl7_msg *m = parse(f, ADT_25, strlen(ADT_25));
	struct hl7_msg *a = ack(f, m, ADT_25, strlen(ADT_25), HL7_AE, p, 3);
	long msa, e;

	check_msh(f, a, "2.5.1", "A01");
	msa = hl7_find(a, "MSA", 0, 0);
	assert_string_equal(hl7_get(a, msa, 1, 0, 0, 0), "AE");
	assert_string_equal(hl7_get(a, msa, 2, 0, 0, 0), "MSG00001");
	assert_null(hl7_get(a, msa, 3, 0, 0, 0)); /* not from 2.5 */

	e = hl7_find(a, "ERR", 0, 0);
	assert_true(e > msa);
	assert_null(hl7_get(a, e, 1, 0, 0, 0));
	assert_string_equal(hl7_get(a, e, 2, 0, 1, 0), "PID");
	assert_string_equal(hl7_get(a, e, 2, 0, 2, 0), "1");
	assert_string_equal(hl7_get(a, e, 2, 0, 3, 0), "3");
	assert_string_equal(hl7_get(a, e, 3, 0, 1, 0), "101");
	assert_string_equal(hl7_get(a, e, 3, 0, 2, 0), "Required field missing");
	assert_string_equal(hl7_get(a, e, 3, 0, 3, 0), "HL70357");
	assert_string_equal(hl7_get(a, e, 4, 0, 0, 0), "E");
	assert_string_equal(hl7_get(a, e, 8, 0, 0, 0), "no patient identifier");

	e = hl7_find(a, "ERR", 0, 1);
	assert_string_equal(hl7_get(a, e, 2, 0, 0, 0), "PV1^2");
	assert_string_equal(hl7_get(a, e, 3, 0, 1, 0), "103");
	assert_string_equal(hl7_get(a, e, 4, 0, 0, 0), "W");
	/* the text goes through escaping and comes back whole */
	assert_string_equal(hl7_get(a, e, 8, 0, 1, 1), "unknown | class ^ & ~ \\");

	e = hl7_find(a, "ERR", 0, 2);
	assert_null(hl7_get(a, e, 2, 0, 0, 0));
	assert_string_equal(hl7_get(a, e, 3, 0, 0, 0),
			    "207^Application internal error^HL70357");
	assert_null(hl7_get(a, e, 8, 0, 0, 0));
	assert_int_equal(hl7_find(a, "ERR", 0, 3), -1);

	a = ack(f, m, ADT_25, strlen(ADT_25), HL7_AR, &(struct hl7_problem){
		"MSH", 1, 9, 200, false, "message type not taken"}, 1);
	msa = hl7_find(a, "MSA", 0, 0);
	assert_string_equal(hl7_get(a, msa, 1, 0, 0, 0), "AR");
	e = hl7_find(a, "ERR", 0, 0);
	assert_string_equal(hl7_get(a, e, 2, 0, 0, 0), "MSH^1^9");
	assert_string_equal(hl7_get(a, e, 3, 0, 2, 0), "Unsupported message type");
}

static void
ae_in_23(void **state)
{
	const struct hl7_problem p[] = {
		{"PID", 1, 3, 204, false, "unknown patient"},
		{"PV1", 1, 0, 101, false, NULL},
	};
	struct fx *f = *state;
	struct hl7_msg *m = parse(f, ADT_23, strlen(ADT_23));
	struct hl7_msg *a = ack(f, m, ADT_23, strlen(ADT_23), HL7_AE, p, 2);
	struct hl7_header h;
	long msa, e;

	check_msh(f, a, "2.3.1", "A03");
	assert_int_equal(hl7_header(a, &h, &f->d), CW_OK);
	assert_string_equal(h.sending_app, "BTAHL7InterfaceEngine");
	assert_null(h.sending_facility);
	assert_string_equal(h.receiving_app, "Tutorial_ADTSystem");
	assert_string_equal(h.receiving_facility, "MCM");
	assert_string_equal(h.processing_id, "T");
	/* ST of 20 characters before 2.5 */
	assert_int_equal(strlen(h.control_id), 20);

	msa = hl7_find(a, "MSA", 0, 0);
	assert_string_equal(hl7_get(a, msa, 1, 0, 0, 0), "AE");
	assert_string_equal(hl7_get(a, msa, 2, 0, 0, 0), "000001");
	assert_string_equal(hl7_get(a, msa, 3, 0, 0, 0), "unknown patient");

	e = hl7_find(a, "ERR", 0, 0);
	assert_string_equal(hl7_get(a, e, 1, 0, 1, 0), "PID");
	assert_string_equal(hl7_get(a, e, 1, 0, 2, 0), "1");
	assert_string_equal(hl7_get(a, e, 1, 0, 3, 0), "3");
	assert_string_equal(hl7_get(a, e, 1, 0, 4, 1), "204");
	assert_string_equal(hl7_get(a, e, 1, 0, 4, 2), "unknown patient");
	assert_string_equal(hl7_get(a, e, 1, 0, 4, 3), "HL70357");
	assert_null(hl7_get(a, e, 2, 0, 0, 0));
	e = hl7_find(a, "ERR", 0, 1);
	assert_string_equal(hl7_get(a, e, 1, 0, 0, 0),
			    "PV1^1^^101&Required field missing&HL70357");
}

/* The ACK speaks the sender's delimiters. */
static void
ack_keeps_delimiters(void **state)
{
	static const char in[] = "MSH#*~\\&#SND*X#FAC#RCV#RFAC#20200101##ADT*A08#C1#P#2.4\r";
	struct fx *f = *state;
	struct hl7_msg *m = parse(f, in, strlen(in));
	struct hl7_msg *a = ack(f, m, in, strlen(in), HL7_AE, &(struct hl7_problem){
		"PID", 1, 5, 102, false, "name # and * here"}, 1);
	struct hl7_header h;
	long msa;

	assert_int_equal(f->out.buf[3], '#');
	assert_int_equal(hl7_delims(a)->component, '*');
	assert_int_equal(hl7_header(a, &h, &f->d), CW_OK);
	assert_string_equal(h.trigger, "A08");
	assert_string_equal(hl7_get(a, 0, 5, 0, 0, 0), "SND*X");
	assert_string_equal(h.receiving_app, "SND");
	msa = hl7_find(a, "MSA", 0, 0);
	assert_string_equal(hl7_get(a, msa, 2, 0, 0, 0), "C1");
	assert_string_equal(hl7_get(a, msa, 3, 0, 0, 0), "name # and * here");
}

/* What careweave writes itself (the time's "+0000", the id's dashes, a
 * default version) is escaped too, for senders with odd separators. */
static void
ack_escapes_what_it_writes(void **state)
{
	static const char in[] = "MSH+^~\\-.+A+B+C+D+2020++ADT^A01+X1+P\r";
	struct fx *f = *state;
	struct hl7_msg *m = parse(f, in, strlen(in));
	struct hl7_msg *a;
	struct hl7_header h;
	int64_t ms;

	assert_int_equal(hl7_delims(m)->subcomponent, '-');
	a = ack(f, m, in, strlen(in), HL7_AE, &(struct hl7_problem){
		"PID", 1, 3, 101, false, "a-b.c+d"}, 1);
	assert_int_equal(hl7_header(a, &h, &f->d), CW_OK);
	assert_string_equal(h.type, "ACK");
	assert_string_equal(h.version, "2.5");
	assert_int_equal(strlen(h.control_id), ID_LEN);
	assert_true(hl7_datetime_ms(h.datetime, 0, &ms));
	assert_string_equal(hl7_get(a, hl7_find(a, "ERR", 0, 0), 8, 0, 0, 0), "a-b.c+d");
}

static void
ack_escapes_control_id(void **state)
{
	static const char in[] = "MSH|^~\\&|A|B|C|D|2020||ORU^R01|ID\\F\\1^x|P|2.6\r";
	struct fx *f = *state;
	struct hl7_msg *m = parse(f, in, strlen(in));
	struct hl7_msg *a = ack(f, m, in, strlen(in), HL7_AA, NULL, 0);
	long msa = hl7_find(a, "MSA", 0, 0);

	assert_string_equal(hl7_get(a, msa, 2, 0, 0, 0), "ID|1^x");
	check_msh(f, a, "2.6", "R01");
}

/* Nothing parsed: an AR in 2.5 with what the first line gives. */
static void
ack_from_raw(void **state)
{
	static const char no_seps[] = "MSH|^^^^|APP^1|FAC|ME|MYFAC|2020||ADT^A01|C-77|P|2.5\r";
	static const char nul[] = "MSH|^~\\&|A\x01pp|F\0AC|R|RF|2020||ADT^A01|ID-9\rPID\0\r";
	struct fx *f = *state;
	struct hl7_msg *a;
	struct hl7_header h;
	long msa;

	a = ack(f, NULL, no_seps, strlen(no_seps), HL7_AA, NULL, 0);
	assert_int_equal(hl7_header(a, &h, &f->d), CW_OK);
	assert_string_equal(h.version, "2.5");
	assert_string_equal(h.type, "ACK");
	assert_string_equal(h.trigger, "A01");
	assert_string_equal(h.sending_app, "ME");
	assert_string_equal(h.sending_facility, "MYFAC");
	assert_string_equal(h.receiving_app, "APP");
	assert_string_equal(h.receiving_facility, "FAC");
	msa = hl7_find(a, "MSA", 0, 0);
	assert_string_equal(hl7_get(a, msa, 1, 0, 0, 0), "AR"); /* whatever was asked */
	assert_string_equal(hl7_get(a, msa, 2, 0, 0, 0), "C-77");

	a = ack(f, NULL, nul, sizeof(nul) - 1, HL7_AR, &(struct hl7_problem){
		NULL, 0, 0, 102, false, "not an HL7 message"}, 1);
	assert_int_equal(hl7_header(a, &h, &f->d), CW_OK);
	assert_string_equal(h.receiving_app, "App"); /* the control byte dropped */
	assert_string_equal(h.receiving_facility, "FAC");
	msa = hl7_find(a, "MSA", 0, 0);
	assert_string_equal(hl7_get(a, msa, 2, 0, 0, 0), "ID-9");
	assert_string_equal(hl7_get(a, hl7_find(a, "ERR", 0, 0), 8, 0, 0, 0),
			    "not an HL7 message");

	/* garbage, empty, NULL, and a line cut short at nraw */
	static const char *const junk[] = {"", "hello", "MSH", "MSH|", "MSH1^~\\&|A",
					   "\x0b\x1c\r", "MSH|^~\\&|A|B|C|D|E|F|G|H"};
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		a = ack(f, NULL, junk[i], strlen(junk[i]), HL7_AR, NULL, 0);
		msa = hl7_find(a, "MSA", 0, 0);
		assert_string_equal(hl7_get(a, msa, 1, 0, 0, 0), "AR");
	}
	a = ack(f, NULL, NULL, 10, HL7_AR, NULL, 0);
	assert_null(hl7_get(a, hl7_find(a, "MSA", 0, 0), 2, 0, 0, 0));
	a = ack(f, NULL, "MSH|^~\\&|A|B|C|D|E|F|G|SECRET", 9, HL7_AR, NULL, 0);
	assert_null(strstr(f->out.buf, "SECRET"));
	assert_null(hl7_get(a, 0, 5, 0, 0, 0));
}

static void
ack_respects_the_cap(void **state)
{
	struct fx *f = *state;
	struct hl7_msg *m = parse(f, ADT_25, strlen(ADT_25));
	struct sbuf small = SBUF_INIT(40);

	assert_int_equal(hl7_ack(f->a, m, ADT_25, strlen(ADT_25), HL7_AA, NULL, 0,
				 &small),
			 CW_ETOOBIG);
	sbuf_release(&small);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(aa_in_25, setup, teardown),
		cmocka_unit_test_setup_teardown(ae_and_ar_in_25, setup, teardown),
		cmocka_unit_test_setup_teardown(ae_in_23, setup, teardown),
		cmocka_unit_test_setup_teardown(ack_keeps_delimiters, setup, teardown),
		cmocka_unit_test_setup_teardown(ack_escapes_control_id, setup, teardown),
		cmocka_unit_test_setup_teardown(ack_escapes_what_it_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(ack_from_raw, setup, teardown),
		cmocka_unit_test_setup_teardown(ack_respects_the_cap, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
