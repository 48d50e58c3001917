/* Parsers of untrusted request input: the JSON body every JSON route accepts, one enqueue
 * body, the operation list's query. Shared by the handlers (api/queue.c), the group commit
 * (api/park/coalesce.c) and the fuzz targets (fuzz/). No I/O; thread-safe. */
#ifndef OQ_PARSE_H
#define OQ_PARSE_H

#include <jansson.h>
#include <stddef.h>

#include "core/config.h"
#include "core/err.h"

struct op_new;
struct list_query;

/* A request body as the JSON routes accept it: an object, no duplicate keys, at most 64 levels
 * deep. Returns the object (new reference) or NULL with *e (invalid_json). */
json_t *api_parse_json_body(const char *data, size_t len, struct err *e);

/* Checks one enqueue body (shape, then the operation type's payload rules) and fills *op. The
 * strings of *op are borrowed from body (keep body alive while op is used), except
 * payload_json and depends_on, which are new: free them with api_op_new_free, also after a
 * failure. Returns -1 with *e set (field names the offending key). */
int api_parse_enqueue(const json_t *body, const struct config *cfg, struct op_new *op,
                      struct err *e);

/* Frees what api_parse_enqueue allocated in *op (not op itself). */
void api_op_new_free(struct op_new *op);

/* GET /api/offline/queue's query arguments (each may be NULL). The statuses become a
 * PostgreSQL array literal written into statuses_buf (len bytes), which q->statuses then
 * borrows, as q->operation_type borrows type. Returns -1 with *e set. */
int api_parse_list_query(const char *status, const char *cursor, const char *type,
                         const char *limit, struct list_query *q, char *statuses_buf, size_t len,
                         struct err *e);

#endif
