/* access/access.c: users, password hashes, sign-in, lockout, sessions.
 *
 * Owns the rules about people; the rows live behind store.h. Shaped around
 * three promises: a copy of the database gives no live sessions (only
 * token hashes are stored), a guesser learns nothing from the answers (the
 * same message, the same argon2id run and the same minimum time for every
 * failure) and gets few guesses (account lockout and a per-address limit,
 * both checked before any comparison is trusted; a one-time code is
 * looked at only after the password was right, see totp.c), and the poll threads
 * never wait (reading a session is a read; its last-activity time is
 * kept in memory and written only from threads that may block). The
 * state table is in access/README.md. Nothing here logs a username,
 * password, token or hash: log lines carry uids and outcomes. */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "access/access_int.h"

/* ---- roles ------------------------------------------------------------- */

/* The one role table: what each role is called, what a user of it is in
 * FHIR, and whether it is a clinician's (policy.c gives clinicians their
 * care teams' patients, the care directory and break-the-glass). */
static const struct {
	const char *name;
	const char *link_type; /* what a user of this role is, in FHIR */
	bool clinical;
} roles[ACCESS_ROLE_COUNT] = {
	[ACCESS_ADMIN]           = {"admin", NULL, false},
	[ACCESS_COORDINATOR]     = {"coordinator", "Practitioner", true},
	[ACCESS_PHYSICIAN]       = {"physician", "Practitioner", true},
	[ACCESS_NURSE]           = {"nurse", "Practitioner", true},
	[ACCESS_PHARMACIST]      = {"pharmacist", "Practitioner", true},
	[ACCESS_THERAPIST]       = {"therapist", "Practitioner", true},
	[ACCESS_SOCIAL_WORKER]   = {"social-worker", "Practitioner", true},
	[ACCESS_PATIENT]         = {"patient", "Patient", false},
	[ACCESS_CAREGIVER]       = {"caregiver", "RelatedPerson", false},
	[ACCESS_SERVICE]         = {"service", NULL, false},
	[ACCESS_PRIVACY_OFFICER] = {"privacy-officer", "Practitioner", false},
};

const char *
access_role_name(enum access_role role)
{
	return (unsigned)role < ACCESS_ROLE_COUNT ? roles[role].name : "?";
}

bool
access_role_parse(const char *s, enum access_role *out)
{
	for (int i = 0; i < ACCESS_ROLE_COUNT; i++)
		if (s && !strcmp(s, roles[i].name)) {
			*out = (enum access_role)i;
			return true;
		}
	return false;
}

const char *
access_role_link_type(enum access_role role)
{
	return (unsigned)role < ACCESS_ROLE_COUNT ? roles[role].link_type : NULL;
}

bool
access_role_clinical(enum access_role role)
{
	return (unsigned)role < ACCESS_ROLE_COUNT && roles[role].clinical;
}

/* ---- the service -------------------------------------------------------- */

/* One remembered session: when it was last used, so idle expiry needs no
 * write per request, and what its row said when last read, so most
 * requests need no lookup (ACCESS_SESSION_RECHECK_MS). */
struct act_slot {
	unsigned char sid[STORE_SESSION_HASH];
	int64_t seen;    /* 0: free */
	int64_t checked; /* access clock when the row was read; 0: not held */
	int64_t expires, last_seen_disk;
	int64_t uid;
	enum access_role role;
	char username[ACCESS_USERNAME_MAX + 1];
	char link[ACCESS_LINK_MAX + 1];
};

struct access {
	struct store *store;
	int64_t idle_ms, absolute_ms;
	access_clock_fn clock;
	void *clock_ctx;
	unsigned glass_max_min;
	char dummy[ACCESS_HASH_MAX]; /* unknown users are checked against it */
	pthread_mutex_t mu;          /* guards rl, act and hashing */
	pthread_cond_t hash_cv;      /* a hashing slot came free */
	int hashing;                 /* argon2id runs in progress */
	struct access_rl rl;
	struct act_slot act[ACCESS_ACT_SLOTS];
};

#ifdef CW_TEST_HOOKS
/* Test builds only: whole seconds from $CAREWEAVE_TEST_CLOCK_FILE. */
static int64_t
test_offset_ms(void)
{
	const char *p = getenv("CAREWEAVE_TEST_CLOCK_FILE");
	long long v = 0;
	FILE *f;

	if (!p || !(f = fopen(p, "r")))
		return 0;
	if (fscanf(f, "%lld", &v) != 1)
		v = 0;
	fclose(f);
	return (int64_t)v * 1000;
}
#endif

