/* tests/unit/access/test_policy.c: the pure decisions of access/policy.c.
 *
 * Consent evaluation (deny wins over permit, periods, nested provisions,
 * classes and security labels, inactive and non-privacy Consents say
 * nothing), care-team membership (team status and period, participant
 * period), the sensitive label table, what a grant covers, and the
 * break-the-glass rules (who may claim, the reason and minutes, what a
 * privacy officer may ask for). No store:
 * the inputs are FHIR JSON written here. */
#include "unit.h"

#include "access/access.h"

/* 2026-12-01T12:00:00Z */
#define NOW 1796126400000LL

static json_t *
js(const char *text)
{
	json_error_t e;
	json_t *v = json_loads(text, 0, &e);

	assert_non_null(v);
	return v;
}

static const char *const clin[] = {"Practitioner/anita", "Organization/clinic"};
static const char *const daughter[] = {"RelatedPerson/ellen"};

#define CONSENT(prov) \
	"{\"resourceType\":\"Consent\",\"status\":\"active\"," \
	"\"scope\":{\"coding\":[{\"code\":\"patient-privacy\"}]}," \
	"\"patient\":{\"reference\":\"Patient/p\"},\"provision\":" prov "}"

static struct access_consent
eval(struct arena *a, const char *text, const char *const *actors, size_t n)
{
	struct access_consent c;
	json_t *v = js(text);

	memset(&c, 0, sizeof(c));
	assert_int_equal(access_consent_eval(a, v, actors, n, NOW, &c), CW_OK);
	json_decref(v);
	return c;
}

static void
test_permit_and_deny(void **state)
{
	struct arena *a = arena_new(0);
	struct access_consent c;
	json_t *v;

	(void)state;
	c = eval(a, CONSENT("{\"type\":\"permit\",\"actor\":[{\"reference\":"
			    "{\"reference\":\"Organization/clinic\"}}]}"), clin, 2);
	assert_true(c.permit);
	assert_true(c.permit_all);
	assert_false(c.deny_all);
	/* not named: nothing */
	c = eval(a, CONSENT("{\"type\":\"permit\",\"actor\":[{\"reference\":"
			    "{\"reference\":\"Organization/clinic\"}}]}"), daughter, 1);
	assert_false(c.permit);
	/* a deny without actors covers everyone; a permit without, nobody */
	c = eval(a, CONSENT("{\"type\":\"deny\"}"), daughter, 1);
	assert_true(c.deny_all);
	c = eval(a, CONSENT("{\"type\":\"permit\"}"), daughter, 1);
	assert_false(c.permit);
	/* deny wins: a permit and a deny of the same actor, two Consents */
	memset(&c, 0, sizeof(c));
	v = js(CONSENT("{\"type\":\"permit\",\"actor\":[{\"reference\":"
		       "{\"reference\":\"Practitioner/anita\"}}]}"));
	access_consent_eval(a, v, clin, 2, NOW, &c);
	json_decref(v);
	v = js(CONSENT("{\"type\":\"deny\",\"actor\":[{\"reference\":"
		       "{\"reference\":\"Practitioner/anita\"}}]}"));
	access_consent_eval(a, v, clin, 2, NOW, &c);
	json_decref(v);
	assert_true(c.permit);
	assert_true(c.deny_all);
	/* inactive and non-privacy Consents say nothing */
	c = eval(a, "{\"resourceType\":\"Consent\",\"status\":\"inactive\","
		 "\"scope\":{\"coding\":[{\"code\":\"patient-privacy\"}]},"
		 "\"provision\":{\"type\":\"deny\"}}", clin, 2);
	assert_false(c.deny_all);
	c = eval(a, "{\"resourceType\":\"Consent\",\"status\":\"active\","
		 "\"scope\":{\"coding\":[{\"code\":\"research\"}]},"
		 "\"provision\":{\"type\":\"deny\"}}", clin, 2);
	assert_false(c.deny_all);
	arena_free(a);
}

static void
test_period(void **state)
{
	struct arena *a = arena_new(0);
	struct access_consent c;

	(void)state;
	c = eval(a, CONSENT("{\"type\":\"permit\",\"period\":{\"start\":\"2025-01-01\","
			    "\"end\":\"2026-11-30\"},\"actor\":[{\"reference\":"
			    "{\"reference\":\"RelatedPerson/ellen\"}}]}"), daughter, 1);
	assert_false(c.permit); /* expired yesterday */
	c = eval(a, CONSENT("{\"type\":\"permit\",\"period\":{\"start\":\"2025-01-01\","
			    "\"end\":\"2026-12-01\"},\"actor\":[{\"reference\":"
			    "{\"reference\":\"RelatedPerson/ellen\"}}]}"), daughter, 1);
	assert_true(c.permit); /* the end day is inclusive */
	c = eval(a, CONSENT("{\"type\":\"deny\",\"period\":{\"start\":\"2027-01-01\"}}"),
		 clin, 2);
	assert_false(c.deny_all); /* not yet */
	/* a nested provision is bounded by its parent's period */
	c = eval(a, CONSENT("{\"type\":\"permit\",\"period\":{\"end\":\"2026-01-01\"},"
			    "\"provision\":[{\"actor\":[{\"reference\":"
			    "{\"reference\":\"RelatedPerson/ellen\"}}]}]}"), daughter, 1);
	assert_false(c.permit);
	arena_free(a);
}

