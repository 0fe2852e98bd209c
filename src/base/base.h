/* base/base.h: the small things every careweave module uses.
 *
 * Error codes, spans, the request arena and caches of freed blocks, the
 * growing string buffer with a hard cap, diagnostics (the client-safe issues
 * that become an OperationOutcome and the PHI-free detail that goes to the
 * log), FHIR time values as UTC ranges, time-ordered ids, named threads and
 * logging. libc only. */
#ifndef CW_BASE_H
#define CW_BASE_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CW_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* ---- errors ---------------------------------------------------------- */

/* One enum for the whole project. api/ maps it to an HTTP status with one
 * table (api_status_of); the comment gives that status. */
enum cw_err {
	CW_OK = 0,
	CW_EINVAL,       /* 400 unparseable input or a bad parameter */
	CW_EINVALID,     /* 422 well-formed content that does not validate */
	CW_ENOTFOUND,    /* 404 */
	CW_EGONE,        /* 410 deleted */
	CW_ECONFLICT,    /* 409 */
	CW_EPRECOND,     /* 412 stale If-Match, or a condition matched several */
	CW_ETOOBIG,      /* 413 a body or a buffer over its limit */
	CW_EUNAUTH,      /* 401 */
	CW_EFORBIDDEN,   /* 403 */
	CW_ENOTALLOWED,  /* 405 */
	CW_EMEDIATYPE,   /* 415 */
	CW_EUNSUPPORTED, /* 501 */
	CW_EBUSY,        /* 503 */
	CW_ETIMEOUT,     /* 503 */
	CW_ERATE,        /* 429 too many attempts from one place */
	CW_ENOMEM,       /* 500 */
	CW_EIO,          /* 500 */
	CW_EINTERNAL,    /* 500 */
	CW_ERR_COUNT
};

/* A short English name for err ("not found"). Static storage. */
const char *cw_strerror(enum cw_err err);

/* ---- spans ----------------------------------------------------------- */

/* A view into bytes someone else owns. Not NUL-terminated in general. */
struct span {
	const char *p;
	size_t n;
};

#define SPAN_LIT(s) ((struct span){(s), sizeof(s) - 1})
bool span_eq(struct span a, const char *s);

/* The value of hex digit c (either case), -1 if it is not one. */
static inline int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* ---- arena ----------------------------------------------------------- */

/* One arena per HTTP request, HL7 message, import batch or rule run.
 * Everything allocated in it dies with it. Allocation is a pointer bump in
 * 16 KiB+ blocks. An arena has a byte cap: past it, allocation returns NULL
 * (callers turn that into CW_ETOOBIG/CW_ENOMEM), so input cannot make
 * careweave allocate without bound. Not thread-safe: one owner at a time. */
struct arena;

/* max_bytes 0 means the default cap (256 MiB). Returns NULL only if malloc
 * fails. Free with arena_free(). */
struct arena *arena_new(size_t max_bytes);
void arena_free(struct arena *a);
/* Frees everything allocated (running cleanups), keeps one block for reuse. */
void arena_reset(struct arena *a);
/* Aligned to 16. NULL when the cap is reached or malloc fails. */
void *arena_alloc(struct arena *a, size_t n);
void *arena_zalloc(struct arena *a, size_t n);
/* Grows the block at p (which came from arena_alloc with size old) to n. */
void *arena_realloc(struct arena *a, void *p, size_t old, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...) CW_PRINTF(2, 3);
/* Registers fn(arg) to run when the arena is reset or freed (newest first):
 * how statements, files and jansson values hang on a request. Returns false
 * (and runs nothing) if the cleanup record cannot be allocated. */
bool arena_on_free(struct arena *a, void (*fn)(void *), void *arg);
/* The same for what nothing needs once the request's handler has returned
 * (a parsed request body: the answer is text of its own). The HTTP server
 * takes these with arena_take_done before it hands the answer over and
 * runs them with arena_done_run on the worker meanwhile, so freeing a big
 * request costs neither the next request's thread nor the client's wait;
 * whatever is not taken runs at reset, before the other cleanups. */
bool arena_on_done(struct arena *a, void (*fn)(void *), void *arg);
struct arena_done; /* opaque, malloc'd */
/* Moves the done cleanups out of a (NULL when there are none, or when
 * memory is short: then they stay and run at reset). */
