#include "store/rotation.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonload.h"

#include "store/idempotency.h"
#include "store/secretbox.h"

#define OPS_BATCH "200"     /* operations a batch looks at */
#define ANSWERS_BATCH "200" /* Idempotency-Key answers likewise; files go one at a time */
#define ZERO_UUID "00000000-0000-0000-0000-000000000000"

static const char *const phase_names[] = {[ROTATION_OPERATIONS] = "operations",
                                          [ROTATION_FILES] = "files",
                                          [ROTATION_ANSWERS] = "answers",
                                          [ROTATION_CHECK] = "check",
                                          [ROTATION_DONE] = "done"};

const char *rotation_phase_name(enum rotation_phase p)
{
    return phase_names[p];
}

/* Where the rotation is: the pass, its phase, the last key it finished (a: an id or a scope,
 * b: a key), and what the pass sealed again so far. */
struct cursor {
    enum rotation_phase phase;
    char a[256], b[256];
    int pass;
    long long pass_resealed;
};

static const struct db_stmt lock_stmt = {
    "rotation_lock", "SELECT pg_try_advisory_xact_lock(hashtextextended('offlineq.rotation', 0))"};
static const struct db_stmt cursor_get = {
    "rotation_cursor_get", "SELECT phase, a, b, pass, pass_resealed FROM offlineq_key_rotation"};
static const struct db_stmt cursor_put = {
    "rotation_cursor_put",
    "UPDATE offlineq_key_rotation SET phase = $1::int, a = $2, b = $3, pass = $5::int, "
    "pass_resealed = $6::bigint, resealed = resealed + $4::bigint, updated_at = now()"};

static int cursor_load(struct db_conn *c, struct cursor *cur, struct err *e)
{
    PGresult *r = db_exec(c, &cursor_get, 0, NULL, e);
    if (r == NULL)
        return -1;
    *cur = (struct cursor){.phase = ROTATION_DONE}; /* no row: nothing to rotate */
    if (PQntuples(r) == 1) {
        int p = atoi(PQgetvalue(r, 0, 0));
        cur->phase = p >= 0 && p <= ROTATION_DONE ? (enum rotation_phase)p : ROTATION_OPERATIONS;
        snprintf(cur->a, sizeof(cur->a), "%s", PQgetvalue(r, 0, 1));
        snprintf(cur->b, sizeof(cur->b), "%s", PQgetvalue(r, 0, 2));
        cur->pass = atoi(PQgetvalue(r, 0, 3));
        cur->pass_resealed = atoll(PQgetvalue(r, 0, 4));
    }
    PQclear(r);
    return 0;
}

static int cursor_store(struct db_conn *c, const struct cursor *cur, long long resealed,
                        struct err *e)
{
    char phase[8], n[24], pass[16], pass_n[24];
    snprintf(phase, sizeof(phase), "%d", (int)cur->phase);
    snprintf(n, sizeof(n), "%lld", resealed);
    snprintf(pass, sizeof(pass), "%d", cur->pass);
    snprintf(pass_n, sizeof(pass_n), "%lld", cur->pass_resealed);
    const char *params[] = {phase, cur->a, cur->b, n, pass, pass_n};
    return db_run(c, &cursor_put, 6, params, e);
}

static void cursor_next_phase(struct cursor *cur)
{
    cur->phase++;
    snprintf(cur->a, sizeof(cur->a), "%s", cur->phase == ROTATION_FILES ? ZERO_UUID : "");
    cur->b[0] = '\0';
}

/* Another pass from the start: the last one sealed something again, so an instance with the
 * old key alone may have written behind it. */
static void cursor_next_pass(struct cursor *cur)
{
    cur->phase = ROTATION_OPERATIONS;
    snprintf(cur->a, sizeof(cur->a), "%s", ZERO_UUID);
    cur->b[0] = '\0';
    cur->pass++;
    cur->pass_resealed = 0;
}

/* How many rows a compare-and-set (a statement with RETURNING) wrote: 0 when the value
 * changed meanwhile. -1 with *e. */
