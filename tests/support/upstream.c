#include "upstream.h"

#include <ctype.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct us_resource {
    char path[256];
    char *doc;
    int version;
    long long modified;
    bool racing;
};

struct upstream_srv {
    struct us_resource res[64];
    int n_res;
    struct MHD_Daemon *d;
    int port;
    char url[64];
    pthread_mutex_t mu;
    struct us_rule *rules;
    int n_rules;
    struct us_req *reqs;
    int n_reqs, cap_reqs;
    int in_flight, max_in_flight;
    int arrivals;
    int probes;
};

struct pending {
    char *body;
    size_t len;
    double start_ms;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct hdr_buf {
    char *s;
    size_t len;
};

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *k,
                                      const char *v)
{
    struct hdr_buf *h = cls;
    size_t add = strlen(k) + strlen(v) + 3;
    h->s = realloc(h->s, h->len + add + 1);
    size_t start = h->len;
    h->len += (size_t)sprintf(h->s + h->len, "%s: %s\n", k, v);
    for (size_t i = start; h->s[i] != ':'; i++)
        h->s[i] = (char)tolower((unsigned char)h->s[i]);
    return MHD_YES;
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    char *path = cls;
    size_t n = strlen(path);
    snprintf(path + n, 1024 - n, "%s%s%s%s", strchr(path, '?') ? "&" : "?", k, v ? "=" : "",
             v ? v : "");
    return MHD_YES;
}

/* The matching rule's next status (advancing the script), or 201. */
static const struct us_rule *pick(struct upstream_srv *us, const char *path, int *status)
{
    *status = 201;
    for (int i = us->n_rules - 1; i >= 0; i--) {
        struct us_rule *r = &us->rules[i];
        if (strncmp(path, r->path, strlen(r->path)) != 0)
            continue;
        if (r->n_statuses > 0) {
            *status = r->statuses[0];
            if (r->cycle) {
                memmove(r->statuses, r->statuses + 1, (size_t)(r->n_statuses - 1) * sizeof(int));
                r->statuses[r->n_statuses - 1] = *status;
            } else if (r->n_statuses > 1) {
                memmove(r->statuses, r->statuses + 1, (size_t)(r->n_statuses - 1) * sizeof(int));
                r->n_statuses--;
            }
        }
        return r;
    }
    return NULL;
}

static struct us_resource *find_res(struct upstream_srv *us, const char *path)
{
    for (int i = 0; i < us->n_res; i++) {
        if (strcmp(us->res[i].path, path) == 0)
            return &us->res[i];
    }
    return NULL;
}

static void record_req(struct upstream_srv *us, struct us_req *rec, int status)
{
    rec->status = status;
    rec->end_ms = now_ms();
    pthread_mutex_lock(&us->mu);
    if (us->n_reqs == us->cap_reqs) {
        us->cap_reqs = us->cap_reqs ? us->cap_reqs * 2 : 256;
        us->reqs = realloc(us->reqs, (size_t)us->cap_reqs * sizeof(*us->reqs));
    }
    us->reqs[us->n_reqs++] = *rec;
    pthread_mutex_unlock(&us->mu);
}

