/* Stored files (offlineq_files, offlineq_file_chunks): bytes live in PostgreSQL so any instance
 * can deliver them, in chunks of FILES_CHUNK_BYTES, so that no file is ever held whole in
 * memory: a writer takes the bytes in pieces as they arrive, a reader hands them out in pieces
 * as they are sent. */
#ifndef OQ_FILES_H
#define OQ_FILES_H

#include <openssl/evp.h>

#include "store/db.h"

/* Bytes of a file per chunk row (migrations/007_file_chunks.sql cuts older files the same). */
#define FILES_CHUNK_BYTES (1024 * 1024)

struct stored_file {
    char id[37];
    char content_type[256];
    long long size;
    char sha256[65];
    char created_at[40];
};

/* One file being stored: a transaction on c from files_begin to files_commit or files_abort,
 * one chunk of buffer. */
struct files_writer {
    struct db_conn *c;  /* borrowed, in a transaction until commit or abort */
    char id[37];        /* chosen here, so that sealed chunks can be bound to it */
    EVP_MD_CTX *sha;    /* owned: sha256 of the bytes so far */
    unsigned char *buf; /* owned: the chunk being filled (FILES_CHUNK_BYTES) */
    size_t buf_len;
    int n_chunks; /* chunks written */
    long long size;
};

/* Begins a transaction on c (idle, checked out by the caller, who keeps it until commit or
 * abort) and the file's row. Returns -1 with *e (nothing is left open then). */
int files_begin(struct files_writer *w, struct db_conn *c, const char *content_type,
                struct err *e) OQ_MUSTCHECK;
/* Adds n bytes; a chunk is written (sealed when encryption is on) each time one is full. On
 * -1 (*e set) the caller must still call files_abort. */
int files_write(struct files_writer *w, const void *p, size_t n, struct err *e) OQ_MUSTCHECK;
/* Writes the last chunk, the size and sha256, commits, and fills meta. Returns -1 with *e; the
 * writer is closed either way (a failed commit leaves nothing). */
int files_commit(struct files_writer *w, struct stored_file *meta, struct err *e) OQ_MUSTCHECK;
/* Rolls back and closes the writer: nothing of the file remains. Safe after commit. */
void files_abort(struct files_writer *w);

/* Metadata only; ERR_NOT_FOUND when unknown. */
int files_meta(struct db_conn *c, const char *id, struct stored_file *out,
               struct err *e) OQ_MUSTCHECK;

/* One stored file read in order, one chunk held at a time. Each chunk is fetched on a
 * connection checked out of db for that one query, so a slow upstream holds no connection. */
struct files_reader {
    struct db_pool *db; /* borrowed */
    struct stored_file meta;
    bool encrypted;
    bool bound;           /* sealed bound to its id (whole blobs before 007 may not be) */
    bool sealed_whole;    /* one sealed blob cut into chunks (files from before 007) */
    int next;             /* the chunk to fetch next */
    unsigned char *chunk; /* owned: the current chunk's plaintext */
    size_t chunk_len, pos;
    long long done; /* bytes handed out since the start */
};

/* Opens the file's metadata (rd->meta). ERR_NOT_FOUND when unknown. */
int files_open(struct files_reader *rd, struct db_pool *db, const char *id,
               struct err *e) OQ_MUSTCHECK;
/* Copies up to n of the next bytes into buf: returns how many (0 at the end), or -1 with *e:
 * ERR_NOT_FOUND (deleted meanwhile, or a chunk missing), ERR_UNDECRYPTABLE (a chunk does not
 * open for this file and place), ERR_DB_UNAVAILABLE. */
long long files_read(struct files_reader *rd, void *buf, size_t n, struct err *e) OQ_MUSTCHECK;
/* Back to the first byte (the next read fetches chunk 0 again). */
void files_rewind(struct files_reader *rd);
void files_close(struct files_reader *rd);

#endif
