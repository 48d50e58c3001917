/* How long until the pending work is delivered (eta_s of GET /upstreams and /sync/status): the
 * unfinished operations (pending and in_progress) of each upstream over the deployment's
 * delivery rate for it (the live instances' rates summed, store/fleet.h). The counts per
 * upstream read every unfinished row, so /sync/status, which pollers call often, takes them
 * from a cache of ETA_PENDING_MS. */
#ifndef OQ_ETA_H
#define OQ_ETA_H

#include <jansson.h>
#include <pthread.h>

#include "core/err.h"

#define ETA_PENDING_MS 2000.0

struct app;
struct upstream;

struct eta_cache {
    pthread_mutex_t mu;
    json_t *pending; /* {"upstream": count}, or NULL */
    double at_ms;    /* when it was read (oq_now_ms clock) */
};

void eta_cache_init(struct eta_cache *c);
void eta_cache_close(struct eta_cache *c);

/* What an estimate needs: {"upstream": unfinished} (fresh, or from cache when not NULL and young
 * enough) and {"upstream": deliveries per second} (new references). */
int eta_inputs(struct app *a, struct eta_cache *cache, json_t **pending, json_t **rates,
               struct err *e) OQ_MUSTCHECK;

/* Seconds until u's unfinished work is delivered: 0 with none; null while it cannot be
 * known (paused, its breaker not closed, held, auto-sync off with no pass running, or nothing
 * delivered in the last minute). */
json_t *eta_upstream(struct app *a, const struct upstream *u, json_t *pending, json_t *rates);

/* The same for all the configured upstreams: the longest of theirs (they drain side by side);
 * null when one with pending work has none, or this instance is offline. */
json_t *eta_total(struct app *a, json_t *pending, json_t *rates);

#endif
