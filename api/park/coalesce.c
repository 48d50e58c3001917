#include "api/park/coalesce.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "api/reply.h"
#include "api/parse.h"

#define GROUP_MAX 1000
#define FLUSHERS 1 /* measured: one flusher makes the largest groups; 2 and 4 were slower (bench/) */

struct item {
    struct request *r;
    struct op_new op;      /* owned */
    struct op_created out; /* out.json owned until the reply */
    struct err e;
    bool failed;
    struct item *next;
};

static struct {
    struct app *app;
    pthread_t th[FLUSHERS];
    bool started, stopping;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct item *head, **tail;
    size_t queued;
} C = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void item_free(struct item *it)
{
    api_op_new_free(&it->op);
    free(it->out.json);
    free(it);
}

static void on_resume(struct request *r)
{
    struct item *it = r->resume_ctx;
    r->resume_ctx = NULL;
    if (it->failed) {
        reply_err(r, &it->e);
    } else {
        char loc[96];
        snprintf(loc, sizeof(loc), "/api/offline/queue/%s", it->out.id);
        reply_header(r, "Location", loc);
        reply_json_text(r, 201, it->out.json);
        it->out.json = NULL;
    }
    item_free(it);
}

void coalesce_submit(struct request *r, struct op_new *op)
{
    struct item *it = oq_calloc(1, sizeof(*it));
    it->r = r;
    it->op = *op;
    *op = (struct op_new){0};
    r->resume_ctx = it;
    http_suspend(r, on_resume);
    pthread_mutex_lock(&C.mu);
    *C.tail = it;
    C.tail = &it->next;
    C.queued++;
    pthread_cond_signal(&C.cv);
    pthread_mutex_unlock(&C.mu);
}

/* Up to GROUP_MAX queued items, oldest first; NULL once stopping and drained. */
static struct item *take_group(size_t *n)
{
    pthread_mutex_lock(&C.mu);
    while (C.head == NULL && !C.stopping)
        pthread_cond_wait(&C.cv, &C.mu);
    struct item *first = C.head, *last = NULL;
    *n = 0;
    for (struct item *it = C.head; it != NULL && *n < GROUP_MAX; it = it->next) {
        last = it;
        (*n)++;
    }
    if (last != NULL) {
        C.head = last->next;
        last->next = NULL;
        if (C.head == NULL)
            C.tail = &C.head;
        C.queued -= *n;
    }
    pthread_mutex_unlock(&C.mu);
    return first;
}

/* One statement for the group; should the database refuse it for a reason other than being
 * away, each operation goes on its own so that one bad row fails only its own request. */
static void store_group(struct item *group, size_t n)
{
    struct op_new *ops = oq_calloc(n, sizeof(*ops));
    struct op_created *out = oq_calloc(n, sizeof(*out));
    size_t i = 0;
    for (struct item *it = group; it; it = it->next)
        ops[i++] = it->op;
    struct err e = {0};
    struct db_conn *c = db_acquire(&C.app->db, &e);
    int rc = c ? ops_enqueue_many(c, ops, n, out, &e) : -1;
    i = 0;
    for (struct item *it = group; it; it = it->next, i++) {
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
        db_release(&C.app->db, c);
    free(ops);
    free(out);
}

static void *flusher_main(void *arg)
{
    size_t n;
    struct item *group;
    while ((group = take_group(&n)) != NULL) {
        store_group(group, n);
        bool any = false;
        for (struct item *it = group, *next; it; it = next) {
            next = it->next;
            if (!it->failed)
                metrics_op(&C.app->metrics, it->op.operation_type, OPC_ENQUEUED, 1);
            pending_settle(&C.app->pending, 1, it->failed ? 0 : 1, it->out.xid);
            any |= !it->failed;
            http_resume(it->r); /* on_resume replies and frees it */
        }
        if (any)
            workers_wake(&C.app->workers);
    }
    return NULL;
}

void coalesce_start(struct app *a)
{
    C.app = a;
    C.tail = &C.head;
    C.stopping = false;
    for (int i = 0; i < FLUSHERS; i++)
        pthread_create(&C.th[i], NULL, flusher_main, NULL);
    C.started = true;
}

void coalesce_stop(void)
{
    if (!C.started)
        return;
    pthread_mutex_lock(&C.mu);
    C.stopping = true;
    pthread_cond_broadcast(&C.cv);
    pthread_mutex_unlock(&C.mu);
    for (int i = 0; i < FLUSHERS; i++)
        pthread_join(C.th[i], NULL);
    C.started = false;
}
