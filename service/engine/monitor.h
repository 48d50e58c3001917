/* The network monitor: probes OFFLINEQ_CHECK_URLS in parallel (libcurl multi) every
 * OFFLINEQ_CHECK_INTERVAL_S; online when at least one answers (any HTTP status). Listeners
 * hear every change. Thread-safe. */
#ifndef OQ_MONITOR_H
#define OQ_MONITOR_H

#include <jansson.h>
#include <pthread.h>

#include "core/config.h"
#include "core/thread.h"

typedef void (*monitor_listener)(void *arg, bool online);

struct probe_state {
    bool reachable;
    double latency_ms;
    char error[160];
};

struct monitor {
    const struct config *cfg;
    struct thread t; /* t.mu guards everything below */
    bool kicked;
    bool in_round;
    unsigned long rounds; /* completed check rounds */
    bool online;
    int failed_rounds;
    char checked_at[40];
    char changed_at[40];
    struct probe_state *probes; /* one per cfg->check_urls[i] */
    struct {
        monitor_listener fn;
        void *arg;
    } listeners[4];
    int n_listeners;
};

/* Adds a listener (before monitor_start). */
void monitor_listen(struct monitor *m, monitor_listener fn, void *arg);

/* Runs the first check, then checks in the background. */
void monitor_start(struct monitor *m, const struct config *cfg);
void monitor_stop(struct monitor *m);

bool monitor_is_online(struct monitor *m);

/* Completed check rounds: changes whenever the status document does. */
unsigned long monitor_rounds(struct monitor *m);

/* Runs a check round now (or joins the one under way) and waits for it. */
void monitor_check_now(struct monitor *m);

/* {"status","checked_at","changed_at","endpoints":[{"url","reachable","latency_ms","error"}]} */
json_t *monitor_status_json(struct monitor *m);

#endif
