#include "engine/events.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/jsontext.h"
#include "core/log.h"

struct stream {
    struct events *ev;
    struct events_sink sink;
    struct event_pos sent; /* the last event sent or passed over */
    char *out; /* owned: bytes to write before anything else (a table page, the rest of a frame) */
    size_t out_len, out_off;
    char op_type[64];
    char op_id[37];
    bool paused; /* sink.pause was called and no wake yet */
    bool closing;
    double last_write_ms;
    struct stream *next;
};

/* One page of a stream's reading from the table. */
#define EVENTS_PAGE 200

static int pos_cmp(const struct event_pos *a, const struct event_pos *b)
{
    if (a->xid != b->xid)
        return a->xid < b->xid ? -1 : 1;
    if (a->id != b->id)
        return a->id < b->id ? -1 : 1;
    return a->k < b->k ? -1 : a->k > b->k;
}

/* One decimal number of an id, followed by `end` (a '-' or the end of the string). */
static const char *id_part(const char *s, char end, unsigned long long *v)
{
    char *stop = NULL;
    if (*s < '0' || *s > '9')
        return NULL;
    *v = strtoull(s, &stop, 10);
    return *stop == end ? stop : NULL;
}

/* "xid-id-k"; the "xid-id" of a row that held one event (before per-statement rows) resumes
 * after the whole row. */
int events_parse_id(const char *s, struct event_pos *out)
{
    unsigned long long x, i, k = EVENT_ROW_END;
    if (s == NULL || strlen(s) > 64 || (s = id_part(s, '-', &x)) == NULL)
        return -1;
    const char *rest = id_part(s + 1, '-', &i);
    if (rest != NULL) {
        if (id_part(rest + 1, '\0', &k) == NULL || k < 1 || k > EVENT_ROW_END)
            return -1;
    } else if (id_part(s + 1, '\0', &i) == NULL) {
        return -1;
    }
    if (i > (unsigned long long)LLONG_MAX)
        return -1;
    out->xid = x;
    out->id = (long long)i;
    out->k = (long long)k;
    return 0;
}

/* The SSE frame of a row. */
static char *frame_of(const struct event_row *row, size_t *len)
{
    size_t n = strlen(row->data) + strlen(row->type) + 96;
    char *f = oq_malloc(n);
    *len = (size_t)snprintf(f, n, "id: %llu-%lld-%lld\nevent: %s\ndata: %s\n\n", row->pos.xid,
                            row->pos.id, row->pos.k, row->type, row->data);
    return f;
}

static bool wants(const struct stream *s, const char *op_id, const char *op_type)
{
    if (s->op_id[0])
        return strcmp(s->op_id, op_id) == 0;
    if (s->op_type[0] && op_type[0])
        return strcmp(s->op_type, op_type) == 0;
    return true;
}

/* Wakes every paused stream (called without the lock held). The sinks are collected under the
 * lock and woken after it is released: events_read takes the lock on the connection's thread,
 * from within the server, and a wake may take the server's own locks, so waking under ours would
 * take the two in both orders. */
static void wake_streams(struct events *ev, bool only_idle)
{
    struct events_sink batch[256];
    for (;;) {
        int n = 0;
        double now = oq_now_ms();
        pthread_mutex_lock(&ev->mu);
        for (struct stream *s = ev->streams; s && n < 256; s = s->next) {
            if (!s->paused)
                continue;
            if (only_idle && now - s->last_write_ms < EVENTS_HEARTBEAT_S * 1000.0)
                continue;
            s->paused = false;
            batch[n++] = s->sink;
        }
        pthread_mutex_unlock(&ev->mu);
        for (int i = 0; i < n; i++)
            batch[i].wake(batch[i].arg);
        if (n < 256)
            return;
    }
}

