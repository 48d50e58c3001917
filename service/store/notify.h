/* The three NOTIFY channels every instance listens on, on a connection of its own (a LISTEN
 * lasts as long as its session, so it cannot be a pooled one). */
#ifndef OQ_NOTIFY_H
#define OQ_NOTIFY_H

#include <libpq-fe.h>

#include "core/err.h"

/* What a NOTIFY announced; notify_wait returns a set of these. */
enum notify_channel {
    NOTIFY_WAKEUP = 1 << 0,   /* offlineq_wakeup: operations became due */
    NOTIFY_SETTINGS = 1 << 1, /* offlineq_settings: a shared setting changed */
    NOTIFY_EVENTS = 1 << 2,   /* offlineq_events: events were written */
};

/* Connects (search_path schema, as db_connect) and LISTENs on the three channels. Returns a new
 * connection (PQfinish it), or NULL with *e. */
PGconn *notify_connect(const char *conninfo, const char *schema, struct err *e);

/* Waits up to timeout_ms for notifications and reads all that arrived. Returns the set of
 * channels heard (0: none in time), or -1 when the connection is lost (reconnect). */
int notify_wait(PGconn *pg, int timeout_ms);

#endif
