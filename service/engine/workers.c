#include "engine/workers.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "delivery/conflict.h"
#include "delivery/exec_common.h"
#include "core/time.h"
#include "core/trace.h"
#include "core/log.h"
#include "delivery/outbound.h"
#include "core/metrics.h"
#include "delivery/policy.h"
#include "engine/monitor.h"
#include "store/leases.h"
#include "store/settings.h"
#include "core/vocab.h"
#include "handlers/handlers.h"
#include "core/pgarray.h"
#include "core/jsontext.h"
#include "store/events.h"
#include "store/fleet.h"

struct worker {
    struct workers *ws;
    int index;
    pthread_t th;
    char owner[96]; /* lease owner: instance id + worker index */
    struct outbound out;
    pthread_mutex_t mu; /* guards held[] for the heartbeat thread */
    struct job *held;
    int n_held;
    int claim_size;         /* how many the next claim asks for (adapts to the upstream's speed) */
    enum strategy strategy; /* the global conflict strategy when the current claim was made */
};

double workers_backoff_s(int attempt, int base_ms, int max_ms)
{
    double cap = base_ms * pow(2.0, attempt > 1 ? attempt - 1 : 0);
    if (cap > max_ms)
        cap = max_ms;
    return (double)arc4random_uniform((uint32_t)cap + 1) / 1000.0; /* full jitter */
}

void workers_wake(struct workers *ws)
{
    pthread_mutex_lock(&ws->mu);
    ws->wake_gen++;
    pthread_cond_broadcast(&ws->wake);
    pthread_mutex_unlock(&ws->mu);
}

/* A worker that is not waiting sees the new generation before it would wait (idle_wait), so
 * the one signal is never lost to it; only waiting workers stay asleep. */
void workers_nudge(struct workers *ws)
{
    pthread_mutex_lock(&ws->mu);
    ws->wake_gen++;
    pthread_cond_signal(&ws->wake);
    pthread_mutex_unlock(&ws->mu);
}

static unsigned long current_gen(struct workers *ws)
{
    pthread_mutex_lock(&ws->mu);
    unsigned long g = ws->wake_gen;
    pthread_mutex_unlock(&ws->mu);
    return g;
}

/* Sleeps ms, or less when stopping. */
static void stop_wait(struct workers *ws, int ms)
{
    double until = oq_now_ms() + ms;
    pthread_mutex_lock(&ws->mu);
    while (!atomic_load(&ws->stopping) && oq_now_ms() < until) {
        struct timespec t;
        oq_deadline_ms(&t, until - oq_now_ms());
        pthread_cond_timedwait(&ws->stop, &ws->mu, &t);
    }
    pthread_mutex_unlock(&ws->mu);
}

