/* tests/unit/access/test_totp.c: SHA-1, HMAC-SHA1, HOTP and TOTP of totp.c
 * against the published vectors: RFC 3174's four SHA-1 tests, the seven
 * HMAC-SHA1 cases of RFC 2202, RFC 4226's HOTP values (Appendix D), RFC
 * 6238's SHA-1 rows of Appendix B (8 digits there), RFC 4648's base32;
 * then which codes access_totp_verify takes (the window, replays, input
 * that is not six digits). */
#include "unit.h"

#include "access/access.h"

/* Lower-case hex of n bytes into out (2n + 1). */
static const char *
hex(const unsigned char *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
	return out;
}

static void
test_sha1(void **state)
{
	static const char *const want[] = {
		"a9993e364706816aba3e25717850c26c9cd0d89d",
		"84983e441c3bd26ebaae4aa1f95129e5e54670f1",
		"34aa973cd4c4daa4f61eeb2bdbad27316534016f",
		"dea356a2cddd90c7a7ecedc5ebb563934f460452",
	};
	static const char t4[] =
		"0123456701234567012345670123456701234567012345670123456701234567";
	unsigned char md[ACCESS_SHA1_LEN];
	char h[41], *buf;

	access_sha1("abc", 3, md);
	assert_string_equal(hex(md, sizeof(md), h), want[0]);
	access_sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, md);
	assert_string_equal(hex(md, sizeof(md), h), want[1]);
	buf = malloc(1000000);
	assert_non_null(buf);
	memset(buf, 'a', 1000000);
	access_sha1(buf, 1000000, md);
	assert_string_equal(hex(md, sizeof(md), h), want[2]);
	for (int i = 0; i < 10; i++)
		memcpy(buf + 64 * i, t4, 64);
	access_sha1(buf, 640, md);
	assert_string_equal(hex(md, sizeof(md), h), want[3]);
	free(buf);
	/* the empty message, and lengths around the padding boundary */
	access_sha1("", 0, md);
	assert_string_equal(hex(md, sizeof(md), h),
			    "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

static void
test_hmac_sha1(void **state)
{
	static const struct {
		unsigned char kb;   /* key byte, repeated kn times (0: 1..25) */
		size_t kn;
		const char *key;    /* or this text */
		unsigned char db;   /* data byte, repeated dn times */
		size_t dn;
		const char *data;   /* or this text */
		const char *mac;
	} cases[] = {
		{0x0b, 20, NULL, 0, 0, "Hi There",
		 "b617318655057264e28bc0b6fb378c8ef146be00"},
		{0, 0, "Jefe", 0, 0, "what do ya want for nothing?",
		 "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"},
		{0xaa, 20, NULL, 0xdd, 50, NULL,
		 "125d7342b9ac11cd91a39af48aa17b4f63f175d3"},
		{0, 25, NULL, 0xcd, 50, NULL,
		 "4c9007f4026250c6bc8414f9bf50c86c2d7235da"},
		{0x0c, 20, NULL, 0, 0, "Test With Truncation",
		 "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"},
		{0xaa, 80, NULL, 0, 0,
		 "Test Using Larger Than Block-Size Key - Hash Key First",
		 "aa4ae5e15272d00e95705637ce8a3b55ed402112"},
		{0xaa, 80, NULL, 0, 0,
		 "Test Using Larger Than Block-Size Key and Larger Than One "
		 "Block-Size Data",
		 "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"},
	};
	unsigned char key[80], data[50], mac[ACCESS_SHA1_LEN];
	char h[41];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const void *k = key, *m = data;
		size_t kn = cases[i].kn, dn = cases[i].dn;

		if (cases[i].key) {
			k = cases[i].key;
			kn = strlen(cases[i].key);
		} else if (cases[i].kb) {
			memset(key, cases[i].kb, kn);
		} else {
			for (size_t j = 0; j < kn; j++)
				key[j] = (unsigned char)(j + 1);
		}
		if (cases[i].data) {
			m = cases[i].data;
			dn = strlen(cases[i].data);
		} else {
			memset(data, cases[i].db, dn);
		}
		access_hmac_sha1(k, kn, m, dn, mac);
		assert_string_equal(hex(mac, sizeof(mac), h), cases[i].mac);
	}
}

