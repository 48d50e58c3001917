/* The deployment as the database sees it: the live delivering instances (each one's rank and
 * their number divide the upstreams' limits between them) and the circuit breakers every
 * instance shares (the settings row upstream_breakers; migration 015). */
#ifndef OQ_FLEET_H
#define OQ_FLEET_H

#include <stdbool.h>

#include <jansson.h>

#include "store/db.h"

/* Where one instance stands among the live ones after its beat. */
struct fleet_place {
    int rank;     /* 0-based, by instance id */
    int live;     /* live instances counted, itself included */
    bool settled; /* old enough that the others count it: its part is its own to use */
};

/* Beats for id, storing its delivery rates (a JSON object {"upstream": per second}): instances
 * not seen for ttl_ms are dead; every live one counts; one is settled once it is settle_ms old. */
int fleet_beat(struct db_conn *c, const char *id, int ttl_ms, int settle_ms, const char *rates,
               struct fleet_place *out, struct err *e) OQ_MUSTCHECK;
/* The deployment's delivery rates, {"upstream": per second} summed over the instances seen
 * within ttl_ms (new; NULL with *e on a database error). */
json_t *fleet_rates(struct db_conn *c, int ttl_ms, struct err *e);
/* id stops: the others take its part at their next beat. */
int fleet_leave(struct db_conn *c, const char *id, struct err *e) OQ_MUSTCHECK;

/* Opens the shared breaker of upstream for cooldown_ms (again, after a failed probe); *changed:
 * it was closed (upstream.breaker_opened was recorded). */
int fleet_breaker_open(struct db_conn *c, const char *upstream, int cooldown_ms, const char *by,
                       bool *changed, struct err *e) OQ_MUSTCHECK;
/* Closes it; *changed: it was open (upstream.breaker_closed was recorded). */
int fleet_breaker_close(struct db_conn *c, const char *upstream, bool *changed,
                        struct err *e) OQ_MUSTCHECK;
/* Holds upstream for the deployment for hold_ms (a Retry-After); only extends a hold. */
int fleet_upstream_hold(struct db_conn *c, const char *upstream, int hold_ms, const char *by,
                        struct err *e) OQ_MUSTCHECK;
/* May by send the half-open probe now (*granted)? Then it is by's for probe_ms. */
int fleet_breaker_probe(struct db_conn *c, const char *upstream, int probe_ms, const char *by,
                        bool *granted, struct err *e) OQ_MUSTCHECK;

#endif
