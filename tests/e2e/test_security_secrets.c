/* Issue 11, points 5 and 11: everything derived from a payload is sealed at rest and bound to
 * its row; secrets stay out of /proc and out of argv; an unknown OFFLINEQ_* variable stops
 * start-up. */
#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "upstream.h"

#define DB "e2e_security_secrets"
#define HEXKEY "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY "OFFLINEQ_ENCRYPTION_KEY=" HEXKEY
#define API_KEY "sekret-admin-key-31337"

static struct upstream_srv *US;
static char url[512], up[160];

static int group_setup(void **state)
{
    US = us_start();
    snprintf(up, sizeof(up), "OFFLINEQ_UPSTREAMS=default=%s", us_url(US));
    return 0;
}

static int group_teardown(void **state)
{
    us_stop(US);
    return 0;
}

static int db_setup(void **state)
{
    th_db_create(DB, url, sizeof(url));
    return 0;
}

static char temp_paths[8][32]; /* secret files of a test: removed even when it fails */
static int n_temp;

static int db_teardown(void **state)
{
    for (; n_temp > 0; n_temp--)
        unlink(temp_paths[n_temp - 1]);
    th_db_drop(DB);
    return 0;
}

/* The whole pg_dump of the test database (malloc'd). */
static char *pg_dump(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "\"$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)/pg_dump\" "
             "--no-owner -d '%s'",
             url);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    size_t got;
    while ((got = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 4096)
            out = realloc(out, cap *= 2);
    }
    out[len] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_non_null(strstr(out, "offline_operations")); /* it is a dump of our schema */
    return out;
}

static void assert_dump_lacks(const char *marker)
{
    char *dump = pg_dump();
    const char *at = strstr(dump, marker);
    if (at != NULL)
        fail_msg("pg_dump holds %s: ...%.300s", marker, at > dump + 200 ? at - 200 : dump);
    free(dump);
}

static json_t *get_op(const struct svc *s, const char *id)
{
    char path[96];
    snprintf(path, sizeof(path), "/api/offline/queue/%s", id);
    struct resp *r = th_http(s, "GET", path, NULL, 0, NULL);
    assert_int_equal(r->status, 200);
    json_t *j = json_incref(r->json);
    th_resp_free(r);
    return j;
}

static bool op_text_has(const struct svc *s, const char *id, const char *marker)
{
    json_t *op = get_op(s, id);
    char *text = json_dumps(op, 0);
    bool has = strstr(text, marker) != NULL;
    free(text);
    json_decref(op);
    return has;
}

/* ---- point 5: encryption at rest ---- */

static void conflict_op(const struct svc *s, const char *path, const char *strategy,
                        const char *marker, char id[37])
{
    us_resource(US, path, "{\"name\":\"v1\"}", 1700000000);
    us_resource(US, path, "{\"name\":\"theirs\",\"b\":1}", 1700000000);
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"operation_type\":\"experiment_sync\",\"payload\":{\"endpoint\":\"%s\","
             "\"if_match\":\"\\\"v1\\\"\",\"base\":{\"name\":\"v1\"},\"data\":{\"name\":\"%s\"}},"
             "\"conflict_strategy\":\"%s\"}",
             path, marker, strategy);
    th_enqueue(s, body, id);
}

static void resolve(const struct svc *s, const char *id, const char *body)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/offline/queue/%s/resolve", id);
    struct resp *r = th_json(s, "POST", path, body);
    if (r->status != 200)
        fail_msg("resolve -> %ld %s", r->status, r->body);
    th_resp_free(r);
}

