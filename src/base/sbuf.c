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

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return CW_EINVAL;
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

enum cw_err
sbuf_add_json_str(struct sbuf *sb, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, start = 0;
	enum cw_err err = CW_OK;

	for (i = 0; i < n && !err; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[7];
		size_t elen = 0;

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			elen = 2;
		} else if (c < 0x20) {
			esc[0] = '\\';
			switch (c) {
			case '\n': esc[1] = 'n'; elen = 2; break;
			case '\r': esc[1] = 'r'; elen = 2; break;
			case '\t': esc[1] = 't'; elen = 2; break;
			default:
				esc[1] = 'u';
				esc[2] = '0';
				esc[3] = '0';
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				elen = 6;
			}
		}
		if (elen) {
			err = sbuf_add(sb, s + start, i - start);
			if (!err)
				err = sbuf_add(sb, esc, elen);
			start = i + 1;
		}
	}
	if (!err)
		err = sbuf_add(sb, s + start, n - start);
	return err;
}
