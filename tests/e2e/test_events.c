/* Live events: 200 subscribers on one instance see every event of a 1,000-operation run, in
 * order, while a second instance produces half of them; a subscriber that stops reading holds
 * nobody up; Last-Event-ID resumes; filters. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "upstream.h"

#define DB "e2e_events"
#define SUBSCRIBERS 200
#define OPS 1000

struct sub {
    int fd;
    char *buf;
    size_t len, cap;
    int seen; /* operation events */
    unsigned long long last_xid;
    long long last_id, last_k;
    bool ordered;
    char **ids; /* "xid-id-k" of each operation event, when keep_ids */
    bool keep_ids;
    char first_type[40];
};

static int connect_events(int port, const char *query, const char *last_id, bool tiny_buffer)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (tiny_buffer) {
        int sz = 1024;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    char req[512];
    int n = snprintf(
        req, sizeof(req), "GET /api/offline/events%s HTTP/1.0\r\nHost: 127.0.0.1\r\n%s%s%s\r\n",
        query, last_id ? "Last-Event-ID: " : "", last_id ? last_id : "", last_id ? "\r\n" : "");
    assert_int_equal(write(fd, req, (size_t)n), n);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

/* Takes the complete frames out of s->buf. */
static void parse(struct sub *s)
{
    char *start = s->buf;
    char *end;
    while ((end = strstr(start, "\n\n")) != NULL) {
        *end = '\0';
        const char *id = strstr(start, "id: ");
        const char *ev = strstr(start, "event: ");
        if (id != NULL && ev != NULL && strncmp(ev + 7, "operation.", 10) == 0) {
            unsigned long long x = 0;
            long long i = 0, k = 0;
            if (sscanf(id + 4, "%llu-%lld-%lld", &x, &i, &k) != 3)
                s->ordered = false; /* every id is XID-N-K */
            if (x < s->last_xid || (x == s->last_xid && i < s->last_id) ||
                (x == s->last_xid && i == s->last_id && k <= s->last_k))
                s->ordered = false;
            s->last_xid = x;
            s->last_id = i;
            s->last_k = k;
            if (s->seen == 0)
                sscanf(ev + 7, "%39[^\n]", s->first_type);
            if (s->keep_ids) {
                s->ids = realloc(s->ids, (size_t)(s->seen + 1) * sizeof(char *));
                char tmp[64];
                sscanf(id + 4, "%63[^\n]", tmp);
                s->ids[s->seen] = strdup(tmp);
            }
            s->seen++;
        }
        start = end + 2;
    }
    size_t rest = s->len - (size_t)(start - s->buf);
    memmove(s->buf, start, rest + 1);
    s->len = rest;
}

static void pump(struct sub *subs, int n, int want, int timeout_ms)
{
    double until = th_now_ms() + timeout_ms;
    struct pollfd *p = calloc((size_t)n, sizeof(*p));
    for (;;) {
        int done = 0;
        for (int i = 0; i < n; i++) {
            p[i].fd = subs[i].fd;
            p[i].events = POLLIN;
            done += subs[i].seen >= want;
        }
        if (done == n || th_now_ms() > until)
            break;
        poll(p, (nfds_t)n, 100);
        for (int i = 0; i < n; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP)))
                continue;
            struct sub *s = &subs[i];
            if (s->cap - s->len < 65536) {
                s->cap = s->cap ? s->cap * 2 : 131072;
                s->buf = realloc(s->buf, s->cap);
            }
            ssize_t got = read(s->fd, s->buf + s->len, s->cap - s->len - 1);
            if (got > 0) {
                s->len += (size_t)got;
                s->buf[s->len] = '\0';
                parse(s);
            }
        }
    }
    free(p);
}

static void close_sub(struct sub *s)
{
    close(s->fd);
    for (int i = 0; s->ids && i < s->seen; i++)
        free(s->ids[i]);
    free(s->ids);
    free(s->buf);
}