static void ring_push(struct events *ev, const struct event_row *row)
{
    struct event *e;
    if (ev->count ==
        EVENTS_RING) { /* full: the oldest goes (a stream still behind it reads the table) */
        e = &ev->ring[ev->head];
        ev->floor = e->pos;
        free(e->frame);
        ev->head = (ev->head + 1) % EVENTS_RING;
        ev->count--;
    }
    e = &ev->ring[(ev->head + ev->count) % EVENTS_RING];
    snprintf(e->type, sizeof(e->type), "%s", row->type);
    snprintf(e->op_id, sizeof(e->op_id), "%s", row->op_id);
    snprintf(e->op_type, sizeof(e->op_type), "%s", row->op_type);
    e->pos = row->pos;
    e->frame = frame_of(row, &e->len);
    ev->count++;
    ev->last = e->pos;
    ev->seq++;
}

static bool nobody_listens(struct events *ev)
{
    return ev->n_streams == 0;
}

/* With no subscriber, reading every event is wasted work: only "now" moves (ETags change
 * with it). The ring is emptied, so a later resume reads the gap from the table. */
static void skip_to_newest(struct events *ev, struct db_conn *c)
{
    struct err e = {0};
    struct event_pos newest;
    if (events_newest(c, &newest, &e) != 0)
        return;
    pthread_mutex_lock(&ev->mu);
    if (nobody_listens(ev) && pos_cmp(&newest, &ev->last) > 0) {
        for (; ev->count > 0; ev->count--) {
            free(ev->ring[ev->head].frame);
            ev->head = (ev->head + 1) % EVENTS_RING;
        }
        ev->head = 0;
        ev->last = newest;
        ev->floor = newest;
        ev->seq++;
    }
    pthread_mutex_unlock(&ev->mu);
}

static void log_pulled(const struct event_pos *after, const struct event_row *rows, int n)
{
    char xid[32], id[32], first[32], last[32];
    snprintf(xid, sizeof(xid), "%llu", after->xid);
    snprintf(id, sizeof(id), "%lld", after->id);
    snprintf(first, sizeof(first), "%lld", rows[0].pos.id);
    snprintf(last, sizeof(last), "%lld", rows[n - 1].pos.id);
    log_json(LOG_DEBUG, "events pulled",
             json_pack("{s:s, s:s, s:s, s:s, s:i}", "after_xid", xid, "after_id", id, "first",
                       first, "last", last, "n", n));
}

void events_pull(struct events *ev)
{
    struct err e = {0};
    pthread_mutex_lock(&ev->pull_mu);
    struct db_conn *c = db_acquire(ev->db, &e);
    if (c == NULL) {
        pthread_mutex_unlock(&ev->pull_mu);
        return;
    }
    pthread_mutex_lock(&ev->mu);
    bool idle = nobody_listens(ev);
    pthread_mutex_unlock(&ev->mu);
    if (idle) {
        skip_to_newest(ev, c);
        db_release(ev->db, c);
        pthread_mutex_unlock(&ev->pull_mu);
        return;
    }
    bool any = false;
    for (;;) {
        pthread_mutex_lock(&ev->mu);
        struct event_pos after = ev->last;
        pthread_mutex_unlock(&ev->mu);
        struct event_row *rows = NULL;
        int n = events_fetch_settled(c, &after, &rows, &e);
        if (n < 0)
            break;
        if (n > 0 && log_enabled(LOG_DEBUG))
            log_pulled(&after, rows, n);
        pthread_mutex_lock(&ev->mu);
        for (int i = 0; i < n; i++)
            ring_push(ev, &rows[i]);
        pthread_mutex_unlock(&ev->mu);
        events_rows_free(rows, n);
        any = any || n > 0;
        if (n < EVENTS_PULL_MAX) /* a full answer: more may be waiting */
            break;
    }
    db_release(ev->db, c);
    pthread_mutex_unlock(&ev->pull_mu);
    if (any)
        wake_streams(ev, false);
}

unsigned long long events_version(struct events *ev)
{
    pthread_mutex_lock(&ev->mu);
    unsigned long long v = ev->seq;
    pthread_mutex_unlock(&ev->mu);
    return v;
}

void events_emit(struct events *ev, const char *type, json_t *data)
{
    char *text = jsontext(data);
    json_decref(data);
    struct err e = {0};
    struct db_conn *c = db_acquire(ev->db, &e);
    if (c != NULL) {
        (void)events_record(c, type, text, &e); /* best effort: an event is no outcome */
        db_release(ev->db, c);
    }
    free(text);
}

