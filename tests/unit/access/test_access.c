/* tests/unit/access/test_access.c: passwords, tokens, lockout, the
 * per-address limit and sessions, with the injectable clock.
 *
 * Hashing and verification (the PHC string names argon2id with 19 MiB and
 * 2 passes), the password policy, token and CSRF hashing, the lock delays,
 * the rate-limit table on its own (access_int.h), then struct access over a
 * real store in a temporary directory: sign-in, idle and absolute expiry,
 * logout, CSRF on cookie writes, lockout growth and its clearing, and
 * sign-in with one-time codes (an admin without one, a missing, wrong,
 * old or replayed code), all with time moved by the test rather than
 * slept. */
#include <unistd.h>

#include "unit.h"

#include "access/access_int.h"

/* ---- without a store ------------------------------------------------------ */

static void
test_hash_verify(void **state)
{
	char h[ACCESS_HASH_MAX], h2[ACCESS_HASH_MAX];
	const char *pw = "correct horse battery";

	(void)state;
	assert_int_equal(access_password_hash(pw, strlen(pw), h), CW_OK);
	assert_non_null(strstr(h, "$argon2id$v=19$m=19456,t=2,p=1$"));
	assert_true(access_password_ok(h, pw, strlen(pw)));
	assert_false(access_password_ok(h, pw, strlen(pw) - 1));
	assert_false(access_password_ok(h, "correct horse batterx", strlen(pw)));
	assert_false(access_password_ok(NULL, pw, strlen(pw)));
	assert_false(access_password_ok("$not-a-hash", pw, strlen(pw)));
	/* salted: the same password hashes differently */
	assert_int_equal(access_password_hash(pw, strlen(pw), h2), CW_OK);
	assert_string_not_equal(h, h2);
	assert_true(access_password_ok(h2, pw, strlen(pw)));
}

static void
test_policy(void **state)
{
	struct arena *a = arena_new(0);
	struct diag d;
	char big[ACCESS_PASSWORD_MAX + 2];

	(void)state;
	diag_init(&d, a);
	assert_int_equal(access_password_policy("elevenchars", 11, &d), CW_EINVAL);
	assert_int_equal(access_password_policy("twelve chars", 12, &d), CW_OK);
	/* characters, not bytes: 11 two-byte letters are still too short */
	assert_int_equal(access_password_policy("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
						"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
						22, &d), CW_EINVAL);
	assert_int_equal(access_password_policy("twelve\0chars", 12, &d), CW_EINVAL);
	memset(big, 'x', sizeof(big));
	assert_int_equal(access_password_policy(big, ACCESS_PASSWORD_MAX, &d), CW_OK);
	assert_int_equal(access_password_policy(big, ACCESS_PASSWORD_MAX + 1, &d), CW_EINVAL);
	arena_free(a);
}

static void
test_tokens(void **state)
{
	const char *tok = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	unsigned char h1[STORE_SESSION_HASH], h2[STORE_SESSION_HASH];
	char c1[ACCESS_TOKEN_HEX + 1], c2[ACCESS_TOKEN_HEX + 1];
	char other[ACCESS_TOKEN_HEX + 1];

	(void)state;
	assert_true(access_token_hash(tok, h1));
	assert_true(access_token_hash(tok, h2));
	assert_memory_equal(h1, h2, sizeof(h1));
	snprintf(other, sizeof(other), "%s", tok);
	other[63] = '0';
	assert_true(access_token_hash(other, h2));
	assert_memory_not_equal(h1, h2, sizeof(h1));
	/* not the token's own bytes */
	assert_memory_not_equal(h1, "\x00\x11\x22\x33", 4);
	assert_false(access_token_hash("abc", h1));
	assert_false(access_token_hash("zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", h1));
	assert_false(access_token_hash(NULL, h1));
	assert_true(access_csrf_of(tok, c1));
	assert_true(access_csrf_of(tok, c2));
	assert_string_equal(c1, c2);
	assert_int_equal(strlen(c1), 64);
	assert_string_not_equal(c1, tok);
	assert_true(access_csrf_of(other, c2));
	assert_string_not_equal(c1, c2);
}

