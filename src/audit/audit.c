/* audit/audit.c: AuditEvent records, and the queue that batches reads.
 *
 * A record is packed (audit_pack) into one block: struct store_audit and
 * its short strings (the username, role, link, address, "Type/id", the
 * patients' ids), about 150 bytes for a read. That is all a read costs
 * here, and all the writer stores: the AuditEvent JSON (830 bytes, which
 * the first version built, hashed and stored per read) is rendered from
 * the columns only when someone reads the trail (audit_render), the same
 * text every time. Every value is an id, a code, a time, an address or a
 * parameter name; nothing from a resource's content.
 *
 * The queue is a ring of packed records (malloc'd blocks) guarded by one
 * mutex. `queued` counts records waiting, `inflight` those the flusher took
 * and is committing; the bound covers both, so memory is bounded while a
 * commit is slow. The flusher sleeps until a record arrives, then until
 * AUDIT_FLUSH_MS after the first one of a batch, AUDIT_FLUSH_AT records, a
 * flush request or shutdown; it takes everything waiting and appends it in
 * one store_write. A failed commit keeps the batch and retries it a flush
 * interval later (records are never dropped; the queue fills and reads get
 * 503). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"

#define SYS_EVENT_TYPE "http://terminology.hl7.org/CodeSystem/audit-event-type"
#define SYS_DCM "http://dicom.nema.org/resources/ontology/DCM"
#define SYS_INTERACTION "http://hl7.org/fhir/restful-interaction"
#define SYS_ACT_REASON "http://terminology.hl7.org/CodeSystem/v3-ActReason"
#define SYS_OBJECT_ROLE "http://terminology.hl7.org/CodeSystem/object-role"
#define SYS_USER "urn:careweave:user"
#define AUDIT_FLUSH_SLOW_MS 250
#define SYS_ROLE "urn:careweave:role"

/* enum audit_subtype -> AuditEvent.subtype. */
static const struct {
	const char *code;
	const char *system;
} audit_subtypes[AUDIT_NSUB] = {
	[AUDIT_SUB_NONE]             = {NULL, NULL},
	[AUDIT_SUB_READ]             = {"read", SYS_INTERACTION},
	[AUDIT_SUB_VREAD]            = {"vread", SYS_INTERACTION},
	[AUDIT_SUB_SEARCH_TYPE]      = {"search-type", SYS_INTERACTION},
	[AUDIT_SUB_HISTORY_INSTANCE] = {"history-instance", SYS_INTERACTION},
	[AUDIT_SUB_HISTORY_TYPE]     = {"history-type", SYS_INTERACTION},
	[AUDIT_SUB_HISTORY_SYSTEM]   = {"history-system", SYS_INTERACTION},
	[AUDIT_SUB_CREATE]           = {"create", SYS_INTERACTION},
	[AUDIT_SUB_UPDATE]           = {"update", SYS_INTERACTION},
	[AUDIT_SUB_DELETE]           = {"delete", SYS_INTERACTION},
	[AUDIT_SUB_TRANSACTION]      = {"transaction", SYS_INTERACTION},
	[AUDIT_SUB_BATCH]            = {"batch", SYS_INTERACTION},
	[AUDIT_SUB_OPERATION]        = {"operation", SYS_INTERACTION},
	[AUDIT_SUB_LOGIN]            = {"110122", SYS_DCM},
	[AUDIT_SUB_LOGOUT]           = {"110123", SYS_DCM},
	[AUDIT_SUB_BREAK_GLASS]      = {"BTG", SYS_ACT_REASON},
	[AUDIT_SUB_EXPORT]           = {"110106", SYS_DCM},
	[AUDIT_SUB_PATCH]            = {"patch", SYS_INTERACTION},
};

const char *
audit_outcome(int status)
{
	return status < 400 ? "0" : status < 500 ? "4" : "8";
}

const char *
audit_subtype_code(int subtype)
{
	if (subtype <= AUDIT_SUB_NONE || subtype >= AUDIT_NSUB)
		return "-";
	return audit_subtypes[subtype].code;
}

