/* The endpoints: one function per row of the route table (api/routes.c), in the file of its
 * resource. Each is called by routes_dispatch once the router has checked method, path, role
 * and body (and the body's field rules, when the row names them), so none re-checks those.
 * A handler replies itself and returns 0, or returns -1 with *e set, which the router sends
 * with reply_err. */
#ifndef OQ_ENDPOINTS_H
#define OQ_ENDPOINTS_H

#include "api/http.h"
#include "core/validate.h"

/* Body field rules of the routes (api/queue.c, api/sync.c), checked before the handler. */
extern const struct field_rule api_batch_rules[], api_clear_rules[], api_retry_failed_rules[],
    api_bulk_delete_rules[], api_resolve_rules[], api_start_rules[], api_strategy_rules[];

/* api/dashboard.c */
int api_dashboard(struct request *r, struct err *e);
int api_dashboard_script(struct request *r, struct err *e);

/* api/health.c */
int api_health(struct request *r, struct err *e);
int api_ready(struct request *r, struct err *e);

/* api/metrics.c */
int api_metrics(struct request *r, struct err *e);

/* api/queue.c */
int api_queue_create(struct request *r, struct err *e);
int api_queue_batch(struct request *r, struct err *e);
int api_queue_list(struct request *r, struct err *e);
int api_queue_get(struct request *r, struct err *e);
int api_queue_attempts(struct request *r, struct err *e);
int api_queue_delete(struct request *r, struct err *e);
int api_queue_retry(struct request *r, struct err *e);
int api_queue_stats(struct request *r, struct err *e);
int api_queue_stats_history(struct request *r, struct err *e);
int api_queue_clear_completed(struct request *r, struct err *e);
int api_queue_retry_failed(struct request *r, struct err *e);
int api_queue_bulk_delete(struct request *r, struct err *e);
int api_queue_resolve(struct request *r, struct err *e);

/* api/sync.c */
int api_sync_run(struct request *r, struct err *e);
int api_sync_status(struct request *r, struct err *e);
int api_sync_start_auto(struct request *r, struct err *e);
int api_sync_stop_auto(struct request *r, struct err *e);
int api_strategy_get(struct request *r, struct err *e);
int api_strategy_set(struct request *r, struct err *e);

/* api/network.c */
int api_network_status(struct request *r, struct err *e);
int api_network_check(struct request *r, struct err *e);

/* api/upstreams.c */
int api_upstreams_list(struct request *r, struct err *e);
int api_upstream_pause(struct request *r, struct err *e);
int api_upstream_resume(struct request *r, struct err *e);

/* api/events.c */
int api_events(struct request *r, struct err *e);

/* api/files.c: the upload's body is streamed into the store by api_files_sink (set by the
 * router from the headers), and api_files_create commits it once the body is in. */
extern const struct body_sink api_files_sink;
int api_files_create(struct request *r, struct err *e);
int api_files_get(struct request *r, struct err *e);

#endif
