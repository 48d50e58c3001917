#include "delivery/policy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/jsontext.h"
#include "core/log.h"
#include "core/pgarray.h"
#include "core/time.h"

/* A Retry-After holds an upstream at most this long (a date far off is a mistake, not a plan). */
#define HOLD_MAX_S 3600.0
/* The ramp doubles after a second in which at least this share of the attempts succeeded. */
#define RAMP_GOOD_SHARE 0.95
#define SECOND_MS 1000.0

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
        pthread_mutex_lock(&s->mu);
        s->ramp_from = u->ramp_start_concurrency > 0 ? u->ramp_start_concurrency : 1;
        pthread_mutex_unlock(&s->mu);
        u->state = s;
    }
    pthread_mutex_unlock(&p->mu);
}

void policy_init(struct policy *p, const struct config *cfg)
{
    p->cfg = cfg;
    p->all = NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->place_mu, NULL);
    p->place = (struct policy_place){.rank = 0, .live = 1};
    p->placed = false;
    p->in_fleet = false;
    p->ramp_cap = cfg->workers > 0 ? cfg->workers : 1;
    p->probe_grant = NULL;
    p->probe_grant_arg = NULL;
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
    pthread_mutex_destroy(&p->place_mu);
}

static struct upstream_state *state_of(struct policy *p, const struct upstream *u)
{
    (void)p;
    return u->state;
}

/* ---- this instance's part of the deployment's limits ---- */

void policy_set_place(struct policy *p, int rank, int live, bool settled, double valid_ms)
{
    pthread_mutex_lock(&p->place_mu);
    p->place = (struct policy_place){.rank = rank,
                                     .live = live > 0 ? live : 1,
                                     .usable = settled || live == 1,
                                     .valid_until_ms = oq_now_ms() + valid_ms};
    p->placed = true;
    pthread_mutex_unlock(&p->place_mu);
}

/* Where this instance stands now: alone (not in a fleet), or as the last beat said; not usable
 * before the first beat or once it is older than its validity. */
static struct policy_place place_now(struct policy *p)
{
    pthread_mutex_lock(&p->place_mu);
    struct policy_place pl = p->place;
    bool in_fleet = p->in_fleet, placed = p->placed;
    pthread_mutex_unlock(&p->place_mu);
    if (!in_fleet)
        return (struct policy_place){.rank = 0, .live = 1, .usable = true};
    if (!placed || oq_now_ms() > pl.valid_until_ms)
        pl.usable = false;
    return pl;
}

/* This instance's part of a deployment-wide count: an equal share, the remainder to the first
 * ranks, so the parts add up to total. */
static int part_of(const struct policy_place *pl, int total)
{
    if (!pl->usable)
        return 0;
    return total / pl->live + (pl->rank < total % pl->live ? 1 : 0);
}

/* The deployment's concurrency for u now: the ramp's while it runs, else max_concurrency; 0:
 * unlimited. Lock held. */
static int deployment_concurrency(const struct upstream_state *s, const struct upstream *u)
{
    if (s->ramp > 0 && (u->max_concurrency == 0 || s->ramp < u->max_concurrency))
        return s->ramp;
    return u->max_concurrency;
}

/* Requests this instance may have in flight to u now: -1 unlimited. Lock held. */
static int my_concurrency(const struct upstream_state *s, const struct upstream *u,
                          const struct policy_place *pl)
{
    int total = deployment_concurrency(s, u);
    return total == 0 ? -1 : part_of(pl, total);
}

/* Whether this instance may send to u at all now (a part of each limit). Lock held. */
static bool has_part(const struct upstream_state *s, const struct upstream *u,
                     const struct policy_place *pl)
{
    return my_concurrency(s, u, pl) != 0 && (u->rate_per_s == 0 || pl->usable);
}

/* ---- the recovery ramp ---- */

/* The upstream became deliverable again: the deployment starts at ramp_start_concurrency.
 * Lock held. */
static void ramp_start(struct upstream_state *s)
{
    s->ramp = s->ramp_from;
    s->second_ms = oq_now_ms();
    s->second_done = s->second_ok = 0;
    s->second_overloaded = false;
    log_json(LOG_INFO, "recovery ramp started",
             json_pack("{s:s, s:i}", "upstream", s->name, "concurrency", s->ramp));
}

/* Where a ramp of u ends: max_concurrency, or for an unlimited upstream once it exceeds what
 * the deployment's workers could send anyway. */
static int ramp_end(const struct policy *p, const struct upstream *u, int live)
{
    return u->max_concurrency > 0 ? u->max_concurrency : p->ramp_cap * live;
}