static void test_conflict_results_are_sealed(void **state)
{
    struct svc s;
    assert_int_equal(
        th_svc_start(&s, url, (const char *const[]){up, KEY, "OFFLINEQ_WORKERS=2", NULL}, NULL), 0);
    char lw[37], mg[37], ml[37], mm[37];
    conflict_op(&s, "/res/sec-lw", "local_wins", "LOCALMARK-lw-4q1", lw);
    conflict_op(&s, "/res/sec-mg", "merge", "LOCALMARK-mg-4q2", mg);
    conflict_op(&s, "/res/sec-ml", "manual", "LOCALMARK-ml-4q3", ml);
    conflict_op(&s, "/res/sec-mm", "manual", "LOCALMARK-mm-4q4", mm);
    json_t *op = th_wait_op(&s, ml, "conflict,completed,failed", 10000);
    assert_string_equal(th_str(op, "status"), "conflict");
    json_decref(op);
    op = th_wait_op(&s, mm, "conflict,completed,failed", 10000);
    assert_string_equal(th_str(op, "status"), "conflict");
    json_decref(op);
    resolve(&s, ml, "{\"resolution\":\"local\"}");
    char upper[37]; /* the path may spell the id in capitals: the seal is bound to the row's id */
    for (int i = 0; i < 37; i++)
        upper[i] = (char)toupper((unsigned char)mm[i]);
    resolve(&s, upper, "{\"resolution\":\"merged\",\"data\":{\"name\":\"TYPEDMARK-mm-7z9\"}}");
    const char *ids[] = {lw, mg, ml, mm};
    for (int i = 0; i < 4; i++) {
        op = th_wait_op(&s, ids[i], "completed,failed", 10000);
        assert_string_equal(th_str(op, "status"), "completed");
        json_decref(op);
    }
    /* the API shows the plaintext: the local data in result.sent, the typed merged data */
    assert_true(op_text_has(&s, lw, "LOCALMARK-lw-4q1"));
    json_t *got = get_op(&s, lw);
    assert_string_equal(th_str(json_object_get(json_object_get(got, "result"), "sent"), "name"),
                        "LOCALMARK-lw-4q1");
    json_decref(got);
    assert_true(op_text_has(&s, mg, "LOCALMARK-mg-4q2"));
    assert_true(op_text_has(&s, mm, "TYPEDMARK-mm-7z9"));
    /* the database does not */
    char *dump = pg_dump();
    const char *markers[] = {"LOCALMARK", "TYPEDMARK", "theirs"};
    for (int i = 0; i < 3; i++) {
        const char *at = strstr(dump, markers[i]);
        if (at != NULL)
            fail_msg("pg_dump holds %s: ...%.300s", markers[i], at > dump + 200 ? at - 200 : dump);
    }
    free(dump);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
}

/* Batch enqueue (one statement) and batched delivery (one request, a result per row). */
static void test_batches_are_sealed_per_row(void **state)
{
    struct svc s;
    assert_int_equal(
        th_svc_start(&s, url, (const char *const[]){up, KEY, "OFFLINEQ_WORKERS=2", NULL}, NULL), 0);
    struct resp *r = th_json(&s, "POST", "/api/offline/queue/batch",
                             "{\"operations\":[{\"operation_type\":\"metric_log\",\"payload\":{"
                             "\"run_id\":\"BATCHMARK-r1\",\"metrics\":{\"m\":1}}},"
                             "{\"operation_type\":\"metric_log\",\"payload\":{\"run_id\":"
                             "\"BATCHMARK-r2\",\"metrics\":{\"m\":2}}},"
                             "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/batch/"
                             "a\",\"data\":\"BATCHMARK-a\"}}]}");
    assert_int_equal(r->status, 201);
    const json_t *ops = json_object_get(r->json, "operations");
    assert_int_equal(json_array_size(ops), 3);
    char ids[3][37];
    for (size_t i = 0; i < 3; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%s", th_str(json_array_get(ops, i), "id"));
        assert_null(json_object_get(json_object_get(json_array_get(ops, i), "payload"), "$enc2"));
    }
    th_resp_free(r);
    for (int i = 0; i < 3; i++) {
        json_t *op = th_wait_op(&s, ids[i], "completed,failed", 10000);
        assert_string_equal(th_str(op, "status"), "completed");
        assert_true(json_is_object(json_object_get(op, "result")));
        assert_null(json_object_get(json_object_get(op, "result"), "$enc2")); /* opened */
        json_decref(op);
    }
    PGconn *pg = th_db_connect(url);
    for (int i = 0; i < 3; i++) /* each row's payload and result sealed, bound to that row */
        assert_string_equal(
            th_sqlf(pg,
                    "SELECT (payload ? '$enc2')::text || '/' || (result ? '$enc2')::text "
                    "FROM offline_operations WHERE id = '%s'",
                    ids[i]),
            "true/true");
    PQfinish(pg);
    assert_true(op_text_has(&s, ids[0], "BATCHMARK-r1"));
    assert_true(op_text_has(&s, ids[2], "BATCHMARK-a"));
    assert_dump_lacks("BATCHMARK");
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
}

