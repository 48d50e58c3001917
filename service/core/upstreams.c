/* Upstreams: the short form OFFLINEQ_UPSTREAMS="name=url,..." and the policy file
 * OFFLINEQ_UPSTREAMS_FILE ({"name": {"base_url", "headers", "timeout_ms", ...}}). */
#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdint.h>

#include "core/config.h"

/* Copies a URL part libcurl returned, lowercased, into origin at *o; -1 when it does not fit. */
static int put_lower(char *origin, size_t len, size_t *o, const char *part)
{
    for (; *part; part++) {
        if (*o + 1 >= len)
            return -1;
        origin[(*o)++] = (char)tolower((unsigned char)*part);
    }
    origin[*o] = '\0';
    return 0;
}

/* scheme://host[:port] of a parsed URL, the port left out when it is the scheme's default. */
static int origin_of(CURLU *h, char *origin, size_t len)
{
    char *scheme = NULL, *host = NULL, *port = NULL;
    size_t o = 0;
    int rc = -1;
    if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0')
        goto out;
    CURLUcode pc = curl_url_get(h, CURLUPART_PORT, &port, CURLU_NO_DEFAULT_PORT);
    if (pc != CURLUE_OK && pc != CURLUE_NO_PORT)
        goto out;
    if (put_lower(origin, len, &o, scheme) == 0 && put_lower(origin, len, &o, "://") == 0 &&
        put_lower(origin, len, &o, host) == 0 &&
        (port == NULL || (put_lower(origin, len, &o, ":") == 0 && put_lower(origin, len, &o, port) == 0)))
        rc = 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    return rc;
}

/* The authority as written must be what libcurl reads: no userinfo ("http://up@evil"), and no
 * host spelled another way that it would normalise ("127.1", "2130706433", "0x7f000001"). */
static bool is_written_as_read(const char *authority, size_t n, CURLU *h)
{
    char *host = NULL, *port = NULL;
    bool same = false;
    if (curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        CURLUcode pc = curl_url_get(h, CURLUPART_PORT, &port, 0); /* only a port written */
        size_t hl = strlen(host);
        same = pc == CURLUE_OK
                   ? hl + 1 + strlen(port) == n && strncasecmp(authority, host, hl) == 0 &&
                         authority[hl] == ':' && strncmp(authority + hl + 1, port, n - hl - 1) == 0
                   : pc == CURLUE_NO_PORT && hl == n && strncasecmp(authority, host, n) == 0;
    }
    curl_free(host);
    curl_free(port);
    return same;
}

int config_url_parse(const char *url, char *origin, size_t len, char **path)
{
    size_t scheme_len = strncasecmp(url, "http://", 7) == 0    ? 7
                        : strncasecmp(url, "https://", 8) == 0 ? 8
                                                               : 0;
    if (scheme_len == 0)
        return -1;
    CURLU *h = curl_url();
    OQ_ASSERT(h != NULL);
    char *p = NULL;
    int rc = -1;
    if (curl_url_set(h, CURLUPART_URL, url, CURLU_PATH_AS_IS) != CURLUE_OK ||
        !is_written_as_read(url + scheme_len, strcspn(url + scheme_len, "/?#"), h) ||
        origin_of(h, origin, len) != 0)
        goto out;
    if (path != NULL) {
        if (curl_url_get(h, CURLUPART_PATH, &p, 0) != CURLUE_OK)
            goto out;
        *path = oq_strdup(p[0] ? p : "/");
    }
    rc = 0;
out:
    curl_free(p);
    curl_url_cleanup(h);
    return rc;
}

int config_url_origin(const char *url, char *origin, size_t len)
{
    return config_url_parse(url, origin, len, NULL);
}

static struct upstream *add(struct config *c, const char *name, size_t name_len,
                            const char *base_url, const char *env, char *out, size_t len)
{
    char origin[512];
    char *path = NULL;
    for (size_t i = 0; i < name_len; i++) {
        if (!isalnum((unsigned char)name[i]) && strchr("_.-", name[i]) == NULL) {
            config_fail(out, len, "%s: upstream names use letters, digits, '_', '.' and '-' only", env);
            return NULL;
        }
    }
    if (name_len == 0 || config_url_parse(base_url, origin, sizeof(origin), &path) != 0) {
        config_fail(out, len, "%s: upstream \"%.*s\" needs a base URL http(s)://host[:port][/path]", env,
             (int)name_len, name);
        return NULL;
    }
    for (size_t i = 0; i < c->n_upstreams; i++) {
        if (strlen(c->upstreams[i].name) == name_len &&
            strncmp(c->upstreams[i].name, name, name_len) == 0) {
            config_fail(out, len, "%s: upstream \"%.*s\" is defined twice", env, (int)name_len, name);
            free(path);
            return NULL;
        }
    }
    struct upstream *grown = realloc(c->upstreams, (c->n_upstreams + 1) * sizeof(*grown));
    OQ_ASSERT(grown != NULL);
    c->upstreams = grown;
    struct upstream *u = &c->upstreams[c->n_upstreams++];
    *u = (struct upstream){.name = oq_strndup(name, name_len),
                           .base_url = oq_strdup(base_url),
                           .origin = oq_strdup(origin),
                           .base_path = path,
                           .connect_timeout_ms = 5000,
                           .timeout_ms = 30000,
                           .breaker_failures = 10,
                           .breaker_cooldown_s = 30};
    size_t bl = strlen(u->base_url);
    while (bl > 0 && u->base_url[bl - 1] == '/')
        u->base_url[--bl] = '\0';
    bl = strlen(u->base_path);
    while (bl > 0 && u->base_path[bl - 1] == '/')
        u->base_path[--bl] = '\0';
    return u;
}