/* A 429, 503 or timeout halves the concurrency (once a second), from the ramp's or, when none
 * runs, from the cap (or what is in flight, of an unlimited upstream). Lock held. */
static void ramp_halve(struct upstream_state *s, const struct upstream *u, int live)
{
    if (s->second_overloaded)
        return;
    s->second_overloaded = true;
    int from = s->ramp > 0              ? s->ramp
               : u->max_concurrency > 0 ? u->max_concurrency
                                        : (s->inflight + 1) * live;
    s->ramp = from / 2 > 1 ? from / 2 : 1;
}

/* At the end of each second: double after one in which >= 95 % succeeded (an instance with no
 * part of it follows the others: it had nothing to count), ending at ramp_end. Lock held. */
static void ramp_tick(const struct policy *p, struct upstream_state *s, const struct upstream *u,
                      const struct policy_place *pl)
{
    double now = oq_now_ms();
    if (now - s->second_ms < SECOND_MS)
        return;
    bool idle_here = s->second_done == 0 && my_concurrency(s, u, pl) == 0;
    bool good = s->second_done > 0 && s->second_ok >= RAMP_GOOD_SHARE * s->second_done;
    if (s->ramp > 0 && !s->second_overloaded && (good || idle_here)) {
        s->ramp *= 2;
        if (s->ramp >= ramp_end(p, u, pl->live)) {
            s->ramp = 0;
            log_json(LOG_INFO, "recovery ramp done", json_pack("{s:s}", "upstream", u->name));
        }
    }
    s->second_ms = now;
    s->second_done = s->second_ok = 0;
    s->second_overloaded = false;
}

/* ---- the breaker ---- */

/* Open -> half-open once the cool-down has passed. Lock held. */
static void refresh_breaker(struct upstream_state *s, const struct upstream *u)
{
    if (s->breaker == BREAKER_OPEN && oq_now_ms() >= s->open_until_ms) {
        s->breaker = BREAKER_HALF_OPEN;
        s->probe_in_flight = false;
        log_json(LOG_INFO, "circuit breaker half-open", json_pack("{s:s}", "upstream", u->name));
    }
}

static void close_breaker(struct upstream_state *s, const struct upstream *u)
{
    log_json(LOG_INFO, "circuit breaker closed", json_pack("{s:s}", "upstream", u->name));
    s->failures = 0;
    s->breaker = BREAKER_CLOSED;
    s->probe_in_flight = false;
    ramp_start(s);
}

static void open_breaker(struct upstream_state *s, const struct upstream *u)
{
    s->breaker = BREAKER_OPEN;
    s->open_until_ms = oq_now_ms() + u->breaker_cooldown_s * 1000.0;
    s->probe_in_flight = false;
    s->shared_seen = false; /* until the stored one says so, a reload does not close it */
    log_json(LOG_WARN, "circuit breaker open",
             json_pack("{s:s, s:i, s:i}", "upstream", u->name, "failures", s->failures,
                       "cooldown_s", u->breaker_cooldown_s));
}

/* One upstream's stored breaker (NULL: none stored). Lock held. */
static void take_shared(struct upstream_state *s, const struct upstream *u, const json_t *b)
{
    json_t *until = json_object_get(b, "until");
    if (b == NULL || !json_is_integer(until)) {
        if (s->shared_seen && s->breaker != BREAKER_CLOSED)
            close_breaker(s, u); /* another instance's probe succeeded */
        s->shared_seen = false;
        s->shared_until = 0;
        return;
    }
    s->shared_seen = true;
    long long at = json_integer_value(until);
    if (at == s->shared_until)
        return;
    s->shared_until = at;
    s->breaker = BREAKER_OPEN;
    s->probe_in_flight = false;
    s->open_until_ms = oq_now_ms() + ((double)at - time_wall_ms());
}

