#include "harness.h"
#include "upstream.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <curl/curl.h>
#include <errno.h>
#include <glob.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "harness: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static char pg_host[512];
static char pg_port[16];

/* Reads the fixture's env file (KEY=value lines) once. */
static void load_pg_env(void)
{
    if (pg_host[0] != '\0')
        return;
    const char *path = getenv("OFFLINEQ_TEST_PGENV");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (f == NULL)
        die("OFFLINEQ_TEST_PGENV not set or unreadable: run through ctest (pg fixture)");
    char line[1024];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "OQT_PG_HOST=", 12) == 0)
            snprintf(pg_host, sizeof(pg_host), "%.500s", line + 12);
        else if (strncmp(line, "OQT_PG_PORT=", 12) == 0)
            snprintf(pg_port, sizeof(pg_port), "%.10s", line + 12);
    }
    fclose(f);
}

static void db_url(const char *db, char *url, size_t len)
{
    load_pg_env();
    snprintf(url, len, "postgresql:///%s?host=%s&port=%s&user=postgres", db, pg_host, pg_port);
}

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *th_db_connect_schema(const char *url, const char *schema)
{
    char options[128] = "";
    if (schema != NULL)
        snprintf(options, sizeof(options), "-c search_path=%s", schema);
    const char *const keys[] = {"dbname", "options", NULL};
    const char *values[] = {url, options, NULL};
    PGconn *pg = PQconnectdbParams(keys, values, 1);
    if (PQstatus(pg) != CONNECTION_OK)
        die("connect %s: %s", url, PQerrorMessage(pg));
    PQsetNoticeProcessor(pg, quiet, NULL);
    return pg;
}

PGconn *th_db_connect(const char *url)
{
    return th_db_connect_schema(url, "offlineq");
}

const char *th_sql(PGconn *pg, const char *sql)
{
    static char value[4096];
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        die("SQL failed: %s\n%s", sql, PQresultErrorMessage(r));
    value[0] = '\0';
    if (st == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0)
        snprintf(value, sizeof(value), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return value;
}

static void admin_sql(const char *verb, const char *name)
{
    char url[1024], sql[512];
    db_url("postgres", url, sizeof(url));
    if (strcmp(verb, "create") == 0)
        snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", name);
    else
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", name);
    PGconn *pg = th_db_connect(url);
    th_sql(pg, sql);
    PQfinish(pg);
}

void th_db_create(const char *name, char *url, size_t len)
{
    admin_sql("drop", name);
    admin_sql("create", name);
    db_url(name, url, len);
}

void th_db_drop(const char *name)
{
    admin_sql("drop", name);
}

char *th_svc_log(const struct svc *s)
{
    return th_slurp(s->log_path);
}

char *th_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = '\0';
    fclose(f);
    return buf;
}

/* Finds "msg":"listening" in the log and reads its port. */
static int listening_port(const struct svc *s)
{
    char *log = th_svc_log(s);
    int port = 0;
    char *line = strstr(log, "\"msg\":\"listening\"");
    char *p = line ? strstr(line, "\"port\":") : NULL;
    if (p != NULL)
        port = atoi(p + 7);
    free(log);
    return port;
}

extern char **environ;

/* The service's environment, built before fork: the child of a threaded process may only make
 * async-signal-safe calls (an allocator lock held by another thread at fork would hang it). */
static char **service_env(const char *db, const char *const *env)
{
    size_t n = 0, o = 0;
    while (environ[n] != NULL)
        n++;
    for (const char *const *e = env; e && *e; e++)
        n++;
    char **out = calloc(n + 4, sizeof(char *));
    static const char *const ours[] = {"OFFLINEQ_DATABASE_URL=", "OFFLINEQ_LISTEN=",
                                       "OFFLINEQ_WORKERS=", "OFFLINEQ_API_KEYS=", NULL};
    for (char **e = environ; *e; e++) {
        bool replaced = false;
        for (const char *const *k = ours; *k && !replaced; k++)
            replaced = strncmp(*e, *k, strlen(*k)) == 0;
        for (const char *const *x = env; x && *x && !replaced; x++) {
            const char *eq = strchr(*x, '=');
            replaced = eq && strncmp(*e, *x, (size_t)(eq - *x + 1)) == 0;
        }
        if (!replaced)
            out[o++] = strdup(*e);
    }
    char *url = malloc(strlen(db) + 32);
    sprintf(url, "OFFLINEQ_DATABASE_URL=%s", db);
    /* API-only unless a test asks for workers; a test's own value wins over each default */
    char *defaults[] = {url, strdup("OFFLINEQ_LISTEN=127.0.0.1:0"), strdup("OFFLINEQ_WORKERS=0")};
    for (size_t d = 0; d < 3; d++) {
        size_t name = (size_t)(strchr(defaults[d], '=') - defaults[d] + 1);
        bool given = false;
        for (const char *const *x = env; x && *x && !given; x++) /* NAME= or NAME_FILE= */
            given =
                strncmp(*x, defaults[d], name) == 0 || (strncmp(*x, defaults[d], name - 1) == 0 &&
                                                        strncmp(*x + name - 1, "_FILE=", 6) == 0);
        if (given)
            free(defaults[d]);
        else
            out[o++] = defaults[d];
    }
    for (const char *const *x = env; x && *x; x++)
        out[o++] = strdup(*x);
    out[o] = NULL;
    return out;
}

