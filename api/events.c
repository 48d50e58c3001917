/* GET /api/offline/events: Server-Sent Events, with Last-Event-ID resume and filters. The hub
 * (engine/events.c) writes each stream's bytes; this file is its libmicrohttpd side: the
 * callback response, the content reader, and the suspend / resume of the connection. */
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

/* The sink's arg is the connection itself, not the struct request: the connection outlives the
 * stream, while the request may be freed (on_completed) before the response's free callback
 * closes the stream (libmicrohttpd versions differ in that order). A suspended connection is
 * neither processed nor closed until it is resumed. http_suspend does not fit: it parks a
 * request before its reply (on_resume then replies), this pauses a reply being sent. */
static void suspend_conn(void *conn)
{
    MHD_suspend_connection(conn);
}

static void resume_conn(void *conn)
{
    MHD_resume_connection(conn);
}

/* libmicrohttpd's content reader: the hub's values in libmicrohttpd's words. 0 (nothing now)
 * passes as is: the connection was suspended, or libmicrohttpd simply asks again. */
static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos; /* the hub keeps its own place in the stream */
    ssize_t n = events_read(cls, buf, max);
    if (n == EVENTS_END)
        return MHD_CONTENT_READER_END_OF_STREAM;           /* a clean end: EventSource reconnects */
    return n >= 0 ? n : MHD_CONTENT_READER_END_WITH_ERROR; /* the hub returns no other */
}

/* libmicrohttpd's free callback of the response: the connection is done with the stream. */
static void close_stream(void *cls)
{
    events_close(cls);
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
    const struct events_sink sink = {.pause = suspend_conn, .wake = resume_conn, .arg = r->conn};
    struct stream *s = events_open(&r->app->events, &sink, given ? &after : NULL, type, id, e);
    if (s == NULL)
        return -1;
    return reply_stream(r, 200, "text/event-stream", read_stream, s, close_stream);
}
