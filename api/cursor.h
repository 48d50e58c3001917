/* Opaque keyset cursors for the operation list: base64url of "v1.<priority>.<seq>". */
#ifndef OQ_CURSOR_H
#define OQ_CURSOR_H

#include "core/common.h"

#define CURSOR_MAX 64

/* Writes the cursor after (priority, seq) into out (CURSOR_MAX bytes). */
void cursor_encode(int priority, long long seq, char out[CURSOR_MAX]);

/* Parses a cursor; returns -1 for anything cursor_encode cannot have produced. */
int cursor_decode(const char *s, int *priority, long long *seq) OQ_MUSTCHECK;

#endif
