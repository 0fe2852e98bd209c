/* hl7v2/receive.h: what an HL7 v2 message does to the record.
 *
 * A message (from the MLLP listener, or replayed by an operator) is
 * parsed, checked (type, event, version, processing id), looked up in the
 * message log by its key (MSH-3, MSH-4, MSH-10), mapped to the entries of
 * a FHIR transaction and run through the one write path (api_bundle:
 * validation, the rules, the audit record naming the feed), with its log
 * row in the same transaction. The answer is an ACK: AA when applied (or
 * applied already: a message sent again changes nothing and gets the
 * answer it got), AE when understood but not applied (the sender fixes it
 * and sends again, or an operator replays it), AR for what careweave does
 * not take. Nothing here logs a value of a message. */
#ifndef CW_HL7V2_RECEIVE_H
#define CW_HL7V2_RECEIVE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/base.h"
#include "store/store.h"

struct api;

struct hl7_receiver_options {
	struct api *api;     /* the write path (borrowed; its rules apply) */
	struct store *store; /* the same store (borrowed) */
	struct coord *coord; /* the patient matcher's (borrowed; NULL: a
				patient is found by identifier only) */
	int tz_minutes;      /* minutes east of UTC of the feeds' local time,
				for date/times they send without a zone */
	bool accept_test;    /* also apply messages with processing id T
				(training); default: AR, a test message
				never reaches a real record */
};

struct hl7_receiver;

/* NULL on no memory. Free with hl7_receiver_free after the listener stopped. */
struct hl7_receiver *hl7_receiver_new(const struct hl7_receiver_options *o);
void hl7_receiver_free(struct hl7_receiver *r);

/* The MLLP handler (mllp_handler, ctx the receiver): one message, its
 * answer appended to reply. too_big: msg is the first bytes of a message
 * over the listener's limit (rejected). peer: "ip:port", or NULL. */
void hl7_receive(void *ctx, const char *msg, size_t n, bool too_big,
		 const char *peer, struct sbuf *reply);

/* Processes again the logged message seq (`careweave hl7 replay`), as if
 * it had just arrived from its sender; out (may be NULL) gets its row as
 * it is afterwards. CW_ENOTFOUND when there is no such row; CW_EINVAL,
 * with why in d, when it was accepted already (nothing to replay). */
enum cw_err hl7_replay(struct hl7_receiver *r, int64_t seq,
		       struct store_hl7 *out, struct diag *d);

#endif