static int
subtype_of(const struct audit_event *ev)
{
	if (ev->kind == AUDIT_LOGIN)
		return AUDIT_SUB_LOGIN;
	if (ev->kind == AUDIT_LOGOUT)
		return AUDIT_SUB_LOGOUT;
	if (ev->kind == AUDIT_BREAK_GLASS)
		return AUDIT_SUB_BREAK_GLASS;
	if (ev->kind == AUDIT_EXPORT)
		return AUDIT_SUB_EXPORT;
	if (!ev->interaction)
		return AUDIT_SUB_NONE;
	for (int i = AUDIT_SUB_READ; i <= AUDIT_SUB_OPERATION; i++)
		if (!strcmp(audit_subtypes[i].code, ev->interaction))
			return i;
	if (!strcmp(ev->interaction, "patch"))
		return AUDIT_SUB_PATCH;
	return AUDIT_SUB_OPERATION;
}

/* ---- packing: what is stored ------------------------------------------- */

static size_t
opt_len(const char *s)
{
	return s ? strlen(s) + 1 : 0;
}

/* Copies s to *p and moves *p on; NULL stays NULL. */
static const char *
put(char **p, const char *s)
{
	char *d = *p;
	size_t n;

	if (!s)
		return NULL;
	n = strlen(s) + 1;
	memcpy(d, s, n);
	*p += n;
	return d;
}

static const char *
entity_type(const struct audit_entity *e)
{
	return e->type ? e->type : "Resource";
}

enum cw_err
audit_pack(struct arena *a, const struct audit_event *ev, struct store_audit **out)
{
	const char *role = ev->role ? ev->role : ev->local ? "operator" : NULL;
	const char *params = ev->nwhat ? ev->what[0].params : NULL;
	size_t ents = 0, pats = 0, need;
	struct store_audit *r;
	char *p;

	for (size_t i = 0; i < ev->nwhat; i++) {
		const struct audit_entity *e = &ev->what[i];

		ents += strlen(entity_type(e)) + 1;
		if (e->type && e->id)
			ents += strlen(e->id) + 1;
	}
	for (size_t i = 0; i < ev->npatients; i++)
		pats += strlen(ev->patients[i]) + 1;
	*out = NULL;
	if (ents > AUDIT_LIST_MAX || pats > AUDIT_LIST_MAX)
		return CW_ETOOBIG;
	need = sizeof(*r) + opt_len(ev->user) + opt_len(role) + opt_len(ev->link) +
	       opt_len(ev->remote) + ents + opt_len(params) + pats +
	       opt_len(ev->detail);
	if (!(r = a ? arena_alloc(a, need) : malloc(need)))
		return CW_ENOMEM;
	p = (char *)(r + 1);
	*r = (struct store_audit){
		.at = ev->at ? ev->at : time_now_ms(),
		.subtype = subtype_of(ev),
		.action = ev->action ? ev->action : 'E',
		.status = ev->status,
		.purpose = ev->purpose,
	};
	r->user = put(&p, ev->user);
	r->role = put(&p, role);
	r->link = put(&p, ev->link);
	r->remote = put(&p, ev->remote);
	if (ev->nwhat) {
		r->entity = p;
		for (size_t i = 0; i < ev->nwhat; i++) {
			const struct audit_entity *e = &ev->what[i];

			if (i)
				p[-1] = ' ';
			put(&p, entity_type(e));
			if (e->type && e->id) {
				p[-1] = '/';
				put(&p, e->id);
			}
		}
	}
	r->params = put(&p, params);
	if (ev->npatients) {
		r->patients = p;
		for (size_t i = 0; i < ev->npatients; i++) {
			if (i)
				p[-1] = ' ';
			put(&p, ev->patients[i]);
		}
	}
	r->detail = put(&p, ev->detail);
	*out = r;
	return CW_OK;
}

/* ---- rendering: what is served ----------------------------------------- */

static void
add_str(struct sbuf *sb, const char *s)
{
	sbuf_addch(sb, '"');
	sbuf_add_json_str(sb, s, strlen(s));
	sbuf_addch(sb, '"');
}

