/* The live event hub: events come from offlineq_events (written by triggers and
 * offlineq_emit() in the transaction of the change), are announced by NOTIFY to every
 * instance, kept here in a ring, and streamed to Server-Sent Events subscribers whose
 * connections stay paused (no thread each) until there is something to send. The hub knows no
 * HTTP: it writes a stream's bytes when asked (events_read) and reaches its connection only
 * through the struct events_sink given to events_open (api/events.c serves the streams).
 * Slow or vanished subscribers never block anyone. A stream whose next event the ring does not
 * hold (a resume from an older id, or a reader that fell behind) reads it from the table, one
 * page per write, in its own events_read; frames of any size are written in pieces. */
#ifndef OQ_EVENTS_H
#define OQ_EVENTS_H

#include <jansson.h>
#include <pthread.h>
#include <sys/types.h>

#include "core/err.h"
#include "core/thread.h"
#include "store/events.h"

#define EVENTS_RING 16384
#define EVENTS_HEARTBEAT_S 15

struct db_pool;
struct stream;

/* How the hub pauses and wakes a subscriber's connection (callbacks and their closure, as
 * libuv and libcurl take them), given by whoever serves the stream. pause(arg) is called from
 * within events_read, with the hub's lock held, when there is nothing to send: the connection
 * is to stop asking for bytes. wake(arg) is called at most once after each pause, never with
 * the lock held (the hub collects the paused streams under its lock and wakes them after
 * releasing it, from the poller, events_pull or events_release_all): the connection is to ask
 * again. Neither may call into the hub. arg is borrowed: it must stay valid until events_close,
 * and a paused connection must not end before its wake (an HTTP server's suspended connection
 * does not). */
struct events_sink {
    void (*pause)(void *arg);
    void (*wake)(void *arg);
    void *arg;
};

/* events_read: the stream is over (shutdown, or the table cannot be read: the client resumes
 * from its Last-Event-ID). */
#define EVENTS_END ((ssize_t)-1)

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

/* A subscriber, reached through *sink (copied; its arg is borrowed, see struct events_sink):
 * after NULL means "from now on". op_type / op_id filter operation events (may be NULL).
 * Returns a new stream (free with events_close, once its connection is done with it), or NULL
 * with ERR_TOO_MANY_SUBSCRIBERS in *e when OFFLINEQ_MAX_SUBSCRIBERS streams are open. */
struct stream *events_open(struct events *ev, const struct events_sink *sink,
                           const struct event_pos *after, const char *op_type, const char *op_id,
                           struct err *e);

/* Writes the stream's next bytes into buf (at most max): the frames due, or a heartbeat comment
 * after EVENTS_HEARTBEAT_S of silence. Returns the bytes written (> 0); 0 when there is nothing
 * now (the sink was paused, and is woken when there is; or the table has more to read and the
 * caller should simply ask again); or EVENTS_END. Never any other negative value. One reader
 * per stream at a time; thread-safe otherwise. */
ssize_t events_read(struct stream *s, char *buf, size_t max);

/* Takes the stream off the hub and frees it (s may not be used again). Thread-safe. */
void events_close(struct stream *s);

/* Ends every stream (shutdown): their paused sinks are woken and their next events_read
 * returns EVENTS_END. */
void events_release_all(struct events *ev);

int events_subscribers(struct events *ev);

#endif
