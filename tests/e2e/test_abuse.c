/* Hostile and malformed input at the HTTP level against the running service: every case gets
 * a clear answer (or a clean close), changes nothing, and leaves the service serving others. */
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define DB "e2e_abuse"
static struct svc S;
static PGconn *pg;

static int group_setup(void **state)
{
    static const char *const env[] = {"OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9",
                                      "OFFLINEQ_MAX_BODY_BYTES=65536", NULL};
    return th_group_start(DB, env, &S, &pg, NULL, 0);
}

static int group_teardown(void **state)
{
    th_group_stop(DB, &S, pg);
    return 0;
}

static const char *count_ops(void)
{
    return th_sql(pg, "SELECT count(*) FROM offline_operations");
}

/* A TCP connection to port from a loopback address of our choice (127.0.0.x are all local). */
static int connect_from(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in me = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &me.sin_addr);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&me, sizeof(me)) != 0 ||
        connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads what arrives within ms (or until the peer closes). Returns bytes read, -1 on reset. */
static ssize_t read_for(int fd, char *buf, size_t len, int ms)
{
    size_t got = 0;
    double until = th_now_ms() + ms;
    while (got < len - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(until - th_now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t n = read(fd, buf + got, len - 1 - got);
        if (n < 0)
            return errno == ECONNRESET ? -1 : (ssize_t)got;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    return (ssize_t)got;
}

static void post_raw_json(const char *body, size_t len, long status, const char *code)
{
    static const char *const h[] = {"Content-Type: application/json", NULL};
    struct resp *r = th_http(&S, "POST", "/api/offline/queue", body, (long)len, h);
    th_assert_error(r, status, code);
    th_resp_free(r);
}

static void test_malformed_json_is_400_and_stores_nothing(void **state)
{
    const char *before = strdup(count_ops());
    static const char bad_utf8[] =
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/\xff\xfe\"}}";
    post_raw_json(bad_utf8, sizeof(bad_utf8) - 1, 400, "invalid_json");
    static const char nul_byte[] =
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/a\0b\"}}";
    post_raw_json(nul_byte, sizeof(nul_byte) - 1, 400, "invalid_json");
    const char *escaped_nul =
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/a\\u0000b\"}}";
    post_raw_json(escaped_nul, strlen(escaped_nul), 400, "invalid_json");
    const char *dup =
        "{\"operation_type\":\"api_call\",\"operation_type\":\"metric_log\",\"payload\":{}}";
    post_raw_json(dup, strlen(dup), 400, "invalid_json");
    const char *huge_int =
        "{\"operation_type\":\"api_call\",\"priority\":123456789012345678901234567890,"
        "\"payload\":{\"endpoint\":\"/x\"}}";
    post_raw_json(huge_int, strlen(huge_int), 400,
                  "invalid_request"); /* valid JSON; priority out of range */
    /* RFC 8259 allows any number and PostgreSQL stores this one: accepted (test_security_json.c) */
    const char *huge_real =
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\",\"data\":1e999}}";
    struct resp *accepted = th_json(&S, "POST", "/api/offline/queue", huge_real);
    assert_int_equal(accepted->status, 201);
    th_resp_free(accepted);
    const char *too_big =
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\",\"data\":1e999999}}";
    post_raw_json(too_big, strlen(too_big), 400, "invalid_json"); /* beyond PostgreSQL's numeric */
    const char *big_prio = "{\"operation_type\":\"api_call\",\"priority\":9007199254740993,"
                           "\"payload\":{\"endpoint\":\"/x\"}}";
    post_raw_json(big_prio, strlen(big_prio), 400, "invalid_request");
    const char *truncated = "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":";
    post_raw_json(truncated, strlen(truncated), 400, "invalid_json");
    /* nesting: 65 levels in all are refused (the limit is 64), 60 are fine */
    char deep[1024];
    for (int depth = 60; depth <= 65; depth += 5) {
        int o =
            snprintf(deep, sizeof(deep),
                     "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/d\",\"data\":");
        for (int i = 0; i < depth - 2; i++)
            deep[o++] = '[';
        for (int i = 0; i < depth - 2; i++)
            deep[o++] = ']';
        o += snprintf(deep + o, sizeof(deep) - (size_t)o, "}}");
        struct resp *r = th_json(&S, "POST", "/api/offline/queue", deep);
        if (depth == 60) {
            assert_int_equal(r->status, 201);
        } else {
            th_assert_error(r, 400, "invalid_json");
            assert_non_null(strstr(th_str(json_object_get(r->json, "error"), "message"), "64"));
        }
        th_resp_free(r);
    }
    /* far deeper than any parser limit: still a 400, never a crash */
    size_t n = 60000;
    char *abyss = malloc(n + 1);
    memset(abyss, '[', n);
    abyss[n] = '\0';
    post_raw_json(abyss, n, 400, "invalid_json");
    free(abyss);
    char want[32];
    snprintf(want, sizeof(want), "%d", atoi(before) + 2); /* the 60-deep one and 1e999 */
    assert_string_equal(count_ops(), want);
    free((void *)before);
}

/* Over the limit: 413 as soon as the headers announce it, before a byte of the body. */
static void test_oversized_body_refused_before_reading(void **state)
{
    int fd = connect_from("127.0.0.1", S.port);
    assert_true(fd >= 0);
    const char *head =
        "POST /api/offline/queue HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 10000000\r\n\r\n";
    assert_true(write(fd, head, strlen(head)) == (ssize_t)strlen(head));
    char reply[4096];
    double t0 = th_now_ms();
    assert_true(read_for(fd, reply, sizeof(reply), 2000) > 0);
    assert_true(th_now_ms() - t0 < 1000);
    assert_non_null(strstr(reply, "HTTP/1.1 413"));
    assert_non_null(strstr(reply, "payload_too_large"));
    close(fd);
}

/* Writes all of p, or false once the peer closed (no SIGPIPE). */
static bool send_fully(int fd, const void *p, size_t n)
{
    for (size_t done = 0; done < n;) {
        ssize_t w = send(fd, (const char *)p + done, n - done, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        done += (size_t)w;
    }
    return true;
}

/* A little over the limit, from a client that does not wait for "100 Continue" (the harness's
 * libcurl, Node's fetch, Python's requests): the body is read and dropped, then the 413, and the
 * connection stays usable. Before, the 413 went out from the headers and the connection closed
 * under the body still being written: the client saw "connection reset" instead of the 413 (a
 * CI run's test_limits_round_trip). */
static void test_slightly_oversized_body_gets_its_413(void **state)
{
    int fd = connect_from("127.0.0.1", S.port);
    assert_true(fd >= 0);
    size_t n = 65536 + 40000;
    char head[256];
    snprintf(head, sizeof(head),
             "POST /api/offline/queue HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
             n);
    assert_true(send_fully(fd, head, strlen(head)));
    usleep(300 * 1000); /* the body comes after the server saw the headers */
    char *body = malloc(n);
    memset(body, ' ', n);
    assert_true(send_fully(fd, body, n));
    free(body);
    char reply[4096];
    assert_true(read_for(fd, reply, sizeof(reply), 1000) > 0);
    assert_int_equal(strncmp(reply, "HTTP/1.1 413", 12), 0);
    assert_non_null(strstr(reply, "request body is larger than 65536 bytes"));
    assert_null(strstr(reply, "Connection: close"));
    const char *next = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    assert_true(send_fully(fd, next, strlen(next)));
    assert_true(read_for(fd, reply, sizeof(reply), 1000) > 0);
    assert_int_equal(strncmp(reply, "HTTP/1.1 200", 12), 0);
    close(fd);
}

/* A client that waits for "100 Continue" gets the 413 instead, and sends no body. */
static void test_oversized_body_with_expect_refused_at_once(void **state)
{
    int fd = connect_from("127.0.0.1", S.port);
    assert_true(fd >= 0);
    const char *head = "POST /api/offline/queue HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Content-Type: application/json\r\nContent-Length: 70000\r\n"
                       "Expect: 100-continue\r\n\r\n";
    assert_true(send_fully(fd, head, strlen(head)));
    char reply[4096];
    assert_true(read_for(fd, reply, sizeof(reply), 2000) > 0);
    assert_int_equal(strncmp(reply, "HTTP/1.1 413", 12), 0);
    assert_null(strstr(reply, "100 Continue"));
    assert_non_null(strstr(reply, "payload_too_large"));
    close(fd);
}

/* A chunked body (no length to refuse it by) that goes on past twice the limit: the connection
 * is closed, instead of reading and dropping it for as long as the client keeps sending. */
static void test_endless_chunked_body_is_cut_off(void **state)
{
    int fd = connect_from("127.0.0.1", S.port);
    assert_true(fd >= 0);
    const char *head = "POST /api/offline/queue HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_true(send_fully(fd, head, strlen(head)));
    static char piece[16384];
    memset(piece, ' ', sizeof(piece));
    bool closed = false;
    for (int i = 0; i < 64 && !closed; i++) /* 1 MiB, 16 times the limit */
        closed = !send_fully(fd, "4000\r\n", 6) || !send_fully(fd, piece, sizeof(piece)) ||
                 !send_fully(fd, "\r\n", 2);
    char reply[256];
    ssize_t got = closed ? 0 : read_for(fd, reply, sizeof(reply), 2000);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    bool eof = closed || got < 0 || (poll(&p, 1, 0) == 1 && recv(fd, reply, 1, 0) <= 0);
    assert_true(eof);
    close(fd);
    struct resp *r = th_http(&S, "GET", "/healthz", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    th_resp_free(r);
}

/* A body cut short (the client goes away): nothing is stored, the service goes on. */
static void test_truncated_body_stores_nothing(void **state)
{
    const char *before = strdup(count_ops());
    const char *body =
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/truncated\"}}";
    char head[256];
    snprintf(head, sizeof(head),
             "POST /api/offline/queue HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
             strlen(body));
    int fd = connect_from("127.0.0.1", S.port);
    assert_true(write(fd, head, strlen(head)) == (ssize_t)strlen(head));
    assert_true(write(fd, body, 20) == 20);
    shutdown(fd, SHUT_WR);
    char reply[1024];
    read_for(fd, reply, sizeof(reply), 1500);
    assert_null(strstr(reply, "201"));
    close(fd);
    usleep(200 * 1000);
    assert_string_equal(count_ops(), before);
    assert_string_equal(
        th_sql(pg,
               "SELECT count(*) FROM offline_operations WHERE payload->>'endpoint' = '/truncated'"),
        "0");
    struct resp *r = th_http(&S, "GET", "/healthz", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    th_resp_free(r);
    free((void *)before);
}

static void test_path_traversal_in_ids_is_404(void **state)
{
    static const char *const paths[] = {
        "/api/offline/queue/..",
        "/api/offline/queue/../stats",
        "/api/offline/queue/..%2F..%2Fetc%2Fpasswd",
        "/api/offline/files/..%2f..%2fetc%2fpasswd",
        "/api/offline/files/%00",
        "/api/offline/queue/00000000-0000-4000-8000-000000000000%27%20OR%20%271%27=%271",
        NULL};
    for (const char *const *p = paths; *p; p++) {
        struct resp *r = th_http(&S, "GET", *p, NULL, 0, NULL);
        if (r->status != 404)
            fprintf(stderr, "%s: %ld %s\n", *p, r->status, r->body);
        th_assert_error(r, 404, "not_found");
        th_resp_free(r);
    }
    static const char *const posts[] = {"/api/offline/queue/%2e%2e/retry",
                                        "/api/offline/queue/..%2Fstats/retry", NULL};
    for (const char *const *p = posts; *p; p++) {
        struct resp *r = th_http(&S, "POST", *p, NULL, 0, NULL);
        th_assert_error(r, 404, "not_found");
        th_resp_free(r);
    }
}

/* SQL metacharacters anywhere are data: stored and returned verbatim, never executed. */
static void test_sql_metacharacters_stored_verbatim(void **state)
{
    const char *body =
        "{\"operation_type\":\"api_call\",\"dedup_key\":\"k'; DROP TABLE offline_operations; --\","
        "\"group_key\":\"g\\\"); DELETE FROM offlineq_settings; --\","
        "\"payload\":{\"endpoint\":\"/x?id=1'OR'1'='1;--\",\"data\":{\"q\":\"$1 $$ \\\\ ; -- /* */ "
        "E'\\\\x00'\"},"
        "\"headers\":{\"X-Note\":\"'); SELECT pg_sleep(10); --\"}}}";
    struct resp *r = th_json(&S, "POST", "/api/offline/queue", body);
    assert_int_equal(r->status, 201);
    char path[96];
    snprintf(path, sizeof(path), "/api/offline/queue/%s", th_str(r->json, "id"));
    th_resp_free(r);
    r = th_http(&S, "GET", path, NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_string_equal(th_str(r->json, "dedup_key"), "k'; DROP TABLE offline_operations; --");
    assert_string_equal(th_str(r->json, "group_key"), "g\"); DELETE FROM offlineq_settings; --");
    const json_t *p = json_object_get(r->json, "payload");
    assert_string_equal(th_str(p, "endpoint"), "/x?id=1'OR'1'='1;--");
    assert_string_equal(th_str(json_object_get(p, "data"), "q"), "$1 $$ \\ ; -- /* */ E'\\x00'");
    th_resp_free(r);
    /* a filter is a value compared, not SQL: it matches nothing */
    r = th_http(&S, "GET",
                "/api/offline/queue?operation_type=api_call'%20OR%20'1'='1&status=pending", NULL, 0,
                NULL);
    assert_int_equal(r->status, 200);
    assert_int_equal(json_array_size(json_object_get(r->json, "operations")), 0);
    th_resp_free(r);
    assert_string_equal(th_sql(pg, "SELECT count(*) > 0 FROM offlineq_settings"), "t");
}

/* One address holding many slow connections cannot starve another address, and connections
 * past OFFLINEQ_MAX_CONNECTIONS_PER_IP are closed at once; an idle one is closed after
 * OFFLINEQ_CONN_TIMEOUT_S. */
static void test_slow_clients_capped_per_address(void **state)
{
    char other[512];
    th_db_create(DB "_slow", other, sizeof(other));
    struct svc s;
    static const char *const env[] = {"OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9",
                                      "OFFLINEQ_MAX_CONNECTIONS_PER_IP=8",
                                      "OFFLINEQ_CONN_TIMEOUT_S=2", "OFFLINEQ_HTTP_THREADS=2", NULL};
    assert_int_equal(th_svc_start(&s, other, env, NULL), 0);
    int fds[20];
    int refused = 0;
    for (int i = 0; i < 20; i++) {
        fds[i] = connect_from("127.0.0.2", s.port);
        assert_true(fds[i] >= 0);
        /* a request trickled one byte at a time */
        assert_true(write(fds[i], "G", 1) == 1);
    }
    usleep(300 * 1000);
    for (int i = 0; i < 20; i++) {
        char buf[64];
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        if (poll(&p, 1, 0) == 1 && read(fds[i], buf, sizeof(buf)) <= 0)
            refused++;
    }
    assert_int_equal(refused, 12);         /* 8 held, the rest closed */
    for (int step = 0; step < 3; step++) { /* keep trickling: 'E', 'T', ' ' */
        for (int i = 0; i < 20; i++)
            if (write(fds[i], &"ET "[step], 1) < 0) { /* closed ones fail: fine */
            }
        /* meanwhile another address is served at once */
        double t0 = th_now_ms();
        struct resp *r = th_http(&s, "GET", "/api/offline/queue/stats", NULL, 0, NULL);
        assert_int_equal(r->status, 200);
        assert_true(th_now_ms() - t0 < 500);
        th_resp_free(r);
        usleep(500 * 1000);
    }
    /* an idle connection is closed after the timeout */
    int idle = connect_from("127.0.0.3", s.port);
    char buf[64];
    double t0 = th_now_ms();
    assert_true(read_for(idle, buf, sizeof(buf), 5000) <= 0);
    double waited = th_now_ms() - t0;
    assert_true(waited > 1500 && waited < 4500);
    close(idle);
    for (int i = 0; i < 20; i++)
        close(fds[i]);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    th_db_drop(DB "_slow");
}

/* 1,000 idle connections are held (the defaults allow 1,024 per address) while a normal request
 * from another connection is still answered. */
static void test_thousand_idle_connections(void **state)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 1200)
        fail_msg("RLIMIT_NOFILE hard limit %llu is too low for this test",
                 (unsigned long long)rl.rlim_cur);
    enum { N = 1000 };
    static int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = connect_from("127.0.0.4", S.port);
        assert_true(fds[i] >= 0);
    }
    usleep(300 * 1000);
    int open = 0;
    for (int i = 0; i < N; i++) {
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        open += poll(&p, 1, 0) == 0; /* nothing to read: still open and waiting */
    }
    assert_int_equal(open, N);
    double t0 = th_now_ms();
    struct resp *r =
        th_json(&S, "POST", "/api/offline/queue",
                "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/busy\"}}");
    assert_int_equal(r->status, 201);
    assert_true(th_now_ms() - t0 < 1000);
    th_resp_free(r);
    for (int i = 0; i < N; i++)
        close(fds[i]);
}

/* SSRF: an endpoint can only name a path on a configured upstream, or an absolute URL whose
 * origin is exactly that upstream's; every other spelling is refused before anything is stored
 * (redirects to other origins are refused by the engine: e2e_test_engine). */
static void test_ssrf_endpoints_refused(void **state)
{
    const char *before = strdup(count_ops());
    static const char *const endpoints[] = {"http://169.254.169.254/latest/meta-data/",
                                            "file:///etc/passwd",
                                            "gopher://127.0.0.1:9/x",
                                            "ftp://127.0.0.1:9/",
                                            "//evil.example/x",
                                            "http://127.0.0.1:9@evil.example/",
                                            "http://evil.example#@127.0.0.1:9/",
                                            "http://2130706433:9/",
                                            "http://0x7f000001:9/",
                                            "http://[::1]:9/",
                                            "http://[::ffff:127.0.0.1]:9/",
                                            "http://127.1:9/",
                                            "http://127.0.0.1:90/",
                                            "https://127.0.0.1:9/",
                                            "http://127.0.0.1:9.evil.example/",
                                            "http://localhost:9/",
                                            "dict://127.0.0.1:9/",
                                            "\\\\evil.example\\\\x",
                                            "javascript:alert(1)",
                                            " /x",
                                            "x/y",
                                            NULL};
    for (const char *const *ep = endpoints; *ep; ep++) {
        char body[512];
        snprintf(body, sizeof(body),
                 "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"%s\"}}", *ep);
        th_assert_enqueue_refused(&S, body, "payload.endpoint");
    }
    /* the configured origin itself is fine */
    struct resp *r = th_json(
        &S, "POST", "/api/offline/queue",
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"http://127.0.0.1:9/ok\"}}");
    assert_int_equal(r->status, 201);
    th_resp_free(r);
    char want[32];
    snprintf(want, sizeof(want), "%d", atoi(before) + 1);
    assert_string_equal(count_ops(), want);
    free((void *)before);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* writes to connections the service closed */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_json_is_400_and_stores_nothing),
        cmocka_unit_test(test_oversized_body_refused_before_reading),
        cmocka_unit_test(test_slightly_oversized_body_gets_its_413),
        cmocka_unit_test(test_oversized_body_with_expect_refused_at_once),
        cmocka_unit_test(test_endless_chunked_body_is_cut_off),
        cmocka_unit_test(test_truncated_body_stores_nothing),
        cmocka_unit_test(test_path_traversal_in_ids_is_404),
        cmocka_unit_test(test_sql_metacharacters_stored_verbatim),
        cmocka_unit_test(test_ssrf_endpoints_refused),
        cmocka_unit_test(test_slow_clients_capped_per_address),
        cmocka_unit_test(test_thousand_idle_connections),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
