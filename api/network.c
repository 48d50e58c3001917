/* GET /api/offline/network-status and POST /api/offline/check-connectivity: what the
 * network monitor (engine/monitor.c) says about the upstreams. */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "api/endpoints.h"
#include "api/etag.h"
#include "api/reply.h"
#include "app.h"
#include "core/jsontext.h"

static char *make_network(struct request *r, struct err *e)
{
    json_t *j = monitor_status_json(&r->app->monitor);
    char *text = jsontext(j);
    json_decref(j);
    return text;
}

int api_network_status(struct request *r, struct err *e)
{
    if (strcmp(r->method, "GET") != 0) /* check-connectivity: always the fresh check */
        return reply_json_text(r, 200, make_network(r, e));
    /* in memory, cheap: the tag is a digest of what it shows */
    return etag_reply_digest(r, make_network(r, e));
}

int api_network_check(struct request *r, struct err *e)
{
    monitor_check_now(&r->app->monitor);
    return api_network_status(r, e);
}
