#include "config.h"
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum cfg_type { CFG_STR, CFG_INT };

struct setting {
    const char *env;
    enum cfg_type type;
    size_t offset;
    const char *def; /* NULL: unset unless given */
    long min, max;   /* CFG_INT only */
    const char *help;
};

#define OFF(f) offsetof(struct config, f)
static const struct setting settings[] = {
    {"OFFLINEQ_DATABASE_URL", CFG_STR, OFF(database_url), NULL, 0, 0,
     "libpq connection URI or conninfo (required; `make run` provides a private cluster)"},
    {"OFFLINEQ_LISTEN", CFG_STR, OFF(listen), "127.0.0.1:8080", 0, 0, "address:port to serve on"},
    {"OFFLINEQ_WORKERS", CFG_INT, OFF(workers), "4", 0, 256,
     "worker threads (0: this instance serves the API and executes nothing)"},
    {"OFFLINEQ_MAX_BODY_BYTES", CFG_INT, OFF(max_body_bytes), "1048576", 1024, 67108864,
     "largest accepted request body in bytes"},
    {"OFFLINEQ_MAX_ATTEMPTS", CFG_INT, OFF(max_attempts), "5", 1, 1000,
     "default max_attempts of an operation"},
    {"OFFLINEQ_API_KEYS", CFG_STR, OFF(api_keys_raw), "",  0, 0,
     "key:role,... with role read|write|admin; empty = no auth (loopback only)"},
    {"OFFLINEQ_ENCRYPTION_KEY", CFG_STR, OFF(encryption_key), "", 0, 0,
     "64 hex characters (32 bytes): payloads and files are stored encrypted (AES-256-GCM)"},
    {"OFFLINEQ_CORS_ORIGINS", CFG_STR, OFF(cors_origins_raw), "", 0, 0,
     "comma-separated allowed browser origins, or *"},
    {"OFFLINEQ_LOG_LEVEL", CFG_STR, OFF(log_level_raw), "info", 0, 0, "debug|info|warn|error"},
    {"OFFLINEQ_UPSTREAMS", CFG_STR, OFF(upstreams_raw), "", 0, 0,
     "name=base_url,... upstreams operations may target"},
    {"OFFLINEQ_DB_POOL_SIZE", CFG_INT, OFF(db_pool_size), "8", 1, 256, "PostgreSQL connections"},
    {"OFFLINEQ_HTTP_THREADS", CFG_INT, OFF(http_threads), "4", 1, 256, "HTTP server threads"},
    {"OFFLINEQ_CONN_TIMEOUT_S", CFG_INT, OFF(conn_timeout_s), "30", 1, 3600,
     "an HTTP connection that sends nothing for this long is closed"},
    {"OFFLINEQ_MAX_CONNECTIONS", CFG_INT, OFF(max_connections), "4096", 16, 1000000,
     "open HTTP connections at most (more are closed at once)"},
    {"OFFLINEQ_MAX_CONNECTIONS_PER_IP", CFG_INT, OFF(max_connections_per_ip), "1024", 1, 1000000,
     "open HTTP connections at most from one client address (a proxy counts as one)"},
    {"OFFLINEQ_UPSTREAMS_FILE", CFG_STR, OFF(upstreams_file), "", 0, 0,
     "JSON file of upstreams with delivery policy (see README)"},
    {"OFFLINEQ_LEASE_S", CFG_INT, OFF(lease_s), "60", 2, 86400,
     "seconds a claimed operation stays leased without a heartbeat"},
    {"OFFLINEQ_SHUTDOWN_GRACE_S", CFG_INT, OFF(shutdown_grace_s), "10", 0, 3600,
     "seconds running operations get to finish on shutdown"},
    {"OFFLINEQ_BACKOFF_BASE_MS", CFG_INT, OFF(backoff_base_ms), "1000", 1, 86400000,
     "first retry delay cap (exponential backoff, full jitter)"},
    {"OFFLINEQ_BACKOFF_MAX_MS", CFG_INT, OFF(backoff_max_ms), "300000", 1, 86400000,
     "largest retry delay"},
    {"OFFLINEQ_MAX_PENDING", CFG_INT, OFF(max_pending), "1000000", 1, 2000000000,
     "pending operations beyond which enqueue answers 429"},
    {"OFFLINEQ_MAX_FILE_BYTES", CFG_INT, OFF(max_file_bytes), "52428800", 1, 1073741823,
     "largest file accepted by POST /api/offline/files"},
    {"OFFLINEQ_CLAIM_BATCH", CFG_INT, OFF(claim_batch), "128", 1, 1000,
     "most operations one worker claims at once (fewer against a slow upstream)"},
    {"OFFLINEQ_METRIC_BATCH", CFG_INT, OFF(metric_batch), "100", 1, 10000,
     "metric_log operations sent in one request"},
    {"OFFLINEQ_POLL_MS", CFG_INT, OFF(poll_ms), "1000", 10, 60000,
     "idle workers look for due work at least this often"},
    {"OFFLINEQ_CHECK_URLS", CFG_STR, OFF(check_urls_raw), "", 0, 0,
     "comma-separated URLs the network monitor probes (default: the upstreams' base URLs)"},
    {"OFFLINEQ_CHECK_INTERVAL_S", CFG_INT, OFF(check_interval_s), "10", 1, 3600,
     "seconds between connectivity checks"},
    {"OFFLINEQ_CHECK_TIMEOUT_MS", CFG_INT, OFF(check_timeout_ms), "3000", 100, 60000,
     "timeout of one probe"},
    {"OFFLINEQ_OFFLINE_AFTER", CFG_INT, OFF(offline_after), "1", 1, 100,
     "consecutive failed check rounds before the status flips to offline"},
    {"OFFLINEQ_AUTO_SYNC", CFG_STR, OFF(auto_sync_raw), "true", 0, 0,
     "true|false: seeds the stored auto-sync setting when none exists yet"},
    {"OFFLINEQ_SYNC_INTERVAL_S", CFG_INT, OFF(sync_interval_s), "60", 0, 86400,
     "seeds the stored interval of periodic sync passes (0: none)"},
};
#undef OFF

