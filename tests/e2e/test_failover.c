/* PostgreSQL failover loses nothing (issue 15 point 5). A primary and its synchronous streaming
 * standby of the test's own (tests/support/pg_pair.sh), one instance on the multi-host URL
 * postgresql://127.0.0.1:P1,127.0.0.1:P2/db?target_session_attrs=read-write with 4 workers
 * delivering to the test upstream; 2,000 enqueues from 8 clients on a fixed schedule; the
 * primary is killed (pg_ctl stop -m immediate) mid-run and the standby promoted 2 s later.
 * Checked: every answer is 201 or 503 database_unavailable; the pool, the listener and its
 * LISTEN channels are back within 10 s of the promotion; /readyz says 503 while nothing takes
 * writes and 200 after; every operation that got a 201 is on the new primary and reached the
 * upstream at least once with its id as Idempotency-Key. Prints the figures that
 * tests/RELIABILITY.md collects. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "upstream.h"

#define N_OPS 2000
#define CLIENTS 8
#define SPACING_MS 5.0 /* request k starts at k * SPACING_MS: a 10 s run */
#define KILL_AFTER 500 /* answers before the primary is killed */
#define GAP_MS 2000    /* killed to promoted: nothing takes writes */
#define RECONNECT_MS 10000
#define READY_PROBES 1000
#define EXTRA_MAX 400 /* enqueues after the run, only while no 201 came after the promotion */

struct answer {
    long status;
    char code[40]; /* error.code of a refusal */
    char id[37];
    double t0, t1; /* monotonic ms: sent, answered */
};

struct probe {
    long status;
    char message[120]; /* error.message of a 503 */
    double t0, t1;
};

static struct upstream_srv *US;
static char pairenv[256], upfile[128];
static int port_primary, port_standby;
static struct svc S;

static struct answer answers[N_OPS + EXTRA_MAX];
static atomic_int next_k, answered;
static double run_t0;
static struct probe probes[READY_PROBES];
static int n_probes;
static atomic_bool probing;

static void pair(const char *verb)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s/tests/support/pg_pair.sh %s %s", getenv("OFFLINEQ_SOURCE_DIR"),
             verb, pairenv);
    assert_int_equal(system(cmd), 0);
}

/* OQP_PRIMARY_PORT=... and OQP_STANDBY_PORT=... from the pair's env file. */
static void read_ports(void)
{
    char *text = th_slurp(pairenv);
    const char *p = strstr(text, "OQP_PRIMARY_PORT="), *q = strstr(text, "OQP_STANDBY_PORT=");
    assert_non_null(p);
    assert_non_null(q);
    port_primary = atoi(p + strlen("OQP_PRIMARY_PORT="));
    port_standby = atoi(q + strlen("OQP_STANDBY_PORT="));
    free(text);
}

static PGconn *connect_port(int port, const char *db)
{
    char url[256];
    snprintf(url, sizeof(url), "postgresql://postgres@127.0.0.1:%d/%s", port, db);
    return th_db_connect(url);
}

static int group_setup(void **state)
{
    const char *env = getenv("OFFLINEQ_TEST_PGPAIR"); /* CTest's; its cleanup fixture stops it */
    if (env != NULL)
        snprintf(pairenv, sizeof(pairenv), "%s", env);
    else
        snprintf(pairenv, sizeof(pairenv), "/tmp/offlineq-pgpair-%d.env", (int)getpid());
    pair("start");
    read_ports();
    PGconn *pg = connect_port(port_primary, "postgres");
    th_sql(pg, "CREATE DATABASE failover");
    PQfinish(pg);
    US = us_start();
    return 0;
}

static int group_teardown(void **state)
{
    if (US != NULL)
        us_stop(US);
    if (upfile[0])
        unlink(upfile);
    pair("stop");
    return 0;
}

static void sleep_until(double t_ms)
{
    double now = th_now_ms();
    if (t_ms > now)
        usleep((useconds_t)((t_ms - now) * 1000));
}

