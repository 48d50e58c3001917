#include "api/api.h"

#include "api/routes.h"
#include "app.h"

void api_init(struct api *api, struct app *app)
{
    *api = (struct api){.app = app};
    atomic_init(&api->inflight, 0);
    waiters_init(&api->waiters, &app->db);
    coalesce_init(&api->coalesce, app);
    etag_init(&api->queue_stats_etag);
    etag_init(&api->sync_status_etag);
    eta_cache_init(&api->eta);
}

int api_start(struct api *api, struct err *e)
{
    waiters_start(&api->waiters);
    coalesce_start(&api->coalesce);
    if (http_start(api, routes_dispatch, routes_admit, e) != 0) {
        coalesce_stop(&api->coalesce);
        waiters_stop(&api->waiters);
        return -1;
    }
    return 0;
}

int api_port(struct api *api)
{
    return http_port(api);
}

/* Parked requests and event streams end before the server stops. */
static void release_parked(struct api *api)
{
    waiters_release_all(&api->waiters);
    sync_release_waiters(&api->app->sync);
    events_release_all(&api->app->events);
}

void api_stop(struct api *api, int grace_ms)
{
    http_stop(api, grace_ms, release_parked); /* requests in flight too */
    coalesce_stop(&api->coalesce);
    waiters_stop(&api->waiters);
}

void api_close(struct api *api)
{
    etag_close(&api->sync_status_etag);
    eta_cache_close(&api->eta);
    etag_close(&api->queue_stats_etag);
    coalesce_close(&api->coalesce);
    waiters_close(&api->waiters);
}
