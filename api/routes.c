#include "api/routes.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "api/endpoints.h"
#include "api/parse.h"
#include "api/reply.h"
#include "app.h"
#include "core/validate.h"

static const struct route routes[] = {
    {"GET", "/", api_dashboard, ROLE_NONE, BODY_NONE, NULL},
    {"GET", "/dashboard", api_dashboard, ROLE_NONE, BODY_NONE, NULL},
    {"GET", "/dashboard/app.js", api_dashboard_script, ROLE_NONE, BODY_NONE, NULL},
    {"GET", "/healthz", api_health, ROLE_NONE, BODY_NONE, NULL},
    {"GET", "/readyz", api_ready, ROLE_NONE, BODY_NONE, NULL},
    {"GET", "/metrics", api_metrics, ROLE_READ, BODY_NONE, NULL},
    {"POST", "/api/offline/queue", api_queue_create, ROLE_WRITE, BODY_JSON, NULL},
    {"GET", "/api/offline/queue", api_queue_list, ROLE_READ, BODY_NONE, NULL},
    {"POST", "/api/offline/queue/batch", api_queue_batch, ROLE_WRITE, BODY_JSON, api_batch_rules},
    {"GET", "/api/offline/queue/stats", api_queue_stats, ROLE_READ, BODY_NONE, NULL},
    {"GET", "/api/offline/queue/stats/history", api_queue_stats_history, ROLE_READ, BODY_NONE,
     NULL},
    {"POST", "/api/offline/queue/clear-completed", api_queue_clear_completed, ROLE_ADMIN,
     BODY_JSON_OPT, api_clear_rules},
    {"POST", "/api/offline/queue/retry-failed", api_queue_retry_failed, ROLE_ADMIN, BODY_JSON_OPT,
     api_retry_failed_rules},
    {"POST", "/api/offline/queue/delete", api_queue_bulk_delete, ROLE_ADMIN, BODY_JSON,
     api_bulk_delete_rules},
    {"GET", "/api/offline/queue/{id}", api_queue_get, ROLE_READ, BODY_NONE, NULL},
    {"GET", "/api/offline/queue/{id}/attempts", api_queue_attempts, ROLE_READ, BODY_NONE, NULL},
    {"DELETE", "/api/offline/queue/{id}", api_queue_delete, ROLE_WRITE, BODY_NONE, NULL},
    {"POST", "/api/offline/queue/{id}/retry", api_queue_retry, ROLE_WRITE, BODY_NONE, NULL},
    {"POST", "/api/offline/queue/{id}/resolve", api_queue_resolve, ROLE_WRITE, BODY_JSON,
     api_resolve_rules},
    {"POST", "/api/offline/sync", api_sync_run, ROLE_ADMIN, BODY_NONE, NULL},
    {"GET", "/api/offline/sync/status", api_sync_status, ROLE_READ, BODY_NONE, NULL},
    {"POST", "/api/offline/sync/start-auto", api_sync_start_auto, ROLE_ADMIN, BODY_JSON_OPT,
     api_start_rules},
    {"POST", "/api/offline/sync/stop-auto", api_sync_stop_auto, ROLE_ADMIN, BODY_NONE, NULL},
    {"GET", "/api/offline/sync/conflict-strategy", api_strategy_get, ROLE_READ, BODY_NONE, NULL},
    {"POST", "/api/offline/sync/conflict-strategy", api_strategy_set, ROLE_ADMIN, BODY_JSON,
     api_strategy_rules},
    {"GET", "/api/offline/network-status", api_network_status, ROLE_READ, BODY_NONE, NULL},
    {"POST", "/api/offline/check-connectivity", api_network_check, ROLE_ADMIN, BODY_NONE, NULL},
    {"GET", "/api/offline/upstreams", api_upstreams_list, ROLE_READ, BODY_NONE, NULL},
    {"POST", "/api/offline/upstreams/{id}/pause", api_upstream_pause, ROLE_ADMIN, BODY_NONE, NULL},
    {"POST", "/api/offline/upstreams/{id}/resume", api_upstream_resume, ROLE_ADMIN, BODY_NONE,
     NULL},
    {"GET", "/api/offline/events", api_events, ROLE_READ, BODY_NONE, NULL},
    {"POST", "/api/offline/files", api_files_create, ROLE_WRITE, BODY_RAW, NULL},
    {"GET", "/api/offline/files/{id}", api_files_get, ROLE_READ, BODY_NONE, NULL},
    {NULL, NULL, NULL, ROLE_NONE, BODY_NONE, NULL},
};

const struct route *routes_table(void)
{
    return routes;
}

/* The placeholder of a route pattern for one path segment. */
static const char id_segment[] = "{id}";

/* Matches path against pattern segment by segment; {id} takes one non-empty segment. */
static bool path_matches(const char *pattern, const char *path, char *id, size_t id_len)
{
    while (*pattern && *path) {
        if (strncmp(pattern, id_segment, sizeof(id_segment) - 1) == 0) {
            size_t n = strcspn(path, "/");
            if (n == 0 || n >= id_len)
                return false;
            memcpy(id, path, n);
            id[n] = '\0';
            pattern += sizeof(id_segment) - 1;
            path += n;
            continue;
        }
        if (*pattern != *path)
            return false;
        pattern++;
        path++;
    }
    return *pattern == '\0' && *path == '\0';
}

