/* Group commit for single enqueues: concurrent POST /api/offline/queue requests of simple
 * operations are parked (no thread held) and stored together by a few flusher threads, one
 * statement and one commit for everything that arrived while the previous commit ran. A 201
 * still means committed: each request is answered only after its group's COMMIT. */
#ifndef OQ_COALESCE_H
#define OQ_COALESCE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "api/prefer.h"

#define COALESCE_FLUSHERS                                                                          \
    1 /* measured: one flusher makes the largest groups; 2 and 4 were                              \
       * slower (bench/) */

struct app;
struct op_new;
struct request;
struct coalesce_item;

/* In the caller's memory (struct api); the fields are private to coalesce.c. */
struct coalesce {
    struct app *app; /* borrowed: the pool, the counters and the workers to wake */
    pthread_t th[COALESCE_FLUSHERS];
    bool started, stopping;
    pthread_mutex_t mu; /* the queue, stopping */
    pthread_cond_t cv;
    struct coalesce_item *head, **tail; /* owned: the parked requests, oldest first */
    size_t queued;
    pthread_t waker;     /* tells the other instances, apart from the flusher's cycle */
    pthread_cond_t woke; /* wake_pending was set, or stopping */
    bool wake_pending;   /* groups were stored since the waker last told the others */
};

/* Sets *c up for app (borrowed, must outlive c). */
void coalesce_init(struct coalesce *c, struct app *app);
void coalesce_start(struct coalesce *c);
/* Stores what is queued, answers it, then stops the flushers (after http_stop). */
void coalesce_stop(struct coalesce *c);
/* Frees what coalesce_init set up (after coalesce_stop). */
void coalesce_close(struct coalesce *c);

/* Parks r and queues op (stolen; a simple operation, see ops_is_simple). r is answered
 * 201 with the operation (ret PREFER_RETURN_MINIMAL: with its id alone, op->ids_only set), or
 * with the error, once its group is stored. r holds room for one
 * operation (pending_reserve); the flusher settles it once the group is stored. Thread-safe. */
void coalesce_submit(struct coalesce *c, struct request *r, struct op_new *op,
                     enum prefer_return ret);

#endif
