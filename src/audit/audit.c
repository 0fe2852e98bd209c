/* audit/audit.c: AuditEvent records, and the queue that batches reads.
 *
 * audit_build writes the AuditEvent JSON straight into a string builder
 * (no jansson tree: it runs once per read, at 50,000+/s). Every value in it
 * is an id, a code, a time, an address or a parameter name; nothing from a
 * resource's content. It keeps to what the record needs (no display texts,
 * no meta: recorded is the time): every byte is written, hashed and
 * checkpointed once per read, and the writer had to keep up with 40,000
 * reads a second on two cores. The JSON is the served text and what the chain hash
 * covers, so it is built once and never re-encoded.
 *
 * The queue is a ring of malloc'd records (each one block: the struct, the
 * patient pointers, the strings) guarded by one mutex. `queued` counts
 * records waiting, `inflight` those the flusher took and is committing; the
 * bound covers both, so memory is bounded while a commit is slow. The
 * flusher sleeps until a record arrives, then until AUDIT_FLUSH_MS after
 * the first one of a batch, AUDIT_FLUSH_AT records, a flush request or
 * shutdown; it takes everything waiting and appends it in one store_write.
 * A failed commit keeps the batch and retries it a flush interval later
 * (records are never dropped; the queue fills and reads get 503). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"

#define SYS_EVENT_TYPE "http://terminology.hl7.org/CodeSystem/audit-event-type"
#define SYS_DCM "http://dicom.nema.org/resources/ontology/DCM"
#define SYS_INTERACTION "http://hl7.org/fhir/restful-interaction"
#define SYS_OBJECT_ROLE "http://terminology.hl7.org/CodeSystem/object-role"
#define SYS_USER "urn:careweave:user"
#define SYS_ROLE "urn:careweave:role"

/* An AuditEvent is a few hundred bytes; a transaction's names one entity
 * per entry (10,000 at most). */
#define AUDIT_JSON_MAX (8u << 20)

const char *
audit_outcome(int status)
{
	return status < 400 ? "0" : status < 500 ? "4" : "8";
}

static void
add_str(struct sbuf *sb, const char *s)
{
	sbuf_addch(sb, '"');
	sbuf_add_json_str(sb, s, strlen(s));
	sbuf_addch(sb, '"');
}

/* ,"key":"value" */
static void
add_kv(struct sbuf *sb, const char *key, const char *value)
{
	sbuf_addf(sb, ",\"%s\":", key);
	add_str(sb, value);
}

static void
add_agent(struct sbuf *sb, const struct audit_event *ev)
{
	sbuf_adds(sb, ",\"agent\":[{\"who\":{");
	if (ev->link) {
		sbuf_adds(sb, "\"reference\":");
		add_str(sb, ev->link);
		sbuf_addch(sb, ',');
	}
	sbuf_adds(sb, "\"identifier\":{\"system\":\"" SYS_USER "\"");
	if (ev->user)
		add_kv(sb, "value", ev->user);
	sbuf_adds(sb, "}}");
	if (ev->role || ev->local) {
		sbuf_adds(sb, ",\"role\":[{\"coding\":[{\"system\":\"" SYS_ROLE
			      "\",\"code\":");
		add_str(sb, ev->role ? ev->role : "operator");
		sbuf_adds(sb, "}]}]");
	}
	sbuf_adds(sb, ",\"requestor\":true");
	if (ev->remote) {
		/* type 2: an IP address */
		sbuf_adds(sb, ",\"network\":{\"address\":");
		add_str(sb, ev->remote);
		sbuf_adds(sb, ",\"type\":\"2\"}");
	}
	sbuf_adds(sb, "}]");
}

static void
add_entities(struct sbuf *sb, const struct audit_event *ev)
{
	bool first = true;

	if (!ev->nwhat && !ev->npatients)
		return;
	sbuf_adds(sb, ",\"entity\":[");
	for (size_t i = 0; i < ev->nwhat; i++) {
		const struct audit_entity *e = &ev->what[i];

		sbuf_adds(sb, first ? "{" : ",{");
		first = false;
		if (e->type && e->id)
			sbuf_addf(sb, "\"what\":{\"reference\":\"%s/%s\"}", e->type,
				  e->id);
		else
			sbuf_addf(sb, "\"what\":{\"type\":\"%s\"}",
				  e->type ? e->type : "Resource");
		if (e->params) {
			/* names only: the values of a search are PHI */
			sbuf_adds(sb, ",\"detail\":[{\"type\":\"parameters\","
				      "\"valueString\":");
			add_str(sb, e->params);
			sbuf_adds(sb, "}]");
		}
		sbuf_addch(sb, '}');
	}
	for (size_t i = 0; i < ev->npatients; i++) {
		sbuf_adds(sb, first ? "{" : ",{");
		first = false;
		sbuf_adds(sb, "\"what\":{\"reference\":\"Patient/");
		sbuf_add_json_str(sb, ev->patients[i], strlen(ev->patients[i]));
		/* role 1: the patient */
		sbuf_adds(sb, "\"},\"role\":{\"system\":\"" SYS_OBJECT_ROLE
			      "\",\"code\":\"1\"}}");
	}
	sbuf_addch(sb, ']');
}

