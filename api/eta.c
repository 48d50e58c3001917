#include "api/eta.h"

#include <math.h>

#include "app.h"
#include "core/time.h"
#include "engine/janitor.h"
#include "store/fleet.h"
#include "store/stats.h"

void eta_cache_init(struct eta_cache *c)
{
    pthread_mutex_init(&c->mu, NULL);
    c->pending = NULL;
    c->at_ms = 0;
}

void eta_cache_close(struct eta_cache *c)
{
    json_decref(c->pending);
    pthread_mutex_destroy(&c->mu);
}

/* The cached counts when young enough (a new reference), else NULL. */
static json_t *cached(struct eta_cache *c)
{
    if (c == NULL)
        return NULL;
    pthread_mutex_lock(&c->mu);
    json_t *p =
        c->pending && oq_now_ms() - c->at_ms < ETA_PENDING_MS ? json_incref(c->pending) : NULL;
    pthread_mutex_unlock(&c->mu);
    return p;
}

static void remember(struct eta_cache *c, json_t *pending)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    json_decref(c->pending);
    c->pending = json_incref(pending);
    c->at_ms = oq_now_ms();
    pthread_mutex_unlock(&c->mu);
}

int eta_inputs(struct app *a, struct eta_cache *cache, json_t **pending, json_t **rates,
               struct err *e)
{
    struct db_conn *c = db_acquire(&a->db, e);
    if (c == NULL)
        return -1;
    *pending = cached(cache);
    if (*pending == NULL && (*pending = stats_unfinished_by_upstream(c, e)) != NULL)
        remember(cache, *pending);
    *rates = *pending ? fleet_rates(c, FLEET_TTL_MS, e) : NULL;
    db_release(&a->db, c);
    if (*rates == NULL) {
        json_decref(*pending);
        *pending = NULL;
        return -1;
    }
    return 0;
}

/* Seconds, or -1 while unknown. */
static double eta_of(struct app *a, const struct upstream *u, json_t *pending, json_t *rates)
{
    json_int_t n = json_integer_value(json_object_get(pending, u->name)); /* 0 when absent */
    if (n <= 0)
        return 0;
    struct upstream_view v;
    policy_view(&a->policy, u, &v);
    double rate = json_number_value(json_object_get(rates, u->name));
    bool claims = settings_auto_sync(&a->settings) || sync_is_running(&a->sync);
    if (!claims || v.paused || v.breaker != BREAKER_CLOSED || v.held_until_wall_ms > 0 ||
        !(rate > 0))
        return -1;
    return ceil((double)n / rate);
}

json_t *eta_upstream(struct app *a, const struct upstream *u, json_t *pending, json_t *rates)
{
    double s = eta_of(a, u, pending, rates);
    return s < 0 ? json_null() : json_integer((json_int_t)s);
}

json_t *eta_total(struct app *a, json_t *pending, json_t *rates)
{
    if (!monitor_is_online(&a->monitor))
        return json_null();
    const struct config_live *l = config_live(&a->cfg);
    double longest = 0;
    for (size_t i = 0; i < l->n_upstreams; i++) {
        double s = eta_of(a, &l->upstreams[i], pending, rates);
        if (s < 0)
            return json_null();
        longest = fmax(longest, s);
    }
    return json_integer((json_int_t)longest);
}