static void
test_lock_growth(void **state)
{
	(void)state;
	assert_int_equal(access_lock_ms(1), 60000);
	assert_int_equal(access_lock_ms(2), 120000);
	assert_int_equal(access_lock_ms(3), 240000);
	assert_int_equal(access_lock_ms(6), 1920000);
	assert_int_equal(access_lock_ms(7), 3600000); /* 3840 s, capped at 1 h */
	assert_int_equal(access_lock_ms(1000), 3600000);
}

static void
test_demo_password(void **state)
{
	char p[ACCESS_DEMO_PASSWORD_LEN + 1], q[ACCESS_DEMO_PASSWORD_LEN + 1];

	(void)state;
	access_demo_password(p);
	access_demo_password(q);
	assert_int_equal(strlen(p), 23);
	assert_string_not_equal(p, q);
	for (int i = 0; i < 23; i++) {
		if (i % 6 == 5)
			assert_int_equal(p[i], '-');
		else
			assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", p[i]));
	}
}

static void
test_ratelimit(void **state)
{
	struct access_rl *rl = calloc(1, sizeof(*rl));
	int64_t retry = 0, t = 1000000;
	char addr[32];

	(void)state;
	assert_non_null(rl);
	for (int i = 0; i < ACCESS_RL_BURST; i++)
		assert_true(access_rl_take(rl, "10.0.0.1", t, &retry));
	assert_false(access_rl_take(rl, "10.0.0.1", t, &retry));
	assert_int_equal(retry, ACCESS_RL_REFILL_MS);
	/* another address has its own bucket */
	assert_true(access_rl_take(rl, "10.0.0.2", t, &retry));
	/* one attempt comes back every refill period, not more */
	assert_false(access_rl_take(rl, "10.0.0.1", t + ACCESS_RL_REFILL_MS - 1, &retry));
	assert_int_equal(retry, 1);
	assert_true(access_rl_take(rl, "10.0.0.1", t + ACCESS_RL_REFILL_MS, &retry));
	assert_false(access_rl_take(rl, "10.0.0.1", t + ACCESS_RL_REFILL_MS, &retry));
	/* a long pause refills the bucket, never past its size */
	t += 3600 * 1000;
	for (int i = 0; i < ACCESS_RL_BURST; i++)
		assert_true(access_rl_take(rl, "10.0.0.1", t, &retry));
	assert_false(access_rl_take(rl, "10.0.0.1", t, &retry));
	/* many addresses: the table stays within its slots and keeps working;
	 * an address over its limit is kept while idle ones are evicted */
	for (int i = 0; i < 4 * ACCESS_RL_SLOTS; i++) {
		snprintf(addr, sizeof(addr), "192.168.%d.%d", i / 256, i % 256);
		assert_true(access_rl_take(rl, addr, t, &retry));
	}
	assert_true(access_rl_take(rl, "2001:db8::1", t, &retry));
	free(rl);
}

/* ---- with a store and a clock ---------------------------------------------- */

struct fx {
	char dir[64];
	char path[128];
	struct store *s;
	struct arena *a;
	struct access *ac;
	int64_t now;
};

static int64_t
fake_clock(void *ctx)
{
	return ((struct fx *)ctx)->now;
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct access_options ao = {.idle_s = 900, .clock = fake_clock};
	struct diag d;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/cw-access-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/test.db", f->dir);
	f->a = arena_new(0);
	diag_init(&d, f->a);
	f->s = store_open(f->path, NULL, &d);
	assert_non_null(f->s);
	f->now = 1800000000000LL;
	ao.clock_ctx = f;
	f->ac = access_new(f->s, &ao);
	assert_non_null(f->ac);
	/* not an admin: an admin signs in with a one-time code too (test_totp) */
	assert_int_equal(access_user_add(f->s, f->a, "Ann", ACCESS_SERVICE, NULL,
					 "ann's long password", 19, &d), CW_OK);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	access_free(f->ac);
	store_close(f->s);
	unit_rm_dir(f->dir); /* the db, its -wal and -shm */
	arena_free(f->a);
	free(f);
	return 0;
}

