/* coord/coord_int.h: what the files of coord/ share.
 *
 *   medsafety.c  the medication rules of the write path
 *   reconcile.c  the reconciled medication list ($medication-list) */
#ifndef CW_COORD_INT_H
#define CW_COORD_INT_H

#include "coord/coord.h"

struct coord {
	const struct kb *kb;
};

#endif
