/* base/time.c: FHIR date, dateTime and instant values as UTC ranges.
 *
 * Search compares ranges: a stored "2020" covers the whole year, a query
 * "ge2020-03" starts at March 1st. So every parsed value becomes [lo, hi]
 * in milliseconds since the epoch, both ends inclusive, widened to the
 * precision the value was written with and shifted to UTC by its zone.
 *
 * The parser is a hand-written matcher for the FHIR R4 regular expressions
 * (one pass, no backtracking, no locale) plus a calendar check the regexes
 * cannot express (2023-02-30). Calendar math is Howard Hinnant's
 * days_from_civil / civil_from_days, so no libc time tables are involved and
 * years 1..9999 work the same on every platform. */
#include <stdio.h>
#include <time.h>

#include "base/base.h"

#define MS_PER_SEC 1000LL
#define MS_PER_MIN (60LL * MS_PER_SEC)
#define MS_PER_HOUR (60LL * MS_PER_MIN)
#define MS_PER_DAY (24LL * MS_PER_HOUR)

int64_t
time_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (int64_t)(m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static bool
is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned
days_in_month(int64_t y, unsigned m)
{
	static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30,
					      31, 31, 30, 31, 30, 31};

	if (m == 2 && is_leap(y))
		return 29;
	return dim[m - 1];
}

/* A cursor over the text being matched. */
struct tp {
	const char *s;
	size_t n;
	size_t i;
};

static bool
tp_more(const struct tp *t)
{
	return t->i < t->n;
}

static bool
tp_is(const struct tp *t, char c)
{
	return t->i < t->n && t->s[t->i] == c;
}

/* Exactly k digits into *v. */
static bool
tp_digits(struct tp *t, unsigned k, unsigned *v)
{
	unsigned x = 0;

	if (t->n - t->i < k)
		return false;
	for (unsigned j = 0; j < k; j++) {
		char c = t->s[t->i + j];

		if (c < '0' || c > '9')
			return false;
		x = x * 10 + (unsigned)(c - '0');
	}
	t->i += k;
	*v = x;
	return true;
}

/* hh:mm[:ss[.f{1,9}]] after the 'T'. need_sec: seconds are mandatory.
 * Sets *ms (offset into the day) and *width (precision - 1). */
static bool
tp_time(struct tp *t, bool need_sec, int64_t *ms, int64_t *width)
{
	unsigned hh, mm, ss = 0, frac = 0, nfrac = 0;

	if (!tp_digits(t, 2, &hh) || hh > 23 || !tp_is(t, ':'))
		return false;
	t->i++;
	if (!tp_digits(t, 2, &mm) || mm > 59)
		return false;
	*width = MS_PER_MIN - 1;
	if (tp_is(t, ':')) {
		t->i++;
		if (!tp_digits(t, 2, &ss) || ss > 60)
			return false;
		*width = MS_PER_SEC - 1;
		if (tp_is(t, '.')) {
			t->i++;
			while (tp_more(t) && t->s[t->i] >= '0' && t->s[t->i] <= '9') {
				if (nfrac < 3)
					frac = frac * 10 + (unsigned)(t->s[t->i] - '0');
				nfrac++;
				t->i++;
			}
			if (nfrac < 1 || nfrac > 9)
				return false;
			/* .5 covers .500 to .599; beyond ms the value is one ms. */
			if (nfrac == 1) {
				frac *= 100;
				*width = 99;
			} else if (nfrac == 2) {
				frac *= 10;
				*width = 9;
			} else {
				*width = 0;
			}
		}
	} else if (need_sec) {
		return false;
	}
	*ms = hh * MS_PER_HOUR + mm * MS_PER_MIN + ss * MS_PER_SEC + frac;
	return true;
}

/* Z | (+|-)hh:mm with hh:mm in 00:00..13:59 or 14:00. *off in ms. */
static bool
tp_zone(struct tp *t, int64_t *off)
{
	unsigned hh, mm;
	int sign;

	if (tp_is(t, 'Z')) {
		t->i++;
		*off = 0;
		return true;
	}
	if (tp_is(t, '+'))
		sign = 1;
	else if (tp_is(t, '-'))
		sign = -1;
	else
		return false;
	t->i++;
	if (!tp_digits(t, 2, &hh) || !tp_is(t, ':'))
		return false;
	t->i++;
	if (!tp_digits(t, 2, &mm) || mm > 59)
		return false;
	if (hh > 14 || (hh == 14 && mm != 0))
		return false;
	*off = sign * (int64_t)(hh * MS_PER_HOUR + mm * MS_PER_MIN);
	return true;
}