static void child_exec(const struct svc *s, char **envp, char *const *argv)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a test that dies takes its service with it */
    int fd = open(s->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 2);
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    execve(argv[0], argv, envp);
    _exit(127);
}

int th_svc_start(struct svc *s, const char *db, const char *const *env, int *exit_code)
{
    static int counter;
    memset(s, 0, sizeof(*s));
    snprintf(s->db_url, sizeof(s->db_url), "%s", db);
    const char *dir = getenv("OFFLINEQ_TEST_LOGDIR");
    snprintf(s->log_path, sizeof(s->log_path), "%s/svc-%d-%d.log", dir ? dir : "/tmp",
             (int)getpid(), ++counter);
    unlink(s->log_path);
    if (getenv("OFFLINEQ_BIN") == NULL)
        die("OFFLINEQ_BIN not set");
    char **envp = service_env(db, env);
    const char *wrap = getenv("OFFLINEQ_TEST_WRAPPER"); /* e.g. valgrind */
    char *direct[] = {(char *)getenv("OFFLINEQ_BIN"), NULL};
    char *wrapped[] = {"/bin/sh", "-c", "exec $OFFLINEQ_TEST_WRAPPER \"$OFFLINEQ_BIN\"", NULL};
    s->pid = fork();
    if (s->pid == 0)
        child_exec(s, envp, wrap && *wrap ? wrapped : direct);
    for (char **e = envp; *e; e++)
        free(*e);
    free(envp);
    for (int i = 0; i < 3000; i++) { /* 30 s */
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            if (exit_code)
                *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            s->pid = 0;
            return -1;
        }
        s->port = listening_port(s);
        if (s->port > 0)
            return 0;
        usleep(10000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    die("service did not start listening within 30 s; log: %s", s->log_path);
    return -1;
}

int th_svc_stop(struct svc *s, int sig)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, sig);
    int status = 0;
    waitpid(s->pid, &status, 0);
    s->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct buf {
    char *data;
    size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;
    size_t add = size * n;
    b->data = realloc(b->data, b->len + add + 1);
    memcpy(b->data + b->len, p, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

/* Appends {"method","path","status","content_type","body"} to the contract log. */
static void record(const char *method, const char *path, const struct resp *r)
{
    const char *dir = getenv("OFFLINEQ_CONTRACT_DIR");
    if (dir == NULL || *dir == '\0')
        return;
    char file[512];
    snprintf(file, sizeof(file), "%s/%d.jsonl", dir, (int)getpid());
    FILE *f = fopen(file, "a");
    if (f == NULL)
        return;
    char p[1024];
    snprintf(p, sizeof(p), "%s", path);
    p[strcspn(p, "?")] = '\0';
    const char *ct = th_header(r, "Content-Type");
    json_t *line = json_pack("{s:s, s:s, s:I, s:s?, s:O?}", "method", method, "path", p, "status",
                             (json_int_t)r->status, "content_type", ct, "body", r->json);
    if (r->json == NULL && r->body_len > 0 && ct != NULL && strstr(ct, "json") != NULL)
        json_object_set_new(line, "body_text", json_stringn(r->body, r->body_len)); /* 1e400 */
    char *text = json_dumps(line, JSON_COMPACT);
    fprintf(f, "%s\n", text);
    free(text);
    json_decref(line);
    fclose(f);
}

struct resp *th_http(const struct svc *s, const char *method, const char *path, const char *body,
                     long body_len, const char *const *headers)
{
    CURL *c = curl_easy_init();
    struct buf b = {0}, h = {0};
    size_t url_len = strlen(path) + 32; /* long request targets are tested too */
    char *url = malloc(url_len);
    snprintf(url, url_len, "http://127.0.0.1:%d%s", s->port, path);
    struct curl_slist *hl = NULL;
    for (; headers && *headers; headers++)
        hl = curl_slist_append(hl, *headers);
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, body_len < 0 ? (long)strlen(body) : body_len);
    }
    CURLcode rc = curl_easy_perform(c);
    struct resp *r = calloc(1, sizeof(*r));
    if (rc != CURLE_OK) {
        r->status = 0;
        fprintf(stderr, "harness: %s %s: %s\n", method, path, curl_easy_strerror(rc));
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    r->body = b.data ? b.data : strdup("");
    r->body_len = b.len;
    r->headers = h.data ? h.data : strdup("");
    r->json = b.len ? json_loadb(b.data, b.len, 0, NULL) : NULL;
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    free(url);
    record(method, path, r);
    /* every test checks this: a 503 or 429 tells the client when to come back */
    if ((r->status == 503 || r->status == 429) && th_header(r, "Retry-After") == NULL)
        die("%s %s: %ld without Retry-After", method, path, r->status);
    return r;
}

struct resp *th_json(const struct svc *s, const char *method, const char *path, const char *body)
{
    static const char *const h[] = {"Content-Type: application/json", NULL};
    return th_http(s, method, path, body, -1, body ? h : NULL);
}

const char *th_header(const struct resp *r, const char *name)
{
    static __thread char value[1024];
    size_t n = strlen(name);
    /* the last header block wins (after a 100 Continue) */
    const char *found = NULL;
    for (const char *p = r->headers; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > n && strncasecmp(p, name, n) == 0 && p[n] == ':')
            found = p;
        p = eol ? eol + 2 : p + len;
    }
    if (found == NULL)
        return NULL;
    const char *v = found + n + 1;
    while (*v == ' ')
        v++;
    size_t len = strcspn(v, "\r\n");
    snprintf(value, sizeof(value), "%.*s", (int)len, v);
    return value;
}

