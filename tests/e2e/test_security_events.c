/* Event streams and the sync wait under hostile sizes and timings (issue 11, points 6, 7, 20):
 * a frame larger than the write buffer still arrives, and so does everything after it; a
 * resumed stream gets every event after its Last-Event-ID exactly once and in order (after
 * gaps of 1 to 6,000 events, and while events are still being written); at most
 * OFFLINEQ_MAX_SUBSCRIBERS streams; a waiting POST /sync holds no server thread; the errors of
 * a sync result are capped at 100. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "upstream.h"

#define DB "e2e_security_events"
#define DB_SYNC "e2e_security_events_sync"

static struct svc S;
static PGconn *pg;
static char url[512];

/* ---- a raw SSE client (HTTP/1.0: no chunking, the body is the stream) ---- */

struct sse {
    int fd;
    int status;
    bool body;  /* past the response headers */
    char *head; /* the response header block */
    char *buf;
    size_t len, cap;
    const char *only; /* record only events whose type starts with this (NULL: all) */
    int n;            /* event frames (with an id) seen */
    char **ids, **types, **data;
};

static int tcp_connect_buf(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static int tcp_connect(int port)
{
    return tcp_connect_buf(port, 0);
}

/* Streams a failed test left open (it ends with a longjmp), closed before the next test so
 * that one failure does not cascade. */
static int open_fds[64];

static void track_fd(int fd, bool open)
{
    for (int i = 0; i < 64; i++) {
        if (open ? open_fds[i] == 0 : open_fds[i] == fd + 1) {
            open_fds[i] = open ? fd + 1 : 0;
            return;
        }
    }
}

static int close_leftovers(void **state)
{
    for (int i = 0; i < 64; i++) {
        if (open_fds[i] != 0)
            close(open_fds[i] - 1);
        open_fds[i] = 0;
    }
    return 0;
}

static void sse_open_buf(struct sse *s, int port, const char *last_id, int rcvbuf)
{
    memset(s, 0, sizeof(*s));
    s->fd = tcp_connect_buf(port, rcvbuf);
    track_fd(s->fd, true);
    char req[512];
    int n = snprintf(
        req, sizeof(req), "GET /api/offline/events HTTP/1.0\r\nHost: 127.0.0.1\r\n%s%s%s\r\n",
        last_id ? "Last-Event-ID: " : "", last_id ? last_id : "", last_id ? "\r\n" : "");
    assert_int_equal(write(s->fd, req, (size_t)n), n);
    fcntl(s->fd, F_SETFL, O_NONBLOCK);
}

static void sse_open(struct sse *s, int port, const char *last_id)
{
    sse_open_buf(s, port, last_id, 0);
}

static void add_frame(struct sse *s, char *frame)
{
    char *id = strstr(frame, "id: "), *ev = strstr(frame, "event: "),
         *data = strstr(frame, "data: ");
    if (id != frame || ev == NULL || data == NULL)
        return; /* retry:, heartbeat comments */
    if (s->only != NULL && strncmp(ev + 7, s->only, strlen(s->only)) != 0)
        return;
    s->ids = realloc(s->ids, (size_t)(s->n + 1) * sizeof(char *));
    s->types = realloc(s->types, (size_t)(s->n + 1) * sizeof(char *));
    s->data = realloc(s->data, (size_t)(s->n + 1) * sizeof(char *));
    s->ids[s->n] = strndup(id + 4, strcspn(id + 4, "\n"));
    s->types[s->n] = strndup(ev + 7, strcspn(ev + 7, "\n"));
    s->data[s->n] = strndup(data + 6, strcspn(data + 6, "\n"));
    s->n++;
}

static void parse(struct sse *s)
{
    char *start = s->buf;
    if (!s->body) {
        char *end = strstr(s->buf, "\r\n\r\n");
        if (end == NULL)
            return;
        s->body = true;
        sscanf(s->buf, "HTTP/%*s %d", &s->status);
        s->head = strndup(s->buf, (size_t)(end - s->buf) + 2);
        start = end + 4;
    }
    char *end;
    while (s->status == 200 && (end = strstr(start, "\n\n")) != NULL) {
        *end = '\0';
        add_frame(s, start);
        start = end + 2;
    }
    if (s->status != 200)
        return; /* keep the error body whole */
    size_t rest = s->len - (size_t)(start - s->buf);
    memmove(s->buf, start, rest + 1);
    s->len = rest;
}

/* Reads until n frames were seen, the peer closed, or timeout_ms passed. */
static void sse_pump(struct sse *s, int n, int timeout_ms)
{
    double until = th_now_ms() + timeout_ms;
    while ((s->n < n || !s->body) && th_now_ms() < until) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        if (s->cap - s->len < 65536) {
            s->cap = s->cap ? s->cap * 2 : 262144;
            s->buf = realloc(s->buf, s->cap);
        }
        ssize_t got = read(s->fd, s->buf + s->len, s->cap - s->len - 1);
        if (got <= 0)
            break;
        s->len += (size_t)got;
        s->buf[s->len] = '\0';
        parse(s);
    }
}

