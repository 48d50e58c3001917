/* Sync passes: one pass runs every operation that is due when it starts (also with auto-sync
 * stopped) and reports what became of them. Passes start on request, when the network comes
 * back, and every sync_interval_s while auto-sync is on. One pass at a time per instance. */
#ifndef OQ_SYNC_H
#define OQ_SYNC_H

#include <jansson.h>
#include <pthread.h>

#include "core/err.h"
#include "core/thread.h"

struct db_pool;
struct events;
struct monitor;
struct policy;
struct settings;

#define SYNC_ERRORS_MAX 100 /* a result lists this many errors at most (errors_total has all) */

/* A request waiting for a pass to finish (sync_park); no thread waits with it. */
struct sync_waiter {
    unsigned long pass;
    double deadline_ms;
    /* Called once, without the engine's lock: result (borrowed) is the pass's result, or NULL
     * when the time was up (or the instance stops) before the pass finished. */
    void (*done)(void *ctx, const json_t *result);
    void *ctx;
    struct sync_waiter *next;
};

/* What a pass uses, all borrowed (app.c fills it; they outlive the engine). */
struct sync_deps {
    struct db_pool *db;
    struct settings *settings; /* auto_sync, interval; last_sync is stored through it */
    struct policy *policy;     /* paused upstreams are left out of a pass */
    struct monitor *monitor;   /* no pass while offline */
    struct events *events;     /* sync.started / progress / finished */
};

struct sync_engine {
    struct sync_deps d;
    struct thread t;                  /* t.mu guards everything below */
    void (*on_pass_start)(void *arg); /* see sync_on_pass_start */
    void *on_pass_start_arg;
    bool wanted; /* a pass was asked for */
    bool running;
    char *ids; /* uuid[] literal of the running pass's operations */
    char start[40];
    int total, done;
    double started_ms;
    double last_end_ms;
    unsigned long passes;        /* finished passes */
    json_t *last_result;         /* of the last finished pass on this instance */
    struct sync_waiter *waiters; /* owned */
    bool waiters_closed;         /* released for shutdown: new waiters finish at once */
};

/* Registers fn(arg), called when a pass has taken its snapshot: its operations are due now
 * (app.c wires the workers' wake-up here, so sync need not know the workers). Call before
 * sync_start. */
void sync_on_pass_start(struct sync_engine *s, void (*fn)(void *arg), void *arg);

/* Sets up the engine (its lock; deps is copied, what it points to borrowed) without starting
 * its thread: the workers ask sync_pass_ids from their first claim, so it is ready first. */
void sync_init(struct sync_engine *s, const struct sync_deps *deps);

/* Starts the engine's thread (after sync_init). */
void sync_start(struct sync_engine *s);
/* Stops the thread and answers its waiters; sync_pass_ids still works until sync_close. */
void sync_stop(struct sync_engine *s);
/* Frees what sync_init set up: after the workers stopped (their claims read sync_pass_ids). */
void sync_close(struct sync_engine *s);

/* Asks for a pass now. ERR_OFFLINE when offline, ERR_SYNC_IN_PROGRESS when one runs; on
 * success *pass is the number the pass will have when finished (for sync_park). */
int sync_request(struct sync_engine *s, unsigned long *pass, struct err *e) OQ_MUSTCHECK;

/* Calls done(ctx, result) when pass finishes, or done(ctx, NULL) after timeout_s; at once when
 * it has finished already or the instance stops. done runs on the engine's thread (or the
 * caller's). */
void sync_park(struct sync_engine *s, unsigned long pass, double timeout_s,
               void (*done)(void *ctx, const json_t *result), void *ctx);
/* Finishes every waiter now (with NULL unless its pass is done); later ones finish at once. */
void sync_release_waiters(struct sync_engine *s);

/* result with errors capped as this version writes it (a last_result stored by an older one may
 * list them all); a new reference, result itself when it needs nothing. */
json_t *sync_result_capped(const json_t *result);

/* {"done","total"} of the running pass (new reference), or NULL when none runs. */
json_t *sync_progress(struct sync_engine *s);
bool sync_is_running(struct sync_engine *s);

/* The ids of the running pass (malloc'd) for workers that only run pass work, or NULL. The
 * shape of workers' pass_ids getter: arg is the struct sync_engine. */
char *sync_pass_ids(void *arg);

#endif
