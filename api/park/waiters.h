/* Prefer: wait=N on enqueue: the request is parked (no thread held) until its operation
 * finishes or N seconds pass; one thread polls the database for all parked requests. */
#ifndef OQ_WAITERS_H
#define OQ_WAITERS_H

#include "api/http.h"

void waiters_start(struct app *a);
/* Answers every parked request now (202 with the operation as it is), then stops. */
void waiters_release_all(void);
void waiters_stop(void);

/* Parks r until operation id is completed, failed or conflict (200 with it) or wait_s pass
 * (202 with it). pending_json (stolen) is the answer should the database be unreachable. */
void waiters_park(struct request *r, const char *id, double wait_s, char *pending_json);

/* Parses "wait=N" out of a Prefer header; returns N (capped at 30) or -1. */
double waiters_prefer_wait(const char *prefer);

#endif