static void test_sql_function_rows_are_sealed_when_seen(void **state)
{
    struct svc s;
    PGconn *pg = th_db_connect(url);
    /* API only: no worker will claim it, the service's sweep seals it */
    assert_int_equal(th_svc_start(&s, url, (const char *const[]){up, KEY, NULL}, NULL), 0);
    char id[64];
    snprintf(
        id, sizeof(id), "%s",
        th_sql(pg,
               "SELECT offlineq.enqueue('api_call', "
               "'{\"endpoint\":\"/sqlrow\",\"data\":{\"m\":\"SQLMARK-a-51x\",\"n\":1.50,"
               "\"$enc2\":\"data, not a seal\"}}')")); /* the envelope's key deeper down is data */
    bool sealed = false;
    for (int i = 0; i < 300 && !sealed; i++) { /* 30 s */
        char q[160];
        snprintf(q, sizeof(q),
                 "SELECT (payload ? '$enc2')::text FROM offline_operations WHERE id = '%s'", id);
        sealed = strcmp(th_sql(pg, q), "true") == 0;
        if (!sealed)
            usleep(100000);
    }
    assert_true(sealed);
    assert_dump_lacks("SQLMARK-a-51x");
    assert_true(op_text_has(&s, id, "SQLMARK-a-51x"));
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);

    /* with workers: the claim seals it before it is sent; the upstream gets the plaintext */
    assert_int_equal(
        th_svc_start(&s, url, (const char *const[]){up, KEY, "OFFLINEQ_WORKERS=2", NULL}, NULL), 0);
    char id2[64];
    snprintf(
        id2, sizeof(id2), "%s",
        th_sql(
            pg,
            "SELECT offlineq.enqueue('api_call', "
            "'{\"endpoint\":\"/sqlrow2\",\"data\":{\"m\":\"SQLMARK-b-52y\",\"$enc2\":\"x\"}}')"));
    json_t *op = th_wait_op(&s, id2, "completed,failed", 10000);
    assert_string_equal(th_str(op, "status"), "completed");
    json_decref(op);
    op = th_wait_op(&s, id, "completed,failed", 10000);
    assert_string_equal(th_str(op, "status"), "completed");
    json_decref(op);
    int n;
    struct us_req *reqs = us_requests(US, &n);
    int seen = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(reqs[i].path, "/sqlrow") == 0) {
            assert_non_null(memmem(reqs[i].body, reqs[i].body_len, "\"SQLMARK-a-51x\"", 15));
            seen++;
        }
        if (strcmp(reqs[i].path, "/sqlrow2") == 0) {
            assert_non_null(memmem(reqs[i].body, reqs[i].body_len, "\"SQLMARK-b-52y\"", 15));
            seen++;
        }
    }
    us_free_reqs(reqs, n);
    assert_int_equal(seen, 2);
    assert_dump_lacks("SQLMARK");
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    PQfinish(pg);
}

static void test_swapped_ciphertexts_are_refused(void **state)
{
    struct svc s;
    PGconn *pg = th_db_connect(url);
    assert_int_equal(th_svc_start(&s, url, (const char *const[]){up, KEY, NULL}, NULL), 0);
    char a[37], b[37];
    th_enqueue(&s,
               "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/swap/"
               "a\",\"data\":\"SWAPMARK-A\"}}",
               a);
    th_enqueue(&s,
               "{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":\"/swap/"
               "b\",\"data\":\"SWAPMARK-B\"}}",
               b);
    th_sqlf(
        pg,
        "UPDATE offline_operations o SET payload = x.p FROM (VALUES ('%s'::uuid, "
        "(SELECT payload FROM offline_operations WHERE id = '%s')), ('%s'::uuid, "
        "(SELECT payload FROM offline_operations WHERE id = '%s'))) AS x(id, p) WHERE o.id = x.id",
        a, b, b, a);
    /* the API never shows one row's payload as another's: it stays sealed */
    json_t *op = get_op(&s, a);
    const json_t *payload = json_object_get(op, "payload");
    assert_non_null(json_object_get(payload, "$enc2"));
    char *text = json_dumps(op, 0);
    assert_null(strstr(text, "SWAPMARK"));
    free(text);
    json_decref(op);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    /* a worker fails them with a clear message and sends nothing */
    int before = us_count(US, "/swap");
    assert_int_equal(
        th_svc_start(&s, url, (const char *const[]){up, KEY, "OFFLINEQ_WORKERS=2", NULL}, NULL), 0);
    const char *ids[] = {a, b};
    for (int i = 0; i < 2; i++) {
        op = th_wait_op(&s, ids[i], "completed,failed", 10000);
        assert_string_equal(th_str(op, "status"), "failed");
        const char *msg = th_str(op, "error_message");
        if (msg == NULL || strstr(msg, "cannot be decrypted") == NULL)
            fail_msg("error_message: %s", msg ? msg : "(none)");
        json_decref(op);
    }
    assert_int_equal(us_count(US, "/swap"), before);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    PQfinish(pg);
}

