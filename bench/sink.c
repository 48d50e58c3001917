/* The benchmark's upstream: answers 201 at once, counts and timestamps arrivals.
 *
 *   oq-bench-sink PORT            (PORT 0: any; the bound port is printed on stdout)
 *
 *   POST|PUT anything   201 {}         counts one request and every operation in it
 *   HEAD|GET /          200            (the service's connectivity probes)
 *   GET  /_stats        200 {"requests","operations","first_ns","last_ns","latency_ms":{...}}
 *   POST /_reset        204
 *
 * An operation is one occurrence of "sent_ns": a number the sender puts in the payload data
 * (CLOCK_REALTIME nanoseconds); the arrival minus it is the enqueue-to-arrival latency. Bodies
 * without it count as one operation each. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES (4u << 20)
#define BODY_MAX (16u << 20)

static atomic_ullong n_requests, n_ops, first_ns, last_ns;
static atomic_uint n_samples;
static long long *samples; /* latency in ns */
static volatile sig_atomic_t stop;

struct body {
    char *data;
    size_t len, cap;
};

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void reset(void)
{
    atomic_store(&n_requests, 0);
    atomic_store(&n_ops, 0);
    atomic_store(&first_ns, 0);
    atomic_store(&last_ns, 0);
    atomic_store(&n_samples, 0);
}

static void note_arrival(const struct body *b)
{
    long long t = now_ns();
    unsigned long long zero = 0;
    atomic_compare_exchange_strong(&first_ns, &zero, (unsigned long long)t);
    atomic_store(&last_ns, (unsigned long long)t);
    atomic_fetch_add(&n_requests, 1);
    unsigned long long ops = 0;
    const char *p = b->data, *end = b->data ? b->data + b->len : NULL;
    while (p != NULL && (p = memmem(p, (size_t)(end - p), "\"sent_ns\":", 10)) != NULL) {
        p += 10;
        long long sent = strtoll(p, NULL, 10);
        unsigned i = atomic_fetch_add(&n_samples, 1);
        if (i < MAX_SAMPLES)
            samples[i] = t - sent;
        ops++;
    }
    atomic_fetch_add(&n_ops, ops ? ops : 1);
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static double pct(const long long *v, unsigned n, double p)
{
    if (n == 0)
        return 0;
    unsigned i = (unsigned)(p * (n - 1) + 0.5);
    return v[i] / 1e6;
}

static char *stats_json(void)
{
    unsigned n = atomic_load(&n_samples);
    if (n > MAX_SAMPLES)
        n = MAX_SAMPLES;
    long long *v = malloc((n ? n : 1) * sizeof(*v));
    memcpy(v, samples, n * sizeof(*v));
    qsort(v, n, sizeof(*v), cmp_ll);
    char *out = NULL;
    if (asprintf(&out,
                 "{\"requests\":%llu,\"operations\":%llu,\"first_ns\":%llu,\"last_ns\":%llu,"
                 "\"latency_ms\":{\"samples\":%u,\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}}",
                 atomic_load(&n_requests), atomic_load(&n_ops), atomic_load(&first_ns),
                 atomic_load(&last_ns), n, pct(v, n, 0.5), pct(v, n, 0.99),
                 n ? v[n - 1] / 1e6 : 0.0) < 0)
        out = NULL;
    free(v);
    return out;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, char *text, bool owned)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        text ? strlen(text) : 0, text, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (text != NULL)
        MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **state)
{
    struct body *b = *state;
    if (b == NULL) {
        *state = calloc(1, sizeof(struct body));
        return MHD_YES;
    }
    if (*size > 0) {
        if (b->len + *size <= BODY_MAX) {
            if (b->len + *size + 1 > b->cap) {
                b->cap = (b->len + *size + 1) * 2;
                b->data = realloc(b->data, b->cap);
            }
            memcpy(b->data + b->len, data, *size);
            b->len += *size;
            b->data[b->len] = '\0';
        }
        *size = 0;
        return MHD_YES;
    }
    if (strcmp(url, "/_stats") == 0)
        return reply(c, MHD_HTTP_OK, stats_json(), true);
    if (strcmp(url, "/_reset") == 0) {
        reset();
        return reply(c, MHD_HTTP_NO_CONTENT, NULL, false);
    }
    if (strcmp(method, "HEAD") == 0 || strcmp(method, "GET") == 0)
        return reply(c, MHD_HTTP_OK, "{}", false);
    note_arrival(b);
    return reply(c, MHD_HTTP_CREATED, "{}", false);
}

static void on_done(void *cls, struct MHD_Connection *c, void **state,
                    enum MHD_RequestTerminationCode code)
{
    struct body *b = *state;
    if (b != NULL)
        free(b->data);
    free(b);
    *state = NULL;
}

static void on_signal(int sig)
{
    stop = 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    samples = malloc(MAX_SAMPLES * sizeof(*samples));
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)atoi(argv[1])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL, on_request,
                         NULL, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_THREAD_POOL_SIZE, 2u,
                         MHD_OPTION_CONNECTION_LIMIT, 4096u, MHD_OPTION_CONNECTION_TIMEOUT, 60u,
                         MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "sink: cannot listen on port %s\n", argv[1]);
        return 1;
    }
    printf("%u\n", MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port);
    fflush(stdout);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (!stop)
        pause();
    MHD_stop_daemon(d);
    free(samples);
    return 0;
}
