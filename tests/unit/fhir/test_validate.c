/* Unit tests for fhir/validate.c and fhir/outcome.c.
 *
 * Data-driven: every tests/data/fhir/valid/NAME.json validates clean; every
 * tests/data/fhir/invalid/<name>.json yields exactly the issues listed in
 * <name>.expect ("<location>\t<code>" per line, any order). An optional
 * <name>.type holds the expected resource type passed to fhir_validate. */
#include <dirent.h>

#include "unit.h"

#include "fhir/fhir.h"

static char *
slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long len;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	buf[len] = '\0';
	fclose(f);
	if (n)
		*n = (size_t)len;
	return buf;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static enum cw_err
validate_file(const char *path, const char *type, struct diag *d)
{
	size_t n;
	char *body = slurp(path, &n);
	json_t *res = NULL;
	enum cw_err err;

	assert_non_null(body);
	err = fhir_parse_json(body, n, &res, d);
	free(body);
	if (err)
		return err;
	err = fhir_validate(res, type, d);
	json_decref(res);
	return err;
}

static void
print_issues(const char *name, const struct diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		print_message("  %s: %s\t%s (%s)\n", name,
			      d->issues[i].loc ? d->issues[i].loc : "-",
			      d->issues[i].code, d->issues[i].msg);
}

static void
valid_files_validate_clean(void **state)
{
	char dir[512], path[1024];
	struct dirent *de;
	DIR *dh;
	int count = 0;

	snprintf(dir, sizeof(dir), "%s/fhir/valid", unit_data_dir());
	dh = opendir(dir);
	assert_non_null(dh);
	while ((de = readdir(dh))) {
		struct arena *a = arena_new(0);
		struct diag d;
		size_t len = strlen(de->d_name);

		if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0) {
			arena_free(a);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		diag_init(&d, a);
		if (validate_file(path, NULL, &d) != CW_OK || d.n) {
			print_issues(de->d_name, &d);
			fail_msg("%s should validate clean", de->d_name);
		}
		count++;
		arena_free(a);
	}
	closedir(dh);
	assert_true(count >= 8);
}

