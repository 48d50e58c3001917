/* offlineq: start-up and shutdown only. */
#include <curl/curl.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "app.h"
#include "core/log.h"
#include "engine/sdnotify.h"
#include "store/secretbox.h"

/* Blocks SIGINT/SIGTERM/SIGHUP in every thread; main collects them with sigwait, so no signal
 * handler runs and no state has to be reachable from one (no global). */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Every HTTP connection is a descriptor: raise the soft limit to the hard one, and say so when
 * OFFLINEQ_MAX_CONNECTIONS still cannot be reached. */
static void raise_fd_limit(const struct config *c)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t need = (rlim_t)c->max_connections + (rlim_t)c->db_pool_size + 64;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        log_json(
            LOG_WARN, "open file limit below OFFLINEQ_MAX_CONNECTIONS",
            json_pack("{s:I, s:I}", "limit", (json_int_t)rl.rlim_cur, "wanted", (json_int_t)need));
}

/* Serves until SIGINT or SIGTERM (SIGHUP reloads); the HTTP side (api) lives in this frame and is
 * passed to everything that needs it. */
static int serve(struct app *a)
{
    sigset_t set;
    block_signals(&set);
    struct err e = {0};
    if (app_init(a, &e) != 0) {
        log_error("start-up failed: %s", e.message);
        return 1;
    }
    app_start(a);
    struct api api;
    api_init(&api, a);
    if (api_start(&api, &e) != 0) {
        log_error("start-up failed: %s", e.message);
        api_close(&api);
        return 1;
    }
    log_json(LOG_INFO, "listening",
             json_pack("{s:s, s:i, s:s, s:s}", "host", a->cfg.listen_host, "port", api_port(&api),
                       "instance", a->instance_id, "version", OQ_VERSION));
    sdnotify_ready(a->cfg.listen_host, api_port(&api)); /* migrated (app_init), listening */
    int sig = 0;
    while (sigwait(&set, &sig) == 0 && sig == SIGHUP) { /* reload, then wait again */
        sdnotify_reloading();
        app_reload(a);
        sdnotify_ready(a->cfg.listen_host, api_port(&api));
    }
    log_info("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    sdnotify_stopping();
    api_stop(&api, a->cfg.shutdown_grace_s * 1000);
    api_close(&api);
    return 0;
}

/* Loads the configuration and the key, then serves. Returns the exit status. */
static int run(struct app *a, int argc, char **argv)
{
    char msg[512];
    /* Two heaps shared by all threads instead of one per thread: a steady footprint on the small
     * machines this runs on, at a contention cost the benchmarks do not show. */
    mallopt(M_ARENA_MAX, 2);
    /* Large blocks (request bodies, batch answers) are mapped and unmapped on their own; a fixed
     * threshold also stops glibc from raising it after each large free, which leaves them in
     * the heap. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
    switch (config_load(&a->cfg, argc, argv, msg, sizeof(msg))) {
    case CONFIG_EXIT_OK:
        config_free(&a->cfg);
        return 0;
    case CONFIG_EXIT_ERROR:
        log_json(LOG_ERROR, msg, json_pack("{s:s}", "event", "bad_configuration"));
        config_free(&a->cfg);
        return 2;
    case CONFIG_OK:
        break;
    }
    log_set_level(a->cfg.log_level);
    struct err ke = {0};
    int key_rc =
        secretbox_init(&a->box, a->cfg.encryption_key, a->cfg.encryption_key_previous, &ke);
    OPENSSL_cleanse(a->cfg.encryption_key, strlen(a->cfg.encryption_key)); /* only the bytes stay */
    OPENSSL_cleanse(a->cfg.encryption_key_previous, strlen(a->cfg.encryption_key_previous));
    if (key_rc != 0) {
        log_json(LOG_ERROR, ke.message, json_pack("{s:s}", "event", "bad_configuration"));
        config_free(&a->cfg);
        return 2;
    }
    raise_fd_limit(&a->cfg);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = serve(a);
    app_close(a);
    curl_global_cleanup();
    config_free(&a->cfg);
    log_info("stopped");
    return rc;
}

int main(int argc, char **argv)
{
    struct app *a = oq_calloc(1, sizeof(*a)); /* megabytes (the event ring): not for the stack */
    int rc = run(a, argc, argv);
    free(a);
    return rc;
}
