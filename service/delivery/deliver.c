/* From an HTTP answer to an outcome: the rules every handler shares. */
#include "delivery/deliver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonload.h"
#include "core/jsontext.h"
#include "delivery/exec_common.h"
#include "delivery/outbound.h"
#include "delivery/policy.h"

#define RESULT_TEXT_MAX 4096 /* bytes of a non-JSON answer body kept in the result */
/* Seconds before an operation whose body could not be read (a stored file, the database away)
 * is looked at again; no attempt is used. */
#define BODY_RETRY_S 1
/* Bytes a UTF-8 character may take: a cut at RESULT_TEXT_MAX may split one. */
#define UTF8_CHAR_MAX 4

/* The body as JSON when it is JSON, else its first 4 KiB as a string (valid UTF-8 kept,
 * other bytes shown as '?'). */
static json_t *body_value(const struct out_response *rs)
{
    if (rs->body_len == 0)
        return json_null();
    struct err e = {0};
    json_t *j = jsonload(rs->body, rs->body_len, JSONLOAD_DEEP, &e);
    if (j != NULL)
        return j;
    size_t n = rs->body_len < RESULT_TEXT_MAX ? rs->body_len : RESULT_TEXT_MAX;
    /* A NUL byte can be kept neither by jsonb (\u0000) nor here: a string starting with one
     * would read as a number marker (jsonload.h). Such bodies take the sanitised path. */
    bool has_nul = memchr(rs->body, '\0', n) != NULL;
    for (size_t cut = 0; !has_nul && cut < UTF8_CHAR_MAX && n > cut; cut++) {
        j = json_stringn(rs->body, n - cut); /* maybe a character split at the limit */
        if (j != NULL)
            return j;
    }
    char text[RESULT_TEXT_MAX];
    for (size_t i = 0; i < n; i++)
        text[i] = (unsigned char)rs->body[i] < 0x80 && rs->body[i] != '\0' ? rs->body[i] : '?';
    return json_stringn(text, n);
}

static json_t *result_of(const struct out_response *rs)
{
    json_t *r = json_pack("{s:i, s:o}", "status_code", (int)rs->status, "body", body_value(rs));
    if (rs->etag[0])
        json_object_set_new(r, "etag", json_string(rs->etag));
    if (rs->last_modified[0])
        json_object_set_new(r, "last_modified", json_string(rs->last_modified));
    return r;
}

static bool is_transient(long status)
{
    return status == 408 || status == 425 || status == 429 || status >= 500;
}

static void classify(struct exec_ctx *ctx, const struct out_response *rs, struct exec_result *res)
{
    if (rs->status == 0) {
        bool aborted = ctx->abort_outbound != NULL && atomic_load(ctx->abort_outbound);
        res->outcome = aborted ? OUTCOME_RELEASE : OUTCOME_RETRY;
        res->is_connect_error = rs->is_connect_error;
        res->delay_s = aborted ? 0 : -1;
        snprintf(res->error, sizeof(res->error), "%s: %s",
                 aborted ? "interrupted by shutdown" : "request failed", rs->error);
        return;
    }
    res->result = result_of(rs);
    if (rs->status >= 200 && rs->status < 300) {
        res->outcome = OUTCOME_COMPLETED;
    } else if (is_transient(rs->status)) {
        res->outcome = OUTCOME_RETRY;
        res->delay_s = rs->retry_after_s;
        snprintf(res->error, sizeof(res->error), "HTTP %ld from the upstream", rs->status);
    } else if (rs->status == 409 || rs->status == 412) {
        res->outcome = OUTCOME_CONFLICT;
        snprintf(res->error, sizeof(res->error), "HTTP %ld: conflict with the upstream's state",
                 rs->status);
    } else if (rs->status >= 300 && rs->status < 400) {
        exec_fail(res, "HTTP %ld: %s", rs->status,
                  rs->error[0] ? rs->error : "redirect not followed");
    } else {
        exec_fail(res, "HTTP %ld from the upstream (permanent)", rs->status);
    }
}

/* What the attempt leaves on record: the last request of it, when there are several. */
static void note_attempt(const struct exec_ctx *ctx, const struct out_response *rs,
                         struct exec_result *res)
{
    struct attempt_info *a = &res->attempt;
    a->made = true;
    a->reached = a->reached || rs->reached;
    a->interrupted =
        rs->status == 0 && ctx->abort_outbound != NULL && atomic_load(ctx->abort_outbound);
    a->status_code = rs->status;
    attempt_excerpt(a->excerpt, rs->body, rs->body_len);
}

