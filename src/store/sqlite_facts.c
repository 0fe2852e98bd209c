/* store/sqlite_facts.c: rows a module keeps derived from the resources
 * (schema migration 8).
 *
 * The store does not know what a body means: coord/ keeps one row per
 * patient ("coord/<patient id>") with its own encoding. The rows are
 * written inside the caller's transaction, so they commit and roll back
 * with the change they follow; a body is not PHI-free (it names
 * medications) and is encrypted with the rest of the file.
 *
 * A module reads a row, changes it, writes it and reads it again in the
 * same job (coord/: the write path keeps the row true, then the rules read
 * it), so the last row a job read or wrote is kept in memory
 * (store.facts_last, the writer's own) and read back from there. It is
 * forgotten at the start of every job and when a put fails, so it never
 * outlives the job that made it, committed or rolled back. */
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

#define SQL(s) s, sizeof(s) - 1

void
sq_facts_forget(struct store *s, bool done)
{
	s->facts_last.valid = false;
	if (done) {
		free(s->facts_last.name);
		free(s->facts_last.body);
		memset(&s->facts_last, 0, sizeof(s->facts_last));
	}
}

/* Keeps name's body as the last row; forgets it instead when memory runs
 * short (it is only a shortcut). */
static void
remember(struct store *s, const char *name, const void *body, size_t n)
{
	size_t nl = strlen(name) + 1;
	char *nn;

	s->facts_last.valid = false;
	if (n + 1 > s->facts_last.cap) {
		char *nb = realloc(s->facts_last.body, n + 1);

		if (!nb)
			return;
		s->facts_last.body = nb;
		s->facts_last.cap = n + 1;
	}
	if (!(nn = realloc(s->facts_last.name, nl)))
		return;
	s->facts_last.name = nn;
	memcpy(nn, name, nl);
	if (n)
		memcpy(s->facts_last.body, body, n);
	s->facts_last.body[n] = '\0';
	s->facts_last.n = n;
	s->facts_last.valid = true;
}

static bool
copy_out(struct arena *a, const void *p, size_t n, struct span *out)
{
	char *copy = arena_alloc(a, n + 1);

	if (!copy)
		return false;
	if (n)
		memcpy(copy, p, n);
	copy[n] = '\0';
	out->p = copy;
	out->n = n;
	return true;
}

enum cw_err
store_tx_facts_get(struct store_tx *tx, struct arena *a, const char *name,
		   struct span *out, bool *found)
{
	sqlite3_stmt *st = sq_prepare(tx->c, SQL("SELECT body FROM facts WHERE name = ?1"));
	enum cw_err err = CW_OK;
	int rc;

	out->p = NULL;
	out->n = 0;
	*found = false;
	if (tx->s->facts_last.valid && !strcmp(tx->s->facts_last.name, name)) {
		if (!copy_out(a, tx->s->facts_last.body, tx->s->facts_last.n, out))
			return CW_ENOMEM;
		*found = true;
		return CW_OK;
	}
	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *p = sqlite3_column_blob(st, 0);
		size_t n = (size_t)sqlite3_column_bytes(st, 0);

		if (!copy_out(a, p, n, out)) {
			err = CW_ENOMEM;
		} else {
			*found = true;
			remember(tx->s, name, p, n);
		}
	} else if (rc != SQLITE_DONE) {
		err = sq_err(tx->c, rc, "facts get");
	}
	sq_done(st);
	return err;
}

enum cw_err
store_tx_facts_put(struct store_tx *tx, const char *name, const void *body,
		   size_t n)
{
	sqlite3_stmt *st = sq_prepare(tx->c, SQL(
		"INSERT INTO facts(name, body) VALUES(?1, ?2)"
		" ON CONFLICT(name) DO UPDATE SET body = excluded.body"));

	enum cw_err err;

	tx->s->facts_last.valid = false;
	if (!st)
		return CW_EINTERNAL;
	if (n > (size_t)INT32_MAX)
		return CW_ETOOBIG;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, n ? body : "", (int)n, SQLITE_STATIC);
	if (!(err = sq_step_write(tx->c, st, "facts put")))
		remember(tx->s, name, body, n);
	return err;
}

enum cw_err
store_tx_facts_drop(struct store_tx *tx, const char *name)
{
	sqlite3_stmt *st = sq_prepare(tx->c, SQL("DELETE FROM facts WHERE name = ?1"));

	tx->s->facts_last.valid = false;
	if (!st)
		return CW_EINTERNAL;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	return sq_step_write(tx->c, st, "facts drop");
}
