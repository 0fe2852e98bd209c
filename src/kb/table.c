/* kb/table.c: the kb's hash tables (string -> 32-bit value).
 *
 * The kb is built once and then only read, by every thread at once, so the
 * table is the simplest fast one: open addressing with linear probing, FNV-1a
 * hashes kept in the slots so a probe compares a hash before the bytes, and
 * never more than half full. No deletion. */
#include <string.h>

#include "kb/kb_int.h"

uint32_t
kb_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

bool
kb_tab_init(struct kb_tab *t, struct arena *a, size_t n)
{
	size_t cap = 16;

	while (cap < 2 * n + 2)
		cap <<= 1;
	t->a = a;
	t->slot = arena_zalloc(a, cap * sizeof(*t->slot));
	t->mask = (uint32_t)(cap - 1);
	t->n = 0;
	return t->slot != NULL;
}

static struct kb_slot *
find_slot(const struct kb_tab *t, const char *key, size_t len, uint32_t h)
{
	uint32_t i = h & t->mask;

	for (;;) {
		struct kb_slot *s = &t->slot[i];

		if (!s->key)
			return s;
		if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0)
			return s;
		i = (i + 1) & t->mask;
	}
}

/* Doubles the table (the old slots stay in the arena until the kb goes:
 * loading happens once). */
static bool
grow(struct kb_tab *t)
{
	size_t cap = ((size_t)t->mask + 1) * 2;
	struct kb_slot *old = t->slot, *ns;
	uint32_t omask = t->mask;

	ns = arena_zalloc(t->a, cap * sizeof(*ns));
	if (!ns)
		return false;
	t->slot = ns;
	t->mask = (uint32_t)(cap - 1);
	for (uint32_t i = 0; i <= omask; i++) {
		if (old[i].key)
			*find_slot(t, old[i].key, old[i].len, old[i].hash) = old[i];
	}
	return true;
}

int
kb_tab_put(struct kb_tab *t, const char *key, size_t len, uint32_t val,
	   uint32_t *old)
{
	uint32_t h = kb_hash(key, len);
	struct kb_slot *s = find_slot(t, key, len, h);

	if (s->key) {
		*old = s->val;
		return 0;
	}
	if (2 * ((size_t)t->n + 1) > (size_t)t->mask + 1) {
		if (!grow(t))
			return -1;
		s = find_slot(t, key, len, h);
	}
	s->key = key;
	s->len = (uint32_t)len;
	s->hash = h;
	s->val = val;
	t->n++;
	return 1;
}

bool
kb_tab_get(const struct kb_tab *t, const char *key, size_t len, uint32_t *val)
{
	const struct kb_slot *s;

	if (!t->slot)
		return false;
	s = find_slot(t, key, len, kb_hash(key, len));
	if (!s->key)
		return false;
	*val = s->val;
	return true;
}

struct kb_slot *
kb_tab_slot(struct kb_tab *t, const char *key, size_t len)
{
	struct kb_slot *s = find_slot(t, key, len, kb_hash(key, len));

	return s->key ? s : NULL;
}
