/* Upstreams: the short form OFFLINEQ_UPSTREAMS="name=url,..." and the policy file
 * OFFLINEQ_UPSTREAMS_FILE ({"name": {"base_url", "headers", "timeout_ms", ...}}). */
#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"

int config_url_origin(const char *url, char *origin, size_t len)
{
    const char *rest;
    if (strncasecmp(url, "http://", 7) == 0)
        rest = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        rest = url + 8;
    else
        return -1;
    size_t host_len = strcspn(rest, "/?#");
    if (host_len == 0 || memchr(rest, '@', host_len) != NULL)
        return -1;
    size_t n = (size_t)(rest - url) + host_len;
    if (n >= len)
        return -1;
    for (size_t i = 0; i < n; i++)
        origin[i] = (char)tolower((unsigned char)url[i]);
    origin[n] = '\0';
    return 0;
}

static struct upstream *add(struct config *c, const char *name, size_t name_len,
                            const char *base_url, const char *env, char *out, size_t len)
{
    char origin[512];
    for (size_t i = 0; i < name_len; i++) {
        if (!isalnum((unsigned char)name[i]) && strchr("_.-", name[i]) == NULL) {
            config_fail(out, len, "%s: upstream names use letters, digits, '_', '.' and '-' only", env);
            return NULL;
        }
    }
    if (name_len == 0 || config_url_origin(base_url, origin, sizeof(origin)) != 0) {
        config_fail(out, len, "%s: upstream \"%.*s\" needs a base URL http(s)://host[:port][/path]", env,
             (int)name_len, name);
        return NULL;
    }
    for (size_t i = 0; i < c->n_upstreams; i++) {
        if (strlen(c->upstreams[i].name) == name_len &&
            strncmp(c->upstreams[i].name, name, name_len) == 0) {
            config_fail(out, len, "%s: upstream \"%.*s\" is defined twice", env, (int)name_len, name);
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
                           .connect_timeout_ms = 5000,
                           .timeout_ms = 30000,
                           .breaker_failures = 10,
                           .breaker_cooldown_s = 30};
    size_t bl = strlen(u->base_url);
    while (bl > 0 && u->base_url[bl - 1] == '/')
        u->base_url[--bl] = '\0';
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
    const json_t *secret = json_object_get(o, "signing_secret");
    if (secret != NULL && (!json_is_string(secret) || json_string_length(secret) == 0))
        return config_fail(out, len, "OFFLINEQ_UPSTREAMS_FILE: %s.signing_secret must be a string", name);
    u->signing_secret = secret ? oq_strdup(json_string_value(secret)) : NULL;
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
        config_free_list(u->headers, u->n_headers);
        free(u->signing_secret);
    }
    free(c->upstreams);
    c->upstreams = NULL;
    c->n_upstreams = 0;
}