void policy_set_breakers(struct policy *p, json_t *breakers)
{
    const struct config_live *l = config_live(p->cfg);
    for (size_t i = 0; i < l->n_upstreams; i++) {
        const struct upstream *u = &l->upstreams[i];
        struct upstream_state *s = u->state;
        pthread_mutex_lock(&s->mu);
        take_shared(s, u, json_object_get(breakers, u->name)); /* NULL-safe */
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
}

char *policy_rates(struct policy *p)
{
    json_t *rates = json_object();
    const struct config_live *l = config_live(p->cfg);
    double now = oq_now_ms();
    for (size_t i = 0; i < l->n_upstreams; i++) {
        const struct upstream *u = &l->upstreams[i];
        pthread_mutex_lock(&u->state->mu);
        double r = window_rate(&u->state->window, now, RATE_SPAN_S, u->state->rate_since_ms);
        pthread_mutex_unlock(&u->state->mu);
        json_object_set_new(rates, u->name, json_real(round(r * 1000) / 1000));
    }
    char *text = jsontext(rates);
    json_decref(rates);
    return text;
}

double policy_hold_s(double s)
{
    return s > 0 ? fmin(s, HOLD_MAX_S) : 0;
}

void policy_set_holds(struct policy *p, json_t *holds)
{
    const struct config_live *l = config_live(p->cfg);
    double now = oq_now_ms(), wall = time_wall_ms();
    for (size_t i = 0; i < l->n_upstreams; i++) {
        const struct upstream *u = &l->upstreams[i];
        json_t *until = json_object_get(holds, u->name); /* NULL-safe */
        if (!json_is_number(until))
            continue;
        pthread_mutex_lock(&u->state->mu);
        double ms = now + (json_number_value(until) - wall);
        u->state->hold_until_ms =
            fmax(u->state->hold_until_ms, fmin(ms, now + HOLD_MAX_S * 1000.0));
        pthread_mutex_unlock(&u->state->mu);
    }
}

void policy_ramp_all(struct policy *p)
{
    const struct config_live *l = config_live(p->cfg);
    for (size_t i = 0; i < l->n_upstreams; i++) {
        const struct upstream *u = &l->upstreams[i];
        pthread_mutex_lock(&u->state->mu);
        ramp_start(u->state);
        pthread_mutex_unlock(&u->state->mu);
    }
}

/* ---- admission ---- */

static void wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, double ms)
{
    struct timespec t;
    oq_deadline_ms(&t, ms);
    pthread_cond_timedwait(cv, mu, &t);
}

/* Waits for a rate token: tokens refill at this instance's part of rate_per_s up to a burst of
 * one. False: the upstream was paused meanwhile. */
static bool take_token(struct upstream_state *s, const struct upstream *u, int live)
{
    double rate = u->rate_per_s / live;
    while (u->rate_per_s > 0 && !s->paused) {
        double now = oq_now_ms();
        s->tokens = fmin(1.0, s->tokens + (now - s->refilled_ms) * rate / 1000.0);
        s->refilled_ms = now;
        if (s->tokens >= 1.0) {
            s->tokens -= 1.0;
            return true;
        }
        wait_ms(&s->cv, &s->mu, (1.0 - s->tokens) * 1000.0 / rate + 0.5);
    }
    return !s->paused;
}

/* Why nothing may go to u now, or ADMIT_OK; *retry_in_s for the refusals. Lock held. */
static enum admit refusal(struct upstream_state *s, const struct upstream *u,
                          const struct policy_place *pl, double *retry_in_s)
{
    if (s->paused)
        return ADMIT_PAUSED;
    double now = oq_now_ms();
    refresh_breaker(s, u);
    if (s->breaker == BREAKER_OPEN || (s->breaker == BREAKER_HALF_OPEN && s->probe_in_flight)) {
        double left = (s->open_until_ms - now) / 1000.0;
        *retry_in_s = s->breaker == BREAKER_OPEN && left > 0 ? left : 1;
        return ADMIT_BREAKER_OPEN;
    }
    if (now < s->hold_until_ms) {
        *retry_in_s = (s->hold_until_ms - now) / 1000.0;
        return ADMIT_HELD;
    }
    if (!has_part(s, u, pl)) {
        *retry_in_s = 1;
        return ADMIT_NO_PART;
    }
    return ADMIT_OK;
}

/* The half-open probe, if the deployment gives it to this instance (asked without the lock).
 * Lock held on entry and return; false: another instance probes. */
static bool take_probe(struct policy *p, struct upstream_state *s, const struct upstream *u)
{
    s->probe_in_flight = true; /* no other worker here asks meanwhile */
    if (p->probe_grant == NULL)
        return true;
    pthread_mutex_unlock(&s->mu);
    bool granted = p->probe_grant(p->probe_grant_arg, u);
    pthread_mutex_lock(&s->mu);
    if (!granted)
        s->probe_in_flight = false;
    return granted;
}