static void enqueue_half(const struct svc *s, int from, int to)
{
    for (int start = from; start < to; start += 250) {
        char *body = malloc(250 * 110 + 64);
        size_t o = (size_t)sprintf(body, "{\"operations\":[");
        for (int i = start; i < start + 250 && i < to; i++)
            o += (size_t)sprintf(
                body + o,
                "%s{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/e/%d\"}}",
                i > start ? "," : "", i);
        sprintf(body + o, "]}");
        struct resp *r = th_json(s, "POST", "/api/offline/queue/batch", body);
        assert_int_equal(r->status, 201);
        th_resp_free(r);
        free(body);
    }
}

static void test_fan_out_order_resume_and_filters(void **state)
{
    struct upstream_srv *us = us_start();
    char url[512], up[128];
    snprintf(up, sizeof(up), "OFFLINEQ_UPSTREAMS=default=%s", us_url(us));
    th_db_create(DB, url, sizeof(url));
    const char *env_a[] = {up, "OFFLINEQ_WORKERS=2", NULL};
    struct svc a, b;
    assert_int_equal(th_svc_start(&a, url, env_a, NULL), 0);
    assert_int_equal(th_svc_start(&b, url, env_a, NULL), 0);

    struct sub *subs = calloc(SUBSCRIBERS, sizeof(*subs));
    for (int i = 0; i < SUBSCRIBERS; i++) {
        subs[i].fd = connect_events(a.port, "", NULL, false);
        subs[i].ordered = true;
        subs[i].keep_ids = i == 0;
    }
    struct sub stalled = {.fd = connect_events(a.port, "", NULL, true)}; /* never read */
    usleep(500000);

    double t0 = th_now_ms();
    enqueue_half(&a, 0, OPS / 2);
    enqueue_half(&b, OPS / 2, OPS);
    const int want = 3 * OPS; /* enqueued, started, completed */
    pump(subs, SUBSCRIBERS, want, 90000);
    double secs = (th_now_ms() - t0) / 1000;
    int short_of = 0, min_seen = want;
    for (int i = 0; i < SUBSCRIBERS; i++) {
        short_of += subs[i].seen != want;
        min_seen = subs[i].seen < min_seen ? subs[i].seen : min_seen;
    }
    if (short_of) {
        PGconn *dbg = th_db_connect(url);
        fprintf(stderr,
                "%d subscribers short, fewest events %d; the log holds %s operation events, "
                "%s operations completed; subscriber 0 is at %llu-%lld-%lld\n",
                short_of, min_seen,
                th_sql(dbg, "SELECT count(*) FROM offlineq_event_stream "
                            "WHERE type LIKE 'operation.%'"),
                th_sql(dbg, "SELECT count(*) FROM offline_operations WHERE status = 'completed'"),
                subs[0].last_xid, subs[0].last_id, subs[0].last_k);
        PGresult *all =
            PQexec(dbg, "SELECT event_id, type, data ->> 'at' FROM offlineq_event_stream "
                        "WHERE type LIKE 'operation.%' ORDER BY xid, id, k");
        int k = 0, shown = 0;
        for (int row = 0; row < PQntuples(all) && shown < 5; row++) {
            if (k < subs[0].seen && strcmp(subs[0].ids[k], PQgetvalue(all, row, 0)) == 0) {
                k++;
                continue;
            }
            fprintf(stderr, "missing %s %s %s (next seen %s)\n", PQgetvalue(all, row, 0),
                    PQgetvalue(all, row, 1), PQgetvalue(all, row, 2),
                    k < subs[0].seen ? subs[0].ids[k] : "-");
            shown++;
        }
        PQclear(all);
        PQfinish(dbg);
    }
    for (int i = 0; i < SUBSCRIBERS; i++) {
        if (subs[i].seen != want || !subs[i].ordered)
            fprintf(stderr, "subscriber %d: %d of %d events, ordered %d\n", i, subs[i].seen, want,
                    subs[i].ordered);
        assert_int_equal(subs[i].seen, want);
        assert_true(subs[i].ordered);
    }
    fprintf(stderr, "%d subscribers x %d events in %.1f s, one stalled subscriber alongside\n",
            SUBSCRIBERS, want, secs);

    /* exactly the log's operation events, in its (xid, id) order */
    PGconn *pg = th_db_connect(url);
    PGresult *r = PQexec(pg, "SELECT event_id FROM offlineq_event_stream "
                             "WHERE type LIKE 'operation.%' ORDER BY xid, id, k");
    assert_int_equal(PQntuples(r), want);
    for (int i = 0; i < want; i++)
        assert_string_equal(subs[0].ids[i], PQgetvalue(r, i, 0));
    /* both instances did work: started events came from both (claims by either) */
    assert_string_equal(
        th_sql(pg, "SELECT count(*) FROM offline_operations WHERE status = 'completed'"), "1000");

    /* resume after the 1000th event: the remaining 2000, in order, nothing before */
    struct sub resumed = {.fd = connect_events(a.port, "", subs[0].ids[999], false),
                          .ordered = true,
                          .keep_ids = true};
    pump(&resumed, 1, want - 1000, 20000);
    assert_int_equal(resumed.seen, want - 1000);
    assert_true(resumed.ordered);
    assert_string_equal(resumed.ids[0], subs[0].ids[1000]);
    /* resuming from an event older than the instance's memory reads the log */
    struct sub from_start = {.fd = connect_events(a.port, "", "0-0", false), .ordered = true};
    pump(&from_start, 1, want, 20000);
    assert_int_equal(from_start.seen, want);
    assert_string_equal(from_start.first_type, "operation.enqueued");

    /* filters: one operation's three events; another type sees none of these */
    char q[128];
    char first_op[37];
    PGresult *one = PQexec(pg, "SELECT op_id::text FROM offlineq_event_stream WHERE type = "
                               "'operation.enqueued' ORDER BY xid, id, k LIMIT 1");
    snprintf(first_op, sizeof(first_op), "%s", PQgetvalue(one, 0, 0));
    PQclear(one);
    snprintf(q, sizeof(q), "?id=%s", first_op);
    struct sub by_id = {.fd = connect_events(a.port, q, "0-0", false), .ordered = true};
    struct sub by_type = {.fd = connect_events(a.port, "?operation_type=metric_log", "0-0", false),
                          .ordered = true};
    pump(&by_id, 1, 3, 10000);
    usleep(300000);
    pump(&by_id, 1, 4, 300);
    pump(&by_type, 1, 1, 1000);
    assert_int_equal(by_id.seen, 3);
    assert_int_equal(by_type.seen, 0);
    /* a bad Last-Event-ID is refused */
    struct resp *bad = th_http(&a, "GET", "/api/offline/events?last_event_id=abc", NULL, 0, NULL);
    th_assert_error(bad, 400, "invalid_request");
    th_resp_free(bad);

    PQclear(r);
    PQfinish(pg);
    close_sub(&stalled);
    close_sub(&resumed);
    close_sub(&from_start);
    close_sub(&by_id);
    close_sub(&by_type);
    for (int i = 0; i < SUBSCRIBERS; i++)
        close_sub(&subs[i]);
    free(subs);
    assert_int_equal(th_svc_stop(&a, SIGTERM), 0);
    assert_int_equal(th_svc_stop(&b, SIGTERM), 0);
    us_stop(us);
    th_db_drop(DB);
}

