/* tests/unit/api/test_api.c: the FHIR REST API (api/) driven through
 * api_handle with hand-made requests against a store in a temp directory:
 * create/read/update/delete, validation, routing errors, stale versions
 * (412), transactions (references, conditional create, rollback) and
 * paging. Headers cannot be faked here (http_req_header needs a live
 * connection), so If-Match is exercised through transaction entries. */
#include <unistd.h>

#include "unit.h"
#include "api/api.h"

#define BASE "http://test.local/fhir"

struct fx {
	char dir[64];
	char path[96];
	struct store *s;
	struct api *api;
	struct arena *a;   /* one request's arena, reset per call */
	struct http_resp w;
	json_t *body;      /* parsed response body or NULL */
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct api_options opt = {.base_url = BASE, .local = true};
	struct arena *a = arena_new(0);
	struct diag d;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/cw-api-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
	diag_init(&d, a);
	f->s = store_open(f->path, NULL, &d);
	assert_non_null(f->s);
	arena_free(a);
	f->api = api_new(f->s, &opt);
	assert_non_null(f->api);
	f->a = arena_new(0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	json_decref(f->body);
	arena_free(f->a);
	api_free(f->api);
	store_close(f->s);
	unit_rm_dir(f->dir); /* the db, its -wal and -shm */
	free(f);
	return 0;
}

/* Serves method path?query with body; returns the status. query is
 * "k=v&k=v" without percent-encoding. The parsed body is in f->body. */
static int
call(struct fx *f, const char *method, const char *path, const char *query,
     const char *body)
{
	struct http_req r = {0};
	struct http_kv *kv;
	char *qs, *save = NULL, *t, *eq;
	size_t n = 0;

	json_decref(f->body);
	f->body = NULL;
	arena_reset(f->a);
	memset(&f->w, 0, sizeof(f->w));
	kv = arena_zalloc(f->a, 32 * sizeof(*kv));
	if (query) {
		qs = arena_strdup(f->a, query);
		for (t = strtok_r(qs, "&", &save); t && n < 32;
		     t = strtok_r(NULL, "&", &save)) {
			eq = strchr(t, '=');
			if (eq)
				*eq = '\0';
			kv[n].key = t;
			kv[n++].value = eq ? eq + 1 : "";
		}
	}
	r.arena = f->a;
	r.method = method;
	r.path = path;
	r.query = kv;
	r.nquery = n;
	r.body = body ? body : "";
	r.body_len = body ? strlen(body) : 0;
	r.remote = "test";
	api_handle(f->api, &r, &f->w);
	if (f->w.body_len)
		f->body = json_loadb(f->w.body, f->w.body_len, 0, NULL);
	return f->w.status;
}

static const char *
header(struct fx *f, const char *name)
{
	size_t i;

	for (i = 0; i < f->w.nheaders; i++)
		if (!strcasecmp(f->w.headers[i].key, name))
			return f->w.headers[i].value;
	return NULL;
}

static const char *
str_at(json_t *v, const char *path)
{
	json_t *cur = v;
	char buf[256], *save = NULL, *t, *end;
	long idx;

	snprintf(buf, sizeof(buf), "%s", path);
	for (t = strtok_r(buf, ".", &save); t && cur; t = strtok_r(NULL, ".", &save)) {
		idx = strtol(t, &end, 10);
		cur = *end ? json_object_get(cur, t) : json_array_get(cur, (size_t)idx);
	}
	return json_string_value(cur);
}

static long
count_of(struct fx *f, const char *type, const char *query)
{
	char q[256];

	snprintf(q, sizeof(q), "%s&_summary=count", query);
	assert_int_equal(call(f, "GET", type, q, NULL), 200);
	return (long)json_integer_value(json_object_get(f->body, "total"));
}

static void
test_create_read_update_delete(void **state)
{
	struct fx *f = *state;
	char id[64], path[128], body[512], loc[256];

	assert_int_equal(call(f, "POST", "/fhir/Patient", NULL,
			      "{\"resourceType\":\"Patient\",\"id\":\"mine\","
			      "\"name\":[{\"family\":\"Lovelace\"}]}"), 201);
	assert_string_not_equal(str_at(f->body, "id"), "mine");
	snprintf(id, sizeof(id), "%s", str_at(f->body, "id"));
	assert_string_equal(str_at(f->body, "meta.versionId"), "1");
	snprintf(loc, sizeof(loc), BASE "/Patient/%s/_history/1", id);
	assert_string_equal(header(f, "Location"), loc);
	assert_string_equal(header(f, "ETag"), "W/\"1\"");
	assert_non_null(header(f, "Last-Modified"));
	assert_string_equal(f->w.content_type, "application/fhir+json; charset=utf-8");

	snprintf(path, sizeof(path), "/fhir/Patient/%s", id);
	assert_int_equal(call(f, "GET", path, NULL, NULL), 200);
	assert_string_equal(str_at(f->body, "name.0.family"), "Lovelace");
	assert_string_equal(header(f, "ETag"), "W/\"1\"");

	snprintf(body, sizeof(body), "{\"resourceType\":\"Patient\",\"id\":\"%s\","
		 "\"name\":[{\"family\":\"Byron\"}]}", id);
	assert_int_equal(call(f, "PUT", path, NULL, body), 200);
	assert_string_equal(header(f, "ETag"), "W/\"2\"");
	assert_string_equal(str_at(f->body, "name.0.family"), "Byron");

	/* the id in the body must match the URL, and be there */
	assert_int_equal(call(f, "PUT", path, NULL,
			      "{\"resourceType\":\"Patient\",\"id\":\"other\"}"), 400);
	assert_string_equal(str_at(f->body, "resourceType"), "OperationOutcome");
	assert_int_equal(call(f, "PUT", path, NULL, "{\"resourceType\":\"Patient\"}"), 400);

	/* update of an unknown id creates it */
	assert_int_equal(call(f, "PUT", "/fhir/Patient/client-1", NULL,
			      "{\"resourceType\":\"Patient\",\"id\":\"client-1\"}"), 201);

	snprintf(path, sizeof(path), "/fhir/Patient/%s/_history/1", id);
	assert_int_equal(call(f, "GET", path, NULL, NULL), 200);
	assert_string_equal(str_at(f->body, "name.0.family"), "Lovelace");

	snprintf(path, sizeof(path), "/fhir/Patient/%s/_history", id);
	assert_int_equal(call(f, "GET", path, NULL, NULL), 200);
	assert_string_equal(str_at(f->body, "type"), "history");
	assert_string_equal(str_at(f->body, "entry.0.request.method"), "PUT");
	assert_string_equal(str_at(f->body, "entry.1.request.method"), "POST");

	snprintf(path, sizeof(path), "/fhir/Patient/%s", id);
	assert_int_equal(call(f, "DELETE", path, NULL, NULL), 204);
	assert_int_equal(f->w.body_len, 0);
	assert_int_equal(call(f, "GET", path, NULL, NULL), 410);
	assert_string_equal(str_at(f->body, "issue.0.code"), "deleted");
	assert_int_equal(call(f, "DELETE", "/fhir/Patient/never-was", NULL, NULL), 204);
	assert_int_equal(call(f, "GET", "/fhir/Patient/never-was", NULL, NULL), 404);
}

static void
test_validation(void **state)
{
	struct fx *f = *state;

	assert_int_equal(call(f, "POST", "/fhir/Patient", NULL,
			      "{\"resourceType\":\"Patient\",\"birthDate\":\"1970-02-30\","
			      "\"bogus\":1}"), 422);
	assert_string_equal(str_at(f->body, "resourceType"), "OperationOutcome");
	assert_int_equal(json_array_size(json_object_get(f->body, "issue")), 2);
	assert_int_equal(call(f, "POST", "/fhir/Patient", NULL, "{\"resourceType\":"), 400);
	assert_int_equal(call(f, "POST", "/fhir/Observation", NULL,
			      "{\"resourceType\":\"Patient\"}"), 400);
	assert_int_equal(call(f, "POST", "/fhir/Patient", NULL, NULL), 400);
}

static void
test_routes(void **state)
{
	struct fx *f = *state;

	assert_int_equal(call(f, "GET", "/fhir/metadata", NULL, NULL), 200);
	assert_string_equal(str_at(f->body, "fhirVersion"), "4.0.1");
	assert_string_equal(str_at(f->body, "rest.0.resource.0.type"), "Patient");
	assert_int_equal(call(f, "GET", "/fhir/Nonsense/1", NULL, NULL), 404);
	assert_string_equal(str_at(f->body, "issue.0.code"), "not-supported");
	/* PATCH is served on an instance, with a JSON Patch only */
	assert_int_equal(call(f, "PATCH", "/fhir/Patient/1", NULL, "[]"), 415);
	assert_string_equal(str_at(f->body, "resourceType"), "OperationOutcome");
	assert_int_equal(call(f, "PATCH", "/fhir/Patient", NULL, "[]"), 405);
	assert_int_equal(call(f, "POST", "/fhir/Patient/1", NULL, "{}"), 405);
	assert_non_null(header(f, "Allow"));
	assert_int_equal(call(f, "GET", "/fhir/Patient/1/nothing", NULL, NULL), 404);
	assert_int_equal(call(f, "GET", "/elsewhere", NULL, NULL), 404);
	assert_int_equal(call(f, "GET", "/fhir/metadata", "_format=xml", NULL), 406);
	assert_int_equal(call(f, "GET", "/fhir/Patient", "nonsense=1", NULL), 200);
	assert_int_equal(call(f, "GET", "/fhir/Patient/bad id!", NULL, NULL), 400);
}

/* A stale ifMatch in a transaction fails it (412) and nothing of it stays. */
static void
test_stale_if_match(void **state)
{
	struct fx *f = *state;
	char id[64], path[128], body[1024];

	assert_int_equal(call(f, "POST", "/fhir/Patient", NULL,
			      "{\"resourceType\":\"Patient\"}"), 201);
	snprintf(id, sizeof(id), "%s", str_at(f->body, "id"));
	snprintf(path, sizeof(path), "/fhir/Patient/%s", id);
	snprintf(body, sizeof(body), "{\"resourceType\":\"Patient\",\"id\":\"%s\","
		 "\"gender\":\"other\"}", id);
	assert_int_equal(call(f, "PUT", path, NULL, body), 200);

	snprintf(body, sizeof(body),
		 "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
		 "{\"resource\":{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Ghost\"}]},"
		 "\"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
		 "{\"resource\":{\"resourceType\":\"Patient\",\"id\":\"%s\"},"
		 "\"request\":{\"method\":\"PUT\",\"url\":\"Patient/%s\",\"ifMatch\":\"W/\\\"1\\\"\"}}]}",
		 id, id);
	assert_int_equal(call(f, "POST", "/fhir", NULL, body), 412);
	assert_string_equal(str_at(f->body, "issue.0.expression.0"), "Bundle.entry[1]");
	assert_int_equal(count_of(f, "/fhir/Patient", "family=Ghost"), 0);

	/* the right version goes through */
	snprintf(body, sizeof(body),
		 "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
		 "{\"resource\":{\"resourceType\":\"Patient\",\"id\":\"%s\"},"
		 "\"request\":{\"method\":\"PUT\",\"url\":\"Patient/%s\",\"ifMatch\":\"W/\\\"2\\\"\"}}]}",
		 id, id);
	assert_int_equal(call(f, "POST", "/fhir", NULL, body), 200);
	assert_string_equal(str_at(f->body, "entry.0.response.status"), "200 OK");
	assert_string_equal(str_at(f->body, "entry.0.response.etag"), "W/\"3\"");
}

static const char tx_refs[] =
	"{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
	"{\"fullUrl\":\"urn:uuid:0f0f0f0f-0000-4000-8000-000000000001\","
	" \"resource\":{\"resourceType\":\"Patient\","
	"  \"identifier\":[{\"system\":\"urn:mrn\",\"value\":\"42\"}]},"
	" \"request\":{\"method\":\"POST\",\"url\":\"Patient\","
	"  \"ifNoneExist\":\"identifier=urn:mrn|42\"}},"
	"{\"resource\":{\"resourceType\":\"Observation\",\"status\":\"final\","
	"  \"code\":{\"text\":\"pulse\"},"
	"  \"subject\":{\"reference\":\"urn:uuid:0f0f0f0f-0000-4000-8000-000000000001\"}},"
	" \"request\":{\"method\":\"POST\",\"url\":\"Observation\"}},"
	"{\"resource\":{\"resourceType\":\"Encounter\",\"status\":\"finished\","
	"  \"class\":{\"code\":\"AMB\"},"
	"  \"subject\":{\"reference\":\"Patient?identifier=urn:mrn|42\"}},"
	" \"request\":{\"method\":\"POST\",\"url\":\"Encounter\"}}]}";

static void
test_transaction_refs(void **state)
{
	struct fx *f = *state;
	char pid[64], ref[96], path[160];

	assert_int_equal(call(f, "POST", "/fhir", NULL, tx_refs), 200);
	assert_string_equal(str_at(f->body, "type"), "transaction-response");
	assert_string_equal(str_at(f->body, "entry.0.response.status"), "201 Created");
	snprintf(pid, sizeof(pid), "%s", str_at(f->body, "entry.0.response.location") + 8);
	*strchr(pid, '/') = '\0';
	snprintf(ref, sizeof(ref), "Patient/%s", pid);

	snprintf(path, sizeof(path), "/fhir/%s", str_at(f->body, "entry.1.response.location"));
	*strstr(path, "/_history") = '\0';
	assert_int_equal(call(f, "GET", path, NULL, NULL), 200);
	assert_string_equal(str_at(f->body, "subject.reference"), ref);
	assert_int_equal(call(f, "GET", "/fhir/Encounter", NULL, NULL), 200);
	assert_string_equal(str_at(f->body, "entry.0.resource.subject.reference"), ref);

	/* again: the conditional create finds the patient, references follow */
	assert_int_equal(call(f, "POST", "/fhir", NULL, tx_refs), 200);
	assert_string_equal(str_at(f->body, "entry.0.response.status"), "200 OK");
	assert_int_equal(count_of(f, "/fhir/Patient", "identifier=urn:mrn|42"), 1);
	assert_int_equal(count_of(f, "/fhir/Observation", "subject=" "Patient/x"), 0);
	snprintf(path, sizeof(path), "subject=%s", ref);
	assert_int_equal(count_of(f, "/fhir/Observation", path), 2);
}

static void
test_transaction_rollback(void **state)
{
	struct fx *f = *state;

	assert_int_equal(call(f, "POST", "/fhir", NULL,
		"{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
		"{\"resource\":{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Kept\"}]},"
		" \"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
		"{\"resource\":{\"resourceType\":\"Patient\",\"birthDate\":\"nope\"},"
		" \"request\":{\"method\":\"POST\",\"url\":\"Patient\"}}]}"), 422);
	assert_string_equal(str_at(f->body, "issue.0.expression.0"),
			    "Bundle.entry[1].resource.birthDate");
	assert_int_equal(count_of(f, "/fhir/Patient", "family=Kept"), 0);

	/* a conditional reference matching nothing fails it all (400) */
	assert_int_equal(call(f, "POST", "/fhir", NULL,
		"{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
		"{\"resource\":{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Kept\"}]},"
		" \"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
		"{\"resource\":{\"resourceType\":\"Observation\",\"status\":\"final\","
		"  \"code\":{\"text\":\"x\"},"
		"  \"subject\":{\"reference\":\"Patient?identifier=urn:mrn|none\"}},"
		" \"request\":{\"method\":\"POST\",\"url\":\"Observation\"}}]}"), 400);
	assert_int_equal(count_of(f, "/fhir/Patient", "family=Kept"), 0);

	/* batch entries stand alone */
	assert_int_equal(call(f, "POST", "/fhir", NULL,
		"{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":["
		"{\"resource\":{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Kept\"}]},"
		" \"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
		"{\"resource\":{\"resourceType\":\"Patient\",\"birthDate\":\"nope\"},"
		" \"request\":{\"method\":\"POST\",\"url\":\"Patient\"}},"
		"{\"request\":{\"method\":\"GET\",\"url\":\"Patient?family=Kept\"}}]}"), 200);
	assert_string_equal(str_at(f->body, "type"), "batch-response");
	assert_string_equal(str_at(f->body, "entry.0.response.status"), "201 Created");
	assert_string_equal(str_at(f->body, "entry.1.response.status"),
			    "422 Unprocessable Entity");
	assert_string_equal(str_at(f->body, "entry.2.resource.type"), "searchset");
	assert_int_equal(count_of(f, "/fhir/Patient", "family=Kept"), 1);
}

static void
test_bundle_lenient_refs(void **state)
{
	struct fx *f = *state;
	struct api_bundle_opt opt = {.lenient_refs = true};
	struct arena *a = arena_new(0);
	struct diag d;
	json_t *b, *out = NULL, *subj;
	const char *text =
		"{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":["
		"{\"resource\":{\"resourceType\":\"Observation\",\"status\":\"final\","
		"  \"code\":{\"text\":\"x\"},\"subject\":{\"reference\":"
		"  \"Patient?identifier=urn:mrn|gone\",\"display\":\"Someone\"}},"
		" \"request\":{\"method\":\"POST\",\"url\":\"Observation\"}}]}";

	diag_init(&d, a);
	b = json_loads(text, 0, NULL);
	assert_int_equal(api_bundle(f->api, a, b, &opt, &out, &d), CW_OK);
	assert_non_null(out);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.issues[0].sev, DIAG_WARNING);
	subj = json_object_get(json_object_get(json_object_get(
		json_array_get(json_object_get(b, "entry"), 0), "resource"), "subject"), "reference");
	assert_null(subj);
	json_decref(out);
	json_decref(b);

	/* strict: the same bundle fails */
	diag_init(&d, a);
	b = json_loads(text, 0, NULL);
	out = NULL;
	assert_int_equal(api_bundle(f->api, a, b, NULL, &out, &d), CW_EINVAL);
	assert_null(out);
	json_decref(b);
	arena_free(a);
}

static void
test_search_paging(void **state)
{
	struct fx *f = *state;
	const char *next;
	char q[512];
	int i, seen = 0, pages = 0;

	for (i = 0; i < 5; i++)
		assert_int_equal(call(f, "POST", "/fhir/Patient", NULL,
				      "{\"resourceType\":\"Patient\","
				      "\"name\":[{\"family\":\"Pager\"}]}"), 201);
	snprintf(q, sizeof(q), "family=Pager&_count=2");
	for (;;) {
		assert_int_equal(call(f, "GET", "/fhir/Patient", q, NULL), 200);
		assert_string_equal(str_at(f->body, "type"), "searchset");
		assert_string_equal(str_at(f->body, "entry.0.search.mode"), "match");
		seen += (int)json_array_size(json_object_get(f->body, "entry"));
		pages++;
		next = NULL;
		for (i = 0; i < (int)json_array_size(json_object_get(f->body, "link")); i++) {
			json_t *l = json_array_get(json_object_get(f->body, "link"), (size_t)i);

			if (!strcmp(json_string_value(json_object_get(l, "relation")), "next"))
				next = json_string_value(json_object_get(l, "url"));
		}
		if (!next)
			break;
		assert_true(!strncmp(next, BASE "/Patient?", strlen(BASE "/Patient?")));
		assert_non_null(strstr(next, "_cursor="));
		snprintf(q, sizeof(q), "%s", strchr(next, '?') + 1);
		assert_true(pages < 10);
	}
	assert_int_equal(seen, 5);
	assert_int_equal(pages, 3);

	assert_int_equal(call(f, "POST", "/fhir/Patient/_search", NULL, "family=Pager"), 200);
	assert_int_equal(json_array_size(json_object_get(f->body, "entry")), 5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_read_update_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_if_match, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transaction_refs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transaction_rollback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bundle_lenient_refs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_search_paging, setup, teardown),
	};

	log_set_level(LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
