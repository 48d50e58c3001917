#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/sdnotify.h"
#include "handlers/handlers.h"
#include "core/log.h"
#include "store/migrate.h"
#include "store/ops.h"
#include "store/rotation.h"
#include "store/fleet.h"
#include "store/secretbox.h"
#include "core/pgarray.h"

/* Refuses a transaction pooler before anything else (its sessions do not hold), then migrates. */
static int migrate(struct app *a, struct err *e)
{
    PGconn *pg = db_connect(a->cfg.database_url, a->cfg.db_schema, e);
    if (pg == NULL)
        return -1;
    int rc = db_check_session_pooling(pg, a->cfg.database_url, a->cfg.db_schema, e);
    if (rc == 0)
        rc = migrate_up(pg, a->cfg.db_schema, e);
    PQfinish(pg);
    return rc;
}

/* "{api_call,file_upload,...}" from the registry; a new string. */
static char *types_array(void)
{
    struct pgarray a;
    pgarray_init(&a);
    for (const struct handler *h = handlers_table(); h->name; h++)
        pgarray_add(&a, h->name);
    return pgarray_finish(&a);
}

/* The operation types, and OFFLINEQ_MAX_ATTEMPTS as the default_max_attempts setting that
 * offlineq.enqueue() reads (SQL callers get the service's default). */
static int register_registry(struct app *a, struct err *e)
{
    struct db_conn *c = db_acquire(&a->db, e);
    if (c == NULL)
        return -1;
    char *types = types_array(), attempts[16];
    snprintf(attempts, sizeof(attempts), "%d", a->cfg.max_attempts);
    int rc = ops_register_types(c, types, e);
    if (rc == 0)
        rc = settings_store(c, "default_max_attempts", attempts, e);
    db_release(&a->db, c);
    free(types);
    return rc;
}

static struct janitor_deps janitor_deps(struct app *a)
{
    return (struct janitor_deps){.db = &a->db,
                                 .pending = &a->pending,
                                 .settings = &a->settings,
                                 .workers = &a->workers,
                                 .metrics = &a->metrics,
                                 .retain_completed_s = a->cfg.retain_completed_s,
                                 .retain_failed_s = a->cfg.retain_failed_s,
                                 .idempotency_ttl_s = a->cfg.idempotency_ttl_s,
                                 .watchdog_ms = sdnotify_watchdog_period_ms(),
                                 .max_lease_expiries = a->cfg.max_lease_expiries,
                                 .fleet_id = a->policy.in_fleet ? a->instance_id : NULL,
                                 .policy = &a->policy};
}

/* The stored pauses and breakers reach the delivery policy whenever the settings are read
 * again. */
static void on_paused(void *arg, json_t *paused)
{
    policy_set_paused(arg, paused);
}

static void on_breakers(void *arg, json_t *breakers)
{
    policy_set_breakers(arg, breakers);
}

static void on_holds(void *arg, json_t *holds)
{
    policy_set_holds(arg, holds);
}

/* The one half-open probe of u's breaker for the deployment: this instance's if the database
 * gives it (for the request's timeout and a margin); with the database away, it decides alone. */
#define PROBE_MARGIN_MS 5000
static bool probe_grant(void *arg, const struct upstream *u)
{
    struct app *a = arg;
    struct err e = {0};
    struct db_conn *c = db_acquire(&a->db, &e);
    if (c == NULL)
        return true;
    bool granted = true;
    int ms = u->connect_timeout_ms + u->timeout_ms + PROBE_MARGIN_MS;
    if (fleet_breaker_probe(c, u->name, ms, a->instance_id, &granted, &e) != 0)
        granted = true;
    db_release(&a->db, c);
    return granted;
}