static void
check_invalid(const char *dir, const char *name)
{
	char path[1024];
	const char *got[DIAG_MAX_ISSUES], *want[DIAG_MAX_ISSUES];
	size_t ngot = 0, nwant = 0;
	struct arena *a = arena_new(0);
	char *expect, *type, *line, *save = NULL;
	struct diag d;
	enum cw_err err;
	bool same;

	snprintf(path, sizeof(path), "%s/%s.expect", dir, name);
	expect = slurp(path, NULL);
	assert_non_null(expect);
	snprintf(path, sizeof(path), "%s/%s.type", dir, name);
	type = slurp(path, NULL);
	if (type)
		type[strcspn(type, "\r\n")] = '\0';
	for (line = strtok_r(expect, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		if (*line && nwant < DIAG_MAX_ISSUES)
			want[nwant++] = line;
	snprintf(path, sizeof(path), "%s/%s.json", dir, name);
	diag_init(&d, a);
	err = validate_file(path, type, &d);
	for (size_t i = 0; i < d.n; i++)
		got[ngot++] = arena_printf(a, "%s\t%s",
					   d.issues[i].loc ? d.issues[i].loc : "-",
					   d.issues[i].code);
	qsort(got, ngot, sizeof(got[0]), cmp_str);
	qsort(want, nwant, sizeof(want[0]), cmp_str);
	same = ngot == nwant;
	for (size_t i = 0; same && i < ngot; i++)
		same = strcmp(got[i], want[i]) == 0;
	if (!same || err != CW_EINVALID) {
		print_message("%s: expected\n", name);
		for (size_t i = 0; i < nwant; i++)
			print_message("  %s\n", want[i]);
		print_message("got (err %d)\n", (int)err);
		print_issues(name, &d);
		fail_msg("%s: issues differ", name);
	}
	free(expect);
	free(type);
	arena_free(a);
}

static void
invalid_files_report_all_issues(void **state)
{
	char dir[512];
	struct dirent *de;
	DIR *dh;
	int count = 0;

	snprintf(dir, sizeof(dir), "%s/fhir/invalid", unit_data_dir());
	dh = opendir(dir);
	assert_non_null(dh);
	while ((de = readdir(dh))) {
		size_t len = strlen(de->d_name);
		char name[256];

		if (len < 6 || len >= sizeof(name) ||
		    strcmp(de->d_name + len - 5, ".json") != 0)
			continue;
		memcpy(name, de->d_name, len - 5);
		name[len - 5] = '\0';
		check_invalid(dir, name);
		count++;
	}
	closedir(dh);
	assert_true(count >= 15);
}

static void
parse_json_reports_position(void **state)
{
	struct arena *a = arena_new(0);
	const char *dup = "{\"resourceType\":\"Patient\",\n\"id\":\"a\",\"id\":\"b\"}";
	const char *bad = "{\"resourceType\":\n  \"Patient\",}";
	struct diag d;
	json_t *j = NULL;

	diag_init(&d, a);
	assert_int_equal(fhir_parse_json(dup, strlen(dup), &j, &d), CW_EINVAL);
	assert_null(j);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.issues[0].code, "structure");
	assert_non_null(strstr(d.issues[0].msg, "line 2"));
	diag_init(&d, a);
	assert_int_equal(fhir_parse_json(bad, strlen(bad), &j, &d), CW_EINVAL);
	assert_non_null(strstr(d.issues[0].msg, "line 2"));
	assert_non_null(strstr(d.issues[0].msg, "column"));
	diag_init(&d, a);
	assert_int_equal(fhir_parse_json("{}", 2, &j, &d), CW_OK);
	assert_non_null(j);
	assert_int_equal(fhir_validate(j, NULL, &d), CW_EINVALID);
	assert_string_equal(d.issues[0].code, "required");
	json_decref(j);
	j = json_array();
	diag_init(&d, a);
	assert_int_equal(fhir_validate(j, NULL, &d), CW_EINVALID);
	json_decref(j);
	arena_free(a);
}

/* Many problems: diag keeps its cap, the result is still an error. */
static void
many_problems_are_capped(void **state)
{
	struct arena *a = arena_new(0);
	json_t *res = json_pack("{s:s}", "resourceType", "Patient");
	json_t *names = json_array();
	struct diag d;

	for (int i = 0; i < 500; i++)
		json_array_append_new(names, json_pack("{s:i}", "family", i));
	json_object_set_new(res, "name", names);
	diag_init(&d, a);
	assert_int_equal(fhir_validate(res, "Patient", &d), CW_EINVALID);
	assert_int_equal(d.n, DIAG_MAX_ISSUES);
	assert_true(d.nerrors >= 500);
	assert_string_equal(d.issues[3].loc, "Patient.name[3].family");
	json_decref(res);
	arena_free(a);
}

/* Deep nesting is refused, not followed without bound. */
static void
deep_nesting_is_refused(void **state)
{
	struct arena *a = arena_new(0);
	json_t *res = json_pack("{s:s}", "resourceType", "Questionnaire");
	json_t *cur = res;
	struct diag d;

	json_object_set_new(res, "status", json_string("active"));
	for (int i = 0; i < 500; i++) {
		json_t *item = json_pack("{s:s,s:s}", "linkId", "x", "type", "group");

		json_object_set_new(cur, "item", json_pack("[o]", item));
		cur = item;
	}
	diag_init(&d, a);
	assert_int_equal(fhir_validate(res, NULL, &d), CW_EINVALID);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.issues[0].code, "structure");
	json_decref(res);
	arena_free(a);
}

static void
outcome_lists_issues(void **state)
{
	struct arena *a = arena_new(0);
	struct diag d;
	json_t *oo, *is;

	diag_init(&d, a);
	oo = fhir_outcome(&d);
	assert_string_equal(json_string_value(json_object_get(oo, "resourceType")),
			    "OperationOutcome");
	is = json_array_get(json_object_get(oo, "issue"), 0);
	assert_string_equal(json_string_value(json_object_get(is, "severity")),
			    "information");
	assert_string_equal(json_string_value(json_object_get(is, "diagnostics")),
			    "All OK");
	json_decref(oo);

	diag_add(&d, DIAG_ERROR, "value", "Patient.birthDate", "Not a valid %s", "date");
	diag_add(&d, DIAG_WARNING, "processing", NULL, "careful");
	oo = fhir_outcome(&d);
	assert_int_equal(json_array_size(json_object_get(oo, "issue")), 2);
	is = json_array_get(json_object_get(oo, "issue"), 0);
	assert_string_equal(json_string_value(json_object_get(is, "severity")), "error");
	assert_string_equal(json_string_value(json_object_get(is, "code")), "value");
	assert_string_equal(json_string_value(json_object_get(is, "diagnostics")),
			    "Not a valid date");
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(is, "expression"), 0)),
			    "Patient.birthDate");
	is = json_array_get(json_object_get(oo, "issue"), 1);
	assert_string_equal(json_string_value(json_object_get(is, "severity")), "warning");
	assert_null(json_object_get(is, "expression"));
	json_decref(oo);
	arena_free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_files_validate_clean),
		cmocka_unit_test(invalid_files_report_all_issues),
		cmocka_unit_test(parse_json_reports_position),
		cmocka_unit_test(many_problems_are_capped),
		cmocka_unit_test(deep_nesting_is_refused),
		cmocka_unit_test(outcome_lists_issues),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
