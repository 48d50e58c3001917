#include "engine/sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "core/jsontext.h"
#include "core/log.h"
#include "store/leases.h"

static void wait_ms(struct sync_engine *s, int ms)
{
    struct timespec t;
    oq_deadline_ms(&t, ms);
    pthread_cond_timedwait(&s->cv, &s->mu, &t);
}

/* The first SYNC_ERRORS_MAX of the pass's errors (new reference). */
static json_t *capped_errors(const json_t *all)
{
    json_t *errors = json_array();
    for (size_t i = 0; i < json_array_size(all) && i < SYNC_ERRORS_MAX; i++)
        json_array_append(errors, json_array_get(all, i));
    return errors;
}

static json_t *result_json(const struct pass_counts *pc, int total, double ms)
{
    size_t n = json_array_size(pc->errors);
    return json_pack("{s:i, s:i, s:i, s:i, s:i, s:o, s:I, s:b, s:I}", "processed", total - pc->remaining,
                     "succeeded", pc->succeeded, "failed", pc->failed, "conflicts", pc->conflicts,
                     "retried", pc->retried, "errors", capped_errors(pc->errors),
                     "errors_total", (json_int_t)n, "errors_truncated", n > SYNC_ERRORS_MAX,
                     "duration_ms", (json_int_t)ms);
}

json_t *sync_result_capped(const json_t *result)
{
    if (!json_is_object(result) || json_object_get(result, "errors_total") != NULL)
        return json_incref((json_t *)result);
    json_t *copy = json_copy((json_t *)result); /* shallow: the shared errors are replaced */
    const json_t *all = json_object_get(result, "errors");
    size_t n = json_array_size(all);
    json_object_set_new(copy, "errors", capped_errors(all));
    json_object_set_new(copy, "errors_total", json_integer((json_int_t)n));
    json_object_set_new(copy, "errors_truncated", json_boolean(n > SYNC_ERRORS_MAX));
    return copy;
}

/* Takes out of the list the waiters that are done (their pass finished, their time is up, or
 * all when everything stops). Called with the lock held. */
static struct sync_waiter *take_due(struct sync_engine *s, bool all)
{
    struct sync_waiter *due = NULL, **p = &s->waiters;
    double now = oq_now_ms();
    while (*p) {
        struct sync_waiter *w = *p;
        if (all || s->passes >= w->pass || now >= w->deadline_ms) {
            *p = w->next;
            w->next = due;
            due = w;
        } else {
            p = &w->next;
        }
    }
    return due;
}

/* Answers the waiters that are due. Called without the lock. */
static void finish_waiters(struct sync_engine *s, bool all)
{
    pthread_mutex_lock(&s->mu);
    struct sync_waiter *due = take_due(s, all);
    json_t *result = json_incref(s->last_result);
    unsigned long passes = s->passes;
    pthread_mutex_unlock(&s->mu);
    while (due) {
        struct sync_waiter *w = due;
        due = due->next;
        w->done(w->ctx, passes >= w->pass ? result : NULL);
        free(w);
    }
    json_decref(result);
}

/* Stores the pass in offlineq_settings so every instance shows it. */
static void persist(struct app *a, json_t *result)
{
    struct err e = {0};
    struct db_conn *c = db_acquire(&a->db, &e);
    if (c == NULL)
        return;
    char at[40];
    oq_utc_now(at, sizeof(at), 6);
    json_t *rec = json_pack("{s:s, s:O}", "at", at, "result", result);
    char *text = jsontext(rec);
    json_decref(rec);
    if (settings_store(c, "last_sync", text, &e) == 0)
        settings_reload(&a->settings, c, &e);
    free(text);
    db_release(&a->db, c);
}

/* Polls the pass's operations until none is left to do (or the instance stops). */
static json_t *follow(struct sync_engine *s, const char *ids, const char *start, int total)
{
    struct app *a = s->app;
    struct pass_counts pc = {.remaining = total};
    double t0 = oq_now_ms(), last_progress_ms = 0;
    while (pc.remaining > 0) {
        pthread_mutex_lock(&s->mu);
        if (!s->stopping)
            wait_ms(s, 100);
        bool stop = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        finish_waiters(s, false); /* the ones whose time is up */
        struct err e = {0};
        struct db_conn *c = db_acquire(&a->db, &e);
        if (c == NULL)
            continue;
        int rc = leases_pass_progress(c, ids, start, &pc, &e);
        db_release(&a->db, c);
        if (rc != 0)
            continue;
        pthread_mutex_lock(&s->mu);
        bool moved = s->done != total - pc.remaining;
        s->done = total - pc.remaining;
        pthread_mutex_unlock(&s->mu);
        if (moved && oq_now_ms() - last_progress_ms >= 500) { /* at most two a second */
            events_emit(a, "sync.progress", json_pack("{s:i, s:i}", "done", total - pc.remaining, "total", total));
            last_progress_ms = oq_now_ms();
        }
    }
    json_t *result = result_json(&pc, total, oq_now_ms() - t0);
    json_decref(pc.errors);
    return result;
}