/* HEAD is GET without the body (RFC 9110 9.3.2; libmicrohttpd drops the body itself): load
 * balancers and `curl -I` probe with it. */
static bool method_matches(const char *route_method, const char *method)
{
    return strcmp(route_method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0);
}

const struct route *routes_match(const char *method, const char *path, char *path_id, size_t id_len,
                                 bool *path_known)
{
    *path_known = false;
    for (const struct route *rt = routes; rt->method; rt++) {
        if (!path_matches(rt->pattern, path, path_id, id_len))
            continue;
        *path_known = true;
        if (method_matches(rt->method, method))
            return rt;
    }
    return NULL;
}

/* "GET, POST" for every route whose pattern matches path. */
static void allowed_methods(const char *path, char *out, size_t len)
{
    char id[64];
    size_t n = 0;
    out[0] = '\0';
    for (const struct route *rt = routes; rt->method; rt++) {
        if (path_matches(rt->pattern, path, id, sizeof(id)) && n < len)
            n += (size_t)snprintf(out + n, len - n, "%s%s%s", n ? ", " : "", rt->method,
                                  strcmp(rt->method, "GET") == 0 ? ", HEAD" : "");
    }
    if (n < len)
        snprintf(out + n, len - n, "%sOPTIONS", n ? ", " : "");
}

/* The configured origin matching the request's Origin header, or NULL. */
static const char *allowed_origin(struct request *r)
{
    const char *origin = http_header(r, "Origin");
    const struct config *c = &r->app->cfg;
    if (origin == NULL)
        return NULL;
    for (size_t i = 0; i < c->n_cors_origins; i++) {
        if (strcmp(c->cors_origins[i], "*") == 0)
            return "*";
        if (strcmp(c->cors_origins[i], origin) == 0)
            return c->cors_origins[i];
    }
    return NULL;
}

static int preflight(struct request *r, const char *path, struct err *e)
{
    char allow[128];
    allowed_methods(path, allow, sizeof(allow));
    if (r->cors_origin != NULL) {
        reply_header(r, "Access-Control-Allow-Methods", allow);
        reply_header(r, "Access-Control-Allow-Headers",
                     "Authorization, Content-Type, X-Request-Id, Prefer, If-None-Match, "
                     "Last-Event-ID, Idempotency-Key");
        reply_header(r, "Access-Control-Max-Age", "600");
    }
    reply_header(r, "Allow", allow);
    return reply_empty(r, 204);
}

/* s after prefix (compared without case), or NULL: the prefix's length comes from strlen. */
static const char *after_prefix(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    return s != NULL && strncasecmp(s, prefix, n) == 0 ? s + n : NULL;
}

/* The key of Authorization: Bearer <key> gives the role; refuses (401/403) a request whose
 * route needs more than that. Keyless mode makes every caller admin. */
static int authenticate(struct request *r, const struct route *rt, struct err *e)
{
    const struct config *c = &r->app->cfg;
    if (!c->has_api_keys) {
        r->role = ROLE_ADMIN;
        return 0;
    }
    if (rt->need == ROLE_NONE)
        return 0;
    const char *auth = http_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *key = after_prefix(auth, "Bearer ");
    r->api_key = key ? config_key_find(c, key) : NULL;
    if (r->api_key != NULL)
        r->role = r->api_key->role;
    if (r->role == ROLE_NONE) {
        reply_header(r, "WWW-Authenticate", "Bearer realm=\"offlineq\"");
        return err_set(e, ERR_UNAUTHORIZED,
                       auth ? "the API key is not valid"
                            : "an API key is required (Authorization: Bearer <key>)");
    }
    if (r->role < rt->need)
        return err_set(e, ERR_FORBIDDEN, "this API key's role may not do this");
    return 0;
}

static bool is_json_type(const char *ct)
{
    if (ct == NULL)
        return false;
    size_t n = strcspn(ct, "; \t");
    return n == strlen("application/json") && strncasecmp(ct, "application/json", n) == 0;
}

static int parse_body(struct request *r, const struct route *rt, struct err *e)
{
    if (rt->body == BODY_RAW)
        return 0;
    if (rt->body == BODY_NONE || (rt->body == BODY_JSON_OPT && r->body.len == 0))
        return 0;
    if (rt->body == BODY_JSON && r->body.len == 0)
        return err_set(e, ERR_INVALID_JSON, "a JSON object body is required");
    if (!is_json_type(http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE)))
        return err_set(e, ERR_UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json");
    r->json = api_parse_json_body(r->body.data, r->body.len, e);
    if (r->json == NULL)
        return -1;
    return rt->rules ? validate_object(r->json, rt->rules, false, e) : 0;
}

/* The Host header ("name" or "name:port", any port) names this service: a loopback name or the
 * listen host, in any case. Only keyless mode asks: a rebinding page's own name reaches
 * 127.0.0.1 too. */
