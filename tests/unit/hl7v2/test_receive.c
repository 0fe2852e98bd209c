/* tests/unit/hl7v2/test_receive.c: what an HL7 v2 message does to the
 * record (src/hl7v2/receive.c, adt.c, map.c), driven through hl7_receive
 * on a local API with the rules, as the listener would: the answer (MSA),
 * the Patient, Encounter, Conditions and RelatedPersons written, the
 * message log, a message sent again, events on a visit under way, cancels,
 * and what is rejected or fails. The messages are those of
 * ../shared/kb/hl7v2.md and variants of them. */
#include <time.h>

#include <jansson.h>

#include "unit.h"

#include "api/api.h"
#include "coord/coord.h"
#include "fhir/fhir.h"
#include "hl7v2/hl7v2.h"
#include "hl7v2/receive.h"
#include "kb/kb.h"
#include "store/store.h"

struct fx {
	char dir[64];
	char path[96];
	struct store *s;
	struct kb *kb;
	struct coord *co;
	struct api *api;
	struct hl7_receiver *r;
	struct arena *a;
	struct sbuf reply;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct api_options opt = {.base_url = "http://test.local/fhir", .local = true};
	struct hl7_receiver_options ro = {0};
	struct diag d;
	enum cw_err err;

	assert_non_null(f);
	f->a = arena_new(0);
	snprintf(f->dir, sizeof(f->dir), "/tmp/cw-hl7-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
	diag_init(&d, f->a);
	f->s = store_open(f->path, NULL, &d);
	assert_non_null(f->s);
	f->kb = kb_load("data/kb", NULL, NULL, &err);
	assert_non_null(f->kb);
	f->co = coord_new(f->kb);
	opt.coord = f->co;
	f->api = api_new(f->s, &opt);
	assert_non_null(f->api);
	ro.api = f->api;
	ro.store = f->s;
	ro.coord = f->co;
	f->r = hl7_receiver_new(&ro);
	assert_non_null(f->r);
	sbuf_init(&f->reply, 1 << 20);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	hl7_receiver_free(f->r);
	api_free(f->api);
	coord_free(f->co);
	kb_free(f->kb);
	store_close(f->s);
	sbuf_release(&f->reply);
	arena_free(f->a);
	unit_rm_dir(f->dir);
	free(f);
	return 0;
}

/* Sends text (segments separated by \r) and returns MSA-1 of the answer;
 * *err3 (may be NULL) the first ERR's code (ERR-3.1, or ERR-1.4.1 before 2.5). */
static const char *
send_msg(struct fx *f, const char *text, const char **err3)
{
	struct hl7_msg *ack;
	struct diag d;
	long msa, err;

	sbuf_reset(&f->reply);
	hl7_receive(f->r, text, strlen(text), false, "127.0.0.1:5000", &f->reply);
	assert_true(f->reply.len > 0);
	diag_init(&d, f->a);
	assert_int_equal(hl7_parse(f->a, f->reply.buf, f->reply.len, &ack, &d), CW_OK);
	msa = hl7_find(ack, "MSA", 0, 0);
	assert_true(msa >= 0);
	err = hl7_find(ack, "ERR", 0, 0);
	if (err3)
		*err3 = err < 0 ? NULL : hl7_get(ack, (size_t)err, 3, 0, 1, 0) ?
			hl7_get(ack, (size_t)err, 3, 0, 1, 0) :
			hl7_get(ack, (size_t)err, 1, 0, 4, 1);
	return hl7_get(ack, (size_t)msa, 1, 0, 1, 0);
}

/* The resources of type matching key=value, parsed (at most 20). */
static size_t
search(struct fx *f, const char *type, const char *key, const char *value, json_t **out)
{
	struct fhir_kv kv = {key, value};
	struct fhir_query q;
	struct store_page page;
	struct diag d;

	diag_init(&d, f->a);
	assert_int_equal(fhir_query_parse(f->a, fhir_restype_find(type), &kv, 1, true, &q, &d),
			 CW_OK);
	q.count = 20;
	assert_int_equal(store_search(f->s, f->a, &q, &page, &d), CW_OK);
	for (size_t i = 0; out && i < page.n && i < 20; i++)
		assert_int_equal(fhir_parse_json(page.res[i].json.p, page.res[i].json.n, &out[i],
						 NULL), CW_OK);
	return page.n;
}

static void
decref_all(json_t **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(v[i]);
}

static const char *
str(const json_t *o, const char *path)
{
	/* "a.b.0.c": objects by key, arrays by index */
	char buf[128], *save = NULL, *t;
	const json_t *v = o;

	snprintf(buf, sizeof(buf), "%s", path);
	for (t = strtok_r(buf, ".", &save); t && v; t = strtok_r(NULL, ".", &save))
		v = json_is_array(v) ? json_array_get(v, strtoul(t, NULL, 10)) :
				       json_object_get(v, t);
	return json_string_value(v);
}

#define A01 "MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|GHH LAB, INC.|GOOD HEALTH HOSPITAL|198808181126|SECURITY|ADT^A01^ADT_A01|MSG00001|P|2.8||\r" \
	"EVN|A01|200708181123||\r" \
	"PID|1||PATID1234^5^M11^ADT1^MR^GOOD HEALTH HOSPITAL~123456789^^^USSSA^SS||EVERYMAN^ADAM^A^III||19610615|M||C|2222 HOME STREET^^GREENSBORO^NC^27401-1020|GL|(555) 555-2004|(555)555-2004||S||PATID12345001^2^M10^ADT1^AN^A|444333333|987654^NC|\r" \
	"NK1|1|NUCLEAR^NELDA^W|SPO^SPOUSE||||NK^NEXT OF KIN\r" \
	"PV1|1|I|2000^2012^01||||004777^ATTEND^AARON^A|||SUR||||ADM|A0||||VN4711^^^ADT1^VN\r" \
	"DG1|1||E11.9^Type 2 diabetes mellitus without complications^I10|||A\r"

#define PATIENT_MR "urn:careweave:hl7v2:id:ADT1:MR|PATID1234"

static void
test_a01_admits(void **state)
{
	struct fx *f = *state;
	json_t *p[20], *e[20], *c[20], *rp[20];
	struct store_hl7 *rows;
	struct store_hl7_filter flt = {.outcome = -1, .limit = 10};
	size_t n;

	assert_string_equal(send_msg(f, A01, NULL), "AA");
	assert_int_equal(search(f, "Patient", "identifier", PATIENT_MR, p), 1);
	assert_string_equal(str(p[0], "name.0.family"), "EVERYMAN");
	assert_string_equal(str(p[0], "name.0.given.0"), "ADAM");
	assert_string_equal(str(p[0], "birthDate"), "1961-06-15");
	assert_string_equal(str(p[0], "gender"), "male");
	assert_string_equal(str(p[0], "address.0.city"), "GREENSBORO");
	assert_string_equal(str(p[0], "address.0.postalCode"), "27401-1020");
	assert_string_equal(str(p[0], "identifier.1.system"), "http://hl7.org/fhir/sid/us-ssn");
	assert_string_equal(str(p[0], "telecom.0.value"), "(555) 555-2004");
	assert_int_equal(search(f, "Encounter", "identifier", "urn:careweave:hl7v2:id:ADT1:VN|VN4711",
				e), 1);
	assert_string_equal(str(e[0], "status"), "in-progress");
	assert_string_equal(str(e[0], "class.code"), "IMP");
	assert_string_equal(str(e[0], "period.start"), "2007-08-18T11:23:00Z");
	assert_non_null(strstr(str(e[0], "subject.reference"), "Patient/"));
	assert_string_equal(str(e[0], "location.0.location.display"), "2000, room 2012, bed 01");
	assert_string_equal(str(e[0], "participant.0.individual.display"), "AARON ATTEND");
	assert_int_equal(search(f, "Condition", "code", "http://hl7.org/fhir/sid/icd-10-cm|E11.9", c),
			 1);
	assert_string_equal(str(c[0], "verificationStatus.coding.0.code"), "provisional");
	assert_non_null(str(c[0], "encounter.reference"));
	assert_int_equal(search(f, "RelatedPerson", "name", "NUCLEAR", rp), 1);
	assert_string_equal(str(rp[0], "relationship.0.coding.0.code"), "SPO");
	/* the log: one accepted message, with what it wrote */
	assert_int_equal(store_hl7_list(f->s, f->a, &flt, &rows, &n), CW_OK);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].outcome, STORE_HL7_ACCEPTED);
	assert_string_equal(rows[0].control_id, "MSG00001");
	assert_non_null(strstr(rows[0].resources, "Encounter/"));
	decref_all(p, 1);
	decref_all(e, 1);
	decref_all(c, 1);
	decref_all(rp, 1);

	/* sent again: answered AA again, nothing new */
	assert_string_equal(send_msg(f, A01, NULL), "AA");
	assert_int_equal(search(f, "Patient", "identifier", PATIENT_MR, NULL), 1);
	assert_int_equal(search(f, "Encounter", "subject:Patient.identifier", PATIENT_MR, NULL), 1);
	assert_int_equal(search(f, "Condition", "code", "http://hl7.org/fhir/sid/icd-10-cm|E11.9",
				NULL), 1);
	assert_int_equal(store_hl7_list(f->s, f->a, &flt, &rows, &n), CW_OK);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].attempts, 2);
}