/* A database of its own with n operations enqueued by a service that delivers nothing, and a
 * connection to it (th_group_stop ends it). */
static PGconn *start_without_workers(const char *db, struct svc *a, int n)
{
    const char *env[] = {"OFFLINEQ_WORKERS=0", "OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9",
                         NULL};
    PGconn *pg;
    assert_int_equal(th_group_start(db, env, a, &pg, NULL, 0), 0);
    enqueue_half(a, 0, n);
    return pg;
}

/* Every event row lists its operations in seq order (the stream's k follows it), also when a
 * statement reads its rows in another order: here the even ones were moved to later pages by
 * a first update, so the second update meets the odd ones first. */
static void test_event_arrays_in_seq_order(void **state)
{
    (void)state;
    struct svc a;
    PGconn *pg = start_without_workers(DB "_order", &a, 500);
    th_sql(pg, "UPDATE offline_operations SET status = 'failed', "
               "  payload = payload || jsonb_build_object('pad', repeat('x', 300)) "
               "WHERE seq % 2 = 0");
    th_sql(pg, "UPDATE offline_operations SET status = 'conflict'");
    assert_string_equal(th_sql(pg, "SELECT string_agg(e.type || ':' || cardinality(e.op_ids), "
                                   "  ',' ORDER BY e.xid, e.id) FROM offlineq_events e "
                                   "WHERE e.op_ids IS NOT NULL"),
                        "operation.enqueued:250,operation.enqueued:250,operation.failed:250,"
                        "operation.conflict:500");
    assert_string_equal(th_sql(pg,
                               "SELECT count(*) FROM offlineq_events e "
                               "WHERE e.op_ids IS NOT NULL AND e.op_ids <> ("
                               "  SELECT array_agg(o.id ORDER BY o.seq) FROM unnest(e.op_ids) u "
                               "  JOIN offline_operations o ON o.id = u)"),
                        "0");
    th_group_stop(DB "_order", &a, pg);
}

