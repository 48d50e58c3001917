/* Data at rest: with OFFLINEQ_ENCRYPTION_KEY (32 bytes as 64 hex characters), operation
 * payloads and stored files are encrypted with AES-256-GCM (OpenSSL) before they reach the
 * database. A sealed blob is nonce (12) | ciphertext | tag (16); a fresh random nonce each time.
 *
 * A sealed column value is stored as the JSON object {"$enc2": "<base64 blob>"}, the blob bound
 * (AES-GCM associated data "offlineq:<column>:<row id>") to its row and column, so it opens
 * nowhere else. Payloads keep in clear the two fields the database routes by: "upstream" (a
 * configured name) and "file_id" (a file reference). Sealed: payload, result (with result.sent
 * and the remote document of a conflict), resolution (an operator's merged data). Version 1
 * envelopes {"$enc": ...} (no binding) and plaintext rows stay readable and are sealed as v2
 * when the service sees them (a claim, or the sweep).
 *
 * Key rotation: with OFFLINEQ_ENCRYPTION_KEY_PREVIOUS as well, whatever does not open with the
 * key is tried with the previous one, everything is sealed with the key, and store/rotation.c
 * re-seals what the previous key sealed.
 *
 * The key lives in a struct secretbox owned by struct app and set once at start-up, before any
 * thread uses it; it is read-only from then on, so every function is thread-safe. The store's
 * functions reach it through their connection (db_conn.box, lent by the pool), so callers of
 * store/ never handle the key. */
#ifndef OQ_SECRETBOX_H
#define OQ_SECRETBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "store/db.h"
#include "core/err.h"

struct secretbox {
    unsigned char key[32];
    unsigned char previous[32]; /* opens only: what is being rotated away from */
    bool enabled;               /* false: no key, everything is stored in clear */
    bool has_previous;
};

/* hex_key "" or NULL: encryption off; hex_previous "" or NULL: none (it needs a key). Returns
 * -1 with *e when one is not 64 hex characters, or they are the same key. */
int secretbox_init(struct secretbox *sb, const char *hex_key, const char *hex_previous,
                   struct err *e) OQ_MUSTCHECK;

/* sb with the previous key dropped: what opens with it is sealed with the key itself. */
struct secretbox secretbox_current_only(const struct secretbox *sb);
bool secretbox_enabled(const struct secretbox *sb);

/* Seals n bytes, bound to ad (ad_len 0: none); returns the blob (malloc'd), *out_len its
 * length. Encryption must be on. */
unsigned char *secretbox_seal_ad(const struct secretbox *sb, const void *plain, size_t n,
                                 const void *ad, size_t ad_len, size_t *out_len);
/* Opens a blob sealed with the same ad; returns the plaintext (malloc'd, NUL-terminated) or
 * NULL when the key or ad does not fit or the blob was altered. */
unsigned char *secretbox_open_ad(const struct secretbox *sb, const void *blob, size_t n,
                                 const void *ad, size_t ad_len, size_t *out_len);
/* The same without associated data (stored files). */
unsigned char *secretbox_seal(const struct secretbox *sb, const void *plain, size_t n,
                              size_t *out_len);
unsigned char *secretbox_open(const struct secretbox *sb, const void *blob, size_t n,
                              size_t *out_len);

/* The same, bound to column of row id (associated data "offlineq:<column>:<id>"). */
unsigned char *secretbox_seal_bound(const struct secretbox *sb, const void *plain, size_t n,
                                    const char *id, const char *column, size_t *out_len);
unsigned char *secretbox_open_bound(const struct secretbox *sb, const void *blob, size_t n,
                                    const char *id, const char *column, size_t *out_len);

/* The payload of a new operation as stored: when encryption is on, sealed for a fresh row id
 * which the envelope carries as "$id" (migration 005 makes it the row's id); else a copy. */
char *secretbox_seal_payload(const struct secretbox *sb, const char *payload_json);
/* json (a JSON text, may be NULL) as stored in column ("payload", "result", "resolution") of
 * row id: sealed when encryption is on, else a copy. Returns a new string or NULL. */
char *secretbox_seal_json(const struct secretbox *sb, const char *json, const char *id,
                          const char *column);
/* A stored column value as the API and handlers see it: an envelope opened (v2 bound to id and
 * column, v1 unbound), plaintext copied. NULL when an envelope does not open. */
char *secretbox_open_json(const struct secretbox *sb, const char *stored, const char *id,
                          const char *column);
/* True when stored is a v2 envelope (plaintext and v1 rows are sealed again when seen). */
bool secretbox_is_sealed(const char *stored);
/* Operation objects (one, or an array) from the database with payload and result opened;
 * takes json and returns the result (json itself when nothing is sealed). A value that does
 * not open stays sealed, never shown as something else. */
char *secretbox_open_ops(const struct secretbox *sb, char *json);

/* Seals what is still plaintext (or v1) in column of row id, if stored (its current text)
 * still is the value there. Encryption must be on. Returns 0, or -1 with *e. */
int secretbox_reseal(struct db_conn *c, const char *id, const char *column, const char *stored,
                     struct err *e) OQ_MUSTCHECK;
/* Seals up to limit of the rows listed in offlineq_unsealed (rows from offlineq.enqueue() while
 * a key is set, or from before the key was set) and takes them off the list. Returns how many
 * were looked at, or -1 with *e. */
int secretbox_sweep(struct db_conn *c, int limit, struct err *e);

/* At start-up, after migrations: a key that does not match the one the database was encrypted
 * with (nor does the previous one), or no key for a database that holds encrypted data, is an
 * error (start-up stops); the first start with a key records a check value. *rotating: the
 * check opened with the previous key only, so a rotation to the key is under way. */
int secretbox_check_database(struct db_conn *c, bool *rotating, struct err *e) OQ_MUSTCHECK;

/* The check value sealed with the key, as the database keeps it (once a rotation is over). */
char *secretbox_check_value(const struct secretbox *sb);

#endif