static int rows_written(struct db_conn *c, const struct db_stmt *s, int n,
                        const char *const *params, struct err *e)
{
    PGresult *r = db_exec(c, s, n, params, e);
    if (r == NULL)
        return -1;
    int rows = PQntuples(r);
    PQclear(r);
    return rows;
}

/* Is stored (JSON text) an envelope, of either version? */
static bool is_envelope(const char *stored)
{
    if (stored == NULL || strstr(stored, "\"$enc") == NULL)
        return false;
    json_t *doc = jsonload_text(stored);
    bool yes = json_is_string(json_object_get(doc, "$enc2")) ||
               json_is_string(json_object_get(doc, "$enc"));
    json_decref(doc);
    return yes;
}

/* stored (a column value sealed for id/column, v2 or v1) sealed again with the key as v2, or
 * NULL when it needs nothing: plaintext (the sweep's), sealed with the key already, or opening
 * with neither key (left as it is: reported where it is read). */
static char *resealed_json(const struct secretbox *box, const char *stored, const char *id,
                           const char *column)
{
    if (!is_envelope(stored))
        return NULL;
    struct secretbox cur = secretbox_current_only(box);
    char *plain = secretbox_open_json(&cur, stored, id, column);
    OPENSSL_cleanse(&cur, sizeof(cur));
    if (plain != NULL && secretbox_is_sealed(stored)) { /* v2 with the key: done */
        free(plain);
        return NULL;
    }
    if (plain == NULL) /* else v1 with the key: sealed as v2 too */
        plain = secretbox_open_json(box, stored, id, column);
    char *sealed = plain ? secretbox_seal_json(box, plain, id, column) : NULL;
    free(plain);
    return sealed;
}

/* One compare-and-set per column: written only while the stored value is unchanged. */
#define SET_IF_SAME(col)                                                                           \
    {                                                                                              \
        "rotation_" col, "UPDATE offline_operations SET " col " = $2::jsonb "                      \
                         "WHERE id = $1::uuid AND " col " = $3::jsonb RETURNING 1"                 \
    }
static const struct db_stmt op_columns[] = {SET_IF_SAME("payload"), SET_IF_SAME("result"),
                                            SET_IF_SAME("resolution")};
static const char *const op_column_names[] = {"payload", "result", "resolution"};
#undef SET_IF_SAME

static const struct db_stmt ops_stmt = {
    "rotation_ops", "SELECT id, payload::text, result::text, resolution::text "
                    "FROM offline_operations WHERE id > $1::uuid ORDER BY id LIMIT " OPS_BATCH};

static int rotate_operations(struct db_conn *c, struct cursor *cur, struct rotation_step *out,
                             struct err *e)
{
    const char *params[] = {cur->a};
    PGresult *r = db_exec(c, &ops_stmt, 1, params, e);
    if (r == NULL)
        return -1;
    int n = PQntuples(r), rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const char *id = PQgetvalue(r, i, 0);
        for (int k = 0; k < 3 && rc == 0; k++) {
            const char *stored = PQgetisnull(r, i, k + 1) ? NULL : PQgetvalue(r, i, k + 1);
            char *sealed = resealed_json(c->box, stored, id, op_column_names[k]);
            if (sealed == NULL)
                continue;
            const char *set[] = {id, sealed, stored};
            int rows = rows_written(c, &op_columns[k], 3, set, e);
            rc = rows < 0 ? -1 : 0;
            out->resealed += rows > 0;
            free(sealed);
        }
        snprintf(cur->a, sizeof(cur->a), "%s", id);
    }
    out->scanned = n;
    PQclear(r);
    if (rc == 0 && n < atoi(OPS_BATCH))
        cursor_next_phase(cur);
    return rc;
}

static const struct db_stmt file_next_stmt = {
    "rotation_file_next", "SELECT id, bound, sealed_whole FROM offlineq_files "
                          "WHERE encrypted AND id > $1::uuid ORDER BY id LIMIT 1"};
static const struct db_stmt chunk_get_stmt = {
    "rotation_chunk_get",
    "SELECT data FROM offlineq_file_chunks WHERE file_id = $1::uuid AND n = $2"};
static const struct db_stmt chunk_put_stmt = {
    "rotation_chunk_put",
    "UPDATE offlineq_file_chunks SET data = $3 WHERE file_id = $1::uuid AND n = $2::int"};
