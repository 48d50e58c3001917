/* Per-upstream delivery policy: in-flight cap, token-bucket rate, circuit breaker, recovery
 * ramp, Retry-After hold, the operator's pause (stored in the database, handed in by
 * policy_set_paused), and what the last five minutes of attempts looked like.
 * The limits hold for the deployment: this instance takes its part of each by its place among
 * the live instances (policy_set_place, from the fleet's beat), and the breakers are shared
 * (policy_set_breakers hands in the stored ones; probe_grant asks for the one half-open probe).
 * Thread-safe; one struct policy per app. */
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
    double open_until_ms; /* open: half-open from then (oq_now_ms clock) */
    bool probe_in_flight;
    long long shared_until; /* the stored breaker's "until" last taken (epoch ms); 0: none */
    bool shared_seen;       /* the stored breaker was seen since this one opened */
    /* The recovery ramp (AIMD) of the deployment's concurrency: 0 when not in force. */
    int ramp;
    int ramp_from;    /* its ramp_start_concurrency */
    double second_ms; /* the second being counted started then */
    int second_done, second_ok;
    bool second_overloaded; /* a 429, 503 or timeout in it: halved already */
    double hold_until_ms;   /* a Retry-After holds the upstream until then */
    bool paused;            /* by an operator, for every instance */
    char paused_at[40];     /* as stored; "" when not paused */
    struct window window;
    double rate_since_ms; /* the first success after a quiet RATE_SPAN_S (window_rate) */
    double last_success_wall_ms, last_failure_wall_ms; /* 0: none yet */
};

/* Where this instance stands in the deployment (store/fleet.h's beat). */
struct policy_place {
    int rank, live;
    bool usable;           /* its part is its own: settled, as told by two beats in a row */
    double valid_until_ms; /* no beat since: it has no part (the others may count it dead) */
};

struct policy {
    const struct config *cfg;
    pthread_mutex_t mu;         /* guards all */
    struct upstream_state *all; /* one per upstream name ever configured */
    pthread_mutex_t place_mu;   /* guards place and placed (taken alone, never with another) */
    struct policy_place place;
    bool placed;   /* a beat said where it stands; until then, limited upstreams get nothing */
    bool in_fleet; /* it takes a part (it delivers); false: every limit is its own (tests) */
    int ramp_cap;  /* a ramp of an unlimited upstream ends here (the deployment's workers) */
    /* Asks the deployment whether this instance may send u's half-open probe (set by app.c;
     * NULL: it may). */
    bool (*probe_grant)(void *arg, const struct upstream *u);
    void *probe_grant_arg;
};

/* Gives every upstream in force its state. */
void policy_init(struct policy *p, const struct config *cfg);
void policy_close(struct policy *p);

/* Gives the upstreams of a set about to be published (config_reload) their states: the state
 * of a name that was configured before, so its breaker, slots and window go on, or a new one. */
void policy_attach(struct policy *p, struct config_live *fresh);

enum admit { ADMIT_OK, ADMIT_PROBE, ADMIT_BREAKER_OPEN, ADMIT_HELD, ADMIT_NO_PART, ADMIT_PAUSED };

/* Decides whether a request to u may go now (pause, breaker, hold, this instance's part), then
 * waits for a concurrency slot and a rate token. ADMIT_BREAKER_OPEN, ADMIT_HELD (a Retry-After)
 * and ADMIT_NO_PART (the other instances have all of it now): do not send; *retry_in_s says
 * when to look again. ADMIT_PAUSED: do not send; the operation waits for the resume. */
enum admit policy_enter(struct policy *p, const struct upstream *u, double *retry_in_s);

/* What one request admitted by policy_enter came to. */
struct policy_sample {
    bool reached_upstream; /* false: our side failed (a stored file): nothing is counted */
    bool is_failure;       /* a connection failure or a 5xx: counts towards the breaker */
    bool is_success;       /* a 2xx */
    bool is_overload;      /* a 429, a 503 or a timeout: the ramp halves */
    double retry_after_s;  /* of a 429 or 503 (> 0): the whole upstream waits so long */
    double duration_ms;
};

enum breaker_change { BREAKER_UNCHANGED, BREAKER_OPENED, BREAKER_CLOSED_AGAIN };

/* Ends a request admitted by policy_enter; says whether it opened or closed the breaker. */
enum breaker_change policy_leave(struct policy *p, const struct upstream *u, enum admit how,
                                 const struct policy_sample *sample);

/* The span of the delivery rates, and this instance's rates: {"upstream": operations
 * delivered (2xx) per second over the last RATE_SPAN_S} as JSON text (malloc'd). */
#define RATE_SPAN_S 60
char *policy_rates(struct policy *p);

/* How long a Retry-After of s seconds holds an upstream (capped); 0 for none (s <= 0). */
double policy_hold_s(double s);

/* Takes the stored holds {"name": epoch ms} (borrowed; NULL: none): a hold another instance
 * was told of holds here too. */
void policy_set_holds(struct policy *p, json_t *holds);

/* Takes this instance's place in the deployment from a beat, valid for valid_ms; its part is
 * usable once it is settled (the others have divided for it by then), or when it is alone. */
void policy_set_place(struct policy *p, int rank, int live, bool settled, double valid_ms);

/* Takes the stored breakers {"name": {"until": epoch ms, ...}} (borrowed; NULL: none): a
 * breaker another instance opened opens here; one that is gone closes here and starts the ramp. */
void policy_set_breakers(struct policy *p, json_t *breakers);

/* The upstreams are deliverable again (the network is back): each starts at its ramp. */
void policy_ramp_all(struct policy *p);

/* Takes the operators' pauses: paused is the stored object {"name": "paused at", ...}
 * (borrowed; NULL: none). Upstreams it does not name are resumed. */
void policy_set_paused(struct policy *p, json_t *paused);

/* Writes a Postgres text[] literal of the upstreams whose operations must not be claimed now
 * (paused, breaker open or half-open with its probe under way, held, or no part here). */
void policy_paused(struct policy *p, char *out, size_t len);

/* What GET /upstreams shows of one upstream, as this instance sees it. */
struct upstream_view {
    bool paused;
    char paused_at[40];
    enum breaker_state breaker;
    double breaker_until_wall_ms; /* open: when it turns half-open; else 0 */
    int in_flight;
    int concurrency; /* the deployment's cap now (the ramp's while it runs); 0: none */
    bool ramping;
    double held_until_wall_ms; /* a Retry-After holds it until then; 0: not held */
    int instances;             /* live delivering instances sharing its limits (>= 1) */
    struct window_summary last;
    double last_success_wall_ms, last_failure_wall_ms;
};

void policy_view(struct policy *p, const struct upstream *u, struct upstream_view *out);

/* The breaker state of u (for tests, metrics and the dashboard). */
enum breaker_state policy_breaker(struct policy *p, const struct upstream *u);

#endif
