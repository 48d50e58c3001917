#include "engine/janitor.h"

#include <malloc.h>
#include <math.h>
#include <stdlib.h>

#include "core/common.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/pending.h"
#include "engine/sdnotify.h"
#include "delivery/policy.h"
#include "engine/workers.h"
#include "store/db.h"
#include "store/events.h"
#include "store/fleet.h"
#include "store/idempotency.h"
#include "store/leases.h"
#include "store/maintenance.h"
#include "store/migrate.h"
#include "store/rotation.h"
#include "store/secretbox.h"
#include "store/settings.h"
#include "store/stats.h"

#define SEAL_BATCH 500 /* rows a sealing round looks at */
/* Retention: rows per statement (one short transaction each), and the bounds of one round:
 * at most this many statements and this much time, so a backlog never holds up the other
 * chores; the next round (a second later) goes on. */
#define RETENTION_BATCH 1000
#define RETENTION_ROUND_STATEMENTS 50
#define RETENTION_ROUND_MS 250.0

void janitor_fold_counts(const struct janitor_deps *d, struct db_conn *c)
{
    struct err e = {0};
    long long n;
    char *snapshot = NULL;
    if (maintenance_fold_counts(c, &n, &snapshot, &e) != 0)
        return;
    if (pending_fold(d->pending, n, snapshot) != 0)
        log_warn("unexpected snapshot text \"%s\"", snapshot);
    free(snapshot);
}

static void reload_settings(const struct janitor_deps *d, struct db_conn *c)
{
    struct err e = {0};
    settings_reload(d->settings, c, &e);
}

static void sweep_leases(const struct janitor_deps *d, struct db_conn *c)
{
    struct err e = {0};
    if (leases_sweep(c, d->max_lease_expiries, &e) > 0)
        workers_wake(d->workers); /* reaped operations are due again */
}

static void release_groups(const struct janitor_deps *d, struct db_conn *c)
{
    struct err e = {0};
    (void)d;
    if (leases_release_groups(c, &e) < 0)
        log_json(LOG_WARN, "releasing held groups failed", json_pack("{s:s}", "error", e.message));
}

static void seal_rows(const struct janitor_deps *d, struct db_conn *c)
{
    struct err e = {0};
    if (secretbox_sweep(c, SEAL_BATCH, &e) < 0)
        log_json(LOG_WARN, "sealing plaintext rows failed", json_pack("{s:s}", "error", e.message));
}

static void trim_events(const struct janitor_deps *d, struct db_conn *c)
{
    struct err e = {0};
    (void)d;
    (void)events_trim(c, &e); /* the next round tries again */
}

static void sample_depth(const struct janitor_deps *d, struct db_conn *c)
{
    struct err e = {0};
    (void)d;
    if (stats_sample_depth(c, &e) != 0) /* the bucket may get the next one */
        log_json(LOG_WARN, "sampling the queue depth failed",
                 json_pack("{s:s}", "error", e.message));
}

/* What retention deletes, in this order (keep_s in retain() follows it). */
static const struct retention_class {
    const char *status;
    enum delete_reason reason;
} retention_classes[] = {
    {"completed", DELETED_RETENTION_COMPLETED},
    {"failed", DELETED_RETENTION_FAILED},
};

/* Deletes ended operations past their retention, a batch per statement, until a statement
 * finds fewer than a batch or the round's bounds are reached. */
static void retain(const struct janitor_deps *d, struct db_conn *c)
{
    double until = oq_now_ms() + RETENTION_ROUND_MS;
    int statements = 0;
    const int keep[] = {d->retain_completed_s, d->retain_failed_s};
    for (size_t k = 0; k < sizeof(retention_classes) / sizeof(retention_classes[0]); k++) {
        const struct retention_class *rc = &retention_classes[k];
        int keep_s = keep[k];
        long long n = RETENTION_BATCH;
        while (keep_s > 0 && n == RETENTION_BATCH && statements < RETENTION_ROUND_STATEMENTS &&
               oq_now_ms() < until) {
            struct err e = {0};
            n = maintenance_retention_delete(c, rc->status, keep_s, RETENTION_BATCH, &e);
            statements++;
            if (n < 0) {
                log_json(LOG_WARN, "retention failed",
                         json_pack("{s:s, s:s}", "status", rc->status, "error", e.message));
                return;
            }
            if (n > 0)
                metrics_deleted(d->metrics, rc->reason, (unsigned long long)n);
        }
    }
}

