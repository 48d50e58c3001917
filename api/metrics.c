/* GET /metrics: the Prometheus exposition text of this instance's counters (core/metrics.h),
 * the queue depth by status (from the database) and the state of its threads. */
#include <stdio.h>
#include <stdlib.h>

#include "api/endpoints.h"
#include "api/reply.h"
#include "app.h"
#include "store/stats.h"

static const char *const counter_names[OPC__COUNT] = {
    "offlineq_operations_enqueued_total", "offlineq_operations_completed_total",
    "offlineq_operations_failed_total", "offlineq_operations_retried_total",
    "offlineq_operations_conflicts_total"};
static const char *const counter_help[OPC__COUNT] = {
    "Operations this instance stored.", "Operations this instance delivered.",
    "Operations that ended failed in this instance.", "Failed attempts that will be retried.",
    "Upstream conflicts (409/412) this instance met."};

static void histogram(FILE *f, const char *name, const char *help, const struct histogram *h)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    unsigned long long cum = 0;
    for (int b = 0; b <= METRICS_BUCKETS; b++) {
        cum += atomic_load(&h->buckets[b]);
        if (b < METRICS_BUCKETS)
            fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, metrics_bucket_le[b], cum);
        else
            fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, cum);
    }
    fprintf(f, "%s_sum %.6f\n%s_count %llu\n", name, atomic_load(&h->sum), name,
            (unsigned long long)atomic_load(&h->count));
}

static void counters(FILE *f, struct metrics *m)
{
    for (int c = 0; c < OPC__COUNT; c++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", counter_names[c], counter_help[c],
                counter_names[c]);
        for (int i = 0; i < m->n_types; i++)
            fprintf(f, "%s{operation_type=\"%s\"} %llu\n", counter_names[c], m->types[i],
                    (unsigned long long)atomic_load(&m->ops[i][c]));
    }
}

static void deleted(FILE *f, struct metrics *m)
{
    fprintf(f, "# HELP offlineq_operations_deleted_total Operations this instance deleted, by "
               "reason.\n# TYPE offlineq_operations_deleted_total counter\n");
    for (int i = 0; i < DELETED__COUNT; i++)
        fprintf(f, "offlineq_operations_deleted_total{reason=\"%s\"} %llu\n",
                metrics_delete_reason((enum delete_reason)i),
                (unsigned long long)atomic_load(&m->deleted[i]));
}

static void http_counts(FILE *f, struct metrics *m)
{
    fprintf(f, "# HELP offlineq_http_requests_total HTTP requests served, by route and status.\n"
               "# TYPE offlineq_http_requests_total counter\n");
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n_routes; i++)
        fprintf(f, "offlineq_http_requests_total{route=\"%s\",status=\"%u\"} %llu\n",
                m->routes[i].route, m->routes[i].status, m->routes[i].n);
    pthread_mutex_unlock(&m->mu);
}

/* The depth by status; without the database only offlineq_database_up (0). */
static void depth(FILE *f, struct app *a)
{
    struct status_count counts[OP_N_STATUSES];
    struct err e = {0};
    struct db_conn *c = db_acquire(&a->db, &e);
    bool up = c != NULL && stats_by_status(c, counts, &e) == 0;
    if (c != NULL)
        db_release(&a->db, c);
    fprintf(f, "# HELP offlineq_queue_operations Operations in the queue, by status.\n"
               "# TYPE offlineq_queue_operations gauge\n");
    for (int i = 0; up && i < OP_N_STATUSES; i++)
        fprintf(f, "offlineq_queue_operations{status=\"%s\"} %lld\n",
                op_status_name(counts[i].status), counts[i].n);
    fprintf(f,
            "# HELP offlineq_database_up Whether the database answered this scrape.\n"
            "# TYPE offlineq_database_up gauge\nofflineq_database_up %d\n",
            up);
}

static void gauges(FILE *f, struct app *a)
{
    int busy = atomic_load(&a->workers.busy);
    fprintf(f,
            "# HELP offlineq_network_online Whether the network monitor says online.\n"
            "# TYPE offlineq_network_online gauge\nofflineq_network_online %d\n",
            monitor_is_online(&a->monitor));
    fprintf(f,
            "# HELP offlineq_workers Worker threads by state.\n# TYPE offlineq_workers gauge\n"
            "offlineq_workers{state=\"busy\"} %d\nofflineq_workers{state=\"idle\"} %d\n",
            busy, a->workers.n - busy);
    fprintf(f,
            "# HELP offlineq_event_subscribers Open event streams.\n"
            "# TYPE offlineq_event_subscribers gauge\nofflineq_event_subscribers %d\n",
            events_subscribers(&a->events));
    fprintf(f, "# HELP offlineq_upstream_breaker_open Whether an upstream's circuit breaker is "
               "open.\n# TYPE offlineq_upstream_breaker_open gauge\n");
    for (size_t i = 0; i < a->cfg.n_upstreams; i++)
        fprintf(f, "offlineq_upstream_breaker_open{upstream=\"%s\"} %d\n", a->cfg.upstreams[i].name,
                policy_breaker(&a->policy, &a->cfg.upstreams[i]) != BREAKER_CLOSED);
}

/* The exposition text (new). */
static char *render(struct app *a)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    counters(f, &a->metrics);
    deleted(f, &a->metrics);
    histogram(f, "offlineq_execution_duration_seconds", "Time a handler took, per attempt.",
              &a->metrics.exec_seconds);
    histogram(f, "offlineq_enqueue_to_completion_seconds", "From enqueue to completed.",
              &a->metrics.latency_seconds);
    http_counts(f, &a->metrics);
    depth(f, a);
    gauges(f, a);
    fclose(f);
    return text;
}

int api_metrics(struct request *r, struct err *e)
{
    return reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", render(r->app));
}
