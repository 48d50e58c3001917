/* Test harness for end-to-end tests: a fresh database per test in the fixture's cluster, the
 * real service binary on a free port, and an HTTP client (libcurl) that records every
 * response for the OpenAPI contract check. */
#ifndef OQ_HARNESS_H
#define OQ_HARNESS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <signal.h>
#include <sys/types.h>

struct svc {
    pid_t pid;
    int port;
    char log_path[512];
    char db_url[512];
};

struct resp {
    long status;
    char *body;
    size_t body_len;
    json_t *json;  /* parsed body, or NULL */
    char *headers; /* raw header block */
};

/* Creates a fresh database named after the test (dropped first if it exists). Fills url. */
void th_db_create(const char *name, char *url, size_t len);
void th_db_drop(const char *name);
/* Connects to url or aborts, with search_path offlineq (the service's default schema), so tests
 * name its tables unqualified as the service does. */
PGconn *th_db_connect(const char *url);
/* The same with search_path schema; NULL: the server's default ("$user", public), as an
 * application sharing the database has it. */
PGconn *th_db_connect_schema(const char *url, const char *schema);
/* Runs SQL, aborting the test on error; returns the first column of the first row (static
 * buffer) or "". */
const char *th_sql(PGconn *pg, const char *sql);

/* Starts the service (API-only, OFFLINEQ_WORKERS=0, unless env says otherwise) with
 * OFFLINEQ_DATABASE_URL=db_url plus extra "NAME=value" entries
 * (NULL-terminated, may be NULL) and waits until it listens. Returns 0 or -1 (it exited:
 * *exit_code holds its status, the log is kept in s->log_path). */
int th_svc_start(struct svc *s, const char *db_url, const char *const *env, int *exit_code);
/* Sends sig and waits for the exit; returns the exit code (or 128+signal). */
int th_svc_stop(struct svc *s, int sig);
/* Returns the service's stderr so far (malloc'd). */
char *th_svc_log(const struct svc *s);

/* The whole file as a string (malloc'd); "" when it cannot be read. */
char *th_slurp(const char *path);

/* An installation as an older service left it: its bootstrap schema_migrations, then
 * migrations/001..upto from the source tree, each recorded, in one transaction, in pg's
 * current schema. */
void th_install_migrations(PGconn *pg, int upto);

/* One HTTP request to the service. headers: NULL-terminated "Name: value" list or NULL.
 * body may be NULL; body_len -1 means strlen(body). */
struct resp *th_http(const struct svc *s, const char *method, const char *path, const char *body,
                     long body_len, const char *const *headers);
/* The JSON shortcut: Content-Type application/json. */
struct resp *th_json(const struct svc *s, const char *method, const char *path, const char *body);
/* Value of a response header (case-insensitive; static buffer), or NULL. */
const char *th_header(const struct resp *r, const char *name);
void th_resp_free(struct resp *r);

/* The value of one series of GET /metrics, named with its labels exactly as written
 * ("offlineq_worker_claims_total{result=\"taken\"}"); aborts the test if it is not there. */
long long th_metric(const struct svc *s, const char *series);

/* Asserts {"error":{"code":code,...}} with the given status. */
void th_assert_error(const struct resp *r, long status, const char *code);
/* Asserts 400 invalid_request whose error names field ("payload.endpoint"). */
void th_assert_invalid(const struct resp *r, const char *field);
/* POST /api/offline/queue with body must answer 400 invalid_request naming field. */
void th_assert_enqueue_refused(const struct svc *s, const char *body, const char *field);

/* printf-style SQL on pg (aborting on error); returns the first value (static buffer). */
const char *th_sqlf(PGconn *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A JSON string field of obj, or NULL. */
const char *th_str(const json_t *obj, const char *key);
/* An integer field of obj (aborts the test if it is not one). */
long long th_int(const json_t *obj, const char *key);

/* A test group's world: a fresh database `name`, the service on it with env, and (pg not NULL)
 * a connection to it; url (may be NULL) receives the database URL. Returns 0 or -1. */
int th_group_start(const char *name, const char *const *env, struct svc *s, PGconn **pg, char *url,
                   size_t url_len);
/* Stops the service (asserting a clean exit), closes pg, drops the database. */
void th_group_stop(const char *name, struct svc *s, PGconn *pg);

/* Polls GET /api/offline/queue/{id} until its status is one of statuses ("completed,failed")
 * or timeout_ms pass; returns the last Operation (json_decref it). */
json_t *th_wait_op(const struct svc *s, const char *id, const char *statuses, int timeout_ms);
/* Enqueues body (must answer 201) and writes the new id into id. */
void th_enqueue(const struct svc *s, const char *body, char id[37]);

/* The statuses an operation stops at: th_wait_op(s, id, TH_SETTLED, ms). */
#define TH_SETTLED "completed,failed,conflict"
/* Enqueues body, waits up to timeout_ms for it to settle and asserts its status is want;
 * returns the Operation (new: json_decref it). */
json_t *th_enqueue_settled(const struct svc *s, const char *body, const char *want, int timeout_ms,
                           char id[37]);
/* Enqueues n operations, the i-th from the printf format fmt with i (one %d); ids[i] receives
 * its id. */
void th_enqueue_n(const struct svc *s, int n, const char *fmt, char ids[][37]);
/* Waits for each of ids[0..n) to settle and asserts its status is want. */
void th_wait_all(const struct svc *s, char ids[][37], int n, const char *want, int timeout_ms);

/* An upstreams file (OFFLINEQ_UPSTREAMS_FILE) for a test group: written under /tmp, named after
 * the group and this process, removed by th_upstreams_remove. env is the "NAME=path" entry. */
struct th_upstreams {
    char path[256];
    char env[300];
};
/* Writes the printf-formatted JSON document to a new file and fills *u. */
void th_upstreams_write(struct th_upstreams *u, const char *group, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void th_upstreams_remove(struct th_upstreams *u);

struct us_req;
/* Standard Webhooks: asserts that the recorded request r carries webhook-id and
 * webhook-timestamp, and webhook-signature = "v1," base64(HMAC-SHA256(key, id.timestamp.body)). */
void th_assert_signed(const struct us_req *r, const void *key, size_t key_len);
/* Monotonic milliseconds. */
double th_now_ms(void);

/* A "Name: N kB" line of /proc/PID/status, in kB (VmHWM: the peak resident set, VmRSS: now);
 * -1 when the process or the line is not there. */
long th_status_kb(pid_t pid, const char *name);
#endif
