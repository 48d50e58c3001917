#include "core/config.h"
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strlist.h"
#include "core/url.h"

/* CFG_SECRET: a string that is a secret. It may come from the file named by NAME_FILE, is wiped
 * from the environment once read, and is refused as a --flag (argv shows in ps). */
enum cfg_type { CFG_STR, CFG_INT, CFG_SECRET };

#define ENV_PREFIX "OFFLINEQ_" /* every setting's variable starts so */
#define ENV_PREFIX_LEN (sizeof(ENV_PREFIX) - 1)
#define FILE_SUFFIX "_FILE" /* NAME_FILE: the file holding secret NAME */
#define FILE_SUFFIX_LEN (sizeof(FILE_SUFFIX) - 1)

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
    {"OFFLINEQ_DATABASE_URL", CFG_SECRET, OFF(database_url), NULL, 0, 0,
     "libpq connection URI or conninfo (required; `make run` provides a private cluster)"},
    {"OFFLINEQ_DB_SCHEMA", CFG_STR, OFF(db_schema), "offlineq", 0, 0,
     "PostgreSQL schema holding every table and function of offlineq ([a-z_][a-z0-9_]{0,62})"},
    {"OFFLINEQ_LISTEN", CFG_STR, OFF(listen), "127.0.0.1:8080", 0, 0, "address:port to serve on"},
    {"OFFLINEQ_WORKERS", CFG_INT, OFF(workers), "4", 0, 256,
     "worker threads (0: this instance serves the API and executes nothing)"},
    {"OFFLINEQ_MAX_BODY_BYTES", CFG_INT, OFF(max_body_bytes), "1048576", 1024, 67108864,
     "largest accepted request body in bytes"},
    {"OFFLINEQ_MAX_ATTEMPTS", CFG_INT, OFF(max_attempts), "5", 1, 1000,
     "default max_attempts of an operation"},
    {"OFFLINEQ_API_KEYS", CFG_SECRET, OFF(api_keys_raw), "", 0, 0,
     "key:role,... with role read|write|admin; empty = no auth (loopback only)"},
    {"OFFLINEQ_ENCRYPTION_KEY", CFG_SECRET, OFF(encryption_key), "", 0, 0,
     "64 hex characters (32 bytes): payloads and files are stored encrypted (AES-256-GCM)"},
    {"OFFLINEQ_ENCRYPTION_KEY_PREVIOUS", CFG_SECRET, OFF(encryption_key_previous), "", 0, 0,
     "the key being rotated away from: read only, while what it sealed is sealed again"},
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
    {"OFFLINEQ_LEASE_S", CFG_INT, OFF(lease_s), "60", 2, OQ_DAY_S,
     "seconds a claimed operation stays leased without a heartbeat"},
    {"OFFLINEQ_MAX_LEASE_EXPIRIES", CFG_INT, OFF(max_lease_expiries), "3", 1, 1000,
     "leases of one operation that may run out (its worker died) before it fails"},
    {"OFFLINEQ_SHUTDOWN_GRACE_S", CFG_INT, OFF(shutdown_grace_s), "10", 0, 3600,
     "seconds running operations and HTTP requests get to finish on shutdown"},
    {"OFFLINEQ_BACKOFF_BASE_MS", CFG_INT, OFF(backoff_base_ms), "1000", 1, OQ_DAY_S * 1000L,
     "first retry delay cap (exponential backoff, full jitter)"},
    {"OFFLINEQ_BACKOFF_MAX_MS", CFG_INT, OFF(backoff_max_ms), "300000", 1, OQ_DAY_S * 1000L,
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
    {"OFFLINEQ_SYNC_INTERVAL_S", CFG_INT, OFF(sync_interval_s), "60", 0, OQ_DAY_S,
     "seeds the stored interval of periodic sync passes (0: none)"},
    {"OFFLINEQ_MAX_PAGE_BYTES", CFG_INT, OFF(max_page_bytes), "8388608", 1024, 1073741823,
     "a list page stops before its operations pass this many bytes (at least one per page)"},
    {"OFFLINEQ_MAX_SUBSCRIBERS", CFG_INT, OFF(max_subscribers), "1000", 1, 1000000,
     "open event streams at most (more get 503 with Retry-After)"},
    {"OFFLINEQ_RETAIN_COMPLETED_S", CFG_INT, OFF(retain_completed_s), "604800", 0, 2000000000,
     "completed operations are deleted this long after completion (0: kept forever)"},
    {"OFFLINEQ_RETAIN_FAILED_S", CFG_INT, OFF(retain_failed_s), "2592000", 0, 2000000000,
     "failed operations are deleted this long after they failed (0: kept forever)"},
    {"OFFLINEQ_IDEMPOTENCY_TTL_S", CFG_INT, OFF(idempotency_ttl_s), "86400", 1, 31536000,
     "an enqueue's answer is replayed for the same Idempotency-Key this long"},
};
#undef OFF

