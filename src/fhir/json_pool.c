/* fhir/json_pool.c: where jansson's memory comes from.
 *
 * A 1,000-entry transaction Bundle parses into about 150,000 jansson
 * allocations (7 MB). Through malloc its parse took 4 to 60 ms in the
 * server (fragmented arenas, consolidation, freshly faulted pages), with a
 * bump allocator about 2 ms, and the parse is on the Bundle's critical path.
 * So jansson's allocator is ours (installed before main): while a pool is
 * current on a thread (fhir_parse_json of a large body), jansson's
 * allocations bump in the pool's blocks; everything else goes to malloc.
 *
 * Every allocation has a 16-byte header naming its pool (NULL for malloc),
 * so a value may be freed on any thread, and a part of the tree kept past
 * the request (json_incref) keeps the pool alive: a pool counts its live
 * allocations, plus a bias for its owner until fhir_pool_end. When the
 * count reaches zero its blocks go back to a shared cache, so the next big
 * parse writes into memory that is already resident.
 *
 * Under AddressSanitizer every pool byte not handed out, and every block
 * given back, is poisoned, with a redzone after each allocation. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "fhir/fhir_int.h"

#if defined(__SANITIZE_ADDRESS__)
#define REDZONE 16
#else
#define REDZONE 0
#endif

#define POOL_BLOCK ((size_t)1 << 20)  /* bytes of one block's data */
#define POOL_BIG (POOL_BLOCK / 8)     /* larger allocations go to malloc */
#define POOL_CACHE_MAX 64             /* blocks kept for later pools: 64 MiB */
/* The owner's share of a pool's count: larger than any number of
 * allocations, so frees before fhir_pool_end never bring it to zero. */
#define OWNER_BIAS ((int64_t)1 << 62)

struct pool_block {
	struct pool_block *next;
	size_t used;
	_Alignas(16) unsigned char data[];
};

struct json_pool {
	_Atomic int64_t live;     /* allocations not yet freed, plus OWNER_BIAS */
	int64_t made;             /* allocations so far (owner's thread only) */
	struct pool_block *head;  /* newest block first */
};

struct hdr {
	struct json_pool *pool;   /* NULL: from malloc */
	size_t pad;               /* keeps what follows 16-byte aligned */
};

static _Thread_local struct json_pool *current;

static struct block_cache cache = BLOCK_CACHE_INIT(POOL_CACHE_MAX);
static _Atomic size_t blocks_held; /* by pools not yet released */

/* A block with all of its data poisoned (cached blocks are). */
static struct pool_block *
block_get(void)
{
	struct pool_block *b = block_cache_get(&cache);

	if (!b) {
		b = malloc(sizeof(*b) + POOL_BLOCK);
		if (!b)
			return NULL;
		CW_POISON(b->data, POOL_BLOCK);
	}
	b->next = NULL;
	b->used = 0;
	atomic_fetch_add_explicit(&blocks_held, 1, memory_order_relaxed);
	return b;
}

static void
pool_release(struct json_pool *p)
{
	struct pool_block *b = p->head, *next;
	size_t n = 0;

	for (; b; b = next, n++) {
		next = b->next;
		CW_POISON(b->data, POOL_BLOCK);
		if (!block_cache_put(&cache, b))
			free(b);
	}
	atomic_fetch_sub_explicit(&blocks_held, n, memory_order_relaxed);
	free(p);
}

static void
pool_unref(struct json_pool *p, int64_t n)
{
	/* acq_rel: whoever takes it to zero sees every other thread's last
	 * use of the pool's memory before it hands the blocks back */
	if (atomic_fetch_sub_explicit(&p->live, n, memory_order_acq_rel) == n)
		pool_release(p);
}

static void *
pool_bump(struct json_pool *p, size_t n)
{
	struct pool_block *b = p->head;
	size_t need = (n + 15) & ~(size_t)15;
	void *at;

	if (!b || POOL_BLOCK - b->used < need + REDZONE) {
		if (!(b = block_get()))
			return NULL;
		b->next = p->head;
		p->head = b;
	}
	at = b->data + b->used;
	b->used += need + REDZONE;
	CW_UNPOISON(at, n);
	return at;
}

static void *
cw_json_malloc(size_t n)
{
	struct json_pool *p = current;
	struct hdr *h;

	if (n > SIZE_MAX - sizeof(*h))
		return NULL;
	if (p && n <= POOL_BIG && (h = pool_bump(p, sizeof(*h) + n))) {
		h->pool = p;
		p->made++;
		return h + 1;
	}
	if (!(h = malloc(sizeof(*h) + n)))
		return NULL;
	h->pool = NULL;
	return h + 1;
}

static void
cw_json_free(void *ptr)
{
	struct hdr *h;

	if (!ptr)
		return;
	h = (struct hdr *)ptr - 1;
	if (h->pool)
		pool_unref(h->pool, 1);
	else
		free(h);
}

/* Before main, so that no jansson value is ever freed by the other
 * allocator than the one that made it. Any program with fhir_pool_begin
 * has this file, so a pool never starts under jansson's own allocator. */
__attribute__((constructor)) static void
install(void)
{
	json_set_alloc_funcs(cw_json_malloc, cw_json_free);
}

struct json_pool *
fhir_pool_begin(void)
{
	struct json_pool *p;

	if (current || !(p = calloc(1, sizeof(*p))))
		return NULL;
	atomic_init(&p->live, OWNER_BIAS);
	current = p;
	return p;
}

void
fhir_pool_end(struct json_pool *p)
{
	if (!p)
		return;
	current = NULL;
	/* live becomes the allocations still in use; the owner's bias goes */
	pool_unref(p, OWNER_BIAS - p->made);
}

size_t
fhir_pool_blocks_held(void)
{
	return atomic_load_explicit(&blocks_held, memory_order_relaxed);
}
