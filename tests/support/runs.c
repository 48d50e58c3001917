#include "runs.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

void run_fill(const struct svc *s, const char *prefix, int n, int max_attempts, int groups)
{
    for (int start = 0; start < n; start += 1000) {
        int end = start + 1000 < n ? start + 1000 : n;
        char *body = malloc((size_t)(end - start) * 200 + 64);
        size_t o = (size_t)sprintf(body, "{\"operations\":[");
        for (int i = start; i < end; i++) {
            char group[48] = "";
            if (groups > 0)
                snprintf(group, sizeof(group), ",\"group_key\":\"g%d\"", i % groups);
            o += (size_t)sprintf(body + o,
                                 "%s{\"operation_type\":\"api_call\",\"payload\":{\"endpoint\":"
                                 "\"%s%d\"},\"max_attempts\":%d%s}",
                                 i > start ? "," : "", prefix, i, max_attempts, group);
        }
        sprintf(body + o, "]}");
        struct resp *r = th_json(s, "POST", "/api/offline/queue/batch", body);
        assert_int_equal(r->status, 201);
        th_resp_free(r);
        free(body);
    }
}

int run_count_where(PGconn *pg, const char *cond)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM offline_operations WHERE %s", cond);
    return atoi(th_sql(pg, sql));
}

void run_wait_settled(PGconn *pg, int n, int timeout_ms)
{
    double until = th_now_ms() + timeout_ms;
    while (run_count_where(pg, "status IN ('completed', 'failed')") < n && th_now_ms() < until)
        usleep(50000);
}

/* The index i of a path prefix<i>, or -1. */
static int index_of(const char *path, const char *prefix, int n)
{
    size_t len = strlen(prefix);
    if (strncmp(path, prefix, len) != 0)
        return -1;
    char *end;
    long k = strtol(path + len, &end, 10);
    return end != path + len && *end == '\0' && k >= 0 && k < n ? (int)k : -1;
}

void run_check_deliveries(struct upstream_srv *us, PGconn *pg, const char *prefix, int n,
                          bool per_attempt, struct run_check *out)
{
    int count;
    struct us_req *r = us_requests(us, &count);
    int *seen = calloc((size_t)n, sizeof(int));
    char(*key)[64] = calloc((size_t)n, 64);
    *out = (struct run_check){0};
    for (int i = 0; i < count; i++) {
        int k = index_of(r[i].path, prefix, n);
        if (k < 0)
            continue;
        const char *idem = us_header(&r[i], "idempotency-key");
        assert_non_null(idem);
        if (seen[k]++ == 0)
            snprintf(key[k], 64, "%s", idem);
        else
            assert_string_equal(idem, key[k]);
        out->failed_arrivals += r[i].status < 200 || r[i].status >= 300;
    }
    us_free_reqs(r, count);
    PGresult *res = PQexec(pg, "SELECT payload->>'endpoint', id::text, status, "
                               "  retry_count + lease_expiries FROM offline_operations");
    assert_int_equal(PQntuples(res), n);
    for (int i = 0; i < n; i++) {
        int k = index_of(PQgetvalue(res, i, 0), prefix, n);
        assert_true(k >= 0);
        if (seen[k] == 0 || (per_attempt && seen[k] > atoi(PQgetvalue(res, i, 3)) + 1) ||
            strcmp(key[k], PQgetvalue(res, i, 1)) != 0 ||
            strcmp(PQgetvalue(res, i, 2), "completed") != 0)
            fail_msg("%s%d: %d arrivals, key %s, operation %s %s retry_count %s", prefix, k,
                     seen[k], key[k], PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                     PQgetvalue(res, i, 3));
        out->duplicates += seen[k] - 1;
    }
    PQclear(res);
    free(seen);
    free(key);
}