struct arena_done *arena_take_done(struct arena *a);
/* Runs and frees them; touches nothing of the arena they came from. */
void arena_done_run(struct arena_done *d);
/* Bytes handed out so far. */
size_t arena_used(const struct arena *a);

/* ---- block caches ---------------------------------------------------- */

/* Freed blocks of one kind kept for the next user on any thread (newest
 * first, at most max), so big requests write into memory that is already
 * resident instead of growing a malloc arena into new pages. A block's
 * first bytes must be a pointer the cache may overwrite while it holds it
 * (its own next link). The arena's 16 KiB blocks and json_pool's 1 MiB
 * blocks each have one. */
struct block_cache {
	pthread_mutex_t mu;
	void *head;
	size_t n, max;
};
#define BLOCK_CACHE_INIT(max_blocks) \
	{.mu = PTHREAD_MUTEX_INITIALIZER, .max = (max_blocks)}
/* A cached block, or NULL when there is none. */
void *block_cache_get(struct block_cache *c);
/* Keeps b (true), or false when the cache is full: the caller frees it. */
bool block_cache_put(struct block_cache *c, void *b);

/* AddressSanitizer's marks for memory a cache or pool holds but has not
 * handed out: touching it is reported as a use after free. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define CW_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define CW_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define CW_POISON(p, n) ((void)(p), (void)(n))
#define CW_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* ---- string buffer --------------------------------------------------- */

/* git's strbuf invariants: buf is never NULL (an empty sbuf points at a
 * static ""), buf[len] == '\0', sbuf_detach is the way to take the memory.
 * max is a hard cap like curl's dynbuf: an append that would pass it fails
 * with CW_ETOOBIG and sets toobig; later appends keep failing. Heap memory:
 * free with sbuf_release or take it with sbuf_detach. */
struct sbuf {
	char *buf;
	size_t len;
	size_t alloc;
	size_t max;
	bool toobig;
};

extern char sbuf_empty[];
#define SBUF_INIT(maxbytes) {sbuf_empty, 0, 0, (maxbytes), false}

void sbuf_init(struct sbuf *sb, size_t max);
void sbuf_release(struct sbuf *sb);
void sbuf_reset(struct sbuf *sb);           /* len = 0, keeps memory */
char *sbuf_detach(struct sbuf *sb, size_t *len);
enum cw_err sbuf_grow(struct sbuf *sb, size_t extra);
enum cw_err sbuf_add(struct sbuf *sb, const void *p, size_t n);
enum cw_err sbuf_adds(struct sbuf *sb, const char *s);
enum cw_err sbuf_addch(struct sbuf *sb, char c);
enum cw_err sbuf_addf(struct sbuf *sb, const char *fmt, ...) CW_PRINTF(2, 3);
enum cw_err sbuf_vaddf(struct sbuf *sb, const char *fmt, va_list ap);
/* Appends s as the inside of a JSON string (escapes ", \ and controls). */
enum cw_err sbuf_add_json_str(struct sbuf *sb, const char *s, size_t n);

/* ---- diagnostics ----------------------------------------------------- */

/* The problems found while serving one request. Each issue carries what the
 * client may see (message, FHIRPath location) and becomes one
 * OperationOutcome.issue. The log detail is for the server log and holds
 * ids and counts, never PHI values. Memory comes from the arena. At most
 * DIAG_MAX_ISSUES are kept; later ones are counted in dropped. */
enum diag_sev { DIAG_FATAL, DIAG_ERROR, DIAG_WARNING, DIAG_INFO };

#define DIAG_MAX_ISSUES 100

struct diag_issue {
	enum diag_sev sev;
	const char *code; /* FHIR IssueType: invalid, structure, required,
	                     value, not-found, conflict, too-long, processing,
	                     not-supported, security, exception, deleted, ... */
	const char *msg;  /* client-safe text */
	const char *loc;  /* FHIRPath expression (Patient.name[0].given) or NULL */
};

struct diag {
	struct arena *a;
	struct diag_issue *issues;
	size_t n;
	size_t dropped;
	size_t nerrors; /* fatal + error */
	char log[256];  /* PHI-free detail for the server log */
};

void diag_init(struct diag *d, struct arena *a);
/* Adds an issue; loc may be NULL. The message is formatted into the arena. */
void diag_add(struct diag *d, enum diag_sev sev, const char *code,
	      const char *loc, const char *fmt, ...) CW_PRINTF(5, 6);
