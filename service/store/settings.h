/* Settings shared by every instance through offlineq_settings: auto_sync, sync_interval_s,
 * conflict_strategy, last_sync, upstreams_paused (and upstream_breakers, handed on). Cached here;
 * reloaded on NOTIFY offlineq_settings and by maintenance. Thread-safe. */
#ifndef OQ_SETTINGS_H
#define OQ_SETTINGS_H

#include <jansson.h>
#include <pthread.h>

#include "core/vocab.h"
#include "store/db.h"

struct settings {
    pthread_mutex_t mu;
    bool auto_sync;
    int interval_s;
    enum strategy strategy;
    json_t *last_sync; /* {"at","result"} or NULL */
    json_t *paused;    /* {"upstream": "paused at"}, never NULL */
    /* Called under the lock with the paused object (borrowed) after every reload that read
     * it: the delivery policy takes it (set by app.c; NULL: nobody). */
    void (*on_paused)(void *arg, json_t *paused);
    void *on_paused_arg;
    /* The same for the shared breakers (upstream_breakers) and holds (upstream_holds), when
     * those rows are read. */
    void (*on_breakers)(void *arg, json_t *breakers);
    void (*on_holds)(void *arg, json_t *holds);
    void *on_breakers_arg;                             /* for both */
    unsigned long long reload_started, reload_applied; /* tickets: newest reload wins */
};

void settings_init(struct settings *s);
void settings_close(struct settings *s);

/* Seeds the stored settings that do not exist yet (auto_sync from OFFLINEQ_AUTO_SYNC ...). */
int settings_seed(struct db_conn *c, bool auto_sync, int interval_s, struct err *e) OQ_MUSTCHECK;

/* Reads every setting into the cache. */
int settings_reload(struct settings *s, struct db_conn *c, struct err *e);

/* Stores key = value (JSON text); every instance hears of it. */
int settings_store(struct db_conn *c, const char *key, const char *json_value,
                   struct err *e) OQ_MUSTCHECK;

/* Pauses (is_paused) or resumes the upstream name for every instance, recording
 * upstream.paused|resumed when that changed something (*changed). */
int settings_pause_upstream(struct db_conn *c, const char *name, bool is_paused, bool *changed,
                            struct err *e) OQ_MUSTCHECK;

bool settings_auto_sync(struct settings *s);
/* A new reference to the paused object {"upstream": "paused at"}. */
json_t *settings_paused(struct settings *s);
int settings_interval_s(struct settings *s);
/* The global conflict strategy. */
enum strategy settings_strategy(struct settings *s);
/* A new reference to the last sync record, or NULL. */
json_t *settings_last_sync(struct settings *s);

#endif
