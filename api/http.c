#include "api/http.h"

#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/api.h"
#include "api/reply.h"
#include "app.h"
#include "core/log.h"

const char *http_header(struct request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_query(struct request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

static bool is_request_id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("-_.:", c) != NULL;
}

/* Echoes a client's X-Request-Id when it is short and plain; otherwise keeps the one made. */
static void set_request_id(struct request *r)
{
    const char *given = http_header(r, "X-Request-Id");
    size_t n = given ? strlen(given) : 0;
    bool ok = n > 0 && n < sizeof(r->request_id);
    for (size_t i = 0; ok && i < n; i++)
        ok = is_request_id_char(given[i]);
    if (ok)
        memcpy(r->request_id, given, n + 1);
}

/* The W3C trace context of the request: a valid traceparent joins the client's trace (and its
 * tracestate comes with it, when fit to send again); anything else starts a new trace, as the
 * spec asks (an invalid header is ignored, never refused). */
static void set_trace(struct request *r)
{
    struct trace given;
    if (!trace_parse(http_header(r, "traceparent"), &given))
        return; /* the new one of request_new */
    r->trace = given;
    const char *state = http_header(r, "tracestate");
    r->tracestate = state != NULL && state[0] != '\0' && trace_state_ok(state) ? state : NULL;
}

static struct request *request_new(struct api *api, const char *uri)
{
    struct request *r = oq_calloc(1, sizeof(*r));
    r->api = api;
    r->app = api->app;
    r->start_ms = oq_now_ms();
    r->uri_len = strlen(uri);
    oq_uuid(r->request_id); /* until the headers bring one (set_request_id) */
    trace_new(&r->trace);   /* and a trace (set_trace) */
    snprintf(r->uri_head, sizeof(r->uri_head), "%s", uri);
    return r;
}

/* The bytes of the header block as sent: "Name: value\r\n" per header. */
static enum MHD_Result add_header_size(void *cls, enum MHD_ValueKind kind, const char *key,
                                       size_t key_size, const char *value, size_t value_size)
{
    *(size_t *)cls += key_size + value_size + 4;
    return MHD_YES;
}

static size_t header_bytes(struct MHD_Connection *conn)
{
    size_t n = 0;
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, add_header_size, &n);
    return n;
}

/* The arguments libmicrohttpd 0.9.75 splits the query into: one per '&', and one more for a
 * last piece that is not empty ("a&b" 2, "a&&b" 3, "a&" 1, "" 0). */
static size_t query_args(const char *query)
{
    size_t n = 0, len = strlen(query);
    for (const char *p = query; (p = strchr(p, '&')) != NULL; p++)
        n++;
    return n + (len > 0 && query[len - 1] != '&');
}

/* libmicrohttpd's URI log callback: runs on the raw request line, before the query string is
 * split into arguments (each takes pool memory, so a long query of tiny arguments would exhaust
 * the connection's memory and the connection would be dropped unanswered). The request state
 * starts here; an over-long URI, or one of too many arguments, is marked for a 414 and its
 * query is cut, so that nothing of it is parsed: uri points into libmicrohttpd's own read
 * buffer, from which it splits the arguments right after this call (0.9.7x; the 414 tests with
 * a 20 KB query and with 8,000 empty arguments in 8 KB guard this). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct api *api = cls;
    struct request *r = request_new(api, uri);
    atomic_fetch_add(&api->inflight, 1);
    char *query = strchr(uri, '?');
    r->uri_too_long = r->uri_len > HTTP_MAX_URI_BYTES;
    r->too_many_args = query != NULL && query_args(query + 1) > HTTP_MAX_QUERY_ARGS;
    if ((r->uri_too_long || r->too_many_args) && query != NULL)
        query[1] = '\0';
    return r;
}

static void request_free(struct request *r)
{
    if (r->sink != NULL)
        r->sink->abort(r); /* a body cut off, or refused: nothing of it is kept */
    for (int i = 0; i < r->n_extra; i++)
        free(r->extra[i].value);
    json_decref(r->json);
    free(r->body.data);
    free(r->deferred_body);
    free(r);
}

static void reply_too_large(struct request *r)
{
    struct err e;
    err_set(&e, ERR_PAYLOAD_TOO_LARGE, "request body is larger than %zu bytes", r->body_limit);
    reply_err(r, &e);
}

