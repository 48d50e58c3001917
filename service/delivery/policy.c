#include "delivery/policy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/pgarray.h"
#include "core/time.h"

static struct upstream_state *state_new(const char *name)
{
    struct upstream_state *s = oq_calloc(1, sizeof(*s));
    s->name = oq_strdup(name);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->tokens = 1; /* burst of one */
    s->refilled_ms = oq_now_ms();
    return s;
}

void policy_attach(struct policy *p, struct config_live *fresh)
{
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < fresh->n_upstreams; i++) {
        struct upstream *u = &fresh->upstreams[i];
        struct upstream_state *s = p->all;
        while (s != NULL && strcmp(s->name, u->name) != 0)
            s = s->next;
        if (s == NULL) {
            s = state_new(u->name);
            s->next = p->all;
            p->all = s;
        }
        u->state = s;
    }
    pthread_mutex_unlock(&p->mu);
}

void policy_init(struct policy *p, const struct config *cfg)
{
    p->cfg = cfg;
    p->all = NULL;
    pthread_mutex_init(&p->mu, NULL);
    policy_attach(p, (struct config_live *)config_live(cfg)); /* before any thread reads it */
}

void policy_close(struct policy *p)
{
    while (p->all != NULL) {
        struct upstream_state *s = p->all;
        p->all = s->next;
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s->name);
        free(s);
    }
    pthread_mutex_destroy(&p->mu);
}

static struct upstream_state *state_of(struct policy *p, const struct upstream *u)
{
    (void)p;
    return u->state;
}

/* Open -> half-open once the cool-down has passed. Called with the lock held. */
static void refresh_breaker(struct upstream_state *s, const struct upstream *u)
{
    if (s->breaker == BREAKER_OPEN &&
        oq_now_ms() - s->opened_ms >= u->breaker_cooldown_s * 1000.0) {
        s->breaker = BREAKER_HALF_OPEN;
        s->probe_in_flight = false;
        log_json(LOG_INFO, "circuit breaker half-open", json_pack("{s:s}", "upstream", u->name));
    }
}

static void wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, double ms)
{
    struct timespec t;
    oq_deadline_ms(&t, ms);
    pthread_cond_timedwait(cv, mu, &t);
}

/* Waits for a rate token: tokens refill at rate_per_s up to a burst of one. */
static void take_token(struct upstream_state *s, const struct upstream *u)
{
    while (u->rate_per_s > 0) {
        double now = oq_now_ms();
        s->tokens = fmin(1.0, s->tokens + (now - s->refilled_ms) * u->rate_per_s / 1000.0);
        s->refilled_ms = now;
        if (s->tokens >= 1.0) {
            s->tokens -= 1.0;
            return;
        }
        wait_ms(&s->cv, &s->mu, (1.0 - s->tokens) * 1000.0 / u->rate_per_s + 0.5);
    }
}

enum admit policy_enter(struct policy *p, const struct upstream *u, double *retry_in_s)
{
    struct upstream_state *s = state_of(p, u);
    enum admit how = ADMIT_OK;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        /* pause and breaker are asked again after every wait: they may have changed meanwhile */
        if (s->paused) {
            pthread_mutex_unlock(&s->mu);
            return ADMIT_PAUSED;
        }
        refresh_breaker(s, u);
        if (s->breaker == BREAKER_OPEN || (s->breaker == BREAKER_HALF_OPEN && s->probe_in_flight)) {
            double left = u->breaker_cooldown_s - (oq_now_ms() - s->opened_ms) / 1000.0;
            *retry_in_s = s->breaker == BREAKER_OPEN && left > 0 ? left : 1;
            pthread_mutex_unlock(&s->mu);
            return ADMIT_BREAKER_OPEN;
        }
        if (u->max_concurrency == 0 || s->inflight < u->max_concurrency)
            break;
        pthread_cond_wait(&s->cv, &s->mu);
    }
    if (s->breaker == BREAKER_HALF_OPEN) {
        s->probe_in_flight = true;
        how = ADMIT_PROBE;
    }
    s->inflight++;
    take_token(s, u);
    pthread_mutex_unlock(&s->mu);
    return how;
}

static void open_breaker(struct upstream_state *s, const struct upstream *u)
{
    s->breaker = BREAKER_OPEN;
    s->opened_ms = oq_now_ms();
    s->probe_in_flight = false;
    log_json(LOG_WARN, "circuit breaker open",
             json_pack("{s:s, s:i, s:i}", "upstream", u->name, "failures", s->failures,
                       "cooldown_s", u->breaker_cooldown_s));
}