static enum cw_err
login(struct fx *f, const char *user, const char *pw, struct access_login *lg)
{
	struct diag d;
	unsigned retry;

	diag_init(&d, f->a);
	return access_login(f->ac, f->a, "127.0.0.1", user, pw, strlen(pw), NULL,
			    lg, &retry, &d);
}

static enum cw_err
auth(struct fx *f, const struct access_cred *c, struct access_who *who)
{
	struct diag d;

	diag_init(&d, f->a);
	return access_authenticate(f->ac, f->a, c, who, &d);
}

static void
test_login_and_idle(void **state)
{
	struct fx *f = *state;
	struct access_login lg;
	struct access_who who;
	struct access_cred c = {0};

	assert_int_equal(login(f, "ann", "wrong password!", &lg), CW_EUNAUTH);
	assert_int_equal(login(f, "nobody", "ann's long password", &lg), CW_EUNAUTH);
	assert_int_equal(login(f, "ANN", "ann's long password", &lg), CW_OK);
	assert_int_equal(strlen(lg.token), 64);
	assert_string_equal(lg.who.username, "ann");
	assert_int_equal(lg.who.role, ACCESS_SERVICE);
	assert_null(lg.who.link);
	assert_int_equal(lg.who.expires, f->now + 900 * 1000);
	c.token = lg.token;
	assert_int_equal(auth(f, &c, &who), CW_OK);
	assert_string_equal(who.username, "ann");
	/* used every 800 s: alive */
	for (int i = 0; i < 5; i++) {
		f->now += 800 * 1000;
		assert_int_equal(auth(f, &c, &who), CW_OK);
	}
	/* 900 s without a request: gone, for reads and writes */
	f->now += 900 * 1000;
	assert_int_equal(auth(f, &c, &who), CW_EUNAUTH);
	c.changes_state = c.may_block = true;
	assert_int_equal(auth(f, &c, &who), CW_EUNAUTH);
	/* no token, garbage */
	c.token = NULL;
	assert_int_equal(auth(f, &c, &who), CW_EUNAUTH);
	c.token = "not a token";
	assert_int_equal(auth(f, &c, &who), CW_EUNAUTH);
}

static void
test_absolute_and_logout(void **state)
{
	struct fx *f = *state;
	struct access_login lg, lg2;
	struct access_who who;
	struct access_cred c = {0}, c2 = {0};
	int64_t t0 = f->now;

	assert_int_equal(login(f, "ann", "ann's long password", &lg), CW_OK);
	assert_int_equal(login(f, "ann", "ann's long password", &lg2), CW_OK);
	assert_string_not_equal(lg.token, lg2.token);
	c.token = lg.token;
	c2.token = lg2.token;
	c.may_block = true; /* lets last_seen reach the disk */
	while (f->now + 800 * 1000 < t0 + ACCESS_ABSOLUTE_S * 1000LL) {
		f->now += 800 * 1000;
		assert_int_equal(auth(f, &c, &who), CW_OK);
	}
	f->now = t0 + ACCESS_ABSOLUTE_S * 1000LL;
	assert_int_equal(auth(f, &c, &who), CW_EUNAUTH);
	/* logout of one session leaves the other alone */
	f->now = t0;
	assert_int_equal(login(f, "ann", "ann's long password", &lg), CW_OK);
	c.token = lg.token;
	assert_int_equal(auth(f, &c, &who), CW_OK);
	assert_int_equal(access_logout(f->ac, &who), CW_OK);
	assert_int_equal(auth(f, &c, &who), CW_EUNAUTH);
	assert_int_equal(auth(f, &c2, &who), CW_OK);
}