#define A02 "MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|CW|CW|200708191000||ADT^A02|MSG00002|P|2.5\r" \
	"EVN|A02|200708191000\r" \
	"PID|1||PATID1234^^^ADT1^MR||EVERYMAN^ADAM||19610615|M\r" \
	"PV1|1|I|3000^3012^02||||004777^ATTEND^AARON^A||||||||||||VN4711^^^ADT1^VN\r"
#define A03 "MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|CW|CW|200708201400||ADT^A03|MSG00003|P|2.5\r" \
	"EVN|A03|200708201400\r" \
	"PID|1||PATID1234^^^ADT1^MR||EVERYMAN^ADAM||19610615|M\r" \
	"PV1|1|I|3000^3012^02||||004777^ATTEND^AARON^A||||||||||||VN4711^^^ADT1^VN|||||||||||||||||01\r"
#define A13 "MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|CW|CW|200708201500||ADT^A13|MSG00004|P|2.5\r" \
	"EVN|A13|200708201500\r" \
	"PID|1||PATID1234^^^ADT1^MR||EVERYMAN^ADAM||19610615|M\r" \
	"PV1|1|I|3000^3012^02||||||||||||||||VN4711^^^ADT1^VN\r"

static void
test_visit_under_way(void **state)
{
	struct fx *f = *state;
	json_t *e[20], *p[20];
	const char *vn = "urn:careweave:hl7v2:id:ADT1:VN|VN4711";

	assert_string_equal(send_msg(f, A01, NULL), "AA");
	assert_string_equal(send_msg(f, A02, NULL), "AA");
	assert_int_equal(search(f, "Encounter", "identifier", vn, e), 1);
	assert_int_equal(json_array_size(json_object_get(e[0], "location")), 2);
	assert_string_equal(str(e[0], "location.0.status"), "completed");
	assert_string_equal(str(e[0], "location.1.status"), "active");
	assert_string_equal(str(e[0], "location.1.location.display"), "3000, room 3012, bed 02");
	json_decref(e[0]);
	assert_string_equal(send_msg(f, A03, NULL), "AA");
	assert_int_equal(search(f, "Encounter", "identifier", vn, e), 1);
	assert_string_equal(str(e[0], "status"), "finished");
	/* the stay's EpisodeOfCare, finished with it */
	{
		json_t *ep[20];

		assert_non_null(str(e[0], "episodeOfCare.0.reference"));
		assert_int_equal(search(f, "EpisodeOfCare", "_id",
					str(e[0], "episodeOfCare.0.reference") + 14, ep), 1);
		assert_string_equal(str(ep[0], "status"), "finished");
		assert_string_equal(str(ep[0], "period.end"), "2007-08-20T14:00:00Z");
		json_decref(ep[0]);
		assert_int_equal(search(f, "EpisodeOfCare", "identifier",
					"urn:careweave:hl7v2:episode|urn:careweave:hl7v2:id:ADT1:VN-VN4711",
					NULL), 1);
	}
	assert_string_equal(str(e[0], "period.end"), "2007-08-20T14:00:00Z");
	assert_string_equal(str(e[0], "hospitalization.dischargeDisposition.coding.0.code"), "01");
	json_decref(e[0]);
	/* the demographics the A01 sent are kept where the A03 says nothing,
	 * and a message that says nothing new of the patient writes no version */
	assert_int_equal(search(f, "Patient", "identifier", PATIENT_MR, p), 1);
	assert_string_equal(str(p[0], "address.0.city"), "GREENSBORO");
	assert_string_equal(str(p[0], "meta.versionId"), "1");
	json_decref(p[0]);
	/* the discharge cancelled: in progress again, no end */
	assert_string_equal(send_msg(f, A13, NULL), "AA");
	assert_int_equal(search(f, "Encounter", "identifier", vn, e), 1);
	assert_string_equal(str(e[0], "status"), "in-progress");
	assert_null(str(e[0], "period.end"));
	json_decref(e[0]);
}

