/* Where an operation may be sent: only to configured upstreams (the SSRF guard). */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "handlers.h"
#include "validate.h"

/* Length of the scheme://authority prefix of an absolute http(s) URL, or 0. */
static size_t origin_len(const char *url)
{
    size_t scheme;
    if (strncasecmp(url, "http://", 7) == 0)
        scheme = 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        scheme = 8;
    else
        return 0;
    return scheme + strcspn(url + scheme, "/?#");
}

static bool same_origin(const char *url, size_t n, const char *origin)
{
    if (strlen(origin) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (tolower((unsigned char)url[i]) != origin[i])
            return false;
    }
    return true;
}

static int check_endpoint(const char *endpoint, const struct upstream *u, struct err *e)
{
    if (!validate_is_printable(endpoint) || strchr(endpoint, ' ') != NULL)
        return err_field(e, ERR_INVALID_REQUEST, "endpoint",
                         "endpoint must not contain spaces or control characters");
    if (endpoint[0] == '/' && endpoint[1] != '/')
        return 0;
    size_t n = origin_len(endpoint);
    if (n == 0)
        return err_field(e, ERR_INVALID_REQUEST, "endpoint",
                         "endpoint must be a path starting with / or an absolute http(s) URL");
    if (!same_origin(endpoint, n, u->origin))
        return err_field(e, ERR_INVALID_REQUEST, "endpoint",
                         "endpoint's origin is not the configured upstream \"%s\"", u->name);
    return 0;
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
