/* base/thread.c: careweave's threads start with a name.
 *
 * Every thread the process starts is named, so top -H, perf and gdb show
 * which one is busy (cw-writer, cw-http-worker, ...; docs/ARCHITECTURE.md
 * lists them). One call starts and names, so a new thread cannot be left
 * without one. */
#include <pthread.h>

#include "base/base.h"

int
thread_start(pthread_t *th, void *(*fn)(void *), void *arg, const char *name)
{
	int rc = pthread_create(th, NULL, fn, arg);

	if (rc == 0)
		pthread_setname_np(*th, name); /* a name is a label: no failure */
	return rc;
}
