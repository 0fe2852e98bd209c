/* notify/deliver.c: the delivery thread.
 *
 * It works in rounds: read what is due from the queue, take the first
 * notice of up to NOTIFY_PARALLEL Subscriptions (one in flight per
 * Subscription keeps its notices in order), settle for each what is to be
 * sent (the Subscription as it is now, the version the notice names, and
 * whether the Subscription's owner may read it now: the hooks), send them
 * side by side with one libcurl multi handle, then record every outcome in
 * one commit: delivered and dropped notices deleted, failed ones due again
 * after a backoff that doubles (NOTIFY_BACKOFF_MS to NOTIFY_BACKOFF_MAX_MS).
 * Nothing is sent from the write path: a slow endpoint never holds a
 * change, and a crash loses no notice (they are rows, committed with the
 * change). Delivery is at least once: a crash after a send and before its
 * record sends it again.
 *
 * The endpoint's answer is read up to NOTIFY_ANSWER_MAX bytes and dropped;
 * redirects are not followed (a redirect would send PHI somewhere the
 * Subscription did not name); TLS certificates are verified. Logs name
 * Subscription ids and HTTP statuses, never URLs (a path or query may
 * hold a secret) or content. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "notify/notify_int.h"

enum nact {
	ACT_SEND,      /* send it */
	ACT_DROP,      /* nothing to send any more (the version is gone, the
			  owner may not read it): forget the notice */
	ACT_DROP_SUB,  /* the Subscription is gone, off or over: forget all */
	ACT_REFUSE,    /* its endpoint's host is not on the server's list:
			  forget the notice, the Subscription is in error */
};

struct njob {
	const struct store_notice *nt;
	enum nact act;
	const char *owner;
	const void *agent;       /* from may_send, for sent */
	struct store_res res;
	char host[NOTIFY_ENDPOINT_LEN];
	const char *url;
	bool payload;
	bool in_error;           /* the Subscription's status is error now */
	struct curl_slist *hdrs;
	CURL *easy;
	/* the outcome */
	long status;             /* HTTP status, 0: no answer */
	CURLcode cc;
	size_t got;
	bool ok;
};

static size_t
discard(char *p, size_t size, size_t nmemb, void *ctx)
{
	struct njob *j = ctx;

	(void)p;
	j->got += size * nmemb;
	/* more than we read is a failed write: the transfer ends */
	return j->got > NOTIFY_ANSWER_MAX ? 0 : size * nmemb;
}

/* Settles what job j does: reads the Subscription, the version and the
 * owner, and asks the hooks. */
static enum cw_err
prepare(struct notify *n, struct arena *a, struct njob *j, int64_t now)
{
	const struct store_notice *nt = j->nt;
	struct store_res sub;
	struct nchannel ch;
	struct diag d;
	const char *status;
	int64_t end;
	json_t *v;
	bool ok;
	enum cw_err err;

	j->act = ACT_DROP_SUB;
	err = store_read(n->s, a, "Subscription", nt->sub_id, &sub);
	if (err == CW_ENOTFOUND || err == CW_EGONE)
		return CW_OK;
	if (err)
		return err;
	if (!(v = json_loadb(sub.json.p, sub.json.n, 0, NULL)))
		return CW_ENOMEM;
	status = json_string_value(json_object_get(v, "status"));
	end = notify_end_ms(v);
	diag_init(&d, a);
	if (!status || (strcmp(status, "active") && strcmp(status, "error")) ||
	    (end && end <= now) || notify_parse_channel(v, "Subscription", &ch, &d)) {
		json_decref(v);
		return CW_OK;
	}
	j->in_error = !strcmp(status, "error");
	snprintf(j->host, sizeof(j->host), "%s", ch.host);
	if (!notify_host_allowed(n, ch.host)) {
		/* written before the list, or by a door without one: never
		 * sent; the owner sees why in the Subscription */
		json_decref(v);
		j->act = ACT_REFUSE;
		return CW_OK;
	}
	j->payload = ch.payload;
	j->url = ch.payload ? arena_printf(a, "%s%s%s/%s", ch.endpoint,
					   ch.endpoint[strlen(ch.endpoint) - 1] == '/' ? "" : "/",
					   nt->type, nt->id)
			    : arena_strdup(a, ch.endpoint);
	for (size_t i = 0; i < ch.nheaders && j->url; i++) {
		struct curl_slist *h = curl_slist_append(j->hdrs, ch.headers[i]);

		if (!h)
			break;
		j->hdrs = h;
	}
	json_decref(v);
	if (!j->url)
		return CW_ENOMEM;

	j->act = ACT_DROP;
	err = store_vread(n->s, a, nt->type, nt->id, nt->version, &j->res);
	if (err == CW_ENOTFOUND || err == CW_EGONE)
		return CW_OK;
	if (err)
		return err;
	if ((err = store_sub_owner_get(n->s, a, nt->sub_id, &j->owner)))
		return err;
	ok = false;
	if ((err = n->hooks.may_send(n->hooks.ctx, a, j->owner, &j->res, &ok, &j->agent)))
		return err;
	if (!ok) {
		log_info("notify: Subscription/%s: a notice its owner may not read was dropped",
			 nt->sub_id);
		return CW_OK;
	}
	j->act = ACT_SEND;
	return CW_OK;
}

