#include "core/upstreams.h"

#include <ctype.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/strlist.h"
#include "core/url.h"

#define OFF(f) offsetof(struct upstream, f)
/* An upstream's integer settings: the default when OFFLINEQ_UPSTREAMS_FILE does not set one, and
 * the range it may set. The one place upstream defaults live (an upstream of the short form
 * OFFLINEQ_UPSTREAMS gets exactly these). */
static const struct int_setting {
    const char *key;
    size_t offset;
    int def, min, max;
} int_settings[] = {
    {"connect_timeout_ms", OFF(connect_timeout_ms), 5000, 1, 600000},
    {"timeout_ms", OFF(timeout_ms), 30000, 1, 3600000},
    {"max_concurrency", OFF(max_concurrency), 0, 1, 10000}, /* default 0: unlimited */
    {"ramp_start_concurrency", OFF(ramp_start_concurrency), 1, 1, 10000},
    {"breaker_failures", OFF(breaker_failures), 10, 1, 100000},
    {"breaker_cooldown_s", OFF(breaker_cooldown_s), 30, 1, OQ_DAY_S},
};
#undef OFF

/* The other keys an entry of the file may hold (besides int_settings). */
static const char *const other_keys[] = {"base_url", "headers", "rate_per_s", "signing_secret",
                                         NULL};

static int *int_slot(struct upstream *u, const struct int_setting *s)
{
    return (int *)((char *)u + s->offset);
}

static void set_defaults(struct upstream *u)
{
    u->rate_per_s = 0; /* unlimited */
    for (size_t i = 0; i < OQ_ARRAY_LEN(int_settings); i++)
        *int_slot(u, &int_settings[i]) = int_settings[i].def;
}

static void trim_trailing_slashes(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        s[--n] = '\0';
}

/* The list being read (the caller's array and count once done). */
struct list {
    struct upstream *items;
    size_t n;
};

static struct upstream *add(struct list *l, const char *name, size_t name_len, const char *base_url,
                            const char *env, char *out, size_t len)
{
    char origin[512];
    char *path = NULL;
    for (size_t i = 0; i < name_len; i++) {
        if (!isalnum((unsigned char)name[i]) && strchr("_.-", name[i]) == NULL) {
            oq_fail_msg(out, len, "%s: upstream names use letters, digits, '_', '.' and '-' only",
                        env);
            return NULL;
        }
    }
    if (name_len == 0 || url_parse(base_url, origin, sizeof(origin), &path) != 0) {
        oq_fail_msg(out, len, "%s: upstream \"%.*s\" needs a base URL http(s)://host[:port][/path]",
                    env, (int)name_len, name);
        return NULL;
    }
    for (size_t i = 0; i < l->n; i++) {
        if (strlen(l->items[i].name) == name_len &&
            strncmp(l->items[i].name, name, name_len) == 0) {
            oq_fail_msg(out, len, "%s: upstream \"%.*s\" is defined twice", env, (int)name_len,
                        name);
            free(path);
            return NULL;
        }
    }
    struct upstream *grown = realloc(l->items, (l->n + 1) * sizeof(*grown));
    OQ_ASSERT(grown != NULL);
    l->items = grown;
    struct upstream *u = &l->items[l->n++];
    *u = (struct upstream){.name = oq_strndup(name, name_len),
                           .base_url = oq_strdup(base_url),
                           .origin = oq_strdup(origin),
                           .base_path = path};
    set_defaults(u);
    trim_trailing_slashes(u->base_url);
    trim_trailing_slashes(u->base_path);
    return u;
}

static int parse_short(struct list *l, const char *short_form, char *out, size_t len)
{
    size_t n = 0;
    char **items = strlist_split(short_form, &n);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *eq = strchr(items[i], '=');
        if (eq == NULL)
            rc = oq_fail_msg(
                out, len, "OFFLINEQ_UPSTREAMS: entry %zu must be name=http(s)://host[:port][/path]",
                i + 1);
        else if (add(l, items[i], (size_t)(eq - items[i]), eq + 1, "OFFLINEQ_UPSTREAMS", out,
                     len) == NULL)
            rc = -1;
    }
    strlist_free(items, n);
    return rc;
}

/* The integer settings the entry o sets, in table order (the first bad one is reported). */
static int parse_ints(struct upstream *u, const json_t *o, char *out, size_t len)
{
    for (size_t i = 0; i < OQ_ARRAY_LEN(int_settings); i++) {
        const struct int_setting *s = &int_settings[i];
        const json_t *v = json_object_get(o, s->key);
        if (v == NULL)
            continue;
        if (!json_is_integer(v) || json_integer_value(v) < s->min || json_integer_value(v) > s->max)
            return oq_fail_msg(out, len,
                               "OFFLINEQ_UPSTREAMS_FILE: %s.%s must be an integer from %d to %d",
                               u->name, s->key, s->min, s->max);
        *int_slot(u, s) = (int)json_integer_value(v);
    }
    return 0;
}

static int parse_headers(struct upstream *u, const json_t *headers, char *out, size_t len)
{
    if (headers == NULL)
        return 0;
    if (!json_is_object(headers))
        return oq_fail_msg(out, len, "OFFLINEQ_UPSTREAMS_FILE: %s.headers must be an object",
                           u->name);
    u->headers = oq_calloc(json_object_size(headers), sizeof(char *));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)headers, k, v)
    {
        const char *s = json_string_value(v);
        if (s == NULL || strpbrk(k, "\r\n: ") != NULL || strpbrk(s, "\r\n") != NULL)
            return oq_fail_msg(out, len,
                               "OFFLINEQ_UPSTREAMS_FILE: %s.headers.%s must be a one-line string",
                               u->name, k);
        size_t n = strlen(k) + strlen(s) + 3;
        u->headers[u->n_headers] = oq_malloc(n);
        snprintf(u->headers[u->n_headers++], n, "%s: %s", k, s);
    }
    return 0;
}

