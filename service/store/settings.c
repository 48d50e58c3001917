#include "store/settings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/vocab.h"

void settings_init(struct settings *s)
{
    pthread_mutex_init(&s->mu, NULL);
    s->auto_sync = true;
    s->interval_s = 60;
    s->strategy = STRATEGY_LOCAL_WINS;
    s->last_sync = NULL;
    s->paused = json_object();
    s->on_paused = NULL;
    s->on_paused_arg = NULL;
    s->on_breakers = NULL;
    s->on_holds = NULL;
    s->on_breakers_arg = NULL;
    s->reload_started = s->reload_applied = 0;
}

void settings_close(struct settings *s)
{
    json_decref(s->last_sync);
    json_decref(s->paused);
    pthread_mutex_destroy(&s->mu);
}

static const struct db_stmt seed_stmt = {
    "settings_seed", "INSERT INTO offlineq_settings (key, value) VALUES ('auto_sync', $1::jsonb), "
                     "('sync_interval_s', $2::jsonb), ('conflict_strategy', '\"local_wins\"') "
                     "ON CONFLICT (key) DO NOTHING"};

static const struct db_stmt load_stmt = {"settings_load",
                                         "SELECT key, value::text FROM offlineq_settings"};

static const struct db_stmt store_stmt = {
    "settings_store", "INSERT INTO offlineq_settings (key, value) VALUES ($1, $2::jsonb) "
                      "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()"};

int settings_seed(struct db_conn *c, bool auto_sync, int interval_s, struct err *e)
{
    char interval[16];
    snprintf(interval, sizeof(interval), "%d", interval_s);
    const char *params[] = {auto_sync ? "true" : "false", interval};
    return db_run(c, &seed_stmt, 2, params, e);
}

static void apply(struct settings *s, const char *key, json_t *v)
{
    if (strcmp(key, "auto_sync") == 0 && json_is_boolean(v))
        s->auto_sync = json_is_true(v);
    else if (strcmp(key, "sync_interval_s") == 0 && json_is_integer(v))
        s->interval_s = (int)json_integer_value(v);
    else if (strcmp(key, "conflict_strategy") == 0 && json_is_string(v))
        strategy_parse(json_string_value(v), &s->strategy); /* an unknown name changes nothing */
    else if (strcmp(key, "last_sync") == 0 && json_is_object(v)) {
        json_decref(s->last_sync);
        s->last_sync = json_incref(v);
    } else if (strcmp(key, "upstreams_paused") == 0 && json_is_object(v)) {
        json_decref(s->paused);
        s->paused = json_incref(v);
        if (s->on_paused != NULL)
            s->on_paused(s->on_paused_arg, s->paused);
    } else if (strcmp(key, "upstream_breakers") == 0 && json_is_object(v)) {
        if (s->on_breakers != NULL)
            s->on_breakers(s->on_breakers_arg, v);
    } else if (strcmp(key, "upstream_holds") == 0 && json_is_object(v)) {
        if (s->on_holds != NULL)
            s->on_holds(s->on_breakers_arg, v);
    }
}

/* Reloads run from several threads; a reload whose query started earlier sees older rows, so
 * it must not apply after a later one (a write's own reload would be undone). */
int settings_reload(struct settings *s, struct db_conn *c, struct err *e)
{
    pthread_mutex_lock(&s->mu);
    unsigned long long ticket = ++s->reload_started;
    pthread_mutex_unlock(&s->mu);
    PGresult *r = db_exec(c, &load_stmt, 0, NULL, e);
    if (r == NULL)
        return -1;
    pthread_mutex_lock(&s->mu);
    if (ticket < s->reload_applied) {
        pthread_mutex_unlock(&s->mu);
        PQclear(r);
        return 0;
    }
    s->reload_applied = ticket;
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *v = json_loads(PQgetvalue(r, i, 1), JSON_DECODE_ANY, NULL);
        if (v != NULL)
            apply(s, PQgetvalue(r, i, 0), v);
        json_decref(v);
    }
    pthread_mutex_unlock(&s->mu);
    PQclear(r);
    return 0;
}

static const struct db_stmt pause_stmt = {"settings_pause",
                                          "SELECT offlineq_upstream_pause($1, $2::boolean)"};

int settings_pause_upstream(struct db_conn *c, const char *name, bool is_paused, bool *changed,
                            struct err *e)
{
    const char *params[] = {name, is_paused ? "true" : "false"};
    PGresult *r = db_exec(c, &pause_stmt, 2, params, e);
    if (r == NULL)
        return -1;
    *changed = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return 0;
}

int settings_store(struct db_conn *c, const char *key, const char *json_value, struct err *e)
{
    const char *params[] = {key, json_value};
    return db_run(c, &store_stmt, 2, params, e);
}

/* The getters: one field read under the lock, each of one shape. */
#define LOCKED_GETTER(type, name, expr)                                                            \
    type name(struct settings *s)                                                                  \
    {                                                                                              \
        pthread_mutex_lock(&s->mu);                                                                \
        type v = expr;                                                                             \
        pthread_mutex_unlock(&s->mu);                                                              \
        return v;                                                                                  \
    }

LOCKED_GETTER(bool, settings_auto_sync, s->auto_sync)
LOCKED_GETTER(int, settings_interval_s, s->interval_s)
LOCKED_GETTER(json_t *, settings_last_sync, json_incref(s->last_sync))
LOCKED_GETTER(json_t *, settings_paused, json_incref(s->paused))
LOCKED_GETTER(enum strategy, settings_strategy, s->strategy)
