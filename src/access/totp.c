/* access/totp.c: one-time codes (TOTP, RFC 6238) as a second factor.
 *
 * Authenticator apps compute HMAC-SHA1 codes, and libsodium has no SHA-1,
 * so this file carries its own: SHA-1 as RFC 3174 describes it (one
 * streaming context, 64-byte blocks, 80 rounds), HMAC as RFC 2104 puts it
 * together, HOTP's dynamic truncation (RFC 4226) and the 30-second time
 * step of RFC 6238. SHA-1's collision weakness does not matter here: HMAC
 * only needs the compression function to be a PRF. Secrets are 20 random
 * bytes, shown once to the operator as base32 and as an otpauth:// URI and
 * stored in the users table (store_user_set_totp). Which codes are
 * accepted (a step either side of now, never a step at or before the last
 * one accepted) is decided here; access_login asks. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "access/access_int.h"

/* ---- SHA-1 (RFC 3174) ---------------------------------------------------- */

struct sha1 {
	uint32_t h[5];
	uint64_t bytes;          /* message length so far */
	unsigned char blk[64];   /* the block being filled */
	size_t k;                /* bytes in blk */
};

static uint32_t
rotl(uint32_t x, unsigned n)
{
	return (x << n) | (x >> (32 - n));
}

static void
sha1_init(struct sha1 *c)
{
	c->h[0] = 0x67452301u;
	c->h[1] = 0xEFCDAB89u;
	c->h[2] = 0x98BADCFEu;
	c->h[3] = 0x10325476u;
	c->h[4] = 0xC3D2E1F0u;
	c->bytes = 0;
	c->k = 0;
}

/* Processes one 64-byte block (RFC 3174 section 6.1). */
static void
sha1_block(struct sha1 *c, const unsigned char *p)
{
	uint32_t w[80], a, b, d, e, f, k, t, cc;

	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	a = c->h[0];
	b = c->h[1];
	cc = c->h[2];
	d = c->h[3];
	e = c->h[4];
	for (int i = 0; i < 80; i++) {
		if (i < 20) {
			f = (b & cc) | (~b & d);
			k = 0x5A827999u;
		} else if (i < 40) {
			f = b ^ cc ^ d;
			k = 0x6ED9EBA1u;
		} else if (i < 60) {
			f = (b & cc) | (b & d) | (cc & d);
			k = 0x8F1BBCDCu;
		} else {
			f = b ^ cc ^ d;
			k = 0xCA62C1D6u;
		}
		t = rotl(a, 5) + f + e + w[i] + k;
		e = d;
		d = cc;
		cc = rotl(b, 30);
		b = a;
		a = t;
	}
	c->h[0] += a;
	c->h[1] += b;
	c->h[2] += cc;
	c->h[3] += d;
	c->h[4] += e;
	sodium_memzero(w, sizeof(w));
}

static void
sha1_update(struct sha1 *c, const void *data, size_t n)
{
	const unsigned char *p = data;

	c->bytes += n;
	while (n) {
		size_t take = 64 - c->k < n ? 64 - c->k : n;

		memcpy(c->blk + c->k, p, take);
		c->k += take;
		p += take;
		n -= take;
		if (c->k == 64) {
			sha1_block(c, c->blk);
			c->k = 0;
		}
	}
}

/* Pads (0x80, zeros, the length in bits as 64 bits big-endian) and writes
 * the digest. Wipes the context. */
static void
sha1_final(struct sha1 *c, unsigned char out[ACCESS_SHA1_LEN])
{
	static const unsigned char zeros[64] = {0x80};
	uint64_t bits = c->bytes * 8;
	unsigned char len[8];

	for (int i = 0; i < 8; i++)
		len[i] = (unsigned char)(bits >> (56 - 8 * i));
	sha1_update(c, zeros, c->k < 56 ? 56 - c->k : 120 - c->k);
	sha1_update(c, len, 8);
	for (int i = 0; i < 5; i++) {
		out[4 * i] = (unsigned char)(c->h[i] >> 24);
		out[4 * i + 1] = (unsigned char)(c->h[i] >> 16);
		out[4 * i + 2] = (unsigned char)(c->h[i] >> 8);
		out[4 * i + 3] = (unsigned char)c->h[i];
	}
	sodium_memzero(c, sizeof(*c));
}

void
access_sha1(const void *msg, size_t n, unsigned char out[ACCESS_SHA1_LEN])
{
	struct sha1 c;

	sha1_init(&c);
	sha1_update(&c, msg, n);
	sha1_final(&c, out);
}

/* ---- HMAC-SHA1 (RFC 2104) ------------------------------------------------- */