static void sse_close(struct sse *s)
{
    track_fd(s->fd, false);
    close(s->fd);
    for (int i = 0; i < s->n; i++) {
        free(s->ids[i]);
        free(s->types[i]);
        free(s->data[i]);
    }
    free(s->ids);
    free(s->types);
    free(s->data);
    free(s->buf);
    free(s->head);
}

/* ---- helpers ---- */

static int subscribers(const struct svc *svc)
{
    struct resp *r = th_http(svc, "GET", "/metrics", NULL, 0, NULL);
    const char *p = strstr(r->body, "\nofflineq_event_subscribers ");
    int n = p ? atoi(p + 28) : -1;
    th_resp_free(r);
    return n;
}

/* Closed streams are noticed when the next write fails: nudge them with events until the
 * service counts want streams (the nudges are events like any other). */
static void wait_subscribers(const struct svc *svc, int want)
{
    for (int i = 0; i < 400 && subscribers(svc) != want; i++) {
        th_sql(pg, "SELECT offlineq_emit('test.nudge', '{}')");
        usleep(50000);
    }
    assert_int_equal(subscribers(svc), want);
    usleep(300000); /* the hub's next pulls see it */
}

/* The newest event id in the table ("0-0" when empty). */
static void newest_id(char out[64])
{
    snprintf(out, 64, "%s",
             th_sql(pg, "SELECT coalesce((SELECT event_id FROM offlineq_event_stream "
                        "ORDER BY xid DESC, id DESC, k DESC LIMIT 1), '0-0-1')"));
}

/* Every event after id in the table, in stream order, of type (NULL: all). */
static PGresult *events_after(const char *id, const char *type)
{
    char x[32] = "0", i[32] = "0", k[32] = "1";
    sscanf(id, "%31[0-9]-%31[0-9]-%31[0-9]", x, i, k);
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT event_id, type FROM offlineq_event_stream WHERE (xid, id, k) > "
             "('%s'::xid8, %s, %s) "
             "%s%s%s ORDER BY xid, id, k",
             x, i, k, type ? "AND type = '" : "", type ? type : "", type ? "'" : "");
    PGresult *r = PQexec(pg, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    return r;
}

/* ids (n of them) are the table's events after `after`, each once, in order, and at least
 * at_least of them (what the table held when the client caught up; more may have come since,
 * e.g. a network.changed). */
static void assert_ids_match_table(char *const *ids, int n, const char *after, int at_least,
                                   const char *what)
{
    PGresult *r = events_after(after, NULL);
    int rows = PQntuples(r), k = 0;
    for (; k < rows && k < n; k++)
        if (strcmp(ids[k], PQgetvalue(r, k, 0)) != 0)
            break;
    if (k != n || n < at_least)
        fprintf(stderr,
                "%s: %d events in the table (%d expected at least), %d received, first difference "
                "at %d: "
                "table %s, stream %s\n",
                what, rows, at_least, n, k, k < rows ? PQgetvalue(r, k, 0) : "-",
                k < n ? ids[k] : "-");
    assert_true(n >= at_least);
    assert_int_equal(k, n);
    PQclear(r);
}

static void enqueue_n(int n)
{
    if (n < 100) {
        for (int i = 0; i < n; i++) {
            char id[37];
            th_enqueue(&S, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/g\"}}",
                       id);
        }
        return;
    }
    for (int done = 0; done < n; done += 100) {
        char *body = malloc(100 * 80 + 64);
        size_t o = (size_t)sprintf(body, "{\"operations\":[");
        for (int i = done; i < done + 100 && i < n; i++)
            o += (size_t)sprintf(
                body + o,
                "%s{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/g/%d\"}}",
                i > done ? "," : "", i);
        sprintf(body + o, "]}");
        struct resp *r = th_json(&S, "POST", "/api/offline/queue/batch", body);
        assert_int_equal(r->status, 201);
        th_resp_free(r);
        free(body);
    }
}

