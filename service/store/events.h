/* The event log (offlineq_events): rows written by triggers and offlineq_emit() in the
 * transaction of the change, read here in stream order for the hub (engine/events.c). */
#ifndef OQ_STORE_EVENTS_H
#define OQ_STORE_EVENTS_H

#include "store/db.h"

/* An event's place in the stream: (transaction id, row id, element), compared in that order.
 * A row holds the events of one statement (k counts from 1); EVENT_ROW_END is past its last. */
struct event_pos {
    unsigned long long xid;
    long long id;
    long long k;
};

#define EVENT_ROW_END 0x7fffffffLL

/* One row of the log, as read. */
struct event_row {
    struct event_pos pos;
    char type[40];
    char op_id[37];   /* "" when the event is not about one operation */
    char op_type[64]; /* "" likewise */
    char *data;       /* owned: the data object with "type" and "at" added, JSON text */
};

/* A pull reads at most this many events; a full answer means more may follow. */
#define EVENTS_PULL_MAX 5000

/* The settled events after `after` (those of transactions older than every running one), in
 * stream order, at most EVENTS_PULL_MAX. Returns how many, with *rows a new array (free with
 * events_rows_free), or -1 with *e. */
int events_fetch_settled(struct db_conn *c, const struct event_pos *after, struct event_row **rows,
                         struct err *e);

/* At most limit events after `after` up to and with `upto`, in stream order. As above. */
int events_fetch_range(struct db_conn *c, const struct event_pos *after,
                       const struct event_pos *upto, int limit, struct event_row **rows,
                       struct err *e);

void events_rows_free(struct event_row *rows, int n);

/* Where "now" is: past the newest settled row ({0, 0, EVENT_ROW_END} when there is none). */
int events_newest(struct db_conn *c, struct event_pos *out, struct err *e);

/* Records an event that is not about one operation (offlineq_emit). data: a JSON object text. */
int events_record(struct db_conn *c, const char *type, const char *data, struct err *e);

/* Deletes the events older than 15 minutes (the log is kept that long). */
int events_trim(struct db_conn *c, struct err *e);

#endif
