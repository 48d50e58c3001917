#include "store/fleet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static const struct db_stmt beat_stmt = {
    "fleet_beat",
    "SELECT rank, live, settled FROM offlineq_instance_beat($1, $2::int, $3::int, $4::jsonb)"};
static const struct db_stmt rates_stmt = {"fleet_rates",
                                          "SELECT offlineq_fleet_rates($1::int)::text"};
static const struct db_stmt leave_stmt = {"fleet_leave", "SELECT offlineq_instance_leave($1)"};
static const struct db_stmt open_stmt = {"fleet_breaker_open",
                                         "SELECT offlineq_breaker_open($1, $2::int, $3)"};
static const struct db_stmt close_stmt = {"fleet_breaker_close",
                                          "SELECT offlineq_breaker_close($1)"};
static const struct db_stmt hold_stmt = {"fleet_upstream_hold",
                                         "SELECT offlineq_upstream_hold($1, $2::int, $3)"};
static const struct db_stmt probe_stmt = {"fleet_breaker_probe",
                                          "SELECT offlineq_breaker_probe($1, $2::int, $3)"};

int fleet_beat(struct db_conn *c, const char *id, int ttl_ms, int settle_ms, const char *rates,
               struct fleet_place *out, struct err *e)
{
    char ttl[16], settle[16];
    snprintf(ttl, sizeof(ttl), "%d", ttl_ms);
    snprintf(settle, sizeof(settle), "%d", settle_ms);
    const char *params[] = {id, ttl, settle, rates};
    PGresult *r = db_exec(c, &beat_stmt, 4, params, e);
    if (r == NULL)
        return -1;
    out->rank = atoi(PQgetvalue(r, 0, 0));
    out->live = atoi(PQgetvalue(r, 0, 1));
    out->settled = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
    PQclear(r);
    return 0;
}

int fleet_leave(struct db_conn *c, const char *id, struct err *e)
{
    const char *params[] = {id};
    return db_run(c, &leave_stmt, 1, params, e);
}

/* One of the boolean breaker functions: its answer into *out. */
static int ask(struct db_conn *c, const struct db_stmt *s, int n, const char *const *params,
               bool *out, struct err *e)
{
    PGresult *r = db_exec(c, s, n, params, e);
    if (r == NULL)
        return -1;
    *out = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return 0;
}

int fleet_breaker_open(struct db_conn *c, const char *upstream, int cooldown_ms, const char *by,
                       bool *changed, struct err *e)
{
    char ms[16];
    snprintf(ms, sizeof(ms), "%d", cooldown_ms);
    const char *params[] = {upstream, ms, by};
    return ask(c, &open_stmt, 3, params, changed, e);
}

int fleet_breaker_close(struct db_conn *c, const char *upstream, bool *changed, struct err *e)
{
    const char *params[] = {upstream};
    return ask(c, &close_stmt, 1, params, changed, e);
}

int fleet_breaker_probe(struct db_conn *c, const char *upstream, int probe_ms, const char *by,
                        bool *granted, struct err *e)
{
    char ms[16];
    snprintf(ms, sizeof(ms), "%d", probe_ms);
    const char *params[] = {upstream, ms, by};
    return ask(c, &probe_stmt, 3, params, granted, e);
}

int fleet_upstream_hold(struct db_conn *c, const char *upstream, int hold_ms, const char *by,
                        struct err *e)
{
    char ms[16];
    snprintf(ms, sizeof(ms), "%d", hold_ms);
    const char *params[] = {upstream, ms, by};
    bool stored;
    return ask(c, &hold_stmt, 3, params, &stored, e);
}

json_t *fleet_rates(struct db_conn *c, int ttl_ms, struct err *e)
{
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%d", ttl_ms);
    const char *params[] = {ttl};
    PGresult *r = db_exec(c, &rates_stmt, 1, params, e);
    if (r == NULL)
        return NULL;
    json_t *rates = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
    PQclear(r);
    return rates ? rates : json_object();
}
