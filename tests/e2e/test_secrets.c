/* Secrets at rest: OFFLINEQ_ENCRYPTION_KEY seals payloads and files before they reach the
 * database; rows from before the key stay readable (and are sealed when the service sees them);
 * a wrong or missing key stops start-up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "runs.h"
#include "upstream.h"

#define DB "e2e_secrets"
#define KEY                                                                                        \
    "OFFLINEQ_ENCRYPTION_KEY=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define OTHER_KEY                                                                                  \
    "OFFLINEQ_ENCRYPTION_KEY=ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static struct upstream_srv *US;
static char url[512], up[160];

static int group_setup(void **state)
{
    US = us_start();
    snprintf(up, sizeof(up), "OFFLINEQ_UPSTREAMS=default=%s", us_url(US));
    th_db_create(DB, url, sizeof(url));
    return 0;
}

static int group_teardown(void **state)
{
    us_stop(US);
    th_db_drop(DB);
    return 0;
}

static void enqueue(const struct svc *s, const char *secret, char id[37])
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/s/%s\","
             "\"data\":{\"secret\":\"%s\",\"n\":0.1}}}",
             secret, secret);
    th_enqueue(s, body, id);
}

static void upload(const struct svc *s, const char *content, char id[37])
{
    static const char *const h[] = {"Content-Type: application/octet-stream", NULL};
    struct resp *r = th_http(s, "POST", "/api/offline/files", content, (long)strlen(content), h);
    assert_int_equal(r->status, 201);
    snprintf(id, 37, "%s", th_str(r->json, "file_id"));
    th_resp_free(r);
}

static void assert_payload(const struct svc *s, const char *id, const char *secret)
{
    char path[96];
    snprintf(path, sizeof(path), "/api/offline/queue/%s", id);
    struct resp *r = th_http(s, "GET", path, NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    const json_t *data = json_object_get(json_object_get(r->json, "payload"), "data");
    assert_string_equal(th_str(data, "secret"), secret);
    assert_true(json_real_value(json_object_get(data, "n")) == 0.1);
    assert_null(json_object_get(json_object_get(r->json, "payload"), "$enc"));
    th_resp_free(r);
}

static void test_key_on_an_existing_database(void **state)
{
    PGconn *pg = th_db_connect(url);
    struct svc s;
    char a[37], b[37], fa[37], fb[37];
    /* before the key: plaintext rows */
    assert_int_equal(th_svc_start(&s, url, (const char *const[]){up, NULL}, NULL), 0);
    enqueue(&s, "plain-secret-A", a);
    upload(&s, "PLAINFILE-1 contents", fa);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);

    /* with the key: new rows are sealed, old ones still read */
    assert_int_equal(th_svc_start(&s, url, (const char *const[]){up, KEY, NULL}, NULL), 0);
    enqueue(&s, "sealed-secret-B", b);
    upload(&s, "SEALEDFILE-2 contents", fb);
    assert_payload(&s, a, "plain-secret-A");
    assert_payload(&s, b, "sealed-secret-B");
    char q[256];
    snprintf(
        q, sizeof(q),
        "SELECT (payload ? '$enc2')::text || '/' || (payload::text LIKE "
        "'%%sealed-secret-B%%')::text "
        "|| '/' || (payload->>'endpoint' IS NULL)::text FROM offline_operations WHERE id = '%s'",
        b);
    assert_string_equal(th_sql(pg, q), "true/false/true"); /* the endpoint is sealed too */
    /* the row from before the key is sealed once the service sees it (its sweep) */
    snprintf(q, sizeof(q),
             "SELECT (payload ? '$enc2')::text || '/' || (payload::text LIKE "
             "'%%plain-secret-A%%')::text "
             "FROM offline_operations WHERE id = '%s'",
             a);
    for (int i = 0; i < 300 && strcmp(th_sql(pg, q), "true/false") != 0; i++)
        usleep(100000);
    assert_string_equal(th_sql(pg, q), "true/false");
    snprintf(q, sizeof(q),
             "SELECT encrypted::text || '/' || (SELECT bool_or(position('SEALEDFILE'::bytea in "
             "c.data) > 0) FROM offlineq_file_chunks c WHERE c.file_id = f.id)::text "
             "FROM offlineq_files f WHERE id = '%s'",
             fb);
    assert_string_equal(th_sql(pg, q), "true/false");
    snprintf(q, sizeof(q), "SELECT encrypted::text FROM offlineq_files WHERE id = '%s'", fa);
    assert_string_equal(th_sql(pg, q), "false");
    /* the list opens them too */
    struct resp *r = th_http(&s, "GET", "/api/offline/queue?limit=10", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_null(strstr(r->body, "$enc"));
    assert_non_null(strstr(r->body, "sealed-secret-B"));
    th_resp_free(r);
    /* file operations for both files, then delivery: the upstream gets plaintext */
    char body[256], ua[37], ub[37];
    snprintf(body, sizeof(body),
             "{\"operation_type\":\"file_upload\",\"payload\":{\"file_id\":\"%s\",\"endpoint\":\"/"
             "u/a\"}}",
             fa);
    th_enqueue(&s, body, ua);
    snprintf(body, sizeof(body),
             "{\"operation_type\":\"file_upload\",\"payload\":{\"file_id\":\"%s\",\"endpoint\":\"/"
             "u/b\"}}",
             fb);
    th_enqueue(&s, body, ub);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);

    assert_int_equal(
        th_svc_start(&s, url, (const char *const[]){up, KEY, "OFFLINEQ_WORKERS=2", NULL}, NULL), 0);
    assert_int_equal(us_wait_count(US, "/", 4, 20000), 4);
    int n;
    struct us_req *reqs = us_requests(US, &n);
    int seen = 0;
    for (int i = 0; i < n; i++) {
        const char *want = strcmp(reqs[i].path, "/s/plain-secret-A") == 0    ? "plain-secret-A"
                           : strcmp(reqs[i].path, "/s/sealed-secret-B") == 0 ? "sealed-secret-B"
                           : strcmp(reqs[i].path, "/u/a") == 0 ? "PLAINFILE-1 contents"
                           : strcmp(reqs[i].path, "/u/b") == 0 ? "SEALEDFILE-2 contents"
                                                               : NULL;
        assert_non_null(want);
        assert_non_null(memmem(reqs[i].body, reqs[i].body_len, want, strlen(want)));
        seen++;
    }
    us_free_reqs(reqs, n);
    assert_int_equal(seen, 4);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    PQfinish(pg);
}