static const struct db_stmt whole_get_stmt = {
    "rotation_whole_get", "SELECT string_agg(data, ''::bytea ORDER BY n) FROM offlineq_file_chunks "
                          "WHERE file_id = $1::uuid HAVING count(*) > 0"};
static const struct db_stmt whole_drop_stmt = {
    "rotation_whole_drop", "DELETE FROM offlineq_file_chunks WHERE file_id = $1::uuid AND n > 0"};

/* The bytes of s's one column (binary results), or NULL with *len 0 when there is no row. */
static unsigned char *fetch_bytes(struct db_conn *c, const struct db_stmt *s, int n_params,
                                  const char *const *params, size_t *len, struct err *e)
{
    *len = 0;
    if (db_prepare(c, s, n_params, e) != 0)
        return NULL;
    PGresult *r = PQexecPrepared(c->pg, s->name, n_params, params, NULL, NULL, 1);
    db_note_sizes(c, 0, r);
    unsigned char *out = NULL;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        db_error(c, r, e);
    } else if (PQntuples(r) == 1) {
        *len = (size_t)PQgetlength(r, 0, 0);
        out = oq_malloc(*len ? *len : 1);
        memcpy(out, PQgetvalue(r, 0, 0), *len);
    }
    PQclear(r);
    return out;
}

static int put_chunk(struct db_conn *c, const char *id, int n, const unsigned char *data,
                     size_t len, struct err *e)
{
    char num[16];
    snprintf(num, sizeof(num), "%d", n);
    const char *params[] = {id, num, (const char *)data};
    const int lengths[] = {0, 0, (int)len}, formats[] = {0, 0, 1};
    if (db_prepare(c, &chunk_put_stmt, 3, e) != 0)
        return -1;
    PGresult *r = PQexecPrepared(c->pg, chunk_put_stmt.name, 3, params, lengths, formats, 0);
    db_note_sizes(c, len, r);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : db_error(c, r, e);
    PQclear(r);
    return rc;
}

/* A blob sealed for id/column (column NULL: unbound) sealed again with the key, or NULL when
 * it needs nothing (see resealed_json). */
static unsigned char *resealed_blob(const struct secretbox *box, const unsigned char *blob,
                                    size_t len, const char *id, const char *column, size_t *out_len)
{
    struct secretbox cur = secretbox_current_only(box);
    size_t plain_len;
    unsigned char *plain = column ? secretbox_open_bound(&cur, blob, len, id, column, &plain_len)
                                  : secretbox_open(&cur, blob, len, &plain_len);
    OPENSSL_cleanse(&cur, sizeof(cur));
    if (plain != NULL) {
        free(plain);
        return NULL;
    }
    plain = column ? secretbox_open_bound(box, blob, len, id, column, &plain_len)
                   : secretbox_open(box, blob, len, &plain_len);
    if (plain == NULL)
        return NULL;
    unsigned char *sealed = column
                                ? secretbox_seal_bound(box, plain, plain_len, id, column, out_len)
                                : secretbox_seal(box, plain, plain_len, out_len);
    free(plain);
    return sealed;
}

/* A file stored in chunks, each bound to its place: one chunk in memory at a time. */
static int rotate_chunks(struct db_conn *c, const char *id, struct rotation_step *out,
                         struct err *e)
{
    for (int n = 0;; n++) {
        char num[16], column[32];
        snprintf(num, sizeof(num), "%d", n);
        snprintf(column, sizeof(column), "file_chunk.%d", n);
        const char *params[] = {id, num};
        size_t len, sealed_len;
        unsigned char *blob = fetch_bytes(c, &chunk_get_stmt, 2, params, &len, e);
        if (blob == NULL)
            return e->code != ERR_NONE ? -1 : 0; /* past the last chunk */
        unsigned char *sealed = resealed_blob(c->box, blob, len, id, column, &sealed_len);
        free(blob);
        int rc = sealed ? put_chunk(c, id, n, sealed, sealed_len, e) : 0;
        out->resealed += sealed && rc == 0;
        free(sealed);
        if (rc != 0)
            return -1;
    }
}

