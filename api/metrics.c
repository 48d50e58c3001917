/* GET /metrics: the Prometheus exposition text of this instance's counters (core/metrics.h),
 * the queue depth by status (from the database) and the state of its threads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Which counters carry the upstream label (the outcomes of attempts); the others (enqueued)
 * are one series per type. */
static const bool counter_by_upstream[OPC__COUNT] = {
    [OPC_COMPLETED] = true, [OPC_FAILED] = true, [OPC_RETRIED] = true, [OPC_CONFLICTS] = true};

/* One histogram's series; labels: "" or `name="value",` pairs put before le. */
static void histogram_series(FILE *f, const char *name, const char *labels,
                             const struct histogram *h)
{
    unsigned long long cum = 0;
    for (int b = 0; b <= METRICS_BUCKETS; b++) {
        cum += atomic_load(&h->buckets[b]);
        if (b < METRICS_BUCKETS)
            fprintf(f, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, metrics_bucket_le[b], cum);
        else
            fprintf(f, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, cum);
    }
    char own[192] = ""; /* the labels without the trailing comma, in braces */
    size_t n = strlen(labels);
    if (n > 0)
        snprintf(own, sizeof(own), "{%.*s}", (int)n - 1, labels);
    fprintf(f, "%s_sum%s %.6f\n%s_count%s %llu\n", name, own, atomic_load(&h->sum), name, own,
            (unsigned long long)atomic_load(&h->count));
}

static void histogram(FILE *f, const char *name, const char *help, const struct histogram *h)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    histogram_series(f, name, "", h);
}

/* The execution histogram, one series per upstream column (upstream="": no upstream). */
static void exec_histogram(FILE *f, struct metrics *m)
{
    const char *name = "offlineq_execution_duration_seconds";
    fprintf(f, "# HELP %s Time a handler took, per attempt, by upstream.\n# TYPE %s histogram\n",
            name, name);
    for (int u = 0; u <= m->n_upstreams; u++) {
        char labels[160];
        snprintf(labels, sizeof(labels), "upstream=\"%s\",", metrics_upstream_label(m, u));
        histogram_series(f, name, labels, &m->exec_seconds[u]);
    }
}

static void counters(FILE *f, struct metrics *m)
{
    for (int c = 0; c < OPC__COUNT; c++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", counter_names[c], counter_help[c],
                counter_names[c]);
        for (int i = 0; i < m->n_types; i++) {
            unsigned long long sum = 0;
            for (int u = 0; u <= m->n_upstreams; u++) {
                unsigned long long n = atomic_load(&m->ops[i][u][c]);
                sum += n;
                if (counter_by_upstream[c])
                    fprintf(f, "%s{operation_type=\"%s\",upstream=\"%s\"} %llu\n", counter_names[c],
                            m->types[i], metrics_upstream_label(m, u), n);
            }
            if (!counter_by_upstream[c])
                fprintf(f, "%s{operation_type=\"%s\"} %llu\n", counter_names[c], m->types[i], sum);
        }
    }
}

/* One counter with one label: n series, label values from labels[], counts from v[]. */
struct labelled {
    const char *name, *help, *label;
    const char *const *labels;
    const atomic_ullong *v;
    int n;
};

static void labelled_counter(FILE *f, const struct labelled *c)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", c->name, c->help, c->name);
    for (int i = 0; i < c->n; i++)
        fprintf(f, "%s{%s=\"%s\"} %llu\n", c->name, c->label, c->labels[i],
                (unsigned long long)atomic_load(&c->v[i]));
}

static void deleted_and_claims(FILE *f, struct metrics *m)
{
    const char *reasons[DELETED__COUNT], *results[CLAIM__COUNT];
    for (int i = 0; i < DELETED__COUNT; i++)
        reasons[i] = metrics_delete_reason((enum delete_reason)i);
    for (int i = 0; i < CLAIM__COUNT; i++)
        results[i] = metrics_claim_result((enum claim_result)i);
    labelled_counter(f, &(struct labelled){"offlineq_operations_deleted_total",
                                           "Operations this instance deleted, by reason.", "reason",
                                           reasons, m->deleted, DELETED__COUNT});
    labelled_counter(f, &(struct labelled){"offlineq_worker_claims_total",
                                           "Claims this instance's workers ran, by result.",
                                           "result", results, m->claims, CLAIM__COUNT});
}

static void rotation(FILE *f, struct metrics *m)
{
    fprintf(f,
            "# HELP offlineq_key_rotation_active Whether this instance is sealing again what "
            "OFFLINEQ_ENCRYPTION_KEY_PREVIOUS sealed.\n# TYPE offlineq_key_rotation_active gauge\n"
            "offlineq_key_rotation_active %d\n"
            "# HELP offlineq_key_rotation_resealed_total Values (columns, file chunks) this "
            "instance sealed again with OFFLINEQ_ENCRYPTION_KEY.\n"
            "# TYPE offlineq_key_rotation_resealed_total counter\n"
            "offlineq_key_rotation_resealed_total %llu\n",
            atomic_load(&m->rotation_active),
            (unsigned long long)atomic_load(&m->rotation_resealed));
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

/* The depth by status and the oldest pending age; without the database only
 * offlineq_database_up (0). */
static void depth(FILE *f, struct app *a)
{
    struct status_count counts[OP_N_STATUSES];
    struct err e = {0};
    struct db_conn *c = db_acquire(&a->db, &e);
    bool up = c != NULL && stats_by_status(c, counts, &e) == 0;
    double oldest = up ? stats_oldest_pending_s(c, &e) : -1;
    up = up && oldest >= 0;
    if (c != NULL)
        db_release(&a->db, c);
    fprintf(f, "# HELP offlineq_queue_operations Operations in the queue, by status.\n"
               "# TYPE offlineq_queue_operations gauge\n");
    for (int i = 0; up && i < OP_N_STATUSES; i++)
        fprintf(f, "offlineq_queue_operations{status=\"%s\"} %lld\n",
                op_status_name(counts[i].status), counts[i].n);
    fprintf(f, "# HELP offlineq_queue_oldest_pending_age_seconds Age of the oldest pending "
               "operation (0: none pending).\n# TYPE offlineq_queue_oldest_pending_age_seconds "
               "gauge\n");
    if (up)
        fprintf(f, "offlineq_queue_oldest_pending_age_seconds %.3f\n", oldest);
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
    const struct config_live *l = config_live(&a->cfg);
    for (size_t i = 0; i < l->n_upstreams; i++)
        fprintf(f, "offlineq_upstream_breaker_open{upstream=\"%s\"} %d\n", l->upstreams[i].name,
                policy_breaker(&a->policy, &l->upstreams[i]) != BREAKER_CLOSED);
}

/* The exposition text (new). */
static char *render(struct app *a)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    counters(f, &a->metrics);
    deleted_and_claims(f, &a->metrics);
    rotation(f, &a->metrics);
    exec_histogram(f, &a->metrics);
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
