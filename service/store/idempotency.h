/* Idempotency-Key: the stored first answers of enqueues (migration 010). A request with a key
 * runs in one transaction on its connection: idempotency_begin opens it and takes the key's
 * advisory lock, then either finds the live answer (a replay, the transaction ended) or leaves
 * the transaction open for the enqueue, which idempotency_commit ends by storing its answer.
 * Any failure in between is undone by the ROLLBACK of db_release: nothing is half written. */
#ifndef OQ_IDEMPOTENCY_H
#define OQ_IDEMPOTENCY_H

#include "store/db.h"

#define IDEMPOTENCY_KEY_MAX 255

struct idem_key {
    char scope[65];                    /* the route and the caller: "queue:<caller>" */
    char key[IDEMPOTENCY_KEY_MAX + 1]; /* the client's key, checked by the caller */
    char request_sha256[65];           /* hex digest of what makes the request (the body) */
    int ttl_s;                         /* OFFLINEQ_IDEMPOTENCY_TTL_S */
};

/* The name a sealed answer of k is bound to: the hex digest of scope and key (a key may be
 * longer than a binding holds). */
void idempotency_row_name(const struct idem_key *k, char out[65]);

/* An answer as stored and replayed; every string owned (free with idempotency_answer_free). */
struct idem_answer {
    unsigned status;          /* 0: none */
    char *body;               /* JSON text */
    char *location;           /* may be NULL */
    char *preference_applied; /* may be NULL */
};

void idempotency_answer_free(struct idem_answer *a);

/* BEGIN, then the key's lock. Returns 0 with found->status 0 (no live answer: the transaction
 * stays open, the caller enqueues on c and calls idempotency_commit), or 0 with *found the
 * stored answer (its body opened; the transaction is over). -1 with *e:
 * ERR_IDEMPOTENCY_KEY_IN_USE (another transaction holds the lock), ERR_IDEMPOTENCY_KEY_REUSED
 * (the live answer is for another request), or the database's error. */
int idempotency_begin(struct db_conn *c, const struct idem_key *k, struct idem_answer *found,
                      struct err *e) OQ_MUSTCHECK;

/* Stores a (borrowed) as the key's answer, replacing an expired one, and commits. */
int idempotency_commit(struct db_conn *c, const struct idem_key *k, const struct idem_answer *a,
                       struct err *e) OQ_MUSTCHECK;

/* Deletes up to batch answers older than ttl_s, oldest first, skipping locked rows. Returns how
 * many, or -1 with *e. */
long long idempotency_expire(struct db_conn *c, int ttl_s, int batch, struct err *e);

#endif