static double healthz_ms(const struct svc *svc)
{
    double t0 = th_now_ms();
    struct resp *r = th_http(svc, "GET", "/healthz", NULL, 0, NULL);
    double ms = th_now_ms() - t0;
    assert_int_equal(r->status, 200);
    th_resp_free(r);
    return ms;
}

/* ---- the events group: one HTTP thread, API only ---- */

static int group_setup(void **state)
{
    static const char *const env[] = {"OFFLINEQ_HTTP_THREADS=1",
                                      "OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9", NULL};
    return th_group_start(DB, env, &S, &pg, url, sizeof(url));
}

static int group_teardown(void **state)
{
    th_group_stop(DB, &S, pg);
    return 0;
}

/* Point 6: a 60 KB event (bigger than the 32 KB write buffer) and a small one after it. */
static void test_event_larger_than_the_write_buffer_arrives_whole(void **state)
{
    struct sse s;
    sse_open(&s, S.port, NULL);
    s.only = "test."; /* not network.changed */
    sse_pump(&s, 0, 5000);
    assert_int_equal(s.status, 200);
    usleep(300000);
    th_sql(
        pg,
        "SELECT offlineq_emit('test.big', jsonb_build_object('blob', repeat('x', 60000), 'n', 1))");
    th_sql(pg, "SELECT offlineq_emit('test.small', '{\"n\":2}')");
    sse_pump(&s, 2, 10000);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.types[0], "test.big");
    assert_string_equal(s.types[1], "test.small");
    PGresult *want =
        PQexec(pg, "SELECT data::text FROM offlineq_event_stream WHERE type = 'test.big'");
    assert_int_equal(PQntuples(want), 1);
    assert_true(strlen(s.data[0]) > 60000);
    assert_true(strcmp(s.data[0], PQgetvalue(want, 0, 0)) == 0); /* byte for byte */
    PQclear(want);
    const char *big_id =
        th_sql(pg, "SELECT event_id FROM offlineq_event_stream WHERE type = 'test.big'");
    assert_string_equal(s.ids[0], big_id);
    sse_close(&s);
}

/* Point 20: connect, read, close; gap events are written; resume with the last id read. With
 * witness, another stream stays open throughout (the instance keeps its memory of events);
 * without, nobody listens while the gap is written. */
static void resume_after_gap(int gap, bool witness)
{
    char start[64];
    newest_id(start);
    struct sse w = {.fd = -1};
    if (witness)
        sse_open(&w, S.port, NULL);
    struct sse a;
    sse_open(&a, S.port, start);
    sse_pump(&a, 0, 5000);
    assert_int_equal(a.status, 200);
    enqueue_n(1);
    sse_pump(&a, 1, 5000);
    assert_true(a.n >= 1);
    char last[64];
    snprintf(last, sizeof(last), "%s", a.ids[a.n - 1]);
    sse_close(&a);
    wait_subscribers(&S, witness ? 1 : 0);
    enqueue_n(gap);
    usleep(400000); /* settled and taken in (or skipped) by the hub */
    PGresult *want = events_after(last, NULL);
    int n_want = PQntuples(want);
    PQclear(want);
    assert_true(n_want >= gap);
    struct sse b;
    sse_open(&b, S.port, last);
    sse_pump(&b, n_want, 15000);
    sse_pump(&b, n_want + 1, 300); /* nothing more, nothing twice */
    char what[64];
    snprintf(what, sizeof(what), "gap %d%s", gap, witness ? " with a witness" : "");
    assert_ids_match_table(b.ids, b.n, last, n_want, what);
    sse_close(&b);
    if (witness) {
        sse_close(&w);
        wait_subscribers(&S, 0);
    }
}

static void test_resume_after_gaps_gets_every_event_once(void **state)
{
    static const int gaps[] = {1, 5, 50, 600};
    for (size_t i = 0; i < sizeof(gaps) / sizeof(gaps[0]); i++) {
        resume_after_gap(gaps[i], false);
        resume_after_gap(gaps[i], true);
    }
}

