#include "secretbox.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonload.h"
#include "jsontext.h"
#include "log.h"

#define NONCE_LEN 12
#define TAG_LEN 16
#define ENVELOPE "$enc"
#define CHECK_TEXT "offlineq encryption key check v1"

static unsigned char key[32];
static bool enabled;

int secretbox_init(const char *hex_key, struct err *e)
{
    enabled = false;
    if (hex_key == NULL || *hex_key == '\0')
        return 0;
    if (strlen(hex_key) != 64)
        return err_set(e, ERR_INVALID_REQUEST,
                       "OFFLINEQ_ENCRYPTION_KEY: expected 64 hex characters (32 bytes), got %zu characters",
                       strlen(hex_key));
    for (int i = 0; i < 32; i++) {
        char pair[3] = {hex_key[2 * i], hex_key[2 * i + 1], '\0'};
        if (!isxdigit((unsigned char)pair[0]) || !isxdigit((unsigned char)pair[1]))
            return err_set(e, ERR_INVALID_REQUEST, "OFFLINEQ_ENCRYPTION_KEY: not hexadecimal");
        key[i] = (unsigned char)strtoul(pair, NULL, 16);
    }
    enabled = true;
    return 0;
}

bool secretbox_enabled(void)
{
    return enabled;
}

unsigned char *secretbox_seal(const void *plain, size_t n, size_t *out_len)
{
    OQ_ASSERT(enabled);
    unsigned char *blob = oq_malloc(NONCE_LEN + n + TAG_LEN);
    OQ_ASSERT(RAND_bytes(blob, NONCE_LEN) == 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0;
    OQ_ASSERT(ctx != NULL &&
              EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, blob) == 1 &&
              EVP_EncryptUpdate(ctx, blob + NONCE_LEN, &len, plain, (int)n) == 1 &&
              EVP_EncryptFinal_ex(ctx, blob + NONCE_LEN + len, &fin) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, blob + NONCE_LEN + n) == 1);
    EVP_CIPHER_CTX_free(ctx);
    *out_len = NONCE_LEN + n + TAG_LEN;
    return blob;
}

unsigned char *secretbox_open(const void *blob, size_t n, size_t *out_len)
{
    if (!enabled || n < NONCE_LEN + TAG_LEN)
        return NULL;
    const unsigned char *b = blob;
    size_t ct = n - NONCE_LEN - TAG_LEN;
    unsigned char *plain = oq_malloc(ct + 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0;
    bool ok = ctx != NULL && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, b) == 1 &&
              EVP_DecryptUpdate(ctx, plain, &len, b + NONCE_LEN, (int)ct) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, (void *)(b + NONCE_LEN + ct)) == 1 &&
              EVP_DecryptFinal_ex(ctx, plain + len, &fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        free(plain);
        return NULL;
    }
    plain[ct] = '\0';
    *out_len = ct;
    return plain;
}

