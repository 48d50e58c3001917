/* The HTTP side of the service as one object: the server, the router it hands requests to,
 * the requests parked in it, the bodies cached for pollers. As libuv's handles, it lives in
 * the caller's memory (main.c) and is passed explicitly: libmicrohttpd gets it as the closure
 * of its callbacks, and every request carries it (r->api). */
#ifndef OQ_API_H
#define OQ_API_H

#include <stdatomic.h>

#include "api/eta.h"
#include "api/etag.h"
#include "api/http.h"
#include "api/park/coalesce.h"
#include "api/park/waiters.h"

struct MHD_Daemon;

struct api {
    struct app *app;                    /* borrowed: the service behind the endpoints */
    struct MHD_Daemon *daemon;          /* owned: the server while it runs, else NULL */
    atomic_int inflight;                /* requests started and not yet completed */
    http_admit_fn admit;                /* the router: a request's headers (routes_admit) */
    http_dispatch_fn dispatch;          /* the router: a complete request (routes_dispatch) */
    struct waiters waiters;             /* enqueues with Prefer: wait=N */
    struct coalesce coalesce;           /* group commit of single enqueues */
    struct etag_cache queue_stats_etag; /* GET /api/offline/queue/stats */
    struct etag_cache sync_status_etag; /* GET /api/offline/sync/status: the last tag */
    struct eta_cache eta;               /* its eta_s: the pending counts per upstream */
};

/* Sets *api up for app (borrowed, must outlive api); nothing runs yet. */
void api_init(struct api *api, struct app *app);

/* Starts the parked-request threads, then serves app->cfg.listen with the route table.
 * Returns -1 with *e set (the threads are stopped again). */
int api_start(struct api *api, struct err *e) OQ_MUSTCHECK;

/* The port actually bound (useful with port 0). */
int api_port(struct api *api);

/* Stops serving: parked requests and event streams are answered, in-flight requests get
 * grace_ms, queued group commits are stored and answered, then the threads stop. */
void api_stop(struct api *api, int grace_ms);

/* Frees what api_init set up (after api_stop). */
void api_close(struct api *api);

#endif