/* Counts a request that reached the upstream (or tried to) in the window. Lock held. */
static void count_sample(struct upstream_state *s, const struct policy_sample *sample)
{
    window_add(&s->window, oq_now_ms(), sample->duration_ms, sample->is_success);
    if (sample->is_success)
        s->last_success_wall_ms = time_wall_ms();
    else
        s->last_failure_wall_ms = time_wall_ms();
}

enum breaker_change policy_leave(struct policy *p, const struct upstream *u, enum admit how,
                                 const struct policy_sample *sample)
{
    struct upstream_state *s = state_of(p, u);
    enum breaker_change change = BREAKER_UNCHANGED;
    pthread_mutex_lock(&s->mu);
    s->inflight--;
    if (sample->reached_upstream)
        count_sample(s, sample);
    if (sample->is_failure) {
        s->failures++;
        if (how == ADMIT_PROBE ||
            (s->breaker == BREAKER_CLOSED && s->failures >= u->breaker_failures)) {
            open_breaker(s, u);
            change = BREAKER_OPENED;
        }
    } else if (sample->reached_upstream) {
        if (s->breaker != BREAKER_CLOSED) {
            log_json(LOG_INFO, "circuit breaker closed", json_pack("{s:s}", "upstream", u->name));
            change = BREAKER_CLOSED_AGAIN;
        }
        s->failures = 0;
        s->breaker = BREAKER_CLOSED;
        s->probe_in_flight = false;
    } else if (how == ADMIT_PROBE) {
        s->probe_in_flight = false; /* the probe told nothing: another one may go */
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return change;
}

void policy_set_paused(struct policy *p, json_t *paused)
{
    pthread_mutex_lock(&p->mu); /* every name, also one a reload will bring back */
    for (struct upstream_state *s = p->all; s != NULL; s = s->next) {
        json_t *at = json_object_get(paused, s->name); /* NULL-safe */
        pthread_mutex_lock(&s->mu);
        s->paused = at != NULL;
        snprintf(s->paused_at, sizeof(s->paused_at), "%s",
                 json_is_string(at) ? json_string_value(at) : "");
        pthread_cond_broadcast(&s->cv); /* waiters for a slot look again */
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&p->mu);
}

void policy_paused(struct policy *p, char *out, size_t len)
{
    struct pgarray names;
    pgarray_init(&names);
    const struct config_live *l = config_live(p->cfg);
    for (size_t i = 0; i < l->n_upstreams; i++) {
        const struct upstream *u = &l->upstreams[i];
        struct upstream_state *s = u->state;
        pthread_mutex_lock(&s->mu);
        refresh_breaker(s, u);
        bool paused = s->paused || s->breaker == BREAKER_OPEN ||
                      (s->breaker == BREAKER_HALF_OPEN && s->probe_in_flight);
        pthread_mutex_unlock(&s->mu);
        if (paused && pgarray_len(&names) + strlen(u->name) + 3 < len) /* room for ,"name" */
            pgarray_add(&names, u->name);
    }
    char *literal = pgarray_finish(&names);
    snprintf(out, len, "%s", literal);
    free(literal);
}

enum breaker_state policy_breaker(struct policy *p, const struct upstream *u)
{
    struct upstream_state *s = state_of(p, u);
    pthread_mutex_lock(&s->mu);
    refresh_breaker(s, u);
    enum breaker_state b = s->breaker;
    pthread_mutex_unlock(&s->mu);
    return b;
}

void policy_view(struct policy *p, const struct upstream *u, struct upstream_view *out)
{
    struct upstream_state *s = state_of(p, u);
    pthread_mutex_lock(&s->mu);
    refresh_breaker(s, u);
    out->paused = s->paused;
    snprintf(out->paused_at, sizeof(out->paused_at), "%s", s->paused_at);
    out->breaker = s->breaker;
    out->breaker_until_wall_ms =
        s->breaker == BREAKER_OPEN
            ? time_wall_ms() + (s->opened_ms + u->breaker_cooldown_s * 1000.0 - oq_now_ms())
            : 0;
    out->in_flight = s->inflight;
    window_sum(&s->window, oq_now_ms(), &out->last);
    out->last_success_wall_ms = s->last_success_wall_ms;
    out->last_failure_wall_ms = s->last_failure_wall_ms;
    pthread_mutex_unlock(&s->mu);
}