/* Events settle when older transactions end, which no NOTIFY announces: look every 100 ms.
 * Idle streams are resumed every so often to send a heartbeat comment. */
static void *events_main(void *arg)
{
    struct events *ev = arg;
    for (int tick = 0; !thread_sleep_ms(&ev->t, 100); tick++) {
        events_pull(ev);
        if (tick % 10 == 0)
            wake_streams(ev, true);
    }
    return NULL;
}

void events_start(struct events *ev, struct db_pool *db, int max_subscribers)
{
    ev->db = db;
    ev->max_subscribers = max_subscribers;
    pthread_mutex_init(&ev->mu, NULL);
    pthread_mutex_init(&ev->pull_mu, NULL);
    thread_init(&ev->t);
    struct err e = {0};
    struct db_conn *c = db_acquire(db, &e);
    if (c != NULL) {
        struct event_pos newest;
        if (events_newest(c, &newest, &e) == 0)
            ev->last = newest;
        ev->floor = ev->last;
        db_release(db, c);
    }
    thread_start(&ev->t, events_main, ev);
}

void events_stop(struct events *ev)
{
    if (!ev->t.started)
        return;
    thread_stop(&ev->t);
    for (size_t i = 0; i < ev->count; i++)
        free(ev->ring[(ev->head + i) % EVENTS_RING].frame);
    pthread_mutex_destroy(&ev->mu);
    pthread_mutex_destroy(&ev->pull_mu);
    thread_close(&ev->t);
}

struct stream *events_open(struct events *ev, const struct events_sink *sink,
                           const struct event_pos *after, const char *op_type, const char *op_id,
                           struct err *e)
{
    struct stream *s = oq_calloc(1, sizeof(*s));
    s->ev = ev;
    s->sink = *sink;
    snprintf(s->op_type, sizeof(s->op_type), "%s", op_type ? op_type : "");
    snprintf(s->op_id, sizeof(s->op_id), "%s", op_id ? op_id : "");
    s->out = oq_strdup("retry: 3000\n\n");
    s->out_len = strlen(s->out);
    s->last_write_ms = oq_now_ms();
    pthread_mutex_lock(&ev->mu);
    int open = ev->n_streams;
    bool full = open >= ev->max_subscribers;
    if (!full) {
        /* from now on, or after the given event: older than the ring is read from the table */
        s->sent = after == NULL ? ev->last : *after;
        s->next = ev->streams;
        ev->streams = s;
        ev->n_streams++;
    }
    pthread_mutex_unlock(&ev->mu);
    if (full) {
        free(s->out);
        free(s);
        err_set(e, ERR_TOO_MANY_SUBSCRIBERS,
                "%d event streams are open, the most this instance serves", open);
        return NULL;
    }
    return s;
}