int64_t
access_now(const struct access *ac)
{
	if (ac->clock)
		return ac->clock(ac->clock_ctx);
#ifdef CW_TEST_HOOKS
	return time_now_ms() + test_offset_ms();
#else
	return time_now_ms();
#endif
}

unsigned
access_glass_max(const struct access *ac)
{
	return ac ? ac->glass_max_min : ACCESS_GLASS_MAX_DEFAULT;
}

struct access *
access_new(struct store *s, const struct access_options *opt)
{
	struct access *ac;
	unsigned char junk[32];

	if (sodium_init() < 0)
		return NULL;
	ac = calloc(1, sizeof(*ac));
	if (!ac)
		return NULL;
	ac->store = s;
	ac->idle_ms = 1000LL * (opt && opt->idle_s ? opt->idle_s : ACCESS_IDLE_DEFAULT_S);
	ac->absolute_ms = 1000LL * (opt && opt->absolute_s ? opt->absolute_s :
				    ACCESS_ABSOLUTE_S);
	ac->clock = opt ? opt->clock : NULL;
	ac->clock_ctx = opt ? opt->clock_ctx : NULL;
	ac->glass_max_min = opt && opt->glass_max_min ? opt->glass_max_min :
			    ACCESS_GLASS_MAX_DEFAULT;
	/* A hash of nothing anyone knows, with the same parameters as real
	 * ones, so an unknown username costs what a known one does. */
	randombytes_buf(junk, sizeof(junk));
	if (access_password_hash((const char *)junk, sizeof(junk), ac->dummy) ||
	    pthread_mutex_init(&ac->mu, NULL) != 0) {
		sodium_memzero(junk, sizeof(junk));
		free(ac);
		return NULL;
	}
	if (pthread_cond_init(&ac->hash_cv, NULL) != 0) {
		pthread_mutex_destroy(&ac->mu);
		free(ac);
		return NULL;
	}
	sodium_memzero(junk, sizeof(junk));
#ifdef CW_TEST_HOOKS
	if (getenv("CAREWEAVE_TEST_CLOCK_FILE"))
		log_warn("access: test clock file in use (test build)");
#endif
	return ac;
}

void
access_free(struct access *ac)
{
	if (!ac)
		return;
	pthread_cond_destroy(&ac->hash_cv);
	pthread_mutex_destroy(&ac->mu);
	sodium_memzero(ac, sizeof(*ac));
	free(ac);
}

/* ---- passwords and tokens ---------------------------------------------- */

enum cw_err
access_password_policy(const char *pw, size_t n, struct diag *d)
{
	size_t chars = 0;

	if (n > ACCESS_PASSWORD_MAX)
		return diag_err(d, CW_EINVAL, "value", NULL,
				"The password is longer than %d bytes",
				ACCESS_PASSWORD_MAX);
	for (size_t i = 0; i < n; i++) {
		if (!pw[i])
			return diag_err(d, CW_EINVAL, "value", NULL,
					"The password contains a NUL byte");
		chars += ((unsigned char)pw[i] & 0xC0) != 0x80;
	}
	if (chars < ACCESS_PASSWORD_MIN)
		return diag_err(d, CW_EINVAL, "value", NULL,
				"The password must be at least %d characters",
				ACCESS_PASSWORD_MIN);
	return CW_OK;
}

enum cw_err
access_password_hash(const char *pw, size_t n, char out[ACCESS_HASH_MAX])
{
	_Static_assert(ACCESS_HASH_MAX >= crypto_pwhash_STRBYTES, "hash room");
	if (sodium_init() < 0)
		return CW_EINTERNAL;
	if (crypto_pwhash_str_alg(out, pw, n, ACCESS_PWHASH_OPS,
				  ACCESS_PWHASH_MEM,
				  crypto_pwhash_ALG_ARGON2ID13) != 0)
		return CW_ENOMEM; /* the only failure: the 19 MiB */
	return CW_OK;
}

bool
access_password_ok(const char *hash, const char *pw, size_t n)
{
	return hash && crypto_pwhash_str_verify(hash, pw, n) == 0;
}

static bool
unhex(const char *s, unsigned char *out, size_t n)
{
	size_t bin = 0;

	if (!s || strlen(s) != 2 * n)
		return false;
	return sodium_hex2bin(out, n, s, 2 * n, NULL, &bin, NULL) == 0 && bin == n;
}