static void http_date(long long t, char *out, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* GET answers the document; PUT stores it when If-Match matches (or is absent). */
static enum MHD_Result serve_resource(struct upstream_srv *us, struct MHD_Connection *c,
                                      const char *method, const char *url, struct us_req *rec)
{
    pthread_mutex_lock(&us->mu);
    struct us_resource *r = find_res(us, url);
    int status = 404;
    char etag[32] = "", lm[64] = "";
    char *body = strdup("{\"error\":\"not found\"}");
    const char *if_match = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-Match");
    if (strcmp(method, "GET") == 0 && r != NULL) {
        status = 200;
        free(body);
        body = strdup(r->doc);
        snprintf(etag, sizeof(etag), "\"v%d\"", r->version);
        http_date(r->modified, lm, sizeof(lm));
        if (r->racing) { /* someone else writes right after every read */
            r->version++;
            r->modified++;
        }
    } else if (strcmp(method, "PUT") == 0) {
        char current[32];
        snprintf(current, sizeof(current), "\"v%d\"", r ? r->version : 0);
        if (r != NULL && if_match != NULL && strcmp(if_match, current) != 0) {
            status = 412;
            free(body);
            body = strdup("{\"error\":\"precondition failed\"}");
        } else {
            if (r == NULL && us->n_res < 64) {
                r = &us->res[us->n_res++];
                memset(r, 0, sizeof(*r));
                snprintf(r->path, sizeof(r->path), "%s", url);
            }
            free(r->doc);
            r->doc = strdup(rec->body);
            r->version++;
            r->modified = (long long)time(NULL);
            status = 200;
            free(body);
            body = strdup(r->doc);
            snprintf(etag, sizeof(etag), "\"v%d\"", r->version);
        }
    }
    pthread_mutex_unlock(&us->mu);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (etag[0])
        MHD_add_response_header(resp, "ETag", etag);
    if (lm[0])
        MHD_add_response_header(resp, "Last-Modified", lm);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    record_req(us, rec, status);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **ctx)
{
    struct upstream_srv *us = cls;
    struct pending *p = *ctx;
    if (p == NULL) {
        p = calloc(1, sizeof(*p));
        p->start_ms = now_ms();
        *ctx = p;
        pthread_mutex_lock(&us->mu);
        us->arrivals += strcmp(method, "HEAD") != 0;
        if (++us->in_flight > us->max_in_flight)
            us->max_in_flight = us->in_flight;
        pthread_mutex_unlock(&us->mu);
        return MHD_YES;
    }
    if (*size > 0) {
        p->body = realloc(p->body, p->len + *size + 1);
        memcpy(p->body + p->len, data, *size);
        p->len += *size;
        p->body[p->len] = '\0';
        *size = 0;
        return MHD_YES;
    }
    struct us_req rec = {0};
    snprintf(rec.method, sizeof(rec.method), "%s", method);
    snprintf(rec.path, sizeof(rec.path), "%s", url);
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_arg, rec.path);
    struct hdr_buf h = {0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, collect_header, &h);
    rec.headers = h.s ? h.s : strdup("");
    rec.body = p->body ? p->body : strdup("");
    rec.body_len = p->len;
    rec.start_ms = p->start_ms;
    p->body = NULL;

    if (strncmp(url, "/res/", 5) == 0)
        return serve_resource(us, c, method, url, &rec);
    pthread_mutex_lock(&us->mu);
    int status;
    const struct us_rule *rule = pick(us, rec.path, &status);
    struct us_rule copy = rule ? *rule : (struct us_rule){0};
    pthread_mutex_unlock(&us->mu);
    if (copy.delay_ms > 0)
        usleep((useconds_t)copy.delay_ms * 1000);
    if (status == 0) { /* drop the connection without an answer */
        record_req(us, &rec, 0);
        return MHD_NO;
    }

    const char *body = copy.body[0] ? copy.body : "{\"ok\":true}";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (copy.retry_after[0])
        MHD_add_response_header(resp, "Retry-After", copy.retry_after);
    if (copy.location[0])
        MHD_add_response_header(resp, "Location", copy.location);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);

    rec.status = status;
    rec.end_ms = now_ms();
    pthread_mutex_lock(&us->mu);
    if (strcmp(method, "HEAD") == 0) { /* the service's connectivity probes: counted apart */
        us->probes++;
        pthread_mutex_unlock(&us->mu);
        free(rec.headers);
        free(rec.body);
        return ok;
    }
    if (us->n_reqs == us->cap_reqs) {
        us->cap_reqs = us->cap_reqs ? us->cap_reqs * 2 : 256;
        us->reqs = realloc(us->reqs, (size_t)us->cap_reqs * sizeof(*us->reqs));
    }
    us->reqs[us->n_reqs++] = rec;
    pthread_mutex_unlock(&us->mu);
    return ok;
}

