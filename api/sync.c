/* /api/offline/sync*: run a pass, auto-sync on/off, status, the conflict strategy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/endpoints.h"
#include "api/etag.h"
#include "api/reply.h"
#include "app.h"
#include "core/jsonload.h"
#include "core/jsontext.h"
#include "core/log.h"
#include "core/validate.h"
#include "core/vocab.h"
#include "store/settings.h"
#include "api/eta.h"
#include "store/stats.h"

/* The status with "pending" null: what this instance holds in memory. */
static json_t *memory_status(struct app *a)
{
    const char *strategy = strategy_name(settings_strategy(&a->settings));
    json_t *last = settings_last_sync(&a->settings);
    json_t *progress = sync_progress(&a->sync);
    json_t *result = last ? sync_result_capped(json_object_get(last, "result")) : NULL;
    json_t *j = json_pack(
        "{s:b, s:b, s:i, s:s, s:s, s:n, s:n, s:O, s:o, s:o}", "is_syncing",
        sync_is_running(&a->sync), "auto_sync", settings_auto_sync(&a->settings), "interval_s",
        settings_interval_s(&a->settings), "conflict_strategy", strategy, "network_status",
        monitor_is_online(&a->monitor) ? "online" : "offline", "pending", "eta_s", "last_sync_at",
        last ? json_object_get(last, "at") : json_null(), "last_result",
        result ? result : json_null(), "progress", progress ? progress : json_null());
    json_decref(last);
    return j;
}

/* Fills in "pending" and "eta_s" from the database (the counts per upstream from the cache of
 * api/eta.h). */
static int add_pending(struct request *r, json_t *j, struct err *e)
{
    struct app *a = r->app;
    struct db_conn *c = db_acquire(&a->db, e);
    if (c == NULL)
        return -1;
    json_int_t pending = stats_pending(c, e);
    db_release(&a->db, c);
    if (pending < 0)
        return -1;
    json_object_set_new(j, "pending", json_integer(pending));
    json_t *by_upstream, *rates;
    if (eta_inputs(a, &r->api->eta, &by_upstream, &rates, e) != 0)
        return -1;
    json_object_set_new(j, "eta_s", eta_total(a, by_upstream, rates));
    json_decref(by_upstream);
    json_decref(rates);
    return 0;
}

/* The status is cheap to build (one read of the pending count; the rest is this instance's
 * memory), so its ETag is a digest of the body: it changes exactly when what it shows does.
 * With the database away the count cannot be read: a poller whose tag is the last one sent
 * while the rest is unchanged is answered 304 (the last known state). */
int api_sync_status(struct request *r, struct err *e)
{
    struct app *a = r->app;
    bool is_get = strcmp(r->method, "GET") == 0; /* start-auto / stop-auto answer fresh */
    json_t *j = memory_status(a);
    char *memory = jsontext(j);
    int rc = -1;
    if (add_pending(r, j, e) != 0) {
        if (is_get && e->code == ERR_DB_UNAVAILABLE &&
            etag_reply_last(r, &r->api->sync_status_etag, memory) == 0)
            rc = 0;
        goto out;
    }
    char *text = jsontext(j);
    if (!is_get) {
        rc = reply_json_text(r, 200, text);
        goto out;
    }
    etag_remember(&r->api->sync_status_etag, memory, text);
    rc = etag_reply_digest(r, text);
out:
    free(memory);
    json_decref(j);
    return rc;
}

#define SYNC_TIMEOUT_DEFAULT_S 60
#define SYNC_TIMEOUT_MAX_S 300

static int parse_timeout(struct request *r, double *out, struct err *e)
{
    const char *s = http_query(r, "timeout_s");
    *out = SYNC_TIMEOUT_DEFAULT_S;
    if (s == NULL)
        return 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v >= 0 && v <= SYNC_TIMEOUT_MAX_S))
        return err_field(e, ERR_INVALID_REQUEST, "timeout_s",
                         "timeout_s must be a number from 0 to %d", SYNC_TIMEOUT_MAX_S);
    *out = v;
    return 0;
}

/* The parked POST /sync's answer: the pass's result (200), or its progress so far (202). */
static void sync_done(void *ctx, const json_t *result)
{
    struct request *r = ctx;
    json_t *body;
    if (result != NULL) {
        body = json_incref((json_t *)result);
    } else {
        json_t *progress = sync_progress(&r->app->sync);
        body = json_pack("{s:b, s:o}", "is_syncing", true, "progress",
                         progress ? progress : json_pack("{s:i, s:i}", "done", 0, "total", 0));
    }
    r->deferred_status = result != NULL ? 200 : 202;
    r->deferred_body = jsontext(body);
    json_decref(body);
    http_resume(r);
}

/* The request is parked while the pass runs (no thread is held) and answered by sync_done. */
int api_sync_run(struct request *r, struct err *e)
{
    double timeout_s;
    unsigned long pass;
    if (parse_timeout(r, &timeout_s, e) != 0 || sync_request(&r->app->sync, &pass, e) != 0)
        return -1;
    http_suspend(r, reply_deferred);
    sync_park(&r->app->sync, pass, timeout_s, sync_done, r);
    return 0;
}

/* Stores key = value (JSON text) for every instance, and reloads this instance's cache of the
 * settings so that the answer that follows already shows it. Replies nothing. */
static int store_setting(struct request *r, const char *key, const char *value, struct err *e)
{
    struct db_conn *c = db_acquire(&r->app->db, e);
    if (c == NULL)
        return -1;
    int rc = settings_store(c, key, value, e);
    if (rc == 0)
        rc = settings_reload(&r->app->settings, c, e);
    db_release(&r->app->db, c);
    return rc;
}

#define SYNC_INTERVAL_MAX_S (24 * 60 * 60)

const struct field_rule api_start_rules[] = {
    {.name = "interval_s", .type = V_INT, .min = 0, .max = SYNC_INTERVAL_MAX_S},
    {.name = NULL},
};

int api_sync_start_auto(struct request *r, struct err *e)
{
    const json_t *interval = r->json ? json_object_get(r->json, "interval_s") : NULL;
    if (interval != NULL) {
        char v[16];
        snprintf(v, sizeof(v), "%lld", (long long)jsonnum_value(interval));
        if (store_setting(r, "sync_interval_s", v, e) != 0)
            return -1;
    }
    if (store_setting(r, "auto_sync", "true", e) != 0)
        return -1;
    workers_wake(&r->app->workers);
    return api_sync_status(r, e);
}

int api_sync_stop_auto(struct request *r, struct err *e)
{
    if (store_setting(r, "auto_sync", "false", e) != 0)
        return -1;
    return api_sync_status(r, e);
}

int api_strategy_get(struct request *r, struct err *e)
{
    const char *s = strategy_name(settings_strategy(&r->app->settings));
    return reply_json(r, 200, json_pack("{s:s}", "strategy", s));
}

const struct field_rule api_strategy_rules[] = {
    {.name = "strategy", .type = V_STRING, .required = true, .one_of = strategy_names},
    {.name = NULL},
};

int api_strategy_set(struct request *r, struct err *e)
{
    json_t *v = json_object_get(r->json, "strategy");
    char *text = jsontext(v);
    int rc = store_setting(r, "conflict_strategy", text, e);
    free(text);
    if (rc != 0)
        return -1;
    log_json(LOG_INFO, "conflict strategy changed",
             json_pack("{s:s, s:O}", "event", "strategy.changed", "strategy", v));
    events_emit(&r->app->events, "strategy.changed", json_pack("{s:O}", "strategy", v));
    return api_strategy_get(r, e);
}
