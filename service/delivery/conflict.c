#include "delivery/conflict.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/jsontext.h"
#include "core/log.h"
#include "core/time.h"
#include "core/validate.h"
#include "delivery/exec_common.h"
#include "delivery/outbound.h"
#include "delivery/target.h"

json_t *conflict_merge_patch(const json_t *target, const json_t *patch)
{
    if (!json_is_object(patch))
        return json_deep_copy(patch);
    json_t *out = json_is_object(target) ? json_deep_copy(target) : json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v)
    {
        if (json_is_null(v)) {
            json_object_del(out, k);
        } else {
            json_t *merged = conflict_merge_patch(json_object_get(out, k), v);
            json_object_set_new(out, k, merged);
        }
    }
    return out;
}

static bool same(const json_t *a, const json_t *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && json_equal(a, b));
}

/* One key of a three-way merge; NULL means "absent". */
static json_t *merge_value(const json_t *b, const json_t *l, const json_t *r)
{
    if (same(l, b))
        return r ? json_deep_copy(r) : NULL; /* unchanged here: theirs */
    if (same(r, b) || same(l, r))
        return l ? json_deep_copy(l) : NULL; /* changed only here */
    if (json_is_object(l) && json_is_object(r))
        return conflict_merge3(json_is_object(b) ? b : NULL, l, r);
    return l ? json_deep_copy(l) : NULL; /* changed on both sides: ours */
}

json_t *conflict_merge3(const json_t *base, const json_t *local, const json_t *remote)
{
    json_t *out = json_object();
    const json_t *sides[] = {base, local, remote};
    for (int s = 0; s < 3; s++) {
        const char *k;
        json_t *ignored;
        json_object_foreach((json_t *)sides[s], k, ignored)
        {
            if (json_object_get(out, k) != NULL)
                continue;
            json_t *v = merge_value(json_object_get(base, k), json_object_get(local, k),
                                    json_object_get(remote, k));
            if (v != NULL) /* absent: deleted on the side that changed it */
                json_object_set_new(out, k, v);
        }
    }
    return out;
}

/* One conflict being resolved: what every round needs (all borrowed). */
struct conflict {
    struct exec_ctx *ctx;
    const struct job *job;
    const char *default_method; /* the handler's method when the payload names none */
};

/* Sends doc (NULL: no body) as the operation's change, with If-Match when etag is set. */
static void send_doc(const struct conflict *k, const json_t *doc, const char *etag,
                     struct exec_result *res)
{
    const json_t *p = k->job->payload;
    const struct upstream *u = exec_upstream(k->ctx->cfg, p, res);
    if (u == NULL)
        return;
    json_t *headers = json_copy(json_object_get(p, "headers"));
    json_t *shaped = json_pack("{s:o}", "headers", headers ? headers : json_object());
    if (etag != NULL && etag[0])
        json_object_set_new(shaped, "if_match", json_string(etag));
    char **lines = exec_header_lines(shaped);
    json_decref(shaped);
    struct json_request jr = {.u = u,
                              .method = validate_str(p, "method", k->default_method),
                              .endpoint = validate_str(p, "endpoint", "/"),
                              .lines = lines,
                              .doc = doc,
                              .job_id = k->job->id,
                              .traceparent = k->job->traceparent,
                              .tracestate = k->job->tracestate};
    deliver_json(k->ctx, &jr, res);
    exec_free_lines(lines);
}

/* Reads the remote state: GET of the same endpoint. A 404 is a state too (nothing there). */
static int fetch_remote(const struct conflict *k, struct exec_result *got)
{
    const json_t *p = k->job->payload;
    const struct upstream *u = target_upstream(k->ctx->cfg, p);
    if (u == NULL) {
        exec_fail(got, "upstream is no longer configured");
        return -1;
    }
    struct out_request rq = {.u = u,
                             .method = "GET",
                             .endpoint = validate_str(p, "endpoint", "/"),
                             .idempotency_key = k->job->id,
                             .traceparent = k->job->traceparent,
                             .tracestate = k->job->tracestate};
    deliver(k->ctx, &rq, got);
    long status = json_integer_value(json_object_get(got->result, "status_code"));
    if (got->outcome == OUTCOME_COMPLETED || status == 404)
        return 0;
    return -1;
}