static void run_pass(struct sync_engine *s)
{
    struct app *a = s->app;
    char paused[1024], start[40];
    policy_paused(&a->policy, paused, sizeof(paused));
    char *ids = NULL;
    int total = 0;
    struct err e = {0};
    struct db_conn *c = db_acquire(&a->db, &e);
    int rc = c ? leases_snapshot_due(c, paused, &ids, &total, start, &e) : -1;
    if (c != NULL)
        db_release(&a->db, c);
    if (rc != 0) {
        log_warn("sync pass could not start: %s", e.message);
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->ids = oq_strdup(ids);
    snprintf(s->start, sizeof(s->start), "%s", start);
    s->total = total;
    s->done = 0;
    s->running = true;
    pthread_mutex_unlock(&s->mu);
    log_json(LOG_INFO, "sync started", json_pack("{s:s, s:i}", "event", "sync.started", "total", total));
    events_emit(a, "sync.started", json_pack("{s:i}", "total", total));
    workers_wake(&a->workers);
    json_t *result = follow(s, ids, start, total);
    log_json(LOG_INFO, "sync finished",
             json_pack("{s:s, s:O}", "event", "sync.finished", "result", result));
    events_emit(a, "sync.finished", json_incref(result));
    persist(a, result);
    pthread_mutex_lock(&s->mu);
    free(s->ids);
    s->ids = NULL;
    s->running = false;
    json_decref(s->last_result);
    s->last_result = result;
    s->passes++;
    s->last_end_ms = oq_now_ms();
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    finish_waiters(s, false);
    free(ids);
}

/* Periodic passes: every interval_s while auto-sync is on and the network is up. */
static bool periodic_due(struct sync_engine *s)
{
    struct app *a = s->app;
    int interval = settings_interval_s(&a->settings);
    return interval > 0 && settings_auto_sync(&a->settings) && monitor_is_online(&a->monitor) &&
           oq_now_ms() - s->last_end_ms >= interval * 1000.0;
}

static void *sync_main(void *arg)
{
    struct sync_engine *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        if (!s->wanted)
            wait_ms(s, 500);
        bool go = s->wanted;
        s->wanted = false;
        pthread_mutex_unlock(&s->mu);
        if (go || periodic_due(s))
            run_pass(s);
        finish_waiters(s, false);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

void sync_start(struct sync_engine *s, struct app *app)
{
    s->app = app;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->last_end_ms = oq_now_ms();
    s->started = pthread_create(&s->th, NULL, sync_main, s) == 0;
}

void sync_stop(struct sync_engine *s)
{
    if (!s->started)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    finish_waiters(s, true);
    json_decref(s->last_result);
    free(s->ids);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    s->started = false;
}

int sync_request(struct sync_engine *s, unsigned long *pass, struct err *e)
{
    if (!monitor_is_online(&s->app->monitor))
        return err_set(e, ERR_OFFLINE, "the network is offline: nothing can be synced now");
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    if (s->running || s->wanted)
        rc = err_set(e, ERR_SYNC_IN_PROGRESS, "a sync pass is already running");
    else {
        s->wanted = true;
        *pass = s->passes + 1;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void sync_park(struct sync_engine *s, unsigned long pass, double timeout_s,
               void (*done)(void *ctx, const json_t *result), void *ctx)
{
    struct sync_waiter *w = oq_calloc(1, sizeof(*w));
    w->pass = pass;
    w->deadline_ms = oq_now_ms() + timeout_s * 1000.0;
    w->done = done;
    w->ctx = ctx;
    pthread_mutex_lock(&s->mu);
    w->next = s->waiters;
    s->waiters = w;
    bool now = s->passes >= pass || s->stopping || s->waiters_closed || timeout_s <= 0;
    pthread_mutex_unlock(&s->mu);
    if (now)
        finish_waiters(s, s->stopping || s->waiters_closed);
}

void sync_release_waiters(struct sync_engine *s)
{
    pthread_mutex_lock(&s->mu);
    s->waiters_closed = true;
    pthread_mutex_unlock(&s->mu);
    finish_waiters(s, true);
}

json_t *sync_progress(struct sync_engine *s)
{
    pthread_mutex_lock(&s->mu);
    json_t *p = s->running ? json_pack("{s:i, s:i}", "done", s->done, "total", s->total) : NULL;
    pthread_mutex_unlock(&s->mu);
    return p;
}

bool sync_is_running(struct sync_engine *s)
{
    pthread_mutex_lock(&s->mu);
    bool r = s->running || s->wanted;
    pthread_mutex_unlock(&s->mu);
    return r;
}

char *sync_pass_ids(struct sync_engine *s)
{
    pthread_mutex_lock(&s->mu);
    char *ids = s->running && s->ids ? oq_strdup(s->ids) : NULL;
    pthread_mutex_unlock(&s->mu);
    return ids;
}
