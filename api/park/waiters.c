#include "api/park/waiters.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "store/ops.h"
#include "api/reply.h"
#include "core/pgarray.h"

#define PREFER_WAIT_MAX 30

struct waiter {
    struct request *r;
    char id[37];
    double deadline_ms;
    struct waiter *next;
};

static struct {
    struct app *app;
    pthread_t th;
    bool started, stopping;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct waiter *list;
} W = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

double waiters_prefer_wait(const char *prefer)
{
    if (prefer == NULL)
        return -1;
    /* Prefer: respond-async, wait=10 (RFC 7240): preferences are comma or ; separated */
    for (const char *p = prefer; (p = strcasestr(p, "wait")) != NULL; p += 4) {
        bool starts = p == prefer || strchr(" ,;", p[-1]) != NULL;
        const char *q = p + 4;
        while (*q == ' ')
            q++;
        if (!starts || *q != '=')
            continue;
        q++;
        while (*q == ' ')
            q++;
        if (!isdigit((unsigned char)*q))
            return -1;
        double v = strtod(q, NULL);
        return v > PREFER_WAIT_MAX ? PREFER_WAIT_MAX : v;
    }
    return -1;
}

static void on_resume(struct request *r)
{
    char *body = r->deferred_body;
    r->deferred_body = NULL;
    reply_json_text(r, r->deferred_status, body);
}

/* Finishes w: fetches the operation and resumes its request. Called without the lock. */
static void finish(struct waiter *w, struct db_conn *c, bool done)
{
    struct err e = {0};
    char *json = c ? ops_get(c, w->id, &e) : NULL;
    if (json != NULL) {
        free(w->r->deferred_body);
        w->r->deferred_body = json;
    }
    w->r->deferred_status = done ? 200 : 202;
    http_resume(w->r);
    free(w);
}

static const struct db_stmt done_stmt = {
    "waiters_done",
    "SELECT id::text FROM offline_operations WHERE id = ANY ($1::uuid[]) "
    "AND status IN ('completed', 'failed', 'conflict')"};

/* One round: which parked operations finished, whose time is up. */
static void poll_once(void)
{
    pthread_mutex_lock(&W.mu);
    struct waiter *all = W.list;
    W.list = NULL;
    pthread_mutex_unlock(&W.mu);
    if (all == NULL)
        return;
    struct pgarray ids_array;
    pgarray_init(&ids_array);
    for (struct waiter *w = all; w; w = w->next)
        pgarray_add(&ids_array, w->id);
    char *ids = pgarray_finish(&ids_array);
    struct err e = {0};
    struct db_conn *c = db_acquire(&W.app->db, &e);
    PGresult *res = c ? db_exec(c, &done_stmt, 1, (const char *const[]){ids}, &e) : NULL;
    double now = oq_now_ms();
    struct waiter *keep = NULL;
    while (all) {
        struct waiter *w = all;
        all = all->next;
        bool done = false;
        for (int i = 0; res && i < PQntuples(res) && !done; i++)
            done = strcmp(PQgetvalue(res, i, 0), w->id) == 0;
        if (done || now >= w->deadline_ms || W.stopping) {
            finish(w, c, done);
        } else {
            w->next = keep;
            keep = w;
        }
    }
    PQclear(res);
    if (c != NULL)
        db_release(&W.app->db, c);
    free(ids);
    pthread_mutex_lock(&W.mu);
    while (keep) {
        struct waiter *w = keep;
        keep = keep->next;
        w->next = W.list;
        W.list = w;
    }
    pthread_mutex_unlock(&W.mu);
}

static void *waiters_main(void *arg)
{
    pthread_mutex_lock(&W.mu);
    while (!W.stopping) {
        struct timespec t;
        oq_deadline_ms(&t, 50);
        pthread_cond_timedwait(&W.cv, &W.mu, &t);
        pthread_mutex_unlock(&W.mu);
        poll_once();
        pthread_mutex_lock(&W.mu);
    }
    pthread_mutex_unlock(&W.mu);
    return NULL;
}

void waiters_start(struct app *a)
{
    W.app = a;
    W.stopping = false;
    W.started = pthread_create(&W.th, NULL, waiters_main, NULL) == 0;
}

void waiters_release_all(void)
{
    pthread_mutex_lock(&W.mu);
    W.stopping = true;
    pthread_mutex_unlock(&W.mu);
    poll_once(); /* answers everyone: stopping */
}

void waiters_stop(void)
{
    if (!W.started)
        return;
    pthread_mutex_lock(&W.mu);
    W.stopping = true;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
    pthread_join(W.th, NULL);
    poll_once();
    W.started = false;
}

void waiters_park(struct request *r, const char *id, double wait_s, char *pending_json)
{
    struct waiter *w = oq_calloc(1, sizeof(*w));
    w->r = r;
    snprintf(w->id, sizeof(w->id), "%s", id);
    w->deadline_ms = oq_now_ms() + wait_s * 1000.0;
    r->deferred_body = pending_json;
    r->deferred_status = 202;
    http_suspend(r, on_resume);
    pthread_mutex_lock(&W.mu);
    bool stopping = W.stopping;
    w->next = W.list;
    W.list = w;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
    if (stopping)
        poll_once();
}