int config_fail(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, len, fmt, ap);
    va_end(ap);
    return -1;
}

/* "OFFLINEQ_MAX_BODY_BYTES" -> "--max-body-bytes" */
static void flag_name(const char *env, char *out, size_t len)
{
    size_t j = snprintf(out, len, "--");
    for (const char *p = env + strlen("OFFLINEQ_"); *p && j + 1 < len; p++)
        out[j++] = *p == '_' ? '-' : (char)tolower((unsigned char)*p);
    out[j] = '\0';
}

static int set_value(struct config *c, const struct setting *s, const char *v, char *out,
                     size_t len)
{
    char *base = (char *)c;
    if (s->type == CFG_STR) {
        char **slot = (char **)(base + s->offset);
        free(*slot);
        *slot = oq_strdup(v);
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < s->min || n > s->max)
        return config_fail(out, len, "%s: expected an integer from %ld to %ld, got \"%s\"", s->env,
                    s->min, s->max, v);
    *(int *)(base + s->offset) = (int)n;
    return 0;
}

static const struct setting *find_flag(const char *arg, const char **value)
{
    for (size_t i = 0; i < OQ_ARRAY_LEN(settings); i++) {
        char name[64];
        flag_name(settings[i].env, name, sizeof(name));
        size_t n = strlen(name);
        if (strncmp(arg, name, n) == 0 && arg[n] == '=') {
            *value = arg + n + 1;
            return &settings[i];
        }
    }
    return NULL;
}

static bool is_loopback_addr(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return false;
}

/* The listen host ("[::1]" without brackets) resolves, and to loopback addresses only. */
static bool resolves_to_loopback(const char *host)
{
    char name[sizeof(((struct config *)0)->listen_host)];
    snprintf(name, sizeof(name), "%s", host);
    size_t n = strlen(name);
    if (n >= 2 && name[0] == '[' && name[n - 1] == ']') {
        memmove(name, name + 1, n - 2);
        name[n - 2] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(name, NULL, &hints, &res) != 0 || res == NULL)
        return false;
    bool all = true;
    for (const struct addrinfo *ai = res; ai != NULL && all; ai = ai->ai_next)
        all = is_loopback_addr(ai->ai_addr);
    freeaddrinfo(res);
    return all;
}