static void upload(const struct svc *s, const char *content, char id[37])
{
    static const char *const h[] = {"Content-Type: application/octet-stream", NULL};
    struct resp *r = th_http(s, "POST", "/api/offline/files", content, (long)strlen(content), h);
    assert_int_equal(r->status, 201);
    snprintf(id, 37, "%s", th_str(r->json, "file_id"));
    th_resp_free(r);
}

static void test_swapped_files_are_refused(void **state)
{
    struct svc s;
    PGconn *pg = th_db_connect(url);
    assert_int_equal(th_svc_start(&s, url, (const char *const[]){up, KEY, NULL}, NULL), 0);
    char fa[37], fb[37], a[37], b[37];
    upload(&s, "FILEMARK-A contents", fa);
    upload(&s, "FILEMARK-B contents", fb);
    char body[256];
    snprintf(body, sizeof(body),
             "{\"operation_type\":\"file_upload\",\"payload\":{\"file_id\":\"%s\",\"endpoint\":\"/"
             "fswap/a\"}}",
             fa);
    th_enqueue(&s, body, a);
    snprintf(body, sizeof(body),
             "{\"operation_type\":\"file_upload\",\"payload\":{\"file_id\":\"%s\",\"endpoint\":\"/"
             "fswap/b\"}}",
             fb);
    th_enqueue(&s, body, b);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    assert_dump_lacks("FILEMARK");
    th_sqlf(pg,
            "UPDATE offlineq_file_chunks c SET data = x.d FROM (VALUES ('%s'::uuid, "
            "(SELECT data FROM offlineq_file_chunks WHERE file_id = '%s')), ('%s'::uuid, "
            "(SELECT data FROM offlineq_file_chunks WHERE file_id = '%s'))) AS x(id, d) "
            "WHERE c.file_id = x.id",
            fa, fb, fb, fa);
    assert_int_equal(
        th_svc_start(&s, url, (const char *const[]){up, KEY, "OFFLINEQ_WORKERS=2", NULL}, NULL), 0);
    const char *ids[] = {a, b};
    for (int i = 0; i < 2; i++) {
        json_t *op = th_wait_op(&s, ids[i], "completed,failed", 10000);
        assert_string_equal(th_str(op, "status"), "failed");
        const char *msg = th_str(op, "error_message");
        if (msg == NULL || strstr(msg, "cannot be decrypted") == NULL)
            fail_msg("error_message: %s", msg ? msg : "(none)");
        json_decref(op);
    }
    assert_int_equal(us_count(US, "/fswap"), 0);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    PQfinish(pg);
}

/* A v1 envelope as the service wrote it before row binding: base64(nonce | ct | tag), no AAD. */
static char *v1_envelope(const char *plain)
{
    unsigned char k[32], nonce[12], tag[16];
    for (int i = 0; i < 32; i++)
        k[i] = (unsigned char)i;
    RAND_bytes(nonce, sizeof(nonce));
    size_t n = strlen(plain);
    unsigned char *blob = malloc(12 + n + 16);
    int len = 0, fin = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, k, nonce);
    EVP_EncryptUpdate(ctx, blob + 12, &len, (const unsigned char *)plain, (int)n);
    EVP_EncryptFinal_ex(ctx, blob + 12 + len, &fin);
    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag);
    EVP_CIPHER_CTX_free(ctx);
    memcpy(blob, nonce, 12);
    memcpy(blob + 12 + n, tag, 16);
    char *b64 = malloc(4 * ((12 + n + 16 + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)b64, blob, (int)(12 + n + 16));
    free(blob);
    return b64;
}