/* Why a request was not sent, for each refusal of policy_enter; none uses an attempt. */
static const struct refusal_text {
    enum admit how;
    const char *why; /* after "upstream NAME " */
} refusal_texts[] = {
    {ADMIT_PAUSED, "is paused"},
    {ADMIT_BREAKER_OPEN, "has its circuit breaker open"},
    {ADMIT_HELD, "asked to wait (Retry-After)"},
    {ADMIT_NO_PART, "is at its limits: the other instances hold all of them now"},
};

static void refuse(enum admit how, double retry_in, const struct upstream *u,
                   struct exec_result *res)
{
    res->outcome = OUTCOME_RELEASE;
    /* paused: the claim skips it until the resume; the second is for a name the claim's
     * filter had no room for */
    res->delay_s = how == ADMIT_PAUSED ? 1 : retry_in;
    for (size_t i = 0; i < OQ_ARRAY_LEN(refusal_texts); i++) {
        if (refusal_texts[i].how == how)
            snprintf(res->error, sizeof(res->error), "upstream %s %s", u->name,
                     refusal_texts[i].why);
    }
}

void deliver(struct exec_ctx *ctx, struct out_request *rq, struct exec_result *res)
{
    double retry_in = 0;
    res->attempt.upstream = rq->u->name; /* the metrics' upstream label */
    enum admit how = policy_enter(ctx->policy, rq->u, &retry_in);
    if (how != ADMIT_OK && how != ADMIT_PROBE) {
        refuse(how, retry_in, rq->u, res);
        return;
    }
    struct out_response rs;
    double t0 = oq_now_ms();
    outbound_send(ctx->out, rq, &rs);
    bool slow_down = rs.status == 429 || rs.status == 503;
    struct policy_sample sample = {
        .reached_upstream = !rs.is_body_error, /* a stored file failed: not the upstream's doing */
        .is_failure =
            !rs.is_body_error && (rs.status == 0 ? rs.is_connect_error : rs.status >= 500),
        .is_success = rs.status >= 200 && rs.status < 300,
        .is_overload = slow_down || rs.is_timeout,
        .retry_after_s = slow_down ? rs.retry_after_s : -1,
        .duration_ms = oq_now_ms() - t0,
    };
    enum breaker_change change = policy_leave(ctx->policy, rq->u, how, &sample);
    if (change != BREAKER_UNCHANGED)
        res->attempt.breaker_event =
            change == BREAKER_OPENED ? "upstream.breaker_opened" : "upstream.breaker_closed";
    res->attempt.breaker_cooldown_s = rq->u->breaker_cooldown_s;
    res->attempt.hold_s = policy_hold_s(sample.retry_after_s);
    if (rs.is_body_error) {
        res->outcome = OUTCOME_RELEASE;
        res->delay_s = BODY_RETRY_S;
        snprintf(res->error, sizeof(res->error), "%s", rs.error);
        outbound_response_free(&rs);
        return;
    }
    classify(ctx, &rs, res);
    note_attempt(ctx, &rs, res);
    if (rs.status == 0 && rs.is_connect_error && !rs.reached && res->outcome == OUTCOME_RETRY) {
        /* Is the network down, or only this upstream? Check now: offline costs no attempt. A
         * request that went out counts, whatever the check finds: the upstream may have acted. */
        if (ctx->recheck_online != NULL && !ctx->recheck_online(ctx->recheck_arg)) {
            res->outcome = OUTCOME_RELEASE;
            res->delay_s = 0;
            snprintf(res->error, sizeof(res->error), "offline: %s", rs.error);
        }
    }
    outbound_response_free(&rs);
}

void deliver_json(struct exec_ctx *ctx, const struct json_request *jr, struct exec_result *res)
{
    char *body = jr->doc ? jsontext(jr->doc) : NULL;
    struct out_request rq = {.u = jr->u,
                             .method = jr->method,
                             .endpoint = jr->endpoint,
                             .headers = (const char *const *)jr->lines,
                             .body = body,
                             .body_len = body ? strlen(body) : 0,
                             .content_type = "application/json",
                             .idempotency_key = jr->job_id,
                             .traceparent = jr->traceparent,
                             .tracestate = jr->tracestate};
    deliver(ctx, &rq, res);
    free(body);
}
