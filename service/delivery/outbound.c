/* Outbound HTTP with libcurl. One easy handle per worker, reset before each request so no
 * option of the last one leaks into the next while its connection cache (keep-alive, TLS
 * sessions) is kept. Redirects are followed here, not by libcurl, so that every hop meets the
 * endpoint's rules (target_check_url) before anything is sent to it. */
#include "delivery/outbound.h"

#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/trace.h"
#include "delivery/target.h"

/* Bytes of a request URL (base_url + endpoint, or a redirect's Location). */
#define URL_MAX 4096
/* Bytes of one request header line the service writes (Idempotency-Key, webhook-*). */
#define HEADER_LINE_MAX 512
/* The HMAC-SHA256 digest: 32 bytes, 44 in base64. */
#define MAC_LEN 32
/* Bytes read from a stream at a time to sign it. */
#define STREAM_BUF_BYTES (64 * 1024)

void outbound_init(struct outbound *o, atomic_bool *abort)
{
    o->curl = curl_easy_init();
    OQ_ASSERT(o->curl != NULL);
    o->abort = abort;
}

void outbound_close(struct outbound *o)
{
    curl_easy_cleanup(o->curl);
    o->curl = NULL;
}

void outbound_response_free(struct out_response *rs)
{
    free(rs->body);
    rs->body = NULL;
}

/* Standard Webhooks: the signed content is "<id>.<timestamp>.<body>". An HMAC-SHA256 context
 * with "<id>.<timestamp>." already in; the caller adds the body. */
static EVP_MAC_CTX *sign_begin(const unsigned char *key, size_t key_len, const char *id,
                               long timestamp)
{
    char ts[32];
    int ts_len = snprintf(ts, sizeof(ts), ".%ld.", timestamp);
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac);
    EVP_MAC_free(hmac); /* the context keeps its own reference */
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    OQ_ASSERT(ctx != NULL && EVP_MAC_init(ctx, key, key_len, params) == 1);
    EVP_MAC_update(ctx, (const unsigned char *)id, strlen(id));
    EVP_MAC_update(ctx, (const unsigned char *)ts, (size_t)ts_len);
    return ctx;
}

/* "v1,<base64 mac>" into out; frees ctx. */
static void sign_end(EVP_MAC_CTX *ctx, char *out, size_t len)
{
    unsigned char mac[MAC_LEN];
    size_t mac_len = 0;
    EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac));
    EVP_MAC_CTX_free(ctx);
    char b64[4 * ((MAC_LEN + 2) / 3) + 1];
    EVP_EncodeBlock((unsigned char *)b64, mac, (int)mac_len);
    snprintf(out, len, "v1,%s", b64);
}

void outbound_sign(const unsigned char *key, size_t key_len, const char *id, long timestamp,
                   const char *body, size_t body_len, char *out, size_t len)
{
    EVP_MAC_CTX *ctx = sign_begin(key, key_len, id, timestamp);
    if (body_len > 0)
        EVP_MAC_update(ctx, (const unsigned char *)body, body_len);
    sign_end(ctx, out, len);
}

int outbound_sign_stream(const unsigned char *key, size_t key_len, const char *id, long timestamp,
                         const struct out_stream *s, char *out, size_t len)
{
    EVP_MAC_CTX *ctx = sign_begin(key, key_len, id, timestamp);
    char *buf = oq_malloc(STREAM_BUF_BYTES);
    long long total = 0, got = 0;
    s->rewind(s->arg);
    while ((got = s->read(s->arg, buf, STREAM_BUF_BYTES)) > 0) {
        EVP_MAC_update(ctx, (const unsigned char *)buf, (size_t)got);
        total += got;
    }
    free(buf);
    sign_end(ctx, out, len);
    return got == 0 && total == s->len ? 0 : -1;
}

/* CURLOPT_WRITEFUNCTION. Keeps at most OUTBOUND_MAX_BODY bytes of the answer (a result is
 * stored in the database, an upstream must not be able to fill it), but returns the whole
 * count: a shorter return would make libcurl fail the transfer, and an answer that came is an
 * answer, only cut. */
static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct out_response *rs = arg;
    size_t add = size * n;
    size_t keep = rs->body_len + add > OUTBOUND_MAX_BODY ? OUTBOUND_MAX_BODY - rs->body_len : add;
    if (keep > 0) {
        char *grown = realloc(rs->body, rs->body_len + keep + 1);
        OQ_ASSERT(grown != NULL);
        rs->body = grown;
        memcpy(rs->body + rs->body_len, p, keep);
        rs->body_len += keep;
        rs->body[rs->body_len] = '\0';
    }
    return add;
}

