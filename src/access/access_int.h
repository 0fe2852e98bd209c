/* access/access_int.h: what access.c shares with totp.c and its unit tests,
 * nothing more.
 *
 * The per-address attempt limit is a small fixed table: an open-addressed
 * hash of the address text, probed ACCESS_RL_PROBE slots, each a token
 * bucket (ACCESS_RL_BURST attempts, one back every ACCESS_RL_REFILL_MS).
 * A new address takes a free slot in its probe window, else one whose
 * bucket has refilled completely (nothing to forget), else the one used
 * longest ago. Not locked itself: struct access holds its mutex. */
#ifndef CW_ACCESS_INT_H
#define CW_ACCESS_INT_H

#include "access/access.h"

#define ACCESS_RL_PROBE 8
#define ACCESS_ADDR_MAX 64

struct access_rl_slot {
	char addr[ACCESS_ADDR_MAX]; /* "" when free */
	int64_t t;                  /* when tokens was last brought up to date */
	int tokens;
};

struct access_rl {
	struct access_rl_slot slot[ACCESS_RL_SLOTS];
};

/* After a store_user_* change that revoked the sessions of user name:
 * the issue for err (CW_ENOTFOUND: "No user", else "Cannot store the
 * <what>"), or, on CW_OK, waits ACCESS_SESSION_RECHECK_MS so that no
 * running server still serves those sessions when the caller returns. */
enum cw_err access_user_revoked(enum cw_err err, const char *name,
				const char *what, struct diag *d);

/* Takes one attempt for addr at now. true if allowed; otherwise false and
 * *retry_ms is how long until the next one is. */
bool access_rl_take(struct access_rl *rl, const char *addr, int64_t now,
		    int64_t *retry_ms);

#endif
