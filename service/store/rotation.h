/* Key rotation (OFFLINEQ_ENCRYPTION_KEY_PREVIOUS): what the previous key sealed is sealed again
 * with OFFLINEQ_ENCRYPTION_KEY, a batch at a time, in this order: operations (payload, result,
 * resolution), stored files (chunk by chunk; one sealed whole before 007 as a whole),
 * Idempotency-Key answers, and last the check value. Once the check value opens with the key,
 * the database no longer needs the previous one. One instance works at a time (a
 * transaction-level advisory lock), from where the last batch stopped (the cursor is the
 * settings row key_rotation, written in the batch's transaction), so several instances,
 * restarts and crashes share one pass. Each value is written only while it is still what was
 * read (compare-and-set), so a delivery's write in between wins. */
#ifndef OQ_ROTATION_H
#define OQ_ROTATION_H

#include <stdbool.h>

#include "store/db.h"

enum rotation_phase {
    ROTATION_OPERATIONS,
    ROTATION_FILES,
    ROTATION_ANSWERS,
    ROTATION_CHECK,
    ROTATION_DONE
};

struct rotation_step {
    enum rotation_phase phase; /* where the step was */
    long long scanned;         /* rows (files) looked at */
    long long resealed;        /* values sealed again */
    bool is_busy;              /* another instance holds the rotation: nothing was done */
};

/* One batch. Returns 0 (out says what happened; phase ROTATION_DONE: the rotation is over), or
 * -1 with *e (nothing of the batch is kept). Encryption with a previous key must be on. */
int rotation_run(struct db_conn *c, struct rotation_step *out, struct err *e);

/* At start-up with the previous key still needed: a pass that finished belongs to an earlier
 * rotation, so this one starts over from the first phase. */
int rotation_begin(struct db_conn *c, struct err *e) OQ_MUSTCHECK;

/* The name of a phase, for the log. */
const char *rotation_phase_name(enum rotation_phase p);

#endif
