#include "engine/sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delivery/policy.h"
#include "engine/events.h"
#include "engine/monitor.h"
#include "store/settings.h"
#include "core/jsontext.h"
#include "core/log.h"
#include "store/leases.h"

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
    return json_pack("{s:i, s:i, s:i, s:i, s:i, s:o, s:I, s:b, s:I}", "processed",
                     total - pc->remaining, "succeeded", pc->succeeded, "failed", pc->failed,
                     "conflicts", pc->conflicts, "retried", pc->retried, "errors",
                     capped_errors(pc->errors), "errors_total", (json_int_t)n, "errors_truncated",
                     n > SYNC_ERRORS_MAX, "duration_ms", (json_int_t)ms);
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
    pthread_mutex_lock(&s->t.mu);
    struct sync_waiter *due = take_due(s, all);
    json_t *result = json_incref(s->last_result);
    unsigned long passes = s->passes;
    pthread_mutex_unlock(&s->t.mu);
    while (due) {
        struct sync_waiter *w = due;
        due = due->next;
        w->done(w->ctx, passes >= w->pass ? result : NULL);
        free(w);
    }
    json_decref(result);
}

/* Stores the pass in offlineq_settings so every instance shows it. */
static void persist(const struct sync_deps *d, json_t *result)
{
    struct err e = {0};
    struct db_conn *c = db_acquire(d->db, &e);
    if (c == NULL)
        return;
    char at[40];
    oq_utc_now(at, sizeof(at), 6);
    json_t *rec = json_pack("{s:s, s:O}", "at", at, "result", result);
    char *text = jsontext(rec);
    json_decref(rec);
    if (settings_store(c, "last_sync", text, &e) == 0)
        settings_reload(d->settings, c, &e);
    free(text);
    db_release(d->db, c);
}

/* Polls the pass's operations until none is left to do (or the instance stops). */
static json_t *follow(struct sync_engine *s, const char *ids, const char *start, int total)
{
    const struct sync_deps *d = &s->d;
    struct pass_counts pc = {.remaining = total};
    double t0 = oq_now_ms(), last_progress_ms = 0;
    while (pc.remaining > 0) {
        pthread_mutex_lock(&s->t.mu);
        bool stop = thread_wait_ms(&s->t, 100);
        pthread_mutex_unlock(&s->t.mu);
        if (stop)
            break;
        finish_waiters(s, false); /* the ones whose time is up */
        struct err e = {0};
        struct db_conn *c = db_acquire(d->db, &e);
        if (c == NULL)
            continue;
        int rc = leases_pass_progress(c, ids, start, &pc, &e);
        db_release(d->db, c);
        if (rc != 0)
            continue;
        pthread_mutex_lock(&s->t.mu);
        bool moved = s->done != total - pc.remaining;
        s->done = total - pc.remaining;
        pthread_mutex_unlock(&s->t.mu);
        if (moved && oq_now_ms() - last_progress_ms >= 500) { /* at most two a second */
            events_emit(d->events, "sync.progress",
                        json_pack("{s:i, s:i}", "done", total - pc.remaining, "total", total));
            last_progress_ms = oq_now_ms();
        }
    }
    json_t *result = result_json(&pc, total, oq_now_ms() - t0);
    json_decref(pc.errors);
    return result;
}

static void run_pass(struct sync_engine *s)
{
    const struct sync_deps *d = &s->d;
    char paused[1024], start[40];
    policy_paused(d->policy, paused, sizeof(paused));
    char *ids = NULL;
    int total = 0;
    struct err e = {0};
    struct db_conn *c = db_acquire(d->db, &e);
    int rc = c ? leases_snapshot_due(c, paused, &ids, &total, start, &e) : -1;
    if (c != NULL)
        db_release(d->db, c);
    if (rc != 0) {
        log_warn("sync pass could not start: %s", e.message);
        return;
    }
    pthread_mutex_lock(&s->t.mu);
    s->ids = oq_strdup(ids);
    snprintf(s->start, sizeof(s->start), "%s", start);
    s->total = total;
    s->done = 0;
    s->running = true;
    pthread_mutex_unlock(&s->t.mu);
    log_json(LOG_INFO, "sync started",
             json_pack("{s:s, s:i}", "event", "sync.started", "total", total));
    events_emit(d->events, "sync.started", json_pack("{s:i}", "total", total));
    if (s->on_pass_start != NULL)
        s->on_pass_start(s->on_pass_start_arg);
    json_t *result = follow(s, ids, start, total);
    log_json(LOG_INFO, "sync finished",
             json_pack("{s:s, s:O}", "event", "sync.finished", "result", result));
    events_emit(d->events, "sync.finished", json_incref(result));
    persist(d, result);
    pthread_mutex_lock(&s->t.mu);
    free(s->ids);
    s->ids = NULL;
    s->running = false;
    json_decref(s->last_result);
    s->last_result = result;
    s->passes++;
    s->last_end_ms = oq_now_ms();
    pthread_cond_broadcast(&s->t.cv);
    pthread_mutex_unlock(&s->t.mu);
    finish_waiters(s, false);
    free(ids);
}