bool
access_token_hash(const char *tok, unsigned char out[STORE_SESSION_HASH])
{
	unsigned char raw[32];

	if (!unhex(tok, raw, sizeof(raw)))
		return false;
	crypto_generichash(out, STORE_SESSION_HASH, raw, sizeof(raw), NULL, 0);
	sodium_memzero(raw, sizeof(raw));
	return true;
}

bool
access_csrf_of(const char *tok, char out[ACCESS_TOKEN_HEX + 1])
{
	static const char label[] = "careweave csrf v1";
	unsigned char raw[32], mac[32];

	if (!unhex(tok, raw, sizeof(raw)))
		return false;
	crypto_generichash(mac, sizeof(mac), (const unsigned char *)label,
			   sizeof(label) - 1, raw, sizeof(raw));
	sodium_bin2hex(out, ACCESS_TOKEN_HEX + 1, mac, sizeof(mac));
	sodium_memzero(raw, sizeof(raw));
	return true;
}

int64_t
access_lock_ms(int lockouts)
{
	int64_t ms = ACCESS_LOCK_FIRST_MS;

	for (int i = 1; i < lockouts && ms < ACCESS_LOCK_MAX_MS; i++)
		ms *= 2;
	return ms < ACCESS_LOCK_MAX_MS ? ms : ACCESS_LOCK_MAX_MS;
}

void
access_demo_password(char out[ACCESS_DEMO_PASSWORD_LEN + 1])
{
	static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	size_t k = 0;

	if (sodium_init() < 0)
		abort(); /* no randomness: never hand out a guessable password */
	for (int g = 0; g < 4; g++) {
		if (g)
			out[k++] = '-';
		for (int i = 0; i < 5; i++)
			out[k++] = b32[randombytes_uniform(32)];
	}
	out[k] = '\0';
}

/* ---- users --------------------------------------------------------------- */

enum cw_err
access_username_norm(const char *username, char out[ACCESS_USERNAME_MAX + 1],
		     struct diag *d)
{
	size_t n = username ? strlen(username) : 0;

	if (n == 0 || n > ACCESS_USERNAME_MAX)
		return diag_err(d, CW_EINVAL, "value", NULL,
				"A username is 1 to %d characters",
				ACCESS_USERNAME_MAX);
	for (size_t i = 0; i < n; i++) {
		char c = (char)tolower((unsigned char)username[i]);

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      strchr("._@-", c) ) || c == '\0')
			return diag_err(d, CW_EINVAL, "value", NULL,
					"A username uses only letters, digits and . _ @ -");
		out[i] = c;
	}
	out[n] = '\0';
	return CW_OK;
}

/* Checks that link is "Type/id" with the type role wants and that the
 * resource exists (and is not deleted). */
static enum cw_err
check_link(struct store *s, struct arena *a, enum access_role role,
	   const char *link, struct diag *d)
{
	static const char *const any[] = {"Practitioner", "Patient", "RelatedPerson"};
	const char *want = access_role_link_type(role), *slash;
	struct store_res res;
	char type[32];
	size_t tn;
	enum cw_err err;
	bool type_ok = false;

	if (!link)
		return want ? diag_err(d, CW_EINVAL, "required", NULL,
				       "A %s must be linked to a %s (--link %s/ID)",
				       access_role_name(role), want, want)
			    : CW_OK;
	slash = strchr(link, '/');
	tn = slash ? (size_t)(slash - link) : 0;
	if (!slash || tn >= sizeof(type) || !id_is_valid(slash + 1, strlen(slash + 1)))
		return diag_err(d, CW_EINVAL, "value", NULL,
				"--link wants Type/id, such as Practitioner/abc");
	memcpy(type, link, tn);
	type[tn] = '\0';
	for (size_t i = 0; i < sizeof(any) / sizeof(any[0]); i++)
		if (want ? !strcmp(type, want) : !strcmp(type, any[i]))
			type_ok = true;
	/* A system client may be a Device (an interface engine). */
	if (role == ACCESS_SERVICE && !strcmp(type, "Device"))
		type_ok = true;
	if (!type_ok)
		return diag_err(d, CW_EINVAL, "value", NULL,
				"A %s links to %s, not %s",
				access_role_name(role),
				want ? want : "a Practitioner, Patient or RelatedPerson",
				type);
	err = store_read(s, a, type, slash + 1, &res);
	if (err == CW_ENOTFOUND || err == CW_EGONE)
		return diag_err(d, CW_EINVAL, "not-found", NULL,
				"%s does not exist in this database", link);
	return err;
}

