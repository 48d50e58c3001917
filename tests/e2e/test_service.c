/* The service as operators meet it: auth roles, CORS, start-up configuration errors,
 * schema version checks and a database outage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define DB "e2e_service"
#define READ_KEY "read-key-7f3a9c41"
#define WRITE_KEY "write-key-2b8e6d05"
#define ADMIN_KEY "admin-key-c4d19a77"
#define WRONG_KEY "wrong-key-5e1d0b93"

static char url[512];

static int group_setup(void **state)
{
    th_db_create(DB, url, sizeof(url));
    return 0;
}

static int group_teardown(void **state)
{
    th_db_drop(DB);
    return 0;
}

enum who { NOBODY, WRONG, READER, WRITER, ADMIN };
static const char *const auth_headers[] = {
    NULL, "Authorization: Bearer " WRONG_KEY, "Authorization: Bearer " READ_KEY,
    "Authorization: Bearer " WRITE_KEY, "Authorization: Bearer " ADMIN_KEY};

struct endpoint {
    const char *method;
    const char *path;
    const char *body;
    enum who need; /* NOBODY = public */
    long allowed;  /* the status once the key is good enough */
};

#define UNKNOWN "/api/offline/queue/00000000-0000-4000-8000-000000000000"
static const struct endpoint endpoints[] = {
    {"GET", "/healthz", NULL, NOBODY, 200},
    {"GET", "/readyz", NULL, NOBODY, 200},
    {"GET", "/", NULL, NOBODY, 200},
    {"GET", "/dashboard", NULL, NOBODY, 200},
    {"GET", "/metrics", NULL, READER, 200},
    {"GET", "/api/offline/events", NULL, READER, 0}, /* 0: streams when allowed (e2e_test_events) */
    {"GET", "/api/offline/queue", NULL, READER, 200},
    {"GET", "/api/offline/queue/stats", NULL, READER, 200},
    {"GET", UNKNOWN, NULL, READER, 404},
    {"POST", "/api/offline/queue",
     "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"}}", WRITER, 201},
    {"POST", "/api/offline/queue/batch",
     "{\"operations\":[{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"}}]}",
     WRITER, 201},
    {"DELETE", UNKNOWN, NULL, WRITER, 404},
    {"POST", UNKNOWN "/retry", NULL, WRITER, 404},
    {"POST", "/api/offline/queue/clear-completed", NULL, ADMIN, 200},
    {"POST", "/api/offline/queue/retry-failed", NULL, ADMIN, 200},
    {"POST", UNKNOWN "/resolve", "{\"resolution\":\"remote\"}", WRITER, 404},
    {"POST", "/api/offline/files", "file bytes", WRITER, 201},
    {"GET", "/api/offline/files/00000000-0000-4000-8000-000000000000", NULL, READER, 404},
    {"GET", "/api/offline/sync/status", NULL, READER, 200},
    {"GET", "/api/offline/sync/conflict-strategy", NULL, READER, 200},
    {"GET", "/api/offline/network-status", NULL, READER, 200},
    {"POST", "/api/offline/sync?timeout_s=0", NULL, ADMIN, 503}, /* the upstream is down: offline */
    {"POST", "/api/offline/sync/stop-auto", NULL, ADMIN, 200},
    {"POST", "/api/offline/sync/start-auto", NULL, ADMIN, 200},
    {"POST", "/api/offline/sync/conflict-strategy", "{\"strategy\":\"merge\"}", ADMIN, 200},
    {"POST", "/api/offline/check-connectivity", NULL, ADMIN, 200},
    {"POST", "/api/offline/queue/delete", "{\"status\":\"failed\"}", ADMIN, 200},
    {"GET", "/api/offline/upstreams", NULL, READER, 200},
    {"POST", "/api/offline/upstreams/default/pause", NULL, ADMIN, 200},
    {"POST", "/api/offline/upstreams/default/resume", NULL, ADMIN, 200},
    {"POST", "/api/offline/upstreams/nowhere/pause", NULL, ADMIN, 404},
};

