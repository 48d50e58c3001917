#include "store/files.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/secretbox.h"

static const struct db_stmt store_stmt = {
    "files_store",
    "INSERT INTO offlineq_files (id, content_type, size, sha256, data, encrypted, bound) "
    "VALUES ($6::uuid, $1, $2, $3, $4, $5::boolean, $5::boolean) "
    "RETURNING id, offlineq_ts(created_at)"};

static const struct db_stmt meta_stmt = {
    "files_meta",
    "SELECT id, content_type, size, sha256, offlineq_ts(created_at) FROM offlineq_files "
    "WHERE id = $1::uuid"};

static const struct db_stmt load_stmt = {
    "files_load",
    "SELECT id, content_type, size, sha256, offlineq_ts(created_at), data, encrypted, bound "
    "FROM offlineq_files "
    "WHERE id = $1::uuid"};

static void hex(const unsigned char *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

int files_store(struct db_conn *c, const char *content_type, const void *data, size_t len,
                struct stored_file *meta, struct err *e)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(data, len, digest);
    hex(digest, sizeof(digest), meta->sha256);
    char size[32];
    snprintf(size, sizeof(size), "%zu", len);
    snprintf(meta->content_type, sizeof(meta->content_type), "%s", content_type);
    meta->size = (long long)len;
    size_t stored_len = len;
    char id[37]; /* chosen here, so the sealed bytes can be bound to it */
    oq_uuid(id);
    unsigned char *sealed = secretbox_enabled(c->box)
                                ? secretbox_seal_bound(c->box, data, len, id, "file", &stored_len)
                                : NULL;
    const char *params[] = {content_type,
                            size,
                            meta->sha256,
                            sealed ? (const char *)sealed : data,
                            sealed ? "true" : "false",
                            id};
    const int lengths[] = {0, 0, 0, (int)stored_len, 0, 0};
    const int formats[] = {0, 0, 0, 1, 0, 0}; /* the bytes go as binary: no escaping, no copies */
    if (db_prepare(c, &store_stmt, 6, e) != 0) {
        free(sealed);
        return -1;
    }
    PGresult *r = PQexecPrepared(c->pg, store_stmt.name, 6, params, lengths, formats, 0);
    free(sealed);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = db_error(c, r, e);
        PQclear(r);
        return rc;
    }
    snprintf(meta->id, sizeof(meta->id), "%s", PQgetvalue(r, 0, 0));
    snprintf(meta->created_at, sizeof(meta->created_at), "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    return 0;
}

static void fill_meta(PGresult *r, struct stored_file *out)
{
    snprintf(out->id, sizeof(out->id), "%s", PQgetvalue(r, 0, 0));
    snprintf(out->content_type, sizeof(out->content_type), "%s", PQgetvalue(r, 0, 1));
    out->size = atoll(PQgetvalue(r, 0, 2));
    snprintf(out->sha256, sizeof(out->sha256), "%s", PQgetvalue(r, 0, 3));
    snprintf(out->created_at, sizeof(out->created_at), "%s", PQgetvalue(r, 0, 4));
}

int files_meta(struct db_conn *c, const char *id, struct stored_file *out, struct err *e)
{
    PGresult *r = db_exec_by_id(c, &meta_stmt, "file", id, e);
    if (r == NULL)
        return -1;
    fill_meta(r, out);
    PQclear(r);
    return 0;
}

int files_load(struct db_conn *c, const char *id, struct stored_file *out, struct err *e)
{
    const char *params[] = {id};
    if (db_prepare(c, &load_stmt, 1, e) != 0)
        return -1;
    /* text parameters, binary results: the bytes arrive as they were stored */
    PGresult *r = PQexecPrepared(c->pg, load_stmt.name, 1, params, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = db_error(c, r, e);
        PQclear(r);
        return rc;
    }
    int rc = 0;
    if (PQntuples(r) == 0) {
        rc = err_set(e, ERR_NOT_FOUND, "file %s is no longer stored", id);
    } else {
        /* binary format: uuid is 16 bytes, text columns are plain, int8 is big-endian,
         * boolean one byte */
        size_t len = (size_t)PQgetlength(r, 0, 5);
        snprintf(out->id, sizeof(out->id), "%s", id);
        snprintf(out->content_type, sizeof(out->content_type), "%.*s", PQgetlength(r, 0, 1),
                 PQgetvalue(r, 0, 1));
        snprintf(out->sha256, sizeof(out->sha256), "%.*s", PQgetlength(r, 0, 3),
                 PQgetvalue(r, 0, 3));
        char row_id[37]; /* as the database writes it (the caller's spelling may differ) */
        const unsigned char *u = (const unsigned char *)PQgetvalue(r, 0, 0);
        snprintf(row_id, sizeof(row_id),
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
                 u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
                 u[15]);
        if (PQgetvalue(r, 0, 6)[0]) { /* sealed: bound to its id, or (older files) not */
            out->data =
                PQgetvalue(r, 0, 7)[0]
                    ? secretbox_open_bound(c->box, PQgetvalue(r, 0, 5), len, row_id, "file", &len)
                    : secretbox_open(c->box, PQgetvalue(r, 0, 5), len, &len);
            if (out->data == NULL)
                rc = err_set(e, ERR_UNDECRYPTABLE,
                             "file %s cannot be decrypted: another key, another "
                             "file's ciphertext, or altered",
                             id);
        } else {
            out->data = oq_malloc(len ? len : 1);
            memcpy(out->data, PQgetvalue(r, 0, 5), len);
        }
        out->size = (long long)len;
    }
    PQclear(r);
    return rc;
}
