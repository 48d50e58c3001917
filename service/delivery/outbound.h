/* Outbound HTTP with libcurl: one handle per worker (connections are reused), configured
 * upstreams only, no redirect out of the upstream's base URL, Standard Webhooks signing. */
#ifndef OQ_OUTBOUND_H
#define OQ_OUTBOUND_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <time.h>

#include "core/config.h"

#define OUTBOUND_MAX_BODY (1024 * 1024) /* bytes of an answer body kept (the rest is dropped) */
#define OUTBOUND_MAX_REDIRECTS 5        /* hops followed after the first request */

/* A body read as it is sent (a file): its exact length is known before (Content-Length), and
 * it can be read again from the start (for the signature, a redirect, a libcurl rewind). */
struct out_stream {
    long long len;
    /* The next up to n bytes into buf: how many, 0 at the end, -1 when the source failed. */
    long long (*read)(void *arg, char *buf, size_t n);
    void (*rewind)(void *arg);
    void *arg;
};

struct out_request {
    const struct upstream *u;
    const char *method;
    const char *endpoint;       /* path on u, or an absolute URL of u's origin */
    const char *const *headers; /* "Name: value" lines from the payload, NULL-terminated */
    const char *body;           /* may be NULL */
    size_t body_len;
    const struct out_stream *stream; /* instead of body (then NULL) */
    const char *content_type;        /* for body */
    const char *idempotency_key;     /* also the webhook-id when signing */
    const char *traceparent; /* the operation's (job.traceparent): each request is a new span */
    const char *tracestate;  /* sent as stored; "" or NULL: none */
};

struct out_response {
    long status; /* 0: no HTTP answer */
    char *body;  /* owned; at most OUTBOUND_MAX_BODY bytes kept */
    size_t body_len;
    char content_type[128];
    char etag[256];
    char last_modified[64];
    double retry_after_s;  /* < 0: none */
    bool is_connect_error; /* refused, DNS, unreachable: the network may be down */
    bool is_timeout;       /* timeout_ms or connect_timeout_ms ran out */
    bool is_body_error;    /* the stream could not be read: not the upstream's fault */
    bool reached;          /* some of the request was sent: the upstream may have acted on it */
    char error[256];       /* curl's words when status is 0 */
};

struct outbound {
    CURL *curl;
    atomic_bool *abort; /* set: transfers stop at once (shutdown) */
};

void outbound_init(struct outbound *o, atomic_bool *abort);
void outbound_close(struct outbound *o);

/* Sends rq, following at most OUTBOUND_MAX_REDIRECTS redirects that target_check_url allows. Always
 * fills *rs (free with outbound_response_free). Returns 0 when an HTTP answer came, -1 otherwise.
 */
int outbound_send(struct outbound *o, const struct out_request *rq, struct out_response *rs);
void outbound_response_free(struct out_response *rs);

/* Retry-After as seconds from now: delta-seconds or an HTTP date; -1 when unreadable. */
double outbound_retry_after(const char *value, time_t now);

/* The Standard Webhooks signature "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>" with the
 * key bytes decoded at load (upstreams_signing_key). Writes into out (>= 64 bytes). */
void outbound_sign(const unsigned char *key, size_t key_len, const char *id, long timestamp,
                   const char *body, size_t body_len, char *out, size_t len);
/* The same over a stream, read once from its start: exactly s->len bytes, else -1. */
int outbound_sign_stream(const unsigned char *key, size_t key_len, const char *id, long timestamp,
                         const struct out_stream *s, char *out, size_t len) OQ_MUSTCHECK;

#endif
