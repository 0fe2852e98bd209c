/* tests/unit/unit.h: what every cmocka unit test includes.
 * Test data lives under $CW_TEST_DATA (tests/data when run by make unit). */
#ifndef CW_UNIT_H
#define CW_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <unistd.h>

#include "base/base.h"

/* The folder of data-driven test cases. */
static inline const char *
unit_data_dir(void)
{
	const char *d = getenv("CW_TEST_DATA");
	return d ? d : "tests/data";
}

/* Removes dir and the files in it (one level: a test's temporary folder). */
static inline void
unit_rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[4096];

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

#endif