static void
add_agent(struct sbuf *sb, const struct store_audit *r)
{
	sbuf_adds(sb, ",\"agent\":[{\"who\":{");
	if (r->link) {
		sbuf_adds(sb, "\"reference\":");
		add_str(sb, r->link);
		sbuf_addch(sb, ',');
	}
	sbuf_adds(sb, "\"identifier\":{\"system\":\"" SYS_USER "\"");
	if (r->user) {
		sbuf_adds(sb, ",\"value\":");
		add_str(sb, r->user);
	}
	sbuf_adds(sb, "}}");
	if (r->role) {
		sbuf_adds(sb, ",\"role\":[{\"coding\":[{\"system\":\"" SYS_ROLE
			      "\",\"code\":");
		add_str(sb, r->role);
		sbuf_adds(sb, "}]}]");
	}
	sbuf_adds(sb, ",\"requestor\":true");
	if (r->remote) {
		/* type 2: an IP address */
		sbuf_adds(sb, ",\"network\":{\"address\":");
		add_str(sb, r->remote);
		sbuf_adds(sb, ",\"type\":\"2\"}");
	}
	sbuf_adds(sb, "}]");
}

/* Calls the next item of the space-separated list *p into *item, *n. */
static bool
next_item(const char **p, const char **item, size_t *n)
{
	if (!*p)
		return false;
	*p += strspn(*p, " ");
	if (!**p)
		return false;
	*item = *p;
	*n = strcspn(*p, " ");
	*p += *n;
	return true;
}

static void
add_entities(struct sbuf *sb, const struct store_audit *r)
{
	const char *p = r->entity, *it;
	bool first = true;
	size_t n;

	if (!r->entity && !r->patients)
		return;
	sbuf_adds(sb, ",\"entity\":[");
	while (next_item(&p, &it, &n)) {
		sbuf_adds(sb, first ? "{" : ",{");
		sbuf_adds(sb, memchr(it, '/', n) ? "\"what\":{\"reference\":\"" :
			  "\"what\":{\"type\":\"");
		sbuf_add_json_str(sb, it, n);
		sbuf_adds(sb, "\"}");
		if (first && r->params) {
			/* names only: the values of a search are PHI */
			sbuf_adds(sb, ",\"detail\":[{\"type\":\"parameters\","
				      "\"valueString\":");
			add_str(sb, r->params);
			sbuf_adds(sb, "}]");
		}
		sbuf_addch(sb, '}');
		first = false;
	}
	p = r->patients;
	while (next_item(&p, &it, &n)) {
		sbuf_adds(sb, first ? "{" : ",{");
		first = false;
		sbuf_adds(sb, "\"what\":{\"reference\":\"Patient/");
		sbuf_add_json_str(sb, it, n);
		/* role 1: the patient */
		sbuf_adds(sb, "\"},\"role\":{\"system\":\"" SYS_OBJECT_ROLE
			      "\",\"code\":\"1\"}}");
	}
	sbuf_addch(sb, ']');
}

void
audit_render(struct sbuf *sb, const struct store_audit *r)
{
	bool known = r->subtype > AUDIT_SUB_NONE && r->subtype < AUDIT_NSUB;
	bool auth = r->subtype == AUDIT_SUB_LOGIN || r->subtype == AUDIT_SUB_LOGOUT;
	char when[32];

	time_format_instant(r->at, when);
	sbuf_addf(sb, "{\"resourceType\":\"AuditEvent\",\"id\":\"%lld\"",
		  (long long)r->seq);
	if (auth)
		sbuf_adds(sb, ",\"type\":{\"system\":\"" SYS_DCM "\",\"code\":"
			      "\"110114\"}");
	else if (r->subtype == AUDIT_SUB_EXPORT)
		sbuf_adds(sb, ",\"type\":{\"system\":\"" SYS_DCM "\",\"code\":"
			      "\"110106\",\"display\":\"Export\"}");
	else
		sbuf_adds(sb, ",\"type\":{\"system\":\"" SYS_EVENT_TYPE
			      "\",\"code\":\"rest\"}");
	if (known)
		sbuf_addf(sb, ",\"subtype\":[{\"system\":\"%s\",\"code\":\"%s\"}]",
			  audit_subtypes[r->subtype].system,
			  audit_subtypes[r->subtype].code);
	sbuf_addf(sb, ",\"action\":\"%c\",\"recorded\":\"%s\",\"outcome\":\"%s\","
		  "\"outcomeDesc\":\"HTTP %d\"",
		  r->action && strchr("CRUDE", r->action) ? r->action : 'E', when,
		  audit_outcome(r->status), r->status);
	if (r->detail || r->subtype == AUDIT_SUB_BREAK_GLASS ||
	    r->purpose == AUDIT_PURPOSE_BTG) {
		/* a grant, its end, or an access made only through one */
		bool btg = r->subtype == AUDIT_SUB_BREAK_GLASS ||
			   r->purpose == AUDIT_PURPOSE_BTG;

		sbuf_adds(sb, ",\"purposeOfEvent\":[{");
		if (btg)
			sbuf_adds(sb, "\"coding\":[{\"system\":\"" SYS_ACT_REASON
				      "\",\"code\":\"BTG\"}]");
		if (r->detail) {
			sbuf_adds(sb, btg ? ",\"text\":" : "\"text\":");
			add_str(sb, r->detail);
		}
		sbuf_adds(sb, "}]");
	}
	add_agent(sb, r);
	sbuf_adds(sb, ",\"source\":{\"observer\":{\"display\":\"careweave\"}}");
	add_entities(sb, r);
	sbuf_addch(sb, '}');
}

