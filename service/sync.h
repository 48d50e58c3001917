/* Sync passes: one pass runs every operation that is due when it starts (also with auto-sync
 * stopped) and reports what became of them. Passes start on request, when the network comes
 * back, and every sync_interval_s while auto-sync is on. One pass at a time per instance. */
#ifndef OQ_SYNC_H
#define OQ_SYNC_H

#include <jansson.h>
#include <pthread.h>

#include "err.h"

struct app;

struct sync_engine {
    struct app *app;
    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    bool wanted;          /* a pass was asked for */
    bool running;
    char *ids;            /* uuid[] literal of the running pass's operations */
    char start[40];
    int total, done;
    double started_ms;
    double last_end_ms;
    unsigned long passes; /* finished passes */
    json_t *last_result;  /* of the last finished pass on this instance */
};

void sync_start(struct sync_engine *s, struct app *app);
void sync_stop(struct sync_engine *s);

/* Asks for a pass now. ERR_OFFLINE when offline, ERR_SYNC_IN_PROGRESS when one runs; on
 * success *pass is the number the pass will have when finished (for sync_wait). */
int sync_request(struct sync_engine *s, unsigned long *pass, struct err *e) OQ_MUSTCHECK;

/* Waits up to timeout_s for pass to finish; returns its result (new reference) or NULL when
 * it is still running. */
json_t *sync_wait(struct sync_engine *s, unsigned long pass, double timeout_s);

/* {"done","total"} of the running pass (new reference), or NULL when none runs. */
json_t *sync_progress(struct sync_engine *s);
bool sync_is_running(struct sync_engine *s);

/* The ids of the running pass (malloc'd) for workers that only run pass work, or NULL. */
char *sync_pass_ids(struct sync_engine *s);

#endif