static bool
setup(struct njob *j)
{
	struct curl_slist *h;
	CURL *e = curl_easy_init();

	if (!e)
		return false;
	j->easy = e;
	/* no "Expect: 100-continue" round trip; the type of what is sent */
	if (!(h = curl_slist_append(j->hdrs, "Expect:")))
		return false;
	j->hdrs = h;
	if (j->payload) {
		if (!(h = curl_slist_append(j->hdrs, "Content-Type: application/fhir+json")))
			return false;
		j->hdrs = h;
	}
	curl_easy_setopt(e, CURLOPT_URL, j->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)NOTIFY_CONNECT_MS);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)NOTIFY_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "careweave");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->hdrs);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
	curl_easy_setopt(e, CURLOPT_PRIVATE, j);
	if (j->payload) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->res.json.p);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->res.json.n);
	} else {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
	}
	return true;
}

/* Sends the jobs to send, side by side; each ends by its own timeout. */
static void
send_all(CURLM *m, struct njob *jobs, size_t nj)
{
	int running = 0, left;
	size_t i;
	CURLMsg *msg;

	for (i = 0; i < nj; i++) {
		if (jobs[i].act != ACT_SEND)
			continue;
		if (!setup(&jobs[i]) || curl_multi_add_handle(m, jobs[i].easy) != CURLM_OK) {
			jobs[i].cc = CURLE_OUT_OF_MEMORY;
			if (jobs[i].easy) {
				curl_easy_cleanup(jobs[i].easy);
				jobs[i].easy = NULL;
			}
		}
	}
	do {
		if (curl_multi_perform(m, &running) != CURLM_OK)
			break;
		while ((msg = curl_multi_info_read(m, &left))) {
			struct njob *j = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
			j->cc = msg->data.result;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &j->status);
			/* an answer longer than we read is still an answer */
			if (j->cc == CURLE_WRITE_ERROR && j->got > NOTIFY_ANSWER_MAX)
				j->cc = CURLE_OK;
			j->ok = j->cc == CURLE_OK && j->status >= 200 && j->status < 300;
		}
		if (running && curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK)
			break;
	} while (running);
	for (i = 0; i < nj; i++) {
		if (jobs[i].easy) {
			curl_multi_remove_handle(m, jobs[i].easy);
			curl_easy_cleanup(jobs[i].easy);
			jobs[i].easy = NULL;
		}
		curl_slist_free_all(jobs[i].hdrs);
		jobs[i].hdrs = NULL;
	}
}

static int64_t
backoff_ms(const struct notify *n, int attempts)
{
	int64_t ms = n->retry_ms;

	for (int i = 1; i < attempts && ms < NOTIFY_BACKOFF_MAX_MS; i++)
		ms *= 2;
	return ms < NOTIFY_BACKOFF_MAX_MS ? ms : NOTIFY_BACKOFF_MAX_MS;
}

/* Why a send failed, in words without PHI or the URL. */
static const char *
failure(struct arena *a, const struct njob *j)
{
	if (j->cc != CURLE_OK)
		return arena_strdup(a, curl_easy_strerror(j->cc));
	return arena_printf(a, "the endpoint answered HTTP %ld", j->status);
}