static void
test_rejected_and_failed(void **state)
{
	struct fx *f = *state;
	struct store_hl7 *rows;
	struct store_hl7_filter flt = {.outcome = -1, .limit = 10};
	const char *code;
	size_t n;

	/* not HL7 at all */
	assert_string_equal(send_msg(f, "hello world", &code), "AR");
	/* a type careweave does not take */
	assert_string_equal(send_msg(f, "MSH|^~\\&|X|Y|CW|CW|20240101||SIU^S12|M1|P|2.5\r", &code),
			    "AR");
	assert_string_equal(code, "200");
	/* an event careweave does not take */
	assert_string_equal(send_msg(f, "MSH|^~\\&|X|Y|CW|CW|20240101||ADT^A31|M2|P|2.5\r"
				     "PID|1||1^^^X^MR\r", &code), "AR");
	assert_string_equal(code, "201");
	/* a training message */
	assert_string_equal(send_msg(f, "MSH|^~\\&|X|Y|CW|CW|20240101||ADT^A01|M3|T|2.5\r"
				     "PID|1||1^^^X^MR\rPV1|1|I\r", &code), "AR");
	assert_string_equal(code, "202");
	/* understood, not applied: no patient identifier */
	assert_string_equal(send_msg(f, "MSH|^~\\&|X|Y|CW|CW|20240101||ADT^A01|M4|P|2.5\r"
				     "PID|1||||DOE^JANE\rPV1|1|I\r", &code), "AE");
	assert_string_equal(code, "101");
	/* a cancel of a visit careweave does not hold */
	assert_string_equal(send_msg(f, "MSH|^~\\&|X|Y|CW|CW|20240101||ADT^A11|M5|P|2.5\r"
				     "PID|1||7^^^X^MR||DOE^JANE\rPV1|1|I|||||||||||||||||V9^^^X^VN\r",
				     &code), "AE");
	assert_string_equal(code, "204");
	assert_int_equal(search(f, "Patient", "name", "DOE", NULL), 0);
	/* every one with a key is on the log; the not-HL7 one has none */
	assert_int_equal(store_hl7_list(f->s, f->a, &flt, &rows, &n), CW_OK);
	assert_int_equal(n, 5);
	flt.outcome = STORE_HL7_ERROR;
	assert_int_equal(store_hl7_list(f->s, f->a, &flt, &rows, &n), CW_OK);
	assert_int_equal(n, 2);
}

#define A01_23 "MSH|^~\\&|Tutorial_ADTSystem|MCM|BTAHL7InterfaceEngine||199601121005||ADT^A01|000001|P|2.3.1\r\n" \
	"EVN|A01|199601121005||01||199601121000\r\n" \
	"PID|||191919^^^MYHOS^MR~123-45-6789^^^USSSA^SS|253763|SMITH^JOHN^Q||19560129|M|||123MAIN^^BUFFALO^NY^98052^\"\"||(123)555-0100||S|M|10199925^^^MYHOS^AN|123-45-6789\r\n" \
	"PV1|1|I|2000^2012^01^hey&test&DNS^test^test^test^test^test||||004777^MILLER^CONNIE^A.|||SUR||||2|A0\r\n" \
	"ZPI|anything|at all\r\n"