static int parse_short(struct config *c, char *out, size_t len)
{
    size_t n = 0;
    char **items = config_split_list(c->upstreams_raw, &n);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *eq = strchr(items[i], '=');
        if (eq == NULL)
            rc = config_fail(out, len, "OFFLINEQ_UPSTREAMS: entry %zu must be name=http(s)://host[:port][/path]",
                      i + 1);
        else if (add(c, items[i], (size_t)(eq - items[i]), eq + 1, "OFFLINEQ_UPSTREAMS", out, len) == NULL)
            rc = -1;
    }
    config_free_list(items, n);
    return rc;
}

static int int_field(const json_t *o, const char *key, int min, int max, int *slot,
                     const char *name, char *out, size_t len)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return config_fail(out, len, "OFFLINEQ_UPSTREAMS_FILE: %s.%s must be an integer from %d to %d",
                    name, key, min, max);
    *slot = (int)json_integer_value(v);
    return 0;
}

static int parse_headers(struct upstream *u, const json_t *headers, char *out, size_t len)
{
    if (headers == NULL)
        return 0;
    if (!json_is_object(headers))
        return config_fail(out, len, "OFFLINEQ_UPSTREAMS_FILE: %s.headers must be an object", u->name);
    u->headers = oq_calloc(json_object_size(headers), sizeof(char *));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)headers, k, v) {
        const char *s = json_string_value(v);
        if (s == NULL || strpbrk(k, "\r\n: ") != NULL || strpbrk(s, "\r\n") != NULL)
            return config_fail(out, len, "OFFLINEQ_UPSTREAMS_FILE: %s.headers.%s must be a one-line string",
                        u->name, k);
        size_t n = strlen(k) + strlen(s) + 3;
        u->headers[u->n_headers] = oq_malloc(n);
        snprintf(u->headers[u->n_headers++], n, "%s: %s", k, s);
    }
    return 0;
}

static const char *const known_keys[] = {"base_url", "headers", "connect_timeout_ms", "timeout_ms",
                                         "max_concurrency", "rate_per_s", "signing_secret",
                                         "breaker_failures", "breaker_cooldown_s", NULL};

static int check_keys(const char *name, const json_t *o, char *out, size_t len)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        const char *const *p = known_keys;
        while (*p && strcmp(*p, k) != 0)
            p++;
        if (*p == NULL)
            return config_fail(out, len, "OFFLINEQ_UPSTREAMS_FILE: %s.%s is not a known setting", name, k);
    }
    return 0;
}

/* 0..63 for a character of the standard base64 alphabet, else -1. */
static int b64_digit(unsigned char c)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c ? strchr(alphabet, c) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

/* Strict RFC 4648 base64: a multiple of 4 characters, '=' only as the last one or two, no
 * other byte, and the bits under the padding zero (one text per key). Returns the bytes
 * written to out (room for len / 4 * 3), or -1. */
static long b64_decode_strict(const char *s, size_t len, unsigned char *out)
{
    if (len == 0 || len % 4 != 0)
        return -1;
    size_t pad = s[len - 1] == '=' ? (s[len - 2] == '=' ? 2 : 1) : 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        int d[4];
        for (size_t k = 0; k < 4; k++) {
            d[k] = last && k >= 4 - pad ? 0 : b64_digit((unsigned char)s[i + k]);
            if (d[k] < 0)
                return -1;
        }
        if (last && ((pad == 2 && (d[1] & 0x0f) != 0) || (pad == 1 && (d[2] & 0x03) != 0)))
            return -1;
        uint32_t w = (uint32_t)d[0] << 18 | (uint32_t)d[1] << 12 | (uint32_t)d[2] << 6 | (uint32_t)d[3];
        out[o++] = (unsigned char)(w >> 16);
        if (!last || pad < 2)
            out[o++] = (unsigned char)(w >> 8);
        if (!last || pad < 1)
            out[o++] = (unsigned char)w;
    }
    return (long)o;
}