static void enqueue_one(int k)
{
    struct answer *a = &answers[k];
    char body[160];
    snprintf(body, sizeof(body),
             "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/fo/%d\"}}", k);
    a->t0 = th_now_ms();
    struct resp *r = th_json(&S, "POST", "/api/offline/queue", body);
    a->t1 = th_now_ms();
    a->status = r->status;
    const char *id = r->status == 201 ? th_str(r->json, "id") : NULL;
    const char *code = th_str(json_object_get(r->json, "error"), "code");
    snprintf(a->id, sizeof(a->id), "%s", id ? id : "");
    snprintf(a->code, sizeof(a->code), "%s", code ? code : "");
    th_resp_free(r);
    atomic_fetch_add(&answered, 1);
}

static void *client_main(void *arg)
{
    (void)arg;
    int k;
    while ((k = atomic_fetch_add(&next_k, 1)) < N_OPS) {
        sleep_until(run_t0 + k * SPACING_MS);
        enqueue_one(k);
    }
    return NULL;
}

static void *prober_main(void *arg)
{
    (void)arg;
    while (atomic_load(&probing) && n_probes < READY_PROBES) {
        struct probe *p = &probes[n_probes];
        p->t0 = th_now_ms();
        struct resp *r = th_http(&S, "GET", "/readyz", NULL, 0, NULL);
        p->t1 = th_now_ms();
        p->status = r->status;
        const char *msg = th_str(json_object_get(r->json, "error"), "message");
        snprintf(p->message, sizeof(p->message), "%s", msg ? msg : "");
        th_resp_free(r);
        n_probes++;
        usleep(50 * 1000);
    }
    return NULL;
}

/* Waits until the service's listener is connected to the new primary with its three LISTENs;
 * returns when (monotonic ms), or -1 after RECONNECT_MS. */
static double wait_listener(PGconn *pg, double since)
{
    while (th_now_ms() - since < RECONNECT_MS) {
        const char *n = th_sql(pg, "SELECT count(*) FROM pg_stat_activity "
                                   "WHERE application_name = 'offlineq' AND query = "
                                   "'LISTEN offlineq_wakeup; LISTEN offlineq_settings; "
                                   "LISTEN offlineq_events'");
        if (atoi(n) == 1)
            return th_now_ms();
        usleep(20 * 1000);
    }
    return -1;
}

struct failover_times {
    double kill, killed, promote, promoted, listener; /* monotonic ms */
};

/* The run: the clients on their schedule, the primary killed after KILL_AFTER answers, the
 * standby promoted GAP_MS later. */
static void run(struct failover_times *ft)
{
    pthread_t clients[CLIENTS], prober;
    atomic_store(&probing, true);
    pthread_create(&prober, NULL, prober_main, NULL);
    run_t0 = th_now_ms();
    for (int i = 0; i < CLIENTS; i++)
        pthread_create(&clients[i], NULL, client_main, NULL);
    while (atomic_load(&answered) < KILL_AFTER)
        usleep(1000);
    ft->kill = th_now_ms();
    pair("kill-primary");
    ft->killed = th_now_ms();
    sleep_until(ft->kill + GAP_MS);
    ft->promote = th_now_ms();
    pair("promote");
    ft->promoted = th_now_ms();
    PGconn *pg = connect_port(port_standby, "failover");
    ft->listener = wait_listener(pg, ft->promote);
    PQfinish(pg);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(clients[i], NULL);
    atomic_store(&probing, false);
    pthread_join(prober, NULL);
}

/* The first answer after the promotion that was a 201 (monotonic ms), or -1. */
static double first_201_after(double t, int n)
{
    double first = -1;
    for (int k = 0; k < n; k++) {
        if (answers[k].status == 201 && answers[k].t1 > t && (first < 0 || answers[k].t1 < first))
            first = answers[k].t1;
    }
    return first;
}

struct tally {
    int created, refused, refused_before_kill, refused_late, other;
};

/* Every answer is 201 or 503 database_unavailable; none refused before the kill. Late: a 503
 * to a request sent after the first 201 that followed the promotion. */
static struct tally count_answers(int n, double kill, double back)
{
    struct tally t = {0};
    for (int k = 0; k < n; k++) {
        const struct answer *a = &answers[k];
        if (a->status == 201) {
            t.created++;
        } else if (a->status == 503 && strcmp(a->code, "database_unavailable") == 0) {
            t.refused++;
            t.refused_before_kill += a->t1 < kill;
            t.refused_late += a->t0 > back;
        } else {
            t.other++;
            fprintf(stderr, "enqueue %d answered %ld %s\n", k, a->status, a->code);
        }
    }
    return t;
}

