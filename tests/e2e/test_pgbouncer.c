/* Through PgBouncer (issue 15 point 7), Debian 12's 1.18 with a plain configuration
 * (tests/support/pgbouncer.sh): in session pooling the queue API, deliveries, the event stream
 * and an outbox row's NOTIFY all work; in transaction (and statement) pooling the service
 * refuses to start and says why. */
#include <arpa/inet.h>
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

#define DB "e2e_pgbouncer"

static struct upstream_srv *US;

struct bouncer {
    char dir[256];
    int port;
    char url[512]; /* the service's database URL: DB through this PgBouncer */
};

static void bouncer_start(struct bouncer *b, const char *mode)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s/tests/support/pgbouncer.sh' start %s '%s' %d",
             getenv("OFFLINEQ_SOURCE_DIR"), mode, getenv("OFFLINEQ_TEST_PGENV"), (int)getpid());
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int got = fscanf(p, "%255s %d", b->dir, &b->port);
    assert_int_equal(pclose(p), 0);
    assert_int_equal(got, 2);
    snprintf(b->url, sizeof(b->url), "postgresql://postgres@127.0.0.1:%d/" DB, b->port);
}

static void bouncer_stop(struct bouncer *b)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "'%s/tests/support/pgbouncer.sh' stop '%s'",
             getenv("OFFLINEQ_SOURCE_DIR"), b->dir);
    assert_int_equal(system(cmd), 0);
}

/* GET /api/offline/events on a raw socket (the stream never ends); returns the fd. */
static int events_open(const struct svc *s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    static const char req[] = "GET /api/offline/events HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

/* Reads fd into buf (NUL-terminated, cap bytes) until it holds needle or timeout_ms pass. */
static bool events_wait(int fd, char *buf, size_t cap, size_t *len, const char *needle,
                        int timeout_ms)
{
    double until = th_now_ms() + timeout_ms;
    while (strstr(buf, needle) == NULL && th_now_ms() < until && *len + 1 < cap) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, 100);
        ssize_t got = read(fd, buf + *len, cap - *len - 1);
        if (got > 0) {
            *len += (size_t)got;
            buf[*len] = '\0';
        }
    }
    return strstr(buf, needle) != NULL;
}

static void test_session_pooling(void **state)
{
    (void)state;
    char direct[512], env_up[300];
    th_db_create(DB, direct, sizeof(direct));
    struct bouncer b;
    bouncer_start(&b, "session");
    snprintf(env_up, sizeof(env_up), "OFFLINEQ_UPSTREAMS=default=%s", us_url(US));
    /* Only a NOTIFY, or this instance's own enqueue, wakes the worker within a minute. */
    const char *const env[] = {env_up, "OFFLINEQ_WORKERS=1", "OFFLINEQ_POLL_MS=60000", NULL};
    struct svc s;
    assert_int_equal(th_svc_start(&s, b.url, env, NULL), 0);
    PGconn *pg = th_db_connect(direct);
    /* the session settings held through the pooler: everything went into schema offlineq */
    assert_string_equal(th_sql(pg, "SELECT to_regclass('offlineq.offline_operations') IS NOT NULL "
                                   "AND to_regclass('public.offline_operations') IS NULL"),
                        "t");
    struct resp *r = th_http(&s, "GET", "/readyz", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    th_resp_free(r);

    int fd = events_open(&s);
    static char buf[1 << 16];
    size_t len = 0;
    buf[0] = '\0';
    assert_true(events_wait(fd, buf, sizeof(buf), &len, "\r\n\r\n", 5000)); /* headers */
    assert_int_equal(strncmp(strchr(buf, ' '), " 200 ", 5), 0);

    char id[37], path[96];
    th_enqueue(&s, "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/b/api\"}}", id);
    json_t *op = th_wait_op(&s, id, TH_SETTLED, 10000);
    assert_string_equal(th_str(op, "status"), "completed");
    json_decref(op);
    assert_int_equal(us_count(US, "/b/api"), 1);
    r = th_http(&s, "GET", "/api/offline/queue?status=completed", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    json_t *items = json_object_get(r->json, "operations");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(th_str(json_array_get(items, 0), "id"), id);
    th_resp_free(r);
    snprintf(path, sizeof(path), "/api/offline/queue/%s", id);
    r = th_http(&s, "GET", path, NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_string_equal(th_str(r->json, "status"), "completed");
    th_resp_free(r);
    /* the stream saw it enqueued and completed */
    char want[128];
    snprintf(want, sizeof(want), "\"id\": \"%s\", \"type\": \"operation.completed\"", id);
    if (!events_wait(fd, buf, sizeof(buf), &len, want, 5000))
        fail_msg("no %s in the stream: %s", want, buf);
    snprintf(want, sizeof(want), "\"id\": \"%s\", \"type\": \"operation.enqueued\"", id);
    assert_non_null(strstr(buf, want));
    close(fd);

    /* An outbox row stored by the application, on a direct connection: its NOTIFY reaches the
     * listener's LISTEN through the pooler and wakes the worker at once. */
    assert_string_equal(th_sql(pg, "SELECT count(*) FROM pg_stat_activity WHERE datname = '" DB
                                   "' AND query LIKE 'LISTEN offlineq_wakeup;%'"),
                        "1");
    th_sql(pg, "SELECT offlineq.enqueue('api_call', '{\"endpoint\":\"/b/outbox\"}')");
    assert_int_equal(us_wait_count(US, "/b/outbox", 1, 5000), 1);

    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    PQfinish(pg);
    bouncer_stop(&b);
    th_db_drop(DB);
}

/* Transaction and statement pooling: refused at start-up, before anything is migrated. */
static void test_transaction_pooling_refused(void **state)
{
    (void)state;
    static const char *const modes[] = {"transaction", "statement"};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        char direct[512];
        th_db_create(DB, direct, sizeof(direct));
        struct bouncer b;
        bouncer_start(&b, modes[i]);
        struct svc s;
        int code = 0;
        assert_int_equal(th_svc_start(&s, b.url, NULL, &code), -1);
        assert_int_equal(code, 1);
        char *log = th_svc_log(&s);
        if (strstr(log, "start-up failed: connections to the database are pooled per "
                        "transaction (two sessions ran on one server process): use PgBouncer's "
                        "pool_mode = session, or connect directly; offlineq keeps prepared "
                        "statements, LISTEN and settings per session\"") == NULL)
            fail_msg("pool_mode %s: %s", modes[i], log);
        free(log);
        PGconn *pg = th_db_connect(direct);
        assert_string_equal(th_sql(pg, "SELECT to_regnamespace('offlineq') IS NULL"), "t");
        PQfinish(pg);
        bouncer_stop(&b);
        th_db_drop(DB);
    }
}

static int setup(void **state)
{
    (void)state;
    US = us_start();
    return US != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    us_stop(US);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_pooling),
        cmocka_unit_test(test_transaction_pooling_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
