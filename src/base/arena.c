/* base/arena.c: the per-request bump allocator.
 *
 * Blocks are chained; an allocation bumps a pointer in the newest block or
 * starts a new block (at least 16 KiB, or the request size). The cap counts
 * block bytes, so input can never make one request hold more than max bytes.
 * Cleanups (statements, jansson values) run newest first on reset and free.
 * On reset the first block is kept so a reused arena costs no malloc.
 *
 * Standard blocks freed by any arena go to a cache shared by all threads
 * (newest first, at most BLOCK_CACHE_MAX), and the next arena on any thread
 * takes them from there. Through malloc a request on a worker thread that
 * had not yet held a big one grew that thread's malloc arena into new
 * pages; on a VM whose host takes back free guest pages each costs several
 * microseconds to touch, a thousand or more for a transaction Bundle. Under
 * AddressSanitizer a cached block is poisoned, so a use after free is
 * still seen. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

#define ARENA_BLOCK 16384
#define ARENA_ALIGN 16
#define ARENA_DEFAULT_MAX ((size_t)256 << 20)
#define BLOCK_CACHE_MAX 4096 /* standard blocks kept: 64 MiB */

struct arena_block {
	struct arena_block *next;
	size_t size; /* usable bytes after the header */
	size_t used;
	_Alignas(16) unsigned char data[];
};

struct arena_cleanup {
	struct arena_cleanup *next;
	void (*fn)(void *);
	void *arg;
};

struct arena {
	struct arena_block *head; /* newest block first */
	struct arena_cleanup *cleanups;
	struct arena_cleanup *done; /* arena_on_done: may run before reset */
	size_t max;
	size_t held;  /* bytes in blocks */
	size_t given; /* bytes handed out */
};

void *
block_cache_get(struct block_cache *c)
{
	void **b;

	pthread_mutex_lock(&c->mu);
	b = c->head;
	if (b) {
		c->head = *b;
		c->n--;
	}
	pthread_mutex_unlock(&c->mu);
	return b;
}

bool
block_cache_put(struct block_cache *c, void *b)
{
	bool kept = false;

	pthread_mutex_lock(&c->mu);
	if (c->n < c->max) {
		*(void **)b = c->head;
		c->head = b;
		c->n++;
		kept = true;
	}
	pthread_mutex_unlock(&c->mu);
	return kept;
}

static struct block_cache blocks = BLOCK_CACHE_INIT(BLOCK_CACHE_MAX);

/* A standard block: from the cache, else malloc. */
static struct arena_block *
block_get(void)
{
	struct arena_block *b = block_cache_get(&blocks);

	if (!b)
		return malloc(sizeof(*b) + ARENA_BLOCK);
	CW_UNPOISON(b->data, ARENA_BLOCK);
	return b;
}

/* Gives b back: a standard block to the cache while it has room. Its
 * data is poisoned there; its header (next) links the cache. */
static void
block_put(struct arena_block *b)
{
	if (!b)
		return;
	if (b->size == ARENA_BLOCK) {
		CW_POISON(b->data, ARENA_BLOCK);
		if (block_cache_put(&blocks, b))
			return;
		CW_UNPOISON(b->data, ARENA_BLOCK);
	}
	free(b);
}

struct arena *
arena_new(size_t max_bytes)
{
	struct arena *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->max = max_bytes ? max_bytes : ARENA_DEFAULT_MAX;
	return a;
}

static void
run_list(struct arena_cleanup **list)
{
	while (*list) {
		struct arena_cleanup *c = *list;

		*list = c->next;
		c->fn(c->arg);
	}
}

/* The done list first: it is what the request would have run earlier. */
static void
run_cleanups(struct arena *a)
{
	run_list(&a->done);
	run_list(&a->cleanups);
}

void
arena_reset(struct arena *a)
{
	struct arena_block *b, *keep = NULL;

	if (!a)
		return;
	run_cleanups(a);
	b = a->head;
	while (b) {
		struct arena_block *next = b->next;

		if (!next && b->size == ARENA_BLOCK) {
			keep = b; /* the oldest standard block stays */
		} else {
			block_put(b);
		}
		b = next;
	}
	a->head = keep;
	a->held = keep ? keep->size : 0;
	a->given = 0;
	if (keep) {
		keep->used = 0;
		keep->next = NULL;
	}
}

