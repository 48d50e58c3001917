/* libmicrohttpd glue: per-request state, body limit, start and stop of the server. */
#ifndef OQ_HTTP_H
#define OQ_HTTP_H

#include <jansson.h>
#include <microhttpd.h>

#include "core/common.h"
#include "core/config.h"
#include "core/err.h"
#include "core/trace.h"

#define HTTP_MAX_EXTRA_HEADERS 8

/* Request line and header limits, answered with a JSON 414 / 431 from the headers alone (as
 * nginx's 8 KB and 4 x 8 KB buffers). Each header and query argument also takes a ~56-byte
 * record in the connection's memory, so a query is also held to HTTP_MAX_QUERY_ARGS arguments
 * (Tomcat's maxParameterCount does the same; more is a JSON 414, and the query is never split).
 * libmicrohttpd 0.9.75 zeroes the whole of a connection's memory at every request of a
 * keep-alive connection (MHD_pool_reset), and half of it again when it shrinks the read buffer
 * for the reply: 256 KiB cost ~384 KB of memset a request, a fifth of the service's CPU.
 * 64 KiB holds any request within the limits unless a long query of many arguments comes with
 * more than about a hundred headers (each record takes 64 bytes of the pool); a request line or
 * header block beyond it gets libmicrohttpd's own 414 / 431 (HTML). */
#define HTTP_MAX_URI_BYTES 8192
#define HTTP_MAX_QUERY_ARGS 256
#define HTTP_MAX_HEADER_BYTES 32768
#define HTTP_CONN_MEMORY_BYTES (64 * 1024)

/* A body over the limit by at most this much more (and at most the limit again) is read and
 * dropped before the 413, as nginx's lingering close reads what the client still sends: a client
 * that does not wait for "100 Continue" is still writing its body, and a reply followed by a
 * close would reset the connection under it, so that it sees "connection reset" instead of the
 * 413. A larger body is refused from its headers and the connection closed. */
#define HTTP_DRAIN_MAX_BYTES (8 * 1024 * 1024)

struct api;
struct app;
struct route;
struct request;

/* Where a streamed body goes (the file route): each piece as it arrives, instead of r->body. */
struct body_sink {
    /* Takes n more bytes; -1 with *e stops the body (the rest is read and dropped, and *e is
     * the reply). */
    int (*write)(struct request *r, const char *p, size_t n, struct err *e);
    /* Drops what was not kept (r->sink_state): called when the body fails or is too large,
     * and when the request ends, answered or cut off. Must be safe to call again. */
    void (*abort)(struct request *r);
};

struct request {
    struct api *api; /* borrowed: the server this request came to (api/api.h) */
    struct app *app; /* borrowed: api->app, the service behind it */
    struct MHD_Connection *conn;
    const char *method; /* borrowed from libmicrohttpd, valid for the request */
    const char *url;
    struct oq_buf body; /* owned; empty when the body went to sink */
    size_t body_limit;
    size_t body_bytes;            /* received so far */
    size_t dropped_bytes;         /* received past the limit, read and dropped */
    const struct body_sink *sink; /* NULL: the body is collected in body */
    void *sink_state;             /* the sink's; freed by sink->abort or the route */
    struct err sink_err;          /* why the sink refused the body */
    bool sink_failed;
    bool too_large;
    bool replied;
    json_t *json; /* owned; the parsed body for JSON routes, or NULL */
    char request_id[129];
    struct trace trace;          /* the client's traceparent, or a new trace */
    const char *tracestate;      /* borrowed from libmicrohttpd; NULL: none (or unfit) */
    char path_id[256];           /* the {id} of the matched route: an id or an upstream name */
    const char *route;           /* the matched route pattern, for logs */
    const struct route *matched; /* the route admitted from the headers, or NULL */
    enum role role;
    const struct api_key *api_key; /* borrowed from config: the key that authenticated, or NULL */
    double start_ms;
    unsigned status;
    const char *cors_origin; /* borrowed from config: the allowed Origin to echo */
    struct {
        const char *name;
        char *value; /* owned */
    } extra[HTTP_MAX_EXTRA_HEADERS];
    int n_extra;
    bool suspended;
    void (*on_resume)(struct request *r); /* must reply */
    void *resume_ctx;                     /* for on_resume */
    unsigned deferred_status;             /* for on_resume */
    char *deferred_body;                  /* owned */
    size_t uri_len;                       /* of the raw request target */
    char uri_head[256];                   /* its start, for the log of a refused request */
    bool uri_too_long;
    bool too_many_args; /* more than HTTP_MAX_QUERY_ARGS query arguments */
    bool close_after;   /* the reply closes the connection (the body was not read) */
};

/* Called once per complete request; must reply exactly once. */
typedef void (*http_dispatch_fn)(struct request *r);

/* Called once the headers are complete, before any byte of the body: either replies at once
 * (the body is then never read and the connection closes), or sets r->body_limit. */
typedef void (*http_admit_fn)(struct request *r);

/* Starts serving api->app->cfg.listen with an internal poll() thread pool into api->daemon,
 * handing each request's headers to admit and each complete request to dispatch (both kept in
 * *api). api is libmicrohttpd's closure: it must outlive http_stop. Returns -1 with *e set. */
int http_start(struct api *api, http_dispatch_fn dispatch, http_admit_fn admit,
               struct err *e) OQ_MUSTCHECK;

/* The port actually bound (useful with port 0). */
int http_port(struct api *api);

/* Stops accepting, has parked requests answered (release_parked(api), may be NULL), waits up
 * to grace_ms for in-flight requests, then stops the server. */
void http_stop(struct api *api, int grace_ms, void (*release_parked)(struct api *api));

/* Parks the request without a reply (no thread is held); http_resume() later makes
 * libmicrohttpd call on_resume, which replies. */
void http_suspend(struct request *r, void (*on_resume)(struct request *r));
/* Thread-safe; for a request parked by http_suspend. */
void http_resume(struct request *r);

/* Returns a request header (borrowed) or NULL. */
const char *http_header(struct request *r, const char *name);

/* Returns a query argument (borrowed) or NULL. */
const char *http_query(struct request *r, const char *name);

#endif