/* A file sealed as one blob before 007: sealed again whole, kept as chunk 0. */
static int rotate_whole(struct db_conn *c, const char *id, bool bound, struct rotation_step *out,
                        struct err *e)
{
    const char *params[] = {id};
    size_t len, sealed_len;
    unsigned char *blob = fetch_bytes(c, &whole_get_stmt, 1, params, &len, e);
    if (blob == NULL)
        return e->code != ERR_NONE ? -1 : 0;
    unsigned char *sealed =
        resealed_blob(c->box, blob, len, id, bound ? "file" : NULL, &sealed_len);
    free(blob);
    int rc = 0;
    if (sealed != NULL) {
        rc = db_run(c, &whole_drop_stmt, 1, params, e);
        if (rc == 0)
            rc = put_chunk(c, id, 0, sealed, sealed_len, e);
        out->resealed += rc == 0;
    }
    free(sealed);
    return rc;
}

static int rotate_files(struct db_conn *c, struct cursor *cur, struct rotation_step *out,
                        struct err *e)
{
    const char *params[] = {cur->a};
    PGresult *r = db_exec(c, &file_next_stmt, 1, params, e);
    if (r == NULL)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        cursor_next_phase(cur);
        return 0;
    }
    char id[40];
    snprintf(id, sizeof(id), "%s", PQgetvalue(r, 0, 0));
    bool bound = PQgetvalue(r, 0, 1)[0] == 't', whole = PQgetvalue(r, 0, 2)[0] == 't';
    PQclear(r);
    out->scanned = 1;
    int rc = whole ? rotate_whole(c, id, bound, out, e) : rotate_chunks(c, id, out, e);
    snprintf(cur->a, sizeof(cur->a), "%s", id);
    return rc;
}

static const struct db_stmt answers_stmt = {
    "rotation_answers", "SELECT scope, key, body FROM offlineq_idempotency "
                        "WHERE (scope, key) > ($1, $2) ORDER BY scope, key LIMIT " ANSWERS_BATCH};
static const struct db_stmt answer_put_stmt = {
    "rotation_answer_put",
    "UPDATE offlineq_idempotency SET body = $3 WHERE scope = $1 AND key = $2 AND body = $4 "
    "RETURNING 1"};

static int rotate_answers(struct db_conn *c, struct cursor *cur, struct rotation_step *out,
                          struct err *e)
{
    const char *params[] = {cur->a, cur->b};
    PGresult *r = db_exec(c, &answers_stmt, 2, params, e);
    if (r == NULL)
        return -1;
    int n = PQntuples(r), rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        struct idem_key k = {0};
        snprintf(k.scope, sizeof(k.scope), "%s", PQgetvalue(r, i, 0));
        snprintf(k.key, sizeof(k.key), "%s", PQgetvalue(r, i, 1));
        char name[65];
        idempotency_row_name(&k, name);
        const char *stored = PQgetvalue(r, i, 2);
        char *sealed = resealed_json(c->box, stored, name, "answer");
        if (sealed != NULL) {
            const char *set[] = {k.scope, k.key, sealed, stored};
            int rows = rows_written(c, &answer_put_stmt, 4, set, e);
            rc = rows < 0 ? -1 : 0;
            out->resealed += rows > 0;
            free(sealed);
        }
        snprintf(cur->a, sizeof(cur->a), "%s", k.scope);
        snprintf(cur->b, sizeof(cur->b), "%s", k.key);
    }
    out->scanned = n;
    PQclear(r);
    if (rc == 0 && n < atoi(ANSWERS_BATCH))
        cursor_next_phase(cur);
    return rc;
}

static const struct db_stmt check_get_stmt = {
    "rotation_check_get",
    "SELECT value #>> '{}' FROM offlineq_settings WHERE key = 'encryption_check'"};
static const struct db_stmt check_put_stmt = {
    "rotation_check_put",
    "UPDATE offlineq_settings SET value = to_jsonb($1::text), updated_at = now() "
    "WHERE key = 'encryption_check' AND value #>> '{}' = $2 RETURNING 1"};

/* Last: after a pass that sealed something again, another pass; after one that found nothing
 * left, the check value sealed with the key, so the next start needs no previous key. */