enum cw_err
audit_tx_write(struct store_tx *tx, struct arena *a, const struct audit_event *ev)
{
	struct store_audit *r;
	enum cw_err err = audit_pack(a, ev, &r);

	if (err)
		return err;
	return store_tx_audit_append(tx, r, 1);
}

struct one_job {
	const struct store_audit *r;
	size_t n;
};

static enum cw_err
append_cb(struct store_tx *tx, void *ctx)
{
	struct one_job *j = ctx;

	return store_tx_audit_append(tx, j->r, j->n);
}

enum cw_err
audit_write(struct store *s, struct arena *a, const struct audit_event *ev)
{
	struct store_audit *r;
	struct one_job j;
	enum cw_err err = audit_pack(a, ev, &r);

	if (err)
		return err;
	j = (struct one_job){r, 1};
	return store_write(s, append_cb, &j);
}

/* ---- the queue ------------------------------------------------------------ */

struct audit {
	struct store *s;
	unsigned max, flush_ms, flush_at;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t wake;  /* the flusher: records, a request, stop */
	pthread_cond_t room;  /* waiters for space, and audit_flush */
	struct store_audit **ring;
	size_t head, queued, inflight;
	uint64_t enq, done;   /* records queued / committed, ever */
	int64_t first_ms;     /* when the oldest waiting record came */
	bool flush_wanted, stopping;
};