/* /readyz: 503 for every probe sent after the kill and answered before the promotion (there
 * are some), 200 again within RECONNECT_MS of it and for every probe after that first 200.
 * Returns when it first said 200 after the promotion. */
static double check_readiness(const struct failover_times *ft, int *gap_503s)
{
    double first_200 = -1;
    *gap_503s = 0;
    for (int i = 0; i < n_probes; i++) {
        const struct probe *p = &probes[i];
        if (p->t0 > ft->killed && p->t1 < ft->promote) {
            if (p->status != 503)
                fail_msg("/readyz answered %ld while nothing took writes", p->status);
            (*gap_503s)++;
        }
        if (p->t0 > ft->promote && first_200 < 0 && p->status == 200)
            first_200 = p->t1;
        else if (first_200 >= 0 && p->status != 200)
            fail_msg("/readyz answered %ld (%s) %.0f ms after the promotion, after it had said "
                     "200 again",
                     p->status, p->message, p->t0 - ft->promote);
    }
    assert_true(*gap_503s >= 10);
    assert_true(first_200 > 0 && first_200 - ft->promote <= RECONNECT_MS);
    return first_200;
}

/* The row of every /fo/k on the new primary: rows[k] its id ("" when none). Aborts when an
 * operation was stored twice. Returns how many rows there are. */
static int stored_ids(PGconn *pg, char (*rows)[37], int n)
{
    PGresult *res = PQexec(pg, "SELECT substr(payload->>'endpoint', 5)::int, id::text, status "
                               "FROM offline_operations WHERE payload->>'endpoint' LIKE '/fo/%' "
                               "AND payload->>'endpoint' <> '/fo/outbox'");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    int total = PQntuples(res);
    for (int i = 0; i < total; i++) {
        int k = atoi(PQgetvalue(res, i, 0));
        assert_true(k >= 0 && k < n);
        assert_string_equal(rows[k], "");
        assert_string_equal(PQgetvalue(res, i, 2), "completed");
        snprintf(rows[k], 37, "%s", PQgetvalue(res, i, 1));
    }
    PQclear(res);
    return total;
}

struct deliveries {
    int stored, ghosts, duplicates;
};

/* Every 201 is stored under its id and arrived at least once with that id as Idempotency-Key;
 * every stored operation arrived (ghosts: stored although the client got a 503, a commit
 * whose answer was lost with the primary). */
static struct deliveries check_deliveries(PGconn *pg, int n)
{
    struct deliveries d = {0};
    char(*rows)[37] = calloc((size_t)n, 37);
    int *seen = calloc((size_t)n, sizeof(int));
    d.stored = stored_ids(pg, rows, n);
    int count;
    struct us_req *r = us_requests(US, &count);
    for (int i = 0; i < count; i++) {
        int k = strncmp(r[i].path, "/fo/", 4) == 0 ? atoi(r[i].path + 4) : -1;
        if (k < 0 || k >= n || strcmp(r[i].path, "/fo/outbox") == 0)
            continue;
        assert_string_equal(us_header(&r[i], "idempotency-key"), rows[k]);
        seen[k]++;
    }
    us_free_reqs(r, count);
    for (int k = 0; k < n; k++) {
        if (answers[k].status == 201 && strcmp(rows[k], answers[k].id) != 0)
            fail_msg("enqueue %d got 201 with id %s; stored: \"%s\"", k, answers[k].id, rows[k]);
        if (rows[k][0] != '\0' && seen[k] == 0)
            fail_msg("operation %d (%s) is stored but never arrived", k, rows[k]);
        d.ghosts += answers[k].status != 201 && rows[k][0] != '\0';
        d.duplicates += seen[k] > 1 ? seen[k] - 1 : 0;
    }
    free(seen);
    free(rows);
    return d;
}

/* Waits up to timeout_ms until nothing on pg is pending or in progress. */
static void wait_drained(PGconn *pg, int timeout_ms)
{
    double until = th_now_ms() + timeout_ms;
    while (atoi(th_sql(pg, "SELECT count(*) FROM offline_operations "
                           "WHERE status IN ('pending', 'in_progress')")) > 0 &&
           th_now_ms() < until)
        usleep(100 * 1000);
    assert_string_equal(th_sql(pg, "SELECT count(*) FROM offline_operations "
                                   "WHERE status IN ('pending', 'in_progress')"),
                        "0");
}

