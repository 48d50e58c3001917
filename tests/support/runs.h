/* Helpers for tests that push many operations through the service to the test upstream and
 * then check what arrived (crash and fault suites). Operations are api_calls to PREFIX<i>. */
#ifndef OQ_TEST_RUNS_H
#define OQ_TEST_RUNS_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "harness.h"
#include "upstream.h"

/* Enqueues n api_calls to prefix<i> through s in batches of 1000 (group g<i % groups> when
 * groups > 0). */
void run_fill(const struct svc *s, const char *prefix, int n, int max_attempts, int groups);

/* SELECT count(*) FROM offline_operations WHERE cond */
int run_count_where(PGconn *pg, const char *cond);

/* Waits up to timeout_ms until n operations are completed or failed. */
void run_wait_settled(PGconn *pg, int n, int timeout_ms);

struct run_check {
    int duplicates;      /* arrivals beyond the first */
    int failed_arrivals; /* answered other than 2xx, or dropped */
};

/* Every prefix<i> (i < n) arrived at least once, always with the same Idempotency-Key, which is
 * the id of a completed operation; with per_attempt, at most retry_count + lease_expiries + 1
 * times (each attempt once, and once more for each lease that ran out). (A request the upstream
 * dropped just as the network went down is released, not counted as an attempt: under a flapping
 * network an arrival can outnumber the attempts.) */
void run_check_deliveries(struct upstream_srv *us, PGconn *pg, const char *prefix, int n,
                          bool per_attempt, struct run_check *out);

#endif