struct writer {
    atomic_bool stop; /* set by the test, read by the writer thread */
    int written;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    PGconn *c = th_db_connect(url);
    for (int i = 0; !atomic_load(&w->stop); i++) {
        const char *sql = i % 7 == 0 ? "SELECT offlineq_emit('test.tick', jsonb_build_object('g', "
                                       "g)) FROM generate_series(1, 3) g"
                                     : "SELECT offlineq_emit('test.tick', '{}')";
        PGresult *r = PQexec(c, sql);
        w->written += PQresultStatus(r) == PGRES_TUPLES_OK ? (i % 7 == 0 ? 3 : 1) : 0;
        PQclear(r);
        usleep(3000);
    }
    PQfinish(c);
    return NULL;
}

/* Point 20: a writer keeps writing while the client reads a little, drops the connection and
 * resumes from the last complete event it read, over and over. */
static void test_resume_while_events_are_written(void **state)
{
    char start[64], last[64];
    newest_id(start);
    snprintf(last, sizeof(last), "%s", start);
    struct writer w = {0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
    char **seen = NULL;
    int n_seen = 0;
    for (int round = 0; round < 40; round++) {
        struct sse s;
        sse_open(&s, S.port, last);
        sse_pump(&s, 0, 5000);
        assert_int_equal(s.status, 200);
        sse_pump(&s, 1000000, 50 + (round * 37) % 300);
        seen = realloc(seen, (size_t)(n_seen + s.n) * sizeof(char *));
        for (int i = 0; i < s.n; i++)
            seen[n_seen++] = strdup(s.ids[i]);
        if (s.n > 0)
            snprintf(last, sizeof(last), "%s", s.ids[s.n - 1]);
        sse_close(&s);
        if (round % 5 == 4)
            usleep(400000); /* long enough for the hub to see nobody listening */
    }
    atomic_store(&w.stop, true);
    pthread_join(th, NULL);
    usleep(400000);
    PGresult *all = events_after(start, NULL);
    struct sse s;
    sse_open(&s, S.port, last);
    int rest = PQntuples(all); /* the events after last */
    for (int k = 0; k < PQntuples(all); k++)
        if (strcmp(PQgetvalue(all, k, 0), last) == 0)
            rest = PQntuples(all) - k - 1;
    sse_pump(&s, rest, 15000);
    sse_pump(&s, rest + 1, 300);
    seen = realloc(seen, (size_t)(n_seen + s.n) * sizeof(char *));
    for (int i = 0; i < s.n; i++)
        seen[n_seen++] = strdup(s.ids[i]);
    sse_close(&s);
    fprintf(stderr, "writer wrote %d events; 41 connections saw %d, the table holds %d\n",
            w.written, n_seen, PQntuples(all));
    assert_ids_match_table(seen, n_seen, start, PQntuples(all), "reconnecting while written");
    for (int i = 0; i < n_seen; i++)
        free(seen[i]);
    free(seen);
    PQclear(all);
    wait_subscribers(&S, 0);
}

/* Point 7: a resume whose backlog is 6,000 events (more than any one read of the table) with
 * one HTTP thread: delivered complete and in order, and /healthz answers meanwhile. */
static void test_large_backlog_in_pieces_and_server_responsive(void **state)
{
    wait_subscribers(&S, 0);
    char start[64];
    newest_id(start);
    th_sql(pg,
           "SELECT offlineq_emit('test.bulk', jsonb_build_object('i', g, 'pad', repeat('p', 200))) "
           "FROM generate_series(1, 6000) g");
    usleep(400000);
    PGresult *want = events_after(start, NULL);
    int n_want = PQntuples(want);
    PQclear(want);
    assert_true(n_want >= 6000);
    struct sse s;
    sse_open(&s, S.port, start);
    double worst = 0;
    double until = th_now_ms() + 30000;
    while (s.n < n_want && th_now_ms() < until) {
        sse_pump(&s, s.n + 500, 200);
        double ms = healthz_ms(&S);
        worst = ms > worst ? ms : worst;
    }
    sse_pump(&s, n_want + 1, 300);
    fprintf(stderr, "backlog of %d events received, slowest /healthz meanwhile %.0f ms\n", s.n,
            worst);
    assert_ids_match_table(s.ids, s.n, start, n_want, "backlog");
    int bulk = 0;
    for (int i = 0; i < s.n; i++)
        bulk += strcmp(s.types[i], "test.bulk") == 0;
    assert_int_equal(bulk, 6000);
    assert_true(worst < 1000);
    sse_close(&s);
    wait_subscribers(&S, 0);
}

/* Point 20: a reader that stops reading while more events arrive than the instance keeps in
 * memory (16,384) gets every one of them once it reads again (from the table), none skipped. */
static void test_reader_behind_the_ring_misses_nothing(void **state)
{
    wait_subscribers(&S, 0);
    char start[64];
    newest_id(start);
    struct sse s;
    sse_open_buf(&s, S.port, NULL, 1024);
    sse_pump(&s, 0, 5000);
    assert_int_equal(s.status, 200);
    usleep(300000);
    th_sql(
        pg,
        "SELECT offlineq_emit('test.flood', jsonb_build_object('i', g, 'pad', repeat('f', 500))) "
        "FROM generate_series(1, 20000) g");
    usleep(1500000); /* taken in: the ring has dropped its oldest while the reader sat still */
    PGresult *want = events_after(start, NULL);
    int n_want = PQntuples(want);
    PQclear(want);
    assert_true(n_want >= 20000);
    sse_pump(&s, n_want, 30000);
    sse_pump(&s, n_want + 1, 300);
    assert_ids_match_table(s.ids, s.n, start, n_want, "reader behind the ring");
    sse_close(&s);
    wait_subscribers(&S, 0);
}

/* Point 7: at most OFFLINEQ_MAX_SUBSCRIBERS streams; then 503 with Retry-After. */
static void test_subscriber_limit(void **state)
{
    static const char *const env[] = {"OFFLINEQ_HTTP_THREADS=1", "OFFLINEQ_MAX_SUBSCRIBERS=3",
                                      "OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9", NULL};
    struct svc t;
    assert_int_equal(th_svc_start(&t, url, env, NULL), 0);
    struct sse open[3], extra;
    for (int i = 0; i < 3; i++) {
        sse_open(&open[i], t.port, NULL);
        sse_pump(&open[i], 0, 5000);
        assert_int_equal(open[i].status, 200);
    }
    sse_open(&extra, t.port, NULL);
    sse_pump(&extra, 0, 3000);
    assert_int_equal(extra.status, 503);
    assert_non_null(strcasestr(extra.head, "\r\nRetry-After: "));
    sse_close(&extra);
    struct resp *r = th_http(&t, "GET", "/api/offline/events", NULL, 0, NULL);
    th_assert_error(r, 503, "too_many_subscribers");
    assert_non_null(th_header(r, "Retry-After"));
    assert_true(atoi(th_header(r, "Retry-After")) >= 1);
    th_resp_free(r);
    /* a stream that ends makes room again */
    sse_close(&open[0]);
    for (int i = 0; i < 100 && subscribers(&t) != 2; i++) {
        th_sql(pg, "SELECT offlineq_emit('test.nudge', '{}')");
        usleep(50000);
    }
    sse_open(&open[0], t.port, NULL);
    sse_pump(&open[0], 0, 5000);
    assert_int_equal(open[0].status, 200);
    for (int i = 0; i < 3; i++)
        sse_close(&open[i]);
    assert_int_equal(th_svc_stop(&t, SIGTERM), 0);
}

/* ---- the sync group: workers, an upstream, one HTTP thread ---- */

static struct svc Y;
static struct upstream_srv *US;
static PGconn *ypg;

static int sync_setup(void **state)
{
    US = us_start();
    static char up[128];
    snprintf(up, sizeof(up), "OFFLINEQ_UPSTREAMS=default=%s", us_url(US));
    static const char *env[] = {up, "OFFLINEQ_WORKERS=2", "OFFLINEQ_HTTP_THREADS=1",
                                "OFFLINEQ_CHECK_INTERVAL_S=1", NULL};
    if (th_group_start(DB_SYNC, env, &Y, &ypg, NULL, 0) != 0)
        return -1;
    for (int i = 0; i < 100; i++) {
        struct resp *n = th_http(&Y, "GET", "/api/offline/network-status", NULL, 0, NULL);
        bool online = th_str(n->json, "status") && strcmp(th_str(n->json, "status"), "online") == 0;
        th_resp_free(n);
        if (online)
            break;
        usleep(100000);
    }
    struct resp *r = th_http(&Y, "POST", "/api/offline/sync/stop-auto", NULL, 0, NULL);
    int rc = r->status == 200 ? 0 : -1;
    th_resp_free(r);
    return rc;
}

static int sync_teardown(void **state)
{
    th_group_stop(DB_SYNC, &Y, ypg);
    us_stop(US);
    return 0;
}

static void enqueue_to(const char *prefix, int n)
{
    char *body = malloc((size_t)n * 90 + 64);
    size_t o = (size_t)sprintf(body, "{\"operations\":[");
    for (int i = 0; i < n; i++)
        o += (size_t)sprintf(
            body + o, "%s{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"%s%d\"}}",
            i ? "," : "", prefix, i);
    sprintf(body + o, "]}");
    struct resp *r = th_json(&Y, "POST", "/api/offline/queue/batch", body);
    assert_int_equal(r->status, 201);
    th_resp_free(r);
    free(body);
}

static void wait_idle(void)
{
    for (int i = 0; i < 600; i++) {
        struct resp *s = th_http(&Y, "GET", "/api/offline/sync/status", NULL, 0, NULL);
        bool idle = json_is_false(json_object_get(s->json, "is_syncing"));
        th_resp_free(s);
        if (idle)
            return;
        usleep(100000);
    }
    fail_msg("the sync pass did not end");
}

static void assert_capped(const json_t *res, int failed)
{
    assert_non_null(res);
    assert_int_equal(th_int(res, "failed"), failed);
    assert_int_equal(json_array_size(json_object_get(res, "errors")), failed > 100 ? 100 : failed);
    assert_int_equal(th_int(res, "errors_total"), failed);
    assert_true(json_is_boolean(json_object_get(res, "errors_truncated")));
    assert_int_equal(json_is_true(json_object_get(res, "errors_truncated")), failed > 100);
}

/* Point 6: 150 failing operations: 100 errors listed, the total and the truncation said, in
 * the POST /sync answer, the status's last_result and the sync.finished event alike. */
static void test_sync_errors_are_capped(void **state)
{
    us_script(US, "/bad/", "400", 0);
    enqueue_to("/bad/", 150);
    struct sse s;
    sse_open(&s, Y.port, NULL);
    sse_pump(&s, 0, 5000);
    assert_int_equal(s.status, 200);
    struct resp *r = th_http(&Y, "POST", "/api/offline/sync", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_capped(r->json, 150);
    th_resp_free(r);
    r = th_http(&Y, "GET", "/api/offline/sync/status", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_capped(json_object_get(r->json, "last_result"), 150);
    th_resp_free(r);
    int found = -1;
    for (double until = th_now_ms() + 10000; found < 0 && th_now_ms() < until;) {
        sse_pump(&s, s.n + 1, 200);
        for (int i = 0; i < s.n && found < 0; i++)
            found = strcmp(s.types[i], "sync.finished") == 0 ? i : -1;
    }
    assert_true(found >= 0);
    json_t *ev = json_loads(s.data[found], 0, NULL);
    assert_capped(ev, 150);
    json_decref(ev);
    sse_close(&s);
    /* a last_result stored by an older version (every error listed, no errors_total) is capped
     * when shown */
    th_sql(
        ypg,
        "UPDATE offlineq_settings SET value = jsonb_set(value, '{result}', "
        "(value->'result') - 'errors_total' - 'errors_truncated' || jsonb_build_object('errors', "
        "(SELECT jsonb_agg(jsonb_build_object('id', gen_random_uuid(), 'error', 'HTTP 400')) "
        "FROM generate_series(1, 120)))) WHERE key = 'last_sync'");
    json_t *last = NULL;
    for (int i = 0; i < 50; i++) {
        th_sql(
            ypg,
            "SELECT offlineq_emit('test.nudge', '{}')"); /* the status's ETag moves with events */
        usleep(200000);
        r = th_http(&Y, "GET", "/api/offline/sync/status", NULL, 0, NULL);
        json_decref(last);
        last = json_incref(json_object_get(r->json, "last_result"));
        th_resp_free(r);
        if (json_array_size(json_object_get(last, "errors")) != 100 ||
            json_integer_value(json_object_get(last, "errors_total")) != 150)
            break; /* the stored value was reloaded */
    }
    assert_int_equal(json_array_size(json_object_get(last, "errors")), 100);
    assert_int_equal(th_int(last, "errors_total"), 120);
    assert_true(json_is_true(json_object_get(last, "errors_truncated")));
    json_decref(last);
    /* a pass without errors says so too */
    r = th_http(&Y, "POST", "/api/offline/sync", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_capped(r->json, 0);
    th_resp_free(r);
}

/* Point 7: timeout_s is capped at 300. */
static void test_sync_timeout_is_capped(void **state)
{
    static const char *const bad[] = {"/api/offline/sync?timeout_s=301",
                                      "/api/offline/sync?timeout_s=3600"};
    for (int i = 0; i < 2; i++) {
        struct resp *r = th_http(&Y, "POST", bad[i], NULL, 0, NULL);
        th_assert_invalid(r, "timeout_s");
        th_resp_free(r);
    }
    struct resp *r = th_http(&Y, "GET", "/api/offline/sync/status", NULL, 0, NULL);
    assert_true(json_is_false(json_object_get(r->json, "is_syncing"))); /* no pass was started */
    th_resp_free(r);
}

/* Reads one whole HTTP/1.0 response from fd (the server closes after it). */
static char *read_response(int fd, int timeout_ms)
{
    size_t cap = 65536, len = 0;
    char *b = malloc(cap);
    double until = th_now_ms() + timeout_ms;
    while (th_now_ms() < until && len < cap - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = read(fd, b + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    b[len] = '\0';
    return b;
}

/* Point 7: with one HTTP thread, a POST /sync waiting for a slow pass holds no thread. */
static void test_sync_wait_holds_no_thread(void **state)
{
    wait_idle();
    us_script(US, "/slow/", "201", 3000);
    enqueue_to("/slow/", 4); /* 2 workers: about 6 s */
    double t0 = th_now_ms();
    struct resp *r = th_http(&Y, "POST", "/api/offline/sync?timeout_s=1", NULL, 0, NULL);
    double waited = th_now_ms() - t0;
    assert_int_equal(r->status, 202);
    assert_true(json_is_true(json_object_get(r->json, "is_syncing")));
    th_resp_free(r);
    assert_true(waited >= 900 && waited < 4000);
    wait_idle();

    enqueue_to("/slow/", 4);
    int fd = tcp_connect(Y.port);
    static const char req[] = "POST /api/offline/sync?timeout_s=30 HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                              "Content-Length: 0\r\n\r\n";
    assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
    usleep(500000);
    double worst = 0;
    for (int i = 0; i < 5; i++) {
        double ms = healthz_ms(&Y);
        worst = ms > worst ? ms : worst;
        usleep(100000);
    }
    fprintf(stderr, "slowest /healthz while a sync request waits: %.0f ms\n", worst);
    assert_true(worst < 1000);
    char *resp = read_response(fd, 30000);
    close(fd);
    assert_non_null(strstr(resp, " 200 "));
    char *body = strstr(resp, "\r\n\r\n");
    assert_non_null(body);
    json_t *j = json_loads(body + 4, 0, NULL);
    assert_non_null(j);
    assert_int_equal(th_int(j, "processed"), 4);
    assert_int_equal(th_int(j, "succeeded"), 4);
    json_decref(j);
    free(resp);
}

int main(void)
{
    const struct CMUnitTest events[] = {
        cmocka_unit_test_setup(test_event_larger_than_the_write_buffer_arrives_whole,
                               close_leftovers),
        cmocka_unit_test_setup(test_resume_after_gaps_gets_every_event_once, close_leftovers),
        cmocka_unit_test_setup(test_resume_while_events_are_written, close_leftovers),
        cmocka_unit_test_setup(test_large_backlog_in_pieces_and_server_responsive, close_leftovers),
        cmocka_unit_test_setup(test_reader_behind_the_ring_misses_nothing, close_leftovers),
        cmocka_unit_test_setup(test_subscriber_limit, close_leftovers),
    };
    const struct CMUnitTest sync[] = {
        cmocka_unit_test_setup(test_sync_timeout_is_capped, close_leftovers),
        cmocka_unit_test_setup(test_sync_errors_are_capped, close_leftovers),
        cmocka_unit_test_setup(test_sync_wait_holds_no_thread, close_leftovers),
    };
    int failed = cmocka_run_group_tests_name("events", events, group_setup, group_teardown);
    failed += cmocka_run_group_tests_name("sync", sync, sync_setup, sync_teardown);
    return failed;
}
