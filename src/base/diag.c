/* base/diag.c: diagnostics of one request, and the project's error names.
 *
 * Issues are what the client may read (they become OperationOutcome
 * issues); the log detail is a separate, PHI-free line for the server log.
 * Keeping the two apart is how PHI stays out of logs. */
#include <stdio.h>
#include <string.h>

#include "base/base.h"

static const char *const err_names[CW_ERR_COUNT] = {
	[CW_OK] = "ok",
	[CW_EINVAL] = "invalid request",
	[CW_EINVALID] = "invalid content",
	[CW_ENOTFOUND] = "not found",
	[CW_EGONE] = "gone",
	[CW_ECONFLICT] = "conflict",
	[CW_EPRECOND] = "precondition failed",
	[CW_ETOOBIG] = "too large",
	[CW_EUNAUTH] = "unauthenticated",
	[CW_EFORBIDDEN] = "forbidden",
	[CW_ENOTALLOWED] = "method not allowed",
	[CW_EMEDIATYPE] = "unsupported media type",
	[CW_EUNSUPPORTED] = "not supported",
	[CW_EBUSY] = "busy",
	[CW_ETIMEOUT] = "timed out",
	[CW_ERATE] = "too many requests",
	[CW_ENOMEM] = "out of memory",
	[CW_EIO] = "input/output error",
	[CW_EINTERNAL] = "internal error",
};

const char *
cw_strerror(enum cw_err err)
{
	if ((unsigned)err >= CW_ERR_COUNT || !err_names[err])
		return "unknown error";
	return err_names[err];
}

bool
span_eq(struct span a, const char *s)
{
	size_t n = strlen(s);

	return a.n == n && (n == 0 || memcmp(a.p, s, n) == 0);
}

void
diag_init(struct diag *d, struct arena *a)
{
	memset(d, 0, sizeof(*d));
	d->a = a;
}

static void
diag_vadd(struct diag *d, enum diag_sev sev, const char *code,
	  const char *loc, const char *fmt, va_list ap)
{
	struct diag_issue *is;
	char buf[1024];

	if (sev <= DIAG_ERROR)
		d->nerrors++;
	if (d->n >= DIAG_MAX_ISSUES || !d->a) {
		d->dropped++;
		return;
	}
	if (!d->issues) {
		d->issues = arena_alloc(d->a, DIAG_MAX_ISSUES * sizeof(*d->issues));
		if (!d->issues) {
			d->dropped++;
			return;
		}
	}
	vsnprintf(buf, sizeof(buf), fmt, ap);
	is = &d->issues[d->n++];
	is->sev = sev;
	is->code = code;
	is->msg = arena_strdup(d->a, buf);
	is->loc = loc ? arena_strdup(d->a, loc) : NULL;
	if (!is->msg)
		is->msg = "(out of memory)";
}

void
diag_add(struct diag *d, enum diag_sev sev, const char *code, const char *loc,
	 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vadd(d, sev, code, loc, fmt, ap);
	va_end(ap);
}

enum cw_err
diag_err(struct diag *d, enum cw_err err, const char *code, const char *loc,
	 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vadd(d, DIAG_ERROR, code, loc, fmt, ap);
	va_end(ap);
	return err;
}

void
diag_log(struct diag *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->log, sizeof(d->log), fmt, ap);
	va_end(ap);
}