static char *base64(const unsigned char *p, size_t n)
{
    char *out = oq_malloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

static unsigned char *unbase64(const char *s, size_t *n)
{
    size_t len = strlen(s);
    if (len == 0 || len % 4 != 0)
        return NULL;
    unsigned char *out = oq_malloc(len / 4 * 3 + 1);
    int got = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
    if (got < 0) {
        free(out);
        return NULL;
    }
    *n = (size_t)got - (s[len - 1] == '=') - (s[len - 2] == '=');
    return out;
}

static char *seal_text(const char *text)
{
    size_t n;
    unsigned char *blob = secretbox_seal(text, strlen(text), &n);
    char *b64 = base64(blob, n);
    free(blob);
    return b64;
}

static char *open_text(const char *b64)
{
    size_t n, plain_len;
    unsigned char *blob = unbase64(b64, &n);
    if (blob == NULL)
        return NULL;
    unsigned char *plain = secretbox_open(blob, n, &plain_len);
    free(blob);
    return (char *)plain;
}

char *secretbox_seal_payload(const char *payload_json)
{
    if (!enabled)
        return oq_strdup(payload_json);
    json_t *p = jsonload_text(payload_json);
    char *b64 = seal_text(payload_json);
    json_t *env = json_pack("{s:s}", ENVELOPE, b64);
    free(b64);
    static const char *const clear[] = {"upstream", "file_id", NULL}; /* what SQL routes by */
    for (const char *const *k = clear; *k; k++) {
        const json_t *v = json_object_get(p, *k);
        if (json_is_string(v))
            json_object_set_new(env, *k, json_string(json_string_value(v)));
    }
    char *out = jsontext(env);
    json_decref(env);
    json_decref(p);
    return out;
}

/* The opened payload of an envelope object (new reference), or NULL when it is not one. */
static json_t *open_envelope(const json_t *payload, bool *broken)
{
    const char *b64 = json_string_value(json_object_get(payload, ENVELOPE));
    *broken = false;
    if (b64 == NULL)
        return NULL;
    char *text = open_text(b64);
    json_t *opened = jsonload_text(text);
    free(text);
    *broken = opened == NULL;
    return opened;
}

char *secretbox_open_payload(const char *stored_json)
{
    if (strstr(stored_json, "\"" ENVELOPE "\"") == NULL)
        return oq_strdup(stored_json);
    json_t *stored = jsonload_text(stored_json);
    bool broken;
    json_t *opened = open_envelope(stored, &broken);
    json_decref(stored);
    if (broken)
        return NULL;
    if (opened == NULL)
        return oq_strdup(stored_json);
    char *out = jsontext(opened);
    json_decref(opened);
    return out;
}

static void open_op(json_t *op)
{
    bool broken;
    json_t *opened = open_envelope(json_object_get(op, "payload"), &broken);
    if (opened != NULL)
        json_object_set_new(op, "payload", opened);
    else if (broken) /* left sealed, never shown as something else */
        log_json(LOG_ERROR, "a stored payload cannot be decrypted with the configured key",
                 json_pack("{s:s?}", "id", json_string_value(json_object_get(op, "id"))));
}

char *secretbox_open_ops(char *json)
{
    if (json == NULL || strstr(json, "\"" ENVELOPE "\"") == NULL)
        return json;
    json_t *doc = jsonload_text(json);
    if (doc == NULL)
        return json;
    size_t i;
    json_t *op;
    if (json_is_array(doc)) {
        json_array_foreach(doc, i, op)
            open_op(op);
    } else {
        open_op(doc);
    }
    char *out = jsontext(doc);
    json_decref(doc);
    free(json);
    return out;
}

static const struct db_stmt check_get = {
    "secretbox_check_get",
    "SELECT value #>> '{}' FROM offlineq_settings WHERE key = 'encryption_check'"};
static const struct db_stmt check_put = {
    "secretbox_check_put",
    "INSERT INTO offlineq_settings (key, value) VALUES ('encryption_check', to_jsonb($1::text)) "
    "ON CONFLICT (key) DO NOTHING"};

int secretbox_check_database(struct db_conn *c, struct err *e)
{
    PGresult *r = db_exec(c, &check_get, 0, NULL, e);
    if (r == NULL)
        return -1;
    char *stored = PQntuples(r) == 1 ? oq_strdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    if (!enabled) {
        free(stored);
        return stored ? err_set(e, ERR_NOT_READY, "this database holds encrypted data: set "
                                                  "OFFLINEQ_ENCRYPTION_KEY to the key it was written with")
                      : 0;
    }
    if (stored == NULL) { /* the first start with a key: record what it looks like */
        char *check = seal_text(CHECK_TEXT);
        const char *params[] = {check};
        r = db_exec(c, &check_put, 1, params, e);
        free(check);
        if (r == NULL)
            return -1;
        PQclear(r);
        return secretbox_check_database(c, e); /* another instance may have won: compare */
    }
    char *text = open_text(stored);
    bool ok = text != NULL && strcmp(text, CHECK_TEXT) == 0;
    free(text);
    free(stored);
    return ok ? 0 : err_set(e, ERR_NOT_READY, "OFFLINEQ_ENCRYPTION_KEY is not the key this "
                                              "database was encrypted with");
}