static void on_done(void *cls, struct MHD_Connection *c, void **ctx,
                    enum MHD_RequestTerminationCode toe)
{
    struct upstream_srv *us = cls;
    struct pending *p = *ctx;
    if (p == NULL)
        return;
    pthread_mutex_lock(&us->mu);
    us->in_flight--;
    pthread_mutex_unlock(&us->mu);
    free(p->body);
    free(p);
    *ctx = NULL;
}

static void start_daemon(struct upstream_srv *us, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    us->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
                             NULL, NULL, on_request, us, MHD_OPTION_SOCK_ADDR, &a,
                             MHD_OPTION_NOTIFY_COMPLETED, on_done, us, MHD_OPTION_CONNECTION_LIMIT,
                             (unsigned)2000, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
                             MHD_OPTION_END);
    if (us->d == NULL) {
        fprintf(stderr, "upstream: cannot start\n");
        exit(1);
    }
    us->port = MHD_get_daemon_info(us->d, MHD_DAEMON_INFO_BIND_PORT)->port;
    snprintf(us->url, sizeof(us->url), "http://127.0.0.1:%d", us->port);
}

struct upstream_srv *us_start(void)
{
    struct upstream_srv *us = calloc(1, sizeof(*us));
    pthread_mutex_init(&us->mu, NULL);
    start_daemon(us, 0);
    return us;
}

void us_down(struct upstream_srv *us)
{
    MHD_stop_daemon(us->d);
    us->d = NULL;
}

void us_up(struct upstream_srv *us)
{
    if (us->d == NULL)
        start_daemon(us, us->port);
}

void us_resource(struct upstream_srv *us, const char *path, const char *json, long long modified)
{
    pthread_mutex_lock(&us->mu);
    struct us_resource *r = find_res(us, path);
    if (r == NULL) {
        r = &us->res[us->n_res++];
        memset(r, 0, sizeof(*r));
        snprintf(r->path, sizeof(r->path), "%s", path);
    }
    free(r->doc);
    r->doc = strdup(json);
    r->version++;
    r->modified = modified;
    pthread_mutex_unlock(&us->mu);
}

char *us_resource_get(struct upstream_srv *us, const char *path, int *version)
{
    pthread_mutex_lock(&us->mu);
    struct us_resource *r = find_res(us, path);
    char *doc = r ? strdup(r->doc) : NULL;
    if (version)
        *version = r ? r->version : 0;
    pthread_mutex_unlock(&us->mu);
    return doc;
}

void us_resource_racing(struct upstream_srv *us, const char *path, bool racing)
{
    pthread_mutex_lock(&us->mu);
    struct us_resource *r = find_res(us, path);
    if (r)
        r->racing = racing;
    pthread_mutex_unlock(&us->mu);
}

int us_port(const struct upstream_srv *us)
{
    return us->port;
}

const char *us_url(const struct upstream_srv *us)
{
    return us->url;
}

void us_reset(struct upstream_srv *us)
{
    pthread_mutex_lock(&us->mu);
    for (int i = 0; i < us->n_reqs; i++) {
        free(us->reqs[i].headers);
        free(us->reqs[i].body);
    }
    us->n_reqs = 0;
    us->n_rules = 0;
    us->arrivals = 0;
    us->max_in_flight = us->in_flight;
    pthread_mutex_unlock(&us->mu);
}

void us_stop(struct upstream_srv *us)
{
    if (us->d)
        MHD_stop_daemon(us->d);
    for (int i = 0; i < us->n_res; i++)
        free(us->res[i].doc);
    us_reset(us);
    free(us->reqs);
    free(us->rules);
    pthread_mutex_destroy(&us->mu);
    free(us);
}

void us_rule(struct upstream_srv *us, const struct us_rule *rule)
{
    pthread_mutex_lock(&us->mu);
    us->rules = realloc(us->rules, (size_t)(us->n_rules + 1) * sizeof(*us->rules));
    us->rules[us->n_rules++] = *rule;
    pthread_mutex_unlock(&us->mu);
}

