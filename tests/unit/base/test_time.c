/* tests/unit/base/test_time.c: FHIR time values as UTC ranges (base/time.c).
 * Expected values are computed with libc's timegm as an independent oracle. */
#include <time.h>

#include "unit.h"

/* ms since the epoch for a UTC civil time, by timegm. */
static int64_t
utc(int y, int mo, int d, int h, int mi, int s, int ms)
{
	struct tm tm = {0};

	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

static void
parse_ok(const char *s, enum time_kind k, int64_t lo, int64_t hi)
{
	struct time_range r = {0, 0};
	enum cw_err err = time_parse(s, strlen(s), k, &r);

	if (err != CW_OK)
		fail_msg("'%s' (kind %d) should parse", s, (int)k);
	if (r.lo != lo || r.hi != hi)
		fail_msg("'%s': got [%lld, %lld] want [%lld, %lld]", s,
			 (long long)r.lo, (long long)r.hi, (long long)lo,
			 (long long)hi);
}

static void
parse_bad(const char *s, enum time_kind k)
{
	struct time_range r;

	if (time_parse(s, strlen(s), k, &r) != CW_EINVAL)
		fail_msg("'%s' (kind %d) should be rejected", s, (int)k);
}

static void
test_days_from_civil(void **state)
{
	assert_int_equal(time_days_from_civil(1970, 1, 1), 0);
	assert_int_equal(time_days_from_civil(1970, 1, 2), 1);
	assert_int_equal(time_days_from_civil(1969, 12, 31), -1);
	assert_int_equal(time_days_from_civil(2000, 3, 1), 11017);
	assert_int_equal(time_days_from_civil(2000, 2, 29) + 1,
			 time_days_from_civil(2000, 3, 1));
	for (int y = 1900; y < 2100; y += 7)
		assert_int_equal(time_days_from_civil(y, 7, 15) * 86400000LL,
				 utc(y, 7, 15, 0, 0, 0, 0));
	/* year 1: 719162 days before the epoch */
	assert_int_equal(time_days_from_civil(1, 1, 1), -719162);
}

static void
test_partial_dates(void **state)
{
	parse_ok("2020", TIME_DATE, utc(2020, 1, 1, 0, 0, 0, 0),
		 utc(2020, 12, 31, 23, 59, 59, 999));
	parse_ok("2020", TIME_DATETIME, utc(2020, 1, 1, 0, 0, 0, 0),
		 utc(2020, 12, 31, 23, 59, 59, 999));
	parse_ok("2020-02", TIME_DATE, utc(2020, 2, 1, 0, 0, 0, 0),
		 utc(2020, 2, 29, 23, 59, 59, 999));
	parse_ok("2021-02", TIME_DATE, utc(2021, 2, 1, 0, 0, 0, 0),
		 utc(2021, 2, 28, 23, 59, 59, 999));
	parse_ok("2021-12", TIME_SEARCH, utc(2021, 12, 1, 0, 0, 0, 0),
		 utc(2021, 12, 31, 23, 59, 59, 999));
	parse_ok("1999-12-31", TIME_DATE, utc(1999, 12, 31, 0, 0, 0, 0),
		 utc(1999, 12, 31, 23, 59, 59, 999));
	parse_ok("1960-06-15", TIME_DATETIME, utc(1960, 6, 15, 0, 0, 0, 0),
		 utc(1960, 6, 15, 23, 59, 59, 999));
	parse_ok("0001", TIME_DATE, time_days_from_civil(1, 1, 1) * 86400000LL,
		 time_days_from_civil(2, 1, 1) * 86400000LL - 1);
	parse_ok("9999-12-31", TIME_DATE,
		 time_days_from_civil(9999, 12, 31) * 86400000LL,
		 time_days_from_civil(10000, 1, 1) * 86400000LL - 1);
}

static void
test_leap_years(void **state)
{
	parse_ok("2000-02-29", TIME_DATE, utc(2000, 2, 29, 0, 0, 0, 0),
		 utc(2000, 2, 29, 23, 59, 59, 999));
	parse_ok("2024-02-29", TIME_DATE, utc(2024, 2, 29, 0, 0, 0, 0),
		 utc(2024, 2, 29, 23, 59, 59, 999));
	parse_bad("1900-02-29", TIME_DATE);
	parse_bad("2023-02-29", TIME_DATE);
	parse_bad("2100-02-29", TIME_DATE);
	parse_bad("2023-02-30", TIME_DATE);
	parse_bad("2023-04-31", TIME_DATETIME);
	parse_bad("2023-06-31T10:00:00Z", TIME_INSTANT);
	parse_ok("2023-01-31", TIME_DATE, utc(2023, 1, 31, 0, 0, 0, 0),
		 utc(2023, 1, 31, 23, 59, 59, 999));
	parse_ok("2000", TIME_DATE, utc(2000, 1, 1, 0, 0, 0, 0),
		 utc(2000, 12, 31, 23, 59, 59, 999));
	/* a leap year is one day longer */
	{
		struct time_range a, b;

		assert_int_equal(time_parse("2024", 4, TIME_DATE, &a), CW_OK);
		assert_int_equal(time_parse("2023", 4, TIME_DATE, &b), CW_OK);
		assert_int_equal((a.hi - a.lo) - (b.hi - b.lo), 86400000LL);
	}
}

static void
test_datetimes_and_zones(void **state)
{
	parse_ok("2020-03-05T10:11:12Z", TIME_DATETIME,
		 utc(2020, 3, 5, 10, 11, 12, 0), utc(2020, 3, 5, 10, 11, 12, 999));
	parse_ok("2020-03-05T10:11:12+02:00", TIME_DATETIME,
		 utc(2020, 3, 5, 8, 11, 12, 0), utc(2020, 3, 5, 8, 11, 12, 999));
	parse_ok("2020-03-05T10:11:12-05:30", TIME_INSTANT,
		 utc(2020, 3, 5, 15, 41, 12, 0), utc(2020, 3, 5, 15, 41, 12, 999));
	parse_ok("2020-01-01T00:00:00+14:00", TIME_INSTANT,
		 utc(2019, 12, 31, 10, 0, 0, 0), utc(2019, 12, 31, 10, 0, 0, 999));
	parse_ok("2020-12-31T23:00:00-12:00", TIME_INSTANT,
		 utc(2021, 1, 1, 11, 0, 0, 0), utc(2021, 1, 1, 11, 0, 0, 999));
	parse_ok("2020-03-05T10:11:12-00:00", TIME_DATETIME,
		 utc(2020, 3, 5, 10, 11, 12, 0), utc(2020, 3, 5, 10, 11, 12, 999));
	parse_ok("2020-03-05T10:11:12+13:59", TIME_DATETIME,
		 utc(2020, 3, 4, 20, 12, 12, 0), utc(2020, 3, 4, 20, 12, 12, 999));
	parse_bad("2020-03-05T10:11:12+14:01", TIME_DATETIME);
	parse_bad("2020-03-05T10:11:12+15:00", TIME_DATETIME);
	parse_bad("2020-03-05T10:11:12+0200", TIME_DATETIME);
	parse_bad("2020-03-05T10:11:12+02", TIME_DATETIME);
	parse_bad("2020-03-05T10:11:12z", TIME_DATETIME);
	parse_bad("2020-03-05T10:11:12+02:60", TIME_DATETIME);
}

static void
test_fractions(void **state)
{
	parse_ok("2020-03-05T10:11:12.5Z", TIME_INSTANT,
		 utc(2020, 3, 5, 10, 11, 12, 500), utc(2020, 3, 5, 10, 11, 12, 599));
	parse_ok("2020-03-05T10:11:12.25Z", TIME_INSTANT,
		 utc(2020, 3, 5, 10, 11, 12, 250), utc(2020, 3, 5, 10, 11, 12, 259));
	parse_ok("2020-03-05T10:11:12.123Z", TIME_INSTANT,
		 utc(2020, 3, 5, 10, 11, 12, 123), utc(2020, 3, 5, 10, 11, 12, 123));
	parse_ok("2020-03-05T10:11:12.123456789Z", TIME_DATETIME,
		 utc(2020, 3, 5, 10, 11, 12, 123), utc(2020, 3, 5, 10, 11, 12, 123));
	parse_ok("2020-03-05T10:11:12.000+01:00", TIME_DATETIME,
		 utc(2020, 3, 5, 9, 11, 12, 0), utc(2020, 3, 5, 9, 11, 12, 0));
	parse_bad("2020-03-05T10:11:12.Z", TIME_INSTANT);
	parse_bad("2020-03-05T10:11:12.1234567890Z", TIME_INSTANT);
	parse_bad("2020-03-05T10:11:12,5Z", TIME_INSTANT);
}

static void
test_instant_strict(void **state)
{
	parse_bad("2020", TIME_INSTANT);
	parse_bad("2020-03-05", TIME_INSTANT);
	parse_bad("2020-03-05T10:11Z", TIME_INSTANT);
	parse_bad("2020-03-05T10:11:12", TIME_INSTANT);
	parse_ok("2020-03-05T10:11:12Z", TIME_INSTANT,
		 utc(2020, 3, 5, 10, 11, 12, 0), utc(2020, 3, 5, 10, 11, 12, 999));
}

static void
test_bad_shapes(void **state)
{
	static const char *bad[] = {
		"", "0000", "202", "20201", "2020-1", "2020-13", "2020-00",
		"2020-01-00", "2020-01-32", "2020-01-1", "2020/01/01", " 2020",
		"2020 ", "2020-01-01T", "2020-01-01T24:00:00Z",
		"2020-01-01T23:60:00Z", "2020-01-01T23:59:61Z", "2020-01-01T1:00:00Z",
		"2020-01T10:00:00Z", "2020T10:00:00Z", "2020-01-01t10:00:00Z",
		"2020-01-01 10:00:00Z", "2020-01-01T10:00:00ZZ", "-2020",
		"+2020", "２０２０", "2020-01-01Z", "abcd",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		parse_bad(bad[i], TIME_DATE);
		parse_bad(bad[i], TIME_DATETIME);
		parse_bad(bad[i], TIME_INSTANT);
		parse_bad(bad[i], TIME_SEARCH);
	}
	/* dates never carry a time */
	parse_bad("2020-01-01T10:00:00Z", TIME_DATE);
	/* dateTime: time needs seconds and a zone */
	parse_bad("2020-01-01T10:00Z", TIME_DATETIME);
	parse_bad("2020-01-01T10:00:00", TIME_DATETIME);
	/* length is honoured: no reading past n */
	{
		struct time_range r;

		assert_int_equal(time_parse("2020-01-01", 4, TIME_DATE, &r), CW_OK);
		assert_int_equal(r.lo, utc(2020, 1, 1, 0, 0, 0, 0));
		assert_int_equal(time_parse("2020-01-01", 7, TIME_DATE, &r), CW_OK);
		assert_int_equal(r.hi, utc(2020, 1, 31, 23, 59, 59, 999));
		assert_int_equal(time_parse(NULL, 0, TIME_DATE, &r), CW_EINVAL);
	}
}

static void
test_search(void **state)
{
	parse_ok("2020-03-05T10:00", TIME_SEARCH, utc(2020, 3, 5, 10, 0, 0, 0),
		 utc(2020, 3, 5, 10, 0, 59, 999));
	parse_ok("2020-03-05T10:00Z", TIME_SEARCH, utc(2020, 3, 5, 10, 0, 0, 0),
		 utc(2020, 3, 5, 10, 0, 59, 999));
	parse_ok("2020-03-05T10:00+01:00", TIME_SEARCH,
		 utc(2020, 3, 5, 9, 0, 0, 0), utc(2020, 3, 5, 9, 0, 59, 999));
	parse_ok("2020-03-05T10:00:30", TIME_SEARCH,
		 utc(2020, 3, 5, 10, 0, 30, 0), utc(2020, 3, 5, 10, 0, 30, 999));
	parse_ok("2020-03-05T10:00:30.1", TIME_SEARCH,
		 utc(2020, 3, 5, 10, 0, 30, 100), utc(2020, 3, 5, 10, 0, 30, 199));
	parse_ok("2020", TIME_SEARCH, utc(2020, 1, 1, 0, 0, 0, 0),
		 utc(2020, 12, 31, 23, 59, 59, 999));
	parse_bad("2020-03-05T10", TIME_SEARCH);
	parse_bad("2020-03-05T24:00", TIME_SEARCH);
	parse_bad("2020-03-05T10:00+1", TIME_SEARCH);
}

static void
test_leap_second(void **state)
{
	/* The regex allows :60; it reads as the next second. */
	parse_ok("2016-12-31T23:59:60Z", TIME_INSTANT,
		 utc(2017, 1, 1, 0, 0, 0, 0), utc(2017, 1, 1, 0, 0, 0, 999));
}

static void
test_valid_time(void **state)
{
	assert_true(time_is_valid_time("10:11:12", 8));
	assert_true(time_is_valid_time("00:00:00", 8));
	assert_true(time_is_valid_time("23:59:59.999", 12));
	assert_true(time_is_valid_time("23:59:60", 8));
	assert_false(time_is_valid_time("24:00:00", 8));
	assert_false(time_is_valid_time("10:11", 5));
	assert_false(time_is_valid_time("10:60:00", 8));
	assert_false(time_is_valid_time("10:11:12Z", 9));
	assert_false(time_is_valid_time("10:11:12.", 9));
	assert_false(time_is_valid_time("1:11:12", 7));
	assert_false(time_is_valid_time("", 0));
	assert_false(time_is_valid_time(NULL, 0));
}

static void
test_format(void **state)
{
	char buf[40];

	time_format_instant(0, buf);
	assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
	time_format_instant(utc(2026, 11, 23, 17, 50, 0, 123), buf);
	assert_string_equal(buf, "2026-11-23T17:50:00.123Z");
	time_format_instant(-1, buf);
	assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
	time_format_instant(utc(2024, 2, 29, 12, 0, 0, 0), buf);
	assert_string_equal(buf, "2024-02-29T12:00:00.000Z");
	time_format_http(utc(2026, 11, 23, 17, 50, 0, 999), buf);
	assert_string_equal(buf, "Mon, 23 Nov 2026 17:50:00 GMT");
	time_format_http(0, buf);
	assert_string_equal(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
	time_format_http(utc(1969, 12, 28, 1, 2, 3, 0), buf);
	assert_string_equal(buf, "Sun, 28 Dec 1969 01:02:03 GMT");

	/* round trip: format then parse gives the same ms */
	for (int64_t ms = -5000000000000LL; ms < 5000000000000LL;
	     ms += 123456789013LL) {
		struct time_range r;

		time_format_instant(ms, buf);
		assert_int_equal(time_parse(buf, strlen(buf), TIME_INSTANT, &r), CW_OK);
		assert_int_equal(r.lo, ms);
		assert_int_equal(r.hi, ms);
	}
}

static void
test_now(void **state)
{
	int64_t a = time_now_ms(), b = (int64_t)time(NULL) * 1000;

	assert_true(a > 1600000000000LL);
	assert_true(a - b < 2000 && b - a < 2000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_days_from_civil),
		cmocka_unit_test(test_partial_dates),
		cmocka_unit_test(test_leap_years),
		cmocka_unit_test(test_datetimes_and_zones),
		cmocka_unit_test(test_fractions),
		cmocka_unit_test(test_instant_strict),
		cmocka_unit_test(test_bad_shapes),
		cmocka_unit_test(test_search),
		cmocka_unit_test(test_leap_second),
		cmocka_unit_test(test_valid_time),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_now),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