/* The listener hears the new primary: a row from the outbox function (its NOTIFY the only
 * wake-up, the workers poll every 10 s) is delivered within 2 s. */
static double check_outbox(PGconn *pg)
{
    double t0 = th_now_ms();
    th_sql(pg, "SELECT offlineq.enqueue('api_call', '{\"endpoint\":\"/fo/outbox\"}')");
    assert_int_equal(us_wait_count(US, "/fo/outbox", 1, 2000), 1);
    return th_now_ms() - t0;
}

static void start_service(void)
{
    char url[256], upenv[200];
    snprintf(url, sizeof(url),
             "postgresql://postgres@127.0.0.1:%d,127.0.0.1:%d/failover"
             "?target_session_attrs=read-write",
             port_primary, port_standby);
    snprintf(upfile, sizeof(upfile), "/tmp/offlineq-failover-%d.json", (int)getpid());
    FILE *f = fopen(upfile, "w");
    fprintf(f,
            "{\"default\":{\"base_url\":\"%s\",\"timeout_ms\":5000,\"breaker_failures\":100000}}",
            us_url(US));
    fclose(f);
    snprintf(upenv, sizeof(upenv), "OFFLINEQ_UPSTREAMS_FILE=%s", upfile);
    const char *env[] = {upenv,
                         "OFFLINEQ_WORKERS=4",
                         "OFFLINEQ_LEASE_S=5",
                         "OFFLINEQ_POLL_MS=10000",
                         "OFFLINEQ_HTTP_THREADS=8",
                         NULL};
    assert_int_equal(th_svc_start(&S, url, env, NULL), 0);
}

/* Should the run have ended before a 201 followed the promotion, enqueue on (50 ms apart)
 * until one does or RECONNECT_MS are over. Returns how many answers there are in all. */
static int enqueue_until_back(double promote)
{
    int n = N_OPS;
    while (first_201_after(promote, n) < 0 && th_now_ms() - promote < RECONNECT_MS &&
           n < N_OPS + EXTRA_MAX) {
        enqueue_one(n++);
        usleep(50 * 1000);
    }
    return n;
}

static void test_failover_loses_nothing(void **state)
{
    us_script(US, "/fo/", "201", 1);
    start_service();
    struct failover_times ft;
    run(&ft);
    int n = enqueue_until_back(ft.promote);
    double back = first_201_after(ft.promote, n);
    struct tally t = count_answers(n, ft.kill, back);
    assert_int_equal(t.other, 0);
    assert_int_equal(t.refused_before_kill, 0);
    assert_int_equal(t.refused_late, 0); /* no connection of the old primary's is used again */
    assert_true(back > 0 && back - ft.promote <= RECONNECT_MS);
    assert_true(ft.listener > 0);
    int gap_503s;
    double ready = check_readiness(&ft, &gap_503s);
    PGconn *pg = connect_port(port_standby, "failover");
    wait_drained(pg, 40000);
    struct deliveries d = check_deliveries(pg, n);
    double outbox_ms = check_outbox(pg);
    fprintf(stderr,
            "FIGURES failover: %d enqueues (%d clients, %.0f/s), primary killed after %d answers, "
            "standby promoted %d ms later (pg_ctl promote took %.0f ms); %d answered 201, %d "
            "answered 503 database_unavailable (%d of them sent after the first 201 that "
            "followed the promotion), 0 other; first 201 %.0f ms after the promotion began, "
            "/readyz 200 after %.0f ms (503 for all %d probes in the gap), listener LISTENing "
            "on the new primary after %.0f ms, an outbox row delivered %.0f ms after its commit; "
            "%d operations stored, every 201 among them, %d stored although answered 503; all "
            "delivered, %d duplicate deliveries (same key)\n",
            n, CLIENTS, 1000.0 / SPACING_MS, KILL_AFTER, GAP_MS, ft.promoted - ft.promote,
            t.created, t.refused, t.refused_late, back - ft.promote, ready - ft.promote, gap_503s,
            ft.listener - ft.promote, outbox_ms, d.stored, d.ghosts, d.duplicates);
    assert_int_equal(d.stored, t.created + d.ghosts);
    PQfinish(pg);
    assert_int_equal(th_svc_stop(&S, SIGTERM), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failover_loses_nothing),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