/* Shorthand for an error issue. Returns err so callers can
 * `return diag_err(d, CW_EINVALID, "value", loc, "...")`. */
enum cw_err diag_err(struct diag *d, enum cw_err err, const char *code,
		     const char *loc, const char *fmt, ...) CW_PRINTF(5, 6);
/* Sets the server-log detail (ids only, never PHI). */
void diag_log(struct diag *d, const char *fmt, ...) CW_PRINTF(2, 3);
static inline bool diag_has_errors(const struct diag *d) { return d->nerrors > 0; }

/* ---- time ------------------------------------------------------------ */

/* FHIR date, dateTime and instant values as UTC ranges in milliseconds since
 * the epoch. A partial value covers its whole period: "2020" is
 * [2020-01-01T00:00:00.000Z, 2020-12-31T23:59:59.999Z]; "2020-03-05T10:00Z"
 * is one minute wide; values without a zone are read as UTC. lo and hi are
 * both inclusive. */
enum time_kind {
	TIME_DATE,     /* YYYY, YYYY-MM, YYYY-MM-DD */
	TIME_DATETIME, /* date, or full date with time and zone */
	TIME_INSTANT,  /* full date, time with seconds, and zone */
	TIME_SEARCH,   /* as dateTime, plus YYYY-MM-DDThh:mm and no zone (search values) */
};

struct time_range {
	int64_t lo;
	int64_t hi;
};

/* Parses s[0..n) strictly by the FHIR regex for kind. CW_EINVAL if it does
 * not match or names an impossible date (2023-02-30). */
enum cw_err time_parse(const char *s, size_t n, enum time_kind kind,
		       struct time_range *out);
/* FHIR time (hh:mm:ss[.fff]) check. */
bool time_is_valid_time(const char *s, size_t n);
/* One day in milliseconds (of UTC: no leap seconds). */
#define TIME_DAY_MS 86400000LL
/* Milliseconds since the epoch, wall clock. */
int64_t time_now_ms(void);
/* Formats ms as an instant "2026-11-23T17:50:00.123Z" (24 chars + NUL). */
void time_format_instant(int64_t ms, char out[32]);
/* Formats ms as an HTTP date "Mon, 23 Nov 2026 17:50:00 GMT". */
void time_format_http(int64_t ms, char out[40]);
/* Days from 1970-01-01 to y-m-d (proleptic Gregorian); no libc tables. */
int64_t time_days_from_civil(int64_t y, unsigned m, unsigned d);

/* ---- ids ------------------------------------------------------------- */

#define ID_LEN 36 /* a UUID's text form */

/* A new time-ordered id (UUIDv7: 48 bits of ms, then random), so rows
 * inserted in time order append to the B-tree. out gets 36 chars + NUL. */
void id_new(char out[ID_LEN + 1]);
/* FHIR id rule: [A-Za-z0-9\-\.]{1,64}. */
bool id_is_valid(const char *s, size_t n);
/* Fills buf with n cryptographically random bytes (getrandom). */
void id_random_bytes(void *buf, size_t n);

/* ---- threads --------------------------------------------------------- */

/* pthread_create with default attributes, then the thread's name (at most
 * 15 characters, as top -H shows it). pthread_create's result. */
int thread_start(pthread_t *th, void *(*fn)(void *), void *arg, const char *name);

/* A runner: one named thread that runs jobs handed to it, one at a time,
 * and is kept between them (its memory stays resident). NULL if no thread
 * can be had. */
struct runner;
struct runner *runner_new(const char *name);
/* Hands fn(arg) to r; 0, or -1 when r is NULL, busy or stopping (the
 * caller does the work itself). */
int runner_start(struct runner *r, void *(*fn)(void *), void *arg);
/* Waits until the job handed to r has returned. */
void runner_wait(struct runner *r);
/* Waits for a job in hand, then ends the thread. NULL: nothing. */
void runner_free(struct runner *r);

/* ---- logging --------------------------------------------------------- */

/* One line per event to stderr: time, level, message. Never pass PHI:
 * resource ids, counts and error names only. */
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level lvl);
void log_msg(enum log_level lvl, const char *fmt, ...) CW_PRINTF(2, 3);
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