static long call(const struct svc *s, const struct endpoint *ep, enum who who, struct resp **out)
{
    const char *h[3] = {auth_headers[who], NULL, NULL};
    int n = auth_headers[who] ? 1 : 0;
    if (ep->body)
        h[n++] = "Content-Type: application/json";
    h[n] = NULL;
    struct resp *r = th_http(s, ep->method, ep->path, ep->body, -1, h);
    long st = r->status;
    if (out)
        *out = r;
    else
        th_resp_free(r);
    return st;
}

static void test_role_matrix(void **state)
{
    struct svc s;
    static const char *const env[] = {"OFFLINEQ_API_KEYS=" READ_KEY ":read," WRITE_KEY
                                      ":write," ADMIN_KEY ":admin",
                                      "OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9", NULL};
    assert_int_equal(th_svc_start(&s, url, env, NULL), 0);
    for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++) {
        const struct endpoint *ep = &endpoints[i];
        for (enum who who = NOBODY; who <= ADMIN; who++) {
            if (ep->allowed == 0 && who >= ep->need)
                continue;
            struct resp *r = NULL;
            long st = call(&s, ep, who, &r);
            long want = ep->need == NOBODY ? ep->allowed
                        : who <= WRONG     ? 401
                        : who < ep->need   ? 403
                                           : ep->allowed;
            if (st != want)
                fprintf(stderr, "%s %s as %d: want %ld got %ld %s\n", ep->method, ep->path, who,
                        want, st, r->body);
            assert_int_equal(st, want);
            if (want == 401) {
                th_assert_error(r, 401, "unauthorized");
                assert_string_equal(th_header(r, "WWW-Authenticate"), "Bearer realm=\"offlineq\"");
            } else if (want == 403) {
                th_assert_error(r, 403, "forbidden");
            }
            th_resp_free(r);
        }
    }
    /* a key must be sent as a Bearer token, nothing else */
    static const char *const basic[] = {"Authorization: Basic " ADMIN_KEY, NULL};
    struct resp *r = th_http(&s, "GET", "/api/offline/queue", NULL, 0, basic);
    th_assert_error(r, 401, "unauthorized");
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    char *log = th_svc_log(&s);
    assert_null(strstr(log, READ_KEY));
    assert_null(strstr(log, WRITE_KEY));
    assert_null(strstr(log, ADMIN_KEY));
    assert_null(strstr(log, WRONG_KEY));
    assert_non_null(strstr(log, "\"status\":401"));
    free(log);
}

static void test_cors(void **state)
{
    struct svc s;
    static const char *const env[] = {
        "OFFLINEQ_API_KEYS=" READ_KEY ":read",
        "OFFLINEQ_CORS_ORIGINS=https://app.example, https://admin.example", NULL};
    assert_int_equal(th_svc_start(&s, url, env, NULL), 0);
    static const char *const good[] = {"Origin: https://app.example",
                                       "Authorization: Bearer " READ_KEY, NULL};
    struct resp *r = th_http(&s, "GET", "/api/offline/queue/stats", NULL, 0, good);
    assert_int_equal(r->status, 200);
    assert_string_equal(th_header(r, "Access-Control-Allow-Origin"), "https://app.example");
    assert_string_equal(th_header(r, "Vary"), "Origin");
    th_resp_free(r);
    static const char *const evil[] = {"Origin: https://evil.example",
                                       "Authorization: Bearer " READ_KEY, NULL};
    r = th_http(&s, "GET", "/api/offline/queue/stats", NULL, 0, evil);
    assert_int_equal(r->status, 200);
    assert_null(th_header(r, "Access-Control-Allow-Origin"));
    th_resp_free(r);
    /* a preflight needs no key */
    static const char *const pre[] = {
        "Origin: https://admin.example", "Access-Control-Request-Method: POST",
        "Access-Control-Request-Headers: authorization, content-type", NULL};
    r = th_http(&s, "OPTIONS", "/api/offline/queue", NULL, 0, pre);
    assert_int_equal(r->status, 204);
    assert_string_equal(th_header(r, "Access-Control-Allow-Origin"), "https://admin.example");
    assert_string_equal(th_header(r, "Access-Control-Allow-Methods"), "POST, GET, HEAD, OPTIONS");
    assert_non_null(strstr(th_header(r, "Access-Control-Allow-Headers"), "Authorization"));
    assert_non_null(strstr(th_header(r, "Access-Control-Allow-Headers"), "Content-Type"));
    th_resp_free(r);
    r = th_http(&s, "OPTIONS", "/api/offline/nowhere", NULL, 0, pre);
    th_assert_error(r, 404, "not_found");
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
}