enum cw_err
time_parse(const char *s, size_t n, enum time_kind kind, struct time_range *out)
{
	struct tp t = {s, n, 0};
	unsigned y, m = 0, d = 0;
	int64_t days, lo, hi, ms = 0, width = 0, off = 0;
	bool has_time = false;

	if (!s)
		return CW_EINVAL;
	if (!tp_digits(&t, 4, &y) || y == 0)
		return CW_EINVAL;
	if (tp_is(&t, '-')) {
		t.i++;
		if (!tp_digits(&t, 2, &m) || m < 1 || m > 12)
			return CW_EINVAL;
		if (tp_is(&t, '-')) {
			t.i++;
			if (!tp_digits(&t, 2, &d) || d < 1 || d > days_in_month(y, m))
				return CW_EINVAL;
		}
	}
	if (tp_is(&t, 'T')) {
		if (kind == TIME_DATE || d == 0)
			return CW_EINVAL;
		t.i++;
		if (!tp_time(&t, kind != TIME_SEARCH, &ms, &width))
			return CW_EINVAL;
		has_time = true;
		if (tp_more(&t)) {
			if (!tp_zone(&t, &off))
				return CW_EINVAL;
		} else if (kind != TIME_SEARCH) {
			return CW_EINVAL; /* a time needs a zone outside search */
		}
	}
	if (tp_more(&t))
		return CW_EINVAL;
	if (kind == TIME_INSTANT && !has_time)
		return CW_EINVAL;

	if (d) {
		days = time_days_from_civil(y, m, d);
		lo = days * MS_PER_DAY;
		if (has_time) {
			lo += ms - off;
			hi = lo + width;
		} else {
			hi = lo + MS_PER_DAY - 1;
		}
	} else if (m) {
		lo = time_days_from_civil(y, m, 1) * MS_PER_DAY;
		hi = lo + days_in_month(y, m) * MS_PER_DAY - 1;
	} else {
		lo = time_days_from_civil(y, 1, 1) * MS_PER_DAY;
		hi = time_days_from_civil((int64_t)y + 1, 1, 1) * MS_PER_DAY - 1;
	}
	if (out) {
		out->lo = lo;
		out->hi = hi;
	}
	return CW_OK;
}

bool
time_is_valid_time(const char *s, size_t n)
{
	struct tp t = {s, n, 0};
	int64_t ms, width;

	if (!s)
		return false;
	return tp_time(&t, true, &ms, &width) && !tp_more(&t);
}

int64_t
time_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * MS_PER_SEC + ts.tv_nsec / 1000000;
}

/* Splits ms into a civil date and the time of day, flooring negatives. */
static void
split_ms(int64_t ms, int64_t *y, unsigned *mo, unsigned *d, unsigned *hh,
	 unsigned *mi, unsigned *ss, unsigned *milli, int64_t *days_out)
{
	int64_t days = ms / MS_PER_DAY, rem = ms % MS_PER_DAY;

	if (rem < 0) {
		rem += MS_PER_DAY;
		days--;
	}
	civil_from_days(days, y, mo, d);
	*hh = (unsigned)(rem / MS_PER_HOUR);
	*mi = (unsigned)(rem / MS_PER_MIN % 60);
	*ss = (unsigned)(rem / MS_PER_SEC % 60);
	*milli = (unsigned)(rem % MS_PER_SEC);
	if (days_out)
		*days_out = days;
}

void
time_format_instant(int64_t ms, char out[32])
{
	int64_t y;
	unsigned mo, d, hh, mi, ss, milli;

	split_ms(ms, &y, &mo, &d, &hh, &mi, &ss, &milli, NULL);
	if (y < 0 || y > 9999) {
		snprintf(out, 32, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ", (long long)y,
			 mo, d, hh, mi, ss, milli);
		return;
	}
	/* by hand: every stored version and audit record formats one, and
	 * snprintf cost ten times this */
	out[0] = (char)('0' + y / 1000);
	out[1] = (char)('0' + y / 100 % 10);
	out[2] = (char)('0' + y / 10 % 10);
	out[3] = (char)('0' + y % 10);
	out[4] = '-';
	out[5] = (char)('0' + mo / 10);
	out[6] = (char)('0' + mo % 10);
	out[7] = '-';
	out[8] = (char)('0' + d / 10);
	out[9] = (char)('0' + d % 10);
	out[10] = 'T';
	out[11] = (char)('0' + hh / 10);
	out[12] = (char)('0' + hh % 10);
	out[13] = ':';
	out[14] = (char)('0' + mi / 10);
	out[15] = (char)('0' + mi % 10);
	out[16] = ':';
	out[17] = (char)('0' + ss / 10);
	out[18] = (char)('0' + ss % 10);
	out[19] = '.';
	out[20] = (char)('0' + milli / 100);
	out[21] = (char)('0' + milli / 10 % 10);
	out[22] = (char)('0' + milli % 10);
	out[23] = 'Z';
	out[24] = '\0';
}

void
time_format_http(int64_t ms, char out[40])
{
	static const char wday[7][4] = {"Thu", "Fri", "Sat", "Sun",
					"Mon", "Tue", "Wed"};
	static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	int64_t y, days, wd;
	unsigned mo, d, hh, mi, ss, milli;

	split_ms(ms, &y, &mo, &d, &hh, &mi, &ss, &milli, &days);
	wd = days % 7; /* 1970-01-01 was a Thursday */
	if (wd < 0)
		wd += 7;
	snprintf(out, 40, "%s, %02u %s %04lld %02u:%02u:%02u GMT", wday[wd], d,
		 mon[mo - 1], (long long)y, hh, mi, ss);
}
