/* GET /healthz (the process answers) and GET /readyz (database reachable, schema current). */
#include "api/endpoints.h"
#include "api/reply.h"
#include "app.h"

int api_health(struct request *r, struct err *e)
{
    return reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

int api_ready(struct request *r, struct err *e)
{
    if (!app_is_ready(r->app, e))
        return -1; /* 503 database_unavailable or not_ready */
    return reply_json(r, 200, json_pack("{s:s}", "status", "ready"));
}