struct record {
	const struct notify *n;
	struct njob *jobs;
	size_t nj;
	struct arena *a;
	int64_t now;
};

static enum cw_err
record_cb(struct store_tx *tx, void *ctx)
{
	struct record *r = ctx;
	enum cw_err err = CW_OK;

	for (size_t i = 0; i < r->nj && !err; i++) {
		struct njob *j = &r->jobs[i];
		int attempts = j->nt->attempts + 1;

		if (j->act == ACT_DROP_SUB)
			err = store_tx_notice_drop_sub(tx, j->nt->sub_id);
		else if (j->act == ACT_DROP || j->act == ACT_REFUSE || j->ok ||
			 attempts >= NOTIFY_ATTEMPTS_MAX)
			err = store_tx_notice_drop(tx, j->nt->seq);
		else
			err = store_tx_notice_retry(tx, j->nt->seq, j->nt->sub_id, attempts,
						    r->now + backoff_ms(r->n, attempts),
						    failure(r->a, j));
	}
	return err;
}

/* One round; *more when it found work (look again at once), else *next
 * is when the next notice is due (0: none). */
static void
round_once(struct notify *n, CURLM *m, struct arena *a, bool *more, int64_t *next)
{
	struct store_notice *v;
	struct njob jobs[NOTIFY_PARALLEL];
	struct record rec;
	size_t nv, nj = 0, i, k;
	int64_t now = time_now_ms();
	enum cw_err err;

	*more = false;
	*next = 0;
	arena_reset(a);
	err = store_notice_due(n->s, a, now, NOTIFY_BATCH, &v, &nv, next);
	if (err) {
		log_error("notify: the queue could not be read: %s", cw_strerror(err));
		*next = now + NOTIFY_IDLE_MS;
		return;
	}
	memset(jobs, 0, sizeof(jobs));
	for (i = 0; i < nv && nj < NOTIFY_PARALLEL; i++) {
		for (k = 0; k < nj && strcmp(jobs[k].nt->sub_id, v[i].sub_id); k++)
			;
		if (k < nj)
			continue; /* its Subscription has one in this round */
		jobs[nj].nt = &v[i];
		if ((err = prepare(n, a, &jobs[nj], now))) {
			/* a read failed: nothing is decided, try next round */
			curl_slist_free_all(jobs[nj].hdrs);
			memset(&jobs[nj], 0, sizeof(jobs[nj]));
			log_error("notify: Subscription/%s: %s", v[i].sub_id, cw_strerror(err));
			*next = now + NOTIFY_IDLE_MS;
			continue;
		}
		nj++;
	}
	if (!nj)
		return;
	send_all(m, jobs, nj);

	rec = (struct record){n, jobs, nj, a, time_now_ms()};
	if ((err = store_write(n->s, record_cb, &rec))) {
		/* sent but not recorded: sent again next round (at least once) */
		log_error("notify: outcomes could not be recorded: %s", cw_strerror(err));
		*next = now + NOTIFY_IDLE_MS;
		return;
	}
	for (i = 0; i < nj; i++) {
		struct njob *j = &jobs[i];
		int attempts = j->nt->attempts + 1;

		if (j->act == ACT_REFUSE) {
			log_warn("notify: Subscription/%s: its endpoint's host is not on"
				 " --subscription-hosts; notice dropped", j->nt->sub_id);
			if (!j->in_error)
				n->hooks.set_status(n->hooks.ctx, j->nt->sub_id, "error",
						    arena_printf(a, "this server sends to a list of"
								 " hosts only, and %s is not on it;"
								 " nothing is sent to it", j->host));
			continue;
		}
		if (j->act != ACT_SEND)
			continue;
		n->hooks.sent(n->hooks.ctx, a, j->agent, j->host, &j->res, (int)j->status);
		if (j->ok) {
			if (j->in_error)
				n->hooks.set_status(n->hooks.ctx, j->nt->sub_id, "active", NULL);
			continue;
		}
		log_warn("notify: Subscription/%s: delivery %d failed: %s%s", j->nt->sub_id,
			 attempts, failure(a, j),
			 attempts >= NOTIFY_ATTEMPTS_MAX ? "; notice given up" : "");
		if (attempts == NOTIFY_ERROR_AFTER ||
		    (attempts > NOTIFY_ERROR_AFTER && !j->in_error))
			n->hooks.set_status(n->hooks.ctx, j->nt->sub_id, "error",
					    arena_printf(a, "%d deliveries in a row failed,"
						     " the last: %s; careweave tries again",
						     attempts, failure(a, j)));
	}
	*more = true;
}

