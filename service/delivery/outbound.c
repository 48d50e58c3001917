#include "delivery/outbound.h"

#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "delivery/target.h"

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

void outbound_sign(const unsigned char *key, size_t key_len, const char *id, long timestamp,
                   const char *body, size_t body_len, char *out, size_t len)
{
    char ts[32];
    int ts_len = snprintf(ts, sizeof(ts), ".%ld.", timestamp);
    unsigned char mac[32];
    size_t mac_len = 0;
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(hmac);
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    OQ_ASSERT(EVP_MAC_init(ctx, key, key_len, params) == 1);
    EVP_MAC_update(ctx, (const unsigned char *)id, strlen(id));
    EVP_MAC_update(ctx, (const unsigned char *)ts, (size_t)ts_len);
    if (body_len > 0)
        EVP_MAC_update(ctx, (const unsigned char *)body, body_len);
    EVP_MAC_final(ctx, mac, &mac_len, sizeof(mac));
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(hmac);
    char b64[64];
    EVP_EncodeBlock((unsigned char *)b64, mac, (int)mac_len);
    snprintf(out, len, "v1,%s", b64);
}

struct sink {
    struct out_response *rs;
};

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

static void header_value(const char *line, size_t n, size_t name_len, char *out, size_t len)
{
    const char *v = line + name_len + 1;
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

static void parse_retry_after(const char *v, struct out_response *rs)
{
    rs->retry_after_s = outbound_retry_after(v, time(NULL));
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct out_response *rs = arg;
    size_t len = size * n;
    char value[256];
    if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
        header_value(p, len, 11, value, sizeof(value));
        parse_retry_after(value, rs);
    } else if (len > 5 && strncasecmp(p, "ETag:", 5) == 0) {
        header_value(p, len, 4, rs->etag, sizeof(rs->etag));
    } else if (len > 14 && strncasecmp(p, "Last-Modified:", 14) == 0) {
        header_value(p, len, 13, rs->last_modified, sizeof(rs->last_modified));
    } else if (len > 13 && strncasecmp(p, "Content-Type:", 13) == 0) {
        header_value(p, len, 12, rs->content_type, sizeof(rs->content_type));
    } else if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* a new response (after a redirect or 100 Continue): forget the last one's headers */
        rs->retry_after_s = -1;
        rs->etag[0] = rs->last_modified[0] = rs->content_type[0] = '\0';
    }
    return len;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    struct outbound *o = arg;
    return o->abort != NULL && atomic_load(o->abort) ? 1 : 0;
}

static bool has_header(const struct out_request *rq, const char *name)
{
    size_t n = strlen(name);
    for (const char *const *p = rq->headers; p && *p; p++) {
        if (strncasecmp(*p, name, n) == 0 && (*p)[n] == ':')
            return true;
    }
    return false;
}

static struct curl_slist *build_headers(const struct out_request *rq, const char *body,
                                        size_t body_len)
{
    struct curl_slist *h = NULL;
    char line[512];
    for (const char *const *p = rq->headers; p && *p; p++) {
        bool overridden = false;
        size_t name_len = strcspn(*p, ":");
        for (size_t i = 0; i < rq->u->n_headers && !overridden; i++)
            overridden = strncasecmp(rq->u->headers[i], *p, name_len) == 0 &&
                         rq->u->headers[i][name_len] == ':';
        if (!overridden)
            h = curl_slist_append(h, *p);
    }
    for (size_t i = 0; i < rq->u->n_headers; i++)
        h = curl_slist_append(h, rq->u->headers[i]);
    snprintf(line, sizeof(line), "Idempotency-Key: %s", rq->idempotency_key);
    h = curl_slist_append(h, line);
    if (body != NULL && !has_header(rq, "Content-Type")) {
        snprintf(line, sizeof(line), "Content-Type: %s", rq->content_type ? rq->content_type : "application/json");
        h = curl_slist_append(h, line);
    }
    if (rq->u->signing_key != NULL) {
        long ts = (long)time(NULL);
        char sig[128];
        outbound_sign(rq->u->signing_key, rq->u->signing_key_len, rq->idempotency_key, ts, body,
                      body ? body_len : 0, sig, sizeof(sig));
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

static bool is_connect_failure(CURLcode rc)
{
    return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
           rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR ||
           rc == CURLE_GOT_NOTHING || rc == CURLE_SSL_CONNECT_ERROR;
}

static void setup(struct outbound *o, const struct out_request *rq, const char *url,
                  const char *method, bool with_body, struct curl_slist *h, struct out_response *rs)
{
    CURL *c = o->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L); /* checked before: sent as written */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
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
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, with_body && rq->body ? rq->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(with_body && rq->body ? rq->body_len : 0));
    }
}

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
    char url[4096];
    start_url(rq, url, sizeof(url));
    const char *method = rq->method;
    bool with_body = rq->body != NULL;
    struct curl_slist *h = build_headers(rq, rq->body, rq->body_len);
    int rc = -1;
    for (int hop = 0; hop <= 5; hop++) {
        free(rs->body);
        rs->body = NULL;
        rs->body_len = 0;
        setup(o, rq, url, method, with_body, h, rs);
        CURLcode cc = curl_easy_perform(o->curl);
        if (cc != CURLE_OK) {
            rs->status = 0;
            rs->is_connect_error = is_connect_failure(cc);
            snprintf(rs->error, sizeof(rs->error), "%s", curl_easy_strerror(cc));
            break;
        }
        curl_easy_getinfo(o->curl, CURLINFO_RESPONSE_CODE, &rs->status);
        rc = 0;
        char *next = NULL;
        if (rs->status < 300 || rs->status >= 400 ||
            curl_easy_getinfo(o->curl, CURLINFO_REDIRECT_URL, &next) != CURLE_OK || next == NULL)
            break;
        struct err e = {0};
        if (target_check_url(rq->u, next, &e) != 0) { /* the endpoint's rules hold for redirects */
            snprintf(rs->error, sizeof(rs->error), "redirect refused: %.200s", e.message);
            break;
        }
        snprintf(url, sizeof(url), "%s", next);
        if (rs->status == 301 || rs->status == 302 || rs->status == 303) {
            method = strcmp(method, "HEAD") == 0 ? "HEAD" : "GET";
            with_body = false;
        }
    }
    curl_slist_free_all(h);
    return rc;
}