static void test_old_envelopes_still_open(void **state)
{
    struct svc s;
    PGconn *pg = th_db_connect(url);
    assert_int_equal(th_svc_start(&s, url, (const char *const[]){up, KEY, NULL}, NULL), 0);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0); /* the key check is recorded */
    char *b64 = v1_envelope("{\"endpoint\":\"/v1env\",\"data\":{\"m\":\"V1MARK-9\"}}");
    char id[64];
    snprintf(id, sizeof(id), "%s",
             th_sqlf(pg,
                     "INSERT INTO offline_operations (operation_type, payload) "
                     "VALUES ('api_call', jsonb_build_object('$enc', '%s')) RETURNING id",
                     b64));
    free(b64);
    assert_int_equal(th_svc_start(&s, url, (const char *const[]){up, KEY, NULL}, NULL), 0);
    json_t *op = get_op(&s, id);
    assert_string_equal(th_str(json_object_get(json_object_get(op, "payload"), "data"), "m"),
                        "V1MARK-9");
    json_decref(op);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    assert_int_equal(
        th_svc_start(&s, url, (const char *const[]){up, KEY, "OFFLINEQ_WORKERS=1", NULL}, NULL), 0);
    op = th_wait_op(&s, id, "completed,failed", 10000);
    assert_string_equal(th_str(op, "status"), "completed");
    json_decref(op);
    assert_int_equal(us_count(US, "/v1env"), 1);
    char q[160]; /* and it was sealed again, bound to its row */
    snprintf(q, sizeof(q),
             "SELECT (payload ? '$enc2')::text FROM offline_operations WHERE id = '%s'", id);
    assert_string_equal(th_sql(pg, q), "true");
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    PQfinish(pg);
}

/* ---- point 11: secrets stay out of /proc ---- */

