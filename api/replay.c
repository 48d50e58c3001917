#include "api/replay.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "api/reply.h"
#include "app.h"

static void hex(const unsigned char *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* "queue:<caller>": the caller is a digest of its API key's digest (16 bytes of it, as hex;
 * never the digest that authenticates), or "-" without keys (every caller is the same one). */
static void scope_of(const struct request *r, const char *route, char *out, size_t len)
{
    char caller[33] = "-";
    if (r->api_key != NULL) {
        static const char label[] = "offlineq idempotency scope:";
        unsigned char text[sizeof(label) - 1 + sizeof(r->api_key->key_sha256)];
        unsigned char d[SHA256_DIGEST_LENGTH];
        memcpy(text, label, sizeof(label) - 1);
        memcpy(text + sizeof(label) - 1, r->api_key->key_sha256, sizeof(r->api_key->key_sha256));
        SHA256(text, sizeof(text), d);
        hex(d, 16, caller);
    }
    snprintf(out, len, "%s:%s", route, caller);
}

/* The key from the header's value: a bare token (as Stripe's clients send it) or a quoted
 * Structured Fields string (the draft's form), the same key either way. A quoted one may not
 * hold '"' or '\\' (an escape would make two spellings of one key). */
static int take_key(const char *v, char *out, struct err *e)
{
    size_t n = strlen(v);
    bool quoted = n >= 2 && v[0] == '"' && v[n - 1] == '"';
    if (quoted) {
        v++;
        n -= 2;
    }
    bool ok = n >= 1 && n <= IDEMPOTENCY_KEY_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = v[i] >= 0x20 && v[i] <= 0x7e && !(quoted && (v[i] == '"' || v[i] == '\\'));
    if (!ok)
        return err_set(e, ERR_INVALID_REQUEST,
                       "Idempotency-Key must be 1 to %d printable ASCII characters",
                       IDEMPOTENCY_KEY_MAX);
    memcpy(out, v, n);
    out[n] = '\0';
    return 0;
}

int replay_key(struct request *r, const char *route, struct idem_key *k, struct err *e)
{
    const char *v = http_header(r, "Idempotency-Key");
    if (v == NULL)
        return 0;
    if (take_key(v, k->key, e) != 0)
        return -1;
    scope_of(r, route, k->scope, sizeof(k->scope));
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)(r->body.data ? r->body.data : ""), r->body.len, d);
    hex(d, sizeof(d), k->request_sha256);
    k->ttl_s = r->app->cfg.idempotency_ttl_s;
    return 1;
}

int replay_begin(struct request *r, const struct idem_key *k, struct db_conn **c, bool *replayed,
                 struct err *e)
{
    *replayed = false;
    *c = db_acquire(&r->app->db, e);
    if (*c == NULL)
        return -1;
    struct idem_answer found;
    if (idempotency_begin(*c, k, &found, e) != 0) {
        if (e->code == ERR_IDEMPOTENCY_KEY_IN_USE)
            reply_header(r, "Retry-After", REPLAY_RETRY_AFTER_S);
        return -1; /* the caller's db_release rolls back */
    }
    if (found.status == 0)
        return 0;
    db_release(&r->app->db, *c);
    *c = NULL;
    *replayed = true;
    replay_send(r, &found, true);
    return 0;
}

int replay_send(struct request *r, struct idem_answer *a, bool replayed)
{
    if (a->location != NULL)
        reply_header(r, "Location", a->location);
    if (a->preference_applied != NULL)
        reply_header(r, "Preference-Applied", a->preference_applied);
    if (replayed)
        reply_header(r, "Idempotent-Replayed", "true");
    char *body = a->body;
    a->body = NULL;
    int rc = reply_json_text(r, a->status, body);
    idempotency_answer_free(a);
    return rc;
}