static void
test_csrf(void **state)
{
	struct fx *f = *state;
	struct access_login lg;
	struct access_who who;
	struct access_cred c = {0};

	assert_int_equal(login(f, "ann", "ann's long password", &lg), CW_OK);
	c.token = lg.token;
	c.from_cookie = true;
	assert_int_equal(auth(f, &c, &who), CW_OK); /* a read needs none */
	c.changes_state = true;
	assert_int_equal(auth(f, &c, &who), CW_EFORBIDDEN);
	c.csrf_cookie = lg.csrf;
	assert_int_equal(auth(f, &c, &who), CW_EFORBIDDEN);
	c.csrf_header = "0000000000000000000000000000000000000000000000000000000000000000";
	c.csrf_cookie = c.csrf_header;
	assert_int_equal(auth(f, &c, &who), CW_EFORBIDDEN);
	c.csrf_header = lg.csrf;
	c.csrf_cookie = lg.csrf;
	assert_int_equal(auth(f, &c, &who), CW_OK);
	/* Bearer tokens are not sent by browsers on their own: no CSRF */
	c.from_cookie = false;
	c.csrf_header = c.csrf_cookie = NULL;
	assert_int_equal(auth(f, &c, &who), CW_OK);
}

static void
test_lockout(void **state)
{
	struct fx *f = *state;
	struct access_login lg;
	struct store_user u;

	for (int round = 1; round <= 3; round++) {
		for (int i = 0; i < ACCESS_FAILS_TO_LOCK; i++)
			assert_int_equal(login(f, "ann", "not the password", &lg), CW_EUNAUTH);
		assert_int_equal(store_user_get(f->s, f->a, "ann", &u), CW_OK);
		assert_int_equal(u.lockouts, round);
		assert_int_equal(u.locked_until, f->now + access_lock_ms(round));
		/* locked: the right password is refused the same way */
		assert_int_equal(login(f, "ann", "ann's long password", &lg), CW_EUNAUTH);
		f->now += access_lock_ms(round) - 1;
		assert_int_equal(login(f, "ann", "ann's long password", &lg), CW_EUNAUTH);
		f->now += 1;
	}
	assert_int_equal(login(f, "ann", "ann's long password", &lg), CW_OK);
	assert_int_equal(store_user_get(f->s, f->a, "ann", &u), CW_OK);
	assert_int_equal(u.lockouts, 0);
	assert_int_equal(u.failed, 0);
	/* a reset clears a lock */
	for (int i = 0; i < ACCESS_FAILS_TO_LOCK; i++)
		login(f, "ann", "not the password", &lg);
	{
		struct diag d;

		diag_init(&d, f->a);
		assert_int_equal(access_user_reset_password(f->s, "ann", "a brand new password", 20, &d),
				 CW_OK);
	}
	assert_int_equal(login(f, "ann", "a brand new password", &lg), CW_OK);
}

static void
test_rate_limited_login(void **state)
{
	struct fx *f = *state;
	struct access_login lg;
	struct diag d;
	unsigned retry = 0;
	enum cw_err err = CW_OK;
	int i;

	/* unknown users, so no lockout interferes; each is one attempt */
	for (i = 0; i < ACCESS_RL_BURST + 1; i++) {
		diag_init(&d, f->a);
		err = access_login(f->ac, f->a, "10.9.9.9", "guess", "a wrong password", 16,
				   NULL, &lg, &retry, &d);
		if (err == CW_ERATE)
			break;
		assert_int_equal(err, CW_EUNAUTH);
	}
	assert_int_equal(i, ACCESS_RL_BURST);
	assert_int_equal(err, CW_ERATE);
	assert_true(retry >= 1);
	diag_init(&d, f->a);
	assert_int_equal(access_login(f->ac, f->a, "10.9.9.9", "ann", "ann's long password", 19,
				      NULL, &lg, &retry, &d), CW_ERATE);
	assert_int_equal(access_login(f->ac, f->a, "10.9.9.8", "ann", "ann's long password", 19,
				      NULL, &lg, &retry, &d), CW_OK);
	f->now += ACCESS_RL_REFILL_MS;
	assert_int_equal(access_login(f->ac, f->a, "10.9.9.9", "ann", "ann's long password", 19,
				      NULL, &lg, &retry, &d), CW_OK);
}