/* The declared Content-Length, or 0 when there is none (chunked, or no body). */
static unsigned long long declared_length(struct request *r)
{
    const char *cl = http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return cl != NULL ? strtoull(cl, NULL, 10) : 0;
}

/* How much past the limit is read and dropped before the 413 (HTTP_DRAIN_MAX_BYTES). */
static size_t drain_bytes(const struct request *r)
{
    return r->body_limit < HTTP_DRAIN_MAX_BYTES ? r->body_limit : HTTP_DRAIN_MAX_BYTES;
}

/* An over-limit body is refused from its headers when the client waits for "100 Continue"
 * (it sends nothing after a final answer) or when it is too large to read and drop. */
static bool refuse_before_body(struct request *r, unsigned long long declared)
{
    const char *expect = http_header(r, MHD_HTTP_HEADER_EXPECT);
    return (expect != NULL && strcasecmp(expect, "100-continue") == 0) ||
           declared - r->body_limit > drain_bytes(r);
}

/* A body follows the headers (declared by length or chunked). */
static bool has_body(struct request *r)
{
    const char *cl = http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return (cl != NULL && strtoull(cl, NULL, 10) > 0) ||
           http_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
}

/* The first call, with the complete headers and before any byte of the body: the limits of the
 * request line and headers, then the route's own checks (api->admit), then the body limit. A
 * reply from here is sent without reading the body, and the connection closes after it. */
static void on_headers(struct request *r)
{
    struct err e;
    r->close_after = true;
    if (r->uri_too_long) {
        err_set(&e, ERR_URI_TOO_LONG, "the request target is longer than %d bytes",
                HTTP_MAX_URI_BYTES);
        reply_err(r, &e);
    } else if (r->too_many_args) {
        err_set(&e, ERR_URI_TOO_LONG, "the query has more than %d arguments", HTTP_MAX_QUERY_ARGS);
        reply_err(r, &e);
    } else if (header_bytes(r->conn) > HTTP_MAX_HEADER_BYTES) {
        err_set(&e, ERR_HEADERS_TOO_LARGE, "the request headers are larger than %d bytes",
                HTTP_MAX_HEADER_BYTES);
        reply_err(r, &e);
    } else {
        r->close_after = has_body(r);
        r->api->admit(r);
        unsigned long long declared = declared_length(r);
        if (!r->replied && declared > r->body_limit) {
            r->too_large = true;
            if (refuse_before_body(r, declared))
                reply_too_large(r);
        }
    }
    r->close_after = false; /* later replies come after the whole body was read */
}

/* A piece of the body: collected, or handed to the route's sink as it comes (a file is never
 * held whole). Past the limit, or once the sink failed, the rest is read and dropped; false
 * once more than drain_bytes() past the limit were dropped (the connection is then closed). */
static bool append_body(struct request *r, const char *data, size_t n)
{
    if (r->too_large || r->body_bytes + n > r->body_limit) {
        r->too_large = true;
        if (r->sink != NULL)
            r->sink->abort(r);
        r->dropped_bytes += n;
        return r->dropped_bytes <= drain_bytes(r) + (r->body_limit - r->body_bytes);
    }
    r->body_bytes += n;
    if (r->sink == NULL) {
        oq_buf_add(&r->body, data, n);
    } else if (!r->sink_failed && r->sink->write(r, data, n, &r->sink_err) != 0) {
        r->sink_failed = true;
        r->sink->abort(r);
    }
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct request *r = *con_cls;
    OQ_ASSERT(r != NULL); /* made by on_uri */
    if (r->conn == NULL) {
        r->conn = conn;
        r->url = url;
        r->method = method;
        set_request_id(r);
        set_trace(r);
        on_headers(r);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        /* after an early refusal (libmicrohttpd still reads the body of methods other than
         * POST and PUT) nothing is kept */
        bool keep_reading = r->replied || append_body(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return keep_reading ? MHD_YES : MHD_NO;
    }
    if (r->suspended) { /* resumed: now the reply */
        r->suspended = false;
        r->on_resume(r);
        OQ_ASSERT(r->replied);
        return MHD_YES;
    }
    if (r->replied)
        return MHD_YES;
    if (r->too_large)
        reply_too_large(r);
    else if (r->sink_failed)
        reply_err(r, &r->sink_err);
    else
        r->api->dispatch(r);
    OQ_ASSERT(r->replied || r->suspended);
    return MHD_YES;
}

/* The access line. Client text is escaped (log_text); a request that libmicrohttpd refused
 * itself (a request line or header block beyond the connection's memory) never reached
 * on_request: it is logged with what the URI log callback saw and status 0. */
static void log_access(struct request *r, enum MHD_RequestTerminationCode toe)
{
    log_json(LOG_INFO, "request",
             json_pack("{s:s, s:o, s:o, s:i, s:f, s:b, s:s}", "request_id", r->request_id, "method",
                       log_text(r->method), "path", log_text(r->url ? r->url : r->uri_head),
                       "status", (int)r->status, "duration_ms", oq_now_ms() - r->start_ms,
                       "completed", toe == MHD_REQUEST_TERMINATED_COMPLETED_OK, "trace_id",
                       r->trace.trace_id));
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct api *api = cls;
    struct request *r = *con_cls;
    if (r == NULL)
        return;
    if (log_enabled(LOG_INFO))
        log_access(r, toe);
    metrics_http(&api->app->metrics, r->route, r->status);
    request_free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&api->inflight, 1);
}

