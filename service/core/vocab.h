/* The service's vocabularies, each spelled once as an X-macro list (as err.h does for errors):
 * operation statuses and conflict strategies. Code compares enums, never names. */
#ifndef OQ_VOCAB_H
#define OQ_VOCAB_H

#include <stdbool.h>

/* The first status, named once: the SQL list below closes with it. */
#define OQ_STATUS_PENDING_NAME "pending"

/* X(enum, name, is_live): a live operation still holds a place in the queue. */
#define OQ_OP_STATUSES(X)                                                                          \
    X(OP_PENDING, OQ_STATUS_PENDING_NAME, true)                                                    \
    X(OP_IN_PROGRESS, "in_progress", true)                                                         \
    X(OP_COMPLETED, "completed", false)                                                            \
    X(OP_FAILED, "failed", false)                                                                  \
    X(OP_CONFLICT, "conflict", true)

/* X(enum, name): how a 409/412 from the upstream is settled. */
#define OQ_STRATEGIES(X)                                                                           \
    X(STRATEGY_LOCAL_WINS, "local_wins")                                                           \
    X(STRATEGY_REMOTE_WINS, "remote_wins")                                                         \
    X(STRATEGY_LAST_WRITE_WINS, "last_write_wins")                                                 \
    X(STRATEGY_MERGE, "merge")                                                                     \
    X(STRATEGY_MANUAL, "manual")

#define OQ_VOCAB_ENUM2(e, name) e,
#define OQ_VOCAB_ENUM3(e, name, live) e,
enum op_status { OQ_OP_STATUSES(OQ_VOCAB_ENUM3) OP_N_STATUSES };
enum strategy { OQ_STRATEGIES(OQ_VOCAB_ENUM2) STRATEGY_N };

/* The live statuses as an SQL list, "('pending', 'in_progress', 'conflict', 'pending')", built
 * from the table by the preprocessor so SQL text and C agree. Every live name is followed by a
 * comma and the first status closes the list: a repeated element changes nothing for IN or
 * NOT IN, and every element being live keeps the planner able to prove the partial indexes of
 * migration 001 (WHERE status IN ('pending', 'in_progress', 'conflict')) usable; a sentinel such
 * as '' would not. */
#define OQ_VOCAB_SQL_LIVE(e, name, live) OQ_VOCAB_SQL_LIVE_##live(name)
#define OQ_VOCAB_SQL_LIVE_true(name) "'" name "', "
#define OQ_VOCAB_SQL_LIVE_false(name)
#define OQ_SQL_LIVE_STATUSES "(" OQ_OP_STATUSES(OQ_VOCAB_SQL_LIVE) "'" OQ_STATUS_PENDING_NAME "')"

/* The name of a status or strategy (static storage). */
const char *op_status_name(enum op_status s);
const char *strategy_name(enum strategy s);

/* Parses a name; returns 0 and sets *out, or -1 when name is not in the list. */
int op_status_parse(const char *name, enum op_status *out);
int strategy_parse(const char *name, enum strategy *out);

/* The names, NULL-terminated (for "expected one of" messages and the validators). */
extern const char *const op_status_names[];
extern const char *const strategy_names[];

#endif
