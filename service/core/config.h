/* Settings: one table parses the environment, --flags, and prints --help. */
#ifndef OQ_CONFIG_H
#define OQ_CONFIG_H

#include <stdio.h>

#include "core/common.h"
#include "core/log.h"

enum role { ROLE_NONE = 0, ROLE_READ = 1, ROLE_WRITE = 2, ROLE_ADMIN = 3 };

struct api_key {
    unsigned char key_sha256[32]; /* only the digest is kept: keys never sit in memory as text */
    enum role role;
};

struct upstream {
    char *name;
    char *base_url; /* without trailing slash */
    char *origin;   /* scheme://host[:port], lowercase scheme and host */
    char *base_path; /* the path of base_url: "" or "/a/b"; endpoints stay below it */
    char **headers; /* "Name: value" lines sent on every request, n_headers of them */
    size_t n_headers;
    int connect_timeout_ms;
    int timeout_ms;
    int max_concurrency; /* 0: unlimited */
    double rate_per_s;   /* 0: unlimited */
    unsigned char *signing_key; /* decoded at load, signing_key_len bytes; NULL: not signed */
    size_t signing_key_len;
    int breaker_failures;
    int breaker_cooldown_s;
};

struct config {
    /* Raw settings, filled from the table. */
    char *database_url;
    char *listen;
    int workers;
    int max_body_bytes;
    int max_attempts;
    char *api_keys_raw;
    char *encryption_key;
    char *cors_origins_raw;
    char *log_level_raw;
    char *upstreams_raw;
    int db_pool_size;
    int http_threads;
    int conn_timeout_s;
    int max_connections;
    int max_connections_per_ip;
    int lease_s;
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

    char **check_urls; /* derived: OFFLINEQ_CHECK_URLS, or the upstreams' base URLs */
    size_t n_check_urls;
    bool auto_sync;

    /* Derived from the raw settings by config_load(). */
    char listen_host[64];
    int listen_port;
    bool listen_is_loopback;
    struct api_key *api_keys;
    size_t n_api_keys;
    char **cors_origins;
    size_t n_cors_origins;
    struct upstream *upstreams;
    size_t n_upstreams;
    enum log_level log_level;
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

/* Writes a formatted one-line error into out and returns -1. */
int config_fail(char *out, size_t len, const char *fmt, ...) OQ_PRINTF(3, 4);

/* Splits s on commas into trimmed, non-empty, malloc'd items; free with config_free_list. */
char **config_split_list(const char *s, size_t *n);
void config_free_list(char **items, size_t n);

/* Fills c->upstreams from OFFLINEQ_UPSTREAMS and OFFLINEQ_UPSTREAMS_FILE (upstream_config.c). */
int upstreams_parse(struct config *c, char *out, size_t len);
void upstreams_free(struct config *c);

/* Lowercase scheme://host[:port] of an http(s) URL without userinfo; -1 otherwise. */
int config_url_origin(const char *url, char *origin, size_t len);

/* The one URL reader (libcurl's, the parser that sends the request): writes the origin as
 * config_url_origin does and, when path is not NULL, sets *path to a new string holding the
 * URL's path as written (no dot segments removed, "/" when empty). Returns 0 or -1. */
int config_url_parse(const char *url, char *origin, size_t len, char **path);

/* The HMAC key of a signing secret (len bytes): "whsec_" and strict base64 (standard
 * alphabet, padded, canonical, not empty), or else the text itself. Returns a new buffer of
 * *key_len bytes (free with config_free_key), or NULL when the secret is malformed. */
unsigned char *config_signing_key(const char *secret, size_t len, size_t *key_len);
void config_free_key(unsigned char *key, size_t key_len);

/* Returns the upstream named name, or NULL. */
const struct upstream *config_find_upstream(const struct config *c, const char *name);

/* Returns the role granted to a bearer token (constant-time compare), or ROLE_NONE. */
enum role config_key_role(const struct config *c, const char *token);

#endif