struct bad_config {
    const char *env[3];
    const char *names; /* the variable the one-line message must name */
};

static void test_bad_configuration_exits_2(void **state)
{
    static const struct bad_config cases[] = {
        {{"OFFLINEQ_WORKERS=abc"}, "OFFLINEQ_WORKERS"},
        {{"OFFLINEQ_WORKERS=257"}, "OFFLINEQ_WORKERS"},
        {{"OFFLINEQ_MAX_BODY_BYTES=10"}, "OFFLINEQ_MAX_BODY_BYTES"},
        {{"OFFLINEQ_MAX_ATTEMPTS=5x"}, "OFFLINEQ_MAX_ATTEMPTS"},
        {{"OFFLINEQ_LOG_LEVEL=loud"}, "OFFLINEQ_LOG_LEVEL"},
        {{"OFFLINEQ_LISTEN=nonsense"}, "OFFLINEQ_LISTEN"},
        {{"OFFLINEQ_LISTEN=0.0.0.0:0"}, "OFFLINEQ_API_KEYS"},
        {{"OFFLINEQ_API_KEYS=secret-k1:superuser"}, "OFFLINEQ_API_KEYS"},
        {{"OFFLINEQ_UPSTREAMS=default=ftp://files.example"}, "OFFLINEQ_UPSTREAMS"},
        {{"OFFLINEQ_DATABASE_URL="}, "OFFLINEQ_DATABASE_URL"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct svc s;
        int code = -1;
        assert_int_equal(th_svc_start(&s, url, cases[i].env, &code), -1);
        assert_int_equal(code, 2);
        char *log = th_svc_log(&s);
        if (strstr(log, cases[i].names) == NULL)
            fprintf(stderr, "case %zu: %s\n", i, log);
        assert_non_null(strstr(log, cases[i].names));
        assert_null(strstr(log, "secret-k1"));
        assert_int_equal(strchr(log, '\n') - log + 1, (long)strlen(log)); /* one line */
        json_t *line = json_loads(log, 0, NULL); /* of JSON, like every log line */
        assert_non_null(line);
        assert_string_equal(th_str(line, "level"), "error");
        json_decref(line);
        free(log);
    }
    /* with keys, any address is fine */
    struct svc s;
    static const char *const open_env[] = {"OFFLINEQ_LISTEN=0.0.0.0:0",
                                           "OFFLINEQ_API_KEYS=" ADMIN_KEY ":admin", NULL};
    assert_int_equal(th_svc_start(&s, url, open_env, NULL), 0);
    assert_int_equal(th_svc_stop(&s, SIGINT), 0);
}

/* libmicrohttpd's own messages are JSON log lines like the service's: a port in use shows its
 * bind error among them (before, they were debug lines, never shown at the default level). */
static void test_http_server_messages_are_json(void **state)
{
    int busy = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(busy, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(busy, 1), 0);
    assert_int_equal(getsockname(busy, (struct sockaddr *)&a, &alen), 0);
    char listen_env[64];
    snprintf(listen_env, sizeof(listen_env), "OFFLINEQ_LISTEN=127.0.0.1:%d", ntohs(a.sin_port));
    const char *env[] = {listen_env, NULL};
    struct svc s;
    int code = -1;
    assert_int_equal(th_svc_start(&s, url, env, &code), -1);
    close(busy);
    assert_int_equal(code, 1);
    char *log = th_svc_log(&s);
    bool bind_line = false;
    for (char *line = strtok(log, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        json_t *j = json_loads(line, 0, NULL);
        if (j == NULL)
            fprintf(stderr, "not JSON: %s\n", line);
        assert_non_null(j);
        const char *detail = th_str(j, "detail");
        const char *msg = th_str(j, "msg");
        if (msg != NULL && strcmp(msg, "http server") == 0 && detail != NULL &&
            strstr(detail, "bind") != NULL) {
            bind_line = true;
            assert_string_equal(th_str(j, "level"), "warn");
        }
        json_decref(j);
    }
    free(log);
    assert_true(bind_line);
}

static void test_help_lists_settings(void **state)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' --help", getenv("OFFLINEQ_BIN"));
    FILE *p = popen(cmd, "r");
    char out[8192];
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    static const char *const names[] = {
        "OFFLINEQ_DATABASE_URL",   "OFFLINEQ_LISTEN",       "OFFLINEQ_WORKERS",
        "OFFLINEQ_MAX_BODY_BYTES", "OFFLINEQ_MAX_ATTEMPTS", "OFFLINEQ_API_KEYS",
        "OFFLINEQ_CORS_ORIGINS",   "OFFLINEQ_LOG_LEVEL",    "--max-body-bytes"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_non_null(strstr(out, names[i]));
    /* flags work like the variables */
    snprintf(cmd, sizeof(cmd), "OFFLINEQ_DATABASE_URL=x '%s' --workers=nope 2>&1",
             getenv("OFFLINEQ_BIN"));
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    assert_int_equal(WEXITSTATUS(pclose(p)), 2);
    assert_non_null(strstr(out, "OFFLINEQ_WORKERS"));
}

static void test_schema_newer_than_binary(void **state)
{
    char other[512];
    th_db_create(DB "_newer", other, sizeof(other));
    struct svc s;
    assert_int_equal(th_svc_start(&s, other, NULL, NULL), 0);
    PGconn *pg = th_db_connect(other);
    /* a newer binary migrated the database meanwhile, past what this one can use (compatible
     * only from itself, as a migration that declares nothing is): not ready (test_upgrade.c
     * has the compatible case) */
    th_sql(pg, "INSERT INTO schema_migrations (version, name, compatible_from) "
               "VALUES (999, '999_future.sql', 999)");
    struct resp *r = th_http(&s, "GET", "/readyz", NULL, 0, NULL);
    th_assert_error(r, 503, "not_ready");
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    /* and this binary refuses to start on it */
    int code = 0;
    assert_int_equal(th_svc_start(&s, other, NULL, &code), -1);
    assert_int_equal(code, 1);
    char *log = th_svc_log(&s);
    assert_non_null(strstr(log, "newer than this binary knows"));
    free(log);
    PQfinish(pg);
    th_db_drop(DB "_newer");
}

static void test_database_outage(void **state)
{
    char other[512], admin[512];
    th_db_create(DB "_outage", other, sizeof(other));
    snprintf(admin, sizeof(admin), "%s", other);
    char *db = strstr(admin, DB "_outage");
    memcpy(db, "postgres", 8);
    memmove(db + 8, db + strlen(DB "_outage"), strlen(db + strlen(DB "_outage")) + 1);
    struct svc s;
    static const char *const env[] = {"OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9", NULL};
    assert_int_equal(th_svc_start(&s, other, env, NULL), 0);
    const char *body = "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"}}";
    struct resp *r = th_json(&s, "POST", "/api/offline/queue", body);
    assert_int_equal(r->status, 201);
    th_resp_free(r);

    PGconn *pg = th_db_connect(admin);
    th_sql(pg, "ALTER DATABASE " DB "_outage ALLOW_CONNECTIONS false");
    th_sql(pg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" DB
               "_outage'");
    for (int i = 0; i < 3; i++) {
        r = th_json(&s, "POST", "/api/offline/queue", body);
        th_assert_error(r, 503, "database_unavailable");
        th_resp_free(r);
    }
    r = th_http(&s, "GET", "/readyz", NULL, 0, NULL);
    th_assert_error(r, 503, "database_unavailable");
    th_resp_free(r);
    r = th_http(&s, "GET", "/healthz", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    th_resp_free(r);

    th_sql(pg, "ALTER DATABASE " DB "_outage ALLOW_CONNECTIONS true");
    r = th_json(&s, "POST", "/api/offline/queue", body); /* reconnects by itself */
    assert_int_equal(r->status, 201);
    th_resp_free(r);
    r = th_http(&s, "GET", "/api/offline/queue/stats", NULL, 0, NULL);
    assert_int_equal(th_int(r->json, "pending"), 2); /* nothing stored during the outage */
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    PQfinish(pg);
    th_db_drop(DB "_outage");
}

/* A server that stops taking writes (a standby after a failover went the other way, or a
 * primary being demoted): the service answers 503, /readyz says so, and once the server takes
 * writes again the service connects afresh by itself (it kept the read-only sessions, and
 * answered 500, before). */
static void test_read_only_server(void **state)
{
    char other[512], admin[512];
    th_db_create(DB "_ro", other, sizeof(other));
    snprintf(admin, sizeof(admin), "%s", other);
    char *db = strstr(admin, DB "_ro");
    memcpy(db, "postgres", 8);
    memmove(db + 8, db + strlen(DB "_ro"), strlen(db + strlen(DB "_ro")) + 1);
    struct svc s;
    static const char *const env[] = {"OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9", NULL};
    assert_int_equal(th_svc_start(&s, other, env, NULL), 0);
    const char *body = "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"}}";
    struct resp *r = th_json(&s, "POST", "/api/offline/queue", body);
    assert_int_equal(r->status, 201);
    th_resp_free(r);

    PGconn *pg = th_db_connect(admin);
    th_sql(pg, "ALTER DATABASE " DB "_ro SET default_transaction_read_only = on");
    th_sql(pg,
           "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" DB "_ro'");
    for (int i = 0; i < 3; i++) {
        r = th_json(&s, "POST", "/api/offline/queue", body);
        th_assert_error(r, 503, "database_unavailable");
        th_resp_free(r);
    }
    r = th_http(&s, "GET", "/readyz", NULL, 0, NULL);
    th_assert_error(r, 503, "database_unavailable");
    th_resp_free(r);

    th_sql(pg, "ALTER DATABASE " DB "_ro RESET default_transaction_read_only");
    /* each pooled session still read-only answers one 503 and is replaced: at most the pool */
    long status = 0;
    for (int i = 0; i < 12 && status != 201; i++) {
        r = th_json(&s, "POST", "/api/offline/queue", body);
        status = r->status;
        if (status != 201)
            th_assert_error(r, 503, "database_unavailable");
        th_resp_free(r);
    }
    assert_int_equal(status, 201);
    for (int i = 0, ready = 0; !ready; i++) {
        assert_true(i < 12);
        r = th_http(&s, "GET", "/readyz", NULL, 0, NULL);
        ready = r->status == 200;
        if (!ready)
            th_assert_error(r, 503, "database_unavailable");
        th_resp_free(r);
    }
    r = th_http(&s, "GET", "/api/offline/queue/stats", NULL, 0, NULL);
    assert_int_equal(th_int(r->json, "pending"), 2);
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    PQfinish(pg);
    th_db_drop(DB "_ro");
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* SIGTERM while a request is being uploaded: it still completes, new connections are refused,
 * and the service exits 0. */
