#include "store/secretbox.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonload.h"
#include "core/jsontext.h"
#include "core/log.h"

#define NONCE_LEN 12
#define TAG_LEN 16
#define ENVELOPE "$enc"   /* v1: no associated data (still opened) */
#define ENVELOPE2 "$enc2" /* v2: bound to its row and column */
#define CHECK_TEXT "offlineq encryption key check v1"

static int parse_key(const char *var, const char *hex_key, unsigned char key[32], struct err *e)
{
    if (strlen(hex_key) != 64)
        return err_set(e, ERR_INVALID_REQUEST,
                       "%s: expected 64 hex characters (32 bytes), got %zu characters", var,
                       strlen(hex_key));
    for (int i = 0; i < 32; i++) {
        char pair[3] = {hex_key[2 * i], hex_key[2 * i + 1], '\0'};
        if (!isxdigit((unsigned char)pair[0]) || !isxdigit((unsigned char)pair[1]))
            return err_set(e, ERR_INVALID_REQUEST, "%s: not hexadecimal", var);
        key[i] = (unsigned char)strtoul(pair, NULL, 16);
    }
    return 0;
}

int secretbox_init(struct secretbox *sb, const char *hex_key, const char *hex_previous,
                   struct err *e)
{
    sb->enabled = sb->has_previous = false;
    bool has_prev = hex_previous != NULL && *hex_previous != '\0';
    if (hex_key == NULL || *hex_key == '\0')
        return has_prev ? err_set(e, ERR_INVALID_REQUEST,
                                  "OFFLINEQ_ENCRYPTION_KEY_PREVIOUS: needs OFFLINEQ_ENCRYPTION_KEY "
                                  "(the key to rotate to)")
                        : 0;
    if (parse_key("OFFLINEQ_ENCRYPTION_KEY", hex_key, sb->key, e) != 0 ||
        (has_prev &&
         parse_key("OFFLINEQ_ENCRYPTION_KEY_PREVIOUS", hex_previous, sb->previous, e) != 0))
        return -1;
    if (has_prev && CRYPTO_memcmp(sb->key, sb->previous, 32) == 0)
        return err_set(e, ERR_INVALID_REQUEST,
                       "OFFLINEQ_ENCRYPTION_KEY_PREVIOUS: the same key as OFFLINEQ_ENCRYPTION_KEY");
    sb->enabled = true;
    sb->has_previous = has_prev;
    return 0;
}

void secretbox_key_id(const struct secretbox *sb, char out[65])
{
    static const char label[] = "offlineq key id v1:";
    unsigned char buf[sizeof(label) - 1 + 32], d[32];
    memcpy(buf, label, sizeof(label) - 1);
    memcpy(buf + sizeof(label) - 1, sb->key, 32);
    OQ_ASSERT(EVP_Digest(buf, sizeof(buf), d, NULL, EVP_sha256(), NULL) == 1);
    OPENSSL_cleanse(buf, sizeof(buf));
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

struct secretbox secretbox_current_only(const struct secretbox *sb)
{
    struct secretbox cur = *sb;
    cur.has_previous = false;
    return cur;
}

bool secretbox_enabled(const struct secretbox *sb)
{
    return sb->enabled;
}

unsigned char *secretbox_seal_ad(const struct secretbox *sb, const void *plain, size_t n,
                                 const void *ad, size_t ad_len, size_t *out_len)
{
    OQ_ASSERT(sb->enabled);
    unsigned char *blob = oq_malloc(NONCE_LEN + n + TAG_LEN);
    OQ_ASSERT(RAND_bytes(blob, NONCE_LEN) == 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0, ignored = 0;
    OQ_ASSERT(ctx != NULL && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, sb->key, blob) == 1 &&
              (ad_len == 0 || EVP_EncryptUpdate(ctx, NULL, &ignored, ad, (int)ad_len) == 1) &&
              EVP_EncryptUpdate(ctx, blob + NONCE_LEN, &len, plain, (int)n) == 1 &&
              EVP_EncryptFinal_ex(ctx, blob + NONCE_LEN + len, &fin) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, blob + NONCE_LEN + n) == 1);
    EVP_CIPHER_CTX_free(ctx);
    *out_len = NONCE_LEN + n + TAG_LEN;
    return blob;
}

