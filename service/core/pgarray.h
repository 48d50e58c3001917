/* The one builder of PostgreSQL array literals, "{a,b,c}", the text form a $N::text[] or
 * $N::uuid[] parameter takes. No I/O. */
#ifndef OQ_PGARRAY_H
#define OQ_PGARRAY_H

#include <stddef.h>

#include "core/common.h"

/* A literal being built, in the caller's memory: pgarray_init, pgarray_add..., then
 * pgarray_finish (or pgarray_close to drop it). */
struct pgarray {
    struct oq_buf b;
    size_t n; /* elements added */
};

void pgarray_init(struct pgarray *a);

/* Appends one element (n bytes of item; pgarray_add: up to its NUL). An element that the array
 * syntax would misread (empty, NULL in any case, holding braces, quotes, commas, backslashes or
 * white space) is double-quoted with '"' and '\' escaped; any other is written as it is, so
 * ids, statuses and names read exactly as they are spelled. */
void pgarray_add(struct pgarray *a, const char *item);
void pgarray_addn(struct pgarray *a, const char *item, size_t n);

/* Closes the literal; returns it as a new string (free with free()) and leaves *a empty. */
char *pgarray_finish(struct pgarray *a);

/* The length the literal will have once finished (for callers with a bounded buffer). */
size_t pgarray_len(const struct pgarray *a);

/* Frees an unfinished literal. */
void pgarray_close(struct pgarray *a);

#endif