static void test_graceful_shutdown_finishes_in_flight(void **state)
{
    struct svc s;
    static const char *const env[] = {"OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9", NULL};
    assert_int_equal(th_svc_start(&s, url, env, NULL), 0);
    const char *body =
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/in-flight\"}}";
    char head[256];
    snprintf(head, sizeof(head),
             "POST /api/offline/queue HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
             strlen(body));
    int fd = connect_to(s.port);
    assert_true(fd >= 0);
    assert_true(write(fd, head, strlen(head)) == (ssize_t)strlen(head));
    assert_true(write(fd, body, 10) == 10);
    usleep(200 * 1000);
    kill(s.pid, SIGTERM);
    usleep(300 * 1000);
    assert_int_equal(connect_to(s.port), -1); /* no longer accepting */
    size_t rest = strlen(body) - 10;
    assert_true(write(fd, body + 10, rest) == (ssize_t)rest);
    char reply[4096] = "";
    size_t got = 0;
    ssize_t n;
    while (got < sizeof(reply) - 1 && (n = read(fd, reply + got, sizeof(reply) - 1 - got)) > 0)
        got += (size_t)n;
    reply[got] = '\0';
    close(fd);
    assert_non_null(strstr(reply, "HTTP/1.1 201"));
    assert_int_equal(th_svc_stop(&s, 0), 0); /* already stopping: just wait for it */
    PGconn *pg = th_db_connect(url);
    assert_string_equal(
        th_sql(pg,
               "SELECT count(*) FROM offline_operations WHERE payload->>'endpoint' = '/in-flight'"),
        "1");
    PQfinish(pg);
}