/* The value of a header line (n bytes, CRLF included) after its "Name:" (prefix_len bytes),
 * without the white space around it, into out (truncated to len). */
static void header_value(const char *line, size_t n, size_t prefix_len, char *out, size_t len)
{
    const char *v = line + prefix_len;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    snprintf(out, len, "%.*s", (int)(end - v), v);
}

double outbound_retry_after(const char *v, time_t now)
{
    char *endp = NULL;
    if (*v >= '0' && *v <= '9') {
        double secs = strtod(v, &endp);
        return *endp == '\0' ? secs : -1;
    }
    time_t when = curl_getdate(v, NULL); /* an HTTP date */
    if (when <= 0)
        return -1;
    double d = difftime(when, now);
    return d > 0 ? d : 0;
}

/* The answer headers kept as text: "Name:" (its length from the compiler) and the char[]
 * field of struct out_response the value is copied to. */
#define KEPT(prefix, field)                                                                        \
    {                                                                                              \
        prefix, sizeof(prefix) - 1, offsetof(struct out_response, field),                          \
            sizeof(((struct out_response *)0)->field)                                              \
    }
static const struct kept_header {
    const char *prefix;
    size_t prefix_len;
    size_t offset, size;
} kept[] = {
    KEPT("ETag:", etag),                   /* If-Match of a conflict's resend */
    KEPT("Last-Modified:", last_modified), /* last_write_wins compares it */
    KEPT("Content-Type:", content_type),
};
#undef KEPT

#define RETRY_AFTER "Retry-After:"
#define STATUS_LINE "HTTP/"

/* Does the header line (n bytes) start with prefix (prefix_len bytes, any case) and go on? */
static bool starts_with(const char *line, size_t n, const char *prefix, size_t prefix_len)
{
    return n > prefix_len && strncasecmp(line, prefix, prefix_len) == 0;
}

/* CURLOPT_HEADERFUNCTION: called once per header line of every response, including those of a
 * 100 Continue and of each redirect, so a status line starts the record afresh. */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct out_response *rs = arg;
    size_t len = size * n;
    if (starts_with(p, len, RETRY_AFTER, sizeof(RETRY_AFTER) - 1)) {
        char value[256];
        header_value(p, len, sizeof(RETRY_AFTER) - 1, value, sizeof(value));
        rs->retry_after_s = outbound_retry_after(value, time(NULL));
        return len;
    }
    for (size_t i = 0; i < OQ_ARRAY_LEN(kept); i++) {
        if (starts_with(p, len, kept[i].prefix, kept[i].prefix_len)) {
            header_value(p, len, kept[i].prefix_len, (char *)rs + kept[i].offset, kept[i].size);
            return len;
        }
    }
    if (len > sizeof(STATUS_LINE) - 1 && strncmp(p, STATUS_LINE, sizeof(STATUS_LINE) - 1) == 0) {
        /* a new response (after a redirect or 100 Continue): forget the last one's headers */
        rs->retry_after_s = -1;
        rs->etag[0] = rs->last_modified[0] = rs->content_type[0] = '\0';
    }
    return len;
}

/* CURLOPT_XFERINFOFUNCTION, called about once a second and on every chunk: a non-zero return
 * aborts the transfer (CURLE_ABORTED_BY_CALLBACK). It lets shutdown stop a slow request at
 * once instead of waiting out the upstream's timeout. */
static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    struct outbound *o = arg;
    return o->abort != NULL && atomic_load(o->abort) ? 1 : 0;
}

/* Does the payload set header name (any case)? */
static bool has_header(const struct out_request *rq, const char *name)
{
    size_t n = strlen(name);
    for (const char *const *p = rq->headers; p && *p; p++) {
        if (strncasecmp(*p, name, n) == 0 && (*p)[n] == ':')
            return true;
    }
    return false;
}

/* The trace this request joins: the operation's, as a new span; a row stored without one is
 * in the trace whose id is its operation id (the Operation shows it as its trace_id). */
static void add_trace(struct curl_slist **h, const struct out_request *rq)
{
    struct trace parent, span;
    char line[TRACE_STATE_MAX + 16];
    trace_of_operation(rq->traceparent, rq->idempotency_key, &parent);
    trace_child(&parent, &span);
    char value[TRACE_PARENT_LEN + 1];
    trace_format(&span, value, sizeof(value));
    snprintf(line, sizeof(line), "traceparent: %s", value);
    *h = curl_slist_append(*h, line);
    if (rq->tracestate != NULL && rq->tracestate[0] != '\0' && trace_state_ok(rq->tracestate)) {
        snprintf(line, sizeof(line), "tracestate: %s", rq->tracestate);
        *h = curl_slist_append(*h, line);
    }
}