void
arena_free(struct arena *a)
{
	if (!a)
		return;
	arena_reset(a);
	block_put(a->head);
	free(a);
}

void *
arena_alloc(struct arena *a, size_t n)
{
	struct arena_block *b = a->head;
	size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	void *p;

	if (need < n)
		return NULL;
	if (!need)
		need = ARENA_ALIGN;
	if (!b || b->size - b->used < need) {
		size_t size = need > ARENA_BLOCK ? need : ARENA_BLOCK;

		if (a->held + size > a->max || a->held + size < a->held)
			return NULL;
		b = size == ARENA_BLOCK ? block_get() : malloc(sizeof(*b) + size);
		if (!b)
			return NULL;
		b->size = size;
		b->used = 0;
		/* A big one-off block goes behind the current one so the
		 * current block's free space is not wasted. */
		if (a->head && size > ARENA_BLOCK &&
		    a->head->size - a->head->used >= ARENA_BLOCK / 4) {
			b->next = a->head->next;
			a->head->next = b;
			b->used = need;
			a->held += size;
			a->given += need;
			return b->data;
		}
		b->next = a->head;
		a->head = b;
		a->held += size;
	}
	p = b->data + b->used;
	b->used += need;
	a->given += need;
	return p;
}

void *
arena_zalloc(struct arena *a, size_t n)
{
	void *p = arena_alloc(a, n);

	if (p)
		memset(p, 0, n);
	return p;
}

void *
arena_realloc(struct arena *a, void *p, size_t old, size_t n)
{
	struct arena_block *b = a->head;
	void *q;

	if (n <= old)
		return p;
	/* Grow in place when p is the last allocation of the newest block. */
	if (p && b) {
		size_t oldr = (old + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
		size_t newr = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);

		if ((unsigned char *)p + oldr == b->data + b->used &&
		    b->used - oldr + newr <= b->size) {
			b->used = b->used - oldr + newr;
			a->given += newr - oldr;
			return p;
		}
	}
	q = arena_alloc(a, n);
	if (q && p && old)
		memcpy(q, p, old);
	return q;
}

char *
arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);

	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

char *
arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	p = arena_alloc(a, (size_t)n + 1);
	if (!p)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

/* Pushes fn(arg) on list (newest first). */
static bool
push_cleanup(struct arena *a, struct arena_cleanup **list,
	     void (*fn)(void *), void *arg)
{
	struct arena_cleanup *c = arena_alloc(a, sizeof(*c));

	if (!c)
		return false;
	c->fn = fn;
	c->arg = arg;
	c->next = *list;
	*list = c;
	return true;
}

bool
arena_on_free(struct arena *a, void (*fn)(void *), void *arg)
{
	return push_cleanup(a, &a->cleanups, fn, arg);
}

bool
arena_on_done(struct arena *a, void (*fn)(void *), void *arg)
{
	return push_cleanup(a, &a->done, fn, arg);
}

struct arena_done {
	size_t n;
	struct {
		void (*fn)(void *);
		void *arg;
	} run[];
};

struct arena_done *
arena_take_done(struct arena *a)
{
	struct arena_done *d;
	struct arena_cleanup *c;
	size_t n = 0;

	for (c = a->done; c; c = c->next)
		n++;
	if (!n)
		return NULL;
	d = malloc(sizeof(*d) + n * sizeof(d->run[0]));
	if (!d)
		return NULL; /* they stay, and run at reset */
	d->n = 0;
	for (c = a->done; c; c = c->next) {
		d->run[d->n].fn = c->fn;
		d->run[d->n].arg = c->arg;
		d->n++;
	}
	a->done = NULL;
	return d;
}

void
arena_done_run(struct arena_done *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		d->run[i].fn(d->run[i].arg);
	free(d);
}

size_t
arena_used(const struct arena *a)
{
	return a->given;
}