static int rotate_check(struct db_conn *c, struct cursor *cur, struct rotation_step *out,
                        struct err *e)
{
    out->scanned = 1;
    if (cur->pass_resealed > 0) {
        cursor_next_pass(cur);
        return 0;
    }
    PGresult *r = db_exec(c, &check_get_stmt, 0, NULL, e);
    if (r == NULL)
        return -1;
    char *stored = PQntuples(r) == 1 ? oq_strdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    char *check = secretbox_check_value(c->box);
    const char *params[] = {check, stored};
    int rows = stored ? rows_written(c, &check_put_stmt, 2, params, e) : 0;
    free(check);
    free(stored);
    if (rows < 0)
        return -1;
    out->resealed += rows; /* the check is not counted towards another pass */
    cur->phase = ROTATION_DONE;
    return 0;
}

static int (*const phases[])(struct db_conn *, struct cursor *, struct rotation_step *,
                             struct err *) = {
    [ROTATION_OPERATIONS] = rotate_operations,
    [ROTATION_FILES] = rotate_files,
    [ROTATION_ANSWERS] = rotate_answers,
    [ROTATION_CHECK] = rotate_check,
};

static int run_locked(struct db_conn *c, struct rotation_step *out, struct err *e)
{
    PGresult *r = db_exec(c, &lock_stmt, 0, NULL, e);
    if (r == NULL)
        return -1;
    out->is_busy = PQgetvalue(r, 0, 0)[0] != 't';
    PQclear(r);
    struct cursor cur;
    if (out->is_busy || cursor_load(c, &cur, e) != 0)
        return out->is_busy ? 0 : -1;
    out->phase = cur.phase;
    if (cur.phase == ROTATION_DONE)
        return 0;
    enum rotation_phase was = cur.phase;
    if (phases[cur.phase](c, &cur, out, e) != 0)
        return -1;
    if (was != ROTATION_CHECK)
        cur.pass_resealed += out->resealed;
    return cursor_store(c, &cur, out->resealed, e);
}

static const struct db_stmt begin_stmt = {
    "rotation_begin",
    "INSERT INTO offlineq_key_rotation (phase, a, b, target) VALUES (0, '" ZERO_UUID "', '', $1) "
    "ON CONFLICT (id) DO UPDATE SET phase = 0, a = excluded.a, b = '', resealed = 0, pass = 1, "
    "pass_resealed = 0, target = excluded.target, started_at = now(), updated_at = now() "
    "WHERE offlineq_key_rotation.target <> excluded.target"};

int rotation_begin(struct db_conn *c, const char *target, struct err *e)
{
    const char *params[] = {target};
    return db_run(c, &begin_stmt, 1, params, e);
}

static const struct db_stmt idle_stmt = {
    "rotation_idle", "SELECT count(*) FROM offlineq_key_rotation WHERE phase < 4 AND target <> $1"};

int rotation_check_idle(struct db_conn *c, const char *key_id, struct err *e)
{
    const char *params[] = {key_id};
    PGresult *r = db_exec(c, &idle_stmt, 1, params, e);
    if (r == NULL)
        return -1;
    bool busy = strcmp(PQgetvalue(r, 0, 0), "0") != 0;
    PQclear(r);
    return busy ? err_set(e, ERR_NOT_READY,
                          "a key rotation to another key is under way (offlineq_key_rotation): "
                          "start with that key as OFFLINEQ_ENCRYPTION_KEY and this one as "
                          "OFFLINEQ_ENCRYPTION_KEY_PREVIOUS, or delete its row to abandon it")
                : 0;
}

int rotation_run(struct db_conn *c, struct rotation_step *out, struct err *e)
{
    *out = (struct rotation_step){0};
    OQ_ASSERT(c->box->enabled && c->box->has_previous);
    if (db_command(c, "BEGIN", e) != 0)
        return -1;
    if (run_locked(c, out, e) != 0) {
        if (PQstatus(c->pg) == CONNECTION_OK) /* a lost connection has nothing left to end */
            PQclear(PQexec(c->pg, "ROLLBACK"));
        return -1;
    }
    return db_command(c, "COMMIT", e);
}
