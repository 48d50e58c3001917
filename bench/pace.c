/* Steady enqueues for the latency and held-snapshot workloads: one POST /api/offline/queue every
 * 1/RATE s, each payload carrying the time it was sent (payload.data.sent_ns) so the sink can tell
 * enqueue-to-arrival latency. Requests start on schedule whether or not earlier ones have been
 * answered (up to MAX_IN_FLIGHT at once, each on its own keep-alive connection): one connection
 * waiting for each durable 201 could not send more than ~340/s.
 *
 *   oq-bench-pace BASE_URL RATE SECONDS
 *
 * Prints {"sent":N,"accepted":N,"late":N,"enqueue_ms":{"p50":..,"p99":..}} on stdout; "late" counts
 * requests that started more than 1 ms after their time because MAX_IN_FLIGHT were open. */
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    return size * n;
}

static long long realtime_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

enum { MAX_IN_FLIGHT = 64 };

struct slot {
    CURL *h;
    char body[512];
    long long t0;
    bool busy;
};

struct pacer {
    CURLM *multi;
    struct slot slots[MAX_IN_FLIGHT];
    double *lat;
    int done, accepted, late;
};

static void slot_start(struct pacer *p, struct slot *s, int i)
{
    s->t0 = realtime_ns();
    snprintf(s->body, sizeof(s->body),
             "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/sink\","
             "\"data\":{\"sent_ns\":%lld,\"seq\":%d,\"note\":\"steady enqueue for the "
             "latency workload\"}}}",
             s->t0, i);
    curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt(s->h, CURLOPT_PRIVATE, s);
    s->busy = true;
    curl_multi_add_handle(p->multi, s->h);
}

static void reap(struct pacer *p)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(p->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct slot *s;
        long status = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        if (m->data.result == CURLE_OK)
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(p->multi, m->easy_handle);
        p->lat[p->done++] = (realtime_ns() - s->t0) / 1e6;
        p->accepted += status == 201;
        s->busy = false;
    }
}

static struct slot *free_slot(struct pacer *p)
{
    for (int k = 0; k < MAX_IN_FLIGHT; k++)
        if (!p->slots[k].busy)
            return &p->slots[k];
    return NULL;
}

static long long mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Runs the multi handle until `until_ns` (monotonic) or, with until_ns 0, until all are answered.
 */
static void pump(struct pacer *p, long long until_ns)
{
    for (;;) {
        int running = 0;
        curl_multi_perform(p->multi, &running);
        reap(p);
        long long now = mono_ns();
        if (until_ns ? now >= until_ns : running == 0)
            return;
        int wait_ms = until_ns ? (int)((until_ns - now) / 1000000) : 100;
        curl_multi_poll(p->multi, NULL, 0, wait_ms, NULL);
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s BASE_URL RATE SECONDS\n", argv[0]);
        return 2;
    }
    double rate = atof(argv[2]);
    int total = (int)(rate * atof(argv[3]));
    if (rate <= 0 || total <= 0)
        return 2;
    char url[512];
    snprintf(url, sizeof(url), "%s/api/offline/queue", argv[1]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    struct pacer p = {.multi = curl_multi_init(), .lat = calloc((size_t)total, sizeof(double))};
    for (int k = 0; k < MAX_IN_FLIGHT; k++) {
        CURL *h = curl_easy_init();
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
        p.slots[k].h = h;
    }
    long long step = (long long)(1e9 / rate), next = mono_ns();
    for (int i = 0; i < total; i++) {
        next += step;
        pump(&p, next);
        struct slot *s;
        while ((s = free_slot(&p)) == NULL) /* all open: wait for one answer */
            pump(&p, mono_ns() + 1000000);
        p.late += mono_ns() - next > 1000000;
        slot_start(&p, s, i);
    }
    pump(&p, 0);
    qsort(p.lat, (size_t)total, sizeof(double), cmp_d);
    printf("{\"sent\":%d,\"accepted\":%d,\"late\":%d,\"enqueue_ms\":{\"p50\":%.3f,\"p99\":%.3f}}\n",
           total, p.accepted, p.late, p.lat[total / 2], p.lat[(int)((total - 1) * 0.99)]);
    for (int k = 0; k < MAX_IN_FLIGHT; k++)
        curl_easy_cleanup(p.slots[k].h);
    curl_multi_cleanup(p.multi);
    free(p.lat);
    curl_slist_free_all(hdr);
    curl_global_cleanup();
    return p.accepted == total ? 0 : 1;
}
