/* access/access.h: who is calling. Users, passwords, sign-in and sessions.
 *
 * This is the first slice of access/: people stored in the database
 * (store_user_*), each with one role and linked to the FHIR resource that
 * is that person (Practitioner, Patient or RelatedPerson; admins may have
 * none), argon2id password hashes, one-time codes (TOTP) as a second
 * factor, sign-in with lockout and a per-address limit, and sessions held server-side as the hash of an opaque token.
 * The states a session and an account go through are in access/README.md.
 *
 * access/ knows nothing of HTTP: api/ reads the Authorization header and
 * the cookies and hands the token to access_authenticate, which sits on
 * the one request path (api_handle) so that no route can bypass it.
 *
 * What each signed-in user may see and change is decided in policy.c
 * (the authorization section below): roles, care-team membership, the
 * patient's Consent and security labels. api/ asks it on every read,
 * search and write path; the rules and the why are in access/README.md.
 * Non-HTTP doors (careweave import, demo, export, user) are operator tools:
 * they run with the database file's permissions and sign in as nobody.
 *
 * Limits (also in docs/ARCHITECTURE.md):
 *   password              12 to 1024 bytes, at least 12 characters
 *   password hash         argon2id, 19 MiB, 2 passes, 1 lane (OWASP minimum)
 *   hashing at once       ACCESS_HASH_PARALLEL (4) sign-ins hash at a time,
 *                         the rest wait: at most 76 MiB for argon2id
 *   failed sign-ins       5 in a row lock the account for 1 min, then 2, 4,
 *                         ... at most 1 h; a success clears the count; a
 *                         wrong or missing one-time code is a failure
 *   one-time codes        TOTP, 6 digits, 30 s, one step either side;
 *                         required for admins (totp.c)
 *   failed sign-in time   answered no sooner than ACCESS_FAIL_FLOOR_MS after
 *                         it arrived, known user or not
 *   per-address attempts  a bucket of 30, one back every 2 s (30 a minute
 *                         sustained), ACCESS_RL_SLOTS addresses remembered;
 *                         over it: CW_ERATE (429) before any hashing
 *   idle sessions         end after ACCESS_IDLE_DEFAULT_S (900 s) without a
 *                         request (`careweave serve --session-idle`)
 *   any session           ends ACCESS_ABSOLUTE_S (12 h) after sign-in
 *   session memory        ACCESS_ACT_SLOTS sessions' last request time and
 *                         row kept in memory, the row read again after
 *                         ACCESS_SESSION_RECHECK_MS (1 s); see README.md
 *
 * Thread safety: a struct access may be used from every HTTP thread at
 * once; its tables are guarded by one mutex held for a few comparisons. */
#ifndef CW_ACCESS_H
#define CW_ACCESS_H

#include "base/base.h"
#include "store/store.h"

struct access; /* opaque */

enum access_role {
	ACCESS_ADMIN,
	ACCESS_COORDINATOR,
	ACCESS_PHYSICIAN,
	ACCESS_NURSE,
	ACCESS_PHARMACIST,
	ACCESS_THERAPIST,
	ACCESS_SOCIAL_WORKER,
	ACCESS_PATIENT,
	ACCESS_CAREGIVER,
	ACCESS_SERVICE,   /* another system (an EHR interface): all data,
			     always audited as such; see access/README.md */
	ACCESS_PRIVACY_OFFICER, /* no clinical data; reads the notifications
			     addressed to them (break-the-glass) */
	ACCESS_ROLE_COUNT
};

