/* The only writers of response bodies. Each request gets exactly one reply. */
#ifndef OQ_REPLY_H
#define OQ_REPLY_H

#include <jansson.h>

#include "core/err.h"
#include "api/http.h"

/* Adds a header to the coming reply (copied). */
void reply_header(struct request *r, const char *name, const char *value);

/* Adds Location: <collection><id>, e.g. ("/api/offline/queue/", id). */
void reply_location(struct request *r, const char *collection, const char *id);

/* Sends the answer a parked request was given: r->deferred_body (JSON text, stolen) with
 * r->deferred_status. The on_resume of requests parked with http_suspend. */
void reply_deferred(struct request *r);

/* Sends body as JSON. Steals body. Returns 0, or -1 if libmicrohttpd refused. */
int reply_json(struct request *r, unsigned status, json_t *body);

/* Sends text, a malloc'd JSON document, as the body. Steals text. */
int reply_json_text(struct request *r, unsigned status, char *text);

/* Streams a body produced by crc (libmicrohttpd content reader) with content_type; free_cb
 * runs when the connection ends. */
int reply_stream(struct request *r, unsigned status, const char *content_type,
                 ssize_t (*crc)(void *, uint64_t, char *, size_t), void *cls,
                 void (*free_cb)(void *));

/* Sends text (malloc'd, stolen) with content_type. */
int reply_text(struct request *r, unsigned status, const char *content_type, char *text);

/* Sends a response without a body (204, 304, preflights). */
int reply_empty(struct request *r, unsigned status);

/* Seconds a client is asked to wait after a 503 or 429 without a better figure of its own. */
#define REPLY_RETRY_AFTER_S "5"

/* Sends {"error":{"code","message","field"?}} with the status of e->code. A 500 says only
 * "internal error"; the detail is in the log. Every 503 and 429 carries Retry-After (a route's
 * own, or REPLY_RETRY_AFTER_S). */
int reply_err(struct request *r, const struct err *e);

#endif