static bool is_known_key(const char *k)
{
    for (const char *const *p = other_keys; *p; p++) {
        if (strcmp(*p, k) == 0)
            return true;
    }
    for (size_t i = 0; i < OQ_ARRAY_LEN(int_settings); i++) {
        if (strcmp(int_settings[i].key, k) == 0)
            return true;
    }
    return false;
}

static int check_keys(const char *name, const json_t *o, char *out, size_t len)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        if (!is_known_key(k))
            return oq_fail_msg(out, len, "OFFLINEQ_UPSTREAMS_FILE: %s.%s is not a known setting",
                               name, k);
    }
    return 0;
}

/* 0..63 for a character of the standard base64 alphabet, else -1. */
static int b64_digit(unsigned char c)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
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
        uint32_t w =
            (uint32_t)d[0] << 18 | (uint32_t)d[1] << 12 | (uint32_t)d[2] << 6 | (uint32_t)d[3];
        out[o++] = (unsigned char)(w >> 16);
        if (!last || pad < 2)
            out[o++] = (unsigned char)(w >> 8);
        if (!last || pad < 1)
            out[o++] = (unsigned char)w;
    }
    return (long)o;
}

#define WHSEC_PREFIX "whsec_"
#define WHSEC_PREFIX_LEN (sizeof(WHSEC_PREFIX) - 1)

unsigned char *upstreams_signing_key(const char *secret, size_t len, size_t *key_len)
{
    if (len == 0 || strlen(secret) != len)
        return NULL;
    if (strncmp(secret, WHSEC_PREFIX, WHSEC_PREFIX_LEN) !=
        0) { /* a plain secret: its bytes are the key */
        *key_len = len;
        unsigned char *key = oq_malloc(len);
        memcpy(key, secret, len);
        return key;
    }
    size_t b64_len = len - WHSEC_PREFIX_LEN, room = b64_len / 4 * 3 + 1;
    unsigned char *key = oq_malloc(room);
    long n = b64_decode_strict(secret + WHSEC_PREFIX_LEN, b64_len, key);
    if (n <= 0) {
        upstreams_free_key(key, room);
        return NULL;
    }
    *key_len = (size_t)n;
    return key;
}

void upstreams_free_key(unsigned char *key, size_t key_len)
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
    u->signing_key =
        s ? upstreams_signing_key(s, json_string_length(secret), &u->signing_key_len) : NULL;
    if (u->signing_key == NULL)
        return oq_fail_msg(
            out, len,
            "OFFLINEQ_UPSTREAMS_FILE: %s.signing_secret must be \"whsec_\" and strict "
            "base64 (standard alphabet, padded, not empty), or a plain non-empty string",
            u->name);
    return 0;
}

static int parse_entry(struct list *l, const char *name, const json_t *o, char *out, size_t len)
{
    if (!json_is_object(o) || check_keys(name, o, out, len) != 0)
        return json_is_object(o)
                   ? -1
                   : oq_fail_msg(out, len, "OFFLINEQ_UPSTREAMS_FILE: %s must be an object", name);
    const char *base = json_string_value(json_object_get(o, "base_url"));
    struct upstream *u =
        add(l, name, strlen(name), base ? base : "", "OFFLINEQ_UPSTREAMS_FILE", out, len);
    if (u == NULL)
        return -1;
    const json_t *rate = json_object_get(o, "rate_per_s");
    if (rate != NULL && (!json_is_number(rate) || json_number_value(rate) <= 0))
        return oq_fail_msg(
            out, len, "OFFLINEQ_UPSTREAMS_FILE: %s.rate_per_s must be a positive number", name);
    u->rate_per_s = rate ? json_number_value(rate) : 0;
    if (parse_secret(u, json_object_get(o, "signing_secret"), out, len) != 0)
        return -1;
    if (parse_ints(u, o, out, len) != 0)
        return -1;
    return parse_headers(u, json_object_get(o, "headers"), out, len);
}

static int parse_file(struct list *l, const char *file, char *out, size_t len)
{
    if (file == NULL || file[0] == '\0')
        return 0;
    json_error_t je;
    json_t *root = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return oq_fail_msg(out, len, "OFFLINEQ_UPSTREAMS_FILE: %s: %s (line %d)", file, je.text,
                           je.line);
    int rc = json_is_object(root)
                 ? 0
                 : oq_fail_msg(out, len, "OFFLINEQ_UPSTREAMS_FILE: must hold a JSON object");
    const char *name;
    json_t *entry;
    json_object_foreach(root, name, entry)
    {
        if (rc == 0)
            rc = parse_entry(l, name, entry, out, len);
    }
    json_decref(root);
    return rc;
}

int upstreams_parse(const char *short_form, const char *file, struct upstream **items, size_t *n,
                    char *out, size_t len)
{
    struct list l = {0};
    int rc = parse_short(&l, short_form ? short_form : "", out, len) != 0
                 ? -1
                 : parse_file(&l, file, out, len);
    *items = l.items;
    *n = l.n;
    return rc;
}

void upstreams_free(struct upstream *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct upstream *u = &items[i];
        free(u->name);
        free(u->base_url);
        free(u->origin);
        free(u->base_path);
        strlist_free(u->headers, u->n_headers);
        upstreams_free_key(u->signing_key, u->signing_key_len);
    }
    free(items);
}