#define ACCESS_PASSWORD_MIN 12    /* characters (UTF-8 code points) */
#define ACCESS_PASSWORD_MAX 1024  /* bytes */
#define ACCESS_USERNAME_MAX 64
#define ACCESS_TOKEN_HEX 64       /* a token is 32 random bytes as hex */
#define ACCESS_HASH_MAX 128       /* crypto_pwhash_STRBYTES */
#define ACCESS_PWHASH_OPS 2
#define ACCESS_PWHASH_MEM (19u << 20)
#define ACCESS_HASH_PARALLEL 4
#define ACCESS_FAILS_TO_LOCK 5
#define ACCESS_LOCK_FIRST_MS (60 * 1000)
#define ACCESS_LOCK_MAX_MS (60 * 60 * 1000)
#define ACCESS_FAIL_FLOOR_MS 250
#define ACCESS_RL_SLOTS 1024
#define ACCESS_RL_BURST 30
#define ACCESS_RL_REFILL_MS 2000
#define ACCESS_IDLE_DEFAULT_S 900
#define ACCESS_ABSOLUTE_S (12 * 3600)
#define ACCESS_ACT_SLOTS 4096
/* A session's row is read again at most this long after the last read.
 * Sign-out in this server ends a session at once; `user disable` and
 * `reset-password` (the CLI, another process) wait this long after their
 * commit, so when they return no server serves the old sessions. */
#define ACCESS_SESSION_RECHECK_MS 1000
/* The longest link a session slot holds ("Practitioner/" + a 64-char id). */
#define ACCESS_LINK_MAX 96
/* last_seen is written to the database at most this often per session. */
#define ACCESS_TOUCH_MS (60 * 1000)
/* A demo password: 4 groups of 5 base32 characters and dashes (100 bits). */
#define ACCESS_DEMO_PASSWORD_LEN 23

/* "social-worker" for ACCESS_SOCIAL_WORKER. Static storage. */
const char *access_role_name(enum access_role role);
/* Parses a role name; false when it is not one of ours. */
bool access_role_parse(const char *s, enum access_role *out);
/* The resource type a user of role links to ("Practitioner"), NULL for
 * admin (which links to nothing) and service (nothing, or a Device). */
const char *access_role_link_type(enum access_role role);
/* Whether role is a clinician's (coordinator, physician, nurse,
 * pharmacist, therapist, social-worker): reaches patients through care
 * teams, keeps the care directory, may break the glass. */
bool access_role_clinical(enum access_role role);

/* ---- clock ------------------------------------------------------------- */

/* Time source of struct access, in ms since the epoch.
 *
 * Production uses the wall clock. Tests set access_options.clock (unit
 * tests), or, for the black-box tests, run a test build (make's
 * build/test, compiled with -DCW_TEST_HOOKS) with
 * CAREWEAVE_TEST_CLOCK_FILE=PATH: the whole seconds written in that file
 * are added to the wall clock, re-read on every use. A release build has no
 * such code at all, so neither the environment nor any request can move
 * its clock. */
typedef int64_t (*access_clock_fn)(void *ctx);

struct access_options {
	unsigned idle_s;       /* 0: ACCESS_IDLE_DEFAULT_S */
	unsigned absolute_s;   /* 0: ACCESS_ABSOLUTE_S */
	access_clock_fn clock; /* NULL: the wall clock (see above) */
	void *clock_ctx;
	unsigned glass_max_min; /* longest break-the-glass grant, minutes;
				   0: ACCESS_GLASS_MAX_DEFAULT */
};

/* A new access service over s (borrowed; close it after access_free).
 * Computes the dummy hash unknown users are checked against (one argon2id
 * run, tens of ms). NULL if libsodium cannot start or memory runs out. */
struct access *access_new(struct store *s, const struct access_options *opt);
void access_free(struct access *ac);
/* The access clock now, in ms. */
int64_t access_now(const struct access *ac);
/* The longest break-the-glass grant this service gives, in minutes. */
unsigned access_glass_max(const struct access *ac);

/* ---- passwords and tokens ---------------------------------------------- */

/* Checks the policy (length) of a password; CW_EINVAL with an issue. */
enum cw_err access_password_policy(const char *pw, size_t n, struct diag *d);
/* Hashes pw with argon2id into out (a PHC string, "$argon2id$v=19$..."). */
enum cw_err access_password_hash(const char *pw, size_t n,
				 char out[ACCESS_HASH_MAX]);
