/* The HTTP front door under attack (issue 11, points 1, 2, 12, 13, 16): a refused request is
 * answered from its headers alone, keyless mode refuses other sites' pages and rebound host
 * names, the dashboard cannot be framed, every request gets a complete access line, and an
 * oversized request line or header block gets a JSON 414/431. */
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

#define DB "e2e_security_http"
#define READ_KEY "read-key-91c0d2e4"
#define WRITE_KEY "write-key-5a7b3f10"
#define KEYS "OFFLINEQ_API_KEYS=" READ_KEY ":read," WRITE_KEY ":write"

static char url[512];
static PGconn *pg;

static int group_setup(void **state)
{
    th_db_create(DB, url, sizeof(url));
    pg = th_db_connect(url);
    return 0;
}

static int group_teardown(void **state)
{
    PQfinish(pg);
    th_db_drop(DB);
    return 0;
}

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0);
    return fd;
}

/* Writes all of buf (blocking); returns 0, or -1 once the peer closed. */
static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads until the peer closes, the headers and Content-Length bytes arrived, or ms pass.
 * Returns a malloc'd, NUL-terminated text ("" when nothing came). */
static char *read_answer(int fd, int ms)
{
    size_t cap = 1 << 16, got = 0;
    char *buf = malloc(cap);
    double until = th_now_ms() + ms;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(until - th_now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strcasestr(buf, "\r\nContent-Length:");
        if (end != NULL && cl != NULL && cl < end &&
            got >= (size_t)(end + 4 - buf) + strtoul(cl + 17, NULL, 10))
            break;
        if (got + 1 >= cap)
            break;
    }
    buf[got] = '\0';
    return buf;
}

/* One raw request on a new connection; the answer as read_answer gives it. */
static char *raw(const struct svc *s, const char *req, size_t len, int ms)
{
    int fd = connect_port(s->port);
    send_all(fd, req, len);
    char *out = read_answer(fd, ms);
    close(fd);
    return out;
}

static long raw_status(const char *answer)
{
    return strncmp(answer, "HTTP/1.1 ", 9) == 0 ? strtol(answer + 9, NULL, 10) : -1;
}

/* The JSON error code of a raw answer ("" when there is none). */
static const char *raw_code(const char *answer, char *code, size_t len)
{
    const char *body = strstr(answer, "\r\n\r\n");
    json_t *j = body ? json_loads(body + 4, 0, NULL) : NULL;
    const char *c =
        j ? json_string_value(json_object_get(json_object_get(j, "error"), "code")) : NULL;
    snprintf(code, len, "%s", c ? c : "");
    json_decref(j);
    return code;
}

static void assert_raw_error(const char *answer, long status, const char *code)
{
    char got[64];
    if (raw_status(answer) != status || strcmp(raw_code(answer, got, sizeof(got)), code) != 0)
        fprintf(stderr, "want %ld %s, got: %.300s\n", status, code, answer);
    assert_int_equal(raw_status(answer), status);
    assert_string_equal(raw_code(answer, got, sizeof(got)), code);
}

static long vm_hwm_kib(pid_t pid)
{
    return th_status_kb(pid, "VmHWM");
}

