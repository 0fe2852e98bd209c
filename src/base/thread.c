/* base/thread.c: careweave's threads start with a name.
 *
 * Every thread the process starts is named, so top -H, perf and gdb show
 * which one is busy (cw-writer, cw-http-worker, ...; docs/ARCHITECTURE.md
 * lists them). One call starts and names, so a new thread cannot be left
 * without one.
 *
 * A runner is one such thread kept for jobs handed to it one at a time.
 * A thread started for each job begins on whichever malloc arena glibc
 * hands it and on a stack whose pages were given back when the last one
 * ended, so it faults its memory in again; on a VM whose host takes back
 * a guest's free pages, each such page costs several microseconds. A kept
 * thread writes into memory it already has. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "base/base.h"

int
thread_start(pthread_t *th, void *(*fn)(void *), void *arg, const char *name)
{
	int rc = pthread_create(th, NULL, fn, arg);

	if (rc == 0)
		pthread_setname_np(*th, name); /* a name is a label: no failure */
	return rc;
}

struct runner {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	void *(*fn)(void *); /* the job handed over and not yet taken */
	void *arg;
	bool busy;           /* a job handed over and not yet done */
	bool stop;
};

static void *
runner_main(void *arg)
{
	struct runner *r = arg;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->fn && !r->stop)
			pthread_cond_wait(&r->cv, &r->mu);
		if (!r->fn)
			break; /* stopped with nothing left to run */
		void *(*fn)(void *) = r->fn;
		void *job = r->arg;

		r->fn = NULL;
		pthread_mutex_unlock(&r->mu);
		fn(job);
		pthread_mutex_lock(&r->mu);
		r->busy = false;
		pthread_cond_broadcast(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

struct runner *
runner_new(const char *name)
{
	struct runner *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	if (thread_start(&r->th, runner_main, r, name)) {
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mu);
		free(r);
		return NULL;
	}
	return r;
}

int
runner_start(struct runner *r, void *(*fn)(void *), void *arg)
{
	int rc = 0;

	if (!r)
		return -1;
	pthread_mutex_lock(&r->mu);
	if (r->busy || r->stop) {
		rc = -1;
	} else {
		r->busy = true;
		r->fn = fn;
		r->arg = arg;
		pthread_cond_broadcast(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
	return rc;
}

void
runner_wait(struct runner *r)
{
	pthread_mutex_lock(&r->mu);
	while (r->busy)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
}

void
runner_free(struct runner *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->th, NULL); /* a job handed over still runs first */
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
