/* The one error type: a code from the table below, a human message, an optional field. */
#ifndef OQ_ERR_H
#define OQ_ERR_H

#include "core/common.h"

/* X(enum, HTTP status, wire code) */
#define OQ_ERR_CODES(X)                                                                            \
    X(ERR_NONE, 200, "none")                                                                       \
    X(ERR_INVALID_JSON, 400, "invalid_json")                                                       \
    X(ERR_INVALID_REQUEST, 400, "invalid_request")                                                 \
    X(ERR_UNAUTHORIZED, 401, "unauthorized")                                                       \
    X(ERR_FORBIDDEN, 403, "forbidden")                                                             \
    X(ERR_NOT_FOUND, 404, "not_found")                                                             \
    X(ERR_METHOD_NOT_ALLOWED, 405, "method_not_allowed")                                           \
    X(ERR_CONFLICT, 409, "conflict")                                                               \
    X(ERR_SYNC_IN_PROGRESS, 409, "sync_in_progress")                                               \
    X(ERR_IDEMPOTENCY_KEY_IN_USE, 409, "idempotency_key_in_use")                                   \
    X(ERR_IDEMPOTENCY_KEY_REUSED, 422, "idempotency_key_reused")                                   \
    X(ERR_PAYLOAD_TOO_LARGE, 413, "payload_too_large")                                             \
    X(ERR_UNSUPPORTED_MEDIA_TYPE, 415, "unsupported_media_type")                                   \
    X(ERR_QUEUE_FULL, 429, "queue_full")                                                           \
    X(ERR_INTERNAL, 500, "internal")                                                               \
    X(ERR_DB_UNAVAILABLE, 503, "database_unavailable")                                             \
    X(ERR_NOT_READY, 503, "not_ready")                                                             \
    X(ERR_OFFLINE, 503, "offline")                                                                 \
    X(ERR_TOO_MANY_SUBSCRIBERS, 503, "too_many_subscribers")                                       \
    X(ERR_UNDECRYPTABLE, 409, "undecryptable")                                                     \
    X(ERR_MISDIRECTED_REQUEST, 421, "misdirected_request")                                         \
    X(ERR_CROSS_SITE_REQUEST, 403, "cross_site_request")                                           \
    X(ERR_URI_TOO_LONG, 414, "uri_too_long")                                                       \
    X(ERR_HEADERS_TOO_LARGE, 431, "header_fields_too_large")

#define OQ_ERR_ENUM(name, status, code) name,
enum err_code { OQ_ERR_CODES(OQ_ERR_ENUM) ERR__COUNT };
#undef OQ_ERR_ENUM

struct err {
    enum err_code code;
    char message[256];
    char field[128];  /* empty when the error is not about one field */
    char detail[256]; /* for the log only, never sent (e.g. PostgreSQL's own text) */
};

/* Fills *e and returns -1, so callers can write `return err_set(...)`. */
int err_set(struct err *e, enum err_code code, const char *fmt, ...) OQ_PRINTF(3, 4);

/* As err_set, naming the offending request field (e.g. "payload.endpoint"). */
int err_field(struct err *e, enum err_code code, const char *field, const char *fmt, ...)
    OQ_PRINTF(4, 5);

/* Sets the detail that reply_err logs with the request id (err_set and err_field clear it). */
void err_detail(struct err *e, const char *fmt, ...) OQ_PRINTF(2, 3);

/* Prefixes e->field with prefix and a dot (or brackets for an index): "operations[3]". */
void err_prefix_field(struct err *e, const char *prefix);

unsigned err_http_status(enum err_code code);
const char *err_wire_code(enum err_code code);

#endif