/* Deletes Idempotency-Key answers past OFFLINEQ_IDEMPOTENCY_TTL_S (a lookup ignores them
 * already; this keeps the table to a TTL's worth), within the same bounds as retention. */
static void expire_keys(const struct janitor_deps *d, struct db_conn *c)
{
    double until = oq_now_ms() + RETENTION_ROUND_MS;
    long long n = RETENTION_BATCH;
    for (int statements = 0;
         n == RETENTION_BATCH && statements < RETENTION_ROUND_STATEMENTS && oq_now_ms() < until;
         statements++) {
        struct err e = {0};
        n = idempotency_expire(c, d->idempotency_ttl_s, RETENTION_BATCH, &e);
        if (n < 0)
            log_json(LOG_WARN, "expiring idempotency keys failed",
                     json_pack("{s:s}", "error", e.message));
    }
}

/* Key rotation: batches for up to ROTATION_ROUND_MS a round (another instance may hold it;
 * then this one waits for the next round), progress to the log and the metrics, until the
 * pass is over. */
#define ROTATION_ROUND_MS 250.0
static void rotate_key(const struct janitor_deps *d, struct db_conn *c)
{
    if (!atomic_load(&d->metrics->rotation_active))
        return;
    double until = oq_now_ms() + ROTATION_ROUND_MS;
    struct rotation_step step = {0};
    long long scanned = 0, resealed = 0;
    struct err e = {0};
    int rc = 0;
    while (oq_now_ms() < until && (rc = rotation_run(c, &step, &e)) == 0 && !step.is_busy &&
           step.phase != ROTATION_DONE) {
        scanned += step.scanned;
        resealed += step.resealed;
    }
    atomic_fetch_add(&d->metrics->rotation_resealed, (unsigned long long)resealed);
    if (rc != 0)
        log_json(LOG_WARN, "key rotation failed; the next round goes on",
                 json_pack("{s:s}", "error", e.message));
    else if (scanned > 0)
        log_json(LOG_INFO, "key rotation progress",
                 json_pack("{s:s, s:I, s:I}", "phase", rotation_phase_name(step.phase), "scanned",
                           (json_int_t)scanned, "resealed", (json_int_t)resealed));
    if (rc == 0 && step.phase == ROTATION_DONE) {
        atomic_store(&d->metrics->rotation_active, 0);
        log_json(LOG_INFO,
                 "key rotation finished: OFFLINEQ_ENCRYPTION_KEY_PREVIOUS is no longer "
                 "needed",
                 json_pack("{s:s}", "event", "key_rotation_finished"));
    }
}

/* This instance's beat: its place divides the upstreams' limits until the beat is a TTL old
 * (less a beat, so its part ends before the others count it dead). */
static void beat(const struct janitor_deps *d, struct db_conn *c)
{
    if (d->fleet_id == NULL)
        return;
    struct err e = {0};
    struct fleet_place pl;
    char *rates = policy_rates(d->policy);
    int rc = fleet_beat(c, d->fleet_id, FLEET_TTL_MS, FLEET_SETTLE_MS, rates, &pl, &e);
    free(rates);
    if (rc != 0) {
        log_json(LOG_WARN, "the fleet beat failed", json_pack("{s:s}", "error", e.message));
        return;
    }
    policy_set_place(d->policy, pl.rank, pl.live, pl.settled, FLEET_TTL_MS - 2 * FLEET_BEAT_MS);
}

static void ping_watchdog(const struct janitor_deps *d, struct db_conn *c)
{
    (void)d;
    (void)c;
    sdnotify_watchdog();
}

/* A newer instance may have migrated the database meanwhile: past a migration that is not
 * compatible with this binary, the pool is refused (503 not_ready, no writes) until one that
 * is. On a connection of its own, taken past the refusal that it decides. */
static void check_schema(const struct janitor_deps *d, struct db_conn *c)
{
    struct err e = {0};
    (void)c;
    (void)migrate_guard(d->db, &e);
}

/* A pooled connection unused for this long is closed (its libpq buffers go with it). */
#define POOL_IDLE_MS 5000

/* Gives memory back to the system once the load is gone: the pooled connections a burst
 * opened (and grew), then the freed heap. RSS follows the load down. */
static void trim_heap(const struct janitor_deps *d, struct db_conn *c)
{
    (void)c;
    (void)db_pool_trim(d->db, POOL_IDLE_MS);
    malloc_trim(0);
}

