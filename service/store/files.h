/* Stored files (offlineq_files): bytes live in PostgreSQL so any instance can deliver them. */
#ifndef OQ_FILES_H
#define OQ_FILES_H

#include "store/db.h"

struct stored_file {
    char id[37];
    char content_type[256];
    long long size;
    char sha256[65];
    char created_at[40];
    unsigned char *data; /* owned; only filled by files_load */
};

/* Stores data and fills meta (id, size, sha256, created_at). */
int files_store(struct db_conn *c, const char *content_type, const void *data, size_t len,
                struct stored_file *meta, struct err *e) OQ_MUSTCHECK;

/* Metadata only; ERR_NOT_FOUND when unknown. */
int files_meta(struct db_conn *c, const char *id, struct stored_file *out,
               struct err *e) OQ_MUSTCHECK;

/* Metadata and bytes (free out->data). */
int files_load(struct db_conn *c, const char *id, struct stored_file *out,
               struct err *e) OQ_MUSTCHECK;

#endif