static unsigned char *open_with(const unsigned char key[32], const unsigned char *b, size_t n,
                                const void *ad, size_t ad_len, size_t *out_len)
{
    size_t ct = n - NONCE_LEN - TAG_LEN;
    unsigned char *plain = oq_malloc(ct + 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0, ignored = 0;
    bool ok = ctx != NULL && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, b) == 1 &&
              (ad_len == 0 || EVP_DecryptUpdate(ctx, NULL, &ignored, ad, (int)ad_len) == 1) &&
              EVP_DecryptUpdate(ctx, plain, &len, b + NONCE_LEN, (int)ct) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
                                  (void *)(b + NONCE_LEN + ct)) == 1 &&
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

unsigned char *secretbox_open_ad(const struct secretbox *sb, const void *blob, size_t n,
                                 const void *ad, size_t ad_len, size_t *out_len)
{
    if (!sb->enabled || n < NONCE_LEN + TAG_LEN)
        return NULL;
    unsigned char *plain = open_with(sb->key, blob, n, ad, ad_len, out_len);
    if (plain == NULL && sb->has_previous) /* sealed before the rotation */
        plain = open_with(sb->previous, blob, n, ad, ad_len, out_len);
    return plain;
}

unsigned char *secretbox_seal(const struct secretbox *sb, const void *plain, size_t n,
                              size_t *out_len)
{
    return secretbox_seal_ad(sb, plain, n, NULL, 0, out_len);
}