static void
test_class_and_label(void **state)
{
	struct arena *a = arena_new(0);
	struct access_consent c;

	(void)state;
	/* the demo's shape: a root permit, a nested permit for the daughter */
	c = eval(a, CONSENT("{\"type\":\"permit\",\"actor\":[{\"reference\":"
			    "{\"reference\":\"Organization/clinic\"}}],\"provision\":"
			    "[{\"type\":\"permit\",\"actor\":[{\"reference\":"
			    "{\"reference\":\"RelatedPerson/ellen\"}}],\"class\":"
			    "[{\"system\":\"http://hl7.org/fhir/resource-types\","
			    "\"code\":\"MedicationRequest\"},{\"code\":\"Appointment\"}]}]}"),
		 daughter, 1);
	assert_true(c.permit);
	assert_false(c.permit_all);
	assert_int_equal(c.ntypes, 2);
	assert_string_equal(c.types[0], "MedicationRequest");
	/* a deny of one label narrows, it does not take everything */
	c = eval(a, CONSENT("{\"type\":\"permit\",\"actor\":[{\"reference\":"
			    "{\"reference\":\"Practitioner/anita\"}}],\"provision\":"
			    "[{\"type\":\"deny\",\"securityLabel\":[{\"system\":"
			    "\"http://terminology.hl7.org/CodeSystem/v3-ActCode\","
			    "\"code\":\"PSY\"}]},{\"type\":\"permit\",\"securityLabel\":"
			    "[{\"code\":\"HIV\"}]}]}"), clin, 2);
	assert_true(c.permit_all);
	assert_false(c.deny_all);
	assert_int_equal(c.ndeny_labels, 1);
	assert_string_equal(c.deny_labels[0], "PSY");
	assert_int_equal(c.nlabels, 1);
	assert_string_equal(c.labels[0], "HIV");
	arena_free(a);
}

