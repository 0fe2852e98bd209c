/* hl7v2/receive.c: one HL7 v2 message, from bytes to the record and back
 * to an ACK (see receive.h for what it promises).
 *
 * The steps, and the answer each failure gets:
 *   1. too large (the listener cut it) -> AR;
 *   2. parse (hl7_parse) -> AR: not HL7 v2 at all;
 *   3. the header (hl7_header): no type, event or control id, a version
 *      outside 2.1-2.8 -> AR; processing id other than P (T only when
 *      accept_test) -> AR; a type or event careweave does not take (ADT
 *      events of adt.c, ORU^R01) -> AR;
 *   4. the log row of the key: accepted already -> the answer it got, one
 *      more attempt counted, nothing else changes;
 *   5. the mapping (adt.c, oru.c) -> AE with the problems (a required field
 *      missing, an identifier two Patients hold, a cancel of nothing);
 *   6. the transaction through api_bundle, the log row in its job -> AA,
 *      or AE with why (validation, a concurrent change, the rules).
 * A message that was rejected or failed is logged in a job of its own, so
 * an operator sees it (`careweave hl7 list`) and replays it once its
 * cause is fixed (`careweave hl7 replay`). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/api.h"
#include "hl7v2/map_int.h"
#include "hl7v2/receive.h"

#define RECEIVE_ARENA_MAX (256u << 20)

struct hl7_receiver {
	struct api *api;
	struct store *store;
	struct coord *coord;
	int tz_minutes;
	bool accept_test;
};

struct hl7_receiver *
hl7_receiver_new(const struct hl7_receiver_options *o)
{
	struct hl7_receiver *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->api = o->api;
	r->store = o->store;
	r->coord = o->coord;
	r->tz_minutes = o->tz_minutes;
	r->accept_test = o->accept_test;
	return r;
}

void
hl7_receiver_free(struct hl7_receiver *r)
{
	free(r);
}

/* One message being received. */
struct rx {
	struct hl7_receiver *r;
	struct arena *a;
	const char *raw;
	size_t n;
	const char *peer;
	struct hl7_msg *m;
	struct hl7_header h;
	struct store_hl7 row;    /* what is logged */
	struct store_hl7 prior;  /* the key's row before, when there is one */
	bool already;            /* accepted before: answer as then */
	struct sbuf ack;
};

static void
decref_cb(void *p)
{
	json_decref(p);
}

/* The answer for code with problems (the ACK text kept for the log). */
static const char *
answer(struct rx *x, enum hl7_ack_code code, const struct hl7_problem *p, size_t np)
{
	sbuf_reset(&x->ack);
	if (hl7_ack(x->a, x->m, x->raw, x->n, code, p, np, &x->ack))
		return NULL;
	return arena_strndup(x->a, x->ack.buf, x->ack.len);
}

static void
row_init(struct rx *x)
{
	memset(&x->row, 0, sizeof(x->row));
	x->row.sender = x->h.sending_app ? x->h.sending_app : "";
	x->row.facility = x->h.sending_facility ? x->h.sending_facility : "";
	x->row.control_id = x->h.control_id ? x->h.control_id : "";
	x->row.type = x->h.type ? arena_printf(x->a, "%s^%s", x->h.type,
					       x->h.trigger ? x->h.trigger : "") : NULL;
	x->row.version = x->h.version;
	x->row.peer = x->peer;
	x->row.updated = time_now_ms();
	x->row.raw.p = x->raw;
	x->row.raw.n = x->n;
}

static enum cw_err
put_row_cb(struct store_tx *tx, void *ctx)
{
	struct rx *x = ctx;

	return store_tx_hl7_put(tx, &x->row);
}

/* Logs a message that was not applied, in a job of its own. */
static void
log_failed(struct rx *x, int outcome, const char *detail, const char *ack)
{
	enum cw_err err;

	if (!x->h.control_id)
		return; /* no key: nothing an operator could replay */
	row_init(x);
	x->row.outcome = outcome;
	x->row.detail = detail;
	x->row.ack = ack;
	if ((err = store_write(x->r->store, put_row_cb, x)))
		log_warn("hl7: could not log a message: %s", cw_strerror(err));
}

/* Step 4: the key's row, as committed (a reader: no job for the common
 * case of a new message; log_in_tx decides again inside the change's job). */
static enum cw_err
lookup(struct rx *x)
{
	enum cw_err err = store_hl7_find(x->r->store, x->a, x->h.sending_app,
					 x->h.sending_facility, x->h.control_id, &x->prior);

	if (err == CW_ENOTFOUND)
		return CW_OK;
	if (err)
		return err;
	x->already = x->prior.outcome == STORE_HL7_ACCEPTED;
	return CW_OK;
}

/* A message accepted already, sent again: counted, nothing else changes. */
static enum cw_err
resent_cb(struct store_tx *tx, void *ctx)
{
	struct rx *x = ctx;

	row_init(x);
	x->row.outcome = STORE_HL7_ACCEPTED;
	x->row.ack = x->prior.ack;
	x->row.detail = x->prior.detail;
	x->row.resources = x->prior.resources;
	return store_tx_hl7_put(tx, &x->row);
}