static int parse_listen(struct config *c, char *out, size_t len)
{
    const char *colon = strrchr(c->listen, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    size_t hlen = colon ? (size_t)(colon - c->listen) : 0;
    if (!colon || end == colon + 1 || *end != '\0' || port < 0 || port > 65535 || hlen == 0 ||
        hlen >= sizeof(c->listen_host))
        return config_fail(out, len, "OFFLINEQ_LISTEN: expected host:port, got \"%s\"", c->listen);
    memcpy(c->listen_host, c->listen, hlen);
    c->listen_host[hlen] = '\0';
    c->listen_port = (int)port;
    c->listen_is_loopback = resolves_to_loopback(c->listen_host);
    return 0;
}

/* Splits s on commas into trimmed, non-empty, newly allocated items. */
char **config_split_list(const char *s, size_t *n)
{
    char **items = NULL;
    *n = 0;
    const char *p = s;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a) {
            char **grown = realloc(items, (*n + 1) * sizeof(*items));
            OQ_ASSERT(grown != NULL);
            items = grown;
            items[(*n)++] = oq_strndup(a, (size_t)(b - a));
        }
        p = comma ? comma + 1 : end;
    }
    return items;
}

void config_free_list(char **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
}

static int parse_role(const char *s, enum role *out)
{
    static const struct {
        const char *name;
        enum role role;
    } roles[] = {{"read", ROLE_READ}, {"write", ROLE_WRITE}, {"admin", ROLE_ADMIN}};
    for (size_t i = 0; i < OQ_ARRAY_LEN(roles); i++) {
        if (strcmp(s, roles[i].name) == 0) {
            *out = roles[i].role;
            return 0;
        }
    }
    return -1;
}

static int parse_api_keys(struct config *c, char *out, size_t len)
{
    size_t n = 0;
    char **items = config_split_list(c->api_keys_raw, &n);
    int rc = 0;
    c->api_keys = oq_calloc(n, sizeof(*c->api_keys));
    for (size_t i = 0; i < n; i++) {
        char *colon = strrchr(items[i], ':');
        enum role role;
        if (colon == NULL || colon == items[i] || parse_role(colon + 1, &role) != 0) {
            /* never echo the key itself */
            rc = config_fail(out, len, "OFFLINEQ_API_KEYS: entry %zu must be key:read|write|admin",
                      i + 1);
            break;
        }
        SHA256((const unsigned char *)items[i], (size_t)(colon - items[i]),
               c->api_keys[i].key_sha256);
        OPENSSL_cleanse(items[i], strlen(items[i]));
        c->api_keys[i].role = role;
        c->n_api_keys = i + 1;
    }
    config_free_list(items, n);
    OPENSSL_cleanse(c->api_keys_raw, strlen(c->api_keys_raw));
    return rc;
}

/* OFFLINEQ_CHECK_URLS, or one probe per upstream base URL. */
static int derive_check_urls(struct config *c, char *out, size_t len)
{
    c->check_urls = config_split_list(c->check_urls_raw, &c->n_check_urls);
    for (size_t i = 0; i < c->n_check_urls; i++) {
        char origin[512];
        if (config_url_origin(c->check_urls[i], origin, sizeof(origin)) != 0)
            return config_fail(out, len, "OFFLINEQ_CHECK_URLS: entry %zu must be an http(s) URL", i + 1);
    }
    if (c->n_check_urls > 0)
        return 0;
    c->check_urls = oq_calloc(c->n_upstreams, sizeof(char *));
    for (size_t i = 0; i < c->n_upstreams; i++)
        c->check_urls[c->n_check_urls++] = oq_strdup(c->upstreams[i].base_url);
    return 0;
}