enum cw_err
access_user_add(struct store *s, struct arena *a, const char *username,
		enum access_role role, const char *link, const char *pw,
		size_t n, struct diag *d)
{
	char name[ACCESS_USERNAME_MAX + 1], hash[ACCESS_HASH_MAX];
	struct store_user u = {0};
	enum cw_err err;

	if ((unsigned)role >= ACCESS_ROLE_COUNT)
		return diag_err(d, CW_EINVAL, "value", NULL, "Unknown role");
	if ((err = access_username_norm(username, name, d)) ||
	    (err = check_link(s, a, role, link, d)) ||
	    (err = access_password_policy(pw, n, d)))
		return err;
	if (store_user_get(s, a, name, &u) == CW_OK)
		return diag_err(d, CW_ECONFLICT, "duplicate", NULL,
				"The username %s is taken", name);
	memset(&u, 0, sizeof(u));
	if ((err = access_password_hash(pw, n, hash)))
		return diag_err(d, err, "exception", NULL,
				"Cannot hash the password (out of memory)");
	u.username = name;
	u.role = access_role_name(role);
	u.link = link;
	u.hash = hash;
	err = store_user_add(s, &u);
	sodium_memzero(hash, sizeof(hash));
	if (err == CW_ECONFLICT)
		return diag_err(d, err, "duplicate", NULL,
				"The username %s is taken", name);
	if (err)
		return diag_err(d, err, "exception", NULL,
				"Cannot store the user");
	return CW_OK;
}

/* A server holds each session's row for up to ACCESS_SESSION_RECHECK_MS
 * (act_cached). Waiting that long after committing a revocation means
 * that when the command returns, no running server still serves the
 * revoked sessions. */