static void
test_v23_crlf_zsegment_and_replay(void **state)
{
	struct fx *f = *state;
	json_t *p[20], *e[20];
	struct store_hl7 *rows, row;
	struct store_hl7_filter flt = {.outcome = STORE_HL7_ERROR, .limit = 10};
	struct diag d;
	size_t n;

	assert_string_equal(send_msg(f, A01_23, NULL), "AA");
	assert_int_equal(search(f, "Patient", "identifier", "urn:careweave:hl7v2:id:MYHOS:MR|191919", p),
			 1);
	assert_string_equal(str(p[0], "name.0.family"), "SMITH");
	assert_null(str(p[0], "address.0.country")); /* the HL7 null: absent */
	json_decref(p[0]);
	assert_int_equal(search(f, "Encounter", "subject:Patient.identifier",
				"urn:careweave:hl7v2:id:MYHOS:MR|191919", e), 1);
	assert_string_equal(str(e[0], "period.start"), "1996-01-12T10:00:00Z");
	json_decref(e[0]);

	/* an error, replayed once its cause is fixed: the cancel of an
	 * admission that had not arrived yet, replayed once it has */
	assert_string_equal(send_msg(f, "MSH|^~\\&|X|Y|CW|CW|20240102||ADT^A11|C1|P|2.5\r"
				     "PID|1||77^^^OTHER^MR||SMYTHE^JON\r"
				     "PV1|1|I|||||||||||||||||V77^^^OTHER^VN\r", NULL), "AE");
	assert_int_equal(store_hl7_list(f->s, f->a, &flt, &rows, &n), CW_OK);
	assert_int_equal(n, 1);
	assert_string_equal(send_msg(f, "MSH|^~\\&|X|Y|CW|CW|20240101||ADT^A01|A1|P|2.5\r"
				     "PID|1||77^^^OTHER^MR||SMYTHE^JON\r"
				     "PV1|1|I|||||||||||||||||V77^^^OTHER^VN\r", NULL), "AA");
	diag_init(&d, f->a);
	assert_int_equal(hl7_replay(f->r, rows[0].seq, &row, &d), CW_OK);
	assert_int_equal(row.outcome, STORE_HL7_ACCEPTED);
	assert_int_equal(row.attempts, 2);
	assert_int_equal(search(f, "Encounter", "identifier", "urn:careweave:hl7v2:id:OTHER:VN|V77",
				e), 1);
	assert_string_equal(str(e[0], "status"), "cancelled");
	json_decref(e[0]);
	/* nothing to replay once accepted; no such message */
	assert_int_equal(hl7_replay(f->r, rows[0].seq, &row, &d), CW_EINVAL);
	assert_int_equal(hl7_replay(f->r, 99999, &row, &d), CW_ENOTFOUND);
}

/* Runs the transaction Bundle body through the API, as a client would. */
static void
post_bundle(struct fx *f, const char *body)
{
	json_t *b, *out = NULL;
	struct diag d;

	assert_int_equal(fhir_parse_json(body, strlen(body), &b, NULL), CW_OK);
	diag_init(&d, f->a);
	assert_int_equal(api_bundle(f->api, f->a, b, NULL, &out, &d), CW_OK);
	json_decref(b);
	json_decref(out);
}

/* The care team of the Patient the A01 makes: a PCP, a pharmacist and a
 * coordinator (written as any client would, through the API). */
static void
team(struct fx *f, const char *patient_id)
{
	char body[4096];

	snprintf(body, sizeof(body),
		 "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
		 "{\"request\":{\"method\":\"PUT\",\"url\":\"Practitioner/pcp\"},"
		 "\"resource\":{\"resourceType\":\"Practitioner\",\"id\":\"pcp\"}},"
		 "{\"request\":{\"method\":\"PUT\",\"url\":\"Practitioner/pharm\"},"
		 "\"resource\":{\"resourceType\":\"Practitioner\",\"id\":\"pharm\"}},"
		 "{\"request\":{\"method\":\"PUT\",\"url\":\"Practitioner/coord\"},"
		 "\"resource\":{\"resourceType\":\"Practitioner\",\"id\":\"coord\"}},"
		 "{\"request\":{\"method\":\"POST\",\"url\":\"CareTeam\"},"
		 "\"resource\":{\"resourceType\":\"CareTeam\",\"status\":\"active\","
		 "\"subject\":{\"reference\":\"Patient/%s\"},\"participant\":["
		 "{\"role\":[{\"text\":\"Primary care physician\"}],\"member\":{\"reference\":\"Practitioner/pcp\"}},"
		 "{\"role\":[{\"text\":\"Pharmacist\"}],\"member\":{\"reference\":\"Practitioner/pharm\"}},"
		 "{\"role\":[{\"text\":\"Care coordinator\"}],\"member\":{\"reference\":\"Practitioner/coord\"}}]}}]}",
		 patient_id);
	post_bundle(f, body);
}

/* The resource of type with the transitions identifier of kind for enc. */
static json_t *
work(struct fx *f, const char *type, const char *enc_id, const char *kind)
{
	json_t *v[20];
	char ident[160];
	size_t n;

	snprintf(ident, sizeof(ident), "urn:careweave:transitions|%s:%s", enc_id, kind);
	n = search(f, type, "identifier", ident, v);
	assert_true(n <= 1);
	return n ? v[0] : NULL;
}

/* An HL7 DTM (UTC) of ms. */
static void
dtm(char out[16], int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 16, "%Y%m%d%H%M%S", &tm);
}

/* An ADT message of Mr Moss: event, control id, visit, admitted and
 * discharged (DTM or ""). */
static const char *
moss(struct fx *f, const char *event, const char *ctl, const char *visit,
     const char *admit, const char *discharge)
{
	return arena_printf(f->a,
		"MSH|^~\\&|ADT1|GHH|CW|CW|%s||ADT^%s|%s|P|2.5\r"
		"EVN|%s|%s\r"
		"PID|1||M75^^^GHH^MR||MOSS^ALBERT||19510302|M\r"
		"PV1|1|I|4N^401^1||||||||||||||||%s^^^GHH^VN|||||||||||||||||%s|||||||%s|%s\r",
		discharge[0] ? discharge : admit, event, ctl, event,
		discharge[0] ? discharge : admit, visit, discharge[0] ? "01" : "", admit,
		discharge);
}