unsigned char *config_signing_key(const char *secret, size_t len, size_t *key_len)
{
    if (len == 0 || strlen(secret) != len)
        return NULL;
    if (strncmp(secret, "whsec_", 6) != 0) { /* a plain secret: its bytes are the key */
        *key_len = len;
        unsigned char *key = oq_malloc(len);
        memcpy(key, secret, len);
        return key;
    }
    unsigned char *key = oq_malloc((len - 6) / 4 * 3 + 1);
    long n = b64_decode_strict(secret + 6, len - 6, key);
    if (n <= 0) {
        config_free_key(key, (len - 6) / 4 * 3 + 1);
        return NULL;
    }
    *key_len = (size_t)n;
    return key;
}

void config_free_key(unsigned char *key, size_t key_len)
{
    if (key != NULL)
        OPENSSL_cleanse(key, key_len);
    free(key);
}

/* signing_secret: decoded once here, so a malformed one stops the start, not a delivery. */
static int parse_secret(struct upstream *u, const json_t *secret, char *out, size_t len)
{
    if (secret == NULL)
        return 0;
    const char *s = json_string_value(secret);
    u->signing_key = s ? config_signing_key(s, json_string_length(secret), &u->signing_key_len) : NULL;
    if (u->signing_key == NULL)
        return config_fail(out, len,
                           "OFFLINEQ_UPSTREAMS_FILE: %s.signing_secret must be \"whsec_\" and strict "
                           "base64 (standard alphabet, padded, not empty), or a plain non-empty string",
                           u->name);
    return 0;
}

static int parse_entry(struct config *c, const char *name, const json_t *o, char *out, size_t len)
{
    if (!json_is_object(o) || check_keys(name, o, out, len) != 0)
        return json_is_object(o) ? -1 : config_fail(out, len, "OFFLINEQ_UPSTREAMS_FILE: %s must be an object", name);
    const char *base = json_string_value(json_object_get(o, "base_url"));
    struct upstream *u = add(c, name, strlen(name), base ? base : "", "OFFLINEQ_UPSTREAMS_FILE", out, len);
    if (u == NULL)
        return -1;
    const json_t *rate = json_object_get(o, "rate_per_s");
    if (rate != NULL && (!json_is_number(rate) || json_number_value(rate) <= 0))
        return config_fail(out, len, "OFFLINEQ_UPSTREAMS_FILE: %s.rate_per_s must be a positive number", name);
    u->rate_per_s = rate ? json_number_value(rate) : 0;
    if (parse_secret(u, json_object_get(o, "signing_secret"), out, len) != 0)
        return -1;
    if (int_field(o, "connect_timeout_ms", 1, 600000, &u->connect_timeout_ms, name, out, len) != 0 ||
        int_field(o, "timeout_ms", 1, 3600000, &u->timeout_ms, name, out, len) != 0 ||
        int_field(o, "max_concurrency", 1, 10000, &u->max_concurrency, name, out, len) != 0 ||
        int_field(o, "breaker_failures", 1, 100000, &u->breaker_failures, name, out, len) != 0 ||
        int_field(o, "breaker_cooldown_s", 1, 86400, &u->breaker_cooldown_s, name, out, len) != 0)
        return -1;
    return parse_headers(u, json_object_get(o, "headers"), out, len);
}

static int parse_file(struct config *c, char *out, size_t len)
{
    if (c->upstreams_file == NULL || c->upstreams_file[0] == '\0')
        return 0;
    json_error_t je;
    json_t *root = json_load_file(c->upstreams_file, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return config_fail(out, len, "OFFLINEQ_UPSTREAMS_FILE: %s: %s (line %d)", c->upstreams_file, je.text,
                    je.line);
    int rc = json_is_object(root) ? 0 : config_fail(out, len, "OFFLINEQ_UPSTREAMS_FILE: must hold a JSON object");
    const char *name;
    json_t *entry;
    json_object_foreach(root, name, entry) {
        if (rc == 0)
            rc = parse_entry(c, name, entry, out, len);
    }
    json_decref(root);
    return rc;
}

int upstreams_parse(struct config *c, char *out, size_t len)
{
    if (parse_short(c, out, len) != 0)
        return -1;
    return parse_file(c, out, len);
}

void upstreams_free(struct config *c)
{
    for (size_t i = 0; i < c->n_upstreams; i++) {
        struct upstream *u = &c->upstreams[i];
        free(u->name);
        free(u->base_url);
        free(u->origin);
        free(u->base_path);
        config_free_list(u->headers, u->n_headers);
        config_free_key(u->signing_key, u->signing_key_len);
    }
    free(c->upstreams);
    c->upstreams = NULL;
    c->n_upstreams = 0;
}
