/* libmicrohttpd glue: per-request state, body limit, start and stop of the server. */
#ifndef OQ_HTTP_H
#define OQ_HTTP_H

#include <jansson.h>
#include <microhttpd.h>

#include "app.h"
#include "config.h"

#define HTTP_MAX_EXTRA_HEADERS 8

struct request {
    struct app *app;
    struct MHD_Connection *conn;
    const char *method; /* borrowed from libmicrohttpd, valid for the request */
    const char *url;
    struct oq_buf body; /* owned */
    size_t body_limit;
    bool too_large;
    bool replied;
    json_t *json;       /* owned; the parsed body for JSON routes, or NULL */
    char request_id[129];
    char path_id[64];   /* the {id} of the matched route */
    const char *route;  /* the matched route pattern, for logs */
    enum role role;
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
};

/* Called once per complete request; must reply exactly once. */
typedef void (*http_dispatch_fn)(struct request *r);

/* The largest body accepted for this request (known from method and URL, before the body). */
typedef size_t (*http_limit_fn)(struct request *r);

/* Starts serving cfg.listen with an internal epoll thread pool, handing each complete request
 * to dispatch. Returns -1 with *e set. */
int http_start(struct app *a, http_dispatch_fn dispatch, http_limit_fn limit,
               struct err *e) OQ_MUSTCHECK;

/* The port actually bound (useful with port 0). */
int http_port(struct app *a);

/* Stops accepting, has parked requests answered (release_parked, may be NULL), waits up to
 * grace_ms for in-flight requests, then stops the server. */
void http_stop(struct app *a, int grace_ms, void (*release_parked)(void));

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
