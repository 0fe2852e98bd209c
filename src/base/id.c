/* base/id.c: time-ordered resource ids and random bytes.
 *
 * Server ids are UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then
 * random bits, so ids created later sort later and inserts append to the
 * B-tree. Randomness comes from the kernel (getrandom), never rand(). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/base.h"

void
id_random_bytes(void *buf, size_t n)
{
	unsigned char *p = buf;

	while (n > 0) {
		ssize_t got = getrandom(p, n, 0);

		if (got < 0) {
			if (errno == EINTR)
				continue;
			/* getrandom cannot fail on Linux >= 3.17 once the pool
			 * is ready; there is no safe fallback. */
			log_error("getrandom failed: %s", strerror(errno));
			abort();
		}
		p += got;
		n -= (size_t)got;
	}
}

void
id_new(char out[ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	uint64_t ms = (uint64_t)time_now_ms();
	size_t i, o = 0;

	id_random_bytes(b + 6, 10);
	for (i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (40 - 8 * i));
	b[6] = (unsigned char)(0x70 | (b[6] & 0x0f)); /* version 7 */
	b[8] = (unsigned char)(0x80 | (b[8] & 0x3f)); /* RFC 4122 variant */
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
}

bool
id_is_valid(const char *s, size_t n)
{
	size_t i;

	if (n < 1 || n > 64)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return false;
	}
	return true;
}
