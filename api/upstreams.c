/* GET /api/offline/upstreams and POST /api/offline/upstreams/{name}/pause|resume: every
 * configured upstream as this instance sees it (breaker, in flight, the last five minutes of
 * attempts) with what the database says of it (paused, pending), and the operator's pause,
 * which the database keeps for every instance. */
#include <stdio.h>
#include <string.h>

#include "api/endpoints.h"
#include "api/reply.h"
#include "app.h"
#include "core/jsontext.h"
#include "core/log.h"
#include "core/time.h"
#include "api/eta.h"
#include "store/stats.h"

static const char *const breaker_names[] = {
    [BREAKER_CLOSED] = "closed", [BREAKER_OPEN] = "open", [BREAKER_HALF_OPEN] = "half_open"};

/* A wall time as RFC 3339, or null when it never happened (0). */
static json_t *wall_time(double wall_ms)
{
    char at[TIME_RFC3339_LEN];
    if (wall_ms <= 0)
        return json_null();
    time_format_rfc3339(wall_ms, at, sizeof(at));
    return json_string(at);
}

/* A duration in ms to one decimal, or null when there is none (< 0). */
static json_t *ms_or_null(double ms)
{
    return ms < 0 ? json_null() : json_real((double)(long long)(ms * 10 + 0.5) / 10);
}

/* How the deployment's limits stand now: the cap in force (the recovery ramp's while it
 * runs; null: unlimited), a Retry-After hold, and how many instances share the limits. */
static json_t *with_limits(json_t *o, const struct upstream *u, const struct upstream_view *v,
                           json_t *eta)
{
    json_object_set_new(o, "eta_s", eta);
    json_object_set_new(o, "ramp_start_concurrency", json_integer(u->ramp_start_concurrency));
    json_object_set_new(o, "concurrency",
                        v->concurrency > 0 ? json_integer(v->concurrency) : json_null());
    json_object_set_new(o, "ramping", json_boolean(v->ramping));
    json_object_set_new(o, "held_until", wall_time(v->held_until_wall_ms));
    json_object_set_new(o, "instances", json_integer(v->instances));
    return o;
}

static json_t *upstream_json(struct app *a, const struct upstream *u, json_t *pending,
                             json_t *rates)
{
    struct upstream_view v;
    policy_view(&a->policy, u, &v);
    json_t *n = json_object_get(pending, u->name);
    return with_limits(
        json_pack(
            "{s:s, s:s, s:b, s:o, s:{s:s, s:o}, s:i, s:i, s:f, s:I, s:o, s:o, s:I, s:o, s:o, s:o}",
            "name", u->name, "base_url", u->base_url, "paused", v.paused, "paused_at",
            v.paused && v.paused_at[0] ? json_string(v.paused_at) : json_null(), "breaker", "state",
            breaker_names[v.breaker], "until", wall_time(v.breaker_until_wall_ms), "in_flight",
            v.in_flight, "max_concurrency", u->max_concurrency, "rate_per_s", u->rate_per_s,
            "pending", (json_int_t)(n ? json_integer_value(n) : 0), "last_success_at",
            wall_time(v.last_success_wall_ms), "last_failure_at", wall_time(v.last_failure_wall_ms),
            "attempts", (json_int_t)v.last.attempts, "success_ratio",
            v.last.attempts ? json_real((double)v.last.successes / (double)v.last.attempts)
                            : json_null(),
            "latency_p50_ms", ms_or_null(v.last.p50_ms), "latency_p95_ms",
            ms_or_null(v.last.p95_ms)),
        u, &v, eta_upstream(a, u, pending, rates));
}

int api_upstreams_list(struct request *r, struct err *e)
{
    struct app *a = r->app;
    json_t *pending, *rates;
    if (eta_inputs(a, NULL, &pending, &rates, e) != 0)
        return -1;
    json_t *list = json_array();
    const struct config_live *l = config_live(&a->cfg);
    for (size_t i = 0; i < l->n_upstreams; i++)
        json_array_append_new(list, upstream_json(a, &l->upstreams[i], pending, rates));
    json_decref(pending);
    json_decref(rates);
    return reply_json(r, 200,
                      json_pack("{s:i, s:s, s:o}", "window_s", WINDOW_S, "instance", a->instance_id,
                                "upstreams", list));
}

/* Pauses or resumes the upstream of the path for every instance, then answers it as GET
 * shows it (this instance has read the change already). */
static int set_paused(struct request *r, bool is_paused, struct err *e)
{
    struct app *a = r->app;
    const struct upstream *u = config_find_upstream(&a->cfg, r->path_id);
    if (u == NULL)
        return err_set(e, ERR_NOT_FOUND, "no upstream is named %.64s", r->path_id);
    struct db_conn *c = db_acquire(&a->db, e);
    if (c == NULL)
        return -1;
    bool changed = false;
    int rc = settings_pause_upstream(c, u->name, is_paused, &changed, e);
    if (rc == 0)
        rc = settings_reload(&a->settings, c, e);
    db_release(&a->db, c);
    json_t *pending, *rates;
    if (rc != 0 || eta_inputs(a, NULL, &pending, &rates, e) != 0)
        return -1;
    if (changed)
        log_json(LOG_INFO, is_paused ? "upstream paused" : "upstream resumed",
                 json_pack("{s:s}", "upstream", u->name));
    if (!is_paused)
        workers_wake(&a->workers);
    json_t *body = upstream_json(a, u, pending, rates);
    json_decref(pending);
    json_decref(rates);
    return reply_json(r, 200, body);
}

int api_upstream_pause(struct request *r, struct err *e)
{
    return set_paused(r, true, e);
}

int api_upstream_resume(struct request *r, struct err *e)
{
    return set_paused(r, false, e);
}
