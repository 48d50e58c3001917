#include "core/metrics.h"

#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "handlers/handlers.h"

static const double bucket_le[METRICS_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                  1,     2.5,  5,     10,   30,  60,   300};
static const char *const counter_names[OPC__COUNT] = {
    "offlineq_operations_enqueued_total", "offlineq_operations_completed_total",
    "offlineq_operations_failed_total", "offlineq_operations_retried_total",
    "offlineq_operations_conflicts_total"};
static const char *const counter_help[OPC__COUNT] = {
    "Operations this instance stored.", "Operations this instance delivered.",
    "Operations that ended failed in this instance.", "Failed attempts that will be retried.",
    "Upstream conflicts (409/412) this instance met."};

void metrics_init(struct metrics *m)
{
    memset(m, 0, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
}

static int type_index(const char *type)
{
    int i = 0;
    for (const struct handler *h = handlers_table(); h->name && i < METRICS_TYPES; h++, i++) {
        if (strcmp(h->name, type) == 0)
            return i;
    }
    return -1;
}

void metrics_op(struct metrics *m, const char *type, enum op_counter counter, unsigned long long n)
{
    int i = type_index(type);
    if (i >= 0)
        atomic_fetch_add(&m->ops[i][counter], n);
}

static void observe(struct histogram *h, double v)
{
    int b = 0;
    while (b < METRICS_BUCKETS && v > bucket_le[b])
        b++;
    atomic_fetch_add(&h->buckets[b], 1);
    atomic_fetch_add(&h->count, 1);
    double old = atomic_load(&h->sum);
    while (!atomic_compare_exchange_weak(&h->sum, &old, old + v))
        ;
}

void metrics_exec(struct metrics *m, double seconds)
{
    observe(&m->exec_seconds, seconds);
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

struct out {
    char *s;
    size_t len;
    FILE *f;
};

static void histogram(FILE *f, const char *name, const char *help, const struct histogram *h)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    unsigned long long cum = 0;
    for (int b = 0; b <= METRICS_BUCKETS; b++) {
        cum += atomic_load(&h->buckets[b]);
        if (b < METRICS_BUCKETS)
            fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, bucket_le[b], cum);
        else
            fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, cum);
    }
    fprintf(f, "%s_sum %.6f\n%s_count %llu\n", name, atomic_load(&h->sum), name,
            (unsigned long long)atomic_load(&h->count));
}

static void counters(FILE *f, struct metrics *m)
{
    for (int c = 0; c < OPC__COUNT; c++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", counter_names[c], counter_help[c], counter_names[c]);
        int i = 0;
        for (const struct handler *h = handlers_table(); h->name && i < METRICS_TYPES; h++, i++)
            fprintf(f, "%s{operation_type=\"%s\"} %llu\n", counter_names[c], h->name,
                    (unsigned long long)atomic_load(&m->ops[i][c]));
    }
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

static const struct db_stmt depth_stmt = {
    "metrics_depth",
    "SELECT s.status, coalesce(sum(c.n), 0) FROM unnest(ARRAY['pending', 'in_progress', "
    "'completed', 'failed', 'conflict']) AS s(status) LEFT JOIN offlineq_op_counts c "
    "ON c.status = s.status GROUP BY s.status ORDER BY s.status"};

static void depth(FILE *f, struct app *a)
{
    struct err e = {0};
    struct db_conn *c = db_acquire(&a->db, &e);
    PGresult *r = c ? db_exec(c, &depth_stmt, 0, NULL, &e) : NULL;
    if (c != NULL)
        db_release(&a->db, c);
    fprintf(f, "# HELP offlineq_queue_operations Operations in the queue, by status.\n"
               "# TYPE offlineq_queue_operations gauge\n");
    for (int i = 0; r && i < PQntuples(r); i++)
        fprintf(f, "offlineq_queue_operations{status=\"%s\"} %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
    PQclear(r);
    fprintf(f, "# HELP offlineq_database_up Whether the database answered this scrape.\n"
               "# TYPE offlineq_database_up gauge\nofflineq_database_up %d\n", r != NULL);
}

static void gauges(FILE *f, struct app *a)
{
    int busy = atomic_load(&a->workers.busy);
    fprintf(f, "# HELP offlineq_network_online Whether the network monitor says online.\n"
               "# TYPE offlineq_network_online gauge\nofflineq_network_online %d\n",
            monitor_is_online(&a->monitor));
    fprintf(f, "# HELP offlineq_workers Worker threads by state.\n# TYPE offlineq_workers gauge\n"
               "offlineq_workers{state=\"busy\"} %d\nofflineq_workers{state=\"idle\"} %d\n",
            busy, a->workers.n - busy);
    fprintf(f, "# HELP offlineq_event_subscribers Open event streams.\n"
               "# TYPE offlineq_event_subscribers gauge\nofflineq_event_subscribers %d\n",
            events_subscribers(&a->events));
    fprintf(f, "# HELP offlineq_upstream_breaker_open Whether an upstream's circuit breaker is open.\n"
               "# TYPE offlineq_upstream_breaker_open gauge\n");
    for (size_t i = 0; i < a->cfg.n_upstreams; i++)
        fprintf(f, "offlineq_upstream_breaker_open{upstream=\"%s\"} %d\n", a->cfg.upstreams[i].name,
                policy_breaker(&a->policy, &a->cfg.upstreams[i]) != BREAKER_CLOSED);
}

char *metrics_render(struct app *a)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    counters(f, &a->metrics);
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