static void assert_start_fails(const char *const *env, int code, const char *says)
{
    struct svc s;
    int exit_code = 0;
    assert_int_equal(th_svc_start(&s, url, env, &exit_code), -1);
    assert_int_equal(exit_code, code);
    char *log = th_svc_log(&s);
    if (strstr(log, says) == NULL)
        fail_msg("log does not say \"%s\": %s", says, log);
    assert_null(strstr(log, "000102030405060708090a0b0c0d0e0f")); /* the key is never logged */
    assert_null(strstr(log, "ff0102030405060708090a0b0c0d0e0f"));
    free(log);
}

static void test_wrong_or_missing_key_stops_start_up(void **state)
{
    assert_start_fails((const char *const[]){up, OTHER_KEY, NULL}, 1,
                       "OFFLINEQ_ENCRYPTION_KEY is not the key this database was encrypted with");
    assert_start_fails((const char *const[]){up, NULL}, 1, "this database holds encrypted data");
    assert_start_fails((const char *const[]){up, "OFFLINEQ_ENCRYPTION_KEY=abc", NULL}, 2,
                       "expected 64 hex characters");
    assert_start_fails(
        (const char *const[]){up,
                              "OFFLINEQ_ENCRYPTION_KEY="
                              "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                              NULL},
        2, "not hexadecimal");
    struct svc s; /* and the right key still starts */
    assert_int_equal(th_svc_start(&s, url, (const char *const[]){up, KEY, NULL}, NULL), 0);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
}

#define PREVIOUS_IS_KEY                                                                            \
    "OFFLINEQ_ENCRYPTION_KEY_PREVIOUS="                                                            \
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define BIG_FILE_BYTES (2 * 1024 * 1024 + 4321) /* three chunks */

static void wait_log(const struct svc *s, const char *says, int timeout_ms)
{
    for (int i = 0; i < timeout_ms / 50; i++) {
        char *log = th_svc_log(s);
        bool found = strstr(log, says) != NULL;
        free(log);
        if (found)
            return;
        usleep(50 * 1000);
    }
    fail_msg("the log never said \"%s\"", says);
}

/* OFFLINEQ_ENCRYPTION_KEY_PREVIOUS: a database sealed with KEY is read with both keys while
 * everything in it (payloads, results, file chunks, an Idempotency-Key answer, the check value)
 * is sealed again with the new key; then the new key alone opens it, and the old one alone no
 * longer starts. */
static void test_key_rotation(void **state)
{
    PGconn *pg = th_db_connect(url);
    struct svc s;
    char a[37], big[37];
    assert_int_equal(th_svc_start(&s, url, (const char *const[]){up, KEY, NULL}, NULL), 0);
    enqueue(&s, "rotated-secret-C", a);
    char *content = malloc(BIG_FILE_BYTES);
    for (int i = 0; i < BIG_FILE_BYTES; i++)
        content[i] = (char)('a' + i % 26);
    memcpy(content, "BIGFILE-HEAD", 12);
    memcpy(content + BIG_FILE_BYTES - 12, "BIGFILE-TAIL", 12);
    static const char *const oct[] = {"Content-Type: application/octet-stream", NULL};
    struct resp *r = th_http(&s, "POST", "/api/offline/files", content, BIG_FILE_BYTES, oct);
    assert_int_equal(r->status, 201);
    snprintf(big, sizeof(big), "%s", th_str(r->json, "file_id"));
    th_resp_free(r);
    static const char *const idem[] = {"Content-Type: application/json",
                                       "Idempotency-Key: rotate-me-1", NULL};
    static const char keyed[] =
        "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/k\"}}";
    r = th_http(&s, "POST", "/api/offline/queue", keyed, -1, idem);
    assert_int_equal(r->status, 201);
    char *first_answer = strdup(r->body);
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    assert_start_fails((const char *const[]){up, OTHER_KEY, NULL}, 1, "rotating keys?");

    /* both keys: everything reads, and the rotation runs to its end */
    assert_int_equal(
        th_svc_start(&s, url, (const char *const[]){up, OTHER_KEY, PREVIOUS_IS_KEY, NULL}, NULL),
        0);
    assert_payload(&s, a, "rotated-secret-C");
    wait_log(&s, "\"event\":\"key_rotation_finished\"", 20000);
    assert_string_equal(th_sql(pg, "SELECT phase FROM offlineq_key_rotation"), "4");
    int resealed = atoi(th_sql(pg, "SELECT resealed FROM offlineq_key_rotation"));
    /* at least: 3 payloads of this test, 2 of the first with their results, 3 chunks and the
     * chunk of the first test's sealed file, the answer, the check value */
    assert_true(resealed >= 3 + 4 + 4 + 1 + 1);
    r = th_http(&s, "GET", "/metrics", NULL, 0, NULL);
    char want[96];
    snprintf(want, sizeof(want), "offlineq_key_rotation_resealed_total %d\n", resealed);
    assert_non_null(strstr(r->body, want));
    assert_non_null(strstr(r->body, "offlineq_key_rotation_active 0\n"));
    th_resp_free(r);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);

    /* the new key alone: every value opens; the old key alone is refused */
    assert_start_fails((const char *const[]){up, KEY, NULL}, 1, "is not the key this database");
    us_reset(US);
    assert_int_equal(th_svc_start(&s, url,
                                  (const char *const[]){up, OTHER_KEY, "OFFLINEQ_WORKERS=2", NULL},
                                  NULL),
                     0);
    assert_payload(&s, a, "rotated-secret-C");
    r = th_http(&s, "GET", "/api/offline/queue?limit=100", NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    assert_null(strstr(r->body, "$enc")); /* every payload and result opened */
    th_resp_free(r);
    r = th_http(&s, "POST", "/api/offline/queue", keyed, -1, idem);
    assert_int_equal(r->status, 201);
    assert_string_equal(th_header(r, "Idempotent-Replayed"), "true");
    assert_string_equal(r->body, first_answer);
    th_resp_free(r);
    char body[256], op[37];
    snprintf(body, sizeof(body),
             "{\"operation_type\":\"file_upload\",\"payload\":{\"file_id\":\"%s\","
             "\"endpoint\":\"/u/big\"}}",
             big);
    th_enqueue(&s, body, op);
    json_decref(th_wait_op(&s, op, "completed", 30000));
    int n;
    struct us_req *reqs = us_requests(US, &n);
    bool delivered = false;
    for (int i = 0; i < n; i++) {
        if (strcmp(reqs[i].path, "/u/big") != 0)
            continue;
        assert_non_null(memmem(reqs[i].body, reqs[i].body_len, content, BIG_FILE_BYTES));
        delivered = true;
    }
    us_free_reqs(reqs, n);
    assert_true(delivered);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);

    /* the pair again: nothing to do */
    assert_int_equal(
        th_svc_start(&s, url, (const char *const[]){up, OTHER_KEY, PREVIOUS_IS_KEY, NULL}, NULL),
        0);
    wait_log(&s, "\"event\":\"key_rotation_not_needed\"", 5000);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    assert_start_fails(
        (const char *const[]){up, OTHER_KEY,
                              "OFFLINEQ_ENCRYPTION_KEY_PREVIOUS="
                              "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                              NULL},
        2, "the same key as OFFLINEQ_ENCRYPTION_KEY");
    assert_start_fails((const char *const[]){up, PREVIOUS_IS_KEY, NULL}, 2,
                       "OFFLINEQ_ENCRYPTION_KEY_PREVIOUS: needs OFFLINEQ_ENCRYPTION_KEY");
    free(first_answer);
    free(content);
    PQfinish(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_on_an_existing_database),
        cmocka_unit_test(test_wrong_or_missing_key_stops_start_up),
        cmocka_unit_test(test_key_rotation),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