#define DAY_MS 86400000LL

static void
test_transitions_of_care(void **state)
{
	struct fx *f = *state;
	json_t *p[20], *e[20], *t, *fl, *c, *ra;
	const char *pid, *eid, *eid2;
	char adm[16], dis[16], dis2[16], adm2[16], due[32];
	int64_t now = time_now_ms(), d0, fri;

	/* dated from now (the rule acts only on recent stays): discharged on
	 * the last Friday at 14:00 at least 3 days ago, admitted 4 days before */
	d0 = (now - 3 * DAY_MS) / DAY_MS;
	while ((d0 + 4) % 7 != 5)
		d0--;
	fri = d0 * DAY_MS + 14 * 3600000LL;
	dtm(adm, fri - 4 * DAY_MS - 6 * 3600000LL);
	dtm(dis, fri);
	dtm(dis2, fri + 3600000LL);
	dtm(adm2, fri + 2 * DAY_MS);
	/* the patient first (an A08), then the team, then the admission */
	assert_string_equal(send_msg(f, "MSH|^~\\&|ADT1|GHH|CW|CW|20260101||ADT^A08|T0|P|2.5\r"
				     "PID|1||M75^^^GHH^MR||MOSS^ALBERT||19510302|M\r", NULL), "AA");
	assert_int_equal(search(f, "Patient", "identifier", "urn:careweave:hl7v2:id:GHH:MR|M75", p), 1);
	pid = arena_strdup(f->a, str(p[0], "id"));
	json_decref(p[0]);
	team(f, pid);
	assert_string_equal(send_msg(f, moss(f, "A01", "T1", "V1", adm, ""), NULL), "AA");
	assert_int_equal(search(f, "Encounter", "identifier", "urn:careweave:hl7v2:id:GHH:VN|V1", e), 1);
	eid = arena_strdup(f->a, str(e[0], "id"));
	json_decref(e[0]);
	/* the team told at once; the patient flagged; the coordinator's task */
	assert_non_null(c = work(f, "Communication", eid, "admission-notice"));
	assert_int_equal(json_array_size(json_object_get(c, "recipient")), 3);
	assert_non_null(strstr(str(c, "payload.0.contentString"), "admitted to hospital"));
	json_decref(c);
	assert_non_null(fl = work(f, "Flag", eid, "admitted"));
	assert_string_equal(str(fl, "status"), "active");
	json_decref(fl);
	assert_non_null(t = work(f, "Task", eid, "send-records"));
	assert_string_equal(str(t, "owner.reference"), "Practitioner/coord");
	json_decref(t);
	/* the discharge: the flag ends, the tasks are due from the discharge */
	assert_string_equal(send_msg(f, moss(f, "A03", "T2", "V1", adm, dis), NULL), "AA");
	assert_non_null(fl = work(f, "Flag", eid, "admitted"));
	assert_string_equal(str(fl, "status"), "inactive");
	json_decref(fl);
	assert_non_null(t = work(f, "Task", eid, "contact"));
	/* Friday 14:00 plus 2 business days: Tuesday 14:00 */
	time_format_instant(fri + 4 * DAY_MS, due);
	assert_string_equal(str(t, "restriction.period.end"), due);
	assert_string_equal(str(t, "owner.reference"), "Practitioner/coord");
	json_decref(t);
	assert_non_null(t = work(f, "Task", eid, "medication-reconciliation"));
	assert_string_equal(str(t, "owner.reference"), "Practitioner/pharm");
	json_decref(t);
	assert_non_null(t = work(f, "Task", eid, "follow-up-visit"));
	assert_string_equal(str(t, "owner.reference"), "Practitioner/pcp");
	assert_non_null(strstr(str(t, "description"), "LACE"));
	json_decref(t);
	assert_non_null(t = work(f, "Task", eid, "discharge-summary"));
	json_decref(t);
	assert_non_null(ra = work(f, "RiskAssessment", eid, "risk-lace"));
	assert_string_equal(str(ra, "status"), "final");
	json_decref(ra);
	/* the discharge cancelled: its tasks too, the flag active again */
	assert_string_equal(send_msg(f, moss(f, "A13", "T3", "V1", adm, ""), NULL), "AA");
	assert_non_null(t = work(f, "Task", eid, "contact"));
	assert_string_equal(str(t, "status"), "cancelled");
	json_decref(t);
	assert_non_null(fl = work(f, "Flag", eid, "admitted"));
	assert_string_equal(str(fl, "status"), "active");
	json_decref(fl);
	/* discharged again, then admitted again within 30 days: a readmission */
	assert_string_equal(send_msg(f, moss(f, "A03", "T5", "V1", adm, dis2), NULL), "AA");
	assert_string_equal(send_msg(f, moss(f, "A01", "T4", "V2", adm2, ""), NULL), "AA");
	assert_int_equal(search(f, "Encounter", "identifier", "urn:careweave:hl7v2:id:GHH:VN|V2", e), 1);
	eid2 = arena_strdup(f->a, str(e[0], "id"));
	json_decref(e[0]);
	assert_non_null(fl = work(f, "Flag", eid2, "readmission"));
	assert_string_equal(str(fl, "status"), "active");
	json_decref(fl);
	assert_non_null(c = work(f, "Communication", eid2, "admission-notice"));
	assert_string_equal(str(c, "priority"), "asap");
	assert_non_null(strstr(str(c, "payload.0.contentString"), "readmission"));
	json_decref(c);
	/* a stay of long ago gives no work (history, not a task for today) */
	assert_string_equal(send_msg(f, moss(f, "A03", "T6", "V0", "20150301080000",
					   "20150305120000"), NULL), "AA");
	assert_int_equal(search(f, "Encounter", "identifier", "urn:careweave:hl7v2:id:GHH:VN|V0", e), 1);
	assert_null(work(f, "Task", str(e[0], "id"), "contact"));
	assert_null(work(f, "Flag", str(e[0], "id"), "admitted"));
	json_decref(e[0]);
}

