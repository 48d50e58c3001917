/* The live event hub: events come from offlineq_events (written by triggers and
 * offlineq_emit() in the transaction of the change), are announced by NOTIFY to every
 * instance, kept here in a ring, and streamed to Server-Sent Events subscribers whose
 * connections stay suspended (no thread each) until there is something to send.
 * Slow or vanished subscribers never block anyone. A stream whose next event the ring does not
 * hold (a resume from an older id, or a reader that fell behind) reads it from the table, one
 * page per write, in its own content callback; frames of any size are written in pieces. */
#ifndef OQ_EVENTS_H
#define OQ_EVENTS_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"
#include "core/thread.h"
#include "store/events.h"

#define EVENTS_RING 16384
#define EVENTS_HEARTBEAT_S 15

struct db_pool;
struct MHD_Connection;
struct stream;

struct event {
    struct event_pos pos;
    char type[40];
    char op_id[37];
    char op_type[64];
    char *frame; /* "id: N\nevent: TYPE\ndata: {...}\n\n" */
    size_t len;
};

struct events {
    struct db_pool *db;  /* borrowed */
    int max_subscribers; /* OFFLINEQ_MAX_SUBSCRIBERS */
    pthread_mutex_t mu;
    pthread_mutex_t pull_mu; /* one reader of the table at a time */
    struct event ring[EVENTS_RING];
    size_t head, count;     /* oldest at head */
    struct event_pos last;  /* the newest event taken in */
    struct event_pos floor; /* the ring holds every event in (floor, last] */
    unsigned long long seq; /* events taken in by this instance: a version for ETags */
    struct stream *streams;
    int n_streams;
    struct thread t; /* the poller; t.mu guards nothing else */
};

/* Finds where "now" is and starts the poller. db is borrowed. */
void events_start(struct events *ev, struct db_pool *db, int max_subscribers);
void events_stop(struct events *ev);

/* Fetches the events newer than the last one seen and wakes the streams. Thread-safe. */
void events_pull(struct events *ev);

/* Changes whenever an event arrives from anywhere (ETags use it). */
unsigned long long events_version(struct events *ev);

/* Parses an SSE event id "XID-ID"; -1 when it is not one. */
int events_parse_id(const char *s, struct event_pos *out);

/* Records an event that is not about one operation (after events_start). Steals data. */
void events_emit(struct events *ev, const char *type, json_t *data);

/* A subscriber: after NULL means "from now on". op_type / op_id filter operation events
 * (may be NULL). Returns NULL with ERR_TOO_MANY_SUBSCRIBERS in *e when OFFLINEQ_MAX_SUBSCRIBERS
 * streams are open. The stream is owned by the response: events_close frees it. */
struct stream *events_open(struct events *ev, struct MHD_Connection *conn,
                           const struct event_pos *after, const char *op_type, const char *op_id,
                           struct err *e);

/* libmicrohttpd content reader and free callback of a stream. */
ssize_t events_read(void *cls, uint64_t pos, char *buf, size_t max);
void events_close(void *cls);

/* Ends every stream (shutdown): they finish and their connections close. */
void events_release_all(struct events *ev);

int events_subscribers(struct events *ev);

#endif