/* Header names the service sets itself on every request, whatever the payload says. */
static bool is_service_header(const char *line)
{
    size_t n = strcspn(line, ":");
    return (n == 11 && strncasecmp(line, "traceparent", n) == 0) ||
           (n == 10 && strncasecmp(line, "tracestate", n) == 0);
}

/* The request headers: the payload's (a header the upstream's configuration also sets is left
 * out: the operator's value wins; traceparent and tracestate are the service's), the
 * upstream's, the trace context, the Idempotency-Key (the operation id, so an
 * upstream can drop a repeat after a lost answer), a Content-Type for a body, the Standard
 * Webhooks signature when the upstream has a key, and an empty "Expect:" so that libcurl does
 * not wait for a 100 Continue before a large body. */
static struct curl_slist *build_headers(const struct out_request *rq, const char *sig, long ts)
{
    struct curl_slist *h = NULL;
    char line[HEADER_LINE_MAX];
    for (const char *const *p = rq->headers; p && *p; p++) {
        bool overridden = false;
        size_t name_len = strcspn(*p, ":");
        for (size_t i = 0; i < rq->u->n_headers && !overridden; i++)
            overridden = strncasecmp(rq->u->headers[i], *p, name_len) == 0 &&
                         rq->u->headers[i][name_len] == ':';
        if (!overridden && !is_service_header(*p))
            h = curl_slist_append(h, *p);
    }
    for (size_t i = 0; i < rq->u->n_headers; i++) {
        if (!is_service_header(rq->u->headers[i]))
            h = curl_slist_append(h, rq->u->headers[i]);
    }
    add_trace(&h, rq);
    snprintf(line, sizeof(line), "Idempotency-Key: %s", rq->idempotency_key);
    h = curl_slist_append(h, line);
    if ((rq->body != NULL || rq->stream != NULL) && !has_header(rq, "Content-Type")) {
        snprintf(line, sizeof(line), "Content-Type: %s",
                 rq->content_type ? rq->content_type : "application/json");
        h = curl_slist_append(h, line);
    }
    if (sig != NULL) {
        snprintf(line, sizeof(line), "webhook-id: %s", rq->idempotency_key);
        h = curl_slist_append(h, line);
        snprintf(line, sizeof(line), "webhook-timestamp: %ld", ts);
        h = curl_slist_append(h, line);
        snprintf(line, sizeof(line), "webhook-signature: %s", sig);
        h = curl_slist_append(h, line);
    }
    h = curl_slist_append(h, "Expect:");
    return h;
}

/* The Standard Webhooks signature of rq's body at ts into sig, when the upstream has a key: a
 * stream is read once for it, before anything is sent. Returns NULL (nothing to sign), sig, or
 * NULL with *failed when the stream could not be read. */
static const char *sign_request(const struct out_request *rq, long ts, char *sig, size_t len,
                                bool *failed)
{
    *failed = false;
    const struct upstream *u = rq->u;
    if (u->signing_key == NULL)
        return NULL;
    if (rq->stream == NULL) {
        outbound_sign(u->signing_key, u->signing_key_len, rq->idempotency_key, ts, rq->body,
                      rq->body ? rq->body_len : 0, sig, len);
        return sig;
    }
    *failed = outbound_sign_stream(u->signing_key, u->signing_key_len, rq->idempotency_key, ts,
                                   rq->stream, sig, len) != 0;
    return *failed ? NULL : sig;
}

/* A stream being sent: CURLOPT_READFUNCTION and CURLOPT_SEEKFUNCTION read it through this. */
struct upload_ctx {
    const struct out_stream *s;
    bool failed; /* the stream could not be read: the transfer was aborted */
};

static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
    struct upload_ctx *up = arg;
    long long got = up->s->read(up->s->arg, buf, size * n);
    if (got < 0) {
        up->failed = true;
        return CURL_READFUNC_ABORT;
    }
    return (size_t)got;
}

/* libcurl rewinds a body to send it again (a reused connection that had closed): the stream
 * starts over; any other seek it may do by reading on. */
static int on_seek(void *arg, curl_off_t offset, int origin)
{
    struct upload_ctx *up = arg;
    if (origin != SEEK_SET || offset != 0)
        return CURL_SEEKFUNC_CANTSEEK;
    up->s->rewind(up->s->arg);
    return CURL_SEEKFUNC_OK;
}

/* Errors that say the network (or the upstream's host) is unreachable, not that the request
 * was bad: deliver() asks the monitor whether the service is offline, and an offline failure
 * costs no attempt. */
static bool is_connect_failure(CURLcode rc)
{
    return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
           rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR ||
           rc == CURLE_GOT_NOTHING || rc == CURLE_SSL_CONNECT_ERROR;
}