void th_resp_free(struct resp *r)
{
    if (r == NULL)
        return;
    json_decref(r->json);
    free(r->body);
    free(r->headers);
    free(r);
}

void th_assert_error(const struct resp *r, long status, const char *code)
{
    if (r->status != status || r->json == NULL)
        fprintf(stderr, "expected %ld %s, got %ld: %s\n", status, code, r->status, r->body);
    assert_int_equal(r->status, status);
    assert_non_null(r->json);
    json_t *err = json_object_get(r->json, "error");
    assert_non_null(err);
    assert_string_equal(json_string_value(json_object_get(err, "code")), code);
    assert_non_null(json_string_value(json_object_get(err, "message")));
}

void th_assert_invalid(const struct resp *r, const char *field)
{
    th_assert_error(r, 400, "invalid_request");
    const char *got = th_str(json_object_get(r->json, "error"), "field");
    if (got == NULL || strcmp(got, field) != 0)
        fprintf(stderr, "expected the field %s, got %s: %s\n", field, got ? got : "(none)",
                r->body);
    assert_string_equal(got ? got : "(none)", field);
}

void th_assert_enqueue_refused(const struct svc *s, const char *body, const char *field)
{
    struct resp *r = th_json(s, "POST", "/api/offline/queue", body);
    if (r->status != 400)
        fprintf(stderr, "enqueue %s: %ld %s, want 400\n", body, r->status, r->body);
    th_assert_invalid(r, field);
    th_resp_free(r);
}

