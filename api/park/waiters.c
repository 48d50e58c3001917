#include "api/park/waiters.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/http.h"
#include "api/reply.h"
#include "core/log.h"
#include "store/ops.h"
#include "store/waits.h"

#define PREFER_WAIT_MAX 30

struct waiter {
    struct request *r;
    char id[37];
    double deadline_ms;
    bool refetch; /* answer with the operation as it is then (not with the parked body) */
    struct waiter *next;
};

double waiters_prefer_wait(const char *prefer)
{
    if (prefer == NULL)
        return -1;
    /* Prefer: respond-async, wait=10 (RFC 7240): preferences are comma or ; separated */
    static const char name[] = "wait";
    for (const char *p = prefer; (p = strcasestr(p, name)) != NULL; p += sizeof(name) - 1) {
        bool starts = p == prefer || strchr(" ,;", p[-1]) != NULL;
        const char *q = p + sizeof(name) - 1;
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

/* Finishes w: fetches the operation and resumes its request. Called without the lock. */
static void finish(struct waiter *w, struct db_conn *c, bool done)
{
    struct err e = {0};
    char *json = c && w->refetch ? ops_get(c, w->id, &e) : NULL;
    if (json != NULL) {
        free(w->r->deferred_body);
        w->r->deferred_body = json;
    }
    w->r->deferred_status = done ? 200 : 202;
    http_resume(w->r);
    free(w);
}

/* Takes the whole parked list out from under the lock; its length in *n. */
static struct waiter *take_all(struct waiters *ws, size_t *n)
{
    pthread_mutex_lock(&ws->mu);
    struct waiter *all = ws->list;
    ws->list = NULL;
    pthread_mutex_unlock(&ws->mu);
    *n = 0;
    for (struct waiter *w = all; w; w = w->next)
        (*n)++;
    return all;
}

/* Parks the waiters of keep again. */
static void put_back(struct waiters *ws, struct waiter *keep)
{
    pthread_mutex_lock(&ws->mu);
    while (keep) {
        struct waiter *w = keep;
        keep = keep->next;
        w->next = ws->list;
        ws->list = w;
    }
    pthread_mutex_unlock(&ws->mu);
}

/* One round: which parked operations finished, whose time is up. Should the database not
 * answer, none counts as finished; the deadlines still hold. */
static void poll_once(struct waiters *ws)
{
    size_t n = 0;
    struct waiter *all = take_all(ws, &n);
    if (all == NULL)
        return;
    const char **ids = oq_calloc(n, sizeof(*ids));
    bool *done = oq_calloc(n, sizeof(*done));
    size_t i = 0;
    for (struct waiter *w = all; w; w = w->next)
        ids[i++] = w->id;
    struct err e = {0};
    struct db_conn *c = db_acquire(ws->db, &e);
    if (c != NULL)
        waits_finished(c, ids, n, done, &e);
    double now = oq_now_ms();
    struct waiter *keep = NULL;
    for (i = 0; all; i++) {
        struct waiter *w = all;
        all = all->next;
        if (done[i] || now >= w->deadline_ms || ws->stopping) {
            finish(w, c, done[i]);
        } else {
            w->next = keep;
            keep = w;
        }
    }
    if (c != NULL)
        db_release(ws->db, c);
    free(ids);
    free(done);
    put_back(ws, keep);
}

static void *waiters_main(void *arg)
{
    struct waiters *ws = arg;
    pthread_mutex_lock(&ws->mu);
    while (!ws->stopping) {
        struct timespec t;
        oq_deadline_ms(&t, 50);
        pthread_cond_timedwait(&ws->cv, &ws->mu, &t);
        pthread_mutex_unlock(&ws->mu);
        poll_once(ws);
        pthread_mutex_lock(&ws->mu);
    }
    pthread_mutex_unlock(&ws->mu);
    return NULL;
}

void waiters_init(struct waiters *ws, struct db_pool *db)
{
    *ws = (struct waiters){.db = db};
    pthread_mutex_init(&ws->mu, NULL);
    pthread_cond_init(&ws->cv, NULL);
}

void waiters_start(struct waiters *ws)
{
    ws->stopping = false;
    ws->started = pthread_create(&ws->th, NULL, waiters_main, ws) == 0;
}

void waiters_close(struct waiters *ws)
{
    pthread_cond_destroy(&ws->cv);
    pthread_mutex_destroy(&ws->mu);
}

void waiters_release_all(struct waiters *ws)
{
    pthread_mutex_lock(&ws->mu);
    ws->stopping = true;
    pthread_mutex_unlock(&ws->mu);
    poll_once(ws); /* answers everyone: stopping */
}

void waiters_stop(struct waiters *ws)
{
    if (!ws->started)
        return;
    pthread_mutex_lock(&ws->mu);
    ws->stopping = true;
    pthread_cond_broadcast(&ws->cv);
    pthread_mutex_unlock(&ws->mu);
    pthread_join(ws->th, NULL);
    poll_once(ws);
    ws->started = false;
}

void waiters_park(struct waiters *ws, struct request *r, const char *id, double wait_s,
                  char *pending_json, bool refetch)
{
    struct waiter *w = oq_calloc(1, sizeof(*w));
    w->r = r;
    w->refetch = refetch;
    snprintf(w->id, sizeof(w->id), "%s", id);
    w->deadline_ms = oq_now_ms() + wait_s * 1000.0;
    r->deferred_body = pending_json;
    r->deferred_status = 202;
    http_suspend(r, reply_deferred);
    pthread_mutex_lock(&ws->mu);
    bool stopping = ws->stopping;
    w->next = ws->list;
    ws->list = w;
    pthread_cond_broadcast(&ws->cv);
    pthread_mutex_unlock(&ws->mu);
    if (stopping)
        poll_once(ws);
}
