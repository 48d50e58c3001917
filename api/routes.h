/* The route table: method, path pattern, required role, body kind, handler. */
#ifndef OQ_ROUTES_H
#define OQ_ROUTES_H

#include "api/http.h"
#include "core/validate.h"

enum body_kind {
    BODY_NONE,     /* a body is ignored */
    BODY_JSON,     /* a JSON object is required */
    BODY_JSON_OPT, /* a JSON object, or nothing */
    BODY_RAW,      /* any bytes (a file), up to OFFLINEQ_MAX_FILE_BYTES, streamed to the store */
};

/* A handler replies itself and returns 0, or returns -1 with *e set for reply_err. */
typedef int (*route_fn)(struct request *r, struct err *e);

struct route {
    const char *method;
    const char *pattern; /* "{id}" matches one path segment */
    route_fn fn;
    enum role need; /* ROLE_NONE = public */
    enum body_kind body;
    const struct field_rule *rules; /* the JSON body's fields, checked before fn (NULL: fn does) */
};

/* The table, ended by a row with method NULL. */
const struct route *routes_table(void);

/* Finds the route for method and path; fills path_id for "{id}". Returns NULL when none
 * matches; *path_known tells whether another method would have matched (405). */
const struct route *routes_match(const char *method, const char *path, char *path_id, size_t id_len,
                                 bool *path_known);

/* From the headers alone (http_admit_fn): keyless mode's Host and Origin rules, the route
 * (404/405), the key and its role; replies when one refuses. Otherwise sets the route's body
 * limit: OFFLINEQ_MAX_FILE_BYTES for file uploads, OFFLINEQ_MAX_BODY_BYTES otherwise. */
void routes_admit(struct request *r);

/* The route's {id} (borrowed from r) when it is a UUID; otherwise NULL with *e set to 404
 * "no <what> with that id": what is not a UUID names nothing we store. */
const char *routes_path_uuid(struct request *r, const char *what, struct err *e);

/* Once the body is in: a preflight, or the content type and body checks, then the handler. */
void routes_dispatch(struct request *r);

#endif
