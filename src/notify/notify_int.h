/* notify/notify_int.h: what the files of notify/ share.
 *
 *   subs.c     the Subscription check, the matcher's list of active
 *              Subscriptions and the matching in the write path
 *   deliver.c  the delivery thread: the queue, rest-hook sends (libcurl),
 *              retries, the Subscription's status */
#ifndef CW_NOTIFY_INT_H
#define CW_NOTIFY_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "notify/notify.h"

/* One Subscription the matcher knows: its criteria, parsed once. */
struct nsub {
	const char *id;
	const struct fhir_restype *rt;
	struct fhir_kv *kv;  /* the criteria's parameters, without _id */
	size_t nkv;
	int64_t end;         /* ms; 0: none */
};

struct notify {
	struct store *s;
	int64_t retry_ms;        /* notify_options.retry_ms */
	/* notify_options.endpoint_hosts split at its commas (the strings
	 * are in hosts_buf, malloc'd; compared without case); nhosts 0:
	 * any host */
	char *hosts_buf;
	const char *hosts[NOTIFY_HOSTS_MAX];
	size_t nhosts;
	/* the matcher: used only on the store's writer thread (write jobs
	 * and the group hook), so it needs no lock */
	struct arena *subs_arena;
	struct nsub *subs;
	size_t nsubs;
	bool loaded;             /* subs is what the database holds */
	bool reload_after_group; /* a job wrote a Subscription: whether it
				    committed is known only after the group */
	bool queued;             /* a job queued a notice */
	/* the delivery thread */
	struct notify_hooks hooks;
	pthread_t th;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool kicked, stopping;   /* under mu */
};

/* A Subscription's channel, read from its JSON (strings borrowed from it). */
struct nchannel {
	const char *endpoint;
	char host[NOTIFY_ENDPOINT_LEN]; /* the endpoint's host, as in the URL */
	bool payload;            /* application/fhir+json: PUT the resource */
	const char *headers[NOTIFY_HEADERS_MAX];
	size_t nheaders;
};

/* Parses criteria "Type?name=value&..." into its type and parameters (in
 * a). CW_EINVALID with an issue at loc when careweave cannot match it. */
enum cw_err notify_parse_criteria(struct arena *a, const char *criteria,
				  const char *loc, const struct fhir_restype **rt,
				  struct fhir_kv **kv, size_t *nkv,
				  struct diag *d);
/* Reads and checks res's channel into out. CW_EINVALID with issues at
 * loc.channel... when it is not one careweave sends on. */
enum cw_err notify_parse_channel(const json_t *res, const char *loc,
				 struct nchannel *out, struct diag *d);
/* When Subscription sub ends (Subscription.end, ms), 0 when it does not. */
int64_t notify_end_ms(const json_t *sub);
/* The host of an allowed endpoint into out (NOTIFY_ENDPOINT_LEN), or
 * false with why in *why (static words): https, or http to loopback. */
bool notify_endpoint_host(const char *url, char *out, const char **why);
/* Is host one n's endpoint_hosts allow? Always, when there is no list. */
bool notify_host_allowed(const struct notify *n, const char *host);
/* Splits list (notify_hosts_check said yes) into n->hosts. */
enum cw_err notify_hosts_set(struct notify *n, const char *list);

#endif