enum admit policy_enter(struct policy *p, const struct upstream *u, double *retry_in_s)
{
    struct upstream_state *s = state_of(p, u);
    struct policy_place pl = place_now(p);
    enum admit how;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        /* asked again after every wait: pause, breaker, hold and part may have changed */
        how = refusal(s, u, &pl, retry_in_s);
        if (how != ADMIT_OK) {
            pthread_mutex_unlock(&s->mu);
            return how;
        }
        int cap = my_concurrency(s, u, &pl);
        if (cap < 0 || s->inflight < cap)
            break;
        wait_ms(&s->cv, &s->mu, 100); /* the ramp and the part change without a signal */
        pl = place_now(p);
    }
    if (s->breaker == BREAKER_HALF_OPEN) {
        if (!take_probe(p, s, u)) {
            *retry_in_s = 1;
            pthread_mutex_unlock(&s->mu);
            return ADMIT_BREAKER_OPEN;
        }
        how = ADMIT_PROBE;
    }
    s->inflight++;
    if (!take_token(s, u, pl.live)) { /* paused while it waited: the slot and the probe go back */
        s->inflight--;
        if (how == ADMIT_PROBE)
            s->probe_in_flight = false;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        return ADMIT_PAUSED;
    }
    pthread_mutex_unlock(&s->mu);
    return how;
}

/* Counts a request that reached the upstream (or tried to) in the window and the ramp's second.
 * Lock held. */
static void count_sample(struct policy *p, struct upstream_state *s, const struct upstream *u,
                         const struct policy_sample *sample)
{
    struct policy_place pl = place_now(p);
    double now = oq_now_ms();
    if (sample->is_success && window_rate(&s->window, now, RATE_SPAN_S, 0) == 0)
        s->rate_since_ms = now; /* the first success after a quiet minute: the rate starts here */
    window_add(&s->window, now, sample->duration_ms, sample->is_success);
    if (sample->is_success)
        s->last_success_wall_ms = time_wall_ms();
    else
        s->last_failure_wall_ms = time_wall_ms();
    ramp_tick(p, s, u, &pl);
    s->second_done++;
    s->second_ok += sample->is_success;
    if (sample->is_overload)
        ramp_halve(s, u, pl.live);
    if (sample->retry_after_s > 0)
        s->hold_until_ms =
            fmax(s->hold_until_ms, oq_now_ms() + policy_hold_s(sample->retry_after_s) * 1000.0);
}

enum breaker_change policy_leave(struct policy *p, const struct upstream *u, enum admit how,
                                 const struct policy_sample *sample)
{
    struct upstream_state *s = state_of(p, u);
    enum breaker_change change = BREAKER_UNCHANGED;
    pthread_mutex_lock(&s->mu);
    s->inflight--;
    if (sample->reached_upstream)
        count_sample(p, s, u, sample);
    if (sample->is_failure) {
        s->failures++;
        if (how == ADMIT_PROBE ||
            (s->breaker == BREAKER_CLOSED && s->failures >= u->breaker_failures)) {
            open_breaker(s, u);
            change = BREAKER_OPENED;
        }
    } else if (sample->reached_upstream) {
        if (s->breaker != BREAKER_CLOSED) {
            close_breaker(s, u);
            change = BREAKER_CLOSED_AGAIN;
        }
        s->failures = 0;
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
        bool resumed = s->paused && at == NULL;
        s->paused = at != NULL;
        snprintf(s->paused_at, sizeof(s->paused_at), "%s",
                 json_is_string(at) ? json_string_value(at) : "");
        if (resumed)
            ramp_start(s);
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
    struct policy_place pl = place_now(p);
    for (size_t i = 0; i < l->n_upstreams; i++) {
        const struct upstream *u = &l->upstreams[i];
        struct upstream_state *s = u->state;
        double retry_in = 0;
        pthread_mutex_lock(&s->mu);
        ramp_tick(p, s, u, &pl); /* an instance with no part follows the ramp's seconds */
        enum admit why = refusal(s, u, &pl, &retry_in);
        pthread_mutex_unlock(&s->mu);
        if (why != ADMIT_OK && pgarray_len(&names) + strlen(u->name) + 3 < len) /* ,"name" */
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
    struct policy_place pl = place_now(p);
    double now = oq_now_ms(), wall = time_wall_ms();
    pthread_mutex_lock(&s->mu);
    refresh_breaker(s, u);
    out->paused = s->paused;
    snprintf(out->paused_at, sizeof(out->paused_at), "%s", s->paused_at);
    out->breaker = s->breaker;
    out->breaker_until_wall_ms = s->breaker == BREAKER_OPEN ? wall + (s->open_until_ms - now) : 0;
    out->in_flight = s->inflight;
    out->concurrency = deployment_concurrency(s, u);
    out->ramping = s->ramp > 0 && out->concurrency == s->ramp;
    out->held_until_wall_ms = now < s->hold_until_ms ? wall + (s->hold_until_ms - now) : 0;
    out->instances = pl.live;
    window_sum(&s->window, now, &out->last);
    out->last_success_wall_ms = s->last_success_wall_ms;
    out->last_failure_wall_ms = s->last_failure_wall_ms;
    pthread_mutex_unlock(&s->mu);
}
