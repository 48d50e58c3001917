/* GET /healthz (the process answers) and GET /readyz (database reachable, schema current). */
#include <stdlib.h>
#include <string.h>

#include "core/embed.h"
#include "api/reply.h"
#include "api/routes.h"
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

int api_metrics(struct request *r, struct err *e)
{
    char *text = metrics_render(r->app);
    return reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", text);
}

/* The dashboard's policy: no inline script, no framing (clickjacking), no foreign sources. */
#define DASHBOARD_CSP                                                                              \
    "default-src 'self'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; "       \
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

/* Sends one file of the dashboard compiled into the binary. */
static int dashboard_file(struct request *r, const char *name, const char *type, struct err *e)
{
    for (const struct embedded_file *f = embedded_dashboard; f->name; f++) {
        if (strcmp(f->name, name) != 0)
            continue;
        reply_header(r, "Content-Security-Policy", DASHBOARD_CSP);
        reply_header(r, "X-Frame-Options", "DENY");
        reply_header(r, "X-Content-Type-Options", "nosniff");
        return reply_text(r, 200, type, oq_strndup(f->data, f->len));
    }
    return err_set(e, ERR_NOT_FOUND, "no dashboard in this build");
}

/* The single-page dashboard. Public: it asks for the key itself. */
int api_dashboard(struct request *r, struct err *e)
{
    return dashboard_file(r, "index.html", "text/html; charset=utf-8", e);
}

/* The dashboard's script, an asset so that the page's policy allows no inline script. */
int api_dashboard_script(struct request *r, struct err *e)
{
    return dashboard_file(r, "app.js", "text/javascript; charset=utf-8", e);
}
