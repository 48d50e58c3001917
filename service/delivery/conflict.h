/* Conflict resolution: what happens when an upstream answers 409 or 412. The remote state is
 * read with a GET of the same endpoint, then the strategy decides: local_wins, remote_wins,
 * last_write_wins, merge (three-way, or an RFC 7396 merge patch without a base) or manual. */
#ifndef OQ_CONFLICT_H
#define OQ_CONFLICT_H

#include <jansson.h>

#include "core/job.h"
#include "delivery/deliver.h"

#define CONFLICT_ROUNDS 3

/* Three-way merge of JSON objects: keys changed only locally take the local value, keys
 * changed only remotely keep the remote value, keys changed on both sides take the local one,
 * recursively for nested objects. Returns a new reference. */
json_t *conflict_merge3(const json_t *base, const json_t *local, const json_t *remote);

/* RFC 7396: patch applied to target (null deletes). Returns a new reference. */
json_t *conflict_merge_patch(const json_t *target, const json_t *patch);

/* Resolves the conflict res holds (an attempt answered 409/412) by the operation's strategy
 * (job->conflict_strategy, else ctx->strategy); leaves the final outcome in *res.
 * default_method: the handler's (struct handler .default_method). */
void conflict_resolve(struct exec_ctx *ctx, const struct job *job, const char *default_method,
                      struct exec_result *res);

/* Applies an operator's choice (job->resolution: local or merged data). */
void conflict_apply_choice(struct exec_ctx *ctx, const struct job *job, const char *default_method,
                           struct exec_result *res);

#endif
