/* Per-upstream delivery policy of this instance: in-flight cap, token-bucket rate, circuit
 * breaker, the operator's pause (stored in the database, handed in by policy_set_paused), and
 * what the last five minutes of attempts looked like. Thread-safe; one struct policy per app. */
#ifndef OQ_POLICY_H
#define OQ_POLICY_H

#include <pthread.h>

#include <jansson.h>

#include "core/config.h"
#include "core/window.h"

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

struct upstream_state {
    char *name;
    struct upstream_state *next; /* every state the policy made, in policy.all */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inflight;
    double tokens;
    double refilled_ms;
    int failures; /* consecutive connection failures or 5xx */
    enum breaker_state breaker;
    double opened_ms;
    bool probe_in_flight;
    bool paused;        /* by an operator, for every instance */
    char paused_at[40]; /* as stored; "" when not paused */
    struct window window;
    double last_success_wall_ms, last_failure_wall_ms; /* 0: none yet */
};

struct policy {
    const struct config *cfg;
    pthread_mutex_t mu;         /* guards all */
    struct upstream_state *all; /* one per upstream name ever configured */
};

/* Gives every upstream in force its state. */
void policy_init(struct policy *p, const struct config *cfg);
void policy_close(struct policy *p);

/* Gives the upstreams of a set about to be published (config_reload) their states: the state
 * of a name that was configured before, so its breaker, slots and window go on, or a new one. */
void policy_attach(struct policy *p, struct config_live *fresh);

enum admit { ADMIT_OK, ADMIT_PROBE, ADMIT_BREAKER_OPEN, ADMIT_PAUSED };

/* Decides whether a request to u may go now (pause, breaker), then waits for a concurrency
 * slot and a rate token. ADMIT_BREAKER_OPEN: do not send; *retry_in_s says when to look again.
 * ADMIT_PAUSED: do not send; the operation waits for the resume. */
enum admit policy_enter(struct policy *p, const struct upstream *u, double *retry_in_s);

/* What one request admitted by policy_enter came to. */
struct policy_sample {
    bool reached_upstream; /* false: our side failed (a stored file): nothing is counted */
    bool is_failure;       /* a connection failure or a 5xx: counts towards the breaker */
    bool is_success;       /* a 2xx */
    double duration_ms;
};

enum breaker_change { BREAKER_UNCHANGED, BREAKER_OPENED, BREAKER_CLOSED_AGAIN };

/* Ends a request admitted by policy_enter; says whether it opened or closed the breaker. */
enum breaker_change policy_leave(struct policy *p, const struct upstream *u, enum admit how,
                                 const struct policy_sample *sample);

/* Takes the operators' pauses: paused is the stored object {"name": "paused at", ...}
 * (borrowed; NULL: none). Upstreams it does not name are resumed. */
void policy_set_paused(struct policy *p, json_t *paused);

/* Writes a Postgres text[] literal of the upstreams whose operations must not be claimed now
 * (paused, breaker open, or half-open with its probe under way). */
void policy_paused(struct policy *p, char *out, size_t len);

/* What GET /upstreams shows of one upstream, as this instance sees it. */
struct upstream_view {
    bool paused;
    char paused_at[40];
    enum breaker_state breaker;
    double breaker_until_wall_ms; /* open: when it turns half-open; else 0 */
    int in_flight;
    struct window_summary last;
    double last_success_wall_ms, last_failure_wall_ms;
};

void policy_view(struct policy *p, const struct upstream *u, struct upstream_view *out);

/* The breaker state of u (for tests, metrics and the dashboard). */
enum breaker_state policy_breaker(struct policy *p, const struct upstream *u);

#endif