/* Periodic passes: every interval_s while auto-sync is on and the network is up. */
static bool periodic_due(struct sync_engine *s)
{
    int interval = settings_interval_s(s->d.settings);
    return interval > 0 && settings_auto_sync(s->d.settings) && monitor_is_online(s->d.monitor) &&
           oq_now_ms() - s->last_end_ms >= interval * 1000.0;
}

static void *sync_main(void *arg)
{
    struct sync_engine *s = arg;
    pthread_mutex_lock(&s->t.mu);
    while (!thread_stopping(&s->t)) {
        if (!s->wanted)
            thread_wait_ms(&s->t, 500);
        bool go = s->wanted;
        s->wanted = false;
        pthread_mutex_unlock(&s->t.mu);
        if (go || periodic_due(s))
            run_pass(s);
        finish_waiters(s, false);
        pthread_mutex_lock(&s->t.mu);
    }
    pthread_mutex_unlock(&s->t.mu);
    return NULL;
}

void sync_on_pass_start(struct sync_engine *s, void (*fn)(void *arg), void *arg)
{
    s->on_pass_start = fn;
    s->on_pass_start_arg = arg;
}

void sync_init(struct sync_engine *s, const struct sync_deps *deps)
{
    s->d = *deps;
    thread_init(&s->t);
    s->last_end_ms = oq_now_ms();
}

void sync_start(struct sync_engine *s)
{
    thread_start(&s->t, sync_main, s);
}

void sync_stop(struct sync_engine *s)
{
    if (!s->t.started)
        return;
    thread_stop(&s->t);
    finish_waiters(s, true);
}

void sync_close(struct sync_engine *s)
{
    if (s->d.db == NULL) /* start-up failed before sync_init */
        return;
    json_decref(s->last_result);
    free(s->ids);
    thread_close(&s->t);
}

int sync_request(struct sync_engine *s, unsigned long *pass, struct err *e)
{
    if (!monitor_is_online(s->d.monitor))
        return err_set(e, ERR_OFFLINE, "the network is offline: nothing can be synced now");
    pthread_mutex_lock(&s->t.mu);
    int rc = 0;
    if (s->running || s->wanted)
        rc = err_set(e, ERR_SYNC_IN_PROGRESS, "a sync pass is already running");
    else {
        s->wanted = true;
        *pass = s->passes + 1;
        pthread_cond_broadcast(&s->t.cv);
    }
    pthread_mutex_unlock(&s->t.mu);
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
    pthread_mutex_lock(&s->t.mu);
    w->next = s->waiters;
    s->waiters = w;
    bool stopping = thread_stopping(&s->t);
    bool now = s->passes >= pass || stopping || s->waiters_closed || timeout_s <= 0;
    bool all = stopping || s->waiters_closed;
    pthread_mutex_unlock(&s->t.mu);
    if (now)
        finish_waiters(s, all);
}

void sync_release_waiters(struct sync_engine *s)
{
    pthread_mutex_lock(&s->t.mu);
    s->waiters_closed = true;
    pthread_mutex_unlock(&s->t.mu);
    finish_waiters(s, true);
}

json_t *sync_progress(struct sync_engine *s)
{
    pthread_mutex_lock(&s->t.mu);
    json_t *p = s->running ? json_pack("{s:i, s:i}", "done", s->done, "total", s->total) : NULL;
    pthread_mutex_unlock(&s->t.mu);
    return p;
}

bool sync_is_running(struct sync_engine *s)
{
    pthread_mutex_lock(&s->t.mu);
    bool r = s->running || s->wanted;
    pthread_mutex_unlock(&s->t.mu);
    return r;
}

char *sync_pass_ids(void *arg)
{
    struct sync_engine *s = arg;
    pthread_mutex_lock(&s->t.mu);
    char *ids = s->running && s->ids ? oq_strdup(s->ids) : NULL;
    pthread_mutex_unlock(&s->t.mu);
    return ids;
}