static void script(struct upstream_srv *us, const char *path, const char *statuses, int delay_ms,
                   bool cycle)
{
    struct us_rule r = {.delay_ms = delay_ms, .cycle = cycle};
    snprintf(r.path, sizeof(r.path), "%s", path);
    for (const char *p = statuses; p && *p && r.n_statuses < 64;) {
        r.statuses[r.n_statuses++] = atoi(p);
        p = strchr(p, ',');
        p = p ? p + 1 : NULL;
    }
    us_rule(us, &r);
}

void us_script(struct upstream_srv *us, const char *path, const char *statuses, int delay_ms)
{
    script(us, path, statuses, delay_ms, false);
}

void us_script_cycle(struct upstream_srv *us, const char *path, const char *statuses, int delay_ms)
{
    script(us, path, statuses, delay_ms, true);
}

int us_count(struct upstream_srv *us, const char *prefix)
{
    pthread_mutex_lock(&us->mu);
    int n = 0;
    for (int i = 0; i < us->n_reqs; i++)
        n += prefix == NULL || strncmp(us->reqs[i].path, prefix, strlen(prefix)) == 0;
    pthread_mutex_unlock(&us->mu);
    return n;
}

int us_wait_count(struct upstream_srv *us, const char *prefix, int n, int timeout_ms)
{
    double until = now_ms() + timeout_ms;
    int got;
    while ((got = us_count(us, prefix)) < n && now_ms() < until)
        usleep(5000);
    return got;
}

struct us_req *us_requests(struct upstream_srv *us, int *n)
{
    pthread_mutex_lock(&us->mu);
    *n = us->n_reqs;
    struct us_req *copy = calloc((size_t)(us->n_reqs ? us->n_reqs : 1), sizeof(*copy));
    for (int i = 0; i < us->n_reqs; i++) {
        copy[i] = us->reqs[i];
        copy[i].headers = strdup(us->reqs[i].headers);
        copy[i].body = malloc(us->reqs[i].body_len + 1);
        memcpy(copy[i].body, us->reqs[i].body, us->reqs[i].body_len + 1);
    }
    pthread_mutex_unlock(&us->mu);
    return copy;
}

void us_free_reqs(struct us_req *reqs, int n)
{
    for (int i = 0; i < n; i++) {
        free(reqs[i].headers);
        free(reqs[i].body);
    }
    free(reqs);
}

const char *us_header(const struct us_req *r, const char *name)
{
    static __thread char value[1024];
    size_t n = strlen(name);
    for (const char *p = r->headers; p && *p;) {
        const char *eol = strchr(p, '\n');
        if (strncmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 2;
            snprintf(value, sizeof(value), "%.*s", (int)((eol ? eol : v + strlen(v)) - v), v);
            return value;
        }
        p = eol ? eol + 1 : NULL;
    }
    return NULL;
}

int us_max_in_flight(struct upstream_srv *us)
{
    pthread_mutex_lock(&us->mu);
    int m = us->max_in_flight;
    pthread_mutex_unlock(&us->mu);
    return m;
}

int us_wait_arrivals(struct upstream_srv *us, int n, int timeout_ms)
{
    double until = now_ms() + timeout_ms;
    int got = 0;
    for (;;) {
        pthread_mutex_lock(&us->mu);
        got = us->arrivals;
        pthread_mutex_unlock(&us->mu);
        if (got >= n || now_ms() > until)
            return got;
        usleep(5000);
    }
}

int us_probes(struct upstream_srv *us)
{
    pthread_mutex_lock(&us->mu);
    int n = us->probes;
    pthread_mutex_unlock(&us->mu);
    return n;
}

int us_in_flight(struct upstream_srv *us)
{
    pthread_mutex_lock(&us->mu);
    int n = us->in_flight;
    pthread_mutex_unlock(&us->mu);
    return n;
}
