#include "store/idempotency.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/secretbox.h"
#include "core/log.h"

/* The column a stored answer is sealed as (store/secretbox.c binds the blob to it). */
#define ANSWER_COLUMN "answer"

/* Waits for nothing: a lock held means a request with this key is in flight. The lock's name
 * holds the scope (no space in it) and the key. */
static const struct db_stmt lock_stmt = {
    "idempotency_lock", "SELECT pg_try_advisory_xact_lock(hashtextextended($1 || ' ' || $2, 0))"};

/* A statement of its own after the lock, so its snapshot sees what the lock's last holder
 * committed. */
static const struct db_stmt find_stmt = {
    "idempotency_find",
    "SELECT request_sha256 = decode($3, 'hex'), status, body, location, preference_applied "
    "FROM offlineq_idempotency WHERE scope = $1 AND key = $2 "
    "  AND created_at > now() - make_interval(secs => $4::int)"};

static const struct db_stmt store_stmt = {
    "idempotency_store",
    "INSERT INTO offlineq_idempotency AS i "
    "  (scope, key, request_sha256, status, body, location, preference_applied) "
    "VALUES ($1, $2, decode($3, 'hex'), $4::smallint, $5, $6, $7) "
    "ON CONFLICT (scope, key) DO UPDATE SET request_sha256 = excluded.request_sha256, "
    "  status = excluded.status, body = excluded.body, location = excluded.location, "
    "  preference_applied = excluded.preference_applied, created_at = now()"};

static const struct db_stmt expire_stmt = {
    "idempotency_expire", "WITH pick AS (SELECT scope, key FROM offlineq_idempotency "
                          "  WHERE created_at <= now() - make_interval(secs => $1::int) "
                          "  ORDER BY created_at LIMIT $2::int FOR UPDATE SKIP LOCKED), "
                          "d AS (DELETE FROM offlineq_idempotency i USING pick "
                          "  WHERE i.scope = pick.scope AND i.key = pick.key RETURNING 1) "
                          "SELECT count(*) FROM d"};

void idempotency_answer_free(struct idem_answer *a)
{
    free(a->body);
    free(a->location);
    free(a->preference_applied);
    *a = (struct idem_answer){0};
}

void idempotency_row_name(const struct idem_key *k, char out[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    char text[sizeof(k->scope) + sizeof(k->key)];
    size_t n = strlen(k->scope) + 1; /* with its NUL: a separator */
    memcpy(text, k->scope, n);
    size_t m = strlen(k->key);
    memcpy(text + n, k->key, m);
    SHA256((const unsigned char *)text, n + m, d);
    for (size_t i = 0; i < sizeof(d); i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static char *copy_or_null(PGresult *r, int col)
{
    return PQgetisnull(r, 0, col) ? NULL : oq_strdup(PQgetvalue(r, 0, col));
}

/* The live answer of k into *found (status 0: none), or -1: reused for another request, or the
 * database's error. */
static int find(struct db_conn *c, const struct idem_key *k, struct idem_answer *found,
                struct err *e)
{
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%d", k->ttl_s);
    const char *params[] = {k->scope, k->key, k->request_sha256, ttl};
    PGresult *r = db_exec(c, &find_stmt, 4, params, e);
    if (r == NULL)
        return -1;
    int rc = 0;
    if (PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] != 't') {
        rc = err_set(e, ERR_IDEMPOTENCY_KEY_REUSED,
                     "this Idempotency-Key was used for a request with another body");
    } else if (PQntuples(r) == 1) {
        char name[65];
        idempotency_row_name(k, name);
        found->body = secretbox_open_json(c->box, PQgetvalue(r, 0, 2), name, ANSWER_COLUMN);
        found->location = copy_or_null(r, 3);
        found->preference_applied = copy_or_null(r, 4);
        found->status = (unsigned)atoi(PQgetvalue(r, 0, 1));
        if (found->body == NULL) {
            idempotency_answer_free(found);
            /* not 409: a client would retry until the TTL is over; the operator's to fix */
            log_json(LOG_ERROR,
                     "a stored Idempotency-Key answer cannot be decrypted: another key, or altered",
                     json_pack("{s:s}", "scope", k->scope));
            rc = err_set(e, ERR_INTERNAL,
                         "the stored answer of this Idempotency-Key does not open with the key");
        }
    }
    PQclear(r);
    return rc;
}

int idempotency_begin(struct db_conn *c, const struct idem_key *k, struct idem_answer *found,
                      struct err *e)
{
    *found = (struct idem_answer){0};
    /* read committed whatever the database's default: the lookup after the lock must see the
     * previous holder's commit */
    if (db_command(c, "BEGIN ISOLATION LEVEL READ COMMITTED", e) != 0)
        return -1;
    const char *params[] = {k->scope, k->key};
    PGresult *r = db_exec(c, &lock_stmt, 2, params, e);
    if (r == NULL)
        return -1;
    bool got = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!got)
        return err_set(e, ERR_IDEMPOTENCY_KEY_IN_USE,
                       "a request with this Idempotency-Key is still being processed");
    if (find(c, k, found, e) != 0)
        return -1;
    if (found->status != 0 && db_command(c, "COMMIT", e) != 0) {
        idempotency_answer_free(found);
        return -1;
    }
    return 0;
}

int idempotency_commit(struct db_conn *c, const struct idem_key *k, const struct idem_answer *a,
                       struct err *e)
{
    char name[65], status[8];
    idempotency_row_name(k, name);
    snprintf(status, sizeof(status), "%u", a->status);
    char *body = secretbox_seal_json(c->box, a->body, name, ANSWER_COLUMN);
    const char *params[] = {k->scope, k->key,      k->request_sha256,    status,
                            body,     a->location, a->preference_applied};
    int rc = db_run(c, &store_stmt, 7, params, e);
    free(body);
    if (rc != 0)
        return -1;
    return db_command(c, "COMMIT", e);
}

long long idempotency_expire(struct db_conn *c, int ttl_s, int batch, struct err *e)
{
    char ttl[16], lim[16];
    snprintf(ttl, sizeof(ttl), "%d", ttl_s);
    snprintf(lim, sizeof(lim), "%d", batch);
    const char *params[] = {ttl, lim};
    PGresult *r = db_exec(c, &expire_stmt, 2, params, e);
    if (r == NULL)
        return -1;
    long long n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}
