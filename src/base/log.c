/* base/log.c: one line per event on stderr.
 *
 * Lines carry the time, the level and a message made of ids, counts and
 * error names. Callers never pass PHI; this file cannot check that, so the
 * rule lives in every caller's review. One write(2) per line keeps lines
 * from different threads whole. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"

static enum log_level log_min = LOG_INFO;

void
log_set_level(enum log_level lvl)
{
	log_min = lvl;
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	char line[1024], ts[32];
	va_list ap;
	int n, m;

	if (lvl < log_min)
		return;
	time_format_instant(time_now_ms(), ts);
	n = snprintf(line, sizeof(line), "%s %s ", ts, names[lvl]);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
}
