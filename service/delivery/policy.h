/* Per-upstream delivery policy of this instance: in-flight cap, token-bucket rate, circuit
 * breaker. Thread-safe; one struct policy per app. */
#ifndef OQ_POLICY_H
#define OQ_POLICY_H

#include <pthread.h>

#include "core/config.h"

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

struct upstream_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inflight;
    double tokens;
    double refilled_ms;
    int failures; /* consecutive connection failures or 5xx */
    enum breaker_state breaker;
    double opened_ms;
    bool probe_in_flight;
};

struct policy {
    const struct config *cfg;
    struct upstream_state *st; /* one per cfg->upstreams[i] */
};

void policy_init(struct policy *p, const struct config *cfg);
void policy_close(struct policy *p);

enum admit { ADMIT_OK, ADMIT_PROBE, ADMIT_BREAKER_OPEN };

/* Decides whether a request to u may go now (breaker), then waits for a concurrency slot
 * and a rate token. ADMIT_BREAKER_OPEN: do not send; *retry_in_s says when to look again. */
enum admit policy_enter(struct policy *p, const struct upstream *u, double *retry_in_s);

/* Ends a request admitted by policy_enter. is_failure: a connection failure or a 5xx. */
void policy_leave(struct policy *p, const struct upstream *u, enum admit how, bool is_failure);

/* Writes a Postgres text[] literal of the upstreams whose operations must not be claimed now
 * (breaker open, or half-open with its probe under way). */
void policy_paused(struct policy *p, char *out, size_t len);

/* The breaker state of u (for tests, metrics and the dashboard). */
enum breaker_state policy_breaker(struct policy *p, const struct upstream *u);

#endif
