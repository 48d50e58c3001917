#include "engine/janitor.h"

#include <malloc.h>
#include <stdlib.h>

#include "core/common.h"
#include "core/log.h"
#include "core/pending.h"
#include "engine/workers.h"
#include "store/db.h"
#include "store/events.h"
#include "store/leases.h"
#include "store/maintenance.h"
#include "store/secretbox.h"
#include "store/settings.h"

#define SEAL_BATCH 500 /* rows a sealing round looks at */

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

/* Gives freed heap back to the system: RSS follows the load down. */
static void trim_heap(const struct janitor_deps *d, struct db_conn *c)
{
    (void)d;
    (void)c;
    malloc_trim(0);
}

/* The chores and their cadences, each named once. first_ms staggers the 10 s chores so that
 * they do not all fall on one round. The order is the order within one round. */
static const struct chore {
    const char *name;
    double period_ms, first_ms;
    bool needs_db;
    void (*run)(const struct janitor_deps *d, struct db_conn *c);
} chores[JANITOR_CHORES] = {
    {"fold counts", 500, 500, true, janitor_fold_counts}, /* stats stay a scan of a few rows */
    {"sweep leases", 1000, 500, true, sweep_leases},      /* expired leases, operations, deps */
    {"reload settings", 500, 500, true, reload_settings}, /* in case a NOTIFY was missed */
    {"seal rows", 10000, 1000, true, seal_rows},          /* rows listed in offlineq_unsealed */
    {"trim events", 10000, 500, true, trim_events},       /* the event log keeps 15 minutes */
    {"trim heap", 10000, 5500, false, trim_heap},
};

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
        j->due_ms[i] = now + chores[i].period_ms;
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
        j->due_ms[i] = now + chores[i].first_ms;
    thread_init(&j->t);
    thread_start(&j->t, janitor_main, j);
}

void janitor_stop(struct janitor *j)
{
    thread_stop(&j->t);
    thread_close(&j->t);
}
