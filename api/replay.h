/* Idempotency-Key (draft-ietf-httpapi-idempotency-key-header) on the enqueue routes: the key
 * and its scope from a request, the transaction that finds or stores the first answer
 * (store/idempotency.h), and the answer as sent, first or replayed. */
#ifndef OQ_REPLAY_H
#define OQ_REPLAY_H

#include "api/http.h"
#include "store/idempotency.h"

/* Seconds a 409 idempotency_key_in_use asks the client to wait before it tries again. */
#define REPLAY_RETRY_AFTER_S "1"

/* The Idempotency-Key of r for route ("queue", "batch"), scoped to the caller's API key, and
 * the digest of r's body, into *k. Returns 1 (a key), 0 (no header), or -1 with *e: 400
 * invalid_request when it is not 1 to 255 printable ASCII characters (a Structured Fields
 * string, "quoted", is taken without its quotes). */
int replay_key(struct request *r, const char *route, struct idem_key *k, struct err *e);

/* Checks a connection out into *c and begins k's transaction on it. Returns 0 with *replayed
 * true when k's stored answer was sent (*c is then given back and NULL), 0 with *replayed false
 * when the caller goes on to enqueue on *c, or -1 with *e (a 409 carries Retry-After). */
int replay_begin(struct request *r, const struct idem_key *k, struct db_conn **c, bool *replayed,
                 struct err *e) OQ_MUSTCHECK;

/* Sends a as an enqueue's answer (Location and Preference-Applied when it has them, and
 * Idempotent-Replayed: true for a replay); a's strings are freed. */
int replay_send(struct request *r, struct idem_answer *a, bool replayed);

#endif