/* Whether pw matches the PHC string hash (constant time in the password). */
bool access_password_ok(const char *hash, const char *pw, size_t n);
/* The stored form of a token: BLAKE2b-256 of its 32 bytes. false when tok
 * is not 64 hex digits. */
bool access_token_hash(const char *tok, unsigned char out[STORE_SESSION_HASH]);
/* The CSRF token of a session token: a keyed hash of it, so the server can
 * check X-CSRF-Token without storing anything and a cookie planted by
 * someone else cannot carry a matching one. out gets 64 hex digits + NUL. */
bool access_csrf_of(const char *tok, char out[ACCESS_TOKEN_HEX + 1]);
/* How long the lockouts-th lock in a row lasts: 1 min doubling, capped. */
int64_t access_lock_ms(int lockouts);
/* A random demo password: "ABCDE-FGHIJ-KLMNO-PQRST" (libsodium random). */
void access_demo_password(char out[ACCESS_DEMO_PASSWORD_LEN + 1]);

/* ---- users (the CLI's door) -------------------------------------------- */

/* Lower-cases username into out and checks it: 1 to 64 of [a-z0-9._@-].
 * CW_EINVAL with an issue otherwise. */
enum cw_err access_username_norm(const char *username,
				 char out[ACCESS_USERNAME_MAX + 1],
				 struct diag *d);
/* Adds a user: checks the username, that link ("Type/id") names an
 * existing resource of the type role links to (admins: NULL, or any of the
 * three types), the password policy; hashes the password. CW_EINVAL
 * (issue in d) for bad input, CW_ECONFLICT if the username is taken. The
 * caller wipes pw. */
enum cw_err access_user_add(struct store *s, struct arena *a,
			    const char *username, enum access_role role,
			    const char *link, const char *pw, size_t n,
			    struct diag *d);
/* Sets a new password, clears any lock and signs the user out everywhere.
 * CW_ENOTFOUND if there is no such user. */
enum cw_err access_user_reset_password(struct store *s, const char *username,
				       const char *pw, size_t n,
				       struct diag *d);
/* Disables a user and signs them out everywhere. Like reset-password,
 * returns ACCESS_SESSION_RECHECK_MS after the commit (see there). */
enum cw_err access_user_disable(struct store *s, const char *username,
				struct diag *d);

/* ---- one-time codes (totp.c) --------------------------------------------- */

/* TOTP (RFC 6238) with HMAC-SHA1, what authenticator apps compute: 6
 * digits, a 30 s step, codes of the step before and after now accepted,
 * never a step at or before the last one accepted (a code works once).
 * Admins must have it; any other user may (`careweave user totp`). */
#define ACCESS_SHA1_LEN 20
#define ACCESS_TOTP_KEY 20        /* secret bytes (160 bits, RFC 4226) */
#define ACCESS_TOTP_B32 32        /* its base32, no padding */
#define ACCESS_TOTP_DIGITS 6
#define ACCESS_TOTP_PERIOD_S 30
#define ACCESS_TOTP_WINDOW 1      /* steps either side of now */

/* A new secret, shown once: base32 and the otpauth:// URI of the user. */
struct access_totp {
	char secret[ACCESS_TOTP_B32 + 1];
	char uri[256];
};

/* SHA-1 (RFC 3174) and HMAC-SHA1 (RFC 2104) of msg; for TOTP only. */
void access_sha1(const void *msg, size_t n, unsigned char out[ACCESS_SHA1_LEN]);
void access_hmac_sha1(const void *key, size_t kn, const void *msg, size_t n,
		      unsigned char out[ACCESS_SHA1_LEN]);