static void
test_grant_covers(void **state)
{
	static const char *types[] = {"Appointment"};
	static const char *labels[] = {"PSY"};
	static const char *deny[] = {"HIV"};
	struct access_grant g = {.read = true, .all_types = true};
	json_t *plain = js("{\"resourceType\":\"Observation\"}");
	json_t *psy = js("{\"resourceType\":\"Observation\",\"meta\":{\"security\":"
			 "[{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ActCode\","
			 "\"code\":\"PSY\"}]}}");
	json_t *hiv = js("{\"resourceType\":\"Observation\",\"meta\":{\"security\":"
			 "[{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-ActCode\","
			 "\"code\":\"HIV\"}]}}");
	json_t *rest = js("{\"resourceType\":\"Observation\",\"meta\":{\"security\":"
			  "[{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-Confidentiality\","
			  "\"code\":\"R\"}]}}");
	json_t *normal = js("{\"resourceType\":\"Observation\",\"meta\":{\"security\":"
			    "[{\"system\":\"http://terminology.hl7.org/CodeSystem/v3-Confidentiality\","
			    "\"code\":\"N\"}]}}");

	(void)state;
	assert_true(access_grant_covers(&g, "Observation", plain));
	assert_true(access_grant_covers(&g, "Observation", normal));
	assert_false(access_grant_covers(&g, "Observation", psy));
	assert_false(access_grant_covers(&g, "Observation", rest));
	g.labels = labels, g.nlabels = 1;
	assert_true(access_grant_covers(&g, "Observation", psy));
	g.deny_labels = deny, g.ndeny_labels = 1;
	g.all_labels = true;
	assert_false(access_grant_covers(&g, "Observation", hiv)); /* deny wins */
	g = (struct access_grant){.read = true, .types = types, .ntypes = 1};
	assert_true(access_grant_covers(&g, "Appointment", NULL));
	assert_false(access_grant_covers(&g, "Observation", plain));
	g.read = false;
	assert_false(access_grant_covers(&g, "Appointment", NULL));
	assert_true(access_label_sensitive(
		"http://terminology.hl7.org/CodeSystem/v3-ActCode", "ETH"));
	assert_false(access_label_sensitive(
		"http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "N"));
	json_decref(plain), json_decref(psy), json_decref(hiv);
	json_decref(rest), json_decref(normal);
}

static void
test_careteam(void **state)
{
	json_t *t = js("{\"resourceType\":\"CareTeam\",\"status\":\"active\","
		       "\"subject\":{\"reference\":\"Patient/p\"},\"participant\":["
		       "{\"member\":{\"reference\":\"Practitioner/anita\"}},"
		       "{\"member\":{\"reference\":\"Practitioner/old\"},"
		       "\"period\":{\"start\":\"2020-01-01\",\"end\":\"2025-01-01\"}},"
		       "{\"member\":{\"reference\":\"Organization/clinic\"}}]}");
	const char *const old[] = {"Practitioner/old"};
	const char *const org[] = {"Practitioner/x", "Organization/clinic"};
	const char *const none[] = {"Practitioner/stranger"};

	(void)state;
	assert_true(access_careteam_member(t, clin, 1, NOW));
	assert_false(access_careteam_member(t, old, 1, NOW)); /* left the team */
	assert_true(access_careteam_member(t, org, 2, NOW));  /* via the org */
	assert_false(access_careteam_member(t, none, 1, NOW));
	json_object_set_new(t, "status", json_string("inactive"));
	assert_false(access_careteam_member(t, clin, 1, NOW));
	json_object_set_new(t, "status", json_string("active"));
	json_object_set_new(t, "period", js("{\"end\":\"2026-06-30\"}"));
	assert_false(access_careteam_member(t, clin, 1, NOW));
	json_decref(t);
}

static void
test_glass_rules(void **state)
{
	struct arena *a = arena_new(0);
	struct access_who who = {.uid = 1, .link = "Practitioner/x"};
	struct diag d;
	const char *k, *v;
	char big[1002];

	(void)state;
	diag_init(&d, a);
	for (int r = 0; r < ACCESS_ROLE_COUNT; r++) {
		who.role = (enum access_role)r;
		assert_int_equal(access_may_break_glass(&who), access_role_clinical(who.role));
		assert_int_equal(access_role_clinical(who.role),
				 r >= ACCESS_COORDINATOR && r <= ACCESS_SOCIAL_WORKER);
	}
	who.role = ACCESS_NURSE;
	who.link = NULL;
	assert_false(access_may_break_glass(&who)); /* no sender to name */
	assert_false(access_may_break_glass(NULL));

	assert_int_equal(access_glass_check(NULL, "unconscious", 11, 60, &d), CW_OK);
	assert_int_equal(access_glass_check(NULL, "too short", 9, 60, &d), CW_EINVALID);
	/* characters, not bytes: nine two-byte letters are still short */
	assert_int_equal(access_glass_check(NULL, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
					    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 18, 60, &d),
			 CW_EINVALID);
	assert_int_equal(access_glass_check(NULL, "line one\nline two", 17, 60, &d), CW_OK);
	assert_int_equal(access_glass_check(NULL, "nul \0 inside it", 16, 60, &d), CW_EINVALID);
	memset(big, 'x', sizeof(big));
	assert_int_equal(access_glass_check(NULL, big, 1000, 60, &d), CW_OK);
	assert_int_equal(access_glass_check(NULL, big, 1001, 60, &d), CW_EINVALID);
	assert_int_equal(access_glass_check(NULL, big, 20, 0, &d), CW_EINVALID);
	assert_int_equal(access_glass_check(NULL, big, 20, ACCESS_GLASS_MAX_DEFAULT, &d), CW_OK);
	assert_int_equal(access_glass_check(NULL, big, 20, ACCESS_GLASS_MAX_DEFAULT + 1, &d),
			 CW_EINVALID);

	who.role = ACCESS_PRIVACY_OFFICER;
	assert_true(access_role_may_ask(&who, fhir_restype_find("Communication")));
	assert_true(access_role_may_ask(&who, fhir_restype_find("Practitioner")));
	assert_true(access_role_may_ask(&who, NULL));
	assert_false(access_role_may_ask(&who, fhir_restype_find("Observation")));
	assert_false(access_role_may_ask(&who, fhir_restype_find("Patient")));
	who.role = ACCESS_NURSE;
	assert_true(access_role_may_ask(&who, fhir_restype_find("Observation")));
	assert_false(access_search_by_ref(NULL, fhir_restype_find("Communication"), &k, &v));
	arena_free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_permit_and_deny),
		cmocka_unit_test(test_period),
		cmocka_unit_test(test_class_and_label),
		cmocka_unit_test(test_grant_covers),
		cmocka_unit_test(test_careteam),
		cmocka_unit_test(test_glass_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