enum cw_err
audit_build(struct arena *a, const struct audit_event *ev,
	    struct store_audit *out)
{
	struct sbuf sb = SBUF_INIT(AUDIT_JSON_MAX);
	char id[ID_LEN + 1], when[32];
	int64_t at = ev->at ? ev->at : time_now_ms();
	size_t len;
	char *text;

	memset(out, 0, sizeof(*out));
	id_new(id);
	time_format_instant(at, when);
	sbuf_addf(&sb, "{\"resourceType\":\"AuditEvent\",\"id\":\"%s\"", id);
	if (ev->kind == AUDIT_REST) {
		sbuf_adds(&sb, ",\"type\":{\"system\":\"" SYS_EVENT_TYPE
			       "\",\"code\":\"rest\"}");
		if (ev->interaction) {
			sbuf_adds(&sb, ",\"subtype\":[{\"system\":\"" SYS_INTERACTION
				       "\",\"code\":");
			add_str(&sb, ev->interaction);
			sbuf_adds(&sb, "}]");
		}
	} else {
		sbuf_adds(&sb, ",\"type\":{\"system\":\"" SYS_DCM "\",\"code\":"
			       "\"110114\"}");
		/* 110122 Login, 110123 Logout */
		sbuf_adds(&sb, ev->kind == AUDIT_LOGIN ?
			  ",\"subtype\":[{\"system\":\"" SYS_DCM "\",\"code\":\"110122\"}]" :
			  ",\"subtype\":[{\"system\":\"" SYS_DCM "\",\"code\":\"110123\"}]");
	}
	sbuf_addf(&sb, ",\"action\":\"%c\",\"recorded\":\"%s\",\"outcome\":\"%s\","
		  "\"outcomeDesc\":\"HTTP %d\"", ev->action ? ev->action : 'E', when,
		  audit_outcome(ev->status), ev->status);
	add_agent(&sb, ev);
	sbuf_adds(&sb, ",\"source\":{\"observer\":{\"display\":\"careweave\"}}");
	add_entities(&sb, ev);
	sbuf_addch(&sb, '}');
	if (sb.toobig) {
		sbuf_release(&sb);
		return CW_ETOOBIG;
	}
	text = arena_strndup(a, sb.buf, sb.len);
	len = sb.len;
	sbuf_release(&sb);
	out->id = arena_strdup(a, id);
	if (!text || !out->id)
		return CW_ENOMEM;
	out->at = at;
	out->json = (struct span){text, len};
	out->patients = ev->patients;
	out->npatients = ev->npatients;
	return CW_OK;
}

enum cw_err
audit_tx_write(struct store_tx *tx, struct arena *a, const struct audit_event *ev)
{
	struct store_audit r;
	enum cw_err err = audit_build(a, ev, &r);

	if (err)
		return err;
	return store_tx_audit_append(tx, &r, 1);
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
	struct store_audit r;
	struct one_job j = {&r, 1};
	enum cw_err err = audit_build(a, ev, &r);

	if (err)
		return err;
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

/* One malloc block holding r and everything it points to. */
static struct store_audit *
rec_copy(const struct store_audit *r)
{
	size_t need = sizeof(*r) + r->npatients * sizeof(char *) +
		      strlen(r->id) + 1 + r->json.n + 1;
	struct store_audit *c;
	const char **pv;
	char *p;

	for (size_t i = 0; i < r->npatients; i++)
		need += strlen(r->patients[i]) + 1;
	if (!(c = malloc(need)))
		return NULL;
	*c = *r;
	pv = (const char **)(c + 1);
	p = (char *)(pv + r->npatients);
	memcpy(p, r->id, strlen(r->id) + 1);
	c->id = p;
	p += strlen(r->id) + 1;
	memcpy(p, r->json.p, r->json.n);
	p[r->json.n] = '\0';
	c->json.p = p;
	p += r->json.n + 1;
	for (size_t i = 0; i < r->npatients; i++) {
		size_t n = strlen(r->patients[i]) + 1;

		memcpy(p, r->patients[i], n);
		pv[i] = p;
		p += n;
	}
	c->patients = pv;
	return c;
}

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
	if (pthread_create(&au->th, NULL, flusher, au))
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
	struct store_audit r, *c;
	enum cw_err err = audit_build(a, ev, &r);

	if (err)
		return err;
	if (!(c = rec_copy(&r)))
		return CW_ENOMEM;
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