const char *th_sqlf(PGconn *pg, const char *fmt, ...)
{
    char sql[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    return th_sql(pg, sql);
}

const char *th_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

long long th_metric(const struct svc *s, const char *series)
{
    struct resp *r = th_http(s, "GET", "/metrics", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    size_t len = strlen(series);
    const char *p = r->body;
    while (p != NULL && !(strncmp(p, series, len) == 0 && p[len] == ' ')) {
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    if (p == NULL)
        fprintf(stderr, "GET /metrics has no %s\n", series);
    assert_non_null(p);
    long long n = atoll(p + len + 1);
    th_resp_free(r);
    return n;
}

long long th_int(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        fprintf(stderr, "field %s is not an integer\n", key);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

double th_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

long th_status_kb(pid_t pid, const char *name)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long kb = -1;
    size_t n = strlen(name);
    while (kb < 0 && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, name, n) == 0 && line[n] == ':')
            kb = strtol(line + n + 1, NULL, 10);
    fclose(f);
    return kb;
}

json_t *th_wait_op(const struct svc *s, const char *id, const char *statuses, int timeout_ms)
{
    char path[96];
    snprintf(path, sizeof(path), "/api/offline/queue/%s", id);
    double until = th_now_ms() + timeout_ms;
    json_t *op = NULL;
    for (;;) {
        struct resp *r = th_http(s, "GET", path, NULL, 0, NULL);
        json_decref(op);
        op = json_incref(r->json);
        th_resp_free(r);
        const char *st = op ? th_str(op, "status") : NULL;
        if (st != NULL) {
            char list[128];
            snprintf(list, sizeof(list), ",%s,", statuses);
            char needle[40];
            snprintf(needle, sizeof(needle), ",%s,", st);
            if (strstr(list, needle) != NULL)
                return op;
        }
        if (th_now_ms() > until) {
            fprintf(stderr, "operation %s still %s after %d ms\n", id, st ? st : "?", timeout_ms);
            return op;
        }
        usleep(20000);
    }
}

void th_enqueue(const struct svc *s, const char *body, char id[37])
{
    struct resp *r = th_json(s, "POST", "/api/offline/queue", body);
    if (r->status != 201)
        fprintf(stderr, "enqueue %s -> %ld %s\n", body, r->status, r->body);
    assert_int_equal(r->status, 201);
    snprintf(id, 37, "%s", th_str(r->json, "id"));
    th_resp_free(r);
}

json_t *th_enqueue_settled(const struct svc *s, const char *body, const char *want, int timeout_ms,
                           char id[37])
{
    th_enqueue(s, body, id);
    json_t *op = th_wait_op(s, id, TH_SETTLED, timeout_ms);
    assert_non_null(op);
    assert_string_equal(th_str(op, "status"), want);
    return op;
}

void th_enqueue_n(const struct svc *s, int n, const char *fmt, char ids[][37])
{
    for (int i = 0; i < n; i++) {
        char body[512];
        snprintf(body, sizeof(body), fmt, i);
        th_enqueue(s, body, ids[i]);
    }
}

void th_wait_all(const struct svc *s, char ids[][37], int n, const char *want, int timeout_ms)
{
    for (int i = 0; i < n; i++) {
        json_t *op = th_wait_op(s, ids[i], TH_SETTLED, timeout_ms);
        assert_string_equal(th_str(op, "status"), want);
        json_decref(op);
    }
}

void th_upstreams_write(struct th_upstreams *u, const char *group, const char *fmt, ...)
{
    snprintf(u->path, sizeof(u->path), "/tmp/offlineq-%s-%d.json", group, (int)getpid());
    snprintf(u->env, sizeof(u->env), "OFFLINEQ_UPSTREAMS_FILE=%s", u->path);
    FILE *f = fopen(u->path, "w");
    if (f == NULL)
        die("cannot write %s", u->path);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

void th_upstreams_remove(struct th_upstreams *u)
{
    unlink(u->path);
}

void th_assert_signed(const struct us_req *r, const void *key, size_t key_len)
{
    char id[128], ts[32];
    assert_non_null(us_header(r, "webhook-id"));
    snprintf(id, sizeof(id), "%s", us_header(r, "webhook-id"));
    assert_non_null(us_header(r, "webhook-timestamp"));
    snprintf(ts, sizeof(ts), "%s", us_header(r, "webhook-timestamp"));
    size_t n = strlen(id) + strlen(ts) + 2 + r->body_len;
    char *content = malloc(n + 1);
    int off = sprintf(content, "%s.%s.", id, ts);
    memcpy(content + off, r->body, r->body_len);
    unsigned char mac[32];
    unsigned int mac_len;
    HMAC(EVP_sha256(), key, (int)key_len, (unsigned char *)content, n, mac, &mac_len);
    free(content);
    char want[80] = "v1,";
    EVP_EncodeBlock((unsigned char *)want + 3, mac, (int)mac_len);
    assert_string_equal(us_header(r, "webhook-signature"), want);
}

int th_group_start(const char *name, const char *const *env, struct svc *s, PGconn **pg, char *url,
                   size_t url_len)
{
    char db[512];
    th_db_create(name, db, sizeof(db));
    if (url != NULL)
        snprintf(url, url_len, "%s", db);
    if (th_svc_start(s, db, env, NULL) != 0)
        return -1;
    if (pg != NULL)
        *pg = th_db_connect(db);
    return 0;
}

void th_group_stop(const char *name, struct svc *s, PGconn *pg)
{
    if (pg != NULL)
        PQfinish(pg);
    assert_int_equal(th_svc_stop(s, SIGTERM), 0);
    th_db_drop(name);
}

void th_install_migrations(PGconn *pg, int upto)
{
    char pat[600];
    snprintf(pat, sizeof(pat), "%s/migrations/[0-9]*.sql", getenv("OFFLINEQ_SOURCE_DIR"));
    glob_t g;
    assert_int_equal(glob(pat, 0, NULL, &g), 0);
    th_sql(pg, "BEGIN");
    th_sql(pg, "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
               "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *base = strrchr(g.gl_pathv[i], '/') + 1;
        if (atoi(base) > upto)
            continue;
        char *sql = th_slurp(g.gl_pathv[i]);
        th_sql(pg, sql);
        free(sql);
        th_sqlf(pg, "INSERT INTO schema_migrations (version, name) VALUES (%d, '%s')", atoi(base),
                base);
    }
    th_sql(pg, "COMMIT");
    globfree(&g);
}
