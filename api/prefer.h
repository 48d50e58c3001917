/* Prefer (RFC 7240) on enqueue: wait=N (api/park/waiters.c) and return=minimal|representation.
 * A request may send several preferences in one field, comma-separated, or in several Prefer
 * fields; the first instance of each preference counts (RFC 7240 section 2). */
#ifndef OQ_PREFER_H
#define OQ_PREFER_H

#include <stdbool.h>

#include "api/http.h"

enum prefer_return { PREFER_RETURN_DEFAULT, PREFER_RETURN_MINIMAL, PREFER_RETURN_REPRESENTATION };

struct prefer {
    double wait_s;          /* wait=N (capped at 30), or -1 */
    enum prefer_return ret; /* return=...; DEFAULT when absent or unknown */
};

/* The preferences of every Prefer field of r. */
void prefer_parse(struct request *r, struct prefer *out);

/* The preferences of one Prefer field value (or several joined with ", "); NULL: none. */
void prefer_parse_value(const char *value, struct prefer *out);

/* The Preference-Applied value for what the answer honours ("wait, return=minimal"), or NULL
 * when it honours none. */
const char *prefer_applied(const struct prefer *p, bool wait_applied);

#endif
