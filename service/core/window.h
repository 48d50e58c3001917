/* A sliding window of delivery attempts: the last WINDOW_S seconds in buckets of
 * WINDOW_BUCKET_S, each counting attempts and successes and keeping a log-scale histogram of
 * durations (bins WINDOW_BIN_RATIO apart, so a percentile is read to within that ratio). No I/O,
 * no lock: the caller guards it. */
#ifndef OQ_WINDOW_H
#define OQ_WINDOW_H

#include <stdbool.h>

#define WINDOW_S 300
#define WINDOW_BUCKET_S 10
#define WINDOW_BUCKETS (WINDOW_S / WINDOW_BUCKET_S)
#define WINDOW_BINS 64
#define WINDOW_BIN_RATIO 1.25 /* bin k holds durations in [1.25^k, 1.25^(k+1)) ms; bin 0 from 0 */

struct window_bucket {
    long long slot; /* now_ms / 1000 / WINDOW_BUCKET_S when last written; 0: never */
    unsigned attempts, successes;
    unsigned bins[WINDOW_BINS];
};

struct window {
    struct window_bucket b[WINDOW_BUCKETS];
};

struct window_summary {
    unsigned long attempts, successes;
    double p50_ms, p95_ms; /* < 0 when there were no attempts */
};

/* Counts one attempt of duration_ms at now_ms (a monotonic clock). */
void window_add(struct window *w, double now_ms, double duration_ms, bool is_success);

/* Sums the buckets of the last WINDOW_S seconds before now_ms. */
void window_sum(const struct window *w, double now_ms, struct window_summary *out);

/* Successes per second over the last span_s seconds before now_ms: from the start of the
 * oldest bucket that holds a success, or from since_ms when later (the first success after a
 * quiet spell, which the bucket's start would dilute); 0 without any. */
double window_rate(const struct window *w, double now_ms, int span_s, double since_ms);

#endif
