/* Comma-separated lists as the settings write them ("a, b,c"): shared by config.c and
 * upstreams.c, so neither calls into the other for it. */
#ifndef OQ_STRLIST_H
#define OQ_STRLIST_H

#include <stddef.h>

/* Splits s on commas into trimmed, non-empty items. Returns a new array of *n new strings
 * (NULL when there are none); free with strlist_free. */
char **strlist_split(const char *s, size_t *n);

/* Frees the n items and the array (either may be NULL). */
void strlist_free(char **items, size_t n);

#endif
