/* base/sbuf.c: the growing string buffer with a hard cap.
 *
 * git's strbuf invariants (buf never NULL, always NUL-terminated, detach to
 * take it) and curl's dynbuf cap: once an append would pass max the buffer
 * is marked toobig and every later append fails, so one oversized value
 * cannot be half-written into a response. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

char sbuf_empty[1];

void
sbuf_init(struct sbuf *sb, size_t max)
{
	sb->buf = sbuf_empty;
	sb->len = 0;
	sb->alloc = 0;
	sb->max = max;
	sb->toobig = false;
}

void
sbuf_release(struct sbuf *sb)
{
	if (sb->alloc)
		free(sb->buf);
	sbuf_init(sb, sb->max);
}

void
sbuf_reset(struct sbuf *sb)
{
	sb->len = 0;
	if (sb->alloc)
		sb->buf[0] = '\0';
	sb->toobig = false;
}

char *
sbuf_detach(struct sbuf *sb, size_t *len)
{
	char *p;

	if (!sb->alloc) {
		p = malloc(1);
		if (p)
			p[0] = '\0';
	} else {
		p = sb->buf;
	}
	if (len)
		*len = sb->alloc ? sb->len : 0;
	sbuf_init(sb, sb->max);
	return p;
}

enum cw_err
sbuf_grow(struct sbuf *sb, size_t extra)
{
	size_t want, cap;
	char *p;

	if (sb->toobig)
		return CW_ETOOBIG;
	want = sb->len + extra + 1;
	if (want < sb->len || (sb->max && want - 1 > sb->max)) {
		sb->toobig = true;
		return CW_ETOOBIG;
	}
	if (want <= sb->alloc)
		return CW_OK;
	cap = sb->alloc ? sb->alloc : 64;
	while (cap < want)
		cap = cap < ((size_t)1 << 30) ? cap * 2 : want;
	if (sb->max && cap > sb->max + 1)
		cap = sb->max + 1;
	p = realloc(sb->alloc ? sb->buf : NULL, cap);
	if (!p)
		return CW_ENOMEM;
	if (!sb->alloc)
		p[0] = '\0';
	sb->buf = p;
	sb->alloc = cap;
	return CW_OK;
}

enum cw_err
sbuf_add(struct sbuf *sb, const void *p, size_t n)
{
	enum cw_err err = sbuf_grow(sb, n);

	if (err)
		return err;
	memcpy(sb->buf + sb->len, p, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
	return CW_OK;
}

enum cw_err
sbuf_adds(struct sbuf *sb, const char *s)
{
	return sbuf_add(sb, s, strlen(s));
}

enum cw_err
sbuf_addch(struct sbuf *sb, char c)
{
	return sbuf_add(sb, &c, 1);
}

enum cw_err
sbuf_vaddf(struct sbuf *sb, const char *fmt, va_list ap)
{
	va_list cp;
	int n;
	enum cw_err err;

	if (sb->toobig)
		return CW_ETOOBIG;
	/* Straight into the room there is (most appends fit): formatting
	 * twice, to measure and then to write, was half the cost. */
	va_copy(cp, ap);
	if (sb->alloc > sb->len)
		n = vsnprintf(sb->buf + sb->len, sb->alloc - sb->len, fmt, cp);
	else
		n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0) {
		if (sb->alloc)
			sb->buf[sb->len] = '\0';
		return CW_EINVAL;
	}
	if (sb->alloc > sb->len && (size_t)n < sb->alloc - sb->len &&
	    (!sb->max || sb->len + (size_t)n <= sb->max)) {
		sb->len += (size_t)n;
		return CW_OK;
	}
	if (sb->alloc)
		sb->buf[sb->len] = '\0'; /* a partial write is not kept */
	err = sbuf_grow(sb, (size_t)n);
	if (err)
		return err;
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
	return CW_OK;
}

enum cw_err
sbuf_addf(struct sbuf *sb, const char *fmt, ...)
{
	va_list ap;
	enum cw_err err;

	va_start(ap, fmt);
	err = sbuf_vaddf(sb, fmt, ap);
	va_end(ap);
	return err;
}

/* Bytes a JSON string cannot hold as they are: '"', '\\' and controls. */
static inline bool
json_esc(unsigned char c)
{
	return c < 0x20 || c == '"' || c == '\\';
}

enum cw_err
sbuf_add_json_str(struct sbuf *sb, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s, *end = p + n, *run;
	enum cw_err err;

	/* Runs of plain bytes go in with one copy: in FHIR text nearly
	 * every byte is plain, and this writes every stored resource. */
	while (p < end) {
		char esc[6];
		size_t elen = 2;

		for (run = p; p < end && !json_esc(*p); p++)
			;
		if (p > run && (err = sbuf_add(sb, run, (size_t)(p - run))))
			return err;
		if (p == end)
			break;
		esc[0] = '\\';
		switch (*p) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 15];
			elen = 6;
		}
		if ((err = sbuf_add(sb, esc, elen)))
			return err;
		p++;
	}
	return CW_OK;
}