void
access_hmac_sha1(const void *key, size_t kn, const void *msg, size_t n,
		 unsigned char out[ACCESS_SHA1_LEN])
{
	unsigned char k[64] = {0}, pad[64], inner[ACCESS_SHA1_LEN];
	struct sha1 c;

	if (kn > sizeof(k))
		access_sha1(key, kn, k); /* a long key is hashed first */
	else if (kn)
		memcpy(k, key, kn);
	for (size_t i = 0; i < sizeof(k); i++)
		pad[i] = k[i] ^ 0x36;
	sha1_init(&c);
	sha1_update(&c, pad, sizeof(pad));
	sha1_update(&c, msg, n);
	sha1_final(&c, inner);
	for (size_t i = 0; i < sizeof(k); i++)
		pad[i] = k[i] ^ 0x5c;
	sha1_init(&c);
	sha1_update(&c, pad, sizeof(pad));
	sha1_update(&c, inner, sizeof(inner));
	sha1_final(&c, out);
	sodium_memzero(k, sizeof(k));
	sodium_memzero(pad, sizeof(pad));
	sodium_memzero(inner, sizeof(inner));
}

/* ---- HOTP and TOTP -------------------------------------------------------- */

uint32_t
access_hotp(const void *key, size_t kn, uint64_t counter, int digits)
{
	unsigned char msg[8], mac[ACCESS_SHA1_LEN];
	uint32_t bin, mod = 1;
	unsigned off;

	for (int i = 0; i < 8; i++)
		msg[i] = (unsigned char)(counter >> (56 - 8 * i));
	access_hmac_sha1(key, kn, msg, sizeof(msg), mac);
	/* dynamic truncation: 31 bits from the offset the last nibble names */
	off = mac[ACCESS_SHA1_LEN - 1] & 0x0f;
	bin = (uint32_t)(mac[off] & 0x7f) << 24 | (uint32_t)mac[off + 1] << 16 |
	      (uint32_t)mac[off + 2] << 8 | (uint32_t)mac[off + 3];
	sodium_memzero(mac, sizeof(mac));
	for (int i = 0; i < digits; i++)
		mod *= 10;
	return bin % mod;
}

int64_t
access_totp_step(int64_t now_ms)
{
	return now_ms / 1000 / ACCESS_TOTP_PERIOD_S;
}

bool
access_totp_verify(const unsigned char key[ACCESS_TOTP_KEY], const char *code,
		   int64_t now_ms, int64_t last_step, int64_t *step)
{
	int64_t s = access_totp_step(now_ms), found = 0;
	uint32_t given = 0;
	size_t n = code ? strlen(code) : 0;

	if (n != ACCESS_TOTP_DIGITS)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (code[i] < '0' || code[i] > '9')
			return false;
		given = given * 10 + (uint32_t)(code[i] - '0');
	}
	/* Every step of the window is computed, whichever matches, so the
	 * time taken does not say which one did; the latest match wins. */
	for (int64_t t = s - ACCESS_TOTP_WINDOW; t <= s + ACCESS_TOTP_WINDOW; t++) {
		uint32_t want = access_hotp(key, ACCESS_TOTP_KEY, (uint64_t)t,
					    ACCESS_TOTP_DIGITS);
		int64_t hit = -(int64_t)((want ^ given) == 0); /* all ones or 0 */

		found = (found & ~hit) | (t & hit);
	}
	if (found <= 0 || found <= last_step)
		return false; /* no match, or a replay of an accepted step */
	*step = found;
	return true;
}

/* ---- secrets ---------------------------------------------------------------- */

void
access_base32(const unsigned char *in, size_t n, char *out)
{
	static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	uint32_t acc = 0;
	int bits = 0;
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 5) {
			out[k++] = b32[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits)
		out[k++] = b32[(acc << (5 - bits)) & 31];
	out[k] = '\0';
}

/* Fills out from key: its base32 and the otpauth:// URI of username. */
static void
totp_show(const unsigned char key[ACCESS_TOTP_KEY], const char *username,
	  struct access_totp *out)
{
	access_base32(key, ACCESS_TOTP_KEY, out->secret);
	snprintf(out->uri, sizeof(out->uri),
		 "otpauth://totp/careweave:%s?secret=%s&issuer=careweave"
		 "&algorithm=SHA1&digits=%d&period=%d",
		 username, out->secret, ACCESS_TOTP_DIGITS, ACCESS_TOTP_PERIOD_S);
}

enum cw_err
access_user_totp_set(struct store *s, const char *username, bool on,
		     struct access_totp *out, struct diag *d)
{
	char name[ACCESS_USERNAME_MAX + 1];
	unsigned char key[ACCESS_TOTP_KEY];
	enum cw_err err;

	_Static_assert(ACCESS_TOTP_KEY == STORE_TOTP_KEY, "one key size");
	if (out)
		memset(out, 0, sizeof(*out));
	if ((err = access_username_norm(username, name, d)))
		return err;
	if (on) {
		if (sodium_init() < 0)
			return diag_err(d, CW_EINTERNAL, "exception", NULL,
					"No randomness for a secret");
		randombytes_buf(key, sizeof(key));
	}
	err = store_user_set_totp(s, name, on ? key : NULL);
	if (!err && on && out)
		totp_show(key, name, out);
	sodium_memzero(key, sizeof(key));
	return access_user_revoked(err, name, "secret", d);
}