/* The HOTP value (RFC 4226) of counter: digits (1 to 9) decimal digits. */
uint32_t access_hotp(const void *key, size_t kn, uint64_t counter, int digits);
/* The TOTP time step of now (ms): now / 30 s. */
int64_t access_totp_step(int64_t now_ms);
/* Whether code (ACCESS_TOTP_DIGITS ASCII digits) is the code of a step
 * within ACCESS_TOTP_WINDOW of now that is later than last_step; then
 * *step is that step (the latest, should two match). Costs three HMACs
 * whatever the answer. */
bool access_totp_verify(const unsigned char key[ACCESS_TOTP_KEY],
			const char *code, int64_t now_ms, int64_t last_step,
			int64_t *step);
/* RFC 4648 base32 of n bytes, no padding, into out (8n/5 rounded up + 1). */
void access_base32(const unsigned char *in, size_t n, char *out);
/* Gives username a new random secret (on), replacing any, and fills out
 * (may be NULL) with it for the operator; or removes it (!on). Either way
 * every session of the user ends, and like reset-password it returns
 * ACCESS_SESSION_RECHECK_MS after the commit. CW_ENOTFOUND if there is no
 * such user. The secret is kept only in the users table. */
enum cw_err access_user_totp_set(struct store *s, const char *username,
				 bool on, struct access_totp *out,
				 struct diag *d);

/* ---- sign-in and sessions ---------------------------------------------- */

/* Who is calling: the signed-in user of a request. Strings in the
 * request's arena. */
struct access_who {
	int64_t uid;
	const char *username;
	enum access_role role;
	const char *link;      /* "Practitioner/abc" or NULL */
	int64_t expires;       /* ms: the sooner of idle end and absolute end */
	int64_t absolute;      /* ms: the absolute end */
	unsigned char sid[STORE_SESSION_HASH]; /* the stored hash */
};

/* A new session from access_login. */
struct access_login {
	char token[ACCESS_TOKEN_HEX + 1]; /* give it to the client, keep nothing */
	char csrf[ACCESS_TOKEN_HEX + 1];
	struct access_who who;
};

/* Signs in. remote is the client address (the per-address limit); totp
 * the one-time code, or NULL. Every failure (unknown user, wrong password,
 * locked or disabled account, a wrong or replayed code) is the same
 * CW_EUNAUTH with the same message, takes the same argon2id run and
 * answers no sooner than ACCESS_FAIL_FLOOR_MS. Only after the right
 * password does the message say more: that a code is required (a user
 * with TOTP who sent none; counted as a failure), or that an admin has no
 * TOTP set up (refused, not counted). CW_ERATE when remote is over its
 * limit (d says when to retry, *retry_s too). Blocks (hashing, a commit):
 * call it from a thread that may wait. On CW_EUNAUTH
 * out->who names the user when the username was someone's (for the audit
 * record; never for the client), and is all zero when it named nobody. */
enum cw_err access_login(struct access *ac, struct arena *a, const char *remote,
			 const char *username, const char *pw, size_t n,
			 const char *totp, struct access_login *out,
			 unsigned *retry_s, struct diag *d);

/* What a request presents. api/ fills it from the headers. */
struct access_cred {
	const char *token;       /* Bearer value or cw_session cookie, or NULL */
	bool from_cookie;        /* token came from the cookie */
	const char *csrf_cookie; /* cw_csrf cookie or NULL */
	const char *csrf_header; /* X-CSRF-Token or NULL */
	bool changes_state;      /* not GET, HEAD or OPTIONS */
	bool may_block;          /* on a worker: may write last_seen */
};

/* Checks a credential and fills who. CW_EUNAUTH (401) for no token, an
 * unknown or malformed one, a revoked, expired or disabled user's session;
 * CW_EFORBIDDEN (403) for a cookie-authenticated state change without the
 * matching X-CSRF-Token. d says which, in words a client may read. Marks
 * the session active now. */
enum cw_err access_authenticate(struct access *ac, struct arena *a,
				const struct access_cred *cred,
				struct access_who *who, struct diag *d);
/* Signs out the session who came from: revoked on disk before it returns. */
enum cw_err access_logout(struct access *ac, const struct access_who *who);