/* A Patient careweave holds with no hospital identifier: the matcher. */
static void
held_patient(struct fx *f, const char *json)
{
	char body[2048];

	snprintf(body, sizeof(body),
		 "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
		 "{\"request\":{\"method\":\"POST\",\"url\":\"Patient\"},\"resource\":%s}]}",
		 json);
	post_bundle(f, body);
}

static void
test_patient_matching(void **state)
{
	struct fx *f = *state;
	json_t *p[20], *t[20];
	size_t n;

	held_patient(f, "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Moss\","
		     "\"given\":[\"Albert\"]}],\"birthDate\":\"1951-03-02\",\"gender\":\"male\","
		     "\"telecom\":[{\"system\":\"phone\",\"value\":\"555-0101\"}],"
		     "\"address\":[{\"line\":[\"12 Elm St\"],\"postalCode\":\"27401\"}]}");
	held_patient(f, "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Okafor\","
		     "\"given\":[\"Grace\"]}],\"birthDate\":\"1980-07-14\",\"gender\":\"female\"}");
	/* the same man, by the hospital's new number: linked, not doubled */
	assert_string_equal(send_msg(f, "MSH|^~\\&|ADT1|GHH|CW|CW|20260105||ADT^A04|P1|P|2.5\r"
				     "PID|1||H900^^^GHH^MR||MOSS^ALBERT||19510302|M|||12 ELM ST^^^^27401"
				     "||555-0101\rPV1|1|O\r", NULL), "AA");
	n = search(f, "Patient", "name", "Moss", p);
	assert_int_equal(n, 1);
	{
		char *ids = fhir_dump(json_object_get(p[0], "identifier"), NULL);

		assert_non_null(strstr(ids, "H900"));
		free(ids);
	}
	/* what careweave held stays as it was: the feed's upper-case name is
	 * the same name, not a second one */
	assert_int_equal(json_array_size(json_object_get(p[0], "name")), 1);
	assert_string_equal(str(p[0], "name.0.family"), "Moss");
	json_decref(p[0]);
	/* a birth date that differs is kept as careweave has it, and said */
	{
		const char *w;

		assert_string_equal(send_msg(f, "MSH|^~\\&|ADT1|GHH|CW|CW|20260105||ADT^A08|P3|P|2.5\r"
					     "PID|1||H900^^^GHH^MR||MOSS^ALBERT||19510303|M\r", &w), "AA");
		assert_string_equal(w, "103");
		assert_int_equal(search(f, "Patient", "name", "Moss", p), 1);
		assert_string_equal(str(p[0], "birthDate"), "1951-03-02");
		json_decref(p[0]);
	}
	/* Grace Okafor by name, birth date and sex, nothing more: probable, not
	 * sure (no address or phone to tell twins apart): a new Patient and a
	 * Task for a person to decide */
	assert_string_equal(send_msg(f, "MSH|^~\\&|ADT1|GHH|CW|CW|20260105||ADT^A04|P2|P|2.5\r"
				     "PID|1||H901^^^GHH^MR||OKAFOR^GRACE||19800714|F\rPV1|1|O\r", NULL),
			    "AA");
	n = search(f, "Patient", "name", "Okafor", p);
	assert_int_equal(n, 2);
	decref_all(p, n);
	n = search(f, "Task", "code", "https://careweave.org/fhir/CodeSystem/hl7v2-task|review-patient-match", t);
	assert_int_equal(n, 1);
	assert_non_null(strstr(json_string_value(json_object_get(t[0], "description")), "probable"));
	json_decref(t[0]);
}

#define ORU "MSH|^~\\&|GHH LAB|ELAB-3|GHH OE|BLDG4|200202150930||ORU^R01|CNTRL-3456|P|2.4\r" \
	"PID|||555-44-4444||EVERYWOMAN^EVE^E^^^^L|JONES|19620320|F|||153 FERNWOOD DR.^^STATESVILLE^OH^35292||(206)3345232|(206)752-121||||AC555444444||67-A4335^OH^20030520\r" \
	"OBR|1|845439^GHH OE|1045813^GHH LAB|1554-5^GLUCOSE|||200202150730||||||||555-55-5555^PRIMARY^PATRICIA P^^^^MD^^LEVEL SEVEN HEALTHCARE, INC.|||||||||F||||||444-44-4444^HIPPOCRATES^HOWARD H^^^^MD\r" \
	"OBX|1|SN|1554-5^GLUCOSE^POST 12H CFST:MCNC:PT:SER/PLAS:QN||^182|mg/dl|70_105|H|||F\r"