static void *
deliver_main(void *arg)
{
	struct notify *n = arg;
	struct arena *a = arena_new(64u << 20);
	CURLM *m = curl_multi_init();
	int64_t next = 0;
	bool more = true;

	if (!a || !m) {
		log_error("notify: out of memory: no Subscription will be delivered");
		arena_free(a);
		curl_multi_cleanup(m);
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&n->mu);
		if (!more) {
			int64_t now = time_now_ms(), until = now + NOTIFY_IDLE_MS;
			struct timespec ts;

			if (next && next < until)
				until = next;
			ts.tv_sec = until / 1000;
			ts.tv_nsec = (long)(until % 1000) * 1000000L;
			while (!n->kicked && !n->stopping && time_now_ms() < until)
				pthread_cond_timedwait(&n->cv, &n->mu, &ts);
		}
		n->kicked = false;
		if (n->stopping) {
			pthread_mutex_unlock(&n->mu);
			break;
		}
		pthread_mutex_unlock(&n->mu);
		round_once(n, m, a, &more, &next);
	}
	curl_multi_cleanup(m);
	arena_free(a);
	return NULL;
}

/* ---- life ------------------------------------------------------------------- */

/* The store's group hook (writer thread): what the group's jobs did. */
static void
group_ended(void *ctx)
{
	struct notify *n = ctx;

	if (n->reload_after_group) {
		n->loaded = false;
		n->reload_after_group = false;
	}
	if (n->queued) {
		n->queued = false;
		notify_kick(n);
	}
}

struct notify *
notify_new(struct store *s, const struct notify_options *opt)
{
	struct notify *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->s = s;
	n->retry_ms = opt && opt->retry_ms ? opt->retry_ms : NOTIFY_BACKOFF_MS;
	if (notify_hosts_set(n, opt ? opt->endpoint_hosts : NULL) ||
	    !(n->subs_arena = arena_new(16u << 20)) ||
	    pthread_mutex_init(&n->mu, NULL) || pthread_cond_init(&n->cv, NULL)) {
		arena_free(n->subs_arena);
		free(n->hosts_buf);
		free(n);
		return NULL;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	store_set_group_hook(s, group_ended, n);
	return n;
}

enum cw_err
notify_start(struct notify *n, const struct notify_hooks *hooks)
{
	if (!hooks->may_send || !hooks->sent || !hooks->set_status)
		return CW_EINTERNAL;
	n->hooks = *hooks;
	if (thread_start(&n->th, deliver_main, n, "cw-notify"))
		return CW_ENOMEM;
	n->started = true;
	return CW_OK;
}

void
notify_kick(struct notify *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&n->mu);
	n->kicked = true;
	pthread_cond_signal(&n->cv);
	pthread_mutex_unlock(&n->mu);
}

static enum cw_err
nothing(struct store_tx *tx, void *ctx)
{
	(void)tx;
	(void)ctx;
	return CW_OK;
}

void
notify_free(struct notify *n)
{
	if (!n)
		return;
	if (n->started) {
		pthread_mutex_lock(&n->mu);
		n->stopping = true;
		pthread_cond_signal(&n->cv);
		pthread_mutex_unlock(&n->mu);
		pthread_join(n->th, NULL);
	}
	/* the writer may be inside group_ended now (the audit flusher still
	 * writes): once a job queued after the unhooking has run, no call of
	 * it is in flight (store_set_group_hook) */
	store_set_group_hook(n->s, NULL, NULL);
	store_write(n->s, nothing, NULL);
	pthread_cond_destroy(&n->cv);
	pthread_mutex_destroy(&n->mu);
	arena_free(n->subs_arena);
	free(n->hosts_buf);
	free(n);
	curl_global_cleanup();
}