/* OFFLINEQ_SHUTDOWN_GRACE_S bounds the wait for HTTP requests in flight too (it was a fixed
 * 10 s): a client that stops sending its body mid-way holds a SIGTERM for 1 s, not 10. */
static void test_shutdown_grace_bounds_requests_in_flight(void **state)
{
    struct svc s;
    static const char *const env[] = {"OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9",
                                      "OFFLINEQ_SHUTDOWN_GRACE_S=1", NULL};
    assert_int_equal(th_svc_start(&s, url, env, NULL), 0);
    static const char head[] = "POST /api/offline/queue HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"op";
    int fd = connect_to(s.port);
    assert_true(fd >= 0);
    assert_true(write(fd, head, strlen(head)) == (ssize_t)strlen(head));
    usleep(200 * 1000);
    double t0 = th_now_ms();
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    double took_ms = th_now_ms() - t0;
    close(fd);
    if (took_ms > 4000)
        fail_msg("SIGTERM with a stalled upload took %.0f ms with a 1 s grace", took_ms);
}

static void test_max_pending_answers_429(void **state)
{
    char other[512];
    th_db_create(DB "_full", other, sizeof(other));
    struct svc s;
    static const char *const env[] = {"OFFLINEQ_UPSTREAMS=default=http://127.0.0.1:9",
                                      "OFFLINEQ_MAX_PENDING=3", NULL};
    assert_int_equal(th_svc_start(&s, other, env, NULL), 0);
    const char *one = "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"}}";
    for (int i = 0; i < 3; i++) {
        struct resp *r = th_json(&s, "POST", "/api/offline/queue", one);
        assert_int_equal(r->status, 201);
        th_resp_free(r);
    }
    usleep(1200 * 1000); /* the pending count is refreshed twice a second */
    struct resp *r = th_json(&s, "POST", "/api/offline/queue", one);
    th_assert_error(r, 429, "queue_full");
    assert_string_equal(th_header(r, "Retry-After"), "5");
    th_resp_free(r);
    r = th_json(
        &s, "POST", "/api/offline/queue/batch",
        "{\"operations\":[{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/x\"}}]}");
    th_assert_error(r, 429, "queue_full");
    th_resp_free(r);
    PGconn *pg = th_db_connect(other);
    assert_string_equal(th_sql(pg, "SELECT count(*) FROM offline_operations"),
                        "3"); /* nothing dropped silently */
    th_sql(
        pg,
        "DELETE FROM offline_operations WHERE id IN (SELECT id FROM offline_operations LIMIT 1)");
    usleep(1200 * 1000);
    r = th_json(&s, "POST", "/api/offline/queue", one);
    assert_int_equal(r->status, 201);
    th_resp_free(r);
    PQfinish(pg);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    th_db_drop(DB "_full");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_role_matrix),
        cmocka_unit_test(test_cors),
        cmocka_unit_test(test_bad_configuration_exits_2),
        cmocka_unit_test(test_http_server_messages_are_json),
        cmocka_unit_test(test_help_lists_settings),
        cmocka_unit_test(test_schema_newer_than_binary),
        cmocka_unit_test(test_database_outage),
        cmocka_unit_test(test_read_only_server),
        cmocka_unit_test(test_graceful_shutdown_finishes_in_flight),
        cmocka_unit_test(test_shutdown_grace_bounds_requests_in_flight),
        cmocka_unit_test(test_max_pending_answers_429),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