static char *write_temp(const char *content)
{
    char *path = strdup("/tmp/oq-secret-XXXXXX");
    int fd = mkstemp(path);
    if (fd >= 0 && n_temp < 8)
        snprintf(temp_paths[n_temp++], sizeof(temp_paths[0]), "%s", path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    return path;
}

static long status_of(const struct svc *s, const char *path, const char *auth)
{
    const char *h[] = {auth, NULL};
    struct resp *r = th_http(s, "GET", path, NULL, 0, auth ? h : NULL);
    long st = r->status;
    th_resp_free(r);
    return st;
}

/* The bytes of /proc/pid/<what> (NULs kept), into buf; returns the length. */
static size_t read_proc(pid_t pid, const char *what, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void test_file_variables(void **state)
{
    char *keys = write_temp(API_KEY ":admin\n");
    char *enc = write_temp(HEXKEY "\n");
    char *dbu = write_temp(url); /* no trailing newline: also fine */
    char kv[128], ev[128], dv[128];
    snprintf(kv, sizeof(kv), "OFFLINEQ_API_KEYS_FILE=%s", keys);
    snprintf(ev, sizeof(ev), "OFFLINEQ_ENCRYPTION_KEY_FILE=%s", enc);
    snprintf(dv, sizeof(dv), "OFFLINEQ_DATABASE_URL_FILE=%s", dbu);
    struct svc s;
    assert_int_equal(th_svc_start(&s, url, (const char *const[]){up, kv, ev, dv, NULL}, NULL), 0);
    assert_int_equal(status_of(&s, "/api/offline/queue/stats", NULL), 401);
    assert_int_equal(status_of(&s, "/api/offline/queue/stats", "Authorization: Bearer " API_KEY),
                     200);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
    PGconn *pg = th_db_connect(url); /* the key from the file is the one the database records */
    assert_string_equal(
        th_sql(pg, "SELECT count(*) FROM offlineq_settings WHERE key = 'encryption_check'"), "1");
    PQfinish(pg);
    /* both X and X_FILE: which one wins is not guessed */
    int code = 0;
    assert_int_equal(
        th_svc_start(&s, url,
                     (const char *const[]){up, kv, "OFFLINEQ_API_KEYS=" API_KEY ":admin", ev, NULL},
                     &code),
        -1);
    assert_int_equal(code, 2);
    char *log = th_svc_log(&s);
    assert_non_null(strstr(log, "OFFLINEQ_API_KEYS and OFFLINEQ_API_KEYS_FILE"));
    assert_null(strstr(log, API_KEY));
    free(log);
    /* an unreadable file */
    assert_int_equal(
        th_svc_start(
            &s, url,
            (const char *const[]){up, "OFFLINEQ_API_KEYS_FILE=/nonexistent/keys", ev, NULL}, &code),
        -1);
    assert_int_equal(code, 2);
    log = th_svc_log(&s);
    assert_non_null(strstr(log, "OFFLINEQ_API_KEYS_FILE"));
    free(log);
    free(keys), free(enc), free(dbu);
}

static void test_environ_is_wiped(void **state)
{
    if (getenv("OFFLINEQ_TEST_WRAPPER") && *getenv("OFFLINEQ_TEST_WRAPPER"))
        skip(); /* under valgrind /proc shows the wrapper's own block */
    struct svc s;
    assert_int_equal(
        th_svc_start(&s, url,
                     (const char *const[]){up, KEY, "OFFLINEQ_API_KEYS=" API_KEY ":admin", NULL},
                     NULL),
        0);
    assert_int_equal(status_of(&s, "/api/offline/queue/stats", "Authorization: Bearer " API_KEY),
                     200);
    static char buf[1 << 20];
    size_t n = read_proc(s.pid, "environ", buf, sizeof(buf));
    assert_true(n > 0);
    assert_non_null(memmem(buf, n, "OFFLINEQ_LISTEN=127.0.0.1:0", 27)); /* the block is there */
    assert_null(memmem(buf, n, API_KEY, strlen(API_KEY)));
    assert_null(memmem(buf, n, HEXKEY, strlen(HEXKEY)));
    assert_null(memmem(buf, n, url, strlen(url)));
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
}

/* Runs the binary with one argument and the harness's database; returns the exit code, the
 * stderr in log. */
static int run_with_arg(const char *arg, char *log, size_t cap)
{
    char dbv[600];
    snprintf(dbv, sizeof(dbv), "OFFLINEQ_DATABASE_URL=%s", url);
    char *envp[] = {dbv, "OFFLINEQ_LISTEN=127.0.0.1:0", "OFFLINEQ_WORKERS=0", NULL};
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], 2);
        close(fds[0]);
        execle(getenv("OFFLINEQ_BIN"), getenv("OFFLINEQ_BIN"), arg, (char *)NULL, envp);
        _exit(127);
    }
    close(fds[1]);
    alarm(30); /* a binary that starts instead of refusing fails the test, never hangs it */
    size_t len = 0;
    ssize_t got;
    while (len + 1 < cap && (got = read(fds[0], log + len, cap - len - 1)) > 0)
        len += (size_t)got;
    log[len] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    alarm(0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_secret_flags_are_refused(void **state)
{
    static const char *const flags[] = {"--api-keys=" API_KEY ":admin", "--encryption-key=" HEXKEY,
                                        "--database-url=postgresql://u:pw@localhost/x"};
    static const char *const names[] = {"--api-keys", "--encryption-key", "--database-url"};
    for (int i = 0; i < 3; i++) {
        char log[8192];
        assert_int_equal(run_with_arg(flags[i], log, sizeof(log)), 2);
        if (strstr(log, names[i]) == NULL || strstr(log, "_FILE") == NULL)
            fail_msg("log: %s", log);
        assert_null(strstr(log, API_KEY));
        assert_null(strstr(log, HEXKEY));
    }
    char log[8192]; /* a setting that is no secret still works as a flag */
    assert_int_equal(run_with_arg("--help", log, sizeof(log)), 0);
}

static void assert_refused(const char *var, const char *says)
{
    struct svc s;
    int code = 0;
    assert_int_equal(th_svc_start(&s, url, (const char *const[]){up, var, NULL}, &code), -1);
    assert_int_equal(code, 2);
    char *log = th_svc_log(&s);
    if (strstr(log, says) == NULL)
        fail_msg("log does not say \"%s\": %s", says, log);
    assert_null(strstr(log, "=x:admin"));
    free(log);
}

static void test_unknown_variable_stops_start_up(void **state)
{
    assert_refused("OFFLINEQ_API_KEY=x:admin",
                   "unknown variable OFFLINEQ_API_KEY (did you mean OFFLINEQ_API_KEYS?)");
    assert_refused("OFFLINEQ_API_KEYS_FIEL=/etc/keys", "did you mean OFFLINEQ_API_KEYS_FILE?");
    assert_refused("OFFLINEQ_WORKRES=3", "did you mean OFFLINEQ_WORKERS?");
    /* tool-side names (the test harness, scripts) are tolerated */
    struct svc s;
    assert_int_equal(th_svc_start(&s, url,
                                  (const char *const[]){up, "OFFLINEQ_TEST_ANYTHING=1",
                                                        "OFFLINEQ_PG_PORT=5", NULL},
                                  NULL),
                     0);
    assert_int_equal(th_svc_stop(&s, SIGTERM), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_conflict_results_are_sealed, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_batches_are_sealed_per_row, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_sql_function_rows_are_sealed_when_seen, db_setup,
                                        db_teardown),
        cmocka_unit_test_setup_teardown(test_swapped_ciphertexts_are_refused, db_setup,
                                        db_teardown),
        cmocka_unit_test_setup_teardown(test_swapped_files_are_refused, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_old_envelopes_still_open, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_file_variables, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_environ_is_wiped, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_secret_flags_are_refused, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_variable_stops_start_up, db_setup,
                                        db_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
