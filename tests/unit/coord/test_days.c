/* tests/unit/coord/test_days.c: business days (coord_business_days) with
 * and without a holiday list, and the list's reader (coord_holidays_parse):
 * comments, blank lines, repeats, and every bad line named with its number
 * while the list in use stays as it was; and the days of a clinic's time
 * zone. Run from the repository root (make unit): it reads
 * data/holidays/us-federal.txt and the system's zone database. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "unit.h"

#include "coord/coord.h"
#include "coord/coord_int.h"
#include "cli/cli.h"

static int64_t
at(const char *instant)
{
	struct time_range tr;

	assert_int_equal(time_parse(instant, strlen(instant), TIME_INSTANT, &tr), CW_OK);
	return tr.lo;
}

static void
assert_instant(int64_t ms, const char *want)
{
	char got[32];

	time_format_instant(ms, got);
	assert_string_equal(got, want);
}

static void
test_weekends_only(void **state)
{
	/* Friday noon + 2: Monday, Tuesday */
	assert_instant(coord_business_days(NULL, at("2026-11-20T12:00:00Z"), 2),
		       "2026-11-24T12:00:00.000Z");
	/* Saturday + 1: Monday */
	assert_instant(coord_business_days(NULL, at("2026-11-21T09:30:00Z"), 1),
		       "2026-11-23T09:30:00.000Z");
}

static void
test_us_federal(void **state)
{
	struct coord *co = coord_new(NULL);
	struct arena *a = arena_new(0);
	struct diag d;
	size_t n;
	int e;
	char *text = cli_read_file("data/holidays/us-federal.txt", 1u << 20, &n, &e);

	assert_non_null(co);
	assert_non_null(text);
	diag_init(&d, a);
	assert_int_equal(coord_holidays_parse(co, text, n, "us-federal.txt", &d), CW_OK);
	assert_int_equal(coord_holidays(co), 66);
	/* the day before Thanksgiving 2026: Thursday is off, Friday and Monday count */
	assert_instant(coord_business_days(co, at("2026-11-25T15:00:00Z"), 2),
		       "2026-11-30T15:00:00.000Z");
	/* Christmas 2027 on a Saturday is kept on Friday the 24th, New Year's
	 * Day 2028 on Friday the 31st: Thursday 23rd + 2 is Tuesday 28th */
	assert_instant(coord_business_days(co, at("2027-12-23T08:00:00Z"), 2),
		       "2027-12-28T08:00:00.000Z");
	assert_instant(coord_business_days(co, at("2027-12-28T08:00:00Z"), 3),
		       "2028-01-03T08:00:00.000Z"); /* Friday 31st is off */
	free(text);
	arena_free(a);
	coord_free(co);
}

static void
test_reader(void **state)
{
	static const char good[] = "# our days\n\n 2026-12-24 # Christmas Eve\r\n2026-12-24\n"
				   "2026-12-31\t\n";
	static const char bad[] = "2026-12-24\n2026-13-01\n24.12.2026\n2026-12\n";
	struct coord *co = coord_new(NULL);
	struct arena *a = arena_new(0);
	struct diag d;

	diag_init(&d, a);
	assert_int_equal(coord_holidays_parse(co, good, sizeof(good) - 1, "ours", &d), CW_OK);
	assert_int_equal(coord_holidays(co), 2); /* the repeat counted once */
	assert_instant(coord_business_days(co, at("2026-12-23T10:00:00Z"), 1),
		       "2026-12-25T10:00:00.000Z");

	assert_int_equal(coord_holidays_parse(co, bad, sizeof(bad) - 1, "ours", &d), CW_EINVALID);
	assert_int_equal(d.nerrors, 3);
	assert_string_equal(d.issues[0].msg, "ours:2: '2026-13-01' is not a date YYYY-MM-DD");
	assert_string_equal(d.issues[1].msg, "ours:3: '24.12.2026' is not a date YYYY-MM-DD");
	assert_string_equal(d.issues[2].msg, "ours:4: '2026-12' is not a date YYYY-MM-DD");
	assert_int_equal(coord_holidays(co), 2); /* the list in use is kept */

	diag_init(&d, a);
	assert_int_equal(coord_holidays_parse(co, "", 0, "empty", &d), CW_OK);
	assert_int_equal(coord_holidays(co), 0);
	arena_free(a);
	coord_free(co);
}

static void
test_clinic_days(void **state)
{
	struct coord *co = coord_new(NULL);
	struct arena *a = arena_new(0);
	struct diag d;

	assert_int_equal(coord_set_timezone(co, "../etc/passwd"), CW_EINVAL);
	assert_int_equal(coord_set_timezone(co, "Mars/Olympus_Mons"), CW_EINVAL);
	assert_int_equal(coord_set_timezone(co, "America/Los_Angeles"), CW_OK);
	/* Friday 23:30 in Los Angeles is Saturday 07:30 UTC: the clinic's
	 * Monday and Tuesday count, not UTC's Monday and Tuesday */
	assert_instant(coord_business_days(co, at("2026-11-21T07:30:00Z"), 2),
		       "2026-11-25T07:30:00.000Z");
	assert_instant(coord_business_days(NULL, at("2026-11-21T07:30:00Z"), 2),
		       "2026-11-24T07:30:00.000Z");
	/* a holiday is the clinic's date: Wednesday evening before
	 * Thanksgiving there is Thursday in UTC */
	diag_init(&d, a);
	assert_int_equal(coord_holidays_parse(co, "2026-11-26\n", 11, "t", &d), CW_OK);
	assert_instant(coord_business_days(co, at("2026-11-26T03:00:00Z"), 1),
		       "2026-11-28T03:00:00.000Z"); /* Friday 19:00 there */
	arena_free(a);
	coord_free(co);
	unsetenv("TZ");
	tzset();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_weekends_only),
		cmocka_unit_test(test_us_federal),
		cmocka_unit_test(test_reader),
		cmocka_unit_test(test_clinic_days),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