/* "OFFLINEQ_MAX_BODY_BYTES" -> "--max-body-bytes" */
static void flag_name(const char *env, char *out, size_t len)
{
    size_t j = snprintf(out, len, "--");
    for (const char *p = env + ENV_PREFIX_LEN; *p && j + 1 < len; p++)
        out[j++] = *p == '_' ? '-' : (char)tolower((unsigned char)*p);
    out[j] = '\0';
}

static int set_value(struct config *c, const struct setting *s, const char *v, char *out,
                     size_t len)
{
    char *base = (char *)c;
    if (s->type != CFG_INT) {
        char **slot = (char **)(base + s->offset);
        free(*slot);
        *slot = oq_strdup(v);
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < s->min || n > s->max)
        return oq_fail_msg(out, len, "%s: expected an integer from %ld to %ld, got \"%s\"", s->env,
                           s->min, s->max, v);
    *(int *)(base + s->offset) = (int)n;
    return 0;
}

/* The setting of "--name=value" (value after the '=') or of "--name" (value NULL: the next
 * argument holds it). */
static const struct setting *find_flag(const char *arg, const char **value)
{
    for (size_t i = 0; i < OQ_ARRAY_LEN(settings); i++) {
        char name[64];
        flag_name(settings[i].env, name, sizeof(name));
        size_t n = strlen(name);
        if (strncmp(arg, name, n) == 0 && (arg[n] == '=' || arg[n] == '\0')) {
            *value = arg[n] == '=' ? arg + n + 1 : NULL;
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
        return oq_fail_msg(out, len, "OFFLINEQ_LISTEN: expected host:port, got \"%s\"", c->listen);
    memcpy(c->listen_host, c->listen, hlen);
    c->listen_host[hlen] = '\0';
    c->listen_port = (int)port;
    c->listen_is_loopback = resolves_to_loopback(c->listen_host);
    return 0;
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

/* Parses raw ("key:role,...", wiped here) into the digests of live. */
static int parse_api_keys(char *raw, struct config_live *live, char *out, size_t len)
{
    size_t n = 0;
    char **items = strlist_split(raw, &n);
    int rc = 0;
    live->api_keys = oq_calloc(n, sizeof(*live->api_keys));
    for (size_t i = 0; i < n; i++) {
        char *colon = strrchr(items[i], ':');
        enum role role;
        if (colon == NULL || colon == items[i] || parse_role(colon + 1, &role) != 0) {
            /* never echo the key itself */
            rc = oq_fail_msg(out, len, "OFFLINEQ_API_KEYS: entry %zu must be key:read|write|admin",
                             i + 1);
            break;
        }
        SHA256((const unsigned char *)items[i], (size_t)(colon - items[i]),
               live->api_keys[i].key_sha256);
        OPENSSL_cleanse(items[i], strlen(items[i]));
        live->api_keys[i].role = role;
        live->n_api_keys = i + 1;
    }
    strlist_free(items, n);
    OPENSSL_cleanse(raw, strlen(raw));
    return rc;
}

static void live_free(struct config_live *l)
{
    while (l != NULL) {
        struct config_live *older = l->older;
        free(l->api_keys);
        upstreams_free(l->upstreams, l->n_upstreams);
        free(l);
        l = older;
    }
}

/* OFFLINEQ_CHECK_URLS, or one probe per upstream base URL. */
static int derive_check_urls(struct config *c, char *out, size_t len)
{
    c->check_urls = strlist_split(c->check_urls_raw, &c->n_check_urls);
    for (size_t i = 0; i < c->n_check_urls; i++) {
        char origin[512];
        if (url_origin(c->check_urls[i], origin, sizeof(origin)) != 0)
            return oq_fail_msg(out, len, "OFFLINEQ_CHECK_URLS: entry %zu must be an http(s) URL",
                               i + 1);
    }
    if (c->n_check_urls > 0)
        return 0;
    const struct config_live *l = config_live(c);
    c->check_urls = oq_calloc(l->n_upstreams, sizeof(char *));
    for (size_t i = 0; i < l->n_upstreams; i++)
        c->check_urls[c->n_check_urls++] = oq_strdup(l->upstreams[i].base_url);
    return 0;
}

/* A plain lower-case SQL identifier, so it goes into search_path and DDL unquoted; not public
 * (the point of the schema) and not a name PostgreSQL reserves. */
static int check_db_schema(const char *s, char *out, size_t len)
{
    size_t n = strlen(s);
    bool ok = n >= 1 && n <= 63 && ((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_');
    for (size_t i = 1; ok && i < n; i++)
        ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_';
    if (!ok)
        return oq_fail_msg(out, len,
                           "OFFLINEQ_DB_SCHEMA: expected a plain SQL identifier "
                           "([a-z_][a-z0-9_]{0,62}), got \"%s\"",
                           s);
    if (strcmp(s, "public") == 0 || strcmp(s, "information_schema") == 0 ||
        strncmp(s, "pg_", 3) == 0)
        return oq_fail_msg(out, len,
                           "OFFLINEQ_DB_SCHEMA: \"%s\" is not a schema offlineq may own "
                           "(public, information_schema and pg_* are refused)",
                           s);
    return 0;
}

static int derive(struct config *c, char *out, size_t len)
{
    if (c->database_url == NULL || c->database_url[0] == '\0')
        return oq_fail_msg(out, len,
                           "OFFLINEQ_DATABASE_URL: not set (e.g. postgresql://user@host/db)");
    if (check_db_schema(c->db_schema, out, len) != 0)
        return -1;
    if (log_level_parse(c->log_level_raw, &c->log_level) != 0)
        return oq_fail_msg(out, len,
                           "OFFLINEQ_LOG_LEVEL: expected debug|info|warn|error, got \"%s\"",
                           c->log_level_raw);
    struct config_live *live = oq_calloc(1, sizeof(*live));
    atomic_init(&c->live, live); /* freed by config_free, also when this fails */
    if (parse_listen(c, out, len) != 0 || parse_api_keys(c->api_keys_raw, live, out, len) != 0 ||
        upstreams_parse(c->upstreams_raw, c->upstreams_file, &live->upstreams, &live->n_upstreams,
                        out, len) != 0)
        return -1;
    c->has_api_keys = live->n_api_keys > 0;
    if (c->backoff_base_ms > c->backoff_max_ms)
        return oq_fail_msg(out, len,
                           "OFFLINEQ_BACKOFF_BASE_MS: must not exceed OFFLINEQ_BACKOFF_MAX_MS");
    c->cors_origins = strlist_split(c->cors_origins_raw, &c->n_cors_origins);
    if (strcmp(c->auto_sync_raw, "true") != 0 && strcmp(c->auto_sync_raw, "false") != 0)
        return oq_fail_msg(out, len, "OFFLINEQ_AUTO_SYNC: expected true or false, got \"%s\"",
                           c->auto_sync_raw);
    c->auto_sync = strcmp(c->auto_sync_raw, "true") == 0;
    if (derive_check_urls(c, out, len) != 0)
        return -1;
    if (!c->has_api_keys && !c->listen_is_loopback)
        return oq_fail_msg(
            out, len,
            "OFFLINEQ_API_KEYS: no keys configured, so OFFLINEQ_LISTEN must resolve to "
            "loopback addresses only (got \"%s\"); set keys to listen elsewhere",
            c->listen);
    for (size_t i = 0; !c->has_api_keys && i < c->n_cors_origins; i++) {
        if (strcmp(c->cors_origins[i], "*") == 0) /* every page could read the queue */
            return oq_fail_msg(out, len,
                               "OFFLINEQ_CORS_ORIGINS: \"*\" needs OFFLINEQ_API_KEYS; "
                               "without keys, list the allowed origins by name");
    }
    return 0;
}

/* Names the service does not read but the project's own tools set around it (the test
 * harness, scripts/, bench/): tolerated. A trailing '*' matches a prefix. */
static const char *const tool_names[] = {
    "OFFLINEQ_TEST_*",    "OFFLINEQ_PG_*",      "OFFLINEQ_BENCH_*",    "OFFLINEQ_FUZZ_*",
    "OFFLINEQ_BIN",       "OFFLINEQ_BUILD_DIR", "OFFLINEQ_SOURCE_DIR", "OFFLINEQ_CONTRACT_DIR",
    "OFFLINEQ_ARTIFACTS", "OFFLINEQ_DATA_DIR",  "OFFLINEQ_FAULT_SEED", "OFFLINEQ_MODEL_SEED",
};

static bool is_tool_name(const char *name, size_t n)
{
    for (size_t i = 0; i < OQ_ARRAY_LEN(tool_names); i++) {
        size_t l = strlen(tool_names[i]);
        bool prefix = tool_names[i][l - 1] == '*';
        if (prefix ? n >= l - 1 && strncmp(name, tool_names[i], l - 1) == 0
                   : n == l && strncmp(name, tool_names[i], n) == 0)
            return true;
    }
    return false;
}

/* The setting called name[0..n), or (secret settings) its NAME_FILE; *is_file says which. */
static const struct setting *find_env(const char *name, size_t n, bool *is_file)
{
    for (size_t i = 0; i < OQ_ARRAY_LEN(settings); i++) {
        size_t l = strlen(settings[i].env);
        if (strncmp(name, settings[i].env, l) != 0)
            continue;
        *is_file = n == l + FILE_SUFFIX_LEN && settings[i].type == CFG_SECRET &&
                   strncmp(name + l, FILE_SUFFIX, FILE_SUFFIX_LEN) == 0;
        if (n == l || *is_file)
            return &settings[i];
    }
    return NULL;
}

/* Levenshtein distance of two short names. */
static size_t distance(const char *a, size_t na, const char *b)
{
    size_t nb = strlen(b), row[128];
    if (nb >= OQ_ARRAY_LEN(row))
        return SIZE_MAX;
    for (size_t j = 0; j <= nb; j++)
        row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            best = up + 1 < best ? up + 1 : best;
            best = row[j - 1] + 1 < best ? row[j - 1] + 1 : best;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

/* The known variable closest to name[0..n), into out. */
static void closest_name(const char *name, size_t n, char *out, size_t len)
{
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < OQ_ARRAY_LEN(settings); i++) {
        for (int file = 0; file <= (settings[i].type == CFG_SECRET); file++) {
            char cand[80];
            snprintf(cand, sizeof(cand), "%s%s", settings[i].env, file ? FILE_SUFFIX : "");
            size_t d = distance(name, n, cand);
            if (d < best) {
                best = d;
                snprintf(out, len, "%s", cand);
            }
        }
    }
}

extern char **environ;

/* A typo in a variable's name must never leave the service open or unkeyed: every OFFLINEQ_*
 * variable is a setting, a setting's _FILE, or a tool-side name. */
static int check_unknown_env(char *out, size_t len)
{
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, ENV_PREFIX, ENV_PREFIX_LEN) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
        bool is_file;
        if (find_env(*e, n, &is_file) != NULL || is_tool_name(*e, n))
            continue;
        char near[80] = "";
        closest_name(*e, n, near, sizeof(near));
        return oq_fail_msg(out, len, "unknown variable %.*s (did you mean %s?)", (int)n, *e, near);
    }
    return 0;
}

/* The file's content, one trailing newline stripped (malloc'd), or NULL with errno. */
static char *read_secret_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    struct oq_buf b = {0};
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        oq_buf_add(&b, chunk, got);
    OPENSSL_cleanse(chunk, sizeof(chunk));
    bool failed = ferror(f) != 0;
    fclose(f);
    char *text = b.data ? b.data : oq_strdup("");
    size_t n = strlen(text);
    if (n > 0 && text[n - 1] == '\n')
        text[n - 1] = '\0';
    if (failed) {
        OPENSSL_cleanse(text, n);
        free(text);
        errno = EIO;
        return NULL;
    }
    return text;
}

/* A secret setting from NAME or the file NAME_FILE names (both: an error). */
static int load_secret(struct config *c, const struct setting *s, const char *env, char *out,
                       size_t len)
{
    char file_var[80];
    snprintf(file_var, sizeof(file_var), "%s_FILE", s->env);
    const char *path = getenv(file_var);
    if (path == NULL)
        return set_value(c, s, env ? env : s->def ? s->def : "", out, len);
    if (env != NULL)
        return oq_fail_msg(out, len, "%s and %s are both set: set one of them", s->env, file_var);
    char *text = read_secret_file(path);
    if (text == NULL)
        return oq_fail_msg(out, len, "%s: cannot read \"%s\": %s", file_var, path, strerror(errno));
    int rc = set_value(c, s, text, out, len);
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    return rc;
}

/* Overwrites the values of secret variables in the environment block itself (what
 * /proc/PID/environ shows; unsetenv alone only drops the pointer), then unsets them. */
static void wipe_secret_env(void)
{
    for (size_t i = 0; i < OQ_ARRAY_LEN(settings); i++) {
        if (settings[i].type != CFG_SECRET)
            continue;
        size_t n = strlen(settings[i].env);
        for (char **ep = environ; ep != NULL && *ep != NULL; ep++) { /* every copy of the name */
            if (strncmp(*ep, settings[i].env, n) == 0 && (*ep)[n] == '=')
                OPENSSL_cleanse(*ep + n + 1, strlen(*ep + n + 1));
        }
        unsetenv(settings[i].env);
    }
}

static int load_env(struct config *c, char *out, size_t len)
{
    if (check_unknown_env(out, len) != 0)
        return -1;
    for (size_t i = 0; i < OQ_ARRAY_LEN(settings); i++) {
        const struct setting *s = &settings[i];
        const char *env = getenv(s->env);
        if (s->type == CFG_SECRET) {
            if (load_secret(c, s, env, out, len) != 0)
                return -1;
            continue;
        }
        const char *v = env ? env : s->def;
        if (v != NULL && set_value(c, s, v, out, len) != 0)
            return -1;
    }
    wipe_secret_env();
    return 0;
}

/* The argv entry at *i ("--flag=value", or "--flag value", which takes the next entry too);
 * 1: --help/--version done, 0: applied, -1: error. */
static int load_flag(struct config *c, int argc, char **argv, int *i, char *out, size_t len)
{
    const char *arg = argv[*i], *value = NULL;
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
        config_print_help(stdout);
        return 1;
    }
    if (strcmp(arg, "--version") == 0) {
        printf("offlineq %s\n", OQ_VERSION);
        return 1;
    }
    const struct setting *s = find_flag(arg, &value);
    int name_len = (int)strcspn(arg, "="); /* never echo a value: it may be a secret */
    if (s == NULL)
        return oq_fail_msg(out, len, "unknown argument \"%.*s\" (see --help)", name_len, arg);
    if (s->type == CFG_SECRET)
        return oq_fail_msg(out, len,
                           "%.*s: a secret is not accepted as a flag (argv shows in ps "
                           "and /proc/PID/cmdline); set %s or %s_FILE instead",
                           name_len, arg, s->env, s->env);
    if (value == NULL) {
        if (*i + 1 >= argc)
            return oq_fail_msg(out, len, "%s needs a value (%s=VALUE or %s VALUE)", arg, arg, arg);
        value = argv[++*i];
    }
    return set_value(c, s, value, out, len);
}

enum config_result config_load(struct config *c, int argc, char **argv, char *out, size_t len)
{
    memset(c, 0, sizeof(*c));
    if (load_env(c, out, len) != 0)
        return CONFIG_EXIT_ERROR;
    for (int i = 1; i < argc; i++) {
        int rc = load_flag(c, argc, argv, &i, out, len);
        if (rc != 0)
            return rc > 0 ? CONFIG_EXIT_OK : CONFIG_EXIT_ERROR;
    }
    return derive(c, out, len) == 0 ? CONFIG_OK : CONFIG_EXIT_ERROR;
}

void config_free(struct config *c)
{
    for (size_t i = 0; i < OQ_ARRAY_LEN(settings); i++) {
        if (settings[i].type != CFG_INT)
            free(*(char **)((char *)c + settings[i].offset));
    }
    live_free(atomic_load(&c->live));
    strlist_free(c->cors_origins, c->n_cors_origins);
    strlist_free(c->check_urls, c->n_check_urls);
    memset(c, 0, sizeof(*c));
}

void config_print_help(FILE *out)
{
    fprintf(out,
            "offlineq %s: durable offline operation queue\n\n"
            "usage: offlineq [--flag=value | --flag value ...]\n\n"
            "Every setting is an environment variable or the equivalent flag. Secrets have\n"
            "no flag (argv shows in ps): set NAME, or NAME_FILE to a file holding the value.\n"
            "An unknown OFFLINEQ_* variable stops start-up (README lists the tolerated tool "
            "names).\n\n",
            OQ_VERSION);
    for (size_t i = 0; i < OQ_ARRAY_LEN(settings); i++) {
        const struct setting *s = &settings[i];
        char flag[64];
        flag_name(s->env, flag, sizeof(flag));
        if (s->type == CFG_SECRET) /* no flag: argv is public */
            snprintf(flag, sizeof(flag), "(env or _FILE only)");
        fprintf(out, "  %-26s %-22s %s", s->env, flag, s->help);
        if (s->def != NULL && s->def[0] != '\0')
            fprintf(out, " (default %s)", s->def);
        fputc('\n', out);
    }
}

const struct config_live *config_live(const struct config *c)
{
    return atomic_load_explicit(&((struct config *)c)->live, memory_order_acquire);
}

/* The keys a reload puts in force: those of OFFLINEQ_API_KEYS_FILE read again, or (keys
 * given in the environment, which was wiped at start) a copy of the running ones. */
static int reload_keys(const struct config *c, struct config_live *fresh, char *out, size_t len)
{
    const char *path = getenv("OFFLINEQ_API_KEYS_FILE");
    if (path == NULL) {
        const struct config_live *now = config_live(c);
        fresh->api_keys = oq_calloc(now->n_api_keys, sizeof(*fresh->api_keys));
        memcpy(fresh->api_keys, now->api_keys, now->n_api_keys * sizeof(*fresh->api_keys));
        fresh->n_api_keys = now->n_api_keys;
        return 0;
    }
    char *text = read_secret_file(path);
    if (text == NULL)
        return oq_fail_msg(out, len, "OFFLINEQ_API_KEYS_FILE: cannot read \"%s\": %s", path,
                           strerror(errno));
    int rc = parse_api_keys(text, fresh, out, len);
    free(text); /* wiped by parse_api_keys */
    if (rc == 0 && (fresh->n_api_keys > 0) != c->has_api_keys)
        rc = oq_fail_msg(out, len,
                         c->has_api_keys
                             ? "OFFLINEQ_API_KEYS_FILE: holds no key; a running service with "
                               "keys does not drop them (restart to run without keys)"
                             : "OFFLINEQ_API_KEYS_FILE: the service started without keys; "
                               "restart it to require them");
    return rc;
}

int config_reload(struct config *c, struct config_live **fresh, char *out, size_t len)
{
    struct config_live *l = oq_calloc(1, sizeof(*l));
    if (reload_keys(c, l, out, len) != 0 ||
        upstreams_parse(c->upstreams_raw, c->upstreams_file, &l->upstreams, &l->n_upstreams, out,
                        len) != 0) {
        live_free(l);
        return -1;
    }
    *fresh = l;
    return 0;
}

void config_publish(struct config *c, struct config_live *fresh)
{
    fresh->older = atomic_load(&c->live);
    atomic_store_explicit(&c->live, fresh, memory_order_release);
}

const struct upstream *config_find_upstream(const struct config *c, const char *name)
{
    const struct config_live *l = config_live(c);
    for (size_t i = 0; i < l->n_upstreams; i++) {
        if (strcmp(l->upstreams[i].name, name) == 0)
            return &l->upstreams[i];
    }
    return NULL;
}

const struct api_key *config_key_find(const struct config *c, const char *token)
{
    const struct config_live *l = config_live(c);
    const struct api_key *found = NULL;
    unsigned char digest[32];
    SHA256((const unsigned char *)token, strlen(token), digest);
    /* Digests of equal length, compared against every key: timing tells nothing. */
    for (size_t i = 0; i < l->n_api_keys; i++) {
        if (CRYPTO_memcmp(digest, l->api_keys[i].key_sha256, sizeof(digest)) == 0)
            found = &l->api_keys[i];
    }
    return found;
}

enum role config_key_role(const struct config *c, const char *token)
{
    const struct api_key *k = config_key_find(c, token);
    return k ? k->role : ROLE_NONE;
}