static void
test_users(void **state)
{
	struct fx *f = *state;
	struct diag d;
	struct access_login lg;
	enum access_role r;

	diag_init(&d, f->a);
	assert_true(access_role_parse("social-worker", &r));
	assert_int_equal(r, ACCESS_SOCIAL_WORKER);
	assert_false(access_role_parse("surgeon", &r));
	assert_string_equal(access_role_name(ACCESS_CAREGIVER), "caregiver");
	assert_int_equal(access_user_add(f->s, f->a, "ann", ACCESS_ADMIN, NULL,
					 "another long password", 21, &d), CW_ECONFLICT);
	assert_int_equal(access_user_add(f->s, f->a, "bo b", ACCESS_ADMIN, NULL,
					 "another long password", 21, &d), CW_EINVAL);
	assert_int_equal(access_user_add(f->s, f->a, "bob", ACCESS_NURSE, NULL,
					 "another long password", 21, &d), CW_EINVAL);
	assert_int_equal(access_user_add(f->s, f->a, "bob", ACCESS_NURSE, "Practitioner/nope",
					 "another long password", 21, &d), CW_EINVAL);
	assert_int_equal(access_user_add(f->s, f->a, "bob", ACCESS_ADMIN, "Organization/x",
					 "another long password", 21, &d), CW_EINVAL);
	assert_int_equal(access_user_disable(f->s, "ann", &d), CW_OK);
	assert_int_equal(login(f, "ann", "ann's long password", &lg), CW_EUNAUTH);
	assert_int_equal(access_user_disable(f->s, "nobody", &d), CW_ENOTFOUND);
}

/* The code of step for the secret username has now. */
static void
code_of(struct fx *f, const char *username, int64_t step, char out[8])
{
	struct store_user u;

	assert_int_equal(store_user_get(f->s, f->a, username, &u), CW_OK);
	assert_non_null(u.totp);
	snprintf(out, 8, "%06u",
		 (unsigned)access_hotp(u.totp, ACCESS_TOTP_KEY, (uint64_t)step, 6));
}

static enum cw_err
login_code(struct fx *f, const char *user, const char *pw, const char *code,
	   struct diag *d)
{
	struct access_login lg;
	unsigned retry;

	diag_init(d, f->a);
	return access_login(f->ac, f->a, "127.0.0.1", user, pw, strlen(pw), code,
			    &lg, &retry, d);
}