/* Is the local change newer than the remote state? Unknown remote time: the local one is. */
static bool local_is_newer(const struct job *job, const json_t *remote, const char *last_modified)
{
    double local_t = 0, remote_t = 0;
    const char *mod = validate_str(job->payload, "modified_at", NULL);
    if (mod == NULL || time_parse_rfc3339(mod, &local_t) != 0)
        local_t = job->created_s;
    bool known = false;
    if (last_modified != NULL && last_modified[0]) {
        time_t t = curl_getdate(last_modified, NULL); /* an HTTP date: parsing only, no I/O */
        if (t > 0) {
            remote_t = (double)t;
            known = true;
        }
    }
    if (!known && time_parse_rfc3339(json_string_value(json_object_get(remote, "updated_at")),
                                     &remote_t) == 0)
        known = true;
    return !known || local_t >= remote_t;
}

static void finish_without_send(struct exec_result *res, const char *resolution, json_t *remote,
                                long status)
{
    json_decref(res->result);
    res->result = json_pack("{s:i, s:s, s:O}", "status_code", (int)status, "resolution", resolution,
                            "remote", remote ? remote : json_null());
    res->outcome = OUTCOME_COMPLETED;
    res->error[0] = '\0';
}

static void park(struct exec_result *res, json_t *remote, const char *etag, long status,
                 const char *resolution, const char *why)
{
    json_decref(res->result);
    res->result = json_pack("{s:i, s:s, s:O, s:s?}", "status_code", (int)status, "resolution",
                            resolution, "remote", remote ? remote : json_null(), "remote_etag",
                            etag && etag[0] ? etag : NULL);
    res->outcome = OUTCOME_CONFLICT;
    snprintf(res->error, sizeof(res->error), "%s", why);
}

/* The document to send for strategy, or NULL with *res finished (remote wins). */
static json_t *decide(enum strategy strategy, const struct job *job, json_t *remote,
                      const char *last_modified, long status, struct exec_result *res)
{
    const json_t *local = json_object_get(job->payload, "data");
    bool is_lww = strategy == STRATEGY_LAST_WRITE_WINS;
    if (strategy == STRATEGY_REMOTE_WINS ||
        (is_lww && !local_is_newer(job, remote, last_modified))) {
        finish_without_send(res, strategy_name(strategy), remote, status);
        if (is_lww)
            json_object_set_new(res->result, "winner", json_string("remote"));
        return NULL;
    }
    if (strategy == STRATEGY_MERGE && json_is_object(local) && json_is_object(remote)) {
        const json_t *base = json_object_get(job->payload, "base");
        return json_is_object(base) ? conflict_merge3(base, local, remote)
                                    : conflict_merge_patch(remote, local);
    }
    return local ? json_deep_copy(local) : NULL; /* local_wins, last_write_wins (local newer) */
}

/* Marks a completed send with how it was resolved; with_winner: last_write_wins says who won. */
static void label_result(struct exec_result *res, const char *label, bool with_winner,
                         const json_t *sent)
{
    if (res->outcome != OUTCOME_COMPLETED || res->result == NULL)
        return;
    json_object_set_new(res->result, "resolution", json_string(label));
    if (with_winner)
        json_object_set_new(res->result, "winner", json_string("local"));
    if (sent != NULL)
        json_object_set_new(res->result, "sent", json_deep_copy(sent));
}

/* Rounds of: read the remote state, decide, send; a send that conflicts again starts the next
 * round. fixed: a document chosen by an operator (sent as it is each round). label: the
 * resolution recorded in the result. */