/* ---- authorization (policy.c) ------------------------------------------ */

/* What one user may do with one patient's compartment. Arrays in the
 * request's arena. A type or label is covered when it is allowed (all_*
 * or listed) and not denied. */
struct access_grant {
	bool read;
	bool write;
	bool all_types;            /* no class restriction */
	size_t ntypes;
	const char **types;        /* covered types when !all_types */
	bool all_labels;           /* every sensitive label (own record, service) */
	size_t nlabels;
	const char **labels;       /* sensitive codes a permit names */
	size_t ndeny_types;
	const char **deny_types;   /* denied classes (deny wins) */
	size_t ndeny_labels;
	const char **deny_labels;  /* denied labels (deny wins) */
};

/* The per-request memo of one user's access: whose patients they reach
 * and the grant for each, computed on first use from CareTeam, Consent,
 * PractitionerRole and RelatedPerson through store_search. Lives in a
 * (the request's arena), so a Consent change takes effect at the next
 * request. */
struct access_scope;

/* A scope for who over s (the store access reads). NULL on no memory. */
struct access_scope *access_scope_new(struct access *ac, struct store *s,
				      struct arena *a,
				      const struct access_who *who);
/* Whether the scope sees and writes everything (the service role). */
bool access_scope_all(const struct access_scope *sc);
/* Whether the role may read non-compartment resources (the care
 * directory: Practitioner, Organization, Medication...). */
bool access_scope_directory_read(const struct access_scope *sc);

/* The grant of the scope's user for patient_id (never NULL: a patient
 * out of reach gets a grant with read and write false). */
enum cw_err access_patient_scope(struct access_scope *sc,
				 const char *patient_id,
				 struct access_grant *out);
/* The patients the user may read at all, for a search restriction
 * (fhir_query.allowed_patients). *all is true when no restriction
 * applies (service). */
enum cw_err access_reachable(struct access_scope *sc, const char *const **ids,
			     size_t *n, bool *all);

/* Whether g covers a resource of type with these meta.security codes
 * (system|code pairs read from res; res may be NULL for none). */
bool access_grant_covers(const struct access_grant *g, const char *type,
			 const json_t *res);
/* Whether a meta.security coding is sensitive (withheld unless a
 * consent names it): confidentiality R or V, or a v3-ActCode
 * sensitivity code (PSY, ETH, HIV, SEX, ...). */
bool access_label_sensitive(const char *system, const char *code);

/* Whether the scope may read res (a stored resource of rt). Parses
 * nothing itself: the caller gives the parsed value. */
enum cw_err access_may_read_res(struct access_scope *sc,
				const struct fhir_restype *rt, const json_t *res,
				bool *ok);
/* The same for stored JSON text (a search match, an include). */
enum cw_err access_may_read_text(struct access_scope *sc, const char *type,
				 const char *json, size_t n, bool *ok);

/* Checks a write: the compartment patients of the new content (res, NULL
 * for a delete) and of the current version (cur, NULL when there is
 * none) must all be writable, and the same patients. CW_ENOTFOUND (as a
 * missing resource) when the caller may not read the current version or
 * a patient; CW_EFORBIDDEN (403) when they may see it but not write it.
 * The issue goes to d with loc. */
enum cw_err access_check_write(struct access_scope *sc,
			       const struct fhir_restype *rt, const json_t *res,
			       const json_t *cur, const char *loc,
			       struct diag *d);

/* ---- break-the-glass (policy.c) --------------------------------------- */

/* A clinician who is not on a patient's care team may claim emergency
 * access with a stated reason, for a limited time. While the grant is
 * live the scope treats the patient as a care-team patient with nothing
 * withheld: the emergency overrides the patient's Consent denies and the
 * sensitive labels (README.md says why). The grant, a Communication to
 * the patient's coordinators and the privacy officers, and the audit
 * record are written in one transaction (api/glass.c). */