/* Step 6, inside the transaction's job: the log row with what was written.
 * Another copy of the message may have been accepted meanwhile (two
 * connections): then this one is rolled back and answered as that one. */
static enum cw_err
log_in_tx(struct store_tx *tx, void *ctx, const char *const *written, size_t n)
{
	struct rx *x = ctx;
	struct store_hl7 now;
	struct sbuf sb = SBUF_INIT(1 << 20);
	enum cw_err err;

	err = store_tx_hl7_get(tx, x->a, x->row.sender, x->row.facility, x->row.control_id,
			       &now);
	if (!err && now.outcome == STORE_HL7_ACCEPTED) {
		x->already = true;
		x->prior = now;
		return CW_ECONFLICT;
	}
	if (err && err != CW_ENOTFOUND)
		return err;
	for (size_t i = 0; i < n; i++) {
		if (i)
			sbuf_addch(&sb, ' ');
		sbuf_adds(&sb, written[i]);
	}
	x->row.resources = n ? arena_strndup(x->a, sb.buf, sb.len) : NULL;
	sbuf_release(&sb);
	return store_tx_hl7_put(tx, &x->row);
}

/* The words for an AE from what the write path said (its first error). */
static const char *
why_of(struct rx *x, const struct diag *d, enum cw_err err)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->issues[i].sev <= DIAG_ERROR && d->issues[i].msg)
			return arena_printf(x->a, "%s%s%s", d->issues[i].msg,
					    d->issues[i].loc ? " at " : "",
					    d->issues[i].loc ? d->issues[i].loc : "");
	return arena_printf(x->a, "The change could not be written: %s", cw_strerror(err));
}

static int
code_of(enum cw_err err)
{
	switch (err) {
	case CW_EPRECOND:
		return 206; /* changed meanwhile: send again */
	case CW_EINVALID:
	case CW_EINVAL:
		return 102;
	case CW_ENOTFOUND:
		return 204;
	default:
		return 207;
	}
}

/* Steps 1 to 3: whether careweave takes the message; an AR otherwise. */
static bool
acceptable(struct rx *x, bool too_big, struct diag *d)
{
	struct hl7_problem p = {.segment = "MSH", .seq = 1};
	const char *ack;

	if (too_big) {
		p.code = 207;
		p.text = "The message is larger than careweave takes";
	} else if (hl7_parse(x->a, x->raw, x->n, &x->m, d)) {
		x->m = NULL;
		p.code = 100;
		p.text = arena_printf(x->a, "Not an HL7 v2 message: %s",
				      d->n && d->issues[0].msg ? d->issues[0].msg : "unreadable");
	} else if (hl7_header(x->m, &x->h, d)) {
		p.field = 9;
		p.code = x->h.version && x->h.type && x->h.control_id ? 203 : 101;
		p.text = d->n && d->issues[d->n - 1].msg ? d->issues[d->n - 1].msg :
			 "The header (MSH) is incomplete";
	} else if (x->h.processing_id && strcmp(x->h.processing_id, "P") &&
		   !(x->r->accept_test && !strcmp(x->h.processing_id, "T"))) {
		p.field = 11;
		p.code = 202;
		p.text = "careweave takes production messages only (MSH-11 P)";
	} else if (strcmp(x->h.type, "ADT") && strcmp(x->h.type, "ORU")) {
		p.field = 9;
		p.code = 200;
		p.text = arena_printf(x->a, "careweave does not take %s messages", x->h.type);
	} else if (!strcmp(x->h.type, "ORU") && strcmp(x->h.trigger, "R01")) {
		p.field = 9;
		p.code = 201;
		p.text = arena_printf(x->a, "careweave does not take the event ORU^%s", x->h.trigger);
	} else if (!strcmp(x->h.type, "ADT") && !hl7_adt_handles(x->h.trigger)) {
		p.field = 9;
		p.code = 201;
		p.text = arena_printf(x->a, "careweave does not take the event ADT^%s", x->h.trigger);
	} else {
		return true;
	}
	ack = answer(x, HL7_AR, &p, 1);
	log_failed(x, STORE_HL7_REJECTED, p.text, ack);
	log_info("hl7: a message from %s rejected (AR %d)", x->peer ? x->peer : "a replay",
		 p.code);
	return false;
}

