#include "core/window.h"

#include <math.h>
#include <string.h>

static long long slot_of(double now_ms)
{
    return (long long)(now_ms / 1000.0 / WINDOW_BUCKET_S) + 1; /* 0 stays "never written" */
}

static int bin_of(double duration_ms)
{
    if (!(duration_ms >= WINDOW_BIN_RATIO)) /* NaN and negatives too */
        return 0;
    int k = (int)floor(log(duration_ms) / log(WINDOW_BIN_RATIO));
    return k >= WINDOW_BINS ? WINDOW_BINS - 1 : k;
}

static double bin_low(int k)
{
    return k == 0 ? 0 : pow(WINDOW_BIN_RATIO, k);
}

void window_add(struct window *w, double now_ms, double duration_ms, bool is_success)
{
    long long slot = slot_of(now_ms);
    struct window_bucket *b = &w->b[slot % WINDOW_BUCKETS];
    if (b->slot != slot) { /* a bucket of an earlier round: start it again */
        memset(b, 0, sizeof(*b));
        b->slot = slot;
    }
    b->attempts++;
    b->successes += is_success;
    b->bins[bin_of(duration_ms)]++;
}

/* The duration below which a fraction q of the counted attempts lie, interpolated linearly
 * inside its bin. */
static double percentile(const unsigned long *bins, unsigned long total, double q)
{
    double rank = q * (double)total;
    unsigned long seen = 0;
    for (int k = 0; k < WINDOW_BINS; k++) {
        if (bins[k] == 0)
            continue;
        if ((double)(seen + bins[k]) >= rank) {
            double within = (rank - (double)seen) / (double)bins[k];
            double lo = bin_low(k), hi = pow(WINDOW_BIN_RATIO, k + 1);
            return lo + (hi - lo) * within;
        }
        seen += bins[k];
    }
    return bin_low(WINDOW_BINS - 1);
}

void window_sum(const struct window *w, double now_ms, struct window_summary *out)
{
    unsigned long bins[WINDOW_BINS] = {0};
    long long now = slot_of(now_ms);
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < WINDOW_BUCKETS; i++) {
        const struct window_bucket *b = &w->b[i];
        if (b->slot == 0 || b->slot <= now - WINDOW_BUCKETS || b->slot > now)
            continue;
        out->attempts += b->attempts;
        out->successes += b->successes;
        for (int k = 0; k < WINDOW_BINS; k++)
            bins[k] += b->bins[k];
    }
    out->p50_ms = out->attempts ? percentile(bins, out->attempts, 0.50) : -1;
    out->p95_ms = out->attempts ? percentile(bins, out->attempts, 0.95) : -1;
}

double window_rate(const struct window *w, double now_ms, int span_s, double since_ms)
{
    long long now = slot_of(now_ms), buckets = span_s / WINDOW_BUCKET_S, oldest = 0;
    unsigned long ok = 0;
    for (int i = 0; i < WINDOW_BUCKETS; i++) {
        const struct window_bucket *b = &w->b[i];
        if (b->slot == 0 || b->slot <= now - buckets || b->slot > now || b->successes == 0)
            continue;
        ok += b->successes;
        oldest = oldest == 0 || b->slot < oldest ? b->slot : oldest;
    }
    if (ok == 0)
        return 0;
    double from_ms = (double)(oldest - 1) * WINDOW_BUCKET_S * 1000.0; /* slot_of counts from 1 */
    double covered_s = (now_ms - (since_ms > from_ms ? since_ms : from_ms)) / 1000.0;
    return (double)ok / (covered_s > 1 ? covered_s : 1);
}