static void
revocation_settle(void)
{
	struct timespec ts = {0, (ACCESS_SESSION_RECHECK_MS + 20) * 1000000L};

	while (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (nanosleep(&ts, &ts) != 0)
		;
}

enum cw_err
access_user_revoked(enum cw_err err, const char *name, const char *what,
		    struct diag *d)
{
	if (err == CW_ENOTFOUND)
		return diag_err(d, err, "not-found", NULL, "No user %s", name);
	if (err)
		return diag_err(d, err, "exception", NULL, "Cannot store the %s",
				what);
	revocation_settle();
	return CW_OK;
}

enum cw_err
access_user_reset_password(struct store *s, const char *username,
			   const char *pw, size_t n, struct diag *d)
{
	char name[ACCESS_USERNAME_MAX + 1], hash[ACCESS_HASH_MAX];
	enum cw_err err;

	if ((err = access_username_norm(username, name, d)) ||
	    (err = access_password_policy(pw, n, d)))
		return err;
	if ((err = access_password_hash(pw, n, hash)))
		return diag_err(d, err, "exception", NULL,
				"Cannot hash the password (out of memory)");
	err = store_user_set_hash(s, name, hash);
	sodium_memzero(hash, sizeof(hash));
	return access_user_revoked(err, name, "password", d);
}

enum cw_err
access_user_disable(struct store *s, const char *username, struct diag *d)
{
	char name[ACCESS_USERNAME_MAX + 1];
	enum cw_err err;

	if ((err = access_username_norm(username, name, d)))
		return err;
	return access_user_revoked(store_user_set_disabled(s, name, true), name,
				   "change", d);
}

/* ---- the per-address limit ---------------------------------------------- */

static uint32_t
fnv1a32(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* Brings a bucket up to date at now. */
static void
rl_refill(struct access_rl_slot *sl, int64_t now)
{
	int64_t back;

	if (now <= sl->t)
		return;
	back = (now - sl->t) / ACCESS_RL_REFILL_MS;
	if (back >= ACCESS_RL_BURST - sl->tokens) {
		sl->tokens = ACCESS_RL_BURST;
		sl->t = now;
	} else {
		sl->tokens += (int)back;
		sl->t += back * ACCESS_RL_REFILL_MS;
	}
}

bool
access_rl_take(struct access_rl *rl, const char *addr, int64_t now,
	       int64_t *retry_ms)
{
	uint32_t h = fnv1a32(addr);
	struct access_rl_slot *sl = NULL, *victim = NULL, *cand;
	size_t n = strlen(addr);

	if (n >= ACCESS_ADDR_MAX)
		n = ACCESS_ADDR_MAX - 1;
	for (int i = 0; i < ACCESS_RL_PROBE; i++) {
		cand = &rl->slot[(h + (uint32_t)i) % ACCESS_RL_SLOTS];
		if (cand->addr[0] && !strncmp(cand->addr, addr, n) &&
		    cand->addr[n] == '\0') {
			sl = cand;
			break;
		}
		if (!cand->addr[0]) {
			if (!victim || victim->addr[0])
				victim = cand;
			continue;
		}
		rl_refill(cand, now);
		if (victim && !victim->addr[0])
			continue;
		if (cand->tokens == ACCESS_RL_BURST)
			victim = cand; /* full: forgetting it loses nothing */
		else if (!victim || (victim->tokens != ACCESS_RL_BURST &&
				     cand->t < victim->t))
			victim = cand;
	}
	if (!sl) {
		sl = victim;
		memcpy(sl->addr, addr, n);
		sl->addr[n] = '\0';
		sl->tokens = ACCESS_RL_BURST;
		sl->t = now;
	}
	rl_refill(sl, now);
	if (sl->tokens <= 0) {
		*retry_ms = sl->t + ACCESS_RL_REFILL_MS - now;
		return false;
	}
	sl->tokens--;
	return true;
}

/* ---- session activity in memory ----------------------------------------- */

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


static struct act_slot *
act_find(struct access *ac, const unsigned char *sid, bool add)
{
	uint32_t h;
	struct act_slot *oldest = NULL, *sl;

	memcpy(&h, sid, sizeof(h)); /* a hash already: its bytes are uniform */
	for (int i = 0; i < 8; i++) {
		sl = &ac->act[(h + (uint32_t)i) % ACCESS_ACT_SLOTS];
		if (sl->seen && !memcmp(sl->sid, sid, STORE_SESSION_HASH))
			return sl;
		if (!oldest || sl->seen < oldest->seen)
			oldest = sl;
	}
	if (!add)
		return NULL;
	/* Forgetting the oldest only ever shortens a session: it falls back
	 * to the last_seen on disk, which is never later than memory's. */
	memcpy(oldest->sid, sid, STORE_SESSION_HASH);
	oldest->seen = 0;
	return oldest;
}

static int64_t
act_get(struct access *ac, const unsigned char *sid)
{
	struct act_slot *sl;
	int64_t seen = 0;

	pthread_mutex_lock(&ac->mu);
	if ((sl = act_find(ac, sid, false)))
		seen = sl->seen;
	pthread_mutex_unlock(&ac->mu);
	return seen;
}

static void
act_set(struct access *ac, const unsigned char *sid, int64_t now)
{
	struct act_slot *sl;

	pthread_mutex_lock(&ac->mu);
	sl = act_find(ac, sid, true);
	if (now > sl->seen)
		sl->seen = now;
	pthread_mutex_unlock(&ac->mu);
}

/* The session row as last read, if read less than
 * ACCESS_SESSION_RECHECK_MS ago (monotonic: the test clock moves only the
 * session times) and still active then; strings into a. */
static bool
act_cached(struct access *ac, struct arena *a, const unsigned char *sid,
	   int64_t mono, struct store_session *ss, enum access_role *role)
{
	struct act_slot *sl;
	bool hit = false;

	pthread_mutex_lock(&ac->mu);
	sl = act_find(ac, sid, false);
	if (sl && sl->checked && mono - sl->checked < ACCESS_SESSION_RECHECK_MS) {
		memset(ss, 0, sizeof(*ss));
		ss->expires = sl->expires;
		ss->last_seen = sl->last_seen_disk;
		ss->uid = ss->user.uid = sl->uid;
		ss->user.username = arena_strdup(a, sl->username);
		ss->user.link = sl->link[0] ? arena_strdup(a, sl->link) : NULL;
		*role = sl->role;
		hit = ss->user.username && (!sl->link[0] || ss->user.link);
	}
	pthread_mutex_unlock(&ac->mu);
	return hit;
}

/* Remembers an active session's row (see act_cached). A username or link
 * too long for the slot is simply not held. */
static void
act_hold(struct access *ac, const unsigned char *sid, int64_t now,
	 int64_t mono, const struct store_session *ss, enum access_role role)
{
	const char *link = ss->user.link ? ss->user.link : "";
	size_t nu = strlen(ss->user.username), nl = strlen(link);
	struct act_slot *sl;

	if (nu > ACCESS_USERNAME_MAX || nl > ACCESS_LINK_MAX)
		return;
	pthread_mutex_lock(&ac->mu);
	sl = act_find(ac, sid, true);
	if (now > sl->seen)
		sl->seen = now;
	sl->checked = mono;
	sl->expires = ss->expires;
	sl->last_seen_disk = ss->last_seen;
	sl->uid = ss->user.uid;
	sl->role = role;
	memcpy(sl->username, ss->user.username, nu + 1);
	memcpy(sl->link, link, nl + 1);
	pthread_mutex_unlock(&ac->mu);
}

static void
act_forget(struct access *ac, const unsigned char *sid)
{
	struct act_slot *sl;

	pthread_mutex_lock(&ac->mu);
	if ((sl = act_find(ac, sid, false)))
		memset(sl, 0, sizeof(*sl));
	pthread_mutex_unlock(&ac->mu);
}

/* ---- sign-in ------------------------------------------------------------- */

/* Each argon2id run holds ACCESS_PWHASH_MEM: at most ACCESS_HASH_PARALLEL
 * at once, so a burst of sign-ins (one per write worker) waits instead of
 * taking workers x 19 MiB. */
static bool
verify_bounded(struct access *ac, const char *hash, const char *pw, size_t n)
{
	bool ok;

	pthread_mutex_lock(&ac->mu);
	while (ac->hashing >= ACCESS_HASH_PARALLEL)
		pthread_cond_wait(&ac->hash_cv, &ac->mu);
	ac->hashing++;
	pthread_mutex_unlock(&ac->mu);
	ok = access_password_ok(hash, pw, n);
	pthread_mutex_lock(&ac->mu);
	ac->hashing--;
	pthread_cond_signal(&ac->hash_cv);
	pthread_mutex_unlock(&ac->mu);
	return ok;
}

/* Sleeps until t0 + ACCESS_FAIL_FLOOR_MS (monotonic), so a failure's
 * answer time says nothing about which check failed. */
static void
fail_floor(int64_t t0)
{
	int64_t left = t0 + ACCESS_FAIL_FLOOR_MS - mono_ms();
	struct timespec ts;

	if (left <= 0)
		return;
	ts.tv_sec = left / 1000;
	ts.tv_nsec = (left % 1000) * 1000000;
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* A refusal: after the floor, msg or the one message that says nothing. */
static enum cw_err
login_failed(struct diag *d, int64_t t0, const char *msg)
{
	fail_floor(t0);
	return diag_err(d, CW_EUNAUTH, "login", NULL, "%s",
			msg ? msg : "Sign-in failed: wrong username, password or "
				    "one-time code, or the account is locked "
				    "or disabled");
}

/* Counts a failed sign-in of u at now: the 5th in a row locks it. */
static void
count_failure(struct access *ac, const struct store_user *u, int64_t now)
{
	int failed = u->failed + 1, lockouts = u->lockouts;
	int64_t until = 0;

	if (failed >= ACCESS_FAILS_TO_LOCK) {
		lockouts++;
		until = now + access_lock_ms(lockouts);
		failed = 0;
		log_warn("access: uid %lld locked for %lld s after %d failed sign-ins",
			 (long long)u->uid, (long long)(access_lock_ms(lockouts) / 1000),
			 ACCESS_FAILS_TO_LOCK);
	}
	if (store_user_set_failures(ac->store, u->uid, failed, lockouts, until))
		log_error("access: cannot record a failed sign-in of uid %lld",
			  (long long)u->uid);
}

/* The second factor, once the password was right: CW_OK with *step the
 * TOTP step to take (0: the user has none), else the refusal. */
static enum cw_err
check_second_factor(struct access *ac, struct store_user *u,
		    enum access_role role, const char *code, int64_t now,
		    int64_t t0, int64_t *step, struct diag *d)
{
	bool ok;

	*step = 0;
	if (!u->totp && role == ACCESS_ADMIN) {
		log_info("access: sign-in refused: admin uid %lld has no TOTP",
			 (long long)u->uid);
		fail_floor(t0);
		return diag_err(d, CW_EUNAUTH, "login", NULL,
				"An admin account signs in with a one-time code "
				"too, and %s has none set up: run 'careweave user "
				"totp %s' on the server", u->username, u->username);
	}
	if (!u->totp)
		return CW_OK;
	ok = code && *code &&
	     access_totp_verify(u->totp, code, now, u->totp_step, step);
	sodium_memzero((unsigned char *)u->totp, STORE_TOTP_KEY);
	if (ok)
		return CW_OK;
	log_info("access: sign-in refused: uid %lld gave %s one-time code",
		 (long long)u->uid, code && *code ? "a wrong or used" : "no");
	count_failure(ac, u, now);
	return login_failed(d, t0, code && *code ? NULL :
		"A one-time code is required: send it as \"totp\" with the "
		"username and password");
}

static void
who_of(const struct store_user *u, enum access_role role, int64_t expires,
       int64_t absolute, struct access_who *who)
{
	who->uid = u->uid;
	who->username = u->username;
	who->role = role;
	who->link = u->link;
	who->expires = expires < absolute ? expires : absolute;
	who->absolute = absolute;
}

enum cw_err
access_login(struct access *ac, struct arena *a, const char *remote,
	     const char *username, const char *pw, size_t n, const char *totp,
	     struct access_login *out, unsigned *retry_s, struct diag *d)
{
	int64_t t0 = mono_ms(), now = access_now(ac), retry = 0, step = 0;
	char name[ACCESS_USERNAME_MAX + 1];
	unsigned char raw[32];
	struct store_session ss = {0};
	struct store_user u;
	struct diag quiet;
	enum access_role role = ACCESS_ROLE_COUNT;
	enum cw_err err;
	bool known, ok, allowed;

	memset(out, 0, sizeof(*out));
	*retry_s = 0;
	pthread_mutex_lock(&ac->mu);
	allowed = access_rl_take(&ac->rl, remote ? remote : "", now, &retry);
	pthread_mutex_unlock(&ac->mu);
	if (!allowed) {
		*retry_s = (unsigned)((retry + 999) / 1000);
		log_warn("access: sign-in attempts over the limit for an address");
		return diag_err(d, CW_ERATE, "throttled", NULL,
				"Too many sign-in attempts from this address; "
				"try again in %u s", *retry_s);
	}
	diag_init(&quiet, a);
	known = !access_username_norm(username, name, &quiet) &&
		store_user_get(ac->store, a, name, &u) == CW_OK &&
		access_role_parse(u.role, &role);
	/* Always one argon2id run, against the dummy when the user is
	 * unknown, and before looking at the lock or the disabled flag. */
	ok = n <= ACCESS_PASSWORD_MAX &&
	     verify_bounded(ac, known ? u.hash : ac->dummy, pw, n) && known;
	if (!known)
		return login_failed(d, t0, NULL);
	/* A known user's failure names them in the audit record (out->who,
	 * never sent to the client); an unknown name is not kept at all. */
	who_of(&u, role, now, now, &out->who);
	if (u.disabled) {
		log_info("access: sign-in refused: uid %lld is disabled",
			 (long long)u.uid);
		return login_failed(d, t0, NULL);
	}
	if (u.locked_until > now) {
		log_info("access: sign-in refused: uid %lld is locked",
			 (long long)u.uid);
		return login_failed(d, t0, NULL);
	}
	if (!ok) {
		count_failure(ac, &u, now);
		return login_failed(d, t0, NULL);
	}
	/* The password was right: only now may an answer say more. */
	if ((err = check_second_factor(ac, &u, role, totp, now, t0, &step, d)))
		return err;

	memset(&out->who, 0, sizeof(out->who));
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(out->token, sizeof(out->token), raw, sizeof(raw));
	sodium_memzero(raw, sizeof(raw));
	if (!access_token_hash(out->token, ss.hash) ||
	    !access_csrf_of(out->token, out->csrf)) {
		err = CW_EINTERNAL;
		goto out_wipe;
	}
	ss.uid = u.uid;
	ss.created = now;
	ss.last_seen = now;
	ss.expires = now + ac->absolute_ms;
	ss.totp_step = step;
	err = store_session_add(ac->store, &ss, now);
	if (err == CW_ECONFLICT) {
		/* another sign-in took this code's step first: a replay */
		sodium_memzero(out, sizeof(*out));
		count_failure(ac, &u, now);
		return login_failed(d, t0, NULL);
	}
	if (err)
		goto out_wipe;
	act_set(ac, ss.hash, now);
	who_of(&u, role, now + ac->idle_ms, ss.expires, &out->who);
	memcpy(out->who.sid, ss.hash, sizeof(ss.hash));
	log_info("access: uid %lld signed in", (long long)u.uid);
	return CW_OK;

out_wipe:
	sodium_memzero(out, sizeof(*out));
	return diag_err(d, err, "exception", NULL, "Cannot start a session");
}

/* ---- every request -------------------------------------------------------- */

enum cw_err
access_authenticate(struct access *ac, struct arena *a,
		    const struct access_cred *cred, struct access_who *who,
		    struct diag *d)
{
	unsigned char sid[STORE_SESSION_HASH];
	char csrf[ACCESS_TOKEN_HEX + 1];
	struct store_session ss;
	enum access_role role;
	int64_t now, mono, seen;
	enum cw_err err;
	bool cached;

	memset(who, 0, sizeof(*who));
	if (!cred->token || !*cred->token)
		return diag_err(d, CW_EUNAUTH, "login", NULL,
				"Sign in first: send the session token as "
				"'Authorization: Bearer TOKEN' (POST /auth/login)");
	if (!access_token_hash(cred->token, sid))
		return diag_err(d, CW_EUNAUTH, "login", NULL,
				"The session token is not valid");
	/* Both clocks before the lookup: its snapshot is no older. */
	now = access_now(ac);
	mono = mono_ms();
	cached = act_cached(ac, a, sid, mono, &ss, &role);
	if (!cached) {
		err = store_session_get(ac->store, a, sid, &ss);
		if (err == CW_ENOTFOUND)
			return diag_err(d, CW_EUNAUTH, "login", NULL,
					"The session token is not valid");
		if (err)
			return diag_err(d, err, "exception", NULL,
					"Cannot look up the session");
		role = ACCESS_ROLE_COUNT;
		access_role_parse(ss.user.role, &role);
	}
	if (ss.revoked)
		return diag_err(d, CW_EUNAUTH, "login", NULL,
				"The session has ended (signed out); sign in again");
	if (ss.user.disabled)
		return diag_err(d, CW_EUNAUTH, "login", NULL,
				"The session has ended; sign in again");
	if (now >= ss.expires)
		return diag_err(d, CW_EUNAUTH, "login", NULL,
				"The session has expired (%lld hours after sign-in); "
				"sign in again", (long long)(ac->absolute_ms / 3600000));
	seen = act_get(ac, sid);
	if (ss.last_seen > seen)
		seen = ss.last_seen;
	if (now - seen >= ac->idle_ms)
		return diag_err(d, CW_EUNAUTH, "login", NULL,
				"The session has expired after %lld minutes without "
				"activity; sign in again",
				(long long)(ac->idle_ms / 60000));
	/* Double submit, checked against the token itself: a cookie set by
	 * someone else (a sibling site) cannot come with a matching value. */
	if (cred->from_cookie && cred->changes_state) {
		if (!access_csrf_of(cred->token, csrf) || !cred->csrf_header ||
		    !cred->csrf_cookie ||
		    strlen(cred->csrf_header) != ACCESS_TOKEN_HEX ||
		    strlen(cred->csrf_cookie) != ACCESS_TOKEN_HEX ||
		    sodium_memcmp(csrf, cred->csrf_header, ACCESS_TOKEN_HEX) ||
		    sodium_memcmp(csrf, cred->csrf_cookie, ACCESS_TOKEN_HEX))
			return diag_err(d, CW_EFORBIDDEN, "forbidden", NULL,
					"A change sent with the session cookie must "
					"carry the X-CSRF-Token header, equal to the "
					"cw_csrf cookie");
	}
	if (cred->may_block && now - ss.last_seen >= ACCESS_TOUCH_MS) {
		if (store_session_touch(ac->store, sid, now))
			log_warn("access: cannot record session activity");
		else
			ss.last_seen = now;
		cached = false; /* hold the new last_seen */
	}
	if (cached)
		act_set(ac, sid, now);
	else
		act_hold(ac, sid, now, mono, &ss, role);
	who_of(&ss.user, role, now + ac->idle_ms, ss.expires, who);
	memcpy(who->sid, sid, sizeof(sid));
	return CW_OK;
}

enum cw_err
access_logout(struct access *ac, const struct access_who *who)
{
	enum cw_err err = store_session_revoke(ac->store, who->sid);

	act_forget(ac, who->sid);
	return err;
}
