#include "engine/monitor.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "core/log.h"

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    return size * n;
}

/* Probes every URL at once; fills probes[] (caller's). */
static void probe_all(const struct config *cfg, struct probe_state *probes)
{
    size_t n = cfg->n_check_urls;
    CURLM *multi = curl_multi_init();
    CURL **easy = calloc(n ? n : 1, sizeof(CURL *));
    for (size_t i = 0; i < n; i++) {
        easy[i] = curl_easy_init();
        curl_easy_setopt(easy[i], CURLOPT_URL, cfg->check_urls[i]);
        curl_easy_setopt(easy[i], CURLOPT_NOBODY, 1L); /* any answer will do: HEAD */
        curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy[i], CURLOPT_TIMEOUT_MS, (long)cfg->check_timeout_ms);
        curl_easy_setopt(easy[i], CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->check_timeout_ms);
        curl_easy_setopt(easy[i], CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(easy[i], CURLOPT_PRIVATE, (void *)(uintptr_t)i);
        curl_multi_add_handle(multi, easy[i]);
    }
    int running = 1;
    while (running > 0) {
        curl_multi_perform(multi, &running);
        if (running > 0)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        void *priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        struct probe_state *p = &probes[(uintptr_t)priv];
        double secs = 0;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_TOTAL_TIME, &secs);
        p->reachable = msg->data.result == CURLE_OK;
        p->latency_ms = secs * 1000.0;
        snprintf(p->error, sizeof(p->error), "%s",
                 p->reachable ? "" : curl_easy_strerror(msg->data.result));
    }
    for (size_t i = 0; i < n; i++) {
        curl_multi_remove_handle(multi, easy[i]);
        curl_easy_cleanup(easy[i]);
    }
    free(easy);
    curl_multi_cleanup(multi);
}

static void notify(struct monitor *m, bool online)
{
    log_json(online ? LOG_INFO : LOG_WARN, "network status changed",
             json_pack("{s:s, s:s}", "event", "network.changed", "status",
                       online ? "online" : "offline"));
    for (int i = 0; i < m->n_listeners; i++)
        m->listeners[i].fn(m->listeners[i].arg, online);
}

/* One round: probe, then decide (offline only after OFFLINEQ_OFFLINE_AFTER failed rounds). */
static void check_round(struct monitor *m)
{
    size_t n = m->cfg->n_check_urls;
    struct probe_state *probes = calloc(n ? n : 1, sizeof(*probes));
    probe_all(m->cfg, probes);
    bool any = n == 0; /* nothing to probe: nothing can be unreachable */
    for (size_t i = 0; i < n; i++)
        any = any || probes[i].reachable;
    pthread_mutex_lock(&m->t.mu);
    memcpy(m->probes, probes, n * sizeof(*probes));
    oq_utc_now(m->checked_at, sizeof(m->checked_at), 6);
    m->failed_rounds = any ? 0 : m->failed_rounds + 1;
    bool was = m->online;
    if (any)
        m->online = true;
    else if (m->failed_rounds >= m->cfg->offline_after)
        m->online = false;
    bool changed = was != m->online;
    if (changed)
        snprintf(m->changed_at, sizeof(m->changed_at), "%s", m->checked_at);
    m->rounds++;
    pthread_cond_broadcast(&m->t.cv);
    pthread_mutex_unlock(&m->t.mu);
    free(probes);
    if (changed)
        notify(m, m->online);
}

static void *monitor_main(void *arg)
{
    struct monitor *m = arg;
    pthread_mutex_lock(&m->t.mu);
    while (!thread_stopping(&m->t)) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_sec += m->cfg->check_interval_s;
        while (!thread_stopping(&m->t) && !m->kicked) {
            if (pthread_cond_timedwait(&m->t.cv, &m->t.mu, &t) != 0)
                break;
        }
        if (thread_stopping(&m->t))
            break;
        m->kicked = false;
        m->in_round = true;
        pthread_mutex_unlock(&m->t.mu);
        check_round(m);
        pthread_mutex_lock(&m->t.mu);
        m->in_round = false;
    }
    pthread_mutex_unlock(&m->t.mu);
    return NULL;
}

void monitor_listen(struct monitor *m, monitor_listener fn, void *arg)
{
    OQ_ASSERT(m->n_listeners < (int)OQ_ARRAY_LEN(m->listeners));
    m->listeners[m->n_listeners].fn = fn;
    m->listeners[m->n_listeners].arg = arg;
    m->n_listeners++;
}

void monitor_start(struct monitor *m, const struct config *cfg)
{
    m->cfg = cfg;
    thread_init(&m->t);
    m->probes = calloc(cfg->n_check_urls ? cfg->n_check_urls : 1, sizeof(*m->probes));
    m->online = true; /* until a check says otherwise */
    oq_utc_now(m->changed_at, sizeof(m->changed_at), 6);
    check_round(m);
    thread_start(&m->t, monitor_main, m);
}

void monitor_stop(struct monitor *m)
{
    if (!m->t.started)
        return;
    thread_stop(&m->t);
    free(m->probes);
    thread_close(&m->t);
}

bool monitor_is_online(struct monitor *m)
{
    pthread_mutex_lock(&m->t.mu);
    bool online = m->online;
    pthread_mutex_unlock(&m->t.mu);
    return online;
}

void monitor_check_now(struct monitor *m)
{
    pthread_mutex_lock(&m->t.mu);
    /* a round under way may have probed before the failure: then wait for the one after it */
    unsigned long target = m->rounds + (m->in_round ? 2 : 1);
    m->kicked = true;
    pthread_cond_broadcast(&m->t.cv);
    while (m->rounds < target && !thread_stopping(&m->t))
        pthread_cond_wait(&m->t.cv, &m->t.mu);
    pthread_mutex_unlock(&m->t.mu);
}

json_t *monitor_status_json(struct monitor *m)
{
    pthread_mutex_lock(&m->t.mu);
    json_t *eps = json_array();
    for (size_t i = 0; i < m->cfg->n_check_urls; i++) {
        const struct probe_state *p = &m->probes[i];
        json_array_append_new(
            eps, json_pack("{s:s, s:b, s:o, s:o}", "url", m->cfg->check_urls[i], "reachable",
                           p->reachable, "latency_ms",
                           p->reachable ? json_real((double)(long)(p->latency_ms * 10) / 10)
                                        : json_null(),
                           "error", p->reachable ? json_null() : json_string(p->error)));
    }
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:o}", "status", m->online ? "online" : "offline", "checked_at",
                  m->checked_at, "changed_at", m->changed_at, "endpoints", eps);
    pthread_mutex_unlock(&m->t.mu);
    return j;
}

unsigned long monitor_rounds(struct monitor *m)
{
    pthread_mutex_lock(&m->t.mu);
    unsigned long r = m->rounds;
    pthread_mutex_unlock(&m->t.mu);
    return r;
}
