/* Settings: one table parses the environment, --flags, and prints --help. */
#ifndef OQ_CONFIG_H
#define OQ_CONFIG_H

#include <stdatomic.h>
#include <stdio.h>

#include "core/common.h"
#include "core/log.h"
#include "core/upstreams.h"

enum role { ROLE_NONE = 0, ROLE_READ = 1, ROLE_WRITE = 2, ROLE_ADMIN = 3 };

struct api_key {
    unsigned char key_sha256[32]; /* only the digest is kept: keys never sit in memory as text */
    enum role role;
};

/* What SIGHUP reloads (OFFLINEQ_API_KEYS_FILE, OFFLINEQ_UPSTREAMS_FILE): built whole by
 * config_reload and published at once by config_publish, so a reader sees the old set or the
 * new one, never a mix. A published set is never freed before config_free: a delivery may still
 * hold an upstream of an older one (a reload keeps the previous one's few KiB). */
struct config_live {
    struct api_key *api_keys;
    size_t n_api_keys;
    struct upstream *upstreams;
    size_t n_upstreams;
    struct config_live *older;
};

struct config {
    /* Raw settings, filled from the table. */
    char *database_url;
    char *db_schema; /* OFFLINEQ_DB_SCHEMA: every connection's search_path */
    char *listen;
    int workers;
    int max_body_bytes;
    int max_attempts;
    char *api_keys_raw;
    char *encryption_key;
    char *encryption_key_previous;
    char *cors_origins_raw;
    char *log_level_raw;
    char *upstreams_raw;
    int db_pool_size;
    int http_threads;
    int conn_timeout_s;
    int max_connections;
    int max_connections_per_ip;
    int lease_s;
    int max_lease_expiries;
    int shutdown_grace_s;
    int backoff_base_ms;
    int backoff_max_ms;
    int max_pending;
    int max_file_bytes;
    int metric_batch;
    int claim_batch;
    int poll_ms;
    char *upstreams_file;
    char *check_urls_raw;
    int check_interval_s;
    int check_timeout_ms;
    int offline_after;
    char *auto_sync_raw;
    int sync_interval_s;
    int max_page_bytes;
    int max_subscribers;
    int retain_completed_s; /* 0: completed operations are kept forever */
    int retain_failed_s;    /* 0: failed operations are kept forever */
    int idempotency_ttl_s;  /* an Idempotency-Key's answer is replayed this long */

    char **check_urls; /* derived: OFFLINEQ_CHECK_URLS, or the upstreams' base URLs */
    size_t n_check_urls;
    bool auto_sync;

    /* Derived from the raw settings by config_load(). */
    char listen_host[64];
    int listen_port;
    bool listen_is_loopback;
    char **cors_origins;
    size_t n_cors_origins;
    enum log_level log_level;
    bool has_api_keys; /* at start: keys stay required (a reload to none is refused) */
    _Atomic(struct config_live *) live;
};

enum config_result { CONFIG_OK, CONFIG_EXIT_OK, CONFIG_EXIT_ERROR };

/* Fills *c from defaults, then the environment, then argv flags. On CONFIG_EXIT_ERROR a
 * one-line message naming the variable has been written to err_out. --help and --version
 * print to stdout and return CONFIG_EXIT_OK. Free with config_free. */
enum config_result config_load(struct config *c, int argc, char **argv, char *err_out,
                               size_t err_len);
void config_free(struct config *c);

/* Writes the --help text (generated from the settings table). */
void config_print_help(FILE *out);

/* The keys and upstreams in force now. */
const struct config_live *config_live(const struct config *c);

/* Reads the API keys (from OFFLINEQ_API_KEYS_FILE when the keys came from a file, else the
 * running ones again) and the upstreams (OFFLINEQ_UPSTREAMS as at start, and
 * OFFLINEQ_UPSTREAMS_FILE read again) into a new set, *fresh, not yet in force. Returns 0, or
 * -1 with a one-line message in out (nothing is changed). */
int config_reload(struct config *c, struct config_live **fresh, char *out, size_t len);

/* Puts fresh in force; the set it replaces is kept until config_free. */
void config_publish(struct config *c, struct config_live *fresh);

/* Returns the upstream named name in the set in force, or NULL. */
const struct upstream *config_find_upstream(const struct config *c, const char *name);

/* Returns the configured key a bearer token is (constant-time compare; borrowed from c), or
 * NULL. */
const struct api_key *config_key_find(const struct config *c, const char *token);

/* Returns the role granted to a bearer token, or ROLE_NONE. */
enum role config_key_role(const struct config *c, const char *token);

#endif
