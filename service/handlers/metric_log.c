/* metric_log: metrics of a run, batched per upstream and endpoint on delivery. */
#include <stdio.h>

#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonload.h"
#include "core/jsontext.h"
#include "core/validate.h"
#include "delivery/exec_common.h"
#include "delivery/outbound.h"
#include "delivery/target.h"
#include "handlers/handlers.h"

static const struct field_rule rules[] = {
    {.name = "run_id", .type = V_STRING, .required = true, .min = 1, .max = 200},
    {.name = "step", .type = V_INT, .min = 0, .max = 9007199254740991LL},
    {.name = "metrics", .type = V_OBJECT, .required = true},
    RULE_ENDPOINT(false),
    RULE_UPSTREAM,
    {.name = NULL},
};

int metric_log_validate(const json_t *payload, const struct config *cfg, struct err *e)
{
    if (validate_object(payload, rules, true, e) != 0)
        return -1;
    const json_t *metrics = json_object_get(payload, "metrics");
    if (json_object_size(metrics) == 0)
        return err_field(e, ERR_INVALID_REQUEST, "metrics", "metrics must not be empty");
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)metrics, name, v)
    {
        if (!jsonnum_is(v)) {
            char field[160];
            snprintf(field, sizeof(field), "metrics.%s", name);
            return err_field(e, ERR_INVALID_REQUEST, field, "metric values must be numbers");
        }
    }
    return target_validate(payload, cfg, e);
}

/* Bytes of the digest a batch key shows (in hex): 128 bits, as many as a UUID's. */
#define BATCH_KEY_BYTES 16

/* The idempotency key of a batch: its one operation's id, or a digest of all the ids, so that
 * a re-sent batch of the same operations carries the same key. */
static void batch_key(const struct job *jobs, size_t n, char *out, size_t len)
{
    if (n == 1) {
        snprintf(out, len, "%s", jobs[0].id);
        return;
    }
    unsigned char d[SHA256_DIGEST_LENGTH];
    char *ids = oq_malloc(n * OQ_UUID_LEN);
    for (size_t i = 0; i < n; i++)
        memcpy(ids + i * OQ_UUID_LEN, jobs[i].id, OQ_UUID_LEN);
    SHA256((const unsigned char *)ids, n * OQ_UUID_LEN, d);
    free(ids);
    size_t o = (size_t)snprintf(out, len, "batch-");
    for (size_t i = 0; i < BATCH_KEY_BYTES && o + 2 < len; i++)
        o += (size_t)snprintf(out + o, len - o, "%02x", d[i]);
}

/* One POST of a JSON array of the payloads, in enqueue order. */
void metric_log_execute_batch(struct exec_ctx *ctx, const struct job *jobs, size_t n,
                              struct exec_result *res)
{
    const struct upstream *u = exec_upstream(ctx->cfg, jobs[0].payload, res);
    if (u == NULL)
        return;
    json_t *array = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append(array, jobs[i].payload);
    char *body = jsontext(array);
    json_decref(array);
    char key[80];
    batch_key(jobs, n, key, sizeof(key));
    struct out_request rq = {.u = u,
                             .method = "POST",
                             .endpoint = validate_str(jobs[0].payload, "endpoint", "/metrics"),
                             .body = body,
                             .body_len = strlen(body),
                             .content_type = "application/json",
                             .idempotency_key = key,
                             .traceparent = jobs[0].traceparent, /* a batch joins its first's */
                             .tracestate = jobs[0].tracestate};
    deliver(ctx, &rq, res);
    free(body);
}