int app_init(struct app *a, struct err *e)
{
    char host[32] = "host";
    gethostname(host, sizeof(host) - 1);
    char id[37];
    oq_uuid(id);
    snprintf(a->instance_id, sizeof(a->instance_id), "%s:%d:%.8s", host, (int)getpid(), id);
    atomic_init(&a->abort_outbound, false);
    pending_init(&a->pending);
    policy_init(&a->policy, &a->cfg);
    settings_init(&a->settings);
    a->settings.on_paused = on_paused;
    a->settings.on_paused_arg = &a->policy;
    a->settings.on_breakers = on_breakers;
    a->settings.on_holds = on_holds;
    a->settings.on_breakers_arg = &a->policy;
    a->policy.in_fleet = a->cfg.workers > 0; /* only instances that deliver share the limits */
    a->policy.probe_grant = probe_grant;
    a->policy.probe_grant_arg = a;
    metrics_init(&a->metrics);
    for (const struct handler *hd = handlers_table(); hd->name; hd++)
        metrics_add_type(&a->metrics, hd->name);
    const struct config_live *l = config_live(&a->cfg);
    for (size_t i = 0; i < l->n_upstreams; i++)
        metrics_add_upstream(&a->metrics, l->upstreams[i].name);
    db_pool_init(&a->db, a->cfg.database_url, a->cfg.db_schema, a->cfg.db_pool_size, &a->box);
    if (migrate(a, e) != 0 || register_registry(a, e) != 0)
        return -1;
    struct db_conn *c = db_acquire(&a->db, e);
    if (c == NULL)
        return -1;
    bool rotating = false;
    char key_id[65] = "";
    if (a->box.enabled)
        secretbox_key_id(&a->box, key_id);
    int rc = secretbox_check_database(c, &rotating, e);
    if (rc == 0 && rotating)
        rc = rotation_begin(c, key_id, e);
    else if (rc == 0 && a->box.enabled)
        rc = rotation_check_idle(c, key_id, e);
    if (rc == 0 && rotating) {
        atomic_store(&a->metrics.rotation_active, 1); /* the janitor takes it from here */
        log_json(LOG_INFO,
                 "key rotation: what OFFLINEQ_ENCRYPTION_KEY_PREVIOUS sealed is sealed "
                 "again with OFFLINEQ_ENCRYPTION_KEY",
                 json_pack("{s:s}", "event", "key_rotation_started"));
    } else if (rc == 0 && a->box.has_previous) {
        log_json(LOG_INFO,
                 "OFFLINEQ_ENCRYPTION_KEY_PREVIOUS is not needed: nothing needs it "
                 "(a rotation to this key is over)",
                 json_pack("{s:s}", "event", "key_rotation_not_needed"));
    }
    if (rc == 0)
        rc = settings_seed(c, a->cfg.auto_sync, a->cfg.sync_interval_s, e);
    if (rc == 0)
        rc = settings_reload(&a->settings, c, e);
    if (rc == 0) {
        struct janitor_deps d = janitor_deps(a);
        janitor_fold_counts(&d, c); /* OFFLINEQ_MAX_PENDING holds from the first request on */
    }
    db_release(&a->db, c);
    return rc;
}

int app_reload(struct app *a)
{
    char msg[512];
    struct config_live *fresh;
    if (config_reload(&a->cfg, &fresh, msg, sizeof(msg)) != 0) {
        log_json(LOG_ERROR, "reload refused: the running configuration stays",
                 json_pack("{s:s, s:s}", "event", "reload_failed", "reason", msg));
        return -1;
    }
    policy_attach(&a->policy, fresh); /* breakers and limits go on by name */
    for (size_t i = 0; i < fresh->n_upstreams; i++)
        metrics_add_upstream(&a->metrics, fresh->upstreams[i].name);
    json_t *paused = settings_paused(&a->settings); /* before publishing: a paused upstream new */
    policy_set_paused(&a->policy, paused);          /* to this process is never claimed */
    json_decref(paused);
    config_publish(&a->cfg, fresh);
    workers_wake(&a->workers);
    log_json(LOG_INFO, "configuration reloaded",
             json_pack("{s:s, s:I, s:I}", "event", "reloaded", "api_keys",
                       (json_int_t)fresh->n_api_keys, "upstreams", (json_int_t)fresh->n_upstreams));
    return 0;
}