static bool host_is_ours(const struct config *c, const char *host)
{
    char name[256];
    size_t n =
        host[0] == '[' ? strcspn(host, "]") + (strchr(host, ']') != NULL) : strcspn(host, ":");
    if (n >= sizeof(name))
        return false;
    for (size_t i = 0; i < n; i++)
        name[i] = (char)tolower((unsigned char)host[i]);
    name[n] = '\0';
    const char *port = host + n;
    if (*port != '\0' && (*port != ':' || strspn(port + 1, "0123456789") != strlen(port + 1)))
        return false;
    static const char *const loopback[] = {"localhost", "127.0.0.1", "[::1]"};
    for (size_t i = 0; i < OQ_ARRAY_LEN(loopback); i++)
        if (strcmp(name, loopback[i]) == 0)
            return true;
    return strcasecmp(name, c->listen_host) == 0;
}

static bool is_safe_method(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "OPTIONS") == 0;
}

/* A keyless service's caller is admin without a key, so a browser must not be its proxy: a
 * foreign Host is 421, and a state-changing request from a page of another origin (Origin, or
 * Sec-Fetch-Site for browsers that omit Origin) is 403, unless that origin is listed in
 * OFFLINEQ_CORS_ORIGINS by name ("*" does not count). With keys, nothing here applies. */
static int check_browser(struct request *r, struct err *e)
{
    const struct config *c = &r->app->cfg;
    if (c->has_api_keys)
        return 0;
    const char *host = http_header(r, MHD_HTTP_HEADER_HOST);
    if (host != NULL && !host_is_ours(c, host))
        return err_set(e, ERR_MISDIRECTED_REQUEST,
                       "this service answers only to its listen address and loopback names");
    if (is_safe_method(r->method))
        return 0;
    const char *origin = http_header(r, "Origin");
    if (origin != NULL && r->cors_origin != NULL && strcmp(r->cors_origin, "*") != 0)
        return 0; /* a listed origin */
    const char *site = http_header(r, "Sec-Fetch-Site");
    bool cross =
        site != NULL && (strcasecmp(site, "cross-site") == 0 || strcasecmp(site, "same-site") == 0);
    const char *origin_host = after_prefix(origin, "http://");
    bool own = origin == NULL ||
               (host != NULL && origin_host != NULL && strcasecmp(origin_host, host) == 0);
    if (cross || !own)
        return err_set(e, ERR_CROSS_SITE_REQUEST,
                       "a keyless service takes changes only from its own pages and the origins "
                       "in OFFLINEQ_CORS_ORIGINS");
    return 0;
}

/* What the headers alone decide: host and origin, route (404/405), key and role. */
static int admit(struct request *r, struct err *e)
{
    bool known = false;
    if (check_browser(r, e) != 0)
        return -1;
    if (strcmp(r->method, "OPTIONS") == 0)
        return 0; /* a preflight carries no key; route_request answers it */
    const struct route *rt =
        routes_match(r->method, r->url, r->path_id, sizeof(r->path_id), &known);
    if (rt == NULL && !known)
        return err_set(e, ERR_NOT_FOUND, "no such endpoint");
    if (rt == NULL) {
        char allow[128];
        allowed_methods(r->url, allow, sizeof(allow));
        reply_header(r, "Allow", allow);
        return err_set(e, ERR_METHOD_NOT_ALLOWED, "this method is not allowed here");
    }
    r->route = rt->pattern;
    r->matched = rt;
    r->body_limit = rt->body == BODY_RAW ? r->app->cfg.max_file_bytes : r->app->cfg.max_body_bytes;
    r->sink = rt->body == BODY_RAW ? &api_files_sink : NULL; /* a file is streamed in */
    return authenticate(r, rt, e);
}

void routes_admit(struct request *r)
{
    struct err e = {0};
    r->cors_origin = allowed_origin(r);
    r->body_limit = r->app->cfg.max_body_bytes;
    if (admit(r, &e) != 0 && !r->replied)
        reply_err(r, &e);
}

const char *routes_path_uuid(struct request *r, const char *what, struct err *e)
{
    if (oq_is_uuid(r->path_id))
        return r->path_id;
    err_set(e, ERR_NOT_FOUND, "no %s with that id", what);
    return NULL;
}

/* The rest, once the body is in: a preflight, or the body's checks and the handler. */
static int route_request(struct request *r, struct err *e)
{
    const char *path = r->url;
    bool known = false;
    if (strcmp(r->method, "OPTIONS") == 0) {
        routes_match("GET", path, r->path_id, sizeof(r->path_id), &known);
        if (!known)
            return err_set(e, ERR_NOT_FOUND, "no such endpoint");
        return preflight(r, path, e);
    }
    const struct route *rt = r->matched;
    OQ_ASSERT(rt != NULL); /* admitted */
    if (parse_body(r, rt, e) != 0)
        return -1;
    return rt->fn(r, e);
}

void routes_dispatch(struct request *r)
{
    struct err e = {0};
    if (route_request(r, &e) != 0 && !r->replied)
        reply_err(r, &e);
}
