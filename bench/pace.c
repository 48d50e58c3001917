/* Steady enqueues for the latency workload: one POST /api/offline/queue every 1/RATE s on one
 * keep-alive connection, each payload carrying the time it was sent (payload.data.sent_ns) so
 * the sink can tell enqueue-to-arrival latency.
 *
 *   oq-bench-pace BASE_URL RATE SECONDS
 *
 * Prints {"sent":N,"accepted":N,"enqueue_ms":{"p50":..,"p99":..}} on stdout. */
#include <curl/curl.h>
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
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    double *lat = calloc((size_t)total, sizeof(*lat));
    int accepted = 0;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    long long step = (long long)(1e9 / rate);
    char body[1024];
    for (int i = 0; i < total; i++) {
        long long ns = next.tv_nsec + step;
        next.tv_sec += ns / 1000000000LL;
        next.tv_nsec = ns % 1000000000LL;
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        long long t0 = realtime_ns();
        snprintf(body, sizeof(body),
                 "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/sink\","
                 "\"data\":{\"sent_ns\":%lld,\"seq\":%d,\"note\":\"steady enqueue for the "
                 "latency workload\"}}}",
                 t0, i);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        long status = 0;
        if (curl_easy_perform(h) == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        lat[i] = (realtime_ns() - t0) / 1e6;
        accepted += status == 201;
    }
    qsort(lat, (size_t)total, sizeof(*lat), cmp_d);
    printf("{\"sent\":%d,\"accepted\":%d,\"enqueue_ms\":{\"p50\":%.3f,\"p99\":%.3f}}\n", total,
           accepted, lat[total / 2], lat[(int)((total - 1) * 0.99)]);
    free(lat);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    return accepted == total ? 0 : 1;
}
