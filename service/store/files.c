#include "store/files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/secretbox.h"

static const struct db_stmt begin_stmt = {
    "files_begin", "INSERT INTO offlineq_files (id, content_type, size, sha256, encrypted, bound) "
                   "VALUES ($1::uuid, $2, 0, '', $3::boolean, $3::boolean)"};

static const struct db_stmt chunk_stmt = {
    "files_chunk", "INSERT INTO offlineq_file_chunks (file_id, n, data) VALUES ($1::uuid, $2, $3)"};

static const struct db_stmt finish_stmt = {
    "files_finish", "UPDATE offlineq_files SET size = $2, sha256 = $3 WHERE id = $1::uuid "
                    "RETURNING id, content_type, size, sha256, offlineq_ts(created_at)"};

static const struct db_stmt meta_stmt = {
    "files_meta",
    "SELECT id, content_type, size, sha256, offlineq_ts(created_at) FROM offlineq_files "
    "WHERE id = $1::uuid"};

static const struct db_stmt open_stmt = {
    "files_open",
    "SELECT id, content_type, size, sha256, offlineq_ts(created_at), encrypted::text, "
    "bound::text, sealed_whole::text FROM offlineq_files WHERE id = $1::uuid"};

static const struct db_stmt read_stmt = {
    "files_read", "SELECT data FROM offlineq_file_chunks WHERE file_id = $1::uuid AND n = $2"};

/* Files sealed as one blob before 007: the pieces together (only such files are read whole). */
static const struct db_stmt read_whole_stmt = {
    "files_read_whole", "SELECT string_agg(data, ''::bytea ORDER BY n) FROM offlineq_file_chunks "
                        "WHERE file_id = $1::uuid HAVING count(*) > 0"};