static void resolve_rounds(const struct conflict *k, enum strategy strategy, const char *label,
                           const json_t *fixed, struct exec_result *res)
{
    long status = json_integer_value(json_object_get(res->result, "status_code"));
    for (int round = 0; round < CONFLICT_ROUNDS; round++) {
        struct exec_result got = {.delay_s = -1};
        if (fetch_remote(k, &got) != 0) {
            json_decref(res->result);
            *res = got; /* the remote state could not be read: retry as any transient failure */
            return;
        }
        json_t *remote = json_incref(json_object_get(got.result, "body"));
        char etag[sizeof(((struct out_response *)0)->etag)];
        char lm[sizeof(((struct out_response *)0)->last_modified)];
        snprintf(etag, sizeof(etag), "%s", validate_str(got.result, "etag", ""));
        snprintf(lm, sizeof(lm), "%s", validate_str(got.result, "last_modified", ""));
        json_decref(got.result);
        if (strategy == STRATEGY_MANUAL && fixed == NULL) {
            park(res, remote, etag, status, strategy_name(STRATEGY_MANUAL),
                 "conflict: waiting for an operator's resolution");
            json_decref(remote);
            return;
        }
        json_t *doc =
            fixed ? json_deep_copy(fixed) : decide(strategy, k->job, remote, lm, status, res);
        if (doc == NULL && res->outcome == OUTCOME_COMPLETED) {
            json_decref(remote);
            return; /* remote wins: nothing more is sent */
        }
        json_decref(res->result);
        *res = (struct exec_result){.delay_s = -1};
        send_doc(k, doc, etag, res);
        if (res->outcome != OUTCOME_CONFLICT) {
            label_result(res, label, strategy == STRATEGY_LAST_WRITE_WINS, doc);
            json_decref(doc);
            json_decref(remote);
            return;
        }
        json_decref(doc);
        if (round == CONFLICT_ROUNDS - 1) {
            char why[160];
            snprintf(why, sizeof(why), "conflict persisted after %d resolution attempts (%s)",
                     CONFLICT_ROUNDS, label);
            park(res, remote, etag, status, label, why);
        }
        json_decref(remote);
    }
}

/* The operation's own strategy (parsed once here; the table's CHECK keeps it one of the
 * names), else the global one the worker read at claim. */
static enum strategy strategy_of(const struct exec_ctx *ctx, const struct job *job)
{
    enum strategy s = ctx->strategy;
    if (job->conflict_strategy[0] && strategy_parse(job->conflict_strategy, &s) != 0)
        s = STRATEGY_LOCAL_WINS;
    return s;
}

void conflict_resolve(struct exec_ctx *ctx, const struct job *job, const char *default_method,
                      struct exec_result *res)
{
    const struct conflict k = {.ctx = ctx, .job = job, .default_method = default_method};
    enum strategy strategy = strategy_of(ctx, job);
    log_json(LOG_INFO, "conflict",
             json_pack("{s:s, s:s, s:s}", "event", "operation.conflict", "id", job->id, "strategy",
                       strategy_name(strategy)));
    resolve_rounds(&k, strategy, strategy_name(strategy), NULL, res);
}

void conflict_apply_choice(struct exec_ctx *ctx, const struct job *job, const char *default_method,
                           struct exec_result *res)
{
    const struct conflict k = {.ctx = ctx, .job = job, .default_method = default_method};
    const char *choice = validate_str(job->resolution, "choice", "local");
    const json_t *doc = strcmp(choice, "merged") == 0 ? json_object_get(job->resolution, "data")
                                                      : json_object_get(job->payload, "data");
    char label[32];
    snprintf(label, sizeof(label), "manual_%s", choice);
    send_doc(&k, doc, validate_str(job->resolution, "etag", NULL), res);
    if (res->outcome == OUTCOME_CONFLICT) /* changed again meanwhile: read it and resend */
        resolve_rounds(&k, STRATEGY_LOCAL_WINS, label, doc, res);
    else
        label_result(res, label, false, doc);
}