static const char rfc_key[] = "12345678901234567890";

static void
test_hotp(void **state)
{
	static const uint32_t want[] = {755224, 287082, 359152, 969429, 338314,
					254676, 287922, 162583, 399871, 520489};

	for (uint64_t c = 0; c < 10; c++)
		assert_int_equal(access_hotp(rfc_key, 20, c, 6), want[c]);
}

static void
test_totp_rfc6238(void **state)
{
	static const struct {
		int64_t t;     /* seconds */
		uint32_t code; /* 8 digits */
	} rows[] = {
		{59, 94287082},
		{1111111109, 7081804},
		{1111111111, 14050471},
		{1234567890, 89005924},
		{2000000000, 69279037},
		{20000000000, 65353130},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int64_t step = access_totp_step(rows[i].t * 1000);

		assert_int_equal(step, rows[i].t / 30);
		assert_int_equal(access_hotp(rfc_key, 20, (uint64_t)step, 8), rows[i].code);
		/* the 6 digits we issue are the last 6 of those */
		assert_int_equal(access_hotp(rfc_key, 20, (uint64_t)step, 6),
				 rows[i].code % 1000000);
	}
}

static void
test_base32(void **state)
{
	static const char *const want[] = {"", "MY", "MZXQ", "MZXW6", "MZXW6YQ",
					   "MZXW6YTB", "MZXW6YTBOI"};
	char out[64];

	for (size_t n = 0; n <= 6; n++) {
		access_base32((const unsigned char *)"foobar", n, out);
		assert_string_equal(out, want[n]);
	}
	access_base32((const unsigned char *)rfc_key, 20, out);
	assert_string_equal(out, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
	assert_int_equal(strlen(out), ACCESS_TOTP_B32);
}

static void
test_verify(void **state)
{
	const unsigned char *key = (const unsigned char *)rfc_key;
	int64_t now = 1111111111LL * 1000, s = access_totp_step(now), got = 0;
	char code[16];

	for (int64_t d = -3; d <= 3; d++) {
		snprintf(code, sizeof(code), "%06u",
			 (unsigned)access_hotp(key, 20, (uint64_t)(s + d), 6));
		got = 0;
		assert_int_equal(access_totp_verify(key, code, now, 0, &got),
				 d >= -1 && d <= 1);
		if (d >= -1 && d <= 1)
			assert_int_equal(got, s + d);
		/* a step at or before the last accepted one is a replay */
		assert_false(access_totp_verify(key, code, now, s + d, &got));
	}
	snprintf(code, sizeof(code), "%06u", (unsigned)access_hotp(key, 20, (uint64_t)s, 6));
	assert_true(access_totp_verify(key, code, now, s - 1, &got));
	/* not six digits */
	assert_false(access_totp_verify(key, NULL, now, 0, &got));
	assert_false(access_totp_verify(key, "", now, 0, &got));
	code[5] = '\0';
	assert_false(access_totp_verify(key, code, now, 0, &got));
	snprintf(code, sizeof(code), " %06u", (unsigned)access_hotp(key, 20, (uint64_t)s, 6));
	assert_false(access_totp_verify(key, code, now, 0, &got));
	assert_false(access_totp_verify(key, "05O471", now, 0, &got));
	assert_false(access_totp_verify(key, "-50471", now, 0, &got));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha1),
		cmocka_unit_test(test_hmac_sha1),
		cmocka_unit_test(test_hotp),
		cmocka_unit_test(test_totp_rfc6238),
		cmocka_unit_test(test_base32),
		cmocka_unit_test(test_verify),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
