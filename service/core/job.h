/* A claimed operation and the outcome of one attempt at it: the data that the store hands to
 * the engine and the engine hands to a handler. No I/O here. */
#ifndef OQ_JOB_H
#define OQ_JOB_H

#include <jansson.h>
#include <stdbool.h>

#include "core/trace.h"

/* A claimed operation, as a handler sees it. */
struct job {
    char id[37];
    char operation_type[64];
    json_t *payload; /* owned */
    int retry_count; /* failed attempts so far */
    int max_attempts;
    char file_id[37];           /* "" when none */
    char conflict_strategy[32]; /* "" : the global one */
    json_t *resolution;         /* owned: an operator's choice for a conflict, or NULL */
    double created_s;           /* when it was enqueued, seconds since the epoch */
    char traceparent[TRACE_PARENT_LEN + 1]; /* the enqueue's, "" for a row stored without one */
    char tracestate[TRACE_STATE_MAX + 1];
    int attempts_before; /* attempts on record before this one (lease expiries included) */
    bool unreadable;     /* the stored payload could not be decrypted: payload is {} */
};

enum outcome {
    OUTCOME_COMPLETED, /* done: result stored */
    OUTCOME_RETRY,     /* transient failure: one attempt used, try again after a backoff */
    OUTCOME_FAILED,    /* permanent failure: no retry */
    OUTCOME_CONFLICT,  /* the upstream answered 409/412 */
    OUTCOME_RELEASE,   /* not attempted (breaker open, shutting down): no attempt used */
};

/* What an attempt leaves on record besides its outcome (GET /queue/{id}/attempts). */
#define ATTEMPT_EXCERPT_MAX 1024
struct attempt_info {
    bool made;            /* a request was tried: recorded as an attempt */
    const char *upstream; /* borrowed (the config's): the upstream tried; NULL: none */
    bool reached;         /* the request was sent: it counts, whatever a check finds after */
    bool interrupted;     /* shutdown stopped it mid-request */
    long status_code;     /* the upstream's answer, 0: none */
    char started_at[32];  /* RFC 3339, UTC, milliseconds */
    double duration_ms;
    char excerpt[ATTEMPT_EXCERPT_MAX + 1]; /* the answer's first bytes, valid UTF-8 */
    const char *breaker_event; /* "upstream.breaker_opened|closed" when it changed; else NULL */
    int breaker_cooldown_s;    /* of the upstream, when breaker_event says opened */
    double hold_s;             /* a Retry-After held the upstream this long (> 0) */
};

struct exec_result {
    enum outcome outcome;
    char error[512];
    json_t *result; /* owned, may be NULL: stored as the operation's result */
    double delay_s; /* RETRY: Retry-After (< 0: backoff decides); RELEASE: look again in */
    bool is_connect_error;
    struct attempt_info attempt;
};

/* The attempt's outcome as the record names it (succeeded, retry, failed, conflict,
 * released_offline, interrupted); NULL when no request was made. */
const char *attempt_outcome(const struct exec_result *res);

/* Copies the first ATTEMPT_EXCERPT_MAX bytes of body into out, cut at a UTF-8 boundary, with
 * bytes that are not UTF-8 (and NUL) as U+FFFD. */
void attempt_excerpt(char out[ATTEMPT_EXCERPT_MAX + 1], const char *body, size_t len);

#endif
