#include "core/metrics.h"

#include <stdlib.h>
#include <string.h>

const double metrics_bucket_le[METRICS_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                   1,     2.5,  5,     10,   30,  60,   300};

void metrics_init(struct metrics *m)
{
    memset(m, 0, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
}

void metrics_add_type(struct metrics *m, const char *type)
{
    if (m->n_types < METRICS_TYPES)
        m->types[m->n_types++] = type;
}

static int type_index(const struct metrics *m, const char *type)
{
    for (int i = 0; i < m->n_types; i++) {
        if (strcmp(m->types[i], type) == 0)
            return i;
    }
    return -1;
}

/* The column of upstream: 0 for NULL or one not added. */
static int upstream_column(const struct metrics *m, const char *upstream)
{
    int n = atomic_load(&((struct metrics *)m)->n_upstreams);
    for (int i = 0; upstream != NULL && i < n; i++) {
        if (strcmp(m->upstreams[i], upstream) == 0)
            return i + 1;
    }
    return 0;
}

void metrics_add_upstream(struct metrics *m, const char *upstream)
{
    pthread_mutex_lock(&m->mu);
    int n = atomic_load(&m->n_upstreams);
    if (n < METRICS_UPSTREAMS && upstream_column(m, upstream) == 0) {
        m->upstreams[n] = upstream; /* written before the count that makes it visible */
        atomic_store(&m->n_upstreams, n + 1);
    }
    pthread_mutex_unlock(&m->mu);
}

const char *metrics_upstream_label(const struct metrics *m, int u)
{
    return u == 0 ? "" : m->upstreams[u - 1];
}

void metrics_op_upstream(struct metrics *m, const char *type, const char *upstream,
                         enum op_counter counter, unsigned long long n)
{
    int i = type_index(m, type);
    if (i >= 0)
        atomic_fetch_add(&m->ops[i][upstream_column(m, upstream)][counter], n);
}

void metrics_op(struct metrics *m, const char *type, enum op_counter counter, unsigned long long n)
{
    metrics_op_upstream(m, type, NULL, counter, n);
}

const char *metrics_delete_reason(enum delete_reason why)
{
#define OQ_DELETE_NAME(e, name) name,
    static const char *const names[DELETED__COUNT] = {OQ_DELETE_REASONS(OQ_DELETE_NAME)};
#undef OQ_DELETE_NAME
    return names[why];
}

void metrics_deleted(struct metrics *m, enum delete_reason why, unsigned long long n)
{
    atomic_fetch_add(&m->deleted[why], n);
}

const char *metrics_claim_result(enum claim_result r)
{
    static const char *const names[CLAIM__COUNT] = {"taken", "empty", "error"};
    return names[r];
}

void metrics_claim(struct metrics *m, int n)
{
    atomic_fetch_add(&m->claims[n > 0 ? CLAIM_TAKEN : n == 0 ? CLAIM_EMPTY : CLAIM_ERROR], 1);
}

static void observe(struct histogram *h, double v)
{
    int b = 0;
    while (b < METRICS_BUCKETS && v > metrics_bucket_le[b])
        b++;
    atomic_fetch_add(&h->buckets[b], 1);
    atomic_fetch_add(&h->count, 1);
    /* C11 has no atomic add for a double: add by compare-and-swap. When another thread changed
     * the sum in between, the exchange fails and loads the new sum into old, so the next try
     * adds to that: no observation is lost and no lock is taken on this hot path (every
     * attempt and every completion). _weak may also fail spuriously; the loop covers that. */
    double old = atomic_load(&h->sum);
    while (!atomic_compare_exchange_weak(&h->sum, &old, old + v))
        ;
}

void metrics_exec(struct metrics *m, const char *upstream, double seconds)
{
    observe(&m->exec_seconds[upstream_column(m, upstream)], seconds);
}

void metrics_latency(struct metrics *m, double seconds)
{
    observe(&m->latency_seconds, seconds);
}

void metrics_http(struct metrics *m, const char *route, unsigned status)
{
    if (route == NULL)
        route = "unmatched";
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < m->n_routes && !(m->routes[i].route == route && m->routes[i].status == status))
        i++;
    if (i == m->n_routes && m->n_routes < METRICS_ROUTES)
        m->routes[m->n_routes++] = (struct route_count){.route = route, .status = status};
    if (i < METRICS_ROUTES)
        m->routes[i].n++;
    pthread_mutex_unlock(&m->mu);
}