/* The plans auto_explain sends to the test's session as notices, appended to a buffer. */
struct notices {
    char *data;
    size_t len;
};

static void keep_notice(void *arg, const char *message)
{
    struct notices *t = arg;
    size_t n = strlen(message); /* each notice ends with a \x01 */
    t->data = realloc(t->data, t->len + n + 2);
    memcpy(t->data + t->len, message, n);
    t->len += n;
    t->data[t->len++] = '\x01';
    t->data[t->len] = '\0';
}

/* The update trigger pairs each operation's old and new row without a join of the transition
 * tables: PL/pgSQL keeps the plan of a session's first call, and a join planned for a one-row
 * update was a nested loop that compared 128 x 128 rows (6.8 ms) at every later claim of 128. */
static void test_event_pairs_after_a_one_row_update(void **state)
{
    (void)state;
    struct svc a;
    PGconn *pg = start_without_workers(DB "_pairs", &a, 250);
    struct notices plans = {calloc(1, 1), 0};
    PQsetNoticeProcessor(pg, keep_notice, &plans);
    th_sql(pg, "LOAD 'auto_explain'");
    th_sql(pg, "SET auto_explain.log_min_duration = 0");
    th_sql(pg, "SET auto_explain.log_nested_statements = on");
    th_sql(pg, "SET auto_explain.log_analyze = on");
    th_sql(pg, "SET auto_explain.log_level = notice");
    th_sql(pg, "UPDATE offline_operations SET status = 'in_progress' "
               "WHERE seq = (SELECT min(seq) FROM offline_operations)");
    plans.len = 0;
    plans.data[0] = '\0';
    th_sql(pg, "UPDATE offline_operations SET status = 'in_progress' WHERE seq IN ("
               "  SELECT seq FROM offline_operations WHERE status = 'pending' "
               "  ORDER BY seq LIMIT 128)");
    const char *insert = strstr(plans.data, "Insert on offlineq_events");
    assert_non_null(insert);
    const char *end = strchr(insert, '\x01');
    size_t n = end != NULL ? (size_t)(end - insert) : strlen(insert);
    char *plan = strndup(insert, n);
    if (strstr(plan, "Join") != NULL)
        fprintf(stderr, "the event insert's plan: %s\n", plan);
    assert_null(strstr(plan, "Join"));
    free(plan);
    assert_string_equal(th_sql(pg, "SELECT string_agg(e.type || ':' || cardinality(e.op_ids), "
                                   "  ',' ORDER BY e.xid, e.id) FROM offlineq_events e "
                                   "WHERE e.type = 'operation.started'"),
                        "operation.started:1,operation.started:128");
    free(plans.data);
    th_group_stop(DB "_pairs", &a, pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fan_out_order_resume_and_filters),
        cmocka_unit_test(test_event_arrays_in_seq_order),
        cmocka_unit_test(test_event_pairs_after_a_one_row_update),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
