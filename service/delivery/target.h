/* Where a request may go: only below a configured upstream's base URL (the SSRF guard). The
 * same rules hold at enqueue, at delivery and for every redirect. */
#ifndef OQ_TARGET_H
#define OQ_TARGET_H

#include <jansson.h>

#include "core/config.h"
#include "core/err.h"

/* The upstream a payload names (payload.upstream, "default" when none), borrowed from cfg, or
 * NULL when no such upstream is configured. */
const struct upstream *target_upstream(const struct config *cfg, const json_t *payload);

/* For handlers that send to an upstream: checks payload.upstream and payload.endpoint (a path
 * on the upstream, or an absolute URL whose origin is the upstream's). On failure sets *e
 * (field relative to the payload) and returns -1. Thread-safe. */
int target_validate(const json_t *payload, const struct config *cfg, struct err *e) OQ_MUSTCHECK;

/* Checks payload.headers (an object): token names, none of the transport's or the service's
 * own (Host, Connection, TE, Proxy-*, Idempotency-Key, webhook-* ...: target.c has the one
 * table), string values without control characters. Thread-safe. */
int target_check_headers(const json_t *headers, struct err *e) OQ_MUSTCHECK;

/* True when path (up to its query or fragment) has a "." or ".." segment, also spelled with
 * percent-encoded dots, slashes or backslashes ("%2e%2E", "..%2f"): servers and proxies that
 * decode before they route would read it as a step up. */
bool target_has_dot_segment(const char *path);

/* Checks an absolute URL against u: its origin, no dot segment, and a path equal to u's base
 * path or below it (at a segment boundary). On failure sets *e (field "endpoint") and returns
 * -1. Thread-safe. */
int target_check_url(const struct upstream *u, const char *url, struct err *e) OQ_MUSTCHECK;

#endif