static int derive(struct config *c, char *out, size_t len)
{
    if (c->database_url == NULL || c->database_url[0] == '\0')
        return config_fail(out, len, "OFFLINEQ_DATABASE_URL: not set (e.g. postgresql://user@host/db)");
    if (log_level_parse(c->log_level_raw, &c->log_level) != 0)
        return config_fail(out, len, "OFFLINEQ_LOG_LEVEL: expected debug|info|warn|error, got \"%s\"",
                    c->log_level_raw);
    if (parse_listen(c, out, len) != 0 || parse_api_keys(c, out, len) != 0 ||
        upstreams_parse(c, out, len) != 0)
        return -1;
    if (c->backoff_base_ms > c->backoff_max_ms)
        return config_fail(out, len, "OFFLINEQ_BACKOFF_BASE_MS: must not exceed OFFLINEQ_BACKOFF_MAX_MS");
    c->cors_origins = config_split_list(c->cors_origins_raw, &c->n_cors_origins);
    if (strcmp(c->auto_sync_raw, "true") != 0 && strcmp(c->auto_sync_raw, "false") != 0)
        return config_fail(out, len, "OFFLINEQ_AUTO_SYNC: expected true or false, got \"%s\"", c->auto_sync_raw);
    c->auto_sync = strcmp(c->auto_sync_raw, "true") == 0;
    if (derive_check_urls(c, out, len) != 0)
        return -1;
    if (c->n_api_keys == 0 && !c->listen_is_loopback)
        return config_fail(out, len,
                    "OFFLINEQ_API_KEYS: no keys configured, so OFFLINEQ_LISTEN must resolve to "
                    "loopback addresses only (got \"%s\"); set keys to listen elsewhere",
                    c->listen);
    return 0;
}

enum config_result config_load(struct config *c, int argc, char **argv, char *out, size_t len)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < OQ_ARRAY_LEN(settings); i++) {
        const struct setting *s = &settings[i];
        const char *env = getenv(s->env);
        const char *v = env ? env : s->def;
        if (v != NULL && set_value(c, s, v, out, len) != 0)
            return CONFIG_EXIT_ERROR;
    }
    for (int i = 1; i < argc; i++) {
        const char *value = NULL;
        const struct setting *s = NULL;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            config_print_help(stdout);
            return CONFIG_EXIT_OK;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("offlineq %s\n", OQ_VERSION);
            return CONFIG_EXIT_OK;
        }
        s = find_flag(argv[i], &value);
        if (s == NULL) {
            config_fail(out, len, "unknown argument \"%s\" (see --help)", argv[i]);
            return CONFIG_EXIT_ERROR;
        }
        if (set_value(c, s, value, out, len) != 0)
            return CONFIG_EXIT_ERROR;
    }
    return derive(c, out, len) == 0 ? CONFIG_OK : CONFIG_EXIT_ERROR;
}

void config_free(struct config *c)
{
    for (size_t i = 0; i < OQ_ARRAY_LEN(settings); i++) {
        if (settings[i].type == CFG_STR)
            free(*(char **)((char *)c + settings[i].offset));
    }
    free(c->api_keys);
    upstreams_free(c);
    config_free_list(c->cors_origins, c->n_cors_origins);
    config_free_list(c->check_urls, c->n_check_urls);
    memset(c, 0, sizeof(*c));
}

void config_print_help(FILE *out)
{
    fprintf(out, "offlineq %s: durable offline operation queue\n\n"
                 "usage: offlineq [--flag=value ...]\n\n"
                 "Every setting is an environment variable or the equivalent flag:\n\n",
            OQ_VERSION);
    for (size_t i = 0; i < OQ_ARRAY_LEN(settings); i++) {
        const struct setting *s = &settings[i];
        char flag[64];
        flag_name(s->env, flag, sizeof(flag));
        fprintf(out, "  %-26s %-22s %s", s->env, flag, s->help);
        if (s->def != NULL && s->def[0] != '\0')
            fprintf(out, " (default %s)", s->def);
        fputc('\n', out);
    }
}

const struct upstream *config_find_upstream(const struct config *c, const char *name)
{
    for (size_t i = 0; i < c->n_upstreams; i++) {
        if (strcmp(c->upstreams[i].name, name) == 0)
            return &c->upstreams[i];
    }
    return NULL;
}

enum role config_key_role(const struct config *c, const char *token)
{
    enum role found = ROLE_NONE;
    unsigned char digest[32];
    SHA256((const unsigned char *)token, strlen(token), digest);
    /* Digests of equal length, compared against every key: timing tells nothing. */
    for (size_t i = 0; i < c->n_api_keys; i++) {
        if (CRYPTO_memcmp(digest, c->api_keys[i].key_sha256, sizeof(digest)) == 0)
            found = c->api_keys[i].role;
    }
    return found;
}