/* Point 1: the key and the role are checked on the headers; the body is never read. */
static void test_refused_before_the_body(void **state)
{
    struct svc s;
    static const char *const env[] = {KEYS, "OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9", NULL};
    assert_int_equal(th_svc_start(&s, url, env, NULL), 0);
    const char *files_before = th_sql(pg, "SELECT count(*) FROM offlineq_files");
    char before[32];
    snprintf(before, sizeof(before), "%s", files_before);
    static const struct {
        const char *req;
        long status;
        const char *code;
    } cases[] = {
        {"POST /api/offline/files HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
         "Content-Length: 52428800\r\n\r\n",
         401, "unauthorized"},
        {"POST /api/offline/files HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
         "Authorization: Bearer wrong-key\r\nContent-Length: 52428800\r\n\r\n",
         401, "unauthorized"},
        {"POST /api/offline/files HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
         "Authorization: Bearer " READ_KEY "\r\nContent-Length: 52428800\r\n\r\n",
         403, "forbidden"},
        {"POST /api/offline/queue HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
         "Content-Length: 60000\r\n\r\n",
         401, "unauthorized"},
        {"POST /api/offline/queue HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
         "Transfer-Encoding: chunked\r\n\r\n",
         401, "unauthorized"},
        {"POST /api/offline/nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "
         "52428800\r\n\r\n",
         404, "not_found"},
        {"PUT /api/offline/files HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 52428800\r\n\r\n",
         405, "method_not_allowed"},
        /* with the right key, a body over the limit is still refused before it is read */
        {"POST /api/offline/files HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
         "Authorization: Bearer " WRITE_KEY "\r\nContent-Length: 999999999999\r\n\r\n",
         413, "payload_too_large"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *a = raw(&s, cases[i].req, strlen(cases[i].req), 3000); /* no body is sent */
        assert_raw_error(a, cases[i].status, cases[i].code);
        if (cases[i].status != 404 && cases[i].status != 405)
            assert_non_null(strcasestr(a, "\r\nConnection: close\r\n"));
        if (cases[i].status == 401)
            assert_non_null(strcasestr(a, "\r\nWWW-Authenticate: Bearer"));
        free(a);
    }
    assert_string_equal(th_sql(pg, "SELECT count(*) FROM offlineq_files"), before);
    /* what is allowed still works: a preflight, a public route, an upload with a key */
    static const char *const pre[] = {"Origin: https://app.example",
                                      "Access-Control-Request-Method: POST", NULL};
    struct resp *r = th_http(&s, "OPTIONS", "/api/offline/files", NULL, 0, pre);
    assert_int_equal(r->status, 204);
    th_resp_free(r);
    r = th_http(&s, "GET", "/healthz", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    th_resp_free(r);
    static const char *const up[] = {"Authorization: Bearer " WRITE_KEY, "Content-Type: text/plain",
                                     NULL};
    r = th_http(&s, "POST", "/api/offline/files", "hello", -1, up);
    assert_int_equal(r->status, 201);
    th_resp_free(r);
    static const char *const rd[] = {"Authorization: Bearer " READ_KEY, NULL};
    r = th_http(&s, "GET", "/api/offline/queue/stats", NULL, 0, rd);
    assert_int_equal(r->status, 200);
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
}

#define SENDERS 20
#define PUSH_BYTES (2 << 20)

/* Point 1: twenty unauthenticated uploads of 2 MiB each do not pin 40 MiB. */
/* SENDERS connections send head, then push PUSH_BYTES each without a key: the peak RSS may
 * not grow by more than 16 MiB. */
static void assert_unauthenticated_pins_no_memory(const char *head)
{
    struct svc s;
    static const char *const env[] = {KEYS, "OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9", NULL};
    assert_int_equal(th_svc_start(&s, url, env, NULL), 0);
    long hwm0 = vm_hwm_kib(s.pid);
    int fd[SENDERS];
    size_t sent[SENDERS];
    bool done[SENDERS];
    char *chunk = calloc(1, 64 * 1024);
    for (int i = 0; i < SENDERS; i++) {
        fd[i] = connect_port(s.port);
        assert_int_equal(send_all(fd[i], head, strlen(head)), 0);
        fcntl(fd[i], F_SETFL, O_NONBLOCK);
        sent[i] = 0;
        done[i] = false;
    }
    int left = SENDERS;
    double until = th_now_ms() + 30000;
    while (left > 0 && th_now_ms() < until) {
        struct pollfd p[SENDERS];
        for (int i = 0; i < SENDERS; i++)
            p[i] = (struct pollfd){.fd = done[i] ? -1 : fd[i], .events = POLLOUT};
        if (poll(p, SENDERS, 200) <= 0)
            continue;
        for (int i = 0; i < SENDERS; i++) {
            if (done[i] || !(p[i].revents & (POLLOUT | POLLERR | POLLHUP)))
                continue;
            size_t want = PUSH_BYTES - sent[i] < 65536 ? PUSH_BYTES - sent[i] : 65536;
            ssize_t n = send(fd[i], chunk, want, MSG_NOSIGNAL);
            if (n > 0)
                sent[i] += (size_t)n;
            if ((n < 0 && errno != EAGAIN) || sent[i] >= PUSH_BYTES) {
                done[i] = true; /* pushed it all, or the service closed the connection */
                left--;
            }
        }
    }
    usleep(500 * 1000); /* let the service take in what it will */
    long hwm1 = vm_hwm_kib(s.pid);
    for (int i = 0; i < SENDERS; i++)
        close(fd[i]);
    free(chunk);
    fprintf(stderr, "peak RSS before %ld KiB, after %ld KiB\n", hwm0, hwm1);
    assert_true(hwm1 - hwm0 <= 16 * 1024);
    struct resp *r = th_http(&s, "GET", "/healthz", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
}

static void test_unauthenticated_uploads_pin_no_memory(void **state)
{
    assert_unauthenticated_pins_no_memory("POST /api/offline/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                          "Content-Type: application/octet-stream\r\n"
                                          "Content-Length: 52428800\r\n\r\n");
}

static const char *auto_sync_row(char *out, size_t len)
{
    snprintf(out, len, "%s",
             th_sql(pg, "SELECT coalesce((SELECT value::text FROM offlineq_settings WHERE key = "
                        "'auto_sync'), 'none')"));
    return out;
}

struct db_state {
    char auto_sync[64], ops[32], files[32];
};

static void db_state(struct db_state *d)
{
    auto_sync_row(d->auto_sync, sizeof(d->auto_sync));
    snprintf(d->ops, sizeof(d->ops), "%s", th_sql(pg, "SELECT count(*) FROM offline_operations"));
    snprintf(d->files, sizeof(d->files), "%s", th_sql(pg, "SELECT count(*) FROM offlineq_files"));
}

static void assert_db_unchanged(const struct db_state *was)
{
    struct db_state now;
    db_state(&now);
    assert_string_equal(now.auto_sync, was->auto_sync);
    assert_string_equal(now.ops, was->ops);
    assert_string_equal(now.files, was->files);
}

/* A keyless service with one completed operation (so clear-completed would change something). */
static void keyless_start(struct svc *s)
{
    static const char *const env[] = {"OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9",
                                      "OFFLINEQ_CORS_ORIGINS=https://app.example", NULL};
    assert_int_equal(th_svc_start(s, url, env, NULL), 0);
    char id[37];
    th_enqueue(
        s,
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/a\",\"method\":\"POST\"}}",
        id);
    th_sqlf(
        pg,
        "UPDATE offline_operations SET status = 'completed', completed_at = now() WHERE id = '%s'",
        id);
    struct resp *r = th_json(s, "POST", "/api/offline/sync/start-auto", NULL);
    assert_int_equal(r->status, 200);
    th_resp_free(r);
}

static const char *const writes[][2] = {
    {"/api/offline/sync/stop-auto", "x"},
    {"/api/offline/queue/clear-completed", "{}"},
    {"/api/offline/files", "a file from another site"},
};

/* Point 2: a rebound host name is not this service. */
static void test_keyless_foreign_host_is_421(void **state)
{
    struct svc s;
    keyless_start(&s);
    struct db_state was;
    db_state(&was);
    static const char *const evil[] = {"Host: evil.example", "Content-Type: text/plain", NULL};
    struct resp *r = th_http(&s, "GET", "/api/offline/queue", NULL, 0, evil);
    th_assert_error(r, 421, "misdirected_request");
    th_resp_free(r);
    static const char *const evil_port[] = {"Host: evil.example:8080", "Content-Type: text/plain",
                                            NULL};
    for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
        r = th_http(&s, "POST", writes[i][0], writes[i][1], -1, i % 2 ? evil : evil_port);
        th_assert_error(r, 421, "misdirected_request");
        th_resp_free(r);
    }
    char req[256];
    snprintf(req, sizeof(req),
             "GET /api/offline/queue/stats HTTP/1.1\r\nHost: 127.0.0.1.evil.example:%d\r\n\r\n",
             s.port);
    char *a = raw(&s, req, strlen(req), 3000);
    assert_raw_error(a, 421, "misdirected_request");
    free(a);
    assert_db_unchanged(&was);
    /* the loopback names, with or without the port, in any case */
    char hosts[6][64];
    snprintf(hosts[0], 64, "Host: 127.0.0.1:%d", s.port);
    snprintf(hosts[1], 64, "Host: localhost:%d", s.port);
    snprintf(hosts[2], 64, "Host: [::1]:%d", s.port);
    snprintf(hosts[3], 64, "Host: LocalHost");
    snprintf(hosts[4], 64, "Host: 127.0.0.1");
    snprintf(hosts[5], 64, "Host: [::1]");
    for (int i = 0; i < 6; i++) {
        const char *h[] = {hosts[i], NULL};
        r = th_http(&s, "GET", "/api/offline/queue/stats", NULL, 0, h);
        if (r->status != 200)
            fprintf(stderr, "%s -> %ld\n", hosts[i], r->status);
        assert_int_equal(r->status, 200);
        th_resp_free(r);
    }
    /* HTTP/1.0 without a Host names nothing foreign */
    static const char old[] = "GET /healthz HTTP/1.0\r\n\r\n";
    a = raw(&s, old, sizeof(old) - 1, 3000);
    assert_int_equal(raw_status(a) == 200 || strncmp(a, "HTTP/1.0 200", 12) == 0, 1);
    free(a);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
}

/* Point 2: another site's page cannot change anything, with or without a preflight. */
static void test_keyless_cross_site_writes_refused(void **state)
{
    struct svc s;
    keyless_start(&s);
    struct db_state was;
    db_state(&was);
    static const char *const refused[][3] = {
        {"Origin: http://evil.example", "Content-Type: text/plain", NULL},
        {"Origin: null", "Content-Type: text/plain", NULL},
        {"Sec-Fetch-Site: cross-site", "Content-Type: text/plain", NULL},
        {"Sec-Fetch-Site: same-site", "Content-Type: text/plain", NULL},
        {"Origin: http://127.0.0.1:1", "Content-Type: text/plain", NULL}, /* another local port */
    };
    for (size_t k = 0; k < sizeof(refused) / sizeof(refused[0]); k++) {
        for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
            struct resp *r = th_http(&s, "POST", writes[i][0], writes[i][1], -1, refused[k]);
            if (r->status != 403)
                fprintf(stderr, "%s %s -> %ld\n", refused[k][0], writes[i][0], r->status);
            th_assert_error(r, 403, "cross_site_request");
            th_resp_free(r);
        }
    }
    struct resp *r =
        th_http(&s, "DELETE", "/api/offline/queue/00000000-0000-0000-0000-000000000000", NULL, 0,
                refused[0]);
    th_assert_error(r, 403, "cross_site_request");
    th_resp_free(r);
    assert_db_unchanged(&was);
    /* reads are not refused (the browser keeps their answers from the page: no CORS grant) */
    r = th_http(&s, "GET", "/api/offline/queue/stats", NULL, 0, refused[0]);
    assert_int_equal(r->status, 200);
    assert_null(th_header(r, "Access-Control-Allow-Origin"));
    th_resp_free(r);
    /* curl (no Origin), the service's own origin and a configured origin still work */
    char own[64];
    snprintf(own, sizeof(own), "Origin: http://127.0.0.1:%d", s.port);
    const char *const ok[][4] = {
        {"Content-Type: text/plain", NULL},
        {own, "Sec-Fetch-Site: same-origin", "Content-Type: text/plain", NULL},
        {"Origin: https://app.example", "Sec-Fetch-Site: cross-site", "Content-Type: text/plain",
         NULL},
    };
    for (size_t k = 0; k < sizeof(ok) / sizeof(ok[0]); k++) {
        r = th_http(&s, "POST", "/api/offline/sync/stop-auto", NULL, 0, ok[k]);
        if (r->status != 200)
            fprintf(stderr, "case %zu -> %ld %s\n", k, r->status, r->body);
        assert_int_equal(r->status, 200);
        th_resp_free(r);
        r = th_http(&s, "POST", "/api/offline/sync/start-auto", NULL, 0, ok[k]);
        assert_int_equal(r->status, 200);
        th_resp_free(r);
    }
    r = th_http(&s, "POST", "/api/offline/files", "mine", -1, ok[1]);
    assert_int_equal(r->status, 201);
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
}

/* Point 2 (decision): with API keys the Host and Origin are not checked; a key is not ambient. */
static void test_keyed_mode_checks_keys_not_hosts(void **state)
{
    struct svc s;
    static const char *const env[] = {KEYS, NULL};
    assert_int_equal(th_svc_start(&s, url, env, NULL), 0);
    static const char *const h[] = {
        "Host: offlineq.internal.example", "Origin: http://evil.example",
        "Authorization: Bearer " WRITE_KEY, "Content-Type: text/plain", NULL};
    struct resp *r = th_http(&s, "POST", "/api/offline/files", "x", -1, h);
    assert_int_equal(r->status, 201);
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
}

/* Point 2: the keyless listen address must resolve to loopback only. */
static void test_keyless_listen_must_resolve_to_loopback(void **state)
{
    static const char *const bad[][2] = {
        {"OFFLINEQ_LISTEN=127.example.com:0", NULL},
        {"OFFLINEQ_LISTEN=127.0.0.1.nip.io:0", NULL},
        {"OFFLINEQ_LISTEN=0.0.0.0:0", NULL},
        {"OFFLINEQ_LISTEN=[::]:0", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct svc s;
        int code = -1;
        assert_int_equal(th_svc_start(&s, url, bad[i], &code), -1);
        char *log = th_svc_log(&s);
        if (code != 2)
            fprintf(stderr, "%s: exit %d: %s\n", bad[i][0], code, log);
        assert_int_equal(code, 2);
        assert_non_null(strstr(log, "OFFLINEQ_LISTEN"));
        free(log);
    }
    static const char *const good[][2] = {{"OFFLINEQ_LISTEN=localhost:0", NULL},
                                          {"OFFLINEQ_LISTEN=127.0.0.2:0", NULL}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct svc s;
        assert_int_equal(th_svc_start(&s, url, good[i], NULL), 0);
        assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    }
}

/* "*" would let every page in the operator's browser read a keyless service's payloads (the
 * Host check passes: the browser really talks to 127.0.0.1), so keyless mode refuses it. */
static void test_keyless_refuses_any_origin(void **state)
{
    static const char *const env[] = {"OFFLINEQ_CORS_ORIGINS=https://app.example,*", NULL};
    struct svc s;
    int code = -1;
    assert_int_equal(th_svc_start(&s, url, env, &code), -1);
    char *log = th_svc_log(&s);
    assert_int_equal(code, 2);
    assert_non_null(strstr(log, "OFFLINEQ_CORS_ORIGINS"));
    free(log);
}

/* Point 12: the dashboard is not framed and runs no inline script. */
static void test_dashboard_cannot_be_framed(void **state)
{
    struct svc s;
    assert_int_equal(th_svc_start(&s, url, NULL, NULL), 0);
    struct resp *r = th_http(&s, "GET", "/dashboard", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_non_null(th_header(r, "X-Frame-Options"));
    assert_string_equal(th_header(r, "X-Frame-Options"), "DENY");
    assert_non_null(th_header(r, "Content-Security-Policy"));
    char csp[512];
    snprintf(csp, sizeof(csp), "%s", th_header(r, "Content-Security-Policy"));
    assert_non_null(strstr(csp, "frame-ancestors 'none'"));
    char *script_src = strstr(csp, "script-src");
    assert_non_null(script_src);
    char *end = strchr(script_src, ';');
    if (end)
        *end = '\0';
    assert_null(strstr(script_src, "unsafe-inline"));
    assert_null(strstr(r->body, "<script>")); /* every script has a src */
    const char *src = strstr(r->body, "<script src=\"");
    assert_non_null(src);
    char path[128];
    sscanf(src + 13, "%127[^\"]", path);
    th_resp_free(r);
    r = th_http(&s, "GET", path, NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(th_header(r, "Content-Type"), "javascript"));
    assert_true(r->body_len > 1000);
    th_resp_free(r);
    r = th_http(&s, "GET", "/", NULL, 0, NULL);
    assert_string_equal(th_header(r, "X-Frame-Options"), "DENY");
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
}

/* Point 13: bytes that are not UTF-8 are escaped, and the line is complete. */
static void test_access_line_for_undecodable_bytes(void **state)
{
    struct svc s;
    assert_int_equal(th_svc_start(&s, url, NULL, NULL), 0);
    struct resp *r = th_http(&s, "GET", "/%ff%fe", NULL, 0, NULL);
    th_assert_error(r, 404, "not_found");
    th_resp_free(r);
    static const char bad_method[] =
        "G\xc3T /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: rid-13-b\r\n\r\n";
    char *a = raw(&s, bad_method, sizeof(bad_method) - 1, 3000);
    assert_true(raw_status(a) >= 400);
    free(a);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    char *log = th_svc_log(&s);
    bool saw_path = false, saw_method = false;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j); /* every line is JSON */
        if (th_str(j, "msg") && strcmp(th_str(j, "msg"), "request") == 0) {
            assert_non_null(th_str(j, "request_id"));
            assert_non_null(th_str(j, "method"));
            assert_non_null(th_str(j, "path"));
            assert_true(json_is_integer(json_object_get(j, "status")));
            if (strcmp(th_str(j, "path"), "/\\xFF\\xFE") == 0) {
                saw_path = true;
                assert_int_equal(th_int(j, "status"), 404);
            }
            if (strcmp(th_str(j, "method"), "G\\xC3T") == 0) {
                saw_method = true;
                assert_string_equal(th_str(j, "request_id"), "rid-13-b");
            }
        }
        json_decref(j);
    }
    free(log);
    assert_true(saw_path);
    assert_true(saw_method);
}

static char *repeat(const char *unit, size_t total)
{
    size_t u = strlen(unit);
    char *s = malloc(total + 1);
    for (size_t i = 0; i < total; i++)
        s[i] = unit[i % u];
    s[total] = '\0';
    return s;
}

/* GET path answers the JSON 414, with message unless that is NULL. */
static void assert_get_414(struct svc *s, const char *path, const char *message)
{
    struct resp *r = th_http(s, "GET", path, NULL, 0, NULL);
    th_assert_error(r, 414, "uri_too_long");
    if (message != NULL)
        assert_string_equal(th_str(json_object_get(r->json, "error"), "message"), message);
    th_resp_free(r);
}

/* Point 16: an oversized request line or header block gets a JSON answer. */
static void test_oversized_request_line_and_headers(void **state)
{
    struct svc s;
    assert_int_equal(th_svc_start(&s, url, NULL, NULL), 0);
    /* 8 KB of headers is an ordinary request */
    char *pad = repeat("x", 8000);
    char *h8 = malloc(9000);
    sprintf(h8, "X-Pad: %s", pad);
    const char *hl[] = {h8, NULL};
    struct resp *r = th_http(&s, "GET", "/api/offline/queue/stats", NULL, 0, hl);
    assert_int_equal(r->status, 200);
    th_resp_free(r);
    /* an 8 KB query of 256 arguments too (the last has no '&' after it) */
    char *args = repeat("k=vvvvvvvvvvvvvvvvvvvvvvvvvvv&", 256 * 30 - 1);
    char *path = malloc(8000);
    sprintf(path, "/api/offline/queue?%s", args);
    r = th_http(&s, "GET", path, NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    th_resp_free(r);
    /* 257 arguments, and 300 tiny ones: a JSON 414, the query never split */
    const char *many = "the query has more than 256 arguments";
    sprintf(path, "/api/offline/queue?%s&k=v", args);
    assert_get_414(&s, path, many);
    char *tiny = repeat("a=1&", 1200);
    sprintf(path, "/api/offline/queue?%s", tiny);
    assert_get_414(&s, path, many);
    /* 256 and a trailing '&' are 256; 8,000 empty ones (512 KB of records were they split) */
    sprintf(path, "/api/offline/queue?%s&", args);
    r = th_http(&s, "GET", path, NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    th_resp_free(r);
    char *empty = repeat("&", 8000);
    char *pe = malloc(8100);
    sprintf(pe, "/healthz?%s", empty);
    assert_get_414(&s, pe, many);
    /* a 20 KB and a 40 KB query string */
    char *q20 = repeat("a=1&", 40000);
    char *p20 = malloc(41000);
    sprintf(p20, "/api/offline/queue?%.20000s", q20);
    assert_get_414(&s, p20, "the request target is longer than 8192 bytes");
    sprintf(p20, "/api/offline/queue?%s", q20);
    assert_get_414(&s, p20, NULL);
    /* 40 KB of headers */
    char *big = repeat("y", 20000);
    char *h40a = malloc(21000), *h40b = malloc(21000);
    sprintf(h40a, "X-Big-A: %s", big);
    sprintf(h40b, "X-Big-B: %s", big);
    const char *hb[] = {h40a, h40b, NULL};
    r = th_http(&s, "GET", "/healthz", NULL, 0, hb);
    th_assert_error(r, 431, "header_fields_too_large");
    th_resp_free(r);
    /* 200 KB, beyond the connection's memory: a query of empty arguments, one long header,
     * many small headers get the library's own 414 / 431 */
    char *q200 = repeat("&", 200000);
    char *req = malloc(260000);
    int n = sprintf(req, "GET /healthz?%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", q200);
    char *a = raw(&s, req, (size_t)n, 5000);
    assert_int_equal(raw_status(a), 414);
    free(a);
    n = sprintf(req, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: %.200000s\r\n\r\n", q200);
    a = raw(&s, req, (size_t)n, 5000);
    assert_int_equal(raw_status(a), 431);
    free(a);
    char *small = repeat("a:b\r\n", 200000);
    n = sprintf(req, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n", small);
    a = raw(&s, req, (size_t)n, 5000);
    assert_int_equal(raw_status(a), 431);
    free(a);
    /* still serving */
    r = th_http(&s, "GET", "/healthz", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    th_resp_free(r);
    free(pad), free(h8), free(args), free(path), free(tiny), free(empty), free(pe), free(q20),
        free(p20), free(big), free(h40a), free(h40b);
    free(q200), free(req), free(small);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_before_the_body),
        cmocka_unit_test(test_unauthenticated_uploads_pin_no_memory),
        cmocka_unit_test(test_keyless_foreign_host_is_421),
        cmocka_unit_test(test_keyless_cross_site_writes_refused),
        cmocka_unit_test(test_keyed_mode_checks_keys_not_hosts),
        cmocka_unit_test(test_keyless_listen_must_resolve_to_loopback),
        cmocka_unit_test(test_keyless_refuses_any_origin),
        cmocka_unit_test(test_dashboard_cannot_be_framed),
        cmocka_unit_test(test_access_line_for_undecodable_bytes),
        cmocka_unit_test(test_oversized_request_line_and_headers),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