/* Going online wakes the workers and, with auto-sync on, starts a sync pass. */
static void on_network_change(void *arg, bool online)
{
    struct app *a = arg;
    events_emit(&a->events, "network.changed",
                json_pack("{s:s, s:s}", "status", online ? "online" : "offline", "instance",
                          a->instance_id));
    if (!online || !atomic_load(&a->sync.t.started))
        return;
    policy_ramp_all(&a->policy); /* the backlog goes out at the ramp's pace, not all at once */
    workers_wake(&a->workers);
    unsigned long pass;
    struct err e = {0};
    if (settings_auto_sync(&a->settings) && sync_request(&a->sync, &pass, &e) != 0)
        log_debug("no sync pass on reconnect: %s", e.message);
}

/* A sync pass has taken its snapshot: its operations are due now. */
static void on_pass_start(void *arg)
{
    workers_wake(arg);
}

static void start_workers(struct app *a)
{
    struct workers_deps d = {
        .cfg = &a->cfg,
        .db = &a->db,
        .policy = &a->policy,
        .monitor = &a->monitor,
        .settings = &a->settings,
        .metrics = &a->metrics,
        .instance_id = a->instance_id,
        .abort_outbound = &a->abort_outbound,
        .pass_ids = sync_pass_ids,
        .pass_ids_arg = &a->sync,
    };
    workers_start(&a->workers, &d);
}

void app_start(struct app *a)
{
    events_start(&a->events, &a->db, a->cfg.max_subscribers);
    monitor_listen(&a->monitor, on_network_change, a);
    monitor_start(&a->monitor, &a->cfg);
    struct sync_deps sd = {.db = &a->db,
                           .settings = &a->settings,
                           .policy = &a->policy,
                           .monitor = &a->monitor,
                           .events = &a->events};
    sync_init(&a->sync, &sd); /* before the workers: their claims read sync_pass_ids */
    sync_on_pass_start(&a->sync, on_pass_start, &a->workers);
    start_workers(a);
    struct listener_deps ld = {.database_url = a->cfg.database_url,
                               .db = &a->db,
                               .settings = &a->settings,
                               .workers = &a->workers,
                               .events = &a->events};
    listener_start(&a->listener, &ld);
    sync_start(&a->sync);
    struct janitor_deps jd = janitor_deps(a);
    janitor_start(&a->janitor, &jd);
}

/* Its part of the upstreams' limits goes to the others at their next beat. */
static void leave_fleet(struct app *a)
{
    if (!a->policy.in_fleet)
        return;
    struct err e = {0};
    struct db_conn *c = db_acquire(&a->db, &e);
    if (c == NULL)
        return;
    if (fleet_leave(c, a->instance_id, &e) != 0)
        log_debug("leaving the fleet failed: %s", e.message);
    db_release(&a->db, c);
}

/* In reverse dependency order: whatever calls into a module stops before it. The listener
 * and the janitor wake the workers, running handlers ask the monitor, everyone emits events. */
void app_close(struct app *a)
{
    sync_stop(&a->sync);
    listener_stop(&a->listener);
    janitor_stop(&a->janitor);
    workers_stop(&a->workers, a->cfg.shutdown_grace_s);
    leave_fleet(a);
    sync_close(&a->sync); /* after the workers: their claims read sync_pass_ids */
    monitor_stop(&a->monitor);
    events_stop(&a->events);
    db_pool_close(&a->db);
    policy_close(&a->policy);
    settings_close(&a->settings);
    pending_close(&a->pending);
}

bool app_is_ready(struct app *a, struct err *e)
{
    if (migrate_guard(&a->db, e) != 0) /* a schema this binary cannot use refuses the pool */
        return false;
    struct db_conn *c = db_acquire(&a->db, e);
    if (c == NULL)
        return false;
    bool ok = db_check_writable(c, e) == 0;
    db_release(&a->db, c);
    return ok;
}