/* The ring is sorted by position: the index of the first event after pos, by bisection. */
static size_t first_after(struct events *ev, const struct event_pos *pos)
{
    size_t lo = 0, hi = ev->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pos_cmp(&ev->ring[(ev->head + mid) % EVENTS_RING].pos, pos) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Writes what is left of s->out into buf; frees it once written. */
static size_t take_out(struct stream *s, char *buf, size_t max)
{
    size_t n = s->out_len - s->out_off < max ? s->out_len - s->out_off : max;
    memcpy(buf, s->out + s->out_off, n);
    s->out_off += n;
    if (s->out_off == s->out_len) {
        free(s->out);
        s->out = NULL;
        s->out_len = s->out_off = 0;
    }
    return n;
}

/* Copies the frames after s->sent that fit into buf; a first frame larger than buf goes to
 * s->out and is written in pieces. Called with the lock held. */
static size_t copy_frames(struct events *ev, struct stream *s, char *buf, size_t max)
{
    size_t n = 0;
    for (size_t i = first_after(ev, &s->sent); i < ev->count; i++) {
        struct event *e = &ev->ring[(ev->head + i) % EVENTS_RING];
        if (!wants(s, e->op_id, e->op_type)) {
            s->sent = e->pos;
            continue;
        }
        if (n + e->len > max) {
            if (n == 0) {
                s->out = oq_malloc(e->len);
                memcpy(s->out, e->frame, e->len);
                s->out_len = e->len;
                s->sent = e->pos;
                n = take_out(s, buf, max);
            }
            break;
        }
        memcpy(buf + n, e->frame, e->len);
        n += e->len;
        s->sent = e->pos;
    }
    return n;
}

/* One page of the events after s->sent up to upto from the table into s->out (the wanted
 * ones); s->sent moves past the page. Called without the lock. */
static int read_page(struct events *ev, struct stream *s, const struct event_pos *upto)
{
    struct err e = {0};
    struct event_row *rows = NULL;
    struct db_conn *c = db_acquire(ev->db, &e);
    int n = c ? events_fetch_range(c, &s->sent, upto, EVENTS_PAGE, &rows, &e) : -1;
    if (c != NULL)
        db_release(ev->db, c);
    if (n < 0)
        return -1;
    struct oq_buf b = {0};
    for (int i = 0; i < n; i++) {
        if (wants(s, rows[i].op_id, rows[i].op_type)) {
            size_t len;
            char *f = frame_of(&rows[i], &len);
            oq_buf_add(&b, f, len);
            free(f);
        }
        s->sent = rows[i].pos;
    }
    events_rows_free(rows, n);
    if (n < EVENTS_PAGE) /* the table has nothing more up to upto */
        s->sent = *upto;
    s->out = b.data;
    s->out_len = b.len;
    s->out_off = 0;
    return 0;
}

/* Fills buf from s->out, the table or the ring, in that order. Called with the lock held;
 * *more is set when the table has more to read although nothing was written this time. */
static ssize_t fill(struct events *ev, struct stream *s, char *buf, size_t max, bool *more)
{
    for (int pages = 0; pages < 8; pages++) {
        if (s->out_len > 0)
            return (ssize_t)take_out(s, buf, max);
        if (pos_cmp(&s->sent, &ev->floor) >= 0)
            return (ssize_t)copy_frames(ev, s, buf, max);
        struct event_pos upto = ev->floor;
        pthread_mutex_unlock(&ev->mu);
        int rc = read_page(ev, s, &upto);
        pthread_mutex_lock(&ev->mu);
        if (rc != 0)
            return -1;
    }
    *more = true;
    return 0;
}

ssize_t events_read(struct stream *s, char *buf, size_t max)
{
    struct events *ev = s->ev;
    pthread_mutex_lock(&ev->mu);
    bool more = false;
    ssize_t got = s->closing ? -1 : fill(ev, s, buf, max, &more);
    if (got < 0 || s->closing) { /* shutdown, or the table cannot be read: the client resumes */
        pthread_mutex_unlock(&ev->mu);
        return EVENTS_END;
    }
    size_t n = (size_t)got;
    double now = oq_now_ms();
    if (n == 0 && now - s->last_write_ms >= EVENTS_HEARTBEAT_S * 1000.0) {
        static const char beat[] = ": heartbeat\n\n";
        memcpy(buf, beat, sizeof(beat) - 1);
        n = sizeof(beat) - 1;
    }
    if (n > 0) {
        s->last_write_ms = now;
    } else if (!more) {
        /* nothing to send: park the connection until events_pull or a heartbeat wakes it */
        s->sink.pause(s->sink.arg);
        s->paused = true;
    }
    pthread_mutex_unlock(&ev->mu);
    return (ssize_t)n;
}

void events_close(struct stream *s)
{
    struct events *ev = s->ev;
    pthread_mutex_lock(&ev->mu);
    for (struct stream **p = &ev->streams; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            ev->n_streams--;
            break;
        }
    }
    pthread_mutex_unlock(&ev->mu);
    free(s->out);
    free(s);
}

void events_release_all(struct events *ev)
{
    if (!ev->t.started)
        return;
    pthread_mutex_lock(&ev->mu);
    for (struct stream *s = ev->streams; s; s = s->next)
        s->closing = true;
    pthread_mutex_unlock(&ev->mu);
    wake_streams(ev, false);
}

int events_subscribers(struct events *ev)
{
    pthread_mutex_lock(&ev->mu);
    int n = ev->n_streams;
    pthread_mutex_unlock(&ev->mu);
    return n;
}