static void
deadline_in(struct timespec *ts, int64_t ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Waits (mu held) until a batch is due. false: stop, nothing left. */
static bool
wait_batch(struct audit *au)
{
	struct timespec ts;
	int64_t left;

	for (;;) {
		if (au->queued && (au->stopping || au->flush_wanted ||
				   au->queued >= au->flush_at))
			return true;
		if (!au->queued) {
			if (au->stopping)
				return false;
			au->flush_wanted = false;
			pthread_cond_wait(&au->wake, &au->mu);
			continue;
		}
		left = au->first_ms + au->flush_ms - time_now_ms();
		if (left <= 0)
			return true;
		deadline_in(&ts, left);
		pthread_cond_timedwait(&au->wake, &au->mu, &ts);
	}
}

static void *
flusher(void *arg)
{
	struct audit *au = arg;
	struct store_audit *batch, **took = NULL;
	size_t n, i;
	struct one_job j;
	enum cw_err err;
	int64_t t0;

	if (!(batch = malloc(au->max * sizeof(*batch))) ||
	    !(took = malloc(au->max * sizeof(*took)))) {
		log_error("audit: no memory for the flusher");
		free(batch);
		return NULL;
	}
	pthread_mutex_lock(&au->mu);
	while (wait_batch(au)) {
		n = au->queued;
		for (i = 0; i < n; i++) {
			took[i] = au->ring[(au->head + i) % au->max];
			batch[i] = *took[i];
		}
		au->head = (au->head + n) % au->max;
		au->queued = 0;
		au->inflight = n;
		au->flush_wanted = false;
		pthread_mutex_unlock(&au->mu);

		j = (struct one_job){batch, n};
		t0 = time_now_ms();
		while ((err = store_write(au->s, append_cb, &j))) {
			/* Keep the records: a read is never served without
			 * one. The queue fills meanwhile and reads get 503. */
			log_error("audit: cannot write %zu read records (%s); retrying",
				  n, cw_strerror(err));
			struct timespec ts = {0, (long)au->flush_ms * 1000000L};
			nanosleep(&ts, NULL);
		}
		for (i = 0; i < n; i++)
			free(took[i]);
		/* a slow flush is what fills the queue: say how slow */
		if (time_now_ms() - t0 >= AUDIT_FLUSH_SLOW_MS)
			log_warn("audit: writing %zu read records took %lld ms", n,
				 (long long)(time_now_ms() - t0));

		pthread_mutex_lock(&au->mu);
		au->inflight = 0;
		au->done += n;
		au->first_ms = time_now_ms();
		pthread_cond_broadcast(&au->room);
	}
	pthread_mutex_unlock(&au->mu);
	free(batch);
	free(took);
	return NULL;
}

struct audit *
audit_new(struct store *s, const struct audit_options *opt)
{
	struct audit *au = calloc(1, sizeof(*au));

	if (!au)
		return NULL;
	au->s = s;
	au->max = opt && opt->queue_max ? opt->queue_max : AUDIT_QUEUE_MAX;
	au->flush_ms = opt && opt->flush_ms ? opt->flush_ms : AUDIT_FLUSH_MS;
	au->flush_at = opt && opt->flush_at ? opt->flush_at : AUDIT_FLUSH_AT;
	au->ring = calloc(au->max, sizeof(*au->ring));
	if (!au->ring)
		goto out_free;
	pthread_mutex_init(&au->mu, NULL);
	pthread_cond_init(&au->wake, NULL);
	pthread_cond_init(&au->room, NULL);
	if (thread_start(&au->th, flusher, au, "cw-audit"))
		goto out_sync;
	return au;

out_sync:
	pthread_cond_destroy(&au->room);
	pthread_cond_destroy(&au->wake);
	pthread_mutex_destroy(&au->mu);
	free(au->ring);
out_free:
	free(au);
	return NULL;
}

void
audit_free(struct audit *au)
{
	if (!au)
		return;
	pthread_mutex_lock(&au->mu);
	au->stopping = true;
	pthread_cond_signal(&au->wake);
	pthread_mutex_unlock(&au->mu);
	pthread_join(au->th, NULL);
	/* the flusher wrote everything before it stopped */
	pthread_cond_destroy(&au->room);
	pthread_cond_destroy(&au->wake);
	pthread_mutex_destroy(&au->mu);
	free(au->ring);
	free(au);
}

enum cw_err
audit_queue(struct audit *au, struct arena *a, const struct audit_event *ev,
	    bool may_wait)
{
	struct store_audit *c;
	enum cw_err err = audit_pack(NULL, ev, &c);

	if (err)
		return err;
	pthread_mutex_lock(&au->mu);
	while (au->queued + au->inflight >= au->max && !au->stopping) {
		if (!may_wait) {
			pthread_mutex_unlock(&au->mu);
			free(c);
			return CW_EBUSY;
		}
		pthread_cond_wait(&au->room, &au->mu);
	}
	if (au->stopping && au->queued + au->inflight >= au->max) {
		/* only during shutdown, after the server stopped serving */
		pthread_mutex_unlock(&au->mu);
		free(c);
		return CW_EBUSY;
	}
	au->ring[(au->head + au->queued) % au->max] = c;
	if (!au->queued)
		au->first_ms = time_now_ms();
	au->queued++;
	au->enq++;
	if (au->queued == 1 || au->queued >= au->flush_at)
		pthread_cond_signal(&au->wake);
	pthread_mutex_unlock(&au->mu);
	return CW_OK;
}

void
audit_flush(struct audit *au)
{
	uint64_t want;

	pthread_mutex_lock(&au->mu);
	want = au->enq;
	au->flush_wanted = true;
	pthread_cond_signal(&au->wake);
	while (au->done < want)
		pthread_cond_wait(&au->room, &au->mu);
	pthread_mutex_unlock(&au->mu);
}

size_t
audit_pending(struct audit *au)
{
	size_t n;

	pthread_mutex_lock(&au->mu);
	n = au->queued + au->inflight;
	pthread_mutex_unlock(&au->mu);
	return n;
}
