/* Data at rest: with OFFLINEQ_ENCRYPTION_KEY (32 bytes as 64 hex characters), operation
 * payloads and stored files are encrypted with AES-256-GCM (OpenSSL) before they reach the
 * database. A sealed blob is nonce (12) | ciphertext | tag (16); a fresh random nonce each time.
 *
 * A sealed payload is stored as the JSON object {"$enc": "<base64 blob>"} plus, in clear, the
 * two fields the database routes by: "upstream" (a configured name) and "file_id" (a file
 * reference). Rows written before the key was set stay plaintext and stay readable.
 *
 * The key is set once at start-up, before any thread uses this module. */
#ifndef OQ_SECRETBOX_H
#define OQ_SECRETBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"
#include "err.h"

/* hex_key "" or NULL: encryption off. Returns -1 with *e when it is not 64 hex characters. */
int secretbox_init(const char *hex_key, struct err *e) OQ_MUSTCHECK;
bool secretbox_enabled(void);

/* Seals n bytes; returns the blob (malloc'd), *out_len its length. Encryption must be on. */
unsigned char *secretbox_seal(const void *plain, size_t n, size_t *out_len);
/* Opens a blob; returns the plaintext (malloc'd, NUL-terminated) or NULL when the key does not
 * fit or the blob was altered. */
unsigned char *secretbox_open(const void *blob, size_t n, size_t *out_len);

/* The payload as stored: sealed in an envelope when encryption is on, else a copy. */
char *secretbox_seal_payload(const char *payload_json);
/* The payload as the API and handlers see it: an envelope opened, a plaintext one copied.
 * NULL when an envelope cannot be opened. */
char *secretbox_open_payload(const char *stored_json);
/* An Operation object, or an array of them, from the database with its payload(s) opened;
 * takes json and returns the result (json itself when nothing is sealed). */
char *secretbox_open_ops(char *json);

/* At start-up, after migrations: a key that does not match the one the database was encrypted
 * with, or no key for a database that holds encrypted data, is an error (start-up stops);
 * the first start with a key records a check value. */
int secretbox_check_database(struct db_conn *c, struct err *e) OQ_MUSTCHECK;

#endif
