/* The janitor: one thread doing the housekeeping every instance shares, each chore on its own
 * cadence (janitor.c names them once, as PgBouncer's janitor.c does): fold counter deltas and
 * refresh the pending count, reload settings, sweep expired leases and operations, seal
 * plaintext rows, trim the event log, sample the queue depth for the history, expire
 * Idempotency-Key answers, give freed heap back to the system, check that the database's schema
 * is still one this binary can use (store/migrate.c: migrate_guard), and ping systemd's watchdog
 * (engine/sdnotify.h), so a janitor that hangs gets the service restarted; and beat for this
 * instance in the fleet (store/fleet.h), which divides the upstreams' limits. */
#ifndef OQ_JANITOR_H
#define OQ_JANITOR_H

#include "core/thread.h"

struct db_pool;
struct pending;
struct policy;
struct settings;
struct workers;

/* All borrowed; they outlive the janitor. */
struct metrics;

struct janitor_deps {
    struct db_pool *db;
    struct pending *pending; /* what OFFLINEQ_MAX_PENDING is checked against */
    struct settings *settings;
    struct workers *workers; /* woken when a sweep makes operations due again */
    struct metrics *metrics; /* offlineq_operations_deleted_total */
    int retain_completed_s;  /* OFFLINEQ_RETAIN_COMPLETED_S; 0: kept forever */
    int retain_failed_s;     /* OFFLINEQ_RETAIN_FAILED_S; 0: kept forever */
    int max_lease_expiries;  /* OFFLINEQ_MAX_LEASE_EXPIRIES */
    int idempotency_ttl_s;   /* OFFLINEQ_IDEMPOTENCY_TTL_S */
    double watchdog_ms;      /* WATCHDOG=1 this often (sdnotify_watchdog_period_ms); 0: never */
    const char *fleet_id;    /* beats as this instance (it delivers); NULL: takes no part */
    struct policy *policy;   /* takes the beat's place */
};

#define JANITOR_CHORES 14

struct janitor {
    struct janitor_deps d;
    struct thread t;
    double due_ms[JANITOR_CHORES]; /* when each chore runs next (oq_now_ms clock) */
};

/* One fold now, on the caller's thread (start-up: OFFLINEQ_MAX_PENDING holds from the first
 * request on). c is the caller's connection. */
struct db_conn;
void janitor_fold_counts(const struct janitor_deps *d, struct db_conn *c);

/* The fleet's timing: a beat every FLEET_BEAT_MS; an instance not seen for FLEET_TTL_MS is
 * dead (its part goes to the others); one uses its part FLEET_SETTLE_MS after its first beat
 * (two beats of the others, who count it from its first), or at once when it is alone. */
#define FLEET_BEAT_MS 500
#define FLEET_TTL_MS 3000
#define FLEET_SETTLE_MS 1000

/* Starts the thread; deps is copied. */
void janitor_start(struct janitor *j, const struct janitor_deps *deps);
void janitor_stop(struct janitor *j);

#endif
