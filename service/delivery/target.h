/* Where a request may go: only below a configured upstream's base URL (the SSRF guard). The
 * same rules hold at enqueue, at delivery and for every redirect. */
#ifndef OQ_TARGET_H
#define OQ_TARGET_H

#include "core/config.h"
#include "core/err.h"

/* True when path (up to its query or fragment) has a "." or ".." segment, also spelled with
 * percent-encoded dots, slashes or backslashes ("%2e%2E", "..%2f"): servers and proxies that
 * decode before they route would read it as a step up. */
bool target_has_dot_segment(const char *path);

/* Checks an absolute URL against u: its origin, no dot segment, and a path equal to u's base
 * path or below it (at a segment boundary). On failure sets *e (field "endpoint") and returns
 * -1. Thread-safe. */
int target_check_url(const struct upstream *u, const char *url, struct err *e) OQ_MUSTCHECK;

#endif