/* libmicrohttpd's own messages (MHD_USE_ERROR_LOG: errors only, such as a failed bind or a
 * connection refused at the limit) as JSON lines, at warn. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_json(LOG_WARN, "http server", json_pack("{s:o}", "detail", log_text(msg)));
}

static int resolve_listen(const struct config *c, struct sockaddr_storage *ss, struct err *e)
{
    char host[64], port[16];
    snprintf(host, sizeof(host), "%s", c->listen_host);
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    snprintf(port, sizeof(port), "%d", c->listen_port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
        return err_set(e, ERR_INTERNAL, "OFFLINEQ_LISTEN: cannot resolve \"%s\"", c->listen);
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

int http_start(struct api *api, http_dispatch_fn dispatch, http_admit_fn admit, struct err *e)
{
    const struct config *cfg = &api->app->cfg;
    struct sockaddr_storage ss;
    if (resolve_listen(cfg, &ss, e) != 0)
        return -1;
    api->dispatch = dispatch;
    api->admit = admit;
    /* poll(), not epoll: libmicrohttpd 0.9.75's MHD_quiesce_daemon() races its own epoll
     * workers for the listen socket's removal from their epoll sets and aborts the process
     * ("Failed to remove listen FD from epoll set", an open defect: both sides MHD_PANIC on
     * ENOENT). With poll() a quiesce only signals each worker. Seen as a SIGABRT at SIGTERM
     * right after a burst of requests (e2e_test_service). Each pool thread polls only its own
     * connections, so poll's cost per wake-up stays small. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* the logger first: libmicrohttpd reads the options in order, and what it reports while
     * reading the later ones (the pool's threads, the bind) would otherwise go to stderr */
    api->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, api, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)cfg->http_threads, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->conn_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_connections_per_ip,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, api, MHD_OPTION_URI_LOG_CALLBACK, on_uri, api,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY_BYTES, MHD_OPTION_END);
    if (api->daemon == NULL)
        return err_set(e, ERR_INTERNAL, "cannot listen on %s (in use or not permitted)",
                       cfg->listen);
    return 0;
}

void http_suspend(struct request *r, void (*on_resume)(struct request *r))
{
    r->suspended = true;
    r->on_resume = on_resume;
    MHD_suspend_connection(r->conn);
}

void http_resume(struct request *r)
{
    MHD_resume_connection(r->conn);
}

int http_port(struct api *api)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(api->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? (int)info->port : api->app->cfg.listen_port;
}

void http_stop(struct api *api, int grace_ms, void (*release_parked)(struct api *api))
{
    if (api->daemon == NULL)
        return;
    MHD_socket fd = MHD_quiesce_daemon(api->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    double deadline = oq_now_ms() + grace_ms;
    if (release_parked != NULL)
        release_parked(api); /* parked requests answer now: they must not outlive the server */
    while (atomic_load(&api->inflight) > 0 && oq_now_ms() < deadline)
        usleep(10 * 1000);
    MHD_stop_daemon(api->daemon);
    api->daemon = NULL;
}
