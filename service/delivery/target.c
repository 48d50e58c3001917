/* Where an operation may be sent, and what it may say: only below configured upstreams (the
 * SSRF guard), with no header that belongs to the transport or to the service. */
#include "delivery/target.h"
#include "core/jsonload.h"
#include "core/url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/validate.h"

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

/* The byte at *p, percent-decoded once; *p moves past what was read. */
static char next_decoded(const char **p)
{
    const char *s = *p;
    if (s[0] == '%' && hex_digit(s[1]) >= 0 && hex_digit(s[2]) >= 0) {
        *p = s + 3;
        return (char)(hex_digit(s[1]) * 16 + hex_digit(s[2]));
    }
    *p = s + 1;
    return s[0];
}

bool target_has_dot_segment(const char *path)
{
    size_t dots = 0;
    bool only_dots = true;
    for (const char *p = path;;) {
        bool end = *p == '\0' || *p == '?' || *p == '#';
        char c = end ? '/' : next_decoded(&p);
        if (c == '/' || c == '\\') {
            if (only_dots && (dots == 1 || dots == 2))
                return true;
            if (end)
                return false;
            dots = 0;
            only_dots = true;
        } else if (c == '.') {
            dots++;
        } else {
            only_dots = false;
        }
    }
}

/* Is path the base path or below it? "/tenant-abc" is not below "/tenant-a". */
static bool is_below(const char *path, const char *base)
{
    size_t n = strlen(base);
    return strncmp(path, base, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int target_check_url(const struct upstream *u, const char *url, struct err *e)
{
    char origin[512];
    char *path = NULL;
    if (url_parse(url, origin, sizeof(origin), &path) != 0)
        return err_field(e, ERR_INVALID_REQUEST, "endpoint",
                         "endpoint must be a path starting with / or an absolute http(s) URL");
    int rc = 0;
    if (strcmp(origin, u->origin) != 0)
        rc = err_field(e, ERR_INVALID_REQUEST, "endpoint",
                       "endpoint's origin is not the configured upstream \"%s\"", u->name);
    else if (target_has_dot_segment(path))
        rc = err_field(e, ERR_INVALID_REQUEST, "endpoint",
                       "endpoint must not contain dot segments (. or .., also percent-encoded)");
    else if (!is_below(path, u->base_path))
        rc = err_field(e, ERR_INVALID_REQUEST, "endpoint",
                       "endpoint is outside the base path \"%s\" of upstream \"%s\"",
                       u->base_path[0] ? u->base_path : "/", u->name);
    free(path);
    return rc;
}

static int check_endpoint(const char *endpoint, const struct upstream *u, struct err *e)
{
    if (!validate_is_printable(endpoint) || strchr(endpoint, ' ') != NULL)
        return err_field(e, ERR_INVALID_REQUEST, "endpoint",
                         "endpoint must not contain spaces or control characters");
    if (endpoint[0] != '/' || endpoint[1] == '/')
        return target_check_url(u, endpoint, e);
    /* a path: sent as base_url + endpoint, so below the base path once it cannot step up */
    if (target_has_dot_segment(endpoint))
        return err_field(e, ERR_INVALID_REQUEST, "endpoint",
                         "endpoint must not contain dot segments (. or .., also percent-encoded)");
    return 0;
}

const struct upstream *target_upstream(const struct config *cfg, const json_t *payload)
{
    const char *name = json_string_value(json_object_get(payload, "upstream"));
    return config_find_upstream(cfg, name ? name : "default");
}

int target_validate(const json_t *payload, const struct config *cfg, struct err *e)
{
    const char *name = validate_str(payload, "upstream", "default");
    const struct upstream *u = config_find_upstream(cfg, name);
    if (u == NULL)
        return err_field(e, ERR_INVALID_REQUEST, "upstream",
                         "no upstream named \"%s\" is configured (OFFLINEQ_UPSTREAMS)", name);
    const char *endpoint = validate_str(payload, "endpoint", NULL);
    return endpoint ? check_endpoint(endpoint, u, e) : 0;
}

/* Header names a payload may not set: hop-by-hop and framing headers belong to the transport
 * (RFC 9110 7.6.1, 9112 6), and the service writes the idempotency key and the signature.
 * A row with is_prefix covers every name that starts so. Kept in step with
 * offlineq_check_payload() in migrations/005_delivery_checks.sql. */
#define FORBIDDEN(s, prefix)                                                                       \
    {                                                                                              \
        s, sizeof(s) - 1, prefix                                                                   \
    }
static const struct forbidden_header {
    const char *name;
    size_t len;
    bool is_prefix;
} forbidden[] = {
    FORBIDDEN("Host", false),
    FORBIDDEN("Content-Length", false),
    FORBIDDEN("Transfer-Encoding", false),
    FORBIDDEN("Connection", false),
    FORBIDDEN("Keep-Alive", false),
    FORBIDDEN("TE", false),
    FORBIDDEN("Trailer", false),
    FORBIDDEN("Upgrade", false),
    FORBIDDEN("Expect", false),
    FORBIDDEN("Proxy-", true),
    FORBIDDEN("Idempotency-Key", false),
    FORBIDDEN("Webhook-Id", false),
    FORBIDDEN("Webhook-Timestamp", false),
    FORBIDDEN("Webhook-Signature", false),
};
#undef FORBIDDEN

static bool is_forbidden(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++) {
        const struct forbidden_header *f = &forbidden[i];
        if ((f->is_prefix ? n >= f->len : n == f->len) && strncasecmp(name, f->name, f->len) == 0)
            return true;
    }
    return false;
}

static bool is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        if (strchr("!#$%&'*+-.^_`|~", *s) == NULL && !(*s >= '0' && *s <= '9') &&
            !(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z'))
            return false;
    }
    return true;
}

int target_check_headers(const json_t *headers, struct err *e)
{
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)headers, name, v)
    {
        char field[128];
        snprintf(field, sizeof(field), "headers.%s", name);
        if (!is_token(name))
            return err_field(e, ERR_INVALID_REQUEST, "headers", "invalid header name");
        if (is_forbidden(name))
            return err_field(e, ERR_INVALID_REQUEST, field,
                             "header %s belongs to the transport or is set by the service", name);
        if (!jsonstr_is(v) || !validate_is_printable(json_string_value(v)) ||
            strlen(json_string_value(v)) != json_string_length(v))
            return err_field(e, ERR_INVALID_REQUEST, field,
                             "header values must be strings without control characters");
    }
    return 0;
}
