#include "api/park/coalesce.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/parse.h"
#include "api/reply.h"
#include "app.h"
#include "core/log.h"
#include "store/ops.h"

#define GROUP_MAX 1000

struct coalesce_item {
    struct request *r;
    struct op_new op;      /* owned */
    struct op_created out; /* out.json owned until the reply */
    struct err e;
    enum prefer_return ret;
    bool failed;
    struct coalesce_item *next;
};

static void item_free(struct coalesce_item *it)
{
    api_op_new_free(&it->op);
    free(it->out.json);
    free(it);
}

static void on_resume(struct request *r)
{
    struct coalesce_item *it = r->resume_ctx;
    r->resume_ctx = NULL;
    if (it->failed) {
        reply_err(r, &it->e);
    } else if (it->ret == PREFER_RETURN_MINIMAL) {
        char body[64];
        snprintf(body, sizeof(body), "{\"id\":\"%s\",\"created\":true}", it->out.id);
        reply_location(r, "/api/offline/queue/", it->out.id);
        reply_header(r, "Preference-Applied", "return=minimal");
        reply_json_text(r, 201, oq_strdup(body));
    } else {
        reply_location(r, "/api/offline/queue/", it->out.id);
        if (it->ret == PREFER_RETURN_REPRESENTATION)
            reply_header(r, "Preference-Applied", "return=representation");
        reply_json_text(r, 201, it->out.json);
        it->out.json = NULL;
    }
    item_free(it);
}

void coalesce_submit(struct coalesce *co, struct request *r, struct op_new *op,
                     enum prefer_return ret)
{
    struct coalesce_item *it = oq_calloc(1, sizeof(*it));
    it->r = r;
    it->ret = ret;
    it->op = *op;
    *op = (struct op_new){0};
    r->resume_ctx = it;
    http_suspend(r, on_resume);
    pthread_mutex_lock(&co->mu);
    *co->tail = it;
    co->tail = &it->next;
    co->queued++;
    pthread_cond_signal(&co->cv);
    pthread_mutex_unlock(&co->mu);
}

/* Up to GROUP_MAX queued items, oldest first; NULL once stopping and drained. */
static struct coalesce_item *take_group(struct coalesce *co, size_t *n)
{
    pthread_mutex_lock(&co->mu);
    while (co->head == NULL && !co->stopping)
        pthread_cond_wait(&co->cv, &co->mu);
    struct coalesce_item *first = co->head, *last = NULL;
    *n = 0;
    for (struct coalesce_item *it = co->head; it != NULL && *n < GROUP_MAX; it = it->next) {
        last = it;
        (*n)++;
    }
    if (last != NULL) {
        co->head = last->next;
        last->next = NULL;
        if (co->head == NULL)
            co->tail = &co->head;
        co->queued -= *n;
    }
    pthread_mutex_unlock(&co->mu);
    return first;
}

/* One statement for the group; should the database refuse it for a reason other than being
 * away, each operation goes on its own so that one bad row fails only its own request. */
static void store_group(struct coalesce *co, struct coalesce_item *group, size_t n)
{
    struct op_new *ops = oq_calloc(n, sizeof(*ops));
    struct op_created *out = oq_calloc(n, sizeof(*out));
    size_t i = 0;
    for (struct coalesce_item *it = group; it; it = it->next)
        ops[i++] = it->op;
    struct err e = {0};
    struct db_conn *c = db_acquire(&co->app->db, &e);
    int rc = c ? ops_enqueue_many(c, ops, n, out, &e) : -1;
    i = 0;
    for (struct coalesce_item *it = group; it; it = it->next, i++) {
        if (rc == 0) {
            it->out = out[i];
        } else if (c != NULL && e.code != ERR_DB_UNAVAILABLE) {
            it->failed = ops_enqueue_many(c, &it->op, 1, &it->out, &it->e) != 0;
        } else {
            it->failed = true;
            it->e = e;
        }
    }
    if (c != NULL)
        db_release(&co->app->db, c);
    free(ops);
    free(out);
}

/* The other instances hear of stored groups from one thread of its own, so that the NOTIFY's
 * round trip never lengthens the flusher's cycle; groups stored while it was being sent are
 * announced by the next one. */
static void *waker_main(void *arg)
{
    struct coalesce *co = arg;
    pthread_mutex_lock(&co->mu);
    for (;;) {
        while (!co->wake_pending && !co->stopping)
            pthread_cond_wait(&co->woke, &co->mu);
        if (!co->wake_pending) /* stopping, and everything announced */
            break;
        co->wake_pending = false;
        pthread_mutex_unlock(&co->mu);
        struct err e = {0};
        struct db_conn *c = db_acquire(&co->app->db, &e);
        if (c != NULL) { /* else the database went away: their poll finds the work */
            ops_wake_others(c);
            db_release(&co->app->db, c);
        }
        pthread_mutex_lock(&co->mu);
    }
    pthread_mutex_unlock(&co->mu);
    return NULL;
}

static void wake_others(struct coalesce *co)
{
    pthread_mutex_lock(&co->mu);
    co->wake_pending = true;
    pthread_cond_signal(&co->woke);
    pthread_mutex_unlock(&co->mu);
}

static void *flusher_main(void *arg)
{
    struct coalesce *co = arg;
    size_t n;
    struct coalesce_item *group;
    while ((group = take_group(co, &n)) != NULL) {
        store_group(co, group, n);
        bool any = false;
        for (struct coalesce_item *it = group, *next; it; it = next) {
            next = it->next;
            if (!it->failed)
                metrics_op(&co->app->metrics, it->op.operation_type, OPC_ENQUEUED, 1);
            pending_settle(&co->app->pending, 1, it->failed ? 0 : 1, it->out.xid);
            any |= !it->failed;
            http_resume(it->r); /* on_resume replies and frees it */
        }
        if (any) {
            workers_nudge(&co->app->workers); /* a full claim wakes the next worker */
            wake_others(co);
        }
    }
    return NULL;
}

void coalesce_init(struct coalesce *co, struct app *app)
{
    *co = (struct coalesce){.app = app};
    co->tail = &co->head;
    pthread_mutex_init(&co->mu, NULL);
    pthread_cond_init(&co->cv, NULL);
    pthread_cond_init(&co->woke, NULL);
}

void coalesce_start(struct coalesce *co)
{
    co->stopping = false;
    for (int i = 0; i < COALESCE_FLUSHERS; i++)
        pthread_create(&co->th[i], NULL, flusher_main, co);
    pthread_create(&co->waker, NULL, waker_main, co);
    co->started = true;
}

void coalesce_close(struct coalesce *co)
{
    pthread_cond_destroy(&co->woke);
    pthread_cond_destroy(&co->cv);
    pthread_mutex_destroy(&co->mu);
}

void coalesce_stop(struct coalesce *co)
{
    if (!co->started)
        return;
    pthread_mutex_lock(&co->mu);
    co->stopping = true;
    pthread_cond_broadcast(&co->cv);
    pthread_mutex_unlock(&co->mu);
    for (int i = 0; i < COALESCE_FLUSHERS; i++)
        pthread_join(co->th[i], NULL);
    pthread_mutex_lock(&co->mu); /* the flushers are done: the waker announces their last */
    pthread_cond_signal(&co->woke);
    pthread_mutex_unlock(&co->mu);
    pthread_join(co->waker, NULL);
    co->started = false;
}
