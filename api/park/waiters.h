/* Prefer: wait=N on enqueue: the request is parked (no thread held) until its operation
 * finishes or N seconds pass; one thread polls the database for all parked requests. */
#ifndef OQ_WAITERS_H
#define OQ_WAITERS_H

#include <pthread.h>
#include <stdbool.h>

struct db_pool;
struct request;
struct waiter;

/* In the caller's memory (struct api); the fields are private to waiters.c. */
struct waiters {
    struct db_pool *db; /* borrowed */
    pthread_t th;
    bool started, stopping;
    pthread_mutex_t mu; /* list, stopping */
    pthread_cond_t cv;
    struct waiter *list; /* owned: the parked requests */
};

/* Sets *ws up to park requests whose operations live in db (borrowed, must outlive ws). */
void waiters_init(struct waiters *ws, struct db_pool *db);
/* Starts the polling thread. */
void waiters_start(struct waiters *ws);
/* Answers every parked request now (202 with the operation as it is); later parks answer at
 * once. Called while the server stops (http_stop's release_parked). */
void waiters_release_all(struct waiters *ws);
/* Stops the polling thread, answering whoever is still parked. */
void waiters_stop(struct waiters *ws);
/* Frees what waiters_init set up (after waiters_stop). */
void waiters_close(struct waiters *ws);

/* Parks r until operation id is completed, failed or conflict (200 with it) or wait_s pass
 * (202 with it). pending_json (stolen) is the answer should the database be unreachable, and
 * the answer itself unless refetch (Prefer: return=minimal sends the id alone: the operation
 * is then not read again). Thread-safe. */
void waiters_park(struct waiters *ws, struct request *r, const char *id, double wait_s,
                  char *pending_json, bool refetch);

/* Parses "wait=N" out of a Prefer header; returns N (capped at 30) or -1. */
double waiters_prefer_wait(const char *prefer);

#endif