static void hex(const unsigned char *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The associated data chunk n of file id is sealed with, as a secretbox "column". */
static void chunk_column(int n, char *out, size_t len)
{
    snprintf(out, len, "file_chunk.%d", n);
}

/* Ends the file's transaction without it (a lost connection has nothing left to end). */
static void rollback(struct db_conn *c)
{
    if (PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        PQclear(PQexec(c->pg, "ROLLBACK"));
}

static void writer_free(struct files_writer *w)
{
    EVP_MD_CTX_free(w->sha);
    free(w->buf);
    w->sha = NULL;
    w->buf = NULL;
    w->c = NULL;
}

int files_begin(struct files_writer *w, struct db_conn *c, const char *content_type, struct err *e)
{
    memset(w, 0, sizeof(*w));
    oq_uuid(w->id);
    const char *params[] = {w->id, content_type, secretbox_enabled(c->box) ? "true" : "false"};
    if (db_command(c, "BEGIN", e) != 0)
        return -1;
    if (db_run(c, &begin_stmt, 3, params, e) != 0) {
        rollback(c);
        return -1;
    }
    w->c = c;
    w->sha = EVP_MD_CTX_new();
    OQ_ASSERT(w->sha != NULL && EVP_DigestInit_ex(w->sha, EVP_sha256(), NULL) == 1);
    w->buf = oq_malloc(FILES_CHUNK_BYTES);
    return 0;
}

/* Writes the buffered chunk (sealed for its file and number when encryption is on). */
static int flush_chunk(struct files_writer *w, struct err *e)
{
    char n[16], column[32];
    snprintf(n, sizeof(n), "%d", w->n_chunks);
    size_t len = w->buf_len;
    unsigned char *sealed = NULL;
    if (secretbox_enabled(w->c->box)) {
        chunk_column(w->n_chunks, column, sizeof(column));
        sealed = secretbox_seal_bound(w->c->box, w->buf, w->buf_len, w->id, column, &len);
    }
    const char *params[] = {w->id, n, sealed ? (const char *)sealed : (const char *)w->buf};
    const int lengths[] = {0, 0, (int)len};
    const int formats[] = {0, 0, 1}; /* the bytes go as binary: no escaping, no copies */
    int rc = db_prepare(w->c, &chunk_stmt, 3, e);
    if (rc == 0) {
        PGresult *r = PQexecPrepared(w->c->pg, chunk_stmt.name, 3, params, lengths, formats, 0);
        db_note_sizes(w->c, len, r);
        rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : db_error(w->c, r, e);
        PQclear(r);
    }
    free(sealed);
    w->n_chunks++;
    w->buf_len = 0;
    return rc;
}

int files_write(struct files_writer *w, const void *p, size_t n, struct err *e)
{
    OQ_ASSERT(w->c != NULL);
    EVP_DigestUpdate(w->sha, p, n);
    w->size += (long long)n;
    const unsigned char *in = p;
    while (n > 0) {
        size_t take = FILES_CHUNK_BYTES - w->buf_len < n ? FILES_CHUNK_BYTES - w->buf_len : n;
        memcpy(w->buf + w->buf_len, in, take);
        w->buf_len += take;
        in += take;
        n -= take;
        if (w->buf_len == FILES_CHUNK_BYTES && flush_chunk(w, e) != 0)
            return -1;
    }
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

int files_commit(struct files_writer *w, struct stored_file *meta, struct err *e)
{
    OQ_ASSERT(w->c != NULL);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    char sha[65], size[32];
    EVP_DigestFinal_ex(w->sha, digest, &digest_len);
    hex(digest, 32, sha);
    snprintf(size, sizeof(size), "%lld", w->size);
    /* the last chunk, even an empty one: every file has chunk 0 */
    if ((w->buf_len > 0 || w->n_chunks == 0) && flush_chunk(w, e) != 0) {
        files_abort(w);
        return -1;
    }
    const char *params[] = {w->id, size, sha};
    PGresult *r = db_exec(w->c, &finish_stmt, 3, params, e);
    if (r == NULL) {
        files_abort(w);
        return -1;
    }
    fill_meta(r, meta);
    PQclear(r);
    int rc = db_command(w->c, "COMMIT", e);
    if (rc != 0)
        files_abort(w);
    writer_free(w);
    return rc;
}

void files_abort(struct files_writer *w)
{
    if (w->c != NULL)
        rollback(w->c);
    writer_free(w);
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

int files_open(struct files_reader *rd, struct db_pool *db, const char *id, struct err *e)
{
    memset(rd, 0, sizeof(*rd));
    rd->db = db;
    struct db_conn *c = db_acquire(db, e);
    if (c == NULL)
        return -1;
    PGresult *r = db_exec_by_id(c, &open_stmt, "file", id, e);
    db_release(db, c);
    if (r == NULL) {
        if (e->code == ERR_NOT_FOUND)
            err_set(e, ERR_NOT_FOUND, "file %s is no longer stored", id);
        return -1;
    }
    fill_meta(r, &rd->meta);
    rd->encrypted = strcmp(PQgetvalue(r, 0, 5), "true") == 0;
    rd->bound = strcmp(PQgetvalue(r, 0, 6), "true") == 0;
    rd->sealed_whole = strcmp(PQgetvalue(r, 0, 7), "true") == 0;
    PQclear(r);
    return 0;
}

/* The stored bytes of chunk n (or, for a file sealed whole, of all its chunks together) into
 * a new buffer. A missing chunk is ERR_NOT_FOUND: the file was deleted meanwhile. */
static unsigned char *fetch(struct files_reader *rd, struct db_conn *c, int n, size_t *len,
                            struct err *e)
{
    char num[16];
    snprintf(num, sizeof(num), "%d", n);
    const struct db_stmt *s = rd->sealed_whole ? &read_whole_stmt : &read_stmt;
    const char *params[] = {rd->meta.id, num};
    int n_params = rd->sealed_whole ? 1 : 2;
    if (db_prepare(c, s, n_params, e) != 0)
        return NULL;
    /* text parameters, binary results: the bytes arrive as they were stored */
    PGresult *r = PQexecPrepared(c->pg, s->name, n_params, params, NULL, NULL, 1);
    db_note_sizes(c, 0, r);
    unsigned char *out = NULL;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        db_error(c, r, e);
    } else if (PQntuples(r) == 0) {
        err_set(e, ERR_NOT_FOUND, "file %s is no longer stored", rd->meta.id);
    } else {
        *len = (size_t)PQgetlength(r, 0, 0);
        out = oq_malloc(*len ? *len : 1);
        memcpy(out, PQgetvalue(r, 0, 0), *len);
    }
    PQclear(r);
    return out;
}

/* Opens what fetch() got: a chunk sealed for this file and place, or (before 007) the whole
 * blob, bound to the file's id or (older) not. Takes stored. */
static unsigned char *open_stored(struct files_reader *rd, unsigned char *stored, size_t *len,
                                  struct err *e)
{
    if (!rd->encrypted)
        return stored;
    const struct secretbox *box = rd->db->box;
    unsigned char *plain = NULL;
    char column[32];
    chunk_column(rd->next, column, sizeof(column));
    if (!rd->sealed_whole)
        plain = secretbox_open_bound(box, stored, *len, rd->meta.id, column, len);
    else if (rd->bound)
        plain = secretbox_open_bound(box, stored, *len, rd->meta.id, "file", len);
    else
        plain = secretbox_open(box, stored, *len, len);
    free(stored);
    if (plain == NULL)
        err_set(e, ERR_UNDECRYPTABLE,
                "file %s cannot be decrypted: another key, another file's ciphertext, or altered",
                rd->meta.id);
    return plain;
}

/* The next chunk into rd->chunk. Each chunk but the last is full, and together they are the
 * file's size: anything else (a chunk dropped or added by hand) is an altered file. */
static int next_chunk(struct files_reader *rd, struct err *e)
{
    free(rd->chunk);
    rd->chunk = NULL;
    rd->chunk_len = rd->pos = 0;
    struct db_conn *c = db_acquire(rd->db, e);
    if (c == NULL)
        return -1;
    size_t len = 0;
    unsigned char *stored = fetch(rd, c, rd->next, &len, e);
    db_release(rd->db, c);
    unsigned char *plain = stored ? open_stored(rd, stored, &len, e) : NULL;
    if (plain == NULL)
        return -1;
    long long left = rd->meta.size - rd->done;
    if (len == 0 || (long long)len > left ||
        (!rd->sealed_whole && (long long)len < left && len != FILES_CHUNK_BYTES)) {
        free(plain);
        return err_set(e, ERR_UNDECRYPTABLE, "file %s is altered: chunk %d has %zu bytes",
                       rd->meta.id, rd->next, len);
    }
    rd->chunk = plain;
    rd->chunk_len = len;
    rd->next++;
    return 0;
}

long long files_read(struct files_reader *rd, void *buf, size_t n, struct err *e)
{
    size_t got = 0;
    while (got < n && rd->done < rd->meta.size) {
        if (rd->pos == rd->chunk_len && next_chunk(rd, e) != 0)
            return -1;
        size_t take = rd->chunk_len - rd->pos < n - got ? rd->chunk_len - rd->pos : n - got;
        memcpy((unsigned char *)buf + got, rd->chunk + rd->pos, take);
        rd->pos += take;
        rd->done += (long long)take;
        got += take;
    }
    return (long long)got;
}

void files_rewind(struct files_reader *rd)
{
    if (rd->sealed_whole && rd->chunk != NULL) { /* the whole file is in memory already */
        rd->pos = 0;
        rd->done = 0;
        return;
    }
    free(rd->chunk);
    rd->chunk = NULL;
    rd->chunk_len = rd->pos = 0;
    rd->next = 0;
    rd->done = 0;
}

void files_close(struct files_reader *rd)
{
    free(rd->chunk);
    rd->chunk = NULL;
}