/* The chores and their cadences, each named once. first_ms staggers the 10 s chores so that
 * they do not all fall on one round. The order is the order within one round: the watchdog
 * first, before a chore can wait on the database (its period 0 means the deps' watchdog_ms:
 * systemd's WATCHDOG_USEC / 2; never when that is 0), then the schema check (on a connection of
 * its own, so before the others hold theirs; a refusal it makes skips them this round). */
static const struct chore {
    const char *name;
    double period_ms, first_ms;
    bool needs_db;
    void (*run)(const struct janitor_deps *d, struct db_conn *c);
} chores[JANITOR_CHORES] = {
    {"watchdog", 0, 0, false, ping_watchdog},             /* sd_notify WATCHDOG=1 */
    {"check schema", 1000, 1000, false, check_schema},    /* before the others take a conn */
    {"beat", FLEET_BEAT_MS, 0, true, beat},               /* this instance's part of the limits */
    {"fold counts", 500, 500, true, janitor_fold_counts}, /* stats stay a scan of a few rows */
    {"sweep leases", 1000, 500, true, sweep_leases},      /* expired leases, operations, deps */
    {"reload settings", 500, 500, true, reload_settings}, /* in case a NOTIFY was missed */
    {"seal rows", 10000, 1000, true, seal_rows},          /* rows listed in offlineq_unsealed */
    {"trim events", 10000, 500, true, trim_events},       /* the event log keeps 15 minutes */
    {"sample depth", 4000, 0, true, sample_depth},        /* twice per 10 s bucket: none missed */
    {"retention", 1000, 1500, true, retain},              /* OFFLINEQ_RETAIN_*_S: bounded rounds */
    {"release groups", 5000, 2500, true, release_groups}, /* a raced release of a group's head */
    {"expire keys", 1000, 2000, true, expire_keys},       /* OFFLINEQ_IDEMPOTENCY_TTL_S */
    {"rotate key", 1000, 1000, true, rotate_key},         /* OFFLINEQ_ENCRYPTION_KEY_PREVIOUS */
    {"trim heap", POOL_IDLE_MS, 5500, false, trim_heap},  /* idle connections, free heap */
};

static double period_ms(const struct janitor *j, int i)
{
    return chores[i].period_ms > 0 ? chores[i].period_ms : j->d.watchdog_ms;
}

static double next_due(const struct janitor *j)
{
    double due = j->due_ms[0];
    for (int i = 1; i < JANITOR_CHORES; i++)
        due = j->due_ms[i] < due ? j->due_ms[i] : due;
    return due;
}

/* Runs the chores that are due, the database ones on one connection (skipped this time when
 * the database is away), and sets when each runs next. */
static void run_due(struct janitor *j)
{
    double now = oq_now_ms();
    struct err e = {0};
    struct db_conn *c = NULL;
    bool tried = false;
    for (int i = 0; i < JANITOR_CHORES; i++) {
        if (j->due_ms[i] > now)
            continue;
        j->due_ms[i] = now + period_ms(j, i);
        if (chores[i].needs_db && !tried) {
            c = db_acquire(j->d.db, &e);
            tried = true;
        }
        if (!chores[i].needs_db || c != NULL)
            chores[i].run(&j->d, c);
    }
    if (c != NULL)
        db_release(j->d.db, c);
}

static void *janitor_main(void *arg)
{
    struct janitor *j = arg;
    pthread_mutex_lock(&j->t.mu);
    while (!thread_wait_ms(&j->t, next_due(j) - oq_now_ms())) {
        if (oq_now_ms() < next_due(j))
            continue; /* woken early */
        pthread_mutex_unlock(&j->t.mu);
        run_due(j);
        pthread_mutex_lock(&j->t.mu);
    }
    pthread_mutex_unlock(&j->t.mu);
    return NULL;
}

void janitor_start(struct janitor *j, const struct janitor_deps *deps)
{
    j->d = *deps;
    double now = oq_now_ms();
    for (int i = 0; i < JANITOR_CHORES; i++)
        j->due_ms[i] = period_ms(j, i) > 0 ? now + chores[i].first_ms : INFINITY;
    thread_init(&j->t);
    thread_start(&j->t, janitor_main, j);
}

void janitor_stop(struct janitor *j)
{
    thread_stop(&j->t);
    thread_close(&j->t);
}
