/* GET /api/offline/events: Server-Sent Events, with Last-Event-ID resume and filters. */
#include <stdlib.h>
#include <string.h>

#include "api/endpoints.h"
#include "api/reply.h"
#include "app.h"

static int parse_last_id(const char *s, struct event_pos *out, bool *given, struct err *e)
{
    *given = s != NULL;
    if (s == NULL)
        return 0;
    if (events_parse_id(s, out) != 0)
        return err_field(e, ERR_INVALID_REQUEST, "Last-Event-ID",
                         "Last-Event-ID must be an event id");
    return 0;
}

int api_events(struct request *r, struct err *e)
{
    struct event_pos after;
    bool given;
    const char *last = http_header(r, "Last-Event-ID");
    if (last == NULL)
        last = http_query(r, "last_event_id");
    const char *type = http_query(r, "operation_type");
    const char *id = http_query(r, "id");
    if (parse_last_id(last, &after, &given, e) != 0)
        return -1;
    if (id != NULL && !oq_is_uuid(id))
        return err_field(e, ERR_INVALID_REQUEST, "id", "id must be an operation id");
    if (type != NULL && (strlen(type) == 0 || strlen(type) > 63))
        return err_field(e, ERR_INVALID_REQUEST, "operation_type", "operation_type is not valid");
    struct stream *s = events_open(&r->app->events, r->conn, given ? &after : NULL, type, id, e);
    if (s == NULL) {
        if (e->code == ERR_TOO_MANY_SUBSCRIBERS)
            reply_header(r, "Retry-After", "5");
        return -1;
    }
    return reply_stream(r, 200, "text/event-stream", events_read, s, events_close);
}