#define ACCESS_GLASS_REASON_MIN 10     /* characters (UTF-8 code points) */
#define ACCESS_GLASS_REASON_MAX 1000
#define ACCESS_GLASS_MINUTES_DEFAULT 60
#define ACCESS_GLASS_MAX_DEFAULT 240   /* `serve --break-glass-max-minutes` */

/* Whether who may claim emergency access at all: a clinician whose
 * account is linked to a Practitioner (the notification's sender). */
bool access_may_break_glass(const struct access_who *who);
/* Checks a claim's values: CW_EINVALID (422) for a reason shorter than
 * ACCESS_GLASS_REASON_MIN or longer than ACCESS_GLASS_REASON_MAX
 * characters (or holding a control character other than tab and line
 * breaks), or minutes not in 1..access_glass_max. The issue goes to d. */
enum cw_err access_glass_check(const struct access *ac, const char *reason,
			       size_t n, long minutes, struct diag *d);
/* Whether who may end a live grant: the clinician may end their own
 * (api/glass.c checks that it is theirs), a privacy officer any. */
bool access_may_end_glass(const struct access_who *who);
/* Whether the request whose scope is sc reached patient pid only through
 * a live break-the-glass grant: the patient is not in the user's care-team
 * reach, or is only with something withheld that the grant sets aside.
 * false for a scope not loaded yet (nothing was decided through it) and
 * for unrestricted scopes. No lookup: for the read's audit record (its
 * purpose BTG). */
bool access_scope_glass(const struct access_scope *sc, const char *pid);
/* Who is told of a grant to patient_id: the Practitioner (or
 * PractitionerRole, Organization) of every coordinator on the patient's
 * active CareTeams (a participant whose user has the coordinator role, or
 * whose participant role says care coordinator), and the Practitioner of
 * every enabled privacy officer. References ("Practitioner/abc"),
 * distinct, in sc's arena. Reads CareTeams, PractitionerRoles and the
 * users table; call it before store_write. */
enum cw_err access_glass_recipients(struct access_scope *sc,
				    const char *patient_id,
				    const char ***refs, size_t *n);

/* Whether who may ask for resources of rt at all (read, search, history
 * of the type). false for a privacy officer and the types of the patient
 * compartment, Patient included, but Communication: 403 before any
 * lookup. rt NULL (system level) is always true. */
bool access_role_may_ask(const struct access_who *who,
			 const struct fhir_restype *rt);
/* For a role that reaches no patient but some resources by reference (a
 * privacy officer: the Communications whose recipient is their
 * Practitioner), the search parameter and value every search of rt must
 * carry instead of the patient restriction; false when there is none. */
bool access_search_by_ref(const struct access_scope *sc,
			  const struct fhir_restype *rt, const char **param,
			  const char **value);

/* ---- the pure parts, for the unit tests ---- */

/* What a patient's Consents say about one actor set (the user's
 * Practitioner, PractitionerRoles, Organizations and CareTeams, or a
 * RelatedPerson), at now (ms). */
struct access_consent {
	bool permit;        /* some permit provision names the actor */
	bool permit_all;    /* ... without class or label restriction */
	bool deny_all;      /* a deny for all data covers the actor */
	size_t ntypes, nlabels, ndeny_types, ndeny_labels;
	const char **types, **labels, **deny_types, **deny_labels;
};

/* Adds what one Consent resource says to out (zero it first). Consents
 * that are not active patient-privacy ones say nothing. A provision
 * without an actor of its own takes its parent's; one without any actor
 * covers everyone when it denies and nobody when it permits. */
enum cw_err access_consent_eval(struct arena *a, const json_t *consent,
				const char *const *actors, size_t nactors,
				int64_t now, struct access_consent *out);
/* Whether member (one of actors) is an active participant of an active
 * CareTeam at now: team status active, team period and the
 * participant's period (when given) covering now. */
bool access_careteam_member(const json_t *careteam, const char *const *actors,
			    size_t nactors, int64_t now);

#endif
