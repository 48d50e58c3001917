/* Compact JSON text with numbers as people wrote them: reals in the shortest form that reads
 * back to the same double (0.1, not jansson's 0.10000000000000001); object order kept. */
#ifndef OQ_JSONTEXT_H
#define OQ_JSONTEXT_H

#include <jansson.h>

/* Returns a malloc'd NUL-terminated text of v (any JSON value). */
char *jsontext(const json_t *v);

struct oq_buf;
/* Appends s (NUL-terminated UTF-8) to b as a JSON string literal, quoted and escaped. */
void jsontext_string(struct oq_buf *b, const char *s);

#endif