/* Sleeps until woken, stopped, or ms pass. */
static void idle_wait(struct workers *ws, unsigned long seen_gen, int ms)
{
    struct timespec t;
    oq_deadline_ms(&t, ms);
    pthread_mutex_lock(&ws->mu);
    while (ws->wake_gen == seen_gen && !atomic_load(&ws->stopping)) {
        if (pthread_cond_timedwait(&ws->wake, &ws->mu, &t) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&ws->mu);
}

static void set_held(struct worker *w, struct job *jobs, int n)
{
    pthread_mutex_lock(&w->mu);
    w->held = jobs;
    w->n_held = n;
    pthread_mutex_unlock(&w->mu);
}

/* One unit of execution with one outcome: a single operation, or a batch of a batching type. */
struct segment {
    int from, n;
    struct exec_result res;
    bool is_refused; /* failed the enqueue rules at delivery: res says why, nothing is sent */
};

/* Do a and b go in one request of h? Same type, upstream and endpoint. */
static bool same_batch(const struct handler *h, const struct job *a, const struct job *b)
{
    const char *ua = json_string_value(json_object_get(a->payload, "upstream"));
    const char *ub = json_string_value(json_object_get(b->payload, "upstream"));
    const char *ea = json_string_value(json_object_get(a->payload, "endpoint"));
    const char *eb = json_string_value(json_object_get(b->payload, "endpoint"));
    return strcmp(a->operation_type, b->operation_type) == 0 && a->unreadable == b->unreadable &&
           strcmp(ua ? ua : "default", ub ? ub : "default") == 0 &&
           strcmp(ea ? ea : h->batch_endpoint, eb ? eb : h->batch_endpoint) == 0;
}

/* Claims up to w->claim_size due operations; when the first is of a batching type, tops its
 * last batch up to OFFLINEQ_METRIC_BATCH. jobs has room for claim_batch + metric_batch. */
static int claim(struct worker *w, struct db_conn *c, const char *only, struct job *jobs,
                 struct err *e)
{
    const struct workers_deps *d = &w->ws->d;
    char paused[1024];
    policy_paused(d->policy, paused, sizeof(paused));
    struct claim_filter f = {
        .owner = w->owner, .paused = paused, .only_ids = only, .lease_s = d->cfg->lease_s};
    int n = leases_claim(c, &f, jobs, w->claim_size, e);
    const struct handler *h = n > 0 ? handlers_find(jobs[0].operation_type) : NULL;
    if (h != NULL && h->execute_batch != NULL) {
        int mates = 0;
        for (int i = 0; i < n; i++)
            mates += same_batch(h, &jobs[0], &jobs[i]);
        /* fill the last batch up: 128 claimed mates are sent as 100 + 100, not 100 + 28 */
        int want = (d->cfg->metric_batch - mates % d->cfg->metric_batch) % d->cfg->metric_batch;
        int more = leases_claim_batch(c, &f, &jobs[0], h->batch_endpoint, jobs + n, want, e);
        if (more > 0)
            n += more;
    }
    return n;
}

/* Delivery meets the rules of enqueue again, with the handler's own validate: a row written
 * by offlineq.enqueue() or straight into the table, or one enqueued before the configuration
 * changed, fails here before anything is sent. res may be NULL (a batch mate's check). */
static bool is_refused(const struct config *cfg, const struct job *job, struct exec_result *res)
{
    const struct handler *h = handlers_find(job->operation_type);
    struct err e = {0};
    if (h == NULL || job->unreadable || h->validate(job->payload, cfg, &e) == 0)
        return false; /* no handler, unreadable: execute() says so */
    if (res != NULL) {
        err_prefix_field(&e, "payload");
        exec_fail(res, "refused at delivery: %s: %s", e.field, e.message);
        log_json(LOG_WARN, "operation refused at delivery",
                 json_pack("{s:s, s:s, s:s}", "id", job->id, "field", e.field, "error", e.message));
    }
    return true;
}

/* Cuts the claim into segments: batching types gather their mates (moved up behind the first,
 * the others keep their order; a claim never holds two of one group, so moving is safe). An
 * operation refused at delivery is a segment of its own. */
static int make_segments(const struct workers_deps *d, struct job *jobs, int n,
                         struct segment *segs)
{
    int ns = 0;
    for (int i = 0; i < n;) {
        struct segment *s = &segs[ns++];
        *s = (struct segment){.from = i, .n = 1, .res = {.delay_s = -1}};
        s->is_refused = is_refused(d->cfg, &jobs[i], &s->res);
        const struct handler *h = s->is_refused ? NULL : handlers_find(jobs[i].operation_type);
        int end = i + 1;
        for (int j = end; h && h->execute_batch && j < n && end - i < d->cfg->metric_batch; j++) {
            if (!same_batch(h, &jobs[i], &jobs[j]) || is_refused(d->cfg, &jobs[j], NULL))
                continue;
            struct job t = jobs[j];
            memmove(&jobs[end + 1], &jobs[end], (size_t)(j - end) * sizeof(*jobs));
            jobs[end++] = t;
        }
        s->n = end - i;
        i = end;
    }
    return ns;
}

/* struct exec_ctx's recheck_online: a delivery that could not connect asks the monitor to
 * probe now, and gives up the attempt (no attempt used) when the network is gone. */
static bool recheck_online(void *arg)
{
    struct monitor *m = arg;
    monitor_check_now(m);
    return monitor_is_online(m);
}

/* One info line per attempt that made a request, per operation it carried: what an operator
 * greps for when asking what happened to an operation (GET .../attempts has the same). */
static void log_attempts(const struct job *jobs, int n, const struct exec_result *res)
{
    const char *outcome = attempt_outcome(res);
    if (outcome == NULL || !log_enabled(LOG_INFO))
        return;
    for (int i = 0; i < n; i++) {
        struct trace t;
        trace_of_operation(jobs[i].traceparent, jobs[i].id, &t);
        log_json(
            LOG_INFO, "attempt",
            json_pack(
                "{s:s, s:s, s:s?, s:i, s:o, s:f, s:s, s:s, s:s?}", "id", jobs[i].id,
                "operation_type", jobs[i].operation_type, "upstream", res->attempt.upstream,
                "attempt", jobs[i].attempts_before + 1, "status_code",
                res->attempt.status_code > 0 ? json_integer(res->attempt.status_code) : json_null(),
                "duration_ms", (double)(long long)(res->attempt.duration_ms * 10) / 10, "outcome",
                outcome, "trace_id", t.trace_id, "error",
                res->outcome == OUTCOME_COMPLETED || res->error[0] == '\0' ? NULL : res->error));
    }
}

static void execute(struct worker *w, struct job *jobs, int n, struct exec_result *res)
{
    const struct workers_deps *d = &w->ws->d;
    struct exec_ctx ctx = {
        .cfg = d->cfg,
        .db = d->db,
        .policy = d->policy,
        .out = &w->out,
        .abort_outbound = d->abort_outbound,
        .strategy = w->strategy,
        .recheck_online = recheck_online,
        .recheck_arg = d->monitor,
    };
    const struct handler *h = handlers_find(jobs[0].operation_type);
    if (h == NULL) {
        exec_fail(res, "no handler is registered for operation_type %s", jobs[0].operation_type);
    } else if (jobs[0].unreadable) {
        exec_fail(res, "the stored payload cannot be decrypted or read (sealed with another "
                       "OFFLINEQ_ENCRYPTION_KEY, bound to another row, or nested deeper than 2000 "
                       "levels)");
    } else if (h->execute_batch != NULL) {
        h->execute_batch(&ctx, jobs, (size_t)n, res);
    } else if (h->resolves_conflicts && jobs[0].resolution != NULL) {
        conflict_apply_choice(&ctx, &jobs[0], h->default_method,
                              res); /* an operator resolved a conflict */
    } else {
        h->execute(&ctx, &jobs[0], res);
        if (res->outcome == OUTCOME_CONFLICT && h->resolves_conflicts)
            conflict_resolve(&ctx, &jobs[0], h->default_method, res);
    }
}

/* An attempt that opened or closed its upstream's breaker opens or closes it for the
 * deployment (store/fleet.h), which records the event when the deployment's breaker changed
 * (best effort: with the database away, this instance's breaker still holds here). */
static void announce_breaker(const struct workers_deps *d, const struct attempt_info *a)
{
    if (a->breaker_event == NULL || a->upstream == NULL)
        return;
    struct err e = {0};
    struct db_conn *c = db_acquire(d->db, &e);
    if (c == NULL)
        return;
    bool changed = false;
    int rc = strcmp(a->breaker_event, "upstream.breaker_opened") == 0
                 ? fleet_breaker_open(c, a->upstream, a->breaker_cooldown_s * 1000, d->instance_id,
                                      &changed, &e)
                 : fleet_breaker_close(c, a->upstream, &changed, &e);
    if (rc != 0)
        log_json(LOG_WARN, "sharing the breaker failed",
                 json_pack("{s:s, s:s}", "upstream", a->upstream, "error", e.message));
    db_release(d->db, c);
}

/* A Retry-After that held the upstream here holds it for the deployment (best effort). */
static void announce_hold(const struct workers_deps *d, const struct attempt_info *a)
{
    if (a->hold_s <= 0 || a->upstream == NULL)
        return;
    struct err e = {0};
    struct db_conn *c = db_acquire(d->db, &e);
    if (c == NULL)
        return;
    if (fleet_upstream_hold(c, a->upstream, (int)(a->hold_s * 1000), d->instance_id, &e) != 0)
        log_json(LOG_WARN, "sharing the Retry-After hold failed",
                 json_pack("{s:s, s:s}", "upstream", a->upstream, "error", e.message));
    db_release(d->db, c);
}

/* Runs the segments in order. Once offline or stopping, the rest are released untried (no
 * attempt used). Adapts the next claim's size so that a claim runs for about
 * CLAIM_TARGET_MS: large against a fast upstream, one at a time against a slow one. */
#define CLAIM_TARGET_MS 100.0
static void execute_all(struct worker *w, struct job *jobs, struct segment *segs, int ns)
{
    const struct workers_deps *d = &w->ws->d;
    double t_all = oq_now_ms();
    int ran = 0;
    for (int i = 0; i < ns; i++) {
        struct exec_result *res = &segs[i].res;
        if (segs[i].is_refused)
            continue;
        if (atomic_load(&w->ws->stopping) || !monitor_is_online(d->monitor)) {
            res->outcome = OUTCOME_RELEASE;
            res->delay_s = 0;
            snprintf(res->error, sizeof(res->error), "not attempted: %s",
                     atomic_load(&w->ws->stopping) ? "shutting down" : "offline");
            continue;
        }
        double t0 = oq_now_ms();
        oq_utc_now(res->attempt.started_at, sizeof(res->attempt.started_at), 3);
        execute(w, jobs + segs[i].from, segs[i].n, res);
        res->attempt.duration_ms = oq_now_ms() - t0;
        log_attempts(jobs + segs[i].from, segs[i].n, res);
        announce_breaker(d, &res->attempt);
        announce_hold(d, &res->attempt);
        if (res->outcome != OUTCOME_RELEASE)
            metrics_exec(d->metrics, res->attempt.upstream, (oq_now_ms() - t0) / 1000.0);
        ran++;
    }
    if (ran > 0) {
        double per = (oq_now_ms() - t_all) / ran;
        double want = per > 0 ? CLAIM_TARGET_MS / per : d->cfg->claim_batch;
        w->claim_size = want < 1 ? 1 : want > d->cfg->claim_batch ? d->cfg->claim_batch : (int)want;
    }
}

/* An upstream's Retry-After is honoured up to a day. */
#define RETRY_AFTER_MAX_S ((double)OQ_DAY_S)

static double outcome_delay(const struct workers_deps *d, const struct job *job,
                            const struct exec_result *res)
{
    if (res->outcome == OUTCOME_RELEASE)
        return res->delay_s;
    if (res->outcome != OUTCOME_RETRY)
        return 0;
    if (res->delay_s >= 0) /* Retry-After */
        return res->delay_s < RETRY_AFTER_MAX_S ? res->delay_s : RETRY_AFTER_MAX_S;
    return workers_backoff_s(job->retry_count + 1, d->cfg->backoff_base_ms, d->cfg->backoff_max_ms);
}

static void count_outcome(const struct workers_deps *d, const struct job *jobs, int n,
                          const struct tally *t, const struct exec_result *res)
{
    const char *type = jobs[0].operation_type, *up = res->attempt.upstream;
    metrics_op_upstream(d->metrics, type, up, OPC_COMPLETED, (unsigned long long)t->completed);
    metrics_op_upstream(d->metrics, type, up, OPC_FAILED, (unsigned long long)t->failed);
    metrics_op_upstream(d->metrics, type, up, OPC_RETRIED, (unsigned long long)t->retried);
    if (t->conflict > 0 || json_object_get(res->result, "resolution") != NULL)
        metrics_op_upstream(d->metrics, type, up, OPC_CONFLICTS,
                            (unsigned long long)(t->conflict ? t->conflict : n));
    if (t->completed > 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        for (int i = 0; i < n; i++)
            metrics_latency(d->metrics, now.tv_sec + now.tv_nsec / 1e9 - jobs[i].created_s);
    }
}

/* A write of outcomes: returns the rows the fence let through, or -1 with *e. */
typedef int (*record_fn)(struct db_conn *c, void *ctx, struct tally *t, struct err *e);

/* Runs fn until it gets through; the database may be away for a while: keep trying until the
 * leases would have run out anyway (the reaper takes over from there). */
static int record_with_retry(struct worker *w, record_fn fn, void *ctx, const char *first_id,
                             int claimed, struct tally *t)
{
    const struct workers_deps *d = &w->ws->d;
    double give_up = oq_now_ms() + d->cfg->lease_s * 1000.0;
    for (int tries = 0; oq_now_ms() < give_up; tries++) {
        struct err e = {0};
        struct db_conn *c = db_acquire(d->db, &e);
        *t = (struct tally){0};
        int rows = c ? fn(c, ctx, t, &e) : -1;
        if (c != NULL)
            db_release(d->db, c);
        if (rows >= 0) {
            if (rows < claimed)
                log_json(LOG_WARN, "outcome fenced off",
                         json_pack("{s:s, s:i, s:i}", "id", first_id, "recorded", rows, "claimed",
                                   claimed));
            return rows;
        }
        log_json(LOG_WARN, "recording an outcome failed, retrying",
                 json_pack("{s:s, s:s}", "id", first_id, "error", e.message));
        usleep((useconds_t)(tries < 10 ? 100000 * (tries + 1) : 1000000));
    }
    return -1;
}

struct one_outcome {
    struct worker *w;
    struct job *jobs;
    int n;
    struct exec_result *res;
    double delay;
};

static int record_one(struct db_conn *c, void *ctx, struct tally *t, struct err *e)
{
    struct one_outcome *o = ctx;
    return leases_record(c, o->w->owner, o->jobs, (size_t)o->n, o->res, o->delay, t, e);
}

struct completions {
    struct worker *w;
    const struct job **jobs;
    json_t **results;
    const struct exec_result **attempts; /* each job's segment: its attempt */
    size_t n;
};

static int record_completions(struct db_conn *c, void *ctx, struct tally *t, struct err *e)
{
    struct completions *k = ctx;
    return leases_complete_many(c, k->w->owner, k->jobs, k->results, k->attempts, k->n, t, e);
}

/* Plain completions are written in one statement; every other outcome on its own. */
static bool plain_completion(const struct exec_result *res)
{
    return res->outcome == OUTCOME_COMPLETED && json_object_get(res->result, "resolution") == NULL;
}

static void record_all(struct worker *w, struct job *jobs, int n, struct segment *segs, int ns)
{
    const struct workers_deps *d = &w->ws->d;
    struct completions k = {.w = w,
                            .jobs = oq_calloc((size_t)n, sizeof(*k.jobs)),
                            .results = oq_calloc((size_t)n, sizeof(*k.results))};
    k.attempts = oq_calloc((size_t)n, sizeof(*k.attempts));
    for (int i = 0; i < ns; i++) {
        struct segment *s = &segs[i];
        for (int j = 0; plain_completion(&s->res) && j < s->n; j++) {
            k.jobs[k.n] = &jobs[s->from + j];
            k.attempts[k.n] = &s->res;
            k.results[k.n++] = s->res.result;
        }
    }
    struct tally t;
    if (k.n > 0 && record_with_retry(w, record_completions, &k, k.jobs[0]->id, (int)k.n, &t) >= 0) {
        for (int i = 0; i < ns; i++) {
            struct tally st = {.completed = segs[i].n};
            if (plain_completion(&segs[i].res))
                count_outcome(d, jobs + segs[i].from, segs[i].n, &st, &segs[i].res);
        }
    }
    for (int i = 0; i < ns; i++) {
        struct segment *s = &segs[i];
        if (plain_completion(&s->res))
            continue;
        struct one_outcome o = {.w = w,
                                .jobs = jobs + s->from,
                                .n = s->n,
                                .res = &s->res,
                                .delay = outcome_delay(d, &jobs[s->from], &s->res)};
        if (record_with_retry(w, record_one, &o, jobs[s->from].id, s->n, &t) >= 0)
            count_outcome(d, jobs + s->from, s->n, &t, &s->res);
    }
    free(k.jobs);
    free(k.results);
    free(k.attempts);
}

/* The conflict strategy a claim runs with: the global one as it is when the claim is made. */
static void claim_strategy(struct worker *w)
{
    w->strategy = settings_strategy(w->ws->d.settings);
}

#define DB_BACKOFF_FIRST_MS 100
#define DB_BACKOFF_MAX_MS 5000

/* The next wait while the database is away: 100 ms, doubling up to 5 s. */
static int db_backoff_ms(int last_ms)
{
    if (last_ms == 0)
        return DB_BACKOFF_FIRST_MS;
    return last_ms * 2 > DB_BACKOFF_MAX_MS ? DB_BACKOFF_MAX_MS : last_ms * 2;
}

static void run_one_round(struct worker *w, struct db_conn *c, const char *only, int *backoff_ms)
{
    const struct workers_deps *d = &w->ws->d;
    struct err e = {0};
    unsigned long gen = current_gen(w->ws);
    size_t cap = (size_t)d->cfg->claim_batch + (size_t)d->cfg->metric_batch;
    struct job *jobs = oq_calloc(cap, sizeof(*jobs));
    int asked = w->claim_size;
    int n = claim(w, c, only, jobs, &e);
    db_release(d->db, c);
    metrics_claim(d->metrics, n);
    if (n >= asked) /* full: more may be due, for the next idle worker */
        workers_nudge(w->ws);
    claim_strategy(w);
    if (n <= 0) {
        free(jobs);
        if (n < 0) { /* the database is away: back off, never spin */
            *backoff_ms = db_backoff_ms(*backoff_ms);
            idle_wait(w->ws, gen, *backoff_ms);
        } else {
            *backoff_ms = 0;
            idle_wait(w->ws, gen, d->cfg->poll_ms);
        }
        return;
    }
    *backoff_ms = 0;
    set_held(w, jobs, n);
    atomic_fetch_add(&w->ws->busy, 1);
    struct segment *segs = oq_calloc((size_t)n, sizeof(*segs));
    int ns = make_segments(d, jobs, n, segs);
    execute_all(w, jobs, segs, ns);
    record_all(w, jobs, n, segs, ns);
    atomic_fetch_sub(&w->ws->busy, 1);
    set_held(w, NULL, 0);
    for (int i = 0; i < ns; i++)
        json_decref(segs[i].res.result);
    for (int i = 0; i < n; i++)
        leases_job_free(&jobs[i]);
    free(segs);
    free(jobs);
}

/* Could a claim return anything now? Offline (operations wait, no attempt is used), or
 * auto-sync stopped with no pass running: no. With auto-sync stopped, *only gets the running
 * pass's ids (the caller frees it), the only operations a claim may take. Checked before a
 * pooled connection is taken, so that the wake-ups of every enqueue cost the idle workers
 * nothing while delivery is held. */
static bool may_claim(const struct workers_deps *d, char **only)
{
    *only = NULL;
    if (!monitor_is_online(d->monitor))
        return false;
    if (settings_auto_sync(d->settings))
        return true;
    *only = d->pass_ids(d->pass_ids_arg);
    return *only != NULL;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const struct workers_deps *d = &w->ws->d;
    int backoff_ms = 0;
    while (!atomic_load(&w->ws->stopping)) {
        unsigned long gen = current_gen(w->ws);
        char *only;
        if (!may_claim(d, &only)) {
            idle_wait(w->ws, gen, d->cfg->poll_ms);
            continue;
        }
        struct err e = {0};
        struct db_conn *c = db_acquire(d->db, &e);
        if (c == NULL) {
            free(only);
            backoff_ms = db_backoff_ms(backoff_ms);
            stop_wait(w->ws, backoff_ms);
            continue;
        }
        run_one_round(w, c, only, &backoff_ms);
        free(only);
    }
    return NULL;
}

/* "{id,...}" of what w holds now, or NULL when it holds nothing. */
static char *held_ids(struct worker *w)
{
    pthread_mutex_lock(&w->mu);
    char *s = NULL;
    if (w->n_held > 0) {
        struct pgarray ids;
        pgarray_init(&ids);
        for (int j = 0; j < w->n_held; j++)
            pgarray_add(&ids, w->held[j].id);
        s = pgarray_finish(&ids);
    }
    pthread_mutex_unlock(&w->mu);
    return s;
}

/* Extends the leases of everything the workers run now. */
static void beat_all(struct workers *ws)
{
    const struct workers_deps *d = &ws->d;
    for (int i = 0; i < ws->n; i++) {
        struct worker *w = &ws->w[i];
        char *ids = held_ids(w);
        if (ids == NULL)
            continue;
        struct err e = {0};
        struct db_conn *c = db_acquire(d->db, &e);
        if (c != NULL) {
            if (leases_heartbeat(c, w->owner, ids, d->cfg->lease_s, &e) != 0)
                log_warn("heartbeat of worker %d failed: %s", i, e.message);
            db_release(d->db, c);
        }
        free(ids);
    }
}

/* Every lease_s/3 seconds, extends the leases of everything running here; each worker has its
 * own owner id, so the fence is per worker. One last round when told to stop: the leases then
 * last through the shutdown grace. */
static void *heartbeat_main(void *arg)
{
    struct workers *ws = arg;
    while (!thread_stopping(&ws->heartbeat)) {
        thread_sleep_ms(&ws->heartbeat, ws->d.cfg->lease_s * 1000 / 3);
        beat_all(ws);
    }
    return NULL;
}

void workers_start(struct workers *ws, const struct workers_deps *deps)
{
    ws->d = *deps;
    ws->n = deps->cfg->workers;
    ws->w = oq_calloc((size_t)ws->n, sizeof(*ws->w));
    pthread_mutex_init(&ws->mu, NULL);
    pthread_cond_init(&ws->wake, NULL);
    pthread_cond_init(&ws->stop, NULL);
    atomic_init(&ws->stopping, false);
    atomic_init(&ws->busy, 0);
    for (int i = 0; i < ws->n; i++) {
        struct worker *w = &ws->w[i];
        w->ws = ws;
        w->index = i;
        snprintf(w->owner, sizeof(w->owner), "%s/%d", deps->instance_id, i);
        w->claim_size = 1;
        pthread_mutex_init(&w->mu, NULL);
        outbound_init(&w->out, deps->abort_outbound);
        pthread_create(&w->th, NULL, worker_main, w);
    }
    ws->started = true;
    thread_init(&ws->heartbeat);
    if (ws->n > 0)
        thread_start(&ws->heartbeat, heartbeat_main, ws);
}

void workers_stop(struct workers *ws, int grace_s)
{
    if (!ws->started)
        return;
    atomic_store(&ws->stopping, true);
    workers_wake(ws);
    pthread_mutex_lock(&ws->mu);
    pthread_cond_broadcast(&ws->stop);
    pthread_mutex_unlock(&ws->mu);
    thread_stop(&ws->heartbeat);
    double deadline = oq_now_ms() + grace_s * 1000.0;
    while (atomic_load(&ws->busy) > 0 && oq_now_ms() < deadline)
        usleep(10000);
    if (atomic_load(&ws->busy) > 0) {
        log_warn(
            "shutdown grace over: interrupting %d running operation(s); they go back to pending",
            atomic_load(&ws->busy));
        atomic_store(ws->d.abort_outbound, true);
    }
    for (int i = 0; i < ws->n; i++) {
        pthread_join(ws->w[i].th, NULL);
        outbound_close(&ws->w[i].out);
        pthread_mutex_destroy(&ws->w[i].mu);
    }
    thread_close(&ws->heartbeat);
    free(ws->w);
    pthread_cond_destroy(&ws->wake);
    pthread_cond_destroy(&ws->stop);
    pthread_mutex_destroy(&ws->mu);
    ws->started = false;
}
