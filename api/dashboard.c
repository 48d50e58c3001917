/* GET / and /dashboard (the single-page dashboard) and GET /dashboard/app.js: files of
 * api/dashboard/ compiled into the binary, sent with a policy that allows no inline script. */
#include <string.h>

#include "api/endpoints.h"
#include "api/reply.h"
#include "core/embed.h"

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