/* Steps 4 to 6 for an acceptable message; the answer in x->ack. */
static void
apply(struct rx *x, struct diag *d)
{
	struct hl7_map mp = {.a = x->a, .store = x->r->store, .coord = x->r->coord,
			     .m = x->m, .h = &x->h,
			     .tz_minutes = x->r->tz_minutes};
	struct api_bundle_opt opt = {.agent = NULL};
	json_t *bundle, *out = NULL;
	const char *ack;
	enum cw_err err;

	if ((err = lookup(x))) {
		struct hl7_problem p = {.segment = "MSH", .seq = 1, .code = 207,
					.text = "careweave could not read its message log; send again"};

		answer(x, HL7_AE, &p, 1);
		return;
	}
	if (x->already) {
		if ((err = store_write(x->r->store, resent_cb, x)))
			log_warn("hl7: could not count a message sent again: %s", cw_strerror(err));
		sbuf_reset(&x->ack);
		sbuf_adds(&x->ack, x->prior.ack ? x->prior.ack : "");
		log_info("hl7: a message sent again from %s: answered as before",
			 x->peer ? x->peer : "a replay");
		return;
	}
	if (!(mp.entries = json_array()) || !arena_on_free(x->a, decref_cb, mp.entries)) {
		json_decref(mp.entries);
		return;
	}
	err = !strcmp(x->h.type, "ORU") ? hl7_oru_map(&mp, d) : hl7_adt_map(&mp, d);
	if (err || mp.failed) {
		const char *why = mp.nproblems ? mp.problems[0].text :
				  arena_printf(x->a, "careweave could not read the message: %s",
					       cw_strerror(err));
		struct hl7_problem p = {.segment = "MSH", .seq = 1, .code = 207, .text = why};

		ack = mp.nproblems ? answer(x, HL7_AE, mp.problems, mp.nproblems) :
				     answer(x, HL7_AE, &p, 1);
		log_failed(x, STORE_HL7_ERROR, why, ack);
		log_info("hl7: a message from %s not applied (AE)", x->peer ? x->peer : "a replay");
		return;
	}
	bundle = json_pack("{s:s, s:s, s:O}", "resourceType", "Bundle", "type", "transaction",
			   "entry", mp.entries);
	if (!bundle)
		return;
	/* the answer if it goes through, kept with the change */
	ack = answer(x, HL7_AA, mp.problems, mp.nproblems);
	row_init(x);
	x->row.outcome = STORE_HL7_ACCEPTED;
	x->row.ack = ack;
	x->row.detail = mp.nproblems ? mp.problems[0].text : NULL;
	opt.agent = arena_printf(x->a, "hl7v2:%s@%s", x->row.sender, x->row.facility);
	opt.remote = x->peer;
	opt.report_only = mp.report_only;
	opt.in_tx = log_in_tx;
	opt.in_tx_ctx = x;
	err = api_bundle(x->r->api, x->a, bundle, &opt, &out, d);
	json_decref(bundle);
	json_decref(out);
	if (x->already) {
		sbuf_reset(&x->ack);
		sbuf_adds(&x->ack, x->prior.ack ? x->prior.ack : "");
		return;
	}
	if (err) {
		const char *why = why_of(x, d, err);
		struct hl7_problem p = {.segment = "MSH", .seq = 1, .code = code_of(err),
					.text = why};

		ack = answer(x, HL7_AE, &p, 1);
		log_failed(x, STORE_HL7_ERROR, why, ack);
		log_info("hl7: a message from %s not applied (AE %s)",
			 x->peer ? x->peer : "a replay", cw_strerror(err));
		return;
	}
	log_info("hl7: %s from %s applied (AA)", x->row.type ? x->row.type : "a message",
		 x->peer ? x->peer : "a replay");
}

/* Receives raw; the answer into reply. */
static void
receive(struct hl7_receiver *r, const char *raw, size_t n, bool too_big,
	const char *peer, struct sbuf *reply)
{
	struct rx x = {.r = r, .raw = raw, .n = n, .peer = peer, .ack = SBUF_INIT(1 << 20)};
	struct diag d;

	if (!(x.a = arena_new(RECEIVE_ARENA_MAX)))
		return;
	diag_init(&d, x.a);
	if (acceptable(&x, too_big, &d))
		apply(&x, &d);
	if (!x.ack.len) {
		/* out of memory somewhere: still answer, so the sender retries */
		struct hl7_problem p = {.segment = "MSH", .seq = 1, .code = 207,
					.text = "careweave could not process the message; send again"};

		answer(&x, HL7_AE, &p, 1);
	}
	sbuf_add(reply, x.ack.buf, x.ack.len);
	sbuf_release(&x.ack);
	arena_free(x.a);
}

void
hl7_receive(void *ctx, const char *msg, size_t n, bool too_big, const char *peer,
	    struct sbuf *reply)
{
	receive(ctx, msg, n, too_big, peer, reply);
}

enum cw_err
hl7_replay(struct hl7_receiver *r, int64_t seq, struct store_hl7 *out, struct diag *d)
{
	struct store_hl7 row;
	struct sbuf reply = SBUF_INIT(1 << 20);
	enum cw_err err;

	if ((err = store_hl7_get(r->store, d->a, seq, &row)))
		return err;
	if (row.outcome == STORE_HL7_ACCEPTED)
		return diag_err(d, CW_EINVAL, "business-rule", NULL,
				"Message %lld was accepted already: nothing to replay",
				(long long)seq);
	receive(r, row.raw.p, row.raw.n, false, NULL, &reply);
	sbuf_release(&reply);
	if (out)
		return store_hl7_get(r->store, d->a, seq, out);
	return CW_OK;
}