static void
test_totp_login(void **state)
{
	static const char pw[] = "root's long password";
	struct fx *f = *state;
	struct access_totp t;
	struct store_user u;
	struct diag d;
	char code[8];
	int64_t s;

	diag_init(&d, f->a);
	assert_int_equal(access_user_add(f->s, f->a, "root", ACCESS_ADMIN, NULL,
					 pw, strlen(pw), &d), CW_OK);
	/* an admin without TOTP: refused, told what to run; not counted */
	assert_int_equal(login_code(f, "root", pw, NULL, &d), CW_EUNAUTH);
	assert_non_null(strstr(d.issues[0].msg, "careweave user totp root"));
	/* ... but only when the password was right */
	assert_int_equal(login_code(f, "root", "a wrong password", NULL, &d), CW_EUNAUTH);
	assert_null(strstr(d.issues[0].msg, "totp"));
	assert_int_equal(store_user_get(f->s, f->a, "root", &u), CW_OK);
	assert_int_equal(u.failed, 1);

	diag_init(&d, f->a);
	assert_int_equal(access_user_totp_set(f->s, "ROOT", true, &t, &d), CW_OK);
	assert_int_equal(strlen(t.secret), ACCESS_TOTP_B32);
	assert_non_null(strstr(t.uri, "otpauth://totp/careweave:root?secret="));
	assert_non_null(strstr(t.uri, t.secret));
	assert_non_null(strstr(t.uri, "&issuer=careweave&algorithm=SHA1&digits=6&period=30"));
	s = access_totp_step(f->now);
	/* no code after the right password: says a code is required, counts */
	assert_int_equal(login_code(f, "root", pw, NULL, &d), CW_EUNAUTH);
	assert_non_null(strstr(d.issues[0].msg, "one-time code is required"));
	assert_int_equal(login_code(f, "root", pw, "", &d), CW_EUNAUTH);
	/* a code with a wrong password says nothing more */
	code_of(f, "root", s, code);
	assert_int_equal(login_code(f, "root", "a wrong password", code, &d), CW_EUNAUTH);
	assert_null(strstr(d.issues[0].msg, "required"));
	assert_int_equal(store_user_get(f->s, f->a, "root", &u), CW_OK);
	assert_int_equal(u.failed, 4);
	/* two steps ago: refused; the step before now: accepted */
	code_of(f, "root", s - 2, code);
	assert_int_equal(login_code(f, "root", pw, code, &d), CW_EUNAUTH);
	assert_int_equal(store_user_get(f->s, f->a, "root", &u), CW_OK);
	assert_int_equal(u.lockouts, 1); /* the 5th failure locked it */
	f->now += access_lock_ms(1);
	s = access_totp_step(f->now);
	code_of(f, "root", s - 1, code);
	assert_int_equal(login_code(f, "root", pw, code, &d), CW_OK);
	assert_int_equal(store_user_get(f->s, f->a, "root", &u), CW_OK);
	assert_int_equal(u.totp_step, s - 1);
	assert_int_equal(u.failed, 0);
	/* the same code again, and an older one: replays */
	assert_int_equal(login_code(f, "root", pw, code, &d), CW_EUNAUTH);
	code_of(f, "root", s - 1, code);
	assert_int_equal(login_code(f, "root", pw, code, &d), CW_EUNAUTH);
	code_of(f, "root", s, code);
	assert_int_equal(login_code(f, "root", pw, code, &d), CW_OK);
	code_of(f, "root", s + 1, code);
	assert_int_equal(login_code(f, "root", pw, code, &d), CW_OK);
	/* a new secret forgets the step; off makes the admin unable again */
	diag_init(&d, f->a);
	assert_int_equal(access_user_totp_set(f->s, "root", true, NULL, &d), CW_OK);
	assert_int_equal(store_user_get(f->s, f->a, "root", &u), CW_OK);
	assert_int_equal(u.totp_step, 0);
	assert_int_equal(access_user_totp_set(f->s, "root", false, NULL, &d), CW_OK);
	assert_int_equal(store_user_get(f->s, f->a, "root", &u), CW_OK);
	assert_null(u.totp);
	assert_int_equal(login_code(f, "root", pw, code, &d), CW_EUNAUTH);
	assert_non_null(strstr(d.issues[0].msg, "careweave user totp root"));
	assert_int_equal(access_user_totp_set(f->s, "nobody", true, &t, &d), CW_ENOTFOUND);
	/* any user may have it, and then needs it */
	assert_int_equal(access_user_totp_set(f->s, "ann", true, NULL, &d), CW_OK);
	assert_int_equal(login_code(f, "ann", "ann's long password", NULL, &d), CW_EUNAUTH);
	code_of(f, "ann", access_totp_step(f->now), code);
	assert_int_equal(login_code(f, "ann", "ann's long password", code, &d), CW_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_verify),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_tokens),
		cmocka_unit_test(test_lock_growth),
		cmocka_unit_test(test_demo_password),
		cmocka_unit_test(test_ratelimit),
		cmocka_unit_test_setup_teardown(test_login_and_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_absolute_and_logout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csrf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lockout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate_limited_login, setup, teardown),
		cmocka_unit_test_setup_teardown(test_users, setup, teardown),
		cmocka_unit_test_setup_teardown(test_totp_login, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