static void
test_oru_results(void **state)
{
	struct fx *f = *state;
	json_t *p[20], *r[20], *o[20], *sr[20];
	char body[1024];
	const char *code;

	/* the order careweave sent, with the placer number the lab echoes */
	assert_string_equal(send_msg(f, "MSH|^~\\&|GHH LAB|ELAB-3|CW|CW|20020101||ADT^A08|S0|P|2.4\r"
				     "PID|||555-44-4444||EVERYWOMAN^EVE||19620320|F\r", NULL), "AA");
	assert_int_equal(search(f, "Patient", "name", "EVERYWOMAN", p), 1);
	snprintf(body, sizeof(body),
		 "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"request\":"
		 "{\"method\":\"POST\",\"url\":\"ServiceRequest\"},\"resource\":{\"resourceType\":"
		 "\"ServiceRequest\",\"status\":\"active\",\"intent\":\"order\",\"identifier\":"
		 "[{\"system\":\"https://riverbend.example/orders\",\"value\":\"845439\"}],"
		 "\"code\":{\"text\":\"Glucose\"},\"subject\":{\"reference\":\"Patient/%s\"}}}]}",
		 str(p[0], "id"));
	json_decref(p[0]);
	post_bundle(f, body);

	assert_string_equal(send_msg(f, ORU, &code), "AA");
	assert_int_equal(search(f, "DiagnosticReport", "identifier",
				"urn:careweave:hl7v2:result|1045813", r), 1);
	assert_string_equal(str(r[0], "status"), "final");
	assert_string_equal(str(r[0], "effectiveDateTime"), "2002-02-15T07:30:00Z");
	assert_non_null(strstr(str(r[0], "basedOn.0.reference"), "ServiceRequest/"));
	assert_non_null(str(r[0], "result.0.reference"));
	json_decref(r[0]);
	assert_int_equal(search(f, "Observation", "identifier",
				"urn:careweave:hl7v2:result|1045813-1", o), 1);
	{
		double v;
		const char *lit;

		assert_true(fhir_number(json_object_get(json_object_get(o[0], "valueQuantity"), "value"),
					&v, &lit));
		assert_true(v == 182 && lit == NULL); /* "182" as sent: an integer */
		assert_true(fhir_number(json_object_get(json_object_get(json_array_get(
			json_object_get(o[0], "referenceRange"), 0), "low"), "value"), &v, NULL));
		assert_true(v == 70);
	}
	assert_string_equal(str(o[0], "valueQuantity.unit"), "mg/dl");
	assert_string_equal(str(o[0], "interpretation.0.coding.0.code"), "H");
	json_decref(o[0]);
	/* the order it answers is completed */
	assert_int_equal(search(f, "ServiceRequest", "identifier", "845439", sr), 1);
	assert_string_equal(str(sr[0], "status"), "completed");
	json_decref(sr[0]);
	/* sent again: the same resources, nothing new */
	assert_string_equal(send_msg(f, ORU, NULL), "AA");
	assert_int_equal(search(f, "Observation", "subject:Patient.name", "EVERYWOMAN", NULL), 1);
	/* another event of ORU is not taken */
	assert_string_equal(send_msg(f, "MSH|^~\\&|L|F|CW|CW|2002||ORU^R30|Z1|P|2.5\r", &code), "AR");
	assert_string_equal(code, "201");
}

static void
test_results_routing(void **state)
{
	struct fx *f = *state;
	json_t *p[20], *t[20];
	char body[1024], when[16];
	const char *pid, *msg;
	size_t n;
	bool orderer = false, pcp = false;

	dtm(when, time_now_ms() - DAY_MS);
	assert_string_equal(send_msg(f, "MSH|^~\\&|LAB|GHH|CW|CW|20260101||ADT^A08|R0|P|2.5\r"
				     "PID|1||R1^^^GHH^MR||ROUTED^RUTH||19400101|F\r", NULL), "AA");
	assert_int_equal(search(f, "Patient", "name", "ROUTED", p), 1);
	pid = arena_strdup(f->a, str(p[0], "id"));
	json_decref(p[0]);
	team(f, pid);
	/* the order, by the pharmacist (the orderer here) */
	snprintf(body, sizeof(body),
		 "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"request\":"
		 "{\"method\":\"POST\",\"url\":\"ServiceRequest\"},\"resource\":{\"resourceType\":"
		 "\"ServiceRequest\",\"status\":\"active\",\"intent\":\"order\",\"identifier\":"
		 "[{\"system\":\"https://riverbend.example/orders\",\"value\":\"ORD-77\"}],"
		 "\"code\":{\"text\":\"Potassium\"},\"requester\":{\"reference\":\"Practitioner/pharm\"},"
		 "\"subject\":{\"reference\":\"Patient/%s\"}}}]}", pid);
	post_bundle(f, body);
	msg = arena_printf(f->a, "MSH|^~\\&|LAB|GHH|CW|CW|%s||ORU^R01|R2|P|2.5.1\r"
			   "PID|1||R1^^^GHH^MR||ROUTED^RUTH||19400101|F\r"
			   "ORC|RE|ORD-77|F-9\r"
			   "OBR|1|ORD-77|F-9|2823-3^Potassium^LN|||%s||||||||||||||||||F\r"
			   "OBX|1|NM|2823-3^Potassium^LN||6.9|mmol/L|3.5-5.1|HH|||F\r", when, when);
	assert_string_equal(send_msg(f, msg, NULL), "AA");
	n = search(f, "Task", "code", "https://careweave.org/fhir/CodeSystem/results-task|review-result",
		   t);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(str(t[i], "priority"), "stat");
		assert_string_equal(str(t[i], "status"), "requested");
		orderer |= !strcmp(str(t[i], "owner.reference"), "Practitioner/pharm");
		pcp |= !strcmp(str(t[i], "owner.reference"), "Practitioner/pcp");
		assert_non_null(strstr(str(t[i], "description"), "1 critical"));
	}
	assert_true(orderer && pcp);
	decref_all(t, n);
	/* the potassium as sent, with its precision: 6.9 */
	assert_int_equal(search(f, "Observation", "code", "http://loinc.org|2823-3", t), 1);
	{
		const char *lit;
		double v;

		assert_true(fhir_number(json_object_get(json_object_get(t[0], "valueQuantity"), "value"),
					&v, &lit));
		assert_non_null(lit);
		assert_string_equal(lit, "6.9");
	}
	json_decref(t[0]);
	/* sent again: routed once */
	assert_string_equal(send_msg(f, msg, NULL), "AA");
	assert_int_equal(search(f, "Task", "code",
				"https://careweave.org/fhir/CodeSystem/results-task|review-result", NULL), 2);
}