/* Options of one hop. */
static void setup(struct outbound *o, const struct out_request *rq, const char *url,
                  const char *method, bool with_body, struct curl_slist *h, struct out_response *rs,
                  struct upload_ctx *up)
{
    CURL *c = o->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L); /* checked before: sent as written */
    /* Worker threads: no SIGALRM for DNS timeouts (libcurl's signal use is not thread-safe). */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    /* Redirects are followed by outbound_send, each hop checked first; libcurl never does. */
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    /* The upstream's own limits: a hung upstream holds a worker no longer than timeout_ms. */
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)rq->u->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)rq->u->timeout_ms);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "offlineq/" OQ_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, rs);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, rs);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, o);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L); /* else on_progress is never called */
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (with_body && rq->stream != NULL) {
        /* the body from the read callback, from its first byte, with its Content-Length */
        rq->stream->rewind(rq->stream->arg);
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, up);
        curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(c, CURLOPT_SEEKDATA, up);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->stream->len);
    } else {
        /* POSTFIELDS with an explicit size: the body may hold NUL bytes (multipart files), and
         * a method without a body still sends "Content-Length: 0". */
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, with_body && rq->body ? rq->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(with_body && rq->body ? rq->body_len : 0));
    }
}

/* The first hop: a path is below the upstream's base URL, an absolute URL (checked at enqueue
 * and delivery to be of the upstream's origin and base path) is sent as it is. */
static void start_url(const struct out_request *rq, char *url, size_t len)
{
    if (rq->endpoint[0] == '/')
        snprintf(url, len, "%s%s", rq->u->base_url, rq->endpoint);
    else
        snprintf(url, len, "%s", rq->endpoint);
}

int outbound_send(struct outbound *o, const struct out_request *rq, struct out_response *rs)
{
    memset(rs, 0, sizeof(*rs));
    rs->retry_after_s = -1;
    char url[URL_MAX];
    start_url(rq, url, sizeof(url));
    const char *method = rq->method;
    bool with_body = rq->body != NULL || rq->stream != NULL;
    long ts = (long)time(NULL);
    char sig[128];
    struct upload_ctx up = {.s = rq->stream};
    const char *signature = sign_request(rq, ts, sig, sizeof(sig), &up.failed);
    if (up.failed) {
        rs->is_body_error = true;
        snprintf(rs->error, sizeof(rs->error), "the body could not be read");
        return -1;
    }
    struct curl_slist *h = build_headers(rq, signature, ts);
    int rc = -1;
    for (int hop = 0; hop <= OUTBOUND_MAX_REDIRECTS; hop++) {
        free(rs->body);
        rs->body = NULL;
        rs->body_len = 0;
        setup(o, rq, url, method, with_body, h, rs, &up);
        CURLcode cc = curl_easy_perform(o->curl);
        if (cc != CURLE_OK) {
            long sent = 0;
            curl_easy_getinfo(o->curl, CURLINFO_REQUEST_SIZE, &sent);
            rs->status = 0;
            rs->is_body_error = up.failed;
            rs->reached = hop > 0 || sent > 0;
            rs->is_connect_error = !up.failed && is_connect_failure(cc);
            rs->is_timeout = cc == CURLE_OPERATION_TIMEDOUT;
            snprintf(rs->error, sizeof(rs->error), "%s",
                     up.failed ? "the body could not be read" : curl_easy_strerror(cc));
            break;
        }
        curl_easy_getinfo(o->curl, CURLINFO_RESPONSE_CODE, &rs->status);
        rs->reached = true;
        rc = 0;
        char *next = NULL;
        /* Not a redirect, or one without a Location: this is the answer. Past the last hop, the
         * 3xx itself is the answer (deliver() fails it: "redirect not followed"). */
        if (rs->status < 300 || rs->status >= 400 ||
            curl_easy_getinfo(o->curl, CURLINFO_REDIRECT_URL, &next) != CURLE_OK || next == NULL)
            break;
        struct err e = {0};
        if (target_check_url(rq->u, next, &e) != 0) { /* the endpoint's rules hold for redirects */
            snprintf(rs->error, sizeof(rs->error), "redirect refused: %.200s", e.message);
            break;
        }
        snprintf(url, sizeof(url), "%s", next);
        /* As browsers and libcurl do: 301/302/303 go on as a GET without the body (HEAD stays
         * HEAD); 307/308 repeat the method and the body. */
        if (rs->status == 301 || rs->status == 302 || rs->status == 303) {
            method = strcmp(method, "HEAD") == 0 ? "HEAD" : "GET";
            with_body = false;
        }
    }
    curl_slist_free_all(h);
    return rc;
}