unsigned char *secretbox_open(const struct secretbox *sb, const void *blob, size_t n,
                              size_t *out_len)
{
    return secretbox_open_ad(sb, blob, n, NULL, 0, out_len);
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

/* The associated data that binds a blob to one column of one row: a ciphertext moved to
 * another row or column no longer opens. */
static size_t bind_ad(char *ad, size_t len, const char *id, const char *column)
{
    int n = snprintf(ad, len, "offlineq:%s:%s", column, id);
    return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

unsigned char *secretbox_seal_bound(const struct secretbox *sb, const void *plain, size_t n,
                                    const char *id, const char *column, size_t *out_len)
{
    char ad[128];
    size_t ad_len = bind_ad(ad, sizeof(ad), id, column);
    OQ_ASSERT(ad_len > 0);
    return secretbox_seal_ad(sb, plain, n, ad, ad_len, out_len);
}

unsigned char *secretbox_open_bound(const struct secretbox *sb, const void *blob, size_t n,
                                    const char *id, const char *column, size_t *out_len)
{
    char ad[128];
    size_t ad_len = bind_ad(ad, sizeof(ad), id, column);
    return ad_len > 0 ? secretbox_open_ad(sb, blob, n, ad, ad_len, out_len) : NULL;
}

static char *seal_text(const struct secretbox *sb, const char *text, const char *id,
                       const char *column)
{
    char ad[128];
    size_t ad_len = id ? bind_ad(ad, sizeof(ad), id, column) : 0;
    size_t n;
    unsigned char *blob = secretbox_seal_ad(sb, text, strlen(text), ad_len ? ad : NULL, ad_len, &n);
    char *b64 = base64(blob, n);
    free(blob);
    return b64;
}

static char *open_text(const struct secretbox *sb, const char *b64, const char *id,
                       const char *column)
{
    char ad[128];
    size_t ad_len = id ? bind_ad(ad, sizeof(ad), id, column) : 0;
    if (id != NULL && ad_len == 0)
        return NULL;
    size_t n, plain_len;
    unsigned char *blob = unbase64(b64, &n);
    if (blob == NULL)
        return NULL;
    unsigned char *plain = secretbox_open_ad(sb, blob, n, ad_len ? ad : NULL, ad_len, &plain_len);
    free(blob);
    return (char *)plain;
}

/* What SQL reads in clear, per column: the payload's routing fields; nothing else. */
static const struct {
    const char *column;
    const char *const *clear;
} columns[] = {
    {"payload", (const char *const[]){"upstream", "file_id", NULL}},
    {"result", (const char *const[]){NULL}},
    {"resolution", (const char *const[]){NULL}},
    {"answer", (const char *const[]){NULL}}, /* a stored Idempotency-Key answer */
};

static const char *const *clear_fields(const char *column)
{
    for (size_t i = 0; i < OQ_ARRAY_LEN(columns); i++) {
        if (strcmp(columns[i].column, column) == 0)
            return columns[i].clear;
    }
    OQ_ASSERT(!"a sealed column is listed in columns[]");
    return NULL;
}

/* {"$enc2": blob bound to id/column, <clear fields>} as JSON text. */
static char *envelope(const struct secretbox *sb, const char *json, const char *id,
                      const char *column, const char *new_id)
{
    json_t *p = jsonload_text(json);
    char *b64 = seal_text(sb, json, id, column);
    json_t *env = json_pack("{s:s}", ENVELOPE2, b64);
    free(b64);
    for (const char *const *k = clear_fields(column); *k; k++) {
        const json_t *v = json_object_get(p, *k);
        if (jsonstr_is(v))
            json_object_set_new(env, *k, json_string(json_string_value(v)));
    }
    if (new_id != NULL) /* the row takes this id on insert (migration 005's trigger) */
        json_object_set_new(env, "$id", json_string(new_id));
    char *out = jsontext(env);
    json_decref(env);
    json_decref(p);
    return out;
}

char *secretbox_seal_payload(const struct secretbox *sb, const char *payload_json)
{
    if (!sb->enabled)
        return oq_strdup(payload_json);
    char id[37];
    oq_uuid(id);
    return envelope(sb, payload_json, id, "payload", id);
}

char *secretbox_seal_json(const struct secretbox *sb, const char *json, const char *id,
                          const char *column)
{
    if (json == NULL)
        return NULL;
    return sb->enabled ? envelope(sb, json, id, column, NULL) : oq_strdup(json);
}

bool secretbox_is_sealed(const char *stored)
{
    if (stored == NULL || strstr(stored, "\"" ENVELOPE2 "\"") == NULL)
        return false; /* no envelope key anywhere */
    /* only the top level counts: a plaintext payload may hold the text "$enc2" as data */
    json_t *doc = jsonload_text(stored);
    bool sealed = jsonstr_is(json_object_get(doc, ENVELOPE2));
    json_decref(doc);
    return sealed;
}

/* The opened text of an envelope object, or NULL with *broken when it is one that does not
 * open (v2: bound to id/column; v1: no binding). *broken false and NULL: not an envelope. */
static char *open_envelope_text(const struct secretbox *sb, const json_t *stored, const char *id,
                                const char *column, bool *broken)
{
    const char *v2 = json_string_value(json_object_get(stored, ENVELOPE2));
    const char *v1 = json_string_value(json_object_get(stored, ENVELOPE));
    *broken = false;
    if (v2 == NULL && v1 == NULL)
        return NULL;
    char *text = v2 ? open_text(sb, v2, id, column) : open_text(sb, v1, NULL, column);
    *broken = text == NULL;
    return text;
}

char *secretbox_open_json(const struct secretbox *sb, const char *stored, const char *id,
                          const char *column)
{
    if (stored == NULL || strstr(stored, "\"" ENVELOPE) == NULL)
        return stored ? oq_strdup(stored) : NULL;
    json_t *doc = jsonload_text(stored);
    bool broken;
    char *text = open_envelope_text(sb, doc, id, column, &broken);
    json_decref(doc);
    if (broken)
        return NULL;
    return text ? text : oq_strdup(stored);
}

/* Opens op's field column in place; a field that does not open stays sealed (never shown as
 * something else) and is logged. */
static void open_field(const struct secretbox *sb, json_t *op, const char *column)
{
    const char *id = json_string_value(json_object_get(op, "id"));
    json_t *v = json_object_get(op, column);
    if (id == NULL || !json_is_object(v))
        return;
    bool broken;
    char *text = open_envelope_text(sb, v, id, column, &broken);
    json_t *opened = text ? jsonload_text(text) : NULL;
    free(text);
    if (opened != NULL)
        json_object_set_new(op, column, opened);
    else if (broken)
        log_json(LOG_ERROR,
                 "a stored value cannot be decrypted: another key, another row's "
                 "ciphertext, or altered",
                 json_pack("{s:s, s:s}", "id", id, "column", column));
}

static void open_op(const struct secretbox *sb, json_t *op)
{
    open_field(sb, op, "payload");
    open_field(sb, op, "result");
}

char *secretbox_open_ops(const struct secretbox *sb, char *json)
{
    if (json == NULL || strstr(json, "\"" ENVELOPE) == NULL)
        return json;
    json_t *doc = jsonload_text(json);
    if (doc == NULL)
        return json;
    size_t i;
    json_t *op;
    if (json_is_array(doc)) {
        json_array_foreach(doc, i, op) open_op(sb, op);
    } else {
        open_op(sb, doc);
    }
    char *out = jsontext(doc);
    json_decref(doc);
    free(json);
    return out;
}

static int list_all_unsealed(struct db_conn *c, struct err *e);

static const struct db_stmt check_get = {
    "secretbox_check_get",
    "SELECT value #>> '{}' FROM offlineq_settings WHERE key = 'encryption_check'"};
static const struct db_stmt check_put = {
    "secretbox_check_put",
    "INSERT INTO offlineq_settings (key, value) VALUES ('encryption_check', to_jsonb($1::text)) "
    "ON CONFLICT (key) DO NOTHING"};

char *secretbox_check_value(const struct secretbox *sb)
{
    return seal_text(sb, CHECK_TEXT, NULL, NULL);
}

/* Does stored (the check value) open with box and say what it should? */
static bool check_opens(const struct secretbox *box, const char *stored)
{
    char *text = open_text(box, stored, NULL, NULL);
    bool ok = text != NULL && strcmp(text, CHECK_TEXT) == 0;
    free(text);
    return ok;
}

int secretbox_check_database(struct db_conn *c, bool *rotating, struct err *e)
{
    const struct secretbox *sb = c->box;
    *rotating = false;
    PGresult *r = db_exec(c, &check_get, 0, NULL, e);
    if (r == NULL)
        return -1;
    char *stored = PQntuples(r) == 1 ? oq_strdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    if (!sb->enabled) {
        free(stored);
        return stored ? err_set(e, ERR_NOT_READY,
                                "this database holds encrypted data: set "
                                "OFFLINEQ_ENCRYPTION_KEY to the key it was written with")
                      : 0;
    }
    if (stored == NULL) { /* the first start with a key: record what it looks like */
        char *check = secretbox_check_value(sb);
        const char *params[] = {check};
        int rc = db_run(c, &check_put, 1, params, e);
        free(check);
        if (rc != 0)
            return -1;
        if (list_all_unsealed(c, e) != 0)
            return -1;
        return secretbox_check_database(c, rotating, e); /* another instance may have won */
    }
    struct secretbox cur = secretbox_current_only(sb);
    bool by_key = check_opens(&cur, stored);
    OPENSSL_cleanse(&cur, sizeof(cur));
    *rotating = !by_key && sb->has_previous && check_opens(sb, stored);
    free(stored);
    if (by_key || *rotating)
        return 0;
    return err_set(e, ERR_NOT_READY,
                   sb->has_previous ? "neither OFFLINEQ_ENCRYPTION_KEY nor "
                                      "OFFLINEQ_ENCRYPTION_KEY_PREVIOUS is the key this database "
                                      "was encrypted with"
                                    : "OFFLINEQ_ENCRYPTION_KEY is not the key this database was "
                                      "encrypted with (rotating keys? set the old one as "
                                      "OFFLINEQ_ENCRYPTION_KEY_PREVIOUS)");
}

/* One compare-and-set per sealed column: written only while the stored value is unchanged. */
#define RESEAL(col)                                                                                \
    {                                                                                              \
        "secretbox_reseal_" col, "UPDATE offline_operations SET " col                              \
                                 " = $2::jsonb WHERE id = $1::uuid AND " col " = $3::jsonb"        \
    }
static const struct {
    const char *column;
    struct db_stmt stmt;
} reseal_stmts[] = {
    {"payload", RESEAL("payload")},
    {"result", RESEAL("result")},
    {"resolution", RESEAL("resolution")},
};
#undef RESEAL

int secretbox_reseal(struct db_conn *c, const char *id, const char *column, const char *stored,
                     struct err *e)
{
    const struct secretbox *sb = c->box;
    OQ_ASSERT(sb->enabled);
    if (stored == NULL || secretbox_is_sealed(stored))
        return 0;
    char *plain = secretbox_open_json(sb, stored, id, column);
    if (plain == NULL) /* a v1 blob that does not open: left as it is, reported where read */
        return 0;
    char *sealed = secretbox_seal_json(sb, plain, id, column);
    free(plain);
    const struct db_stmt *s = NULL;
    for (size_t i = 0; i < OQ_ARRAY_LEN(reseal_stmts) && s == NULL; i++)
        s = strcmp(reseal_stmts[i].column, column) == 0 ? &reseal_stmts[i].stmt : NULL;
    OQ_ASSERT(s != NULL);
    const char *params[] = {id, sealed, stored};
    int rc = db_run(c, s, 3, params, e);
    free(sealed);
    return rc;
}

/* Plaintext (or v1) objects in any sealed column; JSON null results stay as they are. */
#define UNSEALED_WHERE                                                                             \
    "NOT o.payload ? '$enc2' "                                                                     \
    "  OR (jsonb_typeof(o.result) = 'object' AND NOT o.result ? '$enc2') "                         \
    "  OR (jsonb_typeof(o.resolution) = 'object' AND NOT o.resolution ? '$enc2')"

/* The rows still to seal are listed in offlineq_unsealed (by offlineq.enqueue() while a key is
 * set, by migration 005 and by the first start with a key), so a sweep reads a handful of rows,
 * never the whole table. */
static const struct db_stmt sweep_stmt = {
    "secretbox_sweep",
    "SELECT u.id, o.payload::text, "
    "  CASE WHEN jsonb_typeof(o.result) = 'object' AND NOT o.result ? '$enc2' "
    "    THEN o.result::text END, "
    "  CASE WHEN jsonb_typeof(o.resolution) = 'object' AND NOT o.resolution ? '$enc2' "
    "    THEN o.resolution::text END "
    "FROM (SELECT id FROM offlineq_unsealed LIMIT $1::int) u "
    "LEFT JOIN offline_operations o ON o.id = u.id"};
static const struct db_stmt sealed_stmt = {"secretbox_sealed",
                                           "DELETE FROM offlineq_unsealed WHERE id = $1"};
static const struct db_stmt list_all_stmt = {
    "secretbox_list_all",
    "INSERT INTO offlineq_unsealed (id) SELECT o.id FROM offline_operations o "
    "WHERE " UNSEALED_WHERE " ON CONFLICT DO NOTHING"};

/* Seals one listed row's columns (a row deleted meanwhile has none) and takes it off the list. */
static int sweep_row(struct db_conn *c, PGresult *r, int i, struct err *e)
{
    static const char *const cols[] = {"payload", "result", "resolution"};
    const char *id = PQgetvalue(r, i, 0);
    for (int k = 0; k < 3; k++) {
        if (!PQgetisnull(r, i, k + 1) &&
            secretbox_reseal(c, id, cols[k], PQgetvalue(r, i, k + 1), e) != 0)
            return -1;
    }
    const char *params[] = {id};
    return db_run(c, &sealed_stmt, 1, params, e);
}

int secretbox_sweep(struct db_conn *c, int limit, struct err *e)
{
    if (!c->box->enabled)
        return 0;
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit);
    const char *params[] = {lim};
    PGresult *r = db_exec(c, &sweep_stmt, 1, params, e);
    if (r == NULL)
        return -1;
    int n = PQntuples(r), rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = sweep_row(c, r, i, e);
    PQclear(r);
    return rc == 0 ? n : -1;
}

/* The first start with a key: every row written before it is listed for the sweep (one scan). */
static int list_all_unsealed(struct db_conn *c, struct err *e)
{
    return db_run(c, &list_all_stmt, 0, NULL, e);
}