static void
test_a40_merge(void **state)
{
	struct fx *f = *state;
	json_t *p[20];
	const char *w, *old_id, *keep_id;

	assert_string_equal(send_msg(f, "MSH|^~\\&|ADT1|GHH|CW|CW|20260101||ADT^A04|M1|P|2.5\r"
				     "PID|1||100^^^GHH^MR||TWICE^TOM||19600101|M\rPV1|1|O\r", NULL), "AA");
	assert_string_equal(send_msg(f, "MSH|^~\\&|ADT1|GHH|CW|CW|20260102||ADT^A04|M2|P|2.5\r"
				     "PID|1||200^^^GHH^MR||TWICE^THOMAS||19600101|M\rPV1|1|O\r", NULL), "AA");
	assert_int_equal(search(f, "Patient", "identifier", "urn:careweave:hl7v2:id:GHH:MR|100", p), 1);
	old_id = arena_strdup(f->a, str(p[0], "id"));
	json_decref(p[0]);
	assert_int_equal(search(f, "Patient", "identifier", "urn:careweave:hl7v2:id:GHH:MR|200", p), 1);
	keep_id = arena_strdup(f->a, str(p[0], "id"));
	json_decref(p[0]);
	assert_string_not_equal(old_id, keep_id);
	/* each record has a prescription; together they interact (high) */
	{
		char body[2048];
		const char *fmt =
			"{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{"
			"\"request\":{\"method\":\"POST\",\"url\":\"MedicationRequest\"},"
			"\"resource\":{\"resourceType\":\"MedicationRequest\",\"status\":\"active\","
			"\"intent\":\"order\",\"subject\":{\"reference\":\"Patient/%s\"},"
			"\"medicationCodeableConcept\":{\"text\":\"%s\"}}}]}";

		snprintf(body, sizeof(body), fmt, old_id, "Coumadin 5 mg tablet");
		post_bundle(f, body);
		snprintf(body, sizeof(body), fmt, keep_id, "Naproxen 220 mg tablet");
		post_bundle(f, body);
	}
	assert_int_equal(search(f, "DetectedIssue", "patient", arena_printf(f->a, "Patient/%s", keep_id),
				NULL), 0);
	/* the hospital merges 100 into 200 */
	assert_string_equal(send_msg(f, "MSH|^~\\&|ADT1|GHH|CW|CW|20260103||ADT^A40^ADT_A39|M3|P|2.5\r"
				     "EVN|A40|20260103\rPID|1||200^^^GHH^MR||TWICE^THOMAS||19600101|M\r"
				     "MRG|100^^^GHH^MR\r", NULL), "AA");
	assert_int_equal(search(f, "Patient", "_id", old_id, p), 1);
	assert_true(json_is_false(json_object_get(p[0], "active")));
	assert_string_equal(str(p[0], "link.0.type"), "replaced-by");
	assert_string_equal(str(p[0], "link.0.other.reference"), arena_printf(f->a, "Patient/%s", keep_id));
	json_decref(p[0]);
	assert_int_equal(search(f, "Patient", "_id", keep_id, p), 1);
	assert_string_equal(str(p[0], "link.0.type"), "replaces");
	assert_int_equal(json_array_size(json_object_get(p[0], "identifier")), 2);
	json_decref(p[0]);
	/* what the old record held moved: one record to read and to check */
	assert_int_equal(search(f, "Encounter", "subject", arena_printf(f->a, "Patient/%s", old_id),
				NULL), 0);
	assert_int_equal(search(f, "Encounter", "subject", arena_printf(f->a, "Patient/%s", keep_id),
				NULL), 2);
	/* the moved prescription is checked against the kept one's: found,
	 * recorded, never refused (both were prescribed already) */
	assert_int_equal(search(f, "MedicationRequest", "subject", arena_printf(f->a, "Patient/%s", keep_id),
				NULL), 2);
	assert_true(search(f, "DetectedIssue", "patient", arena_printf(f->a, "Patient/%s", keep_id),
			   NULL) >= 1);
	/* the same merge again (another control id): said, nothing written */
	assert_string_equal(send_msg(f, "MSH|^~\\&|ADT1|GHH|CW|CW|20260104||ADT^A40|M4|P|2.5\r"
				     "PID|1||200^^^GHH^MR||TWICE^THOMAS||19600101|M\rMRG|100^^^GHH^MR\r",
				     &w), "AA");
	assert_string_equal(w, "205");
	/* a merge of records careweave does not hold */
	assert_string_equal(send_msg(f, "MSH|^~\\&|ADT1|GHH|CW|CW|20260104||ADT^A40|M5|P|2.5\r"
				     "PID|1||900^^^GHH^MR||NOBODY^NED\rMRG|901^^^GHH^MR\r", &w), "AE");
	assert_string_equal(w, "204");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a01_admits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_visit_under_way, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rejected_and_failed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v23_crlf_zsegment_and_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transitions_of_care, setup, teardown),
		cmocka_unit_test_setup_teardown(test_patient_matching, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oru_results, setup, teardown),
		cmocka_unit_test_setup_teardown(test_results_routing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a40_merge, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
